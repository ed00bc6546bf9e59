/*
 * pool.c -- run N independent tasks on T threads (stage 4, local execution).
 *
 * See pool.h. The threads are kept between calls: a run has three or four phases (map,
 * reduce, the commit's merges), and on a virtual machine a thread created or woken on an
 * idle virtual CPU can start milliseconds late -- the hypervisor first has to schedule that
 * CPU again (a map stage that assigned its chunks statically took 12 ms instead of 10 with
 * a worker 2 ms late; every chunk is now a task, exec/run.c). Kept workers therefore spin
 * for a while after their last task (PHASE_SPIN_NS) and only then sleep, and a run wakes
 * them ahead of its first phase (zql_pool_warm), so its serial set-up (plan, log snapshot)
 * covers their wake-up. A worker that spins finds the next phase's task at once
 * and keeps its CPU from going idle between phases; it yields in its loop, so that it never
 * takes a CPU from a thread with work. A worker out of tasks before the phase ends spins
 * until it ends (JOB_SPIN_NS at most): the workers' last tasks of a phase can end a few
 * milliseconds apart, and the next phase follows at once.
 *
 * One caller at a time uses the kept threads (a try-lock): a concurrent or nested call
 * (two runs in one zqld, a task that runs a pool) creates and joins threads of its own,
 * as every call did before.
 */
#include "runtime/base/zql_common.h"

#include "exec/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "runtime/base/error.h"

#define MAX_THREADS 256
/* How long kept workers spin before they sleep: after a phase, long enough for the serial
 * work between two phases of a run (well under 1 ms), short enough that a daemon running
 * one small run after another does not keep a CPU busy; after a warm-up, long enough for a
 * run's set-up (catalog, plan, log snapshot: about 0.7 ms). */
#define PHASE_SPIN_NS 1000000
#define WARM_SPIN_NS 2000000
/* A worker out of tasks while the others still run theirs keeps spinning until the phase
 * ends (then PHASE_SPIN_NS more), up to this long: a worker that slept through the end of
 * an uneven map phase woke late into the reduce, and worker 0 then did it alone. */
#define JOB_SPIN_NS 20000000

typedef struct job {
  zql_task_fn fn;
  void *arg;
  uint32_t ntasks;
  atomic_uint next;
  atomic_int rc;
  atomic_uint busy; /* kept workers still in this job */
  unsigned id;      /* kept jobs are numbered: K.started */
} job_t;

static void work(job_t *p, uint32_t id)
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

/* {==== threads of one call ==== */

typedef struct worker {
  job_t *job;
  uint32_t id;
} worker_t;

static void *thread_main(void *arg)
{
  worker_t *w = arg;
  work(w->job, w->id);
  return NULL;
}

/* Workers 1 .. threads - 1 created for this call and joined. */
static void run_own(job_t *p, unsigned threads)
{
  pthread_t tid[MAX_THREADS];
  worker_t w[MAX_THREADS];
  unsigned started = 0;
  for (unsigned i = 1; i < threads; i++) {
    w[i] = (worker_t){p, i};
    if (pthread_create(&tid[i], NULL, thread_main, &w[i]) != 0)
      break; /* fewer threads: the remaining workers take the tasks */
    started = i;
  }
  work(p, 0);
  for (unsigned i = 1; i <= started; i++)
    pthread_join(tid[i], NULL);
}

/* }==== */

/* {==== kept threads ==== */

/* Kept worker k's mailbox: the caller stores the job, then bumps gen (release). */
typedef struct slot {
  _Alignas(64) atomic_uint gen;
  job_t *job;
  unsigned seen; /* the worker's: the last gen it took */
} slot_t;

static struct {
  pthread_mutex_t own; /* held by the call using the kept threads */
  pthread_mutex_t mu;  /* with cv: sleeping workers, and callers waiting for them */
  pthread_cond_t cv;
  unsigned n;          /* kept workers: ids 1 .. n */
  atomic_llong spin_until; /* CLOCK_MONOTONIC ns: kept workers spin until then */
  atomic_uint started, ended; /* the number of the last kept job started, ended */
  atomic_ullong early_sleeps; /* zql_pool_early_sleeps */
  slot_t slot[MAX_THREADS];
} K = {.own = PTHREAD_MUTEX_INITIALIZER,
       .mu = PTHREAD_MUTEX_INITIALIZER,
       .cv = PTHREAD_COND_INITIALIZER};

static long long now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* Whether job number `job` still runs. */
static bool job_running(unsigned job)
{
  return (int)(atomic_load_explicit(&K.ended, memory_order_relaxed) - job) < 0;
}

/* Whether a kept worker that finished its part of job number `job` at `idle` may sleep
 * now: not in the spin window, nor while that job still runs (up to JOB_SPIN_NS). */
static bool may_sleep(unsigned job, long long idle)
{
  long long t = now_ns();
  if (t < atomic_load_explicit(&K.spin_until, memory_order_relaxed))
    return false;
  return !job_running(job) || t >= idle + JOB_SPIN_NS;
}

/* A kept worker: its slot's jobs, one after the other. While it spins it yields its CPU to
 * any other runnable thread there: with more threads than CPUs (--threads 4 on 2), spinning
 * must not slow down the serial work between phases. */
static void *kept_main(void *arg)
{
  slot_t *s = arg;
  uint32_t id = (uint32_t)(s - K.slot);
  long long idle = now_ns();
  unsigned job = atomic_load(&K.ended); /* none running */
  for (;;) {
    /* spin while the spin window lasts, then sleep until the next job or warm-up */
    unsigned g;
    for (unsigned i = 0;; i++) {
      g = atomic_load_explicit(&s->gen, memory_order_acquire);
      if (g != s->seen)
        break;
      if ((i & 63) == 0 && may_sleep(job, idle)) {
        pthread_mutex_lock(&K.mu);
        while ((g = atomic_load_explicit(&s->gen, memory_order_acquire)) == s->seen &&
               may_sleep(job, idle)) {
          if (job_running(job))
            atomic_fetch_add_explicit(&K.early_sleeps, 1, memory_order_relaxed);
          pthread_cond_wait(&K.cv, &K.mu);
        }
        pthread_mutex_unlock(&K.mu);
        if (g != s->seen)
          break;
      }
      sched_yield();
    }
    s->seen = g;
    job_t *p = s->job;
    job = p->id;
    work(p, id);
    idle = now_ns();
    /* the last access to the job: the caller may return as soon as busy reaches 0 */
    if (atomic_fetch_sub_explicit(&p->busy, 1, memory_order_acq_rel) == 1) {
      pthread_mutex_lock(&K.mu);
      pthread_cond_broadcast(&K.cv);
      pthread_mutex_unlock(&K.mu);
    }
  }
  return NULL;
}

/* Kept workers up to `want` (K.own held); returns how many there are. */
static unsigned keep(unsigned want)
{
  while (K.n < want && K.n + 1 < MAX_THREADS) {
    slot_t *s = &K.slot[K.n + 1];
    atomic_init(&s->gen, 0);
    s->seen = 0;
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &at, kept_main, s);
    pthread_attr_destroy(&at);
    if (rc != 0)
      break;
    K.n++;
  }
  return K.n;
}

/* Open the spin window for ns more nanoseconds and wake the sleepers into it. */
static void spin_for(long long ns)
{
  long long until = now_ns() + ns;
  if (until > atomic_load(&K.spin_until))
    atomic_store(&K.spin_until, until);
  pthread_mutex_lock(&K.mu);
  pthread_cond_broadcast(&K.cv);
  pthread_mutex_unlock(&K.mu);
}

void zql_pool_warm(unsigned threads)
{
  if (threads < 2 || pthread_mutex_trylock(&K.own) != 0)
    return;
  keep(threads - 1 < MAX_THREADS ? threads - 1 : MAX_THREADS - 1);
  spin_for(WARM_SPIN_NS);
  pthread_mutex_unlock(&K.own);
}

uint64_t zql_pool_early_sleeps(void)
{
  return atomic_load(&K.early_sleeps);
}

/* }==== */

int zql_pool_run(unsigned threads, uint32_t ntasks, zql_task_fn fn, void *arg)
{
  job_t p;
  p.fn = fn;
  p.arg = arg;
  p.ntasks = ntasks;
  atomic_init(&p.next, 0);
  atomic_init(&p.rc, 0);
  atomic_init(&p.busy, 0);
  if (threads < 1)
    threads = 1;
  if (threads > ntasks)
    threads = ntasks ? ntasks : 1;
  if (threads > MAX_THREADS)
    threads = MAX_THREADS;
  if (threads == 1) {
    work(&p, 0);
    return atomic_load(&p.rc);
  }
  if (pthread_mutex_trylock(&K.own) != 0) {
    run_own(&p, threads); /* the kept threads are busy: threads of this call's own */
    return atomic_load(&p.rc);
  }
  unsigned n = keep(threads - 1); /* fewer if threads cannot be created: worker 0 does more */
  if (n > threads - 1)
    n = threads - 1;
  atomic_store(&p.busy, n);
  p.id = atomic_load(&K.started) + 1;
  atomic_store(&K.started, p.id);
  for (unsigned k = 1; k <= n; k++) {
    K.slot[k].job = &p;
    atomic_fetch_add_explicit(&K.slot[k].gen, 1, memory_order_release);
  }
  spin_for(PHASE_SPIN_NS); /* the sleepers wake into the job */
  work(&p, 0);
  for (unsigned i = 0; atomic_load_explicit(&p.busy, memory_order_acquire) != 0; i++) {
    if ((i & 63) == 63) {
      pthread_mutex_lock(&K.mu);
      while (atomic_load_explicit(&p.busy, memory_order_acquire) != 0)
        pthread_cond_wait(&K.cv, &K.mu);
      pthread_mutex_unlock(&K.mu);
      break;
    }
    relax();
  }
  /* the next phase usually follows at once: keep the workers spinning into it */
  atomic_store(&K.ended, p.id);
  spin_for(PHASE_SPIN_NS);
  pthread_mutex_unlock(&K.own);
  return atomic_load(&p.rc);
}
