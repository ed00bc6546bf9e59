/*
 * arena.c -- memory contexts: bump allocation in growing blocks, a tree of arenas,
 * cleanup callbacks (layer 0; see arena.h for the contract).
 *
 * Algorithm: each arena keeps a singly linked list of blocks, the newest first. An
 * allocation is carved from the newest block; when it does not fit, a new block of
 * max(2 * previous block, request) bytes is allocated (capped at 1 MiB growth steps), so
 * a query that builds a large AST does O(log n) mallocs. Requests larger than a quarter
 * of the block size get a block of their own, inserted behind the current block so the
 * free tail of the current block is not wasted.
 */
#include "runtime/base/zql_common.h"

#include <stdarg.h>

#include "runtime/base/alloc.h"
#include "runtime/base/arena.h"

#define ALIGN _Alignof(max_align_t)
#define FIRST_BLOCK 4096
#define MAX_BLOCK (1u << 20)

typedef struct block {
  struct block *next;
  size_t size; /* usable bytes after the header */
  size_t used;
  max_align_t data[]; /* aligned payload */
} block_t;

typedef struct cleanup {
  struct cleanup *next;
  zql_arena_cleanup_fn fn;
  void *arg;
} cleanup_t;

struct zql_arena {
  zql_arena_t *parent;
  zql_arena_t *first_child;
  zql_arena_t *next_sibling;
  block_t *blocks;
  cleanup_t *cleanups;
  size_t next_size;
  size_t used;
};

static size_t align_up(size_t n)
{
  return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

zql_arena_t *zql_arena_create(zql_arena_t *parent)
{
  zql_arena_t *a = zql_calloc(1, sizeof *a);
  if (!a)
    return NULL;
  a->next_size = FIRST_BLOCK;
  a->parent = parent;
  if (parent) {
    a->next_sibling = parent->first_child;
    parent->first_child = a;
  }
  return a;
}

static void run_cleanups(zql_arena_t *a)
{
  while (a->cleanups) {
    cleanup_t *c = a->cleanups;
    a->cleanups = c->next; /* allocated in the arena itself: no free */
    c->fn(c->arg);
  }
}

static void delete_children(zql_arena_t *a)
{
  while (a->first_child) {
    zql_arena_t *c = a->first_child;
    zql_arena_delete(c); /* unlinks itself from a */
  }
}

void zql_arena_delete(zql_arena_t *a)
{
  if (!a)
    return;
  run_cleanups(a);
  delete_children(a);
  if (a->parent) {
    zql_arena_t **pp = &a->parent->first_child;
    while (*pp && *pp != a)
      pp = &(*pp)->next_sibling;
    if (*pp)
      *pp = a->next_sibling;
  }
  while (a->blocks) {
    block_t *b = a->blocks;
    a->blocks = b->next;
    zql_free(b);
  }
  zql_free(a);
}

void zql_arena_reset(zql_arena_t *a)
{
  run_cleanups(a);
  delete_children(a);
  /* keep the oldest block (the smallest), free the others */
  block_t *keep = NULL;
  while (a->blocks) {
    block_t *b = a->blocks;
    a->blocks = b->next;
    if (!a->blocks) {
      keep = b;
    } else {
      zql_free(b);
    }
  }
  if (keep) {
    keep->used = 0;
    keep->next = NULL;
  }
  a->blocks = keep;
  a->used = 0;
}

static block_t *new_block(size_t size)
{
  if (size > SIZE_MAX - sizeof(block_t))
    return NULL;
  block_t *b = zql_malloc(sizeof(block_t) + size);
  if (!b)
    return NULL;
  b->next = NULL;
  b->size = size;
  b->used = 0;
  return b;
}

void *zql_arena_alloc(zql_arena_t *a, size_t n)
{
  if (n > SIZE_MAX - ALIGN)
    return NULL;
  n = align_up(n ? n : 1);
  block_t *cur = a->blocks;
  if (cur && cur->size - cur->used >= n) {
    void *p = (char *)cur->data + cur->used;
    cur->used += n;
    a->used += n;
    return p;
  }
  if (cur && n > a->next_size / 4) {
    /* a big request: its own block, behind the current one */
    block_t *b = new_block(n);
    if (!b)
      return NULL;
    b->used = n;
    b->next = cur->next;
    cur->next = b;
    a->used += n;
    return b->data;
  }
  size_t size = a->next_size;
  while (size < n)
    size *= 2;
  block_t *b = new_block(size);
  if (!b)
    return NULL;
  if (a->next_size < MAX_BLOCK)
    a->next_size *= 2;
  b->next = a->blocks;
  a->blocks = b;
  b->used = n;
  a->used += n;
  return b->data;
}

void *zql_arena_calloc(zql_arena_t *a, size_t count, size_t size)
{
  if (size && count > SIZE_MAX / size)
    return NULL;
  void *p = zql_arena_alloc(a, count * size);
  if (p)
    memset(p, 0, count * size);
  return p;
}

char *zql_arena_strndup(zql_arena_t *a, const char *s, size_t n)
{
  if (n == SIZE_MAX)
    return NULL;
  char *d = zql_arena_alloc(a, n + 1);
  if (!d)
    return NULL;
  if (n)
    memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

char *zql_arena_strdup(zql_arena_t *a, const char *s)
{
  return zql_arena_strndup(a, s, strlen(s));
}

char *zql_arena_vprintf(zql_arena_t *a, const char *fmt, va_list ap)
{
  va_list cp;
  va_copy(cp, ap);
  int n = vsnprintf(NULL, 0, fmt, cp);
  va_end(cp);
  if (n < 0)
    return NULL;
  char *d = zql_arena_alloc(a, (size_t)n + 1);
  if (d)
    vsnprintf(d, (size_t)n + 1, fmt, ap);
  return d;
}

char *zql_arena_printf(zql_arena_t *a, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *d = zql_arena_vprintf(a, fmt, ap);
  va_end(ap);
  return d;
}

int zql_arena_on_cleanup(zql_arena_t *a, zql_arena_cleanup_fn fn, void *arg)
{
  cleanup_t *c = zql_arena_alloc(a, sizeof *c);
  if (!c)
    return -1;
  c->fn = fn;
  c->arg = arg;
  c->next = a->cleanups;
  a->cleanups = c;
  return 0;
}

size_t zql_arena_used(const zql_arena_t *a)
{
  return a->used;
}
