#!/bin/bash
# Runs every test layer and ends with one line "N passed, N failed":
#   1. engine unit tests in C (test/unit/), run as the calling user;
#   2. a short libFuzzer run on the GGUF reader (test/fuzz/), when clang can build it;
#   3. pg_regress (sql/, expected/) on a temporary instance with
#      shared_preload_libraries = 'lmgen', and again on the real models when
#      `make model` has installed them (sql/models.sql);
#   4. TAP tests (test/t/, PostgreSQL::Test::Cluster).
# Server tests need the extension installed: as root this script runs
# `make install` itself, then runs 3 and 4 as the unprivileged user
# $LMGEN_TEST_USER (default postgres) in a copy of the tree that user owns,
# because initdb refuses to run as root.
# Models and goldens in ../shared (or $LMGEN_SHARED) are used when present;
# tests that need them skip otherwise.
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
if [ -z "${LMGEN_SHARED:-}" ] && [ -d "$top/../shared" ]; then
	LMGEN_SHARED=$(cd "$top/../shared" && pwd)
fi
export LMGEN_SHARED=${LMGEN_SHARED:-}
passed=0
failed=0

# Add a layer's counts to the totals.
count() { passed=$((passed + $1)); failed=$((failed + $2)); echo "== $3: $1 passed, $2 failed"; }

# Server-side layers (3 and 4), run in the current directory.
server_tests() {
	local out p f
	out=$(make -s installcheck 2>&1); echo "$out"
	p=$(printf '%s\n' "$out" | grep -cE '\.\.\. ok')
	f=$(printf '%s\n' "$out" | grep -cE '\.\.\. FAILED')
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	[ -f regression.diffs ] && [ "$f" -gt 0 ] && cat regression.diffs
	echo "regress: $p passed, $f failed"

	# the real models, when `make model` installed them
	if [ -f "$(pg_config --sharedir)/lmgen/models/default.gguf" ]; then
		out=$(make -s installcheck-models 2>&1); echo "$out"
		p=$(printf '%s\n' "$out" | grep -cE '\.\.\. ok')
		f=$(printf '%s\n' "$out" | grep -cE '\.\.\. FAILED')
		if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then f=1; fi
		[ -f regression.diffs ] && [ "$f" -gt 0 ] && cat regression.diffs
		echo "models: $p passed, $f failed"
	else
		echo "models: 0 passed, 0 failed (skipped: run 'make model' to install the real models)"
	fi

	out=$(make -s tap PROVE_FLAGS=--verbose 2>&1); echo "$out"
	local tp tf
	tp=$(printf '%s\n' "$out" | grep -cE '^ok [0-9]+')
	tf=$(printf '%s\n' "$out" | grep -cE '^not ok [0-9]+')
	if printf '%s\n' "$out" | grep -q 'Result: FAIL' && [ "$tf" -eq 0 ]; then tf=1; fi
	if ! printf '%s\n' "$out" | grep -q '^Result: '; then tf=$((tf + 1)); fi
	echo "tap: $tp passed, $tf failed"
}

# Internal: the unprivileged half, started by the root half below.
if [ "${1:-}" = "--server-only" ]; then
	server_tests
	exit 0
fi

echo "== build"
if ! make -s all; then
	echo "build failed"; echo "0 passed, 1 failed"; exit 1
fi

echo "== unit tests"
out=$(make -s unit 2>&1); echo "$out"
line=$(printf '%s\n' "$out" | grep -E '^unit: ' | tail -1)
if [ -n "$line" ]; then
	count "$(echo "$line" | awk '{print $2}')" "$(echo "$line" | awk '{print $4}')" unit
else
	count 0 1 unit
fi

echo "== fuzz"
if [ -x test/fuzz/run_fuzz.sh ]; then
	if test/fuzz/run_fuzz.sh "${LMGEN_FUZZ_SECONDS:-30}"; then count 1 0 fuzz; else count 0 1 fuzz; fi
fi

echo "== server tests"
if [ "$(id -u)" -eq 0 ]; then
	user=${LMGEN_TEST_USER:-postgres}
	make -s install >/dev/null || { echo "make install failed"; count 0 1 install; }
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
for layer in regress models tap; do
	line=$(printf '%s\n' "$out" | grep -E "^$layer: " | tail -1)
	if [ -n "$line" ]; then
		count "$(echo "$line" | awk '{print $2}')" "$(echo "$line" | awk '{print $4}')" "$layer"
	else
		count 0 1 "$layer"
	fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
