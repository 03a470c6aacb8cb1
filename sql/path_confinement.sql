-- Path confinement as a non-superuser: every path that leaves
-- lmgen.model_dir gets one message that shows only the path as given,
-- whether or not the file exists; /proc tricks and links out are refused
-- before anything outside is looked at.  Links that stay inside work.
CREATE ROLE regress_lmgen_confined;

-- The message and detail of model_info(p), with p (and lmgen.model_dir) masked.
CREATE FUNCTION confinement_result(p text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    msg text;
    det text;
BEGIN
    RETURN 'ok: ' || (lmgen.model_info(p) ->> 'architecture');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    msg := replace(msg, p, '<path>');
    det := replace(det, current_setting('lmgen.model_dir'), '<model_dir>');
    RETURN msg || coalesce(' / ' || nullif(det, ''), '');
END
$$;

SET ROLE regress_lmgen_confined;
SELECT replace(p, current_setting('lmgen.model_dir'), '<model_dir>') AS path,
       confinement_result(p) AS result
FROM (VALUES
    ('/proc/self/root/etc/passwd'),
    ('/proc/self/root/no/such/file'),
    ('/proc/self/cwd/postgresql.conf'),
    ('/proc/self/cwd/no-such-file'),
    ('/proc/self/fd/2'),
    ('/proc/self/fd/999'),
    ('/proc/self/environ'),
    ('/etc/passwd'),
    ('/no/such/file.gguf'),
    ('..'),
    ('../tmp/outside.gguf'),
    ('../no-such-file.gguf'),
    ('sub/../../tmp/outside.gguf'),
    ('../../../../../../etc/passwd'),
    ('escape.gguf'),
    ('dangling-out.gguf'),
    ('up-link.gguf'),
    ('proc-cwd/postgresql.conf'),
    ('proc-cwd/no-such-file'),
    ('sub-link/../../tmp/outside.gguf'),
    (current_setting('lmgen.model_dir') || '/../tmp/outside.gguf'),
    (current_setting('lmgen.model_dir') || '/escape.gguf')
) AS t(p);

-- inside the directory, also through links that stay inside
SELECT replace(p, current_setting('lmgen.model_dir'), '<model_dir>') AS path,
       confinement_result(p) AS result
FROM (VALUES
    ('tiny-q8_0.gguf'),
    ('./sub/../tiny-q8_0.gguf'),
    ('rel-link.gguf'),
    ('abs-link.gguf'),
    ('sub-link/../tiny-q8_0.gguf'),
    (current_setting('lmgen.model_dir') || '/tiny-q8_0.gguf'),
    (current_setting('lmgen.model_dir') || '/sub/../rel-link.gguf'),
    ('missing.gguf'),
    ('sub'),
    ('sub/missing.gguf')
) AS t(p);

-- the internal registration function is not for PUBLIC
SELECT lmgen._register_installed_models();
SELECT lmgen._registry_changed();
RESET ROLE;
SELECT has_function_privilege('regress_lmgen_confined', 'lmgen._register_installed_models()', 'EXECUTE') AS may_register,
       has_function_privilege('regress_lmgen_confined', 'lmgen._registry_changed()', 'EXECUTE') AS may_invalidate;

DROP FUNCTION confinement_result(text);
DROP ROLE regress_lmgen_confined;
