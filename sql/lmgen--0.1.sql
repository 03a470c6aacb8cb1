-- lmgen 0.1: language models inside PostgreSQL.
\echo Use "CREATE EXTENSION lmgen" to load this file. \quit

CREATE SCHEMA lmgen;
GRANT USAGE ON SCHEMA lmgen TO PUBLIC;

-- Facts about a GGUF model file inside lmgen.model_dir.
CREATE FUNCTION lmgen.model_info(path text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'lmgen_model_info'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

COMMENT ON FUNCTION lmgen.model_info(text) IS
'architecture, parameter count, tensor count, tensor types, context length, vocab size and file size of a GGUF model file';

-- One row per tensor of a GGUF model file inside lmgen.model_dir.
CREATE FUNCTION lmgen.model_tensors(path text,
    OUT name text, OUT type text, OUT shape bigint[], OUT "offset" bigint, OUT bytes bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'lmgen_model_tensors'
LANGUAGE C STRICT STABLE PARALLEL SAFE ROWS 300;

COMMENT ON FUNCTION lmgen.model_tensors(text) IS
'name, type, shape (ggml order, fastest dimension first), data offset and byte size of each tensor in a GGUF model file';
