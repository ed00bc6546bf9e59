/*
 * test_sched.c -- unit tests of schedule clauses and the scheduler state machine
 * (runtime/sched.c), driven by an injected clock: parsing every schedule form and its
 * errors, `every` (no overlap, counted from the run's start), `cron` (including the
 * catch-up after an overrun), `on event` coalescing within the settle window, `after`
 * chains and cycles, `on close` from a bucket, backoff with jitter, max_parallel and
 * fairness, the pending follow-up run, reloads and removal while running, out of memory.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"
#include "runtime/base/tz.h"
#include "runtime/sched.h"

int zql_unit_sched(void);

#define NEVER INT64_MAX

static int64_t U(const char *iso)
{
  int64_t ms = 0;
  if (zql_parse_iso8601(iso, strlen(iso), NULL, &ms) != 0)
    fail_msg("bad test date '%s'", iso);
  return ms;
}

/* A parsed schedule; fails the test on error. */
static zql_schedule_t S(const char *text, int64_t settle, const char *tz)
{
  zql_schedule_t sc;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  if (zql_schedule_parse(text, settle, tz, &sc, &err) != 0)
    fail_msg("schedule '%s': %s", text ? text : "(null)", err.buf);
  zql_strbuf_release(&err);
  return sc;
}

/* Add `name` with the schedule `text` at now. */
static void set(zql_sched_t *s, const char *name, const char *text, int64_t now)
{
  zql_schedule_t sc = S(text, 0, NULL);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  if (zql_sched_set(s, name, &sc, now, &err) != 0)
    fail_msg("set %s: %s", name, err.buf);
  zql_strbuf_release(&err);
  zql_schedule_release(&sc);
}

/* The aggregate zql_sched_next starts at now, or NULL. */
static const char *next(zql_sched_t *s, int64_t now)
{
  const char *name = NULL;
  int r = zql_sched_next(s, now, &name);
  assert_true(r == 0 || r == 1);
  return r ? name : NULL;
}

static void expect_next(zql_sched_t *s, int64_t now, const char *want)
{
  const char *got = next(s, now);
  if (!want != !got || (want && strcmp(want, got) != 0))
    fail_msg("at %" PRId64 ": started %s, expected %s", now, got ? got : "nothing",
             want ? want : "nothing");
}

static void done(zql_sched_t *s, const char *name, int64_t now, bool ok)
{
  assert_int_equal(zql_sched_done(s, name, now, ok, ok ? NULL : "boom"), 0);
}

static zql_sched_info_t info(zql_sched_t *s, const char *name)
{
  zql_sched_info_t in;
  assert_int_equal(zql_sched_info(s, name, &in), 0);
  return in;
}

/* The system tzdata has the zone (zone-dependent checks are skipped without it). */
static bool have_zone(const char *name)
{
  const zql_tz_t *z;
  return zql_tz_load(name, &z, NULL) == 0;
}

static zql_sched_t *mk(int max_parallel)
{
  zql_sched_opts_t o = {max_parallel, 1000, 8000, 200, 42};
  zql_sched_t *s = zql_sched_new(&o);
  assert_non_null(s);
  return s;
}

/* {==== schedule clauses ================================================================= */

static void test_parse_forms(void **state)
{
  static const struct {
    const char *text;
    zql_schedule_kind_t kind;
    int64_t every;
    const char *norm;
  } cases[] = {
      {NULL, ZQL_SCHEDULE_NONE, 0, "on demand"},
      {"", ZQL_SCHEDULE_NONE, 0, "on demand"},
      {"schedule every 5s", ZQL_SCHEDULE_EVERY, 5000, "every 5s"},
      {"every 5s", ZQL_SCHEDULE_EVERY, 5000, "every 5s"},
      {"every 1h30m", ZQL_SCHEDULE_EVERY, 5400000, "every 1h30m"},
      {"every 90s", ZQL_SCHEDULE_EVERY, 90000, "every 1m30s"},
      {"every 250ms", ZQL_SCHEDULE_EVERY, 250, "every 250ms"},
      {"every 1m", ZQL_SCHEDULE_EVERY, 60000, "every 1m"},
      {"every 2h", ZQL_SCHEDULE_EVERY, 7200000, "every 2h"},
      {"every 1d", ZQL_SCHEDULE_EVERY, 86400000, "every 1d"},
      {"every 8d", ZQL_SCHEDULE_EVERY, 691200000, "every 1w1d"},
      {"every 1d / 2.0", ZQL_SCHEDULE_EVERY, 43200000, "every 12h"},
      {"every (1h + 30m) * 2", ZQL_SCHEDULE_EVERY, 10800000, "every 3h"},
      {"every 2 * 1m - 30s", ZQL_SCHEDULE_EVERY, 90000, "every 1m30s"},
      {"every 1s / 3", ZQL_SCHEDULE_EVERY, 333, "every 333ms"},
      {"every 1h / 1m * 1s", ZQL_SCHEDULE_EVERY, 60000, "every 1m"},
      {"every -(-5s)", ZQL_SCHEDULE_EVERY, 5000, "every 5s"},
      {"every(10s)", ZQL_SCHEDULE_EVERY, 10000, "every 10s"},
      {"cron \"*/5 * * * *\"", ZQL_SCHEDULE_CRON, 0, "cron \"*/5 * * * *\" tz \"UTC\""},
      {"schedule cron '0 9 * * mon-fri'", ZQL_SCHEDULE_CRON, 0,
       "cron \"0 9 * * 1-5\" tz \"UTC\""},
      {"cron \"@daily\"", ZQL_SCHEDULE_CRON, 0, "cron \"0 0 * * *\" tz \"UTC\""},
      {"cron \"@every 15m\"", ZQL_SCHEDULE_EVERY, 900000, "every 15m"},
      {"on event", ZQL_SCHEDULE_EVENT, 0, "on event"},
      {"schedule on event type == \"x\"", ZQL_SCHEDULE_EVENT, 0, "on event type == \"x\""},
      {"on close", ZQL_SCHEDULE_CLOSE, 0, "on close"},
      {"after users_daily", ZQL_SCHEDULE_AFTER, 0, "after users_daily"},
      {"after `odd name`", ZQL_SCHEDULE_AFTER, 0, "after odd name"},
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(cases); i++) {
    zql_schedule_t sc = S(cases[i].text, 0, NULL);
    if (sc.kind != cases[i].kind || sc.every_ms != cases[i].every ||
        strcmp(sc.text, cases[i].norm) != 0)
      fail_msg("'%s': kind %d every %" PRId64 " text '%s'", cases[i].text, (int)sc.kind,
               sc.every_ms, sc.text);
    zql_schedule_release(&sc);
  }
  zql_schedule_t sc = S("on event type == \"download\" and context.n > 1 ", 750, NULL);
  assert_string_equal(sc.predicate, "type == \"download\" and context.n > 1");
  assert_int_equal(sc.settle_ms, 750);
  zql_schedule_release(&sc);
  sc = S("on event", 0, NULL);
  assert_null(sc.predicate);
  zql_schedule_release(&sc);
  sc = S("after `odd name`", 0, NULL);
  assert_string_equal(sc.after, "odd name");
  zql_schedule_release(&sc);
  if (have_zone("America/New_York")) {
    sc = S("cron \"30 2 * * *\"", 0, "America/New_York");
    assert_string_equal(zql_tz_name(sc.tz), "America/New_York");
    assert_string_equal(sc.text, "cron \"30 2 * * *\" tz \"America/New_York\"");
    assert_true(zql_cron_next(&sc.cron, sc.tz, U("2024-03-09T12:00:00Z")) ==
                U("2024-03-10T07:00:00Z"));
    zql_schedule_release(&sc);
  }
  assert_int_equal(zql_schedule_every(60000, &sc), 0);
  assert_true(sc.kind == ZQL_SCHEDULE_EVERY && strcmp(sc.text, "every 1m") == 0);
  zql_schedule_release(&sc);
  assert_int_equal(zql_schedule_every(0, &sc), ZQL_E_BAD_DURATION_VALUE);
  zql_schedule_release(&sc);
}

static void test_parse_errors(void **state)
{
  static const struct {
    const char *text;
    const char *tz;
    int rc;
    const char *msg;
  } cases[] = {
      {"every 0s", NULL, ZQL_E_BAD_DURATION_VALUE,
       "'every 0s' must be a positive duration of at least 1ms"},
      {"every -5s", NULL, ZQL_E_BAD_DURATION_VALUE,
       "'every -5s' must be a positive duration of at least 1ms"},
      {"every 5", NULL, ZQL_E_BAD_DURATION_VALUE, "'every 5' is a number, not a duration"},
      {"every 5x", NULL, ZQL_E_BAD_DURATION_VALUE,
       "invalid duration '5x' (write integer+unit parts from w d h m s ms, such as '1h30m')"},
      {"every 30m1h", NULL, ZQL_E_BAD_DURATION_VALUE,
       "invalid duration '30m1h' (write integer+unit parts from w d h m s ms, such as "
       "'1h30m')"},
      {"every $w", NULL, ZQL_E_UNSUPPORTED,
       "'every $w': the scheduler cannot resolve the parameter '$w' from the schedule's "
       "text; write the duration"},
      {"every 1h * 1h", NULL, ZQL_E_BAD_DURATION_VALUE, "'every 1h * 1h' multiplies two durations"},
      {"every 2 / 1h", NULL, ZQL_E_BAD_DURATION_VALUE,
       "'every 2 / 1h' divides a number by a duration"},
      {"every 1h / 0", NULL, ZQL_E_BAD_DURATION_VALUE, "'every 1h / 0' divides by zero"},
      {"every 1h + 2", NULL, ZQL_E_BAD_DURATION_VALUE,
       "'every 1h + 2' adds a number to a duration"},
      {"every", NULL, ZQL_E_SYNTAX, "missing duration after 'every'"},
      {"every 5s +", NULL, ZQL_E_SYNTAX, "missing duration in 'every 5s +'"},
      {"every 5s)", NULL, ZQL_E_SYNTAX, "unexpected ')' in 'every 5s)'"},
      {"every (5s", NULL, ZQL_E_SYNTAX, "missing ')' in 'every (5s'"},
      {"cron \"61 * * * *\"", NULL, ZQL_E_BAD_CRON,
       "invalid cron expression \"61 * * * *\": minute 61 is out of range 0-59 (at column 0)"},
      {"cron \"0 0 30 2 *\"", NULL, ZQL_E_BAD_CRON,
       "invalid cron expression \"0 0 30 2 *\": day-of-month 30 never occurs in February (at "
       "column 4)"},
      {"cron \"@every 0s\"", NULL, ZQL_E_BAD_DURATION_VALUE,
       "'every 0s' must be a positive duration of at least 1ms"},
      {"cron 5", NULL, ZQL_E_SYNTAX, "expected a string after 'cron'"},
      {"cron \"0 * * * *", NULL, ZQL_E_SYNTAX, "unterminated string after 'cron'"},
      {"cron \"0 * * * *\" x", NULL, ZQL_E_SYNTAX, "unexpected text after the cron string"},
      {"cron \"\\q\"", NULL, ZQL_E_SYNTAX, "unsupported escape '\\q' in a cron string"},
      {"cron \"0 * * * *\"", "Mars/Olympus_Mons", ZQL_E_UNKNOWN_TIMEZONE, NULL},
      {"on close now", NULL, ZQL_E_SYNTAX, "unexpected text after 'on close'"},
      {"after", NULL, ZQL_E_SYNTAX, "missing aggregate name after 'after'"},
      {"after a b", NULL, ZQL_E_SYNTAX, "unexpected text after 'after a'"},
      {"after ``", NULL, ZQL_E_SYNTAX, "bad quoted name after 'after'"},
      {"sometimes", NULL, ZQL_E_SYNTAX,
       "unknown schedule 'sometimes' (expected every, cron, on event, on close or after)"},
      {"on tuesday", NULL, ZQL_E_SYNTAX,
       "unknown schedule 'on tuesday' (expected every, cron, on event, on close or after)"},
      {"schedule ", NULL, ZQL_E_SYNTAX, "missing schedule after 'schedule'"},
      {"everyday", NULL, ZQL_E_SYNTAX,
       "unknown schedule 'everyday' (expected every, cron, on event, on close or after)"},
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(cases); i++) {
    zql_schedule_t sc;
    zql_strbuf_t err = ZQL_STRBUF_INIT;
    int rc = zql_schedule_parse(cases[i].text, 0, cases[i].tz, &sc, &err);
    if (rc != cases[i].rc || (cases[i].msg && strcmp(err.buf, cases[i].msg) != 0) ||
        err.len == 0)
      fail_msg("'%s': rc %d '%s', expected %d '%s'", cases[i].text, rc, err.buf, cases[i].rc,
               cases[i].msg ? cases[i].msg : "");
    assert_true(sc.kind == ZQL_SCHEDULE_NONE && !sc.text && !sc.after && !sc.predicate);
    zql_schedule_release(&sc);
    zql_strbuf_release(&err);
  }
}

static void test_parse_nomem(void **state)
{
  const char *texts[] = {"every 5s", "cron \"*/5 * * * *\"", "on event type == \"x\"",
                         "after abc", "on close", "cron \"61 * * * *\""};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(texts); i++) {
    for (long n = 0;; n++) {
      zql_schedule_t sc;
      zql_alloc_fail_after(n);
      int rc = zql_schedule_parse(texts[i], 0, NULL, &sc, NULL);
      zql_alloc_fail_after(-1);
      zql_schedule_release(&sc);
      if (rc != ZQL_E_NOMEM) {
        assert_int_equal(rc, i == 5 ? ZQL_E_BAD_CRON : 0);
        break;
      }
      assert_true(n < 50);
    }
  }
}

static void test_next_close(void **state)
{
  zql_schedule_t sc = S("on close", 0, NULL);
  zql_bucket_t b;
  assert_int_equal(zql_bucket_setup(&b, "hour", 1, "UTC", NULL, NULL, NULL), 0);
  assert_true(zql_schedule_next_close(&sc, 0) == NEVER); /* no bucket yet */
  assert_int_equal(zql_schedule_set_close(&sc, &b, -1), ZQL_E_USAGE);
  assert_int_equal(zql_schedule_set_close(&sc, &b, 5 * 60000), 0);
  /* hour buckets closing 5 minutes after their end */
  assert_true(zql_schedule_next_close(&sc, U("2024-01-01T00:30:00Z")) ==
              U("2024-01-01T01:05:00Z"));
  assert_true(zql_schedule_next_close(&sc, U("2024-01-01T01:04:59Z")) ==
              U("2024-01-01T01:05:00Z"));
  assert_true(zql_schedule_next_close(&sc, U("2024-01-01T01:05:00Z")) ==
              U("2024-01-01T02:05:00Z"));
  assert_true(zql_schedule_next_close(&sc, INT64_MAX - 10) == NEVER);
  zql_schedule_release(&sc);
  sc = S("every 1s", 0, NULL);
  assert_int_equal(zql_schedule_set_close(&sc, &b, 0), ZQL_E_USAGE);
  zql_schedule_release(&sc);
}

/* }==== */

/* {==== the scheduler ==================================================================== */

static void test_every(void **state)
{
  zql_sched_t *s = mk(2);
  set(s, "a", "every 5s", 0);
  assert_true(zql_sched_wakeup(s) == 0); /* due when added */
  expect_next(s, 0, "a");
  expect_next(s, 0, NULL); /* one run at a time */
  assert_true(zql_sched_wakeup(s) == NEVER);
  assert_int_equal(zql_sched_active(s), 1);
  done(s, "a", 2000, true);
  assert_int_equal(zql_sched_active(s), 0);
  assert_true(zql_sched_wakeup(s) == 5000); /* once per 5 s from the run's start */
  expect_next(s, 4999, NULL);
  expect_next(s, 5000, "a");
  /* a run longer than the period: the next starts at once, never overlapping */
  expect_next(s, 9000, NULL);
  done(s, "a", 12000, true);
  assert_true(zql_sched_wakeup(s) == 10000);
  expect_next(s, 12000, "a");
  zql_sched_info_t in = info(s, "a");
  assert_string_equal(in.kind, "every");
  assert_string_equal(in.schedule, "every 5s");
  assert_true(in.running && !in.pending && in.failures == 0 && !in.last_error);
  assert_true(in.last_start_ms == 12000 && in.last_end_ms == 12000);
  assert_true(in.next_due_ms == NEVER);
  done(s, "a", 12500, true);
  in = info(s, "a");
  assert_true(!in.running && in.next_due_ms == 17000 && in.last_end_ms == 12500);
  assert_int_equal(zql_sched_done(s, "a", 13000, true, NULL), ZQL_E_NO_AGG); /* not running */
  assert_int_equal(zql_sched_done(s, "nope", 13000, true, NULL), ZQL_E_NO_AGG);
  zql_sched_free(s);
}

static void test_cron(void **state)
{
  zql_sched_t *s = mk(2);
  set(s, "c", "cron \"0 * * * *\"", U("2024-01-01T00:10:00Z"));
  assert_true(zql_sched_wakeup(s) == U("2024-01-01T01:00:00Z"));
  expect_next(s, U("2024-01-01T00:59:59Z"), NULL);
  expect_next(s, U("2024-01-01T01:00:00Z"), "c");
  done(s, "c", U("2024-01-01T01:00:05Z"), true);
  assert_true(zql_sched_wakeup(s) == U("2024-01-01T02:00:00Z"));
  /* an overrun past two fire times is followed by one catch-up run */
  expect_next(s, U("2024-01-01T02:00:00Z"), "c");
  done(s, "c", U("2024-01-01T04:30:00Z"), true);
  assert_true(zql_sched_wakeup(s) == U("2024-01-01T03:00:00Z"));
  expect_next(s, U("2024-01-01T04:30:00Z"), "c");
  done(s, "c", U("2024-01-01T04:31:00Z"), true);
  assert_true(zql_sched_wakeup(s) == U("2024-01-01T05:00:00Z"));
  /* the zone of the schedule */
  assert_int_equal(zql_sched_remove(s, "c"), 0);
  if (have_zone("America/New_York")) {
    zql_schedule_t sc = S("cron \"30 2 * * *\"", 0, "America/New_York");
    assert_int_equal(zql_sched_set(s, "ny", &sc, U("2024-03-09T12:00:00Z"), NULL), 0);
    assert_true(info(s, "ny").next_due_ms == U("2024-03-10T07:00:00Z")); /* the gap's end */
    expect_next(s, U("2024-03-10T07:00:00Z"), "ny");
    done(s, "ny", U("2024-03-10T07:01:00Z"), true);
    assert_true(info(s, "ny").next_due_ms == U("2024-03-11T06:30:00Z"));
    zql_schedule_release(&sc);
  }
  zql_sched_free(s);
}

static void test_event_coalescing(void **state)
{
  zql_sched_t *s = mk(2);
  set(s, "e", "on event type == \"x\"", 0);
  assert_true(zql_sched_wakeup(s) == NEVER); /* nothing until events arrive */
  expect_next(s, 100000, NULL);
  assert_int_equal(zql_sched_events(s, "e", 1000), 0);
  assert_true(zql_sched_wakeup(s) == 1200); /* now + default settle */
  /* later events inside the window do not move the run */
  assert_int_equal(zql_sched_events(s, "e", 1100), 0);
  assert_int_equal(zql_sched_events(s, "e", 1199), 0);
  assert_true(zql_sched_wakeup(s) == 1200);
  expect_next(s, 1199, NULL);
  expect_next(s, 1200, "e");
  /* events during the run: one follow-up, due a settle window after the first of them */
  assert_int_equal(zql_sched_events(s, "e", 1300), 0);
  assert_int_equal(zql_sched_events(s, "e", 1350), 0);
  zql_sched_info_t in = info(s, "e");
  assert_true(in.running && in.pending && in.next_due_ms == 1500);
  done(s, "e", 1400, true);
  assert_true(zql_sched_wakeup(s) == 1500);
  expect_next(s, 1500, "e");
  done(s, "e", 1600, true);
  assert_true(zql_sched_wakeup(s) == NEVER); /* exactly one follow-up */
  assert_false(info(s, "e").pending);
  /* the aggregate's own settle */
  zql_schedule_t sc = S("on event", 5000, NULL);
  assert_int_equal(zql_sched_set(s, "e2", &sc, 0, NULL), 0);
  zql_schedule_release(&sc);
  assert_int_equal(zql_sched_events(s, "e2", 10000), 0);
  assert_true(info(s, "e2").next_due_ms == 15000);
  /* events for other kinds are ignored; unknown names are errors */
  set(s, "c", "on close", 0);
  assert_int_equal(zql_sched_events(s, "c", 10000), 0);
  assert_true(info(s, "c").next_due_ms == NEVER);
  assert_int_equal(zql_sched_events(s, "nope", 10000), ZQL_E_NO_AGG);
  zql_sched_free(s);
}

static void test_after(void **state)
{
  zql_sched_t *s = mk(4);
  set(s, "a", "every 10s", 0);
  set(s, "b", "after a", 0);
  set(s, "c", "after b", 0);
  set(s, "d", "after a", 0);
  expect_next(s, 0, "a");
  expect_next(s, 0, NULL);
  done(s, "a", 100, true);
  assert_int_equal(zql_sched_committed(s, "a", 100, false), 0); /* nothing new: no runs */
  assert_true(zql_sched_wakeup(s) == 10000);
  assert_int_equal(zql_sched_committed(s, "a", 200, true), 2);
  assert_true(zql_sched_wakeup(s) == 200);
  expect_next(s, 200, "b");
  expect_next(s, 200, "d");
  expect_next(s, 200, NULL);
  /* a commits twice while b runs: one follow-up run of b */
  assert_int_equal(zql_sched_committed(s, "a", 300, true), 2);
  assert_int_equal(zql_sched_committed(s, "a", 400, true), 2);
  assert_true(info(s, "b").pending);
  done(s, "b", 500, true);
  assert_int_equal(zql_sched_committed(s, "b", 500, true), 1);
  expect_next(s, 500, "b"); /* its follow-up, due since 300 */
  expect_next(s, 500, "c");
  done(s, "b", 600, true);
  done(s, "c", 600, true);
  done(s, "d", 600, true);
  expect_next(s, 600, "d"); /* d's follow-up */
  done(s, "d", 700, true);
  assert_true(zql_sched_wakeup(s) == 10000);
  assert_int_equal(zql_sched_committed(s, "zzz", 700, true), 0);

  /* cycles */
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_schedule_t sc = S("after c", 0, NULL);
  assert_int_equal(zql_sched_set(s, "a", &sc, 800, &err), ZQL_E_CYCLE);
  assert_string_equal(err.buf, "schedule cycle: a after c after b after a");
  assert_string_equal(info(s, "a").kind, "every"); /* unchanged */
  zql_schedule_release(&sc);
  zql_strbuf_reset(&err);
  sc = S("after x", 0, NULL);
  assert_int_equal(zql_sched_set(s, "x", &sc, 800, &err), ZQL_E_CYCLE);
  assert_string_equal(err.buf, "schedule cycle: x after x");
  assert_int_equal(zql_sched_info(s, "x", &(zql_sched_info_t){0}), ZQL_E_NO_AGG);
  zql_schedule_release(&sc);
  /* a cycle closed by adding the missing link, in any order */
  zql_strbuf_reset(&err);
  set(s, "p", "after q", 800);
  set(s, "q", "after r", 800);
  sc = S("after p", 0, NULL);
  assert_int_equal(zql_sched_set(s, "r", &sc, 800, &err), ZQL_E_CYCLE);
  assert_string_equal(err.buf, "schedule cycle: r after p after q after r");
  zql_schedule_release(&sc);
  /* replacing the edge that would close it is fine */
  set(s, "p", "every 1m", 800);
  sc = S("after p", 0, NULL);
  assert_int_equal(zql_sched_set(s, "r", &sc, 800, NULL), 0);
  zql_schedule_release(&sc);
  zql_strbuf_release(&err);
  zql_sched_free(s);
}

static void test_backoff(void **state)
{
  zql_sched_t *s = mk(1);
  set(s, "f", "every 1s", 0);
  zql_schedule_t none = S(NULL, 0, NULL);
  assert_int_equal(zql_sched_set(s, "g", &none, 0, NULL), 0);
  zql_schedule_release(&none);
  int64_t now = 0;
  /* retry delays: 1 s, 2 s, 4 s, then the 8 s cap, each times [0.8, 1.2], capped */
  const int64_t base[] = {1000, 2000, 4000, 8000, 8000, 8000, 8000, 8000};
  int64_t seen[8];
  expect_next(s, now, "f");
  for (int i = 0; i < 8; i++) {
    done(s, "f", now, false);
    zql_sched_info_t in = info(s, "f");
    assert_int_equal(in.failures, (uint32_t)i + 1);
    assert_string_equal(in.last_error, "boom");
    int64_t d = in.next_due_ms - now;
    seen[i] = d;
    int64_t hi = base[i] * 12 / 10 > 8000 ? 8000 : base[i] * 12 / 10;
    if (d < base[i] * 8 / 10 || d > hi)
      fail_msg("retry %d after %" PRId64 " ms, expected %" PRId64 "..%" PRId64, i + 1, d,
               base[i] * 8 / 10, hi);
    /* triggers do not shorten the backoff */
    assert_int_equal(zql_sched_trigger(s, "f", now), 0);
    assert_true(info(s, "f").next_due_ms == in.next_due_ms);
    expect_next(s, in.next_due_ms - 1, NULL);
    /* another aggregate runs meanwhile, even with max_parallel 1 */
    assert_int_equal(zql_sched_trigger(s, "g", now + 1), 0);
    expect_next(s, now + 1, "g");
    done(s, "g", now + 2, true);
    now = in.next_due_ms;
    expect_next(s, now, "f");
  }
  /* jitter: the capped delays are not all equal */
  bool differ = false;
  for (int i = 4; i < 8; i++)
    differ = differ || seen[i] != seen[3];
  assert_true(differ);
  /* success resets the backoff and follows the schedule again */
  done(s, "f", now + 10, true);
  zql_sched_info_t in = info(s, "f");
  assert_true(in.failures == 0 && in.last_error == NULL && in.next_due_ms == now + 1000);
  expect_next(s, now + 1000, "f");
  done(s, "f", now + 1000, false);
  in = info(s, "f");
  assert_true(in.next_due_ms - (now + 1000) <= 1200); /* back to retry_min */
  zql_sched_free(s);
}

static void test_parallel_fairness(void **state)
{
  zql_sched_t *s = mk(2);
  set(s, "z", "every 1s", 0);
  set(s, "m", "every 1s", 5);
  set(s, "a", "every 1s", 10);
  /* the one due longest first, whatever the names */
  expect_next(s, 10, "z");
  expect_next(s, 10, "m");
  expect_next(s, 10, NULL); /* max_parallel */
  assert_true(zql_sched_wakeup(s) == NEVER);
  assert_int_equal(zql_sched_active(s), 2);
  done(s, "m", 20, true);
  assert_true(zql_sched_wakeup(s) == 10);
  expect_next(s, 20, "a");
  done(s, "z", 30, true);
  done(s, "a", 40, true);
  /* due times (a second after each start): m 1010, z 1010, a 1020; at 2000 all are due:
   * by due time, equal ones in name order */
  expect_next(s, 2000, "m");
  expect_next(s, 2000, "z");
  done(s, "z", 2000, true);
  expect_next(s, 2000, "a");
  /* equal due times start in name order */
  zql_sched_free(s);
  s = mk(1);
  set(s, "b", "every 1s", 0);
  set(s, "a", "every 1s", 0);
  expect_next(s, 0, "a");
  done(s, "a", 0, true);
  expect_next(s, 0, "b");
  done(s, "b", 0, true);
  /* the names in order */
  assert_string_equal(zql_sched_nth(s, 0), "a");
  assert_string_equal(zql_sched_nth(s, 1), "b");
  assert_null(zql_sched_nth(s, 2));
  zql_sched_free(s);
}

static void test_remove_while_running(void **state)
{
  zql_sched_t *s = mk(2);
  set(s, "r", "every 1s", 0);
  set(s, "k", "on event", 0);
  expect_next(s, 0, "r");
  assert_int_equal(zql_sched_remove(s, "r"), 0);
  assert_int_equal(zql_sched_remove(s, "r"), ZQL_E_NO_AGG);
  assert_int_equal(zql_sched_info(s, "r", &(zql_sched_info_t){0}), ZQL_E_NO_AGG);
  assert_int_equal(zql_sched_trigger(s, "r", 0), ZQL_E_NO_AGG);
  assert_string_equal(zql_sched_nth(s, 0), "k");
  assert_null(zql_sched_nth(s, 1));
  assert_int_equal(zql_sched_active(s), 1);
  done(s, "r", 500, true); /* the run ends; the entry is gone */
  assert_int_equal(zql_sched_active(s), 0);
  assert_int_equal(zql_sched_done(s, "r", 600, true, NULL), ZQL_E_NO_AGG);
  expect_next(s, 5000, NULL);
  assert_int_equal(zql_sched_remove(s, "k"), 0); /* idle: freed at once */
  assert_null(zql_sched_nth(s, 0));
  assert_int_equal(zql_sched_remove(s, "k"), ZQL_E_NO_AGG);
  /* removed and added back while running: the run finishes, the new schedule follows */
  set(s, "r", "every 1s", 10000);
  expect_next(s, 10000, "r");
  assert_int_equal(zql_sched_remove(s, "r"), 0);
  set(s, "r", "every 3s", 10100);
  assert_true(info(s, "r").running);
  done(s, "r", 10500, true);
  assert_true(info(s, "r").next_due_ms == 13000);
  /* a removed dependent is not triggered any more */
  set(s, "dep", "after r", 11000);
  assert_int_equal(zql_sched_committed(s, "r", 11000, true), 1);
  expect_next(s, 11000, "dep");
  assert_int_equal(zql_sched_remove(s, "dep"), 0);
  assert_int_equal(zql_sched_committed(s, "r", 11100, true), 0);
  done(s, "dep", 11200, true);
  assert_null(zql_sched_nth(s, 1));
  zql_sched_free(s);
}

static void test_reload(void **state)
{
  zql_sched_t *s = mk(2);
  set(s, "a", "every 5s", 0);
  expect_next(s, 0, "a");
  done(s, "a", 1, true);
  assert_true(info(s, "a").next_due_ms == 5000);
  set(s, "a", "every 5s", 1000); /* unchanged: same timing */
  assert_true(info(s, "a").next_due_ms == 5000);
  set(s, "a", "every 2s", 1000); /* counts from the last start */
  assert_true(info(s, "a").next_due_ms == 2000);
  assert_string_equal(info(s, "a").schedule, "every 2s");
  /* changed while running: the run goes on, the new schedule applies after it */
  expect_next(s, 2000, "a");
  set(s, "a", "every 1s", 2100);
  assert_true(info(s, "a").running);
  done(s, "a", 2500, true);
  assert_true(info(s, "a").next_due_ms == 3000);
  /* to a trigger-driven kind: its timer goes; an armed trigger stays */
  assert_int_equal(zql_sched_trigger(s, "a", 2600), 0);
  set(s, "a", "on event", 2700);
  assert_true(info(s, "a").next_due_ms == 2600);
  expect_next(s, 2700, "a");
  done(s, "a", 2800, true);
  assert_true(info(s, "a").next_due_ms == NEVER);
  /* a pending retry survives a reload */
  set(s, "a", "every 1m", 3000);
  assert_true(info(s, "a").next_due_ms == 2700 + 60000); /* from the last start */
  assert_int_equal(zql_sched_trigger(s, "a", 3000), 0);
  expect_next(s, 3000, "a");
  done(s, "a", 3000, false);
  int64_t retry = info(s, "a").next_due_ms;
  assert_true(retry >= 3800 && retry <= 4200);
  set(s, "a", "every 10s", 3100);
  assert_true(info(s, "a").next_due_ms == retry);
  zql_sched_free(s);
}

static void test_close_and_demand(void **state)
{
  zql_sched_t *s = mk(2);
  zql_schedule_t sc = S("on close", 0, NULL);
  zql_bucket_t b;
  assert_int_equal(zql_bucket_setup(&b, "hour", 1, "UTC", NULL, NULL, NULL), 0);
  assert_int_equal(zql_schedule_set_close(&sc, &b, 5 * 60000), 0);
  assert_int_equal(zql_sched_set(s, "h", &sc, U("2024-01-01T00:30:00Z"), NULL), 0);
  zql_schedule_release(&sc);
  assert_true(zql_sched_wakeup(s) == U("2024-01-01T01:05:00Z"));
  expect_next(s, U("2024-01-01T01:05:00Z"), "h");
  done(s, "h", U("2024-01-01T01:06:00Z"), true);
  assert_true(zql_sched_wakeup(s) == U("2024-01-01T02:05:00Z"));
  /* without a bucket, the daemon reports closes */
  set(s, "c", "on close", 0);
  assert_true(info(s, "c").next_due_ms == NEVER);
  assert_int_equal(zql_sched_bucket_close(s, "c", 7000), 0);
  assert_int_equal(zql_sched_bucket_close(s, "c", 9000), 0);
  assert_true(info(s, "c").next_due_ms == 7000);
  assert_int_equal(zql_sched_bucket_close(s, "nope", 7000), ZQL_E_NO_AGG);
  expect_next(s, 7000, "c");
  done(s, "c", 7100, true);
  assert_true(info(s, "c").next_due_ms == NEVER);
  /* closes are ignored by other kinds */
  set(s, "e", "every 1h", 0);
  expect_next(s, 0, "e");
  done(s, "e", 0, true);
  assert_int_equal(zql_sched_bucket_close(s, "e", 10), 0);
  assert_true(info(s, "e").next_due_ms == 3600000);
  /* no schedule: only on demand */
  zql_schedule_t none = S(NULL, 0, NULL);
  assert_int_equal(zql_sched_set(s, "n", &none, 0, NULL), 0);
  zql_schedule_release(&none);
  assert_string_equal(info(s, "n").kind, "none");
  assert_string_equal(info(s, "n").schedule, "on demand");
  assert_true(info(s, "n").next_due_ms == NEVER);
  assert_int_equal(zql_sched_trigger(s, "n", 8000), 0);
  expect_next(s, 8000, "n");
  assert_int_equal(zql_sched_trigger(s, "n", 8100), 0); /* while running: one follow-up */
  assert_int_equal(zql_sched_trigger(s, "n", 8200), 0);
  done(s, "n", 8300, true);
  expect_next(s, 8300, "n");
  done(s, "n", 8400, true);
  assert_true(info(s, "n").next_due_ms == NEVER);
  zql_sched_free(s);
}

static void test_sched_nomem(void **state)
{
  zql_schedule_t sc = S("on event type == \"x\"", 0, NULL);
  for (long n = 0;; n++) {
    zql_alloc_fail_after(n);
    zql_sched_t *s = zql_sched_new(NULL);
    int rc = s ? 0 : ZQL_E_NOMEM;
    for (int i = 0; rc == 0 && i < 40; i++) {
      char name[16];
      snprintf(name, sizeof name, "agg%02d", i);
      rc = zql_sched_set(s, name, &sc, 0, NULL);
    }
    if (rc == 0)
      rc = zql_sched_events(s, "agg07", 0);
    zql_alloc_fail_after(-1);
    if (rc == 0) {
      assert_string_equal(zql_sched_nth(s, 39), "agg39");
      assert_true(info(s, "agg07").next_due_ms == 200);
      zql_sched_free(s);
      break;
    }
    assert_int_equal(rc, ZQL_E_NOMEM);
    /* whatever was added is consistent */
    for (size_t i = 0; s && zql_sched_nth(s, i); i++)
      assert_int_equal(zql_sched_info(s, zql_sched_nth(s, i), &(zql_sched_info_t){0}), 0);
    zql_sched_free(s);
    assert_true(n < 1000);
  }
  zql_schedule_release(&sc);
  /* the default options */
  zql_sched_t *s = zql_sched_new(&(zql_sched_opts_t){0, 0, 0, -1, 7});
  set(s, "e", "on event", 0);
  assert_int_equal(zql_sched_events(s, "e", 1000), 0);
  assert_true(info(s, "e").next_due_ms == 1200);
  expect_next(s, 1200, "e");
  done(s, "e", 1200, false);
  int64_t d = info(s, "e").next_due_ms - 1200;
  assert_true(d >= 800 && d <= 1200);
  zql_sched_free(s);
  zql_sched_free(NULL);
}

/* }==== */

int zql_unit_sched(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_forms),
      cmocka_unit_test(test_parse_errors),
      ZQL_UNIT_TEST(test_parse_nomem),
      cmocka_unit_test(test_next_close),
      cmocka_unit_test(test_every),
      cmocka_unit_test(test_cron),
      cmocka_unit_test(test_event_coalescing),
      cmocka_unit_test(test_after),
      cmocka_unit_test(test_backoff),
      cmocka_unit_test(test_parallel_fairness),
      cmocka_unit_test(test_remove_while_running),
      cmocka_unit_test(test_reload),
      cmocka_unit_test(test_close_and_demand),
      ZQL_UNIT_TEST(test_sched_nomem),
  };
  int failed = cmocka_run_group_tests_name("sched", tests, NULL, NULL);
  zql_tz_cache_clear();
  return failed;
}
