/*
 * bench_sched_run.h — run a scheduler until its requests are finished
 * (header only, for the stand-alone benchmark programs in test/bench/).
 */
#ifndef LM_BENCH_SCHED_RUN_H
#define LM_BENCH_SCHED_RUN_H

#include <stdbool.h>
#include <stdio.h>

#include "scheduler.h"

/*
 * Step s until n requests have finished, handing each result to on_result
 * (may be NULL) before releasing it; false, with the message printed, when
 * a step fails.
 */
static inline bool
bench_sched_drain(lm_sched *s, int n, void (*on_result) (const lm_sched_result *res, void *arg), void *arg)
{
	char		err[256];
	lm_sched_result res;

	while (n > 0)
	{
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
	}
	return true;
}

#endif							/* LM_BENCH_SCHED_RUN_H */
