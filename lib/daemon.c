/* daemon: signals, listening, readiness, drain and the loop of every
 * sluice daemon (see daemon.h). */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "die.h"

static sigset_t stop_set;
static int draining;

typedef struct run {
	const daemon_cfg *cfg;
	const daemon_ops *ops;
	void *ud;
	io_timer deadline;
} run;

void
daemon_init(int ready_fd)
{
	struct rlimit rl;

	if (ready_fd >= 0 && fcntl(ready_fd, F_GETFD) < 0)
		die_x(EXIT_USAGE, "-d %d: not an open descriptor", ready_fd);
	sigemptyset(&stop_set);
	sigaddset(&stop_set, SIGTERM);
	sigaddset(&stop_set, SIGINT);
	sigprocmask(SIG_BLOCK, &stop_set, 0);
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
daemon_listen(io_loop *l, const daemon_cfg *cfg)
{
	char err[512];
	int stdio = 0;

	if (cfg->nlisten == 0) {
		if (io_loop_listen_inherited(l, &cfg->io) > 0)
			return 0;
		if (io_loop_listen(l, "-", &cfg->io, err, sizeof err) < 0)
			die_x(EXIT_SYS, "%s", err);
		return 1;
	}
	for (size_t i = 0; i < cfg->nlisten; i++) {
		if (!strcmp(cfg->listen[i], "-"))
			stdio = 1;
		if (io_loop_listen(l, cfg->listen[i], &cfg->io, err, sizeof err) < 0)
			die_x(EXIT_SYS, "%s", err);   /* io says "unable to listen on EP: why" */
	}
	return stdio;
}

/* systemd's readiness protocol (sd_notify(3), Type=notify): one datagram
 * with STATE to the socket $NOTIFY_SOCKET names (a path, or @ for the
 * abstract namespace). Nothing when the variable is unset; a failure is no
 * fault of the daemon's, so it is ignored. */
static void
notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@') || (n = strlen(path)) >= sizeof sa.sun_path)
		return;
	memcpy(sa.sun_path, path, n);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = 0;
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	(void)!sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
		      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
	close(fd);
}

int
daemon_draining(void)
{
	return draining;
}

static void
on_deadline(io_loop *l, io_timer *t, void *ud)
{
	run *r = ud;

	(void)l;
	(void)t;
	if (r->ops->abandon)
		r->ops->abandon(r->ud);
}

static void
on_signal(io_loop *l, int fd, short revents, void *ud)
{
	run *r = ud;
	struct signalfd_siginfo si;

	(void)revents;
	if (read(fd, &si, sizeof si) != (ssize_t)sizeof si)
		return;
	if (draining)
		_exit(EXIT_SYS);    /* a second signal: give up at once */
	draining = 1;
	notify("STOPPING=1");
	if (r->ops->drain)
		r->ops->drain(r->ud);
	if (r->cfg->drain_timeout > 0)
		io_timer_after(l, &r->deadline, r->cfg->drain_timeout);
}

int
daemon_run(io_loop *l, const daemon_cfg *cfg, const daemon_ops *ops, void *ud)
{
	run r = { cfg, ops, ud, IO_TIMER_ZERO };
	int sfd, more = 0;

	r.deadline.cb = on_deadline;
	r.deadline.ud = &r;
	sfd = signalfd(-1, &stop_set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		die_sys("unable to create a signalfd");
	io_loop_watch(l, sfd, POLLIN, on_signal, &r);
	if (cfg->ready_fd >= 0)
		io_ready(cfg->ready_fd);
	notify("READY=1");
	while (!ops->done(ud)) {
		if (io_loop_run_once(l, more ? 0 : -1) < 0)
			die_sys("unable to poll");
		more = ops->turn ? ops->turn(ud) : 0;
	}
	io_timer_stop(l, &r.deadline);
	io_loop_unwatch(l, sfd);
	close(sfd);
	return 0;
}
