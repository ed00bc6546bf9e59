/*
 * agg.c -- the aggregator registry and the core aggregators (stage 4; the contract, the
 * life of a state and the laws are in agg.h; the sketches live in exec/agg_sketch.c).
 *
 * Every aggregator here is deterministic in the strong sense of resolved point 14: its
 * state after a multiset of inputs does not depend on the order of add and merge calls,
 * so final values and saved bytes are identical for every split of the input. Where a
 * choice between equal candidates is needed (min of 1 and 1.0, first of two rows with
 * the same time and _seq after an unwind), the tie goes to a fixed total order of the
 * exact representations (rep_cmp below), never to arrival order.
 *
 *   count            rows whose argument is neither NULL nor MISSING
 *   sum, avg         an exact accumulator: an __int128 for INT inputs and a 2240-bit
 *                    two's-complement fixed-point integer in units of 2^-1074 for DOUBLE
 *                    inputs (a "superaccumulator", as in Kulisch's exact dot product and
 *                    Neal, "Fast exact summation using small and large superaccumulators",
 *                    2015). Every finite double is an integer multiple of 2^-1074 below
 *                    2^1024, so adding is exact and order-free, and the representation is
 *                    canonical (unlike a Shewchuk expansion, whose partials depend on the
 *                    order). sum's final is INT when every input was INT and the total
 *                    fits, else the correctly rounded (nearest-even) double of the exact
 *                    total; avg's final is the double nearest the exact quotient total / n
 *                    (long division with a sticky bit, then one rounding). +-inf and NaN
 *                    are flags, combined like IEEE (inf + -inf = NaN), as math.fsum does.
 *   min, max         R7 order over all types (resolved point 9), an owned copy
 *   first, last      the x of the smallest / largest (by, _seq) (resolved point 7)
 *   collect          the N rows with the smallest _seq, output in _seq order
 *   sample           bottom-N sampling: the N rows with the smallest XXH3(_seq) (ties by
 *                    _seq). A hash of the row's identity is a uniformly random priority,
 *                    so the result is a uniform sample without replacement (Cohen and
 *                    Kaplan, "Summarizing data using bottom-k sketches", PODC 2007); unlike
 *                    reservoir sampling it is mergeable and the same for every split. All
 *                    rows of one event (unwind) share their _seq and so are kept together.
 *   maximum, minimum the N rows with the largest / smallest weights (Sawzall)
 *   histogram        counts per [edge_i, edge_i+1), the last bucket closed
 *   retention        OR of the conditions seen
 *   window_funnel,   the list of (ts, _seq, condition bitmask) of the rows where some
 *   sequence_match   condition held, kept sorted lazily and capped at ROWS_CAP rows (the
 *                    earliest by (ts, _seq, mask) are kept; each dropped row counts in
 *                    ctx->type_skips). Semantics are at funnel_level and seq_match.
 *
 * Owned values (min, max, first, last, collect, sample, maximum, minimum) are copied to
 * the heap with zql_malloc; every heap byte is reported in ctx->heap. Final values are
 * built in the caller's arena (documents with the strbuf builder of exec/value.h, so an
 * allocation failure is ZQL_E_NOMEM, never an abort).
 *
 * Saved states (R11): {k: name, v: 1, p: {params}, payload}; docs/formats.md lists the
 * payload fields of each kind. States are only 8-byte aligned, so the __int128 of sum is
 * kept as two 64-bit halves.
 */
#include "runtime/base/zql_common.h"

#include <limits.h>
#include <math.h>

#include "exec/agg.h"
#include "exec/agg_sketch.h"
#include "runtime/base/alloc.h"
#include "runtime/base/error.h"

#define ROWS_CAP 100000u /* window_funnel / sequence_match rows kept per state */

typedef __int128 i128;
typedef unsigned __int128 u128;

/* {==== helpers: heap accounting, owned values, output, save/load ======================== */

static void *h_alloc(zql_aggctx_t *ctx, size_t n)
{
  void *p = zql_malloc(n);
  if (p)
    ctx->heap += (int64_t)n;
  return p;
}

static void *h_calloc(zql_aggctx_t *ctx, size_t count, size_t size)
{
  void *p = zql_calloc(count, size);
  if (p)
    ctx->heap += (int64_t)(count * size);
  return p;
}

static void *h_realloc(zql_aggctx_t *ctx, void *p, size_t old, size_t n)
{
  void *q = zql_realloc(p, n);
  if (q)
    ctx->heap += (int64_t)n - (int64_t)old;
  return q;
}

static void h_free(zql_aggctx_t *ctx, const void *p, size_t n)
{
  if (p) {
    zql_free((void *)(uintptr_t)p);
    ctx->heap -= (int64_t)n;
  }
}

/* Heap bytes behind an owned value (0: a scalar). */
static size_t own_bytes(const zql_val_t *v)
{
  switch ((zql_vtype_t)v->t) {
  case ZQL_V_STRING:
    return (size_t)v->len + 1;
  case ZQL_V_OID:
    return 12;
  case ZQL_V_DOC:
  case ZQL_V_ARRAY:
  case ZQL_V_BINARY:
  case ZQL_V_REGEX:
  case ZQL_V_OTHER:
    return v->len ? v->len : 1;
  default:
    return 0;
  }
}

/* *dst = a heap copy of src (dst holds nothing owned yet). */
static int own_copy(zql_aggctx_t *ctx, zql_val_t *dst, const zql_val_t *src)
{
  size_t n = own_bytes(src);
  *dst = *src;
  if (!n)
    return 0;
  uint8_t *p = h_alloc(ctx, n);
  if (!p)
    return ZQL_E_NOMEM;
  if (src->t == ZQL_V_STRING) {
    memcpy(p, src->u.s, src->len);
    p[src->len] = 0;
    dst->u.s = (const char *)p;
  } else {
    memcpy(p, src->u.p, src->t == ZQL_V_OID ? 12 : src->len);
    dst->u.p = p;
    if (src->t == ZQL_V_OID)
      dst->len = 12;
  }
  return 0;
}

static void own_free(zql_aggctx_t *ctx, zql_val_t *v)
{
  size_t n = own_bytes(v);
  if (n)
    h_free(ctx, v->u.p, n);
  *v = zql_val_missing();
}

/* A fixed total order of exact representations, to break ties between values that
 * zql_val_cmp calls equal (1 vs 1.0 vs int32 1, 0.0 vs -0.0, {a: 1} vs {a: 1.0}). */
static int rep_cmp(const zql_val_t *a, const zql_val_t *b)
{
  if (a->t != b->t)
    return a->t < b->t ? -1 : 1;
  if (a->flags != b->flags)
    return a->flags < b->flags ? -1 : 1;
  switch ((zql_vtype_t)a->t) {
  case ZQL_V_DOUBLE: {
    uint64_t x, y;
    memcpy(&x, &a->u.d, 8);
    memcpy(&y, &b->u.d, 8);
    return (x > y) - (x < y);
  }
  case ZQL_V_INT:
  case ZQL_V_DATE:
    return (a->u.i > b->u.i) - (a->u.i < b->u.i);
  case ZQL_V_BOOL:
    return (int)a->u.b - (int)b->u.b;
  case ZQL_V_TIMESTAMP:
    if (a->u.ts.t != b->u.ts.t)
      return a->u.ts.t < b->u.ts.t ? -1 : 1;
    return (a->u.ts.i > b->u.ts.i) - (a->u.ts.i < b->u.ts.i);
  case ZQL_V_OID:
    return memcmp(a->u.p, b->u.p, 12);
  case ZQL_V_STRING:
  case ZQL_V_DOC:
  case ZQL_V_ARRAY:
  case ZQL_V_BINARY:
  case ZQL_V_REGEX:
  case ZQL_V_OTHER: {
    int c = memcmp(a->u.p, b->u.p, a->len < b->len ? a->len : b->len);
    if (c)
      return c < 0 ? -1 : 1;
    return (a->len > b->len) - (a->len < b->len);
  }
  default:
    return 0;
  }
}

/* R7 order, then the representation: 0 only for identical values. */
static int full_cmp(const zql_val_t *a, const zql_val_t *b)
{
  int c = zql_val_cmp(a, b);
  return c ? c : rep_cmp(a, b);
}

/* A number as the value it is most naturally shown as: integral doubles in int64 range
 * as INT (histogram edges). */
static zql_val_t num_val(double d)
{
  if (d == trunc(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
    return zql_val_int((int64_t)d);
  return zql_val_double(d);
}

/* Copy a finished BSON document (at sb->buf + off) into the arena as the value *out. */
static int out_doc(zql_strbuf_t *sb, size_t off, bool is_array, zql_arena_t *arena,
                   zql_val_t *out)
{
  if (sb->oom) {
    zql_strbuf_release(sb);
    return ZQL_E_NOMEM;
  }
  size_t n = sb->len - off;
  uint8_t *p = zql_arena_alloc(arena, n);
  if (p)
    memcpy(p, sb->buf + off, n);
  zql_strbuf_release(sb);
  if (!p)
    return ZQL_E_NOMEM;
  *out = zql_val_doc(p, (uint32_t)n, is_array);
  return 0;
}

/* The decimal key of array element i. */
static size_t idx_key(char *buf, size_t i)
{
  return (size_t)snprintf(buf, 24, "%zu", i);
}

/* Append {k, v, p: {...}: the caller appends the parameters to *p and closes it. */
static bool save_head(bson_t *out, const char *kind, bson_t *p)
{
  return BSON_APPEND_UTF8(out, "k", kind) && BSON_APPEND_INT32(out, "v", 1) &&
         BSON_APPEND_DOCUMENT_BEGIN(out, "p", p);
}

static bool append_bin(bson_t *out, const char *key, const void *data, size_t n)
{
  return n <= UINT32_MAX &&
         bson_append_binary(out, key, -1, (bson_subtype_t)ZQL_AGG_BINARY_SUBTYPE, data,
                            (uint32_t)n);
}

static int bad(zql_strbuf_t *err, const char *kind, const char *what)
{
  if (err)
    zql_strbuf_addf(err, "invalid %s state: %s", kind, what);
  return ZQL_E_BAD_RECORD;
}

/* Check k and v of a saved state; *p becomes a view of its parameters. */
static int load_head(const bson_t *in, const char *kind, bson_t *p, zql_strbuf_t *err)
{
  bson_iter_t it;
  uint32_t len = 0;
  const uint8_t *data = NULL;
  if (!bson_iter_init_find(&it, in, "k") || !BSON_ITER_HOLDS_UTF8(&it))
    return bad(err, kind, "no kind 'k'");
  const char *k = bson_iter_utf8(&it, &len);
  if (strcmp(k, kind) != 0) {
    if (err)
      zql_strbuf_addf(err, "a '%s' state where a '%s' state was expected", k, kind);
    return ZQL_E_BAD_RECORD;
  }
  if (!bson_iter_init_find(&it, in, "v") || !BSON_ITER_HOLDS_INT32(&it) ||
      bson_iter_int32(&it) != 1)
    return bad(err, kind, "unsupported version 'v'");
  if (!bson_iter_init_find(&it, in, "p") || !BSON_ITER_HOLDS_DOCUMENT(&it))
    return bad(err, kind, "no parameters 'p'");
  bson_iter_document(&it, &len, &data);
  if (!bson_init_static(p, data, len))
    return bad(err, kind, "bad parameters 'p'");
  return 0;
}

static bool get_i64(const bson_t *doc, const char *key, int64_t *out)
{
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, key))
    return false;
  if (BSON_ITER_HOLDS_INT64(&it))
    *out = bson_iter_int64(&it);
  else if (BSON_ITER_HOLDS_INT32(&it))
    *out = bson_iter_int32(&it);
  else
    return false;
  return true;
}

/* A binary field of the private subtype; absent: false. */
static bool get_bin(const bson_t *doc, const char *key, const uint8_t **data, uint32_t *len,
                    bool *bad_type)
{
  bson_iter_t it;
  bson_subtype_t sub;
  *bad_type = false;
  if (!bson_iter_init_find(&it, doc, key))
    return false;
  if (!BSON_ITER_HOLDS_BINARY(&it)) {
    *bad_type = true;
    return false;
  }
  bson_iter_binary(&it, &sub, len, data);
  if ((int)sub != ZQL_AGG_BINARY_SUBTYPE) {
    *bad_type = true;
    return false;
  }
  return true;
}

/* A document or array field as a view. */
static bool get_doc(const bson_t *doc, const char *key, bool is_array, bson_t *out)
{
  bson_iter_t it;
  uint32_t len;
  const uint8_t *data;
  if (!bson_iter_init_find(&it, doc, key))
    return false;
  if (is_array ? !BSON_ITER_HOLDS_ARRAY(&it) : !BSON_ITER_HOLDS_DOCUMENT(&it))
    return false;
  if (is_array)
    bson_iter_array(&it, &len, &data);
  else
    bson_iter_document(&it, &len, &data);
  return bson_init_static(out, data, len);
}

static void put_le64(uint8_t *p, uint64_t x)
{
  for (int i = 0; i < 8; i++, x >>= 8)
    p[i] = (uint8_t)x;
}

static uint64_t get_le64(const uint8_t *p)
{
  uint64_t x = 0;
  for (int i = 7; i >= 0; i--)
    x = x << 8 | p[i];
  return x;
}

/* }==== */

/* {==== count ============================================================================ */

typedef struct {
  int64_t n;
} count_t;

static void count_init(void *st, const zql_aggparams_t *p)
{
  ((count_t *)st)->n = 0;
}

static int count_add(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  if (!zql_val_is_nullish(&in->x))
    ((count_t *)st)->n++;
  return 0;
}

static int count_merge(void *dst, const void *src, zql_aggctx_t *ctx)
{
  ((count_t *)dst)->n += ((const count_t *)src)->n;
  return 0;
}

static int count_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                       zql_val_t *out)
{
  *out = zql_val_int(((const count_t *)st)->n);
  return 0;
}

static int count_save(const void *st, bson_t *out)
{
  bson_t p;
  bool ok = save_head(out, "count", &p) && bson_append_document_end(out, &p) &&
            BSON_APPEND_INT64(out, "n", ((const count_t *)st)->n);
  return ok ? 0 : ZQL_E_NOMEM;
}

static int count_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  count_t *s = st;
  bson_t p;
  int rc;
  s->n = 0;
  if ((rc = load_head(in, "count", &p, err)) != 0)
    return rc;
  if (!get_i64(in, "n", &s->n) || s->n < 0) {
    s->n = 0;
    return bad(err, "count", "bad count 'n'");
  }
  return 0;
}

static void count_destroy(void *st, zql_aggctx_t *ctx)
{
}

/* }==== */

/* {==== sum and avg: the exact accumulator =============================================== */

#define FX_LIMBS 35   /* 2240 bits: 2^-1074 .. 2^1024 * 2^64 inputs, plus a sign */
#define FX_ONE 1074   /* the bit of 2^0 */
#define AVG_SHIFT 128 /* extra quotient bits of avg's long division */

enum { SP_DOUBLE = 1, SP_POSINF = 2, SP_NEGINF = 4, SP_NAN = 8, SP_ALL = 15 };

typedef struct {
  uint64_t ilo, ihi; /* the sum of INT inputs, an __int128 (wraps only after 2^64 inputs) */
  uint64_t *fx;      /* NULL, or FX_LIMBS limbs: the exact sum of finite DOUBLE inputs */
  uint64_t n;        /* numeric inputs (avg's divisor) */
  uint32_t special;  /* SP_*: a DOUBLE was added; +inf, -inf, NaN seen */
} sum_t;

static u128 sum_int(const sum_t *s)
{
  return (u128)s->ihi << 64 | s->ilo;
}

static void sum_set_int(sum_t *s, u128 v)
{
  s->ilo = (uint64_t)v;
  s->ihi = (uint64_t)(v >> 64);
}

/* fx += (or -= when neg) the nw-word number w placed at limb li; two's complement,
 * carries propagate to the top. */
static void fx_addw(uint64_t *fx, unsigned li, const uint64_t *w, unsigned nw, bool neg)
{
  uint64_t carry = 0;
  for (unsigned i = li; i < FX_LIMBS; i++) {
    unsigned k = i - li;
    if (k >= nw && !carry)
      break;
    uint64_t x = k < nw ? w[k] : 0;
    if (!neg) {
      uint64_t s = fx[i] + x;
      uint64_t c = s < x;
      fx[i] = s + carry;
      carry = c | (fx[i] < carry);
    } else {
      uint64_t b = fx[i] < x;
      uint64_t d = fx[i] - x;
      fx[i] = d - carry;
      carry = b | (d < carry);
    }
  }
}

/* fx += d (finite, not zero). d = m * 2^(pos - 1074) with m < 2^53. */
static void fx_add_double(uint64_t *fx, double d)
{
  uint64_t u;
  memcpy(&u, &d, 8);
  bool neg = u >> 63;
  unsigned e = (unsigned)(u >> 52) & 0x7FF;
  uint64_t m = u & ((UINT64_C(1) << 52) - 1);
  unsigned pos = 0;
  if (e) {
    m |= UINT64_C(1) << 52;
    pos = e - 1;
  }
  unsigned sh = pos % 64;
  uint64_t w[2] = {m << sh, sh ? m >> (64 - sh) : 0};
  fx_addw(fx, pos / 64, w, 2, neg);
}

/* fx += v * 2^0 (v an __int128). */
static void fx_add_int(uint64_t *fx, u128 v)
{
  bool neg = (i128)v < 0;
  u128 m = neg ? (u128)0 - v : v;
  uint64_t a0 = (uint64_t)m, a1 = (uint64_t)(m >> 64);
  unsigned sh = FX_ONE % 64;
  uint64_t w[3] = {a0 << sh, a1 << sh | a0 >> (64 - sh), a1 >> (64 - sh)};
  fx_addw(fx, FX_ONE / 64, w, 3, neg);
}

static void mag_negate(uint64_t *m, unsigned n)
{
  uint64_t carry = 1;
  for (unsigned i = 0; i < n; i++) {
    m[i] = ~m[i] + carry;
    carry = carry && m[i] == 0;
  }
}

static int mag_top(const uint64_t *m, unsigned n)
{
  for (unsigned i = n; i-- > 0;)
    if (m[i])
      return (int)(i * 64 + 63 - (unsigned)__builtin_clzll(m[i]));
  return -1;
}

static bool mag_bit(const uint64_t *m, unsigned n, unsigned pos)
{
  return pos / 64 < n && (m[pos / 64] >> (pos % 64) & 1);
}

/* Any bit below pos set? */
static bool mag_any_below(const uint64_t *m, unsigned pos)
{
  for (unsigned i = 0; i < pos / 64; i++)
    if (m[i])
      return true;
  return pos % 64 && (m[pos / 64] & ((UINT64_C(1) << (pos % 64)) - 1));
}

/* The double nearest (ties to even) to +-(m + s) * 2^exp2, where m is an n-limb magnitude
 * and s, when sticky, a positive amount below m's lowest retained bit. */
static double mag_to_double(const uint64_t *m, unsigned n, int exp2, bool sticky, bool neg)
{
  int h = mag_top(m, n);
  if (h < 0)
    return 0.0;
  int drop = h - 52; /* bits below the 53 kept ones */
  if (drop < -1074 - exp2)
    drop = -1074 - exp2; /* subnormal result: fewer bits */
  if (drop < 0)
    drop = 0;
  unsigned d = (unsigned)drop, li = d / 64, sh = d % 64;
  uint64_t mant = m[li] >> sh;
  if (sh && li + 1 < n)
    mant |= m[li + 1] << (64 - sh);
  mant &= (UINT64_C(1) << 54) - 1;
  if (d > 0 && mag_bit(m, n, d - 1) && (sticky || mag_any_below(m, d - 1) || (mant & 1)))
    mant++;
  double r = ldexp((double)mant, drop + exp2);
  return neg ? -r : r;
}

/* The exact total (ints and doubles) into t. */
static void sum_total(const sum_t *s, uint64_t *t)
{
  if (s->fx)
    memcpy(t, s->fx, FX_LIMBS * sizeof *t);
  else
    memset(t, 0, FX_LIMBS * sizeof *t);
  fx_add_int(t, sum_int(s));
}

/* NaN, +inf or -inf when one was added (IEEE rules: inf + -inf = NaN). */
static bool sum_special(const sum_t *s, double *out)
{
  if ((s->special & SP_NAN) || ((s->special & SP_POSINF) && (s->special & SP_NEGINF)))
    *out = NAN;
  else if (s->special & SP_POSINF)
    *out = INFINITY;
  else if (s->special & SP_NEGINF)
    *out = -INFINITY;
  else
    return false;
  return true;
}

static void sum_init(void *st, const zql_aggparams_t *p)
{
  memset(st, 0, sizeof(sum_t));
}

static int sum_add(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  sum_t *s = st;
  const zql_val_t *x = &in->x;
  if (x->t == ZQL_V_INT) {
    sum_set_int(s, sum_int(s) + (u128)(i128)x->u.i);
  } else if (x->t == ZQL_V_DOUBLE) {
    double d = x->u.d;
    if (isnan(d)) {
      s->special |= SP_NAN;
    } else if (isinf(d)) {
      s->special |= d > 0 ? SP_POSINF : SP_NEGINF;
    } else if (d != 0.0) {
      if (!s->fx && !(s->fx = h_calloc(ctx, FX_LIMBS, sizeof *s->fx)))
        return ZQL_E_NOMEM;
      fx_add_double(s->fx, d);
    }
    s->special |= SP_DOUBLE;
  } else {
    if (!zql_val_is_nullish(x))
      ctx->type_skips++;
    return 0;
  }
  s->n++;
  return 0;
}

static int sum_merge(void *dst, const void *src, zql_aggctx_t *ctx)
{
  sum_t *d = dst;
  const sum_t *s = src;
  if (s->fx) {
    if (!d->fx && !(d->fx = h_calloc(ctx, FX_LIMBS, sizeof *d->fx)))
      return ZQL_E_NOMEM;
    fx_addw(d->fx, 0, s->fx, FX_LIMBS, false);
  }
  sum_set_int(d, sum_int(d) + sum_int(s));
  d->n += s->n;
  d->special |= s->special;
  return 0;
}

static int sum_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                     zql_val_t *out)
{
  const sum_t *s = st;
  double d;
  uint64_t t[FX_LIMBS];
  if (sum_special(s, &d)) {
    *out = zql_val_double(d);
    return 0;
  }
  i128 iv = (i128)sum_int(s);
  if (!(s->special & SP_DOUBLE) && iv >= INT64_MIN && iv <= INT64_MAX) {
    *out = zql_val_int((int64_t)iv);
    return 0;
  }
  sum_total(s, t);
  bool neg = t[FX_LIMBS - 1] >> 63;
  if (neg)
    mag_negate(t, FX_LIMBS);
  *out = zql_val_double(mag_to_double(t, FX_LIMBS, -FX_ONE, false, neg));
  return 0;
}

static int avg_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                     zql_val_t *out)
{
  const sum_t *s = st;
  double d;
  enum { QL = FX_LIMBS + AVG_SHIFT / 64 };
  uint64_t q[QL];
  if (s->n == 0) {
    *out = zql_val_null();
    return 0;
  }
  if (sum_special(s, &d)) {
    *out = zql_val_double(d);
    return 0;
  }
  /* q = |total| * 2^AVG_SHIFT, then q / n with the remainder as a sticky bit: the
   * quotient has at least 64 significant bits, so one rounding gives the nearest double.
   * (With a 128-bit shift and n < 2^64 a nonzero remainder can never sit right below an
   * exact half, so the sticky bit is belt and braces.) */
  memset(q, 0, sizeof q);
  sum_total(s, q + AVG_SHIFT / 64);
  bool neg = q[QL - 1] >> 63;
  if (neg)
    mag_negate(q + AVG_SHIFT / 64, FX_LIMBS);
  uint64_t rem = 0;
  for (unsigned i = QL; i-- > 0;) {
    u128 cur = (u128)rem << 64 | q[i];
    q[i] = (uint64_t)(cur / s->n);
    rem = (uint64_t)(cur % s->n);
  }
  *out = zql_val_double(mag_to_double(q, QL, -FX_ONE - AVG_SHIFT, rem != 0, neg));
  return 0;
}

/* Limbs to store: the shortest prefix whose sign extension gives all FX_LIMBS. */
static unsigned fx_trimmed(const uint64_t *fx)
{
  unsigned n = FX_LIMBS;
  while (n > 0) {
    uint64_t ext = n >= 2 && (fx[n - 2] >> 63) ? UINT64_MAX : 0;
    if (n == 1 ? fx[0] != 0 : fx[n - 1] != ext)
      break;
    n--;
  }
  return n;
}

static int sumavg_save(const sum_t *s, const char *kind, bson_t *out)
{
  bson_t p;
  uint8_t ib[16], xb[FX_LIMBS * 8];
  unsigned nx = s->fx ? fx_trimmed(s->fx) : 0;
  put_le64(ib, s->ilo);
  put_le64(ib + 8, s->ihi);
  for (unsigned i = 0; i < nx; i++)
    put_le64(xb + 8 * i, s->fx[i]);
  bool ok = save_head(out, kind, &p) && bson_append_document_end(out, &p) &&
            BSON_APPEND_INT64(out, "n", (int64_t)s->n) && append_bin(out, "i", ib, 16) &&
            BSON_APPEND_INT32(out, "s", (int32_t)s->special) &&
            (nx == 0 || append_bin(out, "x", xb, 8 * (size_t)nx));
  return ok ? 0 : ZQL_E_NOMEM;
}

static int sum_save(const void *st, bson_t *out)
{
  return sumavg_save(st, "sum", out);
}

static int avg_save(const void *st, bson_t *out)
{
  return sumavg_save(st, "avg", out);
}

static void sum_destroy(void *st, zql_aggctx_t *ctx)
{
  sum_t *s = st;
  h_free(ctx, s->fx, FX_LIMBS * sizeof *s->fx);
  memset(s, 0, sizeof *s);
}

static int sumavg_load(sum_t *s, const char *kind, const bson_t *in, zql_aggctx_t *ctx,
                       zql_strbuf_t *err)
{
  bson_t p;
  int64_t n = 0, sp = 0;
  const uint8_t *ib = NULL, *xb = NULL;
  uint32_t il = 0, xl = 0;
  bool badt = false;
  int rc;
  memset(s, 0, sizeof *s);
  if ((rc = load_head(in, kind, &p, err)) != 0)
    return rc;
  if (!get_i64(in, "n", &n) || n < 0)
    return bad(err, kind, "bad count 'n'");
  if (!get_i64(in, "s", &sp) || sp < 0 || sp > SP_ALL)
    return bad(err, kind, "bad flags 's'");
  if (!get_bin(in, "i", &ib, &il, &badt) || il != 16)
    return bad(err, kind, "bad integer sum 'i'");
  if (!get_bin(in, "x", &xb, &xl, &badt) && badt)
    return bad(err, kind, "bad accumulator 'x'");
  if (xl % 8 || xl > FX_LIMBS * 8)
    return bad(err, kind, "bad accumulator 'x'");
  if (xl) {
    if (!(s->fx = h_calloc(ctx, FX_LIMBS, sizeof *s->fx)))
      return ZQL_E_NOMEM;
    unsigned nx = xl / 8;
    for (unsigned i = 0; i < nx; i++)
      s->fx[i] = get_le64(xb + 8 * i);
    if (s->fx[nx - 1] >> 63)
      for (unsigned i = nx; i < FX_LIMBS; i++)
        s->fx[i] = UINT64_MAX;
  }
  s->ilo = get_le64(ib);
  s->ihi = get_le64(ib + 8);
  s->n = (uint64_t)n;
  s->special = (uint32_t)sp;
  return 0;
}

static int sum_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  return sumavg_load(st, "sum", in, ctx, err);
}

static int avg_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  return sumavg_load(st, "avg", in, ctx, err);
}

/* }==== */

/* {==== min and max ====================================================================== */

typedef struct {
  zql_val_t v; /* MISSING: no input yet */
} minmax_t;

static void minmax_init(void *st, const zql_aggparams_t *p)
{
  ((minmax_t *)st)->v = zql_val_missing();
}

/* Keep x when it is more extreme (dir -1: smaller, 1: larger); ties go to the smaller
 * representation whatever the direction. */
static int minmax_offer(minmax_t *s, const zql_val_t *x, int dir, zql_aggctx_t *ctx)
{
  if (zql_val_is_nullish(x))
    return 0;
  if (s->v.t != ZQL_V_MISSING) {
    int c = zql_val_cmp(x, &s->v) * dir;
    if (c < 0 || (c == 0 && rep_cmp(x, &s->v) >= 0))
      return 0;
  }
  zql_val_t tmp;
  if (own_copy(ctx, &tmp, x) != 0)
    return ZQL_E_NOMEM;
  own_free(ctx, &s->v);
  s->v = tmp;
  return 0;
}

static int min_add(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  return minmax_offer(st, &in->x, -1, ctx);
}

static int max_add(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  return minmax_offer(st, &in->x, 1, ctx);
}

static int min_merge(void *dst, const void *src, zql_aggctx_t *ctx)
{
  return minmax_offer(dst, &((const minmax_t *)src)->v, -1, ctx);
}

static int max_merge(void *dst, const void *src, zql_aggctx_t *ctx)
{
  return minmax_offer(dst, &((const minmax_t *)src)->v, 1, ctx);
}

static int minmax_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                        zql_val_t *out)
{
  const minmax_t *s = st;
  if (s->v.t == ZQL_V_MISSING) {
    *out = zql_val_null();
    return 0;
  }
  return zql_val_copy(arena, &s->v, out) ? 0 : ZQL_E_NOMEM;
}

static int minmax_save(const minmax_t *s, const char *kind, bson_t *out)
{
  bson_t p;
  bool ok = save_head(out, kind, &p) && bson_append_document_end(out, &p) &&
            zql_val_append_bson(out, "x", 1, &s->v);
  return ok ? 0 : ZQL_E_NOMEM;
}

static int min_save(const void *st, bson_t *out)
{
  return minmax_save(st, "min", out);
}

static int max_save(const void *st, bson_t *out)
{
  return minmax_save(st, "max", out);
}

static void minmax_destroy(void *st, zql_aggctx_t *ctx)
{
  own_free(ctx, &((minmax_t *)st)->v);
}

static int minmax_load(minmax_t *s, const char *kind, const bson_t *in, zql_aggctx_t *ctx,
                       zql_strbuf_t *err)
{
  bson_t p;
  bson_iter_t it;
  int rc;
  s->v = zql_val_missing();
  if ((rc = load_head(in, kind, &p, err)) != 0)
    return rc;
  if (!bson_iter_init_find(&it, in, "x"))
    return 0;
  zql_val_t x;
  zql_val_from_iter(&it, &x);
  if (zql_val_is_nullish(&x))
    return bad(err, kind, "null value 'x'");
  return minmax_offer(s, &x, 1, ctx);
}

static int min_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  return minmax_load(st, "min", in, ctx, err);
}

static int max_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  return minmax_load(st, "max", in, ctx, err);
}

/* }==== */

/* {==== first and last =================================================================== */

typedef struct {
  zql_val_t x, by; /* x MISSING: no input yet */
  int64_t seq;
} firstlast_t;

/* The order of candidate rows: by (R7), then _seq, then x and by representations. */
static int fl_cmp(const zql_val_t *xa, const zql_val_t *ba, int64_t sa, const zql_val_t *xb,
                  const zql_val_t *bb, int64_t sb)
{
  int c = zql_val_cmp(ba, bb);
  if (c)
    return c;
  if (sa != sb)
    return sa < sb ? -1 : 1;
  c = full_cmp(xa, xb);
  return c ? c : rep_cmp(ba, bb);
}

/* Keep (x, by, seq) when it precedes (dir -1, first) or follows (dir 1, last). */
static int fl_offer(firstlast_t *s, const zql_val_t *x, const zql_val_t *by, int64_t seq,
                    int dir, zql_aggctx_t *ctx)
{
  if (zql_val_is_nullish(x) || zql_val_is_nullish(by))
    return 0;
  if (s->x.t != ZQL_V_MISSING && fl_cmp(x, by, seq, &s->x, &s->by, s->seq) * dir <= 0)
    return 0;
  zql_val_t nx, nb;
  if (own_copy(ctx, &nx, x) != 0)
    return ZQL_E_NOMEM;
  if (own_copy(ctx, &nb, by) != 0) {
    own_free(ctx, &nx);
    return ZQL_E_NOMEM;
  }
  own_free(ctx, &s->x);
  own_free(ctx, &s->by);
  s->x = nx;
  s->by = nb;
  s->seq = seq;
  return 0;
}

static void fl_init(void *st, const zql_aggparams_t *p)
{
  firstlast_t *s = st;
  s->x = s->by = zql_val_missing();
  s->seq = 0;
}

static int first_add(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  return fl_offer(st, &in->x, &in->by, in->seq, -1, ctx);
}

static int last_add(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  return fl_offer(st, &in->x, &in->by, in->seq, 1, ctx);
}

static int first_merge(void *dst, const void *src, zql_aggctx_t *ctx)
{
  const firstlast_t *s = src;
  return fl_offer(dst, &s->x, &s->by, s->seq, -1, ctx);
}

static int last_merge(void *dst, const void *src, zql_aggctx_t *ctx)
{
  const firstlast_t *s = src;
  return fl_offer(dst, &s->x, &s->by, s->seq, 1, ctx);
}

static int fl_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                    zql_val_t *out)
{
  const firstlast_t *s = st;
  if (s->x.t == ZQL_V_MISSING) {
    *out = zql_val_null();
    return 0;
  }
  return zql_val_copy(arena, &s->x, out) ? 0 : ZQL_E_NOMEM;
}

static int fl_save(const firstlast_t *s, const char *kind, bson_t *out)
{
  bson_t p;
  bool ok = save_head(out, kind, &p) && bson_append_document_end(out, &p);
  if (ok && s->x.t != ZQL_V_MISSING)
    ok = zql_val_append_bson(out, "x", 1, &s->x) && zql_val_append_bson(out, "by", 2, &s->by) &&
         BSON_APPEND_INT64(out, "s", s->seq);
  return ok ? 0 : ZQL_E_NOMEM;
}

static int first_save(const void *st, bson_t *out)
{
  return fl_save(st, "first", out);
}

static int last_save(const void *st, bson_t *out)
{
  return fl_save(st, "last", out);
}

static void fl_destroy(void *st, zql_aggctx_t *ctx)
{
  firstlast_t *s = st;
  own_free(ctx, &s->x);
  own_free(ctx, &s->by);
}

static int fl_load(firstlast_t *s, const char *kind, const bson_t *in, zql_aggctx_t *ctx,
                   zql_strbuf_t *err)
{
  bson_t p;
  bson_iter_t ix, ib;
  int64_t seq;
  int rc;
  fl_init(s, NULL);
  if ((rc = load_head(in, kind, &p, err)) != 0)
    return rc;
  if (!bson_iter_init_find(&ix, in, "x"))
    return 0;
  if (!bson_iter_init_find(&ib, in, "by") || !get_i64(in, "s", &seq))
    return bad(err, kind, "'x' without 'by' and 's'");
  zql_val_t x, by;
  zql_val_from_iter(&ix, &x);
  zql_val_from_iter(&ib, &by);
  if (zql_val_is_nullish(&x) || zql_val_is_nullish(&by))
    return bad(err, kind, "null 'x' or 'by'");
  return fl_offer(s, &x, &by, seq, -1, ctx);
}

static int first_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  return fl_load(st, "first", in, ctx, err);
}

static int last_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  return fl_load(st, "last", in, ctx, err);
}

/* }==== */

/* {==== collect, sample, maximum, minimum: the N best rows =============================== */

enum { BN_COLLECT, BN_SAMPLE, BN_MAXIMUM, BN_MINIMUM };

typedef struct {
  uint64_t h;  /* sample: XXH3 of the _seq */
  int64_t seq;
  zql_val_t w; /* maximum, minimum: the weight (a number); else MISSING */
  zql_val_t v; /* owned */
} item_t;

typedef struct {
  item_t *it;   /* a binary heap, the worst item at the root */
  uint32_t n, alloc;
  int64_t cap;  /* N */
} bestn_t;

static const char *const bn_name[] = {"collect", "sample", "maximum", "minimum"};

/* < 0 when a is better than b (kept first): a total order of the items' contents. */
static int item_cmp(int kind, const item_t *a, const item_t *b)
{
  int c;
  switch (kind) {
  case BN_SAMPLE:
    if (a->h != b->h)
      return a->h < b->h ? -1 : 1;
    break;
  case BN_MAXIMUM:
    if ((c = zql_val_cmp(&b->w, &a->w)) != 0)
      return c;
    break;
  case BN_MINIMUM:
    if ((c = zql_val_cmp(&a->w, &b->w)) != 0)
      return c;
    break;
  default:
    break;
  }
  if (a->seq != b->seq)
    return a->seq < b->seq ? -1 : 1;
  if ((c = full_cmp(&a->v, &b->v)) != 0)
    return c;
  return rep_cmp(&a->w, &b->w);
}

static int qcmp_seq(const void *a, const void *b)
{
  return item_cmp(BN_COLLECT, a, b);
}

static int qcmp_max(const void *a, const void *b)
{
  return item_cmp(BN_MAXIMUM, a, b);
}

static int qcmp_min(const void *a, const void *b)
{
  return item_cmp(BN_MINIMUM, a, b);
}

static uint64_t seq_hash(int64_t seq)
{
  uint8_t b[8];
  put_le64(b, (uint64_t)seq);
  return zql_hash_bytes(b, 8);
}

static void bn_sift_down(int kind, bestn_t *s, uint32_t i)
{
  for (;;) {
    uint32_t l = 2 * i + 1, r = l + 1, w = i;
    if (l < s->n && item_cmp(kind, &s->it[l], &s->it[w]) > 0)
      w = l;
    if (r < s->n && item_cmp(kind, &s->it[r], &s->it[w]) > 0)
      w = r;
    if (w == i)
      return;
    item_t t = s->it[i];
    s->it[i] = s->it[w];
    s->it[w] = t;
    i = w;
  }
}

static void bn_sift_up(int kind, bestn_t *s, uint32_t i)
{
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (item_cmp(kind, &s->it[parent], &s->it[i]) >= 0)
      return;
    item_t t = s->it[i];
    s->it[i] = s->it[parent];
    s->it[parent] = t;
    i = parent;
  }
}

/* Offer an item (its value not owned yet): kept when among the cap best. */
static int bn_offer(int kind, bestn_t *s, const item_t *x, zql_aggctx_t *ctx)
{
  int64_t cap = s->cap < (int64_t)UINT32_MAX - 1 ? s->cap : (int64_t)UINT32_MAX - 1;
  if (cap <= 0)
    return 0;
  if ((int64_t)s->n >= cap) {
    if (item_cmp(kind, x, &s->it[0]) >= 0)
      return 0;
    item_t t = *x;
    if (own_copy(ctx, &t.v, &x->v) != 0)
      return ZQL_E_NOMEM;
    own_free(ctx, &s->it[0].v);
    s->it[0] = t;
    bn_sift_down(kind, s, 0);
    return 0;
  }
  if (s->n == s->alloc) {
    int64_t na = s->alloc ? (int64_t)s->alloc * 2 : 8;
    if (na > cap)
      na = cap;
    item_t *it = h_realloc(ctx, s->it, s->alloc * sizeof *it, (size_t)na * sizeof *it);
    if (!it)
      return ZQL_E_NOMEM;
    s->it = it;
    s->alloc = (uint32_t)na;
  }
  item_t t = *x;
  if (own_copy(ctx, &t.v, &x->v) != 0)
    return ZQL_E_NOMEM;
  s->it[s->n++] = t;
  bn_sift_up(kind, s, s->n - 1);
  return 0;
}

static void bn_init(void *st, const zql_aggparams_t *p)
{
  bestn_t *s = st;
  s->it = NULL;
  s->n = s->alloc = 0;
  s->cap = p ? p->n : 0;
}

static int bn_add(int kind, void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  item_t x = {0, in->seq, zql_val_missing(), in->x};
  if (zql_val_is_nullish(&in->x))
    return 0;
  if (kind == BN_SAMPLE)
    x.h = seq_hash(in->seq);
  if (kind == BN_MAXIMUM || kind == BN_MINIMUM) {
    if (!zql_val_is_num(&in->weight)) {
      ctx->type_skips++;
      return 0;
    }
    x.w = in->weight;
  }
  return bn_offer(kind, st, &x, ctx);
}

static int collect_add(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  return bn_add(BN_COLLECT, st, in, ctx);
}

static int sample_add(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  return bn_add(BN_SAMPLE, st, in, ctx);
}

static int maximum_add(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  return bn_add(BN_MAXIMUM, st, in, ctx);
}

static int minimum_add(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  return bn_add(BN_MINIMUM, st, in, ctx);
}

static int bn_merge(int kind, void *dst, const void *src, zql_aggctx_t *ctx)
{
  bestn_t *d = dst;
  const bestn_t *s = src;
  if (d->cap != s->cap)
    return ZQL_AGG_MISMATCH;
  for (uint32_t i = 0; i < s->n; i++) {
    int rc = bn_offer(kind, d, &s->it[i], ctx);
    if (rc)
      return rc;
  }
  return 0;
}

static int collect_merge(void *dst, const void *src, zql_aggctx_t *ctx)
{
  return bn_merge(BN_COLLECT, dst, src, ctx);
}

static int sample_merge(void *dst, const void *src, zql_aggctx_t *ctx)
{
  return bn_merge(BN_SAMPLE, dst, src, ctx);
}

static int maximum_merge(void *dst, const void *src, zql_aggctx_t *ctx)
{
  return bn_merge(BN_MAXIMUM, dst, src, ctx);
}

static int minimum_merge(void *dst, const void *src, zql_aggctx_t *ctx)
{
  return bn_merge(BN_MINIMUM, dst, src, ctx);
}

/* The items sorted by cmp, in the arena (or on the heap when arena is NULL). */
static item_t *bn_sorted(const bestn_t *s, int (*cmp)(const void *, const void *),
                         zql_arena_t *arena)
{
  size_t bytes = (s->n ? s->n : 1) * sizeof(item_t);
  item_t *it = arena ? zql_arena_alloc(arena, bytes) : zql_malloc(bytes);
  if (!it)
    return NULL;
  if (s->n)
    memcpy(it, s->it, s->n * sizeof *it);
  qsort(it, s->n, sizeof *it, cmp);
  return it;
}

static int bn_final(int kind, const void *st, zql_arena_t *arena, zql_val_t *out)
{
  const bestn_t *s = st;
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  char key[24];
  item_t *it = bn_sorted(s, kind == BN_MAXIMUM ? qcmp_max
                            : kind == BN_MINIMUM ? qcmp_min
                                                 : qcmp_seq,
                         arena);
  if (!it)
    return ZQL_E_NOMEM;
  size_t top = zql_bson_begin(&sb);
  for (uint32_t i = 0; i < s->n; i++) {
    size_t kl = idx_key(key, i);
    if (kind == BN_MAXIMUM || kind == BN_MINIMUM) {
      size_t d = zql_bson_begin_sub(&sb, key, kl, false);
      zql_bson_append(&sb, "value", 5, &it[i].v);
      zql_bson_append(&sb, "weight", 6, &it[i].w);
      zql_bson_end(&sb, d);
    } else {
      zql_bson_append(&sb, key, kl, &it[i].v);
    }
  }
  zql_bson_end(&sb, top);
  return out_doc(&sb, top, true, arena, out);
}

static int collect_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                         zql_val_t *out)
{
  return bn_final(BN_COLLECT, st, arena, out);
}

static int sample_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                        zql_val_t *out)
{
  return bn_final(BN_SAMPLE, st, arena, out);
}

static int maximum_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                         zql_val_t *out)
{
  return bn_final(BN_MAXIMUM, st, arena, out);
}

static int minimum_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                         zql_val_t *out)
{
  return bn_final(BN_MINIMUM, st, arena, out);
}

/* Payload: e: [{s: _seq, x: value[, w: weight]}, ...] in (_seq, value) order. */
static int bn_save(int kind, const void *st, bson_t *out)
{
  const bestn_t *s = st;
  bson_t p, arr, el;
  char key[24];
  item_t *it = bn_sorted(s, qcmp_seq, NULL);
  if (!it)
    return ZQL_E_NOMEM;
  bool ok = save_head(out, bn_name[kind], &p) && BSON_APPEND_INT64(&p, "n", s->cap) &&
            bson_append_document_end(out, &p) && BSON_APPEND_ARRAY_BEGIN(out, "e", &arr);
  for (uint32_t i = 0; ok && i < s->n; i++) {
    size_t kl = idx_key(key, i);
    ok = bson_append_document_begin(&arr, key, (int)kl, &el) &&
         BSON_APPEND_INT64(&el, "s", it[i].seq) && zql_val_append_bson(&el, "x", 1, &it[i].v) &&
         zql_val_append_bson(&el, "w", 1, &it[i].w) && bson_append_document_end(&arr, &el);
  }
  ok = ok && bson_append_array_end(out, &arr);
  zql_free(it);
  return ok ? 0 : ZQL_E_NOMEM;
}

static int collect_save(const void *st, bson_t *out)
{
  return bn_save(BN_COLLECT, st, out);
}

static int sample_save(const void *st, bson_t *out)
{
  return bn_save(BN_SAMPLE, st, out);
}

static int maximum_save(const void *st, bson_t *out)
{
  return bn_save(BN_MAXIMUM, st, out);
}

static int minimum_save(const void *st, bson_t *out)
{
  return bn_save(BN_MINIMUM, st, out);
}

static void bn_destroy(void *st, zql_aggctx_t *ctx)
{
  bestn_t *s = st;
  for (uint32_t i = 0; i < s->n; i++)
    own_free(ctx, &s->it[i].v);
  h_free(ctx, s->it, s->alloc * sizeof *s->it);
  s->it = NULL;
  s->n = s->alloc = 0;
}

static int bn_load(int kind, void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  bestn_t *s = st;
  const char *name = bn_name[kind];
  bson_t p, arr;
  bson_iter_t ai;
  int rc;
  bn_init(s, NULL);
  if ((rc = load_head(in, name, &p, err)) != 0)
    return rc;
  if (!get_i64(&p, "n", &s->cap))
    return bad(err, name, "no N 'p.n'");
  if (!get_doc(in, "e", true, &arr) || !bson_iter_init(&ai, &arr))
    return bad(err, name, "no items 'e'");
  bool weighted = kind == BN_MAXIMUM || kind == BN_MINIMUM;
  while (bson_iter_next(&ai)) {
    bson_t el;
    bson_iter_t ix, iw;
    uint32_t len;
    const uint8_t *data;
    item_t x = {0, 0, zql_val_missing(), zql_val_missing()};
    if (!BSON_ITER_HOLDS_DOCUMENT(&ai))
      goto bad_item;
    bson_iter_document(&ai, &len, &data);
    if (!bson_init_static(&el, data, len) || !get_i64(&el, "s", &x.seq) ||
        !bson_iter_init_find(&ix, &el, "x"))
      goto bad_item;
    zql_val_from_iter(&ix, &x.v);
    if (zql_val_is_nullish(&x.v))
      goto bad_item;
    if (weighted) {
      if (!bson_iter_init_find(&iw, &el, "w"))
        goto bad_item;
      zql_val_from_iter(&iw, &x.w);
      if (!zql_val_is_num(&x.w))
        goto bad_item;
    }
    if ((int64_t)s->n >= s->cap)
      goto bad_item;
    if (kind == BN_SAMPLE)
      x.h = seq_hash(x.seq);
    if ((rc = bn_offer(kind, s, &x, ctx)) != 0) {
      bn_destroy(s, ctx);
      return rc;
    }
  }
  return 0;
bad_item:
  bn_destroy(s, ctx);
  return bad(err, name, "bad item in 'e'");
}

static int collect_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  return bn_load(BN_COLLECT, st, in, ctx, err);
}

static int sample_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  return bn_load(BN_SAMPLE, st, in, ctx, err);
}

static int maximum_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  return bn_load(BN_MAXIMUM, st, in, ctx, err);
}

static int minimum_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  return bn_load(BN_MINIMUM, st, in, ctx, err);
}

/* }==== */

/* {==== histogram ======================================================================== */

typedef struct {
  const double *edges; /* the plan's (borrowed: plan memory outlives states) or owned */
  uint64_t *counts;    /* NULL until a value is counted; nedges - 1 buckets */
  uint32_t nedges;
  bool own_edges;
} hist_t;

static void hist_init(void *st, const zql_aggparams_t *p)
{
  hist_t *s = st;
  s->edges = p && p->edges ? p->edges : NULL;
  s->nedges = s->edges ? p->nedges : 0;
  s->counts = NULL;
  s->own_edges = false;
}

static uint32_t hist_nb(const hist_t *s)
{
  return s->nedges >= 2 ? s->nedges - 1 : 0;
}

/* The bucket of a number, or -1 outside [e_0, e_last] (NaN is outside). */
static int64_t hist_bucket(const hist_t *s, const zql_val_t *x)
{
  if (s->nedges < 2)
    return -1;
  zql_val_t lo = zql_val_double(s->edges[0]), hi = zql_val_double(s->edges[s->nedges - 1]);
  if (zql_val_cmp(x, &lo) < 0 || zql_val_cmp(x, &hi) > 0 || (x->t == ZQL_V_DOUBLE && isnan(x->u.d)))
    return -1;
  uint32_t a = 0, b = s->nedges - 2; /* the largest i <= b with edges[i] <= x */
  while (a < b) {
    uint32_t mid = a + (b - a + 1) / 2;
    zql_val_t e = zql_val_double(s->edges[mid]);
    if (zql_val_cmp(&e, x) <= 0)
      a = mid;
    else
      b = mid - 1;
  }
  return a;
}

static int hist_add(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  hist_t *s = st;
  if (!zql_val_is_num(&in->x)) {
    if (!zql_val_is_nullish(&in->x))
      ctx->type_skips++;
    return 0;
  }
  int64_t b = hist_bucket(s, &in->x);
  if (b < 0)
    return 0;
  if (!s->counts && !(s->counts = h_calloc(ctx, hist_nb(s), sizeof *s->counts)))
    return ZQL_E_NOMEM;
  s->counts[b]++;
  return 0;
}

static int hist_merge(void *dst, const void *src, zql_aggctx_t *ctx)
{
  hist_t *d = dst;
  const hist_t *s = src;
  if (d->nedges != s->nedges)
    return ZQL_AGG_MISMATCH;
  for (uint32_t i = 0; i < d->nedges; i++)
    if (!(d->edges[i] == s->edges[i]))
      return ZQL_AGG_MISMATCH;
  if (!s->counts)
    return 0;
  if (!d->counts && !(d->counts = h_calloc(ctx, hist_nb(d), sizeof *d->counts)))
    return ZQL_E_NOMEM;
  for (uint32_t i = 0; i < hist_nb(d); i++)
    d->counts[i] += s->counts[i];
  return 0;
}

static int hist_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                      zql_val_t *out)
{
  const hist_t *s = st;
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  char key[24];
  size_t top = zql_bson_begin(&sb);
  for (uint32_t i = 0; i < hist_nb(s); i++) {
    zql_val_t lo = num_val(s->edges[i]), hi = num_val(s->edges[i + 1]);
    zql_val_t n = zql_val_int(s->counts ? (int64_t)s->counts[i] : 0);
    size_t d = zql_bson_begin_sub(&sb, key, idx_key(key, i), false);
    zql_bson_append(&sb, "lo", 2, &lo);
    zql_bson_append(&sb, "hi", 2, &hi);
    zql_bson_append(&sb, "count", 5, &n);
    zql_bson_end(&sb, d);
  }
  zql_bson_end(&sb, top);
  return out_doc(&sb, top, true, arena, out);
}

/* Payload: p: {edges: [double...]}, c: [int64 per bucket]. */
static int hist_save(const void *st, bson_t *out)
{
  const hist_t *s = st;
  bson_t p, arr;
  char key[24];
  bool ok = save_head(out, "histogram", &p) && BSON_APPEND_ARRAY_BEGIN(&p, "edges", &arr);
  for (uint32_t i = 0; ok && i < s->nedges; i++)
    ok = bson_append_double(&arr, key, (int)idx_key(key, i), s->edges[i]);
  ok = ok && bson_append_array_end(&p, &arr) && bson_append_document_end(out, &p) &&
       BSON_APPEND_ARRAY_BEGIN(out, "c", &arr);
  for (uint32_t i = 0; ok && i < hist_nb(s); i++)
    ok = bson_append_int64(&arr, key, (int)idx_key(key, i),
                           s->counts ? (int64_t)s->counts[i] : 0);
  ok = ok && bson_append_array_end(out, &arr);
  return ok ? 0 : ZQL_E_NOMEM;
}

static void hist_destroy(void *st, zql_aggctx_t *ctx)
{
  hist_t *s = st;
  h_free(ctx, s->counts, hist_nb(s) * sizeof *s->counts);
  if (s->own_edges)
    h_free(ctx, s->edges, s->nedges * sizeof *s->edges);
  s->counts = NULL;
  s->edges = NULL;
  s->nedges = 0;
  s->own_edges = false;
}

static int hist_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  hist_t *s = st;
  bson_t p, arr;
  bson_iter_t it;
  int rc;
  hist_init(s, NULL);
  if ((rc = load_head(in, "histogram", &p, err)) != 0)
    return rc;
  if (!get_doc(&p, "edges", true, &arr))
    return bad(err, "histogram", "no edges 'p.edges'");
  uint32_t n = bson_count_keys(&arr);
  double *edges = h_calloc(ctx, n ? n : 1, sizeof *edges);
  if (!edges)
    return ZQL_E_NOMEM;
  s->edges = edges;
  s->nedges = n;
  s->own_edges = true;
  uint32_t i = 0;
  if (!bson_iter_init(&it, &arr))
    goto bad_state;
  while (bson_iter_next(&it)) {
    if (!BSON_ITER_HOLDS_DOUBLE(&it) || i >= n)
      goto bad_state;
    edges[i] = bson_iter_double(&it);
    if (!isfinite(edges[i]) || (i > 0 && !(edges[i] > edges[i - 1])))
      goto bad_state;
    i++;
  }
  if (i != n || !get_doc(in, "c", true, &arr) || bson_count_keys(&arr) != hist_nb(s) ||
      !bson_iter_init(&it, &arr))
    goto bad_state;
  for (i = 0; bson_iter_next(&it); i++) {
    if (!BSON_ITER_HOLDS_INT64(&it) || bson_iter_int64(&it) < 0)
      goto bad_state;
    int64_t c = bson_iter_int64(&it);
    if (!c)
      continue;
    if (!s->counts && !(s->counts = h_calloc(ctx, hist_nb(s), sizeof *s->counts))) {
      hist_destroy(s, ctx);
      return ZQL_E_NOMEM;
    }
    s->counts[i] = (uint64_t)c;
  }
  return 0;
bad_state:
  hist_destroy(s, ctx);
  return bad(err, "histogram", "bad edges or counts");
}

/* }==== */

/* {==== retention ======================================================================== */

typedef struct {
  uint64_t seen; /* bit i: some row had condition i TRUE */
  uint32_t nconds;
} ret_t;

static uint32_t clamp_conds(uint32_t n)
{
  return n > ZQL_AGG_MAX_CONDS ? ZQL_AGG_MAX_CONDS : n;
}

static uint64_t cond_mask(const bool *conds, uint32_t n)
{
  uint64_t m = 0;
  for (uint32_t i = 0; conds && i < n; i++)
    if (conds[i])
      m |= UINT64_C(1) << i;
  return m;
}

static uint64_t all_conds(uint32_t n)
{
  return n >= 64 ? UINT64_MAX : (UINT64_C(1) << n) - 1;
}

static void ret_init(void *st, const zql_aggparams_t *p)
{
  ret_t *s = st;
  s->seen = 0;
  s->nconds = p ? clamp_conds(p->nconds) : 0;
}

static int ret_add(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  ret_t *s = st;
  s->seen |= cond_mask(in->conds, s->nconds);
  return 0;
}

static int ret_merge(void *dst, const void *src, zql_aggctx_t *ctx)
{
  ret_t *d = dst;
  const ret_t *s = src;
  if (d->nconds != s->nconds)
    return ZQL_AGG_MISMATCH;
  d->seen |= s->seen;
  return 0;
}

static int ret_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                     zql_val_t *out)
{
  const ret_t *s = st;
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  char key[24];
  size_t top = zql_bson_begin(&sb);
  for (uint32_t i = 0; i < s->nconds; i++) {
    zql_val_t b = zql_val_bool((s->seen & 1) && (s->seen >> i & 1));
    zql_bson_append(&sb, key, idx_key(key, i), &b);
  }
  zql_bson_end(&sb, top);
  return out_doc(&sb, top, true, arena, out);
}

static int ret_save(const void *st, bson_t *out)
{
  const ret_t *s = st;
  bson_t p;
  bool ok = save_head(out, "retention", &p) && BSON_APPEND_INT32(&p, "n", (int32_t)s->nconds) &&
            bson_append_document_end(out, &p) && BSON_APPEND_INT64(out, "m", (int64_t)s->seen);
  return ok ? 0 : ZQL_E_NOMEM;
}

static int ret_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  ret_t *s = st;
  bson_t p;
  int64_t n, m;
  int rc;
  ret_init(s, NULL);
  if ((rc = load_head(in, "retention", &p, err)) != 0)
    return rc;
  if (!get_i64(&p, "n", &n) || n < 0 || n > ZQL_AGG_MAX_CONDS || !get_i64(in, "m", &m) ||
      ((uint64_t)m & ~all_conds((uint32_t)n)))
    return bad(err, "retention", "bad conditions");
  s->nconds = (uint32_t)n;
  s->seen = (uint64_t)m;
  return 0;
}

static void ret_destroy(void *st, zql_aggctx_t *ctx)
{
}

/* }==== */

/* {==== window_funnel and sequence_match: the rows where a condition held ================ */

typedef struct {
  int64_t ts, seq;
  uint64_t mask;
} evrow_t;

typedef struct {
  evrow_t *rows; /* unsorted; compacted to the ROWS_CAP first when 2 * ROWS_CAP */
  uint32_t n, alloc;
  uint32_t nconds;
  int64_t window;      /* window_funnel: ms */
  const char *pattern; /* sequence_match: the plan's (borrowed) or owned */
  size_t plen;
  bool own_pattern;
} ev_t;

static int evrow_cmp(const void *pa, const void *pb)
{
  const evrow_t *a = pa, *b = pb;
  if (a->ts != b->ts)
    return a->ts < b->ts ? -1 : 1;
  if (a->seq != b->seq)
    return a->seq < b->seq ? -1 : 1;
  return (a->mask > b->mask) - (a->mask < b->mask);
}

/* Milliseconds of a time value: date, timestamp (seconds), ObjectId (its seconds) or an
 * integer (taken as ms). */
static bool ev_ms(const zql_val_t *v, int64_t *ms)
{
  switch ((zql_vtype_t)v->t) {
  case ZQL_V_DATE:
  case ZQL_V_INT:
    *ms = v->u.i;
    return true;
  case ZQL_V_TIMESTAMP:
    *ms = (int64_t)v->u.ts.t * 1000;
    return true;
  case ZQL_V_OID:
    *ms = (int64_t)((uint32_t)v->u.p[0] << 24 | (uint32_t)v->u.p[1] << 16 |
                    (uint32_t)v->u.p[2] << 8 | v->u.p[3]) * 1000;
    return true;
  default:
    return false;
  }
}

static void ev_init(ev_t *s, const zql_aggparams_t *p, bool funnel)
{
  memset(s, 0, sizeof *s);
  if (!p)
    return;
  s->nconds = clamp_conds(p->nconds);
  if (funnel) {
    s->window = p->window_ms > 0 ? p->window_ms : 0;
  } else if (p->pattern) {
    s->pattern = p->pattern;
    s->plen = strlen(p->pattern);
  }
}

static void funnel_init(void *st, const zql_aggparams_t *p)
{
  ev_init(st, p, true);
}

static void seqm_init(void *st, const zql_aggparams_t *p)
{
  ev_init(st, p, false);
}

/* Keep the ROWS_CAP smallest rows (by (ts, seq, mask)); the others count as skips. */
static void ev_compact(ev_t *s, zql_aggctx_t *ctx)
{
  if (s->n <= ROWS_CAP)
    return;
  qsort(s->rows, s->n, sizeof *s->rows, evrow_cmp);
  ctx->type_skips += s->n - ROWS_CAP;
  s->n = ROWS_CAP;
}

static int ev_push(ev_t *s, const evrow_t *r, zql_aggctx_t *ctx)
{
  if (s->n == 2 * ROWS_CAP)
    ev_compact(s, ctx);
  if (s->n == s->alloc) {
    uint32_t na = s->alloc ? s->alloc * 2 : 16;
    if (na > 2 * ROWS_CAP)
      na = 2 * ROWS_CAP;
    evrow_t *rows = h_realloc(ctx, s->rows, s->alloc * sizeof *rows, na * sizeof *rows);
    if (!rows)
      return ZQL_E_NOMEM;
    s->rows = rows;
    s->alloc = na;
  }
  s->rows[s->n++] = *r;
  return 0;
}

static int ev_add(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  ev_t *s = st;
  evrow_t r = {0, in->seq, cond_mask(in->conds, s->nconds)};
  if (!r.mask || zql_val_is_nullish(&in->by))
    return 0;
  if (!ev_ms(&in->by, &r.ts)) {
    ctx->type_skips++;
    return 0;
  }
  return ev_push(s, &r, ctx);
}

static bool ev_same_params(const ev_t *a, const ev_t *b)
{
  return a->nconds == b->nconds && a->window == b->window && a->plen == b->plen &&
         (a->plen == 0 || memcmp(a->pattern, b->pattern, a->plen) == 0);
}

static int ev_merge(void *dst, const void *src, zql_aggctx_t *ctx)
{
  ev_t *d = dst;
  const ev_t *s = src;
  if (!ev_same_params(d, s))
    return ZQL_AGG_MISMATCH;
  for (uint32_t i = 0; i < s->n; i++) {
    int rc = ev_push(d, &s->rows[i], ctx);
    if (rc)
      return rc;
  }
  return 0;
}

/* The canonical row list: sorted, at most ROWS_CAP; in arena (or heap when NULL). */
static evrow_t *ev_sorted(const ev_t *s, zql_arena_t *arena, uint32_t *n)
{
  size_t bytes = (s->n ? s->n : 1) * sizeof(evrow_t);
  evrow_t *r = arena ? zql_arena_alloc(arena, bytes) : zql_malloc(bytes);
  if (!r)
    return NULL;
  if (s->n)
    memcpy(r, s->rows, s->n * sizeof *r);
  qsort(r, s->n, sizeof *r, evrow_cmp);
  *n = s->n < ROWS_CAP ? s->n : ROWS_CAP;
  return r;
}

/* window_funnel (ClickHouse windowFunnel, default mode, restated): with the rows sorted
 * by (ts, _seq), the level is the largest k such that distinct rows r1 < r2 < ... < rk
 * have condition i TRUE at ri and ts(rk) <= ts(r1) + window; start is ts(r1) of the
 * earliest r1 achieving that level. One row advances a chain by one step only (as in
 * ClickHouse, which adds a row's conditions last-first so a row cannot chain itself).
 * For a fixed r1 the earliest matching rows (greedy) are optimal, and those positions
 * only move forward as r1 moves forward, so one pointer per level gives O(rows * k). */
static void funnel_level(const evrow_t *r, uint32_t n, uint32_t nconds, int64_t window,
                         uint32_t *ptr, int64_t *level, int64_t *start)
{
  *level = 0;
  *start = 0;
  for (uint32_t k = 0; k < nconds; k++)
    ptr[k] = 0;
  for (uint32_t s = 0; s < n && nconds > 0; s++) {
    if (!(r[s].mask & 1))
      continue;
    int64_t deadline = r[s].ts > INT64_MAX - window ? INT64_MAX : r[s].ts + window;
    int64_t lv = 1;
    uint32_t prev = s;
    for (uint32_t k = 1; k < nconds; k++) {
      while (ptr[k] < n && (ptr[k] <= prev || !(r[ptr[k]].mask >> k & 1)))
        ptr[k]++;
      if (ptr[k] >= n || r[ptr[k]].ts > deadline)
        break;
      lv = k + 1;
      prev = ptr[k];
    }
    if (lv > *level) {
      *level = lv;
      *start = r[s].ts;
      if (lv == nconds)
        break;
    }
  }
}

static int funnel_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                        zql_val_t *out)
{
  const ev_t *s = st;
  uint32_t n;
  int64_t level, start;
  evrow_t *r = ev_sorted(s, arena, &n);
  uint32_t *ptr = zql_arena_alloc(arena, (s->nconds ? s->nconds : 1) * sizeof *ptr);
  if (!r || !ptr)
    return ZQL_E_NOMEM;
  funnel_level(r, n, s->nconds, s->window, ptr, &level, &start);
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_val_t lv = zql_val_int(level), st0 = level ? zql_val_date(start) : zql_val_null();
  size_t top = zql_bson_begin(&sb);
  zql_bson_append(&sb, "level", 5, &lv);
  zql_bson_append(&sb, "start", 5, &st0);
  zql_bson_end(&sb, top);
  return out_doc(&sb, top, false, arena, out);
}

/* A compiled sequence pattern. */
enum { PT_COND, PT_ANY, PT_STAR };
typedef struct {
  uint8_t op;
  uint8_t cond; /* PT_COND: the condition index (0-based) */
} ptok_t;

/* Parse pattern (len bytes) into toks (room for len tokens). 0 or an error code. */
static int seq_compile(const char *pat, size_t len, uint32_t nconds, ptok_t *toks,
                       size_t *ntoks, zql_strbuf_t *err)
{
  size_t i = 0, n = 0;
  while (i < len) {
    if (pat[i] == '.') {
      bool star = i + 1 < len && pat[i + 1] == '*';
      toks[n++].op = star ? PT_STAR : PT_ANY;
      i += star ? 2 : 1;
      continue;
    }
    if (pat[i] == '(' && i + 1 < len && pat[i + 1] == '?') {
      size_t j = i + 2;
      uint32_t v = 0;
      if (j < len && pat[j] == 't') {
        if (err)
          zql_strbuf_addf(err, "time constraints such as '(?t>=N)' are not supported in "
                               "sequence_match patterns");
        return ZQL_E_ARG_KIND;
      }
      for (; j < len && pat[j] >= '0' && pat[j] <= '9'; j++)
        if (v <= 1000) /* saturates: out of range anyway */
          v = v * 10 + (uint32_t)(pat[j] - '0');
      if (j == i + 2 || j >= len || pat[j] != ')') {
        if (err)
          zql_strbuf_addf(err, "malformed condition reference at offset %zu of the "
                               "sequence pattern (expected '(?N)')", i);
        return ZQL_E_ARG_KIND;
      }
      if (v < 1 || v > nconds) {
        if (err)
          zql_strbuf_addf(err, "'(?%" PRIu32 ")' refers to no condition: the call has %" PRIu32
                               " condition%s", v, nconds, nconds == 1 ? "" : "s");
        return ZQL_E_ARG_RANGE;
      }
      toks[n].op = PT_COND;
      toks[n++].cond = (uint8_t)(v - 1);
      i = j + 1;
      continue;
    }
    if (err)
      zql_strbuf_addf(err, "unexpected '%c' at offset %zu of the sequence pattern (only "
                           "'(?N)', '.' and '.*' are allowed)", pat[i], i);
    return ZQL_E_ARG_KIND;
  }
  if (n == 0) {
    if (err)
      zql_strbuf_adds(err, "empty sequence pattern");
    return ZQL_E_ARG_KIND;
  }
  *ntoks = n;
  return 0;
}

int zql_seqpattern_check(const char *pattern, uint32_t nconds, zql_strbuf_t *err)
{
  size_t len = strlen(pattern), n;
  ptok_t *toks = zql_malloc((len ? len : 1) * sizeof *toks);
  if (!toks)
    return ZQL_E_NOMEM;
  int rc = seq_compile(pattern, len, clamp_conds(nconds), toks, &n, err);
  zql_free(toks);
  return rc;
}

/* Epsilon closure: a `.*` at position i lets position i + 1 start too. */
static void seq_close(const ptok_t *t, size_t m, uint8_t *act)
{
  for (size_t i = 0; i < m; i++)
    if (act[i] && t[i].op == PT_STAR)
      act[i + 1] = 1;
}

/* sequence_match (ClickHouse sequenceMatch without time constraints): true when the
 * pattern matches a run of consecutive rows of the sorted list (rows where no condition
 * held are not in the list, so they never break a run). The match may start at any row
 * and need not reach the last one. A Thompson NFA over pattern positions: O(rows * m),
 * no backtracking. */
static bool seq_match(const ptok_t *t, size_t m, const evrow_t *r, uint32_t n, uint8_t *cur,
                      uint8_t *nxt)
{
  memset(cur, 0, m + 1);
  for (uint32_t k = 0; k <= n; k++) {
    cur[0] = 1; /* a match may start here */
    seq_close(t, m, cur);
    if (cur[m])
      return true;
    if (k == n)
      break;
    memset(nxt, 0, m + 1);
    for (size_t i = 0; i < m; i++) {
      if (!cur[i])
        continue;
      if (t[i].op == PT_STAR)
        nxt[i] = 1;
      else if (t[i].op == PT_ANY || (r[k].mask >> t[i].cond & 1))
        nxt[i + 1] = 1;
    }
    uint8_t *sw = cur;
    cur = nxt;
    nxt = sw;
  }
  return false;
}

static int seqm_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                      zql_val_t *out)
{
  const ev_t *s = st;
  uint32_t n;
  size_t m;
  ptok_t *toks = zql_arena_alloc(arena, (s->plen ? s->plen : 1) * sizeof *toks);
  uint8_t *a = zql_arena_alloc(arena, 2 * (s->plen + 1));
  evrow_t *r = ev_sorted(s, arena, &n);
  if (!toks || !a || !r)
    return ZQL_E_NOMEM;
  if (!s->pattern || seq_compile(s->pattern, s->plen, s->nconds, toks, &m, NULL) != 0) {
    *out = zql_val_error("invalid sequence pattern");
    return 0;
  }
  *out = zql_val_bool(seq_match(toks, m, r, n, a, a + s->plen + 1));
  return 0;
}

/* Payload: p: {n: nconds, w: window | pat: pattern}, r: binary rows, 24 bytes each
 * (ts, _seq, mask as little-endian int64), sorted, at most ROWS_CAP. */
static int ev_save(const void *st, bson_t *out, bool funnel)
{
  const ev_t *s = st;
  bson_t p;
  uint32_t n;
  evrow_t *r = ev_sorted(s, NULL, &n);
  uint8_t *b = zql_malloc((n ? n : 1) * 24);
  bool ok = r && b && save_head(out, funnel ? "window_funnel" : "sequence_match", &p) &&
            BSON_APPEND_INT32(&p, "n", (int32_t)s->nconds);
  if (ok)
    ok = funnel ? BSON_APPEND_INT64(&p, "w", s->window)
                : s->plen <= INT_MAX &&
                      bson_append_utf8(&p, "pat", 3, s->pattern ? s->pattern : "", (int)s->plen);
  for (uint32_t i = 0; ok && i < n; i++) {
    put_le64(b + 24 * (size_t)i, (uint64_t)r[i].ts);
    put_le64(b + 24 * (size_t)i + 8, (uint64_t)r[i].seq);
    put_le64(b + 24 * (size_t)i + 16, r[i].mask);
  }
  ok = ok && bson_append_document_end(out, &p) && append_bin(out, "r", b, 24 * (size_t)n);
  zql_free(r);
  zql_free(b);
  return ok ? 0 : ZQL_E_NOMEM;
}

static int funnel_save(const void *st, bson_t *out)
{
  return ev_save(st, out, true);
}

static int seqm_save(const void *st, bson_t *out)
{
  return ev_save(st, out, false);
}

static void ev_destroy(void *st, zql_aggctx_t *ctx)
{
  ev_t *s = st;
  h_free(ctx, s->rows, s->alloc * sizeof *s->rows);
  if (s->own_pattern)
    h_free(ctx, s->pattern, s->plen + 1);
  memset(s, 0, sizeof *s);
}

static int ev_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err,
                   bool funnel)
{
  ev_t *s = st;
  const char *kind = funnel ? "window_funnel" : "sequence_match";
  bson_t p;
  bson_iter_t it;
  int64_t n;
  const uint8_t *b;
  uint32_t blen;
  bool badt;
  int rc;
  ev_init(s, NULL, funnel);
  if ((rc = load_head(in, kind, &p, err)) != 0)
    return rc;
  if (!get_i64(&p, "n", &n) || n < 0 || n > ZQL_AGG_MAX_CONDS)
    return bad(err, kind, "bad condition count 'p.n'");
  s->nconds = (uint32_t)n;
  if (funnel) {
    if (!get_i64(&p, "w", &s->window) || s->window < 0)
      return bad(err, kind, "bad window 'p.w'");
  } else {
    uint32_t len;
    if (!bson_iter_init_find(&it, &p, "pat") || !BSON_ITER_HOLDS_UTF8(&it))
      return bad(err, kind, "no pattern 'p.pat'");
    const char *pat = bson_iter_utf8(&it, &len);
    char *own = h_alloc(ctx, (size_t)len + 1);
    if (!own)
      return ZQL_E_NOMEM;
    memcpy(own, pat, (size_t)len + 1);
    s->pattern = own;
    s->plen = len;
    s->own_pattern = true;
  }
  if (!get_bin(in, "r", &b, &blen, &badt) || blen % 24 || blen / 24 > ROWS_CAP)
    goto bad_rows;
  for (uint32_t i = 0; i < blen / 24; i++) {
    evrow_t r = {(int64_t)get_le64(b + 24 * (size_t)i), (int64_t)get_le64(b + 24 * (size_t)i + 8),
                 get_le64(b + 24 * (size_t)i + 16)};
    if (!r.mask || (r.mask & ~all_conds(s->nconds)))
      goto bad_rows;
    if ((rc = ev_push(s, &r, ctx)) != 0) {
      ev_destroy(s, ctx);
      return rc;
    }
  }
  return 0;
bad_rows:
  ev_destroy(s, ctx);
  return bad(err, kind, "bad rows 'r'");
}

static int funnel_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  return ev_load(st, in, ctx, err, true);
}

static int seqm_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  return ev_load(st, in, ctx, err, false);
}

/* }==== */

/* {==== the registry ===================================================================== */

#define AGG(cname, kname, type, fl, in, ad, me, fi, sa, lo, de)                              \
  static const zql_aggdef_t cname = {kname, 1, sizeof(type), fl, in, ad, me, fi, sa, lo, de};

AGG(agg_count, "count", count_t, 0, count_init, count_add, count_merge, count_final,
    count_save, count_load, count_destroy)
AGG(agg_sum, "sum", sum_t, 0, sum_init, sum_add, sum_merge, sum_final, sum_save, sum_load,
    sum_destroy)
AGG(agg_avg, "avg", sum_t, 0, sum_init, sum_add, sum_merge, avg_final, avg_save, avg_load,
    sum_destroy)
AGG(agg_min, "min", minmax_t, 0, minmax_init, min_add, min_merge, minmax_final, min_save,
    min_load, minmax_destroy)
AGG(agg_max, "max", minmax_t, 0, minmax_init, max_add, max_merge, minmax_final, max_save,
    max_load, minmax_destroy)
AGG(agg_first, "first", firstlast_t, 0, fl_init, first_add, first_merge, fl_final,
    first_save, first_load, fl_destroy)
AGG(agg_last, "last", firstlast_t, 0, fl_init, last_add, last_merge, fl_final, last_save,
    last_load, fl_destroy)
AGG(agg_collect, "collect", bestn_t, 0, bn_init, collect_add, collect_merge, collect_final,
    collect_save, collect_load, bn_destroy)
AGG(agg_sample, "sample", bestn_t, 0, bn_init, sample_add, sample_merge, sample_final,
    sample_save, sample_load, bn_destroy)
AGG(agg_maximum, "maximum", bestn_t, 0, bn_init, maximum_add, maximum_merge, maximum_final,
    maximum_save, maximum_load, bn_destroy)
AGG(agg_minimum, "minimum", bestn_t, 0, bn_init, minimum_add, minimum_merge, minimum_final,
    minimum_save, minimum_load, bn_destroy)
AGG(agg_histogram, "histogram", hist_t, 0, hist_init, hist_add, hist_merge, hist_final,
    hist_save, hist_load, hist_destroy)
AGG(agg_retention, "retention", ret_t, 0, ret_init, ret_add, ret_merge, ret_final, ret_save,
    ret_load, ret_destroy)
AGG(agg_window_funnel, "window_funnel", ev_t, 0, funnel_init, ev_add, ev_merge, funnel_final,
    funnel_save, funnel_load, ev_destroy)
AGG(agg_sequence_match, "sequence_match", ev_t, 0, seqm_init, ev_add, ev_merge, seqm_final,
    seqm_save, seqm_load, ev_destroy)

/* ORDER: stable (tests iterate it); the sketches of exec/agg_sketch.c last. */
static const zql_aggdef_t *const all_aggs[] = {
    &agg_count,       &agg_sum,           &agg_avg,       &agg_min,
    &agg_max,         &agg_first,         &agg_last,      &agg_collect,
    &agg_sample,      &agg_maximum,       &agg_minimum,   &agg_histogram,
    &agg_retention,   &agg_window_funnel, &agg_sequence_match,
    &zql_agg_distinct_count, &zql_agg_hll, &zql_agg_quantile, &zql_agg_tdigest,
    &zql_agg_topk,    &zql_agg_theta,
};

const zql_aggdef_t *zql_agg_lookup(const char *name)
{
  if (strcmp(name, "median") == 0)
    return &zql_agg_quantile;
  if (strcmp(name, "merge") == 0)
    return &zql_agg_merge;
  if (strcmp(name, "reducer") == 0)
    return &zql_agg_reducer;
  if (strcmp(name, "sessions") == 0)
    return &zql_agg_sessions;
  for (size_t i = 0; i < ZQL_ARRAY_LEN(all_aggs); i++)
    if (strcmp(all_aggs[i]->name, name) == 0)
      return all_aggs[i];
  return NULL;
}

const zql_aggdef_t *const *zql_agg_all(size_t *n)
{
  *n = ZQL_ARRAY_LEN(all_aggs);
  return all_aggs;
}

void zql_aggparams_default(const char *name, zql_aggparams_t *p)
{
  memset(p, 0, sizeof *p);
  p->compression = 100;
  if (strcmp(name, "hll") == 0)
    p->n = 14;
  else if (strcmp(name, "distinct_count") == 0)
    p->n = 100000;
  else if (strcmp(name, "theta") == 0)
    p->n = 4096;
  else if (strcmp(name, "median") == 0 || strcmp(name, "quantile") == 0)
    p->q = 0.5;
}

/* }==== */
