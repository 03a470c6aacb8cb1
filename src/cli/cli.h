/*
 * cli.h — subcommands of lmgen-cli.  Each takes the arguments after its name
 * (argv[0] is the subcommand) and returns the process exit status.
 */
#ifndef LM_CLI_H
#define LM_CLI_H

extern int	cmd_info(int argc, char **argv);
extern int	cmd_tokenize(int argc, char **argv);
extern int	cmd_run(int argc, char **argv);
extern int	cmd_bench(int argc, char **argv);
extern int	cmd_perplexity(int argc, char **argv);
extern int	cmd_embed(int argc, char **argv);

#endif							/* LM_CLI_H */
