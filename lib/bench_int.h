/* bench_int: what the load and the figures (bench.c) share with the two
 * clients that speak to a target: bench_native.c (sluice endpoints, msgpack)
 * and bench_openai.c (OpenAI-compatible HTTP, SSE through libcurl). */
#ifndef SLUICE_BENCH_INT_H
#define SLUICE_BENCH_INT_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>

typedef struct bench bench;

enum { BR_WAIT, BR_SENT, BR_DONE, BR_FAILED };

/* One request of a run. Times are seconds since the run started. */
typedef struct bench_req {
	int state;             /* BR_* */
	double due;            /* when the arrival process wanted it sent */
	double sent;           /* when it was sent */
	double first;          /* first token (-1: none yet) */
	double last;           /* the latest chunk */
	double done;           /* final event, or failure */
	uint32_t max_tokens;   /* asked for */
	uint32_t in_tokens;    /* prompt tokens we sent (0: unknown, text) */
	uint64_t out_tokens;   /* tokens counted in chunks */
	int64_t u_prompt, u_completion, u_cached;   /* usage the server gave (-1: none) */
	float *itl;            /* gaps between chunks, seconds; at most max_tokens + ITL_SLACK */
	uint32_t nitl, citl;
	int err;               /* failure code: index into bench's code table */
	void *cl;              /* the client's own (a curl handle) */
} bench_req;

/* Chunks a request may send beyond max_tokens (an empty last chunk, a usage
 * chunk) before the server counts as misbehaving. */
#define ITL_SLACK 16

/* What one request asks for; valid during the client's send call. */
typedef struct bench_prompt {
	const uint32_t *tokens;        /* token ids, or NULL */
	size_t ntok;
	const char *text;              /* text, or NULL */
	size_t ntext;
	const msgpack_object *line;    /* jsonl: the line's map, its other keys passed through */
	uint32_t max_tokens;
} bench_prompt;

typedef struct bench_usage {
	int64_t prompt, completion, cached;    /* -1: not given */
} bench_usage;
#define BENCH_USAGE_NONE {-1, -1, -1}

/* A client of one kind of target. */
typedef struct bench_client {
	/* Connects; -1 with err when the target cannot be reached. */
	int (*open)(bench *b, char *err, size_t errlen);
	/* Sends request i of the current run; -1 when the target is gone
	 * (the core fails it and sends nothing more). */
	int (*send)(bench *b, size_t i, const bench_prompt *p);
	/* Gives up on request i: the core failed it (timeout), or the run
	 * ended while the request still held r->cl. */
	void (*cancel)(bench *b, size_t i);
	/* Waits up to ms for what the target sends and hands it to the core. */
	void (*poll)(bench *b, int ms);
	void (*close)(bench *b);
} bench_client;

extern const bench_client bench_native, bench_openai;

/* What a client reads of the options and the run. */
typedef struct bench_target {
	const char *endpoint;  /* -u */
	const char *url;       /* --openai, without a trailing '/' */
	const char *model;     /* --model */
	const char *api_key;   /* --api-key, or $OPENAI_API_KEY */
	double timeout;        /* --timeout, seconds per request */
	unsigned run;          /* the current run's number, in request ids */
	int verbose;
	void *cl;              /* the client's state */
} bench_target;

bench_target *bench_target_of(bench *b);
/* Request i of the current run (NULL past the last one sent). */
bench_req *bench_req_at(bench *b, size_t i);
/* Request i of the current run while it is in flight, else NULL. */
bench_req *bench_inflight(bench *b, size_t i);
/* Seconds since the current run started (a monotonic clock). */
double bench_now(bench *b);
/* A chunk of ntok tokens arrived now for request i (ntok 0: a chunk of text
 * whose tokens are not counted). */
void bench_chunk(bench *b, size_t i, uint32_t ntok);
/* Request i ended well (finish stop or length). */
void bench_finish(bench *b, size_t i, const bench_usage *u);
/* Request i failed with this code (n bytes, not NUL-terminated). */
void bench_fail(bench *b, size_t i, const char *code, size_t n);
/* The target went away: every request in flight fails with code, and no
 * more are sent in this run. */
void bench_lost(bench *b, const char *code, const char *why);

#endif
