/*
 * threads.c — the engine's fork-join thread pool.
 *
 * Hand-off protocol.  A job is published in one 64-bit atomic word `claim`:
 * the high 32 bits are the job's generation, the low 32 bits the next task
 * to hand out.  To run a job the caller first closes the previous one (its
 * claim word gets task UINT32_MAX, so no stale claim can succeed), then
 * stores fn/arg/n_tasks, clears
 * `n_finished`, and stores (gen+1) << 32 into `claim` (release).  Every
 * thread — the caller included — then claims tasks with a compare-and-swap
 * that also checks the generation, so a worker that wakes late can never
 * claim a task of a later job.  fn/arg/n_tasks stay valid while any task of
 * the job is unfinished, because the caller returns only when n_finished
 * reaches n_tasks.  A descheduled worker therefore never holds up a job.
 *
 * Workers first spin on the generation (a job usually follows within
 * microseconds during a forward pass); after POOL_SPIN_ITERS checks they
 * sleep on a condition variable.  A sleeper announces itself in `n_sleeping`
 * (under the mutex) before its last look at the generation; the caller
 * publishes the job before reading `n_sleeping` (both sequentially
 * consistent), so either the sleeper sees the job or the caller sees the
 * sleeper and broadcasts.  The mutex is only taken when a worker sleeps.
 *
 * Workers are created with every signal blocked and touch nothing but the
 * job function and this struct.
 */
#include "threads.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL_MAX_THREADS 256
#define POOL_SPIN_ITERS 50000	/* worker checks before sleeping (~1 ms) */
#define POOL_WAIT_SPINS 2048	/* caller spins before yielding the CPU */

/* One worker's identity. */
typedef struct pool_worker
{
	struct lm_pool *pool;		/* owning pool */
	int			index;			/* 1..nth-1 */
} pool_worker;

/* The pool. */
struct lm_pool
{
	int			nth;			/* threads including the caller */
	int			n_started;		/* workers actually created */
	pthread_t  *threads;		/* nth - 1 worker handles */
	pool_worker *workers;		/* nth - 1 worker identities */
	lm_pool_fn	fn;				/* current job (written before publishing) */
	void	   *arg;			/* its argument */
	atomic_int	n_tasks;		/* its task count (read racily by late workers; the CAS guards) */
	atomic_uint_fast64_t claim; /* generation << 32 | next task */
	atomic_int	n_finished;		/* tasks of the current job finished */
	atomic_int	n_sleeping;		/* workers blocked on cv */
	atomic_int	stop;			/* set once, at free */
	pthread_mutex_t mu;			/* protects the sleep/wake hand-off */
	pthread_cond_t cv;			/* sleepers wait here for a new job */
};

/* Tell the CPU we are spinning. */
static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* Generation part of a claim word. */
static inline uint32_t
claim_gen(uint64_t v)
{
	return (uint32_t) (v >> 32);
}

/* Claim and run tasks of job generation gen until none are left. */
static void
pool_work(lm_pool *pool, uint32_t gen)
{
	uint64_t	v = atomic_load_explicit(&pool->claim, memory_order_acquire);

	for (;;)
	{
		uint32_t	task;

		if (claim_gen(v) != gen)
			return;
		task = (uint32_t) v;
		if (task >= (uint32_t) atomic_load_explicit(&pool->n_tasks, memory_order_relaxed))
			return;
		if (!atomic_compare_exchange_weak_explicit(&pool->claim, &v, v + 1,
												   memory_order_acq_rel, memory_order_acquire))
			continue;
		pool->fn(pool->arg, (int) task, atomic_load_explicit(&pool->n_tasks, memory_order_relaxed));
		atomic_fetch_add_explicit(&pool->n_finished, 1, memory_order_acq_rel);
		v = atomic_load_explicit(&pool->claim, memory_order_acquire);
	}
}

/* Wait until the generation differs from seen; spin first, then sleep. Returns the new one. */
static uint32_t
pool_wait_job(lm_pool *pool, uint32_t seen)
{
	uint32_t	g;

	for (int i = 0; i < POOL_SPIN_ITERS; i++)
	{
		g = claim_gen(atomic_load_explicit(&pool->claim, memory_order_acquire));
		if (g != seen)
			return g;
		cpu_relax();
	}
	pthread_mutex_lock(&pool->mu);
	atomic_fetch_add(&pool->n_sleeping, 1);
	while ((g = claim_gen(atomic_load(&pool->claim))) == seen)
		pthread_cond_wait(&pool->cv, &pool->mu);
	atomic_fetch_sub(&pool->n_sleeping, 1);
	pthread_mutex_unlock(&pool->mu);
	return g;
}

/* Worker main loop: help with each new job, until stopped. */
static void *
pool_worker_main(void *p)
{
	pool_worker *w = p;
	lm_pool    *pool = w->pool;
	uint32_t	seen = 0;

	for (;;)
	{
		seen = pool_wait_job(pool, seen);
		if (atomic_load_explicit(&pool->stop, memory_order_acquire))
			break;
		pool_work(pool, seen);
	}
	return NULL;
}

/* Create a pool of n_threads (clamped to 1..256). */
lm_pool *
lm_pool_create(int n_threads, char *err, size_t errlen)
{
	lm_pool    *pool;
	sigset_t	all,
				old;

	if (n_threads < 1)
		n_threads = 1;
	if (n_threads > POOL_MAX_THREADS)
		n_threads = POOL_MAX_THREADS;
	pool = calloc(1, sizeof(*pool));
	if (!pool)
	{
		snprintf(err, errlen, "out of memory creating a thread pool");
		return NULL;
	}
	pool->nth = n_threads;
	atomic_init(&pool->claim, 0);
	atomic_init(&pool->n_finished, 0);
	atomic_init(&pool->n_tasks, 0);
	atomic_init(&pool->n_sleeping, 0);
	atomic_init(&pool->stop, 0);
	pthread_mutex_init(&pool->mu, NULL);
	pthread_cond_init(&pool->cv, NULL);
	if (n_threads == 1)
		return pool;

	pool->threads = calloc(n_threads - 1, sizeof(pthread_t));
	pool->workers = calloc(n_threads - 1, sizeof(pool_worker));
	if (!pool->threads || !pool->workers)
	{
		snprintf(err, errlen, "out of memory creating a thread pool of %d threads", n_threads);
		lm_pool_free(pool);
		return NULL;
	}

	/* Workers inherit this mask: they must never take a signal. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (int i = 0; i < n_threads - 1; i++)
	{
		int			rc;

		pool->workers[i].pool = pool;
		pool->workers[i].index = i + 1;
		rc = pthread_create(&pool->threads[i], NULL, pool_worker_main, &pool->workers[i]);
		if (rc != 0)
		{
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			snprintf(err, errlen, "could not create engine thread %d of %d: %s",
					 i + 1, n_threads, strerror(rc));
			lm_pool_free(pool);
			return NULL;
		}
		pool->n_started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return pool;
}

/* Run n_tasks tasks across the pool and wait for all of them. */
void
lm_pool_run_n(lm_pool *pool, lm_pool_fn fn, void *arg, int n_tasks)
{
	uint32_t	gen;
	int			spins = 0;

	if (n_tasks <= 0)
		return;
	if (!pool || pool->nth == 1 || n_tasks == 1)
	{
		for (int i = 0; i < n_tasks; i++)
			fn(arg, i, n_tasks);
		return;
	}
	/*
	 * Close the old job before touching fn/arg/n_tasks: a worker still
	 * holding a stale claim word (old gen, old n_tasks) would otherwise see
	 * the new, larger n_tasks, win its compare-and-swap and run a task of
	 * the new job that the new job never handed out.
	 */
	gen = claim_gen(atomic_load_explicit(&pool->claim, memory_order_relaxed));
	atomic_store(&pool->claim, ((uint64_t) gen << 32) | UINT32_MAX);
	gen++;
	pool->fn = fn;
	pool->arg = arg;
	atomic_store_explicit(&pool->n_tasks, n_tasks, memory_order_relaxed);
	atomic_store_explicit(&pool->n_finished, 0, memory_order_relaxed);
	atomic_store(&pool->claim, (uint64_t) gen << 32);
	if (atomic_load(&pool->n_sleeping) > 0)
	{
		pthread_mutex_lock(&pool->mu);
		pthread_cond_broadcast(&pool->cv);
		pthread_mutex_unlock(&pool->mu);
	}
	pool_work(pool, gen);
	while (atomic_load_explicit(&pool->n_finished, memory_order_acquire) < n_tasks)
	{
		if (++spins < POOL_WAIT_SPINS)
			cpu_relax();
		else
			sched_yield();
	}
}

/* Call fn once per thread index of the pool and wait. */
void
lm_pool_run(lm_pool *pool, lm_pool_fn fn, void *arg)
{
	lm_pool_run_n(pool, fn, arg, pool ? pool->nth : 1);
}

/* Number of threads in the pool. */
int
lm_pool_size(const lm_pool *pool)
{
	return pool ? pool->nth : 1;
}

/* Stop and join the workers, then free the pool. */
void
lm_pool_free(lm_pool *pool)
{
	if (!pool)
		return;
	if (pool->n_started > 0)
	{
		uint32_t	gen = claim_gen(atomic_load(&pool->claim)) + 1;

		atomic_store(&pool->stop, 1);
		atomic_store(&pool->claim, (uint64_t) gen << 32);
		pthread_mutex_lock(&pool->mu);
		pthread_cond_broadcast(&pool->cv);
		pthread_mutex_unlock(&pool->mu);
		for (int i = 0; i < pool->n_started; i++)
			pthread_join(pool->threads[i], NULL);
	}
	pthread_mutex_destroy(&pool->mu);
	pthread_cond_destroy(&pool->cv);
	free(pool->threads);
	free(pool->workers);
	free(pool);
}
