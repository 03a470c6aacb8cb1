# With lmgen.threads = 2 the engine runs worker threads during a call, and
# none is left once the call is over: a backend is single-threaded again
# while control is in Postgres (a fork for COPY ... TO PROGRAM or plperlu's
# system() must not happen in a multi-threaded process).  Checked from
# inside the session (/proc/self/task) after generate, classify and embed,
# from outside during a later pg_sleep, and after a cancelled call.  Uses
# the generated test models, so it needs no download.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use LmgenNode;
use Time::HiRes qw(time usleep);

my $node = lmgen_node('threads', [tiny => 'tiny-f32.gguf', long => 'long-ctx.gguf']);
$node->safe_psql('postgres', q{
	-- threads of this backend; waits up to 1 s for exited threads to be reaped
	CREATE FUNCTION backend_threads() RETURNS int LANGUAGE plpgsql AS $$
	DECLARE n int;
	BEGIN
		FOR i IN 1 .. 100 LOOP
			SELECT count(*) INTO n FROM pg_ls_dir('/proc/self/task');
			EXIT WHEN n = 1;
			PERFORM pg_sleep(0.01);
		END LOOP;
		RETURN n;
	END $$;
});

my $s = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $s->query_safe('SELECT pg_backend_pid()');
$s->query_safe('SET lmgen.threads = 2');
is($s->query_safe('SELECT backend_threads()'), '1', 'a fresh backend has one thread');

# The engine does start a worker: seen from outside during a long call.
$s->query_until(qr/started/, "\\echo started\nSELECT length(generate(repeat('ab cd ', 2500), 4, model => 'long'));\n");
my $seen = 1;
for (1 .. 500)
{
	my ($n) = slurp_file("/proc/$pid/status") =~ /^Threads:\s+(\d+)/m;
	$seen = $n if $n > $seen;
	last if $seen >= 2;
	usleep(10_000);
}
is($seen, 2, 'during a call with lmgen.threads = 2 the backend runs a second thread');
$s->query('SELECT 1');    # waits for the call to finish

for my $call (
	"SELECT length(generate('Once upon a time', 16, model => 'tiny')) > 0",
	"SELECT classify('a short text', ARRAY['yes', 'no', 'maybe'], model => 'tiny') IS NOT NULL",
	"SELECT array_length(embed('a short text', model => 'tiny'), 1) > 0",
	"SELECT count(*) > 0 FROM classify_scores('a text', ARRAY['a', 'b'], model => 'tiny')",
	"SELECT count(embed('row ' || i, model => 'tiny')) = 20 FROM generate_series(1, 20) i",
	# array forms: a batch through the backend's engine scheduler
	"SELECT cardinality(generate(ARRAY['Once upon a time', 'The cat'], 8, model => 'tiny')) = 2",
	"SELECT cardinality(classify(ARRAY['a short text', 'another'], ARRAY['yes', 'no'], model => 'tiny')) = 2",
	"SELECT array_length(embed(ARRAY['a short text', 'another'], model => 'tiny'), 1) = 2")
{
	is($s->query_safe($call), 't', "runs: $call");
	is($s->query_safe('SELECT backend_threads()'), '1', "one thread once it returned: $call");
}

# In the same row, right after generate() returns.
is($s->query_safe("SELECT length(generate('Once upon a time', 8, model => 'tiny')) > 0 AND backend_threads() = 1"),
	't', 'one thread already within the row that called generate()');

# From outside, during a later pg_sleep.
$s->query_safe("SELECT generate('Once upon a time', 16, model => 'tiny')");
$s->query_until(qr/sleeping/, "\\echo sleeping\nSELECT pg_sleep(2);\n");
usleep(300_000);
my ($threads) = slurp_file("/proc/$pid/status") =~ /^Threads:\s+(\d+)/m;
is($threads, 1, 'during a later pg_sleep the backend has one thread (/proc/<pid>/status)');
$s->query('SELECT 1');

# After an ERROR in the middle of a call (statement_timeout in the prefill).
$s->query_safe("SET statement_timeout = '300ms'");
$s->query("SELECT generate(repeat('ab cd ', 2500), 4, model => 'long')");
$s->query("RESET statement_timeout");
my $after_timeout = $s->query('SELECT backend_threads()');
$after_timeout =~ s/\s+//g;
is($after_timeout, '1', 'one thread after a call cancelled by statement_timeout');
$s->quit;

# A fork from the backend works after such calls.
my $out = $node->basedir . '/copy_out.txt';
$node->safe_psql('postgres', "SET lmgen.threads = 2; SELECT generate('Once upon a time', 4, model => 'tiny'); "
	  . "COPY (SELECT 'copied ' || backend_threads()) TO PROGRAM 'cat > $out'");
is(slurp_file($out), "copied 1\n", 'COPY ... TO PROGRAM works after a threaded call, from a single-threaded backend');

# Cost of starting the workers for each call (benchmark figures, not
# asserted): many short calls on one and on two threads.
for my $threads (1, 2)
{
	my $q = "SET lmgen.threads = $threads; SELECT count(embed('row ' || i, model => 'tiny')) FROM generate_series(1, 2000) i";
	$node->safe_psql('postgres', $q);
	my $t0 = time;
	$node->safe_psql('postgres', $q);
	note(sprintf('lmgen.threads = %d: 2000 embed() calls on the tiny model in %.0f ms (%.0f us per call)',
			$threads, (time - $t0) * 1000, (time - $t0) * 500));
}

$node->stop;
done_testing();
