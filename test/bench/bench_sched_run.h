/*
 * bench_sched_run.h — run a scheduler until its requests are finished
 * (header only, for the stand-alone benchmark programs in test/bench/).
 */
#ifndef LM_BENCH_SCHED_RUN_H
#define LM_BENCH_SCHED_RUN_H

#include <stdbool.h>
#include <stdio.h>

#include "bench_clock.h"
#include "scheduler.h"

/* Time spent in steps that evaluated no prompt token (pure decode steps). */
typedef struct bench_decode_time
{
	double		wall_s;			/* wall seconds of those steps */
	double		cpu_s;			/* process CPU seconds of those steps */
	int64_t		tokens;			/* tokens they generated */
	int64_t		steps;			/* how many */
} bench_decode_time;

/*
 * Step s until n requests have finished, handing each result to on_result
 * (may be NULL) before releasing it; false, with the message printed, when
 * a step fails.  When dt is not NULL, the steps that evaluated no prompt
 * token are timed into it (taking and releasing results included).
 */
static inline bool
bench_sched_drain_timed(lm_sched *s, int n, void (*on_result) (const lm_sched_result *res, void *arg),
						void *arg, bench_decode_time *dt)
{
	char		err[256];
	lm_sched_result res;
	lm_sched_stats st;

	while (n > 0)
	{
		double		w0 = dt ? bench_wall_s() : 0,
					c0 = dt ? bench_cpu_s() : 0;
		int64_t		p0 = 0,
					g0 = 0;

		if (dt)
		{
			lm_sched_get_stats(s, &st);
			p0 = st.prompt_tokens;
			g0 = st.generated_tokens;
		}
		if (lm_sched_step(s, err, sizeof(err)) < 0)
		{
			fprintf(stderr, "step: %s\n", err);
			return false;
		}
		while (lm_sched_take_finished(s, &res))
		{
			if (on_result)
				on_result(&res, arg);
			lm_sched_release(s, res.id);
			n--;
		}
		if (dt)
		{
			lm_sched_get_stats(s, &st);
			if (st.prompt_tokens == p0 && st.generated_tokens > g0)
			{
				dt->wall_s += bench_wall_s() - w0;
				dt->cpu_s += bench_cpu_s() - c0;
				dt->tokens += st.generated_tokens - g0;
				dt->steps++;
			}
		}
	}
	return true;
}

/* bench_sched_drain_timed without timing. */
static inline bool
bench_sched_drain(lm_sched *s, int n, void (*on_result) (const lm_sched_result *res, void *arg), void *arg)
{
	return bench_sched_drain_timed(s, n, on_result, arg, NULL);
}

#endif							/* LM_BENCH_SCHED_RUN_H */
