/* dot unit test: every weight type's dot_rows against a double-precision
 * reference built from lib/quant's dequantizers (the quantized weights
 * times the dequantized activation codes), against the plain float product
 * within the activation format's bound, the scalar path against the AVX2
 * one, codes at their extremes, the activation formats byte for byte on
 * known values, and the error paths of the API. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dot.h"
#include "quant.h"
#include "tap.h"

/* the SIMD path under test (AVX2, AVX-512): what "simd" means below */
static int cur_isa = DOT_AVX2;

/* xorshift64* and Box-Muller: fixed seeds, same numbers everywhere */
static uint64_t rs = 0x2545f4914f6cdd1dull;

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

static void *
xcalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);

	if (!p) {
		perror("calloc");
		exit(2);
	}
	return p;
}

/* Activation rows back to floats: what the kernels multiply. Q8_K is not
 * a lib/quant type, so it is read here (f32 d, 256 int8). */
static void
act_dequant(uint32_t wtype, const uint8_t *xq, float *out, size_t n)
{
	uint32_t at = dot_act_type(wtype);

	if (at == QUANT_Q8_K) {
		for (size_t i = 0; i < n / 256; i++, xq += 292) {
			float d;

			memcpy(&d, xq, 4);
			for (int j = 0; j < 256; j++)
				out[256 * i + j] = d * (float)(int8_t)xq[4 + j];
		}
		return;
	}
	quant_dequantize_row(at, xq, out, n);
}

/* the largest error of the activation format on one block's values: Q8
 * codes round to within d/2 of x*id, and d itself is rounded to f16 (Q8_0,
 * Q8_1: 127 codes times 2^-11 relative); amax/127 * 0.57 covers both */
static double
act_err_bound(uint32_t at, const float *x, size_t n, size_t k0, size_t blk)
{
	double amax = 0;

	if (at == QUANT_F32)
		return 0;
	for (size_t k = k0; k < k0 + blk && k < n; k++)
		amax = fmax(amax, fabs(x[k]));
	return amax / 127 * 0.57;
}

static const uint32_t wtypes[] = {
	QUANT_F32, QUANT_F16, QUANT_BF16, QUANT_Q8_0, QUANT_Q4_0, QUANT_Q4_1, QUANT_Q5_0, QUANT_Q5_1,
	QUANT_Q4_K, QUANT_Q6_K,
};
#define NTYPES (sizeof wtypes / sizeof wtypes[0])

/* Relative tolerances, of sum |w*x| over the row: the kernels sum in f32
 * in another order than the double reference (and multiply f32 scales),
 * so 1e-4 is far above what rounding gives (about 1e-6 here). */
#define TOL_REF 1e-4
#define TOL_SIMD 2e-5

struct res {
	double worst_ref, worst_plain, worst_simd, worst_s;
	int bad_ref, bad_plain, bad_simd, bad_guard;
};

static float
f16at(const uint8_t *p)
{
	return quant_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* Q4_1 and Q5_1 against Q8_1: ggml takes the min term as m * s, with
 * Q8_1's s (d times the sum of the codes) rounded to f16; the dequantized
 * product has m * d * sum instead. What the format stores is the
 * reference: the difference, sum over blocks of m * (s - d*sum), is added
 * to it, and its size reported (*mag_s: sum of |m * (s - d*sum)|). */
static double
q41_s_term(uint32_t wt, const uint8_t *w, const uint8_t *xq, size_t n, double *mag_s)
{
	const size_t wb = quant_row_bytes(wt, 32);
	double t = 0;

	*mag_s = 0;
	for (size_t i = 0; i < n / 32; i++, w += wb, xq += 36) {
		int sum = 0;
		double e;

		for (int j = 0; j < 32; j++)
			sum += (int8_t)xq[4 + j];
		e = (double)f16at(w + 2) * ((double)f16at(xq + 2) - (double)f16at(xq) * sum);
		t += e;
		*mag_s += fabs(e);
	}
	return t;
}

static void
check_case(uint32_t t, size_t n, size_t nb, struct res *rr, int simd)
{
	const size_t R = 37, r0 = 3, r1 = 34, ldy = R + 5;
	size_t rb = quant_row_bytes(t, n), ab = dot_act_bytes(t, n), xs = ab + 64;
	uint32_t at = dot_act_type(t);
	size_t blk = at == QUANT_Q8_K ? 256 : 32;
	uint8_t *W = xcalloc(R * rb), *xq = xcalloc(nb * xs);
	float *wf = xcalloc(R * n * sizeof(float)), *x = xcalloc(nb * n * sizeof(float));
	float *xd = xcalloc(nb * n * sizeof(float)), *tmp = xcalloc(n * sizeof(float));
	float *ys = xcalloc(nb * ldy * sizeof(float)), *yv = xcalloc(nb * ldy * sizeof(float));

	for (size_t r = 0; r < R; r++) {
		/* rows of different scales, some with an offset (Q4_1's min) */
		float sc = (float)(0.02 * (1 + r % 5)), off = r % 3 == 1 ? 0.03f : 0.f;

		for (size_t k = 0; k < n; k++)
			tmp[k] = sc * gauss() + off;
		quant_quantize_row(t, tmp, W + r * rb, n);
		quant_dequantize_row(t, W + r * rb, wf + r * n, n);
	}
	for (size_t b = 0; b < nb; b++) {
		/* activations: large, small, one all zero, a few outliers */
		float sc = b % 4 == 0 ? 30.f : b % 4 == 1 ? 1e-3f : 1.f;

		for (size_t k = 0; k < n; k++) {
			x[b * n + k] = b == 2 ? 0.f : sc * gauss();
			if (unif() < 0.01)
				x[b * n + k] *= 20;
		}
		dot_quantize_act(t, x + b * n, xq + b * xs, n);
		act_dequant(t, xq + b * xs, xd + b * n, n);
	}
	for (size_t i = 0; i < nb * ldy; i++)
		ys[i] = yv[i] = -12345.f;

	dot_force_scalar(1);
	dot_rows(t, W, r0, r1, n, xq, xs, nb, ys, ldy);
	dot_set_isa(cur_isa);
	if (simd)
		dot_rows(t, W, r0, r1, n, xq, xs, nb, yv, ldy);

	for (size_t b = 0; b < nb; b++)
		for (size_t r = 0; r < R; r++) {
			const float *w = wf + r * n, *xr = x + b * n, *xx = xd + b * n;
			double ref = 0, plain = 0, mag = 0, bound = 0, bsum = 0;
			float vs = ys[b * ldy + r], vv = yv[b * ldy + r];

			if (r < r0 || r >= r1) {
				if (vs != -12345.f || (simd && vv != -12345.f))
					rr->bad_guard++;
				continue;
			}
			for (size_t k = 0; k < n; k++) {
				ref += (double)w[k] * xx[k];
				plain += (double)w[k] * xr[k];
				mag += fabs((double)w[k] * xx[k]);
				bsum += fabs(w[k]);
				if ((k + 1) % blk == 0) {
					bound += bsum * act_err_bound(at, xr, n, k + 1 - blk, blk);
					bsum = 0;
				}
			}
			mag += 1e-30;
			if (dot_act_type(t) == QUANT_Q8_1) {
				double ms, e = q41_s_term(t, W + r * rb, xq + b * xs, n, &ms);

				ref += e;
				bound += ms;
				rr->worst_s = fmax(rr->worst_s, fabs(e) / mag);
			}
			{
				double e = fabs(vs - ref) / mag, p = fabs(vs - plain);

				rr->worst_ref = fmax(rr->worst_ref, e);
				if (!(e <= TOL_REF))
					rr->bad_ref++;
				if (!(p <= bound + TOL_REF * mag))
					rr->bad_plain++;
				rr->worst_plain = fmax(rr->worst_plain, p / (bound + TOL_REF * mag));
			}
			if (simd) {
				double e = fabs(vv - ref) / mag, d = fabs(vv - vs) / mag;

				if (!(e <= TOL_REF))
					rr->bad_ref++;
				rr->worst_ref = fmax(rr->worst_ref, e);
				rr->worst_simd = fmax(rr->worst_simd, d);
				if (!(d <= TOL_SIMD))
					rr->bad_simd++;
			}
		}
	free(W);
	free(xq);
	free(wf);
	free(x);
	free(xd);
	free(tmp);
	free(ys);
	free(yv);
}

static void
test_types(int simd)
{
	static const size_t nbs[] = {1, 3, 4, 7, 10, 16, 33};

	for (size_t ti = 0; ti < NTYPES; ti++) {
		uint32_t t = wtypes[ti];
		int kq = quant_block_size(t) == 256;
		size_t ns[3] = {256, kq ? 512 : 576, 1536};
		struct res rr = {0};

		for (int ni = 0; ni < 3; ni++)
			for (size_t bi = 0; bi < sizeof nbs / sizeof nbs[0]; bi++)
				check_case(t, ns[ni], nbs[bi], &rr, simd);
		ok(!rr.bad_ref, "%s: dot_rows = dequantized reference within %g of sum|w*x| "
		   "(n 256/%zu/1536, nb 1 3 4 7 10 16 33, rows 3..33; %d off, worst %.2g)",
		   quant_type_name(t), TOL_REF, ns[1], rr.bad_ref, rr.worst_ref);
		ok(!rr.bad_plain, "%s: dot_rows = float product within the %s error bound "
		   "(%d off, worst %.2f of the bound)", quant_type_name(t),
		   quant_type_name(dot_act_type(t)), rr.bad_plain, rr.worst_plain);
		ok(!rr.bad_guard, "%s: rows outside [r0, r1) untouched (%d)", quant_type_name(t),
		   rr.bad_guard);
		if (dot_act_type(t) == QUANT_Q8_1)
			printf("# %s: Q8_1's f16 s moves the product by up to %.2g of sum|w*x|"
			       " from the exact one (as in ggml)\n", quant_type_name(t), rr.worst_s);
		if (simd)
			ok(!rr.bad_simd, "%s: %s = scalar within %g of sum|w*x| (%d off, worst %.2g)",
			   quant_type_name(t), dot_isa_name(cur_isa), TOL_SIMD, rr.bad_simd, rr.worst_simd);
	}
}

/* ---- extremes: the largest codes against the largest activations, where
 * an int16 intermediate would overflow if the kernels let it */

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void
test_extremes(int simd)
{
	const size_t n = 512, nb = 9, R = 6;
	static const uint32_t ts[] = {QUANT_Q8_0, QUANT_Q4_0, QUANT_Q4_1, QUANT_Q5_0, QUANT_Q5_1,
				      QUANT_Q4_K, QUANT_Q6_K};

	for (size_t ti = 0; ti < sizeof ts / sizeof ts[0]; ti++) {
		uint32_t t = ts[ti];
		size_t rb = quant_row_bytes(t, n), ab = dot_act_bytes(t, n);
		uint8_t *W = xcalloc(R * rb), *xq = xcalloc(nb * ab);
		float *x = xcalloc(n * sizeof(float)), *wf = xcalloc(n * sizeof(float));
		float *xd = xcalloc(n * sizeof(float)), y[2][9 * 6];
		int bad = 0;

		for (size_t r = 0; r < R; r++) {
			uint8_t *w = W + r * rb;
			/* row r: all codes at the top (even r) or bottom (odd) */
			int top = r % 2 == 0;

			switch (t) {
			case QUANT_Q8_0:
				for (size_t i = 0; i < n / 32; i++, w += 34) {
					put16(w, quant_f32_to_f16(0.5f));
					memset(w + 2, top ? 127 : 0x81, 32);    /* 127, -127 */
				}
				break;
			case QUANT_Q4_0:
			case QUANT_Q4_1:
			case QUANT_Q5_0:
			case QUANT_Q5_1:
				/* codes 15 or 0; Q5: 31 or 0, the high bits with them */
				for (size_t i = 0; i < n / 32; i++, w += rb / (n / 32)) {
					put16(w, quant_f32_to_f16(0.5f));
					if (dot_act_type(t) == QUANT_Q8_1)
						put16(w + 2, quant_f32_to_f16(-1.f));
					if (t == QUANT_Q5_0 || t == QUANT_Q5_1)
						memset(w + rb / (n / 32) - 20, top ? 0xff : 0x00, 4);
					memset(w + rb / (n / 32) - 16, top ? 0xff : 0x00, 16);
				}
				break;
			case QUANT_Q4_K:
				for (size_t i = 0; i < n / 256; i++, w += 144) {
					put16(w, quant_f32_to_f16(0.01f));
					put16(w + 2, quant_f32_to_f16(0.02f));
					memset(w + 4, 0xff, 12);                /* scales, mins 63 */
					memset(w + 16, top ? 0xff : 0x00, 128);
				}
				break;
			case QUANT_Q6_K:
				for (size_t i = 0; i < n / 256; i++, w += 210) {
					memset(w, top ? 0xff : 0x00, 192);      /* codes 63 or 0 */
					memset(w + 192, top ? 127 : 0x80, 16);  /* scales 127, -128 */
					put16(w + 208, quant_f32_to_f16(0.001f));
				}
				break;
			}
		}
		for (size_t b = 0; b < nb; b++) {
			/* all +1 (codes 127), all -1 (-127), alternating */
			for (size_t k = 0; k < n; k++)
				x[k] = b % 3 == 0 ? 1.f : b % 3 == 1 ? -1.f : (k % 2 ? 1.f : -1.f);
			dot_quantize_act(t, x, xq + b * ab, n);
		}
		for (int pass = 0; pass < 1 + simd; pass++) {
			dot_set_isa(pass == 0 ? DOT_SCALAR : cur_isa);
			dot_rows(t, W, 0, R, n, xq, ab, nb, y[pass], R);
		}
		dot_set_isa(cur_isa);
		for (size_t b = 0; b < nb; b++) {
			act_dequant(t, xq + b * ab, xd, n);
			for (size_t r = 0; r < R; r++) {
				double ref = 0, mag = 1e-30;

				quant_dequantize_row(t, W + r * rb, wf, n);
				for (size_t k = 0; k < n; k++) {
					ref += (double)wf[k] * xd[k];
					mag += fabs((double)wf[k] * xd[k]);
				}
				if (dot_act_type(t) == QUANT_Q8_1) {
					double ms;

					ref += q41_s_term(t, W + r * rb, xq + b * ab, n, &ms);
				}
				for (int pass = 0; pass < 1 + simd; pass++)
					if (!(fabs(y[pass][b * R + r] - ref) <= TOL_REF * mag))
						bad++;
			}
		}
		ok(!bad, "%s: extreme codes against +-127 activations exact to rounding (%d off)",
		   quant_type_name(t), bad);
		free(W);
		free(xq);
		free(x);
		free(wf);
		free(xd);
	}
}

/* ---- activation formats on known values */

static void
test_formats(void)
{
	float x[256];
	uint8_t q[300];
	float d;
	int16_t bs;

	memset(x, 0, sizeof x);
	x[0] = 127.f;   /* amax 127: id 1, d 1 */
	x[1] = 2.5f;    /* ties go to even (ggml's AVX2 quantizer): 2 */
	x[2] = -3.5f;   /* -4 */
	x[3] = 0.5f;    /* 0 */
	x[4] = -126.6f; /* -127 */
	dot_quantize_act(QUANT_Q8_0, x, q, 32);
	ok(q[0] == 0x00 && q[1] == 0x3c && (int8_t)q[2] == 127 && (int8_t)q[3] == 2
	   && (int8_t)q[4] == -4 && (int8_t)q[5] == 0 && (int8_t)q[6] == -127 && q[7] == 0,
	   "Q8_0: d = amax/127 as f16, codes rounded half to even");
	dot_quantize_act(QUANT_Q4_1, x, q, 32);
	/* s = d * (127 + 2 - 4 + 0 - 127) = -2 */
	ok(q[0] == 0x00 && q[1] == 0x3c && q[2] == 0x00 && q[3] == 0xc0
	   && (int8_t)q[4] == 127 && (int8_t)q[5] == 2,
	   "Q8_1: s = d * sum of codes as f16 (-2 here)");
	memset(x, 0, sizeof x);
	dot_quantize_act(QUANT_Q8_0, x, q, 32);
	ok(q[0] == 0 && q[1] == 0 && q[2] == 0 && q[33] == 0, "Q8_0: a zero block is all zeros");

	for (int j = 0; j < 256; j++)
		x[j] = (float)(j % 7) * 0.25f;
	x[5] = -2.f;    /* the largest magnitude, negative: maps to -127 */
	x[9] = 2.f;     /* same magnitude, later: the first one wins */
	memset(q, 0xaa, sizeof q);
	dot_quantize_act(QUANT_Q4_K, x, q, 256);
	memcpy(&d, q, 4);
	memcpy(&bs, q + 260, 2);
	{
		int s = 0;

		for (int j = 0; j < 16; j++)
			s += (int8_t)q[4 + j];
		ok(fabsf(d - 2.f / 127.f) < 1e-9f && (int8_t)q[4 + 5] == -127 && (int8_t)q[4 + 9] == 127
		   && bs == s && q[0 + 292] == 0xaa,
		   "Q8_K: iscale = -127/max (the signed max), d = 1/iscale, bsums = sums of 16");
	}
	x[5] = 2.f;
	x[9] = -2.f;
	dot_quantize_act(QUANT_Q6_K, x, q, 256);
	memcpy(&d, q, 4);
	ok((int8_t)q[4 + 5] == -127 && (int8_t)q[4 + 9] == 127 && fabsf(d + 2.f / 127.f) < 1e-9f,
	   "Q8_K: a positive max maps to -127 too (d < 0)");
	memset(x, 0, sizeof x);
	memset(q, 0xaa, sizeof q);
	dot_quantize_act(QUANT_Q4_K, x, q, 256);
	{
		int nz = 0;

		for (int j = 0; j < 292; j++)
			nz += q[j] != 0;
		ok(!nz, "Q8_K: a zero block is all zeros, bsums included");
	}
	x[0] = 1.5f;
	x[1] = -7.f;
	dot_quantize_act(QUANT_F16, x, q, 2);
	ok(memcmp(q, x, 8) == 0, "F32 activations: a copy");
}

/* the AVX2 quantizer gives the scalar one's bytes */
static void
test_quant_same(int simd)
{
	static const uint32_t ts[] = {QUANT_Q8_0, QUANT_Q4_1, QUANT_Q4_K};
	const size_t n = 512;
	float x[512];
	uint8_t a[600], b[600];

	if (!simd)
		return;
	for (size_t ti = 0; ti < 3; ti++) {
		int diff = 0, rows = 0;

		for (int r = 0; r < 300; r++, rows++) {
			float sc = r % 3 == 0 ? 1e-3f : r % 3 == 1 ? 1.f : 1e4f;

			for (size_t k = 0; k < n; k++) {
				x[k] = sc * gauss();
				if (r % 7 == 0)                 /* ties: x * id = k + 0.5 */
					x[k] = (float)((int)(unif() * 254) - 127) + 0.5f;
				if (r % 11 == 0 && k % 3 == 0)
					x[k] = 0.f;
			}
			if (r % 7 == 0)
				x[5] = 127.f;
			if (r == 1)
				memset(x, 0, sizeof x);
			dot_force_scalar(1);
			dot_quantize_act(ts[ti], x, a, n);
			dot_set_isa(cur_isa);
			dot_quantize_act(ts[ti], x, b, n);
			diff += memcmp(a, b, dot_act_bytes(ts[ti], n)) != 0;
		}
		ok(!diff, "%s activations: %s quantizer = scalar byte for byte (%d of %d rows differ)",
		   quant_type_name(dot_act_type(ts[ti])), dot_isa_name(cur_isa), diff, rows);
	}
	/* NaN and inf: no crash, whatever comes out */
	for (size_t k = 0; k < n; k++)
		x[k] = k % 5 == 0 ? NAN : k % 7 == 0 ? INFINITY : gauss();
	for (size_t ti = 0; ti < 3; ti++)
		dot_quantize_act(ts[ti], x, b, n);
	ok(1, "NaN and inf activations quantize without a crash");
}

static void
test_api(void)
{
	float y[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	uint8_t w[64] = {0}, xq[64] = {0};
	int zeros = 1;

	ok(dot_act_type(QUANT_Q4_0) == QUANT_Q8_0 && dot_act_type(QUANT_Q8_0) == QUANT_Q8_0
	   && dot_act_type(QUANT_Q5_0) == QUANT_Q8_0 && dot_act_type(QUANT_Q5_1) == QUANT_Q8_1
	   && dot_act_type(QUANT_Q4_1) == QUANT_Q8_1 && dot_act_type(QUANT_Q4_K) == QUANT_Q8_K
	   && dot_act_type(QUANT_Q6_K) == QUANT_Q8_K && dot_act_type(QUANT_F32) == QUANT_F32
	   && dot_act_type(QUANT_F16) == QUANT_F32 && dot_act_type(QUANT_BF16) == QUANT_F32,
	   "dot_act_type of every supported weight type");
	ok(dot_act_type(QUANT_Q8_1) == (uint32_t)-1
	   && dot_act_type(QUANT_Q8_K) == (uint32_t)-1 && dot_act_type(11) == (uint32_t)-1
	   && dot_act_type(99) == (uint32_t)-1 && dot_act_type((uint32_t)-1) == (uint32_t)-1,
	   "dot_act_type: -1 for Q8_1, Q8_K, Q3_K, unknown ids");
	ok(dot_act_bytes(QUANT_Q4_0, 576) == 18 * 34 && dot_act_bytes(QUANT_Q8_0, 64) == 68
	   && dot_act_bytes(QUANT_Q4_1, 576) == 18 * 36 && dot_act_bytes(QUANT_Q4_K, 512) == 584
	   && dot_act_bytes(QUANT_Q6_K, 256) == 292 && dot_act_bytes(QUANT_F16, 7) == 28
	   && dot_act_bytes(QUANT_BF16, 576) == 2304 && dot_act_bytes(QUANT_F32, 1) == 4,
	   "dot_act_bytes of each format");
	ok(dot_act_bytes(QUANT_Q4_K, 576) == 0 && dot_act_bytes(QUANT_Q4_0, 33) == 0
	   && dot_act_bytes(QUANT_Q8_0, 0) == 0 && dot_act_bytes(QUANT_Q5_1, 48) == 0
	   && dot_act_bytes(QUANT_Q8_1, 64) == 0 && dot_act_bytes(77, 64) == 0,
	   "dot_act_bytes: 0 for sizes off the block and unsupported types");
	memset(xq, 0x5a, sizeof xq);
	dot_quantize_act(QUANT_Q8_1, (const float *)(const void *)w, xq, 32);
	dot_quantize_act(QUANT_Q4_K, (const float *)(const void *)w, xq, 32);
	ok(xq[0] == 0x5a && xq[63] == 0x5a, "dot_quantize_act leaves dst alone for a bad type or size");

	dot_rows(QUANT_Q8_K, w, 0, 2, 32, xq, 34, 2, y, 4);
	for (int i = 0; i < 8; i++)
		zeros &= i % 4 < 2 ? y[i] == 0.f : y[i] == (float)(i + 1);
	ok(zeros, "dot_rows on an unsupported type writes zeros to its rows only");
	y[0] = 9.f;
	dot_rows(QUANT_Q4_K, w, 0, 1, 32, xq, 34, 1, y, 4);
	ok(y[0] == 0.f, "dot_rows with n off the block size writes zeros");
	y[0] = 9.f;
	dot_rows(QUANT_Q8_0, w, 1, 1, 32, xq, 34, 1, y, 4);
	dot_rows(QUANT_Q8_0, w, 0, 1, 32, xq, 34, 0, y, 4);
	ok(y[0] == 9.f, "dot_rows with no rows or no activations writes nothing");
}

/* The engine promises that a request's numbers do not depend on what else
 * is in the batch: column b of dot_rows must be the same bits whatever nb
 * is, whatever the row range, on either path. */
static void
test_invariance(int simd)
{
	static const uint32_t ts[] = { QUANT_Q4_0, QUANT_Q4_1, QUANT_Q5_0, QUANT_Q5_1, QUANT_Q8_0,
					 QUANT_Q4_K, QUANT_Q6_K, QUANT_F32, QUANT_F16, QUANT_BF16 };
	const size_t n = 512, rows = 37, nbmax = 19;

	for (int pass = 0; pass < 1 + simd; pass++) {
		dot_set_isa(pass == 0 && simd ? cur_isa : DOT_SCALAR);
		for (size_t ti = 0; ti < sizeof ts / sizeof *ts; ti++) {
			uint32_t t = ts[ti];
			size_t rb = quant_row_bytes(t, n), xb = dot_act_bytes(t, n);
			uint8_t *W = xcalloc(rb * rows), *X = xcalloc(xb * nbmax);
			float *f = xcalloc(n * sizeof *f), *y = xcalloc(rows * nbmax * sizeof *y);
			float *y1 = xcalloc(rows * sizeof *y1);
			int bad = 0;

			for (size_t r = 0; r < rows; r++) {
				for (size_t k = 0; k < n; k++)
					f[k] = gauss() * (r % 3 ? 1.f : 40.f);
				quant_quantize_row(t, f, W + r * rb, n);
			}
			for (size_t b = 0; b < nbmax; b++) {
				for (size_t k = 0; k < n; k++)
					f[k] = gauss() * (b % 2 ? 3.f : 0.01f);
				dot_quantize_act(t, f, X + b * xb, n);
			}
			for (size_t nb = 1; nb <= nbmax; nb += 3) {
				dot_rows(t, W, 0, rows, n, X, xb, nb, y, rows);
				for (size_t b = 0; b < nb; b++) {
					/* alone, and on an odd row range */
					dot_rows(t, W, 0, 5, n, X + b * xb, xb, 1, y1, rows);
					dot_rows(t, W, 5, rows, n, X + b * xb, xb, 1, y1, rows);
					bad += memcmp(y1, y + b * rows, rows * sizeof *y1) != 0;
				}
			}
			ok(!bad, "%s (%s): each column the same bits alone as in batches of 1..19 (%d differ)",
			   quant_type_name(t), dot_isa_name(pass == 0 && simd ? cur_isa : DOT_SCALAR), bad);
			free(W), free(X), free(f), free(y), free(y1);
		}
	}
	dot_set_isa(cur_isa);
}

/* Every SIMD path gives the AVX2 path's bits: on random weight codes of
 * every value (Q8_0's -128, every nibble, Q6_K scales to -128), sizes
 * that leave rows over from the 512-bit tiles, batches of 1..33 and odd
 * row ranges. */
static void
test_same_bits(int isa)
{
	static const uint32_t ts[] = { QUANT_Q4_0, QUANT_Q4_1, QUANT_Q5_0, QUANT_Q5_1, QUANT_Q8_0,
					 QUANT_Q4_K, QUANT_Q6_K, QUANT_F32, QUANT_F16, QUANT_BF16 };
	static const size_t ns[] = {256, 1536, 2048 + 256 + 32 + 8};
	static const size_t ranges[][2] = {{0, 45}, {3, 34}, {16, 32}, {5, 6}};
	const size_t rows = 45, nbmax = 33;

	for (size_t ti = 0; ti < sizeof ts / sizeof *ts; ti++) {
		uint32_t t = ts[ti];
		size_t bs = quant_block_size(t), cases = 0;
		int bad = 0;

		for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
			size_t n = ns[ni] / bs * bs, rb = quant_row_bytes(t, n), xb = dot_act_bytes(t, n);
			uint8_t *W = xcalloc(rb * rows), *X = xcalloc(xb * nbmax);
			float *f = xcalloc(n * sizeof *f);
			float *y2 = xcalloc(rows * nbmax * sizeof *y2), *y5 = xcalloc(rows * nbmax * sizeof *y5);

			for (size_t r = 0; r < rows; r++) {
				uint8_t *w = W + r * rb;

				for (size_t k = 0; k < n; k++)
					f[k] = gauss() * (r % 3 ? 1.f : 40.f) + (r % 4 == 1 ? 0.5f : 0.f);
				quant_quantize_row(t, f, w, n);
				/* codes of every value, scales kept as made */
				for (size_t i = 0; bs > 1 && i < n / bs; i++) {
					uint8_t *blk = w + i * (rb / (n / bs));
					size_t lo = t == QUANT_Q4_1 || t == QUANT_Q5_1 || t == QUANT_Q4_K ? 4
						  : t == QUANT_Q6_K ? 0 : 2;
					size_t hi = t == QUANT_Q6_K ? 208 : rb / (n / bs);

					for (size_t k = lo; k < hi; k++)
						blk[k] = (uint8_t)(unif() * 256);
				}
			}
			for (size_t b = 0; b < nbmax; b++) {
				for (size_t k = 0; k < n; k++)
					f[k] = gauss() * (b % 2 ? 3.f : 0.01f);
				dot_quantize_act(t, f, X + b * xb, n);
			}
			for (size_t nb = 1; nb <= nbmax; nb += nb < 12 ? 1 : 7)
				for (size_t ri = 0; ri < sizeof ranges / sizeof *ranges; ri++) {
					size_t r0 = ranges[ri][0], r1 = ranges[ri][1];

					memset(y2, 0, rows * nbmax * sizeof *y2);
					memset(y5, 0, rows * nbmax * sizeof *y5);
					dot_set_isa(DOT_AVX2);
					dot_rows(t, W, r0, r1, n, X, xb, nb, y2, rows);
					dot_set_isa(isa);
					dot_rows(t, W, r0, r1, n, X, xb, nb, y5, rows);
					bad += memcmp(y2, y5, rows * nbmax * sizeof *y2) != 0;
					cases++;
				}
			free(W), free(X), free(f), free(y2), free(y5);
		}
		ok(!bad, "%s: %s = AVX2 bit for bit (%d of %zu cases differ)", quant_type_name(t),
		   dot_isa_name(isa), bad, cases);
	}
	dot_set_isa(-1);
}

extern void cblas_sgemm(void) __attribute__((weak));

int
main(void)
{
	int max = dot_isa_max();

	printf("# kernel paths: %s%s; OpenBLAS: %s\n", max >= DOT_AVX2 ? "scalar, AVX2" : "scalar only",
	       max >= DOT_AVX512 ? ", AVX-512" : "",
	       cblas_sgemm ? "linked (F32/F16/BF16 with nb 33 go through sgemm if lib/dot was built with it)" : "not linked");
	ok(dot_isa_parse("scalar") == DOT_SCALAR && dot_isa_parse("avx2") == DOT_AVX2
	   && dot_isa_parse("avx512") == DOT_AVX512 && dot_isa_parse("AVX2") == -1
	   && dot_isa_parse("") == -1 && dot_isa_parse(NULL) == -1,
	   "dot_isa_parse: scalar, avx2, avx512; -1 otherwise");
	ok(dot_set_isa(max + 1) == -1 && dot_set_isa(-2) == -1 && dot_isa() == max,
	   "dot_set_isa refuses a path the CPU lacks and keeps the one in use");
	dot_force_scalar(1);
	ok(!dot_simd() && dot_isa() == DOT_SCALAR, "dot_force_scalar(1) turns the SIMD kernels off");
	dot_force_scalar(0);
	ok(dot_isa() == max, "dot_force_scalar(0) restores the best path");
	dot_force_scalar(1);
	test_formats();
	test_api();
	for (int isa = DOT_AVX2; isa <= max; isa++) {
		int simd = 1;

		printf("# the %s path\n", dot_isa_name(isa));
		cur_isa = isa;
		dot_set_isa(isa);
		test_formats();
		test_quant_same(simd);
		test_types(simd);
		test_extremes(simd);
		test_invariance(simd);
		if (isa > DOT_AVX2)
			test_same_bits(isa);
	}
	if (max == DOT_SCALAR) {
		cur_isa = DOT_SCALAR;
		test_types(0);
		test_extremes(0);
		test_invariance(0);
	}
	return done_testing();
}
