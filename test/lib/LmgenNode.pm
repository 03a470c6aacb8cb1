# LmgenNode.pm — the node every lmgen TAP test starts from: a new cluster
# with lmgen preloaded, lmgen.model_dir set, the extension created and the
# given models registered.  Use from test/t/*.pl:
#   use FindBin;
#   use lib "$FindBin::RealBin/../lib";
#   use LmgenNode;
#   my $node = lmgen_node('name', [tiny => 'tiny-f32.gguf']);
package LmgenNode;

use strict;
use warnings;
use Exporter 'import';
use IPC::Run;
use PostgreSQL::Test::Cluster;
use Time::HiRes qw(time);

our @EXPORT = qw(lmgen_node start_psql finish_psql);

# Start a node named $name with models [registry name => file, ...],
# registered in that order (the first becomes the default model), from $opts{model_dir} (default: the generated test models),
# plus $opts{conf} appended to postgresql.conf.  Calls run in the backends
# (lmgen.execution = 'local') unless $opts{execution} is 'worker': the tests
# that use this helper check what a backend itself does (its threads, CPU,
# memory, mapped files); the background worker has tests of its own.
sub lmgen_node
{
	my ($name, $models, %opts) = @_;
	my $dir = $opts{model_dir} // "$ENV{TESTDIR}/test/models";
	my $conf = $opts{conf} // '';
	my $execution = $opts{execution} // 'local';
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init;
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'lmgen'\nlmgen.model_dir = '$dir'\nlmgen.execution = '$execution'\n$conf");
	$node->start;
	my $sql = 'CREATE EXTENSION lmgen;';
	for (my $i = 0; $i < @$models; $i += 2)
	{
		$sql .= " SELECT lmgen.load_model('$models->[$i]', '$models->[$i + 1]');";
	}
	$node->safe_psql('postgres', $sql);
	return $node;
}

# Start psql running $sql on $node's postgres database in the background
# (stopping at the first error): [harness, \stdout, \stderr, start time].
sub start_psql
{
	my ($node, $sql) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c', $sql ],
		'>', \$out, '2>', \$err);
	return [ $h, \$out, \$err, time ];
}

# Wait for a background psql; (exit code, stdout, stderr, seconds since it was started).
sub finish_psql
{
	my ($c) = @_;
	$c->[0]->finish;
	return ($c->[0]->result(0), ${ $c->[1] }, ${ $c->[2] }, time - $c->[3]);
}

1;
