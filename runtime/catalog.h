/*
 * catalog.h -- the bookkeeping of incremental aggregates in the results store (runtime
 * services; design/ZQL.md R12-R16, docs/incremental.md).
 *
 * Collections (all in one zql_store_t):
 *   "$catalog"     id = aggregate name: the compiled aggregate
 *                  {_id, name, file, source, source_hash, plan: {plan BSON}, fingerprint,
 *                   identity, version, into: [collections], mode, created, updated}
 *   "$watermarks"  id = aggregate name: {_id, seq: last committed _seq, et: max event time
 *                   seen (ms, absent before any event), run: the last run number, swept}
 *   "$runs"        id = name "\0" big-endian run number: the run records
 *                  {agg, run, kind, lo, hi, status, started, finished, counts: {...},
 *                   error, shadow, from, to}
 *   "zagg.NAME._errors"  id = message: {_id: message, n} (R5)
 *
 * Readers (the query service, `from agg NAME`) only need zql_catalog_get; the run
 * machinery (runtime/incr.c) uses the rest inside its own transactions.
 */
#ifndef ZQL_CATALOG_H
#define ZQL_CATALOG_H

#include "runtime/base/zql_common.h"

#include <bson/bson.h>

#include "runtime/store.h"

#define ZQL_CAT_COLL "$catalog"
#define ZQL_WM_COLL "$watermarks"
#define ZQL_RUNS_COLL "$runs"

/* A catalog entry, as views into the document it was read from (valid while the
 * transaction it came from is open) unless copied. */
typedef struct zql_catentry {
  const char *name;
  const char *file;          /* the path it was added from (informational) */
  const char *source;        /* the whole source text of that file */
  uint32_t source_len;
  int64_t source_hash;       /* XXH3 of the source */
  const uint8_t *plan;       /* the plan BSON (zql_plan_from_bson) */
  uint32_t plan_len;
  int64_t fingerprint;       /* hash of what decides the outputs (not the schedule) */
  const char *identity;      /* keys, buckets, zones, into, key template: text */
  int32_t version;           /* 1, then +1 at each accepted definition change */
  int64_t created, updated;  /* ms */
} zql_catentry_t;

/* Read NAME's entry: 0, ZQL_STORE_NOTFOUND, or < 0 (ZQL_E_CORRUPT for a malformed entry). */
int zql_catalog_get(zql_store_txn_t *t, const char *name, zql_catentry_t *e, bson_t *doc,
                    zql_strbuf_t *err);

#endif
