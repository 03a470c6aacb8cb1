-- Trained classifiers: train_classifier, predict, predict_proba, evaluate,
-- drop_classifier, lmgen.classifiers, bad input, ownership, RLS.
\set VERBOSITY terse
SET client_min_messages = warning;	-- the per-epoch NOTICEs carry timings

-- a small fixed dataset: three topics, 24 rows each, built from word lists
CREATE TABLE docs (id int PRIMARY KEY, body text, topic text);
INSERT INTO docs
SELECT (t.n - 1) * 100 + i,
       w.words[1 + (i % 6)] || ' and ' || w.words[1 + ((i * 5 + 1) % 6)] || ' with ' ||
       w.words[1 + ((i * 7 + 2) % 6)] || ' ' || (ARRAY['today', 'again', 'here', 'now'])[1 + i % 4],
       t.topic
FROM (VALUES (1, 'fruit'), (2, 'vehicle'), (3, 'color')) t(n, topic)
JOIN (VALUES ('fruit', ARRAY['apple', 'banana', 'cherry pie', 'ripe mango', 'pear', 'sweet plum']),
             ('vehicle', ARRAY['car', 'truck', 'fast bicycle', 'red bus', 'train', 'motorbike']),
             ('color', ARRAY['blue', 'green', 'dark purple', 'red', 'yellow', 'orange'])) w(topic, words)
  ON w.topic = t.topic
CROSS JOIN generate_series(1, 24) i;
INSERT INTO docs VALUES (1000, NULL, 'fruit'), (1001, 'a red car', NULL);

-- train: the result names rows, classes, epochs and the test metrics
SELECT r->'classes' AS classes, r->'rows_read' AS rows_read, r->'rows_skipped' AS skipped,
       r->'rows_train' AS train, r->'rows_validation' AS val, r->'rows_test' AS test,
       r->'test'->'accuracy' AS accuracy, r->'test'->'macro_f1' AS macro_f1,
       round((r->'test'->>'log_loss')::numeric, 2) AS log_loss,
       r->'test'->'confusion' AS confusion, r->'test'->'per_class'->'fruit' AS fruit
FROM lmgen.train_classifier('topics', 'SELECT body, topic FROM docs', seed => 7, epochs => 15) r;

-- the same rows and seed give the same weights; another seed other weights
SELECT lmgen.train_classifier('topics2', 'SELECT body, topic FROM docs', seed => 7, epochs => 15) IS NOT NULL;
SELECT lmgen.train_classifier('topics3', 'SELECT body, topic FROM docs', seed => 8, epochs => 15) IS NOT NULL;
SELECT a.weights = b.weights AS same_seed_same_weights, a.weights = c.weights AS other_seed_same_weights
FROM lmgen.classifier_store a, lmgen.classifier_store b, lmgen.classifier_store c
WHERE a.name = 'topics' AND b.name = 'topics2' AND c.name = 'topics3';

-- use it
SELECT lmgen.predict('topics', 'a ripe mango and a pear') AS fruit,
       lmgen.predict('topics', 'the red bus and the train') AS vehicle,
       lmgen.predict('topics', 'dark purple with yellow') AS color;
SELECT key, value::float > 0.5 AS likely
FROM jsonb_each(lmgen.predict_proba('topics', 'banana with sweet plum')) ORDER BY key;
SELECT round(sum(value::numeric), 3) AS total
FROM jsonb_each(lmgen.predict_proba('topics', 'nothing known here'));
SELECT topic, lmgen.predict('topics', body) AS predicted, count(*)
FROM docs WHERE body IS NOT NULL AND topic IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2;

-- evaluate on any labelled query; labels the classifier never saw are counted
SELECT e->'rows_read' AS rows_read, e->'rows_skipped' AS skipped, e->'unknown_labels' AS unknown,
       e->'metrics'->'accuracy' AS accuracy, e->'metrics'->'confusion'->'labels' AS labels
FROM lmgen.evaluate('topics', $$SELECT body, topic FROM docs
                               UNION ALL SELECT 'a green apple', 'food'$$) e;

-- the list
SELECT name, owner = current_user AS mine, classes, labels, features->>'features' AS features,
       rows_train, weight_bytes > 0 AS has_weights
FROM lmgen.classifiers ORDER BY name;

-- replace => true replaces it, and this backend's cached copy follows
SELECT lmgen.train_classifier('topics', 'SELECT body, upper(topic) FROM docs', seed => 7, epochs => 15, replace => true) IS NOT NULL;
SELECT lmgen.predict('topics', 'a ripe mango and a pear') AS fruit_after_replace;

-- options
SELECT r->'params'->'class_weights' AS cw, r->'rows_test' AS test, r->'test' AS test_metrics
FROM lmgen.train_classifier('topics4', 'SELECT body, topic FROM docs', test_fraction => 0,
                            class_weights => 'balanced', features => 'ngrams:1024', l1 => 0.0001) r;
SELECT features->'ngram_dim' FROM lmgen.classifiers WHERE name = 'topics4';

-- bad input: each a clear error
SELECT lmgen.train_classifier('topics', 'SELECT body, topic FROM docs');
SELECT lmgen.train_classifier('one', $$SELECT body, topic FROM docs WHERE topic = 'fruit'$$);
SELECT lmgen.train_classifier('none', $$SELECT body, topic FROM docs WHERE false$$);
SELECT lmgen.train_classifier('empty', '  ');
SELECT lmgen.train_classifier('ins', $$INSERT INTO docs VALUES (5000, 'x', 'y')$$);
SELECT lmgen.train_classifier('ret', $$INSERT INTO docs VALUES (5000, 'x', 'y') RETURNING body, topic$$);
SELECT lmgen.train_classifier('cte', $$WITH d AS (DELETE FROM docs WHERE id = 1 RETURNING body, topic) SELECT * FROM d$$);
SELECT lmgen.train_classifier('lock', 'SELECT body, topic FROM docs FOR UPDATE');
SELECT lmgen.train_classifier('two', 'SELECT body, topic FROM docs; SELECT body, topic FROM docs');
SELECT count(*) AS rows_unchanged FROM docs;
SELECT lmgen.train_classifier(NULL, 'SELECT body, topic FROM docs');
SELECT lmgen.train_classifier('labels', $$SELECT 'text ' || i, i::text FROM generate_series(1, 1001) i$$);
SELECT lmgen.train_classifier('long', $$SELECT body, repeat('x', 256) || (id % 2) FROM docs$$);
SELECT lmgen.train_classifier('weights', 'SELECT body, topic || (id % 8) FROM docs', features => 'ngrams:16777216');
SELECT lmgen.train_classifier('cols', 'SELECT body, topic, id FROM docs');
SELECT lmgen.train_classifier('types', 'SELECT id, topic FROM docs');
SELECT lmgen.train_classifier('small', $$SELECT body, topic FROM docs WHERE topic <> 'color' OR id = 201$$);
SELECT lmgen.train_classifier('syntax', 'SELEC body FROM docs');
SELECT lmgen.train_classifier('bad name!', 'SELECT body, topic FROM docs');
SELECT lmgen.train_classifier('m', 'SELECT body, topic FROM docs', model => 'tiny');
SELECT lmgen.train_classifier('dim', 'SELECT body, topic FROM docs', features => 'ngrams:3');
SELECT lmgen.train_classifier('feat', 'SELECT body, topic FROM docs', features => 'words');
SELECT lmgen.train_classifier('cw', 'SELECT body, topic FROM docs', class_weights => 'equal');
SELECT lmgen.train_classifier('ep', 'SELECT body, topic FROM docs', epochs => 0);
SELECT lmgen.train_classifier('lr', 'SELECT body, topic FROM docs', learning_rate => -1);
SELECT lmgen.train_classifier('bs', 'SELECT body, topic FROM docs', batch_size => 0);
SELECT lmgen.train_classifier('l1', 'SELECT body, topic FROM docs', l1 => -1);
SELECT lmgen.train_classifier('decay', 'SELECT body, topic FROM docs', learning_rate => 2, l2 => 0.5);
SELECT lmgen.train_classifier('tf', 'SELECT body, topic FROM docs', test_fraction => 1);
SELECT lmgen.train_classifier('ids', 'SELECT body, id::text FROM docs');
SELECT lmgen.predict('missing', 'text');
SELECT lmgen.predict_proba('missing', 'text');
SELECT lmgen.evaluate('missing', 'SELECT body, topic FROM docs');
SELECT lmgen.evaluate('topics', 'SELECT 1');
SELECT lmgen.drop_classifier('missing');
SELECT lmgen.predict('topics', NULL) IS NULL AS null_in_null_out;

-- embedding features come from the model's embed() (a tiny random model
-- here: its figures mean nothing, the plumbing is what is tested)
SELECT lmgen.load_model('train-tiny', 'tiny-f32.gguf');
SELECT r->'recipe'->>'features' AS features, r->'recipe'->'embed_dim' AS embed_dim,
       r->'recipe'->>'model' AS model, r->'classes' AS classes, r->'rows_train' AS train
FROM lmgen.train_classifier('emb', 'SELECT body, topic FROM docs', features => 'embedding',
                            model => 'train-tiny', epochs => 3) r;
SELECT r->'recipe'->>'features' AS features, r->'recipe'->'ngram_dim' AS ngram_dim,
       r->'recipe'->'embed_dim' AS embed_dim, (r->'test'->>'accuracy')::float >= 0.9 AS accurate
FROM lmgen.train_classifier('both', 'SELECT body, topic FROM docs', features => 'both:4096',
                            model => 'train-tiny', seed => 7, epochs => 15) r;
SELECT lmgen.predict('both', 'a ripe mango and a pear') AS fruit,
       lmgen.predict('emb', 'a ripe mango') IN ('color', 'fruit', 'vehicle') AS emb_gives_a_label,
       (lmgen.evaluate('both', 'SELECT body, topic FROM docs')->'metrics'->>'accuracy')::float >= 0.9 AS evaluate_both;
SELECT lmgen.unload_model('train-tiny');
SELECT lmgen.predict('emb', 'a ripe mango');
SELECT lmgen.drop_classifier('emb');
SELECT lmgen.drop_classifier('both');

-- statement_timeout (like a cancel) stops it
SET statement_timeout = '300ms';
SELECT lmgen.train_classifier('slow', $$SELECT repeat('some words ', 40) || i, (i % 2)::text
                                        FROM generate_series(1, 5000000) i$$);
RESET statement_timeout;

-- progress is visible from every session (nothing runs now)
SELECT count(*) FROM lmgen.training_progress;

-- the store is dumped with the database
SELECT extconfig::regclass[] FROM pg_extension WHERE extname = 'lmgen';

-- ownership and privileges
CREATE ROLE regress_train_alice;
CREATE ROLE regress_train_bob;
GRANT SELECT ON docs TO regress_train_alice, regress_train_bob;
CREATE TABLE secret (body text, topic text);
INSERT INTO secret SELECT body, topic FROM docs;
-- row-level security: each role sees only the topics granted to it
CREATE TABLE shared_docs (body text, topic text, reader name);
INSERT INTO shared_docs SELECT body, topic, 'regress_train_alice' FROM docs WHERE topic IN ('fruit', 'color');
INSERT INTO shared_docs SELECT body, topic, 'regress_train_bob' FROM docs WHERE topic = 'vehicle';
ALTER TABLE shared_docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY mine ON shared_docs FOR SELECT USING (reader = current_user);
GRANT SELECT ON shared_docs TO regress_train_alice, regress_train_bob;

SET ROLE regress_train_alice;
SELECT lmgen.train_classifier('alice_secret', 'SELECT body, topic FROM secret');
SELECT r->'rows_read' AS rows_read, r->'classes' AS classes
FROM lmgen.train_classifier('alice_rls', 'SELECT body, topic FROM shared_docs') r;
SELECT labels FROM lmgen.classifiers WHERE name = 'alice_rls';
SELECT lmgen.train_classifier('alice', 'SELECT body, topic FROM docs') IS NOT NULL;
SELECT lmgen.drop_classifier('topics2');
INSERT INTO lmgen.classifier_store (name, owner, labels, features, weights, metrics)
VALUES ('forged', 'x', '{a,b}', '{}', '\x00', '{}');
RESET ROLE;

SET ROLE regress_train_bob;
-- bob sees only vehicle rows: one class
SELECT lmgen.train_classifier('bob_rls', 'SELECT body, topic FROM shared_docs');
SELECT lmgen.train_classifier('alice', 'SELECT body, topic FROM docs', replace => true);
SELECT lmgen.drop_classifier('alice');
SELECT lmgen.predict('alice', 'a ripe mango') AS others_may_predict;
RESET ROLE;

-- a superuser may drop anyone's
SELECT lmgen.drop_classifier('alice');
SELECT lmgen.drop_classifier('alice_rls');
SELECT lmgen.drop_classifier(name) FROM lmgen.classifiers WHERE name LIKE 'topics%';
SELECT count(*) FROM lmgen.classifiers;

-- damaged weights are an error, not a crash
SELECT lmgen.train_classifier('broken', 'SELECT body, topic FROM docs') IS NOT NULL;
UPDATE lmgen.classifier_store SET weights = substring(weights from 1 for 100) WHERE name = 'broken';
SELECT lmgen.predict('broken', 'apple');
SELECT lmgen.drop_classifier('broken');

DROP TABLE docs, secret, shared_docs;
DROP ROLE regress_train_alice, regress_train_bob;
