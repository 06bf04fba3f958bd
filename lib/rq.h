/* rq: Redis streams as a durable job queue. A worker reads a stream through a
 * consumer group, answers into each job's reply stream and acks in one atomic
 * step, reclaims jobs of dead workers (XAUTOCLAIM) and moves jobs delivered too
 * often to STREAM:dead. A producer XADDs jobs and reads its reply stream.
 * Blocking Redis reads run on a thread; the owner polls a descriptor. */
#ifndef SLUICE_RQ_H
#define SLUICE_RQ_H

#include <stddef.h>

#include "addr.h"
#include "msg.h"

typedef struct rq rq;

/* Opens a worker (io_loop_listen on redis://) or a producer (io_loop_dial).
 * Connection failures are not fatal: the thread reconnects with backoff.
 * NULL with err only for what can never work (a bad address). */
rq *rq_open_worker(const addr *a, const msg_limits *lim, char *err, size_t errlen);
rq *rq_open_producer(const addr *a, const msg_limits *lim, char *err, size_t errlen);
/* A producer: the consumer group's queue as its latest check saw it (every
 * two seconds while jobs are out): entries not yet given to a worker (lag;
 * Redis 7) and given but not yet acked (pending), -1 unknown. 1 when either
 * is known. */
int rq_backlog(rq *q, long long *lag, long long *pending);
/* Readable when rq_take may have something. */
int rq_fd(const rq *q);
/* Takes one incoming message (a worker: a job; a producer: an answer).
 * 1: *data (malloc'd, caller frees) holds n bytes; 0: nothing now; -1: closed
 * (a producer whose job stream vanished with jobs unanswered, said on stderr;
 * rq_send then fails with EPIPE). */
int rq_take(rq *q, char **data, size_t *n);
/* A worker: sends an answer; one carrying "finish" is written to the job's
 * reply stream and the job acked atomically (only if still pending, so a job
 * reclaimed by another worker is answered once; an answer Redis refuses sends
 * the job to STREAM:dead instead, and counts as sent). A producer: XADDs a job.
 * 0 ok, -1 error (Redis gone: retried by the caller or reported) with errno:
 * EMSGSIZE over lim->max_bytes, EINVAL an answer without a str "id", ENOENT no
 * job in flight has that id, any other (EIO, ECONNREFUSED...): Redis. After a
 * final answer the job's slot is free even on -1: its entry stays pending and
 * is delivered again after claim_ms.
 * The semantics in full are at the top of rq.c. */
int rq_send(rq *q, const void *bytes, size_t n);
void rq_close(rq *q);

#endif
