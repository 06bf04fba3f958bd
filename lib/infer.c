/* infer: the engine program (see infer.h and infer-cpu(1)). One thread
 * runs an io_loop for the endpoints and, between polls, one scheduler step:
 * new requests join the running batch at the next step, events go out as
 * soon as a step has produced them. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat.h"
#include "daemon.h"
#include "die.h"
#include "fetch.h"
#include "infer.h"
#include "io.h"
#include "msg.h"
#include "ppl.h"
#include "sample.h"
#include "stats.h"
#include "tokenize.h"

#define USAGE "infer-cpu [-m model] [-l endpoint]... [-t threads] [--ctx N] [--kv-mem BYTES] " \
	"[--block-size N] [--max-seqs N] [--max-batch-tokens N] [--max-queue N] [--max-queue-per-conn N] " \
	"[--max-tokens N] [--temperature F] [--no-prefix-cache] [--text] [--chat-template NAME] " \
	"[--max-connections N] [--backlog N] [--read-timeout S] [--max-partial BYTES] " \
	"[--write-buffer BYTES] [--write-timeout S] [-d fd] [-q] " \
	"| infer-cpu [-m model] [-t threads] --perplexity FILE [--ppl-ctx N]"

#define MAX_STOP 16          /* stop strings per request */
#define MAX_STOP_LEN 256     /* bytes of one stop string */

/* ------------------------------------------------------------- state */

typedef struct conn_state {
	io_conn *conn;
	uint32_t live;           /* requests in flight */
	int eof;                 /* the peer sent its last message */
	int paused;              /* stdio: not read while the queue is full */
	int backlogged;          /* its unsent output is above --write-buffer: its sequences wait */
	uint64_t vt;             /* fair queueing: the order its next request gets at the least */
	struct conn_state *next, *prev;   /* every connection */
} conn_state;

typedef struct req {
	io_conn *conn;
	char *id;
	size_t idlen;
	uint64_t hash;
	struct req *hnext;       /* in the id table */
	struct req *next, *prev; /* in the list of all requests */
	char *raw;               /* the request's bytes, for the keys passed through */
	size_t rawlen;
	sched_seq *seq;
	sample_params sp;
	sample_rng rng;
	uint32_t max_new;
	int stream, ignore_eos;
	uint32_t n_logprobs;
	char *stop[MAX_STOP];
	size_t stoplen[MAX_STOP];
	uint32_t nstop;
	size_t maxstop;
	char *text;              /* generated text so far */
	size_t textlen, textcap;
	uint32_t *tok_end;       /* text offset after each generated token */
	sample_out *lp;          /* per generated token, when logprobs were asked */
	uint32_t n_gen, gencap, n_emitted;
	size_t text_emitted;
	uint32_t n_prompt;
	double t_arrived, t_sched, t_first, t_done, deadline;
	double t_last;           /* the last token's time, for inter-token latency */
	io_timer dl;             /* its deadline (timeout_ms) */
} req;

typedef struct engine {
	const backend *be;
	void *bk;
	model m;
	sched *s;
	io_loop *loop;
	sample_ws ws;
	tokenize_opts topts;
	int chat;
	uint32_t max_ctx, max_queue, max_queue_conn, max_tokens_default, max_seqs;
	double write_timeout;    /* seconds a client may leave --write-buffer of answers unread */
	size_t write_buffer;
	float temperature;
	int text;                /* add "text" to events */
	int stdio;               /* reading stdin: stop at its end */
	int stopping;            /* a signal came: finish what runs, take nothing new */
	io_timer flow_t;         /* while a client is backlogged: --write-timeout checks */
	conn_state *conns;
	uint64_t vnow;           /* fair queueing: the order of the latest request started */
	int bad_input;           /* the stdin stream was broken: exit 111 once all is answered */
	req **tab;               /* id table, chained */
	size_t tabn;             /* buckets (power of two) */
	req *all;
	uint32_t n_req;
	uint64_t seed_ctr;
	tok_ids ids;
	msgpack_sbuffer sb;
	uint64_t steps, served;
	stats st;                /* what the stats query answers (sluice(7)) */
	int quiet;
} engine;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------- id table */

static uint64_t
req_key(const io_conn *c, const char *id, size_t n)
{
	return msg_hash_id(id, n) ^ ((uint64_t)(uintptr_t)c * 0x9e3779b97f4a7c15ULL);
}

static req *
req_find(engine *e, const io_conn *c, const char *id, size_t n)
{
	uint64_t h = req_key(c, id, n);
	req *r;

	for (r = e->tab[h & (e->tabn - 1)]; r; r = r->hnext)
		if (r->hash == h && r->conn == c && r->idlen == n && !memcmp(r->id, id, n))
			return r;
	return 0;
}

static void
tab_grow(engine *e)
{
	size_t n = e->tabn * 2, i;
	req **t = xcalloc(n, sizeof *t);

	for (i = 0; i < e->tabn; i++) {
		req *r = e->tab[i], *nx;
		for (; r; r = nx) {
			nx = r->hnext;
			r->hnext = t[r->hash & (n - 1)];
			t[r->hash & (n - 1)] = r;
		}
	}
	free(e->tab);
	e->tab = t;
	e->tabn = n;
}

static void
req_link(engine *e, req *r)
{
	size_t b;

	if (e->n_req + 1 > e->tabn)
		tab_grow(e);
	b = r->hash & (e->tabn - 1);
	r->hnext = e->tab[b];
	e->tab[b] = r;
	r->next = e->all;
	r->prev = 0;
	if (e->all)
		e->all->prev = r;
	e->all = r;
	e->n_req++;
	((conn_state *)io_conn_data(r->conn))->live++;
}

static void
req_free(engine *e, req *r)
{
	req **pp = &e->tab[r->hash & (e->tabn - 1)];
	conn_state *cs = io_conn_data(r->conn);
	uint32_t i;

	io_timer_stop(e->loop, &r->dl);
	while (*pp && *pp != r)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = r->hnext;
	if (r->prev)
		r->prev->next = r->next;
	else
		e->all = r->next;
	if (r->next)
		r->next->prev = r->prev;
	e->n_req--;
	if (r->seq)
		sched_drop(e->s, r->seq);
	cs->live--;
	if (cs->eof && !cs->live)
		io_shutdown(r->conn);
	for (i = 0; i < r->nstop; i++)
		free(r->stop[i]);
	free(r->id);
	free(r->raw);
	free(r->text);
	free(r->tok_end);
	free(r->lp);
	free(r);
}

/* ------------------------------------------------------------- events */

static void
pack_error(engine *e, io_conn *c, const char *id, size_t idlen, const char *code, const char *message)
{
	msgpack_packer pk;

	stats_error(&e->st, code);
	e->sb.size = 0;
	msg_pk_init(&pk, &e->sb);
	msg_pk_error(&pk, id, idlen, code, message);
	io_send(c, e->sb.data, e->sb.size);
}

/* A second request with the id of one in flight is answered by an event
 * that does not carry "id" (so no client takes it for the first request's
 * answer) but "duplicate_id", with error code duplicate_id. */
static void
pack_duplicate(engine *e, io_conn *c, const char *id, size_t idlen)
{
	msgpack_packer pk;

	stats_error(&e->st, "duplicate_id");
	e->sb.size = 0;
	msg_pk_init(&pk, &e->sb);
	msgpack_pack_map(&pk, 3);
	msg_pk_str(&pk, "duplicate_id");
	msg_pk_strn(&pk, id, idlen);
	msg_pk_str(&pk, "finish");
	msg_pk_str(&pk, "error");
	msg_pk_str(&pk, "error");
	msgpack_pack_map(&pk, 2);
	msg_pk_str(&pk, "code");
	msg_pk_str(&pk, "duplicate_id");
	msg_pk_str(&pk, "message");
	msg_pk_str(&pk, "a request with this id is in flight on this connection; this one was ignored");
	io_send(c, e->sb.data, e->sb.size);
}

/* The answer to {"op": "stats"}: at once, whatever is queued. */
static void
pack_stats(engine *e, io_conn *c, const msg *m)
{
	msgpack_packer pk;
	kv_pool *kv = sched_kv(e->s);
	stats_now sn = STATS_NOW_NONE;

	sn.draining = e->stopping;
	sn.connections = (int64_t)io_loop_nconns(e->loop);
	sn.running = sched_n_running(e->s);
	sn.waiting = sched_n_waiting(e->s);
	sn.max_running = e->max_seqs;
	sn.kv_used = kv_used(kv);
	sn.kv_total = kv_n_blocks(kv);
	e->sb.size = 0;
	msg_pk_init(&pk, &e->sb);
	stats_pack(&pk, m, &e->st, &sn);
	io_send(c, e->sb.data, e->sb.size);
}

/* the keys of a request that are the request's, not the user's: dropped from events */
static const char *const req_keys[] = {
	"id", "prompt", "messages", "tokens", "max_tokens", "temperature", "top_k", "top_p",
	"min_p", "repeat_penalty", "presence_penalty", "frequency_penalty", "seed", "stop",
	"stream", "priority", "timeout_ms", "cancel", "ignore_eos", "logprobs", "text",
	"finish", "usage", "t", "error",
};

/* The length of the longest suffix of text that is a proper prefix of a
 * stop string: those bytes may yet become a stop and are held back. */
static size_t
stop_hold(const req *r)
{
	size_t best = 0, i, k;

	for (i = 0; i < r->nstop; i++)
		for (k = r->stoplen[i] - 1; k > best; k--)
			if (k <= r->textlen && !memcmp(r->text + r->textlen - k, r->stop[i], k)) {
				best = k;
				break;
			}
	return best;
}

/* bytes at the end of p[0..n) that start an unfinished UTF-8 sequence */
static size_t
utf8_tail(const char *p, size_t n)
{
	size_t i, k;

	for (i = 1; i <= 3 && i <= n; i++) {
		unsigned char ch = (unsigned char)p[n - i];
		if ((ch & 0xc0) == 0x80)
			continue;
		k = ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : ch >= 0xc0 ? 2 : 1;
		return k > i ? i : 0;
	}
	return 0;
}

/* Sends the tokens not yet sent (up to upto), and when finish is set the
 * final event with usage, timestamps and the user's keys. */
static void
emit(engine *e, req *r, uint32_t upto, const char *finish)
{
	msgpack_packer pk;
	uint32_t i, nnew = 0, n = upto - r->n_emitted;
	size_t tend = upto ? r->tok_end[upto - 1] : 0, tlen = 0;

	if (!finish && n == 0)
		return;
	if (e->text) {
		if (!finish)
			tend -= utf8_tail(r->text, tend);
		tlen = tend > r->text_emitted ? tend - r->text_emitted : 0;
	}
	e->sb.size = 0;
	msg_pk_init(&pk, &e->sb);
	nnew = 2 + (e->text != 0) + (r->n_logprobs > 0) + (finish ? 3 : 0);
	if (finish) {
		msg m = MSG_ZERO;
		msgpack_zone z;
		const char *err;

		/* the user's own keys come back on the final event */
		msgpack_zone_init(&z, 1024);
		if (msg_unpack(r->raw, r->rawlen, 0, &z, &m, &err) == MSG_GOT)
			msg_pk_passthrough(&pk, &m, req_keys, sizeof req_keys / sizeof *req_keys, nnew);
		else
			msgpack_pack_map(&pk, nnew);
		msgpack_zone_destroy(&z);
	} else {
		msgpack_pack_map(&pk, nnew);
	}
	msg_pk_str(&pk, "id");
	msg_pk_strn(&pk, r->id, r->idlen);
	msg_pk_str(&pk, "tokens");
	msgpack_pack_array(&pk, n);
	for (i = r->n_emitted; i < upto; i++)
		msgpack_pack_uint32(&pk, r->seq ? r->seq->tokens[r->n_prompt + i] : 0);
	if (e->text) {
		msg_pk_str(&pk, "text");
		msg_pk_strn(&pk, r->text + r->text_emitted, tlen);
		r->text_emitted += tlen;
	}
	if (r->n_logprobs) {
		msg_pk_str(&pk, "logprobs");
		msgpack_pack_array(&pk, n);
		for (i = r->n_emitted; i < upto; i++) {
			const sample_out *o = &r->lp[i];
			uint32_t k;

			msgpack_pack_map(&pk, 3);
			msg_pk_str(&pk, "token");
			msgpack_pack_uint32(&pk, o->token);
			msg_pk_str(&pk, "logprob");
			msgpack_pack_float(&pk, o->logprob);
			msg_pk_str(&pk, "top");
			msgpack_pack_array(&pk, o->n_top);
			for (k = 0; k < o->n_top; k++) {
				msgpack_pack_array(&pk, 2);
				msgpack_pack_uint32(&pk, o->top_id[k]);
				msgpack_pack_float(&pk, o->top_lp[k]);
			}
		}
	}
	if (finish) {
		msg_pk_str(&pk, "finish");
		msg_pk_str(&pk, finish);
		msg_pk_str(&pk, "usage");
		msgpack_pack_map(&pk, 3);
		msg_pk_str(&pk, "prompt_tokens");
		msgpack_pack_uint32(&pk, r->n_prompt);
		msg_pk_str(&pk, "completion_tokens");
		msgpack_pack_uint32(&pk, upto);
		msg_pk_str(&pk, "cached_tokens");
		msgpack_pack_uint32(&pk, r->seq ? r->seq->cached : 0);
		msg_pk_str(&pk, "t");
		msgpack_pack_map(&pk, 2 + (r->t_sched > 0) + (r->t_first > 0));
		msg_pk_str(&pk, "arrived");
		msgpack_pack_double(&pk, r->t_arrived);
		if (r->t_sched > 0) {
			msg_pk_str(&pk, "scheduled");
			msgpack_pack_double(&pk, r->t_sched);
		}
		if (r->t_first > 0) {
			msg_pk_str(&pk, "first_token");
			msgpack_pack_double(&pk, r->t_first);
		}
		msg_pk_str(&pk, "done");
		msgpack_pack_double(&pk, r->t_done);
	}
	r->n_emitted = upto;
	io_send(r->conn, e->sb.data, e->sb.size);
}

/* Ends r: the tokens before any stop string, the final event, and its blocks freed. */
static void
finish(engine *e, req *r, const char *why, uint32_t upto)
{
	r->t_done = now();
	e->served++;
	stats_finish(&e->st, why);
	stats_times(&e->st, r->t_arrived, r->t_sched, r->t_first, r->t_done);
	if (r->seq)
		e->st.preemptions += (uint64_t)r->seq->preempted;
	if (upto < r->n_emitted)
		upto = r->n_emitted;
	emit(e, r, upto, why);
	req_free(e, r);
}

/* ------------------------------------------------------------- requests */

static void
parse_sampling(engine *e, req *r, const msg *m)
{
	double d;
	uint64_t u;
	int64_t i;

	r->sp = (sample_params)SAMPLE_PARAMS_DEFAULT;
	r->sp.temperature = e->temperature;
	if (msg_num(m, "temperature", &d) == 1)
		r->sp.temperature = (float)d;
	if (msg_num(m, "top_k", &d) == 1 && d > 0)
		r->sp.top_k = d > 1e9 ? 0 : (uint32_t)d;
	if (msg_num(m, "top_p", &d) == 1)
		r->sp.top_p = (float)d;
	if (msg_num(m, "min_p", &d) == 1)
		r->sp.min_p = (float)d;
	if (msg_num(m, "repeat_penalty", &d) == 1 && d > 0)
		r->sp.repeat_penalty = (float)d;
	if (msg_num(m, "presence_penalty", &d) == 1)
		r->sp.presence_penalty = (float)d;
	if (msg_num(m, "frequency_penalty", &d) == 1)
		r->sp.frequency_penalty = (float)d;
	if (msg_uint(m, "seed", &u) == 1)
		r->sp.seed = u;
	else if (msg_int(m, "seed", &i) == 1)
		r->sp.seed = (uint64_t)i;
	else if (msg_num(m, "seed", &d) == 1)
		r->sp.seed = (uint64_t)(int64_t)d;
	else
		r->sp.seed = (uint64_t)time(0) * 0x9e3779b97f4a7c15ULL + ++e->seed_ctr;
	if (msg_uint(m, "logprobs", &u) == 1)
		r->n_logprobs = u > 20 ? 20 : (uint32_t)u;
	r->sp.n_logprobs = r->n_logprobs;
	sample_seed(&r->rng, r->sp.seed);
}

/* stop strings: 0 ok, -1 with err */
static int
parse_stop(req *r, const msg *m, char *err, size_t errlen)
{
	const msgpack_object *o = msg_get(m, "stop");
	uint32_t i;

	if (!o || o->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return 0;   /* msg_check_request refused other types */
	if (o->via.array.size > MAX_STOP) {
		seterr(err, errlen, "at most %d stop strings", MAX_STOP);
		return -1;
	}
	for (i = 0; i < o->via.array.size; i++) {
		const msgpack_object *s = &o->via.array.ptr[i];
		size_t n = s->via.str.size;

		if (n == 0)
			continue;
		if (n > MAX_STOP_LEN) {
			seterr(err, errlen, "a stop string is longer than %d bytes", MAX_STOP_LEN);
			return -1;
		}
		r->stop[r->nstop] = xmalloc(n);
		memcpy(r->stop[r->nstop], s->via.str.ptr, n);
		r->stoplen[r->nstop++] = n;
		if (n > r->maxstop)
			r->maxstop = n;
	}
	return 0;
}

static void on_deadline(io_loop *l, io_timer *t, void *ud);

static void
on_request(engine *e, io_conn *c, const msg *m)
{
	const char *id;
	size_t idlen, ntok = 0, i;
	char err[512];
	const msgpack_object *to;
	const uint32_t *ids;
	uint32_t n, vocab = e->m.n_vocab;
	int cancel = 0, b;
	int64_t prio = 0;
	uint64_t u;
	conn_state *cs = io_conn_data(c);
	req *r;

	switch (stats_is_query(m, err, sizeof err)) {
	case 1:
		pack_stats(e, c, m);
		return;
	case -1:
		pack_error(e, c, 0, (size_t)-1, "bad_request", err);
		return;
	}
	if (msg_str(m, "id", &id, &idlen) != 1) {
		pack_error(e, c, 0, (size_t)-1, "bad_request", "request has no id (a string)");
		return;
	}
	if (msg_bool(m, "cancel", &cancel) == 1 && cancel) {
		if ((r = req_find(e, c, id, idlen)))
			finish(e, r, "cancelled", r->n_emitted);
		return;
	}
	if (msg_check_request(m, err, sizeof err) < 0) {
		pack_error(e, c, id, idlen, "bad_request", err);
		return;
	}
	if (req_find(e, c, id, idlen)) {
		pack_duplicate(e, c, id, idlen);
		return;
	}
	if (e->stopping) {
		stats_reject(&e->st, "draining");
		pack_error(e, c, id, idlen, "draining", "the engine is shutting down");
		return;
	}
	/* a pipeline's producer is made to wait (on_request pauses it); a
	 * client of a socket is told at once */
	if (!io_conn_is_stdio(c) && sched_n_waiting(e->s) >= e->max_queue) {
		snprintf(err, sizeof err, "%u requests are waiting already (--max-queue)", e->max_queue);
		e->st.rejections[ST_REJ_OVERLOADED]++;
		pack_error(e, c, id, idlen, "overloaded", err);
		return;
	}
	if (!io_conn_is_stdio(c) && cs->live >= e->max_queue_conn) {
		snprintf(err, sizeof err, "this connection has %u requests in flight already (--max-queue-per-conn)",
			 cs->live);
		e->st.rejections[ST_REJ_OVERLOADED]++;
		pack_error(e, c, id, idlen, "overloaded", err);
		return;
	}
	/* the prompt: tokens as given, else tokenized here */
	to = msg_get(m, "tokens");
	if (to && to->type == MSGPACK_OBJECT_ARRAY) {
		n = to->via.array.size;
		if (n > e->max_ctx) {
			snprintf(err, sizeof err, "the prompt has %u tokens; the context holds %u", n, e->max_ctx);
			pack_error(e, c, id, idlen, "too_long", err);
			return;
		}
		e->ids.n = 0;
		for (i = 0; i < n; i++) {
			uint64_t v = to->via.array.ptr[i].via.u64;
			if (v >= vocab) {
				snprintf(err, sizeof err, "token %llu at %zu is not in the vocabulary (%u tokens)",
					 (unsigned long long)v, i, vocab);
				pack_error(e, c, id, idlen, "bad_request", err);
				return;
			}
			if (e->ids.n == e->ids.cap) {
				e->ids.cap = e->ids.cap ? e->ids.cap * 2 : 1024;
				e->ids.v = xrealloc(e->ids.v, e->ids.cap * sizeof *e->ids.v);
			}
			e->ids.v[e->ids.n++] = (uint32_t)v;
		}
	} else if (tokenize_encode(e->m.tok, &e->topts, e->chat, m, &e->ids, &ntok, err, sizeof err) < 0) {
		pack_error(e, c, id, idlen, "bad_request", err);
		return;
	}
	ids = e->ids.v;
	n = (uint32_t)e->ids.n;
	if (n == 0) {
		pack_error(e, c, id, idlen, "bad_request", "the prompt is empty");
		return;
	}
	if (n >= e->max_ctx) {
		snprintf(err, sizeof err, "the prompt has %u tokens; the context holds %u", n, e->max_ctx);
		pack_error(e, c, id, idlen, "too_long", err);
		return;
	}
	r = xcalloc(1, sizeof *r);
	r->t_arrived = now();
	r->conn = c;
	r->idlen = idlen;
	r->id = xmalloc(idlen + 1);
	memcpy(r->id, id, idlen);
	r->id[idlen] = 0;
	r->hash = req_key(c, id, idlen);
	r->rawlen = m->len;
	r->raw = xmalloc(m->len ? m->len : 1);
	memcpy(r->raw, m->raw, m->len);
	r->n_prompt = n;
	r->max_new = e->max_tokens_default;
	if (msg_uint(m, "max_tokens", &u) == 1)
		r->max_new = u > e->max_ctx ? e->max_ctx : (uint32_t)u;
	if (msg_bool(m, "stream", &b) == 1)
		r->stream = b;
	if (msg_bool(m, "ignore_eos", &b) == 1)
		r->ignore_eos = b;
	if (msg_int(m, "priority", &prio) != 1)
		prio = 0;
	r->dl = (io_timer)IO_TIMER_ZERO;
	if (msg_uint(m, "timeout_ms", &u) == 1)
		r->deadline = r->t_arrived + u / 1000.0;
	parse_sampling(e, r, m);
	if (parse_stop(r, m, err, sizeof err) < 0) {
		pack_error(e, c, id, idlen, "bad_request", err);
		for (i = 0; i < r->nstop; i++)
			free(r->stop[i]);
		free(r->id);
		free(r->raw);
		free(r);
		return;
	}
	req_link(e, r);
	if (r->deadline > 0) {
		r->dl.cb = on_deadline;
		r->dl.ud = e;
		io_timer_after(e->loop, &r->dl, r->deadline - r->t_arrived);
	}
	e->st.requests++;
	e->st.prompt_tokens += n;
	if (r->max_new == 0) {
		finish(e, r, "length", 0);
		return;
	}
	r->seq = sched_add(e->s, r, ids, n, r->max_new, prio, 0);
	/* fair queueing: within a priority, connections take turns (start-time
	 * fair queueing with a cost of one per request), so a client with a
	 * backlog of thousands delays another's request by a few steps only */
	if (cs->vt < e->vnow)
		cs->vt = e->vnow;
	sched_set_order(e->s, r->seq, cs->vt++);
	r->seq->paused = cs->backlogged;
	if (io_conn_is_stdio(c) && (sched_n_waiting(e->s) >= e->max_queue || cs->live >= e->max_queue_conn)) {
		cs->paused = 1;
		io_conn_pause(c, 1);
	}
}

/* ------------------------------------------------------------- io */

static void
on_open(io_loop *l, io_conn *c, void *ud)
{
	engine *e = ud;
	conn_state *cs = xcalloc(1, sizeof *cs);

	(void)l;
	cs->conn = c;
	cs->next = e->conns;
	if (e->conns)
		e->conns->prev = cs;
	e->conns = cs;
	io_conn_set_data(c, cs);
}

static void
on_msg(io_loop *l, io_conn *c, const msg *m, void *ud)
{
	(void)l;
	on_request(ud, c, m);
}

static void
on_bad(io_loop *l, io_conn *c, const char *why, void *ud)
{
	(void)l;
	pack_error(ud, c, 0, (size_t)-1, "bad_request", why);
}

static void
on_eof(io_loop *l, io_conn *c, void *ud)
{
	conn_state *cs = io_conn_data(c);

	(void)l;
	(void)ud;
	cs->eof = 1;
	if (!cs->live)
		io_shutdown(c);
}

static void
on_broken(io_loop *l, io_conn *c, const char *why, void *ud)
{
	engine *e = ud;
	char msg[512];

	(void)l;
	warn_x("%s: %s", io_conn_name(c), why);
	snprintf(msg, sizeof msg, "%s; the requests before it are answered, nothing after it is read", why);
	pack_error(e, c, 0, (size_t)-1, "bad_request", msg);
	if (io_conn_is_stdio(c))
		e->bad_input = 1;
}

static void
on_close(io_loop *l, io_conn *c, const char *why, void *ud)
{
	engine *e = ud;
	conn_state *cs = io_conn_data(c);
	uint32_t n = cs->live;
	req *r, *next;

	(void)l;
	/* nobody to answer: what it asked for is cancelled, its blocks freed */
	for (r = e->all; r; r = next) {
		next = r->next;
		if (r->conn == c)
			req_free(e, r);
	}
	e->st.gone += n;
	e->st.finished[ST_FIN_CANCELLED] += n;
	if (why && n)
		warn_x("%s: %s: %u request%s cancelled", io_conn_name(c), why, n, n == 1 ? "" : "s");
	else if (why)
		warn_x("%s: %s", io_conn_name(c), why);
	if (cs->prev)
		cs->prev->next = cs->next;
	else
		e->conns = cs->next;
	if (cs->next)
		cs->next->prev = cs->prev;
	free(cs);
	io_conn_set_data(c, 0);
}

/* ------------------------------------------------------------- sampling */

/* true when the text now ends with a stop string; *at is where it starts */
static int
stop_found(const req *r, size_t from, size_t *at)
{
	uint32_t i;

	for (i = 0; i < r->nstop; i++) {
		size_t n = r->stoplen[i], p;
		size_t start = from > n ? from - n + 1 : 0;
		if (n > r->textlen)
			continue;
		for (p = start; p + n <= r->textlen; p++)
			if (!memcmp(r->text + p, r->stop[i], n)) {
				*at = p;
				return 1;
			}
	}
	return 0;
}

/* Samples the next token of r from its logits row and decides whether r goes on. */
static void
advance(engine *e, req *r, float *logits, double t)
{
	sched_seq *q = r->seq;
	sample_out so;
	char piece[256];
	size_t pl, from = r->textlen, at;
	uint32_t tokn;

	sample_token(&r->sp, &r->rng, &e->ws, logits, e->m.n_vocab, q->tokens, q->n_tokens, &so);
	tokn = so.token;
	if (r->t_first == 0)
		r->t_first = t;
	else
		hist_observe(&e->st.h[HIST_ITL], HIST_ITL, t - r->t_last);
	r->t_last = t;
	e->st.generation_tokens++;
	if (!r->ignore_eos && tok_is_eog(e->m.tok, tokn)) {
		finish(e, r, "stop", r->n_gen);
		return;
	}
	sched_push(e->s, q, tokn);
	if (r->n_gen == r->gencap) {
		r->gencap = r->gencap ? r->gencap * 2 : 64;
		r->tok_end = xrealloc(r->tok_end, r->gencap * sizeof *r->tok_end);
		if (r->n_logprobs)
			r->lp = xrealloc(r->lp, r->gencap * sizeof *r->lp);
	}
	if (r->n_logprobs)
		r->lp[r->n_gen] = so;
	if (r->nstop || e->text) {
		pl = tok_piece(e->m.tok, tokn, 0, piece, sizeof piece);
		if (pl > sizeof piece)
			pl = 0;   /* no vocabulary entry is that long; never mind */
		if (r->textlen + pl > r->textcap) {
			r->textcap = (r->textlen + pl) * 2 + 64;
			r->text = xrealloc(r->text, r->textcap);
		}
		memcpy(r->text + r->textlen, piece, pl);
		r->textlen += pl;
	}
	r->tok_end[r->n_gen++] = (uint32_t)r->textlen;
	if (r->nstop && stop_found(r, from, &at)) {
		/* the answer ends before the token the stop string begins in */
		uint32_t k = 0;
		while (k < r->n_gen && r->tok_end[k] <= at)
			k++;
		r->textlen = at;
		if (k > 0 && r->tok_end[k - 1] > at)
			k--;
		r->tok_end[r->n_gen - 1] = (uint32_t)at;
		finish(e, r, "stop", k);
		return;
	}
	if (r->n_gen >= r->max_new) {
		finish(e, r, "length", r->n_gen);
		return;
	}
	if (q->n_tokens + 1 >= e->max_ctx) {
		finish(e, r, "length", r->n_gen);
		return;
	}
	if (r->stream) {
		/* hold back tokens that may be the start of a stop string */
		size_t safe = r->textlen - stop_hold(r);
		uint32_t k = r->n_gen;
		while (k > r->n_emitted && r->tok_end[k - 1] > safe)
			k--;
		emit(e, r, k, 0);
	}
}

/* Flow control, once per turn of the loop. A connection whose unsent
 * answers are above --write-buffer has its sequences paused (they keep
 * their place and blocks); one that stays there --write-timeout seconds
 * (not stdout, whose reader is the user's own pipeline) has its requests
 * ended with error slow_consumer. A paused stdin is read again once the
 * queue has room. */
static void
flow(engine *e)
{
	conn_state *cs;
	req *r, *next;
	int changed = 0;

	for (cs = e->conns; cs; cs = cs->next) {
		int b = io_conn_queued(cs->conn) > e->write_buffer;
		double stall;

		if (b != cs->backlogged)
			cs->backlogged = b, changed = 1;
		if (cs->paused && sched_n_waiting(e->s) < e->max_queue && cs->live < e->max_queue_conn) {
			cs->paused = 0;
			io_conn_pause(cs->conn, 0);
		}
		if (!b || !cs->live || io_conn_is_stdio(cs->conn) || e->write_timeout <= 0)
			continue;
		stall = io_conn_backlog(cs->conn);
		if (stall < e->write_timeout)
			continue;
		warn_x("%s: slow consumer: %zu bytes of answers unread for %.0f s (--write-timeout): "
		       "%u request%s ended", io_conn_name(cs->conn), io_conn_queued(cs->conn), stall,
		       cs->live, cs->live == 1 ? "" : "s");
		for (r = e->all; r; r = next) {
			next = r->next;
			if (r->conn != cs->conn)
				continue;
			e->st.finished[ST_FIN_ERROR]++;
			pack_error(e, r->conn, r->id, r->idlen, "slow_consumer",
				   "the client left its answers unread past --write-timeout");
			req_free(e, r);
		}
	}
	if (changed)
		for (r = e->all; r; r = r->next)
			if (r->seq)
				r->seq->paused = ((conn_state *)io_conn_data(r->conn))->backlogged;
	/* a backlogged client may sit still: look again in a second */
	for (cs = e->conns; cs; cs = cs->next)
		if (cs->backlogged && cs->live) {
			if (!io_timer_is_set(&e->flow_t))
				io_timer_after(e->loop, &e->flow_t, 1);
			break;
		}
}

/* A request's timeout_ms passed: it ends with what it has. */
static void
on_deadline(io_loop *l, io_timer *t, void *ud)
{
	req *r = (req *)((char *)t - offsetof(req, dl));

	(void)l;
	finish(ud, r, "timeout", r->n_emitted > r->n_gen ? r->n_emitted : r->n_gen);
}

static void
on_flow(io_loop *l, io_timer *t, void *ud)
{
	(void)l;
	(void)t;
	flow(ud);
}

/* One scheduler step: 1 if something ran. */
static int
step(engine *e)
{
	sched_batch *b = sched_step(e->s);
	sched_seq **qs;
	uint32_t n, i;
	double t;

	if (!b)
		return 0;
	t = now();
	qs = sched_stepped(e->s, &n);
	for (i = 0; i < n; i++) {
		req *r = qs[i]->ud;
		if (r->t_sched == 0) {
			r->t_sched = t;
			e->st.prefix_queries += r->n_prompt;
			e->st.prefix_hits += qs[i]->cached;
			if (qs[i]->order > e->vnow)
				e->vnow = qs[i]->order;
		}
	}
	e->be->forward(e->bk, b);
	sched_done(e->s);
	e->steps++;
	t = now();
	qs = sched_stepped(e->s, &n);
	for (i = 0; i < n; i++) {
		sched_seq *q = qs[i];
		if (!q || q->n_out == 0 || q->n_done != q->n_tokens)
			continue;
		advance(e, q->ud, b->logits + (size_t)q->out * e->m.n_vocab, t);
	}
	return 1;
}

/* ------------------------------------------------------------- options */

static uint64_t
parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || v <= 0)
		die_usage(USAGE);
	switch (*end) {
	case 0: break;
	case 'k': case 'K': v *= 1024; end++; break;
	case 'm': case 'M': v *= 1024 * 1024; end++; break;
	case 'g': case 'G': v *= 1024.0 * 1024 * 1024; end++; break;
	default: die_usage(USAGE);
	}
	if ((*end == 'i' || *end == 'I') && end[1] == 'B')
		end += 2;
	else if (*end == 'B' || *end == 'b')
		end++;
	if (*end || v > 1e15)
		die_usage(USAGE);
	return (uint64_t)v;
}

/* seconds, fractions allowed, 0 to a day (0: never) */
static double
parse_secs(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || !(v >= 0) || v > 86400)
		die_usage(USAGE);
	return v;
}

static uint32_t
parse_u32(const char *s, uint32_t lo, uint32_t hi)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		die_usage(USAGE);
	return (uint32_t)v;
}

static void
on_drain(void *ud)
{
	((engine *)ud)->stopping = 1;
}

/* everything answered, and the input ended or a signal came */
static int
is_done(void *ud)
{
	engine *e = ud;

	return !e->all && ((e->stdio && io_loop_nconns(e->loop) == 0) || e->stopping);
}

/* after every poll: flow control, then one step (1 if it ran: poll again
 * without sleeping) */
static int
on_turn(void *ud)
{
	flow(ud);
	return step(ud);
}

int
infer_main(int argc, char **argv, const backend *be)
{
	static const struct option lo[] = {
		{ "ctx", required_argument, 0, 'C' },
		{ "kv-mem", required_argument, 0, 'K' },
		{ "block-size", required_argument, 0, 'B' },
		{ "max-seqs", required_argument, 0, 'S' },
		{ "max-batch-tokens", required_argument, 0, 'N' },
		{ "max-queue", required_argument, 0, 'Q' },
		{ "max-queue-per-conn", required_argument, 0, 'q' + 256 },
		{ "max-connections", required_argument, 0, 'c' + 256 },
		{ "backlog", required_argument, 0, 'b' + 256 },
		{ "read-timeout", required_argument, 0, 'r' + 256 },
		{ "max-partial", required_argument, 0, 'p' + 256 },
		{ "write-buffer", required_argument, 0, 'w' + 256 },
		{ "write-timeout", required_argument, 0, 't' + 256 },
		{ "max-tokens", required_argument, 0, 'M' },
		{ "temperature", required_argument, 0, 'T' },
		{ "no-prefix-cache", no_argument, 0, 'P' },
		{ "text", no_argument, 0, 'x' },
		{ "chat-template", required_argument, 0, 'c' },
		{ "perplexity", required_argument, 0, 'p' },
		{ "ppl-ctx", required_argument, 0, 'X' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	engine E, *e = &E;
	static const daemon_ops ops = { on_drain, NULL, is_done, on_turn };
	const char *model_path = 0, *ppl_text = 0;
	int threads = 0, quiet = 0, caching = 1, c;
	daemon_cfg cfg = DAEMON_CFG_ZERO;
	uint32_t ctx = 0, bs = 16, max_seqs = 64, max_batch = 512, ppl_ctx = 512;
	uint64_t kv_mem = 0;
	char err[512], types[256];
	size_t block_bytes;
	uint32_t n_blocks;
	sched_opts so;
	io_handler h = { on_open, on_msg, on_bad, on_close, on_eof, on_broken };
	io_limits lim = { 1024, 30000, (size_t)64 << 20, 0 };

	memset(e, 0, sizeof *e);
	die_init(argv[0]);
	cfg.listen = xcalloc(17, sizeof *cfg.listen);
	e->flow_t = (io_timer)IO_TIMER_ZERO;
	e->flow_t.cb = on_flow;
	e->flow_t.ud = e;
	stats_init(&e->st, die_prog);
	e->be = be;
	e->max_queue = 4096;
	e->max_queue_conn = 1024;
	e->write_buffer = (size_t)1 << 20;
	e->write_timeout = 30;
	e->max_tokens_default = 256;
	e->topts = (tokenize_opts)TOKENIZE_OPTS_DEFAULT;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "m:l:t:d:qh", lo, 0)) != -1) {
		switch (c) {
		case 'm': model_path = optarg; break;
		case 'l':
			if (cfg.nlisten == 16)
				die_usage(USAGE);
			cfg.listen[cfg.nlisten++] = optarg;
			break;
		case 't': threads = (int)parse_u32(optarg, 1, 1024); break;
		case 'd': cfg.ready_fd = (int)parse_u32(optarg, 0, 1 << 20); break;
		case 'q': quiet = 1; break;
		case 'C': ctx = parse_u32(optarg, 2, 1u << 24); break;
		case 'K': kv_mem = parse_size(optarg); break;
		case 'B': bs = parse_u32(optarg, 1, 1024); break;
		case 'S': max_seqs = parse_u32(optarg, 1, 4096); break;
		case 'N': max_batch = parse_u32(optarg, 1, 65536); break;
		case 'Q': e->max_queue = parse_u32(optarg, 1, 1u << 24); break;
		case 'q' + 256: e->max_queue_conn = parse_u32(optarg, 1, 1u << 24); break;
		case 'c' + 256: lim.max_conns = parse_u32(optarg, 1, 1u << 20); break;
		case 'b' + 256: cfg.io.backlog = (int)parse_u32(optarg, 1, 1u << 16); break;
		case 'r' + 256: lim.read_timeout_ms = (unsigned)(parse_secs(optarg) * 1000); break;
		case 'p' + 256: lim.max_partial = parse_size(optarg); break;
		case 'w' + 256: e->write_buffer = parse_size(optarg); break;
		case 't' + 256: e->write_timeout = parse_secs(optarg); break;
		case 'M': e->max_tokens_default = parse_u32(optarg, 0, 1u << 24); break;
		case 'T': e->temperature = strtof(optarg, 0); break;
		case 'P': caching = 0; break;
		case 'x': e->text = 1; break;
		case 'c':
			e->topts.chat = chat_by_name(optarg);
			if (e->topts.chat < 0)
				die_x(EXIT_USAGE, "unknown chat template \"%s\"; known: %s", optarg, chat_known());
			break;
		case 'p': ppl_text = optarg; break;
		case 'X': ppl_ctx = parse_u32(optarg, 2, 1u << 20); break;
		case 'h':
			printf("usage: %s\n", USAGE);
			return 0;
		default: die_usage(USAGE);
		}
	}
	if (optind != argc)
		die_usage(USAGE);
	/* blocked before any thread starts, so every thread inherits the mask
	 * and the signals reach only the signalfd */
	if (!ppl_text)
		daemon_init();
	if (!model_path)
		model_path = fetch_model_path();
	if (model_open(&e->m, model_path, be->supports, err, sizeof err) < 0) {
		if (access(model_path, R_OK) < 0) {
			if (errno == ENOENT)
				die_x(EXIT_SYS, "unable to open %s: %s; run: sluice model fetch", model_path,
				      strerror(errno));
			die_sys("unable to open %s", model_path);
		}
		die_x(EXIT_SYS, "unable to load %s: %s", model_path, err);
	}
	model_types(&e->m, types, sizeof types);

	if (ppl_text) {
		size_t ntok, scored;
		double ppl, nll;

		model_close(&e->m);
		if (ppl_file(model_path, be, threads, ppl_text, ppl_ctx, &ppl, &nll, &ntok, &scored, err,
			     sizeof err) < 0)
			die_x(EXIT_SYS, "%s", err);
		if (!scored)
			die_x(EXIT_NO, "%s has %zu tokens, fewer than one chunk of %u", ppl_text, ntok, ppl_ctx);
		printf("perplexity %.4f tokens %zu scored %zu ctx %u nll %.6f\n", ppl, ntok, scored, ppl_ctx, nll);
		return 0;
	}

	/* the cache: --kv-mem, else 256 MiB but at least one full context */
	if (!ctx)
		ctx = e->m.ctx_train < 8192 ? e->m.ctx_train : 8192;
	block_bytes = be->block_bytes(&e->m, bs);
	if (!kv_mem) {
		kv_mem = (uint64_t)256 << 20;
		if (kv_mem < (uint64_t)((ctx + bs - 1) / bs) * block_bytes)
			kv_mem = (uint64_t)((ctx + bs - 1) / bs) * block_bytes;
	}
	if (kv_mem / block_bytes < 1 || kv_mem / block_bytes > (1u << 24))
		die_x(EXIT_USAGE, "--kv-mem %llu holds %llu blocks of %zu bytes; need 1 to 2^24",
		      (unsigned long long)kv_mem, (unsigned long long)(kv_mem / block_bytes), block_bytes);
	n_blocks = (uint32_t)(kv_mem / block_bytes);
	if ((uint64_t)n_blocks * bs < ctx) {
		ctx = n_blocks * bs;
		if (!quiet)
			warn_x("the cache holds %u tokens: --ctx lowered to that", ctx);
	}
	if (ctx < 2)
		die_x(EXIT_USAGE, "the cache holds fewer than 2 tokens; raise --kv-mem");
	e->max_ctx = ctx;
	e->chat = tokenize_chat_id(e->m.tok, &e->topts);
	memset(&so, 0, sizeof so);
	so.n_blocks = n_blocks;
	so.block_size = bs;
	so.max_seqs = max_seqs;
	e->max_seqs = max_seqs;
	so.max_batch_tokens = max_batch;
	so.max_ctx = ctx;
	so.caching = caching;
	so.n_vocab = e->m.n_vocab;
	e->s = sched_new(&so);
	if (!e->s)
		die_x(EXIT_USAGE, "a cache of %u blocks of %u tokens is not possible", n_blocks, bs);
	e->bk = be->open(&e->m, n_blocks, bs, max_batch, max_seqs, ctx, threads, err, sizeof err);
	if (!e->bk)
		die_x(EXIT_SYS, "unable to start the %s backend: %s", be->name, err);
	if (!quiet)
		fprintf(stderr, "%s: %s (%s, %u layers, dim %u, %u/%u heads, vocab %u), %s, %.1f MB mapped; "
			"KV %.1f MB (%u blocks of %u tokens, F16), ctx %u, %u seqs, %u tokens/step, %s\n",
			die_prog, e->m.name, e->m.arch_name, e->m.n_layers, e->m.dim, e->m.n_heads,
			e->m.n_kv_heads, e->m.n_vocab, types, e->m.g.size / 1e6,
			(double)n_blocks * block_bytes / 1e6, n_blocks, bs, ctx, max_seqs, max_batch,
			be->describe(e->bk));

	/* endpoints */
	e->tabn = 256;
	e->tab = xcalloc(e->tabn, sizeof *e->tab);
	msgpack_sbuffer_init(&e->sb);
	e->loop = io_loop_new(&h, e);
	lim.high_water = e->write_buffer;
	io_loop_set_limits(e->loop, &lim);
	e->stdio = daemon_listen(e->loop, &cfg);
	daemon_run(e->loop, &cfg, &ops, e);
	/* everything answered: write what is queued and go */
	if (!quiet) {
		kv_stats st;
		kv_get_stats(sched_kv(e->s), &st);
		fprintf(stderr, "%s: %llu requests, %llu tokens generated in %llu steps, %llu preemptions, "
			"prefix cache %llu/%llu blocks hit, %llu evicted; %llu cancelled, %llu cancelled "
			"as their client went away, %llu timed out, %llu slow consumers, %llu refused "
			"overloaded, %llu bad requests\n", die_prog,
			(unsigned long long)e->served, (unsigned long long)e->st.generation_tokens,
			(unsigned long long)e->steps, (unsigned long long)e->st.preemptions,
			(unsigned long long)st.hit_blocks, (unsigned long long)st.lookups_blocks,
			(unsigned long long)st.evictions,
			(unsigned long long)(e->st.finished[ST_FIN_CANCELLED] - e->st.gone),
			(unsigned long long)e->st.gone, (unsigned long long)e->st.finished[ST_FIN_TIMEOUT],
			(unsigned long long)e->st.errors[ST_ERR_SLOW_CONSUMER],
			(unsigned long long)e->st.errors[ST_ERR_OVERLOADED],
			(unsigned long long)(e->st.errors[ST_ERR_BAD_REQUEST] + e->st.errors[ST_ERR_TOO_LONG]
					     + e->st.errors[ST_ERR_DUPLICATE_ID]));
	}
	io_loop_free(e->loop);
	be->close(e->bk);
	sched_free(e->s);
	sample_ws_free(&e->ws);
	tok_ids_free(&e->ids);
	msgpack_sbuffer_destroy(&e->sb);
	free(e->tab);
	model_close(&e->m);
	free(cfg.listen);
	return e->bad_input ? EXIT_SYS : 0;
}
