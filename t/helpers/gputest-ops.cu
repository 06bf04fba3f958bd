/* gputest-ops: the launchers of kernels/ops.cu and kernels/attention.cu
 * against CPU references written here as plain loops (the formulas of
 * lib/cpu.c), TAP on stdout. Each case compares by NMSE = sum (gpu - ref)^2
 * / sum ref^2, ggml's test-backend-ops measure, with a tolerance per
 * operation; add, bias and the K/V store must match bit for bit. Without a
 * CUDA device it prints a skip plan and exits 0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <vector>

#include "attention.cuh"
#define GPUTEST_SEED 0x5eed5eed12345678ull
#include "gputest.cuh"
#include "ops.cuh"

#include "../unit/tap.h"

#define TOL_NORM 1e-10
#define TOL_ROPE 1e-10
#define TOL_SWIGLU 1e-10
/* the kernel sums in float what the reference sums in double, and merges
 * softmax partials in another order: rounding, far below what one wrong
 * row among 2048 (about 1/2048) or one wrong head would give */
#define TOL_ATT 1e-6

/* ------------------------------------------------------------- helpers */

static void
fill(vector<float> &v, float a)
{
	for (float &x : v)
		x = urand(a);
}

static float
f16_round(float x)
{
	return quant_f16_to_f32(quant_f32_to_f16(x));
}

/* ------------------------------------------------------------- rmsnorm */

/* rmsnorm() of lib/cpu.c */
static void
ref_norm(const float *x, const float *w, uint32_t n, float eps, float *y)
{
	double ss = 0;
	float scale;

	for (uint32_t i = 0; i < n; i++)
		ss += (double)(x[i] * x[i]);
	scale = 1.0f / sqrtf((float)(ss / n) + eps);
	for (uint32_t i = 0; i < n; i++)
		y[i] = x[i] * scale * w[i];
}

/* rows of n, x ldx apart, y ldy apart (in place when inplace: y is x);
 * the columns of y past n must keep their values. x within [-amp, amp):
 * small enough, eps weighs as much as the squares. */
static void
test_norm(uint32_t n, uint32_t rows, size_t ldx, size_t ldy, float eps, int inplace, float amp)
{
	float *dx, *dw, *dy;
	int kept = 1;
	nmse_acc e;

	if (inplace)
		ldy = ldx;

	vector<float> x(rows * ldx), w(n), y(rows * ldy, 777.0f), ref(rows * ldy, 777.0f);

	fill(x, amp);
	fill(w, 2.0f);
	if (inplace)
		ref = x;
	for (uint32_t r = 0; r < rows; r++)
		ref_norm(&x[r * ldx], w.data(), n, eps, &ref[r * ldy]);
	dx = dev_put(x);
	dw = dev_put(w);
	dy = inplace ? dx : dev_put(y);
	knorm_launch(dx, ldx, dw, n, rows, eps, dy, ldy, st);
	sync("run rmsnorm");
	dev_get(y, dy);
	for (uint32_t r = 0; r < rows; r++)
		for (size_t i = 0; i < ldy; i++) {
			if (i < n)
				e.add(y[r * ldy + i], ref[r * ldy + i]);
			else if (memcmp(&y[r * ldy + i], &ref[r * ldy + i], sizeof(float)))
				kept = 0;
		}
	ok(e.nmse() <= TOL_NORM && kept, "rmsnorm n=%u rows=%u ldx=%zu ldy=%zu eps=%g |x|<%g%s: nmse %.3g (tol %g)%s",
	   n, rows, ldx, ldy, eps, amp, inplace ? " in place" : "", e.nmse(), TOL_NORM,
	   kept ? "" : ", padding changed");
	dev_free(dx);
	dev_free(dw);
	if (!inplace)
		dev_free(dy);
}

/* ------------------------------------------------------------- rope */

/* rope_tables() then ROPE_BODY of lib/cpu.c on one token's row */
static void
ref_rope(float *x, uint32_t nheads, uint32_t hd, uint32_t rope_dim, int neox, float base, float scale,
	 const float *freqs, int32_t pos)
{
	uint32_t half = rope_dim / 2;
	float theta_scale = powf(base, -2.0f / (float)rope_dim);
	float theta = (float)pos / scale;
	vector<float> r(rope_dim);

	for (uint32_t i = 0; i < half; i++) {
		float th = freqs ? theta / freqs[i] : theta;
		r[2 * i] = cosf(th);
		r[2 * i + 1] = sinf(th);
		theta *= theta_scale;
	}
	for (uint32_t h = 0; h < nheads; h++) {
		float *v = x + (size_t)h * hd;
		for (uint32_t i = 0; i < half; i++) {
			uint32_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
			float x0 = v[a], x1 = v[b], cs = r[2 * i], sn = r[2 * i + 1];
			v[a] = fmaf(x0, cs, -(x1 * sn));
			v[b] = fmaf(x0, sn, x1 * cs);
		}
	}
}

/* positions with block and power-of-two edges, a long one and a very long
 * one (large angles), with rows ld apart past the heads */
static void
test_rope(uint32_t hd, uint32_t nheads, uint32_t rope_dim, int neox, int with_freqs)
{
	static const int32_t P[] = {0, 1, 31, 32, 33, 500, 2047, 7, 65535};
	const uint32_t ntok = sizeof P / sizeof *P;
	size_t ld = (size_t)nheads * hd + 8;
	float base = with_freqs ? 500000.0f : 10000.0f, scale = with_freqs ? 1.0f : 4.0f;
	vector<float> x(ntok * ld), y(ntok * ld), ref, freqs(rope_dim / 2);
	vector<int32_t> pos(P, P + ntok);
	float *dx, *df = 0;
	int32_t *dp;
	int kept = 1;
	nmse_acc e;

	fill(x, 2.0f);
	ref = x;
	/* llama 3's factors lie between 1 and 8 */
	for (float &f : freqs)
		f = 4.5f + urand(3.5f);
	for (uint32_t t = 0; t < ntok; t++)
		ref_rope(&ref[t * ld], nheads, hd, rope_dim, neox, base, scale, with_freqs ? freqs.data() : 0, pos[t]);
	dx = dev_put(x);
	dp = dev_put(pos);
	if (with_freqs)
		df = dev_put(freqs);
	krope_launch(dx, ld, dp, ntok, nheads, hd, rope_dim, neox, base, scale, df, st);
	sync("run rope");
	dev_get(y, dx);
	/* NMSE over what rotates; everything else (the dimensions past
	 * rope_dim, the padding) bit for bit as it was */
	for (uint32_t t = 0; t < ntok; t++)
		for (size_t i = 0; i < ld; i++) {
			size_t k = t * ld + i;
			if (i < (size_t)nheads * hd && i % hd < rope_dim)
				e.add(y[k], ref[k]);
			else if (memcmp(&y[k], &x[k], sizeof(float)))
				kept = 0;
		}
	ok(e.nmse() <= TOL_ROPE && kept, "rope hd=%u heads=%u rope_dim=%u neox=%d freqs=%s: nmse %.3g (tol %g)%s", hd,
	   nheads, rope_dim, neox, with_freqs ? "yes" : "null", e.nmse(), TOL_ROPE,
	   kept ? "" : ", unrotated values changed");
	dev_free(dx);
	dev_free(dp);
	if (df)
		dev_free(df);
}

/* ------------------------------------------------------------- swiglu */

static void
test_swiglu(size_t n, int inplace)
{
	vector<float> g(n), u(n), y(n), ref(n);
	float *dg, *du, *dy;
	nmse_acc e;

	fill(g, 12.0f);
	fill(u, 2.0f);
	for (size_t i = 0; i < n; i++)
		ref[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
	dg = dev_put(g);
	du = dev_put(u);
	dy = inplace ? dg : dev_put(y);
	kswiglu_launch(dg, du, dy, n, st);
	sync("run swiglu");
	dev_get(y, dy);
	for (size_t i = 0; i < n; i++)
		e.add(y[i], ref[i]);
	ok(e.nmse() <= TOL_SWIGLU, "swiglu n=%zu%s: nmse %.3g (tol %g)", n, inplace ? " in place" : "", e.nmse(),
	   TOL_SWIGLU);
	dev_free(dg);
	dev_free(du);
	if (!inplace)
		dev_free(dy);
}

/* ------------------------------------------------------------- add, bias */

static void
test_add(size_t n)
{
	vector<float> x(n), y(n), got(n), ref(n);
	float *dx, *dy;
	nmse_acc e;

	fill(x, 5.0f);
	fill(y, 5.0f);
	for (size_t i = 0; i < n; i++)
		ref[i] = x[i] + y[i];
	dx = dev_put(x);
	dy = dev_put(y);
	kadd_launch(dx, dy, n, st);
	sync("run add");
	dev_get(got, dx);
	for (size_t i = 0; i < n; i++)
		e.add(got[i], ref[i]);
	ok(!memcmp(got.data(), ref.data(), n * sizeof(float)), "add n=%zu: exact (nmse %.3g)", n, e.nmse());
	dev_free(dx);
	dev_free(dy);
}

static void
test_bias(uint32_t n, uint32_t nb, size_t ldy)
{
	vector<float> y(nb * ldy), bias(n), got(nb * ldy), ref;
	float *dy, *db;
	nmse_acc e;

	fill(y, 5.0f);
	fill(bias, 1.0f);
	ref = y;
	for (uint32_t b = 0; b < nb; b++)
		for (uint32_t i = 0; i < n; i++)
			ref[b * ldy + i] += bias[i];
	dy = dev_put(y);
	db = dev_put(bias);
	kbias_launch(dy, ldy, db, n, nb, st);
	sync("run bias add");
	dev_get(got, dy);
	for (size_t i = 0; i < got.size(); i++)
		e.add(got[i], ref[i]);
	ok(!memcmp(got.data(), ref.data(), got.size() * sizeof(float)),
	   "bias n=%u rows=%u ldy=%zu: exact, padding kept (nmse %.3g)", n, nb, ldy, e.nmse());
	dev_free(dy);
	dev_free(db);
}

/* ------------------------------------------------------------- k/v store */

/* values that round in every way F16 can: ties both ways, the subnormals,
 * the edge of the range and past it, signed zeros, infinities (NaN left
 * out: its payload is CUDA's own) */
static float
kv_value(size_t i)
{
	static const float S[] = {0.0f, -0.0f, 1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, -(1.0f + 0x1p-11f), 65504.0f,
				  65519.0f, 65520.0f, -65520.0f, 1e10f, 0x1p-24f, 3 * 0x1p-25f, 0x1p-25f, 0x1p-26f,
				  0x1.8p-15f, 0x1p-14f, -0x1.ffcp-15f, 1e-10f, INFINITY, -INFINITY};
	const size_t ns = sizeof S / sizeof *S;

	if (i % 7 == 3)
		return S[(i / 7) % ns];
	/* magnitudes over all of F16's range */
	return urand(1.0f) * ldexpf(1.0f, (int)(rng() % 44) - 26);
}

static void
test_kv_store(uint32_t kvd, uint32_t ntok, uint32_t rows)
{
	size_t ld = kvd + 32;
	vector<float> k(ntok * ld), v(ntok * ld);
	vector<int32_t> slot(ntok);
	vector<uint16_t> kc((size_t)rows * kvd, 0x5555), vc((size_t)rows * kvd, 0xaaaa), rk = kc, rv = vc, gk = kc,
						     gv = vc;
	vector<int32_t> perm(rows);
	float *dk, *dv;
	int32_t *ds;
	uint16_t *dkc, *dvc;
	size_t bad = 0;

	for (size_t i = 0; i < k.size(); i++) {
		k[i] = kv_value(i);
		v[i] = kv_value(i + 3);
	}
	/* distinct rows out of order; one token without a row (slot -1),
	 * which must write nothing */
	for (uint32_t r = 0; r < rows; r++)
		perm[r] = (int32_t)r;
	for (uint32_t r = rows - 1; r > 0; r--)
		std::swap(perm[r], perm[rng() % (r + 1)]);
	for (uint32_t t = 0; t < ntok; t++)
		slot[t] = t == 2 ? -1 : perm[t];
	for (uint32_t t = 0; t < ntok; t++)
		if (slot[t] >= 0)
			for (uint32_t i = 0; i < kvd; i++) {
				rk[(size_t)slot[t] * kvd + i] = quant_f32_to_f16(k[t * ld + i]);
				rv[(size_t)slot[t] * kvd + i] = quant_f32_to_f16(v[t * ld + i]);
			}
	dk = dev_put(k);
	dv = dev_put(v);
	ds = dev_put(slot);
	dkc = dev_put(kc);
	dvc = dev_put(vc);
	kkv_store_launch(dk, dv, ld, ds, ntok, kvd, dkc, dvc, st);
	sync("run k/v store");
	dev_get(gk, dkc);
	dev_get(gv, dvc);
	for (size_t i = 0; i < gk.size(); i++)
		bad += (gk[i] != rk[i]) + (gv[i] != rv[i]);
	ok(!bad, "kv store kvd=%u tokens=%u rows=%u: bit for bit, other rows kept (%zu values differ)", kvd, ntok, rows,
	   bad);
	dev_free(dk);
	dev_free(dv);
	dev_free(ds);
	dev_free(dkc);
	dev_free(dvc);
}

/* ------------------------------------------------------------- attention */

/* a run of tokens of one sequence at positions first .. first + n - 1 (a
 * prompt when n > 1, a decode step when 1) */
struct run {
	int32_t first;
	uint32_t n;
};

/* out (hd) for query q (hd) of one head over positions 0 .. pos of the
 * head's KV head: the engine's attention on the F16 cache (q rounded to
 * F16 as attend_scalar() rounds it), in double */
static void
ref_attend(const float *q, const uint16_t *kc, const uint16_t *vc, const int32_t *bt, uint32_t bs, uint32_t kvd,
	   uint32_t kvh, uint32_t hd, int32_t pos, float *out)
{
	float scale = 1.0f / sqrtf((float)hd);
	vector<double> s(pos + 1), acc(hd, 0.0);
	vector<float> qh(hd);
	double mx = -INFINITY, sum = 0;

	for (uint32_t i = 0; i < hd; i++)
		qh[i] = f16_round(q[i]);
	for (int32_t p = 0; p <= pos; p++) {
		size_t row = (size_t)bt[p / bs] * bs + p % bs;
		const uint16_t *k = kc + row * kvd + (size_t)kvh * hd;
		double d = 0;

		for (uint32_t i = 0; i < hd; i++)
			d += (double)qh[i] * quant_f16_to_f32(k[i]);
		s[p] = d * scale;
		mx = std::max(mx, s[p]);
	}
	for (int32_t p = 0; p <= pos; p++) {
		size_t row = (size_t)bt[p / bs] * bs + p % bs;
		const uint16_t *v = vc + row * kvd + (size_t)kvh * hd;
		double w = exp(s[p] - mx);

		sum += w;
		for (uint32_t i = 0; i < hd; i++)
			acc[i] += w * quant_f16_to_f32(v[i]);
	}
	for (uint32_t i = 0; i < hd; i++)
		out[i] = (float)(acc[i] / sum);
}

/* One launch over the tokens of runs (each run its own sequence, with
 * its own blocks: all the cache's block ids shuffled and dealt out, so no
 * table is in order and no two sequences share a block). The NMSE is
 * taken per token and the worst one counts: one bad token among many must
 * not hide in the sum. */
static void
test_att(const char *what, uint32_t hd, uint32_t nh, uint32_t nkv, uint32_t bs, const vector<run> &runs)
{
	const uint32_t max_ctx = 2048, kvd = nkv * hd, grp = nh / nkv;
	size_t ldq = (size_t)nh * hd + 16, ldo = (size_t)nh * hd + 8;
	uint32_t ntok = 0, nblk = 0;
	vector<int32_t> pos, boff, btab, perm;
	vector<uint32_t> seq_blocks;

	for (const run &r : runs) {
		uint32_t nb = (uint32_t)(r.first + r.n - 1) / bs + 1;
		seq_blocks.push_back(nb);
		nblk += nb;
		ntok += r.n;
	}
	nblk += 3;      /* blocks nobody owns: reading one is a bug the numbers show */
	for (uint32_t b = 0; b < nblk; b++)
		perm.push_back((int32_t)b);
	for (uint32_t b = nblk - 1; b > 0; b--)
		std::swap(perm[b], perm[rng() % (b + 1)]);
	{
		uint32_t next = 0;
		for (size_t s = 0; s < runs.size(); s++) {
			int32_t off = (int32_t)btab.size();
			for (uint32_t b = 0; b < seq_blocks[s]; b++)
				btab.push_back(perm[next++]);
			for (uint32_t j = 0; j < runs[s].n; j++) {
				pos.push_back(runs[s].first + (int32_t)j);
				boff.push_back(off);
			}
		}
	}

	size_t crows = (size_t)nblk * bs;
	vector<uint16_t> kc(crows * kvd), vc(crows * kvd);
	vector<float> q(ntok * ldq), out(ntok * ldo, 777.0f), ref(ntok * ldo, 777.0f);

	for (size_t i = 0; i < kc.size(); i++) {
		kc[i] = quant_f32_to_f16(urand(1.0f));
		vc[i] = quant_f32_to_f16(urand(1.0f));
	}
	/* query scales from flat softmaxes (1) to sharply peaked ones (16:
	 * scores spread over tens, the running maximum earns its keep) */
	for (uint32_t t = 0; t < ntok; t++) {
		static const float A[] = {1.0f, 4.0f, 16.0f};
		for (size_t i = 0; i < ldq; i++)
			q[t * ldq + i] = urand(A[t % 3]);
	}
	for (uint32_t t = 0; t < ntok; t++)
		for (uint32_t h = 0; h < nh; h++)
			ref_attend(&q[t * ldq + (size_t)h * hd], kc.data(), vc.data(), &btab[boff[t]], bs, kvd, h / grp,
				   hd, pos[t], &ref[t * ldo + (size_t)h * hd]);

	float *dq = dev_put(q), *dout = dev_put(out);
	uint16_t *dkc = dev_put(kc), *dvc = dev_put(vc);
	int32_t *dpos = dev_put(pos), *dbt = dev_put(btab), *dbo = dev_put(boff);

	katt_launch(dq, ldq, dkc, dvc, dpos, dbt, dbo, ntok, nh, nkv, hd, bs, max_ctx, dout, ldo, st);
	sync("run attention");
	dev_get(out, dout);

	nmse_acc all;
	double worst = 0;
	uint32_t worst_t = 0;
	int kept = 1;
	for (uint32_t t = 0; t < ntok; t++) {
		nmse_acc e;
		for (size_t i = 0; i < ldo; i++) {
			size_t k = t * ldo + i;
			if (i < (size_t)nh * hd) {
				e.add(out[k], ref[k]);
				all.add(out[k], ref[k]);
			} else if (out[k] != 777.0f) {
				kept = 0;
			}
		}
		/* a NaN is the worst, and stays so */
		if (!isnan(worst) && !(e.nmse() <= worst)) {
			worst = e.nmse();
			worst_t = t;
		}
	}
	ok(worst <= TOL_ATT && kept,
	   "attention %s hd=%u heads=%u/%u bs=%u tokens=%u: nmse %.3g, worst token %u (pos %d) %.3g (tol %g)%s",
	   what, hd, nh, nkv, bs, ntok, all.nmse(), worst_t, pos[worst_t], worst, TOL_ATT,
	   kept ? "" : ", padding changed");
	dev_free(dq);
	dev_free(dout);
	dev_free(dkc);
	dev_free(dvc);
	dev_free(dpos);
	dev_free(dbt);
	dev_free(dbo);
}

/* ------------------------------------------------------------- main */

int
main(void)
{

	if (gputest_start() < 0)
		return 0;

	test_norm(64, 1, 64, 64, 1e-5f, 0, 3.0f);
	test_norm(576, 7, 600, 640, 1e-6f, 0, 3.0f);
	test_norm(4096, 3, 4096, 4096, 1e-5f, 0, 3.0f);
	test_norm(2048, 4, 2048, 2048, 1e-6f, 1, 3.0f);
	test_norm(896, 3, 896, 896, 1e-5f, 0, 0.004f);

	for (int hc = 0; hc < 2; hc++) {
		uint32_t hd = hc ? 128 : 64, nh = hc ? 8 : 32;
		for (int neox = 0; neox < 2; neox++)
			for (int part = 0; part < 2; part++)
				for (int fr = 0; fr < 2; fr++)
					test_rope(hd, nh, part ? hd / 2 : hd, neox, fr);
	}

	test_swiglu(100003, 0);
	test_swiglu(4099, 1);
	test_add(100003);
	test_bias(1000, 5, 1024);
	test_kv_store(256, 7, 40);
	test_kv_store(1024, 9, 64);

	/* a mixed batch: a prompt from position 0 through the first block
	 * edges (0, 1, 31, 32, 33), decode steps at 500, 2047 and 0, and a
	 * chunk of a prompt further on */
	vector<run> mixed = {{0, 34}, {500, 1}, {2047, 1}, {0, 1}, {1000, 10}};
	/* one sequence's decode step at the end of the context */
	vector<run> decode = {{2047, 1}};
	/* two prompts, from the start and up to the end of the context:
	 * enough (token, head) pairs for the launcher's fewest warps */
	vector<run> prompt = {{0, 128}, {1920, 128}};
	static const struct {
		uint32_t hd, nh, nkv, bs;
	} C[] = {{64, 8, 8, 16}, {64, 32, 8, 32}, {128, 8, 8, 32}, {128, 32, 8, 16}};
	for (const auto &c : C) {
		test_att("mixed", c.hd, c.nh, c.nkv, c.bs, mixed);
		test_att("decode", c.hd, c.nh, c.nkv, c.bs, decode);
		test_att("prompt", c.hd, c.nh, c.nkv, c.bs, prompt);
	}
	/* the other lane widths: 8 values a lane (16-byte loads), an odd
	 * count (value by value), one (hd 32), groups of 3 */
	test_att("mixed", 256, 8, 2, 16, mixed);
	test_att("mixed", 96, 12, 4, 32, mixed);
	test_att("mixed", 32, 4, 4, 16, mixed);
	test_att("mixed", 192, 6, 2, 16, mixed);
	/* a block size that is not a power of two (division, not shift) */
	test_att("mixed", 64, 16, 4, 24, mixed);

	CUDA_CHECK(cudaStreamDestroy(st), "destroy a stream");
	return done_testing();
}
