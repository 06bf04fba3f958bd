/* dotbench: times lib/dot's dot_rows on one thread, on random weights of a
 * type (ROWS x N) against NB random activation rows, ITERS calls:
 *
 *   dotbench TYPE N ROWS NB ITERS      e.g. dotbench q4_1 576 1536 64 200
 *
 * prints ns per call (mean and best), GFLOP/s (2*N*ROWS*NB per call), the
 * weight bytes streamed per second, and the time to quantize the NB
 * activation rows (best of up to 20). SLUICE_ISA=scalar|avx2|avx512 times that
 * path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "die.h"
#include "dot.h"
#include "quant.h"

#define USAGE "dotbench TYPE N ROWS NB ITERS"

static uint64_t rs = 0x9e3779b97f4a7c15ull;

static float
frand(void)
{
	rs ^= rs >> 12;
	rs ^= rs << 25;
	rs ^= rs >> 27;
	return (float)((rs * 2685821657736338717ull) >> 40) / 16777216.0f * 2 - 1;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t
num(const char *s, size_t max)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (*s < '0' || *s > '9' || *end || v == 0 || v > max)
		die_usage(USAGE);
	return (size_t)v;
}

int
main(int argc, char **argv)
{
	size_t n, rows, nb, iters, rb, ab, distinct;
	int type;
	uint8_t *W, *xq;
	float *x, *y;
	double t0, best = 1e30, total = 0, tq;

	die_init(argv[0]);
	if (argc != 6)
		die_usage(USAGE);
	if ((type = quant_type_from_name(argv[1])) < 0)
		die_x(EXIT_USAGE, "unknown type %s", argv[1]);
	n = num(argv[2], 1 << 20);
	rows = num(argv[3], 1 << 22);
	nb = num(argv[4], 1 << 16);
	iters = num(argv[5], 1 << 30);
	rb = quant_row_bytes((uint32_t)type, n);
	ab = dot_act_bytes((uint32_t)type, n);
	if (!rb || !ab)
		die_x(EXIT_USAGE, "%s cannot multiply rows of %zu", argv[1], n);
	if (rows > (((size_t)1 << 34) / rb) || nb > (((size_t)1 << 32) / n))
		die_x(EXIT_USAGE, "too large");

	/* a few distinct quantized rows, repeated (quantizing K types is slow) */
	W = xmalloc(rows * rb);
	x = xmalloc(n * nb * sizeof *x);
	xq = xmalloc(nb * ab);
	y = xmalloc(nb * rows * sizeof *y);
	distinct = rows < 64 ? rows : 64;
	for (size_t r = 0; r < distinct; r++) {
		for (size_t k = 0; k < n; k++)
			x[k] = frand();
		if (quant_quantize_row((uint32_t)type, x, W + r * rb, n) != 0)
			die_x(EXIT_USAGE, "cannot quantize %s", argv[1]);
	}
	for (size_t r = distinct; r < rows; r++)
		memcpy(W + r * rb, W + r % distinct * rb, rb);
	for (size_t k = 0; k < n * nb; k++)
		x[k] = frand();

	tq = 1e30;
	for (size_t it = 0; it < 1 + (iters < 20 ? iters : 20); it++) {
		double t;

		t0 = now();
		for (size_t b = 0; b < nb; b++)
			dot_quantize_act((uint32_t)type, x + b * n, xq + b * ab, n);
		t = now() - t0;
		tq = it && t < tq ? t : tq;     /* the first pass faults pages in */
	}

	dot_rows((uint32_t)type, W, 0, rows, n, xq, ab, nb, y, rows);        /* warm up */
	for (size_t it = 0; it < iters; it++) {
		double t;

		t0 = now();
		dot_rows((uint32_t)type, W, 0, rows, n, xq, ab, nb, y, rows);
		t = now() - t0;
		total += t;
		best = t < best ? t : best;
	}
	total /= (double)iters;
	printf("%s n=%zu rows=%zu nb=%zu %s: %.0f ns/call (best %.0f), %.2f GFLOP/s, "
	       "weights %.2f GB/s, quantize act %.0f ns\n",
	       quant_type_name((uint32_t)type), n, rows, nb, dot_isa_name(dot_isa()),
	       total * 1e9, best * 1e9, 2.0 * (double)n * (double)rows * (double)nb / best * 1e-9,
	       (double)(rows * rb) / best * 1e-9, tq * 1e9);
	free(W);
	free(x);
	free(xq);
	free(y);
	return 0;
}
