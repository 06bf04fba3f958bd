/* sample: choosing the next token from logits, per request: greedy,
 * temperature, top-k, top-p, min-p, repeat/presence/frequency penalties,
 * and top-n log-probabilities. Each request has its own seeded RNG, so the
 * same request gives the same tokens alone or in any batch. */
#ifndef SLUICE_SAMPLE_H
#define SLUICE_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct sample_params {
	float temperature;       /* <= 0: greedy (argmax; the lowest id wins a tie) */
	uint32_t top_k;          /* 0: off */
	float top_p;             /* 1: off */
	float min_p;             /* 0: off */
	float repeat_penalty;    /* 1: off; llama.cpp's rule: logit > 0 ? l / p : l * p */
	float presence_penalty;  /* 0: off; OpenAI's rule: l -= presence * (count > 0) */
	float frequency_penalty; /* 0: off; l -= frequency * count */
	uint32_t penalty_last_n; /* tokens of history the penalties look at (64; 0: none) */
	uint64_t seed;
	uint32_t n_logprobs;     /* top alternatives reported per token (0: none; capped at 20) */
} sample_params;
/* OpenAI's and llama.cpp's defaults: temperature 1 is the API default, but a
 * request without "temperature" is greedy here only if the caller says so. */
#define SAMPLE_PARAMS_DEFAULT {1.0f, 0, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 64, 0, 0}

/* xoshiro256** state, seeded with splitmix64 from the request's seed. */
typedef struct sample_rng { uint64_t s[4]; } sample_rng;
void sample_seed(sample_rng *r, uint64_t seed);
uint64_t sample_next(sample_rng *r);
double sample_uniform(sample_rng *r);   /* [0, 1) with 53 bits */

/* Scratch space reused between calls (one per thread that samples). */
typedef struct sample_ws {
	float *val;              /* n_vocab */
	uint32_t *idx;           /* n_vocab */
	size_t cap;
} sample_ws;
#define SAMPLE_WS_ZERO {0, 0, 0}
void sample_ws_free(sample_ws *w);

/* What was chosen, with its log-probability under the model's distribution
 * (log-softmax of the raw logits, before penalties and temperature, as
 * OpenAI reports it) and the top alternatives by that same measure. */
typedef struct sample_out {
	uint32_t token;
	float logprob;
	uint32_t n_top;
	uint32_t top_id[20];
	float top_lp[20];
} sample_out;

/* Picks the next token from logits[0..n_vocab) (the array is modified:
 * penalties, temperature and filters are applied in place, in llama.cpp's
 * order: penalties, top-k, top-p, min-p, temperature, then a draw).
 * hist[0..n_hist) are the tokens so far (prompt and generated), used by the
 * penalties (the last penalty_last_n of them). */
void sample_token(const sample_params *p, sample_rng *r, sample_ws *w,
		  float *logits, uint32_t n_vocab, const uint32_t *hist, size_t n_hist,
		  sample_out *out);

#endif
