/* batchd: admission control, a bounded queue and a release policy between
 * many clients and one engine (see batchd(1)). */
#include "batchd.h"

int
main(int argc, char **argv)
{
	return batchd_main(argc, argv);
}
