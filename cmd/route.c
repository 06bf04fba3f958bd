/* route: many clients in front of many engines: batchd's queue and a
 * balance policy over replicas (see route(1)). */
#include "batchd.h"

int
main(int argc, char **argv)
{
	return route_main(argc, argv);
}
