/* fwdtest: runs token ids through the CPU forward pass and writes or checks
 * the logits, for the tests that hold the engine against llama.cpp's own
 * logits (the .f32 files in t/infer).
 *   fwdtest -m MODEL [-a] [-c CHUNK] [-t N] [-o OUT.f32] [-r REF.f32 [-M MAX] [-A MEAN]] ID...
 * -a: logits of every position (else the last one's); -c: feed the prompt
 * in steps of CHUNK tokens (chunked prefill must not change anything);
 * -r: compare with REF and print "max_abs X mean_abs Y argmax A/N"; exit 1
 * when max_abs > MAX or mean_abs > MEAN or an argmax differs (-g to allow). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu.h"
#include "die.h"

#define USAGE "fwdtest -m MODEL [-a] [-g] [-c CHUNK] [-t N] [-o OUT] [-r REF [-M MAX] [-A MEAN]] ID..."

int
main(int argc, char **argv)
{
	const char *path = 0, *out = 0, *ref = 0;
	int all = 0, threads = 2, c, allow_argmax = 0;
	uint32_t chunk = 0, n, i, *toks, nb, *blocks, nrows, done;
	double tmax = INFINITY, tmean = INFINITY;
	float *lg;
	char err[512];
	model m;
	cpu *cp;

	die_init(argv[0]);
	while ((c = getopt(argc, argv, "m:ac:t:o:r:M:A:g")) != -1) {
		switch (c) {
		case 'm': path = optarg; break;
		case 'a': all = 1; break;
		case 'g': allow_argmax = 1; break;
		case 'c': chunk = (uint32_t)atoi(optarg); break;
		case 't': threads = atoi(optarg); break;
		case 'o': out = optarg; break;
		case 'r': ref = optarg; break;
		case 'M': tmax = atof(optarg); break;
		case 'A': tmean = atof(optarg); break;
		default: die_usage(USAGE);
		}
	}
	if (!path || optind >= argc)
		die_usage(USAGE);
	n = (uint32_t)(argc - optind);
	toks = xmalloc(n * sizeof *toks);
	for (i = 0; i < n; i++)
		toks[i] = (uint32_t)strtoul(argv[optind + i], 0, 10);
	if (model_open(&m, path, cpu_backend.supports, err, sizeof err) < 0)
		die_x(EXIT_SYS, "unable to load %s: %s", path, err);
	for (i = 0; i < n; i++)
		if (toks[i] >= m.n_vocab)
			die_x(EXIT_USAGE, "token %u is not in the vocabulary", toks[i]);
	if (!chunk || chunk > n)
		chunk = n;
	nb = (n + 15) / 16;
	blocks = xmalloc(nb * sizeof *blocks);
	for (i = 0; i < nb; i++)
		blocks[i] = nb - 1 - i;   /* not in order: the block table must be followed */
	nrows = all ? n : 1;
	cp = cpu_new(&m, nb, 16, chunk, all ? chunk : 1, n, threads, err, sizeof err);
	if (!cp)
		die_x(EXIT_SYS, "%s", err);
	lg = xmalloc((size_t)nrows * m.n_vocab * sizeof *lg);
	for (done = 0; done < n; done += chunk) {
		uint32_t k = n - done < chunk ? n - done : chunk;
		sched_part p = { blocks, done, k, 0, all ? k : (done + k == n), 0 };
		sched_batch b = { k, toks + done, 1, &p, p.n_logits,
				  lg + (size_t)(all ? done : 0) * m.n_vocab };
		cpu_forward(cp, &b);
	}
	if (out) {
		FILE *f = fopen(out, "wb");
		if (!f || fwrite(lg, sizeof *lg, (size_t)nrows * m.n_vocab, f) != (size_t)nrows * m.n_vocab
		    || fclose(f))
			die_sys("unable to write %s", out);
	}
	if (ref) {
		FILE *f = fopen(ref, "rb");
		float *r = xmalloc((size_t)nrows * m.n_vocab * sizeof *r);
		double mx = 0, sum = 0;
		uint32_t agree = 0, row, v;

		if (!f || fread(r, sizeof *r, (size_t)nrows * m.n_vocab, f) != (size_t)nrows * m.n_vocab)
			die_sys("unable to read %u rows of logits from %s", nrows, ref);
		fclose(f);
		for (row = 0; row < nrows; row++) {
			const float *a = lg + (size_t)row * m.n_vocab, *b = r + (size_t)row * m.n_vocab;
			uint32_t ia = 0, ib = 0;
			for (v = 0; v < m.n_vocab; v++) {
				double d = fabs((double)a[v] - b[v]);
				if (!(d <= mx))
					mx = d;
				sum += d;
				if (a[v] > a[ia])
					ia = v;
				if (b[v] > b[ib])
					ib = v;
			}
			agree += ia == ib;
		}
		printf("max_abs %.6f mean_abs %.6f argmax %u/%u\n", mx, sum / ((double)nrows * m.n_vocab),
		       agree, nrows);
		free(r);
		if (mx > tmax || sum / ((double)nrows * m.n_vocab) > tmean || (!allow_argmax && agree != nrows))
			return 1;
	}
	free(lg);
	free(blocks);
	free(toks);
	cpu_free(cp);
	model_close(&m);
	return 0;
}
