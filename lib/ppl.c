/* ppl: perplexity with a backend (see ppl.h): the text's chunks as
 * parallel sequences through lib/scheduler, scored from the logits of
 * every position. */
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

size_t
ppl_tokens(const model *m, const backend *be, int threads, const uint32_t *ids, size_t n, uint32_t ctx,
	   double *ppl, double *nll_sum)
{
	uint32_t nchunks = (uint32_t)(n / ctx), bs = 16, par, nb, i, next = 0;
	size_t scored = 0;
	double nll = 0;
	sched_opts so;
	sched *s;
	void *bk;
	char err[256];
	uint32_t *row;   /* per chunk: the next position whose logits are due */

	*ppl = *nll_sum = 0;
	if (nchunks == 0)
		return 0;
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
	row = xcalloc(nchunks, sizeof *row);
	for (;;) {
		sched_batch *b;
		sched_seq **qs;
		uint32_t nq;

		while (next < nchunks && sched_n_running(s) + sched_n_waiting(s) < par) {
			sched_add(s, (void *)(uintptr_t)next, ids + (size_t)next * ctx, ctx, 0, 0, 1);
			next++;
		}
		if (!(b = sched_step(s)))
			break;
		be->forward(bk, b);
		sched_done(s);
		qs = sched_stepped(s, &nq);
		for (i = 0; i < nq; i++) {
			sched_seq *q = qs[i];
			uint32_t k, ch;

			if (!q || !q->n_out)
				continue;
			ch = (uint32_t)(uintptr_t)q->ud;
			for (k = 0; k < q->n_out; k++) {
				uint32_t pos = q->n_done - q->n_out + k;   /* logits of position pos predict pos+1 */
				const float *l = b->logits + (size_t)(q->out + k) * m->n_vocab;
				double mx = -INFINITY, sum = 0;
				uint32_t v;

				if (pos + 1 >= ctx)
					continue;
				for (v = 0; v < m->n_vocab; v++)
					if (l[v] > mx)
						mx = l[v];
				for (v = 0; v < m->n_vocab; v++)
					sum += exp(l[v] - mx);
				nll += -(l[q->tokens[pos + 1]] - mx - log(sum));
				scored++;
			}
			row[ch] = q->n_done;
			if (q->n_done == q->n_tokens)
				sched_drop(s, q);
		}
		if (isatty(2))
			fprintf(stderr, "\rperplexity: %zu/%zu tokens scored", scored,
				(size_t)nchunks * (ctx - 1));
	}
	if (isatty(2))
		fputc('\n', stderr);
	free(row);
	be->close(bk);
	sched_free(s);
	*nll_sum = nll;
	*ppl = scored ? exp(nll / scored) : 0;
	return scored;
}

int
ppl_file(const char *model_path, const backend *be, int threads, const char *text_path, uint32_t ctx,
	 double *ppl, double *nll_sum, size_t *n_tokens, size_t *scored, char *err, size_t errlen)
{
	tok_ids ids = TOK_IDS_INIT;
	char *text, e2[256];
	size_t n;
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
	if (tok_encode(m.tok, text, n, 0, 0, &ids) < 0)
		die_x(EXIT_SYS, "unable to tokenize: out of memory");
	free(text);
	*n_tokens = ids.n;
	*scored = ppl_tokens(&m, be, threads, ids.v, ids.n, ctx, ppl, nll_sum);
	tok_ids_free(&ids);
	model_close(&m);
	return 0;
}
