/* gguf: the GGUF v2/v3 reader (mmap, every field checked before use) and
 * writer (metadata in memory, tensor data streamed, temporary file renamed
 * into place). Layout facts: ggml docs/gguf.md and src/gguf.cpp; the type
 * table: ggml's type_traits (gguf-py GGML_QUANT_SIZES agrees except Q8_1,
 * where gguf-py still says 40 bytes and ggml's block_q8_1 is 36). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "die.h"
#include "gguf.h"

/* ------------------------------------------------------------- types */

static const struct { const char *name; unsigned blck, bytes; } types[] = {
	[0] = { "F32", 1, 4 },        [1] = { "F16", 1, 2 },
	[2] = { "Q4_0", 32, 18 },     [3] = { "Q4_1", 32, 20 },
	[6] = { "Q5_0", 32, 22 },     [7] = { "Q5_1", 32, 24 },
	[8] = { "Q8_0", 32, 34 },     [9] = { "Q8_1", 32, 36 },
	[10] = { "Q2_K", 256, 84 },   [11] = { "Q3_K", 256, 110 },
	[12] = { "Q4_K", 256, 144 },  [13] = { "Q5_K", 256, 176 },
	[14] = { "Q6_K", 256, 210 },  [15] = { "Q8_K", 256, 292 },
	[16] = { "IQ2_XXS", 256, 66 }, [17] = { "IQ2_XS", 256, 74 },
	[18] = { "IQ3_XXS", 256, 98 }, [19] = { "IQ1_S", 256, 50 },
	[20] = { "IQ4_NL", 32, 18 },  [21] = { "IQ3_S", 256, 110 },
	[22] = { "IQ2_S", 256, 82 },  [23] = { "IQ4_XS", 256, 136 },
	[24] = { "I8", 1, 1 },        [25] = { "I16", 1, 2 },
	[26] = { "I32", 1, 4 },       [27] = { "I64", 1, 8 },
	[28] = { "F64", 1, 8 },       [29] = { "IQ1_M", 256, 56 },
	[30] = { "BF16", 1, 2 },
	[34] = { "TQ1_0", 256, 54 },  [35] = { "TQ2_0", 256, 66 },
	[39] = { "MXFP4", 32, 17 },
};
#define NGTYPES (sizeof types / sizeof types[0])

int
gguf_type_size(uint32_t type, size_t *blck, size_t *bytes)
{
	if (type >= NGTYPES || !types[type].blck)
		return 0;
	if (blck)
		*blck = types[type].blck;
	if (bytes)
		*bytes = types[type].bytes;
	return 1;
}

const char *
gguf_type_name(uint32_t type)
{
	return type < NGTYPES && types[type].name ? types[type].name : "unknown";
}

/* bytes of one metadata value of a fixed-size type; 0 for STR, ARR, unknown */
static size_t
vsize(uint32_t t)
{
	static const unsigned char sz[GGUF_NTYPES] = {
		[GGUF_U8] = 1, [GGUF_I8] = 1, [GGUF_U16] = 2, [GGUF_I16] = 2,
		[GGUF_U32] = 4, [GGUF_I32] = 4, [GGUF_F32] = 4, [GGUF_BOOL] = 1,
		[GGUF_U64] = 8, [GGUF_I64] = 8, [GGUF_F64] = 8,
	};
	return t < GGUF_NTYPES ? sz[t] : 0;
}

size_t
gguf_nbytes(uint32_t n_dims, const uint64_t *ne, uint32_t type)
{
	size_t blck, bytes, n;
	uint64_t elems = 1;
	uint32_t i;

	if (n_dims < 1 || n_dims > 4 || !gguf_type_size(type, &blck, &bytes))
		return 0;
	for (i = 0; i < n_dims; i++) {
		if (ne[i] < 1 || ne[i] > INT64_MAX || __builtin_mul_overflow(elems, ne[i], &elems)
		    || elems > INT64_MAX)
			return 0;
	}
	if (ne[0] % blck)
		return 0;
	if (__builtin_mul_overflow((size_t)(elems / blck), bytes, &n) || n > SIZE_MAX / 2)
		return 0;
	return n;
}

/* ------------------------------------------------------------- reader */

static uint64_t
le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

typedef struct cur {
	const uint8_t *b;
	size_t pos, size;
	char *err;
	size_t errlen;
	char where[128];        /* "kv 7 (\"tokenizer.ggml.tokens\")" */
} cur;

/* 0 if n more bytes are there, else -1 with "truncated file: WHERE WHAT needs N bytes, M left" */
static int
need(cur *c, uint64_t n, const char *what)
{
	if (n <= c->size - c->pos)
		return 0;
	seterr(c->err, c->errlen, "truncated file: %s%s%s needs %llu bytes, %zu left",
		c->where, *c->where ? " " : "", what, (unsigned long long)n, c->size - c->pos);
	return -1;
}

static int
rd(cur *c, int n, uint64_t *v, const char *what)
{
	if (need(c, n, what) < 0)
		return -1;
	*v = le(c->b + c->pos, n);
	c->pos += n;
	return 0;
}

/* a gguf string: its bytes at *s (in the mapping), its length in *n */
static int
rdstr(cur *c, const char **s, uint64_t *n, const char *what)
{
	char w[64];

	snprintf(w, sizeof w, "%s length", what);
	if (rd(c, 8, n, w) < 0)
		return -1;
	if (need(c, *n, what) < 0)
		return -1;
	*s = (const char *)c->b + c->pos;
	c->pos += *n;
	return 0;
}

/* a printable short form of a key or name for messages */
static void
setwhere(cur *c, const char *kind, uint64_t i, const char *s, size_t n)
{
	if (s)
		snprintf(c->where, sizeof c->where, "%s %llu (\"%.*s%s\")", kind,
			(unsigned long long)i, (int)(n > 48 ? 48 : n), s, n > 48 ? "..." : "");
	else
		snprintf(c->where, sizeof c->where, "%s %llu", kind, (unsigned long long)i);
}

/* one value of type t (after its type word) */
static int
rdval(cur *c, gguf_kv *kv)
{
	uint64_t v, n, i, len, total;
	size_t sz;
	char w[64];

	if (kv->type >= GGUF_NTYPES) {
		seterr(c->err, c->errlen, "%s: unknown value type %u", c->where, kv->type);
		return -1;
	}
	kv->val = c->b + c->pos;
	if (kv->type == GGUF_STR) {
		const char *s;
		if (rdstr(c, &s, &len, "string") < 0)
			return -1;
		kv->len = 8 + len;
		return 0;
	}
	if (kv->type != GGUF_ARR) {
		sz = vsize(kv->type);
		if (need(c, sz, "value") < 0)
			return -1;
		c->pos += sz;
		kv->len = sz;
		return 0;
	}
	if (rd(c, 4, &v, "array type") < 0)
		return -1;
	if (v == GGUF_ARR) {
		seterr(c->err, c->errlen, "%s: nested arrays are not supported", c->where);
		return -1;
	}
	if (v >= GGUF_NTYPES) {
		seterr(c->err, c->errlen, "%s: unknown array element type %llu", c->where,
			(unsigned long long)v);
		return -1;
	}
	kv->arr_type = v;
	if (rd(c, 8, &n, "array count") < 0)
		return -1;
	kv->arr_n = n;
	kv->val = c->b + c->pos;
	if (v != GGUF_STR) {
		snprintf(w, sizeof w, "array of %llu", (unsigned long long)n);
		if (__builtin_mul_overflow(n, vsize(v), &total)) {
			seterr(c->err, c->errlen, "truncated file: %s %s overflows", c->where, w);
			return -1;
		}
		if (need(c, total, w) < 0)
			return -1;
		c->pos += total;
		kv->len = total;
		return 0;
	}
	/* every string takes at least its 8-byte length: bound the walk first */
	if (n > (c->size - c->pos) / 8) {
		if (__builtin_mul_overflow(n, 8, &total))
			total = UINT64_MAX;
		seterr(c->err, c->errlen, "truncated file: %s array of %llu strings needs at least %llu bytes, %zu left",
			c->where, (unsigned long long)n, (unsigned long long)total, c->size - c->pos);
		return -1;
	}
	for (i = 0; i < n; i++) {
		const char *s;
		uint64_t l = 0;
		int k;

		/* the fast path: a vocabulary has ~50k-250k strings, and building
		 * a message for each one was most of the load time */
		if (c->size - c->pos >= 8) {
			for (k = 7; k >= 0; k--)
				l = l << 8 | c->b[c->pos + k];
			if (l <= c->size - c->pos - 8) {
				c->pos += 8 + l;
				continue;
			}
		}
		snprintf(w, sizeof w, "string %llu", (unsigned long long)i);
		if (rdstr(c, &s, &len, w) < 0)
			return -1;
	}
	kv->len = (size_t)(c->b + c->pos - kv->val);
	return 0;
}

static const gguf *sort_g;

static int
cmpkey(const void *a, const void *b)
{
	const gguf_kv *x = &sort_g->kv[*(const uint64_t *)a], *y = &sort_g->kv[*(const uint64_t *)b];
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int r = memcmp(x->key, y->key, n);

	return r ? r : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static int
cmpname(const void *a, const void *b)
{
	return strcmp(sort_g->tensors[*(const uint64_t *)a].name, sort_g->tensors[*(const uint64_t *)b].name);
}

static int
cmpoff(const void *a, const void *b)
{
	const gguf_tensor *x = &sort_g->tensors[*(const uint64_t *)a], *y = &sort_g->tensors[*(const uint64_t *)b];

	return (x->offset > y->offset) - (x->offset < y->offset);
}

/* duplicates and overlaps, in O(n log n) (a hostile file may hold a million
 * tiny entries); idx has room for max(n_kv, n_tensors) entries */
static int
check_unique(gguf *g, uint64_t *idx, char *err, size_t errlen)
{
	uint64_t i;

	sort_g = g;
	for (i = 0; i < g->n_kv; i++)
		idx[i] = i;
	qsort(idx, g->n_kv, sizeof *idx, cmpkey);
	for (i = 1; i < g->n_kv; i++) {
		if (!cmpkey(&idx[i - 1], &idx[i])) {
			const gguf_kv *k = &g->kv[idx[i]];
			seterr(err, errlen, "duplicate key \"%.*s\" (kv %llu)",
				(int)(k->key_len > 64 ? 64 : k->key_len), k->key, (unsigned long long)idx[i]);
			return -1;
		}
	}
	for (i = 0; i < g->n_tensors; i++)
		idx[i] = i;
	qsort(idx, g->n_tensors, sizeof *idx, cmpname);
	for (i = 1; i < g->n_tensors; i++) {
		if (!cmpname(&idx[i - 1], &idx[i])) {
			seterr(err, errlen, "duplicate tensor name \"%s\"", g->tensors[idx[i]].name);
			return -1;
		}
	}
	qsort(idx, g->n_tensors, sizeof *idx, cmpoff);
	for (i = 1; i < g->n_tensors; i++) {
		const gguf_tensor *a = &g->tensors[idx[i - 1]], *b = &g->tensors[idx[i]];
		if (a->offset + a->nbytes > b->offset) {
			seterr(err, errlen, "tensor %s (offset %llu, %zu bytes) overlaps tensor %s (offset %llu)",
				a->name, (unsigned long long)a->offset, a->nbytes, b->name,
				(unsigned long long)b->offset);
			return -1;
		}
	}
	return 0;
}

static int
parse(gguf *g, char *err, size_t errlen)
{
	cur c = { .b = g->map, .size = g->size, .err = err, .errlen = errlen };
	uint64_t v, i, j, n_kv, n_t, *idx = NULL;
	const gguf_kv *ak;
	int r = -1;

	if (c.size < 4 || memcmp(c.b, "GGUF", 4)) {
		seterr(err, errlen, c.size < 4 ? "not a GGUF file: %zu bytes" : "not a GGUF file: bad magic",
			c.size);
		return -1;
	}
	c.pos = 4;
	if (rd(&c, 4, &v, "version") < 0)
		return -1;
	g->version = v;
	if (v && !(v & 0xFFFF)) {
		seterr(err, errlen, "big-endian GGUF files are not supported (version word 0x%08llx)",
			(unsigned long long)v);
		return -1;
	}
	if (v != 2 && v != 3) {
		seterr(err, errlen, "GGUF version %llu is not supported (only 2 and 3)", (unsigned long long)v);
		return -1;
	}
	if (rd(&c, 8, &n_t, "tensor count") < 0 || rd(&c, 8, &n_kv, "kv count") < 0)
		return -1;
	/* a kv pair takes at least 13 bytes (key length, type, one value byte),
	 * a tensor info at least 32 (name length, n_dims, ne[0], type, offset) */
	if (n_kv > (c.size - c.pos) / 13) {
		seterr(err, errlen, "truncated file: kv count %llu needs at least %llu bytes, %zu left",
			(unsigned long long)n_kv, n_kv > ~0ULL / 13 ? ~0ULL : (unsigned long long)n_kv * 13,
			c.size - c.pos);
		return -1;
	}
	if (n_t > (c.size - c.pos) / 32) {
		seterr(err, errlen, "truncated file: tensor count %llu needs at least %llu bytes, %zu left",
			(unsigned long long)n_t, n_t > ~0ULL / 32 ? ~0ULL : (unsigned long long)n_t * 32,
			c.size - c.pos);
		return -1;
	}
	g->kv = xcalloc(n_kv ? n_kv : 1, sizeof *g->kv);
	for (i = 0; i < n_kv; i++) {
		gguf_kv *k = &g->kv[i];
		uint64_t len;
		setwhere(&c, "kv", i, NULL, 0);
		if (rdstr(&c, &k->key, &len, "key") < 0)
			goto out;
		k->key_len = len;
		setwhere(&c, "kv", i, k->key, len);
		if (rd(&c, 4, &v, "value type") < 0)
			goto out;
		if (v >= GGUF_NTYPES) {
			seterr(err, errlen, "%s: unknown value type %llu", c.where, (unsigned long long)v);
			goto out;
		}
		k->type = v;
		if (rdval(&c, k) < 0)
			goto out;
		g->n_kv = i + 1;
	}
	*c.where = 0;
	g->alignment = 32;
	if ((ak = gguf_find(g, "general.alignment"))) {
		if (ak->type != GGUF_U32) {
			seterr(err, errlen, "general.alignment is not a u32");
			goto out;
		}
		v = le(ak->val, 4);
		if (!v || (v & (v - 1))) {
			seterr(err, errlen, "general.alignment %llu is not a power of two", (unsigned long long)v);
			goto out;
		}
		g->alignment = v;
	}
	if (n_t > (c.size - c.pos) / 32) {
		seterr(err, errlen, "truncated file: tensor count %llu needs at least %llu bytes, %zu left",
			(unsigned long long)n_t, (unsigned long long)n_t * 32, c.size - c.pos);
		goto out;
	}
	g->tensors = xcalloc(n_t ? n_t : 1, sizeof *g->tensors);
	for (i = 0; i < n_t; i++) {
		gguf_tensor *t = &g->tensors[i];
		const char *name;
		uint64_t len;
		setwhere(&c, "tensor", i, NULL, 0);
		if (rdstr(&c, &name, &len, "name") < 0)
			goto out;
		if (len >= sizeof t->name || memchr(name, 0, len)) {
			seterr(err, errlen, "tensor %llu: name \"%.*s%s\" is %s", (unsigned long long)i,
				(int)(len > 64 ? 64 : len), name, len > 64 ? "..." : "",
				len >= sizeof t->name ? "64 bytes or longer" : "holding a NUL byte");
			goto out;
		}
		memcpy(t->name, name, len);
		t->name[len] = 0;
		snprintf(c.where, sizeof c.where, "tensor %s", t->name);
		if (rd(&c, 4, &v, "n_dims") < 0)
			goto out;
		if (v < 1 || v > 4) {
			seterr(err, errlen, "tensor %s: n_dims %llu is not in 1..4", t->name, (unsigned long long)v);
			goto out;
		}
		t->n_dims = v;
		for (j = 0; j < 4; j++)
			t->ne[j] = 1;
		for (j = 0; j < t->n_dims; j++) {
			if (rd(&c, 8, &t->ne[j], "dimension") < 0)
				goto out;
			if (t->ne[j] < 1 || t->ne[j] > INT64_MAX) {
				seterr(err, errlen, "tensor %s: dimension %llu is %lld", t->name,
					(unsigned long long)j, (long long)t->ne[j]);
				goto out;
			}
		}
		if (rd(&c, 4, &v, "type") < 0)
			goto out;
		t->type = v;
		if (!gguf_type_size(t->type, NULL, NULL)) {
			seterr(err, errlen, "tensor %s: unknown type %llu", t->name, (unsigned long long)v);
			goto out;
		}
		if (rd(&c, 8, &t->offset, "offset") < 0)
			goto out;
		t->nbytes = gguf_nbytes(t->n_dims, t->ne, t->type);
		if (!t->nbytes) {
			size_t blck;
			gguf_type_size(t->type, &blck, NULL);
			if (t->ne[0] % blck)
				seterr(err, errlen, "tensor %s: ne[0] %llu is not a multiple of %s's block size %zu",
					t->name, (unsigned long long)t->ne[0], gguf_type_name(t->type), blck);
			else
				seterr(err, errlen, "tensor %s: shape %llu x %llu x %llu x %llu is too large",
					t->name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
					(unsigned long long)t->ne[2], (unsigned long long)t->ne[3]);
			goto out;
		}
		if (t->offset % g->alignment) {
			seterr(err, errlen, "tensor %s: offset %llu is not a multiple of the alignment %zu",
				t->name, (unsigned long long)t->offset, g->alignment);
			goto out;
		}
		g->n_tensors = i + 1;
	}
	*c.where = 0;
	/* the data section starts at the next multiple of the alignment */
	g->data_off = c.pos + (g->alignment - c.pos % g->alignment) % g->alignment;
	for (i = 0; i < g->n_tensors; i++) {
		gguf_tensor *t = &g->tensors[i];
		uint64_t end;
		if (__builtin_add_overflow((uint64_t)g->data_off, t->offset, &end)
		    || __builtin_add_overflow(end, (uint64_t)t->nbytes, &end) || end > g->size) {
			seterr(err, errlen, "tensor %s: offset %llu+%zu lies past the end of the file (%zu bytes, data from %zu)",
				t->name, (unsigned long long)t->offset, t->nbytes, g->size, g->data_off);
			goto out;
		}
		t->data = (const uint8_t *)g->map + g->data_off + t->offset;
	}
	idx = xcalloc((n_kv > n_t ? n_kv : n_t) + 1, sizeof *idx);
	if (check_unique(g, idx, err, errlen) < 0)
		goto out;
	r = 0;
out:
	free(idx);
	return r;
}

int
gguf_open_mem(gguf *g, const void *p, size_t n, char *err, size_t errlen)
{
	gguf z = GGUF_ZERO;

	*g = z;
	g->map = (void *)p;
	g->size = n;
	if (parse(g, err, errlen) < 0) {
		gguf_close(g);
		return -1;
	}
	return 0;
}

int
gguf_open(gguf *g, const char *path, char *err, size_t errlen)
{
	gguf z = GGUF_ZERO;
	struct stat st;
	void *m;
	int fd;

	*g = z;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		seterr(err, errlen, "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size < 24) {
		seterr(err, errlen, S_ISREG(st.st_mode) ? "not a GGUF file: %lld bytes" : "not a regular file",
			(long long)st.st_size);
		close(fd);
		return -1;
	}
	m = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		seterr(err, errlen, "%s", strerror(errno));
		return -1;
	}
	g->map = m;
	g->size = st.st_size;
	g->mapped = 1;
	if (parse(g, err, errlen) < 0) {
		gguf_close(g);
		return -1;
	}
	return 0;
}

void
gguf_close(gguf *g)
{
	gguf z = GGUF_ZERO;

	if (g->mapped && g->map)
		munmap(g->map, g->size);
	free(g->kv);
	free(g->tensors);
	*g = z;
}

/* ----------------------------------------------------------- accessors */

const gguf_kv *
gguf_find(const gguf *g, const char *key)
{
	size_t n = strlen(key);
	uint64_t i;

	for (i = 0; i < g->n_kv; i++)
		if (g->kv[i].key_len == n && !memcmp(g->kv[i].key, key, n))
			return &g->kv[i];
	return NULL;
}

/* a scalar integer (or bool) as signed 128-bit-free pair: *neg set for
 * negative values, *mag the magnitude; 0 if not an integer type */
static int
intval(uint32_t type, const uint8_t *p, uint64_t *u, int64_t *s, int *isneg)
{
	uint64_t v;

	switch (type) {
	case GGUF_U8: case GGUF_U16: case GGUF_U32: case GGUF_U64: case GGUF_BOOL:
		*u = le(p, vsize(type));
		*isneg = 0;
		*s = (int64_t)*u;
		return 1;
	case GGUF_I8: case GGUF_I16: case GGUF_I32: case GGUF_I64:
		v = le(p, vsize(type));
		if (vsize(type) < 8 && (v >> (vsize(type) * 8 - 1)))
			v |= ~0ULL << (vsize(type) * 8);
		*s = (int64_t)v;
		*u = v;
		*isneg = *s < 0;
		return 1;
	}
	return 0;
}

static double
fltval(uint32_t type, const uint8_t *p)
{
	uint64_t v = le(p, vsize(type));
	float f;
	double d;
	uint32_t w = (uint32_t)v;

	if (type == GGUF_F32) {
		memcpy(&f, &w, 4);
		return f;
	}
	memcpy(&d, &v, 8);
	return d;
}

int
gguf_get_u64(const gguf *g, const char *key, uint64_t *v)
{
	const gguf_kv *k = gguf_find(g, key);
	uint64_t u;
	int64_t s;
	int neg;

	if (!k)
		return 0;
	if (!intval(k->type, k->val, &u, &s, &neg) || neg)
		return -1;
	*v = u;
	return 1;
}

int
gguf_get_i64(const gguf *g, const char *key, int64_t *v)
{
	const gguf_kv *k = gguf_find(g, key);
	uint64_t u;
	int64_t s;
	int neg;

	if (!k)
		return 0;
	if (!intval(k->type, k->val, &u, &s, &neg) || (!neg && u > INT64_MAX))
		return -1;
	*v = s;
	return 1;
}

int
gguf_get_f64(const gguf *g, const char *key, double *v)
{
	const gguf_kv *k = gguf_find(g, key);
	uint64_t u;
	int64_t s;
	int neg;

	if (!k)
		return 0;
	if (k->type == GGUF_F32 || k->type == GGUF_F64)
		*v = fltval(k->type, k->val);
	else if (k->type != GGUF_BOOL && intval(k->type, k->val, &u, &s, &neg))
		*v = neg ? (double)s : (double)u;
	else
		return -1;
	return 1;
}

int
gguf_get_bool(const gguf *g, const char *key, int *v)
{
	const gguf_kv *k = gguf_find(g, key);
	uint64_t u;
	int64_t s;
	int neg;

	if (!k)
		return 0;
	if (!intval(k->type, k->val, &u, &s, &neg))
		return -1;
	*v = u != 0;
	return 1;
}

int
gguf_get_str(const gguf *g, const char *key, const char **s, size_t *n)
{
	const gguf_kv *k = gguf_find(g, key);

	if (!k)
		return 0;
	if (k->type != GGUF_STR)
		return -1;
	*n = k->len - 8;
	*s = (const char *)k->val + 8;
	return 1;
}

int
gguf_arr(const gguf *g, const char *key, uint32_t *type, uint64_t *n, const gguf_kv **kv)
{
	const gguf_kv *k = gguf_find(g, key);

	if (!k)
		return 0;
	if (k->type != GGUF_ARR)
		return -1;
	if (type)
		*type = k->arr_type;
	if (n)
		*n = k->arr_n;
	if (kv)
		*kv = k;
	return 1;
}

uint64_t
gguf_arr_u64(const gguf_kv *kv, uint64_t i)
{
	uint64_t u;
	int64_t s;
	int neg;
	double d;

	if (kv->type != GGUF_ARR || i >= kv->arr_n || !vsize(kv->arr_type))
		return 0;
	if (intval(kv->arr_type, kv->val + i * vsize(kv->arr_type), &u, &s, &neg))
		return u;
	d = fltval(kv->arr_type, kv->val + i * vsize(kv->arr_type));
	return d >= 0 && d < 18446744073709551616.0 ? (uint64_t)d : 0;
}

int64_t
gguf_arr_i64(const gguf_kv *kv, uint64_t i)
{
	uint64_t u;
	int64_t s;
	int neg;
	double d;

	if (kv->type != GGUF_ARR || i >= kv->arr_n || !vsize(kv->arr_type))
		return 0;
	if (intval(kv->arr_type, kv->val + i * vsize(kv->arr_type), &u, &s, &neg))
		return s;
	d = fltval(kv->arr_type, kv->val + i * vsize(kv->arr_type));
	return d >= -9223372036854775808.0 && d < 9223372036854775808.0 ? (int64_t)d : 0;
}

double
gguf_arr_f64(const gguf_kv *kv, uint64_t i)
{
	uint64_t u;
	int64_t s;
	int neg;

	if (kv->type != GGUF_ARR || i >= kv->arr_n || !vsize(kv->arr_type))
		return 0;
	if (kv->arr_type == GGUF_F32 || kv->arr_type == GGUF_F64)
		return fltval(kv->arr_type, kv->val + i * vsize(kv->arr_type));
	intval(kv->arr_type, kv->val + i * vsize(kv->arr_type), &u, &s, &neg);
	return neg ? (double)s : (double)u;
}

void
gguf_str_iter(const gguf_kv *kv, gguf_iter *it)
{
	it->p = kv->val;
	it->end = kv->val + kv->len;
	it->i = 0;
	it->n = kv->type == GGUF_ARR && kv->arr_type == GGUF_STR ? kv->arr_n : 0;
}

int
gguf_str_next(gguf_iter *it, const char **s, size_t *n)
{
	uint64_t len;

	if (it->i >= it->n || it->end - it->p < 8)
		return 0;
	len = le(it->p, 8);
	if (len > (uint64_t)(it->end - it->p - 8))
		return 0;
	*s = (const char *)it->p + 8;
	*n = len;
	it->p += 8 + len;
	it->i++;
	return 1;
}

const gguf_tensor *
gguf_tensor_find(const gguf *g, const char *name)
{
	uint64_t i;

	for (i = 0; i < g->n_tensors; i++)
		if (!strcmp(g->tensors[i].name, name))
			return &g->tensors[i];
	return NULL;
}

/* ------------------------------------------------------------- writer */

typedef struct wtensor {
	char name[64];
	uint32_t n_dims, type;
	uint64_t ne[4];
	size_t nbytes;
	uint64_t offset;
} wtensor;

struct gguf_writer {
	char *path, *tmp;
	FILE *f;
	uint8_t *meta;          /* the encoded kv pairs */
	size_t meta_n, meta_cap;
	uint64_t n_kv;
	char **keys;            /* to refuse duplicates */
	wtensor *t;
	size_t n_t, cap_t;
	size_t alignment;
	size_t cur;             /* tensor being written by gguf_w_data */
	size_t done;            /* its bytes written so far */
	int state;              /* 0 collecting, 1 writing data, 2 finished, -1 failed */
	char err[256];
};

static int
werr(gguf_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
werr(gguf_writer *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->err, sizeof w->err, fmt, ap);
	va_end(ap);
	w->state = -1;
	return -1;
}

static void
put(gguf_writer *w, const void *p, size_t n)
{
	if (w->meta_n + n > w->meta_cap) {
		w->meta_cap = (w->meta_n + n) * 2 + 256;
		w->meta = xrealloc(w->meta, w->meta_cap);
	}
	memcpy(w->meta + w->meta_n, p, n);
	w->meta_n += n;
}

static void
putle(gguf_writer *w, uint64_t v, int n)
{
	uint8_t b[8];
	int i;

	for (i = 0; i < n; i++)
		b[i] = v >> (8 * i);
	put(w, b, n);
}

static void
putstr(gguf_writer *w, const char *s, size_t n)
{
	putle(w, n, 8);
	put(w, s, n);
}

gguf_writer *
gguf_w_new(const char *path)
{
	gguf_writer *w = xcalloc(1, sizeof *w);

	w->path = xstrdup(path);
	w->alignment = 32;
	return w;
}

void
gguf_w_free(gguf_writer *w)
{
	uint64_t i;

	if (!w)
		return;
	if (w->f)
		fclose(w->f);
	if (w->tmp && w->state != 2)
		unlink(w->tmp);
	for (i = 0; i < w->n_kv; i++)
		free(w->keys[i]);
	free(w->keys);
	free(w->meta);
	free(w->t);
	free(w->tmp);
	free(w->path);
	free(w);
}

const char *
gguf_w_error(const gguf_writer *w)
{
	return w->err;
}

/* the key header: refuses duplicates and late calls */
static int
wkey(gguf_writer *w, const char *key, uint32_t type)
{
	uint64_t i;
	size_t n = strlen(key);

	if (w->state)
		return w->state < 0 ? -1 : werr(w, "metadata added after gguf_w_begin");
	for (i = 0; i < w->n_kv; i++)
		if (!strcmp(w->keys[i], key))
			return werr(w, "duplicate key \"%s\"", key);
	if (!(w->n_kv & (w->n_kv + 1)))
		w->keys = xrealloc(w->keys, (w->n_kv * 2 + 2) * sizeof *w->keys);
	w->keys[w->n_kv++] = xstrdup(key);
	putstr(w, key, n);
	putle(w, type, 4);
	return 0;
}

int
gguf_w_kv(gguf_writer *w, const char *key, uint32_t type, const void *v)
{
	size_t sz = vsize(type);
	uint64_t u = 0;

	if (!sz)
		return werr(w, "key \"%s\": type %u is not a scalar", key, type);
	memcpy(&u, v, sz);  /* host order, little-endian hosts only (as ggml) */
	if (!strcmp(key, "general.alignment") && (type != GGUF_U32 || !u || (u & (u - 1))))
		return werr(w, "general.alignment must be a u32 power of two");
	if (wkey(w, key, type) < 0)
		return -1;
	if (!strcmp(key, "general.alignment"))
		w->alignment = u;
	putle(w, u, sz);
	return 0;
}

int gguf_w_u32(gguf_writer *w, const char *key, uint32_t v) { return gguf_w_kv(w, key, GGUF_U32, &v); }
int gguf_w_i32(gguf_writer *w, const char *key, int32_t v) { return gguf_w_kv(w, key, GGUF_I32, &v); }
int gguf_w_u64(gguf_writer *w, const char *key, uint64_t v) { return gguf_w_kv(w, key, GGUF_U64, &v); }
int gguf_w_f32(gguf_writer *w, const char *key, float v) { return gguf_w_kv(w, key, GGUF_F32, &v); }

int
gguf_w_bool(gguf_writer *w, const char *key, int v)
{
	uint8_t b = !!v;

	return gguf_w_kv(w, key, GGUF_BOOL, &b);
}

int
gguf_w_str(gguf_writer *w, const char *key, const char *s, size_t n)
{
	if (wkey(w, key, GGUF_STR) < 0)
		return -1;
	putstr(w, s, n);
	return 0;
}

int
gguf_w_arr(gguf_writer *w, const char *key, uint32_t type, uint64_t n, const void *elems)
{
	size_t sz = vsize(type);

	if (!sz)
		return werr(w, "key \"%s\": array type %u is not a number", key, type);
	if (n > SIZE_MAX / sz)
		return werr(w, "key \"%s\": array too large", key);
	if (wkey(w, key, GGUF_ARR) < 0)
		return -1;
	putle(w, type, 4);
	putle(w, n, 8);
	put(w, elems, n * sz);
	return 0;
}

int
gguf_w_arr_str(gguf_writer *w, const char *key, uint64_t n, const char *const *s, const size_t *len)
{
	uint64_t i;

	if (wkey(w, key, GGUF_ARR) < 0)
		return -1;
	putle(w, GGUF_STR, 4);
	putle(w, n, 8);
	for (i = 0; i < n; i++)
		putstr(w, s[i], len ? len[i] : strlen(s[i]));
	return 0;
}

int
gguf_w_copy_kv(gguf_writer *w, const gguf *g,
	int (*skip)(const char *key, size_t key_len, void *arg), void *arg)
{
	char *key;
	uint64_t i;
	int r;

	for (i = 0; i < g->n_kv; i++) {
		const gguf_kv *k = &g->kv[i];
		if (skip && skip(k->key, k->key_len, arg))
			continue;
		key = xmalloc(k->key_len + 1);
		memcpy(key, k->key, k->key_len);
		key[k->key_len] = 0;
		if (k->type == GGUF_ARR) {
			r = wkey(w, key, GGUF_ARR);
			if (!r) {
				putle(w, k->arr_type, 4);
				putle(w, k->arr_n, 8);
				put(w, k->val, k->len);
			}
		} else if (k->type == GGUF_STR) {
			r = wkey(w, key, GGUF_STR);
			if (!r)
				put(w, k->val, k->len);
		} else {
			uint64_t u = le(k->val, k->len);
			r = gguf_w_kv(w, key, k->type, &u);
		}
		free(key);
		if (r < 0)
			return -1;
	}
	return 0;
}

int
gguf_w_tensor(gguf_writer *w, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type)
{
	wtensor *t;
	size_t i, n = strlen(name);

	if (w->state)
		return w->state < 0 ? -1 : werr(w, "tensor added after gguf_w_begin");
	if (!n || n >= sizeof t->name)
		return werr(w, "tensor name \"%s\" is empty or 64 bytes or longer", name);
	for (i = 0; i < w->n_t; i++)
		if (!strcmp(w->t[i].name, name))
			return werr(w, "duplicate tensor name \"%s\"", name);
	if (!gguf_type_size(type, NULL, NULL))
		return werr(w, "tensor %s: unknown type %u", name, type);
	if (!gguf_nbytes(n_dims, ne, type))
		return werr(w, "tensor %s: bad shape for %s (n_dims 1..4, each >= 1, ne[0] a multiple of the block)",
			name, gguf_type_name(type));
	if (w->n_t == w->cap_t) {
		w->cap_t = w->cap_t * 2 + 16;
		w->t = xrealloc(w->t, w->cap_t * sizeof *w->t);
	}
	t = &w->t[w->n_t++];
	memset(t, 0, sizeof *t);
	memcpy(t->name, name, n + 1);
	t->n_dims = n_dims;
	t->type = type;
	for (i = 0; i < 4; i++)
		t->ne[i] = i < n_dims ? ne[i] : 1;
	t->nbytes = gguf_nbytes(n_dims, ne, type);
	return 0;
}

static int
wout(gguf_writer *w, const void *p, size_t n)
{
	if (n && fwrite(p, 1, n, w->f) != n)
		return werr(w, "unable to write %s: %s", w->tmp, strerror(errno));
	return 0;
}

static int
wpad(gguf_writer *w, uint64_t pos)
{
	static const uint8_t zero[256];
	size_t pad = (w->alignment - pos % w->alignment) % w->alignment;

	while (pad) {
		size_t k = pad < sizeof zero ? pad : sizeof zero;
		if (wout(w, zero, k) < 0)
			return -1;
		pad -= k;
	}
	return 0;
}

int
gguf_w_begin(gguf_writer *w)
{
	uint64_t off = 0, pos;
	size_t i, j;
	int fd;

	if (w->state)
		return w->state < 0 ? -1 : werr(w, "gguf_w_begin called twice");
	/* tensor infos go after the kv pairs in the same buffer */
	for (i = 0; i < w->n_t; i++) {
		wtensor *t = &w->t[i];
		t->offset = off;
		putstr(w, t->name, strlen(t->name));
		putle(w, t->n_dims, 4);
		for (j = 0; j < t->n_dims; j++)
			putle(w, t->ne[j], 8);
		putle(w, t->type, 4);
		putle(w, t->offset, 8);
		off += t->nbytes + (w->alignment - t->nbytes % w->alignment) % w->alignment;
	}
	w->tmp = xmalloc(strlen(w->path) + 32);
	sprintf(w->tmp, "%s.tmp.%ld", w->path, (long)getpid());
	fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0 || !(w->f = fdopen(fd, "wb"))) {
		if (fd >= 0)
			close(fd);
		free(w->tmp);
		w->tmp = NULL;
		return werr(w, "unable to create %s.tmp.%ld: %s", w->path, (long)getpid(), strerror(errno));
	}
	w->state = 1;
	{
		uint8_t h[24] = { 'G', 'G', 'U', 'F', 3 };
		for (i = 0; i < 8; i++) {
			h[8 + i] = (uint64_t)w->n_t >> (8 * i);
			h[16 + i] = w->n_kv >> (8 * i);
		}
		if (wout(w, h, sizeof h) < 0 || wout(w, w->meta, w->meta_n) < 0)
			return -1;
	}
	pos = 24 + w->meta_n;
	if (wpad(w, pos) < 0)
		return -1;
	w->cur = 0;
	w->done = 0;
	return 0;
}

int
gguf_w_data(gguf_writer *w, const void *p, size_t n)
{
	const uint8_t *b = p;

	if (w->state != 1)
		return w->state < 0 ? -1 : werr(w, "gguf_w_data outside gguf_w_begin..gguf_w_finish");
	while (n) {
		wtensor *t;
		size_t k;
		if (w->cur >= w->n_t)
			return werr(w, "more tensor data than the tensors hold");
		t = &w->t[w->cur];
		k = t->nbytes - w->done < n ? t->nbytes - w->done : n;
		if (wout(w, b, k) < 0)
			return -1;
		b += k;
		n -= k;
		w->done += k;
		if (w->done == t->nbytes) {
			if (wpad(w, t->nbytes) < 0)
				return -1;
			w->cur++;
			w->done = 0;
		}
	}
	return 0;
}

int
gguf_w_finish(gguf_writer *w)
{
	if (w->state == 0 && gguf_w_begin(w) < 0)
		return -1;
	if (w->state != 1)
		return w->state < 0 ? -1 : werr(w, "gguf_w_finish called twice");
	if (w->cur < w->n_t)
		return werr(w, "tensor %s got %zu of its %zu bytes", w->t[w->cur].name, w->done,
			w->t[w->cur].nbytes);
	if (fflush(w->f) == EOF || fsync(fileno(w->f)) < 0)
		return werr(w, "unable to write %s: %s", w->tmp, strerror(errno));
	if (fclose(w->f) == EOF) {
		w->f = NULL;
		return werr(w, "unable to write %s: %s", w->tmp, strerror(errno));
	}
	w->f = NULL;
	if (rename(w->tmp, w->path) < 0)
		return werr(w, "unable to rename %s to %s: %s", w->tmp, w->path, strerror(errno));
	w->state = 2;
	return 0;
}
