/*
 * main.c — lmgen-cli: the engine without Postgres, for inspection, runs and
 * benchmarks.  Dispatches to one function per subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* One subcommand. */
typedef struct cli_command
{
	const char *name;
	int			(*fn) (int argc, char **argv);
	const char *usage;
} cli_command;

static const cli_command commands[] = {
	{"info", cmd_info, "info MODEL.gguf                 print what the model file holds"},
	{"tokenize", cmd_tokenize, "tokenize MODEL.gguf TEXT        print the token ids of TEXT (BOS as the model adds it)"},
	{"run", cmd_run, "run MODEL.gguf -p PROMPT [-n N] [-t T] [--temp T ...]   generate text (greedy by default)"},
	{"bench", cmd_bench, "bench MODEL.gguf [-t T] [-p 128] [-n 128] [-r 5]   prompt and generation speed (tokens/s)"},
	{"perplexity", cmd_perplexity, "perplexity MODEL.gguf FILE [-c CTX] [-t T]   perplexity of a text file"},
	{"embed", cmd_embed, "embed MODEL.gguf FILE [-t T] [-b N] [--print]   sentence embeddings of each line (encoder models), timed"},
};

/* Print the list of subcommands. */
static void
usage(FILE *out)
{
	fprintf(out, "usage: lmgen-cli COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %s\n", commands[i].usage);
}

/* Find the subcommand named in argv[1] and run it. */
int
main(int argc, char **argv)
{
	if (argc < 2)
	{
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0)
	{
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "lmgen-cli: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return 2;
}
