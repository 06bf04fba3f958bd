/* addr: endpoint strings, parsed: -, unix:PATH, tcp:HOST:PORT, fd:N,
 * redis://HOST[:PORT]/STREAM[?group=G&consumer=C&reply=K&claim=MS&dead=N&prefetch=N].
 * The loop (io) listens and dials by them, Redis streams (rq) open by them. */
#ifndef SLUICE_ADDR_H
#define SLUICE_ADDR_H

#include <stddef.h>

typedef enum { ADDR_STDIO, ADDR_UNIX, ADDR_TCP, ADDR_FD, ADDR_REDIS } addr_kind;

/* A parsed endpoint string. */
typedef struct addr {
	addr_kind kind;
	char *path;            /* unix */
	char *host, *port;     /* tcp, redis */
	int fd;                /* fd */
	char *stream;          /* redis: the stream key */
	char *group;           /* redis ?group=  (default "sluice") */
	char *consumer;        /* redis ?consumer= (NULL: rq uses HOST:PID, new each run) */
	char *reply;           /* redis ?reply= a producer's answer stream (NULL: rq uses STREAM:reply:HOST:PID) */
	unsigned claim_ms;     /* redis ?claim=  idle ms before a pending entry is reclaimed (30000) */
	unsigned max_deliver;  /* redis ?dead=   deliveries before STREAM:dead (5) */
	unsigned prefetch;     /* redis ?prefetch= entries a worker holds at once (64) */
} addr;
#define ADDR_ZERO {ADDR_STDIO, 0, 0, 0, -1, 0, 0, 0, 0, 0, 0, 0}

/* 0 ok, -1 with err filled ("unknown endpoint scheme ..."). */
int addr_parse(const char *ep, addr *a, char *err, size_t errlen);
void addr_free(addr *a);
/* s[0..n) as a number of 1 to 10 decimal digits, no sign, at most max:
 * 0 ok (*v set), -1 not one. */
int addr_parse_uint(const char *s, size_t n, unsigned long max, unsigned long *v);

#endif
