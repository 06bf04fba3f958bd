/* bench_native: `sluice bench -u ENDPOINT`, the client of a sluice endpoint
 * (unix:, tcp:, redis://). One connection carries every request of a run,
 * told apart by id ("b<run>.<index>"); each is a streamed request with
 * ignore_eos, and its events are timed as they are read: the first event with
 * tokens is the first token, every later one a chunk, the one with "finish"
 * the end. Whatever the server sends, a request fails (and is counted) rather
 * than bench: an event that breaks the schema, more tokens than max_tokens,
 * an error event; a connection lost fails everything in flight. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis.h>

#include "addr.h"
#include "bench_int.h"
#include "die.h"
#include "io.h"
#include "msg.h"

typedef struct native {
	io_loop *loop;
	io_conn *conn;
	msgpack_sbuffer sb;
	msgpack_packer pk;
} native;

static native *
st(bench *b)
{
	return bench_target_of(b)->cl;
}

/* The index of the request an id names in the current run, or -1. */
static long
id_index(bench *b, const msg *m)
{
	const char *id, *p, *end;
	unsigned long run = 0, idx = 0;
	size_t n;

	if (msg_str(m, "id", &id, &n) != 1 || n < 4 || n > 40 || id[0] != 'b')
		return -1;
	end = id + n;
	for (p = id + 1; p < end && *p >= '0' && *p <= '9'; p++)
		run = run * 10 + (unsigned long)(*p - '0');
	if (p == id + 1 || p == end || *p != '.' || run != bench_target_of(b)->run)
		return -1;
	for (p++; p < end && *p >= '0' && *p <= '9'; p++)
		idx = idx * 10 + (unsigned long)(*p - '0');
	if (p != end || idx > (1ul << 40))
		return -1;
	return (long)idx;
}

static int64_t
usage_key(const msgpack_object *u, const char *key)
{
	size_t k = strlen(key);
	uint32_t i;

	for (i = 0; i < u->via.map.size; i++) {
		const msgpack_object *kk = &u->via.map.ptr[i].key, *v = &u->via.map.ptr[i].val;

		if (kk->type == MSGPACK_OBJECT_STR && kk->via.str.size == k && !memcmp(kk->via.str.ptr, key, k))
			return v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX ?
				(int64_t)v->via.u64 : -1;
	}
	return -1;
}

static void
on_event(io_loop *l, io_conn *c, const msg *m, void *ud)
{
	bench *b = ud;
	bench_req *r;
	const msgpack_object *tok, *err, *u;
	const char *fin, *code;
	size_t nfin, ncode;
	char why[256];
	long i = id_index(b, m);

	(void)l, (void)c;
	if (i < 0 || !(r = bench_inflight(b, (size_t)i)))
		return;                 /* not ours, or given up on already */
	if (msg_check_event(m, why, sizeof why) < 0) {
		info_x("request %ld: %s", i, why);
		bench_fail(b, (size_t)i, "protocol", 8);
		return;
	}
	err = msg_get(m, "error");
	if (err && err->type != MSGPACK_OBJECT_NIL) {
		if (msg_str(m, "error", &code, &ncode) == 1) {
			bench_fail(b, (size_t)i, code, ncode);   /* an error given as a bare string */
			return;
		}
		code = "error", ncode = 5;
		if (err->type == MSGPACK_OBJECT_MAP) {
			uint32_t k;

			for (k = 0; k < err->via.map.size; k++) {
				const msgpack_object *kk = &err->via.map.ptr[k].key, *v = &err->via.map.ptr[k].val;

				if (kk->type == MSGPACK_OBJECT_STR && kk->via.str.size == 4 &&
				    !memcmp(kk->via.str.ptr, "code", 4) && v->type == MSGPACK_OBJECT_STR &&
				    v->via.str.size) {
					code = v->via.str.ptr;
					ncode = v->via.str.size;
				}
			}
		}
		bench_fail(b, (size_t)i, code, ncode);
		return;
	}
	tok = msg_get(m, "tokens");
	if (tok && tok->type == MSGPACK_OBJECT_ARRAY && tok->via.array.size) {
		if (r->out_tokens + tok->via.array.size > r->max_tokens) {
			info_x("request %ld: more tokens than max_tokens %u", i, r->max_tokens);
			bench_fail(b, (size_t)i, "protocol", 8);
			return;
		}
		bench_chunk(b, (size_t)i, tok->via.array.size);
		if (!bench_inflight(b, (size_t)i))
			return;
	}
	if (msg_str(m, "finish", &fin, &nfin) == 1) {
		if ((nfin == 6 && !memcmp(fin, "length", 6)) || (nfin == 4 && !memcmp(fin, "stop", 4))) {
			bench_usage us = BENCH_USAGE_NONE;

			u = msg_get(m, "usage");
			if (u && u->type == MSGPACK_OBJECT_MAP) {
				/* output tokens are those that came, counted, not the
				 * server's word for them */
				us.prompt = usage_key(u, "prompt_tokens");
				us.cached = usage_key(u, "cached_tokens");
			}
			bench_finish(b, (size_t)i, &us);
		} else {
			bench_fail(b, (size_t)i, fin, nfin);     /* cancelled, timeout, error */
		}
	}
}

static void
on_bad(io_loop *l, io_conn *c, const char *why, void *ud)
{
	(void)l, (void)c, (void)ud;
	/* a message too big to read: its request (whose id is unknown) will time out */
	info_x("a message from the target was dropped: %s", why);
}

static void
on_close(io_loop *l, io_conn *c, const char *why, void *ud)
{
	bench *b = ud;

	(void)l, (void)c;
	st(b)->conn = NULL;
	bench_lost(b, "disconnected", why ? why : "the target closed the connection");
}

/* A Redis endpoint is dialled lazily (rq retries until Redis is there):
 * whether it answers at all is asked here, once, with a PING. */
static int
redis_probe(const char *ep, char *err, size_t errlen)
{
	addr a = ADDR_ZERO;
	struct timeval tv = {5, 0};
	redisContext *c;
	redisReply *r = NULL;
	int ok = -1;

	if (addr_parse(ep, &a, err, errlen) < 0)
		return -1;
	if (a.kind != ADDR_REDIS) {
		addr_free(&a);
		return 0;
	}
	c = redisConnectWithTimeout(a.host, atoi(a.port), tv);
	if (!c || c->err)
		seterr(err, errlen, "unable to connect to %s: %s", ep, c ? c->errstr : "out of memory");
	else if (!(r = redisCommand(c, "PING")) || r->type == REDIS_REPLY_ERROR)
		seterr(err, errlen, "unable to talk to %s: %s", ep, r ? r->str : c->errstr);
	else
		ok = 0;
	if (r)
		freeReplyObject(r);
	if (c)
		redisFree(c);
	addr_free(&a);
	return ok;
}

static int
n_open(bench *b, char *err, size_t errlen)
{
	bench_target *t = bench_target_of(b);
	native *s = t->cl;
	io_handler h = {0};

	if (!s) {
		s = t->cl = xcalloc(1, sizeof *s);
		msgpack_sbuffer_init(&s->sb);
		msg_pk_init(&s->pk, &s->sb);
		h.on_msg = on_event;
		h.on_bad = on_bad;
		h.on_close = on_close;
		s->loop = io_loop_new(&h, b);
	}
	if (redis_probe(t->endpoint, err, errlen) < 0)
		return -1;
	s->conn = io_loop_dial(s->loop, t->endpoint, NULL, err, errlen);
	if (!s->conn)
		return -1;
	info_x("connected to %s", t->endpoint);
	return 0;
}

static void
pk_id(native *s, unsigned run, size_t i)
{
	char id[48];

	snprintf(id, sizeof id, "b%u.%zu", run, i);
	msg_pk_str(&s->pk, "id");
	msg_pk_str(&s->pk, id);
}

static int
n_send(bench *b, size_t i, const bench_prompt *p)
{
	static const char *const drop[] = {"id", "stream", "ignore_eos", "max_tokens"};
	native *s = st(b);
	msg m = MSG_ZERO;
	uint32_t k;

	if (!s->conn)
		return -1;
	msgpack_sbuffer_clear(&s->sb);
	if (p->line) {
		m.root = *p->line;
		msg_pk_passthrough(&s->pk, &m, drop, 4, 4);
	} else {
		msgpack_pack_map(&s->pk, 5);
		if (p->tokens) {
			msg_pk_str(&s->pk, "tokens");
			msgpack_pack_array(&s->pk, p->ntok);
			for (k = 0; k < p->ntok; k++)
				msgpack_pack_uint32(&s->pk, p->tokens[k]);
		} else {
			msg_pk_str(&s->pk, "prompt");
			msg_pk_strn(&s->pk, p->text, p->ntext);
		}
	}
	pk_id(s, bench_target_of(b)->run, i);
	msg_pk_str(&s->pk, "max_tokens");
	msgpack_pack_uint32(&s->pk, p->max_tokens);
	msg_pk_str(&s->pk, "ignore_eos");
	msgpack_pack_true(&s->pk);
	msg_pk_str(&s->pk, "stream");
	msgpack_pack_true(&s->pk);
	return io_send(s->conn, s->sb.data, s->sb.size) < 0 ? -1 : 0;
}

static void
n_cancel(bench *b, size_t i)
{
	native *s = st(b);

	if (!s->conn)
		return;
	msgpack_sbuffer_clear(&s->sb);
	msgpack_pack_map(&s->pk, 2);
	pk_id(s, bench_target_of(b)->run, i);
	msg_pk_str(&s->pk, "cancel");
	msgpack_pack_true(&s->pk);
	io_send(s->conn, s->sb.data, s->sb.size);
}

static void
n_poll(bench *b, int ms)
{
	native *s = st(b);

	if (io_loop_run_once(s->loop, ms) < 0 && errno != EINTR)
		die_sys("unable to poll");
}

static void
n_close(bench *b)
{
	bench_target *t = bench_target_of(b);
	native *s = t->cl;

	if (!s)
		return;
	io_loop_free(s->loop);
	msgpack_sbuffer_destroy(&s->sb);
	free(s);
	t->cl = NULL;
}

const bench_client bench_native = {n_open, n_send, n_cancel, n_poll, n_close};
