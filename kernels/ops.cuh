/* ops: the per-row operations of the forward pass: RMSNorm, RoPE,
 * SwiGLU, residual and bias adds, K/V into the paged F16 cache. */
#ifndef SLUICE_KERNELS_OPS_CUH
#define SLUICE_KERNELS_OPS_CUH

#include "common.cuh"

/* y[r * ldy + i] = x[r * ldx + i] * scale_r * w[i], i < n, r < rows, with
 * scale_r = 1 / sqrt(mean of x[r]^2 + eps) (ggml's rms_norm, then mul) */
void knorm_launch(const float *x, size_t ldx, const float *w, uint32_t n, uint32_t rows, float eps,
		  float *y, size_t ldy, cudaStream_t st);

/* RoPE in place on the first rope_dim dimensions of each of nheads heads
 * of hd values, row t at x + t * ldx, position pos[t]: theta_i =
 * (pos / scale) / freqs[i] (freqs NULL: 1) * base^(-2i / rope_dim), the
 * pair (2i, 2i+1) rotated (neox: (i, i + rope_dim/2)) by theta_i, as
 * ggml's rope (mode 0 / NEOX), i < rope_dim / 2. */
void krope_launch(float *x, size_t ldx, const int32_t *pos, uint32_t ntok, uint32_t nheads, uint32_t hd,
		  uint32_t rope_dim, int neox, float base, float scale, const float *freqs, cudaStream_t st);

/* y[i] = silu(g[i]) * u[i] = g / (1 + exp(-g)) * u, i < n */
void kswiglu_launch(const float *g, const float *u, float *y, size_t n, cudaStream_t st);

/* x[i] += y[i], i < n */
void kadd_launch(float *x, const float *y, size_t n, cudaStream_t st);

/* y[b * ldy + i] += bias[i], i < n, b < nb */
void kbias_launch(float *y, size_t ldy, const float *bias, uint32_t n, uint32_t nb, cudaStream_t st);

/* K and V rows (ntok of kvd f32, ld apart) into one layer's cache (rows of
 * kvd F16, round to nearest even) at row slot[t] */
void kkv_store_launch(const float *k, const float *v, size_t ld, const int32_t *slot, uint32_t ntok,
		      uint32_t kvd, uint16_t *kc, uint16_t *vc, cudaStream_t st);

#endif
