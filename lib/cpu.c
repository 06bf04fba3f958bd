/* cpu: the forward pass on the CPU. One step runs every token of every
 * sequence in the batch through the layers together, so each weight matrix
 * is read once per step whatever the batch holds; attention is per token
 * and head over that sequence's blocks of the paged cache. Every operation
 * on a token's row is independent of the rest of the batch, which is what
 * makes the answers of a request the same alone or in any batch. */
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "die.h"
#include "dot.h"
#include "pool.h"
#include "quant.h"

struct cpu {
	const model *m;
	pool *pool;
	int nth;
	int isa;                 /* dot_isa() at the start: from DOT_AVX2 on, the SIMD
				  * attention, SwiGLU and RoPE; DOT_AVX512 halves attention's loops */
	int bs_shift;            /* log2 of the block size, -1 if not a power of two */
	uint32_t n_blocks, bs, max_tokens, max_out, max_ctx;
	uint32_t qd, kvd, wide;  /* n_heads*head_dim, n_kv_heads*head_dim, max(dim, ff, qd) */
	uint16_t *kc, *vc;       /* (n_layers, n_blocks, bs, kvd) F16 */
	float *x;                /* (max_tokens, dim) the residual stream */
	float *xn;               /* (max_tokens, wide) normalised input of a product */
	float *q, *k, *v;        /* (max_tokens, qd | kvd | kvd) */
	float *att;              /* (max_tokens, qd) */
	float *g, *u;            /* (max_tokens, ff) */
	float *tmp;              /* (max_tokens, dim) a product before it is added to x */
	float *rope;             /* (max_tokens, rope_dim) cos, sin pairs per token */
	float *scores;           /* (nth, GMAX, max_ctx + 8) */
	float *lanes;            /* (nth, GMAX, 32, head_dim) attention's lane sums */
	float *kv32;             /* (kv32_cap) F32 copies of the K and V of this step's
				  * parts of KV32_MIN tokens or more (kv32_task) */
	size_t kv32_cap;         /* floats; a part that does not fit reads the cache */
	size_t *p32;             /* (max_tokens) each part's offset in kv32, or KV32_NONE */
	size_t n32;              /* positions kv32 holds this step (all parts) */
	unsigned char *xq;       /* (max_tokens, act bytes of wide) quantized activations */
	uint32_t *tpart;         /* (max_tokens) the part each token belongs to */
	uint32_t *tout;          /* (max_out) token index of each logits row */
	float *outx;             /* (max_out, dim) */
	const sched_batch *b;
	char desc[64];
};

size_t
cpu_block_bytes(const model *m, uint32_t block_size)
{
	return (size_t)2 * m->n_layers * block_size * m->n_kv_heads * m->head_dim * sizeof(uint16_t);
}

/* ------------------------------------------------------------- helpers */

static void *
big(size_t n, char *err, size_t errlen, const char *what)
{
	void *p = 0;

	if (n == 0)
		n = 64;
	if (posix_memalign(&p, 64, n)) {
		seterr(err, errlen, "unable to allocate %zu bytes for %s", n, what);
		return 0;
	}
	return p;
}

/* e^x for 8 floats, the way ggml's AVX2 code computes it (x = n ln2 + b,
 * a degree-5 polynomial in b, the exponent put in by integer add, with the
 * wide-range path for |n| > 126). The constants are that algorithm's. The
 * engine uses it wherever llama.cpp does (softmax, SiLU), so that its
 * numbers are llama.cpp's bit for bit. */
__attribute__((target("avx2,fma")))
static __m256
exp8(__m256 x)
{
	const __m256 r = _mm256_set1_ps(0x1.8p23f);
	const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
	const __m256 n = _mm256_sub_ps(z, r);
	const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
					  _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
	const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
	const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1))));
	const __m256 an = _mm256_andnot_ps(_mm256_set1_ps(-0.f), n);
	const __m256 c = _mm256_cmp_ps(an, _mm256_set1_ps(126), _CMP_GT_OQ);
	const __m256 u = _mm256_mul_ps(b, b);
	const __m256 j = _mm256_fmadd_ps(
		_mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
				_mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
		u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
	__m256i g;
	__m256 s1, s2, dd;

	if (!_mm256_movemask_ps(c))
		return _mm256_fmadd_ps(j, k, k);
	/* |n| > 126: scale in two steps (or flush to 0 / inf past 192) */
	g = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
			     _mm256_set1_epi32((int)0x82000000u));
	s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
	s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
	dd = _mm256_cmp_ps(an, _mm256_set1_ps(192), _CMP_GT_OQ);
	return _mm256_or_ps(_mm256_and_ps(dd, _mm256_mul_ps(s1, s1)),
			    _mm256_andnot_ps(dd, _mm256_or_ps(_mm256_and_ps(c, _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1)),
							      _mm256_andnot_ps(c, _mm256_fmadd_ps(k, j, k)))));
}

/* the sum of 8 lanes: (hi + lo), then pairs, then the last two (ggml's
 * and tinyBLAS's horizontal sum) */
__attribute__((target("avx2,fma")))
static float
hsum8(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* y = silu(g) * u over n values: ggml's swiglu, x / (1 + e^-x) with exp8 */
__attribute__((target("avx2,fma")))
static void
swiglu_avx2(float *y, const float *g, const float *u, uint32_t n)
{
	uint32_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		__m256 x = _mm256_loadu_ps(g + i);
		__m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
		__m256 si = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1), e));
		_mm256_storeu_ps(y + i, _mm256_mul_ps(si, _mm256_loadu_ps(u + i)));
	}
	for (; i < n; i++)
		y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void
swiglu(int simd, float *y, const float *g, const float *u, uint32_t n)
{
	uint32_t i;

	if (simd) {
		swiglu_avx2(y, g, u, n);
		return;
	}
	for (i = 0; i < n; i++)
		y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* RMSNorm of n values times w (ggml sums the squares in double) */
static void
rmsnorm(float *y, const float *x, const float *w, uint32_t n, float eps)
{
	double ss = 0;
	float scale;
	uint32_t i;

	for (i = 0; i < n; i++)
		ss += (double)(x[i] * x[i]);   /* the product in float, as ggml */
	scale = 1.0f / sqrtf((float)(ss / n) + eps);
	for (i = 0; i < n; i++)
		y[i] = x[i] * scale * w[i];
}

/* ------------------------------------------------------------- products */

/* Up to three matrices that read the same input rows. */
typedef struct mm_job {
	cpu *c;
	uint32_t B;
	int nmat;
	const model_mat *w[3];
	float *out[3];           /* (B, rows) each */
	const float *bias[3];
	int add;                 /* out[0] is added into c->x (rows == dim) */
	/* preparing the input: */
	int prep;                /* PREP_* */
	const float *in;         /* (B, ld) */
	size_t ld;
	const float *norm;
	uint32_t cols;
} mm_job;

enum { PREP_PLAIN, PREP_NORM, PREP_SWIGLU };

/* The activation rows of a job lie this far apart in c->xq: packed to the
 * job's own format, not the widest row's (the 1B shape's 2048-wide inputs
 * took 9344 bytes a row, the width of ff's, and a tile of 8 or 16 rows
 * then spread over four times the pages) */
static size_t
act_stride(const mm_job *j)
{
	return (dot_act_bytes(j->w[0]->type, j->cols) + 63) & ~(size_t)63;
}

static void
prep_rows(mm_job *j, uint32_t b0, uint32_t b1)
{
	cpu *c = j->c;
	uint32_t b, cols = j->cols;
	uint32_t wt = j->w[0]->type;

	for (b = b0; b < b1; b++) {
		const float *src = j->in + (size_t)b * j->ld;
		float *xn = c->xn + (size_t)b * c->wide;

		if (j->prep == PREP_NORM) {
			rmsnorm(xn, src, j->norm, cols, c->m->eps);
			src = xn;
		} else if (j->prep == PREP_SWIGLU) {
			swiglu(c->isa >= DOT_AVX2, xn, src, c->u + (size_t)b * c->m->ff, cols);
			src = xn;
		}
		dot_quantize_act(wt, src, c->xq + (size_t)b * act_stride(j), cols);
	}
}

static void
prep_task(void *arg, int ith, int nth)
{
	mm_job *j = arg;
	long lo, hi;

	pool_split(ith, nth, j->B, 1, &lo, &hi);
	prep_rows(j, (uint32_t)lo, (uint32_t)hi);
}

static void
mm_task(void *arg, int ith, int nth)
{
	mm_job *j = arg;
	cpu *c = j->c;
	int k;

	for (k = 0; k < j->nmat; k++) {
		const model_mat *w = j->w[k];
		long lo, hi;
		uint32_t b, r;

		pool_split(ith, nth, w->rows, 16, &lo, &hi);
		if (lo >= hi)
			continue;
		dot_rows(w->type, w->data, (size_t)lo, (size_t)hi, w->cols, c->xq, act_stride(j),
			 j->B, j->out[k], w->rows);
		if (j->bias[k])
			for (b = 0; b < j->B; b++)
				for (r = (uint32_t)lo; r < (uint32_t)hi; r++)
					j->out[k][(size_t)b * w->rows + r] += j->bias[k][r];
		if (j->add)
			for (b = 0; b < j->B; b++) {
				float *x = c->x + (size_t)b * c->m->dim;
				const float *y = j->out[k] + (size_t)b * w->rows;
				for (r = (uint32_t)lo; r < (uint32_t)hi; r++)
					x[r] += y[r];
			}
	}
}

/* Prepares the input (serially when it is small: a pool run costs more)
 * and runs the products. All matrices of a job share one activation type. */
static void
mm_run(cpu *c, mm_job *j)
{
	if ((size_t)j->B * j->cols < 16384)
		prep_rows(j, 0, j->B);
	else
		pool_run(c->pool, prep_task, j);
	pool_run(c->pool, mm_task, j);
}

/* ------------------------------------------------------------- rope, cache */

/* cos/sin per rotated pair for every token's position, as ggml computes
 * them: theta starts at the position and is multiplied by base^(-2/n) per
 * pair, in float */
static void
rope_tables(cpu *c, const sched_batch *b)
{
	const model *m = c->m;
	uint32_t half = m->rope_dim / 2, p, t, i;
	float theta_scale = powf(m->rope_base, -2.0f / (float)m->rope_dim);

	for (p = 0; p < b->n_parts; p++) {
		const sched_part *pt = &b->parts[p];
		for (t = 0; t < pt->n; t++) {
			float *r = c->rope + (size_t)(pt->first + t) * m->rope_dim;
			float theta = (float)(pt->pos + t) / m->rope_scale;

			c->tpart[pt->first + t] = p;
			for (i = 0; i < half; i++) {
				float th = m->rope_freqs ? theta / m->rope_freqs[i] : theta;
				r[2 * i] = cosf(th);
				r[2 * i + 1] = sinf(th);
				theta *= theta_scale;
			}
		}
	}
}

/* the rotation of each pair, with the fused multiply-add ggml's compiled
 * C++ gets (x0*c - x1*s is fma(x0, c, -(x1*s))): without it the results
 * drift from llama.cpp's in the last bit */
#define ROPE_BODY \
	const model *m = c->m; \
	uint32_t h, i, half = m->rope_dim / 2; \
	for (h = 0; h < n_heads; h++) { \
		float *v = x + (size_t)h * m->head_dim; \
		for (i = 0; i < half; i++) { \
			uint32_t a = m->rope_neox ? i : 2 * i; \
			uint32_t bb = m->rope_neox ? i + half : 2 * i + 1; \
			float x0 = v[a], x1 = v[bb], cs = r[2 * i], sn = r[2 * i + 1]; \
			v[a] = fmaf(x0, cs, -(x1 * sn)); \
			v[bb] = fmaf(x0, sn, x1 * cs); \
		} \
	}

__attribute__((target("fma")))
static void
rope_fma(const cpu *c, float *x, const float *r, uint32_t n_heads)
{
	ROPE_BODY
}

/* the same through libm's fmaf (exact, slower) where there is no FMA */
static void
rope_libm(const cpu *c, float *x, const float *r, uint32_t n_heads)
{
	ROPE_BODY
}

static void
rope_apply(const cpu *c, float *x, const float *r, uint32_t n_heads)
{
	if (c->isa >= DOT_AVX2)
		rope_fma(c, x, r, n_heads);
	else
		rope_libm(c, x, r, n_heads);
}

static inline __attribute__((always_inline)) size_t
cache_row(const cpu *c, uint32_t layer, const sched_part *pt, uint32_t pos)
{
	/* a shift where the block size is a power of two: attention calls
	 * this for every position it reads, and a division there cost more
	 * than the products of a 64-wide head */
	uint32_t b = c->bs_shift >= 0 ? pos >> c->bs_shift : pos / c->bs;
	uint32_t o = c->bs_shift >= 0 ? pos & (c->bs - 1) : pos % c->bs;

	return (((size_t)layer * c->n_blocks + pt->blocks[b]) * c->bs + o) * c->kvd;
}

typedef struct at_job {
	cpu *c;
	uint32_t layer;
} at_job;

/* A part of this many tokens or more gets its K and V copied to F32 once
 * a layer (kv32_task), so that its queries read them without converting
 * F16 each time and in the order they walk them. The same values, so the
 * same bits: only the speed depends on it. A decode step (1 token a
 * sequence) reads the cache. */
#define KV32_MIN 4

/* query heads attention takes together (those sharing a KV head, up to this) */
#define GMAX 8
#define KV32_NONE ((size_t)-1)

/* which parts of the step get F32 copies, and where in kv32 */
static void
kv32_plan(cpu *c)
{
	const sched_batch *b = c->b;
	size_t used = 0;

	c->n32 = 0;
	for (uint32_t i = 0; i < b->n_parts; i++) {
		const sched_part *pt = &b->parts[i];
		uint32_t npos = pt->pos + pt->n;
		size_t need = (size_t)c->kvd * (npos + 32 * ((npos + 31) / 32));

		c->p32[i] = KV32_NONE;
		if (c->isa < DOT_AVX2 || c->m->head_dim % 8 || pt->n < KV32_MIN || need > c->kv32_cap - used)
			continue;
		c->p32[i] = used;
		used += need;
		c->n32 += npos;
	}
}

/* Positions [lo, hi) of the planned parts (counted across them in order)
 * from the cache into kv32, for one layer: per KV head, K by position and
 * V by lane (position mod 32), then position; see kvsrc. */
__attribute__((target("avx2,f16c")))
static void
kv32_copy(cpu *c, uint32_t layer, size_t lo, size_t hi)
{
	const sched_batch *b = c->b;
	uint32_t hd = c->m->head_dim, nkv = c->m->n_kv_heads;
	size_t at = 0;

	for (uint32_t i = 0; i < b->n_parts && at < hi; i++) {
		const sched_part *pt = &b->parts[i];
		uint32_t npos = pt->pos + pt->n, nj = (npos + 31) / 32, p;
		float *base;

		if (c->p32[i] == KV32_NONE)
			continue;
		base = c->kv32 + c->p32[i];
		if (at + npos <= lo) {  /* a part wholly before this thread's share */
			at += npos;
			continue;
		}
		for (p = at < lo ? (uint32_t)(lo - at) : 0, at += p; p < npos && at < hi; p++, at++) {
			size_t row = cache_row(c, layer, pt, p);

			for (uint32_t h = 0; h < nkv; h++) {
				const uint16_t *ks = c->kc + row + (size_t)h * hd, *vs = c->vc + row + (size_t)h * hd;
				float *kd = base + ((size_t)h * npos + p) * hd;
				float *vd = base + (size_t)nkv * npos * hd + (((size_t)h * 32 + (p & 31)) * nj + (p >> 5)) * hd;

				for (uint32_t e = 0; e < hd; e += 8) {
					_mm256_storeu_ps(kd + e, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(ks + e))));
					_mm256_storeu_ps(vd + e, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(vs + e))));
				}
			}
		}
	}
}

/* RoPE on q and k of tokens [t0, t1), K and V into the cache */
static void
rope_store(cpu *c, uint32_t layer, uint32_t t0, uint32_t t1)
{
	const model *m = c->m;
	const sched_batch *b = c->b;
	uint32_t t;

	for (t = t0; t < t1; t++) {
		const sched_part *pt = &b->parts[c->tpart[t]];
		const float *r = c->rope + (size_t)t * m->rope_dim;
		float *q = c->q + (size_t)t * c->qd, *k = c->k + (size_t)t * c->kvd;
		size_t row = cache_row(c, layer, pt, pt->pos + (t - pt->first));

		rope_apply(c, q, r, m->n_heads);
		rope_apply(c, k, r, m->n_kv_heads);
		quant_f32_to_f16_row(k, c->kc + row, c->kvd);
		quant_f32_to_f16_row(c->v + (size_t)t * c->kvd, c->vc + row, c->kvd);
	}
}

static void
rope_task(void *arg, int ith, int nth)
{
	at_job *j = arg;
	long lo, hi;

	pool_split(ith, nth, j->c->b->n_tokens, 1, &lo, &hi);
	rope_store(j->c, j->layer, (uint32_t)lo, (uint32_t)hi);
}

static void
kv32_task(void *arg, int ith, int nth)
{
	at_job *j = arg;
	long lo, hi;

	pool_split(ith, nth, (long)j->c->n32, 1, &lo, &hi);
	kv32_copy(j->c, j->layer, (size_t)lo, (size_t)hi);
}

/* ------------------------------------------------------------- attention */

/* ggml's F16 dot product (ggml_vec_dot_f16 on AVX2), as its reduction
 * orders it: four 8-lane FMA sums over blocks of 32, folded (0+2)+(1+3),
 * the halves added, two horizontal adds; the rest of n in double. */
__attribute__((target("avx2,fma,f16c")))
static float
fold4(__m256 s0, __m256 s1, __m256 s2, __m256 s3)
{
	__m256 x = _mm256_add_ps(_mm256_add_ps(s0, s2), _mm256_add_ps(s1, s3));
	__m128 t0 = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
	__m128 t1 = _mm_hadd_ps(t0, t0);

	return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
}

/* Where attention reads a sequence's K and V, for one KV head: the paged
 * F16 cache, or (f32) this step's F32 copy of that sequence in kv32 (see
 * kv32_task), which holds the same values: K by position (k32 + p * hd),
 * V by lane (position mod 32), then position (v32 + ((p % 32) * nj + p / 32)
 * * hd), the order the weighted sum of V walks it. */
typedef struct kvsrc {
	const cpu *c;
	uint32_t layer, hd, nj;
	const sched_part *pt;
	size_t off;             /* kvh * hd: the head's place in a cache row */
	const float *k32, *v32;
} kvsrc;

#define KV_INL static inline __attribute__((always_inline))

KV_INL const void *
krow(const kvsrc *s, uint32_t p, int f32)
{
	if (f32)
		return s->k32 + (size_t)p * s->hd;
	return s->c->kc + cache_row(s->c, s->layer, s->pt, p) + s->off;
}

/* V of position p, the next of lane p % 32 after *vp (f32: a walk through
 * v32 from vlane's start, one row a step; F16: the cache row) */
KV_INL const float *
vlane(const kvsrc *s, uint32_t ln)
{
	return s->v32 ? s->v32 + (size_t)ln * s->nj * s->hd : 0;
}

KV_INL const void *
vrow(const kvsrc *s, uint32_t p, const float **vp, int f32)
{
	const float *v = *vp;

	if (f32) {
		*vp = v + s->hd;
		return v;
	}
	return s->c->vc + cache_row(s->c, s->layer, s->pt, p) + s->off;
}

/* 8 values from element i of a row, as f32 */
KV_INL __attribute__((target("avx2,fma,f16c"))) __m256
ld8(const void *row, uint32_t i, int f32)
{
	if (f32)
		return _mm256_loadu_ps((const float *)row + i);
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + i)));
}

KV_INL __attribute__((target("f16c"))) float
ld1(const void *row, uint32_t i, int f32)
{
	return f32 ? ((const float *)row)[i] : _cvtsh_ss(((const uint16_t *)row)[i]);
}

/* the scores of 8 positions before scaling: for each, fold4's first step,
 * (s0 + s2) + (s1 + s3), in x[l] */
KV_INL __attribute__((target("avx2,fma,f16c"))) void
qk8_avx2(const void *const k[8], const __m256 *q, uint32_t hd, __m256 x[8], int f32)
{
#pragma GCC unroll 8
	for (uint32_t l = 0; l < 8; l++) {
		__m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
		const __m256 *qq = q;

		for (uint32_t i = 0; i < hd; i += 32, qq += 4) {
			s0 = _mm256_fmadd_ps(ld8(k[l], i, f32), qq[0], s0);
			s1 = _mm256_fmadd_ps(ld8(k[l], i + 8, f32), qq[1], s1);
			s2 = _mm256_fmadd_ps(ld8(k[l], i + 16, f32), qq[2], s2);
			s3 = _mm256_fmadd_ps(ld8(k[l], i + 24, f32), qq[3], s3);
		}
		x[l] = _mm256_add_ps(_mm256_add_ps(s0, s2), _mm256_add_ps(s1, s3));
	}
}

/* the scores of 8 positions from qk8's x[l]: an 8x8 transpose, then
 * fold4's tail lane-wise (the same additions in the same order), times
 * scale */
static inline __attribute__((always_inline, target("avx2,fma,f16c"))) __m256
fold8(__m256 x[8], float scale)
{
	__m256 u[8], w[8], t0, t1, t2, t3;
	int l;

	/* transpose: w[e] lane l = x[l] lane e */
#pragma GCC unroll 4
	for (l = 0; l < 8; l += 2) {
		u[l] = _mm256_unpacklo_ps(x[l], x[l + 1]);
		u[l + 1] = _mm256_unpackhi_ps(x[l], x[l + 1]);
	}
	w[0] = _mm256_shuffle_ps(u[0], u[2], 0x44);
	w[1] = _mm256_shuffle_ps(u[0], u[2], 0xee);
	w[2] = _mm256_shuffle_ps(u[1], u[3], 0x44);
	w[3] = _mm256_shuffle_ps(u[1], u[3], 0xee);
	w[4] = _mm256_shuffle_ps(u[4], u[6], 0x44);
	w[5] = _mm256_shuffle_ps(u[4], u[6], 0xee);
	w[6] = _mm256_shuffle_ps(u[5], u[7], 0x44);
	w[7] = _mm256_shuffle_ps(u[5], u[7], 0xee);
	x[0] = _mm256_permute2f128_ps(w[0], w[4], 0x20);
	x[1] = _mm256_permute2f128_ps(w[1], w[5], 0x20);
	x[2] = _mm256_permute2f128_ps(w[2], w[6], 0x20);
	x[3] = _mm256_permute2f128_ps(w[3], w[7], 0x20);
	x[4] = _mm256_permute2f128_ps(w[0], w[4], 0x31);
	x[5] = _mm256_permute2f128_ps(w[1], w[5], 0x31);
	x[6] = _mm256_permute2f128_ps(w[2], w[6], 0x31);
	x[7] = _mm256_permute2f128_ps(w[3], w[7], 0x31);
	/* x[e] now holds element e of the 8 positions */
	t0 = _mm256_add_ps(x[0], x[4]), t1 = _mm256_add_ps(x[1], x[5]);
	t2 = _mm256_add_ps(x[2], x[6]), t3 = _mm256_add_ps(x[3], x[7]);
	return _mm256_mul_ps(_mm256_add_ps(_mm256_add_ps(t0, t1), _mm256_add_ps(t2, t3)), _mm256_set1_ps(scale));
}

/* The two hot loops of attend_avx2 with AVX-512 (F; F16C's conversion
 * of 16 values at once): two of its 8-lane sums in the halves of one
 * register, fed the same values by the same FMAs, added the same way, so
 * the results are its bits with half the instructions. */
#define AVX512 __attribute__((target("avx512f,avx2,fma,f16c")))

KV_INL AVX512 __m512
ld16(const void *row, uint32_t i, int f32)
{
	if (f32)
		return _mm512_loadu_ps((const float *)row + i);
	return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)row + i)));
}

/* qk8_avx2 and fold8 in 512-bit registers: the 8 scores into out */
KV_INL AVX512 void
qk8_512(const void *const k[8], const float *q16, uint32_t hd, float scale, float *out, int f32)
{
	__m256 x[8];

	for (uint32_t l = 0; l < 8; l++) {
		__m512 s01 = _mm512_setzero_ps(), s23 = s01, t;

		for (uint32_t i = 0; i < hd; i += 32) {
			s01 = _mm512_fmadd_ps(ld16(k[l], i, f32), _mm512_loadu_ps(q16 + i), s01);
			s23 = _mm512_fmadd_ps(ld16(k[l], i + 16, f32), _mm512_loadu_ps(q16 + i + 16), s23);
		}
		t = _mm512_add_ps(s01, s23);    /* s0 + s2, s1 + s3 */
		x[l] = _mm256_add_ps(_mm512_castps512_ps256(t),
				     _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(t), 1)));
	}
	_mm256_storeu_ps(out, fold8(x, scale));
}

/* lane ln of the weighted sum of V: for every 8 dimensions i, the sum over
 * positions p = ln, ln + 32, ... <= pos of sc[p] * V[p], into lane[i] */
KV_INL AVX512 void
pv_lane_512(const kvsrc *s, const float *sc, uint32_t ln, uint32_t pos, uint32_t nv, float *lane, int f32)
{
	uint32_t i0 = 0, p;

	for (; i0 + 8 <= nv; i0 += 8) {
		__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
		const float *vp = vlane(s, ln);

		for (p = ln; p <= pos; p += 32) {
			const void *v = vrow(s, p, &vp, f32);
			__m512 a = _mm512_set1_ps(sc[p]);

			a0 = _mm512_fmadd_ps(ld16(v, 8 * i0, f32), a, a0);
			a1 = _mm512_fmadd_ps(ld16(v, 8 * i0 + 16, f32), a, a1);
			a2 = _mm512_fmadd_ps(ld16(v, 8 * i0 + 32, f32), a, a2);
			a3 = _mm512_fmadd_ps(ld16(v, 8 * i0 + 48, f32), a, a3);
		}
		_mm512_storeu_ps(lane + 8 * i0, a0);
		_mm512_storeu_ps(lane + 8 * i0 + 16, a1);
		_mm512_storeu_ps(lane + 8 * i0 + 32, a2);
		_mm512_storeu_ps(lane + 8 * i0 + 48, a3);
	}
	for (; i0 < nv; i0++) {
		__m256 a0 = _mm256_setzero_ps();
		const float *vp = vlane(s, ln);

		for (p = ln; p <= pos; p += 32)
			a0 = _mm256_fmadd_ps(ld8(vrow(s, p, &vp, f32), 8 * i0, f32), _mm256_set1_ps(sc[p]), a0);
		_mm256_storeu_ps(lane + 8 * i0, a0);
	}
}

AVX512 static void
qk8_avx512(const void *const k[8], const float *q16, uint32_t hd, float scale, float *out, int f32)
{
	if (f32 && hd == 64)
		qk8_512(k, q16, 64, scale, out, 1);
	else if (f32)
		qk8_512(k, q16, hd, scale, out, 1);
	else if (hd == 64)
		qk8_512(k, q16, 64, scale, out, 0);
	else
		qk8_512(k, q16, hd, scale, out, 0);
}

AVX512 static void
pv_lane_avx512(const kvsrc *s, const float *sc, uint32_t ln, uint32_t pos, uint32_t nv, float *lane, int f32)
{
	if (f32)
		pv_lane_512(s, sc, ln, pos, nv, lane, 1);
	else
		pv_lane_512(s, sc, ln, pos, nv, lane, 0);
}

/* The attention of query heads over their sequence's cache, in the
 * arithmetic llama.cpp uses when it decodes (the two F16 products by
 * ggml_vec_dot_f16, ggml's softmax): q rounded to F16; the scores; softmax
 * with exp8 in chunks of 8, the chunk sums added in double, probabilities
 * scaled by the float of 1/sum and rounded to F16; each output value the
 * F16 dot product of the probabilities with that dimension of V over the
 * positions (lane = position mod 32). One order for every batch shape, so
 * a prompt, a decode step, alone or batched, give the same numbers, and
 * they are those of llama.cpp fed one token at a time. (llama.cpp itself
 * switches to tinyBLAS, another summation order, for steps of 2 or more
 * tokens, so its own answers depend on the batch.)
 *
 * One call does ng (<= GMAX) heads of one token that share a KV head,
 * each with its own sums exactly as it would alone; they go over K and V
 * together (8 positions of K, a lane of V, for every head in turn), so
 * each row comes from L2 once and from L1 for the other heads: alone,
 * a head per call read the whole of its KV head from L2 and waited on it. */
KV_INL __attribute__((target("avx2,fma,f16c"))) void
attend_body(cpu *c, uint32_t layer, uint32_t t, uint32_t h0, uint32_t ng, float *scr, float *lanes,
	    int f32)
{
	const model *m = c->m;
	const sched_part *pt = &c->b->parts[c->tpart[t]];
	uint32_t hd = m->head_dim, kvh = h0 / (m->n_heads / m->n_kv_heads), i, p, l, g, nv = hd / 8;
	uint32_t pos = pt->pos + (t - pt->first), np = (pos + 8) & ~7u, hd32 = hd & ~31u;
	size_t ld = (size_t)c->max_ctx + 8;      /* a head's scores in scr */
	float scale = 1.0f / sqrtf((float)hd), mx[GMAX];
	float q16[GMAX][512] __attribute__((aligned(32)));
	kvsrc s = {c, layer, hd, 0, pt, (size_t)kvh * hd, 0, 0};

	if (f32) {
		const float *base = c->kv32 + c->p32[c->tpart[t]];
		uint32_t npos = pt->pos + pt->n;

		s.nj = (npos + 31) / 32;
		s.k32 = base + (size_t)kvh * npos * hd;
		s.v32 = base + (size_t)m->n_kv_heads * npos * hd + (size_t)kvh * 32 * s.nj * hd;
	}
	for (g = 0; g < ng; g++) {
		const float *qf = c->q + (size_t)t * c->qd + (size_t)(h0 + g) * hd;

		for (i = 0; i < nv; i++)
			_mm256_store_ps(q16[g] + 8 * i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(qf + 8 * i),
										 _MM_FROUND_TO_NEAREST_INT)));
		mx[g] = -INFINITY;
	}
	p = 0;
	if (hd32 == hd) {
		/* 8 positions at a time: their fold4 done together, the same
		 * additions lane-wise after an 8x8 transpose */
		__m256 vmx[GMAX];

		for (g = 0; g < ng; g++)
			vmx[g] = _mm256_set1_ps(-INFINITY);
		for (; p + 8 <= pos + 1; p += 8) {
			const void *k[8];

			for (l = 0; l < 8; l++)
				k[l] = krow(&s, p + l, f32);
			for (g = 0; g < ng; g++) {
				float *sc = scr + g * ld;
				__m256 x[8], r;

				if (c->isa == DOT_AVX512) {
					qk8_avx512(k, q16[g], hd, scale, sc + p, f32);
					r = _mm256_loadu_ps(sc + p);
				} else {
					const __m256 *q = (const __m256 *)(const void *)q16[g];

					/* a constant size for the common heads: the
					 * loop unrolled */
					if (hd == 64)
						qk8_avx2(k, q, 64, x, f32);
					else if (hd == 128)
						qk8_avx2(k, q, 128, x, f32);
					else
						qk8_avx2(k, q, hd, x, f32);
					r = fold8(x, scale);
					_mm256_storeu_ps(sc + p, r);
				}
				vmx[g] = _mm256_max_ps(vmx[g], r);
			}
		}
		for (g = 0; g < ng; g++) {
			float m8[8];

			_mm256_storeu_ps(m8, vmx[g]);
			for (l = 0; l < 8; l++)
				if (m8[l] > mx[g])
					mx[g] = m8[l];
		}
	}
	for (; p <= pos; p++) {
		const void *k = krow(&s, p, f32);

		for (g = 0; g < ng; g++) {
			const __m256 *q = (const __m256 *)(const void *)q16[g];
			float *sc = scr + g * ld;
			__m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
			double d;

			for (i = 0; i < hd32; i += 32) {
				s0 = _mm256_fmadd_ps(ld8(k, i, f32), q[i / 8], s0);
				s1 = _mm256_fmadd_ps(ld8(k, i + 8, f32), q[i / 8 + 1], s1);
				s2 = _mm256_fmadd_ps(ld8(k, i + 16, f32), q[i / 8 + 2], s2);
				s3 = _mm256_fmadd_ps(ld8(k, i + 24, f32), q[i / 8 + 3], s3);
			}
			if (hd32 == hd) {
				sc[p] = fold4(s0, s1, s2, s3) * scale;
			} else {
				d = fold4(s0, s1, s2, s3);
				for (i = hd32; i < hd; i++)
					d += (double)(ld1(k, i, f32) * q16[g][i]);
				sc[p] = (float)d * scale;
			}
			if (sc[p] > mx[g])
				mx[g] = sc[p];
		}
	}
	for (g = 0; g < ng; g++) {
		float *sc = scr + g * ld, inv;
		double sum = 0;

		for (p = pos + 1; p < np; p++)
			sc[p] = -INFINITY;
		for (p = 0; p < np; p += 8) {
			__m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(sc + p), _mm256_set1_ps(mx[g])));
			_mm256_storeu_ps(sc + p, e);
			sum += (double)hsum8(e);
		}
		inv = (float)(1.0 / sum);
		for (p = 0; p < np; p += 8)
			_mm256_storeu_ps(sc + p, _mm256_cvtph_ps(_mm256_cvtps_ph(
				_mm256_mul_ps(_mm256_loadu_ps(sc + p), _mm256_set1_ps(inv)), _MM_FROUND_TO_NEAREST_INT)));
	}
	/* lane l of the sums holds the positions p with p mod 32 == l, added
	 * in increasing p; a lane at a time, so its sums stay in registers;
	 * lanes[(g * 32 + l) * hd ...] */
	l = pos + 1 < 32 ? pos + 1 : 32;
	for (uint32_t ln = 0; ln < l; ln++)
		for (g = 0; g < ng; g++) {
			const float *sc = scr + g * ld;
			float *lane = lanes + ((size_t)g * 32 + ln) * hd;
			uint32_t i0 = 0;

			if (c->isa == DOT_AVX512) {
				pv_lane_avx512(&s, sc, ln, pos, nv, lane, f32);
				continue;
			}
			/* 8 vectors (64 dimensions) at a time, their sums in registers */
			for (; i0 + 8 <= nv; i0 += 8) {
				__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
				const float *vp = vlane(&s, ln);

				for (p = ln; p <= pos; p += 32) {
					const void *v = vrow(&s, p, &vp, f32);
					__m256 a = _mm256_set1_ps(sc[p]);
#define PV(k, acc) acc = _mm256_fmadd_ps(ld8(v, 8 * (i0 + k), f32), a, acc)
					PV(0, a0); PV(1, a1); PV(2, a2); PV(3, a3); PV(4, a4); PV(5, a5); PV(6, a6); PV(7, a7);
				}
				_mm256_storeu_ps(lane + 8 * i0, a0);
				_mm256_storeu_ps(lane + 8 * i0 + 8, a1);
				_mm256_storeu_ps(lane + 8 * i0 + 16, a2);
				_mm256_storeu_ps(lane + 8 * i0 + 24, a3);
				_mm256_storeu_ps(lane + 8 * i0 + 32, a4);
				_mm256_storeu_ps(lane + 8 * i0 + 40, a5);
				_mm256_storeu_ps(lane + 8 * i0 + 48, a6);
				_mm256_storeu_ps(lane + 8 * i0 + 56, a7);
			}
			/* what is left (head sizes not a multiple of 64) */
			for (; i0 < nv; i0++) {
				__m256 a0 = _mm256_setzero_ps();
				const float *vp = vlane(&s, ln);

				for (p = ln; p <= pos; p += 32) {
					const void *v = vrow(&s, p, &vp, f32);
					__m256 a = _mm256_set1_ps(sc[p]);
					PV(0, a0);
#undef PV
				}
				_mm256_storeu_ps(lane + 8 * i0, a0);
			}
		}
	for (g = 0; g < ng; g++) {
		const float *lane = lanes + (size_t)g * 32 * hd;
		float *out = c->att + (size_t)t * c->qd + (size_t)(h0 + g) * hd;

		/* lanes no position reached count as zeros: fold only those
		 * reached, adding a zero where fold4 would */
		/* out[8i + e] folds lanes 0..31 of element e of vector i as
		 * fold4 does, for the 8 elements of a vector at once: the same
		 * additions in the same order, lane-wise */
		for (i = 0; i < nv; i++) {
			__m256 x[8], u[4], z = _mm256_setzero_ps();
#define LN(q) ((q) < l ? _mm256_loadu_ps(lane + (size_t)(q) * hd + 8 * i) : z)

			for (uint32_t e = 0; e < 8; e++)
				x[e] = _mm256_add_ps(_mm256_add_ps(LN(e), LN(16 + e)), _mm256_add_ps(LN(8 + e), LN(24 + e)));
#undef LN
			for (uint32_t e = 0; e < 4; e++)
				u[e] = _mm256_add_ps(x[e], x[e + 4]);
			_mm256_storeu_ps(out + 8 * i, _mm256_add_ps(_mm256_add_ps(u[0], u[1]), _mm256_add_ps(u[2], u[3])));
		}
	}
}

__attribute__((target("avx2,fma,f16c"))) static void
attend_avx2(cpu *c, uint32_t layer, uint32_t t, uint32_t h0, uint32_t ng, float *scr, float *lanes)
{
	if (c->p32[c->tpart[t]] != KV32_NONE)
		attend_body(c, layer, t, h0, ng, scr, lanes, 1);
	else
		attend_body(c, layer, t, h0, ng, scr, lanes, 0);
}

/* the same in plain C (no AVX2): the same steps, libm's expf; results
 * agree with the vector path to rounding */
static void
attend_scalar(cpu *c, uint32_t layer, uint32_t t, uint32_t h, float *sc)
{
	const model *m = c->m;
	const sched_part *pt = &c->b->parts[c->tpart[t]];
	uint32_t hd = m->head_dim, kvh = h / (m->n_heads / m->n_kv_heads), i, p;
	uint32_t pos = pt->pos + (t - pt->first);
	const float *qf = c->q + (size_t)t * c->qd + (size_t)h * hd;
	float *out = c->att + (size_t)t * c->qd + (size_t)h * hd;
	float scale = 1.0f / sqrtf((float)hd), mx = -INFINITY, inv, q[512];
	double sum = 0;

	for (i = 0; i < hd; i++)
		q[i] = quant_f16_to_f32(quant_f32_to_f16(qf[i]));
	for (p = 0; p <= pos; p++) {
		const uint16_t *k = c->kc + cache_row(c, layer, pt, p) + (size_t)kvh * hd;
		float s = 0;
		for (i = 0; i < hd; i++)
			s += q[i] * quant_f16_to_f32(k[i]);
		sc[p] = s * scale;
		if (sc[p] > mx)
			mx = sc[p];
	}
	for (p = 0; p <= pos; p++) {
		sc[p] = expf(sc[p] - mx);
		sum += sc[p];
	}
	inv = (float)(1.0 / sum);
	memset(out, 0, hd * sizeof *out);
	for (p = 0; p <= pos; p++) {
		const uint16_t *v = c->vc + cache_row(c, layer, pt, p) + (size_t)kvh * hd;
		float a = quant_f16_to_f32(quant_f32_to_f16(sc[p] * inv));
		for (i = 0; i < hd; i++)
			out[i] += a * quant_f16_to_f32(v[i]);
	}
}

/* heads h0 .. h0 + ng - 1 of token t (sharing a KV head) */
static void
attend(cpu *c, uint32_t layer, uint32_t t, uint32_t h0, uint32_t ng, float *scr, float *lanes)
{
	if (c->isa >= DOT_AVX2 && c->m->head_dim % 8 == 0)
		attend_avx2(c, layer, t, h0, ng, scr, lanes);
	else
		for (uint32_t g = 0; g < ng; g++)
			attend_scalar(c, layer, t, h0 + g, scr);
}

static void
attn_task(void *arg, int ith, int nth)
{
	at_job *j = arg;
	cpu *c = j->c;
	uint32_t grp = c->m->n_heads / c->m->n_kv_heads, per = (grp + GMAX - 1) / GMAX;
	uint32_t items = c->m->n_kv_heads * per, n = c->b->n_tokens * items, i;
	float *scr = c->scores + (size_t)ith * GMAX * (c->max_ctx + 8);
	float *lanes = c->lanes + (size_t)ith * GMAX * 32 * c->m->head_dim;

	/* interleaved: causal rows grow in cost, so contiguous runs would
	 * not balance. An item: up to GMAX heads of a token that share a KV
	 * head (all of them unless the group is larger). */
	for (i = (uint32_t)ith; i < n; i += (uint32_t)nth) {
		uint32_t t = i / items, it = i % items, kvh = it / per, part = it % per;
		uint32_t g0 = part * GMAX, ng = grp - g0 < GMAX ? grp - g0 : GMAX;

		attend(c, j->layer, t, kvh * grp + g0, ng, scr, lanes);
	}
}

/* ------------------------------------------------------------- the step */

/* A job on the step's rows: input in (ld apart, cols wide), prepared by prep. */
static mm_job
job(cpu *c, int prep, const float *in, size_t ld, uint32_t cols, const float *norm)
{
	mm_job j;

	memset(&j, 0, sizeof j);
	j.c = c;
	j.B = c->b->n_tokens;
	j.prep = prep;
	j.in = in;
	j.ld = ld;
	j.cols = cols;
	j.norm = norm;
	return j;
}

/* x += w * prepared(in) */
static void
mm_add(cpu *c, mm_job j, const model_mat *w)
{
	j.nmat = 1;
	j.w[0] = w;
	j.out[0] = c->tmp;
	j.add = 1;
	mm_run(c, &j);
}

/* up to three matrices on one prepared input: one job when their
 * activation formats agree, else one each */
static void
mm_multi(cpu *c, mm_job j, int n, const model_mat **w, float **out, const float **bias)
{
	int k, same = 1;

	for (k = 1; k < n; k++)
		same &= dot_act_type(w[k]->type) == dot_act_type(w[0]->type);
	j.nmat = same ? n : 1;
	for (k = 0; k < n; k++) {
		int at = same ? k : 0;
		j.w[at] = w[k];
		j.out[at] = out[k];
		j.bias[at] = bias ? bias[k] : 0;
		if (!same || k == n - 1)
			mm_run(c, &j);
	}
}

static void
layer(cpu *c, uint32_t L)
{
	const model *m = c->m;
	const model_layer *l = &m->layers[L];
	at_job aj = {c, L};
	const model_mat *qkv[3] = {&l->wq, &l->wk, &l->wv}, *gu[2] = {&l->gate, &l->up};
	float *qkv_out[3] = {c->q, c->k, c->v}, *gu_out[2] = {c->g, c->u};
	const float *qkv_bias[3] = {l->bq, l->bk, l->bv};

	/* attention block: x += wo * attn(rope(wq xn), rope(wk xn), wv xn) */
	mm_multi(c, job(c, PREP_NORM, c->x, m->dim, m->dim, l->attn_norm), 3, qkv, qkv_out, qkv_bias);
	if (c->b->n_tokens < 8)
		rope_store(c, L, 0, c->b->n_tokens);
	else
		pool_run(c->pool, rope_task, &aj);
	if (c->n32)
		pool_run(c->pool, kv32_task, &aj);
	pool_run(c->pool, attn_task, &aj);
	mm_add(c, job(c, PREP_PLAIN, c->att, c->qd, c->qd, 0), &l->wo);

	/* feed-forward block: x += down * (silu(gate xn) * up xn) */
	mm_multi(c, job(c, PREP_NORM, c->x, m->dim, m->dim, l->ffn_norm), 2, gu, gu_out, 0);
	mm_add(c, job(c, PREP_SWIGLU, c->g, m->ff, m->ff, 0), &l->down);
}

void
cpu_forward(cpu *c, sched_batch *b)
{
	const model *m = c->m;
	uint32_t t, p, i, n_out = 0;
	mm_job j;

	if (b->n_tokens == 0 || b->n_tokens > c->max_tokens || b->n_out > c->max_out)
		die_x(EXIT_SYS, "internal error: a step of %u tokens and %u logits rows (limits %u, %u)",
		      b->n_tokens, b->n_out, c->max_tokens, c->max_out);
	c->b = b;
	for (t = 0; t < b->n_tokens; t++)
		quant_dequantize_row(m->embd.type, (const char *)m->embd.data
				     + (size_t)b->tokens[t] * m->embd.row_bytes,
				     c->x + (size_t)t * m->dim, m->dim);
	rope_tables(c, b);
	kv32_plan(c);
	for (i = 0; i < m->n_layers; i++)
		layer(c, i);

	/* the rows that want logits, gathered in the order of their rows */
	for (p = 0; p < b->n_parts; p++) {
		const sched_part *pt = &b->parts[p];
		for (i = 0; i < pt->n_logits; i++) {
			uint32_t tt = pt->first + pt->n - pt->n_logits + i;
			memcpy(c->outx + (size_t)(pt->out + i) * m->dim, c->x + (size_t)tt * m->dim,
			       m->dim * sizeof(float));
			n_out++;
		}
	}
	if (!n_out)
		return;
	j = job(c, PREP_NORM, c->outx, m->dim, m->dim, m->out_norm);
	j.B = n_out;
	j.nmat = 1;
	j.w[0] = &m->output;
	j.out[0] = b->logits;
	mm_run(c, &j);
}

/* ------------------------------------------------------------- setup */

cpu *
cpu_new(const model *m, uint32_t n_blocks, uint32_t block_size, uint32_t max_tokens,
	uint32_t max_out, uint32_t max_ctx, int threads, char *err, size_t errlen)
{
	cpu *c = xcalloc(1, sizeof *c);
	size_t cache = (size_t)m->n_layers * n_blocks * block_size * m->n_kv_heads * m->head_dim;
	size_t act;
	uint32_t L;

	c->m = m;
	c->n_blocks = n_blocks;
	c->bs = block_size;
	c->bs_shift = -1;
	if (block_size && (block_size & (block_size - 1)) == 0)
		c->bs_shift = __builtin_ctz(block_size);
	c->max_tokens = max_tokens;
	c->max_out = max_out;
	c->max_ctx = max_ctx;
	c->qd = m->n_heads * m->head_dim;
	c->kvd = m->n_kv_heads * m->head_dim;
	c->wide = m->dim > m->ff ? m->dim : m->ff;
	if (c->qd > c->wide)
		c->wide = c->qd;
	c->isa = dot_isa();     /* AVX2 means FMA and F16C too (dot checks all three) */
	if (m->head_dim > 512) {
		seterr(err, errlen, "head size %u is larger than 512", m->head_dim);
		free(c);
		return 0;
	}
	/* the widest activation row any matrix wants */
	act = (size_t)c->wide * sizeof(float);
	for (L = 0; L < m->n_layers; L++) {
		const model_mat *w[] = {&m->layers[L].wq, &m->layers[L].wo, &m->layers[L].gate,
					&m->layers[L].down};
		size_t k, a;
		for (k = 0; k < 4; k++)
			if ((a = dot_act_bytes(w[k]->type, w[k]->cols)) > act)
				act = a;
	}
	act = (act + 63) & ~(size_t)63;    /* room for the widest row; act_stride packs each job's */
	if (!(c->kc = big(cache * 2, err, errlen, "the K cache"))
	    || !(c->vc = big(cache * 2, err, errlen, "the V cache"))
	    || !(c->x = big((size_t)max_tokens * m->dim * 4, err, errlen, "activations"))
	    || !(c->xn = big((size_t)max_tokens * c->wide * 4, err, errlen, "activations"))
	    || !(c->q = big((size_t)max_tokens * c->qd * 4, err, errlen, "activations"))
	    || !(c->k = big((size_t)max_tokens * c->kvd * 4, err, errlen, "activations"))
	    || !(c->v = big((size_t)max_tokens * c->kvd * 4, err, errlen, "activations"))
	    || !(c->att = big((size_t)max_tokens * c->qd * 4, err, errlen, "activations"))
	    || !(c->g = big((size_t)max_tokens * m->ff * 4, err, errlen, "activations"))
	    || !(c->u = big((size_t)max_tokens * m->ff * 4, err, errlen, "activations"))
	    || !(c->tmp = big((size_t)max_tokens * m->dim * 4, err, errlen, "activations"))
	    || !(c->rope = big((size_t)max_tokens * m->rope_dim * 4, err, errlen, "activations"))
	    || !(c->xq = big((size_t)max_tokens * act, err, errlen, "activations"))
	    || !(c->tpart = big((size_t)max_tokens * 4, err, errlen, "activations"))
	    || !(c->p32 = big((size_t)max_tokens * sizeof *c->p32, err, errlen, "activations"))
	    || !(c->outx = big((size_t)max_out * m->dim * 4, err, errlen, "activations"))) {
		cpu_free(c);
		return 0;
	}
	c->pool = pool_new(threads);
	c->nth = pool_size(c->pool);
	/* one sequence at its longest context (K, and V's lanes rounded up to
	 * 32 positions), or several shorter ones; only the pages a step
	 * writes become resident */
	c->kv32_cap = (size_t)2 * c->kvd * ((size_t)max_ctx + 32);
	if (!(c->scores = big((size_t)c->nth * GMAX * (max_ctx + 8) * 4, err, errlen, "attention scores"))
	    || !(c->lanes = big((size_t)c->nth * GMAX * 32 * m->head_dim * 4, err, errlen, "attention sums"))
	    || !(c->kv32 = big(c->kv32_cap * sizeof(float), err, errlen, "attention's F32 K and V"))) {
		cpu_free(c);
		return 0;
	}
	return c;
}

const char *
cpu_describe(cpu *c)
{
	snprintf(c->desc, sizeof c->desc, "%d thread%s, %s", c->nth, c->nth == 1 ? "" : "s",
		 dot_isa_name(dot_isa()));
	return c->desc;
}

void
cpu_free(cpu *c)
{
	if (!c)
		return;
	pool_free(c->pool);
	free(c->scores);
	free(c->lanes);
	free(c->kv32);
	free(c->p32);
	free(c->outx);
	free(c->tpart);
	free(c->xq);
	free(c->rope);
	free(c->tmp);
	free(c->u);
	free(c->g);
	free(c->att);
	free(c->v);
	free(c->k);
	free(c->q);
	free(c->xn);
	free(c->x);
	free(c->vc);
	free(c->kc);
	free(c);
}

/* ------------------------------------------------------------- as a backend */

/* the weight types lib/dot multiplies */
static int
be_supports(uint32_t type)
{
	return dot_act_type(type) != (uint32_t)-1;
}

static void *
be_open(const model *m, uint32_t n_blocks, uint32_t bs, uint32_t max_tokens, uint32_t max_out,
	uint32_t max_ctx, int threads, char *err, size_t errlen)
{
	const char *e = getenv("SLUICE_ISA");

	/* SLUICE_ISA names a kernel path; one this CPU lacks is an error,
	 * not a quiet fallback, so a benchmark measures what it says */
	if (e && dot_isa_parse(e) < 0) {
		seterr(err, errlen, "SLUICE_ISA=%s: not scalar, avx2 or avx512", e);
		return 0;
	}
	/* a valid one is dot's default already (it reads the same variable) */
	if (e && dot_isa_parse(e) > dot_isa_max()) {
		seterr(err, errlen, "SLUICE_ISA=%s: this CPU lacks %s (it runs %s at best)", e,
		       dot_isa_name(dot_isa_parse(e)), dot_isa_name(dot_isa_max()));
		return 0;
	}
	/* any SLUICE_SCALAR in the environment, even "0": the scalar kernels */
	if (getenv("SLUICE_SCALAR"))
		dot_force_scalar(1);
	return cpu_new(m, n_blocks, bs, max_tokens, max_out, max_ctx, threads, err, errlen);
}

static void
be_forward(void *c, sched_batch *b)
{
	cpu_forward(c, b);
}

static void
be_close(void *c)
{
	cpu_free(c);
}

static const char *
be_describe(void *c)
{
	return cpu_describe(c);
}

const backend cpu_backend = {
	"cpu", be_supports, cpu_block_bytes, be_open, be_forward, be_close, be_describe,
};
