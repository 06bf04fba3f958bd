/* infer-cpu: the sluice engine on the CPU: requests with tokens in, token
 * events out, continuous batching over a paged KV cache (see infer-cpu(1)). */
#include "cpu.h"
#include "infer.h"

int
main(int argc, char **argv)
{
	return infer_main(argc, argv, &cpu_backend);
}
