/* quant unit test: F16/BF16 conversions on every 16-bit pattern and on the
 * rounding edges (ties, max, overflow, subnormals, -0, NaN); the simple
 * block types byte for byte against gguf.quants and llama.cpp's own
 * quantizer (t/quant/, made by t/quant/mkfixtures.py); round-trip error of
 * each type within its stated bound on random data; zero blocks, outliers,
 * NaN and inf; the type table and the error paths of the API. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "tap.h"

#define ROW 256

static uint32_t
f2u(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	return u;
}

static float
u2f(uint32_t u)
{
	float f;

	memcpy(&f, &u, 4);
	return f;
}

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

static void *
slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	void *p = NULL;
	long len;

	*n = 0;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0
	    && (p = malloc((size_t)len)) && fread(p, 1, (size_t)len, f) == (size_t)len)
		*n = (size_t)len;
	else {
		free(p);
		p = NULL;
	}
	fclose(f);
	return p;
}

/* ------------------------------------------------------------ f16, bf16 */

/* the value of an f16 pattern, computed another way */
static double
f16_value(uint16_t h)
{
	int e = h >> 10 & 0x1f, m = h & 0x3ff;
	double v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);

	if (e == 0x1f)
		v = m ? NAN : INFINITY;
	return h & 0x8000 ? -v : v;
}

static void
test_f16(void)
{
	int bad_val = 0, bad_rt = 0, bad_nan = 0, bad_tie = 0, bad_hw = 0;

	for (uint32_t i = 0; i < 65536; i++) {
		uint16_t h = (uint16_t)i;
		float f = quant_f16_to_f32(h);
		double want = f16_value(h);
		int isnan_h = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);

		if (isnan_h) {
			uint16_t back = quant_f32_to_f16(f);
			if (!isnan(f) || (back & 0x7c00) != 0x7c00 || !(back & 0x200)
			    || (back & 0x8000) != (h & 0x8000))
				bad_nan++;
			/* quiet NaNs come back unchanged; signalling ones quieted */
			if ((h & 0x200) && back != h)
				bad_nan++;
			continue;
		}
		if ((double)f != want || !signbit(f) != !signbit(want))
			bad_val++;
		if (quant_f32_to_f16(f) != h)
			bad_rt++;
		/* midpoint to the next pattern up (same sign, finite, not max) */
		if ((h & 0x7fff) < 0x7bff) {
			uint32_t a = f2u(f), b = f2u(quant_f16_to_f32((uint16_t)(h + 1)));
			float mid = (float)((f16_value(h) + f16_value((uint16_t)(h + 1))) / 2);
			uint16_t even = (h & 1) ? (uint16_t)(h + 1) : h;
			(void)a; (void)b;
			if (quant_f32_to_f16(mid) != even)
				bad_tie++;
			if (quant_f32_to_f16(nextafterf(mid, 0)) != h && (h & 0x7fff))
				bad_tie++;
			if (quant_f32_to_f16(nextafterf(mid, signbit(f) ? -INFINITY : INFINITY)) != h + 1)
				bad_tie++;
		}
	}
	ok(!bad_val, "f16 -> f32 gives the exact value of all 63488 non-NaN patterns (%d wrong)", bad_val);
	ok(!bad_rt, "f16 -> f32 -> f16 is the identity on non-NaN patterns (%d wrong)", bad_rt);
	ok(!bad_nan, "f16 NaNs stay NaN with their sign; quiet ones come back unchanged (%d wrong)", bad_nan);
	ok(!bad_tie, "f32 -> f16 at every midpoint: ties to even, one ulp off goes the near way (%d wrong)", bad_tie);

	ok(quant_f32_to_f16(65504.0f) == 0x7bff && quant_f32_to_f16(-65504.0f) == 0xfbff, "f16 max");
	ok(quant_f32_to_f16(65519.99f) == 0x7bff, "65519.99 rounds down to max");
	ok(quant_f32_to_f16(65520.0f) == 0x7c00 && quant_f32_to_f16(-65520.0f) == 0xfc00,
	   "65520 (the tie past max) overflows to inf");
	ok(quant_f32_to_f16(1e10f) == 0x7c00 && quant_f32_to_f16(3.4e38f) == 0x7c00, "big values overflow to inf");
	ok(quant_f32_to_f16(INFINITY) == 0x7c00 && quant_f32_to_f16(-INFINITY) == 0xfc00, "inf stays inf");
	ok(quant_f32_to_f16(-0.0f) == 0x8000 && quant_f32_to_f16(0.0f) == 0, "-0 and +0 kept");
	ok(quant_f32_to_f16(0x1p-24f) == 1 && quant_f32_to_f16(0x1p-25f) == 0
	   && quant_f32_to_f16(0x1.8p-24f) == 2 && quant_f32_to_f16(0x1.000002p-25f) == 1
	   && quant_f32_to_f16(-0x1p-26f) == 0x8000, "subnormal rounding (2^-25 tie to 0, 1.5*2^-24 tie to 2)");
	ok(quant_f32_to_f16(0x1p-14f) == 0x0400 && quant_f32_to_f16(0x1.ffcp-15f) == 0x0400
	   && quant_f32_to_f16(0x1.ff8p-15f) == 0x03ff && quant_f32_to_f16(0x1.ffbfep-15f) == 0x03ff, "largest subnormal rounding up into the normals");
	ok(quant_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00 && quant_f32_to_f16(1.0f + 0x3p-11f) == 0x3c02,
	   "ties to even at 1");
	{
		uint16_t q = quant_f32_to_f16(u2f(0x7f800001)), n = quant_f32_to_f16(u2f(0xffc00000));
		ok((q & 0x7e00) == 0x7e00 && (n & 0xfe00) == 0xfe00,
		   "signalling NaN with a low payload stays NaN (not inf); -NaN keeps its sign");
	}
	{
		/* the row conversion (F16C where the CPU has it) against the
		 * scalar one: random patterns, then the special values */
		static float src[1 << 16];
		static uint16_t dst[1 << 16];
		static const uint32_t special[] = {0x7f800001, 0xff800001, 0x7fc00000, 0x7fffffff, 0xffc00123,
			0x7f800000, 0xff800000, 0x477ff000, 0x477fefff, 0x38800000, 0x387fffff, 0x33000000,
			0x33000001, 0x80000000, 0x00000001, 0x3f801000, 0x3f803000};
		int bad = 0;

		for (int round = 0; round < 16; round++) {
			size_t n = (1 << 16) - (size_t)round;   /* tails of 0..7 */

			for (size_t i = 0; i < n; i++)
				src[i] = u2f(round == 0 && i < sizeof special / sizeof *special ? special[i]
					     : (uint32_t)(unif() * 4294967296.0));
			quant_f32_to_f16_row(src, dst, n);
			for (size_t i = 0; i < n; i++)
				bad += dst[i] != quant_f32_to_f16(src[i]);
		}
		ok(!bad, "quant_f32_to_f16_row = quant_f32_to_f16 on a million patterns and the specials (%d differ)", bad);
	}
#ifdef __FLT16_MAX__
	/* the compiler's own conversion (libgcc/compiler-rt, round to nearest
	 * even) as a second opinion on a million random f32 patterns */
	for (int i = 0; i < 1000000; i++) {
		uint32_t u = (uint32_t)(unif() * 4294967296.0);
		float f = u2f(u);
		_Float16 h = (_Float16)f;
		uint16_t hb;

		if (isnan(f))
			continue;
		memcpy(&hb, &h, 2);
		if (quant_f32_to_f16(f) != hb)
			bad_hw++;
		if (i < 65536) {
			uint16_t p = (uint16_t)i;
			memcpy(&h, &p, 2);
			if (!((p & 0x7c00) == 0x7c00 && (p & 0x3ff)) && f2u((float)h) != f2u(quant_f16_to_f32(p)))
				bad_hw++;
		}
	}
	ok(!bad_hw, "agrees with the compiler's _Float16 conversions (%d differ)", bad_hw);
#endif
}

static void
test_bf16(void)
{
	int bad_rt = 0, bad_nan = 0;

	for (uint32_t i = 0; i < 65536; i++) {
		uint16_t h = (uint16_t)i;
		float f = quant_bf16_to_f32(h);
		uint16_t back = quant_f32_to_bf16(f);

		if (f2u(f) != (uint32_t)h << 16)
			bad_rt++;
		if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) {
			if (!isnan(quant_bf16_to_f32(back)) || !(back & 0x40) || (back & 0x8000) != (h & 0x8000))
				bad_nan++;
		} else if (back != h)
			bad_rt++;
	}
	ok(!bad_rt, "bf16 -> f32 -> bf16 is the identity on non-NaN patterns (%d wrong)", bad_rt);
	ok(!bad_nan, "bf16 NaNs stay NaN, quieted, sign kept (%d wrong)", bad_nan);
	ok(quant_f32_to_bf16(u2f(0x3f808000)) == 0x3f80 && quant_f32_to_bf16(u2f(0x3f818000)) == 0x3f82
	   && quant_f32_to_bf16(u2f(0x3f808001)) == 0x3f81 && quant_f32_to_bf16(u2f(0x3f807fff)) == 0x3f80,
	   "bf16 rounds to nearest even");
	ok(quant_f32_to_bf16(u2f(0x7f7fffff)) == 0x7f80, "bf16: FLT_MAX rounds to inf (ggml does the same)");
	ok(quant_f32_to_bf16(u2f(0x00000001)) == 0 && quant_f32_to_bf16(u2f(0x00008000)) == 0
	   && quant_f32_to_bf16(u2f(0x00018000)) == 0x0002, "bf16 keeps subnormals (no flush), rounding them");
	ok(quant_f32_to_bf16(u2f(0x7f800001)) == 0x7fc0 && quant_f32_to_bf16(-0.0f) == 0x8000,
	   "bf16: signalling NaN becomes quiet NaN, -0 kept");
}

/* ------------------------------------------------------------ block types */

struct tinfo {
	uint32_t type;
	const char *name;       /* fixture suffix */
	size_t bytes;           /* per block of 32 */
	int off;                /* sign: 1 for the d*(q-off) types, 0 for d*q+m */
	int codes;              /* largest |code| used in the bound */
};

static const struct tinfo blocks[] = {
	{ QUANT_Q8_0, "q8_0", 34, 1, 127 },
	{ QUANT_Q4_0, "q4_0", 18, 1, 8 },
	{ QUANT_Q4_1, "q4_1", 20, 0, 15 },
	{ QUANT_Q5_0, "q5_0", 22, 1, 16 },
	{ QUANT_Q5_1, "q5_1", 24, 0, 31 },
	{ QUANT_Q8_1, "q8_1", 36, 1, 127 },
};

static float
h2f(const uint8_t *p)
{
	return quant_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* Checks the error of one block (32 values x, reconstruction r) against the
 * type's bound; returns the worst ratio error/bound (<= 1 passes).
 * Bounds, with the scale d computed in f32 as ggml does and d16, m16 the
 * f16 values stored:
 *   Q8_0, Q8_1: d = amax/127:          |x-r| <= d/2 + 127|d-d16|
 *   Q4_0: |d| = amax/8 (codes -8..7):  |x-r| <= |d|/2 + 8|d-d16|, except the
 *         value of sign opposite to the max at +amax (code 16 clamped to 15):
 *         |d| + 8|d-d16|
 *   Q5_0: |d| = amax/16: the same with 16 and 31
 *   Q4_1: d = (max-min)/15:            |x-r| <= d/2 + 15|d-d16| + |min-m16|
 *   Q5_1: d = (max-min)/31:            |x-r| <= d/2 + 31|d-d16| + |min-m16|
 * plus 4 f32 ulps of the block's largest magnitude for the arithmetic. */
static double
block_err(const struct tinfo *t, const float *x, const float *r, const uint8_t *q)
{
	float amax = 0, max = 0, mn = x[0], mx = x[0];
	double d, d16 = h2f(q), m16 = 0, worst = 0, slack;

	for (int j = 0; j < 32; j++) {
		if (amax < fabsf(x[j]))
			amax = fabsf(x[j]), max = x[j];
		mn = x[j] < mn ? x[j] : mn;
		mx = x[j] > mx ? x[j] : mx;
	}
	if (t->type == QUANT_Q8_0 || t->type == QUANT_Q8_1)
		d = amax / 127.0f;
	else if (t->type == QUANT_Q4_0)
		d = fabsf(max / -8.0f);
	else if (t->type == QUANT_Q5_0)
		d = fabsf(max / -16.0f);
	else {
		d = (mx - mn) / (float)t->codes;
		m16 = h2f(q + 2);
	}
	slack = 4 * ldexp(1, ilogb(amax > 0 ? amax : 1) - 23);
	for (int j = 0; j < 32; j++) {
		double b = d / 2 + t->codes * fabs(fabs(d) - fabs(d16)) + slack;
		double e = fabs((double)x[j] - r[j]);

		if (t->off == 0)
			b += fabs(mn - m16);
		else if ((t->type == QUANT_Q4_0 || t->type == QUANT_Q5_0) && x[j] * max < 0
		    && fabsf(x[j]) > amax * (1 - 1.0f / t->codes / 2))
			b += d / 2;     /* the clamped top code */
		if (e / b > worst)
			worst = e / b;
	}
	return worst;
}

/* round trip of n rows of ROW through t; returns the worst ratio and fills
 * rmse and the worst absolute error */
static double
round_trip(const struct tinfo *t, const float *x, size_t rows, double *rmse, double *maxabs)
{
	size_t nb = ROW / 32;
	uint8_t *q = malloc(t->bytes * nb);
	float r[ROW];
	double worst = 0, ss = 0;

	*maxabs = 0;
	*rmse = 0;
	for (size_t i = 0; i < rows; i++) {
		const float *xi = x + i * ROW;

		if (quant_quantize_row(t->type, xi, q, ROW) != 0) {
			free(q);
			return 1e9;
		}
		quant_dequantize_row(t->type, q, r, ROW);
		for (size_t b = 0; b < nb; b++) {
			double w = block_err(t, xi + b * 32, r + b * 32, q + b * t->bytes);
			if (w > worst)
				worst = w;
		}
		for (int j = 0; j < ROW; j++) {
			double e = fabs((double)xi[j] - r[j]);
			ss += e * e;
			if (e > *maxabs)
				*maxabs = e;
		}
	}
	free(q);
	*rmse = sqrt(ss / (double)(rows * ROW));
	return worst;
}

static void
test_round_trip(void)
{
	enum { ROWS = 64 };
	static float x[ROWS * ROW];
	static const char *dist[] = { "normal(0,1)", "uniform(-1,1)", "normal(0,0.02) weights",
	                              "laplace(0.05) + outliers" };

	for (int k = 0; k < 4; k++) {
		for (int i = 0; i < ROWS * ROW; i++) {
			double u;
			switch (k) {
			case 0: x[i] = gauss(); break;
			case 1: x[i] = (float)(2 * unif() - 1); break;
			case 2: x[i] = 0.02f * gauss(); break;
			default:
				u = unif() - 0.5;
				x[i] = (float)(-0.05 * (u < 0 ? -1 : 1) * log(1 - 2 * fabs(u)));
				if (unif() < 1.0 / 64)
					x[i] *= 100;
			}
		}
		for (size_t t = 0; t < sizeof blocks / sizeof blocks[0]; t++) {
			double rmse, maxabs, w = round_trip(&blocks[t], x, ROWS, &rmse, &maxabs);
			ok(w <= 1, "%s %s: round trip within bound (worst %.3f of it; rmse %.3g, max %.3g)",
			   quant_type_name(blocks[t].type), dist[k], w, rmse, maxabs);
		}
		/* F16: relative 2^-11 (normals), 2^-25 absolute (subnormals);
		 * BF16: relative 2^-8 */
		{
			int bad16 = 0, badb = 0;
			uint8_t buf[ROW * 2];
			float r[ROW];

			for (int i = 0; i < ROWS; i++) {
				quant_quantize_row(QUANT_F16, x + i * ROW, buf, ROW);
				quant_dequantize_row(QUANT_F16, buf, r, ROW);
				for (int j = 0; j < ROW; j++) {
					float v = x[i * ROW + j];
					if (fabs((double)v - r[j]) > fmax(fabs(v) * 0x1p-11, 0x1p-25))
						bad16++;
				}
				quant_quantize_row(QUANT_BF16, x + i * ROW, buf, ROW);
				quant_dequantize_row(QUANT_BF16, buf, r, ROW);
				for (int j = 0; j < ROW; j++) {
					float v = x[i * ROW + j];
					if (fabs((double)v - r[j]) > fabs(v) * 0x1p-8)
						badb++;
				}
			}
			ok(!bad16 && !badb, "F16 (rel 2^-11) and BF16 (rel 2^-8) %s: within bound (%d, %d over)",
			   dist[k], bad16, badb);
		}
	}
}

static void
test_edges(void)
{
	float x[32], r[32];
	uint8_t q[64];
	int bad;

	/* all-zero blocks: scale 0, everything back to exactly 0 */
	memset(x, 0, sizeof x);
	bad = 0;
	for (size_t t = 0; t < sizeof blocks / sizeof blocks[0]; t++) {
		memset(r, 0xff, sizeof r);
		if (quant_quantize_row(blocks[t].type, x, q, 32) != 0)
			bad++;
		quant_dequantize_row(blocks[t].type, q, r, 32);
		for (int j = 0; j < 32; j++)
			if (r[j] != 0)
				bad++;
		if (q[0] || (q[1] & 0x7f))
			bad++;
	}
	ok(!bad, "all-zero blocks: d = +-0 stored, zeros back (Q4_0/Q5_0: d = -0 and -0 back, as ggml gives)");

	/* a constant block: Q4_1/Q5_1 store it as m exactly (d = 0) */
	for (int j = 0; j < 32; j++)
		x[j] = 0.75f;
	quant_quantize_row(QUANT_Q4_1, x, q, 32);
	quant_dequantize_row(QUANT_Q4_1, q, r, 32);
	bad = 0;
	for (int j = 0; j < 32; j++)
		bad += r[j] != 0.75f;
	ok(!bad && h2f(q) == 0, "constant block through Q4_1 comes back exactly");

	/* one huge value among small ones: the huge one is kept, the small
	 * ones round to 0 (within d/2) */
	for (int j = 0; j < 32; j++)
		x[j] = 0.001f * (float)(j - 16);
	x[7] = -5000.0f;
	bad = 0;
	for (size_t t = 0; t < sizeof blocks / sizeof blocks[0]; t++) {
		quant_quantize_row(blocks[t].type, x, q, 32);
		quant_dequantize_row(blocks[t].type, q, r, 32);
		if (block_err(&blocks[t], x, r, q) > 1 || fabsf(r[7] + 5000.0f) > 5000.0f / 256)
			bad++;
	}
	ok(!bad, "one huge value: within bound, the huge value kept");

	/* values whose scale overflows f16: d is stored as inf (as ggml
	 * does); no crash, and Q8_0 gives back inf/NaN, never a finite lie */
	for (int j = 0; j < 32; j++)
		x[j] = 1e7f * (float)(j - 16);
	ok(quant_quantize_row(QUANT_Q8_0, x, q, 32) == 0 && q[0] == 0x00 && q[1] == 0x7c,
	   "Q8_0 scale past the f16 range is stored as inf");
	quant_dequantize_row(QUANT_Q8_0, q, r, 32);
	ok(isinf(r[0]) && isnan(r[16]), "... and dequantizes to inf (and NaN for code 0), as ggml's does");

	/* NaN and inf inputs. ggml on x86 (and quant.c, see its top comment):
	 * in Q4_0/Q4_1/Q5_* a NaN never becomes the max or min and its code
	 * comes from a cast that gives 0; in Q8_0, ggml's MAX(amax, |v|) lets a
	 * NaN reset the running max, so values before it may wrap (their bytes
	 * are checked against ggml's in the hostile fixture); an inf makes the
	 * scale inf and its whole block NaN. A NaN first in its block: */
	for (int j = 0; j < 32; j++)
		x[j] = (float)(j - 16) / 16;
	x[0] = NAN;
	bad = 0;
	quant_quantize_row(QUANT_Q8_0, x, q, 32);
	quant_dequantize_row(QUANT_Q8_0, q, r, 32);
	bad += q[2] != 0 || r[0] != 0;
	for (int j = 1; j < 32; j++)
		bad += fabsf(r[j] - x[j]) > 0.5f / 127 * 1.01f;
	quant_quantize_row(QUANT_Q4_0, x, q, 32);
	quant_dequantize_row(QUANT_Q4_0, q, r, 32);
	bad += (q[2] & 0x0f) != 0;     /* NaN -> code 0 -> -8d */
	for (int j = 1; j < 32; j++)
		bad += fabsf(r[j] - x[j]) > 15.0f / 16 / 8 * 1.01f;
	quant_quantize_row(QUANT_Q4_1, x, q, 32);
	quant_dequantize_row(QUANT_Q4_1, q, r, 32);
	bad += (q[4] & 0x0f) != 0 || r[0] != x[1];       /* code 0 -> the min */
	for (int j = 1; j < 32; j++)
		bad += fabsf(r[j] - x[j]) > 30.0f / 16 / 15 / 2 * 1.01f;
	ok(!bad, "a NaN input: Q8_0 gives 0 for it, Q4_0 code 0, Q4_1 the block's min; the rest within bound");
	x[5] = INFINITY;
	quant_quantize_row(QUANT_Q8_0, x, q, 32);
	quant_dequantize_row(QUANT_Q8_0, q, r, 32);
	bad = 0;
	for (int j = 0; j < 32; j++)
		bad += !isnan(r[j]);
	ok(!bad && q[1] == 0x7c, "an inf input: Q8_0 scale inf, the whole block NaN (ggml's result)");
	for (size_t t = 0; t < sizeof blocks / sizeof blocks[0]; t++) {
		x[3] = -INFINITY;
		x[9] = NAN;
		ok(quant_quantize_row(blocks[t].type, x, q, 32) == 0,
		   "%s: NaN and +-inf in one block: no crash", quant_type_name(blocks[t].type));
	}

	/* Q8_1's sum: s = d * sum of the codes */
	for (int j = 0; j < 32; j++)
		x[j] = (float)j / 31;
	quant_quantize_row(QUANT_Q8_1, x, q, 32);
	{
		int sum = 0;
		for (int j = 0; j < 32; j++)
			sum += (int8_t)q[4 + j];
		ok(h2f(q + 2) == quant_f16_to_f32(quant_f32_to_f16((float)sum * (1.0f / 127))),
		   "Q8_1 stores s = d * sum(codes) (sum %d)", sum);
	}
}

/* ------------------------------------------------------------ fixtures */

static void
test_fixtures(void)
{
	static const struct { uint32_t type; const char *name; } all[] = {
		{ QUANT_F16, "f16" }, { QUANT_BF16, "bf16" }, { QUANT_Q8_0, "q8_0" },
		{ QUANT_Q4_0, "q4_0" }, { QUANT_Q4_1, "q4_1" }, { QUANT_Q5_0, "q5_0" },
		{ QUANT_Q5_1, "q5_1" },
	};
	size_t nx, nrows;
	float *x = slurp("t/quant/rows.f32", &nx);

	if (!ok(x && nx % (ROW * 4) == 0, "t/quant/rows.f32 read (%zu bytes)", nx))
		return;
	nrows = nx / (ROW * 4);
	for (size_t t = 0; t < sizeof all / sizeof all[0]; t++) {
		char path[64];
		size_t nq, rb = quant_row_bytes(all[t].type, ROW), diff_rows = 0, first = (size_t)-1;
		uint8_t *want, *got;

		snprintf(path, sizeof path, "t/quant/rows.%s", all[t].name);
		want = slurp(path, &nq);
		got = malloc(rb);
		if (!ok(want && nq == nrows * rb, "%s read", path)) {
			free(want);
			free(got);
			continue;
		}
		for (size_t i = 0; i < nrows; i++) {
			quant_quantize_row(all[t].type, x + i * ROW, got, ROW);
			if (memcmp(got, want + i * rb, rb)) {
				diff_rows++;
				if (first == (size_t)-1)
					first = i;
			}
		}
		ok(!diff_rows, "%s: %zu rows byte-identical to gguf.quants (%zu differ, first %zd)",
		   quant_type_name(all[t].type), nrows, diff_rows, (ssize_t)first);
		if (all[t].name[0] == 'q') {
			size_t nd, bad = 0;
			float *dq, r[ROW];

			snprintf(path, sizeof path, "t/quant/rows.%s.f32", all[t].name);
			dq = slurp(path, &nd);
			if (ok(dq && nd == nx, "%s read", path)) {
				for (size_t i = 0; i < nrows; i++) {
					quant_dequantize_row(all[t].type, want + i * rb, r, ROW);
					for (int j = 0; j < ROW; j++)
						if (f2u(r[j]) != f2u(dq[i * ROW + j]) && !(isnan(r[j]) && isnan(dq[i * ROW + j])))
							bad++;
				}
				ok(!bad, "%s: dequantized bit for bit as gguf.quants does (%zu differ)",
				   quant_type_name(all[t].type), bad);
			}
			free(dq);
		}
		free(want);
		free(got);
	}
	free(x);

	/* NaN, inf and overflowing scales: the bytes ggml's own reference
	 * quantizers gave (x86, llama_cpp's libggml-base) */
	x = slurp("t/quant/hostile.f32", &nx);
	if (!ok(x && nx % (ROW * 4) == 0, "t/quant/hostile.f32 read"))
		return;
	nrows = nx / (ROW * 4);
	for (size_t t = 0; t < sizeof all / sizeof all[0]; t++) {
		char path[64];
		size_t nq, rb = quant_row_bytes(all[t].type, ROW), diff = 0;
		uint8_t *want, *got = malloc(rb);

		snprintf(path, sizeof path, "t/quant/hostile.%s", all[t].name);
		want = slurp(path, &nq);
		if (ok(want && nq == nrows * rb, "%s read", path)) {
			for (size_t i = 0; i < nrows; i++) {
				quant_quantize_row(all[t].type, x + i * ROW, got, ROW);
				diff += memcmp(got, want + i * rb, rb) != 0;
			}
			ok(!diff, "%s: NaN/inf rows byte-identical to ggml's reference quantizer (%zu of %zu differ)",
			   quant_type_name(all[t].type), diff, nrows);
		}
		free(want);
		free(got);
	}
	free(x);

	/* llama.cpp's own quantizer's output for one tensor */
	x = slurp("t/quant/llamacpp-src.f32", &nx);
	if (!ok(x && nx % (ROW * 4) == 0, "t/quant/llamacpp-src.f32 read"))
		return;
	nrows = nx / (ROW * 4);
	for (size_t t = 2; t < 5; t++) {
		char path[64];
		size_t nq, rb = quant_row_bytes(all[t].type, ROW), diff = 0;
		uint8_t *want, *got = malloc(rb);

		snprintf(path, sizeof path, "t/quant/llamacpp-%s.bin", all[t].name);
		want = slurp(path, &nq);
		if (ok(want && nq == nrows * rb, "%s read", path)) {
			for (size_t i = 0; i < nrows; i++) {
				quant_quantize_row(all[t].type, x + i * ROW, got, ROW);
				diff += memcmp(got, want + i * rb, rb) != 0;
			}
			ok(!diff, "%s: %zu rows byte-identical to llama.cpp's llama_model_quantize (%zu differ)",
			   quant_type_name(all[t].type), nrows, diff);
		}
		free(want);
		free(got);
	}
	free(x);
}

/* ------------------------------------------------------------ API */

static void
test_api(void)
{
	float x[64] = { 0 }, r[64];
	uint8_t q[256];

	ok(quant_row_bytes(QUANT_Q4_0, 32) == 18 && quant_row_bytes(QUANT_Q4_0, 576) == 18 * 18
	   && quant_row_bytes(QUANT_Q4_0, 33) == 0 && quant_row_bytes(QUANT_F32, 7) == 28
	   && quant_row_bytes(QUANT_F16, 7) == 14 && quant_row_bytes(QUANT_BF16, 3) == 6,
	   "quant_row_bytes: simple types, and 0 for a partial block");
	ok(quant_row_bytes(QUANT_Q4_K, 256) == 144 && quant_row_bytes(QUANT_Q6_K, 512) == 420
	   && quant_row_bytes(QUANT_Q4_K, 576) == 0 && quant_row_bytes(QUANT_Q8_K, 256) == 292,
	   "quant_row_bytes: K types (576 does not fit)");
	ok(quant_row_bytes(4, 32) == 0 && quant_row_bytes(99, 32) == 0 && quant_row_bytes(1000000, 32) == 0,
	   "quant_row_bytes: unknown types give 0");
	ok(quant_row_bytes(QUANT_Q8_0, (size_t)-1 - 31) == 0 || quant_row_bytes(QUANT_Q8_0, (size_t)-1 - 31) > 0,
	   "quant_row_bytes: huge n does not trap");
	ok(quant_block_size(QUANT_Q4_K) == 256 && quant_block_size(QUANT_Q5_1) == 32
	   && quant_block_size(QUANT_F32) == 1 && quant_block_size(5) == 0, "quant_block_size");
	ok(quant_type_from_name("q4_k") == QUANT_Q4_K && quant_type_from_name("Q4_K") == QUANT_Q4_K
	   && quant_type_from_name("q8_0") == QUANT_Q8_0 && quant_type_from_name("F16") == QUANT_F16
	   && quant_type_from_name("bf16") == QUANT_BF16 && quant_type_from_name("f32") == QUANT_F32
	   && quant_type_from_name("q6_K") == QUANT_Q6_K && quant_type_from_name("Q5_1") == QUANT_Q5_1,
	   "quant_type_from_name, any case");
	ok(quant_type_from_name("q4") == -1 && quant_type_from_name("") == -1
	   && quant_type_from_name("q4_k_m") == -1 && quant_type_from_name("unknown") == -1,
	   "quant_type_from_name: -1 for unknown names");
	ok(!strcmp(quant_type_name(QUANT_Q4_K), "Q4_K") && !strcmp(quant_type_name(QUANT_BF16), "BF16")
	   && !strcmp(quant_type_name(77), "unknown"), "quant_type_name");
	ok(quant_supported(QUANT_F32) && quant_supported(QUANT_F16) && quant_supported(QUANT_BF16)
	   && quant_supported(QUANT_Q4_0) && quant_supported(QUANT_Q4_1) && quant_supported(QUANT_Q5_0)
	   && quant_supported(QUANT_Q5_1) && quant_supported(QUANT_Q8_0) && quant_supported(QUANT_Q4_K)
	   && quant_supported(QUANT_Q6_K), "quant_supported: the issue's ten types");
	ok(!quant_supported(10) && !quant_supported(QUANT_Q8_K) && !quant_supported(4) && !quant_supported(1u << 31),
	   "quant_supported: not Q2_K, Q8_K, the removed 4, nonsense");
	ok(quant_quantize_row(QUANT_Q4_0, x, q, 48) == -1 && quant_quantize_row(QUANT_Q4_K, x, q, 64) == -1
	   && quant_quantize_row(10, x, q, 256) == -1, "quant_quantize_row: -1 for a partial block or unsupported type");
	memset(r, 0x7f, sizeof r);
	quant_dequantize_row(10, q, r, 64);
	ok(r[0] == 0 && r[63] == 0, "quant_dequantize_row: unsupported type zero-fills");
	memset(r, 0x7f, sizeof r);
	quant_dequantize_row(QUANT_Q8_0, q, r, 40);
	ok(r[0] == 0 && r[39] == 0, "quant_dequantize_row: a partial block zero-fills");
	for (int j = 0; j < 64; j++)
		x[j] = (float)j - 31.5f;
	ok(quant_quantize_row(QUANT_F32, x, q, 64) == 0 && !memcmp(q, x, 256), "F32 rows are copied");
	quant_dequantize_row(QUANT_F32, q, r, 64);
	ok(!memcmp(r, x, 256), "... both ways");
}

int
main(void)
{
	test_f16();
	test_bf16();
	test_round_trip();
	test_edges();
	test_fixtures();
	test_api();
	return done_testing();
}
