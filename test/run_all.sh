#!/bin/bash
# Runs every test layer and ends with one line "N passed, N failed, N skipped":
#   1. engine unit tests in C (test/unit/), run as the calling user;
#   2. a short libFuzzer run on the GGUF reader (test/fuzz/), when clang can build it;
#   3. pg_regress (sql/, expected/) on a temporary instance with
#      shared_preload_libraries = 'lmgen', and again on the real models when
#      `make model` has installed them (sql/models.sql);
#   4. TAP tests (test/t/, PostgreSQL::Test::Cluster);
#   5. lmgen on a Citus cluster (test/citus/run.sh), skipped without Citus.
# A skipped test (a missing model, a missing tool) is counted as skipped,
# never as passed, and says why.
# Works as written for root and for a user with sudo rights: only what needs
# root (installing missing build dependencies with .ci/install-deps, and
# `make install`) goes through sudo, and only when the caller is not root.
# initdb refuses to run as root, so as root the server tests (3, 4) run as
# the unprivileged user $LMGEN_TEST_USER (default postgres) in a copy of the
# tree that user owns; any other user runs them in place.
# Models and goldens in ../shared (or $LMGEN_SHARED) are used when present;
# tests that need them skip otherwise.
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
. test/lib/as_root.sh
if [ -z "${LMGEN_SHARED:-}" ] && [ -d "$top/../shared" ]; then
	LMGEN_SHARED=$(cd "$top/../shared" && pwd)
fi
export LMGEN_SHARED=${LMGEN_SHARED:-}
passed=0
failed=0
skipped=0

# Add a layer's counts (passed, failed, skipped) to the totals.
count() {
	passed=$((passed + $1)); failed=$((failed + $2)); skipped=$((skipped + $3))
	echo "== $4: $1 passed, $2 failed, $3 skipped"
}

# The counts of a "LAYER: N passed, N failed, N skipped" line in $2, as
# "P F S"; "0 1 0" (one failure) when the layer printed no such line.
layer_counts() {
	local line
	line=$(printf '%s\n' "$2" | grep -E "^$1: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped" | tail -1)
	if [ -n "$line" ]; then
		echo "$line" | awk '{print $2, $4, $6}'
	else
		echo "0 1 0"
	fi
}

# pg_regress counts of make target $1, printed as a "$2: ..." line; $3 is
# the number of test files the Makefile left out (skipped) and $4 why.
regress_layer() {
	local out p f
	out=$(make -s "$1" 2>&1); echo "$out"
	p=$(printf '%s\n' "$out" | grep -cE '\.\.\. ok')
	f=$(printf '%s\n' "$out" | grep -cE '\.\.\. FAILED')
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	[ -f regression.diffs ] && [ "$f" -gt 0 ] && cat regression.diffs
	echo "$2: $p passed, $f failed, $3 skipped${4:+ ($4)}"
}

# Server-side layers (3 and 4), run in the current directory.
server_tests() {
	local out shared skip=0 why=""
	shared=${LMGEN_SHARED:-../shared}
	if [ ! -f "$shared/models/stories260K.gguf" ]; then
		skip=1; why="generate_stories needs stories260K in ../shared or \$LMGEN_SHARED"
	fi
	regress_layer installcheck regress "$skip" "$why"

	# the real models, when `make model` installed them
	if [ -f "$(pg_config --sharedir)/lmgen/models/default.gguf" ]; then
		# sql/embed_minilm.sql runs only when the embedding model is installed
		if [ -f "$(pg_config --sharedir)/lmgen/models/all-MiniLM-L6-v2.F32.gguf" ]; then
			regress_layer installcheck-models models 0 ""
		else
			regress_layer installcheck-models models 1 "embed_minilm needs all-MiniLM-L6-v2: make model"
		fi
	else
		echo "models: 0 passed, 0 failed, 1 skipped (run 'make model' to install the real models)"
	fi

	out=$(make -s tap PROVE_FLAGS=--verbose 2>&1); echo "$out"
	local tp tf ts
	ts=$(printf '%s\n' "$out" | grep -ciE '^ *ok [0-9]+( -)? *# *skip')
	tp=$(printf '%s\n' "$out" | grep -cE '^ *ok [0-9]+')
	tp=$((tp - ts))
	tf=$(printf '%s\n' "$out" | grep -cE '^ *not ok [0-9]+')
	# a whole test file skipped (skip_all): "1..0 # SKIP reason"
	ts=$((ts + $(printf '%s\n' "$out" | grep -ciE '^ *1\.\.0 *# *skip')))
	if printf '%s\n' "$out" | grep -q 'Result: FAIL' && [ "$tf" -eq 0 ]; then tf=1; fi
	if ! printf '%s\n' "$out" | grep -q '^Result: '; then tf=$((tf + 1)); fi
	echo "tap: $tp passed, $tf failed, $ts skipped"

	# lmgen on a Citus cluster; "SKIP: citus not installed" where it is absent
	make -s installcheck-citus 2>&1
}

# Internal: the unprivileged half, started by the root half below.
if [ "${1:-}" = "--server-only" ]; then
	server_tests
	exit 0
fi

# A fresh machine: install the build dependencies first (as root).
if ! command -v make >/dev/null 2>&1 || ! command -v pg_config >/dev/null 2>&1 ||
	! command -v prove >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1; then
	echo "== installing build dependencies (.ci/install-deps)"
	as_root .ci/install-deps || { echo "0 passed, 1 failed, 0 skipped"; exit 1; }
fi

echo "== build"
if ! make -s all; then
	echo "build failed"; echo "0 passed, 1 failed, 0 skipped"; exit 1
fi

echo "== unit tests"
out=$(make -s unit 2>&1); echo "$out"
count $(layer_counts unit "$out") unit

echo "== fuzz"
if [ -x test/fuzz/run_fuzz.sh ]; then
	rc=0; test/fuzz/run_fuzz.sh "${LMGEN_FUZZ_SECONDS:-30}" || rc=$?
	# status 2: clang or its libFuzzer runtime is missing (said above)
	case $rc in 0) count 1 0 0 fuzz ;; 2) count 0 0 1 fuzz ;; *) count 0 1 0 fuzz ;; esac
fi

echo "== server tests"
if ! as_root make -s install >/dev/null; then
	echo "make install failed"; count 0 1 0 install
fi
if [ "$(id -u)" -eq 0 ]; then
	user=${LMGEN_TEST_USER:-postgres}
	work=$(mktemp -d /tmp/lmgen-check.XXXXXX)
	cp -a "$top/." "$work/"
	chown -R "$user" "$work"
	out=$(runuser -u "$user" -- env LMGEN_SHARED="$LMGEN_SHARED" "$work/test/run_all.sh" --server-only 2>&1)
	[ -f "$work/regression.diffs" ] && cp "$work/regression.diffs" "$top/regression.diffs"
	rm -rf "$work"
else
	out=$(server_tests 2>&1)
fi
echo "$out"
for layer in regress models tap citus; do
	count $(layer_counts "$layer" "$out") "$layer"
done

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
