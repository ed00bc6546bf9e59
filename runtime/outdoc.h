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

/* The bookkeeping fields of a stored document (absent ones are 0). */
void zql_outdoc_read_meta(const bson_t *doc, zql_outdoc_meta_t *meta);

#endif
