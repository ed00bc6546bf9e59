/*
 * tz.c -- TZif reader, POSIX TZ rules, civil time, buckets, ISO-8601, strftime (layer 0;
 * the contract is in tz.h).
 *
 * Pipeline position: the analyzer and the planner load zones and parse constant dates
 * (bucket origins, date("...")); the executor's bucket operator and the time functions
 * (exec/func_time.c) call zql_bucket_* and zql_tz_to_civil once per row; the output code
 * formats dates with zql_tz_format. Nothing here touches the process-global TZ.
 *
 * Zone representation. A zone is a sorted table of transitions (UTC seconds -> local time
 * type {utoff, isdst, abbreviation}), the type in effect before the first transition, and
 * optionally a POSIX TZ rule (the TZif footer, RFC 8536 section 3.3) that governs every
 * instant from the last transition on. At load time the rule's transitions are appended to
 * the table up to the year EXTEND_TO_YEAR, so that the instants events carry are resolved
 * by one binary search; beyond the table the rule is evaluated directly. A file without
 * transitions but with a rule (and a zone made by zql_tz_from_posix) follows the rule at
 * all times. TZif data is read from the version 2+ (64-bit) block when present;
 * transitions outside the int64 ms range (zic's "big bang" at -2^59) are dropped, the
 * last one before the range becoming the initial type. Leap-second files ("right/") are
 * refused. tests/unit/tzcheck.c compares the result with glibc on every zone.
 *
 * Local -> UTC (zql_tz_from_civil). Offsets are bounded (|utoff| < 26 h, RFC 8536), so the
 * instants showing wall-clock time L all lie within 26 hours of L read as UTC. We collect
 * the offset in effect at L - 27 h and after each change up to L + 27 h; each offset o
 * whose instant L - o falls in the span where o is in effect is a solution. No solution is
 * a gap, more than one a fold (the earliest wins). When one offset covers the whole window
 * (all but a few days a year) that is one binary search.
 *
 * Buckets (R10): see tz.h. Civil periods are found from the local date of t and then
 * corrected against the period boundaries S(D) themselves, which is what makes buckets a
 * partition of the time line around repeated or skipped midnights. The common case, no
 * transition within a day of the period, takes one lookup and no search.
 */
#include "runtime/base/zql_common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"
#include "runtime/base/tz.h"
#include "runtime/base/tzdb.h"

#define SECS_PER_DAY INT64_C(86400)
#define MAX_UTOFF 93599           /* RFC 8536: utoff in -89999 .. 93599 */
#define MIN_UTOFF (-89999)
#define WINDOW (27 * 3600)        /* > |any utoff|: see the file comment */
#define EXTEND_TO_YEAR 2200       /* rule transitions precomputed up to this year */
#define MAX_TZIF_BYTES (4u << 20) /* real files are a few KiB */
#define MAX_ABBR 64               /* longest abbreviation of a POSIX TZ rule */
/* Rule evaluation bound: beyond the years of the int64 ms range (-292275055..292278994). */
#define MAX_RULE_YEAR INT64_C(292278995)

/* {==== calendar ========================================================================= */

int64_t zql_floor_div(int64_t a, int64_t d)
{
  int64_t q = a / d;
  if ((a % d != 0) && ((a < 0) != (d < 0)))
    q--;
  return q;
}

int64_t zql_floor_mod(int64_t a, int64_t d)
{
  int64_t r = a % d;
  if (r != 0 && ((r < 0) != (d < 0)))
    r += d;
  return r;
}

bool zql_is_leap_year(int64_t y)
{
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int zql_days_in_month(int64_t y, int m)
{
  static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && zql_is_leap_year(y) ? 29 : d[m - 1];
}

/* Howard Hinnant, "days_from_civil": shift the year to start in March so that the leap
 * day is the last day of the year, then count whole 400-year eras (146097 days each). */
int64_t zql_days_from_civil(int64_t y, int m, int d)
{
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;                                  /* [0, 399] */
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;          /* [0, 146096] */
  return era * 146097 + doe - 719468;
}

/* Howard Hinnant, "civil_from_days": the inverse of the above. */
void zql_civil_from_days(int64_t z, int64_t *year, int *month, int *day)
{
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;                                      /* [0, 146096] */
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
  int64_t mp = (5 * doy + 2) / 153;                                    /* [0, 11] */
  *day = (int)(doy - (153 * mp + 2) / 5 + 1);
  *month = (int)(mp < 10 ? mp + 3 : mp - 9);
  *year = yoe + era * 400 + (*month <= 2);
}

int zql_weekday_from_days(int64_t z)
{
  return (int)zql_floor_mod(z + 3, 7) + 1; /* day 0 = Thursday = 4 */
}

/* }==== */

/* {==== zone data ======================================================================== */

typedef struct ttype {
  int32_t utoff;
  bool isdst;
  uint32_t abbr; /* offset of the NUL-terminated abbreviation in chars */
} ttype_t;

/* A date of a POSIX TZ rule. */
typedef struct rdate {
  char kind;    /* 'J': Julian day 1..365, Feb 29 never counted; 'N': 0..365 counting
                   Feb 29; 'M': weekday `wday` of week `week` of month `n` */
  int n;
  int week;     /* 1..5, 5 = the last */
  int wday;     /* 0 = Sunday .. 6 */
  int32_t secs; /* local time of day, -167 h .. 167 h */
} rdate_t;

typedef struct rule {
  bool has_dst;
  uint16_t std, dst; /* type indices */
  rdate_t start, end;
} rule_t;

struct zql_tz {
  char *name;
  int64_t *times;    /* transition instants, UTC seconds, strictly ascending */
  uint16_t *tidx;    /* the type from each transition on */
  size_t ntimes;
  ttype_t *types;
  size_t ntypes;
  char *chars;       /* abbreviations */
  size_t nchars;
  uint16_t type0;    /* the type before the first transition */
  bool has_rule;     /* rule governs t >= times[ntimes - 1] */
  bool rule_always;  /* ... and t < times[0] too (no transitions in the file) */
  rule_t rule;
  bool is_static;    /* the built-in UTC */
  struct zql_tz *next; /* the cache */
};

static ttype_t utc_types[1] = {{0, false, 0}};
static char utc_chars[] = "UTC";
static char utc_name[] = "UTC";
static zql_tz_t utc_zone = {.name = utc_name,
                            .types = utc_types,
                            .ntypes = 1,
                            .chars = utc_chars,
                            .nchars = sizeof utc_chars,
                            .is_static = true};

const zql_tz_t *zql_tz_utc(void)
{
  return &utc_zone;
}

const char *zql_tz_name(const zql_tz_t *z)
{
  return z->name;
}

void zql_tz_free(zql_tz_t *z)
{
  if (!z || z->is_static)
    return;
  zql_free(z->name);
  zql_free(z->times);
  zql_free(z->tidx);
  zql_free(z->types);
  zql_free(z->chars);
  zql_free(z);
}

static bool same_type(const zql_tz_t *z, uint16_t a, uint16_t b)
{
  const ttype_t *x = &z->types[a], *y = &z->types[b];
  return a == b || (x->utoff == y->utoff && x->isdst == y->isdst &&
                    strcmp(z->chars + x->abbr, z->chars + y->abbr) == 0);
}

/* }==== */

/* {==== POSIX TZ rules =================================================================== */

/* The day number of rule date r in year y. */
static int64_t rdate_day(const rdate_t *r, int64_t y)
{
  int64_t jan1 = zql_days_from_civil(y, 1, 1);
  switch (r->kind) {
  case 'J':
    return jan1 + r->n - 1 + (zql_is_leap_year(y) && r->n >= 60);
  case 'N':
    return jan1 + r->n;
  default: {
    int64_t first = zql_days_from_civil(y, r->n, 1);
    int wd_first = zql_weekday_from_days(first) % 7; /* 0 = Sunday */
    int64_t d = first + (r->wday - wd_first + 7) % 7 + (int64_t)(r->week - 1) * 7;
    if (d >= first + zql_days_in_month(y, r->n))
      d -= 7; /* week 5 = the last such weekday */
    return d;
  }
  }
}

typedef struct revent {
  int64_t t;    /* UTC seconds */
  int64_t year; /* the rule year it belongs to */
  bool to_dst;
} revent_t;

/* The two events of year y: DST starts (at local standard time) and ends (at local DST). */
static void rule_year(const zql_tz_t *z, int64_t y, revent_t ev[2])
{
  const rule_t *r = &z->rule;
  ev[0].t = rdate_day(&r->start, y) * SECS_PER_DAY + r->start.secs - z->types[r->std].utoff;
  ev[0].to_dst = true;
  ev[1].t = rdate_day(&r->end, y) * SECS_PER_DAY + r->end.secs - z->types[r->dst].utoff;
  ev[1].to_dst = false;
  ev[0].year = ev[1].year = y;
}

/* Events of years y0..y1 (at most 8 years) sorted by time; at equal times the end of DST
 * comes first, so a rule such as "EST5EDT,0/0,J365/25" (DST all year) stays in DST. */
static size_t rule_events(const zql_tz_t *z, int64_t y0, int64_t y1, revent_t *ev)
{
  size_t n = 0;
  for (int64_t y = y0; y <= y1; y++) {
    rule_year(z, y, ev + n);
    n += 2;
  }
  for (size_t i = 1; i < n; i++) { /* insertion sort: tiny and stable */
    revent_t e = ev[i];
    size_t j = i;
    while (j > 0 && (ev[j - 1].t > e.t || (ev[j - 1].t == e.t && ev[j - 1].to_dst && !e.to_dst))) {
      ev[j] = ev[j - 1];
      j--;
    }
    ev[j] = e;
  }
  return n;
}

static int64_t clamp_year(int64_t y)
{
  return y < -MAX_RULE_YEAR ? -MAX_RULE_YEAR : y > MAX_RULE_YEAR ? MAX_RULE_YEAR : y;
}

/* The year of UTC second t read in standard time (approximately the rule's year). */
static int64_t rule_year_of(const zql_tz_t *z, int64_t t)
{
  int64_t y;
  int m, d;
  zql_civil_from_days(zql_floor_div(t + z->types[z->rule.std].utoff, SECS_PER_DAY), &y, &m, &d);
  return y;
}

/* The type the rule gives at UTC second t. */
static uint16_t rule_type(const zql_tz_t *z, int64_t t)
{
  const rule_t *r = &z->rule;
  if (!r->has_dst)
    return r->std;
  int64_t y = clamp_year(rule_year_of(z, t));
  revent_t ev[8];
  size_t n = rule_events(z, y - 2, y + 1, ev);
  bool dst = false;
  for (size_t i = 0; i < n && ev[i].t <= t; i++)
    dst = ev[i].to_dst;
  return dst ? r->dst : r->std;
}

/* The first instant > t at which the rule's state changes (searching a few years on: the
 * rule is periodic, so a rule that never changes within them never does). Events of the
 * last year generated only complete the ones of the year before (DST all year ends one
 * year at the instant it starts the next): they are never candidates themselves. */
static bool rule_next(const zql_tz_t *z, int64_t t, int64_t *when)
{
  const rule_t *r = &z->rule;
  if (!r->has_dst)
    return false;
  int64_t y = clamp_year(rule_year_of(z, t));
  revent_t ev[16];
  size_t n = rule_events(z, y - 2, y + 5, ev);
  bool dst = rule_type(z, t) == r->dst;
  for (size_t i = 0; i < n; i++) {
    if (ev[i].t <= t || ev[i].year > y + 4)
      continue;
    /* the state right after ev[i] is decided by the last event at that same instant */
    size_t j = i;
    while (j + 1 < n && ev[j + 1].t == ev[i].t)
      j++;
    if (ev[j].to_dst != dst) {
      *when = ev[i].t;
      return true;
    }
    i = j;
  }
  return false;
}

/* A cursor over a TZ rule string. */
typedef struct pcur {
  const char *s, *end;
} pcur_t;

static bool pc_digit(const pcur_t *c)
{
  return c->s < c->end && *c->s >= '0' && *c->s <= '9';
}

/* An unsigned decimal number of at most `maxdig` digits. */
static bool pc_num(pcur_t *c, int maxdig, int *v)
{
  int n = 0;
  *v = 0;
  while (pc_digit(c) && n < maxdig) {
    *v = *v * 10 + (*c->s++ - '0');
    n++;
  }
  return n > 0 && !pc_digit(c);
}

/* [+-]hh[:mm[:ss]] with hours 0..maxh -> seconds (sign applied). */
static bool pc_time(pcur_t *c, int maxh, int32_t *secs)
{
  int sign = 1, h, m = 0, s = 0;
  if (c->s < c->end && (*c->s == '+' || *c->s == '-'))
    sign = *c->s++ == '-' ? -1 : 1;
  if (!pc_num(c, 3, &h) || h > maxh)
    return false;
  if (c->s < c->end && *c->s == ':') {
    c->s++;
    if (!pc_num(c, 2, &m) || m > 59)
      return false;
    if (c->s < c->end && *c->s == ':') {
      c->s++;
      if (!pc_num(c, 2, &s) || s > 59)
        return false;
    }
  }
  *secs = sign * (h * 3600 + m * 60 + s);
  return true;
}

/* An abbreviation: 3+ letters, or <...> of letters, digits, '+' and '-'. */
static bool pc_name(pcur_t *c, char *out)
{
  size_t n = 0;
  if (c->s < c->end && *c->s == '<') {
    c->s++;
    while (c->s < c->end && *c->s != '>') {
      char ch = *c->s++;
      bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                (ch >= '0' && ch <= '9') || ch == '+' || ch == '-';
      if (!ok || n + 1 >= MAX_ABBR)
        return false;
      out[n++] = ch;
    }
    if (c->s == c->end)
      return false;
    c->s++;
  } else {
    while (c->s < c->end && ((*c->s >= 'A' && *c->s <= 'Z') || (*c->s >= 'a' && *c->s <= 'z'))) {
      if (n + 1 >= MAX_ABBR)
        return false;
      out[n++] = *c->s++;
    }
  }
  out[n] = '\0';
  return n >= 3;
}

static bool pc_date(pcur_t *c, rdate_t *r)
{
  int v;
  r->secs = 2 * 3600; /* default time 02:00:00 */
  r->week = r->wday = 0;
  if (c->s < c->end && *c->s == 'J') {
    c->s++;
    if (!pc_num(c, 3, &v) || v < 1 || v > 365)
      return false;
    r->kind = 'J';
    r->n = v;
  } else if (c->s < c->end && *c->s == 'M') {
    int w, d;
    c->s++;
    if (!pc_num(c, 2, &v) || v < 1 || v > 12 || c->s == c->end || *c->s++ != '.' ||
        !pc_num(c, 1, &w) || w < 1 || w > 5 || c->s == c->end || *c->s++ != '.' ||
        !pc_num(c, 1, &d) || d > 6)
      return false;
    r->kind = 'M';
    r->n = v;
    r->week = w;
    r->wday = d;
  } else {
    if (!pc_num(c, 3, &v) || v > 365)
      return false;
    r->kind = 'N';
    r->n = v;
  }
  if (c->s < c->end && *c->s == '/') {
    c->s++;
    if (!pc_time(c, 167, &r->secs))
      return false;
  }
  return true;
}

/* Add an abbreviation to z->chars (growing it); its offset in *off. */
static bool add_chars(zql_tz_t *z, const char *s, uint32_t *off)
{
  size_t n = strlen(s) + 1;
  for (size_t i = 0; i + n <= z->nchars; i++) /* reuse an equal one */
    if (memcmp(z->chars + i, s, n) == 0) {
      *off = (uint32_t)i;
      return true;
    }
  char *c = zql_realloc(z->chars, z->nchars + n);
  if (!c)
    return false;
  memcpy(c + z->nchars, s, n);
  z->chars = c;
  *off = (uint32_t)z->nchars;
  z->nchars += n;
  return true;
}

static bool add_type(zql_tz_t *z, int32_t utoff, bool isdst, const char *abbr, uint16_t *idx)
{
  uint32_t off;
  if (z->ntypes >= UINT16_MAX || !add_chars(z, abbr, &off))
    return false;
  ttype_t *t = zql_reallocarray(z->types, z->ntypes + 1, sizeof *t);
  if (!t)
    return false;
  z->types = t;
  t[z->ntypes] = (ttype_t){utoff, isdst, off};
  *idx = (uint16_t)z->ntypes++;
  return true;
}

/* Parse rule text s[0..n) into z->rule (adding its types). Returns 0, ZQL_E_CORRUPT
 * (malformed) or ZQL_E_NOMEM. */
static int parse_rule(zql_tz_t *z, const char *s, size_t n)
{
  pcur_t c = {s, s + n};
  char stdname[MAX_ABBR], dstname[MAX_ABBR];
  int32_t stdoff, dstoff;
  rule_t *r = &z->rule;
  if (!pc_name(&c, stdname) || !pc_time(&c, 24, &stdoff))
    return ZQL_E_CORRUPT;
  stdoff = -stdoff; /* POSIX offsets are west positive */
  if (!add_type(z, stdoff, false, stdname, &r->std))
    return ZQL_E_NOMEM;
  r->has_dst = false;
  if (c.s == c.end)
    return 0;
  if (!pc_name(&c, dstname))
    return ZQL_E_CORRUPT;
  dstoff = stdoff + 3600;
  if (c.s < c.end && *c.s != ',') {
    if (!pc_time(&c, 24, &dstoff))
      return ZQL_E_CORRUPT;
    dstoff = -dstoff;
  }
  if (c.s == c.end) { /* no rule: the US rule, as tzcode's default */
    r->start = (rdate_t){'M', 3, 2, 0, 7200};
    r->end = (rdate_t){'M', 11, 1, 0, 7200};
  } else if (*c.s++ != ',' || !pc_date(&c, &r->start) || c.s == c.end || *c.s++ != ',' ||
             !pc_date(&c, &r->end) || c.s != c.end) {
    return ZQL_E_CORRUPT;
  }
  if (!add_type(z, dstoff, true, dstname, &r->dst))
    return ZQL_E_NOMEM;
  r->has_dst = true;
  return 0;
}

/* }==== */

/* {==== lookups ========================================================================== */

/* The type in effect at UTC second t, and a span [*from, *to) around t over which it
 * stays in effect (INT64_MIN / INT64_MAX: unbounded). The span may be shorter than the
 * real one (a transition that changes nothing ends it); where the rule governs it is
 * just [t, t + 1). */
static uint16_t type_span(const zql_tz_t *z, int64_t t, int64_t *from, int64_t *to)
{
  size_t n = z->ntimes;
  *from = t;
  *to = t + 1;
  if (n == 0 || t < z->times[0]) {
    if (z->rule_always)
      return rule_type(z, t);
    *from = INT64_MIN;
    *to = n == 0 ? INT64_MAX : z->times[0];
    return z->type0;
  }
  if (t >= z->times[n - 1]) {
    if (z->has_rule)
      return rule_type(z, t);
    *from = z->times[n - 1];
    *to = INT64_MAX;
    return z->tidx[n - 1];
  }
  size_t lo = 0, hi = n - 1; /* times[lo] <= t < times[hi] */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (z->times[mid] <= t)
      lo = mid;
    else
      hi = mid;
  }
  *from = z->times[lo];
  *to = z->times[hi];
  return z->tidx[lo];
}

/* The type in effect at UTC second t. */
static uint16_t type_at(const zql_tz_t *z, int64_t t)
{
  int64_t from, to;
  return type_span(z, t, &from, &to);
}

/* The first instant > t at which the type changes to one that differs in offset, DST or
 * abbreviation. */
static bool next_change(const zql_tz_t *z, int64_t t, int64_t *when)
{
  size_t n = z->ntimes;
  if (z->rule_always && (n == 0 || t < z->times[0]))
    return rule_next(z, t, when);
  uint16_t cur = type_at(z, t);
  if (n > 0 && t < z->times[n - 1]) {
    size_t lo = 0, hi = n; /* first index with times[i] > t */
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      if (z->times[mid] <= t)
        lo = mid + 1;
      else
        hi = mid;
    }
    for (size_t i = lo; i < n; i++) {
      if (!same_type(z, cur, z->tidx[i])) {
        *when = z->times[i];
        return true;
      }
    }
    t = z->times[n - 1];
  }
  if (!z->has_rule)
    return false;
  /* from the end of the table on, the rule (its state there is the last table type) */
  return rule_next(z, t, when);
}

int32_t zql_tz_offset_at(const zql_tz_t *z, int64_t utc_ms)
{
  return z->types[type_at(z, zql_floor_div(utc_ms, 1000))].utoff;
}

bool zql_tz_next_transition(const zql_tz_t *z, int64_t utc_ms, int64_t *next_ms)
{
  int64_t when;
  if (!next_change(z, zql_floor_div(utc_ms, 1000), &when) || when > INT64_MAX / 1000)
    return false;
  *next_ms = when * 1000;
  return true;
}

void zql_tz_to_civil(const zql_tz_t *z, int64_t utc_ms, zql_civil_t *out)
{
  int64_t secs = zql_floor_div(utc_ms, 1000);
  const ttype_t *ty = &z->types[type_at(z, secs)];
  int64_t local = secs + ty->utoff;
  int64_t days = zql_floor_div(local, SECS_PER_DAY);
  int64_t sod = local - days * SECS_PER_DAY;
  int64_t y;
  zql_civil_from_days(days, &y, &out->month, &out->day);
  out->year = (int32_t)y;
  out->hour = (int)(sod / 3600);
  out->minute = (int)(sod / 60 % 60);
  out->second = (int)(sod % 60);
  out->ms = (int)zql_floor_mod(utc_ms, 1000);
  out->wday = zql_weekday_from_days(days);
  out->yday = (int)(days - zql_days_from_civil(y, 1, 1)) + 1;
  out->offset = ty->utoff;
  out->isdst = ty->isdst;
  out->abbr = z->chars + ty->abbr;
}

/* UTC seconds + ms -> *out, if representable. */
static bool finish(int64_t secs, int sub, int64_t *out)
{
  if (secs > INT64_MAX / 1000 - 1 || secs < INT64_MIN / 1000 + 1)
    return false;
  *out = secs * 1000 + sub;
  return true;
}

/* Local wall-clock seconds ls (plus sub-second ms) -> UTC ms; see the file comment. */
static bool from_local(const zql_tz_t *z, int64_t ls, int sub, zql_tz_gap_t gap, int64_t *out)
{
  /* the offsets in effect over [ls - WINDOW, ls + WINDOW], as segments [from, to) */
  enum { MAXSEG = 16 };
  int64_t from[MAXSEG];
  int32_t off[MAXSEG];
  size_t nseg = 1;
  int64_t t = ls - WINDOW, span_from, span_to;
  from[0] = t;
  off[0] = z->types[type_span(z, t, &span_from, &span_to)].utoff;
  if (span_to > ls + WINDOW) /* one offset over the whole window (the common case) */
    return finish(ls - off[0], sub, out);
  int64_t when;
  while (nseg < MAXSEG && next_change(z, t, &when) && when <= ls + WINDOW) {
    from[nseg] = when;
    off[nseg] = z->types[type_at(z, when)].utoff;
    nseg++;
    t = when;
  }
  int64_t secs;
  bool found = false;
  for (size_t i = 0; i < nseg && !found; i++) {
    int64_t u = ls - off[i];
    if (u >= from[i] && (i + 1 == nseg || u < from[i + 1])) {
      secs = u; /* segments are in time order: the first hit is the earliest */
      found = true;
    }
  }
  if (!found) {
    /* a gap: the last segment starting (in local time) at or before ls ends before ls */
    size_t i = nseg;
    while (i > 1 && from[i - 1] + off[i - 1] > ls)
      i--;
    if (i >= nseg || gap == ZQL_TZ_GAP_FAIL)
      return false;
    /* segment i-1 ends (local) before ls, segment i starts (local) after it */
    if (gap == ZQL_TZ_GAP_NEXT) {
      secs = from[i];
      sub = 0;
    } else {
      secs = ls - off[i - 1];
    }
  }
  return finish(secs, sub, out);
}

/* Local wall-clock ms -> UTC ms. */
static bool from_local_ms(const zql_tz_t *z, int64_t lms, zql_tz_gap_t gap, int64_t *out)
{
  int64_t ls = zql_floor_div(lms, 1000);
  return from_local(z, ls, (int)(lms - ls * 1000), gap, out);
}

bool zql_tz_from_civil(const zql_tz_t *z, const zql_civil_t *c, zql_tz_gap_t gap,
                       int64_t *utc_ms)
{
  if (c->month < 1 || c->month > 12)
    return false;
  int64_t days = zql_days_from_civil(c->year, c->month, 1) + c->day - 1, lms;
  /* int-range fields: none of these products or sums can overflow int64 except the last */
  int64_t rest = (int64_t)c->hour * ZQL_MS_PER_HOUR +
                 (int64_t)c->minute * ZQL_MS_PER_MINUTE + (int64_t)c->second * 1000 + c->ms;
  if (__builtin_mul_overflow(days, ZQL_MS_PER_DAY, &lms) ||
      __builtin_add_overflow(lms, rest, &lms))
    return false;
  /* keep ls +- WINDOW and the int64 ms result representable */
  if (lms > INT64_MAX - 2 * WINDOW * INT64_C(1000) || lms < INT64_MIN + 2 * WINDOW * INT64_C(1000))
    return false;
  return from_local_ms(z, lms, gap, utc_ms);
}

/* }==== */

/* {==== reading TZif ===================================================================== */

static uint32_t be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
  return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct tzhead {
  uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} tzhead_t;

static bool read_head(const uint8_t *p, size_t n, tzhead_t *h, int *version)
{
  if (n < 44 || memcmp(p, "TZif", 4) != 0)
    return false;
  *version = p[4] == 0 ? 1 : p[4] >= '2' ? p[4] - '0' : -1;
  h->isutcnt = be32(p + 20);
  h->isstdcnt = be32(p + 24);
  h->leapcnt = be32(p + 28);
  h->timecnt = be32(p + 32);
  h->typecnt = be32(p + 36);
  h->charcnt = be32(p + 40);
  return *version > 0;
}

/* Bytes of a data block after its header (tsize: 4 or 8 bytes per time). */
static uint64_t block_size(const tzhead_t *h, unsigned tsize)
{
  return (uint64_t)h->timecnt * tsize + h->timecnt + (uint64_t)h->typecnt * 6 + h->charcnt +
         (uint64_t)h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
}

static int corrupt(zql_strbuf_t *err, const char *name, const char *what)
{
  if (err)
    zql_strbuf_addf(err, "time zone '%s': invalid TZif data (%s)", name, what);
  return ZQL_E_CORRUPT;
}

static int nomem(zql_tz_t *z)
{
  zql_tz_free(z);
  return ZQL_E_NOMEM;
}

/* Append the rule's transitions after the table's last one, up to EXTEND_TO_YEAR, and
 * make the last table entry agree with the rule (glibc and RFC 8536 let the rule govern
 * from the last transition on). */
static int extend_with_rule(zql_tz_t *z)
{
  int64_t last;
  size_t n = z->ntimes;
  if (n == 0) {
    last = zql_days_from_civil(1900, 1, 1) * SECS_PER_DAY;
  } else {
    last = z->times[n - 1];
    uint16_t rt = rule_type(z, last);
    if (!same_type(z, z->tidx[n - 1], rt))
      z->tidx[n - 1] = rt;
  }
  if (!z->rule.has_dst)
    return 0;
  int64_t t = last, when;
  size_t cap = n + 2 * (size_t)(EXTEND_TO_YEAR - 1900 + 4);
  int64_t *times = zql_reallocarray(z->times, cap, sizeof *times);
  if (!times)
    return ZQL_E_NOMEM;
  z->times = times;
  uint16_t *tidx = zql_reallocarray(z->tidx, cap, sizeof *tidx);
  if (!tidx)
    return ZQL_E_NOMEM;
  z->tidx = tidx;
  int64_t limit = zql_days_from_civil(EXTEND_TO_YEAR + 1, 1, 1) * SECS_PER_DAY;
  while (z->ntimes < cap && rule_next(z, t, &when) && when < limit) {
    z->times[z->ntimes] = when;
    z->tidx[z->ntimes] = rule_type(z, when);
    z->ntimes++;
    t = when;
  }
  return 0;
}

int zql_tz_from_tzif(const char *name, const void *data, size_t n, zql_tz_t **out,
                     zql_strbuf_t *err)
{
  const uint8_t *p = data;
  tzhead_t h;
  int version;
  *out = NULL;
  if (!read_head(p, n, &h, &version))
    return corrupt(err, name, "bad header");
  unsigned tsize = 4;
  size_t pos = 44;
  if (version >= 2) { /* skip the 32-bit block to the 64-bit one */
    uint64_t skip = block_size(&h, 4);
    if (skip > n - 44 || !read_head(p + 44 + skip, n - 44 - (size_t)skip, &h, &version))
      return corrupt(err, name, "bad version 2 header");
    pos = 44 + (size_t)skip + 44;
    tsize = 8;
  }
  if (h.leapcnt > 0) {
    if (err)
      zql_strbuf_addf(err, "time zone '%s' counts leap seconds, which zql does not support",
                      name);
    return ZQL_E_UNKNOWN_TIMEZONE;
  }
  if (h.typecnt == 0 || h.typecnt > 256 || h.charcnt == 0 ||
      (h.isstdcnt != 0 && h.isstdcnt != h.typecnt) ||
      (h.isutcnt != 0 && h.isutcnt != h.typecnt))
    return corrupt(err, name, "bad counts");
  uint64_t size = block_size(&h, tsize);
  if (size > n - pos)
    return corrupt(err, name, "truncated");

  zql_tz_t *z = zql_calloc(1, sizeof *z);
  if (!z || !(z->name = zql_strndup(name, strlen(name))))
    return nomem(z);
  const uint8_t *tp = p + pos, *ip = tp + (size_t)h.timecnt * tsize;
  const uint8_t *yp = ip + h.timecnt, *cp = yp + (size_t)h.typecnt * 6;
  if (h.timecnt > 0) {
    z->times = zql_calloc(h.timecnt, sizeof *z->times);
    z->tidx = zql_calloc(h.timecnt, sizeof *z->tidx);
    if (!z->times || !z->tidx)
      return nomem(z);
  }
  /* Transitions outside the int64 ms range (zic's "big bang" at -2^59) are dropped: the
   * type of the last one before the range becomes the initial type, and one after the
   * range means the footer never applies within it. */
  const int64_t lowest = INT64_MIN / 1000 + 2 * WINDOW, highest = INT64_MAX / 1000 - 2 * WINDOW;
  bool beyond = false;
  int64_t prev = 0;
  int first = -1; /* type index of the last transition before the range */
  for (uint32_t i = 0; i < h.timecnt; i++) {
    int64_t tm = tsize == 8 ? be64(tp + 8 * (size_t)i) : (int32_t)be32(tp + 4 * (size_t)i);
    if ((i > 0 && tm <= prev) || ip[i] >= h.typecnt) {
      zql_tz_free(z);
      return corrupt(err, name, "bad transition");
    }
    prev = tm;
    if (tm < lowest) {
      first = ip[i];
    } else if (tm > highest) {
      beyond = true;
    } else {
      z->times[z->ntimes] = tm;
      z->tidx[z->ntimes++] = ip[i];
    }
  }
  z->chars = zql_malloc(h.charcnt);
  z->types = zql_calloc(h.typecnt, sizeof *z->types);
  if (!z->chars || !z->types)
    return nomem(z);
  memcpy(z->chars, cp, h.charcnt);
  z->nchars = h.charcnt;
  z->ntypes = h.typecnt;
  for (uint32_t i = 0; i < h.typecnt; i++) {
    const uint8_t *t = yp + 6 * (size_t)i;
    int32_t utoff = (int32_t)be32(t);
    if (utoff < MIN_UTOFF || utoff > MAX_UTOFF || t[4] > 1 || t[5] >= h.charcnt ||
        !memchr(z->chars + t[5], '\0', h.charcnt - t[5])) {
      zql_tz_free(z);
      return corrupt(err, name, "bad local time type");
    }
    z->types[i] = (ttype_t){utoff, t[4] == 1, t[5]};
  }
  z->type0 = first >= 0 ? (uint16_t)first : 0; /* RFC 8536 3.2: else type 0 */

  if (version >= 2) {
    const uint8_t *f = p + pos + size, *end = p + n;
    const uint8_t *nl = f < end && *f == '\n' ? memchr(f + 1, '\n', (size_t)(end - f - 1)) : NULL;
    if (!nl) {
      zql_tz_free(z);
      return corrupt(err, name, "no footer");
    }
    size_t rlen = (size_t)(nl - f - 1);
    if (rlen > 0) {
      int rc = parse_rule(z, (const char *)f + 1, rlen);
      if (rc == ZQL_E_NOMEM)
        return nomem(z);
      if (rc < 0) {
        zql_tz_free(z);
        return corrupt(err, name, "bad TZ string in the footer");
      }
      z->has_rule = !beyond;
      z->rule_always = z->has_rule && z->ntimes == 0;
    }
  }
  if (z->has_rule) {
    for (size_t i = z->ntypes - (z->rule.has_dst ? 2 : 1); i < z->ntypes; i++)
      if (z->types[i].utoff < MIN_UTOFF || z->types[i].utoff > MAX_UTOFF) {
        zql_tz_free(z);
        return corrupt(err, name, "offset of the TZ string out of range");
      }
    if (extend_with_rule(z) < 0)
      return nomem(z);
  }
  *out = z;
  return 0;
}

int zql_tz_from_posix(const char *rule, zql_tz_t **out, zql_strbuf_t *err)
{
  *out = NULL;
  zql_tz_t *z = zql_calloc(1, sizeof *z);
  if (!z || !(z->name = zql_strndup(rule, strlen(rule))))
    return nomem(z);
  int rc = parse_rule(z, rule, strlen(rule));
  if (rc == ZQL_E_NOMEM)
    return nomem(z);
  if (rc == 0) {
    for (size_t i = 0; i < z->ntypes; i++)
      if (z->types[i].utoff < MIN_UTOFF || z->types[i].utoff > MAX_UTOFF)
        rc = ZQL_E_CORRUPT;
  }
  if (rc < 0) {
    zql_tz_free(z);
    if (err)
      zql_strbuf_addf(err, "invalid POSIX TZ rule '%s'", rule);
    return ZQL_E_CORRUPT;
  }
  z->type0 = z->rule.std;
  z->has_rule = z->rule_always = true;
  if (extend_with_rule(z) < 0)
    return nomem(z);
  *out = z;
  return 0;
}

/* }==== */

/* {==== the zone cache =================================================================== */

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static zql_tz_t *cache;

/* Read the whole file at path (at most MAX_TZIF_BYTES) into a new heap buffer. */
static int read_file(const char *path, uint8_t **data, size_t *len, int *errnum)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    *errnum = errno;
    return ZQL_E_IO;
  }
  struct stat st;
  int rc = 0;
  uint8_t *buf = NULL;
  size_t got = 0;
  if (fstat(fd, &st) != 0) {
    *errnum = errno;
    rc = ZQL_E_IO;
  } else if (!S_ISREG(st.st_mode) || st.st_size > (off_t)MAX_TZIF_BYTES) {
    *errnum = 0;
    rc = ZQL_E_CORRUPT;
  } else if (!(buf = zql_malloc((size_t)st.st_size + 1))) {
    rc = ZQL_E_NOMEM;
  } else {
    while (got < (size_t)st.st_size) {
      ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0) {
        *errnum = errno;
        rc = ZQL_E_IO;
        break;
      }
      if (r == 0)
        break;
      got += (size_t)r;
    }
  }
  close(fd);
  if (rc < 0) {
    zql_free(buf);
    return rc;
  }
  *data = buf;
  *len = got;
  return 0;
}

static int load_file(const char *name, zql_tz_t **out, zql_strbuf_t *err)
{
  if (!zql_tzdb_valid(name)) {
    if (err)
      zql_strbuf_addf(err, "unknown time zone '%s'", name);
    return ZQL_E_UNKNOWN_TIMEZONE;
  }
  const char *dir = zql_tzdb_dir();
  size_t plen = strlen(dir) + 1 + strlen(name) + 1;
  char *path = zql_malloc(plen);
  if (!path)
    return ZQL_E_NOMEM;
  snprintf(path, plen, "%s/%s", dir, name);
  uint8_t *data = NULL;
  size_t len = 0;
  int errnum = 0;
  int rc = read_file(path, &data, &len, &errnum);
  if (rc == ZQL_E_IO && err)
    zql_strbuf_addf(err, "time zone '%s': cannot read '%s': %s", name, path, strerror(errnum));
  else if (rc == ZQL_E_CORRUPT && err)
    zql_strbuf_addf(err, "time zone '%s': '%s' is not a TZif file", name, path);
  zql_free(path);
  if (rc < 0)
    return rc;
  rc = zql_tz_from_tzif(name, data, len, out, err);
  zql_free(data);
  return rc;
}

int zql_tz_load(const char *name, const zql_tz_t **out, zql_strbuf_t *err)
{
  if (name && strcmp(name, "UTC") == 0) {
    *out = &utc_zone;
    return 0;
  }
  if (!name) {
    if (err)
      zql_strbuf_adds(err, "unknown time zone ''");
    return ZQL_E_UNKNOWN_TIMEZONE;
  }
  pthread_mutex_lock(&cache_lock);
  int rc = 0;
  zql_tz_t *z;
  for (z = cache; z; z = z->next)
    if (strcmp(z->name, name) == 0)
      break;
  if (!z && (rc = load_file(name, &z, err)) == 0) {
    z->next = cache;
    cache = z;
  }
  pthread_mutex_unlock(&cache_lock);
  if (rc == 0)
    *out = z;
  else if (rc == ZQL_E_NOMEM && err)
    zql_strbuf_adds(err, "out of memory");
  return rc;
}

void zql_tz_cache_clear(void)
{
  pthread_mutex_lock(&cache_lock);
  while (cache) {
    zql_tz_t *z = cache;
    cache = z->next;
    zql_tz_free(z);
  }
  pthread_mutex_unlock(&cache_lock);
}

/* }==== */

/* {==== buckets ========================================================================== */

static const char *const unit_names[] = {"ms",  "second", "minute",  "hour", "day",
                                         "week", "month", "quarter", "year"};
static const char *const weekday_names[] = {"monday", "tuesday",  "wednesday", "thursday",
                                            "friday", "saturday", "sunday"};

bool zql_tunit_parse(const char *s, size_t n, zql_tunit_t *out)
{
  for (size_t i = 0; i < ZQL_ARRAY_LEN(unit_names); i++)
    if (strlen(unit_names[i]) == n && memcmp(unit_names[i], s, n) == 0) {
      *out = (zql_tunit_t)i;
      return true;
    }
  return false;
}

const char *zql_tunit_name(zql_tunit_t u)
{
  return (unsigned)u < ZQL_ARRAY_LEN(unit_names) ? unit_names[u] : "?";
}

int zql_weekday_parse(const char *s, size_t n)
{
  for (size_t i = 0; i < ZQL_ARRAY_LEN(weekday_names); i++)
    if (strlen(weekday_names[i]) == n && memcmp(weekday_names[i], s, n) == 0)
      return (int)i + 1;
  return 0;
}

static const int64_t subday_ms[] = {1, 1000, 60000, 3600000};

/* The local day number of instant t in zone z. */
static int64_t local_day(const zql_tz_t *z, int64_t t)
{
  int64_t secs = zql_floor_div(t, 1000);
  return zql_floor_div(secs + z->types[type_at(z, secs)].utoff, SECS_PER_DAY);
}

int zql_bucket_init(zql_bucket_t *b, zql_tunit_t unit, int64_t every, const zql_tz_t *tz,
                    int week_start, const int64_t *origin_ms)
{
  if (week_start == 0)
    week_start = 1;
  if (every < 1 || week_start < 1 || week_start > 7 || (unsigned)unit > ZQL_TU_YEAR)
    return ZQL_E_ARG_RANGE;
  b->unit = unit;
  b->every = every;
  b->tz = tz ? tz : &utc_zone;
  b->week_start = week_start;
  b->has_origin = origin_ms != NULL;
  b->origin_ms = origin_ms ? *origin_ms : 0;
  b->width_ms = b->step = b->anchor = 0;
  switch (unit) {
  case ZQL_TU_MS:
  case ZQL_TU_SECOND:
  case ZQL_TU_MINUTE:
  case ZQL_TU_HOUR:
    if (__builtin_mul_overflow(every, subday_ms[unit], &b->width_ms))
      return ZQL_E_ARG_RANGE;
    if (origin_ms)
      b->anchor = *origin_ms;
    else if (!from_local_ms(b->tz, 0, ZQL_TZ_GAP_NEXT, &b->anchor))
      return ZQL_E_ARG_RANGE;
    return 0;
  case ZQL_TU_DAY:
  case ZQL_TU_WEEK: {
    int64_t d0 = origin_ms ? local_day(b->tz, *origin_ms) : 0;
    int64_t per = unit == ZQL_TU_WEEK ? 7 : 1;
    if (every > INT64_MAX / ZQL_MS_PER_DAY / per)
      return ZQL_E_ARG_RANGE;
    b->step = every * per;
    b->anchor = unit == ZQL_TU_WEEK ? d0 - (zql_weekday_from_days(d0) - week_start + 7) % 7 : d0;
    return 0;
  }
  default: {
    int64_t per = unit == ZQL_TU_MONTH ? 1 : unit == ZQL_TU_QUARTER ? 3 : 12;
    if (every > INT64_MAX / (31 * ZQL_MS_PER_DAY) / per)
      return ZQL_E_ARG_RANGE;
    b->step = every * per;
    int64_t y = 1970;
    if (origin_ms) {
      int m, d;
      zql_civil_from_days(local_day(b->tz, *origin_ms), &y, &m, &d);
    }
    b->anchor = y * 12;
    return 0;
  }
  }
}

/* The first day (day number) of civil period k; false on overflow. */
static bool period_day(const zql_bucket_t *b, int64_t k, int64_t *day)
{
  int64_t off;
  if (__builtin_mul_overflow(k, b->step, &off))
    return false;
  if (b->unit == ZQL_TU_DAY || b->unit == ZQL_TU_WEEK)
    return !__builtin_add_overflow(b->anchor, off, day);
  int64_t mn;
  if (__builtin_add_overflow(b->anchor, off, &mn) || mn > INT64_C(4000000000) * 12 ||
      mn < -INT64_C(4000000000) * 12)
    return false;
  *day = zql_days_from_civil(zql_floor_div(mn, 12), (int)zql_floor_mod(mn, 12) + 1, 1);
  return true;
}

/* S(k): the instant civil period k starts (its first local midnight, or the first
 * instant after a gap holding it). */
static bool period_start(const zql_bucket_t *b, int64_t k, int64_t *t)
{
  int64_t day, lms;
  if (!period_day(b, k, &day) || __builtin_mul_overflow(day, ZQL_MS_PER_DAY, &lms) ||
      lms > INT64_MAX - 2 * WINDOW * INT64_C(1000) || lms < INT64_MIN + 2 * WINDOW * INT64_C(1000))
    return false;
  return from_local_ms(b->tz, lms, ZQL_TZ_GAP_NEXT, t);
}

/* The period index holding local day `day`. */
static int64_t period_of(const zql_bucket_t *b, int64_t day)
{
  if (b->unit == ZQL_TU_DAY || b->unit == ZQL_TU_WEEK)
    return zql_floor_div(day - b->anchor, b->step);
  int64_t y;
  int m, d;
  zql_civil_from_days(day, &y, &m, &d);
  return zql_floor_div(y * 12 + m - 1 - b->anchor, b->step);
}

int zql_bucket_range(const zql_bucket_t *b, int64_t t, int64_t *start, int64_t *end)
{
  if (b->unit <= ZQL_TU_HOUR) {
    int64_t w = b->width_ms;
    int64_t back = zql_floor_mod(zql_floor_mod(t, w) - zql_floor_mod(b->anchor, w), w);
    int64_t s;
    if (__builtin_sub_overflow(t, back, &s) || __builtin_add_overflow(s, w, end))
      return ZQL_E_ARG_RANGE;
    *start = s;
    return 0;
  }
  /* fast path: one local time type in effect from a day before the period's start to a
   * day after its end, so both boundaries are local midnights minus that offset */
  const zql_tz_t *z = b->tz;
  int64_t secs = zql_floor_div(t, 1000), from, to, d0, d1;
  int32_t off = z->types[type_span(z, secs, &from, &to)].utoff;
  int64_t k = period_of(b, zql_floor_div(secs + off, SECS_PER_DAY)), s, e;
  const int64_t lim = INT64_MAX / 1000 / SECS_PER_DAY - 2;
  if (period_day(b, k, &d0) && period_day(b, k + 1, &d1) && d0 > -lim && d1 < lim) {
    int64_t ls0 = d0 * SECS_PER_DAY, ls1 = d1 * SECS_PER_DAY;
    if (from <= ls0 - WINDOW && ls1 + WINDOW < to) {
      *start = (ls0 - off) * 1000;
      *end = (ls1 - off) * 1000;
      return 0;
    }
  }
  if (!period_start(b, k, &s))
    return ZQL_E_ARG_RANGE;
  while (s > t) { /* t shows a date whose (only) midnight comes later: the clocks jumped
                    over it and went back */
    k--;
    if (!period_start(b, k, &s))
      return ZQL_E_ARG_RANGE;
  }
  for (;;) {
    if (!period_start(b, k + 1, &e))
      return ZQL_E_ARG_RANGE;
    if (e > t)
      break;
    k++; /* S(k + 1) <= t: t shows an earlier date after the clocks went back */
    s = e;
  }
  *start = s;
  *end = e;
  return 0;
}

int zql_bucket_start(const zql_bucket_t *b, int64_t t, int64_t *start)
{
  int64_t end;
  return zql_bucket_range(b, t, start, &end);
}

int zql_bucket_end(const zql_bucket_t *b, int64_t t, int64_t *end)
{
  int64_t start;
  return zql_bucket_range(b, t, &start, end);
}

int zql_bucket_setup(zql_bucket_t *b, const char *unit, int64_t every, const char *tz,
                     const char *week_start, const char *origin, zql_strbuf_t *err)
{
  zql_tunit_t u;
  if (!unit || !zql_tunit_parse(unit, strlen(unit), &u)) {
    if (err)
      zql_strbuf_addf(err, "unknown time unit '%s'", unit ? unit : "");
    return ZQL_E_UNKNOWN_UNIT;
  }
  const zql_tz_t *z;
  int rc = zql_tz_load(tz ? tz : "UTC", &z, err);
  if (rc < 0)
    return rc;
  int ws = 1;
  if (week_start && !(ws = zql_weekday_parse(week_start, strlen(week_start)))) {
    if (err)
      zql_strbuf_addf(err, "unknown day '%s'", week_start);
    return ZQL_E_BAD_OPTION_VALUE;
  }
  int64_t o;
  if (origin) {
    const char *why = NULL;
    zql_iso_t iso;
    if (zql_iso8601_scan(origin, strlen(origin), &iso, &why) < 0 ||
        zql_iso8601_resolve(&iso, z, &o, &why) < 0) {
      if (err)
        zql_strbuf_addf(err, "invalid origin '%s': %s", origin, why);
      return ZQL_E_BAD_DATE;
    }
  }
  rc = zql_bucket_init(b, u, every, z, ws, origin ? &o : NULL);
  if (rc < 0 && err)
    zql_strbuf_addf(err, "bucket of every %" PRId64 " %s is out of range", every, unit);
  return rc;
}

/* }==== */

/* {==== ISO-8601 ========================================================================= */

typedef struct scan {
  const char *s, *end;
} scan_t;

/* Exactly n digits. */
static bool sc_digits(scan_t *c, int n, int *v)
{
  *v = 0;
  if (c->end - c->s < n)
    return false;
  for (int i = 0; i < n; i++) {
    char ch = c->s[i];
    if (ch < '0' || ch > '9')
      return false;
    *v = *v * 10 + (ch - '0');
  }
  c->s += n;
  return true;
}

static bool sc_is(const scan_t *c, char a, char b)
{
  return c->s < c->end && (*c->s == a || *c->s == b);
}

/* Consume the character ch if it comes next. */
static bool sc_eat(scan_t *c, char ch)
{
  if (c->s < c->end && *c->s == ch) {
    c->s++;
    return true;
  }
  return false;
}

static int iso_fail(const char **why, const char *msg)
{
  if (why)
    *why = msg;
  return ZQL_E_BAD_DATE;
}

int zql_iso8601_scan(const char *s, size_t n, zql_iso_t *out, const char **why)
{
  scan_t c = {s, s + n};
  memset(out, 0, sizeof *out);
  zql_civil_t *l = &out->local;
  int v;
  /* the year: 4 digits, or a sign and 6..9 digits */
  if (c.s < c.end && (*c.s == '+' || *c.s == '-')) {
    bool neg = *c.s++ == '-';
    int nd = 0;
    int64_t y = 0;
    while (c.s < c.end && *c.s >= '0' && *c.s <= '9' && nd < 10) {
      y = y * 10 + (*c.s++ - '0');
      nd++;
    }
    if (nd < 6 || nd > 9)
      return iso_fail(why, "an expanded year needs a sign and 6 to 9 digits");
    if (neg && y == 0)
      return iso_fail(why, "year -000000 is not allowed");
    l->year = (int32_t)(neg ? -y : y);
  } else {
    if (!sc_digits(&c, 4, &v))
      return iso_fail(why, "expected a date YYYY-MM-DD");
    l->year = v;
  }
  if (!sc_eat(&c, '-') || !sc_digits(&c, 2, &l->month) || !sc_eat(&c, '-') ||
      !sc_digits(&c, 2, &l->day))
    return iso_fail(why, "expected a date YYYY-MM-DD");
  if (l->month < 1 || l->month > 12)
    return iso_fail(why, "month out of range");
  if (l->day < 1 || l->day > zql_days_in_month(l->year, l->month))
    return iso_fail(why, "day out of range");
  if (c.s == c.end)
    return 0;
  if (!sc_is(&c, 'T', 't') && *c.s != ' ')
    return iso_fail(why, "expected T or a space after the date");
  c.s++;
  out->has_time = true;
  if (!sc_digits(&c, 2, &l->hour) || !sc_eat(&c, ':') || !sc_digits(&c, 2, &l->minute))
    return iso_fail(why, "expected a time HH:MM");
  if (l->hour > 23)
    return iso_fail(why, "hour out of range");
  if (l->minute > 59)
    return iso_fail(why, "minute out of range");
  if (sc_eat(&c, ':')) {
    if (!sc_digits(&c, 2, &l->second))
      return iso_fail(why, "expected seconds SS");
    if (l->second > 59)
      return iso_fail(why, "second out of range");
    if (sc_is(&c, '.', ',')) {
      c.s++;
      int nd = 0, scale = 100;
      while (c.s < c.end && *c.s >= '0' && *c.s <= '9') {
        if (nd++ < 3) {
          l->ms += (*c.s - '0') * scale;
          scale /= 10;
        }
        c.s++;
      }
      if (nd == 0)
        return iso_fail(why, "expected digits after the decimal point");
    }
  }
  if (c.s == c.end)
    return 0;
  if (sc_is(&c, 'Z', 'z')) {
    c.s++;
    out->has_offset = true;
  } else if (sc_is(&c, '+', '-')) {
    int sign = *c.s++ == '-' ? -1 : 1, oh, om = 0;
    if (!sc_digits(&c, 2, &oh))
      return iso_fail(why, "expected an offset +HH:MM");
    if (sc_eat(&c, ':')) {
      if (!sc_digits(&c, 2, &om))
        return iso_fail(why, "expected an offset +HH:MM");
    } else if (c.s < c.end && !sc_digits(&c, 2, &om)) {
      return iso_fail(why, "expected an offset +HH:MM");
    }
    if (oh > 23 || om > 59)
      return iso_fail(why, "offset out of range");
    out->has_offset = true;
    out->offset = sign * (oh * 3600 + om * 60);
  }
  if (c.s != c.end)
    return iso_fail(why, "unexpected characters after the date");
  return 0;
}

int zql_iso8601_resolve(const zql_iso_t *iso, const zql_tz_t *deflt, int64_t *ms,
                        const char **why)
{
  const zql_civil_t *l = &iso->local;
  if (iso->has_offset) {
    int64_t days = zql_days_from_civil(l->year, l->month, l->day);
    /* |year| < 10^9 keeps this far inside int64 before the final range check */
    int64_t secs = days * SECS_PER_DAY + l->hour * 3600 + l->minute * 60 + l->second - iso->offset;
    int64_t frac = l->ms;
    if (secs < 0 && frac > 0) { /* keep secs * 1000 in range down to INT64_MIN */
      secs++;
      frac -= 1000;
    }
    int64_t r;
    if (__builtin_mul_overflow(secs, INT64_C(1000), &r) || __builtin_add_overflow(r, frac, &r))
      return iso_fail(why, "out of range");
    *ms = r;
    return 0;
  }
  if (!deflt)
    return iso_fail(why, "no offset and no zone");
  if (!zql_tz_from_civil(deflt, l, iso->has_time ? ZQL_TZ_GAP_SHIFT : ZQL_TZ_GAP_NEXT, ms))
    return iso_fail(why, "out of range");
  return 0;
}

int zql_parse_iso8601(const char *s, size_t n, const zql_tz_t *deflt, int64_t *ms)
{
  zql_iso_t iso;
  int rc = zql_iso8601_scan(s, n, &iso, NULL);
  return rc < 0 ? rc : zql_iso8601_resolve(&iso, deflt, ms, NULL);
}

const char *zql_iso8601_error(const char *s, size_t n, const zql_tz_t *deflt)
{
  zql_iso_t iso;
  const char *why = NULL;
  int64_t ms;
  if (zql_iso8601_scan(s, n, &iso, &why) < 0 || zql_iso8601_resolve(&iso, deflt, &ms, &why) < 0)
    return why;
  return NULL;
}

/* }==== */

/* {==== strftime ========================================================================= */

typedef struct out {
  char *buf;
  size_t cap, len;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
  if (o->len < o->cap) {
    size_t room = o->cap - o->len;
    memcpy(o->buf + o->len, s, n < room ? n : room);
  }
  o->len += n;
}

static void putc_(out_t *o, char ch)
{
  put(o, &ch, 1);
}

/* v in decimal with at least `width` digits, padded with `pad` ('0' or ' '); a minus sign
 * goes before zero padding and after space padding. */
static void put_num(out_t *o, int64_t v, int width, char pad)
{
  char tmp[24];
  int n = 0;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0 && pad == '0')
    putc_(o, '-');
  for (int len = n; len < width; len++)
    putc_(o, pad);
  if (v < 0 && pad != '0')
    putc_(o, '-');
  while (n > 0)
    putc_(o, tmp[--n]);
}

static void put_str(out_t *o, const char *s)
{
  put(o, s, strlen(s));
}

static const char *const day_abbr[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const day_full[] = {"Monday", "Tuesday", "Wednesday", "Thursday",
                                       "Friday", "Saturday", "Sunday"};
static const char *const mon_abbr[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const mon_full[] = {"January", "February", "March",     "April",
                                       "May",     "June",     "July",      "August",
                                       "September", "October", "November", "December"};

/* ISO 8601 week-based year and week of the civil date c (the week's Thursday decides). */
static void iso_week(const zql_civil_t *c, int64_t *gyear, int *week)
{
  int64_t days = zql_days_from_civil(c->year, c->month, c->day);
  int64_t thursday = days - (c->wday - 1) + 3;
  int64_t y;
  int m, d;
  zql_civil_from_days(thursday, &y, &m, &d);
  *gyear = y;
  *week = (int)((thursday - zql_days_from_civil(y, 1, 1)) / 7 + 1);
}

static void format(out_t *o, const char *f, size_t n, const zql_civil_t *c, int64_t utc_ms);

/* Expand a fixed pattern (a string literal). */
#define FORMAT_LIT(o, lit, c, t) format(o, lit, sizeof(lit) - 1, c, t)

static void put_offset(out_t *o, int32_t off, bool colon)
{
  putc_(o, off < 0 ? '-' : '+');
  int32_t a = off < 0 ? -off : off;
  put_num(o, a / 3600, 2, '0');
  if (colon)
    putc_(o, ':');
  put_num(o, a / 60 % 60, 2, '0');
}

static void conv(out_t *o, char ch, const zql_civil_t *c, int64_t utc_ms)
{
  int h12 = c->hour % 12 == 0 ? 12 : c->hour % 12;
  switch (ch) {
  case 'Y': put_num(o, c->year, 4, '0'); break;
  case 'C': put_num(o, zql_floor_div(c->year, 100), 2, '0'); break;
  case 'y': put_num(o, zql_floor_mod(c->year, 100), 2, '0'); break;
  case 'm': put_num(o, c->month, 2, '0'); break;
  case 'd': put_num(o, c->day, 2, '0'); break;
  case 'e': put_num(o, c->day, 2, ' '); break;
  case 'j': put_num(o, c->yday, 3, '0'); break;
  case 'H': put_num(o, c->hour, 2, '0'); break;
  case 'k': put_num(o, c->hour, 2, ' '); break;
  case 'I': put_num(o, h12, 2, '0'); break;
  case 'l': put_num(o, h12, 2, ' '); break;
  case 'M': put_num(o, c->minute, 2, '0'); break;
  case 'S': put_num(o, c->second, 2, '0'); break;
  case 'L': put_num(o, c->ms, 3, '0'); break;
  case 'p': put_str(o, c->hour < 12 ? "AM" : "PM"); break;
  case 'P': put_str(o, c->hour < 12 ? "am" : "pm"); break;
  case 'a': put_str(o, day_abbr[c->wday - 1]); break;
  case 'A': put_str(o, day_full[c->wday - 1]); break;
  case 'b':
  case 'h': put_str(o, mon_abbr[c->month - 1]); break;
  case 'B': put_str(o, mon_full[c->month - 1]); break;
  case 'u': put_num(o, c->wday, 1, '0'); break;
  case 'w': put_num(o, c->wday % 7, 1, '0'); break;
  case 'G':
  case 'g':
  case 'V': {
    int64_t gy;
    int wk;
    iso_week(c, &gy, &wk);
    if (ch == 'G')
      put_num(o, gy, 4, '0');
    else if (ch == 'g')
      put_num(o, zql_floor_mod(gy, 100), 2, '0');
    else
      put_num(o, wk, 2, '0');
    break;
  }
  case 'U': /* weeks start on Sunday; days before the first Sunday are week 0 */
    put_num(o, (c->yday - 1 + 7 - c->wday % 7) / 7, 2, '0');
    break;
  case 'W': /* the same with Monday */
    put_num(o, (c->yday - 1 + 7 - (c->wday - 1)) / 7, 2, '0');
    break;
  case 'Z': put_str(o, c->abbr); break;
  case 'z': put_offset(o, c->offset, false); break;
  case 's': put_num(o, zql_floor_div(utc_ms, 1000), 1, '0'); break;
  case 'F': FORMAT_LIT(o, "%Y-%m-%d", c, utc_ms); break;
  case 'T': FORMAT_LIT(o, "%H:%M:%S", c, utc_ms); break;
  case 'R': FORMAT_LIT(o, "%H:%M", c, utc_ms); break;
  case 'D':
  case 'x': FORMAT_LIT(o, "%m/%d/%y", c, utc_ms); break;
  case 'X': FORMAT_LIT(o, "%H:%M:%S", c, utc_ms); break;
  case 'c': FORMAT_LIT(o, "%a %b %e %H:%M:%S %Y", c, utc_ms); break;
  case 'n': putc_(o, '\n'); break;
  case 't': putc_(o, '\t'); break;
  case '%': putc_(o, '%'); break;
  default:
    putc_(o, '%');
    putc_(o, ch);
    break;
  }
}

static void format(out_t *o, const char *f, size_t n, const zql_civil_t *c, int64_t utc_ms)
{
  for (size_t i = 0; i < n; i++) {
    if (f[i] != '%' || i + 1 == n) {
      putc_(o, f[i]);
      continue;
    }
    char ch = f[++i];
    if (ch == ':' && i + 1 < n && f[i + 1] == 'z') {
      put_offset(o, c->offset, true);
      i++;
    } else {
      conv(o, ch, c, utc_ms);
    }
  }
}

size_t zql_tz_format(char *buf, size_t cap, const char *fmt, size_t fmtlen,
                     const zql_tz_t *z, int64_t utc_ms)
{
  zql_civil_t c;
  zql_tz_to_civil(z, utc_ms, &c);
  out_t o = {buf, cap > 0 ? cap - 1 : 0, 0};
  format(&o, fmt, fmtlen, &c, utc_ms);
  if (cap > 0)
    buf[o.len < o.cap ? o.len : o.cap] = '\0';
  return o.len;
}

void zql_tz_format_sb(zql_strbuf_t *sb, const char *fmt, size_t fmtlen, const zql_tz_t *z,
                      int64_t utc_ms)
{
  char small[128];
  size_t len = zql_tz_format(small, sizeof small, fmt, fmtlen, z, utc_ms);
  if (len < sizeof small) {
    zql_strbuf_add(sb, small, len);
    return;
  }
  if (!zql_strbuf_grow(sb, len + 1))
    return;
  zql_tz_format(sb->buf + sb->len, len + 1, fmt, fmtlen, z, utc_ms);
  sb->len += len;
}

/* }==== */
