-- generate(), classify(), embed() and the trigger use case on the real
-- stories260K model (a copy from ../shared; this test runs only when it is
-- there).  Greedy output must equal the reference implementation's.
\set VERBOSITY terse

SELECT lmgen.load_model('stories', 'stories260K.gguf');
SELECT lmgen.load_model('stories-q8', 'stories260K-Q8_0.gguf');

-- prompt ids and 48 greedy tokens match the llama.cpp goldens
SELECT lmgen.tokenize('Once upon a time');
SELECT generate('Once upon a time', 48) =
  ', there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it,'
  AS matches_golden;
SELECT generate('The little dog was very', 48) =
  ' smart. He liked to play with his toys and run around the house. One day, he saw a big box. The boy was very happy. He want'
  AS matches_golden;
SELECT generate('One day, a big bear', 20, model => 'stories-q8');

-- stop strings end the text before the first match
SELECT generate('Once upon a time', 48, stop => ARRAY['.']);
SELECT generate('Once upon a time', 48, stop => ARRAY['girl', 'Lily']);
-- a single stop string (the greedy text is ", there was a little girl named Lily. ...")
SELECT generate('Once upon a time', 48, stop => ARRAY['Lily']);
SELECT generate('Once upon a time', 48, stop => ARRAY['named']);
-- the earliest match wins, whatever the order of the strings
SELECT generate('Once upon a time', 48, stop => ARRAY['Lily', 'little']);
-- "girl" is three tokens ("▁g", "ir", "l"): found across them
SELECT generate('Once upon a time', 48, stop => ARRAY['irl']);
SELECT generate('Once upon a time', 48, stop => ARRAY['tle girl na']);
-- a stop string at the very start of the output gives the empty text
SELECT generate('Once upon a time', 48, stop => ARRAY[', there']) = '' AS empty_text;
SELECT generate('Once upon a time', 48, stop => ARRAY[',']) = '' AS empty_text;
-- multi-byte stop strings that never appear do not stop, one that does stops
SELECT generate('Once upon a time', 48, stop => ARRAY['é', '日本', '🎉']) =
  ', there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it,'
  AS full_text;
SELECT generate('Once upon a time', 48, stop => ARRAY['é', ' park']);

-- sampling: the same seed gives the same text, whatever ran in between
SELECT generate('Once upon a time', 30, temperature => 0.9, seed => 7) =
       generate('Once upon a time', 30, temperature => 0.9, seed => 7) AS same_seed_same_text;
SELECT count(DISTINCT generate('Once upon a time', 30, temperature => 1.0, seed => s)) > 1 AS seeds_differ
FROM generate_series(1, 4) s;
SELECT generate('Once upon a time', 30, temperature => 0.8, top_k => 1, seed => 3) =
       generate('Once upon a time', 30) AS top_k_1_is_greedy;

-- bad arguments
SELECT generate('x', 0);
SELECT generate('x', 100000);
SELECT generate('x', 10, temperature => -1);
SELECT generate('x', 10, top_p => 0);
SELECT generate('x', 10, top_k => -1);
SELECT generate('x', 10, stop => ARRAY['a', NULL]);
SELECT generate('x', 10, stop => ARRAY['']);
SELECT generate('x', 10, model => 'nope');
SELECT generate(NULL) IS NULL AS null_in_null_out;

-- a prompt longer than the context (128 tokens): an error, or cut when asked
SELECT length(generate(repeat('Tom saw a dog. ', 60), 10));
SET lmgen.context_overflow = 'truncate';
SELECT length(generate(repeat('Tom saw a dog. ', 60), 10)) > 0 AS truncated_prompt_works;
-- truncate drops the middle of the text: generate() keeps a quarter of the room
-- from its start and the rest from its end, summarize() and classify() three
-- quarters from the start and the rest from the end, embed() only the start.
-- Each part is longer than what is kept of it, so changing a part changes the
-- output only if that part is seen.  classify_scores' probabilities react to
-- every token seen; this tiny model's greedy text does not react to the far
-- part (generate's start, summarize's end), so those are not compared.
CREATE TEMP TABLE parts AS SELECT
  repeat('Tom saw a dog. ', 30) AS x1, repeat('Sue had a hat. ', 30) AS x2,
  repeat('The cat sat on the mat. ', 20) AS m1, repeat('Lily had a red ball. ', 20) AS m2,
  repeat('Ben ate a big cake. ', 30) AS y1, repeat('Mom went to the shop. ', 30) AS y2;
SELECT generate(x1 || m1 || y1, 10) = generate(x1 || m2 || y1, 10) AS generate_drops_middle,
       generate(x1 || m1 || y1, 10) <> generate(x1 || m1 || y2, 10) AS generate_sees_end
FROM parts;
SELECT summarize(x1 || m1 || y1, 10) = summarize(x1 || m2 || y1, 10) AS summarize_drops_middle,
       summarize(x1 || m1 || y1, 10) <> summarize(x2 || m1 || y1, 10) AS summarize_sees_start
FROM parts;
CREATE TEMP TABLE scores AS
SELECT v, (SELECT array_agg(probability ORDER BY label)
           FROM classify_scores(body, ARRAY['dog', 'cake', 'hat'])) AS p
FROM parts, LATERAL (VALUES ('x1m1y1', x1 || m1 || y1), ('x1m2y1', x1 || m2 || y1),
                            ('x1m1y2', x1 || m1 || y2), ('x2m1y1', x2 || m1 || y1)) t(v, body);
SELECT (SELECT p FROM scores WHERE v = 'x1m1y1') = (SELECT p FROM scores WHERE v = 'x1m2y1') AS classify_drops_middle,
       (SELECT p FROM scores WHERE v = 'x1m1y1') <> (SELECT p FROM scores WHERE v = 'x1m1y2') AS classify_sees_end,
       (SELECT p FROM scores WHERE v = 'x1m1y1') <> (SELECT p FROM scores WHERE v = 'x2m1y1') AS classify_sees_start;
SELECT embed(x1 || m1 || y1, 'stories') = embed(x1 || m2 || y2, 'stories') AS embed_keeps_only_start,
       embed(x1 || m1 || y1, 'stories') <> embed(x2 || m1 || y1, 'stories') AS embed_sees_start
FROM parts;
RESET lmgen.context_overflow;
-- the overflow error says what the reserved tokens are for (none for embed)
\set VERBOSITY default
SELECT summarize((SELECT x1 || m1 || y1 FROM parts), 10);
SELECT classify((SELECT x1 || m1 || y1 FROM parts), ARRAY['dog', 'cake']);
SELECT embed((SELECT x1 || m1 || y1 FROM parts), 'stories');
\set VERBOSITY terse
DROP TABLE parts, scores;
SET lmgen.max_tokens = 5;
SELECT generate('x', 6);
RESET lmgen.max_tokens;

-- zero-shot classification and scores
SELECT classify('Once upon a time there was a girl', ARRAY['girl', 'dog', 'ball']) IN ('girl', 'dog', 'ball') AS is_a_label;
SELECT count(*), round(sum(probability)::numeric, 4) AS total
FROM classify_scores('The dog ran to the park.', ARRAY['dog', 'cat', 'bird', 'fish']);
SELECT classify('x', '{}'::text[]);
SELECT classify('x', ARRAY['a', 'a']);
SELECT classify('x', ARRAY['a', NULL]);
SELECT classify('x', ARRAY['a', '']);
SELECT classify(NULL, ARRAY['a']) IS NULL AS null_in_null_out;

-- embeddings: one value per model dimension, unit length, similar texts closer
SELECT cardinality(embed('Once upon a time')) AS dims,
       round((SELECT sqrt(sum(x * x)) FROM unnest(embed('Once upon a time')) x)::numeric, 5) AS norm;
WITH e AS (SELECT embed('The girl played with the ball.') a,
                  embed('The girl played with a red ball.') b,
                  embed('Tom and Sue went to the park.') c)
SELECT (SELECT sum(x * y) FROM unnest(a, b) u(x, y)) > (SELECT sum(x * y) FROM unnest(a, c) u(x, y)) AS closer
FROM e;

-- a trigger that writes ad copy on INSERT
CREATE TABLE products (id int PRIMARY KEY, name text, description text, ad_copy text);
CREATE FUNCTION products_ad_copy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.ad_copy := generate('Once upon a time, ' || NEW.name || ' was ' || NEW.description, 16);
    RETURN NEW;
END $$;
CREATE TRIGGER products_ad_copy BEFORE INSERT ON products
    FOR EACH ROW EXECUTE FUNCTION products_ad_copy();
INSERT INTO products (id, name, description) VALUES
    (1, 'a red ball', 'very shiny'), (2, 'a big box', 'full of toys');
SELECT id, ad_copy <> '' AND ad_copy IS NOT NULL AS has_ad_copy FROM products ORDER BY id;
SELECT ad_copy FROM products WHERE id = 1;

-- an ERROR in one row rolls the whole statement back (row 1 was already rewritten)
CREATE TEMP TABLE ad_before AS SELECT id, ad_copy FROM products;
UPDATE products SET ad_copy = generate(name, CASE WHEN id = 2 THEN 0 ELSE 8 END);
SELECT count(*) AS unchanged FROM products p JOIN ad_before b USING (id) WHERE p.ad_copy = b.ad_copy;
UPDATE products SET ad_copy = generate(name, 8) WHERE id = 1;
SELECT count(*) AS changed_when_no_error FROM products p JOIN ad_before b USING (id) WHERE p.ad_copy <> b.ad_copy;

DROP TABLE products;
DROP FUNCTION products_ad_copy();
SELECT lmgen.unload_model('stories-q8');
SELECT lmgen.unload_model('stories');
