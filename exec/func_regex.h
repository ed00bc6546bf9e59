/*
 * func_regex.h -- run-time regular expressions: the `=~` operator and regex_match (stage 4).
 *
 * A ZQL regex is a constant: a literal /pattern/flags (a REGEX value whose `len` bytes are
 * "pattern\0flags\0") or a STRING (the pattern, no flags). It is compiled once, at plan
 * build time, as a POSIX extended regular expression (regcomp, REG_EXTENDED) after
 * zql_regex_guard() has accepted it, with the flags the analyzer accepts:
 *
 *   i  ignore case (REG_ICASE)
 *   m  multi-line: ^ and $ also match at newlines, and . does not match a newline
 *      (REG_NEWLINE)
 *   s  dot matches newline: what POSIX does anyway without m, so s changes nothing
 *      (with m, REG_NEWLINE keeps . from matching newlines whatever s says)
 *   x  extended: unescaped whitespace and #-comments outside brackets are dropped
 *
 * The compiled regex_t lives until the arena given to zql_regex_prepare is reset or
 * deleted (regfree runs as an arena cleanup). Matching is thread-safe: regexec only reads
 * the compiled expression. Subjects are matched by length (REG_STARTEND), so a string
 * with a NUL byte is matched as a whole. Matching follows LC_CTYPE, which zql leaves at
 * "C": `.` and bracket expressions match single bytes, so a 2-byte UTF-8 character is
 * `..` (ASCII patterns, the common case, are unaffected).
 */
#ifndef ZQL_FUNC_REGEX_H
#define ZQL_FUNC_REGEX_H

#include "runtime/base/zql_common.h"

#include <regex.h>

#include "exec/value.h"
#include "runtime/base/arena.h"
#include "runtime/base/strbuf.h"

/* Compile the constant regex `re` (REGEX or STRING) into *out, owned by arena `a`.
 * Returns 0; ZQL_E_BAD_REGEX (a malformed or refused pattern, an unknown flag, a NUL
 * byte in a string pattern), ZQL_E_ARG_KIND (re is neither a REGEX nor a STRING) or
 * ZQL_E_NOMEM, with a one-line lowercase reason appended to err. The expression is
 * compiled without submatch reporting (REG_NOSUB): it only answers "does it match". */
int zql_regex_prepare(zql_arena_t *a, const zql_val_t *re, const regex_t **out,
                      zql_strbuf_t *err);

/* `s =~ re`: TRUE when re matches somewhere in the STRING s, FALSE when not. An ERROR s
 * is returned as is, a NULL or MISSING s gives NULL, and any other type gives FALSE (like
 * `==` across type classes, R3). */
zql_val_t zql_regex_match_val(const regex_t *re, const zql_val_t *s);

#endif
