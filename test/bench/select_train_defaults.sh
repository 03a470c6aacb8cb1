#!/bin/bash
# select_train_defaults.sh — how the defaults of lmgen.train_classifier were
# chosen: 5-fold stratified cross-validation on the Debian TRAIN file only
# (../shared/data/debian_packages_train.csv; text = synopsis || '. ' ||
# description, label = section), one line per candidate setting, the
# test file never read.  Each candidate changes the current defaults by the
# key=value pairs on its line (keys: see test/bench/cv_train_engine.c).
#
# Usage: test/bench/select_train_defaults.sh [CANDIDATES-FILE]   (from the repository root, after make)
#        test/bench/select_train_defaults.sh --final [key=value ...]   (the one look at the test file)
#   JOBS=n runs n candidates at once (default 2); FOLDS=k (default 5).
#   Without a file it runs the built-in list below.  Prints, per candidate,
#   the mean accuracy, macro-F1 and log-loss over the folds and the mean
#   training seconds per fold, best accuracy first.
set -eu
cd "$(dirname "$0")/../.."
DATA=${LMGEN_SHARED:-$(pwd)/../shared}/data
WORK=$(mktemp -d /tmp/lmgen-select-train.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# CSV -> "text<TAB>label" lines, text = synopsis || '. ' || description (line
# breaks and tabs become spaces: to the n-gram features they are all separators)
to_tsv() {
	python3 - "$1" "$2" <<'PY'
import csv, sys
with open(sys.argv[1], newline='') as f, open(sys.argv[2], 'w') as out:
    for row in csv.DictReader(f):
        text = row['synopsis'] + '. ' + row['description']
        out.write(text.replace('\t', ' ').replace('\r', ' ').replace('\n', ' ') + '\t' + row['section'] + '\n')
PY
}
to_tsv "$DATA/debian_packages_train.csv" "$WORK/train.tsv"
gcc -std=gnu11 -O2 -ffp-contract=off -Isrc/engine -Itest/bench -o "$WORK/cv" test/bench/cv_train_engine.c \
	src/engine/train.o src/engine/train_model.o src/engine/train_metrics.o src/engine/features_ngram.o \
	src/engine/errmsg.o -lm

if [ "${1:-}" = --final ]; then
	# the one look at the test file, with the chosen settings (after the choice)
	to_tsv "$DATA/debian_packages_test.csv" "$WORK/test.tsv"
	shift
	echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
	# shellcheck disable=SC2068
	"$WORK/cv" "$WORK/train.tsv" test="$WORK/test.tsv" $@
	exit 0
fi
if [ $# -ge 1 ]; then
	cp "$1" "$WORK/candidates"
else
	# Round 1 changed one setting of the defaults of the time (learning_rate
	# 0.3, class_weights none); round 2 combined the best and dealt the folds
	# again (fold_seed=2).  The defaults now: learning_rate 0.1.
	cat > "$WORK/candidates" <<'LIST'
lr=0.3
lr=0.3 average=0.5
lr=0.3 average=0.7
lr=0.3 lr_decay=0.8
lr=0.3 lr_decay=0.6
lr=0.1
lr=0.1 average=0.5
lr=0.3 balanced=1
lr=0.3 l2=0.001
lr=0.1 balanced=1
lr=0.3 balanced=1 l2=0.001
lr=0.3 fold_seed=2
lr=0.3 balanced=1 fold_seed=2
LIST
fi

echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), ${JOBS:-2} candidates at once, ${FOLDS:-5} folds"
n=0
while read -r line; do
	[ -z "$line" ] && continue
	n=$((n + 1))
	args=$line
	[ "$line" = defaults ] && args=
	echo "$n|$line|$args"
done < "$WORK/candidates" > "$WORK/jobs"
# shellcheck disable=SC2016
tr '\n' '\0' < "$WORK/jobs" | xargs -0 -P "${JOBS:-2}" -I{} bash -c '
	IFS="|" read -r n line args <<< "$1"
	# shellcheck disable=SC2086
	"$2/cv" "$2/train.tsv" folds='"${FOLDS:-5}"' $args > "$2/out.$n"
	echo "$line|$(tail -1 "$2/out.$n")" > "$2/done.$n"
' _ {} "$WORK"
printf '%-36s %8s %8s %8s %8s\n' candidate accuracy macro_f1 log_loss s/fold
cat "$WORK"/done.* | python3 -c '
import re, sys
rows = []
for line in sys.stdin:
    name, res = line.rstrip("\n").split("|", 1)
    m = re.search(r"accuracy ([0-9.]+) macro_f1 ([0-9.]+) log_loss ([0-9.]+) train ([0-9.]+)", res)
    rows.append((float(m.group(1)), name, m.group(2), m.group(3), m.group(4)))
for acc, name, f1, ll, s in sorted(rows, key=lambda r: -r[0]):
    print("%-36s %8.4f %8s %8s %8s" % (name, acc, f1, ll, s))
'
