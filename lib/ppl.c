/* ppl: perplexity with a backend (see ppl.h): the text's chunks as
 * parallel sequences through lib/scheduler, scored from the logits of the
 * second half of each (llama-perplexity's rule) or of every position. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "die.h"
#include "ppl.h"

static int
read_text(const char *path, char **buf, size_t *n)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 1 << 16;

	if (!f)
		return -1;
	*buf = xmalloc(cap);
	*n = 0;
	for (;;) {
		size_t r = fread(*buf + *n, 1, cap - *n, f);
		*n += r;
		if (*n < cap)
			break;
		if (cap >= ((size_t)1 << 30)) {
			errno = EFBIG;
			fclose(f);
			return -1;
		}
		cap *= 2;
		*buf = xrealloc(*buf, cap);
	}
	if (ferror(f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

void
ppl_tokens(const model *m, const backend *be, int threads, const uint32_t *ids, size_t n, uint32_t ctx,
	   int score, int64_t bos, ppl_result *res)
{
	uint32_t nchunks = (uint32_t)(n / ctx), bs = 16, par, nb, i, next = 0;
	uint32_t first = score == PPL_HALF ? ctx / 2 : 0;   /* the first position whose logits count */
	size_t scored = 0;
	double nll = 0, nll2 = 0;
	sched_opts so;
	sched *s;
	void *bk;
	char err[256];
	uint32_t *chunk = NULL;   /* the chunk being run, its first token BOS */

	memset(res, 0, sizeof *res);
	res->tokens = n;
	if (nchunks == 0)
		return;
	par = nchunks < 8 ? nchunks : 8;
	nb = par * ((ctx + bs - 1) / bs) + 1;
	memset(&so, 0, sizeof so);
	so.n_blocks = nb;
	so.block_size = bs;
	so.max_seqs = 256;          /* also the logits rows of a step */
	so.max_batch_tokens = 512;
	so.max_ctx = ctx + 1;
	so.caching = 0;
	so.n_vocab = m->n_vocab;
	s = sched_new(&so);
	if (!s)
		die_x(EXIT_SYS, "unable to start the scheduler for %u-token chunks", ctx);
	bk = be->open(m, nb, bs, 512, 256, ctx + 1, threads, err, sizeof err);
	if (!bk)
		die_x(EXIT_SYS, "unable to start the %s backend: %s", be->name, err);
	if (bos >= 0)
		chunk = xcalloc((size_t)nchunks * ctx, sizeof *chunk);
	for (;;) {
		sched_batch *b;
		sched_seq **qs;
		uint32_t nq;

		while (next < nchunks && sched_n_running(s) + sched_n_waiting(s) < par) {
			const uint32_t *c = ids + (size_t)next * ctx;
			if (chunk) {
				memcpy(chunk + (size_t)next * ctx, c, ctx * sizeof *c);
				chunk[(size_t)next * ctx] = (uint32_t)bos;
				c = chunk + (size_t)next * ctx;
			}
			sched_add(s, (void *)(uintptr_t)next, c, ctx, 0, 0, first);   /* no logits before first */
			next++;
		}
		if (!(b = sched_step(s)))
			break;
		be->forward(bk, b);
		sched_done(s);
		qs = sched_stepped(s, &nq);
		for (i = 0; i < nq; i++) {
			sched_seq *q = qs[i];
			uint32_t k;

			if (!q || !q->n_out)
				continue;
			for (k = 0; k < q->n_out; k++) {
				uint32_t pos = q->n_done - q->n_out + k;   /* logits of position pos predict pos+1 */
				const float *l = b->logits + (size_t)(q->out + k) * m->n_vocab;
				double mx = -INFINITY, sum = 0, v;
				uint32_t t;

				if (pos + 1 >= ctx)
					continue;   /* the last position predicts nothing here */
				for (t = 0; t < m->n_vocab; t++)
					if (l[t] > mx)
						mx = l[t];
				for (t = 0; t < m->n_vocab; t++)
					sum += exp(l[t] - mx);
				v = -(l[q->tokens[pos + 1]] - mx - log(sum));
				nll += v;
				nll2 += v * v;
				scored++;
			}
			if (q->n_done == q->n_tokens)
				sched_drop(s, q);
		}
		if (isatty(2))
			fprintf(stderr, "\rperplexity: %zu/%zu tokens scored", scored,
				(size_t)nchunks * (ctx - 1 - first));
	}
	if (isatty(2))
		fputc('\n', stderr);
	free(chunk);
	be->close(bk);
	sched_free(s);
	res->nll_sum = nll;
	res->scored = scored;
	if (scored) {
		double mean = nll / scored, var = nll2 / scored - mean * mean;
		res->ppl = exp(mean);
		res->err = scored > 1 && var > 0 ? res->ppl * sqrt(var / (scored - 1)) : 0;
	}
}

int
ppl_file(const char *model_path, const backend *be, int threads, const char *text_path, uint32_t ctx,
	 int score, ppl_result *r, char *err, size_t errlen)
{
	tok_ids ids = TOK_IDS_INIT;
	char *text, e2[256];
	size_t n;
	int64_t bos = -1;
	model m;

	if (model_open(&m, model_path, be->supports, e2, sizeof e2) < 0) {
		seterr(err, errlen, "unable to load %s: %s", model_path, e2);
		return -1;
	}
	if (read_text(text_path, &text, &n) < 0) {
		seterr(err, errlen, "unable to read %s: %s", text_path, strerror(errno));
		model_close(&m);
		return -1;
	}
	if (score == PPL_HALF && tok_add_bos(m.tok) && tok_bos(m.tok) >= 0)
		bos = tok_bos(m.tok);
	/* as llama-perplexity tokenizes: with the model's special tokens
	 * added (its BOS), none parsed from the text */
	if (tok_encode(m.tok, text, n, score == PPL_HALF, 0, &ids) < 0)
		die_x(EXIT_SYS, "unable to tokenize: out of memory");
	free(text);
	ppl_tokens(&m, be, threads, ids.v, ids.n, ctx, score, bos, r);
	tok_ids_free(&ids);
	model_close(&m);
	return 0;
}
