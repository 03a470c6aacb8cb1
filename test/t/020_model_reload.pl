# A backend that has a model open follows registry changes made by other
# sessions: after a name is registered again to another file, the default
# model changes, a name is dropped or a registered file is replaced on disk,
# its next call uses what the registry (and the file system) now say.  Uses
# the generated word-vocabulary models (test/make_fixtures.sh): words.gguf
# and words-b.gguf have different weights, so their outputs differ.
use strict;
use warnings;
use File::Copy qw(copy);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use LmgenNode;

my $models = "$ENV{TESTDIR}/test/models";
my $node = lmgen_node('reload', [a => 'words.gguf', b => 'words-b.gguf'], model_dir => $models);
$node->safe_psql('postgres', "SELECT lmgen.set_default_model('a')");

my $gen = "generate('Once upon a time', 10";
my %ref = (
	a => $node->safe_psql('postgres', "SELECT $gen, model => 'a')"),
	b => $node->safe_psql('postgres', "SELECT $gen, model => 'b')"));
isnt($ref{a}, $ref{b}, 'the two model files give different outputs');

# Session A keeps its backend (and its open models) for the whole test.
my $s = $node->background_psql('postgres', on_error_stop => 0);
is($s->query_safe("SELECT $gen, model => 'a')"), $ref{a}, 'A: model a is words.gguf');
is($s->query_safe("SELECT $gen)"), $ref{a}, 'A: the default model is a');
is($s->query_safe("SELECT lmgen.tokenize('the dog', 'a')"), '{1,396,527}', 'A: tokenizer of a');

# Another session registers the name a again, to the other file.
$node->safe_psql('postgres', "SELECT lmgen.unload_model('a'); SELECT lmgen.load_model('a', 'words-b.gguf')");
is($s->query_safe("SELECT $gen, model => 'a')"), $ref{b}, 'A: after a is registered to words-b.gguf, a call on a uses it');
is($s->query_safe("SELECT embed('the dog', 'a') = embed('the dog', 'b')"), 't', 'A: embed on a uses words-b.gguf too');

# ... and back, in one transaction of the other session.
$node->safe_psql('postgres', "BEGIN; SELECT lmgen.unload_model('a'); SELECT lmgen.load_model('a', 'words.gguf'); COMMIT");
is($s->query_safe("SELECT $gen, model => 'a')"), $ref{a}, 'A: registered back to words.gguf, a call on a uses it');

# A change not yet committed is not seen.
my $t = $node->background_psql('postgres', on_error_stop => 0);
$t->query_safe("BEGIN; SELECT lmgen.unload_model('a'); SELECT lmgen.load_model('a', 'words-b.gguf')");
is($s->query_safe("SELECT $gen, model => 'a')"), $ref{a}, 'A: an uncommitted change of a is not used');
$t->query_safe("ROLLBACK");
$t->quit;
is($s->query_safe("SELECT $gen, model => 'a')"), $ref{a}, 'A: a rolled-back change of a is not used');

# The default model changes in another session.
$node->safe_psql('postgres', "SELECT lmgen.set_default_model('b')");
is($s->query_safe("SELECT $gen)"), $ref{b}, 'A: after the default becomes b, a call naming no model uses b');
$node->safe_psql('postgres', "SELECT lmgen.set_default_model('a')");
is($s->query_safe("SELECT $gen)"), $ref{a}, 'A: and a again when it is set back');

# A name registered or dropped in another session.
$node->safe_psql('postgres', "SELECT lmgen.load_model('c', 'words-b.gguf')");
is($s->query_safe("SELECT $gen, model => 'c')"), $ref{b}, 'A: a name registered by another session is usable');
$node->safe_psql('postgres', "SELECT lmgen.unload_model('c')");
my ($out, $failed) = $s->query("SELECT $gen, model => 'c')");
ok($failed && $s->{stderr} =~ /model "c" is not registered/, 'A: a name dropped by another session is refused');
$s->{stderr} = '';

# The registered file replaced on disk by another file (a rename: a new inode).
copy("$models/words.gguf", "$models/swap.gguf") or die "copy: $!";
$node->safe_psql('postgres', "SELECT lmgen.load_model('swap', 'swap.gguf')");
is($s->query_safe("SELECT $gen, model => 'swap')"), $ref{a}, 'A: swap.gguf holds words.gguf');
copy("$models/words-b.gguf", "$models/swap.gguf.new") or die "copy: $!";
rename("$models/swap.gguf.new", "$models/swap.gguf") or die "rename: $!";
is($s->query_safe("SELECT $gen, model => 'swap')"), $ref{b},
	'A: after words-b.gguf is renamed over swap.gguf, the next call uses the new file');
unlink("$models/swap.gguf");

$s->quit;
$node->stop;
done_testing();
