/*
 * registry.h -- the one table of ZQL built-in functions and aggregators (stage 2b).
 *
 * Every scalar function and aggregator of the language is declared once, in
 * parser/funclist.h (an X-macro list), with its arity, argument kinds, result type and a
 * one-line description. The analyzer resolves calls against it, `zql --list-functions`
 * prints it, and docs/functions.md is generated from it. A name may appear more than once
 * with disjoint arities (min(x) is an aggregator, min(a, b, ...) a scalar).
 *
 * Argument-kind strings: one letter per positional argument, in order; a trailing '*'
 * repeats the last letter (variadic). Letters:
 *   e  any row expression            b  a boolean condition (row expression)
 *   n  a numeric constant            i  an integer constant
 *   s  a string constant             u  a time-unit name (bare identifier: day, hour...)
 *   d  a duration constant           r  a regex constant (literal or string)
 *   a  an array constant of numbers  t  a state column of a `from agg` source
 * "Constant" means literals, $params and constant arithmetic over them.
 * Optional clauses: ZQL_FN_BY (e by t), ZQL_FN_WEIGHT (weight w), ZQL_FN_GAP (gap d),
 * ZQL_FN_LIMIT (`limit N [else hll]` after the call, aggitems only).
 */
#ifndef ZQL_REGISTRY_H
#define ZQL_REGISTRY_H

#include "runtime/base/zql_common.h"

#include "parser/ast.h"

typedef enum zql_func_kind {
  ZQL_FN_SCALAR,    /* row -> value */
  ZQL_FN_AGGREGATE  /* rows -> value, mergeable state */
} zql_func_kind_t;

enum {
  ZQL_FN_BY = 1 << 0,
  ZQL_FN_WEIGHT = 1 << 1,
  ZQL_FN_GAP = 1 << 2,
  ZQL_FN_LIMIT = 1 << 3,
  ZQL_FN_NONDET = 1 << 4,    /* result may differ between splits (topk, sample): EXPLAIN says so */
  ZQL_FN_NOMERGE = 1 << 5,   /* not mergeable: planner uses recompute-dirty */
  ZQL_FN_VOLATILE = 1 << 6,  /* now(): fixed per run, not constant-foldable */
  ZQL_FN_TABLE = 1 << 7      /* usable as a table reducer in `table ... : NAME(...)` */
};

typedef struct zql_func {
  const char *name;
  zql_func_kind_t kind;
  int min_args, max_args; /* max_args < 0: variadic */
  const char *args;       /* argument kinds, see above */
  zql_type_t result;      /* ZQL_T_ANY when it depends on the arguments */
  unsigned flags;
  const char *synopsis;   /* "quantile(e, q [, compression])" */
  const char *doc;        /* one line, for docs/functions.md */
} zql_func_t;

/* The entry named `name` whose arity admits `nargs` (NULL if none). */
const zql_func_t *zql_func_lookup(const char *name, int nargs);
/* Any entry with this name (for arity errors); NULL if the name is unknown. */
const zql_func_t *zql_func_by_name(const char *name);
/* The argument kind letter of argument i (0-based) of f ('e' if out of range). */
char zql_func_arg_kind(const zql_func_t *f, int i);
/* All entries, in table order. */
const zql_func_t *zql_func_table(size_t *n);
/* Nearest known function name by edit distance (<= 2), or NULL: for "did you mean". */
const char *zql_func_suggest(const char *name);

#endif
