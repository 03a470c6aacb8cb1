/*
 * cmd_tokenize.c — "lmgen-cli tokenize MODEL TEXT": print the token ids of
 * TEXT, space-separated, as the model would see a prompt (BOS/EOS added as
 * the model asks; special-token texts in TEXT stay plain text).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gguf.h"
#include "tokenizer.h"

/* Tokenize argv[2] with the vocabulary of argv[1]. */
int
cmd_tokenize(int argc, char **argv)
{
	char		err[512];
	lm_gguf    *g;
	lm_tokenizer *t;
	int32_t    *ids;
	int			n;
	size_t		len;

	if (argc != 3)
	{
		fprintf(stderr, "usage: lmgen-cli tokenize MODEL.gguf TEXT\n");
		return 2;
	}
	g = lm_gguf_open(argv[1], err, sizeof(err));
	if (g == NULL)
	{
		fprintf(stderr, "lmgen-cli tokenize: %s\n", err);
		return 1;
	}
	t = lm_tokenizer_load(g, err, sizeof(err));
	if (t == NULL)
	{
		fprintf(stderr, "lmgen-cli tokenize: %s: %s\n", argv[1], err);
		lm_gguf_close(g);
		return 1;
	}
	len = strlen(argv[2]);
	/* first call sizes the result */
	n = lm_tokenize(t, argv[2], len, true, false, NULL, 0, err, sizeof(err));
	ids = n > 0 ? malloc((size_t) n * sizeof(int32_t)) : NULL;
	if (n < 0 || (n > 0 && ids == NULL) ||
		(n > 0 && lm_tokenize(t, argv[2], len, true, false, ids, n, err, sizeof(err)) != n))
	{
		fprintf(stderr, "lmgen-cli tokenize: %s\n", n < 0 ? err : "out of memory");
		free(ids);
		lm_tokenizer_free(t);
		lm_gguf_close(g);
		return 1;
	}
	for (int i = 0; i < n; i++)
		printf(i ? " %d" : "%d", ids[i]);
	printf("\n");
	free(ids);
	lm_tokenizer_free(t);
	lm_gguf_close(g);
	return 0;
}
