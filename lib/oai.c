/* oai: OpenAI request bodies in, sluice requests out; sluice's tokens and
 * log-probabilities in, OpenAI's JSON out (see oai.h and gateway(1)). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detok.h"
#include "die.h"
#include "msg.h"
#include "oai.h"
#include "tokenize.h"

void
oai_seterr(oai_err *e, int status, const char *type, const char *code, const char *param,
	   const char *fmt, ...)
{
	va_list ap;

	e->status = status;
	e->type = type;
	e->code = code;
	snprintf(e->param, sizeof e->param, "%s", param ? param : "");
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	va_end(ap);
}

static int
bad(oai_err *e, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
bad(oai_err *e, const char *param, const char *fmt, ...)
{
	va_list ap;

	e->status = 400;
	e->type = "invalid_request_error";
	e->code = 0;
	snprintf(e->param, sizeof e->param, "%s", param ? param : "");
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	va_end(ap);
	return -1;
}

json_t *
oai_string(const char *p, size_t n)
{
	json_t *s = json_stringn(p, n);
	detok_buf b = DETOK_BUF_INIT;

	if (s)
		return s;
	detok_utf8((const unsigned char *)p, n, 1, &b);
	s = json_stringn(b.p ? b.p : "", b.n);
	detok_buf_free(&b);
	return s ? s : json_string("");
}

json_t *
oai_error_json(const oai_err *e)
{
	json_t *o = json_object(), *in = json_object();

	json_object_set_new(in, "message", oai_string(e->message, strlen(e->message)));
	json_object_set_new(in, "type", json_string(e->type ? e->type : "invalid_request_error"));
	json_object_set_new(in, "param", e->param[0] ? json_string(e->param) : json_null());
	json_object_set_new(in, "code", e->code ? json_string(e->code) : json_null());
	json_object_set_new(o, "error", in);
	return o;
}

void
oai_from_code(oai_err *e, const char *code, size_t cn, const char *m, size_t mn)
{
	static const struct { const char *code; int status; const char *type; const char *ocode; } map[] = {
		{ "bad_request", 400, "invalid_request_error", 0 },
		{ "too_long", 400, "invalid_request_error", "context_length_exceeded" },
		{ "duplicate_id", 400, "invalid_request_error", 0 },
		{ "rate_limited", 429, "rate_limit_error", "rate_limited" },
		{ "overloaded", 503, "service_unavailable", "overloaded" },
		{ "draining", 503, "service_unavailable", "draining" },
		{ "cancelled", 503, "service_unavailable", "cancelled" },
		{ "timeout", 504, "timeout", "timeout" },
		{ "upstream_lost", 502, "upstream_error", "upstream_lost" },
		{ "slow_consumer", 503, "service_unavailable", "slow_consumer" },
	};
	size_t i;

	for (i = 0; i < sizeof map / sizeof *map; i++)
		if (strlen(map[i].code) == cn && !memcmp(map[i].code, code, cn)) {
			oai_seterr(e, map[i].status, map[i].type, map[i].ocode, 0, "%.*s", (int)mn, m);
			return;
		}
	oai_seterr(e, 500, "internal_error", 0, 0, "%.*s (%.*s)", (int)mn, m, (int)(cn > 32 ? 32 : cn), code);
}

/* ------------------------------------------------------------- reading a request */

/* the fields sluice cannot honour: refused when given with a value that
 * would change the answer, never ignored */
static int
refuse_unsupported(const json_t *b, int kind, oai_err *e)
{
	static const char *const always[] = { "tools", "functions", "audio", "prediction", "tool_choice",
		"function_call", "guided_json", "guided_regex", "guided_choice", "guided_grammar",
		"response_format_schema", "web_search_options" };
	const json_t *v;
	size_t i;

	for (i = 0; i < sizeof always / sizeof *always; i++)
		if ((v = json_object_get(b, always[i])) && !json_is_null(v)
		    && !(json_is_array(v) && json_array_size(v) == 0)
		    && !(!strcmp(always[i], "tool_choice") && json_is_string(v) && !strcmp(json_string_value(v), "none")))
			return bad(e, always[i], "'%s' is not supported by sluice", always[i]);
	if ((v = json_object_get(b, "response_format")) && !json_is_null(v)) {
		const json_t *ty = json_is_object(v) ? json_object_get(v, "type") : 0;
		if (!ty || !json_is_string(ty) || strcmp(json_string_value(ty), "text"))
			return bad(e, "response_format", "'response_format' other than {\"type\": \"text\"} "
				   "is not supported by sluice");
	}
	if ((v = json_object_get(b, "logit_bias")) && !json_is_null(v) && !(json_is_object(v) && !json_object_size(v)))
		return bad(e, "logit_bias", "'logit_bias' is not supported by sluice");
	if ((v = json_object_get(b, "modalities")) && !json_is_null(v)) {
		if (!json_is_array(v) || json_array_size(v) != 1 || !json_is_string(json_array_get(v, 0))
		    || strcmp(json_string_value(json_array_get(v, 0)), "text"))
			return bad(e, "modalities", "'modalities' other than [\"text\"] is not supported by sluice");
	}
	if ((v = json_object_get(b, "min_tokens")) && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 0))
		return bad(e, "min_tokens", "'min_tokens' is not supported by sluice");
	if (kind == OAI_COMPLETIONS && (v = json_object_get(b, "suffix")) && !json_is_null(v)
	    && !(json_is_string(v) && !json_string_length(v)))
		return bad(e, "suffix", "'suffix' is not supported by sluice");
	return 0;
}

/* number field k of b into *out when present (not null): 1 given, 0 absent, -1 bad */
static int
num(const json_t *b, const char *k, double lo, double hi, double *out, oai_err *e)
{
	const json_t *v = json_object_get(b, k);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v))
		return bad(e, k, "'%s' must be a number", k);
	*out = json_number_value(v);
	if (!(*out >= lo && *out <= hi))
		return bad(e, k, "'%s' must be between %g and %g", k, lo, hi);
	return 1;
}

static int
integer(const json_t *b, const char *k, long long lo, long long hi, long long *out, oai_err *e)
{
	const json_t *v = json_object_get(b, k);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return bad(e, k, "'%s' must be an integer", k);
	*out = json_integer_value(v);
	if (*out < lo || *out > hi)
		return bad(e, k, "'%s' must be between %lld and %lld", k, lo, hi);
	return 1;
}

static int
boolean(const json_t *b, const char *k, int *out, oai_err *e)
{
	const json_t *v = json_object_get(b, k);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return bad(e, k, "'%s' must be true or false", k);
	*out = json_is_true(v);
	return 1;
}

static void
pk_num(oai_req *r, msgpack_packer *pk, const char *k, double v)
{
	msg_pk_str(pk, k);
	msgpack_pack_double(pk, v);
	r->nparams++;
}

static void
pk_uint(oai_req *r, msgpack_packer *pk, const char *k, uint64_t v)
{
	msg_pk_str(pk, k);
	msgpack_pack_uint64(pk, v);
	r->nparams++;
}

/* A prompt through the tokenizer as the engine would take it: m is a map
 * with "prompt" or "messages". */
static int
encode(const oai_ctx *cx, const msgpack_sbuffer *sb, tok_ids *ids, const char *param, oai_err *e)
{
	tokenize_opts o = TOKENIZE_OPTS_DEFAULT;
	msgpack_zone z;
	msg m = MSG_ZERO;
	const char *why;
	char err[256];
	size_t ntok = 0;
	int rc = -1;

	msgpack_zone_init(&z, 2048);
	if (msg_unpack(sb->data, sb->size, 0, &z, &m, &why) != MSG_GOT) {
		bad(e, param, "'%s' is too large or too deeply nested", param);
		goto out;
	}
	if (tokenize_encode(cx->t, &o, cx->chat_id, &m, ids, &ntok, err, sizeof err) < 0) {
		bad(e, param, "%s", err);
		goto out;
	}
	if (!ids->n) {
		bad(e, param, "'%s' gives no tokens", param);
		goto out;
	}
	rc = 0;
out:
	msgpack_zone_destroy(&z);
	return rc;
}

/* one prompt of a completions request: a string, or token ids */
static int
read_prompt(const oai_ctx *cx, const json_t *p, oai_req *r, uint32_t k, oai_err *e)
{
	tok_ids *ids = &r->prompts[k];
	size_t i;

	if (json_is_string(p)) {
		msgpack_sbuffer sb;
		msgpack_packer pk;
		int rc;

		msgpack_sbuffer_init(&sb);
		msg_pk_init(&pk, &sb);
		msgpack_pack_map(&pk, 2);
		msg_pk_str(&pk, "id");
		msg_pk_str(&pk, "p");
		msg_pk_str(&pk, "prompt");
		msg_pk_strn(&pk, json_string_value(p), json_string_length(p));
		rc = encode(cx, &sb, ids, "prompt", e);
		msgpack_sbuffer_destroy(&sb);
		if (rc < 0)
			return -1;
		if (r->echo) {
			r->echo_len[k] = json_string_length(p);
			r->echo_text[k] = xstrndup(json_string_value(p), r->echo_len[k]);
		}
		return 0;
	}
	if (!json_is_array(p) || !json_array_size(p))
		return bad(e, "prompt", "'prompt' must be a string, a list of strings or a non-empty list of token ids");
	for (i = 0; i < json_array_size(p); i++) {
		const json_t *v = json_array_get(p, i);
		if (!json_is_integer(v) || json_integer_value(v) < 0
		    || json_integer_value(v) >= (json_int_t)tok_n_vocab(cx->t))
			return bad(e, "prompt", "'prompt' token %zu is not an id of the vocabulary (0..%u)", i,
				   tok_n_vocab(cx->t) - 1);
		if (ids->n == ids->cap) {
			ids->cap = ids->cap ? 2 * ids->cap : 64;
			ids->v = xrealloc(ids->v, ids->cap * sizeof *ids->v);
		}
		ids->v[ids->n++] = (uint32_t)json_integer_value(v);
	}
	if (r->echo) {
		detok d;
		detok_buf b = DETOK_BUF_INIT;

		detok_init(&d, cx->t, 0);
		detok_feed(&d, ids->v, ids->n, &b);
		detok_flush(&d, &b);
		r->echo_text[k] = b.p ? b.p : xstrdup("");
		r->echo_len[k] = b.n;
	}
	return 0;
}

static int
read_prompts(const oai_ctx *cx, const json_t *p, oai_req *r, oai_err *e)
{
	size_t i, np = 1;
	int list = 0;

	if (!p || json_is_null(p))
		return bad(e, "prompt", "'prompt' is required");
	/* a list of strings or of id lists is several prompts; a list of ids is one */
	if (json_is_array(p) && json_array_size(p)
	    && (json_is_string(json_array_get(p, 0)) || json_is_array(json_array_get(p, 0)))) {
		list = 1;
		np = json_array_size(p);
	}
	if (np * r->n > OAI_MAX_CHOICES)
		return bad(e, list ? "prompt" : "n", "prompts x n must be at most %d", OAI_MAX_CHOICES);
	r->nprompts = (uint32_t)np;
	r->prompts = xcalloc(np, sizeof *r->prompts);
	if (r->echo) {
		r->echo_text = xcalloc(np, sizeof *r->echo_text);
		r->echo_len = xcalloc(np, sizeof *r->echo_len);
	}
	for (i = 0; i < np; i++) {
		const json_t *one = list ? json_array_get(p, i) : p;
		if (list && json_is_array(one) && json_array_size(one) && !json_is_integer(json_array_get(one, 0)))
			return bad(e, "prompt", "'prompt' must be a string, a list of strings or of token id lists");
		if (read_prompt(cx, one, r, (uint32_t)i, e) < 0)
			return -1;
	}
	return 0;
}

static int
read_messages(const oai_ctx *cx, const json_t *ms, oai_req *r, oai_err *e)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t i, k;
	int rc = -1;

	if (!ms || !json_is_array(ms) || !json_array_size(ms))
		return bad(e, "messages", "'messages' must be a non-empty list");
	if (cx->chat_id < 0)
		return bad(e, "messages", "the model's chat template is not one sluice knows");
	msgpack_sbuffer_init(&sb);
	msg_pk_init(&pk, &sb);
	msgpack_pack_map(&pk, 2);
	msg_pk_str(&pk, "id");
	msg_pk_str(&pk, "c");
	msg_pk_str(&pk, "messages");
	msgpack_pack_array(&pk, (uint32_t)json_array_size(ms));
	for (i = 0; i < json_array_size(ms); i++) {
		const json_t *m = json_array_get(ms, i), *role, *content;
		const char *rs;

		if (!json_is_object(m)) {
			bad(e, "messages", "'messages[%zu]' must be an object", i);
			goto out;
		}
		role = json_object_get(m, "role");
		content = json_object_get(m, "content");
		if (!json_is_string(role)) {
			bad(e, "messages", "'messages[%zu].role' must be a string", i);
			goto out;
		}
		rs = json_string_value(role);
		if (!strcmp(rs, "developer"))
			rs = "system";
		if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant")) {
			bad(e, "messages", "'messages[%zu].role' \"%s\" is not supported by sluice "
			    "(system, developer, user, assistant)", i, json_string_value(role));
			goto out;
		}
		msgpack_pack_map(&pk, 2);
		msg_pk_str(&pk, "role");
		msg_pk_str(&pk, rs);
		msg_pk_str(&pk, "content");
		if (json_is_string(content)) {
			msg_pk_strn(&pk, json_string_value(content), json_string_length(content));
		} else if (json_is_null(content) || !content) {
			msg_pk_str(&pk, "");
		} else if (json_is_array(content)) {
			/* text parts, joined with newlines as the peers do */
			msgpack_sbuffer txt;
			msgpack_sbuffer_init(&txt);
			for (k = 0; k < json_array_size(content); k++) {
				const json_t *part = json_array_get(content, k), *ty, *tx;
				ty = json_is_object(part) ? json_object_get(part, "type") : 0;
				tx = json_is_object(part) ? json_object_get(part, "text") : 0;
				if (!json_is_string(ty) || strcmp(json_string_value(ty), "text") || !json_is_string(tx)) {
					msgpack_sbuffer_destroy(&txt);
					bad(e, "messages", "'messages[%zu].content[%zu]': only {\"type\": \"text\", "
					    "\"text\": ...} parts are supported by sluice", i, k);
					goto out;
				}
				if (k)
					msgpack_sbuffer_write(&txt, "\n", 1);
				msgpack_sbuffer_write(&txt, json_string_value(tx), json_string_length(tx));
			}
			msg_pk_strn(&pk, txt.data ? txt.data : "", txt.size);
			msgpack_sbuffer_destroy(&txt);
		} else {
			bad(e, "messages", "'messages[%zu].content' must be a string or a list of text parts", i);
			goto out;
		}
	}
	r->nprompts = 1;
	r->prompts = xcalloc(1, sizeof *r->prompts);
	rc = encode(cx, &sb, &r->prompts[0], "messages", e);
out:
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static int
read_stop(const json_t *b, oai_req *r, msgpack_packer *pk, oai_err *e)
{
	const json_t *v = json_object_get(b, "stop");
	size_t i, n = 0;

	if (!v || json_is_null(v))
		return 0;
	if (json_is_string(v)) {
		if (!json_string_length(v))
			return 0;
		if (json_string_length(v) > 256)
			return bad(e, "stop", "'stop' strings must be at most 256 bytes");
		msg_pk_str(pk, "stop");
		msgpack_pack_array(pk, 1);
		msg_pk_strn(pk, json_string_value(v), json_string_length(v));
		r->nparams++;
		return 0;
	}
	if (!json_is_array(v))
		return bad(e, "stop", "'stop' must be a string or a list of strings");
	if (json_array_size(v) > OAI_MAX_STOP)
		return bad(e, "stop", "'stop' has more than %d strings", OAI_MAX_STOP);
	for (i = 0; i < json_array_size(v); i++) {
		const json_t *s = json_array_get(v, i);
		if (!json_is_string(s))
			return bad(e, "stop", "'stop' must be a string or a list of strings");
		if (json_string_length(s) > 256)
			return bad(e, "stop", "'stop' strings must be at most 256 bytes");
		n += json_string_length(s) > 0;
	}
	if (!n)
		return 0;
	msg_pk_str(pk, "stop");
	msgpack_pack_array(pk, (uint32_t)n);
	for (i = 0; i < json_array_size(v); i++) {
		const json_t *s = json_array_get(v, i);
		if (json_string_length(s))
			msg_pk_strn(pk, json_string_value(s), json_string_length(s));
	}
	r->nparams++;
	return 0;
}

int
oai_parse(const oai_ctx *cx, int kind, const char *body, size_t n, oai_req *r, oai_err *e)
{
	json_error_t je;
	json_t *b = json_loadb(body, n, JSON_REJECT_DUPLICATES, &je);
	msgpack_packer pk;
	const json_t *v, *so;
	long long iv;
	double d;
	int bv, rc = -1, lp = 0;

	*r = (oai_req)OAI_REQ_ZERO;
	*e = (oai_err)OAI_ERR_ZERO;
	r->kind = kind;
	msgpack_sbuffer_init(&r->params);
	msg_pk_init(&pk, &r->params);
	if (!b) {
		bad(e, 0, "the body is not valid JSON: %s (at byte %d)", je.text, je.position);
		goto out;
	}
	if (!json_is_object(b)) {
		bad(e, 0, "the body must be a JSON object");
		goto out;
	}
	v = json_object_get(b, "model");
	if (!v || !json_is_string(v)) {
		bad(e, "model", "'model' is required (a string)");
		goto out;
	}
	if (strcmp(json_string_value(v), cx->model)) {
		oai_seterr(e, 404, "invalid_request_error", "model_not_found", "model",
			   "the model '%.200s' does not exist; this server has '%.200s'", json_string_value(v), cx->model);
		goto out;
	}
	if (refuse_unsupported(b, kind, e) < 0)
		goto out;
	if (boolean(b, "stream", &r->stream, e) < 0)
		goto out;
	if ((so = json_object_get(b, "stream_options")) && !json_is_null(so)) {
		if (!r->stream) {
			bad(e, "stream_options", "'stream_options' is only allowed when 'stream' is true");
			goto out;
		}
		if (!json_is_object(so) || boolean(so, "include_usage", &r->include_usage, e) < 0) {
			bad(e, "stream_options", "'stream_options' must be {\"include_usage\": true|false}");
			goto out;
		}
	}
	if (integer(b, "n", 1, OAI_MAX_N, &iv, e) < 0)
		goto out;
	if (json_object_get(b, "n") && !json_is_null(json_object_get(b, "n")))
		r->n = (uint32_t)iv;
	if ((v = json_object_get(b, "best_of")) && !json_is_null(v)
	    && !(json_is_integer(v) && json_integer_value(v) == (json_int_t)r->n)) {
		bad(e, "best_of", "'best_of' other than n is not supported by sluice");
		goto out;
	}
	if (kind == OAI_COMPLETIONS) {
		if (boolean(b, "echo", &r->echo, e) < 0)
			goto out;
		if ((v = json_object_get(b, "logprobs")) && !json_is_null(v)) {
			if (integer(b, "logprobs", 0, 5, &iv, e) < 0)
				goto out;
			r->logprobs = (int)iv;
			if (r->echo) {
				bad(e, "echo", "'echo' with 'logprobs' (prompt log-probabilities) is not supported by sluice");
				goto out;
			}
		}
	} else {
		if (boolean(b, "logprobs", &lp, e) < 0)
			goto out;
		if (integer(b, "top_logprobs", 0, 20, &iv, e) < 0)
			goto out;
		if (json_object_get(b, "top_logprobs") && !json_is_null(json_object_get(b, "top_logprobs"))) {
			if (!lp) {
				bad(e, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
				goto out;
			}
		} else {
			iv = 0;
		}
		if (lp)
			r->logprobs = (int)iv;
	}
	/* the sampling keys every choice shares (the map's header is oai_pack's) */
	if (kind == OAI_CHAT && integer(b, "max_completion_tokens", 0, 1 << 30, &iv, e) == 1)
		pk_uint(r, &pk, "max_tokens", (uint64_t)iv);
	else if (e->status)
		goto out;
	else if (integer(b, "max_tokens", 0, 1 << 30, &iv, e) == 1)
		pk_uint(r, &pk, "max_tokens", (uint64_t)iv);
	else if (e->status)
		goto out;
	else if (kind == OAI_COMPLETIONS)
		pk_uint(r, &pk, "max_tokens", 16);   /* OpenAI's default for completions */
	if ((bv = num(b, "temperature", 0, 2, &d, e)) < 0)
		goto out;
	pk_num(r, &pk, "temperature", bv ? d : 1.0);   /* OpenAI's default, not greedy */
	if ((bv = num(b, "top_p", 0, 1, &d, e)) < 0)
		goto out;
	if (bv)
		pk_num(r, &pk, "top_p", d);
	if ((bv = integer(b, "top_k", -1, 1 << 20, &iv, e)) < 0)
		goto out;
	if (bv && iv > 0)
		pk_uint(r, &pk, "top_k", (uint64_t)iv);
	if ((bv = num(b, "min_p", 0, 1, &d, e)) < 0)
		goto out;
	if (bv)
		pk_num(r, &pk, "min_p", d);
	if ((bv = num(b, "presence_penalty", -2, 2, &d, e)) < 0)
		goto out;
	if (bv)
		pk_num(r, &pk, "presence_penalty", d);
	if ((bv = num(b, "frequency_penalty", -2, 2, &d, e)) < 0)
		goto out;
	if (bv)
		pk_num(r, &pk, "frequency_penalty", d);
	if ((bv = num(b, "repetition_penalty", 0.01, 100, &d, e)) < 0)
		goto out;
	if (bv)
		pk_num(r, &pk, "repeat_penalty", d);
	if ((bv = integer(b, "seed", -(1LL << 62), 1LL << 62, &iv, e)) < 0)
		goto out;
	if (bv) {
		r->has_seed = 1;
		r->seed = iv;
	}
	if (read_stop(b, r, &pk, e) < 0)
		goto out;
	if (boolean(b, "ignore_eos", &bv, e) < 0)
		goto out;
	if (json_is_true(json_object_get(b, "ignore_eos"))) {
		msg_pk_str(&pk, "ignore_eos");
		msgpack_pack_true(&pk);
		r->nparams++;
	}
	if (r->logprobs >= 0)   /* the engine gives the chosen token's with at least one alternative */
		pk_uint(r, &pk, "logprobs", r->logprobs > 0 ? (uint64_t)r->logprobs : 1);
	msg_pk_str(&pk, "stream");
	if (r->stream)
		msgpack_pack_true(&pk);
	else
		msgpack_pack_false(&pk);
	r->nparams++;
	if ((v = json_object_get(b, "user")) && !json_is_null(v)) {
		if (!json_is_string(v)) {
			bad(e, "user", "'user' must be a string");
			goto out;
		}
		msg_pk_str(&pk, "user");
		msg_pk_strn(&pk, json_string_value(v), json_string_length(v) > 256 ? 256 : json_string_length(v));
		r->nparams++;
	}
	if (kind == OAI_COMPLETIONS) {
		if (read_prompts(cx, json_object_get(b, "prompt"), r, e) < 0)
			goto out;
	} else if (read_messages(cx, json_object_get(b, "messages"), r, e) < 0) {
		goto out;
	}
	rc = 0;
out:
	json_decref(b);
	if (rc < 0)
		oai_req_free(r);
	return rc;
}

void
oai_req_free(oai_req *r)
{
	uint32_t i;

	for (i = 0; r->prompts && i < r->nprompts; i++)
		tok_ids_free(&r->prompts[i]);
	for (i = 0; r->echo_text && i < r->nprompts; i++)
		free(r->echo_text[i]);
	free(r->prompts);
	free(r->echo_text);
	free(r->echo_len);
	msgpack_sbuffer_destroy(&r->params);
	r->prompts = 0;
	r->echo_text = 0;
	r->echo_len = 0;
	r->nprompts = 0;
	r->params = (msgpack_sbuffer){0, 0, 0};
}

void
oai_pack(const oai_req *r, uint32_t i, const char *id, size_t idlen, uint32_t extra, msgpack_packer *pk)
{
	const tok_ids *p = &r->prompts[i / r->n];
	size_t k;

	msgpack_pack_map(pk, 2 + r->nparams + (uint32_t)r->has_seed + extra);
	msg_pk_str(pk, "id");
	msg_pk_strn(pk, id, idlen);
	msg_pk_str(pk, "tokens");
	msgpack_pack_array(pk, (uint32_t)p->n);
	for (k = 0; k < p->n; k++)
		msgpack_pack_uint32(pk, p->v[k]);
	if (r->params.size)
		pk->callback(pk->data, r->params.data, r->params.size);
	if (r->has_seed) {
		msg_pk_str(pk, "seed");
		msgpack_pack_int64(pk, r->seed + (int64_t)(i % r->n));
	}
}

/* ------------------------------------------------------------- log-probabilities */

static json_t *
bytes_of(const char *p, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_integer((unsigned char)p[i]));
	return a;
}

static double
lp_value(const msgpack_object *o)
{
	if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
		return isfinite(o->via.f64) ? o->via.f64 : -9999.0;
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return (double)o->via.i64;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		return (double)o->via.u64;
	return -9999.0;
}

static const msgpack_object *
map_get(const msgpack_object *m, const char *k)
{
	size_t kn = strlen(k);
	uint32_t i;

	if (m->type != MSGPACK_OBJECT_MAP)
		return 0;
	for (i = 0; i < m->via.map.size; i++) {
		const msgpack_object_kv *kv = &m->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == kn && !memcmp(kv->key.via.str.ptr, k, kn))
			return &kv->val;
	}
	return 0;
}

static size_t
piece(const tok *t, uint64_t id, char *buf, size_t cap)
{
	size_t n;

	if (id >= tok_n_vocab(t))
		return 0;
	n = tok_piece(t, (uint32_t)id, 1, buf, cap);
	return n < cap ? n : cap;
}

void
oai_logprobs(const tok *t, int kind, const msgpack_object *lps, size_t want_top, json_t **acc, size_t *text_off)
{
	json_t *a = *acc, *tokens, *tlps, *tops, *offs, *content;
	char buf[256];
	uint32_t i, k;

	if (!a) {
		a = json_object();
		if (kind == OAI_COMPLETIONS) {
			json_object_set_new(a, "tokens", json_array());
			json_object_set_new(a, "token_logprobs", json_array());
			json_object_set_new(a, "top_logprobs", json_array());
			json_object_set_new(a, "text_offset", json_array());
		} else {
			json_object_set_new(a, "content", json_array());
			json_object_set_new(a, "refusal", json_null());
		}
		*acc = a;
	}
	if (!lps || lps->type != MSGPACK_OBJECT_ARRAY)
		return;
	tokens = json_object_get(a, "tokens");
	tlps = json_object_get(a, "token_logprobs");
	tops = json_object_get(a, "top_logprobs");
	offs = json_object_get(a, "text_offset");
	content = json_object_get(a, "content");
	for (i = 0; i < lps->via.array.size; i++) {
		const msgpack_object *o = &lps->via.array.ptr[i];
		const msgpack_object *tk = map_get(o, "token"), *lp = map_get(o, "logprob"), *top = map_get(o, "top");
		uint64_t id = tk && tk->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? tk->via.u64 : 0;
		size_t pn = piece(t, id, buf, sizeof buf);
		double v = lp ? lp_value(lp) : 0;
		uint32_t ntop = top && top->type == MSGPACK_OBJECT_ARRAY ? top->via.array.size : 0;

		if (ntop > want_top)
			ntop = (uint32_t)want_top;
		if (kind == OAI_COMPLETIONS) {
			json_t *tl = json_object();
			json_array_append_new(tokens, oai_string(buf, pn));
			json_array_append_new(tlps, json_real(v));
			json_array_append_new(offs, json_integer((json_int_t)*text_off));
			for (k = 0; k < ntop; k++) {
				const msgpack_object *pr = &top->via.array.ptr[k];
				char b2[256];
				size_t n2;
				json_t *key;
				if (pr->type != MSGPACK_OBJECT_ARRAY || pr->via.array.size != 2
				    || pr->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
					continue;
				n2 = piece(t, pr->via.array.ptr[0].via.u64, b2, sizeof b2);
				key = oai_string(b2, n2);
				json_object_set_new(tl, json_string_value(key), json_real(lp_value(&pr->via.array.ptr[1])));
				json_decref(key);
			}
			json_array_append_new(tops, tl);
		} else {
			json_t *ent = json_object(), *tl = json_array();
			json_object_set_new(ent, "token", oai_string(buf, pn));
			json_object_set_new(ent, "logprob", json_real(v));
			json_object_set_new(ent, "bytes", bytes_of(buf, pn));
			for (k = 0; k < ntop; k++) {
				const msgpack_object *pr = &top->via.array.ptr[k];
				char b2[256];
				size_t n2;
				json_t *alt;
				if (pr->type != MSGPACK_OBJECT_ARRAY || pr->via.array.size != 2
				    || pr->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
					continue;
				n2 = piece(t, pr->via.array.ptr[0].via.u64, b2, sizeof b2);
				alt = json_object();
				json_object_set_new(alt, "token", oai_string(b2, n2));
				json_object_set_new(alt, "logprob", json_real(lp_value(&pr->via.array.ptr[1])));
				json_object_set_new(alt, "bytes", bytes_of(b2, n2));
				json_array_append_new(tl, alt);
			}
			json_object_set_new(ent, "top_logprobs", tl);
			json_array_append_new(content, ent);
		}
		*text_off += pn;
	}
}
