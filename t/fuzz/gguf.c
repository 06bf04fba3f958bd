/* libFuzzer target for the GGUF reader: gguf_open_mem on the input, then every
 * accessor on every kv pair and every iterator to its end, and every tensor's
 * bytes touched, so ASan sees any read outside the input. A refused file must
 * say why. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

#define must(c) do { if (!(c)) { fprintf(stderr, "fuzz-gguf: %s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

static volatile uint64_t sink;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	gguf g = GGUF_ZERO;
	char err[512], key[256];
	uint64_t i, j, u, n;
	int64_t s;
	double d;
	int b;
	uint32_t at;
	const gguf_kv *k;
	const char *str;
	size_t sn;
	gguf_iter it;

	/* a copy of exactly size bytes, so reading one past the end is caught */
	uint8_t *p = malloc(size ? size : 1);
	memcpy(p, data, size);
	err[0] = 0;
	if (gguf_open_mem(&g, p, size, err, sizeof err) < 0) {
		must(err[0]);
		must(!g.kv && !g.tensors);
		free(p);
		return 0;
	}
	for (i = 0; i < g.n_kv; i++) {
		const gguf_kv *kv = &g.kv[i];
		must(kv->type < GGUF_NTYPES);
		must((const uint8_t *)kv->key >= p && (const uint8_t *)kv->key + kv->key_len <= p + size);
		must(kv->val >= p && kv->val + kv->len <= p + size);
		sn = kv->key_len < sizeof key - 1 ? kv->key_len : sizeof key - 1;
		memcpy(key, kv->key, sn);
		key[sn] = 0;
		sink += gguf_get_u64(&g, key, &u) + gguf_get_i64(&g, key, &s) + gguf_get_f64(&g, key, &d)
			+ gguf_get_bool(&g, key, &b) + gguf_get_str(&g, key, &str, &sn);
		if (gguf_arr(&g, key, &at, &n, &k) == 1) {
			must(at != GGUF_ARR && at < GGUF_NTYPES);
			if (at == GGUF_STR) {
				gguf_str_iter(k, &it);
				for (j = 0; gguf_str_next(&it, &str, &sn); j++)
					sink += sn ? (uint8_t)str[sn - 1] : 0;
				/* a key found by name may be another pair with the same
				 * prefix up to a NUL: count only for this pair */
				if (k == kv)
					must(j == n);
			} else {
				for (j = 0; j < n && j < 4096; j++)
					sink += gguf_arr_u64(k, j) + gguf_arr_i64(k, j) + (gguf_arr_f64(k, j) != 0);
				if (n)
					sink += gguf_arr_u64(k, n - 1);
			}
		}
	}
	must(g.alignment && !(g.alignment & (g.alignment - 1)));
	for (i = 0; i < g.n_tensors; i++) {
		const gguf_tensor *t = &g.tensors[i];
		size_t blck, bytes;
		must(gguf_type_size(t->type, &blck, &bytes) && t->ne[0] % blck == 0);
		must(t->n_dims >= 1 && t->n_dims <= 4 && strlen(t->name) < 64);
		must(t->offset % g.alignment == 0 && t->nbytes > 0);
		must((const uint8_t *)t->data >= p && (const uint8_t *)t->data + t->nbytes <= p + size);
		sink += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[t->nbytes - 1];
		must(gguf_tensor_find(&g, t->name) == t);
		sink += strlen(gguf_type_name(t->type));
	}
	gguf_close(&g);
	free(p);
	return 0;
}
