/* gateway: the OpenAI-compatible HTTP front of a sluice topology (see gateway(1)). */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "gateway.h"

#define USAGE "gateway -u endpoint [-l tcp:host:port|fd:n] [-m model] [--served-model-name name] " \
	"[--api-key-file file] [--insecure] [--max-body bytes] [--max-connections n] [--max-connections-per-ip n] [--timeout s] " \
	"[--idle-timeout s] [--drain-timeout s] [-d fd] [-q]"

static double
parse_num(const char *s, double lo, double hi)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		die_usage(USAGE);
	return v;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "served-model-name", required_argument, 0, 'N' },
		{ "api-key-file", required_argument, 0, 'K' },
		{ "insecure", no_argument, 0, 'I' },
		{ "max-body", required_argument, 0, 'B' },
		{ "max-connections", required_argument, 0, 'C' },
		{ "max-connections-per-ip", required_argument, 0, 'P' },
		{ "timeout", required_argument, 0, 'T' },
		{ "idle-timeout", required_argument, 0, 'D' },
		{ "drain-timeout", required_argument, 0, 'R' },
		{ "quiet", no_argument, 0, 'q' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	gateway_opts o = GATEWAY_OPTS_DEFAULT;
	int c;

	die_init(argv[0]);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "u:l:m:d:qh", lo, 0)) != -1) {
		switch (c) {
		case 'u': o.upstream = optarg; break;
		case 'l': o.listen = optarg; break;
		case 'm': o.model = optarg; break;
		case 'N': o.name = optarg; break;
		case 'K': o.key_file = optarg; break;
		case 'I': o.insecure = 1; break;
		case 'B': o.max_body = (size_t)parse_num(optarg, 64, 1 << 30); break;
		case 'C': o.max_conns = (unsigned)parse_num(optarg, 1, 1 << 20); break;
		case 'P': o.max_per_ip = (unsigned)parse_num(optarg, 1, 1 << 20); break;
		case 'T': o.timeout = parse_num(optarg, 0, 86400 * 7); break;
		case 'D': o.idle_timeout = (unsigned)parse_num(optarg, 1, 86400); break;
		case 'R': o.drain_timeout = parse_num(optarg, 0, 86400); break;
		case 'd': o.ready_fd = (int)parse_num(optarg, 0, 1 << 20); break;
		case 'q': o.quiet = 1; die_verbose = -1; break;
		case 'h':
			printf("usage: %s\n", USAGE);
			return 0;
		default: die_usage(USAGE);
		}
	}
	if (optind != argc || !o.upstream)
		die_usage(USAGE);
	return gateway_main(&o);
}
