/* libFuzzer target for lib/msg: the input, after its first byte (which picks
 * the chunk size), is fed to a decoder with small limits; every message is
 * read with the accessors and checks, passed through and decoded again, and
 * the whole run must match the same input fed in one piece. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

static const msg_limits lim = {
	.max_bytes = 4096, .max_str = 512, .max_array = 64, .max_map = 32,
	.max_depth = 8, .max_objects = 512,
};

#define must(c) do { if (!(c)) { fprintf(stderr, "fuzz-msg: %s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

static int
obj_eq(const msgpack_object *a, const msgpack_object *b)
{
	uint32_t i;

	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case MSGPACK_OBJECT_NIL: return 1;
	case MSGPACK_OBJECT_BOOLEAN: return a->via.boolean == b->via.boolean;
	case MSGPACK_OBJECT_POSITIVE_INTEGER: return a->via.u64 == b->via.u64;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: return a->via.i64 == b->via.i64;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: return memcmp(&a->via.f64, &b->via.f64, sizeof(double)) == 0;
	case MSGPACK_OBJECT_STR:
	case MSGPACK_OBJECT_BIN:
		return a->via.str.size == b->via.str.size &&
		       (a->via.str.size == 0 || memcmp(a->via.str.ptr, b->via.str.ptr, a->via.str.size) == 0);
	case MSGPACK_OBJECT_EXT:
		return a->via.ext.type == b->via.ext.type && a->via.ext.size == b->via.ext.size &&
		       (a->via.ext.size == 0 || memcmp(a->via.ext.ptr, b->via.ext.ptr, a->via.ext.size) == 0);
	case MSGPACK_OBJECT_ARRAY:
		if (a->via.array.size != b->via.array.size)
			return 0;
		for (i = 0; i < a->via.array.size; i++)
			if (!obj_eq(&a->via.array.ptr[i], &b->via.array.ptr[i]))
				return 0;
		return 1;
	case MSGPACK_OBJECT_MAP:
		if (a->via.map.size != b->via.map.size)
			return 0;
		for (i = 0; i < a->via.map.size; i++)
			if (!obj_eq(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key) ||
			    !obj_eq(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val))
				return 0;
		return 1;
	}
	return 0;
}

static int
is_key(const msgpack_object *k, const char *s)
{
	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(s) &&
	       memcmp(k->via.str.ptr, s, k->via.str.size) == 0;
}

/* Reads m every way there is; passes it through and decodes it again. */
static void
exercise(const msg *m)
{
	static const char *const keys[] = { "id", "prompt", "tokens", "max_tokens", "temperature",
					    "stream", "priority", "finish", "usage", "" };
	static const char *const drop[] = { "id", "text" };
	char err[160];
	const char *s;
	size_t n, i, j, hl, hl2;
	uint64_t u;
	int64_t v;
	double x;
	int b;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_zone z;
	msg m2 = MSG_ZERO, mm;
	const char *why;
	static volatile char sink;

	must(m->root.type == MSGPACK_OBJECT_MAP);
	must(m->raw && m->len <= lim.max_bytes);
	for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		(void)msg_get(m, keys[i]);
		if (msg_str(m, keys[i], &s, &n) == 1 && n) {
			sink ^= s[0] ^ s[n - 1];  /* ASan checks the string is there */
			(void)sink;
		}
		(void)msg_uint(m, keys[i], &u);
		(void)msg_int(m, keys[i], &v);
		(void)msg_num(m, keys[i], &x);
		(void)msg_bool(m, keys[i], &b);
	}
	if (msg_check_request(m, err, sizeof err) < 0)
		must(strlen(err) > 0);
	if (msg_check_event(m, err, sizeof err) < 0)
		must(strlen(err) > 0);

	msgpack_zone_init(&z, 2048);
	/* 1: everything kept, raw copied: the same bytes and the same objects */
	msgpack_sbuffer_init(&sb);
	msg_pk_init(&pk, &sb);
	msg_pk_passthrough(&pk, m, NULL, 0, 0);
	must(msg_unpack(sb.data, sb.size, NULL, &z, &m2, &why) == MSG_GOT);
	must(obj_eq(&m->root, &m2.root));
	/* the pairs are the same bytes; the map header is packed anew */
	hl = (uint8_t)m->raw[0] == 0xde ? 3 : (uint8_t)m->raw[0] == 0xdf ? 5 : 1;
	hl2 = (uint8_t)sb.data[0] == 0xde ? 3 : (uint8_t)sb.data[0] == 0xdf ? 5 : 1;
	must(sb.size - hl2 == m->len - hl && memcmp(sb.data + hl2, m->raw + hl, m->len - hl) == 0);
	msgpack_sbuffer_destroy(&sb);

	/* 2: id and text replaced, the rest packed from raw, then from objects */
	for (j = 0; j < 2; j++) {
		mm = *m;
		if (j)
			mm.raw = NULL, mm.len = 0;
		msgpack_sbuffer_init(&sb);
		msg_pk_init(&pk, &sb);
		msg_pk_passthrough(&pk, &mm, drop, 2, 1);
		msg_pk_str(&pk, "id");
		msg_pk_str(&pk, "fuzz");
		msgpack_zone_clear(&z);
		must(msg_unpack(sb.data, sb.size, NULL, &z, &m2, &why) == MSG_GOT);
		must(msg_str(&m2, "id", &s, &n) == 1 && n == 4 && memcmp(s, "fuzz", 4) == 0);
		for (i = 0, n = 0; i < m->root.via.map.size; i++) {
			const msgpack_object_kv *kv = &m->root.via.map.ptr[i];

			if (is_key(&kv->key, "id") || is_key(&kv->key, "text"))
				continue;
			must(n < m2.root.via.map.size);
			must(obj_eq(&kv->key, &m2.root.via.map.ptr[n].key));
			must(obj_eq(&kv->val, &m2.root.via.map.ptr[n].val));
			n++;
		}
		must(n + 1 == m2.root.via.map.size);
		msgpack_sbuffer_destroy(&sb);
	}
	msgpack_zone_destroy(&z);
}

/* A digest of the decoding: results, lengths and reasons, in order. */
typedef struct {
	uint64_t h;
	size_t got, bad, broken;
} digest;

static void
mix(digest *g, const void *p, size_t n)
{
	const unsigned char *c = p;

	while (n--)
		g->h = (g->h ^ *c++) * 0x100000001b3ull;
}

static int
drain(msg_dec *d, digest *g, int deep)
{
	msg m;
	const char *err;
	int r;

	while ((r = msg_dec_next(d, &m, &err)) != MSG_NEED) {
		mix(g, &r, sizeof r);
		if (r == MSG_GOT) {
			g->got++;
			mix(g, &m.len, sizeof m.len);
			mix(g, m.raw, m.len);
			if (deep)
				exercise(&m);
		} else {
			must(err && *err);
			mix(g, err, strlen(err));
			if (r == MSG_BAD) {
				g->bad++;
			} else {
				g->broken++;
				must(msg_dec_next(d, &m, &err) == MSG_BROKEN);
				return 0;
			}
		}
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t chunks[] = { 1, 2, 3, 5, 7, 16, 64, 1000 };
	digest a = {0}, w = {0};
	msg_dec d;
	size_t chunk, off = 0, c, avail;
	int alt = 0, sel;

	if (size < 1)
		return 0;
	sel = data[0];
	chunk = chunks[sel & 7];
	data++, size--;

	msg_dec_init(&d, &lim);
	while (off < size) {
		c = size - off < chunk ? size - off : chunk;
		if (alt) {
			char *p = msg_dec_space(&d, &avail);

			if (c > avail)
				c = avail;
			memcpy(p, data + off, c);
			msg_dec_commit(&d, c);
		} else {
			msg_dec_feed(&d, data + off, c);
		}
		alt = sel & 8 ? !alt : 0;
		off += c;
		if (!drain(&d, &a, 1))
			break;
		/* fed in small chunks and drained, the buffer stays small */
		must(d.cap <= lim.max_bytes + 2 * 65536 + chunk);
	}
	(void)msg_dec_pending(&d);
	msg_dec_free(&d);

	/* the same input in one piece decodes the same */
	msg_dec_init(&d, &lim);
	msg_dec_feed(&d, data, size);
	drain(&d, &w, 0);
	msg_dec_free(&d);
	must(a.h == w.h && a.got == w.got && a.bad == w.bad && a.broken == w.broken);
	return 0;
}
