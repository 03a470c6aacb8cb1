/*
 * tokenizer_piece.c — ids back to text: lm_token_to_piece and the streaming
 * detokenizer that only ever emits valid UTF-8.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_int.h"
#include "unicode.h"

/* An output buffer that counts everything but stores only what fits. */
typedef struct sink
{
	char	   *buf;			/* destination */
	int			cap;			/* bytes available */
	int			n;				/* bytes produced (may exceed cap) */
} sink;

/* Add bytes to a sink. */
static void
put(sink *s, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++, s->n++)
		if (s->n < s->cap)
			s->buf[s->n] = p[i];
}

/* Parse "<0xHH>"; -1 when the text has another form. */
static int
byte_of(const lm_tok_entry *e)
{
	int			v = 0;

	if (e->len != 6 || memcmp(e->text, "<0x", 3) != 0 || e->text[5] != '>')
		return -1;
	for (int i = 3; i < 5; i++)
	{
		char		c = e->text[i];

		v *= 16;
		if (c >= '0' && c <= '9')
			v += c - '0';
		else if (c >= 'A' && c <= 'F')
			v += c - 'A' + 10;
		else if (c >= 'a' && c <= 'f')
			v += c - 'a' + 10;
		else
			return -1;
	}
	return v;
}

/* Text of one token as it appears in output. */
int
lm_token_to_piece(const lm_tokenizer *t, int32_t id, bool render_special, char *buf, int buflen)
{
	sink		s = {buf, buf != NULL && buflen > 0 ? buflen : 0, 0};
	const lm_tok_entry *e;

	if (t == NULL || id < 0 || id >= t->n_vocab)
		return 0;
	e = &t->tok[id];
	if (!render_special && (e->attr & (LM_TATTR_UNKNOWN | LM_TATTR_CONTROL)))
		return 0;
	if (e->attr & (LM_TATTR_UNKNOWN | LM_TATTR_CONTROL | LM_TATTR_USER_DEFINED))
		put(&s, e->text, e->len);
	else if (e->attr & LM_TATTR_NORMAL)
	{
		if (t->model == LM_TOKMODEL_SPM || t->model == LM_TOKMODEL_WPM)
		{
			/* U+2581 -> ' ' (WordPiece: the phantom space of a word-initial piece) */
			for (uint32_t i = 0; i < e->len;)
			{
				if (i + 3 <= e->len && memcmp(e->text + i, "\xe2\x96\x81", 3) == 0)
				{
					put(&s, " ", 1);
					i += 3;
				}
				else
					put(&s, e->text + i++, 1);
			}
		}
		else
		{
			/* byte-level: each code point stands for one byte */
			for (uint32_t i = 0; i < e->len;)
			{
				uint32_t	cp;
				size_t		k = lm_utf8_decode(e->text + i, e->len - i, &cp);
				int			b = lm_unicode_to_byte(cp);

				if (b >= 0)
				{
					char		c = (char) b;

					put(&s, &c, 1);
				}
				else
				{
					/* not a byte stand-in: llama.cpp's marker, kept for identical output */
					static const char hex[] = "0123456789abcdef";
					char		u8[4];
					int			nb = lm_utf8_encode(cp, u8);

					put(&s, "[UNK_BYTE_0x", 12);
					for (int j = 0; j < nb; j++)
					{
						char		h[2] = {hex[(unsigned char) u8[j] >> 4], hex[u8[j] & 15]};

						put(&s, h, 2);
					}
					put(&s, e->text, e->len);
					put(&s, "]", 1);
				}
				i += (uint32_t) k;
			}
		}
	}
	else if (e->attr & LM_TATTR_BYTE)
	{
		int			b = byte_of(e);

		if (b >= 0)
		{
			char		c = (char) b;

			put(&s, &c, 1);
		}
	}
	return s.n;
}

/* Start a new text. */
void
lm_detok_init(lm_detok *d, const lm_tokenizer *t)
{
	memset(d, 0, sizeof(*d));
	d->tok = t;
	d->strip_space = t != NULL && t->add_space_prefix;
}

/*
 * Copy the valid UTF-8 of p[0..n) into s; an invalid byte becomes U+FFFD.
 * Returns how many trailing bytes form an incomplete sequence (not copied).
 */
static int
sanitize(sink *s, const unsigned char *p, size_t n)
{
	size_t		i = 0;

	while (i < n)
	{
		int			r = lm_utf8_check(p + i, n - i);

		if (r > 0)
		{
			put(s, (const char *) p + i, (size_t) r);
			i += (size_t) r;
		}
		else if (r == 0)
			return (int) (n - i);
		else
		{
			put(s, "\xef\xbf\xbd", 3);
			i++;
		}
	}
	return 0;
}

/* Add one token to the stream. */
int
lm_detok_push(lm_detok *d, int32_t id, char *out, int outlen)
{
	char		stack[256];
	unsigned char *work = (unsigned char *) stack;
	char	   *piece;
	int			n;
	size_t		total;
	int			held;
	sink		s = {out, out != NULL && outlen > 0 ? outlen : 0, 0};

	if (d->tok == NULL)
		return 0;
	n = lm_token_to_piece(d->tok, id, d->render_special, NULL, 0);
	total = (size_t) d->n_pending + (size_t) n;
	if (total > sizeof(stack))
	{
		work = malloc(total);
		if (work == NULL)
			return 0;			/* nothing consumed; the caller sees no progress */
	}
	memcpy(work, d->pending, (size_t) d->n_pending);
	piece = (char *) work + d->n_pending;
	lm_token_to_piece(d->tok, id, d->render_special, piece, n);
	/* the first token loses one leading space (SPM add_space_prefix) */
	if (d->strip_space && n > 0 && piece[0] == ' ')
	{
		memmove(piece, piece + 1, (size_t) n - 1);
		total--;
	}
	held = sanitize(&s, work, total);
	if (s.n > s.cap)
	{
		if (work != (unsigned char *) stack)
			free(work);
		return -s.n;
	}
	memcpy(d->pending, work + total - held, (size_t) held);
	d->n_pending = held;
	d->strip_space = false;
	if (work != (unsigned char *) stack)
		free(work);
	return s.n;
}

/* Forget an incomplete character held back at the end of the stream. */
void
lm_detok_drop(lm_detok *d)
{
	d->n_pending = 0;
}

/* Flush the end of the stream. */
int
lm_detok_finish(lm_detok *d, char *out, int outlen)
{
	if (d->n_pending == 0)
		return 0;
	if (out == NULL || outlen < 3)
		return -3;
	memcpy(out, "\xef\xbf\xbd", 3);
	d->n_pending = 0;
	return 3;
}
