/*
 * gguf.h — a validating reader for GGUF v2/v3 model files.
 *
 * lm_gguf_open() maps the file read-only (MAP_SHARED, so every process that
 * opens the same file shares its pages) under a SIGBUS guard (mapguard.h:
 * a file truncated while mapped reads as zeros and is reported by
 * lm_gguf_unchanged, instead of killing the process), walks the header once and checks
 * every count, length, type, shape, offset and size against the file before
 * returning.  Nothing in the header is copied except small index tables whose
 * size is bounded by the file size; strings and arrays point into the mapping.
 * Tensor data is never read here, so opening a 4 GB file touches only its
 * header pages.
 *
 * Errors: functions that can fail return NULL or false and write one line
 * into the caller's buffer, naming the problem and the byte offset.
 */
#ifndef LM_GGUF_H
#define LM_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor_types.h"

#define LM_GGUF_MAX_DIMS 4
#define LM_GGUF_DEFAULT_ALIGNMENT 32
#define LM_GGUF_MAX_KV (1u << 20)	/* sanity limits on header counts */
#define LM_GGUF_MAX_TENSORS (1u << 20)
#define LM_GGUF_MAX_NAME 256		/* longest tensor name accepted */
#define LM_GGUF_MAX_ARRAY_DEPTH 8	/* nesting of arrays in arrays */

/* Metadata value types as stored in the file. */
typedef enum lm_gguf_vtype
{
	LM_GGUF_UINT8 = 0,
	LM_GGUF_INT8 = 1,
	LM_GGUF_UINT16 = 2,
	LM_GGUF_INT16 = 3,
	LM_GGUF_UINT32 = 4,
	LM_GGUF_INT32 = 5,
	LM_GGUF_FLOAT32 = 6,
	LM_GGUF_BOOL = 7,
	LM_GGUF_STRING = 8,
	LM_GGUF_ARRAY = 9,
	LM_GGUF_UINT64 = 10,
	LM_GGUF_INT64 = 11,
	LM_GGUF_FLOAT64 = 12,
	LM_GGUF_VTYPE_COUNT = 13
} lm_gguf_vtype;

/* A string inside the mapping; not NUL-terminated. */
typedef struct lm_gguf_str
{
	const char *ptr;
	uint64_t	len;
} lm_gguf_str;

/* One metadata key/value pair. */
typedef struct lm_gguf_kv
{
	lm_gguf_str key;
	lm_gguf_vtype type;
	uint64_t	offset;			/* file offset of the key */
	union
	{
		uint64_t	u64;		/* UINT8..UINT64 and BOOL, zero-extended */
		int64_t		i64;		/* INT8..INT64, sign-extended */
		double		f64;		/* FLOAT32 and FLOAT64 */
		lm_gguf_str str;		/* STRING */
	}			v;
	/* ARRAY only: */
	lm_gguf_vtype arr_type;		/* element type (may itself be ARRAY) */
	uint64_t	arr_n;			/* element count */
	const uint8_t *arr_data;	/* first element, inside the mapping */
	uint64_t   *arr_str_off;	/* STRING arrays: file offset of each element */
} lm_gguf_kv;

/* One tensor's description. */
typedef struct lm_gguf_tensor
{
	lm_gguf_str name;
	uint32_t	n_dims;
	int64_t		ne[LM_GGUF_MAX_DIMS];	/* ggml order, fastest first; unused = 1 */
	lm_type		type;
	uint64_t	offset;			/* relative to the data section */
	uint64_t	n_elements;
	uint64_t	n_bytes;
	const void *data;			/* inside the mapping */
} lm_gguf_tensor;

/* An open, validated GGUF file. */
typedef struct lm_gguf
{
	char	   *path;
	const uint8_t *map;			/* whole file, read-only */
	bool		owns_map;		/* true when lm_gguf_open mapped it (unmap on close) */
	int			guard_slot;		/* mapguard slot of the mapping, -1 for a buffer */
	int			fd;				/* the mapped file, kept open to check it; -1 for a buffer */
	int64_t		mtime_sec;		/* the file's modification time when mapped */
	int64_t		mtime_nsec;
	uint64_t	file_size;
	uint32_t	version;
	uint32_t	alignment;
	uint64_t	data_offset;	/* file offset of the tensor data section */
	uint64_t	n_kv;
	lm_gguf_kv *kv;
	uint64_t	n_tensors;
	lm_gguf_tensor *tensors;
	uint32_t   *kv_hash;		/* open-addressing index of kv by key (slot = index + 1) */
	uint64_t	kv_hash_size;	/* slots, a power of two */
	uint32_t   *tensor_hash;	/* open-addressing index of tensors by name (slot = index + 1) */
	uint64_t	tensor_hash_size;	/* slots, a power of two */
} lm_gguf;

/* Open, map and validate a GGUF file; NULL with a message in err on failure. */
extern lm_gguf *lm_gguf_open(const char *path, char *err, size_t errlen);

/* Validate a GGUF image already in memory (not copied; must outlive the result). */
extern lm_gguf *lm_gguf_open_buffer(const void *buf, uint64_t size, char *err, size_t errlen);

/*
 * True when the mapped file is as it was at open: no read hit a page past a
 * shrunken end (mapguard.h) and its size and modification time are the
 * same.  Otherwise false with a message: what was read since the change may
 * be garbage, so the caller fails its call.  Always true for a buffer.
 */
extern bool lm_gguf_unchanged(const lm_gguf *g, char *err, size_t errlen);

/* True when a read hit a page past a shrunken end of the file (no system call). */
extern bool lm_gguf_damaged(const lm_gguf *g);

/* Unmap and free; NULL is allowed. */
extern void lm_gguf_close(lm_gguf *g);

/* Find a key; NULL if absent. */
extern const lm_gguf_kv *lm_gguf_find(const lm_gguf *g, const char *key);

/* Find a tensor by name; NULL if absent. */
extern const lm_gguf_tensor *lm_gguf_find_tensor(const lm_gguf *g, const char *name);

/* Typed getters: true and *out set when the key exists and converts without loss. */
extern bool lm_gguf_get_u64(const lm_gguf *g, const char *key, uint64_t *out);
extern bool lm_gguf_get_i64(const lm_gguf *g, const char *key, int64_t *out);
extern bool lm_gguf_get_f64(const lm_gguf *g, const char *key, double *out);
extern bool lm_gguf_get_bool(const lm_gguf *g, const char *key, bool *out);
extern bool lm_gguf_get_str(const lm_gguf *g, const char *key, lm_gguf_str *out);

/* Element i of an array of scalars, converted; false when out of range or not numeric. */
extern bool lm_gguf_arr_u64(const lm_gguf_kv *kv, uint64_t i, uint64_t *out);
extern bool lm_gguf_arr_i64(const lm_gguf_kv *kv, uint64_t i, int64_t *out);
extern bool lm_gguf_arr_f64(const lm_gguf_kv *kv, uint64_t i, double *out);

/* Element i of an array of strings; false when out of range or not a string array. */
extern bool lm_gguf_arr_str(const lm_gguf *g, const lm_gguf_kv *kv, uint64_t i, lm_gguf_str *out);

/* Byte size of one value of a scalar type (0 for STRING and ARRAY). */
extern size_t lm_gguf_vtype_size(lm_gguf_vtype t);

/* Name of a value type ("u32", "string", "array", ...). */
extern const char *lm_gguf_vtype_name(uint32_t t);

/* True when a mapped string equals a C string. */
extern bool lm_gguf_str_eq(lm_gguf_str s, const char *c);

/* Total parameter count (sum of n_elements over tensors). */
extern uint64_t lm_gguf_param_count(const lm_gguf *g);

#endif							/* LM_GGUF_H */
