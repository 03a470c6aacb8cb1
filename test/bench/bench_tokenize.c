/*
 * bench_tokenize.c — time and memory to tokenize a large text, and how soon
 * an abort request stops it.
 *
 *   bench_tokenize MODEL.gguf FILE [MB]
 *
 * Tokenizes the first MB megabytes (default 4) of FILE (repeated when it is
 * shorter) with MODEL's tokenizer and prints: the token count, the wall time,
 * the peak memory the call added to the process (growth of the peak resident
 * set, the text and the result array already in memory before), and the
 * time from an abort request (made 100 ms in) to the return.
 *
 * Not built by make.  Build and run from the repository root, after make:
 *
 *   gcc -std=gnu11 -O2 -Isrc/engine -o /tmp/bench_tokenize test/bench/bench_tokenize.c \
 *       src/engine/[a-z]*.o -lpthread -lm
 *   /tmp/bench_tokenize $(pg_config --sharedir)/lmgen/models/default.gguf FILE 4
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_clock.h"
#include "gguf.h"
#include "tokenizer.h"

/* Peak resident set of the process so far, in kB. */
static long
peak_rss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* Peak virtual size of the process so far (VmPeak), in kB; what it allocated, touched or not. */
static long
peak_vm_kb(void)
{
	FILE	   *f = fopen("/proc/self/status", "r");
	char		line[256];
	long		kb = 0;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPeak: %ld", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

/* State shared with the abort callback. */
typedef struct probe
{
	double		abort_at;		/* time after which to ask for an abort (0 = never) */
	double		asked;			/* when the abort was first asked for */
	long		calls;			/* callback calls */
} probe;

/* Abort callback: counts calls, asks to stop once abort_at has passed. */
static bool
probe_abort(void *arg)
{
	probe	   *p = arg;

	p->calls++;
	if (p->abort_at > 0 && bench_wall_s() >= p->abort_at)
	{
		if (p->asked == 0)
			p->asked = bench_wall_s();
		return true;
	}
	return false;
}

int
main(int argc, char **argv)
{
	char		err[256];
	lm_gguf    *g;
	lm_tokenizer *t;
	FILE	   *f;
	size_t		want;
	size_t		have = 0;
	char	   *text;
	int32_t    *ids;
	int			cap;
	int			n;
	probe		p = {0};
	long		rss0;
	long		vm0;
	double		t0;
	double		t1;

	if (argc < 3)
	{
		fprintf(stderr, "usage: bench_tokenize MODEL.gguf FILE [MB]\n");
		return 2;
	}
	want = (size_t) ((argc > 3 ? atof(argv[3]) : 4.0) * 1024 * 1024);
	g = lm_gguf_open(argv[1], err, sizeof(err));
	t = g ? lm_tokenizer_load(g, err, sizeof(err)) : NULL;
	if (t == NULL)
	{
		fprintf(stderr, "bench_tokenize: %s\n", err);
		return 1;
	}
	text = malloc(want);
	f = fopen(argv[2], "rb");
	if (text == NULL || f == NULL)
	{
		fprintf(stderr, "bench_tokenize: cannot read %s\n", argv[2]);
		return 1;
	}
	while (have < want)
	{
		size_t		got = fread(text + have, 1, want - have, f);

		if (got == 0)
			rewind(f);
		have += got;
	}
	fclose(f);
	cap = (int) (want / 2) + 16;
	ids = malloc(sizeof(int32_t) * cap);
	memset(ids, 0, sizeof(int32_t) * cap);

	/* the whole text */
	rss0 = peak_rss_kb();
	vm0 = peak_vm_kb();
	t0 = bench_wall_s();
	n = lm_tokenize_abortable(t, text, want, true, false, ids, cap, probe_abort, &p, err, sizeof(err));
	t1 = bench_wall_s();
	if (n < 0)
	{
		fprintf(stderr, "bench_tokenize: %s\n", err);
		return 1;
	}
	printf("%s: %.1f MB, %d tokens in %.3f s (%.2f MB/s); peak added: resident %.1f MB, allocated %.1f MB (%.1f bytes per input byte); %ld abort checks\n",
		   lm_tokenizer_kind_name(t), want / 1048576.0, n, t1 - t0, want / 1048576.0 / (t1 - t0),
		   (peak_rss_kb() - rss0) / 1024.0, (peak_vm_kb() - vm0) / 1024.0,
		   (peak_vm_kb() - vm0) * 1024.0 / want, p.calls);

	/* an abort 100 ms in */
	memset(&p, 0, sizeof(p));
	t0 = bench_wall_s();
	p.abort_at = t0 + 0.1;
	n = lm_tokenize_abortable(t, text, want, true, false, ids, cap, probe_abort, &p, err, sizeof(err));
	t1 = bench_wall_s();
	if (t1 > p.abort_at)
		printf("abort due after 100 ms: returned %d, %.2f ms after it was due (%ld abort checks)\n",
			   n, (t1 - p.abort_at) * 1000, p.calls);
	else
		printf("finished (%d) before the abort was due at 100 ms\n", n);
	free(ids);
	free(text);
	lm_tokenizer_free(t);
	lm_gguf_close(g);
	return 0;
}
