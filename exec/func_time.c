/*
 * func_time.c -- the time scalar functions of ZQL: date, now, epoch_ms, epoch_s, trunc,
 * format_time, year, month, day, hour, minute, dow (stage 4, MAP and REDUCE; func.h has
 * the calling contract, runtime/base/tz.h the calendar and zone machinery).
 *
 * Pipeline position: zql_scalar_lookup (exec/func.c) finds these entries in
 * zql_scalars_time; the VM calls `prepare` once per call site with the constant
 * arguments (zones, units, formats), which loads the zone (zql_tz_load caches it for the
 * process) and leaves what `call` needs in the plan arena; `call` then runs once per row
 * and only reads it, so any number of threads may call at once.
 *
 * Conventions (design/ZQL.md R1-R5, R9):
 *  - Time arguments go through zql_time_of (exec/func_time.h): DATE, TIMESTAMP and OID
 *    are instants; any other value is ERROR "NAME: not a time value". NULL and MISSING
 *    give NULL; an ERROR argument is the result.
 *  - Zone, unit and format arguments must be constant strings (the analyzer makes sure);
 *    prepare refuses anything else (ZQL_E_NOT_CONSTANT, ZQL_E_ARG_KIND) and unknown
 *    zones and units (ZQL_E_UNKNOWN_TIMEZONE, ZQL_E_UNKNOWN_UNIT). Without a zone
 *    argument the zone is UTC, except for date(s), which then requires an offset in s.
 *
 * Decisions the one-line docs in parser/funclist.h leave open, settled here:
 *  - date(s [, tz]) takes strings only ("date: not a string" otherwise, also for a date:
 *    R9 keeps the text and instant worlds apart). The text follows zql_parse_iso8601
 *    (runtime/base/tz.h): a local time in a DST gap moves forward by the gap, one in a
 *    fold takes the earlier instant, a date alone is the first instant of that local day.
 *    Failures: "date: not an ISO-8601 date", "date: no offset and no zone",
 *    "date: out of range".
 *  - epoch_ms(x), epoch_s(x): an INT is exact (epoch_s out of the int64 ms range is
 *    "epoch_s: out of range"); a DOUBLE is rounded to the nearest millisecond, halves up,
 *    so epoch_s(1.001) is 1001 ms although 1.001 * 1000 is 1000.9999999999999 in binary.
 *    NaN, infinities and values outside the range are "NAME: out of range"; other types
 *    are "NAME: not a number".
 *  - trunc(ts, unit [, tz]) is bucket(ts, unit tz Z) with every 1: weeks start on Monday
 *    and sub-day units count from 1970-01-01T00:00 local time in the zone (so in a zone
 *    whose offset is not a whole number of hours, hours are not local clock hours, as
 *    for buckets). "trunc: out of range" at the ends of the int64 range.
 *  - year, month, day, hour, minute and dow give INT; dow is ISO (1 = Monday).
 */
#include "runtime/base/zql_common.h"

#include <math.h>

#include "exec/func.h"
#include "exec/func_time.h"
#include "runtime/base/error.h"
#include "runtime/base/tz.h"

#define E_OOM "out of memory"

/* {==== helpers ========================================================================= */

bool zql_time_of(const zql_val_t *v, int64_t *ms)
{
  switch (v->t) {
  case ZQL_V_DATE:
    *ms = v->u.i;
    return true;
  case ZQL_V_TIMESTAMP:
    *ms = (int64_t)v->u.ts.t * 1000;
    return true;
  case ZQL_V_OID: {
    const uint8_t *p = v->u.p;
    uint32_t secs = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    *ms = (int64_t)secs * 1000;
    return true;
  }
  default:
    return false;
  }
}

/* The time argument args[0] as ms, or false with *out set (ERROR, NULL, or the ERROR
 * `not_time`). Only args[0] matters: the other arguments were constants for prepare. */
static bool time_arg(const zql_val_t *args, const char *not_time, int64_t *ms, zql_val_t *out)
{
  if (zql_fn_propagate(args, 1, out))
    return false;
  if (!zql_time_of(&args[0], ms)) {
    *out = zql_val_error(not_time);
    return false;
  }
  return true;
}

/* Constant string argument i of a call of fn, described as `what` in messages. */
static int const_string(zql_fnprep_t *p, int i, const char *fn, const char *what,
                        const zql_val_t **out)
{
  if (!p->isconst[i]) {
    zql_strbuf_addf(p->err, "the %s of '%s' must be a constant", what, fn);
    return ZQL_E_NOT_CONSTANT;
  }
  if (p->consts[i].t != ZQL_V_STRING) {
    zql_strbuf_addf(p->err, "the %s of '%s' must be a string", what, fn);
    return ZQL_E_ARG_KIND;
  }
  *out = &p->consts[i];
  return 0;
}

/* The zone of argument i (when there are more than i arguments), else `deflt`. */
static int prep_zone(zql_fnprep_t *p, int i, const char *fn, const zql_tz_t *deflt,
                     const zql_tz_t **out)
{
  *out = deflt;
  if (p->nargs <= i)
    return 0;
  const zql_val_t *v;
  int rc = const_string(p, i, fn, "zone", &v);
  if (rc < 0)
    return rc;
  if (strlen(v->u.s) != v->len) {
    zql_strbuf_addf(p->err, "unknown time zone (the zone of '%s' contains a NUL byte)", fn);
    return ZQL_E_UNKNOWN_TIMEZONE;
  }
  return zql_tz_load(v->u.s, out, p->err);
}

/* }==== */

/* {==== date, now, epoch_ms, epoch_s ===================================================== */

static int prep_date(zql_fnprep_t *p)
{
  const zql_tz_t *z;
  int rc = prep_zone(p, 1, "date", NULL, &z);
  p->aux = (void *)z; /* NULL: the text needs an offset */
  return rc;
}

static void fn_date(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                    zql_val_t *out)
{
  if (zql_fn_propagate(args, 1, out))
    return;
  if (args[0].t != ZQL_V_STRING) {
    *out = zql_val_error("date: not a string");
    return;
  }
  zql_iso_t iso;
  int64_t ms;
  if (zql_iso8601_scan(args[0].u.s, args[0].len, &iso, NULL) < 0)
    *out = zql_val_error("date: not an ISO-8601 date");
  else if (!iso.has_offset && !aux)
    *out = zql_val_error("date: no offset and no zone");
  else if (zql_iso8601_resolve(&iso, aux, &ms, NULL) < 0)
    *out = zql_val_error("date: out of range");
  else
    *out = zql_val_date(ms);
}

static void fn_now(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                   zql_val_t *out)
{
  *out = zql_val_date(c->now_ms);
}

/* x * scale ms since the epoch (scale 1 or 1000); msgs[0] "not a number", msgs[1] "out of
 * range". */
static void epoch(const zql_val_t *x, int64_t scale, const char *const msgs[2], zql_val_t *out)
{
  if (zql_fn_propagate(x, 1, out))
    return;
  int64_t ms;
  if (x->t == ZQL_V_INT) {
    if (__builtin_mul_overflow(x->u.i, scale, &ms)) {
      *out = zql_val_error(msgs[1]);
      return;
    }
  } else if (x->t == ZQL_V_DOUBLE) {
    /* 2^63 is exact in a double: every integral r below it converts without overflow;
     * NaN fails the comparison */
    double r = floor(x->u.d * (double)scale + 0.5);
    if (!(r >= -9223372036854775808.0 && r < 9223372036854775808.0)) {
      *out = zql_val_error(msgs[1]);
      return;
    }
    ms = (int64_t)r;
  } else {
    *out = zql_val_error(msgs[0]);
    return;
  }
  *out = zql_val_date(ms);
}

static void fn_epoch_ms(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                        zql_val_t *out)
{
  static const char *const msgs[2] = {"epoch_ms: not a number", "epoch_ms: out of range"};
  epoch(&args[0], 1, msgs, out);
}

static void fn_epoch_s(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                       zql_val_t *out)
{
  static const char *const msgs[2] = {"epoch_s: not a number", "epoch_s: out of range"};
  epoch(&args[0], 1000, msgs, out);
}

/* }==== */

/* {==== trunc, format_time =============================================================== */

static int prep_trunc(zql_fnprep_t *p)
{
  const zql_val_t *u;
  const zql_tz_t *z;
  zql_tunit_t unit;
  int rc = const_string(p, 1, "trunc", "unit", &u);
  if (rc < 0)
    return rc;
  if (!zql_tunit_parse(u->u.s, u->len, &unit)) {
    zql_strbuf_adds(p->err, "unknown time unit '");
    zql_strbuf_add(p->err, u->u.s, u->len);
    zql_strbuf_adds(p->err, "' (units: ms second minute hour day week month quarter year)");
    return ZQL_E_UNKNOWN_UNIT;
  }
  if ((rc = prep_zone(p, 2, "trunc", zql_tz_utc(), &z)) < 0)
    return rc;
  zql_bucket_t *b = zql_arena_alloc(p->arena, sizeof *b);
  if (!b) {
    zql_strbuf_adds(p->err, E_OOM);
    return ZQL_E_NOMEM;
  }
  if ((rc = zql_bucket_init(b, unit, 1, z, 1, NULL)) < 0) { /* cannot fail for every 1 */
    zql_strbuf_adds(p->err, "trunc: invalid unit");
    return rc;
  }
  p->aux = b;
  return 0;
}

static void fn_trunc(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                     zql_val_t *out)
{
  int64_t ms, start;
  if (!time_arg(args, "trunc: not a time value", &ms, out))
    return;
  if (zql_bucket_start(aux, ms, &start) < 0)
    *out = zql_val_error("trunc: out of range");
  else
    *out = zql_val_date(start);
}

typedef struct fmt_aux {
  const zql_tz_t *tz;
  const char *fmt;
  size_t len;
} fmt_aux_t;

static int prep_format_time(zql_fnprep_t *p)
{
  const zql_val_t *f;
  fmt_aux_t *a;
  int rc = const_string(p, 1, "format_time", "format", &f);
  if (rc < 0)
    return rc;
  if (!(a = zql_arena_alloc(p->arena, sizeof *a)) ||
      !(a->fmt = zql_arena_strndup(p->arena, f->u.s, f->len))) {
    zql_strbuf_adds(p->err, E_OOM);
    return ZQL_E_NOMEM;
  }
  a->len = f->len;
  if ((rc = prep_zone(p, 2, "format_time", zql_tz_utc(), &a->tz)) < 0)
    return rc;
  p->aux = a;
  return 0;
}

static void fn_format_time(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                           zql_val_t *out)
{
  const fmt_aux_t *a = aux;
  int64_t ms;
  if (!time_arg(args, "format_time: not a time value", &ms, out))
    return;
  char small[128];
  size_t len = zql_tz_format(small, sizeof small, a->fmt, a->len, a->tz, ms);
  if (len > UINT32_MAX - 1) {
    *out = zql_val_error("format_time: result too long");
    return;
  }
  char *s = zql_arena_alloc(c->arena, len + 1);
  if (!s) {
    *out = zql_val_error(E_OOM);
    return;
  }
  if (len < sizeof small)
    memcpy(s, small, len + 1);
  else
    zql_tz_format(s, len + 1, a->fmt, a->len, a->tz, ms);
  *out = zql_val_str(s, (uint32_t)len);
}

/* }==== */

/* {==== calendar fields ================================================================== */

static int prep_field_zone(zql_fnprep_t *p, const char *fn)
{
  const zql_tz_t *z;
  int rc = prep_zone(p, 1, fn, zql_tz_utc(), &z);
  p->aux = (void *)z;
  return rc;
}

#define FIELD_FN(NAME, EXPR)                                                                 \
  static int prep_##NAME(zql_fnprep_t *p)                                                   \
  {                                                                                         \
    return prep_field_zone(p, #NAME);                                                       \
  }                                                                                         \
  static void fn_##NAME(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs, \
                        zql_val_t *out)                                                     \
  {                                                                                         \
    int64_t ms;                                                                             \
    zql_civil_t cv;                                                                         \
    if (!time_arg(args, #NAME ": not a time value", &ms, out))                              \
      return;                                                                               \
    zql_tz_to_civil(aux, ms, &cv);                                                          \
    *out = zql_val_int(EXPR);                                                               \
  }

FIELD_FN(year, cv.year)
FIELD_FN(month, cv.month)
FIELD_FN(day, cv.day)
FIELD_FN(hour, cv.hour)
FIELD_FN(minute, cv.minute)
FIELD_FN(dow, cv.wday)

#undef FIELD_FN

/* }==== */

/* ORDER: parser/funclist.h's time scalars. */
const zql_scalar_t zql_scalars_time[] = {
    {"date", 1, 2, prep_date, fn_date, true},
    {"now", 0, 0, NULL, fn_now, false},
    {"epoch_ms", 1, 1, NULL, fn_epoch_ms, true},
    {"epoch_s", 1, 1, NULL, fn_epoch_s, true},
    {"trunc", 2, 3, prep_trunc, fn_trunc, true},
    {"format_time", 2, 3, prep_format_time, fn_format_time, true},
    {"year", 1, 2, prep_year, fn_year, true},
    {"month", 1, 2, prep_month, fn_month, true},
    {"day", 1, 2, prep_day, fn_day, true},
    {"hour", 1, 2, prep_hour, fn_hour, true},
    {"minute", 1, 2, prep_minute, fn_minute, true},
    {"dow", 1, 2, prep_dow, fn_dow, true},
    {NULL, 0, 0, NULL, NULL, false},
};
