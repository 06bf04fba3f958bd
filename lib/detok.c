/* detok: incremental, UTF-8-safe detokenization (see detok.h).
 *
 * The text of a token sequence is what llama.cpp's Llama.detokenize gives:
 * the pieces of llama_token_to_piece (lstrip 0) joined, one leading space
 * dropped when the first token is BOS (SentencePiece adds a space prefix,
 * and the BOS piece itself is empty unless special tokens are shown).
 * Bytes that are not valid UTF-8 (a byte token alone, a hostile sequence)
 * become U+FFFD, so every delta is valid UTF-8 and the deltas of a request
 * joined are the UTF-8 decoding of llama.cpp's bytes with replacement. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detok.h"
#include "die.h"
#include "idtab.h"
#include "stream.h"

void
detok_buf_free(detok_buf *b)
{
	free(b->p);
	b->p = 0;
	b->n = b->cap = 0;
}

static void
put(detok_buf *b, const void *p, size_t n)
{
	if (!n)
		return;
	if (b->cap - b->n < n) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap - b->n < n)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static const unsigned char fffd[3] = { 0xef, 0xbf, 0xbd };

/* The number of bytes of a well-formed sequence starting with lead byte c,
 * and the range its second byte must lie in; 0 if c cannot start one. */
static int
lead(unsigned c, unsigned *lo, unsigned *hi)
{
	*lo = 0x80, *hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf)
		return 2;
	if (c >= 0xe0 && c <= 0xef) {
		if (c == 0xe0)
			*lo = 0xa0;
		else if (c == 0xed)
			*hi = 0x9f;     /* no surrogates */
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (c == 0xf0)
			*lo = 0x90;
		else if (c == 0xf4)
			*hi = 0x8f;     /* nothing past U+10FFFF */
		return 4;
	}
	return 0;
}

size_t
detok_utf8(const unsigned char *p, size_t n, int final, detok_buf *out)
{
	size_t i = 0, start = 0, k;
	unsigned lo, hi;
	int len;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		len = lead(p[i], &lo, &hi);
		if (!len) {
			put(out, p + start, i - start);
			put(out, fffd, 3);
			start = ++i;
			continue;
		}
		for (k = 1; k < (size_t)len && i + k < n; k++) {
			unsigned c = p[i + k];

			if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xbf))
				break;
		}
		if (k == (size_t)len) {
			i += k;
			continue;
		}
		put(out, p + start, i - start);
		if (i + k == n && !final)
			return n - i;   /* valid so far: wait for the rest */
		put(out, fffd, 3);      /* the maximal subpart p[i..i+k) */
		start = i += k;
	}
	put(out, p + start, i - start);
	return 0;
}

void
detok_init(detok *d, const tok *t, int special)
{
	memset(d, 0, sizeof *d);
	d->t = t;
	d->special = special;
}

/* Appends bytes, completing a held character first. */
static void
emit(detok *d, const unsigned char *p, size_t n, detok_buf *out)
{
	unsigned lo, hi;
	size_t held;
	int len;

	if (d->strip && n) {
		d->strip = 0;
		if (!d->ntail && p[0] == ' ')
			p++, n--;
	}
	while (d->ntail && n) {
		unsigned c = p[0];

		len = lead(d->tail[0], &lo, &hi);
		if (d->ntail == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xbf)) {
			put(out, fffd, 3);      /* the held bytes were a maximal subpart */
			d->ntail = 0;
			break;                  /* p[0] starts afresh */
		}
		d->tail[d->ntail++] = (unsigned char)c;
		p++, n--;
		if (d->ntail == (size_t)len) {
			put(out, d->tail, d->ntail);
			d->ntail = 0;
		}
	}
	if (!n)
		return;
	held = detok_utf8(p, n, 0, out);
	memcpy(d->tail, p + n - held, held);
	d->ntail = held;
}

void
detok_feed(detok *d, const uint32_t *ids, size_t n, detok_buf *out)
{
	char small[256], *big = 0, *buf;
	size_t i, len, cap = sizeof small;

	for (i = 0; i < n; i++) {
		if (!d->started) {
			d->started = 1;
			d->strip = tok_bos(d->t) >= 0 && (int64_t)ids[i] == tok_bos(d->t);
		}
		buf = big ? big : small;
		len = tok_piece(d->t, ids[i], d->special, buf, cap);
		if (len > cap) {
			free(big);
			cap = len;
			buf = big = xmalloc(cap);
			len = tok_piece(d->t, ids[i], d->special, buf, cap);
		}
		emit(d, (const unsigned char *)buf, len, out);
	}
	free(big);
}

void
detok_flush(detok *d, detok_buf *out)
{
	if (d->ntail)
		put(out, fffd, 3);
	d->ntail = 0;
}

/* ---- the detokenize filter -------------------------------------------------- */

/* One request in flight. */
typedef struct req {
	idtab_node node;        /* in run.reqs by id */
	detok d;
	size_t n;
	char id[];
} req;

typedef struct run {
	const tok *t;
	const detok_opts *o;
	idtab reqs;             /* requests in flight, by id */
	stream_out out;
	detok_buf text;
	int nl;                 /* text output: the last byte written was '\n' (or none yet) */
} run;

static void
text_out(run *r, const char *p, size_t n)
{
	if (!n)
		return;
	stream_out_raw(&r->out, p, n);
	r->nl = p[n - 1] == '\n';
}

static req *
find(run *r, const char *id, size_t n)
{
	idtab_node *e = idtab_find(&r->reqs, NULL, id, n);

	return e ? idtab_entry(e, req, node) : NULL;
}

static void
req_end(run *r, req *q)
{
	idtab_del(&r->reqs, &q->node);
	free(q);
}

static void
error_event(run *r, const char *id, size_t idlen, const char *code, const char *message)
{
	msgpack_packer pk;

	if (r->o->out == STREAM_TEXT) {
		if (idlen == (size_t)-1)
			warn_x("%s: %s", code, message);
		else
			warn_x("request %.*s: %s: %s", (int)(idlen > 200 ? 200 : idlen), id, code, message);
		return;
	}
	msg_pk_error(stream_out_begin(&r->out, &pk), id, idlen, code, message);
	stream_out_end(&r->out);
}

static void
on_bad(const char *why, void *ud)
{
	error_event(ud, 0, (size_t)-1, "bad_request", why);
}

static void
on_msg(const msg *m, void *ud)
{
	static const char *const drop[] = { "text" };
	run *r = ud;
	const msgpack_object *tokens;
	const char *id = 0;
	char err[256];
	size_t idlen = (size_t)-1, i, ntok = 0;
	uint32_t *ids = 0;
	req *q = 0, tmp;
	int finish;
	msgpack_packer pk;

	msg_str(m, "id", &id, &idlen);
	if (!id)
		idlen = (size_t)-1;
	if (msg_check_event(m, err, sizeof err) < 0) {
		error_event(r, id, idlen, "bad_request", err);
		return;
	}
	finish = msg_get(m, "finish") != 0;
	tokens = msg_get(m, "tokens");
	if (tokens) {
		ntok = tokens->via.array.size;
		ids = xmalloc((ntok ? ntok : 1) * sizeof *ids);
		for (i = 0; i < ntok; i++) {
			uint64_t v = tokens->via.array.ptr[i].via.u64;

			if (v >= tok_n_vocab(r->t)) {
				snprintf(err, sizeof err, "token %llu is not in the vocabulary (%u tokens)",
					 (unsigned long long)v, tok_n_vocab(r->t));
				if (id && (q = find(r, id, idlen)))
					req_end(r, q);
				error_event(r, id, idlen, "bad_request", err);
				goto out;
			}
			ids[i] = (uint32_t)v;
		}
	}
	if (id)
		q = find(r, id, idlen);
	if (!q && id && !finish) {
		if (r->reqs.count >= r->o->max_ids) {
			snprintf(err, sizeof err, "too many requests in flight (%zu)", r->o->max_ids);
			error_event(r, id, idlen, "overloaded", err);
			goto out;
		}
		q = xmalloc(sizeof *q + idlen);
		memset(q, 0, sizeof *q);
		detok_init(&q->d, r->t, r->o->special);
		q->n = idlen;
		memcpy(q->id, id, idlen);
		idtab_add(&r->reqs, &q->node, NULL, q->id, q->n);
	}
	if (!q) {
		/* a one-event request (or one without an id): nothing is kept */
		memset(&tmp, 0, sizeof tmp);
		detok_init(&tmp.d, r->t, r->o->special);
	}
	r->text.n = 0;
	detok_feed(q ? &q->d : &tmp.d, ids, ntok, &r->text);
	if (finish)
		detok_flush(q ? &q->d : &tmp.d, &r->text);
	if (r->o->out == STREAM_TEXT) {
		text_out(r, r->text.p, r->text.n);
		if (finish) {
			const char *fin = 0, *msgtext = 0;
			const msgpack_object *e = msg_get(m, "error");

			if (!r->nl)
				text_out(r, "\n", 1);
			text_out(r, "\n", 1);
			msg_str(m, "finish", &fin, 0);
			if (fin && !strncmp(fin, "error", 5) && e) {
				size_t k, ml = 0;

				for (k = 0; k < e->via.map.size; k++)
					if (e->via.map.ptr[k].key.via.str.size == 7 &&
					    !memcmp(e->via.map.ptr[k].key.via.str.ptr, "message", 7))
						msgtext = e->via.map.ptr[k].val.via.str.ptr,
						ml = e->via.map.ptr[k].val.via.str.size;
				if (msgtext)
					warn_x("request %.*s: %.*s", id ? (int)(idlen > 200 ? 200 : idlen) : 0,
					       id ? id : "", (int)(ml > 1000 ? 1000 : ml), msgtext);
			}
		}
	} else {
		msg_pk_passthrough(stream_out_begin(&r->out, &pk), m, drop, 1, 1);
		msg_pk_str(&pk, "text");
		msg_pk_strn(&pk, r->text.p ? r->text.p : "", r->text.n);
		stream_out_end(&r->out);
	}
	if (finish && q)
		req_end(r, q);
out:
	free(ids);
}

void
detok_run(const tok *t, const detok_opts *o, int in_fd, int out_fd)
{
	run r = { 0 };
	stream_in in = { 0 };
	detok_opts oo = *o;
	idtab_node *e, *next;
	char err[256];
	size_t i;
	int rc;

	if (!oo.max_ids)
		oo.max_ids = 65536;
	r.t = t;
	r.o = &oo;
	r.nl = 1;
	stream_out_init(&r.out, out_fd, o->out == STREAM_JSON);
	in.dflt = STREAM_JSON;
	in.out = &r.out;
	in.on_msg = on_msg;
	in.on_bad = on_bad;
	in.ud = &r;
	stream_in_init(&in);
	/* a broken input ends it as its end would, then the program fails */
	rc = stream_in_run(&in, in_fd, err, sizeof err);
	for (i = 0; i < r.reqs.nb; i++)
		for (e = r.reqs.b[i]; e; e = next) {
			req *q = idtab_entry(e, req, node);

			next = e->next;
			if (oo.out == STREAM_TEXT) {
				/* never finished: what it held is written */
				r.text.n = 0;
				detok_flush(&q->d, &r.text);
				text_out(&r, r.text.p, r.text.n);
			}
			free(q);
		}
	idtab_free(&r.reqs);
	if (oo.out == STREAM_TEXT && !r.nl)
		text_out(&r, "\n", 1);   /* end the last line */
	stream_out_flush(&r.out);
	stream_in_free(&in);
	detok_buf_free(&r.text);
	stream_out_free(&r.out);
	if (rc < 0)
		die_x(EXIT_SYS, "unable to read the input: %s", err);
}
