/* metrics: event streams and the stats of running daemons in, vLLM's
 * metrics out as Prometheus text over HTTP, or a summary table (see metrics(1)). */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "metrics.h"

#define USAGE "metrics [-i endpoint]... [-u endpoint]... [--interval seconds] [-l tcp:host:port] [-s] [-d fd]"

#define MAX_EP 64

static double
parse_secs(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0.01) || v > 86400)
		die_usage(USAGE);
	return v;
}

static int
parse_fd(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > (1 << 20))
		die_usage(USAGE);
	return (int)v;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "interval", required_argument, 0, 'I' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	metrics_opts o = METRICS_OPTS_DEFAULT;
	const char *in[MAX_EP], *up[MAX_EP], *listen = 0;
	int nin = 0, nup = 0, c, i, rc;
	char err[512];
	metrics *m;

	die_init(argv[0]);
	opterr = 0;	/* one voice: our usage line, not getopt's */
	while ((c = getopt_long(argc, argv, "i:u:l:sd:h", lo, 0)) != -1) {
		switch (c) {
		case 'i':
			if (nin == MAX_EP)
				die_usage(USAGE);
			in[nin++] = optarg;
			break;
		case 'u':
			if (nup == MAX_EP)
				die_usage(USAGE);
			up[nup++] = optarg;
			break;
		case 'l':
			if (listen)
				die_usage(USAGE);
			listen = optarg;
			break;
		case 's': o.summary = 1; break;
		case 'd': o.ready_fd = parse_fd(optarg); break;
		case 'I': o.interval = parse_secs(optarg); break;
		case 'h':
			printf("usage: %s\n", USAGE);
			return 0;
		default: die_usage(USAGE);
		}
	}
	/* something to read, and somewhere for it to go: -s sums up event
	 * streams, -l serves both kinds */
	if (optind != argc || (!nin && !nup) || (!listen && !o.summary) || (o.summary && !nin) ||
	    (nup && !listen))
		die_usage(USAGE);

	m = metrics_new(&o);
	for (i = 0; i < nin; i++)
		if (metrics_input(m, in[i], err, sizeof err) < 0)
			die_x(EXIT_SYS, "%s", err);   /* "unable to listen on EP: why" */
	for (i = 0; i < nup; i++)
		metrics_upstream(m, up[i]);
	if (listen && metrics_listen(m, listen, err, sizeof err) < 0)
		die_x(EXIT_SYS, "%s", err);
	rc = metrics_run(m);
	metrics_free(m);
	return rc;
}
