/*
 * test_cron.c -- unit tests of crontab expressions (runtime/cron.c): parsing with every
 * error and its column, the next fire time (month ends, leap years, Vixie's day-of-month
 * OR day-of-week rule, DST gaps and folds in America/New_York and Europe/London), and the
 * normalised rendering.
 *
 * Expected instants: the DST transitions are those of the tzdata (zdump -v):
 * New York 2024-03-10 07:00Z (02:00 EST -> 03:00 EDT) and 2024-11-03 06:00Z (02:00 EDT
 * -> 01:00 EST); London 2024-03-31 01:00Z (01:00 GMT -> 02:00 BST) and 2024-10-27 01:00Z
 * (02:00 BST -> 01:00 GMT). Zone tests are skipped when the system tzdata lacks the zone.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"
#include "runtime/base/tz.h"
#include "runtime/base/cron.h"

int zql_unit_cron(void);

/* An instant from an ISO-8601 text with an offset. */
static int64_t U(const char *iso)
{
  int64_t ms = 0;
  if (zql_parse_iso8601(iso, strlen(iso), NULL, &ms) != 0)
    fail_msg("bad test date '%s'", iso);
  return ms;
}

static const zql_tz_t *Z(const char *name)
{
  const zql_tz_t *z = NULL;
  if (zql_tz_load(name, &z, NULL) != 0)
    skip();
  return z;
}

static zql_cron_t C(const char *text)
{
  zql_cron_t c;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  if (zql_cron_parse(text, &c, &err, NULL) != 0)
    fail_msg("cron '%s': %s", text, err.buf);
  zql_strbuf_release(&err);
  return c;
}

/* Asserts zql_cron_next(text, zone, after) == expect (ISO texts; expect NULL: never). */
static void check_next(const char *text, const zql_tz_t *z, const char *after,
                       const char *expect)
{
  zql_cron_t c = C(text);
  int64_t got = zql_cron_next(&c, z, U(after));
  int64_t want = expect ? U(expect) : INT64_MAX;
  if (got != want) {
    char buf[64] = "never";
    if (got != INT64_MAX)
      zql_tz_format(buf, sizeof buf, "%FT%T%z", 9, zql_tz_utc(), got);
    fail_msg("cron '%s' after %s: got %s, expected %s", text, after, buf,
             expect ? expect : "never");
  }
}

/* {==== parsing ========================================================================== */

static void test_parse_valid(void **state)
{
  zql_cron_t c = C("*/15 * * * *");
  assert_true(c.minutes == ((UINT64_C(1) << 0) | (UINT64_C(1) << 15) | (UINT64_C(1) << 30) |
                            (UINT64_C(1) << 45)));
  assert_int_equal(c.hours, 0xffffff);
  assert_int_equal(c.mdays, 0xfffffffe);
  assert_int_equal(c.months, 0x1ffe);
  assert_int_equal(c.wdays, 0x7f);
  assert_true(c.mday_star && c.wday_star);

  c = C("0 9 * * MON-FRI");
  assert_true(c.minutes == 1 && c.hours == 1u << 9 && c.wdays == 0x3e);
  assert_true(c.mday_star && !c.wday_star);
  c = C("5 4 * * sun");
  assert_int_equal(c.wdays, 1);
  c = C("5 4 * * 7");
  assert_int_equal(c.wdays, 1);
  c = C("0 0 * * 5-7");
  assert_int_equal(c.wdays, 0x61); /* Fri, Sat, Sun */
  c = C("0 0 * JAN,jul *");
  assert_int_equal(c.months, (1u << 1) | (1u << 7));
  c = C("0 0 * jan-MAR/2 *");
  assert_int_equal(c.months, (1u << 1) | (1u << 3));
  c = C("10/20 * * * *");
  assert_true(c.minutes == ((UINT64_C(1) << 10) | (UINT64_C(1) << 30) | (UINT64_C(1) << 50)));
  c = C("1-10/3,59 * * * *");
  assert_true(c.minutes == ((UINT64_C(1) << 1) | (UINT64_C(1) << 4) | (UINT64_C(1) << 7) |
                            (UINT64_C(1) << 10) | (UINT64_C(1) << 59)));
  c = C(" \t0   0 1,15 * *  ");
  assert_int_equal(c.mdays, (1u << 1) | (1u << 15));
  assert_true(!c.mday_star && c.wday_star);
  c = C("0 0 */2 * *");
  assert_true(c.mday_star);
  assert_int_equal(c.mdays, 0xaaaaaaaa);
  C("0 0 29 2 *");   /* fires in leap years */
  C("0 0 30 2 MON"); /* both restricted: Mondays of February */
  C("0 0 31 1-12 *");

  /* the macros */
  zql_cron_t m = C("@hourly"), e = C("0 * * * *");
  assert_memory_equal(&m, &e, sizeof m);
  m = C("@daily");
  e = C("0 0 * * *");
  assert_memory_equal(&m, &e, sizeof m);
  m = C("  @midnight ");
  assert_memory_equal(&m, &e, sizeof m);
  m = C("@weekly");
  e = C("0 0 * * 0");
  assert_memory_equal(&m, &e, sizeof m);
  m = C("@monthly");
  e = C("0 0 1 * *");
  assert_memory_equal(&m, &e, sizeof m);
  m = C("@yearly");
  e = C("0 0 1 1 *");
  assert_memory_equal(&m, &e, sizeof m);
  m = C("@annually");
  assert_memory_equal(&m, &e, sizeof m);
}

static void test_parse_errors(void **state)
{
  static const struct {
    const char *text, *msg;
    size_t col;
  } cases[] = {
      {"61 * * * *", "minute 61 is out of range 0-59", 0},
      {"0 24 * * *", "hour 24 is out of range 0-23", 2},
      {"0 0 0 * *", "day-of-month 0 is out of range 1-31", 4},
      {"0 0 32 * *", "day-of-month 32 is out of range 1-31", 4},
      {"0 0 * 13 *", "month 13 is out of range 1-12", 6},
      {"0 0 * * 8", "day-of-week 8 is out of range 0-7", 8},
      {"0 0 * * 1-9", "day-of-week 9 is out of range 0-7", 10},
      {"99999999999 * * * *", "minute 99999999999 is out of range 0-59", 0},
      {"* * * *", "expected 5 fields, found 4", 7},
      {"* * * * * *", "expected 5 fields, found 6", 10},
      {"", "expected 5 fields, found 0", 0},
      {"   ", "expected 5 fields, found 0", 3},
      {"*/0 * * * *", "step 0 in the minute field is out of range 1-59", 2},
      {"0 */24 * * *", "step 24 in the hour field is out of range 1-23", 4},
      {"*/ * * * *", "missing step after '/' in the minute field", 2},
      {"30-10 * * * *", "range 30-10 in the minute field is reversed", 0},
      {"0 0 * * FRI-MON", "range FRI-MON in the day-of-week field is reversed", 8},
      {"1,,2 * * * *", "empty item in the minute field", 2},
      {"1, * * * *", "empty item in the minute field", 2},
      {"0 ,1 * * *", "empty item in the hour field", 2},
      {"5- * * * *", "missing value in the minute field", 2},
      {"0 0 * FOO *", "unknown month name 'FOO'", 6},
      {"0 0 * * FRIDAY", "unknown day name 'FRIDAY'", 8},
      {"0 0 * * JAN", "unknown day name 'JAN'", 8},
      {"a * * * *", "unexpected 'a' in the minute field", 0},
      {"0 MON * * *", "unexpected 'M' in the hour field", 2},
      {"1x * * * *", "unexpected 'x' in the minute field", 1},
      {"1-5x * * * *", "unexpected 'x' in the minute field", 3},
      {"*5 * * * *", "unexpected '5' in the minute field", 1},
      {"@reboot", "unknown cron macro '@reboot' (use @yearly, @annually, @monthly, @weekly, "
                  "@daily, @midnight or @hourly)", 0},
      {"@DAILY", "unknown cron macro '@DAILY' (use @yearly, @annually, @monthly, @weekly, "
                 "@daily, @midnight or @hourly)", 0},
      {"@daily 5", "unexpected '5' after '@daily'", 7},
      {" @every 5m", "'@every' takes a duration, not a cron expression (write 'schedule every "
                     "15m')", 1},
      {"0 0 30 2 *", "day-of-month 30 never occurs in February", 4},
      {"0 0 30,31 feb *", "day-of-month 30,31 never occurs in February", 4},
      {"0 0 31 4,6,9,11 *",
       "day-of-month 31 never occurs in April, June, September or November", 4},
      {"0 0 31 2,4 *", "day-of-month 31 never occurs in February or April", 4},
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(cases); i++) {
    zql_cron_t c;
    zql_strbuf_t err = ZQL_STRBUF_INIT;
    size_t col = 999;
    int rc = zql_cron_parse(cases[i].text, &c, &err, &col);
    if (rc != ZQL_E_BAD_CRON || strcmp(err.buf, cases[i].msg) != 0 || col != cases[i].col)
      fail_msg("'%s': rc %d, '%s' at %zu; expected '%s' at %zu", cases[i].text, rc, err.buf,
               col, cases[i].msg, cases[i].col);
    zql_strbuf_release(&err);
    /* NULL err and err_col are allowed */
    assert_int_equal(zql_cron_parse(cases[i].text, &c, NULL, NULL), ZQL_E_BAD_CRON);
  }
}

/* }==== */

/* {==== next fire times ================================================================== */

static void test_next_utc(void **state)
{
  const zql_tz_t *utc = zql_tz_utc();
  check_next("*/15 * * * *", utc, "2024-01-01T00:07:00Z", "2024-01-01T00:15:00Z");
  check_next("*/15 * * * *", utc, "2024-01-01T00:14:59.999Z", "2024-01-01T00:15:00Z");
  check_next("*/15 * * * *", utc, "2024-01-01T00:15:00Z", "2024-01-01T00:30:00Z");
  check_next("*/15 * * * *", utc, "2024-12-31T23:59:30Z", "2025-01-01T00:00:00Z");
  check_next("* * * * *", utc, "2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z");
  check_next("@hourly", utc, "2024-05-05T10:30:00Z", "2024-05-05T11:00:00Z");
  check_next("@daily", NULL, "2024-05-05T10:30:00Z", "2024-05-06T00:00:00Z");
  check_next("0 12 1 * *", utc, "2023-12-15T00:00:00Z", "2024-01-01T12:00:00Z");
  check_next("@yearly", utc, "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z");
  check_next("59 23 31 12 *", utc, "2024-01-01T00:00:00Z", "2024-12-31T23:59:00Z");
  /* month ends */
  check_next("0 0 31 * *", utc, "2024-01-31T00:00:00Z", "2024-03-31T00:00:00Z");
  check_next("0 0 31 * *", utc, "2024-05-31T00:00:00Z", "2024-07-31T00:00:00Z");
  check_next("0 0 30 * *", utc, "2024-01-30T00:00:00Z", "2024-03-30T00:00:00Z");
  check_next("0 0 29 * *", utc, "2023-01-29T00:00:00Z", "2023-03-29T00:00:00Z");
  /* leap years: 2100 is not one, so after 2096 comes 2104 */
  check_next("0 0 29 2 *", utc, "2023-03-01T00:00:00Z", "2024-02-29T00:00:00Z");
  check_next("0 0 29 2 *", utc, "2024-02-29T00:00:00Z", "2028-02-29T00:00:00Z");
  check_next("0 0 29 2 *", utc, "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z");
  check_next("0 0 28-29 2 *", utc, "2100-02-28T00:00:00Z", "2101-02-28T00:00:00Z");
  /* Vixie: both day fields restricted -> either matches (2024-01-01 is a Monday) */
  check_next("0 0 13 * FRI", utc, "2024-01-01T00:00:00Z", "2024-01-05T00:00:00Z");
  check_next("0 0 13 * FRI", utc, "2024-01-05T00:00:00Z", "2024-01-12T00:00:00Z");
  check_next("0 0 13 * FRI", utc, "2024-01-12T00:00:00Z", "2024-01-13T00:00:00Z");
  check_next("0 0 13 * FRI", utc, "2024-01-13T00:00:00Z", "2024-01-19T00:00:00Z");
  /* ... but a field starting with '*' makes it AND: the 1st/11th/21st/31st that are
   * Fridays; the first in 2024 is March 1st */
  check_next("0 0 */10 * FRI", utc, "2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z");
  check_next("0 0 1 * *", utc, "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z");
  check_next("0 0 * * 0", utc, "2024-01-01T00:00:00Z", "2024-01-07T00:00:00Z");
  check_next("0 0 * * 7", utc, "2024-01-01T00:00:00Z", "2024-01-07T00:00:00Z");
  check_next("0 0 30 2 MON", utc, "2024-01-01T00:00:00Z", "2024-02-05T00:00:00Z");
  /* before 1970 */
  check_next("0 0 1 1 *", utc, "1969-06-01T00:00:00Z", "1970-01-01T00:00:00Z");
  /* near the end of the int64 range there is no next minute */
  zql_cron_t c = C("* * * * *");
  assert_true(zql_cron_next(&c, utc, INT64_MAX - 1000) == INT64_MAX);
  assert_true(zql_cron_next(&c, utc, INT64_MIN / 2) > INT64_MIN / 2);
  /* an expression the parser would reject (February 30th) terminates with "never" */
  zql_cron_t feb30 = {.minutes = 1, .hours = 1, .mdays = 1u << 30, .months = 1u << 2,
                      .wdays = 0x7f, .mday_star = false, .wday_star = true};
  assert_true(zql_cron_next(&feb30, utc, U("2024-01-01T00:00:00Z")) == INT64_MAX);
  zql_cron_t empty = {0};
  assert_true(zql_cron_next(&empty, utc, 0) == INT64_MAX);
}

/* Successive fire times: each is the next after the previous one. */
static void test_next_sequence(void **state)
{
  zql_cron_t c = C("0 9-17/4 * * mon-fri");
  static const char *const want[] = {
      "2024-03-01T09:00:00Z", "2024-03-01T13:00:00Z", "2024-03-01T17:00:00Z",
      "2024-03-04T09:00:00Z", "2024-03-04T13:00:00Z"};
  int64_t t = U("2024-03-01T08:00:00Z"); /* a Friday */
  for (size_t i = 0; i < ZQL_ARRAY_LEN(want); i++) {
    t = zql_cron_next(&c, NULL, t);
    assert_true(t == U(want[i]));
  }
  /* a decade of a rare expression (29 February at 12:34) stays cheap and exact */
  c = C("34 12 29 2 *");
  t = U("2000-01-01T00:00:00Z");
  int n = 0;
  while ((t = zql_cron_next(&c, NULL, t)) < U("2100-01-01T00:00:00Z")) {
    zql_civil_t lc;
    zql_tz_to_civil(zql_tz_utc(), t, &lc);
    assert_true(lc.month == 2 && lc.day == 29 && lc.hour == 12 && lc.minute == 34);
    n++;
  }
  assert_int_equal(n, 25); /* 2000, 2004, ..., 2096 */
}

static void test_next_new_york(void **state)
{
  const zql_tz_t *ny = Z("America/New_York");
  /* ordinary days: 09:00 EST is 14:00Z, 09:00 EDT 13:00Z */
  check_next("0 9 * * *", ny, "2024-03-08T15:00:00Z", "2024-03-09T14:00:00Z");
  check_next("0 9 * * *", ny, "2024-03-09T15:00:00Z", "2024-03-10T13:00:00Z");
  /* the gap: 02:30 does not exist on 2024-03-10 and fires at 03:00 EDT (07:00Z) */
  check_next("30 2 * * *", ny, "2024-03-09T12:00:00Z", "2024-03-10T07:00:00Z");
  check_next("30 2 * * *", ny, "2024-03-10T07:00:00Z", "2024-03-11T06:30:00Z");
  /* every time inside the gap fires once, at its end */
  check_next("*/15 2 * * *", ny, "2024-03-10T06:00:00Z", "2024-03-10T07:00:00Z");
  check_next("*/15 2 * * *", ny, "2024-03-10T07:00:00Z", "2024-03-11T06:00:00Z");
  /* 02:00, 02:30 and 03:00 all map to 07:00Z: one fire, then 03:30 */
  check_next("0,30 2-3 * * *", ny, "2024-03-10T06:59:00Z", "2024-03-10T07:00:00Z");
  check_next("0,30 2-3 * * *", ny, "2024-03-10T07:00:00Z", "2024-03-10T07:30:00Z");
  /* the fold: 01:30 occurs at 05:30Z (EDT) and 06:30Z (EST); only the first fires */
  check_next("30 1 * * *", ny, "2024-11-02T12:00:00Z", "2024-11-03T05:30:00Z");
  check_next("30 1 * * *", ny, "2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z");
  /* a start inside the second occurrence does not fire the repeated time again */
  check_next("30 1 * * *", ny, "2024-11-03T06:10:00Z", "2024-11-04T06:30:00Z");
  check_next("45 1 * * *", ny, "2024-11-03T05:50:00Z", "2024-11-04T06:45:00Z");
  /* a wildcard expression skips the repeated hour (it already ran through it once) */
  check_next("*/30 * * * *", ny, "2024-11-03T05:30:00Z", "2024-11-03T07:00:00Z");
  check_next("*/30 * * * *", ny, "2024-11-03T05:00:00Z", "2024-11-03T05:30:00Z");
  check_next("0 2 * * *", ny, "2024-11-03T05:30:00Z", "2024-11-03T07:00:00Z");
}

static void test_next_london(void **state)
{
  const zql_tz_t *ldn = Z("Europe/London");
  /* the gap: 01:30 on 2024-03-31 does not exist; 02:00 BST is 01:00Z */
  check_next("30 1 * * *", ldn, "2024-03-30T12:00:00Z", "2024-03-31T01:00:00Z");
  check_next("30 1 * * *", ldn, "2024-03-31T01:00:00Z", "2024-04-01T00:30:00Z");
  /* the fold: 01:30 BST (00:30Z) fires, 01:30 GMT (01:30Z) does not */
  check_next("30 1 * * *", ldn, "2024-10-26T12:00:00Z", "2024-10-27T00:30:00Z");
  check_next("30 1 * * *", ldn, "2024-10-27T00:30:00Z", "2024-10-28T01:30:00Z");
  /* weekdays at 09:00 local: Friday 2024-03-29 (GMT), then Monday 2024-04-01 (BST) */
  check_next("0 9 * * 1-5", ldn, "2024-03-29T08:00:00Z", "2024-03-29T09:00:00Z");
  check_next("0 9 * * 1-5", ldn, "2024-03-29T09:00:00Z", "2024-04-01T08:00:00Z");
  /* the month boundary in local time: midnight of 1 July BST is 30 June 23:00Z */
  check_next("@monthly", ldn, "2024-06-15T00:00:00Z", "2024-06-30T23:00:00Z");
}

/* }==== */

/* {==== rendering ======================================================================== */

static void test_format(void **state)
{
  static const struct {
    const char *text, *want;
  } cases[] = {
      {"0 9 * * mon-fri", "0 9 * * 1-5"},
      {"*/15 * * * *", "*/15 * * * *"},
      {"0,15,30,45 * * * *", "*/15 * * * *"},
      {"0-59 * * * *", "* * * * *"},
      {"0 0 1,15 * *", "0 0 1,15 * *"},
      {"0 0 * * 7", "0 0 * * 0"},
      {"0 0 * * 5-7", "0 0 * * 0,5,6"},
      {"0 0 1-31 * *", "0 0 1-31 * *"},
      {"0 0 */2 * *", "0 0 */2 * *"},
      {"0 0 * * */2", "0 0 * * */2"},
      {"0 0 * * 0-7", "0 0 * * 0-6"},
      {"0 0 */2,4 * *", "0 0 */31,3-5,7,9,11,13,15,17,19,21,23,25,27,29,31 * *"},
      {"1-5/2 1,2 * jan-mar,dec *", "1,3,5 1,2 * 1-3,12 *"},
      {"@weekly", "0 0 * * 0"},
      {"10/20 * * * *", "10,30,50 * * * *"},
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(cases); i++) {
    zql_cron_t c = C(cases[i].text), c2;
    zql_strbuf_t sb = ZQL_STRBUF_INIT, sb2 = ZQL_STRBUF_INIT;
    zql_cron_format(&c, &sb);
    if (strcmp(sb.buf, cases[i].want) != 0)
      fail_msg("format '%s': '%s', expected '%s'", cases[i].text, sb.buf, cases[i].want);
    /* the rendering parses back to the same expression, and renders the same */
    assert_int_equal(zql_cron_parse(sb.buf, &c2, NULL, NULL), 0);
    assert_memory_equal(&c, &c2, sizeof c);
    zql_cron_format(&c2, &sb2);
    assert_string_equal(sb.buf, sb2.buf);
    zql_strbuf_release(&sb);
    zql_strbuf_release(&sb2);
  }
}

/* }==== */

int zql_unit_cron(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_valid),   cmocka_unit_test(test_parse_errors),
      cmocka_unit_test(test_next_utc),      cmocka_unit_test(test_next_sequence),
      cmocka_unit_test(test_next_new_york), cmocka_unit_test(test_next_london),
      cmocka_unit_test(test_format),
  };
  int failed = cmocka_run_group_tests_name("cron", tests, NULL, NULL);
  zql_tz_cache_clear();
  return failed;
}
