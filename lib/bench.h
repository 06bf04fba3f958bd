/* bench: `sluice bench`, a load generator that measures a serving endpoint
 * the way `vllm bench serve` and GuideLLM do: TTFT, TPOT, ITL, E2EL,
 * throughput and goodput, at a fixed concurrency, a request rate, or a sweep. */
#ifndef SLUICE_BENCH_H
#define SLUICE_BENCH_H

/* `sluice bench ...` with argv[0] "bench": returns the exit status (0 the run
 * completed, even with failed requests; 100 usage; 111 the target cannot be
 * reached, or a file cannot be read or written). */
int bench_main(int argc, char **argv);

#endif
