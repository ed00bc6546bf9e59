/*
 * cron.c -- crontab expressions: parsing, the next fire time in a zone, rendering
 * (runtime services; zqld's scheduler, runtime/sched.c, is the caller; contract in cron.h).
 *
 * Parsing follows crontab(5) of Vixie cron / cronie field by field into one bit set per
 * field. The next fire time is searched in local civil time: months from the month set,
 * then days (the Vixie day-of-month / day-of-week rule), then the hour and minute sets,
 * each step jumping to the next set bit, so a yearly expression costs a few dozen steps,
 * not half a million minutes. Every local candidate is mapped to an instant with
 * zql_tz_from_civil (a fold gives the earlier instant, a gap the first instant after it);
 * that map is monotone, so the first candidate whose instant lies after the start is the
 * answer. Candidates that map back to or before the start (inside a fold that the start
 * already left) are skipped; this is what makes a repeated local time fire only once.
 */
#include "runtime/base/zql_common.h"

#include <ctype.h>
#include <strings.h>

#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"
#include "runtime/base/tz.h"
#include "runtime/base/cron.h"

/* ORDER: the crontab field order. */
enum { F_MINUTE, F_HOUR, F_MDAY, F_MONTH, F_WDAY, NFIELDS };

typedef struct field_def {
  const char *name;
  int lo, hi;
} field_def_t;

static const field_def_t fields[NFIELDS] = {
    {"minute", 0, 59}, {"hour", 0, 23}, {"day-of-month", 1, 31}, {"month", 1, 12},
    {"day-of-week", 0, 7}};

static const char *const month_abbr[12] = {"jan", "feb", "mar", "apr", "may", "jun",
                                           "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const month_name[12] = {"January", "February", "March",     "April",
                                           "May",     "June",     "July",      "August",
                                           "September", "October", "November", "December"};
static const char *const wday_abbr[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

/* The longest a month can be in any year (February: 29). */
static const int month_max_days[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

/* {==== parsing ========================================================================== */

typedef struct parser {
  const char *text;
  zql_strbuf_t *err;
  size_t *err_col;
} parser_t;

static int fail(parser_t *ps, const char *at, const char *fmt, ...) ZQL_PRINTF(3, 4);

static int fail(parser_t *ps, const char *at, const char *fmt, ...)
{
  if (ps->err) {
    va_list ap;
    va_start(ap, fmt);
    zql_strbuf_vaddf(ps->err, fmt, ap);
    va_end(ap);
  }
  if (ps->err_col)
    *ps->err_col = (size_t)(at - ps->text);
  return ZQL_E_BAD_CRON;
}

static bool is_blank(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* One value of field f at *p (before end): digits, or a 3-letter name in the month and
 * day-of-week fields. Range checked. */
static int parse_value(parser_t *ps, int f, const char **p, const char *end, int *v)
{
  const char *s = *p;
  if (s < end && isdigit((unsigned char)*s)) {
    const char *q = s;
    long x = 0;
    while (q < end && isdigit((unsigned char)*q)) {
      if (x < 1000000)
        x = x * 10 + (*q - '0');
      q++;
    }
    if (x < fields[f].lo || x > fields[f].hi)
      return fail(ps, s, "%s %.*s is out of range %d-%d", fields[f].name, (int)(q - s), s,
                  fields[f].lo, fields[f].hi);
    *v = (int)x;
    *p = q;
    return 0;
  }
  if (s < end && isalpha((unsigned char)*s)) {
    const char *q = s;
    while (q < end && isalpha((unsigned char)*q))
      q++;
    if (f != F_MONTH && f != F_WDAY)
      return fail(ps, s, "unexpected '%c' in the %s field", *s, fields[f].name);
    const char *const *names = f == F_MONTH ? month_abbr : wday_abbr;
    int count = f == F_MONTH ? 12 : 7;
    if (q - s == 3)
      for (int i = 0; i < count; i++)
        if (strncasecmp(s, names[i], 3) == 0) {
          *v = f == F_MONTH ? i + 1 : i;
          *p = q;
          return 0;
        }
    return fail(ps, s, "unknown %s name '%.*s'", f == F_MONTH ? "month" : "day", (int)(q - s),
                s);
  }
  if (s >= end || *s == ',')
    return fail(ps, s, "missing value in the %s field", fields[f].name);
  return fail(ps, s, "unexpected '%c' in the %s field", *s, fields[f].name);
}

/* One field [s, end): a comma list of items. Sets *bits (bit v for each value v). */
static int parse_field(parser_t *ps, int f, const char *s, const char *end, uint64_t *bits)
{
  const int lo = fields[f].lo, hi = fields[f].hi;
  const char *p = s;
  *bits = 0;
  for (;;) {
    const char *item = p;
    if (p >= end || *p == ',')
      return fail(ps, p, "empty item in the %s field", fields[f].name);
    int a, b;
    bool single = false;
    if (*p == '*') {
      p++;
      a = lo;
      b = hi;
    } else {
      int rc = parse_value(ps, f, &p, end, &a);
      if (rc)
        return rc;
      b = a;
      single = true;
      if (p < end && *p == '-') {
        p++;
        if ((rc = parse_value(ps, f, &p, end, &b)) != 0)
          return rc;
        single = false;
        if (a > b)
          return fail(ps, item, "range %.*s in the %s field is reversed", (int)(p - item), item,
                      fields[f].name);
      }
    }
    int step = 1;
    if (p < end && *p == '/') {
      p++;
      if (p >= end || !isdigit((unsigned char)*p))
        return fail(ps, p, "missing step after '/' in the %s field", fields[f].name);
      const char *q = p;
      long x = 0;
      while (q < end && isdigit((unsigned char)*q)) {
        if (x < 1000000)
          x = x * 10 + (*q - '0');
        q++;
      }
      if (x < 1 || x > hi)
        return fail(ps, p, "step %.*s in the %s field is out of range 1-%d", (int)(q - p), p,
                    fields[f].name, hi);
      step = (int)x;
      p = q;
      if (single)
        b = hi; /* `A/S`: from A to the end of the range */
    }
    if (p < end && *p != ',')
      return fail(ps, p, "unexpected '%c' in the %s field", *p, fields[f].name);
    for (int v = a; v <= b; v += step)
      *bits |= UINT64_C(1) << v;
    if (p >= end)
      return 0;
    p++; /* the comma */
  }
}

/* Append the values of `bits` in [lo, hi] as a list with ranges ("1,3-5"). */
static void add_list(zql_strbuf_t *sb, uint64_t bits, int lo, int hi, bool comma)
{
  for (int v = lo; v <= hi; v++) {
    if (!(bits >> v & 1))
      continue;
    int w = v;
    while (w + 1 <= hi && (bits >> (w + 1) & 1))
      w++;
    if (comma)
      zql_strbuf_addc(sb, ',');
    comma = true;
    if (w - v >= 2)
      zql_strbuf_addf(sb, "%d-%d", v, w);
    else if (w == v + 1)
      zql_strbuf_addf(sb, "%d,%d", v, w);
    else
      zql_strbuf_addf(sb, "%d", v);
    v = w;
  }
}

/* A parsed expression that can never fire: day-of-month restricts the day alone (the
 * day-of-week field starts with '*') and none of its days exists in any selected month. */
static int check_fires(parser_t *ps, const zql_cron_t *c, const char *mday_field)
{
  if (c->mday_star || !c->wday_star)
    return 0; /* '*' days include the 1st; under the OR rule the weekdays fire */
  for (int m = 1; m <= 12; m++)
    if ((c->months >> m & 1) && (c->mdays & ((UINT64_C(2) << month_max_days[m]) - 2)))
      return 0;
  zql_strbuf_t days = ZQL_STRBUF_INIT, months = ZQL_STRBUF_INIT;
  add_list(&days, c->mdays, 1, 31, false);
  int nm = 0, total = 0;
  for (int m = 1; m <= 12; m++)
    total += c->months >> m & 1;
  for (int m = 1; m <= 12; m++) {
    if (!(c->months >> m & 1))
      continue;
    nm++;
    if (nm > 1)
      zql_strbuf_adds(&months, nm == total ? " or " : ", ");
    zql_strbuf_adds(&months, month_name[m - 1]);
  }
  int rc = fail(ps, mday_field, "day-of-month %s never occurs in %s",
                days.oom ? "..." : days.buf, months.oom ? "..." : months.buf);
  zql_strbuf_release(&days);
  zql_strbuf_release(&months);
  return rc;
}

int zql_cron_parse(const char *text, zql_cron_t *out, zql_strbuf_t *err, size_t *err_col)
{
  static const struct {
    const char *name, *expansion;
  } macros[] = {{"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
                {"@weekly", "0 0 * * 0"},  {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
                {"@hourly", "0 * * * *"}};
  parser_t ps = {text, err, err_col};
  const char *p = text;
  while (is_blank(*p))
    p++;
  if (*p == '@') {
    const char *w = p;
    while (*p && !is_blank(*p))
      p++;
    size_t n = (size_t)(p - w);
    const char *rest = p;
    while (is_blank(*rest))
      rest++;
    if (n == 6 && strncmp(w, "@every", 6) == 0)
      return fail(&ps, w, "'@every' takes a duration, not a cron expression (write "
                          "'schedule every 15m')");
    for (size_t i = 0; i < ZQL_ARRAY_LEN(macros); i++) {
      if (strlen(macros[i].name) != n || strncmp(w, macros[i].name, n) != 0)
        continue;
      if (*rest)
        return fail(&ps, rest, "unexpected '%c' after '%.*s'", *rest, (int)n, w);
      return zql_cron_parse(macros[i].expansion, out, NULL, NULL);
    }
    return fail(&ps, w, "unknown cron macro '%.*s' (use @yearly, @annually, @monthly, @weekly, "
                        "@daily, @midnight or @hourly)", (int)n, w);
  }
  const char *fs[NFIELDS], *fe[NFIELDS], *sixth = NULL;
  int nf = 0;
  while (*p) {
    if (nf < NFIELDS)
      fs[nf] = p;
    else if (nf == NFIELDS)
      sixth = p;
    while (*p && !is_blank(*p))
      p++;
    if (nf < NFIELDS)
      fe[nf] = p;
    nf++;
    while (is_blank(*p))
      p++;
  }
  if (nf != NFIELDS)
    return fail(&ps, sixth ? sixth : p, "expected 5 fields, found %d", nf);
  uint64_t bits[NFIELDS];
  for (int f = 0; f < NFIELDS; f++) {
    int rc = parse_field(&ps, f, fs[f], fe[f], &bits[f]);
    if (rc)
      return rc;
  }
  memset(out, 0, sizeof *out);
  out->minutes = bits[F_MINUTE];
  out->hours = (uint32_t)bits[F_HOUR];
  out->mdays = (uint32_t)bits[F_MDAY];
  out->months = (uint16_t)bits[F_MONTH];
  out->wdays = (uint8_t)((bits[F_WDAY] | bits[F_WDAY] >> 7) & 0x7f); /* 7 is Sunday, 0 */
  out->mday_star = *fs[F_MDAY] == '*';
  out->wday_star = *fs[F_WDAY] == '*';
  return check_fires(&ps, out, fs[F_MDAY]);
}

/* }==== */

/* {==== the next fire time =============================================================== */

/* The lowest set bit of `bits` in [from, to], or -1. */
static int next_bit(uint64_t bits, int from, int to)
{
  if (from > to)
    return -1;
  uint64_t m = bits >> from << from;
  if (to < 63)
    m &= (UINT64_C(2) << to) - 1;
  return m ? __builtin_ctzll(m) : -1;
}

static bool day_matches(const zql_cron_t *c, int64_t y, int m, int d)
{
  bool md = c->mdays >> d & 1;
  int wd = zql_weekday_from_days(zql_days_from_civil(y, m, d)) % 7; /* Sunday: 0 */
  bool wm = c->wdays >> wd & 1;
  if (c->mday_star || c->wday_star)
    return md && wm;
  return md || wm; /* both restricted: Vixie's OR */
}

/* A local wall-clock minute. */
typedef struct lmin {
  int64_t year;
  int month, day, hour, minute;
} lmin_t;

/* The first local minute >= *t (fields in range, except that day may exceed its month and
 * hour may be 24) that matches c, in a year <= ymax. */
static bool next_local(const zql_cron_t *c, lmin_t *t, int64_t ymax)
{
  int64_t y = t->year;
  int m = t->month, d = t->day, h = t->hour, mi = t->minute;
  while (y <= ymax) {
    if (h > 23) {
      d++;
      h = 0;
      mi = 0;
    }
    if (!(c->months >> m & 1)) {
      int nm = next_bit(c->months, m + 1, 12);
      if (nm < 0) {
        y++;
        nm = next_bit(c->months, 1, 12);
      }
      m = nm;
      d = 1, h = 0, mi = 0;
      continue;
    }
    if (d > zql_days_in_month(y, m)) {
      if (++m > 12) {
        m = 1;
        y++;
      }
      d = 1, h = 0, mi = 0;
      continue;
    }
    if (!day_matches(c, y, m, d)) {
      d++;
      h = 0, mi = 0;
      continue;
    }
    int nh = next_bit(c->hours, h, 23);
    if (nh < 0) {
      d++;
      h = 0, mi = 0;
      continue;
    }
    if (nh != h) {
      h = nh;
      mi = 0;
    }
    int nmi = next_bit(c->minutes, mi, 59);
    if (nmi < 0) {
      h++;
      mi = 0;
      continue;
    }
    *t = (lmin_t){y, m, d, h, nmi};
    return true;
  }
  return false;
}

int64_t zql_cron_next(const zql_cron_t *c, const zql_tz_t *tz, int64_t after_ms)
{
  if (!tz)
    tz = zql_tz_utc();
  if (!c->minutes || !c->hours || !c->months || (!c->mdays && !c->wdays))
    return INT64_MAX;
  zql_civil_t now;
  zql_tz_to_civil(tz, after_ms, &now);
  lmin_t t = {now.year, now.month, now.day, now.hour, now.minute + 1};
  if (t.minute > 59) {
    t.minute = 0;
    t.hour++;
  }
  const int64_t ymax = (int64_t)now.year + 500;
  /* Each round moves t forward by at least a minute; only candidates inside a fold the
   * start already left are skipped, so a day of minutes bounds the rounds in any real
   * zone. The bound guards against a zone we do not understand. */
  for (int round = 0; round < 4 * 1440; round++) {
    if (!next_local(c, &t, ymax))
      return INT64_MAX;
    zql_civil_t lc = {.year = (int32_t)t.year, .month = t.month, .day = t.day,
                      .hour = t.hour, .minute = t.minute};
    int64_t inst;
    if (t.year > INT32_MAX || !zql_tz_from_civil(tz, &lc, ZQL_TZ_GAP_NEXT, &inst))
      return INT64_MAX;
    if (inst > after_ms)
      return inst;
    if (++t.minute > 59) {
      t.minute = 0;
      t.hour++;
    }
  }
  return INT64_MAX;
}

/* }==== */

/* {==== rendering ======================================================================== */

/* bits over [lo, hi]; star_kind: the field's '*' matters (day-of-month, day-of-week). */
static void add_field(zql_strbuf_t *sb, uint64_t bits, int lo, int hi, bool star_kind,
                      bool star)
{
  uint64_t full = ((hi < 63 ? (UINT64_C(2) << hi) : 0) - 1) >> lo << lo;
  int count = __builtin_popcountll(bits);
  if (bits == full && (!star_kind || star)) {
    zql_strbuf_addc(sb, '*');
    return;
  }
  if (count >= 2 && (!star_kind || star)) {
    for (int n = 2; n <= hi - lo; n++) {
      uint64_t prog = 0;
      for (int v = lo; v <= hi; v += n)
        prog |= UINT64_C(1) << v;
      if (prog == bits) {
        zql_strbuf_addf(sb, "*/%d", n);
        return;
      }
    }
  }
  if (star_kind && star) {
    /* a '*' field always holds lo; "*\/N" with N past the range is lo alone */
    zql_strbuf_addf(sb, "*/%d", hi - lo + 1);
    add_list(sb, bits & ~(UINT64_C(1) << lo), lo, hi, true);
    return;
  }
  add_list(sb, bits, lo, hi, false);
}

void zql_cron_format(const zql_cron_t *c, zql_strbuf_t *sb)
{
  add_field(sb, c->minutes, 0, 59, false, false);
  zql_strbuf_addc(sb, ' ');
  add_field(sb, c->hours, 0, 23, false, false);
  zql_strbuf_addc(sb, ' ');
  add_field(sb, c->mdays, 1, 31, true, c->mday_star);
  zql_strbuf_addc(sb, ' ');
  add_field(sb, c->months, 1, 12, false, false);
  zql_strbuf_addc(sb, ' ');
  add_field(sb, c->wdays, 0, 6, true, c->wday_star);
}

/* }==== */
