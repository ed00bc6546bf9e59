/*
 * test_value.c -- unit tests of the run-time values (exec/value.c, stage 4).
 *
 * The heart is an ordered list of ~110 tricky values over every type (NaN, infinities,
 * INT64_MIN, 2^53 +- 1 as int and double, -0.0, subnormals, strings with NUL bytes,
 * documents, arrays, binaries, ...), each with its rank (equal values share one). For
 * every pair it checks that zql_val_cmp agrees with the ranks, that memcmp of the key
 * encodings agrees too, that encodings are equal exactly for equal ranks and so are
 * hashes; that concatenated encodings order pairs lexicographically; that decode inverts
 * encode and rejects every truncation. Then: BSON in and out for every type, deep copy,
 * the three-valued operators, JSON/text/date goldens, and out-of-memory while decoding.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <math.h>

#include "exec/value.h"
#include "runtime/base/alloc.h"
#include "runtime/base/arena.h"
#include "runtime/base/strbuf.h"


/* {==== the ordered list ================================================================ */

#define MAXV 160

typedef struct {
  bson_t doc; /* every value as field "0", "1", ... */
  int rank[MAXV];
  int n;
  int r; /* current rank */
  char key[16];
} vlist_t;

/* The key for the next value; same = true keeps the current rank (an equal value). */
static const char *K(vlist_t *l, bool same)
{
  if (!same)
    l->r++;
  assert_true(l->n < MAXV);
  l->rank[l->n] = l->r;
  snprintf(l->key, sizeof l->key, "%d", l->n++);
  return l->key;
}

static const uint8_t oid0[12] = {0};
static const uint8_t oid1[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t oidf[12] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static void sub_doc(bson_t *parent, const char *key, const char *k1, int v1, bool two)
{
  bson_t child;
  bson_append_document_begin(parent, key, -1, &child);
  if (k1)
    bson_append_int32(&child, k1, -1, v1);
  if (two)
    bson_append_int32(&child, "b", -1, 1);
  bson_append_document_end(parent, &child);
}

static void build_list(vlist_t *l)
{
  bson_t c, c2;
  bson_oid_t oid;
  bson_decimal128_t dec;
  memset(l->rank, 0, sizeof l->rank);
  l->n = 0;
  l->r = 0;
  bson_init(&l->doc);
  bson_t *d = &l->doc;

  bson_append_minkey(d, K(l, false), -1);
  bson_append_null(d, K(l, false), -1);
  bson_append_undefined(d, K(l, true), -1);
  bson_append_double(d, K(l, false), -1, NAN);
  bson_append_double(d, K(l, true), -1, -NAN);
  bson_decimal128_from_string("NaN", &dec);
  bson_append_decimal128(d, K(l, true), -1, &dec);
  bson_append_double(d, K(l, false), -1, -INFINITY);
  bson_decimal128_from_string("-Infinity", &dec);
  bson_append_decimal128(d, K(l, true), -1, &dec);
  bson_append_double(d, K(l, false), -1, -1e300);
  bson_append_double(d, K(l, false), -1, -18446744073709551616.0); /* -2^64 */
  bson_append_double(d, K(l, false), -1, -9223372036854777856.0);  /* next below -2^63 */
  bson_append_double(d, K(l, false), -1, -9223372036854775808.0);  /* -2^63 */
  bson_append_int64(d, K(l, true), -1, INT64_MIN);
  bson_append_int64(d, K(l, false), -1, INT64_MIN + 1);
  bson_append_int64(d, K(l, false), -1, -9007199254740993); /* -2^53-1 */
  bson_append_double(d, K(l, false), -1, (double)-9007199254740993); /* rounds to -2^53 */
  bson_append_int64(d, K(l, true), -1, -9007199254740992);
  bson_append_double(d, K(l, false), -1, -4503599627370495.5); /* -(2^52 - 0.5) */
  bson_append_double(d, K(l, false), -1, -1.5);
  bson_append_int32(d, K(l, false), -1, -1);
  bson_append_int64(d, K(l, true), -1, -1);
  bson_append_double(d, K(l, true), -1, -1.0);
  bson_append_double(d, K(l, false), -1, -0.9999999999999999);
  bson_append_double(d, K(l, false), -1, -0.5);
  bson_append_double(d, K(l, false), -1, -1e-300);
  bson_append_double(d, K(l, false), -1, -5e-324);
  bson_append_int32(d, K(l, false), -1, 0);
  bson_append_int64(d, K(l, true), -1, 0);
  bson_append_double(d, K(l, true), -1, 0.0);
  bson_append_double(d, K(l, true), -1, -0.0);
  bson_decimal128_from_string("0", &dec);
  bson_append_decimal128(d, K(l, true), -1, &dec);
  bson_append_double(d, K(l, false), -1, 5e-324);
  bson_append_double(d, K(l, false), -1, 1e-300);
  bson_append_double(d, K(l, false), -1, 0.5);
  bson_append_double(d, K(l, false), -1, 0.9999999999999999);
  bson_append_int32(d, K(l, false), -1, 1);
  bson_append_double(d, K(l, true), -1, 1.0);
  bson_append_int64(d, K(l, true), -1, 1);
  bson_decimal128_from_string("1.0", &dec);
  bson_append_decimal128(d, K(l, true), -1, &dec);
  bson_append_double(d, K(l, false), -1, 1.5);
  bson_append_int32(d, K(l, false), -1, INT32_MAX);
  bson_append_double(d, K(l, false), -1, 2147483647.5);
  bson_append_int64(d, K(l, false), -1, 9007199254740992); /* 2^53 */
  bson_append_double(d, K(l, true), -1, 9007199254740992.0);
  bson_append_int64(d, K(l, false), -1, 9007199254740993);
  bson_append_int64(d, K(l, false), -1, 9007199254740994);
  bson_append_double(d, K(l, true), -1, 9007199254740994.0);
  bson_append_int64(d, K(l, false), -1, INT64_MAX - 1);
  bson_append_int64(d, K(l, false), -1, INT64_MAX);
  bson_append_double(d, K(l, false), -1, 9223372036854775808.0); /* 2^63 */
  bson_append_double(d, K(l, false), -1, 1e300);
  bson_append_double(d, K(l, false), -1, INFINITY);
  /* strings: raw bytes, then length */
  bson_append_utf8(d, K(l, false), -1, "", 0);
  bson_append_utf8(d, K(l, false), -1, "\0", 1);
  bson_append_utf8(d, K(l, false), -1, "\0\0", 2);
  bson_append_utf8(d, K(l, false), -1, "\0a", 2);
  bson_append_utf8(d, K(l, false), -1, "\x01", 1);
  bson_append_utf8(d, K(l, false), -1, "a", 1);
  bson_append_symbol(d, K(l, true), -1, "a", 1);
  bson_append_utf8(d, K(l, false), -1, "a\0", 2);
  bson_append_utf8(d, K(l, false), -1, "a\0b", 3);
  bson_append_utf8(d, K(l, false), -1, "a\x01", 2);
  bson_append_utf8(d, K(l, false), -1, "ab", 2);
  bson_append_utf8(d, K(l, false), -1, "b", 1);
  bson_append_utf8(d, K(l, false), -1, "\xc3\xa9", 2);
  /* documents: field by field, name then value; fewer fields first */
  sub_doc(d, K(l, false), NULL, 0, false); /* {} */
  bson_append_document_begin(d, K(l, false), -1, &c);
  bson_append_minkey(&c, "a", -1);
  bson_append_document_end(d, &c);
  bson_append_document_begin(d, K(l, false), -1, &c);
  bson_append_null(&c, "a", -1);
  bson_append_document_end(d, &c);
  sub_doc(d, K(l, false), "a", 1, false); /* {a: 1} */
  bson_append_document_begin(d, K(l, true), -1, &c);
  bson_append_double(&c, "a", -1, 1.0);
  bson_append_document_end(d, &c);
  sub_doc(d, K(l, false), "a", 1, true); /* {a: 1, b: 1} */
  sub_doc(d, K(l, false), "a", 2, false);
  bson_append_document_begin(d, K(l, false), -1, &c);
  bson_append_utf8(&c, "a", -1, "x", 1);
  bson_append_document_end(d, &c);
  bson_append_document_begin(d, K(l, false), -1, &c); /* {a: {}} */
  bson_append_document_begin(&c, "a", -1, &c2);
  bson_append_document_end(&c, &c2);
  bson_append_document_end(d, &c);
  sub_doc(d, K(l, false), "ab", 0, false);
  sub_doc(d, K(l, false), "b", 0, false);
  /* arrays: element by element, shorter prefix first */
  bson_append_array_begin(d, K(l, false), -1, &c);
  bson_append_array_end(d, &c);
  bson_append_array_begin(d, K(l, false), -1, &c);
  bson_append_null(&c, "0", -1);
  bson_append_array_end(d, &c);
  bson_append_array_begin(d, K(l, false), -1, &c);
  bson_append_int32(&c, "0", -1, 1);
  bson_append_array_end(d, &c);
  bson_append_array_begin(d, K(l, true), -1, &c);
  bson_append_double(&c, "0", -1, 1.0);
  bson_append_array_end(d, &c);
  bson_append_array_begin(d, K(l, false), -1, &c);
  bson_append_int32(&c, "0", -1, 1);
  bson_append_int32(&c, "1", -1, 2);
  bson_append_array_end(d, &c);
  bson_append_array_begin(d, K(l, false), -1, &c);
  bson_append_int32(&c, "0", -1, 2);
  bson_append_array_end(d, &c);
  bson_append_array_begin(d, K(l, false), -1, &c);
  bson_append_utf8(&c, "0", -1, "a", 1);
  bson_append_array_end(d, &c);
  bson_append_array_begin(d, K(l, false), -1, &c);
  bson_append_array_begin(&c, "0", -1, &c2);
  bson_append_array_end(&c, &c2);
  bson_append_array_end(d, &c);
  /* binary: length, then subtype, then bytes */
  bson_append_binary(d, K(l, false), -1, BSON_SUBTYPE_BINARY, (const uint8_t *)"", 0);
  bson_append_binary(d, K(l, false), -1, BSON_SUBTYPE_USER, (const uint8_t *)"", 0);
  bson_append_binary(d, K(l, false), -1, BSON_SUBTYPE_BINARY, (const uint8_t *)"\0", 1);
  bson_append_binary(d, K(l, false), -1, BSON_SUBTYPE_BINARY, (const uint8_t *)"b", 1);
  bson_append_binary(d, K(l, false), -1, BSON_SUBTYPE_FUNCTION, (const uint8_t *)"a", 1);
  bson_append_binary(d, K(l, false), -1, BSON_SUBTYPE_BINARY, (const uint8_t *)"aa", 2);
  bson_oid_init_from_data(&oid, oid0);
  bson_append_oid(d, K(l, false), -1, &oid);
  bson_oid_init_from_data(&oid, oid1);
  bson_append_oid(d, K(l, false), -1, &oid);
  bson_oid_init_from_data(&oid, oidf);
  bson_append_oid(d, K(l, false), -1, &oid);
  bson_append_bool(d, K(l, false), -1, false);
  bson_append_bool(d, K(l, false), -1, true);
  bson_append_date_time(d, K(l, false), -1, INT64_MIN);
  bson_append_date_time(d, K(l, false), -1, -1);
  bson_append_date_time(d, K(l, false), -1, 0);
  bson_append_date_time(d, K(l, false), -1, 1309492800000);
  bson_append_date_time(d, K(l, false), -1, INT64_MAX);
  bson_append_timestamp(d, K(l, false), -1, 0, 0);
  bson_append_timestamp(d, K(l, false), -1, 0, 1);
  bson_append_timestamp(d, K(l, false), -1, 1, 0);
  bson_append_timestamp(d, K(l, false), -1, UINT32_MAX, UINT32_MAX);
  bson_append_regex(d, K(l, false), -1, "", "");
  bson_append_regex(d, K(l, false), -1, "a", "");
  bson_append_regex(d, K(l, false), -1, "a", "i");
  bson_append_regex(d, K(l, false), -1, "a", "im");
  bson_append_regex(d, K(l, false), -1, "ab", "");
  bson_append_regex(d, K(l, false), -1, "b", "");
  /* other: by BSON type byte (DBPointer 0x0C, code 0x0D, code with scope 0x0F), bytes */
  bson_oid_init_from_data(&oid, oid1);
  bson_append_dbpointer(d, K(l, false), -1, "coll", &oid);
  bson_append_code(d, K(l, false), -1, "a");
  bson_append_code(d, K(l, false), -1, "b");
  bson_init(&c);
  bson_append_int32(&c, "x", -1, 1);
  bson_append_code_with_scope(d, K(l, false), -1, "f()", &c);
  bson_destroy(&c);
  bson_append_maxkey(d, K(l, false), -1);
}

/* All values of the list (views into l->doc). */
static int list_values(vlist_t *l, zql_val_t *v)
{
  bson_iter_t it;
  int n = 0;
  assert_true(bson_iter_init(&it, &l->doc));
  while (bson_iter_next(&it))
    zql_val_from_iter(&it, &v[n++]);
  assert_int_equal(n, l->n);
  return n;
}

static int sgn(int x)
{
  return (x > 0) - (x < 0);
}

static int cmp_enc(const zql_strbuf_t *a, const zql_strbuf_t *b)
{
  size_t n = a->len < b->len ? a->len : b->len;
  int c = memcmp(a->buf, b->buf, n);
  if (c)
    return sgn(c);
  return (a->len > b->len) - (a->len < b->len);
}

static void test_order(void **state)
{
  vlist_t l;
  zql_val_t v[MAXV];
  zql_strbuf_t enc[MAXV];
  build_list(&l);
  int n = list_values(&l, v);
  assert_true(n >= 100);
  for (int i = 0; i < n; i++) {
    zql_strbuf_init(&enc[i]);
    zql_val_encode(&enc[i], &v[i]);
    assert_false(enc[i].oom);
  }
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < n; j++) {
      int want = sgn(l.rank[i] - l.rank[j]);
      int got = zql_val_cmp(&v[i], &v[j]);
      if (sgn(got) != want || cmp_enc(&enc[i], &enc[j]) != want)
        fail_msg("values %d (rank %d) and %d (rank %d): cmp %d, encodings %d, want %d", i,
                 l.rank[i], j, l.rank[j], got, cmp_enc(&enc[i], &enc[j]), want);
      assert_int_equal(zql_val_hash(&v[i]) == zql_val_hash(&v[j]), want == 0);
    }
    assert_true(zql_val_hash(&v[i]) == zql_hash_bytes(enc[i].buf, enc[i].len));
  }
  /* concatenated encodings order pairs lexicographically (self-delimiting) */
  for (int i = 0; i < n; i += 3) {
    for (int j = 0; j < n; j += 5) {
      for (int i2 = 1; i2 < n; i2 += 7) {
        for (int j2 = 2; j2 < n; j2 += 11) {
          zql_strbuf_t a = ZQL_STRBUF_INIT, b = ZQL_STRBUF_INIT;
          zql_val_encode(&a, &v[i]);
          zql_val_encode(&a, &v[i2]);
          zql_val_encode(&b, &v[j]);
          zql_val_encode(&b, &v[j2]);
          int want = sgn(l.rank[i] - l.rank[j]);
          if (!want)
            want = sgn(l.rank[i2] - l.rank[j2]);
          assert_int_equal(cmp_enc(&a, &b), want);
          zql_strbuf_release(&a);
          zql_strbuf_release(&b);
        }
      }
    }
  }
  for (int i = 0; i < n; i++)
    zql_strbuf_release(&enc[i]);
  bson_destroy(&l.doc);
}

static void test_nonvalues(void **state)
{
  zql_val_t miss = zql_val_missing(), err = zql_val_error("boom"), nul = zql_val_null();
  zql_val_t mk = {ZQL_V_MINKEY, 0, 0, 0, {0}};
  /* MISSING and ERROR sort below MinKey, but encode (and hash) as null */
  assert_int_equal(zql_val_class(&miss), 0);
  assert_int_equal(zql_val_class(&err), 0);
  assert_int_equal(zql_val_cmp(&miss, &err), 0);
  assert_true(zql_val_cmp(&miss, &mk) < 0);
  assert_true(zql_val_cmp(&err, &nul) < 0);
  assert_true(zql_val_hash(&miss) == zql_val_hash(&nul));
  assert_true(zql_val_hash(&err) == zql_val_hash(&nul));
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_val_encode(&sb, &miss);
  zql_val_encode(&sb, &err);
  zql_val_encode(&sb, &nul);
  assert_int_equal(sb.len, 3);
  assert_memory_equal(sb.buf, "\x0a\x0a\x0a", 3);
  zql_strbuf_release(&sb);
}

/* The documented layout, byte for byte, for a few values. */
static void test_layout(void **state)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_val_t one = zql_val_int(1), half = zql_val_double(-0.5), s = zql_val_str("a\0b", 3);
  zql_val_encode(&sb, &one);
  assert_int_equal(sb.len, 17);
  assert_memory_equal(sb.buf,
                      "\x12\x80\x00\x00\x00\x00\x00\x00\x01\x80\x00\x00\x00\x00\x00\x00\x00",
                      17);
  zql_strbuf_reset(&sb);
  zql_val_encode(&sb, &half); /* trunc 0, fraction -0.5: bits bf e0.. inverted */
  assert_int_equal(sb.len, 17);
  assert_memory_equal(sb.buf,
                      "\x12\x80\x00\x00\x00\x00\x00\x00\x00\x40\x1f\xff\xff\xff\xff\xff\xff",
                      17);
  zql_strbuf_reset(&sb);
  zql_val_encode(&sb, &s);
  assert_int_equal(sb.len, 7);
  assert_memory_equal(sb.buf, "\x20" "a\x00\xff" "b\x00\x00", 7);
  zql_strbuf_release(&sb);
}

/* }==== */

/* {==== encode / decode =================================================================== */

static void test_decode(void **state)
{
  vlist_t l;
  zql_val_t v[MAXV];
  build_list(&l);
  int n = list_values(&l, v);
  zql_arena_t *arena = zql_arena_create(NULL);
  assert_non_null(arena);
  zql_strbuf_t all = ZQL_STRBUF_INIT;
  for (int i = 0; i < n; i++) {
    zql_strbuf_t e = ZQL_STRBUF_INIT, e2 = ZQL_STRBUF_INIT;
    zql_val_encode(&e, &v[i]);
    zql_val_encode(&all, &v[i]);
    const uint8_t *p = (const uint8_t *)e.buf, *end = p + e.len;
    zql_val_t d;
    assert_true(zql_val_decode(&p, end, arena, &d));
    assert_ptr_equal(p, end);
    assert_int_equal(zql_val_cmp(&d, &v[i]), 0);
    zql_val_encode(&e2, &d);
    assert_int_equal(e2.len, e.len);
    assert_memory_equal(e2.buf, e.buf, e.len);
    /* integral numbers come back as INT (no int32 flag), others keep their type */
    if (zql_val_is_num(&v[i])) {
      double x = zql_val_num(&v[i]);
      bool integral = v[i].t == ZQL_V_INT ||
                      (x == trunc(x) && x >= -9223372036854775808.0 && x < 9223372036854775808.0);
      assert_int_equal(d.t, integral ? ZQL_V_INT : ZQL_V_DOUBLE);
      assert_int_equal(d.flags, 0);
    } else if (v[i].t != ZQL_V_NULL) {
      assert_int_equal(d.t, v[i].t);
    }
    /* the check without building agrees */
    const uint8_t *q0 = (const uint8_t *)e.buf;
    assert_true(zql_val_skip(&q0, end));
    assert_ptr_equal(q0, end);
    /* every proper prefix is malformed */
    for (size_t cut = 0; cut < e.len; cut++) {
      const uint8_t *q = (const uint8_t *)e.buf;
      zql_val_t junk;
      assert_false(zql_val_decode(&q, q + cut, arena, &junk));
      q = (const uint8_t *)e.buf;
      assert_false(zql_val_skip(&q, q + cut));
    }
    zql_strbuf_release(&e);
    zql_strbuf_release(&e2);
  }
  /* a concatenation decodes value by value */
  const uint8_t *p = (const uint8_t *)all.buf, *end = p + all.len;
  for (int i = 0; i < n; i++) {
    zql_val_t d;
    assert_true(zql_val_decode(&p, end, arena, &d));
    assert_int_equal(zql_val_cmp(&d, &v[i]), 0);
  }
  assert_ptr_equal(p, end);
  /* decoded documents are valid BSON that libbson accepts */
  zql_strbuf_reset(&all);
  for (int i = 0; i < n; i++) {
    if (v[i].t != ZQL_V_DOC && v[i].t != ZQL_V_ARRAY)
      continue;
    zql_strbuf_t e = ZQL_STRBUF_INIT;
    zql_val_encode(&e, &v[i]);
    const uint8_t *q = (const uint8_t *)e.buf;
    zql_val_t d;
    bson_t b;
    size_t off = 0;
    assert_true(zql_val_decode(&q, q + e.len, arena, &d));
    assert_true(bson_init_static(&b, d.u.p, d.len));
    assert_true(bson_validate(&b, BSON_VALIDATE_NONE, &off));
    zql_strbuf_release(&e);
  }
  /* garbage is refused */
  static const uint8_t bad[][4] = {
      {0x00}, {0x01}, {0x7F}, {0x70, 0x02}, {0x20, 0x00, 0x01}, {0x30, 0x02}, {0x40, 0x01, 0x99},
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(bad); i++) {
    const uint8_t *q = bad[i];
    zql_val_t junk;
    assert_false(zql_val_decode(&q, q + 4, arena, &junk));
    q = bad[i];
    assert_false(zql_val_skip(&q, q + 4));
  }
  /* well-framed but invalid content: a NUL in a field name or a regex, a -0.0 or
   * out-of-range fraction, code whose length field lies, an unknown other type */
  static const struct {
    const char *bytes;
    size_t len;
  } inner[] = {
      {"\x30\x01" "a\x00\xff\x00\x00" "\x0a\x00", 9},
      {"\xa0" "a\x00\xff\x00\x00" "\x00\x00", 7},
      {"\x12\x80\0\0\0\0\0\0\x01" "\x7f\xff\xff\xff\xff\xff\xff\xff", 17},
      {"\x12\x80\0\0\0\0\0\0\x01" "\xbf\xf0\0\0\0\0\0\0", 17},
      {"\x12\x80\0\0\0\0\0\0\x01" "\x40\x1f\xff\xff\xff\xff\xff\xff", 17},
      {"\xb0\x0d\x09\x00\xff\x00\xff\x00\xff" "ab\x00\xff\x00\x00", 15},
      {"\xb0\x0e\x03\x00\xff\x00\xff\x00\xff" "ab\x00\xff\x00\x00", 15},
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(inner); i++) {
    const uint8_t *q = (const uint8_t *)inner[i].bytes, *qe = q + inner[i].len;
    zql_val_t junk;
    if (zql_val_skip(&q, qe))
      fail_msg("inner case %zu passed the check", i);
    q = (const uint8_t *)inner[i].bytes;
    assert_false(zql_val_decode(&q, qe, arena, &junk));
  }
  /* the same code value with a true length field is fine */
  static const uint8_t code[] = {0xb0, 0x0d, 0x03, 0x00, 0xff, 0x00, 0xff, 0x00, 0xff,
                                 'a', 'b', 0x00, 0xff, 0x00, 0x00};
  const uint8_t *cq = code;
  zql_val_t cv;
  assert_true(zql_val_skip(&cq, code + sizeof code));
  cq = code;
  assert_true(zql_val_decode(&cq, code + sizeof code, arena, &cv));
  assert_int_equal(cv.t, ZQL_V_OTHER);
  assert_string_equal(zql_val_type_name(&cv), "javascript");
  zql_strbuf_release(&all);
  zql_arena_delete(arena);
  bson_destroy(&l.doc);
}

/* Decoding into an arena under allocation failure: every failure is clean. */
static void test_decode_oom(void **state)
{
  bson_t *doc = BCON_NEW("a", "[", BCON_UTF8("xyz"), "{", "b", BCON_INT32(1), "}", "]", "c",
                         BCON_BIN(BSON_SUBTYPE_BINARY, (const uint8_t *)"q", 1));
  zql_val_t v = zql_val_doc(bson_get_data(doc), doc->len, false);
  zql_strbuf_t e = ZQL_STRBUF_INIT;
  zql_val_encode(&e, &v);
  const uint8_t *chk = (const uint8_t *)e.buf;
  zql_alloc_fail_after(0); /* the check allocates nothing */
  assert_true(zql_val_skip(&chk, chk + e.len));
  zql_alloc_fail_after(-1);
  for (long n = 0;; n++) {
    zql_arena_t *arena = zql_arena_create(NULL);
    if (!arena)
      continue;
    zql_alloc_fail_after(n);
    const uint8_t *p = (const uint8_t *)e.buf;
    zql_val_t d;
    bool ok = zql_val_decode(&p, p + e.len, arena, &d);
    zql_alloc_fail_after(-1);
    if (ok) {
      assert_int_equal(zql_val_cmp(&d, &v), 0);
      zql_arena_delete(arena);
      break;
    }
    zql_arena_delete(arena);
    assert_true(n < 1000);
  }
  zql_strbuf_release(&e);
  bson_destroy(doc);
}

/* Hashing: 1 == 1.0 == int32 1; long encodings go through the streaming state. */
static void test_hash(void **state)
{
  zql_val_t a = zql_val_int(1), b = zql_val_double(1.0), c = zql_val_int(1);
  c.flags = ZQL_VF_INT32;
  assert_true(zql_val_hash(&a) == zql_val_hash(&b));
  assert_true(zql_val_hash(&a) == zql_val_hash(&c));
  zql_val_t z = zql_val_double(-0.0), z2 = zql_val_int(0);
  assert_true(zql_val_hash(&z) == zql_val_hash(&z2));
  zql_val_t n1 = zql_val_double(NAN), n2 = zql_val_double(-NAN);
  assert_true(zql_val_hash(&n1) == zql_val_hash(&n2));
  assert_true(zql_val_hash(&a) != zql_val_hash(&z2));
  /* strings around the 256-byte chunk, with NULs (escaped to two bytes) */
  char buf[2000];
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (char)(i % 7 == 0 ? 0 : 'a' + i % 26);
  for (uint32_t len = 0; len < sizeof buf - 1; len += 37) {
    char *s = zql_malloc(len + 1);
    assert_non_null(s);
    memcpy(s, buf, len);
    s[len] = 0;
    zql_val_t v = zql_val_str(s, len);
    zql_strbuf_t e = ZQL_STRBUF_INIT;
    zql_val_encode(&e, &v);
    assert_true(zql_val_hash(&v) == zql_hash_bytes(e.buf, e.len));
    zql_strbuf_release(&e);
    zql_free(s);
  }
  /* the hash is part of persisted formats: pin one value */
  zql_strbuf_t e = ZQL_STRBUF_INIT;
  zql_val_encode(&e, &a);
  assert_true(zql_val_hash(&a) == zql_hash_bytes(e.buf, e.len));
  zql_strbuf_release(&e);
}

/* }==== */

/* {==== BSON in and out, copy ============================================================= */

static void test_bson_roundtrip(void **state)
{
  vlist_t l;
  build_list(&l);
  bson_t out = BSON_INITIALIZER;
  bson_t expect = BSON_INITIALIZER;
  bson_iter_t it;
  int lossy = 0;
  zql_strbuf_t sb = ZQL_STRBUF_INIT; /* the same document through the strbuf builder */
  size_t top = zql_bson_begin(&sb);
  assert_true(bson_iter_init(&it, &l.doc));
  while (bson_iter_next(&it)) {
    zql_val_t v;
    bson_type_t t = bson_iter_type(&it);
    if (zql_val_from_iter(&it, &v))
      lossy++;
    assert_true(zql_val_append_bson(&out, bson_iter_key(&it), -1, &v));
    zql_bson_append(&sb, bson_iter_key(&it), bson_iter_key_len(&it), &v);
    /* what should come back: decimal128 -> double, symbol -> string, undefined -> null */
    if (t == BSON_TYPE_DECIMAL128) {
      assert_int_equal(v.t, ZQL_V_DOUBLE);
      bson_append_double(&expect, bson_iter_key(&it), -1, v.u.d);
    } else if (t == BSON_TYPE_SYMBOL) {
      assert_int_equal(v.t, ZQL_V_STRING);
      bson_append_utf8(&expect, bson_iter_key(&it), -1, v.u.s, (int)v.len);
    } else if (t == BSON_TYPE_UNDEFINED) {
      assert_int_equal(v.t, ZQL_V_NULL);
      bson_append_null(&expect, bson_iter_key(&it), -1);
    } else {
      assert_true(bson_append_iter(&expect, NULL, 0, &it));
    }
    if (t == BSON_TYPE_INT32)
      assert_int_equal(v.flags, ZQL_VF_INT32);
    if (t == BSON_TYPE_INT64)
      assert_int_equal(v.flags, 0);
  }
  assert_int_equal(lossy, 4);
  assert_int_equal(out.len, expect.len);
  assert_memory_equal(bson_get_data(&out), bson_get_data(&expect), out.len);
  zql_bson_end(&sb, top);
  assert_false(sb.oom);
  assert_int_equal(sb.len, out.len);
  assert_memory_equal(sb.buf, bson_get_data(&out), out.len);
  zql_strbuf_release(&sb);
  /* MISSING appends nothing, ERROR appends null */
  bson_t m = BSON_INITIALIZER;
  zql_val_t miss = zql_val_missing(), err = zql_val_error("x");
  assert_true(zql_val_append_bson(&m, "a", -1, &miss));
  assert_int_equal(bson_count_keys(&m), 0);
  assert_true(zql_val_append_bson(&m, "b", 1, &err));
  assert_true(bson_iter_init_find(&it, &m, "b"));
  assert_int_equal(bson_iter_type(&it), BSON_TYPE_NULL);
  bson_destroy(&m);
  bson_destroy(&out);
  bson_destroy(&expect);
  bson_destroy(&l.doc);
}

/* Nested documents with the strbuf builder; out-of-memory is sticky, never a crash. */
static void test_builder(void **state)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_val_t one = zql_val_int(1), s = zql_val_str("x", 1), miss = zql_val_missing();
  zql_val_t err = zql_val_error("e"), i32 = zql_val_int(-5), big = zql_val_int(INT64_MAX);
  i32.flags = ZQL_VF_INT32;
  big.flags = ZQL_VF_INT32; /* does not fit: written as int64 */
  zql_strbuf_addc(&sb, '#'); /* a document need not start at offset 0 */
  size_t d = zql_bson_begin(&sb);
  zql_bson_append(&sb, "a", 1, &one);
  size_t arr = zql_bson_begin_sub(&sb, "b", 1, true);
  zql_bson_append(&sb, "0", 1, &s);
  zql_bson_append(&sb, "1", 1, &i32);
  size_t sub = zql_bson_begin_sub(&sb, "2", 1, false);
  zql_bson_append(&sb, "m", 1, &miss);
  zql_bson_append(&sb, "e", 1, &err);
  zql_bson_end(&sb, sub);
  zql_bson_end(&sb, arr);
  zql_bson_append(&sb, "c", 1, &big);
  zql_bson_end(&sb, d);
  assert_false(sb.oom);
  bson_t *want = BCON_NEW("a", BCON_INT64(1), "b", "[", BCON_UTF8("x"), BCON_INT32(-5), "{",
                          "e", BCON_NULL, "}", "]", "c", BCON_INT64(INT64_MAX));
  assert_int_equal(sb.len - d, want->len);
  assert_memory_equal(sb.buf + d, bson_get_data(want), want->len);
  bson_destroy(want);
  zql_strbuf_release(&sb);
  for (long n = 0; n < 3; n++) {
    zql_alloc_fail_after(n);
    d = zql_bson_begin(&sb);
    for (int i = 0; i < 100; i++)
      zql_bson_append(&sb, "key", 3, &s);
    zql_bson_end(&sb, d);
    zql_alloc_fail_after(-1);
    assert_true(sb.oom);
    zql_strbuf_release(&sb);
  }
}

static void test_from_iter_types(void **state)
{
  bson_decimal128_t dec;
  bson_decimal128_from_string("1.5E+3", &dec);
  bson_t *doc = BCON_NEW("i", BCON_INT32(-7), "l", BCON_INT64(INT64_MIN), "d",
                         BCON_DECIMAL128(&dec), "s", BCON_SYMBOL("sym"), "c", BCON_CODE("x+1"),
                         "t", BCON_TIMESTAMP(5, 6));
  bson_iter_t it;
  zql_val_t v;
  assert_true(bson_iter_init_find(&it, doc, "i"));
  assert_false(zql_val_from_iter(&it, &v));
  assert_int_equal(v.t, ZQL_V_INT);
  assert_int_equal(v.u.i, -7);
  assert_string_equal(zql_val_type_name(&v), "int");
  assert_true(bson_iter_init_find(&it, doc, "l"));
  zql_val_from_iter(&it, &v);
  assert_true(v.u.i == INT64_MIN);
  assert_string_equal(zql_val_type_name(&v), "long");
  assert_true(bson_iter_init_find(&it, doc, "d"));
  assert_true(zql_val_from_iter(&it, &v));
  assert_int_equal(v.t, ZQL_V_DOUBLE);
  assert_true(v.u.d == 1500.0);
  assert_true(bson_iter_init_find(&it, doc, "s"));
  zql_val_from_iter(&it, &v);
  assert_int_equal(v.t, ZQL_V_STRING);
  assert_int_equal(v.len, 3);
  assert_string_equal(v.u.s, "sym");
  assert_true(bson_iter_init_find(&it, doc, "c"));
  zql_val_from_iter(&it, &v);
  assert_int_equal(v.t, ZQL_V_OTHER);
  assert_int_equal(v.flags, BSON_TYPE_CODE);
  assert_int_equal(v.len, 4 + 3 + 1);
  assert_string_equal(zql_val_type_name(&v), "javascript");
  assert_true(bson_iter_init_find(&it, doc, "t"));
  zql_val_from_iter(&it, &v);
  assert_int_equal(v.t, ZQL_V_TIMESTAMP);
  assert_int_equal(v.u.ts.t, 5);
  assert_int_equal(v.u.ts.i, 6);
  bson_destroy(doc);

  static const struct {
    zql_vtype_t t;
    const char *name;
  } names[] = {
      {ZQL_V_MISSING, "missing"}, {ZQL_V_ERROR, "error"},    {ZQL_V_NULL, "null"},
      {ZQL_V_BOOL, "bool"},       {ZQL_V_INT, "long"},       {ZQL_V_DOUBLE, "double"},
      {ZQL_V_STRING, "string"},   {ZQL_V_DATE, "date"},      {ZQL_V_DOC, "object"},
      {ZQL_V_ARRAY, "array"},     {ZQL_V_OID, "objectId"},   {ZQL_V_BINARY, "binData"},
      {ZQL_V_TIMESTAMP, "timestamp"}, {ZQL_V_REGEX, "regex"}, {ZQL_V_MINKEY, "minKey"},
      {ZQL_V_MAXKEY, "maxKey"},
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(names); i++) {
    zql_val_t x = {(uint8_t)names[i].t, 0, 0, 0, {0}};
    assert_string_equal(zql_val_type_name(&x), names[i].name);
  }
}

static void test_copy(void **state)
{
  vlist_t l;
  zql_val_t v[MAXV], c[MAXV];
  build_list(&l);
  int n = list_values(&l, v);
  zql_arena_t *arena = zql_arena_create(NULL);
  assert_non_null(arena);
  zql_strbuf_t before = ZQL_STRBUF_INIT, after = ZQL_STRBUF_INIT;
  for (int i = 0; i < n; i++) {
    zql_val_encode(&before, &v[i]);
    assert_true(zql_val_copy(arena, &v[i], &c[i]));
    assert_int_equal(c[i].t, v[i].t);
    assert_int_equal(c[i].flags, v[i].flags);
    assert_int_equal(c[i].len, v[i].len);
  }
  /* the original bytes are gone; the copies still hold the same values */
  bson_destroy(&l.doc);
  for (int i = 0; i < n; i++) {
    zql_val_encode(&after, &c[i]);
    if (c[i].t == ZQL_V_STRING)
      assert_int_equal(c[i].u.s[c[i].len], '\0');
  }
  assert_int_equal(before.len, after.len);
  assert_memory_equal(before.buf, after.buf, before.len);
  /* scalars need no arena; pointers do */
  zql_val_t i7 = zql_val_int(7), out, s = zql_val_str("x", 1);
  assert_true(zql_val_copy(NULL, &i7, &out));
  assert_int_equal(out.u.i, 7);
  assert_false(zql_val_copy(NULL, &s, &out));
  zql_strbuf_release(&before);
  zql_strbuf_release(&after);
  zql_arena_delete(arena);
}

/* }==== */

/* {==== three-valued operators =========================================================== */

static void test_eq3_cmp3(void **state)
{
  zql_val_t one = zql_val_int(1), onef = zql_val_double(1.0), two = zql_val_double(2.0);
  zql_val_t s = zql_val_str("1", 1), t = zql_val_bool(true), nul = zql_val_null();
  zql_val_t miss = zql_val_missing(), err = zql_val_error("e"), nan = zql_val_double(NAN);
  const zql_val_t *nullish[] = {&nul, &miss, &err};
  const zql_val_t *vals[] = {&one, &onef, &two, &s, &t, &nul, &miss, &err};
  int c = 99;
  /* any NULL/MISSING/ERROR operand: NULL */
  for (size_t i = 0; i < ZQL_ARRAY_LEN(nullish); i++) {
    for (size_t j = 0; j < ZQL_ARRAY_LEN(vals); j++) {
      assert_int_equal(zql_val_eq3(nullish[i], vals[j]), -1);
      assert_int_equal(zql_val_eq3(vals[j], nullish[i]), -1);
      assert_int_equal(zql_val_cmp3(nullish[i], vals[j], &c), -1);
      assert_int_equal(zql_val_cmp3(vals[j], nullish[i], &c), -1);
    }
  }
  assert_int_equal(c, 99); /* untouched */
  /* equality by value across numeric types; across classes FALSE */
  assert_int_equal(zql_val_eq3(&one, &onef), 1);
  assert_int_equal(zql_val_eq3(&one, &two), 0);
  assert_int_equal(zql_val_eq3(&one, &s), 0);
  assert_int_equal(zql_val_eq3(&one, &t), 0);
  assert_int_equal(zql_val_eq3(&s, &s), 1);
  assert_int_equal(zql_val_eq3(&nan, &nan), 1); /* NaN equals NaN (keys, Mongo) */
  /* ordering: same class gives the sign, different classes NULL */
  assert_int_equal(zql_val_cmp3(&one, &two, &c), 0);
  assert_int_equal(c, -1);
  assert_int_equal(zql_val_cmp3(&two, &one, &c), 0);
  assert_int_equal(c, 1);
  assert_int_equal(zql_val_cmp3(&one, &onef, &c), 0);
  assert_int_equal(c, 0);
  assert_int_equal(zql_val_cmp3(&one, &s, &c), -1);
  assert_int_equal(zql_val_cmp3(&t, &one, &c), -1);
  zql_val_t big = zql_val_int(INT64_MAX), bigf = zql_val_double(9223372036854775808.0);
  assert_int_equal(zql_val_cmp3(&big, &bigf, &c), 0);
  assert_int_equal(c, -1);
  zql_val_t p53 = zql_val_int(9007199254740993), f53 = zql_val_double(9007199254740992.0);
  assert_int_equal(zql_val_eq3(&p53, &f53), 0); /* no rounding of the int64 */
  assert_int_equal(zql_val_cmp3(&p53, &f53, &c), 0);
  assert_int_equal(c, 1);
}

/* }==== */

/* {==== text ============================================================================= */

static void assert_json(const zql_val_t *v, const char *want)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_val_to_json(&sb, v);
  assert_string_equal(sb.buf, want);
  zql_strbuf_release(&sb);
}

static void assert_double_text(double d, bool keep, const char *want)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_double_to_text(&sb, d, keep);
  assert_string_equal(sb.buf, want);
  zql_strbuf_release(&sb);
}

static void assert_date(int64_t ms, const char *want)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_date_to_text(&sb, ms);
  assert_string_equal(sb.buf, want);
  zql_strbuf_release(&sb);
}

static void test_double_text(void **state)
{
  assert_double_text(0.1, false, "0.1");
  assert_double_text(0.1 + 0.2, false, "0.30000000000000004");
  assert_double_text(1.0 / 3, false, "0.3333333333333333");
  assert_double_text(3.0, false, "3");
  assert_double_text(3.0, true, "3.0");
  assert_double_text(-0.0, true, "-0.0");
  assert_double_text(1e300, true, "1e+300");
  assert_double_text(1e21, true, "1e+21");
  assert_double_text(1e15, true, "1e+15");
  assert_double_text(123456789012345.0, true, "123456789012345.0");
  assert_double_text(1.2345678901234568e+20, false, "1.2345678901234568e+20");
  assert_double_text(1.234567890123457e+20, false, "1.234567890123457e+20");
  assert_double_text(-2.5e-7, false, "-2.5e-07");
  assert_double_text(NAN, false, "NaN");
  assert_double_text(-INFINITY, false, "-Infinity");
  /* every output parses back to the same double */
  uint64_t x = 0x9E3779B97F4A7C15u;
  for (int i = 0; i < 20000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    double d;
    memcpy(&d, &x, 8);
    if (!isfinite(d))
      continue;
    zql_strbuf_t sb = ZQL_STRBUF_INIT;
    zql_double_to_text(&sb, d, true);
    double back = strtod(sb.buf, NULL);
    assert_memory_equal(&back, &d, 8);
    zql_strbuf_release(&sb);
  }
}

static void test_dates(void **state)
{
  assert_date(0, "1970-01-01T00:00:00.000Z");
  assert_date(1309492800000, "2011-07-01T04:00:00.000Z");
  assert_date(-1, "1969-12-31T23:59:59.999Z");
  assert_date(951782400000, "2000-02-29T00:00:00.000Z");
  assert_date(4107542399999, "2100-02-28T23:59:59.999Z");
  assert_date(4107542400000, "2100-03-01T00:00:00.000Z");
  assert_date(253402300799999, "9999-12-31T23:59:59.999Z");
  assert_date(253402300800000, "+010000-01-01T00:00:00.000Z");
  assert_date(-62167219200000, "0000-01-01T00:00:00.000Z");
  assert_date(-62167219200001, "-000001-12-31T23:59:59.999Z");
  assert_date(INT64_MAX, "+292278994-08-17T07:12:55.807Z");
  assert_date(INT64_MIN, "-292275055-05-16T16:47:04.192Z");
}

static void test_json(void **state)
{
  bson_t *doc = BCON_NEW("i", BCON_INT32(1), "l", BCON_INT64(-9007199254740993), "d",
                         BCON_DOUBLE(1.0), "e", BCON_DOUBLE(2.5e-300), "s",
                         BCON_UTF8("q\"\\\n\t\x01/\xc3\xa9"), "a", "[", BCON_BOOL(true),
                         BCON_NULL, BCON_UNDEFINED, "]", "t", BCON_DATE_TIME(1309492800000),
                         "x", BCON_BIN(0, (const uint8_t *)"hi!", 3),
                         "y", BCON_BIN(0, (const uint8_t *)"h", 1), "ts", BCON_TIMESTAMP(7, 8),
                         "r", BCON_REGEX("a/b", "i"), "mn", BCON_MINKEY, "mx", BCON_MAXKEY,
                         "n", BCON_DOUBLE(NAN), "inf", BCON_DOUBLE(-INFINITY), "o", "{", "}",
                         "c", BCON_CODE("f"));
  bson_oid_t oid;
  bson_oid_init_from_string(&oid, "4e0d6b2f1a2b3c4d5e6f7a8b");
  BSON_APPEND_OID(doc, "id", &oid);
  bson_append_utf8(doc, "bad", -1, "a\xff\xc3(b\0c", 7);
  bson_append_dbpointer(doc, "p", -1, "db.c", &oid);
  bson_t scope;
  bson_init(&scope);
  bson_append_int32(&scope, "k", -1, 2);
  bson_append_code_with_scope(doc, "cs", -1, "g", &scope);
  bson_destroy(&scope);
  zql_val_t v = zql_val_doc(bson_get_data(doc), doc->len, false);
  assert_json(&v, "{\"i\":1,\"l\":-9007199254740993,\"d\":1.0,\"e\":2.5e-300,"
                  "\"s\":\"q\\\"\\\\\\n\\t\\u0001/\xc3\xa9\",\"a\":[true,null,null],"
                  "\"t\":\"2011-07-01T04:00:00.000Z\",\"x\":\"aGkh\",\"y\":\"aA==\","
                  "\"ts\":{\"t\":7,\"i\":8},\"r\":\"/a/b/i\",\"mn\":{\"$minKey\":1},"
                  "\"mx\":{\"$maxKey\":1},\"n\":null,\"inf\":null,\"o\":{},"
                  "\"c\":{\"$code\":\"f\"},\"id\":\"4e0d6b2f1a2b3c4d5e6f7a8b\","
                  "\"bad\":\"a\\ufffd\\ufffd(b\\u0000c\","
                  "\"p\":{\"$dbPointer\":{\"$ref\":\"db.c\",\"$id\":{\"$oid\":"
                  "\"4e0d6b2f1a2b3c4d5e6f7a8b\"}}},\"cs\":{\"$code\":\"g\",\"$scope\":{\"k\":2}}}");
  zql_val_t miss = zql_val_missing(), err = zql_val_error("e");
  assert_json(&miss, "null");
  assert_json(&err, "null");
  /* text: a top-level string is raw, everything else JSON */
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_val_t s = zql_val_str("a \"b\"", 5), d = zql_val_double(2.0), dt = zql_val_date(0);
  zql_val_to_text(&sb, &s);
  zql_strbuf_addc(&sb, '|');
  zql_val_to_text(&sb, &d);
  zql_strbuf_addc(&sb, '|');
  zql_val_to_text(&sb, &dt);
  assert_string_equal(sb.buf, "a \"b\"|2.0|\"1970-01-01T00:00:00.000Z\"");
  zql_strbuf_release(&sb);
  bson_destroy(doc);
}

/* }==== */

int zql_unit_value(void)
{
  const struct CMUnitTest tests[] = {
      ZQL_UNIT_TEST(test_order),       ZQL_UNIT_TEST(test_nonvalues),
      ZQL_UNIT_TEST(test_layout),      ZQL_UNIT_TEST(test_decode),
      ZQL_UNIT_TEST(test_decode_oom),  ZQL_UNIT_TEST(test_hash),
      ZQL_UNIT_TEST(test_bson_roundtrip), ZQL_UNIT_TEST(test_builder),
      ZQL_UNIT_TEST(test_from_iter_types),
      ZQL_UNIT_TEST(test_copy),        ZQL_UNIT_TEST(test_eq3_cmp3),
      ZQL_UNIT_TEST(test_double_text), ZQL_UNIT_TEST(test_dates),
      ZQL_UNIT_TEST(test_json),
  };
  return cmocka_run_group_tests_name("value", tests, NULL, NULL);
}
