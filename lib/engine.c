/* engine: requests -> scheduler -> backend -> sampler -> events (see
 * engine.h). Nothing here knows a connection: an owner is the caller's
 * pointer, and every event goes out through engine_events.send. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "die.h"
#include "engine.h"
#include "idtab.h"
#include "sample.h"
#include "scheduler.h"

#define MAX_STOP 16          /* stop strings per request */
#define MAX_STOP_LEN 256     /* bytes of one stop string */

/* ------------------------------------------------------------- state */

typedef struct req {
	idtab_node node;         /* in the table by (owner, id) */
	void *owner;             /* the caller's: whom its events go to */
	char *id;
	size_t idlen;
	struct req *next, *prev; /* in the list of all requests, newest first */
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

struct engine {
	const backend *be;
	void *bk;                /* the backend's state */
	const model *m;
	sched *s;
	io_loop *loop;           /* deadline timers, or NULL */
	engine_events ev;
	void *ud;                /* the events' */
	sample_ws ws;
	tokenize_opts topts;
	int chat;
	uint32_t max_ctx, max_tokens_default, max_seqs;
	float temperature;
	int text;                /* add "text" to events */
	idtab tab;               /* requests by (owner, id) */
	req *all;
	uint32_t n_req;
	uint64_t vnow;           /* fair queueing: the order of the latest request started */
	uint64_t seed_ctr;
	tok_ids ids;             /* the prompt being added */
	msgpack_sbuffer sb;      /* the event being packed */
	uint64_t steps, served;
	stats *st;               /* what the stats query answers (sluice(7)) */
	stats own;               /* st when the caller gave none */
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------- the table */

static req *
req_find(const engine *e, const void *owner, const char *id, size_t n)
{
	idtab_node *x = idtab_find(&e->tab, owner, id, n);

	return x ? idtab_entry(x, req, node) : 0;
}

static void
req_link(engine *e, req *r)
{
	idtab_add(&e->tab, &r->node, r->owner, r->id, r->idlen);
	r->next = e->all;
	r->prev = 0;
	if (e->all)
		e->all->prev = r;
	e->all = r;
	e->n_req++;
	e->ev.added(e->ud, r->owner);
}

static void
req_free(engine *e, req *r)
{
	uint32_t i;

	if (e->loop)
		io_timer_stop(e->loop, &r->dl);
	idtab_del(&e->tab, &r->node);
	if (r->prev)
		r->prev->next = r->next;
	else
		e->all = r->next;
	if (r->next)
		r->next->prev = r->prev;
	e->n_req--;
	if (r->seq)
		sched_drop(e->s, r->seq);
	e->ev.ended(e->ud, r->owner);
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

void
engine_error(engine *e, void *owner, const char *id, size_t idlen, const char *code, const char *message)
{
	msgpack_packer pk;

	stats_error(e->st, code);
	e->sb.size = 0;
	msg_pk_init(&pk, &e->sb);
	msg_pk_error(&pk, id, idlen, code, message);
	e->ev.send(e->ud, owner, e->sb.data, e->sb.size);
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
	e->ev.send(e->ud, r->owner, e->sb.data, e->sb.size);
}

/* Ends r: the tokens before any stop string, the final event, and its blocks freed. */
static void
finish(engine *e, req *r, const char *why, uint32_t upto)
{
	r->t_done = now();
	e->served++;
	stats_finish(e->st, why);
	stats_times(e->st, r->t_arrived, r->t_sched, r->t_first, r->t_done);
	if (r->seq)
		e->st->preemptions += (uint64_t)r->seq->preempted;
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

/* A request's timeout_ms passed: it ends with what it has. */
static void
on_deadline(io_loop *l, io_timer *t, void *ud)
{
	req *r = idtab_entry(t, req, dl);

	(void)l;
	finish(ud, r, "timeout", r->n_emitted > r->n_gen ? r->n_emitted : r->n_gen);
}

int
engine_add(engine *e, void *owner, const msg *m, uint64_t order)
{
	const char *id;
	size_t idlen, ntok = 0, i;
	char err[512];
	const msgpack_object *to;
	const uint32_t *ids;
	uint32_t n, vocab = e->m->n_vocab;
	int b;
	int64_t prio = 0;
	uint64_t u;
	req *r;

	if (msg_str(m, "id", &id, &idlen) != 1) {
		engine_error(e, owner, 0, (size_t)-1, "bad_request", "request has no id (a string)");
		return -1;
	}
	/* the prompt: tokens as given, else tokenized here */
	to = msg_get(m, "tokens");
	if (to && to->type == MSGPACK_OBJECT_ARRAY) {
		n = to->via.array.size;
		if (n > e->max_ctx) {
			snprintf(err, sizeof err, "the prompt has %u tokens; the context holds %u", n, e->max_ctx);
			engine_error(e, owner, id, idlen, "too_long", err);
			return -1;
		}
		e->ids.n = 0;
		for (i = 0; i < n; i++) {
			uint64_t v = to->via.array.ptr[i].via.u64;
			if (v >= vocab) {
				snprintf(err, sizeof err, "token %llu at %zu is not in the vocabulary (%u tokens)",
					 (unsigned long long)v, i, vocab);
				engine_error(e, owner, id, idlen, "bad_request", err);
				return -1;
			}
			if (e->ids.n == e->ids.cap) {
				e->ids.cap = e->ids.cap ? e->ids.cap * 2 : 1024;
				e->ids.v = xrealloc(e->ids.v, e->ids.cap * sizeof *e->ids.v);
			}
			e->ids.v[e->ids.n++] = (uint32_t)v;
		}
	} else if (tokenize_encode(e->m->tok, &e->topts, e->chat, m, &e->ids, &ntok, err, sizeof err) < 0) {
		engine_error(e, owner, id, idlen, "bad_request", err);
		return -1;
	}
	ids = e->ids.v;
	n = (uint32_t)e->ids.n;
	if (n == 0) {
		engine_error(e, owner, id, idlen, "bad_request", "the prompt is empty");
		return -1;
	}
	if (n >= e->max_ctx) {
		snprintf(err, sizeof err, "the prompt has %u tokens; the context holds %u", n, e->max_ctx);
		engine_error(e, owner, id, idlen, "too_long", err);
		return -1;
	}
	r = xcalloc(1, sizeof *r);
	r->t_arrived = now();
	r->owner = owner;
	r->idlen = idlen;
	r->id = xstrndup(id, idlen);
	r->rawlen = m->len;
	r->raw = xstrndup(m->raw, m->len);
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
		engine_error(e, owner, id, idlen, "bad_request", err);
		for (i = 0; i < r->nstop; i++)
			free(r->stop[i]);
		free(r->id);
		free(r->raw);
		free(r);
		return -1;
	}
	req_link(e, r);
	if (r->deadline > 0 && e->loop) {
		r->dl.cb = on_deadline;
		r->dl.ud = e;
		io_timer_after(e->loop, &r->dl, r->deadline - r->t_arrived);
	}
	e->st->requests++;
	e->st->prompt_tokens += n;
	if (r->max_new == 0) {
		finish(e, r, "length", 0);
		return 0;
	}
	r->seq = sched_add(e->s, r, ids, n, r->max_new, prio, SCHED_LAST);
	sched_set_order(e->s, r->seq, order);
	r->seq->paused = e->ev.backlogged(e->ud, owner);
	return 1;
}

int
engine_has(const engine *e, const void *owner, const char *id, size_t n)
{
	return req_find(e, owner, id, n) != 0;
}

void
engine_cancel(engine *e, const void *owner, const char *id, size_t n)
{
	req *r = req_find(e, owner, id, n);

	if (r)
		finish(e, r, "cancelled", r->n_emitted);
}

uint32_t
engine_drop(engine *e, const void *owner, const char *code, const char *message)
{
	req *r, *next;
	uint32_t n = 0;

	for (r = e->all; r; r = next) {
		next = r->next;
		if (r->owner != owner)
			continue;
		if (code) {
			e->st->finished[ST_FIN_ERROR]++;
			engine_error(e, r->owner, r->id, r->idlen, code, message);
		}
		req_free(e, r);
		n++;
	}
	if (!code) {
		e->st->gone += n;
		e->st->finished[ST_FIN_CANCELLED] += n;
	}
	return n;
}

void
engine_backlog_changed(engine *e)
{
	req *r;

	for (r = e->all; r; r = r->next)
		if (r->seq)
			r->seq->paused = e->ev.backlogged(e->ud, r->owner);
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

	sample_token(&r->sp, &r->rng, &e->ws, logits, e->m->n_vocab, q->tokens, q->n_tokens, &so);
	tokn = so.token;
	if (r->t_first == 0)
		r->t_first = t;
	else
		hist_observe(&e->st->h[HIST_ITL], HIST_ITL, t - r->t_last);
	r->t_last = t;
	e->st->generation_tokens++;
	if (!r->ignore_eos && tok_is_eog(e->m->tok, tokn)) {
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
		pl = tok_piece(e->m->tok, tokn, 0, piece, sizeof piece);
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

/* ------------------------------------------------------------- steps */

/* The batch forward (nearly all the time is spent in be->forward), then a
 * token for each sequence whose step ended at its last token. */
int
engine_step(engine *e)
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
			e->st->prefix_queries += r->n_prompt;
			e->st->prefix_hits += qs[i]->cached;
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
		advance(e, q->ud, b->logits + (size_t)q->out * e->m->n_vocab, t);
	}
	return 1;
}

/* ------------------------------------------------------------- the engine */

int
engine_size(engine_opts *o, const model *m, const backend *be, int *lowered, char *err, size_t errlen)
{
	uint32_t ctx = o->ctx, bs = o->block_size;
	uint64_t kv_mem = o->kv_mem;
	size_t block_bytes;

	*lowered = 0;
	/* the cache: kv_mem, else 256 MiB but at least one full context */
	if (!ctx)
		ctx = m->ctx_train < 8192 ? m->ctx_train : 8192;
	block_bytes = be->block_bytes(m, bs);
	if (!kv_mem) {
		kv_mem = (uint64_t)256 << 20;
		if (kv_mem < (uint64_t)((ctx + bs - 1) / bs) * block_bytes)
			kv_mem = (uint64_t)((ctx + bs - 1) / bs) * block_bytes;
	}
	if (kv_mem / block_bytes < 1 || kv_mem / block_bytes > (1u << 24)) {
		seterr(err, errlen, "--kv-mem %llu holds %llu blocks of %zu bytes; need 1 to 2^24",
		       (unsigned long long)kv_mem, (unsigned long long)(kv_mem / block_bytes), block_bytes);
		return -1;
	}
	o->n_blocks = (uint32_t)(kv_mem / block_bytes);
	o->block_bytes = block_bytes;
	if ((uint64_t)o->n_blocks * bs < ctx) {
		ctx = o->n_blocks * bs;
		*lowered = 1;
	}
	o->ctx = ctx;
	if (ctx < 2) {
		seterr(err, errlen, "the cache holds fewer than 2 tokens; raise --kv-mem");
		return -1;
	}
	return 0;
}

int
engine_new(engine **ep, const model *m, const backend *be, const engine_opts *o, const engine_events *ev,
	   void *ud, char *err, size_t errlen)
{
	engine *e = xcalloc(1, sizeof *e);
	sched_opts so;
	char why[512];

	*ep = 0;
	e->m = m;
	e->be = be;
	e->ev = *ev;
	e->ud = ud;
	e->loop = o->loop;
	e->st = o->st;
	if (!e->st) {
		stats_init(&e->own, die_prog);
		e->st = &e->own;
	}
	e->topts = o->topts;
	e->chat = tokenize_chat_id(m->tok, &e->topts);
	e->max_ctx = o->ctx;
	e->max_seqs = o->max_seqs;
	e->max_tokens_default = o->max_tokens;
	e->temperature = o->temperature;
	e->text = o->text;
	memset(&so, 0, sizeof so);
	so.n_blocks = o->n_blocks;
	so.block_size = o->block_size;
	so.max_seqs = o->max_seqs;
	so.max_batch_tokens = o->max_batch_tokens;
	so.max_ctx = o->ctx;
	so.caching = o->caching;
	so.n_vocab = m->n_vocab;
	e->s = sched_new(&so);
	if (!e->s) {
		seterr(err, errlen, "a cache of %u blocks of %u tokens is not possible", o->n_blocks, o->block_size);
		free(e);
		return EXIT_USAGE;
	}
	e->bk = be->open(m, o->n_blocks, o->block_size, o->max_batch_tokens, o->max_seqs, o->ctx, o->threads,
			 why, sizeof why);
	if (!e->bk) {
		seterr(err, errlen, "unable to start the %s backend: %s", be->name, why);
		sched_free(e->s);
		free(e);
		return EXIT_SYS;
	}
	msgpack_sbuffer_init(&e->sb);
	*ep = e;
	return 0;
}

void
engine_free(engine *e)
{
	if (!e)
		return;
	while (e->all)
		req_free(e, e->all);
	e->be->close(e->bk);
	sched_free(e->s);
	sample_ws_free(&e->ws);
	tok_ids_free(&e->ids);
	msgpack_sbuffer_destroy(&e->sb);
	idtab_free(&e->tab);
	free(e);
}

uint32_t
engine_n_requests(const engine *e)
{
	return e->n_req;
}

uint32_t
engine_n_waiting(const engine *e)
{
	return sched_n_waiting(e->s);
}

uint64_t
engine_order_started(const engine *e)
{
	return e->vnow;
}

void
engine_now(const engine *e, stats_now *sn)
{
	kv_pool *kv = sched_kv(e->s);

	sn->running = sched_n_running(e->s);
	sn->waiting = sched_n_waiting(e->s);
	sn->max_running = e->max_seqs;
	sn->kv_used = kv_used(kv);
	sn->kv_total = kv_n_blocks(kv);
}

const char *
engine_describe(const engine *e)
{
	return e->be->describe(e->bk);
}

void
engine_totals(const engine *e, uint64_t *served, uint64_t *steps, kv_stats *kv)
{
	*served = e->served;
	*steps = e->steps;
	kv_get_stats(sched_kv(e->s), kv);
}
