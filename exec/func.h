/*
 * func.h -- scalar functions of ZQL at run time (stage 4, MAP and REDUCE).
 *
 * Every scalar of parser/funclist.h (kind ZQL_FN_SCALAR) has one zql_scalar_t here, found
 * by name and argument count. The analyzer has already checked arity and the constant
 * arguments' kinds; at plan-compile time the VM (exec/vm.c) calls `prepare` once per
 * call site with the arguments that are constants (regexes, zones, units, formats), and
 * then `call` once per row with all argument values.
 *
 * Conventions (design/ZQL.md R1-R5, R9):
 *  - Functions never fail as C calls: a bad operand yields an ERROR value with a static
 *    lowercase message naming the function ("num: not a number"), never a crash.
 *  - ERROR operands propagate (the result is that ERROR) unless the function is about
 *    missing/errors (def, coalesce, type, if). MISSING and NULL operands yield NULL
 *    (MISSING for the path-like ones), except where the function's doc in funclist.h
 *    says otherwise.
 *  - Result bytes (strings, arrays, documents) are allocated in c->arena, the batch
 *    arena, which is reset between batches: results are views like every zql_val_t.
 *  - Strings are UTF-8; len/substr count code points; lower/upper are ASCII-only.
 *  - Unit arguments (trunc(ts, day)) arrive as constant STRING values ("day").
 *
 * `prepare` runs on the plan-building thread; `call` may run on many threads at once and
 * must only read `aux`.
 */
#ifndef ZQL_FUNC_H
#define ZQL_FUNC_H

#include "runtime/base/zql_common.h"

#include "exec/value.h"
#include "runtime/base/arena.h"
#include "runtime/base/strbuf.h"

typedef struct zql_fnctx {
  zql_arena_t *arena; /* the batch arena: result bytes go here */
  int64_t now_ms;     /* the run's fixed now() (ms UTC) */
} zql_fnctx_t;

typedef struct zql_fnprep {
  zql_arena_t *arena;      /* the plan arena: aux and what it points to live here */
  int nargs;
  const zql_val_t *consts; /* consts[i] is meaningful when isconst[i] */
  const bool *isconst;
  void *aux;               /* out: handed to every call */
  zql_strbuf_t *err;       /* out: why prepare failed (one line, lowercase) */
} zql_fnprep_t;

typedef void (*zql_fn_call_t)(zql_fnctx_t *c, const void *aux, const zql_val_t *args,
                              int nargs, zql_val_t *out);

typedef struct zql_scalar {
  const char *name;
  int min_args, max_args;             /* max_args < 0: variadic */
  int (*prepare)(zql_fnprep_t *p);    /* NULL: nothing to prepare; else 0 or ZQL_E_* */
  zql_fn_call_t call;
  bool foldable;                      /* pure: constant arguments give a constant result */
} zql_scalar_t;

/* The convention of func.h for arguments that are not values: the first ERROR argument
 * into *out, else MISSING when some argument is MISSING, else NULL when one is NULL.
 * Returns true when *out is the result (exec/func.c). */
bool zql_fn_propagate(const zql_val_t *args, int nargs, zql_val_t *out);

/* The entry for name with nargs arguments, or NULL. Searches every table below. */
const zql_scalar_t *zql_scalar_lookup(const char *name, int nargs);

/* The tables, each terminated by an entry with name NULL. */
extern const zql_scalar_t zql_scalars_core[]; /* exec/func.c: conversions, strings, numbers */
extern const zql_scalar_t zql_scalars_time[]; /* exec/func_time.c: dates and zones */

#endif
