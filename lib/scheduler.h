/* scheduler (prefix sched_; not sched.h, which would hide the system
 * header of that name behind -Ilib): continuous batching, shared by every backend. Requests wait in a
 * queue ordered by priority then arrival; every step admits what the KV
 * blocks, the step's token budget and the sequence cap allow, runs chunked
 * prefill beside decode, and preempts (frees the blocks of, and later
 * recomputes) the lowest-priority newest sequence when blocks run out. A
 * step is handed to the backend as a sched_batch; the caller samples from
 * the logits it gets back and tells the scheduler the new tokens. */
#ifndef SLUICE_SCHED_H
#define SLUICE_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"

/* One sequence's part of a step. */
typedef struct sched_part {
	const uint32_t *blocks; /* its block table (token i: blocks[i / bs], slot i % bs) */
	uint32_t pos;           /* position of its first token here (= tokens already in the cache) */
	uint32_t n;             /* tokens this step */
	uint32_t first;         /* index of its first token in tokens[] */
	uint32_t n_logits;      /* 0 none; 1 the last token's; n every token's (scoring) */
	uint32_t out;           /* first row of logits[] it gets */
} sched_part;

/* What the backend runs: tokens[] of all parts, K/V written into the cache
 * for every token, logits for the rows asked. */
typedef struct sched_batch {
	uint32_t n_tokens;
	uint32_t *tokens;
	uint32_t n_parts;
	sched_part *parts;
	uint32_t n_out;
	float *logits;          /* n_out rows of n_vocab, written by the backend */
} sched_batch;

typedef struct sched_opts {
	uint32_t n_blocks, block_size;
	uint32_t max_seqs;          /* running sequences at once (--max-seqs) */
	uint32_t max_batch_tokens;  /* tokens per step (--max-batch-tokens) */
	uint32_t max_ctx;           /* tokens of one sequence, prompt and output */
	int caching;                /* automatic prefix caching */
	uint32_t n_vocab;
} sched_opts;

enum { SCHED_WAITING, SCHED_RUNNING, SCHED_DONE };

typedef struct sched_seq {
	void *ud;               /* the caller's request */
	int64_t priority;       /* lower runs first */
	uint64_t order;         /* then lower order (arrival, unless sched_set_order gave another) */
	uint64_t serial;        /* then arrival */
	uint32_t *tokens;       /* prompt then generated tokens */
	uint32_t n_tokens, cap;
	uint32_t n_prompt;
	uint32_t n_done;        /* tokens whose K/V are in the cache */
	uint32_t n_step;        /* tokens it runs in the current step (0: none) */
	uint32_t max_new;       /* generation limit */
	uint32_t cached;        /* prompt tokens found in the prefix cache at first admission */
	int admitted_once;
	uint32_t logits_from;   /* scoring: logits of every prompt token from this
				 * position on; SCHED_LAST: only the last token's */
	int state;              /* SCHED_* */
	int preempted;          /* times it lost its blocks */
	int paused;             /* set by the caller: not run nor admitted until cleared
				 * (its client takes no more output); it keeps its blocks
				 * unless preempted */
	uint32_t out;           /* this step: first logits row, or UINT32_MAX */
	uint32_t n_out;         /* this step: logits rows */
	kv_seq kv;
	struct sched_seq *next, *prev;   /* in the waiting or running list */
} sched_seq;

typedef struct sched sched;

sched *sched_new(const sched_opts *o);
void sched_free(sched *s);
kv_pool *sched_kv(sched *s);

/* Queues a request: tokens copied; NULL when n is 0 or longer than
 * max_ctx - 1 (the caller answers too_long). logits_from: SCHED_LAST for
 * generation (the last token's logits), else a scoring pass that wants the
 * logits of every prompt token at that position or later. */
#define SCHED_LAST UINT32_MAX
sched_seq *sched_add(sched *s, void *ud, const uint32_t *tokens, uint32_t n,
		     uint32_t max_new, int64_t priority, uint32_t logits_from);
/* Places a waiting sequence by another order than arrival (fair queueing
 * across clients); within one priority, lower order runs first. */
void sched_set_order(sched *s, sched_seq *q, uint64_t order);
/* Ends a sequence (finished, cancelled, timed out): its blocks are released
 * and it is freed. */
void sched_drop(sched *s, sched_seq *q);

/* Plans the next step: 0 when nothing can run (nothing waiting or running,
 * or what waits cannot fit), else the batch (valid until the next call). */
sched_batch *sched_step(sched *s);
/* After the backend ran the batch: commits the computed tokens to the
 * prefix cache. Then for each running seq with q->n_out > 0 the caller
 * samples and calls sched_push (or sched_drop when it finishes). */
void sched_done(sched *s);
/* Appends a generated token. */
void sched_push(sched *s, sched_seq *q, uint32_t token);

/* The sequences of the last step, in the order of its parts. */
sched_seq **sched_stepped(sched *s, uint32_t *n);
uint32_t sched_n_running(const sched *s);
uint32_t sched_n_waiting(const sched *s);

#endif
