/* backend: the interface a backend implements, and all it knows of the
 * engine: which weight types it can multiply, the KV bytes of a block, and
 * "run this scheduler step forward" on its own state. lib/cpu.c and
 * kernels/ implement it; lib/engine.c and lib/ppl.c drive it. */
#ifndef SLUICE_BACKEND_H
#define SLUICE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "scheduler.h"

typedef struct backend {
	const char *name;        /* "cpu" */
	/* 1: weights of this ggml type can run here (the model loader asks) */
	int (*supports)(uint32_t ggml_type);
	/* KV bytes of one block of bs tokens (all layers, K and V) */
	size_t (*block_bytes)(const model *m, uint32_t bs);
	/* its state for m: a cache of n_blocks blocks of bs tokens, steps of
	 * at most max_tokens tokens and max_out logits rows, sequences of at
	 * most max_ctx tokens; NULL with err */
	void *(*open)(const model *m, uint32_t n_blocks, uint32_t bs, uint32_t max_tokens,
		      uint32_t max_out, uint32_t max_ctx, int threads, char *err, size_t errlen);
	void (*forward)(void *be, sched_batch *b);   /* b->logits filled */
	void (*close)(void *be);
	const char *(*describe)(void *be);   /* "2 threads, AVX2" for the load summary */
} backend;

#endif
