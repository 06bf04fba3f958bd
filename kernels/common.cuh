/* common: what every kernel file shares: CUDA_CHECK (every CUDA call goes
 * through it), the weight-matrix view, and the ggml type ids (lib/quant.h).
 * Host code calls the launchers declared in the .cuh of each operation;
 * gpu.cu is the one place that strings them into a forward pass. */
#ifndef SLUICE_KERNELS_COMMON_CUH
#define SLUICE_KERNELS_COMMON_CUH

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime.h>

extern "C" {
#include "quant.h"
}

/* A failed CUDA call: "infer-gpu: fatal: unable to <what>: <cuda's
 * message>" on stderr, exit 111 (the house's system-failure code). The
 * launchers are called between a step's start and its end, where nothing
 * can be undone, so failing loudly is the only safe answer. */
#define CUDA_CHECK(call, what) kgpu_check((call), (what), __FILE__, __LINE__)
void kgpu_check(cudaError_t e, const char *what, const char *file, int line);
/* after a launch: the launch's own error (bad configuration) */
#define CUDA_LAUNCHED(what) CUDA_CHECK(cudaGetLastError(), (what))

/* A weight matrix on the device, as in the GGUF file: rows of cols values,
 * row r at data + r * row_bytes, in ggml type `type` (QUANT_*). */
typedef struct kmat {
	const void *data;
	uint32_t type;
	uint32_t rows;          /* output features */
	uint32_t cols;          /* input features */
	size_t row_bytes;
} kmat;

#endif
