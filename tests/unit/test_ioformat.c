/*
 * test_ioformat.c -- unit tests of the import/export format layer (runtime/ioformat.c).
 *
 * Round trips (BSON -> BSON byte-identical, BSON -> canonical NDJSON -> BSON
 * byte-identical, relaxed NDJSON equal in value, gzip of each, multi-member gzip, files
 * and memory), format detection (including a BSON document whose first byte is '{'),
 * invalid records with their line or offset and recovery after them, a BSON document
 * truncated at the end of input, a length that cannot be trusted, a truncated gzip
 * stream, Zarkov's {"$datetime": seconds}, canonical and relaxed extended JSON input,
 * empty input, records larger than the read buffer, and writer errors.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <bson/bson.h>
#include <unistd.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/gen.h"
#include "runtime/ioformat.h"

/* Write `n` generated events (seed 3) into `out` in format `fmt`. */
static void gen_into(zql_strbuf_t *out, zql_iofmt_t fmt, bool gz, uint64_t n)
{
  zql_iowriter_opts_t wo = {fmt, gz, 0};
  zql_iowriter_t *w;
  assert_int_equal(zql_iowriter_open_mem(out, &wo, &w, NULL), 0);
  zql_gen_opts_t o;
  zql_gen_opts_init(&o);
  o.events = n;
  o.seed = 3;
  zql_gen_t *g;
  assert_int_equal(zql_gen_new(&o, &g, NULL), 0);
  const bson_t *doc;
  while (zql_gen_next(g, &doc) == 1)
    assert_int_equal(zql_iowriter_write(w, doc, NULL), 0);
  zql_gen_free(g);
  assert_int_equal(zql_iowriter_close(w, NULL), 0);
}

/* Read everything from memory and re-write it in `fmt`; returns the record count. */
static int convert(const zql_strbuf_t *in, zql_iofmt_t fmt, bool gz, zql_strbuf_t *out)
{
  zql_ioreader_t *r;
  assert_int_equal(zql_ioreader_open_mem(in->buf, in->len, "mem", NULL, &r, NULL), 0);
  zql_iowriter_opts_t wo = {fmt, gz, 0};
  zql_iowriter_t *w;
  assert_int_equal(zql_iowriter_open_mem(out, &wo, &w, NULL), 0);
  const bson_t *doc;
  int n = 0, rc;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  while ((rc = zql_ioreader_next(r, &doc, NULL, &err)) == 1) {
    assert_int_equal(zql_iowriter_write(w, doc, NULL), 0);
    n++;
  }
  if (rc != 0)
    fail_msg("unexpected error %d: %s", rc, err.buf);
  zql_strbuf_release(&err);
  zql_ioreader_close(r);
  assert_int_equal(zql_iowriter_close(w, NULL), 0);
  return n;
}

static void assert_same(const zql_strbuf_t *a, const zql_strbuf_t *b)
{
  assert_int_equal(a->len, b->len);
  assert_memory_equal(a->buf, b->buf, a->len);
}

static void test_bson_roundtrip(void **state)
{
  zql_strbuf_t bson = ZQL_STRBUF_INIT, again = ZQL_STRBUF_INIT, canon = ZQL_STRBUF_INIT,
               back = ZQL_STRBUF_INIT;
  gen_into(&bson, ZQL_IOFMT_BSON, false, 2000);
  assert_int_equal(convert(&bson, ZQL_IOFMT_BSON, false, &again), 2000);
  assert_same(&bson, &again);
  /* canonical extended JSON keeps every type: back to the same bytes */
  assert_int_equal(convert(&bson, ZQL_IOFMT_NDJSON_CANONICAL, false, &canon), 2000);
  assert_non_null(strstr(canon.buf, "{ \"$numberLong\" : \""));
  assert_int_equal(convert(&canon, ZQL_IOFMT_BSON, false, &back), 2000);
  assert_same(&bson, &back);
  zql_strbuf_release(&again);
  zql_strbuf_release(&canon);
  zql_strbuf_release(&back);
  zql_strbuf_release(&bson);
}

/* Relaxed JSON: same values (an int64 that fits comes back as int32, so compare JSON). */
static void test_relaxed_roundtrip(void **state)
{
  zql_strbuf_t bson = ZQL_STRBUF_INIT, json = ZQL_STRBUF_INIT, back = ZQL_STRBUF_INIT,
               json2 = ZQL_STRBUF_INIT;
  gen_into(&bson, ZQL_IOFMT_BSON, false, 1000);
  assert_int_equal(convert(&bson, ZQL_IOFMT_NDJSON, false, &json), 1000);
  assert_non_null(strstr(json.buf, "{ \"$date\" : \"2024-01-0"));
  assert_int_equal(convert(&json, ZQL_IOFMT_BSON, false, &back), 1000);
  assert_int_equal(convert(&back, ZQL_IOFMT_NDJSON, false, &json2), 1000);
  assert_same(&json, &json2);
  size_t lines = 0;
  for (size_t k = 0; k < json.len; k++)
    lines += json.buf[k] == '\n';
  assert_int_equal(lines, 1000);
  zql_strbuf_release(&bson);
  zql_strbuf_release(&json);
  zql_strbuf_release(&back);
  zql_strbuf_release(&json2);
}

static void test_gzip(void **state)
{
  zql_strbuf_t bson = ZQL_STRBUF_INIT, gz = ZQL_STRBUF_INIT, plain = ZQL_STRBUF_INIT;
  gen_into(&bson, ZQL_IOFMT_BSON, false, 3000);
  for (int f = 0; f < 2; f++) {
    zql_iofmt_t fmt = f ? ZQL_IOFMT_NDJSON_CANONICAL : ZQL_IOFMT_BSON; /* byte-exact */
    zql_strbuf_reset(&gz);
    zql_strbuf_reset(&plain);
    assert_int_equal(convert(&bson, fmt, true, &gz), 3000);
    assert_true((uint8_t)gz.buf[0] == 0x1f && (uint8_t)gz.buf[1] == 0x8b);
    assert_true(gz.len < bson.len / 3);
    /* detection goes through gzip, then recognises the format inside */
    zql_ioreader_t *r;
    assert_int_equal(zql_ioreader_open_mem(gz.buf, gz.len, "x.gz", NULL, &r, NULL), 0);
    const bson_t *doc;
    assert_int_equal(zql_ioreader_next(r, &doc, NULL, NULL), 1);
    assert_true(zql_ioreader_gzip(r));
    assert_int_equal(zql_ioreader_format(r), fmt == ZQL_IOFMT_BSON ? ZQL_IOFMT_BSON
                                                                   : ZQL_IOFMT_NDJSON);
    zql_ioreader_close(r);
    assert_int_equal(convert(&gz, ZQL_IOFMT_BSON, false, &plain), 3000);
    assert_same(&bson, &plain);
  }
  /* two gzip members back to back (cat a.gz b.gz) read as one stream */
  zql_strbuf_t two = ZQL_STRBUF_INIT;
  zql_strbuf_reset(&gz);
  assert_int_equal(convert(&bson, ZQL_IOFMT_BSON, true, &gz), 3000);
  zql_strbuf_add(&two, gz.buf, gz.len);
  zql_strbuf_add(&two, gz.buf, gz.len);
  zql_strbuf_reset(&plain);
  assert_int_equal(convert(&two, ZQL_IOFMT_BSON, false, &plain), 6000);
  assert_memory_equal(plain.buf + bson.len, bson.buf, bson.len);
  /* a truncated gzip stream: the complete records, then one error, then the end */
  zql_ioreader_t *r;
  assert_int_equal(zql_ioreader_open_mem(gz.buf, gz.len / 2, "cut.gz", NULL, &r, NULL), 0);
  const bson_t *doc;
  int n = 0, rc;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  while ((rc = zql_ioreader_next(r, &doc, NULL, &err)) == 1)
    n++;
  assert_true(n > 100 && n < 3000);
  assert_int_equal(rc, ZQL_E_BAD_RECORD);
  assert_non_null(strstr(err.buf, "cut.gz: offset "));
  assert_int_equal(zql_ioreader_next(r, &doc, NULL, NULL), 0);
  zql_ioreader_close(r);
  zql_strbuf_release(&err);
  zql_strbuf_release(&two);
  zql_strbuf_release(&bson);
  zql_strbuf_release(&gz);
  zql_strbuf_release(&plain);
}

/* {==== invalid records ====================================================== */

typedef struct {
  int rc;
  uint64_t line, offset;
  const char *msg; /* substring of the error message */
} expect_t;

static void expect_records(const void *data, size_t len, const zql_ioreader_opts_t *opts,
                           const expect_t *want, size_t n)
{
  zql_ioreader_t *r;
  assert_int_equal(zql_ioreader_open_mem(data, len, "in", opts, &r, NULL), 0);
  for (size_t k = 0; k <= n; k++) {
    const bson_t *doc;
    zql_iowhere_t where;
    zql_strbuf_t err = ZQL_STRBUF_INIT;
    int rc = zql_ioreader_next(r, &doc, &where, &err);
    int want_rc = k < n ? want[k].rc : 0;
    if (rc != want_rc)
      fail_msg("record %zu: got %d (%s), want %d", k, rc, err.buf, want_rc);
    if (k < n && rc != 0) {
      assert_string_equal(where.name, "in");
      if (where.line != want[k].line || where.offset != want[k].offset)
        fail_msg("record %zu: at line %" PRIu64 " offset %" PRIu64 ", want %" PRIu64
                 " / %" PRIu64, k, where.line, where.offset, want[k].line, want[k].offset);
      assert_true((rc == 1) == (doc != NULL));
      if (want[k].msg && !strstr(err.buf, want[k].msg))
        fail_msg("record %zu: message '%s' lacks '%s'", k, err.buf, want[k].msg);
    }
    zql_strbuf_release(&err);
  }
  zql_ioreader_close(r);
}

static void test_json_invalid(void **state)
{
  static const char in[] = "{\"a\": 1}\n"            /* line 1, offset 0 */
                           "\n"                      /* 2: blank */
                           "not json\n"              /* 3, offset 10 */
                           "{\"b\":\n"               /* 4, offset 19: incomplete */
                           "[1, 2]\n"                /* 5, offset 25 */
                           "  \t\r\n"                /* 6: blank */
                           "{\"c\": \"\\u00e9\"}\r\n" /* 7, offset 37: CRLF */
                           "{\"d\": 4}";             /* 8, offset 54: no final newline */
  const expect_t want[] = {
      {1, 1, 0, NULL},
      {ZQL_E_BAD_RECORD, 3, 10, "in:3: "},
      {ZQL_E_BAD_RECORD, 4, 19, "in:4: invalid JSON"},
      {ZQL_E_BAD_RECORD, 5, 25, "in:5: a JSON array"},
      {1, 7, 37, NULL},
      {1, 8, 54, NULL},
  };
  expect_records(in, sizeof in - 1, NULL, want, ZQL_ARRAY_LEN(want));
}

static void test_bson_invalid(void **state)
{
  bson_t *a = BCON_NEW("a", BCON_INT32(1));
  bson_t *c = BCON_NEW("c", BCON_UTF8("three"));
  zql_strbuf_t in = ZQL_STRBUF_INIT;
  zql_strbuf_add(&in, bson_get_data(a), a->len);
  /* record 2: the string's length runs past the document */
  uint8_t bad[] = {17, 0, 0, 0, 0x02, 's', 0, 100, 0, 0, 0, 'h', 'i', 0, 0, 0, 0};
  zql_strbuf_add(&in, bad, sizeof bad);
  /* record 3: invalid UTF-8 in a string */
  bson_t *u = BCON_NEW("u", BCON_UTF8("ok"));
  zql_strbuf_t ubuf = ZQL_STRBUF_INIT;
  zql_strbuf_add(&ubuf, bson_get_data(u), u->len);
  ubuf.buf[u->len - 3] = (char)0xff;
  zql_strbuf_add(&in, ubuf.buf, ubuf.len);
  zql_strbuf_add(&in, bson_get_data(c), c->len);
  /* record 5: truncated at the end of input */
  zql_strbuf_add(&in, bson_get_data(c), 9);
  uint64_t o2 = a->len, o3 = o2 + sizeof bad, o4 = o3 + u->len, o5 = o4 + c->len;
  char m5[64];
  snprintf(m5, sizeof m5, "in: offset %" PRIu64 ": truncated BSON", o5);
  const expect_t want[] = {
      {1, 0, 0, NULL},
      {ZQL_E_BAD_RECORD, 0, o2, "invalid BSON document"},
      {ZQL_E_BAD_RECORD, 0, o3, "invalid BSON document"},
      {1, 0, o4, NULL},
      {ZQL_E_BAD_RECORD, 0, o5, m5},
  };
  expect_records(in.buf, in.len, NULL, want, ZQL_ARRAY_LEN(want));

  /* a length that cannot be trusted ends the input */
  zql_strbuf_reset(&in);
  zql_strbuf_add(&in, bson_get_data(a), a->len);
  uint8_t huge[] = {0xff, 0xff, 0xff, 0x01, 0x01, 0x02};
  zql_strbuf_add(&in, huge, sizeof huge);
  zql_strbuf_add(&in, bson_get_data(c), c->len);
  zql_ioreader_opts_t opts = ZQL_IOREADER_OPTS_INIT;
  opts.format = ZQL_IOFMT_BSON;
  const expect_t want2[] = {
      {1, 0, 0, NULL},
      {ZQL_E_BAD_RECORD, 0, a->len, "invalid BSON document length 33554431"},
  };
  expect_records(in.buf, in.len, &opts, want2, ZQL_ARRAY_LEN(want2));
  /* max_doc lowers the limit */
  opts.max_doc = 10;
  const expect_t want3[] = {{ZQL_E_BAD_RECORD, 0, 0, "length 12"}};
  expect_records(bson_get_data(a), a->len, &opts, want3, 1);

  /* only part of a length prefix */
  const expect_t want4[] = {{1, 0, 0, NULL}, {ZQL_E_BAD_RECORD, 0, a->len, "(2 bytes)"}};
  zql_strbuf_reset(&in);
  zql_strbuf_add(&in, bson_get_data(a), a->len);
  zql_strbuf_add(&in, "\x10\x00", 2);
  expect_records(in.buf, in.len, NULL, want4, 2);

  zql_strbuf_release(&in);
  zql_strbuf_release(&ubuf);
  bson_destroy(a);
  bson_destroy(c);
  bson_destroy(u);
}

/* }==== */

/* A BSON document of 123 bytes starts with '{': it is still detected as BSON. */
static void test_detect(void **state)
{
  bson_t doc = BSON_INITIALIZER;
  char pad[128];
  memset(pad, 'x', sizeof pad);
  BSON_APPEND_UTF8(&doc, "k", "v");
  int padlen = 123 - (int)doc.len - 8; /* type, "p\0", int32 length, NUL */
  bson_append_utf8(&doc, "p", 1, pad, padlen);
  assert_int_equal(doc.len, 123);
  assert_int_equal(bson_get_data(&doc)[0], '{');
  zql_ioreader_t *r;
  assert_int_equal(zql_ioreader_open_mem(bson_get_data(&doc), doc.len, "b", NULL, &r, NULL), 0);
  const bson_t *got;
  assert_int_equal(zql_ioreader_next(r, &got, NULL, NULL), 1);
  assert_int_equal(zql_ioreader_format(r), ZQL_IOFMT_BSON);
  assert_true(bson_equal(got, &doc));
  zql_ioreader_close(r);
  bson_destroy(&doc);

  /* a byte-order mark before NDJSON */
  static const char bom[] = "\xEF\xBB\xBF{\"a\": 1}\n";
  assert_int_equal(zql_ioreader_open_mem(bom, sizeof bom - 1, "j", NULL, &r, NULL), 0);
  assert_int_equal(zql_ioreader_next(r, &got, NULL, NULL), 1);
  assert_int_equal(zql_ioreader_format(r), ZQL_IOFMT_NDJSON);
  zql_ioreader_close(r);
}

static void test_empty(void **state)
{
  static const char *const inputs[] = {"", "\n\n  \n", "\r\n"};
  for (int forced = 0; forced < 3; forced++) {
    zql_ioreader_opts_t opts = ZQL_IOREADER_OPTS_INIT;
    opts.format = forced == 0 ? ZQL_IOFMT_AUTO : forced == 1 ? ZQL_IOFMT_NDJSON : ZQL_IOFMT_BSON;
    zql_ioreader_t *r;
    const bson_t *doc;
    assert_int_equal(zql_ioreader_open_mem("", 0, "e", &opts, &r, NULL), 0);
    assert_int_equal(zql_ioreader_next(r, &doc, NULL, NULL), 0);
    assert_int_equal(zql_ioreader_next(r, &doc, NULL, NULL), 0);
    zql_ioreader_close(r);
    if (forced == 2)
      continue;
    for (size_t k = 1; k < ZQL_ARRAY_LEN(inputs); k++) {
      assert_int_equal(zql_ioreader_open_mem(inputs[k], strlen(inputs[k]), "e", &opts, &r,
                                             NULL), 0);
      assert_int_equal(zql_ioreader_next(r, &doc, NULL, NULL), 0);
      zql_ioreader_close(r);
    }
  }
  /* an empty gzip member */
  zql_strbuf_t gz = ZQL_STRBUF_INIT;
  zql_iowriter_opts_t wo = {ZQL_IOFMT_BSON, true, 9};
  zql_iowriter_t *w;
  assert_int_equal(zql_iowriter_open_mem(&gz, &wo, &w, NULL), 0);
  assert_int_equal(zql_iowriter_close(w, NULL), 0);
  assert_true(gz.len >= 18);
  zql_ioreader_t *r;
  const bson_t *doc;
  assert_int_equal(zql_ioreader_open_mem(gz.buf, gz.len, "e.gz", NULL, &r, NULL), 0);
  assert_int_equal(zql_ioreader_next(r, &doc, NULL, NULL), 0);
  assert_true(zql_ioreader_gzip(r));
  zql_ioreader_close(r);
  zql_strbuf_release(&gz);
}

static void test_datetime(void **state)
{
  static const char in[] =
      "{\"t\": {\"$datetime\": 1325376000.5}, \"a\": [{\"$datetime\": 1}, 2],"
      " \"n\": {\"x\": {\"$datetime\": -2, \"tz\": \"ignored\"}, \"y\": {\"z\": 1}}}\n"
      "{\"t\": {\"$datetime\": \"soon\"}}\n"
      "{\"$datetime\": 5}\n"
      "{\"plain\": \"$datetime in a string\"}\n";
  zql_ioreader_opts_t opts = ZQL_IOREADER_OPTS_INIT;
  opts.datetime = true;
  zql_ioreader_t *r;
  assert_int_equal(zql_ioreader_open_mem(in, sizeof in - 1, "z", &opts, &r, NULL), 0);
  const bson_t *doc;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(zql_ioreader_next(r, &doc, NULL, &err), 1);
  bson_iter_t it, sub;
  assert_true(bson_iter_init_find(&it, doc, "t") && BSON_ITER_HOLDS_DATE_TIME(&it));
  assert_true(bson_iter_date_time(&it) == INT64_C(1325376000500));
  assert_true(bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "a.0", &sub));
  assert_true(BSON_ITER_HOLDS_DATE_TIME(&sub) && bson_iter_date_time(&sub) == 1000);
  assert_true(bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "a.1", &sub));
  assert_int_equal(bson_iter_int32(&sub), 2);
  assert_true(bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "n.x", &sub));
  assert_true(BSON_ITER_HOLDS_DATE_TIME(&sub) && bson_iter_date_time(&sub) == -2000);
  assert_true(bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "n.y.z", &sub));
  assert_int_equal(zql_ioreader_next(r, &doc, NULL, &err), ZQL_E_BAD_RECORD);
  assert_non_null(strstr(err.buf, "z:2: '$datetime' must be a number"));
  zql_strbuf_reset(&err);
  assert_int_equal(zql_ioreader_next(r, &doc, NULL, &err), ZQL_E_BAD_RECORD);
  assert_non_null(strstr(err.buf, "z:3: "));
  assert_int_equal(zql_ioreader_next(r, &doc, NULL, &err), 1);
  assert_true(bson_iter_init_find(&it, doc, "plain"));
  assert_int_equal(zql_ioreader_next(r, &doc, NULL, &err), 0);
  zql_ioreader_close(r);

  /* without the option the objects stay as they are */
  assert_int_equal(zql_ioreader_open_mem(in, sizeof in - 1, "z", NULL, &r, NULL), 0);
  assert_int_equal(zql_ioreader_next(r, &doc, NULL, NULL), 1);
  assert_true(bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "t.$datetime", &sub));
  zql_ioreader_close(r);
  zql_strbuf_release(&err);
}

static void test_extended_json(void **state)
{
  static const char in[] =
      "{\"d\": {\"$date\": \"2024-01-01T00:00:00.250Z\"}, \"n\": {\"$numberLong\": \"5\"},"
      " \"x\": {\"$numberDouble\": \"1.5\"}, \"o\": {\"$oid\": \"0123456789abcdef01234567\"}}\n"
      "{\"d\": {\"$date\": {\"$numberLong\": \"1704067200000\"}}, \"i\": 7, \"big\": 5000000000,"
      " \"f\": 2.5, \"s\": \"\\u00e9\", \"z\": null, \"b\": true}\n";
  zql_ioreader_t *r;
  assert_int_equal(zql_ioreader_open_mem(in, sizeof in - 1, "x", NULL, &r, NULL), 0);
  const bson_t *doc;
  bson_iter_t it;
  assert_int_equal(zql_ioreader_next(r, &doc, NULL, NULL), 1);
  assert_true(bson_iter_init_find(&it, doc, "d") && BSON_ITER_HOLDS_DATE_TIME(&it));
  assert_true(bson_iter_date_time(&it) == INT64_C(1704067200250));
  assert_true(bson_iter_init_find(&it, doc, "n") && BSON_ITER_HOLDS_INT64(&it));
  assert_true(bson_iter_init_find(&it, doc, "x") && BSON_ITER_HOLDS_DOUBLE(&it));
  assert_true(bson_iter_init_find(&it, doc, "o") && BSON_ITER_HOLDS_OID(&it));
  assert_int_equal(zql_ioreader_next(r, &doc, NULL, NULL), 1);
  assert_true(bson_iter_init_find(&it, doc, "d") && BSON_ITER_HOLDS_DATE_TIME(&it));
  assert_true(bson_iter_date_time(&it) == INT64_C(1704067200000));
  assert_true(bson_iter_init_find(&it, doc, "i") && BSON_ITER_HOLDS_INT32(&it));
  assert_true(bson_iter_init_find(&it, doc, "big") && BSON_ITER_HOLDS_INT64(&it));
  assert_true(bson_iter_init_find(&it, doc, "s") && BSON_ITER_HOLDS_UTF8(&it));
  assert_string_equal(bson_iter_utf8(&it, NULL), "\xc3\xa9");
  assert_true(bson_iter_init_find(&it, doc, "z") && BSON_ITER_HOLDS_NULL(&it));
  assert_int_equal(zql_ioreader_next(r, &doc, NULL, NULL), 0);
  zql_ioreader_close(r);
}

/* Files, stdin-style descriptors, and records bigger than the read buffer. */
static void test_files_and_big_records(void **state)
{
  char path[] = "/tmp/zql-test-io.XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  static char big[300000];
  memset(big, 'q', sizeof big - 1);
  for (int f = 0; f < 4; f++) {
    zql_iowriter_opts_t wo = {f & 1 ? ZQL_IOFMT_NDJSON : ZQL_IOFMT_BSON, f >= 2, 1};
    zql_iowriter_t *w;
    assert_int_equal(zql_iowriter_open(path, &wo, &w, NULL), 0);
    for (int k = 0; k < 20; k++) {
      bson_t *doc = BCON_NEW("k", BCON_INT32(k), "big", BCON_UTF8(k % 5 ? "small" : big));
      assert_int_equal(zql_iowriter_write(w, doc, NULL), 0);
      bson_destroy(doc);
    }
    assert_int_equal(zql_iowriter_close(w, NULL), 0);
    zql_ioreader_t *r;
    assert_int_equal(zql_ioreader_open(path, NULL, &r, NULL), 0);
    const bson_t *doc;
    zql_iowhere_t where;
    for (int k = 0; k < 20; k++) {
      assert_int_equal(zql_ioreader_next(r, &doc, &where, NULL), 1);
      bson_iter_t it;
      assert_true(bson_iter_init_find(&it, doc, "k"));
      assert_int_equal(bson_iter_int32(&it), k);
      assert_int_equal(where.index, k + 1);
      if (f & 1)
        assert_int_equal(where.line, k + 1);
      assert_true(bson_iter_init_find(&it, doc, "big"));
      uint32_t len;
      bson_iter_utf8(&it, &len);
      assert_int_equal(len, k % 5 ? 5 : sizeof big - 1);
    }
    assert_int_equal(zql_ioreader_next(r, &doc, NULL, NULL), 0);
    assert_true(zql_ioreader_bytes_in(r) > 0);
    zql_ioreader_close(r);
  }
  unlink(path);

  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_ioreader_t *r;
  assert_int_equal(zql_ioreader_open("/nonexistent/events.bson", NULL, &r, &err), ZQL_E_IO);
  assert_non_null(strstr(err.buf, "'/nonexistent/events.bson'"));
  zql_strbuf_reset(&err);
  zql_iowriter_t *w;
  zql_iowriter_opts_t wo = {ZQL_IOFMT_BSON, false, 0};
  assert_int_equal(zql_iowriter_open("/nonexistent/out.bson", &wo, &w, &err), ZQL_E_IO);
  wo.format = ZQL_IOFMT_AUTO;
  assert_int_equal(zql_iowriter_open("-", &wo, &w, NULL), ZQL_E_USAGE);
  zql_strbuf_release(&err);
}

/* A write error (a closed descriptor) is reported and sticks. */
static void test_write_error(void **state)
{
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  close(fds[0]);
  close(fds[1]);
  zql_iowriter_opts_t wo = {ZQL_IOFMT_BSON, false, 0};
  zql_iowriter_t *w;
  assert_int_equal(zql_iowriter_open_fd(fds[1], false, "out", &wo, &w, NULL), 0);
  bson_t *doc = BCON_NEW("a", BCON_INT32(1));
  assert_int_equal(zql_iowriter_write(w, doc, NULL), 0); /* buffered */
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(zql_iowriter_close(w, &err), ZQL_E_IO);
  assert_non_null(strstr(err.buf, "out: write error"));
  zql_strbuf_release(&err);
  bson_destroy(doc);
}

static void test_format_names(void **state)
{
  zql_iofmt_t f;
  assert_int_equal(zql_iofmt_parse("bson", &f), 0);
  assert_int_equal(f, ZQL_IOFMT_BSON);
  assert_int_equal(zql_iofmt_parse("json", &f), 0);
  assert_int_equal(f, ZQL_IOFMT_NDJSON);
  assert_int_equal(zql_iofmt_parse("xml", &f), ZQL_E_USAGE);
  assert_string_equal(zql_iofmt_name(ZQL_IOFMT_NDJSON_CANONICAL), "ndjson-canonical");
}

static void test_oom(void **state)
{
  for (long n = 0;; n++) {
    zql_ioreader_t *r = NULL;
    zql_alloc_fail_after(n);
    int rc = zql_ioreader_open_mem("{}", 2, "m", NULL, &r, NULL);
    zql_alloc_fail_after(-1);
    if (rc == 0) {
      zql_ioreader_close(r);
      break;
    }
    assert_int_equal(rc, ZQL_E_NOMEM);
  }
  zql_strbuf_t sink = ZQL_STRBUF_INIT;
  zql_iowriter_opts_t wo = {ZQL_IOFMT_NDJSON, true, 0};
  for (long n = 0;; n++) {
    zql_iowriter_t *w = NULL;
    zql_alloc_fail_after(n);
    int rc = zql_iowriter_open_mem(&sink, &wo, &w, NULL);
    zql_alloc_fail_after(-1);
    if (rc == 0) {
      assert_int_equal(zql_iowriter_close(w, NULL), 0);
      break;
    }
    assert_int_equal(rc, ZQL_E_NOMEM);
  }
  zql_strbuf_release(&sink);
}

int zql_unit_ioformat(void)
{
  const struct CMUnitTest tests[] = {
      ZQL_UNIT_TEST(test_bson_roundtrip), ZQL_UNIT_TEST(test_relaxed_roundtrip),
      ZQL_UNIT_TEST(test_gzip),           ZQL_UNIT_TEST(test_json_invalid),
      ZQL_UNIT_TEST(test_bson_invalid),   ZQL_UNIT_TEST(test_detect),
      ZQL_UNIT_TEST(test_empty),          ZQL_UNIT_TEST(test_datetime),
      ZQL_UNIT_TEST(test_extended_json),  ZQL_UNIT_TEST(test_files_and_big_records),
      ZQL_UNIT_TEST(test_write_error),    ZQL_UNIT_TEST(test_format_names),
      ZQL_UNIT_TEST(test_oom),
  };
  return cmocka_run_group_tests_name("ioformat", tests, NULL, NULL);
}
