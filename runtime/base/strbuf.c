/*
 * strbuf.c -- growable byte buffer with a sticky out-of-memory flag (layer 0).
 * See strbuf.h for the invariants. Growth is geometric (x1.5 + 64) so appends are
 * amortised O(1).
 */
#include "runtime/base/zql_common.h"

#include "runtime/base/alloc.h"
#include "runtime/base/strbuf.h"

char zql_strbuf_empty[1];

void zql_strbuf_init(zql_strbuf_t *sb)
{
  sb->buf = zql_strbuf_empty;
  sb->len = 0;
  sb->alloc = 0;
  sb->oom = false;
}

void zql_strbuf_release(zql_strbuf_t *sb)
{
  if (sb->alloc)
    zql_free(sb->buf);
  zql_strbuf_init(sb);
}

void zql_strbuf_reset(zql_strbuf_t *sb)
{
  sb->len = 0;
  if (sb->alloc)
    sb->buf[0] = '\0';
}

bool zql_strbuf_grow(zql_strbuf_t *sb, size_t extra)
{
  if (sb->oom)
    return false;
  if (extra > SIZE_MAX - sb->len - 1) {
    sb->oom = true;
    return false;
  }
  size_t need = sb->len + extra + 1;
  if (need <= sb->alloc)
    return true;
  size_t n = sb->alloc + sb->alloc / 2 + 64;
  if (n < need)
    n = need;
  char *p = zql_realloc(sb->alloc ? sb->buf : NULL, n);
  if (!p) {
    sb->oom = true;
    return false;
  }
  if (!sb->alloc)
    p[0] = '\0';
  sb->buf = p;
  sb->alloc = n;
  return true;
}

void zql_strbuf_add(zql_strbuf_t *sb, const void *data, size_t n)
{
  if (!zql_strbuf_grow(sb, n))
    return;
  if (n)
    memcpy(sb->buf + sb->len, data, n);
  sb->len += n;
  sb->buf[sb->len] = '\0';
}

void zql_strbuf_adds(zql_strbuf_t *sb, const char *s)
{
  zql_strbuf_add(sb, s, strlen(s));
}

void zql_strbuf_addc(zql_strbuf_t *sb, char c)
{
  zql_strbuf_add(sb, &c, 1);
}

void zql_strbuf_addchars(zql_strbuf_t *sb, char c, size_t n)
{
  if (!zql_strbuf_grow(sb, n))
    return;
  memset(sb->buf + sb->len, c, n);
  sb->len += n;
  sb->buf[sb->len] = '\0';
}

void zql_strbuf_vaddf(zql_strbuf_t *sb, const char *fmt, va_list ap)
{
  va_list cp;
  va_copy(cp, ap);
  int n = vsnprintf(NULL, 0, fmt, cp);
  va_end(cp);
  if (n < 0 || !zql_strbuf_grow(sb, (size_t)n))
    return;
  vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
  sb->len += (size_t)n;
}

void zql_strbuf_addf(zql_strbuf_t *sb, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  zql_strbuf_vaddf(sb, fmt, ap);
  va_end(ap);
}

void zql_strbuf_add_quoted(zql_strbuf_t *sb, const char *s, size_t n)
{
  zql_strbuf_addc(sb, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
    case '"': zql_strbuf_adds(sb, "\\\""); break;
    case '\\': zql_strbuf_adds(sb, "\\\\"); break;
    case '\n': zql_strbuf_adds(sb, "\\n"); break;
    case '\t': zql_strbuf_adds(sb, "\\t"); break;
    case '\r': zql_strbuf_adds(sb, "\\r"); break;
    default:
      if (c < 0x20 || c == 0x7f)
        zql_strbuf_addf(sb, "\\x%02x", c);
      else
        zql_strbuf_addc(sb, (char)c);
    }
  }
  zql_strbuf_addc(sb, '"');
}

char *zql_strbuf_detach(zql_strbuf_t *sb, size_t *len)
{
  if (sb->oom) {
    zql_strbuf_release(sb);
    return NULL;
  }
  if (!sb->alloc && !zql_strbuf_grow(sb, 0)) {
    zql_strbuf_release(sb);
    return NULL;
  }
  char *p = sb->buf;
  if (len)
    *len = sb->len;
  zql_strbuf_init(sb);
  return p;
}
