/* metrics: event streams and stats answers in, Prometheus text and a
 * summary table out (see metrics.h and metrics(1)).
 *
 * One thread does everything, in lib/daemon's loop: the io_loop reads the
 * event streams and the daemons' stats answers, timers ask the daemons,
 * and libmicrohttpd runs in its "external epoll" mode inside the same loop
 * (its one epoll descriptor is watched like any other, and a timer keeps
 * its timeouts). MHD_USE_INTERNAL_POLLING_THREAD would need a lock around
 * every figure, taken per event; here a scrape runs between two messages,
 * sees a consistent snapshot, and signals have one path (the signalfd). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "addr.h"
#include "daemon.h"
#include "die.h"
#include "hist.h"
#include "httpd.h"
#include "io.h"
#include "sock.h"
#include "metrics.h"
#include "msg.h"

#define LBL_MAX 32             /* label values kept per family and source; then "other" */
#define LBL_LEN 64             /* bytes of one label value kept */
#define ITL_MAX 65536          /* streamed requests in progress followed for ITL; then the oldest goes */
#define ITL_IDMAX 64           /* bytes of an id kept (with its length and hash) */
#define SAMPLES_MAX (1u << 20) /* exact values kept per summary figure; then a reservoir */
#define MAX_UPSTREAMS 64
#define REP_MAX 64             /* a router's replicas kept per source (route's -u limit); then left out */
#define WARN_BAD 10            /* bad messages on the event streams warned about, then silence */

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

/* ------------------------------------------------------------- the figures of one source */

/* a labelled counter's values, "name" -> count, bounded */
typedef struct lblset {
	size_t n;
	char name[LBL_MAX][LBL_LEN + 1];
	uint64_t v[LBL_MAX];
} lblset;

enum { G_RUNNING, G_WAITING, G_KV, G_DRAINING, G_CONNS, G_N };
enum { C_PROMPT, C_GEN, C_PREEMPT, C_PCQ, C_PCH, C_ADMITTED, C_BAD, C_N };
enum { L_FINISHED, L_ERRORS, L_REJECTIONS, L_N };
enum { R_UP, R_RUNNING, R_ROUTED, R_HITS, R_LOST, R_QLAG, R_QPEND, R_N };

/* one replica of a router, as its stats said (route's "replicas") */
typedef struct repfigs {
	char ep[LBL_LEN + 1];      /* its endpoint, as a label value */
	unsigned have;             /* bit i: figure i is known */
	uint64_t v[R_N];
} repfigs;

typedef struct figs {
	unsigned have_g, have_c;   /* bit i: gauge / counter i is known */
	double g[G_N];
	uint64_t c[C_N];
	lblset l[L_N];
	unsigned have_h;           /* bit k: histogram k is known (events: all) */
	hist h[HIST_N];
	size_t nrep;
	repfigs rep[REP_MAX];      /* in the daemon's order */
} figs;

/* Copies a label value: at most LBL_LEN bytes, anything but printable
 * ASCII made '_' (the exposition must be UTF-8; a hostile code is not). */
static void
lbl_copy(char *dst, const char *s, size_t n)
{
	size_t i;

	if (n > LBL_LEN)
		n = LBL_LEN;
	for (i = 0; i < n; i++)
		dst[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '_';
	dst[n] = 0;
}

static void
lbl_add(lblset *l, const char *s, size_t n, uint64_t v)
{
	char name[LBL_LEN + 1];
	size_t i;

	lbl_copy(name, s, n);
	for (i = 0; i < l->n; i++)
		if (!strcmp(l->name[i], name))
			break;
	if (i == l->n) {
		if (l->n >= LBL_MAX - 1) {   /* the last slot is "other" */
			for (i = 0; i < l->n; i++)
				if (!strcmp(l->name[i], "other"))
					break;
			if (i == l->n)
				strcpy(l->name[l->n++], "other");
		} else {
			strcpy(l->name[l->n++], name);
		}
	}
	l->v[i] = sat_add(l->v[i], v);
}

/* ------------------------------------------------------------- msgpack helpers */

static const msgpack_object *
obj_get(const msgpack_object *map, const char *key)
{
	size_t n = strlen(key);
	uint32_t i;

	if (!map || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && !memcmp(k->via.str.ptr, key, n))
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

/* 1 and *v for an unsigned integer, else 0 */
static int
obj_uint(const msgpack_object *o, uint64_t *v)
{
	if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return 0;
	*v = o->via.u64;
	return 1;
}

/* 1 and *v for a finite number, else 0 */
static int
obj_num(const msgpack_object *o, double *v)
{
	if (!o)
		return 0;
	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER: *v = (double)o->via.u64; return 1;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: *v = (double)o->via.i64; return 1;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: *v = o->via.f64; return isfinite(*v);
	default: return 0;
	}
}

static int
obj_str(const msgpack_object *o, const char **s, size_t *n)
{
	if (!o || o->type != MSGPACK_OBJECT_STR)
		return 0;
	*s = o->via.str.ptr;
	*n = o->via.str.size;
	return 1;
}

static int
str_is(const char *s, size_t n, const char *lit)
{
	return n == strlen(lit) && !memcmp(s, lit, n);
}

/* ------------------------------------------------------------- summary samples */

typedef struct samples {
	double *v;
	size_t n, cap;
	uint64_t seen;     /* values offered, all of them */
	double sum;        /* of all of them */
} samples;

enum { S_TTFT, S_TPOT, S_ITL, S_E2E, S_N };

/* Exact up to SAMPLES_MAX values, then Algorithm R: each later value
 * replaces a random kept one with probability SAMPLES_MAX/seen, so the
 * kept values stay a uniform sample; the RNG is seeded, so one input
 * gives one table. */
static void
samples_add(samples *s, double v, uint64_t *rng)
{
	uint64_t j;

	s->seen++;
	s->sum += v;
	if (s->n < SAMPLES_MAX) {
		if (s->n == s->cap) {
			s->cap = s->cap ? 2 * s->cap : 1024;
			s->v = xrealloc(s->v, s->cap * sizeof *s->v);
		}
		s->v[s->n++] = v;
		return;
	}
	*rng ^= *rng << 13;
	*rng ^= *rng >> 7;
	*rng ^= *rng << 17;
	j = *rng % s->seen;
	if (j < SAMPLES_MAX)
		s->v[j] = v;
}


/* ------------------------------------------------------------- ITL: streamed ids in progress */

typedef struct itl_ent {
	uint64_t stream;           /* the connection's serial number */
	uint64_t hash;
	size_t idlen;
	char id[ITL_IDMAX];        /* its first bytes */
	double last;               /* arrival of its latest event (mono) */
	struct itl_ent *hnext;     /* bucket chain */
	struct itl_ent *older, *newer;   /* by latest event */
} itl_ent;

/* ------------------------------------------------------------- state */

enum { CONN_EVENTS = 1, CONN_UPSTREAM };

/* io_conn data of an event stream */
typedef struct evconn {
	int kind;                  /* CONN_EVENTS */
	int stream;                /* a -i stream (stdin, fd:N), not one accepted */
	uint64_t serial;           /* never reused: keys its ids in the ITL table */
	struct evconn *next, *prev;   /* all of them, freed at the end if still open */
} evconn;

typedef struct upstream {
	int kind;                  /* CONN_UPSTREAM (it is its io_conn's data) */
	char *ep;
	io_conn *conn;             /* NULL while down */
	int up;                    /* its last answer was stats */
	int said;                  /* its being down was said (once until it is up again) */
	double asked;              /* io_now() of the query in flight, 0 none */
	double next_dial;          /* io_now(): not before this */
	figs f;
} upstream;

struct metrics {
	metrics_opts o;
	io_loop *loop;
	int stopping;              /* SIGTERM or SIGINT came */
	int ended;                 /* the input ended (every -i a stream, at its end) */
	httpd http;                /* libmicrohttpd in the loop */
	io_timer poll_timer;       /* the next stats queries (-u) */
	/* inputs */
	int ninputs;               /* -i given */
	int listening_inputs;      /* of them, sockets that accept streams (never end) */
	int streams_open;          /* stdin and fd:N streams not yet ended */
	int streams_total;
	int setting_up;            /* on_open: a stream of -i */
	int dialing;               /* on_open: a daemon's connection */
	uint64_t serial;           /* of the latest event stream */
	evconn *evconns;
	int bad_stdin;             /* stdin was cut or broken */
	int summary_done;
	int out_fd;                /* stdout, kept for the summary (io gives fd 1 away at stdin's end) */
	figs ev;                   /* source="events" */
	uint64_t bad_warned;
	/* ITL table */
	uint64_t seed;             /* of its hash */
	itl_ent **itab;
	size_t itabn, nitl;
	itl_ent *oldest, *newest, *free_ents;
	/* summary */
	samples s[S_N];
	uint64_t rng;
	uint64_t finals, out_tokens;
	double t_first, t_last;    /* earliest arrived, latest done (event wall clock); 0 none */
	double m_first, m_last;    /* first and last event seen here (mono) */
	/* polled daemons */
	upstream *ups[MAX_UPSTREAMS];
	size_t nups;
	double next_poll;          /* io_now() of the next stats queries */
	msgpack_sbuffer sb;
};

/* ------------------------------------------------------------- ITL table */

/* Seeded per process: ids come from the streams, and a fixed hash would
 * let a producer fill one bucket with ids made to collide. */
static uint64_t
itl_key(const metrics *m, uint64_t stream, const char *id, size_t n)
{
	uint64_t h = m->seed ^ (stream * 0x9e3779b97f4a7c15ULL);
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)id[i]) * 0x100000001b3ULL;
	h ^= h >> 30;   /* splitmix64's finish: every bit reaches the bucket index */
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	return h ^ (h >> 31);
}

static itl_ent **
itl_slot(metrics *m, uint64_t stream, const char *id, size_t n, uint64_t h)
{
	itl_ent **pp = &m->itab[h & (m->itabn - 1)];
	size_t k = n < ITL_IDMAX ? n : ITL_IDMAX;

	for (; *pp; pp = &(*pp)->hnext)
		if ((*pp)->hash == h && (*pp)->stream == stream && (*pp)->idlen == n &&
		    !memcmp((*pp)->id, id, k))
			break;
	return pp;
}

static void
itl_unlink_lru(metrics *m, itl_ent *e)
{
	if (e->older)
		e->older->newer = e->newer;
	else
		m->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		m->newest = e->older;
	e->older = e->newer = NULL;
}

static void
itl_push_lru(metrics *m, itl_ent *e)
{
	e->older = m->newest;
	e->newer = NULL;
	if (m->newest)
		m->newest->newer = e;
	else
		m->oldest = e;
	m->newest = e;
}

static void
itl_remove(metrics *m, itl_ent *e)
{
	itl_ent **pp = &m->itab[e->hash & (m->itabn - 1)];

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	itl_unlink_lru(m, e);
	e->hnext = m->free_ents;
	m->free_ents = e;
	m->nitl--;
}

/* An event of a streamed request came at t: the gap since its previous
 * one with tokens is an inter-token latency (the first is its first token,
 * not an ITL). final: the request ends here. Returns the gap, or -1.
 * The ids of a stream that ended are not looked for: they age out. */
static double
itl_step(metrics *m, uint64_t stream, const char *id, size_t n, double t, int has_tokens, int final)
{
	uint64_t h = itl_key(m, stream, id, n);
	itl_ent **pp = itl_slot(m, stream, id, n, h), *e = *pp;
	double gap = -1;

	if (e) {
		if (has_tokens)
			gap = t - e->last;
		if (final) {
			itl_remove(m, e);
		} else if (has_tokens) {
			e->last = t;
			itl_unlink_lru(m, e);
			itl_push_lru(m, e);
		}
		return gap;
	}
	if (final || !has_tokens)
		return -1;
	if (m->nitl == ITL_MAX) {
		itl_remove(m, m->oldest);   /* bounded: the stalest goes */
		pp = itl_slot(m, stream, id, n, h);
	}
	if (m->free_ents) {
		e = m->free_ents;
		m->free_ents = e->hnext;
	} else {
		e = xmalloc(sizeof *e);
	}
	memset(e, 0, sizeof *e);
	e->stream = stream;
	e->hash = h;
	e->idlen = n;
	memcpy(e->id, id, n < ITL_IDMAX ? n : ITL_IDMAX);
	e->last = t;
	e->hnext = *pp;
	*pp = e;
	itl_push_lru(m, e);
	m->nitl++;
	return -1;
}

/* ------------------------------------------------------------- events */

/* a value for the summary table, kept only when there is to be one */
static void
sample(metrics *m, int k, double v)
{
	if (m->o.summary)
		samples_add(&m->s[k], v, &m->rng);
}

static void
observe(metrics *m, hist_kind k, double from, double to)
{
	double d = to - from;

	if (from > 0 && to > 0 && d >= 0)
		hist_observe(&m->ev.h[k], k, d);
}

void
metrics_event(metrics *m, uint64_t stream, const msg *ev, double now)
{
	const msgpack_object *tok = msg_get(ev, "tokens"), *usage, *t, *err;
	const char *id = 0, *fin, *code;
	size_t idlen = 0, flen, clen;
	int has_id, has_tok, dup = 0;
	double gap, arrived = 0, sched = 0, first = 0, done = 0;
	uint64_t v, prompt = 0, gen = 0;
	int have_gen = 0;

	if (ev->root.type != MSGPACK_OBJECT_MAP) {
		m->ev.c[C_BAD]++;
		return;
	}
	if (!m->m_first)
		m->m_first = now;
	m->m_last = now;
	has_id = msg_str(ev, "id", &id, &idlen) == 1;
	has_tok = tok && tok->type == MSGPACK_OBJECT_ARRAY && tok->via.array.size > 0;
	if (msg_str(ev, "finish", &fin, &flen) != 1) {
		/* a streamed event: tokens as they come */
		if (has_id) {
			gap = itl_step(m, stream, id, idlen, now, has_tok, 0);
			if (gap >= 0) {
				hist_observe(&m->ev.h[HIST_ITL], HIST_ITL, gap);
				sample(m, S_ITL, gap);
			}
		}
		return;
	}

	/* a final event */
	err = msg_get(ev, "error");
	if (obj_str(obj_get(err, "code"), &code, &clen)) {
		lbl_add(&m->ev.l[L_ERRORS], code, clen, 1);
		/* refused before any work (timeout with an error: batchd's deadline
		 * in its queue; the engine's own timeouts carry no error) */
		if (str_is(code, clen, "overloaded") || str_is(code, clen, "rate_limited") ||
		    str_is(code, clen, "draining") || str_is(code, clen, "timeout"))
			lbl_add(&m->ev.l[L_REJECTIONS], code, clen, 1);
		/* the answer to a second request with the id of one in flight:
		 * that one goes on */
		dup = str_is(code, clen, "duplicate_id");
	} else if (str_is(fin, flen, "error")) {
		lbl_add(&m->ev.l[L_ERRORS], "unknown", 7, 1);
	}
	if (has_id && !dup) {
		gap = itl_step(m, stream, id, idlen, now, has_tok, 1);
		if (gap >= 0) {
			hist_observe(&m->ev.h[HIST_ITL], HIST_ITL, gap);
			sample(m, S_ITL, gap);
		}
	}
	lbl_add(&m->ev.l[L_FINISHED], fin, flen, 1);
	m->finals++;

	usage = msg_get(ev, "usage");
	if (obj_uint(obj_get(usage, "prompt_tokens"), &prompt)) {
		m->ev.c[C_PROMPT] = sat_add(m->ev.c[C_PROMPT], prompt);
		m->ev.c[C_PCQ] = sat_add(m->ev.c[C_PCQ], prompt);
	}
	if (obj_uint(obj_get(usage, "completion_tokens"), &gen)) {
		m->ev.c[C_GEN] = sat_add(m->ev.c[C_GEN], gen);
		m->out_tokens = sat_add(m->out_tokens, gen);
		have_gen = 1;
	}
	if (obj_uint(obj_get(usage, "cached_tokens"), &v))
		m->ev.c[C_PCH] = sat_add(m->ev.c[C_PCH], v < prompt ? v : prompt);

	t = msg_get(ev, "t");
	if (!obj_num(obj_get(t, "arrived"), &arrived) || arrived <= 0)
		arrived = 0;
	if (!obj_num(obj_get(t, "scheduled"), &sched) || sched <= 0)
		sched = 0;
	if (!obj_num(obj_get(t, "first_token"), &first) || first <= 0)
		first = 0;
	if (!obj_num(obj_get(t, "done"), &done) || done <= 0)
		done = 0;
	if (str_is(fin, flen, "timeout") && arrived && !sched)
		lbl_add(&m->ev.l[L_REJECTIONS], "timeout", 7, 1);   /* expired while queued */
	observe(m, HIST_TTFT, arrived, first);
	observe(m, HIST_E2E, arrived, done);
	observe(m, HIST_QUEUE, arrived, sched);
	observe(m, HIST_PREFILL, sched, first);
	observe(m, HIST_DECODE, first, done);
	observe(m, HIST_INFERENCE, sched, done);

	if (arrived && first && first >= arrived)
		sample(m, S_TTFT, first - arrived);
	if (arrived && done && done >= arrived)
		sample(m, S_E2E, done - arrived);
	/* vllm bench's TPOT: (e2e - ttft) / (output tokens - 1); not an ITL */
	if (first && done && done >= first && have_gen && gen > 1)
		sample(m, S_TPOT, (done - first) / (double)(gen - 1));
	if (arrived && (!m->t_first || arrived < m->t_first))
		m->t_first = arrived;
	if (done && done > m->t_last)
		m->t_last = done;
}

/* ------------------------------------------------------------- polled stats */

/* One entry of a router's "replicas" into f: kept if it is a map with an
 * endpoint not named before (the same endpoint given twice, or two cut to
 * the same label value, would make two series of one name: the first
 * stands); each figure of the wrong type is left out alone. */
static void
rep_read(const msgpack_object *o, figs *f)
{
	static const struct { const char *key; int r; } keys[] = {
		{ "in_flight", R_RUNNING }, { "routed", R_ROUTED }, { "prefix_hits", R_HITS }, { "lost", R_LOST },
		{ "queue_lag", R_QLAG }, { "queue_pending", R_QPEND },
	};
	repfigs *r = &f->rep[f->nrep];
	const msgpack_object *up;
	const char *s;
	size_t n, i;

	if (f->nrep == REP_MAX || !obj_str(obj_get(o, "endpoint"), &s, &n))
		return;
	lbl_copy(r->ep, s, n);
	for (i = 0; i < f->nrep; i++)
		if (!strcmp(f->rep[i].ep, r->ep))
			return;
	r->have = 0;
	up = obj_get(o, "up");
	if (up && up->type == MSGPACK_OBJECT_BOOLEAN) {
		r->v[R_UP] = up->via.boolean;
		r->have |= 1u << R_UP;
	}
	for (i = 0; i < sizeof keys / sizeof *keys; i++)
		if (obj_uint(obj_get(o, keys[i].key), &r->v[keys[i].r]))
			r->have |= 1u << keys[i].r;
	f->nrep++;
}

/* Reads a stats map into f; unknown keys and keys of the wrong type are skipped. */
static void
stats_read(const msgpack_object *st, figs *f, const char *ep)
{
	static const struct { const char *key; int g; } gauges[] = {
		{ "running", G_RUNNING }, { "waiting", G_WAITING }, { "connections", G_CONNS },
	};
	static const struct { const char *key; int c; } counters[] = {
		{ "prompt_tokens", C_PROMPT }, { "generation_tokens", C_GEN },
		{ "preemptions", C_PREEMPT }, { "prefix_cache_queries", C_PCQ },
		{ "prefix_cache_hits", C_PCH }, { "requests", C_ADMITTED },
	};
	static const struct { const char *key; int l; } maps[] = {
		{ "finished", L_FINISHED }, { "errors", L_ERRORS }, { "rejections", L_REJECTIONS },
	};
	const msgpack_object *o;
	uint64_t u, used, total;
	double d;
	size_t i;
	uint32_t j;

	memset(f, 0, sizeof *f);
	for (i = 0; i < sizeof gauges / sizeof *gauges; i++)
		if (obj_num(obj_get(st, gauges[i].key), &d) && d >= 0) {
			f->g[gauges[i].g] = d;
			f->have_g |= 1u << gauges[i].g;
		}
	if (obj_uint(obj_get(st, "kv_blocks_used"), &used) && obj_uint(obj_get(st, "kv_blocks_total"), &total) &&
	    total > 0) {
		f->g[G_KV] = used >= total ? 1.0 : (double)used / (double)total;
		f->have_g |= 1u << G_KV;
	}
	o = obj_get(st, "draining");
	if (o && o->type == MSGPACK_OBJECT_BOOLEAN) {
		f->g[G_DRAINING] = o->via.boolean;
		f->have_g |= 1u << G_DRAINING;
	}
	for (i = 0; i < sizeof counters / sizeof *counters; i++)
		if (obj_uint(obj_get(st, counters[i].key), &u)) {
			f->c[counters[i].c] = u;
			f->have_c |= 1u << counters[i].c;
		}
	for (i = 0; i < sizeof maps / sizeof *maps; i++) {
		o = obj_get(st, maps[i].key);
		if (!o || o->type != MSGPACK_OBJECT_MAP)
			continue;
		for (j = 0; j < o->via.map.size; j++) {
			const char *s;
			size_t n;

			if (obj_str(&o->via.map.ptr[j].key, &s, &n) && obj_uint(&o->via.map.ptr[j].val, &u))
				lbl_add(&f->l[maps[i].l], s, n, u);
		}
	}
	/* a router's replicas: those among the first REP_MAX of its list that
	 * can be read (bounded whatever the list's length) */
	o = obj_get(st, "replicas");
	if (o && o->type == MSGPACK_OBJECT_ARRAY)
		for (j = 0; j < o->via.array.size && j < REP_MAX; j++)
			rep_read(&o->via.array.ptr[j], f);
	/* the histograms it keeps: those it names (an empty map says none) */
	o = obj_get(st, "histograms");
	if (o && hist_unpack(o, f->h) == 0) {
		for (i = 0; i < HIST_N; i++)
			if (obj_get(o, hist_name((hist_kind)i)))
				f->have_h |= 1u << i;
	} else if (o) {
		info_x("%s: its histograms are not in the stats format; left out", ep);
	}
}

/* u is down (why says so, naming u->ep itself when named is set): said
 * once, until it answers again */
static void
up_down(upstream *u, const char *why, int named)
{
	u->up = 0;
	u->asked = 0;
	if (!u->said)
		warn_x("%s%s%s (asked again every interval)", named ? "" : u->ep, named ? "" : ": ", why);
	u->said = 1;
}

static void
up_answer(upstream *u, const msg *m)
{
	const char *op, *code = "?", *text = "";
	size_t n, cn = 1, tn = 0;
	const msgpack_object *st = msg_get(m, "stats"), *err = msg_get(m, "error");
	char why[256];

	if (msg_str(m, "op", &op, &n) == 1 && str_is(op, n, "stats") && st && st->type == MSGPACK_OBJECT_MAP) {
		stats_read(st, &u->f, u->ep);
		u->asked = 0;
		if (!u->up && u->said)
			warn_x("%s: answering again", u->ep);
		u->up = 1;
		u->said = 0;
		return;
	}
	obj_str(obj_get(err, "code"), &code, &cn);
	obj_str(obj_get(err, "message"), &text, &tn);
	if (tn > 160)
		tn = 160;
	snprintf(why, sizeof why, "no stats in its answer (%.*s: %.*s)", (int)cn, code, (int)tn, text);
	up_down(u, why, 0);
}

static void
up_ask(metrics *m, upstream *u, double now)
{
	msgpack_packer pk;
	char err[512];

	if (u->conn && u->asked && now - u->asked < (m->o.interval * 3 > 5 ? m->o.interval * 3 : 5))
		return;   /* the answer may yet come: a busy engine answers between steps */
	if (u->conn && u->asked) {
		io_close(u->conn);
		u->conn = NULL;
		up_down(u, "no answer to the stats query", 0);
	}
	if (!u->conn) {
		if (now < u->next_dial)
			return;
		u->next_dial = now + m->o.interval;
		/* a TCP connect blocks until it is refused or made: fine for the
		 * daemons of one host or rack, which answer at once either way */
		m->dialing = 1;
		u->conn = io_loop_dial(m->loop, u->ep, 0, err, sizeof err);
		m->dialing = 0;
		if (!u->conn) {
			up_down(u, err, 1);
			return;
		}
		io_conn_set_data(u->conn, u);
	}
	m->sb.size = 0;
	msg_pk_init(&pk, &m->sb);
	msgpack_pack_map(&pk, 2);
	msg_pk_str(&pk, "op");
	msg_pk_str(&pk, "stats");
	msg_pk_str(&pk, "id");
	msg_pk_str(&pk, "metrics");
	if (io_send(u->conn, m->sb.data, m->sb.size) < 0) {
		io_close(u->conn);
		u->conn = NULL;
		up_down(u, "unable to send the stats query", 0);
		return;
	}
	u->asked = now ? now : 1e-9;
}

/* every interval: each daemon is asked (or dialled again) */
static void
on_poll_timer(io_loop *l, io_timer *t, void *ud)
{
	metrics *m = ud;
	double now = io_now();
	size_t i;

	for (i = 0; i < m->nups; i++)
		up_ask(m, m->ups[i], now);
	while (m->next_poll <= now)   /* the next tick, not a drift of them */
		m->next_poll += m->o.interval;
	io_timer_at(l, t, m->next_poll);
}

/* ------------------------------------------------------------- Prometheus text */

typedef struct sbuf {
	char *p;
	size_t n, cap;
} sbuf;

__attribute__((format(printf, 2, 3))) static void
put(sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int k;

	for (;;) {
		va_start(ap, fmt);
		k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
		va_end(ap);
		if (k >= 0 && (size_t)k < b->cap - b->n)
			break;
		b->cap = b->cap * 2 + (k > 0 ? (size_t)k : 0) + 256;
		b->p = xrealloc(b->p, b->cap);
	}
	b->n += (size_t)k;
}

/* A float as Prometheus clients print it: "1.0", "0.001", "+Inf", the
 * shortest digits that read back as the same double. */
static void
fmt_num(char *s, size_t n, double v)
{
	int prec;

	if (isnan(v)) {
		snprintf(s, n, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(s, n, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == floor(v) && fabs(v) < 1e15) {
		snprintf(s, n, "%.1f", v);
		return;
	}
	for (prec = 15; prec < 17; prec++) {
		snprintf(s, n, "%.*g", prec, v);
		if (strtod(s, 0) == v)
			return;
	}
	snprintf(s, n, "%.17g", v);
}

/* the label that says where a series comes from: endpoint="..." or source="events" */
static void
put_src(sbuf *b, const upstream *u)
{
	const char *s;

	if (!u) {
		put(b, "source=\"events\"");
		return;
	}
	put(b, "endpoint=\"");
	for (s = u->ep; *s; s++) {
		if (*s == '\\' || *s == '"')
			put(b, "\\%c", *s);
		else
			put(b, "%c", *s >= 0x20 && *s < 0x7f ? *s : '_');
	}
	put(b, "\"");
}

/* a label value, to go between its quotes: backslashes and quotes escaped */
static void
put_lbl(sbuf *b, const char *s)
{
	for (; *s; s++)
		put(b, *s == '\\' || *s == '"' ? "\\%c" : "%c", *s);
}

/* F_RGAUGE, F_RCOUNTER: one series per replica of a router, label "replica" */
enum { F_UP, F_GAUGE, F_COUNTER, F_LABELS, F_HIST, F_RGAUGE, F_RCOUNTER };

static const struct family {
	const char *name;
	int kind, idx;
	const char *label;     /* F_LABELS, F_RGAUGE, F_RCOUNTER: the label's name */
	const char *help;
} families[] = {
	{ "up", F_UP, 0, 0, "1 if the daemon answered its latest stats query with stats, else 0" },
	{ "num_requests_running", F_GAUGE, G_RUNNING, 0, "Number of requests running (scheduled in the engine; batchd: in flight at the engine)" },
	{ "num_requests_waiting", F_GAUGE, G_WAITING, 0, "Number of requests waiting (queued, not yet running)" },
	{ "kv_cache_usage_perc", F_GAUGE, G_KV, 0, "KV cache usage, 0 to 1 (used blocks / all blocks)" },
	{ "num_connections", F_GAUGE, G_CONNS, 0, "Client connections open at the daemon" },
	{ "draining", F_GAUGE, G_DRAINING, 0, "1 if the daemon saw SIGTERM and takes nothing new" },
	{ "prompt_tokens_total", F_COUNTER, C_PROMPT, 0, "Number of prefill (prompt) tokens processed" },
	{ "generation_tokens_total", F_COUNTER, C_GEN, 0, "Number of generation tokens processed" },
	{ "request_success_total", F_LABELS, L_FINISHED, "finished_reason", "Count of finished requests by finish reason (stop, length, cancelled, timeout, error)" },
	{ "request_errors_total", F_LABELS, L_ERRORS, "code", "Count of requests answered with an error, by error code" },
	{ "admission_rejections_total", F_LABELS, L_REJECTIONS, "reason", "Count of requests refused before the engine ran them, by reason (overloaded, rate_limited, draining, timeout)" },
	{ "num_preemptions_total", F_COUNTER, C_PREEMPT, 0, "Cumulative number of preemptions from the engine" },
	{ "prefix_cache_queries_total", F_COUNTER, C_PCQ, 0, "Prefix cache queries, in terms of number of queried tokens" },
	{ "prefix_cache_hits_total", F_COUNTER, C_PCH, 0, "Prefix cache hits, in terms of number of cached tokens" },
	{ "requests_admitted_total", F_COUNTER, C_ADMITTED, 0, "Number of requests the daemon admitted" },
	{ "bad_events_total", F_COUNTER, C_BAD, 0, "Messages on the event streams that were not events (unreadable, over a limit, not a map)" },
	{ "time_to_first_token_seconds", F_HIST, HIST_TTFT, 0, "Histogram of time to first token in seconds (first_token - arrived)" },
	{ "inter_token_latency_seconds", F_HIST, HIST_ITL, 0, "Histogram of inter-token latency in seconds (gaps between a streamed request's events)" },
	{ "e2e_request_latency_seconds", F_HIST, HIST_E2E, 0, "Histogram of e2e request latency in seconds (done - arrived)" },
	{ "request_queue_time_seconds", F_HIST, HIST_QUEUE, 0, "Histogram of time spent waiting in the queue in seconds (scheduled - arrived)" },
	{ "request_inference_time_seconds", F_HIST, HIST_INFERENCE, 0, "Histogram of time spent running in the engine in seconds (done - scheduled)" },
	{ "request_prefill_time_seconds", F_HIST, HIST_PREFILL, 0, "Histogram of time spent in prefill in seconds (first_token - scheduled)" },
	{ "request_decode_time_seconds", F_HIST, HIST_DECODE, 0, "Histogram of time spent in decode in seconds (done - first_token)" },
	{ "replica_up", F_RGAUGE, R_UP, "replica", "1 if the router has the replica up (it answered the router's stats query), else 0" },
	{ "replica_requests_running", F_RGAUGE, R_RUNNING, "replica", "Requests the router has in flight at the replica" },
	{ "replica_requests_routed_total", F_RCOUNTER, R_ROUTED, "replica", "Requests the router sent to the replica (one sent again counts again)" },
	{ "replica_prefix_hits_total", F_RCOUNTER, R_HITS, "replica", "Requests the router sent to the replica because it held their longest cached prefix" },
	{ "replica_lost_total", F_RCOUNTER, R_LOST, "replica", "Times the router lost the replica (its connection closed, or silent with work)" },
	{ "replica_queue_lag", F_RGAUGE, R_QLAG, "replica", "A Redis stream replica: jobs no worker has taken yet (XINFO GROUPS lag)" },
	{ "replica_queue_pending", F_RGAUGE, R_QPEND, "replica", "A Redis stream replica: jobs taken by a worker and not yet answered (XINFO GROUPS pending)" },
};

#define FAM_N (sizeof families / sizeof *families)

/* what the event streams can tell: the rest is a daemon's to say */
static int
events_have(const struct family *fa)
{
	switch (fa->kind) {
	case F_COUNTER: return fa->idx == C_PROMPT || fa->idx == C_GEN || fa->idx == C_PCQ ||
			       fa->idx == C_PCH || fa->idx == C_BAD;
	case F_LABELS:
	case F_HIST: return 1;
	default: return 0;
	}
}

static void
put_series(sbuf *b, const struct family *fa, const figs *f, const upstream *u)
{
	char num[64];
	size_t i, nb;
	const double *le;
	uint64_t cum;
	const hist *h;

	switch (fa->kind) {
	case F_UP:
		put(b, "sluice:%s{", fa->name);
		put_src(b, u);
		put(b, "} %d\n", u->up);
		break;
	case F_GAUGE:
		if (!(f->have_g & (1u << fa->idx)))
			break;
		fmt_num(num, sizeof num, f->g[fa->idx]);
		put(b, "sluice:%s{", fa->name);
		put_src(b, u);
		put(b, "} %s\n", num);
		break;
	case F_COUNTER:
		if (u && !(f->have_c & (1u << fa->idx)))
			break;
		put(b, "sluice:%s{", fa->name);
		put_src(b, u);
		put(b, "} %llu\n", (unsigned long long)f->c[fa->idx]);
		break;
	case F_LABELS:
		for (i = 0; i < f->l[fa->idx].n; i++) {
			put(b, "sluice:%s{", fa->name);
			put_src(b, u);
			put(b, ",%s=\"", fa->label);
			put_lbl(b, f->l[fa->idx].name[i]);
			put(b, "\"} %llu\n", (unsigned long long)f->l[fa->idx].v[i]);
		}
		break;
	case F_RGAUGE:
	case F_RCOUNTER:
		for (i = 0; i < f->nrep; i++) {
			if (!(f->rep[i].have & (1u << fa->idx)))
				continue;
			put(b, "sluice:%s{", fa->name);
			put_src(b, u);
			put(b, ",%s=\"", fa->label);
			put_lbl(b, f->rep[i].ep);
			put(b, "\"} %llu\n", (unsigned long long)f->rep[i].v[fa->idx]);
		}
		break;
	case F_HIST:
		if (u && !(f->have_h & (1u << fa->idx)))
			break;
		h = &f->h[fa->idx];
		nb = hist_bounds((hist_kind)fa->idx, &le);
		for (i = 0, cum = 0; i <= nb; i++) {
			cum += h->counts[i];
			if (i < nb)
				fmt_num(num, sizeof num, le[i]);
			else
				strcpy(num, "+Inf");
			put(b, "sluice:%s_bucket{", fa->name);
			put_src(b, u);
			put(b, ",le=\"%s\"} %llu\n", num, (unsigned long long)cum);
		}
		fmt_num(num, sizeof num, h->sum);
		put(b, "sluice:%s_sum{", fa->name);
		put_src(b, u);
		put(b, "} %s\n", num);
		put(b, "sluice:%s_count{", fa->name);
		put_src(b, u);
		put(b, "} %llu\n", (unsigned long long)h->count);
		break;
	}
}

char *
metrics_render(metrics *m, size_t *len)
{
	static const char *const types[] = { "gauge", "gauge", "counter", "counter", "histogram", "gauge", "counter" };
	sbuf b = { 0, 0, 0 };
	size_t i, k;

	b.cap = 16384;
	b.p = xmalloc(b.cap);
	b.p[0] = 0;
	for (i = 0; i < FAM_N; i++) {
		const struct family *fa = &families[i];

		/* one block per family: HELP, TYPE, then every source's series */
		put(&b, "# HELP sluice:%s %s\n", fa->name, fa->help);
		put(&b, "# TYPE sluice:%s %s\n", fa->name, types[fa->kind]);
		if (m->ninputs && events_have(fa))
			put_series(&b, fa, &m->ev, NULL);
		for (k = 0; k < m->nups; k++)
			if (fa->kind == F_UP || m->ups[k]->up)
				put_series(&b, fa, &m->ups[k]->f, m->ups[k]);
	}
	*len = b.n;
	return b.p;
}

/* ------------------------------------------------------------- summary */

void
metrics_summary(metrics *m, FILE *f)
{
	static const char *const names[S_N] = { "ttft_s", "tpot_s", "itl_s", "e2e_s" };
	double span = m->t_last > m->t_first && m->t_first ? m->t_last - m->t_first : 0;
	const lblset *fin = &m->ev.l[L_FINISHED];
	size_t i;

	if (span <= 0 && m->m_last > m->m_first)
		span = m->m_last - m->m_first;   /* no timestamps: as seen here */
	fprintf(f, "requests %llu\n", (unsigned long long)m->finals);
	for (i = 0; i < fin->n; i++) {
		char w[LBL_LEN + 1];
		size_t k;

		/* one word, whatever the stream said */
		for (k = 0; fin->name[i][k]; k++)
			w[k] = isalnum((unsigned char)fin->name[i][k]) ? fin->name[i][k] : '_';
		w[k] = 0;
		fprintf(f, "finished_%s %llu\n", w, (unsigned long long)fin->v[i]);
	}
	fprintf(f, "output_tokens %llu\n", (unsigned long long)m->out_tokens);
	fprintf(f, "duration_s %.6f\n", span);
	fprintf(f, "output_tokens_per_s %.3f\n", span > 0 ? (double)m->out_tokens / span : 0.0);
	fprintf(f, "requests_per_s %.3f\n", span > 0 ? (double)m->finals / span : 0.0);
	fprintf(f, "%-8s %10s %12s %12s %12s %12s\n", "metric", "count", "mean", "p50", "p90", "p99");
	for (i = 0; i < S_N; i++) {
		samples *s = &m->s[i];

		if (!s->n) {
			fprintf(f, "%-8s %10d %12s %12s %12s %12s\n", names[i], 0, "-", "-", "-", "-");
			continue;
		}
		hist_sort(s->v, s->n);
		fprintf(f, "%-8s %10llu %12.6f %12.6f %12.6f %12.6f\n", names[i], (unsigned long long)s->seen,
			s->sum / (double)s->seen, hist_percentile(s->v, s->n, 50), hist_percentile(s->v, s->n, 90),
			hist_percentile(s->v, s->n, 99));
	}
	fflush(f);
}

static void
summary_once(metrics *m)
{
	FILE *f;

	if (!m->o.summary || m->summary_done)
		return;
	m->summary_done = 1;
	f = fdopen(m->out_fd, "w");
	if (!f)
		die_sys("unable to write the summary");
	m->out_fd = -1;
	metrics_summary(m, f);
	if (ferror(f) | fclose(f))   /* the reader sees the end of stdout now */
		die_sys("unable to write the summary");
}

/* ------------------------------------------------------------- io */

static void
on_open(io_loop *l, io_conn *c, void *ud)
{
	metrics *m = ud;
	evconn *ec;

	(void)l;
	if (m->dialing)
		return;   /* a daemon's: up_ask sets its data */
	ec = xcalloc(1, sizeof *ec);
	ec->kind = CONN_EVENTS;
	ec->serial = ++m->serial;
	ec->stream = m->setting_up;   /* stdin or fd:N, opened by metrics_input */
	if (ec->stream)
		m->streams_open++, m->streams_total++;
	ec->next = m->evconns;
	if (m->evconns)
		m->evconns->prev = ec;
	m->evconns = ec;
	io_conn_set_data(c, ec);
}

static int
is_upstream(const io_conn *c)
{
	const int *kind = io_conn_data(c);

	return kind && *kind == CONN_UPSTREAM;
}

static void
on_msg(io_loop *l, io_conn *c, const msg *ms, void *ud)
{
	const evconn *ec = io_conn_data(c);

	(void)l;
	if (is_upstream(c))
		up_answer(io_conn_data(c), ms);
	else if (ec)
		metrics_event(ud, ec->serial, ms, io_now());
}

static void
on_bad(io_loop *l, io_conn *c, const char *why, void *ud)
{
	metrics *m = ud;

	(void)l;
	if (is_upstream(c))
		return;
	m->ev.c[C_BAD]++;
	if (m->bad_warned++ < WARN_BAD)
		warn_x("%s: a message left out: %s%s", io_conn_name(c), why,
		       m->bad_warned == WARN_BAD ? " (no more of these warnings)" : "");
}

static void
on_broken(io_loop *l, io_conn *c, const char *why, void *ud)
{
	metrics *m = ud;

	(void)l;
	if (is_upstream(c))
		return;   /* on_close follows: it is asked again later */
	m->ev.c[C_BAD]++;
	warn_x("%s: %s; nothing after it is read", io_conn_name(c), why);
	if (io_conn_is_stdio(c))
		m->bad_stdin = 1;
}

static void
on_eof(io_loop *l, io_conn *c, void *ud)
{
	(void)l;
	(void)ud;
	io_shutdown(c);   /* nothing is ever sent on an event stream */
}

static void
on_close(io_loop *l, io_conn *c, const char *why, void *ud)
{
	metrics *m = ud;
	evconn *ec = io_conn_data(c);

	(void)l;
	if (is_upstream(c)) {
		upstream *u = io_conn_data(c);

		u->conn = NULL;
		up_down(u, why ? why : "it closed the connection", 0);
		return;
	}
	if (!ec)
		return;
	if (ec->stream) {
		m->streams_open--;
		if (why)
			warn_x("%s: %s", io_conn_name(c), why);
	}
	if (ec->prev)
		ec->prev->next = ec->next;
	else
		m->evconns = ec->next;
	if (ec->next)
		ec->next->prev = ec->prev;
	free(ec);
	io_conn_set_data(c, NULL);
}

/* ------------------------------------------------------------- HTTP */

static enum MHD_Result
http_answer(void *cls, struct MHD_Connection *hc, const char *url, const char *method,
	    const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	static char nf[] = "not found: the metrics are at /metrics\n", na[] = "method not allowed\n";
	metrics *m = cls;
	struct MHD_Response *r;
	enum MHD_Result ret;
	unsigned status = MHD_HTTP_OK;
	int get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
	size_t len;
	char *body;

	(void)version;
	(void)upload;
	(void)upload_size;
	(void)con_cls;
	if (strcmp(url, "/metrics")) {
		status = MHD_HTTP_NOT_FOUND;
		r = MHD_create_response_from_buffer(sizeof nf - 1, nf, MHD_RESPMEM_PERSISTENT);
	} else if (!get) {
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
		r = MHD_create_response_from_buffer(sizeof na - 1, na, MHD_RESPMEM_PERSISTENT);
		if (r)
			MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	} else {
		body = metrics_render(m, &len);
		r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
		if (!r)
			free(body);
		else
			MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
						"text/plain; version=0.0.4; charset=utf-8");
	}
	if (!r)
		return MHD_NO;
	if (status != MHD_HTTP_OK)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	ret = MHD_queue_response(hc, status, r);
	MHD_destroy_response(r);
	return ret;
}

int
metrics_listen(metrics *m, const char *ep, char *err, size_t errlen)
{
	static const struct MHD_OptionItem opts[] = {
		{ MHD_OPTION_CONNECTION_LIMIT, 64, NULL },
		{ MHD_OPTION_CONNECTION_TIMEOUT, 10, NULL },
		{ MHD_OPTION_END, 0, NULL },
	};

	if (m->http.d) {
		seterr(err, errlen, "unable to listen on %s: one -l only", ep);
		return -1;
	}
	return httpd_start(&m->http, m->loop, ep, 0, http_answer, m, opts, err, errlen);
}

/* ------------------------------------------------------------- the program */

metrics *
metrics_new(const metrics_opts *o)
{
	static const io_handler h = { on_open, on_msg, on_bad, on_close, on_eof, on_broken };
	io_limits lim = { 1024, 30000, (size_t)64 << 20, 0 };
	metrics *m = xcalloc(1, sizeof *m);

	m->o = *o;
	if (!(m->o.interval > 0))
		m->o.interval = 1;
	m->rng = 0x9e3779b97f4a7c15ull;
	m->http = (httpd)HTTPD_ZERO;
	m->seed = ((uint64_t)getpid() << 32) ^ (uint64_t)(io_now() * 1e9) ^ (uint64_t)(uintptr_t)m;
	m->itabn = 1u << 16;
	m->itab = xcalloc(m->itabn, sizeof *m->itab);
	msgpack_sbuffer_init(&m->sb);
	/* the summary goes to stdout even after io has given fd 1 away (it
	 * lets the reader of "-" see the end of its stream) */
	m->out_fd = o->summary ? dup(1) : -1;
	if (o->summary && m->out_fd < 0)
		die_sys("unable to use stdout");
	/* the finish reasons a request can have, there from the start (0) */
	lbl_add(&m->ev.l[L_FINISHED], "stop", 4, 0);
	lbl_add(&m->ev.l[L_FINISHED], "length", 6, 0);
	lbl_add(&m->ev.l[L_FINISHED], "cancelled", 9, 0);
	lbl_add(&m->ev.l[L_FINISHED], "timeout", 7, 0);
	lbl_add(&m->ev.l[L_FINISHED], "error", 5, 0);
	daemon_init(m->o.ready_fd);   /* SIGTERM and SIGINT to the signalfd of daemon_run, SIGPIPE ignored */
	m->loop = io_loop_new(&h, m);
	io_loop_set_limits(m->loop, &lim);
	m->poll_timer = (io_timer)IO_TIMER_ZERO;
	m->poll_timer.cb = on_poll_timer;
	m->poll_timer.ud = m;
	return m;
}

int
metrics_input(metrics *m, const char *ep, char *err, size_t errlen)
{
	addr a = ADDR_ZERO;
	int before = m->streams_total, r;

	if (addr_parse(ep, &a, err, errlen) == 0 && a.kind == ADDR_REDIS) {
		addr_free(&a);
		seterr(err, errlen, "unable to listen on %s: a Redis stream is not an event source here; "
		       "read its events with a worker and pipe them in", ep);
		return -1;
	}
	addr_free(&a);
	m->setting_up = 1;
	r = io_loop_listen(m->loop, ep, 0, err, errlen);
	m->setting_up = 0;
	if (r < 0)
		return -1;
	m->ninputs++;
	if (m->streams_total == before)
		m->listening_inputs++;
	return 0;
}

void
metrics_upstream(metrics *m, const char *ep)
{
	upstream *u;

	if (m->nups == MAX_UPSTREAMS)
		die_x(EXIT_USAGE, "at most %d -u endpoints", MAX_UPSTREAMS);
	u = xcalloc(1, sizeof *u);
	u->kind = CONN_UPSTREAM;
	u->ep = xstrdup(ep);
	m->ups[m->nups++] = u;
}

static void
on_drain(void *ud)
{
	((metrics *)ud)->stopping = 1;
}

static int
is_done(void *ud)
{
	metrics *m = ud;

	return m->stopping || (m->ended && !m->http.d);
}

/* after every poll: has the input ended? and libmicrohttpd's share */
static int
on_turn(void *ud)
{
	metrics *m = ud;

	if (!m->ended && m->ninputs && !m->listening_inputs && m->streams_open == 0) {
		m->ended = 1;
		summary_once(m);
	}
	httpd_run(&m->http);
	return 0;
}

int
metrics_run(metrics *m)
{
	static const daemon_ops ops = { on_drain, NULL, is_done, on_turn };
	daemon_cfg cfg = DAEMON_CFG_ZERO;

	cfg.ready_fd = m->o.ready_fd;
	if (m->nups) {
		m->next_poll = io_now();
		io_timer_at(m->loop, &m->poll_timer, m->next_poll);
	}
	httpd_run(&m->http);
	daemon_run(m->loop, &cfg, &ops, m);
	summary_once(m);
	return m->ended && m->bad_stdin && !m->http.d ? EXIT_SYS : 0;
}

void
metrics_free(metrics *m)
{
	itl_ent *e, *next;
	size_t i;

	if (!m)
		return;
	io_timer_stop(m->loop, &m->poll_timer);
	httpd_stop(&m->http);
	io_loop_free(m->loop);   /* closes without on_close: */
	while (m->evconns) {
		evconn *ec = m->evconns;
		m->evconns = ec->next;
		free(ec);
	}
	for (i = 0; i < m->nups; i++) {
		free(m->ups[i]->ep);
		free(m->ups[i]);
	}
	for (e = m->oldest; e; e = next) {
		next = e->newer;
		free(e);
	}
	for (e = m->free_ents; e; e = next) {
		next = e->hnext;
		free(e);
	}
	free(m->itab);
	for (i = 0; i < S_N; i++)
		free(m->s[i].v);
	msgpack_sbuffer_destroy(&m->sb);
	if (m->out_fd >= 0)
		close(m->out_fd);
	free(m);
}
