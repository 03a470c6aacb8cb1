/*
 * runtime.h — running a model from a backend: the reusable context, prompt
 * building (chat templates, plain text), cancellation, and the cleanup of
 * engine state when an ERROR unwinds.
 */
#ifndef LMGEN_RUNTIME_H
#define LMGEN_RUNTIME_H

#include "postgres.h"

#include "generate.h"
#include "model_cache.h"

/* Token ids of a prompt, palloc'd. */
typedef struct LmgenPrompt
{
	int32	   *ids;			/* token ids, BOS first when the model wants it */
	int			n;				/* count */
} LmgenPrompt;

/*
 * Start a call that runs the model: its context (made or remade on demand
 * for n_seq sequences and lmgen.threads threads, kept for the next call)
 * with an empty KV cache capped at lmgen.max_kv_memory.  kv_bytes is what
 * the call will need at most; more than the setting is an ERROR naming it
 * (what names the call in the message).  The context's abort check stops
 * long batches when a cancel or timeout is pending.  RuntimeEnd gives the
 * memory back (the KV cache beyond a small keep size, big output buffers);
 * if an ERROR unwinds first, a memory-context callback does it.
 */
typedef struct EngineResource EngineResource;
typedef struct RuntimeCall
{
	lm_context *ctx;			/* the model's context */
	EngineResource *release;	/* gives the call's memory back */
} RuntimeCall;
extern RuntimeCall RuntimeBegin(LmgenModel *m, int n_seq, size_t kv_bytes, const char *what);

/*
 * RuntimeBegin for a batch of many sequences: internal steps of at least
 * step_tokens tokens (a call's are LMGEN_STEP_TOKENS, runtime.c), so a
 * step's prompt chunks read the weights once.  The kept context only
 * grows (sequences, step size), so calls and batches in turn reuse it.
 */
extern RuntimeCall RuntimeBeginSteps(LmgenModel *m, int n_seq, int step_tokens, size_t kv_bytes,
									 const char *what);
extern void RuntimeEnd(RuntimeCall *call);

/* ERROR when a call needs more KV memory than lmgen.max_kv_memory (what names the call). */
extern void CheckKvMemory(size_t kv_bytes, const char *what);

/* KV memory a generation needs at most: prompt and answer, up to the context. */
extern size_t GenerationKvBytes(LmgenModel *m, const LmgenPrompt *prompt, const lm_gen_params *p);

/*
 * Prompt for an instruction: the model's chat template around user text
 * (with a system message only when one is given: SmolLM2's built-in default
 * system prompt makes its answers worse), or, for models without a chat
 * format, plain text.  Control-token texts typed by the user stay text.
 */
extern LmgenPrompt BuildInstructionPrompt(LmgenModel *m, const char *system, const char *user,
										  size_t user_len, bool use_template);

/*
 * Make a prompt fit the context with room for reserve tokens (the error
 * says they are for reserve_for and hints to shrink them as `shrink`, both
 * unused when reserve is 0), following
 * lmgen.context_overflow: ERROR with the counts, or cut the user text and
 * build the prompt again with build().  The cut keeps head_quarters / 4 of
 * the room from the start of the text and the rest from its end, dropping
 * the middle (4: only the start).
 */
typedef LmgenPrompt (*PromptBuilder) (LmgenModel *m, void *arg, const char *text, size_t len);
extern LmgenPrompt FitPrompt(LmgenModel *m, PromptBuilder build, void *arg, const char *text,
							 size_t len, int reserve, const char *reserve_for, const char *shrink,
							 int head_quarters);

/* ERROR unless max_tokens lies in 1..lmgen.max_tokens. */
extern void CheckMaxTokens(int max_tokens);

/*
 * Run n generations after one prompt (generation k with settings p[k] in
 * sequence k), evaluating the prompt once: each to its end, a token at a
 * time with CHECK_FOR_INTERRUPTS() between tokens.  An lm_gen is freed by
 * a memory-context callback if an ERROR (or cancel) unwinds; on success
 * the texts are palloc'd into texts[k] (valid UTF-8), their lengths into
 * lens[k], and the states freed.
 */
extern void RunGenerations(LmgenModel *m, const LmgenPrompt *prompt, const lm_gen_params *p, int n,
						   char **texts, size_t *lens);

/*
 * Engine memory (malloc'd) tied to the current memory context: freed by
 * free_fn when the context is reset or deleted (an ERROR unwinding), or
 * earlier by ReleaseEngineResource.
 */
extern EngineResource *TrackEngineResource(void *ptr, void (*free_fn) (void *));
extern void ReleaseEngineResource(EngineResource *r);

/*
 * Evaluate a batch in the model's context: ERROR on failure, and raise a
 * pending cancel if the engine stopped early for one.
 */
extern void RunForward(LmgenModel *m, lm_context *ctx, const lm_batch *b);

/* Raise the pending cancel/timeout, or ERROR with the engine's message. */
extern void EngineError(const char *what, const char *err);

#endif							/* LMGEN_RUNTIME_H */
