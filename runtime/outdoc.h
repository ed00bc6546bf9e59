/*
 * outdoc.h -- an output row as a results-store document (runtime services; R6, R16).
 *
 *   {_id, value: {field: final...}, state: {field: saved state...}, k: {key: value...},
 *    b: bucket start, tz: zone, _hw, _rev, _late}
 *
 * The `_id` is the plan's key template rendered with the row's key values (R6: "{k1}/{k2}"
 * by default, "_all" without keys, `{day:%Y-%m-%d}` formats a date in UTC), or with `key
 * doc` the key document itself. The store id is the _id string's bytes, or the key
 * document's BSON bytes. `zql run -o FILE.bson` writes the same documents without the
 * bookkeeping fields.
 */
#ifndef ZQL_OUTDOC_H
#define ZQL_OUTDOC_H

#include "runtime/base/zql_common.h"

#include <bson/bson.h>

#include "exec/value.h"
#include "planner/plan.h"
#include "runtime/base/strbuf.h"
#include "runtime/store.h"

/* The plan table of the t-th output table of a result (the tables that are neither per
 * stages nor session pre-passes, in plan order). */
uint32_t zql_outdoc_table(const zql_plan_t *p, uint32_t t);

/* The store id of row (table t's ncols values) into id (appended): the rendered template,
 * or with key_doc the BSON bytes of {key: value...}. */
void zql_outdoc_id(zql_strbuf_t *id, const zql_plan_t *p, uint32_t t, const zql_val_t *row);

/* Bookkeeping fields of a stored document (R12, R13, R16). */
typedef struct zql_outdoc_meta {
  int64_t hw;     /* _hw: the hi of the run that last applied events to it */
  int64_t rev;    /* _rev: 1, then + 1 at each change of its values */
  int64_t late;   /* _late: late events it received (R13) */
  bool bookkeeping; /* false: leave out _hw, _rev, _late (zql run -o) */
} zql_outdoc_meta_t;

/* Build the document of row (and its saved states, a DOC value or MISSING) into d, which
 * must be initialised and empty. id is what zql_outdoc_id gave. ERROR cells are stored as
 * null (R5). Returns false when out of memory. */
bool zql_outdoc_build(bson_t *d, const zql_plan_t *p, uint32_t t, const zql_val_t *row,
                      const zql_val_t *state, const char *id, size_t idlen,
                      const zql_outdoc_meta_t *meta);

/* Visit, in id order, the documents of coll whose id starts with prefix (plen 0: all)
 * and whose bucket start `b` lies in [t1, t2): the time-series reads of the query service
 * (R17: `/q` asks for one key's buckets over a time range). Documents without `b` are
 * skipped. Results as zql_store_prefix. */
int zql_outdoc_scan_time(zql_store_txn_t *t, const char *coll, const void *prefix, size_t plen,
                         int64_t t1, int64_t t2, zql_store_visit_fn fn, void *arg,
                         zql_strbuf_t *err);

/* The bookkeeping fields of a stored document (absent ones are 0). */
void zql_outdoc_read_meta(const bson_t *doc, zql_outdoc_meta_t *meta);

#endif
