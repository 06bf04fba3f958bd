/* tokenize: the `tokenize` filter and the input/output plumbing it shares
 * with `detokenize` (see tokenize.h).
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
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chat.h"
#include "die.h"
#include "fetch.h"
#include "gguf.h"
#include "json.h"
#include "tokenize.h"

#define CHUNK 65536
#define OUT_FLUSH_AT (256u << 10)   /* output is written in blocks this big */

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

/* ---- input ------------------------------------------------------------------ */

int
tokenize_sniff(unsigned char c, int text_ok)
{
	if ((c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf)
		return TOKENIZE_MSGPACK;
	if (c == '{' || !text_ok)
		return TOKENIZE_JSON;
	return TOKENIZE_TEXT;
}

typedef struct reader {
	tokenize_in *in;
	int kind;
	char *lb;              /* a line cut by a read, being completed */
	size_t ln, lcap;
	int skipping;          /* discarding the rest of a line that was too long */
	uint64_t lineno;       /* lines seen so far */
	msgpack_sbuffer jb;    /* a JSON line as msgpack */
	msgpack_zone zone;
} reader;

static void
line(reader *r, const char *p, size_t n)
{
	tokenize_in *in = r->in;
	char err[256], why[300];
	msgpack_packer pk;
	const char *e;
	size_t i;
	msg m = MSG_ZERO;

	r->lineno++;
	if (r->kind == TOKENIZE_TEXT) {
		in->on_line(p, n, r->lineno, in->ud);
		return;
	}
	for (i = 0; i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r'); i++)
		;
	if (i == n)
		return;         /* blank lines are ignored */
	r->jb.size = 0;
	msg_pk_init(&pk, &r->jb);
	if (json_to_msgpack(p, n, NULL, &pk, err, sizeof err) < 0) {
		snprintf(why, sizeof why, "line %llu: %s", (unsigned long long)r->lineno, err);
		in->on_bad(why, in->ud);
		return;
	}
	if (msg_unpack(r->jb.data, r->jb.size, NULL, &r->zone, &m, &e) != MSG_GOT) {
		snprintf(why, sizeof why, "line %llu: %s", (unsigned long long)r->lineno, e);
		in->on_bad(why, in->ud);
	} else {
		in->on_msg(&m, in->ud);
	}
	msgpack_zone_clear(&r->zone);
}

static void
too_long(reader *r)
{
	char why[128];

	snprintf(why, sizeof why, "line %llu is longer than %u bytes",
		 (unsigned long long)r->lineno + 1, TOKENIZE_MAX_LINE);
	r->in->on_bad(why, r->in->ud);
	r->skipping = 1;
	r->ln = 0;
}

static void
keep(reader *r, const char *p, size_t n)
{
	if (r->skipping || !n)
		return;
	if (r->ln + n > TOKENIZE_MAX_LINE) {
		too_long(r);
		return;
	}
	if (r->lcap - r->ln < n) {
		size_t cap = r->lcap ? r->lcap : CHUNK;

		while (cap - r->ln < n)
			cap *= 2;
		r->lb = xrealloc(r->lb, cap);
		r->lcap = cap;
	}
	memcpy(r->lb + r->ln, p, n);
	r->ln += n;
}

/* Splits a chunk into lines; nearly all text input passes here. */
static void
lines(reader *r, const char *p, size_t n)
{
	const char *nl;

	while ((nl = memchr(p, '\n', n))) {
		size_t k = (size_t)(nl - p);

		if (r->skipping) {
			r->skipping = 0;
			r->lineno++;
		} else if (r->ln) {
			keep(r, p, k);
			if (!r->skipping) {
				line(r, r->lb, r->ln);
			} else {
				r->skipping = 0;
				r->lineno++;
			}
		} else if (k > TOKENIZE_MAX_LINE) {
			too_long(r);
			r->skipping = 0;
			r->lineno++;
		} else {
			line(r, p, k);
		}
		r->ln = 0;
		p = nl + 1;
		n -= k + 1;
	}
	keep(r, p, n);
}

static int
readable(int fd)
{
	struct pollfd pfd = { fd, POLLIN, 0 };

	return poll(&pfd, 1, 0) != 0;
}

int
tokenize_read(int fd, tokenize_in *in, char *err, size_t errlen)
{
	reader r = { 0 };
	msg_dec d = MSG_DEC_ZERO;
	char *buf = xmalloc(CHUNK), *p;
	const char *why;
	size_t avail;
	ssize_t got;
	msg m = MSG_ZERO;
	uint64_t nmsg = 0;     /* msgpack messages taken out, good or bad */
	int rc, ret = 0;

	r.in = in;
	r.kind = in->kind;
	msgpack_sbuffer_init(&r.jb);
	msgpack_zone_init(&r.zone, 8192);
	msg_dec_init(&d, NULL);
	for (;;) {
		if (in->on_idle && !readable(fd))
			in->on_idle(in->ud);
		if (r.kind == TOKENIZE_MSGPACK) {
			p = msg_dec_space(&d, &avail);
		} else {
			p = buf;
			avail = CHUNK;
		}
		got = read(fd, p, avail);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			seterr(err, errlen, "unable to read the input: %s", strerror(errno));
			ret = -1;
			break;
		}
		if (got == 0)
			break;
		if (r.kind == TOKENIZE_AUTO) {
			r.kind = tokenize_sniff((unsigned char)p[0], in->text_ok);
			if (r.kind == TOKENIZE_MSGPACK) {
				msg_dec_feed(&d, p, (size_t)got);
				got = 0;
			}
		} else if (r.kind == TOKENIZE_MSGPACK) {
			msg_dec_commit(&d, (size_t)got);
			got = 0;
		}
		if (r.kind != TOKENIZE_MSGPACK) {
			lines(&r, p, (size_t)got);
			continue;
		}
		while ((rc = msg_dec_next(&d, &m, &why)) != MSG_NEED) {
			if (rc == MSG_GOT) {
				nmsg++;
				in->on_msg(&m, in->ud);
			} else if (rc == MSG_BAD) {
				nmsg++;
				in->on_bad(why, in->ud);
			} else {
				seterr(err, errlen, "unable to read the input: message %llu: %s",
				       (unsigned long long)nmsg + 1, why);
				ret = -1;
				break;
			}
		}
		if (ret < 0)
			break;
	}
	/* after a failure, what came before it has been answered; no more */
	if (!ret && r.kind == TOKENIZE_MSGPACK && msg_dec_pending(&d))
		in->on_bad("the input ends inside a message", in->ud);
	if (!ret && r.kind != TOKENIZE_MSGPACK && r.ln && !r.skipping)
		line(&r, r.lb, r.ln);   /* the last line had no '\n' */
	msg_dec_free(&d);
	msgpack_zone_destroy(&r.zone);
	msgpack_sbuffer_destroy(&r.jb);
	free(r.lb);
	free(buf);
	return ret;
}

/* ---- output ------------------------------------------------------------------ */

void
tokenize_out_init(tokenize_out *o, int fd, int json)
{
	memset(o, 0, sizeof *o);
	o->fd = fd;
	o->json = json;
	msgpack_sbuffer_init(&o->sb);
	msgpack_sbuffer_init(&o->tmp);
	msgpack_zone_init(&o->zone, 8192);
	o->zone_ok = 1;
}

void
tokenize_out_free(tokenize_out *o)
{
	msgpack_sbuffer_destroy(&o->sb);
	msgpack_sbuffer_destroy(&o->tmp);
	if (o->zone_ok)
		msgpack_zone_destroy(&o->zone);
	o->zone_ok = 0;
}

msgpack_packer *
tokenize_out_begin(tokenize_out *o, msgpack_packer *pk)
{
	o->tmp.size = 0;
	msg_pk_init(pk, o->json ? &o->tmp : &o->sb);
	return pk;
}

void
tokenize_out_end(tokenize_out *o)
{
	const char *e;
	msg m = MSG_ZERO;

	if (o->json) {
		/* what we packed ourselves; a limit broken here is our bug */
		if (msg_unpack(o->tmp.data, o->tmp.size, NULL, &o->zone, &m, &e) != MSG_GOT)
			die_x(EXIT_SYS, "unable to convert a message to JSON: %s", e);
		json_from_msgpack(&m.root, &o->sb);
		msgpack_sbuffer_write(&o->sb, "\n", 1);
		msgpack_zone_clear(&o->zone);
	}
	if (o->sb.size >= OUT_FLUSH_AT)
		tokenize_out_flush(o);
}

void
tokenize_out_raw(tokenize_out *o, const void *p, size_t n)
{
	msgpack_sbuffer_write(&o->sb, p, n);
	if (o->sb.size >= OUT_FLUSH_AT)
		tokenize_out_flush(o);
}

void
tokenize_out_flush(tokenize_out *o)
{
	size_t off = 0;
	ssize_t w;

	while (off < o->sb.size) {
		w = write(o->fd, o->sb.data + off, o->sb.size - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			die_sys("unable to write to stdout");
		off += (size_t)w;
	}
	o->sb.size = 0;
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
	tokenize_out out;
	tok_ids ids;
} run;

/* "ID\tCOUNT\n", or "ID\terror: MESSAGE\n" */
static void
count_line(run *r, const char *id, size_t idlen, size_t count, const char *err)
{
	char num[32];
	int k;

	if (id)
		tokenize_out_raw(&r->out, id, idlen);
	if (err) {
		tokenize_out_raw(&r->out, "\terror: ", 8);
		tokenize_out_raw(&r->out, err, strlen(err));
		tokenize_out_raw(&r->out, "\n", 1);
		return;
	}
	k = snprintf(num, sizeof num, "\t%zu\n", count);
	tokenize_out_raw(&r->out, num, (size_t)k);
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
	tokenize_request(r->t, r->o, r->chat, m, tokenize_out_begin(&r->out, &pk), &r->ids);
	tokenize_out_end(&r->out);
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
	tokenize_out_begin(&r->out, &pk);
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
	tokenize_out_end(&r->out);
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
	msg_pk_error(tokenize_out_begin(&r->out, &pk), 0, (size_t)-1, "bad_request", why);
	tokenize_out_end(&r->out);
}

static void
on_idle(void *ud)
{
	run *r = ud;

	tokenize_out_flush(&r->out);
}

void
tokenize_run(const tok *t, const tokenize_opts *o, int in_fd, int out_fd)
{
	run r = { 0 };
	tokenize_in in = { 0 };
	char err[256];
	int rc;

	r.t = t;
	r.o = o;
	r.chat = tokenize_chat_id(t, o);
	r.lines = o->count && o->out == TOKENIZE_AUTO;
	tokenize_out_init(&r.out, out_fd, o->out == TOKENIZE_JSON);
	in.kind = o->in;
	in.text_ok = 1;
	in.on_msg = on_msg;
	in.on_line = on_line;
	in.on_bad = on_bad;
	in.on_idle = on_idle;
	in.ud = &r;
	rc = tokenize_read(in_fd, &in, err, sizeof err);
	tokenize_out_flush(&r.out);   /* every answer so far, even when the input broke */
	tokenize_out_free(&r.out);
	tok_ids_free(&r.ids);
	if (rc < 0)
		die_x(EXIT_SYS, "%s", err);
}
