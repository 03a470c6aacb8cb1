# pg_cancel_backend and statement_timeout stop generate(), classify() and
# embed() in the middle of their work: the call ends with the cancel error
# (SQLSTATE 57014) and the same backend then runs the model again with the
# same results as a fresh one.  Repeated cancels do not grow the backend.
#
# The calls run on slow.gguf (test/make_fixtures.sh: a random 74M-parameter
# llama with an 8192-token context whose greedy decoding never ends early),
# with workloads of thousands of tokens that take a minute or more
# uninterrupted.  The cancel is sent once the backend has spent half a second
# of CPU inside the call (or 1/40 of the call's work, if that is less), and
# statement_timeout is set to 3 s (or 1/40 of the work).  A function that ignored the cancel would still end
# with 57014 (the executor raises it after the function returns), but only
# after all of its work: so the test also compares the CPU time the call used
# with a lower bound of the whole call's, measured on 1/20 of it.  No
# assertion depends on wall-clock time; the latency figures come from
# test/bench/bench_sql.sh.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('cancel');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'lmgen'\n"
	  . "lmgen.model_dir = '$ENV{TESTDIR}/test/models'\n"
	  . "lmgen.max_tokens = 8000\n"
	  . "lmgen.execution = 'local'\n");
$node->start;
$node->safe_psql('postgres', "CREATE EXTENSION lmgen; SELECT lmgen.load_model('slow', 'slow.gguf')");

# Small calls whose results show the backend still works after a cancel.
my %check = (
	generate => "SELECT generate('Once upon a time', 8, model => 'slow')",
	classify => "SELECT classify('the dog ran to the park', ARRAY['dog', 'cat', 'news'], 'slow')",
	embed => "SELECT (SELECT array_agg(round(x::numeric, 6)) FROM unnest(embed('the dog ran', 'slow')) x)",
);
my %reference;
$reference{$_} = $node->safe_psql('postgres', $check{$_}) for sort keys %check;
ok($reference{generate} =~ /\w/, "reference results from a fresh session: '$reference{generate}'");

# About 4000 tokens of text ("the dog ran to the park and " is 7 tokens).
# Each long call comes with a part of it, 1/20 of its tokens, whose CPU time
# times 20 is a lower bound of the whole call's (attention makes longer
# contexts cost more per token, never less).
my $reps = 560;
my $text = "repeat('the dog ran to the park and ', $reps)";
my $part = "repeat('the dog ran to the park and ', " . ($reps / 20) . ")";
my %long_call = (
	# long prompt: cancelled in the prefill (or early in the decoding)
	'generate (long prompt)' => [
		"SELECT generate($text, 4000, model => 'slow')",
		"SELECT generate($part, 200, model => 'slow')" ],
	# short prompt: cancelled while decoding 7000 tokens
	'generate (decoding)' => [
		"SELECT generate('Once upon a time', 7000, model => 'slow')",
		"SELECT generate('Once upon a time', 350, model => 'slow')" ],
	classify => [
		"SELECT classify($text, ARRAY['sports', 'politics', 'weather'], 'slow')",
		"SELECT classify($part, ARRAY['sports', 'politics', 'weather'], 'slow')" ],
	embed => [
		"SELECT embed($text || $text, 'slow')",
		"SELECT embed($part || $part, 'slow')" ],
);

# CPU time (clock ticks, all threads) a process has used.
sub cpu_ticks
{
	my ($pid) = @_;
	my $stat = slurp_file("/proc/$pid/stat");
	$stat =~ s/^.*\)\s+//s;    # fields from the 3rd on
	my @f = split /\s+/, $stat;
	return $f[11] + $f[12];    # utime + stime
}

# Wait until process $pid has used $ticks more clock ticks of CPU than $base.
sub wait_cpu
{
	my ($pid, $base, $ticks) = @_;
	for (1 .. 6000)
	{
		return if cpu_ticks($pid) - $base >= $ticks;
		usleep(20_000);
	}
	diag("backend $pid did not use $ticks ticks of CPU in 120 s");
}

# Start $sql in session $s (backend $pid) and stop it with pg_cancel_backend
# ('cancel') or statement_timeout ('timeout'); returns the SQLSTATE and the
# error text the call ended with, and the CPU ticks it used.
sub run_cancelled
{
	my ($s, $pid, $sql, $how, $full) = @_;
	# cancel at 1/40 of the whole call's work at most (in CPU time; the
	# timeout in wall-clock time, which only runs faster on a busy machine)
	my $wait = $full / 40 < 50 ? int($full / 40) + 1 : 50;
	my $timeout_ms = $full * 10 / 40 < 3000 ? int($full * 10 / 40) + 10 : 3000;
	$s->query_safe($how eq 'timeout' ? "SET statement_timeout = '${timeout_ms}ms'" : "RESET statement_timeout");
	$s->{stderr} = '';
	my $base = cpu_ticks($pid);
	$s->query_until(qr/started/, "\\echo started\n$sql;\n");
	if ($how eq 'cancel')
	{
		wait_cpu($pid, $base, $wait);
		$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
	}
	# psql runs this once the call has ended
	my $state = $s->query("\\echo :SQLSTATE");
	my $used = cpu_ticks($pid) - $base;
	my $err = $s->{stderr};
	$s->{stderr} = '';
	$s->query_safe("RESET statement_timeout");
	return ($state, $err, $used);
}

# CPU ticks the whole of a long call needs at least: 20 times its part's.
sub work_lower_bound
{
	my ($s, $pid, $part_sql) = @_;
	my $base = cpu_ticks($pid);
	$s->query_safe($part_sql);
	return 20 * (cpu_ticks($pid) - $base);
}

my %message = (
	cancel => qr/canceling statement due to user request/,
	timeout => qr/canceling statement due to statement timeout/);

for my $name (sort keys %long_call)
{
	my ($sql, $part_sql) = @{ $long_call{$name} };
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	my $pid = $s->query_safe('SELECT pg_backend_pid()');
	$s->query_safe($check{$_}) for sort keys %check;    # model opened, context made
	my $full = work_lower_bound($s, $pid, $part_sql);
	note("$name: the whole call needs at least $full CPU ticks");
	for my $how ('cancel', 'timeout')
	{
		my $what = $how eq 'cancel' ? 'pg_cancel_backend' : 'statement_timeout';
		my ($state, $err, $used) = run_cancelled($s, $pid, $sql, $how, $full);
		is($state, '57014', "$name: $what ends the call with SQLSTATE 57014");
		like($err, $message{$how}, "$name: $what gives the cancel message");
		# a call that ignored the cancel would have done all of its work
		cmp_ok($used, '<', $full / 2,
			"$name: $what stopped the call before half of its work ($used of at least $full CPU ticks)");
		for my $c (sort keys %check)
		{
			is($s->query_safe($check{$c}), $reference{$c},
				"$name, after $what: the same backend runs $c with the same result");
		}
	}
	$s->quit;
}

# Repeated cancels in one backend: still usable, and no growth.
my $s = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $s->query_safe('SELECT pg_backend_pid()');
$s->query_safe($check{generate});
my $full = work_lower_bound($s, $pid, $long_call{'generate (long prompt)'}[1]);
my @rss;
for my $round (1 .. 4)
{
	my ($state) = run_cancelled($s, $pid, $long_call{'generate (long prompt)'}[0], 'cancel', $full);
	is($state, '57014', "round $round: cancelled");
	my ($kb) = slurp_file("/proc/$pid/status") =~ /^VmRSS:\s+(\d+)/m;
	push @rss, $kb;
}
is($s->query_safe($check{generate}), $reference{generate}, 'the backend still runs the model after four cancels');
note("backend RSS after each cancel (kB): @rss");
cmp_ok($rss[-1] - $rss[1], '<', 20_000, 'repeated cancels do not grow the backend (less than 20 MB)');
$s->quit;

$node->stop;
done_testing();
