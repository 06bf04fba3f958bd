/* httpd: libmicrohttpd inside an io_loop, for the daemons that serve HTTP
 * (metrics, gateway): a listening socket from an endpoint (tcp:HOST:PORT
 * or fd:N), the library in its external-epoll mode with its one epoll
 * descriptor watched by the loop, its timeouts on an io timer, and its log
 * lines in sluice's voice. One thread: no lock is ever taken. */
#ifndef SLUICE_HTTPD_H
#define SLUICE_HTTPD_H

#include <stddef.h>
#include <microhttpd.h>

#include "io.h"

typedef struct httpd {
	io_loop *loop;
	struct MHD_Daemon *d;   /* NULL until started */
	int fd;                 /* the listening socket, -1 */
	io_timer timer;         /* the library's next timeout */
} httpd;
#define HTTPD_ZERO {0, 0, -1, IO_TIMER_ZERO}

/* The listening socket ep names (tcp:HOST:PORT, port 0 taking a free one;
 * or fd:N, which must be a listening socket already): -1 with err. */
int httpd_listen(const char *ep, char *err, size_t errlen);
/* Listens on ep (tcp:HOST:PORT, port 0 taking a free one; or fd:N, a
 * listening socket) and starts the library on it with flags (MHD_USE_EPOLL
 * and MHD_USE_ERROR_LOG are added), cb and cls, and the options opts (an
 * MHD_OPTION_END-terminated array; NULL: none). 0 ok; -1 with err
 * ("unable to listen on EP: why"). */
int httpd_start(httpd *h, io_loop *l, const char *ep, unsigned flags, MHD_AccessHandlerCallback cb,
		void *cls, const struct MHD_OptionItem *opts, char *err, size_t errlen);
/* Runs what the library has to do now and sets the timer for its next
 * timeout; the loop calls it when its descriptor or its timer fires, and
 * the owner after resuming a connection. */
void httpd_run(httpd *h);
/* Stops the library (every connection closed) and closes the socket. */
void httpd_stop(httpd *h);

#endif
