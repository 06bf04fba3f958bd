/* toktest: drives lib/tok for the tests and measurements.
 *   toktest encode FILE.gguf [--no-special] [--bos]   text lines -> id lines
 *   toktest decode FILE.gguf [--special]              id lines -> pieces joined
 *   toktest load FILE.gguf                            load time (ms) and RSS (KB)
 *   toktest bench FILE.gguf TEXTFILE [N]              encode MB/s, one thread
 *   toktest info FILE.gguf                            bos, eos, add_bos, eog ids
 * encode: each stdin line (without its '\n') is one text; --bos sets
 * add_special (BOS/EOS as the file says); --escaped takes \n \r \t \\ \xHH
 * in the line (t/tok/unit-input.txt). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "gguf.h"
#include "tok.h"

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long
rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "VmHWM:", 6))
			kb = atol(line + 6);
	if (f)
		fclose(f);
	return kb;
}

/* undoes t/tok/mkunit.py's escaping in place; returns the new length */
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
		if (c == 'n')
			s[k++] = '\n';
		else if (c == 'r')
			s[k++] = '\r';
		else if (c == 't')
			s[k++] = '\t';
		else if (c == 'x' && i + 2 < n) {
			char h[3] = { s[i + 1], s[i + 2], 0 };
			s[k++] = (char)strtol(h, 0, 16);
			i += 2;
		} else
			s[k++] = c;
	}
	return k;
}

static tok *
open_tok(const char *path, gguf *g)
{
	char err[512];
	tok *t;
	if (gguf_open(g, path, err, sizeof err) < 0) {
		fprintf(stderr, "toktest: fatal: unable to read %s: %s\n", path, err);
		exit(111);
	}
	if (!(t = tok_load(g, err, sizeof err))) {
		fprintf(stderr, "toktest: fatal: unable to load tokenizer: %s\n", err);
		exit(111);
	}
	return t;
}

int
main(int argc, char **argv)
{
	gguf g = GGUF_ZERO;
	tok *t;
	int special = 1, bos = 0, escaped = 0;
	char *line = 0;
	size_t cap = 0;
	ssize_t n;

	if (argc < 3) {
		fprintf(stderr, "usage: toktest encode|decode|load|bench|info FILE.gguf [options]\n");
		return 100;
	}
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--no-special"))
			special = 0;
		else if (!strcmp(argv[i], "--escaped"))
			escaped = 1;
		else if (!strcmp(argv[i], "--bos"))
			bos = 1;
		else if (!strcmp(argv[i], "--special"))
			special = 2;
	}
	if (!strcmp(argv[1], "load")) {
		double t0 = now();
		t = open_tok(argv[2], &g);
		double t1 = now();
		gguf_close(&g);
		printf("load_ms %.2f rss_kb %ld n_vocab %u\n", (t1 - t0) * 1e3, rss_kb(), tok_n_vocab(t));
		tok_free(t);
		return 0;
	}
	t = open_tok(argv[2], &g);
	if (!strcmp(argv[1], "info")) {
		printf("bos %lld eos %lld add_bos %d eog", (long long)tok_bos(t), (long long)tok_eos(t), tok_add_bos(t));
		for (uint32_t i = 0; i < tok_n_vocab(t); i++)
			if (tok_is_eog(t, i))
				printf(" %u", i);
		printf("\n");
	} else if (!strcmp(argv[1], "encode")) {
		tok_ids ids = TOK_IDS_INIT;
		while ((n = getline(&line, &cap, stdin)) >= 0) {
			if (n && line[n - 1] == '\n')
				n--;
			if (escaped)
				n = unescape(line, n);
			ids.n = 0;
			if (tok_encode(t, line, n, bos, special, &ids) < 0) {
				fprintf(stderr, "toktest: fatal: out of memory\n");
				return 111;
			}
			for (size_t i = 0; i < ids.n; i++)
				printf(i ? " %u" : "%u", ids.v[i]);
			printf("\n");
		}
		tok_ids_free(&ids);
	} else if (!strcmp(argv[1], "decode")) {
		char buf[4096];
		while ((n = getline(&line, &cap, stdin)) >= 0) {
			char *p = line, *e;
			for (;;) {
				unsigned long id = strtoul(p, &e, 10);
				if (e == p)
					break;
				size_t k = tok_piece(t, id, special == 2, buf, sizeof buf);
				fwrite(buf, 1, k < sizeof buf ? k : sizeof buf, stdout);
				p = e;
			}
			printf("\n");
		}
	} else if (!strcmp(argv[1], "bench") && argc >= 4) {
		FILE *f = fopen(argv[3], "rb");
		int reps = argc >= 5 ? atoi(argv[4]) : 1;
		char *text = 0;
		size_t len = 0, total = 0, ntok = 0;
		if (!f || getdelim(&text, &len, 0, f) < 0) {
			fprintf(stderr, "toktest: fatal: unable to read %s\n", argv[3]);
			return 111;
		}
		len = strlen(text);
		tok_ids ids = TOK_IDS_INIT;
		double t0 = now();
		for (int r = 0; r < reps; r++) {
			/* one call per line, as tokenize does */
			for (char *p = text, *e; p < text + len; p = e + 1) {
				e = memchr(p, '\n', text + len - p);
				if (!e)
					e = text + len;
				ids.n = 0;
				tok_encode(t, p, e - p, 0, 1, &ids);
				ntok += ids.n;
				total += e - p + 1;
			}
		}
		double dt = now() - t0;
		printf("bytes %zu tokens %zu seconds %.3f MB/s %.2f\n", total, ntok, dt, total / dt / 1e6);
		tok_ids_free(&ids);
		free(text);
		fclose(f);
	} else {
		fprintf(stderr, "usage: toktest encode|decode|load|bench|info FILE.gguf [options]\n");
		return 100;
	}
	free(line);
	tok_free(t);
	gguf_close(&g);
	return 0;
}
