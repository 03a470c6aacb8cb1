#!/bin/bash
# bench_worker.sh — throughput of the background worker beside local mode:
# for 1, 2, 4, 8 and 16 concurrent clients (BENCH_CLIENTS), in worker mode
# (lmgen.execution = 'worker': one engine batches every session's calls)
# and in local mode (each backend runs its own engine), it prints
#   - generate: aggregate generated tokens/s (each client runs
#     BENCH_CALLS greedy generate() calls of BENCH_TOKENS tokens on
#     distinct prompts; tokens counted with lmgen.count_tokens on the
#     answers, the same way in both modes);
#   - summarize: aggregate rows/s (each client summarizes BENCH_ROWS
#     distinct short articles, max_tokens 24);
#   - the server's total memory: PSS summed over all its processes
#     (/proc/<pid>/smaps_rollup of the postmaster and its children), the
#     highest of samples taken every 0.2 s while the clients run; printed
#     for every row, the issue asks for 1 and 16 clients;
#   - the same per CPU second the server used (postmaster, its live and
#     reaped children, from /proc/<pid>/stat): on a machine shared with
#     other work, wall-clock throughput also measures how much CPU the
#     kernel gave 16 backends against one worker;
#   - in worker mode, the worker's mean and max batch size (lmgen.stats),
#     and for the generate run the share of its wall time the worker spent
#     in forward steps (lmgen.stats busy_seconds; the rest is time between
#     steps: admitting calls, handing out results, waiting for clients)
#     and the mean milliseconds per step;
#   - before the table: the time to the first result in a brand-new
#     connection (SELECT 1; count_tokens, which opens the model and runs
#     no forward pass; and a one-token generate), per mode.
#
# Usage: test/bench/bench_worker.sh
#   Starts a throwaway cluster (initdb in a temporary directory, lmgen
#   preloaded, CREATE EXTENSION lmgen) and removes it at the end; as root it
#   re-runs itself as $LMGEN_TEST_USER (default postgres), since initdb
#   refuses root.
# Env: BENCH_MODEL (registered name; default: the default model),
#   BENCH_CLIENTS (default "1 2 4 8 16"), BENCH_CALLS (default 2),
#   BENCH_TOKENS (default 32), BENCH_ROWS (default 4), BENCH_MODES
#   (default "local worker"), BENCH_LOCAL_THREADS (lmgen.threads of each
#   backend in local mode, default 1), BENCH_WORKER_THREADS
#   (lmgen.worker_threads, default 0 = the machine's cores),
#   BENCH_SHARED_WEIGHTS (lmgen.shared_weights: on, the default, reads each
#   model once into shared memory; off maps the file in every process).
# Needs the extension installed (make install) and the real models (make
# model).  Timings on a shared machine are noisy: the load average is
# printed with the figures.
set -euo pipefail
clients_list=${BENCH_CLIENTS:-1 2 4 8 16}
calls=${BENCH_CALLS:-2}
tokens=${BENCH_TOKENS:-32}
rows=${BENCH_ROWS:-4}
modes=${BENCH_MODES:-local worker}
local_threads=${BENCH_LOCAL_THREADS:-1}
worker_threads=${BENCH_WORKER_THREADS:-0}
shared_weights=${BENCH_SHARED_WEIGHTS:-on}
. "$(dirname "$0")/bench_cluster.sh"
bench_cluster_start bench_worker.sh "lmgen.threads = $local_threads
lmgen.worker_threads = $worker_threads
lmgen.shared_weights = $shared_weights
max_connections = 40"

# One query, unaligned output.
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$conn" -c "$1"; }

model=${BENCH_MODEL:-$(q "SELECT lmgen.default_model()")}
if [ -z "$model" ]; then
	echo "bench_worker.sh: no model: run 'make model' (or set BENCH_MODEL)" >&2
	exit 1
fi
m="'$model'"
postmaster=$(head -1 "$work/db/postmaster.pid")

# PSS in kB summed over the postmaster and its children.
server_pss() {
	local total=0 pid v
	for pid in $postmaster $(pgrep -P "$postmaster"); do
		v=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || true)
		total=$((total + ${v:-0}))
	done
	echo $total
}

# CPU clock ticks the server has used: the postmaster, its reaped children and its live children.
server_ticks() {
	local total pid
	total=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$postmaster/stat")
	for pid in $(pgrep -P "$postmaster"); do
		total=$((total + $(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0)))
	done
	echo "$total"
}

# Seconds since the epoch, with fractions.
now() { date +%s.%N; }

# Run one client script per client concurrently, sampling PSS; prints "seconds sum_of_outputs max_pss_kB cpu_seconds".
run_clients() {
	local mode=$1 n=$2 kind=$3 i pids=() start end sum=0 peak=0 p t0
	t0=$(server_ticks)
	start=$(now)
	for i in $(seq 1 "$n"); do
		if [ "$kind" = generate ]; then
			sql="SELECT sum(lmgen.count_tokens(generate('Write a short story about a $i-legged animal named number ' || j || '.', $tokens, model => $m), $m)) FROM generate_series(1, $calls) j"
		else
			sql="SELECT count(summarize('Report ' || j || ' of client $i: the town council met on Tuesday and agreed to repair ' || (j * $i) || ' streets before winter, paid for by the road fund.', 24, $m)) FROM generate_series(1, $rows) j"
		fi
		psql -X -q -At -v ON_ERROR_STOP=1 -d "$conn" -c "SET lmgen.execution = '$mode'" -c "$sql" > "$work/out.$i" &
		pids+=($!)
	done
	while kill -0 "${pids[@]}" 2>/dev/null; do
		p=$(server_pss)
		[ "$p" -gt "$peak" ] && peak=$p
		sleep 0.2
	done
	wait "${pids[@]}"
	end=$(now)
	for i in $(seq 1 "$n"); do
		sum=$((sum + $(tail -1 "$work/out.$i")))
	done
	echo "$(echo "$end - $start" | bc -l) $sum $peak $(echo "($(server_ticks) - $t0) / $(getconf CLK_TCK)" | bc -l)"
}

echo "model: $model ($(q "SELECT path FROM lmgen.models WHERE name = $m"))"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "generate: $calls calls x $tokens tokens per client; summarize: $rows rows per client; local: lmgen.threads = $local_threads; worker: lmgen.worker_threads = $worker_threads (0 = cores); lmgen.shared_weights = $shared_weights"
# warm up: the worker opens the model, and the page cache holds the file
q "SELECT generate('warm up', 4, model => $m)" >/dev/null
q "SET lmgen.execution = 'local'; SELECT generate('warm up', 4, model => $m)" >/dev/null
# time to the first result in a brand-new connection (median of 5): a connection with SELECT 1, and one with a 1-token generate
first_call() {
	local mode=$1 sql=$2 i t0 t1 ts=()
	for i in 1 2 3 4 5; do
		t0=$(now)
		psql -X -q -At -d "$conn" -c "SET lmgen.execution = '$mode'" -c "$sql" >/dev/null
		t1=$(now)
		ts+=("$(echo "($t1 - $t0) * 1000" | bc -l)")
	done
	printf '%s\n' "${ts[@]}" | sort -n | sed -n 3p
}
for mode in $modes; do
	printf 'new connection, %-6s: SELECT 1 %.1f ms; count_tokens %.1f ms; generate(1 token) %.1f ms\n' "$mode" \
		"$(first_call "$mode" "SELECT 1")" "$(first_call "$mode" "SELECT lmgen.count_tokens('Hi', $m)")" \
		"$(first_call "$mode" "SELECT generate('Hi', 1, model => $m)")"
done
printf '%-7s %7s %10s %12s %12s %10s %12s %12s %11s %10s %9s %8s\n' mode clients gen_tok/s gen_tok/cpu_s gen_peak_MB sum_rows/s sum_rows/cpu_s sum_peak_MB mean_batch max_batch gen_busy% ms/step
for mode in $modes; do
	for n in $clients_list; do
		q "SELECT lmgen.stats_reset()" >/dev/null
		read -r gs gt gp gc <<<"$(run_clients "$mode" "$n" generate)"
		busy="- -"
		if [ "$mode" = worker ]; then
			busy=$(q "SELECT round((100 * busy_seconds / $gs)::numeric, 1) || ' ' || round((1000 * busy_seconds / greatest(steps, 1))::numeric, 2) FROM lmgen.stats WHERE model = $m")
		fi
		read -r ss sr sp sc <<<"$(run_clients "$mode" "$n" summarize)"
		batch="- -"
		if [ "$mode" = worker ]; then
			batch=$(q "SELECT round(mean_batch::numeric, 2) || ' ' || max_batch FROM lmgen.stats WHERE model = $m")
		fi
		read -r mb xb <<<"$batch"
		read -r bp ms <<<"$busy"
		printf '%-7s %7d %10.1f %12.1f %12.0f %10.2f %12.2f %12.0f %11s %10s %9s %8s\n' "$mode" "$n" \
			"$(echo "$gt / $gs" | bc -l)" "$(echo "$gt / $gc" | bc -l)" "$(echo "$gp / 1024" | bc -l)" \
			"$(echo "$sr / $ss" | bc -l)" "$(echo "$sr / $sc" | bc -l)" "$(echo "$sp / 1024" | bc -l)" "$mb" "$xb" "$bp" "$ms"
	done
done
q "SELECT 'weights in shared memory: ' || coalesce(string_agg(model || ' ' || state || ' ' || pg_size_pretty(bytes), ', '), 'none') FROM lmgen.shared_weights"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
