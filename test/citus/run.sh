#!/bin/bash
# test/citus/run.sh — lmgen on a Citus cluster, checked against a local copy.
#
# Given a Citus installation in this PostgreSQL (citus.so in pg_config
# --pkglibdir), starts a coordinator and two workers in a temporary
# directory on free localhost ports, with shared_preload_libraries =
# 'citus,lmgen' and a model directory of their own on each node, creates
# citus and lmgen on every node and checks, on a distributed table of rows
# from ../shared/data/summaries_public.csv and on a plain local copy of it:
#   - the registry is one: load_model / set_default_model / unload_model on
#     the coordinator reach the workers (with the file's sha256), and a model
#     file missing or different on a worker is an ERROR naming the node and
#     the file, the coordinator's registry unchanged;
#   - the card's query, classify, classify_scores, tokenize, embed,
#     generate, INSERT ... SELECT into a co-located table, lmgen.fill and a
#     trigger that writes with generate give on the
#     distributed table exactly the results of the local table, and the
#     model calls are pushed down to the workers (EXPLAIN);
#   - lmgen.default_model set with SET LOCAL reaches the workers with
#     citus.propagate_set_commands = 'local'.
# Prints "ok N - ..." / "not ok N - ..." lines, EXPLAIN excerpts and
# timings, and ends with "citus: P passed, F failed, S skipped"; exits 1 when
# a check failed.  Without Citus it prints "SKIP: citus not installed" and
# exits 0 (counted as skipped, not passed).  As root (initdb refuses root)
# it re-runs itself as $LMGEN_TEST_USER (default postgres) from a copy.
#
# Settings: CITUS_TEST_ROWS (default 6) rows, LMGEN_SHARED (default ../shared).
set -u
here=$(cd "$(dirname "$0")" && pwd)
bindir=$(pg_config --bindir)
pkglibdir=$(pg_config --pkglibdir)
sharedir=$(pg_config --sharedir)
rows=${CITUS_TEST_ROWS:-6}

if [ ! -f "$pkglibdir/citus.so" ]; then
	echo "SKIP: citus not installed ($pkglibdir/citus.so is missing; see README.md, \"Citus\")"
	echo "citus: 0 passed, 0 failed, 1 skipped"
	exit 0
fi
shared=${LMGEN_SHARED:-$here/../../../shared}
models=$sharedir/lmgen/models
csv=$shared/data/summaries_public.csv
for need in "$csv" "$shared/models/stories260K-Q4_0.gguf" "$shared/models/stories260K-Q6_K.gguf" \
	"$models/SmolLM2-135M-Instruct.Q4_1.gguf" "$models/all-MiniLM-L6-v2.F32.gguf"; do
	if [ ! -f "$need" ]; then
		echo "SKIP: $need is missing (make model; LMGEN_SHARED)"
		echo "citus: 0 passed, 0 failed, 1 skipped"
		exit 0
	fi
done

if [ -n "${CITUS_INNER_DIR:-}" ]; then
	work=$CITUS_INNER_DIR
else
	work=$(mktemp -d /tmp/lmgen-citus.XXXXXX)
	chmod 755 "$work"
fi

# Each node's model directory: SmolLM2 and MiniLM (registered at CREATE
# EXTENSION), stories260K as stories.gguf everywhere, gone.gguf on the
# coordinator only, odd.gguf the same on the coordinator and the first
# worker, and on the second of the same size with one byte changed.  Hard links where allowed.
if [ ! -d "$work/models" ]; then
	for node in c w1 w2; do
		mkdir -p "$work/models/$node"
		for f in SmolLM2-135M-Instruct.Q4_1.gguf all-MiniLM-L6-v2.F32.gguf; do
			ln "$models/$f" "$work/models/$node/$f" 2>/dev/null || cp "$models/$f" "$work/models/$node/$f"
		done
		cp "$shared/models/stories260K-Q4_0.gguf" "$work/models/$node/stories.gguf"
	done
	cp "$shared/models/stories260K-Q6_K.gguf" "$work/models/c/gone.gguf"
	cp "$shared/models/stories260K-Q6_K.gguf" "$work/models/c/odd.gguf"
	cp "$shared/models/stories260K-Q6_K.gguf" "$work/models/w1/odd.gguf"
	# same size, one byte of the last tensor's data changed
	cp "$shared/models/stories260K-Q6_K.gguf" "$work/models/w2/odd.gguf"
	chmod u+w "$work/models/w2/odd.gguf"
	size=$(stat -c %s "$work/models/w2/odd.gguf")
	printf '\x5a' | dd of="$work/models/w2/odd.gguf" bs=1 seek=$((size - 7)) conv=notrunc status=none
	cp "$csv" "$work/data.csv"
fi

if [ "$(id -u)" -eq 0 ]; then
	user=${LMGEN_TEST_USER:-postgres}
	install -m 755 "$0" "$work/run.sh"
	chown -R "$user" "$work"
	trap 'rm -rf "$work"' EXIT
	runuser -u "$user" -- env CITUS_INNER_DIR="$work" LMGEN_SHARED="$shared" CITUS_TEST_ROWS="$rows" "$work/run.sh"
	exit $?
fi

passed=0
failed=0
n=0
# Record one check: ok/not ok with its description.
check() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $n - $2"; passed=$((passed + 1))
	else
		echo "not ok $n - $2"; failed=$((failed + 1))
	fi
}
# Compare two outputs; print both when they differ.
same() {
	if [ "$2" = "$3" ]; then
		check 0 "$1"
	else
		check 1 "$1"
		echo "#   distributed: $(printf '%s' "$2" | head -c 2000)"
		echo "#   local:       $(printf '%s' "$3" | head -c 2000)"
	fi
}
# Seconds from $1 to $2 (date +%s.%N), two decimals.
elapsed() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'
}
# Free TCP ports on localhost, one per argument.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
pc=$(free_port); pw1=$(free_port); pw2=$(free_port)
while [ "$pw1" = "$pc" ]; do pw1=$(free_port); done
while [ "$pw2" = "$pc" ] || [ "$pw2" = "$pw1" ]; do pw2=$(free_port); done
# the first worker has the lower port (Citus lists nodes in port order)
if [ "$pw1" -gt "$pw2" ]; then t=$pw1; pw1=$pw2; pw2=$t; fi
declare -A port=([c]=$pc [w1]=$pw1 [w2]=$pw2)

stop_all() {
	for node in c w1 w2; do
		[ -d "$work/$node" ] && "$bindir/pg_ctl" -D "$work/$node" -m immediate stop >/dev/null 2>&1
	done
	rm -rf "$work"
}
trap stop_all EXIT

for node in c w1 w2; do
	"$bindir/initdb" -D "$work/$node" -A trust -U postgres >/dev/null || { echo "initdb failed"; exit 1; }
	cat >> "$work/$node/postgresql.conf" <<CONF
port = ${port[$node]}
listen_addresses = 'localhost'
unix_socket_directories = '$work'
shared_preload_libraries = 'citus,lmgen'
lmgen.model_dir = '$work/models/$node'
max_connections = 60
citus.shard_count = 4
citus.max_adaptive_executor_pool_size = 4
citus.enable_unsafe_triggers = on
CONF
	"$bindir/pg_ctl" -D "$work/$node" -l "$work/$node.log" -w start >/dev/null || {
		echo "$node did not start:"; tail -20 "$work/$node.log"; exit 1; }
done

# psql on a node (c, w1, w2): unaligned, tuples only, stop at the first error.
q() {
	local node=$1; shift
	psql -X -A -t -q -v ON_ERROR_STOP=1 -h localhost -p "${port[$node]}" -U postgres -d postgres "$@"
}

for node in c w1 w2; do
	q "$node" -c "CREATE EXTENSION citus" -c "CREATE EXTENSION lmgen" || exit 1
done
q c -c "SELECT citus_set_coordinator_host('localhost', $pc)" \
	-c "SELECT citus_add_node('localhost', $pw1)" -c "SELECT citus_add_node('localhost', $pw2)" >/dev/null || exit 1
echo "# cluster: coordinator localhost:$pc, workers localhost:$pw1 and localhost:$pw2 (citus $(q c -c "SELECT extversion FROM pg_extension WHERE extname = 'citus'"))"

# --- one registry -----------------------------------------------------------
workers_registry() {
	q c -c "SELECT string_agg(nodeport || ':' || result, ' | ' ORDER BY nodeport) FROM run_command_on_workers(\$\$SELECT coalesce(string_agg(name || (CASE WHEN is_default THEN '*' ELSE '' END) || '=' || left(sha256, 12), ',' ORDER BY name), '') FROM lmgen.model_registry\$\$)"
}
coordinator_registry() {
	q c -c "SELECT coalesce(string_agg(name || (CASE WHEN is_default THEN '*' ELSE '' END) || '=' || left(sha256, 12), ',' ORDER BY name), '') FROM lmgen.model_registry"
}
expect_workers() {
	local mine; mine=$(coordinator_registry)
	same "$1" "$(workers_registry)" "$(echo "$pw1:$mine | $pw2:$mine" | tr -d '\n')"
}
q c -c "SELECT lmgen.load_model('stories', 'stories.gguf')" >/dev/null
expect_workers "load_model on the coordinator registers the model on every worker (same sha256)"
q c -c "SELECT lmgen.set_default_model('stories')" >/dev/null
expect_workers "set_default_model reaches every worker"
q c -c "SELECT lmgen.set_default_model('smollm2')" -c "SELECT lmgen.unload_model('stories')" >/dev/null
expect_workers "unload_model reaches every worker"
q c -c "SELECT lmgen.load_model('stories', 'stories.gguf')" >/dev/null
before=$(coordinator_registry)
err=$(q c -c "SELECT lmgen.load_model('gone', 'gone.gguf')" 2>&1)
echo "$err" | sed 's/^/#   /'
echo "$err" | grep -q "node localhost:$pw1" && echo "$err" | grep -q '"gone.gguf"' 
check $? "a model file missing on a worker: ERROR naming the node and the file"
same "...and the coordinator's registry is unchanged" "$(coordinator_registry)" "$before"
err=$(q c -c "SELECT lmgen.load_model('odd', 'odd.gguf')" 2>&1)
echo "$err" | sed 's/^/#   /'
echo "$err" | grep -q "node localhost:$pw2" && echo "$err" | grep -q '"odd.gguf"' && echo "$err" | grep -q "sha256"
check $? "a model file that differs on a worker (same name, other sha256): ERROR naming the node and the file"
q c -c "SELECT lmgen.sync_models()" >/dev/null
expect_workers "lmgen.sync_models() puts every worker back in line"

# --- the table, distributed and local ----------------------------------------
python3 - "$work/data.csv" "$rows" > "$work/rows.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline='')))[: int(sys.argv[2])]
w = csv.writer(sys.stdout)
for i, r in enumerate(rows, 1):
    body = (r['synopsis'] + '. ' + ' '.join(r['description'].split()))[:400]
    w.writerow([i, r['section'], body])
PY
for t in articles articles_local; do
	q c -c "CREATE TABLE $t (id int PRIMARY KEY, section text, body text, summary text, ad text)" \
		-c "CREATE TABLE ${t}_out (id int PRIMARY KEY, summary text)" || exit 1
done
q c -c "SELECT create_distributed_table('articles', 'id')" \
	-c "SELECT create_distributed_table('articles_out', 'id', colocate_with => 'articles')" >/dev/null || exit 1
for t in articles articles_local; do
	q c -c "\\copy $t (id, section, body) FROM '$work/rows.csv' WITH (FORMAT csv)" || exit 1
done
echo "# $(q c -c "SELECT count(*) FROM articles") rows from summaries_public.csv; shards: $(q c -c "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'articles'::regclass")"

# Run one SELECT on both tables (TABLE is replaced), timed; sets $dist and $local.
both() {
	local sql=$1 t0 t1 t2
	t0=$(date +%s.%N)
	dist=$(q c -c "${sql//TABLE/articles}")
	t1=$(date +%s.%N)
	local=$(q c -c "${sql//TABLE/articles_local}")
	t2=$(date +%s.%N)
	echo "# time: distributed $(elapsed "$t0" "$t1") s, local $(elapsed "$t1" "$t2") s"
}

summ="summarize(body, max_tokens => 32, max_words => 10)"
echo "# EXPLAIN (VERBOSE, COSTS OFF) SELECT id, $summ FROM articles:"
plan=$(q c -c "EXPLAIN (VERBOSE, COSTS OFF) SELECT id, $summ FROM articles")
echo "$plan" | sed 's/^/#   /' | head -12
echo "$plan" | grep -q "Task Count: 4" && echo "$plan" | grep -Eq "Query: SELECT id, (public\.)?summarize\(body"
check $? "the card's query is pushed down: each shard's query calls summarize on its worker"

both "SELECT id, $summ FROM TABLE ORDER BY id"
same "the card's query (summarize) equals the local table's" "$dist" "$local"
summaries=$local
both "SELECT id, classify(body, ARRAY['games', 'libs', 'net', 'science', 'text']) FROM TABLE ORDER BY id"
same "classify equals the local table's" "$dist" "$local"
both "SELECT id, label, probability FROM (SELECT id, (classify_scores(body, ARRAY['games', 'libs', 'net'])).* FROM TABLE) s ORDER BY id, label"
same "classify_scores equals the local table's" "$dist" "$local"
both "SELECT id, lmgen.count_tokens(body), md5(lmgen.tokenize(body)::text) FROM TABLE ORDER BY id"
same "count_tokens and tokenize equal the local table's" "$dist" "$local"
both "SELECT id, md5(embed(body)::text) FROM TABLE ORDER BY id"
same "embed equals the local table's (bit for bit)" "$dist" "$local"
both "SELECT id, generate('Write a product slogan for: ' || left(body, 80), max_tokens => 12) FROM TABLE ORDER BY id"
same "generate equals the local table's" "$dist" "$local"

echo "# EXPLAIN INSERT INTO articles_out SELECT id, $summ FROM articles:"
q c -c "EXPLAIN (COSTS OFF) INSERT INTO articles_out SELECT id, $summ FROM articles" | sed 's/^/#   /' | head -6
t0=$(date +%s.%N)
q c -c "INSERT INTO articles_out SELECT id, $summ FROM articles"
q c -c "INSERT INTO articles_local_out SELECT id, $summ FROM articles_local"
echo "# time: both INSERT ... SELECT $(elapsed "$t0" "$(date +%s.%N)") s"
same "INSERT ... SELECT summarize into a co-located table equals the local table's" \
	"$(q c -c "SELECT id, summary FROM articles_out ORDER BY id")" "$(q c -c "SELECT id, summary FROM articles_local_out ORDER BY id")"

err=$(q c -c "UPDATE articles SET summary = $summ" 2>&1)
echo "# plain UPDATE on the distributed table: $err"
t0=$(date +%s.%N)
filled=$(q c -c "CALL lmgen.fill('articles', 'summary', '$summ', batch_size => 2)")
t1=$(date +%s.%N)
filled_local=$(q c -c "CALL lmgen.fill('articles_local', 'summary', '$summ', batch_size => 2)")
echo "# time: lmgen.fill distributed $(elapsed "$t0" "$t1") s, local $(elapsed "$t1" "$(date +%s.%N)") s"
same "lmgen.fill fills every row of the distributed table (rows_filled)" "$filled" "$rows"
same "lmgen.fill on the distributed table equals the local table's" \
	"$(q c -c "SELECT id, summary FROM articles ORDER BY id")" "$(q c -c "SELECT id, summary FROM articles_local ORDER BY id")"
same "...and equals the card's query" "$(q c -c "SELECT id, summary FROM articles ORDER BY id")" "$summaries"
same "lmgen.fill again has nothing left to do" "$(q c -c "CALL lmgen.fill('articles', 'summary', '$summ')")" "0"

# a trigger writing ad copy on INSERT
q c -c "CREATE FUNCTION write_ad() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
	NEW.ad := generate('One catchy line for: ' || left(NEW.body, 80), max_tokens => 12);
	RETURN NEW;
END \$\$" || exit 1
for t in articles articles_local; do
	q c -c "CREATE TRIGGER write_ad BEFORE INSERT ON $t FOR EACH ROW EXECUTE FUNCTION write_ad()" || exit 1
	q c -c "INSERT INTO $t (id, section, body) SELECT id + 1000, section, body FROM articles_local WHERE id <= 2" || exit 1
done
same "a trigger that writes with generate gives the local table's rows" \
	"$(q c -c "SELECT id, ad FROM articles WHERE id > 1000 ORDER BY id")" \
	"$(q c -c "SELECT id, ad FROM articles_local WHERE id > 1000 ORDER BY id")"
q c -c "SELECT id, ad FROM articles WHERE id > 1000 ORDER BY id" | grep -v '^$' | sed 's/^/#   ad: /'

# lmgen.default_model with SET LOCAL, carried by citus.propagate_set_commands
g="SELECT id, generate(left(body, 60), max_tokens => 8) FROM TABLE ORDER BY id"
# in a transaction block (one -c string of several statements is not one)
in_block() {
	printf '%s\n' "BEGIN;" "SET LOCAL citus.propagate_set_commands = 'local';" \
		"SET LOCAL lmgen.default_model = 'stories';" "$1;" "COMMIT;" | q c
}
dist=$(in_block "${g//TABLE/articles}")
local=$(in_block "${g//TABLE/articles_local}")
same "SET LOCAL lmgen.default_model reaches the workers (citus.propagate_set_commands = 'local')" "$dist" "$local"
both "SELECT id, generate(left(body, 60), max_tokens => 8, model => 'stories') FROM TABLE ORDER BY id"
same "an explicit model argument travels with the pushed-down query" "$dist" "$local"
plain=$(q c -c "SET lmgen.default_model = 'stories'; ${g//TABLE/articles}")
if [ "$plain" = "$local" ]; then
	echo "# a session-level SET lmgen.default_model also reached the workers"
else
	echo "# as documented: a session-level SET lmgen.default_model does not reach the workers (they used the registry's default)"
fi

echo "citus: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
