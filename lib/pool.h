/* pool: the engine's worker threads. pool_run hands one function to every
 * thread at once and returns when all are done; between runs the workers
 * spin briefly (a forward pass makes hundreds of runs per token, and a
 * sleep/wake per run would cost more than the work) and then sleep on a
 * futex, so an idle engine uses no CPU. */
#ifndef SLUICE_POOL_H
#define SLUICE_POOL_H

typedef struct pool pool;

/* n threads in all, the caller included (n - 1 are started); n < 1 means
 * one per online core. */
pool *pool_new(int n);
void pool_free(pool *p);
int pool_size(const pool *p);
/* fn(arg, ith, nth) on every thread, ith 0 being the caller. */
void pool_run(pool *p, void (*fn)(void *arg, int ith, int nth), void *arg);

/* [*lo, *hi): thread ith's share of n items split in nth contiguous runs,
 * each a multiple of align (but the last). */
void pool_split(int ith, int nth, long n, long align, long *lo, long *hi);

#endif
