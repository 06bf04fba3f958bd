/* gpu: the CUDA backend: runs a scheduler step (sched_batch) on an NVIDIA
 * GPU with the kernels of kernels/: weights uploaded once, the paged F16
 * K/V cache in device memory; the logits rows come back to the host. */
#ifndef SLUICE_GPU_H
#define SLUICE_GPU_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "backend.h"
#include "model.h"
#include "scheduler.h"

typedef struct gpu gpu;

/* Bytes of K and V for one block of bs tokens, all layers (as the CPU's). */
size_t gpu_block_bytes(const model *m, uint32_t bs);
/* The backend on the first CUDA device (CUDA_VISIBLE_DEVICES picks it):
 * NULL with err when there is no device or driver, or the model, the
 * cache and a step's rows do not fit in its free memory. */
gpu *gpu_new(const model *m, uint32_t n_blocks, uint32_t bs, uint32_t max_tokens, uint32_t max_out,
	     uint32_t max_ctx, char *err, size_t errlen);
void gpu_free(gpu *g);
/* "CUDA device 0, NVIDIA H100, 98.4 MB of weights on it" */
const char *gpu_describe(gpu *g);
/* Runs one step; b->logits (host memory) gets the rows asked for. */
void gpu_forward(gpu *g, sched_batch *b);
/* gpu as a backend (infer-gpu) */
extern const backend gpu_backend;

#ifdef __cplusplus
}
#endif

#endif
