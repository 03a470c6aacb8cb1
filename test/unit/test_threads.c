/*
 * test_threads.c — the engine thread pool: every thread runs each job exactly
 * once, jobs are ordered, workers block signals, sleeping workers wake up,
 * a stopped pool has no threads and restarts, and a one-thread pool runs
 * inline.
 */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "threads.h"
#include "unit.h"

/* Shared state of the counting job. */
typedef struct count_job
{
	atomic_int	calls[64];		/* calls per thread index */
	atomic_int	bad_nth;		/* calls that saw the wrong nth */
	atomic_int	signals_open;	/* worker calls with SIGINT/SIGTERM not blocked */
	int			expect_nth;		/* pool size */
	pthread_t	caller;			/* the thread that called lm_pool_run */
	atomic_int	ith0_elsewhere; /* calls that ran on a worker thread */
	atomic_int	sync_blocked;	/* worker calls with SIGBUS/SIGSEGV/SIGFPE/SIGILL blocked */
} count_job;

/* Threads of this process, from /proc/self/task. */
static int
ThreadCount(void)
{
	DIR		   *d = opendir("/proc/self/task");
	struct dirent *e;
	int			n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/*
 * Thread count once it reaches want, polling up to a second: a joined
 * thread can stay listed in /proc for a moment while the kernel reaps it.
 */
static int
ThreadCountSettled(int want)
{
	int			n = ThreadCount();

	for (int i = 0; i < 1000 && n != want; i++)
	{
		struct timespec ts = {0, 1000 * 1000};

		nanosleep(&ts, NULL);
		n = ThreadCount();
	}
	return n;
}

/* Count one call and check the signal mask of workers. */
static void
count_fn(void *arg, int ith, int nth)
{
	count_job  *j = arg;
	sigset_t	cur;

	atomic_fetch_add(&j->calls[ith], 1);
	if (nth != j->expect_nth)
		atomic_fetch_add(&j->bad_nth, 1);
	if (!pthread_equal(pthread_self(), j->caller))
	{
		atomic_fetch_add(&j->ith0_elsewhere, 1);
		pthread_sigmask(SIG_BLOCK, NULL, &cur);
		if (!sigismember(&cur, SIGINT) || !sigismember(&cur, SIGTERM) || !sigismember(&cur, SIGUSR1))
			atomic_fetch_add(&j->signals_open, 1);
		if (sigismember(&cur, SIGBUS) || sigismember(&cur, SIGSEGV) || sigismember(&cur, SIGFPE) ||
			sigismember(&cur, SIGILL))
			atomic_fetch_add(&j->sync_blocked, 1);
	}
}

/* A job that writes a slice of an array, to check the caller sees the writes. */
typedef struct fill_job
{
	int		   *a;				/* array to fill */
	int			n;				/* its length */
	int			value;			/* value to write */
} fill_job;

/* Fill this thread's slice. */
static void
fill_fn(void *arg, int ith, int nth)
{
	fill_job   *j = arg;
	int			lo = j->n * ith / nth,
				hi = j->n * (ith + 1) / nth;

	for (int i = lo; i < hi; i++)
		j->a[i] = j->value;
}

/* A task that takes about 20 us, so that workers get a share, then counts like count_fn. */
static void
slow_fn(void *arg, int ith, int nth)
{
	struct timespec t0,
				t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do
		clock_gettime(CLOCK_MONOTONIC, &t1);
	while ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 20000);
	count_fn(arg, ith % 64, 64);
}

/* Empty job for the overhead measurement. */
static void
nop_fn(void *arg, int ith, int nth)
{
}

/* Seconds on the monotonic clock. */
static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Run many count jobs on a pool of nth threads and check the counts. */
static void
check_pool(int nth, int rounds, int sleep_between)
{
	char		err[256] = "";
	lm_pool    *pool = lm_pool_create(nth, err, sizeof(err));
	count_job  *j = calloc(1, sizeof(*j));
	int			ok = 1;

	CHECK(pool != NULL && lm_pool_size(pool) == nth, "pool of %d threads is created (%s)", nth, err);
	if (!pool)
	{
		free(j);
		return;
	}
	j->expect_nth = nth;
	j->caller = pthread_self();
	for (int r = 0; r < rounds; r++)
	{
		if (sleep_between)
		{
			struct timespec ts = {0, 30 * 1000 * 1000};

			nanosleep(&ts, NULL);
		}
		lm_pool_run(pool, count_fn, j);
	}
	for (int i = 0; i < nth; i++)
		if (atomic_load(&j->calls[i]) != rounds)
			ok = 0;
	CHECK(ok, "nth=%d: each ith 0..nth-1 was called exactly once in each of %d jobs%s",
		  nth, rounds, sleep_between ? " (workers asleep between jobs)" : "");
	CHECK(atomic_load(&j->bad_nth) == 0, "nth=%d: every call saw nth=%d", nth, nth);
	if (nth > 1 && !sleep_between)
		printf("# nth=%d: %d of %d calls ran on workers\n", nth, atomic_load(&j->ith0_elsewhere), rounds * nth);
	CHECK(atomic_load(&j->signals_open) == 0, "nth=%d: worker threads block SIGINT, SIGTERM, SIGUSR1", nth);
	lm_pool_free(pool);
	free(j);
}

int
main(void)
{
	char		err[256];

	check_pool(1, 1000, 0);
	check_pool(2, 100000, 0);
	check_pool(4, 20000, 0);
	check_pool(3, 5, 1);

	/* Writes done by workers are visible to the caller when run returns. */
	{
		lm_pool    *pool = lm_pool_create(3, err, sizeof(err));
		int			a[1000];
		int			ok = 1;

		for (int v = 1; v <= 2000 && ok; v++)
		{
			fill_job	fj = {a, 1000, v};

			lm_pool_run(pool, fill_fn, &fj);
			for (int i = 0; i < 1000; i++)
				if (a[i] != v)
					ok = 0;
		}
		CHECK(ok, "every element written by a worker is visible when lm_pool_run returns (2000 jobs)");
		lm_pool_free(pool);
	}

	/* lm_pool_stop joins every worker; the next job restarts them and still runs each task once. */
	{
		lm_pool    *pool = lm_pool_create(3, err, sizeof(err));
		count_job  *j = calloc(1, sizeof(*j));
		int			a[1000];
		int			ok = 1;
		int			base = ThreadCount();

		j->expect_nth = 3;
		j->caller = pthread_self();
		CHECK(lm_pool_running(pool) == 2 && base >= 3, "a pool of 3 runs 2 workers (process has %d threads)", base);
		for (int r = 0; r < 200 && ok; r++)
		{
			fill_job	fj = {a, 1000, r + 1};

			lm_pool_stop(pool);
			if (lm_pool_running(pool) != 0 || ThreadCountSettled(base - 2) != base - 2)
				ok = 0;
			lm_pool_run(pool, fill_fn, &fj);
			lm_pool_run(pool, count_fn, j);
			for (int i = 0; i < 1000; i++)
				if (a[i] != r + 1)
					ok = 0;
		}
		CHECK(ok, "200 times: after lm_pool_stop no worker thread exists, and the next job restarts them and fills every element");
		ok = 1;
		for (int i = 0; i < 3; i++)
			if (atomic_load(&j->calls[i]) != 200)
				ok = 0;
		CHECK(ok && atomic_load(&j->signals_open) == 0,
			  "restarted workers run each ith once per job and still block SIGINT, SIGTERM, SIGUSR1");
		CHECK(atomic_load(&j->sync_blocked) == 0,
			  "workers leave SIGBUS, SIGSEGV, SIGFPE and SIGILL unblocked (a blocked synchronous signal kills the process)");
		lm_pool_stop(pool);
		lm_pool_stop(pool);
		CHECK(ThreadCountSettled(base - 2) == base - 2, "stopping twice is harmless");
		{
			/* the price of joining after every call (a figure, not a check) */
			struct timespec t0, t1;
			fill_job	fj = {a, 1000, 7};

			clock_gettime(CLOCK_MONOTONIC, &t0);
			for (int r = 0; r < 2000; r++)
			{
				lm_pool_run(pool, fill_fn, &fj);
				lm_pool_stop(pool);
			}
			clock_gettime(CLOCK_MONOTONIC, &t1);
			printf("# 3-thread pool: start, one job and join take %.1f us\n",
				   ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 2000 / 1e3);
		}
		lm_pool_free(pool);
		free(j);
	}

	/* A NULL pool and a zero-thread request both run inline. */
	{
		count_job  *j = calloc(1, sizeof(*j));
		lm_pool    *pool = lm_pool_create(0, err, sizeof(err));

		j->expect_nth = 1;
		j->caller = pthread_self();
		lm_pool_run(NULL, count_fn, j);
		lm_pool_run(pool, count_fn, j);
		CHECK(lm_pool_size(pool) == 1 && atomic_load(&j->calls[0]) == 2 && j->ith0_elsewhere == 0,
			  "a NULL pool and a pool asked for 0 threads run the job inline, on the caller");
		lm_pool_free(pool);
		lm_pool_free(NULL);
		free(j);
	}

	/* Many tasks per job, more threads than cores: every task runs once. */
	{
		lm_pool    *pool = lm_pool_create(6, err, sizeof(err));
		int			a[1000],
					ok = 1;

		for (int v = 1; v <= 3000 && ok; v++)
		{
			fill_job	fj = {a, 1000, v};

			lm_pool_run_n(pool, fill_fn, &fj, 1 + v % 37);
			for (int i = 0; i < 1000; i++)
				if (a[i] != v)
					ok = 0;
		}
		CHECK(ok, "lm_pool_run_n covers every task of 3000 jobs of 1..37 tasks on 6 threads (more than the cores)");
		lm_pool_free(pool);
	}

	/* Slow tasks: workers take some; every task runs once; workers block signals. */
	{
		lm_pool    *pool = lm_pool_create(2, err, sizeof(err));
		count_job  *j = calloc(1, sizeof(*j));
		int			ok = 1;

		j->expect_nth = 64;
		j->caller = pthread_self();
		for (int r = 0; r < 100; r++)
			lm_pool_run_n(pool, slow_fn, j, 64);
		for (int i = 0; i < 64; i++)
			if (atomic_load(&j->calls[i]) != 100)
				ok = 0;
		CHECK(ok && j->bad_nth == 0, "100 jobs of 64 slow tasks: each task ran exactly once");
		CHECK(j->signals_open == 0, "the %d task calls that ran on the worker had SIGINT, SIGTERM, SIGUSR1 blocked",
			  atomic_load(&j->ith0_elsewhere));
		lm_pool_free(pool);
		free(j);
	}

	/* Dispatch overhead, for information. */
	{
		lm_pool    *pool = lm_pool_create(2, err, sizeof(err));
		int			n = 200000;
		double		t0 = now_s();

		for (int i = 0; i < n; i++)
			lm_pool_run(pool, nop_fn, NULL);
		printf("# 2-thread dispatch overhead: %.2f us per job\n", (now_s() - t0) / n * 1e6);
		lm_pool_free(pool);
	}
	return unit_done();
}
