/*
 * strdist.c -- edit distance for suggestions (layer 0): the registry ("did you mean
 * 'count'?"), the analyzer (names) and the time-zone database all use this one function.
 *
 * Algorithm: the classic dynamic programme over three rolling rows, prev2 (i-2), prev
 * (i-1) and cur (i), so memory is O(|b|) on the stack; a row whose minimum exceeds
 * `limit` ends the computation early, which keeps scans over ~2000 zone names cheap.
 */
#include "runtime/base/zql_common.h"

#include <ctype.h>

#include "runtime/base/strdist.h"

static int fold(char c)
{
  return tolower((unsigned char)c);
}

int zql_edit_distance(const char *a, const char *b, int limit)
{
  size_t la = strlen(a), lb = strlen(b);
  if (la > ZQL_STRDIST_MAX_LEN || lb > ZQL_STRDIST_MAX_LEN)
    return limit + 1;
  if ((la > lb ? la - lb : lb - la) > (size_t)limit)
    return limit + 1;
  int rows[3][ZQL_STRDIST_MAX_LEN + 1];
  int *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
  for (size_t j = 0; j <= lb; j++)
    prev[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    int ca = fold(a[i - 1]);
    int rowmin = cur[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int cb = fold(b[j - 1]);
      int d = prev[j] + 1;                      /* deletion */
      if (cur[j - 1] + 1 < d)
        d = cur[j - 1] + 1;                     /* insertion */
      if (prev[j - 1] + (ca != cb) < d)
        d = prev[j - 1] + (ca != cb);           /* substitution */
      if (i > 1 && j > 1 && ca == fold(b[j - 2]) && fold(a[i - 2]) == cb &&
          prev2[j - 2] + 1 < d)
        d = prev2[j - 2] + 1;                   /* transposition */
      cur[j] = d;
      if (d < rowmin)
        rowmin = d;
    }
    if (rowmin > limit)
      return limit + 1;
    int *t = prev2;
    prev2 = prev;
    prev = cur;
    cur = t;
  }
  return prev[lb] > limit ? limit + 1 : prev[lb];
}
