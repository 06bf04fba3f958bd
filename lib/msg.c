/* msg: the sluice wire schema on msgpack-c, with a bounded streaming decoder.
 * An incremental scanner walks msgpack headers as bytes arrive and frames each
 * top-level message, checking every limit before msgpack-c allocates a byte. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "msg.h"

const msg_limits msg_limits_default = {
	.max_bytes = 8u << 20,
	.max_str = 4u << 20,
	.max_array = 1u << 20,
	.max_map = 1u << 16,
	.max_depth = 32,
	.max_objects = 1u << 20,
};

#define MSG_CHUNK 65536     /* what msg_dec_space offers at least */
#define MSG_MAXDEPTH 32     /* msgpack-c's MSGPACK_EMBED_STACK_SIZE */

enum { F_FRAMED = 1, F_REJECT = 2, F_BROKEN = 4 };         /* msg_dec.state */
enum { SC_NEED, SC_DONE, SC_BAD, SC_BROKEN };               /* scan() */
enum { K_NEED = -1, K_INVALID = -2,
       K_SCALAR = 0, K_STR, K_BIN, K_EXT, K_ARRAY, K_MAP }; /* hdr() */

/* ---- headers ----------------------------------------------------------- */

static inline uint64_t
be(const unsigned char *p, size_t n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | *p++;
	return v;
}

/* A length field of sz bytes after the tag (and ext's type byte after it). */
static inline int
var(const unsigned char *p, size_t have, size_t sz, size_t extra, size_t *hl,
    uint64_t *n, int kind)
{
	if (have < 1 + sz + extra)
		return K_NEED;
	*hl = 1 + sz + extra;
	*n = be(p + 1, sz);
	return kind;
}

/* Reads the header at p (have > 0 bytes there): its size in *hl and, for
 * str/bin/ext/fixed-size scalars, the payload bytes that follow in *n, for
 * arrays and maps the elements or pairs in *n. */
static inline __attribute__((always_inline)) int
hdr(const unsigned char *p, size_t have, size_t *hl, uint64_t *n)
{
	unsigned c = p[0];

	*hl = 1;
	*n = 0;
	if (c <= 0x7f || c >= 0xe0)
		return K_SCALAR;
	if (c <= 0x8f) {
		*n = c & 0x0f;
		return K_MAP;
	}
	if (c <= 0x9f) {
		*n = c & 0x0f;
		return K_ARRAY;
	}
	if (c <= 0xbf) {
		*n = c & 0x1f;
		return K_STR;
	}
	switch (c) {
	case 0xc0: case 0xc2: case 0xc3:
		return K_SCALAR;
	case 0xc4: return var(p, have, 1, 0, hl, n, K_BIN);
	case 0xc5: return var(p, have, 2, 0, hl, n, K_BIN);
	case 0xc6: return var(p, have, 4, 0, hl, n, K_BIN);
	case 0xc7: return var(p, have, 1, 1, hl, n, K_EXT);
	case 0xc8: return var(p, have, 2, 1, hl, n, K_EXT);
	case 0xc9: return var(p, have, 4, 1, hl, n, K_EXT);
	case 0xca: *n = 4; return K_SCALAR;
	case 0xcb: *n = 8; return K_SCALAR;
	case 0xcc: case 0xd0: *n = 1; return K_SCALAR;
	case 0xcd: case 0xd1: *n = 2; return K_SCALAR;
	case 0xce: case 0xd2: *n = 4; return K_SCALAR;
	case 0xcf: case 0xd3: *n = 8; return K_SCALAR;
	case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
		*hl = 2;
		*n = (uint64_t)1 << (c - 0xd4);
		return K_EXT;
	case 0xd9: return var(p, have, 1, 0, hl, n, K_STR);
	case 0xda: return var(p, have, 2, 0, hl, n, K_STR);
	case 0xdb: return var(p, have, 4, 0, hl, n, K_STR);
	case 0xdc: return var(p, have, 2, 0, hl, n, K_ARRAY);
	case 0xdd: return var(p, have, 4, 0, hl, n, K_ARRAY);
	case 0xde: return var(p, have, 2, 0, hl, n, K_MAP);
	case 0xdf: return var(p, have, 4, 0, hl, n, K_MAP);
	default:   return K_INVALID;  /* 0xc1, never used */
	}
}

/* The end of the (already validated) object at q, or NULL past end. */
static const unsigned char *
skip_obj(const unsigned char *q, const unsigned char *end)
{
	uint64_t need = 1;
	size_t hl;
	uint64_t n;
	int k;

	while (need) {
		if (q >= end)
			return NULL;
		k = hdr(q, (size_t)(end - q), &hl, &n);
		if (k < 0)
			return NULL;
		q += hl;
		need--;
		if (k == K_ARRAY)
			need += n;
		else if (k == K_MAP)
			need += 2 * n;
		else if (n > (uint64_t)(end - q))
			return NULL;
		else
			q += n;
	}
	return q;
}

/* ---- the framing scanner ------------------------------------------------ */

static const char *const kind_name[] = { "scalar", "string", "bin", "ext", "array", "map" };

static void
why(msg_dec *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->why, sizeof d->why, fmt, ap);
	va_end(ap);
}

static void
scan_reset(msg_dec *d)
{
	d->pos = 0;
	d->nobj = 0;
	d->depth = 0;
	d->state = 0;
}

/* Walks the headers of the message at buf+off from where it stopped last.
 * Nearly all of a pass-through stage's decoding time is spent here. */
static int
scan(msg_dec *d)
{
	const unsigned char *p = d->buf ? (const unsigned char *)d->buf + d->off : NULL;
	size_t avail = d->len - d->off, pos = d->pos, nobj = d->nobj, hl;
	unsigned depth = d->depth;
	unsigned maxd = d->lim.max_depth < MSG_MAXDEPTH ? d->lim.max_depth : MSG_MAXDEPTH;
	int rej = d->state & F_REJECT, bad, k;
	uint64_t n;

	if (d->state & F_FRAMED)
		return pos <= avail ? SC_DONE : SC_NEED;
	while (pos < avail) {
		k = hdr(p + pos, avail - pos, &hl, &n);
		if (k < 0) {
			if (k == K_NEED)
				break;
			why(d, "invalid msgpack byte 0x%02x", p[pos]);
			d->state |= F_BROKEN;
			return SC_BROKEN;
		}
		nobj++;
		bad = 0;
		if (!rej) {
			if (nobj == 1 && k != K_MAP) {
				why(d, "message is not a map");
				bad = 1;
			} else if ((k == K_STR || k == K_BIN || k == K_EXT) && n > d->lim.max_str) {
				why(d, "message too large: %s of %llu bytes exceeds %zu",
				    kind_name[k], (unsigned long long)n, d->lim.max_str);
				bad = 1;
			} else if (k == K_ARRAY && n > d->lim.max_array) {
				why(d, "message too large: array of %llu elements exceeds %zu",
				    (unsigned long long)n, d->lim.max_array);
				bad = 1;
			} else if (k == K_MAP && n > d->lim.max_map) {
				why(d, "message too large: map of %llu pairs exceeds %zu",
				    (unsigned long long)n, d->lim.max_map);
				bad = 1;
			} else if (nobj > d->lim.max_objects) {
				why(d, "message too large: more than %zu objects", d->lim.max_objects);
				bad = 1;
			}
		}
		pos += hl;
		if (k < K_ARRAY)
			pos += n;
		if (!rej && !bad && pos > d->lim.max_bytes) {
			why(d, "message too large: more than %zu bytes", d->lim.max_bytes);
			bad = 1;
		}
		if (k >= K_ARRAY) {
			if (depth >= maxd) {
				why(d, "message too deep: more than %u levels of nesting", maxd);
				d->state |= F_BROKEN;
				return SC_BROKEN;
			}
			if (n) {
				d->left[depth++] = k == K_MAP ? 2 * n : n;
				goto next;
			}
		}
		/* one object is complete; so may be the containers around it */
		while (depth && --d->left[depth - 1] == 0)
			depth--;
		if (!depth)
			d->state |= F_FRAMED;
	next:
		if (bad) {
			d->state |= F_REJECT;
			d->pos = pos;
			d->nobj = nobj;
			d->depth = depth;
			return SC_BAD;
		}
		if (!depth && (d->state & F_FRAMED))
			break;
	}
	d->pos = pos;
	d->nobj = nobj;
	d->depth = depth;
	if (d->state & F_FRAMED)
		return pos <= avail ? SC_DONE : SC_NEED;
	return SC_NEED;
}

/* ---- the streaming decoder ---------------------------------------------- */

void
msg_dec_init(msg_dec *d, const msg_limits *lim)
{
	memset(d, 0, sizeof *d);
	d->lim = lim ? *lim : msg_limits_default;
}

void
msg_dec_free(msg_dec *d)
{
	free(d->buf);
	free(d->old);
	if (d->zone_ok)
		msgpack_zone_destroy(&d->zone);
	memset(d, 0, sizeof *d);
}

void
msg_dec_trim(msg_dec *d)
{
	if (d->len != d->off || d->cap <= 4 * MSG_CHUNK)
		return;
	free(d->buf);
	free(d->old);
	d->buf = d->old = NULL;
	d->off = d->len = d->cap = 0;
	d->held = 0;
}

/* A capacity of at least need, growing geometrically but not far past
 * max_bytes + MSG_CHUNK, which is all a well-behaved stream ever needs. */
static size_t
grow(const msg_dec *d, size_t need)
{
	size_t c = d->cap > MSG_CHUNK ? d->cap : 2 * MSG_CHUNK, lim;

	while (c < need && c < SIZE_MAX / 2)
		c *= 2;
	lim = d->lim.max_bytes + MSG_CHUNK;
	if (lim < d->lim.max_bytes)
		lim = SIZE_MAX;
	if (c > lim)
		c = need > lim ? need : lim;
	if (c < need)
		c = need;
	return c;
}

/* Makes room for want more bytes after len without moving the message last
 * returned (its objects point into it until the next msg_dec_next). */
static void
ensure(msg_dec *d, size_t want)
{
	size_t pend = d->len - d->off, ncap;
	char *nb;

	if (d->cap - d->len >= want)
		return;
	if (want > SIZE_MAX - pend)
		die_x(EXIT_SYS, "unable to buffer %zu bytes: too large", want);
	if (d->held) {
		ncap = grow(d, pend + want);
		nb = xmalloc(ncap);
		memcpy(nb, d->buf + d->off, pend);
		d->old = d->buf;  /* freed by the next msg_dec_next */
		d->held = 0;
		d->buf = nb;
		d->cap = ncap;
		d->off = 0;
		d->len = pend;
		return;
	}
	if (d->off) {
		memmove(d->buf, d->buf + d->off, pend);
		d->off = 0;
		d->len = pend;
		if (d->cap - d->len >= want)
			return;
	}
	ncap = grow(d, pend + want);
	d->buf = xrealloc(d->buf, ncap);
	d->cap = ncap;
}

char *
msg_dec_space(msg_dec *d, size_t *avail)
{
	ensure(d, MSG_CHUNK);
	*avail = d->cap - d->len;
	return d->buf + d->len;
}

void
msg_dec_commit(msg_dec *d, size_t n)
{
	if (n > d->cap - d->len)
		n = d->cap - d->len;
	d->len += n;
}

void
msg_dec_feed(msg_dec *d, const void *p, size_t n)
{
	if (!n)
		return;
	ensure(d, n);
	memcpy(d->buf + d->len, p, n);
	d->len += n;
}

size_t
msg_dec_pending(const msg_dec *d)
{
	return d->len - d->off;
}

int
msg_dec_next(msg_dec *d, msg *out, const char **err)
{
	size_t avail, drop, o = 0;
	msgpack_unpack_return ur;
	const char *m;
	int r;

	/* the last message is let go: its bytes, its buffer, its objects */
	d->held = 0;
	free(d->old);
	d->old = NULL;
	if (d->off == d->len)
		d->off = d->len = 0;
	if (!d->zone_ok) {
		if (!msgpack_zone_init(&d->zone, MSGPACK_ZONE_CHUNK_SIZE))
			die_x(EXIT_SYS, "unable to allocate memory: msgpack zone");
		d->zone_ok = 1;
	} else {
		msgpack_zone_clear(&d->zone);
	}
	if (d->state & F_BROKEN) {
		*err = d->why;
		return MSG_BROKEN;
	}
	for (;;) {
		r = scan(d);
		if (d->state & F_REJECT) {
			/* a rejected message is discarded as it is scanned */
			avail = d->len - d->off;
			drop = d->pos < avail ? d->pos : avail;
			d->off += drop;
			d->pos -= drop;
		}
		switch (r) {
		case SC_NEED:
			return MSG_NEED;
		case SC_BAD:
			*err = d->why;
			return MSG_BAD;
		case SC_BROKEN:
			*err = d->why;
			return MSG_BROKEN;
		}
		if (d->state & F_REJECT) {
			scan_reset(d);
			continue;
		}
		m = d->buf + d->off;
		ur = msgpack_unpack(m, d->pos, &o, &d->zone, &out->root);
		if (ur == MSGPACK_UNPACK_NOMEM_ERROR)
			die_x(EXIT_SYS, "unable to allocate memory: msgpack objects");
		if (ur != MSGPACK_UNPACK_SUCCESS || o != d->pos) {
			why(d, "msgpack-c refused a framed message (%d)", (int)ur);
			d->state |= F_BROKEN;
			*err = d->why;
			return MSG_BROKEN;
		}
		out->raw = m;
		out->len = d->pos;
		d->off += d->pos;
		d->held = 1;
		scan_reset(d);
		return MSG_GOT;
	}
}

int
msg_unpack(const char *p, size_t n, const msg_limits *lim, msgpack_zone *zone,
	   msg *out, const char **err)
{
	static _Thread_local char reason[128];
	msg_dec d = MSG_DEC_ZERO;
	msgpack_unpack_return ur;
	size_t o = 0;
	int r;

	d.lim = lim ? *lim : msg_limits_default;
	d.buf = (char *)p;
	d.len = d.cap = n;
	r = n ? scan(&d) : SC_NEED;
	if (r == SC_NEED) {
		*err = "message is cut short";
		return MSG_BAD;
	}
	if (r != SC_DONE) {
		memcpy(reason, d.why, sizeof reason);
		*err = reason;
		return MSG_BAD;
	}
	if (d.pos != n) {
		snprintf(reason, sizeof reason, "%zu bytes after the message", n - d.pos);
		*err = reason;
		return MSG_BAD;
	}
	ur = msgpack_unpack(p, n, &o, zone, &out->root);
	if (ur == MSGPACK_UNPACK_NOMEM_ERROR)
		die_x(EXIT_SYS, "unable to allocate memory: msgpack objects");
	if (ur != MSGPACK_UNPACK_SUCCESS) {
		*err = "msgpack-c refused a framed message";
		return MSG_BAD;
	}
	out->raw = p;
	out->len = n;
	return MSG_GOT;
}

/* ---- reading keys -------------------------------------------------------- */

static int
str_is(const msgpack_object *o, const char *s, size_t n)
{
	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
	       (n == 0 || memcmp(o->via.str.ptr, s, n) == 0);
}

const msgpack_object *
msg_get(const msg *m, const char *key)
{
	const msgpack_object_kv *kv, *end;
	size_t n = strlen(key);

	if (!m || m->root.type != MSGPACK_OBJECT_MAP)
		return NULL;
	kv = m->root.via.map.ptr;
	for (end = kv + m->root.via.map.size; kv < end; kv++)
		if (str_is(&kv->key, key, n))
			return &kv->val;
	return NULL;
}

/* The value of key, NULL when absent or nil (JSON's null means "not given"). */
static const msgpack_object *
get(const msg *m, const char *key)
{
	const msgpack_object *o = msg_get(m, key);

	return o && o->type != MSGPACK_OBJECT_NIL ? o : NULL;
}

int
msg_str(const msg *m, const char *key, const char **s, size_t *n)
{
	const msgpack_object *o = get(m, key);

	if (!o)
		return 0;
	if (o->type != MSGPACK_OBJECT_STR)
		return -1;
	*s = o->via.str.ptr;
	if (n)
		*n = o->via.str.size;
	return 1;
}

int
msg_uint(const msg *m, const char *key, uint64_t *v)
{
	const msgpack_object *o = get(m, key);

	if (!o)
		return 0;
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return -1;
	*v = o->via.u64;
	return 1;
}

static int
as_int(const msgpack_object *o, int64_t *v)
{
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*v = o->via.i64;
		return 1;
	}
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
		*v = (int64_t)o->via.u64;
		return 1;
	}
	return 0;
}

int
msg_int(const msg *m, const char *key, int64_t *v)
{
	const msgpack_object *o = get(m, key);

	if (!o)
		return 0;
	return as_int(o, v) ? 1 : -1;
}

static int
as_num(const msgpack_object *o, double *v)
{
	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER: *v = (double)o->via.u64; return 1;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: *v = (double)o->via.i64; return 1;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: *v = o->via.f64; return 1;
	default: return 0;
	}
}

int
msg_num(const msg *m, const char *key, double *v)
{
	const msgpack_object *o = get(m, key);

	if (!o)
		return 0;
	return as_num(o, v) ? 1 : -1;
}

int
msg_bool(const msg *m, const char *key, int *v)
{
	const msgpack_object *o = get(m, key);

	if (!o)
		return 0;
	if (o->type != MSGPACK_OBJECT_BOOLEAN)
		return -1;
	*v = o->via.boolean;
	return 1;
}

/* ---- checking requests and events --------------------------------------- */

enum { T_STR, T_UINT, T_INT, T_NUM, T_BOOL, T_UINTS, T_STRS, T_CHAT,
       T_FINISH, T_USAGE, T_TIMES, T_ERROR };

static const char *const t_what[] = {
	[T_STR] = "a string",
	[T_UINT] = "an unsigned integer",
	[T_INT] = "an integer",
	[T_NUM] = "a number",
	[T_BOOL] = "a boolean",
	[T_UINTS] = "an array of unsigned integers",
	[T_STRS] = "an array of strings",
	[T_CHAT] = "an array of maps with string \"role\" and \"content\"",
	[T_FINISH] = "one of stop, length, cancelled, timeout, error",
	[T_USAGE] = "a map of unsigned integers",
	[T_TIMES] = "a map of numbers",
	[T_ERROR] = "a map with string \"code\" and \"message\"",
};

struct keytype {
	const char *key;
	int type;
};

static const struct keytype request_keys[] = {
	{"id", T_STR}, {"prompt", T_STR}, {"messages", T_CHAT}, {"tokens", T_UINTS},
	{"max_tokens", T_UINT}, {"temperature", T_NUM}, {"top_k", T_NUM},
	{"top_p", T_NUM}, {"min_p", T_NUM}, {"repeat_penalty", T_NUM},
	{"presence_penalty", T_NUM}, {"frequency_penalty", T_NUM}, {"seed", T_NUM},
	{"stop", T_STRS}, {"stream", T_BOOL}, {"priority", T_INT},
	{"timeout_ms", T_UINT}, {"cancel", T_BOOL}, {"ignore_eos", T_BOOL},
	{"logprobs", T_UINT},
};

static const struct keytype event_keys[] = {
	{"id", T_STR}, {"tokens", T_UINTS}, {"text", T_STR}, {"finish", T_FINISH},
	{"usage", T_USAGE}, {"t", T_TIMES}, {"error", T_ERROR},
};

/* The str value of key in map o, NULL if absent or not a str. */
static const msgpack_object *
map_str(const msgpack_object *o, const char *key)
{
	size_t i, n = strlen(key);

	for (i = 0; i < o->via.map.size; i++)
		if (str_is(&o->via.map.ptr[i].key, key, n))
			return o->via.map.ptr[i].val.type == MSGPACK_OBJECT_STR ?
			       &o->via.map.ptr[i].val : NULL;
	return NULL;
}

static int
type_ok(const msgpack_object *o, int type)
{
	static const char *const finish[] = { "stop", "length", "cancelled", "timeout", "error" };
	double d;
	int64_t i64;
	size_t i;

	switch (type) {
	case T_STR: return o->type == MSGPACK_OBJECT_STR;
	case T_UINT: return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
	case T_INT: return as_int(o, &i64);
	case T_NUM: return as_num(o, &d);
	case T_BOOL: return o->type == MSGPACK_OBJECT_BOOLEAN;
	case T_UINTS:
	case T_STRS:
	case T_CHAT:
		if (o->type != MSGPACK_OBJECT_ARRAY)
			return 0;
		for (i = 0; i < o->via.array.size; i++) {
			const msgpack_object *e = &o->via.array.ptr[i];

			if (type == T_UINTS && e->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
				return 0;
			if (type == T_STRS && e->type != MSGPACK_OBJECT_STR)
				return 0;
			if (type == T_CHAT && (e->type != MSGPACK_OBJECT_MAP ||
					       !map_str(e, "role") || !map_str(e, "content")))
				return 0;
		}
		return 1;
	case T_FINISH:
		if (o->type != MSGPACK_OBJECT_STR)
			return 0;
		for (i = 0; i < sizeof finish / sizeof finish[0]; i++)
			if (str_is(o, finish[i], strlen(finish[i])))
				return 1;
		return 0;
	case T_USAGE:
	case T_TIMES:
		if (o->type != MSGPACK_OBJECT_MAP)
			return 0;
		for (i = 0; i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];

			if (kv->key.type != MSGPACK_OBJECT_STR)
				return 0;
			if (type == T_USAGE && kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
				return 0;
			if (type == T_TIMES && !as_num(&kv->val, &d))
				return 0;
		}
		return 1;
	case T_ERROR:
		return o->type == MSGPACK_OBJECT_MAP && map_str(o, "code") && map_str(o, "message");
	}
	return 0;
}

static int
check(const msg *m, const struct keytype *kt, size_t nkt, int need_id,
      char *err, size_t errlen)
{
	const msgpack_object *o;
	size_t i;

	if (m->root.type != MSGPACK_OBJECT_MAP) {
		snprintf(err, errlen, "message is not a map");
		return -1;
	}
	if (need_id && !get(m, "id")) {
		snprintf(err, errlen, "key \"id\" is missing");
		return -1;
	}
	for (i = 0; i < nkt; i++) {
		o = get(m, kt[i].key);
		if (o && !type_ok(o, kt[i].type)) {
			snprintf(err, errlen, "key \"%s\" must be %s", kt[i].key, t_what[kt[i].type]);
			return -1;
		}
	}
	return 0;
}

int
msg_check_request(const msg *m, char *err, size_t errlen)
{
	return check(m, request_keys, sizeof request_keys / sizeof request_keys[0], 1, err, errlen);
}

int
msg_check_event(const msg *m, char *err, size_t errlen)
{
	return check(m, event_keys, sizeof event_keys / sizeof event_keys[0], 0, err, errlen);
}

/* ---- writing -------------------------------------------------------------- */

void
msg_pk_init(msgpack_packer *pk, msgpack_sbuffer *sb)
{
	msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
}

void
msg_pk_strn(msgpack_packer *pk, const char *s, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

void
msg_pk_str(msgpack_packer *pk, const char *s)
{
	msg_pk_strn(pk, s, strlen(s));
}

static int
dropped(const msgpack_object *key, const char *const *drop, size_t ndrop)
{
	size_t i, n;

	if (key->type != MSGPACK_OBJECT_STR)
		return 0;
	n = key->via.str.size;
	for (i = 0; i < ndrop; i++)
		if (strnlen(drop[i], n + 1) == n && (n == 0 || memcmp(drop[i], key->via.str.ptr, n) == 0))
			return 1;
	return 0;
}

void
msg_pk_passthrough(msgpack_packer *pk, const msg *m,
		   const char *const *drop, size_t ndrop, size_t nnew)
{
	const unsigned char *q = NULL, *end = NULL, *run = NULL, *next;
	const msgpack_object_kv *kv;
	size_t i, n, kept = 0, hl;
	uint64_t cnt;

	if (m->root.type != MSGPACK_OBJECT_MAP) {
		msgpack_pack_map(pk, nnew);
		return;
	}
	kv = m->root.via.map.ptr;
	n = m->root.via.map.size;
	for (i = 0; i < n; i++)
		kept += !dropped(&kv[i].key, drop, ndrop);
	msgpack_pack_map(pk, kept + nnew);

	/* The kept pairs are copied byte for byte from the message's own bytes,
	 * in runs; the objects are packed only where raw does not match. */
	if (m->raw && m->len) {
		q = (const unsigned char *)m->raw;
		end = q + m->len;
		if (hdr(q, m->len, &hl, &cnt) == K_MAP && cnt == n)
			q += hl;
		else
			q = NULL;
	}
	for (i = 0; i < n; i++) {
		int keep = !dropped(&kv[i].key, drop, ndrop);

		if (q) {
			next = skip_obj(q, end);
			next = next ? skip_obj(next, end) : NULL;
			if (next) {
				if (keep && !run)
					run = q;
				if (!keep && run) {
					pk->callback(pk->data, (const char *)run, (size_t)(q - run));
					run = NULL;
				}
				q = next;
				continue;
			}
			if (run)
				pk->callback(pk->data, (const char *)run, (size_t)(q - run));
			run = q = NULL;
		}
		if (keep) {
			msgpack_pack_object(pk, kv[i].key);
			msgpack_pack_object(pk, kv[i].val);
		}
	}
	if (run)
		pk->callback(pk->data, (const char *)run, (size_t)(q - run));
}

void
msg_pk_error_pair(msgpack_packer *pk, const char *code, const char *message)
{
	msg_pk_str(pk, "error");
	msgpack_pack_map(pk, 2);
	msg_pk_str(pk, "code");
	msg_pk_str(pk, code ? code : "internal");
	msg_pk_str(pk, "message");
	msg_pk_str(pk, message ? message : "");
}

void
msg_pk_error(msgpack_packer *pk, const char *id, size_t idlen,
	     const char *code, const char *message)
{
	int has_id = id && idlen != (size_t)-1;

	msgpack_pack_map(pk, has_id ? 3 : 2);
	if (has_id) {
		msg_pk_str(pk, "id");
		msg_pk_strn(pk, id, idlen);
	}
	msg_pk_str(pk, "finish");
	msg_pk_str(pk, "error");
	msg_pk_error_pair(pk, code, message);
}

uint64_t
msg_hash_id(const char *id, size_t n)
{
	uint64_t h = 14695981039346656037ull;   /* FNV-1a 64-bit offset basis */

	while (n--)
		h = (h ^ (unsigned char)*id++) * 1099511628211ull;
	return h;
}
