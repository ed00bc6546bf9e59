/*
 * test_agg_sketch.c -- unit tests of the sketch aggregators (exec/agg_sketch.c, stage 4).
 *
 * Covers the aggregator laws of exec/agg.h for distinct_count, hll, quantile, tdigest and
 * theta on generated data (merge associative and commutative, any split merged equals
 * one add stream, input order irrelevant -- all checked on finals AND saved bytes),
 * topk's commutative merge, save -> load -> save round trips, the empty finals of R8,
 * corrupted stored states, out-of-memory at every allocation, heap accounting, and the
 * measured error against exact answers: hll at p 10 and 14 over 10^2..10^6 distinct
 * values, theta, distinct_count exact up to its limit then ERROR or hll, quantiles within
 * 1% of the exact type-7 value on five distributions, topk recall on Zipf data.
 *
 * Set ZQL_SKETCH_REPORT=1 to print the measured errors (docs/sketches.md quotes them).
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <math.h>

#include <bson/bson.h>

#include "exec/agg.h"
#include "exec/agg_sketch.h"
#include "exec/value.h"
#include "runtime/base/alloc.h"
#include "runtime/base/arena.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"

/* {==== helpers ======================================================================== */

static bool report(void)
{
  const char *e = getenv("ZQL_SKETCH_REPORT");
  return e && *e && strcmp(e, "0") != 0;
}

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
  uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s) /* (0, 1) */
{
  return ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_normal(uint64_t *s)
{
  return sqrt(-2.0 * log(rng_unit(s))) * cos(6.283185307179586 * rng_unit(s));
}

static zql_aggparams_t params(int64_t n)
{
  zql_aggparams_t p;
  memset(&p, 0, sizeof p);
  p.n = n;
  p.q = 0.5;
  p.compression = 100;
  return p;
}

static zql_aggin_t in_of(zql_val_t x)
{
  zql_aggin_t in;
  memset(&in, 0, sizeof in);
  in.x = x;
  in.weight = zql_val_int(1); /* what the executor passes when a call has no weight */
  return in;
}

static void *st_new(const zql_aggdef_t *def, const zql_aggparams_t *p)
{
  void *st = calloc(1, def->state_size);
  assert_non_null(st);
  def->init(st, p);
  return st;
}

static void st_free(const zql_aggdef_t *def, void *st, zql_aggctx_t *ctx)
{
  def->destroy(st, ctx);
  free(st);
}

static void add_vals(const zql_aggdef_t *def, void *st, const zql_val_t *v, size_t n,
                     zql_aggctx_t *ctx)
{
  for (size_t i = 0; i < n; i++) {
    zql_aggin_t in = in_of(v[i]);
    assert_int_equal(def->add(st, &in, ctx), 0);
  }
}

static void *build(const zql_aggdef_t *def, const zql_aggparams_t *p, const zql_val_t *v,
                   size_t n, zql_aggctx_t *ctx)
{
  void *st = st_new(def, p);
  add_vals(def, st, v, n, ctx);
  return st;
}

static bson_t *saved(const zql_aggdef_t *def, const void *st)
{
  bson_t *b = bson_new();
  assert_int_equal(def->save(st, b), 0);
  return b;
}

static void assert_same_bytes(const bson_t *a, const bson_t *b)
{
  assert_int_equal(a->len, b->len);
  assert_memory_equal(bson_get_data(a), bson_get_data(b), a->len);
}

/* The final as text: "type:json" ("error:message" for ERROR). Caller frees. */
static char *final_text(const zql_aggdef_t *def, const void *st, const zql_aggparams_t *p)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  zql_val_t v;
  assert_int_equal(def->final(st, p, a, &v), 0);
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_strbuf_addf(&sb, "%s:", zql_val_type_name(&v));
  if (v.t == ZQL_V_ERROR)
    zql_strbuf_adds(&sb, v.u.err);
  else
    zql_val_to_json(&sb, &v);
  char *s = strdup(sb.buf);
  assert_non_null(s);
  zql_strbuf_release(&sb);
  zql_arena_delete(a);
  return s;
}

static void assert_final(const zql_aggdef_t *def, const void *st, const zql_aggparams_t *p,
                         const char *want)
{
  char *got = final_text(def, st, p);
  assert_string_equal(got, want);
  free(got);
}

/* The final value (scalars only: INT, DOUBLE, NULL, ERROR). */
static zql_val_t final_val(const zql_aggdef_t *def, const void *st, const zql_aggparams_t *p)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  zql_val_t v;
  assert_int_equal(def->final(st, p, a, &v), 0);
  assert_true(v.t == ZQL_V_INT || v.t == ZQL_V_DOUBLE || v.t == ZQL_V_NULL ||
              v.t == ZQL_V_ERROR);
  zql_arena_delete(a);
  return v;
}

static int64_t final_int(const zql_aggdef_t *def, const void *st, const zql_aggparams_t *p)
{
  zql_val_t v = final_val(def, st, p);
  assert_int_equal(v.t, ZQL_V_INT);
  return v.u.i;
}

/* A state loaded from what st saved; also checks that it saves the same bytes. */
static void *reloaded(const zql_aggdef_t *def, const void *st, zql_aggctx_t *ctx)
{
  bson_t *b = saved(def, st);
  void *ld = calloc(1, def->state_size);
  assert_non_null(ld);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = def->load(ld, b, ctx, &err);
  if (rc)
    fail_msg("load failed: %s", err.buf);
  zql_strbuf_release(&err);
  bson_t *b2 = saved(def, ld);
  assert_same_bytes(b, b2);
  bson_destroy(b);
  bson_destroy(b2);
  return ld;
}

static void shuffle(zql_val_t *v, size_t n, uint64_t *s)
{
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)(rng_next(s) % i);
    zql_val_t t = v[i - 1];
    v[i - 1] = v[j];
    v[j] = t;
  }
}

/* The laws on v[0..n): for random splits A|B|C, (A+B)+C, A+(B+C), (C+A)+B and
 * ((0+B)+A)+C equal one add stream over v, and so does a shuffled stream; add(s, x) ==
 * merge(s, add(init, x)); save -> load round-trips. Finals and saved bytes both. */
static void check_laws(const zql_aggdef_t *def, const zql_aggparams_t *p, zql_val_t *v,
                       size_t n, uint64_t seed)
{
  zql_aggctx_t ctx = {0, 0};
  uint64_t s = seed;
  void *whole = build(def, p, v, n, &ctx);
  bson_t *bw = saved(def, whole);
  char *fw = final_text(def, whole, p);

  for (int trial = 0; trial < 4; trial++) {
    size_t a = (size_t)(rng_next(&s) % (n + 1));
    size_t b = a + (size_t)(rng_next(&s) % (n - a + 1));
    if (trial == 0)
      a = b = 0; /* empty parts */
    void *sa = build(def, p, v, a, &ctx);
    void *sb = build(def, p, v + a, b - a, &ctx);
    void *sc = build(def, p, v + b, n - b, &ctx);
    void *m[4];
    m[0] = build(def, p, v, a, &ctx); /* (A+B)+C */
    assert_int_equal(def->merge(m[0], sb, &ctx), 0);
    assert_int_equal(def->merge(m[0], sc, &ctx), 0);
    void *bc = build(def, p, v + a, b - a, &ctx); /* A+(B+C) */
    assert_int_equal(def->merge(bc, sc, &ctx), 0);
    m[1] = build(def, p, v, a, &ctx);
    assert_int_equal(def->merge(m[1], bc, &ctx), 0);
    m[2] = build(def, p, v + b, n - b, &ctx); /* (C+A)+B */
    assert_int_equal(def->merge(m[2], sa, &ctx), 0);
    assert_int_equal(def->merge(m[2], sb, &ctx), 0);
    m[3] = st_new(def, p); /* ((0+B)+A)+C */
    assert_int_equal(def->merge(m[3], sb, &ctx), 0);
    assert_int_equal(def->merge(m[3], sa, &ctx), 0);
    assert_int_equal(def->merge(m[3], sc, &ctx), 0);
    for (int i = 0; i < 4; i++) {
      bson_t *bm = saved(def, m[i]);
      assert_same_bytes(bw, bm);
      bson_destroy(bm);
      char *fm = final_text(def, m[i], p);
      assert_string_equal(fw, fm);
      free(fm);
      st_free(def, m[i], &ctx);
    }
    st_free(def, bc, &ctx);
    st_free(def, sa, &ctx);
    st_free(def, sb, &ctx);
    st_free(def, sc, &ctx);
  }

  /* add(s, x) == merge(s, add(init, x)) */
  if (n > 0) {
    size_t h = n / 2;
    void *s1 = build(def, p, v, h, &ctx);
    void *s2 = build(def, p, v, h, &ctx);
    void *one = build(def, p, v + h, 1, &ctx);
    add_vals(def, s1, v + h, 1, &ctx);
    assert_int_equal(def->merge(s2, one, &ctx), 0);
    bson_t *b1 = saved(def, s1), *b2 = saved(def, s2);
    assert_same_bytes(b1, b2);
    bson_destroy(b1);
    bson_destroy(b2);
    st_free(def, s1, &ctx);
    st_free(def, s2, &ctx);
    st_free(def, one, &ctx);
  }

  /* order independence */
  zql_val_t *w = malloc((n + 1) * sizeof *w);
  assert_non_null(w);
  memcpy(w, v, n * sizeof *w);
  shuffle(w, n, &s);
  void *sh = build(def, p, w, n, &ctx);
  bson_t *bs = saved(def, sh);
  assert_same_bytes(bw, bs);
  bson_destroy(bs);
  st_free(def, sh, &ctx);
  free(w);

  /* round trip */
  void *ld = reloaded(def, whole, &ctx);
  char *fl = final_text(def, ld, p);
  assert_string_equal(fw, fl);
  free(fl);
  st_free(def, ld, &ctx);

  st_free(def, whole, &ctx);
  bson_destroy(bw);
  free(fw);
  assert_int_equal(ctx.heap, 0);
}

/* n INT values drawn from [0, range) (so with repeats when range is small). */
static zql_val_t *int_data(size_t n, uint64_t range, uint64_t seed)
{
  zql_val_t *v = malloc((n + 1) * sizeof *v);
  assert_non_null(v);
  for (size_t i = 0; i < n; i++)
    v[i] = zql_val_int((int64_t)(rng_next(&seed) % range));
  return v;
}

/* }==== */

/* {==== empties, laws, round trips ===================================================== */

static void test_empty_finals(void **state)
{
  zql_aggctx_t ctx = {0, 0};
  zql_aggparams_t p = params(0);
  p.n = 100000;
  void *st = st_new(&zql_agg_distinct_count, &p);
  assert_final(&zql_agg_distinct_count, st, &p, "long:0");
  st_free(&zql_agg_distinct_count, st, &ctx);
  p.n = 14;
  st = st_new(&zql_agg_hll, &p);
  assert_final(&zql_agg_hll, st, &p, "long:0");
  st_free(&zql_agg_hll, st, &ctx);
  p.n = 4096;
  st = st_new(&zql_agg_theta, &p);
  assert_final(&zql_agg_theta, st, &p, "long:0");
  st_free(&zql_agg_theta, st, &ctx);
  st = st_new(&zql_agg_quantile, &p);
  assert_final(&zql_agg_quantile, st, &p, "null:null");
  assert_final(&zql_agg_tdigest, st, &p,
               "object:{\"count\":0,\"min\":null,\"max\":null,\"exact\":true,"
               "\"alpha\":0.0049510108352208895,\"buckets\":[]}");
  st_free(&zql_agg_quantile, st, &ctx);
  p.n = 10;
  st = st_new(&zql_agg_topk, &p);
  assert_final(&zql_agg_topk, st, &p, "array:[]");
  st_free(&zql_agg_topk, st, &ctx);
  assert_int_equal(ctx.heap, 0);
  /* only topk is flagged non-deterministic */
  assert_int_equal(zql_agg_topk.flags & ZQL_AGG_NONDET, ZQL_AGG_NONDET);
  assert_int_equal(zql_agg_hll.flags & ZQL_AGG_NONDET, 0);
  assert_int_equal(zql_agg_quantile.flags & ZQL_AGG_NONDET, 0);
  assert_string_equal(zql_agg_distinct_count.name, "distinct_count");
  assert_string_equal(zql_agg_tdigest.name, "tdigest");
}

static void test_nulls_skipped(void **state)
{
  zql_aggctx_t ctx = {0, 0};
  const zql_aggdef_t *defs[] = {&zql_agg_distinct_count, &zql_agg_hll, &zql_agg_theta,
                                &zql_agg_quantile, &zql_agg_topk};
  int64_t ns[] = {100, 12, 16, 0, 5};
  zql_val_t skip[] = {zql_val_null(), zql_val_missing()};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(defs); i++) {
    zql_aggparams_t p = params(ns[i]);
    void *st = build(defs[i], &p, skip, 2, &ctx);
    void *e = st_new(defs[i], &p);
    bson_t *a = saved(defs[i], st), *b = saved(defs[i], e);
    assert_same_bytes(a, b);
    bson_destroy(a);
    bson_destroy(b);
    st_free(defs[i], st, &ctx);
    st_free(defs[i], e, &ctx);
  }
  assert_int_equal(ctx.type_skips, 0);
  assert_int_equal(ctx.heap, 0);
}

static void test_laws_distinct_count(void **state)
{
  zql_aggparams_t p = params(100000);
  zql_val_t *v = int_data(3000, 1500, 1); /* exact */
  check_laws(&zql_agg_distinct_count, &p, v, 3000, 11);
  p.n = 700; /* over the limit in the union only */
  check_laws(&zql_agg_distinct_count, &p, v, 3000, 12);
  p.else_hll = true; /* hll (dense) in the union only */
  check_laws(&zql_agg_distinct_count, &p, v, 3000, 13);
  free(v);
  v = int_data(400, 150, 2);
  p.n = 100; /* else hll, still sparse */
  check_laws(&zql_agg_distinct_count, &p, v, 400, 14);
  free(v);
  /* mixed types, with 1 / 1.0 / int32 1 and -0.0 / 0 as one value */
  zql_val_t mix[] = {zql_val_int(1), zql_val_double(1.0), zql_val_str("a", 1),
                     zql_val_str("1", 1), zql_val_double(-0.0), zql_val_int(0),
                     zql_val_bool(true), zql_val_date(1), zql_val_double(NAN),
                     zql_val_double(2.5), zql_val_str("", 0), zql_val_int(INT64_MIN)};
  mix[0].flags = ZQL_VF_INT32;
  p = params(100000);
  check_laws(&zql_agg_distinct_count, &p, mix, ZQL_ARRAY_LEN(mix), 15);
}

static void test_laws_hll(void **state)
{
  zql_aggparams_t p = params(10); /* sparse max 16 */
  zql_val_t *v = int_data(40, 12, 3);
  check_laws(&zql_agg_hll, &p, v, 40, 21); /* sparse */
  free(v);
  v = int_data(60, 30, 4);
  check_laws(&zql_agg_hll, &p, v, 60, 22); /* dense in most unions only */
  free(v);
  v = int_data(5000, 3000, 5);
  check_laws(&zql_agg_hll, &p, v, 5000, 23);
  p.n = 4; /* always dense */
  check_laws(&zql_agg_hll, &p, v, 5000, 24);
  p.n = 18;
  check_laws(&zql_agg_hll, &p, v, 5000, 25); /* sparse up to 4096 */
  free(v);
}

static void test_laws_quantile(void **state)
{
  zql_aggparams_t p = params(0);
  uint64_t s = 6;
  size_t n = 3000;
  zql_val_t *v = malloc(n * sizeof *v);
  assert_non_null(v);
  for (size_t i = 0; i < n; i++) {
    double x = rng_normal(&s) * 100;
    switch (i % 17) {
    case 0: v[i] = zql_val_int((int64_t)x); break;
    case 1: v[i] = zql_val_double(0.0); break;
    case 2: v[i] = zql_val_double(-0.0); break;
    case 3: v[i] = zql_val_double(i % 2 ? INFINITY : -INFINITY); break;
    case 4: v[i] = zql_val_double(x * 1e-300); break; /* subnormals too */
    case 5: v[i] = zql_val_double(x * 1e300); break;
    default: v[i] = zql_val_double(x);
    }
  }
  check_laws(&zql_agg_quantile, &p, v, 700, 31); /* exact, and the switch in unions */
  check_laws(&zql_agg_quantile, &p, v, 1500, 32);
  check_laws(&zql_agg_quantile, &p, v, n, 33);
  check_laws(&zql_agg_tdigest, &p, v, n, 34);
  p.q = 0.99;
  check_laws(&zql_agg_quantile, &p, v, n, 35);
  free(v);
}

static void test_laws_theta(void **state)
{
  zql_aggparams_t p = params(16);
  zql_val_t *v = int_data(300, 100, 7);
  check_laws(&zql_agg_theta, &p, v, 12, 41); /* exact */
  check_laws(&zql_agg_theta, &p, v, 300, 42);
  p.n = 64;
  check_laws(&zql_agg_theta, &p, v, 300, 43);
  free(v);
  v = int_data(20000, 1u << 30, 8);
  p.n = 1024;
  check_laws(&zql_agg_theta, &p, v, 20000, 44);
  free(v);
}

/* topk: merge is commutative (bytes), and save -> load round-trips. */
static void test_laws_topk(void **state)
{
  zql_aggctx_t ctx = {0, 0};
  zql_aggparams_t p = params(5);
  zql_val_t *v = int_data(4000, 60, 9);
  for (size_t cut = 0; cut <= 4000; cut += 1000) {
    void *a1 = build(&zql_agg_topk, &p, v, cut, &ctx);
    void *b1 = build(&zql_agg_topk, &p, v + cut, 4000 - cut, &ctx);
    void *a2 = build(&zql_agg_topk, &p, v, cut, &ctx);
    void *b2 = build(&zql_agg_topk, &p, v + cut, 4000 - cut, &ctx);
    assert_int_equal(zql_agg_topk.merge(a1, b1, &ctx), 0);
    assert_int_equal(zql_agg_topk.merge(b2, a2, &ctx), 0);
    bson_t *x = saved(&zql_agg_topk, a1), *y = saved(&zql_agg_topk, b2);
    assert_same_bytes(x, y);
    bson_destroy(x);
    bson_destroy(y);
    void *ld = reloaded(&zql_agg_topk, a1, &ctx);
    char *f1 = final_text(&zql_agg_topk, a1, &p), *f2 = final_text(&zql_agg_topk, ld, &p);
    assert_string_equal(f1, f2);
    free(f1);
    free(f2);
    /* the loaded state keeps counting like the original */
    add_vals(&zql_agg_topk, a1, v, 500, &ctx);
    add_vals(&zql_agg_topk, ld, v, 500, &ctx);
    x = saved(&zql_agg_topk, a1);
    y = saved(&zql_agg_topk, ld);
    assert_same_bytes(x, y);
    bson_destroy(x);
    bson_destroy(y);
    st_free(&zql_agg_topk, ld, &ctx);
    st_free(&zql_agg_topk, a1, &ctx);
    st_free(&zql_agg_topk, b1, &ctx);
    st_free(&zql_agg_topk, a2, &ctx);
    st_free(&zql_agg_topk, b2, &ctx);
  }
  /* fewer distinct values than the capacity: exact, so every split gives the same */
  zql_val_t *few = int_data(3000, 15, 10);
  p.n = 5;
  check_laws(&zql_agg_topk, &p, few, 3000, 45);
  free(few);
  free(v);
  assert_int_equal(ctx.heap, 0);
}

/* topk keeps value encodings of up to 40 bytes in its entries and longer ones in copies of
 * their own: the same rows of strings that differ only by a 60-byte prefix give the same
 * counts in the same order, through evictions, merges (both ways), a save and a load, and
 * more counting after it; no byte is left allocated. */
static void test_topk_long_values(void **state)
{
  zql_aggctx_t ctx = {0, 0};
  zql_aggparams_t p = params(4); /* 12 entries for 40 distinct values: evictions */
  enum { N = 3000, D = 40 };
  static char text[2][D][96];
  zql_val_t *v[2];
  for (int w = 0; w < 2; w++) {
    v[w] = malloc(N * sizeof *v[w]);
    assert_non_null(v[w]);
    for (int d = 0; d < D; d++)
      snprintf(text[w][d], sizeof text[w][d], "%s%02d",
               w ? "a 60-byte prefix that no entry of a topk state can hold ....." : "", d);
  }
  uint64_t seed = 46;
  for (size_t i = 0; i < N; i++) {
    /* a skewed draw: small values far more often */
    uint64_t r = rng_next(&seed) % 1000, d = r * r / (1000 * 1000 / D);
    for (int w = 0; w < 2; w++)
      v[w][i] = zql_val_str(text[w][d], (uint32_t)strlen(text[w][d]));
  }
  char *f[2][3];
  for (int w = 0; w < 2; w++) {
    void *a = build(&zql_agg_topk, &p, v[w], 1700, &ctx);
    void *b = build(&zql_agg_topk, &p, v[w] + 1700, N - 1700, &ctx);
    void *a2 = build(&zql_agg_topk, &p, v[w], 1700, &ctx);
    void *b2 = build(&zql_agg_topk, &p, v[w] + 1700, N - 1700, &ctx);
    assert_int_equal(zql_agg_topk.merge(a, b, &ctx), 0);
    assert_int_equal(zql_agg_topk.merge(b2, a2, &ctx), 0);
    f[w][0] = final_text(&zql_agg_topk, a, &p);
    f[w][1] = final_text(&zql_agg_topk, b2, &p);
    void *ld = reloaded(&zql_agg_topk, a, &ctx);
    add_vals(&zql_agg_topk, ld, v[w], 900, &ctx);
    f[w][2] = final_text(&zql_agg_topk, ld, &p);
    st_free(&zql_agg_topk, ld, &ctx);
    st_free(&zql_agg_topk, a, &ctx);
    st_free(&zql_agg_topk, b, &ctx);
    st_free(&zql_agg_topk, a2, &ctx);
    st_free(&zql_agg_topk, b2, &ctx);
    free(v[w]);
  }
  for (int k = 0; k < 3; k++) {
    /* the long values' final with their prefix removed is the short values' final */
    zql_strbuf_t sb = ZQL_STRBUF_INIT;
    const char *pre = "a 60-byte prefix that no entry of a topk state can hold .....";
    for (const char *s = f[1][k]; *s;) {
      if (strncmp(s, pre, strlen(pre)) == 0)
        s += strlen(pre);
      else
        zql_strbuf_addc(&sb, *s++);
    }
    assert_string_equal(sb.buf, f[0][k]);
    assert_true(strstr(f[0][k], "\"count\":") != NULL);
    zql_strbuf_release(&sb);
  }
  assert_string_equal(f[0][0], f[0][1]); /* merge(a, b) and merge(b, a) */
  for (int w = 0; w < 2; w++)
    for (int k = 0; k < 3; k++)
      free(f[w][k]);
  assert_int_equal(ctx.heap, 0);
}

static void test_mismatch(void **state)
{
  zql_aggctx_t ctx = {0, 0};
  struct {
    const zql_aggdef_t *def;
    int64_t a, b;
  } cases[] = {{&zql_agg_hll, 10, 12}, {&zql_agg_theta, 16, 32}, {&zql_agg_topk, 3, 4},
               {&zql_agg_distinct_count, 10, 11}};
  zql_val_t one = zql_val_int(1);
  for (size_t i = 0; i < ZQL_ARRAY_LEN(cases); i++) {
    zql_aggparams_t pa = params(cases[i].a), pb = params(cases[i].b);
    void *a = build(cases[i].def, &pa, &one, 1, &ctx);
    void *b = build(cases[i].def, &pb, &one, 1, &ctx);
    assert_int_equal(cases[i].def->merge(a, b, &ctx), ZQL_AGG_MISMATCH);
    char *f = final_text(cases[i].def, a, &pa); /* both stay valid */
    assert_string_equal(f, cases[i].def == &zql_agg_topk ? "array:[{\"value\":1,\"count\":1}]"
                                                         : "long:1");
    free(f);
    st_free(cases[i].def, a, &ctx);
    st_free(cases[i].def, b, &ctx);
  }
  zql_aggparams_t pa = params(10);
  pa.else_hll = true;
  zql_aggparams_t pb = params(10);
  void *a = st_new(&zql_agg_distinct_count, &pa), *b = st_new(&zql_agg_distinct_count, &pb);
  assert_int_equal(zql_agg_distinct_count.merge(a, b, &ctx), ZQL_AGG_MISMATCH);
  st_free(&zql_agg_distinct_count, a, &ctx);
  st_free(&zql_agg_distinct_count, b, &ctx);
  assert_int_equal(ctx.heap, 0);
}

static void test_invalid_params(void **state)
{
  zql_aggctx_t ctx = {0, 0};
  zql_val_t one = zql_val_int(1);
  struct {
    const zql_aggdef_t *def;
    int64_t n;
    const char *want;
  } cases[] = {
      {&zql_agg_hll, 3, "error:hll: p must be between 4 and 18"},
      {&zql_agg_hll, 19, "error:hll: p must be between 4 and 18"},
      {&zql_agg_theta, 15, "error:theta: k must be between 16 and 1048576"},
      {&zql_agg_topk, 0, "error:topk: k must be between 1 and 100000"},
      {&zql_agg_topk, 100001, "error:topk: k must be between 1 and 100000"},
      {&zql_agg_distinct_count, -1, "error:distinct_count: limit must be between 0 and 1000000000"},
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(cases); i++) {
    zql_aggparams_t p = params(cases[i].n);
    void *st = build(cases[i].def, &p, &one, 1, &ctx);
    void *st2 = build(cases[i].def, &p, &one, 1, &ctx);
    assert_int_equal(cases[i].def->merge(st, st2, &ctx), 0);
    assert_final(cases[i].def, st, &p, cases[i].want);
    void *ld = reloaded(cases[i].def, st, &ctx);
    assert_final(cases[i].def, ld, &p, cases[i].want);
    st_free(cases[i].def, ld, &ctx);
    st_free(cases[i].def, st, &ctx);
    st_free(cases[i].def, st2, &ctx);
  }
  zql_aggparams_t p = params(0);
  void *st = build(&zql_agg_quantile, &p, &one, 1, &ctx);
  p.q = 1.5;
  assert_final(&zql_agg_quantile, st, &p, "error:quantile: q must be between 0 and 1");
  p.q = NAN;
  assert_final(&zql_agg_quantile, st, &p, "error:quantile: q must be between 0 and 1");
  st_free(&zql_agg_quantile, st, &ctx);
  assert_int_equal(ctx.heap, 0);
}

/* }==== */

/* {==== hll ============================================================================ */

/* The sparse phase is exact; the state is sparse iff the union holds at most 2^p / 64
 * hashes, whatever the split. */
static void test_hll_sparse(void **state)
{
  zql_aggctx_t ctx = {0, 0};
  zql_aggparams_t p = params(12); /* sparse up to 64 */
  zql_val_t v[65];
  for (int i = 0; i < 65; i++)
    v[i] = zql_val_int(i * 1000);
  void *st = build(&zql_agg_hll, &p, v, 64, &ctx);
  add_vals(&zql_agg_hll, st, v, 64, &ctx); /* repeats change nothing */
  assert_int_equal(final_int(&zql_agg_hll, st, &p), 64);
  bson_t *b = saved(&zql_agg_hll, st);
  bson_iter_t it;
  assert_true(bson_iter_init_find(&it, b, "sparse"));
  assert_false(bson_iter_init_find(&it, b, "regs"));
  bson_destroy(b);
  int64_t heap_sparse = ctx.heap;
  assert_true(heap_sparse > 0 && heap_sparse <= (1 << 12) / 4);
  /* halves of 33 and 32 values, each sparse; their union is dense */
  void *a = build(&zql_agg_hll, &p, v, 33, &ctx);
  void *c = build(&zql_agg_hll, &p, v + 33, 32, &ctx);
  assert_int_equal(zql_agg_hll.merge(a, c, &ctx), 0);
  b = saved(&zql_agg_hll, a);
  assert_false(bson_iter_init_find(&it, b, "sparse"));
  assert_true(bson_iter_init_find(&it, b, "regs"));
  assert_true(BSON_ITER_HOLDS_BINARY(&it));
  bson_destroy(b);
  int64_t est = final_int(&zql_agg_hll, a, &p);
  assert_true(est >= 60 && est <= 70);
  add_vals(&zql_agg_hll, st, v + 64, 1, &ctx);
  bson_t *x = saved(&zql_agg_hll, st), *y = saved(&zql_agg_hll, a);
  assert_same_bytes(x, y);
  bson_destroy(x);
  bson_destroy(y);
  st_free(&zql_agg_hll, st, &ctx);
  st_free(&zql_agg_hll, a, &ctx);
  st_free(&zql_agg_hll, c, &ctx);
  /* 1, int32 1 and 1.0 are one value */
  zql_val_t ones[] = {zql_val_int(1), zql_val_int(1), zql_val_double(1.0)};
  ones[1].flags = ZQL_VF_INT32;
  st = build(&zql_agg_hll, &p, ones, 3, &ctx);
  assert_int_equal(final_int(&zql_agg_hll, st, &p), 1);
  st_free(&zql_agg_hll, st, &ctx);
  assert_int_equal(ctx.heap, 0);
}

static void test_hll_downgrade(void **state)
{
  zql_aggctx_t ctx = {0, 0};
  size_t sizes[] = {10, 200, 3000, 50000};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(sizes); i++) {
    zql_val_t *v = int_data(sizes[i], UINT64_C(1) << 40, 100 + i);
    zql_aggparams_t p14 = params(14);
    void *st = build(&zql_agg_hll, &p14, v, sizes[i], &ctx);
    assert_int_equal(zql_hll_downgrade(st, 15, &ctx), ZQL_AGG_MISMATCH);
    assert_int_equal(zql_hll_downgrade(st, 3, &ctx), ZQL_AGG_MISMATCH);
    assert_int_equal(zql_hll_downgrade(st, 14, &ctx), 0);
    for (int p = 13; p >= 4; p -= 3) {
      zql_aggparams_t pp = params(p);
      assert_int_equal(zql_hll_downgrade(st, p, &ctx), 0);
      void *direct = build(&zql_agg_hll, &pp, v, sizes[i], &ctx);
      bson_t *x = saved(&zql_agg_hll, st), *y = saved(&zql_agg_hll, direct);
      assert_same_bytes(x, y);
      bson_destroy(x);
      bson_destroy(y);
      /* and it now merges with states of that precision */
      assert_int_equal(zql_agg_hll.merge(st, direct, &ctx), 0);
      st_free(&zql_agg_hll, direct, &ctx);
    }
    st_free(&zql_agg_hll, st, &ctx);
    free(v);
  }
  zql_aggparams_t bad = params(2);
  void *st = st_new(&zql_agg_hll, &bad);
  assert_int_equal(zql_hll_downgrade(st, 4, &ctx), ZQL_AGG_MISMATCH);
  st_free(&zql_agg_hll, st, &ctx);
  assert_int_equal(ctx.heap, 0);
}

/* Mean |relative error| over trials must be within 3 standard deviations of its expected
 * value for a normal error of standard deviation sigma = 1.04 / sqrt(2^p):
 * E|X| = 0.798 sigma, sd(|X|) = 0.603 sigma. */
static void test_hll_error(void **state)
{
  zql_aggctx_t ctx = {0, 0};
  int ps[] = {10, 14};
  size_t ns[] = {100, 1000, 10000, 100000, 1000000};
  for (size_t pi = 0; pi < ZQL_ARRAY_LEN(ps); pi++) {
    double sigma = 1.04 / sqrt((double)(1 << ps[pi]));
    for (size_t ni = 0; ni < ZQL_ARRAY_LEN(ns); ni++) {
      int trials = ns[ni] >= 1000000 ? 2 : ns[ni] >= 100000 ? 4 : 8;
      double sum_abs = 0, sum = 0, worst = 0;
      for (int t = 0; t < trials; t++) {
        zql_aggparams_t p = params(ps[pi]);
        void *st = st_new(&zql_agg_hll, &p);
        int64_t base = ((int64_t)ni << 48) + ((int64_t)t << 32) + ((int64_t)pi << 56);
        for (size_t i = 0; i < ns[ni]; i++) {
          zql_aggin_t in = in_of(zql_val_int(base + (int64_t)i));
          assert_int_equal(zql_agg_hll.add(st, &in, &ctx), 0);
        }
        double err = ((double)final_int(&zql_agg_hll, st, &p) - (double)ns[ni]) / (double)ns[ni];
        sum += err;
        sum_abs += fabs(err);
        if (fabs(err) > worst)
          worst = fabs(err);
        assert_true(fabs(err) <= 5 * sigma);
        st_free(&zql_agg_hll, st, &ctx);
      }
      double mean_abs = sum_abs / trials, mean = sum / trials;
      assert_true(mean_abs <= 0.798 * sigma + 3 * 0.603 * sigma / sqrt(trials));
      assert_true(fabs(mean) <= 3 * sigma / sqrt(trials));
      if (report())
        printf("# hll p=%d n=%zu trials=%d mean|err|=%.5f mean err=%+.5f max|err|=%.5f "
               "sigma=%.5f\n",
               ps[pi], ns[ni], trials, mean_abs, mean, worst, sigma);
    }
  }
  assert_int_equal(ctx.heap, 0);
}

/* }==== */

/* {==== distinct_count and theta ======================================================= */

/* A loaded exact set is kept in its saved form (a sorted base, not hashed): values added or
 * merged into it afterwards -- some already in the base, some new -- must count, save
 * and cross the limit exactly as if every value had been hashed one by one. */
static void test_distinct_count_loaded_base(void **state)
{
  (void)state;
  zql_aggctx_t ctx = {0, 0};
  const zql_aggdef_t *dc = &zql_agg_distinct_count;
  for (int limit = 0; limit < 3; limit++) {
    zql_aggparams_t p = params(limit == 0 ? 100000 : 1200);
    p.else_hll = limit == 2;
    /* old: 0, 2, 4, ... 1998 (1000 values); new: 1500 .. 1699 (100 in old, 100 not) */
    void *old = st_new(dc, &p), *whole = st_new(dc, &p);
    for (int64_t i = 0; i < 2000; i += 2) {
      zql_aggin_t in = in_of(zql_val_int(i));
      assert_int_equal(dc->add(old, &in, &ctx), 0);
      assert_int_equal(dc->add(whole, &in, &ctx), 0);
    }
    void *ld = reloaded(dc, old, &ctx); /* the base form */
    assert_int_equal(final_int(dc, ld, &p), 1000);
    void *part = st_new(dc, &p);
    for (int64_t i = 1699; i >= 1500; i--) { /* descending: the save sorts them */
      zql_aggin_t in = in_of(zql_val_int(i));
      assert_int_equal(dc->add(part, &in, &ctx), 0);
      assert_int_equal(dc->add(whole, &in, &ctx), 0);
    }
    void *pl = reloaded(dc, part, &ctx);
    /* merge the way refinal does: an empty accumulator, the stored state, the partial */
    void *acc = st_new(dc, &p);
    assert_int_equal(dc->merge(acc, ld, &ctx), 0);
    assert_int_equal(dc->merge(acc, pl, &ctx), 0);
    assert_int_equal(final_int(dc, acc, &p), 1100);
    bson_t *a = saved(dc, acc), *w = saved(dc, whole);
    assert_same_bytes(a, w);
    /* adding to the loaded state directly, values of the base and new ones */
    for (int64_t i = 1500; i < 1700; i++) {
      zql_aggin_t in = in_of(zql_val_int(i));
      assert_int_equal(dc->add(ld, &in, &ctx), 0);
    }
    assert_int_equal(final_int(dc, ld, &p), 1100);
    bson_t *l = saved(dc, ld);
    assert_same_bytes(l, w);
    /* past the limit: 1100 + 200 new > 1200 -- ERROR, or the hll of all 1300 values */
    void *h = NULL;
    zql_aggparams_t p14 = params(14);
    if (limit == 2) {
      h = st_new(&zql_agg_hll, &p14);
      for (int64_t i = 0; i < 2000; i += 2) {
        zql_aggin_t in = in_of(zql_val_int(i));
        assert_int_equal(zql_agg_hll.add(h, &in, &ctx), 0);
      }
      for (int64_t i = 1500; i < 1700; i++) {
        zql_aggin_t in = in_of(zql_val_int(i));
        assert_int_equal(zql_agg_hll.add(h, &in, &ctx), 0);
      }
    }
    for (int64_t i = 3001; i < 3401; i += 2) {
      zql_aggin_t in = in_of(zql_val_int(i));
      assert_int_equal(dc->add(acc, &in, &ctx), 0);
      assert_int_equal(dc->add(whole, &in, &ctx), 0);
      if (h)
        assert_int_equal(zql_agg_hll.add(h, &in, &ctx), 0);
    }
    if (limit == 0) {
      assert_int_equal(final_int(dc, acc, &p), 1300);
      bson_t *a2 = saved(dc, acc), *w2 = saved(dc, whole);
      assert_same_bytes(a2, w2);
      bson_destroy(a2);
      bson_destroy(w2);
    } else if (limit == 1) {
      assert_final(dc, acc, &p, "error:distinct_count: more than 1200 distinct values");
    } else {
      assert_int_equal(final_int(dc, acc, &p), final_int(&zql_agg_hll, h, &p14));
      st_free(&zql_agg_hll, h, &ctx);
    }
    bson_destroy(a);
    bson_destroy(w);
    bson_destroy(l);
    st_free(dc, old, &ctx);
    st_free(dc, whole, &ctx);
    st_free(dc, ld, &ctx);
    st_free(dc, part, &ctx);
    st_free(dc, pl, &ctx);
    st_free(dc, acc, &ctx);
  }
  /* two loaded sets whose union passes the limit (1000 + 100 new > 1050): the merge walk
   * gives way to the value-by-value path, which overflows exactly as adding would */
  for (int eh = 0; eh < 2; eh++) {
    zql_aggparams_t p = params(1050);
    p.else_hll = eh;
    void *a1 = st_new(dc, &p), *a2 = st_new(dc, &p), *whole = st_new(dc, &p);
    for (int64_t i = 0; i < 2000; i += 2) {
      zql_aggin_t in = in_of(zql_val_int(i));
      assert_int_equal(dc->add(a1, &in, &ctx), 0);
      assert_int_equal(dc->add(whole, &in, &ctx), 0);
    }
    for (int64_t i = 1500; i < 1700; i++) {
      zql_aggin_t in = in_of(zql_val_int(i));
      assert_int_equal(dc->add(a2, &in, &ctx), 0);
      assert_int_equal(dc->add(whole, &in, &ctx), 0);
    }
    void *l1 = reloaded(dc, a1, &ctx), *l2 = reloaded(dc, a2, &ctx), *acc = st_new(dc, &p);
    assert_int_equal(dc->merge(acc, l1, &ctx), 0);
    assert_int_equal(dc->merge(acc, l2, &ctx), 0);
    if (!eh) {
      assert_final(dc, acc, &p, "error:distinct_count: more than 1050 distinct values");
    } else {
      assert_int_equal(final_int(dc, acc, &p), final_int(dc, whole, &p));
      bson_t *x = saved(dc, acc), *y = saved(dc, whole);
      assert_same_bytes(x, y);
      bson_destroy(x);
      bson_destroy(y);
    }
    st_free(dc, a1, &ctx);
    st_free(dc, a2, &ctx);
    st_free(dc, whole, &ctx);
    st_free(dc, l1, &ctx);
    st_free(dc, l2, &ctx);
    st_free(dc, acc, &ctx);
  }
  assert_int_equal(ctx.heap, 0);
}

static void test_distinct_count(void **state)
{
  zql_aggctx_t ctx = {0, 0};
  zql_aggparams_t p = params(100000); /* the default limit */
  void *st = st_new(&zql_agg_distinct_count, &p);
  for (int64_t i = 0; i < 100000; i++) {
    zql_aggin_t in = in_of(i % 3 ? zql_val_int(i) : zql_val_double((double)i));
    assert_int_equal(zql_agg_distinct_count.add(st, &in, &ctx), 0);
  }
  for (int64_t i = 0; i < 100000; i += 7) { /* repeats, as the other numeric type */
    zql_aggin_t in = in_of(i % 3 ? zql_val_double((double)i) : zql_val_int(i));
    assert_int_equal(zql_agg_distinct_count.add(st, &in, &ctx), 0);
  }
  assert_int_equal(final_int(&zql_agg_distinct_count, st, &p), 100000);
  zql_aggin_t more = in_of(zql_val_str("one more", 8));
  assert_int_equal(zql_agg_distinct_count.add(st, &more, &ctx), 0);
  assert_final(&zql_agg_distinct_count, st, &p,
               "error:distinct_count: more than 100000 distinct values");
  void *ld = reloaded(&zql_agg_distinct_count, st, &ctx);
  assert_final(&zql_agg_distinct_count, ld, &p,
               "error:distinct_count: more than 100000 distinct values");
  st_free(&zql_agg_distinct_count, ld, &ctx);
  st_free(&zql_agg_distinct_count, st, &ctx);
  assert_int_equal(ctx.heap, 0);

  /* else hll: an hll (p 14) estimate past the limit */
  p = params(1000);
  p.else_hll = true;
  st = st_new(&zql_agg_distinct_count, &p);
  zql_aggparams_t p14 = params(14);
  void *h = st_new(&zql_agg_hll, &p14);
  for (int64_t i = 0; i < 5000; i++) {
    zql_aggin_t in = in_of(zql_val_int(i * 7919));
    assert_int_equal(zql_agg_distinct_count.add(st, &in, &ctx), 0);
    assert_int_equal(zql_agg_hll.add(h, &in, &ctx), 0);
    if (i == 999)
      assert_int_equal(final_int(&zql_agg_distinct_count, st, &p), 1000);
  }
  int64_t est = final_int(&zql_agg_distinct_count, st, &p);
  assert_int_equal(est, final_int(&zql_agg_hll, h, &p14)); /* the very same sketch */
  assert_true(fabs((double)est - 5000) <= 3 * 1.04 / 128 * 5000);
  if (report())
    printf("# distinct_count limit 1000 else hll: 5000 distinct -> %" PRId64 "\n", est);
  st_free(&zql_agg_distinct_count, st, &ctx);
  st_free(&zql_agg_hll, h, &ctx);

  /* normalisation: 1, int32 1, 1.0 are one value; "1", true, -0.0/0 are others */
  zql_val_t mix[] = {zql_val_int(1), zql_val_int(1), zql_val_double(1.0), zql_val_str("1", 1),
                     zql_val_bool(true), zql_val_double(-0.0), zql_val_int(0)};
  mix[1].flags = ZQL_VF_INT32;
  p = params(100000);
  st = build(&zql_agg_distinct_count, &p, mix, ZQL_ARRAY_LEN(mix), &ctx);
  assert_int_equal(final_int(&zql_agg_distinct_count, st, &p), 4);
  st_free(&zql_agg_distinct_count, st, &ctx);
  /* limit 0 */
  p = params(0);
  st = build(&zql_agg_distinct_count, &p, mix, 1, &ctx);
  assert_final(&zql_agg_distinct_count, st, &p, "error:distinct_count: more than 0 distinct values");
  st_free(&zql_agg_distinct_count, st, &ctx);
  assert_int_equal(ctx.heap, 0);
}

static void test_theta(void **state)
{
  zql_aggctx_t ctx = {0, 0};
  zql_aggparams_t p = params(4096);
  /* exact below k */
  void *st = st_new(&zql_agg_theta, &p);
  for (int64_t i = 0; i < 4096; i++) {
    zql_aggin_t in = in_of(zql_val_int(i));
    assert_int_equal(zql_agg_theta.add(st, &in, &ctx), 0);
    assert_int_equal(zql_agg_theta.add(st, &in, &ctx), 0);
  }
  assert_int_equal(final_int(&zql_agg_theta, st, &p), 4096);
  st_free(&zql_agg_theta, st, &ctx);
  /* error: relative standard error 1 / sqrt(k - 2) */
  double sigma = 1.0 / sqrt(4094.0);
  size_t ns[] = {20000, 200000};
  for (size_t ni = 0; ni < ZQL_ARRAY_LEN(ns); ni++) {
    int trials = 4;
    double sum_abs = 0, worst = 0;
    for (int t = 0; t < trials; t++) {
      st = st_new(&zql_agg_theta, &p);
      for (size_t i = 0; i < ns[ni]; i++) {
        zql_aggin_t in = in_of(zql_val_int(((int64_t)t << 40) + ((int64_t)ni << 50) + (int64_t)i));
        assert_int_equal(zql_agg_theta.add(st, &in, &ctx), 0);
      }
      double err = ((double)final_int(&zql_agg_theta, st, &p) - (double)ns[ni]) / (double)ns[ni];
      sum_abs += fabs(err);
      if (fabs(err) > worst)
        worst = fabs(err);
      assert_true(fabs(err) <= 5 * sigma);
      st_free(&zql_agg_theta, st, &ctx);
    }
    assert_true(sum_abs / trials <= 0.798 * sigma + 3 * 0.603 * sigma / sqrt(trials));
    if (report())
      printf("# theta k=4096 n=%zu trials=%d mean|err|=%.5f max|err|=%.5f sigma=%.5f\n", ns[ni],
             trials, sum_abs / trials, worst, sigma);
  }
  /* exactly k hashes seen and folded, then one above them all: saturated, as in any
   * other order */
  zql_aggparams_t p16 = params(16);
  zql_val_t first[17];
  uint64_t top = 0;
  for (int i = 0; i < 16; i++) {
    first[i] = zql_val_int(i);
    if (zql_val_hash(&first[i]) > top)
      top = zql_val_hash(&first[i]);
  }
  int64_t cand = 16;
  do
    first[16] = zql_val_int(cand++);
  while (zql_val_hash(&first[16]) <= top);
  st = build(&zql_agg_theta, &p16, first, 17, &ctx);
  zql_val_t last_first[17];
  last_first[0] = first[16];
  memcpy(last_first + 1, first, 16 * sizeof *first);
  void *other = build(&zql_agg_theta, &p16, last_first, 17, &ctx);
  bson_t *x = saved(&zql_agg_theta, st), *y = saved(&zql_agg_theta, other);
  assert_same_bytes(x, y);
  bson_iter_t it;
  assert_true(bson_iter_init_find(&it, x, "sat") && bson_iter_as_bool(&it));
  bson_destroy(x);
  bson_destroy(y);
  st_free(&zql_agg_theta, st, &ctx);
  st_free(&zql_agg_theta, other, &ctx);
  /* a loaded saturated state holds exactly its k hashes: merged into an empty state it
   * must stay saturated (the estimate, not the count of k) */
  zql_aggparams_t p32 = params(32);
  zql_val_t *many = int_data(1000, UINT64_C(1) << 40, 60);
  st = build(&zql_agg_theta, &p32, many, 1000, &ctx);
  void *ld = reloaded(&zql_agg_theta, st, &ctx);
  void *e = st_new(&zql_agg_theta, &p32);
  assert_int_equal(zql_agg_theta.merge(e, ld, &ctx), 0);
  x = saved(&zql_agg_theta, st);
  y = saved(&zql_agg_theta, e);
  assert_same_bytes(x, y);
  assert_true(final_int(&zql_agg_theta, e, &p32) > 500);
  bson_destroy(x);
  bson_destroy(y);
  st_free(&zql_agg_theta, st, &ctx);
  st_free(&zql_agg_theta, ld, &ctx);
  st_free(&zql_agg_theta, e, &ctx);
  free(many);
  /* set operations: A = [0, 30000), B = [20000, 60000): |A & B| = 10000, |A - B| = 20000 */
  void *a = st_new(&zql_agg_theta, &p), *b = st_new(&zql_agg_theta, &p);
  for (int64_t i = 0; i < 60000; i++) {
    zql_aggin_t in = in_of(zql_val_int(i));
    if (i < 30000)
      assert_int_equal(zql_agg_theta.add(a, &in, &ctx), 0);
    if (i >= 20000)
      assert_int_equal(zql_agg_theta.add(b, &in, &ctx), 0);
  }
  double inter, diff;
  assert_int_equal(zql_theta_intersection(a, b, &inter), 0);
  assert_int_equal(zql_theta_difference(a, b, &diff), 0);
  assert_true(fabs(inter - 10000) <= 0.15 * 10000);
  assert_true(fabs(diff - 20000) <= 0.10 * 20000);
  if (report())
    printf("# theta k=4096 |A&B|=10000 -> %.0f, |A-B|=20000 -> %.0f\n", inter, diff);
  st_free(&zql_agg_theta, a, &ctx);
  st_free(&zql_agg_theta, b, &ctx);
  /* small sets: exact */
  zql_val_t xs[] = {zql_val_int(1), zql_val_int(2), zql_val_int(3), zql_val_str("x", 1)};
  zql_val_t ys[] = {zql_val_double(2.0), zql_val_int(3), zql_val_int(4)};
  a = build(&zql_agg_theta, &p16, xs, 4, &ctx);
  b = build(&zql_agg_theta, &p, ys, 3, &ctx); /* another k is fine for set operations */
  assert_int_equal(zql_theta_intersection(a, b, &inter), 0);
  assert_int_equal(zql_theta_difference(a, b, &diff), 0);
  assert_true(inter == 2.0 && diff == 2.0);
  assert_int_equal(zql_theta_difference(b, a, &diff), 0);
  assert_true(diff == 1.0);
  st_free(&zql_agg_theta, a, &ctx);
  st_free(&zql_agg_theta, b, &ctx);
  assert_int_equal(ctx.heap, 0);
}

/* }==== */

/* {==== quantile ======================================================================= */

static int cmp_dbl(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Exact type-7 quantile of sorted v[0..n), with the interpolation written as the spec
 * says: x[k] + g (x[k+1] - x[k]), h = (n - 1) q, k = floor(h), g = h - k. */
static double exact_q(const double *v, size_t n, double q, size_t *kp, double *gp)
{
  double h = (double)(n - 1) * q;
  size_t k = (size_t)h;
  double g = h - (double)k;
  if (k >= n - 1) {
    k = n - 1;
    g = 0;
  }
  *kp = k;
  *gp = g;
  return g > 0 && v[k] != v[k + 1] ? v[k] + g * (v[k + 1] - v[k]) : v[k];
}

enum { DIST_UNIFORM, DIST_LOGNORMAL, DIST_PARETO, DIST_NEGATIVE, DIST_MIXED, DIST__N };
static const char *const dist_names[] = {"uniform", "log-normal", "pareto", "negative", "mixed"};

static double draw(int dist, uint64_t *s)
{
  switch (dist) {
  case DIST_UNIFORM: return rng_unit(s) * 1000.0;
  case DIST_LOGNORMAL: return exp(2.0 * rng_normal(s));
  case DIST_PARETO: return pow(rng_unit(s), -1.0 / 1.2); /* alpha 1.2: heavy tail */
  case DIST_NEGATIVE: return -exp(1.5 * rng_normal(s)) * 50.0;
  default: {
    uint64_t r = rng_next(s) % 100;
    if (r == 0)
      return 0.0;
    double x = rng_normal(s) * 100.0;
    return r < 10 ? x * 1e6 : x;
  }
  }
}

static void test_quantile_error(void **state)
{
  zql_aggctx_t ctx = {0, 0};
  static const double qs[] = {0, 0.01, 0.25, 0.5, 0.95, 0.99, 1};
  size_t ns[] = {1024, 100000};
  for (size_t ni = 0; ni < ZQL_ARRAY_LEN(ns); ni++) {
    size_t n = ns[ni];
    for (int dist = 0; dist < DIST__N; dist++) {
      uint64_t s = 1000 + (uint64_t)dist;
      double *x = malloc(n * sizeof *x);
      zql_val_t *v = malloc(n * sizeof *v);
      assert_non_null(x);
      assert_non_null(v);
      zql_aggparams_t p = params(0);
      void *st = st_new(&zql_agg_quantile, &p);
      void *half[2] = {st_new(&zql_agg_quantile, &p), st_new(&zql_agg_quantile, &p)};
      for (size_t i = 0; i < n; i++) {
        x[i] = draw(dist, &s);
        v[i] = (dist == DIST_UNIFORM && i % 2) ? zql_val_int((int64_t)x[i]) : zql_val_double(x[i]);
        x[i] = zql_val_num(&v[i]);
        zql_aggin_t in = in_of(v[i]);
        assert_int_equal(zql_agg_quantile.add(st, &in, &ctx), 0);
        assert_int_equal(zql_agg_quantile.add(half[i % 2], &in, &ctx), 0);
      }
      assert_int_equal(zql_agg_quantile.merge(half[0], half[1], &ctx), 0);
      qsort(x, n, sizeof *x, cmp_dbl);
      double worst = 0;
      for (size_t qi = 0; qi < ZQL_ARRAY_LEN(qs); qi++) {
        p.q = qs[qi];
        size_t k;
        double g, want = exact_q(x, n, p.q, &k, &g);
        zql_val_t got = final_val(&zql_agg_quantile, st, &p);
        assert_int_equal(got.t, ZQL_V_DOUBLE);
        zql_val_t got2 = final_val(&zql_agg_quantile, half[1 - 1], &p);
        assert_true(got2.t == ZQL_V_DOUBLE && got2.u.d == got.u.d);
        double err = fabs(got.u.d - want);
        if (n <= 1024) { /* exact mode: the exact value */
          assert_true(got.u.d == want);
          continue;
        }
        if (p.q == 0 || p.q == 1)
          assert_true(got.u.d == want); /* min and max are kept exactly */
        if (g > 0 && ((x[k] < 0 && x[k + 1] > 0))) {
          /* closest ranks on both sides of 0: the documented absolute bound */
          assert_true(err <= 0.005 * ((1 - g) * fabs(x[k]) + g * fabs(x[k + 1])));
        } else {
          assert_true(err <= 0.01 * fabs(want));
          if (want != 0 && err / fabs(want) > worst)
            worst = err / fabs(want);
        }
      }
      if (report() && n > 1024)
        printf("# quantile %s n=%zu max relative error over q in {0,.01,.25,.5,.95,.99,1}: "
               "%.5f\n",
               dist_names[dist], n, worst);
      st_free(&zql_agg_quantile, st, &ctx);
      st_free(&zql_agg_quantile, half[0], &ctx);
      st_free(&zql_agg_quantile, half[1], &ctx);
      free(x);
      free(v);
    }
  }
  assert_int_equal(ctx.heap, 0);
}

/* The relative bound holds for every rank, not only the q above: scan all ranks of a
 * sketch over values spread across 600 orders of magnitude. */
static void test_quantile_every_rank(void **state)
{
  zql_aggctx_t ctx = {0, 0};
  uint64_t s = 77;
  size_t n = 5000;
  double *x = malloc(n * sizeof *x);
  assert_non_null(x);
  zql_aggparams_t p = params(0);
  void *st = st_new(&zql_agg_quantile, &p);
  for (size_t i = 0; i < n; i++) {
    x[i] = ldexp(1.0 + rng_unit(&s), (int)(rng_next(&s) % 2000) - 1000);
    zql_aggin_t in = in_of(zql_val_double(x[i]));
    assert_int_equal(zql_agg_quantile.add(st, &in, &ctx), 0);
  }
  qsort(x, n, sizeof *x, cmp_dbl);
  double worst = 0;
  for (size_t k = 0; k < n; k++) {
    p.q = (double)k / (double)(n - 1);
    size_t kk;
    double g, want = exact_q(x, n, p.q, &kk, &g);
    zql_val_t got = final_val(&zql_agg_quantile, st, &p);
    double rel = fabs(got.u.d - want) / want;
    if (rel > worst)
      worst = rel;
  }
  assert_true(worst <= 0.0049511);
  if (report())
    printf("# quantile every rank, 2^-1000..2^1000: max relative error %.6f\n", worst);
  st_free(&zql_agg_quantile, st, &ctx);
  free(x);
  assert_int_equal(ctx.heap, 0);
}

static void test_quantile_edges(void **state)
{
  zql_aggctx_t ctx = {0, 0};
  zql_aggparams_t p = params(0);
  /* type-7 on a small exact input; skips */
  zql_val_t v[] = {zql_val_int(4),       zql_val_double(1),   zql_val_str("9", 1),
                   zql_val_double(NAN),  zql_val_null(),      zql_val_int(2),
                   zql_val_bool(true),   zql_val_missing(),   zql_val_double(3)};
  void *st = build(&zql_agg_quantile, &p, v, ZQL_ARRAY_LEN(v), &ctx);
  assert_int_equal(ctx.type_skips, 3);
  p.q = 0.5;
  assert_final(&zql_agg_quantile, st, &p, "double:2.5");
  p.q = 0.25;
  assert_final(&zql_agg_quantile, st, &p, "double:1.75");
  p.q = 1;
  assert_final(&zql_agg_quantile, st, &p, "double:4.0");
  p.q = 0;
  assert_final(&zql_agg_quantile, st, &p, "double:1.0");
  assert_final(&zql_agg_tdigest, st, &p,
               "object:{\"count\":4,\"min\":1.0,\"max\":4.0,\"exact\":true,"
               "\"alpha\":0.0049510108352208895,\"buckets\":[{\"lo\":1.0,\"hi\":1.0,"
               "\"count\":1},{\"lo\":2.0,\"hi\":2.0,\"count\":1},{\"lo\":3.0,\"hi\":3.0,"
               "\"count\":1},{\"lo\":4.0,\"hi\":4.0,\"count\":1}]}");
  st_free(&zql_agg_quantile, st, &ctx);
  /* infinities: an infinite end of the interpolation wins */
  zql_val_t inf[] = {zql_val_double(-INFINITY), zql_val_double(1), zql_val_double(INFINITY)};
  st = build(&zql_agg_quantile, &p, inf, 3, &ctx);
  p.q = 0.5;
  assert_final(&zql_agg_quantile, st, &p, "double:1.0");
  p.q = 0.75;
  zql_val_t r = final_val(&zql_agg_quantile, st, &p);
  assert_true(r.t == ZQL_V_DOUBLE && isinf(r.u.d) && r.u.d > 0);
  p.q = 0.25;
  r = final_val(&zql_agg_quantile, st, &p);
  assert_true(r.t == ZQL_V_DOUBLE && isinf(r.u.d) && r.u.d < 0);
  st_free(&zql_agg_quantile, st, &ctx);
  /* the sketch: 2000 copies of a value and 1 of another; the tdigest document */
  st = st_new(&zql_agg_tdigest, &p);
  for (int i = 0; i < 2000; i++) {
    zql_aggin_t in = in_of(zql_val_double(i % 2 ? 100.0 : -100.0));
    assert_int_equal(zql_agg_tdigest.add(st, &in, &ctx), 0);
  }
  zql_aggin_t zero = in_of(zql_val_int(0));
  assert_int_equal(zql_agg_tdigest.add(st, &zero, &ctx), 0);
  p.q = 0.5;
  assert_final(&zql_agg_quantile, st, &p, "double:0.0");
  p.q = 0.25;
  r = final_val(&zql_agg_quantile, st, &p);
  assert_true(r.t == ZQL_V_DOUBLE && fabs(r.u.d + 100) <= 0.5);
  char *doc = final_text(&zql_agg_tdigest, st, &p);
  assert_non_null(strstr(doc, "\"count\":2001,\"min\":-100.0,\"max\":100.0,\"exact\":false"));
  assert_non_null(strstr(doc, "{\"lo\":0.0,\"hi\":0.0,\"count\":1}"));
  /* three buckets: -100's, 0, 100's, each holding its value */
  assert_non_null(strstr(doc, "\"count\":1000},{\"lo\":0.0"));
  free(doc);
  st_free(&zql_agg_tdigest, st, &ctx);
  /* closest ranks on both sides of 0 (the sketch's one exception to the relative bound):
   * 1000 values in [-2, -1), 1000 in [1, 2); the median interpolates across 0 */
  uint64_t s = 9;
  double x[2000];
  st = st_new(&zql_agg_quantile, &p);
  for (int i = 0; i < 2000; i++) {
    x[i] = (i < 1000 ? -1.0 : 1.0) * (1.0 + rng_unit(&s));
    zql_aggin_t in = in_of(zql_val_double(x[i]));
    assert_int_equal(zql_agg_quantile.add(st, &in, &ctx), 0);
  }
  qsort(x, 2000, sizeof *x, cmp_dbl);
  for (double q = 0.49; q <= 0.51; q += 0.0001) {
    size_t k;
    double g, want;
    p.q = q;
    want = exact_q(x, 2000, q, &k, &g);
    r = final_val(&zql_agg_quantile, st, &p);
    if (g > 0 && x[k] < 0 && x[k + 1] > 0)
      assert_true(fabs(r.u.d - want) <= 0.0049511 * ((1 - g) * fabs(x[k]) + g * fabs(x[k + 1])));
    else
      assert_true(fabs(r.u.d - want) <= 0.0049511 * fabs(want));
  }
  st_free(&zql_agg_quantile, st, &ctx);
  assert_int_equal(ctx.heap, 0);
}

/* }==== */

/* {==== topk =========================================================================== */

/* Zipf(s) over m items: the cumulative distribution. */
static double *zipf_cdf(size_t m, double s)
{
  double *c = malloc(m * sizeof *c), sum = 0;
  assert_non_null(c);
  for (size_t i = 0; i < m; i++)
    c[i] = (sum += 1.0 / pow((double)(i + 1), s));
  for (size_t i = 0; i < m; i++)
    c[i] /= sum;
  return c;
}

static size_t zipf_draw(const double *c, size_t m, uint64_t *s)
{
  double u = rng_unit(s);
  size_t lo = 0, hi = m - 1;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (c[mid] < u)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* The recall of the true top k among the first k of a topk result array. */
static double topk_recall(const void *st, const zql_aggparams_t *p, const uint64_t *truth,
                          size_t m, size_t k, double *max_over)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  zql_val_t out;
  assert_int_equal(zql_agg_topk.final(st, p, a, &out), 0);
  assert_int_equal(out.t, ZQL_V_ARRAY);
  bson_t arr;
  assert_true(bson_init_static(&arr, out.u.p, out.len));
  bson_iter_t it;
  assert_true(bson_iter_init(&it, &arr));
  /* the true top k: the k largest of truth (items are numbered by rank, ties rare) */
  uint64_t kth = 0;
  uint64_t *sorted = malloc(m * sizeof *sorted);
  assert_non_null(sorted);
  memcpy(sorted, truth, m * sizeof *sorted);
  for (size_t i = 0; i < k; i++) /* partial selection sort, descending */
    for (size_t j = i + 1; j < m; j++)
      if (sorted[j] > sorted[i]) {
        uint64_t t = sorted[i];
        sorted[i] = sorted[j];
        sorted[j] = t;
      }
  kth = sorted[k - 1];
  free(sorted);
  size_t hits = 0, rows = 0;
  double prev = INFINITY;
  while (bson_iter_next(&it)) {
    bson_iter_t d;
    assert_true(bson_iter_recurse(&it, &d));
    assert_true(bson_iter_find(&d, "value"));
    int64_t item = bson_iter_as_int64(&d);
    assert_true(bson_iter_find(&d, "count"));
    double count = (double)bson_iter_as_int64(&d);
    assert_true(count <= prev); /* descending counts */
    prev = count;
    assert_true(item >= 0 && (size_t)item < m);
    if (truth[item] >= kth)
      hits++;
    if (max_over) { /* one stream: Space-Saving never underestimates a kept value */
      assert_true(count >= (double)truth[item]);
      if (count - (double)truth[item] > *max_over)
        *max_over = count - (double)truth[item];
    }
    rows++;
  }
  assert_int_equal(rows, k);
  zql_arena_delete(a);
  return (double)hits / (double)k;
}

/* Recall of the true top k on Zipf data. Space-Saving with capacity 3k keeps every value
 * more frequent than its smallest counter (at most rows / 3k), so on strongly skewed data
 * (s = 1.5) it finds the top k; on flat data (s = 1.1, where the k-th value holds less
 * than rows / 3k) values of the long tail can outrank it -- a textbook Space-Saving run
 * (a Python reference) measured the same recall there, about 0.8. */
static void test_topk_zipf(void **state)
{
  zql_aggctx_t ctx = {0, 0};
  size_t m = 10000, n = 200000;
  static const double skews[] = {1.1, 1.5}, floor_recall[] = {0.6, 0.9};
  uint64_t *truth = calloc(m, sizeof *truth);
  size_t *items = malloc(n * sizeof *items);
  assert_non_null(truth);
  assert_non_null(items);
  for (size_t si = 0; si < ZQL_ARRAY_LEN(skews); si++) {
    double *cdf = zipf_cdf(m, skews[si]);
    uint64_t s = 4242 + si;
    memset(truth, 0, m * sizeof *truth);
    for (size_t i = 0; i < n; i++) {
      items[i] = zipf_draw(cdf, m, &s);
      truth[items[i]]++;
    }
    size_t ks[] = {10, 50};
    for (size_t ki = 0; ki < ZQL_ARRAY_LEN(ks); ki++) {
      zql_aggparams_t p = params((int64_t)ks[ki]);
      void *st = st_new(&zql_agg_topk, &p);
      void *part[4];
      for (int j = 0; j < 4; j++)
        part[j] = st_new(&zql_agg_topk, &p);
      for (size_t i = 0; i < n; i++) {
        zql_aggin_t in = in_of(zql_val_int((int64_t)items[i]));
        assert_int_equal(zql_agg_topk.add(st, &in, &ctx), 0);
        assert_int_equal(zql_agg_topk.add(part[i * 4 / n], &in, &ctx), 0);
      }
      double over = 0;
      double recall = topk_recall(st, &p, truth, m, ks[ki], &over);
      void *ld = reloaded(&zql_agg_topk, st, &ctx); /* also checks the table is consistent */
      st_free(&zql_agg_topk, ld, &ctx);
      for (int j = 1; j < 4; j++)
        assert_int_equal(zql_agg_topk.merge(part[0], part[j], &ctx), 0);
      double recall_merged = topk_recall(part[0], &p, truth, m, ks[ki], NULL);
      if (report())
        printf("# topk k=%zu zipf(%.1f) %zu values %zu rows: recall %.2f (one stream, max "
               "overcount %.0f = %.2f%% of rows), %.2f (4 parts merged)\n",
               ks[ki], skews[si], m, n, recall, over, 100 * over / (double)n, recall_merged);
      assert_true(recall >= floor_recall[si]);
      assert_true(recall_merged >= floor_recall[si]);
      st_free(&zql_agg_topk, st, &ctx);
      for (int j = 0; j < 4; j++)
        st_free(&zql_agg_topk, part[j], &ctx);
    }
    free(cdf);
  }
  free(truth);
  free(items);
  assert_int_equal(ctx.heap, 0);
}

static void test_topk_details(void **state)
{
  zql_aggctx_t ctx = {0, 0};
  zql_aggparams_t p = params(3);
  void *st = st_new(&zql_agg_topk, &p);
  /* ties by R7 order; 1 / int32 1 / 1.0 are one value, output as the normalised INT */
  zql_val_t v[] = {zql_val_str("b", 1), zql_val_str("a", 1), zql_val_double(2.0),
                   zql_val_int(1), zql_val_double(1.0), zql_val_null(), zql_val_missing()};
  v[3].flags = ZQL_VF_INT32;
  add_vals(&zql_agg_topk, st, v, ZQL_ARRAY_LEN(v), &ctx);
  assert_final(&zql_agg_topk, st, &p,
               "array:[{\"value\":1,\"count\":2},{\"value\":2,\"count\":1},"
               "{\"value\":\"a\",\"count\":1}]");
  /* weights: non-numeric / MISSING / <= 0 / NaN / inf skipped and counted */
  zql_aggin_t in = in_of(zql_val_str("b", 1));
  in.weight = zql_val_int(5);
  assert_int_equal(zql_agg_topk.add(st, &in, &ctx), 0);
  zql_val_t badw[] = {zql_val_str("1", 1), zql_val_int(0), zql_val_double(-1),
                      zql_val_double(NAN), zql_val_double(INFINITY), zql_val_null(),
                      zql_val_missing()};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(badw); i++) {
    in.weight = badw[i];
    assert_int_equal(zql_agg_topk.add(st, &in, &ctx), 0);
  }
  assert_int_equal(ctx.type_skips, ZQL_ARRAY_LEN(badw));
  assert_final(&zql_agg_topk, st, &p,
               "array:[{\"value\":\"b\",\"count\":6},{\"value\":1,\"count\":2},"
               "{\"value\":2,\"count\":1}]");
  /* a fractional weight makes every count a double */
  in = in_of(zql_val_int(2));
  in.weight = zql_val_double(0.5);
  assert_int_equal(zql_agg_topk.add(st, &in, &ctx), 0);
  assert_final(&zql_agg_topk, st, &p,
               "array:[{\"value\":\"b\",\"count\":6.0},{\"value\":1,\"count\":2.0},"
               "{\"value\":2,\"count\":1.5}]");
  void *ld = reloaded(&zql_agg_topk, st, &ctx);
  assert_final(&zql_agg_topk, ld, &p,
               "array:[{\"value\":\"b\",\"count\":6.0},{\"value\":1,\"count\":2.0},"
               "{\"value\":2,\"count\":1.5}]");
  st_free(&zql_agg_topk, ld, &ctx);
  st_free(&zql_agg_topk, st, &ctx);
  /* Space-Saving replacement: capacity 3, a new value takes the victim's count + 1 */
  p = params(1);
  st = st_new(&zql_agg_topk, &p);
  zql_val_t w[] = {zql_val_int(1), zql_val_int(1), zql_val_int(2), zql_val_int(3),
                   zql_val_int(4), zql_val_int(4), zql_val_int(4)};
  add_vals(&zql_agg_topk, st, w, ZQL_ARRAY_LEN(w), &ctx);
  /* 4 replaced 3 (count 1, the larger of the two count-1 values): 4 has 1 + 3 = 4 */
  assert_final(&zql_agg_topk, st, &p, "array:[{\"value\":4,\"count\":4}]");
  st_free(&zql_agg_topk, st, &ctx);
  /* documents and arrays as values */
  p = params(2);
  bson_t *d = BCON_NEW("a", BCON_INT32(1));
  zql_val_t dv[] = {zql_val_doc(bson_get_data(d), d->len, false),
                    zql_val_doc(bson_get_data(d), d->len, false)};
  st = build(&zql_agg_topk, &p, dv, 2, &ctx);
  assert_final(&zql_agg_topk, st, &p, "array:[{\"value\":{\"a\":1},\"count\":2}]");
  st_free(&zql_agg_topk, st, &ctx);
  bson_destroy(d);
  assert_int_equal(ctx.heap, 0);
}

/* }==== */

/* {==== stored states: bad input, out of memory ======================================== */

static int load_doc(const zql_aggdef_t *def, bson_t *doc)
{
  zql_aggctx_t ctx = {0, 0};
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  void *st = calloc(1, def->state_size);
  assert_non_null(st);
  int rc = def->load(st, doc, &ctx, &err);
  if (rc) {
    assert_int_equal(rc, ZQL_E_BAD_RECORD);
    assert_true(err.len > 0);
    assert_non_null(strstr(err.buf, "state: "));
  } else {
    def->destroy(st, &ctx);
  }
  assert_int_equal(ctx.heap, 0);
  free(st);
  zql_strbuf_release(&err);
  bson_destroy(doc);
  return rc;
}

static void test_load_errors(void **state)
{
  uint8_t b16[16] = {0};
  uint8_t two[16] = {0};
  two[0] = 2; /* ascending 2, 0 */
  uint8_t set[8] = {5, 0, 0, 0, 0x12, 0, 0, 0};
  uint8_t reg[12] = {0xff, 0xff, 0xff};
  uint8_t bucket[12] = {1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
  const bson_subtype_t sub = (bson_subtype_t)ZQL_AGG_BINARY_SUBTYPE;
  /* good ones first, to know the bad ones fail for the reason shown */
  assert_int_equal(load_doc(&zql_agg_hll, BCON_NEW("k", "hll", "v", BCON_INT32(1), "p", "{",
                                                   "p", BCON_INT32(10), "}", "sparse",
                                                   BCON_BIN(sub, b16, 8))),
                   0);
  assert_int_equal(load_doc(&zql_agg_hll, BCON_NEW("k", "hll", "v", BCON_INT32(1), "p", "{",
                                                   "p", BCON_INT32(4), "}", "regs",
                                                   BCON_BIN(sub, b16, 12))),
                   0);
  bson_t *bad[] = {
      BCON_NEW("k", "hlx", "v", BCON_INT32(1), "p", "{", "p", BCON_INT32(10), "}"),
      BCON_NEW("k", "hll", "v", BCON_INT32(2), "p", "{", "p", BCON_INT32(10), "}"),
      BCON_NEW("k", "hll", "v", BCON_INT32(1)),
      BCON_NEW("k", "hll", "v", BCON_INT32(1), "p", "{", "p", BCON_INT32(30), "}"),
      BCON_NEW("k", "hll", "v", BCON_INT32(1), "p", "{", "p", BCON_INT32(10), "}"),
      BCON_NEW("k", "hll", "v", BCON_INT32(1), "p", "{", "p", BCON_INT32(10), "}", "sparse",
               BCON_BIN(sub, two, 16)),
      BCON_NEW("k", "hll", "v", BCON_INT32(1), "p", "{", "p", BCON_INT32(10), "}", "sparse",
               BCON_BIN(BSON_SUBTYPE_BINARY, b16, 8)),
      BCON_NEW("k", "hll", "v", BCON_INT32(1), "p", "{", "p", BCON_INT32(4), "}", "regs",
               BCON_BIN(sub, reg, 12)),
      BCON_NEW("k", "hll", "v", BCON_INT32(1), "p", "{", "p", BCON_INT32(4), "}", "regs",
               BCON_BIN(sub, reg, 11)),
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(bad); i++)
    assert_int_equal(load_doc(&zql_agg_hll, bad[i]), ZQL_E_BAD_RECORD);

  assert_int_equal(load_doc(&zql_agg_distinct_count,
                            BCON_NEW("k", "distinct_count", "v", BCON_INT32(1), "p", "{",
                                     "limit", BCON_INT64(10), "else_hll", BCON_BOOL(false), "}",
                                     "mode", "exact", "n", BCON_INT64(1), "set",
                                     BCON_BIN(sub, set, 8))),
                   ZQL_E_BAD_RECORD); /* length 5 runs past the end */
  set[0] = 4;
  assert_int_equal(load_doc(&zql_agg_distinct_count,
                            BCON_NEW("k", "distinct_count", "v", BCON_INT32(1), "p", "{",
                                     "limit", BCON_INT64(10), "else_hll", BCON_BOOL(false), "}",
                                     "mode", "exact", "n", BCON_INT64(1), "set",
                                     BCON_BIN(sub, set, 8))),
                   0);
  assert_int_equal(load_doc(&zql_agg_distinct_count,
                            BCON_NEW("k", "distinct_count", "v", BCON_INT32(1), "p", "{",
                                     "limit", BCON_INT64(10), "else_hll", BCON_BOOL(false), "}",
                                     "mode", "exact", "n", BCON_INT64(2), "set",
                                     BCON_BIN(sub, set, 8))),
                   ZQL_E_BAD_RECORD);
  assert_int_equal(load_doc(&zql_agg_distinct_count,
                            BCON_NEW("k", "distinct_count", "v", BCON_INT32(1), "p", "{",
                                     "limit", BCON_INT64(10), "else_hll", BCON_BOOL(false), "}",
                                     "mode", "hll")),
                   ZQL_E_BAD_RECORD);
  assert_int_equal(load_doc(&zql_agg_quantile,
                            BCON_NEW("k", "tdigest", "v", BCON_INT32(1), "p", "{", "}", "n",
                                     BCON_INT64(0))),
                   0);
  assert_int_equal(load_doc(&zql_agg_quantile,
                            BCON_NEW("k", "quantile", "v", BCON_INT32(1), "p", "{", "}", "n",
                                     BCON_INT64(2), "min", BCON_DOUBLE(0), "max",
                                     BCON_DOUBLE(0), "vals", BCON_BIN(sub, b16, 16))),
                   0);
  assert_int_equal(load_doc(&zql_agg_quantile,
                            BCON_NEW("k", "quantile", "v", BCON_INT32(1), "p", "{", "}", "n",
                                     BCON_INT64(2), "min", BCON_DOUBLE(0), "max",
                                     BCON_DOUBLE(1), "vals", BCON_BIN(sub, b16, 16))),
                   ZQL_E_BAD_RECORD);
  assert_int_equal(load_doc(&zql_agg_quantile,
                            BCON_NEW("k", "quantile", "v", BCON_INT32(1), "p", "{", "}", "n",
                                     BCON_INT64(2000), "min", BCON_DOUBLE(0), "max",
                                     BCON_DOUBLE(1), "zero", BCON_INT64(1999), "ninf",
                                     BCON_INT64(0), "pinf", BCON_INT64(0), "pos",
                                     BCON_BIN(sub, bucket, 12), "neg", BCON_BIN(sub, bucket, 0))),
                   ZQL_E_BAD_RECORD); /* bucket 1 does not hold 1.0 */
  bucket[0] = 0;
  assert_int_equal(load_doc(&zql_agg_quantile,
                            BCON_NEW("k", "quantile", "v", BCON_INT32(1), "p", "{", "}", "n",
                                     BCON_INT64(2000), "min", BCON_DOUBLE(0), "max",
                                     BCON_DOUBLE(1), "zero", BCON_INT64(1999), "ninf",
                                     BCON_INT64(0), "pinf", BCON_INT64(0), "pos",
                                     BCON_BIN(sub, bucket, 12), "neg", BCON_BIN(sub, bucket, 0))),
                   0);
  assert_int_equal(load_doc(&zql_agg_quantile,
                            BCON_NEW("k", "quantile", "v", BCON_INT32(1), "p", "{", "}", "n",
                                     BCON_INT64(2001), "min", BCON_DOUBLE(0), "max",
                                     BCON_DOUBLE(1), "zero", BCON_INT64(1999), "ninf",
                                     BCON_INT64(0), "pinf", BCON_INT64(0), "pos",
                                     BCON_BIN(sub, bucket, 12), "neg", BCON_BIN(sub, bucket, 0))),
                   ZQL_E_BAD_RECORD);
  assert_int_equal(load_doc(&zql_agg_theta,
                            BCON_NEW("k", "theta", "v", BCON_INT32(1), "p", "{", "k",
                                     BCON_INT64(16), "}", "sat", BCON_BOOL(true), "hashes",
                                     BCON_BIN(sub, b16, 8))),
                   ZQL_E_BAD_RECORD); /* saturated with fewer than k hashes */
  uint8_t item[13] = {0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 1, 0, 0, 0, 0x0a}; /* 1.0 x null */
  assert_int_equal(load_doc(&zql_agg_topk,
                            BCON_NEW("k", "topk", "v", BCON_INT32(1), "p", "{", "k",
                                     BCON_INT64(2), "}", "int", BCON_BOOL(true), "items",
                                     BCON_BIN(sub, item, 13))),
                   0);
  item[12] = 0x99; /* not an encoding */
  assert_int_equal(load_doc(&zql_agg_topk,
                            BCON_NEW("k", "topk", "v", BCON_INT32(1), "p", "{", "k",
                                     BCON_INT64(2), "}", "int", BCON_BOOL(true), "items",
                                     BCON_BIN(sub, item, 13))),
                   ZQL_E_BAD_RECORD);
}

/* Every allocation of a scenario fails in turn: each call fails cleanly, the heap count
 * returns to 0 and (under ASan) nothing leaks. */
static bool oom_scenario(const zql_aggdef_t *def, const zql_aggparams_t *p, const zql_val_t *v,
                         size_t n, zql_aggctx_t *ctx)
{
  bool ok = true;
  void *a = st_new(def, p), *b = st_new(def, p);
  for (size_t i = 0; i < n; i++) {
    zql_aggin_t in = in_of(v[i]);
    int rc = def->add(i % 2 ? a : b, &in, ctx);
    if (rc) {
      assert_int_equal(rc, ZQL_E_NOMEM);
      ok = false;
    }
  }
  int rc = def->merge(a, b, ctx);
  if (rc) {
    assert_int_equal(rc, ZQL_E_NOMEM);
    ok = false;
  }
  bson_t out;
  bson_init(&out);
  rc = def->save(a, &out);
  if (rc) {
    assert_int_equal(rc, ZQL_E_NOMEM);
    ok = false;
  } else {
    void *c = calloc(1, def->state_size);
    assert_non_null(c);
    zql_strbuf_t err = ZQL_STRBUF_INIT;
    rc = def->load(c, &out, ctx, &err);
    if (rc) {
      assert_int_equal(rc, ZQL_E_NOMEM);
      ok = false;
    }
    def->destroy(c, ctx);
    free(c);
    zql_strbuf_release(&err);
  }
  bson_destroy(&out);
  zql_arena_t *ar = zql_arena_create(NULL);
  if (ar) {
    zql_val_t f;
    rc = def->final(a, p, ar, &f);
    if (rc) {
      assert_int_equal(rc, ZQL_E_NOMEM);
      ok = false;
    }
    zql_arena_delete(ar);
  } else {
    ok = false;
  }
  st_free(def, a, ctx);
  st_free(def, b, ctx);
  return ok;
}

static void test_oom(void **state)
{
  struct {
    const zql_aggdef_t *def;
    int64_t n;
    bool else_hll;
    size_t count;
    uint64_t range;
  } cases[] = {
      {&zql_agg_distinct_count, 100000, false, 300, 1000},
      {&zql_agg_distinct_count, 50, true, 300, 1000},
      {&zql_agg_distinct_count, 50, false, 300, 1000},
      {&zql_agg_hll, 10, false, 100, 1000},
      {&zql_agg_quantile, 0, false, 1500, 1u << 20},
      {&zql_agg_topk, 4, false, 300, 40}, /* strings below: their decode allocates */
      {&zql_agg_theta, 16, false, 300, 1000},
  };
  for (size_t c = 0; c < ZQL_ARRAY_LEN(cases); c++) {
    zql_aggparams_t p = params(cases[c].n);
    p.else_hll = cases[c].else_hll;
    zql_val_t *v = int_data(cases[c].count, cases[c].range, 50 + c);
    static const char *const words[] = {"alpha", "beta", "gamma", "delta", "epsilon"};
    if (cases[c].def == &zql_agg_quantile)
      for (size_t i = 0; i < cases[c].count; i++)
        v[i] = zql_val_double((double)v[i].u.i - 500000.0);
    if (cases[c].def == &zql_agg_topk)
      for (size_t i = 0; i < cases[c].count; i += 2)
        v[i] = zql_val_str(words[v[i].u.i % 5], (uint32_t)strlen(words[v[i].u.i % 5]));
    bool done = false;
    long k;
    for (k = 0; k < 100000 && !done; k++) {
      zql_aggctx_t ctx = {0, 0};
      zql_alloc_fail_after(k);
      done = oom_scenario(cases[c].def, &p, v, cases[c].count, &ctx);
      zql_alloc_fail_after(-1);
      assert_int_equal(ctx.heap, 0);
    }
    assert_true(done);
    assert_true(k > 1);
    free(v);
  }
}

/* }==== */

/* declared in tests/unit/unit.h once the group is registered in run-unit.c */

int zql_unit_agg_sketch(void)
{
  const struct CMUnitTest tests[] = {
      ZQL_UNIT_TEST(test_empty_finals),     ZQL_UNIT_TEST(test_nulls_skipped),
      ZQL_UNIT_TEST(test_laws_distinct_count), ZQL_UNIT_TEST(test_laws_hll),
      ZQL_UNIT_TEST(test_laws_quantile),    ZQL_UNIT_TEST(test_laws_theta),
      ZQL_UNIT_TEST(test_laws_topk),        ZQL_UNIT_TEST(test_topk_long_values),
      ZQL_UNIT_TEST(test_mismatch),
      ZQL_UNIT_TEST(test_invalid_params),   ZQL_UNIT_TEST(test_hll_sparse),
      ZQL_UNIT_TEST(test_hll_downgrade),    ZQL_UNIT_TEST(test_hll_error),
      ZQL_UNIT_TEST(test_distinct_count),   ZQL_UNIT_TEST(test_distinct_count_loaded_base),
      ZQL_UNIT_TEST(test_theta),
      ZQL_UNIT_TEST(test_quantile_error),   ZQL_UNIT_TEST(test_quantile_every_rank),
      ZQL_UNIT_TEST(test_quantile_edges),   ZQL_UNIT_TEST(test_topk_zipf),
      ZQL_UNIT_TEST(test_topk_details),     ZQL_UNIT_TEST(test_load_errors),
      ZQL_UNIT_TEST(test_oom),
  };
  return cmocka_run_group_tests_name("agg_sketch", tests, NULL, NULL);
}
