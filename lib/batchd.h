/* batchd: the queue of a sluice service. Many clients in (-l), one engine
 * connection out (-u): admission before any work (--max-queue,
 * --max-queued-tokens, per-client rate limits), a bounded queue ordered by
 * priority then arrival, a release policy (continuous, dynamic, static) that
 * keeps at most --max-inflight requests at the engine, deadlines, per-request
 * cancellation, resending on engine loss, drain on SIGTERM, stats. */
#ifndef SLUICE_BATCHD_H
#define SLUICE_BATCHD_H

/* The whole program; returns the exit status. */
int batchd_main(int argc, char **argv);
/* route: the same with many engines behind (see route(1)). */
int route_main(int argc, char **argv);

#endif
