/* matmul: products of GGUF weight matrices (F32, F16, BF16, Q8_0, Q4_0,
 * Q4_1, Q5_0, Q5_1, Q4_K, Q6_K) with F32 activation rows, the weights
 * dequantized in registers. */
#ifndef SLUICE_KERNELS_MATMUL_CUH
#define SLUICE_KERNELS_MATMUL_CUH

#include "common.cuh"

/* 1 if kmm_launch multiplies weights of this type */
int kmm_supports(uint32_t type);

/* y[b * ldy + r] = sum_k W[r][k] * x[b * ldx + k] for r < w->rows, b < nb
 * (nb >= 1; any nb: a decode step has a few rows, a prompt hundreds).
 * All pointers are device memory; w->cols is a multiple of the type's
 * block. Rows of y not in [0, w->rows) are not touched. */
void kmm_launch(const kmat *w, const float *x, size_t ldx, uint32_t nb, float *y, size_t ldy,
		cudaStream_t st);

/* x[t * dim + k] = row tok[t] of the embedding table, dequantized (dim =
 * table->cols), for t < ntok; tok is device memory, each < table->rows. */
void kembed_launch(const kmat *table, const int32_t *tok, uint32_t ntok, float *x, cudaStream_t st);

#endif
