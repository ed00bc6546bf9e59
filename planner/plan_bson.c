/*
 * plan_bson.c -- plans to BSON and back (stage 3: `zql compile` files, worker tasks).
 *
 * Pipeline position: planner/build.c builds a zql_plan_t; zql_plan_to_bson writes all of
 * it (programs as little-endian instruction blobs, pools as arrays) and
 * zql_plan_from_bson rebuilds an identical plan in a fresh arena. The reader trusts
 * nothing: every opcode, register, pool index and jump target is checked against the
 * plan's own sizes, so a damaged or hostile .zqlc is ZQL_E_BAD_PLAN with a message,
 * never an out-of-bounds access in the VM. A plan of another ZQL_PLAN_FORMAT is refused
 * (recompile it).
 *
 * Layout (one document; names are short but readable):
 *   {format, hash, name, query, src_agg?, ts_lo: [kind, ms], ts_hi, seq: [lo, hi],
 *    consts: [...], calls: [{n, k: [..]}], buckets: [{u, e, tz, w?, o?}],
 *    steps: [[{k, n?, i?}]], docs: [[names]], extract: [{f: [..], r}], seq_reg,
 *    map: {regs, code: <bin>}, tables: [{name?, into, nkeys, aggs: [...], final,
 *    cols: [{n, r, k}], having, rank?: {r, desc, limit, within: [..]}}],
 *    parts, order: [{r, desc}], limit, offset, key?, key_doc, mode, strict, nondet,
 *    logical: [{op, text?, mark?}]}
 */
#include "runtime/base/zql_common.h"

#include <math.h>

#include "planner/plan.h"
#include "planner/zql_plan.h"
#include "runtime/base/error.h"

/* {==== writing ========================================================================== */

static void put_bound(bson_t *d, const char *k, const zql_bound_t *b)
{
  bson_t a;
  bson_append_array_begin(d, k, -1, &a);
  bson_append_int32(&a, "0", 1, (int32_t)b->kind);
  bson_append_int64(&a, "1", 1, b->ms);
  bson_append_bool(&a, "2", 1, b->edge);
  bson_append_array_end(d, &a);
}

static void put_prog(bson_t *d, const char *k, const zql_prog_t *p)
{
  bson_t s;
  bson_append_document_begin(d, k, -1, &s);
  bson_append_int32(&s, "regs", 4, p->nregs);
  uint8_t *buf = bson_malloc0((size_t)p->n * 12 + 1);
  for (uint32_t i = 0; i < p->n; i++) {
    const zql_insn_t *in = &p->code[i];
    uint8_t *o = buf + (size_t)i * 12;
    o[0] = in->op;
    o[1] = in->flags;
    o[2] = (uint8_t)in->dst;
    o[3] = (uint8_t)(in->dst >> 8);
    o[4] = (uint8_t)in->a;
    o[5] = (uint8_t)(in->a >> 8);
    o[6] = (uint8_t)in->b;
    o[7] = (uint8_t)(in->b >> 8);
    for (int j = 0; j < 4; j++)
      o[8 + j] = (uint8_t)(in->c >> (8 * j));
  }
  bson_append_binary(&s, "code", 4, BSON_SUBTYPE_BINARY, buf, p->n * 12);
  bson_free(buf);
  bson_append_document_end(d, &s);
}

static void put_str(bson_t *d, const char *k, const char *v)
{
  if (v)
    bson_append_utf8(d, k, -1, v, -1);
}

static const char *idx(uint32_t i, char buf[16])
{
  const char *key;
  bson_uint32_to_string(i, &key, buf, 16);
  return key;
}

int zql_plan_to_bson(const zql_plan_t *p, bson_t *d)
{
  char kb[16];
  bson_t a, e, f;
  bson_append_int32(d, "format", -1, (int32_t)p->format);
  bson_append_int64(d, "hash", -1, (int64_t)p->source_hash);
  put_str(d, "name", p->name);
  bson_append_bool(d, "query", -1, p->is_query);
  bson_append_bool(d, "rowq", -1, p->rowq);
  bson_append_array_begin(d, "row_names", -1, &a);
  for (uint32_t i = 0; i < p->nrow_names; i++)
    put_str(&a, idx(i, kb), p->row_names[i]);
  bson_append_array_end(d, &a);
  put_str(d, "src_agg", p->source_agg);
  put_bound(d, "ts_lo", &p->ts_lo);
  put_bound(d, "ts_hi", &p->ts_hi);
  bson_append_array_begin(d, "seq", -1, &a);
  bson_append_int64(&a, "0", 1, p->seq_lo);
  bson_append_int64(&a, "1", 1, p->seq_hi);
  bson_append_array_end(d, &a);
  bson_append_array(d, "consts", -1, p->consts);

  bson_append_array_begin(d, "calls", -1, &a);
  for (uint32_t i = 0; i < p->ncalls; i++) {
    bson_append_document_begin(&a, idx(i, kb), -1, &e);
    put_str(&e, "n", p->calls[i].name);
    bson_append_array_begin(&e, "k", 1, &f);
    for (uint16_t j = 0; j < p->calls[i].nargs; j++)
      bson_append_int32(&f, idx(j, kb), -1, p->calls[i].konst[j]);
    bson_append_array_end(&e, &f);
    bson_append_document_end(&a, &e);
  }
  bson_append_array_end(d, &a);

  bson_append_array_begin(d, "buckets", -1, &a);
  for (uint32_t i = 0; i < p->nbuckets; i++) {
    const zql_pbucket_t *b = &p->buckets[i];
    bson_append_document_begin(&a, idx(i, kb), -1, &e);
    put_str(&e, "u", b->unit);
    bson_append_int64(&e, "e", 1, b->every);
    put_str(&e, "tz", b->tz);
    put_str(&e, "w", b->week_start);
    put_str(&e, "o", b->origin);
    bson_append_document_end(&a, &e);
  }
  bson_append_array_end(d, &a);

  bson_append_array_begin(d, "steps", -1, &a);
  for (uint32_t i = 0; i < p->nsteps; i++) {
    bson_append_array_begin(&a, idx(i, kb), -1, &e);
    for (uint32_t j = 0; j < p->steps[i].n; j++) {
      const zql_step_t *s = &p->steps[i].steps[j];
      bson_t sd;
      char kb2[16];
      bson_append_document_begin(&e, idx(j, kb2), -1, &sd);
      bson_append_int32(&sd, "k", 1, (int32_t)s->kind);
      if (s->kind == ZQL_STEP_FIELD)
        put_str(&sd, "n", s->name);
      if (s->kind == ZQL_STEP_INDEX)
        bson_append_int64(&sd, "i", 1, s->index);
      bson_append_document_end(&e, &sd);
    }
    bson_append_array_end(&a, &e);
  }
  bson_append_array_end(d, &a);

  bson_append_array_begin(d, "docs", -1, &a);
  for (uint32_t i = 0; i < p->ndocs; i++) {
    bson_append_array_begin(&a, idx(i, kb), -1, &e);
    for (uint32_t j = 0; j < p->docs[i].n; j++) {
      char kb2[16];
      put_str(&e, idx(j, kb2), p->docs[i].names[j]);
    }
    bson_append_array_end(&a, &e);
  }
  bson_append_array_end(d, &a);

  bson_append_array_begin(d, "extract", -1, &a);
  for (uint32_t i = 0; i < p->nextract; i++) {
    bson_append_document_begin(&a, idx(i, kb), -1, &e);
    bson_append_array_begin(&e, "f", 1, &f);
    for (uint32_t j = 0; j < p->extract[i].nfields; j++) {
      char kb2[16];
      put_str(&f, idx(j, kb2), p->extract[i].fields[j]);
    }
    bson_append_array_end(&e, &f);
    bson_append_int32(&e, "r", 1, p->extract[i].reg);
    bson_append_document_end(&a, &e);
  }
  bson_append_array_end(d, &a);
  bson_append_int32(d, "seq_reg", -1, p->seq_reg);
  put_prog(d, "map", &p->map);
  if (p->pre.n)
    put_prog(d, "pre", &p->pre);
  bson_append_array_begin(d, "reducers", -1, &a);
  for (uint32_t i = 0; i < p->nreducers; i++) {
    const zql_preducer_t *u = &p->reducers[i];
    bson_append_document_begin(&a, idx(i, kb), -1, &e);
    put_str(&e, "name", u->name);
    bson_append_bool(&e, "has_merge", -1, u->has_merge);
    put_prog(&e, "init", &u->init);
    put_prog(&e, "add", &u->add);
    if (u->has_merge)
      put_prog(&e, "merge", &u->merge);
    put_prog(&e, "final", &u->final);
    bson_append_document_end(&a, &e);
  }
  bson_append_array_end(d, &a);

  bson_append_array_begin(d, "tables", -1, &a);
  for (uint32_t i = 0; i < p->ntables; i++) {
    const zql_ptable_t *t = &p->tables[i];
    bson_append_document_begin(&a, idx(i, kb), -1, &e);
    put_str(&e, "name", t->name);
    put_str(&e, "into", t->into);
    bson_append_bool(&e, "intermediate", -1, t->intermediate);
    bson_append_bool(&e, "prepass", -1, t->prepass);
    bson_append_int32(&e, "nkeys", -1, (int32_t)t->nkeys);
    bson_append_array_begin(&e, "aggs", -1, &f);
    for (uint32_t j = 0; j < t->naggs; j++) {
      const zql_pagg_t *g = &t->aggs[j];
      bson_t ad, ed;
      char kb2[16];
      bson_append_document_begin(&f, idx(j, kb2), -1, &ad);
      put_str(&ad, "func", g->func);
      put_str(&ad, "inner", g->inner);
      bson_append_int32(&ad, "reducer", -1, g->reducer);
      bson_append_int32(&ad, "share", -1, g->share);
      put_str(&ad, "text", g->text);
      bson_append_int64(&ad, "n", -1, g->n);
      bson_append_bool(&ad, "has_n", -1, g->has_n);
      bson_append_bool(&ad, "else_hll", -1, g->else_hll);
      bson_append_double(&ad, "q", -1, g->q);
      bson_append_double(&ad, "compression", -1, g->compression);
      bson_append_array_begin(&ad, "edges", -1, &ed);
      for (uint32_t k = 0; k < g->nedges; k++) {
        char kb3[16];
        bson_append_double(&ed, idx(k, kb3), -1, g->edges[k]);
      }
      bson_append_array_end(&ad, &ed);
      bson_append_int32(&ad, "nconds", -1, (int32_t)g->nconds);
      bson_append_int64(&ad, "window_ms", -1, g->window_ms);
      put_str(&ad, "pattern", g->pattern);
      bson_append_bool(&ad, "has_by", -1, g->has_by);
      bson_append_bool(&ad, "has_weight", -1, g->has_weight);
      bson_append_bool(&ad, "nondet", -1, g->nondet);
      bson_append_document_end(&f, &ad);
    }
    bson_append_array_end(&e, &f);
    put_prog(&e, "final", &t->final);
    bson_append_array_begin(&e, "cols", -1, &f);
    for (uint32_t j = 0; j < t->ncols; j++) {
      bson_t cd;
      char kb2[16];
      bson_append_document_begin(&f, idx(j, kb2), -1, &cd);
      put_str(&cd, "n", t->cols[j].name);
      bson_append_int32(&cd, "r", 1, t->cols[j].reg);
      bson_append_bool(&cd, "k", 1, t->cols[j].is_key);
      bson_append_int32(&cd, "slot", -1, t->cols[j].slot);
      bson_append_document_end(&f, &cd);
    }
    bson_append_array_end(&e, &f);
    bson_append_int32(&e, "having", -1, t->having_reg);
    bson_append_int32(&e, "bcol", -1, t->bucket_col);
    bson_append_int32(&e, "bucket", -1, t->bucket);
    bson_append_int32(&e, "nslot", -1, t->count_slot);
    if (t->has_rank) {
      bson_t rd, wd;
      bson_append_document_begin(&e, "rank", -1, &rd);
      bson_append_int32(&rd, "r", 1, t->rank_reg);
      bson_append_bool(&rd, "desc", -1, t->rank_desc);
      bson_append_int64(&rd, "limit", -1, t->rank_limit);
      bson_append_array_begin(&rd, "within", -1, &wd);
      for (uint32_t j = 0; j < t->nrank_within; j++) {
        char kb2[16];
        bson_append_int32(&wd, idx(j, kb2), -1, (int32_t)t->rank_within[j]);
      }
      bson_append_array_end(&rd, &wd);
      bson_append_document_end(&e, &rd);
    }
    bson_append_document_end(&a, &e);
  }
  bson_append_array_end(d, &a);

  bson_append_int32(d, "parts", -1, (int32_t)p->partitions);
  bson_append_array_begin(d, "order", -1, &a);
  for (uint32_t i = 0; i < p->norder; i++) {
    bson_append_document_begin(&a, idx(i, kb), -1, &e);
    bson_append_int32(&e, "r", 1, p->order[i].reg);
    bson_append_bool(&e, "desc", -1, p->order[i].desc);
    bson_append_document_end(&a, &e);
  }
  bson_append_array_end(d, &a);
  bson_append_int64(d, "limit", -1, p->limit);
  bson_append_int64(d, "offset", -1, p->offset);
  put_str(d, "key", p->key_template);
  bson_append_bool(d, "key_doc", -1, p->key_doc);
  put_str(d, "mode", p->mode);
  bson_append_bool(d, "strict", -1, p->strict);
  bson_append_bool(d, "nondet", -1, p->nondet);
  bson_append_bool(d, "incremental", -1, p->incremental);
  bson_append_int64(d, "lateness", -1, p->lateness_ms);
  put_str(d, "late", p->late);
  put_str(d, "sidecar", p->sidecar);
  bson_append_int64(d, "settle", -1, p->settle_ms);
  bson_append_int64(d, "retain", -1, p->retain_ms);
  put_str(d, "schedule", p->schedule);
  bson_append_array_begin(d, "logical", -1, &a);
  uint32_t li = 0;
  for (const zql_plnode_t *l = p->logical; l; l = l->child) {
    bson_append_document_begin(&a, idx(li++, kb), -1, &e);
    put_str(&e, "op", l->op);
    put_str(&e, "text", l->text);
    put_str(&e, "mark", l->mark);
    bson_append_document_end(&a, &e);
  }
  bson_append_array_end(d, &a);
  return 0;
}

/* }==== */

/* {==== reading ========================================================================== */

typedef struct rd {
  zql_plan_t *p;
  zql_strbuf_t *err;
  int bad;
} rd_t;

static void bad(rd_t *r, const char *what)
{
  if (!r->bad && r->err)
    zql_strbuf_addf(r->err, "invalid compiled plan: %s", what);
  r->bad = ZQL_E_BAD_PLAN;
}

static bool find(rd_t *r, const bson_iter_t *parent, const char *key, bson_iter_t *out)
{
  bson_iter_t it = *parent;
  if (bson_iter_find(&it, key)) {
    *out = it;
    return true;
  }
  return false;
}

static int64_t get_int(rd_t *r, const bson_iter_t *doc, const char *key, int64_t lo, int64_t hi)
{
  bson_iter_t it;
  if (!find(r, doc, key, &it) || !(BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_INT64(&it))) {
    bad(r, key);
    return lo;
  }
  int64_t v = bson_iter_as_int64(&it);
  if (v < lo || v > hi) {
    bad(r, key);
    return lo;
  }
  return v;
}

static bool get_bool(rd_t *r, const bson_iter_t *doc, const char *key)
{
  bson_iter_t it;
  if (!find(r, doc, key, &it) || !BSON_ITER_HOLDS_BOOL(&it)) {
    bad(r, key);
    return false;
  }
  return bson_iter_bool(&it);
}

static double get_double(rd_t *r, const bson_iter_t *doc, const char *key)
{
  bson_iter_t it;
  if (!find(r, doc, key, &it) || !BSON_ITER_HOLDS_DOUBLE(&it)) {
    bad(r, key);
    return 0;
  }
  return bson_iter_double(&it);
}

/* An optional string (NULL when absent); a present non-string is bad. */
static const char *get_str(rd_t *r, const bson_iter_t *doc, const char *key, bool required)
{
  bson_iter_t it;
  if (!find(r, doc, key, &it)) {
    if (required)
      bad(r, key);
    return NULL;
  }
  if (!BSON_ITER_HOLDS_UTF8(&it)) {
    bad(r, key);
    return NULL;
  }
  uint32_t len;
  const char *s = bson_iter_utf8(&it, &len);
  char *c = zql_arena_strndup(r->p->arena, s, len);
  if (!c)
    bad(r, "out of memory");
  return c;
}

/* Enter an array or document: *n elements, it positioned before the first. */
static bool enter(rd_t *r, const bson_iter_t *doc, const char *key, bool array,
                  bson_iter_t *child, uint32_t *n)
{
  bson_iter_t it;
  if (!find(r, doc, key, &it) ||
      !(array ? BSON_ITER_HOLDS_ARRAY(&it) : BSON_ITER_HOLDS_DOCUMENT(&it)) ||
      !bson_iter_recurse(&it, child)) {
    bad(r, key);
    return false;
  }
  uint32_t k = 0;
  bson_iter_t c = *child;
  while (bson_iter_next(&c))
    k++;
  *n = k;
  return true;
}

static void *ralloc(rd_t *r, size_t count, size_t size)
{
  void *m = zql_arena_calloc(r->p->arena, count ? count : 1, size);
  if (!m)
    bad(r, "out of memory");
  return m;
}

static void get_bound(rd_t *r, const bson_iter_t *doc, const char *key, zql_bound_t *b)
{
  bson_iter_t a;
  uint32_t n;
  if (!enter(r, doc, key, true, &a, &n) || n != 3) {
    bad(r, key);
    return;
  }
  bson_iter_t it = a;
  int64_t kind = get_int(r, &it, "0", 0, ZQL_BOUND_NOW);
  b->kind = (zql_bound_kind_t)kind;
  b->ms = get_int(r, &a, "1", INT64_MIN, INT64_MAX);
  b->edge = get_bool(r, &a, "2");
}

static void get_prog(rd_t *r, const bson_iter_t *doc, const char *key, zql_prog_t *pr)
{
  bson_iter_t s;
  uint32_t n;
  if (!enter(r, doc, key, false, &s, &n))
    return;
  pr->nregs = (uint16_t)get_int(r, &s, "regs", 0, 60000);
  bson_iter_t it;
  if (!find(r, &s, "code", &it) || !BSON_ITER_HOLDS_BINARY(&it)) {
    bad(r, "program code");
    return;
  }
  bson_subtype_t st;
  uint32_t len;
  const uint8_t *d;
  bson_iter_binary(&it, &st, &len, &d);
  if (len % 12 || len == 0) {
    bad(r, "program code length");
    return;
  }
  pr->n = pr->cap = len / 12;
  pr->code = ralloc(r, pr->n, sizeof *pr->code);
  if (!pr->code)
    return;
  for (uint32_t i = 0; i < pr->n; i++) {
    const uint8_t *o = d + (size_t)i * 12;
    zql_insn_t *in = &pr->code[i];
    in->op = o[0];
    in->flags = o[1];
    in->dst = (uint16_t)(o[2] | o[3] << 8);
    in->a = (uint16_t)(o[4] | o[5] << 8);
    in->b = (uint16_t)(o[6] | o[7] << 8);
    in->c = (uint32_t)o[8] | (uint32_t)o[9] << 8 | (uint32_t)o[10] << 16 | (uint32_t)o[11] << 24;
  }
}

/* Every index an instruction holds, against the plan's sizes. */
static void check_prog(rd_t *r, const zql_prog_t *pr, bool final, uint32_t table)
{
  const zql_plan_t *p = r->p;
  uint32_t R = pr->nregs;
  if (pr->n == 0 || pr->code[pr->n - 1].op != ZQL_I_HALT) {
    bad(r, "a program does not end with HALT");
    return;
  }
  for (uint32_t i = 0; i < pr->n && !r->bad; i++) {
    const zql_insn_t *in = &pr->code[i];
    bool ok = in->op < ZQL_I__COUNT;
    uint32_t nin = 0; /* registers a .. a + nin - 1 are read */
    bool dst = true, a1 = false;
    switch ((zql_opcode_t)in->op) {
    case ZQL_I_LOADK: ok = ok && in->c < p->nconsts; break;
    case ZQL_I_MOVE: case ZQL_I_NEG: case ZQL_I_PLUS: case ZQL_I_NOT: case ZQL_I_IS:
    case ZQL_I_DEF: a1 = true; break;
    case ZQL_I_MISSING: break;
    case ZQL_I_STEPS: a1 = true; ok = ok && in->c < p->nsteps; break;
    case ZQL_I_ADD: case ZQL_I_SUB: case ZQL_I_MUL: case ZQL_I_DIV: case ZQL_I_MOD:
    case ZQL_I_EQ: case ZQL_I_NE: case ZQL_I_LT: case ZQL_I_LE: case ZQL_I_GT:
    case ZQL_I_GE: case ZQL_I_AND: case ZQL_I_OR: case ZQL_I_COALESCE: case ZQL_I_IN:
      a1 = true;
      ok = ok && in->b < R;
      break;
    case ZQL_I_MATCH:
      a1 = true;
      ok = ok && in->c < p->nconsts;
      break;
    case ZQL_I_IF: a1 = true; ok = ok && in->b < R && in->c < R; break;
    case ZQL_I_CALL:
      nin = in->b;
      ok = ok && in->c < p->ncalls && p->calls[in->c].nargs == in->b;
      break;
    case ZQL_I_BUCKET: a1 = true; ok = ok && in->c < p->nbuckets; break;
    case ZQL_I_ARRAY: nin = in->b; break;
    case ZQL_I_DOC: nin = in->b; ok = ok && in->c < p->ndocs && p->docs[in->c].n == in->b; break;
    case ZQL_I_JMP: dst = false; ok = ok && in->c < pr->n; break;
    case ZQL_I_JNT: case ZQL_I_JNULL: case ZQL_I_CHKERR:
      dst = false;
      a1 = true;
      ok = ok && in->c < pr->n;
      break;
    case ZQL_I_ITER: /* iterators live in the event programs only */
      a1 = true;
      ok = ok && in->c < pr->n && (pr == &p->map || pr == &p->pre);
      break;
    case ZQL_I_NEXT:
      a1 = true;
      ok = ok && in->c < pr->n && (pr == &p->map || pr == &p->pre);
      break;
    case ZQL_I_SESSION: /* the map program reads a sessions table of the pre-pass */
      a1 = true;
      ok = ok && pr == &p->map && in->b < R && in->c < p->ntables && p->tables[in->c].prepass;
      break;
    case ZQL_I_GROUP: /* the map program, or a per stage's final program feeding the next */
      dst = false;
      nin = in->b;
      ok = ok && (!final || p->tables[table].intermediate) && in->c < p->ntables &&
           in->b == p->tables[in->c].nkeys && (!final || in->c > table) &&
           p->tables[in->c].prepass == (pr == &p->pre);
      break;
    case ZQL_I_ADDAGG:
      dst = false;
      nin = in->b;
      ok = ok && (!final || p->tables[table].intermediate) && in->dst < p->ntables &&
           in->c < p->tables[in->dst].naggs && in->b >= 1 && (!final || in->dst > table) &&
           p->tables[in->dst].aggs[in->c].share < 0 &&
           p->tables[in->dst].prepass == (pr == &p->pre);
      break;
    case ZQL_I_EMIT:
      dst = false;
      nin = (uint32_t)in->b + 2;
      ok = ok && !final && in->c < p->ntables && in->b == p->tables[in->c].nkeys &&
           p->tables[in->c].naggs > 0 && p->tables[in->c].aggs[0].share < 0;
      break;
    case ZQL_I_ROW:
      dst = false;
      nin = in->b;
      ok = ok && !final && p->rowq && in->b == 1 + p->nrow_names + p->norder;
      break;
    case ZQL_I_FINAL: ok = ok && final && in->c < p->tables[table].naggs; break;
    case ZQL_I_KEY: ok = ok && final && in->c < p->tables[table].nkeys; break;
    case ZQL_I_HALT: dst = false; break;
    default: ok = false;
    }
    if (a1)
      nin = nin ? nin : 1;
    if (nin && (uint32_t)in->a + nin > R)
      ok = false;
    if (dst && in->dst >= R)
      ok = false;
    if (!ok) {
      char msg[96];
      snprintf(msg, sizeof msg, "instruction %u (%s) refers outside the plan", i,
               in->op < ZQL_I__COUNT ? zql_opcode_name((zql_opcode_t)in->op) : "?");
      bad(r, msg);
    }
  }
  if (r->bad)
    return;
  /* Termination: every loop of a program is an iterator loop. Each iterator register is
   * set by exactly one ITER; a jump that goes backward (or to itself) must land on the NEXT
   * of an iterator that is not re-set between that NEXT and the jump. So each backward jump
   * consumes an element of a finite array, and every program ends. */
  for (uint32_t i = 0; i < pr->n && !r->bad; i++) {
    const zql_insn_t *in = &pr->code[i];
    if (in->op == ZQL_I_ITER) {
      for (uint32_t j = 0; j < pr->n; j++)
        if (j != i && pr->code[j].op == ZQL_I_ITER && pr->code[j].dst == in->dst)
          bad(r, "an iterator is set twice");
    }
    bool jumps = in->op == ZQL_I_JMP || in->op == ZQL_I_JNT || in->op == ZQL_I_JNULL ||
                 in->op == ZQL_I_CHKERR || in->op == ZQL_I_ITER || in->op == ZQL_I_NEXT;
    if (!jumps || in->c > i)
      continue;
    const zql_insn_t *t = &pr->code[in->c];
    /* (a finished inner loop's NEXT continues the outer loop: another iterator) */
    if (t->op != ZQL_I_NEXT || in->c == i || (in->op == ZQL_I_NEXT && in->a == t->a)) {
      bad(r, "a backward jump that is not an iterator loop");
      break;
    }
    for (uint32_t j = in->c + 1; j <= i; j++)
      if (pr->code[j].op == ZQL_I_ITER && pr->code[j].dst == t->a)
        bad(r, "an iterator loop that resets its own iterator");
  }
}

int zql_plan_from_bson(const uint8_t *data, size_t len, zql_plan_t **out, zql_strbuf_t *err)
{
  *out = NULL;
  bson_t doc;
  bson_iter_t top;
  if (!bson_init_static(&doc, data, len) || !bson_iter_init(&top, &doc)) {
    if (err)
      zql_strbuf_adds(err, "invalid compiled plan: not a BSON document");
    return ZQL_E_BAD_PLAN;
  }
  zql_plan_t *p = zql_plan_new_empty();
  if (!p) {
    if (err)
      zql_strbuf_adds(err, "out of memory");
    return ZQL_E_NOMEM;
  }
  rd_t r = {p, err, 0};
  int64_t fmt = get_int(&r, &top, "format", 0, INT32_MAX);
  if (!r.bad && fmt != ZQL_PLAN_FORMAT) {
    if (err)
      zql_strbuf_addf(err, "compiled plan format %" PRId64 ", this zql runs format %d: "
                      "recompile it with `zql compile`", fmt, ZQL_PLAN_FORMAT);
    zql_plan_free(p);
    return ZQL_E_BAD_PLAN;
  }
  p->source_hash = (uint64_t)get_int(&r, &top, "hash", INT64_MIN, INT64_MAX);
  p->name = get_str(&r, &top, "name", true);
  p->is_query = get_bool(&r, &top, "query");
  p->rowq = get_bool(&r, &top, "rowq");
  {
    bson_iter_t rn;
    uint32_t nn;
    if (enter(&r, &top, "row_names", true, &rn, &nn)) {
      p->nrow_names = nn;
      p->row_names = ralloc(&r, nn, sizeof(char *));
      for (uint32_t i = 0; i < nn && !r.bad && bson_iter_next(&rn); i++) {
        uint32_t l;
        if (!BSON_ITER_HOLDS_UTF8(&rn)) {
          bad(&r, "row name");
          break;
        }
        const char *s = bson_iter_utf8(&rn, &l);
        p->row_names[i] = zql_arena_strndup(p->arena, s, l);
      }
    }
  }
  p->source_agg = get_str(&r, &top, "src_agg", false);
  get_bound(&r, &top, "ts_lo", &p->ts_lo);
  get_bound(&r, &top, "ts_hi", &p->ts_hi);
  bson_iter_t a, e, f;
  uint32_t n, m;
  if (enter(&r, &top, "seq", true, &a, &n) && n == 2) {
    p->seq_lo = get_int(&r, &a, "0", INT64_MIN, INT64_MAX);
    p->seq_hi = get_int(&r, &a, "1", INT64_MIN, INT64_MAX);
  }
  /* constants: copied as one array */
  bson_iter_t it;
  if (find(&r, &top, "consts", &it) && BSON_ITER_HOLDS_ARRAY(&it)) {
    const uint8_t *cd;
    uint32_t cl;
    bson_iter_array(&it, &cl, &cd);
    bson_t ca;
    if (bson_init_static(&ca, cd, cl)) {
      bson_t *copy = bson_copy(&ca);
      if (copy) {
        bson_destroy(p->consts);
        p->consts = copy;
        p->nconsts = bson_count_keys(p->consts);
      } else {
        bad(&r, "out of memory");
      }
    } else {
      bad(&r, "consts");
    }
  } else {
    bad(&r, "consts");
  }

  if (enter(&r, &top, "calls", true, &a, &n)) {
    p->ncalls = n;
    p->calls = ralloc(&r, n, sizeof *p->calls);
    for (uint32_t i = 0; i < n && !r.bad && bson_iter_next(&a); i++) {
      if (!BSON_ITER_HOLDS_DOCUMENT(&a) || !bson_iter_recurse(&a, &e)) {
        bad(&r, "calls");
        break;
      }
      p->calls[i].name = get_str(&r, &e, "n", true);
      if (enter(&r, &e, "k", true, &f, &m)) {
        p->calls[i].nargs = (uint16_t)(m > 1000 ? 0 : m);
        p->calls[i].konst = ralloc(&r, m, sizeof(int32_t));
        for (uint32_t j = 0; j < m && !r.bad && bson_iter_next(&f); j++) {
          int64_t k = BSON_ITER_HOLDS_INT32(&f) ? bson_iter_int32(&f) : INT64_MIN;
          if (k < -1 || k >= (int64_t)p->nconsts)
            bad(&r, "call constant");
          else
            p->calls[i].konst[j] = (int32_t)k;
        }
      }
    }
  }
  if (enter(&r, &top, "buckets", true, &a, &n)) {
    p->nbuckets = n;
    p->buckets = ralloc(&r, n, sizeof *p->buckets);
    for (uint32_t i = 0; i < n && !r.bad && bson_iter_next(&a); i++) {
      if (!BSON_ITER_HOLDS_DOCUMENT(&a) || !bson_iter_recurse(&a, &e)) {
        bad(&r, "buckets");
        break;
      }
      p->buckets[i].unit = get_str(&r, &e, "u", true);
      p->buckets[i].every = get_int(&r, &e, "e", 1, INT64_MAX);
      p->buckets[i].tz = get_str(&r, &e, "tz", true);
      p->buckets[i].week_start = get_str(&r, &e, "w", false);
      p->buckets[i].origin = get_str(&r, &e, "o", false);
    }
  }
  if (enter(&r, &top, "steps", true, &a, &n)) {
    p->nsteps = n;
    p->steps = ralloc(&r, n, sizeof *p->steps);
    for (uint32_t i = 0; i < n && !r.bad && bson_iter_next(&a); i++) {
      if (!BSON_ITER_HOLDS_ARRAY(&a) || !bson_iter_recurse(&a, &e)) {
        bad(&r, "steps");
        break;
      }
      bson_iter_t c = e;
      m = 0;
      while (bson_iter_next(&c))
        m++;
      p->steps[i].n = m;
      p->steps[i].steps = ralloc(&r, m, sizeof(zql_step_t));
      for (uint32_t j = 0; j < m && !r.bad && bson_iter_next(&e); j++) {
        if (!BSON_ITER_HOLDS_DOCUMENT(&e) || !bson_iter_recurse(&e, &f)) {
          bad(&r, "step");
          break;
        }
        zql_step_t *s = &p->steps[i].steps[j];
        s->kind = (zql_step_kind_t)get_int(&r, &f, "k", ZQL_STEP_FIELD, ZQL_STEP_ALL);
        if (s->kind == ZQL_STEP_FIELD)
          s->name = get_str(&r, &f, "n", true);
        if (s->kind == ZQL_STEP_INDEX)
          s->index = get_int(&r, &f, "i", INT64_MIN, INT64_MAX);
      }
    }
  }
  if (enter(&r, &top, "docs", true, &a, &n)) {
    p->ndocs = n;
    p->docs = ralloc(&r, n, sizeof *p->docs);
    for (uint32_t i = 0; i < n && !r.bad && bson_iter_next(&a); i++) {
      if (!BSON_ITER_HOLDS_ARRAY(&a) || !bson_iter_recurse(&a, &e)) {
        bad(&r, "docs");
        break;
      }
      bson_iter_t c = e;
      m = 0;
      while (bson_iter_next(&c))
        m++;
      p->docs[i].n = m;
      p->docs[i].names = ralloc(&r, m, sizeof(char *));
      for (uint32_t j = 0; j < m && !r.bad && bson_iter_next(&e); j++) {
        uint32_t l;
        if (!BSON_ITER_HOLDS_UTF8(&e)) {
          bad(&r, "doc field name");
          break;
        }
        const char *s = bson_iter_utf8(&e, &l);
        p->docs[i].names[j] = zql_arena_strndup(p->arena, s, l);
      }
    }
  }
  p->seq_reg = (int32_t)get_int(&r, &top, "seq_reg", -1, 59999);
  get_prog(&r, &top, "map", &p->map);
  {
    bson_iter_t pre;
    if (find(&r, &top, "pre", &pre)) {
      get_prog(&r, &top, "pre", &p->pre);
      if (p->pre.nregs != p->map.nregs)
        bad(&r, "the pre-pass program must share the map program's registers");
    }
  }
  if (enter(&r, &top, "extract", true, &a, &n)) {
    p->nextract = n;
    p->extract = ralloc(&r, n, sizeof *p->extract);
    for (uint32_t i = 0; i < n && !r.bad && bson_iter_next(&a); i++) {
      if (!BSON_ITER_HOLDS_DOCUMENT(&a) || !bson_iter_recurse(&a, &e)) {
        bad(&r, "extract");
        break;
      }
      p->extract[i].reg = (uint16_t)get_int(&r, &e, "r", 0, p->map.nregs ? p->map.nregs - 1 : 0);
      if (enter(&r, &e, "f", true, &f, &m)) {
        p->extract[i].nfields = m;
        p->extract[i].fields = ralloc(&r, m, sizeof(char *));
        for (uint32_t j = 0; j < m && !r.bad && bson_iter_next(&f); j++) {
          uint32_t l;
          if (!BSON_ITER_HOLDS_UTF8(&f)) {
            bad(&r, "extract field");
            break;
          }
          const char *s = bson_iter_utf8(&f, &l);
          p->extract[i].fields[j] = zql_arena_strndup(p->arena, s, l);
        }
      }
    }
  }
  if (p->seq_reg >= (int32_t)p->map.nregs)
    bad(&r, "seq_reg");
  if (enter(&r, &top, "reducers", true, &a, &n)) {
    p->nreducers = n;
    p->reducers = ralloc(&r, n, sizeof *p->reducers);
    for (uint32_t i = 0; i < n && !r.bad && bson_iter_next(&a); i++) {
      zql_preducer_t *u = &p->reducers[i];
      if (!BSON_ITER_HOLDS_DOCUMENT(&a) || !bson_iter_recurse(&a, &e)) {
        bad(&r, "reducers");
        break;
      }
      u->name = get_str(&r, &e, "name", true);
      u->has_merge = get_bool(&r, &e, "has_merge");
      get_prog(&r, &e, "init", &u->init);
      get_prog(&r, &e, "add", &u->add);
      if (u->has_merge)
        get_prog(&r, &e, "merge", &u->merge);
      get_prog(&r, &e, "final", &u->final);
    }
  }

  if (enter(&r, &top, "tables", true, &a, &n)) {
    p->ntables = n;
    p->tables = ralloc(&r, n, sizeof *p->tables);
    for (uint32_t i = 0; i < n && !r.bad && bson_iter_next(&a); i++) {
      zql_ptable_t *t = &p->tables[i];
      if (!BSON_ITER_HOLDS_DOCUMENT(&a) || !bson_iter_recurse(&a, &e)) {
        bad(&r, "tables");
        break;
      }
      t->name = get_str(&r, &e, "name", false);
      t->into = get_str(&r, &e, "into", true);
      t->intermediate = get_bool(&r, &e, "intermediate");
      t->prepass = get_bool(&r, &e, "prepass");
      t->nkeys = (uint32_t)get_int(&r, &e, "nkeys", 0, 1000);
      if (enter(&r, &e, "aggs", true, &f, &m)) {
        t->naggs = m;
        t->aggs = ralloc(&r, m, sizeof *t->aggs);
        for (uint32_t j = 0; j < m && !r.bad && bson_iter_next(&f); j++) {
          bson_iter_t g, ed;
          uint32_t ne;
          zql_pagg_t *ag = &t->aggs[j];
          if (!BSON_ITER_HOLDS_DOCUMENT(&f) || !bson_iter_recurse(&f, &g)) {
            bad(&r, "aggs");
            break;
          }
          ag->func = get_str(&r, &g, "func", true);
          ag->inner = get_str(&r, &g, "inner", false);
          ag->reducer = (int32_t)get_int(&r, &g, "reducer", -1, (int64_t)p->nreducers - 1);
          ag->share = (int32_t)get_int(&r, &g, "share", -1, (int64_t)j - 1);
          if (ag->share >= 0 && (t->aggs[ag->share].share >= 0 || !ag->func ||
                                 !t->aggs[ag->share].func ||
                                 strcmp(t->aggs[ag->share].func, ag->func) != 0))
            bad(&r, "a shared aggregator state of another kind");
          ag->text = get_str(&r, &g, "text", false);
          ag->n = get_int(&r, &g, "n", INT64_MIN, INT64_MAX);
          ag->has_n = get_bool(&r, &g, "has_n");
          ag->else_hll = get_bool(&r, &g, "else_hll");
          ag->q = get_double(&r, &g, "q");
          ag->compression = get_double(&r, &g, "compression");
          if (enter(&r, &g, "edges", true, &ed, &ne)) {
            ag->nedges = ne;
            ag->edges = ralloc(&r, ne, sizeof(double));
            for (uint32_t k = 0; k < ne && !r.bad && bson_iter_next(&ed); k++)
              ag->edges[k] = BSON_ITER_HOLDS_DOUBLE(&ed) ? bson_iter_double(&ed) : NAN;
          }
          ag->nconds = (uint32_t)get_int(&r, &g, "nconds", 0, 64);
          ag->window_ms = get_int(&r, &g, "window_ms", INT64_MIN, INT64_MAX);
          ag->pattern = get_str(&r, &g, "pattern", false);
          ag->has_by = get_bool(&r, &g, "has_by");
          ag->has_weight = get_bool(&r, &g, "has_weight");
          ag->nondet = get_bool(&r, &g, "nondet");
        }
      }
      get_prog(&r, &e, "final", &t->final);
      if (enter(&r, &e, "cols", true, &f, &m)) {
        t->ncols = m;
        t->cols = ralloc(&r, m, sizeof *t->cols);
        for (uint32_t j = 0; j < m && !r.bad && bson_iter_next(&f); j++) {
          bson_iter_t g;
          if (!BSON_ITER_HOLDS_DOCUMENT(&f) || !bson_iter_recurse(&f, &g)) {
            bad(&r, "cols");
            break;
          }
          t->cols[j].name = get_str(&r, &g, "n", true);
          t->cols[j].reg = (uint16_t)get_int(&r, &g, "r", 0, t->final.nregs ? t->final.nregs - 1 : 0);
          t->cols[j].is_key = get_bool(&r, &g, "k");
          t->cols[j].slot = (int32_t)get_int(&r, &g, "slot", -1, (int64_t)t->naggs - 1);
        }
      }
      t->having_reg = (int32_t)get_int(&r, &e, "having", -1, t->final.nregs ? t->final.nregs - 1 : -1);
      t->bucket_col = (int32_t)get_int(&r, &e, "bcol", -1, (int64_t)t->nkeys - 1);
      t->bucket = (int32_t)get_int(&r, &e, "bucket", -1, (int64_t)p->nbuckets - 1);
      t->count_slot = (int32_t)get_int(&r, &e, "nslot", -1, (int64_t)t->naggs - 1);
      if ((t->bucket_col < 0) != (t->bucket < 0) ||
          (t->count_slot >= 0 && strcmp(t->aggs[t->count_slot].func, "count") != 0))
        bad(&r, "bucket or count slot");
      bson_iter_t rk;
      if (find(&r, &e, "rank", &rk)) {
        bson_iter_t rd, wd;
        uint32_t nw;
        if (!BSON_ITER_HOLDS_DOCUMENT(&rk) || !bson_iter_recurse(&rk, &rd)) {
          bad(&r, "rank");
        } else {
          t->has_rank = true;
          t->rank_reg = (uint16_t)get_int(&r, &rd, "r", 0, t->final.nregs ? t->final.nregs - 1 : 0);
          t->rank_desc = get_bool(&r, &rd, "desc");
          t->rank_limit = get_int(&r, &rd, "limit", 0, INT64_MAX);
          if (enter(&r, &rd, "within", true, &wd, &nw)) {
            t->nrank_within = nw;
            t->rank_within = ralloc(&r, nw, sizeof(uint32_t));
            for (uint32_t j = 0; j < nw && !r.bad && bson_iter_next(&wd); j++) {
              int64_t c = BSON_ITER_HOLDS_INT32(&wd) ? bson_iter_int32(&wd) : -1;
              if (c < 0 || c >= (int64_t)t->ncols)
                bad(&r, "rank within");
              else
                t->rank_within[j] = (uint32_t)c;
            }
          }
        }
      }
    }
  }
  p->partitions = (uint32_t)get_int(&r, &top, "parts", 1, 4096);
  if (enter(&r, &top, "order", true, &a, &n)) {
    p->norder = n;
    p->order = ralloc(&r, n, sizeof *p->order);
    uint32_t fr = p->rowq ? p->map.nregs : p->ntables ? p->tables[0].final.nregs : 0;
    for (uint32_t i = 0; i < n && !r.bad && bson_iter_next(&a); i++) {
      if (!BSON_ITER_HOLDS_DOCUMENT(&a) || !bson_iter_recurse(&a, &e)) {
        bad(&r, "order");
        break;
      }
      p->order[i].reg = (uint16_t)get_int(&r, &e, "r", 0, fr ? fr - 1 : 0);
      p->order[i].desc = get_bool(&r, &e, "desc");
    }
  }
  p->limit = get_int(&r, &top, "limit", -1, INT64_MAX);
  p->offset = get_int(&r, &top, "offset", -1, INT64_MAX);
  p->key_template = get_str(&r, &top, "key", false);
  p->key_doc = get_bool(&r, &top, "key_doc");
  p->mode = get_str(&r, &top, "mode", true);
  p->strict = get_bool(&r, &top, "strict");
  p->nondet = get_bool(&r, &top, "nondet");
  p->incremental = get_bool(&r, &top, "incremental");
  p->lateness_ms = get_int(&r, &top, "lateness", 0, INT64_MAX);
  p->late = get_str(&r, &top, "late", true);
  p->sidecar = get_str(&r, &top, "sidecar", false);
  p->settle_ms = get_int(&r, &top, "settle", 0, INT64_MAX);
  p->retain_ms = get_int(&r, &top, "retain", -1, INT64_MAX);
  p->schedule = get_str(&r, &top, "schedule", false);
  if (p->late && strcmp(p->late, "merge") != 0 && strcmp(p->late, "drop") != 0 &&
      (strcmp(p->late, "sidecar") != 0 || !p->sidecar))
    bad(&r, "late");
  if (enter(&r, &top, "logical", true, &a, &n)) {
    zql_plnode_t **tail = &p->logical;
    for (uint32_t i = 0; i < n && !r.bad && bson_iter_next(&a); i++) {
      if (!BSON_ITER_HOLDS_DOCUMENT(&a) || !bson_iter_recurse(&a, &e)) {
        bad(&r, "logical");
        break;
      }
      zql_plnode_t *l = ralloc(&r, 1, sizeof *l);
      if (!l)
        break;
      l->op = get_str(&r, &e, "op", true);
      l->text = get_str(&r, &e, "text", false);
      l->mark = get_str(&r, &e, "mark", false);
      *tail = l;
      tail = &l->child;
    }
  }
  if (!r.bad && (p->ntables == 0) != p->rowq)
    bad(&r, p->rowq ? "a row query with tables" : "no tables");
  if (!r.bad)
    check_prog(&r, &p->map, false, 0);
  if (!r.bad && p->pre.n)
    check_prog(&r, &p->pre, false, 0);
  for (uint32_t i = 0; i < p->nreducers && !r.bad; i++) {
    const zql_preducer_t *u = &p->reducers[i];
    const zql_prog_t *parts[4] = {&u->init, &u->add, u->has_merge ? &u->merge : NULL,
                                  &u->final};
    for (int k = 0; k < 4 && !r.bad; k++) {
      if (!parts[k])
        continue;
      if (parts[k]->nregs < 3) {
        bad(&r, "reducer program registers");
        break;
      }
      for (uint32_t j = 0; j < parts[k]->n; j++) {
        uint8_t op = parts[k]->code[j].op;
        if (op == ZQL_I_GROUP || op == ZQL_I_ADDAGG || op == ZQL_I_EMIT || op == ZQL_I_FINAL ||
            op == ZQL_I_KEY || op == ZQL_I_ROW) {
          bad(&r, "a reducer program aggregates");
          break;
        }
      }
      check_prog(&r, parts[k], false, 0);
    }
  }
  for (uint32_t i = 0; i < p->ntables && !r.bad; i++) {
    zql_ptable_t *t = &p->tables[i];
    check_prog(&r, &t->final, true, i);
    for (uint32_t j = 0; j < t->ncols && !r.bad; j++)
      if (t->cols[j].reg >= t->final.nregs)
        bad(&r, "column register");
  }
  for (uint32_t i = 0; i < p->nextract && !r.bad; i++)
    if (p->extract[i].reg >= p->map.nregs)
      bad(&r, "extract register");
  if (r.bad) {
    zql_plan_free(p);
    return r.bad;
  }
  *out = p;
  return 0;
}

/* }==== */
