/*
 * errmsg.h — the engine's one way to write an error message: engine
 * functions return a status and put a one-line message into a caller buffer
 * (char *err, size_t errlen) that may be NULL or empty.
 */
#ifndef LM_ERRMSG_H
#define LM_ERRMSG_H

#include <stddef.h>

/* Format a one-line message into err (nothing when err is NULL or errlen is 0). */
extern void lm_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif							/* LM_ERRMSG_H */
