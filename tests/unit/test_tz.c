/*
 * test_tz.c -- unit tests of time zones, calendar, buckets, ISO-8601 and strftime
 * (runtime/base/tz.c, layer 0).
 *
 * Expected instants were taken from the tzdata (zdump -v) and cross-checked with an
 * independent implementation (Python's zoneinfo); tests/unit/tzcheck.c compares the reader
 * with glibc on every zone. Zone-dependent tests need the system tzdata and are skipped
 * (reported as SKIP) when America/New_York cannot be loaded. Covered:
 *   - the calendar helpers over the whole int64 ms range;
 *   - civil conversions, gaps and folds in New York, London, Lord Howe (30-minute DST),
 *     Kathmandu (+05:45), Sao Paulo and Havana (DST at midnight), Apia (a skipped day);
 *   - every bucket unit, `every N`, origins, week starts, negative times, range errors;
 *   - TZif reading: versions 1 and 2+, footers, every truncation, byte-flip fuzzing,
 *     leap-second files, out-of-memory at every allocation, the cache and its threads;
 *   - POSIX TZ rules: M, J and zero-based day rules, negative and > 24 h times, DST all
 *     year, rules beyond the precomputed years;
 *   - ISO-8601 accept/reject tables and messages; strftime conversions.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"
#include "runtime/base/tz.h"
#include "runtime/base/tzdb.h"


/* An instant from an ISO-8601 text with an offset (the parser is tested separately). */
static int64_t U(const char *iso)
{
  int64_t ms = 0;
  if (zql_parse_iso8601(iso, strlen(iso), NULL, &ms) != 0)
    fail_msg("bad test date '%s'", iso);
  return ms;
}

/* A zone from the system tzdata; skips the test when there is none. */
static const zql_tz_t *Z(const char *name)
{
  const zql_tz_t *z = NULL;
  if (zql_tz_load(name, &z, NULL) != 0)
    skip();
  return z;
}

/* Format t in z with fmt into a static buffer. */
static const char *F(const zql_tz_t *z, int64_t t, const char *fmt)
{
  static char buf[256];
  zql_tz_format(buf, sizeof buf, fmt, strlen(fmt), z, t);
  return buf;
}

/* The local date-time of t in z as "YYYY-MM-DD HH:MM:SS ABBR". */
static const char *L(const zql_tz_t *z, int64_t t)
{
  return F(z, t, "%F %T %Z");
}

static zql_bucket_t B(const char *unit, int64_t every, const char *tz, const char *week,
                      const char *origin)
{
  zql_bucket_t b;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_bucket_setup(&b, unit, every, tz, week, origin, &err);
  if (rc == ZQL_E_UNKNOWN_TIMEZONE) {
    zql_strbuf_release(&err);
    skip();
  }
  if (rc != 0)
    fail_msg("bucket setup: %s", err.buf);
  zql_strbuf_release(&err);
  return b;
}

/* Asserts the bucket of t is [start, end) given as ISO texts. */
static void check_bucket(const zql_bucket_t *b, int64_t t, const char *start, const char *end)
{
  int64_t s, e, s2, e2;
  assert_int_equal(zql_bucket_range(b, t, &s, &e), 0);
  assert_int_equal(zql_bucket_start(b, t, &s2), 0);
  assert_int_equal(zql_bucket_end(b, t, &e2), 0);
  if (s != U(start) || e != U(end) || s2 != s || e2 != e)
    fail_msg("bucket of %" PRId64 ": [%" PRId64 ", %" PRId64 "), expected [%s, %s)", t, s, e,
             start, end);
  /* the boundaries map to themselves */
  assert_int_equal(zql_bucket_range(b, s, &s2, &e2), 0);
  assert_true(s2 == s && e2 == e);
  assert_int_equal(zql_bucket_range(b, e - 1, &s2, &e2), 0);
  assert_true(s2 == s && e2 == e);
}

/* {==== calendar ========================================================================= */

static void test_calendar(void **state)
{
  assert_int_equal(zql_days_from_civil(1970, 1, 1), 0);
  assert_int_equal(zql_days_from_civil(2000, 3, 1), 11017);
  assert_int_equal(zql_days_from_civil(1969, 12, 31), -1);
  assert_int_equal(zql_days_from_civil(2024, 2, 30), zql_days_from_civil(2024, 3, 1));
  assert_int_equal(zql_days_from_civil(0, 1, 1), -719528);
  assert_int_equal(zql_weekday_from_days(0), 4);
  assert_int_equal(zql_weekday_from_days(zql_days_from_civil(2024, 1, 1)), 1);
  assert_int_equal(zql_weekday_from_days(zql_days_from_civil(2024, 6, 2)), 7);
  assert_int_equal(zql_weekday_from_days(-1), 3);
  assert_true(zql_is_leap_year(2000) && zql_is_leap_year(2024) && zql_is_leap_year(0) &&
              zql_is_leap_year(-4));
  assert_false(zql_is_leap_year(1900) || zql_is_leap_year(2023) || zql_is_leap_year(-1));
  assert_int_equal(zql_days_in_month(2024, 2), 29);
  assert_int_equal(zql_days_in_month(2100, 2), 28);
  assert_int_equal(zql_days_in_month(2023, 12), 31);
  assert_int_equal(zql_floor_div(-1, 1000), -1);
  assert_int_equal(zql_floor_div(-1000, 1000), -1);
  assert_int_equal(zql_floor_div(999, 1000), 0);
  assert_int_equal(zql_floor_mod(-1, 7), 6);
  assert_int_equal(zql_floor_mod(INT64_MIN, 1000), 192);

  /* round trips over the whole int64 ms range of days, and consecutive days */
  const int64_t lim = INT64_MAX / ZQL_MS_PER_DAY + 1;
  uint64_t seed = 12345;
  for (int i = 0; i < 200000; i++) {
    seed = seed * UINT64_C(6364136223846793005) + 1442695040888963407u;
    int64_t d = (int64_t)(seed >> 11) % lim * ((seed & 1) ? -1 : 1);
    int64_t y;
    int m, dd;
    zql_civil_from_days(d, &y, &m, &dd);
    assert_true(m >= 1 && m <= 12 && dd >= 1 && dd <= zql_days_in_month(y, m));
    assert_int_equal(zql_days_from_civil(y, m, dd), d);
  }
  int64_t py;
  int pm, pd;
  zql_civil_from_days(-800000, &py, &pm, &pd);
  for (int64_t d = -799999; d < 800000; d++) {
    int64_t y;
    int m, dd;
    zql_civil_from_days(d, &y, &m, &dd);
    bool next = (y == py && m == pm && dd == pd + 1) ||
                (y == py && m == pm + 1 && dd == 1 && pd == zql_days_in_month(py, pm)) ||
                (y == py + 1 && m == 1 && dd == 1 && pm == 12 && pd == 31);
    if (!next)
      fail_msg("day %" PRId64 " does not follow the previous one", d);
    py = y, pm = m, pd = dd;
  }
}

/* }==== */

/* {==== civil time ======================================================================= */

static void test_utc(void **state)
{
  const zql_tz_t *z = zql_tz_utc();
  assert_string_equal(zql_tz_name(z), "UTC");
  const zql_tz_t *z2;
  assert_int_equal(zql_tz_load("UTC", &z2, NULL), 0);
  assert_ptr_equal(z, z2);
  zql_civil_t c;
  zql_tz_to_civil(z, -1, &c);
  assert_int_equal(c.year, 1969);
  assert_int_equal(c.month, 12);
  assert_int_equal(c.day, 31);
  assert_int_equal(c.hour, 23);
  assert_int_equal(c.minute, 59);
  assert_int_equal(c.second, 59);
  assert_int_equal(c.ms, 999);
  assert_int_equal(c.wday, 3);
  assert_int_equal(c.yday, 365);
  assert_int_equal(c.offset, 0);
  assert_string_equal(c.abbr, "UTC");
  zql_tz_to_civil(z, U("2024-12-31T12:34:56.789Z"), &c);
  assert_int_equal(c.yday, 366);
  assert_int_equal(c.ms, 789);
  /* the extremes of the int64 ms range */
  zql_tz_to_civil(z, INT64_MIN, &c);
  assert_int_equal(c.year, -292275055);
  assert_int_equal(c.month, 5);
  assert_int_equal(c.day, 16);
  zql_tz_to_civil(z, INT64_MAX, &c);
  assert_int_equal(c.year, 292278994);
  assert_int_equal(c.month, 8);
  assert_int_equal(c.day, 17);
  assert_int_equal(c.ms, 807);
  int64_t t;
  assert_false(zql_tz_from_civil(z, &c, ZQL_TZ_GAP_FAIL, &t)); /* within 54 h of the end */
  zql_tz_to_civil(z, INT64_MAX - 3 * ZQL_MS_PER_DAY, &c);
  assert_true(zql_tz_from_civil(z, &c, ZQL_TZ_GAP_FAIL, &t));
  assert_true(t == INT64_MAX - 3 * ZQL_MS_PER_DAY);
  zql_tz_to_civil(z, INT64_MIN + 3 * ZQL_MS_PER_DAY, &c);
  assert_true(zql_tz_from_civil(z, &c, ZQL_TZ_GAP_FAIL, &t));
  assert_true(t == INT64_MIN + 3 * ZQL_MS_PER_DAY);
  assert_false(zql_tz_next_transition(z, 0, &t));
  /* out-of-range fields carry over; month must be valid; overflow is refused */
  zql_civil_t in = {.year = 2024, .month = 2, .day = 30, .hour = 24};
  assert_true(zql_tz_from_civil(z, &in, ZQL_TZ_GAP_FAIL, &t));
  assert_true(t == U("2024-03-02T00:00Z"));
  in.day = 0;
  in.hour = -1;
  assert_true(zql_tz_from_civil(z, &in, ZQL_TZ_GAP_FAIL, &t));
  assert_true(t == U("2024-01-30T23:00Z"));
  in.month = 13;
  assert_false(zql_tz_from_civil(z, &in, ZQL_TZ_GAP_FAIL, &t));
  in = (zql_civil_t){.year = 292278994, .month = 12, .day = 31};
  assert_false(zql_tz_from_civil(z, &in, ZQL_TZ_GAP_FAIL, &t));
  in.year = -292275055;
  in.month = 1;
  in.day = 1;
  assert_false(zql_tz_from_civil(z, &in, ZQL_TZ_GAP_FAIL, &t));
}

static void test_new_york(void **state)
{
  const zql_tz_t *ny = Z("America/New_York");
  assert_string_equal(zql_tz_name(ny), "America/New_York");
  const zql_tz_t *again;
  assert_int_equal(zql_tz_load("America/New_York", &again, NULL), 0);
  assert_ptr_equal(ny, again); /* cached */

  /* spring forward 2024-03-10 02:00 EST -> 03:00 EDT (07:00Z) */
  int64_t T = U("2024-03-10T07:00Z");
  assert_int_equal(zql_tz_offset_at(ny, T - 1), -5 * 3600);
  assert_int_equal(zql_tz_offset_at(ny, T), -4 * 3600);
  assert_string_equal(L(ny, T - 1), "2024-03-10 01:59:59 EST");
  assert_string_equal(L(ny, T), "2024-03-10 03:00:00 EDT");
  zql_civil_t c;
  zql_tz_to_civil(ny, T, &c);
  assert_true(c.isdst);
  assert_int_equal(c.wday, 7);
  int64_t t, next;
  assert_true(zql_tz_next_transition(ny, U("2024-01-01T00:00Z"), &next));
  assert_true(next == T);
  assert_true(zql_tz_next_transition(ny, T - 1, &next) && next == T);
  assert_true(zql_tz_next_transition(ny, T, &next) && next == U("2024-11-03T06:00Z"));

  zql_civil_t gap = {.year = 2024, .month = 3, .day = 10, .hour = 2, .minute = 30, .ms = 5};
  assert_true(zql_tz_from_civil(ny, &gap, ZQL_TZ_GAP_SHIFT, &t));
  assert_true(t == U("2024-03-10T07:30:00.005Z")); /* 03:30 EDT */
  assert_true(zql_tz_from_civil(ny, &gap, ZQL_TZ_GAP_NEXT, &t));
  assert_true(t == T);
  assert_false(zql_tz_from_civil(ny, &gap, ZQL_TZ_GAP_FAIL, &t));
  gap.hour = 1;
  gap.minute = 59;
  gap.second = 59;
  assert_true(zql_tz_from_civil(ny, &gap, ZQL_TZ_GAP_FAIL, &t));
  assert_true(t == U("2024-03-10T06:59:59.005Z"));
  gap.hour = 3;
  gap.minute = gap.second = 0;
  assert_true(zql_tz_from_civil(ny, &gap, ZQL_TZ_GAP_FAIL, &t));
  assert_true(t == U("2024-03-10T07:00:00.005Z"));

  /* fall back 2024-11-03 02:00 EDT -> 01:00 EST: 01:30 exists twice, the earlier wins */
  zql_civil_t fold = {.year = 2024, .month = 11, .day = 3, .hour = 1, .minute = 30};
  assert_true(zql_tz_from_civil(ny, &fold, ZQL_TZ_GAP_FAIL, &t));
  assert_true(t == U("2024-11-03T05:30Z"));
  assert_string_equal(L(ny, t), "2024-11-03 01:30:00 EDT");
  assert_string_equal(L(ny, t + 3600000), "2024-11-03 01:30:00 EST");

  /* far past (LMT, before the first transition) and far future (the footer rule) */
  assert_int_equal(zql_tz_offset_at(ny, U("1800-01-01T00:00Z")), -17762);
  assert_string_equal(L(ny, U("1800-01-01T00:00Z")), "1799-12-31 19:03:58 LMT");
  assert_string_equal(L(ny, U("2500-07-01T12:00Z")), "2500-07-01 08:00:00 EDT");
  assert_string_equal(L(ny, U("2500-01-01T12:00Z")), "2500-01-01 07:00:00 EST");
  /* 2500-03-14 is the second Sunday of March 2500 */
  assert_true(zql_tz_next_transition(ny, U("2500-01-01T00:00Z"), &next));
  assert_true(next == U("2500-03-14T07:00Z"));
  assert_string_equal(L(ny, U("+123456789-07-01T00:00Z")), "123456789-06-30 20:00:00 EDT");
}

static void test_europe_london(void **state)
{
  const zql_tz_t *z = Z("Europe/London");
  int64_t t;
  assert_string_equal(L(z, U("2024-03-31T00:59:59Z")), "2024-03-31 00:59:59 GMT");
  assert_string_equal(L(z, U("2024-03-31T01:00:00Z")), "2024-03-31 02:00:00 BST");
  assert_string_equal(L(z, U("2024-10-27T00:59:59Z")), "2024-10-27 01:59:59 BST");
  assert_string_equal(L(z, U("2024-10-27T01:00:00Z")), "2024-10-27 01:00:00 GMT");
  zql_civil_t c = {.year = 2024, .month = 10, .day = 27, .hour = 1, .minute = 15};
  assert_true(zql_tz_from_civil(z, &c, ZQL_TZ_GAP_FAIL, &t));
  assert_true(t == U("2024-10-27T00:15Z"));
  /* 1971: British Standard Time, +01 all year without DST flag changes */
  assert_int_equal(zql_tz_offset_at(z, U("1970-01-01T00:00Z")), 3600);
}

static void test_lord_howe(void **state)
{
  /* +10:30 standard, +11 summer: a 30-minute DST */
  const zql_tz_t *z = Z("Australia/Lord_Howe");
  int64_t t;
  assert_string_equal(L(z, U("2024-04-06T14:59:59Z")), "2024-04-07 01:59:59 +11");
  assert_string_equal(L(z, U("2024-04-06T15:00:00Z")), "2024-04-07 01:30:00 +1030");
  assert_string_equal(L(z, U("2024-10-05T15:29:59Z")), "2024-10-06 01:59:59 +1030");
  assert_string_equal(L(z, U("2024-10-05T15:30:00Z")), "2024-10-06 02:30:00 +11");
  zql_civil_t c = {.year = 2024, .month = 10, .day = 6, .hour = 2, .minute = 10};
  assert_true(zql_tz_from_civil(z, &c, ZQL_TZ_GAP_SHIFT, &t));
  assert_true(t == U("2024-10-05T15:40Z")); /* 02:40 +11 */
  assert_true(zql_tz_from_civil(z, &c, ZQL_TZ_GAP_NEXT, &t));
  assert_true(t == U("2024-10-05T15:30Z"));
  c = (zql_civil_t){.year = 2024, .month = 4, .day = 7, .hour = 1, .minute = 45};
  assert_true(zql_tz_from_civil(z, &c, ZQL_TZ_GAP_FAIL, &t));
  assert_true(t == U("2024-04-06T14:45Z")); /* the +11 one */
  zql_bucket_t b = B("day", 1, "Australia/Lord_Howe", NULL, NULL);
  check_bucket(&b, U("2024-04-07T05:00Z"), "2024-04-06T13:00Z", "2024-04-07T13:30Z");
  check_bucket(&b, U("2024-10-06T05:00Z"), "2024-10-05T13:30Z", "2024-10-06T13:00Z");
  b = B("hour", 1, "Australia/Lord_Howe", NULL, NULL); /* origin 1970 local: +10 then */
  check_bucket(&b, U("2024-10-06T05:20Z"), "2024-10-06T05:00Z", "2024-10-06T06:00Z");
}

static void test_kathmandu(void **state)
{
  const zql_tz_t *z = Z("Asia/Kathmandu");
  assert_int_equal(zql_tz_offset_at(z, U("2024-06-01T00:00Z")), 5 * 3600 + 45 * 60);
  assert_int_equal(zql_tz_offset_at(z, U("1970-01-01T00:00Z")), 5 * 3600 + 30 * 60);
  assert_string_equal(F(z, U("2024-06-01T12:00Z"), "%F %T %z %:z %Z"),
                      "2024-06-01 17:45:00 +0545 +05:45 +0545");
  int64_t t;
  assert_false(zql_tz_next_transition(z, U("1990-01-01T00:00Z"), &t));
  assert_true(zql_tz_next_transition(z, U("1980-01-01T00:00Z"), &t));
  assert_true(t == U("1985-12-31T18:30Z"));
  /* days are local; sub-day buckets count from 1970-01-01T00:00+05:30 */
  zql_bucket_t b = B("day", 1, "Asia/Kathmandu", NULL, NULL);
  check_bucket(&b, U("2024-06-01T12:00Z"), "2024-05-31T18:15Z", "2024-06-01T18:15Z");
  b = B("hour", 1, "Asia/Kathmandu", NULL, NULL);
  check_bucket(&b, U("2024-06-01T12:00Z"), "2024-06-01T11:30Z", "2024-06-01T12:30Z");
  b = B("minute", 15, "Asia/Kathmandu", NULL, NULL);
  check_bucket(&b, U("2024-06-01T12:00Z"), "2024-06-01T12:00Z", "2024-06-01T12:15Z");
}

static void test_midnight_gaps(void **state)
{
  /* Sao Paulo 2018-11-04: 00:00 -03 -> 01:00 -02, so the day starts at 01:00 (03:00Z) */
  const zql_tz_t *z = Z("America/Sao_Paulo");
  int64_t t;
  zql_civil_t c = {.year = 2018, .month = 11, .day = 4};
  assert_false(zql_tz_from_civil(z, &c, ZQL_TZ_GAP_FAIL, &t));
  assert_true(zql_tz_from_civil(z, &c, ZQL_TZ_GAP_NEXT, &t));
  assert_true(t == U("2018-11-04T03:00Z"));
  assert_string_equal(L(z, t), "2018-11-04 01:00:00 -02");
  zql_bucket_t b = B("day", 1, "America/Sao_Paulo", NULL, NULL);
  check_bucket(&b, U("2018-11-04T12:00Z"), "2018-11-04T03:00Z", "2018-11-05T02:00Z"); /* 23 h */
  check_bucket(&b, U("2018-11-04T02:59:59.999Z"), "2018-11-03T03:00Z", "2018-11-04T03:00Z");
  check_bucket(&b, U("2019-02-16T12:00Z"), "2019-02-16T02:00Z", "2019-02-17T03:00Z"); /* 25 h */
  b = B("month", 1, "America/Sao_Paulo", NULL, NULL);
  check_bucket(&b, U("2018-11-20T12:00Z"), "2018-11-01T03:00Z", "2018-12-01T02:00Z");
  b = B("week", 1, "America/Sao_Paulo", "sunday", NULL); /* the week starts in the gap */
  check_bucket(&b, U("2018-11-06T12:00Z"), "2018-11-04T03:00Z", "2018-11-11T02:00Z");
  /* date only: the first instant of that day */
  assert_int_equal(zql_parse_iso8601("2018-11-04", 10, z, &t), 0);
  assert_true(t == U("2018-11-04T03:00Z"));

  /* Havana 2024: 00:00 CST -> 01:00 CDT on 03-10; 01:00 CDT -> 00:00 CST on 11-03, so
   * midnight of 11-03 happens twice and the day starts at the first one */
  z = Z("America/Havana");
  b = B("day", 1, "America/Havana", NULL, NULL);
  check_bucket(&b, U("2024-03-10T12:00Z"), "2024-03-10T05:00Z", "2024-03-11T04:00Z");
  check_bucket(&b, U("2024-11-03T04:30Z"), "2024-11-03T04:00Z", "2024-11-04T05:00Z");
  check_bucket(&b, U("2024-11-03T05:30Z"), "2024-11-03T04:00Z", "2024-11-04T05:00Z");
  check_bucket(&b, U("2024-11-02T12:00Z"), "2024-11-02T04:00Z", "2024-11-03T04:00Z");
  assert_string_equal(L(z, U("2024-11-03T05:30Z")), "2024-11-03 00:30:00 CST");
}

static void test_skipped_day(void **state)
{
  /* Apia jumped from 2011-12-29T23:59:59-10 to 2011-12-31T00:00:00+14 */
  zql_bucket_t b = B("day", 1, "Pacific/Apia", NULL, NULL);
  int64_t T = U("2011-12-30T10:00Z");
  check_bucket(&b, T - 1, "2011-12-29T10:00Z", "2011-12-30T10:00Z");
  check_bucket(&b, T, "2011-12-30T10:00Z", "2011-12-31T10:00Z");
  const zql_tz_t *z = Z("Pacific/Apia");
  zql_civil_t c = {.year = 2011, .month = 12, .day = 30, .hour = 12};
  int64_t t;
  assert_false(zql_tz_from_civil(z, &c, ZQL_TZ_GAP_FAIL, &t));
  assert_true(zql_tz_from_civil(z, &c, ZQL_TZ_GAP_SHIFT, &t));
  assert_true(t == U("2011-12-30T22:00Z")); /* 12:00 at -10, shown as 12-31 12:00 +14 */
  assert_true(zql_tz_from_civil(z, &c, ZQL_TZ_GAP_NEXT, &t));
  assert_true(t == T);
}

static void test_midnight_fold(void **state)
{
  /* A rule whose DST ends at 00:30 local DST, back to 23:30 of the day before: the
   * midnight of the last Sunday of October exists twice and the instants between show
   * the previous date. Buckets still partition the time line. */
  zql_tz_t *z;
  assert_int_equal(zql_tz_from_posix("AAA-1BBB,M3.5.0,M10.5.0/0:30", &z, NULL), 0);
  int64_t T = U("2024-10-26T22:30Z"); /* 2024-10-27 00:30 BBB -> 2024-10-26 23:30 AAA */
  assert_string_equal(L(z, T - 1), "2024-10-27 00:29:59 BBB");
  assert_string_equal(L(z, T), "2024-10-26 23:30:00 AAA");
  zql_bucket_t b;
  assert_int_equal(zql_bucket_init(&b, ZQL_TU_DAY, 1, z, 1, NULL), 0);
  check_bucket(&b, T - 1, "2024-10-26T22:00Z", "2024-10-27T23:00Z");
  check_bucket(&b, T, "2024-10-26T22:00Z", "2024-10-27T23:00Z");
  check_bucket(&b, T - 3600000, "2024-10-25T22:00Z", "2024-10-26T22:00Z");
  /* the buckets of consecutive minutes are equal or adjacent */
  int64_t s, e, ps = 0, pe = 0;
  for (int64_t t = U("2024-10-24T00:00Z"); t < U("2024-10-31T00:00Z"); t += 60000) {
    assert_int_equal(zql_bucket_range(&b, t, &s, &e), 0);
    assert_true(s <= t && t < e);
    assert_true(pe == 0 || (s == ps && e == pe) || s == pe);
    ps = s, pe = e;
  }
  zql_tz_free(z);
}

/* }==== */

/* {==== buckets ========================================================================== */

static void test_bucket_units(void **state)
{
  int64_t t = U("2024-06-05T12:34:56.789Z"); /* a Wednesday */
  zql_bucket_t b = B("ms", 1, NULL, NULL, NULL);
  check_bucket(&b, t, "2024-06-05T12:34:56.789Z", "2024-06-05T12:34:56.790Z");
  b = B("ms", 250, NULL, NULL, NULL);
  check_bucket(&b, t, "2024-06-05T12:34:56.750Z", "2024-06-05T12:34:57Z");
  b = B("second", 1, NULL, NULL, NULL);
  check_bucket(&b, t, "2024-06-05T12:34:56Z", "2024-06-05T12:34:57Z");
  b = B("minute", 15, NULL, NULL, NULL);
  check_bucket(&b, t, "2024-06-05T12:30Z", "2024-06-05T12:45Z");
  b = B("hour", 1, "UTC", NULL, NULL);
  check_bucket(&b, t, "2024-06-05T12:00Z", "2024-06-05T13:00Z");
  b = B("day", 1, NULL, NULL, NULL);
  check_bucket(&b, t, "2024-06-05T00:00Z", "2024-06-06T00:00Z");
  b = B("week", 1, NULL, NULL, NULL);
  check_bucket(&b, t, "2024-06-03T00:00Z", "2024-06-10T00:00Z");
  b = B("week", 1, NULL, "sunday", NULL);
  check_bucket(&b, t, "2024-06-02T00:00Z", "2024-06-09T00:00Z");
  b = B("week", 1, NULL, "wednesday", NULL);
  check_bucket(&b, t, "2024-06-05T00:00Z", "2024-06-12T00:00Z");
  b = B("week", 1, NULL, "thursday", NULL);
  check_bucket(&b, t, "2024-05-30T00:00Z", "2024-06-06T00:00Z");
  b = B("month", 1, NULL, NULL, NULL);
  check_bucket(&b, t, "2024-06-01T00:00Z", "2024-07-01T00:00Z");
  b = B("quarter", 1, NULL, NULL, NULL);
  check_bucket(&b, t, "2024-04-01T00:00Z", "2024-07-01T00:00Z");
  b = B("year", 1, NULL, NULL, NULL);
  check_bucket(&b, t, "2024-01-01T00:00Z", "2025-01-01T00:00Z");
  /* a unit's first instant and last ms */
  b = B("day", 1, NULL, NULL, NULL);
  check_bucket(&b, U("2024-06-05T00:00Z"), "2024-06-05T00:00Z", "2024-06-06T00:00Z");
  check_bucket(&b, U("2024-06-05T23:59:59.999Z"), "2024-06-05T00:00Z", "2024-06-06T00:00Z");
}

static void test_bucket_every(void **state)
{
  int64_t t = U("2024-06-05T12:34:56.789Z");
  /* default origin: 1970-01-01 (a Thursday), January 1970 */
  zql_bucket_t b = B("day", 7, NULL, NULL, NULL);
  check_bucket(&b, t, "2024-05-30T00:00Z", "2024-06-06T00:00Z");
  b = B("day", 3, NULL, NULL, "2024-06-01T00:00Z");
  check_bucket(&b, t, "2024-06-04T00:00Z", "2024-06-07T00:00Z");
  b = B("day", 3, NULL, NULL, "2024-06-01T23:00Z"); /* the origin's date counts */
  check_bucket(&b, t, "2024-06-04T00:00Z", "2024-06-07T00:00Z");
  b = B("week", 2, NULL, NULL, NULL); /* weeks of 1969-12-29, 1970-01-12, ... */
  check_bucket(&b, t, "2024-06-03T00:00Z", "2024-06-17T00:00Z");
  b = B("week", 2, NULL, NULL, "2024-05-29T00:00Z"); /* aligned to the week of 05-27 */
  check_bucket(&b, t, "2024-05-27T00:00Z", "2024-06-10T00:00Z");
  b = B("week", 2, NULL, "sunday", "2024-05-29T00:00Z");
  check_bucket(&b, t, "2024-05-26T00:00Z", "2024-06-09T00:00Z");
  b = B("month", 5, NULL, NULL, NULL); /* 653 months after January 1970 -> 650 */
  check_bucket(&b, t, "2024-03-01T00:00Z", "2024-08-01T00:00Z");
  b = B("month", 3, NULL, NULL, "2023-07-10T00:00Z"); /* January 2023 */
  check_bucket(&b, t, "2024-04-01T00:00Z", "2024-07-01T00:00Z");
  b = B("month", 5, NULL, NULL, "2023-07-10T00:00Z"); /* 17 months on -> 15 */
  check_bucket(&b, t, "2024-04-01T00:00Z", "2024-09-01T00:00Z");
  b = B("quarter", 2, NULL, NULL, NULL);
  check_bucket(&b, t, "2024-01-01T00:00Z", "2024-07-01T00:00Z");
  b = B("year", 4, NULL, NULL, NULL);
  check_bucket(&b, t, "2022-01-01T00:00Z", "2026-01-01T00:00Z");
  b = B("year", 4, NULL, NULL, "2001-05-05T00:00Z");
  check_bucket(&b, t, "2021-01-01T00:00Z", "2025-01-01T00:00Z");
  b = B("hour", 6, NULL, NULL, "2024-01-01T03:00Z");
  check_bucket(&b, t, "2024-06-05T09:00Z", "2024-06-05T15:00Z");
  b = B("minute", 90, NULL, NULL, "2024-01-01T00:10Z");
  check_bucket(&b, t, "2024-06-05T12:10Z", "2024-06-05T13:40Z");
  /* origin without an offset: local time in the bucket's zone */
  b = B("hour", 2, "America/New_York", NULL, "2024-01-01T01:00");
  check_bucket(&b, U("2024-01-05T12:00Z"), "2024-01-05T12:00Z", "2024-01-05T14:00Z");
}

static void test_bucket_negative(void **state)
{
  zql_bucket_t b = B("hour", 1, NULL, NULL, NULL);
  check_bucket(&b, -1, "1969-12-31T23:00Z", "1970-01-01T00:00Z");
  b = B("day", 1, NULL, NULL, NULL);
  check_bucket(&b, U("1969-07-20T20:17:40Z"), "1969-07-20T00:00Z", "1969-07-21T00:00Z");
  b = B("week", 1, NULL, NULL, NULL);
  check_bucket(&b, U("1900-03-01T12:00Z"), "1900-02-26T00:00Z", "1900-03-05T00:00Z");
  b = B("month", 7, NULL, NULL, NULL); /* -1 month from January 1970 -> period -1 */
  check_bucket(&b, U("1969-12-15T00:00Z"), "1969-06-01T00:00Z", "1970-01-01T00:00Z");
  b = B("year", 1, NULL, NULL, NULL);
  check_bucket(&b, U("-000100-06-01T00:00Z"), "-000100-01-01T00:00Z", "-000099-01-01T00:00Z");
  b = B("minute", 7, NULL, NULL, "2000-01-01T00:00Z");
  check_bucket(&b, U("1999-12-31T23:59Z"), "1999-12-31T23:53Z", "2000-01-01T00:00Z");
  b = B("hour", 1, "America/New_York", NULL, NULL); /* origin 1970-01-01T05:00Z */
  check_bucket(&b, U("1960-01-01T05:30Z"), "1960-01-01T05:00Z", "1960-01-01T06:00Z");
}

static void test_bucket_dst(void **state)
{
  /* New York: 23- and 25-hour days; hour buckets are local hours and the repeated hour
   * gives two buckets */
  zql_bucket_t b = B("day", 1, "America/New_York", NULL, NULL);
  check_bucket(&b, U("2024-03-10T12:00Z"), "2024-03-10T05:00Z", "2024-03-11T04:00Z");
  check_bucket(&b, U("2024-11-03T12:00Z"), "2024-11-03T04:00Z", "2024-11-04T05:00Z");
  check_bucket(&b, U("2024-11-03T04:59Z"), "2024-11-03T04:00Z", "2024-11-04T05:00Z");
  check_bucket(&b, U("2024-11-03T03:59Z"), "2024-11-02T04:00Z", "2024-11-03T04:00Z");
  b = B("hour", 1, "America/New_York", NULL, NULL);
  check_bucket(&b, U("2024-11-03T05:30Z"), "2024-11-03T05:00Z", "2024-11-03T06:00Z");
  check_bucket(&b, U("2024-11-03T06:30Z"), "2024-11-03T06:00Z", "2024-11-03T07:00Z");
  b = B("week", 1, "America/New_York", NULL, NULL);
  check_bucket(&b, U("2024-03-13T12:00Z"), "2024-03-11T04:00Z", "2024-03-18T04:00Z");
  check_bucket(&b, U("2024-03-09T12:00Z"), "2024-03-04T05:00Z", "2024-03-11T04:00Z");
  b = B("month", 1, "America/New_York", NULL, NULL);
  check_bucket(&b, U("2024-03-15T12:00Z"), "2024-03-01T05:00Z", "2024-04-01T04:00Z");
  check_bucket(&b, U("2024-03-01T04:59Z"), "2024-02-01T05:00Z", "2024-03-01T05:00Z");
  b = B("quarter", 1, "America/New_York", NULL, NULL);
  check_bucket(&b, U("2024-05-15T12:00Z"), "2024-04-01T04:00Z", "2024-07-01T04:00Z");
  b = B("year", 1, "America/New_York", NULL, NULL);
  check_bucket(&b, U("2024-05-15T12:00Z"), "2024-01-01T05:00Z", "2025-01-01T05:00Z");
  check_bucket(&b, U("2025-01-01T04:59Z"), "2024-01-01T05:00Z", "2025-01-01T05:00Z");

  /* London: 23/25-hour days around the switches */
  b = B("day", 1, "Europe/London", NULL, NULL);
  check_bucket(&b, U("2024-03-31T12:00Z"), "2024-03-31T00:00Z", "2024-03-31T23:00Z");
  check_bucket(&b, U("2024-10-27T12:00Z"), "2024-10-26T23:00Z", "2024-10-28T00:00Z");
  b = B("hour", 1, "Europe/London", NULL, NULL); /* origin 1970 local was +01 */
  check_bucket(&b, U("2024-10-27T01:30Z"), "2024-10-27T01:00Z", "2024-10-27T02:00Z");
}

static void test_bucket_errors(void **state)
{
  zql_bucket_t b;
  const zql_tz_t *utc = zql_tz_utc();
  int64_t s, e, o = 0;
  assert_int_equal(zql_bucket_init(&b, ZQL_TU_DAY, 0, utc, 1, NULL), ZQL_E_ARG_RANGE);
  assert_int_equal(zql_bucket_init(&b, ZQL_TU_DAY, 1, utc, 8, NULL), ZQL_E_ARG_RANGE);
  assert_int_equal(zql_bucket_init(&b, ZQL_TU_HOUR, INT64_MAX / 1000, utc, 1, NULL),
                   ZQL_E_ARG_RANGE);
  assert_int_equal(zql_bucket_init(&b, ZQL_TU_YEAR, INT64_MAX / 12, utc, 1, NULL),
                   ZQL_E_ARG_RANGE);
  assert_int_equal(zql_bucket_init(&b, ZQL_TU_WEEK, INT64_MAX / 7, utc, 1, &o),
                   ZQL_E_ARG_RANGE);
  /* week_start 0 means Monday; NULL tz means UTC */
  assert_int_equal(zql_bucket_init(&b, ZQL_TU_WEEK, 1, NULL, 0, NULL), 0);
  assert_int_equal(b.week_start, 1);
  assert_ptr_equal(b.tz, utc);
  assert_false(b.has_origin);

  /* results outside the int64 range */
  assert_int_equal(zql_bucket_init(&b, ZQL_TU_HOUR, 1, utc, 1, NULL), 0);
  assert_int_equal(zql_bucket_start(&b, INT64_MIN, &s), ZQL_E_ARG_RANGE);
  assert_int_equal(zql_bucket_end(&b, INT64_MAX, &e), ZQL_E_ARG_RANGE);
  assert_int_equal(zql_bucket_start(&b, INT64_MIN + 3600000, &s), 0);
  assert_int_equal(zql_bucket_init(&b, ZQL_TU_MS, 1, utc, 1, NULL), 0);
  assert_int_equal(zql_bucket_range(&b, INT64_MIN, &s, &e), 0);
  assert_true(s == INT64_MIN && e == INT64_MIN + 1);
  assert_int_equal(zql_bucket_range(&b, INT64_MAX, &s, &e), ZQL_E_ARG_RANGE);
  const zql_tunit_t civil[] = {ZQL_TU_DAY, ZQL_TU_WEEK, ZQL_TU_MONTH, ZQL_TU_QUARTER, ZQL_TU_YEAR};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(civil); i++) {
    assert_int_equal(zql_bucket_init(&b, civil[i], 1, utc, 1, NULL), 0);
    assert_int_equal(zql_bucket_range(&b, INT64_MAX, &s, &e), ZQL_E_ARG_RANGE);
    assert_int_equal(zql_bucket_range(&b, INT64_MIN, &s, &e), ZQL_E_ARG_RANGE);
    assert_int_equal(zql_bucket_range(&b, INT64_MAX / 2, &s, &e), 0);
    assert_true(s <= INT64_MAX / 2 && INT64_MAX / 2 < e);
    assert_int_equal(zql_bucket_range(&b, INT64_MIN / 2, &s, &e), 0);
    assert_true(s <= INT64_MIN / 2 && INT64_MIN / 2 < e);
  }
  /* huge every: one bucket holds everything near the origin */
  assert_int_equal(zql_bucket_init(&b, ZQL_TU_DAY, INT64_MAX / ZQL_MS_PER_DAY, utc, 1, NULL), 0);
  assert_int_equal(zql_bucket_range(&b, 0, &s, &e), ZQL_E_ARG_RANGE);
  assert_int_equal(zql_bucket_init(&b, ZQL_TU_DAY, 1000000, utc, 1, NULL), 0);
  assert_int_equal(zql_bucket_range(&b, U("2024-01-01T00:00Z"), &s, &e), 0);
  assert_true(s == 0 && e == 1000000 * ZQL_MS_PER_DAY);

  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(zql_bucket_setup(&b, "days", 1, NULL, NULL, NULL, &err), ZQL_E_UNKNOWN_UNIT);
  assert_string_equal(err.buf, "unknown time unit 'days'");
  zql_strbuf_reset(&err);
  assert_int_equal(zql_bucket_setup(&b, NULL, 1, NULL, NULL, NULL, NULL), ZQL_E_UNKNOWN_UNIT);
  assert_int_equal(zql_bucket_setup(&b, "day", 1, "Mars/Olympus", NULL, NULL, &err),
                   ZQL_E_UNKNOWN_TIMEZONE);
  assert_string_equal(err.buf, "unknown time zone 'Mars/Olympus'");
  zql_strbuf_reset(&err);
  assert_int_equal(zql_bucket_setup(&b, "week", 1, NULL, "sun", NULL, &err),
                   ZQL_E_BAD_OPTION_VALUE);
  assert_string_equal(err.buf, "unknown day 'sun'");
  zql_strbuf_reset(&err);
  assert_int_equal(zql_bucket_setup(&b, "day", 1, NULL, NULL, "2024-13-01", &err), ZQL_E_BAD_DATE);
  assert_string_equal(err.buf, "invalid origin '2024-13-01': month out of range");
  zql_strbuf_reset(&err);
  assert_int_equal(zql_bucket_setup(&b, "day", 0, NULL, NULL, NULL, &err), ZQL_E_ARG_RANGE);
  assert_string_equal(err.buf, "bucket of every 0 day is out of range");
  zql_strbuf_release(&err);

  zql_tunit_t u;
  assert_true(zql_tunit_parse("quarter", 7, &u) && u == ZQL_TU_QUARTER);
  assert_true(zql_tunit_parse("ms", 2, &u) && u == ZQL_TU_MS);
  assert_false(zql_tunit_parse("Day", 3, &u));
  assert_true(zql_tunit_parse("dayx", 3, &u) && u == ZQL_TU_DAY); /* by length */
  assert_false(zql_tunit_parse("hours", 5, &u));
  assert_string_equal(zql_tunit_name(ZQL_TU_WEEK), "week");
  assert_int_equal(zql_weekday_parse("sunday", 6), 7);
  assert_int_equal(zql_weekday_parse("monday", 6), 1);
  assert_int_equal(zql_weekday_parse("mon", 3), 0);
}

/* Bucketing a long run of instants: every bucket is [start, end) around t, buckets of
 * consecutive instants are equal or adjacent, and a DST day is 23 or 25 hours. */
static void test_bucket_tiling(void **state)
{
  static const char *const zones[] = {"America/New_York", "Europe/London",
                                      "Australia/Lord_Howe", "America/Sao_Paulo",
                                      "America/Havana", "Pacific/Apia", "Asia/Kathmandu"};
  static const char *const units[] = {"hour", "day", "week", "month"};
  for (size_t zi = 0; zi < ZQL_ARRAY_LEN(zones); zi++) {
    for (size_t ui = 0; ui < ZQL_ARRAY_LEN(units); ui++) {
      zql_bucket_t b = B(units[ui], 1, zones[zi], NULL, NULL);
      int64_t ps = 0, pe = 0;
      bool first = true;
      for (int64_t t = U("2011-01-01T00:00Z"); t < U("2013-01-01T00:00Z"); t += 7 * 60000 + 13) {
        int64_t s, e;
        assert_int_equal(zql_bucket_range(&b, t, &s, &e), 0);
        if (!(s <= t && t < e))
          fail_msg("%s %s: %" PRId64 " not in its bucket", zones[zi], units[ui], t);
        if (!first && s != ps && s != pe)
          fail_msg("%s %s: bucket at %" PRId64 " does not follow the previous", zones[zi],
                   units[ui], t);
        int64_t len = e - s;
        if (ui == 1 && len != 24 * 3600000 && !(len >= 23 * 3600000 && len <= 25 * 3600000))
          fail_msg("%s: a day of %" PRId64 " ms", zones[zi], len);
        ps = s, pe = e, first = false;
      }
    }
  }
}

/* }==== */

/* {==== TZif ============================================================================= */

/* The bytes of a zone file of the system tzdata (heap; NULL when absent). */
static uint8_t *zone_bytes(const char *name, size_t *n)
{
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", zql_tzdb_dir(), name);
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  uint8_t *buf = zql_malloc(1 << 16);
  *n = buf ? fread(buf, 1, 1 << 16, f) : 0;
  fclose(f);
  return buf;
}

static void be32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* A hand-made version 1 TZif file: ntimes transitions to types idx[], types with offsets
 * utoff[], DST flags dst[] and abbreviation offsets abbr[] into chars (nchars bytes), and
 * leapcnt dummy leap-second records. Returns the size. */
static size_t make_tzif(uint8_t *buf, int ntimes, const int32_t *times, const uint8_t *idx,
                        int ntypes, const int32_t *utoff, const uint8_t *dst,
                        const uint8_t *abbr, const char *chars, int nchars, uint32_t leapcnt)
{
  memset(buf, 0, 44);
  memcpy(buf, "TZif", 4);
  be32(buf + 28, leapcnt);
  be32(buf + 32, (uint32_t)ntimes);
  be32(buf + 36, (uint32_t)ntypes);
  be32(buf + 40, (uint32_t)nchars);
  uint8_t *p = buf + 44;
  for (int i = 0; i < ntimes; i++, p += 4)
    be32(p, (uint32_t)times[i]);
  for (int i = 0; i < ntimes; i++)
    *p++ = idx[i];
  for (int i = 0; i < ntypes; i++, p += 6)
    be32(p, (uint32_t)utoff[i]), p[4] = dst[i], p[5] = abbr[i];
  memcpy(p, chars, (size_t)nchars), p += nchars;
  for (uint32_t i = 0; i < leapcnt; i++, p += 8)
    be32(p, 78796800 + i), be32(p + 4, i + 1);
  return (size_t)(p - buf);
}

/* LMT +00:10 until 1950, then AAA +1 / BBB +2 (dst) from 1960 to 1961, then AAA for good. */
static size_t make_v1(uint8_t *buf, uint32_t leapcnt)
{
  static const int32_t times[3] = {-631152000, -315619200, -283996800}; /* 1950, 1960, 1961 */
  static const uint8_t idx[3] = {1, 2, 1};
  static const int32_t utoff[3] = {600, 3600, 7200};
  static const uint8_t dst[3] = {0, 0, 1}, abbr[3] = {0, 4, 8};
  return make_tzif(buf, 3, times, idx, 3, utoff, dst, abbr, "LMT\0AAA\0BBB", 12, leapcnt);
}

static void test_tzif_v1(void **state)
{
  uint8_t buf[256];
  size_t n = make_v1(buf, 0);
  zql_tz_t *z;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(zql_tz_from_tzif("Test/V1", buf, n, &z, &err), 0);
  assert_string_equal(zql_tz_name(z), "Test/V1");
  assert_string_equal(L(z, U("1900-01-01T00:00Z")), "1900-01-01 00:10:00 LMT");
  assert_string_equal(L(z, U("1955-01-01T00:00Z")), "1955-01-01 01:00:00 AAA");
  assert_string_equal(L(z, U("1960-06-01T00:00Z")), "1960-06-01 02:00:00 BBB");
  assert_string_equal(L(z, U("2200-01-01T00:00Z")), "2200-01-01 01:00:00 AAA");
  int64_t t;
  assert_true(zql_tz_next_transition(z, 0, &t) == false);
  assert_true(zql_tz_next_transition(z, U("1959-01-01T00:00Z"), &t));
  assert_true(t == U("1960-01-01T00:00Z"));
  zql_tz_free(z);
  /* every truncation fails cleanly */
  for (size_t k = 0; k < n; k++) {
    assert_int_equal(zql_tz_from_tzif("Test/V1", buf, k, &z, NULL), ZQL_E_CORRUPT);
    assert_null(z);
  }
  /* leap seconds are refused with a message */
  n = make_v1(buf, 2);
  assert_int_equal(zql_tz_from_tzif("right/Test", buf, n, &z, &err), ZQL_E_UNKNOWN_TIMEZONE);
  assert_string_equal(err.buf, "time zone 'right/Test' counts leap seconds, which zql does not support");
  zql_strbuf_reset(&err);
  /* broken fields */
  n = make_v1(buf, 0);
  buf[44 + 12] = 3; /* a type index out of range */
  assert_int_equal(zql_tz_from_tzif("Test/V1", buf, n, &z, &err), ZQL_E_CORRUPT);
  assert_string_equal(err.buf, "time zone 'Test/V1': invalid TZif data (bad transition)");
  zql_strbuf_reset(&err);
  n = make_v1(buf, 0);
  be32(buf + 44 + 4, (uint32_t)-631152000); /* not ascending */
  assert_int_equal(zql_tz_from_tzif("Test/V1", buf, n, &z, NULL), ZQL_E_CORRUPT);
  n = make_v1(buf, 0);
  be32(buf + 44 + 15, 100000); /* utoff out of range */
  assert_int_equal(zql_tz_from_tzif("Test/V1", buf, n, &z, NULL), ZQL_E_CORRUPT);
  n = make_v1(buf, 0);
  buf[44 + 15 + 5] = 12; /* abbreviation index out of range */
  assert_int_equal(zql_tz_from_tzif("Test/V1", buf, n, &z, NULL), ZQL_E_CORRUPT);
  n = make_v1(buf, 0);
  buf[4] = '1'; /* no such version */
  assert_int_equal(zql_tz_from_tzif("Test/V1", buf, n, &z, NULL), ZQL_E_CORRUPT);
  n = make_v1(buf, 0);
  be32(buf + 36, 0); /* no types */
  assert_int_equal(zql_tz_from_tzif("Test/V1", buf, n, &z, NULL), ZQL_E_CORRUPT);
  zql_strbuf_release(&err);

  /* A date shown before its midnight: at 2024-01-01T23:00Z the clocks jump from 23:00 to
   * 00:30 (01-02), and 30 minutes later they go back from 01:00 to 23:30 (01-01); the one
   * midnight of 01-02 comes after instants that already showed 01-02. The day buckets
   * still partition the time line: 01-01 runs until that midnight. */
  static const int32_t times[2] = {1704150000, 1704151800};
  static const uint8_t idx[2] = {1, 0}, dst[2] = {0, 1}, abbr[2] = {0, 4};
  static const int32_t utoff[2] = {0, 5400};
  n = make_tzif(buf, 2, times, idx, 2, utoff, dst, abbr, "AAA\0BBB", 8, 0);
  assert_int_equal(zql_tz_from_tzif("Test/Odd", buf, n, &z, NULL), 0);
  int64_t T1 = U("2024-01-01T23:00Z");
  assert_string_equal(L(z, T1), "2024-01-02 00:30:00 BBB");
  assert_string_equal(L(z, T1 + 1800000), "2024-01-01 23:30:00 AAA");
  zql_bucket_t b;
  assert_int_equal(zql_bucket_init(&b, ZQL_TU_DAY, 1, z, 1, NULL), 0);
  check_bucket(&b, T1, "2024-01-01T00:00Z", "2024-01-02T00:00Z");
  check_bucket(&b, T1 + 1800000, "2024-01-01T00:00Z", "2024-01-02T00:00Z");
  check_bucket(&b, U("2024-01-02T00:00Z"), "2024-01-02T00:00Z", "2024-01-03T00:00Z");
  zql_tz_free(z);
}

/* A version 2 file (with a dummy version 1 block): one transition at `when` (UTC seconds)
 * to type 1, types 0 = AAA +1 and 1 = AAA +1 as well, and the footer `footer`. */
static size_t make_v2(uint8_t *buf, int64_t when, const char *footer)
{
  static const int32_t utoff[2] = {3600, 3600};
  static const uint8_t dst[2] = {0, 0}, abbr[2] = {0, 0}, idx[1] = {1};
  size_t n = make_tzif(buf, 0, NULL, NULL, 1, utoff, dst, abbr, "AAA", 4, 0);
  buf[4] = '2';
  uint8_t *h = buf + n;
  size_t m = make_tzif(h, 0, NULL, NULL, 2, utoff, dst, abbr, "AAA", 4, 0);
  h[4] = '2';
  /* make_tzif wrote no times: insert one 8-byte time and its index after the header */
  memmove(h + 44 + 9, h + 44, m - 44);
  be32(h + 32, 1);
  be32(h + 44, (uint32_t)((uint64_t)when >> 32));
  be32(h + 48, (uint32_t)when);
  h[52] = idx[0];
  m += 9;
  n += m;
  n += (size_t)sprintf((char *)buf + n, "\n%s\n", footer);
  return n;
}

static void test_tzif_v2_footer(void **state)
{
  uint8_t buf[512];
  zql_tz_t *z;
  int64_t t;
  /* the footer governs from the last transition on, even where the file's type there
   * says otherwise (RFC 8536 3.2; glibc does the same) */
  size_t n = make_v2(buf, 946684800, "BBB-2");
  assert_int_equal(zql_tz_from_tzif("Test/V2", buf, n, &z, NULL), 0);
  assert_string_equal(L(z, U("1999-12-31T22:59:59Z")), "1999-12-31 23:59:59 AAA");
  assert_string_equal(L(z, U("2000-01-01T00:00Z")), "2000-01-01 02:00:00 BBB");
  assert_true(zql_tz_next_transition(z, U("1990-01-01T00:00Z"), &t));
  assert_true(t == U("2000-01-01T00:00Z"));
  assert_false(zql_tz_next_transition(z, t, &t));
  zql_tz_free(z);
  /* an empty footer: the last type stays */
  n = make_v2(buf, 946684800, "");
  assert_int_equal(zql_tz_from_tzif("Test/V2", buf, n, &z, NULL), 0);
  assert_string_equal(L(z, U("2100-01-01T00:00Z")), "2100-01-01 01:00:00 AAA");
  assert_false(zql_tz_next_transition(z, U("1990-01-01T00:00Z"), &t));
  zql_tz_free(z);
  /* a DST footer: transitions continue from the table into the rule */
  n = make_v2(buf, 946684800, "AAA-1BBB,M3.5.0,M10.5.0/3");
  assert_int_equal(zql_tz_from_tzif("Test/V2", buf, n, &z, NULL), 0);
  assert_true(zql_tz_next_transition(z, U("1990-01-01T00:00Z"), &t));
  assert_true(t == U("2000-03-26T01:00Z"));
  assert_string_equal(L(z, U("2190-07-01T00:00Z")), "2190-07-01 02:00:00 BBB");
  assert_string_equal(L(z, U("2290-07-01T00:00Z")), "2290-07-01 02:00:00 BBB");
  assert_string_equal(L(z, U("2290-12-01T00:00Z")), "2290-12-01 01:00:00 AAA");
  zql_tz_free(z);
  /* transitions outside the int64 ms range: zic's "big bang" at -2^59 makes its type the
   * initial one (and the footer then governs all the range); one after the range means
   * the footer is never reached */
  n = make_v2(buf, -(INT64_C(1) << 59), "BBB-2");
  assert_int_equal(zql_tz_from_tzif("Test/V2", buf, n, &z, NULL), 0);
  assert_string_equal(L(z, U("1000-01-01T00:00Z")), "1000-01-01 02:00:00 BBB");
  assert_string_equal(L(z, U("3000-01-01T00:00Z")), "3000-01-01 02:00:00 BBB");
  zql_tz_free(z);
  n = make_v2(buf, INT64_C(1) << 59, "BBB-2");
  assert_int_equal(zql_tz_from_tzif("Test/V2", buf, n, &z, NULL), 0);
  assert_string_equal(L(z, U("3000-01-01T00:00Z")), "3000-01-01 01:00:00 AAA");
  assert_false(zql_tz_next_transition(z, 0, &t));
  zql_tz_free(z);
}

static void test_tzif_real(void **state)
{
  size_t n;
  uint8_t *data = zone_bytes("America/New_York", &n);
  if (!data)
    skip();
  zql_tz_t *z;
  const zql_tz_t *sys = Z("America/New_York");
  assert_int_equal(zql_tz_from_tzif("NY", data, n, &z, NULL), 0);
  for (int64_t t = U("1880-01-01T00:00Z"); t < U("2400-01-01T00:00Z"); t += 86400000 * 3 + 3599999)
    assert_int_equal(zql_tz_offset_at(z, t), zql_tz_offset_at(sys, t));
  zql_tz_free(z);
  /* every proper prefix is refused */
  for (size_t k = 0; k < n; k++) {
    int rc = zql_tz_from_tzif("NY", data, k, &z, NULL);
    if (rc != ZQL_E_CORRUPT)
      fail_msg("prefix of %zu bytes: %d", k, rc);
  }
  /* byte flips never crash; whatever loads answers queries */
  uint64_t seed = 99;
  uint8_t *copy = zql_malloc(n);
  assert_non_null(copy);
  for (int round = 0; round < 3000; round++) {
    memcpy(copy, data, n);
    for (int k = 0; k < 1 + round % 3; k++) {
      seed = seed * UINT64_C(6364136223846793005) + 1442695040888963407u;
      copy[(seed >> 20) % n] ^= (uint8_t)(1u << ((seed >> 10) % 8));
    }
    if (zql_tz_from_tzif("NY", copy, n, &z, NULL) != 0)
      continue;
    zql_civil_t c;
    int64_t t, next;
    for (int64_t s = U("1850-01-01T00:00Z"); s < U("2300-01-01T00:00Z"); s += 86400000LL * 365 * 7) {
      zql_tz_to_civil(z, s, &c);
      (void)zql_tz_from_civil(z, &c, ZQL_TZ_GAP_NEXT, &t);
      (void)zql_tz_next_transition(z, s, &next);
    }
    zql_tz_free(z);
  }
  zql_free(copy);

  /* a v2+ file whose footer is missing or broken */
  uint8_t *bad = zql_malloc(n);
  assert_non_null(bad);
  memcpy(bad, data, n);
  bad[n - 1] = 'x';
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(zql_tz_from_tzif("NY", bad, n, &z, &err), ZQL_E_CORRUPT);
  assert_string_equal(err.buf, "time zone 'NY': invalid TZif data (no footer)");
  zql_strbuf_reset(&err);
  memcpy(bad, data, n);
  bad[n - 2] = '!'; /* EST5EDT,M3.2.0,M11.1.! */
  assert_int_equal(zql_tz_from_tzif("NY", bad, n, &z, &err), ZQL_E_CORRUPT);
  assert_string_equal(err.buf, "time zone 'NY': invalid TZif data (bad TZ string in the footer)");
  zql_strbuf_release(&err);
  zql_free(bad);
  zql_free(data);
}

static void test_tzif_nomem(void **state)
{
  size_t n;
  uint8_t *data = zone_bytes("Europe/London", &n);
  if (!data)
    skip();
  zql_tz_t *z = NULL;
  long k;
  for (k = 0; k < 100; k++) {
    zql_alloc_fail_after(k);
    int rc = zql_tz_from_tzif("Europe/London", data, n, &z, NULL);
    zql_alloc_fail_after(-1);
    if (rc == 0)
      break;
    assert_int_equal(rc, ZQL_E_NOMEM);
    assert_null(z);
  }
  assert_true(k > 0 && k < 100);
  zql_tz_free(z);
  for (k = 0; k < 100; k++) {
    zql_alloc_fail_after(k);
    int rc = zql_tz_from_posix("EST5EDT,M3.2.0,M11.1.0", &z, NULL);
    zql_alloc_fail_after(-1);
    if (rc == 0)
      break;
    assert_int_equal(rc, ZQL_E_NOMEM);
  }
  assert_true(k > 0 && k < 100);
  zql_tz_free(z);
  /* the cache: a failed load leaves nothing behind, the next one works */
  zql_tz_cache_clear();
  const zql_tz_t *cz = NULL;
  for (k = 0; k < 100; k++) {
    zql_alloc_fail_after(k);
    int rc = zql_tz_load("Europe/London", &cz, NULL);
    zql_alloc_fail_after(-1);
    if (rc == 0)
      break;
    assert_int_equal(rc, ZQL_E_NOMEM);
  }
  assert_true(k < 100);
  assert_string_equal(L(cz, U("2024-07-01T00:00Z")), "2024-07-01 01:00:00 BST");
  zql_free(data);
}

typedef struct loader {
  const zql_tz_t *got[6];
  int rc;
} loader_t;

static const char *const thread_zones[6] = {"America/New_York", "Europe/London", "Asia/Tokyo",
                                            "Europe/Paris", "Australia/Sydney", "UTC"};

static void *load_all(void *arg)
{
  loader_t *l = arg;
  for (int round = 0; round < 50; round++)
    for (int i = 0; i < 6; i++)
      l->rc |= zql_tz_load(thread_zones[(i + round) % 6], &l->got[(i + round) % 6], NULL);
  return NULL;
}

static void test_cache_threads(void **state)
{
  (void)Z("America/New_York");
  zql_tz_cache_clear();
  pthread_t th[8];
  loader_t l[8];
  memset(l, 0, sizeof l);
  for (int i = 0; i < 8; i++)
    assert_int_equal(pthread_create(&th[i], NULL, load_all, &l[i]), 0);
  for (int i = 0; i < 8; i++)
    assert_int_equal(pthread_join(th[i], NULL), 0);
  for (int i = 0; i < 8; i++) {
    assert_int_equal(l[i].rc, 0);
    for (int k = 0; k < 6; k++)
      assert_ptr_equal(l[i].got[k], l[0].got[k]); /* one zone object per name */
  }
}

static void test_load_errors(void **state)
{
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  const zql_tz_t *z;
  static const char *const bad[] = {"", "../etc/passwd", "/etc/localtime", "America/../UTC",
                                    "America/", "Nowhere/City", "zone.tab", "America"};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(bad); i++) {
    zql_strbuf_reset(&err);
    assert_int_equal(zql_tz_load(bad[i], &z, &err), ZQL_E_UNKNOWN_TIMEZONE);
    char want[128];
    snprintf(want, sizeof want, "unknown time zone '%s'", bad[i]);
    assert_string_equal(err.buf, want);
  }
  assert_int_equal(zql_tz_load(NULL, &z, NULL), ZQL_E_UNKNOWN_TIMEZONE);
  zql_strbuf_release(&err);

  /* a zoneinfo directory of our own: UTC works without files, a broken TZif file is
   * reported as corrupt */
  char dir[] = "/tmp/zql_tz_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/Broken", dir);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs("TZif2 and then nothing useful", f);
  fclose(f);
  snprintf(path, sizeof path, "%s/Test", dir);
  assert_int_equal(mkdir(path, 0700), 0);
  snprintf(path, sizeof path, "%s/Test/V1", dir);
  f = fopen(path, "wb");
  assert_non_null(f);
  uint8_t buf[256];
  size_t n = make_v1(buf, 0);
  assert_int_equal(fwrite(buf, 1, n, f), n);
  fclose(f);
  const char *old = getenv("ZQL_ZONEINFO");
  char *saved = old ? zql_strndup(old, strlen(old)) : NULL;
  zql_tz_cache_clear(); /* the cache is keyed by name: forget the system's zones */
  setenv("ZQL_ZONEINFO", dir, 1);
  assert_int_equal(zql_tz_load("UTC", &z, NULL), 0);
  assert_ptr_equal(z, zql_tz_utc());
  assert_int_equal(zql_tz_load("America/New_York", &z, NULL), ZQL_E_UNKNOWN_TIMEZONE);
  err = (zql_strbuf_t)ZQL_STRBUF_INIT;
  assert_int_equal(zql_tz_load("Broken", &z, &err), ZQL_E_CORRUPT);
  assert_string_equal(err.buf, "time zone 'Broken': invalid TZif data (bad header)");
  zql_strbuf_release(&err);
  assert_int_equal(zql_tz_load("Test/V1", &z, NULL), 0);
  assert_string_equal(L(z, U("1960-06-01T00:00Z")), "1960-06-01 02:00:00 BBB");
  if (saved)
    setenv("ZQL_ZONEINFO", saved, 1);
  else
    unsetenv("ZQL_ZONEINFO");
  zql_free(saved);
  zql_tz_cache_clear(); /* Test/V1 must not outlive its directory */
  unlink(path);
  snprintf(path, sizeof path, "%s/Test", dir);
  rmdir(path);
  snprintf(path, sizeof path, "%s/Broken", dir);
  unlink(path);
  rmdir(dir);
}

/* }==== */

/* {==== POSIX TZ rules =================================================================== */

static void test_posix_rules(void **state)
{
  zql_tz_t *z;
  int64_t t;
  /* the same as New York's footer: agrees with the file beyond its transitions */
  assert_int_equal(zql_tz_from_posix("EST5EDT,M3.2.0,M11.1.0", &z, NULL), 0);
  const zql_tz_t *ny = NULL;
  if (zql_tz_load("America/New_York", &ny, NULL) == 0)
    for (int64_t s = U("2008-01-01T00:00Z"); s < U("2600-01-01T00:00Z"); s += 3600000 * 97)
      assert_int_equal(zql_tz_offset_at(z, s), zql_tz_offset_at(ny, s));
  assert_string_equal(L(z, U("1800-07-01T12:00Z")), "1800-07-01 08:00:00 EDT");
  assert_string_equal(L(z, U("3000-12-01T12:00Z")), "3000-12-01 07:00:00 EST");
  assert_true(zql_tz_next_transition(z, U("1800-01-01T00:00Z"), &t));
  assert_true(t == U("1800-03-09T07:00Z"));
  zql_civil_t c;
  zql_tz_to_civil(z, U("+200000000-07-01T00:00Z"), &c);
  assert_true(c.isdst && c.year == 200000000);
  zql_tz_to_civil(z, U("+292278993-07-01T00:00Z"), &c);
  assert_true(c.isdst && c.year == 292278993);
  zql_tz_to_civil(z, U("-292275054-07-01T00:00Z"), &c);
  assert_true(c.isdst && c.year == -292275054);
  zql_tz_to_civil(z, U("+292278994-01-01T00:00Z"), &c);
  assert_false(c.isdst);
  assert_false(zql_tz_next_transition(z, U("+292278994-08-01T00:00Z"), &t));
  zql_tz_free(z);

  /* J: Feb 29 never counted; n: zero-based, counting Feb 29 */
  assert_int_equal(zql_tz_from_posix("AAA3BBB,J60/2,J300/2", &z, NULL), 0);
  assert_true(zql_tz_next_transition(z, U("2024-01-01T00:00Z"), &t));
  assert_true(t == U("2024-03-01T05:00Z")); /* J60 = March 1 even in leap years */
  assert_true(zql_tz_next_transition(z, U("2023-01-01T00:00Z"), &t));
  assert_true(t == U("2023-03-01T05:00Z"));
  zql_tz_free(z);
  assert_int_equal(zql_tz_from_posix("AAA3BBB,J59/2,J300/2", &z, NULL), 0);
  assert_true(zql_tz_next_transition(z, U("2024-01-01T00:00Z"), &t));
  assert_true(t == U("2024-02-28T05:00Z"));
  zql_tz_free(z);
  assert_int_equal(zql_tz_from_posix("AAA3BBB,59/2,299/2", &z, NULL), 0);
  assert_true(zql_tz_next_transition(z, U("2024-01-01T00:00Z"), &t));
  assert_true(t == U("2024-02-29T05:00Z")); /* day 59 is Feb 29 in a leap year */
  assert_true(zql_tz_next_transition(z, U("2023-01-01T00:00Z"), &t));
  assert_true(t == U("2023-03-01T05:00Z"));
  zql_tz_free(z);

  /* negative rule times (Greenland): DST from Saturday 22:00 -02 before the last Sunday
   * of March to the last Sunday of October 00:00 -01 */
  assert_int_equal(zql_tz_from_posix("<-02>2<-01>,M3.5.0/-1,M10.5.0/0", &z, NULL), 0);
  assert_true(zql_tz_next_transition(z, U("2024-01-01T00:00Z"), &t));
  assert_true(t == U("2024-03-31T01:00Z"));
  assert_string_equal(L(z, t), "2024-03-31 00:00:00 -01");
  assert_true(zql_tz_next_transition(z, t, &t));
  assert_true(t == U("2024-10-27T01:00Z"));
  zql_tz_free(z);

  /* times beyond 24 h (RFC 8536 allows up to 167 h) */
  assert_int_equal(zql_tz_from_posix("AAA0BBB,M3.1.0/167,M10.1.0/-167", &z, NULL), 0);
  assert_true(zql_tz_next_transition(z, U("2024-01-01T00:00Z"), &t));
  assert_true(t == U("2024-03-09T23:00Z")); /* Sunday 03-03 + 167 h */
  zql_tz_free(z);

  /* DST all year (RFC 8536 3.3.1): no transitions at all */
  assert_int_equal(zql_tz_from_posix("EST5EDT,0/0,J365/25", &z, NULL), 0);
  assert_string_equal(L(z, U("2024-01-01T12:00Z")), "2024-01-01 08:00:00 EDT");
  assert_string_equal(L(z, U("2024-12-31T23:00Z")), "2024-12-31 19:00:00 EDT");
  assert_string_equal(L(z, U("2023-12-31T23:00Z")), "2023-12-31 19:00:00 EDT");
  assert_false(zql_tz_next_transition(z, U("2024-01-01T12:00Z"), &t));
  zql_tz_free(z);

  /* fixed zones, quoted names, minutes and a default DST offset and rule */
  assert_int_equal(zql_tz_from_posix("<+0545>-5:45", &z, NULL), 0);
  assert_string_equal(F(z, 0, "%T %Z %z"), "05:45:00 +0545 +0545");
  zql_tz_free(z);
  assert_int_equal(zql_tz_from_posix("CET-1CEST", &z, NULL), 0);
  assert_string_equal(L(z, U("2024-07-01T00:00Z")), "2024-07-01 02:00:00 CEST");
  assert_true(zql_tz_next_transition(z, U("2024-01-01T00:00Z"), &t));
  assert_true(t == U("2024-03-10T01:00Z")); /* the US default rule, 02:00 local */
  zql_tz_free(z);
  assert_int_equal(zql_tz_from_posix("AAA-10:30BBB-11:15:30,M10.1.0,M4.1.0/3", &z, NULL), 0);
  assert_int_equal(zql_tz_offset_at(z, U("2024-01-01T00:00Z")), 11 * 3600 + 15 * 60 + 30);
  assert_int_equal(zql_tz_offset_at(z, U("2024-06-01T00:00Z")), 10 * 3600 + 30 * 60);
  zql_tz_free(z);

  static const char *const bad[] = {
      "",        "AB5",          "EST",           "EST5EDT,M13.1.0,M11.1.0",
      "EST5EDT,M3.2.0",          "EST5EDT,M3.2.0/168,M11.1.0", "EST25",
      "<AB>5",   "<ABC5",        "<A_C>5",        "EST5EDT,M3.6.0,M11.1.0",
      "EST5EDT,M3.2.7,M11.1.0",  "EST5EDT,J0,J10", "EST5EDT,366,10", "EST5EDT,M3.2.0,M11.1.0x",
      "EST5:60", "EST5EDT,M3.2.0/2:60,M11.1.0", "EST5EDT4x", "5EST"};
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  for (size_t i = 0; i < ZQL_ARRAY_LEN(bad); i++) {
    zql_strbuf_reset(&err);
    if (zql_tz_from_posix(bad[i], &z, &err) != ZQL_E_CORRUPT)
      fail_msg("rule '%s' accepted", bad[i]);
    assert_null(z);
    char want[128];
    snprintf(want, sizeof want, "invalid POSIX TZ rule '%s'", bad[i]);
    assert_string_equal(err.buf, want);
  }
  zql_strbuf_release(&err);
}

/* }==== */

/* {==== ISO-8601 ========================================================================= */

typedef struct iso_case {
  const char *s;
  int64_t ms;
} iso_case_t;

static void test_iso_accept(void **state)
{
  static const iso_case_t ok[] = {
      {"1970-01-01T00:00:00Z", 0},
      {"1970-01-01", 0},
      {"1969-12-31T23:59:59.999Z", -1},
      {"2011-07-01T00:00:00Z", INT64_C(1309478400000)},
      {"2011-07-01T04:00:00.000Z", INT64_C(1309492800000)},
      {"2024-02-29T12:30:15.250Z", INT64_C(1709209815250)},
      {"2024-02-29 12:30:15,250z", INT64_C(1709209815250)},
      {"2024-02-29t12:30:15.2509999Z", INT64_C(1709209815250)},
      {"2024-02-29T12:30:15.25Z", INT64_C(1709209815250)},
      {"2024-01-01T01:00+01:00", INT64_C(1704067200000)},
      {"2024-01-01T01:00+0100", INT64_C(1704067200000)},
      {"2024-01-01T01:00+01", INT64_C(1704067200000)},
      {"2023-12-31T19:00:00-05:00", INT64_C(1704067200000)},
      {"2024-01-01T05:45:00+05:45", INT64_C(1704067200000)},
      {"2024-01-01T00:00:00-00:00", INT64_C(1704067200000)},
      {"2024-01-01T23:59:59+23:59", INT64_C(1704067200000) + 59000},
      {"0000-01-01T00:00Z", INT64_C(-62167219200000)},
      {"9999-12-31T23:59:59.999Z", INT64_C(253402300799999)},
      {"+010000-01-01T00:00Z", INT64_C(253402300800000)},
      {"-000001-01-01T00:00Z", INT64_C(-62198755200000)},
      {"+002024-01-01", INT64_C(1704067200000)},
      {"+292278994-08-17T07:12:55.807Z", INT64_MAX},
      {"-292275055-05-16T16:47:04.192Z", INT64_MIN},
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(ok); i++) {
    int64_t ms = 42;
    int rc = zql_parse_iso8601(ok[i].s, strlen(ok[i].s), zql_tz_utc(), &ms);
    if (rc != 0 || ms != ok[i].ms)
      fail_msg("'%s': rc %d, %" PRId64 " instead of %" PRId64 " (%s)", ok[i].s, rc, ms,
               ok[i].ms, zql_iso8601_error(ok[i].s, strlen(ok[i].s), zql_tz_utc()));
    assert_null(zql_iso8601_error(ok[i].s, strlen(ok[i].s), zql_tz_utc()));
  }
  /* the length counts, not a NUL */
  int64_t ms;
  assert_int_equal(zql_parse_iso8601("2024-01-01T00:00Zjunk", 17, NULL, &ms), 0);
  assert_true(ms == INT64_C(1704067200000));
  assert_int_equal(zql_parse_iso8601("2024-01-01", 7, NULL, &ms), ZQL_E_BAD_DATE);

  /* the scan reports what was written */
  zql_iso_t iso;
  assert_int_equal(zql_iso8601_scan("2024-03-10T02:30:05.5-03:30", 27, &iso, NULL), 0);
  assert_true(iso.has_time && iso.has_offset && iso.offset == -(3 * 3600 + 1800));
  assert_int_equal(iso.local.hour, 2);
  assert_int_equal(iso.local.second, 5);
  assert_int_equal(iso.local.ms, 500);
  assert_int_equal(zql_iso8601_scan("2024-03-10", 10, &iso, NULL), 0);
  assert_false(iso.has_time || iso.has_offset);

  /* no offset: local time in the default zone */
  const zql_tz_t *ny = Z("America/New_York");
  static const struct {
    const char *s, *utc;
  } local[] = {
      {"2024-07-01T12:00", "2024-07-01T16:00Z"},
      {"2024-01-01 12:00:00.5", "2024-01-01T17:00:00.5Z"},
      {"2024-03-10T02:30", "2024-03-10T07:30Z"}, /* gap: 03:30 EDT */
      {"2024-11-03T01:30", "2024-11-03T05:30Z"}, /* fold: the earlier, EDT */
      {"2024-03-10", "2024-03-10T05:00Z"},
      {"2024-07-01T12:00Z", "2024-07-01T12:00Z"}, /* an offset wins over the zone */
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(local); i++) {
    assert_int_equal(zql_parse_iso8601(local[i].s, strlen(local[i].s), ny, &ms), 0);
    if (ms != U(local[i].utc))
      fail_msg("'%s' in New York: %" PRId64, local[i].s, ms);
  }
}

static void test_iso_reject(void **state)
{
  static const struct {
    const char *s, *why;
  } bad[] = {
      {"", "expected a date YYYY-MM-DD"},
      {"2024", "expected a date YYYY-MM-DD"},
      {"24-01-01", "expected a date YYYY-MM-DD"},
      {"2024-1-01", "expected a date YYYY-MM-DD"},
      {"2024/01/01", "expected a date YYYY-MM-DD"},
      {"20240101", "expected a date YYYY-MM-DD"},
      {" 2024-01-01", "expected a date YYYY-MM-DD"},
      {"2024-13-01", "month out of range"},
      {"2024-00-10", "month out of range"},
      {"2023-02-29", "day out of range"},
      {"2024-04-31", "day out of range"},
      {"2024-01-00", "day out of range"},
      {"1900-02-29", "day out of range"},
      {"2024-01-01x", "expected T or a space after the date"},
      {"2024-01-01T", "expected a time HH:MM"},
      {"2024-01-01T10", "expected a time HH:MM"},
      {"2024-01-01T10:0", "expected a time HH:MM"},
      {"2024-01-01T1:00", "expected a time HH:MM"},
      {"2024-01-01T24:00:00Z", "hour out of range"},
      {"2024-01-01T23:60Z", "minute out of range"},
      {"2024-12-31T23:59:60Z", "second out of range"},
      {"2024-01-01T10:00:0Z", "expected seconds SS"},
      {"2024-01-01T10:00:00.Z", "expected digits after the decimal point"},
      {"2024-01-01T10:00:00.", "expected digits after the decimal point"},
      {"2024-01-01T10:00+1", "expected an offset +HH:MM"},
      {"2024-01-01T10:00+01:0", "expected an offset +HH:MM"},
      {"2024-01-01T10:00+01:", "expected an offset +HH:MM"},
      {"2024-01-01T10:00+010", "expected an offset +HH:MM"},
      {"2024-01-01T10:00+24:00", "offset out of range"},
      {"2024-01-01T10:00+01:60", "offset out of range"},
      {"2024-01-01T10:00Z ", "unexpected characters after the date"},
      {"2024-01-01T10:00ZZ", "unexpected characters after the date"},
      {"2024-01-01T10:00 UTC", "unexpected characters after the date"},
      {"2024-01-01T10:00:00.5.5Z", "unexpected characters after the date"},
      {"2024-01-01Z", "expected T or a space after the date"},
      {"+2024-01-01", "an expanded year needs a sign and 6 to 9 digits"},
      {"+0000000001-01-01", "an expanded year needs a sign and 6 to 9 digits"},
      {"-000000-01-01", "year -000000 is not allowed"},
      {"+292278994-08-17T07:12:55.808Z", "out of range"},
      {"+999999999-01-01T00:00Z", "out of range"},
      {"2024-01-01T10:00", "no offset and no zone"},
      {"2024-01-01", "no offset and no zone"},
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(bad); i++) {
    int64_t ms = 42;
    size_t n = strlen(bad[i].s);
    if (zql_parse_iso8601(bad[i].s, n, NULL, &ms) != ZQL_E_BAD_DATE)
      fail_msg("'%s' accepted", bad[i].s);
    assert_true(ms == 42);
    const char *why = zql_iso8601_error(bad[i].s, n, NULL);
    if (!why || strcmp(why, bad[i].why) != 0)
      fail_msg("'%s': '%s' instead of '%s'", bad[i].s, why ? why : "(null)", bad[i].why);
  }
  /* a NUL inside the length is just a bad character */
  int64_t ms;
  assert_int_equal(zql_parse_iso8601("2024-01-01\0T00:00Z", 18, NULL, &ms), ZQL_E_BAD_DATE);
  /* a local time beyond the range in a zone */
  assert_int_equal(zql_parse_iso8601("+292278994-12-31T00:00", 22, zql_tz_utc(), &ms),
                   ZQL_E_BAD_DATE);
  assert_string_equal(zql_iso8601_error("+292278994-12-31T00:00", 22, zql_tz_utc()),
                      "out of range");
}

/* }==== */

/* {==== strftime ========================================================================= */

static void test_format(void **state)
{
  const zql_tz_t *utc = zql_tz_utc();
  int64_t t = U("2024-06-05T09:04:03.007Z"); /* a Wednesday, day 157 */
  static const struct {
    const char *fmt, *out;
  } cases[] = {
      {"%Y-%m-%d %H:%M:%S.%L", "2024-06-05 09:04:03.007"},
      {"%F %T", "2024-06-05 09:04:03"},
      {"%j %a %A %b %B %h", "157 Wed Wednesday Jun June Jun"},
      {"%y %C %e %k %l %I %p %P", "24 20  5  9  9 09 AM am"},
      {"%u %w %G %g %V %U %W", "3 3 2024 24 23 22 23"},
      {"%Z %z %:z", "UTC +0000 +00:00"},
      {"%s", "1717578243"},
      {"%R %D %x %X", "09:04 06/05/24 06/05/24 09:04:03"},
      {"%c", "Wed Jun  5 09:04:03 2024"},
      {"100%% [%n] [%t]", "100% [\n] [\t]"},
      {"%q %E %:y %", "%q %E %:y %"},
      {"", ""},
      {"plain text", "plain text"},
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(cases); i++)
    if (strcmp(F(utc, t, cases[i].fmt), cases[i].out) != 0)
      fail_msg("'%s' gave '%s', expected '%s'", cases[i].fmt, F(utc, t, cases[i].fmt),
               cases[i].out);
  /* 12-hour clock edges, ISO week-years, weeks 0 and 53, negative years and %s */
  assert_string_equal(F(utc, U("2024-06-05T00:30Z"), "%I %p|%l"), "12 AM|12");
  assert_string_equal(F(utc, U("2024-06-05T12:30Z"), "%I %p"), "12 PM");
  assert_string_equal(F(utc, U("2024-06-05T23:30Z"), "%I %p"), "11 PM");
  assert_string_equal(F(utc, U("2021-01-03T00:00Z"), "%G-W%V-%u %U %W"), "2020-W53-7 01 00");
  assert_string_equal(F(utc, U("2024-12-30T00:00Z"), "%G-W%V-%u %Y %j"), "2025-W01-1 2024 365");
  assert_string_equal(F(utc, U("2023-01-01T00:00Z"), "%G-W%V %U %W"), "2022-W52 01 00");
  assert_string_equal(F(utc, U("2024-01-01T00:00Z"), "%U %W"), "00 01");
  assert_string_equal(F(utc, U("-000044-03-15T12:00Z"), "%Y %C %y %G"), "-0044 -01 56 -0044");
  assert_string_equal(F(utc, U("0099-03-15T12:00Z"), "%Y %C %y"), "0099 00 99");
  assert_string_equal(F(utc, -1, "%s %L"), "-1 999");
  /* zones */
  const zql_tz_t *ny = Z("America/New_York");
  assert_string_equal(F(ny, t, "%F %T %Z %z %:z"), "2024-06-05 05:04:03 EDT -0400 -04:00");
  assert_string_equal(F(ny, U("2024-01-05T09:04Z"), "%H %Z %z"), "04 EST -0500");
  assert_string_equal(F(ny, t, "%s"), "1717578243"); /* the same instant in any zone */

  /* snprintf-like truncation */
  char buf[8];
  assert_int_equal(zql_tz_format(buf, sizeof buf, "%F", 2, utc, t), 10);
  assert_string_equal(buf, "2024-06");
  assert_int_equal(zql_tz_format(buf, 1, "%F", 2, utc, t), 10);
  assert_string_equal(buf, "");
  assert_int_equal(zql_tz_format(NULL, 0, "%A", 2, utc, t), 9);
  assert_int_equal(zql_tz_format(buf, sizeof buf, "%Y%", 3, utc, t), 5);
  assert_string_equal(buf, "2024%");
  /* into a strbuf, short and long */
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_tz_format_sb(&sb, "%F", 2, utc, t);
  assert_string_equal(sb.buf, "2024-06-05");
  char longfmt[400];
  size_t k = 0;
  while (k + 3 < sizeof longfmt) {
    longfmt[k++] = '%';
    longfmt[k++] = 'A';
    longfmt[k++] = '.';
  }
  zql_strbuf_reset(&sb);
  zql_tz_format_sb(&sb, longfmt, k, utc, t);
  assert_int_equal(sb.len, k / 3 * 10);
  assert_memory_equal(sb.buf, "Wednesday.Wednesday.", 20);
  assert_int_equal(sb.buf[sb.len], '\0');
  zql_strbuf_release(&sb);
}

/* }==== */

int zql_unit_tz(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_calendar),      cmocka_unit_test(test_utc),
      cmocka_unit_test(test_new_york),      cmocka_unit_test(test_europe_london),
      cmocka_unit_test(test_lord_howe),     cmocka_unit_test(test_kathmandu),
      cmocka_unit_test(test_midnight_gaps), cmocka_unit_test(test_skipped_day),
      cmocka_unit_test(test_midnight_fold), cmocka_unit_test(test_bucket_units),
      cmocka_unit_test(test_bucket_every),  cmocka_unit_test(test_bucket_negative),
      cmocka_unit_test(test_bucket_dst),    cmocka_unit_test(test_bucket_errors),
      cmocka_unit_test(test_bucket_tiling), cmocka_unit_test(test_tzif_v1),
      cmocka_unit_test(test_tzif_v2_footer), cmocka_unit_test(test_tzif_real),
      ZQL_UNIT_TEST(test_tzif_nomem),
      cmocka_unit_test(test_cache_threads), cmocka_unit_test(test_load_errors),
      cmocka_unit_test(test_posix_rules),   cmocka_unit_test(test_iso_accept),
      cmocka_unit_test(test_iso_reject),    cmocka_unit_test(test_format),
  };
  int failed = cmocka_run_group_tests_name("tz", tests, NULL, NULL);
  zql_tz_cache_clear();
  return failed;
}
