/*
 * guc.c — the lmgen.* configuration parameters.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/guc.h"

#include "lmgen.h"
#include "shmem.h"

char	   *lmgen_model_dir = NULL;
char	   *lmgen_default_model = NULL;
char	   *lmgen_default_embedding_model = NULL;
char	   *lmgen_default_classify_model = NULL;
int			lmgen_max_tokens = LMGEN_DEFAULT_MAX_TOKENS;
int			lmgen_threads = LMGEN_DEFAULT_THREADS;
int			lmgen_context_overflow = LMGEN_OVERFLOW_ERROR;
int			lmgen_max_kv_memory = LMGEN_DEFAULT_MAX_KV_MEMORY;
int			lmgen_execution = LMGEN_EXECUTION_WORKER;
int			lmgen_max_requests = LMGEN_DEFAULT_MAX_REQUESTS;
int			lmgen_worker_threads = 0;
int			lmgen_kv_cache_size = LMGEN_DEFAULT_KV_CACHE_SIZE;
bool		lmgen_worker_share_prefixes = true;
bool		lmgen_shared_weights = true;
bool		lmgen_enable_batching = true;
int			lmgen_batch_rows = LMGEN_DEFAULT_BATCH_ROWS;
int			lmgen_classify_retrieval = LMGEN_RETRIEVAL_AUTO;
double		lmgen_classify_vote_weight = LMGEN_CLASSIFY_VOTE_WEIGHT_DEFAULT;
int			lmgen_headline_candidates = LMGEN_HEADLINE_CANDIDATES_DEFAULT;
int			lmgen_embedding_precision = LMGEN_EMBEDDING_INT16;
int			lmgen_device = LMGEN_DEVICE_AUTO;
double		lmgen_gpu_memory_fraction = LMGEN_DEFAULT_GPU_MEMORY_FRACTION;
char	   *lmgen_device_library = NULL;

static const struct config_enum_entry context_overflow_options[] = {
	{"error", LMGEN_OVERFLOW_ERROR, false},
	{"truncate", LMGEN_OVERFLOW_TRUNCATE, false},
	{NULL, 0, false}
};

static const struct config_enum_entry embedding_precision_options[] = {
	{"int16", LMGEN_EMBEDDING_INT16, false},
	{"f32", LMGEN_EMBEDDING_F32, false},
	{NULL, 0, false}
};

static const struct config_enum_entry execution_options[] = {
	{"worker", LMGEN_EXECUTION_WORKER, false},
	{"local", LMGEN_EXECUTION_LOCAL, false},
	{NULL, 0, false}
};

static const struct config_enum_entry device_options[] = {
	{"auto", LMGEN_DEVICE_AUTO, false},
	{"cpu", LMGEN_DEVICE_CPU, false},
	{"cuda", LMGEN_DEVICE_CUDA, false},
	{NULL, 0, false}
};

static const struct config_enum_entry classify_retrieval_options[] = {
	{"auto", LMGEN_RETRIEVAL_AUTO, false},
	{"embedding", LMGEN_RETRIEVAL_EMBEDDING, false},
	{"overlap", LMGEN_RETRIEVAL_OVERLAP, false},
	{NULL, 0, false}
};

/* Register lmgen.* GUCs and reserve the prefix. */
void
GucInit(void)
{
	static char default_dir[MAXPGPATH];
	char		sharedir[MAXPGPATH];

	get_share_path(my_exec_path, sharedir);
	snprintf(default_dir, sizeof(default_dir), "%s/lmgen/models", sharedir);

	DefineCustomStringVariable("lmgen.model_dir",
							   "Directory that model file paths are resolved in.",
							   "Relative paths given to lmgen functions are looked up here; "
							   "non-superusers cannot reach files outside it.",
							   &lmgen_model_dir,
							   default_dir,
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("lmgen.default_model",
							   "Registered model used when a call names none.",
							   "Empty means the registry's default (lmgen.set_default_model).",
							   &lmgen_default_model,
							   "",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("lmgen.default_embedding_model",
							   "Registered model embed() uses when a call names none.",
							   "When no model of this name is registered (or it is empty), embed() "
							   "uses the default model.",
							   &lmgen_default_embedding_model,
							   "minilm",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("lmgen.default_classify_model",
							   "Registered model classify() uses when a call names none.",
							   "When no model of this name is registered (or it is empty), classify() "
							   "uses the default model.",
							   &lmgen_default_classify_model,
							   "gemma3",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("lmgen.max_tokens",
							"Upper limit on the tokens one call may generate.",
							"Calls asking for more are refused; only superusers can raise it.",
							&lmgen_max_tokens,
							LMGEN_DEFAULT_MAX_TOKENS, 1, LMGEN_MAX_MAX_TOKENS,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("lmgen.threads",
							"Threads each backend uses to run a model.",
							"Every backend running a model uses this many CPU threads.",
							&lmgen_threads,
							LMGEN_DEFAULT_THREADS, 1, LMGEN_MAX_THREADS,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("lmgen.context_overflow",
							 "What to do when a prompt does not fit the model's context.",
							 "\"error\" refuses the call; \"truncate\" cuts the middle out of the text: "
							 "generate() fills a quarter of the room from its start and the rest from its end, "
							 "summarize() and classify() three quarters from the start and the rest from the end, "
							 "embed() keeps only the start.",
							 &lmgen_context_overflow,
							 LMGEN_OVERFLOW_ERROR,
							 context_overflow_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	/*
	 * A cap on what one call may take, like lmgen.max_tokens: users may not
	 * raise it (PGC_SUSET), or it would protect nothing.
	 */
	DefineCustomIntVariable("lmgen.max_kv_memory",
							"Upper limit on the KV cache memory of one call.",
							"A call whose prompt and answer need more attention cache than this "
							"is refused; only superusers can change it.",
							&lmgen_max_kv_memory,
							LMGEN_DEFAULT_MAX_KV_MEMORY, 1, LMGEN_MAX_MAX_KV_MEMORY,
							PGC_SUSET,
							GUC_UNIT_MB,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("lmgen.embedding_precision",
							 "Arithmetic of a sentence encoder's (minilm's) layer products in embed().",
							 "\"int16\" quantizes weights per row and activations per token to 13-bit integers "
							 "(about twice as fast, cosine >= 0.99998 to F32); \"f32\" multiplies in F32. "
							 "Calls the background worker runs use the worker's own value.",
							 &lmgen_embedding_precision,
							 LMGEN_EMBEDDING_INT16,
							 embedding_precision_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomEnumVariable("lmgen.execution",
							 "Where model calls run: in the background worker or in the calling backend.",
							 "\"worker\" hands calls to lmgen's background worker, which batches the calls of all "
							 "sessions; it needs shared_preload_libraries = 'lmgen' and falls back to \"local\" without it. "
							 "\"local\" runs them in the calling backend.",
							 &lmgen_execution,
							 LMGEN_EXECUTION_WORKER,
							 execution_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomRealVariable("lmgen.classify_vote_weight",
							 "Prior (in log-likelihood) that classify()'s retrieved examples give their labels.",
							 "Each label's score gains this weight times the share of the row's examples labelled "
							 "with it; 0 leaves the model's scores alone.  Without examples nothing changes.",
							 &lmgen_classify_vote_weight,
							 LMGEN_CLASSIFY_VOTE_WEIGHT_DEFAULT, 0.0, 100.0,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("lmgen.headline_candidates",
							"Generations summarize(..., style => 'headline') chooses its headline among.",
							"The greedy one and this many minus one sampled with fixed seeds, after one "
							"evaluation of the prompt; with the text's own first sentence they vote and the "
							"headline sharing most words with the others wins.  1: the greedy generation alone "
							"with the first sentence; 0: by the model (4 where a generated token costs little "
							"more than a prompt token, as on SmolLM2; 1 where its vocabulary makes it dear, "
							"as on Gemma 3).",
							&lmgen_headline_candidates,
							LMGEN_HEADLINE_CANDIDATES_DEFAULT, 0, LMGEN_MAX_HEADLINE_CANDIDATES,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("lmgen.classify_retrieval",
							 "How classify() picks the examples of each row from its examples query.",
							 "\"embedding\" takes the examples whose embeddings (lmgen.default_embedding_model) are "
							 "nearest the text's; \"overlap\" those sharing the most words; \"auto\" embedding when "
							 "that model is registered, else overlap.",
							 &lmgen_classify_retrieval,
							 LMGEN_RETRIEVAL_AUTO,
							 classify_retrieval_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	/*
	 * Settings of the background worker and its shared memory: they exist
	 * only when preloaded (Postgres refuses PGC_POSTMASTER settings from a
	 * library loaded later, and without preload there is no worker).
	 */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomIntVariable("lmgen.max_requests",
								"Calls that may be handed to the background worker at once.",
								"Each is a slot in shared memory; more callers wait for a free slot.",
								&lmgen_max_requests,
								LMGEN_DEFAULT_MAX_REQUESTS, 1, LMGEN_MAX_MAX_REQUESTS,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);

		DefineCustomIntVariable("lmgen.worker_threads",
								"CPU threads of the background worker's engine.",
								"0 means one per CPU core of the machine.",
								&lmgen_worker_threads,
								0, 0, LMGEN_MAX_THREADS,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);

		DefineCustomIntVariable("lmgen.kv_cache_size",
								"KV cache pool of the background worker, per model.",
								"The sequences the worker batches take fixed-size blocks from this pool; "
								"calls that do not fit wait until running ones finish.",
								&lmgen_kv_cache_size,
								LMGEN_DEFAULT_KV_CACHE_SIZE, 1, LMGEN_MAX_MAX_KV_MEMORY,
								PGC_POSTMASTER,
								GUC_UNIT_MB,
								NULL, NULL, NULL);

		DefineCustomBoolVariable("lmgen.worker_share_prefixes",
								 "Lets the background worker's calls start from a prompt prefix another call computed.",
								 "Calls of every session share it, so a prompt that begins like a recent one "
								 "runs faster; off evaluates every prompt whole (same answers).",
								 &lmgen_worker_share_prefixes,
								 true,
								 PGC_POSTMASTER,
								 0,
								 NULL, NULL, NULL);

		DefineCustomEnumVariable("lmgen.device",
								 "Where the background worker runs decoder models: auto, cpu or cuda.",
								 "auto uses a GPU when the worker finds one and the CPU otherwise; cpu never "
								 "loads the device library; cuda without a usable GPU runs on the CPU and "
								 "logs a WARNING.  Encoders always run on the CPU.",
								 &lmgen_device,
								 LMGEN_DEVICE_AUTO,
								 device_options,
								 PGC_POSTMASTER,
								 0,
								 NULL, NULL, NULL);

		DefineCustomRealVariable("lmgen.gpu_memory_fraction",
								 "Share of the GPU memory free after a model's weights that its KV pool takes.",
								 "Each decoder model the worker puts on the GPU sizes its KV block pool from "
								 "the device memory then free.",
								 &lmgen_gpu_memory_fraction,
								 LMGEN_DEFAULT_GPU_MEMORY_FRACTION, 0.01, 1.0,
								 PGC_POSTMASTER,
								 0,
								 NULL, NULL, NULL);

		DefineCustomStringVariable("lmgen.device_library",
								   "Shared object of the compute-device backend the worker loads.",
								   "$libdir is the server's library directory; only the worker loads it "
								   "(first in a short-lived probe process), never the postmaster.",
								   &lmgen_device_library,
								   "$libdir/lmgen_cuda",
								   PGC_POSTMASTER,
								   GUC_SUPERUSER_ONLY,
								   NULL, NULL, NULL);

		DefineCustomBoolVariable("lmgen.shared_weights",
								 "Reads each model once into shared memory that the worker and every backend map.",
								 "Off maps the model file in each process instead (the page cache is still shared, "
								 "but a model file changed on disk fails the calls that use it).  Applies to models "
								 "a process opens after the change.",
								 &lmgen_shared_weights,
								 true,
								 PGC_SUSET,
								 0,
								 NULL, NULL, NULL);
	}

	/* read at plan time, like the planner's enable_* settings */
	DefineCustomBoolVariable("lmgen.enable_batching",
							 "Evaluates the model calls of many rows together (the LMBatch plan node).",
							 "Queries planned while it is off call the model functions row by row.",
							 &lmgen_enable_batching,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("lmgen.batch_rows",
							"Rows whose model calls are evaluated together.",
							"The most rows one LMBatch batch takes; 1 turns batching off.",
							&lmgen_batch_rows,
							LMGEN_DEFAULT_BATCH_ROWS, 1, LMGEN_MAX_BATCH_ROWS,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("lmgen");
}
