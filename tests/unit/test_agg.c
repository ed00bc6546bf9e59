/*
 * test_agg.c -- unit tests of the aggregators (exec/agg.c and, through the registry, the
 * sketches of exec/agg_sketch.c; stage 4).
 *
 * The laws of agg.h, for every aggregator of zql_agg_all() on generated rows (a fixed
 * xorshift generator; mixed types: NULL, MISSING, strings, documents, big ints, doubles
 * with cancellation such as 1e100, 1, -1e100, NaN and infinities in some runs; repeated
 * _seq values as an unwind makes them):
 *   - one add stream == the stream split at every point, the halves merged either way
 *     (final values, and saved bytes unless the kind is ZQL_AGG_NONDET);
 *   - merge is associative and commutative: (A+B)+C, A+(B+C), (C+B)+A;
 *   - add(s, x) == merge(s, add(init, x)): merging one-row states gives the stream;
 *   - save -> load -> save is byte-identical and the loaded state has the same final;
 *   - every heap byte reported in ctx.heap is given back by destroy;
 *   - out-of-memory at every allocation: add, merge, save, final and load fail cleanly.
 * States live at addresses that are 8- but not 16-byte aligned, as the executor allows.
 * Then the semantics of each core aggregator: empty finals (R8), sum's exact rounding
 * against an independent reference (Shewchuk/fsum partials) and hand-computed cases,
 * avg's correctly rounded quotient, min/max over types and ties, first/last, the N-best
 * family, sample's uniformity, histogram buckets, retention, window_funnel chains,
 * sequence_match patterns, parameter mismatches and malformed saved states.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <float.h>
#include <math.h>

#include "exec/agg.h"
#include "exec/value.h"
#include "runtime/base/alloc.h"
#include "runtime/base/arena.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"


static zql_aggctx_t ctx;

/* {==== harness ========================================================================== */

/* A state at an address that is 8- but not 16-byte aligned, filled with junk first. */
typedef struct {
  const zql_aggdef_t *d;
  unsigned char *base;
  void *st;
} st_t;

static st_t raw_state(const zql_aggdef_t *d)
{
  st_t s = {d, malloc(d->state_size + 32), NULL};
  assert_non_null(s.base);
  memset(s.base, 0xA5, d->state_size + 32);
  s.st = s.base + ((uintptr_t)s.base % 16 == 0 ? 8 : 16 - (uintptr_t)s.base % 16 + 8);
  return s;
}

static st_t new_state(const zql_aggdef_t *d, const zql_aggparams_t *p)
{
  st_t s = raw_state(d);
  d->init(s.st, p);
  return s;
}

static void free_state(st_t *s)
{
  s->d->destroy(s->st, &ctx);
  free(s->base);
  s->base = NULL;
}

/* The final value as BSON bytes {v: final} (and JSON for messages). */
typedef struct {
  zql_strbuf_t bson, json;
} fin_t;

static void fin_of(const st_t *s, const zql_aggparams_t *p, fin_t *f)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  zql_val_t v;
  assert_int_equal(s->d->final(s->st, p, a, &v), 0);
  bson_t b = BSON_INITIALIZER;
  assert_true(zql_val_append_bson(&b, "v", 1, &v));
  zql_strbuf_init(&f->bson);
  zql_strbuf_init(&f->json);
  zql_strbuf_add(&f->bson, bson_get_data(&b), b.len);
  zql_val_to_json(&f->json, &v);
  bson_destroy(&b);
  zql_arena_delete(a);
}

static void fin_free(fin_t *f)
{
  zql_strbuf_release(&f->bson);
  zql_strbuf_release(&f->json);
}

static void assert_fin_equal(const char *name, const char *what, const fin_t *a, const fin_t *b)
{
  if (a->bson.len != b->bson.len || memcmp(a->bson.buf, b->bson.buf, a->bson.len) != 0)
    fail_msg("%s: %s: final %s != %s", name, what, a->json.buf, b->json.buf);
}

static void save_of(const st_t *s, bson_t *out)
{
  bson_init(out);
  assert_int_equal(s->d->save(s->st, out), 0);
}

static void assert_saved_equal(const char *name, const char *what, const bson_t *a,
                               const bson_t *b)
{
  if (a->len != b->len || memcmp(bson_get_data(a), bson_get_data(b), a->len) != 0) {
    char *ja = bson_as_canonical_extended_json(a, NULL);
    char *jb = bson_as_canonical_extended_json(b, NULL);
    fail_msg("%s: %s: saved states differ:\n  %s\n  %s", name, what, ja, jb);
  }
}

static uint64_t rng_state;

static uint64_t rnd(void)
{
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

/* Generated rows. */
typedef struct {
  zql_aggin_t in;
  bool conds[3];
} row_t;

#define MAXROWS 120

static bson_t *pool_doc; /* documents and arrays the rows point into */
static zql_val_t pool_docs[3];

static int group_setup(void **state)
{
  pool_doc = BCON_NEW("a", "{", "a", BCON_INT32(1), "}", "b", "{", "a", BCON_DOUBLE(1.0), "}",
                      "c", "[", BCON_INT32(1), BCON_UTF8("x"), "]");
  bson_iter_t it;
  int i = 0;
  assert_true(bson_iter_init(&it, pool_doc));
  while (bson_iter_next(&it))
    zql_val_from_iter(&it, &pool_docs[i++]);
  return 0;
}

static int group_teardown(void **state)
{
  bson_destroy(pool_doc);
  return 0;
}

static zql_val_t gen_x(bool specials)
{
  static const char *const strs[] = {"a", "b", "", "zz"};
  static const double dbls[] = {1e100, -1e100, 1.0, 0.1, -0.0, 2.5, 1e-300, 3.0, -7.25};
  static const int64_t bigs[] = {INT64_MAX, INT64_MIN, 9007199254740993, -9007199254740993};
  uint64_t r = rnd();
  zql_val_t v;
  switch (r % 17) {
  case 0: case 1: case 2: case 3:
    return zql_val_int((int64_t)(r >> 8) % 11 - 5);
  case 4:
    v = zql_val_int((int64_t)(r >> 8) % 3);
    v.flags = ZQL_VF_INT32;
    return v;
  case 5:
    return zql_val_int(bigs[(r >> 8) % 4]);
  case 6: case 7: case 8:
    return zql_val_double(dbls[(r >> 8) % ZQL_ARRAY_LEN(dbls)]);
  case 9: {
    const char *s = strs[(r >> 8) % 4];
    return zql_val_str(s, (uint32_t)strlen(s));
  }
  case 10:
    return zql_val_null();
  case 11:
    return zql_val_missing();
  case 12:
    return pool_docs[(r >> 8) % 3];
  case 13:
    return zql_val_date((int64_t)((r >> 8) % 5) * 1000);
  case 14:
    return zql_val_bool((r >> 8) & 1);
  case 15:
    if (specials)
      return zql_val_double((r >> 8) % 3 == 0 ? NAN : (r >> 8) % 3 == 1 ? INFINITY : -INFINITY);
    return zql_val_int(7);
  default:
    return zql_val_double((double)((int64_t)(r >> 8) % 2001 - 1000) / 8);
  }
}

static void gen_rows(row_t *rows, int n, uint64_t seed)
{
  rng_state = seed * 0x9E3779B97F4A7C15u + 1;
  int64_t seq = 100;
  for (int i = 0; i < n; i++) {
    row_t *r = &rows[i];
    uint64_t k = rnd();
    if (k % 5 != 0) /* else: the same _seq as the previous row (unwind) */
      seq += 1 + (int64_t)(k >> 8) % 3;
    r->in.seq = seq;
    r->in.x = gen_x(seed % 3 == 0);
    switch (k >> 16 & 15) {
    case 0: r->in.by = zql_val_null(); break;
    case 1: r->in.by = zql_val_int(seq * 100); break;
    case 2: r->in.by = zql_val_str("t", 1); break;
    default: r->in.by = zql_val_date(seq * 100 + (int64_t)(k >> 24 & 1) * 150); break;
    }
    switch (k >> 32 & 7) {
    case 0: r->in.weight = zql_val_str("w", 1); break;
    case 1: r->in.weight = zql_val_null(); break;
    case 2: r->in.weight = zql_val_double((double)(k >> 40 & 3)); break;
    default: r->in.weight = zql_val_int((int64_t)(k >> 40 & 3)); break;
    }
    for (int c = 0; c < 3; c++)
      r->conds[c] = (rnd() % 10) < 3;
    r->in.conds = r->conds;
  }
}

static const double hist_edges[] = {-10, 0, 1, 100, 1e6};

static void params_for(const char *name, zql_aggparams_t *p)
{
  zql_aggparams_default(name, p);
  if (!strcmp(name, "collect") || !strcmp(name, "sample") || !strcmp(name, "maximum") ||
      !strcmp(name, "minimum"))
    p->n = 5;
  else if (!strcmp(name, "topk"))
    p->n = 3;
  else if (!strcmp(name, "quantile"))
    p->q = 0.9;
  else if (!strcmp(name, "histogram")) {
    p->edges = hist_edges;
    p->nedges = ZQL_ARRAY_LEN(hist_edges);
  } else if (!strcmp(name, "retention") || !strcmp(name, "window_funnel") ||
             !strcmp(name, "sequence_match")) {
    p->nconds = 3;
    p->window_ms = 350;
    p->pattern = "(?1).*(?2)(?3)";
  }
}

static void add_rows(const st_t *s, const row_t *rows, int from, int to)
{
  for (int i = from; i < to; i++)
    assert_int_equal(s->d->add(s->st, &rows[i].in, &ctx), 0);
}

static st_t built(const zql_aggdef_t *d, const zql_aggparams_t *p, const row_t *rows, int from,
                  int to)
{
  st_t s = new_state(d, p);
  add_rows(&s, rows, from, to);
  return s;
}

static void merge_ok(const st_t *dst, const st_t *src)
{
  int rc = dst->d->merge(dst->st, src->st, &ctx);
  if (rc != 0)
    fail_msg("%s: merge returned %d", dst->d->name, rc);
}

/* }==== */

/* {==== the laws, for every aggregator =================================================== */

static void laws_one(const zql_aggdef_t *d, const zql_aggparams_t *p, const row_t *rows, int n)
{
  bool det = !(d->flags & ZQL_AGG_NONDET);
  fin_t F, f;
  bson_t S, s;
  st_t all = built(d, p, rows, 0, n);
  fin_of(&all, p, &F);
  save_of(&all, &S);

  /* every split point, merged both ways */
  for (int k = 0; k <= n; k++) {
    st_t l = built(d, p, rows, 0, k), r = built(d, p, rows, k, n);
    st_t l2 = built(d, p, rows, 0, k), r2 = built(d, p, rows, k, n);
    merge_ok(&l, &r);
    merge_ok(&r2, &l2);
    fin_t f2;
    bson_t s2;
    fin_of(&l, p, &f);
    fin_of(&r2, p, &f2);
    save_of(&l, &s);
    save_of(&r2, &s2);
    if (det) {
      assert_fin_equal(d->name, "split L+R", &f, &F);
      assert_fin_equal(d->name, "split R+L", &f2, &F);
      assert_saved_equal(d->name, "split L+R", &s, &S);
      assert_saved_equal(d->name, "split R+L", &s2, &S);
    } else { /* deterministic for a given split */
      st_t l3 = built(d, p, rows, 0, k), r3 = built(d, p, rows, k, n);
      merge_ok(&l3, &r3);
      fin_t f3;
      bson_t s3;
      fin_of(&l3, p, &f3);
      save_of(&l3, &s3);
      assert_fin_equal(d->name, "same split twice", &f3, &f);
      assert_saved_equal(d->name, "same split twice", &s3, &s);
      fin_free(&f3);
      bson_destroy(&s3);
      free_state(&l3);
      free_state(&r3);
    }
    fin_free(&f);
    fin_free(&f2);
    bson_destroy(&s);
    bson_destroy(&s2);
    free_state(&l);
    free_state(&r);
    free_state(&l2);
    free_state(&r2);
  }

  /* associativity and commutativity over thirds */
  int t1 = n / 3, t2 = 2 * n / 3;
  st_t a = built(d, p, rows, 0, t1), b = built(d, p, rows, t1, t2), c = built(d, p, rows, t2, n);
  st_t a2 = built(d, p, rows, 0, t1), b2 = built(d, p, rows, t1, t2), c2 = built(d, p, rows, t2, n);
  st_t a3 = built(d, p, rows, 0, t1), b3 = built(d, p, rows, t1, t2), c3 = built(d, p, rows, t2, n);
  merge_ok(&a, &b); /* (A+B)+C */
  merge_ok(&a, &c);
  merge_ok(&b2, &c2); /* A+(B+C) */
  merge_ok(&a2, &b2);
  merge_ok(&c3, &b3); /* (C+B)+A */
  merge_ok(&c3, &a3);
  if (det) {
    const st_t *res[] = {&a, &a2, &c3};
    for (int i = 0; i < 3; i++) {
      fin_of(res[i], p, &f);
      save_of(res[i], &s);
      assert_fin_equal(d->name, "associativity", &f, &F);
      assert_saved_equal(d->name, "associativity", &s, &S);
      fin_free(&f);
      bson_destroy(&s);
    }
  }
  free_state(&a);
  free_state(&b);
  free_state(&c);
  free_state(&a2);
  free_state(&b2);
  free_state(&c2);
  free_state(&a3);
  free_state(&b3);
  free_state(&c3);

  /* add(s, x) == merge(s, add(init, x)) */
  if (det) {
    st_t acc = new_state(d, p);
    for (int i = 0; i < n; i++) {
      st_t one = built(d, p, rows, i, i + 1);
      merge_ok(&acc, &one);
      free_state(&one);
    }
    save_of(&acc, &s);
    assert_saved_equal(d->name, "merged singletons", &s, &S);
    bson_destroy(&s);
    free_state(&acc);
  }

  /* save -> load -> save; the loaded state merges and finalises like the original */
  st_t l = raw_state(d);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = d->load(l.st, &S, &ctx, &err);
  if (rc != 0)
    fail_msg("%s: load of its own state failed: %s", d->name, err.buf);
  save_of(&l, &s);
  assert_saved_equal(d->name, "save/load/save", &s, &S);
  fin_of(&l, p, &f);
  assert_fin_equal(d->name, "loaded final", &f, &F);
  fin_free(&f);
  bson_destroy(&s);
  st_t half = built(d, p, rows, 0, n / 2);
  merge_ok(&l, &half);
  free_state(&half);
  free_state(&l);
  zql_strbuf_release(&err);

  fin_free(&F);
  bson_destroy(&S);
  free_state(&all);
}

static void test_laws(void **state)
{
  size_t nd;
  const zql_aggdef_t *const *defs = zql_agg_all(&nd);
  row_t rows[MAXROWS];
  for (size_t i = 0; i < nd; i++) {
    const zql_aggdef_t *d = defs[i];
    zql_aggparams_t p;
    params_for(d->name, &p);
    for (uint64_t seed = 1; seed <= 12; seed++) {
      int n = (int)(seed * 7 % 40) + (seed == 12 ? 80 : 0);
      gen_rows(rows, n, seed);
      laws_one(d, &p, rows, n);
    }
    assert_int_equal(ctx.heap, 0);
  }
}

/* Out of memory at every allocation: every call fails cleanly and the state stays valid
 * (it can still be saved, finalised and destroyed), and no heap byte is lost. */
static void test_oom(void **state)
{
  size_t nd;
  const zql_aggdef_t *const *defs = zql_agg_all(&nd);
  row_t rows[40];
  gen_rows(rows, 40, 5);
  for (size_t i = 0; i < nd; i++) {
    const zql_aggdef_t *d = defs[i];
    zql_aggparams_t p;
    params_for(d->name, &p);
    st_t ref = built(d, &p, rows, 0, 40);
    bson_t saved;
    save_of(&ref, &saved);
    for (long k = 0;; k++) {
      bool failed = false;
      st_t a = new_state(d, &p), b = new_state(d, &p), l = raw_state(d);
      zql_arena_t *arena = zql_arena_create(NULL);
      zql_strbuf_t err = ZQL_STRBUF_INIT;
      zql_val_t v;
      bson_t out = BSON_INITIALIZER;
      assert_non_null(arena);
      zql_alloc_fail_after(k);
      for (int r = 0; r < 40; r++) {
        int rc = d->add((r & 1 ? b : a).st, &rows[r].in, &ctx);
        assert_true(rc == 0 || rc == ZQL_E_NOMEM);
        failed |= rc != 0;
      }
      int rc = d->merge(a.st, b.st, &ctx);
      assert_true(rc == 0 || rc == ZQL_E_NOMEM);
      failed |= rc != 0;
      rc = d->final(a.st, &p, arena, &v);
      assert_true(rc == 0 || rc == ZQL_E_NOMEM);
      failed |= rc != 0;
      rc = d->save(a.st, &out);
      assert_true(rc == 0 || rc == ZQL_E_NOMEM);
      failed |= rc != 0;
      rc = d->load(l.st, &saved, &ctx, &err);
      if (rc != 0 && rc != ZQL_E_NOMEM)
        fail_msg("%s: load under allocation failure %ld returned %d: %s", d->name, k, rc,
                 err.buf);
      failed |= rc != 0;
      bool loaded = rc == 0;
      zql_alloc_fail_after(-1);
      /* still usable */
      assert_int_equal(d->final(a.st, &p, arena, &v), 0);
      bson_reinit(&out);
      assert_int_equal(d->save(a.st, &out), 0);
      if (!failed) { /* nothing failed: the run equals the reference */
        bson_t s2;
        save_of(&l, &s2);
        assert_saved_equal(d->name, "oom loop", &s2, &saved);
        bson_destroy(&s2);
      }
      bson_destroy(&out);
      zql_strbuf_release(&err);
      zql_arena_delete(arena);
      free_state(&a);
      free_state(&b);
      if (loaded)
        free_state(&l);
      else
        free(l.base); /* a failed load leaves nothing to destroy */
      if (!failed)
        break;
      assert_true(k < 100000);
    }
    bson_destroy(&saved);
    free_state(&ref);
    if (ctx.heap != 0)
      fail_msg("%s: heap accounting %" PRId64 " after the oom loop", d->name, ctx.heap);
  }
}

/* R8 and resolved point 6: the final of a state that saw nothing. */
static void test_empty(void **state)
{
  static const struct {
    const char *name, *json;
  } want[] = {
      {"count", "0"},         {"sum", "0"},          {"avg", "null"},
      {"min", "null"},        {"max", "null"},       {"first", "null"},
      {"last", "null"},       {"collect", "[]"},     {"sample", "[]"},
      {"maximum", "[]"},      {"minimum", "[]"},     {"topk", "[]"},
      {"hll", "0"},           {"distinct_count", "0"}, {"theta", "0"},
      {"quantile", "null"},   {"median", "null"},
      {"histogram", "[{\"lo\":-10,\"hi\":0,\"count\":0},{\"lo\":0,\"hi\":1,\"count\":0},"
                    "{\"lo\":1,\"hi\":100,\"count\":0},{\"lo\":100,\"hi\":1000000,\"count\":0}]"},
      {"retention", "[false,false,false]"},
      {"window_funnel", "{\"level\":0,\"start\":null}"},
      {"sequence_match", "false"},
  };
  int checked = 0;
  for (size_t i = 0; i < ZQL_ARRAY_LEN(want); i++) {
    const zql_aggdef_t *d = zql_agg_lookup(want[i].name);
    if (!d) /* the sketches may not be linked in */
      continue;
    zql_aggparams_t p;
    params_for(want[i].name, &p);
    st_t s = new_state(d, &p);
    fin_t f;
    fin_of(&s, &p, &f);
    if (strcmp(f.json.buf, want[i].json) != 0)
      fail_msg("%s: empty final %s, want %s", want[i].name, f.json.buf, want[i].json);
    fin_free(&f);
    free_state(&s);
    checked++;
  }
  assert_true(checked >= 15);
  assert_int_equal(ctx.heap, 0);
}

static void test_registry(void **state)
{
  size_t n;
  const zql_aggdef_t *const *defs = zql_agg_all(&n);
  static const char *const mine[] = {"count", "sum", "avg", "min", "max", "first", "last",
                                     "collect", "sample", "maximum", "minimum", "histogram",
                                     "retention", "window_funnel", "sequence_match"};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(mine); i++) {
    const zql_aggdef_t *d = zql_agg_lookup(mine[i]);
    assert_non_null(d);
    assert_string_equal(d->name, mine[i]);
    assert_int_equal(d->version, 1);
    assert_int_equal(d->flags & ZQL_AGG_NONDET, 0);
  }
  for (size_t i = 0; i < n; i++) {
    assert_ptr_equal(zql_agg_lookup(defs[i]->name), defs[i]);
    for (size_t j = 0; j < i; j++)
      assert_string_not_equal(defs[i]->name, defs[j]->name);
  }
  assert_true(n >= ZQL_ARRAY_LEN(mine));
  assert_ptr_equal(zql_agg_lookup("median"), zql_agg_lookup("quantile"));
  assert_null(zql_agg_lookup("mean"));
  assert_null(zql_agg_lookup(""));
  zql_aggparams_t p;
  zql_aggparams_default("hll", &p);
  assert_int_equal(p.n, 14);
  zql_aggparams_default("distinct_count", &p);
  assert_int_equal(p.n, 100000);
  zql_aggparams_default("median", &p);
  assert_true(p.q == 0.5);
  assert_true(p.compression == 100);
  zql_aggparams_default("sum", &p);
  assert_int_equal(p.n, 0);
  assert_null(p.edges);
}

/* }==== */

/* {==== sum and avg ====================================================================== */

/* Run one aggregator over values; the final as JSON-free value in *out (arena a). */
static zql_val_t run_vals(const char *name, const zql_aggparams_t *p, const zql_val_t *xs,
                          int n, zql_arena_t *a)
{
  const zql_aggdef_t *d = zql_agg_lookup(name);
  assert_non_null(d);
  st_t s = new_state(d, p);
  for (int i = 0; i < n; i++) {
    zql_aggin_t in = {xs[i], zql_val_missing(), zql_val_missing(), i, NULL};
    assert_int_equal(d->add(s.st, &in, &ctx), 0);
  }
  zql_val_t v;
  assert_int_equal(d->final(s.st, p, a, &v), 0);
  free_state(&s);
  return v;
}

static void assert_double_bits(zql_val_t v, double want)
{
  assert_int_equal(v.t, ZQL_V_DOUBLE);
  if (memcmp(&v.u.d, &want, 8) != 0 && !(isnan(v.u.d) && isnan(want)))
    fail_msg("got %a (%.17g), want %a (%.17g)", v.u.d, v.u.d, want, want);
}

/* Reference: Shewchuk's non-overlapping partials with the half-even correction of the
 * last step (the algorithm of Python's math.fsum); finite inputs, no overflow. */
static double ref_fsum(const double *xs, int n)
{
  double p[128];
  int np = 0;
  for (int k = 0; k < n; k++) {
    double x = xs[k];
    int i = 0;
    for (int j = 0; j < np; j++) {
      double y = p[j];
      if (fabs(x) < fabs(y)) {
        double t = x;
        x = y;
        y = t;
      }
      double hi = x + y, lo = y - (hi - x);
      if (lo != 0.0)
        p[i++] = lo;
      x = hi;
    }
    np = i;
    p[np++] = x;
  }
  double hi = 0.0, lo = 0.0;
  if (np > 0) {
    hi = p[--np];
    while (np > 0) {
      double x = hi, y = p[--np];
      hi = x + y;
      double yr = hi - x;
      lo = y - yr;
      if (lo != 0.0)
        break;
    }
    if (np > 0 && ((lo < 0.0 && p[np - 1] < 0.0) || (lo > 0.0 && p[np - 1] > 0.0))) {
      double y = lo * 2.0, x = hi + y, yr = x - hi;
      if (y == yr)
        hi = x;
    }
  }
  return hi;
}

static void test_sum_cases(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  zql_aggparams_t p;
  zql_aggparams_default("sum", &p);
  assert_non_null(a);
#define V(...) ((zql_val_t[]){__VA_ARGS__})
#define N(...) ((int)(sizeof((zql_val_t[]){__VA_ARGS__}) / sizeof(zql_val_t)))
#define SUM(...) run_vals("sum", &p, V(__VA_ARGS__), N(__VA_ARGS__), a)
  zql_val_t I1 = zql_val_int(1), D1 = zql_val_double(1.0);
  zql_val_t v = SUM(zql_val_double(1e16), I1, zql_val_double(-1e16));
  assert_double_bits(v, 1.0);
  v = SUM(zql_val_double(1e100), D1, zql_val_double(-1e100));
  assert_double_bits(v, 1.0);
  zql_val_t tenth[10];
  for (int i = 0; i < 10; i++)
    tenth[i] = zql_val_double(0.1);
  assert_double_bits(run_vals("sum", &p, tenth, 10, a), 1.0); /* fsum([0.1] * 10) */
  v = SUM(zql_val_int(INT64_MAX), I1); /* int64 overflow -> double */
  assert_double_bits(v, 9223372036854775808.0);
  v = SUM(zql_val_int(INT64_MAX), I1, zql_val_int(-1));
  assert_int_equal(v.t, ZQL_V_INT);
  assert_true(v.u.i == INT64_MAX);
  v = SUM(zql_val_int(INT64_MIN), zql_val_int(-1), zql_val_int(-1));
  assert_double_bits(v, -9223372036854775808.0); /* -(2^63 + 2) rounds to -2^63 */
  v = SUM(zql_val_int(INT64_MIN), zql_val_int(-1025));
  assert_double_bits(v, -9223372036854777856.0); /* past the tie: up in magnitude */
  v = SUM(zql_val_int(9007199254740992), I1, D1); /* 2^53 + 2, exactly */
  assert_double_bits(v, 9007199254740994.0);
  v = SUM(zql_val_int(9007199254740992), D1); /* 2^53 + 1: a tie, to even */
  assert_double_bits(v, 9007199254740992.0);
  v = SUM(D1, zql_val_double(0x1p-53)); /* tie, to even */
  assert_double_bits(v, 1.0);
  v = SUM(D1, zql_val_double(0x1p-53), zql_val_double(0x1p-105)); /* just above the tie */
  assert_double_bits(v, 0x1.0000000000001p+0);
  v = SUM(zql_val_double(0x1.0000000000001p+0), zql_val_double(0x1p-53)); /* tie, odd: up */
  assert_double_bits(v, 0x1.0000000000002p+0);
  v = SUM(zql_val_double(1e308), zql_val_double(1e308), zql_val_double(-1e308));
  assert_double_bits(v, 1e308); /* the exact total fits although a running sum would not */
  v = SUM(zql_val_double(1e308), zql_val_double(1e308));
  assert_double_bits(v, INFINITY);
  v = SUM(zql_val_double(-DBL_MAX), zql_val_double(-DBL_MAX));
  assert_double_bits(v, -INFINITY);
  v = SUM(zql_val_double(DBL_MAX), zql_val_double(0x1p970)); /* half an ulp: a tie to inf */
  assert_double_bits(v, INFINITY);
  v = SUM(zql_val_double(DBL_MAX), zql_val_double(0x1p969)); /* below the tie */
  assert_double_bits(v, DBL_MAX);
  v = SUM(zql_val_double(INFINITY), I1);
  assert_double_bits(v, INFINITY);
  v = SUM(zql_val_double(INFINITY), zql_val_double(-INFINITY));
  assert_double_bits(v, NAN);
  v = SUM(zql_val_double(NAN), I1);
  assert_double_bits(v, NAN);
  v = SUM(zql_val_double(5e-324), zql_val_double(5e-324));
  assert_double_bits(v, 1e-323);
  v = SUM(zql_val_double(0x1p-1022), zql_val_double(-5e-324));
  assert_double_bits(v, 0x0.fffffffffffffp-1022); /* subnormal result, exact */
  v = SUM(zql_val_double(-0.0));
  assert_double_bits(v, 0.0);
  v = SUM(zql_val_int(1), zql_val_int(2), zql_val_int(3), zql_val_null(), zql_val_missing());
  assert_int_equal(v.t, ZQL_V_INT);
  assert_int_equal(v.u.i, 6);
  uint64_t skips = ctx.type_skips;
  v = SUM(zql_val_str("5", 1), zql_val_bool(true), zql_val_int(2));
  assert_int_equal(ctx.type_skips - skips, 2);
  assert_int_equal(v.t, ZQL_V_INT);
  assert_int_equal(v.u.i, 2);
  zql_arena_delete(a);
  assert_int_equal(ctx.heap, 0);
}

/* Random lists of doubles over a wide range of exponents with cancellations, and ints
 * within 2^53 (exact as doubles): sum == the fsum reference, in any order. */
static void test_sum_random(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  zql_aggparams_t p;
  zql_aggparams_default("sum", &p);
  rng_state = 12345;
  for (int round = 0; round < 400; round++) {
    double xs[100];
    zql_val_t vs[100];
    int n = 1 + (int)(rnd() % 100);
    for (int i = 0; i < n; i++) {
      uint64_t r = rnd();
      double m = (double)(int64_t)(r >> 11) / 9007199254740992.0; /* 53 random bits */
      int e = (int)(r % 120) - 60;
      if (round % 4 == 1)
        e = (int)(r % 2000) - 1000;
      xs[i] = ldexp(m, e);
      if (i > 0 && r % 7 == 0)
        xs[i] = -xs[i - 1]; /* cancellation */
      if (round % 4 == 3 && r % 3 == 0) {
        int64_t k = (int64_t)(r >> 12) % 9007199254740992 - 4503599627370496;
        xs[i] = (double)k;
        vs[i] = zql_val_int(k);
      } else {
        vs[i] = zql_val_double(xs[i]);
      }
    }
    double want = ref_fsum(xs, n);
    zql_val_t got = run_vals("sum", &p, vs, n, a);
    if (got.t == ZQL_V_INT) {
      assert_true((double)got.u.i == want);
    } else {
      assert_double_bits(got, want == 0 ? 0.0 : want);
    }
    /* reversed and rotated orders give identical bits */
    zql_val_t rev[100];
    for (int i = 0; i < n; i++)
      rev[i] = vs[(n - 1 - i + round) % n];
    zql_val_t got2 = run_vals("sum", &p, rev, n, a);
    assert_int_equal(got2.t, got.t);
    assert_memory_equal(&got2.u, &got.u, 8);
    /* avg agrees with the reference when the division is exact (n a power of two) */
    if ((n & (n - 1)) == 0 && got.t == ZQL_V_DOUBLE && fabs(want) > 0x1p-900) {
      zql_val_t av = run_vals("avg", &p, vs, n, a);
      assert_double_bits(av, want / n);
    }
  }
  zql_arena_delete(a);
  assert_int_equal(ctx.heap, 0);
}

static void test_avg(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  zql_aggparams_t p;
  zql_aggparams_default("avg", &p);
#define AVG(...) run_vals("avg", &p, V(__VA_ARGS__), N(__VA_ARGS__), a)
  assert_double_bits(AVG(zql_val_int(1), zql_val_int(2)), 1.5);
  assert_double_bits(AVG(zql_val_int(-5), zql_val_int(-6)), -5.5);
  assert_double_bits(AVG(zql_val_int(4)), 4.0);
  assert_double_bits(AVG(zql_val_double(0.1), zql_val_double(0.2), zql_val_double(0.3)),
                     0x1.999999999999ap-3);
  /* the exact sum overflows a double, the mean does not */
  assert_double_bits(AVG(zql_val_double(1e308), zql_val_double(1e308)), 1e308);
  assert_double_bits(AVG(zql_val_int(INT64_MAX), zql_val_int(INT64_MAX)), 0x1p63);
  assert_double_bits(AVG(zql_val_double(0.1), zql_val_double(0.1), zql_val_double(0.1),
                         zql_val_double(0.7)),
                     0.25);
  /* cases where the rounded sum divided by n is one ulp off (Python Fraction reference) */
  assert_double_bits(AVG(zql_val_double(-0x1.08fe67bd4eefcp+3),
                         zql_val_double(-0x1.68d4d82b93d43p-14),
                         zql_val_double(0x1.120ecfb7103dap-20)),
                     -0x1.615422af7c882p+1);
  assert_double_bits(AVG(zql_val_double(-0x1.391ac6f8bd0a5p-4),
                         zql_val_double(0x1.789ba4aa1944fp+13),
                         zql_val_double(-0x1.8f178ef4e5c5ap+12),
                         zql_val_double(0x1.7550ea987a73ep-10),
                         zql_val_double(-0x1.fe68ea8f48e30p+7),
                         zql_val_double(0x1.092371ee0f8f0p+12),
                         zql_val_double(-0x1.209ea9b8cf8c5p-7)),
                     0x1.58bf2c5b2a03dp+10);
  assert_double_bits(AVG(zql_val_double(0x1.cdd2ed2a26859p+1),
                         zql_val_double(0x1.bb90e7fed455ap+5),
                         zql_val_double(0x1.11cc47516065cp+4),
                         zql_val_double(-0x1.6ada822d21e1fp-9),
                         zql_val_double(0x1.81d95cea40c38p-8),
                         zql_val_double(-0x1.568b5c2b943a4p-4)),
                     0x1.95ca3ac89fd82p+3);
  /* subnormal means round at 2^-1074 */
  assert_double_bits(AVG(zql_val_double(5e-324), zql_val_double(0.0)), 0.0); /* tie to even */
  assert_double_bits(AVG(zql_val_double(1.5e-323), zql_val_double(0.0)), 1e-323);
  assert_double_bits(AVG(zql_val_double(INFINITY), zql_val_int(1)), INFINITY);
  zql_val_t v = AVG(zql_val_str("x", 1), zql_val_null());
  assert_int_equal(v.t, ZQL_V_NULL);
  zql_arena_delete(a);
  assert_int_equal(ctx.heap, 0);
}

/* }==== */

/* {==== min, max, first, last ============================================================ */

static void test_minmax(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  zql_aggparams_t p;
  zql_aggparams_default("max", &p);
  zql_val_t i32 = zql_val_int(1);
  i32.flags = ZQL_VF_INT32;
  zql_val_t xs[] = {zql_val_int(5), zql_val_str("a", 1), zql_val_date(7), zql_val_null(),
                    zql_val_missing(), zql_val_double(1e300), zql_val_bool(true)};
  zql_val_t v = run_vals("max", &p, xs, ZQL_ARRAY_LEN(xs), a);
  assert_int_equal(v.t, ZQL_V_DATE); /* date is above bool, string and numbers in R7 */
  v = run_vals("min", &p, xs, ZQL_ARRAY_LEN(xs), a);
  assert_int_equal(v.t, ZQL_V_INT);
  assert_int_equal(v.u.i, 5);
  /* ties between equal values of different representations: the same winner in any order */
  zql_val_t t1[] = {zql_val_double(1.0), zql_val_int(1), i32};
  zql_val_t t2[] = {i32, zql_val_int(1), zql_val_double(1.0)};
  zql_val_t t3[] = {zql_val_int(1), i32, zql_val_double(1.0)};
  for (int k = 0; k < 2; k++) {
    const char *name = k ? "max" : "min";
    zql_val_t r1 = run_vals(name, &p, t1, 3, a), r2 = run_vals(name, &p, t2, 3, a);
    zql_val_t r3 = run_vals(name, &p, t3, 3, a);
    assert_int_equal(r1.t, ZQL_V_INT); /* INT sorts before DOUBLE in the tie order */
    assert_int_equal(r1.flags, 0);
    assert_int_equal(r2.t, r1.t);
    assert_int_equal(r2.flags, r1.flags);
    assert_int_equal(r3.t, r1.t);
    assert_int_equal(r3.flags, r1.flags);
  }
  /* the output keeps the type of the original value: strings are copied */
  char buf[8] = "zeta";
  zql_val_t s[] = {zql_val_str(buf, 4), zql_val_str("alpha", 5)};
  v = run_vals("max", &p, s, 2, a);
  memcpy(buf, "XXXX", 4);
  assert_int_equal(v.t, ZQL_V_STRING);
  assert_string_equal(v.u.s, "zeta");
  zql_arena_delete(a);
  assert_int_equal(ctx.heap, 0);
}

static zql_val_t run_rows(const char *name, const zql_aggparams_t *p, const zql_aggin_t *in,
                          int n, zql_arena_t *a)
{
  const zql_aggdef_t *d = zql_agg_lookup(name);
  assert_non_null(d);
  st_t s = new_state(d, p);
  for (int i = 0; i < n; i++)
    assert_int_equal(d->add(s.st, &in[i], &ctx), 0);
  zql_val_t v;
  assert_int_equal(d->final(s.st, p, a, &v), 0);
  free_state(&s);
  return v;
}

static void assert_json_val(const zql_val_t *v, const char *want)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_val_to_json(&sb, v);
  if (strcmp(sb.buf, want) != 0)
    fail_msg("got %s, want %s", sb.buf, want);
  zql_strbuf_release(&sb);
}

#define ROW(x, by, w, seq) {x, by, w, seq, NULL}

static void test_first_last(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  zql_aggparams_t p;
  zql_aggparams_default("first", &p);
  zql_val_t m = zql_val_missing();
  zql_aggin_t rows[] = {
      ROW(zql_val_str("c", 1), zql_val_date(300), m, 5),
      ROW(zql_val_str("a", 1), zql_val_date(100), m, 9), /* same time as the next: seq 9 */
      ROW(zql_val_str("b", 1), zql_val_date(100), m, 7), /* ... seq 7 goes first */
      ROW(zql_val_null(), zql_val_date(50), m, 1),       /* null x: skipped */
      ROW(zql_val_str("n", 1), zql_val_null(), m, 2),    /* null by: skipped */
      ROW(zql_val_str("d", 1), zql_val_date(300), m, 6), /* latest time, latest seq */
  };
  zql_val_t v = run_rows("first", &p, rows, ZQL_ARRAY_LEN(rows), a);
  assert_json_val(&v, "\"b\"");
  v = run_rows("last", &p, rows, ZQL_ARRAY_LEN(rows), a);
  assert_json_val(&v, "\"d\"");
  /* two rows of one event (same seq and time): the value order decides, in any order */
  zql_aggin_t u1[] = {ROW(zql_val_int(2), zql_val_date(1), m, 3),
                      ROW(zql_val_int(1), zql_val_date(1), m, 3)};
  zql_aggin_t u2[] = {ROW(zql_val_int(1), zql_val_date(1), m, 3),
                      ROW(zql_val_int(2), zql_val_date(1), m, 3)};
  v = run_rows("first", &p, u1, 2, a);
  assert_json_val(&v, "1");
  v = run_rows("first", &p, u2, 2, a);
  assert_json_val(&v, "1");
  v = run_rows("last", &p, u1, 2, a);
  assert_json_val(&v, "2");
  v = run_rows("last", &p, u2, 2, a);
  assert_json_val(&v, "2");
  zql_arena_delete(a);
  assert_int_equal(ctx.heap, 0);
}

/* }==== */

/* {==== the N-best family ================================================================ */

static void test_collect(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  zql_aggparams_t p;
  zql_aggparams_default("collect", &p);
  p.n = 3;
  zql_val_t m = zql_val_missing();
  zql_aggin_t rows[] = {
      ROW(zql_val_int(50), m, m, 50),      ROW(zql_val_int(10), m, m, 10),
      ROW(zql_val_null(), m, m, 1),        ROW(zql_val_int(40), m, m, 40),
      ROW(zql_val_str("s", 1), m, m, 20),  ROW(zql_val_int(30), m, m, 30),
  };
  zql_val_t v = run_rows("collect", &p, rows, ZQL_ARRAY_LEN(rows), a);
  assert_json_val(&v, "[10,\"s\",30]");
  p.n = 10;
  v = run_rows("collect", &p, rows, ZQL_ARRAY_LEN(rows), a);
  assert_json_val(&v, "[10,\"s\",30,40,50]");
  zql_arena_delete(a);
  assert_int_equal(ctx.heap, 0);
}

static void test_maximum_minimum(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  zql_aggparams_t p;
  zql_aggparams_default("maximum", &p);
  p.n = 3;
  zql_val_t m = zql_val_missing();
  zql_aggin_t rows[] = {
      ROW(zql_val_str("a", 1), m, zql_val_int(5), 1),
      ROW(zql_val_str("b", 1), m, zql_val_double(7.5), 2),
      ROW(zql_val_str("c", 1), m, zql_val_int(5), 3),    /* ties with a: later seq */
      ROW(zql_val_str("d", 1), m, zql_val_str("9", 1), 4), /* non-numeric weight: skipped */
      ROW(zql_val_str("e", 1), m, zql_val_null(), 5),     /* null weight: skipped */
      ROW(zql_val_null(), m, zql_val_int(100), 6),        /* null value: skipped */
      ROW(zql_val_str("f", 1), m, zql_val_int(-1), 7),
      ROW(zql_val_str("g", 1), m, zql_val_int(2), 8),
  };
  uint64_t skips = ctx.type_skips;
  zql_val_t v = run_rows("maximum", &p, rows, ZQL_ARRAY_LEN(rows), a);
  assert_int_equal(ctx.type_skips - skips, 2);
  assert_json_val(&v, "[{\"value\":\"b\",\"weight\":7.5},{\"value\":\"a\",\"weight\":5},"
                      "{\"value\":\"c\",\"weight\":5}]");
  v = run_rows("minimum", &p, rows, ZQL_ARRAY_LEN(rows), a);
  assert_json_val(&v, "[{\"value\":\"f\",\"weight\":-1},{\"value\":\"g\",\"weight\":2},"
                      "{\"value\":\"a\",\"weight\":5}]");
  zql_arena_delete(a);
  assert_int_equal(ctx.heap, 0);
}

/* A uniform sample: 1000 of 10000 rows, about 100 from each tenth of the input. */
static void test_sample(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  const zql_aggdef_t *d = zql_agg_lookup("sample");
  zql_aggparams_t p;
  zql_aggparams_default("sample", &p);
  p.n = 1000;
  st_t s = new_state(d, &p), h1 = new_state(d, &p), h2 = new_state(d, &p);
  for (int i = 0; i < 10000; i++) {
    zql_aggin_t in = ROW(zql_val_int(i), zql_val_missing(), zql_val_missing(), i);
    assert_int_equal(d->add(s.st, &in, &ctx), 0);
    assert_int_equal(d->add((i % 3 ? h1 : h2).st, &in, &ctx), 0);
  }
  merge_ok(&h1, &h2);
  zql_val_t v, w;
  assert_int_equal(d->final(s.st, &p, a, &v), 0);
  assert_int_equal(d->final(h1.st, &p, a, &w), 0);
  assert_int_equal(v.len, w.len); /* the same sample for another split */
  assert_memory_equal(v.u.p, w.u.p, v.len);
  int tenth[10] = {0}, n = 0;
  int64_t prev = -1;
  bson_t b;
  bson_iter_t it;
  assert_true(bson_init_static(&b, v.u.p, v.len));
  assert_true(bson_iter_init(&it, &b));
  while (bson_iter_next(&it)) {
    int64_t x = bson_iter_as_int64(&it);
    assert_true(x > prev); /* in _seq order, no repeats */
    prev = x;
    tenth[x / 1000]++;
    n++;
  }
  assert_int_equal(n, 1000);
  for (int i = 0; i < 10; i++)
    if (tenth[i] < 60 || tenth[i] > 140)
      fail_msg("tenth %d has %d of 1000 sampled rows", i, tenth[i]);
  free_state(&s);
  free_state(&h1);
  free_state(&h2);
  zql_arena_delete(a);
  assert_int_equal(ctx.heap, 0);
}

/* }==== */

/* {==== histogram, retention, window_funnel, sequence_match ============================== */

static void test_histogram(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  const zql_aggdef_t *d = zql_agg_lookup("histogram");
  static const double edges[] = {0, 1.5, 10};
  zql_aggparams_t p;
  zql_aggparams_default("histogram", &p);
  p.edges = edges;
  p.nedges = 3;
  zql_val_t xs[] = {zql_val_int(0), zql_val_double(1.4999), zql_val_double(1.5),
                    zql_val_int(10), /* the last bucket is closed */
                    zql_val_double(10.000000000000002), zql_val_int(-1), zql_val_double(NAN),
                    zql_val_str("3", 1), zql_val_null(), zql_val_int(9)};
  uint64_t skips = ctx.type_skips;
  zql_val_t v = run_vals("histogram", &p, xs, ZQL_ARRAY_LEN(xs), a);
  assert_int_equal(ctx.type_skips - skips, 1);
  assert_json_val(&v, "[{\"lo\":0,\"hi\":1.5,\"count\":2},{\"lo\":1.5,\"hi\":10,\"count\":3}]");
  /* int64 values compare exactly with double edges */
  static const double big[] = {9007199254740992.0, 9007199254740994.0, 9007199254740996.0};
  p.edges = big;
  zql_val_t bx[] = {zql_val_int(9007199254740993), zql_val_int(9007199254740995)};
  v = run_vals("histogram", &p, bx, 2, a);
  assert_json_val(&v, "[{\"lo\":9007199254740992,\"hi\":9007199254740994,\"count\":1},"
                      "{\"lo\":9007199254740994,\"hi\":9007199254740996,\"count\":1}]");
  /* merging states with other edges is a mismatch */
  st_t s1 = new_state(d, &p);
  p.edges = edges;
  st_t s2 = new_state(d, &p);
  assert_int_equal(d->merge(s1.st, s2.st, &ctx), ZQL_AGG_MISMATCH);
  p.nedges = 2;
  st_t s3 = new_state(d, &p);
  assert_int_equal(d->merge(s3.st, s2.st, &ctx), ZQL_AGG_MISMATCH);
  free_state(&s1);
  free_state(&s2);
  free_state(&s3);
  zql_arena_delete(a);
  assert_int_equal(ctx.heap, 0);
}

static zql_val_t run_cond_rows(const char *name, const zql_aggparams_t *p, const int64_t *ts,
                               const char *const *conds, int n, zql_arena_t *a)
{
  const zql_aggdef_t *d = zql_agg_lookup(name);
  st_t s = new_state(d, p);
  for (int i = 0; i < n; i++) {
    bool c[8] = {false};
    for (const char *q = conds[i]; *q; q++)
      c[*q - '1'] = true;
    zql_aggin_t in = {zql_val_missing(), zql_val_date(ts[i]), zql_val_missing(), i, c};
    assert_int_equal(d->add(s.st, &in, &ctx), 0);
  }
  zql_val_t v;
  assert_int_equal(d->final(s.st, p, a, &v), 0);
  free_state(&s);
  return v;
}

static void test_retention(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  zql_aggparams_t p;
  zql_aggparams_default("retention", &p);
  p.nconds = 4;
  static const int64_t ts[] = {1, 2, 3};
  static const char *const c1[] = {"3", "1", "4"};
  zql_val_t v = run_cond_rows("retention", &p, ts, c1, 3, a);
  assert_json_val(&v, "[true,false,true,true]");
  static const char *const c2[] = {"3", "2", "4"}; /* no c1: everything false */
  v = run_cond_rows("retention", &p, ts, c2, 3, a);
  assert_json_val(&v, "[false,false,false,false]");
  const zql_aggdef_t *d = zql_agg_lookup("retention");
  st_t s1 = new_state(d, &p);
  p.nconds = 3;
  st_t s2 = new_state(d, &p);
  assert_int_equal(d->merge(s1.st, s2.st, &ctx), ZQL_AGG_MISMATCH);
  free_state(&s1);
  free_state(&s2);
  zql_arena_delete(a);
}

static void test_window_funnel(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  zql_aggparams_t p;
  zql_aggparams_default("window_funnel", &p);
  p.nconds = 3;
  p.window_ms = 10;
  {
    /* a later start (5) is what the greedy keeps, but the chain from 0 reaches level 2
     * too and starts earlier */
    static const int64_t ts[] = {0, 5, 8, 20};
    static const char *const c[] = {"1", "1", "2", "3"};
    zql_val_t v = run_cond_rows("window_funnel", &p, ts, c, 4, a);
    assert_json_val(&v, "{\"level\":2,\"start\":\"1970-01-01T00:00:00.000Z\"}");
  }
  {
    /* only the start at 12 can reach level 3 within 10 ms */
    static const int64_t ts[] = {0, 9, 12, 15, 21, 30};
    static const char *const c[] = {"1", "2", "1", "2", "3", "3"};
    zql_val_t v = run_cond_rows("window_funnel", &p, ts, c, 6, a);
    assert_json_val(&v, "{\"level\":3,\"start\":\"1970-01-01T00:00:00.012Z\"}");
  }
  {
    /* one row meeting c1, c2 and c3 advances one step only; the boundary is inclusive */
    static const int64_t ts[] = {100, 110, 111};
    static const char *const c[] = {"123", "2", "3"};
    zql_val_t v = run_cond_rows("window_funnel", &p, ts, c, 3, a);
    assert_json_val(&v, "{\"level\":2,\"start\":\"1970-01-01T00:00:00.100Z\"}");
  }
  {
    /* steps out of order do not count; no c1: level 0 */
    static const int64_t ts[] = {0, 1, 2};
    static const char *const c[] = {"3", "2", "1"};
    zql_val_t v = run_cond_rows("window_funnel", &p, ts, c, 3, a);
    assert_json_val(&v, "{\"level\":1,\"start\":\"1970-01-01T00:00:00.002Z\"}");
    static const char *const c2[] = {"3", "2", "2"};
    v = run_cond_rows("window_funnel", &p, ts, c2, 3, a);
    assert_json_val(&v, "{\"level\":0,\"start\":null}");
  }
  {
    /* equal times are ordered by _seq (the row index here) */
    static const int64_t ts[] = {7, 7, 7};
    static const char *const c[] = {"1", "2", "3"};
    zql_val_t v = run_cond_rows("window_funnel", &p, ts, c, 3, a);
    assert_json_val(&v, "{\"level\":3,\"start\":\"1970-01-01T00:00:00.007Z\"}");
  }
  /* type skips: a string time; timestamps count in seconds */
  const zql_aggdef_t *d = zql_agg_lookup("window_funnel");
  st_t s = new_state(d, &p);
  bool c1[3] = {true, false, false}, c2[3] = {false, true, false};
  zql_val_t tsv = {ZQL_V_TIMESTAMP, 0, 0, 0, {0}};
  tsv.u.ts.t = 2;
  zql_aggin_t r1 = {zql_val_missing(), zql_val_str("x", 1), zql_val_missing(), 1, c1};
  zql_aggin_t r2 = {zql_val_missing(), zql_val_date(1995), zql_val_missing(), 2, c1};
  zql_aggin_t r3 = {zql_val_missing(), tsv, zql_val_missing(), 3, c2};
  uint64_t skips = ctx.type_skips;
  assert_int_equal(d->add(s.st, &r1, &ctx), 0);
  assert_int_equal(d->add(s.st, &r2, &ctx), 0);
  assert_int_equal(d->add(s.st, &r3, &ctx), 0);
  assert_int_equal(ctx.type_skips - skips, 1);
  zql_val_t v;
  assert_int_equal(d->final(s.st, &p, a, &v), 0);
  assert_json_val(&v, "{\"level\":2,\"start\":\"1970-01-01T00:00:01.995Z\"}");
  free_state(&s);
  zql_arena_delete(a);
  assert_int_equal(ctx.heap, 0);
}

/* More rows than the cap: the earliest are kept, the rest counted, for any split. */
static void test_funnel_cap(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  const zql_aggdef_t *d = zql_agg_lookup("window_funnel");
  zql_aggparams_t p;
  zql_aggparams_default("window_funnel", &p);
  p.nconds = 2;
  p.window_ms = 1000000;
  st_t s = new_state(d, &p), h1 = new_state(d, &p), h2 = new_state(d, &p);
  bool c1[2] = {true, false}, c2[2] = {false, true};
  uint64_t skips = ctx.type_skips;
  int total = 250000;
  for (int i = 0; i < total; i++) {
    /* c2 only at the very end (time 0 is late: rows arrive newest first) */
    int64_t t = total - i;
    zql_aggin_t in = {zql_val_missing(), zql_val_date(t), zql_val_missing(), i,
                      i == 0 ? c2 : c1};
    assert_int_equal(d->add(s.st, &in, &ctx), 0);
    assert_int_equal(d->add((i % 2 ? h1 : h2).st, &in, &ctx), 0);
  }
  merge_ok(&h1, &h2);
  bson_t b1, b2;
  save_of(&s, &b1);
  save_of(&h1, &b2);
  assert_saved_equal("window_funnel", "capped rows", &b1, &b2);
  assert_true(ctx.type_skips - skips >= (uint64_t)(total - 100000));
  zql_val_t v;
  assert_int_equal(d->final(s.st, &p, a, &v), 0);
  /* the c2 row (time 250000) is among the dropped latest ones: level 1 from time 1 */
  assert_json_val(&v, "{\"level\":1,\"start\":\"1970-01-01T00:00:00.001Z\"}");
  bson_destroy(&b1);
  bson_destroy(&b2);
  free_state(&s);
  free_state(&h1);
  free_state(&h2);
  zql_arena_delete(a);
  assert_int_equal(ctx.heap, 0);
}

static void test_sequence_match(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  zql_aggparams_t p;
  zql_aggparams_default("sequence_match", &p);
  p.nconds = 3;
  /* rows meeting no condition are not in the sequence */
  static const int64_t ts[] = {10, 20, 30, 40, 50};
  static const char *const c[] = {"1", "", "3", "2", "1"};
  static const struct {
    const char *pattern;
    bool want;
  } cases[] = {
      {"(?1)(?2)", false},     {"(?1)(?3)", true},      {"(?3)(?2)", true},
      {"(?1).*(?2)", true},    {"(?1).(?2)", true},     {"(?2)(?1)", true},
      {"(?2).(?1)", false},    {"(?1)(?3)(?2)(?1)", true}, {"(?1)(?3)(?2)(?1).", false},
      {"(?1)(?3)(?2)(?1).*", true}, {".*", true},       {"(?2).*(?3)", false},
      {"...", true},           {".....", false},        {"(?3).*(?1)", true},
      {"(?1).*(?1)", true},    {"(?1)..(?1)", true},    {"(?1).(?1)", false},
      {"(?1).*.*(?1)", true},  {".*(?2).*", true},      {"(?1).*(?2).*(?3)", false},
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(cases); i++) {
    p.pattern = cases[i].pattern;
    assert_int_equal(zql_seqpattern_check(p.pattern, 3, NULL), 0);
    zql_val_t v = run_cond_rows("sequence_match", &p, ts, c, 5, a);
    assert_int_equal(v.t, ZQL_V_BOOL);
    if (v.u.b != cases[i].want)
      fail_msg("pattern %s: got %d", cases[i].pattern, v.u.b);
  }
  /* rows arrive in any order: they are sorted by time */
  static const int64_t ts2[] = {50, 10, 40};
  static const char *const cc2[] = {"3", "1", "2"};
  p.pattern = "(?1)(?2)(?3)";
  zql_val_t v = run_cond_rows("sequence_match", &p, ts2, cc2, 3, a);
  assert_true(v.u.b);
  /* plan-time checks */
  static const struct {
    const char *pattern;
    int code;
    const char *msg;
  } badp[] = {
      {"(?1)(?t>=3600)(?2)", ZQL_E_ARG_KIND, "time constraints"},
      {"(?4)", ZQL_E_ARG_RANGE, "refers to no condition"},
      {"(?0)", ZQL_E_ARG_RANGE, "refers to no condition"},
      {"(?1", ZQL_E_ARG_KIND, "malformed"},
      {"(?)", ZQL_E_ARG_KIND, "malformed"},
      {"(?1) (?2)", ZQL_E_ARG_KIND, "unexpected ' '"},
      {"*", ZQL_E_ARG_KIND, "unexpected '*'"},
      {"", ZQL_E_ARG_KIND, "empty"},
      {"(?99999999999)", ZQL_E_ARG_RANGE, "refers to no condition"},
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(badp); i++) {
    zql_strbuf_t err = ZQL_STRBUF_INIT;
    assert_int_equal(zql_seqpattern_check(badp[i].pattern, 3, &err), badp[i].code);
    if (!strstr(err.buf, badp[i].msg))
      fail_msg("pattern '%s': message '%s'", badp[i].pattern, err.buf);
    zql_strbuf_release(&err);
  }
  /* different patterns do not merge */
  const zql_aggdef_t *d = zql_agg_lookup("sequence_match");
  p.pattern = "(?1)";
  st_t s1 = new_state(d, &p);
  p.pattern = "(?2)";
  st_t s2 = new_state(d, &p);
  assert_int_equal(d->merge(s1.st, s2.st, &ctx), ZQL_AGG_MISMATCH);
  free_state(&s1);
  free_state(&s2);
  zql_arena_delete(a);
  assert_int_equal(ctx.heap, 0);
}

/* }==== */

/* {==== parameters and malformed states ================================================== */

static void test_mismatch(void **state)
{
  static const char *const names[] = {"collect", "sample", "maximum", "minimum"};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(names); i++) {
    const zql_aggdef_t *d = zql_agg_lookup(names[i]);
    zql_aggparams_t p;
    params_for(names[i], &p);
    st_t s1 = new_state(d, &p);
    p.n = 6;
    st_t s2 = new_state(d, &p);
    assert_int_equal(d->merge(s1.st, s2.st, &ctx), ZQL_AGG_MISMATCH);
    free_state(&s1);
    free_state(&s2);
  }
  const zql_aggdef_t *d = zql_agg_lookup("window_funnel");
  zql_aggparams_t p;
  params_for("window_funnel", &p);
  st_t s1 = new_state(d, &p);
  p.window_ms = 1;
  st_t s2 = new_state(d, &p);
  assert_int_equal(d->merge(s1.st, s2.st, &ctx), ZQL_AGG_MISMATCH);
  free_state(&s1);
  free_state(&s2);
}

/* A state saved by kind A given to B's load; damaged fields; versions from the future. */
static void test_load_errors(void **state)
{
  row_t rows[30];
  gen_rows(rows, 30, 3);
  static const char *const mine[] = {"count", "sum", "avg", "min", "max", "first", "last",
                                     "collect", "sample", "maximum", "minimum", "histogram",
                                     "retention", "window_funnel", "sequence_match"};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(mine); i++) {
    const zql_aggdef_t *d = zql_agg_lookup(mine[i]);
    const zql_aggdef_t *other = zql_agg_lookup(i ? mine[i - 1] : "sum");
    zql_aggparams_t p;
    params_for(mine[i], &p);
    st_t s = built(d, &p, rows, 0, 30);
    bson_t good;
    save_of(&s, &good);
    free_state(&s);
    /* the wrong kind */
    st_t l = raw_state(other);
    zql_strbuf_t err = ZQL_STRBUF_INIT;
    assert_int_equal(other->load(l.st, &good, &ctx, &err), ZQL_E_BAD_RECORD);
    assert_non_null(strstr(err.buf, "state where a"));
    free(l.base);
    /* every field replaced by null, by a string, or removed: rejected, except that the
     * value fields of min/max/first/last take any non-null value and x (a value or
     * sum's accumulator) is optional */
    bool valued = !strcmp(mine[i], "min") || !strcmp(mine[i], "max") ||
                  !strcmp(mine[i], "first") || !strcmp(mine[i], "last");
    bson_iter_t it;
    assert_true(bson_iter_init(&it, &good));
    while (bson_iter_next(&it)) {
      const char *key = bson_iter_key(&it);
      for (int mode = 0; mode < 3; mode++) {
        bson_t bad;
        bson_iter_t jt;
        bson_init(&bad);
        assert_true(bson_iter_init(&jt, &good));
        while (bson_iter_next(&jt)) {
          if (strcmp(bson_iter_key(&jt), key) != 0)
            bson_append_iter(&bad, NULL, 0, &jt);
          else if (mode == 0)
            BSON_APPEND_NULL(&bad, key);
          else if (mode == 1)
            BSON_APPEND_UTF8(&bad, key, "junk");
        }
        st_t l2 = raw_state(d);
        zql_strbuf_reset(&err);
        int rc = d->load(l2.st, &bad, &ctx, &err);
        bool may = (mode == 1 && valued && (!strcmp(key, "x") || !strcmp(key, "by"))) ||
                   (mode == 2 && !strcmp(key, "x"));
        if (rc == 0) {
          if (!may)
            fail_msg("%s: load accepted field '%s' in mode %d", mine[i], key, mode);
          free_state(&l2);
        } else {
          assert_int_equal(rc, ZQL_E_BAD_RECORD);
          assert_true(err.len > 0);
          /* a failed load leaves nothing owned: destroying is harmless */
          d->destroy(l2.st, &ctx);
          free(l2.base);
        }
        bson_destroy(&bad);
      }
    }
    zql_strbuf_release(&err);
    bson_destroy(&good);
    assert_int_equal(ctx.heap, 0);
  }
}

/* }==== */

static int reset_ctx(void **state)
{
  memset(&ctx, 0, sizeof ctx);
  return 0;
}

#define AGG_TEST(f) cmocka_unit_test_setup_teardown(f, reset_ctx, zql_unit_teardown)

int zql_unit_agg(void)
{
  const struct CMUnitTest tests[] = {
      AGG_TEST(test_registry),      AGG_TEST(test_empty),
      AGG_TEST(test_laws),          AGG_TEST(test_oom),
      AGG_TEST(test_sum_cases),     AGG_TEST(test_sum_random),
      AGG_TEST(test_avg),           AGG_TEST(test_minmax),
      AGG_TEST(test_first_last),    AGG_TEST(test_collect),
      AGG_TEST(test_maximum_minimum), AGG_TEST(test_sample),
      AGG_TEST(test_histogram),     AGG_TEST(test_retention),
      AGG_TEST(test_window_funnel), AGG_TEST(test_funnel_cap),
      AGG_TEST(test_sequence_match), AGG_TEST(test_mismatch),
      AGG_TEST(test_load_errors),
  };
  return cmocka_run_group_tests_name("agg", tests, group_setup, group_teardown);
}
