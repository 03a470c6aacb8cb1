-- The model functions' COST keeps a small statement below jit_above_cost:
-- JIT compiles the expressions around the calls (3 to 130 ms per query,
-- per Citus shard query too) and cannot speed up the model itself.
CREATE TABLE jit_t (id int, body text);
INSERT INTO jit_t SELECT g, 'some text ' || g FROM generate_series(1, 6) g;

-- whether the planner would switch JIT on for a statement
CREATE FUNCTION jit_on(q text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    p json;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO p;
    RETURN (p->0->'Plan'->>'Total Cost')::float8 >= current_setting('jit_above_cost')::float8;
END
$$;

SET jit_above_cost = 100000;
-- an unanalyzed table (as a fresh Citus shard is): the planner guesses about a thousand rows
SELECT relpages, reltuples FROM pg_class WHERE relname = 'jit_t';
SELECT jit_on('SELECT generate(body) FROM jit_t') AS generate_jit,
       jit_on('SELECT summarize(body) FROM jit_t') AS summarize_jit,
       jit_on($q$SELECT classify(body, ARRAY['a', 'b']) FROM jit_t$q$) AS classify_jit,
       jit_on($q$SELECT (classify_scores(body, ARRAY['a', 'b'])).* FROM jit_t$q$) AS classify_scores_jit,
       jit_on('SELECT embed(body) FROM jit_t') AS embed_jit,
       jit_on('SELECT generate(body), summarize(body), embed(body) FROM jit_t') AS all_jit;
-- a big statement still gets it, where its cost is nothing beside the calls
INSERT INTO jit_t SELECT g, 'some text ' || g FROM generate_series(7, 200000) g;
ANALYZE jit_t;
SELECT jit_on('SELECT summarize(body) FROM jit_t') AS big_summarize_jit;
RESET jit_above_cost;
DROP FUNCTION jit_on(text);
DROP TABLE jit_t;
