/*
 * bench_clock.h — the clocks the engine benchmarks read (header only, for
 * the stand-alone programs in test/bench/).
 */
#ifndef LM_BENCH_CLOCK_H
#define LM_BENCH_CLOCK_H

#include <time.h>

/* Seconds on clock id c. */
static inline double
bench_clock_s(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Wall-clock seconds (monotonic). */
static inline double
bench_wall_s(void)
{
	return bench_clock_s(CLOCK_MONOTONIC);
}

/* CPU seconds of this process, all threads: less sensitive than wall time to a busy machine. */
static inline double
bench_cpu_s(void)
{
	return bench_clock_s(CLOCK_PROCESS_CPUTIME_ID);
}

#endif							/* LM_BENCH_CLOCK_H */
