#!/bin/bash
# sql_bench.sh — SELECT summarize(body) over 2,000 rows through lmgen's
# background worker on the GPU (lmgen.device = 'cuda'), in a throwaway
# cluster (test/bench/bench_cluster.sh); prints rows/s and lmgen.status().
# Needs the extension installed with lmgen_cuda.so (make install).  Env:
# SQL_ROWS (default 2000), SQL_MAX_TOKENS (default 32), SQL_DEVICE (cuda;
# cpu for the same query on the CPU), SQL_MODEL_DIR (lmgen.model_dir, for a
# stand-in model's default.gguf), SQL_THREADS (lmgen.worker_threads),
# SQL_MAX_REQUESTS (lmgen.max_requests: the sequences the worker runs at
# once on a device), SQL_BATCH_ROWS (lmgen.batch_rows: rows per worker call),
# SQL_DEVICE_LIBRARY (lmgen.device_library; e.g. the host test device).
set -euo pipefail
rows=${SQL_ROWS:-2000}
max_tokens=${SQL_MAX_TOKENS:-32}
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${BENCH_INNER_DIR:-}" ] && [ -f "$here/../bench/bench_cluster.sh" ]; then
	. "$here/../bench/bench_cluster.sh"
else
	. "$(dirname "$0")/bench_cluster.sh"
fi
pkglib=$(pg_config --pkglibdir)
bench_cluster_start sql_bench.sh "lmgen.device = '${SQL_DEVICE:-cuda}'
lmgen.gpu_memory_fraction = 0.5
lmgen.device_library = '${SQL_DEVICE_LIBRARY:-$pkglib/lmgen_cuda.so}'
${SQL_MODEL_DIR:+lmgen.model_dir = '$SQL_MODEL_DIR'}
${SQL_THREADS:+lmgen.worker_threads = $SQL_THREADS}
${SQL_MAX_REQUESTS:+lmgen.max_requests = $SQL_MAX_REQUESTS}"

# One query, unaligned output.
q() { psql -X -q -A -t -d "$conn" -c "$1"; }

echo "settings: device=$(q "SHOW lmgen.device" 2>&1 | head -1)"
q "SELECT * FROM lmgen.status()" 2>&1 | head -20 || true
q "CREATE TABLE articles AS SELECT i AS id, 'Article ' || i || ': The city council met on Tuesday to discuss the new park on the east side. Residents asked for more trees, a playground and longer opening hours; the council promised a decision by the end of the month after a public hearing.' AS body FROM generate_series(1, $rows) i"
t0=$(date +%s.%N)
n=$(q "${SQL_BATCH_ROWS:+SET lmgen.batch_rows = $SQL_BATCH_ROWS; }SELECT count(summarize(body, $max_tokens)) FROM articles" | tail -1)
t1=$(date +%s.%N)
awk -v n="$n" -v a="$t0" -v b="$t1" -v m="$max_tokens" \
	'BEGIN { printf "summarize: %d rows in %.2f s = %.1f rows/s (max_tokens %d)\n", n, b - a, n / (b - a), m }'
echo "lmgen.stats: requests|prompt_tokens|generated_tokens|busy_seconds|steps|mean_batch|max_batch"
q "SELECT requests, prompt_tokens, generated_tokens, round(busy_seconds::numeric, 2), steps, round(mean_batch::numeric, 1), max_batch FROM lmgen.stats" 2>&1 | head -5 || true
q "SELECT * FROM lmgen.status()" 2>&1 | head -20 || true
