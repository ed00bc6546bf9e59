/*
 * test_pool.c -- unit tests of the task pool (exec/pool.c, stage 4).
 *
 * Every task runs exactly once with a worker id below the thread count, the calling thread
 * being worker 0; the first failure is returned; the kept threads serve calls one after
 * the other (also after a warm-up and after they went to sleep), while concurrent and
 * nested calls run on threads of their own -- all with the same guarantees. A kept thread
 * out of tasks does not sleep while the phase still runs.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "exec/pool.h"
#include "runtime/base/error.h"

#define MAXT 1000

typedef struct {
  atomic_uint ran[MAXT];
  atomic_uint bad_worker;
  atomic_uint on_caller; /* tasks run by worker 0 on another thread than the caller's */
  unsigned threads;
  uint32_t fail_at;       /* this task returns fail_rc (MAXT: none) */
  int fail_rc;
  pthread_t caller;
  bool nested;            /* each task runs a pool of its own */
} job_t;

static int inner_task(void *arg, uint32_t task, uint32_t worker)
{
  atomic_uint *n = arg;
  (void)task;
  (void)worker;
  atomic_fetch_add(n, 1);
  return 0;
}

static int task(void *arg, uint32_t t, uint32_t worker)
{
  job_t *j = arg;
  atomic_fetch_add(&j->ran[t], 1);
  if (worker >= j->threads)
    atomic_fetch_add(&j->bad_worker, 1);
  if (worker == 0 && !pthread_equal(pthread_self(), j->caller))
    atomic_fetch_add(&j->on_caller, 1);
  if (j->nested) {
    atomic_uint n = 0;
    int rc = zql_pool_run(2, 7, inner_task, &n);
    if (rc != 0 || atomic_load(&n) != 7)
      atomic_fetch_add(&j->bad_worker, 1);
  }
  return t == j->fail_at ? j->fail_rc : 0;
}

/* Run n tasks on `threads`; *ok says whether every guarantee held (no cmocka assertion
 * here: callers run it on threads of their own too). Returns what zql_pool_run did. */
static int run_job(unsigned threads, uint32_t n, uint32_t fail_at, bool nested, bool *ok)
{
  job_t *j = calloc(1, sizeof *j);
  *ok = j != NULL;
  if (!j)
    return ZQL_E_NOMEM;
  j->threads = threads < 1 ? 1 : threads;
  j->fail_at = fail_at;
  j->fail_rc = ZQL_E_IO;
  j->caller = pthread_self();
  j->nested = nested;
  int rc = zql_pool_run(threads, n, task, j);
  for (uint32_t t = 0; t < n; t++)
    *ok = *ok && atomic_load(&j->ran[t]) == 1;
  *ok = *ok && atomic_load(&j->bad_worker) == 0 && atomic_load(&j->on_caller) == 0;
  free(j);
  return rc;
}

static int run_checked(unsigned threads, uint32_t n, uint32_t fail_at, bool nested)
{
  bool ok;
  int rc = run_job(threads, n, fail_at, nested, &ok);
  assert_true(ok);
  return rc;
}

static void test_every_task_once(void **state)
{
  (void)state;
  static const unsigned threads[] = {0, 1, 2, 3, 8};
  static const uint32_t tasks[] = {0, 1, 2, 5, 100, MAXT};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(threads); i++)
    for (size_t k = 0; k < ZQL_ARRAY_LEN(tasks); k++)
      assert_int_equal(run_checked(threads[i], tasks[k], MAXT, false), 0);
}

static void test_first_failure(void **state)
{
  (void)state;
  /* a failing task does not stop the others; its code comes back */
  assert_int_equal(run_checked(4, 500, 123, false), ZQL_E_IO);
  assert_int_equal(run_checked(1, 50, 0, false), ZQL_E_IO);
  assert_int_equal(run_checked(4, 500, MAXT, false), 0); /* and the next call is clean */
}

static void test_after_sleep(void **state)
{
  (void)state;
  zql_pool_warm(4);
  assert_int_equal(run_checked(4, 300, MAXT, false), 0);
  /* the kept threads' spin ends (pool.c: 1 to 2 ms) and they sleep: they still take jobs */
  struct timespec ts = {0, 20 * 1000 * 1000};
  nanosleep(&ts, NULL);
  assert_int_equal(run_checked(4, 300, MAXT, false), 0);
  assert_int_equal(run_checked(2, 300, MAXT, false), 0); /* fewer than are kept */
  assert_int_equal(run_checked(6, 300, MAXT, false), 0); /* more: one more is kept */
}

/* Worker 0 works 5 ms on its task; the other worker, out of tasks at once, spins until the
 * phase ends instead of sleeping once the spin window (1 to 2 ms) is over. */
typedef struct {
  uint64_t before, after;
} uneven_t;

static int uneven_task(void *arg, uint32_t task, uint32_t worker)
{
  uneven_t *u = arg;
  (void)task;
  if (worker == 0) {
    u->before = zql_pool_early_sleeps();
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
    u->after = zql_pool_early_sleeps();
  }
  return 0;
}

static void test_uneven_phase(void **state)
{
  (void)state;
  for (int i = 0; i < 3; i++) {
    uneven_t u = {0, 0};
    zql_pool_warm(2);
    assert_int_equal(zql_pool_run(2, 2, uneven_task, &u), 0);
    assert_int_equal(u.after, u.before);
  }
}

static void test_nested(void **state)
{
  (void)state;
  assert_int_equal(run_checked(3, 40, MAXT, true), 0);
}

static void *caller_main(void *arg)
{
  atomic_uint *fails = arg;
  for (int i = 0; i < 40; i++) {
    bool ok;
    if (run_job(3, 200, MAXT, false, &ok) != 0 || !ok)
      atomic_fetch_add(fails, 1);
  }
  return NULL;
}

static void test_concurrent_callers(void **state)
{
  (void)state;
  atomic_uint fails = 0;
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&t[i], NULL, caller_main, &fails), 0);
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  assert_int_equal(atomic_load(&fails), 0);
}

int zql_unit_pool(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_task_once), cmocka_unit_test(test_first_failure),
      cmocka_unit_test(test_after_sleep),     cmocka_unit_test(test_nested),
      cmocka_unit_test(test_concurrent_callers), cmocka_unit_test(test_uneven_phase),
  };
  return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}
