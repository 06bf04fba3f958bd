/* model: hyperparameters and weight views of a llama-family GGUF, checked
 * against each other before the forward pass trusts them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "model.h"
#include "quant.h"

/* the weight types, in the order people list them (quantize's) */
static const uint32_t shown[] = {
	QUANT_F32, QUANT_F16, QUANT_BF16, QUANT_Q8_0, QUANT_Q4_0, QUANT_Q4_1, QUANT_Q5_0, QUANT_Q5_1,
	QUANT_Q4_K, QUANT_Q6_K,
};

/* ARCH.suffix as a u64; 0 absent, -1 wrong type */
static int
arch_u64(const model *m, const char *suffix, uint64_t *v)
{
	char key[128];

	snprintf(key, sizeof key, "%s.%s", m->arch_name, suffix);
	return gguf_get_u64(&m->g, key, v);
}

static int
arch_f64(const model *m, const char *suffix, double *v)
{
	char key[128];

	snprintf(key, sizeof key, "%s.%s", m->arch_name, suffix);
	return gguf_get_f64(&m->g, key, v);
}

/* An optional float hyperparameter: *v keeps its default when the key is
 * absent; one that is there must be a finite number above lo (at or above
 * it when zero_ok). A NaN base frequency or a negative epsilon would load
 * and give garbage without a word. */
static int
opt_f64(const model *m, const char *suffix, double lo, int zero_ok, float *v, char *err, size_t errlen)
{
	double f;
	int r = arch_f64(m, suffix, &f);

	if (r == 0)
		return 0;
	if (r < 0 || !isfinite(f) || f < lo || (f == lo && !zero_ok)) {
		seterr(err, errlen, "%s.%s is %s", m->arch_name, suffix,
		       r < 0 ? "not a number" : !isfinite(f) ? "not finite" : "out of range");
		return -1;
	}
	*v = (float)f;
	return 0;
}

/* a required u32-sized hyperparameter */
static int
need_u32(const model *m, const char *suffix, uint32_t *v, char *err, size_t errlen)
{
	uint64_t x;
	int r = arch_u64(m, suffix, &x);

	if (r <= 0 || x == 0 || x > (1u << 24)) {
		seterr(err, errlen, "%s.%s is %s", m->arch_name, suffix,
		       r == 0 ? "missing" : r < 0 ? "not an integer" : "out of range");
		return -1;
	}
	*v = (uint32_t)x;
	return 0;
}

/* The tensor name with its shape checked: ne = {cols, rows} (rows 1: a vector). */
static const gguf_tensor *
tensor(const model *m, const char *name, uint64_t cols, uint64_t rows, int optional,
       char *err, size_t errlen)
{
	const gguf_tensor *t = gguf_tensor_find(&m->g, name);

	if (!t) {
		if (!optional)
			seterr(err, errlen, "tensor %s is missing", name);
		return 0;
	}
	if (t->ne[0] != cols || t->ne[1] != rows || t->ne[2] != 1 || t->ne[3] != 1) {
		seterr(err, errlen, "tensor %s has shape [%llu, %llu, %llu, %llu], expected [%llu, %llu]",
		       name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
		       (unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
		       (unsigned long long)cols, (unsigned long long)rows);
		return (const gguf_tensor *)-1;
	}
	return t;
}

/* a weight matrix of a type the backend runs (supports; NULL: any) */
static int
mat(model *m, model_mat *w, const char *name, uint32_t cols, uint32_t rows, int (*supports)(uint32_t),
    char *err, size_t errlen)
{
	const gguf_tensor *t = tensor(m, name, cols, rows, 0, err, errlen);
	char list[256];
	size_t i, off = 0;

	if (!t || t == (const gguf_tensor *)-1)
		return -1;
	if (supports && !supports(t->type)) {
		list[0] = 0;
		for (i = 0; i < sizeof shown / sizeof *shown; i++)
			if (supports(shown[i]))
				off += snprintf(list + off, sizeof list - off, "%s%s", off ? ", " : "",
						gguf_type_name(shown[i]));
		seterr(err, errlen, "%s has type %s, which the engine does not support; supported: %s",
		       name, gguf_type_name(t->type), list);
		return -1;
	}
	w->data = t->data;
	w->type = t->type;
	w->rows = rows;
	w->cols = cols;
	w->row_bytes = quant_row_bytes(t->type, cols);
	return 0;
}

/* a vector of n values of any type lib/quant reads, copied out as floats;
 * *out stays NULL when optional and absent */
static int
vec(model *m, float **out, const char *name, uint32_t n, int optional, char *err, size_t errlen)
{
	const gguf_tensor *t = tensor(m, name, n, 1, optional, err, errlen);

	*out = 0;
	if (!t)
		return optional ? 0 : -1;
	if (t == (const gguf_tensor *)-1)
		return -1;
	if (!quant_supported(t->type)) {
		seterr(err, errlen, "%s has type %s, which the engine does not support", name,
		       gguf_type_name(t->type));
		return -1;
	}
	*out = xmalloc((size_t)n * sizeof(float));
	quant_dequantize_row(t->type, t->data, *out, n);
	return 0;
}

static int
hparams(model *m, char *err, size_t errlen)
{
	const char *s;
	size_t n;
	uint64_t x;

	if (gguf_get_str(&m->g, "general.architecture", &s, &n) <= 0) {
		seterr(err, errlen, "general.architecture is missing");
		return -1;
	}
	if (n == 5 && !memcmp(s, "llama", 5)) {
		m->arch = MODEL_LLAMA;
		m->arch_name = "llama";
	} else if (n == 5 && !memcmp(s, "qwen2", 5)) {
		m->arch = MODEL_QWEN2;
		m->arch_name = "qwen2";
	} else {
		seterr(err, errlen, "architecture \"%.*s\" is not supported; supported: llama, qwen2",
		       (int)(n > 64 ? 64 : n), s);
		return -1;
	}
	if (gguf_get_str(&m->g, "general.name", &s, &n) > 0)
		snprintf(m->name, sizeof m->name, "%.*s", (int)n, s);
	if (need_u32(m, "embedding_length", &m->dim, err, errlen) < 0
	    || need_u32(m, "block_count", &m->n_layers, err, errlen) < 0
	    || need_u32(m, "feed_forward_length", &m->ff, err, errlen) < 0
	    || need_u32(m, "attention.head_count", &m->n_heads, err, errlen) < 0)
		return -1;
	m->n_kv_heads = m->n_heads;
	if (arch_u64(m, "attention.head_count_kv", &x) > 0 && x > 0 && x <= m->n_heads)
		m->n_kv_heads = (uint32_t)x;
	if (m->dim % m->n_heads || m->n_heads % m->n_kv_heads) {
		seterr(err, errlen, "%u heads (%u for K/V) do not divide the embedding length %u",
		       m->n_heads, m->n_kv_heads, m->dim);
		return -1;
	}
	m->head_dim = m->dim / m->n_heads;
	if (arch_u64(m, "attention.key_length", &x) > 0 && x != m->head_dim) {
		seterr(err, errlen, "%s.attention.key_length %llu differs from the head size %u",
		       m->arch_name, (unsigned long long)x, m->head_dim);
		return -1;
	}
	m->ctx_train = 4096;
	if (arch_u64(m, "context_length", &x) > 0 && x > 0)
		m->ctx_train = x > (1u << 24) ? 1u << 24 : (uint32_t)x;
	m->rope_dim = m->head_dim;
	if (arch_u64(m, "rope.dimension_count", &x) > 0) {
		if (x == 0 || x > m->head_dim || x % 2) {
			seterr(err, errlen, "%s.rope.dimension_count %llu does not fit the head size %u",
			       m->arch_name, (unsigned long long)x, m->head_dim);
			return -1;
		}
		m->rope_dim = (uint32_t)x;
	}
	m->rope_neox = m->arch == MODEL_QWEN2;
	m->rope_base = 10000.0f;
	m->rope_scale = 1.0f;
	if (opt_f64(m, "rope.freq_base", 0, 0, &m->rope_base, err, errlen) < 0
	    || opt_f64(m, "rope.scale_linear", 0, 0, &m->rope_scale, err, errlen) < 0)
		return -1;
	{
		char key[128];
		const char *ty;
		size_t tn;

		snprintf(key, sizeof key, "%s.rope.scaling.type", m->arch_name);
		if (gguf_get_str(&m->g, key, &ty, &tn) > 0 && !(tn == 4 && !memcmp(ty, "none", 4))) {
			if (!(tn == 6 && !memcmp(ty, "linear", 6))) {
				seterr(err, errlen, "rope scaling \"%.*s\" is not supported (linear is)",
				       (int)(tn > 32 ? 32 : tn), ty);
				return -1;
			}
			if (opt_f64(m, "rope.scaling.factor", 0, 0, &m->rope_scale, err, errlen) < 0)
				return -1;
		}
	}
	m->eps = 1e-5f;
	return opt_f64(m, "attention.layer_norm_rms_epsilon", 0, 1, &m->eps, err, errlen);
}

int
model_open(model *m, const char *path, int (*supports)(uint32_t), char *err, size_t errlen)
{
	const gguf_tensor *te;
	char name[96];
	uint32_t i, qd, kvd;

	memset(m, 0, sizeof *m);
	if (gguf_open(&m->g, path, err, errlen) < 0)
		return -1;
	{
		const char *b = strrchr(path, '/');
		snprintf(m->name, sizeof m->name, "%s", b ? b + 1 : path);
	}
	if (hparams(m, err, errlen) < 0)
		goto fail;
	te = gguf_tensor_find(&m->g, "token_embd.weight");
	if (!te || te->n_dims != 2 || te->ne[0] != m->dim || te->ne[1] > (1u << 24)) {
		seterr(err, errlen, te ? "token_embd.weight does not have shape [%u, n_vocab]"
		       : "tensor token_embd.weight is missing", m->dim);
		goto fail;
	}
	m->n_vocab = (uint32_t)te->ne[1];
	if (mat(m, &m->embd, "token_embd.weight", m->dim, m->n_vocab, supports, err, errlen) < 0)
		goto fail;
	if (vec(m, &m->out_norm, "output_norm.weight", m->dim, 0, err, errlen) < 0)
		goto fail;
	if (gguf_tensor_find(&m->g, "output.weight")) {
		if (mat(m, &m->output, "output.weight", m->dim, m->n_vocab, supports, err, errlen) < 0)
			goto fail;
	} else {
		m->output = m->embd;
		m->tied = 1;
	}
	if (gguf_tensor_find(&m->g, "rope_freqs.weight")
	    && vec(m, &m->rope_freqs, "rope_freqs.weight", m->rope_dim / 2, 0, err, errlen) < 0)
		goto fail;
	qd = m->n_heads * m->head_dim;
	kvd = m->n_kv_heads * m->head_dim;
	m->layers = xcalloc(m->n_layers, sizeof *m->layers);
	for (i = 0; i < m->n_layers; i++) {
		model_layer *l = &m->layers[i];
		int qw = m->arch == MODEL_QWEN2;
#define T(s) (snprintf(name, sizeof name, "blk.%u.%s", i, s), name)
		if (vec(m, &l->attn_norm, T("attn_norm.weight"), m->dim, 0, err, errlen) < 0
		    || mat(m, &l->wq, T("attn_q.weight"), m->dim, qd, supports, err, errlen) < 0
		    || mat(m, &l->wk, T("attn_k.weight"), m->dim, kvd, supports, err, errlen) < 0
		    || mat(m, &l->wv, T("attn_v.weight"), m->dim, kvd, supports, err, errlen) < 0
		    || mat(m, &l->wo, T("attn_output.weight"), qd, m->dim, supports, err, errlen) < 0
		    || vec(m, &l->bq, T("attn_q.bias"), qd, !qw, err, errlen) < 0
		    || vec(m, &l->bk, T("attn_k.bias"), kvd, !qw, err, errlen) < 0
		    || vec(m, &l->bv, T("attn_v.bias"), kvd, !qw, err, errlen) < 0
		    || vec(m, &l->ffn_norm, T("ffn_norm.weight"), m->dim, 0, err, errlen) < 0
		    || mat(m, &l->gate, T("ffn_gate.weight"), m->dim, m->ff, supports, err, errlen) < 0
		    || mat(m, &l->up, T("ffn_up.weight"), m->dim, m->ff, supports, err, errlen) < 0
		    || mat(m, &l->down, T("ffn_down.weight"), m->ff, m->dim, supports, err, errlen) < 0)
			goto fail;
#undef T
	}
	for (i = 0; i < m->g.n_tensors; i++)
		m->weight_bytes += m->g.tensors[i].nbytes;
	m->tok = tok_load(&m->g, err, errlen);
	if (!m->tok)
		goto fail;
	if (tok_n_vocab(m->tok) > m->n_vocab) {
		seterr(err, errlen, "the vocabulary has %u tokens but token_embd.weight only %u rows",
		       tok_n_vocab(m->tok), m->n_vocab);
		goto fail;
	}
	return 0;
fail:
	model_close(m);
	return -1;
}

void
model_close(model *m)
{
	uint32_t i;

	if (m->layers) {
		for (i = 0; i < m->n_layers; i++) {
			model_layer *l = &m->layers[i];
			free(l->attn_norm);
			free(l->ffn_norm);
			free(l->bq);
			free(l->bk);
			free(l->bv);
		}
		free(m->layers);
	}
	free(m->rope_freqs);
	free(m->out_norm);
	tok_free(m->tok);
	gguf_close(&m->g);
	memset(m, 0, sizeof *m);
}

void
model_types(const model *m, char *buf, size_t n)
{
	uint32_t count[64] = {0}, t;
	uint64_t i;
	size_t off = 0;

	for (i = 0; i < m->g.n_tensors; i++)
		if (m->g.tensors[i].type < 64)
			count[m->g.tensors[i].type]++;
	buf[0] = 0;
	for (t = 0; t < 64 && off < n; t++)
		if (count[t])
			off += snprintf(buf + off, n - off, "%s%s x%u", off ? ", " : "",
					gguf_type_name(t), count[t]);
}
