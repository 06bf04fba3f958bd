/* sluice-run: `sluice run`, the offline batch job in one command:
 * tokenize | infer-cpu | detokenize over a file of requests, with progress
 * (lib/run does it; see sluice-run(1)). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "run.h"
#include "sluice.h"
#include "stream.h"

#define USAGE "sluice run [-m model] [-t threads] [-n max_tokens] [--temperature F] [--seed N] " \
	"[--chat] [--device auto|cpu|gpu] [-i text|json|msgpack] [-o text|json|msgpack] " \
	"[--progress|--no-progress] [file|-]"

static uint64_t
number(const char *s, uint64_t hi)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || errno || v > hi)
		die_usage(USAGE);
	return v;
}

static int
kind(const char *s)
{
	if (!strcmp(s, "text"))
		return STREAM_TEXT;
	if (!strcmp(s, "json"))
		return STREAM_JSON;
	if (!strcmp(s, "msgpack"))
		return STREAM_MSGPACK;
	die_usage(USAGE);
}

int
cmd_run(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "max-tokens", 1, 0, 'n' }, { "temperature", 1, 0, 'T' }, { "seed", 1, 0, 'S' },
		{ "chat", 0, 0, 'c' }, { "device", 1, 0, 'D' }, { "progress", 0, 0, 'P' },
		{ "no-progress", 0, 0, 'Q' }, { "threads", 1, 0, 't' }, { "model", 1, 0, 'm' },
		{ "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
	};
	run_opts o = RUN_OPTS_DEFAULT;
	char *end;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "m:t:n:i:o:h", lo, 0)) != -1) {
		switch (c) {
		case 'm': o.model = optarg; break;
		case 't': o.threads = (unsigned)number(optarg, 1024); if (!o.threads) die_usage(USAGE); break;
		case 'n': o.max_tokens = (int64_t)number(optarg, 1u << 24); break;
		case 'T':
			o.temperature = strtod(optarg, &end);
			if (end == optarg || *end || !(o.temperature >= 0) || isinf(o.temperature))
				die_usage(USAGE);
			o.has_temperature = 1;
			break;
		case 'S': o.seed = number(optarg, UINT64_MAX); o.has_seed = 1; break;
		case 'c': o.chat = 1; break;
		case 'D':
			if (!strcmp(optarg, "auto"))
				o.device = RUN_AUTO;
			else if (!strcmp(optarg, "cpu"))
				o.device = RUN_CPU;
			else if (!strcmp(optarg, "gpu"))
				o.device = RUN_GPU;
			else
				die_usage(USAGE);
			break;
		case 'i': o.in = kind(optarg); break;
		case 'o': o.out = kind(optarg); break;
		case 'P': o.progress = 1; break;
		case 'Q': o.progress = 0; break;
		case 'h':
			printf("usage: %s\n", USAGE);
			return 0;
		default: die_usage(USAGE);
		}
	}
	if (argc - optind > 1)
		die_usage(USAGE);
	o.input = optind < argc ? argv[optind] : 0;
	return run_main(&o);
}
