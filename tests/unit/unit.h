/*
 * unit.h -- the unit-test groups of tests/unit/run-unit (cmocka).
 *
 * Each tests/unit/test_NAME.c defines one group function, zql_unit_NAME(), that runs its
 * tests with cmocka_run_group_tests_name("NAME", ...) and returns the number of failures.
 * run-unit.c calls every group in a child process of its own (a crash fails that group
 * only) and, with CMOCKA_MESSAGE_OUTPUT=TAP (as `make check` sets it), merges the groups'
 * TAP output into one numbered stream with one plan.
 *
 * Include this file right after "runtime/base/zql_common.h": it brings in cmocka with the
 * system headers cmocka.h needs before it.
 *
 * Tests that use the allocation fault hook (zql_alloc_fail_after) register
 * zql_unit_teardown as their teardown, so a failed assertion cannot leave the hook armed
 * for the next test.
 */
#ifndef ZQL_UNIT_H
#define ZQL_UNIT_H

#include "runtime/base/zql_common.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* ORDER: keep run-unit.c's groups[] in the same order. */
int zql_unit_arena(void);
int zql_unit_strbuf(void);
int zql_unit_error(void);
int zql_unit_source(void);
int zql_unit_parse(void);
int zql_unit_registry(void); /* tests/unit/test_registry.c */
int zql_unit_text(void);
int zql_unit_crc32c(void); /* tests/unit/test_crc32c.c */
int zql_unit_evlog(void);  /* tests/unit/test_evlog.c */
int zql_unit_gen(void);      /* tests/unit/test_gen.c */
int zql_unit_ioformat(void); /* tests/unit/test_ioformat.c */
int zql_unit_func(void);     /* tests/unit/test_func.c */
int zql_unit_output(void);   /* tests/unit/test_output.c */
int zql_unit_value(void);    /* tests/unit/test_value.c */
int zql_unit_agg(void);      /* tests/unit/test_agg.c */
int zql_unit_agg_sketch(void); /* tests/unit/test_agg_sketch.c */
int zql_unit_tz(void);       /* tests/unit/test_tz.c */
int zql_unit_func_time(void); /* tests/unit/test_func_time.c */
int zql_unit_store(void);    /* tests/unit/test_store.c */
int zql_unit_store_input(void); /* tests/unit/test_store_input.c */
int zql_unit_ingest(void);      /* tests/unit/test_ingest.c */
int zql_unit_deadletter(void);  /* tests/unit/test_deadletter.c */
int zql_unit_cron(void);        /* tests/unit/test_cron.c */
int zql_unit_sched(void);       /* tests/unit/test_sched.c */
int zql_unit_zqld_config(void); /* tests/unit/test_zqld_config.c */
int zql_unit_log(void);         /* tests/unit/test_log.c */
int zql_unit_evmatch(void);     /* tests/unit/test_evmatch.c */
int zql_unit_client(void);      /* tests/unit/test_client.c */
int zql_unit_zqld_http(void);   /* tests/unit/test_zqld_http.c */
int zql_unit_ackjournal(void);  /* tests/unit/test_ackjournal.c */
int zql_unit_zqld_ingest(void); /* tests/unit/test_zqld_ingest.c */
int zql_unit_pool(void);        /* tests/unit/test_pool.c */

/* A cmocka teardown that disarms the allocation fault hook. Returns 0. */
int zql_unit_teardown(void **state);

/* A test with zql_unit_teardown as its teardown. */
#define ZQL_UNIT_TEST(f) cmocka_unit_test_teardown(f, zql_unit_teardown)

#endif
