/*
 * registry.c -- lookups in the table of built-in functions and aggregators (stage 2b).
 *
 * Pipeline position: the analyzer (parser/analyze.c) resolves every ZQL_N_CALL here
 * (name + argument count -> entry, then argument kinds and clauses), asks for a "did
 * you mean" when a name is unknown, and `zql --list-functions` / docs/functions.md walk
 * the whole table. The table itself is parser/funclist.h, expanded once below; this file
 * only searches it.
 *
 * Interface (registry.h): zql_func_lookup(name, nargs), zql_func_by_name(name),
 * zql_func_arg_kind(f, i), zql_func_table(&n), zql_func_suggest(name). All are pure
 * functions over constant data, so they are thread-safe.
 *
 * Algorithm: linear scans over ~75 entries (a call is resolved once per compile).
 * Suggestions use the optimal-string-alignment distance (Levenshtein plus adjacent
 * transpositions, so "cuont" is 1 from "count"), compared case-insensitively; the best
 * name within distance 2 wins if no other name ties with it.
 */
#include "runtime/base/zql_common.h"

#include <ctype.h>

#include "parser/registry.h"
#include "runtime/base/strdist.h"

static const zql_func_t functab[] = {
#define ZQL_FUNC(name, kind, min, max, args, result, flags, synopsis, doc) \
  {name, kind, min, max, args, result, flags, synopsis, doc},
#include "parser/funclist.h"
#undef ZQL_FUNC
};

#define SUGGEST_MAX_DIST 2


static bool admits(const zql_func_t *f, int nargs)
{
  return nargs >= f->min_args && (f->max_args < 0 || nargs <= f->max_args);
}

const zql_func_t *zql_func_lookup(const char *name, int nargs)
{
  if (!name)
    return NULL;
  for (size_t i = 0; i < ZQL_ARRAY_LEN(functab); i++)
    if (strcmp(functab[i].name, name) == 0 && admits(&functab[i], nargs))
      return &functab[i];
  return NULL;
}

const zql_func_t *zql_func_by_name(const char *name)
{
  if (!name)
    return NULL;
  for (size_t i = 0; i < ZQL_ARRAY_LEN(functab); i++)
    if (strcmp(functab[i].name, name) == 0)
      return &functab[i];
  return NULL;
}

char zql_func_arg_kind(const zql_func_t *f, int i)
{
  if (!f || i < 0)
    return 'e';
  size_t n = strlen(f->args);
  bool repeat = n > 0 && f->args[n - 1] == '*';
  size_t letters = repeat ? n - 1 : n;
  if ((size_t)i < letters)
    return f->args[i];
  if (repeat && letters > 0)
    return f->args[letters - 1];
  return 'e';
}

const zql_func_t *zql_func_table(size_t *n)
{
  if (n)
    *n = ZQL_ARRAY_LEN(functab);
  return functab;
}


/*
 * The nearest name within SUGGEST_MAX_DIST, if exactly one name is nearest. The distance
 * must also be smaller than the name's length, so "xy" does not turn into "ln". An
 * overloaded name (min, max) is one candidate, not two.
 */
const char *zql_func_suggest(const char *name)
{
  if (!name || !*name)
    return NULL;
  size_t len = strlen(name);
  const char *best = NULL;
  int best_d = SUGGEST_MAX_DIST + 1;
  bool unique = false;
  for (size_t i = 0; i < ZQL_ARRAY_LEN(functab); i++) {
    const char *cand = functab[i].name;
    int d = zql_edit_distance(name, cand, SUGGEST_MAX_DIST);
    if (d > SUGGEST_MAX_DIST || (size_t)d >= len)
      continue;
    if (d < best_d) {
      best = cand;
      best_d = d;
      unique = true;
    } else if (d == best_d && strcmp(best, cand) != 0) {
      unique = false;
    }
  }
  return unique ? best : NULL;
}
