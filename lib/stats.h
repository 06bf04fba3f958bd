/* stats: the counters every sluice daemon keeps, and its answer to the
 * stats query {"op": "stats"} (sluice(7)), which metrics scrapes and the
 * tests read. One module so that infer-cpu, batchd and the daemons after
 * them count and answer alike. */
#ifndef SLUICE_STATS_H
#define SLUICE_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "hist.h"
#include "msg.h"

/* finish reasons, error codes and admission rejections, in these orders */
enum { ST_FIN_STOP, ST_FIN_LENGTH, ST_FIN_CANCELLED, ST_FIN_TIMEOUT, ST_FIN_ERROR, ST_FIN_N };
enum { ST_ERR_BAD_REQUEST, ST_ERR_TOO_LONG, ST_ERR_OVERLOADED, ST_ERR_DUPLICATE_ID,
       ST_ERR_SLOW_CONSUMER, ST_ERR_TIMEOUT, ST_ERR_DRAINING, ST_ERR_RATE_LIMITED,
       ST_ERR_UPSTREAM_LOST, ST_ERR_OTHER, ST_ERR_N };
enum { ST_REJ_OVERLOADED, ST_REJ_RATE_LIMITED, ST_REJ_DRAINING, ST_REJ_TIMEOUT, ST_REJ_N };

typedef struct stats {
	const char *program;        /* "infer-cpu" */
	double t_start;             /* wall clock at start */
	uint64_t requests;          /* admitted */
	uint64_t prompt_tokens;     /* of the admitted requests */
	uint64_t generation_tokens;
	uint64_t prefix_queries;    /* prompt tokens looked up in the prefix cache */
	uint64_t prefix_hits;       /* of those, found */
	uint64_t preemptions;
	uint64_t gone;              /* requests cancelled as their client went away */
	uint64_t finished[ST_FIN_N];
	uint64_t errors[ST_ERR_N];
	uint64_t rejections[ST_REJ_N];
	hist h[HIST_N];             /* latencies, vLLM's names and buckets */
} stats;

/* What is true now, read by the daemon when it answers; -1: it has no such thing. */
typedef struct stats_now {
	int draining;
	int64_t connections, running, waiting, max_running, kv_used, kv_total;
	/* more pairs of the daemon's own in the "stats" map (route's replicas):
	 * nextra of them, packed by extra(pk, extra_ud) */
	uint32_t nextra;
	void (*extra)(msgpack_packer *pk, void *ud);
	void *extra_ud;
} stats_now;
#define STATS_NOW_NONE {0, -1, -1, -1, -1, -1, -1, 0, 0, 0}

void stats_init(stats *s, const char *program);
/* a final event went out with this finish reason */
void stats_finish(stats *s, const char *reason);
/* A request's latencies when it ends, from its wall-clock times (0: that
 * moment never came): TTFT, end to end, queue, prefill, decode, inference. */
void stats_times(stats *s, double arrived, double scheduled, double first, double done);
/* an error event went out with this code */
void stats_error(stats *s, const char *code);
/* a request was refused before any work (reason: overloaded, rate_limited,
 * draining, timeout); counted as an error of the same code too */
void stats_reject(stats *s, const char *reason);

/* 1: m is the stats query; -1: m has an "op" that is not known (err says
 * so); 0: m is no query (a request or an event). */
int stats_is_query(const msg *m, char *err, size_t errlen);
/* The answer to the query m: {"op": "stats", "id"?: m's id, "stats": {...}}. */
void stats_pack(msgpack_packer *pk, const msg *m, const stats *s, const stats_now *now);

#endif
