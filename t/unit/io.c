/* Unit tests of lib/io: the loop over a socketpair (whole messages, a
 * message cut by the peer's hang-up, a broken stream) and its timers.
 * Endpoint parsing is tested in t/unit/addr.c. */
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io.h"
#include "tap.h"

/* ---- the loop over a socketpair ------------------------------------------- */

typedef struct seen {
	int msgs, bad, closed, eof;
	char why[128];
} seen;

static void
on_msg(io_loop *l, io_conn *c, const msg *m, void *ud)
{
	(void)l, (void)m;
	((seen *)ud)->msgs++;
	io_send(c, m->raw, m->len);   /* echo */
}

static void
on_bad(io_loop *l, io_conn *c, const char *why, void *ud)
{
	(void)l, (void)c, (void)why;
	((seen *)ud)->bad++;
}

static void
on_close(io_loop *l, io_conn *c, const char *why, void *ud)
{
	seen *s = ud;

	(void)l, (void)c;
	s->closed++;
	snprintf(s->why, sizeof s->why, "%s", why ? why : "");
}

static io_loop *
pair_loop(seen *s, int *peer)
{
	static const io_handler h = {0, on_msg, on_bad, on_close, 0, 0};
	char ep[32], err[256];
	io_loop *l = io_loop_new(&h, s);
	int sv[2];

	memset(s, 0, sizeof *s);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return NULL;
	snprintf(ep, sizeof ep, "fd:%d", sv[0]);
	if (io_loop_listen(l, ep, NULL, err, sizeof err) < 0)
		printf("# %s\n", err);
	*peer = sv[1];
	return l;
}

static void
spin(io_loop *l, int n)
{
	while (n-- > 0)
		io_loop_run_once(l, 50);
}

static void
test_loop(void)
{
	/* {"id":"a"} {"id":"b"} as bytes; then half of a third */
	static const char two[] = "\x81\xa2id\xa1" "a" "\x81\xa2id\xa1" "b";
	char back[64];
	seen s;
	io_loop *l;
	ssize_t n;
	int peer;

	l = pair_loop(&s, &peer);
	ok(l && io_loop_nconns(l) == 1, "a connected fd is one connection");
	ok(write(peer, two, sizeof two - 1) == (ssize_t)sizeof two - 1, "peer writes two messages");
	spin(l, 2);
	ok(s.msgs == 2, "two messages decoded");
	n = read(peer, back, sizeof back);
	ok(n == (ssize_t)sizeof two - 1 && !memcmp(back, two, sizeof two - 1), "echoed byte for byte");
	ok(write(peer, "\x81\xa2i", 3) == 3, "peer writes half a message");
	close(peer);
	spin(l, 3);
	ok(s.closed == 1 && !strcmp(s.why, "connection closed in the middle of a message"),
	   "hang-up mid-message: %s", s.why);
	ok(io_loop_nconns(l) == 0, "connection freed");
	io_loop_free(l);

	l = pair_loop(&s, &peer);
	ok(write(peer, "\x81\xa2id\xc1", 5) == 5, "peer writes a never-used byte");
	spin(l, 2);
	ok(s.closed == 1 && *s.why, "broken stream ends the connection: %s", s.why);
	close(peer);
	io_loop_free(l);

	l = pair_loop(&s, &peer);
	ok(write(peer, two, sizeof two - 1) == (ssize_t)sizeof two - 1, "two more");
	shutdown(peer, SHUT_WR);
	spin(l, 3);
	n = read(peer, back, sizeof back);
	ok(n == (ssize_t)sizeof two - 1, "answers arrive after the peer half-closed");
	ok(read(peer, back, sizeof back) == 0, "then EOF");
	ok(s.closed == 1 && !*s.why, "clean close");
	close(peer);
	io_loop_free(l);
}

/* Several live connections with queued output: io_loop_free frees them all
 * (the asan build's leak check is the real assertion). */
static void
test_free(void)
{
	static const io_handler h = {0};
	char ep[32], err[256];
	io_loop *l = io_loop_new(&h, NULL);
	int sv[2], i, peers[3], opened = 0;
	io_conn *c;

	for (i = 0; i < 3; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
			break;
		snprintf(ep, sizeof ep, "fd:%d", sv[0]);
		c = io_loop_dial(l, ep, NULL, err, sizeof err);
		opened += c && io_send(c, "\x80", 1) == 0;
		peers[i] = sv[1];
	}
	ok(opened == 3 && io_loop_nconns(l) == 3, "three connections with output queued");
	io_loop_free(l);
	ok(read(peers[0], err, 1) == 1 && read(peers[0], err, 1) == 0, "freeing flushed and closed them");
	for (i = 0; i < 3; i++)
		close(peers[i]);
}

/* ---- timers ---- */

static int fired[400], nfired;

static void
on_timer(io_loop *l, io_timer *t, void *ud)
{
	(void)l;
	(void)t;
	fired[nfired++] = (int)(long)ud;
}

static void
test_timers(void)
{
	static const io_handler h = {0};
	io_loop *l = io_loop_new(&h, NULL);
	io_timer t[400];
	double t0 = io_now(), took;
	int i, inorder = 1, stopped = 0;
	unsigned x = 12345;

	/* 400 timers at scattered times within 60 ms, every 7th stopped, every
	 * 11th moved to the front: each left fires once, in time order */
	for (i = 0; i < 400; i++) {
		x = x * 1103515245 + 12345;
		t[i] = (io_timer)IO_TIMER_ZERO;
		t[i].cb = on_timer;
		t[i].ud = (void *)(long)i;
		io_timer_at(l, &t[i], t0 + 0.010 + (x >> 16) % 50 / 1000.0);
	}
	for (i = 0; i < 400; i += 7) {
		io_timer_stop(l, &t[i]);
		stopped++;
	}
	for (i = 0; i < 400; i += 11)
		if (io_timer_is_set(&t[i]))
			io_timer_at(l, &t[i], t0 + 0.005);
	ok(!io_timer_is_set(&t[7]) && io_timer_is_set(&t[8]), "stop unsets, set stays set");
	while (nfired < 400 - stopped && io_now() - t0 < 2)
		if (io_loop_run_once(l, -1) < 0)
			break;
	took = io_now() - t0;
	for (i = 1; i < nfired; i++)
		if (t[fired[i - 1]].at > t[fired[i]].at)
			inorder = 0;
	ok(nfired == 400 - stopped, "every timer left fired once (%d of %d)", nfired, 400 - stopped);
	ok(inorder, "in time order");
	ok(took >= 0.055 && took < 0.5, "the loop slept until they were due, not longer (%.3f s)", took);
	for (i = 0; i < nfired; i++)
		if (fired[i] % 7 == 0)
			inorder = -1;
	ok(inorder == 1, "no stopped timer fired");
	ok(io_loop_run_once(l, 0) == 0 && nfired == 400 - stopped, "nothing fires twice");
	io_loop_free(l);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_loop();
	test_free();
	test_timers();
	return done_testing();
}
