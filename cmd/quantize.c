/* quantize: converts a GGUF model's weights to other ggml types, with an
 * error report (see quantize(1)). */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "die.h"
#include "ppl.h"
#include "quantize.h"

#define USAGE "quantize [-t TYPE | -r RECIPE] [-j THREADS] [--keep GLOB]... [--report FILE.json] [--eval TEXT [--eval-ctx N]] [--allow-nonfinite] [-q] [-n] in.gguf [out.gguf]"

/* Perplexity of the text under the model before and after: what the
 * quantization costs, measured with the engine (infer-cpu --perplexity). */
static int
evaluate(const char *in, const char *out, const char *text, uint32_t ctx, int threads)
{
	const char *path[2] = { in, out };
	ppl_result r[2];
	char err[512];
	int i;

	for (i = 0; i < 2; i++) {
		if (ppl_file(path[i], &cpu_backend, threads, text, ctx, PPL_HALF, &r[i], err, sizeof err) < 0)
			die_x(EXIT_SYS, "unable to evaluate: %s", err);
		if (!r[i].scored)
			die_x(EXIT_NO, "unable to evaluate: %s has %zu tokens, fewer than one chunk of %u",
			      text, r[i].tokens, ctx);
	}
	printf("perplexity before %.4f after %.4f change %+.2f%% (%zu tokens scored, ctx %u)\n",
	       r[0].ppl, r[1].ppl, (r[1].ppl / r[0].ppl - 1) * 100, r[1].scored, ctx);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "keep", required_argument, 0, 'K' },
		{ "report", required_argument, 0, 'R' },
		{ "eval", required_argument, 0, 'E' },
		{ "eval-ctx", required_argument, 0, 'C' },
		{ "dry-run", no_argument, 0, 'n' },
		{ "allow-nonfinite", no_argument, 0, 'N' },
		{ "quiet", no_argument, 0, 'q' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	quantize_opts o = QUANTIZE_OPTS_ZERO;
	const char *tname = 0, *rname = 0, *eval = 0;
	long ectx = 512;
	char *end;
	long j;
	int c;

	die_init(argv[0]);
	opterr = 0;	/* one voice: our usage line, not getopt's */
	o.keep = xcalloc(argc, sizeof *o.keep);
	while ((c = getopt_long(argc, argv, "t:r:j:qnh", lo, 0)) != -1) {
		switch (c) {
		case 't': tname = optarg; break;
		case 'r': rname = optarg; break;
		case 'j':
			j = strtol(optarg, &end, 10);
			if (*optarg < '0' || *optarg > '9' || *end || j < 1 || j > 256)
				die_x(EXIT_USAGE, "-j %s: threads must be 1..256", optarg);
			o.threads = (int)j;
			break;
		case 'K': o.keep[o.n_keep++] = optarg; break;
		case 'R': o.report = optarg; break;
		case 'E': eval = optarg; break;
		case 'C':
			ectx = strtol(optarg, &end, 10);
			if (*optarg < '0' || *optarg > '9' || *end || ectx < 2 || ectx > 1 << 20)
				die_x(EXIT_USAGE, "--eval-ctx %s: must be 2..1048576", optarg);
			break;
		case 'q': o.quiet = 1; break;
		case 'n': o.dry_run = 1; break;
		case 'N': o.allow_nonfinite = 1; break;
		case 'h':
			printf("usage: %s\n", USAGE);
			return 0;
		default: die_usage(USAGE);
		}
	}
	if ((!tname) == (!rname))
		die_x(EXIT_USAGE, "give one of -t TYPE (%s) or -r RECIPE (%s)",
			quantize_types_known(), quantize_recipes_known());
	if (tname && (o.type = quantize_type_from_name(tname)) < 0)
		die_x(EXIT_USAGE, "unknown type \"%s\"; known: %s", tname, quantize_types_known());
	if (rname && (o.recipe = quantize_recipe_from_name(rname)) < 0)
		die_x(EXIT_USAGE, "unknown recipe \"%s\"; known: %s", rname, quantize_recipes_known());
	if (argc - optind != 2 && !(o.dry_run && argc - optind == 1))
		die_usage(USAGE);
	if (eval && o.dry_run)
		die_x(EXIT_USAGE, "--eval needs an output file, not -n");
	c = quantize_run(argv[optind], o.dry_run ? NULL : argv[optind + 1], &o);
	free(o.keep);
	if (c == 0 && eval)
		c = evaluate(argv[optind], argv[optind + 1], eval, (uint32_t)ectx, o.threads);
	return c;
}
