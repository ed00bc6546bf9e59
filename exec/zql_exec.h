/*
 * zql_exec.h -- the executor's public API: run a plan over an input (stage 4).
 *
 *   zql_xplan_t *x;  zql_xplan_prepare(plan, now_ms, &x, &err);   once per plan and run
 *   zql_exec_run(x, &input, &opts, &result, &err);                 MAP -> SHUFFLE -> REDUCE
 *   ... read result->tables[i] rows ...
 *   zql_result_free(result); zql_xplan_free(x);
 *
 * Tasks (R20): a map task is the plan's map program over one _seq chunk (lo, hi] of the
 * input, identified by its index; a reduce task is one partition (hash(key) % R). Tasks
 * are side-effect free until the caller commits the result, so a retried or duplicated
 * task can simply be discarded. Local runs execute them on a thread pool.
 *
 * The input is an interface so that exec/ does not depend on where events live
 * (runtime/ provides the event log; tests provide arrays of documents).
 */
#ifndef ZQL_ZQL_EXEC_H
#define ZQL_ZQL_EXEC_H

#include "runtime/base/zql_common.h"

#include "exec/value.h"
#include "planner/plan.h"
#include "runtime/base/arena.h"
#include "runtime/base/strbuf.h"

/* One event handed to the map program: zero-copy view of its BSON bytes. */
typedef struct zql_event {
  int64_t seq;
  int64_t ts;
  const uint8_t *doc;
  uint32_t len;
} zql_event_t;

typedef struct zql_input {
  void *arg;
  int64_t lo, hi; /* the _seq range (lo, hi] of the run */
  /* Cut (lo, hi] into at most n chunks: bounds[0] = lo < ... < bounds[k] = hi. Returns k
   * (0: empty) or a negative ZQL_E_*. */
  int (*split)(void *arg, int64_t lo, int64_t hi, size_t n, int64_t *bounds,
               zql_strbuf_t *err);
  /* A cursor over the events of (lo, hi] whose frame timestamp lies in [ts_lo, ts_hi)
   * (exactly: `zql run --from/--to` relies on it). */
  int (*open)(void *arg, int64_t lo, int64_t hi, int64_t ts_lo, int64_t ts_hi,
              void **cursor, zql_strbuf_t *err);
  /* Up to max events: the count, 0 at the end, or a negative ZQL_E_*. Views stay valid
   * until close. */
  int (*next)(void *cursor, zql_event_t *ev, size_t max, zql_strbuf_t *err);
  void (*close)(void *cursor);
  uint64_t bytes;  /* approximate input bytes, for progress and MB/s (0: unknown) */
} zql_input_t;

typedef struct zql_run_opts {
  unsigned threads;       /* worker threads (>= 1) */
  uint64_t mem_limit;     /* bytes for group tables before spilling (0: no limit) */
  const char *tmp_dir;    /* where spill runs go (NULL: $TMPDIR or /tmp) */
  int64_t ts_lo, ts_hi;   /* only events with timestamp in [ts_lo, ts_hi) (--from/--to) */
  bool keep_states;       /* keep each row's saved aggregator states (result->state) */
  void (*progress)(void *arg, uint64_t events, uint64_t bytes);
  void *progress_arg;
} zql_run_opts_t;

void zql_run_opts_init(zql_run_opts_t *o);

/* One message counted in _errors. */
typedef struct zql_errcount {
  const char *msg;
  uint64_t n;
} zql_errcount_t;

typedef struct zql_counters {
  uint64_t events;       /* events read */
  int64_t max_ts;        /* the largest event timestamp read, INT64_MIN without events (the
                            event-time watermark of R13) */
  uint64_t rows;         /* rows after unwind that reached the keys */
  uint64_t type_skips;   /* R8 */
  uint64_t overflow;     /* R4 int64 overflow promoted to double */
  uint64_t lossy;        /* R4 decimal128 converted */
  zql_errcount_t *errors;/* R5: messages and counts, sorted by message */
  uint32_t nerrors;
  uint64_t spills;       /* sorted runs written */
  uint64_t spill_bytes;
} zql_counters_t;

typedef struct zql_result_table {
  const char *name;      /* map form: the table; declarative: NULL */
  const char *into;
  uint32_t ncols;
  const char **names;
  bool *is_key;
  uint64_t nrows;
  zql_val_t *vals;       /* nrows * ncols, row-major, bytes in the result arena */
  uint64_t *error_cells; /* per column: cells whose value was ERROR (printed as null) */
  zql_val_t *state;      /* with keep_states: per row a DOC {column: saved state} of the
                            columns that are one aggregator call (R11), else NULL */
} zql_result_table_t;

typedef struct zql_stage_stats {
  double seconds;
  uint64_t rows_in, rows_out;
  uint64_t bytes;
  uint64_t peak_mem;
} zql_stage_stats_t;

typedef struct zql_result {
  zql_arena_t *arena;
  uint32_t ntables;
  zql_result_table_t *tables;
  zql_counters_t counters;
  zql_stage_stats_t map, reduce, output;
  uint64_t groups;       /* groups after reduce (before having / limit) */
  uint32_t chunks;       /* map tasks' chunks of the input */
  uint32_t threads;      /* workers */
  uint32_t partitions;   /* reduce partitions R */
} zql_result_t;

typedef struct zql_xplan zql_xplan_t;

/* An input over the rows of a result table (`from agg X` within one run): row i is the
 * document {column: value..., __state: {column: saved state}} with _seq i + 1 and
 * timestamp 0. The table must outlive the input. */
typedef struct zql_rows_input zql_rows_input_t;
/* Any buffer of row documents as an input, the same way: nrows BSON documents back to back
 * in buf, row i from off[i] to off[i + 1] (off has nrows + 1 entries). rb must outlive
 * the input. */
typedef struct zql_rowbuf {
  uint8_t *buf;
  uint64_t *off;
  uint64_t nrows;
} zql_rowbuf_t;
void zql_rowbuf_input(const zql_rowbuf_t *rb, zql_input_t *in);
int zql_rows_input_new(const zql_result_table_t *t, zql_input_t *in, zql_rows_input_t **out);
void zql_rows_input_free(zql_rows_input_t *ri);

/* Incremental commits (runtime/incr.c): merge n saved state documents (the keep_states
 * layout: {column: state, "#slot": state}, exec/run.c zql_save_states) into one group of
 * output table t with key values keys, run t's final program, and return its ncols column
 * values and the merged states (same layout) with bytes in arena. A missing slot counts
 * as the empty state. ZQL_E_CORRUPT with a message for a state that does not load or
 * whose kind or parameters differ (R11); ZQL_E_NOMEM. */
int zql_exec_refinalize(const zql_xplan_t *x, uint32_t t, const zql_val_t *keys,
                        const bson_t *const *states, size_t n, zql_arena_t *arena,
                        zql_val_t *cols, zql_val_t *state, zql_strbuf_t *err);
/* The same for many groups of one table, reusing one machine: new once, run per group
 * (values and state in the caller's arena), free. */
typedef struct zql_refinal zql_refinal_t;
int zql_refinal_new(const zql_xplan_t *x, uint32_t t, zql_refinal_t **out, zql_strbuf_t *err);
int zql_refinal_run(zql_refinal_t *rf, const zql_val_t *keys, const bson_t *const *states,
                    size_t n, zql_arena_t *arena, zql_val_t *cols, zql_val_t *state,
                    zql_strbuf_t *err);
void zql_refinal_free(zql_refinal_t *rf);

/* Bind a plan for execution: constants as values, scalar functions prepared (regexes
 * compiled, zones loaded), aggregators looked up, now() fixed. ZQL_E_BAD_PLAN or
 * ZQL_E_NOMEM with a message. */
int zql_xplan_prepare(const zql_plan_t *p, int64_t now_ms, zql_xplan_t **out,
                      zql_strbuf_t *err);
void zql_xplan_free(zql_xplan_t *x);
/* The scan bounds of the plan with now() applied: timestamp in [*ts_lo, *ts_hi). */
void zql_xplan_ts_range(const zql_xplan_t *x, int64_t *ts_lo, int64_t *ts_hi);

/* Run the whole plan locally. Returns 0 or ZQL_E_* (message in err). */
int zql_exec_run(const zql_xplan_t *x, const zql_input_t *in, const zql_run_opts_t *o,
                 zql_result_t **out, zql_strbuf_t *err);
void zql_result_free(zql_result_t *r);

#endif
