-- embed() with the sentence-embedding model all-MiniLM-L6-v2, which `make
-- model` installs and CREATE EXTENSION registers as minilm; run by `make
-- installcheck-models`.  Reference values are from
-- ../shared/golden/minilm (sentence-transformers).
\set VERBOSITY terse

SHOW lmgen.default_embedding_model;
SELECT name, architecture, quantization, context_length, "default" FROM lmgen.models WHERE name = 'minilm';

-- a NULL model means the embedding model: 384 values of unit length
SELECT cardinality(embed('hello world')) AS dims,
       round((SELECT sqrt(sum(x::float8 * x)) FROM unnest(embed('hello world')) x)::numeric, 5) AS norm;
SELECT embed('hello world') = embed('hello world', 'minilm') AS null_model_is_minilm;

-- the reference embedding of "A man is eating food." begins {0.0332,0.0044,-0.0063,0.0484}
-- (4 digits): the default int16 products give it within 1e-4, F32 exactly (below)
SELECT (SELECT array_agg(round(x::numeric, 4)) FROM unnest(embed('A man is eating food.')) WITH ORDINALITY u(x, i)
        WHERE i <= 4) AS first_four;

-- similar texts closer than unrelated ones (golden cosines 0.7553 and 0.2474)
SELECT round(lmgen.cosine_similarity(embed('A man is eating food.'), embed('A man is eating a piece of bread.'))::numeric, 3) AS bread,
       round(lmgen.cosine_similarity(embed('A man is eating food.'), embed('A man is riding a horse.'))::numeric, 3) AS horse;

-- semantic search in plain SQL
CREATE TEMP TABLE docs (id int, body text);
INSERT INTO docs VALUES
  (1, 'PostgreSQL is a powerful, open source object-relational database system.'),
  (2, 'Fast, lightweight web server with PHP support'),
  (3, 'A kitten is sleeping on the sofa.'),
  (4, 'library for reading and writing GGUF model files');
SELECT q, (SELECT id FROM docs ORDER BY lmgen.cosine_similarity(embed(body), embed(q)) DESC LIMIT 1) AS best
FROM (VALUES ('SQL database server'), ('a cat naps on the couch'), ('serve web pages'), ('load language model weights')) v(q);

-- accents, case and punctuation are normalised as BERT's tokenizer does
SELECT lmgen.tokenize('Résumé, NAÏVE café!', 'minilm') AS ids;
SELECT embed('Résumé, naïve café') = embed('resume, NAIVE CAFE') AS accents_and_case_ignored;

-- an empty text is [CLS] [SEP]; a long text is cut to 256 tokens, as sentence-transformers does
SELECT cardinality(embed('')) AS empty_dims;
SELECT embed(repeat('word ', 1000)) = embed(repeat('word ', 300)) AS cut_at_256_tokens;

-- the same vector on two threads
CREATE TEMP TABLE one_thread AS SELECT embed('A man is eating food.') AS e;
SET lmgen.threads = 2;
SELECT embed('A man is eating food.') = (SELECT e FROM one_thread) AS same_on_two_threads;
RESET lmgen.threads;

-- the layer products: 13-bit integers by default; F32 on request (in this
-- backend: local execution), a slightly different vector at cosine >= 0.9999
SHOW lmgen.embedding_precision;
SET lmgen.execution = local;
CREATE TEMP TABLE int16_vec AS SELECT embed('A man is eating food.') AS e;
SET lmgen.embedding_precision = f32;
SELECT (SELECT array_agg(round(x::numeric, 4)) FROM unnest(embed('A man is eating food.')) WITH ORDINALITY u(x, i)
        WHERE i <= 4) AS f32_first_four,
       embed('A man is eating food.') <> (SELECT e FROM int16_vec) AS f32_differs,
       lmgen.cosine_similarity(embed('A man is eating food.'), (SELECT e FROM int16_vec)) >= 0.9999 AS f32_close;
SET lmgen.embedding_precision = int16;
SELECT embed('A man is eating food.') = (SELECT e FROM int16_vec) AS int16_again;
RESET lmgen.embedding_precision;
RESET lmgen.execution;

-- chat models stay available by name; the setting picks another embedding model
SELECT cardinality(embed('hello world', model => 'smollm2')) AS smollm2_dims;
SET lmgen.default_embedding_model = 'smollm2';
SELECT cardinality(embed('hello world')) AS setting_dims;
SET lmgen.default_embedding_model = 'no_such_model';
SELECT cardinality(embed('hello world')) AS unregistered_falls_back_to_default_model;
RESET lmgen.default_embedding_model;

-- an encoder gives no text: a clear error
SELECT generate('hello', 5, model => 'minilm');
SELECT summarize('The library opens at nine.', model => 'minilm');

-- cosine_similarity checks its input
SELECT lmgen.cosine_similarity(ARRAY[1, 0]::real[], ARRAY[1, 1]::real[]) AS cos45;
SELECT lmgen.cosine_similarity(ARRAY[0, 0]::real[], ARRAY[1, 1]::real[]) AS zero_vector;
SELECT lmgen.cosine_similarity(ARRAY[1, 2, 3]::real[], ARRAY[1, 2]::real[]);
SELECT lmgen.cosine_similarity(ARRAY[1, NULL]::real[], ARRAY[1, 2]::real[]);
SELECT lmgen.cosine_similarity(ARRAY[[1, 2], [3, 4]]::real[], ARRAY[1, 2, 3, 4]::real[]);
SELECT lmgen.cosine_similarity('{}'::real[], '{}'::real[]);
SELECT lmgen.cosine_similarity(NULL, ARRAY[1]::real[]) IS NULL AS null_in_null_out;
