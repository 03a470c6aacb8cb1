#!/bin/bash
# bench_batching.sh — rows/s of row-wise model calls with the LMBatch node
# (row batching) off and on, in local and in worker mode, at equal threads.
#
# Over the first BENCH_ROWS rows of ../shared/data/summaries_public.csv it
# times, each with lmgen.enable_batching off and then on:
#   summarize  SELECT summarize(description) FROM t    (the card's query)
#   classify   SELECT classify(synopsis, <the 16 Debian sections>) FROM t
#   embed      SELECT embed(synopsis) FROM t            (short texts)
# in local mode (lmgen.threads = BENCH_THREADS in the backend) and in worker
# mode (lmgen.worker_threads = BENCH_THREADS), and prints rows/s and the
# on/off ratio.  The 16 labels are the sections of
# debian_packages_train.csv.  Each query's output goes to /dev/null; a
# warm-up call per model and mode comes first, so model loading is not timed.
#
# Without ../shared (CI) and with BENCH_SHORT=1 it uses the quickstart's five
# articles repeated and six fixed labels, and says so.
# Usage: test/bench/bench_batching.sh
#   Starts a throwaway cluster (test/bench/bench_cluster.sh: initdb in a
#   temporary directory, lmgen preloaded) and removes it at the end; as root
#   it re-runs itself as $LMGEN_TEST_USER (default postgres).
# Env: BENCH_ROWS (default 200; BENCH_SHORT=1 means 16, for CI),
#   BENCH_THREADS (default 2), BENCH_REPEAT (runs of each, off and on
#   alternating, the fastest counting; default 2), BENCH_BATCH_ROWS (lmgen.batch_rows, default
#   32), BENCH_KINDS (default "summarize classify embed"), BENCH_MODES
#   (default "local worker"), BENCH_MODEL (summarize/classify model; default
#   the default model), BENCH_EMBED_MODEL (default: embed()'s default),
#   LMGEN_SHARED (default ../shared).
# Needs the extension installed and the real models (make model).  A
# benchmark prints numbers; it asserts nothing.  Timings on a shared machine
# are noisy: the load average is printed with the figures.
set -euo pipefail
if [ "${BENCH_SHORT:-0}" = 1 ]; then
	rows=${BENCH_ROWS:-16}
else
	rows=${BENCH_ROWS:-200}
fi
threads=${BENCH_THREADS:-2}
repeat=${BENCH_REPEAT:-2}
batch_rows=${BENCH_BATCH_ROWS:-32}
kinds=${BENCH_KINDS:-summarize classify embed}
modes=${BENCH_MODES:-local worker}
here=$(cd "$(dirname "$0")" && pwd)
shared=$(cd "${LMGEN_SHARED:-$here/../../../shared}" 2>/dev/null && pwd || echo "${LMGEN_SHARED:-$here/../../../shared}")
data=$shared/data
# Without ../shared's data the short run (CI) falls back to the quickstart's
# five articles (test/data/articles.sql), repeated, and a fixed label list.
fallback=0
for f in summaries_public.csv debian_packages_train.csv; do
	if [ ! -r "$data/$f" ]; then
		if [ "${BENCH_SHORT:-0}" != 1 ]; then
			echo "bench_batching.sh: $data/$f not found (set LMGEN_SHARED)" >&2
			exit 1
		fi
		fallback=1
	fi
done
# the data travels with the re-run as another user through the environment
export LMGEN_SHARED=$shared
if [ "$fallback" = 1 ] && [ -z "${BENCH_ARTICLES_SQL:-}" ]; then
	BENCH_ARTICLES_SQL=$(cat "$here/../data/articles.sql")
	export BENCH_ARTICLES_SQL
fi
. "$here/bench_cluster.sh"
bench_cluster_start bench_batching.sh "lmgen.threads = $threads
lmgen.worker_threads = $threads
lmgen.batch_rows = $batch_rows"

# One query, unaligned output.
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$conn" -c "$1"; }

model=${BENCH_MODEL:-$(q "SELECT lmgen.default_model()")}
if [ -z "$model" ]; then
	echo "bench_batching.sh: no model: run 'make model' (or set BENCH_MODEL)" >&2
	exit 1
fi
embed_model=${BENCH_EMBED_MODEL:-}
m="'$model'"
em=${embed_model:+"'$embed_model'"}
em=${em:-NULL}

if [ "$fallback" = 0 ]; then
	source="summaries_public.csv"
	q "CREATE TABLE staging (package text, section text, synopsis text, description text)"
	psql -X -q -v ON_ERROR_STOP=1 -d "$conn" -c "\\copy staging FROM '$data/summaries_public.csv' WITH (FORMAT csv, HEADER)"
	q "CREATE TABLE t AS SELECT synopsis, description FROM staging ORDER BY package LIMIT $rows"
	q "TRUNCATE staging"
	psql -X -q -v ON_ERROR_STOP=1 -d "$conn" -c "\\copy staging FROM '$data/debian_packages_train.csv' WITH (FORMAT csv, HEADER)"
	labels=$(q "SELECT quote_literal(array_agg(DISTINCT section ORDER BY section)::text) || '::text[]' FROM staging")
	n_labels=$(q "SELECT count(DISTINCT section) FROM staging")
	label_source="Debian sections"
else
	source="test/data/articles.sql, 5 texts repeated ($data not found; repeated prompts share their KV, so on/off is not comparable with the real data's)"
	q "SET client_min_messages = warning; $BENCH_ARTICLES_SQL" >/dev/null
	q "CREATE TABLE t AS SELECT a.title AS synopsis, a.body AS description FROM generate_series(1, $rows) g JOIN articles a ON a.id = 1 + (g - 1) % 5 ORDER BY g"
	labels="'{city,transport,technology,science,weather,sports}'::text[]"
	n_labels=6
	label_source="fixed labels"
fi
n=$(q "SELECT count(*) FROM t")

# The query of a kind.
query() {
	case "$1" in
		summarize) echo "SELECT summarize(description, model => $m) FROM t" ;;
		classify) echo "SELECT classify(synopsis, $labels, $m) FROM t" ;;
		embed) echo "SELECT embed(synopsis, $em) FROM t" ;;
	esac
}

# Seconds since the epoch, with fractions.
now() { date +%s.%N; }

# Seconds one run of kind $1 takes in mode $2 with batching $3.
timed() {
	local t0 t1
	t0=$(now)
	psql -X -q -At -v ON_ERROR_STOP=1 -d "$conn" -o /dev/null \
		-c "SET lmgen.execution = '$2'" -c "SET lmgen.enable_batching = $3" -c "$(query "$1")"
	t1=$(now)
	echo "$t1 - $t0" | bc -l
}

echo "rows: $n of $source; classify: $n_labels $label_source; model: $model; embed model: ${embed_model:-embed() default}"
echo "threads: $threads (lmgen.threads in local mode, lmgen.worker_threads in worker mode); lmgen.batch_rows = $batch_rows; fastest of $repeat runs each"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in $modes; do
	q "SET lmgen.execution = '$mode'; SELECT generate('warm up', 2, model => $m), embed('warm up', $em)" >/dev/null
done
# The smaller of two numbers.
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b) ? a : b }'; }

printf '%-10s %-7s %8s %12s %12s %8s\n' kind mode threads off_rows/s on_rows/s on/off
for kind in $kinds; do
	for mode in $modes; do
		# off and on alternate, BENCH_REPEAT times; the fastest run of each counts
		off=999999
		on=999999
		for _ in $(seq 1 "$repeat"); do
			off=$(min "$off" "$(timed "$kind" "$mode" off)")
			on=$(min "$on" "$(timed "$kind" "$mode" on)")
		done
		printf '%-10s %-7s %8d %12.2f %12.2f %8.2f\n' "$kind" "$mode" "$threads" \
			"$(echo "$n / $off" | bc -l)" "$(echo "$n / $on" | bc -l)" "$(echo "$off / $on" | bc -l)"
	done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
