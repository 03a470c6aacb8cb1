#!/bin/bash
# bench_train.sh — lmgen.train_classifier on the Debian package descriptions
# (../shared/data/debian_packages_{train,test}.csv; text = synopsis || '. ' ||
# description, label = section, 16 classes).  Prints, for the n-gram
# features: test accuracy and macro-F1 (lmgen.evaluate on the test file),
# training time, predict() time over 100,000 rows, and how long a
# pg_cancel_backend takes to stop a training.
#
# Usage: test/bench/bench_train.sh [SQL-ARGS]   (from the repository root, after make install)
#   SQL-ARGS are extra train_classifier arguments, e.g. "epochs => 20, l2 => 0".
#   BENCH_EMBED_ROWS=N also compares 'ngrams', 'embedding' and 'both' (the
#   default model's embed(), lmgen.threads = 2) trained on the first N train
#   rows and scored on the first N/5 test rows (by package name): embedding
#   every row is slow, so N is kept small.
# It runs a throwaway cluster (initdb in /tmp, lmgen preloaded) and removes
# it at the end; as root it re-runs itself as the postgres user.
set -eu
cd "$(dirname "$0")/../.."
top=$(pwd)
if [ "$(id -u)" = 0 ]; then
	work=$(mktemp -d /tmp/lmgen-bench-train.XXXXXX)
	chown postgres "$work"
	exec runuser -u postgres -- env BENCH_DIR="$work" LMGEN_SHARED="${LMGEN_SHARED:-$top/../shared}" "$0" "$@"
fi
ARGS=${1:-}
[ -n "$ARGS" ] && ARGS=", $ARGS"
DATA=${LMGEN_SHARED:-$top/../shared}/data
BENCH_DIR=${BENCH_DIR:-$(mktemp -d /tmp/lmgen-bench-train.XXXXXX)}
BIN=$(pg_config --bindir)
PGDATA=$BENCH_DIR/data
PORT=$((20000 + RANDOM % 20000))
export PGHOST=$BENCH_DIR PGPORT=$PORT PGDATABASE=postgres

cleanup() { "$BIN/pg_ctl" -D "$PGDATA" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$BENCH_DIR"; }
trap cleanup EXIT

"$BIN/initdb" -D "$PGDATA" -A trust >/dev/null
cat >> "$PGDATA/postgresql.conf" <<CONF
shared_preload_libraries = 'lmgen'
unix_socket_directories = '$BENCH_DIR'
listen_addresses = ''
port = $PORT
CONF
"$BIN/pg_ctl" -D "$PGDATA" -l "$BENCH_DIR/log" -w start >/dev/null

psql -qX -v ON_ERROR_STOP=1 <<SQL
CREATE EXTENSION lmgen;
CREATE TABLE pkg_train (package text, section text, synopsis text, description text);
CREATE TABLE pkg_test (LIKE pkg_train);
\copy pkg_train FROM '$DATA/debian_packages_train.csv' CSV HEADER
\copy pkg_test FROM '$DATA/debian_packages_test.csv' CSV HEADER
SQL

# one number out of a query
q() { psql -qXAt -v ON_ERROR_STOP=1 -c "$1"; }

echo "rows: train $(q 'SELECT count(*) FROM pkg_train'), test $(q 'SELECT count(*) FROM pkg_test'), classes $(q 'SELECT count(DISTINCT section) FROM pkg_train')"
echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

# train on the whole train file (test_fraction 0); the test file is scored once, by evaluate()
t0=$(date +%s.%N)
res=$(q "SET client_min_messages = warning;
         SELECT lmgen.train_classifier('debian', \$\$SELECT synopsis || '. ' || description, section FROM pkg_train\$\$,
                                      test_fraction => 0$ARGS)")
t1=$(date +%s.%N)
echo "train_classifier(features => 'ngrams'$ARGS): $(echo "$t1 - $t0" | bc) s wall"
echo "  $(echo "$res" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("epochs run %d, best epoch %d, training_seconds %.2f, rows %d" % (r["epochs_run"], r["best_epoch"], r["training_seconds"], r["rows_train"] + r["rows_validation"]))')"
ev=$(q "SELECT lmgen.evaluate('debian', \$\$SELECT synopsis || '. ' || description, section FROM pkg_test\$\$)")
echo "  test file: $(echo "$ev" | python3 -c 'import json,sys; m=json.load(sys.stdin)["metrics"]; print("accuracy %.4f, macro-F1 %.4f, log-loss %.4f (%d rows)" % (m["accuracy"], m["macro_f1"], m["log_loss"], m["rows"]))')"
echo "  stored weights: $(q "SELECT pg_size_pretty(weight_bytes::bigint) FROM lmgen.classifiers WHERE name = 'debian'")"

# predict over 100,000 rows (the test file 100 times)
q "CREATE TABLE pred_rows AS SELECT synopsis || '. ' || description AS body, section
   FROM pkg_test, generate_series(1, 100) g" >/dev/null
t0=$(date +%s.%N)
correct=$(q "SELECT count(*) FILTER (WHERE lmgen.predict('debian', body) = section) || '/' || count(*) FROM pred_rows")
t1=$(date +%s.%N)
echo "predict over $(echo "$correct" | cut -d/ -f2) rows: $(echo "$t1 - $t0" | bc) s ($correct correct)"

# the embedding features on a subset
if [ -n "${BENCH_EMBED_ROWS:-}" ]; then
	n=$BENCH_EMBED_ROWS
	for f in ngrams embedding both; do
		t0=$(date +%s.%N)
		q "SET client_min_messages = warning; SET lmgen.threads = 2;
		   SELECT lmgen.train_classifier('sub_$f', \$\$SELECT synopsis || '. ' || description, section
		       FROM (SELECT * FROM pkg_train ORDER BY package LIMIT $n) s\$\$, features => '$f', test_fraction => 0)" >/dev/null
		t1=$(date +%s.%N)
		ev=$(q "SET lmgen.threads = 2; SELECT lmgen.evaluate('sub_$f', \$\$SELECT synopsis || '. ' || description, section
		       FROM (SELECT * FROM pkg_test ORDER BY package LIMIT $((n / 5))) s\$\$)")
		t2=$(date +%s.%N)
		echo "features => '$f' on $n train rows: train $(echo "$t1 - $t0" | bc) s, evaluate $(echo "$t2 - $t1" | bc) s, $(echo "$ev" | python3 -c 'import json,sys; m=json.load(sys.stdin)["metrics"]; print("accuracy %.4f, macro-F1 %.4f (%d test rows)" % (m["accuracy"], m["macro_f1"], m["rows"]))')"
	done
fi

# cancel: start a long training, cancel it once it is in its epochs, time until the query ends
psql -qXAt -c "SET client_min_messages = warning;
   SELECT lmgen.train_classifier('slow', \$\$SELECT synopsis || '. ' || description, section FROM pkg_train, generate_series(1, 4)\$\$,
                                 epochs => 1000, batch_size => 1, test_fraction => 0)" >/dev/null 2>&1 &
bg=$!
for _ in $(seq 1 600); do
	[ "$(q "SELECT count(*) FROM lmgen.training_progress WHERE phase = 'training'")" = 1 ] && break
	sleep 0.1
done
pid=$(q "SELECT pid FROM lmgen.training_progress WHERE classifier = 'slow'")
lat=$(psql -qXAt <<SQL
SELECT pg_cancel_backend($pid) AS sent, clock_timestamp() AS t0 \gset
DO \$\$ BEGIN
  -- pg_stat_activity is a snapshot per transaction: clear it each time round
  FOR i IN 1 .. 10000 LOOP
    PERFORM pg_stat_clear_snapshot();
    EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $pid AND state = 'active');
    PERFORM pg_sleep(0.001);
  END LOOP;
END \$\$;
SELECT round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000, 1);
SQL
)
wait $bg || true
echo "cancel during training: query ended $lat ms after pg_cancel_backend"
