/* sse: an incremental, bounded reader of text/event-stream (see sse.h). */

#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "sse.h"

#define SSE_MAX_DEFAULT (1u << 20)

static size_t
sse_max(const sse *s)
{
	return s->max ? s->max : SSE_MAX_DEFAULT;
}

/* Appends p[0..n) to *buf, keeping room for a NUL; -1 past max. */
static int
append(char **buf, size_t *len, size_t *cap, const char *p, size_t n, size_t max)
{
	if (*len + n > max)
		return -1;
	if (*len + n + 1 > *cap) {
		size_t c = *cap ? *cap : 256;

		while (c < *len + n + 1)
			c *= 2;
		*buf = xrealloc(*buf, c);
		*cap = c;
	}
	memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = 0;
	return 0;
}

/* One whole line (without its end): a field, a comment, or the blank line
 * that ends an event. */
static int
line_done(sse *s, sse_cb cb, void *ud)
{
	const char *v;
	size_t n = s->llen;
	int r;

	if (n == 0) {
		if (!s->has_data)
			return 0;
		s->has_data = 0;
		r = cb(ud, s->data ? s->data : "", s->dlen);
		s->dlen = 0;
		if (s->data)
			s->data[0] = 0;
		return r;
	}
	if (n == 4 && !memcmp(s->line, "data", 4)) {
		v = "", n = 0;                  /* a field without a colon: its value is empty */
	} else if (n >= 5 && !memcmp(s->line, "data:", 5)) {
		v = s->line + 5;
		n -= 5;
		if (n && *v == ' ')
			v++, n--;
	} else {
		return 0;                       /* a comment, or a field we do not use */
	}
	if (s->has_data && append(&s->data, &s->dlen, &s->dcap, "\n", 1, sse_max(s)) < 0)
		return -1;
	if (append(&s->data, &s->dlen, &s->dcap, v, n, sse_max(s)) < 0)
		return -1;
	s->has_data = 1;
	return 0;
}

int
sse_feed(sse *s, const char *p, size_t n, sse_cb cb, void *ud)
{
	const char *end = p + n, *q;
	int r;

	if (s->broken)
		return -1;
	while (p < end) {
		if (s->cr && *p == '\n') {      /* the rest of a "\r\n" */
			s->cr = 0;
			p++;
			continue;
		}
		s->cr = 0;
		for (q = p; q < end && *q != '\n' && *q != '\r'; q++)
			;
		if (append(&s->line, &s->llen, &s->lcap, p, (size_t)(q - p), sse_max(s)) < 0) {
			s->broken = 1;
			return -1;
		}
		if (q == end)
			break;
		s->cr = *q == '\r';
		p = q + 1;
		r = line_done(s, cb, ud);
		s->llen = 0;
		if (r < 0) {
			s->broken = 1;
			return -1;
		}
		if (r)
			return r;
	}
	return 0;
}

void
sse_free(sse *s)
{
	free(s->line);
	free(s->data);
	*s = (sse)SSE_ZERO;
}
