/* Unit tests of lib/hist: vLLM's names and bounds, which bucket a value
 * falls in (bounds are inclusive), and the msgpack form read back, with
 * every wrong shape refused. */

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "hist.h"
#include "msg.h"
#include "tap.h"

/* packs hs, reads it back into out; the result of hist_unpack */
static int
roundtrip(const hist hs[HIST_N], hist out[HIST_N])
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_zone z;
	msg m = MSG_ZERO;
	const char *err;
	int r = -2;

	msgpack_sbuffer_init(&sb);
	msg_pk_init(&pk, &sb);
	hist_pack(&pk, hs);
	msgpack_zone_init(&z, 1024);
	if (msg_unpack(sb.data, sb.size, 0, &z, &m, &err) == MSG_GOT)
		r = hist_unpack(&m.root, out);
	msgpack_zone_destroy(&z);
	msgpack_sbuffer_destroy(&sb);
	return r;
}

/* hist_unpack of the root of the message in sb */
static int
unpack_bytes(const msgpack_sbuffer *sb, hist out[HIST_N])
{
	msgpack_zone z;
	msg m = MSG_ZERO;
	const char *err;
	int r = -2;

	msgpack_zone_init(&z, 1024);
	if (msg_unpack(sb->data, sb->size, 0, &z, &m, &err) == MSG_GOT)
		r = hist_unpack(&m.root, out);
	msgpack_zone_destroy(&z);
	return r;
}

/* {"time_to_first_token_seconds": {"sum": sum, "count": count, "counts": [n x v]}} */
static void
pack_ttft(msgpack_sbuffer *sb, double sum, uint64_t count, size_t n, uint64_t v, int sum_as_str)
{
	msgpack_packer pk;
	size_t i;

	sb->size = 0;
	msg_pk_init(&pk, sb);
	msgpack_pack_map(&pk, 1);
	msg_pk_str(&pk, "time_to_first_token_seconds");
	msgpack_pack_map(&pk, 3);
	msg_pk_str(&pk, "sum");
	if (sum_as_str)
		msg_pk_str(&pk, "1.5");
	else
		msgpack_pack_double(&pk, sum);
	msg_pk_str(&pk, "count");
	msgpack_pack_uint64(&pk, count);
	msg_pk_str(&pk, "counts");
	msgpack_pack_array(&pk, (uint32_t)n);
	for (i = 0; i < n; i++)
		msgpack_pack_uint64(&pk, i == 0 ? v : 0);
}

static int
same(const hist *a, const hist *b)
{
	return a->count == b->count && a->sum == b->sum && !memcmp(a->counts, b->counts, sizeof a->counts);
}

int
main(void)
{
	static const double ttft[] = { 0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
				       1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560 };
	static const double itl[] = { 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1,
				      2.5, 5, 7.5, 10, 20, 40, 80 };
	static const double req[] = { 0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120,
				      240, 480, 960, 1920, 7680 };
	static const char *const names[HIST_N] = {
		"time_to_first_token_seconds", "inter_token_latency_seconds",
		"e2e_request_latency_seconds", "request_queue_time_seconds",
		"request_inference_time_seconds", "request_prefill_time_seconds",
		"request_decode_time_seconds",
	};
	hist hs[HIST_N], back[HIST_N], h = HIST_ZERO;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	const double *le;
	size_t n, k, i;
	int all;

	/* ---- names and bounds: vLLM's, exactly */
	for (k = 0, all = 1; k < HIST_N; k++)
		all &= hist_name((hist_kind)k) && !strcmp(hist_name((hist_kind)k), names[k]);
	ok(all, "hist_name gives vLLM's seven names in hist_kind order");
	ok(hist_name(HIST_N) == NULL && hist_name((hist_kind)-1) == NULL, "hist_name of no kind is NULL");
	n = hist_bounds(HIST_TTFT, &le);
	ok(n == 22 && !memcmp(le, ttft, sizeof ttft), "TTFT: 22 bounds, 0.001 .. 2560");
	n = hist_bounds(HIST_ITL, &le);
	ok(n == 19 && !memcmp(le, itl, sizeof itl), "ITL: 19 bounds, 0.01 .. 80");
	for (k = HIST_E2E, all = 1; k < HIST_N; k++) {
		n = hist_bounds((hist_kind)k, &le);
		all &= n == 21 && !memcmp(le, req, sizeof req);
	}
	ok(all, "e2e, queue, inference, prefill, decode: 21 bounds, 0.3 .. 7680");
	for (k = 0, all = 1; k < HIST_N; k++) {
		n = hist_bounds((hist_kind)k, &le);
		all &= n <= HIST_MAXB;
		for (i = 1; i < n; i++)
			all &= le[i - 1] < le[i];
	}
	ok(all, "bounds ascend and fit HIST_MAXB");
	le = (const double *)1;
	ok(hist_bounds(HIST_N, &le) == 0 && le == NULL, "hist_bounds of no kind is 0");

	/* ---- observing: (le[i-1], le[i]] */
	hist_observe(&h, HIST_TTFT, 0.001);
	ok(h.counts[0] == 1 && h.count == 1, "a value equal to a bound counts in that bound's bucket");
	hist_observe(&h, HIST_TTFT, nextafter(0.001, 1));
	ok(h.counts[1] == 1, "just above a bound counts in the next bucket");
	hist_observe(&h, HIST_TTFT, 0);
	hist_observe(&h, HIST_TTFT, -3);
	ok(h.counts[0] == 3, "zero and negative values count in the first bucket");
	hist_observe(&h, HIST_TTFT, 2560);
	hist_observe(&h, HIST_TTFT, 2560.5);
	hist_observe(&h, HIST_TTFT, 1e300);
	ok(h.counts[21] == 1 && h.counts[22] == 2, "the last bound, then +Inf above it");
	hist_observe(&h, HIST_TTFT, NAN);
	hist_observe(&h, HIST_TTFT, INFINITY);
	hist_observe(&h, HIST_TTFT, -INFINITY);
	hist_observe(&h, HIST_N, 1);
	ok(h.count == 7, "NaN, infinities and a kind out of range are ignored");
	ok(h.sum == 0.001 + nextafter(0.001, 1) + 0 - 3 + 2560 + 2560.5 + 1e300, "sum adds the values");
	h = (hist)HIST_ZERO;
	hist_observe(&h, HIST_ITL, 0.3);
	hist_observe(&h, HIST_ITL, 0.31);
	hist_observe(&h, HIST_ITL, 81);
	ok(h.counts[7] == 1 && h.counts[8] == 1 && h.counts[19] == 1 && h.count == 3,
	   "ITL buckets: 0.3 in le=0.3, 0.31 in le=0.4, 81 in +Inf");
	h = (hist)HIST_ZERO;
	hist_observe(&h, HIST_DECODE, 7680);
	hist_observe(&h, HIST_DECODE, 7681);
	ok(h.counts[20] == 1 && h.counts[21] == 1, "decode: 7680 in the last bucket, 7681 in +Inf");

	/* ---- pack and unpack */
	for (k = 0; k < HIST_N; k++) {
		hs[k] = (hist)HIST_ZERO;
		for (i = 0; i < 50 * (k + 1); i++)
			hist_observe(&hs[k], (hist_kind)k, 0.0007 * (double)(i * i * (k + 1)));
	}
	memset(back, 0xff, sizeof back);
	ok(roundtrip(hs, back) == 0, "what hist_pack wrote, hist_unpack reads");
	for (k = 0, all = 1; k < HIST_N; k++)
		all &= same(&hs[k], &back[k]);
	ok(all, "every histogram comes back bit for bit");

	msgpack_sbuffer_init(&sb);
	msg_pk_init(&pk, &sb);
	msgpack_pack_map(&pk, 2);
	msg_pk_str(&pk, "some_future_histogram_seconds");
	msgpack_pack_array(&pk, 0);
	msg_pk_str(&pk, "request_queue_time_seconds");
	msgpack_pack_map(&pk, 4);
	msg_pk_str(&pk, "count");
	msgpack_pack_uint64(&pk, 2);
	msg_pk_str(&pk, "unit");
	msg_pk_str(&pk, "seconds");
	msg_pk_str(&pk, "sum");
	msgpack_pack_uint64(&pk, 3);   /* an integer sum is a number too */
	msg_pk_str(&pk, "counts");
	msgpack_pack_array(&pk, 22);
	for (i = 0; i < 22; i++)
		msgpack_pack_uint64(&pk, i == 5 || i == 21);
	memset(back, 0xff, sizeof back);
	ok(unpack_bytes(&sb, back) == 0, "unknown names and keys are skipped");
	ok(back[HIST_QUEUE].count == 2 && back[HIST_QUEUE].sum == 3 && back[HIST_QUEUE].counts[5] == 1 &&
	   back[HIST_QUEUE].counts[21] == 1, "the known histogram is read");
	ok(back[HIST_TTFT].count == 0 && back[HIST_TTFT].sum == 0 && back[HIST_TTFT].counts[0] == 0 &&
	   back[HIST_DECODE].count == 0, "the absent histograms are zero");

	/* ---- wrong shapes: -1, and hs untouched */
	for (k = 0; k < HIST_N; k++)
		back[k] = hs[k];
	pack_ttft(&sb, 1.5, 4, 23, 4, 0);
	ok(unpack_bytes(&sb, back) == 0 && back[HIST_TTFT].count == 4, "a well-formed TTFT (control)");
	for (k = 0; k < HIST_N; k++)
		back[k] = hs[k];
	pack_ttft(&sb, 1.5, 4, 22, 4, 0);
	ok(unpack_bytes(&sb, back) == -1, "counts one short: -1");
	pack_ttft(&sb, 1.5, 4, 24, 4, 0);
	ok(unpack_bytes(&sb, back) == -1, "counts one too many: -1");
	pack_ttft(&sb, 1.5, 5, 23, 4, 0);
	ok(unpack_bytes(&sb, back) == -1, "counts not adding up to count: -1");
	pack_ttft(&sb, 1.5, 4, 23, 4, 1);
	ok(unpack_bytes(&sb, back) == -1, "a sum that is a string: -1");
	pack_ttft(&sb, NAN, 4, 23, 4, 0);
	ok(unpack_bytes(&sb, back) == -1, "a NaN sum: -1");
	sb.size = 0;
	msg_pk_init(&pk, &sb);
	msgpack_pack_map(&pk, 1);
	msg_pk_str(&pk, "time_to_first_token_seconds");
	msgpack_pack_map(&pk, 3);
	msg_pk_str(&pk, "sum");
	msgpack_pack_double(&pk, 1);
	msg_pk_str(&pk, "count");
	msgpack_pack_uint64(&pk, 1);
	msg_pk_str(&pk, "counts");
	msgpack_pack_array(&pk, 23);
	for (i = 0; i < 23; i++)
		msgpack_pack_uint64(&pk, i < 2 ? UINT64_MAX : i == 2);
	ok(unpack_bytes(&sb, back) == -1, "counts that overflow: -1");
	sb.size = 0;
	msg_pk_init(&pk, &sb);
	msgpack_pack_map(&pk, 1);
	msg_pk_str(&pk, "time_to_first_token_seconds");
	msgpack_pack_map(&pk, 2);
	msg_pk_str(&pk, "sum");
	msgpack_pack_double(&pk, 1);
	msg_pk_str(&pk, "count");
	msgpack_pack_uint64(&pk, 0);
	ok(unpack_bytes(&sb, back) == -1, "no counts: -1");
	sb.size = 0;
	msg_pk_init(&pk, &sb);
	msgpack_pack_map(&pk, 1);
	msg_pk_str(&pk, "inter_token_latency_seconds");
	msgpack_pack_array(&pk, 0);
	ok(unpack_bytes(&sb, back) == -1, "a histogram that is not a map: -1");
	{
		msgpack_object arr = { .type = MSGPACK_OBJECT_ARRAY };
		ok(hist_unpack(&arr, back) == -1, "not a map at all: -1");
	}
	sb.size = 0;
	msg_pk_init(&pk, &sb);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_uint64(&pk, 7);
	msgpack_pack_nil(&pk);
	ok(unpack_bytes(&sb, back) == -1, "a key that is not a string: -1");
	ok(hist_unpack(NULL, back) == -1, "NULL: -1");
	for (k = 0, all = 1; k < HIST_N; k++)
		all &= same(&hs[k], &back[k]);
	ok(all, "after every refusal the histograms are as they were");
	msgpack_sbuffer_destroy(&sb);
	return done_testing();
}
