/* infer-gpu: the sluice engine on an NVIDIA GPU (the kernels of kernels/):
 * the same requests, events, options and readiness as infer-cpu (see
 * infer-gpu(1)). Built where nvcc is found. */
#include "gpu.h"
#include "infer.h"

int
main(int argc, char **argv)
{
	return infer_main(argc, argv, &gpu_backend);
}
