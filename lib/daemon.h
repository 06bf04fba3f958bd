/* daemon: what every sluice daemon does besides its own job: signals
 * through a signalfd, listening (-l endpoints, else LISTEN_FDS, else
 * standard input), readiness on -d FD (s6) and to $NOTIFY_SOCKET (systemd, READY=1
 * and STOPPING=1), a drain on SIGTERM or SIGINT
 * bounded by a deadline, and the loop, which ends when the daemon says it
 * has nothing left. A daemon is then its options, daemon_run and the
 * handlers that are its own job. */
#ifndef SLUICE_DAEMON_H
#define SLUICE_DAEMON_H

#include <stddef.h>

#include "io.h"

typedef struct daemon_cfg {
	const char **listen;    /* -l endpoints; none: LISTEN_FDS, else "-" */
	size_t nlisten;
	io_opts io;
	int ready_fd;           /* -d FD, or -1 */
	double drain_timeout;   /* seconds from the signal to abandon(); <= 0: none */
} daemon_cfg;
#define DAEMON_CFG_ZERO {0, 0, IO_OPTS_DEFAULT, -1, 0}

typedef struct daemon_ops {
	void (*drain)(void *ud);     /* a SIGTERM/SIGINT came: take nothing new from now on */
	void (*abandon)(void *ud);   /* the drain deadline passed: end what is left */
	int (*done)(void *ud);       /* 1: nothing is left to do; asked before every poll */
	int (*turn)(void *ud);       /* after every poll (NULL: none); 1 when there is more to
				      * do at once (the next poll does not sleep) */
} daemon_ops;

/* Right after the options, before any thread starts or file is opened:
 * the readiness descriptor ready_fd (-d; -1 none) must be open, or it
 * dies with 100 (a descriptor opened later would take its number and be
 * closed by the readiness write); SIGTERM and SIGINT blocked (they reach
 * only the signalfd), SIGPIPE ignored, the descriptor limit raised to the
 * hard limit (many idle clients). */
void daemon_init(int ready_fd);
/* Listens on cfg's endpoints (or LISTEN_FDS, or standard input). Dies with
 * 111 and io's message ("unable to listen on EP: why") when one fails.
 * Returns 1 when standard input is among them. */
int daemon_listen(io_loop *l, const daemon_cfg *cfg);
/* Readiness, then the loop until ops->done(). A second signal exits 111 at
 * once. Returns 0; dies with 111 when poll fails. */
int daemon_run(io_loop *l, const daemon_cfg *cfg, const daemon_ops *ops, void *ud);
/* 1 once a signal asked the running daemon to stop. */
int daemon_draining(void);

#endif
