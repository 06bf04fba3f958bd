/* model: a llama-family GGUF as the engine sees it: the hyperparameters
 * from its metadata and views of its weights, which stay in the mapped
 * file (only the small norm vectors and biases are copied out as floats).
 * Architectures: llama (Llama 2/3, Mistral, TinyLlama, SmolLM2) and qwen2. */
#ifndef SLUICE_MODEL_H
#define SLUICE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "tok.h"

enum { MODEL_LLAMA, MODEL_QWEN2 };

/* A weight matrix in the file: rows of cols values, row r at data + r*row_bytes. */
typedef struct model_mat {
	const void *data;
	uint32_t type;          /* QUANT_* */
	uint32_t rows;          /* output features (ggml ne[1]) */
	uint32_t cols;          /* input features (ggml ne[0]) */
	size_t row_bytes;
} model_mat;

typedef struct model_layer {
	float *attn_norm;       /* (dim) */
	model_mat wq;           /* (n_heads*head_dim, dim) */
	model_mat wk, wv;       /* (n_kv_heads*head_dim, dim) */
	float *bq, *bk, *bv;    /* qwen2 biases, else NULL */
	model_mat wo;           /* (dim, n_heads*head_dim) */
	float *ffn_norm;        /* (dim) */
	model_mat gate, up;     /* (ff, dim) */
	model_mat down;         /* (dim, ff) */
} model_layer;

typedef struct model {
	gguf g;
	tok *tok;
	int arch;               /* MODEL_* */
	const char *arch_name;
	char name[64];          /* general.name, or the file's base name */
	uint32_t n_vocab, dim, n_layers, n_heads, n_kv_heads, head_dim, ff;
	uint32_t ctx_train;     /* ARCH.context_length */
	uint32_t rope_dim;      /* rotated dimensions of a head (rope.dimension_count) */
	int rope_neox;          /* 1: rotate (i, i + rope_dim/2) pairs (qwen2); 0: (2i, 2i+1) */
	float rope_base;        /* rope.freq_base */
	float rope_scale;       /* positions are divided by this (rope.scale_linear; 1) */
	float *rope_freqs;      /* (rope_dim/2) per-pair divisors (llama3's rope_freqs.weight) or NULL */
	float eps;              /* attention.layer_norm_rms_epsilon */
	model_mat embd;         /* (n_vocab, dim) token_embd */
	float *out_norm;        /* (dim) */
	model_mat output;       /* (n_vocab, dim); token_embd itself when tied */
	int tied;
	model_layer *layers;    /* (n_layers) */
	size_t weight_bytes;    /* bytes of all tensors */
} model;
#define MODEL_ZERO {GGUF_ZERO}

/* Maps path and checks everything the forward pass relies on: known
 * architecture, every tensor present with the right shape, weight types
 * the backend runs (supports: the backend's own, backend.h; NULL: any
 * type) ("blk.3.ffn_down.weight has type Q5_K, which the engine does not
 * support; supported: ..."), head sizes that divide. 0 ok; -1 with err
 * (the model is then closed). */
int model_open(model *m, const char *path, int (*supports)(uint32_t), char *err, size_t errlen);
void model_close(model *m);
/* "Q4_1 x210, F32 x61, Q8_0 x1": the weight types, for the load summary. */
void model_types(const model *m, char *buf, size_t n);

#endif
