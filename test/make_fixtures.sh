#!/bin/sh
# Writes the files the pg_regress and TAP tests use, so that they do not
# depend on downloaded models:
#   test/models/        the lmgen.model_dir of the test instance
#     tiny-f32.gguf, tiny-q8_0.gguf, tiny-q4_0.gguf   small random llama models
#     truncated.gguf    tiny-q8_0.gguf cut short inside its tensor infos
#     long-ctx.gguf     a random llama with an 8192-token context (slow prefill)
#     dup-tensor.gguf   two tensors with one name
#     words.gguf, words-b.gguf   small random llamas with a whole-word English
#                       vocabulary (greedy output is a fixed string of words)
#     words-chat.gguf   the same with ChatML tokens and template
#     slow.gguf         a larger random llama (8192-token context, 74M
#                       parameters): calls on it run long enough to cancel
#     escape.gguf       a symlink that points out of the directory
#     dangling-out.gguf, proc-cwd, up-link.gguf   more links out (one dangling)
#     rel-link.gguf, abs-link.gguf, sub-link      links that stay inside
#     sub/              an empty directory (for "sub/../x" paths)
#     stories260K*.gguf a copy of the real test model, when ../shared has it
#   test/tmp/outside.gguf   a valid model outside the model directory
#   test/tmp/regress.conf   server settings for the temporary test instance
#   test/tmp/regress_models.conf  the same for the real-model tests (installed model_dir)
set -e
cd "$(dirname "$0")/.."
top=$(pwd)
models="$top/test/models"
tmp="$top/test/tmp"
rm -rf "$models"
mkdir -p "$models/sub" "$tmp"

gen() { python3 test/gguf_writer.py "$@" > /dev/null; }
gen "$models/tiny-f32.gguf" --llama-tiny F32 --seed 1
gen "$models/tiny-q8_0.gguf" --llama-tiny Q8_0 --seed 1
gen "$models/tiny-q4_0.gguf" --llama-tiny Q4_0 --seed 1
gen "$models/long-ctx.gguf" --llama-tiny F32 --seed 2 --n-ctx 8192 --n-embd 256 --n-layer 4 --n-head 4 --n-head-kv 4 --n-ff 512
gen "$models/dup-tensor.gguf" --llama-tiny F32 --seed 1 --break dup-tensor
gen "$models/words.gguf" --llama-tiny F32 --vocab words --seed 3 --n-ctx 512
gen "$models/words-b.gguf" --llama-tiny F32 --vocab words --seed 6 --n-ctx 512
gen "$models/words-chat.gguf" --llama-tiny F32 --vocab words --chat --seed 4 --n-ctx 512
# slow.gguf (79 MB) is kept in test/tmp between runs, keyed by the writer's
# hash and arguments, as it takes seconds to write
slow_args="--llama-tiny Q8_0 --fast --vocab words --seed 5 --n-ctx 8192 --n-embd 768 --n-layer 12 --n-head 12 --n-head-kv 2 --n-ff 2048"
slow_key=$( (cat test/gguf_writer.py; echo "$slow_args") | sha256sum | cut -c1-16)
if [ ! -f "$tmp/slow-$slow_key.gguf" ]; then
	rm -f "$tmp"/slow-*.gguf
	gen "$tmp/slow-$slow_key.gguf.partial" $slow_args
	mv "$tmp/slow-$slow_key.gguf.partial" "$tmp/slow-$slow_key.gguf"
fi
cp "$tmp/slow-$slow_key.gguf" "$models/slow.gguf"
head -c 2000 "$models/tiny-q8_0.gguf" > "$models/truncated.gguf"
cp "$models/tiny-q8_0.gguf" "$tmp/outside.gguf"
ln -s "$tmp/outside.gguf" "$models/escape.gguf"
# links for the path confinement test (sql/path_confinement.sql)
ln -s /no/such/file.gguf "$models/dangling-out.gguf"
ln -s /proc/self/cwd "$models/proc-cwd"
ln -s ../tmp/outside.gguf "$models/up-link.gguf"
ln -s tiny-q8_0.gguf "$models/rel-link.gguf"
ln -s "$models/sub/../tiny-q8_0.gguf" "$models/abs-link.gguf"
ln -s sub "$models/sub-link"

# The real stories260K models, when ../shared (or $LMGEN_SHARED) has them.
shared=${LMGEN_SHARED:-$top/../shared}
if [ -f "$shared/models/stories260K.gguf" ]; then
	cp "$shared/models/stories260K.gguf" "$shared/models/stories260K-Q8_0.gguf" "$models/"
fi

cat > "$tmp/regress_models.conf" <<CONF
shared_preload_libraries = 'lmgen'
CONF

cat > "$tmp/regress.conf" <<CONF
shared_preload_libraries = 'lmgen'
lmgen.model_dir = '$models'
CONF
