/*
 * fuzz_gguf.c — libFuzzer target for the GGUF reader.
 *
 * Each input is handed to lm_gguf_open_buffer() as a whole file image.  A
 * rejected input must come with a message; an accepted one is walked with
 * every accessor (test/unit/gguf_check.h) and must be self-consistent.  Any
 * violation aborts, which libFuzzer reports as a crash with the input saved.
 * Build and run with test/fuzz/run_fuzz.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_check.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One fuzz input: open, check, close. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a private copy of exactly `size` bytes, so ASan sees any over-read */
	uint8_t    *img = malloc(size ? size : 1);
	char		err[256];
	lm_gguf    *g;

	if (img == NULL)
		return 0;
	memcpy(img, data, size);
	err[0] = '\0';
	g = lm_gguf_open_buffer(img, size, err, sizeof(err));
	if (g == NULL)
	{
		if (err[0] == '\0')
		{
			fprintf(stderr, "fuzz_gguf: input rejected without an error message\n");
			abort();
		}
	}
	else
	{
		const char *why = gguf_check_consistent(g, img, size);

		if (why != NULL)
		{
			fprintf(stderr, "fuzz_gguf: accepted input is inconsistent: %s\n", why);
			abort();
		}
		lm_gguf_close(g);
	}
	free(img);
	return 0;
}
