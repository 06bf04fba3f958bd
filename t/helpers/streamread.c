/* streamread: the machine's memory read bandwidth, for t/perf/infer.py's
 * decode roof. T threads each read their share of a buffer larger than the
 * last-level cache with 32-byte loads (AVX2 where the CPU has it), the
 * pass timed from the first thread's start to the last one's end; prints
 * the median of P passes in GB/s (10^9 bytes a second) on stdout.
 *
 *   streamread [-t threads] [-m MiB] [-p passes]   (2, 1024, 7)
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "die.h"

#define USAGE "streamread [-t threads] [-m MiB] [-p passes]"

typedef struct part {
	const uint64_t *p;
	size_t n;               /* 64-bit words */
	pthread_barrier_t *go;
	uint64_t sum;           /* kept, so the reads are not optimised away */
} part;

__attribute__((target("avx2"))) static uint64_t
read_avx2(const uint64_t *p, size_t n)
{
	__m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
	uint64_t out[4];
	size_t i;

	for (i = 0; i + 16 <= n; i += 16) {
		a = _mm256_add_epi64(a, _mm256_load_si256((const __m256i *)(p + i)));
		b = _mm256_add_epi64(b, _mm256_load_si256((const __m256i *)(p + i + 4)));
		c = _mm256_add_epi64(c, _mm256_load_si256((const __m256i *)(p + i + 8)));
		d = _mm256_add_epi64(d, _mm256_load_si256((const __m256i *)(p + i + 12)));
	}
	a = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
	_mm256_storeu_si256((__m256i *)out, a);
	return out[0] + out[1] + out[2] + out[3];
}

static uint64_t
read_plain(const uint64_t *p, size_t n)
{
	uint64_t a = 0, b = 0, c = 0, d = 0;
	size_t i;

	for (i = 0; i + 4 <= n; i += 4) {
		a += p[i];
		b += p[i + 1];
		c += p[i + 2];
		d += p[i + 3];
	}
	return a + b + c + d;
}

static void *
reader(void *arg)
{
	part *w = arg;

	pthread_barrier_wait(w->go);
	w->sum = __builtin_cpu_supports("avx2") ? read_avx2(w->p, w->n) : read_plain(w->p, w->n);
	return NULL;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	int c, threads = 2, passes = 7;
	size_t mib = 1024, words, i;
	uint64_t *buf, sum = 0;
	double *gbs;

	die_init(argv[0]);
	while ((c = getopt(argc, argv, "t:m:p:h")) != -1)
		switch (c) {
		case 't': threads = atoi(optarg); break;
		case 'm': mib = (size_t)atol(optarg); break;
		case 'p': passes = atoi(optarg); break;
		case 'h': printf("usage: %s\n", USAGE); return 0;
		default: die_usage(USAGE);
		}
	if (threads < 1 || threads > 256 || mib < 1 || mib > (1 << 20) || passes < 1 || passes > 1000)
		die_usage(USAGE);
	words = mib << 17;   /* MiB / 8 bytes */
	if (posix_memalign((void **)&buf, 64, words * 8))
		die_x(EXIT_SYS, "unable to allocate %zu MiB", mib);
	for (i = 0; i < words; i++)   /* touched: every page is real memory */
		buf[i] = i;
	gbs = xcalloc((size_t)passes, sizeof *gbs);
	for (int k = 0; k < passes; k++) {
		pthread_t th[256];
		part w[256];
		pthread_barrier_t go;
		double t0;

		pthread_barrier_init(&go, NULL, (unsigned)threads + 1);
		for (int j = 0; j < threads; j++) {
			size_t a = words * j / threads & ~(size_t)15, b = words * (j + 1) / threads & ~(size_t)15;
			w[j] = (part){ buf + a, b - a, &go, 0 };
			if (pthread_create(&th[j], NULL, reader, &w[j]))
				die_x(EXIT_SYS, "unable to start a thread");
		}
		pthread_barrier_wait(&go);
		t0 = now();
		for (int j = 0; j < threads; j++) {
			pthread_join(th[j], NULL);
			sum += w[j].sum;
		}
		gbs[k] = (double)(words * 8) / (now() - t0) / 1e9;
		pthread_barrier_destroy(&go);
	}
	qsort(gbs, (size_t)passes, sizeof *gbs, cmp);
	printf("%.2f\n", gbs[passes / 2]);
	fprintf(stderr, "streamread: %zu MiB, %d threads, %d passes: median %.2f GB/s, min %.2f, max %.2f (sum %llu)\n",
		mib, threads, passes, gbs[passes / 2], gbs[0], gbs[passes - 1], (unsigned long long)sum);
	free(gbs);
	free(buf);
	return 0;
}
