/* Unit tests for lib/sse: events come out whole and the same wherever the
 * bytes are cut, every line ending is a line ending, and the limit holds. */

#include <stdlib.h>
#include <string.h>

#include "sse.h"
#include "tap.h"

typedef struct got {
	char all[4096];        /* every event's data, each followed by '|' */
	size_t n, events;
	int stop_after;        /* stop (return 1) after this many events; 0 never */
} got;

static int
take(void *ud, const char *d, size_t n)
{
	got *g = ud;

	if (g->n + n + 1 < sizeof g->all) {
		memcpy(g->all + g->n, d, n);
		g->n += n;
		g->all[g->n++] = '|';
		g->all[g->n] = 0;
	}
	g->events++;
	return g->stop_after && (int)g->events >= g->stop_after ? 1 : 0;
}

/* feeds s in pieces of k bytes; returns the data seen */
static int
feed_by(const char *s, size_t k, size_t max, got *g)
{
	sse x = SSE_ZERO;
	size_t n = strlen(s), i;
	int r = 0;

	memset(g, 0, sizeof *g);
	x.max = max;
	for (i = 0; i < n && r == 0; i += k)
		r = sse_feed(&x, s + i, i + k > n ? n - i : k, take, g);
	sse_free(&x);
	return r;
}

int
main(void)
{
	static const char stream[] =
		": a comment\n"
		"event: message\n"
		"data: {\"a\":1}\n\n"
		"data:{\"b\":2}\r\n\r\n"
		"id: 7\rdata: x\rdata: y\r\r"
		"retry: 10\n\n"                         /* an event without data: nothing */
		"data: [DONE]\n\n"
		"data: cut at the end";
	const char *want = "{\"a\":1}|{\"b\":2}|x\ny|[DONE]|";
	got g;
	size_t k;
	int all = 1;
	char big[600];

	ok(feed_by(stream, sizeof stream, 0, &g) == 0 && !strcmp(g.all, want),
	   "one feed: the events whole, comments and other fields skipped, the unfinished one held");
	for (k = 1; k < sizeof stream; k++)
		if (feed_by(stream, k, 0, &g) != 0 || strcmp(g.all, want))
			all = 0;
	ok(all, "cut at every size: the same events");
	ok(feed_by("data: a\r", 8, 0, &g) == 0 && g.events == 0, "a line ended by \\r waits for the blank line");
	ok(feed_by("data: a\r\n\r\n", 1, 0, &g) == 0 && !strcmp(g.all, "a|"), "\\r\\n cut between \\r and \\n");
	ok(feed_by("data\n\n", 100, 0, &g) == 0 && g.events == 1 && !strcmp(g.all, "|"),
	   "a bare 'data' field (no colon) is an empty data line");
	ok(feed_by("database: x\n\n", 100, 0, &g) == 0 && g.events == 0, "a field that only starts with data is not data");
	ok(feed_by("data:\n\n", 100, 0, &g) == 0 && g.events == 1 && !strcmp(g.all, "|"),
	   "an empty data field is an empty event");

	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = 0;
	memcpy(big, "data: ", 6);
	ok(feed_by(big, 7, 256, &g) == -1, "a line past the limit: -1");
	ok(feed_by("data: 0123456789\ndata: 0123456789\n\n", 3, 20, &g) == -1, "an event past the limit: -1");
	ok(feed_by("data: 0123456789\n\ndata: 0123456789\n\n", 3, 20, &g) == 0 && g.events == 2,
	   "events under the limit, one after another: fine");
	{
		sse x = SSE_ZERO;

		memset(&g, 0, sizeof g);
		x.max = 8;
		ok(sse_feed(&x, "data: 0123456789\n", 17, take, &g) == -1 &&
		   sse_feed(&x, "\n", 1, take, &g) == -1 && g.events == 0, "broken is sticky");
		sse_free(&x);
	}
	memset(&g, 0, sizeof g);
	{
		sse x = SSE_ZERO;

		g.stop_after = 1;
		ok(sse_feed(&x, "data: a\n\ndata: b\n\n", 18, take, &g) == 1 && g.events == 1,
		   "a callback's positive return stops the feed and is returned");
		sse_free(&x);
	}
	return done_testing();
}
