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

SELECT lmgen.unload_model('tiny');
SELECT lmgen.unload_model('tiny-f32');
SELECT count(*) AS left_over FROM lmgen.models;

DROP ROLE regress_lmgen_plain;
DROP ROLE regress_lmgen_admin;
