/*
 * agg.h -- the aggregators: mergeable states with init / add / merge / final (stage 4).
 *
 * Every built-in aggregator of parser/funclist.h (kind ZQL_FN_AGGREGATE) is one
 * zql_aggdef_t (design/ZQL.md R8, R11 and resolved points 6-9, 14). The executor keeps,
 * for each group, a block of `state_size` bytes per aggregator (inline state); anything
 * variable-sized (sets, sketches, lists) hangs off it on the heap (zql_malloc), and every
 * heap byte allocated or freed is reported in ctx->heap so the engine can honour
 * --mem-limit.
 *
 * Life of a state:  init -> add* -> (merge from other states)* -> final | save -> destroy
 *                   load -> merge / final -> destroy
 *
 * Laws (tests/unit/test_agg.c proves them on generated data for every aggregator):
 *  - merge is associative and commutative;
 *  - add(s, x) == merge(s, add(init, x)), so a stream split anywhere and merged gives
 *    the same state as one add stream;
 *  - final depends only on the multiset of added inputs (resolved point 14: byte-identical
 *    results whatever the split) except for aggregators flagged ZQL_AGG_NONDET (topk),
 *    which are deterministic for a given split.
 *
 * States are self-describing: init copies every parameter that merge needs (hll p, topk
 * capacity, histogram edges...) into the state, so a state loaded from storage merges
 * without the plan. Merging states whose kinds or parameters differ is not a C error:
 * merge returns ZQL_AGG_MISMATCH and the cell becomes ERROR.
 *
 * Serialized form (R11): save appends the fields {k: name, v: version, p: {params},
 * ...payload} to a BSON document; binary payloads are BSON binary with subtype
 * ZQL_AGG_BINARY_SUBTYPE. load reads exactly what save wrote (and older versions).
 * Byte layouts are documented in docs/formats.md.
 *
 * Inputs: `in->x` is the argument value (anything: each aggregator skips what R8 says:
 * NULL/MISSING always, non-numerics for sum/avg/quantile/histogram, counted in
 * ctx->type_skips). ERROR inputs never reach add: the executor counts them in _errors and
 * skips the row for that aggregate (R5).
 */
#ifndef ZQL_AGG_H
#define ZQL_AGG_H

#include "runtime/base/zql_common.h"

#include <bson/bson.h>

#include "exec/value.h"
#include "runtime/base/arena.h"
#include "runtime/base/strbuf.h"

#define ZQL_AGG_BINARY_SUBTYPE 0x80 /* BSON binary subtype of sketch payloads */
#define ZQL_AGG_MISMATCH 1          /* merge: states of different kinds or parameters */
#define ZQL_AGG_MAX_CONDS 64        /* retention, window_funnel, sequence_match: at most
                                       64 conditions (the planner rejects more) */

typedef struct zql_ureducer zql_ureducer_t; /* exec/exec_int.h: a bound user reducer */

/* Parameters of one aggregator call, from its constant arguments and clauses. */
typedef struct zql_aggparams {
  int64_t n;            /* hll: p (4..18, default 14); topk: k; collect, sample, maximum,
                           minimum: N; distinct_count: limit (default 100000); theta: k */
  bool else_hll;        /* distinct_count ... else hll */
  double q;             /* quantile: q in [0, 1]; median: 0.5 */
  double compression;   /* quantile: the compression argument (default 100) */
  const double *edges;  /* histogram: strictly increasing edges */
  uint32_t nedges;
  uint32_t nconds;      /* retention, window_funnel, sequence_match: number of conditions */
  int64_t window_ms;    /* window_funnel: the window */
  const char *pattern;  /* sequence_match: the pattern text */
  const char *inner;    /* merge: the aggregator whose stored states are merged */
  const zql_ureducer_t *user; /* reducer: the user reducer's programs (exec/agg_user.c) */
} zql_aggparams_t;

/* One input row of an aggregator. */
typedef struct zql_aggin {
  zql_val_t x;          /* the argument (count(): unused) */
  zql_val_t by;         /* first/last: the `by` time value (default timestamp);
                           window_funnel, sequence_match: the ts argument */
  zql_val_t weight;     /* topk (default: absent = MISSING = 1), maximum, minimum */
  int64_t seq;          /* _seq of the event the row came from: first/last tie-break,
                           collect order, sample hashing */
  const bool *conds;    /* retention, window_funnel, sequence_match: nconds results,
                           true only where the condition was TRUE */
} zql_aggin_t;

/* Per-thread counters and memory accounting; add/merge/load update them. */
typedef struct zql_aggctx {
  uint64_t type_skips;  /* inputs skipped for their type (R8) */
  int64_t heap;         /* += bytes allocated, -= bytes freed by state functions */
} zql_aggctx_t;

enum {
  ZQL_AGG_NONDET = 1 << 0 /* final may differ between splits of the input (topk) */
};

typedef struct zql_aggdef {
  const char *name;     /* the kind stored as `k`: "count", "sum", "hll", ... */
  uint16_t version;     /* stored as `v` */
  uint32_t state_size;  /* bytes of the inline state (8-byte aligned by the caller) */
  unsigned flags;       /* ZQL_AGG_* */
  /* Initialise the inline state (must not fail; allocate lazily in add). */
  void (*init)(void *st, const zql_aggparams_t *p);
  /* Fold one input in. 0, or ZQL_E_NOMEM (the state stays valid). */
  int (*add)(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx);
  /* dst = merge(dst, src); src is left valid (still to be destroyed). 0,
   * ZQL_AGG_MISMATCH, or ZQL_E_NOMEM. */
  int (*merge)(void *dst, const void *src, zql_aggctx_t *ctx);
  /* The final value; bytes in arena. p is the call's parameters (quantile's q: several
   * quantile calls over one expression may share one state). 0 or ZQL_E_NOMEM. */
  int (*final)(const void *st, const zql_aggparams_t *p, zql_arena_t *arena, zql_val_t *out);
  /* Append {k, v, p, payload...} fields to out. 0 or ZQL_E_NOMEM. */
  int (*save)(const void *st, bson_t *out);
  /* Initialise st from a document written by save (the fields of one state). 0, or
   * ZQL_E_BAD_RECORD with a message in err. */
  int (*load)(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err);
  /* Free heap parts (reporting them in ctx->heap); st may then be reused by init. */
  void (*destroy)(void *st, zql_aggctx_t *ctx);
} zql_aggdef_t;

/* merge(col) over stored states of `from agg` rows (exec/agg_merge.c). Not in
 * zql_agg_all(): it needs params->inner, so the generic property tests cannot drive it. */
extern const zql_aggdef_t zql_agg_merge;
/* User reducers (exec/agg_user.c): params->user says which. Not in zql_agg_all() either. */
extern const zql_aggdef_t zql_agg_reducer;
/* The times of an entity's rows cut into sessions of gap params->window_ms
 * (exec/agg_session.c, the pre-pass of session keys). */
extern const zql_aggdef_t zql_agg_sessions;

/* The aggregator named name ("count", "median", "merge", ...), or NULL. count() and count(e) are
 * both "count" (the executor passes a constant TRUE value for count()). median is
 * quantile with q = 0.5. */
const zql_aggdef_t *zql_agg_lookup(const char *name);
/* Every aggregator, in a stable order (tests iterate it). */
const zql_aggdef_t *const *zql_agg_all(size_t *n);
/* Fill p with the defaults of the named aggregator (hll p 14, limit 100000, ...). */
void zql_aggparams_default(const char *name, zql_aggparams_t *p);

/* Plan-time check of a sequence_match pattern: a sequence of `(?N)` (a row where
 * condition N, 1..nconds, is TRUE), `.` (any one row) and `.*` (any rows, also none).
 * Time constraints such as `(?t>=N)` are not supported. Returns 0, or ZQL_E_ARG_KIND
 * (syntax) / ZQL_E_ARG_RANGE (N outside 1..nconds) with a message appended to err. */
int zql_seqpattern_check(const char *pattern, uint32_t nconds, zql_strbuf_t *err);

#endif
