#!/bin/bash
# bench_cpu_vs_llama.sh — CPU seconds per 512-token prompt (pp512) of
# lmgen-cli beside llama.cpp's llama-bench, both shipped models, 1 thread.
# CPU time (user + system of the process) does not count the time a
# process waits for a core, so on a machine shared with other work it is
# steadier than tokens/s; it still grows when a neighbour shares the
# core's execution units (hyper-threads), which is why the tools run
# interleaved, round by round.
#
# Each figure is (CPU of a run with REPS + 1 timed prompts - CPU of a run
# with 1) / REPS, so model loading and the warm-up cancel out.  The table
# gives the median over ROUNDS and the median of the per-round ratios.
#
# Usage (from the repository root, after make):
#   test/bench/bench_cpu_vs_llama.sh /path/to/llama-bench [ROUNDS] [REPS] [OTHER_LMGEN_CLI]
# ROUNDS defaults to 3, REPS to 3.  OTHER_LMGEN_CLI, an lmgen-cli built
# from another commit, adds its column (before / after comparisons).
# LMGEN_MODEL_DIR overrides the model directory.
set -euo pipefail

LLAMA=${1:?usage: $0 /path/to/llama-bench [ROUNDS] [REPS] [OTHER_LMGEN_CLI]}
ROUNDS=${2:-3}
REPS=${3:-3}
OTHER=${4:-}
CLI=./lmgen-cli
MDIR=${LMGEN_MODEL_DIR:-$(pg_config --sharedir)/lmgen/models}
MODELS="SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf"

[ -x "$CLI" ] || { echo "run make first ($CLI not found)" >&2; exit 1; }
[ -x "$LLAMA" ] || { echo "$LLAMA is not an executable llama-bench" >&2; exit 1; }
[ -z "$OTHER" ] || [ -x "$OTHER" ] || { echo "$OTHER is not an executable lmgen-cli" >&2; exit 1; }
RAW=$(mktemp)
trap 'rm -f "$RAW"' EXIT

# CPU seconds (user + system) of one command.
cpu_of() {
	local f
	f=$(mktemp)
	/usr/bin/time -o "$f" -f '%U %S' "$@" > /dev/null 2>&1
	awk '{ print $1 + $2 }' "$f"
	rm -f "$f"
}

# CPU seconds of one pp512 for a tool ("lmgen", "other" or "llama.cpp") on model file f.
pp512_cpu() {
	local tool=$1 f=$2 a b
	case $tool in
		lmgen) a=$(cpu_of "$CLI" bench "$f" -t 1 -p 512 -n 0 -r 1)
			b=$(cpu_of "$CLI" bench "$f" -t 1 -p 512 -n 0 -r $((REPS + 1))) ;;
		other) a=$(cpu_of "$OTHER" bench "$f" -t 1 -p 512 -n 0 -r 1)
			b=$(cpu_of "$OTHER" bench "$f" -t 1 -p 512 -n 0 -r $((REPS + 1))) ;;
		*) a=$(cpu_of "$LLAMA" -m "$f" -t 1 -p 512 -n 0 -r 1)
			b=$(cpu_of "$LLAMA" -m "$f" -t 1 -p 512 -n 0 -r $((REPS + 1))) ;;
	esac
	awk -v a="$a" -v b="$b" -v n="$REPS" 'BEGIN { printf "%.3f\n", (b - a) / n }'
}

echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# lmgen: $CLI${OTHER:+, other: $OTHER}; reference: $LLAMA"
TOOLS="lmgen llama.cpp"
[ -z "$OTHER" ] || TOOLS="lmgen other llama.cpp"
for r in $(seq 1 "$ROUNDS"); do
	echo "# round $r of $ROUNDS, load average $(cut -d' ' -f1-3 /proc/loadavg)"
	for m in $MODELS; do
		for tool in $TOOLS; do
			echo "$r $m $tool $(pp512_cpu "$tool" "$MDIR/$m")" >> "$RAW"
		done
	done
done
echo "# load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| model | tool | CPU s per pp512 (median, range) | tool / llama.cpp CPU (median of rounds) | llama.cpp CPU / tool CPU |"
echo "|---|---|---:|---:|---:|"
for m in $MODELS; do
	for tool in $TOOLS; do
		awk -v m="$m" -v tool="$tool" '
			function median(a, n,   i, j, x) {
				for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
				return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
			}
			$2 == m && $3 == tool { T[$1] = $4; v[++n] = $4 }
			$2 == m && $3 == "llama.cpp" { L[$1] = $4 }
			END {
				for (r in T) if ((r in L) && L[r] > 0) q[++nq] = T[r] / L[r]
				lo = v[1]; hi = v[1]; for (i = 1; i <= n; i++) { if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i] }
				med = median(v, n); mq = median(q, nq)
				printf "| %s | %s | %.2f (%.2f-%.2f) | %.2f | %.2f |\n", m, tool, med, lo, hi, mq, 1 / mq
			}' "$RAW"
	done
done
