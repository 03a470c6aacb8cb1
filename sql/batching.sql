-- Row batching (the LMBatch plan node): the same queries with the node on and
-- off give the same rows (compared with EXCEPT ALL both ways), over plan
-- shapes that stress it: scans, joins, ORDER BY ... LIMIT, a parallel plan,
-- scrollable cursors, limits in subqueries, NULL and volatile arguments, an
-- error in one row, each batchable function.  The small random word models
-- of test/make_fixtures.sh keep it fast and need no download; this instance
-- preloads lmgen, so calls go to the background worker unless
-- lmgen.execution = local.
\set VERBOSITY terse

SELECT lmgen.load_model('bw', 'words.gguf');
SELECT lmgen.load_model('bc', 'words-chat.gguf');

CREATE TABLE bt (id int PRIMARY KEY, body text, grp int);
INSERT INTO bt
SELECT i,
       CASE WHEN i % 11 = 0 THEN NULL
            ELSE (ARRAY['the dog ran to the park', 'a little girl saw a big red ball',
                        'the team won the match', 'it rained all day in the town',
                        'she read a book about the sea'])[1 + i % 5] || ' ' || i END,
       i % 4
FROM generate_series(1, 40) i;
CREATE TABLE bgroup (grp int, label text);
INSERT INTO bgroup VALUES (0, 'zero'), (1, 'one'), (2, 'two'), (3, 'three');
ANALYZE bt, bgroup;

-- Runs q with batching on and off (the setting is read at plan time) and
-- returns its row count, the rows that differ (EXCEPT ALL both ways) and
-- whether the plan with batching on has the node; reset is run before each.
CREATE FUNCTION batch_check(q text, reset text DEFAULT NULL)
RETURNS TABLE (n_rows bigint, n_differ bigint, batched boolean)
LANGUAGE plpgsql AS $$
DECLARE
  line text;
BEGIN
  batched := false;
  PERFORM set_config('lmgen.enable_batching', 'on', true);
  FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
    batched := batched OR line LIKE '%LMBatch%';
  END LOOP;
  IF reset IS NOT NULL THEN EXECUTE reset; END IF;
  EXECUTE 'CREATE TEMP TABLE batch_on AS ' || q;
  PERFORM set_config('lmgen.enable_batching', 'off', true);
  IF reset IS NOT NULL THEN EXECUTE reset; END IF;
  EXECUTE 'CREATE TEMP TABLE batch_off AS ' || q;
  PERFORM set_config('lmgen.enable_batching', 'on', true);
  SELECT count(*) INTO n_rows FROM batch_on;
  SELECT count(*) INTO n_differ
  FROM ((TABLE batch_on EXCEPT ALL TABLE batch_off) UNION ALL
        (TABLE batch_off EXCEPT ALL TABLE batch_on)) d;
  DROP TABLE batch_on;
  DROP TABLE batch_off;
  RETURN NEXT;
END $$;

-- the card's query: the node is in the plan
CREATE TABLE articles (body text);
INSERT INTO articles SELECT body FROM bt;
EXPLAIN (COSTS OFF) SELECT summarize(body) FROM articles;
EXPLAIN (COSTS OFF, VERBOSE) SELECT summarize(body, 8, 'bc') FROM articles;
SELECT * FROM batch_check('SELECT summarize(body, 8, ''bc'') FROM articles');

-- each batchable function, NULL bodies included (rows 11, 22, 33)
SELECT * FROM batch_check('SELECT id, generate(body, 4, model => ''bw'') FROM bt');
SELECT * FROM batch_check('SELECT id, summarize(body, 8, ''bc'') FROM bt');
SELECT * FROM batch_check('SELECT id, classify(body, ARRAY[''sports'', ''weather'', ''animals''], ''bw'') FROM bt');
SELECT * FROM batch_check('SELECT id, embed(body, ''bw'') FROM bt');
-- NULL in other arguments (labels, max_tokens meaning the default)
SELECT * FROM batch_check($q$SELECT id, classify(body, CASE WHEN id % 3 = 0 THEN NULL ELSE ARRAY['a', 'b'] END, 'bw'),
                                 generate(body, CASE WHEN id % 2 = 0 THEN NULL ELSE 3 END, model => 'bw') FROM bt$q$);
-- classify with descriptions and an examples query (read once per call site, in fn_extra)
CREATE TABLE blabelled (body text, label text);
INSERT INTO blabelled VALUES ('the team won the cup', 'sports'), ('rain and wind all day', 'weather'),
  ('the dog ran home', 'animals'), ('a late goal won the match', 'sports');
SELECT * FROM batch_check($q$SELECT id, classify(body, ARRAY['sports', 'weather', 'animals'], 'bc',
                                 descriptions => ARRAY['games and teams', 'rain and sun', 'pets'],
                                 examples => 'SELECT body, label FROM blabelled') FROM bt$q$);
-- sampling with a seed per row
SELECT * FROM batch_check('SELECT id, generate(body, 4, temperature => 0.9, seed => id, model => ''bw'') FROM bt');
-- several calls in one row, and other columns
SELECT * FROM batch_check($q$SELECT id, grp, embed(body, 'bw'), generate(body, 3, model => 'bw'), id * 2 AS twice FROM bt$q$);

-- a call nested in upper() and || is batched; one under CASE or COALESCE is not
SELECT * FROM batch_check($q$SELECT upper(generate(body, 3, model => 'bw')) || '!' FROM bt$q$);
SELECT * FROM batch_check($q$SELECT CASE WHEN id % 2 = 0 THEN generate(body, 3, model => 'bw') END FROM bt$q$);
SELECT * FROM batch_check($q$SELECT coalesce(generate(body, 3, model => 'bw'), 'none') FROM bt$q$);
-- a call whose argument is another call: the inner one is batched
SELECT * FROM batch_check($q$SELECT generate(generate(body, 2, model => 'bw'), 2, model => 'bw') FROM bt$q$);
EXPLAIN (COSTS OFF, VERBOSE) SELECT generate(generate(body, 2, model => 'bw'), 2, model => 'bw') FROM bt;
-- calls in WHERE keep the per-row path (and give the same rows)
SELECT * FROM batch_check($q$SELECT id FROM bt WHERE classify(body, ARRAY['a', 'b'], 'bw') = 'a'$q$);

-- calls in aggregate arguments are computed below the Agg, in a batched
-- column it reads (plain, ORDER BY inside the aggregate, hashed with
-- HAVING); under FILTER they keep the per-row path
SELECT * FROM batch_check($q$SELECT count(embed(body, 'bw')), max(generate(body, 3, model => 'bw')) FROM bt$q$);
EXPLAIN (COSTS OFF, VERBOSE) SELECT count(embed(body, 'bw')) FROM bt;
SELECT * FROM batch_check($q$SELECT string_agg(generate(body, 3, model => 'bw'), '|' ORDER BY id DESC) FROM bt$q$);
SET enable_sort = off;  -- hashed grouping: a sorted one reads a Sort, which does not project (per row)
SELECT * FROM batch_check($q$SELECT grp, count(generate(body, 3, model => 'bw')) FROM bt
                             GROUP BY grp HAVING min(length(generate(body, 2, model => 'bw'))) > 0$q$);
EXPLAIN (COSTS OFF) SELECT grp, count(generate(body, 3, model => 'bw')) FROM bt
  GROUP BY grp HAVING min(length(generate(body, 2, model => 'bw'))) > 0;
RESET enable_sort;
SELECT * FROM batch_check($q$SELECT count(*) FILTER (WHERE generate(body, 3, model => 'bw') IS NOT NULL),
                                 array_agg(id ORDER BY id) FILTER (WHERE length(generate(body, 2, model => 'bw')) > 3)
                             FROM bt$q$);

-- a join, and a join with the call over both sides
SELECT * FROM batch_check($q$SELECT b.id, g.label, generate(b.body || ' ' || g.label, 3, model => 'bw')
                             FROM bt b JOIN bgroup g USING (grp)$q$);
EXPLAIN (COSTS OFF) SELECT b.id, g.label, generate(b.body || ' ' || g.label, 3, model => 'bw')
  FROM bt b JOIN bgroup g USING (grp);

-- ORDER BY ... LIMIT: the call is evaluated above the sort (a Result the
-- node replaces) and for the limited rows only
SELECT * FROM batch_check($q$SELECT id, generate(body, 3, model => 'bw') FROM bt ORDER BY id DESC LIMIT 7$q$);
EXPLAIN (COSTS OFF) SELECT id, generate(body, 3, model => 'bw') FROM bt ORDER BY id DESC LIMIT 7;
SELECT * FROM batch_check($q$SELECT id, generate(body, 3, model => 'bw') FROM bt ORDER BY grp DESC, id LIMIT 7$q$);
EXPLAIN (COSTS OFF) SELECT id, generate(body, 3, model => 'bw') FROM bt ORDER BY grp DESC, id LIMIT 7;
-- a LIMIT inside a subquery, and an OFFSET
SELECT * FROM batch_check($q$SELECT s.id, s.g, length(s.g) FROM (SELECT id, generate(body, 3, model => 'bw') g
                             FROM bt ORDER BY id LIMIT 9 OFFSET 3) s$q$);
SELECT * FROM batch_check($q$SELECT count(*), max(g) FROM (SELECT generate(body, 3, model => 'bw') g FROM bt LIMIT 13) s$q$);

-- how many rows the node evaluates: full batches where everything is read,
-- at most the Limit's count below a constant LIMIT, growing batches (1, 2,
-- 4, ...) where reading may stop early (here a LIMIT that is a subquery)
SET lmgen.batch_rows = 8;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT id, generate(body, 2, model => 'bw') FROM bt;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT id, generate(body, 2, model => 'bw') FROM bt LIMIT 5;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT id, generate(body, 2, model => 'bw') FROM bt LIMIT (SELECT 5);
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT EXISTS (SELECT 1 FROM (SELECT generate(body, 2, model => 'bw') g FROM bt OFFSET 0) s WHERE g IS NOT NULL);
RESET lmgen.batch_rows;

-- a volatile argument: each row takes exactly one value, in row order
CREATE SEQUENCE bseq;
SELECT * FROM batch_check($q$SELECT id, generate(body || nextval('bseq'), 3, model => 'bw') FROM bt$q$,
                          $q$SELECT setval('bseq', 1, false)$q$);
SELECT setval('bseq', 1, false);
CREATE TEMP TABLE vol AS SELECT id, generate(body, 3, model => 'bw', seed => nextval('bseq'), temperature => 1) g FROM bt;
SELECT currval('bseq') AS last_value_taken;
SELECT count(*) AS rows_matching_seed
FROM vol WHERE g IS NOT DISTINCT FROM generate((SELECT body FROM bt WHERE bt.id = vol.id), 3, model => 'bw', seed => vol.id, temperature => 1);

-- an error in one row's arguments: the same error with the node on and off
SET lmgen.enable_batching = on;
SELECT id, generate(body, CASE WHEN id = 17 THEN 0 ELSE 3 END, model => 'bw') FROM bt;
SELECT id, classify(body, CASE WHEN id = 5 THEN ARRAY['a', 'a'] ELSE ARRAY['a', 'b'] END, 'bw') FROM bt;
SELECT id, generate(body, 3, model => CASE WHEN id = 30 THEN 'nope' ELSE 'bw' END) FROM bt;
SET lmgen.enable_batching = off;
SELECT id, generate(body, CASE WHEN id = 17 THEN 0 ELSE 3 END, model => 'bw') FROM bt;
SELECT id, classify(body, CASE WHEN id = 5 THEN ARRAY['a', 'a'] ELSE ARRAY['a', 'b'] END, 'bw') FROM bt;
SELECT id, generate(body, 3, model => CASE WHEN id = 30 THEN 'nope' ELSE 'bw' END) FROM bt;
RESET lmgen.enable_batching;

-- a parallel plan: the node runs inside each parallel worker's subtree
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
ALTER TABLE bt SET (parallel_workers = 2);
EXPLAIN (COSTS OFF) SELECT id, summarize(body, 8, 'bc') FROM bt;
SELECT * FROM batch_check($q$SELECT id, summarize(body, 8, 'bc') FROM bt$q$);
SELECT * FROM batch_check($q$SELECT id, embed(body, 'bw') FROM bt$q$);
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
RESET parallel_leader_participation;
ALTER TABLE bt RESET (parallel_workers);

-- cursors: a SCROLL cursor fetched backward and forward, and a cursor
-- without SCROLL that stays implicitly scrollable, give the rows of the
-- per-row plan in the same order
CREATE FUNCTION fetch_walk(c refcursor) RETURNS TABLE (step int, id int, g text)
LANGUAGE plpgsql AS $$
DECLARE
  i int := 0;
BEGIN
  FOR k IN 1..5 LOOP FETCH NEXT FROM c INTO id, g; step := i; i := i + 1; RETURN NEXT; END LOOP;
  FOR k IN 1..3 LOOP FETCH PRIOR FROM c INTO id, g; step := i; i := i + 1; RETURN NEXT; END LOOP;
  FETCH LAST FROM c INTO id, g; step := i; i := i + 1; RETURN NEXT;
  FETCH ABSOLUTE 20 FROM c INTO id, g; step := i; i := i + 1; RETURN NEXT;
  FETCH RELATIVE -2 FROM c INTO id, g; step := i; i := i + 1; RETURN NEXT;
  FETCH FIRST FROM c INTO id, g; step := i; i := i + 1; RETURN NEXT;
END $$;
BEGIN;
SET LOCAL lmgen.enable_batching = on;
DECLARE c_on SCROLL CURSOR FOR SELECT id, generate(body, 3, model => 'bw') FROM bt;
DECLARE i_on CURSOR FOR SELECT id, generate(body, 3, model => 'bw') FROM bt;
SET LOCAL lmgen.enable_batching = off;
DECLARE c_off SCROLL CURSOR FOR SELECT id, generate(body, 3, model => 'bw') FROM bt;
DECLARE i_off CURSOR FOR SELECT id, generate(body, 3, model => 'bw') FROM bt;
CREATE TEMP TABLE walk_on AS SELECT * FROM fetch_walk('c_on');
CREATE TEMP TABLE walk_off AS SELECT * FROM fetch_walk('c_off');
CREATE TEMP TABLE iwalk_on AS SELECT * FROM fetch_walk('i_on');
CREATE TEMP TABLE iwalk_off AS SELECT * FROM fetch_walk('i_off');
SELECT (SELECT count(*) FROM walk_on) AS n_rows,
       (SELECT count(*) FROM ((TABLE walk_on EXCEPT ALL TABLE walk_off) UNION ALL
                              (TABLE walk_off EXCEPT ALL TABLE walk_on)) d) AS n_differ,
       (SELECT count(*) FROM ((TABLE iwalk_on EXCEPT ALL TABLE iwalk_off) UNION ALL
                              (TABLE iwalk_off EXCEPT ALL TABLE iwalk_on)) d) AS n_differ_implicit;
SELECT step, id FROM walk_on ORDER BY step;
COMMIT;
-- a NO SCROLL cursor is still refused backward fetches
BEGIN;
DECLARE n NO SCROLL CURSOR FOR SELECT id, generate(body, 3, model => 'bw') FROM bt;
FETCH 2 FROM n;
FETCH BACKWARD 1 FROM n;
ROLLBACK;

-- ReScan: the inner side of a nested loop is scanned again for each outer row
SET enable_hashjoin = off;
SET enable_mergejoin = off;
SET enable_material = off;
SELECT * FROM batch_check($q$SELECT g.label, s.id, s.t FROM bgroup g,
                             LATERAL (SELECT id, generate(body || g.label, 2, model => 'bw') t FROM bt
                                      WHERE bt.grp = g.grp ORDER BY id LIMIT 3) s$q$);
RESET enable_hashjoin;
RESET enable_mergejoin;
RESET enable_material;

-- UPDATE: the subplan's calls are batched too
CREATE TABLE bt2 AS SELECT id, body, NULL::text AS summary FROM bt;
EXPLAIN (COSTS OFF) UPDATE bt2 SET summary = summarize(body, 8, 'bc');
UPDATE bt2 SET summary = summarize(body, 8, 'bc');
SET lmgen.enable_batching = off;
SELECT count(*) AS rows_differ FROM bt2 WHERE summary IS DISTINCT FROM summarize(body, 8, 'bc');
RESET lmgen.enable_batching;

-- local mode (calls in this backend) gives the same rows
SET lmgen.execution = local;
SELECT * FROM batch_check('SELECT id, summarize(body, 8, ''bc'') FROM bt');
SELECT * FROM batch_check('SELECT id, classify(body, ARRAY[''sports'', ''weather'', ''animals''], ''bw'') FROM bt');
SELECT * FROM batch_check('SELECT id, embed(body, ''bw''), generate(body, 3, model => ''bw'') FROM bt');
RESET lmgen.execution;

-- the settings turn the node off
SET lmgen.batch_rows = 1;
EXPLAIN (COSTS OFF) SELECT summarize(body) FROM articles;
RESET lmgen.batch_rows;
SET lmgen.enable_batching = off;
EXPLAIN (COSTS OFF) SELECT summarize(body) FROM articles;
RESET lmgen.enable_batching;
SET lmgen.batch_rows = 0;

DROP TABLE bt, bt2, bgroup, articles, blabelled;
DROP SEQUENCE bseq;
DROP FUNCTION batch_check(text, text);
DROP FUNCTION fetch_walk(refcursor);
-- leave the registry as it was (the first model registered becomes the default)
SELECT lmgen.unload_model('bw');
SELECT lmgen.unload_model('bc');
