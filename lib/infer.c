/* infer: the engine program (see infer.h and infer-cpu(1)): a daemon
 * around lib/engine. One thread runs an io_loop for the endpoints and,
 * between polls, one engine step: new requests join the running batch at
 * the next step, events go out as soon as a step has produced them. Here
 * are the options, the connections, admission (queue bounds, fair turns
 * between connections), flow control for slow readers and the stats
 * answer; the requests themselves are the engine's. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "daemon.h"
#include "die.h"
#include "engine.h"
#include "fetch.h"
#include "infer.h"
#include "io.h"
#include "msg.h"
#include "ppl.h"
#include "stats.h"

/* infer-cpu's and infer-gpu's: the program's own name twice */
#define USAGE_FMT "%s [-m model] [-l endpoint]... [-t threads] [--ctx N] [--kv-mem BYTES] " \
	"[--block-size N] [--max-seqs N] [--max-batch-tokens N] [--max-queue N] [--max-queue-per-conn N] " \
	"[--max-tokens N] [--temperature F] [--no-prefix-cache] [--text] [--chat-template NAME] " \
	"[--max-connections N] [--backlog N] [--read-timeout S] [--max-partial BYTES] " \
	"[--write-buffer BYTES] [--write-timeout S] [-d fd] [-q] " \
	"| %s [-m model] [-t threads] --perplexity FILE [--ppl-ctx N] [--ppl-score half|all]"
#define USAGE usage()

static const char *
usage(void)
{
	static char buf[1024];

	snprintf(buf, sizeof buf, USAGE_FMT, die_prog, die_prog);
	return buf;
}

/* ------------------------------------------------------------- state */

typedef struct conn_state {
	io_conn *conn;
	uint32_t live;           /* requests in flight */
	int eof;                 /* the peer sent its last message */
	int paused;              /* stdio: not read while the queue is full */
	int backlogged;          /* its unsent output is above --write-buffer: its sequences wait */
	uint64_t vt;             /* fair queueing: the order its next request gets at the least */
	struct conn_state *next, *prev;   /* every connection */
} conn_state;

typedef struct infer {
	engine *e;
	model m;
	io_loop *loop;
	uint32_t max_queue, max_queue_conn;
	double write_timeout;    /* seconds a client may leave --write-buffer of answers unread */
	size_t write_buffer;
	int stdio;               /* reading stdin: stop at its end */
	int stopping;            /* a signal came: finish what runs, take nothing new */
	io_timer flow_t;         /* while a client is backlogged: --write-timeout checks */
	conn_state *conns;
	int bad_input;           /* the stdin stream was broken: exit 111 once all is answered */
	msgpack_sbuffer sb;      /* the stats answer, a duplicate's refusal */
	stats st;                /* what the stats query answers (sluice(7)), counted by the engine too */
} infer;

/* ------------------------------------------------------------- the engine's events */

static void
ev_send(void *ud, void *owner, const void *data, size_t n)
{
	(void)ud;
	io_send(owner, data, n);
}

static void
ev_added(void *ud, void *owner)
{
	(void)ud;
	((conn_state *)io_conn_data(owner))->live++;
}

static void
ev_ended(void *ud, void *owner)
{
	conn_state *cs = io_conn_data(owner);

	(void)ud;
	cs->live--;
	if (cs->eof && !cs->live)
		io_shutdown(owner);
}

static int
ev_backlogged(void *ud, const void *owner)
{
	(void)ud;
	return ((conn_state *)io_conn_data(owner))->backlogged;
}

/* ------------------------------------------------------------- requests */

/* A second request with the id of one in flight is answered by an event
 * that does not carry "id" (so no client takes it for the first request's
 * answer) but "duplicate_id", with error code duplicate_id. */
static void
pack_duplicate(infer *d, io_conn *c, const char *id, size_t idlen)
{
	msgpack_packer pk;

	stats_error(&d->st, "duplicate_id");
	d->sb.size = 0;
	msg_pk_init(&pk, &d->sb);
	msgpack_pack_map(&pk, 3);
	msg_pk_str(&pk, "duplicate_id");
	msg_pk_strn(&pk, id, idlen);
	msg_pk_str(&pk, "finish");
	msg_pk_str(&pk, "error");
	msg_pk_error_pair(&pk, "duplicate_id",
			  "a request with this id is in flight on this connection; this one was ignored");
	io_send(c, d->sb.data, d->sb.size);
}

/* The answer to {"op": "stats"}: at once, whatever is queued. */
static void
pack_stats(infer *d, io_conn *c, const msg *m)
{
	msgpack_packer pk;
	stats_now sn = STATS_NOW_NONE;

	engine_now(d->e, &sn);
	sn.draining = d->stopping;
	sn.connections = (int64_t)io_loop_nconns(d->loop);
	d->sb.size = 0;
	msg_pk_init(&pk, &d->sb);
	stats_pack(&pk, m, &d->st, &sn);
	io_send(c, d->sb.data, d->sb.size);
}

/* Admission: what the daemon answers before the engine sees the request,
 * in this order (a request with several faults is told the first): no
 * id, a cancel, a malformed request, a duplicate id, a drain, a full
 * queue. */
static void
on_request(infer *d, io_conn *c, const msg *m)
{
	const char *id;
	size_t idlen;
	char err[512];
	int cancel = 0;
	conn_state *cs = io_conn_data(c);

	switch (stats_is_query(m, err, sizeof err)) {
	case 1:
		pack_stats(d, c, m);
		return;
	case -1:
		engine_error(d->e, c, 0, (size_t)-1, "bad_request", err);
		return;
	}
	if (msg_str(m, "id", &id, &idlen) != 1) {
		engine_error(d->e, c, 0, (size_t)-1, "bad_request", "request has no id (a string)");
		return;
	}
	if (msg_bool(m, "cancel", &cancel) == 1 && cancel) {
		engine_cancel(d->e, c, id, idlen);
		return;
	}
	if (msg_check_request(m, err, sizeof err) < 0) {
		engine_error(d->e, c, id, idlen, "bad_request", err);
		return;
	}
	if (engine_has(d->e, c, id, idlen)) {
		pack_duplicate(d, c, id, idlen);
		return;
	}
	if (d->stopping) {
		stats_reject(&d->st, "draining");
		engine_error(d->e, c, id, idlen, "draining", "the engine is shutting down");
		return;
	}
	/* a pipeline's producer is made to wait (on_request pauses it); a
	 * client of a socket is told at once */
	if (!io_conn_is_stdio(c) && engine_n_waiting(d->e) >= d->max_queue) {
		snprintf(err, sizeof err, "%u requests are waiting already (--max-queue)", d->max_queue);
		d->st.rejections[ST_REJ_OVERLOADED]++;
		engine_error(d->e, c, id, idlen, "overloaded", err);
		return;
	}
	if (!io_conn_is_stdio(c) && cs->live >= d->max_queue_conn) {
		snprintf(err, sizeof err, "this connection has %u requests in flight already (--max-queue-per-conn)",
			 cs->live);
		d->st.rejections[ST_REJ_OVERLOADED]++;
		engine_error(d->e, c, id, idlen, "overloaded", err);
		return;
	}
	/* fair queueing: within a priority, connections take turns (start-time
	 * fair queueing with a cost of one per request), so a client with a
	 * backlog of thousands delays another's request by a few steps only */
	if (cs->vt < engine_order_started(d->e))
		cs->vt = engine_order_started(d->e);
	if (engine_add(d->e, c, m, cs->vt) < 1)
		return;
	cs->vt++;
	if (io_conn_is_stdio(c) && (engine_n_waiting(d->e) >= d->max_queue || cs->live >= d->max_queue_conn)) {
		cs->paused = 1;
		io_conn_pause(c, 1);
	}
}

/* ------------------------------------------------------------- io */

static void
on_open(io_loop *l, io_conn *c, void *ud)
{
	infer *d = ud;
	conn_state *cs = xcalloc(1, sizeof *cs);

	(void)l;
	cs->conn = c;
	cs->next = d->conns;
	if (d->conns)
		d->conns->prev = cs;
	d->conns = cs;
	io_conn_set_data(c, cs);
}

static void
on_msg(io_loop *l, io_conn *c, const msg *m, void *ud)
{
	(void)l;
	on_request(ud, c, m);
}

static void
on_bad(io_loop *l, io_conn *c, const char *why, void *ud)
{
	(void)l;
	engine_error(((infer *)ud)->e, c, 0, (size_t)-1, "bad_request", why);
}

static void
on_eof(io_loop *l, io_conn *c, void *ud)
{
	conn_state *cs = io_conn_data(c);

	(void)l;
	(void)ud;
	cs->eof = 1;
	if (!cs->live)
		io_shutdown(c);
}

static void
on_broken(io_loop *l, io_conn *c, const char *why, void *ud)
{
	infer *d = ud;
	char msg[512];

	(void)l;
	warn_x("%s: %s", io_conn_name(c), why);
	snprintf(msg, sizeof msg, "%s; the requests before it are answered, nothing after it is read", why);
	engine_error(d->e, c, 0, (size_t)-1, "bad_request", msg);
	if (io_conn_is_stdio(c))
		d->bad_input = 1;
}

static void
on_close(io_loop *l, io_conn *c, const char *why, void *ud)
{
	infer *d = ud;
	conn_state *cs = io_conn_data(c);
	uint32_t n;

	(void)l;
	/* nobody to answer: what it asked for is cancelled, its blocks freed */
	n = engine_drop(d->e, c, 0, 0);
	if (why && n)
		warn_x("%s: %s: %u request%s cancelled", io_conn_name(c), why, n, n == 1 ? "" : "s");
	else if (why)
		warn_x("%s: %s", io_conn_name(c), why);
	if (cs->prev)
		cs->prev->next = cs->next;
	else
		d->conns = cs->next;
	if (cs->next)
		cs->next->prev = cs->prev;
	free(cs);
	io_conn_set_data(c, 0);
}

/* Flow control, once per turn of the loop. A connection whose unsent
 * answers are above --write-buffer has its sequences paused (they keep
 * their place and blocks); one that stays there --write-timeout seconds
 * (not stdout, whose reader is the user's own pipeline) has its requests
 * ended with error slow_consumer. A paused stdin is read again once the
 * queue has room. */
static void
flow(infer *d)
{
	conn_state *cs;
	int changed = 0;

	for (cs = d->conns; cs; cs = cs->next) {
		int b = io_conn_queued(cs->conn) > d->write_buffer;
		double stall;

		if (b != cs->backlogged)
			cs->backlogged = b, changed = 1;
		if (cs->paused && engine_n_waiting(d->e) < d->max_queue && cs->live < d->max_queue_conn) {
			cs->paused = 0;
			io_conn_pause(cs->conn, 0);
		}
		if (!b || !cs->live || io_conn_is_stdio(cs->conn) || d->write_timeout <= 0)
			continue;
		stall = io_conn_backlog(cs->conn);
		if (stall < d->write_timeout)
			continue;
		warn_x("%s: slow consumer: %zu bytes of answers unread for %.0f s (--write-timeout): "
		       "%u request%s ended", io_conn_name(cs->conn), io_conn_queued(cs->conn), stall,
		       cs->live, cs->live == 1 ? "" : "s");
		engine_drop(d->e, cs->conn, "slow_consumer",
			    "the client left its answers unread past --write-timeout");
	}
	if (changed)
		engine_backlog_changed(d->e);
	/* a backlogged client may sit still: look again in a second */
	for (cs = d->conns; cs; cs = cs->next)
		if (cs->backlogged && cs->live) {
			if (!io_timer_is_set(&d->flow_t))
				io_timer_after(d->loop, &d->flow_t, 1);
			break;
		}
}

static void
on_flow(io_loop *l, io_timer *t, void *ud)
{
	(void)l;
	(void)t;
	flow(ud);
}

/* ------------------------------------------------------------- options */

static uint64_t
parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || v <= 0)
		die_usage(USAGE);
	switch (*end) {
	case 0: break;
	case 'k': case 'K': v *= 1024; end++; break;
	case 'm': case 'M': v *= 1024 * 1024; end++; break;
	case 'g': case 'G': v *= 1024.0 * 1024 * 1024; end++; break;
	default: die_usage(USAGE);
	}
	if ((*end == 'i' || *end == 'I') && end[1] == 'B')
		end += 2;
	else if (*end == 'B' || *end == 'b')
		end++;
	if (*end || v > 1e15)
		die_usage(USAGE);
	return (uint64_t)v;
}

/* seconds, fractions allowed, 0 to a day (0: never) */
static double
parse_secs(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || !(v >= 0) || v > 86400)
		die_usage(USAGE);
	return v;
}

static uint32_t
parse_u32(const char *s, uint32_t lo, uint32_t hi)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		die_usage(USAGE);
	return (uint32_t)v;
}

static void
on_drain(void *ud)
{
	((infer *)ud)->stopping = 1;
}

/* everything answered, and the input ended or a signal came */
static int
is_done(void *ud)
{
	infer *d = ud;

	return !engine_n_requests(d->e) && ((d->stdio && io_loop_nconns(d->loop) == 0) || d->stopping);
}

/* after every poll: flow control, then one step (1 if it ran: poll again
 * without sleeping) */
static int
on_turn(void *ud)
{
	infer *d = ud;

	flow(d);
	return engine_step(d->e);
}

/* The model, or death with the message that helps: a missing default
 * model is fetched with sluice model fetch. */
static void
open_model(model *m, const char *path, const backend *be)
{
	char err[512];

	if (model_open(m, path, be->supports, err, sizeof err) < 0) {
		if (access(path, R_OK) < 0) {
			if (errno == ENOENT)
				die_x(EXIT_SYS, "unable to open %s: %s; run: sluice model fetch", path, strerror(errno));
			die_sys("unable to open %s", path);
		}
		die_x(EXIT_SYS, "unable to load %s: %s", path, err);
	}
}

/* infer-cpu --perplexity FILE */
static int
perplexity(const char *model_path, const backend *be, int threads, const char *text, uint32_t ctx, int score)
{
	ppl_result r;
	char err[512];

	if (ppl_file(model_path, be, threads, text, ctx, score, &r, err, sizeof err) < 0)
		die_x(EXIT_SYS, "%s", err);
	if (!r.scored)
		die_x(EXIT_NO, "%s has %zu tokens, fewer than one chunk of %u", text, r.tokens, ctx);
	printf("perplexity %.4f +/- %.5f tokens %zu scored %zu ctx %u nll %.6f score %s\n", r.ppl, r.err,
	       r.tokens, r.scored, ctx, r.nll_sum, score == PPL_HALF ? "half" : "all");
	return 0;
}

int
infer_main(int argc, char **argv, const backend *be)
{
	static const struct option lo[] = {
		{ "ctx", required_argument, 0, 'C' },
		{ "kv-mem", required_argument, 0, 'K' },
		{ "block-size", required_argument, 0, 'B' },
		{ "max-seqs", required_argument, 0, 'S' },
		{ "max-batch-tokens", required_argument, 0, 'N' },
		{ "max-queue", required_argument, 0, 'Q' },
		{ "max-queue-per-conn", required_argument, 0, 'q' + 256 },
		{ "max-connections", required_argument, 0, 'c' + 256 },
		{ "backlog", required_argument, 0, 'b' + 256 },
		{ "read-timeout", required_argument, 0, 'r' + 256 },
		{ "max-partial", required_argument, 0, 'p' + 256 },
		{ "write-buffer", required_argument, 0, 'w' + 256 },
		{ "write-timeout", required_argument, 0, 't' + 256 },
		{ "max-tokens", required_argument, 0, 'M' },
		{ "temperature", required_argument, 0, 'T' },
		{ "no-prefix-cache", no_argument, 0, 'P' },
		{ "text", no_argument, 0, 'x' },
		{ "chat-template", required_argument, 0, 'c' },
		{ "perplexity", required_argument, 0, 'p' },
		{ "ppl-ctx", required_argument, 0, 'X' },
		{ "ppl-score", required_argument, 0, 'X' + 256 },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	static const daemon_ops ops = { on_drain, NULL, is_done, on_turn };
	static const engine_events ev = { ev_send, ev_added, ev_ended, ev_backlogged };
	infer D, *d = &D;
	engine_opts eo = ENGINE_OPTS_DEFAULT;
	const char *model_path = 0, *ppl_text = 0;
	int quiet = 0, lowered, rc, c;
	daemon_cfg cfg = DAEMON_CFG_ZERO;
	uint32_t ppl_ctx = 512;
	int ppl_score = PPL_HALF;
	char err[512], types[256];
	io_handler h = { on_open, on_msg, on_bad, on_close, on_eof, on_broken };
	io_limits lim = { 1024, 30000, (size_t)64 << 20, 0 };

	memset(d, 0, sizeof *d);
	die_init(argv[0]);
	cfg.listen = xcalloc(17, sizeof *cfg.listen);
	d->flow_t = (io_timer)IO_TIMER_ZERO;
	d->flow_t.cb = on_flow;
	d->flow_t.ud = d;
	stats_init(&d->st, die_prog);
	d->max_queue = 4096;
	d->max_queue_conn = 1024;
	d->write_buffer = (size_t)1 << 20;
	d->write_timeout = 30;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "m:l:t:d:qh", lo, 0)) != -1) {
		switch (c) {
		case 'm': model_path = optarg; break;
		case 'l':
			if (cfg.nlisten == 16)
				die_usage(USAGE);
			cfg.listen[cfg.nlisten++] = optarg;
			break;
		case 't': eo.threads = (int)parse_u32(optarg, 1, 1024); break;
		case 'd': cfg.ready_fd = (int)parse_u32(optarg, 0, 1 << 20); break;
		case 'q': quiet = 1; break;
		case 'C': eo.ctx = parse_u32(optarg, 2, 1u << 24); break;
		case 'K': eo.kv_mem = parse_size(optarg); break;
		case 'B': eo.block_size = parse_u32(optarg, 1, 1024); break;
		case 'S': eo.max_seqs = parse_u32(optarg, 1, 4096); break;
		case 'N': eo.max_batch_tokens = parse_u32(optarg, 1, 65536); break;
		case 'Q': d->max_queue = parse_u32(optarg, 1, 1u << 24); break;
		case 'q' + 256: d->max_queue_conn = parse_u32(optarg, 1, 1u << 24); break;
		case 'c' + 256: lim.max_conns = parse_u32(optarg, 1, 1u << 20); break;
		case 'b' + 256: cfg.io.backlog = (int)parse_u32(optarg, 1, 1u << 16); break;
		case 'r' + 256: lim.read_timeout_ms = (unsigned)(parse_secs(optarg) * 1000); break;
		case 'p' + 256: lim.max_partial = parse_size(optarg); break;
		case 'w' + 256: d->write_buffer = parse_size(optarg); break;
		case 't' + 256: d->write_timeout = parse_secs(optarg); break;
		case 'M': eo.max_tokens = parse_u32(optarg, 0, 1u << 24); break;
		case 'T': eo.temperature = strtof(optarg, 0); break;
		case 'P': eo.caching = 0; break;
		case 'x': eo.text = 1; break;
		case 'c':
			eo.topts.chat = chat_by_name(optarg);
			if (eo.topts.chat < 0)
				die_x(EXIT_USAGE, "unknown chat template \"%s\"; known: %s", optarg, chat_known());
			break;
		case 'p': ppl_text = optarg; break;
		case 'X': ppl_ctx = parse_u32(optarg, 2, 1u << 20); break;
		case 'X' + 256:
			if (strcmp(optarg, "half") && strcmp(optarg, "all"))
				die_x(EXIT_USAGE, "--ppl-score %s: want half or all", optarg);
			ppl_score = strcmp(optarg, "half") ? PPL_ALL : PPL_HALF;
			break;
		case 'h':
			printf("usage: %s\n", USAGE);
			return 0;
		default: die_usage(USAGE);
		}
	}
	if (optind != argc)
		die_usage(USAGE);
	/* blocked before any thread starts, so every thread inherits the mask
	 * and the signals reach only the signalfd */
	if (!ppl_text)
		daemon_init(cfg.ready_fd);
	if (!model_path)
		model_path = fetch_model_path();
	open_model(&d->m, model_path, be);
	if (ppl_text) {
		model_close(&d->m);
		return perplexity(model_path, be, eo.threads, ppl_text, ppl_ctx, ppl_score);
	}

	/* the engine, and its summary */
	if (engine_size(&eo, &d->m, be, &lowered, err, sizeof err) < 0) {
		if (lowered && !quiet)
			warn_x("the cache holds %u tokens: --ctx lowered to that", eo.ctx);
		die_x(EXIT_USAGE, "%s", err);
	}
	if (lowered && !quiet)
		warn_x("the cache holds %u tokens: --ctx lowered to that", eo.ctx);
	d->loop = io_loop_new(&h, d);
	eo.loop = d->loop;
	eo.st = &d->st;
	if ((rc = engine_new(&d->e, &d->m, be, &eo, &ev, d, err, sizeof err)))
		die_x(rc, "%s", err);
	model_types(&d->m, types, sizeof types);
	if (!quiet)
		fprintf(stderr, "%s: %s (%s, %u layers, dim %u, %u/%u heads, vocab %u), %s, %.1f MB mapped; "
			"KV %.1f MB (%u blocks of %u tokens, F16), ctx %u, %u seqs, %u tokens/step, %s\n",
			die_prog, d->m.name, d->m.arch_name, d->m.n_layers, d->m.dim, d->m.n_heads,
			d->m.n_kv_heads, d->m.n_vocab, types, d->m.g.size / 1e6,
			(double)eo.n_blocks * eo.block_bytes / 1e6, eo.n_blocks, eo.block_size, eo.ctx,
			eo.max_seqs, eo.max_batch_tokens, engine_describe(d->e));

	/* endpoints */
	msgpack_sbuffer_init(&d->sb);
	lim.high_water = d->write_buffer;
	io_loop_set_limits(d->loop, &lim);
	d->stdio = daemon_listen(d->loop, &cfg);
	daemon_run(d->loop, &cfg, &ops, d);
	/* everything answered: write what is queued and go */
	if (!quiet) {
		uint64_t served, steps;
		kv_stats kv;

		engine_totals(d->e, &served, &steps, &kv);
		fprintf(stderr, "%s: %llu requests, %llu tokens generated in %llu steps, %llu preemptions, "
			"prefix cache %llu/%llu blocks hit, %llu evicted; %llu cancelled, %llu cancelled "
			"as their client went away, %llu timed out, %llu slow consumers, %llu refused "
			"overloaded, %llu bad requests\n", die_prog,
			(unsigned long long)served, (unsigned long long)d->st.generation_tokens,
			(unsigned long long)steps, (unsigned long long)d->st.preemptions,
			(unsigned long long)kv.hit_blocks, (unsigned long long)kv.lookups_blocks,
			(unsigned long long)kv.evictions,
			(unsigned long long)(d->st.finished[ST_FIN_CANCELLED] - d->st.gone),
			(unsigned long long)d->st.gone, (unsigned long long)d->st.finished[ST_FIN_TIMEOUT],
			(unsigned long long)d->st.errors[ST_ERR_SLOW_CONSUMER],
			(unsigned long long)d->st.errors[ST_ERR_OVERLOADED],
			(unsigned long long)(d->st.errors[ST_ERR_BAD_REQUEST] + d->st.errors[ST_ERR_TOO_LONG]
					     + d->st.errors[ST_ERR_DUPLICATE_ID]));
	}
	/* closing the connections drops what they had left (nothing, when done) */
	io_loop_free(d->loop);
	engine_free(d->e);
	msgpack_sbuffer_destroy(&d->sb);
	model_close(&d->m);
	free(cfg.listen);
	return d->bad_input ? EXIT_SYS : 0;
}
