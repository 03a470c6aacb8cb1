#!/bin/bash
# pg_bundle.sh — pack this machine's PostgreSQL 15 server with lmgen
# installed (lmgen.so, lmgen_cuda.so, the extension's SQL) into one
# tar.xz, for the GPU machine, which has no PostgreSQL and no network: the
# SQL part of the device check (test/gpu/run.sh, sql_bench.sh) unpacks it
# there at / (its files keep Debian's paths, which the binaries have
# compiled in) and runs summarize() through the worker on the GPU.
#
#   bash test/gpu/pg_bundle.sh shared/pg-bundle.tar.xz   # after make install
#
# Holds: the server, initdb, pg_ctl, psql and pg_config; the server's
# modules (no JIT, no bitcode); /usr/share/postgresql/15 without the model
# files (they cannot travel: run.sh writes a shaped stand-in with the real
# tokenizer there, test/gpu/README.md); and every shared library these
# load, except the C and C++ runtimes, under /usr/lib/postgresql/15/extlibs
# (the GPU machine's distribution has other versions of some: ICU, LDAP),
# for LD_LIBRARY_PATH; the UTC time zone files.  Debug symbols are stripped to keep it small.
set -euo pipefail
out=${1:?usage: pg_bundle.sh OUT.tar.xz}
pgbin=/usr/lib/postgresql/15/bin
pglib=/usr/lib/postgresql/15/lib
pgshare=/usr/share/postgresql/15
[ -x $pgbin/postgres ] && [ -f $pglib/lmgen.so ] || { echo "pg_bundle: PostgreSQL 15 with lmgen installed is needed" >&2; exit 1; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage$pgbin" "$stage$pglib" "$stage$pgshare" "$stage/usr/lib/postgresql/15/extlibs"
for b in postgres initdb pg_ctl psql pg_config; do cp -a $pgbin/$b "$stage$pgbin/"; done
for so in $pglib/*.so; do
	case $(basename "$so") in llvmjit*|citus*) continue;; esac
	cp -a "$so" "$stage$pglib/"
done
(cd $pgshare && tar --exclude=./lmgen/models -cf - .) | (cd "$stage$pgshare" && tar -xf -)
mkdir -p "$stage$pgshare/lmgen/models"
# the UTC zone (Debian's server reads the system's zoneinfo; an image may have none)
for z in UTC Etc/UTC GMT Etc/GMT; do
	[ -f /usr/share/zoneinfo/$z ] && install -D -m 644 /usr/share/zoneinfo/$z "$stage/usr/share/zoneinfo/$z"
done
# the libraries every binary and module loads, but the C/C++ runtime and the loader
for f in "$stage$pgbin"/* "$stage$pglib"/*.so; do ldd "$f" 2>/dev/null || true; done |
	awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
	grep -Ev '/(libc|libm|libpthread|libdl|librt|libresolv|libutil|ld-linux-x86-64|libstdc\+\+|libgcc_s|libcublas|libcublasLt|libcuda)\.so' |
	while read -r lib; do cp -L "$lib" "$stage/usr/lib/postgresql/15/extlibs/"; done
strip --strip-debug "$stage$pgbin"/* "$stage$pglib"/*.so "$stage/usr/lib/postgresql/15/extlibs"/* 2>/dev/null || true
tar -C "$stage" -cf - usr | xz -T2 -6 > "$out"
echo "pg_bundle: $out, $(du -h "$out" | cut -f1) ($(du -sh "$stage" | cut -f1) unpacked, $(ls "$stage/usr/lib/postgresql/15/extlibs" | wc -l) libraries)"
