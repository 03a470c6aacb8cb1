-- Path confinement: non-superusers only reach files inside lmgen.model_dir.
\set VERBOSITY terse

CREATE ROLE regress_lmgen_user;
SET ROLE regress_lmgen_user;

-- inside the directory: allowed, also through "sub/.."
SELECT lmgen.model_info('tiny-q8_0.gguf') ->> 'architecture' AS arch;
SELECT lmgen.model_info('sub/../tiny-q8_0.gguf') ->> 'architecture' AS arch;
SELECT lmgen.model_info('./tiny-q8_0.gguf') ->> 'architecture' AS arch;

-- leaving it: "..", an absolute path elsewhere, a symlink pointing out
SELECT lmgen.model_info('../tmp/outside.gguf');
SELECT lmgen.model_info('sub/../../tmp/outside.gguf');
SELECT lmgen.model_info('/etc/passwd');
SELECT lmgen.model_info('escape.gguf');
SELECT count(*) FROM lmgen.model_tensors('escape.gguf');
-- a missing file outside gives the same refusal, so existence does not leak
SELECT lmgen.model_info('../no-such-file.gguf');
SELECT lmgen.model_info('/no/such/file.gguf');
-- a missing file inside is reported as missing
SELECT lmgen.model_info('missing.gguf');

-- a non-superuser cannot move the directory
SET lmgen.model_dir = '/';

RESET ROLE;

-- a superuser may open files anywhere
SELECT lmgen.model_info('../tmp/outside.gguf') ->> 'architecture' AS arch;
SELECT lmgen.model_info('escape.gguf') ->> 'tensor_count' AS tensors;
SELECT lmgen.model_info('/etc/passwd');

DROP ROLE regress_lmgen_user;
