/*
 * test_bert.c — the bert encoder and the WordPiece tokenizer.
 *
 * Without ../shared: a tiny sentence-transformers model directory written
 * by test/bert_tiny.py (random weights, a 60-piece vocabulary, a float64
 * reference forward pass in pure Python) is converted by
 * .ci/bert_to_gguf.py; the test checks the tokenizer's rules (lower-casing,
 * accent stripping, punctuation and CJK splitting, ## continuations, [UNK],
 * control characters, the word-length limit), the embeddings against the
 * Python reference, that a text's embedding is bit-identical alone, packed
 * with others and on two threads, truncation, and the batch checks.
 *
 * With ../shared/golden/minilm and the installed all-MiniLM-L6-v2 file
 * ($LMGEN_MINILM, or LMGEN_MODEL_DIR's copy): token ids identical to the
 * reference and cosine >= 0.9999 with its embedding on every golden text,
 * with the default 13-bit integer layer products and with F32 ones.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "context_impl.h"
#include "kernels.h"
#include "model_bert.h"
#include "tokenizer.h"
#include "unit.h"

#ifdef LMGEN_MODEL_DIR
#define MINILM_DEFAULT_PATH LMGEN_MODEL_DIR "/all-MiniLM-L6-v2.F32.gguf"
#else
#define MINILM_DEFAULT_PATH "/usr/share/postgresql/15/lmgen/models/all-MiniLM-L6-v2.F32.gguf"
#endif

#define MAX_IDS 4096

/* ---- a minimal reader for the golden JSON (strings, integer and number arrays) ---- */

/* The whole file, NUL-terminated; NULL if unreadable. */
static char *
slurp(const char *path)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n + 1);
	if (buf && fread(buf, 1, n, f) != (size_t) n)
	{
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Append code point cp as UTF-8. */
static char *
put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80)
		*o++ = (char) cp;
	else if (cp < 0x800)
	{
		*o++ = (char) (0xC0 | (cp >> 6));
		*o++ = (char) (0x80 | (cp & 0x3F));
	}
	else if (cp < 0x10000)
	{
		*o++ = (char) (0xE0 | (cp >> 12));
		*o++ = (char) (0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char) (0x80 | (cp & 0x3F));
	}
	else
	{
		*o++ = (char) (0xF0 | (cp >> 18));
		*o++ = (char) (0x80 | ((cp >> 12) & 0x3F));
		*o++ = (char) (0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char) (0x80 | (cp & 0x3F));
	}
	return o;
}

/* Decode the JSON string starting at the quote *p into a malloc'd UTF-8 string; advance p. */
static char *
json_string(const char **p, size_t *len)
{
	const char *s = *p + 1;
	char	   *out = malloc(strlen(s) + 1),
			   *o = out;

	while (*s && *s != '"')
	{
		if (*s != '\\')
		{
			*o++ = *s++;
			continue;
		}
		s++;
		switch (*s)
		{
			case 'n': *o++ = '\n'; s++; break;
			case 't': *o++ = '\t'; s++; break;
			case 'r': *o++ = '\r'; s++; break;
			case 'b': *o++ = '\b'; s++; break;
			case 'f': *o++ = '\f'; s++; break;
			case 'u':
				{
					unsigned	cp = (unsigned) strtoul((char[5]) {s[1], s[2], s[3], s[4], 0}, NULL, 16);

					s += 5;
					if (cp >= 0xD800 && cp < 0xDC00 && s[0] == '\\' && s[1] == 'u')
					{
						unsigned	lo = (unsigned) strtoul((char[5]) {s[2], s[3], s[4], s[5], 0}, NULL, 16);

						cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
						s += 6;
					}
					o = put_utf8(o, cp);
					break;
				}
			default: *o++ = *s++; break;
		}
	}
	*len = (size_t) (o - out);
	*o = '\0';
	*p = *s ? s + 1 : s;
	return out;
}

/* Parse the number array after key (searched from *p); returns the count (<= max), advances p. */
static int
json_numbers(const char **p, const char *key, double *out, int max)
{
	const char *s = strstr(*p, key);
	int			n = 0;

	if (!s || !(s = strchr(s, '[')))
		return -1;
	s++;
	while (*s && *s != ']')
	{
		char	   *end;
		double		v = strtod(s, &end);

		if (end == s)
			s++;
		else
		{
			if (n < max)
				out[n] = v;
			n++;
			s = end;
		}
	}
	*p = s;
	return n;
}

/* ---- helpers ---- */

/* Token ids of text with [CLS]/[SEP]; the count. */
static int
tokenize(const lm_tokenizer *t, const char *text, size_t len, int32_t *ids)
{
	char		err[256];

	return lm_tokenize(t, text, len, true, false, ids, MAX_IDS, err, sizeof(err));
}

/* True when ids[0..n) equal want[0..nw). */
static bool
same_ids(const int32_t *ids, int n, const int *want, int nw)
{
	if (n != nw)
		return false;
	for (int i = 0; i < n; i++)
		if (ids[i] != want[i])
			return false;
	return true;
}

/* Cosine similarity of two float vectors against a double one. */
static double
cosine(const float *a, const double *b, int n)
{
	double		ab = 0,
				aa = 0,
				bb = 0;

	for (int i = 0; i < n; i++)
	{
		ab += a[i] * b[i];
		aa += (double) a[i] * a[i];
		bb += b[i] * b[i];
	}
	return ab / sqrt(aa * bb);
}

/* Embed one text's ids; 0 on success. */
static int
embed_one(lm_context *ctx, const int32_t *ids, int n, float *out)
{
	char		err[256];
	const int32_t *const p[1] = {ids};

	return lm_bert_embed(ctx, p, &n, 1, out, err, sizeof(err));
}

/* ---- the tiny model (no ../shared needed) ---- */

/* Token ids of text, through the vocabulary's texts (phantom form), as a space-joined string. */
static void
pieces(const lm_tokenizer *t, const char *text, char *out, size_t cap)
{
	int32_t		ids[MAX_IDS];
	int			n = tokenize(t, text, strlen(text), ids);
	size_t		o = 0;

	out[0] = '\0';
	for (int i = 0; i < n && o + 64 < cap; i++)
	{
		char		buf[64];
		int			k = lm_token_to_piece(t, ids[i], true, buf, sizeof(buf) - 1);

		if (k < 0 || k > (int) sizeof(buf) - 1)
			k = 0;
		buf[k] = '\0';
		o += snprintf(out + o, cap - o, "%s%s", i ? "|" : "", buf);
	}
}

/* Tokenizer rules on the tiny vocabulary. */
static void
test_tiny_tokenizer(const lm_tokenizer *t)
{
	static const struct
	{
		const char *text;
		const char *want;		/* pieces as lm_token_to_piece renders them, '|'-joined */
		const char *what;
	}			cases[] = {
		{"UNwant\xc3\xa9" "d,running", "[CLS]| un|want|ed| ,| runn|ing|[SEP]", "lower-case, accents stripped, punctuation split, ## continuations"},
		{"R\xc3\xa9sum\xc3\xa9, NA\xc3\x8f" "VE caf\xc3\xa9!", "[CLS]| resume| ,| naive| cafe| !|[SEP]", "accents removed by decomposition (é, Ï)"},
		{"\xe4\xb8\xad\xe5\x9b\xbdhello", "[CLS]| \xe4\xb8\xad| \xe5\x9b\xbd| hello|[SEP]", "CJK ideographs are words of their own"},
		{"cats  sit\tting", "[CLS]| cat|s| sit| ting|[SEP]", "whitespace of any kind splits words"},
		{"xyz the", "[CLS]|[UNK]| the|[SEP]", "a word with no matching piece is one [UNK]"},
		{"thex", "[CLS]|[UNK]|[SEP]", "a word whose tail matches nothing is one [UNK], not the|[UNK]"},
		{"a\x01" "b\x7f", "[CLS]| a|b|[SEP]", "control characters are dropped"},
		{"aaaaaaaaaaaa the", "[CLS]|[UNK]| the|[SEP]", "a word longer than max_input_chars_per_word is [UNK]"},
		{"$a", "[CLS]| $| a|[SEP]", "ASCII symbols count as punctuation"},
		{"", "[CLS]|[SEP]", "the empty text is [CLS] [SEP]"},
		{"\xc4\xb0", "[CLS]| i|[SEP]", "dotted capital I: accent stripped before lower-casing"},
		{"[SEP]", "[CLS]| [|[UNK]| ]|[SEP]", "control-token text typed by a user stays text"},
	};
	char		got[1024];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		pieces(t, cases[i].text, got, sizeof(got));
		CHECK(strcmp(got, cases[i].want) == 0, "wordpiece: %s (got \"%s\")", cases[i].what, got);
	}
	CHECK(lm_tokenizer_bos(t) == 3 && lm_tokenizer_eos(t) == 4,
		  "[CLS] and [SEP] ids come from the file's metadata (3, 4), not BERT's usual 101, 102");
}

/* The tiny model's embeddings against the Python reference, and batching invariants. */
static void
test_tiny_model(const char *gguf, const char *ref)
{
	char		err[512];
	lm_model   *m = lm_model_open(gguf, err, sizeof(err));
	lm_tokenizer *t;
	lm_context_params p = lm_context_default_params();
	lm_context *c1,
			   *c2;
	char	   *json;
	const char *s;
	int32_t		ids[3][MAX_IDS];
	int			n[3];
	float	   *e1,
			   *e3,
			   *e3f,
			   *e2t;
	int			E;
	double		want[64];
	int			nt = 0;
	bool		ref_ok = true,
				alone_ok = true;

	CHECK(m != NULL, "tiny bert model loads (%s)", m ? "" : err);
	if (!m)
		return;
	E = m->cfg.n_embd;
	t = lm_tokenizer_load(m->gguf, err, sizeof(err));
	CHECK(t != NULL, "tiny WordPiece vocabulary loads (%s)", t ? "" : err);
	if (!t)
	{
		lm_model_free(m);
		return;
	}
	test_tiny_tokenizer(t);
	c1 = lm_context_create(m, &p, err, sizeof(err));
	p.n_threads = 2;
	c2 = lm_context_create(m, &p, err, sizeof(err));
	CHECK(c1 && c2 && lm_context_n_seq_max(c1) == 1, "encoder contexts on 1 and 2 threads");
	e1 = calloc(E, sizeof(float));
	e3 = calloc(3 * (size_t) E, sizeof(float));
	e2t = calloc(3 * (size_t) E, sizeof(float));
	e3f = calloc(3 * (size_t) E, sizeof(float));

	/* each reference text: ids and embedding as the float64 Python forward pass gives them */
	json = slurp(ref);
	s = json;
	while (s && (s = strstr(s, "\"text\":")) != NULL)
	{
		const char *q = strchr(s + 7, '"');
		size_t		len;
		char	   *text = json_string(&q, &len);
		double		wid[MAX_IDS];
		int			nw = json_numbers(&q, "\"token_ids\"", wid, MAX_IDS),
					ne = json_numbers(&q, "\"embedding\"", want, 64);
		int32_t		got[MAX_IDS];
		int			ng = tokenize(t, text, len, got);
		int			wi[MAX_IDS];

		for (int i = 0; i < nw && i < MAX_IDS; i++)
			wi[i] = (int) wid[i];
		if (!same_ids(got, ng, wi, nw) || ne != E || embed_one(c1, got, ng, e1) != 0 ||
			cosine(e1, want, E) < 0.99999)
		{
			ref_ok = false;
			printf("# reference text %d \"%s\": %d ids (want %d), cosine %.7f\n", nt, text, ng, nw,
				   ne == E ? cosine(e1, want, E) : 0.0);
		}
		if (nt < 3)
		{
			memcpy(ids[nt], got, sizeof(int32_t) * ng);
			n[nt] = ng;
		}
		nt++;
		free(text);
		s = q;
	}
	free(json);
	CHECK(nt >= 3 && ref_ok, "%d tiny-model texts: ids and embeddings (cosine >= 0.99999) match the float64 Python reference", nt);

	if (nt >= 3)
	{
		const int32_t *const all[3] = {ids[0], ids[1], ids[2]};

		/* packed: three texts in one forward pass; and the same on two threads */
		CHECK(lm_bert_embed(c1, all, n, 3, e3, err, sizeof(err)) == 0, "three texts embed in one call (%s)", err);
		CHECK(lm_bert_embed(c2, all, n, 3, e2t, err, sizeof(err)) == 0, "and on two threads");
		for (int i = 0; i < 3; i++)
		{
			embed_one(c1, ids[i], n[i], e1);
			if (memcmp(e1, e3 + (size_t) i * E, sizeof(float) * E) != 0)
				alone_ok = false;
		}
		CHECK(alone_ok, "a text's embedding is bit-identical alone and packed with others");
		CHECK(memcmp(e3, e2t, sizeof(float) * 3 * E) == 0, "embeddings are bit-identical on one and two threads");
		/* the F32 GEMM and attention give the same floats on every kernel path */
		{
			lm_isa		best = lm_kernels_best_isa(),
						prev = lm_kernels_isa();
			bool		same = true;

			for (int isa = LM_ISA_SCALAR; isa <= (int) best; isa++)
			{
				lm_kernels_force_isa((lm_isa) isa);
				if (lm_bert_embed(c2, all, n, 3, e2t, err, sizeof(err)) != 0 ||
					memcmp(e3, e2t, sizeof(float) * 3 * E) != 0)
					same = false;
			}
			lm_kernels_force_isa(prev);
			CHECK(same, "embeddings are bit-identical on the scalar%s paths", best >= LM_ISA_AVX512 ? ", AVX2 and AVX-512" :
				  best >= LM_ISA_AVX2 ? " and AVX2" : "");
			/* the same with F32 layer products */
			same = true;
			lm_bert_set_f32(c2, true);
			for (int isa = LM_ISA_SCALAR; isa <= (int) best; isa++)
			{
				lm_kernels_force_isa((lm_isa) isa);
				if (lm_bert_embed(c2, all, n, 3, isa == LM_ISA_SCALAR ? e3f : e2t, err, sizeof(err)) != 0 ||
					(isa > LM_ISA_SCALAR && memcmp(e3f, e2t, sizeof(float) * 3 * E) != 0))
					same = false;
			}
			lm_kernels_force_isa(prev);
			lm_bert_set_f32(c2, false);
			CHECK(same, "with F32 products too, embeddings are bit-identical on every path");
		}
		{
			double		norm = 0;

			for (int i = 0; i < E; i++)
				norm += (double) e3[i] * e3[i];
			CHECK(fabs(sqrt(norm) - 1.0) < 1e-6, "embeddings have unit length (%.8f)", sqrt(norm));
		}
	}

	/* truncation: a text longer than max_seq_len equals its first tokens and the final [SEP] */
	{
		int			L = m->cfg.max_seq_len,
					nl = 0;
		int32_t    *lng = malloc(sizeof(int32_t) * (L + 40));
		int32_t    *cut = malloc(sizeof(int32_t) * L);
		float	   *ea = calloc(E, sizeof(float));

		lng[nl++] = lm_tokenizer_bos(t);
		while (nl < L + 39)
		{
			lng[nl] = 10 + nl % 20;
			nl++;
		}
		lng[nl++] = lm_tokenizer_eos(t);
		memcpy(cut, lng, sizeof(int32_t) * (L - 1));
		cut[L - 1] = lm_tokenizer_eos(t);
		CHECK(embed_one(c1, lng, nl, e1) == 0 && embed_one(c1, cut, L, ea) == 0 &&
			  memcmp(e1, ea, sizeof(float) * E) == 0,
			  "a text of %d tokens is cut to max_seq_len %d, keeping [SEP] at the end", nl, L);
		free(lng);
		free(cut);
		free(ea);
	}

	/* batch checks: no logits, whole texts only */
	{
		lm_batch   *b = lm_batch_create(4);

		lm_batch_add(b, 3, 0, 0, true);
		CHECK(lm_model_forward(c1, b, err, sizeof(err)) == -1 && strstr(err, "not text") != NULL,
			  "an encoder refuses to compute logits (%s)", err);
		lm_batch_clear(b);
		lm_batch_add_token(b, 3, 1, 0, LM_OUT_HIDDEN, LM_PREFILL_AUTO);
		CHECK(lm_model_forward(c1, b, err, sizeof(err)) == -1 && strstr(err, "whole texts") != NULL,
			  "an encoder batch must start its texts at position 0 (%s)", err);
		{
			int			zero = 0;
			const int32_t *const none[1] = {ids[0]};

			CHECK(lm_bert_embed(c1, none, &zero, 1, e1, err, sizeof(err)) == -1,
				  "a text without tokens is refused (%s)", err);
		}
		lm_batch_free(b);
	}
	free(e1);
	free(e3);
	free(e3f);
	free(e2t);
	lm_context_free(c1);
	lm_context_free(c2);
	lm_tokenizer_free(t);
	lm_model_free(m);
}

/* An abort check that says stop at its n-th call and notes a call from any thread but the test's. */
typedef struct abort_probe
{
	int			calls;			/* calls so far */
	int			stop_at;		/* the call that says stop (0: never) */
	pthread_t	owner;			/* the thread that may call */
	bool		other_thread;	/* called from another thread */
} abort_probe;

/* lm_abort_fn of abort_probe. */
static bool
probe_abort(void *arg)
{
	abort_probe *p = arg;

	if (!pthread_equal(pthread_self(), p->owner))
		p->other_thread = true;
	return p->stop_at > 0 && ++p->calls >= p->stop_at;
}

/*
 * Thread groups (model_bert.c): on two threads, a call of many texts gives
 * each thread whole texts; a call that cannot be balanced splits its passes
 * across the threads.  Both give one thread's floats, and the host's abort
 * check runs on the calling thread only and stops every group.
 */
static void
test_thread_groups(const char *gguf)
{
	enum
	{
		N_TEXTS = 40
	};
	char		err[512];
	lm_model   *m = lm_model_open(gguf, err, sizeof(err));
	lm_tokenizer *t = m ? lm_tokenizer_load(m->gguf, err, sizeof(err)) : NULL;
	lm_context_params p = lm_context_default_params();
	lm_context *c1,
			   *c2;
	int32_t		ids[N_TEXTS][24];
	const int32_t *all[N_TEXTS];
	int			n[N_TEXTS],
				E;
	float	   *e1,
			   *e2;
	abort_probe probe = {0, 0, pthread_self(), false};

	CHECK(m != NULL && t != NULL, "tiny bert model and vocabulary load (%s)", err);
	if (!m || !t)
	{
		lm_tokenizer_free(t);
		lm_model_free(m);
		return;
	}
	E = m->cfg.n_embd;
	c1 = lm_context_create(m, &p, err, sizeof(err));
	p.n_threads = 2;
	c2 = lm_context_create(m, &p, err, sizeof(err));
	e1 = calloc((size_t) N_TEXTS * E, sizeof(float));
	e2 = calloc((size_t) N_TEXTS * E, sizeof(float));
	/* [CLS], 1 to 20 ordinary ids, [SEP] (some longer than max_seq_len: they are cut) */
	for (int i = 0; i < N_TEXTS; i++)
	{
		n[i] = 0;
		ids[i][n[i]++] = lm_tokenizer_bos(t);
		for (int k = 0; k < 1 + (i * 7) % 20; k++)
			ids[i][n[i]++] = 6 + (i * 31 + k * 17) % (m->cfg.n_vocab - 6);
		ids[i][n[i]++] = lm_tokenizer_eos(t);
		all[i] = ids[i];
	}
	CHECK(c1 && c2 && lm_bert_embed(c1, all, n, N_TEXTS, e1, err, sizeof(err)) == 0 &&
		  lm_bert_groups_run(c1) == 1, "one thread embeds %d texts in its passes (%s)", N_TEXTS, err);
	CHECK(c2 && lm_bert_embed(c2, all, n, N_TEXTS, e2, err, sizeof(err)) == 0 && lm_bert_groups_run(c2) == 2,
		  "two threads embed %d texts as two groups of whole texts (%s)", N_TEXTS, err);
	CHECK(memcmp(e1, e2, sizeof(float) * N_TEXTS * E) == 0,
		  "thread groups give the floats of one thread, every text in its place");
	lm_bert_set_f32(c1, true);
	lm_bert_set_f32(c2, true);
	CHECK(lm_bert_embed(c1, all, n, N_TEXTS, e1, err, sizeof(err)) == 0 &&
		  lm_bert_embed(c2, all, n, N_TEXTS, e2, err, sizeof(err)) == 0 && lm_bert_groups_run(c2) == 2 &&
		  memcmp(e1, e2, sizeof(float) * N_TEXTS * E) == 0, "and with F32 products (the groups take the setting)");
	lm_bert_set_f32(c1, false);
	lm_bert_set_f32(c2, false);
	CHECK(lm_bert_embed(c1, all, n, N_TEXTS, e1, err, sizeof(err)) == 0, "one thread again, int16 products");

	/* a long text and a short one cannot be balanced: the passes are split across the threads */
	{
		const int32_t *two[2] = {ids[17], ids[0]};
		int			n2[2] = {n[17], n[0]};

		CHECK(lm_bert_embed(c2, two, n2, 2, e2, err, sizeof(err)) == 0 && lm_bert_groups_run(c2) == 1 &&
			  memcmp(e2, e1 + (size_t) 17 * E, sizeof(float) * E) == 0 && memcmp(e2 + E, e1, sizeof(float) * E) == 0,
			  "a long and a short text run as passes split across the threads (%d groups), same floats",
			  lm_bert_groups_run(c2));
	}

	/* the host's abort check: only ever on the calling thread, and it stops both groups */
	lm_context_set_abort(c2, probe_abort, &probe);
	probe.stop_at = 3;
	CHECK(lm_bert_embed(c2, all, n, N_TEXTS, e2, err, sizeof(err)) == -2 && strstr(err, "stopped") != NULL,
		  "the abort check stops a call of thread groups (%s)", err);
	probe.stop_at = 0;
	memset(e2, 0, sizeof(float) * N_TEXTS * E);
	CHECK(lm_bert_embed(c2, all, n, N_TEXTS, e2, err, sizeof(err)) == 0 && lm_bert_groups_run(c2) == 2 &&
		  memcmp(e1, e2, sizeof(float) * N_TEXTS * E) == 0, "the next call runs whole again, with the same floats");
	CHECK(!probe.other_thread && probe.calls >= 3, "the host's abort check ran only on the calling thread (%d calls)",
		  probe.calls);
	CHECK(lm_context_dynamic_bytes(c2) > 0 && lm_context_trim(c2, 0) > 0 && lm_context_dynamic_bytes(c2) == 0,
		  "trimming the context gives back its groups' output rows too");
	free(e1);
	free(e2);
	lm_context_free(c1);
	lm_context_free(c2);
	lm_tokenizer_free(t);
	lm_model_free(m);
}

/* ---- the real model against ../shared/golden/minilm ---- */

/* Token ids and embeddings of every golden text. */
static void
test_golden(const char *model_path, const char *golden)
{
	char		err[512];
	lm_model   *m;
	lm_tokenizer *t;
	lm_context_params p = lm_context_default_params();
	lm_context *ctx;
	char	   *json = slurp(golden);
	const char *s = json;
	float		e[384],
				e16[384];
	double		want[400];
	int			nt = 0;
	bool		differ = false;

	if (json == NULL)
	{
		SKIP("no golden file %s", golden);
		return;
	}
	m = lm_model_open(model_path, err, sizeof(err));
	CHECK(m != NULL && m->cfg.n_embd == 384 && m->cfg.max_seq_len == 256,
		  "all-MiniLM-L6-v2 loads: bert, 384 wide, max_seq_len 256 (%s)", m ? "" : err);
	if (!m)
	{
		free(json);
		return;
	}
	t = lm_tokenizer_load(m->gguf, err, sizeof(err));
	p.n_threads = 2;
	ctx = lm_context_create(m, &p, err, sizeof(err));
	s = strstr(s, "\"results\"");
	while (t && ctx && s && (s = strstr(s, "\"text\":")) != NULL)
	{
		const char *q = strchr(s + 7, '"');
		size_t		len;
		char	   *text = json_string(&q, &len);
		double		wid[MAX_IDS];
		int			nw = json_numbers(&q, "\"token_ids\"", wid, MAX_IDS),
					ne = json_numbers(&q, "\"embedding\"", want, 400);
		int32_t		got[MAX_IDS];
		int			ng = tokenize(t, text, len, got),
					nc = ng < 256 ? ng : 256;
		bool		ids_ok = nw == nc;
		double		cs;

		/* the golden ids are truncated to 256: the first 255 and [SEP] */
		for (int i = 0; ids_ok && i < nc; i++)
			ids_ok = (int) wid[i] == (i == nc - 1 ? got[ng - 1] : got[i]);
		CHECK(ids_ok, "golden %d \"%.30s\": token ids identical (%d of %d untruncated)", nt, text, nc, ng);
		/* the default 13-bit integer products, then F32 (whose floats stay within 1e-5) */
		for (int f32 = 0; f32 < 2; f32++)
		{
			double		dmax = 0.0,
						dlim = f32 ? 1e-5 : 2e-3;

			lm_bert_set_f32(ctx, f32);
			cs = (ne == 384 && embed_one(ctx, got, ng, e) == 0) ? cosine(e, want, 384) : -2.0;
			for (int i = 0; i < 384 && cs > -2.0; i++)
				dmax = fmax(dmax, fabs(e[i] - want[i]));
			if (f32)
				differ |= memcmp(e, e16, sizeof(e)) != 0;
			else
				memcpy(e16, e, sizeof(e));
			CHECK(cs >= 0.9999 && dmax <= dlim,
				  "golden %d, %s products: cosine %.9f >= 0.9999, max |delta| %.2g <= %.0e with the reference embedding",
				  nt, f32 ? "F32" : "int16", cs, dmax, dlim);
		}
		lm_bert_set_f32(ctx, false);
		free(text);
		s = q;
		nt++;
	}
	CHECK(nt >= 12, "%d golden texts checked", nt);
	CHECK(differ, "the int16 and F32 products give different floats (lm_bert_set_f32 takes effect)");
	lm_context_free(ctx);
	lm_tokenizer_free(t);
	lm_model_free(m);
	free(json);
}

int
main(void)
{
	const char *shared = unit_shared_dir();
	const char *mp = getenv("LMGEN_MINILM");
	char		path[1024],
				cmd[2048];
	FILE	   *f;

	/* the tiny model: written by test/bert_tiny.py, converted by .ci/bert_to_gguf.py */
	snprintf(cmd, sizeof(cmd),
			 "rm -rf test/tmp/bert-tiny && mkdir -p test/tmp && python3 test/bert_tiny.py test/tmp/bert-tiny > /dev/null && "
			 "python3 .ci/bert_to_gguf.py test/tmp/bert-tiny test/tmp/bert-tiny.gguf --name bert-tiny > /dev/null");
	CHECK(system(cmd) == 0, "test/bert_tiny.py writes a tiny model and .ci/bert_to_gguf.py converts it");
	test_tiny_model("test/tmp/bert-tiny.gguf", "test/tmp/bert-tiny/reference.json");
	test_thread_groups("test/tmp/bert-tiny.gguf");

	if (mp == NULL || *mp == '\0')
		mp = MINILM_DEFAULT_PATH;
	snprintf(path, sizeof(path), "%s/golden/minilm/all-MiniLM-L6-v2.public.json", shared);
	if ((f = fopen(mp, "rb")) == NULL)
		SKIP("all-MiniLM-L6-v2 not installed at %s (make model)", mp);
	else
	{
		fclose(f);
		test_golden(mp, path);
	}
	return unit_done();
}
