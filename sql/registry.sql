-- The model registry: load_model, unload_model, set_default_model, lmgen.models.
\set VERBOSITY terse

-- the test instance's model_dir has no installed models, so nothing is registered yet
SELECT * FROM lmgen.models;
SELECT lmgen.default_model() IS NULL AS no_default;

SELECT lmgen.load_model('tiny', 'tiny-q8_0.gguf');
SELECT lmgen.load_model('tiny-f32', 'sub/../tiny-f32.gguf');
SELECT name, path, architecture, parameters, quantization, context_length, "default"
FROM lmgen.models ORDER BY name;

-- the first model registered became the default; switch it
SELECT lmgen.default_model();
SELECT lmgen.set_default_model('tiny-f32');
SELECT name, "default" FROM lmgen.models ORDER BY name;

-- the session setting lmgen.default_model overrides the registry's default
SET lmgen.default_model = 'tiny';
SELECT lmgen.default_model();
RESET lmgen.default_model;
SELECT lmgen.default_model();

-- errors
SELECT lmgen.load_model('tiny', 'tiny-q4_0.gguf');
SELECT lmgen.load_model('bad name!', 'tiny-q4_0.gguf');
SELECT lmgen.load_model('broken', 'truncated.gguf');
SELECT lmgen.load_model('outside', '../tmp/outside.gguf');
SELECT lmgen.load_model('escape', 'escape.gguf');
SELECT lmgen.load_model('missing', 'missing.gguf');
SELECT lmgen.unload_model('nope');
SELECT lmgen.set_default_model('nope');

-- only superusers and members of lmgen_admin may change the registry
CREATE ROLE regress_lmgen_plain;
CREATE ROLE regress_lmgen_admin IN ROLE lmgen_admin;
SET ROLE regress_lmgen_plain;
SELECT lmgen.load_model('mine', 'tiny-q4_0.gguf');
SELECT lmgen.unload_model('tiny');
SELECT count(*) AS visible FROM lmgen.models;
RESET ROLE;
SET ROLE regress_lmgen_admin;
SELECT lmgen.load_model('q4', 'tiny-q4_0.gguf');
SELECT lmgen.unload_model('q4');
RESET ROLE;

-- registration records the file's size and sha256 (what Citus workers must match)
SELECT r.name,
       r.file_size = (pg_stat_file(current_setting('lmgen.model_dir') || '/' || r.path)).size AS size_ok,
       r.sha256 = encode(sha256(pg_read_binary_file(current_setting('lmgen.model_dir') || '/' || r.path)), 'hex') AS sha256_ok
FROM lmgen.model_registry r ORDER BY r.name;
-- without Citus there are no workers to send the registry to
SELECT lmgen.sync_models();
-- _apply_registry (what a Citus worker runs) checks every file before it replaces the registry
SELECT lmgen._apply_registry('[{"name": "tiny", "path": "tiny-q8_0.gguf", "file_size": 1, "sha256": "00"}]');
DO $$
BEGIN
    PERFORM lmgen._apply_registry(jsonb_build_array(jsonb_build_object('name', 'tiny', 'path', 'tiny-q8_0.gguf',
        'file_size', (SELECT file_size FROM lmgen.model_registry WHERE name = 'tiny'), 'sha256', repeat('0', 64))));
EXCEPTION WHEN data_corrupted THEN
    -- the fixture's own sha256 varies with the fixture; the message shows both
    RAISE NOTICE '%', regexp_replace(SQLERRM, 'sha256 [0-9a-f]{64},', 'sha256 (this file''s),');
END
$$;
SELECT lmgen._apply_registry('[{"name": "gone", "path": "missing.gguf", "file_size": 1, "sha256": "00"}]');
SELECT lmgen._apply_registry('[{"name": "tiny"}]');
SELECT lmgen._apply_registry((SELECT jsonb_agg(to_jsonb(r)) FROM lmgen.model_registry r WHERE name = 'tiny'));
SELECT name, "default" FROM lmgen.models ORDER BY name;
SELECT lmgen.load_model('tiny-f32', 'tiny-f32.gguf');
SELECT lmgen.set_default_model('tiny-f32');

SELECT lmgen.unload_model('tiny');
SELECT lmgen.unload_model('tiny-f32');
SELECT count(*) AS left_over FROM lmgen.models;

DROP ROLE regress_lmgen_plain;
DROP ROLE regress_lmgen_admin;
