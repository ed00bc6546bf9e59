/*
 * test_output.c -- unit tests of the result-row writers (exec/output.c).
 *
 * Golden outputs for each format over the same three rows (escaping, UTF-8, dates,
 * documents, NULL / MISSING / ERROR, NaN), captured with open_memstream; empty results;
 * the table's widths, alignment, truncation and row count line; BSON read back with
 * libbson; write errors on /dev/full (buffered: at close; unbuffered: at once, and sticky);
 * format names; cell texts; and out of memory at every allocation.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <errno.h>
#include <math.h>

#include "exec/output.h"
#include "runtime/base/alloc.h"
#include "runtime/base/arena.h"
#include "runtime/base/error.h"


/* {==== fixtures ======================================================================== */

/* The value of relaxed extended JSON `json`, bytes in arena a. */
static zql_val_t jv(zql_arena_t *a, const char *json)
{
  char *doc_json = zql_arena_printf(a, "{\"v\": %s}", json);
  assert_non_null(doc_json);
  bson_error_t berr;
  bson_t *doc = bson_new_from_json((const uint8_t *)doc_json, -1, &berr);
  if (!doc)
    fail_msg("bad fixture %s: %s", json, berr.message);
  bson_iter_t it;
  assert_true(bson_iter_init_find(&it, doc, "v"));
  zql_val_t v, out;
  zql_val_from_iter(&it, &v);
  assert_true(zql_val_copy(a, &v, &out));
  bson_destroy(doc);
  return out;
}

static zql_val_t sv(const char *s)
{
  return zql_val_str(s, (uint32_t)strlen(s));
}

#define NCOLS 5
static const char *const names[NCOLS] = {"k", "n", "d", "when", "doc"};
#define NROWS 3

/* Three rows covering escaping, UTF-8, dates, documents, NULL/MISSING/ERROR and NaN. */
static void fixture(zql_arena_t *a, zql_val_t rows[NROWS][NCOLS])
{
  rows[0][0] = sv("a,b");
  rows[0][1] = jv(a, "1"); /* int32 */
  rows[0][2] = zql_val_double(1.5);
  rows[0][3] = jv(a, "{\"$date\": \"2011-07-01T04:00:00Z\"}");
  rows[0][4] = jv(a, "{\"x\": [1, \"y\"]}");
  rows[1][0] = sv("say \"hi\"\nbye");
  rows[1][1] = zql_val_int(-20);
  rows[1][2] = zql_val_double(NAN);
  rows[1][3] = zql_val_null();
  rows[1][4] = zql_val_missing();
  rows[2][0] = sv("h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac");
  rows[2][1] = zql_val_error("division by zero");
  rows[2][2] = zql_val_double(2.0);
  rows[2][3] = zql_val_missing();
  rows[2][4] = jv(a, "[]");
}

/* Write nrows rows (of ncols columns) in fmt to a memory stream; returns the output and
 * checks every call succeeded. */
static char *render(zql_fmt_t fmt, const char *const *cols, uint32_t ncols,
                    const zql_val_t *rows, size_t nrows, size_t *len)
{
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  assert_non_null(f);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_rowwriter_t *w = NULL;
  assert_int_equal(zql_rowwriter_open(fmt, f, cols, ncols, &w, &err), 0);
  for (size_t r = 0; r < nrows; r++)
    assert_int_equal(zql_rowwriter_row(w, rows + r * ncols), 0);
  assert_int_equal(zql_rowwriter_close(w, &err), 0);
  assert_int_equal(err.len, 0);
  assert_int_equal(fclose(f), 0);
  zql_strbuf_release(&err);
  if (len)
    *len = n;
  return buf;
}

static void expect_text(zql_fmt_t fmt, const char *const *cols, uint32_t ncols,
                        const zql_val_t *rows, size_t nrows, const char *want)
{
  char *got = render(fmt, cols, ncols, rows, nrows, NULL);
  if (strcmp(got, want) != 0) {
    print_error("--- %s: got\n%s--- expected\n%s---\n", zql_fmt_name(fmt), got, want);
    free(got);
    fail();
  }
  free(got);
}

/* }==== */

/* {==== golden outputs ================================================================== */

static void test_ndjson(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  zql_val_t rows[NROWS][NCOLS];
  fixture(a, rows);
  expect_text(ZQL_FMT_NDJSON, names, NCOLS, &rows[0][0], NROWS,
              "{\"k\":\"a,b\",\"n\":1,\"d\":1.5,\"when\":\"2011-07-01T04:00:00.000Z\","
              "\"doc\":{\"x\":[1,\"y\"]}}\n"
              "{\"k\":\"say \\\"hi\\\"\\nbye\",\"n\":-20,\"d\":null,\"when\":null,"
              "\"doc\":null}\n"
              "{\"k\":\"h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac\",\"n\":null,\"d\":2.0,"
              "\"when\":null,\"doc\":[]}\n");
  expect_text(ZQL_FMT_NDJSON, names, NCOLS, NULL, 0, "");
  /* column names are JSON-escaped */
  const char *odd[1] = {"a\"b\\c"};
  zql_val_t one = zql_val_int(1);
  expect_text(ZQL_FMT_NDJSON, odd, 1, &one, 1, "{\"a\\\"b\\\\c\":1}\n");
  zql_arena_delete(a);
}

static void test_json(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  zql_val_t rows[NROWS][NCOLS];
  fixture(a, rows);
  expect_text(ZQL_FMT_JSON, names, NCOLS, &rows[0][0], NROWS,
              "[\n"
              "{\"k\":\"a,b\",\"n\":1,\"d\":1.5,\"when\":\"2011-07-01T04:00:00.000Z\","
              "\"doc\":{\"x\":[1,\"y\"]}},\n"
              "{\"k\":\"say \\\"hi\\\"\\nbye\",\"n\":-20,\"d\":null,\"when\":null,"
              "\"doc\":null},\n"
              "{\"k\":\"h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac\",\"n\":null,\"d\":2.0,"
              "\"when\":null,\"doc\":[]}\n"
              "]\n");
  expect_text(ZQL_FMT_JSON, names, NCOLS, &rows[0][0], 1,
              "[\n"
              "{\"k\":\"a,b\",\"n\":1,\"d\":1.5,\"when\":\"2011-07-01T04:00:00.000Z\","
              "\"doc\":{\"x\":[1,\"y\"]}}\n"
              "]\n");
  expect_text(ZQL_FMT_JSON, names, NCOLS, NULL, 0, "[]\n");
  zql_arena_delete(a);
}

static void test_csv(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  zql_val_t rows[NROWS][NCOLS];
  fixture(a, rows);
  expect_text(ZQL_FMT_CSV, names, NCOLS, &rows[0][0], NROWS,
              "k,n,d,when,doc\n"
              "\"a,b\",1,1.5,2011-07-01T04:00:00.000Z,\"{\"\"x\"\":[1,\"\"y\"\"]}\"\n"
              "\"say \"\"hi\"\"\nbye\",-20,NaN,,\n"
              "h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac,,2.0,,[]\n");
  expect_text(ZQL_FMT_CSV, names, NCOLS, NULL, 0, "k,n,d,when,doc\n");
  /* header names are quoted like fields; a CR alone forces quotes too */
  const char *odd[2] = {"a,b", "c"};
  zql_val_t row[2] = {sv("x\ry"), sv(" spaced ")};
  expect_text(ZQL_FMT_CSV, odd, 2, row, 1, "\"a,b\",c\n\"x\ry\", spaced \n");
  zql_arena_delete(a);
}

static void test_table(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  zql_val_t rows[NROWS][NCOLS];
  fixture(a, rows);
  /* widths: k 13 (say "hi"\nbye), n 4 (null), d 3, when 24, doc 13; names centred;
   * numbers right-aligned, the rest left; no trailing spaces */
  expect_text(ZQL_FMT_TABLE, names, NCOLS, &rows[0][0], NROWS,
              "       k       |  n   |  d  |           when           |      doc\n"
              "---------------+------+-----+--------------------------+---------------\n"
              " a,b           |    1 | 1.5 | 2011-07-01T04:00:00.000Z | {\"x\":[1,\"y\"]}\n"
              " say \"hi\"\\nbye |  -20 | NaN | null                     | null\n"
              " h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac      | null | 2.0 | null                     | []\n"
              "(3 rows)\n");
  expect_text(ZQL_FMT_TABLE, names, 2, &rows[0][0], 0,
              " k | n\n"
              "---+---\n"
              "(0 rows)\n");
  /* one row; a cell of 70 code points is cut to 59 and an ellipsis (width 60) */
  const char *cols[2] = {"text", "count"};
  zql_strbuf_t longs = ZQL_STRBUF_INIT, want = ZQL_STRBUF_INIT;
  for (int i = 0; i < 35; i++)
    zql_strbuf_adds(&longs, "\xc3\xa9x"); /* 70 code points, 105 bytes */
  zql_val_t row[2] = {zql_val_str(longs.buf, (uint32_t)longs.len), zql_val_int(123456)};
  zql_strbuf_addchars(&want, ' ', 1 + 28); /* "text" centred in 60 */
  zql_strbuf_adds(&want, "text");
  zql_strbuf_addchars(&want, ' ', 28);
  zql_strbuf_adds(&want, " | count\n"); /* width 6: the extra space right, trimmed */
  zql_strbuf_addchars(&want, '-', 62);
  zql_strbuf_adds(&want, "+--------\n ");
  for (int i = 0; i < 29; i++)
    zql_strbuf_adds(&want, "\xc3\xa9x");
  zql_strbuf_adds(&want, "\xc3\xa9\xe2\x80\xa6 | 123456\n(1 row)\n");
  assert_false(want.oom || longs.oom);
  expect_text(ZQL_FMT_TABLE, cols, 2, row, 1, want.buf);
  zql_strbuf_release(&longs);
  zql_strbuf_release(&want);
  /* exactly 60 code points: not cut */
  zql_val_t sixty = zql_val_str("123456789012345678901234567890123456789012345678901234567890", 60);
  char *got = render(ZQL_FMT_TABLE, cols, 1, &sixty, 1, NULL);
  assert_non_null(strstr(got, " 123456789012345678901234567890123456789012345678901234567890\n"));
  free(got);
  /* control characters */
  const char *one[1] = {"c"};
  zql_val_t ctl = zql_val_str("a\tb\x01", 4);
  expect_text(ZQL_FMT_TABLE, one, 1, &ctl, 1,
              "    c\n"
              "----------\n"
              " a\\tb\\x01\n"
              "(1 row)\n");
  /* no columns at all */
  expect_text(ZQL_FMT_TABLE, NULL, 0, NULL, 2, "(2 rows)\n");
  zql_arena_delete(a);
}

static void test_bson(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  zql_val_t rows[NROWS][NCOLS];
  fixture(a, rows);
  size_t len = 0;
  char *out = render(ZQL_FMT_BSON, names, NCOLS, &rows[0][0], NROWS, &len);
  bson_reader_t *rd = bson_reader_new_from_data((const uint8_t *)out, len);
  assert_non_null(rd);
  static const char *const want[NROWS] = {
      "{ \"k\" : \"a,b\", \"n\" : 1, \"d\" : 1.5, \"when\" : { \"$date\" : "
      "\"2011-07-01T04:00:00Z\" }, \"doc\" : { \"x\" : [ 1, \"y\" ] } }",
      /* doc MISSING: left out */
      "{ \"k\" : \"say \\\"hi\\\"\\nbye\", \"n\" : -20, \"d\" : { \"$numberDouble\" : "
      "\"NaN\" }, \"when\" : null }",
      /* n ERROR: null; when MISSING: left out */
      "{ \"k\" : \"h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac\", \"n\" : null, \"d\" : 2.0, "
      "\"doc\" : [  ] }",
  };
  const bson_t *doc;
  bool eof = false;
  size_t i = 0;
  while ((doc = bson_reader_read(rd, &eof))) {
    assert_true(i < NROWS);
    char *js = bson_as_relaxed_extended_json(doc, NULL);
    if (strcmp(js, want[i]) != 0)
      fail_msg("row %zu: %s", i, js);
    bson_free(js);
    i++;
  }
  assert_true(eof);
  assert_int_equal(i, NROWS);
  /* int32 stays int32, int64 stays int64 */
  bson_t first;
  uint32_t first_len;
  memcpy(&first_len, out, 4); /* little-endian on every platform zql builds on */
  assert_true(bson_init_static(&first, (const uint8_t *)out, first_len));
  bson_iter_t it;
  assert_true(bson_iter_init_find(&it, &first, "n"));
  assert_int_equal(bson_iter_type(&it), BSON_TYPE_INT32);
  bson_reader_destroy(rd);
  free(out);
  out = render(ZQL_FMT_BSON, names, NCOLS, NULL, 0, &len);
  assert_int_equal(len, 0);
  free(out);
  zql_arena_delete(a);
}

/* }==== */

/* {==== errors ========================================================================== */

static void test_write_error(void **state)
{
  zql_val_t row[1] = {zql_val_int(1)};
  const char *col[1] = {"n"};
  for (int fmt = ZQL_FMT_TABLE; fmt <= ZQL_FMT_BSON; fmt++) {
    /* buffered: the error shows at close */
    FILE *f = fopen("/dev/full", "w");
    if (!f)
      skip();
    zql_strbuf_t err = ZQL_STRBUF_INIT;
    zql_rowwriter_t *w = NULL;
    assert_int_equal(zql_rowwriter_open((zql_fmt_t)fmt, f, col, 1, &w, &err), 0);
    assert_int_equal(zql_rowwriter_row(w, row), 0);
    assert_int_equal(zql_rowwriter_close(w, &err), ZQL_E_IO);
    assert_non_null(strstr(err.buf, "write error: "));
    assert_non_null(strstr(err.buf, strerror(ENOSPC)));
    fclose(f);
    /* unbuffered: the first write fails, and every later call says so */
    f = fopen("/dev/full", "w");
    assert_non_null(f);
    setvbuf(f, NULL, _IONBF, 0);
    zql_strbuf_reset(&err);
    int rc = zql_rowwriter_open((zql_fmt_t)fmt, f, col, 1, &w, &err);
    if (fmt == ZQL_FMT_CSV) { /* the header line is written by open */
      assert_int_equal(rc, ZQL_E_IO);
      assert_null(w);
      assert_non_null(strstr(err.buf, "write error: "));
    } else {
      assert_int_equal(rc, 0);
      int want = fmt == ZQL_FMT_TABLE ? 0 : ZQL_E_IO; /* a table writes at close */
      assert_int_equal(zql_rowwriter_row(w, row), want);
      assert_int_equal(zql_rowwriter_row(w, row), want);
      assert_int_equal(zql_rowwriter_close(w, &err), ZQL_E_IO);
      assert_non_null(strstr(err.buf, strerror(ENOSPC)));
    }
    fclose(f);
    zql_strbuf_release(&err);
  }
}

static void test_usage(void **state)
{
  zql_fmt_t f;
  static const char *const fmts[] = {"table", "csv", "json", "ndjson", "bson"};
  for (int i = 0; i < 5; i++) {
    assert_int_equal(zql_fmt_parse(fmts[i], &f), 0);
    assert_int_equal(f, i);
    assert_string_equal(zql_fmt_name(f), fmts[i]);
  }
  assert_int_equal(zql_fmt_parse("JSON", &f), ZQL_E_USAGE);
  assert_int_equal(zql_fmt_parse("xml", &f), ZQL_E_USAGE);
  assert_int_equal(zql_fmt_parse("", &f), ZQL_E_USAGE);
  assert_int_equal(zql_fmt_parse(NULL, &f), ZQL_E_USAGE);
  assert_string_equal(zql_fmt_name((zql_fmt_t)99), "?");
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_rowwriter_t *w = (zql_rowwriter_t *)&f;
  assert_int_equal(zql_rowwriter_open((zql_fmt_t)99, stdout, NULL, 0, &w, &err),
                   ZQL_E_USAGE);
  assert_null(w);
  assert_int_equal(zql_rowwriter_open(ZQL_FMT_CSV, NULL, NULL, 0, &w, &err), ZQL_E_USAGE);
  assert_true(err.len > 0);
  assert_int_equal(zql_rowwriter_close(NULL, &err), 0);
  zql_strbuf_release(&err);
}

/* BSON refuses a row that does not fit a document: ZQL_E_TOO_LARGE, nothing written, and
 * the writer goes on. */
static void test_bson_too_large(void **state)
{
  /* a 1 GiB + 16 string: libbson refuses to grow a document past 2^31 - 1 bytes before
   * it copies anything, so the pages of `big` are never touched */
  size_t n = ((size_t)1 << 30) + 16;
  char *big = malloc(n + 1);
  if (!big)
    skip();
  big[n] = '\0';
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  const char *cols[1] = {"a"};
  zql_val_t row[1] = {zql_val_str(big, (uint32_t)n)};
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_rowwriter_t *w = NULL;
  assert_int_equal(zql_rowwriter_open(ZQL_FMT_BSON, f, cols, 1, &w, &err), 0);
  assert_int_equal(zql_rowwriter_row(w, row), ZQL_E_TOO_LARGE);
  row[0] = zql_val_int(1);
  row[0].flags = ZQL_VF_INT32;
  assert_int_equal(zql_rowwriter_row(w, row), 0);
  assert_int_equal(zql_rowwriter_close(w, &err), 0);
  fclose(f);
  assert_int_equal(len, 12); /* {a: int32 1} alone: 4 + 1 + 2 + 4 + 1 */
  free(buf);
  free(big);
  zql_strbuf_release(&err);
}

/* Every allocation of open/row/close fails in turn: each call returns ZQL_E_NOMEM (or
 * succeeds), nothing leaks, and once nothing fails the output is the golden one. */
static void test_oom(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  zql_val_t rows[NROWS][NCOLS];
  fixture(a, rows);
  for (int fmt = ZQL_FMT_TABLE; fmt <= ZQL_FMT_BSON; fmt++) {
    size_t glen = 0;
    char *golden = render((zql_fmt_t)fmt, names, NCOLS, &rows[0][0], NROWS, &glen);
    bool done = false;
    for (long n = 0; !done && n < 1000; n++) {
      char *buf = NULL;
      size_t len = 0;
      FILE *f = open_memstream(&buf, &len);
      assert_non_null(f);
      zql_strbuf_t err = ZQL_STRBUF_INIT;
      zql_rowwriter_t *w = NULL;
      zql_alloc_fail_after(n);
      int rc = zql_rowwriter_open((zql_fmt_t)fmt, f, names, NCOLS, &w, &err);
      for (int r = 0; rc == 0 && r < NROWS; r++)
        rc = zql_rowwriter_row(w, rows[r]);
      int crc = w ? zql_rowwriter_close(w, &err) : rc;
      zql_alloc_fail_after(-1);
      fclose(f);
      if (rc == 0 && crc == 0) {
        assert_int_equal(len, glen);
        assert_memory_equal(buf, golden, glen);
        done = true;
      } else {
        assert_int_equal(rc ? rc : crc, ZQL_E_NOMEM);
        assert_int_equal(crc, ZQL_E_NOMEM);
      }
      free(buf);
      zql_strbuf_release(&err);
    }
    assert_true(done);
    free(golden);
  }
  zql_arena_delete(a);
}

/* }==== */

/* {==== cell text ======================================================================= */

static void expect_cell(const zql_val_t *v, const char *want)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_cell_text(&sb, v);
  assert_string_equal(sb.buf, want);
  zql_strbuf_release(&sb);
}

static void test_cell_text(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  expect_cell(&(zql_val_t){ZQL_V_STRING, 0, 0, 3, {.s = "a\"b"}}, "a\"b");
  zql_val_t v = jv(a, "{\"$date\": \"1969-12-31T23:59:59.999Z\"}");
  expect_cell(&v, "1969-12-31T23:59:59.999Z");
  v = jv(a, "{\"$oid\": \"0123456789abcdef01234567\"}");
  expect_cell(&v, "0123456789abcdef01234567");
  v = jv(a, "{\"$regularExpression\": {\"pattern\": \"^a/b\", \"options\": \"i\"}}");
  expect_cell(&v, "/^a/b/i");
  v = jv(a, "{\"$binary\": {\"base64\": \"AQID\", \"subType\": \"00\"}}");
  expect_cell(&v, "AQID");
  v = zql_val_double(-INFINITY);
  expect_cell(&v, "-Infinity");
  v = zql_val_double(INFINITY);
  expect_cell(&v, "Infinity");
  v = zql_val_double(0.1);
  expect_cell(&v, "0.1");
  v = zql_val_double(3);
  expect_cell(&v, "3.0");
  v = zql_val_int(-5);
  expect_cell(&v, "-5");
  v = zql_val_bool(false);
  expect_cell(&v, "false");
  v = jv(a, "{\"a\": \"x\\ny\", \"t\": {\"$date\": \"2011-07-01T04:00:00Z\"}}");
  expect_cell(&v, "{\"a\":\"x\\ny\",\"t\":\"2011-07-01T04:00:00.000Z\"}");
  v = zql_val_null();
  expect_cell(&v, "null");
  v = zql_val_missing();
  expect_cell(&v, "null");
  v = zql_val_error("boom");
  expect_cell(&v, "null");
  zql_arena_delete(a);
}

/* }==== */

int zql_unit_output(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ndjson),      cmocka_unit_test(test_json),
      cmocka_unit_test(test_csv),         cmocka_unit_test(test_table),
      cmocka_unit_test(test_bson),        cmocka_unit_test(test_write_error),
      cmocka_unit_test(test_usage),       cmocka_unit_test(test_bson_too_large),
      ZQL_UNIT_TEST(test_oom),            cmocka_unit_test(test_cell_text),
  };
  return cmocka_run_group_tests_name("output", tests, NULL, NULL);
}
