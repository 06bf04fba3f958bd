/* cpu: the CPU backend: runs a scheduler step (sched_batch) through the
 * model: embedding, RMSNorm, RoPE, GQA attention over the paged F16 K/V
 * cache, SwiGLU, output logits; matrix products in lib/dot, spread over a
 * thread pool. */
#ifndef SLUICE_CPU_H
#define SLUICE_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "model.h"
#include "scheduler.h"

typedef struct cpu cpu;

/* Bytes of K and V for one block of block_size tokens, all layers. */
size_t cpu_block_bytes(const model *m, uint32_t block_size);
/* A backend for m with a cache of n_blocks blocks, steps of at most
 * max_tokens tokens and max_out logits rows, sequences of at most max_ctx
 * tokens, threads threads. NULL with err when memory cannot be had. */
cpu *cpu_new(const model *m, uint32_t n_blocks, uint32_t block_size, uint32_t max_tokens,
	     uint32_t max_out, uint32_t max_ctx, int threads, char *err, size_t errlen);
void cpu_free(cpu *c);
/* cpu as a backend (infer-cpu, quantize --eval). */
extern const backend cpu_backend;

/* "2 threads, AVX2" */
const char *cpu_describe(cpu *c);
/* Runs one step. */
void cpu_forward(cpu *c, sched_batch *b);

#endif
