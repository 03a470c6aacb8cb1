#!/bin/bash
# bench_batch.sh — rows/s of the model functions called per row against
# their array forms (one batch), in local and worker mode:
#   summarize(description)                    over BENCH_SUMMARY_ROWS rows,
#   classify(description, 16 Debian sections) over BENCH_ROWS rows,
#   embed(description)  (minilm, the default) over BENCH_ROWS rows,
# of ../shared/data/summaries_public.csv (Debian package descriptions, ~470
# characters each).  Per row is `SELECT f(description) FROM t` (with
# lmgen.enable_batching = off where that setting exists, so no plan node
# batches it); the array form is `SELECT f(array_agg(description ORDER BY
# i)) FROM t`.  Each line also says whether both gave the same results
# (md5 of the result array).  Every figure is one run after a warm-up call.
#
# Usage: test/bench/bench_batch.sh [CONNINFO]
#   Without CONNINFO it starts a throwaway cluster (bench_cluster.sh) with
#   lmgen.threads = lmgen.worker_threads = BENCH_THREADS; with CONNINFO it
#   uses that server (preloaded, extension created, both settings as set).
# Env: BENCH_ROWS (default "32 64"), BENCH_SUMMARY_ROWS (default "32 64"),
#   BENCH_THREADS (default 2), BENCH_MODES (default "local worker"),
#   LMGEN_SHARED (default ../shared next to the worktree).
# Needs the extension installed (make install) and the real models (make
# model).  A program that prints numbers; timings on a shared machine are
# noisy, so it prints the load average with them.
set -euo pipefail
rows=${BENCH_ROWS:-32 64}
summary_rows=${BENCH_SUMMARY_ROWS:-32 64}
threads=${BENCH_THREADS:-2}
modes=${BENCH_MODES:-local worker}
shared=${LMGEN_SHARED:-$(cd "$(dirname "$0")/../../.." && pwd)/shared}
csv="$shared/data/summaries_public.csv"
[ -r "$csv" ] || { echo "bench_batch.sh: cannot read $csv (set LMGEN_SHARED)" >&2; exit 1; }
export LMGEN_SHARED=$shared	# for the re-run as another user (bench_cluster.sh)
. "$(dirname "$0")/bench_cluster.sh"

if [ $# -ge 1 ]; then
	conn=$1
else
	bench_cluster_start bench_batch.sh "lmgen.threads = $threads
lmgen.worker_threads = $threads"
fi

# One query, unaligned output.
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$conn" -c "$1"; }

q "SET client_min_messages = warning; DROP TABLE IF EXISTS bench_batch_src, bench_batch"
q "CREATE TABLE bench_batch_src (package text, section text, synopsis text, description text)"
psql -X -q -v ON_ERROR_STOP=1 -d "$conn" -c "\\copy bench_batch_src FROM '$csv' CSV HEADER"
q "CREATE TABLE bench_batch AS SELECT row_number() OVER (ORDER BY package) AS i, description FROM bench_batch_src"
labels="ARRAY['admin','database','editors','electronics','fonts','games','graphics','hamradio','mail','math','net','science','sound','text','video','web']"
no_plan_batching=""
if [ "$(q "SELECT count(*) FROM pg_settings WHERE name = 'lmgen.enable_batching'")" = 1 ]; then
	no_plan_batching="SET lmgen.enable_batching = off;"
fi

echo "lmgen batch benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "server: $(q 'SHOW server_version'); host: $(nproc) CPUs; lmgen.threads = $(q 'SHOW lmgen.threads'), lmgen.worker_threads = $(q 'SHOW lmgen.worker_threads')"
echo "data: $csv, $(q 'SELECT count(*) FROM bench_batch') rows, $(q 'SELECT round(avg(length(description))) FROM bench_batch') characters on average"
echo

# Seconds and md5 of one query's result, in mode $1: "seconds md5".
timed() {
	local mode=$1 sql=$2 t0 t1 md5
	t0=$(date +%s.%N)
	md5=$(q "SET lmgen.execution = '$mode'; $no_plan_batching SELECT md5(($sql)::text)")
	t1=$(date +%s.%N)
	echo "$(echo "$t1 - $t0" | bc -l) $md5"
}

# One line: function $1 over $2 rows in mode $3, per row ($4) and as an array ($5).
compare() {
	local what=$1 n=$2 mode=$3 per_row=$4 array=$5 a b load
	load=$(cut -d' ' -f1 /proc/loadavg)
	read -r ta ma <<<"$(timed "$mode" "$per_row")"
	read -r tb mb <<<"$(timed "$mode" "$array")"
	printf '%-10s %-7s %4d rows   per row %7.2f s %7.2f rows/s   array %7.2f s %7.2f rows/s   x%5.2f   same: %-3s load %s\n' \
		"$what" "$mode" "$n" "$ta" "$(echo "$n / $ta" | bc -l)" "$tb" "$(echo "$n / $tb" | bc -l)" \
		"$(echo "$ta / $tb" | bc -l)" "$([ "$ma" = "$mb" ] && echo yes || echo NO)" "$load"
}

for mode in $modes; do
	# warm-up: open the models in this mode
	q "SET lmgen.execution = '$mode'; SELECT length(summarize('warm up', 4)), classify('warm up', $labels), cardinality(embed('warm up'))" >/dev/null
	for n in $summary_rows; do
		compare summarize "$n" "$mode" \
			"SELECT array_agg(s ORDER BY i) FROM (SELECT i, summarize(description) AS s FROM bench_batch WHERE i <= $n) t" \
			"SELECT summarize(array_agg(description ORDER BY i)) FROM bench_batch WHERE i <= $n"
	done
	for n in $rows; do
		compare classify "$n" "$mode" \
			"SELECT array_agg(c ORDER BY i) FROM (SELECT i, classify(description, $labels) AS c FROM bench_batch WHERE i <= $n) t" \
			"SELECT classify(array_agg(description ORDER BY i), $labels) FROM bench_batch WHERE i <= $n"
		compare embed "$n" "$mode" \
			"SELECT array_agg(e ORDER BY i) FROM (SELECT i, embed(description) AS e FROM bench_batch WHERE i <= $n) t" \
			"SELECT embed(array_agg(description ORDER BY i)) FROM bench_batch WHERE i <= $n"
	done
done
echo
echo "uptime: $(uptime)"
