-- lmgen.fill: fill a column with an expression in committed batches.
\set VERBOSITY terse

SELECT lmgen.load_model('tiny', 'tiny-q8_0.gguf');
CREATE TABLE fill_t (id int PRIMARY KEY, body text, n text);
INSERT INTO fill_t SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE repeat('word ', g) END, NULL
FROM generate_series(1, 20) g;

-- every row whose expression is not NULL is filled; rows where it is NULL stay NULL and end the fill
CALL lmgen.fill('fill_t', 'n', 'lmgen.count_tokens(body)::text', batch_size => 3);
SELECT count(n) AS filled, count(*) FILTER (WHERE n IS NULL) AS still_null,
       bool_and(n = lmgen.count_tokens(body)::text) AS values_ok
FROM fill_t;
-- nothing left to do
CALL lmgen.fill('fill_t', 'n', 'lmgen.count_tokens(body)::text');

-- an error in a batch keeps the batches committed before it; a second call continues
UPDATE fill_t SET n = NULL;
CALL lmgen.fill('fill_t', 'n', 'CASE WHEN id = 9 THEN (1 / (id - 9))::text ELSE upper(left(body, 4)) END', batch_size => 4);
SELECT count(n) BETWEEN 1 AND 17 AS kept_some, bool_and(n = upper(left(body, 4))) AS kept_ok,
       count(n) FILTER (WHERE id = 9) AS failing_row_filled
FROM fill_t;
CALL lmgen.fill('fill_t', 'n', 'upper(left(body, 4))', batch_size => 4);
SELECT count(n) AS filled, bool_and(n = upper(left(body, 4))) AS values_ok FROM fill_t;

-- a condition limits the rows
UPDATE fill_t SET n = NULL;
CALL lmgen.fill('fill_t', 'n', '''short''', condition => 'id <= 5');
SELECT id, n FROM fill_t WHERE n IS NOT NULL ORDER BY id;

-- errors
CALL lmgen.fill('fill_t', 'nope', 'body');
CALL lmgen.fill('fill_t', 'n', 'body', batch_size => 0);
CALL lmgen.fill('fill_t', 'n', NULL);
BEGIN;
CALL lmgen.fill('fill_t', 'n', 'body');
ROLLBACK;

DROP TABLE fill_t;
SELECT lmgen.unload_model('tiny');
