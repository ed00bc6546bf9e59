/*
 * incr.h -- incremental aggregates: definitions, runs, rebuilds and backfills over the
 * results store (runtime services; design/ZQL.md R11-R16, R19; docs/incremental.md).
 *
 *   zql_incr_define(store, plan, file, source, ...)    `zql agg add` (identity check)
 *   zql_incr_run(store, data_dir, name, ...)           `zql agg run|rebuild`
 *   zql_incr_backfill(store, data_dir, name, t1, t2)   `zql agg backfill`
 *   zql_incr_drop(store, data_dir, name)               `zql agg drop`
 *
 * A run covers exactly the events (lo, hi] by _seq. It first records itself as `started`
 * (in "$runs", with lo and hi), then executes the plan, then commits: the output documents,
 * the error counters, the run record (`committed`) and the watermark (last _seq = hi) in
 * ONE store transaction where the backend has them (LMDB), so a crash leaves either all or
 * nothing; every document write is also guarded by `_hw < hi` (R12), which is what makes
 * backends with only per-document atomicity exact, and makes replaying a run a no-op. A
 * run found `started` at the next start is re-executed with the same lo and hi. Runs of one
 * aggregate are serialised by a lock file (DATA/results/NAME.lock, flock): any number of
 * processes may call these functions.
 *
 * Test hook: with ZQL_TEST_CRASH=POINT in the environment the process kills itself with
 * SIGKILL when it reaches POINT: after-start, before-commit, mid-commit (half the
 * documents written), after-commit, rebuild-built (shadow written, before the swap),
 * rebuild-swap (inside the swap transaction), backfill-batch (after the first batch).
 */
#ifndef ZQL_INCR_H
#define ZQL_INCR_H

#include "runtime/base/zql_common.h"

#include "planner/plan.h"
#include "runtime/store.h"

typedef struct zql_incr_opts {
  unsigned threads;       /* executor threads (0: one per core) */
  uint64_t mem_limit;     /* group memory before spilling (0: none) */
  const char *tmp_dir;    /* spill files (NULL: DATA/tmp) */
  int64_t now_ms;         /* the run's now() (R18: fixed at run start); 0: the clock */
  int64_t upto;           /* runs cover events up to this _seq at most (0: the log's end;
                             the daemon passes the durable _seq) */
} zql_incr_opts_t;

void zql_incr_opts_init(zql_incr_opts_t *o);

typedef struct zql_incr_report {
  int64_t run;            /* the run number; 0 when there was nothing to do */
  char kind[16];          /* "incremental", "dirty", "full", "rebuild", "backfill" */
  int64_t lo, hi;         /* (lo, hi] */
  bool resumed;           /* a run left `started` was re-executed */
  uint64_t events;        /* events read */
  uint64_t inserted, updated, unchanged, deleted; /* documents (unchanged: _hw >= hi) */
  uint64_t late, dropped; /* late events merged / not merged (R13) */
  uint64_t errors;        /* ERROR rows counted in zagg.NAME._errors (R5) */
  double seconds;         /* the whole run: catalog, execution, commit (with its fsync) */
  double exec_seconds;    /* of which the executor */
  double commit_seconds;  /* of which the commit transaction */
} zql_incr_report_t;

typedef enum zql_def_status {
  ZQL_DEF_NEW,            /* added */
  ZQL_DEF_SAME,           /* the same definition: nothing changed */
  ZQL_DEF_UPDATED,        /* schedule / settle / lateness / retention / text changed */
  ZQL_DEF_REBUILD         /* outputs change: accepted with rebuild; the next run rebuilds */
} zql_def_status_t;

/* Store (or update) the compiled aggregate p (built with opts.incremental) from `file`
 * whose whole text is source. An existing aggregate whose identity (keys, buckets, zones,
 * outputs) or computation changed is refused with ZQL_E_AGG_CHANGED (the message says
 * what changed) unless rebuild is set. */
int zql_incr_define(zql_store_t *s, const zql_plan_t *p, const char *file, const char *source,
                    size_t len, bool rebuild, zql_def_status_t *status, zql_strbuf_t *err);

/* One run of NAME: a run left started is finished first (report->resumed); else a rebuild
 * when one is pending or `rebuild` is set, else the new events (incremental; full for
 * mode replace and for plans whose outputs cannot be merged, R14). ZQL_E_NO_AGG,
 * ZQL_E_RUN_FAILED (on_error fail, colliding _ids), ZQL_E_IO, ... */
int zql_incr_run(zql_store_t *s, const char *data_dir, const char *name, bool rebuild,
                 const zql_incr_opts_t *o, zql_incr_report_t *report, zql_strbuf_t *err);

/* Recompute the buckets of NAME intersecting [t1, t2) from the raw events up to the
 * watermark and replace their documents, one bucket at a time, newest first (R15).
 * ZQL_E_USAGE without a time bucket key; ZQL_E_RANGE_RETAINED for a range whose events
 * the log's retention removed. */
int zql_incr_backfill(zql_store_t *s, const char *data_dir, const char *name, int64_t t1,
                      int64_t t2, const zql_incr_opts_t *o, zql_incr_report_t *report,
                      zql_strbuf_t *err);

/* Remove NAME: its outputs, errors, run records, watermark and catalog entry. Refused
 * (ZQL_E_USAGE) while another stored aggregate reads `from agg NAME`. */
int zql_incr_drop(zql_store_t *s, const char *data_dir, const char *name, zql_strbuf_t *err);

/* Names of the stored aggregates that read `from agg NAME` (comma separated into out). */
int zql_incr_dependents(zql_store_txn_t *t, const char *name, zql_strbuf_t *out,
                        zql_strbuf_t *err);

#endif
