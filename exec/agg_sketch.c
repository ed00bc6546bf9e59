/*
 * agg_sketch.c -- the sketch aggregators (stage 4: MAP combiners, REDUCE merges, stored
 * states): distinct_count, hll, quantile (and median), tdigest, topk and theta.
 *
 * Each is a zql_aggdef_t of exec/agg.h, reached through the registry in exec/agg.c. All of
 * them identify a value by the normalised key encoding of exec/value.h (zql_val_encode,
 * zql_val_hash), so 1, int32 1 and 1.0 are one value and states built by different workers
 * merge (design/ZQL.md R6, R11).
 *
 *   distinct_count  the exact set of encodings (open addressing keyed by zql_hash_bytes)
 *                   up to `limit`, then "over limit" (an ERROR final) or, with `else hll`,
 *                   an hll of precision 14
 *   hll             HyperLogLog (Flajolet, Fusy, Gandouet, Meunier, "HyperLogLog: the
 *                   analysis of a near-optimal cardinality estimation algorithm", AofA 2007)
 *                   with an exact sparse phase and Otmar Ertl's improved raw estimator ("New
 *                   cardinality estimation algorithms for HyperLogLog sketches", 2017,
 *                   arXiv:1702.01284, algorithm 6: the sigma/tau method)
 *   quantile        the sorted inputs while there are at most Q_EXACT_MAX of them, then a
 *   tdigest         DDSketch-style sketch (Masson, Rim, Lee, "DDSketch: a fast and fully-
 *                   mergeable quantile sketch with relative-error guarantees", VLDB 2019):
 *                   counts in log buckets whose boundaries 2^(e + j/70) come from a constant
 *                   table, so merge only adds counts; one state, two finals
 *   topk            Space-Saving (Metwally, Agrawal, El Abbadi, "Efficient computation of
 *                   frequent and top-k elements in data streams", ICDT 2005) of capacity 3k,
 *                   merged as the mergeable summaries of Agarwal, Cormode, Huang, Phillips,
 *                   Wei, Yi, "Mergeable summaries", PODS 2012 (add counts, keep the top)
 *   theta           a KMV sketch (Bar-Yossef, Jayram, Kumar, Sivakumar, Trevisan, "Counting
 *                   distinct elements in a data stream", RANDOM 2002; the theta framework of
 *                   Dasgupta, Lang, Rhodes, Thaler, ICDT 2016): the k smallest hashes
 *
 * Determinism (resolved point 14): for every kind but topk the logical state after any
 * sequence of adds and merges is a function of the input multiset alone -- every change
 * of representation (sparse -> dense, exact -> sketch, exact -> over limit) happens exactly
 * when the union crosses a fixed size -- and save writes that logical state in a canonical
 * order, so finals and saved bytes are the same for every split of the input. topk is
 * deterministic for a given order and split (ZQL_AGG_NONDET).
 *
 * Memory: every allocation and free of state memory is reported in ctx->heap; final uses
 * the arena and save only short-lived scratch memory. Out of memory leaves a state valid
 * (add: unchanged). Parameters outside their documented ranges (the analyzer normally
 * rejects them) make the final an ERROR value. Formats and error bounds: docs/sketches.md.
 */
#include "runtime/base/zql_common.h"

#include <math.h>

#include <bson/bson.h>

#include "exec/agg.h"
#include "exec/agg_sketch.h"
#include "exec/value.h"
#include "runtime/base/alloc.h"
#include "runtime/base/error.h"

/* {==== shared helpers ================================================================= */

static void *heap_alloc(zql_aggctx_t *ctx, size_t n)
{
  void *p = zql_malloc(n);
  if (p)
    ctx->heap += (int64_t)n;
  return p;
}

static void *heap_calloc(zql_aggctx_t *ctx, size_t count, size_t size)
{
  void *p = zql_calloc(count, size);
  if (p)
    ctx->heap += (int64_t)(count * size);
  return p;
}

static void heap_free(zql_aggctx_t *ctx, void *p, size_t n)
{
  if (p) {
    zql_free(p);
    ctx->heap -= (int64_t)n;
  }
}

static void le32_put(uint8_t *p, uint32_t x)
{
  for (int i = 0; i < 4; i++, x >>= 8)
    p[i] = (uint8_t)x;
}

static void le64_put(uint8_t *p, uint64_t x)
{
  for (int i = 0; i < 8; i++, x >>= 8)
    p[i] = (uint8_t)x;
}

static uint32_t le32_get(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64_get(const uint8_t *p)
{
  uint64_t x = 0;
  for (int i = 7; i >= 0; i--)
    x = x << 8 | p[i];
  return x;
}

static void f64_put(uint8_t *p, double d)
{
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  le64_put(p, u);
}

static double f64_get(const uint8_t *p)
{
  uint64_t u = le64_get(p);
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

/* Leading zero bits of x != 0. */
static int clz64(uint64_t x)
{
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_clzll(x);
#else
  int n = 0;
  while (!(x >> 63)) {
    x <<= 1;
    n++;
  }
  return n;
#endif
}

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Byte order of two encodings (memcmp, then length): the R7 order of their values. */
static int key_cmp(const uint8_t *a, uint32_t la, const uint8_t *b, uint32_t lb)
{
  int c = memcmp(a, b, la < lb ? la : lb);
  if (c)
    return c;
  return la < lb ? -1 : la > lb;
}

/* An estimate as the INT result: rounded, clamped to int64. */
static zql_val_t est_value(double e)
{
  if (!(e > 0))
    return zql_val_int(0);
  if (e >= 9.2e18)
    return zql_val_int(INT64_MAX);
  return zql_val_int((int64_t)llround(e));
}

/* Copy a finished BSON document or array into the arena as a value. */
static int bson_to_val(bson_t *b, bool is_array, zql_arena_t *arena, zql_val_t *out)
{
  uint8_t *bytes = zql_arena_alloc(arena, b->len);
  if (!bytes)
    return ZQL_E_NOMEM;
  memcpy(bytes, bson_get_data(b), b->len);
  *out = zql_val_doc(bytes, b->len, is_array);
  return 0;
}

/* ---- save / load helpers (R11: {k, v, p: {...}, payload...}) ---- */

#define STATE_VERSION 1

static const uint8_t no_bytes[1];

static bool save_head(bson_t *out, const char *kind)
{
  return BSON_APPEND_UTF8(out, "k", kind) && BSON_APPEND_INT32(out, "v", STATE_VERSION);
}

static bool save_bin(bson_t *out, const char *key, const uint8_t *data, size_t len)
{
  if (len > INT32_MAX)
    return false;
  return bson_append_binary(out, key, -1, (bson_subtype_t)ZQL_AGG_BINARY_SUBTYPE,
                            len ? data : no_bytes, (uint32_t)len);
}

static int bad_state(zql_strbuf_t *err, const char *kind, const char *what)
{
  zql_strbuf_addf(err, "%s state: %s", kind, what);
  return ZQL_E_BAD_RECORD;
}

static bool find_int(const bson_t *doc, const char *key, int64_t *out)
{
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, key))
    return false;
  if (BSON_ITER_HOLDS_INT32(&it))
    *out = bson_iter_int32(&it);
  else if (BSON_ITER_HOLDS_INT64(&it))
    *out = bson_iter_int64(&it);
  else
    return false;
  return true;
}

static bool find_bool(const bson_t *doc, const char *key, bool *out)
{
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_BOOL(&it))
    return false;
  *out = bson_iter_bool(&it);
  return true;
}

static bool find_double(const bson_t *doc, const char *key, double *out)
{
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_DOUBLE(&it))
    return false;
  *out = bson_iter_double(&it);
  return true;
}

static const char *find_str(const bson_t *doc, const char *key)
{
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_UTF8(&it))
    return NULL;
  return bson_iter_utf8(&it, NULL);
}

/* A binary field of the sketch subtype; false when absent or of another type. */
static bool find_bin(const bson_t *doc, const char *key, const uint8_t **data, uint32_t *len)
{
  bson_iter_t it;
  bson_subtype_t sub;
  if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_BINARY(&it))
    return false;
  bson_iter_binary(&it, &sub, len, data);
  return sub == (bson_subtype_t)ZQL_AGG_BINARY_SUBTYPE;
}

static bool has_field(const bson_t *doc, const char *key)
{
  bson_iter_t it;
  return bson_iter_init_find(&it, doc, key);
}

/* Check k (kind, or alt when not NULL) and v, and view the p document in *params. */
static int load_head(const bson_t *in, const char *kind, const char *alt, bson_t *params,
                     zql_strbuf_t *err)
{
  const char *k = find_str(in, "k");
  if (!k)
    return bad_state(err, kind, "no kind 'k'");
  if (strcmp(k, kind) != 0 && !(alt && strcmp(k, alt) == 0)) {
    zql_strbuf_addf(err, "%s state: kind is '%s'", kind, k);
    return ZQL_E_BAD_RECORD;
  }
  int64_t v;
  if (!find_int(in, "v", &v) || v < 1 || v > STATE_VERSION)
    return bad_state(err, kind, "unsupported version 'v'");
  bson_iter_t it;
  if (!bson_iter_init_find(&it, in, "p") || !BSON_ITER_HOLDS_DOCUMENT(&it))
    return bad_state(err, kind, "no parameters 'p'");
  uint32_t len;
  const uint8_t *data;
  bson_iter_document(&it, &len, &data);
  if (!bson_init_static(params, data, len))
    return bad_state(err, kind, "bad parameters 'p'");
  return 0;
}

/* }==== */

/* {==== HyperLogLog core (hll, and distinct_count ... else hll) ========================= */

#define HLL_PMIN 4
#define HLL_PMAX 18
#define DC_HLL_P 14                          /* precision of distinct_count's else hll */
#define HLL_ALPHA_INF 0.72134752044448170368 /* 1 / (2 ln 2) */

/* A set of 64-bit hashes: exact (sparse) while it holds at most hll_sparse_max(p) of them,
 * then 2^p registers (dense). Register j (the top p bits of a hash) holds the largest rank
 * of its hashes: the position of the first 1 bit in the other 64 - p bits (1..64-p), or
 * 65 - p when they are all 0. */
typedef struct hll {
  uint8_t p;        /* precision 4..18; 0: the call's p was invalid */
  uint8_t dense;    /* 0: tab holds the exact set; 1: regs */
  uint8_t has_zero; /* sparse: the hash 0 (never stored in tab) is in the set */
  uint8_t pad_;
  uint32_t n;       /* sparse: distinct hashes, the zero hash included */
  uint32_t cap;     /* sparse: slots of tab (a power of two), 0 before the first insert */
  uint64_t *tab;    /* sparse: open addressing, linear probing; 0 = empty slot */
  uint8_t *regs;    /* dense: 2^p registers of 8 bits */
} hll_t;

/* The sparse set holds at most m/64 hashes: its table (2 slots of 8 bytes per hash at
 * most) then takes <= m/4 bytes, a quarter of the m dense registers, and its stored form
 * (8 bytes per hash) <= m/8, a quarter of the 3m/4 bytes of packed 6-bit registers. */
static uint32_t hll_sparse_max(int p)
{
  return p >= 6 ? UINT32_C(1) << (p - 6) : 0;
}

static void hll_init(hll_t *h, int64_t p)
{
  memset(h, 0, sizeof *h);
  h->p = (p >= HLL_PMIN && p <= HLL_PMAX) ? (uint8_t)p : 0;
}

/* Free the set or registers; h becomes the empty sparse set of the same precision. */
static void hll_clear(hll_t *h, zql_aggctx_t *ctx)
{
  heap_free(ctx, h->tab, (size_t)h->cap * sizeof *h->tab);
  if (h->regs)
    heap_free(ctx, h->regs, (size_t)1 << h->p);
  hll_init(h, h->p);
}

static void hll_reg(uint8_t *regs, int p, uint64_t x)
{
  uint32_t j = (uint32_t)(x >> (64 - p));
  uint64_t w = x << p;
  uint8_t r = w ? (uint8_t)(clz64(w) + 1) : (uint8_t)(65 - p);
  if (regs[j] < r)
    regs[j] = r;
}

static bool hll_has(const hll_t *h, uint64_t x)
{
  if (x == 0)
    return h->has_zero;
  if (!h->cap)
    return false;
  uint32_t mask = h->cap - 1;
  for (uint32_t i = (uint32_t)x & mask;; i = (i + 1) & mask) {
    if (h->tab[i] == x)
      return true;
    if (h->tab[i] == 0)
      return false;
  }
}

/* Put x != 0, not yet present, in a table with room. */
static void hll_put(uint64_t *tab, uint32_t cap, uint64_t x)
{
  uint32_t mask = cap - 1, i = (uint32_t)x & mask;
  while (tab[i])
    i = (i + 1) & mask;
  tab[i] = x;
}

/* Rebuild the sparse table with ncap slots (0: no table; the set must then be at most
 * the zero hash). */
static int hll_rehash(hll_t *h, uint32_t ncap, zql_aggctx_t *ctx)
{
  uint64_t *tab = NULL;
  if (ncap) {
    tab = heap_calloc(ctx, ncap, sizeof *tab);
    if (!tab)
      return ZQL_E_NOMEM;
    for (uint32_t i = 0; i < h->cap; i++)
      if (h->tab[i])
        hll_put(tab, ncap, h->tab[i]);
  }
  heap_free(ctx, h->tab, (size_t)h->cap * sizeof *h->tab);
  h->tab = tab;
  h->cap = ncap;
  return 0;
}

/* Registers at precision p of the sparse set of h (whose own p may be larger). */
static int hll_densify(hll_t *h, int p, zql_aggctx_t *ctx)
{
  uint8_t *regs = heap_calloc(ctx, (size_t)1 << p, 1);
  if (!regs)
    return ZQL_E_NOMEM;
  for (uint32_t i = 0; i < h->cap; i++)
    if (h->tab[i])
      hll_reg(regs, p, h->tab[i]);
  if (h->has_zero)
    hll_reg(regs, p, 0);
  heap_free(ctx, h->tab, (size_t)h->cap * sizeof *h->tab);
  h->tab = NULL;
  h->cap = h->n = 0;
  h->has_zero = 0;
  h->dense = 1;
  h->p = (uint8_t)p;
  h->regs = regs;
  return 0;
}

static int hll_add_hash(hll_t *h, uint64_t x, zql_aggctx_t *ctx)
{
  if (!h->dense) {
    if (hll_has(h, x))
      return 0;
    uint32_t max = hll_sparse_max(h->p);
    if (h->n + 1 > max) {
      int rc = hll_densify(h, h->p, ctx);
      if (rc)
        return rc;
    } else {
      if (x == 0) {
        h->has_zero = 1;
        h->n++;
        return 0;
      }
      if ((uint64_t)(h->n + 1) * 2 > h->cap) {
        uint32_t ncap = h->cap ? h->cap * 2 : (2 * max < 16 ? 2 * max : 16);
        int rc = hll_rehash(h, ncap, ctx);
        if (rc)
          return rc;
      }
      hll_put(h->tab, h->cap, x);
      h->n++;
      return 0;
    }
  }
  hll_reg(h->regs, h->p, x);
  return 0;
}

static int hll_merge_into(hll_t *d, const hll_t *s, zql_aggctx_t *ctx)
{
  if (d->p != s->p)
    return ZQL_AGG_MISMATCH;
  if (!d->p)
    return 0;
  if (s->dense) {
    size_t m = (size_t)1 << d->p;
    if (!d->dense && d->n == 0) { /* the empty set: a copy of s (a loaded state merged
                                     into a fresh one, as an incremental commit does) */
      uint8_t *regs = heap_alloc(ctx, m);
      if (!regs)
        return ZQL_E_NOMEM;
      memcpy(regs, s->regs, m);
      heap_free(ctx, d->tab, (size_t)d->cap * sizeof *d->tab);
      d->tab = NULL;
      d->cap = 0;
      d->dense = 1;
      d->regs = regs;
      return 0;
    }
    if (!d->dense) {
      int rc = hll_densify(d, d->p, ctx);
      if (rc)
        return rc;
    }
    uint8_t *restrict dr = d->regs;
    const uint8_t *restrict sr = s->regs;
    for (size_t j = 0; j < m; j++) /* branch-free: the compiler vectorizes it */
      dr[j] = dr[j] < sr[j] ? sr[j] : dr[j];
    return 0;
  }
  if (s->has_zero) {
    int rc = hll_add_hash(d, 0, ctx);
    if (rc)
      return rc;
  }
  for (uint32_t i = 0; i < s->cap; i++)
    if (s->tab[i]) {
      int rc = hll_add_hash(d, s->tab[i], ctx);
      if (rc)
        return rc;
    }
  return 0;
}

/* Ertl's sigma and tau series (arXiv:1702.01284, algorithm 6). */
static double hll_sigma(double x)
{
  if (x == 1.0)
    return INFINITY;
  double y = 1.0, z = x, prev;
  do {
    x *= x;
    prev = z;
    z += x * y;
    y += y;
  } while (z != prev);
  return z;
}

static double hll_tau(double x)
{
  if (x == 0.0 || x == 1.0)
    return 0.0;
  double y = 1.0, z = 1.0 - x, prev;
  do {
    x = sqrt(x);
    prev = z;
    y *= 0.5;
    z -= (1.0 - x) * (1.0 - x) * y;
  } while (z != prev);
  return z / 3.0;
}

/* The cardinality estimate: exact while sparse, Ertl's improved raw estimate when dense
 * (relative standard error about 1.04 / sqrt(2^p) over the whole range). */
static double hll_estimate(const hll_t *h)
{
  if (!h->dense)
    return (double)h->n;
  int q = 64 - h->p;
  size_t m = (size_t)1 << h->p;
  /* four histograms, so that consecutive increments rarely hit the same counter (a
   * store-to-load dependency each time), then added up */
  uint32_t c4[4][66] = {{0}}, c[66];
  for (size_t j = 0; j < m; j += 4) {
    c4[0][h->regs[j]]++;
    c4[1][h->regs[j + 1]]++;
    c4[2][h->regs[j + 2]]++;
    c4[3][h->regs[j + 3]]++;
  }
  for (int k = 0; k < 66; k++)
    c[k] = c4[0][k] + c4[1][k] + c4[2][k] + c4[3][k];
  double md = (double)m;
  double z = md * hll_tau(1.0 - (double)c[q + 1] / md);
  for (int k = q; k >= 1; k--)
    z = 0.5 * (z + (double)c[k]);
  z += md * hll_sigma((double)c[0] / md);
  return HLL_ALPHA_INF * md * md / z;
}

/* Append the payload: "sparse" (ascending u64 LE hashes) or "regs" (6-bit packed). */
static int hll_save_payload(const hll_t *h, bson_t *out)
{
  bool ok;
  if (!h->dense) {
    size_t n = 0;
    uint64_t *v = zql_malloc(((size_t)h->n + 1) * sizeof *v);
    uint8_t *b = zql_malloc((size_t)h->n * 8 + 1);
    if (!v || !b) {
      zql_free(v);
      zql_free(b);
      return ZQL_E_NOMEM;
    }
    if (h->has_zero)
      v[n++] = 0;
    for (uint32_t i = 0; i < h->cap; i++)
      if (h->tab[i])
        v[n++] = h->tab[i];
    qsort(v, n, sizeof *v, cmp_u64);
    for (size_t i = 0; i < n; i++)
      le64_put(b + 8 * i, v[i]);
    ok = save_bin(out, "sparse", b, 8 * n);
    zql_free(v);
    zql_free(b);
  } else {
    size_t m = (size_t)1 << h->p, len = m / 4 * 3;
    uint8_t *b = zql_malloc(len);
    if (!b)
      return ZQL_E_NOMEM;
    for (size_t j = 0, o = 0; j < m; j += 4, o += 3) {
      const uint8_t *r = h->regs + j;
      b[o] = (uint8_t)(r[0] | r[1] << 6);
      b[o + 1] = (uint8_t)(r[1] >> 2 | r[2] << 4);
      b[o + 2] = (uint8_t)(r[2] >> 4 | r[3] << 2);
    }
    ok = save_bin(out, "regs", b, len);
    zql_free(b);
  }
  return ok ? 0 : ZQL_E_NOMEM;
}

/* Read the payload written by hll_save_payload into the empty h. */
static int hll_load_payload(hll_t *h, const bson_t *in, const char *kind, zql_aggctx_t *ctx,
                            zql_strbuf_t *err)
{
  const uint8_t *data;
  uint32_t len;
  bool sparse = find_bin(in, "sparse", &data, &len);
  if (sparse) {
    if (has_field(in, "regs"))
      return bad_state(err, kind, "both 'sparse' and 'regs'");
    if (len % 8 || len / 8 > hll_sparse_max(h->p))
      return bad_state(err, kind, "bad length of 'sparse'");
    for (uint32_t i = 0; i < len / 8; i++) {
      uint64_t x = le64_get(data + 8 * i);
      if (i && x <= le64_get(data + 8 * (i - 1)))
        return bad_state(err, kind, "'sparse' hashes not ascending");
      if (hll_add_hash(h, x, ctx))
        return ZQL_E_NOMEM;
    }
    return 0;
  }
  if (!find_bin(in, "regs", &data, &len))
    return bad_state(err, kind, "no 'sparse' or 'regs' payload");
  size_t m = (size_t)1 << h->p;
  if (len != m / 4 * 3)
    return bad_state(err, kind, "bad length of 'regs'");
  uint8_t *regs = heap_calloc(ctx, m, 1);
  if (!regs)
    return ZQL_E_NOMEM;
  for (size_t j = 0, o = 0; j < m; j += 4, o += 3) {
    uint32_t w = (uint32_t)data[o] | (uint32_t)data[o + 1] << 8 | (uint32_t)data[o + 2] << 16;
    for (int i = 0; i < 4; i++, w >>= 6)
      regs[j + (size_t)i] = (uint8_t)(w & 63);
  }
  for (size_t j = 0; j < m; j++)
    if (regs[j] > 65 - h->p) {
      heap_free(ctx, regs, m);
      return bad_state(err, kind, "register out of range in 'regs'");
    }
  h->dense = 1;
  h->regs = regs;
  return 0;
}

/* }==== */

/* {==== hll(e [, p]) =================================================================== */

static void hll_agg_init(void *st, const zql_aggparams_t *p)
{
  hll_init(st, p->n);
}

static int hll_agg_add(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  hll_t *h = st;
  if (!h->p || zql_val_is_nullish(&in->x))
    return 0;
  return hll_add_hash(h, zql_val_hash(&in->x), ctx);
}

static int hll_agg_merge(void *dst, const void *src, zql_aggctx_t *ctx)
{
  if (dst == src) /* a set united with itself */
    return 0;
  return hll_merge_into(dst, src, ctx);
}

static int hll_agg_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                         zql_val_t *out)
{
  const hll_t *h = st;
  if (!h->p)
    *out = zql_val_error("hll: p must be between 4 and 18");
  else
    *out = est_value(hll_estimate(h));
  return 0;
}

static int hll_agg_save(const void *st, bson_t *out)
{
  const hll_t *h = st;
  bson_t par;
  if (!save_head(out, "hll") || !bson_append_document_begin(out, "p", 1, &par))
    return ZQL_E_NOMEM;
  if (!BSON_APPEND_INT32(&par, "p", h->p) || !bson_append_document_end(out, &par))
    return ZQL_E_NOMEM;
  return h->p ? hll_save_payload(h, out) : 0;
}

static void hll_agg_destroy(void *st, zql_aggctx_t *ctx)
{
  hll_clear(st, ctx);
}

static int hll_agg_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  hll_t *h = st;
  bson_t par;
  int64_t p;
  hll_init(h, 0);
  int rc = load_head(in, "hll", NULL, &par, err);
  if (rc)
    return rc;
  if (!find_int(&par, "p", &p))
    return bad_state(err, "hll", "no precision 'p.p'");
  if (p == 0)
    return 0; /* a state of an invalid call: its final is an ERROR */
  if (p < HLL_PMIN || p > HLL_PMAX)
    return bad_state(err, "hll", "precision 'p.p' out of range");
  hll_init(h, p);
  rc = hll_load_payload(h, in, "hll", ctx, err);
  if (rc)
    hll_clear(h, ctx);
  return rc;
}

int zql_hll_downgrade(void *st, int p, zql_aggctx_t *ctx)
{
  hll_t *h = st;
  if (!h->p || p < HLL_PMIN || p > h->p)
    return ZQL_AGG_MISMATCH;
  if (p == h->p)
    return 0;
  if (!h->dense) {
    if (h->n > hll_sparse_max(p))
      return hll_densify(h, p, ctx);
    /* still sparse: shrink the table to what the smaller precision allows */
    uint32_t stored = h->n - (h->has_zero ? 1 : 0), ncap = 0;
    if (stored) {
      ncap = 2;
      while (ncap < 2 * stored)
        ncap *= 2;
    }
    if (ncap < h->cap) {
      int rc = hll_rehash(h, ncap, ctx);
      if (rc)
        return rc;
    }
    h->p = (uint8_t)p;
    return 0;
  }
  /* Register j at precision P covers the hashes whose top P bits are j. At precision p
   * their index is j >> d (d = P - p) and the low d bits of j lead their remainder: when
   * those bits are not all 0 they alone fix the rank, else the rank grows by d. */
  int d = h->p - p;
  size_t m = (size_t)1 << h->p;
  uint8_t *regs = heap_calloc(ctx, (size_t)1 << p, 1);
  if (!regs)
    return ZQL_E_NOMEM;
  for (size_t j = 0; j < m; j++) {
    uint8_t r = h->regs[j];
    if (!r)
      continue;
    uint64_t low = j & (((size_t)1 << d) - 1);
    uint8_t nr = low ? (uint8_t)(d - (63 - clz64(low))) : (uint8_t)(d + r);
    if (regs[j >> d] < nr)
      regs[j >> d] = nr;
  }
  heap_free(ctx, h->regs, m);
  h->regs = regs;
  h->p = (uint8_t)p;
  return 0;
}

const zql_aggdef_t zql_agg_hll = {
    "hll",         STATE_VERSION, sizeof(hll_t), 0,           hll_agg_init,
    hll_agg_add,   hll_agg_merge, hll_agg_final, hll_agg_save, hll_agg_load,
    hll_agg_destroy,
};

/* }==== */

/* {==== distinct_count(e) [limit N [else hll]] ========================================= */

#define DC_LIMIT_MAX 1000000000

enum { DC_EXACT, DC_OVER, DC_HLL, DC_BAD };

typedef struct dc_slot {
  uint64_t hash; /* zql_hash_bytes of the encoding */
  uint64_t off;  /* the encoding is keys[off .. off + len) */
  uint32_t len;  /* 0: empty slot (an encoding is never empty) */
  uint32_t pad_;
} dc_slot_t;

typedef struct dc {
  int64_t limit;
  uint8_t mode;     /* DC_*: exact set, over the limit, hll, invalid limit */
  uint8_t else_hll;
  uint32_t n;       /* exact: distinct values */
  uint32_t cap;     /* exact: slots (a power of two), 0 before the first insert */
  dc_slot_t *slots;
  uint8_t *keys;    /* exact: the encodings in insertion order, each after its u32 length */
  size_t klen, kcap;
  uint32_t sorted;  /* exact: the first `sorted` encodings inserted are in ascending order
                       (a loaded state, or a merge into an empty one): save then sorts only
                       the rest and merges */
  size_t last;      /* exact: the offset of the last of those */
  /* exact: a loaded set kept in its saved form (the encodings in ascending order, each
   * after its u32 length) instead of being hashed value by value -- an incremental run
   * merges a few new values into large stored sets, and pays a copy, not a rebuild. The
   * hash holds the values added since, some of which may be in base too: the exact count
   * and the saved set come from one merge walk of the two (dc_union). */
  uint8_t *base;
  size_t base_len;
  uint32_t base_n;
  hll_t hll;        /* DC_HLL */
} dc_t;

static void dc_init(void *st, const zql_aggparams_t *p)
{
  dc_t *d = st;
  memset(d, 0, sizeof *d);
  d->limit = p->n;
  d->else_hll = p->else_hll;
  d->mode = (p->n >= 0 && p->n <= DC_LIMIT_MAX) ? DC_EXACT : DC_BAD;
  hll_init(&d->hll, DC_HLL_P);
}

static void dc_free_set(dc_t *d, zql_aggctx_t *ctx)
{
  heap_free(ctx, d->slots, (size_t)d->cap * sizeof *d->slots);
  heap_free(ctx, d->keys, d->kcap);
  heap_free(ctx, d->base, d->base_len);
  d->slots = NULL;
  d->keys = NULL;
  d->base = NULL;
  d->n = d->cap = 0;
  d->klen = d->kcap = 0;
  d->base_len = 0;
  d->base_n = 0;
  d->sorted = 0;
  d->last = 0;
}

static void dc_destroy(void *st, zql_aggctx_t *ctx)
{
  dc_t *d = st;
  dc_free_set(d, ctx);
  hll_clear(&d->hll, ctx);
}

/* The slot holding the encoding, or the empty slot where it would go (cap > 0). */
static uint32_t dc_probe(const dc_t *d, const uint8_t *key, uint32_t len, uint64_t hash,
                         bool *found)
{
  uint32_t mask = d->cap - 1;
  for (uint32_t i = (uint32_t)hash & mask;; i = (i + 1) & mask) {
    const dc_slot_t *s = &d->slots[i];
    if (!s->len) {
      *found = false;
      return i;
    }
    if (s->hash == hash && s->len == len && memcmp(d->keys + s->off, key, len) == 0) {
      *found = true;
      return i;
    }
  }
}

/* The set would exceed the limit: become "over limit" or an hll of the set's hashes. */
static int dc_overflow(dc_t *d, zql_aggctx_t *ctx)
{
  if (d->else_hll) {
    hll_t h;
    hll_init(&h, DC_HLL_P);
    for (size_t o = 0; o < d->base_len;) { /* hashing a value twice changes nothing */
      uint32_t len = le32_get(d->base + o);
      int rc = hll_add_hash(&h, zql_hash_bytes(d->base + o + 4, len), ctx);
      if (rc) {
        hll_clear(&h, ctx);
        return rc;
      }
      o += 4 + (size_t)len;
    }
    for (uint32_t i = 0; i < d->cap; i++)
      if (d->slots[i].len) {
        int rc = hll_add_hash(&h, d->slots[i].hash, ctx);
        if (rc) {
          hll_clear(&h, ctx);
          return rc;
        }
      }
    dc_free_set(d, ctx);
    hll_clear(&d->hll, ctx);
    d->hll = h;
    d->mode = DC_HLL;
  } else {
    dc_free_set(d, ctx);
    d->mode = DC_OVER;
  }
  return 0;
}

static int dc_insert(dc_t *d, const uint8_t *key, uint32_t len, uint64_t hash,
                     zql_aggctx_t *ctx);

/* Move the base set into the hash (near the limit, where counts must be exact). */
static int dc_unbase(dc_t *d, zql_aggctx_t *ctx)
{
  uint8_t *b = d->base;
  size_t bl = d->base_len;
  d->base = NULL;
  d->base_len = 0;
  d->base_n = 0;
  int rc = 0;
  for (size_t o = 0; o < bl && !rc;) {
    uint32_t len = le32_get(b + o);
    rc = dc_insert(d, b + o + 4, len, zql_hash_bytes(b + o + 4, len), ctx);
    o += 4 + (size_t)len;
  }
  heap_free(ctx, b, bl);
  return rc;
}

static int dc_insert(dc_t *d, const uint8_t *key, uint32_t len, uint64_t hash,
                     zql_aggctx_t *ctx)
{
  if (d->mode == DC_HLL)
    return hll_add_hash(&d->hll, hash, ctx);
  if (d->mode != DC_EXACT)
    return 0;
  if (d->base && (int64_t)d->base_n + d->n + 1 > d->limit) {
    int rc = dc_unbase(d, ctx);
    if (rc || d->mode != DC_EXACT)
      return rc ? rc : dc_insert(d, key, len, hash, ctx);
  }
  bool found = false;
  if (d->cap) {
    dc_probe(d, key, len, hash, &found);
    if (found)
      return 0;
  }
  if ((int64_t)d->n + 1 > d->limit) {
    int rc = dc_overflow(d, ctx);
    if (rc)
      return rc;
    return d->mode == DC_HLL ? hll_add_hash(&d->hll, hash, ctx) : 0;
  }
  if ((uint64_t)(d->n + 1) * 2 > d->cap) {
    uint32_t ncap = d->cap ? d->cap * 2 : 16;
    dc_slot_t *slots = heap_calloc(ctx, ncap, sizeof *slots);
    if (!slots)
      return ZQL_E_NOMEM;
    for (uint32_t i = 0; i < d->cap; i++)
      if (d->slots[i].len) {
        uint32_t j = (uint32_t)d->slots[i].hash & (ncap - 1);
        while (slots[j].len)
          j = (j + 1) & (ncap - 1);
        slots[j] = d->slots[i];
      }
    heap_free(ctx, d->slots, (size_t)d->cap * sizeof *d->slots);
    d->slots = slots;
    d->cap = ncap;
  }
  if (d->klen + 4 + len > d->kcap) {
    size_t ncap = d->kcap * 2;
    if (ncap < d->klen + 4 + len)
      ncap = d->klen + 4 + len;
    if (ncap < 256)
      ncap = 256;
    uint8_t *keys = zql_realloc(d->keys, ncap);
    if (!keys)
      return ZQL_E_NOMEM;
    ctx->heap += (int64_t)(ncap - d->kcap);
    d->keys = keys;
    d->kcap = ncap;
  }
  uint32_t i = dc_probe(d, key, len, hash, &found);
  le32_put(d->keys + d->klen, len);
  size_t off = d->klen + 4;
  memcpy(d->keys + off, key, len);
  d->slots[i].hash = hash;
  d->slots[i].off = off;
  d->slots[i].len = len;
  d->klen = off + len;
  if (d->sorted == d->n &&
      (d->n == 0 || key_cmp(d->keys + d->last, le32_get(d->keys + d->last - 4), key, len) < 0)) {
    d->sorted++;
    d->last = off;
  }
  d->n++;
  return 0;
}

static int dc_add(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  dc_t *d = st;
  if (zql_val_is_nullish(&in->x) || d->mode == DC_OVER || d->mode == DC_BAD)
    return 0;
  if (d->mode == DC_HLL)
    return hll_add_hash(&d->hll, zql_val_hash(&in->x), ctx);
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_val_encode(&sb, &in->x);
  int rc = ZQL_E_NOMEM;
  if (!sb.oom && sb.len <= UINT32_MAX)
    rc = dc_insert(d, (const uint8_t *)sb.buf, (uint32_t)sb.len,
                   zql_hash_bytes(sb.buf, sb.len), ctx);
  zql_strbuf_release(&sb);
  return rc;
}

/* Two sets held in their saved form only (an incremental commit merges a stored set and
 * the run's set, both loaded): their union by one merge walk becomes d's base, so that
 * final and save read it as loaded instead of hashing src's values and sorting them
 * again. 0, ZQL_E_NOMEM, or 1 when the union has more than limit values (d unchanged). */
static int dc_merge_bases(dc_t *d, const dc_t *s, zql_aggctx_t *ctx)
{
  uint8_t *u = zql_malloc(d->base_len + s->base_len);
  if (!u)
    return ZQL_E_NOMEM;
  size_t o = 0, a = 0, b = 0;
  int64_t n = 0;
  while (a < d->base_len || b < s->base_len) {
    uint32_t la = a < d->base_len ? le32_get(d->base + a) : 0;
    uint32_t lb = b < s->base_len ? le32_get(s->base + b) : 0;
    int c = a >= d->base_len ? 1
            : b >= s->base_len ? -1
                               : key_cmp(d->base + a + 4, la, s->base + b + 4, lb);
    const uint8_t *v = c <= 0 ? d->base + a : s->base + b;
    uint32_t l = c <= 0 ? la : lb;
    if (c <= 0)
      a += 4 + (size_t)la;
    if (c >= 0)
      b += 4 + (size_t)lb;
    memcpy(u + o, v, 4 + (size_t)l);
    o += 4 + (size_t)l;
    n++;
  }
  if (n > d->limit) {
    zql_free(u);
    return 1;
  }
  uint8_t *fit = zql_realloc(u, o); /* o > 0: both bases hold values */
  if (fit)
    u = fit;
  heap_free(ctx, d->base, d->base_len);
  ctx->heap += (int64_t)o;
  d->base = u;
  d->base_len = o;
  d->base_n = (uint32_t)n;
  return 0;
}

static int dc_merge(void *dst, const void *src, zql_aggctx_t *ctx)
{
  dc_t *d = dst;
  const dc_t *s = src;
  if (d->limit != s->limit || d->else_hll != s->else_hll ||
      (d->mode == DC_BAD) != (s->mode == DC_BAD))
    return ZQL_AGG_MISMATCH;
  if (d == s) /* a set united with itself */
    return 0;
  switch (s->mode) {
  case DC_BAD:
    return 0;
  case DC_OVER:
    dc_free_set(d, ctx);
    hll_clear(&d->hll, ctx);
    d->mode = DC_OVER;
    return 0;
  case DC_HLL:
    if (d->mode == DC_OVER)
      return 0;
    if (d->mode == DC_EXACT) {
      int rc = dc_overflow(d, ctx); /* src holds more than limit values: so does the union */
      if (rc)
        return rc;
    }
    return hll_merge_into(&d->hll, &s->hll, ctx);
  default:
    if (s->base && d->base && d->n == 0 && s->n == 0 && d->mode == DC_EXACT) {
      int rc = dc_merge_bases(d, s, ctx);
      if (rc <= 0)
        return rc;
      /* past the limit: the general path below overflows as it inserts */
    }
    if (s->base && !d->base && d->n == 0 && d->mode == DC_EXACT) { /* adopt a copy */
      if (!(d->base = heap_alloc(ctx, s->base_len)))
        return ZQL_E_NOMEM;
      memcpy(d->base, s->base, s->base_len);
      d->base_len = s->base_len;
      d->base_n = s->base_n;
    } else {
      for (size_t o = 0; o < s->base_len;) {
        uint32_t len = le32_get(s->base + o);
        const uint8_t *key = s->base + o + 4;
        int rc = dc_insert(d, key, len, zql_hash_bytes(key, len), ctx);
        if (rc)
          return rc;
        o += 4 + (size_t)len;
      }
    }
    /* in src's insertion order, which keeps an ascending src ascending in an empty dst */
    for (size_t o = 0; o < s->klen;) {
      uint32_t len = le32_get(s->keys + o);
      const uint8_t *key = s->keys + o + 4;
      int rc = dc_insert(d, key, len, zql_hash_bytes(key, len), ctx);
      if (rc)
        return rc;
      o += 4 + (size_t)len;
    }
    return 0;
  }
}

static int64_t dc_union(const dc_t *d, uint8_t *out, size_t *outlen);

static int dc_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                    zql_val_t *out)
{
  const dc_t *d = st;
  switch (d->mode) {
  case DC_EXACT: {
    int64_t n = d->base ? dc_union(d, NULL, NULL) : d->n;
    if (n < 0)
      return ZQL_E_NOMEM;
    *out = zql_val_int(n);
    return 0;
  }
  case DC_HLL:
    *out = est_value(hll_estimate(&d->hll));
    return 0;
  case DC_OVER: {
    const char *msg = zql_arena_printf(arena, "distinct_count: more than %" PRId64
                                       " distinct values", d->limit);
    if (!msg)
      return ZQL_E_NOMEM;
    *out = zql_val_error(msg);
    return 0;
  }
  default:
    *out = zql_val_error("distinct_count: limit must be between 0 and 1000000000");
    return 0;
  }
}

typedef struct keyref {
  const uint8_t *p;
  uint32_t len;
} keyref_t;

static int keyref_cmp(const void *a, const void *b)
{
  const keyref_t *x = a, *y = b;
  return key_cmp(x->p, x->len, y->p, y->len);
}

/* The union of the base set and the hash's values, in ascending byte order, each as u32
 * LE length + bytes, written to out (which has room for base_len + klen bytes) unless out
 * is NULL; returns the number of distinct values (-1: out of memory). The hash's values
 * are sorted as in a save (its first `sorted` are ascending already: only the rest is
 * sorted, then the two runs merge), then merged with the base, equal values once. */
static int64_t dc_union(const dc_t *d, uint8_t *out, size_t *outlen)
{
  keyref_t *refs = zql_malloc(((size_t)d->n + 1) * sizeof *refs);
  keyref_t *ord = zql_malloc(((size_t)d->n + 1) * sizeof *ord);
  if (!refs || !ord) {
    zql_free(refs);
    zql_free(ord);
    return -1;
  }
  size_t n = 0;
  for (size_t k = 0; k < d->klen; n++) { /* insertion order */
    refs[n].len = le32_get(d->keys + k);
    refs[n].p = d->keys + k + 4;
    k += 4 + (size_t)refs[n].len;
  }
  size_t a = 0, na = d->sorted < n ? d->sorted : n, bi = na, m = 0;
  qsort(refs + na, n - na, sizeof *refs, keyref_cmp);
  while (a < na || bi < n)
    ord[m++] = bi >= n || (a < na && keyref_cmp(&refs[a], &refs[bi]) < 0) ? refs[a++]
                                                                           : refs[bi++];
  int64_t count = 0;
  size_t o = 0, bo = 0, h = 0;
  while (bo < d->base_len || h < m) {
    keyref_t bv = {NULL, 0};
    if (bo < d->base_len) {
      bv.len = le32_get(d->base + bo);
      bv.p = d->base + bo + 4;
    }
    const keyref_t *r;
    int c = bo >= d->base_len ? 1 : h >= m ? -1 : keyref_cmp(&bv, &ord[h]);
    if (c <= 0) {
      r = &bv;
      bo += 4 + (size_t)bv.len;
      if (c == 0)
        h++; /* in both */
    } else {
      r = &ord[h++];
    }
    if (out) {
      le32_put(out + o, r->len);
      memcpy(out + o + 4, r->p, r->len);
    }
    o += 4 + (size_t)r->len;
    count++;
  }
  if (outlen)
    *outlen = o;
  zql_free(refs);
  zql_free(ord);
  return count;
}

/* "set": the encodings in ascending byte order, each as u32 LE length + bytes. */
static int dc_save_set(const dc_t *d, bson_t *out)
{
  if (d->base && d->n == 0) /* as loaded */
    return BSON_APPEND_INT64(out, "n", (int64_t)d->base_n) &&
                   save_bin(out, "set", d->base, d->base_len)
               ? 0
               : ZQL_E_NOMEM;
  uint8_t *b = zql_malloc(d->base_len + d->klen + 1);
  size_t o = 0;
  int64_t n = b ? dc_union(d, b, &o) : -1;
  bool ok = n >= 0 && BSON_APPEND_INT64(out, "n", n) && save_bin(out, "set", b, o);
  zql_free(b);
  return ok ? 0 : ZQL_E_NOMEM;
}

static int dc_save(const void *st, bson_t *out)
{
  const dc_t *d = st;
  bson_t par;
  if (!save_head(out, "distinct_count") || !bson_append_document_begin(out, "p", 1, &par))
    return ZQL_E_NOMEM;
  if (!BSON_APPEND_INT64(&par, "limit", d->limit) ||
      !BSON_APPEND_BOOL(&par, "else_hll", d->else_hll) ||
      !bson_append_document_end(out, &par))
    return ZQL_E_NOMEM;
  switch (d->mode) {
  case DC_EXACT:
    if (!BSON_APPEND_UTF8(out, "mode", "exact"))
      return ZQL_E_NOMEM;
    return dc_save_set(d, out);
  case DC_OVER:
    return BSON_APPEND_UTF8(out, "mode", "over") ? 0 : ZQL_E_NOMEM;
  case DC_HLL:
    if (!BSON_APPEND_UTF8(out, "mode", "hll") || !BSON_APPEND_INT32(out, "hll_p", DC_HLL_P))
      return ZQL_E_NOMEM;
    return hll_save_payload(&d->hll, out);
  default:
    return 0; /* invalid limit: parameters only */
  }
}

static int dc_load_set(dc_t *d, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  static const char kind[] = "distinct_count";
  int64_t n;
  const uint8_t *data;
  uint32_t len;
  if (!find_int(in, "n", &n) || n < 0 || n > d->limit)
    return bad_state(err, kind, "bad count 'n'");
  if (!find_bin(in, "set", &data, &len))
    return bad_state(err, kind, "no 'set' payload");
  const uint8_t *prev = NULL;
  uint32_t prevlen = 0;
  uint32_t count = 0;
  for (size_t o = 0; o < len;) {
    if (len - o < 4)
      return bad_state(err, kind, "truncated 'set'");
    uint32_t l = le32_get(data + o);
    if (l == 0 || l > len - o - 4)
      return bad_state(err, kind, "bad value length in 'set'");
    const uint8_t *key = data + o + 4;
    if (prev && key_cmp(prev, prevlen, key, l) >= 0)
      return bad_state(err, kind, "'set' values not ascending");
    if ((int64_t)count >= n)
      return bad_state(err, kind, "more values in 'set' than 'n'");
    count++;
    prev = key;
    prevlen = l;
    o += 4 + (size_t)l;
  }
  if ((int64_t)count != n)
    return bad_state(err, kind, "fewer values in 'set' than 'n'");
  if (len && !(d->base = heap_alloc(ctx, len)))
    return ZQL_E_NOMEM;
  if (len)
    memcpy(d->base, data, len);
  d->base_len = len;
  d->base_n = count;
  return 0;
}

static int dc_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  static const char kind[] = "distinct_count";
  dc_t *d = st;
  zql_aggparams_t p;
  bson_t par;
  bool else_hll = false;
  memset(&p, 0, sizeof p);
  dc_init(d, &p);
  int rc = load_head(in, kind, NULL, &par, err);
  if (rc)
    return rc;
  if (!find_int(&par, "limit", &p.n) || !find_bool(&par, "else_hll", &else_hll))
    return bad_state(err, kind, "bad parameters 'p'");
  p.else_hll = else_hll;
  dc_init(d, &p);
  if (d->mode == DC_BAD)
    return 0;
  const char *mode = find_str(in, "mode");
  if (!mode)
    return bad_state(err, kind, "no 'mode'");
  if (strcmp(mode, "exact") == 0) {
    rc = dc_load_set(d, in, ctx, err);
  } else if (strcmp(mode, "over") == 0 && !d->else_hll) {
    d->mode = DC_OVER;
  } else if (strcmp(mode, "hll") == 0 && d->else_hll) {
    int64_t hp;
    if (!find_int(in, "hll_p", &hp) || hp != DC_HLL_P)
      return bad_state(err, kind, "bad 'hll_p'");
    d->mode = DC_HLL;
    rc = hll_load_payload(&d->hll, in, kind, ctx, err);
  } else {
    return bad_state(err, kind, "bad 'mode'");
  }
  if (rc)
    dc_destroy(d, ctx);
  return rc;
}

const zql_aggdef_t zql_agg_distinct_count = {
    "distinct_count", STATE_VERSION, sizeof(dc_t), 0,       dc_init, dc_add,
    dc_merge,         dc_final,      dc_save,      dc_load, dc_destroy,
};

/* }==== */

/* {==== quantile(e, q [, compression]), median(e), tdigest(e) =========================== */

/* The call's compression argument is accepted and ignored: the bucket layout is fixed, so
 * states merge whatever compression built them (docs/sketches.md).
 * Exact while there are at most Q_EXACT_MAX inputs (8 KiB of doubles). */
#define Q_EXACT_MAX 1024
/* Buckets per binary octave: bucket (e, j) is [2^e * B[j], 2^e * B[j+1]) with
 * B[j] = 2^(j/70). Its representative 2ab/(a+b) (a, b its bounds) is within
 * (r-1)/(r+1) = 0.0049510 of every value in it (r = 2^(1/70)): DDSketch's alpha. */
#define Q_SUB 70
#define Q_IDX_MIN (-1074 * Q_SUB)             /* 2^-1074, the smallest subnormal */
#define Q_IDX_MAX (1023 * Q_SUB + Q_SUB - 1)  /* DBL_MAX */
#define Q_ALPHA 0.0049510108352208895

/* B[j] = 2^(j/70), correctly rounded (computed with 200-bit arithmetic). These constants
 * are part of the stored format: never change them. */
static const double q_bound[Q_SUB + 1] = {
    0x1.0000000000000p+0, 0x1.028c2af3c1ff5p+0, 0x1.051ed35254d7bp+0, 0x1.07b809a43b568p+0,
    0x1.0a57de9c16bc7p+0, 0x1.0cfe6317120a2p+0, 0x1.0faba81d4e5dfp+0, 0x1.125fbee250664p+0,
    0x1.151ab8c56eea2p+0, 0x1.17dca752426bep+0, 0x1.1aa59c4115e7dp+0, 0x1.1d75a97758b26p+0,
    0x1.204ce10811781p+0, 0x1.232b55345262fp+0, 0x1.2611186bae675p+0, 0x1.28fe3d4cafbb7p+0,
    0x1.2bf2d6a54f7dap+0, 0x1.2eeef7736e8a3p+0, 0x1.31f2b2e54f85dp+0, 0x1.34fe1c5a121edp+0,
    0x1.381147622f886p+0, 0x1.3b2c47bff8329p+0, 0x1.3e4f316812c30p+0, 0x1.417a1881fc50ep+0,
    0x1.44ad116889e7bp+0, 0x1.47e830aa6b53ep+0, 0x1.4b2b8b0aaf3c7p+0, 0x1.4e773581488d9p+0,
    0x1.51cb453b9536cp+0, 0x1.5527cf9ce6406p+0, 0x1.588cea3f093bep+0, 0x1.5bfaaaf2d311fp+0,
    0x1.5f7127c0ac32ap+0, 0x1.62f076e91e2a5p+0, 0x1.6678aee5629f8p+0, 0x1.6a09e667f3bcdp+0,
    0x1.6da4345d1e0adp+0, 0x1.7147afeb93bdcp+0, 0x1.74f47075017a0p+0, 0x1.78aa8d96a493ep+0,
    0x1.7c6a1f29e2ce6p+0, 0x1.80333d44e39bep+0, 0x1.8406003b2ae5cp+0, 0x1.87e2809e355e7p+0,
    0x1.8bc8d73e16610p+0, 0x1.8fb91d2a17639p+0, 0x1.93b36bb158fffp+0, 0x1.97b7dc637595cp+0,
    0x1.9bc68911258c0p+0, 0x1.9fdf8bcce533dp+0, 0x1.a402feeb9c533p+0, 0x1.a830fd0547591p+0,
    0x1.ac69a0f5a241cp+0, 0x1.b0ad05dcd52e0p+0, 0x1.b4fb472022b1ap+0, 0x1.b954806a97df0p+0,
    0x1.bdb8cdadbe120p+0, 0x1.c2284b224e80ap+0, 0x1.c6a31548e794dp+0, 0x1.cb2948eac4142p+0,
    0x1.cfbb031a741a5p+0, 0x1.d458613497eacp+0, 0x1.d90180e09c9e4p+0, 0x1.ddb680117ab12p+0,
    0x1.e2777d0676770p+0, 0x1.e744964be278bp+0, 0x1.ec1deabbe3c14p+0, 0x1.f103997f381f4p+0,
    0x1.f5f5c20dfe5f2p+0, 0x1.faf4843080836p+0, 0x1.0000000000000p+1,
};

/* The bucket of a finite x > 0: 70 * e + j where x = 2^e * m, 1 <= m < 2 and
 * B[j] <= m < B[j+1]. frexp is exact and the comparisons are against constants, so the
 * index is the same on every IEEE-754 machine (no libm logarithm involved). */
static int32_t q_index(double x)
{
  int e;
  double m = 2.0 * frexp(x, &e);
  int lo = 0, hi = Q_SUB - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (q_bound[mid] <= m)
      lo = mid;
    else
      hi = mid - 1;
  }
  return (int32_t)(e - 1) * Q_SUB + lo;
}

static void q_split(int32_t idx, int *e, int *j)
{
  int32_t q = idx / Q_SUB, r = idx % Q_SUB;
  if (r < 0) {
    r += Q_SUB;
    q--;
  }
  *e = q;
  *j = r;
}

static double q_lower(int32_t idx)
{
  int e, j;
  q_split(idx, &e, &j);
  return ldexp(q_bound[j], e);
}

static double q_upper(int32_t idx)
{
  int e, j;
  q_split(idx, &e, &j);
  return ldexp(q_bound[j + 1], e);
}

static double q_rep(int32_t idx)
{
  int e, j;
  q_split(idx, &e, &j);
  double a = q_bound[j], b = q_bound[j + 1];
  return ldexp(2.0 * a * b / (a + b), e);
}

/* Counts of the buckets lo .. lo + len - 1 of one sign. */
typedef struct qstore {
  uint64_t *c;
  int32_t lo;
  uint32_t len;
} qstore_t;

typedef struct qstate {
  uint64_t n;       /* inputs counted (infinities included) */
  double min, max;  /* exact extremes, when n > 0 */
  uint32_t sketch;  /* 0: vals holds the n inputs in ascending order; 1: the counts */
  uint32_t vcap;
  double *vals;
  uint64_t zero, ninf, pinf;
  qstore_t pos, neg; /* finite x > 0 by q_index(x); finite x < 0 by q_index(-x) */
} qstate_t;

static void qs_free(qstore_t *s, zql_aggctx_t *ctx)
{
  heap_free(ctx, s->c, (size_t)s->len * sizeof *s->c);
  memset(s, 0, sizeof *s);
}

/* Make the store cover the buckets a..b (a <= b), with some slack on the sides it grows. */
static int qs_reserve(qstore_t *s, int32_t a, int32_t b, zql_aggctx_t *ctx)
{
  int32_t ohi = s->lo + (int32_t)s->len - 1;
  if (s->len && a >= s->lo && b <= ohi)
    return 0;
  int32_t nlo = a, nhi = b;
  if (s->len) {
    if (s->lo < nlo)
      nlo = s->lo;
    if (ohi > nhi)
      nhi = ohi;
  }
  int32_t slack = (nhi - nlo) / 4;
  if (slack < 16)
    slack = 16;
  if (!s->len || a < s->lo)
    nlo = nlo - slack < Q_IDX_MIN ? Q_IDX_MIN : nlo - slack;
  if (!s->len || b > ohi)
    nhi = nhi > Q_IDX_MAX - slack ? Q_IDX_MAX : nhi + slack;
  size_t nlen = (size_t)(nhi - nlo) + 1;
  uint64_t *c = heap_calloc(ctx, nlen, sizeof *c);
  if (!c)
    return ZQL_E_NOMEM;
  if (s->len)
    memcpy(c + (s->lo - nlo), s->c, (size_t)s->len * sizeof *c);
  heap_free(ctx, s->c, (size_t)s->len * sizeof *s->c);
  s->c = c;
  s->lo = nlo;
  s->len = (uint32_t)nlen;
  return 0;
}

/* The range of nonzero buckets; false when the store is empty. */
static bool qs_range(const qstore_t *s, int32_t *a, int32_t *b)
{
  uint32_t i = 0, j = s->len;
  while (i < j && !s->c[i])
    i++;
  while (j > i && !s->c[j - 1])
    j--;
  if (i == j)
    return false;
  *a = s->lo + (int32_t)i;
  *b = s->lo + (int32_t)j - 1;
  return true;
}

typedef struct qrange {
  int32_t plo, phi, nlo, nhi; /* empty when lo > hi */
} qrange_t;

static void qr_init(qrange_t *r)
{
  r->plo = r->nlo = INT32_MAX;
  r->phi = r->nhi = INT32_MIN;
}

static void qr_add(qrange_t *r, double x)
{
  if (x == 0 || isinf(x))
    return;
  int32_t i = q_index(fabs(x));
  if (x > 0) {
    if (i < r->plo)
      r->plo = i;
    if (i > r->phi)
      r->phi = i;
  } else {
    if (i < r->nlo)
      r->nlo = i;
    if (i > r->nhi)
      r->nhi = i;
  }
}

static int qr_reserve(qstate_t *s, const qrange_t *r, zql_aggctx_t *ctx)
{
  if (r->plo <= r->phi && qs_reserve(&s->pos, r->plo, r->phi, ctx))
    return ZQL_E_NOMEM;
  if (r->nlo <= r->nhi && qs_reserve(&s->neg, r->nlo, r->nhi, ctx))
    return ZQL_E_NOMEM;
  return 0;
}

/* Count cnt copies of x; its bucket must already be reserved. */
static void q_count(qstate_t *s, double x, uint64_t cnt)
{
  if (x == 0)
    s->zero += cnt;
  else if (isinf(x))
    *(x > 0 ? &s->pinf : &s->ninf) += cnt;
  else {
    qstore_t *st = x > 0 ? &s->pos : &s->neg;
    st->c[q_index(fabs(x)) - st->lo] += cnt;
  }
}

/* Switch an exact state to counts, reserving also the buckets in *extra. On failure the
 * state is unchanged. */
static int q_to_sketch(qstate_t *s, qrange_t *extra, zql_aggctx_t *ctx)
{
  for (uint64_t i = 0; i < s->n; i++)
    qr_add(extra, s->vals[i]);
  if (qr_reserve(s, extra, ctx)) {
    qs_free(&s->pos, ctx);
    qs_free(&s->neg, ctx);
    return ZQL_E_NOMEM;
  }
  for (uint64_t i = 0; i < s->n; i++)
    q_count(s, s->vals[i], 1);
  heap_free(ctx, s->vals, (size_t)s->vcap * sizeof *s->vals);
  s->vals = NULL;
  s->vcap = 0;
  s->sketch = 1;
  return 0;
}

static void q_extremes(qstate_t *s, double lo, double hi)
{
  if (!s->n || lo < s->min)
    s->min = lo;
  if (!s->n || hi > s->max)
    s->max = hi;
}

static void q_init(void *st, const zql_aggparams_t *p)
{
  memset(st, 0, sizeof(qstate_t));
}

static void q_destroy(void *st, zql_aggctx_t *ctx)
{
  qstate_t *s = st;
  heap_free(ctx, s->vals, (size_t)s->vcap * sizeof *s->vals);
  qs_free(&s->pos, ctx);
  qs_free(&s->neg, ctx);
  memset(s, 0, sizeof *s);
}

static int q_add_value(qstate_t *s, double x, zql_aggctx_t *ctx)
{
  if (x == 0)
    x = 0.0; /* -0.0 counts as 0 */
  if (!s->sketch && s->n < Q_EXACT_MAX) {
    if (s->n == s->vcap) {
      uint32_t ncap = s->vcap ? s->vcap * 2 : 8;
      double *v = zql_realloc(s->vals, (size_t)ncap * sizeof *v);
      if (!v)
        return ZQL_E_NOMEM;
      ctx->heap += (int64_t)((size_t)(ncap - s->vcap) * sizeof *v);
      s->vals = v;
      s->vcap = ncap;
    }
    size_t lo = 0, hi = s->n; /* insert after the values <= x */
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (s->vals[mid] <= x)
        lo = mid + 1;
      else
        hi = mid;
    }
    memmove(s->vals + lo + 1, s->vals + lo, (s->n - lo) * sizeof *s->vals);
    s->vals[lo] = x;
  } else {
    qrange_t r;
    qr_init(&r);
    qr_add(&r, x);
    int rc = s->sketch ? qr_reserve(s, &r, ctx) : q_to_sketch(s, &r, ctx);
    if (rc)
      return rc;
    q_count(s, x, 1);
  }
  q_extremes(s, x, x);
  s->n++;
  return 0;
}

static int q_add(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  const zql_val_t *x = &in->x;
  if (zql_val_is_nullish(x))
    return 0;
  if (!zql_val_is_num(x) || isnan(zql_val_num(x))) {
    ctx->type_skips++;
    return 0;
  }
  return q_add_value(st, zql_val_num(x), ctx);
}

static int q_merge(void *dst, const void *src, zql_aggctx_t *ctx)
{
  qstate_t *d = dst;
  const qstate_t *s = src;
  if (!s->n)
    return 0;
  if (!d->sketch && !s->sketch && d->n + s->n <= Q_EXACT_MAX) {
    uint64_t total = d->n + s->n;
    if (total > d->vcap) {
      uint32_t ncap = d->vcap ? d->vcap : 8;
      while (ncap < total)
        ncap *= 2;
      double *v = zql_realloc(d->vals, (size_t)ncap * sizeof *v);
      if (!v)
        return ZQL_E_NOMEM;
      ctx->heap += (int64_t)((size_t)(ncap - d->vcap) * sizeof *v);
      d->vals = v;
      d->vcap = ncap;
    }
    uint64_t i = d->n, j = s->n, k = total;
    while (j > 0) {
      if (i > 0 && d->vals[i - 1] > s->vals[j - 1])
        d->vals[--k] = d->vals[--i];
      else
        d->vals[--k] = s->vals[--j];
    }
  } else {
    /* reserve every bucket first, so that nothing below can fail */
    qrange_t r;
    qr_init(&r);
    if (!s->sketch) {
      for (uint64_t i = 0; i < s->n; i++)
        qr_add(&r, s->vals[i]);
    } else {
      qs_range(&s->pos, &r.plo, &r.phi); /* an empty store leaves its range empty */
      qs_range(&s->neg, &r.nlo, &r.nhi);
    }
    int rc = d->sketch ? qr_reserve(d, &r, ctx) : q_to_sketch(d, &r, ctx);
    if (rc)
      return rc;
    if (!s->sketch) {
      for (uint64_t i = 0; i < s->n; i++)
        q_count(d, s->vals[i], 1);
    } else {
      for (uint32_t i = 0; i < s->pos.len; i++)
        if (s->pos.c[i])
          d->pos.c[s->pos.lo + (int32_t)i - d->pos.lo] += s->pos.c[i];
      for (uint32_t i = 0; i < s->neg.len; i++)
        if (s->neg.c[i])
          d->neg.c[s->neg.lo + (int32_t)i - d->neg.lo] += s->neg.c[i];
      d->zero += s->zero;
      d->ninf += s->ninf;
      d->pinf += s->pinf;
    }
  }
  q_extremes(d, s->min, s->max);
  d->n += s->n;
  return 0;
}

/* The value of rank k (0-based, ascending). In the sketch: the representative of the
 * rank's bucket, clamped to [min, max]; the extreme ranks are min and max themselves. */
static double q_rank_value(const qstate_t *s, uint64_t k)
{
  if (!s->sketch)
    return s->vals[k];
  if (k == 0)
    return s->min;
  if (k + 1 >= s->n)
    return s->max;
  double v = INFINITY;
  uint64_t c = s->ninf;
  if (k < c)
    return -INFINITY;
  for (uint32_t i = s->neg.len; i-- > 0;) {
    c += s->neg.c[i];
    if (k < c) {
      v = -q_rep(s->neg.lo + (int32_t)i);
      goto clamp;
    }
  }
  c += s->zero;
  if (k < c)
    return 0.0;
  for (uint32_t i = 0; i < s->pos.len; i++) {
    c += s->pos.c[i];
    if (k < c) {
      v = q_rep(s->pos.lo + (int32_t)i);
      goto clamp;
    }
  }
  return INFINITY;
clamp:
  return v < s->min ? s->min : v > s->max ? s->max : v;
}

/* Type-7 interpolation a + g (b - a), a <= b, 0 < g < 1, with infinities: an infinite end
 * wins, -inf..+inf gives NaN (numpy does the same). */
static double q_lerp(double a, double b, double g)
{
  if (a == b)
    return a;
  if (isinf(a) || isinf(b))
    return isinf(a) && isinf(b) ? NAN : isinf(a) ? a : b;
  double d = b - a;
  if (isinf(d)) /* the difference overflows: weigh the ends instead */
    return a * (1.0 - g) + b * g;
  return a + g * d;
}

static int q_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                   zql_val_t *out)
{
  const qstate_t *s = st;
  double q = p->q;
  if (!(q >= 0.0 && q <= 1.0)) {
    *out = zql_val_error("quantile: q must be between 0 and 1");
    return 0;
  }
  if (!s->n) {
    *out = zql_val_null();
    return 0;
  }
  double h = (double)(s->n - 1) * q;
  uint64_t k = (uint64_t)h;
  double g = h - (double)k;
  if (k >= s->n - 1) {
    k = s->n - 1;
    g = 0;
  }
  double a = q_rank_value(s, k);
  *out = zql_val_double(g > 0 ? q_lerp(a, q_rank_value(s, k + 1), g) : a);
  return 0;
}

static bool q_bucket_doc(bson_t *arr, uint32_t *i, double lo, double hi, uint64_t count)
{
  char buf[16];
  const char *key;
  size_t klen = bson_uint32_to_string((*i)++, &key, buf, sizeof buf);
  bson_t d;
  return bson_append_document_begin(arr, key, (int)klen, &d) && BSON_APPEND_DOUBLE(&d, "lo", lo) &&
         BSON_APPEND_DOUBLE(&d, "hi", hi) && BSON_APPEND_INT64(&d, "count", (int64_t)count) &&
         bson_append_document_end(arr, &d);
}

/* tdigest(e): {count, min, max, exact, alpha, buckets: [{lo, hi, count}...]} (see
 * docs/sketches.md). */
static int td_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                    zql_val_t *out)
{
  const qstate_t *s = st;
  bson_t doc, arr;
  uint32_t i = 0;
  bson_init(&doc);
  bool ok = BSON_APPEND_INT64(&doc, "count", (int64_t)s->n);
  if (s->n)
    ok = ok && BSON_APPEND_DOUBLE(&doc, "min", s->min) && BSON_APPEND_DOUBLE(&doc, "max", s->max);
  else
    ok = ok && BSON_APPEND_NULL(&doc, "min") && BSON_APPEND_NULL(&doc, "max");
  ok = ok && BSON_APPEND_BOOL(&doc, "exact", !s->sketch) &&
       BSON_APPEND_DOUBLE(&doc, "alpha", Q_ALPHA) && BSON_APPEND_ARRAY_BEGIN(&doc, "buckets", &arr);
  if (!s->sketch) {
    for (uint64_t a = 0, b; ok && a < s->n; a = b) {
      for (b = a + 1; b < s->n && s->vals[b] == s->vals[a]; b++)
        ;
      ok = q_bucket_doc(&arr, &i, s->vals[a], s->vals[a], b - a);
    }
  } else {
    if (ok && s->ninf)
      ok = q_bucket_doc(&arr, &i, -INFINITY, -INFINITY, s->ninf);
    for (uint32_t j = s->neg.len; ok && j-- > 0;)
      if (s->neg.c[j]) {
        int32_t idx = s->neg.lo + (int32_t)j;
        ok = q_bucket_doc(&arr, &i, -q_upper(idx), -q_lower(idx), s->neg.c[j]);
      }
    if (ok && s->zero)
      ok = q_bucket_doc(&arr, &i, 0.0, 0.0, s->zero);
    for (uint32_t j = 0; ok && j < s->pos.len; j++)
      if (s->pos.c[j]) {
        int32_t idx = s->pos.lo + (int32_t)j;
        ok = q_bucket_doc(&arr, &i, q_lower(idx), q_upper(idx), s->pos.c[j]);
      }
    if (ok && s->pinf)
      ok = q_bucket_doc(&arr, &i, INFINITY, INFINITY, s->pinf);
  }
  ok = ok && bson_append_array_end(&doc, &arr);
  int rc = ok ? bson_to_val(&doc, false, arena, out) : ZQL_E_NOMEM;
  bson_destroy(&doc);
  return rc;
}

/* "pos" / "neg": the nonzero buckets, ascending, each i32 LE index + u64 LE count. */
static bool qs_save(const qstore_t *s, bson_t *out, const char *key)
{
  size_t n = 0;
  for (uint32_t i = 0; i < s->len; i++)
    n += s->c[i] != 0;
  uint8_t *b = zql_malloc(12 * n + 1);
  if (!b)
    return false;
  size_t o = 0;
  for (uint32_t i = 0; i < s->len; i++)
    if (s->c[i]) {
      le32_put(b + o, (uint32_t)(s->lo + (int32_t)i));
      le64_put(b + o + 4, s->c[i]);
      o += 12;
    }
  bool ok = save_bin(out, key, b, o);
  zql_free(b);
  return ok;
}

static int q_save_kind(const qstate_t *s, bson_t *out, const char *kind)
{
  bson_t par;
  if (!save_head(out, kind) || !bson_append_document_begin(out, "p", 1, &par) ||
      !bson_append_document_end(out, &par) || !BSON_APPEND_INT64(out, "n", (int64_t)s->n))
    return ZQL_E_NOMEM;
  if (!s->n)
    return 0;
  if (!BSON_APPEND_DOUBLE(out, "min", s->min) || !BSON_APPEND_DOUBLE(out, "max", s->max))
    return ZQL_E_NOMEM;
  if (!s->sketch) {
    uint8_t *b = zql_malloc((size_t)s->n * 8);
    if (!b)
      return ZQL_E_NOMEM;
    for (uint64_t i = 0; i < s->n; i++)
      f64_put(b + 8 * i, s->vals[i]);
    bool ok = save_bin(out, "vals", b, (size_t)s->n * 8);
    zql_free(b);
    return ok ? 0 : ZQL_E_NOMEM;
  }
  bool ok = BSON_APPEND_INT64(out, "zero", (int64_t)s->zero) &&
            BSON_APPEND_INT64(out, "ninf", (int64_t)s->ninf) &&
            BSON_APPEND_INT64(out, "pinf", (int64_t)s->pinf) && qs_save(&s->pos, out, "pos") &&
            qs_save(&s->neg, out, "neg");
  return ok ? 0 : ZQL_E_NOMEM;
}

static int q_save(const void *st, bson_t *out)
{
  return q_save_kind(st, out, "quantile");
}

static int td_save(const void *st, bson_t *out)
{
  return q_save_kind(st, out, "tdigest");
}

static int qs_load(qstore_t *s, const bson_t *in, const char *key, uint64_t *sum,
                   zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  const uint8_t *data;
  uint32_t len;
  if (!find_bin(in, key, &data, &len) || len % 12)
    return bad_state(err, "quantile", "bad bucket payload");
  uint32_t n = len / 12;
  if (!n)
    return 0;
  int32_t first = (int32_t)le32_get(data), last = (int32_t)le32_get(data + 12 * (n - 1));
  for (uint32_t i = 0; i < n; i++) {
    int32_t idx = (int32_t)le32_get(data + 12 * i);
    uint64_t c = le64_get(data + 12 * i + 4);
    if (idx < Q_IDX_MIN || idx > Q_IDX_MAX || (i && idx <= (int32_t)le32_get(data + 12 * (i - 1))) ||
        c == 0 || c > UINT64_MAX - *sum)
      return bad_state(err, "quantile", "bad bucket in payload");
    *sum += c;
  }
  if (qs_reserve(s, first, last, ctx))
    return ZQL_E_NOMEM;
  for (uint32_t i = 0; i < n; i++)
    s->c[(int32_t)le32_get(data + 12 * i) - s->lo] = le64_get(data + 12 * i + 4);
  return 0;
}

/* Where a value sorts among the buckets: -inf, negative buckets (larger magnitude first),
 * zero, positive buckets, +inf, as one comparable number. */
static int64_t q_place(double x)
{
  if (isinf(x))
    return x < 0 ? INT64_MIN : INT64_MAX;
  if (x == 0)
    return 0;
  int64_t i = (int64_t)q_index(fabs(x)) - Q_IDX_MIN + 1;
  return x < 0 ? -i : i;
}

static int q_load_body(qstate_t *s, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  static const char kind[] = "quantile";
  int64_t n;
  if (!find_int(in, "n", &n) || n < 0)
    return bad_state(err, kind, "bad count 'n'");
  if (!n)
    return 0;
  double mn, mx;
  if (!find_double(in, "min", &mn) || !find_double(in, "max", &mx) || isnan(mn) || isnan(mx) ||
      mn > mx || (mn == 0 && signbit(mn)) || (mx == 0 && signbit(mx)))
    return bad_state(err, kind, "bad 'min' or 'max'");
  if (n <= Q_EXACT_MAX) {
    const uint8_t *data;
    uint32_t len;
    if (!find_bin(in, "vals", &data, &len) || len != (uint64_t)n * 8)
      return bad_state(err, kind, "bad 'vals' payload");
    s->vals = heap_alloc(ctx, (size_t)len);
    if (!s->vals)
      return ZQL_E_NOMEM;
    s->vcap = (uint32_t)n;
    for (int64_t i = 0; i < n; i++) {
      double x = f64_get(data + 8 * i);
      if (isnan(x) || (x == 0 && signbit(x)) || (i && x < s->vals[i - 1]))
        return bad_state(err, kind, "bad value in 'vals'");
      s->vals[i] = x;
    }
    s->n = (uint64_t)n;
    if (s->vals[0] != mn || s->vals[n - 1] != mx)
      return bad_state(err, kind, "'min' or 'max' disagrees with 'vals'");
    s->min = mn;
    s->max = mx;
    return 0;
  }
  int64_t zero, ninf, pinf;
  if (!find_int(in, "zero", &zero) || !find_int(in, "ninf", &ninf) ||
      !find_int(in, "pinf", &pinf) || zero < 0 || ninf < 0 || pinf < 0)
    return bad_state(err, kind, "bad 'zero', 'ninf' or 'pinf'");
  uint64_t sum = (uint64_t)zero + (uint64_t)ninf + (uint64_t)pinf;
  s->sketch = 1;
  int rc = qs_load(&s->pos, in, "pos", &sum, ctx, err);
  if (!rc)
    rc = qs_load(&s->neg, in, "neg", &sum, ctx, err);
  if (rc)
    return rc;
  if (sum != (uint64_t)n)
    return bad_state(err, kind, "bucket counts do not add up to 'n'");
  s->zero = (uint64_t)zero;
  s->ninf = (uint64_t)ninf;
  s->pinf = (uint64_t)pinf;
  s->n = (uint64_t)n;
  /* min and max must fall in the lowest and highest nonempty places */
  int64_t lo = INT64_MAX, hi = INT64_MIN, a;
  int32_t x, y;
  if (s->ninf)
    lo = INT64_MIN;
  else if (qs_range(&s->neg, &x, &y))
    lo = -((int64_t)y - Q_IDX_MIN + 1);
  else if (s->zero)
    lo = 0;
  else if (qs_range(&s->pos, &x, &y))
    lo = (int64_t)x - Q_IDX_MIN + 1;
  if (s->pinf)
    hi = INT64_MAX;
  else if (qs_range(&s->pos, &x, &y))
    hi = (int64_t)y - Q_IDX_MIN + 1;
  else if (s->zero)
    hi = 0;
  else if (qs_range(&s->neg, &x, &y))
    hi = -((int64_t)x - Q_IDX_MIN + 1);
  a = q_place(mn);
  if (a != lo || q_place(mx) != hi)
    return bad_state(err, kind, "'min' or 'max' disagrees with the buckets");
  s->min = mn;
  s->max = mx;
  return 0;
}

static int q_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  qstate_t *s = st;
  bson_t par;
  q_init(s, NULL);
  int rc = load_head(in, "quantile", "tdigest", &par, err);
  if (!rc)
    rc = q_load_body(s, in, ctx, err);
  if (rc)
    q_destroy(s, ctx);
  return rc;
}

static int td_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  qstate_t *s = st;
  bson_t par;
  q_init(s, NULL);
  int rc = load_head(in, "tdigest", "quantile", &par, err);
  if (!rc)
    rc = q_load_body(s, in, ctx, err);
  if (rc)
    q_destroy(s, ctx);
  return rc;
}

const zql_aggdef_t zql_agg_quantile = {
    "quantile", STATE_VERSION, sizeof(qstate_t), 0,      q_init, q_add,
    q_merge,    q_final,       q_save,           q_load, q_destroy,
};

const zql_aggdef_t zql_agg_tdigest = {
    "tdigest", STATE_VERSION, sizeof(qstate_t), 0,       q_init, q_add,
    q_merge,   td_final,      td_save,          td_load, q_destroy,
};

/* }==== */

/* {==== topk(e, k [, weight w]) ======================================================== */

#define TK_KMAX 100000
#define TK_NONE UINT32_MAX
/* Encodings up to this long are kept in their entry (most values a topk counts: names,
 * paths, ids), longer ones in an allocated copy: a state's entries then cost no allocation
 * each when they are counted, loaded, merged and freed. */
#define TK_INLINE 40

typedef struct tk_item {
  union {
    uint8_t *p;            /* len > TK_INLINE: an owned copy of the encoding */
    uint8_t in[TK_INLINE]; /* len <= TK_INLINE: the encoding */
  } key;
  uint64_t hash; /* zql_hash_bytes(key) */
  double count;  /* Space-Saving count (an overestimate after evictions) */
  uint32_t len;
  uint32_t hpos; /* position in heap */
} tk_item_t;

static inline const uint8_t *tk_key(const tk_item_t *e)
{
  return e->len <= TK_INLINE ? e->key.in : e->key.p;
}

static void tk_key_free(tk_item_t *e, zql_aggctx_t *ctx)
{
  if (e->len > TK_INLINE)
    heap_free(ctx, e->key.p, e->len);
}

typedef struct tk {
  int64_t k;
  uint32_t cap;      /* 3k entries; 0 when k is invalid */
  uint32_t n;        /* entries in use */
  uint32_t icap;     /* allocated entries (grows to cap) */
  uint32_t tcap;     /* slots of tab: a power of two >= 2 icap */
  uint8_t nonint;    /* some weight was not integral: counts are output as doubles */
  uint8_t ordered;   /* items are in output order (a merge's result, a loaded state): the
                        final and the save need not sort them; any count clears it */
  tk_item_t *items;  /* items, heap and tab: one allocation of tk_block bytes, at items */
  uint32_t *heap;    /* entry indices, a binary min-heap: the eviction victim on top */
  uint32_t *tab;     /* entry index + 1 by hash, linear probing; 0 = empty */
} tk_t;

/* Eviction order: the smaller count first, then the larger encoding (so the victim is the
 * last entry of the output order). */
static bool tk_before(const tk_t *t, uint32_t a, uint32_t b)
{
  const tk_item_t *x = &t->items[a], *y = &t->items[b];
  if (x->count != y->count)
    return x->count < y->count;
  return key_cmp(tk_key(x), x->len, tk_key(y), y->len) > 0;
}

static void tk_swap(tk_t *t, uint32_t i, uint32_t j)
{
  uint32_t a = t->heap[i];
  t->heap[i] = t->heap[j];
  t->heap[j] = a;
  t->items[t->heap[i]].hpos = i;
  t->items[t->heap[j]].hpos = j;
}

static void tk_fix(tk_t *t, uint32_t i)
{
  while (i > 0 && tk_before(t, t->heap[i], t->heap[(i - 1) / 2])) {
    tk_swap(t, i, (i - 1) / 2);
    i = (i - 1) / 2;
  }
  for (;;) {
    uint32_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < t->n && tk_before(t, t->heap[l], t->heap[m]))
      m = l;
    if (r < t->n && tk_before(t, t->heap[r], t->heap[m]))
      m = r;
    if (m == i)
      return;
    tk_swap(t, i, m);
    i = m;
  }
}

static uint32_t tk_find(const tk_t *t, const uint8_t *key, uint32_t len, uint64_t hash)
{
  if (!t->tcap)
    return TK_NONE;
  uint32_t mask = t->tcap - 1;
  for (uint32_t i = (uint32_t)hash & mask; t->tab[i]; i = (i + 1) & mask) {
    const tk_item_t *e = &t->items[t->tab[i] - 1];
    if (e->hash == hash && e->len == len && memcmp(tk_key(e), key, len) == 0)
      return t->tab[i] - 1;
  }
  return TK_NONE;
}

static void tk_tab_put(tk_t *t, uint32_t item)
{
  uint32_t mask = t->tcap - 1, i = (uint32_t)t->items[item].hash & mask;
  while (t->tab[i])
    i = (i + 1) & mask;
  t->tab[i] = item + 1;
}

/* Remove an entry from tab (Knuth's algorithm R: shift back the rest of the cluster). */
static void tk_tab_del(tk_t *t, uint32_t item)
{
  uint32_t mask = t->tcap - 1, i = (uint32_t)t->items[item].hash & mask;
  while (t->tab[i] != item + 1)
    i = (i + 1) & mask;
  t->tab[i] = 0;
  for (uint32_t j = (i + 1) & mask; t->tab[j]; j = (j + 1) & mask) {
    uint32_t home = (uint32_t)t->items[t->tab[j] - 1].hash & mask;
    /* the entry at j may move to the hole at i unless its home lies cyclically in (i, j] */
    bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!stays) {
      t->tab[i] = t->tab[j];
      t->tab[j] = 0;
      i = j;
    }
  }
}

static void tk_init(void *st, const zql_aggparams_t *p)
{
  tk_t *t = st;
  memset(t, 0, sizeof *t);
  t->k = p->n;
  if (p->n >= 1 && p->n <= TK_KMAX)
    t->cap = (uint32_t)(3 * p->n);
}

/* The bytes of the arrays of icap entries and tcap slots. */
static size_t tk_block(uint32_t icap, uint32_t tcap)
{
  return (size_t)icap * (sizeof(tk_item_t) + sizeof(uint32_t)) + (size_t)tcap * sizeof(uint32_t);
}

static void tk_free_arrays(tk_t *t, zql_aggctx_t *ctx)
{
  heap_free(ctx, t->items, tk_block(t->icap, t->tcap));
  t->items = NULL;
  t->heap = t->tab = NULL;
  t->icap = t->tcap = 0;
}

static void tk_destroy(void *st, zql_aggctx_t *ctx)
{
  tk_t *t = st;
  for (uint32_t i = 0; i < t->n; i++)
    tk_key_free(&t->items[i], ctx);
  t->n = 0;
  tk_free_arrays(t, ctx);
}

/* Arrays for icap entries holding the first n entries of old (heap order kept); the
 * caller rebuilds tab. All or nothing. */
static int tk_realloc(tk_t *t, uint32_t icap, zql_aggctx_t *ctx)
{
  uint32_t tcap = 16;
  while (tcap < 2 * icap)
    tcap *= 2;
  tk_item_t *items = heap_alloc(ctx, tk_block(icap, tcap));
  if (!items)
    return ZQL_E_NOMEM;
  uint32_t *hp = (uint32_t *)(items + icap), *tab = hp + icap;
  memset(tab, 0, (size_t)tcap * sizeof *tab);
  if (t->n) {
    memcpy(items, t->items, (size_t)t->n * sizeof *items);
    memcpy(hp, t->heap, (size_t)t->n * sizeof *hp);
  }
  tk_free_arrays(t, ctx);
  t->items = items;
  t->heap = hp;
  t->tab = tab;
  t->icap = icap;
  t->tcap = tcap;
  for (uint32_t i = 0; i < t->n; i++)
    tk_tab_put(t, i);
  return 0;
}

/* Count w for the encoding key (Space-Saving): an entry's count grows; a new value takes
 * a free entry, or replaces the victim and inherits its count. */
static int tk_count(tk_t *t, const uint8_t *key, uint32_t len, uint64_t hash, double w,
                    zql_aggctx_t *ctx)
{
  uint32_t i = tk_find(t, key, len, hash);
  if (i == TK_NONE) {
    uint8_t *copy = NULL;
    if (len > TK_INLINE) {
      if (!(copy = heap_alloc(ctx, len)))
        return ZQL_E_NOMEM;
      memcpy(copy, key, len);
    }
    if (t->n < t->cap) {
      if (t->n == t->icap) {
        uint32_t ncap = t->icap ? 2 * t->icap : 8;
        if (ncap > t->cap)
          ncap = t->cap;
        if (tk_realloc(t, ncap, ctx)) {
          heap_free(ctx, copy, len);
          return ZQL_E_NOMEM;
        }
      }
      i = t->n++;
      t->items[i].count = 0;
      t->items[i].hpos = i;
      t->heap[i] = i;
    } else {
      i = t->heap[0];
      tk_tab_del(t, i);
      tk_key_free(&t->items[i], ctx);
    }
    if (copy)
      t->items[i].key.p = copy;
    else
      memcpy(t->items[i].key.in, key, len);
    t->items[i].len = len;
    t->items[i].hash = hash;
    tk_tab_put(t, i);
  }
  t->items[i].count += w;
  t->ordered = 0;
  tk_fix(t, t->items[i].hpos);
  if (w != floor(w))
    t->nonint = 1;
  return 0;
}

static int tk_add(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  tk_t *t = st;
  if (!t->cap || zql_val_is_nullish(&in->x))
    return 0;
  /* the executor passes 1 when the call has no weight; a weight that is not a finite
   * number > 0 (MISSING, NULL, a string, 0, -1, inf) skips the row */
  double w = zql_val_is_num(&in->weight) ? zql_val_num(&in->weight) : NAN;
  if (!(w > 0) || isinf(w)) {
    ctx->type_skips++;
    return 0;
  }
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_val_encode(&sb, &in->x);
  int rc = ZQL_E_NOMEM;
  if (!sb.oom && sb.len <= UINT32_MAX)
    rc = tk_count(t, (const uint8_t *)sb.buf, (uint32_t)sb.len,
                  zql_hash_bytes(sb.buf, sb.len), w, ctx);
  zql_strbuf_release(&sb);
  return rc;
}

/* Output order: descending count, then ascending encoding (R7 order of the values). */
typedef struct tk_cand {
  const uint8_t *key;
  uint64_t hash;
  double count;
  uint32_t len;
  uint32_t from; /* the dst entry, or TK_NONE for a value only src holds */
} tk_cand_t;

static int tk_cand_cmp(const void *a, const void *b)
{
  const tk_cand_t *x = a, *y = b;
  if (x->count != y->count)
    return x->count > y->count ? -1 : 1;
  return key_cmp(x->key, x->len, y->key, y->len);
}

/* Agarwal et al.'s merge: add the counts of equal values (a value missing from one side
 * counts 0 there), keep the cap largest in output order. */
static int tk_merge(void *dst, const void *src, zql_aggctx_t *ctx)
{
  tk_t *d = dst;
  const tk_t *s = src;
  if (d->k != s->k)
    return ZQL_AGG_MISMATCH;
  if (!d->cap || !s->n)
    return 0;
  size_t total = (size_t)d->n + s->n, m = 0;
  tk_cand_t small[64]; /* topk(e, k <= 10): 60 candidates at most */
  tk_cand_t *c = total <= 64 ? small : heap_alloc(ctx, total * sizeof *c);
  if (!c)
    return ZQL_E_NOMEM;
  /* A value absent from a full summary may have occurred there up to its smallest count
   * (that is how Space-Saving evicts): credit it that much, so merged counts stay
   * overestimates (Metwally et al.; Agarwal et al. 2012), exactly as if the other side's
   * rows had been added one by one. A summary that is not full is exact: credit 0. */
  double dmin = d->n == d->cap && d->n ? d->items[d->heap[0]].count : 0;
  double smin = s->n == s->cap && s->n ? s->items[s->heap[0]].count : 0;
  for (uint32_t i = 0; i < d->n; i++) {
    const tk_item_t *e = &d->items[i];
    uint32_t j = tk_find(s, tk_key(e), e->len, e->hash);
    c[m++] = (tk_cand_t){tk_key(e), e->hash, e->count + (j == TK_NONE ? smin : s->items[j].count),
                         e->len, i};
  }
  for (uint32_t j = 0; j < s->n; j++) {
    const tk_item_t *e = &s->items[j];
    if (tk_find(d, tk_key(e), e->len, e->hash) == TK_NONE)
      c[m++] = (tk_cand_t){tk_key(e), e->hash, e->count + dmin, e->len, TK_NONE};
  }
  qsort(c, m, sizeof *c, tk_cand_cmp);
  uint32_t keep = m < d->cap ? (uint32_t)m : d->cap;
  /* new copies of the kept src-only keys too long for their entry first: all or nothing */
  uint8_t **copies = NULL;
  bool ok = true;
  for (uint32_t i = 0; ok && i < keep; i++)
    if (c[i].from == TK_NONE && c[i].len > TK_INLINE) {
      if (!copies && !(copies = heap_calloc(ctx, keep + 1, sizeof *copies))) {
        ok = false;
        break;
      }
      copies[i] = heap_alloc(ctx, c[i].len);
      ok = copies[i] != NULL;
      if (ok)
        memcpy(copies[i], c[i].key, c[i].len);
    }
  tk_t nt = *d;
  nt.items = NULL;
  nt.heap = nt.tab = NULL;
  nt.icap = nt.tcap = 0;
  nt.n = 0;
  ok = ok && tk_realloc(&nt, keep > 8 ? keep : (d->cap < 8 ? d->cap : 8), ctx) == 0;
  if (!ok) {
    for (uint32_t i = 0; copies && i < keep; i++)
      if (copies[i])
        heap_free(ctx, copies[i], c[i].len);
    heap_free(ctx, copies, (size_t)(keep + 1) * sizeof *copies);
    if (c != small)
      heap_free(ctx, c, total * sizeof *c);
    return ZQL_E_NOMEM;
  }
  for (uint32_t i = 0; i < keep; i++) {
    tk_item_t *e = &nt.items[i];
    if (c[i].from != TK_NONE)
      e->key = d->items[c[i].from].key; /* moved: d's arrays are freed below, not its keys */
    else if (c[i].len > TK_INLINE)
      e->key.p = copies[i];
    else
      memcpy(e->key.in, c[i].key, c[i].len);
    e->len = c[i].len;
    e->hash = c[i].hash;
    e->count = c[i].count;
  }
  for (size_t i = keep; i < m; i++)
    if (c[i].from != TK_NONE)
      tk_key_free(&d->items[c[i].from], ctx);
  /* descending order reversed is a valid min-heap (every parent precedes its children) */
  nt.n = keep;
  for (uint32_t i = 0; i < keep; i++) {
    nt.heap[i] = keep - 1 - i;
    nt.items[keep - 1 - i].hpos = i;
    tk_tab_put(&nt, i);
  }
  nt.nonint = d->nonint | s->nonint;
  nt.ordered = 1; /* the candidates' order, which is the output order */
  tk_free_arrays(d, ctx);
  *d = nt;
  heap_free(ctx, copies, (size_t)(keep + 1) * sizeof *copies);
  if (c != small)
    heap_free(ctx, c, total * sizeof *c);
  return 0;
}

static int tk_item_cmp(const void *a, const void *b)
{
  const tk_item_t *x = *(tk_item_t *const *)a, *y = *(tk_item_t *const *)b;
  if (x->count != y->count)
    return x->count > y->count ? -1 : 1;
  return key_cmp(tk_key(x), x->len, tk_key(y), y->len);
}

/* The entries in output order, in an array of m pointers (from the arena or heap). */
static void tk_sorted(const tk_t *t, const tk_item_t **v)
{
  for (uint32_t i = 0; i < t->n; i++)
    v[i] = &t->items[i];
  if (!t->ordered)
    qsort(v, t->n, sizeof *v, tk_item_cmp);
}

static int tk_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                    zql_val_t *out)
{
  const tk_t *t = st;
  if (!t->cap) {
    *out = zql_val_error("topk: k must be between 1 and 100000");
    return 0;
  }
  const tk_item_t **v = zql_arena_alloc(arena, ((size_t)t->n + 1) * sizeof *v);
  if (!v)
    return ZQL_E_NOMEM;
  tk_sorted(t, v);
  uint32_t k = t->n < t->k ? t->n : (uint32_t)t->k;
  bson_t arr;
  bson_init(&arr);
  bool ok = true;
  int rc = 0;
  for (uint32_t i = 0; ok && i < k; i++) {
    char buf[16];
    const char *key;
    size_t klen = bson_uint32_to_string(i, &key, buf, sizeof buf);
    const uint8_t *cur = tk_key(v[i]);
    zql_val_t x;
    bson_t d;
    if (!zql_val_decode(&cur, cur + v[i]->len, arena, &x)) {
      rc = ZQL_E_NOMEM;
      break;
    }
    double c = v[i]->count;
    ok = bson_append_document_begin(&arr, key, (int)klen, &d) &&
         zql_val_append_bson(&d, "value", 5, &x) &&
         (!t->nonint && c < 9007199254740992.0 ? BSON_APPEND_INT64(&d, "count", (int64_t)c)
                                               : BSON_APPEND_DOUBLE(&d, "count", c)) &&
         bson_append_document_end(&arr, &d);
  }
  if (!rc)
    rc = ok ? bson_to_val(&arr, true, arena, out) : ZQL_E_NOMEM;
  bson_destroy(&arr);
  return rc;
}

/* "items": the entries in output order, each f64 LE count, u32 LE length, encoding. */
static int tk_save(const void *st, bson_t *out)
{
  const tk_t *t = st;
  bson_t par;
  if (!save_head(out, "topk") || !bson_append_document_begin(out, "p", 1, &par) ||
      !BSON_APPEND_INT64(&par, "k", t->k) || !bson_append_document_end(out, &par))
    return ZQL_E_NOMEM;
  if (!t->cap)
    return 0;
  size_t len = 0;
  for (uint32_t i = 0; i < t->n; i++)
    len += 12 + (size_t)t->items[i].len;
  const tk_item_t **v = zql_malloc(((size_t)t->n + 1) * sizeof *v);
  uint8_t *b = zql_malloc(len + 1);
  if (!v || !b) {
    zql_free(v);
    zql_free(b);
    return ZQL_E_NOMEM;
  }
  tk_sorted(t, v);
  size_t o = 0;
  for (uint32_t i = 0; i < t->n; i++) {
    f64_put(b + o, v[i]->count);
    le32_put(b + o + 8, v[i]->len);
    memcpy(b + o + 12, tk_key(v[i]), v[i]->len);
    o += 12 + (size_t)v[i]->len;
  }
  bool ok = BSON_APPEND_BOOL(out, "int", !t->nonint) && save_bin(out, "items", b, o);
  zql_free(v);
  zql_free(b);
  return ok ? 0 : ZQL_E_NOMEM;
}

/* 0 when key[0..len) is exactly one value encoding (final decodes it), ZQL_E_BAD_RECORD
 * when it is not, ZQL_E_NOMEM. zql_val_decode fails alike for malformed bytes and for out
 * of memory: a failure counts as out of memory when a block as large as a decode of these
 * bytes can need cannot be had right after it. */
/* A saved key must be one whole value encoding (checked, nothing decoded or allocated). */
static int tk_check_key(const uint8_t *key, uint32_t len)
{
  const uint8_t *cur = key;
  return zql_val_skip(&cur, key + len) && cur == key + len ? 0 : ZQL_E_BAD_RECORD;
}

static int tk_load_items(tk_t *t, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  static const char kind[] = "topk";
  bool isint;
  const uint8_t *data;
  uint32_t len;
  if (!find_bool(in, "int", &isint) || !find_bin(in, "items", &data, &len))
    return bad_state(err, kind, "no 'int' or 'items'");
  t->nonint = !isint;
  /* room for every entry at once (they are counted by their lengths; a bad one is
   * reported below), instead of growing 8, 16, 32, ... */
  uint32_t items = 0;
  for (size_t o = 0; len - o >= 12 && items < t->cap;) {
    uint32_t l = le32_get(data + o + 8);
    if (l == 0 || l > len - o - 12)
      break;
    items++;
    o += 12 + (size_t)l;
  }
  if (items > 8 && tk_realloc(t, items, ctx))
    return ZQL_E_NOMEM;
  int rc = 0;
  double pc = 0;
  const uint8_t *pk = NULL;
  uint32_t pl = 0;
  for (size_t o = 0; !rc && o < len;) {
    double c;
    uint32_t l;
    const uint8_t *key;
    if (len - o < 12 || (l = le32_get(data + o + 8)) == 0 || l > len - o - 12) {
      rc = bad_state(err, kind, "truncated 'items'");
      break;
    }
    c = f64_get(data + o);
    key = data + o + 12;
    if (!(c > 0) || isinf(c) || (isint && c != floor(c))) {
      rc = bad_state(err, kind, "bad count in 'items'");
      break;
    }
    rc = tk_check_key(key, l);
    if (rc) {
      if (rc == ZQL_E_BAD_RECORD)
        rc = bad_state(err, kind, "bad value encoding in 'items'");
      break;
    }
    if (pk && (c > pc || (c == pc && key_cmp(pk, pl, key, l) >= 0))) {
      rc = bad_state(err, kind, "'items' not in output order");
      break;
    }
    if (t->n == t->cap) {
      rc = bad_state(err, kind, "more entries in 'items' than 3k");
      break;
    }
    rc = tk_count(t, key, l, zql_hash_bytes(key, l), c, ctx);
    pc = c;
    pk = key;
    pl = l;
    o += 12 + (size_t)l;
  }
  if (!rc) /* appended in the saved order, checked to be the output order */
    t->ordered = 1;
  return rc;
}

static int tk_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  tk_t *t = st;
  zql_aggparams_t p;
  bson_t par;
  memset(&p, 0, sizeof p);
  tk_init(t, &p);
  int rc = load_head(in, "topk", NULL, &par, err);
  if (rc)
    return rc;
  if (!find_int(&par, "k", &p.n))
    return bad_state(err, "topk", "no 'p.k'");
  tk_init(t, &p);
  if (!t->cap)
    return 0;
  rc = tk_load_items(t, in, ctx, err);
  if (rc)
    tk_destroy(t, ctx);
  return rc;
}

const zql_aggdef_t zql_agg_topk = {
    "topk",   STATE_VERSION, sizeof(tk_t), ZQL_AGG_NONDET, tk_init,   tk_add,
    tk_merge, tk_final,      tk_save,      tk_load,        tk_destroy,
};

/* }==== */

/* {==== theta(e [, k]) ================================================================= */

#define TH_KMIN 16
#define TH_KMAX 1048576

/* The logical state is (the min(k, |H|) smallest hashes of the input set H, |H| > k).
 * Physically: main, sorted and distinct, and pend, unsorted candidates below main's
 * threshold (duplicates allowed) that are folded into main when pend fills. */
typedef struct th {
  int64_t k;
  uint8_t ok;        /* k is valid */
  uint8_t sat;       /* a hash was dropped: |H| > k */
  uint32_t n, ncap;  /* main */
  uint32_t np, pcap; /* pend */
  uint64_t *main, *pend;
} th_t;

static void th_init(void *st, const zql_aggparams_t *p)
{
  th_t *t = st;
  memset(t, 0, sizeof *t);
  t->k = p->n;
  t->ok = p->n >= TH_KMIN && p->n <= TH_KMAX;
}

static void th_destroy(void *st, zql_aggctx_t *ctx)
{
  th_t *t = st;
  heap_free(ctx, t->main, (size_t)t->ncap * sizeof *t->main);
  heap_free(ctx, t->pend, (size_t)t->pcap * sizeof *t->pend);
  t->main = t->pend = NULL;
  t->n = t->ncap = t->np = t->pcap = 0;
  t->sat = 0;
}

/* Fold pend into main: sort, drop duplicates, keep the k smallest. */
static int th_compact(th_t *t, zql_aggctx_t *ctx)
{
  if (!t->np)
    return 0;
  uint64_t want = (uint64_t)t->n + t->np;
  uint32_t cap = want < (uint64_t)t->k ? (uint32_t)want : (uint32_t)t->k;
  uint64_t *out = heap_alloc(ctx, (size_t)cap * sizeof *out);
  if (!out)
    return ZQL_E_NOMEM;
  qsort(t->pend, t->np, sizeof *t->pend, cmp_u64);
  uint32_t i = 0, j = 0, m = 0;
  while (i < t->n || j < t->np) {
    uint64_t v = (j >= t->np || (i < t->n && t->main[i] <= t->pend[j])) ? t->main[i++]
                                                                         : t->pend[j++];
    if (m && out[m - 1] == v)
      continue;
    if (m == cap) {
      t->sat = 1;
      break;
    }
    out[m++] = v;
  }
  heap_free(ctx, t->main, (size_t)t->ncap * sizeof *t->main);
  t->main = out;
  t->ncap = cap;
  t->n = m;
  t->np = 0;
  return 0;
}

static int th_add_hash(th_t *t, uint64_t x, zql_aggctx_t *ctx)
{
  if (t->n == t->k) {
    uint64_t thr = t->main[t->n - 1];
    if (x > thr)
      t->sat = 1;
    if (x >= thr)
      return 0;
  }
  if (t->np == t->pcap) {
    uint32_t pmax = t->k / 4 < 16 ? 16 : (uint32_t)(t->k / 4);
    if (t->pcap < pmax) {
      uint32_t ncap = t->pcap ? 2 * t->pcap : 16;
      if (ncap > pmax)
        ncap = pmax;
      uint64_t *p = zql_realloc(t->pend, (size_t)ncap * sizeof *p);
      if (!p)
        return ZQL_E_NOMEM;
      ctx->heap += (int64_t)((size_t)(ncap - t->pcap) * sizeof *p);
      t->pend = p;
      t->pcap = ncap;
    } else {
      int rc = th_compact(t, ctx);
      if (rc)
        return rc;
      return th_add_hash(t, x, ctx);
    }
  }
  t->pend[t->np++] = x;
  return 0;
}

/* The canonical content into out (room for n + np): the min(k, |H|) smallest hashes in
 * ascending order; returns their number, *sat tells whether |H| > k. */
static uint32_t th_view(const th_t *t, uint64_t *out, bool *sat)
{
  size_t total = (size_t)t->n + t->np;
  if (t->n)
    memcpy(out, t->main, (size_t)t->n * sizeof *out);
  if (t->np)
    memcpy(out + t->n, t->pend, (size_t)t->np * sizeof *out);
  qsort(out, total, sizeof *out, cmp_u64);
  size_t m = 0;
  for (size_t i = 0; i < total; i++)
    if (!m || out[m - 1] != out[i])
      out[m++] = out[i];
  *sat = t->sat || m > (size_t)t->k;
  return m > (size_t)t->k ? (uint32_t)t->k : (uint32_t)m;
}

static int th_add(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  th_t *t = st;
  if (!t->ok || zql_val_is_nullish(&in->x))
    return 0;
  return th_add_hash(t, zql_val_hash(&in->x), ctx);
}

static int th_merge(void *dst, const void *src, zql_aggctx_t *ctx)
{
  th_t *d = dst;
  const th_t *s = src;
  if (d->k != s->k)
    return ZQL_AGG_MISMATCH;
  if (!d->ok || d == s) /* a set united with itself */
    return 0;
  for (uint32_t i = 0; i < s->n; i++)
    if (th_add_hash(d, s->main[i], ctx))
      return ZQL_E_NOMEM;
  for (uint32_t i = 0; i < s->np; i++)
    if (th_add_hash(d, s->pend[i], ctx))
      return ZQL_E_NOMEM;
  d->sat |= s->sat;
  return 0;
}

/* KMV: with the k-th smallest hash at the fraction t of the hash space, (k - 1) / t. */
static double th_estimate(const uint64_t *v, uint32_t m, bool sat, int64_t k)
{
  if (!sat)
    return (double)m;
  return (double)(k - 1) / ldexp((double)v[k - 1], -64);
}

static int th_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                    zql_val_t *out)
{
  const th_t *t = st;
  if (!t->ok) {
    *out = zql_val_error("theta: k must be between 16 and 1048576");
    return 0;
  }
  uint64_t *v = zql_arena_alloc(arena, ((size_t)t->n + t->np + 1) * sizeof *v);
  if (!v)
    return ZQL_E_NOMEM;
  bool sat;
  uint32_t m = th_view(t, v, &sat);
  *out = est_value(th_estimate(v, m, sat, t->k));
  return 0;
}

static int th_save(const void *st, bson_t *out)
{
  const th_t *t = st;
  bson_t par;
  if (!save_head(out, "theta") || !bson_append_document_begin(out, "p", 1, &par) ||
      !BSON_APPEND_INT64(&par, "k", t->k) || !bson_append_document_end(out, &par))
    return ZQL_E_NOMEM;
  if (!t->ok)
    return 0;
  uint64_t *v = zql_malloc(((size_t)t->n + t->np + 1) * sizeof *v);
  if (!v)
    return ZQL_E_NOMEM;
  bool sat;
  uint32_t m = th_view(t, v, &sat);
  for (uint32_t i = 0; i < m; i++) /* in place: byte i*8 only overwrites v[i] */
    le64_put((uint8_t *)v + 8 * (size_t)i, v[i]);
  bool ok = BSON_APPEND_BOOL(out, "sat", sat) && save_bin(out, "hashes", (uint8_t *)v, 8 * (size_t)m);
  zql_free(v);
  return ok ? 0 : ZQL_E_NOMEM;
}

static int th_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  static const char kind[] = "theta";
  th_t *t = st;
  zql_aggparams_t p;
  bson_t par;
  bool sat;
  const uint8_t *data;
  uint32_t len;
  memset(&p, 0, sizeof p);
  th_init(t, &p);
  int rc = load_head(in, kind, NULL, &par, err);
  if (rc)
    return rc;
  if (!find_int(&par, "k", &p.n))
    return bad_state(err, kind, "no 'p.k'");
  th_init(t, &p);
  if (!t->ok)
    return 0;
  if (!find_bool(in, "sat", &sat) || !find_bin(in, "hashes", &data, &len))
    return bad_state(err, kind, "no 'sat' or 'hashes'");
  uint32_t m = len / 8;
  if (len % 8 || m > t->k || (sat && m != t->k))
    return bad_state(err, kind, "bad length of 'hashes'");
  for (uint32_t i = 1; i < m; i++)
    if (le64_get(data + 8 * i) <= le64_get(data + 8 * (i - 1)))
      return bad_state(err, kind, "'hashes' not ascending");
  if (m) {
    t->main = heap_alloc(ctx, (size_t)m * sizeof *t->main);
    if (!t->main)
      return ZQL_E_NOMEM;
    for (uint32_t i = 0; i < m; i++)
      t->main[i] = le64_get(data + 8 * i);
  }
  t->n = t->ncap = m;
  t->sat = sat;
  return 0;
}

/* Intersection (inter) or difference of the sets of a and b, see agg_sketch.h. */
static int th_setop(const th_t *a, const th_t *b, bool inter, double *out)
{
  if (!a->ok || !b->ok)
    return ZQL_AGG_MISMATCH;
  uint64_t *va = zql_malloc(((size_t)a->n + a->np + 1) * sizeof *va);
  uint64_t *vb = zql_malloc(((size_t)b->n + b->np + 1) * sizeof *vb);
  if (!va || !vb) {
    zql_free(va);
    zql_free(vb);
    return ZQL_E_NOMEM;
  }
  bool sa, sb;
  uint32_t ma = th_view(a, va, &sa), mb = th_view(b, vb, &sb);
  /* below the smaller threshold both sketches hold every hash of their sets */
  uint64_t thr = UINT64_MAX;
  if (sa)
    thr = va[a->k - 1];
  if (sb && vb[b->k - 1] < thr)
    thr = vb[b->k - 1];
  bool lim = sa || sb;
  uint64_t count = 0;
  for (uint32_t i = 0, j = 0; i < ma && (!lim || va[i] < thr); i++) {
    while (j < mb && vb[j] < va[i])
      j++;
    bool inb = j < mb && vb[j] == va[i];
    count += inb == inter;
  }
  *out = lim ? (double)count / ldexp((double)thr, -64) : (double)count;
  zql_free(va);
  zql_free(vb);
  return 0;
}

int zql_theta_intersection(const void *a, const void *b, double *out)
{
  return th_setop(a, b, true, out);
}

int zql_theta_difference(const void *a, const void *b, double *out)
{
  return th_setop(a, b, false, out);
}

const zql_aggdef_t zql_agg_theta = {
    "theta",  STATE_VERSION, sizeof(th_t), 0,       th_init,    th_add,
    th_merge, th_final,      th_save,      th_load, th_destroy,
};

/* }==== */
