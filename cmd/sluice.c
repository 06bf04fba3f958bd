/* sluice: the front door for people; dispatches to the subcommands
 * (`sluice cat`, `sluice model`, `sluice bench`). */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "cat.h"
#include "die.h"
#include "fetch.h"
#include "ggufcmd.h"

#define USAGE "sluice cat [-j|-m] [-i json|msgpack] [-u endpoint] [-t ms] | sluice model fetch|path|synth | sluice gguf info|tensors|kv FILE | sluice bench (-u endpoint | --openai url) [options]"

int
main(int argc, char **argv)
{
	die_init(argv[0]);
	if (argc < 2)
		die_usage(USAGE);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		printf("usage: %s\n", USAGE);
		return 0;
	}
	if (!strcmp(argv[1], "bench"))
		return bench_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "cat"))
		return cat_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "gguf"))
		return ggufcmd_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "model"))
		return fetch_main(argc - 1, argv + 1);
	die_usage(USAGE);
}
