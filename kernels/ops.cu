/* ops: the per-row operations of the forward pass on the device: RMSNorm,
 * RoPE, SwiGLU, residual and bias adds, K/V into the paged F16 cache. Each
 * computes what lib/cpu.c computes, in the same float operations where the
 * order allows it, so the GPU's numbers stay within rounding of the CPU's. */
#include <math.h>

#include <cuda_fp16.h>

#include "ops.cuh"

/* threads of a block for the elementwise kernels, and the most blocks a
 * grid-stride loop asks for (enough to fill any of the devices we build
 * for many times over; more only adds scheduling) */
#define EW_THREADS 256
#define EW_MAX_BLOCKS 8192u

/* blocks for n elements, one per thread, at most EW_MAX_BLOCKS */
static unsigned
ew_blocks(size_t n)
{
	size_t b = (n + EW_THREADS - 1) / EW_THREADS;

	return b < EW_MAX_BLOCKS ? (unsigned)b : EW_MAX_BLOCKS;
}

/* A launcher's arguments that no launch could honour: the same fatal
 * path as a failed CUDA call, since the caller is mid-step. */
static void
bad_args(const char *what)
{
	CUDA_CHECK(cudaErrorInvalidValue, what);
}

/* ------------------------------------------------------------- rmsnorm */

#define NORM_THREADS 256

static __device__ __forceinline__ float
warp_sum(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

/* the sum of v over the block, in every thread: each warp folds the warps'
 * partial sums itself (in the same order), which saves a second barrier */
static __device__ float
block_sum(float v, float *part)
{
	unsigned lane = threadIdx.x & 31, nw = blockDim.x >> 5;

	v = warp_sum(v);
	if (lane == 0)
		part[threadIdx.x >> 5] = v;
	__syncthreads();
	return warp_sum(lane < nw ? part[lane] : 0.0f);
}

/* one row: scale = 1 / sqrt(mean of squares + eps), y = x * scale * w
 * (the CPU's rmsnorm sums in double; float over 256 partial sums stays well
 * inside the test's tolerance). x and y may be the same row: each thread
 * reads its own elements before it writes them, and the sum is complete
 * (block_sum's barrier) before anyone writes. */
static __device__ void
norm_row(const float *x, const float *w, uint32_t n, float eps, float *y, float *part)
{
	float ss = 0;
	float scale;
	uint32_t i;

	for (i = threadIdx.x; i < n; i += blockDim.x)
		ss += x[i] * x[i];
	ss = block_sum(ss, part);
	scale = 1.0f / sqrtf(ss / (float)n + eps);
	for (i = threadIdx.x; i < n; i += blockDim.x)
		y[i] = x[i] * scale * w[i];
}

/* one block a row */
static __global__ void __launch_bounds__(NORM_THREADS)
norm_kernel(const float *x, size_t ldx, const float *w, uint32_t n, uint32_t rows, float eps, float *y,
	    size_t ldy)
{
	__shared__ float part[NORM_THREADS / 32];
	uint32_t r = blockIdx.x;

	if (r >= rows)
		return;
	norm_row(x + (size_t)r * ldx, w, n, eps, y + (size_t)r * ldy, part);
}

void
knorm_launch(const float *x, size_t ldx, const float *w, uint32_t n, uint32_t rows, float eps, float *y,
	     size_t ldy, cudaStream_t st)
{
	if (rows == 0 || n == 0)
		return;
	norm_kernel<<<rows, NORM_THREADS, 0, st>>>(x, ldx, w, n, rows, eps, y, ldy);
	CUDA_LAUNCHED("launch rmsnorm");
}

/* ------------------------------------------------------------- rope */

/* The pair i of every head of one token. theta is built as rope_tables()
 * builds it, by i sequential float multiplications by theta_scale from
 * pos / scale (not powf per pair: that rounds differently), so cos and sin
 * see the CPU's angle to the bit; the loop is at most rope_dim / 2 steps.
 * The rotation is ROPE_BODY's: fma(x0, c, -(x1 * s)), fma(x0, s, x1 * c),
 * the products rounded on their own (__fmul_rn: nvcc must not fuse them). */
static __device__ void
rope_pair(float *row, uint32_t nheads, uint32_t hd, uint32_t half, uint32_t i, int neox, float p,
	  float theta_scale, float scale, const float *freqs)
{
	float theta = p / scale, sn, cs;
	uint32_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1, h, k;

	for (k = 0; k < i; k++)
		theta *= theta_scale;
	if (freqs)
		theta = theta / freqs[i];
	sincosf(theta, &sn, &cs);
	for (h = 0; h < nheads; h++) {
		float *v = row + (size_t)h * hd;
		float x0 = v[a], x1 = v[b];

		v[a] = fmaf(x0, cs, -__fmul_rn(x1, sn));
		v[b] = fmaf(x0, sn, __fmul_rn(x1, cs));
	}
}

/* a thread per (token, pair), looping over the heads: the angle is the
 * costly part and every head shares it */
static __global__ void
rope_kernel(float *x, size_t ldx, const int32_t *pos, uint32_t ntok, uint32_t nheads, uint32_t hd,
	    uint32_t half, int neox, float theta_scale, float scale, const float *freqs)
{
	size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	uint32_t t, i;

	if (j >= (size_t)ntok * half)
		return;
	t = (uint32_t)(j / half);
	i = (uint32_t)(j % half);
	rope_pair(x + (size_t)t * ldx, nheads, hd, half, i, neox, (float)pos[t], theta_scale, scale, freqs);
}

void
krope_launch(float *x, size_t ldx, const int32_t *pos, uint32_t ntok, uint32_t nheads, uint32_t hd,
	     uint32_t rope_dim, int neox, float base, float scale, const float *freqs, cudaStream_t st)
{
	uint32_t half = rope_dim / 2;
	size_t n = (size_t)ntok * half;
	float theta_scale;

	if (rope_dim % 2 || rope_dim > hd)
		bad_args("apply rope (rope_dim must be even and at most the head dimension)");
	if (n == 0 || nheads == 0)
		return;
	if (n > (size_t)EW_THREADS * 0x7fffffffu)
		bad_args("apply rope (too many tokens)");
	/* on the host with the host's powf, as rope_tables() does: the
	 * device's powf may differ in the last bit, and every angle is a
	 * power of this number */
	theta_scale = powf(base, -2.0f / (float)rope_dim);
	rope_kernel<<<(unsigned)((n + EW_THREADS - 1) / EW_THREADS), EW_THREADS, 0, st>>>(
		x, ldx, pos, ntok, nheads, hd, half, neox, theta_scale, scale, freqs);
	CUDA_LAUNCHED("launch rope");
}

/* ------------------------------------------------------------- swiglu */

/* silu(g) * u as the CPU's scalar path writes it (the AVX2 path's exp is
 * within an ulp or two of expf, as is CUDA's) */
static __device__ __forceinline__ float
swiglu_one(float g, float u)
{
	return g / (1.0f + expf(-g)) * u;
}

/* y may be g or u: each element is read before it is written, by the same
 * thread */
static __global__ void
swiglu_kernel(const float *g, const float *u, float *y, size_t n)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, step = (size_t)gridDim.x * blockDim.x;

	for (; i < n; i += step)
		y[i] = swiglu_one(g[i], u[i]);
}

void
kswiglu_launch(const float *g, const float *u, float *y, size_t n, cudaStream_t st)
{
	if (n == 0)
		return;
	swiglu_kernel<<<ew_blocks(n), EW_THREADS, 0, st>>>(g, u, y, n);
	CUDA_LAUNCHED("launch swiglu");
}

/* ------------------------------------------------------------- add, bias */

static __global__ void
add_kernel(float *x, const float *y, size_t n)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, step = (size_t)gridDim.x * blockDim.x;

	for (; i < n; i += step)
		x[i] += y[i];
}

void
kadd_launch(float *x, const float *y, size_t n, cudaStream_t st)
{
	if (n == 0)
		return;
	add_kernel<<<ew_blocks(n), EW_THREADS, 0, st>>>(x, y, n);
	CUDA_LAUNCHED("launch add");
}

/* the nb rows as one run of nb * n elements; the row and column of each
 * come from a division, cheaper than the memory traffic it sits in */
static __global__ void
bias_kernel(float *y, size_t ldy, const float *bias, uint32_t n, uint32_t nb)
{
	size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x, step = (size_t)gridDim.x * blockDim.x;
	size_t total = (size_t)n * nb;

	for (; j < total; j += step) {
		size_t b = j / n, i = j % n;

		y[b * ldy + i] += bias[i];
	}
}

void
kbias_launch(float *y, size_t ldy, const float *bias, uint32_t n, uint32_t nb, cudaStream_t st)
{
	size_t total = (size_t)n * nb;

	if (total == 0)
		return;
	bias_kernel<<<ew_blocks(total), EW_THREADS, 0, st>>>(y, ldy, bias, n, nb);
	CUDA_LAUNCHED("launch bias add");
}

/* ------------------------------------------------------------- k/v store */

/* f32 to the bits of the nearest F16, ties to even (quant_f32_to_f16's
 * answer for every non-NaN input; a NaN comes out as CUDA's canonical
 * quiet NaN rather than with its payload) */
static __device__ __forceinline__ uint16_t
to_f16(float f)
{
	return __half_as_ushort(__float2half_rn(f));
}

/* element i of token t's K and V rows into cache row slot[t]; a negative
 * slot (a token with no row) is skipped, so a bad index cannot write
 * below the cache */
static __global__ void
kv_store_kernel(const float *k, const float *v, size_t ld, const int32_t *slot, uint32_t ntok, uint32_t kvd,
		uint16_t *kc, uint16_t *vc)
{
	size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x, step = (size_t)gridDim.x * blockDim.x;
	size_t total = (size_t)ntok * kvd;

	for (; j < total; j += step) {
		size_t t = j / kvd, i = j % kvd;
		int32_t s = slot[t];

		if (s < 0)
			continue;
		kc[(size_t)s * kvd + i] = to_f16(k[t * ld + i]);
		vc[(size_t)s * kvd + i] = to_f16(v[t * ld + i]);
	}
}

void
kkv_store_launch(const float *k, const float *v, size_t ld, const int32_t *slot, uint32_t ntok, uint32_t kvd,
		 uint16_t *kc, uint16_t *vc, cudaStream_t st)
{
	size_t total = (size_t)ntok * kvd;

	if (total == 0)
		return;
	kv_store_kernel<<<ew_blocks(total), EW_THREADS, 0, st>>>(k, v, ld, slot, ntok, kvd, kc, vc);
	CUDA_LAUNCHED("launch k/v store");
}
