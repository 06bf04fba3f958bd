/* detokenize: token events in, the same events with their text out (or the
 * plain text), decoded incrementally and UTF-8-safe (see detokenize(1)). */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detok.h"
#include "die.h"
#include "tokenize.h"

#define USAGE "detokenize [-m model] [-o text|json|msgpack] [-n max] [--special]"

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "special", no_argument, 0, 'S' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	detok_opts o = DETOK_OPTS_DEFAULT;
	const char *model = 0;
	unsigned long long n;
	char *end;
	tok *t;
	int c;

	die_init(argv[0]);
	opterr = 0;	/* one voice: our usage line, not getopt's */
	while ((c = getopt_long(argc, argv, "m:o:n:h", lo, 0)) != -1) {
		switch (c) {
		case 'm': model = optarg; break;
		case 'o':
			if (!strcmp(optarg, "text"))
				o.out = STREAM_TEXT;
			else if (!strcmp(optarg, "json"))
				o.out = STREAM_JSON;
			else if (!strcmp(optarg, "msgpack"))
				o.out = STREAM_MSGPACK;
			else
				die_usage(USAGE);
			break;
		case 'n':
			errno = 0;
			n = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || !n || n > (1ull << 24))
				die_usage(USAGE);
			o.max_ids = (size_t)n;
			break;
		case 'S': o.special = 1; break;
		case 'h':
			printf("usage: %s\n", USAGE);
			return 0;
		default: die_usage(USAGE);
		}
	}
	if (optind != argc)
		die_usage(USAGE);
	signal(SIGPIPE, SIG_IGN);   /* a closed stdout is a write error (111) */
	t = tokenize_open(model);
	detok_run(t, &o, 0, 1);
	tok_free(t);
	return 0;
}
