/*
 * regex_guard.c -- cost estimate for POSIX extended regular expressions (layer 0).
 *
 * One left-to-right pass with a stack of groups. Each level keeps the cost of what it
 * has seen (`total`) and of its last atom (`last`, which a following quantifier
 * multiplies). An atom is a character, an escape, '.', or a bracket expression; a group
 * is an atom whose cost is its content's. Quantifiers multiply the last atom's cost by
 * what regcomp materialises: `*` and `?` keep one copy (x1), `+` two (x2), `{m,n}` max(m,
 * n) + 1 copies, `{m,}` m + 1. A quantifier right after another is refused (POSIX leaves
 * it undefined, and glibc expands it exponentially). Costs saturate at the limit, so no
 * arithmetic overflows; groups nest at most ZQL_REGEX_MAX_DEPTH deep.
 */
#include "runtime/base/zql_common.h"

#include <ctype.h>

#include "runtime/base/regex_guard.h"

typedef struct {
  size_t total;
  size_t last;
} level_t;

static size_t sat_add(size_t a, size_t b)
{
  return a + b > ZQL_REGEX_MAX_COST + 1 ? ZQL_REGEX_MAX_COST + 1 : a + b;
}

static size_t sat_mul(size_t a, size_t b)
{
  if (a == 0 || b == 0)
    return 0;
  return a > (ZQL_REGEX_MAX_COST + 1) / b ? ZQL_REGEX_MAX_COST + 1 : a * b;
}

/* Skip a bracket expression starting at p[0] == '['; returns the index after ']'. */
static size_t skip_bracket(const char *p, size_t i)
{
  i++;
  if (p[i] == '^')
    i++;
  if (p[i] == ']')
    i++;
  while (p[i] && p[i] != ']') {
    if (p[i] == '[' && (p[i + 1] == ':' || p[i + 1] == '.' || p[i + 1] == '=')) {
      char close = p[i + 1];
      i += 2;
      while (p[i] && !(p[i] == close && p[i + 1] == ']'))
        i++;
      if (p[i])
        i += 2;
      continue;
    }
    i++;
  }
  return p[i] ? i + 1 : i;
}

/* Parse "{m}", "{m,}" or "{m,n}" at p[i] == '{': the number of copies regcomp makes, or 0
 * when it is not an interval (then '{' is an ordinary character). */
static size_t interval_copies(const char *p, size_t i, size_t *end)
{
  size_t j = i + 1, m = 0, n = 0;
  bool has_n = false, comma = false;
  if (!isdigit((unsigned char)p[j]))
    return 0;
  while (isdigit((unsigned char)p[j]))
    m = m < 100000 ? m * 10 + (size_t)(p[j++] - '0') : (j++, m);
  if (p[j] == ',') {
    comma = true;
    j++;
    while (isdigit((unsigned char)p[j])) {
      n = n < 100000 ? n * 10 + (size_t)(p[j++] - '0') : (j++, n);
      has_n = true;
    }
  }
  if (p[j] != '}')
    return 0;
  *end = j + 1;
  size_t k = comma && has_n ? (m > n ? m : n) : m;
  return k + 1;
}

int zql_regex_guard(const char *p, char *why, size_t whysize)
{
  size_t len = strlen(p);
  level_t stack[ZQL_REGEX_MAX_DEPTH + 1];
  memset(stack, 0, sizeof stack);
  size_t depth = 0;
  bool after_quant = false; /* the previous token was a quantifier */
  int rc = 0;
  for (size_t i = 0; i < len && rc == 0;) {
    char c = p[i];
    size_t copies = 0, next = i + 1;
    if (c == '*' || c == '?')
      copies = 1;
    else if (c == '+')
      copies = 2;
    else if (c == '{')
      copies = interval_copies(p, i, &next);
    if (copies) {
      if (after_quant) {
        snprintf(why, whysize, "repetition operator '%c' follows another one", c);
        rc = -1;
        break;
      }
      level_t *lv = &stack[depth];
      size_t grown = sat_mul(lv->last, copies);
      lv->total = sat_add(lv->total - lv->last, grown);
      lv->last = grown;
      after_quant = true;
      i = next;
    } else {
      after_quant = false;
      size_t atom = 1;
      if (c == '(') {
        if (depth + 1 > ZQL_REGEX_MAX_DEPTH) {
          snprintf(why, whysize, "regular expression nested too deeply (at most %d groups)",
                   ZQL_REGEX_MAX_DEPTH);
          rc = -1;
          break;
        }
        depth++;
        stack[depth].total = stack[depth].last = 0;
        i++;
        continue;
      }
      if (c == ')' && depth > 0) {
        atom = stack[depth].total ? stack[depth].total : 1;
        depth--;
        i++;
      } else if (c == '|') {
        stack[depth].last = 0;
        i++;
        continue;
      } else if (c == '[') {
        i = skip_bracket(p, i);
      } else if (c == '\\' && i + 1 < len) {
        i += 2;
      } else {
        i++;
      }
      stack[depth].total = sat_add(stack[depth].total, atom);
      stack[depth].last = atom;
    }
    /* outer levels only grow when a group closes, which is checked here too */
    if (stack[depth].total > ZQL_REGEX_MAX_COST) {
      snprintf(why, whysize, "regular expression too complex (its repetitions expand to "
                             "more than %d elements)", ZQL_REGEX_MAX_COST);
      rc = -1;
    }
  }
  return rc;
}
