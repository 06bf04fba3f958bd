/* io: endpoints (-, unix:PATH, tcp:HOST:PORT, fd:N, redis://HOST:PORT/STREAM)
 * carrying plain sequences of msgpack messages, for listening (-l) and
 * connecting (-u), with a poll loop that daemons drive between their steps. */
#ifndef SLUICE_IO_H
#define SLUICE_IO_H

#include <stddef.h>
#include <sys/types.h>

#include "msg.h"

typedef struct io_opts {
	mode_t mode;           /* unix socket file mode, default 0660 (-m) */
	int backlog;           /* listen backlog, default 128 */
	const msg_limits *lim; /* NULL: msg_limits_default */
} io_opts;
#define IO_OPTS_DEFAULT {0660, 128, 0}

typedef struct io_conn io_conn;
typedef struct io_loop io_loop;

/* What a loop tells its owner. Any callback may be NULL. The msg passed to
 * on_msg is valid only during the call. */
typedef struct io_handler {
	void (*on_open)(io_loop *l, io_conn *c, void *ud);                    /* accepted or dialled */
	void (*on_msg)(io_loop *l, io_conn *c, const msg *m, void *ud);
	void (*on_bad)(io_loop *l, io_conn *c, const char *why, void *ud);    /* one message rejected */
	void (*on_close)(io_loop *l, io_conn *c, const char *why, void *ud);  /* why NULL: clean EOF */
	/* The peer sent its last message (clean EOF). The connection stays open
	 * for io_send until the owner calls io_shutdown (or io_close); on_close
	 * follows once both sides are done. When on_eof is NULL the loop calls
	 * io_shutdown itself: what is queued is written, then on_close(NULL). */
	void (*on_eof)(io_loop *l, io_conn *c, void *ud);
	/* Nothing more can be read from c: its framing is lost, it ended or was
	 * cut inside a message, it looks like text, or it broke a limit of
	 * io_limits (why says which). The messages read before it were handed
	 * over whole; the unfinished rest is dropped and its memory freed; then
	 * on_eof follows as for a clean end, so what c asked for can still be
	 * answered. When on_broken is NULL the connection just ends with
	 * on_close(why). */
	void (*on_broken)(io_loop *l, io_conn *c, const char *why, void *ud);
} io_handler;

/* Limits of one loop over all its connections; zero fields mean no limit.
 * The stdio connection ("-", a pipeline's own producer) is exempt from the
 * read timeout and the unfinished-input budget. */
typedef struct io_limits {
	size_t max_conns;          /* connections at once; past it an accepted one is told
				    * "overloaded" and closed (--max-connections) */
	unsigned read_timeout_ms;  /* a connection holding part of a message this long without
				    * finishing it is cut (--read-timeout) */
	size_t max_partial;        /* bytes of unfinished messages held across connections;
				    * the one that goes past it is cut (--max-partial) */
	size_t high_water;         /* queued output above which a peer is not read and counts
				    * as backlogged (io_conn_backlog); 0: 4 MiB */
} io_limits;
#define IO_LIMITS_ZERO {0, 0, 0, 0}
/* Lifecycle: on_close is called once per connection the loop finished (not
 * for io_close), from io_loop_run_once; the io_conn is freed when it returns.
 * Callbacks must not call io_loop_run_once. */

io_loop *io_loop_new(const io_handler *h, void *ud);
void io_loop_set_limits(io_loop *l, const io_limits *lim);
void io_loop_free(io_loop *l);            /* closes every connection and listener */
/* Listen on ep: unix and tcp sockets (a stale unix socket file is replaced
 * only if nothing answers on it), fd:N (a listening socket, or a connected
 * one taken as a single connection), "-" (stdin/stdout as one connection),
 * redis (a consumer-group worker: one connection whose answers are acked).
 * LISTEN_FDS (systemd) is honoured by io_listen_inherited. 0 ok, -1 err. */
int io_loop_listen(io_loop *l, const char *ep, const io_opts *o, char *err, size_t errlen);
/* Adds the sockets passed by systemd's LISTEN_FDS/LISTEN_PID; returns how many. */
int io_loop_listen_inherited(io_loop *l, const io_opts *o);
/* Connects to ep (-u) and adds it to the loop; NULL with err on failure. */
io_conn *io_loop_dial(io_loop *l, const char *ep, const io_opts *o, char *err, size_t errlen);
/* Watch an extra descriptor (signalfd, timerfd, a pipe) in the same poll. */
int io_loop_watch(io_loop *l, int fd, short events,
		  void (*cb)(io_loop *l, int fd, short revents, void *ud), void *ud);
void io_loop_unwatch(io_loop *l, int fd);
/* Timers: the loop wakes for them and calls cb once when the time comes
 * (from io_loop_run_once, after the descriptors). The io_timer belongs to
 * the caller (embed it in what it times) and must stay put while set;
 * setting a set timer moves it. Times are in seconds on the monotonic clock. */
typedef struct io_timer io_timer;
struct io_timer {
	double at;              /* when (io_now() seconds) */
	size_t idx;             /* its place in the loop's heap; (size_t)-1 when not set */
	void (*cb)(io_loop *l, io_timer *t, void *ud);
	void *ud;
};
#define IO_TIMER_ZERO {0, (size_t)-1, 0, 0}
double io_now(void);                                          /* monotonic seconds */
void io_timer_at(io_loop *l, io_timer *t, double at);          /* (re)arms t for io_now() time at */
void io_timer_after(io_loop *l, io_timer *t, double seconds);  /* io_now() + seconds */
void io_timer_stop(io_loop *l, io_timer *t);                   /* no-op when not set */
int io_timer_is_set(const io_timer *t);

/* Polls once (timeout_ms -1: wait, 0: don't) and dispatches; flushes queued
 * output before it sleeps. Returns the number of events handled, -1 on error. */
int io_loop_run_once(io_loop *l, int timeout_ms);
/* Closes every listener (a unix socket's file is removed): no new
 * connection is taken; those open stay. Callbacks may call it. */
void io_loop_unlisten(io_loop *l);
/* Number of open connections (listeners not counted). */
size_t io_loop_nconns(const io_loop *l);
/* Write a newline to fd and close it: s6 readiness (-d FD). */
void io_ready(int fd);

/* ---- one connection ------------------------------------------------------ */

/* Queues one whole message (its msgpack bytes); written before the loop
 * sleeps, or at once when much is queued. On a Redis worker connection, an
 * event carrying "finish" answers its request: the answer is added to the
 * reply stream and the entry acked in one atomic step. 0 ok, -1 closed. */
int io_send(io_conn *c, const void *bytes, size_t n);
/* Writes everything queued; blocks only on a blocking connection. 0 ok, -1 error. */
int io_flush(io_conn *c);
/* Stop writing: half-close (shutdown SHUT_WR) once the queue is flushed. */
void io_shutdown(io_conn *c);
/* Removes c from its loop and frees it (inside a callback: once it returns);
 * what is queued is written only as far as the peer takes it at once. */
void io_close(io_conn *c);
/* Blocking: io_flush waits (poll) until everything queued is written. */
void io_conn_set_blocking(io_conn *c, int on);
void io_conn_set_data(io_conn *c, void *p);
void *io_conn_data(const io_conn *c);
const char *io_conn_name(const io_conn *c);   /* for logs: "unix:/run/x.sock#3" */
size_t io_conn_queued(const io_conn *c);      /* bytes waiting to be written (backpressure) */
/* Seconds the output queue has been above the high-water mark without once
 * falling below it; -1 when it is not above. */
double io_conn_backlog(const io_conn *c);
/* Paused: no message of c is handed over (nor more read) until unpaused;
 * what is buffered waits. How a pipeline's producer is made to wait. */
void io_conn_pause(io_conn *c, int on);
int io_conn_is_stdio(const io_conn *c);
/* A Redis producer connection: its stream's queue (rq_backlog); 0 for any
 * other connection, or when nothing is known yet. */
int io_conn_backlog_redis(const io_conn *c, long long *lag, long long *pending);

#endif
