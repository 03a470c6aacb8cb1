#!/bin/bash
# The README's first command: set everything up and run the main job.
# As root: installs the dependencies, builds and installs lmgen, fetches and
# installs the real models (make model: SmolLM2 default, Gemma 3), then (as
# the unprivileged user $LMGEN_TEST_USER, default postgres) starts a
# throwaway PostgreSQL cluster with lmgen preloaded, creates a small
# articles table and runs the main job: SELECT summarize(body) FROM articles.
# The cluster is removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
user=${LMGEN_TEST_USER:-postgres}

if [ "$(id -u)" -eq 0 ]; then
	.ci/install-deps
	make -s -j2
	make -s install
	make -s model
	work=$(mktemp -d /tmp/lmgen-quickstart.XXXXXX)
	cp -a "$top/." "$work/"
	chown -R "$user" "$work"
	trap 'rm -rf "$work"' EXIT
	runuser -u "$user" -- "$work/test/quickstart.sh"
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
