#!/bin/sh
# run_fuzz.sh [SECONDS] — build the libFuzzer target for the GGUF reader with
# ASan + UBSan and fuzz it for SECONDS (default 30), starting from a scratch
# copy of test/fuzz/corpus (the committed corpus never grows).  Exits non-zero
# when the fuzzer finds a crash; the crashing input is left in the work dir.
#
# Needs clang with its libFuzzer runtime (Debian/Ubuntu: clang and
# libclang-rt-<ver>-dev, e.g. libclang-rt-14-dev; on older releases the
# runtime ships inside the clang package itself).  Env: CC (default clang),
# FUZZ_WORK (default ${TMPDIR:-/tmp}/lmgen-fuzz).
set -eu
secs=${1:-30}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cc=${CC:-clang}
work=${FUZZ_WORK:-${TMPDIR:-/tmp}/lmgen-fuzz}
bin=$work/fuzz_gguf

mkdir -p "$work"
if ! command -v "$cc" >/dev/null 2>&1; then
	echo "run_fuzz.sh: $cc not found (install clang and libclang-rt-dev)" >&2
	exit 2
fi
# probe for the libFuzzer runtime before building the real thing
probe=$work/probe.c
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void) d; (void) n; return 0; }\n' > "$probe"
if ! "$cc" -fsanitize=fuzzer "$probe" -o "$work/probe" >/dev/null 2>&1; then
	echo "run_fuzz.sh: $cc cannot link -fsanitize=fuzzer (libFuzzer runtime missing: install libclang-rt-14-dev or the package for your clang)" >&2
	exit 2
fi

"$cc" -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined \
	-I"$root/src/engine" -I"$root/test/unit" \
	"$root/test/fuzz/fuzz_gguf.c" "$root/src/engine/gguf.c" "$root/src/engine/mapguard.c" "$root/src/engine/hash.c" "$root/src/engine/tensor_types.c" \
	-o "$bin"

corpus=$work/corpus
rm -rf "$corpus"
mkdir -p "$corpus"
cp "$root"/test/fuzz/corpus/* "$corpus"/ 2>/dev/null || true

cd "$work"
rm -f crash-* leak-* timeout-* oom-*
set +e
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
"$bin" -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 "$corpus" 2>&1 | tee "$work/fuzz.log" | grep -v '^#[0-9]*	\(NEW\|REDUCE\|pulse\)'
set -e
status=$(grep -c '^==[0-9]*==ERROR\|^SUMMARY\|deadly signal\|Test unit written' "$work/fuzz.log" || true)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -1)
echo "run_fuzz.sh: ${execs:-?} executions in ${secs}s; log $work/fuzz.log"
if [ "$status" -ne 0 ] || ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* >/dev/null 2>&1; then
	echo "run_fuzz.sh: the fuzzer found a problem; input(s) in $work:" >&2
	ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* 2>/dev/null >&2 || true
	exit 1
fi
exit 0
