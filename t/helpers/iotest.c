/* iotest: a test tool for lib/io: message generator, checker, echo server and
 * client, so the bats tests can push real traffic through every endpoint.
 *
 *   iotest gen N                 N maps {id, seq, pad} on stdout
 *   iotest check N               exit 0 only if stdin holds seq 0..N-1 in order
 *   iotest echo [-d FD] [-m MODE] [--crash-on KEY] [--delay-ms N] -l EP...
 *                                answers each message with it plus finish:"stop"
 *   iotest client -u EP N        sends N messages, wants N answers in order */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "die.h"
#include "io.h"
#include "msg.h"

#define USAGE "iotest gen N | check N | echo [-d FD] [-m MODE] [--crash-on KEY] [--delay-ms N] -l ENDPOINT... | client -u ENDPOINT N"

static void
usage_err(const char *why)
{
	fprintf(stderr, "%s: usage: %s\n", die_prog, why);
	die_usage(USAGE);
}

static unsigned long
number(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s ? s : "", &end, 10);
	if (!s || !*s || *end || errno || *s == '-')
		usage_err("not a number");
	return v;
}

/* Message i of the test stream: {"id": "<i>", "seq": i, "pad": i%61 x's}. */
static void
pack_gen(msgpack_packer *pk, unsigned long i)
{
	static const char pad[64] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
	char id[32];

	snprintf(id, sizeof id, "%lu", i);
	msgpack_pack_map(pk, 3);
	msg_pk_str(pk, "id");
	msg_pk_str(pk, id);
	msg_pk_str(pk, "seq");
	msgpack_pack_uint64(pk, i);
	msg_pk_str(pk, "pad");
	msg_pk_strn(pk, pad, i % 61);
}

static void
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			die_sys("unable to write to stdout");
		p += w;
		n -= (size_t)w;
	}
}

/* ---- gen, check ------------------------------------------------------------ */

static int
cmd_gen(unsigned long n)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	unsigned long i;

	msgpack_sbuffer_init(&sb);
	msg_pk_init(&pk, &sb);
	for (i = 0; i < n; i++) {
		pack_gen(&pk, i);
		if (sb.size > 65536 || i + 1 == n) {
			write_all(1, sb.data, sb.size);
			msgpack_sbuffer_clear(&sb);
		}
	}
	msgpack_sbuffer_destroy(&sb);
	return 0;
}

static int
cmd_check(unsigned long n)
{
	msg_dec d;
	msg m = MSG_ZERO;
	const char *err;
	unsigned long got = 0;
	uint64_t seq;
	size_t avail;
	ssize_t r;
	char *p;
	int k;

	msg_dec_init(&d, NULL);
	for (;;) {
		p = msg_dec_space(&d, &avail);
		r = read(0, p, avail);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die_sys("unable to read stdin");
		if (r == 0)
			break;
		msg_dec_commit(&d, (size_t)r);
		while ((k = msg_dec_next(&d, &m, &err)) != MSG_NEED) {
			if (k != MSG_GOT)
				die_x(EXIT_NO, "check: message %lu is bad: %s", got, err);
			if (msg_uint(&m, "seq", &seq) != 1 || seq != got)
				die_x(EXIT_NO, "check: message %lu has the wrong seq", got);
			got++;
		}
	}
	if (msg_dec_pending(&d))
		die_x(EXIT_NO, "check: input ends in the middle of a message");
	if (got != n)
		die_x(EXIT_NO, "check: got %lu messages, wanted %lu", got, n);
	msg_dec_free(&d);
	return 0;
}

/* ---- echo ------------------------------------------------------------------ */

typedef struct delayed {
	struct delayed *next;
	io_conn *c;
	char *bytes;
	size_t n;
	struct timespec due;
} delayed;

typedef struct conn_state {
	struct conn_state *prev, *next;   /* every open connection's, for the exit */
	unsigned pending;      /* delayed answers not yet sent */
	int eof;               /* the peer is done: shut down after them */
} conn_state;

typedef struct echo {
	const char *crash_on;
	unsigned long delay_ms;
	int stdio_only;
	int stop;
	int failed;            /* the stdio stream ended badly */
	int tfd, sfd;
	delayed *head, *tail;
	conn_state *states;
	msgpack_sbuffer sb;
} echo;

static void
ts_add_ms(struct timespec *t, unsigned long ms)
{
	t->tv_sec += (time_t)(ms / 1000);
	t->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

static int
ts_le(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec <= b->tv_nsec);
}

static void
arm(echo *e)
{
	struct itimerspec its = {{0, 0}, {0, 0}};

	if (e->head)
		its.it_value = e->head->due;
	if (timerfd_settime(e->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		die_sys("unable to set timer");
}

static void
answered(io_conn *c)
{
	conn_state *cs = io_conn_data(c);

	if (cs && --cs->pending == 0 && cs->eof)
		io_shutdown(c);
}

static void
on_timer(io_loop *l, int fd, short revents, void *ud)
{
	echo *e = ud;
	uint64_t ticks;
	struct timespec now;
	delayed *d;

	(void)l, (void)revents;
	if (read(fd, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
		die_sys("unable to read timer");
	clock_gettime(CLOCK_MONOTONIC, &now);
	while ((d = e->head) && ts_le(&d->due, &now)) {
		e->head = d->next;
		if (!e->head)
			e->tail = NULL;
		io_send(d->c, d->bytes, d->n);
		answered(d->c);
		free(d->bytes);
		free(d);
	}
	arm(e);
}

static void
delay_answer(echo *e, io_conn *c, const char *p, size_t n)
{
	delayed *d = xcalloc(1, sizeof *d);
	conn_state *cs = io_conn_data(c);

	d->c = c;
	d->bytes = xmalloc(n);
	memcpy(d->bytes, p, n);
	d->n = n;
	clock_gettime(CLOCK_MONOTONIC, &d->due);
	ts_add_ms(&d->due, e->delay_ms);
	if (e->tail)
		e->tail->next = d;
	else
		e->head = d;
	e->tail = d;
	if (cs)
		cs->pending++;
	if (e->head == d)
		arm(e);
}

static void
echo_msg(io_loop *l, io_conn *c, const msg *m, void *ud)
{
	static const char *const drop[] = {"finish"};
	echo *e = ud;
	msgpack_packer pk;

	(void)l;
	if (e->crash_on && msg_get(m, e->crash_on))
		abort();
	msgpack_sbuffer_clear(&e->sb);
	msgpack_packer_init(&pk, &e->sb, msgpack_sbuffer_write);
	msg_pk_passthrough(&pk, m, drop, 1, 1);
	msg_pk_str(&pk, "finish");
	msg_pk_str(&pk, "stop");
	if (e->delay_ms)
		delay_answer(e, c, e->sb.data, e->sb.size);
	else
		io_send(c, e->sb.data, e->sb.size);
}

static void
echo_open(io_loop *l, io_conn *c, void *ud)
{
	echo *e = ud;
	conn_state *cs = xcalloc(1, sizeof *cs);

	(void)l;
	cs->next = e->states;
	if (cs->next)
		cs->next->prev = cs;
	e->states = cs;
	io_conn_set_data(c, cs);
}

static void
echo_eof(io_loop *l, io_conn *c, void *ud)
{
	conn_state *cs = io_conn_data(c);

	(void)l, (void)ud;
	if (cs && cs->pending) {
		cs->eof = 1;
		return;
	}
	io_shutdown(c);
}

static void
echo_bad(io_loop *l, io_conn *c, const char *why, void *ud)
{
	(void)l, (void)ud;
	warn_x("%s: bad message: %s", io_conn_name(c), why);
}

/* Forgets c: its delayed answers go nowhere. */
static void
echo_close(io_loop *l, io_conn *c, const char *why, void *ud)
{
	echo *e = ud;
	delayed **pp = &e->head, *d;
	conn_state *cs = io_conn_data(c);

	(void)l;
	if (why) {
		warn_x("%s: %s", io_conn_name(c), why);
		e->failed |= e->stdio_only;
	}
	e->tail = NULL;
	while ((d = *pp)) {
		if (d->c == c) {
			*pp = d->next;
			free(d->bytes);
			free(d);
			continue;
		}
		e->tail = d;
		pp = &d->next;
	}
	if (cs && cs->prev)
		cs->prev->next = cs->next;
	else if (cs)
		e->states = cs->next;
	if (cs && cs->next)
		cs->next->prev = cs->prev;
	free(cs);
	io_conn_set_data(c, NULL);
}

static void
on_signal(io_loop *l, int fd, short revents, void *ud)
{
	struct signalfd_siginfo si;
	echo *e = ud;

	(void)l, (void)revents;
	if (read(fd, &si, sizeof si) == (ssize_t)sizeof si)
		e->stop = 1;
}

static void
echo_fds(echo *e)
{
	sigset_t ss;

	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0)
		die_sys("unable to block signals");
	e->sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	if (e->sfd < 0)
		die_sys("unable to create signalfd");
	e->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (e->tfd < 0)
		die_sys("unable to create timerfd");
}

static void
echo_listen(io_loop *l, const char *ep, const io_opts *o)
{
	addr a = ADDR_ZERO;
	char err[512];

	if (addr_parse(ep, &a, err, sizeof err) < 0)
		usage_err(err);
	addr_free(&a);
	if (io_loop_listen(l, ep, o, err, sizeof err) < 0)
		die_x(EXIT_SYS, "%s", err);
}

static int
cmd_echo(int argc, char **argv)
{
	static const struct option lo[] = {
		{"crash-on", required_argument, 0, 'C'},
		{"delay-ms", required_argument, 0, 'D'},
		{0, 0, 0, 0},
	};
	io_handler h = {echo_open, echo_msg, echo_bad, echo_close, echo_eof, 0};
	io_opts o = IO_OPTS_DEFAULT;
	echo e = {0};
	const char *eps[64];
	int neps = 0, ready = -1, c, i, n;
	io_loop *l;
	char *end;

	while ((c = getopt_long(argc, argv, "d:m:l:", lo, NULL)) != -1) {
		switch (c) {
		case 'd': ready = (int)number(optarg); break;
		case 'm':
			o.mode = (mode_t)strtoul(optarg, &end, 8);
			if (!*optarg || *end || o.mode > 0777)
				usage_err("bad mode");
			break;
		case 'l':
			if (neps == 64)
				usage_err("too many endpoints");
			eps[neps++] = optarg;
			break;
		case 'C': e.crash_on = optarg; break;
		case 'D': e.delay_ms = number(optarg); break;
		default: die_usage(USAGE);
		}
	}
	if (optind != argc)
		die_usage(USAGE);
	echo_fds(&e);
	msgpack_sbuffer_init(&e.sb);
	l = io_loop_new(&h, &e);
	for (i = 0; i < neps; i++)
		echo_listen(l, eps[i], &o);
	n = io_loop_listen_inherited(l, &o);
	if (!neps && !n)
		usage_err("no endpoint to listen on");
	e.stdio_only = neps == 1 && !strcmp(eps[0], "-") && !n;
	io_loop_watch(l, e.sfd, POLLIN, on_signal, &e);
	io_loop_watch(l, e.tfd, POLLIN, on_timer, &e);
	io_ready(ready);
	while (!e.stop && !(e.stdio_only && io_loop_nconns(l) == 0))
		if (io_loop_run_once(l, -1) < 0)
			die_sys("unable to poll");
	io_loop_free(l);
	while (e.states) {
		conn_state *cs = e.states;

		e.states = cs->next;
		free(cs);
	}
	while (e.head) {
		delayed *d = e.head;

		e.head = d->next;
		free(d->bytes);
		free(d);
	}
	close(e.sfd);
	close(e.tfd);
	msgpack_sbuffer_destroy(&e.sb);
	return e.failed ? EXIT_SYS : 0;
}

/* ---- client ---------------------------------------------------------------- */

typedef struct client {
	unsigned long n, got;
	int done;
	const char *err;
	char buf[256];
} client;

static void
client_msg(io_loop *l, io_conn *c, const msg *m, void *ud)
{
	client *k = ud;
	const char *s;
	size_t sl;
	uint64_t seq;

	(void)l, (void)c;
	if (k->done)
		return;
	if (msg_uint(m, "seq", &seq) != 1 || seq != k->got ||
	    msg_str(m, "finish", &s, &sl) != 1 || sl != 4 || memcmp(s, "stop", 4)) {
		snprintf(k->buf, sizeof k->buf, "answer %lu is not the one expected", k->got);
		k->err = k->buf;
		k->done = 1;
		return;
	}
	if (++k->got == k->n)
		k->done = 1;
}

static void
client_close(io_loop *l, io_conn *c, const char *why, void *ud)
{
	client *k = ud;

	(void)l, (void)c;
	if (k->done)
		return;
	snprintf(k->buf, sizeof k->buf, "connection closed after %lu of %lu answers%s%s",
		 k->got, k->n, why ? ": " : "", why ? why : "");
	k->err = k->buf;
	k->done = 1;
}

static int
cmd_client(int argc, char **argv)
{
	io_handler h = {0, client_msg, 0, client_close, 0, 0};
	addr a = ADDR_ZERO;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	client k = {0};
	unsigned long sent = 0;
	const char *ep;
	char err[512];
	io_conn *c;
	io_loop *l;

	if (argc != 4 || strcmp(argv[1], "-u"))
		die_usage(USAGE);
	ep = argv[2];
	k.n = number(argv[3]);
	if (addr_parse(ep, &a, err, sizeof err) < 0)
		usage_err(err);
	addr_free(&a);
	l = io_loop_new(&h, &k);
	c = io_loop_dial(l, ep, NULL, err, sizeof err);
	if (!c)
		die_x(EXIT_SYS, "%s", err);
	msgpack_sbuffer_init(&sb);
	msg_pk_init(&pk, &sb);
	k.done = k.n == 0;
	while (!k.done) {
		while (sent < k.n && io_conn_queued(c) < 256 * 1024) {
			msgpack_sbuffer_clear(&sb);
			pack_gen(&pk, sent++);
			if (io_send(c, sb.data, sb.size) < 0)
				break;
		}
		if (io_loop_run_once(l, sent < k.n && io_conn_queued(c) < 256 * 1024 ? 0 : -1) < 0)
			die_sys("unable to poll");
	}
	msgpack_sbuffer_destroy(&sb);
	io_loop_free(l);
	if (k.err)
		die_x(EXIT_NO, "client: %s", k.err);
	return 0;
}

int
main(int argc, char **argv)
{
	die_init("iotest");
	if (argc < 2)
		die_usage(USAGE);
	if (!strcmp(argv[1], "-h")) {
		printf("usage: %s\n", USAGE);
		return 0;
	}
	if (!strcmp(argv[1], "gen") && argc == 3)
		return cmd_gen(number(argv[2]));
	if (!strcmp(argv[1], "check") && argc == 3)
		return cmd_check(number(argv[2]));
	if (!strcmp(argv[1], "echo"))
		return cmd_echo(argc - 1, argv + 1);
	if (!strcmp(argv[1], "client"))
		return cmd_client(argc - 1, argv + 1);
	die_usage(USAGE);
}
