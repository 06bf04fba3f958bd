/* cat: `sluice cat`, msgpack streams for people: msgpack <-> JSON lines,
 * and a client that sends a stream to an endpoint and prints the answers. */
#ifndef SLUICE_CAT_H
#define SLUICE_CAT_H

#include "stream.h"

typedef struct cat_opts {
	int in;                 /* STREAM_JSON, STREAM_MSGPACK; STREAM_AUTO: from the first byte */
	int out;                /* the same; AUTO: the other kind (a client: the kind given) */
	const char *ep;         /* -u: the endpoint to send to (checked); NULL: convert */
	unsigned long timeout_ms;   /* -t: exit 99 after this long; 0: never */
} cat_opts;
#define CAT_OPTS_DEFAULT {STREAM_AUTO, STREAM_AUTO, 0, 0}

/* Runs `sluice cat` from stdin to stdout: returns the exit status (0 ok,
 * 1 something was skipped or left unanswered, 111 the connection failed);
 * dies 111 when the framing is lost or on an I/O failure, 99 when -t runs
 * out. */
int cat_run(const cat_opts *o);

#endif
