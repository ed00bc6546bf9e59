/*
 * test_arena.c -- unit tests of the memory contexts (runtime/base/arena.c, layer 0).
 *
 * Covers the contract in arena.h: allocation and alignment, reset and delete, the arena
 * tree (deleting a parent deletes its children), cleanup callbacks (last registered runs
 * first, each exactly once), large and overflowing requests, and out-of-memory: a loop
 * makes the Nth heap allocation fail for N = 0, 1, ... until a whole scenario succeeds,
 * and every step must fail cleanly (NULL, no crash; leaks show up under ASan).
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include "runtime/base/alloc.h"
#include "runtime/base/arena.h"

#define ALIGN _Alignof(max_align_t)

static bool aligned(const void *p)
{
  return (uintptr_t)p % ALIGN == 0;
}

/* A cleanup log: each callback appends its tag. */
typedef struct {
  char log[64];
  size_t n;
} trail_t;

typedef struct {
  trail_t *trail;
  char tag;
} mark_t;

static void mark(void *arg)
{
  mark_t *m = arg;
  if (m->trail->n + 1 < sizeof m->trail->log)
    m->trail->log[m->trail->n++] = m->tag;
  m->trail->log[m->trail->n] = '\0';
}

static void test_create_alloc(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  assert_int_equal(zql_arena_used(a), 0);
  char *p = zql_arena_alloc(a, 10);
  assert_non_null(p);
  memcpy(p, "123456789", 10);
  char *q = zql_arena_alloc(a, 0); /* a valid, distinct pointer */
  assert_non_null(q);
  assert_ptr_not_equal(p, q);
  assert_true(zql_arena_used(a) >= 10);
  assert_string_equal(p, "123456789");
  zql_arena_delete(a);
  zql_arena_delete(NULL); /* a no-op */
}

static void test_alignment(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  for (size_t n = 1; n < 200; n++) {
    void *p = zql_arena_alloc(a, n);
    assert_non_null(p);
    assert_true(aligned(p));
    memset(p, 0xab, n);
  }
  for (size_t n = 1; n < 20; n++) {
    long double *ld = zql_arena_calloc(a, n, sizeof *ld);
    assert_non_null(ld);
    assert_true(aligned(ld));
  }
  void *big = zql_arena_alloc(a, 100000); /* a block of its own */
  assert_non_null(big);
  assert_true(aligned(big));
  zql_arena_delete(a);
}

static void test_contents_survive_growth(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  enum { N = 20000 };
  uint32_t **ptrs = calloc(N, sizeof *ptrs);
  assert_non_null(ptrs);
  for (uint32_t i = 0; i < N; i++) {
    size_t words = 1 + i % 37;
    ptrs[i] = zql_arena_alloc(a, words * sizeof(uint32_t));
    assert_non_null(ptrs[i]);
    for (size_t w = 0; w < words; w++)
      ptrs[i][w] = i;
  }
  for (uint32_t i = 0; i < N; i++)
    for (size_t w = 0; w < 1 + i % 37; w++)
      assert_int_equal(ptrs[i][w], i);
  free(ptrs);
  zql_arena_delete(a);
}

static void test_reset(void **state)
{
  trail_t t = {{0}, 0};
  mark_t m1 = {&t, '1'}, mc = {&t, 'c'};
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  zql_arena_t *child = zql_arena_create(a);
  assert_non_null(child);
  assert_int_equal(zql_arena_on_cleanup(child, mark, &mc), 0);
  assert_int_equal(zql_arena_on_cleanup(a, mark, &m1), 0);
  for (int i = 0; i < 1000; i++)
    assert_non_null(zql_arena_alloc(a, 100));
  assert_true(zql_arena_used(a) >= 100000);

  zql_arena_reset(a); /* cleanups run, the child is deleted */
  assert_string_equal(t.log, "1c");
  assert_int_equal(zql_arena_used(a), 0);
  char *p = zql_arena_strdup(a, "after reset");
  assert_non_null(p);
  assert_true(aligned(p));
  assert_string_equal(p, "after reset");

  zql_arena_reset(a); /* cleanups ran once: nothing more */
  zql_arena_delete(a);
  assert_string_equal(t.log, "1c");
}

static void test_children(void **state)
{
  trail_t t = {{0}, 0};
  mark_t mp = {&t, 'p'}, m1 = {&t, '1'}, m2 = {&t, '2'}, mg = {&t, 'g'};
  zql_arena_t *p = zql_arena_create(NULL);
  zql_arena_t *c1 = zql_arena_create(p);
  zql_arena_t *c2 = zql_arena_create(p);
  zql_arena_t *g = zql_arena_create(c1);
  assert_non_null(p);
  assert_non_null(c1);
  assert_non_null(c2);
  assert_non_null(g);
  assert_int_equal(zql_arena_on_cleanup(p, mark, &mp), 0);
  assert_int_equal(zql_arena_on_cleanup(c1, mark, &m1), 0);
  assert_int_equal(zql_arena_on_cleanup(c2, mark, &m2), 0);
  assert_int_equal(zql_arena_on_cleanup(g, mark, &mg), 0);
  assert_non_null(zql_arena_alloc(g, 50000));

  zql_arena_delete(c2); /* unlinks itself: the parent must not delete it again */
  assert_string_equal(t.log, "2");
  zql_arena_delete(p);
  /* the parent's own cleanups run first, then its children (and theirs) */
  assert_int_equal(t.n, 4);
  assert_int_equal(t.log[1], 'p');
  assert_non_null(strchr(t.log, '1'));
  assert_non_null(strchr(t.log, 'g'));
}

static void test_cleanup_order(void **state)
{
  trail_t t = {{0}, 0};
  mark_t m[5] = {{&t, 'a'}, {&t, 'b'}, {&t, 'c'}, {&t, 'd'}, {&t, 'e'}};
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  for (int i = 0; i < 5; i++)
    assert_int_equal(zql_arena_on_cleanup(a, mark, &m[i]), 0);
  zql_arena_delete(a);
  assert_string_equal(t.log, "edcba");
}

static void test_large(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  char *small = zql_arena_strdup(a, "small");
  size_t big = 10u << 20;
  unsigned char *p = zql_arena_alloc(a, big);
  assert_non_null(p);
  memset(p, 0x5a, big);
  assert_int_equal(p[0], 0x5a);
  assert_int_equal(p[big - 1], 0x5a);
  char *after = zql_arena_strdup(a, "after"); /* the current block is still used */
  assert_non_null(after);
  assert_string_equal(small, "small");
  assert_string_equal(after, "after");
  assert_true(zql_arena_used(a) >= big);
  zql_arena_reset(a);
  p = zql_arena_alloc(a, big);
  assert_non_null(p);
  memset(p, 1, big);
  zql_arena_delete(a);
}

static void test_overflow(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  assert_null(zql_arena_calloc(a, SIZE_MAX / 2 + 1, 2));
  assert_null(zql_arena_calloc(a, 2, SIZE_MAX / 2 + 1));
  assert_null(zql_arena_calloc(a, SIZE_MAX, SIZE_MAX));
  assert_null(zql_arena_alloc(a, SIZE_MAX));
  assert_null(zql_arena_alloc(a, SIZE_MAX - 8));
  assert_null(zql_arena_strndup(a, "x", SIZE_MAX));
  /* still usable afterwards */
  int *z = zql_arena_calloc(a, 100, sizeof *z);
  assert_non_null(z);
  for (int i = 0; i < 100; i++)
    assert_int_equal(z[i], 0);
  zql_arena_delete(a);
}

static void test_strings(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  assert_string_equal(zql_arena_strndup(a, "abcdef", 3), "abc");
  char *nul = zql_arena_strndup(a, "a\0b", 3);
  assert_non_null(nul);
  assert_memory_equal(nul, "a\0b", 4);
  assert_string_equal(zql_arena_strdup(a, ""), "");
  assert_string_equal(zql_arena_printf(a, "%s-%d-%05.1f", "x", 42, 2.5), "x-42-002.5");
  char *longs = zql_arena_printf(a, "%5000d|", 7);
  assert_non_null(longs);
  assert_int_equal(strlen(longs), 5001);
  zql_arena_delete(a);
}

static void test_fail_then_recover(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  zql_alloc_fail_after(0);
  assert_null(zql_arena_alloc(a, 2u << 20)); /* needs a new block, which cannot be had */
  assert_null(zql_arena_create(a));
  assert_null(zql_arena_create(NULL));
  zql_alloc_fail_after(-1);
  char *p = zql_arena_strdup(a, "recovered");
  assert_non_null(p);
  assert_string_equal(p, "recovered");
  zql_arena_delete(a);
}

/* One scenario of everything the arena does; false on the first allocation failure. The
 * cleanup counter tells whether every registered callback ran exactly once. */
static int cleanups_registered, cleanups_run;

static void count_cleanup(void *arg)
{
  (void)arg;
  cleanups_run++;
}

static bool scenario(void)
{
  zql_arena_t *a = zql_arena_create(NULL);
  if (!a)
    return false;
  bool ok = false;
  zql_arena_t *c = zql_arena_create(a);
  if (!c)
    goto out;
  if (zql_arena_on_cleanup(c, count_cleanup, NULL) != 0)
    goto out;
  cleanups_registered++;
  if (zql_arena_on_cleanup(a, count_cleanup, NULL) != 0)
    goto out;
  cleanups_registered++;
  for (int i = 0; i < 200; i++)
    if (!zql_arena_alloc(i % 2 ? a : c, 64 + (size_t)i * 13))
      goto out;
  if (!zql_arena_alloc(c, 200000) || !zql_arena_strdup(a, "text") ||
      !zql_arena_printf(c, "%d %s", 7, "seven") || !zql_arena_calloc(a, 300, 8))
    goto out;
  zql_arena_reset(c);
  if (!zql_arena_alloc(c, 5000) || !zql_arena_create(c))
    goto out;
  ok = true;
out:
  zql_arena_delete(a);
  return ok;
}

static void test_oom_loop(void **state)
{
  long n;
  bool done = false;
  for (n = 0; n < 10000 && !done; n++) {
    cleanups_registered = cleanups_run = 0;
    zql_alloc_fail_after(n);
    done = scenario();
    zql_alloc_fail_after(-1);
    assert_int_equal(cleanups_run, cleanups_registered);
  }
  assert_true(done);
  assert_true(n > 1); /* the scenario does allocate */
}

int zql_unit_arena(void)
{
  const struct CMUnitTest tests[] = {
      ZQL_UNIT_TEST(test_create_alloc),
      ZQL_UNIT_TEST(test_alignment),
      ZQL_UNIT_TEST(test_contents_survive_growth),
      ZQL_UNIT_TEST(test_reset),
      ZQL_UNIT_TEST(test_children),
      ZQL_UNIT_TEST(test_cleanup_order),
      ZQL_UNIT_TEST(test_large),
      ZQL_UNIT_TEST(test_overflow),
      ZQL_UNIT_TEST(test_strings),
      ZQL_UNIT_TEST(test_fail_then_recover),
      ZQL_UNIT_TEST(test_oom_loop),
  };
  return cmocka_run_group_tests_name("arena", tests, NULL, NULL);
}
