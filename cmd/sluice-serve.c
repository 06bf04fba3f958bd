/* sluice serve: a model served over HTTP by a supervised tree of sluice's
 * daemons, or that tree written out for s6, supervisord or systemd. */
#include "serve.h"
#include "sluice.h"

int
cmd_serve(int argc, char **argv)
{
	return serve_main(argc, argv);
}
