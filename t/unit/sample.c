/* sample unit test: the RNG against splitmix64's and xoshiro256**'s published
 * outputs; greedy and its ties; seeded draws reproducible and their
 * frequencies those of the softmax (at temperature 1 and 0.5, after top-k);
 * top-k, top-p and min-p on their boundaries and against a full sort on a
 * 49152-token row; the penalties against hand-computed logits; log-probs
 * against a double log-softmax; NaN and inf; the scalar path against AVX2;
 * and the time per call as a TAP comment. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sample.h"
#include "tap.h"

#define NV 49152

/* xorshift64* and Box-Muller: fixed seeds, same numbers everywhere */
static uint64_t rs = 0x9e3779b97f4a7c15ull;

static double
unif(void)
{
	rs ^= rs >> 12;
	rs ^= rs << 25;
	rs ^= rs >> 27;
	return (double)((rs * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static float
gauss(void)
{
	double u = unif(), v = unif();

	return (float)(sqrt(-2 * log(u + 1e-300)) * cos(6.283185307179586 * v));
}

static sample_ws ws = SAMPLE_WS_ZERO;
static float row[NV];

static sample_params
params(float temp)
{
	sample_params p = SAMPLE_PARAMS_DEFAULT;

	p.temperature = temp;
	return p;
}

/* one call on a copy of l (row keeps what the sampler left) */
static uint32_t
pick(const sample_params *p, sample_rng *r, const float *l, uint32_t n,
     const uint32_t *hist, size_t nh, sample_out *o)
{
	sample_out tmp;

	if (!o)
		o = &tmp;
	memcpy(row, l, n * sizeof *l);
	sample_token(p, r, &ws, row, n, hist, nh, o);
	return o->token;
}

static uint32_t
n_finite(const float *x, uint32_t n)
{
	uint32_t i, c = 0;

	for (i = 0; i < n; i++)
		c += x[i] != -INFINITY;
	return c;
}

static void
softmax(const float *l, int n, double t, double *p)
{
	double m = -INFINITY, z = 0;
	int i;

	for (i = 0; i < n; i++)
		if (l[i] / t > m)
			m = l[i] / t;
	for (i = 0; i < n; i++)
		z += p[i] = exp(l[i] / t - m);
	for (i = 0; i < n; i++)
		p[i] /= z;
}

/* ------------------------------------------------------------ rng */

static void
t_rng(void)
{
	sample_rng r = { { 1, 2, 3, 4 } }, c;
	uint64_t want[4] = { 11520u, 0u, 1509978240u, 1215971899390074240ull };
	int i, good = 1;
	double u, lo = 1, hi = 0;

	for (i = 0; i < 4; i++)
		good &= sample_next(&r) == want[i];
	ok(good, "xoshiro256** from {1,2,3,4} gives the reference outputs");
	sample_seed(&r, 0);
	ok(r.s[0] == 0xe220a8397b1dcdafull, "seed 0: splitmix64's first output");
	sample_seed(&r, 12345);
	good = 1;
	for (i = 0; i < 100000; i++) {
		c = r;
		u = sample_uniform(&r);
		good &= u == (double)(sample_next(&c) >> 11) / 9007199254740992.0;
		lo = u < lo ? u : lo;
		hi = u > hi ? u : hi;
	}
	ok(good && lo >= 0 && hi < 1 && lo < 1e-4 && hi > 1 - 1e-4,
	   "sample_uniform: top 53 bits, in [0, 1) (%.3g..%.9f)", lo, hi);
}

/* ------------------------------------------------------------ greedy */

static void
t_greedy(void)
{
	sample_params p = params(0);
	sample_rng r, r0;
	float l[1000];
	uint32_t i, best = 0;
	int good = 1;
	sample_out o;

	for (i = 0; i < 1000; i++) {
		l[i] = gauss() * 3;
		if (l[i] > l[best])
			best = i;
	}
	sample_seed(&r, 7);
	r0 = r;
	ok(pick(&p, &r, l, 1000, NULL, 0, &o) == best, "greedy: argmax (%u)", best);
	ok(!memcmp(&r, &r0, sizeof r), "greedy: the RNG is untouched");
	l[3] = l[best];
	l[999] = l[best];
	ok(pick(&p, &r, l, 1000, NULL, 0, NULL) == (best < 3 ? best : 3), "greedy: a tie goes to the lower id");
	l[3] = l[999] = -5;
	p.temperature = -1;
	good &= pick(&p, &r, l, 1000, NULL, 0, NULL) == best;
	p.temperature = NAN;
	good &= pick(&p, &r, l, 1000, NULL, 0, NULL) == best;
	ok(good && !memcmp(&r, &r0, sizeof r), "temperature -1 and NaN are greedy too");
	/* a tie in the tail (not a multiple of 8) and in the first lanes */
	for (i = 0; i < 13; i++)
		l[i] = 1;
	ok(pick(&p, &r, l, 13, NULL, 0, NULL) == 0, "greedy: all equal -> token 0");
	l[12] = 2;
	l[11] = 2;
	ok(pick(&p, &r, l, 13, NULL, 0, NULL) == 11, "greedy: tie in the tail -> lower id");
	/* ties across the AVX2 lanes: the lane holding the lower id wins */
	{
		static float l64[64];
		int good2;

		l64[10] = l64[13] = l64[60] = 5;
		good2 = pick(&p, &r, l64, 64, NULL, 0, NULL) == 10;
		l64[10] = l64[13] = l64[60] = 0;
		l64[15] = l64[17] = 5;   /* lane 7 holds 15, lane 1 holds 17 */
		ok(good2 && pick(&p, &r, l64, 64, NULL, 0, NULL) == 15, "greedy: ties across lanes -> lower id");
	}
	p.top_k = 5;
	p.top_p = 0.1f;
	p.min_p = 0.9f;
	ok(pick(&p, &r, l, 13, NULL, 0, NULL) == 11 && !memcmp(&r, &r0, sizeof r),
	   "greedy ignores the filters and leaves the RNG alone");
}

/* ------------------------------------------------------------ draws */

static void
t_repro(void)
{
	sample_params p = params(1);
	sample_rng a, b;
	static float l[1000];
	uint32_t i, same = 1, diff = 0, t1, t2;

	for (i = 0; i < 1000; i++)
		l[i] = gauss() * 2;
	sample_seed(&a, 42);
	sample_seed(&b, 42);
	for (i = 0; i < 1000; i++)
		same &= pick(&p, &a, l, 1000, NULL, 0, NULL) == pick(&p, &b, l, 1000, NULL, 0, NULL);
	ok(same, "same seed, same 1000 tokens");
	sample_seed(&a, 42);
	sample_seed(&b, 43);
	for (i = 0; i < 1000; i++) {
		t1 = pick(&p, &a, l, 1000, NULL, 0, NULL);
		t2 = pick(&p, &b, l, 1000, NULL, 0, NULL);
		diff += t1 != t2;
	}
	ok(diff > 500, "seeds 42 and 43 differ (%u of 1000 tokens)", diff);
	/* each sampled token takes exactly one draw from the RNG */
	sample_seed(&a, 9);
	sample_seed(&b, 9);
	p.top_k = 1;
	pick(&p, &a, l, 1000, NULL, 0, NULL);
	sample_next(&b);
	ok(!memcmp(&a, &b, sizeof a), "a sampled token takes one draw, even with top_k 1");
}

/* frequencies of n draws against probabilities q; returns the worst gap */
static double
freq_gap(const sample_params *p, const float *l, int nv, const double *q, int n, uint64_t seed)
{
	sample_rng r;
	int cnt[8] = { 0 }, i;
	double worst = 0;

	sample_seed(&r, seed);
	for (i = 0; i < n; i++)
		cnt[pick(p, &r, l, (uint32_t)nv, NULL, 0, NULL)]++;
	for (i = 0; i < nv; i++)
		if (fabs((double)cnt[i] / n - q[i]) > worst)
			worst = fabs((double)cnt[i] / n - q[i]);
	return worst;
}

static void
t_distribution(void)
{
	float l[5] = { 1.0f, 2.0f, 0.5f, -1.0f, 1.5f };
	double q[5], g;
	sample_params p = params(1);

	softmax(l, 5, 1, q);
	g = freq_gap(&p, l, 5, q, 200000, 1);
	ok(g < 0.01, "T=1: 200k draws within 1%% of the softmax (worst %.4f)", g);
	p.temperature = 0.5f;
	softmax(l, 5, 0.5, q);
	g = freq_gap(&p, l, 5, q, 200000, 2);
	ok(g < 0.01 && q[1] > 0.5, "T=0.5: within 1%% of softmax(l/0.5) (worst %.4f, p1 %.3f)", g, q[1]);
	/* top_k 3 renormalises over {1, 4, 0} */
	p.temperature = 1;
	p.top_k = 3;
	{
		float l3[3] = { l[1], l[4], l[0] };
		double q3[3];

		softmax(l3, 3, 1, q3);
		q[0] = q3[2], q[1] = q3[0], q[2] = 0, q[3] = 0, q[4] = q3[1];
	}
	g = freq_gap(&p, l, 5, q, 100000, 3);
	ok(g < 0.01, "top_k 3 at T=1: the softmax of the three (worst %.4f)", g);
}

/* ------------------------------------------------------------ filters */

static int
cmp_desc(const void *a, const void *b)
{
	const float *x = *(const float *const *)a, *y = *(const float *const *)b;

	if (*x != *y)
		return *x > *y ? -1 : 1;
	return x < y ? -1 : 1;
}

/* the reference kept set for top_p / min_p over l[0..n) at temperature 1
 * by a full sort in double, with the sampler's slack of 1e-6 on both
 * boundaries; -1 when the cumulative sum passes too close to call */
static int
ref_keep(const float *l, uint32_t n, double top_p, double min_p, unsigned char *keep)
{
	static const float *ord[NV];
	static double pr[NV];
	double m = -INFINITY, z = 0, cum = 0, want = top_p - 1e-6;
	uint32_t i, cut = n;

	for (i = 0; i < n; i++) {
		ord[i] = l + i;
		if (l[i] > m)
			m = l[i];
	}
	qsort(ord, n, sizeof *ord, cmp_desc);
	for (i = 0; i < n; i++)
		z += pr[i] = exp(*ord[i] - m);
	for (i = 0; i < n; i++) {
		cum += pr[i] / z;
		if (fabs(cum - want) < 1e-6)
			return -1;
		if (cum >= want) {
			cut = i + 1;
			break;
		}
	}
	memset(keep, 0, n);
	for (i = 0; i < cut; i++)
		if (min_p <= 0 || (double)*ord[i] - m >= log(min_p) - 1e-6)
			keep[ord[i] - l] = 1;
	return 0;
}

static void
t_topk(void)
{
	sample_params p = params(1);
	sample_rng r;
	float l[5] = { 1.0f, 2.0f, 0.5f, -1.0f, 1.5f };
	static float big[1000];
	int seen[5] = { 0 }, i, good = 1;
	uint32_t j;

	p.top_k = 2;
	sample_seed(&r, 5);
	for (i = 0; i < 20000; i++)
		seen[pick(&p, &r, l, 5, NULL, 0, NULL)]++;
	ok(seen[0] + seen[2] + seen[3] == 0 && seen[1] > 0 && seen[4] > 0,
	   "top_k 2: only tokens 1 and 4 (%d, %d)", seen[1], seen[4]);
	ok(n_finite(row, 5) == 2 && row[1] == 2.0f && row[4] == 1.5f,
	   "top_k 2: the row keeps two logits, the rest at -inf");
	/* all equal: the lowest ids */
	for (i = 0; i < 5; i++)
		l[i] = 0.25f;
	pick(&p, &r, l, 5, NULL, 0, NULL);
	ok(row[0] == 0.25f && row[1] == 0.25f && n_finite(row, 5) == 2, "top_k on a tie keeps the lower ids");
	/* the heap and the quickselect against a sort, on a row with ties
	 * (most tokens near the maximum) and on one spread over 500 nats
	 * (too few near it: the scan over the whole row) */
	for (int row_kind = 0; row_kind < 2; row_kind++) {
		const float *ord[1000];

		for (j = 0; j < 1000; j++)
			big[j] = row_kind ? (float)(j * 7919 % 1000) / 2 : (float)(int)(gauss() * 20) / 4;
		for (j = 0; j < 1000; j++)
			ord[j] = big + j;
		qsort(ord, 1000, sizeof *ord, cmp_desc);
		for (i = 0; i < 4; i++) {
			uint32_t k = (uint32_t[]){ 1, 40, 128, 600 }[i], m;
			unsigned char in[1000] = { 0 };

			p.top_k = k;
			pick(&p, &r, big, 1000, NULL, 0, NULL);
			for (m = 0; m < k; m++)
				in[ord[m] - big] = 1;
			for (m = 0; m < 1000; m++)
				good &= in[m] == (row[m] != -INFINITY);
		}
	}
	ok(good, "top_k 1, 40, 128 (heap) and 600 (quickselect) keep the sort's top, ties by id");
	p.top_k = 1000;
	pick(&p, &r, big, 1000, NULL, 0, NULL);
	ok(n_finite(row, 1000) == 1000, "top_k >= n_vocab is off");
}

static void
t_topp(void)
{
	sample_params p = params(1);
	sample_rng r;
	float l[10];
	static float big[NV];
	static unsigned char keep[NV];
	int i, good = 1, tried = 0, skipped = 0, s;

	sample_seed(&r, 11);
	for (i = 0; i < 10; i++)
		l[i] = -INFINITY;
	l[0] = logf(0.5f), l[1] = logf(0.3f), l[2] = logf(0.2f);
	p.top_p = 0.8f;
	pick(&p, &r, l, 3, NULL, 0, NULL);
	ok(n_finite(row, 3) == 2 && row[2] == -INFINITY, "top_p 0.8 on 0.5, 0.3, 0.2 keeps two");
	p.top_p = 0.81f;
	pick(&p, &r, l, 3, NULL, 0, NULL);
	ok(n_finite(row, 3) == 3, "top_p 0.81 keeps three");
	p.top_p = 0.5f;
	pick(&p, &r, l, 3, NULL, 0, NULL);
	ok(n_finite(row, 3) == 1 && row[0] == l[0], "top_p 0.5 keeps one");
	p.top_p = 0.0f;
	pick(&p, &r, l, 3, NULL, 0, NULL);
	ok(n_finite(row, 3) == 1 && row[0] == l[0], "top_p 0 keeps the best one");
	/* the same after top_k (which renormalises; -inf tokens weigh 0) */
	p.top_k = 5;
	p.top_p = 0.8f;
	pick(&p, &r, l, 10, NULL, 0, NULL);
	s = n_finite(row, 10) == 2;
	p.top_p = 0.81f;
	pick(&p, &r, l, 10, NULL, 0, NULL);
	ok(s && n_finite(row, 10) == 3, "the same two boundaries after top_k 5");
	/* temperature applies after the filters: 0.8 keeps two at T=5 too */
	p.top_k = 0;
	p.top_p = 0.8f;
	p.temperature = 5;
	pick(&p, &r, l, 3, NULL, 0, NULL);
	ok(n_finite(row, 3) == 2 && row[0] == l[0] / 5 && row[1] == l[1] / 5,
	   "top_p before temperature; the row holds l/T for those kept");
	p.temperature = 1;
	/* against a full sort on 49152 tokens: peaked and flat rows, with and
	 * without min_p, with top_k 0 and 1000 */
	for (i = 0; i < 24; i++) {
		double scale = (double[]){ 0.3, 1, 3, 8 }[i % 4];
		float tp = (float[]){ 0.5f, 0.9f, 0.95f }[(i / 4) % 3];
		uint32_t j;

		for (j = 0; j < NV; j++)
			big[j] = (float)(gauss() * scale);
		p.top_p = tp;
		p.min_p = i >= 12 ? 0.02f : 0;
		p.top_k = 0;
		if (ref_keep(big, NV, tp, p.min_p, keep) < 0) {
			skipped++;
			continue;
		}
		pick(&p, &r, big, NV, NULL, 0, NULL);
		for (j = 0; j < NV; j++)
			good &= keep[j] == (row[j] != -INFINITY);
		tried++;
	}
	ok(good && tried > 15, "top_p (and min_p) on 49152 tokens keep the sorted prefix (%d rows, %d on a boundary)",
	   tried, skipped);
	p.min_p = 0;
}

static void
t_minp(void)
{
	sample_params p = params(1);
	sample_rng r;
	float l[3] = { logf(0.5f), logf(0.3f), logf(0.2f) };
	float two[2] = { logf(0.5f), logf(0.25f) };
	int good = 1;

	sample_seed(&r, 3);
	p.min_p = 0.5f;     /* threshold 0.25: 0.5, 0.3 */
	pick(&p, &r, l, 3, NULL, 0, NULL);
	good &= n_finite(row, 3) == 2 && row[2] == -INFINITY;
	p.min_p = 0.35f;    /* 0.175: all three */
	pick(&p, &r, l, 3, NULL, 0, NULL);
	good &= n_finite(row, 3) == 3;
	p.min_p = 0.7f;     /* 0.35: just 0.5 */
	pick(&p, &r, l, 3, NULL, 0, NULL);
	good &= n_finite(row, 3) == 1 && row[0] == l[0];
	ok(good, "min_p 0.5, 0.35, 0.7 on 0.5, 0.3, 0.2 keep 2, 3, 1");
	p.min_p = 0.5f;     /* exactly p = min_p * p_max stays */
	pick(&p, &r, two, 2, NULL, 0, NULL);
	ok(n_finite(row, 2) == 2, "min_p: p == min_p * p_max is kept");
	p.min_p = 5;
	pick(&p, &r, l, 3, NULL, 0, NULL);
	ok(n_finite(row, 3) == 1 && row[0] == l[0], "min_p above 1 keeps the maximum");
	p.min_p = 0.5f;
	p.top_k = 2;
	p.top_p = 0.99f;
	pick(&p, &r, l, 3, NULL, 0, NULL);
	ok(n_finite(row, 3) == 2, "min_p after top_k and top_p");
}

/* ------------------------------------------------------------ penalties */

static void
t_penalties(void)
{
	sample_params p = params(0);
	sample_rng r;
	sample_out o;
	float l[4];
	uint32_t h[8];
	static uint32_t long_h[10000];
	static float lv[100];
	int i, good;

	sample_seed(&r, 1);
	p.repeat_penalty = 1.1f;
	l[0] = 2.0f, l[1] = 1.9f, l[2] = 0, l[3] = -3;
	h[0] = 0;
	ok(pick(&p, &r, l, 4, h, 1, &o) == 1 && row[0] == 2.0f / 1.1f && row[1] == 1.9f,
	   "repeat 1.1 on a positive logit divides it: 2/1.1 < 1.9");
	ok(fabs(o.logprob - (1.9 - log(exp(2.0) + exp(1.9) + 1 + exp(-3)))) < 1e-6,
	   "its logprob is the raw one");
	l[0] = -1.0f, l[1] = -1.05f, l[2] = -4, l[3] = -5;
	ok(pick(&p, &r, l, 4, h, 1, NULL) == 1 && row[0] == -1.0f * 1.1f,
	   "repeat on a negative logit multiplies: -1.1 < -1.05");
	l[0] = 2.0f, l[1] = 1.7f;
	ok(pick(&p, &r, l, 4, h, 1, &o) == 0 &&
	   fabs(o.logprob - (2.0 - log(exp(2.0) + exp(1.7) + exp(-4) + exp(-5)))) < 1e-6,
	   "a penalised token that still wins reports its raw logprob");
	p.repeat_penalty = 1;
	p.presence_penalty = 0.2f;
	l[0] = 1.0f, l[1] = 0.9f, l[2] = 0, l[3] = 0;
	h[0] = h[1] = h[2] = 0;
	ok(pick(&p, &r, l, 4, h, 3, NULL) == 1 && row[0] == 1.0f - (3 * 0.0f + 0.2f),
	   "presence 0.2 once, whatever the count: 1 - 0.2 < 0.9");
	p.presence_penalty = 0;
	p.frequency_penalty = 0.05f;
	l[0] = 1.0f, l[1] = 0.5f, l[2] = 0.9f, l[3] = 0;
	h[0] = h[1] = h[2] = 0, h[3] = 1;
	ok(pick(&p, &r, l, 4, h, 4, NULL) == 2 && row[0] == 1.0f - 3 * 0.05f && row[1] == 0.5f - 0.05f,
	   "frequency 0.05 times the count: 0.85, 0.45 < 0.9");
	/* all three: repeat first, then count * f + p */
	p.repeat_penalty = 1.3f;
	p.presence_penalty = 0.1f;
	p.frequency_penalty = 0.02f;
	l[0] = 1.5f, l[1] = -0.5f, l[2] = 0.6f, l[3] = 0.3f;
	h[0] = 0, h[1] = 1, h[2] = 0, h[3] = 1, h[4] = 1;
	pick(&p, &r, l, 4, h, 5, NULL);
	ok(row[0] == 1.5f / 1.3f - (2 * 0.02f + 0.1f) && row[1] == -0.5f * 1.3f - (3 * 0.02f + 0.1f) &&
	   row[2] == 0.6f && row[3] == 0.3f, "repeat, then frequency and presence, in llama.cpp's order");
	/* only the last penalty_last_n tokens count */
	p.presence_penalty = p.frequency_penalty = 0;
	p.repeat_penalty = 2;
	l[0] = 1, l[1] = 0.9f, l[2] = 0, l[3] = 0;
	h[0] = 0, h[1] = 2, h[2] = 2, h[3] = 3;
	p.penalty_last_n = 3;
	good = pick(&p, &r, l, 4, h, 4, NULL) == 0 && row[0] == 1;
	p.penalty_last_n = 4;
	good &= pick(&p, &r, l, 4, h, 4, NULL) == 1;
	p.penalty_last_n = 0;
	good &= pick(&p, &r, l, 4, h, 4, NULL) == 0;
	p.penalty_last_n = 1000;   /* more than the history: all of it */
	good &= pick(&p, &r, l, 4, h, 4, NULL) == 1;
	ok(good, "penalty_last_n: 3 skips token 0, 4 and 1000 reach it, 0 is off");
	h[0] = 7, h[1] = 99999, h[2] = 0xffffffffu;
	ok(pick(&p, &r, l, 4, h, 3, NULL) == 0, "history tokens outside the vocabulary are ignored");
	/* the window is bounded at 4096 */
	for (i = 0; i < 100; i++)
		lv[i] = 0;
	lv[5] = 1;
	for (i = 0; i < 10000; i++)
		long_h[i] = i < 5000 ? 5 : 7;
	p.repeat_penalty = 1;
	p.frequency_penalty = 0.001f;
	p.penalty_last_n = 10000;
	pick(&p, &r, lv, 100, long_h, 10000, NULL);
	ok(row[5] == 1 && row[7] == 0 - 4096 * 0.001f, "penalty_last_n is capped at 4096 tokens (%g)", row[7]);
	/* penalties make the argmax of the sampled path too */
	p = params(1);
	p.top_k = 1;
	p.presence_penalty = 2;
	l[0] = 1.0f, l[1] = 0.5f, l[2] = 0, l[3] = 0;
	h[0] = 0;
	ok(pick(&p, &r, l, 4, h, 1, NULL) == 1, "top_k 1 after the penalties picks the penalised argmax");
}

/* ------------------------------------------------------------ logprobs */

static void
t_logprobs(void)
{
	sample_params p = params(0.7f);
	sample_rng r;
	sample_out o;
	static float l[NV];
	static uint32_t h[64];
	uint32_t n, i, k, sorted_ok = 1, complete = 1;
	double m, z, err = 0, lse;
	int round;

	sample_seed(&r, 77);
	for (round = 0; round < 3; round++) {
		n = (uint32_t[]){ 1000, NV, 37 }[round];
		for (i = 0; i < n; i++)
			l[i] = (float)(gauss() * 4);
		l[5] = l[6] = 40;   /* a tie at the top */
		for (i = 0; i < 64; i++)
			h[i] = (uint32_t)(unif() * 50);
		p.repeat_penalty = 1.2f;
		p.presence_penalty = 0.5f;
		p.top_k = round == 1 ? 40 : 0;
		p.top_p = 0.9f;
		p.n_logprobs = round == 2 ? 5 : 25;
		for (m = -INFINITY, i = 0; i < n; i++)
			m = l[i] > m ? l[i] : m;
		for (z = 0, i = 0; i < n; i++)
			z += exp((double)l[i] - m);
		lse = m + log(z);
		pick(&p, &r, l, n, h, 64, &o);
		sorted_ok &= o.n_top == (round == 2 ? 5u : 20u) && o.top_id[0] == 5 && o.top_id[1] == 6;
		for (i = 0; i < o.n_top; i++) {
			err = fmax(err, fabs(o.top_lp[i] - ((double)l[o.top_id[i]] - lse)));
			if (i && (l[o.top_id[i]] > l[o.top_id[i - 1]] ||
				  (l[o.top_id[i]] == l[o.top_id[i - 1]] && o.top_id[i] < o.top_id[i - 1])))
				sorted_ok = 0;
		}
		for (i = 0; i < n; i++) {   /* nothing better left out */
			int in = 0;

			for (k = 0; k < o.n_top; k++)
				in |= o.top_id[k] == i;
			if (!in && l[i] > l[o.top_id[o.n_top - 1]])
				complete = 0;
		}
		err = fmax(err, fabs(o.logprob - ((double)l[o.token] - lse)));
	}
	ok(err < 1e-5, "logprobs equal a double log-softmax of the raw logits (max err %.2g)", err);
	ok(sorted_ok, "the top list: 20 at most, by raw logit, ties by id");
	ok(complete, "no token outside the top list beats its last");
	p.n_logprobs = 30;
	pick(&p, &r, l, 3, NULL, 0, &o);
	ok(o.n_top == 3, "n_top is bounded by the vocabulary");
	p.n_logprobs = 0;
	pick(&p, &r, l, 37, NULL, 0, &o);
	ok(o.n_top == 0 && o.logprob <= 0 && o.logprob > -100, "no alternatives asked: none, the logprob still there");
}

/* ------------------------------------------------------------ NaN, inf */

static void
t_nan(void)
{
	sample_params g = params(0), s = params(1);
	sample_rng r;
	sample_out o;
	float l[20];
	int i, good = 1;

	sample_seed(&r, 5);
	for (i = 0; i < 20; i++)
		l[i] = (i % 3) ? NAN : (float)i / 10;
	ok(pick(&g, &r, l, 20, NULL, 0, NULL) == 18, "greedy skips NaN");
	for (i = 0; i < 2000; i++)
		good &= pick(&s, &r, l, 20, NULL, 0, &o) % 3 == 0 && isfinite(o.logprob);
	ok(good, "sampling never picks a NaN token");
	for (i = 0; i < 20; i++)
		l[i] = NAN;
	ok(pick(&g, &r, l, 20, NULL, 0, NULL) == 0 && pick(&s, &r, l, 20, NULL, 0, NULL) == 0,
	   "all NaN: token 0");
	for (i = 0; i < 20; i++)
		l[i] = -INFINITY;
	s.top_k = 3;
	s.top_p = 0.5f;
	s.n_logprobs = 3;
	ok(pick(&g, &r, l, 20, NULL, 0, NULL) == 0 && pick(&s, &r, l, 20, NULL, 0, &o) == 0 && o.n_top == 3,
	   "all -inf: token 0, greedy or sampled");
	s = params(1);
	for (i = 0; i < 20; i++)
		l[i] = (float)i;
	l[7] = INFINITY;
	l[9] = NAN;
	good = pick(&g, &r, l, 20, NULL, 0, NULL) == 7;
	for (i = 0; i < 200; i++)
		good &= pick(&s, &r, l, 20, NULL, 0, NULL) == 7;
	ok(good, "+inf wins, greedy or sampled");
	s.temperature = 1e-38f;
	l[7] = 3;
	ok(pick(&s, &r, l, 20, NULL, 0, NULL) == 19, "a temperature that overflows the logits is greedy");
	s.temperature = INFINITY;
	s.top_k = 4;
	good = 1;
	for (i = 0; i < 200; i++)
		good &= pick(&s, &r, l, 20, NULL, 0, &o) >= 16;
	ok(good && !isnan(row[0]), "temperature +inf: uniform over the candidates, no NaN in the row");
	s = params(1);
	s.repeat_penalty = NAN;
	s.presence_penalty = INFINITY;
	s.top_p = NAN;
	s.min_p = NAN;
	{
		uint32_t h[2] = { 19, 19 };

		pick(&s, &r, l, 20, h, 2, &o);
		ok(row[19] == 19, "NaN or inf settings count as off");
	}
	memset(&o, 0xff, sizeof o);
	sample_token(&s, &r, &ws, l, 0, NULL, 0, &o);
	ok(o.token == 0 && o.n_top == 0, "an empty vocabulary gives token 0 and no crash");
	l[0] = -2;
	ok(pick(&s, &r, l, 1, NULL, 0, &o) == 0 && o.logprob == 0, "a vocabulary of one");
}

/* ------------------------------------------------------------ scalar == AVX2 */

/* A fixed run over many settings; its digest must not depend on the path. */
static uint64_t
digest(void)
{
	static float l[NV];
	sample_params p;
	sample_rng r;
	sample_out o;
	uint64_t h = 1469598103934665603ull;
	uint32_t hist[64], i;
	int k, j;

	rs = 12345;
	sample_seed(&r, 2024);
	for (k = 0; k < 120; k++) {
		uint32_t n = k % 5 == 4 ? 1000 + k : NV;

		for (i = 0; i < n; i++)
			l[i] = (float)(gauss() * (0.5 + k % 7));
		if (k % 10 == 7)        /* ties everywhere: the lower id first */
			for (i = 0; i < n; i++)
				l[i] = roundf(l[i] * 2) / 2;
		if (k % 10 == 9) {      /* NaN (as -inf) and +inf (as FLT_MAX) */
			l[k % 13] = NAN;
			l[n - 1 - k % 5] = INFINITY;
			l[n / 2] = NAN;
		}
		for (i = 0; i < 64; i++)
			hist[i] = (uint32_t)(unif() * 3000);
		p = params((float[]){ 1, 0.7f, 1.3f, 0 }[k % 4]);
		p.top_k = (uint32_t[]){ 0, 40, 0, 200, 0, 1 }[k % 6];
		p.top_p = (float[]){ 1, 0.95f, 0.9f }[k % 3];
		p.min_p = k % 8 == 3 ? 0.05f : 0;
		p.repeat_penalty = k % 2 ? 1.1f : 1;
		p.n_logprobs = 20;
		pick(&p, &r, l, n, hist, 64, &o);
		h = (h ^ o.token) * 1099511628211ull;
		for (j = 0; j < 20; j++) {
			uint32_t b;

			memcpy(&b, &o.top_lp[j], 4);
			h = (h ^ b ^ o.top_id[j]) * 1099511628211ull;
		}
		memcpy(&i, &o.logprob, 4);
		h = (h ^ i) * 1099511628211ull;
	}
	return h;
}

/* the digest of a child run with VAR=VAL (a path forced) against ours
 * (the best path this CPU has) */
static void
t_paths(const char *self, const char *var, const char *val)
{
	uint64_t here = digest(), there = 0;
	int fd[2], st;
	pid_t pid;
	char buf[64] = "";
	ssize_t n;

	if (pipe(fd) < 0)
		return;
	pid = fork();
	if (pid == 0) {
		dup2(fd[1], 1);
		close(fd[0]);
		setenv(var, val, 1);
		execl(self, self, "--digest", (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	n = read(fd[0], buf, sizeof buf - 1);
	close(fd[0]);
	waitpid(pid, &st, 0);
	if (n > 0)
		there = strtoull(buf, NULL, 16);
	ok(n > 0 && here == there, "%s=%s draws the same tokens and logprobs as the default path (%016llx)",
	   var, val, (unsigned long long)here);
}

/* ------------------------------------------------------------ timing */

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

/* CPU time per call, the best of five rounds of 100 (the machine may be
 * shared), less the copy of the row that pick makes */
static void
t_timing(void)
{
	static float l[NV];
	sample_params p;
	sample_rng r;
	sample_out o;
	uint32_t i, hist[64];
	int k, round, reps = 100;
	double t0, base = 1, best, tg;

	for (i = 0; i < NV; i++)
		l[i] = (float)(gauss() * 3);
	for (i = 0; i < 64; i++)
		hist[i] = (uint32_t)(unif() * NV);
	sample_seed(&r, 1);
	for (round = 0; round < 5; round++) {
		t0 = now();
		for (k = 0; k < reps; k++) {
			memcpy(row, l, sizeof l);
			__asm__ volatile("" ::: "memory");
		}
		tg = (now() - t0) / reps;
		base = tg < base ? tg : base;
	}
	for (k = 0; k < 7; k++) {
		const char *name = (const char *[]){ "greedy", "greedy + repeat 1.1 (64 tokens)",
						    "T=0.8 top_k 40 top_p 0.95", "T=0.8 top_k 40",
						    "T=0.8 top_p 0.95", "T=1 (whole row)", "T=0.8 min_p 0.05" }[k];

		p = params(k < 2 ? 0 : k == 5 ? 1 : 0.8f);
		p.top_k = k == 2 || k == 3 ? 40 : 0;
		p.top_p = k == 2 || k == 4 ? 0.95f : 1;
		p.min_p = k == 6 ? 0.05f : 0;
		p.repeat_penalty = k == 1 ? 1.1f : 1;
		p.n_logprobs = 0;
		best = 1;
		for (round = 0; round < 5; round++) {
			t0 = now();
			for (i = 0; i < (uint32_t)reps; i++)
				pick(&p, &r, l, NV, hist, 64, &o);
			tg = (now() - t0) / reps - base;
			best = tg < best ? tg : best;
		}
		printf("# %-34s %7.0f ns per call over %d logits\n", name, best * 1e9, NV);
	}
	ok(1, "timing printed (CPU time, the row copy of %.0f ns excluded)", base * 1e9);
}

int
main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--digest")) {
		printf("%016llx\n", (unsigned long long)digest());
		return 0;
	}
	t_rng();
	t_greedy();
	t_repro();
	t_distribution();
	t_topk();
	t_topp();
	t_minp();
	t_penalties();
	t_logprobs();
	t_nan();
	t_paths(argv[0], "SLUICE_SCALAR", "1");
	t_paths(argv[0], "SLUICE_ISA", "scalar");
	if (__builtin_cpu_supports("avx2"))
		t_paths(argv[0], "SLUICE_ISA", "avx2");
	t_timing();
	sample_ws_free(&ws);
	return done_testing();
}
