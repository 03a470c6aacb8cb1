/*
 * unicode.h — the small slice of Unicode the tokenizers need: UTF-8 decoding
 * and encoding, general-category flags per code point (from the generated
 * table in unicode_data.c), and GPT-2's byte <-> code point mapping.
 */
#ifndef LM_UNICODE_H
#define LM_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Category flags: exactly one of the first eight bits per code point. */
#define LM_UC_UNDEFINED		0x0001	/* Cn: unassigned */
#define LM_UC_NUMBER		0x0002	/* \p{N} */
#define LM_UC_LETTER		0x0004	/* \p{L} */
#define LM_UC_SEPARATOR		0x0008	/* \p{Z} */
#define LM_UC_MARK			0x0010	/* \p{M} */
#define LM_UC_PUNCTUATION	0x0020	/* \p{P} */
#define LM_UC_SYMBOL		0x0040	/* \p{S} */
#define LM_UC_CONTROL		0x0080	/* \p{C} except Cn */
#define LM_UC_WHITESPACE	0x0100	/* White_Space property (\s) */

/* The replacement character, used for bytes that are not valid UTF-8. */
#define LM_UC_REPLACEMENT	0xFFFD

/* One run of code points with equal flags, up to the next range's start. */
typedef struct lm_unicode_range
{
	uint32_t	start;			/* first code point of the run */
	uint16_t	flags;			/* LM_UC_* bits */
} lm_unicode_range;

/* Generated tables (unicode_data.c). */
extern const uint16_t lm_unicode_latin1[256];
extern const lm_unicode_range lm_unicode_ranges[];
extern const uint32_t lm_unicode_n_ranges;

/* LM_UC_* flags of a code point (UNDEFINED beyond U+10FFFF). */
extern uint16_t lm_unicode_flags(uint32_t cp);

/*
 * Decode one code point from s[0..len) the way llama.cpp does: a lead byte
 * and the continuation bytes it announces (no check for overlong forms or
 * surrogates).  Anything else — a stray continuation byte, a truncated
 * sequence, a value beyond U+10FFFF — yields U+FFFD and consumes one byte.
 * Returns the bytes consumed (>= 1; len must be > 0).
 */
extern size_t lm_utf8_decode(const char *s, size_t len, uint32_t *cp);

/* Encode a code point (<= 0x10FFFF) into out; returns 1..4. */
extern int	lm_utf8_encode(uint32_t cp, char *out);

/* Sequence length announced by a lead byte, by its high nibble (1 for continuation bytes). */
extern size_t lm_utf8_lead_len(unsigned char lead);

/*
 * Length of the valid UTF-8 sequence at s[0..len): 1..4 when complete and
 * valid (strict: no overlong, no surrogates, <= U+10FFFF), 0 when s is a valid
 * but truncated prefix of one, -1 when invalid.
 */
extern int	lm_utf8_check(const unsigned char *s, size_t len);

/* GPT-2 byte-level BPE: the code point that stands for a byte. */
extern uint32_t lm_unicode_from_byte(uint8_t b);

/* GPT-2 byte-level BPE: the byte a code point stands for, or -1. */
extern int	lm_unicode_to_byte(uint32_t cp);

/* ---- normalisation for WordPiece (unicode_norm.c, tables in unicode_norm_data.c) ---- */

/* A code point and what it maps to (up to 3 code points; unused slots 0). */
typedef struct lm_unicode_map
{
	uint32_t	cp;				/* source code point */
	uint32_t	to[3];			/* mapping */
} lm_unicode_map;

/* A code point's canonical decomposition: lm_unicode_nfd_cps[off .. off+len). */
typedef struct lm_unicode_decomp
{
	uint32_t	cp;				/* source code point */
	uint16_t	off;			/* first code point in lm_unicode_nfd_cps */
	uint16_t	len;			/* code points */
} lm_unicode_decomp;

/* Generated tables (unicode_norm_data.c). */
extern const lm_unicode_map lm_unicode_lower_map[];
extern const uint32_t lm_unicode_n_lower;
extern const lm_unicode_decomp lm_unicode_nfd_map[];
extern const uint32_t lm_unicode_n_nfd;
extern const uint32_t lm_unicode_nfd_cps[];
extern const uint32_t lm_unicode_mn_ranges[][2];
extern const uint32_t lm_unicode_n_mn;

/* Full lower case of a code point (as Python's str.lower): writes 1..3 code points, returns the count. */
extern int	lm_unicode_lower(uint32_t cp, uint32_t out[3]);

/*
 * Full canonical decomposition (NFD) of one code point, Hangul syllables
 * included: writes up to 4 code points to out and returns the count (1 and
 * cp itself when it does not decompose).  Canonical reordering of marks
 * across characters is not done.
 */
extern int	lm_unicode_nfd(uint32_t cp, uint32_t out[4]);

/* True for nonspacing marks (general category Mn). */
extern bool lm_unicode_is_mn(uint32_t cp);

#endif							/* LM_UNICODE_H */
