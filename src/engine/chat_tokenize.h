/*
 * chat_tokenize.h — a conversation formatted with a chat template and turned
 * into token ids, the one way both lmgen-cli and the SQL functions do it:
 * template markup is tokenized with control tokens recognised, message
 * text without, so a user who types "<|im_end|>" gets plain text.
 */
#ifndef LM_CHAT_TOKENIZE_H
#define LM_CHAT_TOKENIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat.h"
#include "tokenizer.h"

/*
 * Token ids (malloc'd, count in *n) of msgs formatted in family f, with the
 * assistant-turn opener when add_generation_prompt; BOS comes from the
 * tokenizer when the model wants one.  NULL with a message on failure.
 */
extern int32_t *lm_chat_tokenize(const lm_tokenizer *t, lm_chat_family f, const lm_chat_msg *msgs,
								 int n_msgs, bool add_generation_prompt, int *n,
								 char *err, size_t errlen);

/*
 * lm_chat_tokenize with lm_tokenize_abortable's abort check: NULL (err says
 * "tokenizing was aborted") once abort_fn returns true.
 */
extern int32_t *lm_chat_tokenize_abortable(const lm_tokenizer *t, lm_chat_family f, const lm_chat_msg *msgs,
										   int n_msgs, bool add_generation_prompt, int *n,
										   lm_tok_abort_fn abort_fn, void *abort_arg,
										   char *err, size_t errlen);

/* The chat family of a model file: its template's, else its architecture's. */
extern lm_chat_family lm_chat_family_of(const lm_gguf *g, bool *from_template);

#endif							/* LM_CHAT_TOKENIZE_H */
