/* gputest: what the kernel tests (t/helpers/gputest-*.cu) share: a seeded
 * generator, device buffers from and to vectors, NMSE (ggml's
 * test-backend-ops measure), and the skip when CUDA sees no device. Each
 * test includes it once, after defining GPUTEST_SEED. */
#ifndef SLUICE_GPUTEST_CUH
#define SLUICE_GPUTEST_CUH

#include <stdio.h>

#include <vector>

#include "common.cuh"

using std::vector;

static cudaStream_t st;

/* splitmix64: the same numbers on every machine */
static uint64_t rng_state = GPUTEST_SEED;

static uint64_t
rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* uniform in [-a, a) */
static float
urand(float a)
{
	return a * (float)((double)(rng() >> 11) * 0x1p-53 * 2.0 - 1.0);
}

template <class T>
static T *
dev_put(const vector<T> &h)
{
	void *d = 0;

	CUDA_CHECK(cudaMalloc(&d, h.size() ? h.size() * sizeof(T) : 16), "allocate device memory");
	if (h.size())
		CUDA_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice), "copy to the device");
	return (T *)d;
}

template <class T>
static void
dev_get(vector<T> &h, const T *d)
{
	CUDA_CHECK(cudaMemcpy(h.data(), d, h.size() * sizeof(T), cudaMemcpyDeviceToHost), "copy from the device");
}

static void
dev_free(const void *d)
{
	CUDA_CHECK(cudaFree((void *)d), "free device memory");
}

static void
sync(const char *what)
{
	CUDA_CHECK(cudaStreamSynchronize(st), what);
}

/* NaN when anything is NaN, so that "nmse <= tol" fails */
struct nmse_acc {
	double num = 0, den = 0;

	void add(double g, double r)
	{
		num += (g - r) * (g - r);
		den += r * r;
	}
	double nmse() const
	{
		return den > 0 ? num / den : num;
	}
};

/* 0 and the stream made when CUDA sees a device; else the TAP skip plan
 * with CUDA's reason, and -1 (the test then exits 0) */
static int
gputest_start(void)
{
	int ndev = 0;
	cudaError_t e = cudaGetDeviceCount(&ndev);

	if (e != cudaSuccess || ndev == 0) {
		printf("1..0 # SKIP no CUDA device (%s)\n", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
		return -1;
	}
	CUDA_CHECK(cudaStreamCreate(&st), "create a stream");
	return 0;
}

#endif
