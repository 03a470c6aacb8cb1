/*
 * errmsg.c — lm_set_err, the engine's error-message writer.
 */
#include "errmsg.h"

#include <stdarg.h>
#include <stdio.h>

/* Format a one-line message into err (nothing when err is NULL or errlen is 0). */
void
lm_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list		ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
