/*
 * test_mapguard.c — a GGUF file truncated or rewritten while mapped: reads
 * past the new end give zeros instead of SIGBUS (on the caller and on pool
 * threads), the damage is reported by lm_gguf_unchanged, a rewrite in place
 * is reported too, and a SIGBUS outside guarded mappings still kills.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "gguf.h"
#include "mapguard.h"
#include "threads.h"
#include "unit.h"

#define N_FLOATS (1 << 16)		/* tensor of 256 KiB */

/* Write a GGUF v3 file with one F32 tensor "t" of N_FLOATS ones; false on failure. */
static bool
write_model(const char *path)
{
	FILE	   *f = fopen(path, "wb");
	uint32_t	u32;
	uint64_t	u64;
	long		pos;
	float		one = 1.0f;

	if (!f)
		return false;
	fwrite("GGUF", 1, 4, f);
	u32 = 3;
	fwrite(&u32, 4, 1, f);
	u64 = 1;					/* tensors */
	fwrite(&u64, 8, 1, f);
	u64 = 0;					/* key/values */
	fwrite(&u64, 8, 1, f);
	u64 = 1;					/* name "t" */
	fwrite(&u64, 8, 1, f);
	fwrite("t", 1, 1, f);
	u32 = 1;					/* dims */
	fwrite(&u32, 4, 1, f);
	u64 = N_FLOATS;
	fwrite(&u64, 8, 1, f);
	u32 = 0;					/* F32 */
	fwrite(&u32, 4, 1, f);
	u64 = 0;					/* offset */
	fwrite(&u64, 8, 1, f);
	pos = ftell(f);
	while (pos++ % 32 != 0)
		fputc(0, f);
	for (int i = 0; i < N_FLOATS; i++)
		fwrite(&one, 4, 1, f);
	return fclose(f) == 0;
}

/* Sum of the tensor's elements [lo, hi). */
static double
sum_range(const float *x, int lo, int hi)
{
	double		s = 0;

	for (int i = lo; i < hi; i++)
		s += x[i];
	return s;
}

/* Pool job: every task sums its slice of the tensor. */
typedef struct sum_job
{
	const float *x;
	double		part[64];
} sum_job;

/* Sum one slice. */
static void
sum_fn(void *arg, int ith, int nth)
{
	sum_job    *j = arg;

	j->part[ith] = sum_range(j->x, N_FLOATS * ith / nth, N_FLOATS * (ith + 1) / nth);
}

int
main(void)
{
	char		path[] = "/tmp/lmgen-mapguard-XXXXXX";
	char		err[256] = "";
	int			fd = mkstemp(path);
	lm_gguf    *g;
	const lm_gguf_tensor *t;
	const float *x;

	CHECK(fd >= 0 && write_model(path), "a test model file is written (%s)", path);
	close(fd);

	/* 1. truncated while mapped: the caller's reads see zeros, the change is reported */
	g = lm_gguf_open(path, err, sizeof(err));
	CHECK(g != NULL, "the model file opens (%s)", err);
	if (!g)
		return unit_done();
	t = lm_gguf_find_tensor(g, "t");
	x = t->data;
	CHECK(sum_range(x, 0, N_FLOATS) == N_FLOATS && lm_gguf_unchanged(g, err, sizeof(err)),
		  "before the change the tensor sums to %d and the file is unchanged", N_FLOATS);
	CHECK(truncate(path, 4096) == 0, "the file is truncated to 4096 bytes while mapped");
	{
		double		s = sum_range(x, 0, N_FLOATS);

		CHECK(s < N_FLOATS, "reading past the new end does not kill the process (sum %.0f)", s);
	}
	CHECK(lm_gguf_damaged(g) && lm_mapguard_faults() == 1, "the mapping is marked damaged after one fault");
	CHECK(!lm_gguf_unchanged(g, err, sizeof(err)) && strstr(err, "truncated") != NULL,
		  "lm_gguf_unchanged reports it: %s", err);
	lm_gguf_close(g);

	/* 2. the same on engine pool threads (they must not block SIGBUS) */
	CHECK(write_model(path), "the file is written again");
	g = lm_gguf_open(path, err, sizeof(err));
	CHECK(g != NULL && !lm_gguf_damaged(g), "it opens undamaged (%s)", err);
	if (g)
	{
		lm_pool    *pool = lm_pool_create(4, err, sizeof(err));
		sum_job		j;
		double		s = 0;

		memset(&j, 0, sizeof(j));
		j.x = lm_gguf_find_tensor(g, "t")->data;
		CHECK(truncate(path, 0) == 0, "the file is truncated to 0 bytes while mapped");
		lm_pool_run_n(pool, sum_fn, &j, 16);
		for (int i = 0; i < 16; i++)
			s += j.part[i];
		CHECK(s == 0 && lm_gguf_damaged(g),
			  "16 tasks on 4 threads read zeros instead of dying (sum %.0f) and the mapping is damaged", s);
		lm_pool_free(pool);
		lm_gguf_close(g);
	}

	/* 3. rewritten in place (same size, new bytes): no fault, but reported */
	CHECK(write_model(path), "the file is written again");
	g = lm_gguf_open(path, err, sizeof(err));
	if (g)
	{
		struct timespec ts = {0, 20 * 1000 * 1000};
		int			wfd;
		float		two = 2.0f;

		nanosleep(&ts, NULL);	/* let the modification time move on */
		wfd = open(path, O_WRONLY);
		CHECK(wfd >= 0 && pwrite(wfd, &two, 4, (off_t) (g->data_offset)) == 4,
			  "one weight is rewritten in place");
		close(wfd);
		CHECK(!lm_gguf_damaged(g) && !lm_gguf_unchanged(g, err, sizeof(err)) &&
			  strstr(err, "changed on disk") != NULL,
			  "lm_gguf_unchanged reports the rewrite: %s", err);
		lm_gguf_close(g);
	}

	/* 4. a SIGBUS outside guarded mappings still kills the process */
	{
		pid_t		pid = fork();
		int			status = 0;

		if (pid == 0)
		{
			int			cfd = open(path, O_RDONLY);
			const volatile char *p = mmap(NULL, 1 << 16, PROT_READ, MAP_SHARED, cfd, 0);

			if (truncate(path, 0) != 0)
				_exit(2);
			(void) p[8192];		/* not guarded: must die of SIGBUS */
			_exit(0);
		}
		waitpid(pid, &status, 0);
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
			  "a fault in an unguarded mapping still ends the process with SIGBUS (the guard chains to the default)");
	}
	unlink(path);
	return unit_done();
}
