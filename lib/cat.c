/* cat: `sluice cat`, msgpack <-> JSON lines on stdin/stdout, and with -u a
 * client that sends its input to an endpoint and prints what comes back.
 *
 * Input and output are lib/stream's: the kind is taken from the first byte
 * (-i forces it): a msgpack map is msgpack, '{', '[' or whitespace start
 * JSON lines (each line one JSON object; blank lines are ignored), anything
 * else a msgpack stream. The output is the other kind unless -j (JSON) or
 * -m (msgpack) forces it; msgpack -> msgpack copies each checked message as
 * it came. A bad JSON line or a bad msgpack message is skipped with a
 * warning and the exit status is then 1; a msgpack stream whose framing is
 * lost stops with 111. Output is written in large blocks, and flushed
 * whenever the program is about to wait for input. */

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "cat.h"
#include "die.h"
#include "idtab.h"
#include "io.h"
#include "msg.h"
#include "stream.h"

#define SEND_STOP (8u << 20)        /* stop reading stdin with this much unsent */
#define SEND_GO (1u << 20)          /* and start again below this */

/* ---- pending request ids (client mode) ------------------------------------ */

/* An id sent and not yet finished; the same id may be in flight more than once. */
typedef struct pend {
	idtab_node node;
	size_t count;          /* requests with this id not yet finished */
	size_t n;
	char id[];
} pend;

/* ---- state ------------------------------------------------------------------ */

typedef struct cat {
	int out_kind;          /* STREAM_JSON or STREAM_MSGPACK forced, or STREAM_AUTO */
	stream_in in;          /* stdin */
	stream_out out;        /* stdout */
	int skipped;           /* something was skipped: exit 1 */
	/* client mode */
	const char *ep;
	io_loop *loop;
	io_conn *conn;
	int closed;            /* the connection is gone */
	int failed;            /* it ended with an error */
	int watching;          /* stdin is in the loop's poll */
	int redis;
	idtab pend;            /* ids in flight */
	size_t npend;          /* requests in flight (the sum of the counts, and nops) */
	size_t nops;           /* queries ({"op": ...}) without an id, unanswered */
} cat;

/* ---- stdout ------------------------------------------------------------------- */

/* Writes one message to stdout in the output kind: by default the other
 * kind than the input's; a client answers in the kind it was given. */
static void
out_msg(cat *c, const msg *m)
{
	int json;

	if (c->out_kind != STREAM_AUTO)
		json = c->out_kind == STREAM_JSON;
	else if (c->in.kind == STREAM_AUTO)
		json = 1;      /* nothing read yet */
	else
		json = (c->in.kind == STREAM_JSON) != !c->ep;
	c->out.json = json;
	stream_out_msg(&c->out, m);
}

static _Noreturn void
broken(cat *c, const char *why)
{
	stream_out_flush(&c->out);
	die_x(EXIT_SYS, "unable to read input: %s", why);
}

/* ---- one input message ---------------------------------------------------- */

static void
pend_add(cat *c, const char *id, size_t n)
{
	idtab_node *e = idtab_find(&c->pend, NULL, id, n);
	pend *p;

	if (e) {
		p = idtab_entry(e, pend, node);
	} else {
		p = xmalloc(sizeof *p + n);
		p->count = 0;
		p->n = n;
		memcpy(p->id, id, n);
		idtab_add(&c->pend, &p->node, NULL, p->id, n);
	}
	p->count++;
	c->npend++;
}

static void
pend_done(cat *c, const char *id, size_t n)
{
	idtab_node *e = idtab_find(&c->pend, NULL, id, n);
	pend *p;

	if (!e)
		return;
	p = idtab_entry(e, pend, node);
	c->npend--;
	if (--p->count == 0) {
		idtab_del(&c->pend, e);
		free(p);
	}
}

static void
pend_free(cat *c)
{
	idtab_node *e, *next;
	size_t i;

	for (i = 0; i < c->pend.nb; i++)
		for (e = c->pend.b[i]; e; e = next) {
			next = e->next;
			free(idtab_entry(e, pend, node));
		}
	idtab_free(&c->pend);
}

static void
on_input(const msg *m, void *ud)
{
	cat *c = ud;
	const char *id;
	size_t n;

	if (!c->loop) {
		out_msg(c, m);
		return;
	}
	if (c->closed || io_send(c->conn, m->raw, m->len) < 0)
		return;
	if (msg_str(m, "id", &id, &n) == 1)
		pend_add(c, id, n);
	else if (msg_get(m, "op")) {   /* a query such as {"op": "stats"}: one answer */
		c->nops++;
		c->npend++;
	}
}

static void
on_input_bad(const char *why, void *ud)
{
	cat *c = ud;

	warn_x("%s", why);
	c->skipped = 1;
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

/* ---- client mode -------------------------------------------------------------- */

static void
on_reply(io_loop *l, io_conn *conn, const msg *m, void *ud)
{
	cat *c = ud;
	const char *id;
	size_t n;

	(void)l, (void)conn;
	out_msg(c, m);
	/* a request ends with its event carrying finish, a query with its answer
	 * (the op again, or an error event when the op is unknown) */
	if (!msg_get(m, "finish") && !msg_get(m, "op"))
		return;
	if (msg_str(m, "id", &id, &n) == 1)
		pend_done(c, id, n);
	else if (c->nops) {
		c->nops--;
		c->npend--;
	}
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
	cat *c = ud;
	char err[256];
	int r;

	(void)l, (void)fd, (void)revents;
	r = stream_in_read(&c->in, 0, err, sizeof err);
	if (r < 0)
		broken(c, err);
	if (r == 0)
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
		if (c->in.ended && !c->npend && !io_conn_queued(c->conn))
			break;
		if (!c->in.ended && !c->watching && io_conn_queued(c->conn) < SEND_GO) {
			io_loop_watch(c->loop, 0, POLLIN, on_stdin, c);
			c->watching = 1;
		}
		stream_out_flush(&c->out);   /* the loop may sleep now */
		if (io_loop_run_once(c->loop, -1) < 0)
			die_sys("unable to poll");
	}
	stream_out_flush(&c->out);
	if (c->closed && c->npend) {
		warn_x("%s closed with %zu request%s unanswered", c->ep, c->npend,
		       c->npend == 1 ? "" : "s");
		c->skipped = 1;
	}
	if (c->closed && !c->in.ended) {
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
	char err[256];
	int ret;

	c.out_kind = o->out;
	c.ep = o->ep;
	c.in.kind = o->in;
	c.in.dflt = STREAM_MSGPACK;
	c.in.max_line = 4 * msg_limits_default.max_bytes;
	c.in.out = &c.out;
	c.in.on_msg = on_input;
	c.in.on_bad = on_input_bad;
	c.in.ud = &c;
	stream_in_init(&c.in);
	stream_out_init(&c.out, 1, 0);
	if (o->timeout_ms)
		arm_timeout(o->timeout_ms);
	if (c.ep) {
		run_client(&c);
	} else {
		if (stream_in_run(&c.in, 0, err, sizeof err) < 0)
			broken(&c, err);
		stream_out_flush(&c.out);
	}
	ret = c.failed ? EXIT_SYS : c.skipped ? EXIT_NO : 0;
	stream_in_free(&c.in);
	stream_out_free(&c.out);
	pend_free(&c);
	return ret;
}
