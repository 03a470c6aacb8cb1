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

-- Model registry ------------------------------------------------------------

-- Members of lmgen_admin (and superusers) may register models.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lmgen_admin') THEN
        CREATE ROLE lmgen_admin NOLOGIN;
    END IF;
END
$$;

-- Registered models: a name for a GGUF file inside lmgen.model_dir.  Paths
-- are kept as given (relative to lmgen.model_dir) and resolved at each use.
CREATE TABLE lmgen.model_registry (
    name           text PRIMARY KEY
                   CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    path           text NOT NULL,
    architecture   text,
    parameters     bigint,
    quantization   text,
    context_length bigint,
    is_default     boolean NOT NULL DEFAULT false,
    file_size      bigint,      -- bytes, at registration
    sha256         text,        -- of the file, at registration (Citus workers must match)
    registered_by  name NOT NULL DEFAULT current_user,
    registered_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX model_registry_one_default ON lmgen.model_registry (is_default) WHERE is_default;
GRANT SELECT ON lmgen.model_registry TO PUBLIC;
GRANT INSERT, UPDATE, DELETE ON lmgen.model_registry TO lmgen_admin;
SELECT pg_catalog.pg_extension_config_dump('lmgen.model_registry', '');

-- Every change to the registry invalidates the backends' cached lookups
-- (src/model_cache.c), in this session at the next command and in others
-- at their next transaction.
CREATE FUNCTION lmgen._registry_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'lmgen_registry_changed'
LANGUAGE C;
REVOKE ALL ON FUNCTION lmgen._registry_changed() FROM PUBLIC;
CREATE TRIGGER model_registry_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON lmgen.model_registry
    FOR EACH STATEMENT EXECUTE FUNCTION lmgen._registry_changed();

-- Register a model file (inside lmgen.model_dir) under a name.
CREATE FUNCTION lmgen.load_model(name text, path text)
RETURNS void
AS 'MODULE_PATHNAME', 'lmgen_load_model'
LANGUAGE C STRICT VOLATILE;

-- Forget a registered model (the file stays).
CREATE FUNCTION lmgen.unload_model(name text)
RETURNS void
AS 'MODULE_PATHNAME', 'lmgen_unload_model'
LANGUAGE C STRICT VOLATILE;

-- Make a registered model the default for this database.
CREATE FUNCTION lmgen.set_default_model(name text)
RETURNS void
AS 'MODULE_PATHNAME', 'lmgen_set_default_model'
LANGUAGE C STRICT VOLATILE;

-- Name of the model used when a call names none: lmgen.default_model when
-- set, else the registry's default.
CREATE FUNCTION lmgen.default_model()
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce(nullif(current_setting('lmgen.default_model', true), ''),
                    (SELECT r.name FROM lmgen.model_registry r WHERE r.is_default))
$$;

CREATE VIEW lmgen.models AS
SELECT r.name, r.path, r.architecture, r.parameters, r.quantization, r.context_length,
       (r.name = lmgen.default_model()) AS "default"
FROM lmgen.model_registry r;
GRANT SELECT ON lmgen.models TO PUBLIC;

-- Citus: replace this node's registry with the coordinator's rows after
-- checking that every model file is here with the recorded size and sha256
-- (sent by the coordinator; src/registry_cluster.c).
CREATE FUNCTION lmgen._apply_registry(rows jsonb)
RETURNS integer
AS 'MODULE_PATHNAME', 'lmgen_apply_registry'
LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION lmgen._apply_registry(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lmgen._apply_registry(jsonb) TO lmgen_admin;

-- Citus: send this coordinator's registry to every worker (after adding a
-- node, or after an error left one behind); the number of workers, 0
-- without Citus.
CREATE FUNCTION lmgen.sync_models()
RETURNS integer
AS 'MODULE_PATHNAME', 'lmgen_sync_models'
LANGUAGE C VOLATILE;

-- Models that `make model` installs are registered at CREATE EXTENSION when present.
CREATE FUNCTION lmgen._register_installed_models()
RETURNS void
AS 'MODULE_PATHNAME', 'lmgen_register_installed_models'
LANGUAGE C VOLATILE;
-- Internal: only CREATE EXTENSION (as its owner) runs it.
REVOKE ALL ON FUNCTION lmgen._register_installed_models() FROM PUBLIC;
SELECT lmgen._register_installed_models();

-- Tokenizer access ---------------------------------------------------------

-- Token ids of a text, BOS included when the model adds it (NULL model = default).
CREATE FUNCTION lmgen.tokenize(body text, model text DEFAULT NULL)
RETURNS integer[]
AS 'MODULE_PATHNAME', 'lmgen_tokenize'
LANGUAGE C STABLE PARALLEL SAFE COST 1000;

-- Text of token ids (control tokens are not printed).
CREATE FUNCTION lmgen.detokenize(ids integer[], model text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'lmgen_detokenize'
LANGUAGE C STABLE PARALLEL SAFE COST 1000;

-- Number of tokens of a text, as lmgen.tokenize counts them.
CREATE FUNCTION lmgen.count_tokens(body text, model text DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'lmgen_count_tokens'
LANGUAGE C STABLE PARALLEL SAFE COST 1000;

-- Generation ---------------------------------------------------------------
-- These live in the extension's schema (normally public) so that the card's
-- query works as written: SELECT summarize(body) FROM articles.
-- COST 1000 (500 for embed): far above ordinary functions (so they are
-- evaluated last among quals) and worth parallel plans on large tables,
-- but a statement reaches jit_above_cost only from some 40,000 rows: JIT
-- compiles the expressions around the calls (3 to 130 ms a query, and a
-- Citus statement is one query per shard) and cannot make a model faster.

-- Continue a prompt (through the model's chat template when it has one).
-- Greedy when temperature = 0; the same seed gives the same text.
CREATE FUNCTION generate(prompt text, max_tokens integer DEFAULT 128,
                         temperature real DEFAULT 0, top_p real DEFAULT 1,
                         top_k integer DEFAULT 0, seed bigint DEFAULT NULL,
                         stop text[] DEFAULT NULL, model text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'lmgen_generate'
LANGUAGE C VOLATILE PARALLEL SAFE COST 1000;

-- A short factual summary through the model's chat format (greedy), of at
-- most max_words words, ending at a complete phrase; style 'sentence',
-- 'headline' (a terse noun phrase) or 'bullets' (up to three "- " lines).
-- Headlines may take a query of (text, summary) rows from which the 4 most
-- similar (by embedding, else word overlap) are shown as examples, read as
-- the caller.
CREATE FUNCTION summarize(body text, max_tokens integer DEFAULT 128, model text DEFAULT NULL,
                          max_words integer DEFAULT 20, style text DEFAULT 'sentence',
                          examples text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'lmgen_summarize'
LANGUAGE C STABLE PARALLEL SAFE COST 1000;

-- Zero-shot classification: the label whose tokens the model finds most
-- likely as the answer (log-likelihood after one shared prompt).  Optional:
-- a description per label, and a query of (text, label) rows from which the
-- 4 most similar (by embedding, else word overlap) are shown as examples,
-- read as the caller.
CREATE FUNCTION classify(body text, labels text[], model text DEFAULT NULL,
                         descriptions text[] DEFAULT NULL, examples text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'lmgen_classify'
LANGUAGE C STABLE PARALLEL SAFE COST 1000;

-- Every label with its probability (softmax of the label log-likelihoods).
CREATE FUNCTION classify_scores(body text, labels text[], model text DEFAULT NULL,
                                descriptions text[] DEFAULT NULL, examples text DEFAULT NULL,
                                OUT label text, OUT probability real)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'lmgen_classify_scores'
LANGUAGE C STABLE PARALLEL SAFE COST 1000 ROWS 10;

-- The examples classify(body, labels, examples => ...) shows the model for
-- body: the 4 rows of the query most similar to it (by embedding or word
-- overlap, as lmgen.classify_retrieval says), most similar first.
CREATE FUNCTION lmgen.classify_examples(body text, labels text[], examples text,
                                        OUT rank int, OUT text text, OUT label text,
                                        OUT similarity float8)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'lmgen_classify_examples'
LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100 ROWS 4;

-- Sentence embedding: mean-pooled final hidden states, L2-normalised; a NULL
-- model means lmgen.default_embedding_model (all-MiniLM-L6-v2 once installed).
CREATE FUNCTION embed(body text, model text DEFAULT NULL)
RETURNS real[]
AS 'MODULE_PATHNAME', 'lmgen_embed'
LANGUAGE C STABLE PARALLEL SAFE COST 500;

-- Filling a column ------------------------------------------------------------
-- UPDATE t SET col = summarize(body) in batches that each commit, so that a
-- long fill keeps what it did after an error or a cancel and a second call
-- continues where it stopped.  On a Citus distributed table (whose UPDATE
-- refuses STABLE and VOLATILE functions of the row) every shard is filled
-- on its own worker, one batch per shard in parallel at a time.

-- One batch of a fill on the table named rel (a table or a shard): at most
-- batch_size rows whose column is NULL, after the row at ctid `after`, in
-- ctid order, get the expression's value; rows where it is NULL are left
-- (and passed, so they are not tried again).  The statement returns one
-- text: "rows_tried rows_filled last_ctid".
CREATE FUNCTION lmgen._fill_batch_sql(rel text, column_name name, expression text,
                                     batch_size integer, condition text, after tid)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
SELECT format(
    'WITH batch AS MATERIALIZED ('
    '  SELECT ctid AS lmgen_ctid FROM %1$s'
    '  WHERE %2$I IS NULL AND ctid > %3$L::tid AND (%4$s) ORDER BY ctid LIMIT %5$s),'
    ' computed AS MATERIALIZED ('
    '  SELECT ctid AS lmgen_ctid, (%6$s) AS lmgen_value FROM %1$s'
    '  WHERE ctid = ANY (ARRAY(SELECT lmgen_ctid FROM batch))),'
    ' filled AS ('
    '  UPDATE %1$s SET %2$I = computed.lmgen_value FROM computed'
    '  WHERE %1$s.ctid = computed.lmgen_ctid AND computed.lmgen_value IS NOT NULL'
    '  RETURNING 1)'
    ' SELECT format(''%%s %%s %%s'', (SELECT count(*) FROM batch), (SELECT count(*) FROM filled),'
    '  coalesce((SELECT max(lmgen_ctid) FROM batch), %3$L::tid))',
    rel, column_name, after, coalesce(condition, 'true'), batch_size, expression)
$$;

-- Fill column_name of target with expression (SQL over the row's columns,
-- e.g. 'summarize(body)') where it is NULL (and condition holds), in
-- batches of batch_size rows, each committed.  CALL it outside a
-- transaction block.  rows_filled: rows given a value.
CREATE PROCEDURE lmgen.fill(target regclass, column_name name, expression text,
                            batch_size integer DEFAULT 100, condition text DEFAULT NULL,
                            INOUT rows_filled bigint DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    citus_table boolean := false;
    reference_table boolean := false;
    shard_rel text[];
    shard_node text[];
    shard_port integer[];
    shard_after tid[];
    shard_done boolean[];
    todo integer[];
    commands text[];
    r record;
    outcome text;
    parts text[];
    after tid := '(0,0)';
BEGIN
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'lmgen.fill: batch_size must be at least 1';
    END IF;
    IF target IS NULL OR column_name IS NULL OR expression IS NULL THEN
        RAISE EXCEPTION 'lmgen.fill: target, column_name and expression must not be NULL';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid = target AND a.attname = column_name
                     AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'lmgen.fill: column "%" of % does not exist', column_name, target;
    END IF;
    rows_filled := 0;
    IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT count(*) > 0, coalesce(bool_or(repmodel = ''t''), false)
                 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1'
            INTO citus_table, reference_table USING target;
    END IF;
    IF reference_table THEN
        RAISE EXCEPTION 'lmgen.fill does not fill Citus reference tables'
            USING HINT = 'Fill a distributed or a local table.';
    END IF;

    IF NOT citus_table THEN
        LOOP
            EXECUTE lmgen._fill_batch_sql(target::text, column_name, expression,
                                         batch_size, condition, after) INTO outcome;
            parts := string_to_array(outcome, ' ');
            EXIT WHEN parts[1]::bigint = 0;
            rows_filled := rows_filled + parts[2]::bigint;
            after := parts[3]::tid;
            COMMIT;
        END LOOP;
        RETURN;
    END IF;

    -- Citus: every shard placement on its worker, one batch each per round
    EXECUTE 'SELECT array_agg(pg_catalog.shard_name(s.logicalrelid, s.shardid) ORDER BY s.shardid),
                    array_agg(p.nodename ORDER BY s.shardid), array_agg(p.nodeport::int ORDER BY s.shardid)
             FROM pg_catalog.pg_dist_shard s JOIN pg_catalog.pg_dist_shard_placement p USING (shardid)
             WHERE s.logicalrelid = $1 AND p.shardstate = 1'
        INTO shard_rel, shard_node, shard_port USING target;
    IF shard_rel IS NULL THEN
        RETURN;
    END IF;
    shard_after := array_fill('(0,0)'::tid, ARRAY[cardinality(shard_rel)]);
    shard_done := array_fill(false, ARRAY[cardinality(shard_rel)]);
    LOOP
        todo := ARRAY(SELECT i FROM generate_subscripts(shard_rel, 1) i WHERE NOT shard_done[i] ORDER BY i);
        EXIT WHEN cardinality(todo) = 0;
        commands := ARRAY(SELECT lmgen._fill_batch_sql(shard_rel[i], column_name, expression,
                                                       batch_size, condition, shard_after[i])
                          FROM unnest(todo) WITH ORDINALITY AS t(i, o) ORDER BY o);
        FOR r IN EXECUTE 'SELECT o, w.success, w.result, w.node_name, w.node_port
                          FROM pg_catalog.master_run_on_worker($1, $2, $3, true) WITH ORDINALITY AS w(node_name, node_port, success, result, o)'
            USING ARRAY(SELECT shard_node[i] FROM unnest(todo) WITH ORDINALITY AS t(i, o) ORDER BY o),
                  ARRAY(SELECT shard_port[i] FROM unnest(todo) WITH ORDINALITY AS t(i, o) ORDER BY o),
                  commands
        LOOP
            IF NOT r.success THEN
                RAISE EXCEPTION 'lmgen.fill: shard % on node %:% failed: %',
                    shard_rel[todo[r.o]], r.node_name, r.node_port, r.result
                    USING HINT = 'Rows filled so far are kept; call lmgen.fill again to continue.';
            END IF;
            parts := string_to_array(r.result, ' ');
            IF parts[1]::bigint = 0 THEN
                shard_done[todo[r.o]] := true;
            ELSE
                rows_filled := rows_filled + parts[2]::bigint;
                shard_after[todo[r.o]] := parts[3]::tid;
            END IF;
        END LOOP;
    END LOOP;
END
$$;

-- Array forms: many texts in one call, run together (one batch of the
-- engine or the worker); results in input order, each exactly what the
-- per-row call gives its element.  A NULL element gives NULL (embed: a row of
-- NULLs).  See README, "Array forms".
CREATE FUNCTION generate(prompts text[], max_tokens integer DEFAULT 128,
                         temperature real DEFAULT 0, top_p real DEFAULT 1,
                         top_k integer DEFAULT 0, seed bigint DEFAULT NULL,
                         stop text[] DEFAULT NULL, model text DEFAULT NULL)
RETURNS text[]
AS 'MODULE_PATHNAME', 'lmgen_generate_array'
LANGUAGE C VOLATILE PARALLEL SAFE COST 1000000;

CREATE FUNCTION summarize(bodies text[], max_tokens integer DEFAULT 128, model text DEFAULT NULL,
                          max_words integer DEFAULT 20, style text DEFAULT 'sentence',
                          examples text DEFAULT NULL)
RETURNS text[]
AS 'MODULE_PATHNAME', 'lmgen_summarize_array'
LANGUAGE C STABLE PARALLEL SAFE COST 1000000;

CREATE FUNCTION classify(bodies text[], labels text[], model text DEFAULT NULL,
                         descriptions text[] DEFAULT NULL, examples text DEFAULT NULL)
RETURNS text[]
AS 'MODULE_PATHNAME', 'lmgen_classify_array'
LANGUAGE C STABLE PARALLEL SAFE COST 1000000;

-- Two-dimensional: one row of the model's width per text.
CREATE FUNCTION embed(bodies text[], model text DEFAULT NULL)
RETURNS real[]
AS 'MODULE_PATHNAME', 'lmgen_embed_array'
LANGUAGE C STABLE PARALLEL SAFE COST 500000;

-- Cosine similarity of two embeddings (plain-SQL semantic search).
CREATE FUNCTION lmgen.cosine_similarity(a real[], b real[])
RETURNS double precision
AS 'MODULE_PATHNAME', 'lmgen_cosine_similarity'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

-- Trained classifiers -------------------------------------------------------
-- Softmax regression on hashed word n-grams, trained in the database from
-- (text, label) rows: README.md, "Training".

-- The classifiers.  Only the extension writes it (through train_classifier
-- and drop_classifier, which check ownership); everyone may read it.
CREATE TABLE lmgen.classifier_store (
    name       text PRIMARY KEY
               CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    owner      name NOT NULL,
    labels     text[] NOT NULL,
    features   jsonb NOT NULL,
    weights    bytea NOT NULL,
    metrics    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT ON lmgen.classifier_store TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('lmgen.classifier_store', '');

CREATE VIEW lmgen.classifiers AS
SELECT s.name, s.owner, cardinality(s.labels) AS classes, s.labels, s.features,
       (s.metrics->'test'->>'accuracy')::real AS test_accuracy,
       (s.metrics->'test'->>'macro_f1')::real AS test_macro_f1,
       (s.metrics->>'rows_train')::bigint AS rows_train,
       octet_length(s.weights) AS weight_bytes, s.created_at
FROM lmgen.classifier_store s;
GRANT SELECT ON lmgen.classifiers TO PUBLIC;

-- Train a classifier on the rows of query (SELECT text, label) and store it.
CREATE FUNCTION lmgen.train_classifier(name text, query text,
    features text DEFAULT 'ngrams', l1 real DEFAULT 0, l2 real DEFAULT 0.0001,
    epochs integer DEFAULT 30, learning_rate real DEFAULT 0.1,
    batch_size integer DEFAULT 32, test_fraction real DEFAULT 0.2,
    seed bigint DEFAULT 0, class_weights text DEFAULT 'none',
    replace boolean DEFAULT false, model text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'lmgen_train_classifier'
LANGUAGE C VOLATILE;

-- Forget a trained classifier (its owner or a superuser).
CREATE FUNCTION lmgen.drop_classifier(name text)
RETURNS void
AS 'MODULE_PATHNAME', 'lmgen_drop_classifier'
LANGUAGE C STRICT VOLATILE;

-- The most likely label of a text.
CREATE FUNCTION lmgen.predict(classifier text, body text)
RETURNS text
AS 'MODULE_PATHNAME', 'lmgen_predict'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100;

-- Every label's probability: {"label": p, ...}.
CREATE FUNCTION lmgen.predict_proba(classifier text, body text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'lmgen_predict_proba'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100;

-- Metrics of a classifier on the rows of query (SELECT text, label).
CREATE FUNCTION lmgen.evaluate(classifier text, query text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'lmgen_evaluate'
LANGUAGE C STRICT VOLATILE;

-- Trainings running now, in every session (needs shared_preload_libraries = 'lmgen').
CREATE FUNCTION lmgen.training_progress_rows(
    OUT pid integer, OUT userid oid, OUT classifier text, OUT phase text,
    OUT rows_read bigint, OUT rows_skipped bigint, OUT epoch integer, OUT epochs integer,
    OUT loss double precision, OUT validation_accuracy double precision, OUT started_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'lmgen_training_progress'
LANGUAGE C VOLATILE;

CREATE VIEW lmgen.training_progress AS
SELECT p.pid, r.rolname AS usename, p.classifier, p.phase, p.rows_read, p.rows_skipped,
       p.epoch, p.epochs, p.loss, p.validation_accuracy, p.started_at
FROM lmgen.training_progress_rows() p LEFT JOIN pg_catalog.pg_roles r ON r.oid = p.userid;
GRANT SELECT ON lmgen.training_progress TO PUBLIC;

-- Background worker (needs shared_preload_libraries = 'lmgen') --------------
-- Statistics per model file, kept by the worker since the last reset.
CREATE FUNCTION lmgen.stats_rows(
    OUT model text, OUT path text, OUT requests bigint, OUT errors bigint, OUT cancelled bigint,
    OUT prompt_tokens bigint, OUT prompt_tokens_reused bigint, OUT generated_tokens bigint,
    OUT busy_seconds double precision,
    OUT tokens_per_second double precision, OUT steps bigint, OUT mean_batch double precision,
    OUT max_batch integer, OUT queue_wait_seconds double precision,
    OUT mean_queue_wait_seconds double precision, OUT stats_reset timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'lmgen_stats_rows'
LANGUAGE C VOLATILE;

CREATE VIEW lmgen.stats AS SELECT * FROM lmgen.stats_rows();
GRANT SELECT ON lmgen.stats TO PUBLIC;

-- Forget the statistics (superuser, or whoever is granted EXECUTE).
CREATE FUNCTION lmgen.stats_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'lmgen_stats_reset'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION lmgen.stats_reset() FROM PUBLIC;

-- The worker now: pid, state, models open, KV pool blocks, calls running and
-- waiting; the device decoder models run on ('cpu' or the GPU's name), its
-- memory the worker holds and its total (bytes, NULL on the CPU), why the CPU
-- runs (NULL on a device), and the mean sequences per forward pass lately.
CREATE FUNCTION lmgen.status(
    OUT worker_pid integer, OUT state text, OUT models_loaded integer,
    OUT kv_blocks_used bigint, OUT kv_blocks_free bigint,
    OUT active_requests integer, OUT queued_requests integer, OUT max_requests integer,
    OUT device text, OUT device_memory_used bigint, OUT device_memory_total bigint,
    OUT device_detail text, OUT batch_size real)
RETURNS record
AS 'MODULE_PATHNAME', 'lmgen_status'
LANGUAGE C VOLATILE;

-- Model files whose weights are in shared memory (or could not be placed
-- there): state 'shared' (bytes in shared memory, processes mapping them),
-- 'loading', or 'file' (every process maps the file; detail says why).
CREATE FUNCTION lmgen.shared_weights_rows(
    OUT model text, OUT path text, OUT state text, OUT bytes bigint, OUT processes integer,
    OUT segment bigint, OUT loaded_at timestamptz, OUT detail text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'lmgen_shared_weights_rows'
LANGUAGE C VOLATILE;

CREATE VIEW lmgen.shared_weights AS SELECT * FROM lmgen.shared_weights_rows();
GRANT SELECT ON lmgen.shared_weights TO PUBLIC;
