/*
 * gguf.c — validating GGUF v2/v3 reader.
 *
 * A GGUF file is: magic "GGUF", u32 version, u64 tensor count, u64 kv count,
 * the key/value pairs, the tensor infos, padding to the alignment, then the
 * tensor data.  Every integer is little-endian and nothing is aligned inside
 * the header, so values are read with memcpy.
 *
 * The parse is one forward pass over the mapped header with a cursor.  Each
 * read first asks need() whether that many bytes remain, so no read can go
 * past the end, and every count is checked against the bytes that remain
 * before anything is allocated for it (a count of N items that each take at
 * least k bytes needs N*k bytes of file).  Counts also have fixed ceilings
 * (LM_GGUF_MAX_*), so a crafted header cannot make us allocate more than a
 * small multiple of its own size.  Arrays nested in arrays are walked with a
 * depth limit.  After the header, tensors are checked as a set: names unique,
 * offsets aligned, each tensor inside the file, no two overlapping.
 *
 * Names are indexed in hash tables keyed per process (hash.h), so a file of
 * colliding names cannot make the parse quadratic.
 *
 * Every error names the problem and the byte offset where it was found.
 */
#include "gguf.h"
#include "hash.h"
#include "mapguard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC "GGUF"

/* Cursor over the header being parsed. */
typedef struct parser
{
	const uint8_t *buf;			/* start of the file image */
	uint64_t	size;			/* bytes in the image */
	uint64_t	pos;			/* next byte to read */
	char	   *err;			/* caller's message buffer */
	size_t		errlen;
	bool		failed;			/* an error has been written */
} parser;

/* Write the first error; later ones are ignored. */
static bool
fail(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool
fail(parser *p, const char *fmt, ...)
{
	va_list		ap;

	if (!p->failed && p->err && p->errlen > 0)
	{
		va_start(ap, fmt);
		vsnprintf(p->err, p->errlen, fmt, ap);
		va_end(ap);
	}
	p->failed = true;
	return false;
}

/* True when n more bytes can be read at the cursor; else an error about what. */
static bool
need(parser *p, uint64_t n, const char *what)
{
	if (n > p->size - p->pos)
		return fail(p, "file is truncated: %s at byte %llu needs %llu bytes but only %llu remain (file size %llu)",
					what, (unsigned long long) p->pos, (unsigned long long) n,
					(unsigned long long) (p->size - p->pos), (unsigned long long) p->size);
	return true;
}

/* Read a little-endian u32. */
static bool
read_u32(parser *p, uint32_t *out, const char *what)
{
	if (!need(p, 4, what))
		return false;
	memcpy(out, p->buf + p->pos, 4);
	p->pos += 4;
	return true;
}

/* Read a little-endian u64. */
static bool
read_u64(parser *p, uint64_t *out, const char *what)
{
	if (!need(p, 8, what))
		return false;
	memcpy(out, p->buf + p->pos, 8);
	p->pos += 8;
	return true;
}

/* Read a GGUF string (u64 length + bytes) without copying it. */
static bool
read_str(parser *p, lm_gguf_str *out, const char *what)
{
	uint64_t	start = p->pos;
	uint64_t	len;

	if (!read_u64(p, &len, what))
		return false;
	if (len > p->size - p->pos)
		return fail(p, "%s at byte %llu has length %llu, which runs past the end of the file (size %llu)",
					what, (unsigned long long) start, (unsigned long long) len,
					(unsigned long long) p->size);
	out->ptr = (const char *) p->buf + p->pos;
	out->len = len;
	p->pos += len;
	return true;
}

/* Byte size of one value of a scalar type (0 for STRING and ARRAY). */
size_t
lm_gguf_vtype_size(lm_gguf_vtype t)
{
	switch (t)
	{
		case LM_GGUF_UINT8:
		case LM_GGUF_INT8:
		case LM_GGUF_BOOL:
			return 1;
		case LM_GGUF_UINT16:
		case LM_GGUF_INT16:
			return 2;
		case LM_GGUF_UINT32:
		case LM_GGUF_INT32:
		case LM_GGUF_FLOAT32:
			return 4;
		case LM_GGUF_UINT64:
		case LM_GGUF_INT64:
		case LM_GGUF_FLOAT64:
			return 8;
		default:
			return 0;
	}
}

/* Name of a value type. */
const char *
lm_gguf_vtype_name(uint32_t t)
{
	static const char *const names[LM_GGUF_VTYPE_COUNT] = {
		"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"
	};

	return t < LM_GGUF_VTYPE_COUNT ? names[t] : "unknown";
}

/* Decode one scalar at src into the kv's union. */
static void
decode_scalar(lm_gguf_vtype t, const uint8_t *src, lm_gguf_kv *kv)
{
	uint8_t		u8;
	int8_t		i8;
	uint16_t	u16;
	int16_t		i16;
	uint32_t	u32;
	int32_t		i32;
	float		f32;

	switch (t)
	{
		case LM_GGUF_UINT8:
		case LM_GGUF_BOOL:
			memcpy(&u8, src, 1);
			kv->v.u64 = u8;
			break;
		case LM_GGUF_INT8:
			memcpy(&i8, src, 1);
			kv->v.i64 = i8;
			break;
		case LM_GGUF_UINT16:
			memcpy(&u16, src, 2);
			kv->v.u64 = u16;
			break;
		case LM_GGUF_INT16:
			memcpy(&i16, src, 2);
			kv->v.i64 = i16;
			break;
		case LM_GGUF_UINT32:
			memcpy(&u32, src, 4);
			kv->v.u64 = u32;
			break;
		case LM_GGUF_INT32:
			memcpy(&i32, src, 4);
			kv->v.i64 = i32;
			break;
		case LM_GGUF_FLOAT32:
			memcpy(&f32, src, 4);
			kv->v.f64 = f32;
			break;
		case LM_GGUF_UINT64:
			memcpy(&kv->v.u64, src, 8);
			break;
		case LM_GGUF_INT64:
			memcpy(&kv->v.i64, src, 8);
			break;
		case LM_GGUF_FLOAT64:
			memcpy(&kv->v.f64, src, 8);
			break;
		default:
			break;
	}
}

/* Check a value type id read at byte `at`. */
static bool
check_vtype(parser *p, uint32_t t, uint64_t at, const char *what)
{
	if (t >= LM_GGUF_VTYPE_COUNT)
		return fail(p, "%s at byte %llu has unknown value type %u (valid types are 0..%d)",
					what, (unsigned long long) at, t, LM_GGUF_VTYPE_COUNT - 1);
	return true;
}

/*
 * Walk an array body (element type and count already read) and check it.
 * When str_off is not NULL (top-level string arrays), record where each
 * element starts.
 */
static bool
skip_array_body(parser *p, lm_gguf_vtype et, uint64_t n, int depth, uint64_t *str_off)
{
	uint64_t	at = p->pos;
	size_t		es = lm_gguf_vtype_size(et);

	if (es > 0)
	{
		if (n > (p->size - p->pos) / es)
			return fail(p, "array at byte %llu claims %llu elements of type %s, more than the %llu bytes left in the file",
						(unsigned long long) at, (unsigned long long) n, lm_gguf_vtype_name(et),
						(unsigned long long) (p->size - p->pos));
		if (et == LM_GGUF_BOOL)
			for (uint64_t i = 0; i < n; i++)
				if (p->buf[p->pos + i] > 1)
					return fail(p, "boolean array element %llu at byte %llu has value %u (must be 0 or 1)",
								(unsigned long long) i, (unsigned long long) (p->pos + i),
								p->buf[p->pos + i]);
		p->pos += n * es;
		return true;
	}
	if (et == LM_GGUF_STRING)
	{
		/* each string takes at least its 8-byte length */
		if (n > (p->size - p->pos) / 8)
			return fail(p, "array at byte %llu claims %llu strings, more than the %llu bytes left in the file can hold",
						(unsigned long long) at, (unsigned long long) n,
						(unsigned long long) (p->size - p->pos));
		for (uint64_t i = 0; i < n; i++)
		{
			lm_gguf_str s;

			if (str_off)
				str_off[i] = p->pos;
			if (!read_str(p, &s, "array string"))
				return false;
		}
		return true;
	}
	/* nested arrays: each takes at least 4 + 8 bytes */
	if (depth >= LM_GGUF_MAX_ARRAY_DEPTH)
		return fail(p, "array at byte %llu is nested more than %d deep", (unsigned long long) at,
					LM_GGUF_MAX_ARRAY_DEPTH);
	if (n > (p->size - p->pos) / 12)
		return fail(p, "array at byte %llu claims %llu nested arrays, more than the %llu bytes left in the file can hold",
					(unsigned long long) at, (unsigned long long) n, (unsigned long long) (p->size - p->pos));
	for (uint64_t i = 0; i < n; i++)
	{
		uint32_t	t;
		uint64_t	cnt;
		uint64_t	tat = p->pos;

		if (!read_u32(p, &t, "nested array type") || !check_vtype(p, t, tat, "nested array"))
			return false;
		if (!read_u64(p, &cnt, "nested array length"))
			return false;
		if (!skip_array_body(p, (lm_gguf_vtype) t, cnt, depth + 1, NULL))
			return false;
	}
	return true;
}

/* Smallest power of two >= 2n (at least 8). */
static uint64_t
hash_slots(uint64_t n)
{
	uint64_t	s = 8;

	while (s < 2 * n)
		s <<= 1;
	return s;
}

/* True when a mapped string equals a C string. */
bool
lm_gguf_str_eq(lm_gguf_str s, const char *c)
{
	size_t		n = strlen(c);

	return s.len == n && memcmp(s.ptr, c, n) == 0;
}

/* True when two mapped strings are equal. */
static bool
str_eq2(lm_gguf_str a, lm_gguf_str b)
{
	return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

/*
 * Insert name (index idx) into an open-addressing table; returns the index of
 * an existing equal name, or -1 when it was inserted.
 */
static int64_t
hash_insert(uint32_t *slots, uint64_t nslots, lm_gguf_str name, uint32_t idx,
			const void *items, size_t item_size, size_t name_offset)
{
	uint64_t	h = lm_hash(LM_HASH_INIT, name.ptr, name.len) & (nslots - 1);

	for (;;)
	{
		uint32_t	cur = slots[h];
		lm_gguf_str other;

		if (cur == 0)
		{
			slots[h] = idx + 1;
			return -1;
		}
		memcpy(&other, (const char *) items + (size_t) (cur - 1) * item_size + name_offset, sizeof(other));
		if (str_eq2(other, name))
			return cur - 1;
		h = (h + 1) & (nslots - 1);
	}
}

/* Look name up in an open-addressing table; index or -1. */
static int64_t
hash_lookup(const uint32_t *slots, uint64_t nslots, const char *name,
			const void *items, size_t item_size, size_t name_offset)
{
	size_t		len = strlen(name);
	uint64_t	h;

	if (slots == NULL)
		return -1;
	h = lm_hash(LM_HASH_INIT, name, len) & (nslots - 1);
	for (;;)
	{
		uint32_t	cur = slots[h];
		lm_gguf_str other;

		if (cur == 0)
			return -1;
		memcpy(&other, (const char *) items + (size_t) (cur - 1) * item_size + name_offset, sizeof(other));
		if (other.len == len && memcmp(other.ptr, name, len) == 0)
			return cur - 1;
		h = (h + 1) & (nslots - 1);
	}
}

/* Check that a key or tensor name is non-empty, bounded and has no NUL byte. */
static bool
check_name(parser *p, lm_gguf_str s, uint64_t at, const char *what, uint64_t maxlen)
{
	if (s.len == 0)
		return fail(p, "%s at byte %llu is empty", what, (unsigned long long) at);
	if (s.len > maxlen)
		return fail(p, "%s at byte %llu is %llu bytes long (the limit is %llu)", what,
					(unsigned long long) at, (unsigned long long) s.len, (unsigned long long) maxlen);
	if (memchr(s.ptr, '\0', s.len) != NULL)
		return fail(p, "%s at byte %llu contains a NUL byte", what, (unsigned long long) at);
	return true;
}

/* Parse one key/value pair into kv. */
static bool
parse_kv(parser *p, lm_gguf *g, lm_gguf_kv *kv)
{
	uint32_t	t;
	uint64_t	tat;

	kv->offset = p->pos;
	if (!read_str(p, &kv->key, "metadata key"))
		return false;
	if (!check_name(p, kv->key, kv->offset, "metadata key", 65535))
		return false;
	tat = p->pos;
	if (!read_u32(p, &t, "metadata value type") || !check_vtype(p, t, tat, "metadata value"))
		return false;
	kv->type = (lm_gguf_vtype) t;
	if (kv->type == LM_GGUF_STRING)
		return read_str(p, &kv->v.str, "metadata string value");
	if (kv->type == LM_GGUF_ARRAY)
	{
		uint32_t	et;

		tat = p->pos;
		if (!read_u32(p, &et, "array element type") || !check_vtype(p, et, tat, "array element"))
			return false;
		kv->arr_type = (lm_gguf_vtype) et;
		if (!read_u64(p, &kv->arr_n, "array length"))
			return false;
		kv->arr_data = p->buf + p->pos;
		if (kv->arr_type == LM_GGUF_STRING)
		{
			if (kv->arr_n > (p->size - p->pos) / 8)
				return fail(p, "array \"%.*s\" at byte %llu claims %llu strings, more than the %llu bytes left in the file can hold",
							(int) kv->key.len, kv->key.ptr, (unsigned long long) p->pos,
							(unsigned long long) kv->arr_n, (unsigned long long) (p->size - p->pos));
			kv->arr_str_off = malloc(kv->arr_n > 0 ? kv->arr_n * sizeof(uint64_t) : 1);
			if (kv->arr_str_off == NULL)
				return fail(p, "out of memory indexing array at byte %llu", (unsigned long long) p->pos);
		}
		return skip_array_body(p, kv->arr_type, kv->arr_n, 1, kv->arr_str_off);
	}
	if (!need(p, lm_gguf_vtype_size(kv->type), "metadata value"))
		return false;
	decode_scalar(kv->type, p->buf + p->pos, kv);
	p->pos += lm_gguf_vtype_size(kv->type);
	if (kv->type == LM_GGUF_BOOL && kv->v.u64 > 1)
		return fail(p, "boolean \"%.*s\" at byte %llu has value %llu (must be 0 or 1)",
					(int) kv->key.len, kv->key.ptr, (unsigned long long) (p->pos - 1),
					(unsigned long long) kv->v.u64);
	(void) g;
	return true;
}

/* Parse one tensor info (name, dims, type, offset) and compute its size. */
static bool
parse_tensor(parser *p, lm_gguf_tensor *t)
{
	uint64_t	at = p->pos;
	uint32_t	type;
	const lm_type_traits *tr;
	uint64_t	n = 1;

	if (!read_str(p, &t->name, "tensor name"))
		return false;
	if (!check_name(p, t->name, at, "tensor name", LM_GGUF_MAX_NAME))
		return false;
	if (!read_u32(p, &t->n_dims, "tensor dimension count"))
		return false;
	if (t->n_dims < 1 || t->n_dims > LM_GGUF_MAX_DIMS)
		return fail(p, "tensor \"%.*s\" at byte %llu has %u dimensions (must be 1..%d)",
					(int) t->name.len, t->name.ptr, (unsigned long long) at, t->n_dims, LM_GGUF_MAX_DIMS);
	for (int d = 0; d < LM_GGUF_MAX_DIMS; d++)
		t->ne[d] = 1;
	for (uint32_t d = 0; d < t->n_dims; d++)
	{
		uint64_t	v;
		uint64_t	dat = p->pos;

		if (!read_u64(p, &v, "tensor dimension"))
			return false;
		if (v == 0 || v > (uint64_t) INT64_MAX)
			return fail(p, "tensor \"%.*s\": dimension %u at byte %llu is %llu (must be 1..2^63-1)",
						(int) t->name.len, t->name.ptr, d, (unsigned long long) dat, (unsigned long long) v);
		if (n > (uint64_t) INT64_MAX / v)
			return fail(p, "tensor \"%.*s\" at byte %llu: the element count overflows 64 bits",
						(int) t->name.len, t->name.ptr, (unsigned long long) at);
		n *= v;
		t->ne[d] = (int64_t) v;
	}
	t->n_elements = n;
	if (!read_u32(p, &type, "tensor type"))
		return false;
	tr = lm_type_traits_get(type);
	if (tr == NULL)
		return fail(p, "tensor \"%.*s\" at byte %llu has unknown type id %u",
					(int) t->name.len, t->name.ptr, (unsigned long long) (p->pos - 4), type);
	t->type = (lm_type) type;
	if (t->ne[0] % tr->block_size != 0)
		return fail(p, "tensor \"%.*s\" at byte %llu: row length %lld is not a multiple of the %s block size %u",
					(int) t->name.len, t->name.ptr, (unsigned long long) at, (long long) t->ne[0],
					tr->name, tr->block_size);
	if (n / tr->block_size > UINT64_MAX / tr->type_size)
		return fail(p, "tensor \"%.*s\" at byte %llu: the byte size overflows 64 bits",
					(int) t->name.len, t->name.ptr, (unsigned long long) at);
	t->n_bytes = n / tr->block_size * tr->type_size;
	return read_u64(p, &t->offset, "tensor data offset");
}

/* qsort helper: order tensor pointers by data offset. */
static int
cmp_tensor_offset(const void *a, const void *b)
{
	const lm_gguf_tensor *x = *(const lm_gguf_tensor *const *) a;
	const lm_gguf_tensor *y = *(const lm_gguf_tensor *const *) b;

	return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Check tensors as a set: unique names, aligned, inside the file, no overlap. */
static bool
check_tensors(parser *p, lm_gguf *g)
{
	const lm_gguf_tensor **order;
	uint64_t	data_bytes = g->file_size - g->data_offset;

	g->tensor_hash_size = hash_slots(g->n_tensors);
	g->tensor_hash = calloc(g->tensor_hash_size, sizeof(uint32_t));
	if (g->tensor_hash == NULL)
		return fail(p, "out of memory indexing %llu tensors", (unsigned long long) g->n_tensors);
	for (uint64_t i = 0; i < g->n_tensors; i++)
	{
		lm_gguf_tensor *t = &g->tensors[i];
		int64_t		dup = hash_insert(g->tensor_hash, g->tensor_hash_size, t->name, (uint32_t) i,
									  g->tensors, sizeof(lm_gguf_tensor), offsetof(lm_gguf_tensor, name));

		if (dup >= 0)
			return fail(p, "tensor name \"%.*s\" appears twice (tensor infos %lld and %llu; header ends at byte %llu)",
						(int) t->name.len, t->name.ptr, (long long) dup, (unsigned long long) i,
						(unsigned long long) g->data_offset);
		if (t->offset % g->alignment != 0)
			return fail(p, "tensor \"%.*s\": data offset %llu (byte %llu of the file) is not a multiple of the alignment %u",
						(int) t->name.len, t->name.ptr, (unsigned long long) t->offset,
						(unsigned long long) (g->data_offset + t->offset), g->alignment);
		if (t->offset > data_bytes || t->n_bytes > data_bytes - t->offset)
			return fail(p, "file is truncated: tensor \"%.*s\" starts at byte %llu and needs %llu bytes, but the file has %llu bytes",
						(int) t->name.len, t->name.ptr, (unsigned long long) (g->data_offset + t->offset),
						(unsigned long long) t->n_bytes, (unsigned long long) g->file_size);
		t->data = g->map + g->data_offset + t->offset;
	}
	if (g->n_tensors < 2)
		return true;
	order = malloc(g->n_tensors * sizeof(*order));
	if (order == NULL)
		return fail(p, "out of memory checking %llu tensors", (unsigned long long) g->n_tensors);
	for (uint64_t i = 0; i < g->n_tensors; i++)
		order[i] = &g->tensors[i];
	qsort(order, g->n_tensors, sizeof(*order), cmp_tensor_offset);
	for (uint64_t i = 1; i < g->n_tensors; i++)
	{
		const lm_gguf_tensor *a = order[i - 1];
		const lm_gguf_tensor *b = order[i];

		if (a->offset + a->n_bytes > b->offset)
		{
			fail(p, "tensors \"%.*s\" and \"%.*s\" overlap: the first ends at byte %llu but the second starts at byte %llu",
				 (int) a->name.len, a->name.ptr, (int) b->name.len, b->name.ptr,
				 (unsigned long long) (g->data_offset + a->offset + a->n_bytes),
				 (unsigned long long) (g->data_offset + b->offset));
			free(order);
			return false;
		}
	}
	free(order);
	return true;
}

/* Read general.alignment if present and check it. */
static bool
read_alignment(parser *p, lm_gguf *g)
{
	int64_t		i = hash_lookup(g->kv_hash, g->kv_hash_size, "general.alignment",
								g->kv, sizeof(lm_gguf_kv), offsetof(lm_gguf_kv, key));
	const lm_gguf_kv *kv;

	g->alignment = LM_GGUF_DEFAULT_ALIGNMENT;
	if (i < 0)
		return true;
	kv = &g->kv[i];
	if (kv->type != LM_GGUF_UINT32)
		return fail(p, "general.alignment at byte %llu has type %s (must be u32)",
					(unsigned long long) kv->offset, lm_gguf_vtype_name(kv->type));
	if (kv->v.u64 == 0 || (kv->v.u64 & (kv->v.u64 - 1)) != 0 || kv->v.u64 > (1u << 24))
		return fail(p, "general.alignment at byte %llu is %llu (must be a power of two up to 2^24)",
					(unsigned long long) kv->offset, (unsigned long long) kv->v.u64);
	g->alignment = (uint32_t) kv->v.u64;
	return true;
}

/* Parse and validate the whole header of g->map. */
static bool
parse(parser *p, lm_gguf *g)
{
	uint64_t	at;

	if (!need(p, 4, "magic"))
		return false;
	if (memcmp(p->buf, GGUF_MAGIC, 4) != 0)
		return fail(p, "not a GGUF file: bytes 0-3 are %02x %02x %02x %02x, expected \"GGUF\"",
					p->buf[0], p->buf[1], p->buf[2], p->buf[3]);
	p->pos = 4;
	if (!read_u32(p, &g->version, "version"))
		return false;
	if (g->version != 2 && g->version != 3)
	{
		if (g->version == 0x02000000 || g->version == 0x03000000)
			return fail(p, "big-endian GGUF files are not supported (version field at byte 4)");
		return fail(p, "GGUF version %u at byte 4 is not supported (versions 2 and 3 are)", g->version);
	}
	at = p->pos;
	if (!read_u64(p, &g->n_tensors, "tensor count") || !read_u64(p, &g->n_kv, "metadata count"))
		return false;
	if (g->n_tensors > LM_GGUF_MAX_TENSORS || g->n_tensors > (p->size - p->pos) / 24)
		return fail(p, "tensor count %llu at byte %llu is impossible for a file of %llu bytes (limit %u)",
					(unsigned long long) g->n_tensors, (unsigned long long) at,
					(unsigned long long) p->size, LM_GGUF_MAX_TENSORS);
	if (g->n_kv > LM_GGUF_MAX_KV || g->n_kv > (p->size - p->pos) / 13)
		return fail(p, "metadata count %llu at byte %llu is impossible for a file of %llu bytes (limit %u)",
					(unsigned long long) g->n_kv, (unsigned long long) (at + 8),
					(unsigned long long) p->size, LM_GGUF_MAX_KV);

	g->kv = calloc(g->n_kv > 0 ? g->n_kv : 1, sizeof(lm_gguf_kv));
	g->kv_hash_size = hash_slots(g->n_kv);
	g->kv_hash = calloc(g->kv_hash_size, sizeof(uint32_t));
	if (g->kv == NULL || g->kv_hash == NULL)
		return fail(p, "out of memory reading %llu metadata entries", (unsigned long long) g->n_kv);
	for (uint64_t i = 0; i < g->n_kv; i++)
	{
		int64_t		dup;

		if (!parse_kv(p, g, &g->kv[i]))
			return false;
		dup = hash_insert(g->kv_hash, g->kv_hash_size, g->kv[i].key, (uint32_t) i,
						  g->kv, sizeof(lm_gguf_kv), offsetof(lm_gguf_kv, key));
		if (dup >= 0)
			return fail(p, "metadata key \"%.*s\" at byte %llu appears twice",
						(int) g->kv[i].key.len, g->kv[i].key.ptr, (unsigned long long) g->kv[i].offset);
	}
	if (!read_alignment(p, g))
		return false;

	g->tensors = calloc(g->n_tensors > 0 ? g->n_tensors : 1, sizeof(lm_gguf_tensor));
	if (g->tensors == NULL)
		return fail(p, "out of memory reading %llu tensor infos", (unsigned long long) g->n_tensors);
	for (uint64_t i = 0; i < g->n_tensors; i++)
		if (!parse_tensor(p, &g->tensors[i]))
			return false;

	/* the data section starts at the next multiple of the alignment */
	g->data_offset = p->pos + (g->alignment - p->pos % g->alignment) % g->alignment;
	if (g->data_offset > p->size)
	{
		if (g->n_tensors > 0)
			return fail(p, "file is truncated: the tensor data should start at byte %llu but the file has %llu bytes",
						(unsigned long long) g->data_offset, (unsigned long long) p->size);
		g->data_offset = p->size;
	}
	return check_tensors(p, g);
}

/*
 * Validate an image (mapped file or caller's buffer) and build the lm_gguf.
 * A mapped file comes with its guard slot and descriptor, which the result
 * owns from here on (released by lm_gguf_close, also on failure).
 */
static lm_gguf *
open_image(const uint8_t *buf, uint64_t size, bool owns_map, const char *path, int slot, int fd,
		   char *err, size_t errlen)
{
	parser		p = {buf, size, 0, err, errlen, false};
	lm_gguf    *g = calloc(1, sizeof(lm_gguf));

	if (err && errlen)
		err[0] = '\0';
	if (g == NULL)
	{
		fail(&p, "out of memory");
		lm_mapguard_unregister(slot);
		if (owns_map)
			munmap((void *) buf, size);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	g->map = buf;
	g->guard_slot = slot;
	g->fd = fd;
	g->file_size = size;
	g->owns_map = owns_map;
	g->path = strdup(path ? path : "");
	if (g->path == NULL || !parse(&p, g))
	{
		if (!p.failed)
			fail(&p, "out of memory");
		lm_gguf_close(g);
		return NULL;
	}
	return g;
}

/* Open, map and validate a GGUF file. */
lm_gguf *
lm_gguf_open(const char *path, char *err, size_t errlen)
{
	int			fd;
	struct stat st;
	void	   *map;
	int			slot;
	lm_gguf    *g;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		snprintf(err, errlen, "could not open \"%s\": %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
	{
		snprintf(err, errlen, "\"%s\" is not a regular file", path);
		close(fd);
		return NULL;
	}
	if (st.st_size < 24)
	{
		snprintf(err, errlen, "file is truncated: \"%s\" has %lld bytes, less than a GGUF header (24 bytes at byte 0)",
				 path, (long long) st.st_size);
		close(fd);
		return NULL;
	}
	map = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
	{
		snprintf(err, errlen, "could not map \"%s\": %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	slot = lm_mapguard_register(map, (size_t) st.st_size, err, errlen);
	if (slot < 0)
	{
		munmap(map, (size_t) st.st_size);
		close(fd);
		return NULL;
	}
	g = open_image(map, (uint64_t) st.st_size, true, path, slot, fd, err, errlen);
	if (g == NULL)
		return NULL;
	g->mtime_sec = (int64_t) st.st_mtim.tv_sec;
	g->mtime_nsec = (int64_t) st.st_mtim.tv_nsec;
	/* the header may have been read from a file that shrank meanwhile */
	if (!lm_gguf_unchanged(g, err, errlen))
	{
		lm_gguf_close(g);
		return NULL;
	}
	return g;
}

/* Validate a GGUF image already in memory. */
lm_gguf *
lm_gguf_open_buffer(const void *buf, uint64_t size, char *err, size_t errlen)
{
	return open_image(buf, size, false, NULL, -1, -1, err, errlen);
}

/* Whether the guard answered a fault in this file's mapping. */
bool
lm_gguf_damaged(const lm_gguf *g)
{
	return lm_mapguard_damaged(g->guard_slot);
}

/* Whether the mapped file is as it was at open. */
bool
lm_gguf_unchanged(const lm_gguf *g, char *err, size_t errlen)
{
	struct stat st;

	if (g->fd < 0)
		return true;
	if (lm_mapguard_damaged(g->guard_slot))
	{
		snprintf(err, errlen, "the model file was truncated while in use (it had %llu bytes)",
				 (unsigned long long) g->file_size);
		return false;
	}
	if (fstat(g->fd, &st) != 0)
	{
		snprintf(err, errlen, "could not check the model file: %s", strerror(errno));
		return false;
	}
	if ((uint64_t) st.st_size != g->file_size || (int64_t) st.st_mtim.tv_sec != g->mtime_sec ||
		(int64_t) st.st_mtim.tv_nsec != g->mtime_nsec)
	{
		snprintf(err, errlen, "the model file was changed on disk while in use (%llu bytes when opened, %lld now)",
				 (unsigned long long) g->file_size, (long long) st.st_size);
		return false;
	}
	return true;
}

/* Unmap and free. */
void
lm_gguf_close(lm_gguf *g)
{
	if (g == NULL)
		return;
	if (g->kv)
		for (uint64_t i = 0; i < g->n_kv; i++)
			free(g->kv[i].arr_str_off);
	free(g->kv);
	free(g->kv_hash);
	free(g->tensors);
	free(g->tensor_hash);
	lm_mapguard_unregister(g->guard_slot);
	if (g->owns_map && g->map)
		munmap((void *) g->map, g->file_size);
	if (g->fd >= 0)
		close(g->fd);
	free(g->path);
	free(g);
}

/* Find a key. */
const lm_gguf_kv *
lm_gguf_find(const lm_gguf *g, const char *key)
{
	int64_t		i = hash_lookup(g->kv_hash, g->kv_hash_size, key, g->kv, sizeof(lm_gguf_kv),
								offsetof(lm_gguf_kv, key));

	return i < 0 ? NULL : &g->kv[i];
}

/* Find a tensor by name. */
const lm_gguf_tensor *
lm_gguf_find_tensor(const lm_gguf *g, const char *name)
{
	int64_t		i = hash_lookup(g->tensor_hash, g->tensor_hash_size, name, g->tensors,
								sizeof(lm_gguf_tensor), offsetof(lm_gguf_tensor, name));

	return i < 0 ? NULL : &g->tensors[i];
}

/* True for the unsigned integer types and bool. */
static bool
is_unsigned(lm_gguf_vtype t)
{
	return t == LM_GGUF_UINT8 || t == LM_GGUF_UINT16 || t == LM_GGUF_UINT32 ||
		t == LM_GGUF_UINT64 || t == LM_GGUF_BOOL;
}

/* True for the signed integer types. */
static bool
is_signed(lm_gguf_vtype t)
{
	return t == LM_GGUF_INT8 || t == LM_GGUF_INT16 || t == LM_GGUF_INT32 || t == LM_GGUF_INT64;
}

/* A scalar value as u64, when it is a non-negative integer. */
static bool
scalar_u64(lm_gguf_vtype t, const lm_gguf_kv *kv, uint64_t *out)
{
	if (is_unsigned(t))
		*out = kv->v.u64;
	else if (is_signed(t) && kv->v.i64 >= 0)
		*out = (uint64_t) kv->v.i64;
	else
		return false;
	return true;
}

/* A scalar value as i64, when it is an integer that fits. */
static bool
scalar_i64(lm_gguf_vtype t, const lm_gguf_kv *kv, int64_t *out)
{
	if (is_signed(t))
		*out = kv->v.i64;
	else if (is_unsigned(t) && kv->v.u64 <= (uint64_t) INT64_MAX)
		*out = (int64_t) kv->v.u64;
	else
		return false;
	return true;
}

/* A scalar value as f64: floats, and integers a double holds exactly (|v| <= 2^53). */
static bool
scalar_f64(lm_gguf_vtype t, const lm_gguf_kv *kv, double *out)
{
	const int64_t exact = (int64_t) 1 << 53;

	if (t == LM_GGUF_FLOAT32 || t == LM_GGUF_FLOAT64)
		*out = kv->v.f64;
	else if (is_signed(t) && kv->v.i64 >= -exact && kv->v.i64 <= exact)
		*out = (double) kv->v.i64;
	else if (is_unsigned(t) && kv->v.u64 <= (uint64_t) exact)
		*out = (double) kv->v.u64;
	else
		return false;
	return true;
}

/* Unsigned integer value of key. */
bool
lm_gguf_get_u64(const lm_gguf *g, const char *key, uint64_t *out)
{
	const lm_gguf_kv *kv = lm_gguf_find(g, key);

	return kv != NULL && scalar_u64(kv->type, kv, out);
}

/* Signed integer value of key. */
bool
lm_gguf_get_i64(const lm_gguf *g, const char *key, int64_t *out)
{
	const lm_gguf_kv *kv = lm_gguf_find(g, key);

	return kv != NULL && scalar_i64(kv->type, kv, out);
}

/* Floating-point value of key (integers convert). */
bool
lm_gguf_get_f64(const lm_gguf *g, const char *key, double *out)
{
	const lm_gguf_kv *kv = lm_gguf_find(g, key);

	return kv != NULL && scalar_f64(kv->type, kv, out);
}

/* Boolean value of key. */
bool
lm_gguf_get_bool(const lm_gguf *g, const char *key, bool *out)
{
	const lm_gguf_kv *kv = lm_gguf_find(g, key);

	if (kv == NULL || kv->type != LM_GGUF_BOOL)
		return false;
	*out = kv->v.u64 != 0;
	return true;
}

/* String value of key. */
bool
lm_gguf_get_str(const lm_gguf *g, const char *key, lm_gguf_str *out)
{
	const lm_gguf_kv *kv = lm_gguf_find(g, key);

	if (kv == NULL || kv->type != LM_GGUF_STRING)
		return false;
	*out = kv->v.str;
	return true;
}

/* Decode element i of a scalar array into a temporary kv. */
static bool
arr_elem(const lm_gguf_kv *kv, uint64_t i, lm_gguf_kv *tmp)
{
	size_t		es;

	if (kv->type != LM_GGUF_ARRAY || i >= kv->arr_n)
		return false;
	es = lm_gguf_vtype_size(kv->arr_type);
	if (es == 0)
		return false;
	decode_scalar(kv->arr_type, kv->arr_data + i * es, tmp);
	return true;
}

/* Element i of an integer array as u64. */
bool
lm_gguf_arr_u64(const lm_gguf_kv *kv, uint64_t i, uint64_t *out)
{
	lm_gguf_kv	tmp;

	return arr_elem(kv, i, &tmp) && scalar_u64(kv->arr_type, &tmp, out);
}

/* Element i of an integer array as i64. */
bool
lm_gguf_arr_i64(const lm_gguf_kv *kv, uint64_t i, int64_t *out)
{
	lm_gguf_kv	tmp;

	return arr_elem(kv, i, &tmp) && scalar_i64(kv->arr_type, &tmp, out);
}

/* Element i of a numeric array as f64. */
bool
lm_gguf_arr_f64(const lm_gguf_kv *kv, uint64_t i, double *out)
{
	lm_gguf_kv	tmp;

	return arr_elem(kv, i, &tmp) && scalar_f64(kv->arr_type, &tmp, out);
}

/* Element i of a string array. */
bool
lm_gguf_arr_str(const lm_gguf *g, const lm_gguf_kv *kv, uint64_t i, lm_gguf_str *out)
{
	uint64_t	len;
	uint64_t	off;

	if (kv->type != LM_GGUF_ARRAY || kv->arr_type != LM_GGUF_STRING || kv->arr_str_off == NULL ||
		i >= kv->arr_n)
		return false;
	off = kv->arr_str_off[i];
	memcpy(&len, g->map + off, 8);
	out->ptr = (const char *) g->map + off + 8;
	out->len = len;
	return true;
}

/* Total parameter count. */
uint64_t
lm_gguf_param_count(const lm_gguf *g)
{
	uint64_t	n = 0;

	for (uint64_t i = 0; i < g->n_tensors; i++)
		n += g->tensors[i].n_elements;
	return n;
}
