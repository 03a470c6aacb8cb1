# Two backends using the same model share one copy of its weights: each maps
# the file read-only and shared, so the page cache holds it once and the
# proportional set size (PSS) of the two mappings together is about one
# file's worth, not two.  This is how backends open models without preload,
# or with lmgen.shared_weights = off (set here); the copy in shared memory
# that preload gives by default is tested in 044_weights_in_shared_memory.pl.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $models = "$ENV{TESTDIR}/test/models";
my $node = PostgreSQL::Test::Cluster->new('shared');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'lmgen'\nlmgen.model_dir = '$models'\nlmgen.execution = 'local'\nlmgen.shared_weights = off\n");
$node->start;
$node->safe_psql('postgres', "CREATE EXTENSION lmgen; SELECT lmgen.load_model('long', 'long-ctx.gguf')");
my $file_kb = (-s "$models/long-ctx.gguf") / 1024;

# Rss and Pss (kB) of a backend's mappings of the model file.
sub mapping_kb
{
	my ($pid) = @_;
	my ($rss, $pss, $in) = (0, 0, 0);
	for my $line (split /\n/, slurp_file("/proc/$pid/smaps"))
	{
		if ($line =~ /^[0-9a-f]+-[0-9a-f]+ /) { $in = $line =~ /long-ctx\.gguf$/; next; }
		next unless $in;
		$rss += $1 if $line =~ /^Rss:\s+(\d+) kB/;
		$pss += $1 if $line =~ /^Pss:\s+(\d+) kB/;
	}
	return ($rss, $pss);
}

my @sessions = map { $node->background_psql('postgres') } 1 .. 2;
my @pids = map { $_->query_safe('SELECT pg_backend_pid()') } @sessions;
# each backend runs the model, which touches every weight
$_->query_safe("SELECT generate('ab cd ef', 8, model => 'long')") for @sessions;

my ($rss1, $pss1) = mapping_kb($pids[0]);
my ($rss2, $pss2) = mapping_kb($pids[1]);
note("file $file_kb kB; backend 1 Rss $rss1 kB Pss $pss1 kB; backend 2 Rss $rss2 kB Pss $pss2 kB");
cmp_ok($rss1, '>', $file_kb * 0.9, 'backend 1 has the weights mapped and resident');
cmp_ok($rss2, '>', $file_kb * 0.9, 'backend 2 has the weights mapped and resident');
cmp_ok($pss1 + $pss2, '<', ($rss1 + $rss2) * 0.6,
	'the two mappings share pages: together they hold about one copy, not two');

# Not copied into private memory either: no private dirty pages in the mapping.
my $private = 0;
my $in = 0;
for my $line (split /\n/, slurp_file("/proc/$pids[0]/smaps"))
{
	if ($line =~ /^[0-9a-f]+-[0-9a-f]+ /) { $in = $line =~ /long-ctx\.gguf$/; next; }
	$private += $1 if $in && $line =~ /^Private_Dirty:\s+(\d+) kB/;
}
is($private, 0, 'no page of the mapping was copied (read-only, shared)');

$_->quit for @sessions;
$node->stop;
done_testing();
