/* matmul: the products of GGUF weight matrices with F32 activation rows,
 * and the embedding lookup, which is the same dequantization one row at a
 * time (kernels/matmul.cuh). The weights are read as they lie in the file
 * and dequantized in registers to the very floats lib/quant.c and
 * lib/quant_k.c give: each product and sum of the dequantization is
 * rounded on its own (__fmul_rn, __fadd_rn: nvcc must not fuse them into
 * one multiply-add), so an embedding row is the CPU's bit for bit and a
 * product differs from the CPU's only in the order of its sums.
 *
 * Work is cut into units: the 8 weights (16 for the K types) of one row
 * that one thread dequantizes at a time, two runs of 4 (8) columns. Units
 * follow the block layouts, so that neighbouring threads read neighbouring
 * weight bytes and neighbouring activations (4 threads a 32-block, 16 a K
 * super-block), and a unit's scales are decoded once for all its weights.
 *
 * A product is one thread block per R weight rows (4, or 2 for the K
 * types) and per tile of up to MM_TILE activation rows: its 128 threads
 * stride over the units of the rows, each dequantizing a unit of all R rows
 * into registers and multiplying it with the tile's activations, so every
 * activation loaded serves R rows and every weight loaded serves the whole
 * tile. A decode step (nb <= 8) is one tile: each weight is read from
 * memory once. A prompt's hundreds of rows are tiles of 8, the tiles of one
 * row group launched side by side so that they find its weights in L2. */
#include <limits.h>
#include <stdio.h>

#include <cuda_fp16.h>

#include "matmul.cuh"

/* ------------------------------------------------------------- types */

/* What the launchers hold a matrix to: elements and bytes of a block, and
 * the alignment of the rows that the loads of its units need (the bytes
 * of a unit are read as halfwords where the block length is odd in
 * words: Q4_0 18 bytes, Q5_0 22, Q8_0 34, Q6_K 210). GGUF files and
 * cudaMalloc give more than enough. */
static const struct mtype {
	uint32_t type;
	uint32_t blck, bytes, align;
} mtypes[] = {
	{QUANT_F32, 1, 4, 4},
	{QUANT_F16, 1, 2, 2},
	{QUANT_BF16, 1, 2, 2},
	{QUANT_Q8_0, 32, 34, 2},
	{QUANT_Q4_0, 32, 18, 2},
	{QUANT_Q4_1, 32, 20, 4},
	{QUANT_Q5_0, 32, 22, 2},
	{QUANT_Q5_1, 32, 24, 4},
	{QUANT_Q4_K, 256, 144, 4},
	{QUANT_Q6_K, 256, 210, 2},
};

static const struct mtype *
find_type(uint32_t type)
{
	for (size_t i = 0; i < sizeof mtypes / sizeof mtypes[0]; i++)
		if (mtypes[i].type == type)
			return &mtypes[i];
	return NULL;
}

/* A launcher's arguments that no launch could honour: the same fatal
 * path as a failed CUDA call, since the caller is mid-step. */
static void
bad_args(const char *what)
{
	CUDA_CHECK(cudaErrorInvalidValue, what);
}

/* the matrix as the kernels need it, or a fatal error naming it */
static void
check_mat(const kmat *w, const char *op)
{
	const struct mtype *t = find_type(w->type);
	char what[200];

	if (!t) {
		snprintf(what, sizeof what, "%s a weight matrix of type %s (%u)", op, quant_type_name(w->type),
			 w->type);
		bad_args(what);
		return;
	}
	if (w->cols % t->blck || w->row_bytes < (size_t)(w->cols / t->blck) * t->bytes ||
	    w->row_bytes % t->align || (uintptr_t)w->data % t->align) {
		snprintf(what, sizeof what, "%s a %s matrix of %u columns, rows %zu bytes apart", op,
			 quant_type_name(w->type), w->cols, w->row_bytes);
		bad_args(what);
	}
}

int
kmm_supports(uint32_t type)
{
	return find_type(type) != NULL;
}

/* ------------------------------------------------------------- loads */

/* Weight bytes go through the read-only cache. */
static __device__ __forceinline__ uint32_t
ld8(const uint8_t *p)
{
	return __ldg(p);
}

static __device__ __forceinline__ uint32_t
ld16(const uint8_t *p)
{
	return __ldg((const unsigned short *)p);
}

/* 4 bytes at a 2-aligned p: the fields of most blocks are no better */
static __device__ __forceinline__ uint32_t
ld32_a2(const uint8_t *p)
{
	return ld16(p) | ld16(p + 2) << 16;
}

/* 4 bytes at a 4-aligned p (Q4_1, Q5_1, Q4_K: blocks of 20, 24, 144) */
static __device__ __forceinline__ uint32_t
ld32(const uint8_t *p)
{
	return __ldg((const unsigned int *)p);
}

/* ------------------------------------------------------------- scalars */

/* quant_f16_to_f32 (the same value for every f16 but the payload of a
 * NaN, which the hardware conversion makes its own) */
static __device__ __forceinline__ float
f16(uint32_t h)
{
	return __half2float(__ushort_as_half((unsigned short)h));
}

/* quant_bf16_to_f32 */
static __device__ __forceinline__ float
bf16(uint32_t h)
{
	return __uint_as_float(h << 16);
}

/* (float)v - off, exactly, for an integer v < 2^23 and a small integer
 * off: v put in the mantissa of 2^23 (an OR), 2^23 + off taken away (an
 * add). The int-to-float conversion it replaces runs at a quarter of the
 * rate of the adds on sm_80 .. sm_90, and dequantizing is most of the
 * instructions of a decode step. */
static __device__ __forceinline__ float
qf(uint32_t v, float off)
{
	return __uint_as_float(0x4b000000u | v) - (8388608.0f + off);
}

/* nibble k of v (0: the low half of byte 0, 1: its high half, ...) */
static __device__ __forceinline__ uint32_t
nib(uint32_t v, uint32_t k)
{
	return v >> 4 * k & 0xf;
}

/* byte k (< 12) of the 12 scale bytes of a Q4_K block, held in three
 * little-endian words (selects, not an array: a variable index into an
 * array would put it in local memory) */
static __device__ __forceinline__ uint32_t
sbyte(uint32_t s0, uint32_t s1, uint32_t s2, uint32_t k)
{
	uint32_t v = k < 4 ? s0 : k < 8 ? s1 : s2;

	return v >> 8 * (k & 3) & 0xff;
}

/* q4k_scale_min() of lib/quant_k.c: the 6-bit scale and min of
 * sub-block j */
static __device__ __forceinline__ void
q4k_scale_min(uint32_t j, uint32_t s0, uint32_t s1, uint32_t s2, uint32_t *sc, uint32_t *m)
{
	if (j < 4) {
		*sc = sbyte(s0, s1, s2, j) & 63;
		*m = sbyte(s0, s1, s2, j + 4) & 63;
	} else {
		*sc = (sbyte(s0, s1, s2, j + 4) & 0xF) | ((sbyte(s0, s1, s2, j - 4) >> 6) << 4);
		*m = (sbyte(s0, s1, s2, j + 4) >> 4) | ((sbyte(s0, s1, s2, j) >> 6) << 4);
	}
}

/* ------------------------------------------------------------- units */

template <uint32_t T>
__host__ __device__ constexpr bool
is_float_type()
{
	return T == QUANT_F32 || T == QUANT_F16 || T == QUANT_BF16;
}

/* weights in a unit */
template <uint32_t T>
__host__ __device__ constexpr uint32_t
unit_w()
{
	return T == QUANT_Q4_K || T == QUANT_Q6_K ? 16 : 8;
}

/* the columns between a unit's two runs */
template <uint32_t T>
__host__ __device__ constexpr uint32_t
unit_gap()
{
	return is_float_type<T>() || T == QUANT_Q8_0 ? 4 : T == QUANT_Q4_K ? 32 : T == QUANT_Q6_K ? 64 : 16;
}

/* the first column of unit u (the first run's; see the deq_ functions) */
template <uint32_t T>
static __device__ __forceinline__ uint32_t
unit_col(uint32_t u)
{
	if constexpr (is_float_type<T>() || T == QUANT_Q8_0)
		return 8 * u;
	else if constexpr (T == QUANT_Q4_K)
		return 256 * (u >> 4) + 64 * (u >> 2 & 3) + 8 * (u & 3);
	else if constexpr (T == QUANT_Q6_K)
		return 256 * (u >> 4) + 128 * (u >> 3 & 1) + 32 * (u >> 2 & 1) + 8 * (u & 3);
	else
		return 32 * (u >> 2) + 4 * (u & 3);
}

/* Each deq_ function writes unit u of a row: w[0 .. W/2) are the columns
 * unit_col(u) + i, w[W/2 .. W) the columns unit_col(u) + unit_gap + i. The
 * comments give the C each mirrors. */

/* F32: columns 8u .. 8u+7. a16: the row is 16-byte aligned. */
static __device__ __forceinline__ void
deq_f32(const uint8_t *row, uint32_t u, int a16, float *w)
{
	const float *p = (const float *)row + 8 * (size_t)u;

	if (a16) {
		float4 a = __ldg((const float4 *)p), b = __ldg((const float4 *)p + 1);

		w[0] = a.x;
		w[1] = a.y;
		w[2] = a.z;
		w[3] = a.w;
		w[4] = b.x;
		w[5] = b.y;
		w[6] = b.z;
		w[7] = b.w;
	} else {
#pragma unroll
		for (int i = 0; i < 8; i++)
			w[i] = __ldg(p + i);
	}
}

/* F16 (f16_to), BF16 (bf16_to): columns 8u .. 8u+7, the first value of a
 * word in its low half */
template <bool BF>
static __device__ __forceinline__ float
half_to_f32(uint32_t h)
{
	return BF ? bf16(h) : f16(h);
}

template <bool BF>
static __device__ __forceinline__ void
deq_half(const uint8_t *row, uint32_t u, int a16, float *w)
{
	const uint8_t *p = row + 16 * (size_t)u;

	if (a16) {
		uint4 v = __ldg((const uint4 *)p);
		uint32_t h[4] = {v.x, v.y, v.z, v.w};

#pragma unroll
		for (int i = 0; i < 4; i++) {
			w[2 * i] = half_to_f32<BF>(h[i] & 0xffff);
			w[2 * i + 1] = half_to_f32<BF>(h[i] >> 16);
		}
	} else {
#pragma unroll
		for (int i = 0; i < 8; i++)
			w[i] = half_to_f32<BF>(ld16(p + 2 * i));
	}
}

/* Q8_0 (q8_0_deblock), 34 bytes: f16 d, 32 int8. Block u/4, codes
 * 8(u%4) .. +7: x[j] = (float)(int8_t)y[2 + j] * d. */
static __device__ __forceinline__ void
deq_q8_0(const uint8_t *row, uint32_t u, float *w)
{
	const uint8_t *b = row + (size_t)(u >> 2) * 34, *q = b + 2 + 8 * (u & 3);
	float d = f16(ld16(b));
	/* the int8 codes plus 128, 0 .. 255, for qf */
	uint32_t v[2] = {ld32_a2(q) ^ 0x80808080u, ld32_a2(q + 4) ^ 0x80808080u};

#pragma unroll
	for (uint32_t i = 0; i < 8; i++)
		w[i] = __fmul_rn(qf(v[i >> 2] >> 8 * (i & 3) & 0xff, 128.0f), d);
}

/* Q4_0 (q4_0_deblock), 18 bytes: f16 d, 16 bytes of nibbles. Block u/4,
 * bytes j = 4(u%4) .. +3: x[j] = ((y[2+j] & 15) - 8) * d,
 * x[j+16] = ((y[2+j] >> 4) - 8) * d. */
static __device__ __forceinline__ void
deq_q4_0(const uint8_t *row, uint32_t u, float *w)
{
	const uint8_t *b = row + (size_t)(u >> 2) * 18;
	float d = f16(ld16(b));
	uint32_t q = ld32_a2(b + 2 + 4 * (u & 3));

#pragma unroll
	for (uint32_t i = 0; i < 4; i++) {
		w[i] = __fmul_rn(qf(nib(q, 2 * i), 8.0f), d);
		w[i + 4] = __fmul_rn(qf(nib(q, 2 * i + 1), 8.0f), d);
	}
}

/* Q4_1 (q4_1_deblock), 20 bytes: f16 d, f16 m, 16 bytes of nibbles:
 * x[j] = (y[4+j] & 15) * d + m, x[j+16] = (y[4+j] >> 4) * d + m. */
static __device__ __forceinline__ void
deq_q4_1(const uint8_t *row, uint32_t u, float *w)
{
	const uint8_t *b = row + (size_t)(u >> 2) * 20;
	uint32_t dm = ld32(b), q = ld32(b + 4 + 4 * (u & 3));
	float d = f16(dm & 0xffff), m = f16(dm >> 16);

#pragma unroll
	for (uint32_t i = 0; i < 4; i++) {
		w[i] = __fadd_rn(__fmul_rn(qf(nib(q, 2 * i), 0.0f), d), m);
		w[i + 4] = __fadd_rn(__fmul_rn(qf(nib(q, 2 * i + 1), 0.0f), d), m);
	}
}

/* Q5_0 (q5_0_deblock), 22 bytes: f16 d, u32 qh, 16 bytes of nibbles; bit
 * j of qh is the fifth bit of x[j]: x[j] = ((y[6+j] & 15 | (qh >> j & 1)
 * << 4) - 16) * d, x[j+16] the same with y[6+j] >> 4 and bit j+16. */
static __device__ __forceinline__ void
deq_q5_0(const uint8_t *row, uint32_t u, float *w)
{
	const uint8_t *b = row + (size_t)(u >> 2) * 22;
	uint32_t j0 = 4 * (u & 3), qh = ld32_a2(b + 2), q = ld32_a2(b + 6 + j0);
	float d = f16(ld16(b));

#pragma unroll
	for (uint32_t i = 0; i < 4; i++) {
		uint32_t j = j0 + i;
		uint32_t q0 = nib(q, 2 * i) | (qh >> j & 1) << 4;
		uint32_t q1 = nib(q, 2 * i + 1) | (qh >> (j + 16) & 1) << 4;

		w[i] = __fmul_rn(qf(q0, 16.0f), d);
		w[i + 4] = __fmul_rn(qf(q1, 16.0f), d);
	}
}

/* Q5_1 (q5_1_deblock), 24 bytes: f16 d, f16 m, u32 qh, 16 bytes of
 * nibbles: as Q5_0, but x = q * d + m. */
static __device__ __forceinline__ void
deq_q5_1(const uint8_t *row, uint32_t u, float *w)
{
	const uint8_t *b = row + (size_t)(u >> 2) * 24;
	uint32_t j0 = 4 * (u & 3), dm = ld32(b), qh = ld32(b + 4), q = ld32(b + 8 + j0);
	float d = f16(dm & 0xffff), m = f16(dm >> 16);

#pragma unroll
	for (uint32_t i = 0; i < 4; i++) {
		uint32_t j = j0 + i;
		uint32_t q0 = nib(q, 2 * i) | (qh >> j & 1) << 4;
		uint32_t q1 = nib(q, 2 * i + 1) | (qh >> (j + 16) & 1) << 4;

		w[i] = __fadd_rn(__fmul_rn(qf(q0, 0.0f), d), m);
		w[i + 4] = __fadd_rn(__fmul_rn(qf(q1, 0.0f), d), m);
	}
}

/* Q4_K (q4k_deblock), 144 bytes: f16 d, f16 dmin, 12 bytes of scales and
 * mins, 128 bytes of nibbles: bytes q[32p + l] (p < 4, l < 32) hold x[64p
 * + l] (low nibble, sub-block 2p) and x[64p + 32 + l] (high nibble,
 * sub-block 2p + 1), x = d * sc * q - dmin * m. Super-block u/16, p = u/4
 * % 4, l = 8(u%4) .. +7. */
static __device__ __forceinline__ void
deq_q4_k(const uint8_t *row, uint32_t u, float *w)
{
	const uint8_t *b = row + (size_t)(u >> 4) * 144;
	uint32_t p = u >> 2 & 3, dm = ld32(b), s0 = ld32(b + 4), s1 = ld32(b + 8), s2 = ld32(b + 12);
	const uint8_t *q = b + 16 + 32 * p + 8 * (u & 3);
	uint32_t v[2] = {ld32(q), ld32(q + 4)}, sc, m;
	float d = f16(dm & 0xffff), dmin = f16(dm >> 16), d1, m1, d2, m2;

	q4k_scale_min(2 * p, s0, s1, s2, &sc, &m);
	d1 = __fmul_rn(d, qf(sc, 0.0f));
	m1 = __fmul_rn(dmin, qf(m, 0.0f));
	q4k_scale_min(2 * p + 1, s0, s1, s2, &sc, &m);
	d2 = __fmul_rn(d, qf(sc, 0.0f));
	m2 = __fmul_rn(dmin, qf(m, 0.0f));
#pragma unroll
	for (uint32_t i = 0; i < 8; i++) {
		w[i] = __fsub_rn(__fmul_rn(d1, qf(nib(v[i >> 2], 2 * (i & 3)), 0.0f)), m1);
		w[i + 8] = __fsub_rn(__fmul_rn(d2, qf(nib(v[i >> 2], 2 * (i & 3) + 1), 0.0f)), m2);
	}
}

/* Q6_K (q6k_deblock), 210 bytes: ql[128], qh[64], int8 scales[16], f16 d.
 * Half h (< 2) of the super-block has ql + 64h, qh + 32h, scales + 8h;
 * in it, for l < 32 and is = l / 16:
 *   x[l]      = d * sc[is]     * ((ql[l]      & 15 | (qh[l] >> 0 & 3) << 4) - 32)
 *   x[l + 32] = d * sc[is + 2] * ((ql[l + 32] & 15 | (qh[l] >> 2 & 3) << 4) - 32)
 *   x[l + 64] = d * sc[is + 4] * ((ql[l]      >> 4 | (qh[l] >> 4 & 3) << 4) - 32)
 *   x[l + 96] = d * sc[is + 6] * ((ql[l + 32] >> 4 | (qh[l] >> 6 & 3) << 4) - 32)
 * Unit u: super-block u/16, h = u/8 % 2, g = u/4 % 2 picks the pair
 * (x[l + 32g], x[l + 32g + 64]), l = 8(u%4) .. +7 (one is for all 8). */
static __device__ __forceinline__ void
deq_q6_k(const uint8_t *row, uint32_t u, float *w)
{
	const uint8_t *b = row + (size_t)(u >> 4) * 210;
	uint32_t h = u >> 3 & 1, g = u >> 2 & 1, l0 = 8 * (u & 3);
	const uint8_t *ql = b + 64 * h + 32 * g + l0, *qh = b + 128 + 32 * h + l0;
	const uint8_t *sc = b + 192 + 8 * h + l0 / 16 + 2 * g;
	uint32_t lo[2] = {ld32_a2(ql), ld32_a2(ql + 4)}, hi[2] = {ld32_a2(qh), ld32_a2(qh + 4)};
	float d = f16(ld16(b + 208));
	/* d * sc, rounded as the C rounds d * (float)sc[is] before the code */
	float d1 = __fmul_rn(d, qf(ld8(sc) ^ 0x80, 128.0f)), d2 = __fmul_rn(d, qf(ld8(sc + 4) ^ 0x80, 128.0f));

#pragma unroll
	for (uint32_t i = 0; i < 8; i++) {
		uint32_t ql_b = lo[i >> 2] >> 8 * (i & 3) & 0xff;
		uint32_t qh_b = hi[i >> 2] >> 8 * (i & 3) & 0xff;
		uint32_t q1 = (ql_b & 15) | (qh_b >> 2 * g & 3) << 4;
		uint32_t q2 = (ql_b >> 4) | (qh_b >> (2 * g + 4) & 3) << 4;

		w[i] = __fmul_rn(d1, qf(q1, 32.0f));
		w[i + 8] = __fmul_rn(d2, qf(q2, 32.0f));
	}
}

template <uint32_t T>
static __device__ __forceinline__ void
deq_unit(const uint8_t *row, uint32_t u, int a16, float *w)
{
	if constexpr (T == QUANT_F32)
		deq_f32(row, u, a16, w);
	else if constexpr (T == QUANT_F16 || T == QUANT_BF16)
		deq_half<T == QUANT_BF16>(row, u, a16, w);
	else if constexpr (T == QUANT_Q8_0)
		deq_q8_0(row, u, w);
	else if constexpr (T == QUANT_Q4_0)
		deq_q4_0(row, u, w);
	else if constexpr (T == QUANT_Q4_1)
		deq_q4_1(row, u, w);
	else if constexpr (T == QUANT_Q5_0)
		deq_q5_0(row, u, w);
	else if constexpr (T == QUANT_Q5_1)
		deq_q5_1(row, u, w);
	else if constexpr (T == QUANT_Q4_K)
		deq_q4_k(row, u, w);
	else
		deq_q6_k(row, u, w);
}

/* column k of a row of a float type, for the columns past the last whole
 * unit (F32, F16 and BF16 rows may have any length) */
template <uint32_t T>
static __device__ __forceinline__ float
deq_one(const uint8_t *row, uint32_t k)
{
	if constexpr (T == QUANT_F32)
		return __ldg((const float *)row + k);
	else
		return half_to_f32<T == QUANT_BF16>(ld16(row + 2 * (size_t)k));
}

/* ------------------------------------------------------------- matmul */

#define MM_THREADS 128          /* a block: 4 warps over the same rows */
#define MM_WARPS (MM_THREADS / 32)
#define MM_TILE 8               /* activation rows a block takes, at most */

/* weight rows of a block: 32 weights of a unit each in registers */
template <uint32_t T>
__host__ __device__ constexpr uint32_t
mm_rows()
{
	return 32 / unit_w<T>();
}

static __device__ __forceinline__ float
warp_sum(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

/* the columns k .. k+RUN-1 and k+gap .. k+gap+RUN-1 of an activation row;
 * x16: p is 16-byte aligned */
template <uint32_t RUN>
static __device__ __forceinline__ void
ld_x(const float *p, uint32_t gap, int x16, float *v)
{
	if (x16) {
#pragma unroll
		for (uint32_t i = 0; i < RUN; i += 4) {
			float4 a = __ldg((const float4 *)(p + i)), b = __ldg((const float4 *)(p + gap + i));

			v[i] = a.x;
			v[i + 1] = a.y;
			v[i + 2] = a.z;
			v[i + 3] = a.w;
			v[RUN + i] = b.x;
			v[RUN + i + 1] = b.y;
			v[RUN + i + 2] = b.z;
			v[RUN + i + 3] = b.w;
		}
	} else {
#pragma unroll
		for (uint32_t i = 0; i < RUN; i++) {
			v[i] = __ldg(p + i);
			v[RUN + i] = __ldg(p + gap + i);
		}
	}
}

/* The thread's share of the dot products of nr (<= R) weight rows from w
 * with nt (<= NT) activation rows from x: the units threadIdx.x,
 * + MM_THREADS, ... of each row, then (float types) the columns past the
 * last whole unit. Nearly all of a decode step's time is spent here. */
template <uint32_t T, uint32_t NT>
static __device__ __forceinline__ void
mm_part(const uint8_t *w, size_t row_bytes, uint32_t nr, uint32_t cols, const float *x, size_t ldx,
	uint32_t nt, int a16, int x16, float (&acc)[mm_rows<T>()][NT])
{
	constexpr uint32_t R = mm_rows<T>(), W = unit_w<T>();
	uint32_t units = cols / W;

#pragma unroll
	for (uint32_t r = 0; r < R; r++)
#pragma unroll
		for (uint32_t b = 0; b < NT; b++)
			acc[r][b] = 0.0f;
	for (uint32_t u = threadIdx.x; u < units; u += MM_THREADS) {
		uint32_t k = unit_col<T>(u);
		float wv[R][W];

		/* rows past the matrix (the last block's) count as zeros
		 * and are never stored */
#pragma unroll
		for (uint32_t r = 0; r < R; r++) {
			if (r < nr) {
				deq_unit<T>(w + r * row_bytes, u, a16, wv[r]);
			} else {
#pragma unroll
				for (uint32_t i = 0; i < W; i++)
					wv[r][i] = 0.0f;
			}
		}
#pragma unroll
		for (uint32_t b = 0; b < NT; b++) {
			float xv[W];

			if (b >= nt)
				break;
			ld_x<W / 2>(x + b * ldx + k, unit_gap<T>(), x16, xv);
#pragma unroll
			for (uint32_t r = 0; r < R; r++)
#pragma unroll
				for (uint32_t i = 0; i < W; i++)
					acc[r][b] = fmaf(wv[r][i], xv[i], acc[r][b]);
		}
	}
	/* (unrolled with guards: an index that is not a constant would put
	 * acc in local memory) */
	if constexpr (is_float_type<T>()) {
		for (uint32_t k = units * W + threadIdx.x; k < cols; k += MM_THREADS)
#pragma unroll
			for (uint32_t r = 0; r < R; r++) {
				float v;

				if (r >= nr)
					break;
				v = deq_one<T>(w + r * row_bytes, k);
#pragma unroll
				for (uint32_t b = 0; b < NT; b++) {
					if (b >= nt)
						break;
					acc[r][b] = fmaf(v, __ldg(x + b * ldx + k), acc[r][b]);
				}
			}
	}
}

/* Block i: weight rows r0 = i / ntiles * R .. r0 + R - 1 (those below
 * rows) by activation rows b0 = i % ntiles * NT .. b0 + NT - 1 (those
 * below nb); the four warps' sums meet in shared memory. */
template <uint32_t T, uint32_t NT>
static __global__ void __launch_bounds__(MM_THREADS)
mm_kernel(const uint8_t *__restrict__ w, size_t row_bytes, uint32_t rows, uint32_t cols,
	  const float *__restrict__ x, size_t ldx, uint32_t nb, uint32_t ntiles, float *__restrict__ y,
	  size_t ldy, int a16, int x16)
{
	constexpr uint32_t R = mm_rows<T>();
	__shared__ float part[MM_WARPS][R * NT];
	uint32_t r0 = blockIdx.x / ntiles * R, b0 = blockIdx.x % ntiles * NT, nr, nt, i;
	float acc[R][NT];

	if (r0 >= rows || b0 >= nb)
		return;
	nr = min(R, rows - r0);
	nt = min(NT, nb - b0);
	mm_part<T, NT>(w + (size_t)r0 * row_bytes, row_bytes, nr, cols, x + (size_t)b0 * ldx, ldx, nt, a16, x16,
		       acc);
#pragma unroll
	for (uint32_t r = 0; r < R; r++)
#pragma unroll
		for (uint32_t b = 0; b < NT; b++) {
			float v = warp_sum(acc[r][b]);

			if ((threadIdx.x & 31) == 0)
				part[threadIdx.x >> 5][r * NT + b] = v;
		}
	__syncthreads();
	i = threadIdx.x;
	if (i < R * NT && i / NT < nr && i % NT < nt) {
		float s = 0.0f;

		for (uint32_t k = 0; k < MM_WARPS; k++)
			s += part[k][i];
		y[(size_t)(b0 + i % NT) * ldy + r0 + i / NT] = s;
	}
}

template <uint32_t T, uint32_t NT>
static void
mm_run(const kmat *w, const float *x, size_t ldx, uint32_t nb, float *y, size_t ldy, int a16, int x16,
       cudaStream_t st)
{
	uint32_t ntiles = (nb + NT - 1) / NT;
	size_t blocks = (size_t)((w->rows + mm_rows<T>() - 1) / mm_rows<T>()) * ntiles;

	if (blocks > INT_MAX) {
		bad_args("run the matmul kernel (too many rows)");
		return;
	}
	mm_kernel<T, NT><<<(unsigned)blocks, MM_THREADS, 0, st>>>((const uint8_t *)w->data, w->row_bytes, w->rows,
								 w->cols, x, ldx, nb, ntiles, y, ldy, a16, x16);
}

/* the smallest tile that holds a decode step's rows: its loops and
 * registers sized to them */
template <uint32_t T>
static void
mm_type(const kmat *w, const float *x, size_t ldx, uint32_t nb, float *y, size_t ldy, int a16, int x16,
	cudaStream_t st)
{
	if (nb == 1)
		mm_run<T, 1>(w, x, ldx, nb, y, ldy, a16, x16, st);
	else if (nb == 2)
		mm_run<T, 2>(w, x, ldx, nb, y, ldy, a16, x16, st);
	else if (nb <= 4)
		mm_run<T, 4>(w, x, ldx, nb, y, ldy, a16, x16, st);
	else
		mm_run<T, MM_TILE>(w, x, ldx, nb, y, ldy, a16, x16, st);
}

/* the weights 16-byte aligned (wide loads for the float types) */
static int
aligned16(const kmat *w)
{
	return (uintptr_t)w->data % 16 == 0 && w->row_bytes % 16 == 0;
}

void
kmm_launch(const kmat *w, const float *x, size_t ldx, uint32_t nb, float *y, size_t ldy, cudaStream_t st)
{
	int a16, x16;

	check_mat(w, "multiply");
	if (nb == 0 || w->rows == 0)
		return;
	if (nb > 1 && (ldx < w->cols || ldy < w->rows))
		bad_args("multiply a weight matrix (activation or output rows overlap)");
	a16 = aligned16(w);
	x16 = (uintptr_t)x % 16 == 0 && (nb == 1 || ldx % 4 == 0);
	switch (w->type) {
	case QUANT_F32:
		mm_type<QUANT_F32>(w, x, ldx, nb, y, ldy, a16, x16, st);
		break;
	case QUANT_F16:
		mm_type<QUANT_F16>(w, x, ldx, nb, y, ldy, a16, x16, st);
		break;
	case QUANT_BF16:
		mm_type<QUANT_BF16>(w, x, ldx, nb, y, ldy, a16, x16, st);
		break;
	case QUANT_Q8_0:
		mm_type<QUANT_Q8_0>(w, x, ldx, nb, y, ldy, a16, x16, st);
		break;
	case QUANT_Q4_0:
		mm_type<QUANT_Q4_0>(w, x, ldx, nb, y, ldy, a16, x16, st);
		break;
	case QUANT_Q4_1:
		mm_type<QUANT_Q4_1>(w, x, ldx, nb, y, ldy, a16, x16, st);
		break;
	case QUANT_Q5_0:
		mm_type<QUANT_Q5_0>(w, x, ldx, nb, y, ldy, a16, x16, st);
		break;
	case QUANT_Q5_1:
		mm_type<QUANT_Q5_1>(w, x, ldx, nb, y, ldy, a16, x16, st);
		break;
	case QUANT_Q4_K:
		mm_type<QUANT_Q4_K>(w, x, ldx, nb, y, ldy, a16, x16, st);
		break;
	case QUANT_Q6_K:
		mm_type<QUANT_Q6_K>(w, x, ldx, nb, y, ldy, a16, x16, st);
		break;
	}
	CUDA_LAUNCHED("run the matmul kernel");
}

/* ------------------------------------------------------------- embedding */

#define EMB_THREADS 256

/* Unit u of row (NULL: a token outside the table, zeros) into out, the
 * token's row of x; for a float type, u = cols / W is the columns past
 * the last whole unit. */
template <uint32_t T>
static __device__ __forceinline__ void
embed_unit(const uint8_t *row, uint32_t u, uint32_t cols, int a16, float *out)
{
	constexpr uint32_t W = unit_w<T>();

	if (u < cols / W) {
		uint32_t k = unit_col<T>(u);
		float v[W];

		if (row) {
			deq_unit<T>(row, u, a16, v);
		} else {
#pragma unroll
			for (uint32_t i = 0; i < W; i++)
				v[i] = 0.0f;
		}
#pragma unroll
		for (uint32_t i = 0; i < W / 2; i++) {
			out[k + i] = v[i];
			out[k + unit_gap<T>() + i] = v[W / 2 + i];
		}
	} else {
		if constexpr (is_float_type<T>())
			for (uint32_t k = u * W; k < cols; k++)
				out[k] = row ? deq_one<T>(row, k) : 0.0f;
	}
}

/* a thread a (token, unit) */
template <uint32_t T>
static __global__ void __launch_bounds__(EMB_THREADS)
embed_kernel(const uint8_t *__restrict__ w, size_t row_bytes, uint32_t rows, uint32_t cols,
	     const int32_t *__restrict__ tok, uint32_t ntok, float *__restrict__ x, int a16)
{
	constexpr uint32_t W = unit_w<T>();
	uint32_t per = cols / W + (cols % W != 0), t, u;
	size_t i = (size_t)blockIdx.x * EMB_THREADS + threadIdx.x;
	int32_t r;

	if (i >= (size_t)ntok * per)
		return;
	t = (uint32_t)(i / per);
	u = (uint32_t)(i % per);
	r = __ldg(tok + t);
	embed_unit<T>(r >= 0 && (uint32_t)r < rows ? w + (size_t)r * row_bytes : NULL, u, cols, a16,
		      x + (size_t)t * cols);
}

template <uint32_t T>
static void
embed_run(const kmat *table, const int32_t *tok, uint32_t ntok, float *x, int a16, cudaStream_t st)
{
	constexpr uint32_t W = unit_w<T>();
	size_t n = (size_t)ntok * (table->cols / W + (table->cols % W != 0));
	size_t blocks = (n + EMB_THREADS - 1) / EMB_THREADS;

	if (blocks > INT_MAX) {
		bad_args("run the embedding kernel (too many tokens)");
		return;
	}
	embed_kernel<T><<<(unsigned)blocks, EMB_THREADS, 0, st>>>((const uint8_t *)table->data, table->row_bytes,
								   table->rows, table->cols, tok, ntok, x, a16);
}

void
kembed_launch(const kmat *table, const int32_t *tok, uint32_t ntok, float *x, cudaStream_t st)
{
	int a16;

	check_mat(table, "look up embeddings in");
	if (ntok == 0 || table->cols == 0)
		return;
	a16 = aligned16(table);
	switch (table->type) {
	case QUANT_F32:
		embed_run<QUANT_F32>(table, tok, ntok, x, a16, st);
		break;
	case QUANT_F16:
		embed_run<QUANT_F16>(table, tok, ntok, x, a16, st);
		break;
	case QUANT_BF16:
		embed_run<QUANT_BF16>(table, tok, ntok, x, a16, st);
		break;
	case QUANT_Q8_0:
		embed_run<QUANT_Q8_0>(table, tok, ntok, x, a16, st);
		break;
	case QUANT_Q4_0:
		embed_run<QUANT_Q4_0>(table, tok, ntok, x, a16, st);
		break;
	case QUANT_Q4_1:
		embed_run<QUANT_Q4_1>(table, tok, ntok, x, a16, st);
		break;
	case QUANT_Q5_0:
		embed_run<QUANT_Q5_0>(table, tok, ntok, x, a16, st);
		break;
	case QUANT_Q5_1:
		embed_run<QUANT_Q5_1>(table, tok, ntok, x, a16, st);
		break;
	case QUANT_Q4_K:
		embed_run<QUANT_Q4_K>(table, tok, ntok, x, a16, st);
		break;
	case QUANT_Q6_K:
		embed_run<QUANT_Q6_K>(table, tok, ntok, x, a16, st);
		break;
	}
	CUDA_LAUNCHED("run the embedding kernel");
}
