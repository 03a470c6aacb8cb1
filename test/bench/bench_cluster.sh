# bench_cluster.sh — sourced by the SQL benchmarks (bench_sql.sh,
# bench_worker.sh): a throwaway cluster with lmgen preloaded.
#
# bench_cluster_start NAME CONF starts it in a new temporary directory
# ($work) with the lines CONF appended to postgresql.conf, creates the
# extension and sets $conn (a libpq connection string) and $bindir; the
# server is stopped and the directory removed when the script exits.  As
# root (initdb refuses root) it instead re-runs the calling script, NAME,
# as $LMGEN_TEST_USER (default postgres) from a copy in $work and exits
# with its status.  BENCH_LD_LIBRARY_PATH, when set, is the LD_LIBRARY_PATH
# of the cluster and the unprivileged run alone (libraries of a PostgreSQL
# brought from another system, test/gpu/pg_bundle.sh), never of runuser.

# Start the cluster, or re-run the caller as an unprivileged user.
bench_cluster_start() {
	local name=$1 conf=$2 here user
	here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	if [ -n "${BENCH_INNER_DIR:-}" ]; then
		work=$BENCH_INNER_DIR
	else
		work=$(mktemp -d /tmp/lmgen-bench.XXXXXX)
		chmod 755 "$work"
	fi
	if [ "$(id -u)" -eq 0 ]; then
		user=${LMGEN_TEST_USER:-postgres}
		install -m 755 "$0" "$work/$name"
		install -m 644 "$here/bench_cluster.sh" "$work/bench_cluster.sh"
		chown -R "$user" "$work"
		trap 'rm -rf "$work"' EXIT
		runuser -u "$user" -- env BENCH_INNER_DIR="$work" PATH="$PATH" BENCH_LD_LIBRARY_PATH="${BENCH_LD_LIBRARY_PATH:-}" "$work/$name"
		exit $?
	fi
	[ -n "${BENCH_LD_LIBRARY_PATH:-}" ] && export LD_LIBRARY_PATH=$BENCH_LD_LIBRARY_PATH
	bindir=$(pg_config --bindir)
	"$bindir/initdb" -D "$work/db" -A trust -U postgres >/dev/null
	cat >> "$work/db/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$work'
shared_preload_libraries = 'lmgen'
$conf
CONF
	trap '"$bindir/pg_ctl" -D "$work/db" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
	"$bindir/pg_ctl" -D "$work/db" -l "$work/server.log" -w start >/dev/null
	conn="host=$work user=postgres dbname=postgres"
	psql -X -q -d "$conn" -c "CREATE EXTENSION lmgen" >/dev/null
}
