/* engine: the sluice engine as a library: parsed requests in, continuous
 * batching through lib/scheduler, a backend's forward pass, sampling, stop
 * strings, and events out through a callback as msgpack bytes. It keeps
 * the requests in flight by (owner, id) and counts what the stats query
 * answers; the caller owns the connections (an owner is opaque here),
 * admission and flow control (lib/infer.c, the daemon around it). */
#ifndef SLUICE_ENGINE_H
#define SLUICE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "io.h"
#include "kv.h"
#include "model.h"
#include "msg.h"
#include "stats.h"
#include "tokenize.h"

typedef struct engine engine;

typedef struct engine_opts {
	uint32_t ctx;               /* tokens of one sequence; 0: the model's, at most 8192 */
	uint64_t kv_mem;            /* bytes of KV cache; 0: 256 MiB, at least one context */
	uint32_t block_size;        /* tokens of a KV block */
	uint32_t max_seqs;          /* running sequences at once */
	uint32_t max_batch_tokens;  /* tokens of one step */
	int caching;                /* automatic prefix caching */
	int threads;                /* the backend's; 0: its default */
	uint32_t max_tokens;        /* a request's max_tokens when it gives none */
	float temperature;          /* a request's temperature when it gives none */
	int text;                   /* add "text" to events */
	tokenize_opts topts;        /* prompts without tokens: the chat template */
	io_loop *loop;              /* where the timeout_ms timers run (NULL: none) */
	stats *st;                  /* where it counts: the caller's (NULL: its own) */
	uint32_t n_blocks;          /* set by engine_size */
	size_t block_bytes;         /* set by engine_size */
} engine_opts;
#define ENGINE_OPTS_DEFAULT {0, 0, 16, 64, 512, 1, 0, 256, 0.0f, 0, TOKENIZE_OPTS_DEFAULT, 0, 0, 0, 0}

/* What the engine tells its caller; owner is the caller's, as given to
 * engine_add. */
typedef struct engine_events {
	/* one event (or an error event) for owner, msgpack bytes valid until return */
	void (*send)(void *ud, void *owner, const void *data, size_t n);
	void (*added)(void *ud, void *owner);   /* a request of owner is in the table */
	void (*ended)(void *ud, void *owner);   /* and left it (after its last send) */
	/* 1: owner takes no more output now: its requests wait, keeping their place */
	int (*backlogged)(void *ud, const void *owner);
} engine_events;

/* Sizes the cache: o->ctx (0: the model's, at most 8192) and o->n_blocks,
 * o->block_bytes from o->kv_mem (0: 256 MiB, at least one context);
 * *lowered set when o->ctx was lowered to what the cache holds. 0 ok; -1
 * with err when the cache cannot be made (a usage error: --kv-mem). */
int engine_size(engine_opts *o, const model *m, const backend *be, int *lowered, char *err, size_t errlen);
/* An engine on m (kept open by the caller until engine_free) and be, with
 * o sized by engine_size. 0 with *ep set, or the exit status the failure
 * calls for, with err: EXIT_USAGE when the cache cannot be made of these
 * sizes, EXIT_SYS when the backend does not start. */
int engine_new(engine **ep, const model *m, const backend *be, const engine_opts *o,
	       const engine_events *ev, void *ud, char *err, size_t errlen);
/* Frees e; requests still in it end silently (their timers are stopped,
 * so o->loop must still be there if any are left). */
void engine_free(engine *e);

/* A request m of owner that passed msg_check_request and whose id is not
 * in flight for owner: its prompt (tokens, else tokenized here) is
 * checked, and it waits in the scheduler at fair-queueing order. -1: it
 * was refused (an error event went out); 0: it ended at once
 * (max_tokens 0); 1: it waits. */
int engine_add(engine *e, void *owner, const msg *m, uint64_t order);
/* 1 when owner has a request with this id in flight. */
int engine_has(const engine *e, const void *owner, const char *id, size_t n);
/* Ends that request with finish "cancelled" (nothing when it is unknown). */
void engine_cancel(engine *e, const void *owner, const char *id, size_t n);
/* Ends every request of owner: with an error event of code (counted as
 * finish "error") or, code NULL, silently, as its client went away
 * (counted as cancelled and gone). Returns how many. */
uint32_t engine_drop(engine *e, const void *owner, const char *code, const char *message);
/* An error event for owner (id NULL with idlen (size_t)-1: one without
 * an id), counted in the stats: the daemon's refusals go out alike. */
void engine_error(engine *e, void *owner, const char *id, size_t idlen, const char *code,
		  const char *message);
/* Asks events.backlogged afresh for every request (a client's backlog changed). */
void engine_backlog_changed(engine *e);

/* One scheduler step: the batch forward, a token sampled for each
 * sequence that finished its step, events sent. 1 if something ran. */
int engine_step(engine *e);

/* requests in the table; waiting in the scheduler */
uint32_t engine_n_requests(const engine *e);
uint32_t engine_n_waiting(const engine *e);
/* fair queueing: the highest order of a request that has started */
uint64_t engine_order_started(const engine *e);
/* running, waiting, max_running and the KV blocks, for the stats answer */
void engine_now(const engine *e, stats_now *sn);
/* "2 threads, AVX2": the backend, for the load summary */
const char *engine_describe(const engine *e);
/* For the exit summary: requests ended, steps run, the prefix cache's figures. */
void engine_totals(const engine *e, uint64_t *served, uint64_t *steps, kv_stats *kv);

#endif
