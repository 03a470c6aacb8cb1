#!/bin/bash
# run.sh — the CUDA backend's device check, for a machine with a GPU (issue
# 14).  Run from the repository root:  bash test/gpu/run.sh
#
# Steps, each under its own time limit so the whole run stays under 5
# minutes:
#   1. what the machine is: nvidia-smi, nvcc, gcc, PostgreSQL;
#   2. build: make (lmgen_cuda.so, the engine, test/gpu programs) when nvcc
#      is on PATH, else the binaries already present are used;
#   3. test/gpu/device_check: agreement with the CPU engine (bit-exact
#      dequantization, greedy tokens, logit differences);
#   4. test/gpu/device_bench: decode tokens/s at batch 1, 8, 64, 256 and
#      prefill tokens/s for SmolLM2 and Gemma 3, beside the bandwidth bound;
#   5. when PostgreSQL is installed: SELECT summarize(body) over 2,000 rows
#      through the worker on the GPU (test/gpu/sql_bench.sh), rows/s;
#      otherwise it says plainly that this part did not run.
# Prints a summary line per step; exits non-zero when the build or the
# agreement check failed.
set -u
cd "$(dirname "$0")/../.." || exit 1
t_start=$(date +%s)
status_build=skipped; status_check=skipped; status_bench=skipped; status_sql="did not run"

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

section "build"
jobs=$(nproc); [ "$jobs" -gt 16 ] && jobs=16
if command -v nvcc >/dev/null; then
	# without PostgreSQL the PGXS include is missing: build only what runs here
	if command -v pg_config >/dev/null; then targets="all"; else targets="lmgen_cuda.so test/gpu/device_check test/gpu/device_bench"; fi
	t0=$(date +%s)
	if timeout 150 make -s -j"$jobs" $targets 2>&1 | tail -30; then :; fi
	if [ -f lmgen_cuda.so ] && [ -x test/gpu/device_check ] && [ -x test/gpu/device_bench ] &&
		[ lmgen_cuda.so -nt cuda/backend.cu ]; then
		status_build="ok ($(( $(date +%s) - t0 ))s)"
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
case $status_build in FAILED*) section "summary"; echo "build: $status_build"; exit 1;; esac

section "agreement (test/gpu/device_check)"
timeout 100 ./test/gpu/device_check
rc=$?
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
else
	status_bench="did not run: no GPU"
fi

section "SQL: summarize over 2,000 rows through the worker on the GPU"
if ! command -v pg_config >/dev/null; then
	status_sql="did not run: PostgreSQL is not installed on this machine"
elif [ $rc -eq 77 ]; then
	status_sql="did not run: no GPU"
elif ! timeout 30 make -s install >/dev/null 2>&1; then
	status_sql="did not run: make install failed (needs write access to PostgreSQL's directories)"
else
	timeout 75 bash test/gpu/sql_bench.sh
	s=$?
	case $s in 0) status_sql="ok";; 124) status_sql="TIMED OUT after 75 s";; *) status_sql="FAILED (status $s)";; esac
fi
echo "$status_sql"

section "summary"
echo "build:     $status_build"
echo "agreement: $status_check"
echo "bench:     $status_bench"
echo "sql:       $status_sql"
echo "total:     $(( $(date +%s) - t_start )) s"
case $status_check in ok*) exit 0;; *) exit 1;; esac
