/*
 * alloc.h -- zql_malloc and friends: the one heap entry point of libzql (layer 0).
 *
 * Every heap allocation in zql goes through these functions so that out-of-memory is a
 * tested error path: they return NULL on failure (never abort), sizes are overflow
 * checked, and a test hook can make the Nth allocation fail (Lua's Memcontrol).
 */
#ifndef ZQL_ALLOC_H
#define ZQL_ALLOC_H

#include "runtime/base/zql_common.h"

void *zql_malloc(size_t n);
void *zql_calloc(size_t count, size_t size); /* NULL if count*size overflows */
void *zql_realloc(void *p, size_t n);
void *zql_reallocarray(void *p, size_t count, size_t size);
void zql_free(void *p);
char *zql_strndup(const char *s, size_t n);

/* Test hook: after `n` more successful allocations, every allocation fails until reset
 * with n < 0 (never fail). Returns how many allocations were made since the last call
 * (counted from the first call on: until then the hook is off and counts nothing). Not
 * thread-safe; for unit tests only. */
long zql_alloc_fail_after(long n);

#endif
