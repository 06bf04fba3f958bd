/* infer: the engine program that infer-cpu (and infer-gpu) run: options,
 * requests in from any endpoint, continuous batching through lib/sched, a
 * backend's forward pass, sampling, stop strings, and token events out.
 * A backend only implements "run this batch forward". */
#ifndef SLUICE_INFER_H
#define SLUICE_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "model.h"

/* The whole program; returns the exit status. */
int infer_main(int argc, char **argv, const backend *be);

/* Perplexity of ids[0..n) in chunks of ctx tokens (the last partial chunk
 * dropped), each chunk from an empty cache, scoring positions 1..ctx-1:
 * exp(mean of -log p(token | the chunk before it)). The chunks run as
 * parallel sequences. Returns the scored count (0: text shorter than a
 * chunk) and sets *ppl and *nll_sum. */
size_t infer_perplexity(const model *m, const backend *be, int threads, const uint32_t *ids,
			size_t n, uint32_t ctx, double *ppl, double *nll_sum);

/* The same on a text file tokenized with the model's vocabulary (no BOS,
 * no special tokens): 0 ok (*scored 0: shorter than a chunk), -1 with err
 * when the model or the file cannot be read. */
int infer_perplexity_file(const char *model_path, const backend *be, int threads,
			  const char *text_path, uint32_t ctx, double *ppl, double *nll_sum,
			  size_t *n_tokens, size_t *scored, char *err, size_t errlen);

#endif
