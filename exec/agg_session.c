/*
 * agg_session.c -- "sessions": the times of one entity's rows, cut into sessions (stage 4,
 * the pre-pass of session keys).
 *
 * Pipeline position: a key `session(ts, gap d) per E` needs, for every row, the start of
 * E's session holding the row's time, where a session is a maximal run of E's rows (in
 * time order) less than d apart. That depends on all of E's rows, so the plan makes a
 * first pass (plan->pre) over the same rows: it groups them by E with this aggregator,
 * whose state is the list of their times; merge concatenates the lists (order-free), and
 * the final value is the array of session start times in increasing order. exec/run.c
 * indexes those arrays by E; the map program's SESSION instruction then finds the start
 * for each row (the last start <= its time). Like every aggregator the state is saved to
 * and loaded from spill runs: {k: "sessions", v: 1, p: {gap}, t: <times, int64 LE>}.
 *
 * Inputs: the time value (a date, a BSON Timestamp or an ObjectId, R9); other values are
 * skipped and counted in _type_skips (their rows then have no session: SESSION gives
 * ERROR for them). Memory: 8 bytes per row of the entity, counted in ctx->heap.
 */
#include "runtime/base/zql_common.h"

#include "exec/agg.h"
#include "exec/func_time.h"
#include "runtime/base/alloc.h"
#include "runtime/base/error.h"

typedef struct sess {
  int64_t gap;   /* ms, > 0 */
  int64_t *t;    /* times (heap), unsorted until final */
  uint64_t n, cap;
} sess_t;

static void s_init(void *st, const zql_aggparams_t *p)
{
  sess_t *s = st;
  memset(s, 0, sizeof *s);
  s->gap = p->window_ms > 0 ? p->window_ms : 1;
}

static int push(sess_t *s, const int64_t *v, uint64_t n, zql_aggctx_t *ctx)
{
  if (s->n + n > s->cap) {
    uint64_t cap = s->cap ? s->cap : 8;
    while (cap < s->n + n)
      cap *= 2;
    int64_t *t = zql_reallocarray(s->t, cap, sizeof *t);
    if (!t)
      return ZQL_E_NOMEM;
    ctx->heap += (int64_t)((cap - s->cap) * sizeof *t);
    s->t = t;
    s->cap = cap;
  }
  memcpy(s->t + s->n, v, n * sizeof *v);
  s->n += n;
  return 0;
}

static int s_add(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  int64_t ms;
  if (zql_val_is_nullish(&in->x))
    return 0;
  if (!zql_time_of(&in->x, &ms)) {
    ctx->type_skips++;
    return 0;
  }
  return push(st, &ms, 1, ctx);
}

static int s_merge(void *dst, const void *src, zql_aggctx_t *ctx)
{
  sess_t *d = dst;
  const sess_t *s = src;
  if (d->gap != s->gap)
    return ZQL_AGG_MISMATCH;
  return s->n ? push(d, s->t, s->n, ctx) : 0;
}

static int cmp64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* The session starts as an ARRAY of dates (increasing). */
static int s_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                   zql_val_t *out)
{
  const sess_t *s = st;
  int64_t *t = s->n ? zql_malloc(s->n * sizeof *t) : NULL;
  if (s->n && !t)
    return ZQL_E_NOMEM;
  if (s->n)
    memcpy(t, s->t, s->n * sizeof *t);
  if (s->n)
    qsort(t, s->n, sizeof *t, cmp64);
  bson_t a = BSON_INITIALIZER;
  uint32_t k = 0;
  for (uint64_t i = 0; i < s->n; i++) {
    /* a row less than gap after the previous one continues its session */
    if (i > 0 && t[i] - t[i - 1] < s->gap)
      continue;
    char kb[16];
    const char *key;
    bson_uint32_to_string(k++, &key, kb, sizeof kb);
    bson_append_date_time(&a, key, -1, t[i]);
  }
  zql_free(t);
  uint8_t *m = zql_arena_alloc(arena, a.len);
  if (!m) {
    bson_destroy(&a);
    return ZQL_E_NOMEM;
  }
  memcpy(m, bson_get_data(&a), a.len);
  *out = zql_val_doc(m, a.len, true);
  bson_destroy(&a);
  (void)p;
  return 0;
}

static int s_save(const void *st, bson_t *out)
{
  const sess_t *s = st;
  bson_t pd;
  if (!bson_append_utf8(out, "k", 1, "sessions", -1) || !bson_append_int32(out, "v", 1, 1) ||
      !bson_append_document_begin(out, "p", 1, &pd))
    return ZQL_E_NOMEM;
  bson_append_int64(&pd, "gap", 3, s->gap);
  bson_append_document_end(out, &pd);
  uint8_t *b = s->n ? zql_malloc(s->n * 8) : NULL;
  if (s->n && !b)
    return ZQL_E_NOMEM;
  for (uint64_t i = 0; i < s->n; i++)
    for (int j = 0; j < 8; j++)
      b[i * 8 + (uint64_t)j] = (uint8_t)((uint64_t)s->t[i] >> (8 * j));
  bool ok = bson_append_binary(out, "t", 1, (bson_subtype_t)ZQL_AGG_BINARY_SUBTYPE,
                               b ? b : (const uint8_t *)"", (uint32_t)(s->n * 8));
  zql_free(b);
  return ok ? 0 : ZQL_E_NOMEM;
}

static int s_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  sess_t *s = st;
  memset(s, 0, sizeof *s);
  bson_iter_t it, p;
  if (!bson_iter_init_find(&it, in, "k") || !BSON_ITER_HOLDS_UTF8(&it) ||
      strcmp(bson_iter_utf8(&it, NULL), "sessions") != 0 ||
      !bson_iter_init_find(&it, in, "p") || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
      !bson_iter_recurse(&it, &p) || !bson_iter_find(&p, "gap") ||
      !BSON_ITER_HOLDS_INT64(&p) || bson_iter_int64(&p) <= 0 ||
      !bson_iter_init_find(&it, in, "t") || !BSON_ITER_HOLDS_BINARY(&it)) {
    zql_strbuf_adds(err, "not a sessions state");
    return ZQL_E_BAD_RECORD;
  }
  s->gap = bson_iter_int64(&p);
  bson_subtype_t sub;
  uint32_t len;
  const uint8_t *b;
  bson_iter_binary(&it, &sub, &len, &b);
  if (len % 8) {
    zql_strbuf_adds(err, "sessions state: bad length");
    return ZQL_E_BAD_RECORD;
  }
  for (uint32_t i = 0; i < len / 8; i++) {
    uint64_t v = 0;
    for (int j = 0; j < 8; j++)
      v |= (uint64_t)b[i * 8 + (uint32_t)j] << (8 * j);
    int64_t x = (int64_t)v;
    int rc = push(s, &x, 1, ctx);
    if (rc) {
      zql_free(s->t); /* a failed load leaves nothing allocated */
      ctx->heap -= (int64_t)(s->cap * sizeof *s->t);
      memset(s, 0, sizeof *s);
      return rc;
    }
  }
  return 0;
}

static void s_destroy(void *st, zql_aggctx_t *ctx)
{
  sess_t *s = st;
  if (s->t) {
    zql_free(s->t);
    ctx->heap -= (int64_t)(s->cap * sizeof *s->t);
  }
  s->t = NULL;
  s->n = s->cap = 0;
}

const zql_aggdef_t zql_agg_sessions = {
    "sessions", 1, sizeof(sess_t), 0, s_init, s_add, s_merge, s_final, s_save, s_load,
    s_destroy,
};
