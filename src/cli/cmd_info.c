/*
 * cmd_info.c — `lmgen-cli info MODEL.gguf`: validate a model file and print
 * what it holds.  Exit 0 for a valid file; 1 with a one-line error on stderr.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gguf.h"
#include "model_info.h"

/* Print the summary, then one line per tensor with --tensors. */
int
cmd_info(int argc, char **argv)
{
	char		err[512];
	lm_gguf    *g;
	lm_model_info info;
	const char *path = NULL;
	int			show_tensors = 0;

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--tensors") == 0)
			show_tensors = 1;
		else if (path == NULL)
			path = argv[i];
		else
		{
			fprintf(stderr, "lmgen-cli info: unexpected argument \"%s\"\n", argv[i]);
			return 2;
		}
	}
	if (path == NULL)
	{
		fprintf(stderr, "usage: lmgen-cli info MODEL.gguf [--tensors]\n");
		return 2;
	}
	g = lm_gguf_open(path, err, sizeof(err));
	if (g == NULL)
	{
		fprintf(stderr, "lmgen-cli: %s: %s\n", path, err);
		return 1;
	}
	lm_model_info_get(g, &info);
	printf("file:           %s\n", path);
	printf("file size:      %llu bytes\n", (unsigned long long) info.file_size);
	printf("gguf version:   %u\n", info.version);
	printf("alignment:      %u\n", info.alignment);
	printf("architecture:   %s\n", info.architecture[0] ? info.architecture : "(none)");
	printf("name:           %s\n", info.name[0] ? info.name : "(none)");
	printf("parameters:     %llu\n", (unsigned long long) info.n_params);
	printf("tensors:        %llu\n", (unsigned long long) info.n_tensors);
	printf("metadata keys:  %llu\n", (unsigned long long) info.n_kv);
	printf("context length: %lld\n", (long long) info.context_length);
	printf("vocab size:     %lld\n", (long long) info.vocab_size);
	printf("quantization:   %s\n", info.quantization[0] ? info.quantization : "(none)");
	printf("tensor types:  ");
	for (int t = 0; t < LM_TYPE_COUNT; t++)
		if (info.type_count[t])
			printf(" %s=%llu", lm_type_name(t), (unsigned long long) info.type_count[t]);
	printf("\n");
	if (show_tensors)
		for (uint64_t i = 0; i < g->n_tensors; i++)
		{
			const lm_gguf_tensor *t = &g->tensors[i];

			printf("  %-32.*s %-6s [", (int) t->name.len, t->name.ptr, lm_type_name(t->type));
			for (uint32_t d = 0; d < t->n_dims; d++)
				printf("%s%lld", d ? ", " : "", (long long) t->ne[d]);
			printf("] offset %llu bytes %llu\n", (unsigned long long) t->offset,
				   (unsigned long long) t->n_bytes);
		}
	lm_gguf_close(g);
	return 0;
}
