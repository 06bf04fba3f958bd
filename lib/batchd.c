/* batchd: the queue of a sluice service (see batchd(1) and batchd.h).
 *
 * A request is counted the moment it is read: admitted into the queue, or
 * answered at once (overloaded, rate_limited, draining, bad_request). The
 * queue is ordered by priority then arrival; the release policy moves
 * requests to the engine while fewer than --max-inflight are there. Ids are
 * made unique upstream ("b" and a serial number) and restored on the way
 * back, so clients may reuse each other's ids. A request keeps its bytes
 * until it is answered, so one whose engine went away before answering
 * anything is sent again when the engine is back.
 *
 * route is the same program with many engines behind it (-u repeated): the
 * queue and the clients are the same, and each request released goes to
 * the replica the balance policy picks (round-robin, least in flight, or
 * the one holding the longest cached prefix of its prompt tokens). A
 * replica that disconnects, or says nothing for --upstream-timeout while it
 * has work, is down until it answers a stats query again; what it had not
 * answered goes back to the queue for another. */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "batchd.h"
#include "daemon.h"
#include "die.h"
#include "addr.h"
#include "idtab.h"
#include "io.h"
#include "msg.h"
#include "stats.h"
#include "tokenize.h"

#define USAGE "batchd [-l endpoint]... -u endpoint [--policy continuous|dynamic|static] " \
	"[--max-batch N] [--max-wait-ms MS] [--max-inflight N] [--max-queue N] [--max-queued-tokens N] " \
	"[--max-queue-bytes BYTES] [--timeout S] [--rate REQ/S] [--burst N] [--drain-timeout S] " \
	"[--max-connections N] [--backlog N] [--write-buffer BYTES] [--write-timeout S] [-m mode] [-d fd] [-q]"

#define ROUTE_USAGE "route [-l endpoint]... -u endpoint [-u endpoint]... [--policy prefix|least|rr] " \
	"[-m model] [--block-size N] [--upstream-timeout S] [--max-inflight N] [--max-queue N] " \
	"[--max-queued-tokens N] [--max-queue-bytes BYTES] [--timeout S] [--rate REQ/S] [--burst N] " \
	"[--drain-timeout S] [--max-connections N] [--backlog N] [--write-buffer BYTES] [--write-timeout S] " \
	"[--mode mode] [-d fd] [-q]"

enum { P_CONTINUOUS, P_DYNAMIC, P_STATIC };
enum { B_PREFIX, B_LEAST, B_RR };     /* route's balance policies */
enum { K_CLIENT = 1, K_REPLICA };     /* what an io_conn's data is */

#define MAX_REPLICAS 64
#define CHAINS_MAX 65536             /* prefix chains remembered (LRU) */
enum { R_QUEUED, R_FLIGHT };

#define USER_SLOTS 4096      /* rate buckets for "user" keys (hashed; a collision shares one) */

/* ------------------------------------------------------------- state */

typedef struct bucket {
	double tokens, t;        /* token bucket: level and when it was last filled */
} bucket;

typedef struct client {
	int kind;                /* K_CLIENT */
	io_conn *conn;
	uint32_t live;           /* requests queued or at the engine */
	int eof;                 /* the peer sent its last message */
	bucket rate;
	struct client *next, *prev;
} client;

struct batchd;

/* one engine behind (batchd has one, route many) */
typedef struct replica {
	int kind;                /* K_REPLICA */
	struct batchd *b;
	int idx;
	const char *ep;
	int redis;               /* a Redis stream: workers behind it, no stats, no cancels */
	io_conn *up;             /* NULL while disconnected */
	int ready;               /* answered the stats query since it connected */
	int warned;
	double backoff;
	io_timer t;              /* the next dial */
	uint32_t nflight, max_inflight;
	double last_heard;       /* its last message, or when its work began */
	int probed;              /* a stats query went out since then */
	uint64_t routed, prefix_hits, lost;
} replica;

/* route's memory of prefixes: a chain hash -> the replica that last served it */
typedef struct chain {
	uint64_t h;
	int rep;
	struct chain *hnext;     /* hash bucket */
	struct chain *newer, *older;   /* LRU */
} chain;

typedef struct breq {
	replica *rep;            /* where it is in flight */
	client *cl;              /* NULL: the client went away (a cancel was sent upstream) */
	char *id;                /* the client's id */
	size_t idlen;
	uint64_t up;             /* the upstream id is "b<up>" */
	char *raw;               /* the request's bytes, as the client sent them */
	size_t rawlen;
	int64_t prio;
	uint64_t serial;         /* arrival order */
	uint32_t est_tokens;     /* prompt tokens, counted or estimated */
	int state;               /* R_QUEUED, R_FLIGHT */
	int answered;            /* an event came back from the engine */
	uint64_t attempt;        /* a Redis stream: the run whose events the client gets (0: none yet) */
	double t_arrived, t_released, deadline;
	double t_first, t_last;  /* the first and the latest event with tokens */
	io_timer dl;             /* its deadline, while it is queued */
	struct breq *next, *prev;        /* the queue (ordered) or the in-flight list */
	idtab_node cn;           /* in the table by (client, id), while it has a client */
	idtab_node un;           /* in the table by upstream id */
	char upid[24];           /* "b<up>" */
	size_t upn;
	tok_ids toks;            /* route -m: the prompt tokenized here, sent as "tokens" */
	uint64_t *chains;        /* route --policy prefix: the hash of each full block's chain */
	uint32_t nchains;
} breq;

typedef struct batchd {
	io_loop *loop;
	replica *reps[MAX_REPLICAS];
	size_t nreps;
	replica *dialing;        /* io_loop_dial is running: its on_open is this replica's */
	int route;               /* the program is route */
	int balance;             /* B_*: route's choice of replica */
	size_t rr_next;
	double up_timeout;       /* --upstream-timeout */
	io_timer health_t;       /* route: replicas silent with work */
	tok *t;                  /* route -m: prompts tokenized for the prefix policy */
	int chat;
	uint32_t block_size;
	chain **ctab;            /* CHAINS_MAX buckets */
	chain *newest, *oldest, *cfree;
	size_t nchains;
	io_timer wait_t;         /* dynamic policy: the oldest request's --max-wait-ms */
	io_timer slow_t;         /* once a second: clients that read nothing */
	io_opts io;
	client *clients;
	breq *qhead, *qtail;     /* waiting, by priority then arrival */
	breq *flight;            /* at the engine */
	uint32_t nqueued, nflight;
	uint64_t queued_tokens, held_bytes;
	idtab ct, ut;            /* by (client, id), by upstream id */
	uint64_t next_up, next_serial;
	bucket users[USER_SLOTS];
	/* options */
	int policy;
	uint32_t max_batch, max_inflight, max_queue;
	int inflight_set;        /* --max-inflight given: the engine's figure is not asked */
	double max_wait, timeout, rate, burst, drain_timeout, write_timeout;
	uint64_t max_queued_tokens, max_queue_bytes;
	size_t write_buffer;
	int quiet;
	/* running */
	int draining;
	int stdio;               /* standard input is the only client: done when it is */
	stats st;
	msgpack_sbuffer sb;
} batchd;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------- id tables */

static breq *
cfind(batchd *b, const client *cl, const char *id, size_t n)
{
	idtab_node *e = idtab_find(&b->ct, cl, id, n);

	return e ? idtab_entry(e, breq, cn) : NULL;
}

static breq *
ufind(batchd *b, const char *id, size_t n)
{
	idtab_node *e = idtab_find(&b->ut, NULL, id, n);

	return e ? idtab_entry(e, breq, un) : NULL;
}

/* ------------------------------------------------------------- lists */

static void
list_unlink(breq **head, breq **tail, breq *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		*head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else if (tail)
		*tail = r->prev;
	r->next = r->prev = NULL;
}

/* Into the queue: after every request of the same or a better priority
 * that came earlier. Scans from the tail, where nearly all arrivals go. */
static void
enqueue(batchd *b, breq *r)
{
	breq *p = b->qtail;

	while (p && (p->prio > r->prio || (p->prio == r->prio && p->serial > r->serial)))
		p = p->prev;
	r->prev = p;
	r->next = p ? p->next : b->qhead;
	if (r->next)
		r->next->prev = r;
	else
		b->qtail = r;
	if (p)
		p->next = r;
	else
		b->qhead = r;
	r->state = R_QUEUED;
	b->nqueued++;
	b->queued_tokens += r->est_tokens;
}

static void
dequeue(batchd *b, breq *r)
{
	list_unlink(&b->qhead, &b->qtail, r);
	b->nqueued--;
	b->queued_tokens -= r->est_tokens;
}

static void
flight_add(batchd *b, breq *r, replica *rp)
{
	if (rp->nflight++ == 0)
		rp->last_heard = now();   /* its silence counts from when its work began */
	r->rep = rp;
	r->next = b->flight;
	r->prev = NULL;
	if (b->flight)
		b->flight->prev = r;
	b->flight = r;
	r->state = R_FLIGHT;
	b->nflight++;
}

/* In-flight r goes back to the queue, in its old place, its deadline
 * counting again. */
static void
requeue(batchd *b, breq *r)
{
	list_unlink(&b->flight, NULL, r);
	b->nflight--;
	r->rep->nflight--;
	r->rep = NULL;
	enqueue(b, r);
	if (r->deadline > 0) {
		double left = r->deadline - now();
		io_timer_after(b->loop, &r->dl, left > 0 ? left : 0);
	}
}

/* Forgets r altogether: its lists, tables, client count and bytes. */
static void
req_free(batchd *b, breq *r)
{
	if (r->state == R_QUEUED)
		dequeue(b, r);
	else {
		list_unlink(&b->flight, NULL, r);
		b->nflight--;
		r->rep->nflight--;
	}
	if (r->cl) {
		idtab_del(&b->ct, &r->cn);
		if (--r->cl->live == 0 && r->cl->eof)
			io_shutdown(r->cl->conn);
	}
	idtab_del(&b->ut, &r->un);
	io_timer_stop(b->loop, &r->dl);
	b->held_bytes -= r->rawlen;
	tok_ids_free(&r->toks);
	free(r->chains);
	free(r->id);
	free(r->raw);
	free(r);
}

/* ------------------------------------------------------------- answers */

static void
send_error(batchd *b, io_conn *c, const char *id, size_t idlen, const char *code, const char *message)
{
	msgpack_packer pk;

	stats_error(&b->st, code);
	b->sb.size = 0;
	msg_pk_init(&pk, &b->sb);
	msg_pk_error(&pk, id, idlen, code, message);
	io_send(c, b->sb.data, b->sb.size);
}

/* A refusal before any work: counted as an admission rejection. */
static void
reject(batchd *b, io_conn *c, const char *id, size_t idlen, const char *reason, const char *message)
{
	b->st.rejections[!strcmp(reason, "overloaded") ? ST_REJ_OVERLOADED
			 : !strcmp(reason, "rate_limited") ? ST_REJ_RATE_LIMITED
			 : !strcmp(reason, "draining") ? ST_REJ_DRAINING : ST_REJ_TIMEOUT]++;
	send_error(b, c, id, idlen, reason, message);
}

/* Tells the engine to stop r (at the engine): {id, cancel: true}. */
static void
send_cancel(batchd *b, breq *r)
{
	msgpack_packer pk;

	/* a cancel put on a Redis stream would be a job of its own, for any
	 * worker but the one that holds the request: not sent; the answer is
	 * dropped when it comes */
	if (!r->rep || !r->rep->up || r->rep->redis)
		return;
	b->sb.size = 0;
	msg_pk_init(&pk, &b->sb);
	msgpack_pack_map(&pk, 2);
	msg_pk_str(&pk, "id");
	msg_pk_strn(&pk, r->upid, r->upn);
	msg_pk_str(&pk, "cancel");
	msgpack_pack_true(&pk);
	io_send(r->rep->up, b->sb.data, b->sb.size);
}

/* Ends r with an error of batchd's own (timeout in the queue, upstream_lost,
 * draining): the client hears it, the engine is told to stop if it has r. */
static void
end_req(batchd *b, breq *r, const char *code, const char *message)
{
	if (r->state == R_FLIGHT)
		send_cancel(b, r);
	if (r->cl && !strcmp(code, "timeout")) {
		/* as the engine ends a request past its deadline: finish timeout */
		msgpack_packer pk;
		stats_error(&b->st, code);
		b->sb.size = 0;
		msg_pk_init(&pk, &b->sb);
		msgpack_pack_map(&pk, 4);
		msg_pk_str(&pk, "id");
		msg_pk_strn(&pk, r->id, r->idlen);
		msg_pk_str(&pk, "tokens");
		msgpack_pack_array(&pk, 0);
		msg_pk_str(&pk, "finish");
		msg_pk_str(&pk, "timeout");
		msg_pk_error_pair(&pk, code, message);
		io_send(r->cl->conn, b->sb.data, b->sb.size);
	} else if (r->cl)
		send_error(b, r->cl->conn, r->id, r->idlen, code, message);
	b->st.finished[!strcmp(code, "timeout") ? ST_FIN_TIMEOUT : ST_FIN_ERROR]++;
	req_free(b, r);
}

/* The final event of a request cancelled before it reached the engine. */
static void
send_cancelled(batchd *b, io_conn *c, const char *id, size_t idlen)
{
	msgpack_packer pk;

	b->st.finished[ST_FIN_CANCELLED]++;
	b->sb.size = 0;
	msg_pk_init(&pk, &b->sb);
	msgpack_pack_map(&pk, 3);
	msg_pk_str(&pk, "id");
	msg_pk_strn(&pk, id, idlen);
	msg_pk_str(&pk, "tokens");
	msgpack_pack_array(&pk, 0);
	msg_pk_str(&pk, "finish");
	msg_pk_str(&pk, "cancelled");
	io_send(c, b->sb.data, b->sb.size);
}

/* route's stats: "replicas": [{endpoint, up, in_flight, ...}] in -u order */
static void
pack_replicas(msgpack_packer *pk, void *ud)
{
	batchd *b = ud;
	size_t i;

	msg_pk_str(pk, "replicas");
	msgpack_pack_array(pk, (uint32_t)b->nreps);
	for (i = 0; i < b->nreps; i++) {
		replica *rp = b->reps[i];
		long long lag = -1, pend = -1;
		int q = rp->redis && rp->up && io_conn_backlog_redis(rp->up, &lag, &pend);
		msgpack_pack_map(pk, 7 + (q && lag >= 0) + (q && pend >= 0));
		msg_pk_str(pk, "endpoint");
		msg_pk_str(pk, rp->ep);
		msg_pk_str(pk, "up");
		if (rp->ready)
			msgpack_pack_true(pk);
		else
			msgpack_pack_false(pk);
		msg_pk_str(pk, "in_flight");
		msgpack_pack_uint32(pk, rp->nflight);
		msg_pk_str(pk, "max_in_flight");
		msgpack_pack_uint32(pk, rp->max_inflight);
		msg_pk_str(pk, "routed");
		msgpack_pack_uint64(pk, rp->routed);
		msg_pk_str(pk, "prefix_hits");
		msgpack_pack_uint64(pk, rp->prefix_hits);
		msg_pk_str(pk, "lost");
		msgpack_pack_uint64(pk, rp->lost);
		if (q && lag >= 0) {
			msg_pk_str(pk, "queue_lag");   /* a stream's jobs no worker has taken yet */
			msgpack_pack_uint64(pk, (uint64_t)lag);
		}
		if (q && pend >= 0) {
			msg_pk_str(pk, "queue_pending");   /* taken by a worker, not yet answered */
			msgpack_pack_uint64(pk, (uint64_t)pend);
		}
	}
}

static void
send_stats(batchd *b, io_conn *c, const msg *m)
{
	msgpack_packer pk;
	stats_now sn = STATS_NOW_NONE;
	int64_t ups = 0, room = 0;
	size_t i;

	for (i = 0; i < b->nreps; i++) {
		ups += b->reps[i]->up != NULL;
		room += b->reps[i]->ready ? b->reps[i]->max_inflight : 0;
	}
	sn.draining = b->draining;
	sn.connections = (int64_t)io_loop_nconns(b->loop) - ups;
	sn.running = b->nflight;
	sn.waiting = b->nqueued;
	sn.max_running = room;
	if (b->route || b->reps[0]->redis) {
		sn.nextra = 1;
		sn.extra = pack_replicas;
		sn.extra_ud = b;
	}
	b->sb.size = 0;
	msg_pk_init(&pk, &b->sb);
	stats_pack(&pk, m, &b->st, &sn);
	io_send(c, b->sb.data, b->sb.size);
}

/* ------------------------------------------------------------- upstream */

static const char *const own_keys[] = { "id", "timeout_ms", "tokens" };
/* an event's keys batchd replaces or drops on the way to the client */
static const char *const event_keys[] = { "id", "attempt" };

/* Sends r to replica rp under its upstream id, with what is left of its
 * deadline (and the tokens route made of its prompt). */
static void
send_up(batchd *b, breq *r, replica *rp, double t)
{
	msg m = MSG_ZERO;
	msgpack_zone z;
	msgpack_packer pk;
	const char *err;
	int toks = r->toks.n > 0;

	msgpack_zone_init(&z, 1024);
	b->sb.size = 0;
	msg_pk_init(&pk, &b->sb);
	if (msg_unpack(r->raw, r->rawlen, 0, &z, &m, &err) != MSG_GOT) {
		msgpack_zone_destroy(&z);
		end_req(b, r, "bad_request", "the request could not be read again");
		return;
	}
	/* "tokens" is the client's unless route made them */
	msg_pk_passthrough(&pk, &m, own_keys, toks ? 3 : 2, 1 + (r->deadline > 0) + toks);
	msgpack_zone_destroy(&z);
	msg_pk_str(&pk, "id");
	msg_pk_strn(&pk, r->upid, r->upn);
	if (r->deadline > 0) {
		double left = (r->deadline - t) * 1000;
		msg_pk_str(&pk, "timeout_ms");
		msgpack_pack_uint64(&pk, left < 1 ? 1 : (uint64_t)left);
	}
	if (toks) {
		msg_pk_str(&pk, "tokens");
		msgpack_pack_array(&pk, (uint32_t)r->toks.n);
		for (size_t i = 0; i < r->toks.n; i++)
			msgpack_pack_uint32(&pk, r->toks.v[i]);
	}
	dequeue(b, r);
	io_timer_stop(b->loop, &r->dl);    /* the engine keeps the deadline now */
	flight_add(b, r, rp);
	if (io_send(rp->up, b->sb.data, b->sb.size) < 0 && rp->redis) {
		/* Redis is unreachable (rq said so once): the job goes back to
		 * its place in the queue, and the stream takes nothing more until
		 * a retry after a backoff. A job whose XADD did reach Redis
		 * before the connection broke may be queued twice: the first
		 * final answer is the one the client gets. (A socket replica's
		 * failed send ends its connection, and upstream_lost requeues.) */
		requeue(b, r);
		rp->ready = 0;
		rp->backoff = rp->backoff < 0.05 ? 0.05 : rp->backoff * 2 > 2 ? 2 : rp->backoff * 2;
		io_timer_after(b->loop, &rp->t, rp->backoff);
		return;
	}
	if (rp->redis)
		rp->backoff = 0;
	rp->routed++;
	if (r->t_released == 0)
		r->t_released = t;
}

/* 1 when no client can send more: every one ended its input (or none is left). */
static int
input_ended(batchd *b)
{
	client *cl;

	for (cl = b->clients; cl; cl = cl->next)
		if (!cl->eof)
			return 0;
	return 1;
}

static int
has_room(const replica *rp)
{
	return rp->up && rp->ready && rp->nflight < rp->max_inflight;
}

/* ---- route's memory of prefixes: chain hash -> replica, LRU-bounded */

static chain *
chain_find(batchd *b, uint64_t h)
{
	chain *c;

	for (c = b->ctab[h & (CHAINS_MAX - 1)]; c; c = c->hnext)
		if (c->h == h)
			return c;
	return NULL;
}

static void
lru_unlink(batchd *b, chain *c)
{
	if (c->newer)
		c->newer->older = c->older;
	else
		b->newest = c->older;
	if (c->older)
		c->older->newer = c->newer;
	else
		b->oldest = c->newer;
	c->newer = c->older = NULL;
}

static void
lru_front(batchd *b, chain *c)
{
	c->older = b->newest;
	c->newer = NULL;
	if (b->newest)
		b->newest->newer = c;
	b->newest = c;
	if (!b->oldest)
		b->oldest = c;
}

/* chain h was served by replica idx */
static void
chain_put(batchd *b, uint64_t h, int idx)
{
	chain *c = chain_find(b, h), **pp;

	if (c) {
		c->rep = idx;
		lru_unlink(b, c);
		lru_front(b, c);
		return;
	}
	if (b->nchains == CHAINS_MAX) {
		/* the oldest goes: out of its bucket and the list */
		c = b->oldest;
		lru_unlink(b, c);
		for (pp = &b->ctab[c->h & (CHAINS_MAX - 1)]; *pp != c; pp = &(*pp)->hnext)
			;
		*pp = c->hnext;
	} else {
		c = xcalloc(1, sizeof *c);
		b->nchains++;
	}
	c->h = h;
	c->rep = idx;
	c->hnext = b->ctab[h & (CHAINS_MAX - 1)];
	b->ctab[h & (CHAINS_MAX - 1)] = c;
	lru_front(b, c);
}

/* The hash of each full block's chain: block k's covers blocks 0..k;
 * *chains is malloc'd (NULL with none). */
static void
chain_hashes(batchd *b, const uint32_t *ids, size_t n, uint64_t **chains, uint32_t *nchains)
{
	size_t k, i, nb = n / b->block_size;
	uint64_t h = 0xcbf29ce484222325ull;

	*chains = NULL;
	*nchains = 0;
	if (!nb)
		return;
	*chains = xcalloc(nb, sizeof **chains);
	for (k = 0; k < nb; k++) {
		for (i = k * b->block_size; i < (k + 1) * b->block_size; i++) {
			uint32_t v = ids[i];
			for (int j = 0; j < 4; j++, v >>= 8)
				h = (h ^ (v & 0xff)) * 0x100000001b3ull;
		}
		(*chains)[k] = h;
	}
	*nchains = (uint32_t)nb;
}

/* the replica with room and the fewest in flight (ties: the lower index) */
static replica *
least_loaded(batchd *b)
{
	replica *best = NULL;
	size_t i;

	for (i = 0; i < b->nreps; i++)
		if (has_room(b->reps[i]) && (!best || b->reps[i]->nflight < best->nflight))
			best = b->reps[i];
	return best;
}

/* Where r goes now, by the balance policy; NULL: no replica has room. */
static replica *
pick(batchd *b, breq *r, int *hit)
{
	size_t i, nup = 0;
	uint64_t total = 0;

	*hit = 0;
	if (b->nreps == 1)
		return has_room(b->reps[0]) ? b->reps[0] : NULL;
	switch (b->balance) {
	case B_RR:
		for (i = 0; i < b->nreps; i++) {
			replica *rp = b->reps[(b->rr_next + i) % b->nreps];
			if (has_room(rp)) {
				b->rr_next = (size_t)rp->idx + 1;
				return rp;
			}
		}
		return NULL;
	case B_PREFIX:
		for (i = 0; i < b->nreps; i++)
			if (b->reps[i]->ready) {
				nup++;
				total += b->reps[i]->nflight;
			}
		for (uint32_t k = r->nchains; k-- > 0; ) {
			chain *c = chain_find(b, r->chains[k]);
			replica *rp;
			if (!c)
				continue;
			rp = b->reps[c->rep];
			/* the longest cached prefix wins unless its holder is
			 * loaded past 1.25 x the mean (+1, for small counts) */
			if (has_room(rp) && rp->nflight <= 1.25 * ((double)total / (nup ? nup : 1)) + 1) {
				*hit = 1;
				return rp;
			}
			break;
		}
		return least_loaded(b);
	default:
		return least_loaded(b);
	}
}

/* The release policy: how many of the queue's head go now, and where. */
static void
release(batchd *b, double t)
{
	uint32_t room = 0, n = 0;
	breq *r;
	size_t i;

	if (!b->qhead)
		return;
	for (i = 0; i < b->nreps; i++)
		if (has_room(b->reps[i]))
			room += b->reps[i]->max_inflight - b->reps[i]->nflight;
	if (!room)
		return;
	switch (b->policy) {
	case P_CONTINUOUS:
		n = room;
		break;
	case P_DYNAMIC: {
		double oldest = t;
		for (r = b->qhead; r; r = r->next)
			if (r->t_arrived < oldest)
				oldest = r->t_arrived;
		if (b->nqueued >= b->max_batch || t - oldest >= b->max_wait || b->draining || input_ended(b))
			n = room < b->max_batch ? room : b->max_batch;
		break;
	}
	case P_STATIC:
		/* whole batches only; what is left at the end of the input goes as one */
		if (b->nqueued >= b->max_batch)
			n = room >= b->max_batch ? b->max_batch : 0;
		else if (b->draining || input_ended(b))
			n = room;
		break;
	}
	while (n-- && b->qhead) {
		int hit;
		replica *rp = pick(b, b->qhead, &hit);
		if (!rp)
			break;
		r = b->qhead;
		if (hit)
			rp->prefix_hits++;
		if (b->route && b->balance == B_PREFIX)
			for (uint32_t k = 0; k < r->nchains; k++)
				chain_put(b, r->chains[k], rp->idx);
		send_up(b, r, rp, t);
	}
	if (b->policy == P_DYNAMIC && b->qhead && room > 0) {
		double oldest = t;
		for (r = b->qhead; r; r = r->next)
			if (r->t_arrived < oldest)
				oldest = r->t_arrived;
		io_timer_after(b->loop, &b->wait_t, oldest + b->max_wait - t);
	}
}

/* Replica rp went away: what it had not answered at all goes back to the
 * queue (in its old place) for it or another, what had streamed ends with
 * upstream_lost. */
static void
upstream_lost(batchd *b, replica *rp, const char *why)
{
	breq *r, *next;
	uint32_t resent = 0, lost = 0;

	rp->up = NULL;
	rp->ready = 0;
	rp->lost++;
	for (r = b->flight; r; r = next) {
		next = r->next;
		if (r->rep != rp)
			continue;
		if (r->answered) {
			end_req(b, r, "upstream_lost", "the engine went away after answering part of this request");
			lost++;
		} else if (!r->cl) {
			req_free(b, r);    /* its client is gone too */
		} else {
			requeue(b, r);
			resent++;
		}
	}
	warn_x("lost the engine %s (%s): %u request%s to send again, %u ended upstream_lost",
	       rp->ep, why ? why : "it closed the connection", resent, resent == 1 ? "" : "s", lost);
	rp->backoff = 0.05;
	io_timer_after(b->loop, &rp->t, rp->backoff);
}

static void
ask_engine(batchd *b, replica *rp)
{
	msgpack_packer pk;

	b->sb.size = 0;
	msg_pk_init(&pk, &b->sb);
	msgpack_pack_map(&pk, 1);
	msg_pk_str(&pk, "op");
	msg_pk_str(&pk, "stats");
	io_send(rp->up, b->sb.data, b->sb.size);
}

static void
dial(batchd *b, replica *rp)
{
	char err[512];

	b->dialing = rp;
	rp->up = io_loop_dial(b->loop, rp->ep, &b->io, err, sizeof err);
	b->dialing = NULL;
	if (!rp->up) {
		if (!rp->warned)
			warn_x("%s; trying again", err);
		rp->warned = 1;
		rp->backoff = rp->backoff < 0.05 ? 0.05 : rp->backoff * 2 > 2 ? 2 : rp->backoff * 2;
		io_timer_after(b->loop, &rp->t, rp->backoff);
		return;
	}
	if (rp->warned && !b->quiet)
		warn_x("connected to the engine %s", rp->ep);
	rp->warned = 0;
	rp->backoff = 0;
	rp->last_heard = now();
	/* batchd sends at once; route waits for the stats answer, so that a
	 * replica that accepts but does not answer (stopped) gets nothing. A
	 * Redis stream has no one to answer a query: it takes jobs whether or
	 * not a worker reads them (that is its point), up to --max-inflight. */
	rp->ready = !b->route || rp->redis;
	if (!rp->redis)
		ask_engine(b, rp);
}

/* A Redis stream delivers a job at least once: a job whose worker died or
 * lost Redis runs again, and its answers say which run they come from
 * ("attempt", one per delivery). The client gets one run's events: the
 * first to stream any. Another run's streamed events are dropped (they
 * would repeat tokens the client has); its final answer, when the first
 * run did stream, means the first will never finish (the job was taken
 * from it): the request ends upstream_lost, as on a socket replica that
 * went away after streaming. A request that had streamed nothing takes
 * whichever run's final answer comes first. 1: forward m. */
static int
same_run(batchd *b, breq *r, const msg *m, int final)
{
	const char *a;
	size_t an;
	uint64_t h;

	if (msg_str(m, "attempt", &a, &an) != 1)
		return 1;
	h = msg_hash_id(a, an) | 1;
	if (!r->attempt || h == r->attempt) {
		if (!final)
			r->attempt = h;
		return 1;
	}
	if (final)
		end_req(b, r, "upstream_lost",
			"the job ran again on another worker after part of it had streamed");
	return 0;
}

/* An event from replica rp, back to its client under its own id. */
static void
on_event(batchd *b, replica *rp, const msg *m)
{
	const char *id, *fin;
	size_t idlen, finlen;
	breq *r;
	msgpack_packer pk;
	const msgpack_object *tk;
	int final;

	rp->last_heard = now();
	rp->probed = 0;
	if (msg_str(m, "op", &id, &idlen) == 1) {
		/* the engine's stats: how many it runs at once; it is up */
		const msgpack_object *st = msg_get(m, "stats");
		if (!b->inflight_set && st && st->type == MSGPACK_OBJECT_MAP)
			for (uint32_t i = 0; i < st->via.map.size; i++) {
				const msgpack_object_kv *kv = &st->via.map.ptr[i];
				if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 11
				    && !memcmp(kv->key.via.str.ptr, "max_running", 11)
				    && kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER && kv->val.via.u64 > 0)
					rp->max_inflight = kv->val.via.u64 > 65536 ? 65536 : (uint32_t)kv->val.via.u64;
			}
		if (!rp->ready && b->route && !b->quiet)
			info_x("%s is up", rp->ep);
		rp->ready = 1;
		return;
	}
	if (msg_str(m, "id", &id, &idlen) != 1) {
		warn_x("%s: an event without an id: dropped", rp->ep);
		return;
	}
	if (!(r = ufind(b, id, idlen)) || r->rep != rp)
		return;    /* a request already ended here (cancelled, timed out, sent elsewhere) */
	final = msg_str(m, "finish", &fin, &finlen) == 1;
	if (rp->redis && !same_run(b, r, m, final))
		return;
	r->answered = 1;
	if ((tk = msg_get(m, "tokens")) && tk->type == MSGPACK_OBJECT_ARRAY && tk->via.array.size) {
		double t = now();
		if (r->t_first == 0)
			r->t_first = t;
		else
			hist_observe(&b->st.h[HIST_ITL], HIST_ITL, t - r->t_last);
		r->t_last = t;
	}
	if (r->cl) {
		b->sb.size = 0;
		msg_pk_init(&pk, &b->sb);
		msg_pk_passthrough(&pk, m, event_keys, 2, 1);
		msg_pk_str(&pk, "id");
		msg_pk_strn(&pk, r->id, r->idlen);
		io_send(r->cl->conn, b->sb.data, b->sb.size);
	}
	if (final) {
		char reason[16];
		const msgpack_object *u = msg_get(m, "usage");
		snprintf(reason, sizeof reason, "%.*s", (int)(finlen < 15 ? finlen : 15), fin);
		stats_finish(&b->st, reason);
		/* as the clients see it: queue time is the time in batchd's queue */
		stats_times(&b->st, r->t_arrived, r->t_released, r->t_first, now());
		if (!strcmp(reason, "error")) {
			const msgpack_object *e = msg_get(m, "error");
			if (e && e->type == MSGPACK_OBJECT_MAP)
				for (uint32_t i = 0; i < e->via.map.size; i++) {
					const msgpack_object_kv *kv = &e->via.map.ptr[i];
					char code[32];
					if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size != 4
					    || memcmp(kv->key.via.str.ptr, "code", 4) || kv->val.type != MSGPACK_OBJECT_STR)
						continue;
					snprintf(code, sizeof code, "%.*s", (int)(kv->val.via.str.size < 31 ? kv->val.via.str.size : 31),
						 kv->val.via.str.ptr);
					stats_error(&b->st, code);
				}
		}
		if (u && u->type == MSGPACK_OBJECT_MAP)
			for (uint32_t i = 0; i < u->via.map.size; i++) {
				const msgpack_object_kv *kv = &u->via.map.ptr[i];
				if (kv->key.type != MSGPACK_OBJECT_STR || kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
					continue;
				if (kv->key.via.str.size == 17 && !memcmp(kv->key.via.str.ptr, "completion_tokens", 17))
					b->st.generation_tokens += kv->val.via.u64;
			}
		req_free(b, r);
	}
}

/* ------------------------------------------------------------- clients */

static void on_deadline(io_loop *l, io_timer *t, void *ud);

/* Prompt tokens of a request before tokenizing: counted when it has
 * tokens, else estimated at one token per 4 bytes of text (the queue
 * admits by it, so an estimate made now is what counts). */
static uint32_t
estimate_tokens(const msg *m)
{
	const msgpack_object *o = msg_get(m, "tokens");
	uint64_t n = 0;

	if (o && o->type == MSGPACK_OBJECT_ARRAY)
		return o->via.array.size;
	if ((o = msg_get(m, "prompt")) && o->type == MSGPACK_OBJECT_STR)
		n = o->via.str.size / 4 + 1;
	else if ((o = msg_get(m, "messages")) && o->type == MSGPACK_OBJECT_ARRAY)
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			const msgpack_object *e = &o->via.array.ptr[i];
			n += 8;    /* the template's markers */
			if (e->type == MSGPACK_OBJECT_MAP)
				for (uint32_t k = 0; k < e->via.map.size; k++)
					if (e->via.map.ptr[k].val.type == MSGPACK_OBJECT_STR)
						n += e->via.map.ptr[k].val.via.str.size / 4;
		}
	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* A token bucket: 1 when a request may go now (and takes its token). */
static int
take_token(batchd *b, bucket *k, double t)
{
	if (k->t == 0) {
		k->tokens = b->burst;
		k->t = t;
	}
	k->tokens += (t - k->t) * b->rate;
	if (k->tokens > b->burst)
		k->tokens = b->burst;
	k->t = t;
	if (k->tokens < 1)
		return 0;
	k->tokens -= 1;
	return 1;
}

static void
on_request(batchd *b, client *cl, const msg *m)
{
	io_conn *c = cl->conn;
	const char *id, *user;
	size_t idlen, ulen;
	char err[512];
	int cancel = 0;
	int64_t prio = 0;
	uint64_t u;
	uint32_t est, nchains = 0;
	uint64_t *chains = NULL;   /* route --policy prefix: the prompt's chain hashes */
	tok_ids toks = TOK_IDS_INIT;   /* route -m: the prompt tokenized here */
	double t = now();
	breq *r;

	switch (stats_is_query(m, err, sizeof err)) {
	case 1:
		send_stats(b, c, m);
		return;
	case -1:
		send_error(b, c, 0, (size_t)-1, "bad_request", err);
		return;
	}
	if (msg_str(m, "id", &id, &idlen) != 1) {
		send_error(b, c, 0, (size_t)-1, "bad_request", "request has no id (a string)");
		return;
	}
	if (msg_bool(m, "cancel", &cancel) == 1 && cancel) {
		if ((r = cfind(b, cl, id, idlen))) {
			if (r->state == R_QUEUED) {
				/* never reached the engine: answered here */
				send_cancelled(b, c, id, idlen);
				req_free(b, r);
			} else {
				send_cancel(b, r);
			}
		}
		return;
	}
	if (msg_check_request(m, err, sizeof err) < 0) {
		send_error(b, c, id, idlen, "bad_request", err);
		return;
	}
	if (cfind(b, cl, id, idlen)) {
		send_error(b, c, id, idlen, "duplicate_id", "a request with this id is in flight on this connection");
		return;
	}
	if (b->draining) {
		reject(b, c, id, idlen, "draining", "batchd is shutting down");
		return;
	}
	if (b->rate > 0) {
		bucket *k = &cl->rate;
		if (msg_str(m, "user", &user, &ulen) == 1)
			k = &b->users[msg_hash_id(user, ulen) & (USER_SLOTS - 1)];
		if (!take_token(b, k, t)) {
			snprintf(err, sizeof err, "more than %g requests a second (--rate, --burst %g)", b->rate, b->burst);
			reject(b, c, id, idlen, "rate_limited", err);
			return;
		}
	}
	if (b->route && b->balance == B_PREFIX) {
		/* the prompt's tokens, as sent or tokenized here, for the prefix chains */
		const msgpack_object *tk = msg_get(m, "tokens");
		if (tk && tk->type == MSGPACK_OBJECT_ARRAY) {
			uint32_t *ids = xcalloc(tk->via.array.size + 1, sizeof *ids);
			for (uint32_t i = 0; i < tk->via.array.size; i++)
				ids[i] = tk->via.array.ptr[i].type == MSGPACK_OBJECT_POSITIVE_INTEGER
					 ? (uint32_t)tk->via.array.ptr[i].via.u64 : 0;
			chain_hashes(b, ids, tk->via.array.size, &chains, &nchains);
			free(ids);
		} else if (b->t) {
			tokenize_opts to = TOKENIZE_OPTS_DEFAULT;
			size_t ntok = 0;
			if (tokenize_encode(b->t, &to, b->chat, m, &toks, &ntok, err, sizeof err) == 0)
				chain_hashes(b, toks.v, toks.n, &chains, &nchains);
			else
				toks.n = 0;   /* the engine will say what is wrong */
		}
	}
	est = toks.n ? (uint32_t)toks.n : estimate_tokens(m);
	if (b->nqueued >= b->max_queue) {
		snprintf(err, sizeof err, "%u requests are queued already (--max-queue)", b->max_queue);
		goto overloaded;
	}
	if (b->max_queued_tokens && b->queued_tokens + est > b->max_queued_tokens) {
		snprintf(err, sizeof err, "%llu prompt tokens are queued already and this request has %u "
			 "(--max-queued-tokens %llu)", (unsigned long long)b->queued_tokens, est,
			 (unsigned long long)b->max_queued_tokens);
		goto overloaded;
	}
	if (b->held_bytes + m->len > b->max_queue_bytes) {
		snprintf(err, sizeof err, "%llu bytes of requests are held already (--max-queue-bytes)",
			 (unsigned long long)b->held_bytes);
		goto overloaded;
	}
	r = xcalloc(1, sizeof *r);
	r->toks = toks;
	r->chains = chains;
	r->nchains = nchains;
	r->cl = cl;
	r->idlen = idlen;
	r->id = xstrndup(id, idlen);
	r->rawlen = m->len;
	r->raw = xstrndup(m->raw, m->len);
	b->held_bytes += m->len;
	if (msg_int(m, "priority", &prio) == 1)
		r->prio = prio;
	r->serial = b->next_serial++;
	r->up = b->next_up++;
	r->est_tokens = est;
	r->t_arrived = t;
	if (msg_uint(m, "timeout_ms", &u) == 1)
		r->deadline = t + u / 1000.0;
	else if (b->timeout > 0)
		r->deadline = t + b->timeout;
	r->upn = (size_t)snprintf(r->upid, sizeof r->upid, "b%llu", (unsigned long long)r->up);
	idtab_add(&b->ct, &r->cn, cl, r->id, r->idlen);
	idtab_add(&b->ut, &r->un, NULL, r->upid, r->upn);
	enqueue(b, r);
	r->dl = (io_timer)IO_TIMER_ZERO;
	if (r->deadline > 0) {
		r->dl.cb = on_deadline;
		r->dl.ud = b;
		io_timer_after(b->loop, &r->dl, r->deadline - t);
	}
	cl->live++;
	b->st.requests++;
	b->st.prompt_tokens += est;
	return;
overloaded:
	reject(b, c, id, idlen, "overloaded", err);
	tok_ids_free(&toks);
	free(chains);
}

static void
on_open(io_loop *l, io_conn *c, void *ud)
{
	batchd *b = ud;
	client *cl;

	(void)l;
	if (b->dialing) {
		io_conn_set_data(c, b->dialing);   /* an engine */
		return;
	}
	cl = xcalloc(1, sizeof *cl);
	cl->kind = K_CLIENT;
	cl->conn = c;
	cl->next = b->clients;
	if (b->clients)
		b->clients->prev = cl;
	b->clients = cl;
	io_conn_set_data(c, cl);
}

/* a connection's data: a client, a replica, or NULL (a client gone) */
static client *
as_client(io_conn *c)
{
	int *k = io_conn_data(c);

	return k && *k == K_CLIENT ? (client *)k : NULL;
}

static replica *
as_replica(io_conn *c)
{
	int *k = io_conn_data(c);

	return k && *k == K_REPLICA ? (replica *)k : NULL;
}

static void
on_msg(io_loop *l, io_conn *c, const msg *m, void *ud)
{
	client *cl = as_client(c);
	replica *rp = as_replica(c);

	(void)l;
	if (cl)
		on_request(ud, cl, m);
	else if (rp)
		on_event(ud, rp, m);
}

static void
on_bad(io_loop *l, io_conn *c, const char *why, void *ud)
{
	batchd *b = ud;

	(void)l;
	if (as_client(c))
		send_error(b, c, 0, (size_t)-1, "bad_request", why);
	else if (as_replica(c))
		warn_x("%s: %s", as_replica(c)->ep, why);
}

static void
on_eof(io_loop *l, io_conn *c, void *ud)
{
	batchd *b = ud;
	client *cl = as_client(c);
	replica *rp = as_replica(c);

	(void)l;
	if (rp) {
		upstream_lost(b, rp, NULL);
		io_close(c);
		return;
	}
	if (!cl)
		return;
	cl->eof = 1;
	if (!cl->live)
		io_shutdown(c);
}

static void
on_broken(io_loop *l, io_conn *c, const char *why, void *ud)
{
	batchd *b = ud;
	char msg[512];

	(void)l;
	warn_x("%s: %s", io_conn_name(c), why);
	if (as_client(c)) {
		snprintf(msg, sizeof msg, "%s; the requests before it are answered, nothing after it is read", why);
		send_error(b, c, 0, (size_t)-1, "bad_request", msg);
	}
}

/* A client gone: its queued requests are dropped, those at the engine are
 * cancelled there at once (their answers, when they come, go nowhere). */
static void
on_close(io_loop *l, io_conn *c, const char *why, void *ud)
{
	batchd *b = ud;
	client *cl = as_client(c);
	replica *rp = as_replica(c);
	breq *r, *next;
	uint32_t n = 0;

	(void)l;
	if (rp) {
		if (rp->up == c)
			upstream_lost(b, rp, why);
		return;
	}
	if (!cl)
		return;
	for (r = b->qhead; r; r = next) {
		next = r->next;
		if (r->cl == cl) {
			idtab_del(&b->ct, &r->cn);
			r->cl = NULL;    /* the client's counts go with it */
			req_free(b, r);
			n++;
		}
	}
	for (r = b->flight; r; r = next) {
		next = r->next;
		if (r->cl != cl)
			continue;
		idtab_del(&b->ct, &r->cn);
		r->cl = NULL;
		n++;
		send_cancel(b, r);
	}
	b->st.gone += n;
	if (why && n)
		warn_x("%s: %s: %u request%s cancelled", io_conn_name(c), why, n, n == 1 ? "" : "s");
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		b->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	free(cl);
	io_conn_set_data(c, NULL);
}

/* ------------------------------------------------------------- the loop */

/* A queued request's deadline passed: it never reaches the engine. */
static void
on_deadline(io_loop *l, io_timer *t, void *ud)
{
	batchd *b = ud;
	breq *r = (breq *)((char *)t - offsetof(breq, dl));
	char why[160];

	(void)l;
	if (r->state != R_QUEUED)
		return;
	snprintf(why, sizeof why, "the deadline passed after %.0f ms in the queue", (now() - r->t_arrived) * 1000);
	b->st.rejections[ST_REJ_TIMEOUT]++;
	end_req(b, r, "timeout", why);
}

static void
on_wait(io_loop *l, io_timer *t, void *ud)
{
	(void)l;
	(void)t;
	release(ud, now());
}

static void
on_up(io_loop *l, io_timer *t, void *ud)
{
	replica *rp = ud;

	(void)l;
	(void)t;
	if (!rp->up)
		dial(rp->b, rp);
	else if (rp->redis)
		rp->ready = 1;    /* try the stream again (send_up's backoff) */
	release(rp->b, now());
}

/* route, four times a second: a replica with work that has said nothing
 * for --upstream-timeout is taken down (its connection closed, so the
 * engine drops what it had) and dialled again; it is back once it answers
 * the stats query. */
static void
on_health(io_loop *l, io_timer *t, void *ud)
{
	batchd *b = ud;
	double tn = now();
	size_t i;

	for (i = 0; i < b->nreps; i++) {
		replica *rp = b->reps[i];
		io_conn *c = rp->up;
		char why[128];
		if (!c || !rp->nflight || rp->redis)
			continue;   /* a stream's jobs wait for workers: silence is no fault */
		if (tn - rp->last_heard >= b->up_timeout / 2 && !rp->probed) {
			/* silence may be a long answer being made: a live engine
			 * answers the stats query between two steps */
			ask_engine(b, rp);
			rp->probed = 1;
		}
		if (tn - rp->last_heard < b->up_timeout)
			continue;
		snprintf(why, sizeof why, "silent for %.1f s with %u request%s (--upstream-timeout)",
			 tn - rp->last_heard, rp->nflight, rp->nflight == 1 ? "" : "s");
		upstream_lost(b, rp, why);
		io_close(c);
	}
	release(b, tn);
	io_timer_after(l, t, 0.25);
}

/* Once a second: a client whose answers stay unread past --write-timeout
 * has its requests ended (slow_consumer). */
static void
on_slow(io_loop *l, io_timer *t, void *ud)
{
	batchd *b = ud;
	client *cl;
	breq *r, *next;

	for (cl = b->clients; cl; cl = cl->next) {
		double stall;
		if (!cl->live || io_conn_queued(cl->conn) <= b->write_buffer)
			continue;
		stall = io_conn_backlog(cl->conn);
		if (stall < b->write_timeout)
			continue;
		warn_x("%s: slow consumer: %zu bytes of answers unread for %.0f s (--write-timeout)",
		       io_conn_name(cl->conn), io_conn_queued(cl->conn), stall);
		for (r = b->qhead; r; r = next) {
			next = r->next;
			if (r->cl == cl)
				end_req(b, r, "slow_consumer", "the client left its answers unread past --write-timeout");
		}
		for (r = b->flight; r; r = next) {
			next = r->next;
			if (r->cl == cl)
				end_req(b, r, "slow_consumer", "the client left its answers unread past --write-timeout");
		}
	}
	io_timer_after(l, t, 1);
}

/* ------------------------------------------------------------- daemon */

static void
on_drain(void *ud)
{
	batchd *b = ud;

	b->draining = 1;
	io_loop_unlisten(b->loop);
	if (!b->quiet)
		warn_x("draining: %u queued, %u at the engine; %.0f s at most (--drain-timeout)",
		       b->nqueued, b->nflight, b->drain_timeout);
	release(b, now());
}

static void
on_abandon(void *ud)
{
	batchd *b = ud;
	breq *r, *next;

	for (r = b->qhead; r; r = next) {
		next = r->next;
		end_req(b, r, "draining", "batchd shut down before this request ran (--drain-timeout)");
	}
	for (r = b->flight; r; r = next) {
		next = r->next;
		end_req(b, r, "draining", "batchd shut down before this request ended (--drain-timeout)");
	}
}

static int
is_done(void *ud)
{
	batchd *b = ud;

	if (b->qhead || b->flight)
		return 0;
	return b->draining || (b->stdio && !b->clients);
}

static int
on_turn(void *ud)
{
	release(ud, now());
	return 0;
}

static const char *cur_usage = USAGE;   /* batchd's or route's */

static double
parse_num(const char *s, double lo, double hi)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo) || v > hi)
		die_usage(cur_usage);
	return v;
}

static uint64_t
parse_bytes(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || !(v > 0))
		die_usage(cur_usage);
	switch (*end) {
	case 0: break;
	case 'k': case 'K': v *= 1024; end++; break;
	case 'm': case 'M': v *= 1024 * 1024; end++; break;
	case 'g': case 'G': v *= 1024.0 * 1024 * 1024; end++; break;
	default: die_usage(cur_usage);
	}
	if (*end || v > 1e15)
		die_usage(cur_usage);
	return (uint64_t)v;
}

static int
run_main(int argc, char **argv, int route)
{
	static const struct option lo[] = {
		{ "policy", required_argument, 0, 'P' },
		{ "block-size", required_argument, 0, 'S' + 256 },
		{ "upstream-timeout", required_argument, 0, 'O' + 256 },
		{ "mode", required_argument, 0, 'M' + 256 },
		{ "max-batch", required_argument, 0, 'B' },
		{ "max-wait-ms", required_argument, 0, 'W' },
		{ "max-inflight", required_argument, 0, 'I' },
		{ "max-queue", required_argument, 0, 'Q' },
		{ "max-queued-tokens", required_argument, 0, 'T' },
		{ "max-queue-bytes", required_argument, 0, 'Y' },
		{ "timeout", required_argument, 0, 'O' },
		{ "rate", required_argument, 0, 'R' },
		{ "burst", required_argument, 0, 'U' },
		{ "drain-timeout", required_argument, 0, 'D' },
		{ "max-connections", required_argument, 0, 'C' },
		{ "backlog", required_argument, 0, 'K' },
		{ "write-buffer", required_argument, 0, 'w' },
		{ "write-timeout", required_argument, 0, 'x' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	static const daemon_ops ops = { on_drain, on_abandon, is_done, on_turn };
	io_handler h = { on_open, on_msg, on_bad, on_close, on_eof, on_broken };
	io_limits lim = { 16384, 30000, (size_t)64 << 20, 0 };
	daemon_cfg cfg = DAEMON_CFG_ZERO;
	batchd bd, *b = &bd;
	const char *ups[MAX_REPLICAS], *model = 0;
	const char *usage = route ? ROUTE_USAGE : USAGE;
	size_t nups = 0, i;
	int c;
	char err[512];

	memset(b, 0, sizeof *b);
	die_init(argv[0]);
	stats_init(&b->st, die_prog);
	cfg.listen = xcalloc(argc + 1, sizeof *cfg.listen);
	b->policy = P_CONTINUOUS;
	b->max_batch = 16;
	b->max_wait = 0.010;
	b->max_inflight = 64;    /* until the engine says how many it runs */
	b->max_queue = 1024;
	b->max_queued_tokens = 1 << 20;
	b->max_queue_bytes = (uint64_t)256 << 20;
	b->drain_timeout = 30;
	b->write_buffer = (size_t)1 << 20;
	b->write_timeout = 30;
	b->route = route;
	cur_usage = usage;
	b->balance = B_PREFIX;
	b->block_size = 16;
	b->up_timeout = 10;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "l:u:m:d:qh", lo, 0)) != -1) {
		switch (c) {
		case 'l': cfg.listen[cfg.nlisten++] = optarg; break;
		case 'u':
			if (nups == (route ? MAX_REPLICAS : 1))
				die_usage(usage);
			ups[nups++] = optarg;
			break;
		case 'm':
			if (route) {
				model = optarg;
				break;
			}
			/* batchd's -m is the socket's mode */
			__attribute__((fallthrough));
		case 'M' + 256: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 8);
			if (*end || v > 07777)
				die_usage(usage);
			cfg.io.mode = (mode_t)v;
			break;
		}
		case 'S' + 256: b->block_size = (uint32_t)parse_num(optarg, 1, 4096); break;
		case 'O' + 256: b->up_timeout = parse_num(optarg, 0.1, 86400); break;
		case 'd': cfg.ready_fd = (int)parse_num(optarg, 0, 1 << 20); break;
		case 'q': b->quiet = 1; break;
		case 'P':
			if (route && !strcmp(optarg, "prefix")) b->balance = B_PREFIX;
			else if (route && !strcmp(optarg, "least")) b->balance = B_LEAST;
			else if (route && !strcmp(optarg, "rr")) b->balance = B_RR;
			else if (route) die_x(EXIT_USAGE, "--policy %s: one of prefix, least, rr", optarg);
			else if (!strcmp(optarg, "continuous")) b->policy = P_CONTINUOUS;
			else if (!strcmp(optarg, "dynamic")) b->policy = P_DYNAMIC;
			else if (!strcmp(optarg, "static")) b->policy = P_STATIC;
			else die_x(EXIT_USAGE, "--policy %s: one of continuous, dynamic, static", optarg);
			break;
		case 'B': b->max_batch = (uint32_t)parse_num(optarg, 1, 65536); break;
		case 'W': b->max_wait = parse_num(optarg, 0, 3600000) / 1000; break;
		case 'I': b->max_inflight = (uint32_t)parse_num(optarg, 1, 65536); b->inflight_set = 1; break;
		case 'Q': b->max_queue = (uint32_t)parse_num(optarg, 1, 1 << 24); break;
		case 'T': b->max_queued_tokens = (uint64_t)parse_num(optarg, 0, 1e12); break;
		case 'Y': b->max_queue_bytes = parse_bytes(optarg); break;
		case 'O': b->timeout = parse_num(optarg, 0, 86400); break;
		case 'R': b->rate = parse_num(optarg, 0, 1e9); break;
		case 'U': b->burst = parse_num(optarg, 1, 1e9); break;
		case 'D': b->drain_timeout = parse_num(optarg, 0, 86400); break;
		case 'C': lim.max_conns = (size_t)parse_num(optarg, 1, 1 << 20); break;
		case 'K': cfg.io.backlog = (int)parse_num(optarg, 1, 65535); break;
		case 'w': b->write_buffer = parse_bytes(optarg); break;
		case 'x': b->write_timeout = parse_num(optarg, 0, 86400); break;
		case 'h':
			printf("usage: %s\n", usage);
			return 0;
		default: die_usage(usage);
		}
	}
	if (optind != argc || !nups)
		die_usage(usage);
	if (b->burst == 0)
		b->burst = b->rate > 1 ? b->rate : 1;
	for (i = 0; i < nups; i++) {
		addr a = ADDR_ZERO;
		replica *rp;
		if (addr_parse(ups[i], &a, err, sizeof err) < 0)
			die_x(EXIT_USAGE, "-u %s: %s", ups[i], err);
		if (a.kind != ADDR_UNIX && a.kind != ADDR_TCP && a.kind != ADDR_REDIS)
			die_x(EXIT_USAGE, "-u %s: the engine is reached on unix:, tcp: or redis://", ups[i]);
		rp = xcalloc(1, sizeof *rp);
		rp->redis = a.kind == ADDR_REDIS;
		addr_free(&a);
		rp->kind = K_REPLICA;
		rp->b = b;
		rp->idx = (int)i;
		rp->ep = ups[i];
		rp->max_inflight = b->max_inflight;
		rp->t = (io_timer)IO_TIMER_ZERO;
		rp->t.cb = on_up;
		rp->t.ud = rp;
		b->reps[b->nreps++] = rp;
	}
	if (route && b->balance == B_PREFIX) {
		b->ctab = xcalloc(CHAINS_MAX, sizeof *b->ctab);
		if (model) {
			tokenize_opts to = TOKENIZE_OPTS_DEFAULT;
			b->t = tokenize_open(model);
			b->chat = tokenize_chat_id(b->t, &to);
		}
	}
	if (route)
		stats_init(&b->st, "route");
	cfg.drain_timeout = b->drain_timeout;
	b->io = cfg.io;
	daemon_init(cfg.ready_fd);
	msgpack_sbuffer_init(&b->sb);
	b->loop = io_loop_new(&h, b);
	lim.high_water = b->write_buffer;
	io_loop_set_limits(b->loop, &lim);
	b->health_t = b->wait_t = b->slow_t = (io_timer)IO_TIMER_ZERO;
	b->health_t.cb = on_health;
	b->wait_t.cb = on_wait;
	b->slow_t.cb = on_slow;
	b->health_t.ud = b->wait_t.ud = b->slow_t.ud = b;
	if (route)
		io_timer_after(b->loop, &b->health_t, 0.25);
	if (b->write_timeout > 0)
		io_timer_after(b->loop, &b->slow_t, 1);
	b->stdio = daemon_listen(b->loop, &cfg) && cfg.nlisten <= 1;
	for (i = 0; i < b->nreps; i++)
		dial(b, b->reps[i]);
	daemon_run(b->loop, &cfg, &ops, b);
	if (!b->quiet)
		fprintf(stderr, "%s: %llu requests admitted, %llu refused (%llu overloaded, %llu rate limited, "
			"%llu draining, %llu timed out in the queue), %llu cancelled as their client went away\n",
			die_prog, (unsigned long long)b->st.requests,
			(unsigned long long)(b->st.rejections[ST_REJ_OVERLOADED] + b->st.rejections[ST_REJ_RATE_LIMITED]
					     + b->st.rejections[ST_REJ_DRAINING]),
			(unsigned long long)b->st.rejections[ST_REJ_OVERLOADED],
			(unsigned long long)b->st.rejections[ST_REJ_RATE_LIMITED],
			(unsigned long long)b->st.rejections[ST_REJ_DRAINING],
			(unsigned long long)b->st.rejections[ST_REJ_TIMEOUT], (unsigned long long)b->st.gone);
	io_timer_stop(b->loop, &b->slow_t);
	io_timer_stop(b->loop, &b->health_t);
	for (i = 0; i < b->nreps; i++)
		io_timer_stop(b->loop, &b->reps[i]->t);
	io_timer_stop(b->loop, &b->wait_t);
	io_loop_free(b->loop);
	msgpack_sbuffer_destroy(&b->sb);
	idtab_free(&b->ct);
	idtab_free(&b->ut);
	for (i = 0; i < b->nreps; i++)
		free(b->reps[i]);
	while (b->newest) {
		chain *ch = b->newest;
		b->newest = ch->older;
		free(ch);
	}
	free(b->ctab);
	tok_free(b->t);
	free(cfg.listen);
	return 0;
}

int
batchd_main(int argc, char **argv)
{
	return run_main(argc, argv, 0);
}

int
route_main(int argc, char **argv)
{
	return run_main(argc, argv, 1);
}
