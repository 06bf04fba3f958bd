/* infer: the engine program that infer-cpu (and infer-gpu) run with their
 * backend: options, then a daemon around lib/engine (endpoints, admission,
 * fair turns between connections, flow control, the stats answer), or
 * --perplexity through lib/ppl. */
#ifndef SLUICE_INFER_H
#define SLUICE_INFER_H

#include "backend.h"

/* The whole program; returns the exit status. */
int infer_main(int argc, char **argv, const backend *be);

#endif
