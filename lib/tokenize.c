/* tokenize: the `tokenize` filter, and opening a model's tokenizer for it
 * and `detokenize` (see tokenize.h; input and output are lib/stream's).
 *
 * A request is answered by the first of these that applies:
 *   "tokens" present       passed through untouched (already tokenized)
 *   "prompt"               tok_encode(prompt, BOS/EOS as the file says,
 *                          special tokens matched unless --no-special)
 *   "messages"             the chat template with the generation prompt,
 *                          then tok_encode_plain: special tokens matched in
 *                          the template's text (its markers must become
 *                          control tokens), not in the contents (a client
 *                          must not forge a turn) unless --special-in-content
 *   none of them           an error event for that id; the stream goes on
 * Every other key passes through byte for byte. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chat.h"
#include "die.h"
#include "fetch.h"
#include "gguf.h"
#include "stream.h"
#include "tokenize.h"

tok *
tokenize_open(const char *path)
{
	char err[512], *def = 0;
	gguf g = GGUF_ZERO;
	struct stat st;
	tok *t;

	if (!path) {
		path = def = fetch_model_path();
		if (!path)
			die_x(EXIT_SYS, "unable to find a model: no home directory; use -m MODEL");
	}
	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			die_x(EXIT_SYS, "unable to open %s: %s; run: sluice model fetch", path, strerror(errno));
		die_sys("unable to open %s", path);
	}
	if (gguf_open(&g, path, err, sizeof err) < 0)
		die_x(EXIT_SYS, "unable to read %s: %s", path, err);
	t = tok_load(&g, err, sizeof err);
	if (!t)
		die_x(EXIT_SYS, "unable to load the tokenizer of %s: %s", path, err);
	gguf_close(&g);     /* the tokenizer keeps its own copy */
	free(def);
	return t;
}

/* ---- the tokenize filter ------------------------------------------------------ */

int
tokenize_chat_id(const tok *t, const tokenize_opts *o)
{
	const char *tpl;

	if (o->chat >= 0)
		return o->chat;
	tpl = tok_chat_template(t);
	if (!tpl)
		return chat_by_name("chatml");  /* llama.cpp's fallback too */
	return chat_detect(tpl);
}

static void
pack_ids(msgpack_packer *pk, const tok_ids *ids)
{
	size_t i;

	msgpack_pack_array(pk, ids->n);
	for (i = 0; i < ids->n; i++)
		msgpack_pack_uint32(pk, ids->v[i]);
}

int
tokenize_encode(const tok *t, const tokenize_opts *o, int chat, const msg *m, tok_ids *ids,
       size_t *ntok, char *err, size_t errlen)
{
	const msgpack_object *tokens, *msgs;
	chat_msg *cm = 0;
	chat_span *cs = 0;
	tok_span *plain = 0;
	char *text = 0;
	const char *s;
	size_t n, i, textlen, ncs = 0;
	int rc = -1, enc;

	if (msg_check_request(m, err, errlen) < 0)
		return -1;
	/* no conversation is no request: a template would render only its
	 * generation prompt (belongs in msg_check_request's T_CHAT test) */
	msgs = msg_get(m, "messages");
	if (msgs && msgs->type == MSGPACK_OBJECT_ARRAY && !msgs->via.array.size) {
		seterr(err, errlen, "key \"messages\" must not be empty");
		return -1;
	}
	ids->n = 0;
	tokens = msg_get(m, "tokens");
	if (tokens && tokens->type == MSGPACK_OBJECT_ARRAY) {
		*ntok = tokens->via.array.size;
		return 1;
	}
	if (msg_str(m, "prompt", &s, &n) == 1) {
		if (tok_encode(t, s, n, 1, !o->no_special, ids) < 0)
			die_x(EXIT_SYS, "unable to tokenize: out of memory");
		return 0;
	}
	msgs = msg_get(m, "messages");
	if (!msgs || msgs->type != MSGPACK_OBJECT_ARRAY) {
		seterr(err, errlen, "request has no prompt, messages or tokens");
		return -1;
	}
	if (chat < 0) {
		seterr(err, errlen, "the model's chat template is not one sluice knows; "
		       "use --chat-template NAME (known: %s)", chat_known());
		return -1;
	}
	/* msg_check_request saw that each element is a map with str role and content */
	n = msgs->via.array.size;
	cm = xcalloc(n ? n : 1, sizeof *cm);
	for (i = 0; i < n; i++) {
		const msgpack_object *e = &msgs->via.array.ptr[i];
		size_t j;

		for (j = 0; j < e->via.map.size; j++) {
			const msgpack_object *k = &e->via.map.ptr[j].key, *v = &e->via.map.ptr[j].val;

			if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR)
				continue;
			if (k->via.str.size == 4 && !memcmp(k->via.str.ptr, "role", 4))
				cm[i].role = v->via.str.ptr, cm[i].role_len = v->via.str.size;
			else if (k->via.str.size == 7 && !memcmp(k->via.str.ptr, "content", 7))
				cm[i].content = v->via.str.ptr, cm[i].content_len = v->via.str.size;
		}
	}
	if (chat_render_spans(chat, cm, n, 1, &text, &textlen, &cs, &ncs, err, errlen) < 0)
		goto out;
	/* the template's markers are control tokens: always matched; in the
	 * contents only if asked (llama.cpp and vLLM match them there too) */
	if (o->special_in_content) {
		enc = tok_encode(t, text, textlen, 1, 1, ids);
	} else {
		plain = xcalloc(ncs ? ncs : 1, sizeof *plain);
		for (i = 0; i < ncs; i++)
			plain[i] = (tok_span){ cs[i].off, cs[i].len };
		enc = tok_encode_plain(t, text, textlen, 1, plain, ncs, ids);
	}
	if (enc < 0)
		die_x(EXIT_SYS, "unable to tokenize: out of memory");
	rc = 0;
out:
	free(plain);
	free(cs);
	free(text);
	free(cm);
	return rc;
}

void
tokenize_request(const tok *t, const tokenize_opts *o, int chat, const msg *m,
		 msgpack_packer *pk, tok_ids *ids)
{
	static const char *const drop[] = { "tokens", "prompt_tokens" };
	const char *id = 0, *s;
	char err[512];
	size_t idlen = (size_t)-1, n, ntok = 0;
	int rc;

	if (msg_str(m, "id", &s, &n) == 1)
		id = s, idlen = n;
	rc = tokenize_encode(t, o, chat, m, ids, &ntok, err, sizeof err);
	if (rc < 0) {
		msg_pk_error(pk, id, idlen, "bad_request", err);
		return;
	}
	if (rc == 1 && !o->count) {
		/* already tokenized: the message as it came */
		if (m->raw)
			pk->callback(pk->data, m->raw, m->len);
		else
			msgpack_pack_object(pk, m->root);
		return;
	}
	if (rc == 1) {
		msg_pk_passthrough(pk, m, drop + 1, 1, 1);
		msg_pk_str(pk, "prompt_tokens");
		msgpack_pack_uint64(pk, ntok);
		return;
	}
	msg_pk_passthrough(pk, m, drop, 2, 1);
	if (o->count) {
		msg_pk_str(pk, "prompt_tokens");
		msgpack_pack_uint64(pk, ids->n);
	} else {
		msg_pk_str(pk, "tokens");
		pack_ids(pk, ids);
	}
}

/* ---- the filter's loop -------------------------------------------------------- */

typedef struct run {
	const tok *t;
	const tokenize_opts *o;
	int chat;
	int lines;             /* -c without -o: "ID\tCOUNT" lines */
	stream_out out;
	tok_ids ids;
} run;

/* "ID\tCOUNT\n", or "ID\terror: MESSAGE\n" */
static void
count_line(run *r, const char *id, size_t idlen, size_t count, const char *err)
{
	char num[32];
	int k;

	if (id)
		stream_out_raw(&r->out, id, idlen);
	if (err) {
		stream_out_raw(&r->out, "\terror: ", 8);
		stream_out_raw(&r->out, err, strlen(err));
		stream_out_raw(&r->out, "\n", 1);
		return;
	}
	k = snprintf(num, sizeof num, "\t%zu\n", count);
	stream_out_raw(&r->out, num, (size_t)k);
}

static void
on_msg(const msg *m, void *ud)
{
	run *r = ud;
	msgpack_packer pk;

	if (r->lines) {
		const char *id = 0, *s;
		char err[512];
		size_t idlen = 0, n, ntok = 0;
		int rc;

		if (msg_str(m, "id", &s, &n) == 1)
			id = s, idlen = n;
		rc = tokenize_encode(r->t, r->o, r->chat, m, &r->ids, &ntok, err, sizeof err);
		count_line(r, id, idlen, rc == 1 ? ntok : r->ids.n, rc < 0 ? err : 0);
		return;
	}
	tokenize_request(r->t, r->o, r->chat, m, stream_out_begin(&r->out, &pk), &r->ids);
	stream_out_end(&r->out);
}

static void
on_line(const char *p, size_t n, uint64_t lineno, void *ud)
{
	run *r = ud;
	msgpack_packer pk;
	char id[24];
	int k;

	k = snprintf(id, sizeof id, "%llu", (unsigned long long)lineno);
	r->ids.n = 0;
	if (tok_encode(r->t, p, n, 1, !r->o->no_special, &r->ids) < 0)
		die_x(EXIT_SYS, "unable to tokenize: out of memory");
	if (r->lines) {
		count_line(r, id, (size_t)k, r->ids.n, 0);
		return;
	}
	stream_out_begin(&r->out, &pk);
	msgpack_pack_map(&pk, 3);
	msg_pk_str(&pk, "id");
	msg_pk_strn(&pk, id, (size_t)k);
	msg_pk_str(&pk, "prompt");
	msg_pk_strn(&pk, p, n);
	if (r->o->count) {
		msg_pk_str(&pk, "prompt_tokens");
		msgpack_pack_uint64(&pk, r->ids.n);
	} else {
		msg_pk_str(&pk, "tokens");
		pack_ids(&pk, &r->ids);
	}
	stream_out_end(&r->out);
}

static void
on_bad(const char *why, void *ud)
{
	run *r = ud;
	msgpack_packer pk;

	if (r->lines) {
		count_line(r, 0, 0, 0, why);
		return;
	}
	msg_pk_error(stream_out_begin(&r->out, &pk), 0, (size_t)-1, "bad_request", why);
	stream_out_end(&r->out);
}

void
tokenize_run(const tok *t, const tokenize_opts *o, int in_fd, int out_fd)
{
	run r = { 0 };
	stream_in in = { 0 };
	char err[256];
	int rc;

	r.t = t;
	r.o = o;
	r.chat = tokenize_chat_id(t, o);
	r.lines = o->count && o->out == STREAM_AUTO;
	stream_out_init(&r.out, out_fd, o->out == STREAM_JSON);
	in.kind = o->in;
	in.dflt = STREAM_TEXT;
	in.max_line = TOKENIZE_MAX_LINE;
	in.out = &r.out;
	in.on_msg = on_msg;
	in.on_line = on_line;
	in.on_bad = on_bad;
	in.ud = &r;
	stream_in_init(&in);
	rc = stream_in_run(&in, in_fd, err, sizeof err);
	stream_out_flush(&r.out);   /* every answer so far, even when the input broke */
	stream_in_free(&in);
	stream_out_free(&r.out);
	tok_ids_free(&r.ids);
	if (rc < 0)
		die_x(EXIT_SYS, "unable to read the input: %s", err);
}
