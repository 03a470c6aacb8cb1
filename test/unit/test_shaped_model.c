/*
 * test_shaped_model.c — test/gpu/shaped_model.py writes models the engine
 * runs: from the committed descriptions of SmolLM2-135M Q4_1 and Gemma 3
 * 270M Q4_K_M (test/gpu/shapes), cut to 2 layers and 1,024 tokens, it
 * writes files that match their description (--check, which also fails on
 * a file of another shape), that are the same for the same seed, that load
 * with the real models' configuration and tensor types, and whose forward
 * pass gives finite logits of a sensible spread.  The GPU device check runs
 * on the full-size shaped models when the real ones cannot travel.
 */
#include <math.h>
#include <string.h>
#include <sys/wait.h>

#include "context.h"
#include "model.h"
#include "tokenizer.h"
#include "unit.h"

/* Layers and vocabulary of the reduced models. */
#define N_LAYERS 2
#define N_VOCAB 1024

/* What one description must give. */
typedef struct shaped_case
{
	const char *desc;			/* file under test/gpu/shapes */
	const char *arch;			/* general.architecture */
	int			n_embd;			/* embedding length */
	int			n_ff;			/* feed-forward length */
	lm_type		wq,				/* blk.0.attn_q type */
				ffn_down,		/* blk.0.ffn_down type */
				embd;			/* token_embd type */
} shaped_case;

/* Run shaped_model.py with args; its exit status (-1 when it could not run). */
static int
shaped(const char *args)
{
	char		cmd[2200];
	int			rc;

	snprintf(cmd, sizeof(cmd), "python3 test/gpu/shaped_model.py %s >/dev/null 2>&1", args);
	rc = system(cmd);
	return rc == -1 ? -1 : WEXITSTATUS(rc);
}

/* True when two files have the same bytes. */
static bool
same_file(const char *a, const char *b)
{
	FILE	   *fa = fopen(a, "rb"),
			   *fb = fopen(b, "rb");
	bool		same = fa && fb;
	int			ca,
				cb;

	while (same)
	{
		ca = fgetc(fa);
		cb = fgetc(fb);
		if (ca != cb)
			same = false;
		if (ca == EOF || cb == EOF)
			break;
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same;
}

/* Forward 8 tokens and check the last token's logits. */
static void
check_forward(const lm_model *m, const char *label)
{
	char		err[512] = "ok";
	lm_context_params p = lm_context_default_params();
	lm_context *ctx;
	lm_batch   *b = lm_batch_create(16);
	const float *lg;
	int			finite = 0,
				V = m->cfg.n_vocab;
	double		sum = 0.0,
				sq = 0.0,
				lo = INFINITY,
				hi = -INFINITY;

	p.n_ctx = 64;
	p.n_threads = 1;
	ctx = lm_context_create(m, &p, err, sizeof(err));
	CHECK(ctx != NULL && b != NULL, "%s: a context opens on the shaped model (%s)", label, ctx ? "ok" : err);
	if (!ctx || !b)
		return;
	for (int i = 0; i < 8; i++)
		lm_batch_add(b, (i * 389 + 7) % V, i, 0, i == 7);
	CHECK(lm_model_forward(ctx, b, err, sizeof(err)) == 0, "%s: forward pass of 8 tokens runs (%s)", label,
		  err);
	lg = lm_context_logits(ctx, 7);
	for (int i = 0; lg && i < V; i++)
		if (isfinite(lg[i]))
		{
			finite++;
			sum += lg[i];
			sq += (double) lg[i] * lg[i];
			lo = lg[i] < lo ? lg[i] : lo;
			hi = lg[i] > hi ? lg[i] : hi;
		}
	CHECK(finite == V, "%s: all %d logits are finite (%d are)", label, V, finite);
	if (finite == V)
	{
		double		sd = sqrt(sq / V - (sum / V) * (sum / V));

		/* random weights of the real magnitude: logits neither vanish nor explode */
		CHECK(sd > 1e-2 && sd < 1e3 && hi - lo > 1e-1,
			  "%s: logits have a sensible spread (sd %.3g, range %.3g .. %.3g)", label, sd, lo, hi);
	}
	lm_batch_free(b);
	lm_context_free(ctx);
}

/* Every check on one description. */
static void
check_case(const shaped_case *c, const char *dir)
{
	char		a[512],
				b[512],
				bad[512],
				args[2048],
				err[512];
	lm_model   *m;
	lm_tokenizer *tk;

	snprintf(a, sizeof(a), "%s/a.gguf", dir);
	snprintf(b, sizeof(b), "%s/b.gguf", dir);
	snprintf(bad, sizeof(bad), "%s/bad.gguf", dir);
	snprintf(args, sizeof(args), "test/gpu/shapes/%s %s --layers %d --vocab %d --seed 5", c->desc, a, N_LAYERS,
			 N_VOCAB);
	CHECK(shaped(args) == 0, "%s: shaped_model.py writes a %d-layer model (python3 needed)", c->desc, N_LAYERS);
	snprintf(args, sizeof(args), "--check test/gpu/shapes/%s %s --layers %d --vocab %d", c->desc, a, N_LAYERS,
			 N_VOCAB);
	CHECK(shaped(args) == 0, "%s: the file matches its description (keys, tensors, value RMS)", c->desc);
	snprintf(args, sizeof(args), "test/gpu/shapes/%s %s --layers %d --vocab %d --seed 5", c->desc, b, N_LAYERS,
			 N_VOCAB);
	CHECK(shaped(args) == 0 && same_file(a, b), "%s: the same seed writes the same bytes", c->desc);
	snprintf(args, sizeof(args), "test/gpu/shapes/%s %s --layers %d --vocab %d --seed 5", c->desc, bad, N_LAYERS,
			 N_VOCAB / 2);
	CHECK(shaped(args) == 0, "%s: a file of another vocabulary is written", c->desc);
	snprintf(args, sizeof(args), "--check test/gpu/shapes/%s %s --layers %d --vocab %d", c->desc, bad, N_LAYERS,
			 N_VOCAB);
	CHECK(shaped(args) == 1, "%s: --check rejects a file whose shapes differ from the description", c->desc);

	m = lm_model_open(a, err, sizeof(err));
	CHECK(m != NULL, "%s: the engine opens the shaped model (%s)", c->desc, m ? "ok" : err);
	if (m)
	{
		CHECK(strcmp(m->cfg.arch, c->arch) == 0 && m->cfg.n_layer == N_LAYERS && m->cfg.n_vocab == N_VOCAB &&
			  m->cfg.n_embd == c->n_embd && m->cfg.n_ff == c->n_ff,
			  "%s: configuration %s, %d layers, %d tokens, n_embd %d, n_ff %d", c->desc, m->cfg.arch,
			  m->cfg.n_layer, m->cfg.n_vocab, m->cfg.n_embd, m->cfg.n_ff);
		CHECK(m->layers[0].wq.type == c->wq && m->layers[0].ffn_down.type == c->ffn_down &&
			  m->tok_embd.type == c->embd,
			  "%s: tensor types of the real model (attn_q %s, ffn_down %s, token_embd %s)", c->desc,
			  lm_type_name(m->layers[0].wq.type), lm_type_name(m->layers[0].ffn_down.type),
			  lm_type_name(m->tok_embd.type));
		tk = lm_tokenizer_load(m->gguf, err, sizeof(err));
		CHECK(tk == NULL, "%s: no tokenizer in the file, and loading one fails cleanly (%s)", c->desc,
			  tk ? "loaded" : err);
		lm_tokenizer_free(tk);
		check_forward(m, c->desc);
		lm_model_free(m);
	}
	remove(a);
	remove(b);
	remove(bad);
}

int
main(void)
{
	static const shaped_case cases[] = {
		{"smollm2-135m-q4_1.json", "llama", 576, 1536, LM_TYPE_Q4_1, LM_TYPE_Q4_1, LM_TYPE_Q8_0},
		{"gemma-3-270m-q4_k_m.json", "gemma3", 640, 2048, LM_TYPE_Q5_0, LM_TYPE_Q6_K, LM_TYPE_Q8_0},
	};
	char		dir[] = "/tmp/lmgen-shaped-XXXXXX";

	if (!mkdtemp(dir))
	{
		CHECK(false, "temporary directory for shaped models");
		return unit_done();
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&cases[i], dir);
	rmdir(dir);
	return unit_done();
}
