-- lmgen.model_info and lmgen.model_tensors on generated test models
-- (test/make_fixtures.sh writes them into lmgen.model_dir).
\set VERBOSITY terse

SELECT lmgen.model_info('tiny-f32.gguf');

SELECT lmgen.model_info('tiny-q8_0.gguf') -> 'tensor_types' AS types,
       (lmgen.model_info('tiny-q8_0.gguf') ->> 'parameters')::bigint AS parameters;

-- every tensor, in file order, for the quantized model
SELECT name, type, shape, "offset", bytes FROM lmgen.model_tensors('tiny-q4_0.gguf') LIMIT 12;

-- the tensor table agrees with model_info
SELECT count(*) AS tensors, sum(bytes) AS bytes,
       sum((SELECT product FROM (SELECT exp(sum(ln(d)))::bigint AS product FROM unnest(shape) d) p)) AS elements
FROM lmgen.model_tensors('tiny-f32.gguf');

-- bad files give one clear error naming the problem and the byte offset
SELECT lmgen.model_info('truncated.gguf');
SELECT lmgen.model_info('dup-tensor.gguf');
SELECT * FROM lmgen.model_tensors('truncated.gguf');
SELECT lmgen.model_info('no-such-model.gguf');
SELECT lmgen.model_info('');
SELECT lmgen.model_info('sub');

-- NULL in, NULL out
SELECT lmgen.model_info(NULL) IS NULL AS is_null;

-- the server survived all of that
SELECT 1 AS still_alive;
