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

/* Which positions of a chunk are scored. PPL_HALF: llama-perplexity's
 * rule, only the second half (the logits of positions ctx/2 .. ctx-2, each
 * predicting the next token), so every scored token has at least ctx/2 of
 * context; and, for a model that adds BOS, BOS before the text and in place
 * of every chunk's first token. PPL_ALL: positions 1 .. ctx-1 of every
 * chunk, the text as it tokenizes. */
enum { PPL_HALF, PPL_ALL };

typedef struct ppl_result {
	double ppl;              /* exp(mean NLL) */
	double err;              /* its standard error, as llama-perplexity's "+/-":
				    ppl * sqrt(var(NLL) / (scored - 1)) */
	double nll_sum;
	size_t tokens, scored;   /* the text's tokens (with the BOS added), those scored */
} ppl_result;

/* Perplexity of ids[0..n) in chunks of ctx tokens (the last partial chunk
 * dropped), scoring as `score` says. bos: the token put first in each chunk,
 * -1 none. r->scored 0: the text is shorter than a chunk. */
void ppl_tokens(const model *m, const backend *be, int threads, const uint32_t *ids, size_t n,
		uint32_t ctx, int score, int64_t bos, ppl_result *r);

/* The same on a text file tokenized with the model's vocabulary (no
 * special tokens; BOS first under PPL_HALF when the model adds one): 0 ok,
 * -1 with err when the model or the file cannot be read. */
int ppl_file(const char *model_path, const backend *be, int threads, const char *text_path,
	     uint32_t ctx, int score, ppl_result *r, char *err, size_t errlen);

#endif
