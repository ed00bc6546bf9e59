/*
 * plan.h -- ALL plan structures (stage 3: checked AST -> plan; stage 4 runs it).
 *
 * A plan is what one aggregate definition or one ad-hoc query compiles to. It is
 * immutable once built, lives in one arena, holds no pointer into the AST, and
 * serializes to BSON (planner/plan_bson.c) so that `zql compile` can store it and a worker
 * can run it without the source. Its parts, in pipeline order:
 *
 *   scan      the input (the event log, or the rows of another aggregate) and the _seq
 *             and timestamp bounds pushed down from the `where` clause (prune segments)
 *   extract   the event paths the map program reads (projection pushdown): one pass over
 *             each BSON event fills their registers (exec/extract.c)
 *   map       a register bytecode program run once per event (planner/oplist.h):
 *             filters, lets, unwinds, keys, per-aggregate filters and arguments, ending in
 *             GROUP/ADDAGG (declarative form) or EMIT (map form) instructions
 *   tables    the hash aggregations the map program feeds: key columns and aggregator
 *             slots (mergeable states: the combiner is always on), each with its final
 *             program (computed outputs, having, rank and order-by values per group)
 *   reduce    partitions (hash of the key bytes mod R), rank ... limit N within (...)
 *   commit    output options: into, key template, mode (the results store uses them)
 *
 * Registers, constants, call sites, bucket specs, step lists and document shapes are
 * referred to by index from instructions, so a program is position-independent data.
 * Constants are stored as one BSON array (consts): exec turns them into values once.
 */
#ifndef ZQL_PLAN_H
#define ZQL_PLAN_H

#include "runtime/base/zql_common.h"

#include <bson/bson.h>

#include "parser/ast.h"
#include "runtime/base/arena.h"

#define ZQL_PLAN_FORMAT 2 /* version of the serialized plan (.zqlc) */

typedef enum zql_opcode {
#define ZQL_OP(name, doc) ZQL_I_##name,
#include "planner/oplist.h"
#undef ZQL_OP
  ZQL_I__COUNT
} zql_opcode_t;

typedef struct zql_insn {
  uint8_t op;     /* zql_opcode_t */
  uint8_t flags;
  uint16_t dst, a, b;
  uint32_t c;
} zql_insn_t;

typedef struct zql_prog {
  zql_insn_t *code;
  uint32_t n, cap;
  uint16_t nregs;
} zql_prog_t;

/* An event path the map program reads: fields from the document root (nfields 0: the
 * whole event). Filled into register reg before each run of the map program. */
typedef struct zql_pextract {
  const char **fields;
  uint32_t nfields;
  uint16_t reg;
} zql_pextract_t;

/* A step list for ZQL_I_STEPS (fields, indexes, [*]); zql_step_t is parser/ast.h's. */
typedef struct zql_psteps {
  zql_step_t *steps;
  uint32_t n;
} zql_psteps_t;

/* A scalar call site: the function and which arguments are constants (consts index, or
 * -1 for a run-time value). */
typedef struct zql_pcall {
  const char *name;
  uint16_t nargs;
  int32_t *konst;
} zql_pcall_t;

/* bucket(ts, [every N] unit [tz Z] [week starts D] [origin O]) with its constants. */
typedef struct zql_pbucket {
  const char *unit;       /* "day", "hour", ... */
  int64_t every;          /* >= 1 */
  const char *tz;         /* "UTC" by default */
  const char *week_start; /* NULL: monday */
  const char *origin;     /* NULL: 1970-01-01T00:00 local */
} zql_pbucket_t;

/* Field names of a document constructor {a: .., b: ..}. */
typedef struct zql_pdocspec {
  const char **names;
  uint32_t n;
} zql_pdocspec_t;

/* A user reducer (`reducer NAME(x: T) state {...} { init; add; merge; final }`): four
 * programs over registers of their own. Each leaves its result in register 0; add reads
 * s in register 1 and x in 2, merge a in 1 and b in 2, final s in 1. */
typedef struct zql_preducer {
  const char *name;
  zql_prog_t init, add, merge, final;
  bool has_merge;        /* without merge, partial states cannot combine: one worker */
} zql_preducer_t;

/* One aggregator slot of a table: the function and its constant parameters. */
typedef struct zql_pagg {
  const char *func;       /* "count", "sum", "quantile", ..., "merge" */
  const char *inner;      /* merge: the aggregator whose stored states it merges */
  int32_t reducer;        /* func "reducer": index in plan->reducers; else -1 */
  int32_t share;          /* >= 0: this slot reads the state of slot `share` (quantiles and
                             medians of one expression under one filter share one sketch;
                             only the final's q differs); -1: a state of its own */
  const char *share_key;  /* what must be equal to share (planner only, not serialized) */
  const char *text;       /* as written, for EXPLAIN: "sum(extra.bytes)" */
  int64_t n;              /* hll p; topk k; N of collect/sample/maximum/minimum; limit */
  bool has_n;
  bool else_hll;
  double q, compression;
  double *edges;
  uint32_t nedges;
  uint32_t nconds;        /* retention, window_funnel, sequence_match */
  int64_t window_ms;
  const char *pattern;
  /* Inputs of ADDAGG: x at register a, then by, weight, conds in this order when present. */
  bool has_by, has_weight;
  bool nondet;            /* result depends on the split (topk): EXPLAIN marks it */
} zql_pagg_t;

/* An output column of a table: its name and the final-program register holding it. */
typedef struct zql_pcol {
  const char *name;
  uint16_t reg;
  bool is_key;
  int32_t slot;           /* a column that is one aggregator call: its slot (its state is
                             kept with the row for `from agg` readers); else -1 */
} zql_pcol_t;

typedef struct zql_porder {
  uint16_t reg;
  bool desc;
} zql_porder_t;

/* A hash aggregation: groups keyed by nkeys values, naggs aggregator slots per group. */
typedef struct zql_ptable {
  const char *name;       /* map form: the table's name; declarative form: NULL */
  const char *into;       /* the output collection (default zagg.NAME[.TABLE]) */
  bool intermediate;      /* a per stage: its final program feeds the next table (no rows) */
  bool prepass;           /* a sessions table: fed by the pre-pass program, read by SESSION
                             in the map program (no rows of its own) */
  uint32_t nkeys;
  uint32_t naggs;
  zql_pagg_t *aggs;
  /* REDUCE: run once per group after its states are merged (KEY and FINAL load). */
  zql_prog_t final;
  zql_pcol_t *cols;       /* keys first, then computed fields (resolved point 6) */
  uint32_t ncols;
  int32_t having_reg;     /* -1: none */
  bool has_rank;          /* rank by rank_reg [desc] limit rank_limit within (...) */
  uint16_t rank_reg;
  bool rank_desc;
  int64_t rank_limit;
  uint32_t *rank_within;  /* column indexes */
  uint32_t nrank_within;
  /* the results store (runtime/incr.c) */
  int32_t bucket_col;     /* the first key column that is a time bucket (output field b), or -1 */
  int32_t bucket;         /* its bucket spec in plan->buckets, or -1 */
  int32_t count_slot;     /* plans built with opts.incremental: a hidden count() slot (events
                             per group, for _late), or -1 */
} zql_ptable_t;

/* A time bound pushed into the scan: none, an absolute instant, or now() + offset. */
typedef enum zql_bound_kind { ZQL_BOUND_NONE, ZQL_BOUND_ABS, ZQL_BOUND_NOW } zql_bound_kind_t;
typedef struct zql_bound {
  zql_bound_kind_t kind;
  int64_t ms;             /* ABS: the instant; NOW: the offset added to now() */
  bool edge;              /* lower bound: exclusive (`>`); upper bound: inclusive (`<=`) */
} zql_bound_t;

/* EXPLAIN's logical tree: one line per operator, children indented. */
typedef struct zql_plnode {
  const char *op;         /* "Scan", "Filter", "Key", "Agg", ... */
  const char *text;       /* its arguments, as source text */
  const char *mark;       /* "[all mergeable]", "[sort+limit]", ... or NULL */
  struct zql_plnode *child;
} zql_plnode_t;

typedef struct zql_plan {
  zql_arena_t *arena;     /* owns everything below */
  uint32_t format;        /* ZQL_PLAN_FORMAT */
  uint64_t source_hash;   /* XXH3 of the source text the plan came from */
  const char *name;       /* the aggregate's name, or "query" */
  bool is_query;          /* ad-hoc query: rows, order by, limit */
  bool rowq;              /* a row query: no group by, no compute (ROW, no tables) */
  const char **row_names; /* row query: the let and unwind names added to each row */
  uint32_t nrow_names;
  const char *source_agg; /* NULL: the event log; else `from agg NAME` */

  /* scan */
  zql_bound_t ts_lo, ts_hi;  /* timestamp in [ts_lo, ts_hi) */
  int64_t seq_lo, seq_hi;    /* _seq in (seq_lo, seq_hi] (INT64_MIN / INT64_MAX: open) */

  /* pools */
  bson_t *consts;            /* array "0": v0, "1": v1, ... (heap: see build.c) */
  uint32_t nconsts;
  zql_pcall_t *calls;
  uint32_t ncalls;
  zql_pbucket_t *buckets;
  uint32_t nbuckets;
  zql_psteps_t *steps;
  uint32_t nsteps;
  zql_pdocspec_t *docs;
  uint32_t ndocs;
  zql_preducer_t *reducers;
  uint32_t nreducers;

  /* MAP */
  zql_pextract_t *extract;
  uint32_t nextract;
  int32_t seq_reg;           /* register receiving _seq, or -1 */
  zql_prog_t map;
  zql_prog_t pre;            /* session keys: a first pass over the same rows that collects
                                each entity's times (n == 0: none); shares map's registers */
  zql_ptable_t *tables;
  uint32_t ntables;

  /* REDUCE */
  uint32_t partitions;       /* R: hash(key) % R (option `partitions`, default 8) */
  zql_porder_t *order;       /* ad-hoc `order by` (registers of tables[0].final; of the
                                map program in a row query) */
  uint32_t norder;
  int64_t limit, offset;     /* -1: none */

  /* COMMIT */
  const char *key_template;  /* NULL: "{k1}/{k2}/..." ("_all" without keys) */
  bool key_doc;
  const char *mode;          /* "reduce" by default */
  bool strict;               /* on_error fail */
  bool nondet;               /* some aggregator is split-dependent (topk) */
  bool incremental;          /* built for the results store (zql_plan_opts_t.incremental) */
  int64_t lateness_ms;       /* `lateness d` (R13), 0 when not written */
  const char *late;          /* late policy: "merge" (default), "drop", "sidecar" */
  const char *sidecar;       /* `late sidecar "coll"`: the collection, else NULL */
  int64_t settle_ms;         /* `settle d` (R12), 0 by default */
  int64_t retain_ms;         /* `retain d` (R19), -1: keep outputs forever */
  const char *schedule;      /* the schedule clause as written (R18), or NULL */

  /* EXPLAIN */
  zql_plnode_t *logical;
} zql_plan_t;

const char *zql_opcode_name(zql_opcode_t op);

#endif
