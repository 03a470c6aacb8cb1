-- lmgen.tokenize, lmgen.detokenize, lmgen.count_tokens on a generated model
-- (a synthetic 512-token SentencePiece vocabulary with byte fallback).
\set VERBOSITY terse

-- no model registered yet: a clear error
SELECT lmgen.tokenize('hello');
SELECT lmgen.tokenize('hello', 'nope');

SELECT lmgen.load_model('tiny', 'tiny-q8_0.gguf');

SELECT lmgen.tokenize('Once upon a time');
SELECT lmgen.tokenize('Once upon a time', 'tiny') = lmgen.tokenize('Once upon a time') AS same_as_default;
SELECT lmgen.count_tokens('Once upon a time');
SELECT lmgen.count_tokens('');
SELECT lmgen.tokenize('');

-- round trips, including text that needs byte fallback (accents, emoji, CJK)
SELECT t, lmgen.detokenize(lmgen.tokenize(t)) = t AS round_trip
FROM (VALUES ('Once upon a time'), ('  two leading spaces'), ('héllo wörld'),
             ('emoji 🎉 and 日本語'), (E'tabs\tand\nnewlines')) v(t);

-- byte tokens that are not text: a NUL byte is dropped, bytes that form no
-- UTF-8 character become U+FFFD (ids 3..258 are the bytes 0x00..0xFF)
SELECT lmgen.detokenize(ARRAY[3]) = '' AS nul_dropped;
SELECT lmgen.detokenize(ARRAY[3 + ascii('a'), 3, 3 + ascii('b')]) AS nul_between;
SELECT lmgen.detokenize(ARRAY[3 + 255, 3 + ascii('c')]) = E'\uFFFDc' AS invalid_byte;
SELECT lmgen.detokenize(ARRAY[3 + x'C3'::int, 3 + x'A9'::int]) = 'é' AS two_bytes_one_char;

-- control-token text in user input stays plain text
SELECT lmgen.tokenize('<s>') @> ARRAY[1] AND cardinality(lmgen.tokenize('<s>')) > 2 AS plain_text;

-- NULL in, NULL out
SELECT lmgen.tokenize(NULL) IS NULL, lmgen.count_tokens(NULL) IS NULL, lmgen.detokenize(NULL) IS NULL;

-- bad ids
SELECT lmgen.detokenize(ARRAY[1, 600]);
SELECT lmgen.detokenize(ARRAY[1, -1]);
SELECT lmgen.detokenize(ARRAY[1, NULL]);
SELECT lmgen.detokenize(ARRAY[[1, 2], [3, 4]]);
SELECT lmgen.detokenize('{}'::int[]) = '' AS empty;

SELECT lmgen.unload_model('tiny');
