/*
 * test_gguf_corrupt.c — the GGUF reader against damaged copies of the real
 * stories260K models: truncated at every header byte (and a stride through
 * the data), and with bytes of the header and of the data changed in several
 * patterns.  Every variant must either be rejected with a message or open as
 * a self-consistent file (gguf_check.h walks it through the API).
 *
 * Each image is placed so that it ends exactly at a PROT_NONE guard page:
 * a read one byte past the end is a SIGSEGV, not a silent over-read.  Each
 * batch of variants runs in a fork()ed child, so a crash is reported as a
 * failed check naming the variant (the child records the variant it is on in
 * shared memory before each open) instead of killing the test runner.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_check.h"
#include "unit.h"

/* What the child is doing, readable by the parent after a crash. */
typedef struct progress
{
	char		kind[32];		/* "truncate", "flip 0x80", ... */
	uint64_t	pos;			/* length or byte position */
	uint64_t	done;			/* variants finished */
	uint64_t	opened;			/* of those, how many opened */
	uint64_t	bad;			/* failures (details on stdout) */
} progress;

/* A model image and the facts a variant is judged against. */
typedef struct model
{
	const char *name;			/* file name */
	uint8_t    *orig;			/* the file's bytes */
	uint64_t	size;			/* file size */
	uint64_t	data_offset;	/* from a clean open */
	uint64_t	data_end;		/* end of the last tensor's data */
	uint8_t    *region;			/* guarded area (size rounded to pages) */
	uint64_t	region_size;	/* usable bytes before the guard page */
} model;

static progress *prog;			/* MAP_SHARED page */

/* Read a whole file; NULL when unreadable. */
static uint8_t *
read_file(const char *path, uint64_t *size)
{
	FILE	   *f = fopen(path, "rb");
	uint8_t    *p = NULL;
	long		n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
		(p = malloc((size_t) n)) != NULL && fread(p, 1, (size_t) n, f) == (size_t) n)
		*size = (uint64_t) n;
	else
	{
		free(p);
		p = NULL;
	}
	fclose(f);
	return p;
}

/* Map region_size bytes followed by one inaccessible page. */
static bool
make_region(model *m)
{
	long		pg = sysconf(_SC_PAGESIZE);
	uint8_t    *r;

	m->region_size = (m->size + (uint64_t) pg - 1) / (uint64_t) pg * (uint64_t) pg;
	r = mmap(NULL, m->region_size + (uint64_t) pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED)
		return false;
	if (mprotect(r + m->region_size, (size_t) pg, PROT_NONE) != 0)
		return false;
	m->region = r;
	return true;
}

/* Where an image of len bytes starts so that it ends at the guard page. */
static uint8_t *
tail(const model *m, uint64_t len)
{
	return m->region + m->region_size - len;
}

/*
 * Open one variant (image at p, len bytes).  must_fail / must_open say what
 * is known for sure; otherwise either outcome is fine if it is clean.
 */
static void
judge(const model *m, const uint8_t *p, uint64_t len, bool must_fail, bool must_open)
{
	char		err[512];
	lm_gguf    *g;
	const char *why = NULL;

	err[0] = '\0';
	g = lm_gguf_open_buffer(p, len, err, sizeof(err));
	if (g == NULL)
	{
		if (err[0] == '\0')
			why = "rejected without a message";
		else if (must_open)
			why = "rejected but should open";
	}
	else
	{
		prog->opened++;
		why = gguf_check_consistent(g, p, len);
		if (why == NULL && must_fail)
			why = "opened but should be rejected";
		lm_gguf_close(g);
	}
	if (why)
	{
		if (prog->bad < 5)
			printf("# %s: %s at %llu (size %llu): %s%s%s\n", m->name, prog->kind,
				   (unsigned long long) prog->pos, (unsigned long long) len, why,
				   err[0] ? ": " : "", err);
		prog->bad++;
	}
	prog->done++;
}

/* Truncations: every length up to data_offset + 64, then a stride. */
static void
batch_truncate(const model *m, bool header)
{
	uint64_t	lo = header ? 0 : m->data_offset + 65;
	uint64_t	hi = header ? m->data_offset + 65 : m->size;
	uint64_t	stride = header ? 1 : (hi - lo) / 300 + 1;

	snprintf(prog->kind, sizeof(prog->kind), "truncate to");
	for (uint64_t len = lo; len < hi; len += stride)
	{
		uint8_t    *p = tail(m, len);

		prog->pos = len;
		memcpy(p, m->orig, len);
		judge(m, p, len, len < m->data_end, false);
		if (!header && len + stride >= hi && len != m->size - 1)
			len = m->size - 1 - stride;		/* finish with size - 1 */
	}
}

/* Change every header byte (or a sample of data bytes) with one pattern. */
static void
batch_flip(const model *m, int pattern, bool header)
{
	uint8_t    *p = tail(m, m->size);
	uint64_t	lo = header ? 0 : m->data_offset;
	uint64_t	hi = header ? m->data_offset : m->size;
	uint64_t	stride = header ? 1 : (hi - lo) / 200 + 1;
	static const char *const names[] = {"xor 0x01", "xor 0x80", "xor 0xff", "set 0x00", "set 0xff", "xor 0x10"};

	snprintf(prog->kind, sizeof(prog->kind), "%s", names[pattern]);
	memcpy(p, m->orig, m->size);
	for (uint64_t i = lo; i < hi; i += stride)
	{
		uint8_t		old = p[i];

		switch (pattern)
		{
			case 0:
				p[i] ^= 0x01;
				break;
			case 1:
				p[i] ^= 0x80;
				break;
			case 2:
				p[i] ^= 0xff;
				break;
			case 3:
				p[i] = 0x00;
				break;
			case 4:
				p[i] = 0xff;
				break;
			default:
				p[i] ^= 0x10;
				break;
		}
		prog->pos = i;
		/* the reader never reads tensor data: data changes must still open */
		judge(m, p, m->size, false, !header);
		p[i] = old;
	}
}

/* A random word of each field width written at random header positions. */
static void
batch_random_words(const model *m, unsigned seed)
{
	uint8_t    *p = tail(m, m->size);

	snprintf(prog->kind, sizeof(prog->kind), "random word");
	memcpy(p, m->orig, m->size);
	srand(seed);
	for (int k = 0; k < 4000; k++)
	{
		uint64_t	i = (uint64_t) rand() % m->data_offset;
		uint8_t		save[8];
		int			w = 1 << (rand() % 4);
		uint64_t	v = ((uint64_t) rand() << 40) ^ ((uint64_t) rand() << 20) ^ (uint64_t) rand();

		if (i + (uint64_t) w > m->size)
			continue;
		if (rand() % 3 == 0)
			v = (uint64_t) rand() % 64;		/* small values hit counts and lengths */
		memcpy(save, p + i, (size_t) w);
		memcpy(p + i, &v, (size_t) w);
		prog->pos = i;
		judge(m, p, m->size, false, false);
		memcpy(p + i, save, (size_t) w);
	}
}

/* Run fn in a child; CHECK that it exited cleanly with no bad variant. */
static void
in_child(const model *m, const char *what, void (*fn) (const model *, int), int arg)
{
	pid_t		pid;
	int			st = 0;

	memset(prog, 0, sizeof(*prog));
	fflush(stdout);
	pid = fork();
	if (pid == 0)
	{
		fn(m, arg);
		fflush(stdout);
		_exit(prog->bad ? 1 : 0);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
	{
		CHECK(0, "%s: %s: could not run a child", m->name, what);
		return;
	}
	if (WIFSIGNALED(st))
		CHECK(0, "%s: %s: reader CRASHED with signal %d on variant \"%s\" at %llu", m->name, what,
			  WTERMSIG(st), prog->kind, (unsigned long long) prog->pos);
	else
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && prog->bad == 0 && prog->done > 0,
			  "%s: %s: %llu variants, %llu opened consistently, the rest rejected with a message (%llu bad)",
			  m->name, what, (unsigned long long) prog->done, (unsigned long long) prog->opened,
			  (unsigned long long) prog->bad);
}

/* Adapters from the batch functions to in_child's signature. */
static void run_trunc(const model *m, int header) { batch_truncate(m, header != 0); }
static void run_flip_header(const model *m, int pat) { batch_flip(m, pat, true); }
static void run_flip_data(const model *m, int pat) { batch_flip(m, pat, false); }
static void run_words(const model *m, int seed) { batch_random_words(m, (unsigned) seed); }

/* Open a few variants through lm_gguf_open (the mmap path) and compare. */
static void
via_files(const model *m)
{
	char		path[] = "/tmp/test_gguf_corrupt.XXXXXX";
	int			fd = mkstemp(path);
	int			agree = 0,
				total = 0;
	static const int64_t deltas[] = {-1, 0, 1, 7, 24, 100, 1000, 5000};

	if (fd < 0)
	{
		CHECK(0, "mkstemp");
		return;
	}
	close(fd);
	for (size_t k = 0; k < sizeof(deltas) / sizeof(deltas[0]) * 2; k++)
	{
		uint8_t    *img = malloc(m->size);
		uint64_t	len = m->size;
		FILE	   *f;
		char		e1[256] = "",
					e2[256] = "";
		lm_gguf    *g1,
				   *g2;

		memcpy(img, m->orig, m->size);
		if (k % 2 == 0)
			len = (uint64_t) ((int64_t) m->data_offset + deltas[k / 2]);	/* truncate */
		else
			img[(uint64_t) (deltas[k / 2] + 1000) % m->data_offset] ^= 0xff;	/* flip */
		f = fopen(path, "wb");
		if (f == NULL || fwrite(img, 1, len, f) != len || fclose(f) != 0)
		{
			free(img);
			continue;
		}
		g1 = lm_gguf_open(path, e1, sizeof(e1));
		g2 = lm_gguf_open_buffer(img, len, e2, sizeof(e2));
		total++;
		if ((g1 == NULL) == (g2 == NULL) &&
			(g1 == NULL || (g1->n_tensors == g2->n_tensors && g1->data_offset == g2->data_offset &&
							gguf_check_consistent(g1, g1->map, g1->file_size) == NULL)) &&
			(g1 != NULL || (e1[0] != '\0' && (len < 24 || strcmp(e1, e2) == 0))))
			agree++;
		else
			printf("# %s: file variant %zu: open \"%s\" vs buffer \"%s\"\n", m->name, k, e1, e2);
		lm_gguf_close(g1);
		lm_gguf_close(g2);
		free(img);
	}
	unlink(path);
	CHECK(total > 0 && agree == total, "%s: lm_gguf_open on %d damaged files agrees with open_buffer (%d)",
		  m->name, total, agree);
}

/* Damage each model found in ../shared in every way above. */
int
main(void)
{
	static const char *const files[] = {
		"stories260K.gguf", "stories260K-Q8_0.gguf", "stories260K-Q4_0.gguf",
		"stories260K-Q4_K_M.gguf", "stories260K-Q6_K.gguf"
	};
	const char *shared = unit_shared_dir();
	int			found = 0;
	struct timespec t0,
				t1;

	prog = mmap(NULL, sizeof(progress), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (prog == MAP_FAILED)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t fi = 0; fi < sizeof(files) / sizeof(files[0]); fi++)
	{
		char		path[512];
		char		err[256] = "";
		model		m = {files[fi], NULL, 0, 0, 0, NULL, 0};
		lm_gguf    *g;
		/* the Q6_K file is the Q8_0 file with another file_type: fewer patterns */
		int			npat = fi == 0 || fi == 1 ? 6 : 2;

		snprintf(path, sizeof(path), "%s/models/%s", shared, files[fi]);
		m.orig = read_file(path, &m.size);
		if (m.orig == NULL)
			continue;
		found++;
		g = lm_gguf_open_buffer(m.orig, m.size, err, sizeof(err));
		CHECK(g != NULL, "%s: the undamaged file opens (%s)", m.name, err);
		if (g == NULL || !make_region(&m))
		{
			lm_gguf_close(g);
			free(m.orig);
			continue;
		}
		m.data_offset = g->data_offset;
		for (uint64_t i = 0; i < g->n_tensors; i++)
			if (g->data_offset + g->tensors[i].offset + g->tensors[i].n_bytes > m.data_end)
				m.data_end = g->data_offset + g->tensors[i].offset + g->tensors[i].n_bytes;
		lm_gguf_close(g);

		in_child(&m, "truncated at every header byte", run_trunc, 1);
		in_child(&m, "truncated at a stride through the data", run_trunc, 0);
		for (int pat = 0; pat < npat; pat++)
		{
			char		what[64];

			snprintf(what, sizeof(what), "every header byte changed (pattern %d)", pat);
			in_child(&m, what, run_flip_header, pat);
		}
		in_child(&m, "data bytes changed (must still open)", run_flip_data, 2);
		in_child(&m, "random words written into the header", run_words, (int) fi + 1);
		via_files(&m);
		munmap(m.region, m.region_size + (uint64_t) sysconf(_SC_PAGESIZE));
		free(m.orig);
	}
	if (found == 0)
		SKIP_ALL("no stories260K models in $LMGEN_SHARED/models");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("# corruption run took %.1f s\n", (double) (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	return unit_done();
}
