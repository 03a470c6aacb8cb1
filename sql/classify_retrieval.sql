-- classify()'s examples retrieved by embedding (all-MiniLM-L6-v2, minilm)
-- and by word overlap, on the real models that `make model` installs; run
-- by `make installcheck-models` when minilm is installed.  What must hold
-- whatever the model's wording: the examples are the nearest by cosine,
-- the same in worker and local mode and from one statement to the next
-- (also after the examples change), word overlap without the embedding
-- model, and clear errors.
\set VERBOSITY terse

SHOW lmgen.classify_retrieval;

CREATE TABLE labelled (id int PRIMARY KEY, body text, label text);
INSERT INTO labelled VALUES
  (1, 'The striker scored a late goal and the team won the cup.', 'sports'),
  (2, 'Parliament passed the new election law after a long vote.', 'politics'),
  (3, 'The coach praised the players after the match.', 'sports'),
  (4, 'The minister resigned after the vote.', 'politics'),
  (5, 'Knead the dough and bake the bread for forty minutes.', 'cooking'),
  (6, 'Simmer the tomato sauce with garlic and basil.', 'cooking'),
  (7, 'The senate will debate the budget next week.', 'politics'),
  (8, 'Whisk the eggs with sugar until pale.', 'cooking'),
  (9, 'The goalkeeper was injured in the second half.', 'sports'),
  (10, NULL, 'sports');
CREATE TABLE queries (q text);
INSERT INTO queries VALUES ('Fry the onions in butter.'), ('The referee showed a red card.'),
  ('Voters elect a new president.');

-- with minilm registered, 'auto' retrieves by embedding: the examples shown
-- for each text, most similar first
SELECT q, rank, label, round(similarity::numeric, 3) AS cosine, text
FROM queries, lmgen.classify_examples(q, ARRAY['sports', 'politics', 'cooking'],
                                      'SELECT body, label FROM labelled ORDER BY id')
ORDER BY q, rank;

-- they are the 4 nearest by the cosine of embed() vectors, computed in plain SQL
SELECT q, (SELECT array_agg(text ORDER BY rank)
           FROM lmgen.classify_examples(q, ARRAY['sports', 'politics', 'cooking'],
                                        'SELECT body, label FROM labelled ORDER BY id'))
        = (SELECT array_agg(body ORDER BY s DESC, id)
           FROM (SELECT body, id, lmgen.cosine_similarity(embed(body), embed(q)) AS s
                 FROM labelled WHERE body IS NOT NULL ORDER BY s DESC, id LIMIT 4) n) AS nearest_by_cosine
FROM queries ORDER BY q;

-- the label set filters the examples: only rows labelled with one of the labels
SELECT string_agg(label, ',' ORDER BY rank) AS labels_shown
FROM lmgen.classify_examples('Fry the onions in butter.', ARRAY['sports', 'politics'],
                             'SELECT body, label FROM labelled ORDER BY id');

-- with the examples the model answers as they say (Gemma 3), calibration off
SELECT q, classify(q, ARRAY['sports', 'politics', 'cooking'], 'gemma3',
                   examples => 'SELECT body, label FROM labelled ORDER BY id') AS label
FROM queries ORDER BY q;

-- the same examples and scores in worker and local mode
CREATE TABLE by_mode (mode text, q text, examples text[], sims float8[], probs real[]);
INSERT INTO by_mode
SELECT 'worker', q,
       (SELECT array_agg(text ORDER BY rank) FROM lmgen.classify_examples(q, ARRAY['sports', 'politics', 'cooking'],
            'SELECT body, label FROM labelled ORDER BY id')),
       (SELECT array_agg(similarity ORDER BY rank) FROM lmgen.classify_examples(q, ARRAY['sports', 'politics', 'cooking'],
            'SELECT body, label FROM labelled ORDER BY id')),
       (SELECT array_agg(probability ORDER BY label) FROM classify_scores(q, ARRAY['sports', 'politics', 'cooking'],
            'gemma3', examples => 'SELECT body, label FROM labelled ORDER BY id'))
FROM queries;
-- (a new session: local mode embeds the examples itself, not from the memo)
\c
SET lmgen.execution = local;
INSERT INTO by_mode
SELECT 'local', q,
       (SELECT array_agg(text ORDER BY rank) FROM lmgen.classify_examples(q, ARRAY['sports', 'politics', 'cooking'],
            'SELECT body, label FROM labelled ORDER BY id')),
       (SELECT array_agg(similarity ORDER BY rank) FROM lmgen.classify_examples(q, ARRAY['sports', 'politics', 'cooking'],
            'SELECT body, label FROM labelled ORDER BY id')),
       (SELECT array_agg(probability ORDER BY label) FROM classify_scores(q, ARRAY['sports', 'politics', 'cooking'],
            'gemma3', examples => 'SELECT body, label FROM labelled ORDER BY id'))
FROM queries;
RESET lmgen.execution;
SELECT w.q, w.examples = l.examples AS same_examples, w.sims = l.sims AS same_similarities,
       w.probs = l.probs AS same_scores
FROM by_mode w JOIN by_mode l ON w.q = l.q AND w.mode = 'worker' AND l.mode = 'local' ORDER BY w.q;

-- the backend keeps the examples' embeddings between statements, by text:
-- a changed row is embedded again (row 8 now about frying, nearest to the first text)
SELECT text FROM lmgen.classify_examples('Fry the onions in butter.', ARRAY['sports', 'politics', 'cooking'],
                                         'SELECT body, label FROM labelled ORDER BY id') WHERE rank = 1;
UPDATE labelled SET body = 'Fry the sliced onions in a little butter.' WHERE id = 8;
SELECT text FROM lmgen.classify_examples('Fry the onions in butter.', ARRAY['sports', 'politics', 'cooking'],
                                         'SELECT body, label FROM labelled ORDER BY id') WHERE rank = 1;

-- the kept embeddings follow lmgen.embedding_precision: after a switch to
-- f32 the examples are embedded again, so their similarity is the f32 cosine
\c
SET lmgen.execution = local;
SELECT count(*) AS examples FROM lmgen.classify_examples('Fry the onions in butter.', ARRAY['sports', 'politics', 'cooking'],
                                                         'SELECT body, label FROM labelled ORDER BY id');
SET lmgen.embedding_precision = f32;
SELECT abs(e.similarity - lmgen.cosine_similarity(embed(e.text), embed('Fry the onions in butter.'))) < 1e-6
         AS memo_follows_precision
FROM lmgen.classify_examples('Fry the onions in butter.', ARRAY['sports', 'politics', 'cooking'],
                             'SELECT body, label FROM labelled ORDER BY id') e WHERE e.rank = 1;
RESET lmgen.embedding_precision;
RESET lmgen.execution;

-- a chat model as the embedding model: its embed() vectors, through embed calls
SET lmgen.default_embedding_model = 'smollm2';
SELECT q, (SELECT array_agg(text ORDER BY rank)
           FROM lmgen.classify_examples(q, ARRAY['sports', 'politics', 'cooking'],
                                        'SELECT body, label FROM labelled ORDER BY id'))
        = (SELECT array_agg(body ORDER BY s DESC, id)
           FROM (SELECT body, id, lmgen.cosine_similarity(embed(body, 'smollm2'), embed(q, 'smollm2')) AS s
                 FROM labelled WHERE body IS NOT NULL ORDER BY s DESC, id LIMIT 4) n) AS nearest_by_smollm2
FROM queries ORDER BY q;
RESET lmgen.default_embedding_model;

-- word overlap: by setting, and as the fallback without an embedding model
-- (no shared word: the earliest rows; Jaccard similarity)
SET lmgen.classify_retrieval = overlap;
SELECT rank, label, round(similarity::numeric, 3) AS jaccard, text
FROM lmgen.classify_examples('Fry the onions in butter.', ARRAY['sports', 'politics', 'cooking'],
                             'SELECT body, label FROM labelled ORDER BY id') ORDER BY rank;
RESET lmgen.classify_retrieval;
SET lmgen.default_embedding_model = '';
SELECT rank, label, round(similarity::numeric, 3) AS jaccard, text
FROM lmgen.classify_examples('The referee showed a red card after the goal.', ARRAY['sports', 'politics', 'cooking'],
                             'SELECT body, label FROM labelled ORDER BY id') ORDER BY rank;
SELECT classify('The referee showed a red card.', ARRAY['sports', 'politics', 'cooking'], 'gemma3',
                examples => 'SELECT body, label FROM labelled ORDER BY id') IN ('sports', 'politics', 'cooking') AS a_label;
-- 'embedding' without an embedding model is an error
SET lmgen.classify_retrieval = embedding;
SELECT classify('x', ARRAY['sports', 'politics'], 'gemma3', examples => 'SELECT body, label FROM labelled');
SET lmgen.default_embedding_model = 'no_such_model';
SELECT classify('x', ARRAY['sports', 'politics'], 'gemma3', examples => 'SELECT body, label FROM labelled');
RESET lmgen.default_embedding_model;

-- bad example queries, retrieving by embedding
SELECT classify('x', ARRAY['sports', 'politics'], 'gemma3', examples => 'SELECT body, label FROM labelled WHERE false');
SELECT classify('x', ARRAY['weather', 'music'], 'gemma3', examples => 'SELECT body, label FROM labelled');
SELECT classify('x', ARRAY['sports', 'politics'], 'gemma3', examples => 'SELECT body FROM labelled');
SELECT classify('x', ARRAY['sports', 'politics'], 'gemma3', examples => 'DELETE FROM labelled');
SELECT classify('x', ARRAY['sports', 'politics'], 'gemma3', examples => 'SELECT nonsense FROM labelled');
SELECT * FROM lmgen.classify_examples('x', ARRAY[]::text[], 'SELECT body, label FROM labelled');
SELECT count(*) AS rows_kept FROM labelled;
RESET lmgen.classify_retrieval;

-- the examples' vote: each label's score gains lmgen.classify_vote_weight
-- (default 4) times its share of the row's examples, so the log-odds of two
-- labels move by exactly that against weight 0 (the model's scores alone);
-- without examples (zero-shot) the setting changes nothing
SET lmgen.classify_vote_weight = 0;
CREATE TABLE vote0 AS SELECT * FROM classify_scores('Fry the onions in butter.', ARRAY['sports', 'politics', 'cooking'],
                                                     'gemma3', examples => 'SELECT body, label FROM labelled ORDER BY id');
CREATE TABLE zero0 AS SELECT * FROM classify_scores('Fry the onions in butter.', ARRAY['sports', 'politics', 'cooking'], 'gemma3');
RESET lmgen.classify_vote_weight;
SHOW lmgen.classify_vote_weight;
CREATE TABLE vote4 AS SELECT * FROM classify_scores('Fry the onions in butter.', ARRAY['sports', 'politics', 'cooking'],
                                                     'gemma3', examples => 'SELECT body, label FROM labelled ORDER BY id');
WITH share AS (SELECT label, count(*) / 4.0 AS share
               FROM lmgen.classify_examples('Fry the onions in butter.', ARRAY['sports', 'politics', 'cooking'],
                                            'SELECT body, label FROM labelled ORDER BY id') GROUP BY label),
     gain AS (SELECT label, ln(v4.probability) - ln(v0.probability) AS d FROM vote0 v0 JOIN vote4 v4 USING (label))
SELECT g.label, round(coalesce(s.share, 0), 2) AS share,
       round((g.d - (SELECT d FROM gain WHERE label = 'sports'))::numeric, 2) AS log_odds_gain_over_sports,
       round(4 * (coalesce(s.share, 0) - coalesce((SELECT share FROM share WHERE label = 'sports'), 0)), 2) AS expected
FROM gain g LEFT JOIN share s USING (label) ORDER BY g.label;
SELECT count(*) AS zero_shot_differs FROM zero0 z
JOIN classify_scores('Fry the onions in butter.', ARRAY['sports', 'politics', 'cooking'], 'gemma3') c USING (label)
WHERE c.probability <> z.probability;
SET lmgen.classify_vote_weight = -1;
DROP TABLE vote0, vote4, zero0;

-- summarize()'s headline examples come through the same retrieval (by
-- embedding here): a text that is itself one of the (text, summary) rows
-- is nearest to that row and gets a headline in its summary's words, the
-- same in worker and local mode
CREATE TABLE synopses AS
SELECT body, CASE label WHEN 'sports' THEN 'late goal wins the cup' ELSE 'news in brief' END AS summary
FROM labelled WHERE id IN (1, 2, 5, 7);
CREATE TABLE headlines AS
SELECT 'worker' AS mode, summarize('The striker scored a late goal and the team won the cup.', model => 'gemma3',
                                   style => 'headline', examples => 'SELECT body, summary FROM synopses') AS summary;
SET lmgen.execution = local;
INSERT INTO headlines
SELECT 'local', summarize('The striker scored a late goal and the team won the cup.', model => 'gemma3',
                          style => 'headline', examples => 'SELECT body, summary FROM synopses');
RESET lmgen.execution;
SELECT count(DISTINCT summary) AS distinct_headlines, bool_and(summary ILIKE 'late goal w% the cup') AS in_the_examples_words
FROM headlines;
DROP TABLE headlines;

DROP TABLE labelled, queries, by_mode, synopses;
