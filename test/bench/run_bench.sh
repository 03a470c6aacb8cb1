#!/bin/sh
# run_bench.sh — lmgen-cli bench on the shared stories260K models (F32, Q8_0,
# Q4_0) at 1 and 2 threads; prints one table of tokens/s (median of REPS).
# Compare with ../shared/golden/REFERENCE.md (llama.cpp on this machine kind):
#   F32 1t pp128 3176 tg128 2692; 2t 5711 / 3778
#   Q8_0 1t 3212 / 2854;          2t 5233 / 3319
# Usage: test/bench/run_bench.sh [REPS]   (from the repository root, after make)
set -e
REPS=${1:-9}
SHARED=${LMGEN_SHARED:-../shared}
CLI=./lmgen-cli
[ -x "$CLI" ] || { echo "run make first ($CLI not found)" >&2; exit 1; }
printf '%-24s %7s %12s %12s\n' model threads pp128_tok/s tg128_tok/s
for m in stories260K.gguf stories260K-Q8_0.gguf stories260K-Q4_0.gguf; do
	f="$SHARED/models/$m"
	[ -r "$f" ] || { echo "skip $m (not found)" >&2; continue; }
	for t in 1 2; do
		out=$("$CLI" bench "$f" -t "$t" -p 128 -n 128 -r "$REPS")
		pp=$(printf '%s\n' "$out" | awk '$1 == "pp128" { print $2 }')
		tg=$(printf '%s\n' "$out" | awk '$1 == "tg128" { print $2 }')
		printf '%-24s %7s %12s %12s\n' "$m" "$t" "$pp" "$tg"
	done
done
