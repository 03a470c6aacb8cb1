/*
 * test_device_host.c — the device seam (device.h, context.c's device mode,
 * kvcache.c's block store) through the host-memory test device
 * (lmgen_hostdev.so): a context on the device gives logits, hidden states
 * and argmax bit-identical to a plain CPU context, batch after batch, on
 * SmolLM2 and stories260K (and Gemma 3 when it is installed): several
 * sequences of different lengths in one batch, greedy decoding, a batch
 * longer than n_batch (several device calls), a shared prefix written into
 * (copy-on-write on the device), and a rewind.  Then the error paths: a
 * KV pool too small (a clear error, nothing changed), a failing forward
 * (the error, the device still usable), a poisoning fault (unhealthy), the
 * abort check between device calls, an encoder refused, a missing backend
 * refused.  Last, lmgen-cli's --device: greedy generation through the
 * host device prints the CPU's tokens, and a missing backend is a clear
 * error.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "device.h"
#include "kvcache.h"
#include "model.h"
#include "unit.h"

#define HOSTDEV "test/unit/lmgen_hostdev.so"
#define N_BATCH 48
#define N_SEQ 4
#define N_CTX 256

/* Both contexts of one comparison. */
typedef struct pair
{
	const lm_model *m;			/* the model */
	lm_context *cpu;			/* plain CPU context */
	lm_context *dev;			/* context on the host device */
} pair;

/* A token id for sequence s at position p (any valid id; prompts differ per sequence). */
static int32_t
tok(const lm_model *m, int s, int p)
{
	return (int32_t) ((s * 7919 + p * 104729 + 13) % (m->cfg.n_vocab - 3)) + 1;
}

/*
 * Run batch b on both contexts; true when both succeed and every output
 * (logits, hidden state, argmax) is bit-identical.  *argmax_out gets each
 * token's greedy token (or -1).
 */
static bool
same_forward(pair *p, const lm_batch *b, int32_t *argmax_out, char *why, size_t whylen)
{
	char		e1[256] = "",
				e2[256] = "";
	int			r1 = lm_model_forward(p->cpu, b, e1, sizeof(e1)),
				r2 = lm_model_forward(p->dev, b, e2, sizeof(e2));
	const lm_model_config *c = &p->m->cfg;

	if (r1 != 0 || r2 != 0)
	{
		snprintf(why, whylen, "cpu %d (%s), device %d (%s)", r1, e1, r2, e2);
		return false;
	}
	for (int i = 0; i < b->n_tokens; i++)
	{
		const float *l1 = lm_context_logits(p->cpu, i),
				   *l2 = lm_context_logits(p->dev, i),
				   *h1 = lm_context_hidden(p->cpu, i),
				   *h2 = lm_context_hidden(p->dev, i);

		if ((l1 == NULL) != (l2 == NULL) || (h1 == NULL) != (h2 == NULL) ||
			(l1 && memcmp(l1, l2, sizeof(float) * c->n_vocab) != 0) ||
			(h1 && memcmp(h1, h2, sizeof(float) * c->n_embd) != 0))
		{
			snprintf(why, whylen, "outputs of token %d differ", i);
			return false;
		}
		if (lm_context_argmax(p->cpu, i) != lm_context_argmax(p->dev, i))
		{
			snprintf(why, whylen, "argmax of token %d: cpu %d, device %d", i,
					 lm_context_argmax(p->cpu, i), lm_context_argmax(p->dev, i));
			return false;
		}
		if (argmax_out)
			argmax_out[i] = lm_context_argmax(p->cpu, i);
	}
	snprintf(why, whylen, "%d tokens", b->n_tokens);
	return true;
}

/* Lengths of both contexts' sequences agree. */
static bool
same_lengths(pair *p)
{
	for (int s = 0; s < N_SEQ; s++)
		if (lm_kv_seq_len(lm_context_kv(p->cpu), s) != lm_kv_seq_len(lm_context_kv(p->dev), s))
			return false;
	return true;
}

/* lmgen_hostdev_host_blocks of the loaded host device (set in main). */
static int	(*host_blocks) (void) = NULL;

/* Upload m and make a CPU context and a device context of the same sizes into p; the device model, or NULL. */
static lm_device_model *
open_pair(const lm_device_ops *ops, lm_device *dev, const lm_model *m, pair *p, char *err, size_t errlen)
{
	lm_context_params cp = lm_context_default_params();
	lm_device_model *dm;

	cp.n_ctx = N_CTX;
	cp.n_seq_max = N_SEQ;
	cp.n_batch = N_BATCH;
	dm = ops->upload(dev, m, 0.5, 0, N_BATCH, N_SEQ, N_CTX, err, errlen);
	if (!dm)
		return NULL;
	p->cpu = lm_context_create(m, &cp, err, errlen);
	cp.device = ops;
	cp.device_model = dm;
	p->dev = lm_context_create(m, &cp, err, errlen);
	return dm;
}

/* Generation, sharing, rewinds and long batches on the device equal the CPU bit for bit. */
static void
check_agreement(const lm_device_ops *ops, lm_device *dev, const char *label, const lm_model *m)
{
	char		err[256] = "",
				why[256] = "";
	lm_device_model *dm;
	pair		p = {m, NULL, NULL};
	lm_batch   *b = lm_batch_create(256);
	int			len[3] = {5, 23, 40};
	int32_t		next[256];
	bool		ok = true;

	dm = open_pair(ops, dev, m, &p, err, sizeof(err));
	CHECK(dm != NULL && ops->kv_blocks(dm) > 0, "%s: the model is uploaded to the host device (%s)", label, err);
	if (!dm)
		return;
	CHECK(p.cpu && p.dev && lm_context_device(p.dev) == ops && lm_context_device(p.cpu) == NULL,
		  "%s: a CPU context and a device context are created (%s)", label, err);
	if (!p.cpu || !p.dev)
		goto done;

	/* three prompts of different lengths in one batch (40 + 23 + 5 > n_batch: several device calls) */
	lm_batch_clear(b);
	for (int s = 0; s < 3; s++)
		for (int i = 0; i < len[s]; i++)
			lm_batch_add_token(b, tok(m, s, i), i, s, i == len[s] - 1 ? LM_OUT_LOGITS : i == 2 ? LM_OUT_HIDDEN : LM_OUT_NONE,
							   LM_PREFILL_AUTO);
	CHECK(same_forward(&p, b, next, why, sizeof(why)) && same_lengths(&p),
		  "%s: prompts of 5, 23 and 40 tokens in one batch give bit-identical logits, hidden states and argmax (%s)",
		  label, why);
	CHECK(host_blocks() == 1, "%s: the device context's logits rows are the device's host memory (%d blocks)", label,
		  host_blocks());

	/* greedy decoding of the three together */
	for (int step = 0; step < 6 && ok; step++)
	{
		int32_t		t[3];

		for (int s = 0, k = 0; s < 3; s++)
		{
			for (; k < b->n_tokens; k++)
				if (b->seq_id[k] == s && b->out[k] == LM_OUT_LOGITS)
					break;
			t[s] = next[k];
		}
		lm_batch_clear(b);
		for (int s = 0; s < 3; s++)
			lm_batch_add(b, t[s], len[s]++, s, true);
		ok = same_forward(&p, b, next, why, sizeof(why));
	}
	CHECK(ok && same_lengths(&p), "%s: 6 greedy steps of 3 sequences agree token for token (%s)", label, why);

	/* sequence 3 shares 21 positions of sequence 1 (mid-block) and writes after them: copy-on-write */
	CHECK(lm_kv_seq_share(lm_context_kv(p.cpu), 1, 3, 21) && lm_kv_seq_share(lm_context_kv(p.dev), 1, 3, 21),
		  "%s: a prefix of 21 positions is shared on both", label);
	lm_batch_clear(b);
	for (int i = 21; i < 30; i++)
		lm_batch_add(b, tok(m, 3, i), i, 3, i == 29);
	lm_batch_add(b, tok(m, 1, 99), len[1]++, 1, true);
	CHECK(same_forward(&p, b, NULL, why, sizeof(why)) && same_lengths(&p),
		  "%s: writing after a shared prefix (a block copied on the device) agrees, and its sharer goes on (%s)",
		  label, why);

	/* rewind sequence 2 to position 10 with other tokens */
	lm_batch_clear(b);
	for (int i = 10; i < 16; i++)
		lm_batch_add(b, tok(m, 9, i), i, 2, i == 15);
	CHECK(same_forward(&p, b, NULL, why, sizeof(why)) && lm_kv_seq_len(lm_context_kv(p.dev), 2) == 16 &&
		  same_lengths(&p),
		  "%s: a rewind to position 10 agrees (%s)", label, why);

	/* one sequence alone over 97 positions: device calls of 48, 48 and 1 token (the lone last token keeps the prompt's value order) */
	lm_kv_seq_clear(lm_context_kv(p.cpu), 0);
	lm_kv_seq_clear(lm_context_kv(p.dev), 0);
	lm_batch_clear(b);
	for (int i = 0; i < 97; i++)
		lm_batch_add_token(b, tok(m, 5, i), i, 0, i % 33 == 0 || i == 96 ? LM_OUT_LOGITS : LM_OUT_NONE,
						   LM_PREFILL_AUTO);
	CHECK(same_forward(&p, b, NULL, why, sizeof(why)) && same_lengths(&p),
		  "%s: a 97-token prompt cut into device calls of %d agrees (%s)", label, N_BATCH, why);

	/* everything goes back to the device pool */
	lm_kv_clear(lm_context_kv(p.dev));
	lm_context_trim(p.dev, 0);
	CHECK(lm_kv_bytes_held(lm_context_kv(p.dev)) == 0, "%s: a trimmed device context holds no block", label);

done:
	lm_context_free(p.cpu);
	lm_context_free(p.dev);
	CHECK(host_blocks() == 0, "%s: freeing the device context gives its host memory back (%d blocks)", label,
		  host_blocks());
	ops->unload(dm);
	lm_batch_free(b);
}

/* Where the device gives no host memory, the context's logits are malloc'ed and still agree. */
static void
check_no_host_memory(const lm_device_ops *ops, lm_device *dev, const lm_model *m)
{
	char		err[256] = "",
				why[256] = "";
	lm_device_model *dm;
	pair		p = {m, NULL, NULL};
	lm_batch   *b = lm_batch_create(64);

	setenv("LMGEN_HOSTDEV_NO_HOST_MEMORY", "1", 1);
	dm = open_pair(ops, dev, m, &p, err, sizeof(err));
	if (dm && p.cpu && p.dev)
	{
		for (int s = 0; s < 2; s++)
			for (int i = 0; i < 7; i++)
				lm_batch_add(b, tok(m, s, i), i, s, i == 6);
		CHECK(same_forward(&p, b, NULL, why, sizeof(why)) && host_blocks() == 0,
			  "without the device's host memory the logits come from malloc and agree (%s)", why);
	}
	else
		CHECK(false, "contexts for the no-host-memory check (%s)", err);
	unsetenv("LMGEN_HOSTDEV_NO_HOST_MEMORY");
	lm_context_free(p.cpu);
	lm_context_free(p.dev);
	ops->unload(dm);
	lm_batch_free(b);
}

/* Abort check that always says stop. */
static bool
always_stop(void *arg)
{
	(*(int *) arg)++;
	return true;
}

/* A pool too small, failing forwards, a poisoned device, the abort check. */
static void
check_errors(const lm_device_ops *ops, const lm_model *m, void (*fail)(int, bool))
{
	char		err[256] = "";
	lm_context_params cp = lm_context_default_params();
	lm_device  *dev = ops->open(0, err, sizeof(err));
	size_t		bb = lm_kv_block_bytes(m);
	lm_device_model *dm = dev ? ops->upload(dev, m, 1.0, 2 * bb, N_BATCH, N_SEQ, N_CTX, err, sizeof(err)) : NULL;
	lm_context *ctx;
	lm_batch   *b = lm_batch_create(64);
	int			rc,
				calls = 0;
	lm_device_info info;

	CHECK(dm != NULL && ops->kv_blocks(dm) == 2, "a device pool capped at 2 blocks holds 2 (%s)", err);
	if (!dm)
		return;
	cp.n_ctx = N_CTX;
	cp.n_seq_max = N_SEQ;
	cp.n_batch = N_BATCH;
	cp.device = ops;
	cp.device_model = dm;
	ctx = lm_context_create(m, &cp, err, sizeof(err));
	CHECK(ctx != NULL, "a context on the small pool is created (%s)", err);
	if (!ctx)
		return;

	/* 40 positions need 3 blocks */
	for (int i = 0; i < 40; i++)
		lm_batch_add(b, tok(m, 0, i), i, 0, i == 39);
	rc = lm_model_forward(ctx, b, err, sizeof(err));
	CHECK(rc == -1 && strstr(err, "KV cache would need") != NULL, "a batch over the device pool is refused (%s)", err);
	CHECK(lm_kv_seq_len(lm_context_kv(ctx), 0) == 0 && lm_kv_bytes_held(lm_context_kv(ctx)) == 0,
		  "after the refusal nothing changed (no block held, sequence empty)");
	memset(&info, 0, sizeof(info));
	rc = ops->info(dev, &info, err, sizeof(err));
	CHECK(rc && info.mem_used_by_us == 2 * bb && strlen(info.name) > 0,
		  "the device reports its name and the memory of the pool (%s, %zu bytes)", info.name, info.mem_used_by_us);

	/* a failing forward: an error, the device still healthy and usable */
	lm_batch_clear(b);
	for (int i = 0; i < 20; i++)
		lm_batch_add(b, tok(m, 0, i), i, 0, i == 19);
	fail(1, false);
	rc = lm_model_forward(ctx, b, err, sizeof(err));
	CHECK(rc == -1 && strstr(err, "device failed a forward pass") && strstr(err, "simulated failure"),
		  "a failing device forward returns -1 with the device's message (%s)", err);
	CHECK(ops->healthy(dev), "after a plain failure the device is healthy");
	lm_kv_seq_clear(lm_context_kv(ctx), 0);
	rc = lm_model_forward(ctx, b, err, sizeof(err));
	CHECK(rc == 0 && lm_context_argmax(ctx, 19) >= 0 && lm_kv_seq_len(lm_context_kv(ctx), 0) == 20,
		  "the next forward on the same context works (%s)", rc ? err : "ok");

	/* the abort check runs before each device call */
	lm_context_set_abort(ctx, always_stop, &calls);
	lm_batch_clear(b);
	lm_batch_add(b, tok(m, 0, 20), 20, 0, true);
	rc = lm_model_forward(ctx, b, err, sizeof(err));
	CHECK(rc == -2 && calls == 1, "the abort check stops a device forward (-2, %s)", err);
	lm_context_set_abort(ctx, NULL, NULL);

	/* a poisoning fault */
	fail(1, true);
	rc = lm_model_forward(ctx, b, err, sizeof(err));
	CHECK(rc == -1 && !ops->healthy(dev), "a poisoning fault fails the forward and the device turns unhealthy (%s)",
		  err);

	lm_context_free(ctx);
	{
		uint64_t	a = ops->kv_alloc(dm),
					a2 = ops->kv_alloc(dm),
					a3 = ops->kv_alloc(dm);

		CHECK(a && a2 && !a3, "freeing the context gave both blocks back to the device pool");
		ops->kv_free(dm, a);
		ops->kv_free(dm, a2);
	}
	ops->unload(dm);
	ops->close(dev);
	lm_batch_free(b);
}

/* Open a model from a path; NULL (with a note) when it is not there. */
static lm_model *
open_model(const char *path)
{
	char		err[256];
	lm_model   *m;

	if (!unit_readable(path))
		return NULL;
	m = lm_model_open(path, err, sizeof(err));
	CHECK(m != NULL, "%s loads (%s)", path, m ? "ok" : err);
	return m;
}

/* Output of a shell command (stdout and stderr), malloc'd; NULL when it cannot run. */
static char *
command_output(const char *cmd, int *status)
{
	FILE	   *f = popen(cmd, "r");
	char	   *buf;
	size_t		n = 0;

	if (!f)
		return NULL;
	buf = calloc(1, 65536);
	if (buf)
		n = fread(buf, 1, 65535, f);
	*status = pclose(f);
	if (buf)
		buf[n] = '\0';
	return buf;
}

/* lmgen-cli run and bench with --device. */
static void
check_cli(const char *model)
{
	char		cmd[1024];
	char	   *cpu,
			   *dev,
			   *bad,
			   *bench;
	int			s1,
				s2,
				s3,
				s4;

	if (!unit_readable("./lmgen-cli") || !unit_readable(model))
	{
		SKIP("lmgen-cli or stories260K missing");
		return;
	}
	snprintf(cmd, sizeof(cmd), "./lmgen-cli run %s -p 'Once upon a time' -n 32 --ids -q 2>&1", model);
	cpu = command_output(cmd, &s1);
	snprintf(cmd, sizeof(cmd), "./lmgen-cli run %s -p 'Once upon a time' -n 32 --ids -q --device %s 2>&1", model, HOSTDEV);
	dev = command_output(cmd, &s2);
	CHECK(cpu && dev && s1 == 0 && s2 == 0 && strlen(cpu) > 40 && strcmp(cpu, dev) == 0,
		  "lmgen-cli run --device prints the CPU's 32 greedy tokens (%s)", dev ? dev : "no output");
	snprintf(cmd, sizeof(cmd), "./lmgen-cli run %s -p 'x' -n 2 --device /nonexistent/lmgen_cuda.so 2>&1", model);
	bad = command_output(cmd, &s3);
	CHECK(bad && s3 != 0 && strstr(bad, "--device: cannot load device backend"),
		  "lmgen-cli --device with a missing backend fails with a message (%s)", bad ? bad : "");
	snprintf(cmd, sizeof(cmd), "./lmgen-cli bench %s -p 16 -n 8 -r 1 --device %s 2>&1", model, HOSTDEV);
	bench = command_output(cmd, &s4);
	CHECK(bench && s4 == 0 && strstr(bench, "device lmgen host test device") && strstr(bench, "tg8 "),
		  "lmgen-cli bench --device runs on the device");
	if (bench)
		printf("# %s", bench);
	free(cpu);
	free(dev);
	free(bad);
	free(bench);
}

int
main(void)
{
	char		err[256] = "",
				path[512];
	const lm_device_ops *ops;
	lm_device  *dev;
	lm_model   *small,
			   *smol,
			   *bert;
	void	   *h;
	void		(*fail) (int, bool) = NULL;

	CHECK(lm_device_load("/nonexistent/lmgen_cuda.so", err, sizeof(err)) == NULL && strstr(err, "cannot load"),
		  "a missing backend is refused with a message (%s)", err);
	ops = lm_device_load(HOSTDEV, err, sizeof(err));
	CHECK(ops != NULL, "the host device loads (%s)", ops ? ops->name : err);
	if (!ops)
		return unit_done();
	h = dlopen(HOSTDEV, RTLD_NOW | RTLD_NOLOAD);
	if (h)
	{
		*(void **) &fail = dlsym(h, "lmgen_hostdev_fail");
		*(void **) &host_blocks = dlsym(h, "lmgen_hostdev_host_blocks");
	}
	CHECK(fail != NULL && host_blocks != NULL, "the host device's controls are found");
	CHECK(ops->count(err, sizeof(err)) == 1, "the host device counts one device");
	err[0] = '\0';
	dev = ops->open(0, err, sizeof(err));
	CHECK(dev != NULL && ops->healthy(dev), "device 0 opens healthy (%s)", err);
	if (!dev || !fail || !host_blocks)
		return unit_done();

	snprintf(path, sizeof(path), "%s/models/stories260K.gguf", unit_shared_dir());
	small = open_model(path);
	if (small)
	{
		check_agreement(ops, dev, "stories260K", small);
		check_no_host_memory(ops, dev, small);
	}
	else
		SKIP("stories260K not found (set LMGEN_SHARED)");
	smol = open_model(LMGEN_MODEL_DIR "/default.gguf");
	if (smol)
	{
		check_agreement(ops, dev, "SmolLM2", smol);
		check_no_host_memory(ops, dev, smol);
		check_errors(ops, smol, fail);
	}
	else
		SKIP("the default model is not installed");

	/* gemma3 (soft-capped logits, sliding-window layers) when installed */
	{
		lm_model   *gemma = open_model(LMGEN_MODEL_DIR "/gemma-3-270m-q4_k_m.gguf");

		if (gemma)
		{
			check_agreement(ops, dev, "Gemma 3", gemma);
			lm_model_free(gemma);
		}
		else
			SKIP("Gemma 3 is not installed");
	}

	/* an encoder stays on the CPU */
	bert = open_model(LMGEN_MODEL_DIR "/all-MiniLM-L6-v2.F32.gguf");
	if (bert)
	{
		lm_context_params cp = lm_context_default_params();

		cp.device = ops;
		CHECK(lm_context_create(bert, &cp, err, sizeof(err)) == NULL && strstr(err, "CPU only"),
			  "a device context for an encoder is refused (%s)", err);
		CHECK(ops->upload(dev, bert, 0.5, 0, 8, 1, 64, err, sizeof(err)) == NULL,
			  "the host device refuses to upload an encoder (%s)", err);
		lm_model_free(bert);
	}
	else
		SKIP("the sentence-embedding model is not installed");
	ops->close(dev);
	lm_model_free(small);
	lm_model_free(smol);
	check_cli(path);
	return unit_done();
}
