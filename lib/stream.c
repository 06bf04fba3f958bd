/* stream: the filters' reader and writer (stream.h).
 *
 * Reading. The first byte tells the kind unless the caller fixed it. Text and
 * JSON input is read in chunks and cut into lines; a line cut by a read is
 * kept until its '\n' comes, up to max_line bytes, past which the line is
 * rejected once and its rest dropped as it arrives. A JSON line that is
 * blank is ignored; any other becomes MessagePack (json_to_msgpack, within
 * the limits) and must be an object. MessagePack is read straight into the
 * decoder's buffer. Lines and messages are numbered from 1 for the reasons
 * given with rejections.
 *
 * Writing. Messages and bytes are appended to one buffer, written when it
 * passes 256 KiB and whenever the owner flushes (before it waits for input);
 * a write that would block waits in poll, a short write is continued. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "die.h"
#include "json.h"
#include "stream.h"

#define CHUNK 65536
#define MAX_LINE (8u << 20)          /* default max_line */
#define OUT_FLUSH_AT (256u << 10)    /* output is written in blocks this big */

int
stream_sniff(unsigned char c, int dflt)
{
	if ((c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf)
		return STREAM_MSGPACK;
	if (c == '{')
		return STREAM_JSON;
	if (dflt != STREAM_TEXT && (c == '[' || c == ' ' || c == '\t' || c == '\r' || c == '\n'))
		return STREAM_JSON;
	return dflt;
}

/* ---- reading: lines ----------------------------------------------------- */

static void
bad(stream_in *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
bad(stream_in *s, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	s->on_bad(why, s->ud);
}

static void
line(stream_in *s, const char *p, size_t n)
{
	char err[256];
	msgpack_packer pk;
	const char *e;
	unsigned char b;
	size_t i;
	msg m = MSG_ZERO;

	s->lineno++;
	if (s->kind == STREAM_TEXT) {
		s->on_line(p, n, s->lineno, s->ud);
		return;
	}
	for (i = 0; i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r'); i++)
		;
	if (i == n)
		return;         /* blank lines are ignored */
	s->jb.size = 0;
	msg_pk_init(&pk, &s->jb);
	if (json_to_msgpack(p, n, s->lim, &pk, err, sizeof err) < 0) {
		bad(s, "line %llu: %s", (unsigned long long)s->lineno, err);
		return;
	}
	b = (unsigned char)s->jb.data[0];
	if (!((b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf)) {
		bad(s, "line %llu: not a JSON object", (unsigned long long)s->lineno);
		return;
	}
	if (msg_unpack(s->jb.data, s->jb.size, s->lim, &s->zone, &m, &e) != MSG_GOT)
		bad(s, "line %llu: %s", (unsigned long long)s->lineno, e);
	else
		s->on_msg(&m, s->ud);
	msgpack_zone_clear(&s->zone);
}

static void
too_long(stream_in *s)
{
	bad(s, "line %llu: longer than %zu bytes", (unsigned long long)s->lineno + 1, s->max_line);
	s->skipping = 1;
	s->ln = 0;
}

static void
keep(stream_in *s, const char *p, size_t n)
{
	if (s->skipping || !n)
		return;
	if (s->ln + n > s->max_line) {
		too_long(s);
		return;
	}
	if (s->lcap - s->ln < n) {
		size_t cap = s->lcap ? s->lcap : CHUNK;

		while (cap - s->ln < n)
			cap *= 2;
		s->lb = xrealloc(s->lb, cap);
		s->lcap = cap;
	}
	memcpy(s->lb + s->ln, p, n);
	s->ln += n;
}

/* Splits a chunk into lines; nearly all text input passes here. */
static void
lines(stream_in *s, const char *p, size_t n)
{
	const char *nl;

	while ((nl = memchr(p, '\n', n))) {
		size_t k = (size_t)(nl - p);

		if (s->skipping) {
			s->skipping = 0;
			s->lineno++;
		} else if (s->ln) {
			keep(s, p, k);
			if (!s->skipping) {
				line(s, s->lb, s->ln);
			} else {
				s->skipping = 0;
				s->lineno++;
			}
		} else if (k > s->max_line) {
			too_long(s);
			s->skipping = 0;
			s->lineno++;
		} else {
			line(s, p, k);
		}
		s->ln = 0;
		p = nl + 1;
		n -= k + 1;
	}
	keep(s, p, n);
}

/* ---- reading: messages and the stream ------------------------------------ */

/* Takes out every whole message buffered: 0, or -1 when the framing is lost. */
static int
messages(stream_in *s, char *err, size_t errlen)
{
	const char *why;
	msg m = MSG_ZERO;
	int rc;

	while ((rc = msg_dec_next(&s->dec, &m, &why)) != MSG_NEED) {
		if (rc == MSG_BROKEN) {
			seterr(err, errlen, "message %llu: %s", (unsigned long long)s->nmsg + 1, why);
			return -1;
		}
		s->nmsg++;
		if (rc == MSG_GOT)
			s->on_msg(&m, s->ud);
		else
			bad(s, "message %llu: %s", (unsigned long long)s->nmsg, why);
	}
	return 0;
}

static void
end(stream_in *s)
{
	size_t left;

	s->ended = 1;
	if (s->kind == STREAM_MSGPACK && (left = msg_dec_pending(&s->dec)))
		bad(s, "message %llu: input ends inside a message (%zu bytes)",
		    (unsigned long long)s->nmsg + 1, left);
	if (s->kind != STREAM_MSGPACK && s->ln && !s->skipping)
		line(s, s->lb, s->ln);   /* the last line had no '\n' */
	s->ln = 0;
}

void
stream_in_init(stream_in *s)
{
	if (!s->max_line)
		s->max_line = MAX_LINE;
	msg_dec_init(&s->dec, s->lim);
	s->buf = xmalloc(CHUNK);
	s->lb = 0;
	s->ln = s->lcap = 0;
	s->skipping = s->ended = 0;
	s->lineno = s->nmsg = 0;
	msgpack_sbuffer_init(&s->jb);
	if (!msgpack_zone_init(&s->zone, 8192))
		die_x(EXIT_SYS, "unable to allocate memory: msgpack zone");
}

void
stream_in_free(stream_in *s)
{
	msg_dec_free(&s->dec);
	msgpack_zone_destroy(&s->zone);
	msgpack_sbuffer_destroy(&s->jb);
	free(s->lb);
	free(s->buf);
	s->lb = s->buf = 0;
}

/* stream_in_read; *again set when fd would block */
static int
read_once(stream_in *s, int fd, int *again, char *err, size_t errlen)
{
	size_t avail;
	ssize_t got;
	char *p;

	*again = 0;
	if (s->ended)
		return 0;
	if (s->kind == STREAM_MSGPACK) {
		p = msg_dec_space(&s->dec, &avail);
	} else {
		p = s->buf;
		avail = CHUNK;
	}
	got = read(fd, p, avail);
	if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
		*again = errno != EINTR;
		return 1;
	}
	if (got < 0) {
		seterr(err, errlen, "%s", strerror(errno));
		return -1;
	}
	if (got == 0) {
		end(s);
		return 0;
	}
	if (s->kind == STREAM_AUTO) {
		s->kind = stream_sniff((unsigned char)p[0], s->dflt);
		if (s->kind == STREAM_MSGPACK)
			msg_dec_feed(&s->dec, p, (size_t)got);
	} else if (s->kind == STREAM_MSGPACK) {
		msg_dec_commit(&s->dec, (size_t)got);
	}
	if (s->kind != STREAM_MSGPACK) {
		lines(s, p, (size_t)got);
		return 1;
	}
	return messages(s, err, errlen) < 0 ? -1 : 1;
}

int
stream_in_read(stream_in *s, int fd, char *err, size_t errlen)
{
	int again;

	return read_once(s, fd, &again, err, errlen);
}

static int
readable(int fd, int timeout_ms)
{
	struct pollfd p = { fd, POLLIN, 0 };

	return poll(&p, 1, timeout_ms) != 0;
}

int
stream_in_run(stream_in *s, int fd, char *err, size_t errlen)
{
	int r, again;

	for (;;) {
		/* about to wait for input: downstream gets what we have */
		if (s->out && stream_out_pending(s->out) && !readable(fd, 0))
			stream_out_flush(s->out);
		r = read_once(s, fd, &again, err, errlen);
		if (r <= 0)
			return r;
		if (again)
			readable(fd, -1);
	}
}

/* ---- writing ---------------------------------------------------------------- */

void
stream_out_init(stream_out *o, int fd, int json)
{
	memset(o, 0, sizeof *o);
	o->fd = fd;
	o->json = json;
	msgpack_sbuffer_init(&o->sb);
	msgpack_sbuffer_init(&o->tmp);
	if (!msgpack_zone_init(&o->zone, 8192))
		die_x(EXIT_SYS, "unable to allocate memory: msgpack zone");
	o->zone_ok = 1;
}

void
stream_out_free(stream_out *o)
{
	msgpack_sbuffer_destroy(&o->sb);
	msgpack_sbuffer_destroy(&o->tmp);
	if (o->zone_ok)
		msgpack_zone_destroy(&o->zone);
	o->zone_ok = 0;
}

static void
maybe_flush(stream_out *o)
{
	if (o->sb.size >= OUT_FLUSH_AT)
		stream_out_flush(o);
}

msgpack_packer *
stream_out_begin(stream_out *o, msgpack_packer *pk)
{
	o->tmp.size = 0;
	msg_pk_init(pk, o->json ? &o->tmp : &o->sb);
	return pk;
}

static void
json_line(stream_out *o, const msgpack_object *root)
{
	json_from_msgpack(root, &o->sb);
	msgpack_sbuffer_write(&o->sb, "\n", 1);
}

void
stream_out_end(stream_out *o)
{
	const char *e;
	msg m = MSG_ZERO;

	if (o->json) {
		/* what we packed ourselves; a limit broken here is our bug */
		if (msg_unpack(o->tmp.data, o->tmp.size, NULL, &o->zone, &m, &e) != MSG_GOT)
			die_x(EXIT_SYS, "unable to convert a message to JSON: %s", e);
		json_line(o, &m.root);
		msgpack_zone_clear(&o->zone);
	}
	maybe_flush(o);
}

void
stream_out_msg(stream_out *o, const msg *m)
{
	if (o->json)
		json_line(o, &m->root);
	else
		msgpack_sbuffer_write(&o->sb, m->raw, m->len);
	maybe_flush(o);
}

void
stream_out_raw(stream_out *o, const void *p, size_t n)
{
	msgpack_sbuffer_write(&o->sb, p, n);
	maybe_flush(o);
}

size_t
stream_out_pending(const stream_out *o)
{
	return o->sb.size;
}

void
stream_out_flush(stream_out *o)
{
	struct pollfd p;
	size_t off = 0;
	ssize_t w;

	while (off < o->sb.size) {
		w = write(o->fd, o->sb.data + off, o->sb.size - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			p.fd = o->fd;
			p.events = POLLOUT;
			poll(&p, 1, -1);
			continue;
		}
		if (w < 0)
			die_sys("unable to write to stdout");
		off += (size_t)w;
	}
	o->sb.size = 0;
}
