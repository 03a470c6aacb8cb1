# With shared_preload_libraries = 'lmgen' the server starts, the postmaster
# stays single-threaded, lmgen.model_dir has its
# documented default, and a stream of corrupted model files only ever gives
# errors: the postmaster never restarts its backends.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $models = "$ENV{TESTDIR}/test/models";
my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'lmgen'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION lmgen');

# The postmaster must not have started any threads.
my ($pm_pid) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
my ($threads) = slurp_file("/proc/$pm_pid/status") =~ /^Threads:\s+(\d+)/m;
is($threads, 1, 'postmaster is single-threaded with lmgen preloaded');

# Default model directory is $sharedir/lmgen/models.
my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
is($node->safe_psql('postgres', 'SHOW lmgen.model_dir'),
	"$sharedir/lmgen/models", 'lmgen.model_dir defaults to SHAREDIR/lmgen/models');

# Unknown lmgen.* settings are refused (prefix reserved).
my ($ret, $out, $err) = $node->psql('postgres', 'SET lmgen.no_such_setting = 1');
isnt($ret, 0, 'unknown lmgen.* parameter is refused');
like($err, qr/invalid configuration parameter name|unrecognized configuration parameter/,
	'refusal names the parameter problem');

$node->safe_psql('postgres', "ALTER SYSTEM SET lmgen.model_dir = '$models'");
$node->reload;
is($node->safe_psql('postgres', "SELECT lmgen.model_info('tiny-q8_0.gguf') ->> 'tensor_count'"),
	'48', 'model_info reads a model in the configured directory');

# Corrupt copies of a real model: truncations and byte flips in the header.
my $good = slurp_file("$models/tiny-q8_0.gguf");
my $start = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
my ($rejected, $accepted, $other) = (0, 0, 0);
my $n = 0;
for my $variant (1 .. 60)
{
	my $bytes = $good;
	if ($variant <= 20)
	{
		$bytes = substr($good, 0, int(length($good) * $variant / 23));
	}
	else
	{
		my $pos = ($variant * 7919) % 14000;
		substr($bytes, $pos, 1) = chr(ord(substr($bytes, $pos, 1)) ^ 0xff);
	}
	my $path = "$models/corrupt-$variant.gguf";
	open my $fh, '>:raw', $path or die;
	print $fh $bytes;
	close $fh;
	my ($r, $o, $e) = $node->psql('postgres', "SELECT lmgen.model_info('corrupt-$variant.gguf')");
	if ($r == 0) { $accepted++ }
	elsif ($e =~ /invalid model file/) { $rejected++ }
	else { $other++; diag("variant $variant: $e") }
	unlink $path;
	$n++;
}
is($other, 0, "each of $n corrupted files was rejected with 'invalid model file' or read cleanly");
cmp_ok($rejected, '>=', 20, "truncated files were rejected ($rejected rejected, $accepted read)");
is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'), $start,
	'the server never restarted');

$node->stop;
done_testing();
