/* synth: writes a llama-architecture GGUF with the metadata llama.cpp's llama
 * loader reads (shared/notes/gguf.md section 2), weights from a seeded RNG
 * (uniform with standard deviation 0.02; norm weights 1), and the tokenizer
 * of another GGUF or a tiny built-in one. Data is generated and written one
 * row at a time, so any size can be written in little memory. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "gguf.h"
#include "quant.h"
#include "synth.h"

/* ------------------------------------------------------------- numbers */

static uint64_t rng;

/* splitmix64 (Steele, Lea, Flood 2014): tiny, seedable, good enough here */
static uint64_t
next(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* uniform on [-a, a) with a = 0.02 * sqrt(3): standard deviation 0.02 */
static float
weight(void)
{
	return (float)(((next() >> 11) * 0x1.0p-53 * 2 - 1) * 0.034641016);
}

/* float to IEEE binary16, round to nearest even */
static uint16_t
f2h(float f)
{
	uint32_t x, m, h, rem, halfway, sign;
	int e;

	memcpy(&x, &f, 4);
	sign = (x >> 16) & 0x8000;
	m = x & 0x7fffff;
	if (((x >> 23) & 0xff) == 0xff)
		return sign | 0x7c00 | (m ? 0x200 : 0);
	e = (int)((x >> 23) & 0xff) - 127 + 15;
	if (e >= 31)
		return sign | 0x7c00;
	if (e <= 0) {
		int sh;
		if (e < -10)
			return sign;
		m |= 0x800000;
		sh = 14 - e;
		h = m >> sh;
		rem = m & ((1u << sh) - 1);
		halfway = 1u << (sh - 1);
	} else {
		h = (uint32_t)e << 10 | m >> 13;
		rem = m & 0x1fff;
		halfway = 0x1000;
	}
	if (rem > halfway || (rem == halfway && (h & 1)))
		h++;        /* a carry into the exponent is still right */
	return sign | h;
}

static uint16_t
f2bf(float f)
{
	uint32_t x;

	memcpy(&x, &f, 4);
	if ((x & 0x7fffffff) > 0x7f800000)
		return (x >> 16) | 0x40;
	return (x + 0x7fff + ((x >> 16) & 1)) >> 16;
}

/* one row of n floats in type t into out; returns the bytes */
static size_t
encode(const float *x, size_t n, uint32_t t, uint8_t *out)
{
	size_t i, j;

	switch (t) {
	case 0:
		memcpy(out, x, n * 4);
		return n * 4;
	case 1: case 30:
		for (i = 0; i < n; i++) {
			uint16_t h = t == 1 ? f2h(x[i]) : f2bf(x[i]);
			memcpy(out + 2 * i, &h, 2);
		}
		return n * 2;
	case 2: case 3: case 6: case 7: /* Q4_0, Q4_1, Q5_0, Q5_1 */
		quant_quantize_row(t, x, out, n);
		return quant_row_bytes(t, n);
	default: /* Q8_0: blocks of 32, d = max|x| / 127 as f16, then 32 int8 (ggml's reference quantizer) */
		for (i = 0; i < n; i += 32) {
			float amax = 0, d, id;
			uint16_t hd;
			for (j = 0; j < 32; j++)
				amax = fmaxf(amax, fabsf(x[i + j]));
			d = amax / 127;
			id = d ? 1 / d : 0;
			hd = f2h(d);
			memcpy(out, &hd, 2);
			for (j = 0; j < 32; j++)
				out[2 + j] = (uint8_t)(int8_t)roundf(x[i + j] * id);
			out += 34;
		}
		return n / 32 * 34;
	}
}

/* ------------------------------------------------------------- tokenizer */

/* GPT-2's byte-to-unicode map: printable bytes stand for themselves, the
 * others take code points from 256 up, in byte order. UTF-8 into s. */
static size_t
bytetok(int b, char *s)
{
	int cp, k, n = 0;

	if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
		cp = b;
	else {
		for (k = 0; k < b; k++)
			if (!((k >= 33 && k <= 126) || (k >= 161 && k <= 172) || (k >= 174 && k <= 255)))
				n++;
		cp = 256 + n;
	}
	if (cp < 0x80) {
		s[0] = cp;
		return 1;
	}
	s[0] = 0xc0 | cp >> 6;
	s[1] = 0x80 | (cp & 0x3f);
	return 2;
}

static const char *const merges[] = {
	"Ġ t", "Ġ a", "i n", "h e", "r e", "o n", "Ġt he", "e r", "Ġ s", "a t",
};
static const char *const merged[] = {
	"Ġt", "Ġa", "in", "he", "re", "on", "Ġthe", "er", "Ġs", "at",
};
static const char *const controls[] = { "<|endoftext|>", "<|im_start|>", "<|im_end|>" };
#define NMERGES (sizeof merges / sizeof merges[0])
#define NTINY (3 + 256 + NMERGES)

static const char chatml[] =
	"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
	" + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/* the tiny tokenizer: ids 0-2 control, then the 256 bytes, then the merges */
static int
tiny_vocab(gguf_writer *w)
{
	static char bytes[256][3];
	const char *tok[NTINY];
	int32_t type[NTINY];
	size_t i;

	for (i = 0; i < 3; i++) {
		tok[i] = controls[i];
		type[i] = 3;
	}
	for (i = 0; i < 256; i++) {
		bytes[i][bytetok(i, bytes[i])] = 0;
		tok[3 + i] = bytes[i];
		type[3 + i] = 1;
	}
	for (i = 0; i < NMERGES; i++) {
		tok[259 + i] = merged[i];
		type[259 + i] = 1;
	}
	if (gguf_w_str(w, "tokenizer.ggml.model", "gpt2", 4) < 0
	    || gguf_w_str(w, "tokenizer.ggml.pre", "smollm", 6) < 0
	    || gguf_w_arr_str(w, "tokenizer.ggml.tokens", NTINY, tok, NULL) < 0
	    || gguf_w_arr(w, "tokenizer.ggml.token_type", GGUF_I32, NTINY, type) < 0
	    || gguf_w_arr_str(w, "tokenizer.ggml.merges", NMERGES, merges, NULL) < 0
	    || gguf_w_u32(w, "tokenizer.ggml.bos_token_id", 1) < 0
	    || gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 2) < 0
	    || gguf_w_u32(w, "tokenizer.ggml.unknown_token_id", 0) < 0
	    || gguf_w_u32(w, "tokenizer.ggml.padding_token_id", 2) < 0
	    || gguf_w_bool(w, "tokenizer.ggml.add_bos_token", 0) < 0
	    || gguf_w_str(w, "tokenizer.chat_template", chatml, strlen(chatml)) < 0)
		return -1;
	return 0;
}

static int
not_tokenizer(const char *key, size_t n, void *arg)
{
	(void)arg;
	return n < 10 || memcmp(key, "tokenizer.", 10);
}

/* ------------------------------------------------------------- writing */

/* one per-layer tensor: name, row length, rows, a norm (f32 ones) or not */
typedef struct layer { const char *name; uint64_t ne0, ne1; int norm; } layer;

/* writes the rows of one tensor: norms are 1, everything else random */
static int
fill(gguf_writer *w, uint32_t type, uint64_t row, uint64_t rows, int norm, float *x, uint8_t *buf)
{
	uint64_t r, i;

	for (r = 0; r < rows; r++) {
		for (i = 0; i < row; i++)
			x[i] = norm ? 1.0f : weight();
		if (gguf_w_data(w, buf, encode(x, row, type, buf)) < 0)
			return -1;
	}
	return 0;
}

int
synth_write(const synth_opts *op)
{
	synth_opts o = *op;
	gguf src = GGUF_ZERO;
	gguf_writer *w = NULL;
	char err[512], name[64];
	uint64_t ntok, hd, kvd, l, ne[2];
	int code = -1, have_src = 0;
	float *x = NULL;
	uint8_t *buf = NULL;
	layer t[9];
	size_t i, nt;

	hd = o.dim / o.heads;
	kvd = hd * o.kv_heads;

	w = gguf_w_new(o.out);
	ntok = NTINY;
	if (o.vocab) {
		uint64_t n;
		if (gguf_open(&src, o.vocab, err, sizeof err) < 0)
			die_x(EXIT_SYS, "unable to read %s: %s", o.vocab, err);
		have_src = 1;
		if (gguf_arr(&src, "tokenizer.ggml.tokens", NULL, &n, NULL) != 1)
			die_x(EXIT_SYS, "unable to read %s: it has no tokenizer.ggml.tokens array", o.vocab);
		ntok = n;
	}
	if (o.vocab_size && o.vocab_size != ntok)
		die_x(EXIT_USAGE, "--vocab-size %llu differs from the tokenizer's %llu tokens",
			(unsigned long long)o.vocab_size, (unsigned long long)ntok);
	if (gguf_w_str(w, "general.architecture", "llama", 5) < 0
	    || gguf_w_str(w, "general.name", "sluice synth", 12) < 0
	    || gguf_w_u32(w, "general.file_type", o.file_type) < 0
	    || (quant_block_size(o.type) == 32 && gguf_w_u32(w, "general.quantization_version", 2) < 0)
	    || gguf_w_u32(w, "llama.context_length", o.ctx) < 0
	    || gguf_w_u32(w, "llama.embedding_length", o.dim) < 0
	    || gguf_w_u32(w, "llama.block_count", o.layers) < 0
	    || gguf_w_u32(w, "llama.feed_forward_length", o.ff) < 0
	    || gguf_w_u32(w, "llama.attention.head_count", o.heads) < 0
	    || gguf_w_u32(w, "llama.attention.head_count_kv", o.kv_heads) < 0
	    || gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f) < 0
	    || gguf_w_f32(w, "llama.rope.freq_base", (float)o.rope_base) < 0
	    || gguf_w_u32(w, "llama.rope.dimension_count", hd) < 0
	    || gguf_w_u32(w, "llama.vocab_size", ntok) < 0
	    || (have_src ? gguf_w_copy_kv(w, &src, not_tokenizer, NULL) : tiny_vocab(w)) < 0)
		goto fail;

	/* tensors in llama.cpp's order; ne = {row length, rows} */
	ne[0] = o.dim;
	ne[1] = ntok;
	if (gguf_w_tensor(w, "token_embd.weight", 2, ne, o.type) < 0)
		goto fail;
	nt = 0;
	t[nt++] = (layer){ "attn_norm", o.dim, 1, 1 };
	t[nt++] = (layer){ "attn_q", o.dim, o.dim, 0 };
	t[nt++] = (layer){ "attn_k", o.dim, kvd, 0 };
	t[nt++] = (layer){ "attn_v", o.dim, kvd, 0 };
	t[nt++] = (layer){ "attn_output", o.dim, o.dim, 0 };
	t[nt++] = (layer){ "ffn_norm", o.dim, 1, 1 };
	t[nt++] = (layer){ "ffn_gate", o.dim, o.ff, 0 };
	t[nt++] = (layer){ "ffn_up", o.dim, o.ff, 0 };
	t[nt++] = (layer){ "ffn_down", o.ff, o.dim, 0 };
	for (l = 0; l < o.layers; l++) {
		for (i = 0; i < nt; i++) {
			snprintf(name, sizeof name, "blk.%llu.%s.weight", (unsigned long long)l, t[i].name);
			ne[0] = t[i].ne0;
			ne[1] = t[i].ne1;
			if (gguf_w_tensor(w, name, t[i].norm ? 1 : 2, ne, t[i].norm ? 0 : o.type) < 0)
				goto fail;
		}
	}
	ne[0] = o.dim;
	if (gguf_w_tensor(w, "output_norm.weight", 1, ne, 0) < 0)
		goto fail;
	ne[1] = ntok;
	if (!o.tied && gguf_w_tensor(w, "output.weight", 2, ne, o.type) < 0)
		goto fail;
	if (gguf_w_begin(w) < 0)
		goto fail;

	rng = o.seed;
	x = xmalloc((o.dim > o.ff ? o.dim : o.ff) * sizeof *x);
	buf = xmalloc((o.dim > o.ff ? o.dim : o.ff) * sizeof *x);
	if (fill(w, o.type, o.dim, ntok, 0, x, buf) < 0)
		goto fail;
	for (l = 0; l < o.layers; l++)
		for (i = 0; i < nt; i++)
			if (fill(w, t[i].norm ? 0 : o.type, t[i].ne0, t[i].ne1, t[i].norm, x, buf) < 0)
				goto fail;
	if (fill(w, 0, o.dim, 1, 1, x, buf) < 0
	    || (!o.tied && fill(w, o.type, o.dim, ntok, 0, x, buf) < 0)
	    || gguf_w_finish(w) < 0)
		goto fail;
	code = 0;
	goto out;
fail:
	fprintf(stderr, "%s: fatal: unable to write %s: %s\n", die_prog, o.out, gguf_w_error(w));
out:
	free(x);
	free(buf);
	gguf_w_free(w);
	if (have_src)
		gguf_close(&src);
	return code;
}
