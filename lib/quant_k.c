/* quant_k: the K types of lib/quant, Q4_K and Q6_K, super-blocks of 256.
 * Quantizing follows ggml's reference quantizers (quantize_row_q4_K_ref with
 * its weighted min/scale search, quantize_row_q6_K_ref with its signed
 * scale search), which are what llama.cpp's quantizer runs for these types
 * when no importance matrix is given: the same float operations in the same
 * order, the same round-half-to-even nearest_int, the same f16 rounding, so
 * that the bytes match llama.cpp's for the same F32 row (t/unit/quant_k.c
 * checks that against blocks llama.cpp wrote, t/quant_k/).
 *
 * Layouts (ggml-common.h):
 *   Q4_K, 144 bytes: d f16, dmin f16, scales[12], qs[128]. Eight sub-blocks
 *     of 32 with a 6-bit scale and a 6-bit min each: y = d*sc*q - dmin*m.
 *   Q6_K, 210 bytes: ql[128], qh[64], scales[16] int8, d f16 (last).
 *     Sixteen sub-blocks of 16: y = d*sc*(q - 32), q of 6 bits.
 *
 * NaN and inf inputs never crash and never loop (every search has a fixed
 * number of steps, every index is clamped): the codes that come out are
 * whatever ggml's arithmetic gives (garbage in, garbage out). A Q6_K
 * super-block whose every sub-block scale comes out NaN is stored as zeros,
 * as ggml does. */
#include <math.h>
#include <string.h>

#include "quant.h"

/* Bit-exactness needs a*b+c rounded twice, as ggml's x86 build does: no
 * fused multiply-add. GCC in -std=c11 mode already keeps them apart; clang
 * contracts by default where the target has FMA. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define QK_K 256
#define Q4_K_BYTES 144
#define Q6_K_BYTES 210
#define GROUP_MAX_EPS 1e-15f    /* ggml's threshold for an all-zero group */

/* ggml's nearest_int: adding 1.5*2^23 rounds to an integer (to nearest
 * even) in the low mantissa bits. Defined for every input (NaN and huge
 * values give garbage, never undefined behaviour). */
static inline int
nearest_int(float f)
{
	float v = f + 12582912.f;
	int32_t i;

	memcpy(&i, &v, sizeof i);
	return (i & 0x007fffff) - 0x00400000;
}

/* The trial scales of both searches are independent of each other, and
 * each trial's sums are sequential float additions that must keep ggml's
 * order to give its bits. So the trials go in the lanes of a vector (GCC
 * and clang vector extensions; plain scalar code where the target has no
 * SIMD): every lane adds in ggml's order, and four trials advance at once.
 * The choice among trials is then made one trial at a time, in ggml's
 * order. */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4i
nearest_v(v4f f)
{
	v4f v = f + 12582912.f;

	return ((v4i)v & 0x007fffff) - 0x00400000;
}

/* l clamped to [lo, hi], with masks (C has no ?: on vectors) */
static inline v4i
clamp_v(v4i l, int lo, int hi)
{
	v4i m = l < lo;

	l = (l & ~m) | ((v4i){lo, lo, lo, lo} & m);
	m = l > hi;
	return (l & ~m) | ((v4i){hi, hi, hi, hi} & m);
}

static inline void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline float
get_f16(const uint8_t *p)
{
	return quant_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* ------------------------------------------------------------------ Q4_K */

/* The 6-bit scale and min of sub-block j from the 12 packed bytes. */
static inline void
q4k_scale_min(int j, const uint8_t *s, int *sc, int *m)
{
	if (j < 4) {
		*sc = s[j] & 63;
		*m = s[j + 4] & 63;
	} else {
		*sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
		*m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
	}
}

/* ggml's make_qkx2_quants for 32 values, nmax 15, rmin -1, rdelta 0.1,
 * nstep 20, squared error: the scale and min (returned as a positive
 * "min to subtract") minimizing the weighted error over 21 trial scales.
 * A trial that wins moves the min that later trials start from, so four
 * trials are tried at once from the current min and, when one wins and the
 * min moves, the trials after it are tried again from the new min. Nearly
 * all of the quantizing time is spent here. */
static float
q4k_search(const float *x, const float *w, uint8_t *L, float *the_min)
{
	v4i Lv[32];
	float min = x[0], max = x[0];
	float sum_w = w[0], sum_x = w[0] * x[0];
	float iscale, scale, best_error = 0;

	for (int i = 1; i < 32; i++) {
		if (x[i] < min)
			min = x[i];
		if (x[i] > max)
			max = x[i];
		sum_w += w[i];
		sum_x += w[i] * x[i];
	}
	if (min > 0)
		min = 0;
	if (max == min) {
		memset(L, 0, 32);
		*the_min = -min;
		return 0.f;
	}
	iscale = 15.f / (max - min);
	scale = 1 / iscale;
	for (int i = 0; i < 32; i++) {
		int l = nearest_int(iscale * (x[i] - min));
		float diff;

		l = l < 0 ? 0 : l > 15 ? 15 : l;
		L[i] = (uint8_t)l;
		diff = scale * (float)l + min - x[i];
		best_error += w[i] * (diff * diff);
	}
	for (int t = 0; t <= 20;) {
		v4f isc, sl = {0, 0, 0, 0}, sl2 = sl, sxl = sl, err = sl, vs, vm;
		float D[4];
		int next = t + 4;

		for (int k = 0; k < 4; k++) {
			int is = t + k <= 20 ? t + k : 20;

			isc[k] = (-1.f + 0.1f * (float)is + 15.f) / (max - min);
		}
		for (int i = 0; i < 32; i++) {
			v4i l = clamp_v(nearest_v(isc * (x[i] - min)), 0, 15);
			v4f lf = __builtin_convertvector(l, v4f), wl = w[i] * lf;

			Lv[i] = l;
			sl += wl;
			sl2 += wl * lf;
			sxl += wl * x[i];
		}
		for (int k = 0; k < 4; k++) {
			float ts, tm;

			D[k] = sum_w * sl2[k] - sl[k] * sl[k];
			ts = (sum_w * sxl[k] - sum_x * sl[k]) / D[k];
			tm = (sl2[k] * sum_x - sl[k] * sxl[k]) / D[k];
			if (tm > 0) {
				tm = 0;
				ts = sxl[k] / sl2[k];
			}
			vs[k] = ts;
			vm[k] = tm;
		}
		for (int i = 0; i < 32; i++) {
			v4f diff = vs * __builtin_convertvector(Lv[i], v4f) + vm - x[i];

			err += w[i] * (diff * diff);
		}
		for (int k = 0; k < 4 && t + k <= 20; k++) {
			if (!(D[k] > 0) || !(err[k] < best_error))
				continue;
			for (int i = 0; i < 32; i++)
				L[i] = (uint8_t)Lv[i][k];
			best_error = err[k];
			scale = vs[k];
			if (vm[k] != min) {
				min = vm[k];
				next = t + k + 1;       /* later lanes used the old min */
				break;
			}
		}
		t = next;
	}
	*the_min = -min;
	return scale;
}

static void
q4k_block(const float *x, uint8_t *y)
{
	uint8_t L[QK_K], *sb = y + 4, *q = y + 16;
	float weights[32], scales[8], mins[8];
	float max_scale = 0, max_min = 0, inv_scale, inv_min, d, dmin;

	for (int j = 0; j < 8; j++) {
		const float *xs = x + 32 * j;
		float sum_x2 = 0, av_x;

		for (int l = 0; l < 32; l++)
			sum_x2 += xs[l] * xs[l];
		av_x = sqrtf(sum_x2 / 32);
		for (int l = 0; l < 32; l++)
			weights[l] = av_x + fabsf(xs[l]);
		scales[j] = q4k_search(xs, weights, L + 32 * j, &mins[j]);
		if (scales[j] > max_scale)
			max_scale = scales[j];
		if (mins[j] > max_min)
			max_min = mins[j];
	}

	inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
	inv_min = max_min > 0 ? 63.f / max_min : 0.f;
	memset(sb, 0, 12);
	for (int j = 0; j < 8; j++) {
		/* ggml stores nearest_int into a uint8_t, then caps at 63 */
		uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
		uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);

		ls = ls > 63 ? 63 : ls;
		lm = lm > 63 ? 63 : lm;
		if (j < 4) {
			sb[j] = ls;
			sb[j + 4] = lm;
		} else {
			sb[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
			sb[j - 4] |= (uint8_t)((ls >> 4) << 6);
			sb[j] |= (uint8_t)((lm >> 4) << 6);
		}
	}
	put16(y, quant_f32_to_f16(max_scale / 63.f));
	put16(y + 2, quant_f32_to_f16(max_min / 63.f));
	d = get_f16(y);
	dmin = get_f16(y + 2);

	/* requantize against the scales as stored */
	for (int j = 0; j < 8; j++) {
		int sc, m;
		float ds, dm;

		q4k_scale_min(j, sb, &sc, &m);
		ds = d * (float)sc;
		if (!ds)
			continue;
		dm = dmin * (float)m;
		for (int i = 0; i < 32; i++) {
			int l = nearest_int((x[32 * j + i] + dm) / ds);

			L[32 * j + i] = (uint8_t)(l < 0 ? 0 : l > 15 ? 15 : l);
		}
	}
	for (int j = 0; j < QK_K; j += 64, q += 32)
		for (int l = 0; l < 32; l++)
			q[l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
}

static void
q4k_deblock(const uint8_t *y, float *x)
{
	const uint8_t *sb = y + 4, *q = y + 16;
	float d = get_f16(y), dmin = get_f16(y + 2);

	for (int j = 0; j < 8; j += 2, q += 32) {
		int sc, m;
		float d1, m1, d2, m2;

		q4k_scale_min(j, sb, &sc, &m);
		d1 = d * (float)sc;
		m1 = dmin * (float)m;
		q4k_scale_min(j + 1, sb, &sc, &m);
		d2 = d * (float)sc;
		m2 = dmin * (float)m;
		for (int l = 0; l < 32; l++)
			*x++ = d1 * (float)(q[l] & 0xF) - m1;
		for (int l = 0; l < 32; l++)
			*x++ = d2 * (float)(q[l] >> 4) - m2;
	}
}

void
quant_q4_k_dequantize(const void *src, float *dst, size_t n)
{
	const uint8_t *p = src;

	if (n % QK_K) {
		memset(dst, 0, n * sizeof *dst);
		return;
	}
	for (size_t i = 0; i < n; i += QK_K, p += Q4_K_BYTES)
		q4k_deblock(p, dst + i);
}

int
quant_q4_k_quantize(const float *src, void *dst, size_t n)
{
	uint8_t *p = dst;

	if (n % QK_K)
		return -1;
	for (size_t i = 0; i < n; i += QK_K, p += Q4_K_BYTES)
		q4k_block(src + i, p);
	return 0;
}

/* ------------------------------------------------------------------ Q6_K */

/* ggml's make_qx_quants for 16 values, nmax 32, rmse_type 1 (weights
 * x^2): the signed scale (the largest-magnitude value maps to -32) refined
 * over 18 more trial scales, keeping the one with the least weighted
 * squared error. Trial 0 is ggml's first guess -32/max, trials 1..18 its
 * is = -9..-1, 1..9, trial 19 pads the last vector. */
#define Q6T 5           /* vectors of 4 trials */
static float
q6k_search(const float *x, int8_t *L)
{
	v4f isc[Q6T], slx[Q6T], sl2[Q6T];
	float max = 0, amax = 0, iscale, scale, best;
	int pick = 0;

	for (int i = 0; i < 16; i++) {
		float ax = fabsf(x[i]);

		if (ax > amax) {
			amax = ax;
			max = x[i];
		}
	}
	if (amax < GROUP_MAX_EPS) {
		memset(L, 0, 16);
		return 0.f;
	}
	for (int t = 0; t < 20; t++) {
		int is = t <= 9 ? t - 10 : t - 9;       /* -9..-1, 1..9 */

		isc[t / 4][t % 4] = t == 0 || t == 19 ? -32.f / max
			: -(32.f + 0.1f * (float)is) / max;
	}
	for (int v = 0; v < Q6T; v++)
		slx[v] = sl2[v] = (v4f){0, 0, 0, 0};
	for (int i = 0; i < 16; i++) {
		float xi = x[i], w = xi * xi, wx = w * xi;

		for (int v = 0; v < Q6T; v++) {
			v4i l = clamp_v(nearest_v(isc[v] * xi), -32, 31);
			v4f lf = __builtin_convertvector(l, v4f);

			slx[v] += wx * lf;
			sl2[v] += (w * lf) * lf;
		}
	}
	scale = sl2[0][0] ? slx[0][0] / sl2[0][0] : 0.0f;
	best = scale * slx[0][0];
	for (int t = 1; t <= 18; t++) {
		float sumlx = slx[t / 4][t % 4], suml2 = sl2[t / 4][t % 4];

		if (suml2 > 0 && sumlx * sumlx > best * suml2) {
			scale = sumlx / suml2;
			best = scale * sumlx;
			pick = t;
		}
	}
	iscale = isc[pick / 4][pick % 4];
	for (int i = 0; i < 16; i++) {
		int l = nearest_int(iscale * x[i]);

		l = l < -32 ? -32 : l > 31 ? 31 : l;
		L[i] = (int8_t)(l + 32);
	}
	return scale;
}

static void
q6k_block(const float *x, uint8_t *y)
{
	int8_t L[QK_K], *sc = (int8_t *)(y + 192);
	uint8_t *ql = y, *qh = y + 128;
	float scales[16], max_scale = 0, max_abs_scale = 0, iscale, d;

	for (int ib = 0; ib < 16; ib++) {
		float s = q6k_search(x + 16 * ib, L + 16 * ib);

		scales[ib] = s;
		if (fabsf(s) > max_abs_scale) {
			max_abs_scale = fabsf(s);
			max_scale = s;
		}
	}
	if (max_abs_scale < GROUP_MAX_EPS) {
		memset(y, 0, Q6_K_BYTES);
		return;
	}

	iscale = -128.f / max_scale;
	put16(y + 208, quant_f32_to_f16(1 / iscale));
	d = get_f16(y + 208);
	for (int ib = 0; ib < 16; ib++) {
		int l = nearest_int(iscale * scales[ib]);

		/* ggml: MIN(127, l) stored in an int8_t */
		sc[ib] = (int8_t)(uint8_t)(l > 127 ? 127 : l);
	}

	/* requantize against the scales as stored */
	for (int j = 0; j < 16; j++) {
		float ds = d * (float)sc[j];

		if (!ds)
			continue;
		for (int i = 0; i < 16; i++) {
			int l = nearest_int(x[16 * j + i] / ds);

			l = l < -32 ? -32 : l > 31 ? 31 : l;
			L[16 * j + i] = (int8_t)(l + 32);
		}
	}

	for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
		for (int l = 0; l < 32; l++) {
			int q1 = L[j + l], q2 = L[j + l + 32];
			int q3 = L[j + l + 64], q4 = L[j + l + 96];

			ql[l] = (uint8_t)((q1 & 0xF) | (q3 & 0xF) << 4);
			ql[l + 32] = (uint8_t)((q2 & 0xF) | (q4 & 0xF) << 4);
			qh[l] = (uint8_t)((q1 >> 4) | (q2 >> 4) << 2 |
				(q3 >> 4) << 4 | (q4 >> 4) << 6);
		}
	}
}

static void
q6k_deblock(const uint8_t *y, float *x)
{
	const uint8_t *ql = y, *qh = y + 128;
	const int8_t *sc = (const int8_t *)(y + 192);
	float d = get_f16(y + 208);

	for (int n = 0; n < QK_K; n += 128, x += 128, ql += 64, qh += 32, sc += 8) {
		for (int l = 0; l < 32; l++) {
			int is = l / 16;
			int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
			int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
			int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
			int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;

			x[l] = d * (float)sc[is] * (float)q1;
			x[l + 32] = d * (float)sc[is + 2] * (float)q2;
			x[l + 64] = d * (float)sc[is + 4] * (float)q3;
			x[l + 96] = d * (float)sc[is + 6] * (float)q4;
		}
	}
}

void
quant_q6_k_dequantize(const void *src, float *dst, size_t n)
{
	const uint8_t *p = src;

	if (n % QK_K) {
		memset(dst, 0, n * sizeof *dst);
		return;
	}
	for (size_t i = 0; i < n; i += QK_K, p += Q6_K_BYTES)
		q6k_deblock(p, dst + i);
}

int
quant_q6_k_quantize(const float *src, void *dst, size_t n)
{
	uint8_t *p = dst;

	if (n % QK_K)
		return -1;
	for (size_t i = 0; i < n; i += QK_K, p += Q6_K_BYTES)
		q6k_block(src + i, p);
	return 0;
}
