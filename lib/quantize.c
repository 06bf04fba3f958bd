/* quantize: converts the weights of a GGUF model to other ggml types, one
 * tensor at a time, as llama.cpp's quantizer would: the same choice of type
 * per tensor (llama_tensor_get_type for the mixes we can make), the same
 * fallback when a row does not fit a type's block, the same metadata; and it
 * measures what the conversion cost: RMSE and max abs error per tensor.
 *
 * Memory: the input is mapped and read in chunks of rows; the pages of a
 * chunk are dropped (MADV_DONTNEED) once it is written, so the resident set
 * stays at a chunk of output, a few rows of F32 scratch per thread and the
 * metadata, whatever the size of the model. */
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "die.h"
#include "gguf.h"
#include "quant.h"
#include "quantize.h"

/* llama_ftype values (llama.h), written as general.file_type */
enum {
	FT_F32 = 0, FT_F16 = 1, FT_Q4_0 = 2, FT_Q4_1 = 3, FT_Q8_0 = 7, FT_Q5_0 = 8,
	FT_Q5_1 = 9, FT_Q4_K_S = 14, FT_Q4_K_M = 15, FT_Q6_K = 18, FT_BF16 = 32,
};

enum { MIX_NONE, MIX_Q4_K_M, MIX_Q4_K_S };

/* -t: one type for every matrix weight */
static const struct ttype {
	const char *name;
	uint32_t type;
	uint32_t ftype;
} ttypes[] = {
	{ "f32", QUANT_F32, FT_F32 }, { "f16", QUANT_F16, FT_F16 }, { "bf16", QUANT_BF16, FT_BF16 },
	{ "q8_0", QUANT_Q8_0, FT_Q8_0 }, { "q4_0", QUANT_Q4_0, FT_Q4_0 }, { "q4_1", QUANT_Q4_1, FT_Q4_1 },
	{ "q5_0", QUANT_Q5_0, FT_Q5_0 }, { "q5_1", QUANT_Q5_1, FT_Q5_1 },
	{ "q4_k", QUANT_Q4_K, FT_Q4_K_S }, { "q6_k", QUANT_Q6_K, FT_Q6_K },
};

/* -r: llama.cpp's LLAMA_FTYPE_MOSTLY_* mixes */
static const struct recipe {
	const char *name;
	uint32_t base;          /* the type of most matrices */
	uint32_t ftype;
	int mix;
} recipes[] = {
	{ "f32", QUANT_F32, FT_F32, MIX_NONE }, { "f16", QUANT_F16, FT_F16, MIX_NONE },
	{ "bf16", QUANT_BF16, FT_BF16, MIX_NONE }, { "q8_0", QUANT_Q8_0, FT_Q8_0, MIX_NONE },
	{ "q4_0", QUANT_Q4_0, FT_Q4_0, MIX_NONE }, { "q4_1", QUANT_Q4_1, FT_Q4_1, MIX_NONE },
	{ "q5_0", QUANT_Q5_0, FT_Q5_0, MIX_NONE }, { "q5_1", QUANT_Q5_1, FT_Q5_1, MIX_NONE },
	{ "q4_k_s", QUANT_Q4_K, FT_Q4_K_S, MIX_Q4_K_S }, { "q4_k_m", QUANT_Q4_K, FT_Q4_K_M, MIX_Q4_K_M },
	{ "q6_k", QUANT_Q6_K, FT_Q6_K, MIX_NONE },
};

#define NELEM(a) (sizeof (a) / sizeof (a)[0])

const char *
quantize_types_known(void)
{
	return "f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q6_k";
}

const char *
quantize_recipes_known(void)
{
	return "f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k_s q4_k_m q6_k";
}

int
quantize_recipe_from_name(const char *name)
{
	for (size_t i = 0; i < NELEM(recipes); i++)
		if (!strcasecmp(name, recipes[i].name))
			return (int)i;
	return -1;
}

int
quantize_type_from_name(const char *name)
{
	for (size_t i = 0; i < NELEM(ttypes); i++)
		if (!strcasecmp(name, ttypes[i].name))
			return (int)ttypes[i].type;
	return -1;
}

static const struct ttype *
ttype_find(int type)
{
	for (size_t i = 0; i < NELEM(ttypes); i++)
		if ((int)ttypes[i].type == type)
			return &ttypes[i];
	return NULL;
}

/* ------------------------------------------------------------ the plan */

static int
ends_with(const char *s, const char *suf)
{
	size_t n = strlen(s), k = strlen(suf);
	return n >= k && !memcmp(s + n - k, suf, k);
}

/* ggml_n_dims: trailing dimensions of 1 do not count */
static int
real_dims(const gguf_tensor *t)
{
	int n = 4;
	while (n > 1 && t->ne[n - 1] == 1)
		n--;
	return n;
}

/* tensor_allows_quantization, for the names a llama-family file holds */
static int
is_matrix(const gguf_tensor *t)
{
	const char *n = t->name;

	return real_dims(t) >= 2 && ends_with(n, "weight")
		&& !strstr(n, "_norm.weight") && !strstr(n, "ffn_gate_inp.weight")
		&& strcmp(n, "position_embd.weight") && strcmp(n, "token_types.weight")
		&& !strstr(n, "ssm_conv1d") && !strstr(n, "attn_rel_b.weight");
}

enum { CAT_OTHER, CAT_OUTPUT, CAT_TOKEN_EMBD, CAT_ATTN_V, CAT_FFN_DOWN };

static int
category(const char *n)
{
	if (!strcmp(n, "output.weight"))
		return CAT_OUTPUT;
	if (!strcmp(n, "token_embd.weight"))
		return CAT_TOKEN_EMBD;
	if (strstr(n, "attn_qkv.weight") || strstr(n, "attn_kv_b.weight") || strstr(n, "attn_v.weight"))
		return CAT_ATTN_V;
	if (strstr(n, "ffn_down"))
		return CAT_FFN_DOWN;
	return CAT_OTHER;
}

/* llama.cpp's layer rule for the _M mixes: the first and last eighth of the
 * layers, and every third one between them */
static int
use_more_bits(int i, int n)
{
	return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* the nearest type whose block fits a row of ne0 (tensor_type_fallback) */
static uint32_t
fit(uint32_t want, uint64_t ne0, int *fell)
{
	uint32_t t = want;

	*fell = 0;
	if (ne0 % quant_block_size(want) == 0)
		return want;
	*fell = 1;
	if (want == QUANT_Q4_K)
		t = QUANT_Q5_0;
	else if (want == QUANT_Q6_K)
		t = QUANT_Q8_0;
	if (ne0 % quant_block_size(t))
		t = QUANT_F16;
	return t;
}

static const gguf *sort_g;

static int
layer_of(const char *name)
{
	int l;
	return sscanf(name, "blk.%d.", &l) == 1 ? l : -1;
}

/* llama.cpp's weight_name_comparer: by layer number (tensors outside the
 * blocks first), then by name */
static int
by_layer(const void *a, const void *b)
{
	const char *x = sort_g->tensors[*(const size_t *)a].name, *y = sort_g->tensors[*(const size_t *)b].name;
	int lx = layer_of(x), ly = layer_of(y);

	if (lx != ly)
		return lx < ly ? -1 : 1;
	return strcmp(x, y);
}

int
quantize_plan(const gguf *g, const quantize_opts *o, quantize_item *it,
	uint32_t *file_type, char *err, size_t errlen)
{
	const struct recipe *r = NULL;
	const struct ttype *tt = NULL;
	uint32_t base;
	int mix = MIX_NONE, tied, n_v = 0, n_down = 0, i_v = 0, i_down = 0;
	size_t i, *order;

	if (o->recipe >= 0 && o->recipe < (int)NELEM(recipes)) {
		r = &recipes[o->recipe];
		base = r->base;
		mix = r->mix;
		*file_type = r->ftype;
	} else if ((tt = ttype_find(o->type))) {
		base = tt->type;
		*file_type = tt->ftype;
	} else {
		seterr(err, errlen, "no known type or recipe");
		return -1;
	}
	tied = !gguf_tensor_find(g, "output.weight");
	for (i = 0; i < g->n_tensors; i++) {
		const gguf_tensor *t = &g->tensors[i];
		if (!is_matrix(t))
			continue;
		n_v += category(t->name) == CAT_ATTN_V;
		n_down += category(t->name) == CAT_FFN_DOWN;
	}
	/* llama.cpp walks the tensors in the order of its weight map (by layer,
	 * then name) and counts attn_v and ffn_down tensors as it goes: the
	 * count is the layer index its mixes look at */
	order = xcalloc(g->n_tensors ? g->n_tensors : 1, sizeof *order);
	for (i = 0; i < g->n_tensors; i++)
		order[i] = i;
	sort_g = g;
	qsort(order, g->n_tensors, sizeof *order, by_layer);
	for (i = 0; i < g->n_tensors; i++) {
		const gguf_tensor *t = &g->tensors[order[i]];
		quantize_item *q = &it[order[i]];
		uint32_t want = base;
		size_t k;

		memset(q, 0, sizeof *q);
		q->t = t;
		q->from = q->to = q->want = t->type;
		if (!is_matrix(t)) {
			q->copy = 1;
			continue;
		}
		if (r && quant_block_size(base) > 1) {
			int c = category(t->name);
			if (c == CAT_OUTPUT || (tied && c == CAT_TOKEN_EMBD)) {
				if (t->ne[0] % quant_block_size(base))
					want = QUANT_Q8_0;
				else if (base != QUANT_Q8_0)
					want = QUANT_Q6_K;
			} else if (c == CAT_ATTN_V) {
				/* Q4_K_S asks for Q5_K on the first 4: we make Q6_K */
				if ((mix == MIX_Q4_K_M && use_more_bits(i_v, n_v)) || (mix == MIX_Q4_K_S && i_v < 4))
					want = QUANT_Q6_K;
				i_v++;
			} else if (c == CAT_FFN_DOWN) {
				if ((mix == MIX_Q4_K_M && use_more_bits(i_down, n_down))
				    || (mix == MIX_Q4_K_S && i_down < n_down / 8))
					want = QUANT_Q6_K;
				i_down++;
			}
		}
		q->want = want;
		q->to = quant_block_size(want) > 1 ? fit(want, t->ne[0], &q->fallback) : want;
		for (k = 0; k < o->n_keep; k++)
			if (!fnmatch(o->keep[k], t->name, 0)) {
				q->to = t->type;
				q->kept = 1;
				q->fallback = 0;
				break;
			}
		if (q->to == q->from)
			q->copy = 1;
		else if (!quant_supported(q->from)) {
			seterr(err, errlen, "tensor %s: no conversion from %s", t->name, gguf_type_name(q->from));
			free(order);
			return -1;
		}
	}
	free(order);
	return 0;
}

/* ------------------------------------------------------------ converting */

/* One thread's share of a chunk of rows. */
typedef struct job {
	uint32_t from, to;
	const uint8_t *src;     /* its first row */
	uint8_t *dst;
	size_t nrows, ne0, sb, db;  /* rows; elements, source and output bytes per row */
	float *x, *y;           /* ne0 floats each: the source row, the round trip */
	double *sse;            /* per row: sum of squared errors */
	double *ssx;            /* per row: sum of squares of the source */
	float *mx;              /* per row: max abs error */
	size_t nonfinite;       /* source values that are NaN or infinite */
} job;

/* nearly all the time is spent here, in quant_quantize_row */
static void *
work(void *arg)
{
	job *j = arg;

	for (size_t r = 0; r < j->nrows; r++) {
		const uint8_t *s = j->src + r * j->sb;
		uint8_t *d = j->dst + r * j->db;
		double sse = 0, ssx = 0;
		float mx = 0;

		quant_dequantize_row(j->from, s, j->x, j->ne0);
		quant_quantize_row(j->to, j->x, d, j->ne0);
		quant_dequantize_row(j->to, d, j->y, j->ne0);
		for (size_t e = 0; e < j->ne0; e++) {
			float a = fabsf(j->y[e] - j->x[e]);
			j->nonfinite += !isfinite(j->x[e]);
			sse += (double)a * a;
			ssx += (double)j->x[e] * j->x[e];
			if (isnan(a))
				mx = NAN;       /* and stays NaN: NaN > x is false */
			else if (a > mx)
				mx = a;
		}
		j->sse[r] = sse;
		j->ssx[r] = ssx;
		j->mx[r] = mx;
	}
	return NULL;
}

typedef struct result {
	size_t nonfinite;       /* source values that are NaN or infinite */
	double rmse;
	double rms;             /* of the source (dequantized if it was quantized) */
	float max;
} result;

/* Drops the input pages behind [p, p+n) from the resident set. */
static void
drop(const gguf *g, const void *p, size_t n)
{
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t a = (uintptr_t)p, b = a + n, base = (uintptr_t)g->map;

	if (!g->mapped || pg <= 0)
		return;
	a = a / pg * pg;
	if (a < base)
		a = base;
	if (b > a)
		madvise((void *)a, b - a, MADV_DONTNEED);
}

#define CHUNK_BYTES (8u << 20)  /* output bytes converted between two writes */

static void
wdie(gguf_writer *w)
{
	char msg[1024];

	snprintf(msg, sizeof msg, "%s", gguf_w_error(w));
	gguf_w_free(w);     /* removes the temporary file */
	die_x(EXIT_SYS, "%s", msg);
}

static void
copy_tensor(const gguf *g, gguf_writer *w, const gguf_tensor *t)
{
	const uint8_t *p = t->data;
	size_t left = t->nbytes;

	while (left) {
		size_t k = left < CHUNK_BYTES ? left : CHUNK_BYTES;
		if (gguf_w_data(w, p, k) < 0)
			wdie(w);
		drop(g, p, k);
		p += k;
		left -= k;
	}
}

static void
convert_tensor(const gguf *g, gguf_writer *w, const quantize_item *q, int nthreads,
	float *scratch, result *res)
{
	const gguf_tensor *t = q->t;
	size_t ne0 = t->ne[0], sb = quant_row_bytes(q->from, ne0), db = quant_row_bytes(q->to, ne0);
	size_t nrows = t->ne[1] * t->ne[2] * t->ne[3], chunk, r0;
	uint8_t *out;
	double *sse, *ssx, tot = 0, totx = 0;
	float *mx, max = 0;
	pthread_t *tid = xcalloc(nthreads, sizeof *tid);
	job *jobs = xcalloc(nthreads, sizeof *jobs);
	char *ok = xcalloc(nthreads, 1);

	chunk = CHUNK_BYTES / db;
	if (chunk < 1)
		chunk = 1;
	if (chunk > nrows)
		chunk = nrows;
	out = xmalloc(chunk * db);
	sse = xmalloc(chunk * sizeof *sse);
	ssx = xmalloc(chunk * sizeof *ssx);
	mx = xmalloc(chunk * sizeof *mx);
	for (r0 = 0; r0 < nrows; r0 += chunk) {
		size_t n = nrows - r0 < chunk ? nrows - r0 : chunk, per, at = 0;
		int nt = (size_t)nthreads < n ? nthreads : (int)n;

		per = n / nt;
		for (int k = 0; k < nt; k++) {
			job *j = &jobs[k];
			size_t cnt = per + ((size_t)k < n % nt);
			*j = (job){ q->from, q->to, (const uint8_t *)t->data + (r0 + at) * sb, out + at * db,
				cnt, ne0, sb, db, scratch + 2 * (size_t)k * ne0, scratch + (2 * (size_t)k + 1) * ne0,
				sse + at, ssx + at, mx + at, 0 };
			at += cnt;
		}
		/* the calling thread takes the first share; a thread that cannot
		 * start has its share done here too */
		for (int k = 1; k < nt; k++)
			ok[k] = pthread_create(&tid[k], NULL, work, &jobs[k]) == 0;
		work(&jobs[0]);
		for (int k = 1; k < nt; k++) {
			if (ok[k])
				pthread_join(tid[k], NULL);
			else
				work(&jobs[k]);
		}
		for (int k = 0; k < nt; k++)
			res->nonfinite += jobs[k].nonfinite;
		/* summed in row order: the report does not depend on -j */
		for (size_t k = 0; k < n; k++) {
			tot += sse[k];
			totx += ssx[k];
			if (isnan(mx[k]))
				max = NAN;
			else if (mx[k] > max)
				max = mx[k];
		}
		if (gguf_w_data(w, out, n * db) < 0)
			wdie(w);
		drop(g, (const uint8_t *)t->data + r0 * sb, n * sb);
	}
	res->rmse = nrows ? sqrt(tot / ((double)nrows * ne0)) : 0;
	res->rms = nrows ? sqrt(totx / ((double)nrows * ne0)) : 0;
	res->max = max;
	free(out);
	free(sse);
	free(ssx);
	free(mx);
	free(tid);
	free(jobs);
	free(ok);
}

/* ------------------------------------------------------------ the report */

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
shape(const gguf_tensor *t, char *buf, size_t n)
{
	size_t at = 0;

	buf[0] = 0;
	for (uint32_t d = 0; d < t->n_dims && at < n; d++)
		at += snprintf(buf + at, n - at, "%s%llu", d ? "x" : "", (unsigned long long)t->ne[d]);
}

/* a tensor name fit for a terminal: control bytes become '?' */
static void
clean(const char *s, char *buf, size_t n)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < n; i++)
		buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	buf[i] = 0;
}

static void
jstr(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = *s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void
jnum(FILE *f, double v)
{
	if (isfinite(v))
		fprintf(f, "%.9g", v);
	else
		fputs("null", f);
}

static const char *
ftype_name(uint32_t ft)
{
	switch (ft) {
	case FT_F32: return "F32";
	case FT_F16: return "F16";
	case FT_BF16: return "BF16";
	case FT_Q8_0: return "Q8_0";
	case FT_Q4_0: return "Q4_0";
	case FT_Q4_1: return "Q4_1";
	case FT_Q5_0: return "Q5_0";
	case FT_Q5_1: return "Q5_1";
	case FT_Q4_K_S: return "Q4_K_S";
	case FT_Q4_K_M: return "Q4_K_M";
	case FT_Q6_K: return "Q6_K";
	}
	return "?";
}

static void
write_report(const char *path, const char *in, const char *out, const quantize_item *it,
	const result *res, size_t n, uint32_t ft, int threads, uint64_t before, uint64_t after, double secs)
{
	FILE *f = fopen(path, "w");
	char sh[128];

	if (!f)
		die_sys("unable to create %s", path);
	fputs("{\"input\":", f);
	jstr(f, in);
	fputs(",\"output\":", f);
	jstr(f, out);
	fprintf(f, ",\"file_type\":%u,\"file_type_name\":\"%s\",\"threads\":%d,\"tensors\":[", ft, ftype_name(ft), threads);
	for (size_t i = 0; i < n; i++) {
		const quantize_item *q = &it[i];
		fputs(i ? ",\n{\"name\":" : "\n{\"name\":", f);
		jstr(f, q->t->name);
		shape(q->t, sh, sizeof sh);
		fprintf(f, ",\"from\":\"%s\",\"to\":\"%s\",\"shape\":[", gguf_type_name(q->from), gguf_type_name(q->to));
		for (uint32_t d = 0; d < q->t->n_dims; d++)
			fprintf(f, "%s%llu", d ? "," : "", (unsigned long long)q->t->ne[d]);
		fprintf(f, "],\"bytes_before\":%zu,\"bytes_after\":%zu,\"rmse\":", q->t->nbytes,
			gguf_nbytes(q->t->n_dims, q->t->ne, q->to));
		jnum(f, res[i].rmse);
		fputs(",\"rms\":", f);
		jnum(f, q->copy ? NAN : res[i].rms);   /* not measured on a copy */
		fputs(",\"max_abs_error\":", f);
		jnum(f, res[i].max);
		fprintf(f, ",\"nonfinite\":%zu,\"fallback\":%s,\"kept\":%s,\"copied\":%s}", res[i].nonfinite, q->fallback ? "true" : "false",
			q->kept ? "true" : "false", q->copy ? "true" : "false");
	}
	fprintf(f, "\n],\"totals\":{\"tensors\":%zu,\"bytes_before\":%llu,\"bytes_after\":%llu,\"ratio\":",
		n, (unsigned long long)before, (unsigned long long)after);
	jnum(f, before ? (double)after / before : 0);
	fputs(",\"seconds\":", f);
	jnum(f, secs);
	fputs("}}\n", f);
	if (ferror(f) | fclose(f))
		die_sys("unable to write %s", path);
}

/* ------------------------------------------------------------ the run */

static int
skip_kv(const char *key, size_t n, void *arg)
{
	(void)arg;
	return (n == 17 && !memcmp(key, "general.file_type", 17))
		|| (n == 28 && !memcmp(key, "general.quantization_version", 28));
}

static void
dry_run(const quantize_item *it, size_t n)
{
	char sh[128];

	for (size_t i = 0; i < n; i++) {
		shape(it[i].t, sh, sizeof sh);
		printf("%s\t%s\t%s\t%s%s%s\n", it[i].t->name, gguf_type_name(it[i].from),
			gguf_type_name(it[i].to), sh, it[i].fallback ? "\tfallback" : "",
			it[i].kept ? "\tkept" : "");
	}
	if (fflush(stdout) == EOF || ferror(stdout))
		die_sys("unable to write the plan");
}

int
quantize_run(const char *in, const char *out, const quantize_opts *o)
{
	gguf g = GGUF_ZERO;
	gguf_writer *w;
	quantize_item *it;
	result *res;
	char err[512], name[80], sh[128];
	uint32_t ft = 0;
	uint64_t before = 0, after = 0;
	size_t i, max_ne0 = 0;
	int threads = o->threads, tty = isatty(2), warned = 0;
	float *scratch = NULL;
	double t0 = now(), secs;

	if (gguf_open(&g, in, err, sizeof err) < 0)
		die_x(EXIT_SYS, "unable to read %s: %s", in, err);
	it = xcalloc(g.n_tensors ? g.n_tensors : 1, sizeof *it);
	res = xcalloc(g.n_tensors ? g.n_tensors : 1, sizeof *res);
	if (quantize_plan(&g, o, it, &ft, err, sizeof err) < 0)
		die_x(EXIT_SYS, "unable to quantize %s: %s", in, err);
	if (o->dry_run) {
		dry_run(it, g.n_tensors);
		goto out;
	}
	if (threads <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n < 1 ? 1 : n > 256 ? 256 : (int)n;
	}
	for (i = 0; i < g.n_tensors; i++) {
		if (it[i].copy)
			continue;
		if (it[i].t->ne[0] > max_ne0)
			max_ne0 = it[i].t->ne[0];
		if (!warned && quant_block_size(it[i].from) > 1) {
			warn_x("requantizing from %s: error adds up", gguf_type_name(it[i].from));
			warned = 1;
		}
	}
	if (max_ne0)
		scratch = xcalloc(2 * (size_t)threads, max_ne0 * sizeof *scratch);

	w = gguf_w_new(out);
	if (gguf_w_copy_kv(w, &g, skip_kv, NULL) < 0 || gguf_w_u32(w, "general.quantization_version", 2) < 0
	    || gguf_w_u32(w, "general.file_type", ft) < 0)
		wdie(w);
	for (i = 0; i < g.n_tensors; i++)
		if (gguf_w_tensor(w, it[i].t->name, it[i].t->n_dims, it[i].t->ne, it[i].to) < 0)
			wdie(w);
	if (gguf_w_begin(w) < 0)
		wdie(w);
	for (i = 0; i < g.n_tensors; i++) {
		const quantize_item *q = &it[i];
		size_t nb = gguf_nbytes(q->t->n_dims, q->t->ne, q->to);

		clean(q->t->name, name, sizeof name);
		shape(q->t, sh, sizeof sh);
		if (!o->quiet && tty)
			fprintf(stderr, "\rquantize: [%4zu/%zu] %s %s -> %s ...\033[K", i + 1, (size_t)g.n_tensors,
				name, gguf_type_name(q->from), gguf_type_name(q->to));
		if (q->copy)
			copy_tensor(&g, w, q->t);
		else
			convert_tensor(&g, w, q, threads, scratch, &res[i]);
		if (res[i].nonfinite) {
			if (!o->allow_nonfinite) {
				gguf_w_free(w);     /* removes the temporary file */
				die_x(EXIT_SYS, "unable to quantize %s: tensor %s holds %zu NaN or infinite values "
				      "(--allow-nonfinite writes it anyway)", in, name, res[i].nonfinite);
			}
			warn_x("tensor %s holds %zu NaN or infinite values: its rmse and max mean nothing",
			       name, res[i].nonfinite);
		}
		before += q->t->nbytes;
		after += nb;
		if (!o->quiet) {
			char rel[32] = "";
			if (!q->copy && res[i].rms > 0)
				snprintf(rel, sizeof rel, " (%.2f%%)", 100 * res[i].rmse / res[i].rms);
			fprintf(stderr, "%squantize: [%4zu/%zu] %s %s -> %s %s %zu -> %zu bytes rmse %.3g%s max %.3g%s%s\n",
				tty ? "\r\033[K" : "", i + 1, (size_t)g.n_tensors, name,
				gguf_type_name(q->from), gguf_type_name(q->to), sh, q->t->nbytes, nb,
				res[i].rmse, rel, (double)res[i].max, q->fallback ? " fallback" : "",
				q->kept ? " kept" : q->copy ? " copied" : "");
		}
	}
	if (gguf_w_finish(w) < 0)
		wdie(w);
	gguf_w_free(w);
	secs = now() - t0;
	if (!o->quiet)
		fprintf(stderr, "quantize: %zu tensors, %llu -> %llu bytes (ratio %.3f), %s, %.2f s on %d thread%s\n",
			(size_t)g.n_tensors, (unsigned long long)before, (unsigned long long)after,
			before ? (double)after / before : 0.0, ftype_name(ft), secs, threads, threads > 1 ? "s" : "");
	if (o->report)
		write_report(o->report, in, out, it, res, g.n_tensors, ft, threads, before, after, secs);
out:
	free(scratch);
	free(it);
	free(res);
	gguf_close(&g);
	return 0;
}
