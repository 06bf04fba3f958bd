/* ppl: perplexity of a text under a model, run on a backend: what
 * infer-cpu --perplexity prints and quantize --eval compares before and
 * after. Each chunk starts from an empty cache; the chunks run as
 * parallel sequences. */
#ifndef SLUICE_PPL_H
#define SLUICE_PPL_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "model.h"

/* Perplexity of ids[0..n) in chunks of ctx tokens (the last partial chunk
 * dropped), scoring positions 1..ctx-1 of each: exp(mean of -log p(token |
 * the chunk before it)). Returns the scored count (0: text shorter than a
 * chunk) and sets *ppl and *nll_sum. */
size_t ppl_tokens(const model *m, const backend *be, int threads, const uint32_t *ids, size_t n,
		  uint32_t ctx, double *ppl, double *nll_sum);

/* The same on a text file tokenized with the model's vocabulary (no BOS,
 * no special tokens): 0 ok (*scored 0: shorter than a chunk), -1 with err
 * when the model or the file cannot be read. */
int ppl_file(const char *model_path, const backend *be, int threads, const char *text_path,
	     uint32_t ctx, double *ppl, double *nll_sum, size_t *n_tokens, size_t *scored,
	     char *err, size_t errlen);

#endif
