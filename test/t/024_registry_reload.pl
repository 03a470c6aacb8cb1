# The registry lookup is cached per backend (src/model_cache.c), and every
# change to lmgen.model_registry — load_model, unload_model,
# set_default_model or a plain UPDATE, in this session or another — is seen
# by the next call.  Each model is told apart by a digest of its embedding
# of one text.  Also prints the per-row cost of the lookup (a benchmark
# figure, not asserted).  Uses the generated test models.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use LmgenNode;
use Time::HiRes qw(time);

my $node = lmgen_node('registry',
	[tiny => 'tiny-f32.gguf', q8 => 'tiny-q8_0.gguf', long => 'long-ctx.gguf', m => 'tiny-f32.gguf']);

# Digest of a model's embedding of one text ('' model = the default).
sub sig_sql
{
	my ($model) = @_;
	my $arg = defined $model ? ", model => '$model'" : '';
	return "SELECT md5(embed('the probe text'$arg)::text)";
}
my %sig = map { $_ => $node->safe_psql('postgres', sig_sql($_)) } qw(tiny q8 long);
isnt($sig{tiny}, $sig{long}, 'the test models are told apart');
isnt($sig{tiny}, $sig{q8}, 'the f32 and q8_0 models are told apart');

my $a = $node->background_psql('postgres');
my $b = $node->background_psql('postgres');

is($a->query_safe(sig_sql('m')), $sig{tiny}, "session A: 'm' is the f32 model");

# Another session changes the row with a plain UPDATE.
$b->query_safe("UPDATE lmgen.model_registry SET path = 'long-ctx.gguf' WHERE name = 'm'");
is($a->query_safe(sig_sql('m')), $sig{long}, "session A sees an UPDATE made by session B");

# unload_model + load_model in another session.
$b->query_safe("SELECT lmgen.unload_model('m')");
my ($ret, $out, $err) = $node->psql('postgres', sig_sql('m'));
like($err, qr/model "m" is not registered/, 'a new session sees the model gone');
$a->query_safe("SELECT 1");    # a transaction boundary in A
$b->query_safe("SELECT lmgen.load_model('m', 'tiny-q8_0.gguf')");
is($a->query_safe(sig_sql('m')), $sig{q8}, 'session A sees unload_model + load_model by session B');

# The default model, changed by set_default_model in another session.
is($a->query_safe(sig_sql(undef)), $sig{tiny}, "session A: the default is 'tiny' (registered first)");
$b->query_safe("SELECT lmgen.set_default_model('long')");
is($a->query_safe(sig_sql(undef)), $sig{long}, 'session A sees set_default_model by session B');

# In the same session, inside a transaction, and after its rollback.
$a->query_safe("SELECT lmgen.load_model('n', 'long-ctx.gguf')");
is($a->query_safe(sig_sql('n')), $sig{long}, 'a model loaded in this session is usable at once');
is($a->query_safe("BEGIN; UPDATE lmgen.model_registry SET path = 'tiny-f32.gguf' WHERE name = 'n'; "
		  . sig_sql('n')),
	$sig{tiny}, 'an UPDATE earlier in the same transaction is seen');
$a->query_safe('ROLLBACK');
is($a->query_safe(sig_sql('n')), $sig{long}, 'after ROLLBACK the old row is used again');

# A change committed while a session is inside its own transaction is
# seen once that session starts its next one.
$a->query_safe('BEGIN');
is($a->query_safe(sig_sql('n')), $sig{long}, "session A in a transaction: 'n' is the long model");
$b->query_safe("UPDATE lmgen.model_registry SET path = 'tiny-q8_0.gguf' WHERE name = 'n'");
$a->query_safe('COMMIT');
is($a->query_safe(sig_sql('n')), $sig{q8}, 'the next transaction of session A sees the change');

# Per-row cost of finding the model (benchmark figures, not asserted).
for my $q ("SELECT count(lmgen.count_tokens('x', 'tiny')) FROM generate_series(1, 100000)",
	"SELECT count(lmgen.count_tokens('x')) FROM generate_series(1, 100000)")
{
	$a->query_safe($q);    # warm
	my $t0 = time;
	$a->query_safe($q);
	note(sprintf('%s: %.0f ms (%.2f us per row)', $q, (time - $t0) * 1000, (time - $t0) * 10));
}

$a->quit;
$b->quit;
$node->stop;
done_testing();
