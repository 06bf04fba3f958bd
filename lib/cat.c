/* cat: `sluice cat`, msgpack <-> JSON lines on stdin/stdout, and with -u a
 * client that sends its input to an endpoint and prints what comes back.
 *
 * The input kind is taken from the first byte (-i forces it): '{', '[' or
 * whitespace start JSON lines (each line one JSON object; blank lines are
 * ignored), anything else a msgpack stream. The output is the other kind
 * unless -j (JSON) or -m (msgpack) forces it; msgpack -> msgpack copies each
 * checked message as it came. A bad JSON line or a bad msgpack message is
 * skipped with a warning and the exit status is then 1; a msgpack stream whose
 * framing is lost stops with 111. Output is written in large blocks, and
 * flushed whenever the program is about to wait for input. */

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "cat.h"
#include "die.h"
#include "io.h"
#include "json.h"
#include "msg.h"

#define CHUNK 65536
#define OUT_FLUSH_AT (256u << 10)   /* stdout is written in blocks this big */
#define SEND_STOP (8u << 20)        /* stop reading stdin with this much unsent */
#define SEND_GO (1u << 20)          /* and start again below this */

/* ---- pending request ids (client mode) ------------------------------------ */

typedef struct pend {
	struct pend *next;
	size_t count;          /* requests with this id not yet finished */
	size_t n;
	char id[];
} pend;

typedef struct pendtab {
	pend **b;
	size_t nb;             /* buckets, a power of two */
	size_t nkeys;
	size_t total;          /* sum of the counts */
} pendtab;

static pend **
pend_find(pendtab *t, const char *id, size_t n)
{
	pend **pp;

	if (!t->nb) {
		t->nb = 1024;
		t->b = xcalloc(t->nb, sizeof *t->b);
	}
	for (pp = &t->b[msg_hash_id(id, n) & (t->nb - 1)]; *pp; pp = &(*pp)->next)
		if ((*pp)->n == n && !memcmp((*pp)->id, id, n))
			break;
	return pp;
}

static void
pend_grow(pendtab *t)
{
	pend **old = t->b, *e, *next;
	size_t i, nb = t->nb;

	t->nb *= 2;
	t->b = xcalloc(t->nb, sizeof *t->b);
	for (i = 0; i < nb; i++)
		for (e = old[i]; e; e = next) {
			next = e->next;
			pend **slot = &t->b[msg_hash_id(e->id, e->n) & (t->nb - 1)];

			e->next = *slot;
			*slot = e;
		}
	free(old);
}

static void
pend_add(pendtab *t, const char *id, size_t n)
{
	pend **pp = pend_find(t, id, n);

	if (!*pp) {
		*pp = xmalloc(sizeof **pp + n);
		(*pp)->next = NULL;
		(*pp)->count = 0;
		(*pp)->n = n;
		memcpy((*pp)->id, id, n);
		if (++t->nkeys > 2 * t->nb)
			pend_grow(t);
		pp = pend_find(t, id, n);
	}
	(*pp)->count++;
	t->total++;
}

static void
pend_done(pendtab *t, const char *id, size_t n)
{
	pend **pp = pend_find(t, id, n), *e = *pp;

	if (!e)
		return;
	t->total--;
	if (--e->count == 0) {
		*pp = e->next;
		free(e);
		t->nkeys--;
	}
}

static void
pend_free(pendtab *t)
{
	pend *e, *next;
	size_t i;

	for (i = 0; i < t->nb; i++)
		for (e = t->b[i]; e; e = next) {
			next = e->next;
			free(e);
		}
	free(t->b);
}

/* ---- state ------------------------------------------------------------------ */

typedef struct cat {
	int in, out;           /* CAT_JSON or CAT_MSGPACK (in may be CAT_AUTO until the first byte) */
	int out_forced;
	msg_dec dec;           /* msgpack input */
	char *line;            /* JSON input: a line not yet complete */
	size_t llen, lcap, maxline;
	int discarding;        /* the current line is too long: drop it up to '\n' */
	size_t lineno, nmsg;
	int eof;
	char *ob;              /* stdout buffer */
	size_t olen, ocap;
	msgpack_sbuffer sb;    /* a message converted from JSON */
	msgpack_sbuffer jb;    /* JSON text */
	msgpack_packer pk;
	msgpack_zone zone;
	int skipped;           /* something was skipped: exit 1 */
	/* client mode */
	const char *ep;
	io_loop *loop;
	io_conn *conn;
	int closed;            /* the connection is gone */
	int failed;            /* it ended with an error */
	int watching;          /* stdin is in the loop's poll */
	int redis;
	pendtab pend;
} cat;

/* ---- stdout ------------------------------------------------------------------- */

static void
out_flush(cat *c)
{
	size_t off = 0;
	ssize_t w;
	struct pollfd p;

	while (off < c->olen) {
		w = write(1, c->ob + off, c->olen - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			p.fd = 1;
			p.events = POLLOUT;
			poll(&p, 1, -1);
			continue;
		}
		if (w < 0)
			die_sys("unable to write to stdout");
		off += (size_t)w;
	}
	c->olen = 0;
}

static void
out_put(cat *c, const void *p, size_t n)
{
	if (c->olen + n > c->ocap) {
		if (c->olen)
			out_flush(c);
		if (n > c->ocap) {
			c->ocap = n;
			c->ob = xrealloc(c->ob, c->ocap);
		}
	}
	memcpy(c->ob + c->olen, p, n);
	c->olen += n;
	if (c->olen >= OUT_FLUSH_AT)
		out_flush(c);
}

/* Writes one message to stdout in the output kind. */
static void
out_msg(cat *c, const msgpack_object *root, const char *raw, size_t len)
{
	if (c->out == CAT_MSGPACK) {
		out_put(c, raw, len);
		return;
	}
	msgpack_sbuffer_clear(&c->jb);
	json_from_msgpack(root, &c->jb);
	msgpack_sbuffer_write(&c->jb, "\n", 1);
	out_put(c, c->jb.data, c->jb.size);
}

/* ---- one input message ---------------------------------------------------- */

static void
send_msg(cat *c, const msg *m)
{
	const char *id;
	size_t n;

	if (c->closed)
		return;
	if (io_send(c->conn, m->raw, m->len) < 0)
		return;
	if (msg_str(m, "id", &id, &n) == 1)
		pend_add(&c->pend, id, n);
}

static void
input_msgpack(cat *c, const msg *m)
{
	if (c->loop)
		send_msg(c, m);
	else
		out_msg(c, &m->root, m->raw, m->len);
}

static void
input_json(cat *c, const char *p, size_t n)
{
	char err[256];
	msg m = MSG_ZERO;
	size_t off = 0, i;
	unsigned char b;

	c->lineno++;
	for (i = 0; i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'); i++)
		;
	if (i == n)
		return;                     /* a blank line */
	msgpack_sbuffer_clear(&c->sb);
	if (json_to_msgpack(p, n, &c->dec.lim, &c->pk, err, sizeof err) < 0) {
		warn_x("line %zu: %s", c->lineno, err);
		c->skipped = 1;
		return;
	}
	b = (unsigned char)c->sb.data[0];
	if (!((b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf)) {
		warn_x("line %zu: not a JSON object", c->lineno);
		c->skipped = 1;
		return;
	}
	if (!c->loop && c->out == CAT_MSGPACK) {
		out_put(c, c->sb.data, c->sb.size);
		return;
	}
	msgpack_zone_clear(&c->zone);
	if (msgpack_unpack(c->sb.data, c->sb.size, &off, &c->zone, &m.root) != MSGPACK_UNPACK_SUCCESS)
		die_x(EXIT_SYS, "unable to unpack a converted message (line %zu)", c->lineno);
	m.raw = c->sb.data;
	m.len = c->sb.size;
	if (c->loop)
		send_msg(c, &m);
	else
		out_msg(c, &m.root, m.raw, m.len);
}

/* ---- input chunks ------------------------------------------------------------- */

static void
feed_msgpack(cat *c, const char *p, size_t n)
{
	const char *why;
	msg m = MSG_ZERO;
	int r;

	msg_dec_feed(&c->dec, p, n);
	while ((r = msg_dec_next(&c->dec, &m, &why)) != MSG_NEED) {
		if (r == MSG_GOT) {
			c->nmsg++;
			input_msgpack(c, &m);
		} else if (r == MSG_BAD) {
			c->nmsg++;
			warn_x("message %zu: %s", c->nmsg, why);
			c->skipped = 1;
		} else {
			out_flush(c);
			die_x(EXIT_SYS, "unable to read input: message %zu: %s", c->nmsg + 1, why);
		}
	}
}

static void
line_append(cat *c, const char *p, size_t n)
{
	if (c->discarding)
		return;
	if (c->llen + n > c->maxline) {
		warn_x("line %zu: longer than %zu bytes", c->lineno + 1, c->maxline);
		c->skipped = 1;
		c->discarding = 1;
		c->llen = 0;
		return;
	}
	if (c->llen + n > c->lcap) {
		c->lcap = c->llen + n > 2 * c->lcap ? c->llen + n : 2 * c->lcap;
		c->line = xrealloc(c->line, c->lcap);
	}
	memcpy(c->line + c->llen, p, n);
	c->llen += n;
}

static void
feed_json(cat *c, const char *p, size_t n)
{
	const char *end = p + n, *nl;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl) {
			line_append(c, p, (size_t)(end - p));
			return;
		}
		if (c->discarding) {
			c->discarding = 0;
			c->lineno++;
		} else if (c->llen) {
			line_append(c, p, (size_t)(nl - p));
			if (c->discarding) {
				c->discarding = 0;
				c->lineno++;
			} else {
				input_json(c, c->line, c->llen);
			}
		} else if ((size_t)(nl - p) > c->maxline) {
			warn_x("line %zu: longer than %zu bytes", c->lineno + 1, c->maxline);
			c->skipped = 1;
			c->lineno++;
		} else {
			input_json(c, p, (size_t)(nl - p));
		}
		c->llen = 0;
		p = nl + 1;
	}
}

static void
feed(cat *c, const char *p, size_t n)
{
	unsigned char b;

	if (!n)
		return;
	if (c->in == CAT_AUTO) {
		b = (unsigned char)p[0];
		c->in = b == '{' || b == '[' || b == ' ' || b == '\t' || b == '\r' || b == '\n' ?
			CAT_JSON : CAT_MSGPACK;
	}
	/* by default the other kind; a client answers in the kind it was given */
	if (!c->out_forced)
		c->out = (c->in == CAT_JSON) == !c->ep ? CAT_MSGPACK : CAT_JSON;
	if (c->in == CAT_JSON)
		feed_json(c, p, n);
	else
		feed_msgpack(c, p, n);
}

/* The input ended: a last line without '\n', or a cut msgpack message. */
static void
input_end(cat *c)
{
	size_t left;

	c->eof = 1;
	if (c->in == CAT_JSON && c->llen && !c->discarding)
		input_json(c, c->line, c->llen);
	c->llen = 0;
	if (c->in == CAT_MSGPACK && (left = msg_dec_pending(&c->dec))) {
		warn_x("message %zu: input ends inside a message (%zu bytes)", c->nmsg + 1, left);
		c->skipped = 1;
	}
}

/* Reads once from stdin: 1 data, 0 EOF, -1 nothing now. */
static int
read_once(cat *c, char *buf)
{
	ssize_t r = read(0, buf, CHUNK);

	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return -1;
	if (r < 0)
		die_sys("unable to read stdin");
	if (r == 0) {
		input_end(c);
		return 0;
	}
	feed(c, buf, (size_t)r);
	return 1;
}

/* ---- -t ----------------------------------------------------------------------- */

static char timeout_text[128];
static size_t timeout_len;

static void
on_alarm(int sig)
{
	(void)sig;
	if (write(2, timeout_text, timeout_len) < 0)
		_exit(EXIT_TIMEOUT);
	_exit(EXIT_TIMEOUT);
}

static void
arm_timeout(unsigned long ms)
{
	struct itimerval it = {{0, 0}, {0, 0}};
	struct sigaction sa = {0};
	int n;

	n = snprintf(timeout_text, sizeof timeout_text, "%s: fatal: timed out after %lu ms\n",
		     die_prog, ms);
	timeout_len = n > 0 && (size_t)n < sizeof timeout_text ? (size_t)n : 0;
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) < 0)
		die_sys("unable to catch SIGALRM");
	it.it_value.tv_sec = (time_t)(ms / 1000);
	it.it_value.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	if (setitimer(ITIMER_REAL, &it, NULL) < 0)
		die_sys("unable to set a timer");
}

/* ---- local mode ----------------------------------------------------------------- */

static void
run_local(cat *c)
{
	char *buf = xmalloc(CHUNK);
	struct pollfd p;

	for (;;) {
		if (c->olen) {
			/* about to block on input: the reader downstream gets what we have */
			p.fd = 0;
			p.events = POLLIN;
			p.revents = 0;
			if (poll(&p, 1, 0) == 0)
				out_flush(c);
		}
		if (read_once(c, buf) == 0)
			break;
	}
	out_flush(c);
	free(buf);
}

/* ---- client mode -------------------------------------------------------------- */

static void
on_reply(io_loop *l, io_conn *conn, const msg *m, void *ud)
{
	cat *c = ud;
	const char *id;
	size_t n;

	(void)l, (void)conn;
	out_msg(c, &m->root, m->raw, m->len);
	if (msg_get(m, "finish") && msg_str(m, "id", &id, &n) == 1)
		pend_done(&c->pend, id, n);
}

static void
on_reply_bad(io_loop *l, io_conn *conn, const char *why, void *ud)
{
	cat *c = ud;

	(void)l;
	warn_x("%s: bad message: %s", io_conn_name(conn), why);
	c->skipped = 1;
}

static void
on_conn_close(io_loop *l, io_conn *conn, const char *why, void *ud)
{
	cat *c = ud;

	(void)l;
	if (why) {
		warn_x("%s: %s", io_conn_name(conn), why);
		c->failed = 1;
	}
	c->closed = 1;
	c->conn = NULL;
}

static void
input_done(cat *c)
{
	if (c->watching) {
		io_loop_unwatch(c->loop, 0);
		c->watching = 0;
	}
	/* sockets: tell the peer we are done (a Redis producer has no such thing) */
	if (!c->closed && !c->redis)
		io_shutdown(c->conn);
}

static void
on_stdin(io_loop *l, int fd, short revents, void *ud)
{
	static char buf[CHUNK];
	cat *c = ud;

	(void)l, (void)fd, (void)revents;
	if (read_once(c, buf) == 0)
		input_done(c);
	if (c->watching && !c->closed && io_conn_queued(c->conn) > SEND_STOP) {
		io_loop_unwatch(c->loop, 0);
		c->watching = 0;
	}
}

static void
run_client(cat *c)
{
	io_handler h = {0};
	char err[512];

	h.on_msg = on_reply;
	h.on_bad = on_reply_bad;
	h.on_close = on_conn_close;
	c->redis = !strncmp(c->ep, "redis://", 8);
	c->loop = io_loop_new(&h, c);
	c->conn = io_loop_dial(c->loop, c->ep, NULL, err, sizeof err);
	if (!c->conn)
		die_x(EXIT_SYS, "%s", err);
	io_loop_watch(c->loop, 0, POLLIN, on_stdin, c);
	c->watching = 1;
	for (;;) {
		if (c->closed)
			break;
		if (c->eof && !c->pend.total && !io_conn_queued(c->conn))
			break;
		if (!c->eof && !c->watching && io_conn_queued(c->conn) < SEND_GO) {
			io_loop_watch(c->loop, 0, POLLIN, on_stdin, c);
			c->watching = 1;
		}
		out_flush(c);   /* the loop may sleep now */
		if (io_loop_run_once(c->loop, -1) < 0)
			die_sys("unable to poll");
	}
	out_flush(c);
	if (c->closed && c->pend.total) {
		warn_x("%s closed with %zu request%s unanswered", c->ep, c->pend.total,
		       c->pend.total == 1 ? "" : "s");
		c->skipped = 1;
	}
	if (c->closed && !c->eof) {
		warn_x("%s closed before the input ended", c->ep);
		c->skipped = 1;
	}
	io_loop_free(c->loop);
	c->loop = NULL;
}

/* ---- running ------------------------------------------------------------------ */

int
cat_run(const cat_opts *o)
{
	cat c = {0};
	int ret;

	c.in = o->in;
	c.out = o->out;
	c.out_forced = o->out != CAT_AUTO;
	c.ep = o->ep;
	msg_dec_init(&c.dec, NULL);
	c.maxline = 4 * c.dec.lim.max_bytes;
	c.ocap = 2 * OUT_FLUSH_AT;
	c.ob = xmalloc(c.ocap);
	msgpack_sbuffer_init(&c.sb);
	msgpack_sbuffer_init(&c.jb);
	msg_pk_init(&c.pk, &c.sb);
	if (!msgpack_zone_init(&c.zone, MSGPACK_ZONE_CHUNK_SIZE))
		die_x(EXIT_SYS, "unable to allocate memory: msgpack zone");
	if (o->timeout_ms)
		arm_timeout(o->timeout_ms);
	if (c.ep)
		run_client(&c);
	else
		run_local(&c);
	ret = c.failed ? EXIT_SYS : c.skipped ? EXIT_NO : 0;
	msgpack_zone_destroy(&c.zone);
	msgpack_sbuffer_destroy(&c.sb);
	msgpack_sbuffer_destroy(&c.jb);
	msg_dec_free(&c.dec);
	pend_free(&c.pend);
	free(c.line);
	free(c.ob);
	return ret;
}
