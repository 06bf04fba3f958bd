/* rqtest: drives lib/rq directly for t/0020-io-redis.bats.
 *
 *   rqtest work [--crash-on KEY] [--delay-ms N] [--partials N] redis://...
 *	a worker: answers each job, after N ms, with the request plus
 *	"finish":"stop" (first N partial answers with "partial":i when asked);
 *	abort()s on a job that has KEY; prints "took ID" for each job taken.
 *	Runs until SIGTERM or SIGINT.
 *   rqtest send [--timeout-ms N] N redis://...
 *	a producer: sends N jobs {id:"<i>", seq:i} and prints the id of each
 *	final answer; exit 0 once exactly N distinct final answers arrived with
 *	no duplicate, 1 on a duplicate or foreign id, 99 on timeout. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "die.h"
#include "addr.h"
#include "msg.h"
#include "rq.h"

#define USAGE "rqtest work [--crash-on KEY] [--delay-ms N] [--partials N] redis://... | " \
	      "rqtest send [--timeout-ms N] N redis://..."

static volatile sig_atomic_t quit;

static void
on_signal(int sig)
{
	(void)sig;
	quit = 1;
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned long
number(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || !*s || *end)
		die_usage(USAGE);
	return v;
}

static void
open_addr(const char *ep, addr *a)
{
	char err[256];

	if (addr_parse(ep, a, err, sizeof err) < 0 || a->kind != ADDR_REDIS)
		die_x(EXIT_USAGE, "bad endpoint %s: %s", ep, a->kind != ADDR_REDIS ? "not redis://" : err);
}

/* ---- work ---------------------------------------------------------------- */

struct held {                  /* a job waiting for its answer time */
	struct held *next;
	char *data;
	size_t n;
	long long due;
};

static void
answer(rq *q, const char *data, size_t n, unsigned partials)
{
	static const char *const drop[] = {"finish", "partial"};
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_zone zone;
	msg m = MSG_ZERO;
	const char *err;
	unsigned i;

	msgpack_zone_init(&zone, 2048);
	if (msg_unpack(data, n, NULL, &zone, &m, &err) != MSG_GOT)
		die_x(EXIT_SYS, "rq handed out a bad message: %s", err);
	for (i = 0; i <= partials; i++) {
		msgpack_sbuffer_init(&sb);
		msg_pk_init(&pk, &sb);
		msg_pk_passthrough(&pk, &m, drop, 2, 1);
		if (i < partials) {
			msg_pk_str(&pk, "partial");
			msgpack_pack_unsigned_int(&pk, i);
		} else {
			msg_pk_str(&pk, "finish");
			msg_pk_str(&pk, "stop");
		}
		if (rq_send(q, sb.data, sb.size) < 0)
			warn_sys("unable to send an answer");
		msgpack_sbuffer_destroy(&sb);
	}
	msgpack_zone_destroy(&zone);
}

static int
has_key(const char *data, size_t n, const char *key)
{
	msgpack_zone zone;
	msg m = MSG_ZERO;
	const char *err;
	int r;

	msgpack_zone_init(&zone, 2048);
	r = msg_unpack(data, n, NULL, &zone, &m, &err) == MSG_GOT && msg_get(&m, key);
	msgpack_zone_destroy(&zone);
	return r;
}

/* Says on stdout which job was taken: "took ID". */
static void
took(const char *data, size_t n)
{
	msgpack_zone zone;
	msg m = MSG_ZERO;
	const char *err, *id;
	size_t idn;

	msgpack_zone_init(&zone, 2048);
	if (msg_unpack(data, n, NULL, &zone, &m, &err) == MSG_GOT && msg_str(&m, "id", &id, &idn) == 1)
		printf("took %.*s\n", (int)idn, id);
	fflush(stdout);
	msgpack_zone_destroy(&zone);
}

static int
work(int argc, char **argv)
{
	const char *crash = NULL;
	unsigned long delay = 0, partials = 0;
	struct held *hh = NULL, *ht = NULL, *h;
	addr a = ADDR_ZERO;
	struct pollfd pfd;
	char err[256], *data;
	size_t n;
	long long t;
	int i, r, timeout;
	rq *q;

	for (i = 2; i + 1 < argc && argv[i][0] == '-'; i += 2) {
		if (!strcmp(argv[i], "--crash-on"))
			crash = argv[i + 1];
		else if (!strcmp(argv[i], "--delay-ms"))
			delay = number(argv[i + 1]);
		else if (!strcmp(argv[i], "--partials"))
			partials = number(argv[i + 1]);
		else
			die_usage(USAGE);
	}
	if (i + 1 != argc)
		die_usage(USAGE);
	open_addr(argv[i], &a);
	if (!(q = rq_open_worker(&a, NULL, err, sizeof err)))
		die_x(EXIT_SYS, "unable to open %s: %s", argv[i], err);
	pfd.fd = rq_fd(q);
	pfd.events = POLLIN;
	while (!quit) {
		timeout = 1000;
		if (hh) {
			t = hh->due - now_ms();
			timeout = t < 0 ? 0 : t < 1000 ? (int)t : 1000;
		}
		if (poll(&pfd, 1, timeout) < 0 && errno != EINTR)
			die_sys("unable to poll");
		while ((r = rq_take(q, &data, &n)) == 1) {
			if (crash && has_key(data, n, crash))
				abort();
			took(data, n);
			h = xcalloc(1, sizeof *h);
			h->data = data;
			h->n = n;
			h->due = now_ms() + (long long)delay;
			if (ht)
				ht->next = h;
			else
				hh = h;
			ht = h;
		}
		if (r < 0)
			die_x(EXIT_SYS, "unable to read %s: queue closed", argv[i]);
		/* equal delays: the oldest job is always the first due */
		for (t = now_ms(); hh && hh->due <= t; hh = h) {
			answer(q, hh->data, hh->n, (unsigned)partials);
			h = hh->next;
			free(hh->data);
			free(hh);
		}
		if (!hh)
			ht = NULL;
	}
	rq_close(q);
	addr_free(&a);
	return 0;
}

/* ---- send ---------------------------------------------------------------- */

static int
send_jobs(int argc, char **argv)
{
	unsigned long total, timeout_ms = 30000, i, got = 0, seq;
	unsigned char *seen;
	addr a = ADDR_ZERO;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct pollfd pfd;
	char err[256], idbuf[32], *data, *end;
	const char *id, *fin, *e;
	size_t n, idn, finn;
	long long deadline;
	int argi = 2, bad = 0, r;
	rq *q;

	if (argi + 1 < argc && !strcmp(argv[argi], "--timeout-ms")) {
		timeout_ms = number(argv[argi + 1]);
		argi += 2;
	}
	if (argi + 2 != argc)
		die_usage(USAGE);
	total = number(argv[argi]);
	if (total > 10000000)
		die_usage(USAGE);
	open_addr(argv[argi + 1], &a);
	if (!(q = rq_open_producer(&a, NULL, err, sizeof err)))
		die_x(EXIT_SYS, "unable to open %s: %s", argv[argi + 1], err);
	seen = xcalloc(total + 1, 1);
	deadline = now_ms() + (long long)timeout_ms;
	for (i = 0; i < total; i++) {
		msgpack_sbuffer_init(&sb);
		msg_pk_init(&pk, &sb);
		msgpack_pack_map(&pk, 2);
		msg_pk_str(&pk, "id");
		snprintf(idbuf, sizeof idbuf, "%lu", i);
		msg_pk_str(&pk, idbuf);
		msg_pk_str(&pk, "seq");
		msgpack_pack_unsigned_long(&pk, i);
		while (rq_send(q, sb.data, sb.size) < 0) {
			if (now_ms() > deadline)
				die_x(EXIT_TIMEOUT, "unable to send job %lu: timed out", i);
			usleep(50000);
		}
		msgpack_sbuffer_destroy(&sb);
	}
	pfd.fd = rq_fd(q);
	pfd.events = POLLIN;
	while (got < total && !quit) {
		long long left = deadline - now_ms();

		if (left <= 0) {
			fprintf(stderr, "rqtest: %lu of %lu answers before the timeout\n", got, total);
			return EXIT_TIMEOUT;
		}
		if (poll(&pfd, 1, left < 1000 ? (int)left : 1000) < 0 && errno != EINTR)
			die_sys("unable to poll");
		while ((r = rq_take(q, &data, &n)) == 1) {
			msgpack_zone zone;
			msg m = MSG_ZERO;

			msgpack_zone_init(&zone, 2048);
			if (msg_unpack(data, n, NULL, &zone, &m, &e) != MSG_GOT ||
			    msg_str(&m, "id", &id, &idn) != 1) {
				fprintf(stderr, "rqtest: an answer without an id\n");
				bad = 1;
			} else if (msg_str(&m, "finish", &fin, &finn) == 1) {
				snprintf(idbuf, sizeof idbuf, "%.*s", (int)(idn < 20 ? idn : 20), id);
				seq = strtoul(idbuf, &end, 10);
				if (idn >= 20 || *end || !*idbuf || seq >= total) {
					fprintf(stderr, "rqtest: a foreign id %s\n", idbuf);
					bad = 1;
				} else if (seen[seq]) {
					fprintf(stderr, "rqtest: a duplicate answer for %s\n", idbuf);
					bad = 1;
				} else {
					seen[seq] = 1;
					got++;
					printf("%s\n", idbuf);
				}
			}
			msgpack_zone_destroy(&zone);
			free(data);
		}
		if (r < 0)
			die_x(EXIT_SYS, "unable to read answers: queue closed");
	}
	fflush(stdout);
	rq_close(q);
	addr_free(&a);
	free(seen);
	return bad || got != total ? EXIT_NO : 0;
}

int
main(int argc, char **argv)
{
	struct sigaction sa;

	die_init(argv[0]);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (argc > 1 && !strcmp(argv[1], "-h")) {
		printf("usage: %s\n", USAGE);
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "work"))
		return work(argc, argv);
	if (argc > 1 && !strcmp(argv[1], "send"))
		return send_jobs(argc, argv);
	die_usage(USAGE);
}
