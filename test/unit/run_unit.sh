#!/bin/sh
# Runs each engine unit-test binary given as an argument and prints its TAP
# lines, then one line "unit: N passed, N failed, N skipped" that
# test/run_all.sh reads.  A skip ("ok N # SKIP ..." for one group of checks,
# "1..0 # SKIP ..." for a whole program) counts as skipped, never as passed.
# The end-to-end model tests run again on the scalar and AVX2 kernel paths
# (LMGEN_ISA), so expected outputs cannot depend on the CPU's SIMD level.
passed=0; failed=0; skipped=0

# Run one test binary (with an optional LMGEN_ISA) and add up its results.
run_one() {
	t=$1; isa=$2
	echo "# $t${isa:+ (LMGEN_ISA=$isa)}"
	if [ -n "$isa" ]; then out=$(LMGEN_ISA=$isa "./$t" 2>&1); else out=$("./$t" 2>&1); fi
	rc=$?
	echo "$out"
	s=$(printf '%s\n' "$out" | grep -ciE '^ok [0-9]+( -)? *# *SKIP')
	p=$(printf '%s\n' "$out" | grep -c '^ok ')
	p=$((p - s))
	f=$(printf '%s\n' "$out" | grep -c '^not ok ')
	if printf '%s\n' "$out" | grep -qiE '^1\.\.0 *# *SKIP'; then s=$((s + 1)); fi
	if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - $t exited with status $rc"; f=1
	fi
	passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
}

for t in "$@"; do
	run_one "$t" ""
	case "$t" in
		*test_model|*test_generate|*test_gemma3|*test_scheduler|*test_bert|*test_device_host)
			run_one "$t" scalar
			grep -qw avx2 /proc/cpuinfo && run_one "$t" avx2
			;;
	esac
done
echo "unit: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
