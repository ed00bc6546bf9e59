/*
 * evmatch.h -- the `on event <predicate>` filter of zqld's scheduler (runtime services).
 * See evmatch.c.
 */
#ifndef ZQL_EVMATCH_H
#define ZQL_EVMATCH_H

#include "runtime/base/zql_common.h"

#include "exec/zql_exec.h"
#include "runtime/base/strbuf.h"

typedef struct zql_evmatch zql_evmatch_t;

/* Compile a predicate (the text after `on event`; NULL or "" matches every event).
 * ZQL_E_* with a message naming the predicate and the column of the problem. */
int zql_evmatch_new(const char *pred, zql_evmatch_t **out, zql_strbuf_t *err);
/* How many of the n events match (each event: its BSON document, ts its time). */
int zql_evmatch_count(zql_evmatch_t *m, const zql_event_t *ev, size_t n, uint64_t *matched,
                      zql_strbuf_t *err);
void zql_evmatch_free(zql_evmatch_t *m); /* NULL is a no-op */

#endif
