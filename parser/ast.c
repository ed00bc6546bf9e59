/*
 * ast.c -- AST node construction and generic traversal (stage 2; see parser/ast.h).
 *
 * Constructors allocate from the query arena and never free. zql_node_children is the
 * one place that knows every node kind's children; printers, the analyzer and the depth
 * computation all walk through it (add a kind: update it and kind_names[]).
 */
#include "runtime/base/zql_common.h"

#include "parser/ast.h"

/* ORDER: zql_node_kind_t */
static const char *const kind_names[] = {
    "FILE", "PARAM", "TABLE", "REDUCER", "AGGREGATE", "QUERY", "EXPLAIN",
    "SOURCE", "WHERE", "LET", "UNWIND", "PER", "KEY", "AGGITEM", "RANK", "ORDER",
    "OPTION", "FIELD", "TYPE",
    "BLOCK", "IF", "WHEN", "FOR", "EMIT",
    "INT", "DOUBLE", "STRING", "BOOL", "NULL", "MISSING", "DURATION", "REGEX",
    "PATH", "PARAMREF", "CALL", "BUCKET", "UNARY", "BINARY", "IS", "IN", "ARRAY", "DOC",
    "DOCFIELD"};
_Static_assert(ZQL_ARRAY_LEN(kind_names) == ZQL_N__COUNT, "kind_names out of step");

/* ORDER: zql_op_t */
static const char *const op_names[] = {
    "-", "+", "not", "+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=",
    "=~", "!~", "and", "or", "??"};
_Static_assert(ZQL_ARRAY_LEN(op_names) == ZQL_OP__COUNT, "op_names out of step");

/* ORDER: zql_type_t */
static const char *const type_names[] = {
    "any", "null", "bool", "int", "double", "number", "string", "date", "duration",
    "regex", "doc", "array", "state"};
_Static_assert(ZQL_ARRAY_LEN(type_names) == ZQL_T__COUNT, "type_names out of step");

/* ORDER: zql_ref_kind_t */
static const char *const ref_names[] = {
    "unresolved", "event", "seq", "row", "aggcol", "let", "unwind", "per", "key",
    "output", "local"};

/* ORDER: zql_option_kind_t */
static const char *const option_names[] = {
    "into", "key", "mode", "schedule", "lateness", "settle", "retain", "on_error",
    "partitions"};
_Static_assert(ZQL_ARRAY_LEN(option_names) == ZQL_OPT__COUNT, "option_names out of step");

const char *zql_node_kind_name(zql_node_kind_t k)
{
  return (unsigned)k < ZQL_N__COUNT ? kind_names[k] : "?";
}

const char *zql_op_name(zql_op_t op)
{
  return (unsigned)op < ZQL_OP__COUNT ? op_names[op] : "?";
}

const char *zql_type_name(zql_type_t t)
{
  return (unsigned)t < ZQL_T__COUNT ? type_names[t] : "?";
}

const char *zql_ref_kind_name(zql_ref_kind_t r)
{
  return (unsigned)r < ZQL_ARRAY_LEN(ref_names) ? ref_names[r] : "?";
}

const char *zql_option_name(zql_option_kind_t o)
{
  return (unsigned)o < ZQL_OPT__COUNT ? option_names[o] : "?";
}

zql_node_t *zql_node_new(zql_arena_t *a, zql_node_kind_t kind, zql_span_t span)
{
  zql_node_t *n = zql_arena_calloc(a, 1, sizeof *n);
  if (!n)
    return NULL;
  n->kind = kind;
  n->span = span;
  n->depth = 1;
  n->type = ZQL_T_ANY;
  return n;
}

int zql_list_push(zql_arena_t *a, zql_list_t *l, zql_node_t *n)
{
  if (l->n == l->cap) {
    uint32_t ncap = l->cap ? l->cap * 2 : 4;
    if (ncap < l->cap)
      return ZQL_E_NOMEM;
    zql_node_t **items = zql_arena_alloc(a, (size_t)ncap * sizeof *items);
    if (!items)
      return ZQL_E_NOMEM;
    if (l->n)
      memcpy(items, l->items, (size_t)l->n * sizeof *items);
    l->items = items; /* the old array stays in the arena */
    l->cap = ncap;
  }
  l->items[l->n++] = n;
  return 0;
}

int zql_path_push(zql_arena_t *a, zql_node_t *path, zql_step_t step)
{
  if (path->u.path.nsteps == path->u.path.capsteps) {
    uint32_t ncap = path->u.path.capsteps ? path->u.path.capsteps * 2 : 4;
    zql_step_t *steps = zql_arena_alloc(a, (size_t)ncap * sizeof *steps);
    if (!steps)
      return ZQL_E_NOMEM;
    if (path->u.path.nsteps)
      memcpy(steps, path->u.path.steps, path->u.path.nsteps * sizeof *steps);
    path->u.path.steps = steps;
    path->u.path.capsteps = ncap;
  }
  path->u.path.steps[path->u.path.nsteps++] = step;
  return 0;
}

static void visit_list(zql_list_t *l, void (*fn)(zql_node_t *, void *), void *arg)
{
  for (uint32_t i = 0; i < l->n; i++)
    if (l->items[i])
      fn(l->items[i], arg);
}

#define V(x)           \
  do {                 \
    if (x)             \
      fn((x), arg);    \
  } while (0)

void zql_node_children(zql_node_t *n, void (*fn)(zql_node_t *child, void *arg), void *arg)
{
  switch (n->kind) {
  case ZQL_N_FILE:
  case ZQL_N_BLOCK:
  case ZQL_N_ARRAY:
  case ZQL_N_DOC:
    visit_list(&n->u.list, fn, arg);
    break;
  case ZQL_N_PARAM:
  case ZQL_N_LET:
    V(n->u.decl.value);
    break;
  case ZQL_N_TABLE:
    visit_list(&n->u.table.fields, fn, arg);
    V(n->u.table.of);
    V(n->u.table.reducer);
    break;
  case ZQL_N_REDUCER:
    V(n->u.reducer.arg_type);
    visit_list(&n->u.reducer.state, fn, arg);
    visit_list(&n->u.reducer.parts, fn, arg);
    break;
  case ZQL_N_AGGREGATE:
  case ZQL_N_QUERY:
    visit_list(&n->u.query.sources, fn, arg);
    visit_list(&n->u.query.rowops, fn, arg);
    V(n->u.query.per);
    visit_list(&n->u.query.keys, fn, arg);
    visit_list(&n->u.query.compute, fn, arg);
    V(n->u.query.map);
    V(n->u.query.having);
    V(n->u.query.rank);
    visit_list(&n->u.query.order, fn, arg);
    V(n->u.query.limit);
    V(n->u.query.offset);
    visit_list(&n->u.query.options, fn, arg);
    break;
  case ZQL_N_EXPLAIN:
    V(n->u.explain.target);
    break;
  case ZQL_N_WHERE:
    V(n->u.unary_clause.arg);
    break;
  case ZQL_N_UNWIND:
    V(n->u.unwind.path);
    break;
  case ZQL_N_PER:
    V(n->u.per.key);
    visit_list(&n->u.per.items, fn, arg);
    break;
  case ZQL_N_KEY:
    V(n->u.key.expr);
    V(n->u.key.per);
    break;
  case ZQL_N_AGGITEM:
    V(n->u.aggitem.expr);
    V(n->u.aggitem.limit);
    V(n->u.aggitem.offset);
    V(n->u.aggitem.filter);
    break;
  case ZQL_N_RANK:
    V(n->u.rank.by);
    V(n->u.rank.limit);
    visit_list(&n->u.rank.within, fn, arg);
    break;
  case ZQL_N_ORDER:
    V(n->u.order.expr);
    break;
  case ZQL_N_OPTION:
    V(n->u.option.value);
    break;
  case ZQL_N_FIELD:
    V(n->u.field.type);
    break;
  case ZQL_N_IF:
  case ZQL_N_WHEN:
    V(n->u.cond_stmt.cond);
    V(n->u.cond_stmt.then);
    V(n->u.cond_stmt.else_);
    break;
  case ZQL_N_FOR:
    V(n->u.for_stmt.iter);
    V(n->u.for_stmt.body);
    break;
  case ZQL_N_EMIT:
    visit_list(&n->u.emit.index, fn, arg);
    V(n->u.emit.value);
    V(n->u.emit.weight);
    break;
  case ZQL_N_CALL:
    visit_list(&n->u.call.args, fn, arg);
    V(n->u.call.by);
    V(n->u.call.weight);
    V(n->u.call.gap);
    break;
  case ZQL_N_BUCKET:
    V(n->u.bucket.ts);
    V(n->u.bucket.every);
    V(n->u.bucket.tz);
    V(n->u.bucket.origin);
    break;
  case ZQL_N_UNARY:
    V(n->u.unary.arg);
    break;
  case ZQL_N_BINARY:
    V(n->u.binary.lhs);
    V(n->u.binary.rhs);
    break;
  case ZQL_N_IS:
    V(n->u.is.arg);
    break;
  case ZQL_N_IN:
    V(n->u.in.arg);
    V(n->u.in.set);
    break;
  case ZQL_N_DOCFIELD:
    V(n->u.docfield.value);
    break;
  case ZQL_N_TYPE:
  case ZQL_N_SOURCE:
  case ZQL_N_INT:
  case ZQL_N_DOUBLE:
  case ZQL_N_STRING:
  case ZQL_N_BOOL:
  case ZQL_N_NULL:
  case ZQL_N_MISSING_LIT:
  case ZQL_N_DURATION:
  case ZQL_N_REGEX:
  case ZQL_N_PATH:
  case ZQL_N_PARAMREF:
  case ZQL_N__COUNT:
    break;
  }
}

static void max_depth(zql_node_t *child, void *arg)
{
  uint16_t *d = arg;
  if (child->depth > *d)
    *d = child->depth;
}

void zql_node_fix_depth(zql_node_t *n)
{
  uint16_t d = 0;
  zql_node_children(n, max_depth, &d);
  n->depth = d >= UINT16_MAX - 1 ? UINT16_MAX : (uint16_t)(d + 1);
}
