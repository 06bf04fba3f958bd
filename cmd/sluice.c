/* sluice: the front door for people; dispatches to the subcommands, one
 * table of them (git.c's commands[]), each in cmd/sluice-<name>.c. */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "die.h"
#include "sluice.h"

static const struct subcmd {
	const char *name;
	int (*fn)(int argc, char **argv);   /* argv[0] is name */
	const char *help;                   /* what follows "sluice NAME" in the usage */
} cmds[] = {
	{ "cat", cmd_cat, "[-j|-m] [-i json|msgpack] [-u endpoint] [-t ms]" },
	{ "model", cmd_model, "fetch|path|synth" },
	{ "gguf", cmd_gguf, "info|tensors|kv FILE" },
	{ "run", cmd_run, "[-m model] [-t threads] [-n max_tokens] [--device auto|cpu|gpu] [-i kind] [-o kind] [file]" },
	{ "bench", bench_main, "(-u endpoint | --openai url) [options]" },
	{ "serve", cmd_serve, "[-m model] [-l tcp:host:port] [--emit s6|supervisord|systemd dir] [options]" },
	/* more subcommands here, one line each */
};
#define NCMDS (sizeof cmds / sizeof cmds[0])

/* "sluice cat ... | sluice model ... | ...", from the table */
static const char *
usage(void)
{
	static char u[1024];
	size_t i, n = 0;

	for (i = 0; i < NCMDS && n < sizeof u; i++)
		n += (size_t)snprintf(u + n, sizeof u - n, "%ssluice %s %s", i ? " | " : "",
				      cmds[i].name, cmds[i].help);
	return u;
}

int
main(int argc, char **argv)
{
	size_t i;

	die_init(argv[0]);
	if (argc < 2)
		die_usage(usage());
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		printf("usage: %s\n", usage());
		return 0;
	}
	for (i = 0; i < NCMDS; i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	die_usage(usage());
}
