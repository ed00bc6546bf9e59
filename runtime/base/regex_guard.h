/*
 * regex_guard.h -- refuse regular expressions that would make regcomp blow up (layer 0).
 *
 * glibc's regcomp expands repetitions by copying the parse tree, so a short pattern such
 * as "((a{1,255}){1,255}){1,255}" or "a++++++++++++++++" needs gigabytes. Every ZQL regex
 * (compile time in the analyzer, run time in the engine) passes this check before
 * regcomp: stacked repetition operators (undefined in POSIX EREs) are refused, and the
 * size of the expanded pattern is estimated and capped, and so is the nesting of groups
 * (glibc parses them recursively and overflows the stack on deep ones).
 */
#ifndef ZQL_REGEX_GUARD_H
#define ZQL_REGEX_GUARD_H

#include "runtime/base/zql_common.h"

/* Largest accepted estimate of the expanded pattern, in atoms. */
#define ZQL_REGEX_MAX_COST 20000
/* Deepest accepted group nesting (regcomp parses groups recursively). */
#define ZQL_REGEX_MAX_DEPTH 64

/* 0 when `pattern` (a POSIX ERE) is safe to hand to regcomp, else -1 with a lowercase
 * reason in why[whysize]. Syntax errors are left to regcomp. */
int zql_regex_guard(const char *pattern, char *why, size_t whysize);

#endif
