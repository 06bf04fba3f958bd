/* sample: the next token from one row of logits, in llama.cpp's chain
 * (penalties, top-k, top-p, min-p, temperature, draw), with a per-request
 * xoshiro256** RNG and the log-probabilities OpenAI reports.
 *
 * It runs once per generated token per sequence over the whole vocabulary,
 * so the vocabulary is never sorted: the tokens within a few nats of the
 * maximum are counted and collected first, then top-k is a heap (or a
 * quickselect for large k) and top-p a cut by binned probability mass,
 * sorting only the bin where the mass is reached. The passes over the
 * whole row are vectorised (AVX2 and FMA chosen at run time); their scalar
 * twins do the same float operations in the same order, so a seeded
 * request draws the same tokens on either path (SLUICE_SCALAR=1 forces the
 * scalar one, as for lib/dot). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "sample.h"

#if defined(__x86_64__) || defined(__i386__)
#define SAMPLE_X86 1
#include <immintrin.h>
#endif

#define WIN_MAX 4096    /* most tokens of history the penalties look at */
#define HEAP_MAX 128    /* top-k up to this by a heap, beyond by quickselect */
#define TOPN_MAX 20     /* log-probability alternatives at most */
#define SLACK 1e-6      /* top-p and min-p boundaries: float noise must not flip them */
#define DRAW_BLOCK 256  /* the draw over the whole vocabulary skips blocks by their sums */

/* ------------------------------------------------------------ rng */

static uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void
sample_seed(sample_rng *r, uint64_t seed)
{
	uint64_t x = seed, z;
	int i;

	/* splitmix64 is a bijection of its counter, so four outputs in a row
	 * are never all zero (the one state xoshiro cannot leave) */
	for (i = 0; i < 4; i++) {
		x += 0x9e3779b97f4a7c15ull;
		z = x;
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		r->s[i] = z ^ (z >> 31);
	}
}

uint64_t
sample_next(sample_rng *r)
{
	uint64_t *s = r->s;
	uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

double
sample_uniform(sample_rng *r)
{
	return (double)(sample_next(r) >> 11) * 0x1.0p-53;
}

/* ------------------------------------------------------------ workspace */

void
sample_ws_free(sample_ws *w)
{
	free(w->val);
	free(w->idx);
	w->val = NULL;
	w->idx = NULL;
	w->cap = 0;
}

/* val and idx hold n_vocab entries for the candidates, then WIN_MAX more
 * for the penalties: the distinct tokens of the window and their raw logits */
static void
ws_reserve(sample_ws *w, uint32_t n)
{
	if (w->val && w->idx && w->cap >= n)
		return;
	free(w->val);
	free(w->idx);
	w->val = xmalloc(((size_t)n + WIN_MAX) * sizeof *w->val);
	w->idx = xmalloc(((size_t)n + WIN_MAX) * sizeof *w->idx);
	w->cap = n;
}

/* ------------------------------------------------------------ exp */

/* exp(x) for x <= 0 by Cephes' expf reduction (x = n ln2 + r, a polynomial
 * for e^r, 2^n put into the exponent), within about 2 ulp, 0 below -87.
 * The scalar form uses fmaf where fexp8 uses FMA instructions, so both give
 * the same bits (ISO C mode contracts nothing behind our back). */
#define EXP_LO -87.0f
#define EXP_LOG2E 1.44269504088896341f
#define EXP_NC1 -0.693359375f
#define EXP_NC2 2.12194440e-4f
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f

/* floor for |v| < 2^23 without libm (what vroundps gives) */
static float
ffloor(float v)
{
	float t = (float)(int32_t)v;

	return t > v ? t - 1.0f : t;
}

static inline __attribute__((always_inline)) float
fexp(float x)
{
	int keep = x >= EXP_LO;
	float n, r, p, s;
	uint32_t u;

	if (!(x >= EXP_LO))
		x = EXP_LO;
	if (x > 0.0f)
		x = 0.0f;
	n = ffloor(fmaf(x, EXP_LOG2E, 0.5f));
	r = fmaf(n, EXP_NC1, x);
	r = fmaf(n, EXP_NC2, r);
	p = fmaf(EXP_P0, r, EXP_P1);
	p = fmaf(p, r, EXP_P2);
	p = fmaf(p, r, EXP_P3);
	p = fmaf(p, r, EXP_P4);
	p = fmaf(p, r, EXP_P5);
	p = fmaf(p, r * r, r) + 1.0f;
	u = (uint32_t)((int32_t)n + 127) << 23;
	memcpy(&s, &u, 4);
	return keep ? p * s : 0.0f;
}

/* ------------------------------------------------------------ row passes */

/* The passes over the whole vocabulary (nearly all the time is spent
 * here), each as a scalar function and an AVX2 twin with the same results:
 * sums keep the same lanes and the same order on both. */

#define SUM_LANES 16    /* exp_sum: float partial sums, 16 lanes ... */
#define SUM_FLUSH 8     /* ... moved into doubles every 8 rounds of 16 */

static int use_avx2, use_fma, use_avx512;

__attribute__((constructor)) static void
sample_init(void)
{
	const char *e = getenv("SLUICE_SCALAR");

#ifdef SAMPLE_X86
	use_fma = __builtin_cpu_supports("fma");
	use_avx2 = use_fma && __builtin_cpu_supports("avx2");
#endif
	if (e && *e && strcmp(e, "0") != 0)
		use_avx2 = 0;
	if ((e = getenv("SLUICE_ISA")) && strcmp(e, "scalar") == 0)
		use_avx2 = 0;
#ifdef SAMPLE_X86
	use_avx512 = use_avx2 && __builtin_cpu_supports("avx512f") && !(e && strcmp(e, "avx2") == 0);
#endif
}

static double
sum_lanes(const double *d)
{
	double s = 0;
	int j;

	for (j = 0; j < SUM_LANES; j += 4)
		s += (d[j] + d[j + 1]) + (d[j + 2] + d[j + 3]);
	return s;
}

/* scan_max's end, on any path: the best of the vector lanes' maxima bv
 * and their first indices bi (a tie to the lower index), then x[i..n) one
 * at a time. A lane that saw only -inf points at its first element, which
 * exists whenever its loop ran; otherwise every lane is -inf and index 0
 * wins, as in the scalar loop. */
static float
scan_max_tail(float *x, uint32_t i, uint32_t n, const float *bv, const uint32_t *bi, int lanes,
	      uint32_t *arg)
{
	float best = bv[0];
	uint32_t barg = bi[0];

	for (int j = 1; j < lanes; j++)
		if (bv[j] > best || (bv[j] == best && bi[j] < barg))
			best = bv[j], barg = bi[j];
	for (; i < n; i++) {
		float v = x[i];

		if (v != v)
			x[i] = v = -INFINITY;
		else if (v > FLT_MAX)
			x[i] = v = FLT_MAX;
		if (v > best)
			best = v, barg = i;
	}
	*arg = barg;
	return best;
}

/* NaN becomes -inf and +inf FLT_MAX, in place; returns the maximum and
 * its first index */
static float
scan_max_c(float *x, uint32_t n, uint32_t *arg)
{
	const float none = -INFINITY;
	const uint32_t first = 0;

	return scan_max_tail(x, 0, n, &none, &first, 1, arg);
}

/* e[i] = exp(x[i]/t - m) (t == 1 divides nothing; e may be x) and their
 * sum; inlined twice below, as fmaf is a library call unless the
 * function may use FMA instructions */
static inline __attribute__((always_inline)) double
exp_sum_impl(const float *x, float *e, uint32_t n, float t, float m)
{
	float f[SUM_LANES] = { 0 };
	double d[SUM_LANES] = { 0 }, s;
	uint32_t i, j, round = 0;

	for (i = 0; i + SUM_LANES <= n; i += SUM_LANES) {
		for (j = 0; j < SUM_LANES; j++) {
			float y = x[i + j];

			if (t != 1.0f)
				y = y / t;
			e[i + j] = fexp(y - m);
			f[j] += e[i + j];
		}
		if (++round == SUM_FLUSH)
			for (round = 0, j = 0; j < SUM_LANES; j++)
				d[j] += f[j], f[j] = 0;
	}
	for (j = 0; j < SUM_LANES; j++)
		d[j] += f[j];
	s = sum_lanes(d);
	for (; i < n; i++) {
		float y = t != 1.0f ? x[i] / t : x[i];

		e[i] = fexp(y - m);
		s += e[i];
	}
	return s;
}

static double
exp_sum_c(const float *x, float *e, uint32_t n, float t, float m)
{
	return exp_sum_impl(x, e, n, t, m);
}

#ifdef SAMPLE_X86
__attribute__((target("fma"))) static double
exp_sum_fma(const float *x, float *e, uint32_t n, float t, float m)
{
	return exp_sum_impl(x, e, n, t, m);
}
#endif

/* weight of the tokens with x >= t[l] for four levels (float lanes) */
static void
mass4_c(const float *x, const float *e, uint32_t n, const float *t, double *m)
{
	float a[4][8] = { { 0 } };
	uint32_t i, j, l;

	for (i = 0; i + 8 <= n; i += 8)
		for (l = 0; l < 4; l++)
			for (j = 0; j < 8; j++)
				a[l][j] += x[i + j] >= t[l] ? e[i + j] : 0.0f;
	for (l = 0; l < 4; l++) {
		double d[SUM_LANES] = { 0 };

		for (j = 0; j < 8; j++)
			d[j] = a[l][j];
		m[l] = sum_lanes(d);
	}
	for (; i < n; i++)
		for (l = 0; l < 4; l++)
			if (x[i] >= t[l])
				m[l] += e[i];
}

/* how many x[i] >= t[l] for four levels */
static void
count4_c(const float *x, uint32_t n, const float *t, uint32_t *cnt)
{
	uint32_t i, l;

	for (l = 0; l < 4; l++)
		cnt[l] = 0;
	for (i = 0; i < n; i++)
		for (l = 0; l < 4; l++)
			cnt[l] += x[i] >= t[l];
}

#ifdef SAMPLE_X86
#define AVX2 __attribute__((target("avx2,fma")))

/* the four levels in registers: -O2 keeps arrays of vectors in memory */
#define GE(y, t) _mm256_cmp_ps(y, t, _CMP_GE_OQ)

AVX2 static void
count4_avx2(const float *x, uint32_t n, const float *t, uint32_t *cnt)
{
	__m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
	__m256 v0 = _mm256_set1_ps(t[0]), v1 = _mm256_set1_ps(t[1]);
	__m256 v2 = _mm256_set1_ps(t[2]), v3 = _mm256_set1_ps(t[3]);
	uint32_t i, j, l, f[4][8];

	for (i = 0; i + 8 <= n; i += 8) {
		__m256 y = _mm256_loadu_ps(x + i);

		/* a true compare is -1 */
		a0 = _mm256_sub_epi32(a0, _mm256_castps_si256(GE(y, v0)));
		a1 = _mm256_sub_epi32(a1, _mm256_castps_si256(GE(y, v1)));
		a2 = _mm256_sub_epi32(a2, _mm256_castps_si256(GE(y, v2)));
		a3 = _mm256_sub_epi32(a3, _mm256_castps_si256(GE(y, v3)));
	}
	_mm256_storeu_si256((__m256i *)f[0], a0);
	_mm256_storeu_si256((__m256i *)f[1], a1);
	_mm256_storeu_si256((__m256i *)f[2], a2);
	_mm256_storeu_si256((__m256i *)f[3], a3);
	for (l = 0; l < 4; l++)
		for (cnt[l] = 0, j = 0; j < 8; j++)
			cnt[l] += f[l][j];
	for (; i < n; i++)
		for (l = 0; l < 4; l++)
			cnt[l] += x[i] >= t[l];
}

AVX2 static inline __attribute__((always_inline)) __m256
fexp8(__m256 x)
{
	const __m256 lo = _mm256_set1_ps(EXP_LO);
	__m256 keep = _mm256_cmp_ps(x, lo, _CMP_GE_OQ), n, r, p;
	__m256i u;

	x = _mm256_max_ps(x, lo);   /* gives lo for a NaN x */
	x = _mm256_min_ps(x, _mm256_setzero_ps());
	n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(EXP_LOG2E), _mm256_set1_ps(0.5f)));
	r = _mm256_fmadd_ps(n, _mm256_set1_ps(EXP_NC1), x);
	r = _mm256_fmadd_ps(n, _mm256_set1_ps(EXP_NC2), r);
	p = _mm256_fmadd_ps(_mm256_set1_ps(EXP_P0), r, _mm256_set1_ps(EXP_P1));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P2));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P3));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P4));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P5));
	p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
	u = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
	return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(u)), keep);
}

AVX2 static float
scan_max_avx2(float *x, uint32_t n, uint32_t *arg)
{
	const __m256 ninf = _mm256_set1_ps(-INFINITY), big = _mm256_set1_ps(FLT_MAX);
	__m256 vm = ninf;
	__m256i vi = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), cur = vi;
	float bv[8];
	uint32_t bi[8], i;

	for (i = 0; i + 8 <= n; i += 8) {
		__m256 v = _mm256_loadu_ps(x + i), nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q), gt;

		if (_mm256_movemask_ps(_mm256_or_ps(nan, _mm256_cmp_ps(v, big, _CMP_GT_OQ)))) {
			/* min_ps gives its second operand for a NaN */
			v = _mm256_blendv_ps(_mm256_min_ps(v, big), ninf, nan);
			_mm256_storeu_ps(x + i, v);
		}
		gt = _mm256_cmp_ps(v, vm, _CMP_GT_OQ);
		vm = _mm256_blendv_ps(vm, v, gt);
		vi = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(vi),
							  _mm256_castsi256_ps(cur), gt));
		cur = _mm256_add_epi32(cur, _mm256_set1_epi32(8));
	}
	_mm256_storeu_ps(bv, vm);
	_mm256_storeu_si256((__m256i *)bi, vi);
	return scan_max_tail(x, i, n, bv, bi, 8, arg);
}

AVX2 static double
exp_sum_avx2(const float *x, float *e, uint32_t n, float t, float m)
{
	__m256d d0 = _mm256_setzero_pd(), d1 = d0, d2 = d0, d3 = d0;
	__m256 f0 = _mm256_setzero_ps(), f1 = f0, vt = _mm256_set1_ps(t), vm = _mm256_set1_ps(m);
	double d[SUM_LANES], s;
	uint32_t i, j, round = 0;

	for (i = 0; i + SUM_LANES <= n; i += SUM_LANES) {
		__m256 y0 = _mm256_loadu_ps(x + i), y1 = _mm256_loadu_ps(x + i + 8);

		if (t != 1.0f) {
			y0 = _mm256_div_ps(y0, vt);
			y1 = _mm256_div_ps(y1, vt);
		}
		y0 = fexp8(_mm256_sub_ps(y0, vm));
		y1 = fexp8(_mm256_sub_ps(y1, vm));
		_mm256_storeu_ps(e + i, y0);
		_mm256_storeu_ps(e + i + 8, y1);
		f0 = _mm256_add_ps(f0, y0);
		f1 = _mm256_add_ps(f1, y1);
		if (++round == SUM_FLUSH) {
			round = 0;
			d0 = _mm256_add_pd(d0, _mm256_cvtps_pd(_mm256_castps256_ps128(f0)));
			d1 = _mm256_add_pd(d1, _mm256_cvtps_pd(_mm256_extractf128_ps(f0, 1)));
			d2 = _mm256_add_pd(d2, _mm256_cvtps_pd(_mm256_castps256_ps128(f1)));
			d3 = _mm256_add_pd(d3, _mm256_cvtps_pd(_mm256_extractf128_ps(f1, 1)));
			f0 = f1 = _mm256_setzero_ps();
		}
	}
	d0 = _mm256_add_pd(d0, _mm256_cvtps_pd(_mm256_castps256_ps128(f0)));
	d1 = _mm256_add_pd(d1, _mm256_cvtps_pd(_mm256_extractf128_ps(f0, 1)));
	d2 = _mm256_add_pd(d2, _mm256_cvtps_pd(_mm256_castps256_ps128(f1)));
	d3 = _mm256_add_pd(d3, _mm256_cvtps_pd(_mm256_extractf128_ps(f1, 1)));
	_mm256_storeu_pd(d, d0);
	_mm256_storeu_pd(d + 4, d1);
	_mm256_storeu_pd(d + 8, d2);
	_mm256_storeu_pd(d + 12, d3);
	s = sum_lanes(d);
	/* the tail by masked vectors, summed in order like the scalar one */
	for (j = i; j < n; j += 8) {
		__m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - j)),
						  _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
		__m256 y = _mm256_maskload_ps(x + j, mask);

		if (t != 1.0f)
			y = _mm256_div_ps(y, vt);
		_mm256_maskstore_ps(e + j, mask, fexp8(_mm256_sub_ps(y, vm)));
	}
	for (; i < n; i++)
		s += e[i];
	return s;
}

/* mass4's end: the 8 float lanes of each level summed as sum_lanes does,
 * then elements i.. in order */
static void
mass4_fold(const float *x, const float *e, uint32_t n, const float *t, double *m,
	   float f[4][8], uint32_t i)
{
	uint32_t j, l;

	for (l = 0; l < 4; l++) {
		double d[SUM_LANES] = { 0 };

		for (j = 0; j < 8; j++)
			d[j] = f[l][j];
		m[l] = sum_lanes(d);
	}
	for (; i < n; i++)
		for (l = 0; l < 4; l++)
			if (x[i] >= t[l])
				m[l] += e[i];
}

AVX2 static void
mass4_avx2(const float *x, const float *e, uint32_t n, const float *t, double *m)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	__m256 v0 = _mm256_set1_ps(t[0]), v1 = _mm256_set1_ps(t[1]);
	__m256 v2 = _mm256_set1_ps(t[2]), v3 = _mm256_set1_ps(t[3]);
	float f[4][8];
	uint32_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		__m256 y = _mm256_loadu_ps(x + i), w = _mm256_loadu_ps(e + i);

		a0 = _mm256_add_ps(a0, _mm256_and_ps(GE(y, v0), w));
		a1 = _mm256_add_ps(a1, _mm256_and_ps(GE(y, v1), w));
		a2 = _mm256_add_ps(a2, _mm256_and_ps(GE(y, v2), w));
		a3 = _mm256_add_ps(a3, _mm256_and_ps(GE(y, v3), w));
	}
	_mm256_storeu_ps(f[0], a0);
	_mm256_storeu_ps(f[1], a1);
	_mm256_storeu_ps(f[2], a2);
	_mm256_storeu_ps(f[3], a3);
	mass4_fold(x, e, n, t, m, f, i);
}

/* AVX-512 twins of exp_sum_avx2 and mass4_avx2 (and of scan_max and
 * count4, below): the same lanes (exp_sum's
 * 16 partial sums are one register, mass4's two levels share one), the
 * same operations lane by lane, so the same results */
#define AVX512 __attribute__((target("avx512f,avx2,fma")))

AVX512 static inline __attribute__((always_inline)) __m512
fexp16(__m512 x)
{
	const __m512 lo = _mm512_set1_ps(EXP_LO);
	__mmask16 keep = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ);
	__m512 n, r, p;
	__m512i u;

	x = _mm512_max_ps(x, lo);
	x = _mm512_min_ps(x, _mm512_setzero_ps());
	n = _mm512_roundscale_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(EXP_LOG2E), _mm512_set1_ps(0.5f)),
				 _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
	r = _mm512_fmadd_ps(n, _mm512_set1_ps(EXP_NC1), x);
	r = _mm512_fmadd_ps(n, _mm512_set1_ps(EXP_NC2), r);
	p = _mm512_fmadd_ps(_mm512_set1_ps(EXP_P0), r, _mm512_set1_ps(EXP_P1));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P2));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P3));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P4));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P5));
	p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
	u = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(n), _mm512_set1_epi32(127)), 23);
	return _mm512_maskz_mov_ps(keep, _mm512_mul_ps(p, _mm512_castsi512_ps(u)));
}

AVX512 static double
exp_sum_avx512(const float *x, float *e, uint32_t n, float t, float m)
{
	__m512d d01 = _mm512_setzero_pd(), d23 = d01;
	__m512 f = _mm512_setzero_ps(), vt = _mm512_set1_ps(t), vm = _mm512_set1_ps(m);
	double d[SUM_LANES], s;
	uint32_t i, round = 0;

	for (i = 0; i + SUM_LANES <= n; i += SUM_LANES) {
		__m512 y = _mm512_loadu_ps(x + i);

		if (t != 1.0f)
			y = _mm512_div_ps(y, vt);
		y = fexp16(_mm512_sub_ps(y, vm));
		_mm512_storeu_ps(e + i, y);
		f = _mm512_add_ps(f, y);
		if (++round == SUM_FLUSH) {
			round = 0;
			d01 = _mm512_add_pd(d01, _mm512_cvtps_pd(_mm512_castps512_ps256(f)));
			d23 = _mm512_add_pd(d23, _mm512_cvtps_pd(_mm256_castpd_ps(
				_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1))));
			f = _mm512_setzero_ps();
		}
	}
	d01 = _mm512_add_pd(d01, _mm512_cvtps_pd(_mm512_castps512_ps256(f)));
	d23 = _mm512_add_pd(d23, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1))));
	_mm512_storeu_pd(d, d01);
	_mm512_storeu_pd(d + 8, d23);
	s = sum_lanes(d);
	if (i < n) {
		/* the tail in one masked vector, summed in order like the scalar one */
		__mmask16 k = (__mmask16)((1u << (n - i)) - 1);
		__m512 y = _mm512_maskz_loadu_ps(k, x + i);

		if (t != 1.0f)
			y = _mm512_div_ps(y, vt);
		_mm512_mask_storeu_ps(e + i, k, fexp16(_mm512_sub_ps(y, vm)));
	}
	for (; i < n; i++)
		s += e[i];
	return s;
}

AVX512 static void
mass4_avx512(const float *x, const float *e, uint32_t n, const float *t, double *m)
{
	/* levels 0|1 and 2|3 in the halves of two registers */
	__m512 a01 = _mm512_setzero_ps(), a23 = a01;
	__m512 v01 = _mm512_insertf32x4(_mm512_insertf32x4(_mm512_set1_ps(t[0]), _mm_set1_ps(t[1]), 2),
					_mm_set1_ps(t[1]), 3);
	__m512 v23 = _mm512_insertf32x4(_mm512_insertf32x4(_mm512_set1_ps(t[2]), _mm_set1_ps(t[3]), 2),
					_mm_set1_ps(t[3]), 3);
	float f[4][8];
	uint32_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		__m512 y = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(x + i))));
		__m512 w = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(e + i))));

		a01 = _mm512_add_ps(a01, _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y, v01, _CMP_GE_OQ), w));
		a23 = _mm512_add_ps(a23, _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y, v23, _CMP_GE_OQ), w));
	}
	_mm512_storeu_ps(f[0], a01);
	_mm512_storeu_ps(f[2], a23);
	mass4_fold(x, e, n, t, m, f, i);
}

/* scan_max_avx2 and count4_avx2 with 16 lanes and mask registers: a max
 * and its first index, and counts, are exact whatever the lanes */
AVX512 static float
scan_max_avx512(float *x, uint32_t n, uint32_t *arg)
{
	const __m512 ninf = _mm512_set1_ps(-INFINITY), big = _mm512_set1_ps(FLT_MAX);
	__m512 vm = ninf;
	__m512i vi = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), cur = vi;
	float bv[16];
	uint32_t bi[16], i;

	for (i = 0; i + 16 <= n; i += 16) {
		__m512 v = _mm512_loadu_ps(x + i);
		__mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), hi = _mm512_cmp_ps_mask(v, big, _CMP_GT_OQ);
		__mmask16 gt;

		if (nan | hi) {
			v = _mm512_mask_blend_ps(nan, _mm512_mask_blend_ps(hi, v, big), ninf);
			_mm512_storeu_ps(x + i, v);
		}
		gt = _mm512_cmp_ps_mask(v, vm, _CMP_GT_OQ);
		vm = _mm512_mask_blend_ps(gt, vm, v);
		vi = _mm512_mask_blend_epi32(gt, vi, cur);
		cur = _mm512_add_epi32(cur, _mm512_set1_epi32(16));
	}
	_mm512_storeu_ps(bv, vm);
	_mm512_storeu_si512(bi, vi);
	return scan_max_tail(x, i, n, bv, bi, 16, arg);
}

AVX512 static void
count4_avx512(const float *x, uint32_t n, const float *t, uint32_t *cnt)
{
	const __m512i one = _mm512_set1_epi32(1);
	__m512i a[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
			_mm512_setzero_si512()};
	__m512 v[4] = {_mm512_set1_ps(t[0]), _mm512_set1_ps(t[1]), _mm512_set1_ps(t[2]), _mm512_set1_ps(t[3])};
	uint32_t i, l;

	for (i = 0; i + 16 <= n; i += 16) {
		__m512 y = _mm512_loadu_ps(x + i);

#pragma GCC unroll 4
		for (l = 0; l < 4; l++)
			a[l] = _mm512_mask_add_epi32(a[l], _mm512_cmp_ps_mask(y, v[l], _CMP_GE_OQ), a[l], one);
	}
	for (l = 0; l < 4; l++)
		cnt[l] = (uint32_t)_mm512_reduce_add_epi32(a[l]);
	for (; i < n; i++)
		for (l = 0; l < 4; l++)
			cnt[l] += x[i] >= t[l];
}
#endif

static float
scan_max(float *x, uint32_t n, uint32_t *arg)
{
#ifdef SAMPLE_X86
	if (use_avx512)
		return scan_max_avx512(x, n, arg);
	if (use_avx2)
		return scan_max_avx2(x, n, arg);
#endif
	return scan_max_c(x, n, arg);
}

static double
exp_sum(const float *x, float *e, uint32_t n, float t, float m)
{
#ifdef SAMPLE_X86
	if (use_avx512)
		return exp_sum_avx512(x, e, n, t, m);
	if (use_avx2)
		return exp_sum_avx2(x, e, n, t, m);
	if (use_fma)
		return exp_sum_fma(x, e, n, t, m);
#endif
	return exp_sum_c(x, e, n, t, m);
}

static void
count4(const float *x, uint32_t n, const float *t, uint32_t *cnt)
{
#ifdef SAMPLE_X86
	if (use_avx512) {
		count4_avx512(x, n, t, cnt);
		return;
	}
	if (use_avx2) {
		count4_avx2(x, n, t, cnt);
		return;
	}
#endif
	count4_c(x, n, t, cnt);
}

static void
mass4(const float *x, const float *e, uint32_t n, const float *t, double *m)
{
#ifdef SAMPLE_X86
	if (use_avx512) {
		mass4_avx512(x, e, n, t, m);
		return;
	}
	if (use_avx2) {
		mass4_avx2(x, e, n, t, m);
		return;
	}
#endif
	mass4_c(x, e, n, t, m);
}

/* ------------------------------------------------------------ ordering */

/* Candidates are token ids ordered by logit, descending, the lower id first
 * on a tie: a total order, so every selection below is well defined. L is
 * the logit row, which holds the penalised logits until the very end. */
static int
better(const float *L, uint32_t a, uint32_t b)
{
	return L[a] > L[b] || (L[a] == L[b] && a < b);
}

static void
swap2(uint32_t *idx, float *w, size_t i, size_t j)
{
	uint32_t t = idx[i];

	idx[i] = idx[j];
	idx[j] = t;
	if (w) {
		float f = w[i];

		w[i] = w[j];
		w[j] = f;
	}
}

/* heap of n with the worst candidate at the root (w, when given, follows) */
static void
sift(const float *L, uint32_t *idx, float *w, size_t n, size_t i)
{
	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= n)
			return;
		if (c + 1 < n && better(L, idx[c], idx[c + 1]))
			c++;
		if (!better(L, idx[i], idx[c]))
			return;
		swap2(idx, w, i, c);
		i = c;
	}
}

/* idx[0..n) best first */
static void
heapsort(const float *L, uint32_t *idx, float *w, size_t n)
{
	size_t i;

	if (n < 2)
		return;
	for (i = n / 2; i-- > 0;)
		sift(L, idx, w, n, i);
	for (i = n - 1; i > 0; i--) {
		swap2(idx, w, 0, i);
		sift(L, idx, w, i, 0);
	}
}

/* the same heap holding the values beside the ids (hv[j] = L[hi[j]]),
 * for the scan below, which sifts without reaching back into the row */
static void
vsift(float *hv, uint32_t *hi, size_t n, size_t i)
{
	float v = hv[i];
	uint32_t id = hi[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && (hv[c] > hv[c + 1] || (hv[c] == hv[c + 1] && hi[c] < hi[c + 1])))
			c++;
		if (!(v > hv[c] || (v == hv[c] && id < hi[c])))
			break;
		hv[i] = hv[c];
		hi[i] = hi[c];
		i = c;
	}
	hv[i] = v;
	hi[i] = id;
}

#ifdef SAMPLE_X86
/* heap_top's scan from i on, eight logits to a comparison */
AVX2 static uint32_t
heap_scan_avx2(const float *L, uint32_t n, uint32_t k, float *hv, uint32_t *hi, uint32_t i)
{
	__m256 thr = _mm256_set1_ps(hv[0]);

	for (; i + 8 <= n; i += 8) {
		uint32_t m = (uint32_t)_mm256_movemask_ps(
			_mm256_cmp_ps(_mm256_loadu_ps(L + i), thr, _CMP_GT_OQ));

		if (!m)
			continue;
		do {
			uint32_t j = i + (uint32_t)__builtin_ctz(m);

			m &= m - 1;
			if (L[j] > hv[0]) {
				hv[0] = L[j];
				hi[0] = j;
				vsift(hv, hi, k, 0);
			}
		} while (m);
		thr = _mm256_set1_ps(hv[0]);
	}
	return i;
}
#endif

/* Puts the k best tokens of L[0..n) in idx[0..k) (k <= n, unordered) by a
 * scan that compares each logit with the worst one kept (hv[0..k) holds
 * their values): nearly every token costs one comparison. A later token
 * only enters when strictly greater, so ties keep the lower ids. */
static void
heap_scan_all(const float *L, uint32_t n, uint32_t k, uint32_t *idx, float *hv)
{
	uint32_t i;

	for (i = 0; i < k; i++)
		idx[i] = i, hv[i] = L[i];
	for (i = k / 2; i-- > 0;)
		vsift(hv, idx, k, i);
	i = k;
#ifdef SAMPLE_X86
	if (use_avx2)
		i = heap_scan_avx2(L, n, k, hv, idx, i);
#endif
	for (; i < n; i++)
		if (L[i] > hv[0]) {
			hv[0] = L[i];
			idx[0] = i;
			vsift(hv, idx, k, 0);
		}
}

static uint32_t collect(const float *L, uint32_t n, float t, const float *e, float *w,
			uint32_t *idx);

/* Partitions idx[lo..hi) (hi - lo >= 3) around a median of three: returns
 * p with the better ones in [lo, p), the pivot at p, the worse after. */
static size_t
partition(const float *L, uint32_t *idx, size_t lo, size_t hi)
{
	size_t mid = lo + (hi - lo) / 2, last = hi - 1, i, p;

	if (better(L, idx[mid], idx[lo]))
		swap2(idx, NULL, mid, lo);
	if (better(L, idx[last], idx[lo]))
		swap2(idx, NULL, last, lo);
	if (better(L, idx[last], idx[mid]))
		swap2(idx, NULL, last, mid);
	/* lo best, mid median, last worst: the median becomes the pivot */
	swap2(idx, NULL, mid, last);
	for (p = i = lo; i < last; i++)
		if (better(L, idx[i], idx[last]))
			swap2(idx, NULL, i, p++);
	swap2(idx, NULL, p, last);
	return p;
}

/* Puts the k best of idx[0..c) first (k < c, unordered): a quickselect,
 * with a heapsort of what is left when the pivots go bad */
static void
quick_top(const float *L, uint32_t *idx, size_t c, size_t k)
{
	size_t lo = 0, hi = c, i, p;
	int budget = 16;

	for (i = c; i > 1; i >>= 1)
		budget += 2;
	while (hi - lo > 16 && budget-- > 0) {
		p = partition(L, idx, lo, hi);
		if (p == k || p + 1 == k)
			return;
		if (p > k)
			hi = p;
		else
			lo = p + 1;
	}
	heapsort(L, idx + lo, NULL, hi - lo);
}

/* Puts the k best tokens of L[0..n) (m their maximum) in idx[0..k),
 * unordered (idx has room for n, hv for k). A scan against a heap costs a
 * mispredicted branch and a sift for each of its k ln(n/k) insertions, so
 * the tokens near the maximum are counted first: when k of them lie within
 * D nats, only those are collected and searched. Up to HEAP_MAX the search
 * is a heap, beyond a quickselect. */
static void
top_select(const float *L, uint32_t n, uint32_t k, float m, uint32_t *idx, float *hv)
{
	float t[4] = { m - 2.0f, m - 5.0f, m - 10.0f, m - 20.0f };
	uint32_t cnt[4], c, i, l;

	count4(L, n, t, cnt);
	for (l = 0; l < 4 && cnt[l] < k; l++)
		;
	if (l < 4 && cnt[l] < n) {
		c = collect(L, n, t[l], NULL, NULL, idx);
	} else if (k <= HEAP_MAX) {
		heap_scan_all(L, n, k, idx, hv);
		return;
	} else {
		for (i = 0; i < n; i++)
			idx[i] = i;
		c = n;
	}
	if (k == c)
		return;
	if (k > HEAP_MAX) {
		quick_top(L, idx, c, k);
		return;
	}
	/* the heap is the front of the list, the rest scanned behind it */
	for (i = 0; i < k; i++)
		hv[i] = L[idx[i]];
	for (i = k / 2; i-- > 0;)
		vsift(hv, idx, k, i);
	for (i = k; i < c; i++)
		if (L[idx[i]] > hv[0]) {
			hv[0] = L[idx[i]];
			idx[0] = idx[i];
			vsift(hv, idx, k, 0);
		}
}

/* moves the best of idx[0..c) to the front */
static void
best_first(const float *L, uint32_t *idx, size_t c)
{
	size_t i, b = 0;

	for (i = 1; i < c; i++)
		if (better(L, idx[i], idx[b]))
			b = i;
	swap2(idx, NULL, 0, b);
}

/* the bin of a logit l by its distance below the maximum m: 1/16 nat wide,
 * monotone in l, the same for equal logits; beyond 16 nats the last bin */
#define NBIN 256

static int
bin(float m, float l)
{
	float d = (m - l) * 16.0f;

	return d < (float)(NBIN - 1) ? (int)d : NBIN - 1;
}

/* Reorders idx[0..c) (weights w alongside) so that idx[0..r) is the
 * smallest best-first prefix whose weight reaches t > 0, and returns r (c
 * when all of them do not reach it: min-p cut the collection, or rounding). The weights are summed per bin;
 * the bins before the one where t is reached are kept whole, unordered,
 * and only that bin is sorted. */
static size_t
mass_cut(const float *L, uint32_t *idx, float *w, size_t c, float m, double t)
{
	double mass[NBIN] = { 0 }, acc = 0;
	size_t i, k, lo, hi;
	int cut;

	for (i = 0; i < c; i++)
		mass[bin(m, L[idx[i]])] += w[i];
	for (cut = 0; cut < NBIN; cut++) {
		if (acc + mass[cut] >= t)
			break;
		acc += mass[cut];
	}
	if (cut == NBIN)
		return c;
	/* keep the bins up to the cut, in order ... */
	for (k = i = 0; i < c; i++) {
		idx[k] = idx[i];   /* branch-free: half of them may go */
		w[k] = w[i];
		k += bin(m, L[idx[i]]) <= cut;
	}
	/* ... and move the cut bin behind the others, swapping only pairs
	 * that are both on the wrong side */
	lo = 0;
	hi = k;
	while (lo < hi) {
		if (bin(m, L[idx[lo]]) < cut) {
			lo++;
			continue;
		}
		while (hi > lo && bin(m, L[idx[hi - 1]]) == cut)
			hi--;
		if (hi == lo)
			break;
		swap2(idx, w, lo++, --hi);
	}
	heapsort(L, idx + lo, w + lo, k - lo);
	for (i = lo; i < k; i++) {
		acc += w[i];
		if (acc >= t)
			return i + 1;
	}
	return k;
}

/* ------------------------------------------------------------ collecting */

#ifdef SAMPLE_X86
AVX2 static uint32_t
collect_avx2(const float *L, uint32_t n, float t, const float *e, float *w, uint32_t *idx,
	     uint32_t *pc)
{
	__m256 vt = _mm256_set1_ps(t);
	uint32_t i, c = 0;

	for (i = 0; i + 8 <= n; i += 8) {
		uint32_t m = (uint32_t)_mm256_movemask_ps(
			_mm256_cmp_ps(_mm256_loadu_ps(L + i), vt, _CMP_GE_OQ));

		while (m) {
			uint32_t j = i + (uint32_t)__builtin_ctz(m);

			m &= m - 1;
			if (w)
				w[c] = e[j];
			idx[c++] = j;
		}
	}
	*pc = c;
	return i;
}

AVX2 static void
fill_avx2(float *x, uint32_t n, float v)
{
	__m256 vv = _mm256_set1_ps(v);
	uint32_t i;

	for (i = 0; i + 8 <= n; i += 8)
		_mm256_storeu_ps(x + i, vv);
	for (; i < n; i++)
		x[i] = v;
}

AVX2 static void
div_avx2(float *x, uint32_t n, float t)
{
	__m256 vt = _mm256_set1_ps(t);
	uint32_t i;

	for (i = 0; i + 8 <= n; i += 8)
		_mm256_storeu_ps(x + i, _mm256_div_ps(_mm256_loadu_ps(x + i), vt));
	for (; i < n; i++)
		x[i] = x[i] / t;
}
#endif

/* Collects the tokens with L[i] >= t into idx (and their e[i] into w when
 * given; w may be e itself, as it is only written behind the reading). */
static uint32_t
collect(const float *L, uint32_t n, float t, const float *e, float *w, uint32_t *idx)
{
	uint32_t i = 0, c = 0;

#ifdef SAMPLE_X86
	if (use_avx2)
		i = collect_avx2(L, n, t, e, w, idx, &c);
#endif
	for (; i < n; i++)
		if (L[i] >= t) {
			if (w)
				w[c] = e[i];
			idx[c++] = i;
		}
	return c;
}

static void
fill(float *x, uint32_t n, float v)
{
	uint32_t i;

#ifdef SAMPLE_X86
	if (use_avx2) {
		fill_avx2(x, n, v);
		return;
	}
#endif
	for (i = 0; i < n; i++)
		x[i] = v;
}

static void
divide(float *x, uint32_t n, float t)
{
	uint32_t i;

#ifdef SAMPLE_X86
	if (use_avx2) {
		div_avx2(x, n, t);
		return;
	}
#endif
	for (i = 0; i < n; i++)
		x[i] = x[i] / t;
}

/* the smallest float f with f >= x, so that (float compare) L >= f means
 * (double compare) L >= x */
static float
float_ceil(double x)
{
	float f = (float)x;

	if ((double)f < x)
		f = nextafterf(f, INFINITY);
	return f;
}

/* ------------------------------------------------------------ penalties */

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* where t is in tok[0..n) (ascending), n when it is not */
static uint32_t
find_tok(const uint32_t *tok, uint32_t n, uint32_t t)
{
	uint32_t lo = 0, hi = n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (tok[mid] < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && tok[lo] == t ? lo : n;
}

/* Applies the penalties for the last win tokens of hist; the distinct
 * tokens go to tok[0..r) in ascending order with their raw logits in raw[],
 * r returned. */
static uint32_t
penalise(float *L, uint32_t n_vocab, const uint32_t *hist, size_t win, float rep,
	 float pres, float freq, uint32_t *tok, float *raw)
{
	uint32_t np = 0;
	size_t i, j;

	memcpy(tok, hist, win * sizeof *tok);
	if (win > 64) {
		qsort(tok, win, sizeof *tok, cmp_u32);
	} else {
		for (i = 1; i < win; i++) {   /* the usual window: no calls */
			uint32_t t = tok[i];

			for (j = i; j > 0 && tok[j - 1] > t; j--)
				tok[j] = tok[j - 1];
			tok[j] = t;
		}
	}
	for (i = 0; i < win; i = j) {
		uint32_t t = tok[i], cnt;
		float l;

		for (j = i + 1; j < win && tok[j] == t; j++)
			;
		if (t >= n_vocab)
			continue;
		cnt = (uint32_t)(j - i);
		l = L[t];
		raw[np] = l;
		tok[np++] = t;
		if (rep != 1.0f)
			l = l > 0 ? l / rep : l * rep;
		l -= (float)cnt * freq + pres;
		/* keep the row's invariant: no NaN, nothing above FLT_MAX */
		if (l != l)
			l = -INFINITY;
		else if (l > FLT_MAX)
			l = FLT_MAX;
		L[t] = l;
	}
	return np;
}

/* ------------------------------------------------------------ draws */

/* the first token whose running weight passes u, skipping whole blocks by
 * their sums; the last token with weight when rounding runs past the end */
static uint32_t
draw_full(const float *w, uint32_t n, double u)
{
	double cum = 0;
	uint32_t i, j;

	for (i = 0; i < n; i += DRAW_BLOCK) {
		uint32_t end = n - i < DRAW_BLOCK ? n : i + DRAW_BLOCK;
		double b[4] = { 0 }, bs;

		for (j = i; j + 4 <= end; j += 4) {
			b[0] += w[j];
			b[1] += w[j + 1];
			b[2] += w[j + 2];
			b[3] += w[j + 3];
		}
		for (; j < end; j++)
			b[0] += w[j];
		bs = (b[0] + b[1]) + (b[2] + b[3]);
		if (cum + bs <= u) {
			cum += bs;
			continue;
		}
		for (j = i; j < end; j++)
			if (w[j] > 0) {
				cum += w[j];
				if (cum > u)
					return j;
			}
	}
	for (j = n; j-- > 0;)
		if (w[j] > 0)
			return j;
	return 0;
}

/* the same over candidates idx[0..c) with weights w[0..c) */
static uint32_t
draw_list(const uint32_t *idx, const float *w, size_t c, double u)
{
	double cum = 0;
	size_t j;

	for (j = 0; j < c; j++)
		if (w[j] > 0) {
			cum += w[j];
			if (cum > u)
				return idx[j];
		}
	for (j = c; j-- > 0;)
		if (w[j] > 0)
			return idx[j];
	return idx[0];
}

/* ------------------------------------------------------------ sample_token */

/* weights exp(L[idx[j]]/t - m) into w[0..c), and their sum */
static double
list_weights(const float *L, const uint32_t *idx, float *w, size_t c, float t, float m)
{
	size_t j;

	for (j = 0; j < c; j++)
		w[j] = L[idx[j]];
	return exp_sum(w, w, (uint32_t)c, t, m);
}

/* the top-p cut of idx[0..c) with weights w (relative to the maximum pmax,
 * summing to z); returns how many stay */
static size_t
top_p_cut(const float *L, uint32_t *idx, float *w, size_t c, float pmax, double z, float top_p)
{
	if (top_p <= SLACK) {
		best_first(L, idx, c);
		return 1;
	}
	return mass_cut(L, idx, w, c, pmax, ((double)top_p - SLACK) * z);
}

void
sample_token(const sample_params *p, sample_rng *r, sample_ws *w,
	     float *logits, uint32_t n_vocab, const uint32_t *hist, size_t n_hist,
	     sample_out *out)
{
	float *L = logits, *val, *raw;
	float temp = p->temperature, rep = p->repeat_penalty;
	float pres = p->presence_penalty, freq = p->frequency_penalty;
	float top_p = p->top_p, min_p = p->min_p;
	float rmax, pmax, mt, chosen_raw;
	uint32_t *idx, *ptok, ntop, rarg, parg, np = 0, k, tok, i;
	uint32_t top[TOPN_MAX];
	float topv[TOPN_MAX];
	double lse, zraw, u, z;
	size_t win, c = 0;
	int have_e, plain = 0;

	memset(out, 0, sizeof *out);
	if (n_vocab == 0) {
		out->logprob = -INFINITY;
		return;
	}
	ws_reserve(w, n_vocab);
	val = w->val;
	idx = w->idx;
	ptok = w->idx + w->cap;
	raw = w->val + w->cap;

	/* settings that would poison the row count as off */
	if (!(rep > 0) || !isfinite(rep))
		rep = 1.0f;
	if (!isfinite(pres))
		pres = 0.0f;
	if (!isfinite(freq))
		freq = 0.0f;
	if (min_p > 1.0f)
		min_p = 1.0f;     /* above 1 even the maximum would go */
	if (temp > FLT_MAX)
		temp = FLT_MAX;   /* -inf / inf would be NaN */
	k = p->top_k > 0 && p->top_k < n_vocab ? p->top_k : 0;

	/* 1. the raw distribution, for the log-probabilities: NaN and inf
	 * cleaned in place, maximum, log-sum-exp (the weights stay in val,
	 * good for the draw as long as nothing changes them) */
	rmax = scan_max(L, n_vocab, &rarg);
	have_e = rmax != -INFINITY;
	zraw = have_e ? exp_sum(L, val, n_vocab, 1.0f, rmax) : 0;
	lse = (double)rmax + log(zraw);
	ntop = p->n_logprobs < TOPN_MAX ? p->n_logprobs : TOPN_MAX;
	if (ntop > n_vocab)
		ntop = n_vocab;
	if (ntop) {
		top_select(L, n_vocab, ntop, rmax, idx, topv);
		memcpy(top, idx, ntop * sizeof *top);
		heapsort(L, top, NULL, ntop);
		out->n_top = ntop;
		for (i = 0; i < ntop; i++) {
			out->top_id[i] = top[i];
			out->top_lp[i] = have_e ? (float)((double)L[top[i]] - lse) : -INFINITY;
		}
	}

	/* 2. penalties, on the few distinct tokens of the window */
	win = p->penalty_last_n < n_hist ? p->penalty_last_n : n_hist;
	if (win > WIN_MAX)
		win = WIN_MAX;
	if (win && (rep != 1.0f || pres != 0.0f || freq != 0.0f))
		np = penalise(L, n_vocab, hist + (n_hist - win), win, rep, pres, freq, ptok, raw);
	if (np) {
		have_e = 0;
		if (find_tok(ptok, np, rarg) < np) {
			pmax = scan_max(L, n_vocab, &parg);
		} else {
			/* the raw argmax is untouched, so it is still the
			 * best of the untouched: only the penalised can
			 * beat it */
			pmax = rmax;
			parg = rarg;
			for (i = 0; i < np; i++)
				if (L[ptok[i]] > pmax || (L[ptok[i]] == pmax && ptok[i] < parg))
					pmax = L[ptok[i]], parg = ptok[i];
		}
	} else {
		pmax = rmax;
		parg = rarg;
	}

	/* 3. greedy: the argmax of the penalised row, and the RNG untouched */
	if (!(temp > 0)) {
		tok = pmax == -INFINITY ? 0 : parg;
		goto done;
	}
	u = sample_uniform(r);   /* a sampled token always takes one draw */
	mt = pmax / temp;
	if (pmax == -INFINITY) {
		tok = 0;
		goto done;
	}
	if (!isfinite(mt)) {
		/* a temperature so low that the logits overflow: the limit
		 * is greedy, whatever the filters */
		tok = parg;
		goto done;
	}

	/* 4. the candidates: top-k, or the tokens near the maximum that top-p
	 * and min-p can keep; none at all means the whole row */
	if (k) {
		top_select(L, n_vocab, k, pmax, idx, val);
		c = k;
	} else if (top_p < 1.0f || min_p > 0.0f) {
		float tmin = min_p > 0.0f ? float_ceil((double)pmax + log((double)min_p) - SLACK)
					  : -INFINITY;
		float t = tmin;

		if (top_p < 1.0f) {
			/* the top-p prefix lies among the tokens within D of
			 * the maximum once their mass reaches top-p: the
			 * first of four levels that holds it, else all */
			float lv[4] = { pmax - 3.0f, pmax - 6.0f, pmax - 10.0f, pmax - 16.0f };
			double m[4], need;
			int l;

			z = have_e ? zraw : exp_sum(L, val, n_vocab, 1.0f, pmax);
			mass4(L, val, n_vocab, lv, m);
			/* a margin over the float sums' error, which can
			 * only choose a wider level */
			need = ((double)top_p + 1e-3) * z;
			for (l = 0; l < 4 && m[l] < need; l++)
				;
			t = l < 4 ? lv[l] : -INFINITY;
			if (tmin > t)
				t = tmin;
			c = collect(L, n_vocab, t, val, val, idx);
			c = top_p_cut(L, idx, val, c, pmax, z, top_p);
			top_p = 1.0f;   /* done */
		} else {
			c = collect(L, n_vocab, tmin, NULL, NULL, idx);
		}
		if (!(tmin < t))
			min_p = 0.0f;   /* done: its threshold cut the collection */
	} else {
		plain = 1;
	}

	if (plain) {
		/* 5a. the whole row: temperature and a draw */
		if (temp == 1.0f && have_e)
			z = zraw;
		else
			z = exp_sum(L, val, n_vocab, temp, mt);
		tok = draw_full(val, n_vocab, u * z);
		goto done;
	}

	/* 5b. top-p and min-p on the candidates, then temperature and a draw
	 * over those left */
	if (top_p < 1.0f) {
		z = list_weights(L, idx, val, c, 1.0f, pmax);
		c = top_p_cut(L, idx, val, c, pmax, z, top_p);
	}
	if (min_p > 0.0f) {
		float tmin = float_ceil((double)pmax + log((double)min_p) - SLACK);
		size_t j = 0;

		/* the maximum is always a candidate: it stays */
		for (i = 0; i < c; i++)
			if (L[idx[i]] >= tmin)
				idx[j++] = idx[i];
		c = j;
	}
	if (c == 0) {
		tok = parg;   /* cannot happen: the maximum is always kept */
	} else {
		z = list_weights(L, idx, val, c, temp, mt);
		tok = draw_list(idx, val, c, u * z);
	}

done:
	/* 6. the chosen token's raw log-probability (its raw logit is in the
	 * penalty table when the penalties touched it) */
	chosen_raw = L[tok];
	if (np && (i = find_tok(ptok, np, tok)) < np)
		chosen_raw = raw[i];
	out->token = tok;
	out->logprob = chosen_raw == -INFINITY ? -INFINITY : (float)((double)chosen_raw - lse);

	/* 7. the row as the chain leaves it: filtered tokens at -inf, the
	 * others divided by the temperature (greedy leaves it penalised) */
	if (!(temp > 0) || pmax == -INFINITY || !isfinite(mt))
		return;
	if (plain) {
		if (temp != 1.0f)
			divide(L, n_vocab, temp);
		return;
	}
	for (i = 0; i < c; i++)
		val[i] = L[idx[i]] / temp;
	fill(L, n_vocab, -INFINITY);
	for (i = 0; i < c; i++)
		L[idx[i]] = val[i];
}
