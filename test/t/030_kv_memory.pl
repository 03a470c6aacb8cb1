# KV memory follows the call: lmgen.max_kv_memory refuses a call that would
# need more (an ERROR naming the setting, the backend usable after it), only
# superusers may change it, and after a call that needed tens of MB of KV
# cache the idle backend holds no more than a small keep size of it.
# Uses the generated long-context model (test/make_fixtures.sh): 8 kB of KV
# cache per position, so a 3000-token prompt needs about 24 MB.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use LmgenNode;

my $node = lmgen_node('kv_memory', [long => 'long-ctx.gguf']);

my $big = "SELECT length(generate(repeat('ab cd ', 1500), 2, model => 'long')) >= 0";
my $anon_kb = "SELECT (regexp_match(pg_read_file('/proc/self/status'), 'RssAnon:\\s+(\\d+)'))[1]";

# Over the limit: a clear ERROR naming the setting, and the session goes on.
my ($rc, $out, $err) = $node->psql('postgres',
	"SET lmgen.max_kv_memory = '1MB'; $big; SELECT 'still usable'");
like($err, qr/this generation needs (\d+) MB of KV memory, more than lmgen\.max_kv_memory \(1 MB\)/,
	'a call over lmgen.max_kv_memory is refused with an ERROR naming the setting');
my ($need_mb) = $err =~ /needs (\d+) MB/;
$need_mb //= 0;
ok($need_mb >= 16, "the message states what the call needs ($need_mb MB)");
($rc, $out, $err) = $node->psql('postgres',
	"SET lmgen.max_kv_memory = '1MB'; SELECT generate('ab', 2, model => 'long') IS NOT NULL");
is($out, 't', 'a small call fits a small limit');

# Only superusers may change it.
$node->safe_psql('postgres', 'CREATE ROLE plain LOGIN');
($rc, $out, $err) = $node->psql('postgres', "SET lmgen.max_kv_memory = '64GB'", extra_params => [ '-U', 'plain' ]);
like($err, qr/permission denied to set parameter "lmgen\.max_kv_memory"/, 'a non-superuser cannot raise the limit');

# Idle memory after a big call: one session, anonymous RSS before and after.
$out = $node->safe_psql('postgres',
	"SELECT generate('ab', 2, model => 'long') IS NOT NULL; $anon_kb; $big; $anon_kb; $big; $anon_kb");
my (undef, $before, undef, $after1, undef, $after2) = split /\n/, $out;
my $grown_mb = ($after2 - $before) / 1024;
note(sprintf('anonymous RSS: %d kB before, %d kB after one call, %d kB after two (the calls needed %d MB each)',
	$before, $after1, $after2, $need_mb));
cmp_ok($grown_mb, '<', 8, 'after calls needing ~24 MB of KV cache the idle backend keeps less than 8 MB more');
cmp_ok(abs($after2 - $after1) / 1024, '<', 2, 'repeating the call does not grow the backend');

# classify: 200 labels on a ~1400-token text share the text's KV blocks, so
# the call's peak stays near the text's cache (~12 MB), far from 16 label
# copies of it (~180 MB), and the idle backend gives it back.
my $hwm_kb = "SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\\s+(\\d+)'))[1]";
$out = $node->safe_psql('postgres',
	"SET lmgen.max_kv_memory = '64MB'; SELECT generate('ab', 2, model => 'long') IS NOT NULL; $hwm_kb; $anon_kb; "
	  . "SELECT classify(repeat('ab cd ', 700), (SELECT array_agg('ab' || i) FROM generate_series(1, 200) i), 'long') IS NOT NULL; "
	  . "$hwm_kb; $anon_kb");
my (undef, $hwm0, $anon0, $ok, $hwm1, $anon1) = split /\n/, $out;
note(sprintf('classify, 200 labels: peak %d kB -> %d kB, anonymous RSS %d kB -> %d kB', $hwm0, $hwm1, $anon0, $anon1));
is($ok, 't', 'classify with 200 labels runs within a 64 MB KV limit');
cmp_ok(($hwm1 - $hwm0) / 1024, '<', 60, 'its peak memory grows by less than 60 MB');
cmp_ok(($anon1 - $anon0) / 1024, '<', 8, 'and the idle backend keeps less than 8 MB of it');

$node->stop;
done_testing();
