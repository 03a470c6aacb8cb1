-- The checks of sql/batch_calls.sql, run once per lmgen.execution mode.
-- Each array form gives exactly the per-row results, in input order.

-- classify first, with labels nobody scored yet: the batch scores the
-- content-free baseline once and the other calls wait for it
SELECT classify((SELECT array_agg(body ORDER BY i) FROM bt), :'labels')
     = (SELECT array_agg(classify(body, :'labels') ORDER BY i) FROM bt) AS same_classes;
SELECT classify((SELECT array_agg(body ORDER BY i) FROM bt), :'labels')
     = (SELECT array_agg(classify(body, :'labels') ORDER BY i) FROM bt) AS same_classes_cached;

SELECT summarize((SELECT array_agg(body ORDER BY i) FROM bt), 24)
     = (SELECT array_agg(summarize(body, 24) ORDER BY i) FROM bt) AS same_summaries;

-- sampled, seeded generations: each prompt keeps its own random stream
SELECT generate((SELECT array_agg(body ORDER BY i) FROM bt), 12, 0.8, 0.95, 40, 7)
     = (SELECT array_agg(generate(body, 12, 0.8, 0.95, 40, 7) ORDER BY i) FROM bt) AS same_generations;

-- embed: the sentence encoder (minilm, the default) and a decoder model
SELECT embed((SELECT array_agg(body ORDER BY i) FROM bt))
     = (SELECT array_agg(embed(body) ORDER BY i) FROM bt) AS same_encoder_embeddings,
       array_dims(embed((SELECT array_agg(body ORDER BY i) FROM bt))) AS dims;
SELECT embed((SELECT array_agg(body ORDER BY i) FROM bt), 'smollm2')
     = (SELECT array_agg(embed(body, 'smollm2') ORDER BY i) FROM bt) AS same_decoder_embeddings;

-- a KV budget that holds only some of the batch at once: the others wait
SET lmgen.max_kv_memory = '20MB';
SELECT summarize((SELECT array_agg(body ORDER BY i) FROM bt), 24)
     = (SELECT array_agg(summarize(body, 24) ORDER BY i) FROM bt) AS same_summaries_small_kv;
SET lmgen.max_kv_memory = '4MB';
SELECT summarize((SELECT body FROM bt WHERE i = 1), 24);
SELECT summarize((SELECT array_agg(body ORDER BY i) FROM bt), 24);
RESET lmgen.max_kv_memory;

-- NULL elements: NULL results (embed: a row of NULLs), the others unchanged
SELECT s[1] IS NULL AS first_null, s[2] = summarize((SELECT body FROM bt WHERE i = 1), 24) AS second_same,
       cardinality(s) AS n
FROM summarize(ARRAY[NULL, (SELECT body FROM bt WHERE i = 1)], 24) s;
SELECT e[1][1] IS NULL AND e[1][384] IS NULL AS null_row, e[2:2][1:384] = ARRAY[embed('a kitten')] AS second_same
FROM embed(ARRAY[NULL, 'a kitten']) e;
SELECT embed(ARRAY[NULL::text]) IS NULL AS all_null, summarize(NULL::text[]) IS NULL AS null_array,
       summarize('{}'::text[]) = '{}' AS empty, embed('{}'::text[]) = '{}' AS empty_embed;
SELECT classify(ARRAY['a', 'b'], NULL) AS null_labels;

-- a bad element raises the error its per-row call raises; with two bad
-- elements, the first one's
SELECT embed('', 'smollm2');
SELECT embed(ARRAY['fine', '', 'also fine'], 'smollm2');
SELECT embed(repeat('word ', 9000), 'smollm2');
SELECT embed(ARRAY['fine', repeat('word ', 9000), ''], 'smollm2');
SELECT embed(ARRAY['fine', '', repeat('word ', 9000)], 'smollm2');
SELECT summarize(ARRAY['fine', 'also fine'], 0);
SELECT classify(ARRAY['fine'], ARRAY['x', 'x']);
-- the session is fine afterwards
SELECT summarize(ARRAY[(SELECT body FROM bt WHERE i = 2)], 24) = ARRAY[summarize((SELECT body FROM bt WHERE i = 2), 24)] AS still_works;
