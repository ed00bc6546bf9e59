/*
 * test_deadletter.c -- unit tests of the dead-letter file (runtime/deadletter.c, zqld).
 *
 * Lines are written to DIR/YYYY-MM-DD.ndjson of the UTC day of receipt and read back with
 * libbson's bson_new_from_json: the event as a document, or raw bytes as base64 (cut at
 * 64 KiB with raw_truncated / raw_size); peer omitted when unknown; bad UTF-8 in the
 * reason replaced; day rollover; a torn last line repaired on open; counters per class;
 * nothing written before a flush; a directory that cannot be created.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <sys/stat.h>
#include <unistd.h>

#include "runtime/base/error.h"
#include "runtime/deadletter.h"

#define T0 1795549709123LL /* 2026-11-24T19:48:29.123Z */
#define DAY 86400000LL

static char tmpdir[64];

static int setup(void **state)
{
  snprintf(tmpdir, sizeof tmpdir, "/tmp/zql-dl-XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

/* The lines of a file (NULL-terminated array of strings; free with free_lines). */
static char **read_lines(const char *path, size_t *n, bool *ends_nl)
{
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  static char buf[1 << 20];
  size_t len = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[len] = '\0';
  *ends_nl = len > 0 && buf[len - 1] == '\n';
  char **lines = test_calloc(256, sizeof *lines);
  *n = 0;
  char *p = buf;
  while (*p && *n < 255) {
    char *nl = strchr(p, '\n');
    lines[(*n)++] = p;
    if (!nl)
      break;
    *nl = '\0';
    p = nl + 1;
  }
  return lines;
}

static bson_t *parse(const char *line)
{
  bson_error_t e;
  bson_t *b = bson_new_from_json((const uint8_t *)line, -1, &e);
  if (!b)
    fail_msg("line does not parse: %s: %s", e.message, line);
  return b;
}

static const char *str(const bson_t *b, const char *key)
{
  bson_iter_t it;
  if (!bson_iter_init_find(&it, b, key) || !BSON_ITER_HOLDS_UTF8(&it))
    return NULL;
  return bson_iter_utf8(&it, NULL);
}

static void test_lines(void **state)
{
  char dir[128];
  snprintf(dir, sizeof dir, "%s/a/deadletter", tmpdir); /* parents are created */
  zql_deadletter_t *dl;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(zql_deadletter_open(dir, &dl, &err), 0);
  assert_string_equal(zql_deadletter_dir(dl), dir);
  bson_error_t e;
  bson_t *ev = bson_new_from_json((const uint8_t *)"{\"type\": 5, \"t\": {\"$date\": 7}}", -1,
                                  &e);
  assert_int_equal(zql_deadletter_add(dl, T0, "bson:6543", "tcp://10.0.0.7:50412",
                                      ZQL_INGEST_SCHEMA, "field 'type' is a number; it must be "
                                      "a string", ev, NULL, 0, &err), 0);
  assert_int_equal(zql_deadletter_add(dl, T0 + 1, "json:6544", NULL, ZQL_INGEST_MALFORMED,
                                      "bad \xff byte", NULL, "abcd", 4, &err), 0);
  size_t rawlen = 70000;
  uint8_t *raw = test_malloc(rawlen);
  for (size_t k = 0; k < rawlen; k++)
    raw[k] = (uint8_t)(k * 7);
  assert_int_equal(zql_deadletter_add(dl, T0 + 2, "http", "", ZQL_INGEST_TOO_LARGE, "big",
                                      NULL, raw, rawlen, &err), 0);
  test_free(raw);
  /* nothing is written before the flush */
  char path[256];
  snprintf(path, sizeof path, "%s/2026-11-24.ndjson", dir);
  struct stat sb;
  assert_true(stat(path, &sb) != 0);
  assert_int_equal(zql_deadletter_flush(dl, true, &err), 0);
  assert_int_equal(zql_deadletter_flush(dl, true, &err), 0); /* nothing pending: no-op */
  assert_int_equal(zql_deadletter_count(dl, ZQL_INGEST_OK), 3);
  assert_int_equal(zql_deadletter_count(dl, ZQL_INGEST_SCHEMA), 1);
  assert_int_equal(zql_deadletter_count(dl, ZQL_INGEST_TOO_LARGE), 1);
  assert_int_equal(zql_deadletter_count(dl, ZQL_INGEST_TIMESTAMP), 0);
  zql_deadletter_stats_t st;
  zql_deadletter_stats(dl, &st);
  assert_int_equal(st.lines, 3);
  assert_int_equal(st.write_errors, 0);
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal((uint64_t)sb.st_size, st.bytes_written);
  zql_deadletter_close(dl);

  size_t n;
  bool nl;
  char **lines = read_lines(path, &n, &nl);
  assert_int_equal(n, 3);
  assert_true(nl);
  bson_t *l0 = parse(lines[0]);
  bson_iter_t it;
  assert_true(bson_iter_init_find(&it, l0, "received") && BSON_ITER_HOLDS_DATE_TIME(&it));
  assert_int_equal(bson_iter_date_time(&it), T0);
  assert_string_equal(str(l0, "source"), "bson:6543");
  assert_string_equal(str(l0, "peer"), "tcp://10.0.0.7:50412");
  assert_string_equal(str(l0, "reason"), "field 'type' is a number; it must be a string");
  assert_string_equal(str(l0, "class"), "schema");
  assert_true(bson_iter_init_find(&it, l0, "event") && BSON_ITER_HOLDS_DOCUMENT(&it));
  const uint8_t *d;
  uint32_t dlen;
  bson_iter_document(&it, &dlen, &d);
  bson_t sub;
  assert_true(bson_init_static(&sub, d, dlen));
  assert_true(bson_equal(&sub, ev)); /* canonical JSON keeps the types */
  assert_false(bson_has_field(l0, "raw"));
  bson_destroy(l0);

  bson_t *l1 = parse(lines[1]);
  assert_false(bson_has_field(l1, "peer"));
  assert_string_equal(str(l1, "reason"), "bad \xEF\xBF\xBD byte");
  assert_string_equal(str(l1, "raw"), "YWJjZA==");
  assert_false(bson_has_field(l1, "raw_truncated"));
  assert_false(bson_has_field(l1, "event"));
  bson_destroy(l1);

  bson_t *l2 = parse(lines[2]);
  assert_false(bson_has_field(l2, "peer")); /* "" is unknown too */
  assert_string_equal(str(l2, "class"), "too_large");
  assert_int_equal(strlen(str(l2, "raw")), 4 * ((65536 + 2) / 3));
  assert_memory_equal(str(l2, "raw"), "AAcOFRwjKjE4", 12); /* bytes 0 7 14 21 28 35 42 49 56 */
  assert_true(bson_iter_init_find(&it, l2, "raw_truncated") && bson_iter_as_bool(&it));
  assert_true(bson_iter_init_find(&it, l2, "raw_size") && bson_iter_as_int64(&it) == 70000);
  bson_destroy(l2);
  test_free(lines);
  bson_destroy(ev);
  zql_strbuf_release(&err);
}

static void test_rollover_and_torn(void **state)
{
  zql_deadletter_t *dl;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(zql_deadletter_open(tmpdir, &dl, &err), 0);
  int64_t midnight = (T0 / DAY + 1) * DAY; /* 2026-11-25T00:00:00Z */
  assert_int_equal(zql_deadletter_add(dl, midnight - 1, "http", NULL, ZQL_INGEST_SCHEMA, "a",
                                      NULL, "x", 1, &err), 0);
  /* a line of the next day flushes the previous day's first */
  assert_int_equal(zql_deadletter_add(dl, midnight, "http", NULL, ZQL_INGEST_SCHEMA, "b", NULL,
                                      "y", 1, &err), 0);
  assert_int_equal(zql_deadletter_flush(dl, false, &err), 0);
  zql_deadletter_close(dl);
  char p24[128], p25[128];
  snprintf(p24, sizeof p24, "%s/2026-11-24.ndjson", tmpdir);
  snprintf(p25, sizeof p25, "%s/2026-11-25.ndjson", tmpdir);
  size_t n;
  bool nl;
  char **lines = read_lines(p24, &n, &nl);
  assert_int_equal(n, 1);
  bson_t *b = parse(lines[0]);
  assert_string_equal(str(b, "reason"), "a");
  bson_destroy(b);
  test_free(lines);
  lines = read_lines(p25, &n, &nl);
  assert_int_equal(n, 1);
  b = parse(lines[0]);
  assert_string_equal(str(b, "reason"), "b");
  bson_destroy(b);
  test_free(lines);

  /* a torn last line: the next open ends it, so the new line parses */
  FILE *f = fopen(p25, "ab");
  assert_non_null(f);
  fputs("{\"received\": {\"$da", f);
  fclose(f);
  assert_int_equal(zql_deadletter_open(tmpdir, &dl, &err), 0);
  assert_int_equal(zql_deadletter_add(dl, midnight + 5, "acked:6546", "p", ZQL_INGEST_RESERVED,
                                      "c", NULL, "", 0, &err), 0);
  assert_int_equal(zql_deadletter_flush(dl, true, &err), 0);
  zql_deadletter_close(dl);
  lines = read_lines(p25, &n, &nl);
  assert_int_equal(n, 3);
  assert_true(nl);
  assert_string_equal(lines[1], "{\"received\": {\"$da");
  b = parse(lines[2]);
  assert_string_equal(str(b, "reason"), "c");
  assert_string_equal(str(b, "raw"), "");
  bson_destroy(b);
  test_free(lines);
  zql_strbuf_release(&err);
}

static void test_open_errors(void **state)
{
  char file[128];
  snprintf(file, sizeof file, "%s/plain", tmpdir);
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fclose(f);
  zql_deadletter_t *dl = (zql_deadletter_t *)1;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(zql_deadletter_open(file, &dl, &err), ZQL_E_IO);
  assert_null(dl);
  char want[300];
  snprintf(want, sizeof want, "dead-letter directory '%s' is not a directory", file);
  assert_string_equal(err.buf, want);
  zql_strbuf_reset(&err);
  char sub[160];
  snprintf(sub, sizeof sub, "%s/plain/x", tmpdir);
  assert_int_equal(zql_deadletter_open(sub, &dl, &err), ZQL_E_IO);
  snprintf(want, sizeof want, "cannot create directory '%s': Not a directory", sub);
  assert_string_equal(err.buf, want);
  zql_deadletter_close(NULL);
  zql_strbuf_release(&err);
}

int zql_unit_deadletter(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_lines, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rollover_and_torn, setup, teardown),
      cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
  };
  return cmocka_run_group_tests_name("deadletter", tests, NULL, NULL);
}
