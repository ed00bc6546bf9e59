/*
 * strdist.h -- edit distance between names, for "did you mean" hints (layer 0).
 */
#ifndef ZQL_STRDIST_H
#define ZQL_STRDIST_H

#include "runtime/base/zql_common.h"

/* Names longer than this are never "near" anything. */
#define ZQL_STRDIST_MAX_LEN 255

/* Case-insensitive optimal-string-alignment distance between a and b (Levenshtein plus
 * adjacent transpositions: "cuont" -> "count" is 1), or limit + 1 when it is larger than
 * `limit` or either string is longer than ZQL_STRDIST_MAX_LEN. limit >= 0. */
int zql_edit_distance(const char *a, const char *b, int limit);

#endif
