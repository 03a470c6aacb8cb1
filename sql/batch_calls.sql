-- Array forms of the model functions (summarize, generate, classify,
-- embed over text[]) and the batched execution under them: the same results
-- as the per-row calls, in local mode (this backend's engine scheduler, the
-- encoder's batches) and in worker mode; NULL elements; errors of bad
-- elements as the per-row call raises them.  Run by `make
-- installcheck-models` (real models).
\set VERBOSITY terse

CREATE TEMP TABLE bt (i int, body text);
INSERT INTO bt VALUES
 (1, 'Extreme Tux Racer is a simple OpenGL racing game featuring Tux, the Linux mascot, sliding down a snowy mountain.'),
 (2, 'Spglib is a C library for crystal symmetry determination. This package contains the Ruby bindings.'),
 (3, 'The city council approved the new budget on Tuesday after a long debate about road repairs.'),
 (4, 'A command-line tool to convert images between many formats, resize them and apply filters.'),
 (5, 'Python bindings for the GTK toolkit, used to write graphical desktop applications.'),
 (6, 'A kitten is sleeping on the sofa.');

-- an unknown-type literal still means the per-row form
SELECT pg_typeof(summarize('A short note about cats.', 8)) AS literal_form,
       pg_typeof(summarize(ARRAY['A short note about cats.'], 8)) AS array_form;
SELECT summarize(ARRAY[['a'], ['b']]);

SET lmgen.execution = 'local';
\set labels '{games,libraries,news,graphics,"desktop software"}'
\i test/data/batch_calls_body.sql

SET lmgen.execution = 'worker';
\set labels '{game,library,politics,images,desktop}'
\i test/data/batch_calls_body.sql
