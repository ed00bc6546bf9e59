/*
 * explain.c -- the EXPLAIN printer of plans (stage 3, `zql explain`, --dump=plan).
 *
 * Pipeline position: planner/build.c makes a zql_plan_t; this file prints it. Nothing
 * here depends on data, pointers or timings, so the text is stable and golden-tested
 * (tests/plan/NAME.plan). EXPLAIN ANALYZE (exec/run.c) appends measured figures per
 * stage below this text.
 *
 *   explain aggregate pageviews_daily
 *   logical:
 *     Scan(event)
 *     -> Filter(type == "pageview")
 *     -> Key(project = context.project, day = bucket(timestamp, day tz "UTC"))
 *     -> Agg{views: count(), bytes: sum(extra.bytes)}  [all mergeable]
 *   physical:
 *     MAP     ...
 *     SHUFFLE ...
 *     REDUCE  ...
 *     COMMIT  ...
 *
 * With program = true (--dump=plan) the bytecode of every program follows, one
 * instruction per line, like jq's --debug-dump-disasm.
 */
#include "runtime/base/zql_common.h"

#include "planner/plan.h"
#include "planner/zql_plan.h"
#include "runtime/base/strbuf.h"
#include "runtime/base/tz.h"

static const char *const opnames[] = {
#define ZQL_OP(name, doc) #name,
#include "planner/oplist.h"
#undef ZQL_OP
};

const char *zql_opcode_name(zql_opcode_t op)
{
  return (unsigned)op < ZQL_ARRAY_LEN(opnames) ? opnames[op] : "?";
}

static void duration(zql_strbuf_t *out, uint64_t v)
{
  static const struct { const char *u; uint64_t ms; } units[] = {
      {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(units); i++)
    if (v >= units[i].ms) {
      zql_strbuf_addf(out, "%" PRIu64 "%s", v / units[i].ms, units[i].u);
      v %= units[i].ms;
    }
}

bool zql_plan_mergeable(const zql_plan_t *p)
{
  if (p->source_agg || p->limit >= 0 || p->norder)
    return false;
  for (uint32_t i = 0; i < p->ntables; i++) {
    const zql_ptable_t *t = &p->tables[i];
    if (t->intermediate || t->prepass || t->has_rank || t->having_reg >= 0)
      return false;
  }
  for (uint32_t i = 0; i < p->nreducers; i++)
    if (!p->reducers[i].has_merge)
      return false;
  return true;
}

bool zql_plan_bucket_of_timestamp(const zql_plan_t *p, int32_t bucket)
{
  for (uint32_t i = 0; i < p->map.n; i++) {
    const zql_insn_t *in = &p->map.code[i];
    if (in->op != ZQL_I_BUCKET || in->c != (uint32_t)bucket)
      continue;
    for (uint32_t e = 0; e < p->nextract; e++)
      if (p->extract[e].reg == in->a && p->extract[e].nfields == 1 &&
          strcmp(p->extract[e].fields[0], "timestamp") == 0)
        return true;
    return false;
  }
  return false;
}

bool zql_plan_recompute_dirty(const zql_plan_t *p)
{
  if (p->is_query || zql_plan_mergeable(p) || p->source_agg || p->limit >= 0 || p->norder ||
      p->ntables != 1)
    return false;
  const zql_ptable_t *t = &p->tables[0];
  if (t->intermediate || t->prepass || t->bucket_col < 0 || t->bucket < 0 ||
      !zql_plan_bucket_of_timestamp(p, t->bucket))
    return false;
  if (t->has_rank) { /* the ranking must stay inside a bucket */
    bool within = false;
    for (uint32_t k = 0; k < t->nrank_within; k++)
      within = within || t->rank_within[k] == (uint32_t)t->bucket_col;
    if (!within)
      return false;
  }
  return true;
}

/* How the results store runs an aggregate compiled for it (runtime/incr.c). */
static void incremental_lines(zql_strbuf_t *out, const zql_plan_t *p)
{
  bool merge = zql_plan_mergeable(p);
  const char *how;
  if (strcmp(p->mode, "replace") != 0 && zql_plan_recompute_dirty(p))
    how = "[recompute-dirty] recompute the time buckets the new events fall in, from all "
          "their events (read by timestamp), and replace exactly their documents (the "
          "outputs cannot absorb new events by merging)";
  else if (strcmp(p->mode, "replace") == 0 || !merge)
    how = merge ? "full recompute into a shadow, swapped in atomically"
                : "[recompute-full] each run recomputes from all events into a shadow, "
                  "swapped in atomically (the outputs cannot absorb new events by merging)";
  else if (strcmp(p->mode, "upsert") == 0)
    how = "recompute the documents the new events touch, from all events";
  else if (strcmp(p->mode, "merge") == 0)
    how = "overwrite the documents the new events touch with their values";
  else
    how = "merge the new events' states into the stored states, guard _hw < hi";
  zql_strbuf_addf(out, "  RUN     events (lo, hi] by _seq; %s\n", how);
  zql_strbuf_adds(out, "  LATE    lateness ");
  if (p->lateness_ms > 0)
    duration(out, (uint64_t)p->lateness_ms);
  else
    zql_strbuf_adds(out, "0s");
  zql_strbuf_addf(out, ", late %s%s%s", p->late ? p->late : "merge", p->sidecar ? " " : "",
                  p->sidecar ? p->sidecar : "");
  if (p->retain_ms >= 0) {
    zql_strbuf_adds(out, "; retain ");
    duration(out, (uint64_t)p->retain_ms);
  }
  zql_strbuf_addc(out, '\n');
}

static void bound_text(zql_strbuf_t *out, const zql_bound_t *b)
{
  if (b->kind == ZQL_BOUND_NOW) {
    zql_strbuf_adds(out, "now()");
    if (b->ms > 0) {
      zql_strbuf_adds(out, " + ");
      duration(out, (uint64_t)b->ms);
    } else if (b->ms < 0) {
      zql_strbuf_adds(out, " - ");
      duration(out, (uint64_t)0 - (uint64_t)b->ms);
    }
  } else {
    zql_civil_t c;
    zql_tz_to_civil(zql_tz_utc(), b->ms, &c);
    zql_strbuf_addf(out, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d.%03dZ", (int64_t)c.year,
                    c.month, c.day, c.hour, c.minute, c.second, c.ms);
  }
}

static void extract_list(zql_strbuf_t *out, const zql_plan_t *p)
{
  zql_strbuf_addc(out, '[');
  for (uint32_t i = 0; i < p->nextract; i++) {
    const zql_pextract_t *x = &p->extract[i];
    if (i)
      zql_strbuf_adds(out, ", ");
    if (x->nfields == 0)
      zql_strbuf_adds(out, "event");
    for (uint32_t j = 0; j < x->nfields; j++)
      zql_strbuf_addf(out, "%s%s", j ? "." : "", x->fields[j]);
  }
  if (p->seq_reg >= 0)
    zql_strbuf_addf(out, "%s_seq", p->nextract ? ", " : "");
  zql_strbuf_addc(out, ']');
}

static void program(zql_strbuf_t *out, const char *title, const zql_prog_t *pr)
{
  zql_strbuf_addf(out, "program %s (%u registers):\n", title, (unsigned)pr->nregs);
  for (uint32_t i = 0; i < pr->n; i++) {
    const zql_insn_t *in = &pr->code[i];
    zql_strbuf_addf(out, "  %04u %-8s flags=%u dst=r%u a=r%u b=%u c=%u\n", (unsigned)i,
                    zql_opcode_name((zql_opcode_t)in->op), (unsigned)in->flags,
                    (unsigned)in->dst, (unsigned)in->a, (unsigned)in->b, (unsigned)in->c);
  }
}

void zql_plan_explain(zql_strbuf_t *out, const zql_plan_t *p, const zql_explain_opts_t *o)
{
  if (p->is_query)
    zql_strbuf_adds(out, "explain query\n");
  else
    zql_strbuf_addf(out, "explain aggregate %s\n", p->name);

  zql_strbuf_adds(out, "logical:\n");
  for (const zql_plnode_t *l = p->logical; l; l = l->child) {
    zql_strbuf_addf(out, "  %s%s", l == p->logical ? "" : "-> ", l->op);
    bool braces = l->text && l->text[0] == '{';
    if (l->text && !braces)
      zql_strbuf_addf(out, "(%s", l->text);
    else if (braces)
      zql_strbuf_adds(out, l->text);
    if (l == p->logical && (p->ts_lo.kind != ZQL_BOUND_NONE || p->ts_hi.kind != ZQL_BOUND_NONE)) {
      zql_strbuf_adds(out, p->ts_lo.edge ? ", timestamp in (" : ", timestamp in [");
      if (p->ts_lo.kind == ZQL_BOUND_NONE)
        zql_strbuf_adds(out, "-inf");
      else
        bound_text(out, &p->ts_lo);
      zql_strbuf_adds(out, ", ");
      if (p->ts_hi.kind == ZQL_BOUND_NONE)
        zql_strbuf_adds(out, "+inf");
      else
        bound_text(out, &p->ts_hi);
      zql_strbuf_addc(out, p->ts_hi.edge ? ']' : ')');
    }
    if (l->text && !braces)
      zql_strbuf_addc(out, ')');
    if (l->mark)
      zql_strbuf_addf(out, "  %s", l->mark);
    zql_strbuf_addc(out, '\n');
  }

  zql_strbuf_adds(out, "physical:\n");
  zql_strbuf_adds(out, "  MAP     scan chunks of <= 8 MiB of events in parallel; extract ");
  extract_list(out, p);
  zql_strbuf_addf(out, "; program of %u instructions; combiner: hash table of partial states "
                  "(add)\n", (unsigned)p->map.n);
  if (p->rowq) {
    zql_strbuf_adds(out, "  ROWS    keep each row");
    if (p->nrow_names) {
      zql_strbuf_adds(out, " with ");
      for (uint32_t i = 0; i < p->nrow_names; i++)
        zql_strbuf_addf(out, "%s%s", i ? ", " : "", p->row_names[i]);
    }
    if (p->limit >= 0)
      zql_strbuf_addf(out, "; keep the first %" PRId64 " per worker [sort+limit]",
                      p->limit + (p->offset > 0 ? p->offset : 0));
    zql_strbuf_addc(out, '\n');
  } else {
    zql_strbuf_addf(out, "  SHUFFLE partition hash(key) %% %u; sort by key; spill sorted runs "
                    "past --mem-limit\n", (unsigned)p->partitions);
  }
  for (uint32_t i = 0; i < p->ntables; i++) {
    const zql_ptable_t *t = &p->tables[i];
    if (t->prepass) {
      zql_strbuf_addf(out, "  PREPASS a first scan of the same rows: each entity's times, "
                      "cut into sessions for key %s (%s) [two-pass]\n", t->name,
                      t->naggs ? t->aggs[0].text : "");
      continue;
    }
    zql_strbuf_adds(out, "  REDUCE  ");
    if (t->name)
      zql_strbuf_addf(out, "table %s: ", t->name);
    uint32_t shared = 0;
    for (uint32_t k = 0; k < t->naggs; k++)
      shared += t->aggs[k].share >= 0;
    zql_strbuf_addf(out, "merge %u state%s per %s", (unsigned)(t->naggs - shared),
                    t->naggs - shared == 1 ? "" : "s", t->intermediate ? "entity" : "group");
    if (shared)
      zql_strbuf_addf(out, " (%u quantile%s read a shared sketch)", (unsigned)shared,
                      shared == 1 ? "" : "s");
    zql_strbuf_adds(out, "; finalize");
    if (t->intermediate) {
      zql_strbuf_addf(out, "; feed table %u (group by) [two-level]\n", (unsigned)i + 1);
      continue;
    }
    if (t->having_reg >= 0)
      zql_strbuf_adds(out, "; having");
    if (t->has_rank)
      zql_strbuf_addf(out, "; rank %s limit %" PRId64 " [sort+limit]",
                      t->rank_desc ? "desc" : "asc", t->rank_limit);
    zql_strbuf_adds(out, "; columns ");
    for (uint32_t c = 0; c < t->ncols; c++)
      zql_strbuf_addf(out, "%s%s", c ? ", " : "", t->cols[c].name);
    zql_strbuf_addc(out, '\n');
  }
  if (p->is_query) {
    zql_strbuf_adds(out, "  OUTPUT  rows");
    if (p->norder)
      zql_strbuf_addf(out, "; order by %u term%s", (unsigned)p->norder,
                      p->norder == 1 ? "" : "s");
    else
      zql_strbuf_adds(out, p->rowq ? " in _seq order" : " in key order");
    if (p->limit >= 0)
      zql_strbuf_addf(out, "; limit %" PRId64, p->limit);
    if (p->offset > 0)
      zql_strbuf_addf(out, " offset %" PRId64, p->offset);
    zql_strbuf_addc(out, '\n');
  } else {
    for (uint32_t i = 0; i < p->ntables; i++) {
      if (p->tables[i].intermediate || p->tables[i].prepass)
        continue;
      zql_strbuf_addf(out, "  COMMIT  mode %s into \"%s\"", p->mode, p->tables[i].into);
      if (p->key_doc)
        zql_strbuf_adds(out, " key doc");
      else if (p->key_template)
        zql_strbuf_addf(out, " key \"%s\"", p->key_template);
      zql_strbuf_addc(out, '\n');
    }
    if (p->incremental)
      incremental_lines(out, p);
  }
  if (o && o->program) {
    if (p->pre.n)
      program(out, "pre-pass", &p->pre);
    program(out, "map", &p->map);
    for (uint32_t i = 0; i < p->ntables; i++) {
      const zql_ptable_t *t = &p->tables[i];
      zql_strbuf_t title = ZQL_STRBUF_INIT;
      zql_strbuf_addf(&title, "final %s", t->name ? t->name : "");
      program(out, title.buf, &t->final);
      zql_strbuf_release(&title);
    }
  }
}
