/* oai: the OpenAI API's JSON and sluice's messages, both ways, for gateway:
 * a request body checked and turned into one engine request per choice, and
 * the engine's tokens and log-probabilities turned into OpenAI's objects. No
 * I/O here, so that the fuzz target drives oai_parse alone. */
#ifndef SLUICE_OAI_H
#define SLUICE_OAI_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <msgpack.h>

#include "tok.h"

enum { OAI_COMPLETIONS, OAI_CHAT };

#define OAI_MAX_CHOICES 64   /* prompts x n, per HTTP request */
#define OAI_MAX_N 16
#define OAI_MAX_STOP 16

/* An answer that is an error: the HTTP status and OpenAI's error object. */
typedef struct oai_err {
	int status;             /* 400, 404, ... */
	const char *type;       /* "invalid_request_error", ... */
	const char *code;       /* "model_not_found", ... or NULL */
	char param[64];         /* the field at fault, "" for none */
	char message[512];
} oai_err;
#define OAI_ERR_ZERO {0, 0, 0, "", ""}

/* What requests are read against: the tokenizer, the chat template, the name. */
typedef struct oai_ctx {
	const tok *t;
	int chat_id;            /* tokenize_chat_id(); -1: chat is refused */
	const char *model;      /* the served name; requests must ask for it */
	uint32_t max_model_len; /* what /v1/models and /tokenize report */
} oai_ctx;

/* One completions or chat request, checked and tokenized. */
typedef struct oai_req {
	int kind;               /* OAI_COMPLETIONS or OAI_CHAT */
	int stream, include_usage, echo;
	int logprobs;           /* -1: none; else alternatives per token (0..20) */
	uint32_t n;             /* choices per prompt */
	uint32_t nprompts;      /* choices: nprompts * n, index prompt * n + i */
	tok_ids *prompts;       /* nprompts of them */
	char **echo_text;       /* completions with echo: each prompt's text */
	size_t *echo_len;
	int has_seed;
	int64_t seed;           /* choice i of a prompt gets seed + i */
	msgpack_sbuffer params; /* the upstream keys every choice shares (nparams pairs) */
	uint32_t nparams;
} oai_req;
#define OAI_REQ_ZERO {0, 0, 0, 0, -1, 1, 0, 0, 0, 0, 0, 0, {0, 0, 0}, 0}

/* Reads body[0..n) as a request of kind. 0 ok (free r with oai_req_free);
 * -1 with e set (400 naming the field, 404 for another model) and r freed. */
int oai_parse(const oai_ctx *cx, int kind, const char *body, size_t n, oai_req *r, oai_err *e);
void oai_req_free(oai_req *r);
/* Packs choice i's upstream request into sb (cleared first): id, tokens,
 * the shared keys, its seed; extra: more pairs the caller packs after
 * (user, timeout_ms), counted in the map's size. */
void oai_pack(const oai_req *r, uint32_t i, const char *id, size_t idlen, uint32_t extra,
	      msgpack_packer *pk);

/* Sets e; fmt names what is wrong. */
void oai_seterr(oai_err *e, int status, const char *type, const char *code, const char *param,
		const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* {"error": {"message", "type", "param", "code"}} */
json_t *oai_error_json(const oai_err *e);
/* The error a sluice error code (or finish reason) calls for. */
void oai_from_code(oai_err *e, const char *code, size_t codelen, const char *message, size_t mlen);

/* The log-probabilities of the tokens in lps (the engine's "logprobs"
 * array: {token, logprob, top: [[id, lp]...]}), in kind's shape, appended
 * to acc (completions: an object of four arrays; chat: {"content": [...]}),
 * made when *acc is NULL. text_off: the choice's text length so far
 * (completions' text_offset), advanced by the tokens' pieces. */
void oai_logprobs(const tok *t, int kind, const msgpack_object *lps, size_t want_top,
		  json_t **acc, size_t *text_off);

/* A JSON string of p[0..n), any bytes (ill-formed UTF-8 becomes U+FFFD). */
json_t *oai_string(const char *p, size_t n);

#endif
