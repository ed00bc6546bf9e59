/*
 * ast_print.c -- the tree printer behind --dump=ast and --dump=checked (stage 2 / 2b).
 *
 * One line per node, indented by two spaces per level, children in source order:
 *
 *   AGGREGATE pageviews_daily
 *     sources:
 *       SOURCE event
 *     rowops:
 *       WHERE
 *         BINARY ==
 *           PATH type                      (checked: PATH type [event] : any)
 *           STRING "pageview"
 *
 * Labels ("sources:", "keys:", ...) name the clause a list belongs to. In checked mode,
 * nodes also show what the analyzer found: path resolutions [event|let|key|...], call
 * kinds [aggregate|scalar|reducer], output names and static types (": int"). No pointers
 * and no byte offsets, so the output is stable and golden-tested (tests/parse, tests/checked).
 */
#include "runtime/base/zql_common.h"

#include <math.h>

#include "parser/registry.h"
#include "parser/zql_parse.h"

typedef struct {
  zql_strbuf_t *out;
  bool checked;
  const zql_source_t *src; /* set while printing a FILE: literals show their source text */
} printer_t;

static void print_node(printer_t *p, const zql_node_t *n, int ind);

static void indent(printer_t *p, int ind)
{
  zql_strbuf_addchars(p->out, ' ', (size_t)ind * 2);
}

static bool plain_ident(const char *s)
{
  if (!s || !*s || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
    return false;
  for (const char *c = s; *c; c++)
    if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
          *c == '_'))
      return false;
  return true;
}

static void add_name(printer_t *p, const char *s)
{
  if (plain_ident(s))
    zql_strbuf_adds(p->out, s);
  else
    zql_strbuf_addf(p->out, "`%s`", s ? s : "");
}

static void add_double(zql_strbuf_t *out, double d)
{
  if (isnan(d))
    zql_strbuf_adds(out, "nan");
  else if (isinf(d))
    zql_strbuf_adds(out, d > 0 ? "inf" : "-inf");
  else {
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", d);
    /* shortest representation that round-trips */
    for (int prec = 1; prec <= 17; prec++) {
      snprintf(buf, sizeof buf, "%.*g", prec, d);
      if (strtod(buf, NULL) == d)
        break;
    }
    zql_strbuf_adds(out, buf);
    if (!strpbrk(buf, ".eE"))
      zql_strbuf_adds(out, ".0");
  }
}

static void add_duration(zql_strbuf_t *out, int64_t ms)
{
  static const struct { const char *u; int64_t ms; } units[] = {
      {"w", 604800000}, {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
  if (ms == 0) {
    zql_strbuf_adds(out, "0s");
    return;
  }
  if (ms < 0) {
    zql_strbuf_addc(out, '-');
    ms = -ms;
  }
  for (size_t i = 0; i < ZQL_ARRAY_LEN(units); i++)
    if (ms >= units[i].ms) {
      zql_strbuf_addf(out, "%" PRId64 "%s", ms / units[i].ms, units[i].u);
      ms %= units[i].ms;
    }
}

static void add_path(printer_t *p, const zql_node_t *n)
{
  add_name(p, n->u.path.root);
  for (uint32_t i = 0; i < n->u.path.nsteps; i++) {
    const zql_step_t *s = &n->u.path.steps[i];
    switch (s->kind) {
    case ZQL_STEP_FIELD:
      zql_strbuf_addc(p->out, '.');
      add_name(p, s->name);
      break;
    case ZQL_STEP_INDEX:
      zql_strbuf_addf(p->out, "[%" PRId64 "]", s->index);
      break;
    case ZQL_STEP_ALL:
      zql_strbuf_adds(p->out, "[*]");
      break;
    }
  }
}

/* A bucket's tz/origin: a quoted string or a $param. */
static void add_strparam(printer_t *p, const zql_node_t *n)
{
  if (n->kind == ZQL_N_STRING)
    zql_strbuf_add_quoted(p->out, n->u.lit.str.s, n->u.lit.str.len);
  else if (n->kind == ZQL_N_PARAMREF)
    zql_strbuf_addf(p->out, "$%s", n->u.paramref.name);
}

static void add_type(printer_t *p, const zql_node_t *n)
{
  if (p->checked && n->kind >= ZQL_N_INT)
    zql_strbuf_addf(p->out, " : %s", zql_type_name(n->type));
}

static void label(printer_t *p, int ind, const char *what)
{
  indent(p, ind);
  zql_strbuf_addf(p->out, "%s:\n", what);
}

static void print_list(printer_t *p, const zql_list_t *l, int ind, const char *what)
{
  if (l->n == 0)
    return;
  if (what) {
    label(p, ind, what);
    ind++;
  }
  for (uint32_t i = 0; i < l->n; i++)
    print_node(p, l->items[i], ind);
}

static void print_child(printer_t *p, const zql_node_t *n, int ind, const char *what)
{
  if (!n)
    return;
  label(p, ind, what);
  print_node(p, n, ind + 1);
}

static const char *sched_name(zql_sched_kind_t k)
{
  switch (k) {
  case ZQL_SCHED_EVERY: return "every";
  case ZQL_SCHED_CRON: return "cron";
  case ZQL_SCHED_EVENT: return "on event";
  case ZQL_SCHED_CLOSE: return "on close";
  case ZQL_SCHED_AFTER: return "after";
  }
  return "?";
}

static void print_node(printer_t *p, const zql_node_t *n, int ind)
{
  zql_strbuf_t *o = p->out;
  indent(p, ind);
  zql_strbuf_adds(o, zql_node_kind_name(n->kind));
  switch (n->kind) {
  case ZQL_N_FILE:
  case ZQL_N_BLOCK:
  case ZQL_N_ARRAY:
  case ZQL_N_DOC:
    add_type(p, n);
    zql_strbuf_addc(o, '\n');
    print_list(p, &n->u.list, ind + 1, NULL);
    return;
  case ZQL_N_PARAM:
  case ZQL_N_LET:
    zql_strbuf_addc(o, ' ');
    add_name(p, n->u.decl.name);
    if (p->checked && n->kind == ZQL_N_LET && !n->u.decl.used)
      zql_strbuf_adds(o, " [unused]");
    zql_strbuf_addc(o, '\n');
    print_node(p, n->u.decl.value, ind + 1);
    return;
  case ZQL_N_TABLE:
    zql_strbuf_addc(o, ' ');
    add_name(p, n->u.table.name);
    zql_strbuf_addc(o, '\n');
    print_list(p, &n->u.table.fields, ind + 1, "index");
    print_child(p, n->u.table.of, ind + 1, "of");
    print_child(p, n->u.table.reducer, ind + 1, "reducer");
    return;
  case ZQL_N_REDUCER:
    zql_strbuf_addc(o, ' ');
    add_name(p, n->u.reducer.name);
    zql_strbuf_adds(o, " (");
    add_name(p, n->u.reducer.arg);
    zql_strbuf_addf(o, ": %s)\n", n->u.reducer.arg_type->u.typename_.name);
    print_list(p, &n->u.reducer.state, ind + 1, "state");
    print_list(p, &n->u.reducer.parts, ind + 1, "parts");
    return;
  case ZQL_N_AGGREGATE:
  case ZQL_N_QUERY:
    if (n->kind == ZQL_N_AGGREGATE) {
      zql_strbuf_addc(o, ' ');
      add_name(p, n->u.query.name);
    }
    zql_strbuf_addc(o, '\n');
    print_list(p, &n->u.query.sources, ind + 1, "sources");
    print_list(p, &n->u.query.rowops, ind + 1, "rowops");
    print_child(p, n->u.query.per, ind + 1, "per");
    if (n->u.query.grouped)
      print_list(p, &n->u.query.keys, ind + 1, "group by");
    if (n->u.query.has_compute)
      print_list(p, &n->u.query.compute, ind + 1, "compute");
    print_child(p, n->u.query.map, ind + 1, "map");
    print_child(p, n->u.query.having, ind + 1, "having");
    print_child(p, n->u.query.rank, ind + 1, "rank");
    print_list(p, &n->u.query.order, ind + 1, "order by");
    print_child(p, n->u.query.limit, ind + 1, "limit");
    print_child(p, n->u.query.offset, ind + 1, "offset");
    print_list(p, &n->u.query.options, ind + 1, "options");
    return;
  case ZQL_N_EXPLAIN:
    if (n->u.explain.analyze)
      zql_strbuf_adds(o, " analyze");
    if (n->u.explain.name) {
      zql_strbuf_addc(o, ' ');
      add_name(p, n->u.explain.name);
    }
    zql_strbuf_addc(o, '\n');
    if (n->u.explain.target)
      print_node(p, n->u.explain.target, ind + 1);
    return;
  case ZQL_N_SOURCE:
    zql_strbuf_adds(o, n->u.source.is_agg ? " agg " : " ");
    add_name(p, n->u.source.name);
    zql_strbuf_addc(o, '\n');
    return;
  case ZQL_N_WHERE:
    zql_strbuf_addc(o, '\n');
    print_node(p, n->u.unary_clause.arg, ind + 1);
    return;
  case ZQL_N_UNWIND:
    if (n->u.unwind.alias) {
      zql_strbuf_adds(o, " as ");
      add_name(p, n->u.unwind.alias);
    }
    if (n->u.unwind.keep_empty)
      zql_strbuf_adds(o, " keep empty");
    zql_strbuf_addc(o, '\n');
    print_node(p, n->u.unwind.path, ind + 1);
    return;
  case ZQL_N_PER:
    zql_strbuf_adds(o, " as ");
    add_name(p, n->u.per.alias);
    zql_strbuf_addc(o, '\n');
    print_child(p, n->u.per.key, ind + 1, "key");
    print_list(p, &n->u.per.items, ind + 1, "items");
    return;
  case ZQL_N_KEY:
    if (p->checked && n->u.key.name) {
      zql_strbuf_addc(o, ' ');
      add_name(p, n->u.key.name);
    } else if (n->u.key.alias) {
      zql_strbuf_adds(o, " as ");
      add_name(p, n->u.key.alias);
    }
    if (n->u.key.skip_null)
      zql_strbuf_adds(o, " skip null");
    zql_strbuf_addc(o, '\n');
    print_node(p, n->u.key.expr, ind + 1);
    print_child(p, n->u.key.per, ind + 1, "per");
    return;
  case ZQL_N_AGGITEM:
    zql_strbuf_addc(o, ' ');
    add_name(p, n->u.aggitem.name);
    if (n->u.aggitem.else_)
      zql_strbuf_addf(o, " else %s", n->u.aggitem.else_);
    zql_strbuf_addc(o, '\n');
    print_node(p, n->u.aggitem.expr, ind + 1);
    print_child(p, n->u.aggitem.limit, ind + 1, "limit");
    print_child(p, n->u.aggitem.offset, ind + 1, "offset");
    print_child(p, n->u.aggitem.filter, ind + 1, "where");
    return;
  case ZQL_N_RANK:
    zql_strbuf_adds(o, n->u.rank.desc ? " desc\n" : " asc\n");
    print_child(p, n->u.rank.by, ind + 1, "by");
    print_child(p, n->u.rank.limit, ind + 1, "limit");
    print_list(p, &n->u.rank.within, ind + 1, "within");
    return;
  case ZQL_N_ORDER:
    zql_strbuf_adds(o, n->u.order.desc ? " desc\n" : " asc\n");
    print_node(p, n->u.order.expr, ind + 1);
    return;
  case ZQL_N_OPTION:
    zql_strbuf_addf(o, " %s", zql_option_name(n->u.option.opt));
    if (n->u.option.opt == ZQL_OPT_SCHEDULE)
      zql_strbuf_addf(o, " %s", sched_name(n->u.option.sched));
    if (n->u.option.ident) {
      zql_strbuf_addc(o, ' ');
      add_name(p, n->u.option.ident);
    }
    if (n->u.option.str) {
      zql_strbuf_addc(o, ' ');
      zql_strbuf_add_quoted(o, n->u.option.str, strlen(n->u.option.str));
    }
    zql_strbuf_addc(o, '\n');
    if (n->u.option.value)
      print_node(p, n->u.option.value, ind + 1);
    return;
  case ZQL_N_FIELD:
    zql_strbuf_addc(o, ' ');
    add_name(p, n->u.field.name);
    zql_strbuf_addf(o, ": %s\n", n->u.field.type->u.typename_.name);
    return;
  case ZQL_N_TYPE:
    zql_strbuf_addf(o, " %s\n", n->u.typename_.name);
    return;
  case ZQL_N_IF:
  case ZQL_N_WHEN:
    zql_strbuf_addc(o, '\n');
    print_child(p, n->u.cond_stmt.cond, ind + 1, "cond");
    print_child(p, n->u.cond_stmt.then, ind + 1, "then");
    print_child(p, n->u.cond_stmt.else_, ind + 1, "else");
    return;
  case ZQL_N_FOR:
    zql_strbuf_addc(o, ' ');
    add_name(p, n->u.for_stmt.var);
    zql_strbuf_addc(o, '\n');
    print_child(p, n->u.for_stmt.iter, ind + 1, "in");
    print_node(p, n->u.for_stmt.body, ind + 1);
    return;
  case ZQL_N_EMIT:
    zql_strbuf_addc(o, ' ');
    add_name(p, n->u.emit.table);
    zql_strbuf_addc(o, '\n');
    print_list(p, &n->u.emit.index, ind + 1, "index");
    print_child(p, n->u.emit.value, ind + 1, "value");
    print_child(p, n->u.emit.weight, ind + 1, "weight");
    return;
  case ZQL_N_INT:
    zql_strbuf_addf(o, " %" PRId64, n->u.lit.i);
    break;
  case ZQL_N_DOUBLE:
    zql_strbuf_addc(o, ' ');
    add_double(o, n->u.lit.d);
    break;
  case ZQL_N_STRING:
    zql_strbuf_addc(o, ' ');
    zql_strbuf_add_quoted(o, n->u.lit.str.s, n->u.lit.str.len);
    break;
  case ZQL_N_BOOL:
    zql_strbuf_adds(o, n->u.lit.b ? " true" : " false");
    break;
  case ZQL_N_NULL:
  case ZQL_N_MISSING_LIT:
    break;
  case ZQL_N_DURATION:
    zql_strbuf_addc(o, ' ');
    if (p->src && n->span.end <= p->src->len && n->span.end > n->span.start) {
      /* as written (400d stays 400d), then the value in checked dumps */
      zql_strbuf_add(o, p->src->text + n->span.start, n->span.end - n->span.start);
      if (p->checked)
        zql_strbuf_addf(o, " = %" PRId64 "ms", n->u.lit.i);
    } else {
      add_duration(o, n->u.lit.i);
    }
    break;
  case ZQL_N_REGEX:
    zql_strbuf_adds(o, " /");
    zql_strbuf_adds(o, n->u.regex.pattern);
    zql_strbuf_addc(o, '/');
    zql_strbuf_adds(o, n->u.regex.flags);
    break;
  case ZQL_N_PATH:
    zql_strbuf_addc(o, ' ');
    add_path(p, n);
    if (p->checked)
      zql_strbuf_addf(o, " [%s]", zql_ref_kind_name(n->u.path.ref));
    break;
  case ZQL_N_PARAMREF:
    zql_strbuf_adds(o, " $");
    zql_strbuf_adds(o, n->u.paramref.name);
    break;
  case ZQL_N_CALL:
    zql_strbuf_addc(o, ' ');
    add_name(p, n->u.call.name);
    if (p->checked)
      zql_strbuf_adds(o, n->u.call.reducer ? " [reducer]"
                         : n->u.call.is_agg ? " [aggregate]"
                                            : " [scalar]");
    add_type(p, n);
    zql_strbuf_addc(o, '\n');
    print_list(p, &n->u.call.args, ind + 1, NULL);
    print_child(p, n->u.call.by, ind + 1, "by");
    print_child(p, n->u.call.weight, ind + 1, "weight");
    print_child(p, n->u.call.gap, ind + 1, "gap");
    return;
  case ZQL_N_BUCKET:
    zql_strbuf_addc(o, ' ');
    if (n->u.bucket.every && n->u.bucket.every->kind == ZQL_N_INT)
      zql_strbuf_addf(o, "every %" PRId64 " ", n->u.bucket.every->u.lit.i);
    add_name(p, n->u.bucket.unit);
    if (n->u.bucket.tz) {
      zql_strbuf_adds(o, " tz ");
      add_strparam(p, n->u.bucket.tz);
    }
    if (n->u.bucket.week_start)
      zql_strbuf_addf(o, " week starts %s", n->u.bucket.week_start);
    if (n->u.bucket.origin) {
      zql_strbuf_adds(o, " origin ");
      add_strparam(p, n->u.bucket.origin);
    }
    add_type(p, n);
    zql_strbuf_addc(o, '\n');
    print_node(p, n->u.bucket.ts, ind + 1);
    return;
  case ZQL_N_UNARY:
    zql_strbuf_addf(o, " %s", zql_op_name(n->u.unary.op));
    add_type(p, n);
    zql_strbuf_addc(o, '\n');
    print_node(p, n->u.unary.arg, ind + 1);
    return;
  case ZQL_N_BINARY:
    zql_strbuf_addf(o, " %s", zql_op_name(n->u.binary.op));
    add_type(p, n);
    zql_strbuf_addc(o, '\n');
    print_node(p, n->u.binary.lhs, ind + 1);
    print_node(p, n->u.binary.rhs, ind + 1);
    return;
  case ZQL_N_IS:
    zql_strbuf_addf(o, " %s%s", n->u.is.negated ? "not " : "", n->u.is.missing ? "missing" : "null");
    add_type(p, n);
    zql_strbuf_addc(o, '\n');
    print_node(p, n->u.is.arg, ind + 1);
    return;
  case ZQL_N_IN:
    if (n->u.in.negated)
      zql_strbuf_adds(o, " not");
    add_type(p, n);
    zql_strbuf_addc(o, '\n');
    print_node(p, n->u.in.arg, ind + 1);
    print_node(p, n->u.in.set, ind + 1);
    return;
  case ZQL_N_DOCFIELD:
    zql_strbuf_addc(o, ' ');
    add_name(p, n->u.docfield.name);
    zql_strbuf_addc(o, '\n');
    print_node(p, n->u.docfield.value, ind + 1);
    return;
  case ZQL_N__COUNT:
    break;
  }
  add_type(p, n);
  zql_strbuf_addc(o, '\n');
}

void zql_ast_print(zql_strbuf_t *out, const zql_node_t *n, bool checked)
{
  printer_t p = {out, checked, n->kind == ZQL_N_FILE ? n->u.file.source : NULL};
  print_node(&p, n, 0);
}
