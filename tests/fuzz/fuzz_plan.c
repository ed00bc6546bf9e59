/*
 * fuzz_plan.c -- libFuzzer target for compiled plans: bytes -> zql_plan_from_bson ->
 * EXPLAIN, serialize again, bind (zql_xplan_prepare) and run over a few fixed events.
 *
 * A .zqlc file is input like any other: `zql run FILE.zqlc` must refuse a damaged or
 * hostile plan with E0010 and never crash, read out of bounds or loop forever, so the
 * reader checks every opcode, register, pool index and jump target and that every loop is
 * an iterator loop (planner/plan_bson.c). This target holds it to that: a crash, a
 * sanitizer report, a leak or a time-out is a bug. The input is either one plan document
 * or a whole .zqlc file ({format, source, plans: [...]}), so `zql compile` output makes
 * good seeds.
 *
 * Build and run: tests/fuzz/run-fuzz.sh SECONDS plan (see tests/fuzz/README.md).
 */
#include "runtime/base/zql_common.h"

#include <bson/bson.h>

#include "exec/zql_exec.h"
#include "planner/zql_plan.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Three small events, as an input over rows (exec/rows_input.c does not need a log). */
static const char *const events[] = {
    "{\"_id\": 1, \"timestamp\": {\"$date\": \"2024-01-01T00:00:00Z\"}, \"type\": \"pageview\","
    " \"context\": {\"project\": \"zql\", \"user\": \"u1\"}, \"extra\": {\"bytes\": 10,"
    " \"ms\": 1.5, \"tags\": [\"a\", \"b\"]}}",
    "{\"_id\": 2, \"timestamp\": {\"$date\": \"2024-01-02T12:00:00Z\"}, \"type\": \"download\","
    " \"context\": {\"project\": null}, \"extra\": {\"bytes\": \"12k\", \"tags\": []}}",
    "{\"_id\": 3, \"type\": 7, \"context\": [1, 2], \"extra\": {\"ms\": -0.0}}",
};

static void run_plan(const zql_plan_t *p)
{
  zql_strbuf_t out = ZQL_STRBUF_INIT, err = ZQL_STRBUF_INIT;
  zql_explain_opts_t eo = {true};
  zql_plan_explain(&out, p, &eo);

  /* serialize again: what we accepted must read back */
  bson_t doc = BSON_INITIALIZER;
  if (zql_plan_to_bson(p, &doc) == 0) {
    zql_plan_t *q = NULL;
    if (zql_plan_from_bson(bson_get_data(&doc), doc.len, &q, &err) != 0)
      __builtin_trap(); /* a plan that does not survive its own round trip */
    zql_plan_free(q);
  }
  bson_destroy(&doc);

  /* bind and run it over the three events, as one-column rows of a result table */
  zql_xplan_t *x = NULL;
  if (zql_xplan_prepare(p, 1704153600000, &x, &err) == 0) {
    bson_t parsed[3];
    zql_val_t vals[3];
    const char *names[1] = {NULL};
    bool is_key[1] = {false};
    uint64_t errc[1] = {0};
    size_t n = 0;
    for (size_t i = 0; i < ZQL_ARRAY_LEN(events); i++) {
      bson_error_t be;
      if (!bson_init_from_json(&parsed[n], events[i], -1, &be))
        continue;
      vals[n] = zql_val_doc(bson_get_data(&parsed[n]), parsed[n].len, false);
      n++;
    }
    /* a table whose rows are the events themselves: column NULL means "the row is the
     * document", which rows_input flattens; use the documents' own fields instead */
    (void)names;
    (void)is_key;
    (void)errc;
    (void)vals;
    zql_result_table_t t;
    memset(&t, 0, sizeof t);
    const char *cols[4] = {"timestamp", "type", "context", "extra"};
    zql_val_t cells[3 * 4];
    for (size_t i = 0; i < n; i++) {
      bson_iter_t it;
      for (int c = 0; c < 4; c++) {
        cells[i * 4 + c] = zql_val_missing();
        if (bson_iter_init_find(&it, &parsed[i], cols[c]))
          zql_val_from_iter(&it, &cells[i * 4 + c]);
      }
    }
    t.ncols = 4;
    t.names = cols;
    t.nrows = n;
    t.vals = cells;
    zql_input_t in;
    zql_rows_input_t *ri = NULL;
    if (zql_rows_input_new(&t, &in, &ri) == 0) {
      for (unsigned threads = 1; threads <= 2; threads++) {
        zql_run_opts_t ro;
        zql_run_opts_init(&ro);
        ro.threads = threads;
        ro.mem_limit = threads == 2 ? 4096 : 0; /* the second run spills everything */
        zql_result_t *res = NULL;
        zql_strbuf_reset(&err);
        if (zql_exec_run(x, &in, &ro, &res, &err) == 0)
          zql_result_free(res);
      }
      zql_rows_input_free(ri);
    }
    for (size_t i = 0; i < n; i++)
      bson_destroy(&parsed[i]);
    zql_xplan_free(x);
  }
  zql_strbuf_release(&out);
  zql_strbuf_release(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  bson_t doc;
  bson_iter_t it, arr;
  if (!bson_init_static(&doc, data, size))
    return 0;
  if (bson_iter_init_find(&it, &doc, "plans") && BSON_ITER_HOLDS_ARRAY(&it) &&
      bson_iter_recurse(&it, &arr)) {
    for (int guard = 0; guard < 16 && bson_iter_next(&arr); guard++) {
      const uint8_t *d;
      uint32_t dl;
      if (!BSON_ITER_HOLDS_DOCUMENT(&arr))
        continue;
      bson_iter_document(&arr, &dl, &d);
      zql_plan_t *p = NULL;
      zql_strbuf_t err = ZQL_STRBUF_INIT;
      if (zql_plan_from_bson(d, dl, &p, &err) == 0)
        run_plan(p);
      zql_plan_free(p);
      zql_strbuf_release(&err);
    }
    return 0;
  }
  zql_plan_t *p = NULL;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  if (zql_plan_from_bson(data, size, &p, &err) == 0)
    run_plan(p);
  zql_plan_free(p);
  zql_strbuf_release(&err);
  return 0;
}
