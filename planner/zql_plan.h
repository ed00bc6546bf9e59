/*
 * zql_plan.h -- the planner's public API: checked statement -> immutable plan (stage 3).
 *
 *   zql_plan_t *p;
 *   zql_plan_build(src, stmt, &opts, &p, &err);  stmt: a checked ZQL_N_AGGREGATE or ZQL_N_QUERY
 *   zql_plan_explain(&out, p, NULL);           the EXPLAIN text (golden-tested)
 *   zql_plan_to_bson(p, &doc) / zql_plan_from_bson(&doc, &p, &err)   .zqlc files, workers
 *   zql_plan_free(p);
 *
 * A plan owns its arena and holds no pointer into the AST, so the statement's arena may
 * be deleted once the plan is built. Plans are immutable: any number of threads may run
 * one at the same time.
 */
#ifndef ZQL_ZQL_PLAN_H
#define ZQL_ZQL_PLAN_H

#include "runtime/base/zql_common.h"

#include <bson/bson.h>

#include "parser/ast.h"
#include "parser/source.h"
#include "planner/plan.h"
#include "runtime/base/strbuf.h"

typedef struct zql_plan_opts {
  uint32_t partitions; /* reduce partitions R when the statement has no `partitions` (8) */
  bool incremental;    /* for the results store: every grouped table gets a hidden count()
                          slot (zql_ptable_t.count_slot), whose state is kept with the rows */
} zql_plan_opts_t;

void zql_plan_opts_init(zql_plan_opts_t *o);

/* Plan one checked aggregate or query parsed from src (src gives EXPLAIN its clause texts
 * and the plan its source hash; NULL: no texts). Returns 0, ZQL_E_NOMEM, or
 * ZQL_E_UNSUPPORTED with a message in err (a construct the engine does not run yet). */
int zql_plan_build(const zql_source_t *src, const zql_node_t *stmt,
                   const zql_plan_opts_t *opts, zql_plan_t **out, zql_strbuf_t *err);
/* An empty plan in its own arena (plan_bson.c fills one). */
zql_plan_t *zql_plan_new_empty(void);
void zql_plan_free(zql_plan_t *p);

typedef struct zql_explain_opts {
  bool program;   /* also list the bytecode of every program (--dump=plan) */
} zql_explain_opts_t;

/* The EXPLAIN text: logical plan, then the physical stages. Stable (no pointers, no
 * timings): golden tests compare it. */
void zql_plan_explain(zql_strbuf_t *out, const zql_plan_t *p, const zql_explain_opts_t *o);

/* Whether stored outputs of p can absorb new events by merging states (R11): no per
 * stages, session keys, rank, having, order/limit, `from agg` source, or user reducer
 * without merge. Otherwise each run recomputes (R14; EXPLAIN says [recompute-full]). */
bool zql_plan_mergeable(const zql_plan_t *p);
/* Whether a non-mergeable p can be run by recomputing only the time buckets new events
 * fall in (R14, EXPLAIN [recompute-dirty]): one output table, keyed by a bucket of the
 * event's `timestamp`, whose every document depends on the events of its bucket alone --
 * rank within a partition that includes the bucket, having, reducers without merge; no
 * per stage, session key, global order/limit or `from agg` source. */
bool zql_plan_recompute_dirty(const zql_plan_t *p);
/* Whether bucket spec `bucket` (an index in p->buckets) buckets the event's own
 * `timestamp`, so that the events of a bucket are those with frame times in it. */
bool zql_plan_bucket_of_timestamp(const zql_plan_t *p, int32_t bucket);

/* Serialize a plan (the whole plan, versioned by ZQL_PLAN_FORMAT) and read it back.
 * from_bson validates everything (register and pool indexes, jump targets), so a
 * damaged or hostile .zqlc gives ZQL_E_BAD_PLAN, never a crash. */
int zql_plan_to_bson(const zql_plan_t *p, bson_t *out);
int zql_plan_from_bson(const uint8_t *data, size_t len, zql_plan_t **out, zql_strbuf_t *err);

#endif
