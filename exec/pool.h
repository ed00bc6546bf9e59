/*
 * pool.h -- run N independent tasks on T threads (stage 4, local execution).
 *
 * zql_pool_run(T, n, fn, arg) calls fn(arg, task, worker) once for every task in
 * [0, n), on min(T, n) threads (the calling thread is worker 0), handing out task
 * indexes from an atomic counter so that fast workers take more tasks. It returns when
 * every task ran, with the first non-zero value a task returned (later tasks still run:
 * each task reports its own errors). Map tasks (chunks) and reduce tasks (partitions) both
 * run through it. Threads are kept between calls (pool.c says why).
 */
#ifndef ZQL_POOL_H
#define ZQL_POOL_H

#include "runtime/base/zql_common.h"

typedef int (*zql_task_fn)(void *arg, uint32_t task, uint32_t worker);

int zql_pool_run(unsigned threads, uint32_t ntasks, zql_task_fn fn, void *arg);

/* Make the kept threads of `threads` exist and wake them for a few milliseconds: called
 * where a run starts, so that they are running when its first phase needs them (pool.c). */
void zql_pool_warm(unsigned threads);

/* How many times a kept thread went to sleep while the phase it had taken part in still ran
 * (on a virtual machine it would then wake late into the next phase): for tests. */
uint64_t zql_pool_early_sleeps(void);

#endif
