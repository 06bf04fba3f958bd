/* metrics: what sluice's event streams and its daemons' stats answers say,
 * kept as vLLM's metrics (prefix "sluice:") and served as Prometheus text
 * over HTTP, or summed up in a table at the end of a run (see metrics(1)). */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "msg.h"

typedef struct metrics metrics;

typedef struct metrics_opts {
	double interval;       /* seconds between stats queries to each -u daemon */
	int summary;           /* -s: a summary table on stdout when the input ends */
	int ready_fd;          /* -d: readiness descriptor, -1 none */
} metrics_opts;
#define METRICS_OPTS_DEFAULT {1.0, 0, -1}

/* Blocks SIGTERM and SIGINT (they are read from a signalfd by metrics_run). */
metrics *metrics_new(const metrics_opts *o);
void metrics_free(metrics *m);
/* -i: an event stream to read ("-", fd:N of a pipe or connected socket) or
 * a socket to accept event streams on (unix:PATH, tcp:HOST:PORT, fd:N of a
 * listening socket). 0 ok, -1 with err ("unable to listen on EP: why"). */
int metrics_input(metrics *m, const char *ep, char *err, size_t errlen);
/* -u: a daemon to ask for its stats every interval (connected, and
 * reconnected while it is down, by metrics_run). */
void metrics_upstream(metrics *m, const char *ep);
/* -l: serve GET /metrics over HTTP on tcp:HOST:PORT or fd:N (a listening
 * socket). 0 ok, -1 with err. */
int metrics_listen(metrics *m, const char *ep, char *err, size_t errlen);
/* Runs until SIGTERM or SIGINT, or, when nothing is served (no -l), until
 * every input stream has ended. Returns the exit status: 0, or 111 when the
 * run ended with a broken stdin stream. */
int metrics_run(metrics *m);

/* ---- the parts, for tests and other programs ---------------------------- */

/* Counts one message of an event stream. stream tells the streams apart
 * (ids are unique per stream; a number never given to another stream), mono
 * is its arrival time (CLOCK_MONOTONIC seconds). */
void metrics_event(metrics *m, uint64_t stream, const msg *ev, double mono);
/* The Prometheus text format 0.0.4, malloc'd (*len its length). */
char *metrics_render(metrics *m, size_t *len);
/* The summary table (-s). */
void metrics_summary(metrics *m, FILE *f);

#endif
