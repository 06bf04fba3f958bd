/* quantize: converts a GGUF model's weights to other ggml types, with an
 * error report (see quantize(1)). */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "quantize.h"

#define USAGE "quantize [-t TYPE | -r RECIPE] [-j THREADS] [--keep GLOB]... [--report FILE.json] [-q] [-n] in.gguf [out.gguf]"

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "keep", required_argument, 0, 'K' },
		{ "report", required_argument, 0, 'R' },
		{ "dry-run", no_argument, 0, 'n' },
		{ "quiet", no_argument, 0, 'q' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	quantize_opts o = QUANTIZE_OPTS_ZERO;
	const char *tname = 0, *rname = 0;
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
		case 'q': o.quiet = 1; break;
		case 'n': o.dry_run = 1; break;
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
	c = quantize_run(argv[optind], o.dry_run ? NULL : argv[optind + 1], &o);
	free(o.keep);
	return c;
}
