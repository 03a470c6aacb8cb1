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
 * Workers are created with every asynchronous signal blocked (SIGBUS,
 * SIGSEGV, SIGFPE and SIGILL stay open: a synchronous signal that is
 * blocked kills the process outright, and SIGBUS on a mapped model file
 * that shrank must reach the guard in mapguard.c) and touch nothing but
 * the job function and this struct.
 *
 * Stopping.  lm_pool_stop() joins the workers and keeps the pool; the next
 * job starts them again (about 30 us per thread, see README), with each
 * worker's first awaited generation being the current one.  So a caller can
 * make sure that no engine thread exists between its calls — a Postgres
 * backend must not be multi-threaded when it forks (COPY ... TO PROGRAM,
 * plperlu's system()).  If a restart cannot create a thread, the job runs
 * with fewer threads: tasks are claimed, so the caller runs any that no
 * worker takes, and the results do not depend on who ran which task.
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
#include <time.h>

#define POOL_MAX_THREADS 256
#define POOL_SPIN_ITERS 50000	/* worker checks before sleeping (~1 ms) */
#define POOL_WAIT_SPINS 2048	/* caller spins before yielding the CPU */

/* One worker's identity. */
typedef struct pool_worker
{
	struct lm_pool *pool;		/* owning pool */
	int			index;			/* 1..nth-1 */
	uint32_t	start_gen;		/* generation current when it was started */
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
	atomic_int	stop;			/* set while lm_pool_stop/free joins the workers */
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
	uint32_t	seen = w->start_gen;

	for (;;)
	{
		seen = pool_wait_job(pool, seen);
		if (atomic_load_explicit(&pool->stop, memory_order_acquire))
			break;
		pool_work(pool, seen);
	}
	return NULL;
}

/*
 * Start the missing workers (all asynchronous signals blocked); 0, or the
 * pthread_create error of the first one that failed (those before it run).
 */
static int
pool_start_workers(lm_pool *pool)
{
	sigset_t	mask,
				old;
	uint32_t	gen = claim_gen(atomic_load(&pool->claim));
	int			rc = 0;

	/* Workers inherit this mask: no signal handler of the host runs on them. */
	sigfillset(&mask);
	sigdelset(&mask, SIGBUS);
	sigdelset(&mask, SIGSEGV);
	sigdelset(&mask, SIGFPE);
	sigdelset(&mask, SIGILL);
	pthread_sigmask(SIG_BLOCK, &mask, &old);
	while (pool->n_started < pool->nth - 1)
	{
		pool_worker *w = &pool->workers[pool->n_started];

		w->pool = pool;
		w->index = pool->n_started + 1;
		w->start_gen = gen;
		rc = pthread_create(&pool->threads[pool->n_started], NULL, pool_worker_main, w);
		if (rc != 0)
			break;
		pool->n_started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/* Create a pool of n_threads (clamped to 1..256). */
lm_pool *
lm_pool_create(int n_threads, char *err, size_t errlen)
{
	lm_pool    *pool;
	int			rc;

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
	rc = pool_start_workers(pool);
	if (rc != 0)
	{
		snprintf(err, errlen, "could not create engine thread %d of %d: %s",
				 pool->n_started + 1, n_threads, strerror(rc));
		lm_pool_free(pool);
		return NULL;
	}
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
	/* restart workers joined by lm_pool_stop (a failure leaves fewer helpers) */
	if (pool->n_started < pool->nth - 1)
		(void) pool_start_workers(pool);
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

/* Join the workers; the pool stays usable and restarts them on the next job. */
void
lm_pool_stop(lm_pool *pool)
{
	uint32_t	gen;

	if (!pool || pool->n_started == 0)
		return;
	gen = claim_gen(atomic_load(&pool->claim)) + 1;
	atomic_store(&pool->stop, 1);
	/* a new generation with no task open: wakes every worker to see stop */
	atomic_store(&pool->claim, ((uint64_t) gen << 32) | UINT32_MAX);
	pthread_mutex_lock(&pool->mu);
	pthread_cond_broadcast(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
	for (int i = 0; i < pool->n_started; i++)
		pthread_join(pool->threads[i], NULL);
	pool->n_started = 0;
	atomic_store(&pool->stop, 0);
}

/* Number of worker threads running now (0 after lm_pool_stop). */
int
lm_pool_running(const lm_pool *pool)
{
	return pool ? pool->n_started : 0;
}

/* Stop and join the workers, then free the pool. */
void
lm_pool_free(lm_pool *pool)
{
	if (!pool)
		return;
	lm_pool_stop(pool);
	pthread_mutex_destroy(&pool->mu);
	pthread_cond_destroy(&pool->cv);
	free(pool->threads);
	free(pool->workers);
	free(pool);
}

/* Monotonic seconds. */
double
lm_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}
