/*
 * summary_select.h — choosing one summary among several candidates by
 * their agreement (minimum Bayes risk): the candidate whose words the
 * others share most is the one least likely to be an outlier of the model
 * or of the text's own first sentence.
 */
#ifndef LM_SUMMARY_SELECT_H
#define LM_SUMMARY_SELECT_H

#include <stddef.h>

/* Words of a candidate compared at most (a headline has about 8). */
#define LM_SELECT_MAX_WORDS 64

/*
 * Similarity of two texts: the F1 of the longest common subsequence of
 * their words (runs of ASCII letters, digits, '_' and non-ASCII bytes,
 * compared ignoring ASCII case; the first LM_SELECT_MAX_WORDS of each);
 * 0 when either has no word.
 */
extern double lm_text_lcs_f1(const char *a, size_t alen, const char *b, size_t blen);

/*
 * The candidate that agrees most with the others: the index i maximising
 * the sum over j != i, in index order, of weight[j] * lm_text_lcs_f1(i, j)
 * (weights NULL: all 1); the lowest such index on ties, so with no
 * agreement at all candidate 0 wins; -1 when n <= 0.  A candidate with no
 * word is never chosen while another has words.
 */
extern int	lm_summary_consensus(const char *const *texts, const size_t *lens, const double *weights, int n);

#endif							/* LM_SUMMARY_SELECT_H */
