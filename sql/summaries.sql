-- summarize() behaviour that must not regress, on the real models (run by
-- `make installcheck-models` with sql/models.sql): summaries never end
-- mid-phrase, max_words holds, a headline is one line, the same row gives
-- the same summary, and the arguments are checked.  The model's wording is
-- not part of the expected output.
\set VERBOSITY terse

CREATE TEMP TABLE sources (id int, body text);
-- hard-wrapped descriptions, like Debian's, and plain prose
INSERT INTO sources VALUES
 (1, E'This program can convert CASTEP''s .check, .castep_bin, orbitals, and .cell to various\nformats. It is written in Python and\nuses NumPy for the heavy lifting.'),
 (2, E'Extreme Tux Racer, or etracer as it is called for short, is a simple OpenGL\nracing game featuring Tux, the Linux mascot. The goal of the game is to slide\ndown a snow- and ice-covered mountain as quickly as possible, avoiding the\ntrees and rocks that will slow you down.'),
 (3, E'Spglib is a C library for crystal symmetry determination. Symmetry\noperations, space groups and other data can be obtained using this\nsymmetry finder.\n\nFeatures include:\n\n * Identify space-group type\n * Find symmetry operations\n * Find a primitive cell\n\nThis package contains the Ruby bindings.'),
 (4, 'The city council approved the new budget on Tuesday after a long debate about road repairs, school funding and the cost of the new library.');

-- whether a text ends mid-phrase: on a word that needs a continuation (the
-- last word without the punctuation around it: "COIN-OR" is not "or"), on a
-- comma, colon, semicolon, dash or slash, or with a bracket left open
-- (the rule of test/bench/quality.py and src/engine/summary_text.c)
CREATE FUNCTION pg_temp.mid_phrase(s text) RETURNS boolean LANGUAGE sql AS $$
  SELECT btrim(s) ~ '[,;:/&(\[–—-]$'
      OR length(s) - length(replace(s, '(', '')) > length(s) - length(replace(s, ')', ''))
      OR (btrim(s) !~ '[.!?)]$' AND lower(regexp_replace(substring(btrim(s) FROM '(\S+)$'), '^\W+|\W+$', '', 'g')) = ANY (ARRAY[
          'a','an','the','and','or','but','nor','of','to','in','on','at','by','for','with','from',
          'into','onto','as','via','than','that','which','who','whose','whom','where','when',
          'while','if','because','so','such','this','these','those','its','their','his','her',
          'our','your','my','is','are','was','were','be','been','being','has','have','had','can',
          'could','will','would','should','may','might','must','do','does','did','various',
          'several','many','some','each','every','other','both','either','including','like',
          'about','over','under','between','through','per','after','before','since','until','during',
          'without','within','against','among','across','behind','beyond','upon','toward','towards',
          'around','unlike','whether','though','although','unless']))
$$;

CREATE TEMP TABLE runs AS
SELECT s.id, m.name AS model, st.style, wt.max_words, wt.max_tokens,
       summarize(s.body, wt.max_tokens, m.name, wt.max_words, st.style) AS summary
FROM sources s,
     (VALUES ('smollm2'), ('gemma3')) AS m(name),
     (VALUES ('sentence'), ('headline'), ('bullets')) AS st(style),
     (VALUES (20, 8), (5, 64), (20, 32)) AS wt(max_words, max_tokens);

SELECT count(*) > 0 AS ran FROM runs;

-- no summary ends mid-phrase, whatever limit stopped it
SELECT model, style, max_words, max_tokens, id, summary FROM runs WHERE pg_temp.mid_phrase(summary);

-- max_words holds (bullets: all lines together)
SELECT model, style, max_words, id, summary FROM runs
WHERE cardinality(regexp_split_to_array(btrim(summary), '\s+')) > max_words + CASE style WHEN 'bullets' THEN 3 ELSE 0 END;

-- a sentence or a headline is one line; bullets are at most three "- " lines
SELECT model, style, id, summary FROM runs
WHERE (style <> 'bullets' AND position(E'\n' IN summary) > 0)
   OR (style = 'bullets' AND (cardinality(string_to_array(summary, E'\n')) > 3
                              OR EXISTS (SELECT 1 FROM unnest(string_to_array(summary, E'\n')) l WHERE l !~ '^- \S')));

-- a headline is shorter than the sentence of the same row
SELECT count(*) FILTER (WHERE length(h.summary) <= length(s.summary)) >= count(*) * 3 / 4 AS headlines_shorter
FROM runs h JOIN runs s USING (id, model, max_words, max_tokens)
WHERE h.style = 'headline' AND s.style = 'sentence' AND h.max_tokens = 32 AND h.max_words = 20;

-- no summary is empty
SELECT count(*) FILTER (WHERE btrim(summary) = '') AS empty FROM runs;

-- an answer that shapes to nothing (here: cut to its first token, "The",
-- a dangling word) gives way to the source's own first sentence in the
-- same style
SELECT s AS style, summarize('The little dog ran to the park and played with a red ball. Then it went home.', 1, NULL, 20, s)
FROM unnest(ARRAY['sentence', 'bullets']) s;

-- deterministic: the same call gives the same summary
SELECT count(*) AS differing FROM runs r
WHERE r.max_tokens = 32 AND r.max_words = 20 AND r.model = 'smollm2'
  AND summarize((SELECT body FROM sources WHERE id = r.id), 32, r.model, 20, r.style) IS DISTINCT FROM r.summary;

-- a headline is chosen among lmgen.headline_candidates generations (the
-- greedy one and sampled ones with fixed seeds) and the source's first
-- sentence (shaped to at most 6 and 10 words): with one generation or eight,
-- every headline is one complete line of at most 10 words (8 for a
-- generated one), and the choice is the same for a row whether the
-- rows run in the background worker (one scheduler, the prompt shared), in
-- this backend one call at a time (one context, the prompt evaluated once)
-- or in this backend's batch of the array form (its own scheduler)
SET lmgen.headline_candidates = 1;
CREATE TEMP TABLE hl1 AS
SELECT s.id, m.name AS model, summarize(s.body, model => m.name, style => 'headline') AS summary
FROM sources s, (VALUES ('smollm2'), ('gemma3')) AS m(name);
SET lmgen.headline_candidates = 8;
CREATE TEMP TABLE hl8 AS
SELECT s.id, m.name AS model, summarize(s.body, model => m.name, style => 'headline') AS summary
FROM sources s, (VALUES ('smollm2'), ('gemma3')) AS m(name);
SELECT (SELECT count(*) FROM hl1) = 8 AND (SELECT count(*) FROM hl8) = 8 AS ran_both;
SELECT 'hl1' AS candidates, * FROM hl1
WHERE pg_temp.mid_phrase(summary) OR btrim(summary) = '' OR position(E'\n' IN summary) > 0
   OR cardinality(regexp_split_to_array(btrim(summary), '\s+')) > 10
UNION ALL
SELECT 'hl8', * FROM hl8
WHERE pg_temp.mid_phrase(summary) OR btrim(summary) = '' OR position(E'\n' IN summary) > 0
   OR cardinality(regexp_split_to_array(btrim(summary), '\s+')) > 10;
SET lmgen.execution = local;
SET lmgen.enable_batching = off;
SELECT h.model, h.id, h.summary AS worker, c.summary AS one_call FROM hl8 h,
     LATERAL (SELECT summarize((SELECT body FROM sources WHERE id = h.id), model => h.model, style => 'headline') AS summary) c
WHERE c.summary IS DISTINCT FROM h.summary;
RESET lmgen.enable_batching;
SELECT h.model, h.id FROM hl8 h
JOIN (SELECT m.name AS model, a.summaries
      FROM (VALUES ('smollm2'), ('gemma3')) AS m(name),
           LATERAL (SELECT summarize(array_agg(body ORDER BY id), model => m.name, style => 'headline') AS summaries FROM sources) a) arr
  USING (model)
WHERE arr.summaries[h.id] IS DISTINCT FROM h.summary;
RESET lmgen.execution;
RESET lmgen.headline_candidates;
SET lmgen.headline_candidates = -1;
SET lmgen.headline_candidates = 9;

-- the word limit is decoding's: max_words 3 gives at most three words
SELECT cardinality(regexp_split_to_array(btrim(summarize(body, 64, NULL, 3)), '\s+')) <= 3 AS three_words
FROM sources WHERE id = 2;

-- arguments are checked
SELECT summarize('x', 10, NULL, 0);
SELECT summarize('x', 10, NULL, 1001);
SELECT summarize('x', 10, NULL, 20, 'poem');
SELECT summarize('x', 10, NULL, NULL, NULL) IS NOT NULL AS nulls_mean_defaults;

-- headlines with examples: the (text, summary) rows of a query most like
-- the text (here by word overlap, which needs no embedding model) are the
-- prompt's examples; a text that is itself in the query gets a headline
-- in that row's summary's words (SmolLM2 copies it, Gemma 3 adds what the
-- text says after it); the result keeps the headline's shape and is
-- deterministic
SET lmgen.classify_retrieval = overlap;
CREATE TEMP TABLE synopses (body text, summary text);
INSERT INTO synopses VALUES
 ((SELECT body FROM sources WHERE id = 3), 'C library for crystal symmetry determination'),
 ('httpfs2 is a FUSE based filesystem for mounting http or https URLS as files in the filesystem.', 'FUSE filesystem for mounting files from http servers'),
 ('MiceAmaze is a video game that features a maze with mice and snakes.', 'video game with mice in a maze'),
 ('Tweak is a hex editor. It allows you to edit a file at very low level.', 'Efficient text-mode hex editor'),
 ('The city council approved the budget after a long debate.', NULL);
CREATE TEMP TABLE with_examples AS
SELECT s.id, m.name AS model,
       summarize(s.body, model => m.name, style => 'headline', examples => 'SELECT body, summary FROM synopses') AS summary
FROM sources s, (VALUES ('smollm2'), ('gemma3')) AS m(name);
SELECT model, summary ILIKE '%crystal symmetry determination%' AS in_the_example_summarys_words
FROM with_examples WHERE id = 3 ORDER BY model;
SELECT model, id, summary FROM with_examples
WHERE pg_temp.mid_phrase(summary) OR position(E'\n' IN summary) > 0 OR btrim(summary) = ''
   OR cardinality(regexp_split_to_array(btrim(summary), '\s+')) > 20;
SELECT count(*) AS differing FROM with_examples w
WHERE summarize((SELECT body FROM sources WHERE id = w.id), model => w.model, style => 'headline',
                examples => 'SELECT body, summary FROM synopses') IS DISTINCT FROM w.summary;
-- the array form takes them too
SELECT s[1] = (SELECT summary FROM with_examples WHERE id = 3 AND model = 'gemma3') AS same_as_per_row, s[2] IS NULL AS null_stays_null
FROM summarize(ARRAY[(SELECT body FROM sources WHERE id = 3), NULL], model => 'gemma3', style => 'headline',
               examples => 'SELECT body, summary FROM synopses') AS s;
-- with examples the generations vote among themselves (without the text's
-- sentence): eight give another headline than the greedy one alone for
-- some of these rows, each still one complete line, the same in this
-- backend one call at a time
SET lmgen.headline_candidates = 1;
CREATE TEMP TABLE with_examples1 AS
SELECT s.id, m.name AS model,
       summarize(s.body, model => m.name, style => 'headline', examples => 'SELECT body, summary FROM synopses') AS summary
FROM sources s, (VALUES ('smollm2'), ('gemma3')) AS m(name);
SET lmgen.headline_candidates = 8;
CREATE TEMP TABLE with_examples8 AS
SELECT s.id, m.name AS model,
       summarize(s.body, model => m.name, style => 'headline', examples => 'SELECT body, summary FROM synopses') AS summary
FROM sources s, (VALUES ('smollm2'), ('gemma3')) AS m(name);
SELECT count(*) FILTER (WHERE e8.summary IS DISTINCT FROM e1.summary) > 0 AS the_vote_changes_some
FROM with_examples8 e8 JOIN with_examples1 e1 USING (id, model);
SELECT model, id, summary FROM with_examples8
WHERE pg_temp.mid_phrase(summary) OR position(E'\n' IN summary) > 0 OR btrim(summary) = '';
SET lmgen.execution = local;
SET lmgen.enable_batching = off;
SELECT count(*) AS differing FROM with_examples8 w
WHERE summarize((SELECT body FROM sources WHERE id = w.id), model => w.model, style => 'headline',
                examples => 'SELECT body, summary FROM synopses') IS DISTINCT FROM w.summary;
RESET lmgen.enable_batching;
RESET lmgen.execution;
RESET lmgen.headline_candidates;
-- examples serve headlines only, and the query must give (text, summary) rows
SELECT summarize('x', style => 'sentence', examples => 'SELECT body, summary FROM synopses');
SELECT summarize('x', style => 'headline', examples => 'SELECT body, summary FROM synopses WHERE false');
SELECT summarize('x', style => 'headline', examples => 'SELECT body FROM synopses');
SELECT summarize('x', style => 'headline', examples => 'DELETE FROM synopses RETURNING body, summary');
RESET lmgen.classify_retrieval;
