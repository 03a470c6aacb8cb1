-- generate(), summarize(), classify(), classify_scores() and embed() on small
-- random llama models written at test time (test/make_fixtures.sh), so a
-- clean checkout with no downloads tests the whole SQL surface:
--   words.gguf       a whole-word English vocabulary, no chat template
--   words-chat.gguf  the same vocabulary with the ChatML tokens and template
--   words-b.gguf     like words.gguf with other weights (the reload test)
-- Random weights mean the words are nonsense, but greedy decoding and the
-- kernels are deterministic (and bit-identical on every SIMD path), so the
-- outputs below are fixed.  Stop strings are left to their own tests.
\set VERBOSITY terse

-- no model registered: each function says so
SELECT generate('Once upon a time');
SELECT summarize('Once upon a time');
SELECT classify('Once upon a time', ARRAY['a', 'b']);
SELECT * FROM classify_scores('Once upon a time', ARRAY['a', 'b']);
SELECT embed('Once upon a time');

SELECT lmgen.load_model('words', 'words.gguf');
SELECT lmgen.load_model('chat', 'words-chat.gguf');
SELECT lmgen.load_model('words-b', 'words-b.gguf');
SELECT lmgen.default_model();

-- generate: greedy continuation (plain text), and an answer through the
-- ChatML template of the chat model
SELECT generate('Once upon a time', 12);
SELECT generate('Once upon a time', 12, model => 'chat');
SELECT generate('Once upon a time', 12, model => 'words-b');
SELECT generate('', 6) AS from_bos_only;
-- every argument given, NULLs meaning the defaults
SELECT generate('Once upon a time', 12, 0, 1, 0, NULL, NULL, 'words') =
       generate('Once upon a time', 12) AS explicit_defaults;
SELECT generate('Once upon a time', NULL, NULL, NULL, NULL, NULL, NULL, NULL) =
       generate('Once upon a time') AS null_means_default;
SELECT cardinality(regexp_split_to_array(btrim(generate('Once upon a time')), ' ')) AS default_max_tokens;
SELECT cardinality(regexp_split_to_array(btrim(generate('Once upon a time', 5)), ' ')) AS words_for_5_tokens;
-- sampling: fixed text for a seed; top_k = 1 is greedy
SELECT generate('Once upon a time', 12, temperature => 0.9, seed => 7);
SELECT generate('Once upon a time', 12, temperature => 0.9, seed => 7) =
       generate('Once upon a time', 12, temperature => 0.9, seed => 7) AS same_seed_same_text;
SELECT count(DISTINCT generate('Once upon a time', 12, temperature => 1.0, seed => s)) > 1 AS seeds_differ
FROM generate_series(1, 4) s;
SELECT generate('Once upon a time', 12, temperature => 5, top_k => 1, seed => 3) =
       generate('Once upon a time', 12) AS top_k_1_is_greedy;
SELECT generate('Once upon a time', 12, temperature => 0.7, top_p => 0.5, top_k => 40, seed => 11);
-- argument checks
SELECT generate(NULL) IS NULL AS null_prompt_null_text;
SELECT generate('x', 0);
SELECT generate('x', -1);
SELECT generate('x', 1025);
SELECT generate('x', 10, temperature => -1);
SELECT generate('x', 10, temperature => 101);
SELECT generate('x', 10, temperature => 'NaN');
SELECT generate('x', 10, top_p => 0);
SELECT generate('x', 10, top_p => 1.5);
SELECT generate('x', 10, top_k => -1);
SELECT generate('x', 10, stop => ARRAY['a', NULL]);
SELECT generate('x', 10, stop => ARRAY['']);
SELECT generate('x', 10, model => 'nope');
-- an empty name, like NULL, means the default model
SELECT generate('x', 10, model => '') = generate('x', 10) AS empty_name_is_default;
SET lmgen.max_tokens = 5;
SELECT generate('x', 6);
RESET lmgen.max_tokens;
-- a prompt longer than the context (512 tokens): an error with both counts,
-- or the text cut when asked (which end is kept is tested elsewhere)
SELECT generate(repeat('the dog ran to the park. ', 100), 10);
SET lmgen.context_overflow = 'truncate';
SELECT cardinality(regexp_split_to_array(btrim(generate(repeat('the dog ran to the park. ', 100), 10)), ' ')) AS words_after_cut;
RESET lmgen.context_overflow;
SELECT generate('x', 512);

-- summarize: one line, greedy (a plain-text cue without a chat format)
SELECT summarize('The little dog ran to the park and played with a red ball.', 10);
SELECT summarize('The little dog ran to the park and played with a red ball.', 10, 'chat');
SELECT summarize('The little dog ran to the park.', NULL, NULL) =
       summarize('The little dog ran to the park.') AS null_means_default;
SELECT summarize(NULL) IS NULL AS null_body_null_summary;
SELECT summarize('x', 0);
SELECT summarize('x', 1025);
SELECT summarize('x', 10, 'nope');
SELECT summarize(repeat('the dog ran to the park. ', 100), 10);

-- classify: the most likely label; classify_scores: every label's probability
SELECT classify('The team won the match with a late goal.', ARRAY['sports', 'politics', 'weather']);
SELECT classify('The team won the match with a late goal.', ARRAY['sports', 'politics', 'weather'], 'chat');
SELECT label, round(probability::numeric, 4) AS probability
FROM classify_scores('The team won the match with a late goal.', ARRAY['sports', 'politics', 'weather']);
SELECT label, round(probability::numeric, 4) AS probability
FROM classify_scores('The team won the match with a late goal.', ARRAY['sports', 'politics', 'weather'], 'chat');
SELECT round(sum(probability)::numeric, 4) AS total
FROM classify_scores('it was a great day', ARRAY['positive', 'negative', 'neutral', 'very happy', 'sad']);
-- the label with the highest probability is the one classify() returns
SELECT (SELECT label FROM classify_scores(t, l) ORDER BY probability DESC LIMIT 1) = classify(t, l) AS agree
FROM (VALUES ('it was a great day', ARRAY['positive', 'negative', 'neutral']),
             ('the cat saw a bird in the tree', ARRAY['cat', 'dog', 'bird', 'fish'])) v(t, l);
-- a label that is not in the vocabulary (byte fallback) and a multi-word label
SELECT classify('a song about the sea', ARRAY['música', 'the sea', 'news']);
-- argument checks
SELECT classify(NULL, ARRAY['a']) IS NULL AS null_body, classify('x', NULL) IS NULL AS null_labels;
SELECT count(*) AS no_rows FROM classify_scores(NULL, ARRAY['a']);
SELECT count(*) AS no_rows FROM classify_scores('x', NULL);
SELECT classify('x', '{}'::text[]);
SELECT classify('x', ARRAY['a', 'a']);
SELECT classify('x', ARRAY['a', NULL]);
SELECT classify('x', ARRAY['a', '']);
SELECT classify('x', ARRAY[['a', 'b'], ['c', 'd']]);
SELECT classify('x', array_agg('label ' || i)) FROM generate_series(1, 1001) i;
SELECT classify('x', ARRAY[repeat('zq', 40)]);
SELECT classify('x', ARRAY['a'], 'nope');
SELECT * FROM classify_scores('x', ARRAY['a', 'a']);
SELECT classify(repeat('the dog ran to the park. ', 100), ARRAY['a', 'b']);

-- embed: one value per model dimension (64), unit length, fixed values
SELECT cardinality(embed('Once upon a time')) AS dims,
       round((SELECT sqrt(sum(x * x)) FROM unnest(embed('Once upon a time')) x)::numeric, 5) AS norm;
SELECT (SELECT array_agg(round(x::numeric, 4)) FROM unnest(embed('Once upon a time')) WITH ORDINALITY u(x, i) WHERE i <= 6) AS first_six;
SELECT (SELECT array_agg(round(x::numeric, 4)) FROM unnest(embed('Once upon a time', 'chat')) WITH ORDINALITY u(x, i) WHERE i <= 6) AS first_six_chat;
SELECT embed('Once upon a time', NULL) = embed('Once upon a time', 'words') AS null_model_is_default;
SELECT cardinality(embed('')) AS bos_only_dims;
SELECT embed(NULL) IS NULL AS null_body_null_vector;
SELECT embed('x', 'nope');
SELECT embed(repeat('the dog ran to the park. ', 100));
SET lmgen.context_overflow = 'truncate';
SELECT cardinality(embed(repeat('the dog ran to the park. ', 100))) AS truncated_dims;
RESET lmgen.context_overflow;

-- lmgen.threads > 1 gives the same results as one thread
CREATE TEMP TABLE one_thread AS
SELECT generate('Once upon a time', 24) AS g,
       summarize('The little dog ran to the park.', 10, 'chat') AS s,
       classify('The team won the match.', ARRAY['sports', 'politics', 'weather']) AS c,
       (SELECT array_agg(probability) FROM classify_scores('The team won the match.', ARRAY['sports', 'politics', 'weather'])) AS p,
       embed(repeat('the little dog ran to the park. ', 20)) AS e;
SET lmgen.threads = 3;
SELECT g = generate('Once upon a time', 24) AS same_generate,
       s = summarize('The little dog ran to the park.', 10, 'chat') AS same_summary,
       c = classify('The team won the match.', ARRAY['sports', 'politics', 'weather']) AS same_label,
       p = (SELECT array_agg(probability) FROM classify_scores('The team won the match.', ARRAY['sports', 'politics', 'weather'])) AS same_scores,
       e = embed(repeat('the little dog ran to the park. ', 20)) AS same_embedding
FROM one_thread;
RESET lmgen.threads;

-- re-registering a name to another file: the next call uses the new file
CREATE TEMP TABLE before_reload AS SELECT generate('Once upon a time', 12) AS g, embed('Once upon a time') AS e;
SELECT lmgen.unload_model('words');
SELECT lmgen.load_model('words', 'words-b.gguf');
SELECT lmgen.set_default_model('words');
SELECT generate('Once upon a time', 12) = generate('Once upon a time', 12, model => 'words-b') AS uses_new_file,
       generate('Once upon a time', 12) <> g AS differs_from_old_file,
       embed('Once upon a time', 'words') = embed('Once upon a time', 'words-b') AS new_embedding
FROM before_reload;
SELECT lmgen.unload_model('words');
SELECT lmgen.load_model('words', 'words.gguf');
SELECT lmgen.set_default_model('words');
SELECT generate('Once upon a time', 12) = g AS back_to_old_file, embed('Once upon a time') = e AS old_embedding
FROM before_reload;

-- a parallel plan: the functions are PARALLEL SAFE, so parallel workers run
-- them (the leader only gathers) and the results equal the serial run
CREATE TABLE par_texts (id int, body text) WITH (fillfactor = 10);
INSERT INTO par_texts
SELECT i, (ARRAY['the dog ran to the park', 'it was a sunny day', 'the team won the game',
                 'a girl saw a bird'])[1 + i % 4] || ' ' || i
FROM generate_series(1, 40) i;
ANALYZE par_texts;
CREATE TABLE par_serial AS
SELECT id, generate(body, 6) AS g, classify(body, ARRAY['sports', 'weather', 'animals']) AS c,
       embed(body) AS e, summarize(body, 6, 'chat') AS s
FROM par_texts;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF)
CREATE TABLE par_parallel AS
SELECT id, generate(body, 6) AS g, classify(body, ARRAY['sports', 'weather', 'animals']) AS c,
       embed(body) AS e, summarize(body, 6, 'chat') AS s
FROM par_texts;
CREATE TABLE par_parallel AS
SELECT id, generate(body, 6) AS g, classify(body, ARRAY['sports', 'weather', 'animals']) AS c,
       embed(body) AS e, summarize(body, 6, 'chat') AS s
FROM par_texts;
SELECT count(*) AS rows, count(*) FILTER (WHERE s.g = p.g AND s.c = p.c AND s.e = p.e AND s.s = p.s) AS equal
FROM par_serial s JOIN par_parallel p USING (id);
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
RESET parallel_leader_participation;
DROP TABLE par_texts, par_serial, par_parallel;

SELECT lmgen.unload_model('words-b');
SELECT lmgen.unload_model('chat');
SELECT lmgen.unload_model('words');
