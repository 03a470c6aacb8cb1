# With shared_preload_libraries = 'lmgen' each model file is read once into
# a DSM segment that the background worker and every backend map
# (model_shared.c):
#   - two local-mode sessions and the worker use the same segment: one row
#     in lmgen.shared_weights with three processes, and each process maps
#     /dev/shm/PostgreSQL.<segment>, never the model file itself;
#   - the answers are those of the file mapped the old way;
#   - a model file truncated while a local-mode statement or a worker call
#     runs on it: the call finishes with the same answer (the bytes in
#     shared memory are not the file's), while a call that starts meanwhile,
#     and the next statement, see the broken file (ERROR naming the model);
#   - the file restored (a new identity) is loaded into a new segment and
#     the old one is retired;
#   - fallbacks with the same answers: lmgen.shared_weights = off maps the
#     file; and a segment that cannot be created (dynamic_shared_memory_type
#     = mmap with a read-only pg_dynshmem) is logged, shown as state 'file'
#     and the file is mapped instead.
# Runs on a copy of the installed SmolLM2 (the default model); skipped when
# `make model` has not installed it.
use strict;
use warnings;
use File::Copy;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use LmgenNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
my $real = "$sharedir/lmgen/models/default.gguf";
plan skip_all => "the default model is not installed (make model)" unless -f $real;

my $dir = PostgreSQL::Test::Utils::tempdir('shared_weights_models');
my $victim = "$dir/smol.gguf";
copy($real, $victim) or die "copy: $!";
my $size = -s $victim;

my $node = lmgen_node('shared_weights', [ smol => 'smol.gguf' ],
	model_dir => $dir,
	execution => 'worker',
	conf => "lmgen.worker_threads = 1\n");

# The worker's pid, once it runs.
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

# Whether process $pid maps the model file, and whether it maps DSM segment $seg.
sub maps
{
	my ($pid, $seg) = @_;
	my $maps = slurp_file("/proc/$pid/maps");
	return ($maps =~ /smol\.gguf$/m ? 1 : 0, ($seg =~ /^\d+$/ && $maps =~ m{/PostgreSQL\.$seg$}m) ? 1 : 0);
}

my $short = "SELECT generate('Once upon a time', 16, model => 'smol')";
my $long = "SELECT string_agg(generate('Tell a story about the number ' || i, 40, model => 'smol'), ' | ') FROM generate_series(1, 36) i";
my $one_long = "SELECT generate('Write a long story about a lighthouse keeper', 160, model => 'smol')";

# Reference answers with the file mapped the old way (in a backend).
my $off = "SET lmgen.execution = 'local'; SET lmgen.shared_weights = off;";
my %ref = map { $_ => $node->safe_psql('postgres', "$off $_") } ($short, $long, $one_long);
is($node->safe_psql('postgres', 'SELECT count(*) FROM lmgen.shared_weights'), '0',
	'with lmgen.shared_weights off nothing was put in shared memory');

my $wpid = worker_pid();
my @s = map { $node->background_psql('postgres') } 1 .. 2;
my @pids = map { $_->query_safe("SET lmgen.execution = 'local'; SELECT pg_backend_pid()") } @s;
is($s[0]->query_safe($short), $ref{$short}, 'local session 1: same answer from shared memory');
is($s[1]->query_safe($short), $ref{$short}, 'local session 2: same answer from shared memory');
is($node->safe_psql('postgres', $short), $ref{$short}, 'the worker: same answer from shared memory');

my ($state, $bytes, $procs, $seg) = split /\|/, $node->safe_psql('postgres',
	"SELECT state, bytes, processes, segment FROM lmgen.shared_weights WHERE path LIKE '%/smol.gguf'");
is($state, 'shared', 'lmgen.shared_weights shows the model in shared memory');
is($bytes, $size, 'it holds the whole file');
is($procs, 3, 'three processes map it: two local-mode backends and the worker');
for my $p ([ 'local session 1', $pids[0] ], [ 'local session 2', $pids[1] ], [ 'the worker', $wpid ])
{
	my ($file, $dsm) = maps($p->[1], $seg);
	is($dsm, 1, "$p->[0] maps the DSM segment");
	is($file, 0, "$p->[0] does not map the model file");
}

# Truncated while a local-mode statement runs on it: the statement finishes
# with the same answer.  The statement (36 generations, batched) runs a few
# seconds, so that it is still running a second after it started: with 6
# it sometimes finished first once aggregate arguments were batched.
my $c = start_psql($node, "SET lmgen.execution = 'local'; $long");
my $running = '';
for (1 .. 100)
{
	$running = $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%number '' || i%' AND state = 'active' AND pid <> pg_backend_pid()");
	last if $running eq '1';
	usleep(50_000);
}
is($running, '1', 'the long local-mode statement runs');
usleep(1_000_000);
truncate($victim, 1 << 20) or die "truncate: $!";
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%number '' || i%' AND state = 'active' AND pid <> pg_backend_pid()"),
	'1', 'the statement was still running when the file was truncated');
my ($rc, $out, $err) = finish_psql($c);
chomp $out;
is($out, $ref{$long}, 'a file truncated during a local-mode statement: it finishes with the same answer')
  or diag("rc $rc: $err");

# The worker, during one long call.
copy($real, $victim) or die;
is($node->safe_psql('postgres', $short), $ref{$short}, 'the restored file gives the same answer');
my $seg_worker = $node->safe_psql('postgres',
	"SELECT segment FROM lmgen.shared_weights WHERE path LIKE '%/smol.gguf' AND state = 'shared'");
$c = start_psql($node, $one_long);
for (1 .. 100)
{
	last if $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%lighthouse keeper%' AND wait_event_type = 'Extension'") eq '1';
	usleep(50_000);
}
usleep(1_000_000);
truncate($victim, 1 << 20) or die "truncate: $!";
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%lighthouse keeper%' AND wait_event_type = 'Extension'"),
	'1', 'the worker call was still running when the file was truncated');
my (undef, undef, $e3) = $node->psql('postgres', $short);
like($e3, qr/invalid model file for model "smol"/,
	'a worker call that starts meanwhile opens the file as it is now: an ERROR');
($rc, $out, $err) = finish_psql($c);
chomp $out;
is($out, $ref{$one_long}, 'a file truncated during a worker call: it finishes with the same answer')
  or diag("rc $rc: $err");

# The next statement sees the broken file.
my ($rc2, $o2, $e2) = $node->psql('postgres', "SET lmgen.execution = 'local'; $short");
like($e2, qr/invalid model file for model "smol"/, 'the next statement on the truncated file fails naming the model');

# Restored: a new identity, loaded into a new segment; the old one is retired.
copy($real, $victim) or die;
is($s[1]->query_safe($short), $ref{$short}, 'the file restored: same answer');
my @rows = split /\n/, $node->safe_psql('postgres',
	"SELECT state, segment FROM lmgen.shared_weights WHERE path LIKE '%/smol.gguf'");
is(scalar(@rows), 1, 'one entry for the file: the old copies were retired');
my ($state2, $seg2) = split /\|/, $rows[0];
is($state2, 'shared', 'the new copy is in shared memory');
isnt($seg2, $seg, 'in a new segment');
my ($file1, $dsm1) = maps($pids[1], $seg2);
is($dsm1, 1, 'the session maps the new segment');
my (undef, $old1) = maps($pids[1], $seg);
is($old1, 0, 'and no longer the old one');
is($node->safe_psql('postgres', $short), $ref{$short}, 'the worker: same answer from the new copy');
my (undef, $wnew) = maps($wpid, $seg2);
my (undef, $wold) = maps($wpid, $seg_worker);
is("$wnew$wold", '10', 'the worker maps the new copy and has let go of the one its long call ran on');

# Fallback 1: lmgen.shared_weights = off maps the file, same answers.
my $f = $node->background_psql('postgres');
my $fpid = $f->query_safe("$off SELECT pg_backend_pid()");
is($f->query_safe($short), $ref{$short}, 'lmgen.shared_weights = off: same answer');
my ($ffile, $fdsm) = maps($fpid, $seg2);
is("$ffile$fdsm", '10', 'lmgen.shared_weights = off: the backend maps the file, not the segment');
$f->quit;
$_->quit for @s;

# Fallback 2: no segment can be made.
SKIP:
{
	skip 'root ignores the permissions this check relies on', 6 if $> == 0;
	$node->append_conf('postgresql.conf', "dynamic_shared_memory_type = mmap\n");
	$node->restart;
	my $dsmdir = $node->data_dir . '/pg_dynshmem';
	chmod(0555, $dsmdir) or die "chmod: $!";
	my $b = $node->background_psql('postgres');
	my $bpid = $b->query_safe("SET lmgen.execution = 'local'; SELECT pg_backend_pid()");
	my $answer = $b->query_safe($short);
	chmod(0700, $dsmdir) or die "chmod: $!";
	is($answer, $ref{$short}, 'no segment can be created: the call still succeeds with the same answer');
	my ($st, $detail) = split /\|/, $node->safe_psql('postgres',
		"SELECT state, detail FROM lmgen.shared_weights WHERE path LIKE '%/smol.gguf'");
	is($st, 'file', 'lmgen.shared_weights shows that the file is mapped instead');
	like($detail, qr/shared memory segment/, 'and why');
	my ($bfile, $bdsm) = maps($bpid, 'none');
	is($bfile, 1, 'the backend maps the file');
	is($b->query_safe($short), $ref{$short}, 'the next call maps the file again without trying');
	$b->quit;
	like(slurp_file($node->logfile), qr/could not place model "smol" in shared memory/,
		'the fallback is logged');
}

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal/, 'no process was terminated by a signal');
$node->stop;
done_testing();
