/* pool: a fork-join thread pool with spin-then-futex waiting. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "die.h"
#include "pool.h"

/* Spins before sleeping: about 100 us on this machine's cores. */
#define SPINS 20000
/* The caller spins this long for the others to finish before it yields. */
#define WAIT_SPINS 2000

struct pool {
	int n;
	pthread_t *th;
	void (*fn)(void *, int, int);
	void *arg;
	_Atomic unsigned gen;        /* bumped once per run (and at shutdown) */
	_Atomic int done;            /* workers finished with the current run */
	_Atomic int sleepers;        /* workers waiting in futex */
	_Atomic int quit;
	struct worker { pool *p; int ith; } *w;
};

static void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static void
futex_wait(_Atomic unsigned *addr, unsigned val)
{
	syscall(SYS_futex, (unsigned *)addr, FUTEX_WAIT_PRIVATE, val, 0, 0, 0);
}

static void
futex_wake(_Atomic unsigned *addr)
{
	syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, 0, 0, 0);
}

static void *
worker(void *v)
{
	struct worker *w = v;
	pool *p = w->p;
	unsigned seen = 0;
	int i;

	for (;;) {
		unsigned g;

		for (i = 0; i < SPINS; i++) {
			g = atomic_load_explicit(&p->gen, memory_order_acquire);
			if (g != seen)
				break;
			cpu_relax();
		}
		if (i == SPINS) {
			atomic_fetch_add(&p->sleepers, 1);
			while ((g = atomic_load(&p->gen)) == seen)   /* seq_cst: pairs with pool_run */
				futex_wait(&p->gen, seen);
			atomic_fetch_sub(&p->sleepers, 1);
		}
		seen = g;
		if (atomic_load(&p->quit))
			return 0;
		p->fn(p->arg, w->ith, p->n);
		atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
	}
}

pool *
pool_new(int n)
{
	pool *p = xcalloc(1, sizeof *p);
	int i, e;

	if (n < 1) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		n = c > 0 ? (int)c : 1;
	}
	p->n = n;
	p->th = xcalloc((size_t)p->n, sizeof *p->th);
	p->w = xcalloc((size_t)p->n, sizeof *p->w);
	for (i = 1; i < p->n; i++) {
		p->w[i].p = p;
		p->w[i].ith = i;
		if ((e = pthread_create(&p->th[i], 0, worker, &p->w[i]))) {
			errno = e;
			die_sys("unable to start a worker thread");
		}
	}
	return p;
}

void
pool_free(pool *p)
{
	int i;

	if (!p)
		return;
	atomic_store(&p->quit, 1);
	atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
	futex_wake(&p->gen);
	for (i = 1; i < p->n; i++)
		pthread_join(p->th[i], 0);
	free(p->th);
	free(p->w);
	free(p);
}

int
pool_size(const pool *p)
{
	return p->n;
}

void
pool_run(pool *p, void (*fn)(void *, int, int), void *arg)
{
	if (p->n == 1) {
		fn(arg, 0, 1);
		return;
	}
	p->fn = fn;
	p->arg = arg;
	atomic_store_explicit(&p->done, 0, memory_order_relaxed);
	atomic_fetch_add(&p->gen, 1);   /* seq_cst, then sleepers: no lost wake-up */
	if (atomic_load(&p->sleepers))
		futex_wake(&p->gen);
	fn(arg, 0, p->n);
	/* spin: the others finish within microseconds, unless the machine is
	 * oversubscribed and one of them lost its core; then give ours away */
	for (unsigned i = 0; atomic_load_explicit(&p->done, memory_order_acquire) != p->n - 1; i++) {
		if (i < WAIT_SPINS)
			cpu_relax();
		else
			sched_yield();
	}
}

void
pool_split(int ith, int nth, long n, long align, long *lo, long *hi)
{
	long units = (n + align - 1) / align;
	long per = units / nth, extra = units % nth;
	long u0 = ith * per + (ith < extra ? ith : extra);
	long u1 = u0 + per + (ith < extra);

	*lo = u0 * align;
	*hi = u1 * align;
	if (*lo > n)
		*lo = n;
	if (*hi > n)
		*hi = n;
}
