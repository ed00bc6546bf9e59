/*
 * sched.c -- schedule clauses and the scheduler state machine of zqld (runtime services;
 * contract in sched.h, user documentation in docs/scheduling.md).
 *
 * Schedules: zql_schedule_parse reads the clause text that the planner keeps
 * (zql_plan_t.schedule) with a small hand-written scanner: the forms of R18, ZQL duration
 * literals and constant arithmetic over them (the analyzer has already type-checked the
 * clause; this file re-reads it because the plan stores text only), cron strings through
 * runtime/cron.c.
 *
 * The scheduler keeps one entry per aggregate in an array sorted by name. An entry is due
 * at the earliest of two times, `timer` (its schedule's own clock: every, cron, bucket
 * closes) and `trigger` (events, commits of the aggregate it runs after, reported closes,
 * on-demand requests) -- or, after a failure, at `retry` alone (exponential backoff with
 * jitter, so a failing aggregate neither hammers its store nor blocks the others).
 * Starting a run clears all three; its end computes the next timer from the run's start
 * and turns triggers that came during the run (the pending flag) into the next trigger.
 * Aggregates number in the hundreds at most, so dispatch scans the array (O(n)).
 *
 * Jitter: SplitMix64 (G. Steele, D. Lea, C. Flood, "Fast splittable pseudorandom number
 * generators", OOPSLA 2014), seeded from the options so tests are deterministic.
 */
#include "runtime/base/zql_common.h"

#include <ctype.h>
#include <math.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"
#include "runtime/base/tz.h"
#include "runtime/base/cron.h"
#include "runtime/sched.h"

#define NEVER INT64_MAX

/* {==== parsing schedule clauses ========================================================= */

static bool is_blank(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static const char *skip_blanks(const char *p)
{
  while (is_blank(*p))
    p++;
  return p;
}

/* The keyword kw at p, not followed by an identifier character: the text after it and
 * its blanks, or NULL. */
static const char *keyword(const char *p, const char *kw)
{
  size_t n = strlen(kw);
  if (strncmp(p, kw, n) != 0 || isalnum((unsigned char)p[n]) || p[n] == '_')
    return NULL;
  return skip_blanks(p + n);
}

/* Constant duration arithmetic: a recursive-descent parser over
 *     expr := term (('+' | '-') term)*      term := unary (('*' | '/') unary)*
 *     unary := ('-' | '+') unary | '(' expr ')' | NUMBER | DURATION
 * Values are doubles (exact for integers below 2^53 ms, 285,000 years) tagged with
 * "is a duration"; the analyzer's types decide the same way: duration +- duration,
 * duration * number, number * duration, duration / number give durations, duration /
 * duration a number. */
typedef struct dval {
  double v;
  bool dur;
} dval_t;

typedef struct dparse {
  const char *p;
  const char *text; /* for messages */
  zql_strbuf_t *err;
  int rc;
  int depth;
} dparse_t;

static bool dfail(dparse_t *d, int code, const char *fmt, ...) ZQL_PRINTF(3, 4);

static bool dfail(dparse_t *d, int code, const char *fmt, ...)
{
  if (d->rc)
    return false;
  d->rc = code;
  if (d->err) {
    va_list ap;
    va_start(ap, fmt);
    zql_strbuf_vaddf(d->err, fmt, ap);
    va_end(ap);
  }
  return false;
}

static bool d_expr(dparse_t *d, dval_t *out);

/* A number or a duration literal (the lexer's rules: unit parts w d h m s ms in
 * decreasing order, "1h30m"). */
static bool d_literal(dparse_t *d, dval_t *out)
{
  static const char *const units[] = {"w", "d", "h", "m", "s", "ms"};
  static const double unit_ms[] = {604800000.0, 86400000.0, 3600000.0, 60000.0, 1000.0, 1.0};
  const char *s = d->p, *p = s;
  while (isdigit((unsigned char)*p))
    p++;
  if (*p == '.' || *p == 'e' || *p == 'E' || !isalpha((unsigned char)*p)) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || isalnum((unsigned char)*end) || *end == '_' || *end == '.')
      return dfail(d, ZQL_E_BAD_DURATION_VALUE, "invalid number '%.*s' in 'every %s'",
                   (int)(end - s + (*end != 0)), s, d->text);
    d->p = end;
    *out = (dval_t){v, false};
    return true;
  }
  double total = 0;
  int last = -1;
  p = s;
  while (isdigit((unsigned char)*p)) {
    double v = 0;
    while (isdigit((unsigned char)*p))
      v = v * 10 + (*p++ - '0');
    int u = -1;
    if (p[0] == 'm' && p[1] == 's')
      u = 5;
    else
      for (int i = 0; i < 5; i++)
        if (*p == units[i][0])
          u = i;
    if (u < 0 || u <= last)
      break;
    p += strlen(units[u]);
    last = u;
    total += v * unit_ms[u];
    if (!isdigit((unsigned char)*p)) {
      if (isalnum((unsigned char)*p) || *p == '_')
        break;
      d->p = p;
      *out = (dval_t){total, true};
      return true;
    }
  }
  const char *e = s;
  while (isalnum((unsigned char)*e) || *e == '_')
    e++;
  return dfail(d, ZQL_E_BAD_DURATION_VALUE,
               "invalid duration '%.*s' (write integer+unit parts from w d h m s ms, such as "
               "'1h30m')", (int)(e - s), s);
}

static bool d_unary(dparse_t *d, dval_t *out)
{
  d->p = skip_blanks(d->p);
  char c = *d->p;
  if (++d->depth > 64)
    return dfail(d, ZQL_E_BAD_DURATION_VALUE, "duration expression 'every %s' nests too deep",
                 d->text);
  bool ok;
  if (c == '-' || c == '+') {
    d->p++;
    ok = d_unary(d, out);
    if (ok && c == '-')
      out->v = -out->v;
  } else if (c == '(') {
    d->p++;
    ok = d_expr(d, out);
    d->p = skip_blanks(d->p);
    if (ok && *d->p != ')')
      ok = dfail(d, ZQL_E_SYNTAX, "missing ')' in 'every %s'", d->text);
    else if (ok)
      d->p++;
  } else if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)d->p[1]))) {
    ok = d_literal(d, out);
  } else if (c == '$') {
    const char *e = d->p + 1;
    while (isalnum((unsigned char)*e) || *e == '_')
      e++;
    ok = dfail(d, ZQL_E_UNSUPPORTED,
               "'every %s': the scheduler cannot resolve the parameter '%.*s' from the "
               "schedule's text; write the duration", d->text, (int)(e - d->p), d->p);
  } else if (!c) {
    ok = *d->text ? dfail(d, ZQL_E_SYNTAX, "missing duration in 'every %s'", d->text)
                  : dfail(d, ZQL_E_SYNTAX, "missing duration after 'every'");
  } else {
    ok = dfail(d, ZQL_E_SYNTAX, "unexpected '%c' in 'every %s'", c, d->text);
  }
  d->depth--;
  return ok;
}

static bool d_term(dparse_t *d, dval_t *out)
{
  if (!d_unary(d, out))
    return false;
  for (;;) {
    d->p = skip_blanks(d->p);
    char op = *d->p;
    if (op != '*' && op != '/')
      return true;
    d->p++;
    dval_t r;
    if (!d_unary(d, &r))
      return false;
    if (op == '*') {
      if (out->dur && r.dur)
        return dfail(d, ZQL_E_BAD_DURATION_VALUE, "'every %s' multiplies two durations",
                     d->text);
      out->v *= r.v;
      out->dur = out->dur || r.dur;
    } else {
      if (!out->dur && r.dur)
        return dfail(d, ZQL_E_BAD_DURATION_VALUE, "'every %s' divides a number by a duration",
                     d->text);
      if (r.v == 0)
        return dfail(d, ZQL_E_BAD_DURATION_VALUE, "'every %s' divides by zero", d->text);
      out->v /= r.v;
      out->dur = out->dur && !r.dur;
    }
  }
}

static bool d_expr(dparse_t *d, dval_t *out)
{
  if (!d_term(d, out))
    return false;
  for (;;) {
    d->p = skip_blanks(d->p);
    char op = *d->p;
    if (op != '+' && op != '-')
      return true;
    d->p++;
    dval_t r;
    if (!d_term(d, &r))
      return false;
    if (out->dur != r.dur)
      return dfail(d, ZQL_E_BAD_DURATION_VALUE, "'every %s' adds a number to a duration",
                   d->text);
    out->v = op == '+' ? out->v + r.v : out->v - r.v;
  }
}

/* `text` (the whole rest of the clause) as a positive whole number of ms. */
static int parse_every(const char *text, int64_t *ms, zql_strbuf_t *err)
{
  dparse_t d = {text, text, err, 0, 0};
  dval_t v;
  if (!d_expr(&d, &v))
    return d.rc;
  d.p = skip_blanks(d.p);
  if (*d.p)
    return zql_fail(err, ZQL_E_SYNTAX, "unexpected '%c' in 'every %s'", *d.p, text);
  if (!v.dur)
    return zql_fail(err, ZQL_E_BAD_DURATION_VALUE, "'every %s' is a number, not a duration",
                text);
  double r = round(v.v);
  if (!(r >= 1) || r > 4e18)
    return zql_fail(err, ZQL_E_BAD_DURATION_VALUE,
                "'every %s' must be a positive duration of at least 1ms", text);
  *ms = (int64_t)r;
  return 0;
}

/* "1h30m", "250ms", "1w": the greedy ZQL rendering of a positive duration. */
static void add_duration(zql_strbuf_t *sb, int64_t ms)
{
  static const char *const units[] = {"w", "d", "h", "m", "s", "ms"};
  static const int64_t unit_ms[] = {604800000, 86400000, 3600000, 60000, 1000, 1};
  for (int i = 0; i < 6; i++) {
    if (ms >= unit_ms[i]) {
      zql_strbuf_addf(sb, "%" PRId64 "%s", ms / unit_ms[i], units[i]);
      ms %= unit_ms[i];
    }
  }
}

/* A ZQL string literal at p ("..." or '...'), unescaped into sb; *end after it. */
static int parse_string(const char *p, zql_strbuf_t *sb, const char **end, zql_strbuf_t *err)
{
  char q = *p;
  if (q != '"' && q != '\'')
    return zql_fail(err, ZQL_E_SYNTAX, "expected a string after 'cron'");
  for (p++; *p != q; p++) {
    if (!*p)
      return zql_fail(err, ZQL_E_SYNTAX, "unterminated string after 'cron'");
    if (*p != '\\') {
      zql_strbuf_addc(sb, *p);
      continue;
    }
    p++;
    switch (*p) {
    case '"': case '\'': case '\\': case '/': zql_strbuf_addc(sb, *p); break;
    case 't': zql_strbuf_addc(sb, '\t'); break;
    case 'n': zql_strbuf_addc(sb, '\n'); break;
    case 'r': zql_strbuf_addc(sb, '\r'); break;
    default:
      return zql_fail(err, ZQL_E_SYNTAX, "unsupported escape '\\%c' in a cron string",
                  *p ? *p : ' ');
    }
  }
  *end = p + 1;
  return sb->oom ? zql_fail(err, ZQL_E_NOMEM, "out of memory") : 0;
}

/* An aggregate name after `after`: an identifier or a back-quoted one. */
static int parse_name(const char *p, char **out, zql_strbuf_t *err)
{
  const char *s = p, *e;
  if (*p == '`') {
    s = p + 1;
    e = strchr(s, '`');
    if (!e || e == s)
      return zql_fail(err, ZQL_E_SYNTAX, "bad quoted name after 'after'");
    p = e + 1;
  } else {
    while (*p && !is_blank(*p))
      p++;
    e = p;
    if (e == s)
      return zql_fail(err, ZQL_E_SYNTAX, "missing aggregate name after 'after'");
  }
  if (*skip_blanks(p))
    return zql_fail(err, ZQL_E_SYNTAX, "unexpected text after 'after %.*s'", (int)(e - s), s);
  *out = zql_strndup(s, (size_t)(e - s));
  return *out ? 0 : zql_fail(err, ZQL_E_NOMEM, "out of memory");
}

/* The rest of the text without trailing blanks, copied. */
static char *dup_trimmed(const char *p)
{
  size_t n = strlen(p);
  while (n > 0 && is_blank(p[n - 1]))
    n--;
  return zql_strndup(p, n);
}

/* Fill s->text from the parsed fields. */
static int make_text(zql_schedule_t *s)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  switch (s->kind) {
  case ZQL_SCHEDULE_NONE: zql_strbuf_adds(&sb, "on demand"); break;
  case ZQL_SCHEDULE_EVERY:
    zql_strbuf_adds(&sb, "every ");
    add_duration(&sb, s->every_ms);
    break;
  case ZQL_SCHEDULE_CRON:
    zql_strbuf_adds(&sb, "cron \"");
    zql_cron_format(&s->cron, &sb);
    zql_strbuf_addf(&sb, "\" tz \"%s\"", zql_tz_name(s->tz));
    break;
  case ZQL_SCHEDULE_EVENT:
    zql_strbuf_adds(&sb, "on event");
    if (s->predicate)
      zql_strbuf_addf(&sb, " %s", s->predicate);
    break;
  case ZQL_SCHEDULE_CLOSE: zql_strbuf_adds(&sb, "on close"); break;
  case ZQL_SCHEDULE_AFTER: zql_strbuf_addf(&sb, "after %s", s->after); break;
  }
  s->text = zql_strbuf_detach(&sb, NULL);
  return s->text ? 0 : ZQL_E_NOMEM;
}

static int parse_cron_clause(const char *p, const char *tz_name, zql_schedule_t *out,
                             zql_strbuf_t *err)
{
  zql_strbuf_t expr = ZQL_STRBUF_INIT;
  const char *end = p;
  int rc = parse_string(p, &expr, &end, err);
  if (rc == 0 && *skip_blanks(end))
    rc = zql_fail(err, ZQL_E_SYNTAX, "unexpected text after the cron string");
  if (rc) {
    zql_strbuf_release(&expr);
    return rc;
  }
  const char *e = skip_blanks(expr.buf);
  const char *d = keyword(e, "@every");
  if (d) {
    out->kind = ZQL_SCHEDULE_EVERY;
    rc = parse_every(d, &out->every_ms, err);
  } else {
    size_t col = 0;
    zql_strbuf_t msg = ZQL_STRBUF_INIT;
    out->kind = ZQL_SCHEDULE_CRON;
    rc = zql_cron_parse(expr.buf, &out->cron, &msg, &col);
    if (rc)
      zql_fail(err, rc, "invalid cron expression \"%s\": %s (at column %zu)", expr.buf,
           msg.oom ? "out of memory" : msg.buf, col);
    zql_strbuf_release(&msg);
    if (rc == 0)
      rc = zql_tz_load(tz_name ? tz_name : "UTC", &out->tz, err);
  }
  zql_strbuf_release(&expr);
  return rc;
}

int zql_schedule_parse(const char *text, int64_t settle_ms, const char *tz_name,
                       zql_schedule_t *out, zql_strbuf_t *err)
{
  memset(out, 0, sizeof *out);
  out->settle_ms = settle_ms > 0 ? settle_ms : 0;
  int rc = 0;
  if (text) {
    const char *p = skip_blanks(text), *q;
    bool clause = false;
    if ((q = keyword(p, "schedule")) != NULL) {
      p = q;
      clause = true;
    }
    const char *on = keyword(p, "on");
    const char *on_event = on ? keyword(on, "event") : NULL;
    const char *on_close = on ? keyword(on, "close") : NULL;
    if (clause && !*p) {
      rc = zql_fail(err, ZQL_E_SYNTAX, "missing schedule after 'schedule'");
    } else if ((q = keyword(p, "every")) != NULL) {
      out->kind = ZQL_SCHEDULE_EVERY;
      char *t = dup_trimmed(q);
      rc = t ? parse_every(t, &out->every_ms, err) : zql_fail(err, ZQL_E_NOMEM, "out of memory");
      zql_free(t);
    } else if ((q = keyword(p, "cron")) != NULL) {
      rc = parse_cron_clause(q, tz_name, out, err);
    } else if (on_event) {
      out->kind = ZQL_SCHEDULE_EVENT;
      if (*on_event && !(out->predicate = dup_trimmed(on_event)))
        rc = zql_fail(err, ZQL_E_NOMEM, "out of memory");
    } else if (on_close) {
      out->kind = ZQL_SCHEDULE_CLOSE;
      if (*on_close)
        rc = zql_fail(err, ZQL_E_SYNTAX, "unexpected text after 'on close'");
    } else if ((q = keyword(p, "after")) != NULL) {
      out->kind = ZQL_SCHEDULE_AFTER;
      rc = parse_name(q, &out->after, err);
    } else if (*p) {
      rc = zql_fail(err, ZQL_E_SYNTAX, "unknown schedule '%s' (expected every, cron, on event, "
                                   "on close or after)", p);
    }
  }
  if (rc == 0 && (rc = make_text(out)) != 0)
    zql_fail(err, rc, "out of memory");
  if (rc)
    zql_schedule_release(out);
  return rc;
}

int zql_schedule_every(int64_t ms, zql_schedule_t *out)
{
  memset(out, 0, sizeof *out);
  if (ms <= 0)
    return ZQL_E_BAD_DURATION_VALUE;
  out->kind = ZQL_SCHEDULE_EVERY;
  out->every_ms = ms;
  int rc = make_text(out);
  if (rc)
    zql_schedule_release(out);
  return rc;
}

int zql_schedule_set_close(zql_schedule_t *s, const zql_bucket_t *b, int64_t lateness_ms)
{
  if (s->kind != ZQL_SCHEDULE_CLOSE || lateness_ms < 0 || !b)
    return ZQL_E_USAGE;
  s->has_bucket = true;
  s->bucket = *b;
  s->lateness_ms = lateness_ms;
  return 0;
}

int64_t zql_schedule_next_close(const zql_schedule_t *s, int64_t t_ms)
{
  if (s->kind != ZQL_SCHEDULE_CLOSE || !s->has_bucket)
    return NEVER;
  int64_t base, end, close;
  if (__builtin_sub_overflow(t_ms, s->lateness_ms, &base) ||
      zql_bucket_end(&s->bucket, base, &end) != 0 ||
      __builtin_add_overflow(end, s->lateness_ms, &close))
    return NEVER;
  return close;
}

void zql_schedule_release(zql_schedule_t *s)
{
  zql_free(s->predicate);
  zql_free(s->after);
  zql_free(s->text);
  memset(s, 0, sizeof *s);
}

/* A deep copy of src into dst (dst uninitialised). */
static int schedule_copy(zql_schedule_t *dst, const zql_schedule_t *src)
{
  *dst = *src;
  dst->predicate = dst->after = dst->text = NULL;
  if ((src->predicate && !(dst->predicate = zql_strndup(src->predicate, strlen(src->predicate)))) ||
      (src->after && !(dst->after = zql_strndup(src->after, strlen(src->after)))) ||
      (src->text && !(dst->text = zql_strndup(src->text, strlen(src->text))))) {
    zql_schedule_release(dst);
    return ZQL_E_NOMEM;
  }
  return 0;
}

static bool str_eq(const char *a, const char *b)
{
  return a == b || (a && b && strcmp(a, b) == 0);
}

/* The same schedule (timing-wise): kinds, values, zone, bucket. */
static bool schedule_same(const zql_schedule_t *a, const zql_schedule_t *b)
{
  if (a->kind != b->kind || a->settle_ms != b->settle_ms)
    return false;
  switch (a->kind) {
  case ZQL_SCHEDULE_NONE: return true;
  case ZQL_SCHEDULE_EVERY: return a->every_ms == b->every_ms;
  case ZQL_SCHEDULE_CRON: return memcmp(&a->cron, &b->cron, sizeof a->cron) == 0 && a->tz == b->tz;
  case ZQL_SCHEDULE_EVENT: return str_eq(a->predicate, b->predicate);
  case ZQL_SCHEDULE_AFTER: return str_eq(a->after, b->after);
  case ZQL_SCHEDULE_CLOSE:
    return a->has_bucket == b->has_bucket && a->lateness_ms == b->lateness_ms &&
           (!a->has_bucket || memcmp(&a->bucket, &b->bucket, sizeof a->bucket) == 0);
  }
  return false;
}

/* }==== */

/* {==== the scheduler ==================================================================== */

typedef struct entry {
  char *name;
  zql_schedule_t sc;
  int64_t timer;       /* the schedule's own next time, NEVER: none */
  int64_t trigger;     /* the earliest armed trigger, NEVER: none */
  int64_t retry;       /* after a failure: the retry time (then the only due time) */
  bool backoff;        /* the last run failed */
  bool running;
  bool removed;        /* dropped while running: freed by zql_sched_done */
  bool pending;        /* triggers came during the run */
  int64_t pending_at;  /* the earliest of them (their due time) */
  uint32_t failures;
  char *last_error;
  int64_t last_start, last_end;
} entry_t;

struct zql_sched {
  zql_sched_opts_t o;
  entry_t **v; /* sorted by name */
  size_t n, cap;
  int active;
  uint64_t rng;
};

zql_sched_t *zql_sched_new(const zql_sched_opts_t *opts)
{
  static const zql_sched_opts_t defaults = ZQL_SCHED_OPTS_INIT;
  zql_sched_t *s = zql_calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->o = opts ? *opts : defaults;
  if (s->o.max_parallel <= 0)
    s->o.max_parallel = defaults.max_parallel;
  if (s->o.retry_min_ms <= 0)
    s->o.retry_min_ms = defaults.retry_min_ms;
  if (s->o.retry_max_ms <= 0)
    s->o.retry_max_ms = defaults.retry_max_ms;
  if (s->o.retry_max_ms < s->o.retry_min_ms)
    s->o.retry_max_ms = s->o.retry_min_ms;
  if (s->o.default_settle_ms < 0)
    s->o.default_settle_ms = defaults.default_settle_ms;
  s->rng = s->o.seed;
  return s;
}

static void entry_free(entry_t *e)
{
  zql_free(e->name);
  zql_schedule_release(&e->sc);
  zql_free(e->last_error);
  zql_free(e);
}

void zql_sched_free(zql_sched_t *s)
{
  if (!s)
    return;
  for (size_t i = 0; i < s->n; i++)
    entry_free(s->v[i]);
  zql_free(s->v);
  zql_free(s);
}

/* The index of `name`, or where it would go (*found false). */
static size_t find_pos(const zql_sched_t *s, const char *name, bool *found)
{
  size_t lo = 0, hi = s->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(s->v[mid]->name, name);
    if (c == 0) {
      *found = true;
      return mid;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = false;
  return lo;
}

/* A live (not removed) entry, or NULL. */
static entry_t *find(const zql_sched_t *s, const char *name)
{
  bool found;
  size_t i = find_pos(s, name, &found);
  return found && !s->v[i]->removed ? s->v[i] : NULL;
}

static void unlink_at(zql_sched_t *s, size_t i)
{
  entry_free(s->v[i]);
  memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof *s->v);
  s->n--;
}

/* When an idle entry is due. */
static int64_t due_of(const entry_t *e)
{
  if (e->backoff)
    return e->retry;
  return e->timer < e->trigger ? e->timer : e->trigger;
}

/* The schedule's own next time after `from` (a run's start, or now when none ran). */
static int64_t timer_after(const entry_t *e, int64_t from)
{
  switch (e->sc.kind) {
  case ZQL_SCHEDULE_EVERY: {
    int64_t t;
    return __builtin_add_overflow(from, e->sc.every_ms, &t) ? NEVER : t;
  }
  case ZQL_SCHEDULE_CRON: return zql_cron_next(&e->sc.cron, e->sc.tz, from);
  case ZQL_SCHEDULE_CLOSE: return zql_schedule_next_close(&e->sc, from);
  default: return NEVER;
  }
}

/* The timer of an entry whose schedule is new or changed, at now. */
static int64_t first_timer(const entry_t *e, int64_t now)
{
  if (e->sc.kind == ZQL_SCHEDULE_EVERY)
    return e->last_start == INT64_MIN ? now : timer_after(e, e->last_start);
  return timer_after(e, now);
}

/* Arm a trigger due at t (or mark the running entry pending). */
static void arm(entry_t *e, int64_t t)
{
  if (e->running) {
    if (!e->pending || t < e->pending_at)
      e->pending_at = t;
    e->pending = true;
  } else if (t < e->trigger) {
    e->trigger = t;
  }
}

/* Room for one more entry. */
static bool grow(zql_sched_t *s)
{
  size_t cap = s->cap ? 2 * s->cap : 16;
  entry_t **v = zql_reallocarray(s->v, cap, sizeof *v);
  if (!v)
    return false;
  s->v = v;
  s->cap = cap;
  return true;
}

/* Would `name` after `target` close a cycle? Then describe it in err. */
static bool after_cycle(const zql_sched_t *s, const char *name, const char *target,
                        zql_strbuf_t *err)
{
  const char *cur = target;
  size_t steps = 0;
  while (strcmp(cur, name) != 0) {
    const entry_t *e = find(s, cur);
    if (!e || e->sc.kind != ZQL_SCHEDULE_AFTER || !e->sc.after || ++steps > s->n)
      return false;
    cur = e->sc.after;
  }
  if (err) {
    zql_strbuf_addf(err, "schedule cycle: %s after %s", name, target);
    for (cur = target; strcmp(cur, name) != 0;) {
      cur = find(s, cur)->sc.after;
      zql_strbuf_addf(err, " after %s", cur);
    }
  }
  return true;
}

int zql_sched_set(zql_sched_t *s, const char *name, const zql_schedule_t *sc, int64_t now_ms,
                  zql_strbuf_t *err)
{
  if (sc->kind == ZQL_SCHEDULE_AFTER && sc->after && after_cycle(s, name, sc->after, err))
    return ZQL_E_CYCLE;
  zql_schedule_t copy;
  if (schedule_copy(&copy, sc) != 0)
    return zql_fail(err, ZQL_E_NOMEM, "out of memory");
  bool found;
  size_t i = find_pos(s, name, &found);
  if (found) {
    entry_t *e = s->v[i];
    bool same = !e->removed && schedule_same(&e->sc, &copy);
    zql_schedule_release(&e->sc);
    e->sc = copy;
    e->removed = false;
    if (!same && !e->running)
      e->timer = first_timer(e, now_ms);
    return 0;
  }
  entry_t *e = zql_calloc(1, sizeof *e);
  char *nm = zql_strndup(name, strlen(name));
  if (!e || !nm || (s->n == s->cap && !grow(s))) {
    zql_free(e);
    zql_free(nm);
    zql_schedule_release(&copy);
    return zql_fail(err, ZQL_E_NOMEM, "out of memory");
  }
  e->name = nm;
  e->sc = copy;
  e->trigger = e->retry = e->pending_at = NEVER;
  e->last_start = e->last_end = INT64_MIN;
  e->timer = first_timer(e, now_ms);
  memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof *s->v);
  s->v[i] = e;
  s->n++;
  return 0;
}

int zql_sched_remove(zql_sched_t *s, const char *name)
{
  bool found;
  size_t i = find_pos(s, name, &found);
  if (!found || s->v[i]->removed)
    return ZQL_E_NO_AGG;
  if (s->v[i]->running)
    s->v[i]->removed = true;
  else
    unlink_at(s, i);
  return 0;
}

int zql_sched_events(zql_sched_t *s, const char *name, int64_t now_ms)
{
  entry_t *e = find(s, name);
  if (!e)
    return ZQL_E_NO_AGG;
  if (e->sc.kind != ZQL_SCHEDULE_EVENT)
    return 0;
  int64_t settle = e->sc.settle_ms > 0 ? e->sc.settle_ms : s->o.default_settle_ms, t;
  arm(e, __builtin_add_overflow(now_ms, settle, &t) ? NEVER : t);
  return 0;
}

int zql_sched_committed(zql_sched_t *s, const char *name, int64_t now_ms, bool did_work)
{
  int n = 0;
  if (!did_work)
    return 0;
  for (size_t i = 0; i < s->n; i++) {
    entry_t *e = s->v[i];
    if (!e->removed && e->sc.kind == ZQL_SCHEDULE_AFTER && e->sc.after &&
        strcmp(e->sc.after, name) == 0) {
      arm(e, now_ms);
      n++;
    }
  }
  return n;
}

int zql_sched_bucket_close(zql_sched_t *s, const char *name, int64_t close_ms)
{
  entry_t *e = find(s, name);
  if (!e)
    return ZQL_E_NO_AGG;
  if (e->sc.kind == ZQL_SCHEDULE_CLOSE)
    arm(e, close_ms);
  return 0;
}

int zql_sched_trigger(zql_sched_t *s, const char *name, int64_t now_ms)
{
  entry_t *e = find(s, name);
  if (!e)
    return ZQL_E_NO_AGG;
  arm(e, now_ms);
  return 0;
}

int zql_sched_next(zql_sched_t *s, int64_t now_ms, const char **name)
{
  if (s->active >= s->o.max_parallel)
    return 0;
  entry_t *best = NULL;
  int64_t best_due = NEVER;
  for (size_t i = 0; i < s->n; i++) {
    entry_t *e = s->v[i];
    if (e->running || e->removed)
      continue;
    int64_t due = due_of(e);
    if (due <= now_ms && (!best || due < best_due)) { /* ties: the first name wins */
      best = e;
      best_due = due;
    }
  }
  if (!best)
    return 0;
  best->running = true;
  best->pending = false;
  best->timer = best->trigger = best->retry = best->pending_at = NEVER;
  best->last_start = now_ms;
  s->active++;
  *name = best->name;
  return 1;
}

int64_t zql_sched_wakeup(const zql_sched_t *s)
{
  if (s->active >= s->o.max_parallel)
    return NEVER;
  int64_t t = NEVER;
  for (size_t i = 0; i < s->n; i++) {
    const entry_t *e = s->v[i];
    if (!e->running && !e->removed && due_of(e) < t)
      t = due_of(e);
  }
  return t;
}

/* A uniform double in [0, 1) from SplitMix64. */
static double next_unit(zql_sched_t *s)
{
  uint64_t z = (s->rng += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  z ^= z >> 31;
  return (double)(z >> 11) * 0x1.0p-53;
}

/* The delay before retry number `failures` (>= 1). */
static int64_t backoff(zql_sched_t *s, uint32_t failures)
{
  int64_t d = s->o.retry_min_ms;
  for (uint32_t i = 1; i < failures && d < s->o.retry_max_ms; i++)
    d = d > s->o.retry_max_ms / 2 ? s->o.retry_max_ms : 2 * d;
  if (d > s->o.retry_max_ms)
    d = s->o.retry_max_ms;
  double j = (double)d * (0.8 + 0.4 * next_unit(s));
  int64_t r = j >= (double)s->o.retry_max_ms ? s->o.retry_max_ms : (int64_t)j;
  return r < 1 ? 1 : r;
}

int zql_sched_done(zql_sched_t *s, const char *name, int64_t now_ms, bool ok, const char *error)
{
  bool found;
  size_t i = find_pos(s, name, &found);
  if (!found || !s->v[i]->running)
    return ZQL_E_NO_AGG;
  entry_t *e = s->v[i];
  e->running = false;
  e->last_end = now_ms;
  s->active--;
  if (e->removed) {
    unlink_at(s, i);
    return 0;
  }
  if (e->pending)
    e->trigger = e->pending_at;
  e->pending = false;
  e->pending_at = NEVER;
  e->timer = timer_after(e, e->last_start);
  if (ok) {
    e->failures = 0;
    e->backoff = false;
    e->retry = NEVER;
    zql_free(e->last_error);
    e->last_error = NULL;
    return 0;
  }
  if (e->failures < UINT32_MAX)
    e->failures++;
  e->backoff = true;
  int64_t d = backoff(s, e->failures);
  if (__builtin_add_overflow(now_ms, d, &e->retry))
    e->retry = NEVER;
  char *msg = zql_strndup(error ? error : "failed", strlen(error ? error : "failed"));
  if (msg) { /* out of memory keeps the previous message: status is best effort */
    zql_free(e->last_error);
    e->last_error = msg;
  }
  return 0;
}

static const char *kind_name(zql_schedule_kind_t k)
{
  switch (k) {
  case ZQL_SCHEDULE_NONE: return "none";
  case ZQL_SCHEDULE_EVERY: return "every";
  case ZQL_SCHEDULE_CRON: return "cron";
  case ZQL_SCHEDULE_EVENT: return "event";
  case ZQL_SCHEDULE_CLOSE: return "close";
  case ZQL_SCHEDULE_AFTER: return "after";
  }
  return "?";
}

int zql_sched_info(const zql_sched_t *s, const char *name, zql_sched_info_t *out)
{
  const entry_t *e = find(s, name);
  if (!e)
    return ZQL_E_NO_AGG;
  *out = (zql_sched_info_t){
      .kind = kind_name(e->sc.kind),
      .schedule = e->sc.text ? e->sc.text : "",
      .next_due_ms = e->running ? (e->pending ? e->pending_at : NEVER) : due_of(e),
      .running = e->running,
      .pending = e->pending,
      .failures = e->failures,
      .last_error = e->last_error,
      .last_start_ms = e->last_start,
      .last_end_ms = e->last_end,
  };
  return 0;
}

const char *zql_sched_nth(const zql_sched_t *s, size_t i)
{
  for (size_t k = 0; k < s->n; k++) {
    if (s->v[k]->removed)
      continue;
    if (i-- == 0)
      return s->v[k]->name;
  }
  return NULL;
}

int zql_sched_active(const zql_sched_t *s)
{
  return s->active;
}

/* }==== */
