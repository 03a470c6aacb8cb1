# A long model call stops promptly on pg_cancel_backend and on
# statement_timeout, in the prefill and between generated tokens; the
# backend stays usable and does not grow with repeated cancels.
# Uses the generated long-context model (test/make_fixtures.sh), so it needs
# no download.  Latencies are printed; the assertions only demand that the
# call stopped long before it would have finished.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('cancel');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'lmgen'\nlmgen.model_dir = '$ENV{TESTDIR}/test/models'\n");
$node->start;
$node->safe_psql('postgres', "CREATE EXTENSION lmgen; SELECT lmgen.load_model('long', 'long-ctx.gguf')");

# About 5000 prompt tokens: several seconds of prefill on this model.
my $long_call = "SELECT generate(repeat('ab cd ', 2500), 16, model => 'long')";

# Time the uninterrupted call once, for scale.
my $t0 = time;
$node->safe_psql('postgres', $long_call);
my $full = time - $t0;
note(sprintf('the uninterrupted call takes %.2f s', $full));

# Start a call in its own session; return (harness, stderr ref, pid).
sub start_call
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-q', '-d', $node->connstr('postgres'), '-c', $sql ],
		'>', \$out, '2>', \$err);
	my $pid;
	for (1 .. 500)
	{
		$pid = $node->safe_psql('postgres',
			"SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%generate(repeat%' AND pid <> pg_backend_pid()");
		last if $pid;
		usleep(10_000);
	}
	return ($h, \$err, $pid);
}

# Wait until the backend has left the call; seconds waited.
sub wait_idle
{
	my ($pid) = @_;
	my $t = time;
	for (1 .. 3000)
	{
		my $active = $node->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE pid = $pid AND state = 'active'");
		return time - $t if $active eq '0';
		usleep(5_000);
	}
	return time - $t;
}

# Cancel during the prefill.
my ($h, $err, $pid) = start_call($long_call);
ok($pid, 'the long call is running');
usleep(300_000);
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
my $lat = wait_idle($pid);
$h->finish;
like($$err, qr/canceling statement due to user request/, 'pg_cancel_backend cancels the call');
note(sprintf('stopped %.0f ms after pg_cancel_backend', $lat * 1000));
cmp_ok($lat, '<', $full / 2, 'it stopped long before the call would have finished');

# statement_timeout, in the same kind of call.
my ($ret, $out, $e2);
$t0 = time;
($ret, $out, $e2) = $node->psql('postgres', "SET statement_timeout = '400ms'; $long_call");
my $elapsed = time - $t0;
like($e2, qr/canceling statement due to statement timeout/, 'statement_timeout cancels the call');
note(sprintf('statement_timeout 400 ms: the call returned after %.0f ms', $elapsed * 1000));
cmp_ok($elapsed, '<', 0.4 + $full / 2, 'it stopped soon after the timeout');

# Between generated tokens: many tokens of a short prompt (max_tokens raised).
$node->safe_psql('postgres', "ALTER SYSTEM SET lmgen.max_tokens = 6000");
$node->reload;
my $gen_call = "SELECT generate(repeat('ab cd ', 1500), 5000, model => 'long', stop => ARRAY['never-matches-this'])";
my ($h2, $err2, $pid2);
{
	my ($o, $e) = ('', '');
	$h2 = IPC::Run::start([ 'psql', '-X', '-q', '-d', $node->connstr('postgres'), '-c', $gen_call ],
		'>', \$o, '2>', \$e);
	$err2 = \$e;
	for (1 .. 500)
	{
		$pid2 = $node->safe_psql('postgres',
			"SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%never-matches%' AND pid <> pg_backend_pid()");
		last if $pid2;
		usleep(10_000);
	}
}
usleep(2_500_000);    # past the prefill, into decoding (unless EOS came first)
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid2)") if $pid2;
$lat = wait_idle($pid2);
$h2->finish;
note(sprintf('decoding: stopped %.0f ms after pg_cancel_backend', $lat * 1000));
ok($$err2 eq '' || $$err2 =~ /canceling statement due to user request/,
	'a call cancelled while decoding reports the cancel (or had already ended)');

# The backend is usable after a cancel, and repeated cancels do not leak.
my $session = $node->background_psql('postgres', on_error_stop => 0);
my $bpid = $session->query_safe('SELECT pg_backend_pid()');
$session->query_safe("SELECT generate('ab cd', 4, model => 'long')");
my $rss = sub {
	my ($kb) = slurp_file("/proc/$bpid/status") =~ /^VmRSS:\s+(\d+)/m;
	return $kb;
};
my @rss;
for my $round (1 .. 4)
{
	$session->query_until(qr/started/, "\\echo started\n$long_call;\n");
	usleep(300_000);
	$node->safe_psql('postgres', "SELECT pg_cancel_backend($bpid)");
	wait_idle($bpid);
	my $r = $session->query("SELECT 1");    # collects the cancel error
	push @rss, $rss->();
}
my $after = $session->query("SELECT generate('ab cd', 4, model => 'long') IS NOT NULL");
is($after, 't', 'the backend still runs the model after four cancels');
note("backend RSS after each cancel (kB): @rss");
cmp_ok($rss[-1] - $rss[1], '<', 20_000, 'repeated cancels do not grow the backend (less than 20 MB)');
$session->quit;

$node->stop;
done_testing();
