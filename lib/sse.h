/* sse: an incremental reader of Server-Sent Events (text/event-stream), for
 * clients of OpenAI-compatible servers (`sluice bench --openai`). Bytes go in
 * as they arrive, cut anywhere; each event's data comes out whole. What it
 * holds is bounded: an event larger than the limit is an error, not a grown
 * buffer. */
#ifndef SLUICE_SSE_H
#define SLUICE_SSE_H

#include <stddef.h>

typedef struct sse {
	size_t max;            /* bytes of one event's data (and of one line); 0: 1 MiB */
	char *line;            /* the line being read */
	size_t llen, lcap;
	char *data;            /* the event being gathered: its data lines joined by '\n' */
	size_t dlen, dcap;
	int has_data;          /* a data line was seen in this event */
	int cr;                /* the last byte was '\r': a '\n' next ends no new line */
	int broken;            /* a limit was broken: sticky */
} sse;
#define SSE_ZERO {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

/* Called once per event that has data, with its data (NUL-terminated, n bytes
 * before the NUL). It returns 0 to go on, or a positive value that stops
 * sse_feed, which then returns it. */
typedef int (*sse_cb)(void *ud, const char *data, size_t n);

/* Feeds n bytes. Lines end with "\n", "\r\n" or "\r"; a blank line ends an
 * event; "data:" lines are gathered (one leading space dropped), comments
 * (":...") and other fields (event, id, retry) ignored. 0 ok, a callback's
 * positive return as is, or -1: a line or an event went past s->max (the
 * stream cannot be read further). */
int sse_feed(sse *s, const char *p, size_t n, sse_cb cb, void *ud);
void sse_free(sse *s);

#endif
