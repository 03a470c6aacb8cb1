# The background worker on a compute device, with the host-memory test
# device (test/unit/lmgen_hostdev.so) standing in for lmgen_cuda.so through
# lmgen.device_library (worker_device.c):
#   - the probe runs in a child of the worker: the postmaster never maps the
#     backend, the worker does, and lmgen.status() shows the device, its
#     memory and the batch size;
#   - generate, summarize and classify through the worker on the device give
#     the answers of local mode on the CPU, alone and many rows at once;
#   - a failing forward pass fails that call with an ERROR naming the device,
#     and the next calls work, still on the device;
#   - a fault that poisons the device fails that call; the worker closes the
#     device and later calls run on the CPU with the same answers;
#   - lmgen.device = 'auto' with a missing library, or a probe that crashes
#     or hangs (killed after 10 s), runs on the CPU (a LOG line says why);
#     'cuda' without a device too, with a WARNING; 'cpu' never loads the
#     library.
# Runs on the installed SmolLM2 (the default model); skipped when `make model`
# has not installed it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use LmgenNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
my $models = "$sharedir/lmgen/models";
plan skip_all => "the default model is not installed (make model)" unless -f "$models/default.gguf";
my $hostdev = "$FindBin::RealBin/../unit/lmgen_hostdev.so";
die "build $hostdev first (make unit)" unless -f $hostdev;

my $tmp = PostgreSQL::Test::Utils::tempdir('device_host');
my $control = "$tmp/control";
$ENV{LMGEN_HOSTDEV_CONTROL} = $control;
$ENV{LMGEN_HOSTDEV_MEMORY_MB} = 128;
delete $ENV{LMGEN_HOSTDEV_PROBE};

my $node = lmgen_node('device_host', [ smol => 'default.gguf' ],
	model_dir => $models,
	execution => 'worker',
	conf => "lmgen.worker_threads = 1\nlmgen.device_library = '$hostdev'\nlmgen.device = 'auto'\n");

# The worker's pid, once it runs.
sub worker_pid
{
	for (1 .. 300)
	{
		my $pid = $node->safe_psql('postgres', "SELECT worker_pid FROM lmgen.status() WHERE state <> 'starting'");
		return $pid if $pid ne '';
		usleep(100_000);
	}
	die "the lmgen worker did not start";
}

# The postmaster's pid (first line of postmaster.pid).
sub postmaster_pid
{
	my ($pid) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
	return $pid;
}

# One status column.
sub status
{
	my ($col) = @_;
	return $node->safe_psql('postgres', "SELECT $col FROM lmgen.status()");
}

my $gen = "SELECT generate('Once upon a time', 12, model => 'smol')";
my $many = "SELECT string_agg(generate('Tell me about the number ' || i, 10, model => 'smol'), ' | ' ORDER BY i) FROM generate_series(1, 6) i";
my $sum = "SELECT summarize('The lighthouse keeper climbed the stairs every evening to light the lamp. One night a storm broke the glass and he kept the flame alive with his coat until dawn.', 16, model => 'smol')";
my $cls = "SELECT classify('The team won the match in the last minute', ARRAY['sports', 'politics', 'cooking'], model => 'smol')";
my @calls = ($gen, $many, $sum, $cls);
my %ref = map { $_ => $node->safe_psql('postgres', "SET lmgen.execution = 'local'; $_") } @calls;

# The device is found by a probe in a child, and only the worker maps it.
my $wpid = worker_pid();
is(status('device'), 'lmgen host test device', 'the worker runs on the device the probe found');
is(status('device_memory_total'), 128 << 20, 'status shows the device memory');
ok(slurp_file($node->logfile) =~ /running decoder models on device "lmgen host test device"/,
	'the worker logs the device it uses');
unlike(slurp_file('/proc/' . postmaster_pid() . '/maps'), qr/lmgen_hostdev/, 'the postmaster never maps the device library');
like(slurp_file("/proc/$wpid/maps"), qr/lmgen_hostdev/, 'the worker maps the device library');

# The same answers as local mode on the CPU.
for my $q (@calls)
{
	is($node->safe_psql('postgres', $q), $ref{$q}, "on the device: $q");
}
ok(status('device_memory_used') > 0, 'the model\'s KV pool shows in the device memory used');
ok(status('batch_size') > 0, 'status shows the batch size');

# Four sessions at once share device steps, each with its own answer.
my @q = map { "SELECT generate('Four sessions, number $_, say', 24, model => 'smol')" } 1 .. 4;
my %qref = map { $_ => $node->safe_psql('postgres', "SET lmgen.execution = 'local'; $_") } @q;
my @c = map { start_psql($node, $_) } @q;
for my $i (0 .. 3)
{
	my ($crc, $cout) = finish_psql($c[$i]);
	chomp $cout;
	is($cout, $qref{ $q[$i] }, "concurrent session $i on the device: the answer of local mode");
}
ok($node->safe_psql('postgres', "SELECT max(max_batch) > 1 FROM lmgen.stats") eq 't',
	'concurrent sessions ran in one device step');

# A failing forward pass: that call fails, the next ones work on the device.
open(my $fh, '>', $control) or die; print $fh "fail\n"; close $fh;
my ($rc, $out, $err) = $node->psql('postgres', $gen);
isnt($rc, 0, 'a call whose device step fails gets an ERROR');
like($err, qr/ERROR:.*device failed a forward pass: host test device: simulated failure/, 'the ERROR names the device failure');
ok(!-e $control, 'the simulated failure was taken');
is($node->safe_psql('postgres', $gen), $ref{$gen}, 'the next call works');
is(status('device'), 'lmgen host test device', 'still on the device after a plain failure');
is(status('worker_pid'), $wpid, 'the worker did not restart');

# A fault that poisons the device: that call fails, the worker goes on on the CPU.
open($fh, '>', $control) or die; print $fh "poison\n"; close $fh;
($rc, $out, $err) = $node->psql('postgres', $gen);
isnt($rc, 0, 'a call whose device faults gets an ERROR');
like($err, qr/ERROR:.*simulated fault/, 'the ERROR names the fault');
is(status('device'), 'cpu', 'the worker closed the unhealthy device');
like(status('device_detail'), qr/the device failed/, 'status says why the CPU runs');
for my $q (@calls)
{
	is($node->safe_psql('postgres', $q), $ref{$q}, "on the CPU after the fault: $q");
}
is(status('worker_pid'), $wpid, 'the worker did not restart');
ok(slurp_file($node->logfile) =~ /device "lmgen host test device" failed and is closed/, 'the fallback is logged');

# 'auto' with a missing library: the CPU, and the log says why.
$node->append_conf('postgresql.conf', "lmgen.device_library = '$tmp/missing/lmgen_cuda'\n");
$node->restart;
worker_pid();
is(status('device'), 'cpu', "'auto' without the library runs on the CPU");
like(status('device_detail'), qr/cannot load device backend/, 'status says the library is missing');
ok(slurp_file($node->logfile) =~ /lmgen worker: running on the CPU: cannot load device backend/, 'one LOG line says why');
is($node->safe_psql('postgres', $gen), $ref{$gen}, 'calls work on the CPU');

# A probe that crashes means no device; the worker is fine.
$node->append_conf('postgresql.conf', "lmgen.device_library = '$hostdev'\n");
$ENV{LMGEN_HOSTDEV_PROBE} = 'crash';
$node->restart;
$wpid = worker_pid();
is(status('device'), 'cpu', 'a crashing probe means no device');
like(status('device_detail'), qr/probe crashed \(signal 11\)/, 'status says the probe crashed');
unlike(slurp_file("/proc/$wpid/maps"), qr/lmgen_hostdev/, 'the worker itself never loaded the library');
is($node->safe_psql('postgres', $gen), $ref{$gen}, 'calls work after a crashed probe');

# A probe that hangs is killed after 10 seconds: no device.
$ENV{LMGEN_HOSTDEV_PROBE} = 'hang';
$node->restart;
$wpid = worker_pid();
like(status('device_detail'), qr/did not answer within 10 seconds/, 'a hung probe is killed and means no device');
is($node->safe_psql('postgres', $gen), $ref{$gen}, 'calls work after a hung probe');
delete $ENV{LMGEN_HOSTDEV_PROBE};

# 'cuda' without a usable device: the CPU too, with a WARNING.
$node->append_conf('postgresql.conf', "lmgen.device = 'cuda'\nlmgen.device_library = '$tmp/missing/lmgen_cuda'\n");
$node->restart;
worker_pid();
is(status('device'), 'cpu', "'cuda' without a device runs on the CPU");
ok(slurp_file($node->logfile) =~ /WARNING:  lmgen worker: running on the CPU: cannot load device backend/,
	"'cuda' without a device logs a WARNING");
is($node->safe_psql('postgres', $gen), $ref{$gen}, "calls work with 'cuda' and no device");

# 'cpu' never loads the library.
$node->append_conf('postgresql.conf', "lmgen.device_library = '$hostdev'\n");
$node->append_conf('postgresql.conf', "lmgen.device = 'cpu'\n");
$node->restart;
$wpid = worker_pid();
is(status('device'), 'cpu', "lmgen.device = 'cpu' runs on the CPU");
unlike(slurp_file("/proc/$wpid/maps"), qr/lmgen_hostdev/, "with 'cpu' the worker does not map the library");

$node->stop;
done_testing();
