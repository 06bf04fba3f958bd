/* bench_openai: `sluice bench --openai URL`, the client of an
 * OpenAI-compatible server. Every request is a POST to URL/v1/completions
 * with "stream": true on its own curl easy handle, all of them driven by one
 * curl multi handle; the answer is read as Server-Sent Events as it arrives
 * (lib/sse), each "data:" chunk parsed as JSON (bounded by msg_limits). A
 * chunk whose choices[0].text is not empty is a token's arrival: the first
 * one is the first token, each later one a chunk for ITL. usage (asked for
 * with stream_options.include_usage) gives the token counts; without it the
 * chunks are counted. "[DONE]" or a finish_reason ends a request well. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "bench_int.h"
#include "die.h"
#include "json.h"
#include "msg.h"
#include "sse.h"

/* what one chunk of the stream may hold: plenty for a token's text */
static const msg_limits chunk_lim = {
	.max_bytes = 1 << 20, .max_str = 1 << 19, .max_array = 4096, .max_map = 256,
	.max_depth = 16, .max_objects = 65536,
};

typedef struct oa_req {
	CURL *h;
	bench *b;
	unsigned run;          /* the run it belongs to */
	size_t i;
	sse sse;
	char *body;
	int finished;          /* "[DONE]" or a finish_reason was seen */
	int bad;               /* the stream broke the protocol: the transfer was stopped */
	long status;           /* HTTP status, once known */
	char page[256];        /* the start of an error page, for -v */
	size_t npage;
	bench_usage u;
	char err[CURL_ERROR_SIZE];
} oa_req;

typedef struct openai {
	CURLM *m;
	struct curl_slist *hdr;
	char *url;             /* URL/v1/completions */
	msgpack_sbuffer sb, js;
	msgpack_packer pk;
	msgpack_sbuffer cb;    /* one chunk as msgpack */
	msgpack_packer cpk;
	msgpack_zone z;
} openai;

static openai *
st(bench *b)
{
	return bench_target_of(b)->cl;
}

/* ---- reading a chunk ------------------------------------------------------ */

static const msgpack_object *
get(const msgpack_object *o, const char *key)
{
	size_t k = strlen(key);
	uint32_t i;

	if (!o || o->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (i = 0; i < o->via.map.size; i++) {
		const msgpack_object *kk = &o->via.map.ptr[i].key;

		if (kk->type == MSGPACK_OBJECT_STR && kk->via.str.size == k && !memcmp(kk->via.str.ptr, key, k))
			return o->via.map.ptr[i].val.type == MSGPACK_OBJECT_NIL ? NULL : &o->via.map.ptr[i].val;
	}
	return NULL;
}

static int64_t
get_u(const msgpack_object *o, const char *key)
{
	const msgpack_object *v = get(o, key);

	return v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX ? (int64_t)v->via.u64 : -1;
}

static int
fail(oa_req *q, const char *code)
{
	bench_fail(q->b, q->i, code, strlen(code));
	q->bad = 1;
	return 1;
}

/* One event's data: "[DONE]" or a JSON chunk. */
static int
on_data(void *ud, const char *d, size_t n)
{
	oa_req *q = ud;
	openai *s = st(q->b);
	const msgpack_object *e, *ch, *c0, *text, *fin, *u, *det;
	msgpack_object o;
	size_t off = 0;
	char why[256];

	if (n == 6 && !memcmp(d, "[DONE]", 6)) {
		q->finished = 1;
		return 0;
	}
	msgpack_sbuffer_clear(&s->cb);
	if (json_to_msgpack(d, n, &chunk_lim, &s->cpk, why, sizeof why) < 0) {
		info_x("request %zu: a chunk is not JSON: %s", q->i, why);
		return fail(q, "protocol");
	}
	msgpack_zone_clear(&s->z);
	if (msgpack_unpack(s->cb.data, s->cb.size, &off, &s->z, &o) != MSGPACK_UNPACK_SUCCESS ||
	    o.type != MSGPACK_OBJECT_MAP)
		return fail(q, "protocol");
	if ((e = get(&o, "error"))) {
		const msgpack_object *c = get(e, "code");

		if (!c || c->type != MSGPACK_OBJECT_STR)
			c = get(e, "type");
		if (c && c->type == MSGPACK_OBJECT_STR && c->via.str.size) {
			bench_fail(q->b, q->i, c->via.str.ptr, c->via.str.size);
			q->bad = 1;
			return 1;
		}
		return fail(q, "error");
	}
	if ((u = get(&o, "usage")) && u->type == MSGPACK_OBJECT_MAP) {
		q->u.prompt = get_u(u, "prompt_tokens");
		q->u.completion = get_u(u, "completion_tokens");
		if ((det = get(u, "prompt_tokens_details")))
			q->u.cached = get_u(det, "cached_tokens");
	}
	ch = get(&o, "choices");
	if (!ch)
		return 0;
	if (ch->type != MSGPACK_OBJECT_ARRAY)
		return fail(q, "protocol");
	if (!ch->via.array.size)
		return 0;
	c0 = &ch->via.array.ptr[0];
	text = get(c0, "text");
	if (text && text->type != MSGPACK_OBJECT_STR)
		return fail(q, "protocol");
	if (text && text->via.str.size) {
		bench_chunk(q->b, q->i, 1);
		if (!bench_inflight(q->b, q->i)) {
			q->bad = 1;
			return 1;
		}
	}
	if ((fin = get(c0, "finish_reason")) && fin->type == MSGPACK_OBJECT_STR)
		q->finished = 1;
	return 0;
}

static size_t
on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	oa_req *q = ud;
	size_t n = size * nmemb;

	if (!bench_inflight(q->b, q->i))
		return 0;                       /* given up on: stop the transfer */
	if (!q->status)
		curl_easy_getinfo(q->h, CURLINFO_RESPONSE_CODE, &q->status);
	if (q->status != 200) {                 /* an error page: its start kept for -v */
		size_t k = sizeof q->page - 1 - q->npage, j;

		for (j = 0; j < n && j < k; j++)        /* printed: no control bytes */
			q->page[q->npage++] = (unsigned char)p[j] < 0x20 || p[j] == 0x7f ? ' ' : p[j];
		q->page[q->npage] = 0;
		return n;
	}
	switch (sse_feed(&q->sse, p, n, on_data, q)) {
	case 0:
		return n;
	case -1:
		info_x("request %zu: an event larger than 256 KiB", q->i);
		fail(q, "protocol");
		return 0;
	default:
		return 0;
	}
}

/* ---- requests --------------------------------------------------------------- */

static void
req_free(openai *s, oa_req *q)
{
	if (!q)
		return;
	if (q->h) {
		curl_multi_remove_handle(s->m, q->h);
		curl_easy_cleanup(q->h);
	}
	sse_free(&q->sse);
	free(q->body);
	free(q);
}

/* The request's JSON body: built as msgpack, written by lib/json. */
static char *
body_of(bench *b, const bench_prompt *p)
{
	static const char *const drop[] = {
		"id", "tokens", "prompt", "model", "max_tokens", "stream", "stream_options", "ignore_eos",
	};
	openai *s = st(b);
	const char *model = bench_target_of(b)->model;
	size_t nnew = model ? 6 : 5, off = 0;
	msgpack_object o;
	msg m = MSG_ZERO;
	uint32_t k;
	char *out;

	msgpack_sbuffer_clear(&s->sb);
	if (p->line) {
		m.root = *p->line;
		msg_pk_passthrough(&s->pk, &m, drop, sizeof drop / sizeof *drop, nnew);
	} else {
		msgpack_pack_map(&s->pk, nnew);
	}
	if (model) {
		msg_pk_str(&s->pk, "model");
		msg_pk_str(&s->pk, model);
	}
	msg_pk_str(&s->pk, "prompt");
	if (p->tokens) {
		msgpack_pack_array(&s->pk, p->ntok);
		for (k = 0; k < p->ntok; k++)
			msgpack_pack_uint32(&s->pk, p->tokens[k]);
	} else {
		msg_pk_strn(&s->pk, p->text, p->ntext);
	}
	msg_pk_str(&s->pk, "max_tokens");
	msgpack_pack_uint32(&s->pk, p->max_tokens);
	msg_pk_str(&s->pk, "stream");
	msgpack_pack_true(&s->pk);
	msg_pk_str(&s->pk, "stream_options");
	msgpack_pack_map(&s->pk, 1);
	msg_pk_str(&s->pk, "include_usage");
	msgpack_pack_true(&s->pk);
	msg_pk_str(&s->pk, "ignore_eos");
	msgpack_pack_true(&s->pk);
	msgpack_zone_clear(&s->z);
	if (msgpack_unpack(s->sb.data, s->sb.size, &off, &s->z, &o) != MSGPACK_UNPACK_SUCCESS)
		die_x(EXIT_SYS, "unable to pack a request");
	msgpack_sbuffer_clear(&s->js);
	json_from_msgpack(&o, &s->js);
	out = xmalloc(s->js.size + 1);
	memcpy(out, s->js.data, s->js.size);
	out[s->js.size] = 0;
	return out;
}

static int
o_send(bench *b, size_t i, const bench_prompt *p)
{
	openai *s = st(b);
	bench_req *r = bench_inflight(b, i);
	oa_req *q = xcalloc(1, sizeof *q);
	long to = (long)(bench_target_of(b)->timeout * 1000.0);

	q->b = b;
	q->run = bench_target_of(b)->run;
	q->i = i;
	q->u = (bench_usage)BENCH_USAGE_NONE;
	q->sse.max = 1 << 18;             /* one chunk: a token or two of text, or usage */
	q->body = body_of(b, p);
	q->h = curl_easy_init();
	if (!q->h)
		die_x(EXIT_SYS, "unable to start a request: curl_easy_init failed");
	curl_easy_setopt(q->h, CURLOPT_URL, s->url);
	curl_easy_setopt(q->h, CURLOPT_HTTPHEADER, s->hdr);
	curl_easy_setopt(q->h, CURLOPT_POSTFIELDS, q->body);
	curl_easy_setopt(q->h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(q->h, CURLOPT_WRITEDATA, q);
	curl_easy_setopt(q->h, CURLOPT_PRIVATE, q);
	curl_easy_setopt(q->h, CURLOPT_ERRORBUFFER, q->err);
	curl_easy_setopt(q->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(q->h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(q->h, CURLOPT_CONNECTTIMEOUT_MS, to > 0 ? to : 0L);
	curl_easy_setopt(q->h, CURLOPT_USERAGENT, "sluice-bench");
	if (curl_multi_add_handle(s->m, q->h) != CURLM_OK) {
		req_free(s, q);
		return -1;
	}
	r->cl = q;
	return 0;
}

/* The core gave up on request i (timeout, or its run ended): its transfer goes. */
static void
o_cancel(bench *b, size_t i)
{
	bench_req *r = bench_req_at(b, i);

	if (r && r->cl) {
		req_free(st(b), r->cl);
		r->cl = NULL;
	}
}

/* A transfer ended: how it went decides the request. */
static void
done(bench *b, CURL *h, CURLcode rc)
{
	openai *s = st(b);
	oa_req *q = NULL;
	char code[32];

	curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&q);
	if (!q)
		return;
	if (q->run != bench_target_of(b)->run) {
		req_free(s, q);                 /* a run's leftover: nothing to tell */
		return;
	}
	if (bench_inflight(b, q->i) && !q->bad) {
		if (!q->status)
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &q->status);
		if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST) {
			info_x("request %zu: %s", q->i, q->err);
			bench_fail(b, q->i, "connect", 7);
		} else if (rc == CURLE_OPERATION_TIMEDOUT) {
			bench_fail(b, q->i, "timeout", 7);
		} else if (rc != CURLE_OK) {
			info_x("request %zu: %s", q->i, q->err);
			bench_fail(b, q->i, "transport", 9);
		} else if (q->status != 200) {
			info_x("request %zu: HTTP %ld: %s", q->i, q->status, q->page);
			snprintf(code, sizeof code, "http_%ld", q->status);
			bench_fail(b, q->i, code, strlen(code));
		} else if (!q->finished) {
			bench_fail(b, q->i, "incomplete", 10);
		} else {
			bench_finish(b, q->i, &q->u);
		}
	}
	if (bench_req_at(b, q->i))
		bench_req_at(b, q->i)->cl = NULL;
	req_free(s, q);
}

static void
drain(bench *b)
{
	openai *s = st(b);
	CURLMsg *msg;
	int left, running;

	curl_multi_perform(s->m, &running);
	while ((msg = curl_multi_info_read(s->m, &left)))
		if (msg->msg == CURLMSG_DONE)
			done(b, msg->easy_handle, msg->data.result);
}

static void
o_poll(bench *b, int ms)
{
	openai *s = st(b);

	drain(b);
	if (curl_multi_poll(s->m, NULL, 0, ms, NULL) != CURLM_OK)
		die_x(EXIT_SYS, "unable to poll: curl_multi_poll failed");
	drain(b);
}

/* ---- the connection -------------------------------------------------------- */

static int
o_open(bench *b, char *err, size_t errlen)
{
	bench_target *t = bench_target_of(b);
	openai *s = t->cl;
	char ebuf[CURL_ERROR_SIZE] = "";
	CURL *h;
	CURLcode rc;

	if (!s) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			die_x(EXIT_SYS, "unable to start libcurl");
		s = t->cl = xcalloc(1, sizeof *s);
		s->m = curl_multi_init();
		if (!s->m)
			die_x(EXIT_SYS, "unable to start libcurl: curl_multi_init failed");
		s->url = xmalloc(strlen(t->url) + 32);
		sprintf(s->url, "%s/v1/completions", t->url);
		s->hdr = curl_slist_append(s->hdr, "Content-Type: application/json");
		s->hdr = curl_slist_append(s->hdr, "Accept: text/event-stream");
		if (t->api_key) {
			char *a = xmalloc(strlen(t->api_key) + 32);

			sprintf(a, "Authorization: Bearer %s", t->api_key);
			s->hdr = curl_slist_append(s->hdr, a);
			free(a);
		}
		msgpack_sbuffer_init(&s->sb);
		msgpack_sbuffer_init(&s->js);
		msgpack_sbuffer_init(&s->cb);
		msg_pk_init(&s->pk, &s->sb);
		msg_pk_init(&s->cpk, &s->cb);
		if (!msgpack_zone_init(&s->z, 1 << 16))
			die_x(EXIT_SYS, "unable to allocate memory: msgpack zone");
	}
	/* can the server be reached at all? a connection, nothing sent */
	h = curl_easy_init();
	if (!h)
		die_x(EXIT_SYS, "unable to start libcurl: curl_easy_init failed");
	curl_easy_setopt(h, CURLOPT_URL, s->url);
	curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	rc = curl_easy_perform(h);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK) {
		seterr(err, errlen, "unable to connect to %s: %s", t->url, *ebuf ? ebuf : curl_easy_strerror(rc));
		return -1;
	}
	info_x("%s answers", t->url);
	return 0;
}

static void
o_close(bench *b)
{
	bench_target *t = bench_target_of(b);
	openai *s = t->cl;

	if (!s)
		return;
	curl_multi_cleanup(s->m);
	curl_slist_free_all(s->hdr);
	free(s->url);
	msgpack_sbuffer_destroy(&s->sb);
	msgpack_sbuffer_destroy(&s->js);
	msgpack_sbuffer_destroy(&s->cb);
	msgpack_zone_destroy(&s->z);
	free(s);
	t->cl = NULL;
	curl_global_cleanup();
}

const bench_client bench_openai = {o_open, o_send, o_cancel, o_poll, o_close};
