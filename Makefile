# lmgen — PostgreSQL extension that runs language models in the database.
#
#   make              lmgen.so and ./lmgen-cli (same engine objects)
#   make install      install the extension (PGXS)
#   make unit         build and run the engine's C unit tests
#   make check-all    every test layer (see test/run_all.sh)

EXTENSION = lmgen
MODULE_big = lmgen
DATA = $(wildcard sql/lmgen--*.sql)

# Engine: plain C, no postgres.h; also linked into lmgen-cli and the unit tests.
ENGINE_SRCS = $(sort $(wildcard src/engine/*.c))
ENGINE_OBJS = $(ENGINE_SRCS:.c=.o)

# Postgres glue.
GLUE_SRCS = $(sort $(wildcard src/*.c))
GLUE_OBJS = $(GLUE_SRCS:.c=.o)

OBJS = $(GLUE_OBJS) $(ENGINE_OBJS)

# The CUDA backend (cuda/, device.h) is its own shared object, lmgen_cuda.so,
# built by nvcc when nvcc is on PATH and installed beside lmgen.so; lmgen.so
# itself never links CUDA (the worker dlopen()s the backend).  It links the
# engine objects it uses for host tables, the CUDA runtime statically and
# cuBLAS shared, and exports only its two tables (cuda/exports.map).
NVCC := $(shell command -v nvcc 2>/dev/null)
CUDA_C_SRCS = $(sort $(wildcard cuda/*.c))
CUDA_C_OBJS = $(CUDA_C_SRCS:.c=.o)
ifneq ($(NVCC),)
CUDA_SRCS = $(sort $(wildcard cuda/*.cu))
endif
ifneq ($(CUDA_SRCS),)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_OBJS = $(CUDA_SRCS:.cu=.o)
CUDA_SO = lmgen_cuda.so
# sm_90 (H100/H200) code plus compute_90 PTX for newer GPUs; no fast math
# (the kernels rely on IEEE division and square root).
NVCC_ARCH ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
NVCC_FLAGS = -std=c++17 -O3 $(NVCC_ARCH) -Xcompiler -fPIC,-Wall,-Wextra,-ffp-contract=off $(if $(WERROR),-Werror all-warnings) \
	-Isrc/engine -Icuda -MMD -MP
# the device dequantizers and exponential run on the CPU too, against quant.c (no GPU needed)
UNIT_CU_BINS = test/unit/test_cuda_dequant
endif

CLI_SRCS = $(sort $(wildcard src/cli/*.c))
CLI_OBJS = $(CLI_SRCS:.c=.o)

GPU_PROGS = test/gpu/device_check test/gpu/device_bench

UNIT_SRCS = $(sort $(wildcard test/unit/test_*.c))
UNIT_BINS = $(UNIT_SRCS:.c=)

SHLIB_LINK = -lpthread -lm
PG_CPPFLAGS = -Isrc -Isrc/engine
PG_CFLAGS = -MMD -MP -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare -Wno-clobbered

REGRESS = gguf model_dir registry tokenize path_confinement generate_text model_functions output_options train fill jit_cost batching
# Tests on the real stories260K model run when ../shared (or $LMGEN_SHARED) has it.
LMGEN_SHARED ?= ../shared
ifneq ($(wildcard $(LMGEN_SHARED)/models/stories260K.gguf),)
REGRESS += generate_stories
endif
# A temporary instance with shared_preload_libraries = 'lmgen'; the conf and
# the test models are written by test/make_fixtures.sh.
REGRESS_OPTS = --temp-instance=tmp_check --temp-config=test/tmp/regress.conf --load-extension=lmgen
PROVE_TESTS = test/t/*.pl

# Warnings are errors (GCC 12 and nvcc here and in CI); `make WERROR=` keeps
# them warnings, for the GPU machine's newer compiler (test/gpu/run.sh).
WERROR ?= -Werror

# The engine gets its own flags: C11, no FP contraction (kernels must agree
# bit for bit across SIMD paths), and no -march: ISA-specific code sits in
# files named *_avx2.c / *_avx512.c and is only called after a CPUID check.
ENGINE_CFLAGS = -std=gnu11 -O2 -g -fPIC -pthread -ffp-contract=off -fno-strict-aliasing -MMD -MP \
	-Wall -Wextra $(WERROR) -Wno-unused-parameter -Wmissing-prototypes
AVX2_FLAGS = -mavx2 -mfma -mf16c
AVX512_FLAGS = -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mbmi2 -mavx2 -mfma -mf16c

# No LLVM bitcode: the engine's ISA-specific files need their own flags, and
# JIT inlining of engine code would not pay.
override with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# (target-specific values beat pattern-specific ones, so the ISA files are
# named explicitly rather than through a % pattern)
ENGINE_AVX2_OBJS = $(filter %_avx2.o,$(ENGINE_OBJS))
ENGINE_AVX512_OBJS = $(filter %_avx512.o,$(ENGINE_OBJS))
ENGINE_BASE_OBJS = $(filter-out $(ENGINE_AVX2_OBJS) $(ENGINE_AVX512_OBJS),$(ENGINE_OBJS))
$(ENGINE_OBJS) $(CLI_OBJS): CPPFLAGS = -Isrc/engine
$(ENGINE_BASE_OBJS) $(CLI_OBJS): CFLAGS = $(ENGINE_CFLAGS)
$(ENGINE_AVX2_OBJS): CFLAGS = $(ENGINE_CFLAGS) $(AVX2_FLAGS)
$(ENGINE_AVX512_OBJS): CFLAGS = $(ENGINE_CFLAGS) $(AVX512_FLAGS)


all: lmgen-cli $(GPU_PROGS)

# The CUDA backend (see above).
$(CUDA_C_OBJS): cuda/%.o: cuda/%.c
	$(CC) $(ENGINE_CFLAGS) -Isrc/engine -Icuda -c -o $@ $<

ifneq ($(CUDA_SO),)
all: $(CUDA_SO)

cuda/%.o: cuda/%.cu
	$(NVCC) $(NVCC_FLAGS) -c -o $@ $<

$(CUDA_SO): $(CUDA_OBJS) $(CUDA_C_OBJS) $(ENGINE_OBJS) cuda/exports.map
	$(NVCC) -shared -o $@ $(CUDA_OBJS) $(CUDA_C_OBJS) $(ENGINE_OBJS) -L$(CUDA_HOME)/lib64 --cudart static \
		-lcublas -lpthread -lm -ldl -lrt -Xlinker --version-script=cuda/exports.map -Xlinker --no-undefined

install: install-cuda
.PHONY: install-cuda
install-cuda: $(CUDA_SO)
	$(INSTALL_SHLIB) $(CUDA_SO) '$(DESTDIR)$(pkglibdir)/$(CUDA_SO)'

uninstall: uninstall-cuda
.PHONY: uninstall-cuda
uninstall-cuda:
	rm -f '$(DESTDIR)$(pkglibdir)/$(CUDA_SO)'
endif

# Device check programs (test/gpu/README.md): plain C on the engine objects,
# loading lmgen_cuda.so at run time; built everywhere so CI compiles them.
test/gpu/device_%: test/gpu/device_%.c test/gpu/gpu_common.h cuda/lmgen_cuda.h $(ENGINE_OBJS)
	$(CC) $(ENGINE_CFLAGS) -Isrc/engine -Icuda -Itest/gpu -o $@ $< $(ENGINE_OBJS) -ldl -lpthread -lm

ifneq ($(UNIT_CU_BINS),)
test/unit/test_cuda_dequant: test/unit/test_cuda_dequant.cu $(wildcard test/unit/*.h) cuda/dequant.cuh cuda/common.cuh \
		cuda/lmgen_cuda.h $(ENGINE_OBJS)
	$(NVCC) $(NVCC_FLAGS) -Itest/unit -DLMGEN_MODEL_DIR='"$(shell $(PG_CONFIG) --sharedir)/lmgen/models"' \
		-o $@ $< $(ENGINE_OBJS) -lpthread -lm
endif

# The CUDA backend's host-side planning (cuda/host_plan.c) is unit-tested without a GPU.
test/unit/test_cuda_host: test/unit/test_cuda_host.c $(wildcard test/unit/*.h) cuda/host_plan.o $(ENGINE_OBJS)
	$(CC) $(ENGINE_CFLAGS) -Isrc/engine -Icuda -Itest/unit -o $@ $< cuda/host_plan.o $(ENGINE_OBJS) -lpthread -lm

lmgen-cli: $(CLI_OBJS) $(ENGINE_OBJS)
	$(CC) $(ENGINE_CFLAGS) -o $@ $^ -lpthread -lm

test/unit/test_%: test/unit/test_%.c $(wildcard test/unit/*.h) $(ENGINE_OBJS)
	$(CC) $(ENGINE_CFLAGS) -Isrc/engine -Itest/unit -DLMGEN_MODEL_DIR='"$(shell $(PG_CONFIG) --sharedir)/lmgen/models"' -o $@ $< $(ENGINE_OBJS) -lpthread -lm -ldl

# The host-memory test device (test/unit/hostdev.c): a device backend
# (device.h) with its own copy of the engine, so the device seam, the worker
# on a device and lmgen-cli --device are tested without a GPU.
HOSTDEV_SO = test/unit/lmgen_hostdev.so
$(HOSTDEV_SO): test/unit/hostdev.c test/unit/hostdev.map $(ENGINE_OBJS)
	$(CC) $(ENGINE_CFLAGS) -Isrc/engine -shared -Wl,--version-script=test/unit/hostdev.map -o $@ $< $(ENGINE_OBJS) -lpthread -lm
test/unit/test_device_host: $(HOSTDEV_SO) lmgen-cli

.PHONY: unit check-all fixtures tap model installcheck-models installcheck-citus bench-embed bench-encoder bench-quality bench-batch
# Fetch, verify and install the real models (SmolLM2 default, Gemma 3).
model:
	.ci/fetch-models

fixtures:
	test/make_fixtures.sh

installcheck: fixtures

# pg_regress on the real models `make model` installs (sql/models.sql,
# sql/summaries.sql, and sql/embed_minilm.sql and sql/classify_retrieval.sql
# when the embedding model is installed), in an
# instance whose lmgen.model_dir is the installed model directory.
MODELS_REGRESS = models summaries batch_calls
ifneq ($(wildcard $(shell $(PG_CONFIG) --sharedir)/lmgen/models/all-MiniLM-L6-v2.F32.gguf),)
MODELS_REGRESS += embed_minilm classify_retrieval
endif
installcheck-models: fixtures
	$(pg_regress_installcheck) --temp-instance=tmp_check_models --temp-config=test/tmp/regress_models.conf \
		--load-extension=lmgen $(MODELS_REGRESS)

# lmgen on a Citus cluster (coordinator and two workers) against a local
# copy of the table; prints "SKIP: citus not installed" where Citus is absent.
installcheck-citus:
	LMGEN_SHARED=$(LMGEN_SHARED) test/citus/run.sh

# embed() throughput and retrieval quality on ../shared/data (a benchmark,
# not a test: it prints figures; test/bench/README.md).
bench-embed:
	test/bench/bench_embed.py --temp $(BENCH_EMBED_ARGS)

# The engine's sentence-embedding throughput without a server
# (test/bench/bench_encoder.c: rows/s of lm_bert_embed on the Debian
# descriptions, batches of 1, 8, 32 texts at 1 and 2 threads).
# BENCH_ENCODER_ARGS: [rows] [threads,...] [batch,...] [reps] [int16,f32].
BENCH_ENCODER_MODEL ?= $(shell $(PG_CONFIG) --sharedir)/lmgen/models/all-MiniLM-L6-v2.F32.gguf
test/bench/bench_encoder: test/bench/bench_encoder.c test/bench/bench_clock.h $(ENGINE_OBJS)
	$(CC) $(ENGINE_CFLAGS) -Isrc/engine -o $@ $< $(ENGINE_OBJS) -lpthread -lm
bench-encoder: test/bench/bench_encoder
	test/bench/bench_encoder $(BENCH_ENCODER_MODEL) $(LMGEN_SHARED)/data/debian_packages_test.csv $(BENCH_ENCODER_ARGS)

# rows/s of summarize, classify and embed per row against their array forms,
# local and worker mode (test/bench/bench_batch.sh; a program that prints numbers).
bench-batch:
	test/bench/bench_batch.sh

# Output-quality figures of summarize() and classify() in a throwaway cluster
# (test/bench/quality.py; a program that prints numbers, not a test).
# Options through QUALITY_ARGS, e.g. QUALITY_ARGS='--limit 40 --styles headline'.
bench-quality:
	test/bench/quality.py --temp --data $(or $(LMGEN_SHARED),../shared)/data $(QUALITY_ARGS)

# Row batching on and off (test/bench/bench_batching.sh; a benchmark that
# prints rows/s): BENCH_SHORT=1 for 16 rows instead of 200.
.PHONY: bench-batching
bench-batching:
	test/bench/bench_batching.sh

# The background worker beside local mode (test/bench/bench_worker.sh; a
# benchmark that prints tokens/s, rows/s, server PSS and first-call times;
# settings through its BENCH_* variables).
.PHONY: bench-worker
bench-worker:
	test/bench/bench_worker.sh

# TAP tests (PostgreSQL::Test::Cluster) against the installed extension.
tap: fixtures $(HOSTDEV_SO)
	$(prove_installcheck)

unit: $(UNIT_BINS) $(UNIT_CU_BINS) $(HOSTDEV_SO)
	@test/unit/run_unit.sh $(UNIT_BINS) $(UNIT_CU_BINS)

check-all: all
	test/run_all.sh

# The Debian training benchmark (test/bench/bench_train.sh) against the
# installed extension; BENCH_TRAIN_ARGS are extra train_classifier arguments.
.PHONY: bench-train
bench-train:
	test/bench/bench_train.sh "$(BENCH_TRAIN_ARGS)"

# Header dependencies written by -MMD.
-include $(wildcard src/*.d src/engine/*.d src/cli/*.d cuda/*.d)

EXTRA_CLEAN = tmp_check_models src/*.d src/engine/*.d src/cli/*.d cuda/*.o cuda/*.d lmgen_cuda.so $(GPU_PROGS) test/unit/test_cuda_dequant test/unit/*.d lmgen-cli $(UNIT_BINS) $(HOSTDEV_SO) $(CLI_OBJS) tmp_check results regression.diffs regression.out log
