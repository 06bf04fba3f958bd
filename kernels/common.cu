/* common: CUDA_CHECK's failure path, shared by every kernel file. */
#include <stdio.h>
#include <stdlib.h>

#include "common.cuh"

void
kgpu_check(cudaError_t e, const char *what, const char *file, int line)
{
	if (e == cudaSuccess)
		return;
	fprintf(stderr, "infer-gpu: fatal: unable to %s: %s (%s:%d)\n", what, cudaGetErrorString(e), file, line);
	exit(111);
}
