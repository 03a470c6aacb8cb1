/*
 * threads.h — a small fork-join thread pool for the engine's kernels.
 *
 * lm_pool_run(pool, fn, arg) calls fn(arg, ith, nth) once for every ith in
 * 0..nth-1 (nth = the pool size) and returns when all calls have finished;
 * lm_pool_run_n does the same for any number of tasks.  Tasks are claimed
 * from a shared counter by the caller and by whichever workers are awake, so
 * a worker that the OS has not scheduled (a busy machine) delays nothing:
 * the caller runs the tasks itself.  Consequently ith names a task, not a
 * thread: scratch indexed by ith is private to that call, but ith 0 need
 * not run on the calling thread.  Workers spin for a short while between jobs
 * and then sleep, so back-to-back dispatches (one per matmul) cost about a
 * microsecond, while an idle pool uses no CPU.
 *
 * Workers block every asynchronous signal and never call anything but the
 * given function: they are safe inside a Postgres backend.  A pool of one
 * thread runs fn inline and creates no thread at all.  lm_pool_stop() joins
 * the workers between jobs (the next job starts them again), so a host that
 * must not be multi-threaded outside its calls into the engine can be.
 */
#ifndef LM_THREADS_H
#define LM_THREADS_H

#include <stddef.h>

typedef struct lm_pool lm_pool;

/* The work function: called once per thread with its index and the thread count. */
typedef void (*lm_pool_fn) (void *arg, int ith, int nth);

/* Create a pool of n_threads (clamped to 1..256); NULL with a message on failure. */
extern lm_pool *lm_pool_create(int n_threads, char *err, size_t errlen);

/* Call fn(arg, ith, nth) for ith in 0..nth-1, nth = pool size, and wait; not re-entrant. */
extern void lm_pool_run(lm_pool *pool, lm_pool_fn fn, void *arg);

/* Call fn(arg, i, n_tasks) for i in 0..n_tasks-1 across the pool and wait; not re-entrant. */
extern void lm_pool_run_n(lm_pool *pool, lm_pool_fn fn, void *arg, int n_tasks);

/* Number of threads (the caller's included); 1 for a NULL pool. */
extern int	lm_pool_size(const lm_pool *pool);

/* Join the workers; the next job starts them again.  NULL is allowed. */
extern void lm_pool_stop(lm_pool *pool);

/* Worker threads running now, the caller not counted (0 after lm_pool_stop). */
extern int	lm_pool_running(const lm_pool *pool);

/* Stop and join the workers and free the pool; NULL is allowed. */
extern void lm_pool_free(lm_pool *pool);

/* Monotonic seconds (for timings of engine work). */
extern double lm_now_s(void);

#endif							/* LM_THREADS_H */
