/* sock: Unix and TCP stream sockets, listened on and dialled, and the
 * descriptor flags a poll loop needs (anet.c beside Redis's ae.c). Every
 * function returns a descriptor or -1 with err filled. */
#ifndef SLUICE_SOCK_H
#define SLUICE_SOCK_H

#include <stddef.h>
#include <sys/stat.h>

#include "addr.h"

/* A listening unix socket at path with file mode mode; a socket file there
 * is replaced only if connect() to it is refused (stale); *st is the new
 * file's (the owner removes it at the end only if it is still the same). */
int sock_listen_unix(const char *path, mode_t mode, int backlog, const char *ep, struct stat *st,
		     char *err, size_t errlen);
/* A listening TCP socket on a->host (* for every address):a->port, SO_REUSEADDR. */
int sock_listen_tcp(const addr *a, int backlog, const char *ep, char *err, size_t errlen);
/* Connected, blocking sockets; TCP with TCP_NODELAY. */
int sock_dial_unix(const char *path, const char *ep, char *err, size_t errlen);
int sock_dial_tcp(const addr *a, const char *ep, char *err, size_t errlen);

int sock_nonblock(int fd, int on);          /* O_NONBLOCK on or off; -1 on error */
void sock_cloexec(int fd);
void sock_nodelay(int fd);                  /* TCP_NODELAY */
int sock_is_socket(int fd);
int sock_is_pipe_or_socket(int fd);

#endif
