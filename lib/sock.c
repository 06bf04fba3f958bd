/* sock: Unix and TCP sockets for the loop (sock.h): listening (a stale
 * unix socket file replaced only when nothing answers on it, the file's
 * mode set around bind), dialling, and the descriptor flags the loop sets.
 * Every error reads "unable to <verb> EP: why". */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "die.h"
#include "sock.h"

/* ---- descriptors ---------------------------------------------------------- */

int
sock_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -1;
	fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	return fcntl(fd, F_SETFL, fl);
}

void
sock_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl >= 0)
		fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

int
sock_is_socket(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

int
sock_is_pipe_or_socket(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && (S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode));
}

void
sock_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---- listening -------------------------------------------------------------- */

/* A unix stream socket, and *sa set to path's address. */
static int
unix_socket(struct sockaddr_un *sa, const char *path, char *err, size_t errlen)
{
	int fd;

	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	snprintf(sa->sun_path, sizeof sa->sun_path, "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		seterr(err, errlen, "unable to create socket: %s", strerror(errno));
	return fd;
}

static int
bind_mode(int fd, const struct sockaddr_un *sa, mode_t mode)
{
	mode_t old = umask(~mode & 0777);
	int r = bind(fd, (const struct sockaddr *)sa, sizeof *sa);

	umask(old);
	return r;
}

/* PATH is taken: remove it only if it is a socket nobody answers on. */
static int
unix_stale(const struct sockaddr_un *sa, const char *ep, char *err, size_t errlen)
{
	struct stat st;
	int fd, r;

	if (lstat(sa->sun_path, &st) < 0) {
		seterr(err, errlen, "unable to listen on %s: %s", ep, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		seterr(err, errlen, "unable to listen on %s: %s exists and is not a socket", ep, sa->sun_path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		seterr(err, errlen, "unable to create socket: %s", strerror(errno));
		return -1;
	}
	r = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
	close(fd);
	if (r == 0) {
		seterr(err, errlen, "unable to listen on %s: address in use (a live socket answers there)", ep);
		return -1;
	}
	if (errno != ECONNREFUSED) {
		seterr(err, errlen, "unable to listen on %s: %s", ep, strerror(errno));
		return -1;
	}
	if (unlink(sa->sun_path) < 0 && errno != ENOENT) {
		seterr(err, errlen, "unable to remove stale socket %s: %s", sa->sun_path, strerror(errno));
		return -1;
	}
	return 0;
}


static int
resolve(const addr *a, int passive, struct addrinfo **res, const char *ep,
	char *err, size_t errlen)
{
	struct addrinfo hints = {0};
	const char *host = a->host;
	int r;

	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = passive ? AI_PASSIVE : 0;
	if (passive && !strcmp(host, "*"))
		host = NULL;
	r = getaddrinfo(host, a->port, &hints, res);
	if (r) {
		seterr(err, errlen, "unable to resolve %s: %s", ep, gai_strerror(r));
		return -1;
	}
	return 0;
}

int
sock_listen_unix(const char *path, mode_t mode, int backlog, const char *ep, struct stat *st,
		 char *err, size_t errlen)
{
	struct sockaddr_un sa;
	int fd;

	fd = unix_socket(&sa, path, err, errlen);
	if (fd < 0)
		return -1;
	if (bind_mode(fd, &sa, mode) < 0) {
		if (errno != EADDRINUSE) {
			seterr(err, errlen, "unable to listen on %s: %s", ep, strerror(errno));
			goto fail;
		}
		if (unix_stale(&sa, ep, err, errlen) < 0)
			goto fail;
		if (bind_mode(fd, &sa, mode) < 0) {
			seterr(err, errlen, "unable to listen on %s: %s", ep, strerror(errno));
			goto fail;
		}
	}
	if (chmod(path, mode) < 0 || listen(fd, backlog) < 0 || stat(path, st) < 0) {
		seterr(err, errlen, "unable to listen on %s: %s", ep, strerror(errno));
		unlink(path);
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

int
sock_listen_tcp(const addr *a, int backlog, const char *ep, char *err, size_t errlen)
{
	struct addrinfo *res, *ai;
	int fd = -1, one = 1, e = 0;

	if (resolve(a, 1, &res, ep, err, errlen) < 0)
		return -1;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		seterr(err, errlen, "unable to listen on %s: %s", ep, strerror(e ? e : EADDRNOTAVAIL));
		return -1;
	}
	return fd;
}

/* ---- dialling --------------------------------------------------------------- */

int
sock_dial_unix(const char *path, const char *ep, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	int fd;

	fd = unix_socket(&sa, path, err, errlen);
	if (fd < 0)
		return -1;
	while (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		if (errno == EINTR)
			continue;
		seterr(err, errlen, "unable to connect to %s: %s", ep, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int
sock_dial_tcp(const addr *a, const char *ep, char *err, size_t errlen)
{
	struct addrinfo *res, *ai;
	int fd = -1, e = 0;

	if (resolve(a, 0, &res, ep, err, errlen) < 0)
		return -1;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		e = errno;
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		seterr(err, errlen, "unable to connect to %s: %s", ep, strerror(e ? e : EHOSTUNREACH));
	else
		sock_nodelay(fd);
	return fd;
}
