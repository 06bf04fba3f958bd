/* quant: F16/BF16 conversions and the simple block types (Q4_0, Q4_1, Q5_0,
 * Q5_1, Q8_0, Q8_1), written to give the same bytes as ggml's reference
 * quantizers (quantize_row_*_ref in ggml-quants.c): the same float
 * operations in the same order, the same truncating casts, the same
 * round-to-nearest-even storage of the scales as f16.
 *
 * NaN and inf inputs. ggml's reference code casts floats to int8 with C
 * casts, which is undefined for NaN or out-of-range values; built for x86
 * (the platform llama.cpp's files come from) such a cast yields the low byte
 * of cvttss2si's result, and cvttss2si gives INT32_MIN (low byte 0) for NaN
 * and values outside the int32 range. float_to_i8 reproduces that without
 * undefined behaviour, so a block holding NaN or inf gets the codes x86 ggml
 * would give it (garbage in, garbage out) and never a crash. */
#include <math.h>
#include <string.h>
#include <strings.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#include "gguf.h"
#include "quant.h"

/* ------------------------------------------------------------ f16, bf16 */

static uint32_t
f2u(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	return u;
}

static float
u2f(uint32_t u)
{
	float f;

	memcpy(&f, &u, 4);
	return f;
}

float
quant_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t man = h & 0x3ff;

	if (exp == 0x1f)                /* inf, NaN (payload kept) */
		return u2f(sign | 0x7f800000 | man << 13);
	if (exp == 0) {
		/* zero or subnormal: man * 2^-24, exact in f32 */
		float v = (float)man * 0x1p-24f;
		return u2f(sign | f2u(v));
	}
	return u2f(sign | (exp + 112) << 23 | man << 13);
}

uint16_t
quant_f32_to_f16(float f)
{
	uint32_t u = f2u(f);
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
	uint32_t a = u & 0x7fffffff;
	uint32_t exp, man, r;

	if (a > 0x7f800000)             /* NaN: quiet, top payload bits kept */
		return sign | 0x7e00 | (uint16_t)((a >> 13) & 0x3ff);
	if (a >= 0x477ff000)            /* rounds to 65536 or more: inf */
		return sign | 0x7c00;
	if (a < 0x38800000) {
		/* below 2^-14: an f16 subnormal (or zero); a * 2^24 rounded
		 * to an integer, to nearest even, by the FPU's rounding
		 * (exact: multiplying by a power of two) */
		float v = u2f(a) * 0x1p24f;
		/* v < 1024: adding 2^23 rounds it to an integer (RNE) */
		float t = (v + 0x1p23f) - 0x1p23f;
		return sign | (uint16_t)t;
	}
	exp = (a >> 23) - 112;          /* 1..30 */
	man = a & 0x7fffff;
	r = exp << 10 | man >> 13;
	/* round to nearest even on the 13 dropped bits; a carry into the
	 * exponent is right (and reaches inf only past the check above) */
	man &= 0x1fff;
	if (man > 0x1000 || (man == 0x1000 && (r & 1)))
		r++;
	return sign | (uint16_t)r;
}

float
quant_bf16_to_f32(uint16_t h)
{
	return u2f((uint32_t)h << 16);
}

uint16_t
quant_f32_to_bf16(float f)
{
	uint32_t u = f2u(f);

	if ((u & 0x7fffffff) > 0x7f800000)      /* NaN: force quiet */
		return (uint16_t)((u >> 16) | 64);
	return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

void
quant_f16_to_f32_row(const uint16_t *src, float *dst, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = quant_f16_to_f32(src[i]);
}

#if defined(__x86_64__) || defined(__i386__)
/* F16C's vcvtps2ph, 8 at a time: the same bits as quant_f32_to_f16 (round
 * to nearest even; a NaN quieted with its top payload bits), which the unit
 * test checks on a million patterns. The engine stores every K and V row
 * through here. */
__attribute__((target("avx,f16c")))
static void
f16_row_f16c(const float *src, uint16_t *dst, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(dst + i),
				 _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
	for (; i < n; i++)
		dst[i] = quant_f32_to_f16(src[i]);
}

static int
have_f16c(void)
{
	static int have = -1;
	int h = __atomic_load_n(&have, __ATOMIC_RELAXED);
	unsigned a, b, c, d;

	if (h < 0) {
		h = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) && (c & bit_AVX);
		__atomic_store_n(&have, h, __ATOMIC_RELAXED);
	}
	return h;
}
#endif

void
quant_f32_to_f16_row(const float *src, uint16_t *dst, size_t n)
{
#if defined(__x86_64__) || defined(__i386__)
	if (have_f16c()) {
		f16_row_f16c(src, dst, n);
		return;
	}
#endif
	for (size_t i = 0; i < n; i++)
		dst[i] = quant_f32_to_f16(src[i]);
}

void
quant_bf16_to_f32_row(const uint16_t *src, float *dst, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = quant_bf16_to_f32(src[i]);
}

void
quant_f32_to_bf16_row(const float *src, uint16_t *dst, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = quant_f32_to_bf16(src[i]);
}

/* ------------------------------------------------------------ helpers */

/* (int8_t)v as x86 computes it (see the top of the file). */
static int
float_to_i8(float v)
{
	int32_t i;

	if (!(v > -2147483648.0f && v < 2147483648.0f))
		i = INT32_MIN;
	else
		i = (int32_t)v;
	return (int8_t)(uint8_t)((uint32_t)i & 0xff);
}

/* roundf (half away from zero), then the int8 cast. */
static int
round_to_i8(float v)
{
	return float_to_i8(roundf(v));
}

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static void
put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> 8 * i);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Signed value of largest magnitude (the first one on ties), as ggml's
 * Q4_0/Q5_0 pick it. */
static float
absmax_signed(const float *x)
{
	float amax = 0.0f, max = 0.0f;

	for (int j = 0; j < QUANT_QK; j++)
		if (amax < fabsf(x[j])) {
			amax = fabsf(x[j]);
			max = x[j];
		}
	return max;
}

static void
minmax(const float *x, float *mn, float *mx)
{
	float lo = 3.40282347e+38f, hi = -3.40282347e+38f;

	for (int j = 0; j < QUANT_QK; j++) {
		if (x[j] < lo)
			lo = x[j];
		if (x[j] > hi)
			hi = x[j];
	}
	*mn = lo;
	*mx = hi;
}

/* ------------------------------------------------------------ block types
 * Layouts (little-endian, QK = 32 elements a block):
 *   Q4_0 18 bytes: f16 d, 16 bytes of nibbles (low: x[j], high: x[j+16])
 *   Q4_1 20 bytes: f16 d, f16 m, 16 bytes of nibbles
 *   Q5_0 22 bytes: f16 d, u32 qh (bit j: 5th bit of x[j]), 16 bytes of nibbles
 *   Q5_1 24 bytes: f16 d, f16 m, u32 qh, 16 bytes of nibbles
 *   Q8_0 34 bytes: f16 d, 32 int8
 *   Q8_1 36 bytes: f16 d, f16 s (= d * sum of the codes), 32 int8 */

static void
q4_0_block(const float *x, uint8_t *y)
{
	float d = absmax_signed(x) / -8;
	float id = d != 0.0f ? 1.0f / d : 0.0f;

	put16(y, quant_f32_to_f16(d));
	for (int j = 0; j < 16; j++) {
		int a = float_to_i8(x[j] * id + 8.5f);
		int b = float_to_i8(x[j + 16] * id + 8.5f);
		uint8_t lo = (uint8_t)(a < 15 ? a : 15);
		uint8_t hi = (uint8_t)(b < 15 ? b : 15);
		y[2 + j] = (uint8_t)(lo | hi << 4);
	}
}

static void
q4_1_block(const float *x, uint8_t *y)
{
	float mn, mx, d, id;

	minmax(x, &mn, &mx);
	d = (mx - mn) / 15;
	id = d != 0.0f ? 1.0f / d : 0.0f;
	put16(y, quant_f32_to_f16(d));
	put16(y + 2, quant_f32_to_f16(mn));
	for (int j = 0; j < 16; j++) {
		int a = float_to_i8((x[j] - mn) * id + 0.5f);
		int b = float_to_i8((x[j + 16] - mn) * id + 0.5f);
		uint8_t lo = (uint8_t)(a < 15 ? a : 15);
		uint8_t hi = (uint8_t)(b < 15 ? b : 15);
		y[4 + j] = (uint8_t)(lo | hi << 4);
	}
}

static void
q5_0_block(const float *x, uint8_t *y)
{
	float d = absmax_signed(x) / -16;
	float id = d != 0.0f ? 1.0f / d : 0.0f;
	uint32_t qh = 0;

	put16(y, quant_f32_to_f16(d));
	for (int j = 0; j < 16; j++) {
		int a = float_to_i8(x[j] * id + 16.5f);
		int b = float_to_i8(x[j + 16] * id + 16.5f);
		uint8_t q0 = (uint8_t)(a < 31 ? a : 31);
		uint8_t q1 = (uint8_t)(b < 31 ? b : 31);
		y[6 + j] = (uint8_t)((q0 & 0x0f) | (q1 & 0x0f) << 4);
		qh |= (uint32_t)(q0 >> 4 & 1) << j;
		qh |= (uint32_t)(q1 >> 4 & 1) << (j + 16);
	}
	put32(y + 2, qh);
}

static void
q5_1_block(const float *x, uint8_t *y)
{
	float mn, mx, d, id;
	uint32_t qh = 0;

	minmax(x, &mn, &mx);
	d = (mx - mn) / 31;
	id = d != 0.0f ? 1.0f / d : 0.0f;
	put16(y, quant_f32_to_f16(d));
	put16(y + 2, quant_f32_to_f16(mn));
	for (int j = 0; j < 16; j++) {
		/* ggml does not clamp here (a (uint8_t) cast) */
		uint8_t q0 = (uint8_t)float_to_i8((x[j] - mn) * id + 0.5f);
		uint8_t q1 = (uint8_t)float_to_i8((x[j + 16] - mn) * id + 0.5f);
		y[8 + j] = (uint8_t)((q0 & 0x0f) | (q1 & 0x0f) << 4);
		qh |= (uint32_t)(q0 >> 4 & 1) << j;
		qh |= (uint32_t)(q1 >> 4 & 1) << (j + 16);
	}
	put32(y + 4, qh);
}

static float
q8_scale(const float *x)
{
	float amax = 0.0f;

	for (int j = 0; j < QUANT_QK; j++) {
		float a = fabsf(x[j]);
		amax = amax > a ? amax : a;     /* ggml's MAX(amax, fabsf(v)) */
	}
	return amax / 127;
}

static void
q8_0_block(const float *x, uint8_t *y)
{
	float d = q8_scale(x);
	float id = d != 0.0f ? 1.0f / d : 0.0f;

	put16(y, quant_f32_to_f16(d));
	for (int j = 0; j < QUANT_QK; j++)
		y[2 + j] = (uint8_t)round_to_i8(x[j] * id);
}

static void
q8_1_block(const float *x, uint8_t *y)
{
	float d = q8_scale(x);
	float id = d != 0.0f ? 1.0f / d : 0.0f;
	int sum = 0;

	put16(y, quant_f32_to_f16(d));
	for (int j = 0; j < QUANT_QK; j++) {
		int q = round_to_i8(x[j] * id);
		y[4 + j] = (uint8_t)q;
		sum += q;
	}
	put16(y + 2, quant_f32_to_f16((float)sum * d));
}

static void
q4_0_deblock(const uint8_t *y, float *x)
{
	float d = quant_f16_to_f32(get16(y));

	for (int j = 0; j < 16; j++) {
		x[j] = (float)((y[2 + j] & 0x0f) - 8) * d;
		x[j + 16] = (float)((y[2 + j] >> 4) - 8) * d;
	}
}

static void
q4_1_deblock(const uint8_t *y, float *x)
{
	float d = quant_f16_to_f32(get16(y));
	float m = quant_f16_to_f32(get16(y + 2));

	for (int j = 0; j < 16; j++) {
		x[j] = (float)(y[4 + j] & 0x0f) * d + m;
		x[j + 16] = (float)(y[4 + j] >> 4) * d + m;
	}
}

static void
q5_0_deblock(const uint8_t *y, float *x)
{
	float d = quant_f16_to_f32(get16(y));
	uint32_t qh = get32(y + 2);

	for (int j = 0; j < 16; j++) {
		int q0 = (y[6 + j] & 0x0f) | (int)(qh >> j & 1) << 4;
		int q1 = (y[6 + j] >> 4) | (int)(qh >> (j + 16) & 1) << 4;
		x[j] = (float)(q0 - 16) * d;
		x[j + 16] = (float)(q1 - 16) * d;
	}
}

static void
q5_1_deblock(const uint8_t *y, float *x)
{
	float d = quant_f16_to_f32(get16(y));
	float m = quant_f16_to_f32(get16(y + 2));
	uint32_t qh = get32(y + 4);

	for (int j = 0; j < 16; j++) {
		int q0 = (y[8 + j] & 0x0f) | (int)(qh >> j & 1) << 4;
		int q1 = (y[8 + j] >> 4) | (int)(qh >> (j + 16) & 1) << 4;
		x[j] = (float)q0 * d + m;
		x[j + 16] = (float)q1 * d + m;
	}
}

static void
q8_0_deblock(const uint8_t *y, float *x)
{
	float d = quant_f16_to_f32(get16(y));

	for (int j = 0; j < QUANT_QK; j++)
		x[j] = (float)(int8_t)y[2 + j] * d;
}

static void
q8_1_deblock(const uint8_t *y, float *x)
{
	float d = quant_f16_to_f32(get16(y));

	for (int j = 0; j < QUANT_QK; j++)
		x[j] = (float)(int8_t)y[4 + j] * d;
}

/* ------------------------------------------------------------ rows */

static void
f32_to(const void *src, float *dst, size_t n)
{
	memcpy(dst, src, n * sizeof *dst);
}

static int
f32_from(const float *src, void *dst, size_t n)
{
	memcpy(dst, src, n * sizeof *src);
	return 0;
}

/* f16/bf16 rows through bytes: dst/src need not be 2-aligned */
static void
f16_to(const void *src, float *dst, size_t n)
{
	const uint8_t *p = src;

	for (size_t i = 0; i < n; i++)
		dst[i] = quant_f16_to_f32(get16(p + 2 * i));
}

static int
f16_from(const float *src, void *dst, size_t n)
{
	uint8_t *p = dst;

	for (size_t i = 0; i < n; i++)
		put16(p + 2 * i, quant_f32_to_f16(src[i]));
	return 0;
}

static void
bf16_to(const void *src, float *dst, size_t n)
{
	const uint8_t *p = src;

	for (size_t i = 0; i < n; i++)
		dst[i] = quant_bf16_to_f32(get16(p + 2 * i));
}

static int
bf16_from(const float *src, void *dst, size_t n)
{
	uint8_t *p = dst;

	for (size_t i = 0; i < n; i++)
		put16(p + 2 * i, quant_f32_to_bf16(src[i]));
	return 0;
}

#define BLOCK_ROW(name, bytes) \
static void \
name##_to(const void *src, float *dst, size_t n) \
{ \
	const uint8_t *p = src; \
	for (size_t i = 0; i < n / QUANT_QK; i++) \
		name##_deblock(p + i * (bytes), dst + i * QUANT_QK); \
} \
static int \
name##_from(const float *src, void *dst, size_t n) \
{ \
	uint8_t *p = dst; \
	for (size_t i = 0; i < n / QUANT_QK; i++) \
		name##_block(src + i * QUANT_QK, p + i * (bytes)); \
	return 0; \
}

BLOCK_ROW(q4_0, 18)
BLOCK_ROW(q4_1, 20)
BLOCK_ROW(q5_0, 22)
BLOCK_ROW(q5_1, 24)
BLOCK_ROW(q8_0, 34)
BLOCK_ROW(q8_1, 36)

/* The dispatch table: one entry per supported type. */
static const struct qtype {
	uint32_t type;
	size_t blck;
	void (*to_float)(const void *, float *, size_t);
	int (*from_float)(const float *, void *, size_t);
} qtypes[] = {
	{QUANT_F32, 1, f32_to, f32_from},
	{QUANT_F16, 1, f16_to, f16_from},
	{QUANT_BF16, 1, bf16_to, bf16_from},
	{QUANT_Q4_0, QUANT_QK, q4_0_to, q4_0_from},
	{QUANT_Q4_1, QUANT_QK, q4_1_to, q4_1_from},
	{QUANT_Q5_0, QUANT_QK, q5_0_to, q5_0_from},
	{QUANT_Q5_1, QUANT_QK, q5_1_to, q5_1_from},
	{QUANT_Q8_0, QUANT_QK, q8_0_to, q8_0_from},
	{QUANT_Q8_1, QUANT_QK, q8_1_to, q8_1_from},
	{QUANT_Q4_K, QUANT_QK_K, quant_q4_k_dequantize, quant_q4_k_quantize},
	{QUANT_Q6_K, QUANT_QK_K, quant_q6_k_dequantize, quant_q6_k_quantize},
};

static const struct qtype *
find(uint32_t type)
{
	for (size_t i = 0; i < sizeof qtypes / sizeof qtypes[0]; i++)
		if (qtypes[i].type == type)
			return &qtypes[i];
	return NULL;
}

int
quant_supported(uint32_t type)
{
	return find(type) != NULL;
}

size_t
quant_block_size(uint32_t type)
{
	size_t blck, bytes;

	if (!gguf_type_size(type, &blck, &bytes) || blck == 0)
		return 0;
	return blck;
}

size_t
quant_row_bytes(uint32_t type, size_t n)
{
	size_t blck, bytes;

	if (!gguf_type_size(type, &blck, &bytes) || blck == 0 || n % blck)
		return 0;
	if (n / blck > SIZE_MAX / bytes)
		return 0;
	return n / blck * bytes;
}

int
quant_type_from_name(const char *name)
{
	for (uint32_t t = 0; t < 64; t++) {
		size_t blck, bytes;

		if (!gguf_type_size(t, &blck, &bytes))
			continue;
		if (strcasecmp(name, gguf_type_name(t)) == 0)
			return (int)t;
	}
	return -1;
}

const char *
quant_type_name(uint32_t type)
{
	return gguf_type_name(type);
}

void
quant_dequantize_row(uint32_t type, const void *src, float *dst, size_t n)
{
	const struct qtype *q = find(type);

	if (!q || n % q->blck) {
		memset(dst, 0, n * sizeof *dst);
		return;
	}
	q->to_float(src, dst, n);
}

int
quant_quantize_row(uint32_t type, const float *src, void *dst, size_t n)
{
	const struct qtype *q = find(type);

	if (!q || n % q->blck)
		return -1;
	return q->from_float(src, dst, n);
}
