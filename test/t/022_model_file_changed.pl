# A model file truncated or rewritten in place while a backend has it mapped
# and is running it: the call ends with an ERROR (or finishes), the backend
# does not die of SIGBUS, the postmaster does not restart, other sessions
# live on, and the next call opens the file again.  Runs on a copy of the
# installed SmolLM2 (the real model: 94 MiB of weights, so reads past the
# cut happen in every forward pass); skipped when `make model` has not
# installed it.  The file is mapped as without preload (lmgen.shared_weights
# = off): with the weights in shared memory (044_weights_in_shared_memory.pl)
# such a call finishes with its usual answer instead.
use strict;
use warnings;
use File::Copy;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
my $real = "$sharedir/lmgen/models/SmolLM2-135M-Instruct.Q4_1.gguf";
plan skip_all => "the real model is not installed (make model)" unless -f $real;

my $node = PostgreSQL::Test::Cluster->new('changed');
my $dir = $node->basedir . '/models';
mkdir $dir or die;
my $victim = "$dir/victim.gguf";
copy($real, $victim) or die "copy: $!";
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'lmgen'\nlmgen.model_dir = '$dir'\nrestart_after_crash = on\nlmgen.execution = 'local'\nlmgen.shared_weights = off\n");
$node->start;
$node->safe_psql('postgres', "CREATE EXTENSION lmgen; SELECT lmgen.load_model('victim', 'victim.gguf')");

# Many rows of generation on two engine threads: minutes if left alone.
my $long_call = "SET lmgen.threads = 2; SELECT count(generate('Write a long story about a dragon number ' || i, 64, model => 'victim')) FROM generate_series(1, 300) i";

# Start a psql running sql in the background; (harness, stdout ref, stderr ref).
sub start_psql
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ 'psql', '-X', '-q', '-A', '-t', '-d', $node->connstr('postgres'), '-c', $sql ],
		'>', \$out, '2>', \$err);
	return ($h, \$out, \$err);
}

# Wait until a query matching pattern runs in another backend; its pid.
sub wait_active
{
	my ($pattern) = @_;
	for (1 .. 1000)
	{
		my $pid = $node->safe_psql('postgres',
			"SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%$pattern%' AND pid <> pg_backend_pid()");
		return $pid if $pid;
		usleep(10_000);
	}
	return undef;
}

# Run the long call, change the file after a while with $change, and
# return the call's stderr and stdout.
sub call_while
{
	my ($change) = @_;
	my ($survivor, $sout, $serr) = start_psql("SELECT pg_sleep(6); SELECT 'survivor alive'");
	my ($h, $out, $err) = start_psql($long_call);
	my $pid = wait_active('dragon number');
	ok($pid, 'the long call is running');
	usleep(1_500_000);    # the weights are being read
	$change->();
	my $t0 = time;
	$h->finish;
	note(sprintf('the call ended %.2f s after the change', time - $t0));
	$survivor->finish;
	like($$sout, qr/survivor alive/, 'a session running meanwhile lives on');
	return ($$err, $$out);
}

# 1. Truncated to 1 MB while mapped.
my ($err, $out) = call_while(sub { truncate($victim, 1 << 20) or die "truncate: $!" });
like($err, qr/model file was truncated while in use|changed on disk/,
	'a truncated file ends the call with an ERROR') or diag("stdout: $out");

# 2. Rewritten in place the way cp does it (same inode, truncate, write).
copy($real, $victim) or die;
($err, $out) = call_while(sub {
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

# 3. Same size, some bytes overwritten in place (no read can fault).
($err, $out) = call_while(sub {
	open my $fh, '+<:raw', $victim or die;
	seek($fh, (-s $victim) / 2, 0);
	print $fh "\xff" x 65536;
	close $fh;
});
like($err, qr/changed on disk/, 'bytes overwritten in place end the call with an ERROR')
  or diag("stdout: $out");

# The file as it is now is opened again by the next call (it is the
# original model with 64 kB of 0xff: still valid, so the call runs).
copy($real, $victim) or die;
is($node->safe_psql('postgres', "SELECT length(generate('Hi', 4, model => 'victim')) > 0"),
	't', 'the next call opens the restored file and runs');

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal/, 'no backend was terminated by a signal');
unlike($log, qr/terminating any other active server processes|reinitializing/,
	'the postmaster never restarted its backends');

$node->stop;
done_testing();
