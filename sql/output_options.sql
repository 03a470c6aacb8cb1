-- summarize()'s max_words and style, and classify()'s descriptions and
-- examples, on the small random models of test/make_fixtures.sh (see
-- sql/model_functions.sql): limits, shapes, argument checks and the
-- examples query's permissions, which hold whatever the words say.
\set VERBOSITY terse

SELECT lmgen.load_model('oo_words', 'words.gguf');
SELECT lmgen.load_model('oo_chat', 'words-chat.gguf');

-- summarize: the word limit holds and nothing ends mid-phrase, in every style
CREATE TEMP TABLE s AS
SELECT m, style, w, summarize('The little dog ran to the park and played with a red ball. Then it went home.',
                              64, m, w, style) AS summary
FROM (VALUES ('oo_words'), ('oo_chat')) AS a(m), (VALUES ('sentence'), ('headline'), ('bullets')) AS b(style),
     (VALUES (1), (4), (20)) AS c(w);
SELECT m, style, w, summary FROM s
WHERE cardinality(regexp_split_to_array(btrim(summary), '\s+')) > w + CASE style WHEN 'bullets' THEN 3 ELSE 0 END
   OR btrim(summary) ~ '[,;:/&(-]$'
   OR lower(substring(btrim(summary) FROM '(\w+)\W*$')) IN ('a', 'an', 'the', 'and', 'or', 'of', 'to', 'with', 'for', 'in');
SELECT count(*) AS headlines_on_many_lines FROM s WHERE style <> 'bullets' AND position(E'\n' IN summary) > 0;
SELECT count(*) AS bad_bullets FROM s, unnest(string_to_array(nullif(summary, ''), E'\n')) AS l
WHERE style = 'bullets' AND l !~ '^- \S';
-- deterministic
SELECT count(*) AS differing FROM s
WHERE summarize('The little dog ran to the park and played with a red ball. Then it went home.', 64, m, w, style)
      IS DISTINCT FROM summary;
SELECT summarize('x', 10, 'oo_words', 20, 'Headline') IS NOT NULL AS style_case_insensitive;
SELECT summarize('x', 10, 'oo_words', -1);
SELECT summarize('x', 10, 'oo_words', 20, '');

-- classify with descriptions: one per label, none NULL
SELECT classify('The team won the match.', ARRAY['sports', 'politics'], 'oo_chat',
                descriptions => ARRAY['games and matches', 'elections and laws']) IN ('sports', 'politics') AS a_label;
SELECT classify('The team won the match.', ARRAY['sports', 'politics'], 'oo_chat', descriptions => ARRAY['games']);
SELECT classify('The team won the match.', ARRAY['sports', 'politics'], 'oo_chat', descriptions => ARRAY['games', NULL]);
-- descriptions are part of the prompt: the probabilities change
SELECT (SELECT array_agg(probability ORDER BY label) FROM classify_scores('The team won the match.',
            ARRAY['sports', 'politics'], 'oo_chat', descriptions => ARRAY['games and matches', 'elections and laws']))
   IS DISTINCT FROM
       (SELECT array_agg(probability ORDER BY label) FROM classify_scores('The team won the match.',
            ARRAY['sports', 'politics'], 'oo_chat')) AS descriptions_matter;

-- classify with examples from a query
CREATE TABLE labelled (body text, label text);
INSERT INTO labelled VALUES
  ('The striker scored a late goal and the team won the cup.', 'sports'),
  ('Parliament passed the new election law after a long vote.', 'politics'),
  ('The coach praised the players after the match.', 'sports'),
  ('The minister resigned after the vote.', 'politics'),
  ('A recipe for bread.', 'cooking'),
  (NULL, 'sports');
SELECT classify('The team won the match.', ARRAY['sports', 'politics'], 'oo_chat',
                examples => 'SELECT body, label FROM labelled') IN ('sports', 'politics') AS a_label;
SELECT classify('The team won the match.', ARRAY['sports', 'politics'], 'oo_words',
                examples => 'SELECT body, label FROM labelled') IN ('sports', 'politics') AS plain_model_too;
-- classify and classify_scores agree, and a row's choice is deterministic
SELECT c = (SELECT label FROM classify_scores(b, ARRAY['sports', 'politics'], 'oo_chat',
                examples => 'SELECT body, label FROM labelled') ORDER BY probability DESC, label LIMIT 1) AS agree
FROM (SELECT b, classify(b, ARRAY['sports', 'politics'], 'oo_chat', examples => 'SELECT body, label FROM labelled') AS c
      FROM (VALUES ('The team won the match.'), ('The vote on the law.')) AS v(b)) AS x;
-- bad queries
SELECT classify('x', ARRAY['sports', 'politics'], 'oo_chat', examples => 'SELECT body, label FROM labelled WHERE false');
SELECT classify('x', ARRAY['weather', 'music'], 'oo_chat', examples => 'SELECT body, label FROM labelled');
SELECT classify('x', ARRAY['sports', 'politics'], 'oo_chat', examples => 'SELECT body FROM labelled');
SELECT classify('x', ARRAY['sports', 'politics'], 'oo_chat', examples => 'DELETE FROM labelled');
SELECT classify('x', ARRAY['sports', 'politics'], 'oo_chat', examples => '');
SELECT count(*) AS rows_kept FROM labelled;
-- the query runs as the calling user: no SELECT privilege, no examples
CREATE ROLE lmgen_no_read;
GRANT USAGE ON SCHEMA public TO lmgen_no_read;
SET ROLE lmgen_no_read;
SELECT classify('x', ARRAY['sports', 'politics'], 'oo_chat', examples => 'SELECT body, label FROM labelled');
RESET ROLE;
DROP TABLE labelled;
REVOKE USAGE ON SCHEMA public FROM lmgen_no_read;
DROP ROLE lmgen_no_read;
SELECT lmgen.unload_model('oo_words'), lmgen.unload_model('oo_chat');
