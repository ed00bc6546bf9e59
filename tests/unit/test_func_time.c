/*
 * test_func_time.c -- unit tests of the time scalar functions (exec/func_time.c).
 *
 * Each function is called the way the VM calls it: `prepare` once with the constant
 * arguments (every argument but the first is marked constant unless a test says
 * otherwise), then `call` with the row's values. Covered: the table against
 * parser/funclist.h; every function with DATE, TIMESTAMP and ObjectId inputs, zones,
 * NULL/MISSING/ERROR propagation and the ERROR messages for wrong types; epoch rounding
 * and range; prepare errors (unknown zone or unit, non-constant or non-string constants);
 * long format results; out of memory in prepare and call; zql_time_of. Zone-dependent
 * cases need the system tzdata and are skipped (SKIP) without it.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <math.h>
#include <stdarg.h>

#include "exec/func.h"
#include "exec/func_time.h"
#include "parser/registry.h"
#include "runtime/base/alloc.h"
#include "runtime/base/arena.h"
#include "runtime/base/error.h"
#include "runtime/base/tz.h"


#define NOW INT64_C(1700000000123)
#define T0 INT64_C(1309478400000) /* 2011-07-01T00:00:00Z, a Friday */

/* {==== values and calls ================================================================ */

static zql_val_t D(int64_t ms) { return zql_val_date(ms); }
static zql_val_t I(int64_t i) { return zql_val_int(i); }
static zql_val_t R(double d) { return zql_val_double(d); }
static zql_val_t S(const char *s) { return zql_val_str(s, (uint32_t)strlen(s)); }

static zql_val_t TS(uint32_t secs)
{
  zql_val_t v = zql_val_null();
  v.t = ZQL_V_TIMESTAMP;
  v.u.ts.t = secs;
  v.u.ts.i = 7;
  return v;
}

/* 0x5f5e1000 = 1600000000 s = 2020-09-13T12:26:40Z, then a counter */
static const uint8_t oid_bytes[12] = {0x5f, 0x5e, 0x10, 0x00, 1, 2, 3, 4, 5, 6, 7, 8};

static zql_val_t OID(void)
{
  zql_val_t v = zql_val_null();
  v.t = ZQL_V_OID;
  v.u.p = oid_bytes;
  return v;
}

static zql_arena_t *plan_arena, *batch_arena;

static int setup(void **state)
{
  plan_arena = zql_arena_create(NULL);
  batch_arena = zql_arena_create(NULL);
  return plan_arena && batch_arena ? 0 : -1;
}

static int teardown(void **state)
{
  zql_alloc_fail_after(-1);
  zql_arena_delete(plan_arena);
  zql_arena_delete(batch_arena);
  return 0;
}

static const zql_scalar_t *find(const char *name, int nargs)
{
  for (const zql_scalar_t *t = zql_scalars_time; t->name; t++)
    if (strcmp(t->name, name) == 0 && nargs >= t->min_args && nargs <= t->max_args)
      return t;
  fail_msg("no time function %s/%d", name, nargs);
  return NULL;
}

/* prepare (constants: every argument but the first when isconst is NULL) and call;
 * returns prepare's code, with its message in err. */
static int prep_call(const char *name, const zql_val_t *args, int nargs, const bool *isconst,
                     zql_val_t *out, zql_strbuf_t *err)
{
  const zql_scalar_t *f = find(name, nargs);
  bool konst[4] = {false, true, true, true};
  zql_fnprep_t p = {plan_arena, nargs, args, isconst ? isconst : konst, NULL, err};
  if (f->prepare) {
    int rc = f->prepare(&p);
    if (rc != 0)
      return rc;
  }
  zql_fnctx_t c = {batch_arena, NOW};
  *out = zql_val_missing();
  f->call(&c, p.aux, args, nargs, out);
  return 0;
}

/* call name(args...) with nargs zql_val_t arguments; prepare must succeed. */
static zql_val_t run(const char *name, int nargs, ...)
{
  zql_val_t args[4];
  va_list ap;
  va_start(ap, nargs);
  for (int i = 0; i < nargs; i++)
    args[i] = va_arg(ap, zql_val_t);
  va_end(ap);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_val_t out;
  int rc = prep_call(name, args, nargs, NULL, &out, &err);
  if (rc == ZQL_E_UNKNOWN_TIMEZONE) {
    zql_strbuf_release(&err);
    skip();
  }
  if (rc != 0)
    fail_msg("%s: prepare failed: %s", name, err.buf);
  zql_strbuf_release(&err);
  return out;
}

/* prepare name(args) and expect it to fail with rc and message msg. */
static void prep_fails(const char *name, const zql_val_t *args, int nargs, const bool *isconst,
                       int rc, const char *msg)
{
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_val_t out;
  int got = prep_call(name, args, nargs, isconst, &out, &err);
  if (got != rc || strcmp(err.buf, msg) != 0)
    fail_msg("%s: prepare gave %d '%s', expected %d '%s'", name, got, err.buf, rc, msg);
  zql_strbuf_release(&err);
}

static void is_date(zql_val_t v, int64_t ms)
{
  if (v.t != ZQL_V_DATE)
    fail_msg("a value of type %d, not a date (%s)", v.t, v.t == ZQL_V_ERROR ? v.u.err : "");
  if (v.u.i != ms)
    fail_msg("date %" PRId64 ", expected %" PRId64, v.u.i, ms);
}

static void is_int(zql_val_t v, int64_t i)
{
  if (v.t != ZQL_V_INT || v.u.i != i)
    fail_msg("expected INT %" PRId64 " (type %d, %" PRId64 ")", i, v.t, v.u.i);
}

static void is_str(zql_val_t v, const char *s, size_t n)
{
  assert_int_equal(v.t, ZQL_V_STRING);
  assert_int_equal(v.len, n);
  assert_memory_equal(v.u.s, s, n);
  assert_int_equal(v.u.s[n], '\0');
}

static void is_error(zql_val_t v, const char *msg)
{
  if (v.t != ZQL_V_ERROR || strcmp(v.u.err, msg) != 0)
    fail_msg("expected ERROR '%s', got type %d %s", msg, v.t, v.t == ZQL_V_ERROR ? v.u.err : "");
}

static void is_null(zql_val_t v)
{
  assert_int_equal(v.t, ZQL_V_NULL);
}

/* A MISSING argument gives MISSING (design/ZQL.md R5: def(f(x)) is false when x is absent). */
static void is_missing(zql_val_t v)
{
  assert_int_equal(v.t, ZQL_V_MISSING);
}

/* }==== */

/* {==== the table ======================================================================= */

typedef struct listed {
  const char *name;
  int kind, min, max;
  unsigned flags;
} listed_t;

static const listed_t listed[] = {
#define ZQL_FUNC(name, kind, min, max, args, result, flags, synopsis, doc) \
  {name, kind, min, max, flags},
#include "parser/funclist.h"
#undef ZQL_FUNC
};

static void test_table(void **state)
{
  static const char *const mine[] = {"date", "now",  "epoch_ms", "epoch_s", "trunc", "format_time",
                                     "year", "month", "day",     "hour",    "minute", "dow"};
  size_t n = 0;
  for (const zql_scalar_t *t = zql_scalars_time; t->name; t++, n++) {
    const listed_t *l = NULL;
    for (size_t i = 0; i < ZQL_ARRAY_LEN(listed); i++)
      if (listed[i].kind == ZQL_FN_SCALAR && strcmp(listed[i].name, t->name) == 0)
        l = &listed[i];
    if (!l)
      fail_msg("%s is not a scalar of funclist.h", t->name);
    assert_int_equal(t->min_args, l->min);
    assert_int_equal(t->max_args, l->max);
    assert_non_null(t->call);
    assert_true(t->foldable == !(l->flags & ZQL_FN_VOLATILE));
    assert_string_equal(t->name, mine[n]);
  }
  assert_int_equal(n, ZQL_ARRAY_LEN(mine));
}

/* }==== */

/* {==== the functions ==================================================================== */

static void test_date(void **state)
{
  is_date(run("date", 1, S("2011-07-01T00:00:00Z")), T0);
  is_date(run("date", 1, S("2011-07-01T02:00:00.5+02:00")), T0 + 500);
  is_date(run("date", 2, S("2011-07-01T00:00:00Z"), S("Asia/Tokyo")), T0); /* offset wins */
  is_date(run("date", 2, S("2011-07-01 00:00"), S("UTC")), T0);
  is_date(run("date", 2, S("2011-06-30T20:00"), S("America/New_York")), T0);
  is_date(run("date", 2, S("2011-07-01"), S("Asia/Kathmandu")), T0 - (5 * 60 + 45) * 60000);
  is_date(run("date", 2, S("2024-03-10T02:30"), S("America/New_York")), INT64_C(1710055800000));
  is_error(run("date", 1, S("2011-07-01T00:00:00")), "date: no offset and no zone");
  is_error(run("date", 1, S("2011-07-01")), "date: no offset and no zone");
  is_error(run("date", 1, S("2011-13-01T00:00Z")), "date: not an ISO-8601 date");
  is_error(run("date", 1, S("yesterday")), "date: not an ISO-8601 date");
  is_error(run("date", 2, S("+292278994-12-31T00:00"), S("UTC")), "date: out of range");
  is_error(run("date", 1, I(5)), "date: not a string");
  is_error(run("date", 1, D(T0)), "date: not a string");
  is_null(run("date", 1, zql_val_null()));
  is_missing(run("date", 2, zql_val_missing(), S("UTC")));
  is_error(run("date", 1, zql_val_error("boom")), "boom");
  /* the length counts: a NUL inside the string is a bad character */
  zql_val_t nul = zql_val_str("2011-07-01\0T00:00Z", 18);
  is_error(run("date", 1, nul), "date: not an ISO-8601 date");
  zql_val_t cut = zql_val_str("2011-07-01T00:00:00Zjunk", 20);
  is_date(run("date", 1, cut), T0);
}

static void test_prepare_errors(void **state)
{
  zql_val_t a[3] = {S("2011-07-01"), S("Nowhere/Land"), S("UTC")};
  prep_fails("date", a, 2, NULL, ZQL_E_UNKNOWN_TIMEZONE, "unknown time zone 'Nowhere/Land'");
  a[1] = S("../../etc/passwd");
  prep_fails("year", a, 2, NULL, ZQL_E_UNKNOWN_TIMEZONE, "unknown time zone '../../etc/passwd'");
  a[1] = zql_val_str("UTC\0x", 5);
  prep_fails("hour", a, 2, NULL, ZQL_E_UNKNOWN_TIMEZONE,
             "unknown time zone (the zone of 'hour' contains a NUL byte)");
  a[1] = I(3);
  prep_fails("date", a, 2, NULL, ZQL_E_ARG_KIND, "the zone of 'date' must be a string");
  a[1] = zql_val_null();
  prep_fails("dow", a, 2, NULL, ZQL_E_ARG_KIND, "the zone of 'dow' must be a string");
  static const bool none[3] = {false, false, false};
  a[1] = S("UTC");
  prep_fails("month", a, 2, none, ZQL_E_NOT_CONSTANT, "the zone of 'month' must be a constant");
  a[0] = D(T0);
  a[1] = S("days");
  prep_fails("trunc", a, 2, NULL, ZQL_E_UNKNOWN_UNIT,
             "unknown time unit 'days' (units: ms second minute hour day week month quarter "
             "year)");
  a[1] = I(1);
  prep_fails("trunc", a, 2, NULL, ZQL_E_ARG_KIND, "the unit of 'trunc' must be a string");
  a[1] = S("day");
  prep_fails("trunc", a, 2, none, ZQL_E_NOT_CONSTANT, "the unit of 'trunc' must be a constant");
  a[2] = S("Mars/Base");
  prep_fails("trunc", a, 3, NULL, ZQL_E_UNKNOWN_TIMEZONE, "unknown time zone 'Mars/Base'");
  a[1] = S("%F");
  prep_fails("format_time", a, 2, none, ZQL_E_NOT_CONSTANT,
             "the format of 'format_time' must be a constant");
  a[1] = D(0);
  prep_fails("format_time", a, 2, NULL, ZQL_E_ARG_KIND,
             "the format of 'format_time' must be a string");
  a[1] = S("%F");
  a[2] = S("Mars/Base");
  prep_fails("format_time", a, 3, NULL, ZQL_E_UNKNOWN_TIMEZONE, "unknown time zone 'Mars/Base'");
}

static void test_now_epoch(void **state)
{
  is_date(run("now", 0), NOW);
  is_date(run("epoch_ms", 1, I(T0)), T0);
  is_date(run("epoch_ms", 1, I(-1)), -1);
  is_date(run("epoch_ms", 1, I(INT64_MIN)), INT64_MIN);
  is_date(run("epoch_ms", 1, R(1.5)), 2);
  is_date(run("epoch_ms", 1, R(-1.5)), -1);
  is_date(run("epoch_ms", 1, R(1.4999)), 1);
  is_date(run("epoch_ms", 1, R(-9223372036854775808.0)), INT64_MIN);
  is_date(run("epoch_ms", 1, R(1e18)), INT64_C(1000000000000000000));
  is_error(run("epoch_ms", 1, R(9223372036854775808.0)), "epoch_ms: out of range");
  is_error(run("epoch_ms", 1, R(NAN)), "epoch_ms: out of range");
  is_error(run("epoch_ms", 1, R(-INFINITY)), "epoch_ms: out of range");
  is_error(run("epoch_ms", 1, S("1")), "epoch_ms: not a number");
  is_error(run("epoch_ms", 1, zql_val_bool(true)), "epoch_ms: not a number");
  is_error(run("epoch_ms", 1, D(5)), "epoch_ms: not a number");
  is_missing(run("epoch_ms", 1, zql_val_missing()));
  is_error(run("epoch_ms", 1, zql_val_error("boom")), "boom");

  is_date(run("epoch_s", 1, I(1309478400)), T0);
  is_date(run("epoch_s", 1, I(-1)), -1000);
  is_date(run("epoch_s", 1, R(1.001)), 1001);
  is_date(run("epoch_s", 1, R(1309478400.25)), T0 + 250);
  is_date(run("epoch_s", 1, R(-0.0004)), 0);
  is_date(run("epoch_s", 1, R(-0.0016)), -2);
  is_date(run("epoch_s", 1, I(INT64_MAX / 1000)), INT64_MAX / 1000 * 1000);
  is_error(run("epoch_s", 1, I(INT64_MAX / 1000 + 1)), "epoch_s: out of range");
  is_error(run("epoch_s", 1, I(INT64_MIN / 1000 - 1)), "epoch_s: out of range");
  is_error(run("epoch_s", 1, R(1e17)), "epoch_s: out of range");
  is_error(run("epoch_s", 1, R(INFINITY)), "epoch_s: out of range");
  is_error(run("epoch_s", 1, S("x")), "epoch_s: not a number");
  is_null(run("epoch_s", 1, zql_val_null()));
}

static void test_trunc(void **state)
{
  int64_t t = T0 + 13 * 3600000 + 5 * 60000 + 7007; /* Friday 2011-07-01T13:05:07.007Z */
  is_date(run("trunc", 2, D(t), S("ms")), t);
  is_date(run("trunc", 2, D(t), S("second")), t - 7);
  is_date(run("trunc", 2, D(t), S("minute")), t - 7007);
  is_date(run("trunc", 2, D(t), S("hour")), T0 + 13 * 3600000);
  is_date(run("trunc", 2, D(t), S("day")), T0);
  is_date(run("trunc", 2, D(t), S("week")), T0 - 4 * 86400000);  /* Monday 06-27 */
  is_date(run("trunc", 2, D(t), S("month")), T0);
  is_date(run("trunc", 2, D(t), S("quarter")), T0);
  is_date(run("trunc", 2, D(t), S("year")), INT64_C(1293840000000)); /* 2011-01-01 */
  is_date(run("trunc", 3, D(t), S("day"), S("UTC")), T0);
  is_date(run("trunc", 3, D(T0), S("day"), S("America/New_York")), INT64_C(1309406400000));
  is_date(run("trunc", 3, D(T0), S("month"), S("America/New_York")), INT64_C(1306900800000));
  is_date(run("trunc", 3, D(T0), S("hour"), S("Asia/Kathmandu")), T0 - 30 * 60000);
  is_date(run("trunc", 2, TS(1600000000), S("hour")), INT64_C(1599998400000));
  is_date(run("trunc", 2, OID(), S("minute")), INT64_C(1599999960000));
  is_date(run("trunc", 2, D(-1), S("day")), -86400000);
  is_error(run("trunc", 2, D(INT64_MAX), S("day")), "trunc: out of range");
  is_error(run("trunc", 2, I(5), S("day")), "trunc: not a time value");
  is_error(run("trunc", 2, S("2011-07-01T00:00Z"), S("day")), "trunc: not a time value");
  is_null(run("trunc", 2, zql_val_null(), S("day")));
  is_error(run("trunc", 2, zql_val_error("boom"), S("day")), "boom");
}

static void test_format_time(void **state)
{
  zql_val_t v = run("format_time", 2, D(T0 + 7), S("%F %T.%L %Z"));
  is_str(v, "2011-07-01 00:00:00.007 UTC", 27);
  v = run("format_time", 3, D(T0), S("%F %T %Z %z"), S("America/New_York"));
  is_str(v, "2011-06-30 20:00:00 EDT -0400", 29);
  v = run("format_time", 2, TS(1600000000), S("%Y%m%d-%H%M%S %a"));
  is_str(v, "20200913-122640 Sun", 19);
  v = run("format_time", 2, OID(), S("%s"));
  is_str(v, "1600000000", 10);
  v = run("format_time", 2, D(T0), S(""));
  is_str(v, "", 0);
  v = run("format_time", 2, D(T0), zql_val_str("%Y\0%m", 5)); /* the length counts */
  is_str(v, "2011\0" "07", 7);
  /* a result longer than the small buffer */
  char fmt[301];
  for (int i = 0; i < 100; i++)
    memcpy(fmt + 3 * i, "%A ", 3);
  fmt[300] = '\0';
  v = run("format_time", 2, D(T0), S(fmt));
  assert_int_equal(v.t, ZQL_V_STRING);
  assert_int_equal(v.len, 700);
  assert_memory_equal(v.u.s, "Friday Friday ", 14);
  assert_int_equal(v.u.s[700], '\0');
  is_error(run("format_time", 2, R(1.5), S("%F")), "format_time: not a time value");
  is_missing(run("format_time", 3, zql_val_missing(), S("%F"), S("UTC")));
}

static void test_fields(void **state)
{
  static const char *const names[] = {"year", "month", "day", "hour", "minute", "dow"};
  static const int64_t utc[] = {2011, 7, 1, 0, 0, 5};
  static const int64_t ny[] = {2011, 6, 30, 20, 0, 4};
  static const int64_t kat[] = {2011, 7, 1, 5, 45, 5};
  static const int64_t ts[] = {2020, 9, 13, 12, 26, 7}; /* 1600000000 s, a Sunday */
  for (size_t i = 0; i < ZQL_ARRAY_LEN(names); i++) {
    is_int(run(names[i], 1, D(T0)), utc[i]);
    is_int(run(names[i], 2, D(T0), S("UTC")), utc[i]);
    is_int(run(names[i], 2, D(T0), S("America/New_York")), ny[i]);
    is_int(run(names[i], 2, D(T0), S("Asia/Kathmandu")), kat[i]);
    is_int(run(names[i], 1, TS(1600000000)), ts[i]);
    is_int(run(names[i], 1, OID()), ts[i]);
    char msg[64];
    snprintf(msg, sizeof msg, "%s: not a time value", names[i]);
    is_error(run(names[i], 1, I(T0)), msg);
    is_error(run(names[i], 1, R(1.0)), msg);
    is_error(run(names[i], 1, S("2011-07-01T00:00Z")), msg);
    is_error(run(names[i], 2, zql_val_bool(false), S("UTC")), msg);
    is_null(run(names[i], 1, zql_val_null()));
    is_missing(run(names[i], 2, zql_val_missing(), S("UTC")));
    is_error(run(names[i], 1, zql_val_error("boom")), "boom");
  }
  is_int(run("year", 1, D(INT64_MIN)), -292275055);
  is_int(run("year", 1, D(INT64_MAX)), 292278994);
  is_int(run("dow", 1, D(-1)), 3); /* 1969-12-31, a Wednesday */
}

static void test_time_of(void **state)
{
  int64_t ms = 42;
  zql_val_t v = D(-5);
  assert_true(zql_time_of(&v, &ms) && ms == -5);
  v = TS(UINT32_MAX);
  assert_true(zql_time_of(&v, &ms) && ms == (int64_t)UINT32_MAX * 1000);
  v = OID();
  assert_true(zql_time_of(&v, &ms) && ms == INT64_C(1600000000000));
  ms = 42;
  const zql_val_t no[] = {I(1), R(1.0), S("2011-07-01T00:00Z"), zql_val_null(),
                          zql_val_missing(), zql_val_error("x"), zql_val_bool(true)};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(no); i++)
    assert_false(zql_time_of(&no[i], &ms));
  assert_true(ms == 42);
}

static void test_nomem(void **state)
{
  zql_arena_t *saved_plan = plan_arena, *saved_batch = batch_arena;
  zql_val_t args[2] = {D(T0), S("%F")};
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_val_t out;
  assert_true(zql_strbuf_grow(&err, 256)); /* messages need no allocation while failing */
  /* the batch arena: a result that needs a new block (the plan arena has room) */
  plan_arena = zql_arena_create(NULL);
  batch_arena = zql_arena_create(NULL);
  assert_true(plan_arena && batch_arena && zql_arena_alloc(plan_arena, 8));
  zql_alloc_fail_after(0);
  assert_int_equal(prep_call("format_time", args, 2, NULL, &out, &err), 0);
  zql_alloc_fail_after(-1);
  is_error(out, "out of memory");
  zql_arena_delete(plan_arena);
  /* the plan arena in prepare */
  plan_arena = zql_arena_create(NULL);
  assert_non_null(plan_arena);
  args[1] = S("day");
  zql_alloc_fail_after(0);
  assert_int_equal(prep_call("trunc", args, 2, NULL, &out, &err), ZQL_E_NOMEM);
  zql_alloc_fail_after(-1);
  assert_string_equal(err.buf, "out of memory");
  zql_strbuf_reset(&err);
  args[1] = S("%F");
  zql_alloc_fail_after(0);
  assert_int_equal(prep_call("format_time", args, 2, NULL, &out, &err), ZQL_E_NOMEM);
  zql_alloc_fail_after(-1);
  assert_string_equal(err.buf, "out of memory");
  zql_strbuf_reset(&err);
  /* loading a zone */
  zql_tz_cache_clear();
  args[0] = S("2011-07-01T00:00");
  args[1] = S("Europe/Paris");
  zql_alloc_fail_after(0);
  int rc = prep_call("date", args, 2, NULL, &out, &err);
  zql_alloc_fail_after(-1);
  if (rc == ZQL_E_UNKNOWN_TIMEZONE)
    skip();
  assert_int_equal(rc, ZQL_E_NOMEM);
  assert_string_equal(err.buf, "out of memory");
  zql_strbuf_release(&err);
  zql_arena_delete(plan_arena);
  zql_arena_delete(batch_arena);
  plan_arena = saved_plan;
  batch_arena = saved_batch;
}

/* }==== */

int zql_unit_func_time(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table),       cmocka_unit_test(test_date),
      cmocka_unit_test(test_prepare_errors), cmocka_unit_test(test_now_epoch),
      cmocka_unit_test(test_trunc),       cmocka_unit_test(test_format_time),
      cmocka_unit_test(test_fields),      cmocka_unit_test(test_time_of),
      ZQL_UNIT_TEST(test_nomem),
  };
  int failed = cmocka_run_group_tests_name("func_time", tests, setup, teardown);
  zql_tz_cache_clear();
  return failed;
}
