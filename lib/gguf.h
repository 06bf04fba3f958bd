/* gguf: reads GGUF v2/v3 model files through mmap, checking every length,
 * count, offset, dimension and type against the file before use (a GGUF file
 * is untrusted input), and writes GGUF files (quantize, test models). */
#ifndef SLUICE_GGUF_H
#define SLUICE_GGUF_H

#include <stddef.h>
#include <stdint.h>

/* Metadata value types (gguf_type in ggml). */
enum {
	GGUF_U8, GGUF_I8, GGUF_U16, GGUF_I16, GGUF_U32, GGUF_I32, GGUF_F32,
	GGUF_BOOL, GGUF_STR, GGUF_ARR, GGUF_U64, GGUF_I64, GGUF_F64,
	GGUF_NTYPES
};

/* One metadata pair; values point into the mapping. */
typedef struct gguf_kv {
	const char *key;        /* not NUL-terminated */
	size_t key_len;
	uint32_t type;          /* GGUF_* */
	const uint8_t *val;     /* the value's bytes (for GGUF_STR: the u64 length first;
	                         * for GGUF_ARR: the first element, after type and count) */
	uint32_t arr_type;      /* GGUF_ARR: element type (never GGUF_ARR: nested arrays are refused) */
	uint64_t arr_n;         /* GGUF_ARR: element count */
	size_t len;             /* bytes at val (GGUF_ARR: of all the elements) */
} gguf_kv;

typedef struct gguf_tensor {
	char name[64];          /* NUL-terminated; longer names are refused */
	uint32_t n_dims;        /* 1..4 (0 is refused: no llama file has scalar tensors) */
	uint64_t ne[4];         /* ne[0] varies fastest; unused dims are 1; each >= 1
	                         * (ggml allows empty tensors; sluice refuses them) */
	uint32_t type;          /* ggml type id */
	uint64_t offset;        /* relative to the data section */
	const void *data;       /* into the mapping, checked to lie inside the file */
	size_t nbytes;
} gguf_tensor;

typedef struct gguf {
	void *map;
	size_t size;
	uint32_t version;
	uint64_t n_kv, n_tensors;
	gguf_kv *kv;
	gguf_tensor *tensors;
	size_t alignment;
	size_t data_off;        /* start of the data section in the file */
	int mapped;             /* map came from mmap (gguf_open), not the caller */
} gguf;
#define GGUF_ZERO {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

/* What the reader refuses, beyond truncation and overflow: versions other
 * than 2 and 3 (and big-endian files), unknown value types, nested arrays,
 * duplicate keys, general.alignment that is not a u32 power of two, tensor
 * names of 64 bytes or more (or with a NUL), duplicate tensor names, n_dims
 * outside 1..4, a dimension of 0 or >= 2^63, element counts past 2^63,
 * unknown ggml types, ne[0] not a multiple of the type's block, offsets not a
 * multiple of the alignment, data past the end of the file, and tensors whose
 * bytes overlap (ggml is stricter: it wants them packed in order; sluice
 * accepts gaps and any order).
 * Maps and checks path. 0 ok; -1 with err saying what is wrong and where
 * ("tensor 12 offset 4096+1048576 lies past the end of the file (1000000 bytes)"). */
int gguf_open(gguf *g, const char *path, char *err, size_t errlen);
/* The same on bytes already in memory (fuzzing); the buffer must outlive g. */
int gguf_open_mem(gguf *g, const void *p, size_t n, char *err, size_t errlen);
void gguf_close(gguf *g);

const gguf_kv *gguf_find(const gguf *g, const char *key);
/* 1 found and converted, 0 absent, -1 wrong type. Integers of any width
 * (and bool) convert to u64/i64 when the value fits; f32/f64 to double. */
int gguf_get_u64(const gguf *g, const char *key, uint64_t *v);
int gguf_get_i64(const gguf *g, const char *key, int64_t *v);
int gguf_get_f64(const gguf *g, const char *key, double *v);
int gguf_get_bool(const gguf *g, const char *key, int *v);
int gguf_get_str(const gguf *g, const char *key, const char **s, size_t *n);
/* Array access. The i-th element of a numeric array as u64/i64/f64 (any
 * width); strings are walked in order with an iterator (they vary in length). */
int gguf_arr(const gguf *g, const char *key, uint32_t *type, uint64_t *n, const gguf_kv **kv);
uint64_t gguf_arr_u64(const gguf_kv *kv, uint64_t i);
int64_t gguf_arr_i64(const gguf_kv *kv, uint64_t i);
double gguf_arr_f64(const gguf_kv *kv, uint64_t i);
typedef struct gguf_iter { const uint8_t *p, *end; uint64_t i, n; } gguf_iter;
void gguf_str_iter(const gguf_kv *kv, gguf_iter *it);
/* 1 next string in *s and *n, 0 at the end. Lengths were checked at open. */
int gguf_str_next(gguf_iter *it, const char **s, size_t *n);

const gguf_tensor *gguf_tensor_find(const gguf *g, const char *name);
/* Block size and bytes per block of a ggml type; 0 if unknown. */
int gguf_type_size(uint32_t type, size_t *blck, size_t *bytes);
const char *gguf_type_name(uint32_t type);   /* "Q4_1", or "unknown" */

/* ------------------------------------------------------------ writer
 * Builds a GGUF v3 file: metadata and tensor infos are collected in memory
 * (small), then gguf_w_begin writes the header to PATH.tmp.PID, the tensor
 * data is streamed in order with gguf_w_data (any number of pieces per
 * tensor; padding between tensors is written for the caller), and
 * gguf_w_finish renames the file into place. Functions return 0, or -1 with
 * gguf_w_error(w) saying why; after an error only gguf_w_free is useful. */
typedef struct gguf_writer gguf_writer;

/* path is the final name; nothing is created before gguf_w_begin. */
gguf_writer *gguf_w_new(const char *path);
/* Removes the temporary file unless gguf_w_finish succeeded. NULL is fine. */
void gguf_w_free(gguf_writer *w);
const char *gguf_w_error(const gguf_writer *w);

/* A scalar of type GGUF_U8..GGUF_F64 (not STR or ARR) from host memory.
 * Keys must be unique. general.alignment (u32, power of two) also sets the
 * data alignment (default 32). */
int gguf_w_kv(gguf_writer *w, const char *key, uint32_t type, const void *v);
int gguf_w_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_w_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_w_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_w_f32(gguf_writer *w, const char *key, float v);
int gguf_w_bool(gguf_writer *w, const char *key, int v);
int gguf_w_str(gguf_writer *w, const char *key, const char *s, size_t n);
/* A numeric array: n elements of type (not STR or ARR), packed, host order. */
int gguf_w_arr(gguf_writer *w, const char *key, uint32_t type, uint64_t n, const void *elems);
/* A string array: s[i] of len[i] bytes (len NULL: NUL-terminated strings). */
int gguf_w_arr_str(gguf_writer *w, const char *key, uint64_t n, const char *const *s, const size_t *len);
/* Copies every kv pair of g, in order, except those skip(key, key_len, arg)
 * returns non-zero for (skip may be NULL). A copied general.alignment sets
 * the alignment as gguf_w_kv does. */
int gguf_w_copy_kv(gguf_writer *w, const gguf *g,
	int (*skip)(const char *key, size_t key_len, void *arg), void *arg);
/* One tensor info; the data comes later, in the order of these calls. */
int gguf_w_tensor(gguf_writer *w, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type);
/* Bytes of a tensor of this shape and type (0 if invalid). */
size_t gguf_nbytes(uint32_t n_dims, const uint64_t *ne, uint32_t type);
/* Creates the temporary file and writes header, metadata, tensor infos, padding. */
int gguf_w_begin(gguf_writer *w);
/* The next n bytes of tensor data (may span tensors). */
int gguf_w_data(gguf_writer *w, const void *p, size_t n);
/* Checks every tensor got all its bytes, flushes, fsyncs, renames into place. */
int gguf_w_finish(gguf_writer *w);

#endif
