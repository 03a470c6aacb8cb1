#!/bin/sh
# Runs each engine unit-test binary given as an argument and prints its TAP
# lines, then one line "unit: N passed, N failed" that test/run_all.sh reads.
passed=0; failed=0
for t in "$@"; do
	echo "# $t"
	out=$("./$t" 2>&1); rc=$?
	echo "$out"
	p=$(printf '%s\n' "$out" | grep -c '^ok ')
	f=$(printf '%s\n' "$out" | grep -c '^not ok ')
	if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - $t exited with status $rc"; f=1
	fi
	passed=$((passed + p)); failed=$((failed + f))
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
