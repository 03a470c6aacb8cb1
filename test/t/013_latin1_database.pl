# A LATIN1 database: text going into a model is converted to UTF-8 (the same
# token ids as in a UTF-8 database), and model text coming out is always
# valid LATIN1 — NUL bytes dropped, characters LATIN1 cannot hold as '?' —
# never an error after the model has run.  Uses the generated test model
# (random weights: its greedy text holds byte tokens that make U+0214, bytes
# that form no character, and a NUL byte); with the real models installed
# (make model) it also asks SmolLM2 for Japanese, Chinese and Russian.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('latin1');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'lmgen'\nlmgen.model_dir = '$ENV{TESTDIR}/test/models'\n");
$node->start;
for my $enc ('UTF8', 'LATIN1')
{
	$node->safe_psql('postgres',
		"CREATE DATABASE \"db_$enc\" ENCODING '$enc' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'");
	$node->safe_psql("db_$enc",
		"CREATE EXTENSION lmgen; SELECT lmgen.load_model('tiny', 'tiny-f32.gguf')");
}
is($node->safe_psql('db_LATIN1', 'SHOW server_encoding'), 'LATIN1', 'the database is LATIN1');

# A query's output, or its error message (so a failing case fails alone).
sub result
{
	my ($db, $sql) = @_;
	my ($ret, $out, $err) = $node->psql($db, $sql);
	return $ret == 0 ? $out : "ERROR: $err";
}

# Run a query in both databases; its result (text) in each.
sub both
{
	my ($sql) = @_;
	return map { $node->safe_psql("db_$_", $sql) } ('UTF8', 'LATIN1');
}

# Text in: the same ids in LATIN1 as in UTF-8, for text beyond ASCII.
# (convert_from turns the UTF-8 bytes into each database's encoding.)
my $text = q{convert_from('\x68c3a96c6c6f2077c3b6726c642c20c3a720636fc3bb746520c2a3352c2053c39f'::bytea, 'UTF8')};
my ($ids_u, $ids_l) = both("SELECT lmgen.tokenize($text)");
is($ids_l, $ids_u, 'tokenize gives the same ids in LATIN1 as in UTF-8 ("héllo wörld, ça coûte £5, Sß")');
like($ids_l, qr/^\{1,/, 'the ids start with BOS');
is($node->safe_psql('db_LATIN1', "SELECT lmgen.detokenize(lmgen.tokenize($text)) = $text"),
	't', 'detokenize(tokenize(x)) = x in LATIN1');
is($node->safe_psql('db_LATIN1', "SELECT lmgen.count_tokens($text) = cardinality(lmgen.tokenize($text))"),
	't', 'count_tokens agrees');

# Text out: byte tokens (ids 3..258 are the bytes 0x00..0xFF).
my $bytes = sub { join(',', map { 3 + hex($_) } @_) };
is(result('db_LATIN1',
		"SELECT encode(convert_to(lmgen.detokenize(ARRAY[" . $bytes->('c3', 'a9') . "]), 'UTF8'), 'hex')"),
	'c3a9', 'a character LATIN1 holds comes back as itself (é)');
is(result('db_LATIN1',
		"SELECT lmgen.detokenize(ARRAY[" . $bytes->('61', 'c8', '94', '62', 'd0', 'b6', '63') . "])"),
	'a?b?c', 'characters LATIN1 cannot hold (U+0214, U+0436) become ?');
is(result('db_LATIN1',
		"SELECT lmgen.detokenize(ARRAY[" . $bytes->('61', '00', '62', 'ff', '63') . "])"),
	'ab?c', 'a NUL byte is dropped; a byte that forms no character (U+FFFD) becomes ?');

# generate(): the model's text with what LATIN1 lacks as '?'.  In UTF-8
# the same call gives the text with those characters; replace them there
# and compare the bytes.
my $call = "generate('hello', 16, model => 'tiny')";
my $want = result('db_UTF8',
	"SELECT encode(convert_to(regexp_replace($call, '[^\\u0001-\\u00ff]', '?', 'g'), 'UTF8'), 'hex')");
my ($ret, $got, $err) = $node->psql('db_LATIN1', "SELECT encode(convert_to($call, 'UTF8'), 'hex')");
is($err, '', 'generate() in LATIN1 raises no error');
is($got, $want, 'generate() in LATIN1 is the UTF-8 text with characters outside LATIN1 as ?');
like(result('db_UTF8', "SELECT $call"), qr/\x{c8}\x{94}/,
	'(the UTF-8 text does hold U+0214, which LATIN1 lacks)');
($ret, $got, $err) = $node->psql('db_LATIN1', "SELECT summarize('hello', 16, model => 'tiny') IS NOT NULL");
is("$got$err", 't', 'summarize() in LATIN1 raises no error');
is(result('db_LATIN1',
		"SELECT convert_to(classify('x', ARRAY[$text, 'plain'], model => 'tiny'), 'UTF8') IN "
		  . "(convert_to($text, 'UTF8'), 'plain')"),
	't', 'classify() echoes a non-ASCII label unchanged');

# The real default model, when `make model` installed it.
my $installed = `pg_config --sharedir`;
chomp $installed;
$installed .= '/lmgen/models';
SKIP:
{
	skip 'the real models are not installed (make model)', 2
	  unless -f "$installed/SmolLM2-135M-Instruct.Q4_1.gguf";
	$node->safe_psql('postgres', "ALTER SYSTEM SET lmgen.model_dir = '$installed'");
	$node->reload;
	my $ask = "generate('Say hello in Japanese, Chinese and Russian.', 32, model => 'smol')";
	for my $enc ('UTF8', 'LATIN1')
	{
		$node->safe_psql("db_$enc", "SELECT lmgen.load_model('smol', 'SmolLM2-135M-Instruct.Q4_1.gguf')");
	}
	$want = result('db_UTF8',
		"SELECT encode(convert_to(regexp_replace($ask, '[^\\u0001-\\u00ff]', '?', 'g'), 'UTF8'), 'hex')");
	($ret, $got, $err) = $node->psql('db_LATIN1', "SELECT encode(convert_to($ask, 'UTF8'), 'hex')");
	is($err, '', 'SmolLM2 answers in Japanese, Chinese and Russian in LATIN1 without an error');
	is($got, $want, 'its answer is the UTF-8 one with the characters outside LATIN1 as ?');
}

$node->stop;
done_testing();
