# Benchmark: how long tokenizing a 4 MB text takes from SQL, and how soon
# statement_timeout stops it, for the byte-level BPE (SmolLM2) and the
# SentencePiece (Gemma 3) tokenizers.  Needs the real models (make model).
# Prints numbers; its one check is that the timeout ends the call with the
# timeout error.  Run:
#   /work/notes/servertest.sh tap PROVE_TESTS=test/bench/tokenize_cancel.pl PROVE_FLAGS=--verbose
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $models = `pg_config --sharedir`;
chomp $models;
$models .= '/lmgen/models';
plan skip_all => 'the real models are not installed (make model)'
  unless -f "$models/SmolLM2-135M-Instruct.Q4_1.gguf" && -f "$models/gemma-3-270m-q4_k_m.gguf";

my $node = PostgreSQL::Test::Cluster->new('tokbench');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'lmgen'\nlmgen.model_dir = '$models'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION lmgen');
$node->safe_psql('postgres', "SELECT lmgen.load_model('gemma', 'gemma-3-270m-q4_k_m.gguf')")
  unless $node->safe_psql('postgres', "SELECT count(*) FROM lmgen.models WHERE name = 'gemma3'");
my %name = (smollm2 => 'smollm2', gemma3 => 'gemma3');
$name{gemma3} = 'gemma'
  unless $node->safe_psql('postgres', "SELECT count(*) FROM lmgen.models WHERE name = 'gemma3'");

# 4 MB of English-like text with no special tokens, made in SQL.
$node->safe_psql('postgres',
	"CREATE TABLE t AS SELECT left(string_agg(md5(i::text) || ' the quick brown fox jumps over the lazy dog. ', ''), 4194304) AS body FROM generate_series(1, 60000) i");

my $ok = 1;
for my $m ('smollm2', 'gemma3')
{
	my $call = "SELECT lmgen.count_tokens(body, '$name{$m}') FROM t";
	$node->safe_psql('postgres', "SELECT lmgen.count_tokens('warm up', '$name{$m}')");
	my $t0 = time;
	my $n = $node->safe_psql('postgres', $call);
	my $full = time - $t0;
	my @late;
	for (1 .. 3)
	{
		$t0 = time;
		my ($ret, $out, $err) = $node->psql('postgres', "SET statement_timeout = '500ms'; $call");
		push @late, (time - $t0 - 0.5) * 1000;
		$ok &&= $err =~ /canceling statement due to statement timeout/;
	}
	diag(sprintf('%s: count_tokens of 4 MB: %d tokens in %.2f s; statement_timeout 500 ms: returned %s ms after the timeout',
			$m, $n, $full, join(', ', map { sprintf('%.0f', $_) } @late)));
}
ok($ok, 'statement_timeout ends every call with the timeout error');
$node->stop;
done_testing();
