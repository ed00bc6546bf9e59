/*
 * analyze.c -- the semantic analyzer: raw AST -> checked AST (stage 2b).
 *
 * Pipeline position: scan.l (stage 1, tokens) -> gram.y (stage 2, raw AST) -> here
 * (stage 2b, checked AST) -> planner/ (stage 3, plans). zql_analyze() runs once over all
 * the files of a compilation, because aggregates read each other across files (`from agg
 * X`, `schedule after X`). It fills the CHECKED fields of parser/ast.h in place -- path
 * resolutions, parameter and table declarations, registry entries, output names, reducer
 * parts, static types -- and reports every problem it finds as a diagnostic. It rewrites
 * the tree in one place only: `x == null` becomes `x is null` (warning W3901), and an
 * ad-hoc query's trailing `limit N` is moved from the last compute item to the query when
 * that item's aggregator takes no limit (see "Limit after compute" in docs/language.md).
 * A tree is checked when zql_analyze() returns 0; the planner may then rely on every
 * CHECKED field.
 *
 * Passes:
 *   1. collect: every param, table, reducer and aggregate name of every file goes into a
 *      global symbol table (duplicates are E3010), so statements can refer to
 *      definitions that come later or live in another file. Parameters are the exception:
 *      `$p` sees only the parameters declared before it in its own file.
 *   2. declarations: params (each folded once) and reducers, file by file, so that a
 *      reducer's result type is known wherever it is called.
 *   3. check: every other statement in file order, seeing the params declared before it.
 *      Errors do not stop a pass: a statement reports all it can, and a name that is
 *      unknown is reported once per statement (`seen`), so one typo does not produce a
 *      cascade. Diagnostics are therefore not in text order; the driver sorts them.
 *   4. cycles: a depth-first search over the `from agg` / `schedule after` graph of the
 *      aggregates; each back edge is one E3032 that spells out the cycle.
 *
 * Scopes. A path's root is looked up in one of three modes (ectx_t.mode):
 *   M_ROW   the names of a row: `let` and unwind aliases (bind_t chain, innermost first),
 *           then the source's fields -- the event roots `timestamp type context extra
 *           _id`, `_seq` and `event`, or the key and computed columns of a `from agg`
 *           source (every source must have the name). After a `per` stage the row is
 *           just the entity alias `u` and `u.ITEM...`; what it hides is E3033.
 *   M_OUT   outside the aggregator arguments of compute items, having, rank and the
 *           order by of grouped statements: key names and computed names (only the
 *           earlier ones inside compute). A row name there is E3007. An aggregator call
 *           switches its arguments back to M_ROW.
 *   M_CONST parameter values, option values, constant arguments: parameters and literals
 *           only.
 * Map blocks extend the row scope with their own `let` and `for` names; reducer parts see
 * only their locals (`s`, the input name, `a`, `b`).
 *
 * Placement. ectx_t.clause is set where aggregators are not allowed and names the place
 * for E3005; ectx_t.agg is set inside an aggregator's arguments (another aggregator there
 * is E3006).
 *
 * Constants. const_eval() folds literals, `$params` (whose values are folded once, when
 * the param statement is checked) and arithmetic over them, just far enough to check
 * argument kinds and ranges (hll precision, quantile, limits, durations). It does not
 * rewrite the tree: folding for execution belongs to planner/rewrite.c.
 *
 * Invariants: the parser guarantees trees at most ZQL_MAX_DEPTH deep, so the walkers
 * recurse freely. Nothing here exits or aborts on user input; an arena allocation failure
 * sets `oom` and zql_analyze() returns ZQL_E_NOMEM.
 */
#include "runtime/base/zql_common.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <strings.h>

#include "parser/ast.h"
#include "parser/registry.h"
#include "parser/source.h"
#include "parser/zql_parse.h"
#include "runtime/base/arena.h"
#include "runtime/base/cron.h"
#include "runtime/base/error.h"
#include "runtime/base/regex_guard.h"
#include "runtime/base/strdist.h"
#include "runtime/base/strbuf.h"
#include "runtime/base/tz.h"
#include "runtime/base/tzdb.h"

/* {==== state ============================================================================ */

/* A folded constant (const_eval). */
typedef enum cv_kind {
  CV_UNKNOWN, /* constant, but its value is unknown: an error was already reported */
  CV_INT,
  CV_DOUBLE,
  CV_STRING,
  CV_BOOL,
  CV_NULL,
  CV_DURATION,
  CV_REGEX,
  CV_ARRAY,
  CV_DOC,
  CV_DATE, /* a scalar call that yields a date, such as date("...") */
  CV_ERROR /* the constant evaluates to ERROR (division by zero) */
} cv_kind_t;

typedef struct cval {
  cv_kind_t kind;
  int64_t i;              /* INT, DURATION (milliseconds) */
  double d;               /* DOUBLE */
  bool b;                 /* BOOL */
  const char *s;          /* STRING */
  uint32_t len;
  const zql_node_t *node; /* REGEX, ARRAY, DOC: the literal node */
} cval_t;

/* A global definition: a param, table, reducer or aggregate. */
typedef struct def {
  zql_node_t *node;
  const zql_source_t *src;
  bool folded, is_const; /* params: the value, folded once */
  cval_t val;
  int color;             /* aggregates, cycle pass: 0 new, 1 on the stack, 2 done */
  uint32_t stackpos;
} def_t;

/* Open-addressing string -> def_t table in the arena. */
typedef struct symtab {
  const char **keys;
  def_t **vals;
  uint32_t n, cap;
} symtab_t;

/* Names already reported in the current statement: kind letter + name. */
typedef struct seen {
  char kind;
  const char *name;
  struct seen *next;
} seen_t;

typedef struct analyzer {
  zql_arena_t *arena;
  zql_diags_t *diags;
  const zql_source_t *src; /* the file being checked */
  int first_err;
  bool oom;
  symtab_t params, tables, reducers, aggs; /* pass 1, all files */
  symtab_t fparams;                        /* params declared so far in this file */
  def_t **agglist;                         /* aggregates in definition order */
  uint32_t nagg, capagg;
  seen_t *seen;                            /* reported names, current statement */
  zql_node_t *item;                        /* the statement being checked */
} analyzer_t;

/* A name added to a row scope: a let, an unwind alias, a for variable, a reducer local. */
typedef struct bind {
  const char *name;
  zql_ref_kind_t ref;
  zql_node_t *target;
  zql_type_t type;
  struct bind *next;
} bind_t;

/* The names of a row (see the file comment). */
typedef struct scope {
  const zql_list_t *sources;  /* SOURCE nodes, or NULL */
  bool event;                 /* no sources, but the event fields are visible (on event) */
  bind_t *binds;
  zql_node_t *per;            /* after a per stage: the PER node, the only thing visible */
  const struct scope *hidden; /* what the per stage hides (E3033) */
  const char *names_hint;     /* reducer parts: which names exist there */
} scope_t;

enum { M_ROW, M_OUT, M_CONST };

/* How to check an expression: name lookup mode and aggregator placement. */
typedef struct ectx {
  int mode;
  const scope_t *row;     /* M_ROW names; in M_OUT, the scope of aggregator arguments */
  const zql_list_t *keys; /* M_OUT: group-by keys, or NULL */
  const zql_list_t *outs; /* M_OUT: compute items (or per items) */
  uint32_t nvisible;      /* M_OUT: how many of outs may be referred to */
  zql_node_t *per;        /* M_OUT inside per items: the PER node (its alias is the key) */
  const char *item;       /* M_OUT: the item being checked, for messages */
  const char *clause;     /* set: aggregators are not allowed here (names it for E3005) */
  const char *agg;        /* set: inside this aggregator's arguments (E3006) */
  bool *found_agg;        /* set to true when an aggregator call is seen */
} ectx_t;

/* What a name resolved to. */
typedef struct res {
  zql_ref_kind_t ref;
  zql_node_t *target;
  zql_type_t type;
} res_t;

static void check_expr(analyzer_t *an, const ectx_t *ec, zql_node_t *n);
static void check_call(analyzer_t *an, const ectx_t *ec, zql_node_t *n, int shift);

/* }==== */

/* {==== small helpers ===================================================================== */

static bool streq(const char *a, const char *b)
{
  return a && b && strcmp(a, b) == 0;
}

static bool in_list(const char *s, const char *const *list)
{
  for (; *list; list++)
    if (streq(s, *list))
      return true;
  return false;
}

static void *alloc(analyzer_t *an, size_t n)
{
  void *p = zql_arena_calloc(an->arena, 1, n);
  if (!p)
    an->oom = true;
  return p;
}

static uint32_t hash_str(const char *s)
{
  uint32_t h = 2166136261u;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

static def_t *sym_get(const symtab_t *t, const char *key)
{
  if (!t->cap || !key)
    return NULL;
  for (uint32_t i = hash_str(key) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
    if (!t->keys[i])
      return NULL;
    if (strcmp(t->keys[i], key) == 0)
      return t->vals[i];
  }
}

static bool sym_put(analyzer_t *an, symtab_t *t, const char *key, def_t *val)
{
  if ((t->n + 1) * 2 > t->cap) {
    uint32_t ncap = t->cap ? t->cap * 2 : 16;
    const char **nk = zql_arena_calloc(an->arena, ncap, sizeof *nk);
    def_t **nv = zql_arena_calloc(an->arena, ncap, sizeof *nv);
    if (!nk || !nv) {
      an->oom = true;
      return false;
    }
    for (uint32_t i = 0; i < t->cap; i++) {
      if (!t->keys[i])
        continue;
      uint32_t j = hash_str(t->keys[i]) & (ncap - 1);
      while (nk[j])
        j = (j + 1) & (ncap - 1);
      nk[j] = t->keys[i];
      nv[j] = t->vals[i];
    }
    t->keys = nk;
    t->vals = nv;
    t->cap = ncap;
  }
  uint32_t i = hash_str(key) & (t->cap - 1);
  while (t->keys[i])
    i = (i + 1) & (t->cap - 1);
  t->keys[i] = key;
  t->vals[i] = val;
  t->n++;
  return true;
}


/* The best "did you mean" candidate so far. */
typedef struct suggest {
  const char *name; /* what was written */
  const char *best; /* what to show */
  int dist;
} suggest_t;

static void suggest_init(suggest_t *s, const char *name)
{
  s->name = name;
  s->best = NULL;
  s->dist = INT_MAX;
}

/* Consider candidate `cand`, shown as `show` (NULL: cand itself). */
static void suggest_add(suggest_t *s, const char *cand, const char *show)
{
  if (!cand || !s->name || streq(cand, s->name))
    return;
  if (cand[0] == '_' && s->name[0] != '_')
    return; /* pseudo-fields are never what a typo meant */
  int d = zql_edit_distance(s->name, cand, 2);
  int len = (int)strlen(s->name);
  /* d < len: a one-letter name is never a typo of another one-letter name */
  if (d <= (len <= 4 ? 1 : 2) && d < len && d < s->dist) {
    s->dist = d;
    s->best = show ? show : cand;
  }
}

/* 1-based line of a byte offset. */
static unsigned line_of(const zql_source_t *src, uint32_t off)
{
  uint32_t line = 0, col = 0;
  if (!src)
    return 0;
  zql_source_linecol(src, off, &line, &col);
  return line;
}

/* "FILE:LINE" of a span, for "first defined at" hints (arena string). */
static const char *where_str(analyzer_t *an, const zql_source_t *src, zql_span_t span)
{
  if (!src)
    return "?";
  const char *s = zql_arena_printf(an->arena, "%s:%u", src->name, line_of(src, span.start));
  if (!s)
    an->oom = true;
  return s ? s : "?";
}

/* The source text of a span on one line, shortened to 40 bytes, for hints; NULL when the
 * text spans lines or the source is not at hand. */
static const char *span_text(analyzer_t *an, zql_span_t span)
{
  if (!an->src || span.end <= span.start || span.end > an->src->len)
    return NULL;
  const char *p = an->src->text + span.start;
  size_t n = span.end - span.start;
  if (memchr(p, '\n', n) || memchr(p, '\0', n))
    return NULL;
  char *s = n > 40 ? zql_arena_printf(an->arena, "%.*s...", 37, p)
                   : zql_arena_strndup(an->arena, p, n);
  if (!s)
    an->oom = true;
  return s;
}

/* The span of bytes [off, off+len) inside a string literal at `span` (quotes included),
 * when the literal has no escapes so offsets map one to one; else the whole literal. */
static zql_span_t str_subspan(const analyzer_t *an, zql_span_t span, size_t off, size_t len)
{
  if (!an->src || span.end > an->src->len || span.end < span.start + 2)
    return span;
  const char *p = an->src->text + span.start + 1;
  size_t n = span.end - span.start - 2;
  if (memchr(p, '\\', n) || off > n)
    return span;
  if (len == 0)
    len = 1;
  if (off + len > n)
    len = n - off;
  zql_span_t s = {span.start + 1 + (uint32_t)off, span.start + 1 + (uint32_t)(off + len)};
  if (s.end <= s.start)
    return span;
  return s;
}

/* True when the string literal at `span` spells a NUL byte with an escape. */
static bool literal_has_nul(const analyzer_t *an, zql_span_t span)
{
  if (!an->src || span.end > an->src->len)
    return false;
  const char *p = an->src->text + span.start, *end = an->src->text + span.end;
  for (; p < end; p++) {
    if (*p != '\\' || p + 1 >= end)
      continue;
    p++;
    if (*p == '0')
      return true;
    if (*p == 'x' && end - p >= 3 && p[1] == '0' && p[2] == '0')
      return true;
    if (*p == 'u' && end - p >= 5 && strncmp(p + 1, "0000", 4) == 0)
      return true;
    if (*p == 'u' && p + 1 < end && p[1] == '{') {
      const char *q = p + 2;
      while (q < end && *q == '0')
        q++;
      if (q < end && *q == '}' && q > p + 2)
        return true;
    }
  }
  return false;
}

/* }==== */

/* {==== diagnostics ======================================================================= */

static zql_error_t *vreport_in(analyzer_t *an, const zql_source_t *src, int code,
                               zql_span_t span, const char *fmt, va_list ap)
    ZQL_PRINTF(5, 0);

static zql_error_t *vreport_in(analyzer_t *an, const zql_source_t *src, int code,
                               zql_span_t span, const char *fmt, va_list ap)
{
  char buf[256];
  va_list ap2;
  va_copy(ap2, ap);
  int len = vsnprintf(buf, sizeof buf, fmt, ap);
  const char *msg = buf;
  if (len >= (int)sizeof buf) {
    char *big = zql_arena_alloc(an->arena, (size_t)len + 1);
    if (big) {
      vsnprintf(big, (size_t)len + 1, fmt, ap2);
      msg = big;
    } else {
      an->oom = true;
    }
  }
  va_end(ap2);
  bool warning = strcmp(zql_err_class(code), "warning") == 0;
  if (!warning && !an->first_err)
    an->first_err = code;
  return zql_diag_add(an->diags, src, code, span, "%s", len < 0 ? "?" : msg);
}

static zql_error_t *report(analyzer_t *an, int code, zql_span_t span, const char *fmt, ...)
    ZQL_PRINTF(4, 5);

static zql_error_t *report(analyzer_t *an, int code, zql_span_t span, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  zql_error_t *e = vreport_in(an, an->src, code, span, fmt, ap);
  va_end(ap);
  return e;
}

static zql_error_t *report_in(analyzer_t *an, const zql_source_t *src, int code,
                              zql_span_t span, const char *fmt, ...) ZQL_PRINTF(5, 6);

static zql_error_t *report_in(analyzer_t *an, const zql_source_t *src, int code,
                              zql_span_t span, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  zql_error_t *e = vreport_in(an, src, code, span, fmt, ap);
  va_end(ap);
  return e;
}

static void hint(analyzer_t *an, zql_error_t *e, const char *fmt, ...) ZQL_PRINTF(3, 4);

static void hint(analyzer_t *an, zql_error_t *e, const char *fmt, ...)
{
  if (!e)
    return;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  zql_diag_hint(an->diags, e, "%s", buf);
}

/* True the first time (kind, name) is reported in the current statement. */
static bool once(analyzer_t *an, char kind, const char *name)
{
  for (const seen_t *s = an->seen; s; s = s->next)
    if (s->kind == kind && streq(s->name, name))
      return false;
  seen_t *s = alloc(an, sizeof *s);
  if (s) {
    s->kind = kind;
    s->name = name;
    s->next = an->seen;
    an->seen = s;
  }
  return true;
}

/* }==== */

/* {==== types and names =================================================================== */

static const struct {
  const char *name;
  zql_type_t type;
} type_names[] = {
    {"string", ZQL_T_STRING}, {"number", ZQL_T_NUMBER}, {"double", ZQL_T_DOUBLE},
    {"int", ZQL_T_INT},       {"int64", ZQL_T_INT},     {"bool", ZQL_T_BOOL},
    {"date", ZQL_T_DATE},     {"any", ZQL_T_ANY},       {"doc", ZQL_T_DOC},
    {"array", ZQL_T_ARRAY},
};

static const char *const unit_names[] = {"ms",  "second", "minute",  "hour", "day",
                                         "week", "month", "quarter", "year", NULL};
static const char *const day_names[] = {"monday", "tuesday", "wednesday", "thursday",
                                        "friday", "saturday", "sunday", NULL};
static const char *const event_roots[] = {"timestamp", "type", "context", "extra", "_id",
                                          "_seq", "event", NULL};

static bool is_unit(const char *s)
{
  return in_list(s, unit_names);
}

/* A hint for a misspelled time unit ("days" -> day, "h" -> hour), or NULL. */
static const char *unit_suggest(const char *s)
{
  static const char *const abbr[][2] = {
      {"s", "second"}, {"sec", "second"},  {"secs", "second"}, {"m", "minute"},
      {"min", "minute"}, {"mins", "minute"}, {"h", "hour"},     {"hr", "hour"},
      {"hrs", "hour"},  {"d", "day"},        {"w", "week"},     {"wk", "week"},
      {"mo", "month"},  {"mon", "month"},    {"q", "quarter"},  {"y", "year"},
      {"yr", "year"},   {"millisecond", "ms"}, {"milliseconds", "ms"}, {"msec", "ms"},
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(abbr); i++)
    if (strcasecmp(s, abbr[i][0]) == 0)
      return abbr[i][1];
  size_t n = strlen(s);
  if (n > 1 && (s[n - 1] == 's' || s[n - 1] == 'S')) {
    for (const char *const *u = unit_names; *u; u++)
      if (strlen(*u) == n - 1 && strncasecmp(s, *u, n - 1) == 0)
        return *u;
  }
  suggest_t sg;
  suggest_init(&sg, s);
  for (const char *const *u = unit_names; *u; u++)
    suggest_add(&sg, *u, NULL);
  return sg.best;
}

static bool type_numeric(zql_type_t t)
{
  return t == ZQL_T_INT || t == ZQL_T_DOUBLE || t == ZQL_T_NUMBER;
}

/* Known to be something other than a boolean. */
static bool type_nonbool(zql_type_t t)
{
  return t != ZQL_T_ANY && t != ZQL_T_NULL && t != ZQL_T_STATE && t != ZQL_T_BOOL;
}

/* Never an operand of arithmetic. */
static bool type_nonarith(zql_type_t t)
{
  return t == ZQL_T_BOOL || t == ZQL_T_STRING || t == ZQL_T_REGEX || t == ZQL_T_DOC ||
         t == ZQL_T_ARRAY;
}

/* The type of a value that is one of a or b (??, if, coalesce). */
static zql_type_t type_join(zql_type_t a, zql_type_t b)
{
  if (a == b)
    return a;
  if (a == ZQL_T_NULL)
    return b;
  if (b == ZQL_T_NULL)
    return a;
  if (type_numeric(a) && type_numeric(b))
    return ZQL_T_NUMBER;
  return ZQL_T_ANY;
}

/* "a string", "an int": type names with an article, for messages. */
static const char *a_type(zql_type_t t)
{
  switch (t) {
  case ZQL_T_INT:
    return "an int";
  case ZQL_T_ANY:
    return "any value";
  case ZQL_T_ARRAY:
    return "an array";
  case ZQL_T_NULL:
    return "null";
  default:
    break;
  }
  static const char *const names[] = {"any value", "null", "a boolean", "an int",
                                      "a double", "a number", "a string", "a date",
                                      "a duration", "a regex", "a document", "an array",
                                      "a state"};
  return (unsigned)t < ZQL_ARRAY_LEN(names) ? names[t] : "a value";
}

/* Resolve a TYPE node (E3027). */
static void check_type(analyzer_t *an, zql_node_t *t)
{
  if (!t || t->kind != ZQL_N_TYPE)
    return;
  for (size_t i = 0; i < ZQL_ARRAY_LEN(type_names); i++) {
    if (streq(t->u.typename_.name, type_names[i].name)) {
      t->u.typename_.resolved = type_names[i].type;
      return;
    }
  }
  t->u.typename_.resolved = ZQL_T_ANY;
  zql_error_t *e = report(an, ZQL_E_UNKNOWN_TYPE, t->span, "unknown type '%s'",
                          t->u.typename_.name);
  suggest_t sg;
  suggest_init(&sg, t->u.typename_.name);
  for (size_t i = 0; i < ZQL_ARRAY_LEN(type_names); i++)
    suggest_add(&sg, type_names[i].name, NULL);
  if (sg.best)
    hint(an, e, "did you mean '%s'?", sg.best);
  else
    hint(an, e, "types are string number double int int64 bool date any doc array");
}

static zql_type_t resolved_type(const zql_node_t *t)
{
  if (!t || t->kind != ZQL_N_TYPE)
    return ZQL_T_ANY;
  for (size_t i = 0; i < ZQL_ARRAY_LEN(type_names); i++)
    if (streq(t->u.typename_.name, type_names[i].name))
      return type_names[i].type;
  return ZQL_T_ANY;
}

/* The automatic output name of a key expression: the last field of a plain path, or
 * NULL when the key needs `as` (other expressions, `event`, pseudo-fields like `_seq`). */
static const char *key_auto_name(const zql_node_t *e)
{
  if (!e || e->kind != ZQL_N_PATH)
    return NULL;
  const char *name;
  if (e->u.path.nsteps == 0) {
    name = e->u.path.root;
    if (streq(name, "event"))
      return NULL;
  } else {
    const zql_step_t *last = &e->u.path.steps[e->u.path.nsteps - 1];
    if (last->kind != ZQL_STEP_FIELD)
      return NULL;
    name = last->name;
  }
  if (!name || !name[0] || name[0] == '_')
    return NULL;
  return name;
}

static const char *key_name(const zql_node_t *k)
{
  if (k->u.key.name)
    return k->u.key.name;
  return k->u.key.alias ? k->u.key.alias : key_auto_name(k->u.key.expr);
}

/* }==== */

/* {==== constants ========================================================================= */

static def_t *param_def(analyzer_t *an, const zql_node_t *ref)
{
  def_t *d = sym_get(&an->fparams, ref->u.paramref.name);
  return d && d->node == ref->u.paramref.decl ? d : NULL;
}

static bool cv_numeric(const cval_t *v)
{
  return v->kind == CV_INT || v->kind == CV_DOUBLE;
}

static double cv_double(const cval_t *v)
{
  return v->kind == CV_INT ? (double)v->i : v->d;
}

static const char *cv_kind_name(cv_kind_t k)
{
  static const char *const names[] = {"unknown", "int", "double", "string", "bool",
                                      "null", "duration", "regex", "array", "doc",
                                      "date", "error"};
  return (unsigned)k < ZQL_ARRAY_LEN(names) ? names[k] : "?";
}

/* "an int", "a string": a constant's kind with an article, for messages. */
static const char *cv_a_kind(cv_kind_t k)
{
  static const char *const names[] = {"an unknown value", "an int", "a double", "a string",
                                      "a boolean", "null", "a duration", "a regex",
                                      "an array", "a document", "a date", "an error"};
  return (unsigned)k < ZQL_ARRAY_LEN(names) ? names[k] : "a value";
}

/* The value of a constant as text, for range messages. */
static const char *cv_text(analyzer_t *an, const cval_t *v)
{
  const char *s;
  switch (v->kind) {
  case CV_INT:
    s = zql_arena_printf(an->arena, "%" PRId64, v->i);
    break;
  case CV_DOUBLE:
    s = zql_arena_printf(an->arena, "%.15g", v->d);
    break;
  default:
    s = cv_kind_name(v->kind);
    break;
  }
  return s ? s : "?";
}

/* Arithmetic over folded numbers and durations. False: not foldable (a type error that
 * check_expr reports). */
static bool fold_arith(zql_op_t op, const cval_t *l, const cval_t *r, cval_t *out)
{
  memset(out, 0, sizeof *out);
  bool ldur = l->kind == CV_DURATION, rdur = r->kind == CV_DURATION;
  if (ldur || rdur) {
    /* duration +- duration, duration * number, number * duration, duration / number,
     * duration / duration (a number), duration % duration. A fractional result is
     * truncated toward zero to whole milliseconds, as int() truncates (R4). */
    int64_t a = l->i, b = r->i, x;
    const cval_t *num = ldur ? r : l;
    if (ldur && rdur && (op == ZQL_OP_ADD || op == ZQL_OP_SUB)) {
      if (op == ZQL_OP_ADD ? __builtin_add_overflow(a, b, &x) : __builtin_sub_overflow(a, b, &x))
        return false;
    } else if (ldur && rdur && (op == ZQL_OP_DIV || op == ZQL_OP_MOD)) {
      cval_t li = {.kind = CV_INT, .i = a}, ri = {.kind = CV_INT, .i = b};
      if (!fold_arith(op, &li, &ri, out))
        return false;
      if (op == ZQL_OP_MOD && out->kind == CV_INT)
        out->kind = CV_DURATION;
      return true;
    } else if (op == ZQL_OP_MUL && ldur != rdur && num->kind == CV_INT) {
      if (__builtin_mul_overflow(ldur ? a : b, num->i, &x))
        return false;
    } else if (op == ZQL_OP_DIV && ldur && r->kind == CV_INT) {
      if (b == 0) {
        out->kind = CV_ERROR;
        return true;
      }
      x = (b == -1 && a == INT64_MIN) ? INT64_MIN : a / b;
    } else if ((op == ZQL_OP_MUL && ldur != rdur && num->kind == CV_DOUBLE) ||
               (op == ZQL_OP_DIV && ldur && r->kind == CV_DOUBLE)) {
      double d = (double)(ldur ? a : b);
      if (op == ZQL_OP_DIV && r->d == 0) {
        out->kind = CV_ERROR;
        return true;
      }
      d = op == ZQL_OP_MUL ? d * num->d : d / r->d;
      if (!(d > -9.2e18 && d < 9.2e18)) /* nan, inf or beyond int64 */
        return false;
      x = (int64_t)d;
    } else {
      return false;
    }
    out->kind = CV_DURATION;
    out->i = x;
    return true;
  }
  if (!cv_numeric(l) || !cv_numeric(r))
    return false;
  if (l->kind == CV_INT && r->kind == CV_INT) {
    int64_t a = l->i, b = r->i, x;
    bool ovf = false;
    switch (op) {
    case ZQL_OP_ADD:
      ovf = __builtin_add_overflow(a, b, &x);
      break;
    case ZQL_OP_SUB:
      ovf = __builtin_sub_overflow(a, b, &x);
      break;
    case ZQL_OP_MUL:
      ovf = __builtin_mul_overflow(a, b, &x);
      break;
    case ZQL_OP_DIV:
    case ZQL_OP_MOD:
      if (b == 0) {
        out->kind = CV_ERROR;
        return true;
      }
      if (a == INT64_MIN && b == -1) {
        x = 0;
        ovf = op == ZQL_OP_DIV;
      } else if (op == ZQL_OP_DIV && a % b != 0) { /* an inexact quotient is a double */
        out->kind = CV_DOUBLE;
        out->d = (double)a / (double)b;
        return true;
      } else {
        x = op == ZQL_OP_DIV ? a / b : a % b;
      }
      break;
    default:
      return false;
    }
    if (!ovf) {
      out->kind = CV_INT;
      out->i = x;
      return true;
    }
    /* R4: int64 overflow promotes to double */
  }
  double a = cv_double(l), b = cv_double(r), x;
  switch (op) {
  case ZQL_OP_ADD:
    x = a + b;
    break;
  case ZQL_OP_SUB:
    x = a - b;
    break;
  case ZQL_OP_MUL:
    x = a * b;
    break;
  case ZQL_OP_DIV:
  case ZQL_OP_MOD:
    if (b == 0) {
      out->kind = CV_ERROR;
      return true;
    }
    if (op == ZQL_OP_MOD)
      return false; /* not needed by any check (and would need libm) */
    x = a / b;
    break;
  default:
    return false;
  }
  out->kind = CV_DOUBLE;
  out->d = x;
  return true;
}

/* Fold a checked expression to a constant. Returns false, with *bad set to the first
 * non-constant sub-node, when it is not constant. */
static bool const_eval(analyzer_t *an, const zql_node_t *n, cval_t *cv,
                       const zql_node_t **bad)
{
  memset(cv, 0, sizeof *cv);
  switch (n->kind) {
  case ZQL_N_INT:
    cv->kind = CV_INT;
    cv->i = n->u.lit.i;
    return true;
  case ZQL_N_DOUBLE:
    cv->kind = CV_DOUBLE;
    cv->d = n->u.lit.d;
    return true;
  case ZQL_N_STRING:
    cv->kind = CV_STRING;
    cv->s = n->u.lit.str.s;
    cv->len = n->u.lit.str.len;
    return true;
  case ZQL_N_BOOL:
    cv->kind = CV_BOOL;
    cv->b = n->u.lit.b;
    return true;
  case ZQL_N_NULL:
  case ZQL_N_MISSING_LIT:
    cv->kind = CV_NULL;
    return true;
  case ZQL_N_DURATION:
    cv->kind = CV_DURATION;
    cv->i = n->u.lit.i;
    return true;
  case ZQL_N_REGEX:
    cv->kind = CV_REGEX;
    cv->node = n;
    return true;
  case ZQL_N_PARAMREF: {
    def_t *d = n->u.paramref.decl ? param_def(an, n) : NULL;
    if (d && d->folded && d->is_const)
      *cv = d->val;
    else
      cv->kind = CV_UNKNOWN; /* unknown or non-constant parameter: reported already */
    return true;
  }
  case ZQL_N_UNARY: {
    cval_t a;
    if (!const_eval(an, n->u.unary.arg, &a, bad))
      return false;
    if (a.kind == CV_UNKNOWN || a.kind == CV_ERROR) {
      *cv = a;
      return true;
    }
    if (n->u.unary.op == ZQL_OP_NOT) {
      if (a.kind != CV_BOOL) {
        cv->kind = CV_UNKNOWN;
        return true;
      }
      cv->kind = CV_BOOL;
      cv->b = !a.b;
      return true;
    }
    *cv = a;
    if (n->u.unary.op == ZQL_OP_PLUS)
      return true;
    if (a.kind == CV_INT || a.kind == CV_DURATION) {
      if (a.i == INT64_MIN) {
        if (a.kind == CV_DURATION) {
          cv->kind = CV_UNKNOWN;
          return true;
        }
        cv->kind = CV_DOUBLE;
        cv->d = -(double)a.i;
      } else {
        cv->i = -a.i;
      }
    } else if (a.kind == CV_DOUBLE) {
      cv->d = -a.d;
    } else {
      cv->kind = CV_UNKNOWN; /* a type error, reported by check_expr */
    }
    return true;
  }
  case ZQL_N_BINARY: {
    zql_op_t op = n->u.binary.op;
    if (op != ZQL_OP_ADD && op != ZQL_OP_SUB && op != ZQL_OP_MUL && op != ZQL_OP_DIV &&
        op != ZQL_OP_MOD) {
      *bad = n;
      return false;
    }
    cval_t l, r;
    if (!const_eval(an, n->u.binary.lhs, &l, bad) || !const_eval(an, n->u.binary.rhs, &r, bad))
      return false;
    if (l.kind == CV_UNKNOWN || r.kind == CV_UNKNOWN) {
      cv->kind = CV_UNKNOWN;
      return true;
    }
    if (l.kind == CV_ERROR || r.kind == CV_ERROR) {
      cv->kind = CV_ERROR;
      return true;
    }
    if (!fold_arith(op, &l, &r, cv))
      cv->kind = CV_UNKNOWN;
    return true;
  }
  case ZQL_N_CALL: {
    /* a pure scalar function of constants is constant: date("2024-01-01T00:00:00Z") */
    const zql_func_t *f = n->u.call.func;
    if (!f || f->kind != ZQL_FN_SCALAR || (f->flags & ZQL_FN_VOLATILE) || n->u.call.by ||
        n->u.call.weight || n->u.call.gap) {
      *bad = n;
      return false;
    }
    for (uint32_t i = 0; i < n->u.call.args.n; i++) {
      cval_t x;
      if (zql_func_arg_kind(f, (int)i) != 'u' &&
          !const_eval(an, n->u.call.args.items[i], &x, bad))
        return false;
    }
    cv->kind = f->result == ZQL_T_DATE ? CV_DATE : CV_UNKNOWN;
    return true;
  }
  case ZQL_N_ARRAY:
  case ZQL_N_DOC:
    for (uint32_t i = 0; i < n->u.list.n; i++) {
      const zql_node_t *el = n->u.list.items[i];
      if (el->kind == ZQL_N_DOCFIELD)
        el = el->u.docfield.value;
      cval_t x;
      if (!el || !const_eval(an, el, &x, bad))
        return false;
    }
    cv->kind = n->kind == ZQL_N_ARRAY ? CV_ARRAY : CV_DOC;
    cv->node = n;
    return true;
  default:
    *bad = n;
    return false;
  }
}

/* }==== */

/* {==== lexical checks: regexes, dates, durations, cron, templates ======================== */

/* Compile a pattern as the engine will (POSIX ERE). Returns true when it compiles; else
 * writes regerror's text to err. */
static bool regex_compiles(analyzer_t *an, const char *pat, const char *flags, char *err,
                           size_t errsize)
{
  int cflags = REG_EXTENDED | REG_NOSUB;
  bool extended = false;
  for (const char *f = flags ? flags : ""; *f; f++) {
    if (*f == 'i')
      cflags |= REG_ICASE;
    else if (*f == 'm')
      cflags |= REG_NEWLINE;
    else if (*f == 'x')
      extended = true;
  }
  const char *p = pat;
  if (extended) { /* x: drop unescaped whitespace and #-comments outside brackets */
    size_t n = strlen(pat);
    char *buf = zql_arena_alloc(an->arena, n + 1);
    if (!buf) {
      an->oom = true;
      return true;
    }
    size_t o = 0;
    bool bracket = false;
    for (size_t i = 0; i < n; i++) {
      char c = pat[i];
      if (c == '\\' && i + 1 < n) {
        buf[o++] = c;
        buf[o++] = pat[++i];
        continue;
      }
      if (bracket) {
        if (c == ']')
          bracket = false;
        buf[o++] = c;
        continue;
      }
      if (c == '[') {
        bracket = true;
        buf[o++] = c;
        if (i + 1 < n && pat[i + 1] == '^')
          buf[o++] = pat[++i];
        if (i + 1 < n && pat[i + 1] == ']')
          buf[o++] = pat[++i];
        continue;
      }
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
        continue;
      if (c == '#') {
        while (i + 1 < n && pat[i + 1] != '\n')
          i++;
        continue;
      }
      buf[o++] = c;
    }
    buf[o] = '\0';
    p = buf;
  }
  if (zql_regex_guard(p, err, errsize) != 0)
    return false;
  regex_t re;
  int rc = regcomp(&re, p, cflags);
  if (rc != 0) {
    regerror(rc, &re, err, errsize);
    if (errsize > 0)
      err[0] = (char)tolower((unsigned char)err[0]); /* message style: lowercase */
    return false;
  }
  regfree(&re);
  return true;
}

/* Check a regex literal's flags and pattern (E3022). */
static void check_regex_literal(analyzer_t *an, zql_node_t *n)
{
  const char *flags = n->u.regex.flags ? n->u.regex.flags : "";
  bool ok = true;
  for (const char *f = flags; *f; f++) {
    if (!strchr("imsx", *f)) {
      zql_error_t *e = report(an, ZQL_E_BAD_REGEX, n->span, "unknown regex flag '%c'", *f);
      hint(an, e, "the flags are i (ignore case), m (multi-line), s (dot matches newline) "
                  "and x (extended)");
      ok = false;
      break;
    }
  }
  char err[128];
  if (ok && !regex_compiles(an, n->u.regex.pattern ? n->u.regex.pattern : "", flags, err,
                            sizeof err))
    report(an, ZQL_E_BAD_REGEX, n->span, "invalid regular expression: %s", err);
}

/* Check a regex given as a constant string (E3022). */
static bool check_regex_string(analyzer_t *an, const cval_t *v, zql_span_t span)
{
  if (strlen(v->s) != v->len) {
    report(an, ZQL_E_BAD_REGEX, span, "regular expression contains a NUL byte");
    return false;
  }
  char err[128];
  if (!regex_compiles(an, v->s, "", err, sizeof err)) {
    report(an, ZQL_E_BAD_REGEX, span, "invalid regular expression: %s", err);
    return false;
  }
  return true;
}

/* Check an ISO-8601 date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM[:SS[.f]]) with an
 * optional offset (Z, +HH:MM, +HHMM, +HH) with zql's one date parser
 * (zql_iso8601_scan, runtime/base/tz.h); *has_offset tells whether it has Z or an offset. */
static bool parse_iso(const char *s, bool *has_offset)
{
  zql_iso_t iso;
  if (zql_iso8601_scan(s, strlen(s), &iso, NULL) < 0)
    return false;
  *has_offset = iso.has_offset;
  return true;
}

/* Parse duration text ("5m", "1h30m") as the scanner does: int+unit parts, units
 * w d h m s ms in decreasing order. */
static bool parse_duration(const char *s, size_t n, int64_t *out)
{
  static const int64_t unit_ms[] = {604800000, 86400000, 3600000, 60000, 1000, 1};
  size_t i = 0;
  int last = -1;
  int64_t total = 0;
  if (n == 0)
    return false;
  while (i < n) {
    if (!isdigit((unsigned char)s[i]))
      return false;
    int64_t v = 0;
    while (i < n && isdigit((unsigned char)s[i])) {
      if (__builtin_mul_overflow(v, (int64_t)10, &v) ||
          __builtin_add_overflow(v, (int64_t)(s[i] - '0'), &v))
        return false;
      i++;
    }
    if (i >= n)
      return false;
    int u;
    if (s[i] == 'm' && i + 1 < n && s[i + 1] == 's') {
      u = 5;
      i += 2;
    } else {
      const char *units = "wdhms";
      const char *p = strchr(units, s[i]);
      if (!p || !*p)
        return false;
      u = (int)(p - units);
      i++;
    }
    if (u <= last)
      return false;
    last = u;
    int64_t ms;
    if (__builtin_mul_overflow(v, unit_ms[u], &ms) || __builtin_add_overflow(total, ms, &total))
      return false;
  }
  *out = total;
  return true;
}

static const char *const cron_field_names[5] = {"minute", "hour", "day-of-month", "month",
                                                "day-of-week"};
static const int cron_lo[5] = {0, 0, 1, 1, 0};
static const int cron_hi[5] = {59, 23, 31, 12, 7};

/* One cron value (a number, or a month/day name in fields 3 and 4). */
static bool cron_value(int field, const char **p, const char *end, int *v)
{
  static const char *const months[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};
  static const char *const days[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
  const char *s = *p;
  if (s < end && isdigit((unsigned char)*s)) {
    int x = 0;
    while (s < end && isdigit((unsigned char)*s)) {
      x = x * 10 + (*s - '0');
      if (x > 9999)
        return false;
      s++;
    }
    *v = x;
    *p = s;
    return true;
  }
  if ((field == 3 || field == 4) && end - s >= 3 &&
      !(end - s > 3 && isalpha((unsigned char)s[3]))) {
    const char *const *names = field == 3 ? months : days;
    int count = field == 3 ? 12 : 7;
    for (int i = 0; i < count; i++) {
      if (strncasecmp(s, names[i], 3) == 0) {
        *v = (field == 3 ? 1 : 0) + i;
        *p = s + 3;
        return true;
      }
    }
  }
  return false;
}

/* One cron field: a comma list of `*`, `N`, `A-B`, each optionally `/STEP`. */
static bool cron_field(int field, const char *s, const char *end)
{
  const char *p = s;
  for (;;) {
    const char *item_end = memchr(p, ',', (size_t)(end - p));
    if (!item_end)
      item_end = end;
    if (item_end == p)
      return false;
    const char *q = p;
    int lo, hi;
    if (*q == '*') {
      q++;
      lo = cron_lo[field];
      hi = cron_hi[field];
    } else {
      if (!cron_value(field, &q, item_end, &lo))
        return false;
      hi = lo;
      if (q < item_end && *q == '-') {
        q++;
        if (!cron_value(field, &q, item_end, &hi))
          return false;
      }
    }
    if (lo < cron_lo[field] || hi > cron_hi[field] || lo > hi)
      return false;
    if (q < item_end && *q == '/') {
      q++;
      int step = 0;
      if (q >= item_end || !isdigit((unsigned char)*q))
        return false;
      while (q < item_end && isdigit((unsigned char)*q)) {
        step = step * 10 + (*q - '0');
        if (step > 9999)
          return false;
        q++;
      }
      if (step < 1 || step > cron_hi[field])
        return false;
    }
    if (q != item_end)
      return false;
    if (item_end == end)
      return true;
    p = item_end + 1;
  }
}

/* Check a `schedule cron "..."` string (E3018). */
static void check_cron(analyzer_t *an, const char *s, zql_span_t span)
{
  static const char *const shortcuts[] = {"@hourly", "@daily",   "@weekly",   "@monthly",
                                          "@yearly", "@annually", "@midnight", NULL};
  const char *p = s;
  while (*p == ' ' || *p == '\t')
    p++;
  size_t n = strlen(p);
  while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
    n--;
  size_t off = (size_t)(p - s);
  if (n > 0 && p[0] == '@') {
    if (n > 7 && strncmp(p, "@every", 6) == 0 && (p[6] == ' ' || p[6] == '\t')) {
      const char *d = p + 6;
      while (*d == ' ' || *d == '\t')
        d++;
      int64_t ms;
      size_t dn = n - (size_t)(d - p);
      if (!parse_duration(d, dn, &ms) || ms <= 0) {
        zql_span_t sp = str_subspan(an, span, off + (size_t)(d - p), dn);
        zql_error_t *e = report(an, ZQL_E_BAD_CRON, sp, "invalid duration '%.*s' in '@every'",
                                (int)dn, d);
        hint(an, e, "write a positive duration such as '@every 15m'");
      }
      return;
    }
    for (const char *const *sc = shortcuts; *sc; sc++)
      if (strlen(*sc) == n && strncmp(p, *sc, n) == 0)
        return;
    zql_error_t *e = report(an, ZQL_E_BAD_CRON, str_subspan(an, span, off, n),
                            "unknown cron shortcut '%.*s'", (int)n, p);
    hint(an, e, "shortcuts are @hourly @daily @weekly @monthly @yearly and @every DURATION");
    return;
  }
  const char *fs[6], *fe[6];
  int nf = 0;
  const char *q = p, *end = p + n;
  while (q < end) {
    while (q < end && (*q == ' ' || *q == '\t'))
      q++;
    if (q >= end)
      break;
    const char *b = q;
    while (q < end && *q != ' ' && *q != '\t')
      q++;
    if (nf < 6) {
      fs[nf] = b;
      fe[nf] = q;
    }
    nf++;
  }
  if (nf != 5) {
    zql_error_t *e = report(an, ZQL_E_BAD_CRON, span, "cron expression has %d field%s, expected 5",
                            nf, nf == 1 ? "" : "s");
    hint(an, e, "write minute hour day-of-month month day-of-week, such as \"0 * * * *\", or "
                "@hourly @daily @weekly @monthly @yearly");
    return;
  }
  bool bad = false;
  for (int i = 0; i < 5; i++) {
    if (cron_field(i, fs[i], fe[i]))
      continue;
    bad = true;
    size_t len = (size_t)(fe[i] - fs[i]);
    zql_error_t *e = report(an, ZQL_E_BAD_CRON, str_subspan(an, span, (size_t)(fs[i] - s), len),
                            "invalid %s field '%.*s' in cron expression", cron_field_names[i],
                            (int)len, fs[i]);
    hint(an, e, "the %s field takes %d-%d%s, '*', ranges 'a-b', steps '*/n' and lists 'a,b'",
         cron_field_names[i], cron_lo[i], cron_hi[i],
         i == 3 ? " or jan-dec" : i == 4 ? " or sun-sat" : "");
  }
  /* every field is valid: the scheduler's parser also rejects what can never fire, such
   * as "0 0 30 2 *" (February 30) */
  zql_cron_t c;
  zql_strbuf_t why = ZQL_STRBUF_INIT;
  size_t col = 0;
  if (!bad && zql_cron_parse(s, &c, &why, &col) != 0) {
    size_t at = col < strlen(s) ? col : 0;
    zql_error_t *e = report(an, ZQL_E_BAD_CRON, str_subspan(an, span, at, strlen(s) - at),
                            "%s", why.len ? why.buf : "invalid cron expression");
    hint(an, e, "the expression would never run");
  }
  zql_strbuf_release(&why);
}

/* strftime conversions accepted in key templates. */
static bool strftime_ok(const char *fmt, size_t n, size_t *bad)
{
  static const char conv[] = "aAbBcCdDeFgGhHIjklmMnpPrRsStTuUVwWxXyYzZ%+";
  for (size_t i = 0; i < n; i++) {
    if (fmt[i] != '%')
      continue;
    size_t at = i;
    i++;
    if (i < n && (fmt[i] == 'E' || fmt[i] == 'O'))
      i++;
    if (i >= n || !strchr(conv, fmt[i]) || fmt[i] == '\0') {
      *bad = at;
      return false;
    }
  }
  return true;
}

/* Check a key template against the output names (E3023). names is NULL-terminated. */
static void check_key_template(analyzer_t *an, const char *tpl, zql_span_t span,
                               const char *const *names, bool map)
{
  size_t n = strlen(tpl);
  for (size_t i = 0; i < n; i++) {
    char c = tpl[i];
    if (c == '}') {
      if (i + 1 < n && tpl[i + 1] == '}') {
        i++;
        continue;
      }
      zql_error_t *e = report(an, ZQL_E_BAD_KEY_TEMPLATE, str_subspan(an, span, i, 1),
                              "unmatched '}' in key template");
      hint(an, e, "write '}}' for a literal brace");
      return;
    }
    if (c != '{')
      continue;
    if (i + 1 < n && tpl[i + 1] == '{') {
      i++;
      continue;
    }
    size_t j = i + 1;
    while (j < n && tpl[j] != '}' && tpl[j] != '{')
      j++;
    if (j >= n || tpl[j] == '{') {
      zql_error_t *e = report(an, ZQL_E_BAD_KEY_TEMPLATE, str_subspan(an, span, i, 1),
                              "unclosed '{' in key template");
      hint(an, e, "write '{name}' or '{name:%%fmt}', and '{{' for a literal brace");
      return;
    }
    const char *body = tpl + i + 1;
    size_t blen = j - i - 1;
    const char *colon = memchr(body, ':', blen);
    size_t nlen = colon ? (size_t)(colon - body) : blen;
    char *name = zql_arena_strndup(an->arena, body, nlen);
    if (!name) {
      an->oom = true;
      return;
    }
    bool known = false;
    for (const char *const *k = names; *k; k++)
      if (streq(*k, name))
        known = true;
    if (!known) {
      zql_span_t sp = str_subspan(an, span, i, j - i + 1);
      zql_error_t *e;
      if (nlen == 0) {
        e = report(an, ZQL_E_BAD_KEY_TEMPLATE, sp, "empty field name in key template");
      } else {
        e = report(an, ZQL_E_BAD_KEY_TEMPLATE, sp, "key template names '%s', which is not %s",
                   name, map ? "a table index" : "a key");
      }
      suggest_t sg;
      suggest_init(&sg, name);
      for (const char *const *k = names; *k; k++)
        suggest_add(&sg, *k, NULL);
      if (sg.best) {
        hint(an, e, "did you mean '%s'?", sg.best);
      } else if (!names[0]) {
        hint(an, e, "this statement has no %s to name", map ? "table index" : "group-by key");
      } else {
        zql_strbuf_t sb = ZQL_STRBUF_INIT;
        for (const char *const *k = names; *k; k++)
          zql_strbuf_addf(&sb, "%s'%s'", k == names ? "" : ", ", *k);
        hint(an, e, "the names are %s", sb.buf);
        zql_strbuf_release(&sb);
      }
    } else if (colon) {
      size_t flen = blen - nlen - 1, bad = 0;
      if (flen == 0 || !strftime_ok(colon + 1, flen, &bad)) {
        size_t at = flen == 0 ? (size_t)(colon - tpl) : (size_t)(colon + 1 - tpl) + bad;
        zql_error_t *e = report(an, ZQL_E_BAD_KEY_TEMPLATE, str_subspan(an, span, at, 2),
                                flen == 0 ? "empty format in key template"
                                          : "invalid strftime conversion in key template");
        hint(an, e, "write a strftime format such as '{%s:%%Y-%%m-%%d}'", name);
      }
    }
    i = j;
  }
}

/* }==== */

/* {==== name resolution =================================================================== */

static bind_t *add_bind(analyzer_t *an, bind_t *next, const char *name, zql_ref_kind_t ref,
                        zql_node_t *target, zql_type_t type)
{
  bind_t *b = alloc(an, sizeof *b);
  if (!b)
    return next;
  b->name = name;
  b->ref = ref;
  b->target = target;
  b->type = type;
  b->next = next;
  return b;
}

static const bind_t *find_bind(const bind_t *b, const char *name)
{
  for (; b; b = b->next)
    if (streq(b->name, name))
      return b;
  return NULL;
}

static bool event_root(const char *name, res_t *r)
{
  if (!in_list(name, event_roots))
    return false;
  r->target = NULL;
  if (streq(name, "_seq")) {
    r->ref = ZQL_REF_SEQ;
    r->type = ZQL_T_INT;
  } else if (streq(name, "event")) {
    r->ref = ZQL_REF_ROW;
    r->type = ZQL_T_DOC;
  } else {
    r->ref = ZQL_REF_EVENT;
    r->type = ZQL_T_ANY;
  }
  return true;
}

/* A column of a `from agg` source: callback per column; true stops the walk. */
typedef bool (*col_fn)(void *arg, const char *name, zql_node_t *target, zql_type_t type);

/* The columns a map aggregate's tables give its readers: index fields, and `value`. */
static bool emit_columns(analyzer_t *an, zql_node_t *n, col_fn fn, void *arg)
{
  if (!n)
    return false;
  switch (n->kind) {
  case ZQL_N_BLOCK:
    for (uint32_t i = 0; i < n->u.list.n; i++)
      if (emit_columns(an, n->u.list.items[i], fn, arg))
        return true;
    return false;
  case ZQL_N_IF:
  case ZQL_N_WHEN:
    return emit_columns(an, n->u.cond_stmt.then, fn, arg) ||
           emit_columns(an, n->u.cond_stmt.else_, fn, arg);
  case ZQL_N_FOR:
    return emit_columns(an, n->u.for_stmt.body, fn, arg);
  case ZQL_N_EMIT: {
    def_t *t = sym_get(&an->tables, n->u.emit.table);
    if (!t)
      return false;
    const zql_list_t *fl = &t->node->u.table.fields;
    for (uint32_t i = 0; i < fl->n; i++) {
      zql_node_t *f = fl->items[i];
      if (fn(arg, f->u.field.name, f, resolved_type(f->u.field.type)))
        return true;
    }
    return fn(arg, "value", t->node, ZQL_T_STATE);
  }
  default:
    return false;
  }
}

/* Walk the columns of aggregate `def` as a `from agg` source: its keys (final values),
 * its computed fields (states), or for a map aggregate its tables' columns. */
static bool source_columns(analyzer_t *an, zql_node_t *def, col_fn fn, void *arg)
{
  const zql_list_t *keys = &def->u.query.keys;
  for (uint32_t i = 0; i < keys->n; i++) {
    zql_node_t *k = keys->items[i];
    const char *name = key_name(k);
    zql_node_t *e = k->u.key.expr;
    zql_type_t t = !e ? ZQL_T_ANY : e->kind == ZQL_N_BUCKET ? ZQL_T_DATE : e->type;
    if (name && fn(arg, name, k, t == ZQL_T_STATE ? ZQL_T_ANY : t))
      return true;
  }
  const zql_list_t *items = &def->u.query.compute;
  for (uint32_t i = 0; i < items->n; i++)
    if (fn(arg, items->items[i]->u.aggitem.name, items->items[i], ZQL_T_STATE))
      return true;
  return emit_columns(an, def->u.query.map, fn, arg);
}

typedef struct colfind {
  const char *name;
  res_t *r;
} colfind_t;

static bool colfind_fn(void *arg, const char *name, zql_node_t *target, zql_type_t type)
{
  colfind_t *c = arg;
  if (!streq(name, c->name))
    return false;
  c->r->ref = ZQL_REF_AGGCOL;
  c->r->target = target;
  c->r->type = type;
  return true;
}

static bool colsuggest_fn(void *arg, const char *name, zql_node_t *target, zql_type_t type)
{
  (void)target;
  (void)type;
  suggest_add(arg, name, NULL);
  return false;
}

enum { L_FOUND, L_NONE, L_HIDDEN, L_PARTIAL };

/* Look a root name up in a row scope, without reporting. L_PARTIAL: some sources have
 * it and `*missing` (if given) is one that does not. */
static int lookup_row(analyzer_t *an, const scope_t *sc, const char *name, res_t *r,
                      const zql_node_t **missing)
{
  if (!sc)
    return L_NONE;
  const bind_t *b = find_bind(sc->binds, name);
  if (b) {
    r->ref = b->ref;
    r->target = b->target;
    r->type = b->type;
    return L_FOUND;
  }
  if (sc->per) {
    if (streq(name, sc->per->u.per.alias)) {
      r->ref = ZQL_REF_PER;
      r->target = sc->per;
      r->type = sc->per->u.per.key ? sc->per->u.per.key->type : ZQL_T_ANY;
      return L_FOUND;
    }
    res_t h;
    int st = lookup_row(an, sc->hidden, name, &h, NULL);
    return st == L_FOUND || st == L_PARTIAL ? L_HIDDEN : L_NONE;
  }
  if (sc->sources && sc->sources->n > 0) {
    bool found = false, all = true;
    for (uint32_t i = 0; i < sc->sources->n; i++) {
      zql_node_t *s = sc->sources->items[i];
      res_t one = {ZQL_REF_EVENT, NULL, ZQL_T_ANY};
      bool ok;
      if (!s->u.source.is_agg) {
        /* an unknown source was reported: accept its names to avoid a cascade */
        ok = streq(s->u.source.name, "event") ? event_root(name, &one) : true;
      } else if (!s->u.source.def) {
        one.ref = ZQL_REF_AGGCOL;
        ok = true;
      } else {
        colfind_t cf = {name, &one};
        ok = source_columns(an, s->u.source.def, colfind_fn, &cf);
      }
      if (ok && !found) {
        *r = one;
        found = true;
      } else if (!ok) {
        all = false;
        if (missing && !*missing)
          *missing = s;
      }
    }
    return found ? (all ? L_FOUND : L_PARTIAL) : L_NONE;
  }
  if (sc->event && event_root(name, r))
    return L_FOUND;
  return L_NONE;
}

static bool scope_sees_events(const scope_t *sc)
{
  if (!sc || sc->per)
    return false;
  if (sc->event)
    return true;
  if (!sc->sources)
    return false;
  for (uint32_t i = 0; i < sc->sources->n; i++)
    if (!sc->sources->items[i]->u.source.is_agg)
      return true;
  return false;
}

static bool scope_has_agg_source(const scope_t *sc)
{
  for (; sc; sc = sc->hidden) {
    if (!sc->sources)
      continue;
    for (uint32_t i = 0; i < sc->sources->n; i++)
      if (sc->sources->items[i]->u.source.is_agg)
        return true;
  }
  return false;
}

/* E3001 for a path root, with the nearest known name as a hint. */
static void unknown_name(analyzer_t *an, const ectx_t *ec, const zql_node_t *n)
{
  const char *name = n->u.path.root;
  if (!once(an, 'n', name))
    return;
  zql_error_t *e = report(an, ZQL_E_UNKNOWN_NAME, n->u.path.root_span, "unknown name '%s'",
                          name);
  if (sym_get(&an->fparams, name)) {
    hint(an, e, "did you mean '$%s'?", name);
    return;
  }
  suggest_t sg;
  suggest_init(&sg, name);
  if (ec->mode == M_OUT) {
    if (ec->keys)
      for (uint32_t i = 0; i < ec->keys->n; i++)
        suggest_add(&sg, key_name(ec->keys->items[i]), NULL);
    if (ec->outs)
      for (uint32_t i = 0; i < ec->outs->n; i++)
        suggest_add(&sg, ec->outs->items[i]->u.aggitem.name, NULL);
    if (ec->per)
      suggest_add(&sg, ec->per->u.per.alias, NULL);
  }
  const scope_t *sc = ec->row;
  if (sc) {
    for (const bind_t *b = sc->binds; b; b = b->next)
      suggest_add(&sg, b->name, NULL);
    if (sc->per)
      suggest_add(&sg, sc->per->u.per.alias, NULL);
    else if (scope_sees_events(sc))
      for (const char *const *r = event_roots; *r; r++)
        suggest_add(&sg, *r, NULL);
    if (!sc->per && sc->sources)
      for (uint32_t i = 0; i < sc->sources->n; i++) {
        zql_node_t *s = sc->sources->items[i];
        if (s->u.source.is_agg && s->u.source.def)
          source_columns(an, s->u.source.def, colsuggest_fn, &sg);
      }
  }
  for (uint32_t i = 0; i < an->fparams.cap; i++) {
    const char *p = an->fparams.keys[i];
    if (p && zql_edit_distance(name, p, 2) < sg.dist) {
      const char *show = zql_arena_printf(an->arena, "$%s", p);
      if (show)
        suggest_add(&sg, p, show);
    }
  }
  if (sg.best)
    hint(an, e, "did you mean '%s'?", sg.best);
  else if (scope_sees_events(sc))
    hint(an, e, "did you mean 'context.%s'?", name);
  else if (sc && sc->names_hint)
    hint(an, e, "%s", sc->names_hint);
}

/* After `per ... as u`: `u.NAME` must name a per item. */
static bool resolve_per_item(analyzer_t *an, const zql_node_t *n, res_t *r)
{
  zql_node_t *per = r->target;
  const zql_step_t *st = &n->u.path.steps[0];
  const zql_list_t *items = &per->u.per.items;
  if (st->kind == ZQL_STEP_FIELD) {
    for (uint32_t i = 0; i < items->n; i++) {
      zql_node_t *it = items->items[i];
      if (streq(it->u.aggitem.name, st->name)) {
        r->target = it;
        r->type = it->u.aggitem.expr ? it->u.aggitem.expr->type : ZQL_T_ANY;
        return true;
      }
    }
  }
  const char *alias = per->u.per.alias;
  if (!once(an, 'r', st->kind == ZQL_STEP_FIELD ? st->name : "[]"))
    return false;
  zql_error_t *e;
  if (st->kind == ZQL_STEP_FIELD)
    e = report(an, ZQL_E_UNKNOWN_NAME, st->span, "unknown per-entity result '%s.%s'", alias,
               st->name);
  else
    e = report(an, ZQL_E_UNKNOWN_NAME, st->span, "'%s' is followed by an index, not a per "
               "item name", alias);
  suggest_t sg;
  suggest_init(&sg, st->kind == ZQL_STEP_FIELD ? st->name : "");
  for (uint32_t i = 0; i < items->n; i++)
    suggest_add(&sg, items->items[i]->u.aggitem.name, NULL);
  if (sg.best) {
    hint(an, e, "did you mean '%s.%s'?", alias, sg.best);
  } else {
    zql_strbuf_t sb = ZQL_STRBUF_INIT;
    for (uint32_t i = 0; i < items->n; i++)
      zql_strbuf_addf(&sb, "%s'%s.%s'", i ? ", " : "", alias, items->items[i]->u.aggitem.name);
    hint(an, e, "the per stage computes %s", sb.buf);
    zql_strbuf_release(&sb);
  }
  return false;
}

static void hidden_by_per(analyzer_t *an, const scope_t *sc, const zql_node_t *n)
{
  const char *name = n->u.path.root;
  if (!once(an, 'h', name))
    return;
  zql_error_t *e = report(an, ZQL_E_PER_SCOPE, n->u.path.root_span,
                          "'%s' is not visible after the per stage", name);
  const char *alias = sc && sc->per ? sc->per->u.per.alias : "u";
  hint(an, e, "after 'per ... as %s', only '%s' and '%s.NAME' are visible; compute what you "
              "need inside 'per { }'", alias, alias, alias);
}

/* Resolve a path root in a row scope, reporting E3001/E3033. */
static bool resolve_row(analyzer_t *an, const ectx_t *ec, const scope_t *sc, zql_node_t *n,
                        res_t *r)
{
  const char *name = n->u.path.root;
  const zql_node_t *missing = NULL;
  int st = lookup_row(an, sc, name, r, &missing);
  switch (st) {
  case L_FOUND:
    if (r->ref == ZQL_REF_PER && n->u.path.nsteps > 0)
      return resolve_per_item(an, n, r);
    return true;
  case L_HIDDEN:
    hidden_by_per(an, sc, n);
    return false;
  case L_PARTIAL:
    if (once(an, 'n', name)) {
      zql_error_t *e = report(an, ZQL_E_UNKNOWN_NAME, n->u.path.root_span,
                              "'%s' is not a name of every source", name);
      if (missing)
        hint(an, e, "source '%s%s' has no '%s'", missing->u.source.is_agg ? "agg " : "",
             missing->u.source.name, name);
    }
    return false;
  default:
    unknown_name(an, ec, n);
    return false;
  }
}

static bool path_equal(const zql_node_t *a, const zql_node_t *b)
{
  if (!a || !b || a->kind != ZQL_N_PATH || b->kind != ZQL_N_PATH ||
      !streq(a->u.path.root, b->u.path.root) || a->u.path.nsteps != b->u.path.nsteps)
    return false;
  for (uint32_t i = 0; i < a->u.path.nsteps; i++) {
    const zql_step_t *x = &a->u.path.steps[i], *y = &b->u.path.steps[i];
    if (x->kind != y->kind || (x->kind == ZQL_STEP_FIELD && !streq(x->name, y->name)) ||
        (x->kind == ZQL_STEP_INDEX && x->index != y->index))
      return false;
  }
  return true;
}

/* Resolve a path root outside aggregator arguments: keys and visible computed names. */
static bool resolve_out(analyzer_t *an, const ectx_t *ec, zql_node_t *n, res_t *r)
{
  const char *name = n->u.path.root;
  if (ec->keys) {
    for (uint32_t i = 0; i < ec->keys->n; i++) {
      zql_node_t *k = ec->keys->items[i];
      if (streq(key_name(k), name)) {
        r->ref = ZQL_REF_KEY;
        r->target = k;
        r->type = k->u.key.expr ? k->u.key.expr->type : ZQL_T_ANY;
        return true;
      }
    }
  }
  if (ec->per && streq(ec->per->u.per.alias, name)) {
    r->ref = ZQL_REF_PER;
    r->target = ec->per;
    r->type = ec->per->u.per.key ? ec->per->u.per.key->type : ZQL_T_ANY;
    return true;
  }
  if (ec->outs) {
    for (uint32_t i = 0; i < ec->outs->n; i++) {
      zql_node_t *it = ec->outs->items[i];
      if (!streq(it->u.aggitem.name, name))
        continue;
      if (i < ec->nvisible) {
        r->ref = ZQL_REF_OUTPUT;
        r->target = it;
        r->type = it->u.aggitem.expr ? it->u.aggitem.expr->type : ZQL_T_ANY;
        return true;
      }
      if (once(an, 'o', name)) {
        zql_error_t *e;
        if (streq(ec->item, name)) {
          e = report(an, ZQL_E_NOT_AGGREGATED, n->u.path.root_span,
                     "computed field '%s' refers to itself", name);
          hint(an, e, "a computed field can use keys and earlier computed fields, not itself");
        } else {
          e = report(an, ZQL_E_NOT_AGGREGATED, n->u.path.root_span,
                     "'%s' is computed after '%s'", name, ec->item ? ec->item : "this item");
          hint(an, e, "a computed field can use keys and earlier computed fields only; move "
                      "'%s' before it", name);
        }
      }
      return false;
    }
  }
  res_t rr;
  const zql_node_t *missing = NULL;
  int st = lookup_row(an, ec->row, name, &rr, &missing);
  if (st == L_FOUND || st == L_PARTIAL) {
    if (once(an, 'o', name)) {
      const char *text = span_text(an, n->span);
      if (!text)
        text = name;
      zql_error_t *e = report(an, ZQL_E_NOT_AGGREGATED, n->span,
                              "'%s' must appear in an aggregate or a key", text);
      const zql_node_t *match = NULL;
      if (ec->keys)
        for (uint32_t i = 0; i < ec->keys->n && !match; i++)
          if (path_equal(ec->keys->items[i]->u.key.expr, n) && key_name(ec->keys->items[i]))
            match = ec->keys->items[i];
      if (match)
        hint(an, e, "refer to the key by its name '%s'", key_name(match));
      else if (ec->keys)
        hint(an, e, "use it inside an aggregator, such as 'first(%s)', or add it to 'group by'",
             text);
      else
        hint(an, e, "use it inside an aggregator, such as 'first(%s)'", text);
    }
    return false;
  }
  if (st == L_HIDDEN) {
    hidden_by_per(an, ec->row, n);
    return false;
  }
  unknown_name(an, ec, n);
  return false;
}

static void check_path(analyzer_t *an, const ectx_t *ec, zql_node_t *n)
{
  const char *name = n->u.path.root;
  n->type = ZQL_T_ANY;
  if (ec->mode == M_CONST) {
    if (!once(an, 'c', name))
      return;
    const char *text = span_text(an, n->span);
    zql_error_t *e = report(an, ZQL_E_NOT_CONSTANT, n->span, "'%s' is not a constant",
                            text ? text : name);
    if (sym_get(&an->fparams, name))
      hint(an, e, "parameters are written '$%s'", name);
    else
      hint(an, e, "a constant is a literal, a '$param' or arithmetic over them");
    return;
  }
  res_t r = {ZQL_REF_UNRESOLVED, NULL, ZQL_T_ANY};
  bool ok = ec->mode == M_OUT ? resolve_out(an, ec, n, &r) : resolve_row(an, ec, ec->row, n, &r);
  if (!ok)
    return;
  n->u.path.ref = r.ref;
  n->u.path.target = r.target;
  if (r.ref == ZQL_REF_LET && r.target)
    r.target->u.decl.used = true;
  uint32_t own = r.ref == ZQL_REF_PER && r.target && r.target->kind == ZQL_N_AGGITEM ? 1 : 0;
  n->type = n->u.path.nsteps == own ? r.type : ZQL_T_ANY;
  /* s.lo in a reducer: the declared type of state field lo */
  if (r.ref == ZQL_REF_LOCAL && r.target && r.target->kind == ZQL_N_REDUCER &&
      r.type == ZQL_T_DOC && n->u.path.nsteps == 1 &&
      n->u.path.steps[0].kind == ZQL_STEP_FIELD) {
    const zql_list_t *st = &r.target->u.reducer.state;
    for (uint32_t i = 0; i < st->n; i++)
      if (streq(st->items[i]->u.field.name, n->u.path.steps[0].name))
        n->type = resolved_type(st->items[i]->u.field.type);
  }
}

static void check_paramref(analyzer_t *an, zql_node_t *n)
{
  const char *name = n->u.paramref.name;
  def_t *d = sym_get(&an->fparams, name);
  n->type = ZQL_T_ANY;
  if (d) {
    n->u.paramref.decl = d->node;
    n->type = d->node->u.decl.value ? d->node->u.decl.value->type : ZQL_T_ANY;
    return;
  }
  if (!once(an, 'p', name))
    return;
  zql_error_t *e = report(an, ZQL_E_UNKNOWN_PARAM, n->span, "unknown parameter '$%s'", name);
  def_t *g = sym_get(&an->params, name);
  if (g && g->node == an->item) {
    hint(an, e, "a parameter cannot use itself");
  } else if (g && g->src == an->src) {
    hint(an, e, "'$%s' is declared later, at line %u; declare it before its first use", name,
         line_of(g->src, g->node->span.start));
  } else if (g) {
    hint(an, e, "'$%s' is declared in %s; parameters are visible only in their own file",
         name, g->src ? g->src->name : "another file");
  } else {
    suggest_t sg;
    suggest_init(&sg, name);
    for (uint32_t i = 0; i < an->fparams.cap; i++)
      suggest_add(&sg, an->fparams.keys[i], NULL);
    if (sg.best)
      hint(an, e, "did you mean '$%s'?", sg.best);
    else
      hint(an, e, "declare it first: param %s = ...;", name);
  }
}

/* }==== */

/* {==== expressions ======================================================================= */

/* E3012 when a condition has a known non-boolean type. `what` names it. */
static void check_cond(analyzer_t *an, const zql_node_t *n, const char *what)
{
  if (!n || !type_nonbool(n->type))
    return;
  zql_error_t *e = report(an, ZQL_E_TYPE_MISMATCH, n->span, "%s must be a boolean, not %s",
                          what, a_type(n->type));
  if (n->type == ZQL_T_REGEX)
    hint(an, e, "match a value with 'x =~ /.../'");
  else if (type_numeric(n->type))
    hint(an, e, "compare it, as in 'x != 0'");
  else if (n->type == ZQL_T_STRING)
    hint(an, e, "compare it, as in 'type == \"...\"'");
}

static void check_unary(analyzer_t *an, const ectx_t *ec, zql_node_t *n)
{
  zql_node_t *arg = n->u.unary.arg;
  check_expr(an, ec, arg);
  zql_type_t t = arg ? arg->type : ZQL_T_ANY;
  if (n->u.unary.op == ZQL_OP_NOT) {
    n->type = ZQL_T_BOOL;
    if (type_nonbool(t))
      report(an, ZQL_E_TYPE_MISMATCH, arg->span, "'not' needs a boolean, not %s", a_type(t));
    return;
  }
  if (type_nonarith(t) || t == ZQL_T_DATE) {
    report(an, ZQL_E_TYPE_MISMATCH, arg->span, "unary '%s' needs a number, not %s",
           zql_op_name(n->u.unary.op), a_type(t));
    n->type = ZQL_T_ANY;
    return;
  }
  n->type = type_numeric(t) || t == ZQL_T_DURATION ? t : ZQL_T_ANY;
}

static bool type_known(zql_type_t t)
{
  return t != ZQL_T_ANY && t != ZQL_T_NULL && t != ZQL_T_STATE;
}

/* The static type of arithmetic (R4, dates and durations); E3012 when impossible. */
static zql_type_t arith_type(analyzer_t *an, const zql_node_t *n, zql_op_t op,
                             const zql_node_t *l, const zql_node_t *r)
{
  zql_type_t lt = l->type, rt = r->type;
  const char *opn = zql_op_name(op);
  if (type_nonarith(lt) || type_nonarith(rt)) {
    const zql_node_t *bad = type_nonarith(lt) ? l : r;
    zql_error_t *e = report(an, ZQL_E_TYPE_MISMATCH, bad->span, "'%s' cannot take %s operand",
                            opn, a_type(bad->type));
    if (bad->type == ZQL_T_STRING && op == ZQL_OP_ADD)
      hint(an, e, "join strings with concat(a, b), or convert with num(...)");
    else if (bad->type == ZQL_T_STRING)
      hint(an, e, "convert it with num(...)");
    return ZQL_T_ANY;
  }
  bool ld = lt == ZQL_T_DATE, rd = rt == ZQL_T_DATE;
  bool lu = lt == ZQL_T_DURATION, ru = rt == ZQL_T_DURATION;
  if (!ld && !rd && !lu && !ru) {
    if (!type_numeric(lt) || !type_numeric(rt))
      return ZQL_T_ANY;
    if (lt == ZQL_T_INT && rt == ZQL_T_INT)
      return op == ZQL_OP_DIV ? ZQL_T_NUMBER : ZQL_T_INT;
    if (lt == ZQL_T_DOUBLE || rt == ZQL_T_DOUBLE)
      return ZQL_T_DOUBLE;
    return ZQL_T_NUMBER;
  }
  if (!type_known(lt) || !type_known(rt))
    return ZQL_T_ANY;
  bool ln = type_numeric(lt), rn = type_numeric(rt);
  switch (op) {
  case ZQL_OP_ADD:
    if ((ld && ru) || (lu && rd))
      return ZQL_T_DATE;
    if (lu && ru)
      return ZQL_T_DURATION;
    break;
  case ZQL_OP_SUB:
    if (ld && ru)
      return ZQL_T_DATE;
    if ((ld && rd) || (lu && ru))
      return ZQL_T_DURATION;
    break;
  case ZQL_OP_MUL:
    if ((lu && rn) || (ln && ru))
      return ZQL_T_DURATION;
    break;
  case ZQL_OP_DIV:
    if (lu && rn)
      return ZQL_T_DURATION;
    if (lu && ru)
      return ZQL_T_NUMBER;
    break;
  case ZQL_OP_MOD:
    if (lu && ru)
      return ZQL_T_DURATION;
    break;
  default:
    break;
  }
  zql_error_t *e = report(an, ZQL_E_TYPE_MISMATCH, n->span, "cannot apply '%s' to %s and %s",
                          opn, a_type(lt), a_type(rt));
  if ((ld || rd) && (ln || rn))
    hint(an, e, "dates are not numbers: add or subtract a duration such as '1d'");
  else if (ld && rd)
    hint(an, e, "subtract dates to get a duration: a - b");
  return ZQL_T_ANY;
}

static bool is_nullish(const zql_node_t *n)
{
  return n && (n->kind == ZQL_N_NULL || n->kind == ZQL_N_MISSING_LIT);
}

/* `x == null` -> `x is null`, `x != null` -> `x is not null` (and `missing`), W3901. */
static void rewrite_null_cmp(analyzer_t *an, zql_node_t *n)
{
  zql_op_t op = n->u.binary.op;
  zql_node_t *l = n->u.binary.lhs, *r = n->u.binary.rhs;
  zql_node_t *arg = is_nullish(r) ? l : r;
  zql_node_t *lit = arg == l ? r : l;
  bool missing = lit->kind == ZQL_N_MISSING_LIT;
  bool negated = op == ZQL_OP_NE;
  const char *text = span_text(an, arg->span);
  zql_error_t *e = report(an, ZQL_W_NULL_COMPARISON, n->span, "comparison with %s is always null",
                          missing ? "missing" : "null");
  hint(an, e, "write '%s is %s%s'", text ? text : "...", negated ? "not " : "",
       missing ? "missing" : "null");
  n->kind = ZQL_N_IS;
  memset(&n->u, 0, sizeof n->u);
  n->u.is.arg = arg;
  n->u.is.negated = negated;
  n->u.is.missing = missing;
  zql_node_fix_depth(n);
}

static void check_binary(analyzer_t *an, const ectx_t *ec, zql_node_t *n)
{
  zql_op_t op = n->u.binary.op;
  zql_node_t *l = n->u.binary.lhs, *r = n->u.binary.rhs;
  if ((op == ZQL_OP_EQ || op == ZQL_OP_NE) && (is_nullish(l) || is_nullish(r))) {
    rewrite_null_cmp(an, n);
    check_expr(an, ec, n);
    return;
  }
  check_expr(an, ec, l);
  check_expr(an, ec, r);
  if (!l || !r)
    return;
  switch (op) {
  case ZQL_OP_ADD:
  case ZQL_OP_SUB:
  case ZQL_OP_MUL:
  case ZQL_OP_DIV:
  case ZQL_OP_MOD:
    n->type = arith_type(an, n, op, l, r);
    return;
  case ZQL_OP_EQ:
  case ZQL_OP_NE:
  case ZQL_OP_LT:
  case ZQL_OP_LE:
  case ZQL_OP_GT:
  case ZQL_OP_GE:
    n->type = ZQL_T_BOOL;
    if (l->type == ZQL_T_REGEX || r->type == ZQL_T_REGEX) {
      zql_error_t *e = report(an, ZQL_E_TYPE_MISMATCH, (l->type == ZQL_T_REGEX ? l : r)->span,
                              "'%s' cannot compare with a regex", zql_op_name(op));
      hint(an, e, "match with 'x =~ /.../'");
    }
    return;
  case ZQL_OP_MATCH:
  case ZQL_OP_NOMATCH: {
    n->type = ZQL_T_BOOL;
    if (r->type == ZQL_T_REGEX)
      return;
    cval_t v;
    const zql_node_t *bad = NULL;
    if (const_eval(an, r, &v, &bad)) {
      if (v.kind == CV_UNKNOWN || v.kind == CV_REGEX)
        return;
      if (v.kind == CV_STRING) {
        check_regex_string(an, &v, r->span);
        return;
      }
    }
    zql_error_t *e = type_known(r->type)
                         ? report(an, ZQL_E_TYPE_MISMATCH, r->span,
                                  "the right side of '%s' must be a regex, not %s",
                                  zql_op_name(op), a_type(r->type))
                         : report(an, ZQL_E_TYPE_MISMATCH, r->span,
                                  "the right side of '%s' must be a constant regex",
                                  zql_op_name(op));
    hint(an, e, "write a regex literal, such as /^api/");
    return;
  }
  case ZQL_OP_AND:
  case ZQL_OP_OR:
    n->type = ZQL_T_BOOL;
    if (type_nonbool(l->type))
      report(an, ZQL_E_TYPE_MISMATCH, l->span, "'%s' needs booleans, not %s", zql_op_name(op),
             a_type(l->type));
    if (type_nonbool(r->type))
      report(an, ZQL_E_TYPE_MISMATCH, r->span, "'%s' needs booleans, not %s", zql_op_name(op),
             a_type(r->type));
    return;
  case ZQL_OP_COALESCE:
    n->type = type_join(l->type, r->type);
    return;
  default:
    return;
  }
}

/* Check a time-zone string node (E3015). */
static void check_zone(analyzer_t *an, const char *s, uint32_t len, zql_span_t span)
{
  if (strlen(s) == len && zql_tzdb_valid(s))
    return;
  zql_error_t *e = report(an, ZQL_E_UNKNOWN_TIMEZONE, span, "unknown time zone '%s'", s);
  char buf[128];
  if (strlen(s) == len && zql_tzdb_suggest(s, buf, sizeof buf))
    hint(an, e, "did you mean '%s'?", buf);
  else
    hint(an, e, "zones are IANA names such as \"Europe/Paris\", from %s", zql_tzdb_dir());
}


static ectx_t const_ctx(const char *clause);
/* The string value of a bucket's `tz` or `origin`: a string literal or a $param holding
 * one. False (reported, or a param already in error) when there is none. */
static bool bucket_string(analyzer_t *an, zql_node_t *n, const char *what, cval_t *v)
{
  ectx_t c = const_ctx("a bucket() option");
  check_expr(an, &c, n);
  const zql_node_t *bad = NULL;
  if (!const_eval(an, n, v, &bad))
    return false;
  if (v->kind == CV_STRING)
    return true;
  if (v->kind != CV_UNKNOWN) {
    zql_error_t *e = report(an, ZQL_E_ARG_KIND, n->span, "bucket() '%s' needs a string", what);
    hint(an, e, streq(what, "tz") ? "write a zone name, such as tz \"Europe/Paris\""
                                  : "write a date-time, such as origin \"2000-01-03T00:00:00Z\"");
  }
  return false;
}

/* The zone of a checked bucket node: its `tz` string ("UTC" when absent), or NULL when it
 * is not a known constant. */
static const char *bucket_zone(analyzer_t *an, const zql_node_t *b, uint32_t *len)
{
  const zql_node_t *tz = b->u.bucket.tz;
  if (!tz) {
    *len = 3;
    return "UTC";
  }
  cval_t v;
  const zql_node_t *bad = NULL;
  if (!const_eval(an, tz, &v, &bad) || v.kind != CV_STRING)
    return NULL;
  *len = v.len;
  return v.s;
}

static int unit_rank(const char *u)
{
  for (int i = 0; unit_names[i]; i++)
    if (streq(unit_names[i], u))
      return i;
  return -1;
}

static int64_t unit_ms(const char *u)
{
  return streq(u, "ms") ? 1 : streq(u, "second") ? 1000 : streq(u, "minute") ? 60000
         : streq(u, "hour") ? 3600000 : 0;
}

/* Across zones, sub-day source buckets (length L, aligned to the source zone's 1970
 * midnight) still nest in the new buckets when every boundary of these is one of theirs:
 * L divides a day (day and larger targets) or the target length, and the difference of
 * the two zones' offsets is a multiple of L at every instant (sampled twice a year,
 * 1970-2040: DST shifts and changes of standard time included). Hours of UTC nest in the
 * days of New York, not of Kolkata (+05:30). Unknown zones are reported elsewhere. */
static bool subday_nests(const zql_node_t *src, const char *z1, uint32_t l1,
                         const zql_node_t *n, const char *z2, uint32_t l2)
{
  const char *su = src->u.bucket.unit, *nu = n->u.bucket.unit;
  const zql_node_t *ev = src->u.bucket.every, *nev = n->u.bucket.every;
  int64_t every = ev && ev->kind == ZQL_N_INT ? ev->u.lit.i : 1;
  int64_t nevery = nev && nev->kind == ZQL_N_INT ? nev->u.lit.i : 1;
  int64_t len = su ? unit_ms(su) * every : 0;
  if (len <= 0 || !nu || src->u.bucket.origin || n->u.bucket.origin)
    return false;
  int64_t nlen = unit_ms(nu) * nevery;
  if (nlen ? nlen % len != 0 : 86400000 % len != 0)
    return false;
  char a[128], b[128];
  if (l1 >= sizeof a || l2 >= sizeof b)
    return false;
  memcpy(a, z1, l1);
  a[l1] = 0;
  memcpy(b, z2, l2);
  b[l2] = 0;
  const zql_tz_t *za, *zb;
  if (zql_tz_load(a, &za, NULL) != 0 || zql_tz_load(b, &zb, NULL) != 0)
    return false;
  int64_t base = (int64_t)zql_tz_offset_at(za, 0) * 1000;
  if (nlen) /* sub-day targets are aligned to the target zone's 1970 midnight */
    return zql_floor_mod(base - (int64_t)zql_tz_offset_at(zb, 0) * 1000, len) == 0;
  for (int64_t y = 0; y <= 70; y++)
    for (int h = 0; h < 2; h++) {
      int64_t t = (y * 365 + 182 * h) * 86400000;
      if (zql_floor_mod(base - (int64_t)zql_tz_offset_at(zb, t) * 1000, len) != 0)
        return false;
    }
  return true;
}

/* bucket(col, ...) where col is a time-bucket key of a `from agg` source: the stored
 * buckets are merged into coarser ones (R17), which is exact only when each stored bucket
 * lies inside one new bucket -- same zone, a coarser unit that nests (R10). */
static void check_rollup(analyzer_t *an, const zql_node_t *n, const zql_node_t *src,
                         const char *col)
{
  uint32_t l1 = 0, l2 = 0;
  const char *z1 = bucket_zone(an, src, &l1), *z2 = bucket_zone(an, n, &l2);
  if (z1 && z2 && (l1 != l2 || memcmp(z1, z2, l1) != 0) &&
      !subday_nests(src, z1, l1, n, z2, l2)) {
    zql_error_t *e = report(an, ZQL_E_BAD_ROLLUP, n->u.bucket.tz ? n->u.bucket.tz->span : n->span,
                            "'%s' holds buckets of zone %.*s: rolling them up in %.*s would "
                            "split them", col, (int)l1, z1, (int)l2, z2);
    hint(an, e, "roll up in the source's zone: tz \"%.*s\"", (int)l1, z1);
    return;
  }
  const char *su = src->u.bucket.unit, *nu = n->u.bucket.unit;
  int r1 = su ? unit_rank(su) : -1, r2 = nu ? unit_rank(nu) : -1;
  if (r1 < 0 || r2 < 0)
    return; /* an unknown unit is reported on its own */
  if (r2 < r1) {
    zql_error_t *e = report(an, ZQL_E_BAD_ROLLUP, n->u.bucket.unit_span,
                            "'%s' holds %s buckets: they cannot be cut into %ss", col, su, nu);
    hint(an, e, "a rollup goes to a coarser unit (%s or larger)", su);
  } else if (streq(su, "week") && r2 > r1) {
    zql_error_t *e = report(an, ZQL_E_BAD_ROLLUP, n->u.bucket.unit_span,
                            "'%s' holds week buckets, and weeks do not nest in %ss", col, nu);
    hint(an, e, "store day buckets to roll them up into both weeks and %ss", nu);
  }
}

static void check_bucket(analyzer_t *an, const ectx_t *ec, zql_node_t *n)
{
  n->type = ZQL_T_DATE;
  zql_node_t *ts = n->u.bucket.ts;
  check_expr(an, ec, ts);
  if (ts && type_known(ts->type) && ts->type != ZQL_T_DATE) {
    zql_error_t *e = report(an, ZQL_E_TYPE_MISMATCH, ts->span, "bucket() needs a date, not %s",
                            a_type(ts->type));
    if (ts->type == ZQL_T_STRING)
      hint(an, e, "parse it with date(...)");
    else if (type_numeric(ts->type))
      hint(an, e, "convert it with epoch_ms(...) or epoch_s(...)");
  }
  if (ts && ts->kind == ZQL_N_PATH && ts->u.path.nsteps == 0 &&
      ts->u.path.ref == ZQL_REF_AGGCOL && ts->u.path.target &&
      ts->u.path.target->kind == ZQL_N_KEY && ts->u.path.target->u.key.expr &&
      ts->u.path.target->u.key.expr->kind == ZQL_N_BUCKET)
    check_rollup(an, n, ts->u.path.target->u.key.expr, ts->u.path.root);
  zql_node_t *ev = n->u.bucket.every;
  if (ev) {
    ectx_t c;
    memset(&c, 0, sizeof c);
    c.mode = M_CONST;
    check_expr(an, &c, ev); /* a literal: sets its type */
  }
  if (ev && ev->kind != ZQL_N_INT) {
    report(an, ZQL_E_ARG_KIND, ev->span, "'every' needs a positive integer");
  } else if (ev && ev->u.lit.i < 1) {
    report(an, ZQL_E_ARG_RANGE, ev->span, "'every' must be at least 1, not %" PRId64,
           ev->u.lit.i);
  }
  const char *unit = n->u.bucket.unit;
  if (unit && !is_unit(unit)) {
    zql_error_t *e = report(an, ZQL_E_UNKNOWN_UNIT, n->u.bucket.unit_span,
                            "unknown time unit '%s'", unit);
    const char *s = unit_suggest(unit);
    if (s)
      hint(an, e, "did you mean '%s'?", s);
    else
      hint(an, e, "units are ms second minute hour day week month quarter year");
  }
  zql_node_t *tz = n->u.bucket.tz;
  cval_t tzv;
  if (tz && bucket_string(an, tz, "tz", &tzv))
    check_zone(an, tzv.s, tzv.len, tz->span);
  const char *ws = n->u.bucket.week_start;
  if (ws) {
    if (!in_list(ws, day_names)) {
      zql_error_t *e = report(an, ZQL_E_BAD_OPTION_VALUE, n->u.bucket.week_span,
                              "unknown day '%s' after 'week starts'", ws);
      suggest_t sg;
      suggest_init(&sg, ws);
      for (const char *const *d = day_names; *d; d++) {
        suggest_add(&sg, *d, NULL);
        if (strlen(ws) >= 3 && strncasecmp(ws, *d, strlen(ws)) == 0 && !sg.best)
          sg.best = *d;
      }
      if (sg.best)
        hint(an, e, "did you mean '%s'?", sg.best);
      else
        hint(an, e, "days are monday tuesday wednesday thursday friday saturday sunday");
    } else if (unit && is_unit(unit) && !streq(unit, "week")) {
      report(an, ZQL_E_BAD_OPTION_VALUE, n->u.bucket.week_span,
             "'week starts' applies to week buckets, not '%s'", unit);
    }
  }
  zql_node_t *o = n->u.bucket.origin;
  cval_t ov;
  if (o && bucket_string(an, o, "origin", &ov)) {
    bool off;
    if (strlen(ov.s) != ov.len || !parse_iso(ov.s, &off)) {
      zql_error_t *e = report(an, ZQL_E_BAD_DATE, o->span, "invalid origin '%s'", ov.s);
      hint(an, e, "write an ISO-8601 date-time, such as \"2024-01-01T00:00:00Z\"");
    } else if (!off) {
      zql_error_t *e = report(an, ZQL_E_BAD_DATE, o->span, "origin '%s' has no offset", ov.s);
      hint(an, e, "add Z or an offset such as +02:00, as in \"%s%s\"", ov.s,
           strchr(ov.s, 'T') || strchr(ov.s, 't') ? "Z" : "T00:00:00Z");
    }
  }
}

static void check_expr(analyzer_t *an, const ectx_t *ec, zql_node_t *n)
{
  if (!n)
    return;
  switch (n->kind) {
  case ZQL_N_INT:
    n->type = ZQL_T_INT;
    return;
  case ZQL_N_DOUBLE:
    n->type = ZQL_T_DOUBLE;
    return;
  case ZQL_N_STRING:
    n->type = ZQL_T_STRING;
    return;
  case ZQL_N_BOOL:
    n->type = ZQL_T_BOOL;
    return;
  case ZQL_N_NULL:
    n->type = ZQL_T_NULL;
    return;
  case ZQL_N_MISSING_LIT:
    n->type = ZQL_T_ANY;
    return;
  case ZQL_N_DURATION:
    n->type = ZQL_T_DURATION;
    return;
  case ZQL_N_REGEX:
    n->type = ZQL_T_REGEX;
    check_regex_literal(an, n);
    return;
  case ZQL_N_PATH:
    check_path(an, ec, n);
    return;
  case ZQL_N_PARAMREF:
    check_paramref(an, n);
    return;
  case ZQL_N_CALL:
    check_call(an, ec, n, 0);
    return;
  case ZQL_N_BUCKET:
    check_bucket(an, ec, n);
    return;
  case ZQL_N_UNARY:
    check_unary(an, ec, n);
    return;
  case ZQL_N_BINARY:
    check_binary(an, ec, n);
    return;
  case ZQL_N_IS:
    check_expr(an, ec, n->u.is.arg);
    n->type = ZQL_T_BOOL;
    return;
  case ZQL_N_IN:
    check_expr(an, ec, n->u.in.arg);
    check_expr(an, ec, n->u.in.set);
    if (n->u.in.set->type != ZQL_T_ARRAY && n->u.in.set->type != ZQL_T_ANY) {
      zql_error_t *e = report(an, ZQL_E_TYPE_MISMATCH, n->u.in.set->span,
                              "'in' needs an array, not %s", a_type(n->u.in.set->type));
      if (n->u.in.set->kind == ZQL_N_PARAMREF)
        hint(an, e, "declare the parameter as an array: param types = [\"a\", \"b\"];");
      else
        hint(an, e, "write an array, such as [\"a\", \"b\"]");
    }
    n->type = ZQL_T_BOOL;
    return;
  case ZQL_N_ARRAY:
    for (uint32_t i = 0; i < n->u.list.n; i++)
      check_expr(an, ec, n->u.list.items[i]);
    n->type = ZQL_T_ARRAY;
    return;
  case ZQL_N_DOC:
    for (uint32_t i = 0; i < n->u.list.n; i++)
      check_expr(an, ec, n->u.list.items[i]);
    n->type = ZQL_T_DOC;
    return;
  case ZQL_N_DOCFIELD:
    check_expr(an, ec, n->u.docfield.value);
    n->type = n->u.docfield.value ? n->u.docfield.value->type : ZQL_T_ANY;
    return;
  default:
    return; /* not an expression: the grammar never puts one here */
  }
}

/* }==== */

/* {==== calls ============================================================================= */

/* The name of positional argument i in f's synopsis ("trunc(ts, unit [, tz])", 2 -> "tz"). */
static bool synopsis_arg(const zql_func_t *f, int i, char *buf, size_t size)
{
  const char *p = f && f->synopsis ? strchr(f->synopsis, '(') : NULL;
  if (!p || i < 0)
    return false;
  p++;
  for (int k = 0; *p && *p != ')'; k++) {
    const char *end = p;
    while (*end && *end != ',' && *end != ')')
      end++;
    const char *q = p;
    while (q < end && !isalpha((unsigned char)*q) && *q != '_')
      q++;
    size_t n = 0;
    while (q + n < end && (isalnum((unsigned char)q[n]) || q[n] == '_'))
      n++;
    if (k == i) {
      if (n == 0 || n >= size)
        return false;
      memcpy(buf, q, n);
      buf[n] = '\0';
      return true;
    }
    p = *end == ',' ? end + 1 : end;
  }
  return false;
}

/* True when f's synopsis shows clause `word` outside optional brackets (required). */
static bool synopsis_requires(const zql_func_t *f, const char *word)
{
  const char *s = f->synopsis;
  size_t wl = strlen(word);
  int depth = 0;
  for (const char *p = s; *p; p++) {
    if (*p == '[')
      depth++;
    else if (*p == ']')
      depth--;
    else if (strncmp(p, word, wl) == 0 && (p == s || !isalnum((unsigned char)p[-1])) &&
             !isalnum((unsigned char)p[wl]))
      return depth == 0;
  }
  return false;
}

/* Registry names of the functions that accept a clause flag, for hints. */
static void names_with_flag(zql_strbuf_t *sb, unsigned flag)
{
  size_t nt;
  const zql_func_t *tab = zql_func_table(&nt);
  for (size_t i = 0; i < nt; i++) {
    if (!(tab[i].flags & flag))
      continue;
    bool dup = false;
    for (size_t j = 0; j < i; j++)
      if (streq(tab[j].name, tab[i].name) && (tab[j].flags & flag))
        dup = true;
    if (!dup)
      zql_strbuf_addf(sb, "%s%s", sb->len ? ", " : "", tab[i].name);
  }
}

/* E3002 (unknown name) or E3003 (no form with this many arguments). */
static void call_not_found(analyzer_t *an, zql_node_t *n, int nargs, int shift)
{
  const char *name = n->u.call.name;
  if (!zql_func_by_name(name)) {
    if (!once(an, 'f', name))
      return;
    zql_error_t *e = report(an, ZQL_E_UNKNOWN_FUNCTION, n->u.call.name_span,
                            "unknown function '%s'", name);
    suggest_t sg;
    suggest_init(&sg, name);
    const char *s = zql_func_suggest(name);
    if (s) {
      sg.best = s;
      sg.dist = zql_edit_distance(name, s, 2);
    }
    for (uint32_t i = 0; i < an->reducers.cap; i++)
      suggest_add(&sg, an->reducers.keys[i], NULL);
    if (sg.best)
      hint(an, e, "did you mean '%s'?", sg.best);
    return;
  }
  size_t nt;
  const zql_func_t *tab = zql_func_table(&nt);
  int lo = INT_MAX, hi = 0;
  bool variadic = false;
  zql_strbuf_t forms = ZQL_STRBUF_INIT;
  for (size_t i = 0; i < nt; i++) {
    if (!streq(tab[i].name, name))
      continue;
    if (tab[i].min_args < lo)
      lo = tab[i].min_args;
    if (tab[i].max_args < 0)
      variadic = true;
    else if (tab[i].max_args > hi)
      hi = tab[i].max_args;
    zql_strbuf_addf(&forms, "%s%s", forms.len ? " or " : "", tab[i].synopsis);
  }
  lo -= shift;
  hi -= shift;
  if (lo < 0)
    lo = 0;
  if (hi < lo)
    hi = lo;
  nargs -= shift;
  char range[64];
  if (variadic)
    snprintf(range, sizeof range, "at least %d argument%s", lo, lo == 1 ? "" : "s");
  else if (lo == hi && lo == 0)
    snprintf(range, sizeof range, "no arguments");
  else if (lo == hi)
    snprintf(range, sizeof range, "%d argument%s", lo, lo == 1 ? "" : "s");
  else if (hi == lo + 1)
    snprintf(range, sizeof range, "%d or %d arguments", lo, hi);
  else
    snprintf(range, sizeof range, "%d to %d arguments", lo, hi);
  zql_error_t *e = report(an, ZQL_E_ARITY, n->u.call.name_span, "%s'%s' takes %s, not %d",
                          shift ? "table reducer " : "", name, range, nargs);
  if (shift)
    hint(an, e, "usage: %s, where the emitted value is the first argument and is not written",
         forms.buf);
  else
    hint(an, e, "usage: %s", forms.buf);
  zql_strbuf_release(&forms);
}

/* Range rules for constant arguments (E3034), by registry argument index. */
static const struct range_rule {
  const char *func;
  int arg;
  double lo, hi;
} range_rules[] = {
    {"hll", 1, 4, 18},          {"hll_downgrade", 1, 4, 18},
    {"theta", 1, 16, 67108864}, {"quantile", 1, 0, 1},
    {"quantile", 2, 1, 1e6},    {"topk", 1, 1, HUGE_VAL},
    {"maximum", 1, 1, HUGE_VAL}, {"minimum", 1, 1, HUGE_VAL},
    {"sample", 1, 1, HUGE_VAL}, {"collect", 1, 1, HUGE_VAL},
    {"regex_extract", 2, 0, HUGE_VAL},
};

static void check_range(analyzer_t *an, const zql_func_t *f, int idx, const char *what,
                        const cval_t *v, zql_span_t span)
{
  if (!cv_numeric(v))
    return;
  for (size_t i = 0; i < ZQL_ARRAY_LEN(range_rules); i++) {
    const struct range_rule *r = &range_rules[i];
    if (r->arg != idx || !streq(r->func, f->name))
      continue;
    double x = cv_double(v);
    if (x >= r->lo && x <= r->hi)
      return;
    if (r->hi == HUGE_VAL)
      report(an, ZQL_E_ARG_RANGE, span, "%s must be at least %.15g, not %s", what, r->lo,
             cv_text(an, v));
    else
      report(an, ZQL_E_ARG_RANGE, span, "%s must be between %.15g and %.15g, not %s", what,
             r->lo, r->hi, cv_text(an, v));
    return;
  }
}

/* An argument that must be a constant of kind k (n i s d r a). `what` names it for
 * messages ("argument 2 of 'hll'"); idx is its registry index (-1: a clause). */
static void check_const_arg(analyzer_t *an, const ectx_t *ec, const zql_func_t *f,
                            zql_node_t *a, int idx, char k, const char *what)
{
  ectx_t c;
  memset(&c, 0, sizeof c);
  c.mode = M_CONST;
  c.clause = "a constant argument";
  c.agg = ec->agg;
  int before = an->diags->nerr;
  check_expr(an, &c, a);
  if (an->diags->nerr != before)
    return;
  cval_t v;
  const zql_node_t *bad = NULL;
  if (!const_eval(an, a, &v, &bad)) {
    zql_error_t *e = report(an, ZQL_E_NOT_CONSTANT, (bad ? bad : a)->span,
                            "%s must be a constant", what);
    hint(an, e, "use a literal or a '$param'");
    return;
  }
  if (v.kind == CV_UNKNOWN)
    return;
  if (v.kind == CV_ERROR) {
    zql_error_t *e = report(an, ZQL_E_ARG_KIND, a->span, "%s divides by zero", what);
    hint(an, e, "a constant that divides by zero is ERROR, never a value");
    return;
  }
  const char *need = NULL;
  switch (k) {
  case 'n':
    if (!cv_numeric(&v))
      need = "a number";
    break;
  case 'i':
    if (v.kind != CV_INT)
      need = "an integer";
    break;
  case 's':
    if (v.kind != CV_STRING)
      need = "a string";
    break;
  case 'd':
    if (v.kind != CV_DURATION) {
      need = "a duration";
    } else if (v.i <= 0) {
      zql_error_t *e = report(an, ZQL_E_BAD_DURATION_VALUE, a->span,
                              "%s must be a positive duration", what);
      hint(an, e, "write a duration such as 30m or 1d");
      return;
    }
    break;
  case 'r':
    if (v.kind == CV_STRING)
      check_regex_string(an, &v, a->span);
    else if (v.kind != CV_REGEX)
      need = "a regex";
    break;
  case 'a':
    if (v.kind != CV_ARRAY)
      need = "an array of numbers";
    break;
  default:
    break;
  }
  if (need) {
    zql_error_t *e = report(an, ZQL_E_ARG_KIND, a->span, "%s must be %s, not %s", what, need,
                            cv_a_kind(v.kind));
    if (k == 'd' && cv_numeric(&v))
      hint(an, e, "durations have a unit: 250ms 5s 10m 2h 1d 1w");
    return;
  }
  if (k == 'a') {
    const zql_node_t *arr = v.node;
    double prev = 0;
    for (uint32_t i = 0; i < arr->u.list.n; i++) {
      const zql_node_t *el = arr->u.list.items[i];
      cval_t x;
      const zql_node_t *b2 = NULL;
      if (!const_eval(an, el, &x, &b2) || x.kind == CV_UNKNOWN)
        return;
      if (!cv_numeric(&x)) {
        report(an, ZQL_E_ARG_KIND, el->span, "%s must be an array of numbers, not contain %s",
               what, cv_a_kind(x.kind));
        return;
      }
      double d = cv_double(&x);
      if (f && streq(f->name, "histogram") && d != d) {
        report(an, ZQL_E_ARG_RANGE, el->span, "a histogram edge cannot be nan");
        return;
      }
      if (f && streq(f->name, "histogram") && i > 0 && !(d > prev)) {
        zql_error_t *e = report(an, ZQL_E_ARG_RANGE, el->span,
                                "histogram edges must be strictly increasing");
        hint(an, e, "%.15g does not come after %.15g", d, prev);
        return;
      }
      prev = d;
    }
    if (f && streq(f->name, "histogram") && arr->u.list.n < 2) {
      zql_error_t *e = report(an, ZQL_E_ARG_RANGE, a->span, "histogram needs at least 2 edges");
      hint(an, e, "the buckets lie between consecutive edges, as in [0, 10, 100]");
    }
    return;
  }
  if (!f || idx < 0)
    return;
  char label[32];
  if (k == 's' && v.kind == CV_STRING && synopsis_arg(f, idx, label, sizeof label) &&
      streq(label, "tz"))
    check_zone(an, v.s, v.len, a->span);
  check_range(an, f, idx, what, &v, a->span);
}

static void check_unit_arg(analyzer_t *an, zql_node_t *a, const char *what)
{
  a->type = ZQL_T_ANY;
  if (a->kind == ZQL_N_PATH && a->u.path.nsteps == 0) {
    const char *u = a->u.path.root;
    if (is_unit(u))
      return;
    zql_error_t *e = report(an, ZQL_E_UNKNOWN_UNIT, a->u.path.root_span,
                            "unknown time unit '%s'", u);
    const char *s = unit_suggest(u);
    if (s)
      hint(an, e, "did you mean '%s'?", s);
    else
      hint(an, e, "units are ms second minute hour day week month quarter year");
    return;
  }
  if (a->kind == ZQL_N_STRING && is_unit(a->u.lit.str.s)) {
    zql_error_t *e = report(an, ZQL_E_ARG_KIND, a->span,
                            "%s is a time unit, written without quotes", what);
    hint(an, e, "write %s", a->u.lit.str.s);
    return;
  }
  zql_error_t *e = report(an, ZQL_E_ARG_KIND, a->span, "%s must be a time unit, such as day",
                          what);
  hint(an, e, "units are ms second minute hour day week month quarter year");
}

static void check_state_arg(analyzer_t *an, const ectx_t *ec, zql_node_t *call, zql_node_t *a,
                            const char *what)
{
  const char *fname = call->u.call.name;
  if (!scope_has_agg_source(ec->row)) {
    zql_error_t *e = report(an, ZQL_E_MERGE_NEEDS_STATE, a->span,
                            "'%s' needs a computed field of a 'from agg' source", fname);
    hint(an, e, "only stored aggregates have states: from agg NAME ... compute x = %s(x)",
         fname);
    return;
  }
  int before = an->diags->nerr;
  check_expr(an, ec, a);
  if (an->diags->nerr != before || a->type == ZQL_T_STATE)
    return;
  zql_error_t *e = report(an, ZQL_E_MERGE_NEEDS_STATE, a->span,
                          "%s must be a computed field of the source", what);
  if (a->kind == ZQL_N_PATH && a->u.path.ref == ZQL_REF_AGGCOL && a->u.path.target &&
      a->u.path.target->kind == ZQL_N_KEY)
    hint(an, e, "'%s' is a key of the source; group by it instead", a->u.path.root);
  else if (a->kind == ZQL_N_PATH && a->u.path.nsteps > 0)
    hint(an, e, "name the computed field itself, without '.' or '[...]'");
}

/* The static type of a user reducer's result: its final part's, if known. */
static zql_type_t reducer_type(const zql_node_t *r)
{
  const zql_list_t *parts = &r->u.reducer.parts;
  for (uint32_t i = 0; i < parts->n; i++) {
    const zql_node_t *p = parts->items[i];
    if (streq(p->u.decl.name, "final") && p->u.decl.value) {
      const zql_node_t *v = p->u.decl.value;
      if (v->kind == ZQL_N_DOC)
        return ZQL_T_DOC;
      return v->type == ZQL_T_STATE ? ZQL_T_ANY : v->type;
    }
  }
  return ZQL_T_ANY;
}

/* Check a call. shift = 1 for a table reducer, whose value argument is implicit. */
static void check_call(analyzer_t *an, const ectx_t *ec, zql_node_t *n, int shift)
{
  const char *name = n->u.call.name;
  zql_list_t *args = &n->u.call.args;
  int nargs = (int)args->n + shift;
  def_t *rd = sym_get(&an->reducers, name);
  const zql_func_t *f = NULL;
  n->type = ZQL_T_ANY;
  n->u.call.func = NULL;
  n->u.call.reducer = NULL;
  if (rd) {
    n->u.call.reducer = rd->node;
    n->u.call.is_agg = true;
    if (nargs != 1) {
      zql_error_t *e = shift ? report(an, ZQL_E_ARITY, n->u.call.name_span,
                                      "table reducer '%s' takes no arguments, not %d", name,
                                      nargs - 1)
                             : report(an, ZQL_E_ARITY, n->u.call.name_span,
                                      "reducer '%s' takes 1 argument, not %d", name, nargs);
      hint(an, e, "a user reducer takes one value: %s(x)%s", name,
           shift ? ", and in a table that value comes from 'emit'" : "");
      return;
    }
  } else {
    f = zql_func_lookup(name, nargs);
    if (!f) {
      call_not_found(an, n, nargs, shift);
      return;
    }
    n->u.call.func = f;
    n->u.call.is_agg = f->kind == ZQL_FN_AGGREGATE;
    if (shift && !n->u.call.is_agg) {
      zql_error_t *e = report(an, ZQL_E_UNKNOWN_FUNCTION, n->u.call.name_span,
                              "'%s' is a scalar function, not an aggregator", name);
      hint(an, e, "a table reducer is a built-in aggregator such as sum() or a user reducer");
      return;
    }
    if (shift && !(f->flags & ZQL_FN_TABLE)) {
      zql_error_t *e = report(an, ZQL_E_UNKNOWN_FUNCTION, n->u.call.name_span,
                              "aggregator '%s' cannot reduce a table", name);
      zql_strbuf_t sb = ZQL_STRBUF_INIT;
      names_with_flag(&sb, ZQL_FN_TABLE);
      hint(an, e, "table reducers are %s, and user reducers", sb.buf);
      zql_strbuf_release(&sb);
      return;
    }
  }
  bool is_agg = n->u.call.is_agg;
  ectx_t sub = *ec;
  if (is_agg && !shift) {
    if (ec->agg) {
      zql_error_t *e = report(an, ZQL_E_NESTED_AGG, n->u.call.name_span,
                              "aggregate '%s' cannot be nested inside '%s'", name, ec->agg);
      hint(an, e, "compute it as an item of its own and refer to it by name");
    } else if (ec->clause) {
      zql_error_t *e = report(an, ZQL_E_AGG_NOT_ALLOWED, n->u.call.name_span,
                              "aggregate function '%s' not allowed in %s", name, ec->clause);
      if (strstr(ec->clause, "where"))
        hint(an, e, "filter groups with 'having', or one item with '%s(...) where ...'", name);
    }
    if (ec->found_agg)
      *ec->found_agg = true;
    if (sub.mode == M_OUT)
      sub.mode = M_ROW;
    sub.agg = name;
    sub.clause = NULL;
  }
  char what[96];
  for (uint32_t i = 0; i < args->n; i++) {
    zql_node_t *a = args->items[i];
    int idx = (int)i + shift;
    char k = f ? zql_func_arg_kind(f, idx) : 'e';
    snprintf(what, sizeof what, "argument %u of '%s'", i + 1, name);
    switch (k) {
    case 'e':
      check_expr(an, &sub, a);
      break;
    case 'b':
      check_expr(an, &sub, a);
      check_cond(an, a, what);
      break;
    case 'u':
      check_unit_arg(an, a, what);
      break;
    case 't':
      check_state_arg(an, &sub, n, a, what);
      break;
    default:
      check_const_arg(an, &sub, f, a, idx, k, what);
      break;
    }
  }
  /* clauses: by / weight / gap */
  static const struct {
    unsigned flag;
    const char *word;
  } clauses[] = {{ZQL_FN_BY, "by"}, {ZQL_FN_WEIGHT, "weight"}, {ZQL_FN_GAP, "gap"}};
  zql_node_t *vals[3] = {n->u.call.by, n->u.call.weight, n->u.call.gap};
  for (int c = 0; c < 3; c++) {
    const char *word = clauses[c].word;
    if (!vals[c]) {
      if (f && !shift && (f->flags & clauses[c].flag) && synopsis_requires(f, word)) {
        zql_error_t *e = report(an, ZQL_E_ARG_KIND, n->u.call.name_span, "'%s' needs '%s'",
                                name, word);
        hint(an, e, "usage: %s", f->synopsis);
      }
      continue;
    }
    if (shift) {
      zql_error_t *e = report(an, ZQL_E_ARG_KIND, vals[c]->span, "a table reducer takes no '%s'",
                              word);
      if (c == 1)
        hint(an, e, "give the weight in the emit: emit T[...] <- value weight w");
      continue;
    }
    if (!f || !(f->flags & clauses[c].flag)) {
      zql_error_t *e = report(an, ZQL_E_ARG_KIND, vals[c]->span, "'%s' takes no '%s'", name,
                              word);
      zql_strbuf_t sb = ZQL_STRBUF_INIT;
      names_with_flag(&sb, clauses[c].flag);
      hint(an, e, "'%s' is taken by %s", word, sb.buf);
      zql_strbuf_release(&sb);
      continue;
    }
    if (clauses[c].flag == ZQL_FN_GAP) {
      snprintf(what, sizeof what, "the gap of '%s'", name);
      check_const_arg(an, &sub, f, vals[c], -1, 'd', what);
    } else {
      check_expr(an, &sub, vals[c]);
    }
  }
  /* date("...") with a constant string is checked now (E3029) */
  if (f && streq(name, "date") && f->kind == ZQL_FN_SCALAR && args->n >= 1) {
    cval_t v;
    const zql_node_t *bad = NULL;
    zql_node_t *a = args->items[0];
    if (const_eval(an, a, &v, &bad) && v.kind == CV_STRING) {
      bool off = false;
      if (strlen(v.s) != v.len) {
        report(an, ZQL_E_BAD_DATE, a->span, "date string contains a NUL byte");
      } else if (!parse_iso(v.s, &off)) {
        zql_error_t *e = report(an, ZQL_E_BAD_DATE, a->span, "invalid date '%s'", v.s);
        hint(an, e, "write an ISO-8601 date-time with an offset or Z, such as "
                    "\"2011-07-01T00:00:00Z\"");
      } else if (!off && args->n < 2) {
        zql_error_t *e = report(an, ZQL_E_BAD_DATE, a->span, "date '%s' has no offset", v.s);
        hint(an, e, "add Z or an offset such as +02:00, or give a zone: date(s, \"Europe/Paris\")");
      }
    }
  }
  /* the result type */
  if (rd) {
    n->type = reducer_type(rd->node);
  } else if (f->result != ZQL_T_ANY) {
    n->type = f->result;
  } else if (streq(name, "if") && args->n == 3) {
    n->type = type_join(args->items[1]->type, args->items[2]->type);
  } else if (f->kind == ZQL_FN_SCALAR && args->n > 0 &&
             (streq(name, "coalesce") || streq(name, "min") || streq(name, "max"))) {
    zql_type_t t = args->items[0]->type;
    for (uint32_t i = 1; i < args->n; i++)
      t = type_join(t, args->items[i]->type);
    n->type = t == ZQL_T_STATE ? ZQL_T_ANY : t;
  } else if (f->kind == ZQL_FN_AGGREGATE && args->n == 1 &&
             (streq(name, "min") || streq(name, "max") || streq(name, "first") ||
              streq(name, "last"))) {
    zql_type_t t = args->items[0]->type;
    n->type = t == ZQL_T_STATE || t == ZQL_T_NULL ? ZQL_T_ANY : t;
  }
}

/* }==== */

/* {==== statements ======================================================================== */

/* What check_query knows about the statement it checks. */
typedef struct qctx {
  zql_node_t *q;
  bool is_def;
  scope_t pre, post;  /* the row before and after the per stage */
  const scope_t *row; /* the row the grouping stage sees (pre or post) */
  zql_list_t tables;  /* map: the TABLE nodes emitted into, each once */
} qctx_t;

static ectx_t row_ctx(const scope_t *sc, const char *clause)
{
  ectx_t c;
  memset(&c, 0, sizeof c);
  c.mode = M_ROW;
  c.row = sc;
  c.clause = clause;
  return c;
}

static ectx_t out_ctx(const scope_t *row, const zql_list_t *keys, const zql_list_t *outs,
                      uint32_t nvisible)
{
  ectx_t c;
  memset(&c, 0, sizeof c);
  c.mode = M_OUT;
  c.row = row;
  c.keys = keys;
  c.outs = outs;
  c.nvisible = nvisible;
  return c;
}

static ectx_t const_ctx(const char *clause)
{
  ectx_t c;
  memset(&c, 0, sizeof c);
  c.mode = M_CONST;
  c.clause = clause;
  return c;
}

/* A span of the first `len` bytes of a node (its leading keyword). */
static zql_span_t keyword_span(const zql_node_t *n, uint32_t len)
{
  zql_span_t s = n->span;
  if (s.end > s.start + len)
    s.end = s.start + len;
  return s;
}

/* E3010 for a row name defined twice in one statement. */
static bool redefined(analyzer_t *an, const bind_t *binds, const char *name, zql_span_t span)
{
  const bind_t *b = find_bind(binds, name);
  if (!b)
    return false;
  zql_error_t *e = report(an, ZQL_E_DUPLICATE_DEFINITION, span, "'%s' is already defined",
                          name);
  if (b->target)
    hint(an, e, "'%s' is first defined at line %u", name,
         line_of(an->src, b->target->span.start));
  return true;
}

static void warn_unused_let(analyzer_t *an, const zql_node_t *n)
{
  if (n && n->kind == ZQL_N_LET && !n->u.decl.used)
    report(an, ZQL_W_UNUSED_LET, n->u.decl.name_span, "unused variable '%s'", n->u.decl.name);
}

static def_t *check_param(analyzer_t *an, zql_node_t *n)
{
  const char *name = n->u.decl.name;
  def_t *d = sym_get(&an->params, name);
  if (!d || d->node != n) { /* a duplicate (reported): give it its own record */
    d = alloc(an, sizeof *d);
    if (!d)
      return NULL;
    d->node = n;
    d->src = an->src;
  }
  ectx_t c = const_ctx("a parameter value");
  int before = an->diags->nerr;
  zql_node_t *v = n->u.decl.value;
  check_expr(an, &c, v);
  d->folded = true;
  if (v && an->diags->nerr == before) {
    const zql_node_t *bad = NULL;
    if (const_eval(an, v, &d->val, &bad)) {
      d->is_const = true;
    } else {
      zql_error_t *e = report(an, ZQL_E_NOT_CONSTANT, (bad ? bad : v)->span,
                              "the value of parameter '%s' must be a constant", name);
      hint(an, e, "use literals, earlier '$params', and arithmetic, arrays, documents and "
                  "functions of them");
    }
  }
  if (!sym_get(&an->fparams, name))
    sym_put(an, &an->fparams, name, d);
  return d;
}

static void check_fields(analyzer_t *an, const zql_list_t *fields, const char *what,
                         const char *owner)
{
  for (uint32_t i = 0; i < fields->n; i++) {
    zql_node_t *f = fields->items[i];
    check_type(an, f->u.field.type);
    for (uint32_t j = 0; j < i; j++) {
      if (streq(fields->items[j]->u.field.name, f->u.field.name)) {
        report(an, ZQL_E_DUPLICATE_DEFINITION, f->u.field.name_span,
               "duplicate %s '%s' in %s", what, f->u.field.name, owner);
        break;
      }
    }
  }
}

static void check_table(analyzer_t *an, zql_node_t *n)
{
  const char *owner = zql_arena_printf(an->arena, "table '%s'", n->u.table.name);
  check_fields(an, &n->u.table.fields, "index", owner ? owner : "a table");
  check_type(an, n->u.table.of);
  zql_node_t *call = n->u.table.reducer;
  if (!call || call->kind != ZQL_N_CALL)
    return;
  ectx_t c = const_ctx("a table declaration");
  check_call(an, &c, call, 1);
}

static void check_reducer(analyzer_t *an, zql_node_t *n)
{
  static const char *const part_names[] = {"init", "add", "merge", "final", NULL};
  const char *name = n->u.reducer.name;
  const char *arg = n->u.reducer.arg;
  check_type(an, n->u.reducer.arg_type);
  const char *owner = zql_arena_printf(an->arena, "reducer '%s'", name);
  check_fields(an, &n->u.reducer.state, "state field", owner ? owner : "a reducer");
  if (streq(arg, "s")) {
    /* the input name has no span of its own: it is the 's' between NAME( and ': TYPE' */
    zql_span_t sp = n->u.reducer.arg_type ? n->u.reducer.arg_type->span : n->u.reducer.name_span;
    if (an->src && n->u.reducer.arg_type && sp.start <= an->src->len) {
      for (uint32_t i = n->u.reducer.name_span.end; i < sp.start; i++) {
        if (an->src->text[i] == 's') {
          sp.start = i;
          sp.end = i + 1;
          break;
        }
      }
    }
    zql_error_t *e = report(an, ZQL_E_BAD_REDUCER, sp,
                            "the input of reducer '%s' cannot be called 's'", name);
    hint(an, e, "'s' is the state in 'add' and 'final'; call the input x");
  }
  zql_node_t **slots[4] = {&n->u.reducer.init, &n->u.reducer.add, &n->u.reducer.merge,
                           &n->u.reducer.final};
  for (int i = 0; i < 4; i++)
    *slots[i] = NULL;
  zql_type_t arg_type = resolved_type(n->u.reducer.arg_type);
  const zql_list_t *parts = &n->u.reducer.parts;
  for (uint32_t i = 0; i < parts->n; i++) {
    zql_node_t *p = parts->items[i];
    const char *pn = p->u.decl.name;
    p->u.decl.used = true; /* parts are not variables: never "unused" */
    int slot = -1;
    for (int k = 0; part_names[k]; k++)
      if (streq(pn, part_names[k]))
        slot = k;
    scope_t sc;
    memset(&sc, 0, sizeof sc);
    if (slot < 0) {
      zql_error_t *e = report(an, ZQL_E_BAD_REDUCER, p->u.decl.name_span,
                              "unknown reducer part '%s'", pn);
      suggest_t sg;
      suggest_init(&sg, pn);
      for (int k = 0; part_names[k]; k++)
        suggest_add(&sg, part_names[k], NULL);
      if (sg.best)
        hint(an, e, "did you mean '%s'?", sg.best);
      else
        hint(an, e, "the parts are init, add, merge and final");
    } else if (*slots[slot]) {
      zql_error_t *e = report(an, ZQL_E_BAD_REDUCER, p->u.decl.name_span,
                              "reducer part '%s' is given twice", pn);
      hint(an, e, "it is first given at line %u", line_of(an->src, (*slots[slot])->span.start));
    } else {
      *slots[slot] = p;
    }
    switch (slot) {
    case 0:
      sc.names_hint = "'init' sees parameters only";
      break;
    case 1:
      sc.binds = add_bind(an, NULL, "s", ZQL_REF_LOCAL, n, ZQL_T_DOC);
      if (!streq(arg, "s"))
        sc.binds = add_bind(an, sc.binds, arg, ZQL_REF_LOCAL, n, arg_type);
      sc.names_hint = zql_arena_printf(an->arena, "in 'add', the names are 's' and '%s'", arg);
      break;
    case 2:
      sc.binds = add_bind(an, NULL, "a", ZQL_REF_LOCAL, n, ZQL_T_DOC);
      sc.binds = add_bind(an, sc.binds, "b", ZQL_REF_LOCAL, n, ZQL_T_DOC);
      sc.names_hint = "in 'merge', the names are 'a' and 'b'";
      break;
    case 3:
      sc.binds = add_bind(an, NULL, "s", ZQL_REF_LOCAL, n, ZQL_T_DOC);
      sc.names_hint = "in 'final', the name is 's'";
      break;
    default:
      break;
    }
    ectx_t c = row_ctx(&sc, "a reducer");
    check_expr(an, &c, p->u.decl.value);
  }
  for (int k = 0; k < 4; k++) {
    if (k == 2 || *slots[k])
      continue;
    zql_error_t *e = report(an, ZQL_E_BAD_REDUCER, n->u.reducer.name_span,
                            "reducer '%s' has no '%s' part", name, part_names[k]);
    hint(an, e, "a reducer needs init, add and final (and merge to be mergeable)");
  }
}

/* {==== map blocks */

static void check_block(analyzer_t *an, qctx_t *qc, zql_node_t *blk, const scope_t *outer);

static void add_table(analyzer_t *an, qctx_t *qc, zql_node_t *t)
{
  for (uint32_t i = 0; i < qc->tables.n; i++)
    if (qc->tables.items[i] == t)
      return;
  if (zql_list_push(an->arena, &qc->tables, t) != 0)
    an->oom = true;
}

static void check_emit(analyzer_t *an, qctx_t *qc, zql_node_t *n, const scope_t *sc)
{
  ectx_t c = row_ctx(sc, "a 'map' block");
  const char *name = n->u.emit.table;
  def_t *t = sym_get(&an->tables, name);
  n->u.emit.decl = NULL;
  if (!t) {
    if (once(an, 't', name)) {
      zql_error_t *e = report(an, ZQL_E_UNKNOWN_TABLE, n->u.emit.table_span,
                              "unknown table '%s'", name);
      suggest_t sg;
      suggest_init(&sg, name);
      for (uint32_t i = 0; i < an->tables.cap; i++)
        suggest_add(&sg, an->tables.keys[i], NULL);
      if (sg.best)
        hint(an, e, "did you mean '%s'?", sg.best);
      else
        hint(an, e, "declare it first: table %s[k: string] of int: sum();", name);
    }
  } else {
    zql_node_t *decl = t->node;
    n->u.emit.decl = decl;
    add_table(an, qc, decl);
    uint32_t nf = decl->u.table.fields.n, ni = n->u.emit.index.n;
    if (nf != ni) {
      zql_error_t *e = report(an, ZQL_E_EMIT_ARITY, n->u.emit.table_span,
                              "table '%s' has %u ind%s, not %u", name, nf,
                              nf == 1 ? "ex" : "ices", ni);
      hint(an, e, "'%s' is declared at %s", name, where_str(an, t->src, decl->span));
    }
    zql_node_t *call = decl->u.table.reducer;
    if (call && call->kind == ZQL_N_CALL) {
      const char *rname = call->u.call.name;
      const zql_func_t *f = sym_get(&an->reducers, rname)
                                ? NULL
                                : zql_func_lookup(rname, (int)call->u.call.args.n + 1);
      bool takes = f && (f->flags & ZQL_FN_WEIGHT);
      if (n->u.emit.weight && !takes && (f || sym_get(&an->reducers, rname))) {
        zql_error_t *e = report(an, ZQL_E_ARG_KIND, n->u.emit.weight->span,
                                "table '%s' takes no weight", name);
        hint(an, e, "its reducer '%s' does not use one", rname);
      } else if (!n->u.emit.weight && takes && synopsis_requires(f, "weight")) {
        zql_error_t *e = report(an, ZQL_E_ARG_KIND, n->u.emit.table_span,
                                "table '%s' needs a weight", name);
        hint(an, e, "its reducer '%s' ranks values by weight: emit %s[...] <- v weight w",
             rname, name);
      }
    }
  }
  for (uint32_t i = 0; i < n->u.emit.index.n; i++)
    check_expr(an, &c, n->u.emit.index.items[i]);
  check_expr(an, &c, n->u.emit.value);
  check_expr(an, &c, n->u.emit.weight);
}

/* One map statement; a `let` extends *sc for the statements after it. */
static void check_stmt(analyzer_t *an, qctx_t *qc, zql_node_t *n, scope_t *sc)
{
  ectx_t c = row_ctx(sc, "a 'map' block");
  switch (n->kind) {
  case ZQL_N_LET:
    check_expr(an, &c, n->u.decl.value);
    if (redefined(an, sc->binds, n->u.decl.name, n->u.decl.name_span))
      n->u.decl.used = true; /* reported; no second diagnostic */
    else
      sc->binds = add_bind(an, sc->binds, n->u.decl.name, ZQL_REF_LET, n,
                           n->u.decl.value ? n->u.decl.value->type : ZQL_T_ANY);
    return;
  case ZQL_N_IF:
  case ZQL_N_WHEN:
    check_expr(an, &c, n->u.cond_stmt.cond);
    check_cond(an, n->u.cond_stmt.cond,
               n->kind == ZQL_N_IF ? "the 'if' condition" : "the 'when' condition");
    check_block(an, qc, n->u.cond_stmt.then, sc);
    if (n->u.cond_stmt.else_) {
      if (n->u.cond_stmt.else_->kind == ZQL_N_BLOCK) {
        check_block(an, qc, n->u.cond_stmt.else_, sc);
      } else {
        scope_t inner = *sc;
        check_stmt(an, qc, n->u.cond_stmt.else_, &inner);
      }
    }
    return;
  case ZQL_N_FOR: {
    check_expr(an, &c, n->u.for_stmt.iter);
    scope_t inner = *sc;
    if (!redefined(an, sc->binds, n->u.for_stmt.var, n->u.for_stmt.var_span))
      inner.binds = add_bind(an, sc->binds, n->u.for_stmt.var, ZQL_REF_LOCAL, n, ZQL_T_ANY);
    check_block(an, qc, n->u.for_stmt.body, &inner);
    return;
  }
  case ZQL_N_EMIT:
    check_emit(an, qc, n, sc);
    return;
  case ZQL_N_BLOCK:
    check_block(an, qc, n, sc);
    return;
  default:
    return;
  }
}

static void check_block(analyzer_t *an, qctx_t *qc, zql_node_t *blk, const scope_t *outer)
{
  if (!blk)
    return;
  scope_t sc = *outer;
  for (uint32_t i = 0; i < blk->u.list.n; i++)
    check_stmt(an, qc, blk->u.list.items[i], &sc);
  for (uint32_t i = 0; i < blk->u.list.n; i++)
    warn_unused_let(an, blk->u.list.items[i]);
}

/* }==== */

/* {==== options */

static void ident_option(analyzer_t *an, const zql_node_t *opt, const char *what,
                         const char *const *values, const char *all)
{
  const char *v = opt->u.option.ident;
  if (!v || in_list(v, values))
    return;
  zql_error_t *e = report(an, ZQL_E_BAD_OPTION_VALUE, opt->u.option.ident_span,
                          "unknown %s '%s'", what, v);
  suggest_t sg;
  suggest_init(&sg, v);
  for (const char *const *p = values; *p; p++)
    suggest_add(&sg, *p, NULL);
  if (sg.best)
    hint(an, e, "did you mean '%s'?", sg.best);
  else
    hint(an, e, "%s", all);
}

/* A constant option value: folded into *v. False when reported. */
static bool option_value(analyzer_t *an, zql_node_t *val, const char *what, cval_t *v)
{
  ectx_t c = const_ctx("an option");
  int before = an->diags->nerr;
  check_expr(an, &c, val);
  if (an->diags->nerr != before)
    return false;
  const zql_node_t *bad = NULL;
  if (!const_eval(an, val, v, &bad)) {
    zql_error_t *e = report(an, ZQL_E_NOT_CONSTANT, (bad ? bad : val)->span,
                            "the value of '%s' must be a constant", what);
    hint(an, e, "use a literal or a '$param'");
    return false;
  }
  return v->kind != CV_UNKNOWN;
}

static void duration_option(analyzer_t *an, zql_node_t *val, const char *what)
{
  cval_t v;
  if (!val || !option_value(an, val, what, &v))
    return;
  if (v.kind == CV_ERROR) {
    report(an, ZQL_E_BAD_DURATION_VALUE, val->span, "the value of '%s' divides by zero", what);
  } else if (v.kind != CV_DURATION) {
    zql_error_t *e = report(an, ZQL_E_BAD_DURATION_VALUE, val->span,
                            "'%s' needs a duration, not %s", what, cv_a_kind(v.kind));
    hint(an, e, "durations have a unit: 250ms 5s 10m 2h 1d 1w");
  } else if (v.i <= 0) {
    report(an, ZQL_E_BAD_DURATION_VALUE, val->span, "'%s' must be a positive duration", what);
  }
}

/* A collection name given by the user (into, late sidecar): E3036 on bad names. Returns
 * whether it uses {table}. */
static bool check_collection(analyzer_t *an, const char *s, zql_span_t span, bool allow_table)
{
  bool has_table = false;
  if (!s[0]) {
    report(an, ZQL_E_BAD_INTO, span, "output collection name is empty");
    return false;
  }
  const char *dollar = strchr(s, '$');
  if (dollar) {
    zql_error_t *e = report(an, ZQL_E_BAD_INTO, str_subspan(an, span, (size_t)(dollar - s), 1),
                            "output collection '%s' contains '$'", s);
    hint(an, e, "MongoDB collection names cannot contain '$'");
  }
  if (literal_has_nul(an, span))
    report(an, ZQL_E_BAD_INTO, span, "output collection name contains a NUL byte");
  for (const char *p = strchr(s, '{'); p; p = strchr(p + 1, '{')) {
    if (strncmp(p, "{table}", 7) == 0) {
      has_table = true;
      continue;
    }
    const char *end = strchr(p, '}');
    size_t len = end ? (size_t)(end - p + 1) : strlen(p);
    zql_error_t *e = report(an, ZQL_E_BAD_INTO, str_subspan(an, span, (size_t)(p - s), len),
                            "'%.*s' in an output collection name is not '{table}'", (int)len, p);
    hint(an, e, "the only placeholder in 'into' is {table}, the table name of a map aggregate");
    break;
  }
  if (has_table && !allow_table) {
    const char *p = strstr(s, "{table}");
    report(an, ZQL_E_BAD_INTO, str_subspan(an, span, (size_t)(p - s), 7),
           "'{table}' in 'into' needs a map aggregate");
  }
  return has_table;
}

static void check_schedule(analyzer_t *an, zql_node_t *opt)
{
  switch (opt->u.option.sched) {
  case ZQL_SCHED_EVERY:
    duration_option(an, opt->u.option.value, "schedule every");
    return;
  case ZQL_SCHED_CRON:
    if (opt->u.option.str)
      check_cron(an, opt->u.option.str, opt->u.option.str_span);
    return;
  case ZQL_SCHED_EVENT:
  case ZQL_SCHED_CLOSE: {
    const char *id = opt->u.option.ident;
    zql_node_t *pred = opt->u.option.value;
    if (streq(id, "close") || (!id && opt->u.option.sched == ZQL_SCHED_CLOSE)) {
      opt->u.option.sched = ZQL_SCHED_CLOSE;
      if (pred) {
        zql_error_t *e = report(an, ZQL_E_BAD_OPTION_VALUE, pred->span,
                                "'schedule on close' takes no predicate");
        hint(an, e, "filter events with 'where', or use 'schedule on event PREDICATE'");
      }
      return;
    }
    if (id && !streq(id, "event")) {
      zql_error_t *e = report(an, ZQL_E_BAD_OPTION_VALUE, opt->u.option.ident_span,
                              "unknown schedule 'on %s'", id);
      hint(an, e, "write 'schedule on event [PREDICATE]' or 'schedule on close'");
      return;
    }
    opt->u.option.sched = ZQL_SCHED_EVENT;
    if (pred) {
      scope_t ev;
      memset(&ev, 0, sizeof ev);
      ev.event = true;
      ectx_t c = row_ctx(&ev, "a schedule predicate");
      check_expr(an, &c, pred);
      check_cond(an, pred, "the 'on event' predicate");
    }
    return;
  }
  case ZQL_SCHED_AFTER: {
    const char *id = opt->u.option.ident;
    if (!id || sym_get(&an->aggs, id))
      return;
    zql_error_t *e = report(an, ZQL_E_UNKNOWN_AGGREGATE, opt->u.option.ident_span,
                            "unknown aggregate '%s'", id);
    suggest_t sg;
    suggest_init(&sg, id);
    for (uint32_t i = 0; i < an->nagg; i++)
      suggest_add(&sg, an->agglist[i]->node->u.query.name, NULL);
    if (sg.best)
      hint(an, e, "did you mean '%s'?", sg.best);
    return;
  }
  default:
    return;
  }
}

static void check_options(analyzer_t *an, qctx_t *qc)
{
  static const char *const modes[] = {"reduce", "merge", "replace", "upsert", NULL};
  static const char *const lates[] = {"merge", "drop", "sidecar", NULL};
  static const char *const on_errors[] = {"fail", "skip", NULL};
  zql_node_t *q = qc->q;
  zql_node_t *seen_opt[ZQL_OPT__COUNT] = {0};
  const zql_list_t *opts = &q->u.query.options;
  for (uint32_t i = 0; i < opts->n; i++) {
    zql_node_t *opt = opts->items[i];
    zql_option_kind_t k = opt->u.option.opt;
    if ((unsigned)k >= ZQL_OPT__COUNT)
      continue;
    if (seen_opt[k]) {
      zql_error_t *e = report(an, ZQL_E_DUPLICATE_OPTION, opt->span, "duplicate option '%s'",
                              zql_option_name(k));
      hint(an, e, "'%s' is first given at line %u", zql_option_name(k),
           line_of(an->src, seen_opt[k]->span.start));
      continue;
    }
    seen_opt[k] = opt;
    switch (k) {
    case ZQL_OPT_MODE:
      ident_option(an, opt, "mode", modes, "the modes are reduce, merge, replace and upsert");
      break;
    case ZQL_OPT_SCHEDULE:
      check_schedule(an, opt);
      break;
    case ZQL_OPT_LATENESS: {
      duration_option(an, opt->u.option.value, "lateness");
      ident_option(an, opt, "late policy", lates, "the late policies are merge, drop and sidecar");
      if (opt->u.option.str) {
        if (opt->u.option.ident && !streq(opt->u.option.ident, "sidecar"))
          report(an, ZQL_E_BAD_OPTION_VALUE, opt->u.option.str_span,
                 "only 'late sidecar' takes a collection name");
        else
          check_collection(an, opt->u.option.str, opt->u.option.str_span, false);
      }
      break;
    }
    case ZQL_OPT_SETTLE:
      duration_option(an, opt->u.option.value, "settle");
      break;
    case ZQL_OPT_RETAIN:
      duration_option(an, opt->u.option.value, "retain");
      break;
    case ZQL_OPT_ON_ERROR:
      ident_option(an, opt, "on_error policy", on_errors, "on_error takes fail or skip");
      break;
    case ZQL_OPT_PARTITIONS: {
      cval_t v;
      zql_node_t *val = opt->u.option.value;
      if (val && option_value(an, val, "partitions", &v) &&
          (v.kind != CV_INT || v.i < 1 || v.i > 65536)) {
        zql_error_t *e = report(an, ZQL_E_BAD_OPTION_VALUE, val->span,
                                "'partitions' must be an integer from 1 to 65536");
        if (v.kind == CV_INT)
          hint(an, e, "%" PRId64 " is out of range", v.i);
        else if (v.kind == CV_ERROR)
          hint(an, e, "the value divides by zero");
        else if (v.kind == CV_DOUBLE)
          hint(an, e, "%s is not an integer", cv_text(an, &v));
      }
      break;
    }
    default:
      break;
    }
  }
  /* into: a map aggregate writing to several tables needs {table} */
  zql_node_t *into = seen_opt[ZQL_OPT_INTO];
  bool is_map = q->u.query.map != NULL;
  if (into && into->u.option.str) {
    bool has_table = check_collection(an, into->u.option.str, into->u.option.str_span, is_map);
    if (is_map && qc->tables.n >= 2 && !has_table) {
      zql_error_t *e = report(an, ZQL_E_BAD_INTO, into->u.option.str_span,
                              "aggregate '%s' writes %u tables, so its output collection needs "
                              "'{table}'", q->u.query.name, qc->tables.n);
      hint(an, e, "for example into \"zagg.%s.{table}\"", q->u.query.name);
    }
  }
  /* key template */
  zql_node_t *key = seen_opt[ZQL_OPT_KEY];
  if (key && !key->u.option.key_doc) {
    if (key->u.option.ident) {
      zql_error_t *e = report(an, ZQL_E_BAD_OPTION_VALUE, key->u.option.ident_span,
                              "'key' takes a template string or 'doc', not '%s'",
                              key->u.option.ident);
      hint(an, e, "write key \"{k1}/{k2}\" or key doc");
    } else if (key->u.option.str) {
      uint32_t cap = q->u.query.keys.n + 2;
      for (uint32_t i = 0; i < qc->tables.n; i++)
        cap += qc->tables.items[i]->u.table.fields.n;
      const char **names = zql_arena_calloc(an->arena, cap, sizeof *names);
      if (!names) {
        an->oom = true;
        return;
      }
      uint32_t nn = 0;
      for (uint32_t i = 0; i < q->u.query.keys.n; i++) {
        const char *kn = key_name(q->u.query.keys.items[i]);
        if (kn)
          names[nn++] = kn;
      }
      if (is_map) {
        for (uint32_t i = 0; i < qc->tables.n; i++) {
          const zql_list_t *fl = &qc->tables.items[i]->u.table.fields;
          for (uint32_t j = 0; j < fl->n; j++)
            names[nn++] = fl->items[j]->u.field.name;
        }
        names[nn++] = "table";
      }
      names[nn] = NULL;
      check_key_template(an, key->u.option.str, key->u.option.str_span, names, is_map);
    }
  }
}

/* }==== */

/* {==== aggregates and queries */

/* `limit N` / `offset N` / `rank ... limit N`: an integer >= min. */
static void check_count(analyzer_t *an, zql_node_t *n, const char *what, int64_t min)
{
  if (!n)
    return;
  ectx_t c = const_ctx("a count");
  check_expr(an, &c, n); /* a literal: sets its type */
  if (n->kind != ZQL_N_INT) {
    report(an, ZQL_E_ARG_KIND, n->span, "'%s' needs an integer", what);
  } else if (n->u.lit.i < min) {
    report(an, ZQL_E_ARG_RANGE, n->span, "'%s' must be at least %" PRId64 ", not %" PRId64,
           what, min, n->u.lit.i);
  }
}

/* "compute n = count() limit 10;" in an ad-hoc query: the limit is the query's. */
static void move_item_limit(analyzer_t *an, zql_node_t *q)
{
  zql_list_t *items = &q->u.query.compute;
  if (!items->n || q->u.query.limit)
    return;
  zql_node_t *it = items->items[items->n - 1];
  if (!it->u.aggitem.limit || it->u.aggitem.else_ || it->u.aggitem.filter)
    return;
  zql_node_t *e = it->u.aggitem.expr;
  if (e && e->kind == ZQL_N_CALL && !sym_get(&an->reducers, e->u.call.name)) {
    const zql_func_t *f = zql_func_lookup(e->u.call.name, (int)e->u.call.args.n);
    if (f && (f->flags & ZQL_FN_LIMIT))
      return;
  }
  q->u.query.limit = it->u.aggitem.limit;
  q->u.query.offset = it->u.aggitem.offset;
  it->u.aggitem.limit = NULL;
  it->u.aggitem.offset = NULL;
}

static void check_item_limit(analyzer_t *an, zql_node_t *it, bool is_def)
{
  zql_node_t *lim = it->u.aggitem.limit;
  if (it->u.aggitem.offset) {
    zql_error_t *e = report(an, ZQL_E_CLAUSE_NOT_ALLOWED, it->u.aggitem.offset->span,
                            "'offset' cannot follow the limit of computed field '%s'",
                            it->u.aggitem.name);
    hint(an, e, is_def ? "an aggregate definition has no 'offset'"
                       : "write 'order by ...' before 'limit N offset M'");
  }
  if (!lim)
    return;
  zql_node_t *e = it->u.aggitem.expr;
  if (e && e->kind == ZQL_N_CALL && !e->u.call.func && !e->u.call.reducer)
    return; /* the call itself was reported */
  const zql_func_t *f = e && e->kind == ZQL_N_CALL ? e->u.call.func : NULL;
  if (!f || !(f->flags & ZQL_FN_LIMIT)) {
    zql_error_t *er;
    if (e && e->kind == ZQL_N_CALL)
      er = report(an, ZQL_E_ARG_KIND, lim->span, "'%s' takes no 'limit'", e->u.call.name);
    else
      er = report(an, ZQL_E_ARG_KIND, lim->span, "computed field '%s' takes no 'limit'",
                  it->u.aggitem.name);
    zql_strbuf_t sb = ZQL_STRBUF_INIT;
    names_with_flag(&sb, ZQL_FN_LIMIT);
    hint(an, er, "only %s takes 'limit N [else hll]'%s", sb.buf,
         is_def ? "" : "; a query's limit goes after 'order by'");
    zql_strbuf_release(&sb);
    return;
  }
  check_count(an, lim, "limit", 1);
  if (it->u.aggitem.else_ && !streq(it->u.aggitem.else_, "hll")) {
    zql_error_t *er = report(an, ZQL_E_BAD_OPTION_VALUE, it->u.aggitem.else_span,
                             "unknown fallback '%s' after 'else'", it->u.aggitem.else_);
    hint(an, er, "the only fallback is 'else hll'");
  }
}

/* Compute or per items: each needs an aggregator; names unique among outputs. */
static void check_items(analyzer_t *an, qctx_t *qc, zql_list_t *items, const zql_list_t *keys,
                        zql_node_t *per, const scope_t *row)
{
  for (uint32_t i = 0; i < items->n; i++) {
    zql_node_t *it = items->items[i];
    const char *name = it->u.aggitem.name;
    bool found = false;
    ectx_t c = out_ctx(row, keys, items, i);
    c.per = per;
    c.item = name;
    c.found_agg = &found;
    int before = an->diags->nerr;
    check_expr(an, &c, it->u.aggitem.expr);
    if (!found && an->diags->nerr == before && it->u.aggitem.expr) {
      zql_error_t *e = report(an, ZQL_E_NO_AGGREGATE, it->u.aggitem.expr->span,
                              "computed field '%s' has no aggregate", name);
      hint(an, e, "use an aggregator such as count(), sum(...) or first(...)%s",
           keys ? "; keys belong in 'group by'" : "");
    }
    if (it->u.aggitem.filter) {
      const char *clause = zql_arena_printf(an->arena, "the 'where' of '%s'", name);
      ectx_t f = row_ctx(row, clause ? clause : "a 'where'");
      check_expr(an, &f, it->u.aggitem.filter);
      check_cond(an, it->u.aggitem.filter, "the 'where' condition of a computed field");
    }
    check_item_limit(an, it, qc->is_def);
    bool dup = false;
    for (uint32_t j = 0; j < i && !dup; j++) {
      if (streq(items->items[j]->u.aggitem.name, name)) {
        zql_error_t *e = report(an, ZQL_E_DUPLICATE_OUTPUT, it->u.aggitem.name_span,
                                "duplicate output name '%s'", name);
        hint(an, e, "'%s' is first used at line %u", name,
             line_of(an->src, items->items[j]->span.start));
        dup = true;
      }
    }
    for (uint32_t j = 0; keys && j < keys->n && !dup; j++) {
      if (streq(key_name(keys->items[j]), name)) {
        zql_error_t *e = report(an, ZQL_E_DUPLICATE_OUTPUT, it->u.aggitem.name_span,
                                "duplicate output name '%s'", name);
        hint(an, e, "'%s' is also a key; rename one of them", name);
        dup = true;
      }
    }
  }
}

/* A name to propose in "add 'as NAME'" for an unnamed key. */
static const char *key_name_idea(const zql_node_t *e)
{
  if (!e)
    return NULL;
  switch (e->kind) {
  case ZQL_N_BUCKET:
    return e->u.bucket.unit && is_unit(e->u.bucket.unit) ? e->u.bucket.unit : "bucket";
  case ZQL_N_CALL:
    return e->u.call.name;
  case ZQL_N_PATH:
    for (uint32_t i = e->u.path.nsteps; i > 0; i--)
      if (e->u.path.steps[i - 1].kind == ZQL_STEP_FIELD)
        return e->u.path.steps[i - 1].name;
    if (streq(e->u.path.root, "_seq"))
      return "seq";
    if (streq(e->u.path.root, "_id"))
      return "id";
    if (streq(e->u.path.root, "event"))
      return "doc";
    return e->u.path.root[0] != '_' ? e->u.path.root : NULL;
  default:
    return NULL;
  }
}

static void check_keys(analyzer_t *an, zql_list_t *keys, const scope_t *row)
{
  for (uint32_t i = 0; i < keys->n; i++) {
    zql_node_t *k = keys->items[i];
    ectx_t c = row_ctx(row, "a 'group by' key");
    check_expr(an, &c, k->u.key.expr);
    if (k->u.key.per) {
      check_expr(an, &c, k->u.key.per);
      const zql_node_t *ke = k->u.key.expr;
      if (!(ke->kind == ZQL_N_CALL && streq(ke->u.call.name, "session"))) {
        zql_error_t *e = report(an, ZQL_E_ARG_KIND, k->u.key.per->span,
                                "'per' in a key applies only to session(...)");
        hint(an, e, "session(timestamp, gap 30m) per context.user as s; for a per-entity "
                    "stage write 'per KEY as u { ... }' before 'group by'");
      }
    }
    const char *name = k->u.key.alias ? k->u.key.alias : key_auto_name(k->u.key.expr);
    k->u.key.name = name;
    if (!name) {
      zql_error_t *e = report(an, ZQL_E_KEY_NEEDS_NAME, k->u.key.expr ? k->u.key.expr->span
                                                                      : k->span,
                              "key expression needs a name");
      const char *idea = key_name_idea(k->u.key.expr);
      if (idea)
        hint(an, e, "add 'as NAME', for example 'as %s'", idea);
      else
        hint(an, e, "add 'as NAME'");
      continue;
    }
    for (uint32_t j = 0; j < i; j++) {
      if (streq(key_name(keys->items[j]), name)) {
        zql_span_t sp = k->u.key.alias ? k->u.key.alias_span : k->u.key.expr->span;
        zql_error_t *e = report(an, ZQL_E_DUPLICATE_OUTPUT, sp, "duplicate output name '%s'",
                                name);
        hint(an, e, "name one of the keys with 'as'");
        break;
      }
    }
  }
}

static void check_sources(analyzer_t *an, zql_node_t *q)
{
  const zql_list_t *srcs = &q->u.query.sources;
  for (uint32_t i = 0; i < srcs->n; i++) {
    zql_node_t *s = srcs->items[i];
    const char *name = s->u.source.name;
    s->u.source.def = NULL;
    if (s->u.source.is_agg) {
      def_t *d = sym_get(&an->aggs, name);
      if (d) {
        s->u.source.def = d->node;
        continue;
      }
      zql_error_t *e = report(an, ZQL_E_UNKNOWN_AGGREGATE, s->span, "unknown aggregate '%s'",
                              name);
      suggest_t sg;
      suggest_init(&sg, name);
      for (uint32_t j = 0; j < an->nagg; j++)
        suggest_add(&sg, an->agglist[j]->node->u.query.name, NULL);
      if (sg.best)
        hint(an, e, "did you mean '%s'?", sg.best);
      else
        hint(an, e, "'from agg' reads an aggregate defined in the files being checked");
    } else if (!streq(name, "event")) {
      zql_error_t *e = report(an, ZQL_E_UNKNOWN_SOURCE, s->span, "unknown source '%s'", name);
      if (sym_get(&an->aggs, name))
        hint(an, e, "write 'agg %s' to read the results of aggregate '%s'", name, name);
      else
        hint(an, e, "a source is 'event' or 'agg NAME'");
    }
  }
}

static void check_rowops(analyzer_t *an, zql_node_t *q, scope_t *pre)
{
  const zql_list_t *ops = &q->u.query.rowops;
  for (uint32_t i = 0; i < ops->n; i++) {
    zql_node_t *op = ops->items[i];
    switch (op->kind) {
    case ZQL_N_WHERE: {
      ectx_t c = row_ctx(pre, "'where'");
      check_expr(an, &c, op->u.unary_clause.arg);
      check_cond(an, op->u.unary_clause.arg, "the 'where' condition");
      break;
    }
    case ZQL_N_LET: {
      ectx_t c = row_ctx(pre, "'let'");
      check_expr(an, &c, op->u.decl.value);
      if (redefined(an, pre->binds, op->u.decl.name, op->u.decl.name_span))
        op->u.decl.used = true; /* reported; no second diagnostic */
      else
        pre->binds = add_bind(an, pre->binds, op->u.decl.name, ZQL_REF_LET, op,
                              op->u.decl.value ? op->u.decl.value->type : ZQL_T_ANY);
      break;
    }
    case ZQL_N_UNWIND: {
      zql_node_t *path = op->u.unwind.path;
      ectx_t c = row_ctx(pre, "'unwind'");
      if (!path || path->kind != ZQL_N_PATH) {
        report(an, ZQL_E_BAD_UNWIND, path ? path->span : op->span, "'unwind' needs a path");
        break;
      }
      check_expr(an, &c, path);
      const char *alias = op->u.unwind.alias;
      zql_span_t aspan = op->u.unwind.alias_span;
      if (!alias) {
        if (path->u.path.nsteps == 0)
          alias = streq(path->u.path.root, "event") ? NULL : path->u.path.root;
        else if (path->u.path.steps[path->u.path.nsteps - 1].kind == ZQL_STEP_FIELD)
          alias = path->u.path.steps[path->u.path.nsteps - 1].name;
        aspan = path->span;
        if (!alias) {
          zql_error_t *e = report(an, ZQL_E_BAD_UNWIND, path->span,
                                  "unwind path needs a name");
          hint(an, e, "the path does not end in a field name: add 'as NAME', for example "
                      "'as item'");
          break;
        }
        op->u.unwind.alias = alias;
      }
      if (!redefined(an, pre->binds, alias, aspan))
        pre->binds = add_bind(an, pre->binds, alias, ZQL_REF_UNWIND, op, ZQL_T_ANY);
      break;
    }
    default:
      break;
    }
  }
}

static void check_rank(analyzer_t *an, qctx_t *qc, const ectx_t *outs)
{
  zql_node_t *q = qc->q, *rank = q->u.query.rank;
  if (!q->u.query.has_compute) {
    zql_error_t *e = report(an, ZQL_E_NEEDS_GROUPING, keyword_span(rank, 4),
                            "'rank' needs 'compute'");
    hint(an, e, "rank ranks groups by a computed value: group by ... compute n = count() "
                "rank by n ...");
  } else if (!q->u.query.grouped) {
    report(an, ZQL_E_BAD_RANK, keyword_span(rank, 4), "'rank' needs 'group by'");
  }
  check_expr(an, outs, rank->u.rank.by);
  check_count(an, rank->u.rank.limit, "limit", 1);
  const zql_list_t *keys = &q->u.query.keys;
  const zql_list_t *within = &rank->u.rank.within;
  for (uint32_t i = 0; i < within->n; i++) {
    zql_node_t *p = within->items[i];
    p->type = ZQL_T_ANY;
    zql_node_t *key = NULL;
    if (p->kind == ZQL_N_PATH && p->u.path.nsteps == 0)
      for (uint32_t j = 0; j < keys->n && !key; j++)
        if (streq(key_name(keys->items[j]), p->u.path.root))
          key = keys->items[j];
    if (key) {
      p->u.path.ref = ZQL_REF_KEY;
      p->u.path.target = key;
      p->type = key->u.key.expr ? key->u.key.expr->type : ZQL_T_ANY;
      continue;
    }
    if (!q->u.query.grouped)
      continue;
    const char *text = span_text(an, p->span);
    zql_error_t *e = report(an, ZQL_E_BAD_RANK, p->span, "'%s' in 'within' is not a key",
                            text ? text : "?");
    suggest_t sg;
    suggest_init(&sg, p->kind == ZQL_N_PATH ? p->u.path.root : "");
    zql_strbuf_t sb = ZQL_STRBUF_INIT;
    for (uint32_t j = 0; j < keys->n; j++) {
      const char *kn = key_name(keys->items[j]);
      suggest_add(&sg, kn, NULL);
      if (kn)
        zql_strbuf_addf(&sb, "%s'%s'", sb.len ? ", " : "", kn);
    }
    if (sg.best)
      hint(an, e, "did you mean '%s'?", sg.best);
    else
      hint(an, e, "the keys are %s", sb.buf);
    zql_strbuf_release(&sb);
  }
}

static void check_query(analyzer_t *an, zql_node_t *q, bool is_def)
{
  qctx_t qc;
  memset(&qc, 0, sizeof qc);
  qc.q = q;
  qc.is_def = is_def;
  if (!is_def)
    move_item_limit(an, q);
  check_sources(an, q);
  qc.pre.sources = &q->u.query.sources;
  check_rowops(an, q, &qc.pre);
  qc.row = &qc.pre;
  bool grouped = q->u.query.grouped, has_compute = q->u.query.has_compute;
  zql_node_t *per = q->u.query.per;
  if (per) {
    if (!grouped && !has_compute) {
      zql_error_t *e = report(an, ZQL_E_NEEDS_GROUPING, keyword_span(per, 3),
                              "'per' needs 'group by' or 'compute' after it");
      hint(an, e, "the per stage feeds a second aggregation: per ... as u { ... } "
                  "compute n = count()");
    }
    ectx_t c = row_ctx(&qc.pre, "the 'per' key");
    check_expr(an, &c, per->u.per.key);
    check_items(an, &qc, &per->u.per.items, NULL, per, &qc.pre);
    qc.post.per = per;
    qc.post.hidden = &qc.pre;
    qc.row = &qc.post;
  }
  check_keys(an, &q->u.query.keys, qc.row);
  check_items(an, &qc, &q->u.query.compute, &q->u.query.keys, NULL, qc.row);
  if (q->u.query.map) {
    if (grouped && q->u.query.keys.n > 0) {
      zql_error_t *e = report(an, ZQL_E_CLAUSE_NOT_ALLOWED, q->u.query.keys.items[0]->span,
                              "'group by' cannot be used with 'map'");
      hint(an, e, "a map block groups by table indices: emit T[k1, k2] <- v");
    }
    check_block(an, &qc, q->u.query.map, qc.row);
  }
  ectx_t outs = out_ctx(qc.row, &q->u.query.keys, &q->u.query.compute, q->u.query.compute.n);
  if (q->u.query.having) {
    if (!has_compute) {
      zql_error_t *e = report(an, ZQL_E_NEEDS_GROUPING, q->u.query.having->span,
                              "'having' needs 'compute'");
      hint(an, e, "filter rows with 'where'; 'having' filters groups by computed values");
    }
    ectx_t rows = row_ctx(qc.row, NULL); /* E3038 said it all: no E3005 cascade */
    check_expr(an, has_compute || grouped ? &outs : &rows, q->u.query.having);
    check_cond(an, q->u.query.having, "the 'having' condition");
  }
  if (q->u.query.rank)
    check_rank(an, &qc, &outs);
  const zql_list_t *order = &q->u.query.order;
  if (order->n > 0 && is_def) {
    zql_error_t *e = report(an, ZQL_E_CLAUSE_NOT_ALLOWED, order->items[0]->span,
                            "'order by' is not allowed in an aggregate definition");
    hint(an, e, "an aggregate stores every group; order when reading it: from agg %s order "
                "by ...", q->u.query.name);
  } else {
    ectx_t rows = row_ctx(qc.row, "'order by' of a row query");
    for (uint32_t i = 0; i < order->n; i++)
      check_expr(an, grouped || has_compute ? &outs : &rows, order->items[i]->u.order.expr);
  }
  if (is_def && (q->u.query.limit || q->u.query.offset)) {
    zql_node_t *l = q->u.query.limit ? q->u.query.limit : q->u.query.offset;
    zql_error_t *e = report(an, ZQL_E_CLAUSE_NOT_ALLOWED, l->span,
                            "'limit' is not allowed in an aggregate definition");
    hint(an, e, "to keep the top N of each group, use rank by ... limit N within (keys)");
  } else {
    check_count(an, q->u.query.limit, "limit", 1);
    check_count(an, q->u.query.offset, "offset", 0);
  }
  if (is_def) {
    if (!has_compute && !grouped && !q->u.query.map && !per) {
      zql_error_t *e = report(an, ZQL_E_NEEDS_GROUPING, q->u.query.name_span,
                              "aggregate '%s' computes nothing", q->u.query.name);
      hint(an, e, "add 'compute NAME = aggregator(...)' or a 'map { ... }' block");
    }
    check_options(an, &qc);
  } else {
    for (uint32_t i = 0; i < q->u.query.options.n; i++) {
      zql_node_t *opt = q->u.query.options.items[i];
      zql_error_t *e = report(an, ZQL_E_CLAUSE_NOT_ALLOWED, opt->span,
                              "option '%s' is not allowed in a query",
                              zql_option_name(opt->u.option.opt));
      if (i == 0)
        hint(an, e, "options belong to stored aggregates: aggregate NAME from ... %s ...;",
             zql_option_name(opt->u.option.opt));
    }
  }
  /* a row query outputs its lets as columns: they are used */
  bool rowq = !q->u.query.grouped && !q->u.query.has_compute && !q->u.query.map &&
              !q->u.query.per;
  for (uint32_t i = 0; i < q->u.query.rowops.n && !rowq; i++)
    warn_unused_let(an, q->u.query.rowops.items[i]);
}

static void check_explain(analyzer_t *an, zql_node_t *n)
{
  if (n->u.explain.target) {
    check_query(an, n->u.explain.target, false);
    return;
  }
  const char *name = n->u.explain.name;
  if (!name || sym_get(&an->aggs, name))
    return;
  zql_error_t *e = report(an, ZQL_E_UNKNOWN_AGGREGATE, n->u.explain.name_span,
                          "unknown aggregate '%s'", name);
  suggest_t sg;
  suggest_init(&sg, name);
  for (uint32_t i = 0; i < an->nagg; i++)
    suggest_add(&sg, an->agglist[i]->node->u.query.name, NULL);
  if (sg.best)
    hint(an, e, "did you mean '%s'?", sg.best);
}

/* }==== */

/* }==== */

/* {==== passes ============================================================================ */

/* Pass 1: enter a definition into its global table (E3010 on duplicates). */
static void collect(analyzer_t *an, zql_node_t *item)
{
  symtab_t *t;
  const char *name, *what;
  zql_span_t span;
  switch (item->kind) {
  case ZQL_N_PARAM:
    t = &an->params, name = item->u.decl.name, span = item->u.decl.name_span, what = "parameter";
    break;
  case ZQL_N_TABLE:
    t = &an->tables, name = item->u.table.name, span = item->u.table.name_span, what = "table";
    break;
  case ZQL_N_REDUCER:
    t = &an->reducers, name = item->u.reducer.name, span = item->u.reducer.name_span,
    what = "reducer";
    break;
  case ZQL_N_AGGREGATE:
    t = &an->aggs, name = item->u.query.name, span = item->u.query.name_span,
    what = "aggregate";
    break;
  default:
    return;
  }
  if (!name)
    return;
  def_t *old = sym_get(t, name);
  if (old) {
    zql_error_t *e = report(an, ZQL_E_DUPLICATE_DEFINITION, span,
                            "duplicate definition of %s '%s'", what, name);
    hint(an, e, "'%s' is first defined at %s", name,
         where_str(an, old->src, old->node->span));
    return;
  }
  if (item->kind == ZQL_N_REDUCER && zql_func_by_name(name)) {
    zql_error_t *e = report(an, ZQL_E_DUPLICATE_DEFINITION, span,
                            "reducer '%s' has the name of a built-in function", name);
    hint(an, e, "choose another name");
    return;
  }
  def_t *d = alloc(an, sizeof *d);
  if (!d || !sym_put(an, t, name, d))
    return;
  d->node = item;
  d->src = an->src;
  if (item->kind == ZQL_N_AGGREGATE) {
    if (an->nagg == an->capagg) {
      uint32_t ncap = an->capagg ? an->capagg * 2 : 16;
      def_t **na = zql_arena_calloc(an->arena, ncap, sizeof *na);
      if (!na) {
        an->oom = true;
        return;
      }
      if (an->nagg)
        memcpy(na, an->agglist, an->nagg * sizeof *na);
      an->agglist = na;
      an->capagg = ncap;
    }
    an->agglist[an->nagg++] = d;
  }
}

/* Pass 3: one statement (params and reducers were checked by pass 2). */
static void check_item(analyzer_t *an, zql_node_t *item)
{
  an->seen = NULL;
  an->item = item;
  switch (item->kind) {
  case ZQL_N_TABLE:
    check_table(an, item);
    break;
  case ZQL_N_AGGREGATE:
    check_query(an, item, true);
    break;
  case ZQL_N_QUERY:
    check_query(an, item, false);
    break;
  case ZQL_N_EXPLAIN:
    check_explain(an, item);
    break;
  default:
    break;
  }
}

/* Edge i of aggregate d in the dependency graph: a `from agg` source or `schedule after`. */
static bool agg_edge(analyzer_t *an, const def_t *d, uint32_t i, def_t **to, zql_span_t *span)
{
  const zql_node_t *q = d->node;
  const zql_list_t *s = &q->u.query.sources;
  for (uint32_t k = 0; k < s->n; k++) {
    const zql_node_t *src = s->items[k];
    def_t *t = src->u.source.is_agg && src->u.source.def ? sym_get(&an->aggs, src->u.source.name)
                                                         : NULL;
    if (!t)
      continue;
    if (i == 0) {
      *to = t;
      *span = src->span;
      return true;
    }
    i--;
  }
  const zql_list_t *o = &q->u.query.options;
  for (uint32_t k = 0; k < o->n; k++) {
    const zql_node_t *opt = o->items[k];
    if (opt->u.option.opt != ZQL_OPT_SCHEDULE || opt->u.option.sched != ZQL_SCHED_AFTER)
      continue;
    def_t *t = sym_get(&an->aggs, opt->u.option.ident);
    if (!t)
      continue;
    if (i == 0) {
      *to = t;
      *span = opt->u.option.ident_span;
      return true;
    }
    i--;
  }
  return false;
}

/* Pass 3: depth-first search for cycles among aggregates (E3032), iteratively. */
static void check_cycles(analyzer_t *an)
{
  if (!an->nagg)
    return;
  def_t **stack = zql_arena_calloc(an->arena, an->nagg, sizeof *stack);
  uint32_t *next = zql_arena_calloc(an->arena, an->nagg, sizeof *next);
  if (!stack || !next) {
    an->oom = true;
    return;
  }
  for (uint32_t r = 0; r < an->nagg; r++) {
    if (an->agglist[r]->color)
      continue;
    uint32_t sp = 0;
    stack[sp] = an->agglist[r];
    stack[sp]->color = 1;
    stack[sp]->stackpos = 0;
    next[sp++] = 0;
    while (sp > 0) {
      def_t *d = stack[sp - 1], *to = NULL;
      zql_span_t span;
      if (!agg_edge(an, d, next[sp - 1]++, &to, &span)) {
        d->color = 2;
        sp--;
        continue;
      }
      if (to->color == 0) {
        to->color = 1;
        to->stackpos = sp;
        stack[sp] = to;
        next[sp++] = 0;
      } else if (to->color == 1) {
        zql_strbuf_t sb = ZQL_STRBUF_INIT;
        for (uint32_t k = to->stackpos; k < sp; k++)
          zql_strbuf_addf(&sb, "%s -> ", stack[k]->node->u.query.name);
        zql_strbuf_adds(&sb, to->node->u.query.name);
        zql_error_t *e = report_in(an, d->src, ZQL_E_CYCLE, span,
                                   "aggregate dependency cycle: %s", sb.buf);
        hint(an, e, "an aggregate cannot read its own results, directly or through others");
        zql_strbuf_release(&sb);
      }
    }
  }
}

int zql_analyze(zql_arena_t *arena, zql_node_t **files, size_t nfiles, zql_diags_t *diags)
{
  analyzer_t an;
  memset(&an, 0, sizeof an);
  an.arena = arena;
  an.diags = diags;
  for (size_t f = 0; f < nfiles; f++) {
    if (!files[f] || files[f]->kind != ZQL_N_FILE)
      continue;
    an.src = zql_file_source(files[f]);
    const zql_list_t *items = &files[f]->u.list;
    for (uint32_t i = 0; i < items->n && !an.oom; i++)
      collect(&an, items->items[i]);
  }
  /* pass 2: params and reducers, so that reducer result types do not depend on where a
   * reducer is defined; remember each file's params in order for pass 3 */
  def_t ***fparams = zql_arena_calloc(arena, nfiles ? nfiles : 1, sizeof *fparams);
  if (!fparams)
    return ZQL_E_NOMEM;
  for (size_t f = 0; f < nfiles && !an.oom; f++) {
    if (!files[f] || files[f]->kind != ZQL_N_FILE)
      continue;
    an.src = zql_file_source(files[f]);
    memset(&an.fparams, 0, sizeof an.fparams);
    const zql_list_t *items = &files[f]->u.list;
    fparams[f] = zql_arena_calloc(arena, items->n ? items->n : 1, sizeof *fparams[f]);
    if (!fparams[f])
      return ZQL_E_NOMEM;
    for (uint32_t i = 0; i < items->n && !an.oom; i++) {
      zql_node_t *item = items->items[i];
      an.seen = NULL;
      an.item = item;
      if (item->kind == ZQL_N_PARAM)
        fparams[f][i] = check_param(&an, item);
      else if (item->kind == ZQL_N_REDUCER)
        check_reducer(&an, item);
    }
  }
  /* pass 3: everything else, seeing the params declared before each statement */
  for (size_t f = 0; f < nfiles && !an.oom; f++) {
    if (!files[f] || files[f]->kind != ZQL_N_FILE)
      continue;
    an.src = zql_file_source(files[f]);
    memset(&an.fparams, 0, sizeof an.fparams);
    const zql_list_t *items = &files[f]->u.list;
    for (uint32_t i = 0; i < items->n && !an.oom; i++) {
      zql_node_t *item = items->items[i];
      def_t *d = fparams[f][i];
      if (item->kind == ZQL_N_PARAM && d && !sym_get(&an.fparams, item->u.decl.name))
        sym_put(&an, &an.fparams, item->u.decl.name, d);
      check_item(&an, item);
    }
  }
  /* pass 4 */
  if (!an.oom)
    check_cycles(&an);
  if (an.oom || diags->oom)
    return ZQL_E_NOMEM;
  return an.first_err;
}

/* }==== */
