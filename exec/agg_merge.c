/*
 * agg_merge.c -- merge(col): the aggregator over stored states (stage 4, MAP and REDUCE).
 *
 * Pipeline position: `from agg X ... compute u = merge(users)` reads rows of aggregate X,
 * each carrying the saved state of its computed columns (exec/run.c keeps them with the
 * rows; the results store will persist them, design/ZQL.md R11/R16). The planner gives the
 * merge slot the upstream aggregator's kind and parameters (zql_aggparams_t.inner, q, n,
 * ...); each input row's state document is loaded with that aggregator's `load` and merged
 * with its `merge`, and the final value is that aggregator's `final` with the slot's
 * parameters (so merge(p95) of a quantile column answers the 0.95 quantile). This is how
 * daily HLL states roll up to months without rescanning events (examples/uniques.zql).
 *
 * A row whose state is of another kind, has other parameters (an hll of another p) or does
 * not load makes the cell ERROR "merge: ..." (R11: merging different kinds is an ERROR).
 * NULL and MISSING states (rows without that column) are skipped.
 *
 * The merge state itself is {inner aggregator, a heap copy of its state, flags}; its saved
 * form (spill runs) is {k: "merge", v: 1, p: {inner}, bad, s: <the inner saved state>}.
 */
#include "runtime/base/zql_common.h"

#include "exec/agg.h"
#include "runtime/base/alloc.h"
#include "runtime/base/error.h"

enum { BAD_LOAD = 1, BAD_MISMATCH = 2 };

typedef struct mstate {
  const zql_aggdef_t *inner;  /* the aggregator whose states are merged (NULL: unknown) */
  unsigned char *st;          /* its state, heap (NULL until the first input) */
  const zql_aggparams_t *p;   /* the slot's parameters (plan lifetime; NULL when loaded) */
  uint32_t bad;               /* BAD_* bits seen */
} mstate_t;

static void m_init(void *s, const zql_aggparams_t *p)
{
  mstate_t *m = s;
  memset(m, 0, sizeof *m);
  m->p = p;
  m->inner = p && p->inner ? zql_agg_lookup(p->inner) : NULL;
}

static size_t inner_size(const zql_aggdef_t *d)
{
  return (d->state_size + 7u) & ~(size_t)7u;
}

/* The inner state, created (init with the slot's parameters) on first use. */
static int ensure(mstate_t *m, zql_aggctx_t *ctx)
{
  if (m->st)
    return 0;
  zql_aggparams_t dflt;
  m->st = zql_calloc(1, inner_size(m->inner));
  if (!m->st)
    return ZQL_E_NOMEM;
  ctx->heap += (int64_t)inner_size(m->inner);
  if (!m->p)
    zql_aggparams_default(m->inner->name, &dflt);
  m->inner->init(m->st, m->p ? m->p : &dflt);
  return 0;
}

static int m_add(void *s, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  mstate_t *m = s;
  if (in->x.t == ZQL_V_NULL || in->x.t == ZQL_V_MISSING)
    return 0;
  if (!m->inner || in->x.t != ZQL_V_DOC) {
    m->bad |= BAD_LOAD;
    return 0;
  }
  bson_t doc;
  if (!bson_init_static(&doc, in->x.u.p, in->x.len)) {
    m->bad |= BAD_LOAD;
    return 0;
  }
  bson_iter_t it;
  if (!bson_iter_init_find(&it, &doc, "k") || !BSON_ITER_HOLDS_UTF8(&it) ||
      strcmp(bson_iter_utf8(&it, NULL), m->inner->name) != 0) {
    m->bad |= BAD_MISMATCH;
    return 0;
  }
  unsigned char *tmp = zql_calloc(1, inner_size(m->inner));
  if (!tmp)
    return ZQL_E_NOMEM;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = m->inner->load(tmp, &doc, ctx, &err);
  zql_strbuf_release(&err);
  if (rc == ZQL_E_NOMEM) {
    zql_free(tmp);
    return rc;
  }
  if (rc) {
    zql_free(tmp);
    m->bad |= BAD_LOAD;
    return 0;
  }
  rc = ensure(m, ctx);
  if (!rc) {
    rc = m->inner->merge(m->st, tmp, ctx);
    if (rc == ZQL_AGG_MISMATCH) {
      m->bad |= BAD_MISMATCH;
      rc = 0;
    }
  }
  m->inner->destroy(tmp, ctx);
  zql_free(tmp);
  return rc;
}

static int m_merge(void *d, const void *s, zql_aggctx_t *ctx)
{
  mstate_t *a = d;
  const mstate_t *b = s;
  a->bad |= b->bad;
  if (!b->st)
    return 0;
  if (!a->inner)
    a->inner = b->inner;
  if (a->inner != b->inner) {
    a->bad |= BAD_MISMATCH;
    return 0;
  }
  int rc = ensure(a, ctx);
  if (rc)
    return rc;
  rc = a->inner->merge(a->st, b->st, ctx);
  if (rc == ZQL_AGG_MISMATCH) {
    a->bad |= BAD_MISMATCH;
    rc = 0;
  }
  return rc;
}

static int m_final(const void *s, const zql_aggparams_t *p, zql_arena_t *arena,
                   zql_val_t *out)
{
  const mstate_t *m = s;
  if (m->bad & BAD_MISMATCH) {
    *out = zql_val_error("merge: states of different kinds or parameters");
    return 0;
  }
  if (m->bad || !m->inner) {
    *out = zql_val_error("merge: a stored state is not a state of this aggregator");
    return 0;
  }
  if (m->st)
    return m->inner->final(m->st, p, arena, out);
  /* no input: the inner aggregator's empty final (count 0, hll 0, quantile null, ...) */
  unsigned char *tmp = zql_calloc(1, inner_size(m->inner));
  if (!tmp)
    return ZQL_E_NOMEM;
  zql_aggctx_t ctx = {0, 0};
  m->inner->init(tmp, p);
  int rc = m->inner->final(tmp, p, arena, out);
  m->inner->destroy(tmp, &ctx);
  zql_free(tmp);
  return rc;
}

static int m_save(const void *s, bson_t *out)
{
  const mstate_t *m = s;
  bson_t pd, sd;
  if (!bson_append_utf8(out, "k", 1, "merge", -1) || !bson_append_int32(out, "v", 1, 1) ||
      !bson_append_document_begin(out, "p", 1, &pd))
    return ZQL_E_NOMEM;
  if (m->inner)
    bson_append_utf8(&pd, "inner", -1, m->inner->name, -1);
  bson_append_document_end(out, &pd);
  bson_append_int32(out, "bad", 3, (int32_t)m->bad);
  if (m->st) {
    if (!bson_append_document_begin(out, "s", 1, &sd))
      return ZQL_E_NOMEM;
    int rc = m->inner->save(m->st, &sd);
    bson_append_document_end(out, &sd);
    if (rc)
      return rc;
  }
  return 0;
}

static int m_load(void *s, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  mstate_t *m = s;
  memset(m, 0, sizeof *m);
  bson_iter_t it, p;
  if (!bson_iter_init_find(&it, in, "k") || !BSON_ITER_HOLDS_UTF8(&it) ||
      strcmp(bson_iter_utf8(&it, NULL), "merge") != 0) {
    zql_strbuf_adds(err, "not a merge state");
    return ZQL_E_BAD_RECORD;
  }
  if (bson_iter_init_find(&it, in, "p") && BSON_ITER_HOLDS_DOCUMENT(&it) &&
      bson_iter_recurse(&it, &p) && bson_iter_find(&p, "inner") && BSON_ITER_HOLDS_UTF8(&p))
    m->inner = zql_agg_lookup(bson_iter_utf8(&p, NULL));
  if (bson_iter_init_find(&it, in, "bad") && BSON_ITER_HOLDS_INT32(&it))
    m->bad = (uint32_t)bson_iter_int32(&it);
  if (bson_iter_init_find(&it, in, "s")) {
    const uint8_t *d;
    uint32_t dl;
    bson_t sd;
    if (!m->inner || !BSON_ITER_HOLDS_DOCUMENT(&it)) {
      zql_strbuf_adds(err, "merge state without its aggregator");
      return ZQL_E_BAD_RECORD;
    }
    bson_iter_document(&it, &dl, &d);
    if (!bson_init_static(&sd, d, dl)) {
      zql_strbuf_adds(err, "invalid merge state");
      return ZQL_E_BAD_RECORD;
    }
    m->st = zql_calloc(1, inner_size(m->inner));
    if (!m->st)
      return ZQL_E_NOMEM;
    int rc = m->inner->load(m->st, &sd, ctx, err);
    if (rc) {
      zql_free(m->st);
      m->st = NULL;
      return rc;
    }
    ctx->heap += (int64_t)inner_size(m->inner);
  }
  return 0;
}

static void m_destroy(void *s, zql_aggctx_t *ctx)
{
  mstate_t *m = s;
  if (m->st) {
    m->inner->destroy(m->st, ctx);
    zql_free(m->st);
    ctx->heap -= (int64_t)inner_size(m->inner);
  }
  m->st = NULL;
}

const zql_aggdef_t zql_agg_merge = {
    "merge", 1, sizeof(mstate_t), 0, m_init, m_add, m_merge, m_final, m_save, m_load,
    m_destroy,
};
