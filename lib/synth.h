/* synth: a small llama-architecture GGUF with seeded random weights and a
 * real tokenizer (copied from a GGUF, or a tiny built-in byte-level BPE
 * one), for tests that need a model of a chosen shape (`sluice model synth`). */
#ifndef SLUICE_SYNTH_H
#define SLUICE_SYNTH_H

#include <stdint.h>

typedef struct synth_opts {
	const char *out;        /* the file written */
	const char *vocab;      /* a GGUF whose tokenizer is copied; NULL: the tiny one */
	uint64_t dim, layers, heads, kv_heads, ff, ctx;
	uint64_t vocab_size;    /* 0: the tokenizer's; else it must agree */
	uint64_t seed;
	uint32_t type;          /* ggml type of the weights (norms are f32) */
	uint32_t file_type;     /* general.file_type that goes with it */
	double rope_base;
	int tied;               /* output.weight is token_embd.weight */
} synth_opts;
#define SYNTH_OPTS_DEFAULT {"synth.gguf", 0, 64, 2, 4, 2, 128, 256, 0, 1, 0, 0, 10000, 1}

/* Writes the model o describes; the caller has checked the shape (dim a
 * multiple of heads with an even head size, heads of kv_heads, dim and ff
 * of the type's block size). 0 ok; -1 after "fatal: unable to write OUT:
 * ..." on stderr. Dies 111 when o->vocab cannot be read, 100 when
 * o->vocab_size differs from its tokenizer's. */
int synth_write(const synth_opts *o);

#endif
