/* libFuzzer target for lib/sse: whatever the bytes and wherever they are
 * cut, the events that come out are the same as from one feed, and nothing
 * held goes past the limit. The first byte picks the cut size. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"

#define must(c) do { if (!(c)) { fprintf(stderr, "fuzz-sse: %s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

typedef struct sink {
	uint64_t h;            /* a hash of every event's data, in order */
	size_t events;
} sink;

static int
take(void *ud, const char *d, size_t n)
{
	sink *s = ud;
	size_t i;

	must(d[n] == 0);
	must(n <= 512);
	for (i = 0; i < n; i++)
		s->h = (s->h ^ (unsigned char)d[i]) * 0x100000001b3ull;
	s->h = (s->h ^ 0x1ff) * 0x100000001b3ull;
	s->events++;
	return 0;
}

static int
run(const uint8_t *p, size_t n, size_t k, sink *s)
{
	sse x = SSE_ZERO;
	size_t i;
	int r = 0;

	x.max = 512;
	memset(s, 0, sizeof *s);
	s->h = 0xcbf29ce484222325ull;
	for (i = 0; i < n && r == 0; i += k)
		r = sse_feed(&x, (const char *)p + i, i + k > n ? n - i : k, take, s);
	must(x.llen <= 512 && x.dlen <= 512);
	sse_free(&x);
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *p, size_t n)
{
	sink a, b;
	int ra, rb;

	if (n < 1)
		return 0;
	ra = run(p + 1, n - 1, n, &a);
	rb = run(p + 1, n - 1, 1 + p[0] % 17, &b);
	must(ra == rb);
	if (ra == 0)
		must(a.h == b.h && a.events == b.events);
	return 0;
}
