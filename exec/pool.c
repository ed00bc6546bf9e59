/*
 * pool.c -- run N independent tasks on T threads (stage 4, local execution).
 *
 * See pool.h. Threads are created per phase (a run has two: map, then reduce), which
 * costs tens of microseconds against phases that last milliseconds to minutes, and keeps
 * no idle threads around in the daemon between runs.
 */
#include "runtime/base/zql_common.h"

#include "exec/pool.h"

#include <pthread.h>
#include <stdatomic.h>

#include "runtime/base/error.h"

typedef struct pool {
  zql_task_fn fn;
  void *arg;
  uint32_t ntasks;
  atomic_uint next;
  atomic_int rc;
} pool_t;

typedef struct worker {
  pool_t *pool;
  uint32_t id;
} worker_t;

static void work(pool_t *p, uint32_t id)
{
  for (;;) {
    uint32_t t = atomic_fetch_add(&p->next, 1);
    if (t >= p->ntasks)
      return;
    int rc = p->fn(p->arg, t, id);
    if (rc != 0) {
      int zero = 0;
      atomic_compare_exchange_strong(&p->rc, &zero, rc);
    }
  }
}

static void *thread_main(void *arg)
{
  worker_t *w = arg;
  work(w->pool, w->id);
  return NULL;
}

int zql_pool_run(unsigned threads, uint32_t ntasks, zql_task_fn fn, void *arg)
{
  pool_t p;
  p.fn = fn;
  p.arg = arg;
  p.ntasks = ntasks;
  atomic_init(&p.next, 0);
  atomic_init(&p.rc, 0);
  if (threads < 1)
    threads = 1;
  if (threads > ntasks)
    threads = ntasks ? ntasks : 1;
  if (threads > 256)
    threads = 256;
  pthread_t tid[256];
  worker_t w[256];
  unsigned started = 0;
  for (unsigned i = 1; i < threads; i++) {
    w[i] = (worker_t){&p, i};
    if (pthread_create(&tid[i], NULL, thread_main, &w[i]) != 0)
      break; /* fewer threads: the remaining workers take the tasks */
    started = i;
  }
  work(&p, 0);
  for (unsigned i = 1; i <= started; i++)
    pthread_join(tid[i], NULL);
  return atomic_load(&p.rc);
}
