/* infer: the engine program that infer-cpu (and infer-gpu) run: options,
 * requests in from any endpoint, continuous batching through lib/sched, a
 * backend's forward pass, sampling, stop strings, and token events out.
 * A backend only implements "run this batch forward". */
#ifndef SLUICE_INFER_H
#define SLUICE_INFER_H

#include "backend.h"

/* The whole program; returns the exit status. */
int infer_main(int argc, char **argv, const backend *be);

#endif
