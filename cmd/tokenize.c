/* tokenize: prompts and chat messages in, requests with the model's token
 * ids out (see tokenize(1)). */

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "die.h"
#include "tokenize.h"

#define USAGE "tokenize [-m model] [-i text|json|msgpack] [-o msgpack|json] [-c] [--no-special] [--special-in-content] [--chat-template name]"

static int
kind(const char *s, int text_ok)
{
	if (!strcmp(s, "json"))
		return STREAM_JSON;
	if (!strcmp(s, "msgpack"))
		return STREAM_MSGPACK;
	if (text_ok && !strcmp(s, "text"))
		return STREAM_TEXT;
	die_usage(USAGE);
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "no-special", no_argument, 0, 'S' },
		{ "special-in-content", no_argument, 0, 'C' },
		{ "chat-template", required_argument, 0, 'T' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	tokenize_opts o = TOKENIZE_OPTS_DEFAULT;
	const char *model = 0;
	tok *t;
	int c;

	die_init(argv[0]);
	opterr = 0;	/* one voice: our usage line, not getopt's */
	while ((c = getopt_long(argc, argv, "m:i:o:ch", lo, 0)) != -1) {
		switch (c) {
		case 'm': model = optarg; break;
		case 'i': o.in = kind(optarg, 1); break;
		case 'o': o.out = kind(optarg, 0); break;
		case 'c': o.count = 1; break;
		case 'S': o.no_special = 1; break;
		case 'C': o.special_in_content = 1; break;
		case 'T':
			o.chat = chat_by_name(optarg);
			if (o.chat < 0)
				die_x(EXIT_USAGE, "unknown chat template \"%s\"; known: %s", optarg, chat_known());
			break;
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
	tokenize_run(t, &o, 0, 1);
	tok_free(t);
	return 0;
}
