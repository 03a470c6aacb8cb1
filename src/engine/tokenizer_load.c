/*
 * tokenizer_load.c — build an lm_tokenizer from a GGUF file's tokenizer.ggml.*
 * metadata.
 *
 * Everything is validated here so that tokenizing never has to: array types
 * and lengths, special-token ids (out-of-range ids are ignored, as llama.cpp
 * does), merge strings.  Token texts and merges are not copied: entries point
 * into the GGUF mapping.  What llama.cpp decides from token texts rather than
 * metadata is decided the same way here: which tokens end generation
 * (<|im_end|>, <end_of_turn>, ...), FIM tokens that must be control tokens,
 * and Phi-3's habit of eating whitespace after special tokens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"
#include "tokenizer_int.h"

/* Smallest power of two >= 2n (at least 16). */
static uint64_t
table_size(uint64_t n)
{
	uint64_t	s = 16;

	while (s < 2 * n)
		s *= 2;
	return s;
}

/* Find a token id by text. */
int32_t
lm_tok_lookup(const lm_tokenizer *t, const char *s, size_t n)
{
	uint64_t	i = lm_tok_hash(LM_TOK_HASH_SEED, s, n) & t->index_mask;

	for (;;)
	{
		uint32_t	v = t->index[i];
		const lm_tok_entry *e;

		if (v == 0)
			return -1;
		e = &t->tok[v - 1];
		if (e->len == n && memcmp(e->text, s, n) == 0)
			return (int32_t) (v - 1);
		i = (i + 1) & t->index_mask;
	}
}

/* Hash of (left, right): the two parts with a separator mixed in between. */
uint64_t
lm_tok_merge_hash(const char *left, size_t left_len, const char *right, size_t right_len)
{
	uint64_t	h = lm_tok_hash(LM_TOK_HASH_SEED, left, left_len);

	h ^= 0x9e3779b97f4a7c15ULL + left_len;
	h *= 0x100000001b3ULL;
	return lm_tok_hash(h, right, right_len);
}

/* Merge rank lookup for a span cut in two. */
int32_t
lm_tok_merge_rank(const lm_tokenizer *t, const char *span, size_t left_len, size_t total)
{
	const char *right = span + left_len;
	size_t		right_len = total - left_len;
	uint64_t	i;

	if (t->merge_index == NULL)
		return -1;
	i = lm_tok_merge_hash(span, left_len, right, right_len) & t->merge_mask;
	for (;;)
	{
		uint32_t	v = t->merge_index[i];
		const lm_tok_merge *m;

		if (v == 0)
			return -1;
		m = &t->merges[v - 1];
		if (m->left_len == left_len && m->right_len == right_len &&
			memcmp(m->left, span, left_len) == 0 && memcmp(m->right, right, right_len) == 0)
			return (int32_t) (v - 1);
		i = (i + 1) & t->merge_mask;
	}
}

/* Read an optional token-id key; keeps *id when absent or out of range. */
static void
read_id(const lm_gguf *g, const char *key, int32_t n_vocab, int32_t *id)
{
	int64_t		v;

	if (lm_gguf_get_i64(g, key, &v) && v >= 0 && v < n_vocab)
		*id = (int32_t) v;
}

/* Read an optional bool key. */
static void
read_bool(const lm_gguf *g, const char *key, bool *out)
{
	bool		v;

	if (lm_gguf_get_bool(g, key, &v))
		*out = v;
}

/* Id of the token whose text is the C string s, -1 if none (the last of duplicates). */
static int32_t
find_text(const lm_tokenizer *t, const char *s)
{
	return lm_tok_lookup(t, s, strlen(s));
}

/* Pre-tokenizer names lmgen knows, and their families (llama.cpp's names). */
typedef struct pre_name
{
	const char *name;
	lm_pretok_kind kind;
	bool		ignore_merges;	/* llama3 family */
	bool		add_bos;		/* default add_bos before the GGUF key */
	bool		no_bos;			/* glm4: no BOS token at all */
} pre_name;

static const pre_name pre_names[] = {
	{"default", LM_PRETOK_DEFAULT, false, false, false},
	{"llama3", LM_PRETOK_LLAMA3, true, true, false},
	{"llama-v3", LM_PRETOK_LLAMA3, true, true, false},
	{"llama-bpe", LM_PRETOK_LLAMA3, true, true, false},
	{"falcon3", LM_PRETOK_LLAMA3, true, true, false},
	{"falcon-h1", LM_PRETOK_LLAMA3, true, true, false},
	{"pixtral", LM_PRETOK_LLAMA3, true, true, false},
	{"midm-2.0", LM_PRETOK_LLAMA3, true, true, false},
	{"lfm2", LM_PRETOK_LLAMA3, true, true, false},
	{"dbrx", LM_PRETOK_LLAMA3, false, false, false},
	{"smaug-bpe", LM_PRETOK_LLAMA3, false, false, false},
	{"glm4", LM_PRETOK_LLAMA3, false, false, true},
	{"chatglm-bpe", LM_PRETOK_LLAMA3, false, false, true},
	{"deepseek-llm", LM_PRETOK_DEEPSEEK_LLM, false, false, false},
	{"deepseek-coder", LM_PRETOK_DEEPSEEK_CODER, false, false, false},
	{"falcon", LM_PRETOK_FALCON, false, false, false},
	{"mpt", LM_PRETOK_GPT2, false, false, false},
	{"gpt-2", LM_PRETOK_GPT2, false, false, false},
	{"phi-2", LM_PRETOK_GPT2, false, false, false},
	{"olmo", LM_PRETOK_GPT2, false, false, false},
	{"jais", LM_PRETOK_GPT2, false, false, false},
	{"trillion", LM_PRETOK_GPT2, false, false, false},
	{"granite-docling", LM_PRETOK_GPT2, false, false, false},
	{"exaone4", LM_PRETOK_GPT2, false, false, false},
	{"gigachat", LM_PRETOK_GPT2, false, false, false},
	{"a.x-4.0", LM_PRETOK_GPT2, false, false, false},
	{"mellum", LM_PRETOK_GPT2, false, false, false},
	{"starcoder", LM_PRETOK_STARCODER, false, false, false},
	{"refact", LM_PRETOK_STARCODER, false, false, false},
	{"command-r", LM_PRETOK_STARCODER, false, false, false},
	{"smollm", LM_PRETOK_STARCODER, false, false, false},
	{"codeshell", LM_PRETOK_STARCODER, false, false, false},
	{"exaone", LM_PRETOK_STARCODER, false, false, false},
	{"minerva-7b", LM_PRETOK_STARCODER, false, false, false},
	{"qwen2", LM_PRETOK_QWEN2, false, false, false},
	{"deepseek-r1-qwen", LM_PRETOK_QWEN2, false, false, false},
	{"kormo", LM_PRETOK_QWEN2, false, false, false},
	{"f2llmv2", LM_PRETOK_QWEN2, false, false, false},
	{"stablelm2", LM_PRETOK_QWEN2, false, false, false},
	{"hunyuan", LM_PRETOK_QWEN2, false, false, false},
};

/* Texts that make a token end generation (llama.cpp's list). */
static const char *const eog_texts[] = {
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
	"<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
	"<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
	"<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", "[e~[", NULL
};

/* Texts of end-of-turn tokens, when tokenizer.ggml.eot_token_id is absent. */
static const char *const eot_texts[] = {
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
	"<EOT>", "_<EOT>", "[EOT]", "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>",
	"<end_of_utterance>", NULL
};
static const char *const eom_texts[] = {"<|eom_id|>", NULL};

/* gpt-oss tokens that are always rendered (made user-defined). */
static const char *const gptoss_texts[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>", NULL};

/* Fill-in-the-middle token texts: these are made control tokens too. */
static const char *const fim_pre_texts[] = {
	"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>",
	"<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>", NULL
};
static const char *const fim_suf_texts[] = {
	"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "hole\xef\xbd\x9c>",
	"<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", NULL
};
static const char *const fim_mid_texts[] = {
	"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>",
	"<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", NULL
};
static const char *const fim_pad_texts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL};
static const char *const fim_rep_texts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL};
static const char *const fim_sep_texts[] = {"<|file_sep|>", NULL};

/* If *id is unset, take the first text of list that is a token and make it a control token. */
static void
detect_special(lm_tokenizer *t, int32_t *id, const char *const *list)
{
	if (*id >= 0)
		return;
	for (int i = 0; list[i] != NULL; i++)
	{
		int32_t		found = find_text(t, list[i]);

		if (found >= 0)
		{
			*id = found;
			t->tok[found].attr |= LM_TATTR_CONTROL;
			return;
		}
	}
}

/* Map tokenizer.ggml.token_type to attributes. */
static uint16_t
attr_of_type(int64_t type)
{
	switch (type)
	{
		case 1:
			return LM_TATTR_NORMAL;
		case 2:
			return LM_TATTR_UNKNOWN;
		case 3:
			return LM_TATTR_CONTROL;
		case 4:
			return LM_TATTR_USER_DEFINED;
		case 5:
			return LM_TATTR_UNUSED;
		case 6:
			return LM_TATTR_BYTE;
		default:
			return LM_TATTR_UNDEFINED;
	}
}

/* A special token being sorted: its text length and id. */
typedef struct special_key
{
	uint32_t	len;			/* text length */
	int32_t		id;				/* token id */
} special_key;

/* Order special tokens: longer text first, then lower id. */
static int
cmp_special(const void *a, const void *b)
{
	const special_key *x = a;
	const special_key *y = b;

	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	return x->id < y->id ? -1 : (x->id > y->id);
}

/* Build the special-token list, its text index and the per-first-byte lengths. */
static bool
build_specials(lm_tokenizer *t)
{
	const uint16_t want = LM_TATTR_CONTROL | LM_TATTR_USER_DEFINED | LM_TATTR_UNKNOWN;
	uint32_t	n = 0;
	uint32_t	counts[256] = {0};
	uint64_t	slots;

	for (int32_t i = 0; i < t->n_vocab; i++)
		if (t->tok[i].attr & want)
			n++;
	t->n_special = n;
	if (n == 0)
		return true;
	{
		special_key *keys = malloc(n * sizeof(special_key));

		t->special = malloc(n * sizeof(int32_t));
		if (t->special == NULL || keys == NULL)
		{
			free(keys);
			return false;
		}
		n = 0;
		for (int32_t i = 0; i < t->n_vocab; i++)
			if (t->tok[i].attr & want)
			{
				keys[n].len = t->tok[i].len;
				keys[n].id = i;
				n++;
			}
		qsort(keys, n, sizeof(special_key), cmp_special);
		for (uint32_t r = 0; r < n; r++)
			t->special[r] = keys[r].id;
		free(keys);
	}

	slots = table_size(n);
	t->special_index = calloc(slots, sizeof(uint32_t));
	if (t->special_index == NULL)
		return false;
	t->special_mask = slots - 1;
	for (uint32_t r = 0; r < n; r++)
	{
		const lm_tok_entry *e = &t->tok[t->special[r]];
		uint64_t	i = lm_tok_hash(LM_TOK_HASH_SEED, e->text, e->len) & t->special_mask;
		bool		dup = false;

		while (t->special_index[i] != 0)
		{
			const lm_tok_entry *o = &t->tok[t->special[t->special_index[i] - 1]];

			if (o->len == e->len && memcmp(o->text, e->text, e->len) == 0)
			{
				dup = true;		/* the earlier rank wins, as in llama.cpp */
				break;
			}
			i = (i + 1) & t->special_mask;
		}
		if (!dup)
			t->special_index[i] = r + 1;
	}

	/* distinct lengths per first byte: CSR layout, ascending */
	t->special_lens = malloc(n * sizeof(uint32_t));
	if (t->special_lens == NULL)
		return false;
	for (uint32_t r = 0; r < n; r++)
		counts[(unsigned char) t->tok[t->special[r]].text[0]]++;
	t->special_len_off[0] = 0;
	for (int b = 0; b < 256; b++)
		t->special_len_off[b + 1] = t->special_len_off[b];
	for (int b = 0; b < 256; b++)
	{
		uint32_t	start = t->special_len_off[b];
		uint32_t	k = 0;

		/* special[] is sorted by length descending: walk it backwards for ascending lengths */
		for (uint32_t r = n; r-- > 0;)
		{
			const lm_tok_entry *e = &t->tok[t->special[r]];

			if ((unsigned char) e->text[0] != b)
				continue;
			if (k == 0 || t->special_lens[start + k - 1] != e->len)
				t->special_lens[start + k++] = e->len;
		}
		for (int c = b + 1; c <= 256; c++)
			t->special_len_off[c] = start + k;
	}
	return true;
}

/* Read tokens, scores and types into t->tok. */
static bool
load_vocab(lm_tokenizer *t, const lm_gguf *g, char *err, size_t errlen)
{
	const lm_gguf_kv *kt = lm_gguf_find(g, "tokenizer.ggml.tokens");
	const lm_gguf_kv *ks = lm_gguf_find(g, "tokenizer.ggml.scores");
	const lm_gguf_kv *ky = lm_gguf_find(g, "tokenizer.ggml.token_type");
	size_t		owned_len = 0;
	size_t		owned_used = 0;
	uint64_t	slots;

	if (kt == NULL)
	{
		lm_set_err(err, errlen, "model has no vocabulary: key \"tokenizer.ggml.tokens\" is missing");
		return false;
	}
	if (kt->type != LM_GGUF_ARRAY || kt->arr_type != LM_GGUF_STRING)
	{
		lm_set_err(err, errlen, "key \"tokenizer.ggml.tokens\" must be an array of strings");
		return false;
	}
	if (kt->arr_n == 0 || kt->arr_n >= INT32_MAX / 2)
	{
		lm_set_err(err, errlen, "key \"tokenizer.ggml.tokens\" has %llu entries; expected 1 to %d",
				(unsigned long long) kt->arr_n, INT32_MAX / 2 - 1);
		return false;
	}
	t->n_vocab = (int32_t) kt->arr_n;
	if (ks != NULL && (ks->type != LM_GGUF_ARRAY ||
					   (ks->arr_type != LM_GGUF_FLOAT32 && ks->arr_type != LM_GGUF_INT32) ||
					   ks->arr_n < kt->arr_n))
	{
		lm_set_err(err, errlen, "key \"tokenizer.ggml.scores\" must be an array of %d float32 or int32 values",
				t->n_vocab);
		return false;
	}
	if (ky != NULL && (ky->type != LM_GGUF_ARRAY || ky->arr_type != LM_GGUF_INT32 || ky->arr_n < kt->arr_n))
	{
		lm_set_err(err, errlen, "key \"tokenizer.ggml.token_type\" must be an array of %d int32 values",
				t->n_vocab);
		return false;
	}
	t->tok = calloc((size_t) t->n_vocab, sizeof(lm_tok_entry));
	if (t->tok == NULL)
		goto oom;
	for (int32_t i = 0; i < t->n_vocab; i++)
	{
		lm_gguf_str s;
		lm_tok_entry *e = &t->tok[i];

		if (!lm_gguf_arr_str(g, kt, (uint64_t) i, &s) || s.len >= INT32_MAX / 4)
		{
			lm_set_err(err, errlen, "token %d of \"tokenizer.ggml.tokens\" is unreadable or too long", i);
			return false;
		}
		e->text = s.ptr;
		e->len = (uint32_t) s.len;
		if (s.len == 0)
			owned_len += 24;	/* "[EMPTY_%d]" */
		e->score = 0.0f;
		if (ks != NULL)
		{
			double		v = 0;

			if (!lm_gguf_arr_f64(ks, (uint64_t) i, &v))
			{
				lm_set_err(err, errlen, "score %d of \"tokenizer.ggml.scores\" is unreadable", i);
				return false;
			}
			e->score = (float) v;
		}
		e->attr = LM_TATTR_NORMAL;
		if (ky != NULL)
		{
			int64_t		ty = 0;

			if (!lm_gguf_arr_i64(ky, (uint64_t) i, &ty))
			{
				lm_set_err(err, errlen, "type %d of \"tokenizer.ggml.token_type\" is unreadable", i);
				return false;
			}
			e->attr = attr_of_type(ty);
		}
	}
	/* empty texts get a made-up name, as in llama.cpp */
	if (owned_len > 0)
	{
		t->owned = malloc(owned_len);
		if (t->owned == NULL)
			goto oom;
		for (int32_t i = 0; i < t->n_vocab; i++)
			if (t->tok[i].len == 0)
			{
				int			n = snprintf(t->owned + owned_used, 24, "[EMPTY_%d]", i);

				t->tok[i].text = t->owned + owned_used;
				t->tok[i].len = (uint32_t) n;
				owned_used += 24;
			}
	}
	/* text -> id; a later duplicate wins, as in llama.cpp */
	slots = table_size((uint64_t) t->n_vocab);
	t->index = calloc(slots, sizeof(uint32_t));
	if (t->index == NULL)
		goto oom;
	t->index_mask = slots - 1;
	for (int32_t id = 0; id < t->n_vocab; id++)
	{
		const lm_tok_entry *e = &t->tok[id];
		uint64_t	i = lm_tok_hash(LM_TOK_HASH_SEED, e->text, e->len) & t->index_mask;

		while (t->index[i] != 0)
		{
			const lm_tok_entry *o = &t->tok[t->index[i] - 1];

			if (o->len == e->len && memcmp(o->text, e->text, e->len) == 0)
				break;
			i = (i + 1) & t->index_mask;
		}
		t->index[i] = (uint32_t) id + 1;
	}
	return true;
oom:
	lm_set_err(err, errlen, "out of memory loading a vocabulary of %d tokens", t->n_vocab);
	return false;
}

/* Read and index tokenizer.ggml.merges. */
static bool
load_merges(lm_tokenizer *t, const lm_gguf *g, char *err, size_t errlen)
{
	const lm_gguf_kv *km = lm_gguf_find(g, "tokenizer.ggml.merges");
	uint64_t	slots;

	if (km == NULL)
	{
		lm_set_err(err, errlen, "BPE model has no merges: key \"tokenizer.ggml.merges\" is missing");
		return false;
	}
	if (km->type != LM_GGUF_ARRAY || km->arr_type != LM_GGUF_STRING || km->arr_n >= INT32_MAX / 2)
	{
		lm_set_err(err, errlen, "key \"tokenizer.ggml.merges\" must be an array of strings");
		return false;
	}
	t->n_merges = (uint32_t) km->arr_n;
	t->merges = calloc(t->n_merges ? t->n_merges : 1, sizeof(lm_tok_merge));
	slots = table_size(t->n_merges);
	t->merge_index = calloc(slots, sizeof(uint32_t));
	if (t->merges == NULL || t->merge_index == NULL)
	{
		lm_set_err(err, errlen, "out of memory loading %u merges", t->n_merges);
		return false;
	}
	t->merge_mask = slots - 1;
	for (uint32_t r = 0; r < t->n_merges; r++)
	{
		lm_gguf_str s;
		lm_tok_merge *m = &t->merges[r];
		const char *sp;
		uint64_t	i;

		if (!lm_gguf_arr_str(g, km, r, &s) || s.len >= INT32_MAX / 4)
		{
			lm_set_err(err, errlen, "merge %u of \"tokenizer.ggml.merges\" is unreadable", r);
			return false;
		}
		/* split at the first space after the first byte; no space: both parts empty */
		sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
		if (sp == NULL)
			continue;			/* ("", "") never matches two non-empty symbols */
		m->left = s.ptr;
		m->left_len = (uint32_t) (sp - s.ptr);
		m->right = sp + 1;
		m->right_len = (uint32_t) (s.len - m->left_len - 1);
		i = lm_tok_merge_hash(m->left, m->left_len, m->right, m->right_len) & t->merge_mask;
		for (;;)
		{
			uint32_t	v = t->merge_index[i];

			if (v == 0)
			{
				t->merge_index[i] = r + 1;
				break;
			}
			else
			{
				const lm_tok_merge *o = &t->merges[v - 1];

				if (o->left_len == m->left_len && o->right_len == m->right_len &&
					memcmp(o->left, m->left, m->left_len) == 0 &&
					memcmp(o->right, m->right, m->right_len) == 0)
					break;		/* the lower rank stays */
			}
			i = (i + 1) & t->merge_mask;
		}
	}
	return true;
}

/* True when the token with this text exists and ends generation. */
static bool
is_eog_text(const lm_tokenizer *t, const char *s)
{
	int32_t		id = find_text(t, s);

	return id >= 0 && (t->tok[id].attr & LM_TATTR_EOG);
}

/* Decide the end-of-generation set and the control tokens llama.cpp infers from texts. */
static void
mark_eog(lm_tokenizer *t, const lm_gguf *g)
{
	int32_t		fim_pre = -1,
				fim_suf = -1,
				fim_mid = -1,
				fim_pad = -1,
				fim_rep = -1,
				fim_sep = -1;
	int32_t		end_id = -1,
				s_id = -1;
	bool		has_return = false,
				has_call = false,
				has_flush = false,
				has_tool_response = false;

	read_id(g, "tokenizer.ggml.eot_token_id", t->n_vocab, &t->eot);
	read_id(g, "tokenizer.ggml.eom_token_id", t->n_vocab, &t->eom);
	read_id(g, "tokenizer.ggml.fim_pre_token_id", t->n_vocab, &fim_pre);
	read_id(g, "tokenizer.ggml.fim_suf_token_id", t->n_vocab, &fim_suf);
	read_id(g, "tokenizer.ggml.fim_mid_token_id", t->n_vocab, &fim_mid);
	read_id(g, "tokenizer.ggml.fim_pad_token_id", t->n_vocab, &fim_pad);
	read_id(g, "tokenizer.ggml.fim_rep_token_id", t->n_vocab, &fim_rep);
	read_id(g, "tokenizer.ggml.fim_sep_token_id", t->n_vocab, &fim_sep);
	read_id(g, "tokenizer.ggml.prefix_token_id", t->n_vocab, &fim_pre);
	read_id(g, "tokenizer.ggml.suffix_token_id", t->n_vocab, &fim_suf);
	read_id(g, "tokenizer.ggml.middle_token_id", t->n_vocab, &fim_mid);

	detect_special(t, &t->eot, eot_texts);
	detect_special(t, &t->eom, eom_texts);
	detect_special(t, &fim_pre, fim_pre_texts);
	detect_special(t, &fim_suf, fim_suf_texts);
	detect_special(t, &fim_mid, fim_mid_texts);
	detect_special(t, &fim_pad, fim_pad_texts);
	detect_special(t, &fim_rep, fim_rep_texts);
	detect_special(t, &fim_sep, fim_sep_texts);

	if (fim_pad >= 0)
		t->tok[fim_pad].attr |= LM_TATTR_EOG;
	if (fim_rep >= 0)
		t->tok[fim_rep].attr |= LM_TATTR_EOG;
	if (fim_sep >= 0)
		t->tok[fim_sep].attr |= LM_TATTR_EOG;
	for (int i = 0; eog_texts[i] != NULL; i++)
	{
		int32_t		id = find_text(t, eog_texts[i]);

		if (id >= 0)
			t->tok[id].attr |= LM_TATTR_EOG | LM_TATTR_CONTROL;
	}
	/* gpt-oss: always rendered */
	for (int i = 0; gptoss_texts[i] != NULL; i++)
	{
		int32_t		id = find_text(t, gptoss_texts[i]);

		if (id >= 0)
			t->tok[id].attr = LM_TATTR_USER_DEFINED;
	}
	if (t->eos >= 0)
		t->tok[t->eos].attr |= LM_TATTR_EOG;
	if (t->eot >= 0)
		t->tok[t->eot].attr |= LM_TATTR_EOG;
	if (t->eom >= 0)
		t->tok[t->eom].attr |= LM_TATTR_EOG;

	/* gpt-oss / solar-open: <|end|> is not the end when <|return|>/<|call|> exist */
	has_return = is_eog_text(t, "<|return|>");
	has_call = is_eog_text(t, "<|call|>") || is_eog_text(t, "<|calls|>");
	has_flush = is_eog_text(t, "<|flush|>");
	has_tool_response = is_eog_text(t, "<|tool_response>");
	end_id = is_eog_text(t, "<|end|>") ? find_text(t, "<|end|>") : -1;
	s_id = is_eog_text(t, "</s>") ? find_text(t, "</s>") : -1;
	if (end_id >= 0 && ((has_return && has_call) || (has_call && has_flush)))
		t->tok[end_id].attr = LM_TATTR_USER_DEFINED;
	/* gemma4: </s> is an ordinary token there */
	if (has_tool_response && s_id >= 0)
		t->tok[s_id].attr = LM_TATTR_NORMAL;
}

/* Phi-3 eats whitespace after its special tokens (llama.cpp keys this on general.name). */
static void
mark_strip(lm_tokenizer *t, const lm_gguf *g)
{
	lm_gguf_str name;
	char		lower[128];
	size_t		n;

	if (!lm_gguf_get_str(g, "general.name", &name))
		return;
	n = name.len < sizeof(lower) - 1 ? (size_t) name.len : sizeof(lower) - 1;
	for (size_t i = 0; i < n; i++)
		lower[i] = (name.ptr[i] >= 'A' && name.ptr[i] <= 'Z') ? name.ptr[i] + 32 : name.ptr[i];
	lower[n] = '\0';
	if (strstr(lower, "phi-3") == NULL && strstr(lower, "phi3") == NULL)
		return;
	for (uint32_t r = 0; r < t->n_special; r++)
		t->tok[t->special[r]].attr |= LM_TATTR_RSTRIP;
	{
		static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
		int32_t		id = find_text(t, "</s>");

		if (id >= 0)
			t->tok[id].attr |= LM_TATTR_RSTRIP;
		for (int i = 0; i < 3; i++)
			if ((id = find_text(t, keep[i])) >= 0)
				t->tok[id].attr &= ~LM_TATTR_RSTRIP;
	}
}

/* SPM byte fallback ids: <0xNN>, else the one-byte token. */
static void
map_bytes(lm_tokenizer *t)
{
	static const char hex[] = "0123456789ABCDEF";

	for (int b = 0; b < 256; b++)
	{
		char		buf[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
		char		one = (char) b;

		t->byte_id[b] = lm_tok_lookup(t, buf, 6);
		if (t->byte_id[b] < 0)
			t->byte_id[b] = lm_tok_lookup(t, &one, 1);
	}
}

/* WordPiece settings: tokenizer.wordpiece.* (BERT uncased defaults when absent). */
static bool
read_wordpiece(lm_tokenizer *t, const lm_gguf *g, char *err, size_t errlen)
{
	int64_t		max_chars = 100;

	t->wpm_lowercase = true;
	t->wpm_chinese = true;
	t->wpm_clean_text = true;
	read_bool(g, "tokenizer.wordpiece.lowercase", &t->wpm_lowercase);
	t->wpm_strip_accents = t->wpm_lowercase;	/* HF: strip_accents null follows lowercase */
	read_bool(g, "tokenizer.wordpiece.strip_accents", &t->wpm_strip_accents);
	read_bool(g, "tokenizer.wordpiece.handle_chinese_chars", &t->wpm_chinese);
	read_bool(g, "tokenizer.wordpiece.clean_text", &t->wpm_clean_text);
	if (lm_gguf_find(g, "tokenizer.wordpiece.max_input_chars_per_word") != NULL &&
		(!lm_gguf_get_i64(g, "tokenizer.wordpiece.max_input_chars_per_word", &max_chars) ||
		 max_chars < 1 || max_chars > 100000))
	{
		lm_set_err(err, errlen, "key \"tokenizer.wordpiece.max_input_chars_per_word\" must be an integer in 1..100000");
		return false;
	}
	t->wpm_max_chars = (size_t) max_chars;
	return true;
}

/* Load the tokenizer. */
lm_tokenizer *
lm_tokenizer_load(const lm_gguf *g, char *err, size_t errlen)
{
	lm_tokenizer *t;
	lm_gguf_str model;
	lm_gguf_str pre = {NULL, 0};
	bool		no_bos = false;

	if (!lm_gguf_get_str(g, "tokenizer.ggml.model", &model))
	{
		lm_set_err(err, errlen, "model has no tokenizer: key \"tokenizer.ggml.model\" is missing");
		return NULL;
	}
	t = calloc(1, sizeof(lm_tokenizer));
	if (t == NULL)
	{
		lm_set_err(err, errlen, "out of memory");
		return NULL;
	}
	t->bos = t->eos = t->eot = t->eom = t->unk = -1;

	if (lm_gguf_str_eq(model, "llama"))
	{
		t->model = LM_TOKMODEL_SPM;
		t->add_space_prefix = true;
		t->add_bos = true;
		snprintf(t->name, sizeof(t->name), "llama");
	}
	else if (lm_gguf_str_eq(model, "gpt2"))
	{
		const pre_name *pn = NULL;

		t->model = LM_TOKMODEL_BPE;
		if (!lm_gguf_get_str(g, "tokenizer.ggml.pre", &pre) || pre.len == 0)
			pn = &pre_names[0];	/* missing: "default", as llama.cpp (which warns) */
		else
			for (size_t i = 0; i < sizeof(pre_names) / sizeof(pre_names[0]); i++)
				if (lm_gguf_str_eq(pre, pre_names[i].name))
					pn = &pre_names[i];
		if (pn == NULL)
		{
			lm_set_err(err, errlen, "BPE pre-tokenizer \"%.*s\" (tokenizer.ggml.pre) is not supported; "
					"supported: default, gpt-2, llama-bpe, qwen2, smollm, starcoder, refact, falcon, mpt, "
					"deepseek-llm, deepseek-coder and their aliases",
					(int) (pre.len > 64 ? 64 : pre.len), pre.ptr);
			goto fail;
		}
		t->pre = pn->kind;
		t->ignore_merges = pn->ignore_merges;
		t->add_bos = pn->add_bos;
		no_bos = pn->no_bos;
		snprintf(t->name, sizeof(t->name), "gpt2/%s", pn->name);
	}
	else if (lm_gguf_str_eq(model, "bert"))
	{
		t->model = LM_TOKMODEL_WPM;
		t->add_space_prefix = true;	/* detokenizing drops the first piece's phantom space */
		t->add_bos = t->add_eos = true; /* [CLS] text [SEP] */
		if (!read_wordpiece(t, g, err, errlen))
			goto fail;
		snprintf(t->name, sizeof(t->name), "bert");
	}
	else
	{
		const char *what = lm_gguf_str_eq(model, "t5") ? " (Unigram)" : "";

		lm_set_err(err, errlen, "tokenizer model \"%.*s\"%s is not supported; lmgen supports \"llama\" "
				"(SentencePiece), \"gpt2\" (byte-level BPE) and \"bert\" (WordPiece)",
				(int) (model.len > 64 ? 64 : model.len), model.ptr, what);
		goto fail;
	}
	read_bool(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix);

	if (!load_vocab(t, g, err, errlen))
		goto fail;
	if (t->model == LM_TOKMODEL_BPE && !load_merges(t, g, err, errlen))
		goto fail;

	/* special ids: model defaults (dropped when out of range), then the keys */
	if (t->model == LM_TOKMODEL_SPM)
	{
		t->bos = 1 < t->n_vocab ? 1 : -1;
		t->eos = 2 < t->n_vocab ? 2 : -1;
		t->unk = 0;
	}
	else if (t->model == LM_TOKMODEL_WPM)
	{
		/* llama.cpp's defaults, then its cls/sep keys: [CLS] opens, [SEP] closes */
		t->bos = 101 < t->n_vocab ? 101 : -1;
		t->eos = 102 < t->n_vocab ? 102 : -1;
		t->unk = 100 < t->n_vocab ? 100 : -1;
		read_id(g, "tokenizer.ggml.cls_token_id", t->n_vocab, &t->bos);
		read_id(g, "tokenizer.ggml.seperator_token_id", t->n_vocab, &t->eos);
	}
	else
	{
		t->eos = 11 < t->n_vocab ? 11 : -1;
		t->bos = no_bos ? -1 : t->eos;
	}
	read_id(g, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos);
	read_id(g, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos);
	read_id(g, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk);
	read_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos);
	read_bool(g, "tokenizer.ggml.add_eos_token", &t->add_eos);
	if (t->add_bos && t->bos < 0)
		t->add_bos = false;
	if (t->add_eos && t->eos < 0)
		t->add_eos = false;

	mark_eog(t, g);
	if (!build_specials(t))
	{
		lm_set_err(err, errlen, "out of memory indexing special tokens");
		goto fail;
	}
	mark_strip(t, g);
	map_bytes(t);
	for (int32_t i = 0; i < t->n_vocab; i++)
		if (t->tok[i].len > t->max_len)
			t->max_len = t->tok[i].len;
	t->window = LM_TOK_WINDOW;
	return t;
fail:
	lm_tokenizer_free(t);
	return NULL;
}

/* Free everything the tokenizer owns. */
void
lm_tokenizer_free(lm_tokenizer *t)
{
	if (t == NULL)
		return;
	free(t->tok);
	free(t->index);
	free(t->merges);
	free(t->merge_index);
	free(t->special);
	free(t->special_index);
	free(t->special_lens);
	free(t->owned);
	free(t);
}
