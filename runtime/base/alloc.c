/*
 * alloc.c -- zql_malloc: heap allocation with overflow checks and fault injection.
 *
 * Layer 0 (runtime/base). Everything above allocates either from an arena (arena.c),
 * which itself calls zql_malloc for its blocks, or directly through these functions.
 * A failed allocation returns NULL and the caller turns it into ZQL_E_NOMEM.
 */
#include "runtime/base/zql_common.h"

#include <stdarg.h>
#include <stdatomic.h>

#include "runtime/base/alloc.h"

/* The fault-injection hook's state. Atomic (relaxed) because every thread allocates;
 * arming the hook itself is for single-threaded unit tests. fail_after < -1: the hook is
 * off (never fail, count nothing: the default, so that threads allocating at the same time
 * do not pass the counter's cache line back and forth); -1: count only; >= 0: allocations
 * left before every one fails. */
static _Atomic long fail_after = -2;
static _Atomic long alloc_count;

static bool should_fail(void)
{
  long left = atomic_load_explicit(&fail_after, memory_order_relaxed);
  if (left < -1)
    return false;
  atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed);
  if (left < 0)
    return false;
  if (left == 0)
    return true;
  atomic_store_explicit(&fail_after, left - 1, memory_order_relaxed);
  return false;
}

long zql_alloc_fail_after(long n)
{
  long made = atomic_exchange_explicit(&alloc_count, 0, memory_order_relaxed);
  atomic_store_explicit(&fail_after, n, memory_order_relaxed);
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
