/*
 * tokenizer.h — text <-> token ids for the vocabularies stored in GGUF files
 * (tokenizer.ggml.*), giving the same ids as llama.cpp.
 *
 * Three tokenizer models are supported:
 *   "llama" (SPM)  SentencePiece-style: spaces become U+2581, an optional
 *                  leading space, pieces merged by score, bytes <0xNN> as
 *                  fallback for text the vocabulary lacks.
 *   "gpt2"  (BPE)  byte-level BPE: a pre-tokenizer regex named by
 *                  tokenizer.ggml.pre cuts words, bytes are mapped to code
 *                  points, and merges apply in rank order.
 *   "bert"  (WPM)  WordPiece as BERT's tokenizer does it: clean, CJK split,
 *                  accent stripping and lower-casing, punctuation split,
 *                  greedy longest-match pieces (tokenizer_wordpiece.c);
 *                  [CLS] and [SEP] around the text with add_special.
 * Others ("t5" Unigram, ...) are refused at load time with an error naming
 * the model.
 *
 * A loaded tokenizer is read-only: any number of threads may tokenize with it
 * at once.  It keeps pointers into the GGUF mapping for token texts and
 * merges, so the lm_gguf must stay open while the tokenizer is in use.
 */
#ifndef LM_TOKENIZER_H
#define LM_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct lm_tokenizer lm_tokenizer;

/* Build the tokenizer described by g's metadata; NULL with a message in err on failure. */
extern lm_tokenizer *lm_tokenizer_load(const lm_gguf *g, char *err, size_t errlen);

/* Free; NULL is allowed. */
extern void lm_tokenizer_free(lm_tokenizer *t);

/* Number of tokens in the vocabulary. */
extern int32_t lm_tokenizer_n_vocab(const lm_tokenizer *t);

/* Beginning-of-sequence id, -1 if none. */
extern int32_t lm_tokenizer_bos(const lm_tokenizer *t);

/* End-of-sequence id, -1 if none. */
extern int32_t lm_tokenizer_eos(const lm_tokenizer *t);

/* True when the model wants BOS in front of a prompt. */
extern bool lm_tokenizer_add_bos(const lm_tokenizer *t);

/* True for ids that end generation: eos, eot, eom, <|im_end|>, <end_of_turn>, ... */
extern bool lm_tokenizer_is_eog(const lm_tokenizer *t, int32_t id);

/* True for control tokens (<s>, </s>, <|im_start|>, ...); false for bad ids. */
extern bool lm_tokenizer_is_control(const lm_tokenizer *t, int32_t id);

/* Id of the token whose text is exactly piece[0..len), -1 if none. */
extern int32_t lm_tokenizer_find(const lm_tokenizer *t, const char *piece, size_t len);

/* Name of the tokenizer model and pre-tokenizer, for messages ("llama", "gpt2/smollm"). */
extern const char *lm_tokenizer_kind_name(const lm_tokenizer *t);

/*
 * Tokenize len bytes of text.
 *   add_special    add BOS (and EOS) as the model asks (add_bos/add_eos).
 *   parse_special  recognise the texts of control tokens inside the text
 *                  (chat templates set this; user text must not).  The texts
 *                  of user-defined tokens are always recognised, as in
 *                  llama.cpp.  Longest token first.
 * Returns the number of tokens the text needs and writes the first
 * min(result, max_out) of them to out (call again with a bigger buffer when
 * the result exceeds max_out); -1 with a message in err on failure (out of
 * memory, more than INT32_MAX tokens).  Invalid UTF-8 is tokenized, never
 * rejected: SPM falls back to byte tokens; BPE reads each invalid byte as
 * U+FFFD, as llama.cpp does.
 */
extern int	lm_tokenize(const lm_tokenizer *t, const char *text, size_t len, bool add_special,
						bool parse_special, int32_t *out, int max_out, char *err, size_t errlen);

/* An abort check: returns true to stop tokenizing. */
typedef bool (*lm_tok_abort_fn) (void *arg);

/* What lm_tokenize_abortable returns when its abort check stopped it. */
#define LM_TOKENIZE_ABORTED (-2)

/*
 * lm_tokenize with an abort check.  The text is encoded piece by piece
 * (pre-tokenizer words of at most a 16k-code-point window for BPE, chunks of
 * about 16 kB cut where no vocabulary token can span for SPM), with the same
 * ids as one pass over the whole text; abort_fn(abort_arg) (abort_fn may be
 * NULL) is called between pieces and every 4096 merges inside a long piece.
 * Once it returns true, the call returns LM_TOKENIZE_ABORTED (err says so).
 * Working memory is bounded by the piece, not the text: besides the ids, a
 * few hundred kB for ordinary text (more for one word or unbreakable run
 * longer than the window); when the text holds texts of special tokens, also
 * one byte per text byte and about 40 bytes per such occurrence.
 */
extern int	lm_tokenize_abortable(const lm_tokenizer *t, const char *text, size_t len, bool add_special,
								  bool parse_special, int32_t *out, int max_out,
								  lm_tok_abort_fn abort_fn, void *abort_arg, char *err, size_t errlen);

/*
 * The bytes one token stands for in output text: SPM turns U+2581 into ' '
 * and <0xNN> into that byte; BPE undoes the byte-to-code-point mapping.
 * Control and unknown tokens give "" unless render_special (then their text);
 * unused tokens and bad ids give "".  Returns the full byte length; writes at
 * most buflen bytes (no terminating NUL), so a result > buflen means the
 * piece was cut.  A single piece may be a partial UTF-8 sequence.
 */
extern int	lm_token_to_piece(const lm_tokenizer *t, int32_t id, bool render_special, char *buf,
							  int buflen);

/*
 * Streaming detokenizer.  Feed ids one at a time; each call returns the bytes
 * that are now safe to print, always valid UTF-8:
 *   - a multi-byte character split across byte tokens is held back until it
 *     is complete (at most 3 bytes wait);
 *   - bytes that can never form valid UTF-8 are replaced by U+FFFD;
 *   - lm_detok_finish replaces a still-incomplete sequence by U+FFFD.
 * Like llama.cpp's detokenize, the very first token pushed loses one leading
 * space when the vocabulary adds a space prefix (SPM), so that
 * detokenize(tokenize(x)) == x without BOS.  (With BOS pushed first, BOS is
 * that first token and the space stays, as in llama.cpp.)  Clear
 * strip_space after lm_detok_init to keep the space (e.g. when streaming a
 * continuation of a prompt); set render_special to print control tokens.
 */
typedef struct lm_detok
{
	const lm_tokenizer *tok;	/* vocabulary the ids belong to */
	bool		strip_space;	/* drop one leading ' ' of the next token pushed */
	bool		render_special; /* print the text of control/unknown tokens */
	int			n_pending;		/* bytes held back (0..3) */
	unsigned char pending[4];	/* start of an incomplete UTF-8 sequence */
} lm_detok;

/* Reset d for a new text. */
extern void lm_detok_init(lm_detok *d, const lm_tokenizer *t);

/*
 * Add one token.  Returns the number of bytes written to out (>= 0), or,
 * when they would not fit in outlen, minus the room needed; then nothing was
 * consumed and the call may be repeated with a bigger buffer.  Room for
 * 3 * (piece length + 3) bytes is always enough.
 */
extern int	lm_detok_push(lm_detok *d, int32_t id, char *out, int outlen);

/* Drop an incomplete character still held back (generation cut mid-character). */
extern void lm_detok_drop(lm_detok *d);

/* End the text: returns the bytes still owed (U+FFFD for a cut-off sequence), or -needed. */
extern int	lm_detok_finish(lm_detok *d, char *out, int outlen);

#endif							/* LM_TOKENIZER_H */
