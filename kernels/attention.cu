/* attention: causal attention of query rows over the paged F16 K/V cache,
 * flash-style: one pass over the positions with an online softmax (a
 * running maximum and sum, the partial output rescaled when the maximum
 * grows), so any context up to max_ctx runs in registers and a little
 * shared memory, with no scores array sized by the context.
 *
 * The work of one (token, head) is one thread block of nw warps. A warp
 * holds the head's query and its own partial output spread over its 32
 * lanes, hd / 32 dimensions a lane; it takes ATT_TILE positions at a time,
 * the warps interleaved (warp w the tiles w, w + nw, ...), so the warps of
 * a block read neighbouring cache rows together and the long and short
 * prefixes of a prompt cost the same per warp. At the end the warps'
 * partial (max, sum, output) are merged through shared memory. A decode
 * step has few (token, head) pairs and long prefixes, so it gets more
 * warps a block; a prompt has many pairs and gets fewer.
 *
 * Nearly all of a decode step's attention time is spent reading K and V
 * here; the reads are a lane's hd / 32 dimensions in one vector load, the
 * lanes side by side, so a warp reads a row of a head in one go. */
#include <math.h>

#include <cuda_fp16.h>

#include "attention.cuh"

#define ATT_TILE 4              /* positions a warp reads before it folds them in */
#define ATT_MAXW 16             /* warps in a block, at most */
#define ATT_MAXHD 256           /* head dimension, at most (8 values a lane) */

/* ------------------------------------------------------------- f16 rows */

/* E consecutive F16 values at p into E/2 (rounded up) words, two values a
 * word, the first in the low half (little-endian, as in memory). p is
 * aligned to E * 2 bytes when E is even: the row of a head starts at a
 * multiple of hd values (64 bytes at least) and a lane's part at lane * E,
 * so one load of the widest type that divides E covers it. */
template <int E>
static __device__ __forceinline__ void
ld_f16(const uint16_t *p, uint32_t (&w)[(E + 1) / 2])
{
	if constexpr (E % 8 == 0) {
#pragma unroll
		for (int c = 0; c < E / 8; c++) {
			uint4 u = reinterpret_cast<const uint4 *>(p)[c];
			w[4 * c] = u.x;
			w[4 * c + 1] = u.y;
			w[4 * c + 2] = u.z;
			w[4 * c + 3] = u.w;
		}
	} else if constexpr (E % 4 == 0) {
		uint2 u = *reinterpret_cast<const uint2 *>(p);
		w[0] = u.x;
		w[1] = u.y;
	} else if constexpr (E % 2 == 0) {
#pragma unroll
		for (int c = 0; c < E / 2; c++)
			w[c] = reinterpret_cast<const uint32_t *>(p)[c];
	} else {
		/* an odd count (hd 32, 96, 160, 224): a lane's part is only
		 * 2-byte aligned, so value by value */
#pragma unroll
		for (int c = 0; c < E; c++)
			w[c / 2] = c % 2 ? w[c / 2] | (uint32_t)p[c] << 16 : (uint32_t)p[c];
	}
}

/* value j of words loaded by ld_f16, as float (exact) */
static __device__ __forceinline__ float
f16_at(const uint32_t *w, int j)
{
	uint32_t x = w[j / 2];

	return __half2float(__ushort_as_half((unsigned short)(j % 2 ? x >> 16 : x & 0xffffu)));
}

/* ------------------------------------------------------------- the kernel */

/* One (token, head) per block: blockIdx.x = t * n_heads + h, so the heads
 * of a KV group run side by side and read the same rows, from L2 after the
 * first. E = hd / 32 values a lane, lane l holding dimensions l * E ..
 * l * E + E - 1. Shared memory (dynamic): nw maxima, nw sums, nw merge
 * factors, then nw rows of hd partial outputs. */
template <int E>
static __global__ void __launch_bounds__(ATT_MAXW * 32)
att_kernel(const float *q, size_t ldq, const uint16_t *__restrict__ kc, const uint16_t *__restrict__ vc,
	   const int32_t *pos, const int32_t *btab, const int32_t *boff, uint32_t ntok, uint32_t n_heads,
	   uint32_t grp, uint32_t kvd, uint32_t bs, int bs_shift, uint32_t max_ctx, float scale, float *out,
	   size_t ldo)
{
	constexpr uint32_t hd = 32 * E;
	constexpr int NW2 = (E + 1) / 2;
	extern __shared__ float sm[];
	uint32_t nw = blockDim.x >> 5, w = threadIdx.x >> 5, lane = threadIdx.x & 31;
	uint32_t t, h, np, p0, i, d;
	int32_t pt;
	const int32_t *bt;
	const float *qr;
	float *o, *sm_m = sm, *sm_l = sm + nw, *sm_f = sm + 2 * nw, *sm_acc = sm + 3 * nw;
	float qv[E], acc[E], m = -INFINITY, l = 0, mx, lsum;
	size_t koff;

	if (blockIdx.x >= ntok * n_heads)
		return;
	t = blockIdx.x / n_heads;
	h = blockIdx.x % n_heads;
	o = out + (size_t)t * ldo + (size_t)h * hd;
	pt = pos[t];
	if (pt < 0 || (uint32_t)pt >= max_ctx) {
		/* outside the cache the caller sized: no reads past it, and
		 * an answer nobody can mistake for one (the whole block takes
		 * this branch: pt is the block's) */
		for (d = threadIdx.x; d < hd; d += blockDim.x)
			o[d] = NAN;
		return;
	}
	np = (uint32_t)pt + 1;
	bt = btab + boff[t];
	koff = (size_t)(h / grp) * hd + (size_t)lane * E;

	/* the query rounded to F16 as the CPU's attention rounds it (and
	 * ggml's F16 flash attention): q . k as the engine computes it */
	qr = q + (size_t)t * ldq + (size_t)h * hd + (size_t)lane * E;
#pragma unroll
	for (int j = 0; j < E; j++) {
		qv[j] = __half2float(__float2half_rn(qr[j]));
		acc[j] = 0;
	}

	/* every lane of a warp runs the same iterations (the bound is the
	 * warp's), as the full-mask shuffles need */
	for (p0 = w * ATT_TILE; p0 < np; p0 += nw * ATT_TILE) {
		uint32_t kw[ATT_TILE][NW2], vw[ATT_TILE][NW2];
		float s[ATT_TILE];

		/* all the tile's loads first, so they are in flight together */
#pragma unroll
		for (int u = 0; u < ATT_TILE; u++) {
			uint32_t p = p0 + u;

			if (p < np) {
				/* the engine's block sizes are powers of two:
				 * a shift, not a division, for every position */
				uint32_t blk = bs_shift >= 0 ? p >> bs_shift : p / bs;
				uint32_t in = bs_shift >= 0 ? p & (bs - 1) : p % bs;
				size_t row = (size_t)bt[blk] * bs + in;

				ld_f16<E>(kc + row * kvd + koff, kw[u]);
				ld_f16<E>(vc + row * kvd + koff, vw[u]);
			} else {
				/* past the prefix: zeros, so its weight 0
				 * times its value is 0, never 0 * garbage */
#pragma unroll
				for (int c = 0; c < NW2; c++)
					kw[u][c] = vw[u][c] = 0;
			}
		}
#pragma unroll
		for (int u = 0; u < ATT_TILE; u++) {
			s[u] = 0;
#pragma unroll
			for (int j = 0; j < E; j++)
				s[u] = fmaf(qv[j], f16_at(kw[u], j), s[u]);
		}
		/* the dot products summed over the lanes, every lane getting
		 * the sums; the tile's four reductions interleaved */
#pragma unroll
		for (int off = 16; off > 0; off >>= 1)
#pragma unroll
			for (int u = 0; u < ATT_TILE; u++)
				s[u] += __shfl_xor_sync(0xffffffffu, s[u], off);

		/* online softmax: the new maximum (finite: position p0 is in
		 * the prefix), the old sum and output scaled down to it (by 0
		 * on the first tile, where m is -inf), then the tile added */
		mx = m;
#pragma unroll
		for (int u = 0; u < ATT_TILE; u++) {
			s[u] = p0 + u < np ? s[u] * scale : -INFINITY;
			mx = fmaxf(mx, s[u]);
		}
		{
			float corr = expf(m - mx);

			l *= corr;
#pragma unroll
			for (int j = 0; j < E; j++)
				acc[j] *= corr;
		}
#pragma unroll
		for (int u = 0; u < ATT_TILE; u++) {
			float e = expf(s[u] - mx);      /* 0 past the prefix */

			l += e;
#pragma unroll
			for (int j = 0; j < E; j++)
				acc[j] = fmaf(e, f16_at(vw[u], j), acc[j]);
		}
		m = mx;
	}

	/* merge the warps: out = sum_w acc_w e^(m_w - M) / sum_w l_w e^(m_w - M),
	 * M the largest m_w. A warp that had no position (a prefix shorter
	 * than its first tile) has m_w = -inf, l_w = 0, acc_w = 0: factor 0.
	 * Warp 0 always has position 0, so M is finite, and the warp whose
	 * maximum is M has l_w >= 1, so the sum is not 0. */
	if (lane == 0) {
		sm_m[w] = m;
		sm_l[w] = l;
	}
#pragma unroll
	for (int j = 0; j < E; j++)
		sm_acc[w * hd + lane * E + j] = acc[j];
	__syncthreads();
	if (threadIdx.x < nw) {
		mx = -INFINITY;
		for (i = 0; i < nw; i++)
			mx = fmaxf(mx, sm_m[i]);
		sm_f[threadIdx.x] = expf(sm_m[threadIdx.x] - mx);
	}
	__syncthreads();
	lsum = 0;
	for (i = 0; i < nw; i++)
		lsum += sm_l[i] * sm_f[i];
	for (d = threadIdx.x; d < hd; d += blockDim.x) {
		float a = 0;

		for (i = 0; i < nw; i++)
			a += sm_acc[i * hd + d] * sm_f[i];
		o[d] = a / lsum;
	}
}

/* ------------------------------------------------------------- launcher */

/* Warps a block: enough blocks in flight to cover the device come from
 * the (token, head) pairs when there are many (a prompt); with few (a
 * decode step, long prefixes) each block splits its positions over more
 * warps. */
static unsigned
att_warps(uint32_t pairs)
{
	if (pairs >= 2048)
		return 4;
	if (pairs >= 512)
		return 8;
	return ATT_MAXW;
}

template <int E>
static void
att_run(const float *q, size_t ldq, const uint16_t *kc, const uint16_t *vc, const int32_t *pos,
	const int32_t *btab, const int32_t *boff, uint32_t ntok, uint32_t n_heads, uint32_t n_kv_heads,
	uint32_t bs, uint32_t max_ctx, float *out, size_t ldo, cudaStream_t st)
{
	uint32_t hd = 32 * E, pairs = ntok * n_heads;
	unsigned nw = att_warps(pairs);
	size_t shm = (size_t)nw * (3 + hd) * sizeof(float);
	float scale = 1.0f / sqrtf((float)hd);
	int bs_shift = bs & (bs - 1) ? -1 : __builtin_ctz(bs);

	att_kernel<E><<<pairs, nw * 32, shm, st>>>(q, ldq, kc, vc, pos, btab, boff, ntok, n_heads,
						    n_heads / n_kv_heads, n_kv_heads * hd, bs, bs_shift, max_ctx,
						    scale, out, ldo);
}

void
katt_launch(const float *q, size_t ldq, const uint16_t *kc, const uint16_t *vc, const int32_t *pos,
	    const int32_t *btab, const int32_t *boff, uint32_t ntok, uint32_t n_heads, uint32_t n_kv_heads,
	    uint32_t hd, uint32_t bs, uint32_t max_ctx, float *out, size_t ldo, cudaStream_t st)
{
	if (hd == 0 || hd % 32 || hd > ATT_MAXHD)
		CUDA_CHECK(cudaErrorInvalidValue, "run attention (head dimension not a multiple of 32 up to 256)");
	if (n_kv_heads == 0 || n_heads % n_kv_heads || bs == 0)
		CUDA_CHECK(cudaErrorInvalidValue, "run attention (heads not a multiple of KV heads, or no block size)");
	/* ld_f16's vector loads: every row of a head is 64-byte aligned
	 * from the cache's start, so the start must be 16-byte aligned */
	if ((uintptr_t)kc % 16 || (uintptr_t)vc % 16)
		CUDA_CHECK(cudaErrorMisalignedAddress, "run attention (K/V cache not 16-byte aligned)");
	if (ntok == 0 || n_heads == 0)
		return;
	if ((uint64_t)ntok * n_heads > 0x7fffffffu)
		CUDA_CHECK(cudaErrorInvalidValue, "run attention (too many token-head pairs)");
	switch (hd / 32) {
#define ATT_CASE(e) \
	case e: \
		att_run<e>(q, ldq, kc, vc, pos, btab, boff, ntok, n_heads, n_kv_heads, bs, max_ctx, out, ldo, st); \
		break;
	ATT_CASE(1)
	ATT_CASE(2)
	ATT_CASE(3)
	ATT_CASE(4)
	ATT_CASE(5)
	ATT_CASE(6)
	ATT_CASE(7)
	ATT_CASE(8)
#undef ATT_CASE
	}
	CUDA_LAUNCHED("launch attention");
}
