/* fetchtest: `fetchtest fetch|path|check [file]` is `sluice model ...`,
 * for testing lib/fetch.c without cmd/sluice.c. */
#include <stddef.h>

#include "die.h"
#include "fetch.h"

int
main(int argc, char **argv)
{
	die_init("sluice");
	return fetch_main(argc, argv);
}
