#!/bin/bash
# bench_sql.sh — figures of the SQL functions that no test may time:
#   1. cancel latency: milliseconds from pg_cancel_backend (or from the
#      moment statement_timeout expires) to the error, for tokenize (4 MB
#      text), generate (long prompt), classify (many labels) and embed
#      (long text), ROUNDS times each (min / median / max);
#   2. idle backend memory: VmRSS and VmHWM of a fresh backend after one
#      call of generate, summarize, classify (16 labels, an ~850-token
#      text), embed and tokenize (4 MB text), read from /proc/<pid>/status.
#
# Usage: test/bench/bench_sql.sh [CONNINFO]
#   Without CONNINFO it starts a throwaway cluster (initdb in a temporary
#   directory, lmgen preloaded, CREATE EXTENSION lmgen) and removes it at the
#   end; as root it re-runs itself as $LMGEN_TEST_USER (default postgres),
#   since initdb refuses root.  With CONNINFO it uses that server, whose
#   database must have the extension; reading /proc needs a superuser
#   (pg_read_file) on the server's machine.
# Env: BENCH_MODEL (registered name; default: the database's default model),
#   BENCH_ROUNDS (default 3), BENCH_DELAY (seconds a call runs before the
#   cancel, and the statement_timeout, default 1; 0.3 for tokenize, which
#   takes 1.5 s here), BENCH_LATE (the same for a second, late cancel of
#   the long prompt, default 15), BENCH_THREADS (lmgen.threads, default 1).
# Needs the extension installed (make install) and, by default, the real
# models (make model).  Timings on a shared machine are noisy: the script
# prints the load average with its figures.
set -euo pipefail
rounds=${BENCH_ROUNDS:-3}
delay=${BENCH_DELAY:-1}
late=${BENCH_LATE:-15}
threads=${BENCH_THREADS:-1}
. "$(dirname "$0")/bench_cluster.sh"

if [ $# -ge 1 ]; then
	conn=$1
	work=$(mktemp -d /tmp/lmgen-bench.XXXXXX)
	trap 'rm -rf "$work"' EXIT
else
	bench_cluster_start bench_sql.sh "lmgen.threads = $threads"
fi

# One query, unaligned output.
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$conn" -c "$1"; }

model=${BENCH_MODEL:-$(q "SELECT lmgen.default_model()")}
if [ -z "$model" ]; then
	echo "bench_sql.sh: no model: run 'make model' (or set BENCH_MODEL to a registered name)" >&2
	exit 1
fi
m="'$model'"
info=$(q "SELECT path || ', ' || architecture || ', ' || parameters || ' parameters, ' || coalesce(quantization, '?') FROM lmgen.models WHERE name = $m")

# Texts: 4 MB of hex words (tokenizing it takes 1.5 s here); ~40 kB (more than an 8192-token context: cut to fit); an
# ~850-token article.
big="(SELECT string_agg(md5(i::text), ' ') FROM generate_series(1, 125000) i)"
long="repeat('The quick brown fox jumps over the lazy dog near the river bank. ', 600)"
sentence='The city council met on Tuesday to discuss the new budget for public libraries, parks and roads, and voted to keep the libraries open later on weekdays. '
reps=1
while [ "$(q "SELECT lmgen.count_tokens(repeat('$sentence', $((reps + 1))), $m)")" -le 850 ]; do
	reps=$((reps + 1))
done
article="repeat('$sentence', $reps)"
article_tokens=$(q "SELECT lmgen.count_tokens($article, $m)")
labels16="ARRAY['politics', 'sports', 'weather', 'business', 'science', 'health', 'travel', 'music', 'movies', 'education', 'crime', 'technology', 'food', 'religion', 'housing', 'transport']"
labels1000="(SELECT array_agg('category number ' || i) FROM generate_series(1, 1000) i)"

echo "lmgen SQL benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "model: $model ($info); lmgen.threads = $(q 'SHOW lmgen.threads')"
echo "server: $(q 'SHOW server_version'); host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# Server clock in milliseconds (as SQL).
now_ms="(extract(epoch FROM clock_timestamp()) * 1000)::numeric(20, 3)"

# Latency (ms) of one cancel of SQL call $1 by $2 = cancel | timeout, sent
# $3 s into the call (cancel) or with statement_timeout = $4 ms; prints "-"
# when the call ended without the cancel error.
cancel_once() {
	local call=$1 how=$2 delay=$3 timeout_ms=$4 app="lmgen_bench_$$_$RANDOM" out err pid t0 t1 bg
	out="$work/out.$app"; err="$work/err.$app"
	if [ "$how" = timeout ]; then
		PGAPPNAME=$app psql -X -q -At -d "$conn" > "$out" 2> "$err" <<SQL || true
SET lmgen.context_overflow = 'truncate';
SET statement_timeout = '${timeout_ms}ms';
SELECT $now_ms;
SELECT $call IS NULL;
SELECT $now_ms;
SQL
		if ! grep -q 'canceling statement due to statement timeout' "$err"; then echo "-"; return; fi
		t0=$(sed -n 1p "$out"); t1=$(tail -1 "$out")
		awk -v a="$t0" -v b="$t1" -v t="$timeout_ms" 'BEGIN { printf "%.0f\n", b - a - t }'
		return
	fi
	PGAPPNAME=$app psql -X -q -At -d "$conn" > "$out" 2> "$err" <<SQL &
SET lmgen.context_overflow = 'truncate';
SELECT $call IS NULL;
SELECT $now_ms;
SQL
	bg=$!
	pid=""
	for _ in $(seq 1 500); do
		pid=$(q "SELECT pid FROM pg_stat_activity WHERE application_name = '$app' AND state = 'active'")
		[ -n "$pid" ] && break
		sleep 0.01
	done
	sleep "$delay"
	t0=$(q "SELECT $now_ms, pg_cancel_backend(${pid:-0})" | cut -d'|' -f1)
	wait "$bg" || true
	if ! grep -q 'canceling statement due to user request' "$err"; then echo "-"; return; fi
	t1=$(tail -1 "$out")
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f\n", b - a }'
}

# "min / median / max" of ROUNDS cancel_once calls with arguments $1..$4.
cancel_stats() {
	local v=() i missed
	for i in $(seq 1 "$rounds"); do v+=("$(cancel_once "$@")"); done
	missed=$(printf '%s\n' "${v[@]}" | grep -c '^-$' || true)
	printf '%s\n' "${v[@]}" | grep -v '^-$' | sort -n | awk -v missed="$missed" '
		{ x[NR] = $1 }
		END {
			if (NR == 0) { print "not cancelled"; exit }
			printf "%d / %d / %d", x[1], x[int((NR + 1) / 2)], x[NR]
			if (missed > 0) printf " (%d not cancelled)", missed
			printf "\n"
		}'
}

echo "Cancel latency, ms from the cancel to the error ($rounds rounds: min / median / max);"
echo "pg_cancel_backend after the call has run D s, or statement_timeout = D s"
printf '%-44s %4s %-24s %-24s\n' call D pg_cancel_backend statement_timeout
# Both kinds of cancel of call $2 (named $1), $3 seconds into it.
bench_cancel() {
	local ms
	ms=$(awk -v d="$3" 'BEGIN { printf "%d", d * 1000 }')
	printf '%-44s %4s %-24s %-24s\n' "$1" "$3" "$(cancel_stats "$2" cancel "$3" "$ms")" \
		"$(cancel_stats "$2" timeout "$3" "$ms")"
}
bench_cancel "tokenize (4 MB text)" "lmgen.tokenize($big, $m)" 0.3
bench_cancel "generate (long prompt, truncated to context)" "generate($long, 16, model => $m)" "$delay"
bench_cancel "generate (the same, deep into the prefill)" "generate($long, 16, model => $m)" "$late"
bench_cancel "classify (1000 labels, short text)" "classify('The match ended in a draw.', $labels1000, $m)" "$delay"
bench_cancel "embed (long text, truncated to context)" "embed($long, $m)" "$delay"
echo "(every call runs with lmgen.context_overflow = 'truncate')"
echo

# VmRSS and VmHWM (MB) of a fresh backend after running $1 once.
memory_after() {
	local status
	status=$(psql -X -q -At -v ON_ERROR_STOP=1 -d "$conn" <<SQL
SET lmgen.context_overflow = 'truncate';
SELECT ${1:-1} IS NULL;
SELECT pg_read_file('/proc/' || pg_backend_pid() || '/status');
SQL
)
	printf '%s\n' "$status" | awk '
		/^VmRSS:/ { rss = $2 } /^VmHWM:/ { hwm = $2 }
		END { printf "%10.1f %10.1f\n", rss / 1024, hwm / 1024 }'
}

echo "Backend memory after one call (a fresh backend each; MB, from /proc/<pid>/status)"
printf '%-48s %10s %10s\n' call VmRSS VmHWM
printf '%-48s %s\n' "none (fresh backend)" "$(memory_after "")"
printf '%-48s %s\n' "generate (64 tokens)" \
	"$(memory_after "generate('Write a one-line ad for a coffee mug.', 64, model => $m)")"
printf '%-48s %s\n' "summarize ($article_tokens-token text)" "$(memory_after "summarize($article, 32, $m)")"
printf '%-48s %s\n' "classify (16 labels, $article_tokens-token text)" "$(memory_after "classify($article, $labels16, $m)")"
printf '%-48s %s\n' "embed ($article_tokens-token text)" "$(memory_after "embed($article, $m)")"
printf '%-48s %s\n' "tokenize (4 MB text)" "$(memory_after "cardinality(lmgen.tokenize($big, $m))")"
