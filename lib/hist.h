/* hist: the latency histograms every sluice daemon keeps and `metrics`
 * serves, with vLLM's names and bucket bounds (vllm/v1/metrics/loggers.py),
 * and their msgpack form in the stats answer (notes-team/stats-spec.md). */
#ifndef SLUICE_HIST_H
#define SLUICE_HIST_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>

typedef enum { HIST_TTFT, HIST_ITL, HIST_E2E, HIST_QUEUE, HIST_INFERENCE,
	       HIST_PREFILL, HIST_DECODE, HIST_N } hist_kind;

#define HIST_MAXB 24   /* bucket bounds of the longest kind (TTFT has 22) */

/* counts[i] holds the observations in (le[i-1], le[i]] (non-cumulative),
 * counts[nbounds] those above the last bound (+Inf); the rest stay 0. */
typedef struct hist {
	uint64_t count;                    /* observations */
	double sum;                        /* of their values */
	uint64_t counts[HIST_MAXB + 1];    /* per bucket, then +Inf */
} hist;
#define HIST_ZERO {0, 0, {0}}

/* "time_to_first_token_seconds", ...; NULL for a kind out of range. */
const char *hist_name(hist_kind k);
/* Sets *le to vLLM's upper bounds for k, ascending, and returns how many
 * (0 and *le NULL for a kind out of range). */
size_t hist_bounds(hist_kind k, const double **le);
/* Counts v (seconds) in h, a histogram of kind k. A NaN or infinite v is
 * ignored; a negative one falls in the first bucket. */
void hist_observe(hist *h, hist_kind k, double v);
/* packs map name -> {sum, count, counts} for the HIST_N histograms hs[0..HIST_N) */
void hist_pack(msgpack_packer *pk, const hist hs[HIST_N]);
/* reads such a map back (unknown names skipped; a wrong shape is -1).
 * A known histogram's value must be a map with "sum" (a finite number),
 * "count" and "counts" (one unsigned integer per bucket and one for +Inf,
 * adding up to count); other keys in it are skipped. hs is written only
 * on success, and the histograms absent from the map are then zero. */
int hist_unpack(const msgpack_object *o, hist hs[HIST_N]);

/* Sorts v[0..n) ascending, in place. */
void hist_sort(double *v, size_t n);
/* The p-th percentile (0..100) of sorted v[0..n), n >= 1, as numpy's
 * default ("linear": between the two closest ranks), which is what vLLM's
 * and GuideLLM's reports use. */
double hist_percentile(const double *v, size_t n, double p);

#endif
