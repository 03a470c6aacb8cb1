# The SQL functions give bit-identical results on every kernel path the CPU
# offers: the server is started with LMGEN_ISA=scalar, avx2 and avx512 (the
# engine lowers its SIMD level to it) and generate, summarize, classify,
# classify_scores and embed (every float in full) must match the scalar
# run.  The expected outputs of sql/model_functions.sql therefore hold on
# any x86 CPU.  Paths this CPU lacks are skipped (and counted as skipped).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use LmgenNode;

my $node = lmgen_node('isa',
	[words => 'words.gguf', chat => 'words-chat.gguf', q8 => 'tiny-q8_0.gguf', q4 => 'tiny-q4_0.gguf']);
$node->stop;

my $text = "'The team won the match with a late goal.'";
my $labels = "ARRAY['sports', 'politics', 'weather']";
my $results = qq{
	SELECT generate('Once upon a time', 24), generate('Once upon a time', 24, model => 'chat'),
	       generate('Once upon a time', 16, model => 'q8'), generate('Once upon a time', 16, model => 'q4'),
	       generate('Once upon a time', 16, temperature => 0.8, seed => 5),
	       summarize($text, 12, 'chat'), classify($text, $labels),
	       (SELECT string_agg(label || '=' || probability::float8, ' ') FROM classify_scores($text, $labels)),
	       (SELECT string_agg(x::float8::text, ' ') FROM unnest(embed(repeat('the dog ran to the park. ', 30))) x),
	       (SELECT string_agg(x::float8::text, ' ') FROM unnest(embed($text, 'q8')) x)
};

# The results with the server started under LMGEN_ISA=$isa.
sub results_on
{
	my ($isa) = @_;
	local $ENV{LMGEN_ISA} = $isa;
	$node->start;
	my ($pid) = slurp_file($node->data_dir . '/postmaster.pid') =~ /^(\d+)/;
	ok(slurp_file("/proc/$pid/environ") =~ /(^|\0)LMGEN_ISA=$isa\0/, "the server runs with LMGEN_ISA=$isa");
	my $r = $node->safe_psql('postgres', $results);
	$node->stop;
	return $r;
}

my $cpu = slurp_file('/proc/cpuinfo');
my $scalar = results_on('scalar');
like($scalar, qr/\w/, 'results on the scalar path');
for my $isa ('avx2', 'avx512')
{
  SKIP:
	{
		my $flag = $isa eq 'avx2' ? 'avx2' : 'avx512f';
		skip("this CPU has no $isa", 2) unless $cpu =~ /\b$flag\b/;
		is(results_on($isa), $scalar, "the $isa path gives bit-identical results");
	}
}

done_testing();
