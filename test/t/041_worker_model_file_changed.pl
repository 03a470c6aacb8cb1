# A model file truncated, rewritten or overwritten in place while the
# background worker has it mapped and is generating with it
# (lmgen.execution = 'worker'): the calls end with an ERROR that names the change (or finish), the worker is
# not killed by SIGBUS (same worker pid, no crash recovery of the
# postmaster), other sessions stay connected, and once the file is restored
# calls on it succeed again (the worker opens the file anew).  The worker's
# counterpart of 022_model_file_changed.pl (local mode).  Runs on a copy of
# the installed SmolLM2 (94 MiB of weights, read in every forward pass);
# skipped when `make model` has not installed it.  The worker maps the file
# (lmgen.shared_weights = off); with the weights in shared memory, the default,
# such a call finishes with its usual answer (044_weights_in_shared_memory.pl).
use strict;
use warnings;
use File::Copy;
use FindBin;
use IPC::Run;
use lib "$FindBin::RealBin/../lib";
use LmgenNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
my $real = "$sharedir/lmgen/models/default.gguf";
plan skip_all => "the default model is not installed (make model)" unless -f $real;

my $dir = PostgreSQL::Test::Utils::tempdir('worker_changed_models');
my $victim = "$dir/victim.gguf";
copy($real, $victim) or die "copy: $!";

my $node = lmgen_node('worker_changed', [ victim => 'victim.gguf' ],
	model_dir => $dir,
	execution => 'worker',
	conf => "restart_after_crash = on\nlmgen.shared_weights = off\n");

# The worker's pid, once it runs (polling lmgen.status()).
sub worker_pid
{
	for (1 .. 300)
	{
		my $pid = $node->safe_psql('postgres', 'SELECT worker_pid FROM lmgen.status()');
		return $pid if $pid ne '';
		usleep(100_000);
	}
	die "the lmgen worker did not start";
}

# Many rows of generation: minutes if left alone.
my $long_call =
  "SELECT count(generate('Write a long story about a dragon number ' || i, 64, model => 'victim')) FROM generate_series(1, 300) i";

# Start psql running $sql in the background: [harness, \stdout, \stderr].
sub start_psql
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-c', $sql ],
		'>', \$out, '2>', \$err);
	return [ $h, \$out, \$err ];
}

# Poll until a session running a query with $marker waits on the worker; its pid.
sub waiting_pid
{
	my ($marker) = @_;
	for (1 .. 600)
	{
		my $pid = $node->safe_psql('postgres',
			"SELECT pid FROM pg_stat_activity WHERE query LIKE '%$marker%' AND wait_event_type = 'Extension' AND pid <> pg_backend_pid() LIMIT 1");
		return $pid if $pid ne '';
		usleep(50_000);
	}
	return undef;
}

my $wpid = worker_pid();
is($node->safe_psql('postgres', "SELECT length(generate('Hi', 4, model => 'victim')) > 0"),
	't', 'the worker runs the copied model');

# Run the long call in the worker, change the file after a while with
# $change, and return the call's stderr and stdout; a bystander session
# connected all along must still answer afterwards.  The statement is one
# call per row: a change that lands between two rows' calls is no change
# during a call (the next call just opens the file as it now is), so the
# statement may then succeed; that (rare) case is run again, twice at most.
sub call_while
{
	my ($what, $change) = @_;
	my $bystander = $node->background_psql('postgres');
	my $c;
	for my $try (1 .. 3)
	{
		$c = start_psql($long_call);
		ok(waiting_pid('dragon number'), "$what: the long call waits on the worker") if $try == 1;
		usleep(1_500_000);    # the worker is reading the weights
		$change->();
		my $t0 = time;
		$c->[0]->finish;
		diag(sprintf('%s: the call ended %.2f s after the change: %s', $what, time - $t0, ${ $c->[2] } =~ s/\n.*//sr));
		last if ${ $c->[2] } ne '';
		diag("$what: the change fell between two rows' calls; again");
	}
	is($bystander->query_safe('SELECT 42'), '42', "$what: another session stayed connected");
	$bystander->quit;
	is($node->safe_psql('postgres', 'SELECT worker_pid FROM lmgen.status()'),
		$wpid, "$what: the same worker still runs");
	return (${ $c->[2] }, ${ $c->[1] });
}

# 1. Truncated to 1 MB while mapped.
my ($err, $out) = call_while('truncate', sub { truncate($victim, 1 << 20) or die "truncate: $!" });
# The statement is one call per row: the ERROR comes from the row in flight
# (its weights vanished) or from the next row, whose call opens the file as
# it now is, whichever the worker reaches first.
like($err, qr/model file was truncated while in use|changed on disk|invalid model file for model "victim"/,
	'a truncated file ends the call with an ERROR') or diag("stdout: $out");

# A call on the truncated file fails cleanly (the worker cannot open it).
my ($rc, $o, $e) = $node->psql('postgres', "SELECT generate('Hi', 4, model => 'victim')");
like($e, qr/victim/, 'a call on the truncated file fails with an ERROR naming the model');

# 2. Restored, then rewritten in place the way cp does it (same inode,
# truncate, write).
copy($real, $victim) or die;
is($node->safe_psql('postgres', "SELECT length(generate('Hi', 4, model => 'victim')) > 0"),
	't', 'after the file is restored a call on it succeeds');
($err, $out) = call_while('cp in place', sub {
	open my $fh, '+<:raw', $victim or die;
	truncate($fh, 0);
	open my $src, '<:raw', $real or die;
	local $/ = \(1 << 20);
	while (my $chunk = <$src>) { print $fh $chunk }
	close $src;
	close $fh;
});
like($err, qr/model file was truncated while in use|changed on disk/,
	'a file rewritten in place (cp) ends the call with an ERROR') or diag("stdout: $out");

# The file as it is now (the original model again) is opened anew.
is($node->safe_psql('postgres', "SELECT length(generate('Hi', 4, model => 'victim')) > 0"),
	't', 'the next call opens the rewritten file and runs');

# 3. Same size, some bytes overwritten in place (no read can fault: only
# the worker's check of the file's size and time after each step sees it).
($err, $out) = call_while('overwrite', sub {
	open my $fh, '+<:raw', $victim or die;
	seek($fh, (-s $victim) / 2, 0);
	print $fh "\xff" x 65536;
	close $fh;
});
like($err, qr/changed on disk/, 'bytes overwritten in place end the call with an ERROR')
  or diag("stdout: $out");
copy($real, $victim) or die;
is($node->safe_psql('postgres', "SELECT length(generate('Hi', 4, model => 'victim')) > 0"),
	't', 'after the file is restored again a call on it succeeds');

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal/, 'no process was terminated by a signal');
unlike($log, qr/all server processes terminated|terminating any other active server processes/,
	'the postmaster never went through crash recovery');

$node->stop;
done_testing();
