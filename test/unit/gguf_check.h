/*
 * gguf_check.h — walks an opened lm_gguf with every accessor and checks that
 * what the reader accepted is self-consistent: every string, array and
 * tensor lies inside the image, sizes follow from shapes and types, tensors
 * are aligned and disjoint, and lookups find what the tables hold.
 *
 * Shared by test_gguf_corrupt.c and test/fuzz/fuzz_gguf.c (header-only, so
 * each stays one translation unit).
 */
#ifndef LM_GGUF_CHECK_H
#define LM_GGUF_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "gguf.h"

/* True when [p, p+n) lies inside [lo, lo+size). */
static inline bool
gguf_check_inside(const void *p, uint64_t n, const uint8_t *lo, uint64_t size)
{
	const uint8_t *q = (const uint8_t *) p;

	return q >= lo && q <= lo + size && n <= (uint64_t) (lo + size - q);
}

/* Copy a mapped name into buf as a C string; false when it cannot be one. */
static inline bool
gguf_check_cstr(lm_gguf_str s, char *buf, size_t buflen)
{
	if (s.len >= buflen || memchr(s.ptr, '\0', s.len) != NULL)
		return false;
	memcpy(buf, s.ptr, s.len);
	buf[s.len] = '\0';
	return true;
}

/*
 * Walk g (opened from the image buf/size) through the public API; NULL when
 * everything is consistent, else a short description of the first problem.
 */
static inline const char *
gguf_check_consistent(const lm_gguf *g, const void *buf, uint64_t size)
{
	const uint8_t *lo = (const uint8_t *) buf;
	char		name[65536 + 1];
	uint64_t	params = 0;

	if (g->map != lo || g->file_size != size)
		return "map or file_size differs from the image";
	if (g->version != 2 && g->version != 3)
		return "version is not 2 or 3";
	if (g->alignment == 0 || (g->alignment & (g->alignment - 1)) != 0)
		return "alignment is not a power of two";
	if (g->data_offset > size || (g->n_tensors > 0 && g->data_offset % g->alignment != 0))
		return "data_offset outside the file or misaligned";
	for (uint64_t i = 0; i < g->n_kv; i++)
	{
		const lm_gguf_kv *kv = &g->kv[i];
		uint64_t	u;
		int64_t		s64;
		double		f;
		bool		b;
		lm_gguf_str s;

		if (kv->key.len == 0 || !gguf_check_inside(kv->key.ptr, kv->key.len, lo, size))
			return "key outside the image or empty";
		if (kv->offset >= size || kv->type >= LM_GGUF_VTYPE_COUNT)
			return "key offset or value type out of range";
		if (gguf_check_cstr(kv->key, name, sizeof(name)))
		{
			if (lm_gguf_find(g, name) != kv)
				return "lm_gguf_find does not return the key's own entry";
			/* every getter must answer without crashing; str only for strings */
			(void) lm_gguf_get_u64(g, name, &u);
			(void) lm_gguf_get_i64(g, name, &s64);
			(void) lm_gguf_get_f64(g, name, &f);
			(void) lm_gguf_get_bool(g, name, &b);
			if (lm_gguf_get_str(g, name, &s) != (kv->type == LM_GGUF_STRING))
				return "get_str answers for a non-string or fails for a string";
		}
		if (kv->type == LM_GGUF_STRING && !gguf_check_inside(kv->v.str.ptr, kv->v.str.len, lo, size))
			return "string value outside the image";
		if (kv->type == LM_GGUF_ARRAY)
		{
			size_t		es;

			if (kv->arr_type >= LM_GGUF_VTYPE_COUNT)
				return "array element type out of range";
			es = lm_gguf_vtype_size(kv->arr_type);
			if (es > 0)
			{
				if (kv->arr_n > size / es || !gguf_check_inside(kv->arr_data, kv->arr_n * es, lo, size))
					return "scalar array outside the image";
				/* a float reads as f64; any integer fits u64 or i64 */
				for (uint64_t j = 0; j < kv->arr_n; j++)
					if (!lm_gguf_arr_f64(kv, j, &f) && !lm_gguf_arr_u64(kv, j, &u) &&
						!lm_gguf_arr_i64(kv, j, &s64))
						return "numeric array element reads as neither f64, u64 nor i64";
				if (lm_gguf_arr_f64(kv, kv->arr_n, &f) || lm_gguf_arr_u64(kv, kv->arr_n, &u))
					return "numeric array reads past its count";
			}
			else if (kv->arr_type == LM_GGUF_STRING)
			{
				if (kv->arr_n > size / 8)
					return "string array count larger than the image";
				for (uint64_t j = 0; j < kv->arr_n; j++)
					if (!lm_gguf_arr_str(g, kv, j, &s) || !gguf_check_inside(s.ptr, s.len, lo, size))
						return "string array element missing or outside the image";
				if (lm_gguf_arr_str(g, kv, kv->arr_n, &s))
					return "string array reads past its count";
			}
			else if (!gguf_check_inside(kv->arr_data, 0, lo, size))
				return "nested array data outside the image";
		}
	}
	for (uint64_t i = 0; i < g->n_tensors; i++)
	{
		const lm_gguf_tensor *t = &g->tensors[i];
		const lm_type_traits *tr = lm_type_traits_get(t->type);
		uint64_t	n = 1;

		if (t->name.len == 0 || !gguf_check_inside(t->name.ptr, t->name.len, lo, size))
			return "tensor name outside the image or empty";
		if (t->n_dims < 1 || t->n_dims > LM_GGUF_MAX_DIMS || tr == NULL)
			return "tensor n_dims or type invalid";
		for (int d = 0; d < LM_GGUF_MAX_DIMS; d++)
		{
			if (t->ne[d] < 1 || (d >= (int) t->n_dims && t->ne[d] != 1))
				return "tensor dimension < 1, or unused dimension != 1";
			if ((uint64_t) t->ne[d] > UINT64_MAX / n)
				return "tensor element count overflows";
			n *= (uint64_t) t->ne[d];
		}
		if (n != t->n_elements || t->ne[0] % tr->block_size != 0 ||
			t->n_bytes != n / tr->block_size * tr->type_size)
			return "tensor n_elements or n_bytes does not follow from ne and type";
		if (t->offset % g->alignment != 0)
			return "tensor offset not aligned";
		if ((const uint8_t *) t->data != lo + g->data_offset + t->offset ||
			!gguf_check_inside(t->data, t->n_bytes, lo, size))
			return "tensor data pointer wrong or data outside the image";
		if (gguf_check_cstr(t->name, name, sizeof(name)) && lm_gguf_find_tensor(g, name) != t)
			return "lm_gguf_find_tensor does not return the tensor's own entry";
		params += n;
	}
	/* pairwise disjointness; headers that fit a fuzz input have few tensors */
	if (g->n_tensors <= 4096)
		for (uint64_t i = 0; i < g->n_tensors; i++)
			for (uint64_t j = i + 1; j < g->n_tensors; j++)
			{
				const lm_gguf_tensor *a = &g->tensors[i];
				const lm_gguf_tensor *b = &g->tensors[j];

				if (a->offset < b->offset + b->n_bytes && b->offset < a->offset + a->n_bytes)
					return "two tensors overlap";
				if (a->name.len == b->name.len && memcmp(a->name.ptr, b->name.ptr, a->name.len) == 0)
					return "two tensors share a name";
			}
	if (lm_gguf_param_count(g) != params)
		return "param count differs from the sum of n_elements";
	return NULL;
}

#endif							/* LM_GGUF_CHECK_H */
