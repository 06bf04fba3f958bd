/* sluice-cat: `sluice cat`, msgpack <-> JSON lines, or a client of an
 * endpoint with -u (lib/cat runs it; see sluice(1)). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cat.h"
#include "die.h"
#include "addr.h"
#include "sluice.h"

#define USAGE "sluice cat [-j|-m] [-i json|msgpack] [-u endpoint] [-t ms]"

static unsigned long
number(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (!*s || *end || errno || *s == '-')
		die_usage(USAGE);
	return v;
}

int
cmd_cat(int argc, char **argv)
{
	cat_opts o = CAT_OPTS_DEFAULT;
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt(argc, argv, "+hjmi:u:t:")) != -1) {
		switch (opt) {
		case 'h':
			printf("usage: %s\n", USAGE);
			return 0;
		case 'j': o.out = STREAM_JSON; break;
		case 'm': o.out = STREAM_MSGPACK; break;
		case 'i':
			if (!strcmp(optarg, "json"))
				o.in = STREAM_JSON;
			else if (!strcmp(optarg, "msgpack"))
				o.in = STREAM_MSGPACK;
			else
				die_usage(USAGE);
			break;
		case 'u': o.ep = optarg; break;
		case 't': o.timeout_ms = number(optarg); break;
		default: die_usage(USAGE);
		}
	}
	if (optind != argc)
		die_usage(USAGE);
	if (o.ep) {
		addr a = ADDR_ZERO;
		char err[512];
		if (addr_parse(o.ep, &a, err, sizeof err) < 0) {
			fprintf(stderr, "%s: usage: %s: %s\n", die_prog, USAGE, err);
			exit(EXIT_USAGE);
		}
		addr_free(&a);
	}
	return cat_run(&o);
}
