/* dot: the engine's matrix products (weights in GGUF block types times
 * activations quantized the way ggml does it), with AVX-512 (VNNI) and
 * AVX2/FMA kernels chosen at run time (the AVX-512 ones give the AVX2 ones'
 * bits: see "AVX-512 kernels" below) and scalar twins that compute the same
 * integer sums.
 *
 * Formats of the activations (little-endian; lib/quant has the weights'):
 *   Q8_0 34 bytes: f16 d, 32 int8            (for Q4_0, Q5_0, Q8_0 weights)
 *   Q8_1 36 bytes: f16 d, f16 s, 32 int8     (for Q4_1, Q5_1)
 *   Q8_K 292 bytes: f32 d, 256 int8, 16 int16 bsums (sums of 16 codes)
 *   F32 for F32, F16 and BF16 weights (the weights are widened instead).
 * The codes are those of ggml's x86 quantizers: Q8_0 and Q8_1 as the AVX2
 * quantize_row_q8_0/q8_1 make them (id = 127/amax, round half to even),
 * Q8_K as quantize_row_q8_K_ref (the signed max maps to -127).
 *
 * How the products are organised (nearly all of the engine's time):
 *   - Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: every (weight row, activation row) pair summed in
 *     ggml's order, 8 float lanes with one FMA a block, whatever the batch.
 *     4 or more activation rows: tiles of 1 weight row by an octet of 8
 *     activation rows, or 2 by 4 (AVX-512: 4 by up to 8), that share the
 *     unpacked weights and the scale products;
 *   - 1 to 3 activation rows (decode): up to 4 weight rows streamed at
 *     once against each activation row (AVX-512: 8 for the 4-bit types),
 *     the next rows prefetched by hand.
 *   - Q4_K, Q6_K: a super-block of a weight row unpacked to 8 vectors of
 *     codes and 8 of sub-block scales (AVX-512: 4 and 4, two chunks a
 *     register), then multiplied against up to 8 activation rows (AVX-512:
 *     16; one row: a form that keeps nothing and prefetches ahead);
 *     sub-block scales are applied in integers (madd), the mins through
 *     Q8_K's bsums, one float step a super-block.
 *   - F32, F16, BF16: register tiles of FMAs over blocks that stay in L2,
 *     or OpenBLAS's sgemm for 32 or more activation rows when built with
 *     -DSLUICE_OPENBLAS and linked with -lopenblas.
 * The integer sums are ggml's (Q4_0: sum((q-8)*x), Q5_0: sum((q-16)*x);
 * Q4_1 and Q5_1: sum(q*x) and m * s with Q8_1's f16 s; K types: scales and mins as ggml applies them),
 * so only float rounding separates these products from llama.cpp's. The
 * scale of every activation block (with its sum of codes or its s) is
 * converted once per call into a thread-local scratch, 8 activation rows
 * side by side, so that one load gives the 8 lanes of a reduced block. */
#include <cpuid.h>
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dot.h"
#include "quant.h"

#define QK 32
#define QKK 256
#define Q8_0_B 34
#define Q8_1_B 36
#define Q8_K_B 292
#define Q4_0_B 18
#define Q4_1_B 20
#define Q5_0_B 22
#define Q5_1_B 24
#define Q4_K_B 144
#define Q6_K_B 210
#define NONE ((uint32_t)-1)

/* ------------------------------------------------------------ helpers */

static inline uint16_t
rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline float
rdf16(const uint8_t *p)
{
	return quant_f16_to_f32(rd16(p));
}

static inline float
rdf32(const uint8_t *p)
{
	float f;

	memcpy(&f, p, 4);
	return f;
}

static inline int16_t
rdi16(const uint8_t *p)
{
	return (int16_t)rd16(p);
}

/* round half to even for |v| < 2^22, as vroundps and ggml's nearest_int
 * do it; NaN stays NaN (the caller maps it) */
static inline float
rne(float v)
{
	return (v + 12582912.f) - 12582912.f;
}

/* an int8 code from a rounded float, as cvtps2dq + packs give it on x86:
 * NaN (and out-of-range values, which finite inputs never give here)
 * saturate to -128 / 127 the way the packs instructions do */
static inline int
code8(float r)
{
	if (!(r >= -128.f && r <= 127.f))
		return r > 127.f ? 127 : -128;
	return (int)r;
}

/* ------------------------------------------------------------ dispatch state */

static int isa_max = -1;        /* the best path this CPU runs, from cpuid */
static int isa_default = -1;    /* isa_max, or what SLUICE_ISA / SLUICE_SCALAR ask */
static int isa_cur = -1;        /* what dot_set_isa chose; -1 the default */

static int
probe_isa(void)
{
	unsigned a, b, c, d;

	/* f16c through cpuid: clang's __builtin_cpu_supports lacks it */
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_F16C))
		return DOT_SCALAR;
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
		return DOT_SCALAR;
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
	    && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
		return DOT_AVX512;
	return DOT_AVX2;
}

static void
isa_init(void)
{
	const char *e;
	int m, def;

	if (__atomic_load_n(&isa_default, __ATOMIC_ACQUIRE) >= 0)
		return;
	m = probe_isa();
	def = m;
	if ((e = getenv("SLUICE_ISA")) && dot_isa_parse(e) >= 0 && dot_isa_parse(e) <= m)
		def = dot_isa_parse(e);
	if ((e = getenv("SLUICE_SCALAR")) && *e && strcmp(e, "0") != 0)
		def = DOT_SCALAR;
	__atomic_store_n(&isa_max, m, __ATOMIC_RELAXED);
	__atomic_store_n(&isa_default, def, __ATOMIC_RELEASE);
}

int
dot_isa_parse(const char *s)
{
	static const char *const names[] = {"scalar", "avx2", "avx512"};

	for (int i = 0; s && i < 3; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

const char *
dot_isa_name(int isa)
{
	return isa == DOT_AVX512 ? "AVX-512" : isa == DOT_AVX2 ? "AVX2" : "scalar";
}

int
dot_isa_max(void)
{
	isa_init();
	return __atomic_load_n(&isa_max, __ATOMIC_RELAXED);
}

int
dot_isa(void)
{
	int c = __atomic_load_n(&isa_cur, __ATOMIC_RELAXED);

	isa_init();
	return c >= 0 ? c : __atomic_load_n(&isa_default, __ATOMIC_RELAXED);
}

int
dot_set_isa(int isa)
{
	if (isa < -1 || isa > dot_isa_max())
		return -1;
	__atomic_store_n(&isa_cur, isa, __ATOMIC_RELAXED);
	return 0;
}

int
dot_simd(void)
{
	return dot_isa() >= DOT_AVX2;
}

void
dot_force_scalar(int on)
{
	dot_set_isa(on ? DOT_SCALAR : -1);
}

/* One grow-only buffer per thread for the converted activation scales and
 * the sgemm panels: allocated on first need, kept for the thread's life
 * (the engine's threads are a fixed pool). NULL when it cannot grow; the
 * callers then take the scalar path, which needs none. */
static _Thread_local struct {
	float *p;
	size_t cap;
} scratch;

static float *
scratch_get(size_t nfloat)
{
	if (nfloat <= scratch.cap)
		return scratch.p;
	if (nfloat > ((size_t)1 << 40) / sizeof(float))
		return NULL;
	nfloat = (nfloat + 4095) & ~(size_t)4095;
	free(scratch.p);
	scratch.p = aligned_alloc(64, nfloat * sizeof(float));
	scratch.cap = scratch.p ? nfloat : 0;
	return scratch.p;
}

/* ------------------------------------------------------------ OpenBLAS, if built with it */

/* Built with -DSLUICE_OPENBLAS (and linked with -lopenblas), F32/F16/BF16
 * products of 32 or more activation rows go through sgemm; without it the
 * AVX2 tiles below do all of them. (Weak references would need no flag,
 * but Debian's gcc links with --as-needed, which drops a library that only
 * weak references name.) */
#ifdef SLUICE_OPENBLAS
#include <cblas.h>
void openblas_set_num_threads(int);

/* The engine runs its own pool of threads, each on its own rows: OpenBLAS
 * must not start its own threads inside each call. */
static int
blas_ready(void)
{
	static int done;

	if (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
		openblas_set_num_threads(1);
		__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	}
	return 1;
}
#else
static int
blas_ready(void)
{
	return 0;
}
#endif

/* ------------------------------------------------------------ activation formats */

uint32_t
dot_act_type(uint32_t wtype)
{
	switch (wtype) {
	case QUANT_F32:
	case QUANT_F16:
	case QUANT_BF16:
		return QUANT_F32;
	case QUANT_Q4_0:
	case QUANT_Q5_0:
	case QUANT_Q8_0:
		return QUANT_Q8_0;
	case QUANT_Q4_1:
	case QUANT_Q5_1:
		return QUANT_Q8_1;
	case QUANT_Q4_K:
	case QUANT_Q6_K:
		return QUANT_Q8_K;
	default:
		return NONE;
	}
}

size_t
dot_act_bytes(uint32_t wtype, size_t n)
{
	uint32_t at = dot_act_type(wtype);

	if (at == NONE || n == 0 || quant_row_bytes(wtype, n) == 0)
		return 0;
	return quant_row_bytes(at, n);
}

/* max |x| of 32 values: the order does not matter for max */
static float
amax32(const float *x)
{
	float m = 0.f;

	for (int j = 0; j < QK; j++) {
		float a = fabsf(x[j]);

		m = a > m ? a : m;      /* maxps(a, m): a NaN is passed over */
	}
	return m;
}

/* Q8_0 (s == NULL) or Q8_1 block of 32 values, as ggml's AVX2 code makes
 * them: d = amax/127 stored as f16, codes round(x * 127/amax) to even,
 * s = f16(d * sum of codes) with d before its f16 rounding. */
static void
q8_block(const float *x, uint8_t *d16, uint8_t *s16, int8_t *q)
{
	float amax = amax32(x), d = amax / 127.f;
	float id = amax != 0.f ? 127.f / amax : 0.f;
	int sum = 0;
	uint16_t h = quant_f32_to_f16(d);

	for (int j = 0; j < QK; j++) {
		int c = code8(rne(x[j] * id));

		q[j] = (int8_t)c;
		sum += c;
	}
	d16[0] = (uint8_t)h;
	d16[1] = (uint8_t)(h >> 8);
	if (s16) {
		h = quant_f32_to_f16(d * (float)sum);
		s16[0] = (uint8_t)h;
		s16[1] = (uint8_t)(h >> 8);
	}
}

/* Q8_K as quantize_row_q8_K_ref: the signed value of largest magnitude
 * (the first on ties) maps to -127, codes nearest_int (half to even)
 * capped at 127, d = 1/iscale; an all-zero block is all zeros (ggml leaves
 * bsums unset there). */
static void
q8k_block(const float *x, uint8_t *y)
{
	float amax = 0.f, max = 0.f, iscale, d;
	int8_t *q = (int8_t *)(y + 4);

	for (int j = 0; j < QKK; j++) {
		float a = fabsf(x[j]);

		if (a > amax) {
			amax = a;
			max = x[j];
		}
	}
	if (!amax) {
		memset(y, 0, Q8_K_B);
		return;
	}
	iscale = -127.f / max;
	for (int j = 0; j < QKK; j++) {
		int v = code8(rne(iscale * x[j]));

		q[j] = (int8_t)(v < 127 ? v : 127);
	}
	for (int g = 0; g < 16; g++) {
		int s = 0;

		for (int j = 0; j < 16; j++)
			s += q[16 * g + j];
		y[260 + 2 * g] = (uint8_t)s;
		y[261 + 2 * g] = (uint8_t)((unsigned)s >> 8);
	}
	d = 1.f / iscale;
	memcpy(y, &d, 4);
}

static void quantize_act_avx2(uint32_t at, const float *x, uint8_t *y, size_t n);

void
dot_quantize_act(uint32_t wtype, const float *x, void *dst, size_t n)
{
	uint32_t at = dot_act_type(wtype);
	uint8_t *y = dst;

	if (dot_act_bytes(wtype, n) == 0)
		return;
	if (at != QUANT_F32 && dot_simd()) {
		quantize_act_avx2(at, x, y, n);
		return;
	}
	switch (at) {
	case QUANT_F32:
		memmove(dst, x, n * sizeof *x);
		break;
	case QUANT_Q8_0:
		for (size_t i = 0; i < n / QK; i++, y += Q8_0_B)
			q8_block(x + i * QK, y, NULL, (int8_t *)(y + 2));
		break;
	case QUANT_Q8_1:
		for (size_t i = 0; i < n / QK; i++, y += Q8_1_B)
			q8_block(x + i * QK, y, y + 2, (int8_t *)(y + 4));
		break;
	case QUANT_Q8_K:
		for (size_t i = 0; i < n / QKK; i++, y += Q8_K_B)
			q8k_block(x + i * QKK, y);
		break;
	}
}

/* ------------------------------------------------------------ scalar kernels
 * One weight row against one activation row at a time. The integer sums
 * of a block are exact; each block adds its float terms to one float. */

/* Q4_0: ggml's integer sum((q-8)*x), Q5_0: sum((q-16)*x); Q4_1 and Q5_1:
 * sum(q*x), then m * s with Q8_1's s (d times the sum of the codes,
 * rounded to f16) as ggml does. A Q5 code is the nibble with bit j of the
 * 32-bit qh above it (element j: low nibbles are 0..15, high 16..31). */
static float
sc_q4(uint32_t t, const uint8_t *w, const uint8_t *x, size_t nblk)
{
	int min = t == QUANT_Q4_1 || t == QUANT_Q5_1, q5 = t == QUANT_Q5_0 || t == QUANT_Q5_1;
	int wb = (int)quant_row_bytes(t, QK), wo = (min ? 4 : 2) + (q5 ? 4 : 0);
	int xb = min ? Q8_1_B : Q8_0_B, xo = min ? 4 : 2, z = min ? 0 : q5 ? 16 : 8;
	float sum = 0.f;

	for (size_t i = 0; i < nblk; i++, w += wb, x += xb) {
		const int8_t *q = (const int8_t *)(x + xo);
		uint32_t qh = q5 ? (uint32_t)w[wo - 4] | (uint32_t)w[wo - 3] << 8
				 | (uint32_t)w[wo - 2] << 16 | (uint32_t)w[wo - 1] << 24 : 0;
		int is = 0;

		for (int j = 0; j < 16; j++)
			is += (((w[wo + j] & 15) | (qh >> j & 1) << 4) - z) * q[j]
			    + ((w[wo + j] >> 4 | (qh >> (j + 16) & 1) << 4) - z) * q[j + 16];
		sum += (rdf16(w) * rdf16(x)) * (float)is;
		if (min)
			sum += rdf16(w + 2) * rdf16(x + 2);
	}
	return sum;
}

static float
sc_q8_0(const uint8_t *w, const uint8_t *x, size_t nblk)
{
	float sum = 0.f;

	for (size_t i = 0; i < nblk; i++, w += Q8_0_B, x += Q8_0_B) {
		const int8_t *a = (const int8_t *)(w + 2), *b = (const int8_t *)(x + 2);
		int is = 0;

		for (int j = 0; j < QK; j++)
			is += a[j] * b[j];
		sum += (rdf16(w) * rdf16(x)) * (float)is;
	}
	return sum;
}

/* Q4_K sub-block scales and mins, 6 bits each, from the 12 packed bytes:
 * sm[0..7] scales, sm[8..15] mins */
static inline void
q4k_scales(const uint8_t *s, uint8_t sm[16])
{
	uint32_t u0, u1, u2, v[4];
	const uint32_t k1 = 0x3f3f3f3f, k2 = 0x0f0f0f0f, k3 = 0x03030303;

	memcpy(&u0, s, 4);
	memcpy(&u1, s + 4, 4);
	memcpy(&u2, s + 8, 4);
	v[0] = u0 & k1;
	v[1] = (u2 & k2) | ((u0 >> 6 & k3) << 4);
	v[2] = u1 & k1;
	v[3] = (u2 >> 4 & k2) | ((u1 >> 6 & k3) << 4);
	memcpy(sm, v, 16);
}

static float
sc_q4_k(const uint8_t *w, const uint8_t *x, size_t nblk)
{
	float sum = 0.f;

	for (size_t i = 0; i < nblk; i++, w += Q4_K_B, x += Q8_K_B) {
		const int8_t *q = (const int8_t *)(x + 4);
		const uint8_t *qs = w + 16;
		uint8_t sm[16];
		int sumi = 0, summ = 0;
		float dx = rdf32(x);

		q4k_scales(w + 4, sm);
		for (int p = 0; p < 4; p++) {
			int lo = 0, hi = 0;

			for (int l = 0; l < 32; l++) {
				lo += (qs[32 * p + l] & 15) * q[64 * p + l];
				hi += (qs[32 * p + l] >> 4) * q[64 * p + 32 + l];
			}
			sumi += sm[2 * p] * lo + sm[2 * p + 1] * hi;
		}
		for (int j = 0; j < 8; j++)
			summ += sm[8 + j] * (rdi16(x + 260 + 4 * j) + rdi16(x + 262 + 4 * j));
		sum += (rdf16(w) * dx) * (float)sumi - (rdf16(w + 2) * dx) * (float)summ;
	}
	return sum;
}

/* the 6-bit code of element e (0..255) of a Q6_K block */
static inline int
q6k_code(const uint8_t *w, int e)
{
	int h = e >> 7, k = (e >> 5) & 3, l = e & 31;
	const uint8_t *ql = w + 64 * h, *qh = w + 128 + 32 * h;
	int lo = (k & 1 ? ql[l + 32] : ql[l]) >> (k & 2 ? 4 : 0) & 15;

	return lo | (qh[l] >> (2 * k) & 3) << 4;
}

static float
sc_q6_k(const uint8_t *w, const uint8_t *x, size_t nblk)
{
	float sum = 0.f;

	for (size_t i = 0; i < nblk; i++, w += Q6_K_B, x += Q8_K_B) {
		const int8_t *q = (const int8_t *)(x + 4), *sc = (const int8_t *)(w + 192);
		int sumi = 0, summ = 0;

		for (int g = 0; g < 16; g++) {
			int s = 0;

			for (int l = 0; l < 16; l++)
				s += q6k_code(w, 16 * g + l) * q[16 * g + l];
			sumi += sc[g] * s;
			summ += sc[g] * rdi16(x + 260 + 2 * g);
		}
		sum += (rdf16(w + 208) * rdf32(x)) * (float)(sumi - 32 * summ);
	}
	return sum;
}

static float
sc_float(uint32_t t, const uint8_t *w, const float *x, size_t n)
{
	float sum = 0.f;

	for (size_t k = 0; k < n; k++) {
		float v = t == QUANT_F32 ? rdf32(w + 4 * k)
			: t == QUANT_F16 ? rdf16(w + 2 * k) : quant_bf16_to_f32(rd16(w + 2 * k));

		sum += v * x[k];
	}
	return sum;
}

static void
scalar_rows(uint32_t t, const uint8_t *W, size_t rb, size_t r0, size_t r1, size_t n,
	    const uint8_t *X, size_t xs, size_t nb, float *y, size_t ldy)
{
	for (size_t b = 0; b < nb; b++) {
		const uint8_t *x = X + b * xs;

		for (size_t r = r0; r < r1; r++) {
			const uint8_t *w = W + r * rb;
			float v = 0.f;

			switch (t) {
			case QUANT_Q4_0:
			case QUANT_Q4_1:
			case QUANT_Q5_0:
			case QUANT_Q5_1:
				v = sc_q4(t, w, x, n / QK);
				break;
			case QUANT_Q8_0:
				v = sc_q8_0(w, x, n / QK);
				break;
			case QUANT_Q4_K:
				v = sc_q4_k(w, x, n / QKK);
				break;
			case QUANT_Q6_K:
				v = sc_q6_k(w, x, n / QKK);
				break;
			default:
				v = sc_float(t, w, (const float *)(const void *)x, n);
				break;
			}
			y[b * ldy + r] = v;
		}
	}
}

/* ------------------------------------------------------------ AVX2 kernels */

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define INL static inline __attribute__((always_inline)) AVX2

INL __m256i
ld256(const void *p)
{
	return _mm256_loadu_si256((const __m256i *)p);
}

/* 16 bytes of nibbles -> 32 codes 0..15: low nibbles first, then high */
INL __m256i
nib32(const uint8_t *p)
{
	__m128i v = _mm_loadu_si128((const __m128i *)p);

	return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(15));
}

/* bit j of the 32 bits at p -> byte j all ones, the others zero */
INL __m256i
bits32(const uint8_t *p)
{
	uint32_t u;
	__m256i rep, bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);

	memcpy(&u, p, 4);
	/* byte j gets byte j/8 of u, then keeps bit j%8 of it */
	rep = _mm256_shuffle_epi8(_mm256_set1_epi32((int)u),
				  _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
						    0x0101010101010101, 0));
	return _mm256_cmpeq_epi8(_mm256_and_si256(rep, bit), bit);
}

/* The 32-element block types by the kernels' number t: 0 Q4_0, 1 Q4_1,
 * 2 Q8_0, 3 Q5_0, 4 Q5_1 - bytes a block, where its codes start (a Q5
 * type's 32 high bits are the 4 bytes before), and whether it has a min
 * (m * s added, against Q8_1 activations). */
static const int qwb[5] = {Q4_0_B, Q4_1_B, Q8_0_B, Q5_0_B, Q5_1_B};
static const int qwo[5] = {2, 4, 2, 6, 8};
#define QMIN(t) ((t) == 1 || (t) == 4)

/* a block's 32 codes as ggml's AVX2 code has them: signed values (Q4_0
 * nibble - 8, Q5_0 code - 16, Q8_0 as stored) or unsigned ones (Q4_1,
 * Q5_1: 0..15, 0..31) */
INL __m256i
qcodes(int t, const uint8_t *w)
{
	const uint8_t *q = w + qwo[t];

	switch (t) {
	case 0:
		return _mm256_sub_epi8(nib32(q), _mm256_set1_epi8(8));
	case 1:
		return nib32(q);
	case 2:
		return ld256(q);
	case 3:         /* code - 16: the nibble with 0xF0 above it where the bit is 0 */
		return _mm256_or_si256(nib32(q), _mm256_andnot_si256(bits32(q - 4), _mm256_set1_epi8((char)0xF0)));
	default:
		return _mm256_or_si256(nib32(q), _mm256_and_si256(bits32(q - 4), _mm256_set1_epi8(16)));
	}
}

/* element k (0..3) of each 128-bit half in all four of its lanes: an
 * immediate shuffle (the switch keeps the immediate a constant for
 * compilers that do not unroll the caller's loop first) */
INL __m256
bcast4(__m256 v, int k)
{
	switch (k) {
	case 0: return _mm256_permute_ps(v, 0x00);
	case 1: return _mm256_permute_ps(v, 0x55);
	case 2: return _mm256_permute_ps(v, 0xaa);
	default: return _mm256_permute_ps(v, 0xff);
	}
}

/* the two f16 at p as (p[0], p[1], 0, 0) */
INL __m128
f16x2(const uint8_t *p)
{
	uint32_t u;

	memcpy(&u, p, 4);
	return _mm_cvtph_ps(_mm_cvtsi32_si128((int)u));
}

INL float
hsum8(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* Streaming rw rows at once interleaves rw streams, which the hardware
 * prefetcher follows badly (a Q8_0 49152x576 product ran at 5 GB/s
 * instead of 18 without this): at block i of a group of rows starting at
 * w0 (w = w0 + i*bb), fetch the same share of the group PF_AHEAD groups
 * on, rw*bb bytes a block. */
#ifndef PF_AHEAD
#define PF_AHEAD 1
#endif
INL void
prefetch_group(const uint8_t *w, int rw, size_t rb, size_t i, size_t bb)
{
	const uint8_t *p = w + PF_AHEAD * rw * rb + i * (rw - 1) * bb;

	for (size_t o = 0; o < rw * bb; o += 64)
		_mm_prefetch((const char *)(p + o), _MM_HINT_T0);
}

/* 16 int16 lanes -> 8 int32 lanes, each the sum of a pair */
INL __m256i
pairs32(__m256i v)
{
	return _mm256_madd_epi16(v, _mm256_set1_epi16(1));
}

INL int
hsum_i32(__m256i v)
{
	__m128i h = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));

	h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
	h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
	return _mm_cvtsi128_si32(h);
}

/* What the kernels need of each 32-element activation block, converted
 * once per call into the scratch. For the 8 rows of octet o, block i, at
 * (o*nblk + i)*8 + k: pd = d as f32, and in the second array, by mode:
 * PREP_SUM the sum of the codes as int32 (Q4_0 takes 8 of it off), PREP_S
 * Q8_1's s as f32 (Q4_1's min term, as ggml uses it), PREP_D nothing.
 * Lanes past nb are 0. */
enum { PREP_D, PREP_SUM, PREP_S };

static AVX2 void
prep_act32(const uint8_t *X, size_t xs, size_t nb, size_t nblk, int mode, float *pd, void *p2)
{
	const int xb = mode == PREP_S ? Q8_1_B : Q8_0_B, xo = mode == PREP_S ? 4 : 2;
	int32_t *pi = p2;
	float *ps = p2;

	for (size_t o = 0; o < (nb + 7) / 8; o++)
		for (size_t k = 0; k < 8; k++) {
			size_t b = o * 8 + k;
			const uint8_t *x = X + b * xs;

			for (size_t i = 0; i < nblk; i++, x += xb) {
				size_t at = (o * nblk + i) * 8 + k;

				pd[at] = b < nb ? _cvtsh_ss(rd16(x)) : 0.f;
				if (mode == PREP_SUM)
					pi[at] = b < nb ? hsum_i32(pairs32(_mm256_maddubs_epi16(
						_mm256_set1_epi8(1), ld256(x + xo)))) : 0;
				else if (mode == PREP_S)
					ps[at] = b < nb ? _cvtsh_ss(rd16(x + 2)) : 0.f;
			}
		}
}

/* ---- activations: the scalar q8_block and q8k_block in vectors, the
 * same operations (maxps skipping NaN, one multiply, vroundps to even,
 * saturating packs), so the bytes are the same */

INL __m256
absf(__m256 v)
{
	return _mm256_andnot_ps(_mm256_set1_ps(-0.f), v);
}

INL float
hmax8(__m256 v)
{
	__m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	m = _mm_max_ps(m, _mm_movehl_ps(m, m));
	m = _mm_max_ss(m, _mm_movehdup_ps(m));
	return _mm_cvtss_f32(m);
}


/* 32 floats times id, rounded to even -> 32 int8 codes (in order) */
INL __m256i
codes32(const float *x, __m256 id)
{
	__m256i i[4];

#pragma GCC unroll 4
	for (int k = 0; k < 4; k++)
		i[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), id),
							  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
	/* packs work per 128-bit lane: dwords come out 0 4 1 5 2 6 3 7 */
	return _mm256_permutevar8x32_epi32(
		_mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3])),
		_mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static AVX2 void
quantize_act_avx2(uint32_t at, const float *x, uint8_t *y, size_t n)
{
	if (at == QUANT_Q8_0 || at == QUANT_Q8_1) {
		int q81 = at == QUANT_Q8_1, bb = q81 ? Q8_1_B : Q8_0_B;

		for (size_t i = 0; i < n / QK; i++, x += QK, y += bb) {
			__m256 m = _mm256_setzero_ps();
			__m256i c;
			float amax, d, id;
			uint16_t h;

			for (int k = 0; k < 4; k++)
				m = _mm256_max_ps(absf(_mm256_loadu_ps(x + 8 * k)), m);
			amax = hmax8(m);
			d = amax / 127.f;
			id = amax != 0.f ? 127.f / amax : 0.f;
			c = codes32(x, _mm256_set1_ps(id));
			_mm256_storeu_si256((__m256i *)(y + 2 + 2 * q81), c);
			h = quant_f32_to_f16(d);
			y[0] = (uint8_t)h;
			y[1] = (uint8_t)(h >> 8);
			if (q81) {
				/* the sum of the codes as stored (saturated) */
				int sum = hsum_i32(pairs32(_mm256_maddubs_epi16(_mm256_set1_epi8(1), c)));

				h = quant_f32_to_f16(d * (float)sum);
				y[2] = (uint8_t)h;
				y[3] = (uint8_t)(h >> 8);
			}
		}
		return;
	}
	for (size_t i = 0; i < n / QKK; i++, x += QKK, y += Q8_K_B) {
		__m256 m = _mm256_setzero_ps();
		float amax, max = 0.f, iscale, d;

		for (int k = 0; k < QKK / 8; k++)
			m = _mm256_max_ps(absf(_mm256_loadu_ps(x + 8 * k)), m);
		amax = hmax8(m);
		if (!amax) {
			memset(y, 0, Q8_K_B);
			continue;
		}
		/* the first value of that magnitude, with its sign */
		for (int k = 0; k < QKK / 8; k++) {
			int mask = _mm256_movemask_ps(_mm256_cmp_ps(absf(_mm256_loadu_ps(x + 8 * k)),
							    _mm256_set1_ps(amax), _CMP_EQ_OQ));

			if (mask) {
				max = x[8 * k + __builtin_ctz((unsigned)mask)];
				break;
			}
		}
		iscale = -127.f / max;
		for (int k = 0; k < QKK / 32; k++) {
			/* packs saturate at 127: ggml's MIN(127, v) */
			__m256i c = codes32(x + 32 * k, _mm256_set1_ps(iscale));
			/* the two bsums of these 32 codes */
			__m256i s = pairs32(_mm256_maddubs_epi16(_mm256_set1_epi8(1), c));

			s = _mm256_hadd_epi32(s, s);
			s = _mm256_hadd_epi32(s, s);
			_mm256_storeu_si256((__m256i *)(y + 4 + 32 * k), c);
			y[260 + 4 * k] = (uint8_t)_mm256_extract_epi32(s, 0);
			y[261 + 4 * k] = (uint8_t)((unsigned)_mm256_extract_epi32(s, 0) >> 8);
			y[262 + 4 * k] = (uint8_t)_mm256_extract_epi32(s, 4);
			y[263 + 4 * k] = (uint8_t)((unsigned)_mm256_extract_epi32(s, 4) >> 8);
		}
		d = 1.f / iscale;
		memcpy(y, &d, 4);
	}
}

/* ---- Q4_0, Q4_1, Q8_0 against Q8_0 / Q8_1 */

struct qarg {
	const uint8_t *W;
	size_t rb, nblk;
	const uint8_t *X;
	size_t xs;
	const float *pd;        /* prep_act32's arrays */
	const void *p2;
	float *y;
	size_t ldy;
	const int32_t *bias;    /* AVX-512 only: prep_bias's array */
};

/* rw weight rows from r against nx (1..3) activation rows from b (all in
 * one octet), one FMA a block and pair: the decode shape, where weights
 * stream once. Q4_1 and Q5_1 multiply unsigned codes and add m * s;
 * Q4_0, Q5_0 and Q8_0 signed codes, ggml's sums exactly. */
INL void
q_rows(const struct qarg *a, int t, int rw, int nx, size_t r, size_t b)
{
	const int wb = qwb[t], mn = QMIN(t), xb = mn ? Q8_1_B : Q8_0_B, xo = mn ? 4 : 2;
	const uint8_t *w = a->W + r * a->rb, *x = a->X + b * a->xs + xo;
	const size_t rb = a->rb, xs = a->xs, off = b / 8 * a->nblk * 8 + b % 8;
	const float *pd = a->pd + off, *ps = (const float *)a->p2 + off;
	__m256 acc[4][3];
	__m128 accm[4][3];

#pragma GCC unroll 4
	for (int j = 0; j < rw; j++)
#pragma GCC unroll 3
		for (int k = 0; k < nx; k++) {
			acc[j][k] = _mm256_setzero_ps();
			accm[j][k] = _mm_setzero_ps();
		}
	for (size_t i = 0; i < a->nblk; i++, w += wb, x += xb, pd += 8, ps += 8) {
		__m256i q[4], aq[4];
		__m128 dm[4];

		if (rw > 1)
			prefetch_group(w, rw, rb, i, wb);
#pragma GCC unroll 4
		for (int j = 0; j < rw; j++) {
			dm[j] = f16x2(w + j * rb);      /* (d, m) or (d, junk) */
			q[j] = qcodes(t, w + j * rb);
			aq[j] = mn ? q[j] : _mm256_sign_epi8(q[j], q[j]);
		}
#pragma GCC unroll 3
		for (int k = 0; k < nx; k++) {
			__m256i xv = ld256(x + k * xs);
			/* (dx, s) of this activation block */
			__m128 ds = _mm_unpacklo_ps(_mm_set_ss(pd[k]), _mm_set_ss(mn ? ps[k] : 0.f));

#pragma GCC unroll 4
			for (int j = 0; j < rw; j++) {
				__m128 pr = _mm_mul_ps(dm[j], ds);      /* (d*dx, m*s) */
				__m256i sy = mn ? xv : _mm256_sign_epi8(xv, q[j]);
				__m256i s = pairs32(_mm256_maddubs_epi16(aq[j], sy));

				acc[j][k] = _mm256_fmadd_ps(_mm256_broadcastss_ps(pr),
							    _mm256_cvtepi32_ps(s), acc[j][k]);
				if (mn)
					accm[j][k] = _mm_add_ps(accm[j][k], pr);
			}
		}
	}
#pragma GCC unroll 4
	for (int j = 0; j < rw; j++)
#pragma GCC unroll 3
		for (int k = 0; k < nx; k++) {
			float v = hsum8(acc[j][k]);

			if (mn)
				v += _mm_cvtss_f32(_mm_movehdup_ps(accm[j][k]));
			a->y[(b + k) * a->ldy + r + j] = v;
		}
}

/* The batch shape: 2 weight rows against 4 activation rows (b % 4 == 0,
 * inside one octet), each pair summed exactly as q_rows sums it (8 float
 * lanes, one FMA a block; a min type's m * s added in float), with the shared
 * work done once: d times each activation's scale as one vector multiply
 * of broadcasts, the four m * s at once in a 4-lane vector. */
INL void
q_tile(const struct qarg *a, int t, size_t r, size_t b)
{
	const int wb = qwb[t], mn = QMIN(t), xb = mn ? Q8_1_B : Q8_0_B, xo = mn ? 4 : 2;
	const uint8_t *w = a->W + r * a->rb, *x = a->X + b * a->xs + xo;
	const size_t rb = a->rb, xs = a->xs, off = b / 8 * a->nblk * 8 + b % 8;
	const float *pd = a->pd + off, *ps = (const float *)a->p2 + off;
	__m256 acc[2][4];
	__m128 accm[2];
	for (int j = 0; j < 2; j++) {
		for (int k = 0; k < 4; k++)
			acc[j][k] = _mm256_setzero_ps();
		accm[j] = _mm_setzero_ps();
	}
	for (size_t i = 0; i < a->nblk; i++, w += wb, x += xb, pd += 8, ps += 8) {
		__m256i q[2], aq[2];
		/* the scales d_j * dx_k of the tile: for each weight row j the four
		 * products in both halves of a register, one multiply; a pair's
		 * scale is then broadcast within the halves by an immediate
		 * shuffle, on a port the integer work leaves idle, with no index
		 * register (the products are the same) */
		__m128 d2 = _mm_cvtph_ps(_mm_cvtsi32_si128(rd16(w) | rd16(w + rb) << 16));
		__m256 x4 = _mm256_broadcast_ps((const __m128 *)pd);
		__m256 dd[2] = {_mm256_mul_ps(_mm256_broadcastss_ps(d2), x4),
				_mm256_mul_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(d2)), x4)};

		prefetch_group(w, 2, rb, i, wb);
#pragma GCC unroll 2
		for (int j = 0; j < 2; j++) {
			const uint8_t *wj = w + j * rb;

			q[j] = qcodes(t, wj);
			if (mn)         /* the four m * s of this block, in order of the activation rows */
				accm[j] = _mm_add_ps(accm[j], _mm_mul_ps(_mm_set1_ps(_cvtsh_ss(rd16(wj + 2))),
									 _mm_loadu_ps(ps)));
			aq[j] = mn ? q[j] : _mm256_sign_epi8(q[j], q[j]);
		}
#pragma GCC unroll 4
		for (int k = 0; k < 4; k++) {
			__m256i xv = ld256(x + k * xs);

#pragma GCC unroll 2
			for (int j = 0; j < 2; j++) {
				__m256i sy = mn ? xv : _mm256_sign_epi8(xv, q[j]);
				__m256i s = pairs32(_mm256_maddubs_epi16(aq[j], sy));

				acc[j][k] = _mm256_fmadd_ps(bcast4(dd[j], k),
							    _mm256_cvtepi32_ps(s), acc[j][k]);
			}
		}
	}
	for (int j = 0; j < 2; j++) {
		float m4[4];

		_mm_storeu_ps(m4, accm[j]);
		for (int k = 0; k < 4; k++) {
			float v = hsum8(acc[j][k]);

			if (mn)
				v += m4[k];
			a->y[(b + k) * a->ldy + r + j] = v;
		}
	}
}

/* The shape of 8 activation rows (an octet, b % 8 == 0): one weight row
 * against the 8, each pair summed exactly as q_rows sums it, with the
 * weight's codes, their absolute values and the 8 scale products made
 * once a block for all 8 (the 2-by-4 tile makes them for 4): fewer
 * operations on the multiply ports a product, and no accumulator spilled. */
INL void
q_tile8(const struct qarg *a, int t, size_t r, size_t b)
{
	const int wb = qwb[t], mn = QMIN(t), xb = mn ? Q8_1_B : Q8_0_B, xo = mn ? 4 : 2;
	const uint8_t *w = a->W + r * a->rb, *x = a->X + b * a->xs + xo;
	const size_t rb = a->rb, xs = a->xs, off = b / 8 * a->nblk * 8;
	const float *pd = a->pd + off, *ps = (const float *)a->p2 + off;
	__m256 acc[8], accm = _mm256_setzero_ps();
	float dd[8] __attribute__((aligned(32))), m8[8];

#pragma GCC unroll 8
	for (int k = 0; k < 8; k++)
		acc[k] = _mm256_setzero_ps();
	for (size_t i = 0; i < a->nblk; i++, w += wb, x += xb, pd += 8, ps += 8) {
		__m256i q = qcodes(t, w), aq = mn ? q : _mm256_sign_epi8(q, q);

		prefetch_group(w, 1, rb, i, wb);
		/* d * dx of the 8 rows, then each broadcast from memory (a load,
		 * not a shuffle); the min types' m * s of the 8 at once */
		_mm256_store_ps(dd, _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(rd16(w))), _mm256_loadu_ps(pd)));
		if (mn)
			accm = _mm256_add_ps(accm, _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(rd16(w + 2))),
								 _mm256_loadu_ps(ps)));
#pragma GCC unroll 8
		for (int k = 0; k < 8; k++) {
			__m256i xv = ld256(x + k * xs);
			__m256i sy = mn ? xv : _mm256_sign_epi8(xv, q);
			__m256i s = pairs32(_mm256_maddubs_epi16(aq, sy));

			acc[k] = _mm256_fmadd_ps(_mm256_broadcast_ss(dd + k), _mm256_cvtepi32_ps(s), acc[k]);
		}
	}
	_mm256_storeu_ps(m8, accm);
#pragma GCC unroll 8
	for (int k = 0; k < 8; k++) {
		float v = hsum8(acc[k]);

		if (mn)
			v += m8[k];
		a->y[(b + k) * a->ldy + r] = v;
	}
}

typedef void qfn(const struct qarg *, size_t, size_t);
#define Q_ROWS(t, rw, nx) \
static AVX2 void q_rows_##t##_##rw##_##nx(const struct qarg *a, size_t r, size_t b) \
{ q_rows(a, t, rw, nx, r, b); }
#define Q_ALL(t) \
static AVX2 void q_tile_##t(const struct qarg *a, size_t r, size_t b) { q_tile(a, t, r, b); } \
static AVX2 void q_tile8_##t(const struct qarg *a, size_t r, size_t b) { q_tile8(a, t, r, b); } \
Q_ROWS(t, 4, 1) Q_ROWS(t, 1, 1) Q_ROWS(t, 2, 2) Q_ROWS(t, 1, 2) Q_ROWS(t, 2, 3) Q_ROWS(t, 1, 3) \
static qfn *const q_rows_##t[4][2] = {{0, 0}, {q_rows_##t##_1_1, q_rows_##t##_4_1}, \
	{q_rows_##t##_1_2, q_rows_##t##_2_2}, {q_rows_##t##_1_3, q_rows_##t##_2_3}};
Q_ALL(0)
Q_ALL(1)
Q_ALL(2)
Q_ALL(3)
Q_ALL(4)
static qfn *const q_tiles[5] = {q_tile_0, q_tile_1, q_tile_2, q_tile_3, q_tile_4};
static qfn *const q_tiles8[5] = {q_tile8_0, q_tile8_1, q_tile8_2, q_tile8_3, q_tile8_4};
static qfn *const (*const q_rows_t[5])[2] = {q_rows_0, q_rows_1, q_rows_2, q_rows_3, q_rows_4};

/* t: qcodes' number of the type */
static AVX2 int
avx2_q(int t, const uint8_t *W, size_t rb, size_t r0, size_t r1, size_t nblk,
       const uint8_t *X, size_t xs, size_t nb, float *y, size_t ldy)
{
	qfn *const (*rows)[2] = q_rows_t[t];
	size_t per, b = 0;
	float *pd;
	struct qarg a;

	if (__builtin_mul_overflow((nb + 7) / 8 * 8, nblk, &per) || per > SIZE_MAX / 2
	    || !(pd = scratch_get(2 * per)))
		return -1;
	prep_act32(X, xs, nb, nblk, QMIN(t) ? PREP_S : PREP_D, pd, pd + per);
	a = (struct qarg){W, rb, nblk, X, xs, pd, pd + per, y, ldy, NULL};
	/* Every activation row gets the same arithmetic whatever nb is: the
	 * decode form (8 float lanes per weight row and activation row, ggml's
	 * order), in tiles of 2 weight rows by up to 3 activation rows that
	 * stay inside one octet of the prepared scales. So a request's numbers
	 * do not depend on what else is in the batch, and they are llama.cpp's
	 * (ggml_vec_dot_q4_1_q8_1 and friends sum the same way). */
	while (b < nb) {
		size_t left = 8 - b % 8, nx = nb - b < 3 ? nb - b : 3, rw, r = r0;

		if (b % 8 == 0 && nb - b >= 8) {
			for (; r < r1; r++)
				q_tiles8[t](&a, r, b);
			b += 8;
			continue;
		}
		if (b % 4 == 0 && nb - b >= 4) {
			for (; r + 2 <= r1; r += 2)
				q_tiles[t](&a, r, b);
			if (r < r1)     /* an odd last row: one at a time, the same sums */
				for (size_t k = 0; k < 4; k += 2)
					rows[2][0](&a, r, b + k);
			b += 4;
			continue;
		}
		if (nx > left)
			nx = left;
		rw = nx == 1 ? 4 : 2;
		for (; r + rw <= r1; r += rw)
			rows[nx][1](&a, r, b);
		for (; r < r1; r++)
			rows[nx][0](&a, r, b);
		b += nx;
	}
	return 0;
}

/* ---- Q4_K, Q6_K against Q8_K */

struct kargs {
	const uint8_t *W;
	size_t rb, nsb;
	const uint8_t *X;
	size_t xs;
	float *y;
	size_t ldy;
};

/* one super-block of weights, unpacked: codes of the 8 chunks of 32
 * elements (element order), the int16 scale vector of each chunk, the
 * int16 vector that meets Q8_K's 16 bsums for the mins, d and dmin */
struct ksb {
	__m256i q[8], sc[8], mn;
	float d, dmin;
};

INL void
unpack_q4k(const uint8_t *w, struct ksb *u)
{
	uint8_t sm[16];
	__m256i s16;
	__m128i m16;

	q4k_scales(w + 4, sm);
	for (int p = 0; p < 4; p++) {
		__m256i v = ld256(w + 16 + 32 * p);

		u->q[2 * p] = _mm256_and_si256(v, _mm256_set1_epi8(15));
		u->q[2 * p + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(15));
	}
	/* scales 0..7 as int16 in both halves; chunk j takes lane j */
	s16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sm)));
#pragma GCC unroll 8
	for (int j = 0; j < 8; j++)
		u->sc[j] = _mm256_shuffle_epi8(s16, _mm256_set1_epi16((short)(0x0100 * (2 * j + 1) + 2 * j)));
	/* mins: (m0, m0, m1, m1, ...) against bsums (two per sub-block) */
	m16 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sm + 8)));
	u->mn = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
	u->d = _cvtsh_ss(rd16(w));
	u->dmin = _cvtsh_ss(rd16(w + 2));
}

INL void
unpack_q6k(const uint8_t *w, struct ksb *u)
{
	__m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 192)));
	const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(0x30);

	for (int h = 0; h < 2; h++) {
		__m256i l0 = ld256(w + 64 * h), l1 = ld256(w + 64 * h + 32), hb = ld256(w + 128 + 32 * h);
		/* the scales of this half, in both 128-bit lanes */
		__m256i sh = h ? _mm256_permute2x128_si256(s16, s16, 0x11)
			       : _mm256_permute2x128_si256(s16, s16, 0x00);

		u->q[4 * h] = _mm256_or_si256(_mm256_and_si256(l0, m4),
					      _mm256_and_si256(_mm256_slli_epi16(hb, 4), m2));
		u->q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
						  _mm256_and_si256(_mm256_slli_epi16(hb, 2), m2));
		u->q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
						  _mm256_and_si256(hb, m2));
		u->q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
						  _mm256_and_si256(_mm256_srli_epi16(hb, 2), m2));
		/* chunk k of the half covers groups 2k (low 16 codes) and
		 * 2k+1: int16 lanes 2k in the low 128 bits, 2k+1 in the high */
#pragma GCC unroll 4
		for (int k = 0; k < 4; k++) {
			__m256i ctl = _mm256_setr_epi8(
				(char)(4 * k), (char)(4 * k + 1), (char)(4 * k), (char)(4 * k + 1),
				(char)(4 * k), (char)(4 * k + 1), (char)(4 * k), (char)(4 * k + 1),
				(char)(4 * k), (char)(4 * k + 1), (char)(4 * k), (char)(4 * k + 1),
				(char)(4 * k), (char)(4 * k + 1), (char)(4 * k), (char)(4 * k + 1),
				(char)(4 * k + 2), (char)(4 * k + 3), (char)(4 * k + 2), (char)(4 * k + 3),
				(char)(4 * k + 2), (char)(4 * k + 3), (char)(4 * k + 2), (char)(4 * k + 3),
				(char)(4 * k + 2), (char)(4 * k + 3), (char)(4 * k + 2), (char)(4 * k + 3),
				(char)(4 * k + 2), (char)(4 * k + 3), (char)(4 * k + 2), (char)(4 * k + 3));

			u->sc[4 * h + k] = _mm256_shuffle_epi8(sh, ctl);
		}
	}
	/* the -32 offset: -32 * sum over groups of scale * bsum */
	u->mn = _mm256_slli_epi16(s16, 5);
	u->d = _cvtsh_ss(rd16(w + 208));
	u->dmin = u->d;
}

/* a super-block's float step, ggml's: Q6_K d*dx times (sum - 32 * the
 * scaled bsums); Q4_K d*dx times the sum, less dmin*dx times the mins' */
INL __m256
k_acc(int q6, __m256 acc, __m256i s, __m256i mi, float d, float dmin, float dx)
{
	if (q6)
		return _mm256_fmadd_ps(_mm256_set1_ps(d * dx), _mm256_cvtepi32_ps(_mm256_sub_epi32(s, mi)), acc);
	acc = _mm256_fmadd_ps(_mm256_set1_ps(d * dx), _mm256_cvtepi32_ps(s), acc);
	return _mm256_fnmadd_ps(_mm256_set1_ps(dmin * dx), _mm256_cvtepi32_ps(mi), acc);
}

/* rows r of type q6 (Q6_K) or not (Q4_K) against nx activation rows */
INL void
k_rows(const struct kargs *a, int q6, int nx, size_t r, size_t b)
{
	const uint8_t *w = a->W + r * a->rb, *x = a->X + b * a->xs;
	const size_t xs = a->xs;
	__m256 acc[8];
	struct ksb u;

#pragma GCC unroll 8
	for (int k = 0; k < nx; k++)
		acc[k] = _mm256_setzero_ps();
	for (size_t i = 0; i < a->nsb; i++, w += q6 ? Q6_K_B : Q4_K_B, x += Q8_K_B) {
		if (q6)
			unpack_q6k(w, &u);
		else
			unpack_q4k(w, &u);
#pragma GCC unroll 8
		for (int k = 0; k < nx; k++) {
			const uint8_t *xb = x + k * xs;
			__m256i s = _mm256_setzero_si256(), mi;
			float dx = rdf32(xb);

#pragma GCC unroll 8
			for (int j = 0; j < 8; j++)
				s = _mm256_add_epi32(s, _mm256_madd_epi16(
					_mm256_maddubs_epi16(u.q[j], ld256(xb + 4 + 32 * j)), u.sc[j]));
			mi = _mm256_madd_epi16(ld256(xb + 260), u.mn);
			acc[k] = k_acc(q6, acc[k], s, mi, u.d, u.dmin, dx);
		}
	}
#pragma GCC unroll 8
	for (int k = 0; k < nx; k++)
		a->y[(b + k) * a->ldy + r] = hsum8(acc[k]);
}

#ifndef K_AHEAD
#define K_AHEAD 16
#endif
/* The one-activation-row form (decode): the super-block's codes and
 * scale vectors are made just before their use instead of kept, so that
 * nothing spills. */
INL void
k_row1(const struct kargs *a, int q6, size_t r, size_t b)
{
	const uint8_t *w = a->W + r * a->rb, *x = a->X + b * a->xs;
	const __m256i m4 = _mm256_set1_epi8(15);
	__m256 acc = _mm256_setzero_ps();

	for (size_t i = 0; i < a->nsb; i++, w += q6 ? Q6_K_B : Q4_K_B, x += Q8_K_B) {
		__m256i s = _mm256_setzero_si256(), mi;
		float dx = rdf32(x);

		/* the super-block K_AHEAD on (the next row's, at a row's end):
		 * the hardware prefetcher alone left the scale loads waiting */
		for (int o = 0; o < (q6 ? Q6_K_B : Q4_K_B); o += 64)
			_mm_prefetch((const char *)(w + K_AHEAD * (q6 ? Q6_K_B : Q4_K_B) + o), _MM_HINT_T0);

		if (q6) {
			__m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 192)));
			const __m256i m2 = _mm256_set1_epi8(0x30);

#pragma GCC unroll 2
			for (int h = 0; h < 2; h++) {
				__m256i l0 = ld256(w + 64 * h), l1 = ld256(w + 64 * h + 32);
				__m256i hb = ld256(w + 128 + 32 * h), q[4];
				__m256i sh = h ? _mm256_permute2x128_si256(s16, s16, 0x11)
			       : _mm256_permute2x128_si256(s16, s16, 0x00);

				q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
						       _mm256_and_si256(_mm256_slli_epi16(hb, 4), m2));
				q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
						       _mm256_and_si256(_mm256_slli_epi16(hb, 2), m2));
				q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
						       _mm256_and_si256(hb, m2));
				q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
						       _mm256_and_si256(_mm256_srli_epi16(hb, 2), m2));
#pragma GCC unroll 4
				for (int k = 0; k < 4; k++) {
					__m256i ctl = _mm256_set_m128i(_mm_set1_epi16((short)(0x0100 * (4 * k + 3) + 4 * k + 2)),
								       _mm_set1_epi16((short)(0x0100 * (4 * k + 1) + 4 * k)));

					s = _mm256_add_epi32(s, _mm256_madd_epi16(
						_mm256_maddubs_epi16(q[k], ld256(x + 4 + 128 * h + 32 * k)),
						_mm256_shuffle_epi8(sh, ctl)));
				}
			}
			mi = _mm256_madd_epi16(ld256(x + 260), _mm256_slli_epi16(s16, 5));
			acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(rd16(w + 208)) * dx),
					      _mm256_cvtepi32_ps(_mm256_sub_epi32(s, mi)), acc);
		} else {
			uint8_t sm[16];
			__m256i s16;
			__m128i m16;

			q4k_scales(w + 4, sm);
			s16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sm)));
			m16 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sm + 8)));
#pragma GCC unroll 4
			for (int p = 0; p < 4; p++) {
				__m256i v = ld256(w + 16 + 32 * p);
				__m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
				__m256i sl = _mm256_shuffle_epi8(s16, _mm256_set1_epi16((short)(0x0100 * (4 * p + 1) + 4 * p)));
				__m256i sh = _mm256_shuffle_epi8(s16, _mm256_set1_epi16((short)(0x0100 * (4 * p + 3) + 4 * p + 2)));

				s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(lo, ld256(x + 4 + 64 * p)), sl));
				s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(hi, ld256(x + 36 + 64 * p)), sh));
			}
			mi = _mm256_madd_epi16(ld256(x + 260),
					       _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16)));
			acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(rd16(w)) * dx), _mm256_cvtepi32_ps(s), acc);
			acc = _mm256_fnmadd_ps(_mm256_set1_ps(_cvtsh_ss(rd16(w + 2)) * dx),
					       _mm256_cvtepi32_ps(mi), acc);
		}
	}
	a->y[b * a->ldy + r] = hsum8(acc);
}

/* activation rows a K-type super-block is unpacked for: 8 measured
 * 1.0-1.25x faster than 4 */
#define KX 8
typedef void kfn(const struct kargs *, size_t, size_t);
static AVX2 void k_row1_0(const struct kargs *a, size_t r, size_t b) { k_row1(a, 0, r, b); }
static AVX2 void k_row1_1(const struct kargs *a, size_t r, size_t b) { k_row1(a, 1, r, b); }
#define K_ROWS(q6, nx) \
static AVX2 void k_rows_##q6##_##nx(const struct kargs *a, size_t r, size_t b) \
{ k_rows(a, q6, nx, r, b); }
K_ROWS(0, 2) K_ROWS(0, 3) K_ROWS(0, 4) K_ROWS(0, 5) K_ROWS(0, 6) K_ROWS(0, 7) K_ROWS(0, 8)
K_ROWS(1, 2) K_ROWS(1, 3) K_ROWS(1, 4) K_ROWS(1, 5) K_ROWS(1, 6) K_ROWS(1, 7) K_ROWS(1, 8)

static AVX2 int
avx2_k(int q6, const uint8_t *W, size_t rb, size_t r0, size_t r1, size_t nsb,
       const uint8_t *X, size_t xs, size_t nb, float *y, size_t ldy)
{
	static kfn *const fn[2][9] = {
		{0, k_row1_0, k_rows_0_2, k_rows_0_3, k_rows_0_4, k_rows_0_5, k_rows_0_6, k_rows_0_7,
		 k_rows_0_8},
		{0, k_row1_1, k_rows_1_2, k_rows_1_3, k_rows_1_4, k_rows_1_5, k_rows_1_6, k_rows_1_7,
		 k_rows_1_8},
	};
	struct kargs a = {W, rb, nsb, X, xs, y, ldy};

	/* groups of KX activation rows (their data in L1) against all rows */
	for (size_t b = 0; b < nb; b += KX) {
		size_t nx = nb - b < KX ? nb - b : KX;

		for (size_t r = r0; r < r1; r++)
			fn[q6][nx](&a, r, b);
	}
	return 0;
}

/* ---- F32, F16, BF16 weights against f32 activations */

/* 8 weights widened to f32 */
INL __m256
wld8(uint32_t t, const uint8_t *p)
{
	if (t == QUANT_F32)
		return _mm256_loadu_ps((const float *)(const void *)p);
	if (t == QUANT_F16)
		return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
	return _mm256_castsi256_ps(_mm256_slli_epi32(
		_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

INL float
wld1(uint32_t t, const uint8_t *p)
{
	if (t == QUANT_F32)
		return rdf32(p);
	if (t == QUANT_F16)
		return _cvtsh_ss(rd16(p));
	return quant_bf16_to_f32(rd16(p));
}

struct fargs {
	const uint8_t *W;
	size_t rb, n;
	const float *X;
	size_t xs;      /* in floats */
	float *y;
	size_t ldy;
};

INL void
f_tile(const struct fargs *a, uint32_t t, int rw, int nx, size_t r, size_t b)
{
	const size_t es = t == QUANT_F32 ? 4 : 2, n = a->n, rb = a->rb, xs = a->xs;
	const uint8_t *w = a->W + r * rb;
	const float *x = a->X + b * xs;
	__m256 acc[4][4];
	size_t e = 0;

#pragma GCC unroll 4
	for (int j = 0; j < rw; j++)
#pragma GCC unroll 4
		for (int k = 0; k < nx; k++)
			acc[j][k] = _mm256_setzero_ps();
	for (; e + 8 <= n; e += 8) {
		__m256 wv[4];

		if (rw > 1)
			prefetch_group(w + e * es, rw, rb, e / 8, 8 * es);

#pragma GCC unroll 4
		for (int j = 0; j < rw; j++)
			wv[j] = wld8(t, w + j * rb + e * es);
#pragma GCC unroll 4
		for (int k = 0; k < nx; k++) {
			__m256 xv = _mm256_loadu_ps(x + k * xs + e);

			/* one load for all rows: GCC would fold it into each FMA,
			 * and loads are what this loop runs out of */
			__asm__("" : "+x"(xv));
#pragma GCC unroll 4
			for (int j = 0; j < rw; j++)
				acc[j][k] = _mm256_fmadd_ps(wv[j], xv, acc[j][k]);
		}
	}
#pragma GCC unroll 4
	for (int j = 0; j < rw; j++)
#pragma GCC unroll 4
		for (int k = 0; k < nx; k++) {
			float s = hsum8(acc[j][k]);

			for (size_t f = e; f < n; f++)
				s += wld1(t, w + j * rb + f * es) * x[k * xs + f];
			a->y[(b + k) * a->ldy + r + j] = s;
		}
}

typedef void ffn(const struct fargs *, size_t, size_t);
#define F_TILE(tn, t, rw, nx) \
static AVX2 void f_tile_##tn##_##rw##_##nx(const struct fargs *a, size_t r, size_t b) \
{ f_tile(a, t, rw, nx, r, b); }
#define F_ALL(tn, t) \
F_TILE(tn, t, 4, 1) F_TILE(tn, t, 1, 1) F_TILE(tn, t, 2, 2) F_TILE(tn, t, 1, 2) \
F_TILE(tn, t, 2, 3) F_TILE(tn, t, 1, 3) F_TILE(tn, t, 2, 4) F_TILE(tn, t, 1, 4) \
static ffn *const f_fns_##tn[5][2] = { \
	{0, 0}, {f_tile_##tn##_1_1, f_tile_##tn##_4_1}, {f_tile_##tn##_1_2, f_tile_##tn##_2_2}, \
	{f_tile_##tn##_1_3, f_tile_##tn##_2_3}, {f_tile_##tn##_1_4, f_tile_##tn##_2_4}, \
};
F_ALL(f32, QUANT_F32)
F_ALL(f16, QUANT_F16)
F_ALL(bf16, QUANT_BF16)

#ifdef SLUICE_OPENBLAS
/* rows [r0, r1) widened into the scratch, dst[(r - r0) * n + e] */
static AVX2 void
widen_rows(uint32_t t, const uint8_t *W, size_t rb, size_t r0, size_t r1, size_t n, float *dst)
{
	for (size_t r = r0; r < r1; r++, dst += n) {
		const uint8_t *w = W + r * rb;
		size_t e = 0;

		for (; e + 8 <= n; e += 8)
			_mm256_storeu_ps(dst + e, wld8(t, w + 2 * e));
		for (; e < n; e++)
			dst[e] = wld1(t, w + 2 * e);
	}
}
#endif

#ifdef SLUICE_OPENBLAS
/* sgemm: y[b][r] = sum_e x[b][e] * W[r][e], F16/BF16 through panels of
 * rows widened to f32 (a panel ~256 KiB, so it stays in L2) */
static int
blas_rows(uint32_t t, const uint8_t *W, size_t rb, size_t r0, size_t r1, size_t n,
	  const float *X, size_t xs, size_t nb, float *y, size_t ldy)
{
	size_t panel;
	float *buf;

	if (n > INT32_MAX || nb > INT32_MAX || r1 - r0 > INT32_MAX || xs > INT32_MAX
	    || ldy > INT32_MAX)
		return -1;
	if (t == QUANT_F32) {
		if ((uintptr_t)W % 4)
			return -1;
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)(r1 - r0), (int)n,
			    1.f, X, (int)xs, (const float *)(const void *)(W + r0 * rb), (int)n,
			    0.f, y + r0, (int)ldy);
		return 0;
	}
	panel = 65536 / n;
	panel = panel < 16 ? 16 : panel > 256 ? 256 : panel;
	if (!(buf = scratch_get(panel * n)))
		return -1;
	for (size_t r = r0; r < r1; r += panel) {
		size_t m = r1 - r < panel ? r1 - r : panel;

		widen_rows(t, W, rb, r, r + m, n, buf);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)m, (int)n,
			    1.f, X, (int)xs, buf, (int)n, 0.f, y + r, (int)ldy);
	}
	return 0;
}
#else
static int
blas_rows(uint32_t t, const uint8_t *W, size_t rb, size_t r0, size_t r1, size_t n,
	  const float *X, size_t xs, size_t nb, float *y, size_t ldy)
{
	(void)t, (void)W, (void)rb, (void)r0, (void)r1, (void)n, (void)X, (void)xs, (void)nb;
	(void)y, (void)ldy;
	return -1;
}
#endif

/* The blocking of the float products: blocks of activation rows and of
 * weight rows that both stay in L2 (~128 KiB each) while the tiles go
 * over them. wide[nx] takes rw1 weight rows (nx == 1) or rwn (nx 2..4)
 * at once; rows left over go one at a time through one[nx]. */
static void
float_blocks(const struct fargs *a, size_t r0, size_t r1, size_t nb, ffn *const *wide,
	     size_t rw1, size_t rwn, ffn *const *one)
{
	size_t xchunk = 131072 / (4 * a->n) / 4 * 4, rpanel = 131072 / a->rb;

	xchunk = xchunk < 4 ? 4 : xchunk;
	rpanel = rpanel < rw1 ? rw1 : rpanel;
	for (size_t c0 = 0; c0 < nb; c0 += xchunk) {
		size_t c1 = nb - c0 < xchunk ? nb : c0 + xchunk;

		for (size_t p0 = r0; p0 < r1; p0 += rpanel) {
			size_t p1 = r1 - p0 < rpanel ? r1 : p0 + rpanel;

			for (size_t b = c0; b < c1;) {
				size_t nx = c1 - b < 4 ? c1 - b : 4, rw = nx == 1 ? rw1 : rwn, r = p0;

				for (; r + rw <= p1; r += rw)
					wide[nx](a, r, b);
				for (; r < p1; r++)
					one[nx](a, r, b);
				b += nx;
			}
		}
	}
}

static AVX2 int
avx2_float(uint32_t t, const uint8_t *W, size_t rb, size_t r0, size_t r1, size_t n,
	   const uint8_t *X, size_t xs, size_t nb, float *y, size_t ldy)
{
	ffn *const (*fns)[2] = t == QUANT_F32 ? f_fns_f32 : t == QUANT_F16 ? f_fns_f16 : f_fns_bf16;
	struct fargs a = {W, rb, n, (const float *)(const void *)X, xs / 4, y, ldy};

	if ((uintptr_t)X % 4 || xs % 4)
		return -1;
	/* sgemm pays from about 32 activation rows (measured: slower at 16,
	 * 1.4x faster at 64, 1.6x at 512, on 576x1536) */
	if (nb >= 32 && blas_ready()
	    && blas_rows(t, W, rb, r0, r1, n, a.X, a.xs, nb, y, ldy) == 0)
		return 0;
	{
		ffn *const wide[5] = {0, fns[1][1], fns[2][1], fns[3][1], fns[4][1]};
		ffn *const one[5] = {0, fns[1][0], fns[2][0], fns[3][0], fns[4][0]};

		float_blocks(&a, r0, r1, nb, wide, 4, 2, one);
	}
	return 0;
}

/* ------------------------------------------------------------ AVX-512 kernels
 * The AVX2 kernels' arithmetic with two weight rows (or two chunks of a
 * super-block) in the two halves of a 512-bit register, so that every
 * result is the AVX2 path's bits:
 *   - each half of an accumulator is the 8-lane float accumulator the
 *     AVX2 code keeps for its row and activation row, fed the same values
 *     by the same operations (d * dx rounded, then one FMA a block), and
 *     reduced by the same hsum8;
 *   - the integer sums are the same exact integers: VNNI's vpdpbusd adds
 *     into a lane the same four products that maddubs + madd put there.
 *     It multiplies unsigned by signed bytes, so signed weight codes are
 *     offset (Q8_0 by 128, Q4_0's nibbles are already 8 above their
 *     value) and the offset times the activation's sums of four codes,
 *     made once per activation block, starts the sum: one instruction per
 *     32 products where AVX2 needs three or four.
 * Needs AVX-512 F, BW, VL and VNNI (what probe_isa checks); DQ is not
 * used. Rows left over from the 512-bit tiles go through the AVX2 ones,
 * which give the same bits. */

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INL5 static inline __attribute__((always_inline)) AVX512

/* the two 256-bit halves of v */
INL5 __m256
lo8(__m512 v)
{
	return _mm512_castps512_ps256(v);
}

INL5 __m256
hi8(__m512 v)
{
	return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
}

/* a in the low half, b in the high */
INL5 __m512i
join(__m256i a, __m256i b)
{
	return _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
}

/* 8 floats in both halves */
INL5 __m512
bcast8(const float *p)
{
	return _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(p))));
}

/* 16 bytes of nibbles of two rows -> 32 codes 0..15 each (low nibbles,
 * then high, as nib32), row w0 in the low half */
INL5 __m512i
nib32x2(const uint8_t *w0, const uint8_t *w1)
{
	__m256i v = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)w1),
				     _mm_loadu_si128((const __m128i *)w0));
	__m512i z = join(v, _mm256_srli_epi16(v, 4));   /* A B A>>4 B>>4 */

	return _mm512_and_si512(_mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0)),
				_mm512_set1_epi8(15));
}

/* The activation side of the offset: for each block, -z times the sums of
 * its four-code groups (8 int32 lanes), z = 128 for Q8_0 weights, 8 for
 * Q4_0, 16 for Q5_0; laid out as the scales, 8 lanes per entry. */
static AVX2 void
prep_bias(const uint8_t *X, size_t xs, size_t nb, size_t nblk, int z, int32_t *bias)
{
	for (size_t o = 0; o < (nb + 7) / 8; o++)
		for (size_t k = 0; k < 8; k++) {
			size_t b = o * 8 + k;
			const uint8_t *x = X + b * xs + 2;

			for (size_t i = 0; i < nblk; i++, x += Q8_0_B) {
				__m256i s = b < nb ? pairs32(_mm256_maddubs_epi16(_mm256_set1_epi8(1), ld256(x)))
						   : _mm256_setzero_si256();

				_mm256_storeu_si256((__m256i *)(bias + ((o * nblk + i) * 8 + k) * 8),
						    _mm256_mullo_epi32(s, _mm256_set1_epi32(-z)));
			}
		}
}

/* 2*np weight rows from r against nx activation rows from b (all in one
 * octet): q_rows' and q_tile's sums, two rows a register */
INL5 void
q5_tile(const struct qarg *a, int t, int np, int nx, size_t r, size_t b)
{
	const int wb = qwb[t], wo = qwo[t], mn = QMIN(t), xb = mn ? Q8_1_B : Q8_0_B, xo = mn ? 4 : 2;
	const uint8_t *w = a->W + r * a->rb, *x = a->X + b * a->xs + xo;
	const size_t rb = a->rb, xs = a->xs, off = b / 8 * a->nblk * 8 + b % 8;
	const float *pd = a->pd + off, *ps = (const float *)a->p2 + off;
	const int32_t *bs = a->bias + off * 8;
	const __mmask8 mk = (__mmask8)((1u << nx) - 1);
	__m512 acc[4][8];
	__m256 accm[8];

#pragma GCC unroll 4
	for (int p = 0; p < np; p++) {
#pragma GCC unroll 8
		for (int k = 0; k < nx; k++)
			acc[p][k] = _mm512_setzero_ps();
		accm[2 * p] = accm[2 * p + 1] = _mm256_setzero_ps();
	}
	for (size_t i = 0; i < a->nblk; i++, w += wb, x += xb, pd += 8, ps += 8, bs += 64) {
		__m512i q[4];
		__m512 dw[4];

		prefetch_group(w, 2 * np, rb, i, wb);
#pragma GCC unroll 4
		for (int p = 0; p < np; p++) {
			const uint8_t *w0 = w + 2 * p * rb, *w1 = w0 + rb;

			if (t == 2)
				q[p] = _mm512_xor_si512(join(ld256(w0 + wo), ld256(w1 + wo)),
							_mm512_set1_epi8((char)0x80));
			else
				q[p] = nib32x2(w0 + wo, w1 + wo);
			if (t >= 3)     /* Q5: the fifth bit over the nibble, codes 0..31 */
				q[p] = _mm512_or_si512(q[p], _mm512_and_si512(join(bits32(w0 + wo - 4),
					bits32(w1 + wo - 4)), _mm512_set1_epi8(16)));
			if (mn && nx == 1) {
				/* (d0, m0, d1, m1): d for the products, m * s added
				 * into lanes 1 and 3 as q_rows adds its pr */
				uint32_t h0, h1;

				memcpy(&h0, w0, 4);
				memcpy(&h1, w1, 4);
				__m128 dm = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)((uint64_t)h1 << 32 | h0)));

				dw[p] = _mm512_permutexvar_ps(_mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2,
									       0, 0, 0, 0, 0, 0, 0, 0),
							      _mm512_castps128_ps512(dm));
				accm[p] = _mm256_castps128_ps256(_mm_add_ps(_mm256_castps256_ps128(accm[p]),
					_mm_mul_ps(dm, _mm_setr_ps(0.f, ps[0], 0.f, ps[0]))));
				continue;
			}
			dw[p] = _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
				_mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128(rd16(w0) | rd16(w1) << 16))));
			if (mn) {
				/* the m * s of each activation row, as q_tile adds them */
				__m256 s8 = _mm256_maskz_loadu_ps(mk, ps);

				accm[2 * p] = _mm256_add_ps(accm[2 * p],
							    _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(rd16(w0 + 2))), s8));
				accm[2 * p + 1] = _mm256_add_ps(accm[2 * p + 1],
								_mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(rd16(w1 + 2))), s8));
			}
		}
#pragma GCC unroll 8
		for (int k = 0; k < nx; k++) {
			__m512i xv = _mm512_broadcast_i64x4(ld256(x + k * xs));
			__m512i bi = mn ? _mm512_setzero_si512() : _mm512_broadcast_i64x4(ld256(bs + 8 * k));
			__m512 dx = _mm512_set1_ps(pd[k]);

#pragma GCC unroll 4
			for (int p = 0; p < np; p++) {
				__m512i s = _mm512_dpbusd_epi32(bi, q[p], xv);

				acc[p][k] = _mm512_fmadd_ps(_mm512_mul_ps(dw[p], dx), _mm512_cvtepi32_ps(s), acc[p][k]);
			}
		}
	}
#pragma GCC unroll 4
	for (int p = 0; p < np; p++) {
		float m0[8], m1[8];

		if (mn && nx == 1) {
			/* lanes 1 and 3 of accm[p]: m * s of rows 2p and 2p+1 */
			float m4[4];

			_mm_storeu_ps(m4, _mm256_castps256_ps128(accm[p]));
			m0[0] = m4[1], m1[0] = m4[3];
		} else {
			_mm256_storeu_ps(m0, accm[2 * p]);
			_mm256_storeu_ps(m1, accm[2 * p + 1]);
		}
#pragma GCC unroll 8
		for (int k = 0; k < nx; k++) {
			float v0 = hsum8(lo8(acc[p][k])), v1 = hsum8(hi8(acc[p][k]));

			if (mn)
				v0 += m0[k], v1 += m1[k];
			a->y[(b + k) * a->ldy + r + 2 * p] = v0;
			a->y[(b + k) * a->ldy + r + 2 * p + 1] = v1;
		}
	}
}

#define Q5(t, np, nx) \
static AVX512 void q5_##t##_##np##_##nx(const struct qarg *a, size_t r, size_t b) \
{ q5_tile(a, t, np, nx, r, b); }
#define Q5_ALL(t) \
Q5(t, 4, 1) Q5(t, 2, 2) Q5(t, 2, 3) Q5(t, 2, 4) Q5(t, 2, 5) Q5(t, 2, 6) Q5(t, 2, 7) Q5(t, 2, 8) \
static qfn *const q5_##t[9] = {0, q5_##t##_4_1, q5_##t##_2_2, q5_##t##_2_3, q5_##t##_2_4, \
	q5_##t##_2_5, q5_##t##_2_6, q5_##t##_2_7, q5_##t##_2_8};
Q5_ALL(0)
Q5_ALL(1)
Q5_ALL(2)
Q5_ALL(3)
Q5_ALL(4)
static qfn *const *const q5_tiles[5] = {q5_0, q5_1, q5_2, q5_3, q5_4};
Q5(0, 2, 1) Q5(1, 2, 1) Q5(2, 2, 1) Q5(3, 2, 1) Q5(4, 2, 1)
static qfn *const q5_rows4[5] = {q5_0_2_1, q5_1_2_1, q5_2_2_1, q5_3_2_1, q5_4_2_1};

/* weight bytes a panel of rows may take: the panel stays in L2 while
 * every octet of activation rows goes over it */
#define PANEL_BYTES (512 * 1024)

/* t: qcodes' number of the type */
static AVX512 int
avx512_q(int t, const uint8_t *W, size_t rb, size_t r0, size_t r1, size_t nblk,
	 const uint8_t *X, size_t xs, size_t nb, float *y, size_t ldy)
{
	qfn *const *tiles = q5_tiles[t];
	qfn *const (*rows)[2] = q_rows_t[t];
	size_t per, panel;
	float *pd;
	struct qarg a;

	if (__builtin_mul_overflow((nb + 7) / 8 * 8, nblk, &per) || per > SIZE_MAX / 16
	    || !(pd = scratch_get(QMIN(t) ? 2 * per : per * 9)))
		return -1;
	prep_act32(X, xs, nb, nblk, QMIN(t) ? PREP_S : PREP_D, pd, pd + per);
	a = (struct qarg){W, rb, nblk, X, xs, pd, pd + per, y, ldy, NULL};
	if (!QMIN(t)) {
		a.bias = (const int32_t *)(const void *)(pd + per);
		prep_bias(X, xs, nb, nblk, t == 0 ? 8 : t == 3 ? 16 : 128, (int32_t *)(void *)(pd + per));
	}
	panel = PANEL_BYTES / rb / 8 * 8;
	panel = panel < 8 ? 8 : panel;
	for (size_t p0 = r0; p0 < r1; p0 += panel) {
		size_t p1 = r1 - p0 < panel ? r1 : p0 + panel;

		for (size_t b = 0; b < nb;) {
			size_t nx = 8 - b % 8, rw, r = p0;

			nx = nb - b < nx ? nb - b : nx;
			/* one activation row: 8 weight rows at once for the 4-bit
			 * types, 4 for Q8_0 (which 8 interleaved streams slowed
			 * from 29 to 26 GB/s) */
			rw = nx == 1 && t != 2 ? 8 : 4;
			for (; r + rw <= p1; r += rw)
				(rw == 4 && nx == 1 ? q5_rows4[t] : tiles[nx])(&a, r, b);
			/* rows left over: one at a time through AVX2, the same sums */
			for (; r < p1; r++)
				for (size_t k = 0; k < nx; k += 3)
					rows[nx - k < 3 ? nx - k : 3][0](&a, r, b + k);
			b += nx;
		}
	}
	return 0;
}

/* ---- Q4_K, Q6_K */

/* one super-block of a weight row in 512-bit pairs of chunks: codes of
 * chunks 2p (low half) and 2p+1, their int16 scale vectors; mn, d, dmin
 * as in struct ksb */
struct ksb5 {
	__m512i q[4], sc[4];
	__m256i mn;
	float d, dmin;
};

INL5 void
unpack5_q4k(const uint8_t *w, struct ksb5 *u)
{
	uint8_t sm[16];
	__m128i m16;

	q4k_scales(w + 4, sm);
#pragma GCC unroll 4
	for (int p = 0; p < 4; p++) {
		__m256i v = ld256(w + 16 + 32 * p);

		u->q[p] = _mm512_and_si512(join(v, _mm256_srli_epi16(v, 4)), _mm512_set1_epi8(15));
		u->sc[p] = join(_mm256_set1_epi16(sm[2 * p]), _mm256_set1_epi16(sm[2 * p + 1]));
	}
	m16 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sm + 8)));
	u->mn = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
	u->d = _cvtsh_ss(rd16(w));
	u->dmin = _cvtsh_ss(rd16(w + 2));
}

INL5 void
unpack5_q6k(const uint8_t *w, struct ksb5 *u)
{
	__m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 192)));
	const __m512i m4 = _mm512_set1_epi8(15), m2 = _mm512_set1_epi8(0x30);

#pragma GCC unroll 2
	for (int h = 0; h < 2; h++) {
		/* l0 l1 side by side: chunks 4h, 4h+1 take their low nibbles,
		 * 4h+2, 4h+3 their high ones */
		__m512i l = _mm512_loadu_si512(w + 64 * h);
		__m256i hb = ld256(w + 128 + 32 * h);
		__m256i sh = h ? _mm256_permute2x128_si256(s16, s16, 0x11)
			       : _mm256_permute2x128_si256(s16, s16, 0x00);
		__m256i sc[4];

		u->q[2 * h] = _mm512_or_si512(_mm512_and_si512(l, m4),
			_mm512_and_si512(join(_mm256_slli_epi16(hb, 4), _mm256_slli_epi16(hb, 2)), m2));
		u->q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
			_mm512_and_si512(join(hb, _mm256_srli_epi16(hb, 2)), m2));
#pragma GCC unroll 4
		for (int k = 0; k < 4; k++)
			sc[k] = _mm256_shuffle_epi8(sh, _mm256_set_m128i(
				_mm_set1_epi16((short)(0x0100 * (4 * k + 3) + 4 * k + 2)),
				_mm_set1_epi16((short)(0x0100 * (4 * k + 1) + 4 * k))));
		/* chunk 4h+k is at q[2h + k/2]'s half k%2 ... with the order of
		 * unpack_q6k: 0 l0 low, 1 l1 low, 2 l0 high, 3 l1 high */
		u->sc[2 * h] = join(sc[0], sc[1]);
		u->sc[2 * h + 1] = join(sc[2], sc[3]);
	}
	u->mn = _mm256_slli_epi16(s16, 5);
	u->d = _cvtsh_ss(rd16(w + 208));
	u->dmin = u->d;
}

/* a weight row against nx (1..16) activation rows from b: k_rows' sums */
INL5 void
k5_rows(const struct kargs *a, int q6, int nx, size_t r, size_t b)
{
	const uint8_t *w = a->W + r * a->rb, *x = a->X + b * a->xs;
	const size_t xs = a->xs;
	__m256 acc[16];
	struct ksb5 u;

#pragma GCC unroll 16
	for (int k = 0; k < nx; k++)
		acc[k] = _mm256_setzero_ps();
	for (size_t i = 0; i < a->nsb; i++, w += q6 ? Q6_K_B : Q4_K_B, x += Q8_K_B) {
		for (int o = 0; o < (q6 ? Q6_K_B : Q4_K_B); o += 64)
			_mm_prefetch((const char *)(w + K_AHEAD * (q6 ? Q6_K_B : Q4_K_B) + o), _MM_HINT_T0);
		if (q6)
			unpack5_q6k(w, &u);
		else
			unpack5_q4k(w, &u);
#pragma GCC unroll 16
		for (int k = 0; k < nx; k++) {
			const uint8_t *xb = x + k * xs;
			__m512i s5 = _mm512_setzero_si512();
			__m256i s, mi;
			float dx = rdf32(xb);

#pragma GCC unroll 4
			for (int p = 0; p < 4; p++)
				s5 = _mm512_dpwssd_epi32(s5, _mm512_maddubs_epi16(u.q[p],
					_mm512_loadu_si512(xb + 4 + 64 * p)), u.sc[p]);
			s = _mm256_add_epi32(_mm512_castsi512_si256(s5), _mm512_extracti64x4_epi64(s5, 1));
			mi = _mm256_madd_epi16(ld256(xb + 260), u.mn);
			acc[k] = k_acc(q6, acc[k], s, mi, u.d, u.dmin, dx);
		}
	}
#pragma GCC unroll 16
	for (int k = 0; k < nx; k++)
		a->y[(b + k) * a->ldy + r] = hsum8(acc[k]);
}

/* activation rows a super-block is unpacked for on this path: 16 (the
 * unpack, paid once for them all, is the larger share here; dotbench
 * 2048x4096x64: Q4_K 124 -> 147 GFLOP/s against 8, Q6_K 140 -> 153; a
 * 1B Q4_K_M prompt step 92 -> 103 tok/s once the engine packed its
 * activation rows: 16 rows at the widest row's stride were slower) */
#ifndef K5X
#define K5X 16
#endif
#define K5(q6, nx) \
static AVX512 void k5_##q6##_##nx(const struct kargs *a, size_t r, size_t b) \
{ k5_rows(a, q6, nx, r, b); }
K5(0, 2) K5(0, 3) K5(0, 4) K5(0, 5) K5(0, 6) K5(0, 7) K5(0, 8)
K5(1, 2) K5(1, 3) K5(1, 4) K5(1, 5) K5(1, 6) K5(1, 7) K5(1, 8)
K5(0, 9) K5(0, 10) K5(0, 11) K5(0, 12) K5(0, 13) K5(0, 14) K5(0, 15) K5(0, 16)
K5(1, 9) K5(1, 10) K5(1, 11) K5(1, 12) K5(1, 13) K5(1, 14) K5(1, 15) K5(1, 16)

static AVX512 int
avx512_k(int q6, const uint8_t *W, size_t rb, size_t r0, size_t r1, size_t nsb,
	 const uint8_t *X, size_t xs, size_t nb, float *y, size_t ldy)
{
	/* one activation row: AVX2's k_row1, which makes each piece of the
	 * super-block just before its use (the 512-bit unpack costs more
	 * than one row's products gain: 11 against 17 GB/s measured) */
	static kfn *const fn[2][17] = {
		{0, k_row1_0, k5_0_2, k5_0_3, k5_0_4, k5_0_5, k5_0_6, k5_0_7, k5_0_8,
		 k5_0_9, k5_0_10, k5_0_11, k5_0_12, k5_0_13, k5_0_14, k5_0_15, k5_0_16},
		{0, k_row1_1, k5_1_2, k5_1_3, k5_1_4, k5_1_5, k5_1_6, k5_1_7, k5_1_8,
		 k5_1_9, k5_1_10, k5_1_11, k5_1_12, k5_1_13, k5_1_14, k5_1_15, k5_1_16},
	};
	struct kargs a = {W, rb, nsb, X, xs, y, ldy};
	size_t panel = PANEL_BYTES / rb;

	panel = panel < 8 ? 8 : panel;
	for (size_t p0 = r0; p0 < r1; p0 += panel) {
		size_t p1 = r1 - p0 < panel ? r1 : p0 + panel;

		for (size_t b = 0; b < nb; b += K5X) {
			size_t nx = nb - b < K5X ? nb - b : K5X;

			for (size_t r = p0; r < p1; r++)
				fn[q6][nx](&a, r, b);
		}
	}
	return 0;
}

/* ---- F32, F16, BF16 */

/* 8 weights of rows w0 (low half) and w1, widened to f32 */
INL5 __m512
wld8x2(uint32_t t, const uint8_t *w0, const uint8_t *w1)
{
	if (t == QUANT_F32)
		return _mm512_castsi512_ps(join(ld256(w0), ld256(w1)));
	__m256i h = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)w1),
				     _mm_loadu_si128((const __m128i *)w0));

	if (t == QUANT_F16)
		return _mm512_cvtph_ps(h);
	return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* f_tile's sums, two rows a register: 2*np rows from r, nx from b */
INL5 void
f5_tile(const struct fargs *a, uint32_t t, int np, int nx, size_t r, size_t b)
{
	const size_t es = t == QUANT_F32 ? 4 : 2, n = a->n, rb = a->rb, xs = a->xs;
	const uint8_t *w = a->W + r * rb;
	const float *x = a->X + b * xs;
	__m512 acc[4][4];
	size_t e = 0;

#pragma GCC unroll 4
	for (int p = 0; p < np; p++)
#pragma GCC unroll 4
		for (int k = 0; k < nx; k++)
			acc[p][k] = _mm512_setzero_ps();
	for (; e + 8 <= n; e += 8) {
		__m512 wv[4];

		prefetch_group(w + e * es, 2 * np, rb, e / 8, 8 * es);
#pragma GCC unroll 4
		for (int p = 0; p < np; p++)
			wv[p] = wld8x2(t, w + 2 * p * rb + e * es, w + (2 * p + 1) * rb + e * es);
#pragma GCC unroll 4
		for (int k = 0; k < nx; k++) {
			__m512 xv = bcast8(x + k * xs + e);

#pragma GCC unroll 4
			for (int p = 0; p < np; p++)
				acc[p][k] = _mm512_fmadd_ps(wv[p], xv, acc[p][k]);
		}
	}
#pragma GCC unroll 4
	for (int p = 0; p < np; p++)
#pragma GCC unroll 4
		for (int k = 0; k < nx; k++)
			for (int h = 0; h < 2; h++) {
				size_t j = 2 * p + h;
				float s = hsum8(h ? hi8(acc[p][k]) : lo8(acc[p][k]));

				for (size_t f = e; f < n; f++)
					s += wld1(t, w + j * rb + f * es) * x[k * xs + f];
				a->y[(b + k) * a->ldy + r + j] = s;
			}
}

#define F5(tn, t, np, nx) \
static AVX512 void f5_##tn##_##np##_##nx(const struct fargs *a, size_t r, size_t b) \
{ f5_tile(a, t, np, nx, r, b); }
#define F5_ALL(tn, t) \
F5(tn, t, 4, 1) F5(tn, t, 2, 2) F5(tn, t, 2, 3) F5(tn, t, 2, 4) \
static ffn *const f5_##tn[5] = {0, f5_##tn##_4_1, f5_##tn##_2_2, f5_##tn##_2_3, f5_##tn##_2_4};
F5_ALL(f32, QUANT_F32)
F5_ALL(f16, QUANT_F16)
F5_ALL(bf16, QUANT_BF16)

static AVX512 int
avx512_float(uint32_t t, const uint8_t *W, size_t rb, size_t r0, size_t r1, size_t n,
	     const uint8_t *X, size_t xs, size_t nb, float *y, size_t ldy)
{
	ffn *const *tiles = t == QUANT_F32 ? f5_f32 : t == QUANT_F16 ? f5_f16 : f5_bf16;
	ffn *const (*fns)[2] = t == QUANT_F32 ? f_fns_f32 : t == QUANT_F16 ? f_fns_f16 : f_fns_bf16;
	struct fargs a = {W, rb, n, (const float *)(const void *)X, xs / 4, y, ldy};

	if ((uintptr_t)X % 4 || xs % 4)
		return -1;
	if (nb >= 32 && blas_ready()
	    && blas_rows(t, W, rb, r0, r1, n, a.X, a.xs, nb, y, ldy) == 0)
		return 0;
	/* avx2_float's blocking, with tiles of 4 rows by up to 4 (8 by 1) */
	{
		ffn *const one[5] = {0, fns[1][0], fns[2][0], fns[3][0], fns[4][0]};

		float_blocks(&a, r0, r1, nb, tiles, 8, 4, one);
	}
	return 0;
}

/* ------------------------------------------------------------ the entry point */

/* the kernels' number of a 32-element block type (qwb's index) */
static int
qnum(uint32_t wtype)
{
	switch (wtype) {
	case QUANT_Q4_0: return 0;
	case QUANT_Q4_1: return 1;
	case QUANT_Q8_0: return 2;
	case QUANT_Q5_0: return 3;
	default: return 4;
	}
}

void
dot_rows(uint32_t wtype, const void *W, size_t r0, size_t r1, size_t n,
	 const void *xq, size_t xq_stride, size_t nb, float *y, size_t ldy)
{
	size_t rb = quant_row_bytes(wtype, n);
	const uint8_t *w = W, *x = xq;
	int rc = -1;

	if (r1 <= r0 || nb == 0)
		return;
	if (dot_act_bytes(wtype, n) == 0 || rb == 0) {
		/* a type or size this engine cannot multiply: zeros, never
		 * a read past the rows */
		for (size_t b = 0; b < nb; b++)
			memset(y + b * ldy + r0, 0, (r1 - r0) * sizeof *y);
		return;
	}
	if (dot_isa() == DOT_AVX512) {
		switch (wtype) {
		case QUANT_Q4_0:
		case QUANT_Q4_1:
		case QUANT_Q8_0:
		case QUANT_Q5_0:
		case QUANT_Q5_1:
			rc = avx512_q(qnum(wtype), w, rb, r0, r1, n / QK, x, xq_stride, nb, y, ldy);
			break;
		case QUANT_Q4_K:
		case QUANT_Q6_K:
			rc = avx512_k(wtype == QUANT_Q6_K, w, rb, r0, r1, n / QKK, x, xq_stride, nb, y, ldy);
			break;
		default:
			rc = avx512_float(wtype, w, rb, r0, r1, n, x, xq_stride, nb, y, ldy);
			break;
		}
	} else if (dot_isa() == DOT_AVX2) {
		switch (wtype) {
		case QUANT_Q4_0:
		case QUANT_Q4_1:
		case QUANT_Q8_0:
		case QUANT_Q5_0:
		case QUANT_Q5_1:
			rc = avx2_q(qnum(wtype), w, rb, r0, r1, n / QK, x, xq_stride, nb, y, ldy);
			break;
		case QUANT_Q4_K:
		case QUANT_Q6_K:
			rc = avx2_k(wtype == QUANT_Q6_K, w, rb, r0, r1, n / QKK, x, xq_stride, nb, y, ldy);
			break;
		default:
			rc = avx2_float(wtype, w, rb, r0, r1, n, x, xq_stride, nb, y, ldy);
			break;
		}
	}
	if (rc != 0)
		scalar_rows(wtype, w, rb, r0, r1, n, x, xq_stride, nb, y, ldy);
}
