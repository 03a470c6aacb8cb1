# lmgen.training_progress seen from another session while train_classifier
# runs: the phase, the rows read and skipped while the query is read, then
# the epochs with a training loss that falls; and pg_cancel_backend stopping
# the training in the middle of an epoch, the progress row cleared.
#
# The training data: 80 classes of 9 rows each (so few that no validation
# slice is held out and early stopping never ends the run; 10,000 epochs
# would take hours), each row 300 random hex words, so one epoch costs about
# two seconds of CPU.  3,000 rows with a NULL label come first (skipped and
# counted); the query sleeps at two of them, so the reading phase is seen
# part way.  The cancel's cost is measured in CPU time of the training
# backend (clock ticks, 1/100 s), which a busy machine does not inflate: the
# issue asks for 200 ms, and a training that only looked for the cancel
# between epochs would usually need far more.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use LmgenNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = lmgen_node('training_progress', []);
$node->safe_psql('postgres', q{
CREATE TABLE rows_in (id int, body text, label text);
INSERT INTO rows_in SELECT i, 'no label', NULL FROM generate_series(1, 3000) i;
INSERT INTO rows_in
SELECT 10000 + i, string_agg(md5((i * 1000 + j)::text), ' ' ORDER BY j), 'class' || (i % 80)
FROM generate_series(1, 720) i, generate_series(1, 300) j GROUP BY i;
});
my $query = q{SELECT body || CASE WHEN id IN (1500, 2500) THEN (SELECT '' FROM pg_sleep(1.5)) ELSE '' END, label FROM rows_in};

# CPU time (clock ticks) process $pid has used.
sub cpu_ticks
{
	my ($pid) = @_;
	my $stat = slurp_file("/proc/$pid/stat");
	$stat =~ s/^.*\)\s+//s;    # fields from the 3rd on
	my @f = split /\s+/, $stat;
	return $f[11] + $f[12];    # utime + stime
}

# The training's progress row as a hash (undef when there is none).
sub progress
{
	my $row = $node->safe_psql('postgres',
		q{SELECT pid, usename, phase, rows_read, rows_skipped, epoch, epochs, loss
		  FROM lmgen.training_progress WHERE classifier = 'long'});
	return undef if $row eq '';
	my %p;
	@p{qw(pid usename phase rows_read rows_skipped epoch epochs loss)} = split /\|/, $row;
	return \%p;
}

my $s = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $s->query_safe('SELECT pg_backend_pid()');
is($node->safe_psql('postgres', 'SELECT count(*) FROM lmgen.training_progress'), '0',
	'no row before any training');
$s->query_until(qr/started/, "\\echo started\n"
	  . "SET client_min_messages = warning;\n"
	  . "SELECT lmgen.train_classifier('long', \$q\$$query\$q\$, features => 'ngrams:65536', "
	  . "epochs => 10000, test_fraction => 0);\n");

# reading: the first 1,000 rows fetched, the next fetch asleep
ok($node->poll_query_until('postgres',
		q{SELECT phase = 'reading rows' AND rows_read >= 1000 AND rows_read < 3720
		  FROM lmgen.training_progress WHERE classifier = 'long'}),
	'another session sees the phase reading rows part way through the query');
my $p = progress();
is($p->{pid}, $pid, 'the row names the training backend');
is($p->{usename}, $node->safe_psql('postgres', 'SELECT current_user'), 'and the user who trains');
is($p->{epochs}, 10000, 'and the epochs asked for');
is($p->{rows_skipped}, $p->{rows_read}, "rows with a NULL label counted as skipped while reading ($p->{rows_read} read)");
is($p->{epoch}, 0, 'no epoch yet while reading');

# training: epochs and their loss
ok($node->poll_query_until('postgres',
		q{SELECT phase = 'training' AND epoch >= 1 FROM lmgen.training_progress WHERE classifier = 'long'}),
	'then the phase training with a finished epoch');
my $first = progress();
is($first->{rows_read}, 3720, 'every row was read');
is($first->{rows_skipped}, 3000, 'the NULL-label rows were skipped');
like($first->{loss}, qr/^[0-9.e+-]+$/, "epoch $first->{epoch} shows its loss ($first->{loss})");
my $t0_ticks = cpu_ticks($pid);
my $want = $first->{epoch} + 2;
ok($node->poll_query_until('postgres',
		"SELECT epoch >= $want FROM lmgen.training_progress WHERE classifier = 'long'"),
	'the epoch count moves on');
my $later = progress();
my $epoch_ticks = (cpu_ticks($pid) - $t0_ticks) / ($later->{epoch} - $first->{epoch});
cmp_ok($later->{loss}, '<', $first->{loss},
	"the loss falls: epoch $first->{epoch} $first->{loss}, epoch $later->{epoch} $later->{loss}");
note(sprintf('an epoch takes about %.0f CPU ticks', $epoch_ticks));

# cancel at whatever point of an epoch it is now
my $base = cpu_ticks($pid);
my $t0 = time();
$s->{stderr} = '';
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
my $state = $s->query("\\echo :SQLSTATE");    # psql runs this once the call has ended
my $wall = time() - $t0;
my $used = cpu_ticks($pid) - $base;
is($state, '57014', 'pg_cancel_backend ends train_classifier with SQLSTATE 57014');
like($s->{stderr}, qr/canceling statement due to user request|training was stopped/, 'with the cancel message');
cmp_ok($used, '<', 20,
	sprintf('the training backend used %d CPU ticks (1/100 s) from the cancel to the end of the call '
		  . '(an epoch takes about %.0f); %.0f ms wall', $used, $epoch_ticks, $wall * 1000));
is($node->safe_psql('postgres', 'SELECT count(*) FROM lmgen.training_progress'), '0',
	'the progress row is cleared after the cancel');
is($node->safe_psql('postgres', q{SELECT count(*) FROM lmgen.classifiers WHERE name = 'long'}), '0',
	'and nothing was stored');

# the same session trains again; the row goes when the training ends
$s->{stderr} = '';
like($s->query_safe(q{SELECT lmgen.train_classifier('short', $$SELECT body, label FROM rows_in WHERE id > 10000 AND id <= 10160$$, features => 'ngrams:65536', epochs => 2, test_fraction => 0) ->> 'epochs_run'}),
	qr/^2$/, 'the same backend trains again after the cancel');
is($node->safe_psql('postgres', 'SELECT count(*) FROM lmgen.training_progress'), '0',
	'no progress row once a training has ended');
$s->quit;

$node->stop;
done_testing();
