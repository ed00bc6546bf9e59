/*
 * test_text.c -- unit tests of the small text helpers of layer 0: the edit distance used
 * for "did you mean" hints (runtime/base/strdist.c) and the regex complexity guard that
 * runs before every regcomp (runtime/base/regex_guard.c); and the columns of `zql status`'s
 * text (runtime/status.c), which stay in line whatever the names and schedules.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <regex.h>

#include "runtime/base/regex_guard.h"
#include "runtime/base/strdist.h"
#include "runtime/cli.h"
#include "runtime/status.h"

static void test_edit_distance(void **state)
{
  assert_int_equal(zql_edit_distance("count", "count", 2), 0);
  assert_int_equal(zql_edit_distance("cuont", "count", 2), 1);    /* transposition */
  assert_int_equal(zql_edit_distance("COUNT", "count", 2), 0);    /* case-insensitive */
  assert_int_equal(zql_edit_distance("cnt", "count", 2), 2);      /* two insertions */
  assert_int_equal(zql_edit_distance("sum", "count", 2), 3);      /* over the limit: limit+1 */
  assert_int_equal(zql_edit_distance("", "abc", 5), 3);
  assert_int_equal(zql_edit_distance("abc", "", 1), 2);
  assert_int_equal(zql_edit_distance("kitten", "sitting", 10), 3);
  char longname[ZQL_STRDIST_MAX_LEN + 2];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  assert_int_equal(zql_edit_distance(longname, longname, 2), 3); /* too long: never near */
}

static void expect_guard(const char *pattern, bool ok)
{
  char why[160] = "";
  int rc = zql_regex_guard(pattern, why, sizeof why);
  if (ok && rc != 0)
    fail_msg("'%s' refused: %s", pattern, why);
  if (!ok && rc == 0)
    fail_msg("'%s' accepted", pattern);
  if (!ok)
    assert_true(why[0] != '\0');
  if (ok) { /* whatever the guard accepts, regcomp handles quickly */
    regex_t re;
    if (regcomp(&re, pattern, REG_EXTENDED) == 0)
      regfree(&re);
  }
}

static void test_regex_guard(void **state)
{
  expect_guard("bot|crawler", true);
  expect_guard("^/api/v[0-9]+/", true);
  expect_guard("(ab)+c*d?", true);
  expect_guard("[[:alpha:]]+x", true);
  expect_guard("[]a]+", true);
  expect_guard("a{1,100}", true);
  expect_guard("(a{1,100}){1,100}", true);      /* 10 201 copies: under the cap */
  expect_guard("x{", true);                      /* not an interval: a plain '{' */
  expect_guard("\\++", true);                    /* an escaped '+' repeated */
  expect_guard("a++", false);                    /* stacked quantifiers */
  expect_guard("a*?", false);
  expect_guard("a{2}{3}", false);
  expect_guard("((a{1,255}){1,255}){1,255}", false);
  expect_guard("(((((((((((((((((((((a+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+", false);
  /* deep nesting is refused before regcomp could recurse into it */
  size_t n = 200000;
  char *deep = malloc(2 * n + 2);
  assert_non_null(deep);
  memset(deep, '(', n);
  deep[n] = 'a';
  memset(deep + n + 1, ')', n);
  deep[2 * n + 1] = '\0';
  expect_guard(deep, false);
  free(deep);
  expect_guard("((((((((((((((((((((a))))))))))))))))))))", true); /* 20 levels */
}

static void expect_retain(const char *s, int rc, int64_t age, uint64_t bytes)
{
  int64_t a = -1;
  uint64_t b = 1;
  assert_int_equal(zql_parse_retain(s, &a, &b), rc);
  if (rc == 0) {
    assert_int_equal(a, age);
    assert_int_equal(b, bytes);
  }
}

static void test_parse_retain(void **state)
{
  expect_retain("30d", 0, 30LL * 86400000, 0);
  expect_retain("1w2d", 0, 9LL * 86400000, 0);
  expect_retain("36h", 0, 36LL * 3600000, 0);
  expect_retain("10m", 0, 600000, 0);           /* lower-case m: minutes */
  expect_retain("10M", 0, 0, 10ull << 20);      /* upper-case M: MiB */
  expect_retain("500MB", 0, 0, 500000000ull);
  expect_retain("2GiB", 0, 0, 2ull << 30);
  expect_retain("1T", 0, 0, 1ull << 40);
  expect_retain("1gb", 0, 0, 1000000000ull);
  expect_retain("", -1, 0, 0);
  expect_retain("5x", -1, 0, 0);
  expect_retain("0d", -1, 0, 0);
  expect_retain("0MB", -1, 0, 0);
  expect_retain("1h1d", -1, 0, 0);              /* parts largest first */
  expect_retain("d", -1, 0, 0);
  expect_retain("99999999999999999999d", -1, 0, 0);
  expect_retain("99999999999TB", -1, 0, 0);
}

/* `zql status`: a name and a schedule longer than their columns' 24 and 22 characters
 * widen them; every row's last run starts under the header's "last run". */
static void test_status_columns(void **state)
{
  bson_t *st = BCON_NEW(
      "aggregates", "[",
      "{", "name", BCON_UTF8("an_aggregate_with_a_rather_long_name"), "schedule",
      BCON_UTF8("schedule every 1h"), "watermark", BCON_INT64(1234567), "lag", BCON_INT64(0),
      "last_run", "{", "run", BCON_INT64(7), "kind", BCON_UTF8("incremental"), "status",
      BCON_UTF8("committed"), "seconds", BCON_DOUBLE(0.012), "}", "}",
      "{", "name", BCON_UTF8("b"), "schedule_clause",
      BCON_UTF8("schedule on event type == \"a rather long type\""), "watermark", BCON_INT64(5),
      "lag", BCON_INT64(2), "}",
      "{", "name", BCON_UTF8("c"), "watermark", BCON_INT64(0), "lag", BCON_INT64(0), "}",
      "]");
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  assert_non_null(f);
  zql_status_print(st, f);
  fclose(f);
  bson_destroy(st);
  const char *hdr = strstr(out, "aggregate ");
  assert_non_null(hdr);
  const char *lr = strstr(hdr, "last run");
  assert_non_null(lr);
  size_t col = (size_t)(lr - hdr);
  int rows = 0;
  for (const char *l = strchr(hdr, '\n'); l && l[1]; l = strchr(l + 1, '\n')) {
    const char *row = l + 1, *end = strchr(row, '\n');
    assert_true((size_t)((end ? end : row + strlen(row)) - row) > col);
    if (row[col] != '#' && strncmp(row + col, "never", 5) != 0)
      fail_msg("row %d's last run is not under the header's:\n%s", rows + 1, out);
    assert_true(row[col - 1] == ' ');
    rows++;
  }
  assert_int_equal(rows, 3);
  assert_non_null(strstr(out, "on event type == \"a rather long type\""));
  assert_non_null(strstr(out, "on demand"));
  free(out);
}

int zql_unit_text(void)
{
  const struct CMUnitTest tests[] = {
      ZQL_UNIT_TEST(test_edit_distance),
      ZQL_UNIT_TEST(test_regex_guard),
      ZQL_UNIT_TEST(test_parse_retain),
      ZQL_UNIT_TEST(test_status_columns),
  };
  return cmocka_run_group_tests_name("text", tests, NULL, NULL);
}
