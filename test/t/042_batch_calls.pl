# Batches of model calls (the array forms, CallRunBatch) in worker mode
# with few request slots, and their cancellation in both modes:
#   - lmgen.max_requests = 4, smaller than the batch: the batch goes
#     through in turns and gives exactly the per-row results;
#   - two sessions batching at once over the same 4 slots both finish, with
#     the per-row results (no deadlock when other backends hold slots);
#   - statement_timeout during a batch of 32 summaries ends it fast (57014),
#     in worker and in local mode; the worker drops the calls (nothing
#     active or queued afterwards) and every slot is free again: a batch
#     larger than lmgen.max_requests still completes in the same session;
#   - pg_terminate_backend of a backend waiting on a batch frees its slots;
#   - lmgen.stats counts the prompt tokens shared from a common prefix, and
#     none with lmgen.worker_share_prefixes = off (same answers).
# Runs on a copy of the installed SmolLM2 (the default model); skipped when
# `make model` has not installed it.  Latencies are printed (diag), not
# asserted beyond "ended long before the batch would have finished".
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

my $dir = PostgreSQL::Test::Utils::tempdir('batch_models');
copy($real, "$dir/smol.gguf") or die "copy: $!";

# The rows every node summarizes.
my $table_sql = q{
	CREATE TABLE t AS
	SELECT g AS i,
	       format('Package %s is a small command-line tool that converts %s files and prints a short report about each of them.',
	              g, (ARRAY['image', 'audio', 'text', 'video'])[1 + g % 4]) AS body
	FROM generate_series(1, 32) g;
};

my $node = lmgen_node('batch', [ smol => 'smol.gguf' ],
	model_dir => $dir,
	execution => 'worker',
	conf => "lmgen.max_requests = 4\n");

$node->safe_psql('postgres', $table_sql);



# Poll until the worker has nothing running or queued; true when it got there.
sub worker_idle
{
	for (1 .. 200)
	{
		return 1 if $node->safe_psql('postgres',
			'SELECT active_requests = 0 AND queued_requests = 0 FROM lmgen.status()') eq 't';
		usleep(50_000);
	}
	return 0;
}

# The array form of rows $lo..$hi against their per-row calls, as one boolean.
sub same_sql
{
	my ($lo, $hi, $tokens) = @_;
	return "SELECT summarize((SELECT array_agg(body ORDER BY i) FROM t WHERE i BETWEEN $lo AND $hi), $tokens)"
	  . " = (SELECT array_agg(summarize(body, $tokens) ORDER BY i) FROM t WHERE i BETWEEN $lo AND $hi)";
}

# --- a batch larger than lmgen.max_requests -------------------------------
is($node->safe_psql('postgres', 'SELECT max_requests FROM lmgen.status()'), '4', 'the worker has 4 request slots');
$node->safe_psql('postgres', 'SELECT lmgen.stats_reset()');
is($node->safe_psql('postgres', same_sql(1, 10, 16)), 't',
	'a batch of 10 through 4 slots gives exactly the per-row summaries');
is($node->safe_psql('postgres',
		"SELECT prompt_tokens_reused > 0 AND prompt_tokens_reused < prompt_tokens FROM lmgen.stats WHERE model = 'smol'"),
	't', 'lmgen.stats counts the prompt tokens the summaries shared (their common chat prefix)');

# --- lmgen.worker_share_prefixes = off: every prompt whole, same answers ---
my $whole = lmgen_node('batch_whole', [ smol => 'smol.gguf' ],
	model_dir => $dir,
	execution => 'worker',
	conf => "lmgen.worker_share_prefixes = off\n");
$whole->safe_psql('postgres', $table_sql);
my $batch_sql = "SELECT summarize(array_agg(body ORDER BY i), 16)::text FROM t WHERE i BETWEEN 1 AND 6";
is($whole->safe_psql('postgres', $batch_sql), $node->safe_psql('postgres', $batch_sql),
	'with lmgen.worker_share_prefixes off the batch gives the same summaries');
is($whole->safe_psql('postgres',
		"SELECT prompt_tokens > 0 AND prompt_tokens_reused = 0 FROM lmgen.stats WHERE model = 'smol'"),
	't', 'with lmgen.worker_share_prefixes off no prompt token is shared');
$whole->stop;

# --- two sessions batching over the same slots ----------------------------
my @both = map { start_psql($node, "SET statement_timeout = '300s'; " . same_sql($_, $_ + 7, 16)) } (11, 21);
for my $c (@both)
{
	my ($rc, $out, $err, $s) = finish_psql($c);
	chomp $out;
	is($rc . $out, '0t', 'two sessions batching over 4 slots at once both get the per-row summaries')
	  or diag($err);
	diag(sprintf('concurrent batch of 8: %.1f s', $s));
}

# --- statement_timeout during a batch of 32, worker then local ------------
for my $mode ('worker', 'local')
{
	my $t0 = time;
	my ($rc, $out, $err) = $node->psql('postgres',
		"SET lmgen.execution = '$mode'; SET statement_timeout = '1500ms'; "
		  . 'SELECT summarize(array_agg(body ORDER BY i), 128) FROM t');
	my $s = time - $t0;
	like($err, qr/canceling statement due to statement timeout/, "$mode: statement_timeout ends a batch of 32 summaries");
	diag(sprintf('%s: batch of 32 ended %.2f s after it started (timeout 1.5 s)', $mode, $s));
	cmp_ok($s, '<', 20, "$mode: the batch ended long before 32 summaries would have");
	ok(worker_idle(), "$mode: afterwards the worker runs and queues nothing") if $mode eq 'worker';
	# every slot is free again: a batch larger than the slots completes
	is($node->safe_psql('postgres',
			"SET lmgen.execution = '$mode'; SET statement_timeout = '300s'; " . same_sql(1, 6, 8)),
		't', "$mode: the session batches again afterwards, with the per-row results");
}

# --- a backend terminated while it waits on a batch ----------------------
my $victim = start_psql($node, "SELECT summarize(array_agg(body || ' terminate_marker' ORDER BY i), 128) FROM t");
my $vpid = '';
for (1 .. 600)
{
	$vpid = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE query LIKE '%terminate_marker%' AND wait_event_type = 'Extension' AND pid <> pg_backend_pid() LIMIT 1");
	last if $vpid ne '';
	usleep(50_000);
}
isnt($vpid, '', 'the batching backend waits on the worker');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($vpid)");
finish_psql($victim);
ok(worker_idle(), 'after the backend was terminated the worker runs and queues nothing');
is($node->safe_psql('postgres', "SET statement_timeout = '300s'; " . same_sql(1, 6, 8)), 't',
	'all 4 slots are free again: a batch of 6 completes');

$node->stop;

# --- more calls in flight than the server has DSM segments ---------------
# max_connections = 4 leaves PostgreSQL 64 + 5 * 8 = 104 dynamic shared
# memory segments; with 150 request slots a batch of 140 calls used to stop
# with "too many dynamic shared memory segments": now the calls that find no
# segment wait for earlier ones, and the batch completes.
my $dsm = lmgen_node('batch_dsm', [ smol => 'smol.gguf' ],
	model_dir => $dir,
	execution => 'worker',
	conf => "lmgen.max_requests = 150\nmax_connections = 4\nmax_worker_processes = 2\n"
	  . "autovacuum_max_workers = 1\nmax_wal_senders = 0\n");
is($dsm->safe_psql('postgres',
		"SET statement_timeout = '300s'; "
		  . "SELECT count(*) FILTER (WHERE a IS NOT NULL) || '/' || count(*) "
		  . "FROM unnest(generate(ARRAY(SELECT 'Item ' || g || ' of the list is' FROM generate_series(1, 140) g), 2)) a"),
	'140/140', 'a batch of 140 calls with 150 slots and about 104 DSM segments completes (calls wait for segments)');
is($dsm->safe_psql('postgres', 'SELECT active_requests = 0 AND queued_requests = 0 FROM lmgen.status()'), 't',
	'afterwards the worker runs and queues nothing');
$dsm->stop;
done_testing();
