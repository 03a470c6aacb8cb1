# Row batching (the LMBatch plan node) beside the background worker and
# without preload:
#   - worker mode: the card's query and generate/classify/embed over a
#     table, with the node on and off, give the same rows (EXCEPT ALL both
#     ways), also from two sessions at once, and the worker's statistics
#     count the calls; on the installed SmolLM2 too when `make model` has
#     installed it;
#   - without shared_preload_libraries the planner hook exists only once
#     lmgen.so is loaded: a session's statements are planned per row until
#     its first model call, and batched after; session_preload_libraries
#     batches from the first statement.
use strict;
use warnings;
use File::Copy;
use FindBin;
use IPC::Run;
use lib "$FindBin::RealBin/../lib";
use LmgenNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
my $real = "$sharedir/lmgen/models/default.gguf";
my $dir = PostgreSQL::Test::Utils::tempdir('batching_models');
copy("$ENV{TESTDIR}/test/models/words.gguf", "$dir/words.gguf") or die "copy: $!";
copy("$ENV{TESTDIR}/test/models/words-chat.gguf", "$dir/chat.gguf") or die "copy: $!";
my @models = (words => 'words.gguf', chat => 'chat.gguf');
if (-f $real)
{
	copy($real, "$dir/smol.gguf") or die "copy: $!";
	push @models, (smol => 'smol.gguf');
}

my $node = lmgen_node('batching', \@models, model_dir => $dir, execution => 'worker');
$node->safe_psql('postgres', q{
	CREATE TABLE t AS
	SELECT i AS id,
	       CASE WHEN i % 9 = 0 THEN NULL
	            ELSE 'report ' || i || ': the town council met and agreed to repair ' || (i * 3) || ' streets' END AS body
	FROM generate_series(1, 24) i;
});

# The rows that differ between q with batching on and off (EXCEPT ALL both ways), and q's row count.
sub on_off_difference
{
	my ($q) = @_;
	return $node->safe_psql('postgres', qq{
		SET lmgen.enable_batching = on;
		CREATE TEMP TABLE r_on AS $q;
		SET lmgen.enable_batching = off;
		CREATE TEMP TABLE r_off AS $q;
		SELECT (SELECT count(*) FROM ((TABLE r_on EXCEPT ALL TABLE r_off) UNION ALL
		                              (TABLE r_off EXCEPT ALL TABLE r_on)) d) || ' ' ||
		       (SELECT count(*) FROM r_on);
	});
}

my %queries = (
	summarize => q{SELECT id, summarize(body, 12, 'chat') FROM t},
	generate => q{SELECT id, generate(body, 6, model => 'words') AS greedy, generate(body, 6, temperature => 0.8, seed => id, model => 'words') AS sampled FROM t},
	classify => q{SELECT id, classify(body, ARRAY['roads', 'weather', 'sports', 'music'], 'words') FROM t},
	embed => q{SELECT id, embed(body, 'words') FROM t},);
if (-f $real)
{
	$queries{summarize_smol} = q{SELECT id, summarize(body, 24, 'smol') FROM t WHERE id <= 8};
	$queries{classify_smol} = q{SELECT id, classify(body, ARRAY['roads', 'weather', 'sports', 'music'], 'smol') FROM t WHERE id <= 8};
}
else
{
	diag('the default model is not installed (make model): SmolLM2 queries left out');
}
for my $name (sort keys %queries)
{
	my $rows = $name =~ /smol/ ? 8 : 24;
	is(on_off_difference($queries{$name}), "0 $rows", "worker mode, $name: the same rows with the node on and off");
}

my $plan = $node->safe_psql('postgres', "EXPLAIN (COSTS OFF) SELECT summarize(body, 12, 'chat') FROM t");
like($plan, qr/Custom Scan \(LMBatch\)/, 'the card\'s query is planned with the LMBatch node');

# two sessions at once, each comparing its batched answers with per-row ones
my @runs;
for my $s (1 .. 2)
{
	my ($out, $err) = ('', '');
	my $q = "SELECT id, generate(body || ' session $s', 6, model => 'words') FROM t";
	my $h = IPC::Run::start(
		[
			'psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
			'-c', "SET lmgen.enable_batching = on", '-c', "CREATE TEMP TABLE r_on AS $q",
			'-c', "SET lmgen.enable_batching = off", '-c', "CREATE TEMP TABLE r_off AS $q",
			'-c', 'SELECT count(*) FROM ((TABLE r_on EXCEPT ALL TABLE r_off) UNION ALL (TABLE r_off EXCEPT ALL TABLE r_on)) d'
		],
		'>', \$out, '2>', \$err);
	push @runs, [ $h, \$out, \$err ];
}
for my $s (0 .. 1)
{
	$runs[$s][0]->finish;
	is(${ $runs[$s][1] } =~ s/\s+$//r, '0', "concurrent session " . ($s + 1) . ": the same rows on and off")
	  or diag(${ $runs[$s][2] });
}
cmp_ok($node->safe_psql('postgres', q{SELECT sum(requests) FROM lmgen.stats}), '>', 0,
	'the worker ran the calls (lmgen.stats)');
$node->stop;

# Without preload: the hook is installed when lmgen.so is first loaded.
my $plain = PostgreSQL::Test::Cluster->new('batching_no_preload');
$plain->init;
$plain->append_conf('postgresql.conf', "lmgen.model_dir = '$dir'\n");
$plain->start;
$plain->safe_psql('postgres', q{
	CREATE EXTENSION lmgen;
	SELECT lmgen.load_model('words', 'words.gguf');
	CREATE TABLE t AS SELECT 'text ' || i AS body FROM generate_series(1, 4) i;
});
my $session = $plain->safe_psql('postgres', q{
	EXPLAIN (COSTS OFF) SELECT generate(body, 2, model => 'words') FROM t;
	SELECT count(*) FROM (SELECT generate(body, 2, model => 'words') FROM t) s;
	EXPLAIN (COSTS OFF) SELECT generate(body, 2, model => 'words') FROM t;
});
my @parts = split /\n4\n/, $session;
is(scalar(@parts), 2, 'without preload: the session ran its statements');
unlike($parts[0], qr/LMBatch/, 'without preload: planned per row before the library is loaded');
like($parts[1], qr/LMBatch/, 'without preload: batched once a model call has loaded the library');
$plain->append_conf('postgresql.conf', "session_preload_libraries = 'lmgen'\n");
$plain->reload;
like($plain->safe_psql('postgres', q{EXPLAIN (COSTS OFF) SELECT generate(body, 2, model => 'words') FROM t}),
	qr/LMBatch/, 'session_preload_libraries: batched from the first statement');
$plain->stop;

done_testing();
