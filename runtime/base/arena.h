/*
 * arena.h -- memory contexts (layer 0), after PostgreSQL's mmgr and nginx pools.
 *
 * An arena hands out memory that is never freed piece by piece: the whole arena is
 * reset (emptied, kept for reuse) or deleted at once. Arenas form a tree: deleting or
 * resetting a parent deletes its children first. Cleanup callbacks registered on an
 * arena run (last registered first) when it is reset or deleted, to release resources
 * the arena does not own (files, bson_t, sockets).
 *
 * Lifetimes used by zql: process (config, catalog), query (source text, tokens, ASTs,
 * plan), batch (reset every N events), hashagg (groups until flushed or spilled).
 *
 * Invariants: every pointer returned by zql_arena_alloc is aligned for any C object
 * (max_align_t) and valid until the arena is reset or deleted. Allocation failure
 * returns NULL and never aborts; the arena stays usable.
 */
#ifndef ZQL_ARENA_H
#define ZQL_ARENA_H

#include "runtime/base/zql_common.h"

#include <stdarg.h>

typedef struct zql_arena zql_arena_t;
typedef void (*zql_arena_cleanup_fn)(void *arg);

/* A new, empty arena; a child of `parent` when not NULL. NULL when out of memory. */
zql_arena_t *zql_arena_create(zql_arena_t *parent);
/* Run cleanups, delete children, free every block; `a` itself is freed. NULL is a no-op. */
void zql_arena_delete(zql_arena_t *a);
/* Run cleanups, delete children and keep the first block for reuse. */
void zql_arena_reset(zql_arena_t *a);

void *zql_arena_alloc(zql_arena_t *a, size_t n);            /* uninitialised */
void *zql_arena_calloc(zql_arena_t *a, size_t count, size_t size); /* zeroed, overflow checked */
char *zql_arena_strndup(zql_arena_t *a, const char *s, size_t n); /* NUL-terminated copy */
char *zql_arena_strdup(zql_arena_t *a, const char *s);
char *zql_arena_printf(zql_arena_t *a, const char *fmt, ...) ZQL_PRINTF(2, 3);
char *zql_arena_vprintf(zql_arena_t *a, const char *fmt, va_list ap);
/* Register fn(arg) to run at reset/delete. Returns 0, or -1 when out of memory. */
int zql_arena_on_cleanup(zql_arena_t *a, zql_arena_cleanup_fn fn, void *arg);
/* Bytes handed out since creation or the last reset (for EXPLAIN ANALYZE and tests). */
size_t zql_arena_used(const zql_arena_t *a);

#endif
