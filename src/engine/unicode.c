/*
 * unicode.c — UTF-8 helpers, category lookup and the GPT-2 byte map.
 */
#include "unicode.h"

/* Flags of a code point: direct table below U+0100, binary search above. */
uint16_t
lm_unicode_flags(uint32_t cp)
{
	uint32_t	lo = 0;
	uint32_t	hi = lm_unicode_n_ranges;

	if (cp < 256)
		return lm_unicode_latin1[cp];
	if (cp > 0x10FFFF)
		return LM_UC_UNDEFINED;
	/* last range whose start <= cp */
	while (hi - lo > 1)
	{
		uint32_t	mid = lo + (hi - lo) / 2;

		if (lm_unicode_ranges[mid].start <= cp)
			lo = mid;
		else
			hi = mid;
	}
	return lm_unicode_ranges[lo].flags;
}

/* True when b is a UTF-8 continuation byte. */
static inline bool
is_cont(unsigned char b)
{
	return (b & 0xC0) == 0x80;
}

/* Permissive decode, as llama.cpp's tokenizers see text. */
size_t
lm_utf8_decode(const char *s, size_t len, uint32_t *cp)
{
	const unsigned char *u = (const unsigned char *) s;
	uint32_t	v;

	if (u[0] < 0x80)
	{
		*cp = u[0];
		return 1;
	}
	if ((u[0] & 0x40) == 0)
		goto invalid;
	if ((u[0] & 0x20) == 0)
	{
		if (len < 2 || !is_cont(u[1]))
			goto invalid;
		*cp = ((uint32_t) (u[0] & 0x1F) << 6) | (u[1] & 0x3F);
		return 2;
	}
	if ((u[0] & 0x10) == 0)
	{
		if (len < 3 || !is_cont(u[1]) || !is_cont(u[2]))
			goto invalid;
		*cp = ((uint32_t) (u[0] & 0x0F) << 12) | ((uint32_t) (u[1] & 0x3F) << 6) | (u[2] & 0x3F);
		return 3;
	}
	if ((u[0] & 0x08) == 0)
	{
		if (len < 4 || !is_cont(u[1]) || !is_cont(u[2]) || !is_cont(u[3]))
			goto invalid;
		v = ((uint32_t) (u[0] & 0x07) << 18) | ((uint32_t) (u[1] & 0x3F) << 12) |
			((uint32_t) (u[2] & 0x3F) << 6) | (u[3] & 0x3F);
		if (v > 0x10FFFF)
			goto invalid;
		*cp = v;
		return 4;
	}
invalid:
	*cp = LM_UC_REPLACEMENT;
	return 1;
}

/* Standard UTF-8 encoding. */
int
lm_utf8_encode(uint32_t cp, char *out)
{
	if (cp < 0x80)
	{
		out[0] = (char) cp;
		return 1;
	}
	if (cp < 0x800)
	{
		out[0] = (char) (0xC0 | (cp >> 6));
		out[1] = (char) (0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000)
	{
		out[0] = (char) (0xE0 | (cp >> 12));
		out[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char) (0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char) (0xF0 | ((cp >> 18) & 0x07));
	out[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char) (0x80 | (cp & 0x3F));
	return 4;
}

/* Length announced by the lead byte's high nibble. */
size_t
lm_utf8_lead_len(unsigned char lead)
{
	static const unsigned char by_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};

	return by_nibble[lead >> 4];
}

/* Strict validation of one sequence (RFC 3629 table of well-formed bytes). */
int
lm_utf8_check(const unsigned char *s, size_t len)
{
	int			need;
	unsigned char lo = 0x80;
	unsigned char hi = 0xBF;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		need = 2;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
	{
		need = 3;
		if (s[0] == 0xE0)
			lo = 0xA0;
		else if (s[0] == 0xED)
			hi = 0x9F;
	}
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
	{
		need = 4;
		if (s[0] == 0xF0)
			lo = 0x90;
		else if (s[0] == 0xF4)
			hi = 0x8F;
	}
	else
		return -1;
	for (int i = 1; i < need; i++)
	{
		if ((size_t) i >= len)
			return 0;
		if (i == 1 ? (s[1] < lo || s[1] > hi) : !is_cont(s[i]))
			return -1;
	}
	return need;
}

/*
 * GPT-2's map: printable Latin-1 bytes (0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF)
 * stand for themselves; the other 68 bytes, in order, take U+0100 onwards.
 */
uint32_t
lm_unicode_from_byte(uint8_t b)
{
	if (b <= 0x20)
		return 256 + b;
	if (b >= 0x7F && b <= 0xA0)
		return 256 + 33 + (b - 0x7F);
	if (b == 0xAD)
		return 256 + 67;
	return b;
}

/* Inverse of lm_unicode_from_byte. */
int
lm_unicode_to_byte(uint32_t cp)
{
	if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
		return (int) cp;
	if (cp >= 256 && cp <= 256 + 32)
		return (int) (cp - 256);
	if (cp >= 256 + 33 && cp <= 256 + 66)
		return (int) (cp - 256 - 33 + 0x7F);
	if (cp == 256 + 67)
		return 0xAD;
	return -1;
}
