-- The text generate() returns, on a generated test model (random weights,
-- so its greedy text is a fixed jumble of byte tokens and letter pieces):
-- stop strings, and model bytes that are not valid text.
\set VERBOSITY terse

SELECT lmgen.load_model('textout', 'tiny-f32.gguf');

-- greedy: " gn dg q", the bytes C8 94 (two byte tokens making U+0214),
-- " f dc.B", bytes that form no character (each becomes U+FFFD), a NUL
-- byte (dropped), ...
SELECT generate('hello', 16, model => 'textout');
SELECT position(E'\uFFFD' IN generate('hello', 16, model => 'textout')) > 0 AS has_replacement;

-- stop strings: a single one, a multi-byte one made of two byte tokens,
-- one across tokens, one at the very start of the output
SELECT generate('hello', 16, stop => ARRAY['dc'], model => 'textout');
SELECT generate('hello', 16, stop => ARRAY[E'\u0214'], model => 'textout');
SELECT generate('hello', 16, stop => ARRAY['dg q'], model => 'textout');
SELECT generate('hello', 16, stop => ARRAY[' gn'], model => 'textout') = '' AS empty_text;
-- the replacement character is text like any other
SELECT generate('hello', 16, stop => ARRAY[E'\uFFFD'], model => 'textout');
-- a stop string that never appears leaves the text whole
SELECT generate('hello', 16, stop => ARRAY['never'], model => 'textout') =
       generate('hello', 16, model => 'textout') AS whole_text;

SELECT lmgen.unload_model('textout');
