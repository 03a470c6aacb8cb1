# The background worker (lmgen.execution = 'worker', the default with
# shared_preload_libraries = 'lmgen') runs the model calls of every session:
#   - 16 concurrent clients, each with its own deterministic calls (greedy
#     and seeded generate, summarize, embed, classify), each get exactly the
#     answers local mode gives the same calls run alone, and the worker's
#     statistics show batches of more than one sequence;
#   - a waiting backend shows wait_event_type 'Extension';
#   - classify_scores calls go through the scheduler: run alone they share
#     batches (lmgen.stats), and beside generate calls each gets exactly
#     local mode's scores;
#   - pg_cancel_backend and statement_timeout under load end the call with
#     57014 (latency shown);
#   - pg_terminate_backend() of the worker during generation: every waiting
#     client gets an ERROR, other sessions stay connected, and calls work
#     again (same answers) once the postmaster has restarted the worker;
#   - kill -9 of the worker: crash recovery, then calls work again;
#   - fast shutdown with calls in flight is clean;
#   - a KV pool (lmgen.kv_cache_size) too small for all requests at once:
#     they queue and all finish with the answers of local mode, and a call
#     that can never fit fails with a clear ERROR.
# Runs on copies of the installed SmolLM2 (the default model) and of
# test/models/slow.gguf; skipped when `make model` has not installed it.
# Latencies are printed (diag), not asserted beyond "ended long before the
# call would have finished by itself": figures belong in the benchmark.
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

my $dir = PostgreSQL::Test::Utils::tempdir('worker_models');
copy($real, "$dir/smol.gguf") or die "copy: $!";
copy("$ENV{TESTDIR}/test/models/slow.gguf", "$dir/slow.gguf") or die "copy: $!";

my $node = lmgen_node('worker', [ smol => 'smol.gguf', slow => 'slow.gguf' ],
	model_dir => $dir,
	execution => 'worker',
	conf => "lmgen.max_tokens = 8000\nrestart_after_crash = on\n");

# The worker's pid, once it runs (polling lmgen.status()).
sub worker_pid
{
	my $pid;
	for (1 .. 300)
	{
		$pid = $node->safe_psql('postgres', 'SELECT worker_pid FROM lmgen.status()');
		return $pid if $pid ne '';
		usleep(100_000);
	}
	die "the lmgen worker did not start";
}



# Poll until a session whose query contains $marker waits on the worker; its pid.
sub waiting_pid
{
	my ($marker) = @_;
	my $pid = '';
	for (1 .. 600)
	{
		$pid = $node->safe_psql('postgres',
			"SELECT pid FROM pg_stat_activity WHERE query LIKE '%$marker%' AND wait_event_type = 'Extension' AND pid <> pg_backend_pid() LIMIT 1");
		return $pid if $pid ne '';
		usleep(50_000);
	}
	die "no session waits with $marker";
}

my $wpid = worker_pid();
is($node->safe_psql('postgres', "SELECT backend_type FROM pg_stat_activity WHERE pid = $wpid"),
	'lmgen worker', 'the worker shows in pg_stat_activity');

# --- 16 clients, each with its own calls, answers equal to local mode ----
my $clients = 16;

# The calls of client $i (one SQL line each: one output line each).
sub client_sql
{
	my ($i) = @_;
	return (
		"SELECT generate('Name one animal that starts with the letter number $i of the alphabet.', 8, model => 'smol')",
		"SELECT generate('Write a word about the number $i.', 8, temperature => 0.9, seed => $i, model => 'smol')",
		"SELECT summarize('Order $i: the customer asked for $i red chairs and one table, delivered on Monday.', 10, model => 'smol')",
		"SELECT md5(embed('client $i text', 'smol')::text)",
		"SELECT classify('I really loved item number $i, it is great', ARRAY['positive', 'negative'], 'smol')");
}

my %local;
for my $i (1 .. $clients)
{
	$local{$i} = $node->safe_psql('postgres',
		"SET lmgen.execution = 'local';\n" . join(";\n", client_sql($i)) . ';');
}
$node->safe_psql('postgres', 'SELECT lmgen.stats_reset()');

my @running = map { start_psql($node, join(";\n", client_sql($_)) . ';') } 1 .. $clients;
my $seen_wait = waiting_pid('Name one animal');
ok($seen_wait, 'a client waiting for the worker shows wait_event_type Extension');
my $same = 0;
for my $i (1 .. $clients)
{
	my ($rc, $out, $err) = finish_psql($running[ $i - 1 ]);
	chomp $out;
	if ($rc == 0 && $out eq $local{$i})
	{
		$same++;
	}
	else
	{
		diag("client $i (rc $rc): worker\n$out\n$err\nlocal\n$local{$i}");
	}
}
is($same, $clients, "$clients concurrent clients each get exactly local mode's answers");
my ($requests, $max_batch, $mean_batch) = split /\|/, $node->safe_psql('postgres',
	"SELECT requests, max_batch, round(mean_batch::numeric, 2) FROM lmgen.stats WHERE model = 'smol'");
is($requests, 5 * $clients, 'lmgen.stats counted every call');
cmp_ok($max_batch, '>', 1, "the worker batched sequences (max batch $max_batch, mean $mean_batch)");

# --- classify through the scheduler -------------------------------------
# The calls of classify client $i: one line per label, label|probability.
sub classify_sql
{
	my ($i) = @_;
	return "SELECT label, probability FROM classify_scores('Report $i: the striker scored twice in the last minutes', "
	  . "ARRAY['sports', 'politics', 'weather report', 'cooking recipes $i'], 'smol')";
}

my %classify_local = map {
	$_ => $node->safe_psql('postgres', "SET lmgen.execution = 'local';\n" . classify_sql($_) . ';')
} 1 .. 4;
$node->safe_psql('postgres', 'SELECT lmgen.stats_reset()');
my @classifying = map { start_psql($node, classify_sql($_)) } 1 .. 4;
my $classify_same = 0;
for my $i (1 .. 4)
{
	my ($rc, $out, $err) = finish_psql($classifying[ $i - 1 ]);
	chomp $out;
	$classify_same++ if $rc == 0 && $out eq $classify_local{$i};
	diag("classify client $i (rc $rc): worker\n$out\n$err\nlocal\n$classify_local{$i}")
	  unless $rc == 0 && $out eq $classify_local{$i};
}
is($classify_same, 4, "4 concurrent classify_scores calls get exactly local mode's scores");
($requests, $max_batch, $mean_batch) = split /\|/, $node->safe_psql('postgres',
	"SELECT requests, max_batch, round(mean_batch::numeric, 2) FROM lmgen.stats WHERE model = 'smol'");
is($requests, 4, 'lmgen.stats counted every classify call');
cmp_ok($max_batch, '>', 1, "classify calls share the scheduler's batches (max batch $max_batch, mean $mean_batch)");

# beside generations, a classify call's scores are still local mode's
@running = map { start_psql($node, "SELECT generate('Tell a story about the number $_.', 40, model => 'smol')") } 1 .. 3;
my $beside = start_psql($node, classify_sql(5));
my $beside_local = $node->safe_psql('postgres', "SET lmgen.execution = 'local';\n" . classify_sql(5) . ';');
my ($beside_rc, $beside_out) = finish_psql($beside);
chomp $beside_out;
finish_psql($_) for @running;
is($beside_out, $beside_local, "a classify_scores call among generate calls gets exactly local mode's scores");

# --- cancel under load -------------------------------------------------
my @load = map { start_psql($node, "SELECT generate('Once upon a time $_', 3000, model => 'slow')") } 1 .. 3;
my $victim = start_psql($node, "SELECT generate('cancel_marker story', 3000, model => 'slow')");
my $vpid = waiting_pid('cancel_marker');
usleep(300_000);
my $t0 = time;
$node->safe_psql('postgres', "SELECT pg_cancel_backend($vpid)");
my ($rc, $out, $err) = finish_psql($victim);
my $cancel_s = time - $t0;
like($err, qr/canceling statement due to user request/, 'a cancelled call under load ends with the cancel error');
diag(sprintf('cancel latency under load: %.3f s', $cancel_s));
cmp_ok($cancel_s, '<', 10, 'the cancelled call ended long before its 3000 tokens');

# statement_timeout under the same load
my $to = start_psql($node, "SET statement_timeout = '500ms'; SELECT generate('timeout_marker', 3000, model => 'slow')");
($rc, $out, $err) = finish_psql($to);
like($err, qr/canceling statement due to statement timeout/, 'statement_timeout ends a call waiting on the worker');

# --- pg_terminate_backend of the worker during generation ---------------
my $bystander = $node->background_psql('postgres');
my @victims = map { start_psql($node, "SELECT generate('terminate_marker $_', 3000, model => 'slow')") } 1 .. 2;
waiting_pid('terminate_marker');
usleep(300_000);
$t0 = time;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($wpid)");
for my $v (@victims, @load)
{
	($rc, $out, $err) = finish_psql($v);
	like($err, qr/lmgen background worker/, 'a client waiting when the worker was terminated gets an ERROR naming the worker');
}
diag(sprintf('clients released %.3f s after the worker was terminated', time - $t0));
my $new_wpid = worker_pid();
isnt($new_wpid, $wpid, 'the postmaster started a new worker');
is($bystander->query_safe('SELECT 42'), '42', 'another session stayed connected');
$bystander->quit;
$local{1} =~ /^([^\n]*)/;
my $first = $1;
is($node->safe_psql('postgres', (client_sql(1))[0]), $first, 'calls work again after the restart, with the same answer');

# --- kill -9 of the worker ------------------------------------------------
my $k = start_psql($node, "SELECT generate('kill_marker', 3000, model => 'slow')");
waiting_pid('kill_marker');
kill 'KILL', $new_wpid;
($rc, $out, $err) = finish_psql($k);
isnt($rc, 0, 'the call in flight when the worker was killed fails');
my $back = 0;
for (1 .. 600)
{
	my ($r) = $node->psql('postgres', 'SELECT worker_pid FROM lmgen.status()');
	if ($r == 0) { $back = 1; last; }
	usleep(100_000);
}
ok($back, 'the server accepts connections again after crash recovery');
worker_pid();
is($node->safe_psql('postgres', (client_sql(1))[0]), $first, 'calls work after the crash recovery, with the same answer');

# --- fast shutdown with calls in flight -----------------------------------
my @inflight = map { start_psql($node, "SELECT generate('shutdown_marker $_', 3000, model => 'slow')") } 1 .. 3;
waiting_pid('shutdown_marker');
my $log_offset = -s $node->logfile;
$node->stop('fast');
finish_psql($_) for @inflight;
my $log = slurp_file($node->logfile, $log_offset);
unlike($log, qr/terminated by signal/, 'no process died of a signal during the shutdown');
like($log, qr/database system is shut down/, 'the shutdown with calls in flight completed');

# --- a KV pool that holds one request at a time ---------------------------
# slow.gguf's KV cache is 12 KiB per position: each request needs up to 1.8
# MiB (a short prompt + 150 tokens), so a 3 MB pool runs them one at a time.
$node->append_conf('postgresql.conf', "lmgen.kv_cache_size = 3\n");
$node->start;
my @prompts = map { "SELECT generate('Pool request $_', 150, model => 'slow')" } 1 .. 4;
my @expect = map { $node->safe_psql('postgres', "SET lmgen.execution = 'local'; $_") } @prompts;
my @pool = map { start_psql($node, $_) } @prompts;
my $max_queued = 0;
for (1 .. 50)
{
	my $q = $node->safe_psql('postgres', 'SELECT queued_requests FROM lmgen.status()');
	$max_queued = $q if $q > $max_queued;
	last if $max_queued > 0;
	usleep(100_000);
}
cmp_ok($max_queued, '>', 0, 'requests beyond the KV pool wait in the queue');
my $pool_same = 0;
for my $i (0 .. $#pool)
{
	($rc, $out, $err) = finish_psql($pool[$i]);
	chomp $out;
	$pool_same++ if $rc == 0 && $out eq $expect[$i];
	diag("pool request $i: rc $rc $err") if $rc != 0;
}
is($pool_same, scalar @pool, 'every queued request finished with the answer of local mode');
($rc, $out, $err) = $node->psql('postgres', "SELECT generate('too long for the pool', 1000, model => 'slow')");
like($err, qr/more KV memory than lmgen.kv_cache_size/, 'a call that can never fit the pool fails with a clear ERROR');

$node->stop;
done_testing();
