#!/bin/bash
# The README's first command: set everything up and run the main job.
# Installs the dependencies (.ci/install-deps), builds and installs lmgen,
# fetches and installs the real models (make model: SmolLM2 default,
# Gemma 3), then starts a throwaway PostgreSQL cluster with lmgen preloaded,
# creates a small articles table and runs the main job:
# SELECT summarize(body) FROM articles.  The cluster is removed at exit.
# Works as written for root and for a user with sudo rights: the steps that
# need root (install-deps, make install, make model) go through sudo only
# when the caller is not root.  initdb refuses to run as root, so as root
# the cluster runs as the unprivileged user $LMGEN_TEST_USER (default
# postgres) in a copy of the tree it owns; any other user runs it itself.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
user=${LMGEN_TEST_USER:-postgres}
. test/lib/as_root.sh

if [ "${1:-}" != "--cluster" ]; then
	as_root .ci/install-deps
	make -s -j2
	as_root make -s install
	as_root make -s model
	if [ "$(id -u)" -ne 0 ]; then
		exec "$top/test/quickstart.sh" --cluster
	fi
	work=$(mktemp -d /tmp/lmgen-quickstart.XXXXXX)
	cp -a "$top/." "$work/"
	chown -R "$user" "$work"
	trap 'rm -rf "$work"' EXIT
	runuser -u "$user" -- "$work/test/quickstart.sh" --cluster
	exit 0
fi

# Unprivileged part: a throwaway cluster in a temporary directory.
bindir=$(pg_config --bindir)

data=$(mktemp -d /tmp/lmgen-cluster.XXXXXX)
sock=$data/sock
mkdir -p "$sock"
trap '"$bindir/pg_ctl" -D "$data/db" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$data"' EXIT
"$bindir/initdb" -D "$data/db" -A trust -U postgres >/dev/null
cat >> "$data/db/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$sock'
shared_preload_libraries = 'lmgen'
CONF
"$bindir/pg_ctl" -D "$data/db" -l "$data/server.log" -w start >/dev/null
psql -h "$sock" -U postgres -d postgres -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION lmgen;
\echo
\echo The registered models:
SELECT name, architecture, parameters, quantization, context_length, "default" FROM lmgen.models;
\echo A small articles table (test/data/articles.sql), and the main job:
\i test/data/articles.sql
\echo SELECT summarize(body) FROM articles;
\timing on
SELECT summarize(body) FROM articles;
SQL
