/*
 * unicode_norm.c — lower-casing, canonical decomposition and nonspacing
 * marks, looked up by binary search in the tables unicode_gen.py --norm
 * generates (unicode_norm_data.c).  What BERT's normaliser needs: strip
 * accents = decompose, drop Mn; then lower-case.
 */
#include "unicode.h"

/* Hangul syllable block (Unicode 3.12, conjoining jamo behaviour). */
#define HANGUL_S_BASE 0xAC00
#define HANGUL_L_BASE 0x1100
#define HANGUL_V_BASE 0x1161
#define HANGUL_T_BASE 0x11A7
#define HANGUL_V_COUNT 21
#define HANGUL_T_COUNT 28
#define HANGUL_S_COUNT 11172

/* Full lower case of one code point. */
int
lm_unicode_lower(uint32_t cp, uint32_t out[3])
{
	uint32_t	lo = 0,
				hi = lm_unicode_n_lower;

	if (cp < 0x80)
	{
		out[0] = (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
		return 1;
	}
	while (lo < hi)
	{
		uint32_t	mid = (lo + hi) / 2;

		if (lm_unicode_lower_map[mid].cp < cp)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < lm_unicode_n_lower && lm_unicode_lower_map[lo].cp == cp)
	{
		int			n = 0;

		for (int i = 0; i < 3 && (i == 0 || lm_unicode_lower_map[lo].to[i] != 0); i++)
			out[n++] = lm_unicode_lower_map[lo].to[i];
		return n;
	}
	out[0] = cp;
	return 1;
}

/* Canonical decomposition of one code point. */
int
lm_unicode_nfd(uint32_t cp, uint32_t out[4])
{
	uint32_t	lo = 0,
				hi = lm_unicode_n_nfd;

	if (cp < 0xC0)
	{
		out[0] = cp;
		return 1;
	}
	if (cp >= HANGUL_S_BASE && cp < HANGUL_S_BASE + HANGUL_S_COUNT)
	{
		uint32_t	s = cp - HANGUL_S_BASE,
					t = s % HANGUL_T_COUNT;

		out[0] = HANGUL_L_BASE + s / (HANGUL_V_COUNT * HANGUL_T_COUNT);
		out[1] = HANGUL_V_BASE + (s % (HANGUL_V_COUNT * HANGUL_T_COUNT)) / HANGUL_T_COUNT;
		if (t == 0)
			return 2;
		out[2] = HANGUL_T_BASE + t;
		return 3;
	}
	while (lo < hi)
	{
		uint32_t	mid = (lo + hi) / 2;

		if (lm_unicode_nfd_map[mid].cp < cp)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < lm_unicode_n_nfd && lm_unicode_nfd_map[lo].cp == cp)
	{
		const lm_unicode_decomp *d = &lm_unicode_nfd_map[lo];
		int			n = d->len <= 4 ? d->len : 4;

		for (int i = 0; i < n; i++)
			out[i] = lm_unicode_nfd_cps[d->off + i];
		return n;
	}
	out[0] = cp;
	return 1;
}

/* True for nonspacing marks. */
bool
lm_unicode_is_mn(uint32_t cp)
{
	uint32_t	lo = 0,
				hi = lm_unicode_n_mn;

	if (cp < 0x300)
		return false;
	while (lo < hi)
	{
		uint32_t	mid = (lo + hi) / 2;

		if (lm_unicode_mn_ranges[mid][1] <= cp)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < lm_unicode_n_mn && lm_unicode_mn_ranges[lo][0] <= cp;
}
