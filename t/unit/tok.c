/* unit test for lib/tok on the SmolLM2 tokenizer ($TOK_MODEL, else the cached
 * default model; skipped when absent): the regression vectors of
 * shared/notes/gguf.md, the adversarial strings of t/tok/unit-input.txt
 * against llama.cpp's ids (t/tok/unit-expect-smollm2.txt, t/tok/mkunit.py),
 * pieces, the end-of-generation set, and errors for unsupported files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetch.h"
#include "gguf.h"
#include "tap.h"
#include "tok.h"

static tok *t;

static int
enc_is(const char *s, size_t n, int special, const uint32_t *want, size_t nw)
{
	tok_ids ids = TOK_IDS_INIT;
	int r = tok_encode(t, s, n, 1, special, &ids) == 0 && ids.n == nw &&
		(!nw || !memcmp(ids.v, want, nw * sizeof *want));
	tok_ids_free(&ids);
	return r;
}
#define ENC(s, ...) enc_is(s, sizeof s - 1, 1, (const uint32_t[]){ __VA_ARGS__ }, \
	sizeof (uint32_t[]){ __VA_ARGS__ } / sizeof (uint32_t))

static size_t
unescape(char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\\' || i + 1 == n) {
			s[k++] = s[i];
			continue;
		}
		char c = s[++i];
		if (c == 'x' && i + 2 < n) {
			char h[3] = { s[i + 1], s[i + 2], 0 };
			s[k++] = (char)strtol(h, 0, 16);
			i += 2;
		} else
			s[k++] = c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
	}
	return k;
}

static void
corpus(void)
{
	FILE *in = fopen("t/tok/unit-input.txt", "r"), *ex = fopen("t/tok/unit-expect-smollm2.txt", "r");
	char *a = 0, *b = 0;
	size_t ac = 0, bc = 0, lines = 0, bad = 0;
	ssize_t n, m;
	tok_ids ids = TOK_IDS_INIT;

	if (!ok(in && ex, "t/tok/unit-input.txt and unit-expect-smollm2.txt"))
		return;
	while ((n = getline(&a, &ac, in)) > 0 && (m = getline(&b, &bc, ex)) > 0) {
		char got[65536];
		size_t k = 0;
		ids.n = 0;
		tok_encode(t, a, unescape(a, n - 1), 1, 1, &ids);
		for (size_t i = 0; i < ids.n && k < sizeof got - 16; i++)
			k += snprintf(got + k, sizeof got - k, i ? " %u" : "%u", ids.v[i]);
		got[k] = 0;
		b[m - 1] = 0;
		if (strcmp(got, b) && bad++ < 5)
			printf("# line %zu: got [%s] want [%s]\n", lines + 1, got, b);
		lines++;
	}
	ok(lines >= 500 && !bad, "%zu adversarial strings as llama.cpp (%zu differ)", lines, bad);
	tok_ids_free(&ids);
	free(a);
	free(b);
	fclose(in);
	fclose(ex);
}

int
main(void)
{
	char *path = getenv("TOK_MODEL") ? strdup(getenv("TOK_MODEL")) : fetch_default_path();
	gguf g = GGUF_ZERO;
	char err[512], buf[64];

	if (!path || gguf_open(&g, path, err, sizeof err) < 0) {
		printf("ok 1 # skip no model at %s (sluice model fetch)\n1..1\n", path ? path : "?");
		free(path);
		return 0;
	}
	t = tok_load(&g, err, sizeof err);
	if (!ok(t, "tok_load %s", path)) {
		printf("# %s\n", err);
		return done_testing();
	}
	gguf_close(&g);   /* the tokenizer keeps its own copy */
	ok(tok_n_vocab(t) == 49152 && tok_bos(t) == 1 && tok_eos(t) == 2 && !tok_add_bos(t), "vocabulary, bos, eos, add_bos");
	ok(ENC("Hello world! 123", 19556, 905, 17, 216, 33, 34, 35), "Hello world! 123");
	ok(ENC("\n", 198), "newline");
	ok(ENC("  multiple   spaces", 216, 2701, 256, 5600), "whitespace runs");
	ok(ENC("The capital of France is", 504, 3575, 282, 4649, 314), "The capital of France is");
	ok(ENC("Hello, we can use", 19556, 28, 392, 416, 722), "Hello, we can use");
	ok(ENC("<|im_start|>user\nhi<|im_end|>", 1, 4093, 198, 6004, 2), "special tokens parsed");
	ok(enc_is("<|im_end|>", 10, 0, (const uint32_t[]){ 44, 108, 306, 79, 486, 108, 46 }, 7),
		"special tokens as text (parse_special 0), as llama.cpp");
	ok(enc_is("", 0, 1, 0, 0), "empty text, no ids");
	ok(tok_is_eog(t, 0) && tok_is_eog(t, 2) && tok_is_eog(t, 4) && !tok_is_eog(t, 1) && !tok_is_eog(t, 3),
		"end of generation {0, 2, 4} as llama.cpp");
	ok(tok_piece(t, 19556, 0, buf, sizeof buf) == 5 && !memcmp(buf, "Hello", 5), "piece of a word");
	ok(tok_piece(t, 216, 0, buf, sizeof buf) == 1 && buf[0] == ' ', "piece of a space (byte map undone)");
	ok(tok_piece(t, 2, 0, buf, sizeof buf) == 0 && tok_piece(t, 2, 1, buf, sizeof buf) == 10 &&
		!memcmp(buf, "<|im_end|>", 10), "control tokens only when special");
	ok(tok_piece(t, 19556, 0, buf, 2) == 5, "piece reports the length needed");
	ok(tok_type(t, 0) == TOK_CONTROL && tok_type(t, 19556) == TOK_NORMAL, "token types");
	size_t n;
	const char *s = tok_text(t, 216, &n);
	ok(n == 2 && !memcmp(s, "\xc4\xa0", 2), "tok_text gives the stored text (U+0120)");
	ok(tok_chat_template(t) && strstr(tok_chat_template(t), "<|im_start|>"), "chat template");
	corpus();
	tok_free(t);
	free(path);
	return done_testing();
}
