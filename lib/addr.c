/* addr: endpoint strings parsed (-, unix:PATH, tcp:HOST:PORT, fd:N,
 * redis://HOST[:PORT]/STREAM[?group=G&consumer=C&reply=K&claim=MS&dead=N&prefetch=N]);
 * the loop (io) and Redis (rq) take what this reads. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "addr.h"
#include "die.h"

/* ---- helpers ------------------------------------------------------------- */

/* ---- parsing endpoints ----------------------------------------------------- */

int
addr_parse_uint(const char *s, size_t n, unsigned long max, unsigned long *v)
{
	unsigned long x = 0;
	size_t i;

	if (!n || n > 10)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		x = x * 10 + (unsigned long)(s[i] - '0');
	}
	if (x > max)
		return -1;
	*v = x;
	return 0;
}

/* HOST:PORT or [V6]:PORT in s[0..n); port optional when dflt is given. */
static int
parse_hostport(const char *s, size_t n, const char *dflt, addr *a,
	       char *err, size_t errlen)
{
	const char *hend, *colon;
	unsigned long port;
	size_t hl;

	if (n && s[0] == '[') {
		hend = memchr(s, ']', n);
		if (!hend || hend == s + 1) {
			seterr(err, errlen, "bad IPv6 address in \"%.*s\"", (int)n, s);
			return -1;
		}
		a->host = xstrndup(s + 1, (size_t)(hend - s - 1));
		colon = hend + 1 < s + n ? hend + 1 : NULL;
		if (colon && *colon != ':') {
			seterr(err, errlen, "junk after ] in \"%.*s\"", (int)n, s);
			return -1;
		}
	} else {
		colon = memrchr(s, ':', n);
		hl = colon ? (size_t)(colon - s) : n;
		if (!hl || memchr(s, ':', hl)) {
			seterr(err, errlen, "bad host in \"%.*s\" (IPv6 goes in brackets)", (int)n, s);
			return -1;
		}
		a->host = xstrndup(s, hl);
	}
	if (!colon) {
		if (!dflt) {
			seterr(err, errlen, "no port in \"%.*s\"", (int)n, s);
			return -1;
		}
		a->port = xstrdup(dflt);
		return 0;
	}
	colon++;
	if (addr_parse_uint(colon, (size_t)(s + n - colon), 65535, &port) < 0 || !port) {
		seterr(err, errlen, "bad port in \"%.*s\"", (int)n, s);
		return -1;
	}
	a->port = xstrndup(colon, (size_t)(s + n - colon));
	return 0;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A %XX-decoded copy of s[0..n), NULL if a % escape is bad or yields NUL. */
static char *
unescape(const char *s, size_t n)
{
	char *d = xmalloc(n + 1), *o = d;
	size_t i;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (s[i] != '%') {
			*o++ = s[i];
			continue;
		}
		if (i + 2 >= n)
			goto bad;
		hi = hexval((unsigned char)s[i + 1]);
		lo = hi < 0 ? -1 : hexval((unsigned char)s[i + 2]);
		if (lo < 0 || (hi == 0 && lo == 0))
			goto bad;
		*o++ = (char)(hi << 4 | lo);
		i += 2;
	}
	*o = 0;
	return d;
bad:
	free(d);
	return NULL;
}

/* One key=value of a redis query. */
static int
redis_param(addr *a, const char *p, size_t n, char *err, size_t errlen)
{
	const char *eq = memchr(p, '=', n);
	size_t kl = eq ? (size_t)(eq - p) : n, vl = eq ? n - kl - 1 : 0;
	const char *v = eq ? eq + 1 : "";
	unsigned long x;
	char **sp = NULL;
	unsigned *up = NULL;

	if (kl == 5 && !memcmp(p, "group", 5))
		sp = &a->group;
	else if (kl == 8 && !memcmp(p, "consumer", 8))
		sp = &a->consumer;
	else if (kl == 5 && !memcmp(p, "reply", 5))
		sp = &a->reply;
	else if (kl == 5 && !memcmp(p, "claim", 5))
		up = &a->claim_ms;
	else if (kl == 4 && !memcmp(p, "dead", 4))
		up = &a->max_deliver;
	else if (kl == 8 && !memcmp(p, "prefetch", 8))
		up = &a->prefetch;
	if (!sp && !up) {
		seterr(err, errlen, "unknown redis parameter \"%.*s\"", (int)kl, p);
		return -1;
	}
	if (sp) {
		free(*sp);
		*sp = vl ? unescape(v, vl) : NULL;
		if (!*sp) {
			seterr(err, errlen, "bad value for redis parameter \"%.*s\"", (int)kl, p);
			return -1;
		}
		return 0;
	}
	if (addr_parse_uint(v, vl, UINT_MAX, &x) < 0 || !x) {
		seterr(err, errlen, "redis parameter \"%.*s\" needs a positive number", (int)kl, p);
		return -1;
	}
	*up = (unsigned)x;
	return 0;
}

static int
parse_redis(const char *s, addr *a, char *err, size_t errlen)
{
	const char *slash = strchr(s, '/'), *q, *p, *amp;

	a->kind = ADDR_REDIS;
	a->claim_ms = 30000;
	a->max_deliver = 5;
	a->prefetch = 64;
	if (!slash || slash == s) {
		seterr(err, errlen, "redis endpoint needs redis://HOST[:PORT]/STREAM");
		return -1;
	}
	if (memchr(s, '@', (size_t)(slash - s))) {
		seterr(err, errlen, "redis user or password in the endpoint is not supported");
		return -1;
	}
	if (parse_hostport(s, (size_t)(slash - s), "6379", a, err, errlen) < 0)
		return -1;
	q = strchr(slash + 1, '?');
	a->stream = q == slash + 1 ? NULL : unescape(slash + 1, q ? (size_t)(q - slash - 1) : strlen(slash + 1));
	if (!a->stream || !*a->stream) {
		seterr(err, errlen, "redis endpoint has no stream name (or a bad %% escape)");
		return -1;
	}
	for (p = q ? q + 1 : NULL; p && *p; p = amp ? amp + 1 : NULL) {
		amp = strchr(p, '&');
		if (redis_param(a, p, amp ? (size_t)(amp - p) : strlen(p), err, errlen) < 0)
			return -1;
	}
	if (!a->group)
		a->group = xstrdup("sluice");
	return 0;
}

int
addr_parse(const char *ep, addr *a, char *err, size_t errlen)
{
	addr z = ADDR_ZERO;
	unsigned long fd;
	int r = -1;

	*a = z;
	if (!ep || !*ep) {
		seterr(err, errlen, "empty endpoint");
	} else if (!strcmp(ep, "-")) {
		r = 0;
	} else if (!strncmp(ep, "unix:", 5)) {
		a->kind = ADDR_UNIX;
		if (!ep[5])
			seterr(err, errlen, "unix endpoint has no path");
		else if (strlen(ep + 5) >= sizeof ((struct sockaddr_un *)0)->sun_path)
			seterr(err, errlen, "unix socket path is too long: %s", ep + 5);
		else
			a->path = xstrdup(ep + 5), r = 0;
	} else if (!strncmp(ep, "tcp:", 4)) {
		a->kind = ADDR_TCP;
		r = parse_hostport(ep + 4, strlen(ep + 4), NULL, a, err, errlen);
	} else if (!strncmp(ep, "fd:", 3)) {
		a->kind = ADDR_FD;
		if (addr_parse_uint(ep + 3, strlen(ep + 3), INT_MAX, &fd) < 0)
			seterr(err, errlen, "bad descriptor number in \"%s\"", ep);
		else
			a->fd = (int)fd, r = 0;
	} else if (!strncmp(ep, "redis://", 8)) {
		r = parse_redis(ep + 8, a, err, errlen);
	} else {
		seterr(err, errlen, "unknown endpoint \"%s\" (want -, unix:PATH, tcp:HOST:PORT, fd:N or redis://HOST:PORT/STREAM)", ep);
	}
	if (r < 0)
		addr_free(a);
	return r;
}

void
addr_free(addr *a)
{
	addr z = ADDR_ZERO;

	if (!a)
		return;
	free(a->path);
	free(a->host);
	free(a->port);
	free(a->stream);
	free(a->group);
	free(a->consumer);
	free(a->reply);
	*a = z;
}

