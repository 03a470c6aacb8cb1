#!/bin/bash
# bench_classify.sh — time and backend memory of classify() by number of labels.
#
# For each label count (default 2 16 100 1000) a fresh backend warms up (the
# model is opened by a tokenizer call), runs one classify() on a short text
# with labels 'topic 1' .. 'topic N' (which share their first tokens), and
# with N labels that share almost none (the first 8 hex digits of md5(i)),
# and then reads its own
# /proc/self/status: VmHWM is the peak resident memory of the backend over
# the call, VmRSS and RssAnon what it still holds once the call is over
# (idle).  Then one classify() with 16 labels on an ~850-token text, and an
# embed() and a generate() of the same text, each in a fresh backend.
# Figures are printed, nothing is asserted: it is a benchmark, not a test.
#
# Usage:  test/bench/bench_classify.sh [--timeout S] [--model NAME] [N ...]
#   --timeout S   statement_timeout per call in seconds (default 300): a call
#                 that runs longer is cancelled and reported as such
# It runs on a throwaway cluster (initdb in /tmp, lmgen preloaded) reached by
# unix socket, removed at the end.  The extension must be installed; as root
# the script installs this tree's build under /tmp/lmgen-server.lock (the
# lock every server test takes) and re-runs itself as postgres (initdb
# refuses root).  Set LMGEN_BENCH_NO_INSTALL=1 to use what is installed.
set -eu
timeout_s=300
model=
counts=()
while [ $# -gt 0 ]; do
	case "$1" in
		--timeout) timeout_s=$2; shift 2 ;;
		--model) model=$2; shift 2 ;;
		*) counts+=("$1"); shift ;;
	esac
done
[ ${#counts[@]} -eq 0 ] && counts=(2 16 100 1000)
top=$(cd "$(dirname "$0")/../.." && pwd)

if [ "$(id -u)" -eq 0 ]; then
	user=${LMGEN_BENCH_USER:-postgres}
	args=(--timeout "$timeout_s")
	[ -n "$model" ] && args+=(--model "$model")
	exec 9>/tmp/lmgen-server.lock
	flock 9
	if [ -z "${LMGEN_BENCH_NO_INSTALL:-}" ]; then
		make -s -C "$top" all >/dev/null && make -s -C "$top" install >/dev/null
	fi
	cp "$0" /tmp/lmgen-bench-classify.sh
	chmod 755 /tmp/lmgen-bench-classify.sh
	runuser -u "$user" -- /tmp/lmgen-bench-classify.sh "${args[@]}" "${counts[@]}"
	exit $?
fi

bindir=$(pg_config --bindir)
base=$(mktemp -d /tmp/lmgen-bench.XXXXXX)
trap '"$bindir/pg_ctl" -D "$base/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$base" 2>/dev/null || { sleep 1; rm -rf "$base"; }' EXIT
"$bindir/initdb" -D "$base/data" -A trust -E UTF8 --locale=C --no-sync >/dev/null
cat >>"$base/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$base'
shared_preload_libraries = 'lmgen'
EOF
"$bindir/pg_ctl" -D "$base/data" -l "$base/log" -w start >/dev/null
export PGHOST=$base PGDATABASE=postgres
psql -X -q -c "CREATE EXTENSION lmgen" >/dev/null
mq=NULL
[ -n "$model" ] && mq="'$model'"

# A statement run in a fresh backend: prints seconds, peak/idle memory (MB).
measure() {
	local label=$1 call=$2 out
	out=$(psql -X -At -v ON_ERROR_STOP=0 2>&1 <<EOF
SET statement_timeout = '${timeout_s}s';
SELECT lmgen.count_tokens('warm up', $mq) >= 0 AS warm \gset
SELECT clock_timestamp() AS t0 \gset
SELECT length(($call)::text) >= 0 AS ok \gset
SELECT round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 2) AS secs,
       s.kb[1]::int / 1024 AS hwm, s.kb[2]::int / 1024 AS rss, s.kb[3]::int / 1024 AS anon
FROM (SELECT ARRAY[(regexp_match(f, 'VmHWM:\s+(\d+)'))[1], (regexp_match(f, 'VmRSS:\s+(\d+)'))[1],
                   (regexp_match(f, 'RssAnon:\s+(\d+)'))[1]] AS kb
      FROM pg_read_file('/proc/self/status') f) s;
EOF
)
	if printf '%s\n' "$out" | grep -q 'ERROR'; then
		printf '%-36s %s\n' "$label" "$(printf '%s\n' "$out" | grep ERROR | head -1)"
	else
		printf '%-36s %s\n' "$label" "$(printf '%s\n' "$out" | tail -1 |
			awk -F'|' '{printf "%8s s   peak %5s MB   idle %5s MB (anon %5s MB)", $1, $2, $3, $4}')"
	fi
}

text="'The central bank raised interest rates again on Tuesday, and stocks fell sharply.'"
long="repeat('The committee met on Monday to discuss the budget for the coming year. Members argued about roads, schools and the new library. ', 32)"
echo "model: ${model:-default}; lmgen.threads = $(psql -X -At -c 'SHOW lmgen.threads'); $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "call                                 time       memory of the backend (VmHWM = peak, VmRSS = after the call)"
measure "backend after warm-up only" "1"
for n in "${counts[@]}"; do
	measure "classify, $n labels, short text" \
		"classify($text, (SELECT array_agg('topic ' || i) FROM generate_series(1, $n) i), $mq)"
	measure "classify, $n hex labels, short text" \
		"classify($text, (SELECT array_agg(left(md5(i::text), 8)) FROM generate_series(1, $n) i), $mq)"
done
measure "classify, 16 labels, ~850 tokens" \
	"classify($long, (SELECT array_agg('topic ' || i) FROM generate_series(1, 16) i), $mq)"
measure "embed, ~850 tokens" "embed($long, $mq)"
measure "generate, ~850 tokens + 16" "generate($long, 16, model => $mq)"
