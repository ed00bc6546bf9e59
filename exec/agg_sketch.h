/*
 * agg_sketch.h -- operations on sketch states beyond the aggregator contract (stage 4).
 *
 * The sketch aggregators themselves (distinct_count, hll, quantile/median, tdigest, topk,
 * theta) are zql_aggdef_t values defined in exec/agg_sketch.c and reached through the
 * registry of exec/agg.h (zql_agg_lookup). This header adds what scalar functions need
 * on top: the explicit precision downgrade of an hll state (the hll_downgrade(col, p)
 * scalar of parser/funclist.h, design/ZQL.md R11) and the set operations of theta
 * states. Algorithms, error bounds and byte layouts: docs/sketches.md.
 *
 * Every `st` here is the inline state block of the named aggregator (zql_agg_hll.state_size
 * or zql_agg_theta.state_size bytes), initialised by its init or load.
 */
#ifndef ZQL_AGG_SKETCH_H
#define ZQL_AGG_SKETCH_H

#include "runtime/base/zql_common.h"

#include "exec/agg.h"

extern const zql_aggdef_t zql_agg_distinct_count, zql_agg_hll, zql_agg_quantile,
    zql_agg_tdigest, zql_agg_topk, zql_agg_theta;

/* Reduce the hll state st (of zql_agg_hll) to precision p, in place: the result is exactly
 * the state that hll(e, p) would have built from the same inputs, so it merges with
 * states built at p. Heap changes are reported in ctx->heap. Returns 0 (also when p is
 * the state's own precision), ZQL_AGG_MISMATCH when p is outside 4..the state's own p or
 * the state has no valid precision, or ZQL_E_NOMEM (st unchanged). */
int zql_hll_downgrade(void *st, int p, zql_aggctx_t *ctx);

/* Estimates of |A intersect B| and |A minus B| for two theta states a and b (of
 * zql_agg_theta, any nominal sizes): exact when neither sketch has dropped a hash,
 * otherwise the KMV estimate count(hashes of the set below t) / t for t the smaller of
 * the two sketches' thresholds. Return 0, ZQL_AGG_MISMATCH when a state has an invalid
 * k, or ZQL_E_NOMEM; the estimate goes to *out. */
int zql_theta_intersection(const void *a, const void *b, double *out);
int zql_theta_difference(const void *a, const void *b, double *out);

#endif
