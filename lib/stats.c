/* stats: the counters every sluice daemon keeps and its answer to the
 * stats query. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stats.h"

static const char *const fin_names[ST_FIN_N] = { "stop", "length", "cancelled", "timeout", "error" };
static const char *const err_names[ST_ERR_N] = {
	"bad_request", "too_long", "overloaded", "duplicate_id", "slow_consumer", "timeout",
	"draining", "rate_limited", "upstream_lost", "other",
};
static const char *const rej_names[ST_REJ_N] = { "overloaded", "rate_limited", "draining", "timeout" };

static double
wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
find(const char *const *names, int n, const char *s)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(names[i], s))
			return i;
	return -1;
}

void
stats_init(stats *s, const char *program)
{
	memset(s, 0, sizeof *s);
	s->program = program;
	s->t_start = wall();
}

void
stats_finish(stats *s, const char *reason)
{
	int i = find(fin_names, ST_FIN_N, reason);

	s->finished[i < 0 ? ST_FIN_ERROR : i]++;
}

void
stats_times(stats *s, double arrived, double scheduled, double first, double done)
{
	if (first > 0)
		hist_observe(&s->h[HIST_TTFT], HIST_TTFT, first - arrived);
	if (done > 0)
		hist_observe(&s->h[HIST_E2E], HIST_E2E, done - arrived);
	if (scheduled > 0) {
		hist_observe(&s->h[HIST_QUEUE], HIST_QUEUE, scheduled - arrived);
		if (first > 0)
			hist_observe(&s->h[HIST_PREFILL], HIST_PREFILL, first - scheduled);
		if (done > 0)
			hist_observe(&s->h[HIST_INFERENCE], HIST_INFERENCE, done - scheduled);
	}
	if (first > 0 && done > 0)
		hist_observe(&s->h[HIST_DECODE], HIST_DECODE, done - first);
}

void
stats_error(stats *s, const char *code)
{
	int i = find(err_names, ST_ERR_N, code);

	s->errors[i < 0 ? ST_ERR_OTHER : i]++;
}

void
stats_reject(stats *s, const char *reason)
{
	int i = find(rej_names, ST_REJ_N, reason);

	if (i >= 0)
		s->rejections[i]++;
	stats_error(s, reason);
}

int
stats_is_query(const msg *m, char *err, size_t errlen)
{
	const char *op;
	size_t n;
	int r = msg_str(m, "op", &op, &n);

	if (r == 0)
		return 0;
	if (r == 1 && n == 5 && !memcmp(op, "stats", 5))
		return 1;
	if (r == 1)
		snprintf(err, errlen, "unknown op \"%.*s\" (known: stats)", (int)(n > 32 ? 32 : n), op);
	else
		snprintf(err, errlen, "op is not a string");
	return -1;
}

static void
pack_counts(msgpack_packer *pk, const char *key, const char *const *names, const uint64_t *v, int n)
{
	msg_pk_str(pk, key);
	msgpack_pack_map(pk, n);
	for (int i = 0; i < n; i++) {
		msg_pk_str(pk, names[i]);
		msgpack_pack_uint64(pk, v[i]);
	}
}

static void
pack_u(msgpack_packer *pk, const char *key, uint64_t v)
{
	msg_pk_str(pk, key);
	msgpack_pack_uint64(pk, v);
}

void
stats_pack(msgpack_packer *pk, const msg *m, const stats *s, const stats_now *now)
{
	const char *id;
	size_t idlen;
	int has_id = m && msg_str(m, "id", &id, &idlen) == 1;
	const int64_t *g[] = { &now->connections, &now->running, &now->waiting, &now->max_running,
			       &now->kv_used, &now->kv_total };
	static const char *const gname[] = { "connections", "running", "waiting", "max_running",
					     "kv_blocks_used", "kv_blocks_total" };
	uint32_t ng = 0, i;
	double t = wall();

	for (i = 0; i < sizeof g / sizeof *g; i++)
		ng += *g[i] >= 0;
	msgpack_pack_map(pk, 2 + has_id);
	msg_pk_str(pk, "op");
	msg_pk_str(pk, "stats");
	if (has_id) {
		msg_pk_str(pk, "id");
		msg_pk_strn(pk, id, idlen);
	}
	msg_pk_str(pk, "stats");
	msgpack_pack_map(pk, 16 + ng + (now->extra ? now->nextra : 0));
	msg_pk_str(pk, "program");
	msg_pk_str(pk, s->program ? s->program : "");
	pack_u(pk, "pid", (uint64_t)getpid());
	msg_pk_str(pk, "time");
	msgpack_pack_double(pk, t);
	msg_pk_str(pk, "uptime");
	msgpack_pack_double(pk, t - s->t_start);
	msg_pk_str(pk, "draining");
	if (now->draining)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	for (i = 0; i < sizeof g / sizeof *g; i++)
		if (*g[i] >= 0)
			pack_u(pk, gname[i], (uint64_t)*g[i]);
	pack_u(pk, "requests", s->requests);
	pack_u(pk, "prompt_tokens", s->prompt_tokens);
	pack_u(pk, "generation_tokens", s->generation_tokens);
	pack_u(pk, "prefix_cache_queries", s->prefix_queries);
	pack_u(pk, "prefix_cache_hits", s->prefix_hits);
	pack_u(pk, "preemptions", s->preemptions);
	pack_u(pk, "cancelled_gone", s->gone);
	pack_counts(pk, "finished", fin_names, s->finished, ST_FIN_N);
	pack_counts(pk, "errors", err_names, s->errors, ST_ERR_N);
	pack_counts(pk, "rejections", rej_names, s->rejections, ST_REJ_N);
	msg_pk_str(pk, "histograms");
	hist_pack(pk, s->h);
	if (now->extra)
		now->extra(pk, now->extra_ud);
}
