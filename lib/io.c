/* io: endpoints and the poll loop (io.h); addresses are parsed by addr.c,
 * sockets made by sock.c.
 *
 * Endpoints, as addr_parse reads them and the loop uses them:
 *
 *   -                 stdin and stdout as one connection. Listening and
 *                     dialling mean the same. O_NONBLOCK is set only on pipes
 *                     and sockets (never on a terminal or file, whose file
 *                     description others share) and the old flags are put
 *                     back at close. EOF on stdin ends the read side; what is
 *                     queued for stdout is still written, then stdout is
 *                     replaced by /dev/null so the reader sees EOF.
 *   unix:PATH         a Unix stream socket (PATH shorter than sun_path). A
 *                     listener creates the file with mode o->mode (umask
 *                     around bind, then chmod, before listen). A socket file
 *                     already there is replaced only if connect() to it is
 *                     refused (stale); one that answers is "address in use";
 *                     anything else at PATH is an error and is never removed.
 *                     The listener removes its own file (same inode) at free.
 *   tcp:HOST:PORT     TCP; HOST a name (getaddrinfo), an IPv4 address, an IPv6
 *                     address in brackets, or * (every address, listening).
 *                     PORT is numeric. Listeners set SO_REUSEADDR, every
 *                     connection TCP_NODELAY (the loop batches writes itself).
 *   fd:N              an inherited descriptor: a listening socket
 *                     (SO_ACCEPTCONN) is accepted on, anything else is taken
 *                     as one connected stream. LISTEN_FDS (systemd) works the
 *                     same way for fds 3..3+LISTEN_FDS-1.
 *   redis://HOST[:PORT]/STREAM[?group=G&consumer=C&reply=K&claim=MS&dead=N&prefetch=N]
 *                     a Redis stream through rq: listening opens a worker,
 *                     dialling a producer; one connection either way, whose
 *                     messages come whole from rq_take and go out by rq_send.
 *
 * Connections. Every stream is non-blocking and carries msgpack objects back
 * to back. Reads go into the connection's msg_dec in big chunks; each whole
 * message goes to on_msg, a rejected one to on_bad (the stream goes on), lost
 * framing or a cut message ends the connection with on_close(why). io_send
 * appends whole messages to a write queue, written before the loop sleeps in
 * poll, or at once when more than IO_FLUSH_AT bytes wait; what the peer does
 * not take is written on POLLOUT. While more than IO_HIGH_WATER bytes wait for
 * a peer, the loop stops reading from it (a client that sends without reading
 * cannot grow our memory). SIGPIPE is ignored; sockets are written with
 * MSG_NOSIGNAL, and EPIPE ends the connection like any write error.
 *
 * Ownership. The loop owns its listeners, connections and watches; nothing is
 * freed inside a callback: closing marks an object dead and the loop's sweep
 * (in io_loop_run_once, or at once outside it) calls on_close and frees it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "die.h"
#include "io.h"
#include "rq.h"
#include "sock.h"

#define IO_FLUSH_AT  (64 * 1024)   /* queued bytes written at once, not at sleep */
#define IO_HIGH_WATER (4 << 20)    /* default: queued bytes above which a peer is not read */
#define IO_ACCEPT_MAX 64           /* accepts per wake-up of one listener */
#define IO_READS_MAX 4             /* reads per wake-up of one connection */

typedef struct io_listener {
	int fd;
	char *name;            /* the endpoint, prefix of its connections' names */
	char *path;            /* unix: the file we bound, removed at free */
	dev_t dev;
	ino_t ino;
	int tcp;               /* accepted connections get TCP_NODELAY */
	const msg_limits *lim; /* the owner's, for its connections */
	int dead;              /* unlistened inside a callback: freed once the round is over */
} io_listener;

typedef struct io_watch {
	int fd;
	short events;
	void (*cb)(io_loop *l, int fd, short revents, void *ud);
	void *ud;
	int dead;
} io_watch;

struct io_conn {
	io_loop *loop;
	int rfd, wfd;          /* one socket twice, or stdin and stdout */
	int sock;              /* wfd is a socket: send(MSG_NOSIGNAL), shutdown */
	int stdio;             /* rfd 0 and wfd 1, which are never closed */
	int rflags, wflags;    /* stdio: file status flags to put back (-1: none) */
	int nonblock;          /* rfd is non-blocking: several reads per wake-up */
	int blocking;          /* io_flush waits until all is written */
	int wwatch;            /* stdio: stdout is a pipe or socket, watched for its reader going */
	int paused;            /* io_conn_pause: hand nothing over, read nothing */
	int started;           /* a byte has been looked at (text sniffing) */
	size_t pend;           /* unfinished input counted in the loop's partial_total */
	double partial_since;  /* monotonic time the unfinished message began (0: none) */
	double hw_since;       /* monotonic time the queue went above high water (0: not above) */
	msg_dec dec;
	char *wbuf;            /* the write queue: wbuf[woff..wlen) */
	size_t woff, wlen, wcap;
	int eof;               /* the peer sent no more */
	int shut;              /* io_shutdown asked: half-close once flushed */
	int wdone;             /* our write side is closed */
	int dead;              /* finished: the sweep notifies (if notify) and frees */
	int notify;            /* call on_close at the sweep */
	const char *why;       /* its reason, NULL for a clean end */
	char whybuf[192];
	rq *q;                 /* redis: the queue, instead of rfd/wfd */
	msgpack_zone zone;     /* redis: objects of the message in on_msg */
	const msg_limits *lim;
	char *name;
	void *data;
};

enum { P_LISTENER, P_WATCH, P_CONN };

struct io_loop {
	io_handler h;
	void *ud;
	io_listener **ls;
	size_t nls;
	io_conn **cs;
	size_t ncs;
	io_watch **ws;
	size_t nws;
	struct pollfd *pfd;    /* rebuilt before each poll */
	void **pobj;
	char *ptype;
	size_t pcap;
	int running;           /* inside io_loop_run_once: free nothing but in sweep */
	int have_stdio;
	io_limits lim;
	size_t partial_total;  /* unfinished input held across connections */
	io_timer **th;         /* timers, a binary min-heap on at */
	size_t nth, cth;
	double refused_at;     /* the last --max-connections warning (one a second) */
};

static void sweep(io_loop *l);
static int conn_flush(io_conn *c);
static void conn_broken(io_conn *c, const char *fmt, ...);

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static size_t
high_water(const io_loop *l)
{
	return l->lim.high_water ? l->lim.high_water : IO_HIGH_WATER;
}

/* ---- helpers ------------------------------------------------------------- */

static char *
xprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	s = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

/* Appends one pointer to a growing array of pointers. */
static void
push(void ***arr, size_t *n, void *p)
{
	*arr = xrealloc(*arr, (*n + 1) * sizeof **arr);
	(*arr)[(*n)++] = p;
}

/* ---- the loop ------------------------------------------------------------- */

io_loop *
io_loop_new(const io_handler *h, void *ud)
{
	io_loop *l = xcalloc(1, sizeof *l);

	if (h)
		l->h = *h;
	l->ud = ud;
	/* a reader that goes away must give EPIPE, not kill the program */
	signal(SIGPIPE, SIG_IGN);
	return l;
}

/* Removes the unix socket file we bound (if it is still ours) and stops listening. */
static void
listener_forget_file(io_listener *ls)
{
	struct stat st;

	if (ls->path && stat(ls->path, &st) == 0 && st.st_dev == ls->dev && st.st_ino == ls->ino)
		unlink(ls->path);
	free(ls->path);
	ls->path = NULL;
	shutdown(ls->fd, SHUT_RDWR);
}

static void
listener_free(io_listener *ls)
{
	listener_forget_file(ls);
	close(ls->fd);
	free(ls->name);
	free(ls);
}

void
io_loop_set_limits(io_loop *l, const io_limits *lim)
{
	l->lim = *lim;
}

void
io_loop_free(io_loop *l)
{
	size_t i;

	if (!l)
		return;
	l->running = 1;   /* io_close must not sweep while we walk the array */
	for (i = 0; i < l->ncs; i++)
		io_close(l->cs[i]);
	l->running = 0;
	sweep(l);
	for (i = 0; i < l->nls; i++)
		listener_free(l->ls[i]);
	for (i = 0; i < l->nws; i++)
		free(l->ws[i]);
	for (i = 0; i < l->nth; i++)
		l->th[i]->idx = (size_t)-1;
	free(l->th);
	free(l->ls);
	free(l->cs);
	free(l->ws);
	free(l->pfd);
	free(l->pobj);
	free(l->ptype);
	free(l);
}

void
io_loop_unlisten(io_loop *l)
{
	size_t i;

	for (i = 0; i < l->nls; i++) {
		if (l->running) {
			/* this round's poll may still point at it: close now, free after */
			if (!l->ls[i]->dead) {
				listener_forget_file(l->ls[i]);
				l->ls[i]->dead = 1;
			}
			continue;
		}
		listener_free(l->ls[i]);
	}
	if (!l->running)
		l->nls = 0;
}

/* ---- timers: a binary heap; each timer knows its index ------------------- */

double
io_now(void)
{
	return mono();
}

int
io_timer_is_set(const io_timer *t)
{
	return t->idx != (size_t)-1;
}

static void
th_swap(io_loop *l, size_t a, size_t b)
{
	io_timer *x = l->th[a];

	l->th[a] = l->th[b];
	l->th[b] = x;
	l->th[a]->idx = a;
	l->th[b]->idx = b;
}

static void
th_up(io_loop *l, size_t i)
{
	while (i > 0 && l->th[(i - 1) / 2]->at > l->th[i]->at) {
		th_swap(l, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
th_down(io_loop *l, size_t i)
{
	for (;;) {
		size_t m = i, c = 2 * i + 1;
		if (c < l->nth && l->th[c]->at < l->th[m]->at)
			m = c;
		if (c + 1 < l->nth && l->th[c + 1]->at < l->th[m]->at)
			m = c + 1;
		if (m == i)
			return;
		th_swap(l, i, m);
		i = m;
	}
}

void
io_timer_stop(io_loop *l, io_timer *t)
{
	size_t i = t->idx;

	if (i == (size_t)-1)
		return;
	t->idx = (size_t)-1;
	if (i != --l->nth) {
		l->th[i] = l->th[l->nth];
		l->th[i]->idx = i;
		th_up(l, i);
		th_down(l, l->th[i]->idx);
	}
}

void
io_timer_at(io_loop *l, io_timer *t, double at)
{
	io_timer_stop(l, t);
	if (l->nth == l->cth) {
		l->cth = l->cth ? l->cth * 2 : 64;
		l->th = xrealloc(l->th, l->cth * sizeof *l->th);
	}
	t->at = at;
	t->idx = l->nth;
	l->th[l->nth++] = t;
	th_up(l, t->idx);
}

void
io_timer_after(io_loop *l, io_timer *t, double seconds)
{
	io_timer_at(l, t, mono() + seconds);
}

/* ms until the first timer (rounded up, so it is due when we wake); -1: none */
static int
timer_wait(const io_loop *l)
{
	double d;

	if (!l->nth)
		return -1;
	d = (l->th[0]->at - mono()) * 1000;
	return d <= 0 ? 0 : d > 86400000 ? 86400000 : (int)d + 1;
}

/* Fires the timers that are due, each once, earliest first. */
static void
timer_fire(io_loop *l)
{
	double t = mono();

	while (l->nth && l->th[0]->at <= t) {
		io_timer *x = l->th[0];
		io_timer_stop(l, x);
		x->cb(l, x, x->ud);
	}
}

size_t
io_loop_nconns(const io_loop *l)
{
	size_t i, n = 0;

	for (i = 0; l && i < l->ncs; i++)
		n += !l->cs[i]->dead;
	return n;
}

int
io_loop_watch(io_loop *l, int fd, short events,
	      void (*cb)(io_loop *l, int fd, short revents, void *ud), void *ud)
{
	io_watch *w = xcalloc(1, sizeof *w);

	w->fd = fd;
	w->events = events;
	w->cb = cb;
	w->ud = ud;
	push((void ***)&l->ws, &l->nws, w);
	return 0;
}

void
io_loop_unwatch(io_loop *l, int fd)
{
	size_t i;

	for (i = 0; i < l->nws; i++)
		if (l->ws[i]->fd == fd)
			l->ws[i]->dead = 1;
	if (!l->running)
		sweep(l);
}

void
io_ready(int fd)
{
	ssize_t r;

	if (fd < 0)
		return;
	do
		r = write(fd, "\n", 1);
	while (r < 0 && errno == EINTR);
	close(fd);
}

/* ---- connections: life and death -------------------------------------------- */

static io_conn *
conn_new(io_loop *l, int rfd, int wfd, char *name, const msg_limits *lim)
{
	io_conn *c = xcalloc(1, sizeof *c);

	c->loop = l;
	c->rfd = rfd;
	c->wfd = wfd;
	c->rflags = c->wflags = -1;
	c->name = name;
	c->lim = lim;
	msg_dec_init(&c->dec, lim);
	if (rfd >= 0 && rfd == wfd) {
		c->sock = sock_is_socket(rfd);
		sock_nonblock(rfd, 1);
		c->nonblock = 1;
	}
	push((void ***)&l->cs, &l->ncs, c);
	return c;
}

/* Ends c: the sweep calls on_close(why) if notify, then frees it. */
static void
conn_end(io_conn *c, int notify, const char *fmt, ...)
{
	va_list ap;

	if (c->dead)
		return;
	c->dead = 1;
	c->notify = notify;
	c->why = NULL;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(c->whybuf, sizeof c->whybuf, fmt, ap);
		va_end(ap);
		c->why = c->whybuf;
	}
}

static void
stdout_release(io_conn *c)
{
	int fd;

	if (c->wfd < 0)
		return;
	if (c->wflags >= 0)
		fcntl(c->wfd, F_SETFL, c->wflags);
	/* the reader must see EOF, yet fd 1 must stay taken */
	fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd >= 0 && fd != 1) {
		dup2(fd, 1);
		close(fd);
	}
	c->wfd = -1;
}

static void
conn_free(io_conn *c)
{
	c->loop->partial_total -= c->pend;
	if (c->q)
		rq_close(c->q);
	if (c->q)
		msgpack_zone_destroy(&c->zone);
	if (c->stdio) {
		if (c->rflags >= 0)
			fcntl(0, F_SETFL, c->rflags);
		stdout_release(c);
		c->loop->have_stdio = 0;
	} else {
		if (c->rfd >= 0)
			close(c->rfd);
		if (c->wfd >= 0 && c->wfd != c->rfd)
			close(c->wfd);
	}
	msg_dec_free(&c->dec);
	free(c->wbuf);
	free(c->name);
	free(c);
}

/* Calls on_close for what ended, then frees every dead object. */
static void
sweep(io_loop *l)
{
	size_t i, j;
	int again;

	do {
		again = 0;
		for (i = 0; i < l->ncs; i++) {
			io_conn *c = l->cs[i];

			if (!c->dead || !c->notify)
				continue;
			c->notify = 0;
			again = 1;
			if (l->h.on_close)
				l->h.on_close(l, c, c->why, l->ud);
		}
	} while (again);
	for (i = j = 0; i < l->ncs; i++) {
		if (l->cs[i]->dead)
			conn_free(l->cs[i]);
		else
			l->cs[j++] = l->cs[i];
	}
	l->ncs = j;
	for (i = j = 0; i < l->nws; i++) {
		if (l->ws[i]->dead)
			free(l->ws[i]);
		else
			l->ws[j++] = l->ws[i];
	}
	l->nws = j;
}

/* Both sides are done: a clean end. */
static void
conn_check_done(io_conn *c)
{
	if (c->eof && c->wdone)
		conn_end(c, 1, NULL);
}

/* The queue is empty after io_shutdown: close our write side. */
static void
conn_half_close(io_conn *c)
{
	c->wdone = 1;
	if (c->stdio)
		stdout_release(c);
	else if (c->sock)
		shutdown(c->wfd, SHUT_WR);
	conn_check_done(c);
}

/* ---- connections: writing ------------------------------------------------- */

static void
queue_append(io_conn *c, const void *p, size_t n)
{
	size_t need;

	if (c->woff && c->wlen + n > c->wcap) {
		memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
		c->wlen -= c->woff;
		c->woff = 0;
	}
	need = c->wlen + n;
	if (need > c->wcap) {
		c->wcap = c->wcap ? c->wcap : 16384;
		while (c->wcap < need)
			c->wcap *= 2;
		c->wbuf = xrealloc(c->wbuf, c->wcap);
	}
	memcpy(c->wbuf + c->wlen, p, n);
	c->wlen += n;
}

/* Starts or stops the clock of a queue above high water. */
static void
hw_note(io_conn *c)
{
	if (c->wlen - c->woff <= high_water(c->loop))
		c->hw_since = 0;
	else if (!c->hw_since)
		c->hw_since = mono();
}

/* Writes what the peer takes without waiting. 0 ok (maybe some left), -1 ended. */
static int
conn_flush(io_conn *c)
{
	ssize_t n;

	while (!c->dead && c->woff < c->wlen) {
		if (c->sock)
			n = send(c->wfd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL | MSG_DONTWAIT);
		else
			n = write(c->wfd, c->wbuf + c->woff, c->wlen - c->woff);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			hw_note(c);
			return 0;
		}
		if (n < 0) {
			conn_end(c, 1, "unable to write to %s: %s", c->name, strerror(errno));
			return -1;
		}
		c->woff += (size_t)n;
	}
	if (c->dead)
		return -1;
	c->woff = c->wlen = 0;
	c->hw_since = 0;
	if (c->wcap > (1 << 20)) {   /* a burst is over: give its memory back */
		free(c->wbuf);
		c->wbuf = NULL;
		c->wcap = 0;
	}
	if (c->shut && !c->wdone)
		conn_half_close(c);
	return 0;
}

int
io_send(io_conn *c, const void *bytes, size_t n)
{
	if (!c || c->dead || c->shut)
		return -1;
	if (c->q)
		return rq_send(c->q, bytes, n);
	queue_append(c, bytes, n);
	if (c->wlen - c->woff > IO_FLUSH_AT)
		conn_flush(c);
	else
		hw_note(c);
	return c->dead ? -1 : 0;
}

int
io_flush(io_conn *c)
{
	struct pollfd p;

	if (!c || c->dead)
		return -1;
	if (c->q)
		return 0;
	while (conn_flush(c) == 0 && c->blocking && c->woff < c->wlen) {
		p.fd = c->wfd;
		p.events = POLLOUT;
		if (poll(&p, 1, -1) < 0 && errno != EINTR) {
			conn_end(c, 1, "unable to poll %s: %s", c->name, strerror(errno));
			break;
		}
	}
	return c->dead ? -1 : 0;
}

void
io_shutdown(io_conn *c)
{
	if (!c || c->dead || c->shut)
		return;
	c->shut = 1;
	if (c->q) {              /* nothing of ours to half-close: done writing */
		c->wdone = 1;
		c->eof = 1;
		conn_end(c, 1, NULL);
		return;
	}
	conn_flush(c);
}

void
io_close(io_conn *c)
{
	if (!c || c->dead)
		return;
	if (!c->q)
		conn_flush(c);   /* best effort, never waits */
	c->dead = 1;
	c->notify = 0;
	if (!c->loop->running)
		sweep(c->loop);
}

void
io_conn_set_blocking(io_conn *c, int on)
{
	if (c)
		c->blocking = on;
}

void
io_conn_set_data(io_conn *c, void *p)
{
	c->data = p;
}

void *
io_conn_data(const io_conn *c)
{
	return c->data;
}

const char *
io_conn_name(const io_conn *c)
{
	return c->name;
}

size_t
io_conn_queued(const io_conn *c)
{
	return c && !c->dead ? c->wlen - c->woff : 0;
}

double
io_conn_backlog(const io_conn *c)
{
	return c && !c->dead && c->hw_since ? mono() - c->hw_since : -1;
}

void
io_conn_pause(io_conn *c, int on)
{
	if (c)
		c->paused = on;
}

int
io_conn_is_stdio(const io_conn *c)
{
	return c && c->stdio;
}

int
io_conn_backlog_redis(const io_conn *c, long long *lag, long long *pending)
{
	*lag = *pending = -1;
	return c->q && rq_backlog(c->q, lag, pending);
}

/* ---- connections: reading ------------------------------------------------- */

/* Counts what c holds of unfinished messages in the loop's total, starts or
 * stops its read clock, and cuts c when the total passes the budget. */
static void
partial_update(io_conn *c)
{
	io_loop *l = c->loop;
	size_t p = c->dead || c->paused ? 0 : msg_dec_pending(&c->dec);

	l->partial_total = l->partial_total - c->pend + p;
	c->pend = p;
	if (!p)
		c->partial_since = 0;
	else if (!c->partial_since)
		c->partial_since = mono();
	if (p && !c->stdio && l->lim.max_partial && l->partial_total > l->lim.max_partial)
		conn_broken(c, "holds %zu bytes of an unfinished message while unfinished input "
			    "across connections passed %zu bytes (--max-partial)", p, l->lim.max_partial);
}

/* A request stream starts with a map; one that starts with printable text
 * is JSON or plain lines piped in by mistake, which would otherwise give one
 * "not a map" error per byte. */
static int
looks_like_text(io_conn *c)
{
	unsigned char b;

	if (c->started || msg_dec_pending(&c->dec) == 0)
		return 0;
	c->started = 1;
	b = (unsigned char)c->dec.buf[c->dec.off];
	if (b == '{' || b == '[') {
		conn_broken(c, "the input looks like JSON text, not msgpack: convert it with sluice cat -m");
		return 1;
	}
	if ((b >= 0x20 && b < 0x7f) || b == '\t' || b == '\n' || b == '\r') {
		conn_broken(c, "the input looks like plain text, not msgpack: pipe it through tokenize "
			    "(or JSON lines through sluice cat -m)");
		return 1;
	}
	return 0;
}

/* Hands every whole message buffered in c to the owner (until it pauses c). */
static void
conn_dispatch(io_conn *c)
{
	io_loop *l = c->loop;
	const char *err = NULL;
	msg m = MSG_ZERO;
	int r;

	if (l->h.on_broken && looks_like_text(c))
		return;
	while (!c->dead && !c->paused) {
		r = msg_dec_next(&c->dec, &m, &err);
		if (r == MSG_NEED)
			break;
		if (r == MSG_GOT && l->h.on_msg)
			l->h.on_msg(l, c, &m, l->ud);
		else if (r == MSG_BAD && l->h.on_bad)
			l->h.on_bad(l, c, err, l->ud);
		else if (r == MSG_BROKEN)
			conn_broken(c, "%s", err ? err : "broken stream");
	}
	if (!c->dead) {
		if (!c->paused)
			msg_dec_trim(&c->dec);   /* a big message is over: give its buffer back */
		partial_update(c);
	}
}

/* The read side is done (EOF, or nothing more can be read). */
static void
conn_read_done(io_conn *c)
{
	io_loop *l = c->loop;

	c->eof = 1;
	if (c->stdio && c->rflags >= 0)
		fcntl(0, F_SETFL, c->rflags), c->rflags = -1;
	if (l->h.on_eof)
		l->h.on_eof(l, c, l->ud);
	else
		io_shutdown(c);
	if (!c->dead)
		conn_check_done(c);
}

/* Nothing more is read from c: the owner hears why (on_broken) and then,
 * as at EOF, may still answer what c sent whole before. Without on_broken
 * the connection ends. The unfinished input is dropped and freed. */
static void
conn_broken(io_conn *c, const char *fmt, ...)
{
	io_loop *l = c->loop;
	char why[sizeof c->whybuf];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	if (!l->h.on_broken) {
		conn_end(c, 1, "%s", why);
		return;
	}
	l->partial_total -= c->pend;
	c->pend = 0;
	c->partial_since = 0;
	msg_dec_free(&c->dec);
	msg_dec_init(&c->dec, c->lim);
	c->started = 1;
	l->h.on_broken(l, c, why, l->ud);
	if (!c->dead && !c->eof)
		conn_read_done(c);
}

static void
conn_eof(io_conn *c)
{
	if (msg_dec_pending(&c->dec)) {
		conn_broken(c, "connection closed in the middle of a message");
		return;
	}
	conn_read_done(c);
}

static void
conn_read(io_conn *c)
{
	size_t avail;
	ssize_t n;
	char *p;
	int i;

	for (i = 0; i < IO_READS_MAX && !c->dead && !c->eof && !c->paused; i++) {
		if (c->wlen - c->woff > high_water(c->loop))
			break;
		p = msg_dec_space(&c->dec, &avail);
		n = read(c->rfd, p, avail);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0 && errno == ECONNRESET && !msg_dec_pending(&c->dec)) {
			conn_end(c, 1, "connection reset by peer");
			break;
		}
		if (n < 0) {
			conn_end(c, 1, "unable to read from %s: %s", c->name, strerror(errno));
			break;
		}
		if (n == 0) {
			conn_eof(c);
			break;
		}
		msg_dec_commit(&c->dec, (size_t)n);
		conn_dispatch(c);
		if (!c->nonblock)
			break;   /* a blocking descriptor is read once per POLLIN */
	}
}

/* A Redis connection: whole messages from rq. */
static void
conn_take(io_conn *c)
{
	io_loop *l = c->loop;
	const char *err = NULL;
	msg m = MSG_ZERO;
	char *data;
	size_t n;
	int r;

	while (!c->dead) {
		r = rq_take(c->q, &data, &n);
		if (r == 0)
			break;
		if (r < 0) {
			conn_end(c, 1, "redis queue %s closed", c->name);
			break;
		}
		msgpack_zone_clear(&c->zone);
		r = msg_unpack(data, n, c->lim, &c->zone, &m, &err);
		if (r == MSG_GOT && l->h.on_msg)
			l->h.on_msg(l, c, &m, l->ud);
		else if (r != MSG_GOT && l->h.on_bad)
			l->h.on_bad(l, c, err, l->ud);
		free(data);
	}
}

/* ---- making connections and listeners ------------------------------------- */

static void
opened(io_loop *l, io_conn *c)
{
	if (l->h.on_open)
		l->h.on_open(l, c, l->ud);
}

static io_conn *
conn_stdio(io_loop *l, const io_opts *o, char *err, size_t errlen)
{
	io_conn *c;

	if (l->have_stdio) {
		seterr(err, errlen, "stdin/stdout is already an endpoint of this program");
		return NULL;
	}
	c = conn_new(l, 0, 1, xstrdup("-"), o->lim);
	c->stdio = 1;
	c->sock = sock_is_socket(1);
	if (sock_is_pipe_or_socket(0)) {
		c->rflags = fcntl(0, F_GETFL);
		sock_nonblock(0, 1);
		c->nonblock = 1;
	}
	if (sock_is_pipe_or_socket(1)) {
		c->wflags = fcntl(1, F_GETFL);
		sock_nonblock(1, 1);
		c->wwatch = 1;
	}
	l->have_stdio = 1;
	opened(l, c);
	return c;
}

static io_conn *
conn_redis(io_loop *l, const addr *a, const char *ep, int worker, const io_opts *o,
	   char *err, size_t errlen)
{
	io_conn *c;
	rq *q;

	q = worker ? rq_open_worker(a, o->lim, err, errlen) : rq_open_producer(a, o->lim, err, errlen);
	if (!q)
		return NULL;
	c = conn_new(l, -1, -1, xstrdup(ep), o->lim);
	c->q = q;
	if (!msgpack_zone_init(&c->zone, MSGPACK_ZONE_CHUNK_SIZE))
		die_x(EXIT_SYS, "unable to allocate memory: msgpack zone");
	opened(l, c);
	return c;
}

static io_listener *
listener_add(io_loop *l, int fd, const char *name, const msg_limits *lim)
{
	io_listener *ls = xcalloc(1, sizeof *ls);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;

	ls->fd = fd;
	ls->name = xstrdup(name);
	ls->lim = lim;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		ls->tcp = ss.ss_family == AF_INET || ss.ss_family == AF_INET6;
	sock_nonblock(fd, 1);
	push((void ***)&l->ls, &l->nls, ls);
	return ls;
}

/* Past --max-connections: the peer is told so, in the protocol, and closed. */
static void
refuse(io_loop *l, io_listener *ls, int fd, size_t open)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char why[128];
	double t = mono();

	snprintf(why, sizeof why, "too many connections: %zu open (--max-connections)", open);
	msgpack_sbuffer_init(&sb);
	msg_pk_init(&pk, &sb);
	msg_pk_error(&pk, NULL, (size_t)-1, "overloaded", why);
	if (send(fd, sb.data, sb.size, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* nothing to do: it is closed either way */
	}
	msgpack_sbuffer_destroy(&sb);
	shutdown(fd, SHUT_WR);
	close(fd);
	if (t - l->refused_at >= 1) {   /* a storm of connections is one line a second */
		l->refused_at = t;
		warn_x("%s: refused a connection: %s", ls->name, why);
	}
}

/* "tcp:*:8080#7 from 127.0.0.1:41234": the peer's address for TCP logs. */
static char *
conn_name(const io_listener *ls, int fd, const struct sockaddr_storage *ss, socklen_t sl)
{
	char host[64], serv[16];

	if (ls->tcp && getnameinfo((const struct sockaddr *)ss, sl, host, sizeof host, serv, sizeof serv,
				   NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		return xprintf(ss->ss_family == AF_INET6 ? "%s#%d from [%s]:%s" : "%s#%d from %s:%s",
			       ls->name, fd, host, serv);
	return xprintf("%s#%d", ls->name, fd);
}

static void
listener_accept(io_loop *l, io_listener *ls)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	io_conn *c;
	size_t open;
	int i, fd;

	for (i = 0; i < IO_ACCEPT_MAX; i++) {
		sl = sizeof ss;
		fd = accept4(ls->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				warn_sys("unable to accept on %s", ls->name);
			return;
		}
		open = io_loop_nconns(l);
		if (l->lim.max_conns && open >= l->lim.max_conns) {
			refuse(l, ls, fd, open);
			continue;
		}
		if (ls->tcp)
			sock_nodelay(fd);
		c = conn_new(l, fd, fd, conn_name(ls, fd, &ss, sl), ls->lim);
		opened(l, c);
	}
}

/* A descriptor handed to us (fd:N, LISTEN_FDS): listener or one stream. */
static int
take_fd(io_loop *l, int fd, const char *name, const io_opts *o, char *err, size_t errlen)
{
	int acc = 0;
	socklen_t sl = sizeof acc;

	if (fcntl(fd, F_GETFD) < 0) {
		seterr(err, errlen, "unable to use %s: %s", name, strerror(errno));
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &sl) == 0 && acc) {
		listener_add(l, fd, name, o->lim);
		return 0;
	}
	opened(l, conn_new(l, fd, fd, xprintf("%s#%d", name, fd), o->lim));
	return 0;
}

/* ---- listening on sockets ------------------------------------------------- */

static int
listen_unix(io_loop *l, const addr *a, const char *ep, const io_opts *o,
	    char *err, size_t errlen)
{
	io_listener *ls;
	struct stat st;
	int fd = sock_listen_unix(a->path, o->mode, o->backlog, ep, &st, err, errlen);

	if (fd < 0)
		return -1;
	ls = listener_add(l, fd, ep, o->lim);
	ls->path = xstrdup(a->path);
	ls->dev = st.st_dev;
	ls->ino = st.st_ino;
	return 0;
}

static int
listen_tcp(io_loop *l, const addr *a, const char *ep, const io_opts *o,
	   char *err, size_t errlen)
{
	int fd = sock_listen_tcp(a, o->backlog, ep, err, errlen);

	if (fd < 0)
		return -1;
	listener_add(l, fd, ep, o->lim);
	return 0;
}

static const io_opts *
opts_or_default(const io_opts *o)
{
	static const io_opts dflt = IO_OPTS_DEFAULT;

	return o ? o : &dflt;
}

/* Every error of io_loop_listen reads "unable to listen on EP: why". */
static void
say_listen(const char *ep, char *err, size_t errlen)
{
	char why[512];
	size_t n = strlen("unable to listen on ");

	if (!errlen || !strncmp(err, "unable to listen on ", n))
		return;
	snprintf(why, sizeof why, "%s", err);
	seterr(err, errlen, "unable to listen on %s: %s", ep, why);
}

int
io_loop_listen(io_loop *l, const char *ep, const io_opts *o, char *err, size_t errlen)
{
	addr a = ADDR_ZERO;
	int r = -1;

	o = opts_or_default(o);
	if (addr_parse(ep, &a, err, errlen) < 0) {
		say_listen(ep, err, errlen);
		return -1;
	}
	switch (a.kind) {
	case ADDR_STDIO:
		r = conn_stdio(l, o, err, errlen) ? 0 : -1;
		break;
	case ADDR_UNIX:
		r = listen_unix(l, &a, ep, o, err, errlen);
		break;
	case ADDR_TCP:
		r = listen_tcp(l, &a, ep, o, err, errlen);
		break;
	case ADDR_FD:
		r = take_fd(l, a.fd, ep, o, err, errlen);
		break;
	case ADDR_REDIS:
		r = conn_redis(l, &a, ep, 1, o, err, errlen) ? 0 : -1;
		break;
	}
	addr_free(&a);
	if (r < 0)
		say_listen(ep, err, errlen);
	return r;
}

int
io_loop_listen_inherited(io_loop *l, const io_opts *o)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	unsigned long p, n, i;
	char name[32], err[256];
	int got = 0;

	o = opts_or_default(o);
	if (!pid || !fds || addr_parse_uint(pid, strlen(pid), LONG_MAX, &p) < 0 ||
	    (pid_t)p != getpid() || addr_parse_uint(fds, strlen(fds), 1024, &n) < 0)
		return 0;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof name, "fd:%lu", 3 + i);
		sock_cloexec((int)(3 + i));
		if (take_fd(l, (int)(3 + i), name, o, err, sizeof err) < 0)
			warn_x("%s", err);
		else
			got++;
	}
	return got;
}

io_conn *
io_loop_dial(io_loop *l, const char *ep, const io_opts *o, char *err, size_t errlen)
{
	addr a = ADDR_ZERO;
	io_conn *c = NULL;
	int fd = -1;

	o = opts_or_default(o);
	if (addr_parse(ep, &a, err, errlen) < 0)
		return NULL;
	if (a.kind == ADDR_STDIO)
		c = conn_stdio(l, o, err, errlen);
	else if (a.kind == ADDR_REDIS)
		c = conn_redis(l, &a, ep, 0, o, err, errlen);
	else if (a.kind == ADDR_UNIX)
		fd = sock_dial_unix(a.path, ep, err, errlen);
	else if (a.kind == ADDR_TCP)
		fd = sock_dial_tcp(&a, ep, err, errlen);
	else if (fcntl(a.fd, F_GETFD) < 0)
		seterr(err, errlen, "unable to use %s: %s", ep, strerror(errno));
	else
		fd = a.fd;
	if (fd >= 0) {
		c = conn_new(l, fd, fd, xprintf("%s#%d", ep, fd), o->lim);
		opened(l, c);
	}
	addr_free(&a);
	return c;
}

/* ---- one turn of the loop --------------------------------------------------- */

static void
poll_add(io_loop *l, size_t *n, int fd, short events, int type, void *obj)
{
	if (*n == l->pcap) {
		l->pcap = l->pcap ? 2 * l->pcap : 16;
		l->pfd = xrealloc(l->pfd, l->pcap * sizeof *l->pfd);
		l->pobj = xrealloc(l->pobj, l->pcap * sizeof *l->pobj);
		l->ptype = xrealloc(l->ptype, l->pcap);
	}
	l->pfd[*n].fd = fd;
	l->pfd[*n].events = events;
	l->pfd[*n].revents = 0;
	l->pobj[*n] = obj;
	l->ptype[*n] = (char)type;
	(*n)++;
}

/* A socket is watched even when we neither read nor write it, and so is a
 * stdout pipe: POLLHUP and POLLERR, which poll reports unasked, say that
 * the peer is gone altogether (a peer that only shut down its write side
 * raises neither), so its work can be cancelled at once. */
static void
poll_conn(io_loop *l, size_t *n, io_conn *c)
{
	int rd = !c->eof && !c->paused && c->wlen - c->woff <= high_water(l);
	int wr = c->woff < c->wlen && !c->wdone;

	if (c->q) {
		poll_add(l, n, rq_fd(c->q), POLLIN, P_CONN, c);
	} else if (c->rfd == c->wfd) {
		if (rd || wr || (c->sock && !c->wdone))
			poll_add(l, n, c->rfd, (short)((rd ? POLLIN : 0) | (wr ? POLLOUT : 0)), P_CONN, c);
	} else {
		if (rd)
			poll_add(l, n, c->rfd, POLLIN, P_CONN, c);
		if (c->wfd >= 0 && !c->wdone && (wr || c->wwatch))
			poll_add(l, n, c->wfd, wr ? POLLOUT : 0, P_CONN, c);
	}
}

static size_t
poll_build(io_loop *l)
{
	size_t i, n = 0;

	for (i = 0; i < l->nls; i++)
		if (!l->ls[i]->dead)
			poll_add(l, &n, l->ls[i]->fd, POLLIN, P_LISTENER, l->ls[i]);
	for (i = 0; i < l->nws; i++)
		if (!l->ws[i]->dead)
			poll_add(l, &n, l->ws[i]->fd, l->ws[i]->events, P_WATCH, l->ws[i]);
	for (i = 0; i < l->ncs; i++)
		if (!l->cs[i]->dead)
			poll_conn(l, &n, l->cs[i]);
	return n;
}

static void
poll_dispatch_conn(io_conn *c, const struct pollfd *p)
{
	if (c->dead)
		return;
	if (c->q) {
		conn_take(c);
		return;
	}
	if (p->fd == c->wfd && (p->revents & (POLLOUT | POLLERR | POLLHUP)) && c->woff < c->wlen)
		conn_flush(c);
	if (!c->dead && p->fd == c->rfd && (p->revents & (POLLIN | POLLERR | POLLHUP)) && !c->eof &&
	    !c->paused)
		conn_read(c);
	if (c->dead || p->fd != c->wfd || c->wdone)
		return;
	/* the peer is gone (not just done sending): nobody can take an answer */
	if (c->rfd == c->wfd && c->sock && (p->revents & (POLLERR | POLLHUP)))
		conn_end(c, 1, "the peer closed the connection");
	else if (c->rfd != c->wfd && c->wwatch && (p->revents & (POLLERR | POLLHUP)))
		conn_end(c, 1, "the reader of the output went away");
}

/* Cuts the connections that have held part of a message too long; returns
 * the ms until the next such deadline (-1: none). */
static int
read_deadlines(io_loop *l)
{
	double t = mono(), rt = l->lim.read_timeout_ms / 1000.0, next = -1;
	size_t i;

	if (!l->lim.read_timeout_ms)
		return -1;
	for (i = 0; i < l->ncs; i++) {
		io_conn *c = l->cs[i];

		if (c->dead || c->stdio || !c->partial_since || c->paused)
			continue;
		if (t - c->partial_since >= rt)
			conn_broken(c, "sent part of a message and not the rest within %u ms (--read-timeout)",
				    l->lim.read_timeout_ms);
		else if (next < 0 || c->partial_since + rt - t < next)
			next = c->partial_since + rt - t;
	}
	return next < 0 ? -1 : (int)(next * 1000) + 1;
}

/* Hands over what paused connections buffered, now that they may go on. */
static int
resume_all(io_loop *l)
{
	size_t i;
	int n = 0;

	for (i = 0; i < l->ncs; i++) {
		io_conn *c = l->cs[i];
		if (!c->dead && !c->paused && !c->q && msg_dec_pending(&c->dec) && !c->pend)
			conn_dispatch(c), n++;
	}
	return n;
}

static void
flush_all(io_loop *l)
{
	size_t i;

	for (i = 0; i < l->ncs; i++)
		if (!l->cs[i]->dead && l->cs[i]->woff < l->cs[i]->wlen)
			conn_flush(l->cs[i]);
}

int
io_loop_run_once(io_loop *l, int timeout_ms)
{
	size_t i, n;
	int r, dl;

	l->running = 1;
	sweep(l);
	if (resume_all(l))
		timeout_ms = 0;   /* the owner has new work: do not sleep on it */
	flush_all(l);   /* nothing waits in a buffer while we sleep */
	sweep(l);
	dl = read_deadlines(l);
	if (dl >= 0 && (timeout_ms < 0 || dl < timeout_ms))
		timeout_ms = dl;
	dl = timer_wait(l);
	if (dl >= 0 && (timeout_ms < 0 || dl < timeout_ms))
		timeout_ms = dl;
	n = poll_build(l);
	r = poll(l->pfd, n, timeout_ms);
	if (r < 0 && errno != EINTR) {
		l->running = 0;
		return -1;
	}
	for (i = 0; r > 0 && i < n; i++) {
		if (!l->pfd[i].revents)
			continue;
		if (l->ptype[i] == P_LISTENER) {
			if (!((io_listener *)l->pobj[i])->dead)
				listener_accept(l, l->pobj[i]);
		}
		else if (l->ptype[i] == P_WATCH && !((io_watch *)l->pobj[i])->dead)
			((io_watch *)l->pobj[i])->cb(l, l->pfd[i].fd, l->pfd[i].revents,
						     ((io_watch *)l->pobj[i])->ud);
		else if (l->ptype[i] == P_CONN)
			poll_dispatch_conn(l->pobj[i], &l->pfd[i]);
	}
	timer_fire(l);
	sweep(l);
	l->running = 0;
	for (i = n = 0; i < l->nls; i++) {
		if (l->ls[i]->dead)
			listener_free(l->ls[i]);
		else
			l->ls[n++] = l->ls[i];
	}
	l->nls = n;
	return r < 0 ? 0 : r;
}
