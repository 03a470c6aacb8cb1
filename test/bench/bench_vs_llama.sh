#!/bin/bash
# bench_vs_llama.sh — prompt (pp128, pp512) and generation (tg128) speed of
# lmgen-cli beside llama.cpp's llama-bench, both shipped models, 1 and 2
# threads, in the same run: each round runs every (model, threads) cell of
# lmgen and then of llama.cpp back to back, so both see the same machine
# load; the table gives the median over ROUNDS rounds (and the range),
# the ratio of those medians, and the median of the per-round ratios
# (each from two runs that saw the same load: steadier on a busy machine).
#
# GFLOP/s counts the weight matrices only: 2 * (parameters - token
# embedding) flops per prompt token (attention, norms and the classifier
# of the last token are left out), so it is comparable between the two.
#
# Usage (from the repository root, after make):
#   test/bench/bench_vs_llama.sh /path/to/llama-bench [ROUNDS] [REPS]
# ROUNDS defaults to 3, REPS (repetitions inside each tool's run) to 3.
# LMGEN_MODEL_DIR overrides the model directory; LMGEN_BENCH_THREADS the
# thread counts ("1 2").
set -euo pipefail

LLAMA=${1:?usage: $0 /path/to/llama-bench [ROUNDS] [REPS]}
ROUNDS=${2:-3}
REPS=${3:-3}
CLI=./lmgen-cli
MDIR=${LMGEN_MODEL_DIR:-$(pg_config --sharedir)/lmgen/models}
THREADS=${LMGEN_BENCH_THREADS:-1 2}
MODELS="SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf"

[ -x "$CLI" ] || { echo "run make first ($CLI not found)" >&2; exit 1; }
[ -x "$LLAMA" ] || { echo "$LLAMA is not an executable llama-bench" >&2; exit 1; }
RAW=$(mktemp)
trap 'rm -f "$RAW"' EXIT

# Weight flops per token: 2 * (parameters - elements of token_embd).
flops_per_token() {
	local f=$1 params embd
	params=$("$CLI" info "$f" | awk '$1 == "parameters:" { print $2 }')
	embd=$("$CLI" info "$f" --tensors | awk '$1 == "token_embd.weight" { gsub(/[\[\],]/, " "); print $3 * $4 }')
	echo $((2 * (params - embd)))
}

# One round of every cell; appends "model threads tool test tok/s" lines to $RAW.
run_round() {
	local m f t out
	for m in $MODELS; do
		f="$MDIR/$m"
		for t in $THREADS; do
			out=$("$CLI" bench "$f" -t "$t" -p 128 -n 128 -r "$REPS")
			printf '%s\n' "$out" | awk -v m="$m" -v t="$t" '$1 ~ /^(pp|tg)[0-9]+$/ { print m, t, "lmgen", $1, $2 }' >> "$RAW"
			out=$("$CLI" bench "$f" -t "$t" -p 512 -n 0 -r "$REPS")
			printf '%s\n' "$out" | awk -v m="$m" -v t="$t" '$1 ~ /^pp[0-9]+$/ { print m, t, "lmgen", $1, $2 }' >> "$RAW"
			out=$("$LLAMA" -m "$f" -t "$t" -p 128,512 -n 128 -r "$REPS" -o csv 2>/dev/null)
			# columns n_prompt, n_gen and avg_ts found by name in the header
			printf '%s\n' "$out" | tr -d '"' | awk -F, -v m="$m" -v t="$t" '
				NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
				{ np = $col["n_prompt"]; ng = $col["n_gen"];
				  print m, t, "llama.cpp", (np > 0 ? "pp" np : "tg" ng), $col["avg_ts"] }' >> "$RAW"
		done
	done
}

echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# ISA flags: $(grep -o -w -E 'avx2|avx512f|avx512_vnni|avx512_bf16|amx_tile|amx_int8' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "# lmgen kernels: $("$CLI" bench "$MDIR/${MODELS%% *}" -t 1 -p 1 -n 0 -r 1 | sed -n 's/.*threads, \([a-z0-9]*\) kernels.*/\1/p'); reference: $LLAMA"
for r in $(seq 1 "$ROUNDS"); do
	echo "# round $r of $ROUNDS, load average $(cut -d' ' -f1-3 /proc/loadavg)"
	run_round
done
echo "# load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| model | threads | test | lmgen tok/s | llama.cpp tok/s | lmgen / llama.cpp | per-round ratio (median) | lmgen GFLOP/s | llama.cpp GFLOP/s |"
echo "|---|---:|---|---:|---:|---:|---:|---:|---:|"
for m in $MODELS; do
	fpt=$(flops_per_token "$MDIR/$m")
	for t in $THREADS; do
		for test in pp128 pp512 tg128; do
			awk -v m="$m" -v t="$t" -v test="$test" -v fpt="$fpt" '
				function median(a, n,   i, j, x) {
					for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
					return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
				}
				$1 == m && $2 == t && $4 == test { if ($3 == "lmgen") L[++nl] = $5; else R[++nr] = $5 }
				END {
					if (nl == 0 || nr == 0) { printf "| %s | %s | %s | missing | missing | | | | |\n", m, t, test; exit }
					# the i-th line of each tool comes from round i: the ratio within a round saw one load
					for (i = 1; i <= (nl < nr ? nl : nr); i++) Q[i] = L[i] / R[i]
					lo1 = L[1]; hi1 = L[1]; for (i = 1; i <= nl; i++) { if (L[i] < lo1) lo1 = L[i]; if (L[i] > hi1) hi1 = L[i] }
					lo2 = R[1]; hi2 = R[1]; for (i = 1; i <= nr; i++) { if (R[i] < lo2) lo2 = R[i]; if (R[i] > hi2) hi2 = R[i] }
					q = median(Q, nl < nr ? nl : nr); a = median(L, nl); b = median(R, nr)
					gf = (test ~ /^pp/) ? sprintf("%.1f | %.1f", a * fpt / 1e9, b * fpt / 1e9) : " | "
					printf "| %s | %s | %s | %.1f (%.0f-%.0f) | %.1f (%.0f-%.0f) | %.2f | %.2f | %s |\n", m, t, test, a, lo1, hi1, b, lo2, hi2, a / b, q, gf
				}' "$RAW"
		done
	done
done
