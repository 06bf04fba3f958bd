/* gputest-mm: kmm_launch and kembed_launch of kernels/matmul.cu against
 * the CPU, TAP on stdout. The weights of each of the ten types come from
 * the CPU's quantizer (lib/quant.h); the reference product is summed in
 * double over quant_dequantize_row of the same bytes and compared by NMSE
 * = sum (gpu - ref)^2 / sum ref^2, ggml's test-backend-ops measure. The
 * GPU sums the same dequantized floats in float, so only rounding parts
 * them (about 1e-12 over 2048 columns) and the tolerance is 1e-7. Rows of
 * y outside the matrix (ldy > rows, and a row past nb) must keep their
 * values, and an embedding row must be quant_dequantize_row's exactly.
 * The shapes take in rows 2-byte aligned only (an odd number of 32-blocks),
 * rows apart by more than their bytes, float rows of any length,
 * activation rows not 16-byte aligned, and tiles cut short (nb 3, 17).
 * Without a CUDA device it prints a skip plan and exits 0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#define GPUTEST_SEED 0x5eed5eed87654321ull
#include "gputest.cuh"
#include "matmul.cuh"

extern "C" {
#include "quant.h"
}

#include "../unit/tap.h"

/* the GPU's float sums against the double reference of the same weights */
#define TOL_MM 1e-7
/* what y and the embedding rows hold outside what the kernels write */
#define SENTINEL -777.0f

static const uint32_t TYPES[] = {QUANT_F32,  QUANT_F16,  QUANT_BF16, QUANT_Q8_0, QUANT_Q4_0,
				 QUANT_Q4_1, QUANT_Q5_0, QUANT_Q5_1, QUANT_Q4_K, QUANT_Q6_K};
static const uint32_t NTYPES = sizeof TYPES / sizeof *TYPES;

/* ------------------------------------------------------------- helpers */

static int
same_bits(float a, float b)
{
	return !memcmp(&a, &b, sizeof a);
}

/* ------------------------------------------------------------- matmul */

/* y = W x for nb activation rows: ldx past the row (by 1 for nb 3, so
 * that the rows lose their 16-byte alignment; the single row of rows 37
 * starts one float into its buffer for the same reason), ldy = rows + 3,
 * and one row of y past nb */
static void
test_mm(const kmat *w, const vector<float> &deq, uint32_t nb)
{
	uint32_t rows = w->rows, cols = w->cols;
	size_t ldx = cols + (nb == 3 ? 1 : 4), ldy = (size_t)rows + 3, xoff = nb == 1 && rows == 37;
	vector<float> x(xoff + nb * ldx), y((nb + 1) * ldy, SENTINEL);
	float *dx, *dy;
	int kept = 1;
	nmse_acc e;

	for (float &v : x)
		v = urand(1.0f);
	dx = dev_put(x);
	dy = dev_put(y);
	kmm_launch(w, dx + xoff, ldx, nb, dy, ldy, st);
	sync("run the matmul kernel");
	dev_get(y, dy);
	for (uint32_t b = 0; b <= nb; b++)
		for (size_t r = 0; r < ldy; r++) {
			double ref = 0;

			if (b == nb || r >= rows) {
				kept &= same_bits(y[b * ldy + r], SENTINEL);
				continue;
			}
			for (uint32_t k = 0; k < cols; k++)
				ref += (double)deq[r * cols + k] * x[xoff + b * ldx + k];
			e.add(y[b * ldy + r], ref);
		}
	ok(e.nmse() <= TOL_MM && kept, "%s matmul rows %u cols %u nb %u: nmse %.3g%s", quant_type_name(w->type), rows,
	   cols, nb, e.nmse(), kept ? "" : ", values outside the product changed");
	dev_free(dx);
	dev_free(dy);
}

/* ------------------------------------------------------------- embedding */

/* the first and last rows, and rows at random (some twice), then padding
 * that must keep its values */
static void
test_embed(const kmat *w, const vector<float> &deq)
{
	const uint32_t ntok = 13, pad = 33;
	uint32_t cols = w->cols;
	vector<int32_t> tok(ntok);
	vector<float> out((size_t)ntok * cols + pad, SENTINEL);
	double maxdiff = 0;
	int32_t *dtok;
	float *dout;
	int kept = 1;

	for (uint32_t t = 0; t < ntok; t++)
		tok[t] = t == 0 ? 0 : t == 1 ? (int32_t)w->rows - 1 : (int32_t)(rng() % w->rows);
	tok[ntok - 1] = tok[2];
	dtok = dev_put(tok);
	dout = dev_put(out);
	kembed_launch(w, dtok, ntok, dout, st);
	sync("run the embedding kernel");
	dev_get(out, dout);
	for (uint32_t t = 0; t < ntok; t++)
		for (uint32_t k = 0; k < cols; k++) {
			double d = fabs((double)out[(size_t)t * cols + k] - deq[(size_t)tok[t] * cols + k]);

			/* "!(d <= max)" so that a NaN counts */
			if (!(d <= maxdiff))
				maxdiff = d;
		}
	for (size_t i = (size_t)ntok * cols; i < out.size(); i++)
		kept &= same_bits(out[i], SENTINEL);
	ok(maxdiff == 0 && kept, "%s embed rows %u cols %u tokens %u: max abs diff %g%s", quant_type_name(w->type),
	   w->rows, cols, ntok, maxdiff, kept ? "" : ", values past the rows changed");
	dev_free(dtok);
	dev_free(dout);
}

/* ------------------------------------------------------------- shapes */

/* Random rows quantized on the CPU: each row its own scale, and every
 * fifth row shifted to all positive values (K blocks whose min is 0); rows
 * of 37 get 4 bytes of padding between them. Then every nb, and the
 * embedding lookup from the same table. */
static void
test_shape(uint32_t type, uint32_t rows, uint32_t cols)
{
	static const uint32_t NB[] = {1, 2, 3, 8, 17, 64};
	size_t packed = quant_row_bytes(type, cols), rb = packed + (rows == 37 ? 4 : 0);
	vector<uint8_t> q(rows * rb, 0);
	vector<float> src(cols), deq((size_t)rows * cols);
	uint8_t *dq;
	kmat w;

	for (uint32_t r = 0; r < rows; r++) {
		float a = 0.05f + (float)(rng() % 100) / 50.0f, off = r % 5 == 4 ? a : 0.0f;

		for (float &v : src)
			v = urand(a) + off;
		if (quant_quantize_row(type, src.data(), &q[r * rb], cols)) {
			printf("Bail out! unable to quantize a %s row of %u columns\n", quant_type_name(type), cols);
			exit(1);
		}
		quant_dequantize_row(type, &q[r * rb], &deq[(size_t)r * cols], cols);
	}
	dq = dev_put(q);
	w.data = dq;
	w.type = type;
	w.rows = rows;
	w.cols = cols;
	w.row_bytes = rb;
	for (uint32_t nb : NB)
		test_mm(&w, deq, nb);
	test_embed(&w, deq);
	dev_free(dq);
}

/* ------------------------------------------------------------- main */

int
main(void)
{
	/* 800: 25 blocks of 32, rows only 2-byte aligned; 35: float rows
	 * past the last whole unit of 8 */
	static const uint32_t COLS[] = {256, 576, 2048, 800, 35};
	static const uint32_t ROWS[] = {1, 37, 300};
	int right = 1;

	if (gputest_start() < 0)
		return 0;

	for (uint32_t t = 0; t < 64; t++) {
		int listed = 0;
		for (uint32_t i = 0; i < NTYPES; i++)
			listed |= TYPES[i] == t;
		right &= !kmm_supports(t) == !listed;
	}
	ok(right, "kmm_supports: the ten types and no other");

	for (uint32_t i = 0; i < NTYPES; i++) {
		uint32_t type = TYPES[i];
		size_t blck = quant_block_size(type);

		for (uint32_t cols : COLS) {
			if (cols % blck || (cols == 800 && blck == 1) || (cols == 35 && blck != 1))
				continue;
			for (uint32_t rows : ROWS)
				test_shape(type, rows, cols);
		}
	}

	CUDA_CHECK(cudaStreamDestroy(st), "destroy a stream");
	return done_testing();
}
