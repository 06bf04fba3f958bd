/* httpd: libmicrohttpd inside an io_loop (see httpd.h). */
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "die.h"
#include "httpd.h"
#include "sock.h"

static void
http_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof line, fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = 0;
	info_x("http: %s", line);
}

void
httpd_run(httpd *h)
{
	MHD_UNSIGNED_LONG_LONG ms;

	if (!h->d)
		return;
	MHD_run(h->d);
	if (MHD_get_timeout(h->d, &ms) == MHD_YES)
		io_timer_after(h->loop, &h->timer, ms / 1000.0);
	else
		io_timer_stop(h->loop, &h->timer);
}

static void
on_fd(io_loop *l, int fd, short revents, void *ud)
{
	(void)l;
	(void)fd;
	(void)revents;
	httpd_run(ud);
}

static void
on_timer(io_loop *l, io_timer *t, void *ud)
{
	(void)l;
	(void)t;
	httpd_run(ud);
}

int
httpd_listen(const char *ep, char *err, size_t errlen)
{
	addr a = ADDR_ZERO;
	size_t n = strlen(ep);
	int fd = -1;

	if (!strncmp(ep, "tcp:", 4) && n > 6 && !strcmp(ep + n - 2, ":0")) {
		/* port 0: the kernel picks one; endpoints elsewhere refuse it,
		 * as a -u to port 0 means nothing */
		char *any = xstrdup(ep);
		any[n - 1] = '1';
		if (addr_parse(any, &a, err, errlen) < 0) {
			free(any);
			return -1;
		}
		free(any);
		free(a.port);
		a.port = xstrdup("0");
	} else if (addr_parse(ep, &a, err, errlen) < 0) {
		return -1;
	}
	if (a.kind == ADDR_FD) {
		int acc = 0;
		socklen_t sl = sizeof acc;

		if (getsockopt(a.fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &sl) < 0 || !acc)
			seterr(err, errlen, "not a listening socket");
		else
			fd = a.fd;
	} else if (a.kind == ADDR_TCP) {
		fd = sock_listen_tcp(&a, 512, ep, err, errlen);
	} else {
		seterr(err, errlen, "HTTP is served on tcp:HOST:PORT or fd:N");
	}
	addr_free(&a);
	return fd;
}

int
httpd_start(httpd *h, io_loop *l, const char *ep, unsigned flags, MHD_AccessHandlerCallback cb, void *cls,
	    const struct MHD_OptionItem *opts, char *err, size_t errlen)
{
	static const struct MHD_OptionItem none[] = { { MHD_OPTION_END, 0, NULL } };
	const union MHD_DaemonInfo *di;
	char why[400];

	h->loop = l;
	h->timer = (io_timer)IO_TIMER_ZERO;
	h->timer.cb = on_timer;
	h->timer.ud = h;
	if ((h->fd = httpd_listen(ep, why, sizeof why)) < 0)
		goto fail;
	h->d = MHD_start_daemon(flags | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, cb, cls,
				MHD_OPTION_EXTERNAL_LOGGER, http_log, NULL,   /* first: it then hears the rest */
				MHD_OPTION_LISTEN_SOCKET, h->fd,
				MHD_OPTION_ARRAY, opts ? opts : none,
				MHD_OPTION_END);
	if (!h->d) {
		snprintf(why, sizeof why, "libmicrohttpd would not start");
		goto fail;
	}
	di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (!di || di->epoll_fd < 0) {
		snprintf(why, sizeof why, "libmicrohttpd has no epoll descriptor");
		goto fail;
	}
	io_loop_watch(l, di->epoll_fd, POLLIN, on_fd, h);
	return 0;
fail:
	/* addr and sock say "unable to listen on EP: ..." themselves */
	if (!strncmp(why, "unable to ", 10))
		seterr(err, errlen, "%s", why);
	else
		seterr(err, errlen, "unable to listen on %s: %s", ep, why);
	httpd_stop(h);
	return -1;
}

void
httpd_stop(httpd *h)
{
	if (h->loop)
		io_timer_stop(h->loop, &h->timer);
	if (h->d) {
		const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
		if (di && h->loop)
			io_loop_unwatch(h->loop, di->epoll_fd);
		MHD_stop_daemon(h->d);
		h->d = 0;
	}
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
}
