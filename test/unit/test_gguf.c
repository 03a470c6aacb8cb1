/*
 * test_gguf.c — the GGUF reader: metadata of every type, tensor tables,
 * alignment, v2/v3, broken headers, files from test/gguf_writer.py, and the
 * real stories260K models in ../shared (those parts skip when absent).
 *
 * Small files are built here in C with a byte builder, so each test knows the
 * exact byte offset of the field it breaks and can check that the error
 * message names it.  The Python generator is exercised through system() for
 * the llama-tiny preset and its --break variants (skipped without python3).
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gguf.h"
#include "unit.h"

/* A growable byte buffer. */
typedef struct gbuf
{
	uint8_t    *p;				/* bytes */
	size_t		n;				/* used */
	size_t		cap;			/* allocated */
} gbuf;

/* Append n bytes. */
static void
put(gbuf *b, const void *src, size_t n)
{
	if (b->n + n > b->cap)
	{
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		if (b->p == NULL)
			abort();
	}
	memcpy(b->p + b->n, src, n);
	b->n += n;
}

/* Append little-endian integers of each width. */
static void put_u8(gbuf *b, uint8_t v) { put(b, &v, 1); }
static void put_u32(gbuf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(gbuf *b, uint64_t v) { put(b, &v, 8); }

/* Append a GGUF string. */
static void
put_str(gbuf *b, const char *s)
{
	put_u64(b, strlen(s));
	put(b, s, strlen(s));
}

/* Append zero bytes until the size is a multiple of a. */
static void
pad_to(gbuf *b, size_t a)
{
	while (b->n % a)
		put_u8(b, 0);
}

/* Start a header: magic, version, tensor and kv counts. */
static void
put_header(gbuf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
	put(b, "GGUF", 4);
	put_u32(b, version);
	put_u64(b, n_tensors);
	put_u64(b, n_kv);
}

/* Append a key and a scalar value of type t (size bytes at v). */
static void
put_kv(gbuf *b, const char *key, uint32_t t, const void *v, size_t size)
{
	put_str(b, key);
	put_u32(b, t);
	put(b, v, size);
}

/* Append a u32 key/value pair. */
static void
put_kv_u32(gbuf *b, const char *key, uint32_t v)
{
	put_kv(b, key, LM_GGUF_UINT32, &v, 4);
}

/* Append a tensor info; returns the byte offset where it starts. */
static size_t
put_tinfo(gbuf *b, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type, uint64_t off)
{
	size_t		at = b->n;

	put_str(b, name);
	put_u32(b, n_dims);
	for (uint32_t d = 0; d < n_dims; d++)
		put_u64(b, (uint64_t) ne[d]);
	put_u32(b, type);
	put_u64(b, off);
	return at;
}

/* Open a buffer; returns the result and leaves the message in err. */
static lm_gguf *
open_buf(const gbuf *b, char *err, size_t errlen)
{
	return lm_gguf_open_buffer(b->p, b->n, err, errlen);
}

/* True when msg contains "byte N" (or "bytes N") for the given N. */
static bool
msg_has_byte(const char *msg, uint64_t n)
{
	char		a[64];
	char		c[64];

	snprintf(a, sizeof(a), "byte %llu", (unsigned long long) n);
	snprintf(c, sizeof(c), "bytes %llu", (unsigned long long) n);
	for (const char *s = msg; (s = strstr(s, "byte")) != NULL; s++)
	{
		size_t		la = strlen(a),
					lc = strlen(c);

		if ((strncmp(s, a, la) == 0 && (s[la] < '0' || s[la] > '9')) ||
			(strncmp(s, c, lc) == 0 && (s[lc] < '0' || s[lc] > '9')))
			return true;
	}
	return false;
}

/*
 * Check that a broken image is rejected with a message that contains `word`
 * and "byte <at>"; frees the buffer.
 */
static void
expect_reject(gbuf *b, const char *what, const char *word, uint64_t at)
{
	char		err[512] = "";
	lm_gguf    *g = open_buf(b, err, sizeof(err));

	CHECK(g == NULL, "rejects %s", what);
	CHECK(err[0] != '\0' && strstr(err, word) != NULL && msg_has_byte(err, at),
		  "%s: message names it (\"%s\") at byte %llu: %s", what, word, (unsigned long long) at, err);
	lm_gguf_close(g);
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* ---- metadata of every type ---- */

/* Build a file with one key of every value type and two tensors. */
static void
build_all_types(gbuf *b, uint32_t version)
{
	uint8_t		u8 = 200;
	int8_t		i8 = -100;
	uint16_t	u16 = 60000;
	int16_t		i16 = -30000;
	uint32_t	u32 = 4000000000u;
	int32_t		i32 = -2000000000;
	float		f32 = 1.5f;
	uint8_t		bo = 1;
	uint64_t	u64 = (1ULL << 63) + 5;
	int64_t		i64 = -(1LL << 62) - 3;
	double		f64 = 0.1;
	uint64_t	big = (1ULL << 53) + 1;
	int64_t		ne[2] = {8, 2};

	put_header(b, version, 2, 20);
	put_kv(b, "t.u8", LM_GGUF_UINT8, &u8, 1);
	put_kv(b, "t.i8", LM_GGUF_INT8, &i8, 1);
	put_kv(b, "t.u16", LM_GGUF_UINT16, &u16, 2);
	put_kv(b, "t.i16", LM_GGUF_INT16, &i16, 2);
	put_kv(b, "t.u32", LM_GGUF_UINT32, &u32, 4);
	put_kv(b, "t.i32", LM_GGUF_INT32, &i32, 4);
	put_kv(b, "t.f32", LM_GGUF_FLOAT32, &f32, 4);
	put_kv(b, "t.bool", LM_GGUF_BOOL, &bo, 1);
	put_str(b, "t.str");
	put_u32(b, LM_GGUF_STRING);
	put_str(b, "héllo");
	put_kv(b, "t.u64", LM_GGUF_UINT64, &u64, 8);
	put_kv(b, "t.i64", LM_GGUF_INT64, &i64, 8);
	put_kv(b, "t.f64", LM_GGUF_FLOAT64, &f64, 8);
	put_kv(b, "t.big", LM_GGUF_UINT64, &big, 8);
	/* i32 array [-1, 2, 2147483647] */
	put_str(b, "t.arr_i32");
	put_u32(b, LM_GGUF_ARRAY);
	put_u32(b, LM_GGUF_INT32);
	put_u64(b, 3);
	put_u32(b, (uint32_t) -1);
	put_u32(b, 2);
	put_u32(b, 2147483647u);
	/* f32 array [0.25, -3] */
	put_str(b, "t.arr_f32");
	put_u32(b, LM_GGUF_ARRAY);
	put_u32(b, LM_GGUF_FLOAT32);
	put_u64(b, 2);
	f32 = 0.25f;
	put(b, &f32, 4);
	f32 = -3.0f;
	put(b, &f32, 4);
	/* string array ["a", "", "xyz"] */
	put_str(b, "t.arr_str");
	put_u32(b, LM_GGUF_ARRAY);
	put_u32(b, LM_GGUF_STRING);
	put_u64(b, 3);
	put_str(b, "a");
	put_str(b, "");
	put_str(b, "xyz");
	/* nested: [[u8 1, 2], [string "q"], []] */
	put_str(b, "t.arr_arr");
	put_u32(b, LM_GGUF_ARRAY);
	put_u32(b, LM_GGUF_ARRAY);
	put_u64(b, 3);
	put_u32(b, LM_GGUF_UINT8);
	put_u64(b, 2);
	put_u8(b, 1);
	put_u8(b, 2);
	put_u32(b, LM_GGUF_STRING);
	put_u64(b, 1);
	put_str(b, "q");
	put_u32(b, LM_GGUF_INT64);
	put_u64(b, 0);
	/* empty u64 array */
	put_str(b, "t.arr_empty");
	put_u32(b, LM_GGUF_ARRAY);
	put_u32(b, LM_GGUF_UINT64);
	put_u64(b, 0);
	/* u64 array [2^63 + 1] */
	put_str(b, "t.arr_u64");
	put_u32(b, LM_GGUF_ARRAY);
	put_u32(b, LM_GGUF_UINT64);
	put_u64(b, 1);
	put_u64(b, (1ULL << 63) + 1);
	put_kv_u32(b, "general.alignment", 32);
	put_tinfo(b, "a", 2, ne, LM_TYPE_F32, 0);
	put_tinfo(b, "b", 1, ne, LM_TYPE_F16, 64);
	pad_to(b, 32);
	for (int i = 0; i < 64 + 16; i++)
		put_u8(b, (uint8_t) i);
	pad_to(b, 32);
}

/* Check every getter on the all-types file. */
static void
test_all_types(uint32_t version)
{
	gbuf		b = {0};
	char		err[256] = "";
	lm_gguf    *g;
	uint64_t	u;
	int64_t		i;
	double		f;
	bool		bo;
	lm_gguf_str s;
	const lm_gguf_kv *kv;

	build_all_types(&b, version);
	g = open_buf(&b, err, sizeof(err));
	CHECK(g != NULL, "v%u file with every value type opens (%s)", version, err);
	if (g == NULL)
	{
		free(b.p);
		return;
	}
	CHECK(g->version == version && g->n_kv == 20 && g->n_tensors == 2 && g->file_size == b.n,
		  "v%u: version, counts and size read back", version);
	CHECK(lm_gguf_get_u64(g, "t.u8", &u) && u == 200, "u8 reads as 200");
	CHECK(lm_gguf_get_i64(g, "t.i8", &i) && i == -100, "i8 reads as -100 (sign-extended)");
	CHECK(!lm_gguf_get_u64(g, "t.i8", &u), "negative i8 does not convert to u64");
	CHECK(lm_gguf_get_u64(g, "t.u16", &u) && u == 60000, "u16 reads as 60000");
	CHECK(lm_gguf_get_i64(g, "t.i16", &i) && i == -30000, "i16 reads as -30000");
	CHECK(lm_gguf_get_u64(g, "t.u32", &u) && u == 4000000000u, "u32 reads as 4000000000");
	CHECK(lm_gguf_get_i64(g, "t.u32", &i) && i == 4000000000LL, "u32 converts to i64");
	CHECK(lm_gguf_get_i64(g, "t.i32", &i) && i == -2000000000, "i32 reads as -2000000000");
	CHECK(lm_gguf_get_f64(g, "t.f32", &f) && f == 1.5, "f32 reads as 1.5");
	CHECK(!lm_gguf_get_u64(g, "t.f32", &u), "f32 does not convert to u64");
	CHECK(lm_gguf_get_bool(g, "t.bool", &bo) && bo, "bool reads as true");
	CHECK(!lm_gguf_get_bool(g, "t.u8", &bo), "u8 is not a bool");
	CHECK(lm_gguf_get_str(g, "t.str", &s) && lm_gguf_str_eq(s, "héllo"), "string reads back (UTF-8)");
	CHECK(!lm_gguf_get_str(g, "t.u32", &s), "u32 is not a string");
	CHECK(!lm_gguf_get_u64(g, "t.str", &u), "string is not an integer");
	CHECK(lm_gguf_get_u64(g, "t.u64", &u) && u == (1ULL << 63) + 5, "u64 above 2^63 reads back");
	CHECK(!lm_gguf_get_i64(g, "t.u64", &i), "u64 above 2^63 does not convert to i64");
	CHECK(lm_gguf_get_i64(g, "t.i64", &i) && i == -(1LL << 62) - 3, "i64 reads back");
	CHECK(lm_gguf_get_f64(g, "t.f64", &f) && f == 0.1, "f64 reads as 0.1 exactly");
	CHECK(!lm_gguf_get_f64(g, "t.big", &f),
		  "u64 2^53+1 is not converted to f64 (the header promises conversion without loss)");
	CHECK(!lm_gguf_get_u64(g, "t.missing", &u) && lm_gguf_find(g, "t.missing") == NULL,
		  "missing key: find NULL, getter false");
	CHECK(!lm_gguf_get_u64(g, "t.u", &u) && !lm_gguf_get_u64(g, "t.u88", &u),
		  "prefix and extension of a key do not match");

	kv = lm_gguf_find(g, "t.arr_i32");
	CHECK(kv && kv->type == LM_GGUF_ARRAY && kv->arr_type == LM_GGUF_INT32 && kv->arr_n == 3,
		  "i32 array: type and count");
	CHECK(kv && lm_gguf_arr_i64(kv, 0, &i) && i == -1 && lm_gguf_arr_i64(kv, 2, &i) && i == 2147483647,
		  "i32 array elements read back");
	CHECK(kv && !lm_gguf_arr_u64(kv, 0, &u) && lm_gguf_arr_u64(kv, 1, &u) && u == 2,
		  "i32 array: -1 is not a u64, 2 is");
	CHECK(kv && !lm_gguf_arr_i64(kv, 3, &i), "i32 array: index 3 is out of range");
	CHECK(kv && (const uint8_t *) kv->arr_data > g->map && kv->arr_data + 12 <= g->map + g->file_size,
		  "array data points into the image");
	kv = lm_gguf_find(g, "t.arr_f32");
	CHECK(kv && lm_gguf_arr_f64(kv, 0, &f) && f == 0.25 && lm_gguf_arr_f64(kv, 1, &f) && f == -3.0,
		  "f32 array elements read back");
	CHECK(kv && !lm_gguf_arr_i64(kv, 0, &i), "f32 array element is not an integer");
	kv = lm_gguf_find(g, "t.arr_str");
	CHECK(kv && kv->arr_type == LM_GGUF_STRING && kv->arr_n == 3, "string array: type and count");
	CHECK(kv && lm_gguf_arr_str(g, kv, 0, &s) && lm_gguf_str_eq(s, "a") &&
		  lm_gguf_arr_str(g, kv, 1, &s) && s.len == 0 &&
		  lm_gguf_arr_str(g, kv, 2, &s) && lm_gguf_str_eq(s, "xyz"),
		  "string array elements indexed (including an empty one)");
	CHECK(kv && !lm_gguf_arr_str(g, kv, 3, &s), "string array: index 3 is out of range");
	CHECK(kv && !lm_gguf_arr_u64(kv, 0, &u), "string array element is not a number");
	CHECK(!lm_gguf_arr_str(g, lm_gguf_find(g, "t.arr_i32"), 0, &s), "i32 array has no string elements");
	kv = lm_gguf_find(g, "t.arr_arr");
	CHECK(kv && kv->arr_type == LM_GGUF_ARRAY && kv->arr_n == 3, "nested array: outer type and count");
	CHECK(kv && !lm_gguf_arr_u64(kv, 0, &u) && !lm_gguf_arr_str(g, kv, 0, &s),
		  "nested array elements are not scalars or strings");
	kv = lm_gguf_find(g, "t.arr_empty");
	CHECK(kv && kv->arr_n == 0 && !lm_gguf_arr_u64(kv, 0, &u), "empty array: count 0, no element 0");
	kv = lm_gguf_find(g, "t.arr_u64");
	CHECK(kv && lm_gguf_arr_u64(kv, 0, &u) && u == (1ULL << 63) + 1 && !lm_gguf_arr_i64(kv, 0, &i),
		  "u64 array element above 2^63: u64 yes, i64 no");
	kv = lm_gguf_find(g, "t.u8");
	CHECK(kv && kv->offset == 24 && lm_gguf_str_eq(kv->key, "t.u8"), "first key's file offset is 24");
	CHECK(!lm_gguf_arr_u64(kv, 0, &u), "a scalar is not an array");
	CHECK(lm_gguf_vtype_size(LM_GGUF_UINT16) == 2 && lm_gguf_vtype_size(LM_GGUF_FLOAT64) == 8 &&
		  lm_gguf_vtype_size(LM_GGUF_STRING) == 0 && lm_gguf_vtype_size(LM_GGUF_ARRAY) == 0,
		  "value type sizes");
	CHECK(strcmp(lm_gguf_vtype_name(LM_GGUF_STRING), "string") == 0 &&
		  strcmp(lm_gguf_vtype_name(LM_GGUF_UINT32), "u32") == 0 &&
		  lm_gguf_vtype_name(99) != NULL, "value type names (and unknown ids do not crash)");
	CHECK(lm_gguf_param_count(g) == 16 + 8, "param count sums tensor elements");
	lm_gguf_close(g);
	free(b.p);
}

/* A bool array holding 2 is as invalid as a bool scalar holding 2. */
static void
test_bool_array(void)
{
	gbuf		b = {0};
	char		err[256] = "";
	lm_gguf    *g;

	put_header(&b, 3, 0, 1);
	put_str(&b, "bools");
	put_u32(&b, LM_GGUF_ARRAY);
	put_u32(&b, LM_GGUF_BOOL);
	put_u64(&b, 2);
	put_u8(&b, 1);
	put_u8(&b, 2);
	g = open_buf(&b, err, sizeof(err));
	CHECK(g == NULL && strstr(err, "byte") != NULL,
		  "bool array element 2 is rejected like a bool scalar 2: %s", err);
	lm_gguf_close(g);
	free(b.p);
}

/* ---- tensor table ---- */

/* Tensors of several types and ranks with alignment 64. */
static void
test_tensor_table(uint32_t alignment)
{
	gbuf		b = {0};
	char		err[256] = "";
	lm_gguf    *g;
	static const struct
	{
		const char *name;
		uint32_t	n_dims;
		int64_t		ne[4];
		uint32_t	type;
		uint64_t	n_bytes;
	}			ts[] = {
		{"f32.2d", 2, {8, 3, 1, 1}, LM_TYPE_F32, 96},
		{"q4_0", 2, {64, 2, 1, 1}, LM_TYPE_Q4_0, 4 * 18},
		{"q8_0.1d", 1, {32, 1, 1, 1}, LM_TYPE_Q8_0, 34},
		{"f16.3d", 3, {5, 2, 3, 1}, LM_TYPE_F16, 60},
		{"q6_k.4d", 4, {256, 1, 2, 1}, LM_TYPE_Q6_K, 2 * 210},
		{"bf16", 1, {7, 1, 1, 1}, LM_TYPE_BF16, 14},
		{"q4_k", 2, {512, 1, 1, 1}, LM_TYPE_Q4_K, 288},
		{"mxfp4", 1, {32, 1, 1, 1}, LM_TYPE_MXFP4, 17},
	};
	size_t		nt = sizeof(ts) / sizeof(ts[0]);
	uint64_t	offs[8];
	uint64_t	off = 0;
	uint64_t	params = 0;
	size_t		base;

	put_header(&b, 3, nt, alignment ? 2 : 1);
	put_kv_u32(&b, "general.architecture.len", 3);
	if (alignment)
		put_kv_u32(&b, "general.alignment", alignment);
	for (size_t i = 0; i < nt; i++)
	{
		offs[i] = off;
		put_tinfo(&b, ts[i].name, ts[i].n_dims, ts[i].ne, ts[i].type, off);
		off += ts[i].n_bytes;
		off = (off + (alignment ? alignment : 32) - 1) / (alignment ? alignment : 32) * (alignment ? alignment : 32);
	}
	pad_to(&b, alignment ? alignment : 32);
	base = b.n;
	for (size_t i = 0; i < nt; i++)
	{
		while (b.n < base + offs[i])
			put_u8(&b, 0);
		for (uint64_t k = 0; k < ts[i].n_bytes; k++)
			put_u8(&b, (uint8_t) (i + 1));
	}
	g = open_buf(&b, err, sizeof(err));
	CHECK(g != NULL, "alignment %u: table of 8 tensors opens (%s)", alignment, err);
	if (g == NULL)
	{
		free(b.p);
		return;
	}
	CHECK(g->alignment == (alignment ? alignment : 32) && g->data_offset == base && base % g->alignment == 0,
		  "alignment %u: data section starts at the next multiple (%llu)", g->alignment,
		  (unsigned long long) g->data_offset);
	CHECK(g->n_tensors == nt, "tensor count");
	for (size_t i = 0; i < nt && i < g->n_tensors; i++)
	{
		const lm_gguf_tensor *t = &g->tensors[i];
		uint64_t	nel = 1;
		bool		ok;

		for (int d = 0; d < 4; d++)
			nel *= (uint64_t) ts[i].ne[d];
		params += nel;
		ok = lm_gguf_str_eq(t->name, ts[i].name) && t->n_dims == ts[i].n_dims && t->type == ts[i].type &&
			t->offset == offs[i] && t->n_bytes == ts[i].n_bytes && t->n_elements == nel;
		for (int d = 0; d < 4; d++)
			ok = ok && t->ne[d] == ts[i].ne[d];
		CHECK(ok, "tensor %s: name, n_dims, ne (unused = 1), type, offset, n_elements, n_bytes", ts[i].name);
		CHECK(t->data == g->map + g->data_offset + t->offset &&
			  ((const uint8_t *) t->data)[0] == i + 1 &&
			  ((const uint8_t *) t->data)[t->n_bytes - 1] == i + 1,
			  "tensor %s: data pointer = map + data_offset + offset, first and last byte are its own",
			  ts[i].name);
		CHECK(lm_gguf_find_tensor(g, ts[i].name) == t, "find_tensor(%s) returns it", ts[i].name);
	}
	CHECK(lm_gguf_find_tensor(g, "q4") == NULL && lm_gguf_find_tensor(g, "") == NULL,
		  "find_tensor of a prefix or empty name is NULL");
	CHECK(lm_gguf_param_count(g) == params, "param count = %llu", (unsigned long long) params);
	lm_gguf_close(g);
	free(b.p);
}

/* True when lm_gguf_close(NULL) returns normally in a child process. */
static bool
survives_close_null(void)
{
	int			status;
	pid_t		pid = fork();

	if (pid == 0)
	{
		lm_gguf_close(NULL);
		_exit(0);
	}
	return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* A header with no tensors and no keys is a valid (empty) file. */
static void
test_empty_file(void)
{
	gbuf		b = {0};
	char		err[256] = "";
	lm_gguf    *g;

	put_header(&b, 3, 0, 0);
	g = open_buf(&b, err, sizeof(err));
	CHECK(g != NULL && g->n_tensors == 0 && g->n_kv == 0 && lm_gguf_param_count(g) == 0 &&
		  lm_gguf_find(g, "x") == NULL && lm_gguf_find_tensor(g, "x") == NULL,
		  "24-byte header with no tensors and no keys opens, finds nothing (%s)", err);
	lm_gguf_close(g);
	free(b.p);
	CHECK(survives_close_null(), "lm_gguf_close(NULL) returns normally");
}

/* ---- broken headers, each with the offset of its bad field ---- */

/* A minimal valid prefix: header with n tensors and k keys. */
static void
start(gbuf *b, uint64_t nt, uint64_t nkv)
{
	memset(b, 0, sizeof(*b));
	put_header(b, 3, nt, nkv);
}

/* Finish a file with one F32 [8] tensor's worth of data (32 bytes) per tensor. */
static void
finish_data(gbuf *b, int n)
{
	pad_to(b, 32);
	for (int i = 0; i < n * 32; i++)
		put_u8(b, 0x3f);
}

/* Every broken variant built in C. */
static void
test_broken(void)
{
	gbuf		b;
	int64_t		ne8[1] = {8};
	int64_t		ne[5] = {8, 1, 1, 1, 1};
	size_t		at;
	uint8_t		two = 2;

	start(&b, 0, 0);
	memcpy(b.p, "GGUX", 4);
	expect_reject(&b, "bad magic", "GGUF", 0);

	start(&b, 0, 0);
	b.p[4] = 1;
	expect_reject(&b, "version 1", "version", 4);
	start(&b, 0, 0);
	b.p[4] = 4;
	expect_reject(&b, "version 4", "version", 4);
	start(&b, 0, 0);
	b.p[4] = 0;
	b.p[7] = 3;
	expect_reject(&b, "big-endian version 3", "endian", 4);

	start(&b, 1ULL << 60, 0);
	expect_reject(&b, "tensor count 2^60", "tensor count", 8);
	start(&b, 0, 1ULL << 60);
	expect_reject(&b, "kv count 2^60", "metadata count", 16);
	start(&b, 0, 3);
	put_kv_u32(&b, "a", 1);
	expect_reject(&b, "kv count 3 with one key present", "metadata count", 16);

	start(&b, 0, 1);
	put_u64(&b, 1ULL << 40);
	put(&b, "abcdefgh", 8);
	expect_reject(&b, "key length 2^40 past EOF", "past the end", 24);

	start(&b, 0, 1);
	put_str(&b, "k");
	put_u32(&b, LM_GGUF_STRING);
	put_u64(&b, 100);
	put(&b, "short", 5);
	expect_reject(&b, "string value length past EOF", "past the end", 24 + 9 + 4);

	start(&b, 0, 1);
	put_str(&b, "k");
	put_u32(&b, LM_GGUF_ARRAY);
	put_u32(&b, LM_GGUF_UINT32);
	put_u64(&b, 1ULL << 61);
	put_u64(&b, 0);
	expect_reject(&b, "u32 array count 2^61", "array", 24 + 9 + 4 + 4 + 8);

	start(&b, 0, 1);
	put_str(&b, "k");
	put_u32(&b, LM_GGUF_ARRAY);
	put_u32(&b, LM_GGUF_STRING);
	put_u64(&b, 1000);
	put_str(&b, "one");
	expect_reject(&b, "string array count 1000 with one string", "array", 24 + 9 + 4 + 4 + 8);

	start(&b, 0, 1);
	put_str(&b, "k");
	put_u32(&b, LM_GGUF_ARRAY);
	put_u32(&b, LM_GGUF_STRING);
	put_u64(&b, 2);
	put_str(&b, "one");
	put_u64(&b, 50);
	put(&b, "two", 3);
	expect_reject(&b, "second string of a string array runs past EOF", "past the end",
				  24 + 9 + 4 + 4 + 8 + 11);

	start(&b, 0, 1);
	put_str(&b, "k");
	put_u32(&b, LM_GGUF_ARRAY);
	put_u32(&b, LM_GGUF_ARRAY);
	put_u64(&b, 1);
	put_u32(&b, LM_GGUF_UINT64);
	put_u64(&b, 5);
	put_u64(&b, 0);
	expect_reject(&b, "nested array whose inner count runs past EOF", "array", 24 + 9 + 4 + 4 + 8 + 12);

	start(&b, 0, 1);
	put_str(&b, "k");
	put_u32(&b, LM_GGUF_ARRAY);
	put_u32(&b, LM_GGUF_ARRAY);
	put_u64(&b, 1);
	put_u32(&b, 77);
	put_u64(&b, 0);
	expect_reject(&b, "nested array with unknown element type 77", "unknown value type", 24 + 9 + 4 + 4 + 8);

	start(&b, 0, 1);
	put_str(&b, "k");
	put_u32(&b, LM_GGUF_ARRAY);
	for (int d = 0; d < 12; d++)
	{
		put_u32(&b, LM_GGUF_ARRAY);
		put_u64(&b, 1);
	}
	put_u32(&b, LM_GGUF_UINT8);
	put_u64(&b, 0);
	{
		char		err[256] = "";
		lm_gguf    *g = open_buf(&b, err, sizeof(err));

		CHECK(g == NULL && strstr(err, "nested") && strstr(err, "byte"),
			  "arrays nested 12 deep are rejected: %s", err);
		lm_gguf_close(g);
		free(b.p);
	}

	start(&b, 0, 1);
	put_str(&b, "k");
	put_u32(&b, 13);
	put_u64(&b, 0);
	expect_reject(&b, "value type 13", "unknown value type", 24 + 9);

	start(&b, 0, 1);
	put_str(&b, "k");
	put_u32(&b, LM_GGUF_ARRAY);
	put_u32(&b, 0xffffffffu);
	put_u64(&b, 0);
	expect_reject(&b, "array element type 2^32-1", "unknown value type", 24 + 9 + 4);

	start(&b, 0, 1);
	put_kv(&b, "flag", LM_GGUF_BOOL, &two, 1);
	expect_reject(&b, "bool value 2", "0 or 1", 24 + 12 + 4);

	start(&b, 0, 1);
	put_kv_u32(&b, "", 1);
	expect_reject(&b, "empty key", "empty", 24);

	start(&b, 0, 1);
	put_u64(&b, 3);
	put(&b, "a\0b", 3);
	put_u32(&b, LM_GGUF_UINT8);
	put_u8(&b, 0);
	expect_reject(&b, "key with a NUL byte", "NUL", 24);

	start(&b, 0, 3);
	put_kv_u32(&b, "a.b", 1);
	put_kv_u32(&b, "c", 1);
	at = b.n;
	put_kv_u32(&b, "a.b", 2);
	expect_reject(&b, "duplicate key", "twice", at);

	start(&b, 0, 1);
	put_kv_u32(&b, "general.alignment", 0);
	expect_reject(&b, "alignment 0", "alignment", 24);
	start(&b, 0, 1);
	put_kv_u32(&b, "general.alignment", 48);
	expect_reject(&b, "alignment 48 (not a power of two)", "power of two", 24);
	start(&b, 0, 2);
	put_kv_u32(&b, "x", 48);
	at = b.n;
	put_kv_u32(&b, "general.alignment", 1u << 30);
	expect_reject(&b, "alignment 2^30", "alignment", at);
	start(&b, 0, 1);
	{
		uint64_t	a64 = 32;

		put_kv(&b, "general.alignment", LM_GGUF_UINT64, &a64, 8);
	}
	expect_reject(&b, "alignment of type u64", "u32", 24);
	start(&b, 0, 1);
	put_str(&b, "general.alignment");
	put_u32(&b, LM_GGUF_STRING);
	put_str(&b, "32");
	expect_reject(&b, "alignment of type string", "type", 24);

	/* tensor infos */
	start(&b, 1, 0);
	at = put_tinfo(&b, "t", 0, ne, LM_TYPE_F32, 0);
	finish_data(&b, 1);
	expect_reject(&b, "n_dims 0", "dimensions", at);
	start(&b, 1, 0);
	at = put_tinfo(&b, "t", 5, ne, LM_TYPE_F32, 0);
	finish_data(&b, 1);
	expect_reject(&b, "n_dims 5", "dimensions", at);
	{
		int64_t		z[2] = {8, 0};

		start(&b, 1, 0);
		at = put_tinfo(&b, "t", 2, z, LM_TYPE_F32, 0);
		finish_data(&b, 1);
		expect_reject(&b, "dimension 0", "dimension 1", at + 9 + 4 + 8);
	}
	{
		int64_t		z[2] = {8, -1};

		start(&b, 1, 0);
		at = put_tinfo(&b, "t", 2, z, LM_TYPE_F32, 0);
		finish_data(&b, 1);
		expect_reject(&b, "dimension -1", "dimension 1", at + 9 + 4 + 8);
	}
	{
		int64_t		z[4] = {1LL << 32, 1LL << 32, 1LL << 32, 1LL << 32};

		start(&b, 1, 0);
		at = put_tinfo(&b, "t", 4, z, LM_TYPE_F32, 0);
		finish_data(&b, 1);
		expect_reject(&b, "element count 2^128", "overflow", at);
	}
	{
		int64_t		z[2] = {1LL << 31, 1LL << 31};	/* 2^62 elements of 4 bytes */

		start(&b, 1, 0);
		at = put_tinfo(&b, "t", 2, z, LM_TYPE_F32, 0);
		finish_data(&b, 1);
		expect_reject(&b, "byte size 2^64", "overflow", at);
	}
	{
		int64_t		z[2] = {1LL << 31, 1LL << 30};	/* 2^61 F32 = 2^63 bytes, past EOF */

		start(&b, 1, 0);
		put_tinfo(&b, "t", 2, z, LM_TYPE_F32, 0);
		finish_data(&b, 1);
		{
			char		err[256] = "";
			lm_gguf    *g = open_buf(&b, err, sizeof(err));

			CHECK(g == NULL && strstr(err, "byte") != NULL, "2^63-byte tensor is rejected: %s", err);
			lm_gguf_close(g);
			free(b.p);
		}
	}
	start(&b, 1, 0);
	at = put_tinfo(&b, "t", 1, ne8, 99, 0);
	finish_data(&b, 1);
	expect_reject(&b, "tensor type 99", "unknown type", at + 9 + 4 + 8);
	start(&b, 1, 0);
	at = put_tinfo(&b, "t", 1, ne8, 4, 0);
	finish_data(&b, 1);
	expect_reject(&b, "retired tensor type 4", "unknown type", at + 9 + 4 + 8);
	{
		int64_t		z[2] = {48, 2};

		start(&b, 1, 0);
		at = put_tinfo(&b, "t", 2, z, LM_TYPE_Q4_0, 0);
		finish_data(&b, 4);
		expect_reject(&b, "Q4_0 with rows of 48", "multiple", at);
	}
	start(&b, 2, 0);
	put_tinfo(&b, "a", 1, ne8, LM_TYPE_F32, 0);
	put_tinfo(&b, "b", 1, ne8, LM_TYPE_F32, 48);
	finish_data(&b, 3);
	expect_reject(&b, "offset 48 with alignment 32", "alignment", 96 + 48);
	start(&b, 2, 0);
	put_tinfo(&b, "a", 1, ne8, LM_TYPE_F32, 0);
	put_tinfo(&b, "b", 1, ne8, LM_TYPE_F32, 1ULL << 40);
	finish_data(&b, 2);
	expect_reject(&b, "offset 2^40 past EOF", "truncated", 96 + (1ULL << 40));
	start(&b, 1, 0);
	put_tinfo(&b, "a", 1, ne8, LM_TYPE_F32, (uint64_t) -32);
	finish_data(&b, 1);
	{
		char		err[256] = "";
		lm_gguf    *g = open_buf(&b, err, sizeof(err));

		CHECK(g == NULL && strstr(err, "byte") != NULL, "offset 2^64-32 (wraps around) is rejected: %s", err);
		lm_gguf_close(g);
		free(b.p);
	}
	{
		int64_t		z[1] = {16};

		start(&b, 1, 0);
		put_tinfo(&b, "a", 1, z, LM_TYPE_F32, 0);
		finish_data(&b, 2);
		b.n -= 1;				/* 63 of the 64 data bytes */
		expect_reject(&b, "tensor data one byte short", "truncated", 64);
	}
	start(&b, 2, 0);
	put_tinfo(&b, "a", 1, ne, LM_TYPE_F32, 0);
	put_tinfo(&b, "b", 1, ne, LM_TYPE_F32, 0);
	finish_data(&b, 1);
	expect_reject(&b, "two tensors at offset 0", "overlap", 96);
	{
		int64_t		z[1] = {16};

		start(&b, 2, 0);
		put_tinfo(&b, "a", 1, z, LM_TYPE_F32, 32);
		put_tinfo(&b, "b", 1, ne8, LM_TYPE_F32, 64);
		finish_data(&b, 4);
		expect_reject(&b, "tensor [32,96) overlaps [64,96)", "overlap", 96 + 64);
	}
	start(&b, 3, 0);
	put_tinfo(&b, "a", 1, ne, LM_TYPE_F32, 0);
	put_tinfo(&b, "b", 1, ne, LM_TYPE_F32, 32);
	put_tinfo(&b, "a", 1, ne, LM_TYPE_F32, 64);
	finish_data(&b, 3);
	expect_reject(&b, "duplicate tensor name", "twice", 128);
	start(&b, 1, 0);
	at = put_tinfo(&b, "", 1, ne, LM_TYPE_F32, 0);
	finish_data(&b, 1);
	expect_reject(&b, "empty tensor name", "empty", at);
	{
		char		longname[300];

		memset(longname, 'x', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = '\0';
		start(&b, 1, 0);
		at = put_tinfo(&b, longname, 1, ne, LM_TYPE_F32, 0);
		finish_data(&b, 1);
		expect_reject(&b, "299-byte tensor name", "limit", at);
	}
	/* header claims a tensor but the file ends before the data section */
	start(&b, 1, 0);
	put_tinfo(&b, "a", 1, ne, LM_TYPE_F32, 0);
	expect_reject(&b, "file ends at the end of the tensor infos", "truncated", 64);
}

/* ---- lm_gguf_open on real files ---- */

/* Write bytes to a file. */
static bool
write_file(const char *path, const void *p, size_t n)
{
	FILE	   *f = fopen(path, "wb");
	bool		ok;

	if (f == NULL)
		return false;
	ok = fwrite(p, 1, n, f) == n;
	return fclose(f) == 0 && ok;
}

/* The mmap path: a good file, a missing file, a directory, a tiny file. */
static void
test_open_path(const char *dir)
{
	gbuf		b = {0};
	char		path[512];
	char		err[512] = "";
	lm_gguf    *g;

	build_all_types(&b, 3);
	snprintf(path, sizeof(path), "%s/all.gguf", dir);
	CHECK(write_file(path, b.p, b.n), "write %s", path);
	g = lm_gguf_open(path, err, sizeof(err));
	CHECK(g != NULL && g->owns_map && strcmp(g->path, path) == 0 && g->file_size == b.n &&
		  memcmp(g->map, b.p, b.n) == 0 && g->n_kv == 20,
		  "lm_gguf_open maps the file: path, size and bytes match (%s)", err);
	if (g)
		CHECK(g->tensors[1].data == g->map + g->data_offset + 64, "mapped tensor data pointer");
	lm_gguf_close(g);
	snprintf(path, sizeof(path), "%s/missing.gguf", dir);
	g = lm_gguf_open(path, err, sizeof(err));
	CHECK(g == NULL && strstr(err, "missing.gguf") != NULL, "missing file: NULL, message names it: %s", err);
	g = lm_gguf_open(dir, err, sizeof(err));
	CHECK(g == NULL && err[0] != '\0', "directory: NULL with a message: %s", err);
	snprintf(path, sizeof(path), "%s/tiny.gguf", dir);
	CHECK(write_file(path, "GGUF\3\0\0\0", 8), "write an 8-byte file");
	g = lm_gguf_open(path, err, sizeof(err));
	CHECK(g == NULL && strstr(err, "truncated") != NULL && strstr(err, "byte") != NULL,
		  "8-byte file: truncated: %s", err);
	snprintf(path, sizeof(path), "%s/empty.gguf", dir);
	CHECK(write_file(path, "", 0), "write an empty file");
	g = lm_gguf_open(path, err, sizeof(err));
	CHECK(g == NULL && err[0] != '\0', "empty file: NULL with a message: %s", err);
	{
		char		small[4];

		g = lm_gguf_open(path, small, sizeof(small));
		CHECK(g == NULL && strlen(small) == 3, "a 4-byte error buffer is filled and terminated");
		g = lm_gguf_open_buffer(b.p, 3, small, sizeof(small));
		CHECK(g == NULL && strlen(small) == 3, "open_buffer: 4-byte error buffer is terminated");
		g = lm_gguf_open_buffer(b.p, 3, NULL, 0);
		CHECK(g == NULL, "open_buffer with a NULL error buffer fails cleanly");
	}
	free(b.p);
}

/* ---- files written by test/gguf_writer.py ---- */

/* True when every fp16 scale field of every block of t is finite. */
static bool
scales_finite(const lm_gguf_tensor *t)
{
	const lm_type_traits *tr = lm_type_traits_get(t->type);
	int			off = -1;
	const uint8_t *p = t->data;

	switch (t->type)
	{
		case LM_TYPE_F16:
			for (uint64_t i = 0; i < t->n_bytes; i += 2)
				if (((p[i + 1] >> 2) & 0x1f) == 0x1f)
					return false;
			return true;
		case LM_TYPE_Q2_K:
			off = 80;
			break;
		case LM_TYPE_Q3_K:
			off = 108;
			break;
		case LM_TYPE_Q6_K:
			off = 208;
			break;
		case LM_TYPE_TQ2_0:
			off = 64;
			break;
		default:
			off = 0;			/* Q4_0..Q8_0, Q4_K, Q5_K, IQ4_XS: d first */
			break;
	}
	if (tr->block_size == 1)
		return true;
	for (uint64_t b = 0; b < t->n_bytes; b += tr->type_size)
		if (((p[b + off + 1] >> 2) & 0x1f) == 0x1f)
			return false;
	return true;
}

/* Run a shell command quietly; true on exit status 0. */
static bool
run(const char *cmd)
{
	char		full[2048];

	snprintf(full, sizeof(full), "%s >/dev/null 2>&1", cmd);
	return system(full) == 0;
}

/* llama-tiny models of every weight type and every --break variant. */
static void
test_generator(const char *dir)
{
	static const char *const wtypes[] = {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"};
	static const char *const ktypes[] = {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS", "TQ2_0"};
	char		cmd[1024];
	char		path[512];
	char		err[512];
	FILE	   *f;
	char		line[128];
	int			n_breaks = 0;

	if (!run("python3 -c 'import sys; sys.exit(sys.version_info < (3, 6))'"))
	{
		SKIP("python3 not available: generator tests skipped");
		return;
	}
	snprintf(path, sizeof(path), "%s/tiny.gguf", dir);
	for (size_t i = 0; i < sizeof(wtypes) / sizeof(wtypes[0]); i++)
	{
		lm_gguf    *g;
		uint32_t	want = 0;
		uint64_t	u;
		lm_gguf_str s;

		for (uint32_t t = 0; t < LM_TYPE_COUNT; t++)
			if (lm_type_traits_get(t) && strcmp(lm_type_name(t), wtypes[i]) == 0)
				want = t;
		snprintf(cmd, sizeof(cmd), "python3 test/gguf_writer.py %s --llama-tiny %s --seed %zu", path, wtypes[i], i);
		CHECK(run(cmd), "generator writes llama-tiny %s", wtypes[i]);
		g = lm_gguf_open(path, err, sizeof(err));
		CHECK(g != NULL, "llama-tiny %s opens (%s)", wtypes[i], g ? "" : err);
		if (g == NULL)
			continue;
		CHECK(g->n_tensors == 48 && lm_gguf_param_count(g) == 292800,
			  "llama-tiny %s: 48 tensors, 292800 params like stories260K", wtypes[i]);
		CHECK(lm_gguf_find_tensor(g, "blk.4.ffn_up.weight") &&
			  lm_gguf_find_tensor(g, "blk.4.ffn_up.weight")->type == want &&
			  lm_gguf_find_tensor(g, "output_norm.weight")->type == LM_TYPE_F32,
			  "llama-tiny %s: matrices are %s, norms F32", wtypes[i], wtypes[i]);
		{
			bool		fin = true;

			for (uint64_t k = 0; k < g->n_tensors; k++)
				fin = fin && scales_finite(&g->tensors[k]);
			CHECK(fin, "llama-tiny %s: every fp16 scale (or F16 value) is finite", wtypes[i]);
		}
		CHECK(lm_gguf_get_u64(g, "llama.block_count", &u) && u == 5 &&
			  lm_gguf_get_str(g, "general.architecture", &s) && lm_gguf_str_eq(s, "llama") &&
			  lm_gguf_find(g, "tokenizer.ggml.tokens") && lm_gguf_find(g, "tokenizer.ggml.tokens")->arr_n == 512,
			  "llama-tiny %s: llama keys and a 512-token vocab", wtypes[i]);
		lm_gguf_close(g);
	}
	for (size_t i = 0; i < sizeof(ktypes) / sizeof(ktypes[0]); i++)
	{
		lm_gguf    *g;

		snprintf(cmd, sizeof(cmd),
				 "python3 test/gguf_writer.py %s --llama-tiny %s --n-embd 256 --n-ff 512 --n-layer 1 "
				 "--n-vocab 300 --version 2 --alignment 64", path, ktypes[i]);
		CHECK(run(cmd), "generator writes a 256-wide v2 llama-tiny %s", ktypes[i]);
		g = lm_gguf_open(path, err, sizeof(err));
		CHECK(g != NULL && g->version == 2 && g->alignment == 64 &&
			  strcmp(lm_type_name(lm_gguf_find_tensor(g, "blk.0.attn_q.weight")->type), ktypes[i]) == 0 &&
			  strcmp(lm_type_name(lm_gguf_find_tensor(g, "blk.0.ffn_down.weight")->type), ktypes[i]) == 0,
			  "256-wide llama-tiny %s opens with %s matrices (%s)", ktypes[i], ktypes[i], g ? "" : err);
		if (g)
		{
			bool		fin = true;

			for (uint64_t k = 0; k < g->n_tensors; k++)
				fin = fin && scales_finite(&g->tensors[k]);
			CHECK(fin, "256-wide llama-tiny %s: every fp16 block scale is finite", ktypes[i]);
		}
		lm_gguf_close(g);
	}
	snprintf(cmd, sizeof(cmd),
			 "mkdir -p %s/breaks && python3 test/gguf_writer.py %s/breaks --all-breaks "
			 "--llama-tiny F32 --n-layer 1 --n-vocab 64 --zero", dir, dir);
	CHECK(run(cmd), "generator writes every --break variant");
	f = popen("python3 test/gguf_writer.py --list-breaks x", "r");
	CHECK(f != NULL, "generator lists its --break variants");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f))
	{
		lm_gguf    *g;

		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0')
			continue;
		snprintf(path, sizeof(path), "%s/breaks/%s.gguf", dir, line);
		err[0] = '\0';
		g = lm_gguf_open(path, err, sizeof(err));
		CHECK(g == NULL && strstr(err, "byte") != NULL,
			  "--break %s is rejected with a message that names a byte: %s", line, err);
		lm_gguf_close(g);
		n_breaks++;
	}
	CHECK(pclose(f) == 0 && n_breaks > 0, "the generator listed %d --break variants, each checked above", n_breaks);
}

/* ---- the real stories260K models ---- */

/* Compare one real model with its .header.json and README facts. */
static void
test_real_model(const char *dir, const char *file, uint32_t file_type)
{
	char		path[512];
	char		cmd[1536];
	char		err[512] = "";
	char		line[1024];
	lm_gguf    *g;
	FILE	   *f;
	int			n_tensor_lines = 0,
				n_tensor_ok = 0,
				n_tok_lines = 0,
				n_tok_ok = 0;
	uint64_t	u;
	double		d;
	lm_gguf_str s;
	const lm_gguf_kv *kv;
	bool		ok;

	snprintf(path, sizeof(path), "%s/models/%s", dir, file);
	if (!unit_readable(path))
	{
		SKIP("%s absent", file);
		return;
	}
	g = lm_gguf_open(path, err, sizeof(err));
	CHECK(g != NULL, "%s opens (%s)", file, err);
	if (g == NULL)
		return;
	CHECK(g->version == 3 && g->n_tensors == 48 && g->alignment == 32 &&
		  g->n_kv == (file_type ? 21u : 19u),
		  "%s: version 3, 48 tensors, alignment 32, %u kv", file, file_type ? 21 : 19);
	CHECK(g->data_offset == (file_type ? 14240u : 14176u), "%s: data starts at byte %llu", file,
		  (unsigned long long) g->data_offset);
	CHECK(lm_gguf_param_count(g) == 292800, "%s: 292800 parameters", file);
	CHECK(lm_gguf_get_str(g, "general.architecture", &s) && lm_gguf_str_eq(s, "llama") &&
		  lm_gguf_get_str(g, "general.name", &s) && lm_gguf_str_eq(s, "llama") &&
		  lm_gguf_get_str(g, "tokenizer.ggml.model", &s) && lm_gguf_str_eq(s, "llama"),
		  "%s: architecture, name and tokenizer model are \"llama\"", file);
	ok = lm_gguf_get_u64(g, "llama.embedding_length", &u) && u == 64;
	ok = ok && lm_gguf_get_u64(g, "llama.block_count", &u) && u == 5;
	ok = ok && lm_gguf_get_u64(g, "llama.attention.head_count", &u) && u == 8;
	ok = ok && lm_gguf_get_u64(g, "llama.attention.head_count_kv", &u) && u == 4;
	ok = ok && lm_gguf_get_u64(g, "llama.feed_forward_length", &u) && u == 172;
	ok = ok && lm_gguf_get_u64(g, "llama.context_length", &u) && u == 128;
	ok = ok && lm_gguf_get_u64(g, "llama.rope.dimension_count", &u) && u == 8;
	CHECK(ok, "%s: llama hyper-parameters 64/5/8/4/172/128/8", file);
	CHECK(lm_gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &d) && d == (double) 1e-5f &&
		  lm_gguf_find(g, "llama.attention.layer_norm_rms_epsilon")->type == LM_GGUF_FLOAT32,
		  "%s: rms epsilon is f32 1e-5", file);
	CHECK(lm_gguf_find(g, "llama.rope.freq_base") == NULL, "%s: no rope.freq_base", file);
	ok = lm_gguf_get_u64(g, "tokenizer.ggml.bos_token_id", &u) && u == 1;
	ok = ok && lm_gguf_get_u64(g, "tokenizer.ggml.eos_token_id", &u) && u == 2;
	ok = ok && lm_gguf_get_u64(g, "tokenizer.ggml.unknown_token_id", &u) && u == 0;
	ok = ok && lm_gguf_get_u64(g, "tokenizer.ggml.seperator_token_id", &u) && u == 4294967295u;
	ok = ok && lm_gguf_get_u64(g, "tokenizer.ggml.padding_token_id", &u) && u == 4294967295u;
	CHECK(ok, "%s: special token ids 1/2/0 and 4294967295 for separator/padding", file);
	if (file_type)
		CHECK(lm_gguf_get_u64(g, "general.file_type", &u) && u == file_type &&
			  lm_gguf_get_u64(g, "general.quantization_version", &u) && u == 2,
			  "%s: file_type %u, quantization_version 2", file, file_type);
	else
		CHECK(lm_gguf_find(g, "general.file_type") == NULL && lm_gguf_find(g, "general.alignment") == NULL,
			  "%s: no file_type or alignment key", file);
	kv = lm_gguf_find(g, "tokenizer.ggml.tokens");
	CHECK(kv && kv->arr_type == LM_GGUF_STRING && kv->arr_n == 512 &&
		  lm_gguf_arr_str(g, kv, 0, &s) && lm_gguf_str_eq(s, "<unk>") &&
		  lm_gguf_arr_str(g, kv, 3, &s) && lm_gguf_str_eq(s, "<0x00>") &&
		  lm_gguf_arr_str(g, kv, 258, &s) && lm_gguf_str_eq(s, "<0xFF>"),
		  "%s: 512 tokens, 0 = <unk>, 3 = <0x00>, 258 = <0xFF>", file);
	kv = lm_gguf_find(g, "tokenizer.ggml.token_type");
	ok = kv && kv->arr_type == LM_GGUF_INT32 && kv->arr_n == 512;
	{
		int64_t		t0,
					t1,
					t3,
					t300;

		ok = ok && lm_gguf_arr_i64(kv, 0, &t0) && lm_gguf_arr_i64(kv, 1, &t1) &&
			lm_gguf_arr_i64(kv, 3, &t3) && lm_gguf_arr_i64(kv, 300, &t300) &&
			t0 == 2 && t1 == 3 && t3 == 6 && t300 == 1;
	}
	CHECK(ok, "%s: token types 2, 3, 6, 1 at ids 0, 1, 3, 300", file);
	kv = lm_gguf_find(g, "tokenizer.ggml.scores");
	CHECK(kv && kv->arr_type == LM_GGUF_FLOAT32 && kv->arr_n == 512 && lm_gguf_arr_f64(kv, 0, &d) && d == 0.0,
		  "%s: 512 f32 scores", file);

	/* every tensor (and every token for the F32 file) against the JSON */
	snprintf(cmd, sizeof(cmd),
			 "python3 -c '\n"
			 "import json, sys\n"
			 "d = json.load(open(sys.argv[1]))\n"
			 "for t in d[\"tensors\"]:\n"
			 "    ne = t[\"ne\"] + [1] * (4 - len(t[\"ne\"]))\n"
			 "    print(\"T\", t[\"name\"], t[\"type_id\"], len(t[\"ne\"]), *ne, t[\"offset\"], t[\"nbytes\"], t[\"file_offset\"])\n"
			 "for kv in d[\"kv\"]:\n"
			 "    if kv[\"key\"] == \"tokenizer.ggml.tokens\":\n"
			 "        for i, s in enumerate(kv[\"value\"].get(\"values\", [])):\n"
			 "            print(\"S\", i, s.encode().hex() or \"-\")\n"
			 "' %s.header.json 2>/dev/null", path);
	f = popen(cmd, "r");
	while (f && fgets(line, sizeof(line), f))
	{
		char		name[256];
		char		hex[512];
		unsigned	type,
					nd;
		long long	ne[4];
		unsigned long long off,
					nb,
					foff;
		int			idx;

		if (sscanf(line, "T %255s %u %u %lld %lld %lld %lld %llu %llu %llu", name, &type, &nd,
				   &ne[0], &ne[1], &ne[2], &ne[3], &off, &nb, &foff) == 10)
		{
			const lm_gguf_tensor *t = lm_gguf_find_tensor(g, name);

			n_tensor_lines++;
			if (t && t->type == type && t->n_dims == nd && t->ne[0] == ne[0] && t->ne[1] == ne[1] &&
				t->ne[2] == ne[2] && t->ne[3] == ne[3] && t->offset == off && t->n_bytes == nb &&
				(const uint8_t *) t->data == g->map + foff && t == &g->tensors[n_tensor_lines - 1])
				n_tensor_ok++;
			else
				printf("# mismatch: %s", line);
		}
		else if (sscanf(line, "S %d %511s", &idx, hex) == 2)
		{
			char		want[256];
			size_t		n = 0;

			n_tok_lines++;
			if (strcmp(hex, "-") != 0)
				for (; hex[2 * n] && n < sizeof(want); n++)
					sscanf(hex + 2 * n, "%2hhx", (unsigned char *) &want[n]);
			kv = lm_gguf_find(g, "tokenizer.ggml.tokens");
			if (lm_gguf_arr_str(g, kv, (uint64_t) idx, &s) && s.len == n && memcmp(s.ptr, want, n) == 0)
				n_tok_ok++;
		}
	}
	if (f)
		pclose(f);
	if (n_tensor_lines == 0)
		SKIP("%s: header.json not readable with python3", file);
	else
		CHECK(n_tensor_lines == 48 && n_tensor_ok == 48,
			  "%s: all 48 tensors match the header.json in order: name, type, ne, offset, bytes, file offset (%d/%d)",
			  file, n_tensor_ok, n_tensor_lines);
	if (n_tok_lines)
		CHECK(n_tok_lines == 512 && n_tok_ok == 512, "%s: all 512 token strings match the header.json (%d)",
			  file, n_tok_ok);
	lm_gguf_close(g);
}

/* Run every group of checks. */
int
main(void)
{
	char		dir[] = "/tmp/test_gguf.XXXXXX";
	const char *shared = unit_shared_dir();
	char		cmd[600];

	if (mkdtemp(dir) == NULL)
	{
		perror("mkdtemp");
		return 1;
	}
	test_all_types(3);
	test_all_types(2);
	test_bool_array();
	test_tensor_table(0);
	test_tensor_table(64);
	test_tensor_table(1);
	test_empty_file();
	test_broken();
	test_open_path(dir);
	test_generator(dir);
	test_real_model(shared, "stories260K.gguf", 0);
	test_real_model(shared, "stories260K-Q8_0.gguf", 7);
	test_real_model(shared, "stories260K-Q4_0.gguf", 2);
	test_real_model(shared, "stories260K-Q4_K_M.gguf", 15);
	test_real_model(shared, "stories260K-Q6_K.gguf", 18);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	return unit_done();
}
