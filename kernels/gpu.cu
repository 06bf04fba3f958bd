/* gpu: the CUDA backend (lib/backend.h) and the one place that strings the
 * kernels of this directory into a forward pass: the model's weights
 * uploaded once as they lie in the file, a paged F16 K/V cache in device
 * memory with the engine's block tables, and a scheduler step run through
 * embedding, RMSNorm, the products, RoPE, attention and SwiGLU; the logits
 * rows come back to the host, where the engine's sampler reads them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention.cuh"
#include "common.cuh"
#include "gpu.h"
#include "matmul.cuh"
#include "ops.cuh"

/* die.h is C11; its _Noreturn is C++'s attribute */
#define _Noreturn [[noreturn]]
extern "C" {
#include "die.h"
}
#undef _Noreturn

/* the device's copy of a layer (norms and biases as floats) */
typedef struct glayer {
	kmat wq, wk, wv, wo, gate, up, down;
	float *attn_norm, *ffn_norm;    /* (dim) */
	float *bq, *bk, *bv;            /* qwen2's biases or NULL */
} glayer;

struct gpu {
	const model *m;
	int dev;
	cudaStream_t st;
	char name[256];                 /* the device's name */
	size_t weight_bytes;            /* uploaded */
	void **allocs;                  /* everything cudaMalloc'd, freed in reverse order */
	int n_allocs, cap_allocs;
	/* weights */
	kmat embd, output;
	glayer *layers;                 /* (n_layers) */
	float *out_norm;                /* (dim) */
	float *rope_freqs;              /* (rope_dim/2) or NULL */
	/* the cache: (n_layers, n_blocks, bs, kvd) F16 each */
	uint16_t *kc, *vc;
	uint32_t n_blocks, bs, max_tokens, max_out, max_ctx, qd, kvd;
	/* a step's rows on the device */
	float *x;                       /* (max_tokens, dim) the residual stream */
	float *xn;                      /* (max_tokens, dim) normalised */
	float *q, *k, *v, *att;         /* (max_tokens, qd | kvd | kvd | qd) */
	float *g, *u;                   /* (max_tokens, ff) */
	float *tmp;                     /* (max_tokens, dim) */
	float *outx, *outn;             /* (max_out, dim) the rows that want logits */
	float *logits;                  /* (max_out, n_vocab) */
	/* a step's indices: host (pinned) and device, in one array each:
	 * tokens, positions, cache slots and block-table offsets of the
	 * tokens, then the block tables */
	int32_t *hidx, *didx;
	size_t idx_cap;                 /* int32s */
	char desc[320];
};

/* ------------------------------------------------------------- memory */

static void *
dev_alloc(gpu *g, size_t n, const char *what)
{
	void *p = 0;
	char buf[160];

	snprintf(buf, sizeof buf, "allocate %zu bytes of device memory for %s", n, what);
	CUDA_CHECK(cudaMalloc(&p, n ? n : 16), buf);
	if (g->n_allocs == g->cap_allocs) {
		g->cap_allocs = g->cap_allocs ? 2 * g->cap_allocs : 64;
		g->allocs = (void **)xrealloc(g->allocs, (size_t)g->cap_allocs * sizeof *g->allocs);
	}
	g->allocs[g->n_allocs++] = p;
	return p;
}

static void *
upload(gpu *g, const void *src, size_t n, const char *what)
{
	void *p = dev_alloc(g, n, what);

	CUDA_CHECK(cudaMemcpy(p, src, n, cudaMemcpyHostToDevice), "copy weights to the device");
	g->weight_bytes += n;
	return p;
}

static kmat
upload_mat(gpu *g, const model_mat *w)
{
	kmat k;

	k.data = upload(g, w->data, (size_t)w->rows * w->row_bytes, "weights");
	k.type = w->type;
	k.rows = w->rows;
	k.cols = w->cols;
	k.row_bytes = w->row_bytes;
	return k;
}

static float *
upload_vec(gpu *g, const float *v, size_t n)
{
	return v ? (float *)upload(g, v, n * sizeof(float), "norms") : 0;
}

/* ------------------------------------------------------------- the backend */

size_t
gpu_block_bytes(const model *m, uint32_t bs)
{
	return (size_t)2 * m->n_layers * bs * m->n_kv_heads * m->head_dim * sizeof(uint16_t);
}

static int
be_supports(uint32_t type)
{
	return kmm_supports(type);
}

/* the device named by CUDA_VISIBLE_DEVICES (device 0 of those), or an
 * error that says why there is none */
static int
pick_device(int *dev, char *err, size_t errlen)
{
	int n = 0;
	cudaError_t e = cudaGetDeviceCount(&n);

	if (e != cudaSuccess) {
		seterr(err, errlen, "no CUDA device: %s", cudaGetErrorString(e));
		return -1;
	}
	if (n == 0) {
		seterr(err, errlen, "no CUDA device: the driver reports none");
		return -1;
	}
	*dev = 0;
	return 0;
}

gpu *
gpu_new(const model *m, uint32_t n_blocks, uint32_t bs, uint32_t max_tokens, uint32_t max_out,
	uint32_t max_ctx, char *err, size_t errlen)
{
	gpu *g;
	cudaDeviceProp prop;
	size_t cache, free_b = 0, total_b = 0, need, act;
	uint32_t L;

	if (m->head_dim % 32 || m->head_dim > 256) {
		seterr(err, errlen, "head size %u: the CUDA attention takes multiples of 32 up to 256",
		       m->head_dim);
		return 0;
	}
	g = (gpu *)xcalloc(1, sizeof *g);
	if (pick_device(&g->dev, err, errlen) < 0) {
		free(g);
		return 0;
	}
	CUDA_CHECK(cudaSetDevice(g->dev), "select the CUDA device");
	CUDA_CHECK(cudaGetDeviceProperties(&prop, g->dev), "read the device's properties");
	snprintf(g->name, sizeof g->name, "%s", prop.name);
	g->m = m;
	g->n_blocks = n_blocks;
	g->bs = bs;
	g->max_tokens = max_tokens;
	g->max_out = max_out;
	g->max_ctx = max_ctx;
	g->qd = m->n_heads * m->head_dim;
	g->kvd = m->n_kv_heads * m->head_dim;

	/* does it fit: weights, cache, a step's rows, the logits */
	cache = (size_t)m->n_layers * n_blocks * bs * g->kvd * 2;
	act = (size_t)max_tokens * (3 * m->dim + 2 * g->qd + 2 * g->kvd + 2 * m->ff) * 4
	      + (size_t)max_out * (2 * m->dim + m->n_vocab) * 4;
	need = m->weight_bytes + 2 * cache + act;
	CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b), "read the device's free memory");
	if (need > free_b) {
		seterr(err, errlen, "the model does not fit on %s: %.1f MB wanted (weights %.1f, K/V %.1f), "
		       "%.1f MB free", g->name, need / 1e6, m->weight_bytes / 1e6, 2 * cache / 1e6, free_b / 1e6);
		free(g);
		return 0;
	}
	CUDA_CHECK(cudaStreamCreateWithFlags(&g->st, cudaStreamNonBlocking), "create a CUDA stream");

	g->embd = upload_mat(g, &m->embd);
	g->output = m->tied ? g->embd : upload_mat(g, &m->output);
	g->out_norm = upload_vec(g, m->out_norm, m->dim);
	g->rope_freqs = upload_vec(g, m->rope_freqs, m->rope_dim / 2);
	g->layers = (glayer *)xcalloc(m->n_layers, sizeof *g->layers);
	for (L = 0; L < m->n_layers; L++) {
		const model_layer *l = &m->layers[L];
		glayer *d = &g->layers[L];

		d->wq = upload_mat(g, &l->wq);
		d->wk = upload_mat(g, &l->wk);
		d->wv = upload_mat(g, &l->wv);
		d->wo = upload_mat(g, &l->wo);
		d->gate = upload_mat(g, &l->gate);
		d->up = upload_mat(g, &l->up);
		d->down = upload_mat(g, &l->down);
		d->attn_norm = upload_vec(g, l->attn_norm, m->dim);
		d->ffn_norm = upload_vec(g, l->ffn_norm, m->dim);
		d->bq = upload_vec(g, l->bq, g->qd);
		d->bk = upload_vec(g, l->bk, g->kvd);
		d->bv = upload_vec(g, l->bv, g->kvd);
	}
	g->kc = (uint16_t *)dev_alloc(g, cache, "the K cache");
	g->vc = (uint16_t *)dev_alloc(g, cache, "the V cache");
	g->x = (float *)dev_alloc(g, (size_t)max_tokens * m->dim * 4, "activations");
	g->xn = (float *)dev_alloc(g, (size_t)max_tokens * m->dim * 4, "activations");
	g->q = (float *)dev_alloc(g, (size_t)max_tokens * g->qd * 4, "activations");
	g->k = (float *)dev_alloc(g, (size_t)max_tokens * g->kvd * 4, "activations");
	g->v = (float *)dev_alloc(g, (size_t)max_tokens * g->kvd * 4, "activations");
	g->att = (float *)dev_alloc(g, (size_t)max_tokens * g->qd * 4, "activations");
	g->g = (float *)dev_alloc(g, (size_t)max_tokens * m->ff * 4, "activations");
	g->u = (float *)dev_alloc(g, (size_t)max_tokens * m->ff * 4, "activations");
	g->tmp = (float *)dev_alloc(g, (size_t)max_tokens * m->dim * 4, "activations");
	g->outx = (float *)dev_alloc(g, (size_t)max_out * m->dim * 4, "activations");
	g->outn = (float *)dev_alloc(g, (size_t)max_out * m->dim * 4, "activations");
	g->logits = (float *)dev_alloc(g, (size_t)max_out * m->n_vocab * 4, "logits");
	/* a copy from pageable memory may still be in flight when cudaMemcpy
	 * returns, and the step's stream does not wait for the default one */
	CUDA_CHECK(cudaDeviceSynchronize(), "upload the model");
	return g;
}

void
gpu_free(gpu *g)
{
	if (!g)
		return;
	if (g->st)
		cudaStreamSynchronize(g->st);
	while (g->n_allocs > 0)
		cudaFree(g->allocs[--g->n_allocs]);
	if (g->hidx)
		cudaFreeHost(g->hidx);
	if (g->didx)
		cudaFree(g->didx);
	if (g->st)
		cudaStreamDestroy(g->st);
	free(g->allocs);
	free(g->layers);
	free(g);
}

const char *
gpu_describe(gpu *g)
{
	snprintf(g->desc, sizeof g->desc, "CUDA device %d, %s, %.1f MB of weights on it", g->dev, g->name,
		 g->weight_bytes / 1e6);
	return g->desc;
}

/* ------------------------------------------------------------- the step */

/* room for n int32 indices, host and device (grown, never shrunk: a step
 * is bounded by max_tokens tokens and their block tables) */
static void
idx_room(gpu *g, size_t n)
{
	if (n <= g->idx_cap)
		return;
	if (g->hidx) {
		CUDA_CHECK(cudaStreamSynchronize(g->st), "finish a step");
		CUDA_CHECK(cudaFreeHost(g->hidx), "free pinned memory");
		CUDA_CHECK(cudaFree(g->didx), "free device memory");
	}
	g->idx_cap = n + n / 2 + 1024;
	CUDA_CHECK(cudaMallocHost((void **)&g->hidx, g->idx_cap * 4), "allocate pinned memory");
	CUDA_CHECK(cudaMalloc((void **)&g->didx, g->idx_cap * 4), "allocate device memory for indices");
}

static void
mm(gpu *g, const kmat *w, const float *x, uint32_t ld, uint32_t nb, float *y, const float *bias)
{
	kmm_launch(w, x, ld, nb, y, w->rows, g->st);
	if (bias)
		kbias_launch(y, w->rows, bias, w->rows, nb, g->st);
}

void
gpu_forward(gpu *g, sched_batch *b)
{
	const model *m = g->m;
	uint32_t n = b->n_tokens, p, t, L, i, n_out = 0;
	size_t nbt = 0, layer_rows = (size_t)g->n_blocks * g->bs;
	int32_t *tok, *pos, *slot, *boff, *btab;
	const int32_t *dtok, *dpos, *dslot, *dboff, *dbtab;
	float *dlog;

	if (n == 0 || n > g->max_tokens || b->n_out > g->max_out)
		die_x(EXIT_SYS, "internal error: a step of %u tokens and %u logits rows (limits %u, %u)", n,
		      b->n_out, g->max_tokens, g->max_out);
	for (p = 0; p < b->n_parts; p++)
		nbt += (b->parts[p].pos + b->parts[p].n + g->bs - 1) / g->bs;
	idx_room(g, 4 * (size_t)n + nbt);
	tok = g->hidx;
	pos = tok + n;
	slot = pos + n;
	boff = slot + n;
	btab = boff + n;
	/* the previous step's copies have finished (it synchronised) */
	nbt = 0;
	for (p = 0; p < b->n_parts; p++) {
		const sched_part *pt = &b->parts[p];
		uint32_t nb = (pt->pos + pt->n + g->bs - 1) / g->bs;

		for (i = 0; i < nb; i++)
			btab[nbt + i] = (int32_t)pt->blocks[i];
		for (t = 0; t < pt->n; t++) {
			uint32_t tt = pt->first + t, ps = pt->pos + t;

			tok[tt] = (int32_t)b->tokens[tt];
			pos[tt] = (int32_t)ps;
			slot[tt] = (int32_t)(pt->blocks[ps / g->bs] * g->bs + ps % g->bs);
			boff[tt] = (int32_t)nbt;
		}
		nbt += nb;
	}
	CUDA_CHECK(cudaMemcpyAsync(g->didx, g->hidx, (4 * (size_t)n + nbt) * 4, cudaMemcpyHostToDevice, g->st),
		   "copy a step's indices to the device");
	dtok = g->didx;
	dpos = dtok + n;
	dslot = dpos + n;
	dboff = dslot + n;
	dbtab = dboff + n;

	kembed_launch(&g->embd, dtok, n, g->x, g->st);
	for (L = 0; L < m->n_layers; L++) {
		const glayer *l = &g->layers[L];
		uint16_t *kc = g->kc + (size_t)L * layer_rows * g->kvd, *vc = g->vc + (size_t)L * layer_rows * g->kvd;

		/* attention block: x += wo * attn(rope(wq xn), rope(wk xn), wv xn) */
		knorm_launch(g->x, m->dim, l->attn_norm, m->dim, n, m->eps, g->xn, m->dim, g->st);
		mm(g, &l->wq, g->xn, m->dim, n, g->q, l->bq);
		mm(g, &l->wk, g->xn, m->dim, n, g->k, l->bk);
		mm(g, &l->wv, g->xn, m->dim, n, g->v, l->bv);
		krope_launch(g->q, g->qd, dpos, n, m->n_heads, m->head_dim, m->rope_dim, m->rope_neox, m->rope_base,
			     m->rope_scale, g->rope_freqs, g->st);
		krope_launch(g->k, g->kvd, dpos, n, m->n_kv_heads, m->head_dim, m->rope_dim, m->rope_neox,
			     m->rope_base, m->rope_scale, g->rope_freqs, g->st);
		kkv_store_launch(g->k, g->v, g->kvd, dslot, n, g->kvd, kc, vc, g->st);
		katt_launch(g->q, g->qd, kc, vc, dpos, dbtab, dboff, n, m->n_heads, m->n_kv_heads, m->head_dim,
			    g->bs, g->max_ctx, g->att, g->qd, g->st);
		mm(g, &l->wo, g->att, g->qd, n, g->tmp, 0);
		kadd_launch(g->x, g->tmp, (size_t)n * m->dim, g->st);

		/* feed-forward block: x += down * (silu(gate xn) * up xn) */
		knorm_launch(g->x, m->dim, l->ffn_norm, m->dim, n, m->eps, g->xn, m->dim, g->st);
		mm(g, &l->gate, g->xn, m->dim, n, g->g, 0);
		mm(g, &l->up, g->xn, m->dim, n, g->u, 0);
		kswiglu_launch(g->g, g->u, g->g, (size_t)n * m->ff, g->st);
		mm(g, &l->down, g->g, m->ff, n, g->tmp, 0);
		kadd_launch(g->x, g->tmp, (size_t)n * m->dim, g->st);
	}

	/* the rows that want logits, gathered in the order of their rows */
	for (p = 0; p < b->n_parts; p++) {
		const sched_part *pt = &b->parts[p];

		if (!pt->n_logits)
			continue;
		CUDA_CHECK(cudaMemcpyAsync(g->outx + (size_t)pt->out * m->dim,
					   g->x + (size_t)(pt->first + pt->n - pt->n_logits) * m->dim,
					   (size_t)pt->n_logits * m->dim * 4, cudaMemcpyDeviceToDevice, g->st),
			   "gather the rows that want logits");
		n_out += pt->n_logits;
	}
	if (n_out) {
		knorm_launch(g->outx, m->dim, g->out_norm, m->dim, n_out, m->eps, g->outn, m->dim, g->st);
		dlog = g->logits;
		kmm_launch(&g->output, g->outn, m->dim, n_out, dlog, m->n_vocab, g->st);
		CUDA_CHECK(cudaMemcpyAsync(b->logits, dlog, (size_t)n_out * m->n_vocab * 4, cudaMemcpyDeviceToHost,
					   g->st), "copy the logits back");
	}
	CUDA_CHECK(cudaStreamSynchronize(g->st), "run a step on the device");
}

/* ------------------------------------------------------------- as a backend */

static void *
be_open(const model *m, uint32_t n_blocks, uint32_t bs, uint32_t max_tokens, uint32_t max_out,
	uint32_t max_ctx, int threads, char *err, size_t errlen)
{
	(void)threads;
	return gpu_new(m, n_blocks, bs, max_tokens, max_out, max_ctx, err, errlen);
}

static void
be_forward(void *g, sched_batch *b)
{
	gpu_forward((gpu *)g, b);
}

static void
be_close(void *g)
{
	gpu_free((gpu *)g);
}

static const char *
be_describe(void *g)
{
	return gpu_describe((gpu *)g);
}

extern "C" const backend gpu_backend = {
	"cuda", be_supports, gpu_block_bytes, be_open, be_forward, be_close, be_describe,
};
