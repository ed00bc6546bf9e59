/*
 * strbuf.h -- a growable byte buffer (layer 0), after git's strbuf.h.
 *
 * Invariants: `buf` is never NULL and is always NUL-terminated (an empty strbuf points at
 * a static ""), `len` bytes before the NUL are the content, `alloc` is private. When an
 * allocation fails the buffer keeps its old content and `oom` becomes (and stays) true,
 * so callers can append freely and check once at the end.
 *
 * Usage: zql_strbuf_t sb = ZQL_STRBUF_INIT; zql_strbuf_addf(&sb, ...); use sb.buf;
 *        zql_strbuf_release(&sb);
 */
#ifndef ZQL_STRBUF_H
#define ZQL_STRBUF_H

#include "runtime/base/zql_common.h"

#include <stdarg.h>

typedef struct zql_strbuf {
  char *buf;
  size_t len;
  size_t alloc; /* private: 0 while buf points at the static "" */
  bool oom;
} zql_strbuf_t;

extern char zql_strbuf_empty[];
#define ZQL_STRBUF_INIT {zql_strbuf_empty, 0, 0, false}

void zql_strbuf_init(zql_strbuf_t *sb);
void zql_strbuf_release(zql_strbuf_t *sb);          /* free, back to INIT */
void zql_strbuf_reset(zql_strbuf_t *sb);            /* length 0, keep memory */
bool zql_strbuf_grow(zql_strbuf_t *sb, size_t extra); /* room for `extra` more bytes */
void zql_strbuf_add(zql_strbuf_t *sb, const void *data, size_t n);
void zql_strbuf_adds(zql_strbuf_t *sb, const char *s);
void zql_strbuf_addc(zql_strbuf_t *sb, char c);
void zql_strbuf_addchars(zql_strbuf_t *sb, char c, size_t n); /* n copies of c */
void zql_strbuf_addf(zql_strbuf_t *sb, const char *fmt, ...) ZQL_PRINTF(2, 3);
void zql_strbuf_vaddf(zql_strbuf_t *sb, const char *fmt, va_list ap);
/* Append `s` as a double-quoted, escaped string (\" \\ \n \t \r, \xHH for other controls). */
void zql_strbuf_add_quoted(zql_strbuf_t *sb, const char *s, size_t n);
/* Take ownership of the heap buffer (free with zql_free); the strbuf is reset to INIT.
 * Returns NULL if the buffer is out of memory. */
char *zql_strbuf_detach(zql_strbuf_t *sb, size_t *len);

#endif
