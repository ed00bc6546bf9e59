/*
 * alloc.c -- zql_malloc: heap allocation with overflow checks and fault injection.
 *
 * Layer 0 (runtime/base). Everything above allocates either from an arena (arena.c),
 * which itself calls zql_malloc for its blocks, or directly through these functions.
 * A failed allocation returns NULL and the caller turns it into ZQL_E_NOMEM.
 */
#include "runtime/base/zql_common.h"

#include <stdarg.h>

#include "runtime/base/alloc.h"

static long fail_after = -1; /* < 0: never fail */
static long alloc_count;

static bool should_fail(void)
{
  alloc_count++;
  if (fail_after < 0)
    return false;
  if (fail_after == 0)
    return true;
  fail_after--;
  return false;
}

long zql_alloc_fail_after(long n)
{
  long made = alloc_count;
  alloc_count = 0;
  fail_after = n;
  return made;
}

void *zql_malloc(size_t n)
{
  if (should_fail())
    return NULL;
  return malloc(n ? n : 1);
}

void *zql_calloc(size_t count, size_t size)
{
  if (size && count > SIZE_MAX / size)
    return NULL;
  if (should_fail())
    return NULL;
  return calloc(count ? count : 1, size ? size : 1);
}

void *zql_realloc(void *p, size_t n)
{
  if (should_fail())
    return NULL;
  return realloc(p, n ? n : 1);
}

void *zql_reallocarray(void *p, size_t count, size_t size)
{
  if (size && count > SIZE_MAX / size)
    return NULL;
  return zql_realloc(p, count * size);
}

void zql_free(void *p)
{
  free(p);
}

char *zql_strndup(const char *s, size_t n)
{
  char *d = zql_malloc(n + 1);
  if (!d)
    return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

void zql_bug_at(const char *file, int line, const char *fmt, ...)
{
  va_list ap;
  fprintf(stderr, "zql: BUG at %s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  abort();
}
