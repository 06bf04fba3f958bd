/* gateway: OpenAI's HTTP API in front of a sluice endpoint (see gateway.h
 * and gateway(1)).
 *
 * One thread does everything, in lib/daemon's loop, as metrics does:
 * libmicrohttpd runs inside it (lib/httpd), and the upstream
 * connection is an io_conn of the same loop. An HTTP request that waits for
 * the engine is a suspended connection: an event for it resumes it, and
 * its reader hands over what is queued, or suspends it again. While it is
 * suspended libmicrohttpd does not look at its socket, so the loop watches
 * the socket for a hang-up itself: a client that goes away has its requests
 * cancelled upstream at once, not at the next token. */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "daemon.h"
#include "detok.h"
#include "die.h"
#include "fetch.h"
#include "gateway.h"
#include "gguf.h"
#include "hist.h"
#include "httpd.h"
#include "idtab.h"
#include "io.h"
#include "msg.h"
#include "oai.h"
#include "tokenize.h"

#define OUT_MAX (4u << 20)     /* streamed bytes a client may leave unread; then slow_consumer */
#define MAX_KEYS 256

enum { R_COMPLETIONS, R_CHAT, R_MODELS, R_TOKENIZE, R_DETOKENIZE, R_HEALTH, R_METRICS, R_OTHER, R_N };
static const struct { const char *path, *method; } routes[R_N] = {
	{ "/v1/completions", "POST" }, { "/v1/chat/completions", "POST" }, { "/v1/models", "GET" },
	{ "/tokenize", "POST" }, { "/detokenize", "POST" }, { "/health", "GET" }, { "/metrics", "GET" },
	{ "other", 0 },
};
static const int codes[] = { 200, 400, 401, 404, 405, 413, 429, 500, 502, 503, 504 };
#define NCODES (sizeof codes / sizeof *codes)
enum { M_GET, M_POST, M_OTHER, M_N };
static const char *const methods[M_N] = { "GET", "POST", "other" };
enum { F_STOP, F_LENGTH, F_ERROR, F_N };
static const char *const fins[F_N] = { "stop", "length", "error" };

typedef struct gateway gateway;
typedef struct greq greq;

/* one choice: one engine request */
typedef struct choice {
	idtab_node node;
	greq *g;
	uint32_t index;
	char id[48];
	size_t idn;
	int live;               /* in flight upstream */
	int said_role;          /* chat stream: the role chunk went out */
	int fin;                /* F_* once ended, else -1 */
	detok d;
	detok_buf text;         /* the whole text (not streamed), or this event's */
	json_t *lp;             /* log-probabilities (not streamed) */
	size_t text_off;        /* completions' text_offset */
	uint32_t completion, cached;
} choice;

struct greq {
	gateway *gw;
	struct MHD_Connection *hc;
	greq *prev, *next;      /* the gateway's requests */
	int route, method;
	int status;             /* the HTTP status answered */
	char *body;
	size_t blen;
	int too_big;
	int phase;              /* 0 reading, 1 waiting upstream, 2 answered */
	int suspended, gone, watched, fd;
	oai_req r;
	oai_err err;            /* set: the answer is this error */
	choice *ch;
	uint32_t nch, nlive, ndone;
	char rid[40];
	long long created;
	int started;            /* stream: the 200 and the first chunk are decided */
	int ended;              /* stream: [DONE] queued */
	char *out;              /* stream: bytes for the client, out[outoff..outlen) */
	size_t outlen, outoff, outcap;
	double t0, t_first;
};

typedef struct counters {
	uint64_t http[R_N][M_N][NCODES];
	hist dur, ttft, e2e;
	uint64_t prompt_tokens, generation_tokens;
	uint64_t finished[F_N];
	uint64_t rejections[4];   /* overloaded, rate_limited, draining, timeout */
} counters;

struct gateway {
	gateway_opts o;
	io_loop *loop;
	httpd http;             /* libmicrohttpd in the loop */
	int kick;               /* a connection was resumed: run libmicrohttpd this turn */
	io_conn *up;
	io_timer redial;
	double backoff;
	tok *t;
	oai_ctx cx;
	char *name;
	uint32_t max_model_len;
	char *keys[MAX_KEYS];
	size_t nkeys;
	idtab ids;
	greq *reqs;
	size_t nreqs;
	uint64_t serial;
	int draining, stop;
	msgpack_sbuffer sb;
	counters c;
	double t_start;
};

static double
wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------- answering */

static int
code_index(int status)
{
	size_t i;

	for (i = 0; i < NCODES; i++)
		if (codes[i] == status)
			return (int)i;
	return 7;   /* 500 */
}

static enum MHD_Result
answer(greq *g, int status, const char *type, char *body, size_t n)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(n, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;

	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (status == 405)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, routes[g->route].method);
	g->status = status;
	g->phase = 2;
	ret = MHD_queue_response(g->hc, (unsigned)status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
answer_json(greq *g, int status, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));

	json_decref(j);
	if (!s)
		return MHD_NO;
	return answer(g, status, "application/json", s, strlen(s));
}

static enum MHD_Result
answer_err(greq *g, const oai_err *e)
{
	return answer_json(g, e->status, oai_error_json(e));
}

static void
reject_count(gateway *gw, const oai_err *e)
{
	static const char *const why[] = { "overloaded", "rate_limited", "draining", "timeout" };
	size_t i;

	for (i = 0; e->code && i < 4; i++)
		if (!strcmp(e->code, why[i]))
			gw->c.rejections[i]++;
}

/* ------------------------------------------------------------- the stream */

static void
out_add(greq *g, const char *p, size_t n)
{
	if (g->outoff && g->outoff == g->outlen)
		g->outoff = g->outlen = 0;
	if (g->outlen + n > g->outcap) {
		if (g->outoff) {
			memmove(g->out, g->out + g->outoff, g->outlen - g->outoff);
			g->outlen -= g->outoff;
			g->outoff = 0;
		}
		while (g->outlen + n > g->outcap)
			g->outcap = g->outcap ? 2 * g->outcap : 4096;
		g->out = xrealloc(g->out, g->outcap);
	}
	memcpy(g->out + g->outlen, p, n);
	g->outlen += n;
}

static void
out_event(greq *g, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));

	json_decref(j);
	if (!s)
		return;
	out_add(g, "data: ", 6);
	out_add(g, s, strlen(s));
	out_add(g, "\n\n", 2);
	free(s);
}

static json_t *
usage_json(const greq *g)
{
	uint32_t prompt = 0, completion = 0, cached = 0, i;
	json_t *u = json_object(), *d = json_object();

	for (i = 0; i < g->r.nprompts; i++)
		prompt += (uint32_t)g->r.prompts[i].n;
	for (i = 0; i < g->nch; i++) {
		completion += g->ch[i].completion;
		if (i % g->r.n == 0)
			cached += g->ch[i].cached;
	}
	json_object_set_new(u, "prompt_tokens", json_integer(prompt));
	json_object_set_new(u, "completion_tokens", json_integer(completion));
	json_object_set_new(u, "total_tokens", json_integer((json_int_t)prompt + completion));
	json_object_set_new(d, "cached_tokens", json_integer(cached));
	json_object_set_new(u, "prompt_tokens_details", d);
	return u;
}

static json_t *
chunk_head(const greq *g)
{
	json_t *j = json_object();

	json_object_set_new(j, "id", json_string(g->rid));
	json_object_set_new(j, "object", json_string(g->r.kind == OAI_CHAT ? "chat.completion.chunk" : "text_completion"));
	json_object_set_new(j, "created", json_integer(g->created));
	json_object_set_new(j, "model", json_string(g->gw->name));
	return j;
}

/* one streamed chunk of choice c: text (may be empty), logprobs (taken), finish or NULL */
static void
chunk(greq *g, choice *c, const char *text, size_t n, json_t *lp, const char *finish)
{
	json_t *j = chunk_head(g), *cs = json_array(), *one = json_object();

	json_object_set_new(one, "index", json_integer(c->index));
	if (g->r.kind == OAI_CHAT) {
		json_t *delta = json_object();
		if (!c->said_role) {
			json_object_set_new(delta, "role", json_string("assistant"));
			c->said_role = 1;
		}
		if (n || !finish)
			json_object_set_new(delta, "content", oai_string(text, n));
		json_object_set_new(one, "delta", delta);
	} else {
		json_object_set_new(one, "text", oai_string(text, n));
	}
	json_object_set_new(one, "logprobs", lp ? lp : json_null());
	json_object_set_new(one, "finish_reason", finish ? json_string(finish) : json_null());
	json_array_append_new(cs, one);
	json_object_set_new(j, "choices", cs);
	if (g->r.include_usage)
		json_object_set_new(j, "usage", json_null());
	out_event(g, j);
}

/* ------------------------------------------------------------- the engine side */

static void
send_cancel(gateway *gw, choice *c)
{
	msgpack_packer pk;

	if (!c->live)
		return;
	c->live = 0;
	c->g->nlive--;
	idtab_del(&gw->ids, &c->node);
	if (!gw->up)
		return;
	gw->sb.size = 0;
	msg_pk_init(&pk, &gw->sb);
	msgpack_pack_map(&pk, 2);
	msg_pk_str(&pk, "id");
	msg_pk_strn(&pk, c->id, c->idn);
	msg_pk_str(&pk, "cancel");
	msgpack_pack_true(&pk);
	io_send(gw->up, gw->sb.data, gw->sb.size);
}

static void
cancel_all(greq *g)
{
	uint32_t i;

	for (i = 0; i < g->nch; i++)
		send_cancel(g->gw, &g->ch[i]);
}

static void
on_hangup(io_loop *l, int fd, short revents, void *ud);

static void
run_http(gateway *gw)
{
	gw->kick = 0;
	httpd_run(&gw->http);
}

static void
suspend(greq *g)
{
	if (g->suspended)
		return;
	MHD_suspend_connection(g->hc);
	g->suspended = 1;
	if (!g->watched && g->fd >= 0) {
		io_loop_watch(g->gw->loop, g->fd, POLLRDHUP, on_hangup, g);
		g->watched = 1;
	}
}

static void
resume(greq *g)
{
	if (!g->suspended)
		return;
	g->suspended = 0;
	MHD_resume_connection(g->hc);
	g->gw->kick = 1;
}

static void
unwatch(greq *g)
{
	if (g->watched) {
		io_loop_unwatch(g->gw->loop, g->fd);
		g->watched = 0;
	}
}

/* the client hung up while its connection was suspended */
static void
on_hangup(io_loop *l, int fd, short revents, void *ud)
{
	greq *g = ud;

	(void)l;
	(void)fd;
	if (!(revents & (POLLRDHUP | POLLHUP | POLLERR)))
		return;
	unwatch(g);
	g->gone = 1;
	cancel_all(g);
	resume(g);   /* libmicrohttpd finds the socket closed and ends the request */
}

/* the whole request has ended (every choice) */
static void
all_done(greq *g)
{
	gateway *gw = g->gw;
	uint32_t i;

	hist_observe(&gw->c.e2e, HIST_E2E, io_now() - g->t0);
	for (i = 0; i < g->nch; i++)
		if (g->ch[i].fin >= 0)
			gw->c.finished[g->ch[i].fin]++;
	if (g->r.stream && g->started && !g->ended) {
		if (g->r.include_usage && !g->err.status) {
			json_t *j = chunk_head(g);
			json_object_set_new(j, "choices", json_array());
			json_object_set_new(j, "usage", usage_json(g));
			out_event(g, j);
		}
		out_add(g, "data: [DONE]\n\n", 14);
		g->ended = 1;
	}
	resume(g);
}

/* choice c ends with an error (an error event, a timeout, the upstream lost) */
static void
choice_error(greq *g, choice *c, const char *code, size_t cn, const char *m, size_t mn)
{
	oai_err e = OAI_ERR_ZERO;

	if (c->live) {
		c->live = 0;
		g->nlive--;
		idtab_del(&g->gw->ids, &c->node);
	}
	if (c->fin < 0) {
		c->fin = F_ERROR;
		g->ndone++;
	}
	if (g->err.status)
		return;   /* the first error is the answer */
	oai_from_code(&e, code, cn, m, mn);
	reject_count(g->gw, &e);
	g->err = e;
	cancel_all(g);
	for (uint32_t i = 0; i < g->nch; i++)
		if (g->ch[i].fin < 0) {
			g->ch[i].fin = F_ERROR;
			g->ndone++;
		}
	if (g->r.stream && g->started) {
		/* the 200 went out: the error is the stream's last event */
		out_event(g, oai_error_json(&e));
	}
	all_done(g);
}

static void
on_event(gateway *gw, const msg *m)
{
	const char *id, *fin = 0, *code = "error", *emsg = "the engine failed";
	size_t idn, finn = 0, cn = 5, mn = 17;
	const msgpack_object *tk, *lps, *u, *er;
	idtab_node *nd;
	choice *c;
	greq *g;
	json_t *lp = 0;

	if (msg_str(m, "id", &id, &idn) != 1 || !(nd = idtab_find(&gw->ids, 0, id, idn)))
		return;   /* not ours, or a request already ended here */
	c = idtab_entry(nd, choice, node);
	g = c->g;
	msg_str(m, "finish", &fin, &finn);
	if (fin && ((finn == 5 && !memcmp(fin, "error", 5)) || (finn == 7 && !memcmp(fin, "timeout", 7))
		    || (finn == 9 && !memcmp(fin, "cancelled", 9)))) {
		if (finn == 5 && (er = msg_get(m, "error")) && er->type == MSGPACK_OBJECT_MAP) {
			for (uint32_t i = 0; i < er->via.map.size; i++) {
				const msgpack_object_kv *kv = &er->via.map.ptr[i];
				if (kv->key.type != MSGPACK_OBJECT_STR || kv->val.type != MSGPACK_OBJECT_STR)
					continue;
				if (kv->key.via.str.size == 4 && !memcmp(kv->key.via.str.ptr, "code", 4))
					code = kv->val.via.str.ptr, cn = kv->val.via.str.size;
				else if (kv->key.via.str.size == 7 && !memcmp(kv->key.via.str.ptr, "message", 7))
					emsg = kv->val.via.str.ptr, mn = kv->val.via.str.size;
			}
		} else if (finn == 7) {
			code = "timeout", cn = 7, emsg = "the request passed its deadline", mn = 31;
		} else if (finn == 9) {
			code = "cancelled", cn = 9, emsg = "the request was cancelled upstream", mn = 34;
		}
		choice_error(g, c, code, cn, emsg, mn);
		return;
	}
	/* tokens: streamed, text holds this event's; else all of them */
	if (g->r.stream)
		c->text.n = 0;
	if ((tk = msg_get(m, "tokens")) && tk->type == MSGPACK_OBJECT_ARRAY && tk->via.array.size) {
		uint32_t n = tk->via.array.size, i, nv = tok_n_vocab(gw->t);
		uint32_t ids[64];
		if (g->t_first == 0) {
			g->t_first = io_now();
			hist_observe(&gw->c.ttft, HIST_TTFT, g->t_first - g->t0);
		}
		for (i = 0; i < n; ) {
			uint32_t k = 0;
			while (i < n && k < 64) {
				const msgpack_object *o = &tk->via.array.ptr[i++];
				if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 < nv)
					ids[k++] = (uint32_t)o->via.u64;
			}
			detok_feed(&c->d, ids, k, &c->text);
		}
		gw->c.generation_tokens += n;
	}
	if (fin)
		detok_flush(&c->d, &c->text);
	if (g->r.logprobs >= 0 && (lps = msg_get(m, "logprobs"))) {
		if (g->r.stream)
			oai_logprobs(gw->t, g->r.kind, lps, (size_t)g->r.logprobs, &lp, &c->text_off);
		else
			oai_logprobs(gw->t, g->r.kind, lps, (size_t)g->r.logprobs, &c->lp, &c->text_off);
	}
	if (fin) {
		c->fin = finn == 6 && !memcmp(fin, "length", 6) ? F_LENGTH : F_STOP;
		if ((u = msg_get(m, "usage")) && u->type == MSGPACK_OBJECT_MAP)
			for (uint32_t i = 0; i < u->via.map.size; i++) {
				const msgpack_object_kv *kv = &u->via.map.ptr[i];
				if (kv->key.type != MSGPACK_OBJECT_STR || kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
					continue;
				if (kv->key.via.str.size == 17 && !memcmp(kv->key.via.str.ptr, "completion_tokens", 17))
					c->completion = (uint32_t)kv->val.via.u64;
				else if (kv->key.via.str.size == 13 && !memcmp(kv->key.via.str.ptr, "cached_tokens", 13))
					c->cached = (uint32_t)kv->val.via.u64;
			}
		c->live = 0;
		g->nlive--;
		idtab_del(&gw->ids, &c->node);
		g->ndone++;
	}
	if (g->r.stream) {
		g->started = 1;
		if (!c->said_role) {
			/* a choice's first chunk: chat's role (with content ""),
			 * completions' echo of the prompt, or an empty text */
			uint32_t p = c->index / g->r.n;
			if (g->r.kind == OAI_COMPLETIONS && g->r.echo && g->r.echo_text)
				chunk(g, c, g->r.echo_text[p], g->r.echo_len[p], 0, 0);
			else if (g->r.kind == OAI_CHAT || !(c->text.n || lp))
				chunk(g, c, "", 0, 0, 0);
			c->said_role = 1;
		}
		if (c->text.n || lp)
			chunk(g, c, c->text.p, c->text.n, lp, 0);
		if (fin)
			chunk(g, c, "", 0, 0, fins[c->fin]);
		if (g->outlen - g->outoff > OUT_MAX) {
			choice_error(g, c, "slow_consumer", 13, "the client does not read its stream", 35);
			return;
		}
		resume(g);
	}
	if (fin && g->ndone == g->nch)
		all_done(g);
}

/* ------------------------------------------------------------- requests in */

static json_t *
final_json(greq *g)
{
	json_t *j = json_object(), *cs = json_array();
	uint32_t i;

	json_object_set_new(j, "id", json_string(g->rid));
	json_object_set_new(j, "object", json_string(g->r.kind == OAI_CHAT ? "chat.completion" : "text_completion"));
	json_object_set_new(j, "created", json_integer(g->created));
	json_object_set_new(j, "model", json_string(g->gw->name));
	for (i = 0; i < g->nch; i++) {
		choice *c = &g->ch[i];
		json_t *one = json_object();
		json_t *text;
		if (g->r.echo && g->r.echo_text) {
			uint32_t p = i / g->r.n;
			detok_buf b = DETOK_BUF_INIT;
			detok_utf8((const unsigned char *)g->r.echo_text[p], g->r.echo_len[p], 1, &b);
			detok_utf8((const unsigned char *)(c->text.p ? c->text.p : ""), c->text.n, 1, &b);
			text = oai_string(b.p ? b.p : "", b.n);
			detok_buf_free(&b);
		} else {
			text = oai_string(c->text.p ? c->text.p : "", c->text.n);
		}
		json_object_set_new(one, "index", json_integer(i));
		if (g->r.kind == OAI_CHAT) {
			json_t *msgj = json_object();
			json_object_set_new(msgj, "role", json_string("assistant"));
			json_object_set_new(msgj, "content", text);
			json_object_set_new(one, "message", msgj);
		} else {
			json_object_set_new(one, "text", text);
		}
		if (g->r.logprobs >= 0 && !c->lp)
			oai_logprobs(g->gw->t, g->r.kind, 0, 0, &c->lp, &c->text_off);
		json_object_set_new(one, "logprobs", c->lp ? c->lp : json_null());
		c->lp = 0;
		json_object_set_new(one, "finish_reason", json_string(fins[c->fin >= 0 ? c->fin : F_STOP]));
		json_array_append_new(cs, one);
	}
	json_object_set_new(j, "choices", cs);
	json_object_set_new(j, "usage", usage_json(g));
	return j;
}

static ssize_t
stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	greq *g = cls;
	size_t n;

	(void)pos;
	if (g->gone)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (g->outoff < g->outlen) {
		n = g->outlen - g->outoff;
		if (n > max)
			n = max;
		memcpy(buf, g->out + g->outoff, n);
		g->outoff += n;
		return (ssize_t)n;
	}
	if (g->ended)
		return MHD_CONTENT_READER_END_OF_STREAM;
	suspend(g);
	return 0;
}

static enum MHD_Result
answer_stream(greq *g)
{
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, g, 0);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	g->status = 200;
	g->phase = 2;
	ret = MHD_queue_response(g->hc, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/* the answer once the engine has said enough */
static enum MHD_Result
answer_ready(greq *g)
{
	if (g->gone)
		return MHD_NO;
	if (g->err.status && !(g->r.stream && g->started))
		return answer_err(g, &g->err);
	if (g->r.stream && g->started)
		return answer_stream(g);
	if (!g->r.stream && g->ndone == g->nch)
		return answer_json(g, 200, final_json(g));
	suspend(g);
	return MHD_YES;
}

static enum MHD_Result
start_completion(greq *g)
{
	gateway *gw = g->gw;
	oai_err e = OAI_ERR_ZERO;
	msgpack_packer pk;
	uint32_t i;

	if (gw->draining) {
		oai_seterr(&e, 503, "service_unavailable", "draining", 0, "the gateway is shutting down");
		reject_count(gw, &e);
		return answer_err(g, &e);
	}
	if (!gw->up) {
		oai_seterr(&e, 503, "service_unavailable", "upstream_lost", 0, "the engine is not connected (%s)",
			   gw->o.upstream);
		return answer_err(g, &e);
	}
	if (oai_parse(&gw->cx, g->route == R_CHAT ? OAI_CHAT : OAI_COMPLETIONS, g->body ? g->body : "", g->blen,
		      &g->r, &e) < 0)
		return answer_err(g, &e);
	free(g->body);
	g->body = 0;
	g->nch = g->r.nprompts * g->r.n;
	g->ch = xcalloc(g->nch, sizeof *g->ch);
	gw->serial++;
	snprintf(g->rid, sizeof g->rid, "%s-%llx%06llx", g->r.kind == OAI_CHAT ? "chatcmpl" : "cmpl",
		 (unsigned long long)g->created, (unsigned long long)(gw->serial & 0xffffff));
	for (i = 0; i < g->r.nprompts; i++)
		gw->c.prompt_tokens += g->r.prompts[i].n;
	for (i = 0; i < g->nch; i++) {
		choice *c = &g->ch[i];
		c->g = g;
		c->index = i;
		c->fin = -1;
		detok_init(&c->d, gw->t, 0);
		c->idn = (size_t)snprintf(c->id, sizeof c->id, "g%llu.%u", (unsigned long long)gw->serial, i);
		idtab_add(&gw->ids, &c->node, 0, c->id, c->idn);
		c->live = 1;
		g->nlive++;
		gw->sb.size = 0;
		msg_pk_init(&pk, &gw->sb);
		oai_pack(&g->r, i, c->id, c->idn, gw->o.timeout > 0, &pk);
		if (gw->o.timeout > 0) {
			msg_pk_str(&pk, "timeout_ms");
			msgpack_pack_uint64(&pk, (uint64_t)(gw->o.timeout * 1000));
		}
		io_send(gw->up, gw->sb.data, gw->sb.size);
	}
	g->phase = 1;
	suspend(g);
	return MHD_YES;
}

static enum MHD_Result
answer_models(greq *g)
{
	gateway *gw = g->gw;
	json_t *j = json_object(), *d = json_array(), *m = json_object();

	json_object_set_new(m, "id", json_string(gw->name));
	json_object_set_new(m, "object", json_string("model"));
	json_object_set_new(m, "created", json_integer((json_int_t)gw->t_start));
	json_object_set_new(m, "owned_by", json_string("sluice"));
	json_object_set_new(m, "max_model_len", json_integer(gw->max_model_len));
	json_array_append_new(d, m);
	json_object_set_new(j, "object", json_string("list"));
	json_object_set_new(j, "data", d);
	return answer_json(g, 200, j);
}

static enum MHD_Result
answer_tokenize(greq *g)
{
	gateway *gw = g->gw;
	json_error_t je;
	json_t *b = json_loadb(g->body ? g->body : "", g->blen, 0, &je), *v, *out, *toks;
	oai_err e = OAI_ERR_ZERO;
	tok_ids ids = TOK_IDS_INIT;
	int pieces = 0, special = 1;
	size_t i;

	if (!b || !json_is_object(b)) {
		oai_seterr(&e, 400, "invalid_request_error", 0, 0, "the body must be a JSON object%s%s",
			   b ? "" : ": ", b ? "" : je.text);
		json_decref(b);
		return answer_err(g, &e);
	}
	if ((v = json_object_get(b, "add_special")) || (v = json_object_get(b, "add_special_tokens")))
		special = json_is_true(v);
	pieces = json_is_true(json_object_get(b, "with_pieces"));
	if ((v = json_object_get(b, "content")) || (v = json_object_get(b, "prompt"))) {
		if (!json_is_string(v)) {
			oai_seterr(&e, 400, "invalid_request_error", 0, json_object_get(b, "content") ? "content" : "prompt",
				   "'%s' must be a string", json_object_get(b, "content") ? "content" : "prompt");
			goto bad;
		}
		if (tok_encode(gw->t, json_string_value(v), json_string_length(v), special, 1, &ids) < 0)
			die_x(EXIT_SYS, "unable to tokenize: out of memory");
	} else if ((v = json_object_get(b, "messages"))) {
		oai_req r;
		json_t *req = json_object();
		char *s;
		json_object_set_new(req, "model", json_string(gw->name));
		json_object_set(req, "messages", v);
		s = json_dumps(req, JSON_COMPACT);
		json_decref(req);
		if (oai_parse(&gw->cx, OAI_CHAT, s, strlen(s), &r, &e) < 0) {
			free(s);
			goto bad;
		}
		free(s);
		ids = r.prompts[0];
		r.prompts[0] = (tok_ids)TOK_IDS_INIT;
		oai_req_free(&r);
	} else {
		oai_seterr(&e, 400, "invalid_request_error", 0, "content", "give 'content', 'prompt' or 'messages'");
		goto bad;
	}
	out = json_object();
	toks = json_array();
	for (i = 0; i < ids.n; i++) {
		if (pieces) {
			char buf[256];
			size_t n = tok_piece(gw->t, ids.v[i], 1, buf, sizeof buf);
			json_t *p = json_object();
			json_object_set_new(p, "id", json_integer(ids.v[i]));
			json_object_set_new(p, "piece", oai_string(buf, n < sizeof buf ? n : sizeof buf));
			json_array_append_new(toks, p);
		} else {
			json_array_append_new(toks, json_integer(ids.v[i]));
		}
	}
	json_object_set_new(out, "tokens", toks);
	json_object_set_new(out, "count", json_integer((json_int_t)ids.n));
	json_object_set_new(out, "max_model_len", json_integer(gw->max_model_len));
	tok_ids_free(&ids);
	json_decref(b);
	return answer_json(g, 200, out);
bad:
	tok_ids_free(&ids);
	json_decref(b);
	return answer_err(g, &e);
}

static enum MHD_Result
answer_detokenize(greq *g)
{
	gateway *gw = g->gw;
	json_error_t je;
	json_t *b = json_loadb(g->body ? g->body : "", g->blen, 0, &je), *v, *out;
	oai_err e = OAI_ERR_ZERO;
	detok d;
	detok_buf text = DETOK_BUF_INIT;
	uint32_t ids[64];
	size_t i, k = 0;

	v = b && json_is_object(b) ? json_object_get(b, "tokens") : 0;
	if (!v || !json_is_array(v)) {
		oai_seterr(&e, 400, "invalid_request_error", 0, "tokens", "'tokens' must be a list of token ids");
		json_decref(b);
		return answer_err(g, &e);
	}
	detok_init(&d, gw->t, 0);
	for (i = 0; i < json_array_size(v); i++) {
		const json_t *x = json_array_get(v, i);
		if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= (json_int_t)tok_n_vocab(gw->t)) {
			oai_seterr(&e, 400, "invalid_request_error", 0, "tokens", "'tokens[%zu]' is not an id of the vocabulary", i);
			detok_buf_free(&text);
			json_decref(b);
			return answer_err(g, &e);
		}
		ids[k++] = (uint32_t)json_integer_value(x);
		if (k == 64) {
			detok_feed(&d, ids, k, &text);
			k = 0;
		}
	}
	detok_feed(&d, ids, k, &text);
	detok_flush(&d, &text);
	out = json_object();
	json_object_set_new(out, "content", oai_string(text.p ? text.p : "", text.n));
	json_object_set_new(out, "prompt", oai_string(text.p ? text.p : "", text.n));
	detok_buf_free(&text);
	json_decref(b);
	return answer_json(g, 200, out);
}

/* ------------------------------------------------------------- /metrics */

typedef struct textbuf {
	char *p;
	size_t n, cap;
} textbuf;

static void
tb_printf(textbuf *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
tb_printf(textbuf *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->p ? t->p + t->n : 0, t->p ? t->cap - t->n : 0, fmt, ap);
		va_end(ap);
		if (n >= 0 && t->p && (size_t)n < t->cap - t->n) {
			t->n += (size_t)n;
			return;
		}
		t->cap = t->cap ? 2 * t->cap + (size_t)n : 8192 + (size_t)n;
		t->p = xrealloc(t->p, t->cap);
	}
}

static void
tb_hist(textbuf *t, const char *name, const char *help, const hist *h, hist_kind k)
{
	const double *le;
	size_t nb = hist_bounds(k, &le), i;
	uint64_t cum = 0;

	tb_printf(t, "# HELP sluice:%s %s\n# TYPE sluice:%s histogram\n", name, help, name);
	for (i = 0; i < nb; i++) {
		cum += h->counts[i];
		tb_printf(t, "sluice:%s_bucket{le=\"%g\"} %llu\n", name, le[i], (unsigned long long)cum);
	}
	tb_printf(t, "sluice:%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
	tb_printf(t, "sluice:%s_sum %.9g\nsluice:%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}

static enum MHD_Result
answer_metrics(greq *g)
{
	static const char *const rej[] = { "overloaded", "rate_limited", "draining", "timeout" };
	gateway *gw = g->gw;
	counters *c = &gw->c;
	textbuf t = { 0, 0, 0 };
	size_t r, m, k;
	uint64_t running = 0;
	greq *q;

	for (q = gw->reqs; q; q = q->next)
		running += q->phase == 1 || (q->phase == 2 && q->r.stream && !q->ended && q->nch);
	tb_printf(&t, "# HELP sluice:http_requests_total HTTP requests answered, by method, path and status.\n"
		  "# TYPE sluice:http_requests_total counter\n");
	for (r = 0; r < R_N; r++)
		for (m = 0; m < M_N; m++)
			for (k = 0; k < NCODES; k++)
				if (c->http[r][m][k])
					tb_printf(&t, "sluice:http_requests_total{method=\"%s\",path=\"%s\",status=\"%d\"} %llu\n",
						  methods[m], routes[r].path, codes[k], (unsigned long long)c->http[r][m][k]);
	tb_hist(&t, "http_request_duration_seconds", "Time from an HTTP request's arrival to its last byte.",
		&c->dur, HIST_E2E);
	tb_hist(&t, "time_to_first_token_seconds", "Time to the first token, as the gateway sees it.",
		&c->ttft, HIST_TTFT);
	tb_hist(&t, "e2e_request_latency_seconds", "Time from arrival to the last token, as the gateway sees it.",
		&c->e2e, HIST_E2E);
	tb_printf(&t, "# HELP sluice:prompt_tokens_total Prompt tokens of the requests sent upstream.\n"
		  "# TYPE sluice:prompt_tokens_total counter\nsluice:prompt_tokens_total %llu\n",
		  (unsigned long long)c->prompt_tokens);
	tb_printf(&t, "# HELP sluice:generation_tokens_total Tokens generated for the gateway's clients.\n"
		  "# TYPE sluice:generation_tokens_total counter\nsluice:generation_tokens_total %llu\n",
		  (unsigned long long)c->generation_tokens);
	tb_printf(&t, "# HELP sluice:request_success_total Choices finished, by reason.\n"
		  "# TYPE sluice:request_success_total counter\n");
	for (k = 0; k < F_N; k++)
		tb_printf(&t, "sluice:request_success_total{finished_reason=\"%s\"} %llu\n", fins[k],
			  (unsigned long long)c->finished[k]);
	tb_printf(&t, "# HELP sluice:admission_rejections_total Requests refused, by reason.\n"
		  "# TYPE sluice:admission_rejections_total counter\n");
	for (k = 0; k < 4; k++)
		tb_printf(&t, "sluice:admission_rejections_total{reason=\"%s\"} %llu\n", rej[k],
			  (unsigned long long)c->rejections[k]);
	tb_printf(&t, "# HELP sluice:num_requests_running Completions in flight at the gateway.\n"
		  "# TYPE sluice:num_requests_running gauge\nsluice:num_requests_running %llu\n",
		  (unsigned long long)running);
	return answer(g, 200, "text/plain; version=0.0.4; charset=utf-8", t.p, t.n);
}

/* ------------------------------------------------------------- HTTP */

static int
key_ok(const gateway *gw, struct MHD_Connection *hc)
{
	const char *h = MHD_lookup_connection_value(hc, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	size_t i, n, k;
	int ok = 0;

	if (!gw->nkeys)
		return 1;
	if (!h || strncasecmp(h, "Bearer ", 7))
		return 0;
	h += 7;
	n = strlen(h);
	/* every key compared in full: the time does not say how much matched */
	for (i = 0; i < gw->nkeys; i++) {
		const char *key = gw->keys[i];
		size_t kn = strlen(key);
		unsigned char diff = kn != n;
		for (k = 0; k < kn; k++)
			diff |= (unsigned char)(key[k] ^ (k < n ? h[k] : 0));
		ok |= !diff;
	}
	return ok;
}

static void
on_completed(void *cls, struct MHD_Connection *hc, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	gateway *gw = cls;
	greq *g = *con_cls;
	uint32_t i;

	(void)hc;
	(void)toe;
	if (!g)
		return;
	*con_cls = 0;
	unwatch(g);
	cancel_all(g);
	gw->c.http[g->route][g->method][code_index(g->status ? g->status : 500)]++;
	hist_observe(&gw->c.dur, HIST_E2E, io_now() - g->t0);
	if (g->prev)
		g->prev->next = g->next;
	else
		gw->reqs = g->next;
	if (g->next)
		g->next->prev = g->prev;
	gw->nreqs--;
	for (i = 0; i < g->nch; i++) {
		detok_buf_free(&g->ch[i].text);
		json_decref(g->ch[i].lp);
	}
	free(g->ch);
	oai_req_free(&g->r);
	free(g->body);
	free(g->out);
	free(g);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *hc, const char *url, const char *method, const char *version,
	   const char *upload, size_t *upload_size, void **con_cls)
{
	gateway *gw = cls;
	greq *g = *con_cls;
	oai_err e = OAI_ERR_ZERO;
	int r;

	(void)version;
	if (!g) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(hc, MHD_CONNECTION_INFO_CONNECTION_FD);
		const char *cl;

		g = xcalloc(1, sizeof *g);
		g->gw = gw;
		g->hc = hc;
		g->fd = ci ? ci->connect_fd : -1;
		g->t0 = io_now();
		g->created = (long long)wall();
		g->r.logprobs = -1;
		g->next = gw->reqs;
		if (gw->reqs)
			gw->reqs->prev = g;
		gw->reqs = g;
		gw->nreqs++;
		*con_cls = g;
		for (r = 0; r < R_OTHER; r++)
			if (!strcmp(url, routes[r].path))
				break;
		g->route = r;
		g->method = !strcmp(method, "GET") || !strcmp(method, "HEAD") ? M_GET : !strcmp(method, "POST") ? M_POST : M_OTHER;
		if (r == R_OTHER) {
			oai_seterr(&e, 404, "invalid_request_error", "not_found", 0, "no such path: %.200s", url);
			return answer_err(g, &e);
		}
		if ((routes[r].method[0] == 'G') != (g->method == M_GET) || g->method == M_OTHER) {
			oai_seterr(&e, 405, "invalid_request_error", "method_not_allowed", 0, "%.200s takes %s, not %.16s",
				   url, routes[r].method, method);
			return answer_err(g, &e);
		}
		if (r != R_HEALTH && r != R_METRICS && !key_ok(gw, hc)) {
			oai_seterr(&e, 401, "authentication_error", "invalid_api_key", 0,
				   "a valid API key is required (Authorization: Bearer KEY)");
			return answer_err(g, &e);
		}
		cl = MHD_lookup_connection_value(hc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, 0, 10) > gw->o.max_body) {
			oai_seterr(&e, 413, "invalid_request_error", "request_too_large", 0,
				   "the body is larger than %zu bytes (--max-body)", gw->o.max_body);
			return answer_err(g, &e);
		}
		return MHD_YES;
	}
	if (g->phase == 0 && *upload_size) {
		size_t n = *upload_size;
		*upload_size = 0;
		if (g->too_big || g->blen + n > gw->o.max_body) {
			g->too_big = 1;
			free(g->body);
			g->body = 0;
			g->blen = 0;
			return MHD_YES;
		}
		g->body = xrealloc(g->body, g->blen + n + 1);
		memcpy(g->body + g->blen, upload, n);
		g->blen += n;
		g->body[g->blen] = 0;
		return MHD_YES;
	}
	if (g->phase == 2)
		return MHD_YES;
	if (g->phase == 1)
		return answer_ready(g);
	if (g->too_big) {
		oai_seterr(&e, 413, "invalid_request_error", "request_too_large", 0,
			   "the body is larger than %zu bytes (--max-body)", gw->o.max_body);
		return answer_err(g, &e);
	}
	switch (g->route) {
	case R_COMPLETIONS:
	case R_CHAT:
		return start_completion(g);
	case R_MODELS:
		return answer_models(g);
	case R_TOKENIZE:
		return answer_tokenize(g);
	case R_DETOKENIZE:
		return answer_detokenize(g);
	case R_HEALTH: {
		int up = gw->up && !gw->draining;
		json_t *j = json_object();
		json_object_set_new(j, "status", json_string(up ? "ok" : "unavailable"));
		if (!up)
			json_object_set_new(j, "reason", json_string(gw->draining ? "draining" : "the engine is not connected"));
		return answer_json(g, up ? 200 : 503, j);
	}
	default:
		return answer_metrics(g);
	}
}

/* ------------------------------------------------------------- upstream */

static void
dial(gateway *gw)
{
	char err[512];

	if (!(gw->up = io_loop_dial(gw->loop, gw->o.upstream, 0, err, sizeof err))) {
		if (gw->backoff == 0)
			warn_x("%s; retrying", err);
		gw->backoff = gw->backoff ? gw->backoff * 2 : 0.1;
		if (gw->backoff > 2)
			gw->backoff = 2;
		io_timer_after(gw->loop, &gw->redial, gw->backoff);
		return;
	}
	if (gw->backoff)
		info_x("connected to %s", gw->o.upstream);
	gw->backoff = 0;
}

static void
on_redial(io_loop *l, io_timer *t, void *ud)
{
	(void)l;
	(void)t;
	dial(ud);
}

static void
on_msg(io_loop *l, io_conn *c, const msg *m, void *ud)
{
	(void)l;
	(void)c;
	on_event(ud, m);
}

/* the upstream connection ended: what was in flight ends upstream_lost */
static void
upstream_gone(gateway *gw, const char *why)
{
	greq *g, *next;

	gw->up = 0;
	warn_x("%s: the connection ended%s%s; in-flight requests end with upstream_lost", gw->o.upstream,
	       why ? ": " : "", why ? why : "");
	for (g = gw->reqs; g; g = next) {
		next = g->next;
		for (uint32_t i = 0; i < g->nch; i++)
			if (g->ch[i].live) {
				choice_error(g, &g->ch[i], "upstream_lost", 13, "the engine's connection was lost", 32);
				break;
			}
	}
	if (!gw->stop)
		io_timer_after(gw->loop, &gw->redial, 0.1);
}

static void
on_close(io_loop *l, io_conn *c, const char *why, void *ud)
{
	gateway *gw = ud;

	(void)l;
	if (c == gw->up)
		upstream_gone(gw, why);
}

static void
on_eof(io_loop *l, io_conn *c, void *ud)
{
	gateway *gw = ud;

	(void)l;
	if (c == gw->up)
		upstream_gone(gw, 0);
	io_close(c);   /* no on_close follows an io_close */
}

/* ------------------------------------------------------------- the program */

static void
on_drain(void *ud)
{
	gateway *gw = ud;

	gw->draining = 1;
	info_x("draining: %zu requests in flight", gw->nreqs);
}

static void
on_abandon(void *ud)
{
	gateway *gw = ud;
	greq *g;

	warn_x("drain timeout: %zu requests abandoned", gw->nreqs);
	for (g = gw->reqs; g; g = g->next) {
		cancel_all(g);
		g->gone = 1;
		resume(g);
	}
	gw->stop = 1;
	run_http(gw);
}

static int
is_done(void *ud)
{
	gateway *gw = ud;

	return gw->stop || (gw->draining && gw->nreqs == 0);
}

static int
on_turn(void *ud)
{
	gateway *gw = ud;

	run_http(gw);
	return gw->kick;
}

static void
add_keys(gateway *gw, const char *s, int lines)
{
	while (*s) {
		size_t n;
		if (lines) {
			n = strcspn(s, "\r\n");
			while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
				n--;
			if (n && *s != '#' && gw->nkeys < MAX_KEYS)
				gw->keys[gw->nkeys++] = xstrndup(s, n);
			s += strcspn(s, "\n");
		} else {
			s += strspn(s, ", \t\r\n");
			n = strcspn(s, ", \t\r\n");
			if (n && gw->nkeys < MAX_KEYS)
				gw->keys[gw->nkeys++] = xstrndup(s, n);
			s += n;
		}
		if (*s)
			s++;
	}
}

static void
read_keys(gateway *gw)
{
	const char *env = getenv("SLUICE_API_KEYS");

	if (env)
		add_keys(gw, env, 0);
	if (gw->o.key_file) {
		FILE *f = fopen(gw->o.key_file, "r");
		char *buf = 0;
		size_t cap = 0, n = 0, r;
		if (!f)
			die_sys("unable to open %s", gw->o.key_file);
		do {
			if (n + 4096 + 1 > cap)
				buf = xrealloc(buf, cap = 2 * cap + 4096 + 1);
			r = fread(buf + n, 1, 4096, f);
			n += r;
		} while (r && n < (1u << 20));
		fclose(f);
		buf[n] = 0;
		add_keys(gw, buf, 1);
		free(buf);
		if (!gw->nkeys)
			die_x(EXIT_USAGE, "%s has no key", gw->o.key_file);
	}
}

static int
loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return ss->ss_family == AF_UNIX;
}

static void
http_listen(gateway *gw)
{
	const struct MHD_OptionItem opts[] = {
		{ MHD_OPTION_CONNECTION_LIMIT, (intptr_t)gw->o.max_conns, NULL },
		/* one address holding every slot (slowloris) is bounded here */
		{ MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)gw->o.max_per_ip, NULL },
		{ MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)gw->o.idle_timeout, NULL },
		{ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, gw },
		{ MHD_OPTION_END, 0, NULL },
	};
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char err[512], host[64];
	int port = 0;

	if (httpd_start(&gw->http, gw->loop, gw->o.listen, MHD_ALLOW_SUSPEND_RESUME, on_request, gw, opts,
			err, sizeof err) < 0)
		die_x(EXIT_SYS, "%s", err);
	if (getsockname(gw->http.fd, (struct sockaddr *)&ss, &sl) < 0)
		die_sys("unable to listen on %s", gw->o.listen);
	if (!gw->nkeys && !gw->o.insecure && !loopback(&ss))
		die_x(EXIT_USAGE, "refusing to serve %s without an API key; give --api-key-file or --insecure",
		      gw->o.listen);
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
		const unsigned char *b = (const unsigned char *)&s4->sin_addr;
		snprintf(host, sizeof host, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
		port = ntohs(s4->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		snprintf(host, sizeof host, "[::]");
		port = ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port);
	} else {
		snprintf(host, sizeof host, "localhost");
	}
	/* always said: with port 0 it is how a caller learns the port */
	fprintf(stderr, "gateway: listening on http://%s:%d\n", host, port);
}

static char *
base_name(const char *path)
{
	const char *b = strrchr(path, '/');
	size_t n;

	b = b ? b + 1 : path;
	n = strlen(b);
	if (n > 5 && !strcmp(b + n - 5, ".gguf"))
		n -= 5;
	return xstrndup(b, n);
}

static uint32_t
context_length(const char *path)
{
	gguf g;
	char err[256], key[128];
	const char *arch;
	size_t an;
	uint64_t v = 0;

	if (gguf_open(&g, path, err, sizeof err) < 0)
		return 0;
	if (gguf_get_str(&g, "general.architecture", &arch, &an) == 1 && an < 64) {
		snprintf(key, sizeof key, "%.*s.context_length", (int)an, arch);
		if (gguf_get_u64(&g, key, &v) != 1)
			v = 0;
	}
	gguf_close(&g);
	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

int
gateway_main(const gateway_opts *o)
{
	static const io_handler h = { 0, on_msg, 0, on_close, on_eof, 0 };
	static const daemon_ops ops = { on_drain, on_abandon, is_done, on_turn };
	daemon_cfg cfg = DAEMON_CFG_ZERO;
	gateway *gw = xcalloc(1, sizeof *gw);
	tokenize_opts to = TOKENIZE_OPTS_DEFAULT;
	char *path;
	size_t i;

	gw->o = *o;
	gw->http = (httpd)HTTPD_ZERO;
	gw->t_start = wall();
	daemon_init(o->ready_fd);
	read_keys(gw);
	path = o->model ? xstrdup(o->model) : fetch_model_path();
	gw->t = tokenize_open(path);
	gw->name = o->name ? xstrdup(o->name) : base_name(path);
	gw->max_model_len = context_length(path);
	free(path);
	gw->cx.t = gw->t;
	gw->cx.chat_id = tokenize_chat_id(gw->t, &to);
	gw->cx.model = gw->name;
	gw->cx.max_model_len = gw->max_model_len;
	msgpack_sbuffer_init(&gw->sb);
	gw->loop = io_loop_new(&h, gw);
	gw->redial = (io_timer)IO_TIMER_ZERO;
	gw->redial.cb = on_redial;
	gw->redial.ud = gw;
	http_listen(gw);
	dial(gw);
	cfg.ready_fd = o->ready_fd;
	cfg.drain_timeout = o->drain_timeout;
	run_http(gw);
	daemon_run(gw->loop, &cfg, &ops, gw);
	/* the end: the connections go, then the rest */
	io_timer_stop(gw->loop, &gw->redial);
	gw->stop = 1;
	/* libmicrohttpd must not be stopped with a connection suspended */
	for (greq *g = gw->reqs; g; g = g->next) {
		g->gone = 1;
		resume(g);
	}
	run_http(gw);
	httpd_stop(&gw->http);
	io_loop_free(gw->loop);
	idtab_free(&gw->ids);
	msgpack_sbuffer_destroy(&gw->sb);
	for (i = 0; i < gw->nkeys; i++)
		free(gw->keys[i]);
	tok_free(gw->t);
	free(gw->name);
	free(gw);
	return 0;
}
