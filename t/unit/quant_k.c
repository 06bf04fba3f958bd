/* quant_k unit test: Q4_K and Q6_K (lib/quant_k.c). Against llama.cpp:
 * our quantizer gives byte-identical blocks to llama.cpp's for the rows of
 * t/quant_k/src.f32 (made by t/quant_k/mkfixtures.py: normal, uniform,
 * heavy-tailed, outlier, zero, constant, one-signed, tiny, subnormal, large,
 * mixed-scale, sparse and on-grid rows), and our dequantizer gives exactly
 * what gguf.quants.dequantize gives for llama.cpp's blocks (sha256 of the
 * floats). Then round-trip error bounds on seeded random rows, zero,
 * constant and outlier rows, NaN/inf (no crash, damage stays in its
 * super-block), bad lengths, and the dispatch through quant.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quant.h"
#include "sha256.h"
#include "tap.h"

#define N 512           /* row length of the fixtures: two super-blocks */
#define ROWS 128
#define Q4K 144         /* bytes per super-block */
#define Q6K 210

static void *
slurp(const char *path, size_t want)
{
	FILE *f = fopen(path, "rb");
	void *p = malloc(want + 1);
	size_t got = 0;

	if (f) {
		got = fread(p, 1, want + 1, f);
		fclose(f);
	}
	if (got != want) {
		printf("# %s: %zu bytes, want %zu\n", path, got, want);
		free(p);
		return NULL;
	}
	return p;
}

/* ------------------------------------------------------- seeded random */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static double
uniform(void)           /* (0, 1), splitmix64 */
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	z ^= z >> 31;
	return ((double)(z >> 11) + 0.5) / 9007199254740992.0;
}

static double
normal(void)
{
	return sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform());
}

/* Student's t with 3 degrees of freedom: heavy tails, finite variance. */
static double
student3(void)
{
	double z = normal(), c = 0;

	for (int i = 0; i < 3; i++) {
		double g = normal();

		c += g * g;
	}
	return z / sqrt(c / 3);
}

/* ------------------------------------------------------------- helpers */

typedef void (*deq_fn)(const void *, float *, size_t);
typedef int (*q_fn)(const float *, void *, size_t);

static const struct ktype {
	const char *name;
	uint32_t type;
	size_t bytes;
	q_fn quantize;
	deq_fn dequantize;
	const char *fixture;
} ktypes[] = {
	{"Q4_K", QUANT_Q4_K, Q4K, quant_q4_k_quantize, quant_q4_k_dequantize, "t/quant_k/q4_k.bin"},
	{"Q6_K", QUANT_Q6_K, Q6K, quant_q6_k_quantize, quant_q6_k_dequantize, "t/quant_k/q6_k.bin"},
};

/* RMSE of y against x, and the standard deviation of x. */
static double
rmse(const float *x, const float *y, size_t n)
{
	double s = 0;

	for (size_t i = 0; i < n; i++)
		s += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
	return sqrt(s / (double)n);
}

static double
stddev(const float *x, size_t n)
{
	double m = 0, s = 0;

	for (size_t i = 0; i < n; i++)
		m += x[i];
	m /= (double)n;
	for (size_t i = 0; i < n; i++)
		s += (x[i] - m) * (x[i] - m);
	return sqrt(s / (double)n);
}

/* Quantizes and dequantizes n values; returns RMSE / std of x. */
static double
roundtrip(const struct ktype *k, const float *x, float *y, size_t n)
{
	unsigned char *q = malloc(n / 256 * k->bytes);

	if (k->quantize(x, q, n) != 0) {
		free(q);
		return INFINITY;
	}
	k->dequantize(q, y, n);
	free(q);
	return rmse(x, y, n) / stddev(x, n);
}

/* ----------------------------------------------------------- the tests */

static void
test_fixture(const struct ktype *k, const float *src, const char *sums)
{
	size_t nb = ROWS * N / 256, qbytes = nb * k->bytes, same = 0;
	unsigned char *theirs = slurp(k->fixture, qbytes), *ours = malloc(qbytes);
	float *dt = malloc(sizeof(float) * ROWS * N), *dn = malloc(sizeof(float) * ROWS * N);
	char hex[SHA256_HEXLEN + 1], line[160];
	unsigned char dg[SHA256_LEN];
	int rc = 0, found = 0;
	double rt, rn;

	if (!ok(theirs && src, "%s: fixture %s readable", k->name, k->fixture))
		goto out;
	for (size_t r = 0; r < ROWS; r++)
		rc |= quant_quantize_row(k->type, src + r * N, ours + r * (N / 256) * k->bytes, N);
	ok(rc == 0, "%s: quantize %d rows of %d", k->name, ROWS, N);
	for (size_t b = 0; b < nb; b++)
		same += !memcmp(ours + b * k->bytes, theirs + b * k->bytes, k->bytes);
	printf("# %s: %zu of %zu super-blocks byte-identical to llama.cpp's (%.1f%%)\n",
		k->name, same, nb, 100.0 * (double)same / (double)nb);
	ok(same == nb, "%s: every block byte-identical to llama.cpp's quantize_row_%s_ref",
		k->name, k->type == QUANT_Q4_K ? "q4_K" : "q6_K");

	k->dequantize(theirs, dt, (size_t)ROWS * N);
	k->dequantize(ours, dn, (size_t)ROWS * N);
	rt = rmse(src, dt, (size_t)ROWS * N);
	rn = rmse(src, dn, (size_t)ROWS * N);
	printf("# %s: RMSE vs source: llama.cpp %.9g, ours %.9g\n", k->name, rt, rn);
	ok(rn <= 1.01 * rt, "%s: our RMSE <= 1.01 x llama.cpp's", k->name);

	/* dequantize of llama.cpp's bytes == gguf.quants.dequantize */
	sha256(dt, sizeof(float) * ROWS * N, dg);
	sha256_hex(dg, hex);
	snprintf(line, sizeof line, "%s  %s", hex, strrchr(k->fixture, '/') + 1);
	found = strstr(sums, line) != NULL;
	ok(found, "%s: dequantize == gguf.quants.dequantize (sha256 %.16s...)", k->name, hex);
out:
	free(theirs);
	free(ours);
	free(dt);
	free(dn);
}

/* Relative RMSE bounds (RMSE / std of the row) on 64 random rows of 4096.
 * Measured (this code, whose blocks are llama.cpp's, so llama.cpp's own
 * error on the same rows): Q4_K normal 0.0712, uniform 0.0547, t(3)
 * 0.0926; Q6_K normal 0.0177, uniform 0.0135, t(3) 0.0255. The bounds
 * leave 15 to 20% margin. */
static void
test_random(const struct ktype *k)
{
	static const struct {
		const char *name;
		double q4, q6;
	} dists[] = {
		{"normal", 0.085, 0.021},
		{"uniform", 0.065, 0.016},
		{"t(3)", 0.11, 0.030},
	};
	size_t n = 64 * 4096;
	float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);

	for (int d = 0; d < 3; d++) {
		double rel, bound = k->type == QUANT_Q4_K ? dists[d].q4 : dists[d].q6;

		for (size_t i = 0; i < n; i++)
			x[i] = (float)(0.02 * (d == 0 ? normal() : d == 1 ? 2 * uniform() - 1 : student3()));
		rel = roundtrip(k, x, y, n);
		printf("# %s %s: RMSE/std %.4f\n", k->name, dists[d].name, rel);
		ok(rel <= bound, "%s: %s rows, RMSE/std %.4f <= %.3f", k->name, dists[d].name, rel, bound);
	}
	free(x);
	free(y);
}

static void
test_special(const struct ktype *k)
{
	static const float consts[] = {0.5f, -0.25f, 3.0f, -1e-3f, 1e-7f};
	float x[1024], y[1024];
	unsigned char q[4 * Q6K], q2[4 * Q6K], zero[4 * Q6K] = {0};
	double worst = 0, rel;
	int bad = 0;

	/* all zero: all-zero bytes, exact zeros back */
	memset(x, 0, sizeof x);
	k->quantize(x, q, 1024);
	ok(!memcmp(q, zero, 4 * k->bytes), "%s: zero row gives zero bytes", k->name);
	k->dequantize(q, y, 1024);
	for (int i = 0; i < 1024; i++)
		bad |= y[i] != 0;
	ok(!bad, "%s: zero row comes back exactly", k->name);

	/* constant rows: every value within 0.5% of the constant plus
	 * 1.25e-4 (both types store a constant through one f16 scale times
	 * at most 63 or 128*32; the absolute term covers scales that are f16
	 * subnormals, whose step is 2^-24: for Q6_K any |c| < 0.25). A constant too small for the f16 super-block scale (1e-7: the
	 * scale would be ~1e-9, below f16's smallest subnormal 6e-8)
	 * flushes to zero, as in llama.cpp. */
	for (size_t c = 0; c < sizeof consts / sizeof consts[0]; c++) {
		for (int i = 0; i < 1024; i++)
			x[i] = consts[c];
		k->quantize(x, q, 1024);
		k->dequantize(q, y, 1024);
		for (int i = 0; i < 1024; i++) {
			double e = fabs((double)y[i] - x[i]) / (0.005 * fabs(x[i]) + 1.25e-4);

			if (consts[c] == 1e-7f)
				bad |= y[i] != 0;
			else if (e > worst)
				worst = e;
		}
	}
	printf("# %s: constant rows, worst error %.3g of the bound\n", k->name, worst);
	ok(worst <= 1, "%s: constant rows within 0.5%% + 1.25e-4", k->name);
	ok(!bad, "%s: a 1e-7 constant row flushes to zero (f16 scale underflow)", k->name);

	/* one outlier (100 sigma) in a normal row: the outlier comes back
	 * within 1%, and the row's error stays bounded (the outlier's
	 * sub-block loses precision, the others keep theirs) */
	for (int i = 0; i < 1024; i++)
		x[i] = (float)(0.02 * normal());
	x[300] = 2.0f;
	rel = roundtrip(k, x, y, 1024);
	printf("# %s: outlier row, RMSE/std %.4f, outlier %.6g -> %.6g\n",
		k->name, rel, x[300], y[300]);
	ok(fabs(y[300] - 2.0) <= 0.02, "%s: 100-sigma outlier within 1%%", k->name);
	ok(rel <= (k->type == QUANT_Q4_K ? 0.15 : 0.04), "%s: outlier row RMSE/std %.4f bounded",
		k->name, rel);

	/* NaN and inf: no crash, 0 returned, other super-blocks untouched */
	for (int i = 0; i < 1024; i++)
		x[i] = (float)(0.02 * normal());
	k->quantize(x, q2, 1024);
	x[5] = NAN;
	x[256 + 7] = INFINITY;
	x[512 + 9] = -INFINITY;
	x[512 + 10] = INFINITY;
	ok(k->quantize(x, q, 1024) == 0, "%s: NaN/inf row quantizes (returns 0)", k->name);
	k->dequantize(q, y, 1024);
	ok(!memcmp(q + 3 * k->bytes, q2 + 3 * k->bytes, k->bytes),
		"%s: a NaN/inf does not reach the next super-block", k->name);
	for (int i = 0; i < 1024; i++)
		x[i] = NAN;
	ok(k->quantize(x, q, 1024) == 0, "%s: all-NaN row quantizes (returns 0)", k->name);
	k->dequantize(q, y, 1024);
	ok(1, "%s: dequantize of NaN/inf blocks does not crash", k->name);

	/* lengths that are not a multiple of 256 */
	memset(q, 0xAB, sizeof q);
	ok(k->quantize(x, q, 100) == -1 && q[0] == 0xAB, "%s: n=100 refused, dst untouched", k->name);
	for (int i = 0; i < 300; i++)
		y[i] = 1;
	k->dequantize(q, y, 300);
	bad = 0;
	for (int i = 0; i < 300; i++)
		bad |= y[i] != 0;
	ok(!bad, "%s: dequantize n=300 zero-fills", k->name);
	ok(quant_row_bytes(k->type, 512) == 2 * k->bytes && quant_block_size(k->type) == 256,
		"%s: row bytes and block size", k->name);
}

/* Not a pass/fail test (the speed bound is t/perf's): time per million
 * values, single thread, so a regression shows in the log. */
static void
bench(const struct ktype *k)
{
	size_t n = 1 << 22;
	float *x = malloc(sizeof(float) * n);
	unsigned char *q = malloc(n / 256 * k->bytes);
	struct timespec a, b;
	double s;

	for (size_t i = 0; i < n; i++)
		x[i] = (float)(0.02 * normal());
	clock_gettime(CLOCK_MONOTONIC, &a);
	k->quantize(x, q, n);
	clock_gettime(CLOCK_MONOTONIC, &b);
	s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	printf("# %s: quantize %.1f ms per million values (one thread)\n", k->name, s * 1e6 / (double)n * 1e3);
	free(x);
	free(q);
}

int
main(void)
{
	float *src = slurp("t/quant_k/src.f32", sizeof(float) * ROWS * N);
	char sums[1024] = "";
	FILE *f = fopen("t/quant_k/deq.sha256", "r");

	if (f) {
		sums[fread(sums, 1, sizeof sums - 1, f)] = 0;
		fclose(f);
	}
	for (int i = 0; i < 2; i++) {
		test_fixture(&ktypes[i], src, sums);
		test_random(&ktypes[i]);
		test_special(&ktypes[i]);
		bench(&ktypes[i]);
	}
	free(src);
	return done_testing();
}
