/* hist: vLLM's latency histograms and their msgpack form (see hist.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"
#include "msg.h"

/* ------------------------------------------------------------- buckets */

/* vllm/v1/metrics/loggers.py */
static const double le_ttft[] = {
	0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
	2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
};
static const double le_itl[] = {
	0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
	2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
};
static const double le_req[] = {   /* e2e, queue, inference, prefill, decode */
	0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
	50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
};

#define N(a) (sizeof a / sizeof *a)

static const struct {
	const char *name;
	const double *le;
	size_t n;
} kinds[HIST_N] = {
	[HIST_TTFT] = { "time_to_first_token_seconds", le_ttft, N(le_ttft) },
	[HIST_ITL] = { "inter_token_latency_seconds", le_itl, N(le_itl) },
	[HIST_E2E] = { "e2e_request_latency_seconds", le_req, N(le_req) },
	[HIST_QUEUE] = { "request_queue_time_seconds", le_req, N(le_req) },
	[HIST_INFERENCE] = { "request_inference_time_seconds", le_req, N(le_req) },
	[HIST_PREFILL] = { "request_prefill_time_seconds", le_req, N(le_req) },
	[HIST_DECODE] = { "request_decode_time_seconds", le_req, N(le_req) },
};

_Static_assert(N(le_ttft) <= HIST_MAXB && N(le_itl) <= HIST_MAXB && N(le_req) <= HIST_MAXB,
	       "HIST_MAXB holds every kind's bounds");

const char *
hist_name(hist_kind k)
{
	return (unsigned)k < HIST_N ? kinds[k].name : NULL;
}

size_t
hist_bounds(hist_kind k, const double **le)
{
	if ((unsigned)k >= HIST_N) {
		*le = NULL;
		return 0;
	}
	*le = kinds[k].le;
	return kinds[k].n;
}

void
hist_observe(hist *h, hist_kind k, double v)
{
	size_t i, n;

	if ((unsigned)k >= HIST_N || !isfinite(v))
		return;
	n = kinds[k].n;
	for (i = 0; i < n && v > kinds[k].le[i]; i++)
		;
	h->counts[i]++;
	h->count++;
	h->sum += v;
}

/* ------------------------------------------------------------- msgpack */

void
hist_pack(msgpack_packer *pk, const hist hs[HIST_N])
{
	size_t k, i;

	msgpack_pack_map(pk, HIST_N);
	for (k = 0; k < HIST_N; k++) {
		msg_pk_str(pk, kinds[k].name);
		msgpack_pack_map(pk, 3);
		msg_pk_str(pk, "sum");
		msgpack_pack_double(pk, hs[k].sum);
		msg_pk_str(pk, "count");
		msgpack_pack_uint64(pk, hs[k].count);
		msg_pk_str(pk, "counts");
		msgpack_pack_array(pk, (uint32_t)kinds[k].n + 1);
		for (i = 0; i <= kinds[k].n; i++)
			msgpack_pack_uint64(pk, hs[k].counts[i]);
	}
}

static int
key_is(const msgpack_object *o, const char *s)
{
	size_t n = strlen(s);

	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n && !memcmp(o->via.str.ptr, s, n);
}

/* one histogram's {sum, count, counts}; 0 ok, -1 wrong shape */
static int
unpack_one(const msgpack_object *o, size_t nb, hist *h)
{
	int got_sum = 0, got_count = 0, got_counts = 0;
	uint64_t total = 0;
	uint32_t i, j;

	if (o->type != MSGPACK_OBJECT_MAP)
		return -1;
	*h = (hist)HIST_ZERO;
	for (i = 0; i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;

		if (key_is(k, "sum")) {
			if (v->type == MSGPACK_OBJECT_FLOAT32 || v->type == MSGPACK_OBJECT_FLOAT64)
				h->sum = v->via.f64;
			else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
				h->sum = (double)v->via.u64;
			else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
				h->sum = (double)v->via.i64;
			else
				return -1;
			if (!isfinite(h->sum))
				return -1;
			got_sum = 1;
		} else if (key_is(k, "count")) {
			if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
				return -1;
			h->count = v->via.u64;
			got_count = 1;
		} else if (key_is(k, "counts")) {
			if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size != nb + 1)
				return -1;
			for (j = 0; j <= nb; j++) {
				const msgpack_object *c = &v->via.array.ptr[j];

				if (c->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
					return -1;
				h->counts[j] = c->via.u64;
				if (total + c->via.u64 < total)
					return -1;   /* overflows: no daemon counted that */
				total += c->via.u64;
			}
			got_counts = 1;
		}
	}
	if (!got_sum || !got_count || !got_counts || total != h->count)
		return -1;
	return 0;
}

int
hist_unpack(const msgpack_object *o, hist hs[HIST_N])
{
	hist tmp[HIST_N];
	uint32_t i;
	size_t k;

	if (!o || o->type != MSGPACK_OBJECT_MAP)
		return -1;
	for (k = 0; k < HIST_N; k++)
		tmp[k] = (hist)HIST_ZERO;
	for (i = 0; i < o->via.map.size; i++) {
		const msgpack_object *key = &o->via.map.ptr[i].key;

		if (key->type != MSGPACK_OBJECT_STR)
			return -1;
		for (k = 0; k < HIST_N; k++)
			if (key_is(key, kinds[k].name))
				break;
		if (k == HIST_N)
			continue;   /* a histogram this build does not know */
		if (unpack_one(&o->via.map.ptr[i].val, kinds[k].n, &tmp[k]) < 0)
			return -1;
	}
	memcpy(hs, tmp, sizeof tmp);
	return 0;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

void
hist_sort(double *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_double);
}

double
hist_percentile(const double *v, size_t n, double p)
{
	double rank = p / 100 * (double)(n - 1), f = floor(rank);
	size_t lo = (size_t)f, hi = lo + 1 < n ? lo + 1 : lo;

	return v[lo] + (v[hi] - v[lo]) * (rank - f);
}
