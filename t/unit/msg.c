/* Unit tests of lib/msg: round trips, pass-through, every bound, and a stream
 * of varied messages decoded the same whatever the chunking. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "tap.h"

/* ---- helpers ----------------------------------------------------------- */

typedef struct {
	msgpack_sbuffer sb;
	msgpack_packer pk;
} out;

static void
out_init(out *o)
{
	msgpack_sbuffer_init(&o->sb);
	msg_pk_init(&o->pk, &o->sb);
}

static void
out_free(out *o)
{
	msgpack_sbuffer_destroy(&o->sb);
}

static void
put(out *o, const void *p, size_t n)
{
	msgpack_sbuffer_write(&o->sb, p, n);
}

#define S(o, s) msg_pk_str(&(o)->pk, s)

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static size_t
rndn(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

/* Deep equality of two objects, types included, floats bit for bit. */
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
		       memcmp(a->via.str.ptr, b->via.str.ptr, a->via.str.size) == 0;
	case MSGPACK_OBJECT_EXT:
		return a->via.ext.type == b->via.ext.type && a->via.ext.size == b->via.ext.size &&
		       memcmp(a->via.ext.ptr, b->via.ext.ptr, a->via.ext.size) == 0;
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
str_eq(const msg *m, const char *key, const char *want)
{
	const char *s;
	size_t n;

	return msg_str(m, key, &s, &n) == 1 && n == strlen(want) && memcmp(s, want, n) == 0;
}

/* Decodes exactly one message from a whole buffer with a fresh decoder. */
static int
dec_one(msg_dec *d, const void *p, size_t n, msg *m, const char **err)
{
	msg_dec_init(d, NULL);
	msg_dec_feed(d, p, n);
	return msg_dec_next(d, m, err);
}

/* ---- round trips ------------------------------------------------------- */

static void
pack_request(out *o)
{
	msgpack_packer *pk = &o->pk;

	msgpack_pack_map(pk, 24);
	S(o, "id"); S(o, "req-17");
	S(o, "prompt"); S(o, "Once upon a time \xc3\xa9");
	S(o, "messages"); msgpack_pack_array(pk, 2);
	msgpack_pack_map(pk, 2); S(o, "role"); S(o, "system"); S(o, "content"); S(o, "be brief");
	msgpack_pack_map(pk, 2); S(o, "role"); S(o, "user"); S(o, "content"); S(o, "hi");
	S(o, "tokens"); msgpack_pack_array(pk, 5);
	msgpack_pack_uint64(pk, 1); msgpack_pack_uint64(pk, 200); msgpack_pack_uint64(pk, 70000);
	msgpack_pack_uint64(pk, 1ull << 33); msgpack_pack_uint64(pk, UINT64_MAX);
	S(o, "max_tokens"); msgpack_pack_uint32(pk, 128);
	S(o, "temperature"); msgpack_pack_double(pk, 0.7);
	S(o, "top_k"); msgpack_pack_int(pk, 40);
	S(o, "top_p"); msgpack_pack_float(pk, 0.9f);
	S(o, "min_p"); msgpack_pack_double(pk, 0.05);
	S(o, "repeat_penalty"); msgpack_pack_double(pk, 1.1);
	S(o, "presence_penalty"); msgpack_pack_double(pk, -0.5);
	S(o, "frequency_penalty"); msgpack_pack_int(pk, -2);
	S(o, "seed"); msgpack_pack_uint64(pk, 42);
	S(o, "stop"); msgpack_pack_array(pk, 2); S(o, "\n\n"); S(o, "</s>");
	S(o, "stream"); msgpack_pack_true(pk);
	S(o, "priority"); msgpack_pack_int64(pk, -3);
	S(o, "timeout_ms"); msgpack_pack_uint64(pk, 5000);
	S(o, "cancel"); msgpack_pack_false(pk);
	S(o, "row"); msgpack_pack_int(pk, 17);
	S(o, "blob"); msgpack_pack_bin(pk, 4); msgpack_pack_bin_body(pk, "\0\1\xff\0", 4);
	S(o, "nothing"); msgpack_pack_nil(pk);
	S(o, "ext"); msgpack_pack_ext(pk, 3, 5); msgpack_pack_ext_body(pk, "\1\2\3", 3);
	S(o, "nested"); msgpack_pack_map(pk, 1); S(o, "a"); msgpack_pack_map(pk, 1); S(o, "b");
	msgpack_pack_array(pk, 3); msgpack_pack_int(pk, 1); msgpack_pack_int(pk, -2);
	msgpack_pack_map(pk, 1); S(o, "c"); msgpack_pack_double(pk, 1.5);
	S(o, "big_negative"); msgpack_pack_int64(pk, INT64_MIN);
}

static void
check_request(const msg *m, const char *how)
{
	const msgpack_object *o, *e;
	uint64_t u;
	int64_t i;
	double x;
	int b;
	char err[200];

	ok(m->root.type == MSGPACK_OBJECT_MAP && m->root.via.map.size == 24, "%s: root is a map of 24", how);
	ok(str_eq(m, "id", "req-17"), "%s: id", how);
	ok(str_eq(m, "prompt", "Once upon a time \xc3\xa9"), "%s: prompt", how);
	o = msg_get(m, "messages");
	ok(o && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 2 &&
	   o->via.array.ptr[1].type == MSGPACK_OBJECT_MAP &&
	   o->via.array.ptr[1].via.map.size == 2 &&
	   o->via.array.ptr[1].via.map.ptr[1].val.via.str.size == 2 &&
	   memcmp(o->via.array.ptr[1].via.map.ptr[1].val.via.str.ptr, "hi", 2) == 0,
	   "%s: messages", how);
	o = msg_get(m, "tokens");
	ok(o && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 5 &&
	   o->via.array.ptr[0].via.u64 == 1 && o->via.array.ptr[1].via.u64 == 200 &&
	   o->via.array.ptr[2].via.u64 == 70000 && o->via.array.ptr[3].via.u64 == 1ull << 33 &&
	   o->via.array.ptr[4].via.u64 == UINT64_MAX &&
	   o->via.array.ptr[4].type == MSGPACK_OBJECT_POSITIVE_INTEGER, "%s: tokens", how);
	ok(msg_uint(m, "max_tokens", &u) == 1 && u == 128, "%s: max_tokens", how);
	ok(msg_num(m, "temperature", &x) == 1 && x == 0.7, "%s: temperature float64", how);
	ok(msg_num(m, "top_k", &x) == 1 && x == 40 && msg_uint(m, "top_k", &u) == 1 && u == 40, "%s: top_k", how);
	o = msg_get(m, "top_p");
	ok(o && o->type == MSGPACK_OBJECT_FLOAT32 && msg_num(m, "top_p", &x) == 1 && x == (double)0.9f,
	   "%s: top_p float32", how);
	ok(msg_num(m, "min_p", &x) == 1 && x == 0.05, "%s: min_p", how);
	ok(msg_num(m, "repeat_penalty", &x) == 1 && x == 1.1, "%s: repeat_penalty", how);
	ok(msg_num(m, "presence_penalty", &x) == 1 && x == -0.5, "%s: presence_penalty", how);
	ok(msg_num(m, "frequency_penalty", &x) == 1 && x == -2 && msg_int(m, "frequency_penalty", &i) == 1 &&
	   i == -2 && msg_uint(m, "frequency_penalty", &u) == -1, "%s: frequency_penalty negative int", how);
	ok(msg_uint(m, "seed", &u) == 1 && u == 42, "%s: seed", how);
	o = msg_get(m, "stop");
	ok(o && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 2 &&
	   o->via.array.ptr[0].via.str.size == 2 && memcmp(o->via.array.ptr[1].via.str.ptr, "</s>", 4) == 0,
	   "%s: stop", how);
	ok(msg_bool(m, "stream", &b) == 1 && b == 1, "%s: stream", how);
	ok(msg_int(m, "priority", &i) == 1 && i == -3, "%s: priority", how);
	ok(msg_uint(m, "timeout_ms", &u) == 1 && u == 5000, "%s: timeout_ms", how);
	ok(msg_bool(m, "cancel", &b) == 1 && b == 0, "%s: cancel", how);
	ok(msg_int(m, "row", &i) == 1 && i == 17, "%s: a user's key", how);
	o = msg_get(m, "blob");
	ok(o && o->type == MSGPACK_OBJECT_BIN && o->via.bin.size == 4 &&
	   memcmp(o->via.bin.ptr, "\0\1\xff\0", 4) == 0, "%s: bin", how);
	o = msg_get(m, "nothing");
	ok(o && o->type == MSGPACK_OBJECT_NIL && msg_uint(m, "nothing", &u) == 0, "%s: nil reads as absent", how);
	o = msg_get(m, "ext");
	ok(o && o->type == MSGPACK_OBJECT_EXT && o->via.ext.type == 5 && o->via.ext.size == 3 &&
	   memcmp(o->via.ext.ptr, "\1\2\3", 3) == 0, "%s: ext", how);
	o = msg_get(m, "nested");
	ok(o && o->type == MSGPACK_OBJECT_MAP && (o = &o->via.map.ptr[0].val)->type == MSGPACK_OBJECT_MAP &&
	   (o = &o->via.map.ptr[0].val)->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 3 &&
	   o->via.array.ptr[1].type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.array.ptr[1].via.i64 == -2 &&
	   (e = &o->via.array.ptr[2])->type == MSGPACK_OBJECT_MAP &&
	   e->via.map.ptr[0].val.type == MSGPACK_OBJECT_FLOAT64 && e->via.map.ptr[0].val.via.f64 == 1.5,
	   "%s: nested maps and arrays", how);
	ok(msg_int(m, "big_negative", &i) == 1 && i == INT64_MIN, "%s: INT64_MIN", how);
	ok(msg_get(m, "absent") == NULL && msg_uint(m, "absent", &u) == 0 && msg_str(m, "absent", NULL, NULL) == 0,
	   "%s: absent key", how);
	ok(msg_str(m, "max_tokens", NULL, NULL) == -1 && msg_bool(m, "id", &b) == -1 && msg_num(m, "id", &x) == -1,
	   "%s: wrong types are -1", how);
	ok(msg_check_request(m, err, sizeof err) == 0, "%s: msg_check_request accepts it", how);
}

static void
pack_event(out *o)
{
	msgpack_packer *pk = &o->pk;

	msgpack_pack_map(pk, 8);
	S(o, "id"); S(o, "req-17");
	S(o, "tokens"); msgpack_pack_array(pk, 2); msgpack_pack_uint16(pk, 300); msgpack_pack_uint8(pk, 2);
	S(o, "text"); S(o, " there");
	S(o, "finish"); S(o, "length");
	S(o, "usage"); msgpack_pack_map(pk, 3);
	S(o, "prompt_tokens"); msgpack_pack_uint64(pk, 12);
	S(o, "completion_tokens"); msgpack_pack_uint64(pk, 128);
	S(o, "cached_tokens"); msgpack_pack_uint64(pk, 0);
	S(o, "t"); msgpack_pack_map(pk, 4);
	S(o, "arrived"); msgpack_pack_double(pk, 1700000000.125);
	S(o, "scheduled"); msgpack_pack_double(pk, 1700000000.25);
	S(o, "first_token"); msgpack_pack_float(pk, 1.5f);
	S(o, "done"); msgpack_pack_uint64(pk, 1700000001);
	S(o, "error"); msgpack_pack_map(pk, 2); S(o, "code"); S(o, "too_long"); S(o, "message"); S(o, "prompt is too long");
	S(o, "row"); msgpack_pack_int(pk, -17);
}

static void
check_event(const msg *m, const char *how)
{
	const msgpack_object *o;
	char err[200];
	int64_t i;

	ok(str_eq(m, "id", "req-17") && str_eq(m, "text", " there") && str_eq(m, "finish", "length"),
	   "%s: id, text, finish", how);
	o = msg_get(m, "tokens");
	ok(o && o->via.array.size == 2 && o->via.array.ptr[0].via.u64 == 300 && o->via.array.ptr[1].via.u64 == 2,
	   "%s: tokens", how);
	o = msg_get(m, "usage");
	ok(o && o->type == MSGPACK_OBJECT_MAP && o->via.map.size == 3 && o->via.map.ptr[1].val.via.u64 == 128,
	   "%s: usage", how);
	o = msg_get(m, "t");
	ok(o && o->via.map.size == 4 && o->via.map.ptr[0].val.via.f64 == 1700000000.125 &&
	   o->via.map.ptr[2].val.type == MSGPACK_OBJECT_FLOAT32 && o->via.map.ptr[2].val.via.f64 == 1.5,
	   "%s: t", how);
	o = msg_get(m, "error");
	ok(o && o->via.map.size == 2 && o->via.map.ptr[1].val.via.str.size == 18, "%s: error", how);
	ok(msg_int(m, "row", &i) == 1 && i == -17, "%s: a user's key", how);
	ok(msg_check_event(m, err, sizeof err) == 0, "%s: msg_check_event accepts it", how);
}

static void
test_round_trip(void)
{
	out o;
	msg_dec d;
	msg m = MSG_ZERO, m2 = MSG_ZERO;
	msgpack_zone z;
	const char *err = NULL;
	size_t i;

	out_init(&o);
	pack_request(&o);
	ok(dec_one(&d, o.sb.data, o.sb.size, &m, &err) == MSG_GOT, "request decodes");
	ok(m.len == o.sb.size && memcmp(m.raw, o.sb.data, m.len) == 0, "raw is the message's bytes");
	check_request(&m, "request (msg_dec)");
	msgpack_zone_init(&z, 1024);
	ok(msg_unpack(o.sb.data, o.sb.size, NULL, &z, &m2, &err) == MSG_GOT, "request msg_unpack");
	check_request(&m2, "request (msg_unpack)");
	ok(obj_eq(&m.root, &m2.root), "both ways decode the same objects");
	msg_dec_free(&d);

	/* byte at a time through msg_dec_space/commit */
	msg_dec_init(&d, NULL);
	for (i = 0; i < o.sb.size; i++) {
		size_t avail;
		char *p = msg_dec_space(&d, &avail);
		int r;

		p[0] = o.sb.data[i];
		msg_dec_commit(&d, 1);
		r = msg_dec_next(&d, &m, &err);
		if (r != (i + 1 == o.sb.size ? MSG_GOT : MSG_NEED))
			break;
	}
	ok(i == o.sb.size && obj_eq(&m.root, &m2.root), "request fed a byte at a time decodes the same");
	ok(msg_dec_pending(&d) == 0, "nothing pending after it");
	msg_dec_free(&d);
	msgpack_zone_destroy(&z);
	out_free(&o);

	out_init(&o);
	pack_event(&o);
	ok(dec_one(&d, o.sb.data, o.sb.size, &m, &err) == MSG_GOT, "event decodes");
	check_event(&m, "event");
	msg_dec_free(&d);
	out_free(&o);
}

/* ---- checks of requests and events -------------------------------------- */

/* Packs {"id":"x", key: <value written by f>} and runs a check on it. */
static int
check_one(int event, const char *key, void (*f)(out *), char *err, size_t errlen)
{
	out o;
	msg_dec d;
	msg m;
	const char *e;
	int r = -2;

	out_init(&o);
	msgpack_pack_map(&o.pk, 2);
	S(&o, "id"); S(&o, "x");
	S(&o, key);
	f(&o);
	if (dec_one(&d, o.sb.data, o.sb.size, &m, &e) == MSG_GOT)
		r = event ? msg_check_event(&m, err, errlen) : msg_check_request(&m, err, errlen);
	msg_dec_free(&d);
	out_free(&o);
	return r;
}

static void v_neg(out *o) { msgpack_pack_int(&o->pk, -1); }
static void v_str(out *o) { S(o, "3"); }
static void v_nil(out *o) { msgpack_pack_nil(&o->pk); }
static void v_float(out *o) { msgpack_pack_double(&o->pk, 0.5); }
static void v_uint(out *o) { msgpack_pack_uint64(&o->pk, 5); }
static void v_huge(out *o) { msgpack_pack_uint64(&o->pk, UINT64_MAX); }
static void v_toks_neg(out *o) { msgpack_pack_array(&o->pk, 2); msgpack_pack_int(&o->pk, 1); msgpack_pack_int(&o->pk, -1); }
static void v_strs_int(out *o) { msgpack_pack_array(&o->pk, 2); S(o, "a"); msgpack_pack_int(&o->pk, 1); }
static void v_chat_nocontent(out *o) { msgpack_pack_array(&o->pk, 1); msgpack_pack_map(&o->pk, 1); S(o, "role"); S(o, "user"); }
static void v_chat_ok(out *o) { msgpack_pack_array(&o->pk, 1); msgpack_pack_map(&o->pk, 2); S(o, "role"); S(o, "user"); S(o, "content"); S(o, "x"); }
static void v_bogus(out *o) { S(o, "bogus"); }
static void v_cancelled(out *o) { S(o, "cancelled"); }
static void v_usage_neg(out *o) { msgpack_pack_map(&o->pk, 1); S(o, "prompt_tokens"); msgpack_pack_int(&o->pk, -1); }
static void v_t_str(out *o) { msgpack_pack_map(&o->pk, 1); S(o, "done"); S(o, "now"); }
static void v_err_nocode(out *o) { msgpack_pack_map(&o->pk, 1); S(o, "message"); S(o, "m"); }
static void v_true(out *o) { msgpack_pack_true(&o->pk); }

static void
test_checks(void)
{
	char err[200];
	out o;
	msg_dec d;
	msg m;
	const char *e;

	ok(check_one(0, "max_tokens", v_neg, err, sizeof err) == -1 &&
	   strcmp(err, "key \"max_tokens\" must be an unsigned integer") == 0, "max_tokens -1: %s", err);
	ok(check_one(0, "max_tokens", v_nil, err, sizeof err) == 0, "max_tokens nil is as if absent");
	ok(check_one(0, "timeout_ms", v_float, err, sizeof err) == -1 &&
	   strcmp(err, "key \"timeout_ms\" must be an unsigned integer") == 0, "timeout_ms 0.5: %s", err);
	ok(check_one(0, "temperature", v_str, err, sizeof err) == -1 &&
	   strcmp(err, "key \"temperature\" must be a number") == 0, "temperature \"3\": %s", err);
	ok(check_one(0, "temperature", v_uint, err, sizeof err) == 0 &&
	   check_one(0, "seed", v_float, err, sizeof err) == 0, "integers are numbers");
	ok(check_one(0, "priority", v_huge, err, sizeof err) == -1 &&
	   strcmp(err, "key \"priority\" must be an integer") == 0, "priority 2^64-1: %s", err);
	ok(check_one(0, "priority", v_neg, err, sizeof err) == 0, "priority -1 is fine");
	ok(check_one(0, "tokens", v_toks_neg, err, sizeof err) == -1 &&
	   strcmp(err, "key \"tokens\" must be an array of unsigned integers") == 0, "tokens [1,-1]: %s", err);
	ok(check_one(0, "stop", v_strs_int, err, sizeof err) == -1 &&
	   strcmp(err, "key \"stop\" must be an array of strings") == 0, "stop [\"a\",1]: %s", err);
	ok(check_one(0, "stop", v_str, err, sizeof err) == -1, "stop \"3\" is not an array");
	ok(check_one(0, "messages", v_chat_nocontent, err, sizeof err) == -1 &&
	   strcmp(err, "key \"messages\" must be an array of maps with string \"role\" and \"content\"") == 0,
	   "messages without content: %s", err);
	ok(check_one(0, "messages", v_chat_ok, err, sizeof err) == 0, "messages ok");
	ok(check_one(0, "stream", v_uint, err, sizeof err) == -1 &&
	   strcmp(err, "key \"stream\" must be a boolean") == 0, "stream 5: %s", err);
	ok(check_one(0, "cancel", v_true, err, sizeof err) == 0, "a cancel message is a request");
	ok(check_one(0, "prompt", v_uint, err, sizeof err) == -1 &&
	   strcmp(err, "key \"prompt\" must be a string") == 0, "prompt 5: %s", err);
	ok(check_one(0, "my_own", v_bogus, err, sizeof err) == 0, "unknown keys are fine");
	ok(check_one(1, "finish", v_bogus, err, sizeof err) == -1 &&
	   strcmp(err, "key \"finish\" must be one of stop, length, cancelled, timeout, error") == 0,
	   "finish bogus: %s", err);
	ok(check_one(1, "finish", v_cancelled, err, sizeof err) == 0, "finish cancelled");
	ok(check_one(1, "usage", v_usage_neg, err, sizeof err) == -1 &&
	   strcmp(err, "key \"usage\" must be a map of unsigned integers") == 0, "usage negative: %s", err);
	ok(check_one(1, "t", v_t_str, err, sizeof err) == -1 &&
	   strcmp(err, "key \"t\" must be a map of numbers") == 0, "t with a str: %s", err);
	ok(check_one(1, "error", v_err_nocode, err, sizeof err) == -1 &&
	   strcmp(err, "key \"error\" must be a map with string \"code\" and \"message\"") == 0,
	   "error without code: %s", err);
	ok(check_one(1, "text", v_uint, err, sizeof err) == -1, "text 5 is not a string");

	/* id: required in a request, optional in an event, a string in both */
	out_init(&o);
	msgpack_pack_map(&o.pk, 1);
	S(&o, "prompt"); S(&o, "hi");
	ok(dec_one(&d, o.sb.data, o.sb.size, &m, &e) == MSG_GOT &&
	   msg_check_request(&m, err, sizeof err) == -1 && strcmp(err, "key \"id\" is missing") == 0 &&
	   msg_check_event(&m, err, sizeof err) == 0, "a request needs an id, an event does not");
	msg_dec_free(&d);
	out_free(&o);
	out_init(&o);
	msgpack_pack_map(&o.pk, 1);
	S(&o, "id"); msgpack_pack_int(&o.pk, 7);
	ok(dec_one(&d, o.sb.data, o.sb.size, &m, &e) == MSG_GOT &&
	   msg_check_request(&m, err, sizeof err) == -1 && strcmp(err, "key \"id\" must be a string") == 0 &&
	   msg_check_event(&m, err, sizeof err) == -1, "id 7: %s", err);
	msg_dec_free(&d);
	out_free(&o);
}

/* ---- pass-through ------------------------------------------------------- */

/* The pairs of the test message, each packed by its own function so the
 * expected output can be built from the same pieces. */
static void p_id(out *o) { S(o, "id"); S(o, "r1"); }
static void p_tokens(out *o) { S(o, "tokens"); msgpack_pack_array(&o->pk, 2); msgpack_pack_int(&o->pk, 5); msgpack_pack_int(&o->pk, 6); }
static void p_row(out *o) { S(o, "row"); msgpack_pack_int(&o->pk, 17); }
static void p_text(out *o) { S(o, "text"); S(o, "old"); }
static void
p_user(out *o)
{
	S(o, "user"); msgpack_pack_map(&o->pk, 2);
	S(o, "nested"); msgpack_pack_array(&o->pk, 5);
	msgpack_pack_bin(&o->pk, 3); msgpack_pack_bin_body(&o->pk, "\0\xc1\xff", 3);
	msgpack_pack_ext(&o->pk, 2, -1); msgpack_pack_ext_body(&o->pk, "\1\2", 2);
	msgpack_pack_nil(&o->pk); msgpack_pack_int(&o->pk, -1); msgpack_pack_float(&o->pk, 1.5f);
	S(o, "deeper"); msgpack_pack_map(&o->pk, 1); S(o, "x"); msgpack_pack_array(&o->pk, 0);
}
static void p_blob(out *o) { S(o, "blob"); msgpack_pack_bin(&o->pk, 2); msgpack_pack_bin_body(&o->pk, "\xde\xad", 2); }
static void
p_intkey(out *o)
{
	msgpack_pack_int(&o->pk, 7); S(o, "an integer key");
}

static void
test_passthrough(void)
{
	void (*pairs[])(out *) = { p_id, p_tokens, p_row, p_text, p_user, p_blob, p_intkey };
	const size_t npairs = sizeof pairs / sizeof pairs[0];
	const char *const drop[] = { "text", "tokens", "absent" };
	out in, got, want;
	msg_dec d, d2;
	msg m, m2;
	const char *err;
	size_t i;
	uint64_t u;
	const msgpack_object *o;
	int pass;

	out_init(&in);
	msgpack_pack_map(&in.pk, npairs);
	for (i = 0; i < npairs; i++)
		pairs[i](&in);
	ok(dec_one(&d, in.sb.data, in.sb.size, &m, &err) == MSG_GOT, "pass-through input decodes");

	for (pass = 0; pass < 2; pass++) {
		msg mm = m;
		const char *how = pass ? "packed from objects (raw NULL)" : "copied from raw";

		if (pass)
			mm.raw = NULL, mm.len = 0;
		out_init(&got);
		msg_pk_passthrough(&got.pk, &mm, drop, 3, 2);
		S(&got, "text"); S(&got, "new text");
		S(&got, "tokens"); msgpack_pack_array(&got.pk, 1); msgpack_pack_int(&got.pk, 9);

		out_init(&want);
		msgpack_pack_map(&want.pk, npairs - 2 + 2);
		for (i = 0; i < npairs; i++)
			if (pairs[i] != p_text && pairs[i] != p_tokens)
				pairs[i](&want);
		S(&want, "text"); S(&want, "new text");
		S(&want, "tokens"); msgpack_pack_array(&want.pk, 1); msgpack_pack_int(&want.pk, 9);
		ok(got.sb.size == want.sb.size && memcmp(got.sb.data, want.sb.data, want.sb.size) == 0,
		   "pass-through %s: kept pairs byte for byte, replaced keys replaced", how);

		ok(dec_one(&d2, got.sb.data, got.sb.size, &m2, &err) == MSG_GOT, "%s: output decodes", how);
		ok(str_eq(&m2, "text", "new text") && (o = msg_get(&m2, "tokens")) && o->via.array.size == 1 &&
		   o->via.array.ptr[0].via.u64 == 9, "%s: text and tokens replaced", how);
		ok(msg_uint(&m2, "row", &u) == 1 && u == 17 && obj_eq(msg_get(&m2, "user"), msg_get(&m, "user")) &&
		   obj_eq(msg_get(&m2, "blob"), msg_get(&m, "blob")) &&
		   obj_eq(&m2.root.via.map.ptr[4].key, &m.root.via.map.ptr[6].key),
		   "%s: unknown keys (nested, binary, non-string key) untouched", how);
		msg_dec_free(&d2);
		out_free(&got);
		out_free(&want);
	}

	/* nothing dropped, nothing new: the same bytes */
	out_init(&got);
	msg_pk_passthrough(&got.pk, &m, NULL, 0, 0);
	ok(got.sb.size == in.sb.size && memcmp(got.sb.data, in.sb.data, in.sb.size) == 0,
	   "pass-through of everything is the message itself");
	out_free(&got);

	/* non-minimal encodings survive raw copying unchanged */
	{
		static const char nm[] = "\x82\xd9\x02id\xd9\x01x\xa3row\xce\x00\x00\x00\x05";
		const char *const dr[] = { "id" };

		msg_dec_free(&d);
		ok(dec_one(&d, nm, sizeof nm - 1, &m, &err) == MSG_GOT, "non-minimal message decodes");
		out_init(&got);
		msg_pk_passthrough(&got.pk, &m, dr, 1, 0);
		ok(got.sb.size == 10 && memcmp(got.sb.data, "\x81\xa3row\xce\x00\x00\x00\x05", 10) == 0,
		   "its kept pairs are copied as they came");
		out_free(&got);
	}

	/* keys that only start like a dropped key, hold NULs, or are empty */
	{
		static const char nk[] = "\x84\xa2id\xa1x\xadtext\0\0\0\0\0\0\0\0\0\x01\xa0\x02\xa3tex\x03";
		const char *const dr[] = { "text", "" };

		msg_dec_free(&d);
		ok(dec_one(&d, nk, sizeof nk - 1, &m, &err) == MSG_GOT, "message with odd keys decodes");
		out_init(&got);
		msg_pk_passthrough(&got.pk, &m, dr, 2, 0);
		ok(got.sb.size == 1 + 5 + 15 + 5 && (unsigned char)got.sb.data[0] == 0x83 &&
		   memcmp(got.sb.data + 1, nk + 1, 5 + 15) == 0 && memcmp(got.sb.data + 21, "\xa3tex\x03", 5) == 0,
		   "\"text\\0...\" and \"tex\" are kept, \"\" is dropped");
		out_free(&got);
	}

	/* msg_pk_error, with and without an id */
	out_init(&got);
	msg_pk_error(&got.pk, "abc", 3, "bad_request", "key \"x\" must be a string");
	msg_dec_free(&d);
	ok(dec_one(&d, got.sb.data, got.sb.size, &m, &err) == MSG_GOT && m.root.via.map.size == 3 &&
	   str_eq(&m, "id", "abc") && str_eq(&m, "finish", "error") &&
	   (o = msg_get(&m, "error")) && o->via.map.size == 2 &&
	   o->via.map.ptr[0].val.via.str.size == 11 &&
	   memcmp(o->via.map.ptr[1].val.via.str.ptr, "key \"x\" must be a string", 24) == 0,
	   "msg_pk_error with an id");
	{
		char e2[100];

		ok(msg_check_event(&m, e2, sizeof e2) == 0, "it is a valid event");
	}
	out_free(&got);
	out_init(&got);
	msg_pk_error(&got.pk, NULL, (size_t)-1, "bad_request", "message is not a map");
	msg_dec_free(&d);
	ok(dec_one(&d, got.sb.data, got.sb.size, &m, &err) == MSG_GOT && m.root.via.map.size == 2 &&
	   msg_get(&m, "id") == NULL && str_eq(&m, "finish", "error"), "msg_pk_error without an id");
	out_free(&got);
	msg_dec_free(&d);
	out_free(&in);
}

/* ---- bounds -------------------------------------------------------------- */

static const msg_limits small = {
	.max_bytes = 1000, .max_str = 100, .max_array = 10, .max_map = 5,
	.max_depth = 4, .max_objects = 50,
};

static void
good(out *o, const char *id)
{
	msgpack_pack_map(&o->pk, 1);
	S(o, "id"); S(o, id);
}

/* Feeds bad then a good message, whole and a byte at a time; expects MSG_BAD
 * with why at once and then the good message. */
static void
expect_bad(const char *name, const out *bad, const msg_limits *lim, const char *why)
{
	out g;
	msg_dec d;
	msg m;
	const char *err = "";
	int r1 = 0, r2 = 0, bytewise_ok = 1, got = 0;
	size_t i;

	out_init(&g);
	good(&g, "after");
	msg_dec_init(&d, lim);
	msg_dec_feed(&d, bad->sb.data, bad->sb.size);
	msg_dec_feed(&d, g.sb.data, g.sb.size);
	r1 = msg_dec_next(&d, &m, &err);
	ok(r1 == MSG_BAD && strcmp(err, why) == 0, "%s: MSG_BAD \"%s\"", name, r1 == MSG_BAD ? err : "(none)");
	r2 = msg_dec_next(&d, &m, &err);
	ok(r2 == MSG_GOT && str_eq(&m, "id", "after") && msg_dec_pending(&d) == 0,
	   "%s: the next message decodes", name);
	msg_dec_free(&d);

	/* a byte at a time: rejected as soon as the offending header is in */
	msg_dec_init(&d, lim);
	for (i = 0; i < bad->sb.size + g.sb.size; i++) {
		char c = i < bad->sb.size ? bad->sb.data[i] : g.sb.data[i - bad->sb.size];
		int r;

		msg_dec_feed(&d, &c, 1);
		while ((r = msg_dec_next(&d, &m, &err)) != MSG_NEED) {
			if (r == MSG_BAD && got == 0 && strcmp(err, why) == 0)
				got = 1;
			else if (r == MSG_GOT && got == 1 && str_eq(&m, "id", "after"))
				got = 2;
			else
				bytewise_ok = 0;
		}
		if (d.cap > lim->max_bytes + 65536 + 65536)
			bytewise_ok = 0;
	}
	ok(bytewise_ok && got == 2, "%s: the same a byte at a time", name);
	msg_dec_free(&d);
	out_free(&g);
}

static void
nest(out *o, int levels)
{
	int i;

	msgpack_pack_map(&o->pk, 1);
	S(o, "id");
	for (i = 1; i < levels; i++)
		msgpack_pack_array(&o->pk, 1);
	msgpack_pack_int(&o->pk, 1);
}

static void
test_bounds(void)
{
	char big[200];
	out o;
	msg_dec d;
	msg m;
	const char *err = "";
	int i, r;
	size_t cap0, j, avail, sent;

	memset(big, 'x', sizeof big);

	out_init(&o);
	msgpack_pack_map(&o.pk, 5);
	for (i = 0; i < 5; i++) {
		char k[2] = { (char)('a' + i), 0 };

		S(&o, k);
		msgpack_pack_array(&o.pk, 2);
		msg_pk_strn(&o.pk, big, 99);
		msg_pk_strn(&o.pk, big, 99);
	}
	expect_bad("message bytes", &o, &small, "message too large: more than 1000 bytes");
	out_free(&o);

	out_init(&o);
	msgpack_pack_map(&o.pk, 2); S(&o, "id"); S(&o, "x"); S(&o, "s"); msg_pk_strn(&o.pk, big, 101);
	expect_bad("string length", &o, &small, "message too large: string of 101 bytes exceeds 100");
	out_free(&o);

	out_init(&o);
	msgpack_pack_map(&o.pk, 1); S(&o, "b"); msgpack_pack_bin(&o.pk, 150); msgpack_pack_bin_body(&o.pk, big, 150);
	expect_bad("bin length", &o, &small, "message too large: bin of 150 bytes exceeds 100");
	out_free(&o);

	out_init(&o);
	msgpack_pack_map(&o.pk, 1); S(&o, "e"); msgpack_pack_ext(&o.pk, 101, 1); msgpack_pack_ext_body(&o.pk, big, 101);
	expect_bad("ext length", &o, &small, "message too large: ext of 101 bytes exceeds 100");
	out_free(&o);

	out_init(&o);
	msgpack_pack_map(&o.pk, 1); S(&o, "a"); msgpack_pack_array(&o.pk, 11);
	for (i = 0; i < 11; i++)
		msgpack_pack_int(&o.pk, i);
	expect_bad("array length", &o, &small, "message too large: array of 11 elements exceeds 10");
	out_free(&o);

	out_init(&o);
	msgpack_pack_map(&o.pk, 6);
	for (i = 0; i < 6; i++) {
		msgpack_pack_int(&o.pk, i);
		msgpack_pack_nil(&o.pk);
	}
	expect_bad("map pairs (root)", &o, &small, "message too large: map of 6 pairs exceeds 5");
	out_free(&o);

	out_init(&o);
	msgpack_pack_map(&o.pk, 1); S(&o, "m"); msgpack_pack_map(&o.pk, 6);
	for (i = 0; i < 6; i++) {
		msgpack_pack_int(&o.pk, i);
		msgpack_pack_map(&o.pk, 0);
	}
	expect_bad("map pairs (nested)", &o, &small, "message too large: map of 6 pairs exceeds 5");
	out_free(&o);

	out_init(&o);
	msgpack_pack_map(&o.pk, 5);
	for (i = 0; i < 5; i++) {
		msgpack_pack_int(&o.pk, i);
		msgpack_pack_array(&o.pk, 10);
		for (j = 0; j < 10; j++)
			msgpack_pack_int(&o.pk, (int)j);
	}
	expect_bad("object count", &o, &small, "message too large: more than 50 objects");
	out_free(&o);

	out_init(&o);
	msgpack_pack_array(&o.pk, 2); msgpack_pack_int(&o.pk, 1); msgpack_pack_int(&o.pk, 2);
	expect_bad("array root", &o, &small, "message is not a map");
	out_free(&o);
	out_init(&o);
	msgpack_pack_int(&o.pk, 5);
	expect_bad("int root", &o, &small, "message is not a map");
	out_free(&o);
	out_init(&o);
	S(&o, "hello");
	expect_bad("str root", &o, &small, "message is not a map");
	out_free(&o);

	/* depth: 4 levels fine, 5 lose the framing for good */
	out_init(&o);
	nest(&o, 4);
	good(&o, "after");
	msg_dec_init(&d, &small);
	msg_dec_feed(&d, o.sb.data, o.sb.size);
	ok(msg_dec_next(&d, &m, &err) == MSG_GOT && msg_dec_next(&d, &m, &err) == MSG_GOT,
	   "depth 4 of 4 decodes");
	msg_dec_free(&d);
	out_free(&o);
	out_init(&o);
	nest(&o, 5);
	good(&o, "after");
	msg_dec_init(&d, &small);
	msg_dec_feed(&d, o.sb.data, o.sb.size);
	r = msg_dec_next(&d, &m, &err);
	ok(r == MSG_BROKEN && strcmp(err, "message too deep: more than 4 levels of nesting") == 0,
	   "depth 5 of 4: MSG_BROKEN \"%s\"", err);
	ok(msg_dec_next(&d, &m, &err) == MSG_BROKEN, "and it stays broken");
	msg_dec_free(&d);
	out_free(&o);

	/* msgpack-c's own limit is 32 containers, empty ones included */
	out_init(&o);
	msgpack_pack_map(&o.pk, 1); S(&o, "id");
	for (i = 2; i < 32; i++)
		msgpack_pack_array(&o.pk, 1);
	msgpack_pack_array(&o.pk, 0);
	ok(dec_one(&d, o.sb.data, o.sb.size, &m, &err) == MSG_GOT, "depth 32 (default) decodes");
	msg_dec_free(&d);
	out_free(&o);
	out_init(&o);
	msgpack_pack_map(&o.pk, 1); S(&o, "id");
	for (i = 2; i < 33; i++)
		msgpack_pack_array(&o.pk, 1);
	msgpack_pack_map(&o.pk, 0);
	ok(dec_one(&d, o.sb.data, o.sb.size, &m, &err) == MSG_BROKEN, "depth 33 is MSG_BROKEN: %s", err);
	msg_dec_free(&d);
	{
		msg_limits deep = msg_limits_default;

		deep.max_depth = 1000;
		msg_dec_init(&d, &deep);
		msg_dec_feed(&d, o.sb.data, o.sb.size);
		ok(msg_dec_next(&d, &m, &err) == MSG_BROKEN, "depth 33 with max_depth 1000 still MSG_BROKEN: %s", err);
		msg_dec_free(&d);
	}
	out_free(&o);

	/* the 5-byte array header: rejected at once, nothing allocated for it */
	msg_dec_init(&d, NULL);
	msg_dec_feed(&d, "\x81\xa1" "a\xdd\xff\xff\xff\xff", 8);
	cap0 = d.cap;
	r = msg_dec_next(&d, &m, &err);
	ok(r == MSG_BAD && strcmp(err, "message too large: array of 4294967295 elements exceeds 1048576") == 0,
	   "{a: dd ff ff ff ff} rejected at once: \"%s\"", err);
	ok(d.cap == cap0 && msg_dec_pending(&d) == 0, "its bytes are discarded, the buffer did not grow");
	msg_dec_free(&d);
	msg_dec_init(&d, NULL);
	msg_dec_feed(&d, "\xdd\xff\xff\xff\xff", 5);
	ok(msg_dec_next(&d, &m, &err) == MSG_BAD && strcmp(err, "message is not a map") == 0,
	   "a bare dd ff ff ff ff is rejected at once: %s", err);
	msg_dec_free(&d);
	{
		/* allowed by max_array, it waits for its elements without allocating
		 * (msgpack-c would ask for ~96 GB here) and max_objects stops it */
		msg_limits lim = msg_limits_default;
		char ones[1000];

		lim.max_array = SIZE_MAX;
		lim.max_objects = 3000;
		memset(ones, 1, sizeof ones);
		msg_dec_init(&d, &lim);
		msg_dec_feed(&d, "\x81\xa1" "a\xdd\xff\xff\xff\xff", 8);
		r = msg_dec_next(&d, &m, &err);
		msg_dec_feed(&d, ones, sizeof ones);
		ok(r == MSG_NEED && msg_dec_next(&d, &m, &err) == MSG_NEED && msg_dec_pending(&d) == 1008 &&
		   d.cap <= 2 * 65536, "with max_array unbounded it waits for elements, buffering only what came");
		msg_dec_feed(&d, ones, sizeof ones);
		msg_dec_feed(&d, ones, sizeof ones);
		r = msg_dec_next(&d, &m, &err);
		ok(r == MSG_BAD && strcmp(err, "message too large: more than 3000 objects") == 0,
		   "then max_objects rejects it: %s", err);
		msg_dec_free(&d);
	}

	/* a 9 MB string is discarded as it arrives, never buffered */
	out_init(&o);
	msgpack_pack_map(&o.pk, 2); S(&o, "id"); S(&o, "huge"); S(&o, "prompt");
	msgpack_pack_str(&o.pk, 9000000);
	msg_dec_init(&d, NULL);
	msg_dec_feed(&d, o.sb.data, o.sb.size);
	r = msg_dec_next(&d, &m, &err);
	ok(r == MSG_BAD && strcmp(err, "message too large: string of 9000000 bytes exceeds 4194304") == 0,
	   "9 MB string: \"%s\"", err);
	for (sent = 0, i = 1; sent < 9000000; sent += j) {
		char *p = msg_dec_space(&d, &avail);

		j = 9000000 - sent < 65536 ? 9000000 - sent : 65536;
		j = j < avail ? j : avail;
		memset(p, 'y', j);
		msg_dec_commit(&d, j);
		if (msg_dec_next(&d, &m, &err) != MSG_NEED || msg_dec_pending(&d) != 0 || d.cap > 2 * 65536)
			i = 0;
	}
	out_free(&o);
	out_init(&o);
	good(&o, "after");
	msg_dec_feed(&d, o.sb.data, o.sb.size);
	ok(i == 1 && msg_dec_next(&d, &m, &err) == MSG_GOT && str_eq(&m, "id", "after"),
	   "its payload is skipped with a 128 KiB buffer, then the next message decodes");
	msg_dec_free(&d);
	out_free(&o);

	/* msg_unpack bounds too */
	{
		msgpack_zone z;

		msgpack_zone_init(&z, 1024);
		out_init(&o);
		msgpack_pack_map(&o.pk, 1); S(&o, "a"); msgpack_pack_array(&o.pk, 11);
		for (i = 0; i < 11; i++)
			msgpack_pack_int(&o.pk, i);
		ok(msg_unpack(o.sb.data, o.sb.size, &small, &z, &m, &err) == MSG_BAD &&
		   strcmp(err, "message too large: array of 11 elements exceeds 10") == 0, "msg_unpack: %s", err);
		ok(msg_unpack(o.sb.data, o.sb.size - 1, NULL, &z, &m, &err) == MSG_BAD &&
		   strcmp(err, "message is cut short") == 0, "msg_unpack cut: %s", err);
		ok(msg_unpack(o.sb.data, 0, NULL, &z, &m, &err) == MSG_BAD, "msg_unpack of nothing: %s", err);
		msgpack_pack_int(&o.pk, 1);
		ok(msg_unpack(o.sb.data, o.sb.size, NULL, &z, &m, &err) == MSG_BAD &&
		   strcmp(err, "1 bytes after the message") == 0, "msg_unpack trailing: %s", err);
		ok(msg_unpack("\x81\xa1" "a\xc1", 4, NULL, &z, &m, &err) == MSG_BAD &&
		   strcmp(err, "invalid msgpack byte 0xc1") == 0, "msg_unpack 0xc1: %s", err);
		ok(msg_unpack("\x81\xa1" "a\xdd\xff\xff\xff\xff", 8, NULL, &z, &m, &err) == MSG_BAD,
		   "msg_unpack dd ff ff ff ff: %s", err);
		out_free(&o);
		msgpack_zone_destroy(&z);
	}
}

/* ---- framing errors ------------------------------------------------------ */

static void
test_framing(void)
{
	out o;
	msg_dec d;
	msg m, keep;
	const char *err = "";
	char *copy;
	size_t half;
	int r;

	out_init(&o);
	good(&o, "one");
	put(&o, "\x81\xa1" "a\xc1", 4);
	good(&o, "two");
	msg_dec_init(&d, NULL);
	msg_dec_feed(&d, o.sb.data, o.sb.size);
	ok(msg_dec_next(&d, &m, &err) == MSG_GOT && str_eq(&m, "id", "one"), "a message before 0xc1 decodes");
	r = msg_dec_next(&d, &m, &err);
	ok(r == MSG_BROKEN && strcmp(err, "invalid msgpack byte 0xc1") == 0, "0xc1: MSG_BROKEN \"%s\"", err);
	ok(msg_dec_next(&d, &m, &err) == MSG_BROKEN, "and it stays broken");
	msg_dec_free(&d);
	out_free(&o);

	/* non-map roots of every kind are skipped and the stream goes on */
	out_init(&o);
	msgpack_pack_int(&o.pk, 5);
	msgpack_pack_array(&o.pk, 2); msgpack_pack_map(&o.pk, 0); S(&o, "x");
	S(&o, "a string");
	msgpack_pack_bin(&o.pk, 3); msgpack_pack_bin_body(&o.pk, "\xc1\xc1\xc1", 3);
	msgpack_pack_nil(&o.pk);
	good(&o, "after");
	msg_dec_init(&d, NULL);
	msg_dec_feed(&d, o.sb.data, o.sb.size);
	r = 0;
	while (msg_dec_next(&d, &m, &err) == MSG_BAD && strcmp(err, "message is not a map") == 0)
		r++;
	ok(r == 5 && str_eq(&m, "id", "after"), "5 non-map roots: MSG_BAD each, then the map decodes");
	msg_dec_free(&d);
	out_free(&o);

	/* a cut message at EOF */
	out_init(&o);
	good(&o, "whole");
	good(&o, "cut-in-two");
	half = o.sb.size - 5;
	msg_dec_init(&d, NULL);
	msg_dec_feed(&d, o.sb.data, half);
	ok(msg_dec_next(&d, &m, &err) == MSG_GOT && msg_dec_next(&d, &m, &err) == MSG_NEED &&
	   msg_dec_pending(&d) == half - 10, "msg_dec_pending reports a cut message (%zu bytes)",
	   msg_dec_pending(&d));
	msg_dec_feed(&d, o.sb.data + half, 5);
	ok(msg_dec_next(&d, &m, &err) == MSG_GOT && str_eq(&m, "id", "cut-in-two") && msg_dec_pending(&d) == 0,
	   "the rest completes it; nothing pending");
	msg_dec_free(&d);

	/* the last message stays valid while more is fed (the buffer grows) */
	msg_dec_init(&d, NULL);
	msg_dec_feed(&d, o.sb.data, o.sb.size);
	ok(msg_dec_next(&d, &m, &err) == MSG_GOT, "first of two");
	keep = m;
	copy = malloc(m.len);
	memcpy(copy, m.raw, m.len);
	{
		char *junk = calloc(1, 1 << 20);
		size_t avail;

		junk[0] = (char)0x81;  /* start of a long message: a map ... */
		msg_dec_feed(&d, junk, 1 << 20);
		msg_dec_space(&d, &avail);
		free(junk);
	}
	ok(memcmp(keep.raw, copy, keep.len) == 0 && str_eq(&keep, "id", "whole"),
	   "a message stays valid across msg_dec_feed/msg_dec_space until msg_dec_next");
	free(copy);
	ok(msg_dec_next(&d, &m, &err) == MSG_GOT && str_eq(&m, "id", "cut-in-two"), "second of two");
	msg_dec_free(&d);
	out_free(&o);

	/* a zeroed decoder is safe to free */
	{
		msg_dec z = MSG_DEC_ZERO;

		msg_dec_free(&z);
		ok(1, "MSG_DEC_ZERO then msg_dec_free");
	}
}

/* ---- a stream of varied messages ------------------------------------------ */

static const msg_limits stream_lim = {
	.max_bytes = 4096, .max_str = 300, .max_array = 40, .max_map = 12,
	.max_depth = 6, .max_objects = 200,
};

static void
gen_value(out *o, int depth)
{
	msgpack_packer *pk = &o->pk;
	char s[400];
	size_t n, i;
	int t = (int)rndn(depth >= 5 ? 10 : 13);

	switch (t) {
	case 0: msgpack_pack_nil(pk); break;
	case 1: rnd() & 1 ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
	case 2: msgpack_pack_uint64(pk, rnd() >> rndn(64)); break;
	case 3: msgpack_pack_int64(pk, -(int64_t)(rnd() >> (1 + rndn(63))) - 1); break;
	case 4: msgpack_pack_double(pk, (double)(int64_t)rnd() / 1e6); break;
	case 5: msgpack_pack_float(pk, (float)rndn(1000) / 7.0f); break;
	case 6:
	case 7:
		n = rndn(10) ? rndn(40) : rndn(330);  /* now and then over max_str */
		for (i = 0; i < n; i++)
			s[i] = (char)(rnd() & 0xff);
		msg_pk_strn(pk, s, n);
		break;
	case 8:
		n = rndn(50);
		memset(s, (int)rndn(256), n);
		msgpack_pack_bin(pk, n);
		msgpack_pack_bin_body(pk, s, n);
		break;
	case 9:
		n = rndn(3) ? (size_t)1 << rndn(5) : rndn(20);  /* fixext and ext 8 */
		memset(s, 7, n);
		msgpack_pack_ext(pk, n, (int8_t)(rnd() & 0x7f));
		msgpack_pack_ext_body(pk, s, n);
		break;
	case 10:
		n = rndn(8) ? rndn(6) : rndn(45);
		msgpack_pack_array(pk, n);
		for (i = 0; i < n; i++)
			gen_value(o, depth + 1);
		break;
	default:
		n = rndn(8) ? rndn(5) : rndn(14);
		msgpack_pack_map(pk, n);
		for (i = 0; i < n; i++) {
			snprintf(s, sizeof s, "k%zu", rndn(100));
			S(o, s);
			gen_value(o, depth + 1);
		}
		break;
	}
}

/* One message; now and then a non-map root, a non-minimal encoding, or a
 * message too deep for stream_lim (MSG_BROKEN) only at the very end. */
static void
gen_message(out *o, int k)
{
	size_t n, i;
	char id[32];

	switch (rndn(40)) {
	case 0:
		gen_value(o, 1);  /* usually not a map */
		return;
	case 1:
		/* non-minimal: str8 key, uint32 value, map16 header */
		put(o, "\xde\x00\x02\xd9\x02id\xa1z\xa3row\xce\x00\x00\x00\x05", 18);
		return;
	}
	n = 1 + rndn(6);
	msgpack_pack_map(&o->pk, n);
	snprintf(id, sizeof id, "%d", k);
	S(o, "id");
	S(o, id);
	for (i = 1; i < n; i++) {
		if (i == 1 && rndn(2)) {
			size_t t, nt = rndn(8);

			S(o, "tokens");
			msgpack_pack_array(&o->pk, nt);
			for (t = 0; t < nt; t++)
				msgpack_pack_uint32(&o->pk, (uint32_t)rndn(50000));
			continue;
		}
		snprintf(id, sizeof id, "key%zu", i);
		S(o, id);
		gen_value(o, 2);
	}
}

/* The log of decoding: for each result a tag, then the re-encoded objects
 * and the raw bytes (MSG_GOT) or the reason (MSG_BAD, MSG_BROKEN). */
static void
log_result(out *log, int r, const msg *m, const char *err)
{
	uint32_t n;

	put(log, r == MSG_GOT ? "G" : r == MSG_BAD ? "B" : "X", 1);
	if (r == MSG_GOT) {
		msgpack_pack_object(&log->pk, m->root);
		n = (uint32_t)m->len;
		put(log, &n, sizeof n);
		put(log, m->raw, m->len);
	} else {
		put(log, err, strlen(err) + 1);
	}
}

/* Logs what the decoder has; 0 once the stream is broken. */
static int
drain(msg_dec *d, out *log)
{
	msg m;
	const char *err;
	int r;

	while ((r = msg_dec_next(d, &m, &err)) != MSG_NEED) {
		log_result(log, r, &m, err);
		if (r == MSG_BROKEN)
			return 0;
	}
	return 1;
}

/* Decodes stream[0..n) fed in chunks: whole 0, byte 1, random 2; via
 * msg_dec_feed or msg_dec_space/commit alternately. */
static void
decode_stream(const char *stream, size_t n, int how, out *log, size_t *pending)
{
	msg_dec d;
	size_t off = 0, c, avail;
	int space = 0;

	msg_dec_init(&d, &stream_lim);
	while (off < n) {
		c = how == 0 ? n : how == 1 ? 1 : 1 + rndn(rndn(4) ? 64 : 5000);
		if (c > n - off)
			c = n - off;
		if (space) {
			char *p = msg_dec_space(&d, &avail);

			if (c > avail)
				c = avail;
			memcpy(p, stream + off, c);
			msg_dec_commit(&d, c);
		} else {
			msg_dec_feed(&d, stream + off, c);
		}
		space = !space;
		off += c;
		if (!drain(&d, log))
			break;
	}
	*pending = msg_dec_pending(&d);
	msg_dec_free(&d);
}

static void
test_stream(void)
{
	enum { N = 10000, FIRST = 200 };
	out s, want, got;
	size_t *ends = malloc((N + 1) * sizeof *ends), i, pending, cut, wantlen200, bad = 0, nbad = 0, ngot = 0;
	msgpack_zone z;
	msg m;
	const char *err;
	int r, fail;

	out_init(&s);
	ends[0] = 0;
	for (i = 0; i < N; i++) {
		gen_message(&s, (int)i);
		ends[i + 1] = s.sb.size;
	}

	/* the expected log: each message decoded alone by msg_unpack */
	out_init(&want);
	msgpack_zone_init(&z, 4096);
	wantlen200 = 0;
	for (i = 0; i < N; i++) {
		r = msg_unpack(s.sb.data + ends[i], ends[i + 1] - ends[i], &stream_lim, &z, &m, &err);
		log_result(&want, r, &m, err);
		nbad += r == MSG_BAD;
		ngot += r == MSG_GOT;
		msgpack_zone_clear(&z);
		if (i + 1 == FIRST)
			wantlen200 = want.sb.size;
	}
	msgpack_zone_destroy(&z);
	ok(ngot > N * 8 / 10 && nbad > 100, "%zu messages: %zu decode alone, %zu are rejected", (size_t)N, ngot, nbad);

	for (int how = 0; how < 3; how++) {
		static const char *const name[] = { "whole", "one byte at a time", "in random chunks" };

		out_init(&got);
		decode_stream(s.sb.data, s.sb.size, how, &got, &pending);
		ok(got.sb.size == want.sb.size && memcmp(got.sb.data, want.sb.data, want.sb.size) == 0 && pending == 0,
		   "stream fed %s decodes as each message alone", name[how]);
		out_free(&got);
	}

	/* cut in two at every byte boundary of the first 200 messages */
	fail = 0;
	for (cut = 0; cut <= ends[FIRST]; cut++) {
		msg_dec d;

		out_init(&got);
		msg_dec_init(&d, &stream_lim);
		msg_dec_feed(&d, s.sb.data, cut);
		drain(&d, &got);
		msg_dec_feed(&d, s.sb.data + cut, ends[FIRST] - cut);
		drain(&d, &got);
		if (got.sb.size != wantlen200 || memcmp(got.sb.data, want.sb.data, wantlen200) != 0 ||
		    msg_dec_pending(&d) != 0) {
			if (!fail)
				bad = cut;
			fail++;
		}
		msg_dec_free(&d);
		out_free(&got);
	}
	ok(fail == 0, "first %d messages (%zu bytes) cut at every boundary decode the same (%d failed, first at %zu)",
	   FIRST, ends[FIRST], fail, bad);

	/* and a stream ending in a message too deep breaks there, the same way */
	{
		size_t n0 = s.sb.size;

		msgpack_pack_map(&s.pk, 1);
		S(&s, "deep");
		for (i = 0; i < 6; i++)
			msgpack_pack_array(&s.pk, 1);
		msgpack_pack_nil(&s.pk);
		good(&s, "never");
		put(&want, "X", 1);
		put(&want, "message too deep: more than 6 levels of nesting", 48);
		for (int how = 0; how < 3; how++) {
			out_init(&got);
			decode_stream(s.sb.data, s.sb.size, how, &got, &pending);
			ok(got.sb.size == want.sb.size && memcmp(got.sb.data, want.sb.data, want.sb.size) == 0,
			   "stream ending too deep (fed %d): the same, then MSG_BROKEN", how);
			out_free(&got);
		}
		(void)n0;
	}
	out_free(&want);
	out_free(&s);
	free(ends);
}

int
main(void)
{
	test_round_trip();
	test_checks();
	test_passthrough();
	test_bounds();
	test_framing();
	test_stream();
	return done_testing();
}
