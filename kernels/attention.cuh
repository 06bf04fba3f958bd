/* attention: causal attention of query rows over a paged F16 KV cache
 * (the engine's blocks: one layer's cache is n_blocks * bs rows of kvd =
 * n_kv_heads * hd values, K and V apart). */
#ifndef SLUICE_KERNELS_ATTENTION_CUH
#define SLUICE_KERNELS_ATTENTION_CUH

#include "common.cuh"

/* For query token t < ntok and head h < n_heads (KV head h / (n_heads /
 * n_kv_heads)): out = softmax(q . K[p] * scale, p = 0 .. pos[t]) . V, where
 * K[p], V[p] are cache row btab[boff[t] + p / bs] * bs + p % bs of kc, vc
 * (the token's sequence's block table), q at q + t * ldq + h * hd (f32,
 * already rotated), out at out + t * ldo + h * hd. scale = 1/sqrt(hd).
 * pos[t] < max_ctx; hd <= 256 and a multiple of 32. Device pointers. */
void katt_launch(const float *q, size_t ldq, const uint16_t *kc, const uint16_t *vc, const int32_t *pos,
		 const int32_t *btab, const int32_t *boff, uint32_t ntok, uint32_t n_heads, uint32_t n_kv_heads,
		 uint32_t hd, uint32_t bs, uint32_t max_ctx, float *out, size_t ldo, cudaStream_t st);

#endif
