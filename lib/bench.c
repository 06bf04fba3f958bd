/* bench: `sluice bench`, a load generator for a serving endpoint. It sends
 * requests from a dataset (random token ids, shared prefixes, or a JSONL
 * file) at a fixed concurrency or at a request rate (Poisson or gamma
 * arrivals), times every chunk that comes back, and reports what
 * `vllm bench serve` reports: request, output and total throughput, goodput,
 * and TTFT, TPOT, ITL and E2EL as mean, median, p90 and p99.
 *
 * This file is the load and the figures; bench_native.c speaks to sluice
 * endpoints and bench_openai.c to OpenAI-compatible HTTP servers, through
 * the small interface in bench_int.h. What is kept per run is bounded by
 * the number of requests (and their max_tokens), never by what a server
 * sends. */

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "addr.h"
#include "bench_int.h"
#include "die.h"
#include "hist.h"
#include "io.h"
#include "json.h"
#include "msg.h"

#define USAGE "sluice bench (-u endpoint | --openai url [--model name] [--api-key key]) " \
	"[-c n | --sweep n,n,...] [--rate r] [--burstiness b] [--seed n] [-n num-prompts | --duration s] " \
	"[--warmup n] [--dataset random|prefix|jsonl] [--file f] [--input-len n] [--output-len n] " \
	"[--range-ratio r] [--vocab-size n] [--num-prefixes n] [--prefix-len n] " \
	"[--slo-ttft-ms ms] [--slo-tpot-ms ms] [--timeout s] [--json file] [--plot file.png] [-v]"

#define MAX_CODES 32           /* distinct failure codes told apart; the rest are "other" */
#define CODE_LEN 40            /* bytes of a failure code kept */
#define MAX_SWEEP 64
#define MAX_LEN (1u << 20)     /* --input-len, --output-len, --prefix-len */

enum { DS_RANDOM, DS_PREFIX, DS_JSONL };

/* ================================================================ random numbers */

/* splitmix64: small, seeded, and good enough to draw lengths, ids and gaps */
typedef struct rng {
	uint64_t s;
} rng;

static uint64_t
rng_next(rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static rng
rng_seed(uint64_t seed, uint64_t stream)
{
	rng r = {seed ^ (stream * 0xd1b54a32d192ed03ull)};

	rng_next(&r);
	return r;
}

/* uniform in [0, 1) */
static double
rng_unit(rng *r)
{
	return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* uniform in [lo, hi] */
static uint64_t
rng_range(rng *r, uint64_t lo, uint64_t hi)
{
	return hi <= lo ? lo : lo + rng_next(r) % (hi - lo + 1);
}

static double
rng_normal(rng *r)
{
	double u = 1.0 - rng_unit(r), v = rng_unit(r);

	return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* Gamma(k, 1): Marsaglia and Tsang (2000); k < 1 by the boost U^(1/k). */
static double
rng_gamma(rng *r, double k)
{
	double d, c, x, v, u;

	if (k < 1.0)
		return rng_gamma(r, k + 1.0) * pow(1.0 - rng_unit(r), 1.0 / k);
	d = k - 1.0 / 3.0;
	c = 1.0 / sqrt(9.0 * d);
	for (;;) {
		do {
			x = rng_normal(r);
			v = 1.0 + c * x;
		} while (v <= 0.0);
		v = v * v * v;
		u = 1.0 - rng_unit(r);
		if (log(u) < 0.5 * x * x + d - d * v + d * log(v))
			return d * v;
	}
}

/* Seconds to the next arrival, as vLLM draws them: gamma with shape b and
 * scale 1/(rate*b), so the mean is 1/rate; b = 1 is a Poisson process, b < 1
 * burstier, b > 1 more even. */
static double
arrival_gap(rng *r, double rate, double b)
{
	if (b == 1.0)
		return -log(1.0 - rng_unit(r)) / rate;
	return rng_gamma(r, b) / (rate * b);
}

/* ================================================================ state */

typedef struct dist {
	size_t n;
	double mean, std, p50, p90, p99;   /* ms */
} dist;

/* The figures of one run. */
typedef struct result {
	unsigned conc;                  /* 0: unlimited */
	size_t total, completed, failed;
	size_t errs[MAX_CODES + 1];     /* failures by code */
	double duration;                /* s: first send to last answer */
	uint64_t in_tok, out_tok, cached_tok;
	size_t ncached;                 /* completed requests whose usage gave cached_tokens */
	size_t good;                    /* completed requests within the SLOs */
	dist ttft, tpot, itl, e2el;
	double *send;                   /* per request: when it was sent (s) */
	size_t nsend;
} result;

/* The dataset's state during one run. */
typedef struct data {
	rng r;
	uint32_t *prefix;               /* num_prefixes * prefix_len ids */
	uint32_t *ids;                  /* one prompt's ids */
	size_t cids;
	char *text;                     /* one prompt as text (OpenAI targets) */
	size_t ctext;
} data;

struct bench {
	bench_target t;
	const bench_client *cl;
	int openai;
	char *url;                      /* --openai without a trailing '/' */
	/* the load */
	unsigned conc;                  /* -c; 0: unlimited */
	double rate;                    /* --rate; 0: infinite */
	double burst;
	uint64_t seed;
	size_t nprompts;
	double duration;                /* --duration; 0: run --num-prompts */
	size_t warmup;
	unsigned sweep[MAX_SWEEP];
	size_t nsweep;
	/* the data */
	int ds;
	const char *file;
	unsigned in_len, out_len, vocab, nprefix, prefix_len;
	double range;
	msgpack_sbuffer lbuf;           /* jsonl: every line as msgpack */
	msgpack_zone lzone;
	msgpack_object *lines;
	size_t nlines;
	/* the report */
	double slo_ttft, slo_tpot;      /* ms; 0: none */
	const char *json, *plot;
	int progress;                   /* 0 none, 1 a terminal line, 2 a line a second (-v) */
	char codes[MAX_CODES + 1][CODE_LEN + 1];
	size_t ncodes;
	/* the current run */
	bench_req *req;
	size_t nreq, creq;              /* issued so far, room */
	size_t inflight, ndone, oldest; /* oldest: no request before it is in flight */
	size_t total;                   /* requests of this run (0: until --duration) */
	int lost;                       /* the target went away: nothing more is sent */
	struct timespec t0;
	double shown;                   /* when progress was last written */
};

/* ================================================================ the core, for the clients */

bench_target *
bench_target_of(bench *b)
{
	return &b->t;
}

double
bench_now(bench *b)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)(ts.tv_sec - b->t0.tv_sec) + (double)(ts.tv_nsec - b->t0.tv_nsec) * 1e-9;
}

bench_req *
bench_req_at(bench *b, size_t i)
{
	return i < b->nreq ? &b->req[i] : NULL;
}

bench_req *
bench_inflight(bench *b, size_t i)
{
	return i < b->nreq && b->req[i].state == BR_SENT ? &b->req[i] : NULL;
}

/* The index of a failure code, interned; past MAX_CODES distinct ones, "other". */
static int
code_of(bench *b, const char *code, size_t n)
{
	size_t i;

	if (n > CODE_LEN)
		n = CODE_LEN;
	for (i = 0; i < b->ncodes; i++)
		if (strlen(b->codes[i]) == n && !memcmp(b->codes[i], code, n))
			return (int)i;
	if (b->ncodes == MAX_CODES)
		return MAX_CODES;
	memcpy(b->codes[b->ncodes], code, n);
	b->codes[b->ncodes][n] = 0;
	/* a code from a server is printed: keep it to plain characters */
	for (i = 0; i < n; i++)
		if ((unsigned char)b->codes[b->ncodes][i] < 0x21 || (unsigned char)b->codes[b->ncodes][i] > 0x7e)
			b->codes[b->ncodes][i] = '?';
	return (int)b->ncodes++;
}

static void
req_end(bench *b, bench_req *r, int state)
{
	r->state = state;
	r->done = bench_now(b);
	b->inflight--;
	b->ndone++;
	if (state == BR_FAILED) {
		free(r->itl);
		r->itl = NULL;
		r->nitl = r->citl = 0;
	}
}

void
bench_fail(bench *b, size_t i, const char *code, size_t n)
{
	bench_req *r = bench_inflight(b, i);

	if (!r)
		return;
	r->err = code_of(b, code, n);
	req_end(b, r, BR_FAILED);
	info_x("request %zu failed: %.*s", i, (int)(n > CODE_LEN ? CODE_LEN : n), code);
}

static void
fail_s(bench *b, size_t i, const char *code)
{
	bench_fail(b, i, code, strlen(code));
}

void
bench_chunk(bench *b, size_t i, uint32_t ntok)
{
	bench_req *r = bench_inflight(b, i);
	double t;

	if (!r)
		return;
	t = bench_now(b);
	if (r->first < 0) {
		r->first = t;
	} else {
		if (r->nitl >= (uint64_t)r->max_tokens + ITL_SLACK) {
			fail_s(b, i, "protocol");   /* far more chunks than tokens asked for */
			return;
		}
		if (r->nitl == r->citl) {
			r->citl = r->citl ? 2 * r->citl : 16;
			if (r->citl > r->max_tokens + ITL_SLACK)
				r->citl = r->max_tokens + ITL_SLACK;
			r->itl = xrealloc(r->itl, r->citl * sizeof *r->itl);
		}
		r->itl[r->nitl++] = (float)(t - r->last);
	}
	r->last = t;
	r->out_tokens += ntok;
}

void
bench_finish(bench *b, size_t i, const bench_usage *u)
{
	bench_req *r = bench_inflight(b, i);

	if (!r)
		return;
	r->u_prompt = u->prompt;
	r->u_completion = u->completion;
	r->u_cached = u->cached;
	req_end(b, r, BR_DONE);
}

void
bench_lost(bench *b, const char *code, const char *why)
{
	size_t i;

	if (!b->lost)
		warn_x("%s: %s", b->openai ? b->t.url : b->t.endpoint, why ? why : "closed");
	b->lost = 1;
	for (i = b->oldest; i < b->nreq; i++)
		if (b->req[i].state == BR_SENT)
			fail_s(b, i, code);
}

/* ================================================================ data */

/* Words for prompts sent as text: short, common, mostly one token each. */
static const char *const words[] = {
	"the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
	"on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an",
	"had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there",
	"been", "if", "more", "when", "will", "would", "who", "so", "no", "time", "water", "river",
	"stone", "light", "house", "road", "small", "old", "green", "day", "night", "city", "tree",
	"field", "cloud", "hand", "door", "book", "song", "bread", "salt", "wind", "snow", "fire",
	"bridge", "market", "letter", "garden", "window", "morning", "evening", "north", "south",
	"river", "valley", "summer", "winter", "number", "paper", "table", "story", "music",
};
#define NWORDS (sizeof words / sizeof *words)

static void
data_init(bench *b, data *d, uint64_t seed)
{
	size_t i, n;

	memset(d, 0, sizeof *d);
	d->r = rng_seed(seed, 2);
	if (b->ds == DS_PREFIX) {
		n = (size_t)b->nprefix * b->prefix_len;
		d->prefix = xmalloc((n ? n : 1) * sizeof *d->prefix);
		for (i = 0; i < n; i++)
			d->prefix[i] = (uint32_t)rng_range(&d->r, 0, b->vocab - 1);
	}
}

static void
data_free(data *d)
{
	free(d->prefix);
	free(d->ids);
	free(d->text);
	memset(d, 0, sizeof *d);
}

/* A length around len: uniform in [len*(1-r), len*(1+r)], at least 1. */
static uint32_t
ranged(rng *r, unsigned len, double ratio)
{
	uint64_t lo = (uint64_t)floor(len * (1.0 - ratio)), hi = (uint64_t)floor(len * (1.0 + ratio));

	if (lo < 1)
		lo = 1;
	if (hi < lo)
		hi = lo;
	return (uint32_t)rng_range(r, lo, hi);
}

static void
ids_room(data *d, size_t n)
{
	if (n > d->cids) {
		d->cids = n;
		d->ids = xrealloc(d->ids, n * sizeof *d->ids);
	}
}

/* The ids as words, for a server that takes text. */
static void
ids_text(data *d, size_t n)
{
	size_t i, len = 0, w;

	for (i = 0; i < n; i++) {
		const char *s = words[d->ids[i] % NWORDS];

		w = strlen(s);
		if (len + w + 2 > d->ctext) {
			d->ctext = 2 * (len + w + 2) + 256;
			d->text = xrealloc(d->text, d->ctext);
		}
		if (i)
			d->text[len++] = ' ';
		memcpy(d->text + len, s, w);
		len += w;
	}
	if (!d->text)
		d->text = xcalloc(1, 1), d->ctext = 1;
	d->text[len] = 0;
}

/* The next prompt of a run (request i). */
static void
data_next(bench *b, data *d, size_t i, bench_prompt *p, bench_req *r)
{
	uint32_t in, k, j;
	const msgpack_object *o;

	memset(p, 0, sizeof *p);
	if (b->ds == DS_JSONL) {
		const msgpack_object_map *m;

		o = &b->lines[i % b->nlines];
		m = &o->via.map;
		p->line = o;
		p->max_tokens = ranged(&d->r, b->out_len, b->range);
		for (j = 0; j < m->size; j++) {
			/* the line was checked by jsonl_load: JSON keys are strings */
			const msgpack_object *key = &m->ptr[j].key, *v = &m->ptr[j].val;

			if (key->via.str.size == 10 && !memcmp(key->via.str.ptr, "max_tokens", 10))
				p->max_tokens = (uint32_t)v->via.u64;
			else if (key->via.str.size == 6 && !memcmp(key->via.str.ptr, "prompt", 6)) {
				p->text = v->via.str.ptr;
				p->ntext = v->via.str.size;
			} else if (key->via.str.size == 6 && !memcmp(key->via.str.ptr, "tokens", 6)) {
				ids_room(d, v->via.array.size ? v->via.array.size : 1);
				for (k = 0; k < v->via.array.size; k++)
					d->ids[k] = (uint32_t)v->via.array.ptr[k].via.u64;
				p->tokens = d->ids;
				p->ntok = v->via.array.size;
			}
		}
		r->in_tokens = (uint32_t)p->ntok;
		r->max_tokens = p->max_tokens;
		return;
	}
	in = ranged(&d->r, b->in_len, b->range);
	p->max_tokens = ranged(&d->r, b->out_len, b->range);
	k = 0;
	if (b->ds == DS_PREFIX) {
		uint32_t which = (uint32_t)rng_range(&d->r, 0, b->nprefix - 1);

		ids_room(d, (size_t)b->prefix_len + in);
		memcpy(d->ids, d->prefix + (size_t)which * b->prefix_len, b->prefix_len * sizeof *d->ids);
		k = b->prefix_len;
	} else {
		ids_room(d, in);
	}
	for (j = 0; j < in; j++)
		d->ids[k + j] = (uint32_t)rng_range(&d->r, 0, b->vocab - 1);
	r->in_tokens = k + in;
	r->max_tokens = p->max_tokens;
	if (b->openai) {
		ids_text(d, k + in);
		p->text = d->text;
		p->ntext = strlen(d->text);
	} else {
		p->tokens = d->ids;
		p->ntok = k + in;
	}
}

/* --dataset jsonl: every line {"prompt": str} or {"tokens": [uint...]},
 * with "max_tokens" optional; other keys go to a native target as they are. */
static void
jsonl_load(bench *b)
{
	FILE *f = fopen(b->file, "r");
	char *line = NULL, err[256];
	size_t cap = 0, lineno = 0, i, *off = NULL, noff = 0, coff = 0;
	ssize_t n;
	msgpack_packer pk;

	if (!f)
		die_sys("unable to open %s", b->file);
	msgpack_sbuffer_init(&b->lbuf);
	msg_pk_init(&pk, &b->lbuf);
	while ((n = getline(&line, &cap, f)) >= 0) {
		size_t start = b->lbuf.size;

		lineno++;
		for (i = 0; i < (size_t)n && strchr(" \t\r\n", line[i]); i++)
			;
		if (i == (size_t)n)
			continue;
		if (json_to_msgpack(line, (size_t)n, NULL, &pk, err, sizeof err) < 0)
			die_x(EXIT_SYS, "unable to read %s: line %zu: %s", b->file, lineno, err);
		if (noff == coff) {
			coff = coff ? 2 * coff : 64;
			off = xrealloc(off, 2 * coff * sizeof *off);
		}
		off[2 * noff] = start;
		off[2 * noff + 1] = lineno;
		noff++;
	}
	if (ferror(f))
		die_sys("unable to read %s", b->file);
	fclose(f);
	free(line);
	if (!noff)
		die_x(EXIT_SYS, "unable to use %s: it holds no requests", b->file);
	if (!msgpack_zone_init(&b->lzone, 1 << 16))
		die_x(EXIT_SYS, "unable to allocate memory: msgpack zone");
	b->lines = xcalloc(noff, sizeof *b->lines);
	for (i = 0; i < noff; i++) {
		size_t end = i + 1 < noff ? off[2 * i + 2] : b->lbuf.size, pos = off[2 * i];
		const msgpack_object *o = &b->lines[i];
		int has = 0;
		uint32_t j, k;

		if (msgpack_unpack(b->lbuf.data, end, &pos, &b->lzone, &b->lines[i]) != MSGPACK_UNPACK_SUCCESS)
			die_x(EXIT_SYS, "unable to read %s: line %zu", b->file, off[2 * i + 1]);
		if (o->type != MSGPACK_OBJECT_MAP)
			die_x(EXIT_SYS, "unable to read %s: line %zu: not a JSON object", b->file, off[2 * i + 1]);
		for (j = 0; j < o->via.map.size; j++) {
			const msgpack_object *kk = &o->via.map.ptr[j].key, *v = &o->via.map.ptr[j].val;
			const char *bad = NULL;

			if (kk->type != MSGPACK_OBJECT_STR)
				continue;
			if (kk->via.str.size == 6 && !memcmp(kk->via.str.ptr, "prompt", 6)) {
				if (v->type != MSGPACK_OBJECT_STR)
					bad = "\"prompt\" must be a string";
				has |= 1;
			} else if (kk->via.str.size == 6 && !memcmp(kk->via.str.ptr, "tokens", 6)) {
				if (v->type != MSGPACK_OBJECT_ARRAY)
					bad = "\"tokens\" must be an array of token ids";
				else
					for (k = 0; k < v->via.array.size; k++)
						if (v->via.array.ptr[k].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
						    v->via.array.ptr[k].via.u64 > UINT32_MAX)
							bad = "\"tokens\" must be an array of token ids";
				has |= 2;
			} else if (kk->via.str.size == 10 && !memcmp(kk->via.str.ptr, "max_tokens", 10)) {
				if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 < 1 ||
				    v->via.u64 > MAX_LEN)
					bad = "\"max_tokens\" must be an integer from 1 to 1048576";
			}
			if (bad)
				die_x(EXIT_SYS, "unable to read %s: line %zu: %s", b->file, off[2 * i + 1], bad);
		}
		if (has != 1 && has != 2)
			die_x(EXIT_SYS, "unable to read %s: line %zu: give one of \"prompt\" or \"tokens\"",
			      b->file, off[2 * i + 1]);
	}
	b->nlines = noff;
	free(off);
}

/* ================================================================ one run */

/* SIGINT or SIGTERM: the run in progress stops, what it did is reported
 * (its requests in flight fail as "interrupted"), and bench exits 128+sig.
 * A second one kills at once. */
static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
	interrupted = sig;
	signal(sig, SIG_DFL);
}

static void
catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static void
progress(bench *b, int last)
{
	double t = bench_now(b);

	if (!b->progress || (!last && t - b->shown < (b->progress == 1 ? 0.1 : 1.0)))
		return;
	b->shown = t;
	if (b->total)
		fprintf(stderr, "%s%s: %zu/%zu requests done, %zu in flight, %.1f s%s", b->progress == 1 ? "\r" : "",
			die_prog, b->ndone, b->total, b->inflight, t, b->progress == 1 && !last ? "\033[K" : "\n");
	else
		fprintf(stderr, "%s%s: %zu requests done, %zu in flight, %.1f/%.1f s%s", b->progress == 1 ? "\r" : "",
			die_prog, b->ndone, b->inflight, t, b->duration, b->progress == 1 && !last ? "\033[K" : "\n");
	fflush(stderr);
}

static void
run_reset(bench *b)
{
	size_t i;

	for (i = 0; i < b->nreq; i++)
		free(b->req[i].itl);
	b->nreq = b->inflight = b->ndone = b->oldest = 0;
}

/* Starts request i (the next one) at its due time. */
static void
issue(bench *b, data *d, double due)
{
	bench_prompt p;
	bench_req *r;
	size_t i = b->nreq;

	if (b->nreq == b->creq) {
		b->creq = b->creq ? 2 * b->creq : 256;
		b->req = xrealloc(b->req, b->creq * sizeof *b->req);
	}
	r = &b->req[i];
	memset(r, 0, sizeof *r);
	r->due = due;
	r->first = -1;
	r->u_prompt = r->u_completion = r->u_cached = -1;
	b->nreq++;
	data_next(b, d, i, &p, r);
	r->state = BR_SENT;
	r->sent = bench_now(b);
	b->inflight++;
	if (b->lost) {
		fail_s(b, i, "unreachable");
		return;
	}
	if (b->cl->send(b, i, &p) < 0 && r->state == BR_SENT) {
		fail_s(b, i, "unreachable");
		b->lost = 1;
	}
}

/* Fails the requests that have waited past --timeout; as every request has
 * the same timeout and they are sent in order, only the oldest are looked at.
 * Returns the seconds until the next one would time out (-1: none). */
static double
expire(bench *b)
{
	double t = bench_now(b), left;

	while (b->oldest < b->nreq && b->req[b->oldest].state != BR_SENT)
		b->oldest++;
	while (b->oldest < b->nreq) {
		bench_req *r = &b->req[b->oldest];

		if (r->state != BR_SENT) {
			b->oldest++;
			continue;
		}
		left = r->sent + b->t.timeout - t;
		if (left > 0)
			return left;
		fail_s(b, b->oldest, "timeout");
		b->cl->cancel(b, b->oldest);
		b->oldest++;
	}
	return -1;
}

static int
ms_of(double s)
{
	if (s <= 0)
		return 0;
	if (s > 3600)
		return 3600 * 1000;
	return (int)ceil(s * 1000.0);
}

/* Runs one load: n requests (or --duration) at concurrency conc (0:
 * unlimited), paced by --rate. The requests stay in b->req for the figures. */
static void
run_load(bench *b, unsigned conc, size_t n, double duration, uint64_t dseed)
{
	rng ar = rng_seed(b->seed, 1);
	double next = 0, t, wait, left;
	size_t i;
	data d;

	run_reset(b);
	data_init(b, &d, dseed);
	b->t.run++;
	b->total = duration > 0 ? 0 : n;
	if (b->lost) {
		char err[512];

		/* the target went away in an earlier run: try it once more */
		if (b->cl->open(b, err, sizeof err) == 0)
			b->lost = 0;
		else
			warn_x("%s", err);
	}
	clock_gettime(CLOCK_MONOTONIC, &b->t0);
	b->shown = -1;
	for (;;) {
		t = bench_now(b);
		if (interrupted) {
			for (i = b->oldest; i < b->nreq; i++)
				if (b->req[i].state == BR_SENT) {
					fail_s(b, i, "interrupted");
					b->cl->cancel(b, i);
				}
			break;
		}
		for (;;) {
			if (duration > 0 ? t >= duration : b->nreq >= n)
				break;
			if (b->lost && duration > 0)
				break;
			if (conc && b->inflight >= conc && !b->lost)
				break;
			if (b->rate > 0 && next > t && !b->lost)
				break;
			issue(b, &d, next);
			if (b->rate > 0)
				next += arrival_gap(&ar, b->rate, b->burst);
			t = bench_now(b);
		}
		left = b->t.timeout > 0 ? expire(b) : -1;
		if (!b->inflight && (duration > 0 ? t >= duration || b->lost : b->nreq >= n))
			break;
		/* sleep until an answer, the next arrival, a timeout or the end */
		wait = 3600;
		if (left >= 0 && left < wait)
			wait = left;
		if (b->rate > 0 && !(conc && b->inflight >= conc) && next - t < wait)
			wait = next - t;
		if (duration > 0 && duration - t < wait && duration > t)
			wait = duration - t;
		if (wait > 1.0)
			wait = 1.0;             /* a signal is seen within a second, whatever the client */
		if (b->progress == 1 && wait > 0.1)
			wait = 0.1;
		if (!b->inflight && wait > 0 && b->rate <= 0 && duration <= 0)
			wait = 0;
		b->cl->poll(b, ms_of(wait));
		progress(b, 0);
	}
	progress(b, 1);
	for (i = 0; i < b->nreq; i++)       /* transfers a client still holds */
		if (b->req[i].cl)
			b->cl->cancel(b, i);
	data_free(&d);
}

/* ================================================================ figures */


/* v in seconds; sorts it; the figures in ms */
static void
dist_of(double *v, size_t n, dist *d)
{
	double sum = 0, sq = 0;
	size_t i;

	memset(d, 0, sizeof *d);
	d->n = n;
	if (!n)
		return;
	for (i = 0; i < n; i++)
		v[i] *= 1000.0;
	hist_sort(v, n);
	for (i = 0; i < n; i++)
		sum += v[i];
	d->mean = sum / (double)n;
	for (i = 0; i < n; i++)
		sq += (v[i] - d->mean) * (v[i] - d->mean);
	d->std = sqrt(sq / (double)n);
	d->p50 = hist_percentile(v, n, 50);
	d->p90 = hist_percentile(v, n, 90);
	d->p99 = hist_percentile(v, n, 99);
}

static uint64_t
out_tokens(const bench_req *r)
{
	return r->u_completion >= 0 ? (uint64_t)r->u_completion : r->out_tokens;
}

static void
figures(bench *b, unsigned conc, result *res)
{
	double *ttft, *tpot, *itl, *e2el, end = 0;
	size_t i, nt = 0, np = 0, ni = 0, ne = 0, nitl = 0;

	memset(res, 0, sizeof *res);
	res->conc = conc;
	res->total = b->nreq;
	for (i = 0; i < b->nreq; i++)
		nitl += b->req[i].nitl;
	ttft = xmalloc((b->nreq + 1) * sizeof *ttft);
	tpot = xmalloc((b->nreq + 1) * sizeof *tpot);
	e2el = xmalloc((b->nreq + 1) * sizeof *e2el);
	itl = xmalloc((nitl + 1) * sizeof *itl);
	res->send = xmalloc((b->nreq + 1) * sizeof *res->send);
	for (i = 0; i < b->nreq; i++) {
		const bench_req *r = &b->req[i];
		uint64_t out = out_tokens(r);
		double tp = 0;
		uint32_t k;
		int good = 1;

		res->send[res->nsend++] = r->sent;
		if (r->done > end)
			end = r->done;
		if (r->state != BR_DONE) {
			res->failed++;
			res->errs[r->err]++;
			continue;
		}
		res->completed++;
		res->in_tok += r->u_prompt >= 0 ? (uint64_t)r->u_prompt : r->in_tokens;
		res->out_tok += out;
		if (r->u_cached >= 0) {
			res->cached_tok += (uint64_t)r->u_cached;
			res->ncached++;
		}
		e2el[ne++] = r->done - r->sent;
		if (r->first >= 0)
			ttft[nt++] = r->first - r->sent;
		else
			good = 0;
		if (out > 1 && r->first >= 0) {
			tp = (r->done - r->first) / (double)(out - 1);
			tpot[np++] = tp;
		}
		for (k = 0; k < r->nitl; k++)
			itl[ni++] = r->itl[k];
		if (b->slo_ttft > 0 && (r->first < 0 || (r->first - r->sent) * 1000.0 > b->slo_ttft))
			good = 0;
		if (b->slo_tpot > 0 && tp * 1000.0 > b->slo_tpot)
			good = 0;
		res->good += good;
	}
	res->duration = end;
	dist_of(ttft, nt, &res->ttft);
	dist_of(tpot, np, &res->tpot);
	dist_of(itl, ni, &res->itl);
	dist_of(e2el, ne, &res->e2el);
	free(ttft);
	free(tpot);
	free(itl);
	free(e2el);
}

/* ================================================================ the report */

static double
per_s(double x, double s)
{
	return s > 0 ? x / s : 0;
}

static void
load_text(bench *b, unsigned conc, char *s, size_t n)
{
	char c[32], r[64];

	if (conc)
		snprintf(c, sizeof c, "%u", conc);
	else
		snprintf(c, sizeof c, "unlimited");
	if (b->rate > 0)
		snprintf(r, sizeof r, "%g req/s (%s)", b->rate, b->burst == 1.0 ? "Poisson" : "gamma");
	else
		snprintf(r, sizeof r, "inf");
	snprintf(s, n, "concurrency %s, rate %s", c, r);
}

static void
dist_line(const char *name, const dist *d)
{
	if (!d->n)
		printf("  %-20s %10s %10s %10s %10s %10s\n", name, "-", "-", "-", "-", "-");
	else
		printf("  %-20s %10.2f %10.2f %10.2f %10.2f %10.2f\n", name, d->mean, d->p50, d->p90, d->p99, d->std);
}

static const char *
ds_name(int ds)
{
	return ds == DS_PREFIX ? "prefix" : ds == DS_JSONL ? "jsonl" : "random";
}

static void
report(bench *b, const result *res)
{
	char load[160];
	size_t i;

	load_text(b, res->conc, load, sizeof load);
	printf("sluice bench: %s (%s), dataset %s, %s\n", b->openai ? b->t.url : b->t.endpoint,
	       b->openai ? "openai" : "sluice", ds_name(b->ds), load);
	printf("  %-20s %zu\n", "completed", res->completed);
	printf("  %-20s %zu", "failed", res->failed);
	if (res->failed) {
		const char *sep = " (";

		for (i = 0; i <= MAX_CODES; i++)
			if (res->errs[i]) {
				printf("%s%s %zu", sep, i == MAX_CODES ? "other" : b->codes[i], res->errs[i]);
				sep = ", ";
			}
		printf(")");
	}
	printf("\n");
	printf("  %-20s %.3f s\n", "duration", res->duration);
	printf("  %-20s %.2f req/s\n", "request throughput", per_s((double)res->completed, res->duration));
	if (b->slo_ttft > 0 || b->slo_tpot > 0)
		printf("  %-20s %.2f req/s (%zu requests within the SLOs)\n", "goodput",
		       per_s((double)res->good, res->duration), res->good);
	printf("  %-20s %.2f tok/s\n", "output throughput", per_s((double)res->out_tok, res->duration));
	printf("  %-20s %.2f tok/s\n", "total throughput",
	       per_s((double)(res->in_tok + res->out_tok), res->duration));
	printf("  %-20s %llu\n", "input tokens", (unsigned long long)res->in_tok);
	printf("  %-20s %llu\n", "output tokens", (unsigned long long)res->out_tok);
	if (res->ncached)
		printf("  %-20s %llu (%.1f per request)\n", "cached tokens", (unsigned long long)res->cached_tok,
		       (double)res->cached_tok / (double)res->ncached);
	printf("  %-20s %10s %10s %10s %10s %10s\n", "(ms)", "mean", "median", "p90", "p99", "std");
	dist_line("TTFT", &res->ttft);
	dist_line("TPOT", &res->tpot);
	dist_line("ITL", &res->itl);
	dist_line("E2EL", &res->e2el);
	fflush(stdout);
}

static void
sweep_table(bench *b, const result *res, size_t n)
{
	size_t i;

	printf("sluice bench: sweep over concurrency\n");
	printf("  %11s %9s %11s %9s %9s %9s %9s %7s\n", "concurrency", "req/s", "out tok/s", "TTFT p50",
	       "TTFT p99", "TPOT p50", "TPOT p99", "failed");
	for (i = 0; i < n; i++)
		printf("  %11u %9.2f %11.2f %9.2f %9.2f %9.2f %9.2f %7zu\n", res[i].conc,
		       per_s((double)res[i].completed, res[i].duration),
		       per_s((double)res[i].out_tok, res[i].duration), res[i].ttft.p50, res[i].ttft.p99,
		       res[i].tpot.p50, res[i].tpot.p99, res[i].failed);
	(void)b;
}

/* ---- JSON: packed as msgpack, written by lib/json */

static void
pk_key(msgpack_packer *pk, const char *k)
{
	msg_pk_str(pk, k);
}

static void
pk_num(msgpack_packer *pk, const char *k, double v)
{
	pk_key(pk, k);
	msgpack_pack_double(pk, v);
}

static void
pk_u(msgpack_packer *pk, const char *k, uint64_t v)
{
	pk_key(pk, k);
	msgpack_pack_uint64(pk, v);
}

static void
pk_dist(msgpack_packer *pk, const char *name, const dist *d)
{
	static const char *const what[] = {"mean", "median", "std", "p90", "p99"};
	double v[5];
	char k[64];
	size_t i;

	v[0] = d->mean, v[1] = d->p50, v[2] = d->std, v[3] = d->p90, v[4] = d->p99;
	for (i = 0; i < 5; i++) {
		snprintf(k, sizeof k, "%s_%s_ms", what[i], name);
		pk_key(pk, k);
		if (d->n)
			msgpack_pack_double(pk, v[i]);
		else
			msgpack_pack_nil(pk);
	}
}

#define RESULT_KEYS 46

static void
pk_result(bench *b, msgpack_packer *pk, const result *res)
{
	size_t i, ne = 0;

	msgpack_pack_map(pk, RESULT_KEYS);
	pk_key(pk, "backend");
	msg_pk_str(pk, b->openai ? "openai" : "sluice");
	pk_key(pk, "target");
	msg_pk_str(pk, b->openai ? b->t.url : b->t.endpoint);
	pk_key(pk, "model");
	if (b->t.model)
		msg_pk_str(pk, b->t.model);
	else
		msgpack_pack_nil(pk);
	pk_key(pk, "dataset");
	msg_pk_str(pk, ds_name(b->ds));
	pk_key(pk, "max_concurrency");
	if (res->conc)
		msgpack_pack_uint32(pk, res->conc);
	else
		msgpack_pack_nil(pk);
	pk_key(pk, "request_rate");
	if (b->rate > 0)
		msgpack_pack_double(pk, b->rate);
	else
		msg_pk_str(pk, "inf");
	pk_num(pk, "burstiness", b->burst);
	pk_u(pk, "seed", b->seed);
	pk_u(pk, "num_prompts", res->total);
	pk_u(pk, "warmup", b->warmup);
	pk_u(pk, "input_len", b->in_len);
	pk_u(pk, "output_len", b->out_len);
	pk_num(pk, "range_ratio", b->range);
	pk_num(pk, "duration", res->duration);
	pk_u(pk, "completed", res->completed);
	pk_u(pk, "failed", res->failed);
	pk_key(pk, "errors");
	for (i = 0; i <= MAX_CODES; i++)
		ne += res->errs[i] != 0;
	msgpack_pack_map(pk, ne);
	for (i = 0; i <= MAX_CODES; i++)
		if (res->errs[i]) {
			msg_pk_str(pk, i == MAX_CODES ? "other" : b->codes[i]);
			msgpack_pack_uint64(pk, res->errs[i]);
		}
	pk_u(pk, "total_input_tokens", res->in_tok);
	pk_u(pk, "total_output_tokens", res->out_tok);
	pk_u(pk, "total_cached_tokens", res->cached_tok);
	pk_key(pk, "mean_cached_tokens");
	if (res->ncached)
		msgpack_pack_double(pk, (double)res->cached_tok / (double)res->ncached);
	else
		msgpack_pack_nil(pk);
	pk_num(pk, "request_throughput", per_s((double)res->completed, res->duration));
	pk_key(pk, "request_goodput");
	if (b->slo_ttft > 0 || b->slo_tpot > 0)
		msgpack_pack_double(pk, per_s((double)res->good, res->duration));
	else
		msgpack_pack_nil(pk);
	pk_num(pk, "output_throughput", per_s((double)res->out_tok, res->duration));
	pk_num(pk, "total_token_throughput", per_s((double)(res->in_tok + res->out_tok), res->duration));
	pk_dist(pk, "ttft", &res->ttft);
	pk_dist(pk, "tpot", &res->tpot);
	pk_dist(pk, "itl", &res->itl);
	pk_dist(pk, "e2el", &res->e2el);
	pk_key(pk, "send_offsets");
	msgpack_pack_array(pk, res->nsend);
	for (i = 0; i < res->nsend; i++)
		msgpack_pack_double(pk, res->send[i]);
}

static void
write_json(bench *b, const result *res, size_t n)
{
	msgpack_sbuffer sb, js;
	msgpack_packer pk;
	msgpack_zone z;
	msgpack_object o;
	size_t off = 0, i;
	FILE *f;

	msgpack_sbuffer_init(&sb);
	msgpack_sbuffer_init(&js);
	msg_pk_init(&pk, &sb);
	if (b->nsweep) {
		msgpack_pack_map(&pk, 2);
		pk_key(&pk, "sweep");
		msg_pk_str(&pk, "concurrency");
		pk_key(&pk, "runs");
		msgpack_pack_array(&pk, n);
	}
	for (i = 0; i < n; i++)
		pk_result(b, &pk, &res[i]);
	if (!msgpack_zone_init(&z, 1 << 16))
		die_x(EXIT_SYS, "unable to allocate memory: msgpack zone");
	if (msgpack_unpack(sb.data, sb.size, &off, &z, &o) != MSGPACK_UNPACK_SUCCESS)
		die_x(EXIT_SYS, "unable to write %s: the figures do not pack", b->json);
	json_from_msgpack(&o, &js);
	msgpack_sbuffer_write(&js, "\n", 1);
	f = !strcmp(b->json, "-") ? stdout : fopen(b->json, "w");
	if (!f)
		die_sys("unable to open %s", b->json);
	if (fwrite(js.data, 1, js.size, f) != js.size || fflush(f) != 0 || (f != stdout && fclose(f) != 0))
		die_sys("unable to write %s", b->json);
	msgpack_zone_destroy(&z);
	msgpack_sbuffer_destroy(&sb);
	msgpack_sbuffer_destroy(&js);
}

/* gnuplot's single-quoted string: a quote is written twice; no control bytes */
static void
gp_str(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++) {
		if (*s == '\'')
			fputs("''", f);
		else if ((unsigned char)*s >= 0x20)
			fputc(*s, f);
	}
	fputc('\'', f);
}

static void
gp_val(FILE *f, const dist *d, double v)
{
	if (d->n)
		fprintf(f, " %.6f", v);
	else
		fprintf(f, " ?");
}

/* --plot: p50 and p99 of TTFT and TPOT against concurrency, two panels. */
static void
write_plot(bench *b, const result *res, size_t n)
{
	FILE *g;
	size_t i;
	int st;

	fflush(stdout);
	g = popen("gnuplot", "w");
	if (!g)
		die_sys("unable to run gnuplot");
	fprintf(g, "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) "
		"{ set terminal pngcairo size 900,800 } else { set terminal png size 900,800 }\n");
	fprintf(g, "set output ");
	gp_str(g, b->plot);
	fprintf(g, "\nset datafile missing '?'\n$d << EOD\n");
	for (i = 0; i < n; i++) {
		fprintf(g, "%u", res[i].conc);
		gp_val(g, &res[i].ttft, res[i].ttft.p50);
		gp_val(g, &res[i].ttft, res[i].ttft.p99);
		gp_val(g, &res[i].tpot, res[i].tpot.p50);
		gp_val(g, &res[i].tpot, res[i].tpot.p99);
		fprintf(g, "\n");
	}
	fprintf(g, "EOD\nset multiplot layout 2,1 title ");
	fprintf(g, "\"sluice bench: \" . ");
	gp_str(g, b->openai ? b->t.url : b->t.endpoint);
	fprintf(g, "\nset logscale x 2\nset grid\nset key top left\nset xlabel 'concurrency'\n"
		"set xtics (");
	for (i = 0; i < n; i++)
		fprintf(g, "%s\"%u\" %u", i ? ", " : "", res[i].conc, res[i].conc);
	fprintf(g, ")\nset ylabel 'TTFT (ms)'\n"
		"plot $d using 1:2 with linespoints title 'TTFT p50', $d using 1:3 with linespoints title 'TTFT p99'\n"
		"set ylabel 'TPOT (ms)'\n"
		"plot $d using 1:4 with linespoints title 'TPOT p50', $d using 1:5 with linespoints title 'TPOT p99'\n"
		"unset multiplot\nset output\n");
	st = pclose(g);
	if (st == -1)
		die_sys("unable to run gnuplot");
	if (st != 0)
		die_x(EXIT_SYS, "unable to plot %s: gnuplot exited %d", b->plot,
		      WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

/* ================================================================ options */

enum {
	O_OPENAI = 256, O_MODEL, O_KEY, O_RATE, O_BURST, O_SEED, O_DURATION, O_WARMUP, O_DATASET,
	O_FILE, O_INLEN, O_OUTLEN, O_RANGE, O_VOCAB, O_NPREFIX, O_PREFIXLEN, O_SLO_TTFT, O_SLO_TPOT,
	O_TIMEOUT, O_JSON, O_PLOT, O_SWEEP,
};

static const struct option longopts[] = {
	{"help", no_argument, 0, 'h'},
	{"endpoint", required_argument, 0, 'u'},
	{"openai", required_argument, 0, O_OPENAI},
	{"model", required_argument, 0, O_MODEL},
	{"api-key", required_argument, 0, O_KEY},
	{"concurrency", required_argument, 0, 'c'},
	{"max-concurrency", required_argument, 0, 'c'},
	{"rate", required_argument, 0, O_RATE},
	{"request-rate", required_argument, 0, O_RATE},
	{"burstiness", required_argument, 0, O_BURST},
	{"seed", required_argument, 0, O_SEED},
	{"num-prompts", required_argument, 0, 'n'},
	{"duration", required_argument, 0, O_DURATION},
	{"warmup", required_argument, 0, O_WARMUP},
	{"dataset", required_argument, 0, O_DATASET},
	{"file", required_argument, 0, O_FILE},
	{"input-len", required_argument, 0, O_INLEN},
	{"output-len", required_argument, 0, O_OUTLEN},
	{"range-ratio", required_argument, 0, O_RANGE},
	{"vocab-size", required_argument, 0, O_VOCAB},
	{"num-prefixes", required_argument, 0, O_NPREFIX},
	{"prefix-len", required_argument, 0, O_PREFIXLEN},
	{"slo-ttft-ms", required_argument, 0, O_SLO_TTFT},
	{"slo-tpot-ms", required_argument, 0, O_SLO_TPOT},
	{"timeout", required_argument, 0, O_TIMEOUT},
	{"json", required_argument, 0, O_JSON},
	{"plot", required_argument, 0, O_PLOT},
	{"sweep", required_argument, 0, O_SWEEP},
	{"verbose", no_argument, 0, 'v'},
	{0, 0, 0, 0},
};

static _Noreturn void
usage_because(const char *why)
{
	fprintf(stderr, "%s: usage: %s: %s\n", die_prog, USAGE, why);
	exit(EXIT_USAGE);
}

static uint64_t
num_u(const char *s, uint64_t lo, uint64_t hi, const char *opt)
{
	char *end, why[128];
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (!*s || *end || errno || *s == '-' || *s == '+' || v < lo || v > hi) {
		snprintf(why, sizeof why, "%s wants an integer from %llu to %llu", opt,
			 (unsigned long long)lo, (unsigned long long)hi);
		usage_because(why);
	}
	return v;
}

static double
num_f(const char *s, double lo, double hi, int lo_open, const char *opt)
{
	char *end, why[128];
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (!*s || *end || errno || !isfinite(v) || v < lo || v > hi || (lo_open && v == lo)) {
		snprintf(why, sizeof why, "%s wants a number %s %g and at most %g", opt,
			 lo_open ? "above" : "from", lo, hi);
		usage_because(why);
	}
	return v;
}

static void
parse_sweep(bench *b, const char *s)
{
	char *copy = xstrdup(s), *p, *save = NULL;

	for (p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		if (b->nsweep == MAX_SWEEP)
			usage_because("--sweep takes at most 64 concurrencies");
		b->sweep[b->nsweep++] = (unsigned)num_u(p, 1, 1u << 20, "--sweep");
	}
	free(copy);
	if (!b->nsweep)
		usage_because("--sweep wants a list like 1,4,16");
}

static void
options(bench *b, int argc, char **argv)
{
	int opt, have_c = 0, have_n = 0;
	const char *ds = "random";

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+hu:c:n:v", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			printf("usage: %s\n", USAGE);
			exit(0);
		case 'u': b->t.endpoint = optarg; break;
		case O_OPENAI: b->t.url = optarg; break;
		case O_MODEL: b->t.model = optarg; break;
		case O_KEY: b->t.api_key = optarg; break;
		case 'c': b->conc = (unsigned)num_u(optarg, 1, 1u << 20, "-c"); have_c = 1; break;
		case O_RATE: b->rate = num_f(optarg, 0, 1e6, 1, "--rate"); break;
		case O_BURST: b->burst = num_f(optarg, 0, 1e6, 1, "--burstiness"); break;
		case O_SEED: b->seed = num_u(optarg, 0, UINT64_MAX, "--seed"); break;
		case 'n': b->nprompts = num_u(optarg, 1, 1u << 24, "--num-prompts"); have_n = 1; break;
		case O_DURATION: b->duration = num_f(optarg, 0, 1e7, 1, "--duration"); break;
		case O_WARMUP: b->warmup = num_u(optarg, 0, 1u << 24, "--warmup"); break;
		case O_DATASET: ds = optarg; break;
		case O_FILE: b->file = optarg; break;
		case O_INLEN: b->in_len = (unsigned)num_u(optarg, 1, MAX_LEN, "--input-len"); break;
		case O_OUTLEN: b->out_len = (unsigned)num_u(optarg, 1, MAX_LEN, "--output-len"); break;
		case O_RANGE:
			b->range = num_f(optarg, 0, 1, 0, "--range-ratio");
			if (b->range >= 1)
				usage_because("--range-ratio wants a number from 0 and below 1");
			break;
		case O_VOCAB: b->vocab = (unsigned)num_u(optarg, 1, UINT32_MAX, "--vocab-size"); break;
		case O_NPREFIX: b->nprefix = (unsigned)num_u(optarg, 1, 1u << 16, "--num-prefixes"); break;
		case O_PREFIXLEN: b->prefix_len = (unsigned)num_u(optarg, 1, MAX_LEN, "--prefix-len"); break;
		case O_SLO_TTFT: b->slo_ttft = num_f(optarg, 0, 1e9, 1, "--slo-ttft-ms"); break;
		case O_SLO_TPOT: b->slo_tpot = num_f(optarg, 0, 1e9, 1, "--slo-tpot-ms"); break;
		case O_TIMEOUT: b->t.timeout = num_f(optarg, 0, 1e7, 1, "--timeout"); break;
		case O_JSON: b->json = optarg; break;
		case O_PLOT: b->plot = optarg; break;
		case O_SWEEP: parse_sweep(b, optarg); break;
		case 'v': b->t.verbose++; break;
		default:
			/* getopt_long sets optopt for a missing value, not for an unknown option */
			usage_because(optopt ? "an option wants a value" : "unknown option");
		}
	}
	if (optind != argc)
		usage_because("no operands are taken");
	if (!b->t.endpoint == !b->t.url)
		usage_because("give one target: -u endpoint or --openai url");
	if (b->t.endpoint) {
		addr a = ADDR_ZERO;
		char err[512];

		if (addr_parse(b->t.endpoint, &a, err, sizeof err) < 0)
			usage_because(err);
		if (a.kind == ADDR_STDIO)
			usage_because("-u wants a socket or a Redis stream, not -");
		addr_free(&a);
	}
	if (b->t.url) {
		size_t n = strlen(b->t.url);

		if (strncmp(b->t.url, "http://", 7) && strncmp(b->t.url, "https://", 8))
			usage_because("--openai wants an http:// or https:// URL");
		while (n > 0 && b->t.url[n - 1] == '/')
			n--;
		b->url = xmalloc(n + 1);
		memcpy(b->url, b->t.url, n);
		b->url[n] = 0;
		b->t.url = b->url;
		if (!b->t.api_key)
			b->t.api_key = getenv("OPENAI_API_KEY");
		b->openai = 1;
	} else if (b->t.model || b->t.api_key) {
		usage_because("--model and --api-key go with --openai");
	}
	if (!strcmp(ds, "random"))
		b->ds = DS_RANDOM;
	else if (!strcmp(ds, "prefix"))
		b->ds = DS_PREFIX;
	else if (!strcmp(ds, "jsonl"))
		b->ds = DS_JSONL;
	else
		usage_because("--dataset is random, prefix or jsonl");
	if ((b->ds == DS_JSONL) != !!b->file)
		usage_because("--file goes with --dataset jsonl, and it wants one");
	if (b->ds != DS_PREFIX && (b->nprefix || b->prefix_len))
		usage_because("--num-prefixes and --prefix-len go with --dataset prefix");
	if (b->ds == DS_PREFIX) {
		if (!b->nprefix)
			b->nprefix = 4;
		if (!b->prefix_len)
			b->prefix_len = 256;
		if ((uint64_t)b->nprefix * b->prefix_len > (1u << 26))
			usage_because("--num-prefixes times --prefix-len is past 67108864 tokens");
	}
	if (b->burst != 1.0 && b->rate <= 0)
		usage_because("--burstiness goes with --rate");
	if (b->nsweep && have_c)
		usage_because("-c and --sweep: give one");
	if (b->plot && !b->nsweep)
		usage_because("--plot goes with --sweep");
	if (b->duration > 0 && have_n)
		usage_because("-n and --duration: give one");
	if (b->duration > 0 && !have_c && !b->nsweep && b->rate <= 0)
		usage_because("--duration wants -c, --sweep or --rate (else it sends without end)");
	if (!b->in_len)
		b->in_len = 256;
	if (!b->out_len)
		b->out_len = 128;
	if (!b->vocab)
		b->vocab = 250;
}

/* ================================================================ main */

int
bench_main(int argc, char **argv)
{
	bench b;
	char err[512];
	result *res;
	size_t nrun, i;
	char load[160];

	memset(&b, 0, sizeof b);
	b.burst = 1.0;
	b.nprompts = 100;
	b.t.timeout = 600;
	options(&b, argc, argv);
	if (b.t.verbose)
		die_verbose = 1;
	b.progress = isatty(2) ? 1 : b.t.verbose ? 2 : 0;
	signal(SIGPIPE, SIG_IGN);
	catch_signals();
	if (b.ds == DS_JSONL)
		jsonl_load(&b);
	b.cl = b.openai ? &bench_openai : &bench_native;
	if (b.cl->open(&b, err, sizeof err) < 0)
		die_x(EXIT_SYS, "%s", err);
	nrun = b.nsweep ? b.nsweep : 1;
	res = xcalloc(nrun, sizeof *res);
	for (i = 0; i < nrun; i++) {
		unsigned conc = b.nsweep ? b.sweep[i] : b.conc;

		load_text(&b, conc, load, sizeof load);
		if (b.warmup) {
			info_x("warmup: %zu requests, %s", b.warmup, load);
			run_load(&b, conc, b.warmup, 0, b.seed ^ 0x5741524dull);
		}
		info_x("run %zu: %s", i + 1, load);
		/* each run of a sweep draws its own prompts (same lengths), so one
		 * does not find the previous one's in the prefix cache */
		run_load(&b, conc, b.nprompts, b.duration, b.seed + i);
		figures(&b, conc, &res[i]);
		report(&b, &res[i]);
		if (interrupted) {
			warn_x("interrupted: %zu of %zu run%s reported", i + 1, nrun, nrun == 1 ? "" : "s");
			nrun = i + 1;
			break;
		}
		if (i + 1 < nrun)
			printf("\n");
	}
	if (b.nsweep) {
		printf("\n");
		sweep_table(&b, res, nrun);
	}
	if (b.json)
		write_json(&b, res, nrun);
	if (b.plot)
		write_plot(&b, res, nrun);
	b.cl->close(&b);
	run_reset(&b);
	free(b.req);
	for (i = 0; i < nrun; i++)
		free(res[i].send);
	free(res);
	free(b.url);
	if (b.lines) {
		free(b.lines);
		msgpack_zone_destroy(&b.lzone);
		msgpack_sbuffer_destroy(&b.lbuf);
	}
	return interrupted ? 128 + interrupted : 0;
}
