#!/bin/bash
# run.sh — the CUDA backend's device check, for a machine with a GPU (issue
# 14).  Run from the repository root:  bash test/gpu/run.sh
#
# Steps, each under its own time limit (worst case about 8 minutes, usually
# 3 to 5):
#   1. what the machine is: nvidia-smi, nvcc, gcc, PostgreSQL;
#   2. build: make (lmgen_cuda.so, the engine, test/gpu programs) when nvcc
#      is on PATH, else the binaries already present are used; meanwhile
#   3. models: where the shipped SmolLM2 / Gemma 3 files are absent (the GPU
#      machine: they cannot travel), their shaped stand-ins are written to
#      test/gpu/models by test/gpu/shaped_model.py (real shapes and types,
#      random weights), plus a 2-layer Gemma 3 cut for step 6; stories260K
#      is taken from shared/models in the checkout (copy
#      ../shared/models/stories260K*.gguf there first), else ../shared/models;
#   4. test/gpu/device_check: agreement with the CPU engine (bit-exact
#      dequantization, greedy tokens, logit differences);
#   5. test/gpu/device_bench: decode tokens/s at batch 1, 8, 64, 256 and
#      prefill tokens/s for SmolLM2 and Gemma 3, beside the bandwidth bound,
#      with F32 and then BF16 weight copies on the GEMM path;
#   6. compute-sanitizer memcheck over device_check on the 2-layer Gemma 3
#      cut and stories260K Q4_K_M (4 steps), when compute-sanitizer is on
#      PATH (it refuses the device under gVisor: reported, not a failure);
#   7. SELECT summarize(body) over 2,000 rows through the worker on the GPU
#      (test/gpu/sql_bench.sh), rows/s: with the PostgreSQL installed there,
#      or (the GPU machine has none) with the bundle pg_bundle.sh made here,
#      shared/pg-bundle.tar.xz, and a shaped SmolLM2 that has the real
#      tokenizer (shared/smollm2-tokenizer.gguf); with the defaults, then
#      with lmgen.max_requests = 1024 and 500-row batches; otherwise it
#      says plainly that this part did not run.
# Prints a summary line per step; exits non-zero when the build or the
# agreement check failed.
set -u
cd "$(dirname "$0")/../.." || exit 1
t_start=$(date +%s)
status_build=skipped; status_check=skipped; status_bench=skipped; status_sql="did not run"
status_models=""; status_memcheck="did not run"
model_dir=${LMGEN_MODEL_DIR:-/usr/share/postgresql/15/lmgen/models}
shaped_dir=${LMGEN_SHAPED_DIR:-test/gpu/models}
export LMGEN_SHAPED_DIR=$shaped_dir

# Print a section header with the elapsed seconds.
section() { echo; echo "=== $1 (t+$(( $(date +%s) - t_start ))s)"; }

section "machine"
date -u
uname -srm
nproc
if command -v nvidia-smi >/dev/null; then
	timeout 20 nvidia-smi || echo "nvidia-smi failed (status $?)"
else
	echo "nvidia-smi: not found"
fi
if command -v nvcc >/dev/null; then nvcc --version | tail -2; else echo "nvcc: not on PATH"; fi
gcc --version | head -1
if command -v pg_config >/dev/null; then pg_config --version; else echo "pg_config: not found (PostgreSQL not installed)"; fi

section "models (shaped stand-ins written in the background while the build runs)"
# Write the shaped stand-in of a shipped model when the real file is absent.
shape_if_absent() {
	real=$1 desc=$2 out=$3
	if [ -f "$model_dir/$real" ]; then echo "$real: real ($model_dir)"; return 0; fi
	python3 test/gpu/shaped_model.py "test/gpu/shapes/$desc" "$shaped_dir/$out" &&
		echo "$real: SHAPED ($shaped_dir/$out)"
}
mkdir -p "$shaped_dir"
t_models=$(date +%s)
(
	shape_if_absent default.gguf smollm2-135m-q4_1.json shaped-smollm2-135m-q4_1.gguf &
	shape_if_absent gemma-3-270m-q4_k_m.gguf gemma-3-270m-q4_k_m.json shaped-gemma-3-270m-q4_k_m.gguf &
	python3 test/gpu/shaped_model.py test/gpu/shapes/gemma-3-270m-q4_k_m.json "$shaped_dir/shaped-gemma-3-270m-2l.gguf" \
		--layers 2 --vocab 4096 >/dev/null && echo "memcheck model: $shaped_dir/shaped-gemma-3-270m-2l.gguf" &
	# F32 stand-ins (no activation quantization on the CPU): SmolLM2 whole, Gemma 3 cut to its
	# first six layers (five windowed, one global), since random Gemma layers amplify rounding
	python3 test/gpu/shaped_model.py test/gpu/shapes/smollm2-135m-q4_1.json "$shaped_dir/shaped-smollm2-f32.gguf" \
		--float >/dev/null && echo "f32 model: $shaped_dir/shaped-smollm2-f32.gguf" &
	python3 test/gpu/shaped_model.py test/gpu/shapes/gemma-3-270m-q4_k_m.json "$shaped_dir/shaped-gemma-3-f32-6l.gguf" \
		--float --layers 6 --vocab 32768 >/dev/null && echo "f32 model: $shaped_dir/shaped-gemma-3-f32-6l.gguf" &
	wait
) > "$shaped_dir/models.log" 2>&1 &
models_pid=$!
if [ -n "${LMGEN_SHARED:-}" ]; then stories_dir=$LMGEN_SHARED/models
elif [ -f shared/models/stories260K.gguf ]; then stories_dir=shared/models
else stories_dir=../shared/models; fi
n_stories=$(ls "$stories_dir"/stories260K*.gguf 2>/dev/null | wc -l)
echo "stories260K: $n_stories files in $stories_dir"

section "build"
jobs=$(nproc); [ "$jobs" -gt 16 ] && jobs=16
# True when the three programs exist and the backend is newer than its sources.
built() {
	[ -f lmgen_cuda.so ] && [ -x test/gpu/device_check ] && [ -x test/gpu/device_bench ] &&
		[ lmgen_cuda.so -nt cuda/backend.cu ]
}
# cuBLAS beside the compiler, wherever the image's loader does not look
if command -v nvcc >/dev/null; then
	cuda_home=$(dirname "$(dirname "$(command -v nvcc)")")
	export LD_LIBRARY_PATH=$cuda_home/lib64:$cuda_home/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
if [ -n "${LMGEN_GPU_PREBUILT:-}" ]; then
	# binaries built elsewhere (e.g. carried in .gpubin to save the build's minute of device time)
	cp "$LMGEN_GPU_PREBUILT/lmgen_cuda.so" . && cp "$LMGEN_GPU_PREBUILT/device_check" "$LMGEN_GPU_PREBUILT/device_bench" test/gpu/ &&
		status_build="prebuilt ($LMGEN_GPU_PREBUILT)" || status_build="FAILED"
elif command -v nvcc >/dev/null; then
	# without PostgreSQL the PGXS include is missing: build only what runs here
	if command -v pg_config >/dev/null; then targets="all"; else targets="lmgen_cuda.so test/gpu/device_check test/gpu/device_bench"; fi
	t0=$(date +%s)
	timeout 150 make -s -j"$jobs" $targets 2>&1 | tail -30
	if ! built; then
		# a newer compiler than CI's may warn where GCC 12 did not: keep warnings warnings
		echo "build failed: again with WERROR= (warnings above stay printed)"
		timeout 150 make -s -j"$jobs" WERROR= $targets 2>&1 | tail -30
		werror_note=" (with WERROR=)"
	fi
	if built; then
		status_build="ok ($(( $(date +%s) - t0 ))s)${werror_note:-}"
	elif [ -f .gpubin/lmgen_cuda.so ]; then
		cp .gpubin/lmgen_cuda.so . && cp .gpubin/device_check .gpubin/device_bench test/gpu/ &&
			status_build="FAILED here; using the binaries carried in .gpubin"
	else
		status_build="FAILED"
	fi
else
	if [ -f lmgen_cuda.so ] && [ -x test/gpu/device_check ]; then
		status_build="no nvcc: using the binaries present"
	else
		status_build="FAILED: no nvcc and no prebuilt lmgen_cuda.so"
	fi
fi
echo "build: $status_build"
case $status_build in FAILED) section "summary"; echo "build: $status_build"; exit 1;; esac
ldd lmgen_cuda.so | grep -E 'cublas|not found'

section "models"
# the writers had the build's time; give them at most 120 s more
for _ in $(seq 120); do kill -0 $models_pid 2>/dev/null || break; sleep 1; done
kill -0 $models_pid 2>/dev/null && { echo "model writing TIMED OUT"; kill $models_pid; }
cat "$shaped_dir/models.log"
echo "models ready after $(( $(date +%s) - t_models )) s"
status_models="$(grep -c ': real' "$shaped_dir/models.log") real, $(grep -c ': SHAPED' "$shaped_dir/models.log") shaped, $n_stories stories260K files ($stories_dir)"
echo "models: $status_models"

section "agreement (test/gpu/device_check)"
timeout 100 ./test/gpu/device_check
rc=$?
if [ $rc -eq 0 ]; then
	section "agreement to rounding: F32 stand-ins, prompts of 552 to 700 tokens (windows, split attention)"
	LMGEN_CHECK_PROMPT=700 LMGEN_CHECK_STEPS=8 timeout 100 ./test/gpu/device_check \
		"$shaped_dir/shaped-smollm2-f32.gguf" "$shaped_dir/shaped-gemma-3-f32-6l.gguf" | grep -v ' step *[0-9]*: token'
	rc=${PIPESTATUS[0]}
fi
case $rc in
	0) status_check="ok: every check agrees";;
	77) status_check="did not run: no GPU";;
	124) status_check="TIMED OUT after 100 s";;
	*) status_check="FAILED (status $rc)";;
esac

section "throughput (test/gpu/device_bench)"
if [ $rc -ne 77 ]; then
	timeout 60 ./test/gpu/device_bench 8
	b=$?
	case $b in 0) status_bench="ok";; 124) status_bench="TIMED OUT after 60 s";; *) status_bench="FAILED (status $b)";; esac
	# the same with BF16 weight copies on the GEMM path (batches over 8 tokens)
	echo
	LMGEN_CUDA_GEMM=bf16 timeout 60 ./test/gpu/device_bench 8
	b=$?
	case $b in 0) status_bench="$status_bench; bf16 ok";; 124) status_bench="$status_bench; bf16 TIMED OUT after 60 s";;
		*) status_bench="$status_bench; bf16 FAILED (status $b)";; esac
else
	status_bench="did not run: no GPU"
fi

section "compute-sanitizer memcheck (2-layer Gemma 3 cut, stories260K Q4_K_M; 4 steps)"
if [ $rc -eq 77 ]; then
	status_memcheck="did not run: no GPU"
elif ! command -v compute-sanitizer >/dev/null; then
	status_memcheck="did not run: compute-sanitizer is not on PATH"
else
	mc_models="$shaped_dir/shaped-gemma-3-270m-2l.gguf"
	[ -f "$stories_dir/stories260K-Q4_K_M.gguf" ] && mc_models="$mc_models $stories_dir/stories260K-Q4_K_M.gguf"
	LMGEN_CHECK_STEPS=4 timeout 40 compute-sanitizer --tool memcheck --print-limit 20 \
		./test/gpu/device_check $mc_models > "$shaped_dir/memcheck.log" 2>&1
	m=$?
	tail -40 "$shaped_dir/memcheck.log"
	if grep -q "ERROR SUMMARY: 0 errors" "$shaped_dir/memcheck.log"; then status_memcheck="ok: 0 errors"
	elif grep -q "ERROR SUMMARY: [1-9]" "$shaped_dir/memcheck.log"; then
		status_memcheck="FAILED: $(grep -o 'ERROR SUMMARY: [0-9]* errors' "$shaped_dir/memcheck.log" | tail -1)"
	elif [ $m -eq 124 ]; then status_memcheck="TIMED OUT after 40 s (no error reported before)"
	else status_memcheck="did not run: compute-sanitizer could not start (status $m; see above)"; fi
fi
echo "$status_memcheck"

section "SQL: summarize over 2,000 rows through the worker on the GPU"
# Without PostgreSQL here, the bundle test/gpu/pg_bundle.sh made on a Debian machine (shared/pg-bundle.tar.xz)
# is unpacked at / and a stand-in SmolLM2 with the real tokenizer (shared/smollm2-tokenizer.gguf) is the model;
# the bundle's libraries are seen by the PostgreSQL commands alone (env below), not by python3 or the rest.
bundle=${LMGEN_PG_BUNDLE:-shared/pg-bundle.tar.xz}
tokenizer=${LMGEN_SQL_TOKENIZER:-shared/smollm2-tokenizer.gguf}
sql_model="real SmolLM2"
sql_env=()
if ! command -v pg_config >/dev/null && [ $rc -ne 77 ] && [ -f "$bundle" ] && [ -f "$tokenizer" ] && [ "$(id -u)" -eq 0 ]; then
	echo "unpacking $bundle at / (PostgreSQL 15 and lmgen, with their libraries)"
	models=/usr/share/postgresql/15/lmgen/models
	if tar -xJf "$bundle" -C / && { id postgres >/dev/null 2>&1 || useradd -r -M -s /bin/bash postgres; } &&
		python3 test/gpu/shaped_model.py test/gpu/shapes/smollm2-135m-q4_1.json "$models/SmolLM2-135M-Instruct.Q4_1.gguf" \
			--tokenizer "$tokenizer" && ln -sf SmolLM2-135M-Instruct.Q4_1.gguf "$models/default.gguf" &&
		cp lmgen_cuda.so /usr/lib/postgresql/15/lib/lmgen_cuda.so; then
		from_bundle=1
		sql_env=(PATH="/usr/lib/postgresql/15/bin:$PATH"
				 BENCH_LD_LIBRARY_PATH="/usr/lib/postgresql/15/extlibs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
		sql_model="SHAPED SmolLM2 with the real tokenizer (random weights: the words mean nothing, the work is the same)"
	else
		echo "the bundle could not be set up"
	fi
fi
if [ -z "${from_bundle:-}" ] && ! command -v pg_config >/dev/null; then
	status_sql="did not run: PostgreSQL is not installed on this machine (and no usable $bundle)"
elif [ $rc -eq 77 ]; then
	status_sql="did not run: no GPU"
elif [ -z "${from_bundle:-}" ] && ! timeout 30 make -s install >/dev/null 2>&1; then
	status_sql="did not run: make install failed (needs write access to PostgreSQL's directories)"
else
	echo "model: $sql_model"
	env "${sql_env[@]}" timeout 90 bash test/gpu/sql_bench.sh
	s=$?
	case $s in 0) status_sql="ok ($sql_model)";; 124) status_sql="TIMED OUT after 90 s";; *) status_sql="FAILED (status $s)";; esac
	# again with the worker allowed hundreds of sequences (the README's tuned row)
	echo "--- again with lmgen.max_requests = 1024 and 500-row batches"
	env "${sql_env[@]}" SQL_MAX_REQUESTS=1024 SQL_BATCH_ROWS=500 timeout 90 bash test/gpu/sql_bench.sh
	s=$?
	case $s in 0) status_sql="$status_sql; tuned ok";; 124) status_sql="$status_sql; tuned TIMED OUT after 90 s";;
		*) status_sql="$status_sql; tuned FAILED (status $s)";; esac
fi
echo "$status_sql"

section "summary"
echo "build:     $status_build"
echo "models:    $status_models"
echo "agreement: $status_check"
echo "bench:     $status_bench"
echo "memcheck:  $status_memcheck"
echo "sql:       $status_sql"
echo "total:     $(( $(date +%s) - t_start )) s"
case $status_check:$status_memcheck in ok*:FAILED*) exit 1;; ok*) exit 0;; *) exit 1;; esac
