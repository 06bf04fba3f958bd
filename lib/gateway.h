/* gateway: the OpenAI-compatible HTTP front of a sluice topology (see
 * gateway(1)). HTTP and JSON on one side (libmicrohttpd, jansson), sluice
 * requests and events on the other (one connection upstream, usually to
 * batchd), the model's tokenizer in between. */
#ifndef SLUICE_GATEWAY_H
#define SLUICE_GATEWAY_H

#include <stddef.h>

typedef struct gateway_opts {
	const char *upstream;       /* -u ENDPOINT */
	const char *listen;         /* -l tcp:HOST:PORT or fd:N */
	const char *model;          /* -m MODEL: the tokenizer and the name */
	const char *name;           /* --served-model-name; NULL: the file's base name */
	const char *key_file;       /* --api-key-file */
	int insecure;               /* serve a public address without a key */
	size_t max_body;            /* --max-body bytes */
	unsigned max_conns;         /* --max-connections */
	unsigned max_per_ip;        /* --max-connections-per-ip; 0: no limit */
	double timeout;             /* --timeout: a request's deadline, seconds; 0: none */
	unsigned idle_timeout;      /* --idle-timeout seconds */
	double drain_timeout;       /* --drain-timeout seconds */
	int ready_fd;               /* -d FD */
	int quiet;                  /* -q */
} gateway_opts;
#define GATEWAY_OPTS_DEFAULT {0, "tcp:127.0.0.1:8000", 0, 0, 0, 0, 1u << 20, 1024, 0, 0, 30, 30, -1, 0}

/* Runs the gateway until SIGTERM and the drain; returns the exit status. */
int gateway_main(const gateway_opts *o);

#endif
