/*
 * unit.h — a tiny TAP-producing test harness for the engine's C unit tests.
 *
 * Each test program calls CHECK(cond, "what it proves", ...) for every
 * assertion it makes, then returns unit_done().  Output is TAP ("ok N - ..."
 * / "not ok N - ..."), so test/unit/run_unit.sh and prove can both read it.
 * SKIP() records a skipped group (counted as a skip, not a pass) and
 * SKIP_ALL() ends a program that needs ../shared when it is absent.
 */
#ifndef LM_UNIT_H
#define LM_UNIT_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int	unit_n = 0;
static int	unit_failed = 0;

/* Record one assertion and print its TAP line. */
static inline void
unit_check(int ok, const char *file, int line, const char *fmt, ...)
{
	va_list		ap;

	unit_n++;
	if (!ok)
		unit_failed++;
	printf("%s %d - ", ok ? "ok" : "not ok", unit_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (!ok)
		printf("  # at %s:%d", file, line);
	printf("\n");
	fflush(stdout);
}

#define CHECK(cond, ...) unit_check((cond) ? 1 : 0, __FILE__, __LINE__, __VA_ARGS__)

/* Print the plan and return the exit status. */
static inline int
unit_done(void)
{
	printf("1..%d\n", unit_n);
	return unit_failed ? 1 : 0;
}

/*
 * Skip one group of checks with a reason: a TAP "ok N # SKIP reason" line,
 * which run_unit.sh and prove count as a skip, never as a pass.
 */
#define SKIP(...) \
	do { unit_n++; printf("ok %d # SKIP ", unit_n); printf(__VA_ARGS__); printf("\n"); fflush(stdout); } while (0)

/* Skip the whole program with a reason (TAP "1..0 # SKIP"). */
#define SKIP_ALL(reason) do { printf("1..0 # SKIP %s\n", (reason)); exit(0); } while (0)

/* Directory of the shared models and goldens: $LMGEN_SHARED or ../shared. */
static inline const char *
unit_shared_dir(void)
{
	const char *d = getenv("LMGEN_SHARED");

	if (d && *d)
		return d;
	return "../shared";
}

/*
 * Directory of the real models `make model` installs: $LMGEN_MODELS, else the
 * installed model directory the Makefile passes in (LMGEN_MODEL_DIR).
 */
static inline const char *
unit_models_dir(void)
{
	const char *d = getenv("LMGEN_MODELS");

	if (d && *d)
		return d;
#ifdef LMGEN_MODEL_DIR
	return LMGEN_MODEL_DIR;
#else
	return "/nonexistent";
#endif
}

/* True when a path exists and is readable. */
static inline int
unit_readable(const char *path)
{
	return access(path, R_OK) == 0;
}

#endif							/* LM_UNIT_H */
