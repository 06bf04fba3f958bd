/* die: error reporting and exit codes shared by every program. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"

const char *die_prog = "sluice";
int die_verbose;

void
die_init(const char *argv0)
{
	const char *s;

	if (!argv0 || !*argv0)
		return;
	s = strrchr(argv0, '/');
	die_prog = s ? s + 1 : argv0;
	if (getenv("SLUICE_VERBOSE"))
		die_verbose = 1;
}

static void
say(const char *kind, const char *fmt, va_list ap, int err)
{
	char line[1024];
	int n;

	n = snprintf(line, sizeof line, "%s: %s", die_prog, kind);
	if (n < 0 || (size_t)n >= sizeof line)
		n = 0;
	vsnprintf(line + n, sizeof line - n, fmt, ap);
	if (err)
		fprintf(stderr, "%s: %s\n", line, strerror(err));
	else
		fprintf(stderr, "%s\n", line);
}

void
die_usage(const char *usage)
{
	fprintf(stderr, "%s: usage: %s\n", die_prog, usage);
	exit(EXIT_USAGE);
}

void
die_sys(const char *fmt, ...)
{
	int e = errno;
	va_list ap;

	va_start(ap, fmt);
	say("fatal: ", fmt, ap, e ? e : EIO);
	va_end(ap);
	exit(EXIT_SYS);
}

void
die_x(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say("fatal: ", fmt, ap, 0);
	va_end(ap);
	exit(code);
}

void
warn_x(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say("warning: ", fmt, ap, 0);
	va_end(ap);
}

void
warn_sys(const char *fmt, ...)
{
	int e = errno;
	va_list ap;

	va_start(ap, fmt);
	say("warning: ", fmt, ap, e ? e : EIO);
	va_end(ap);
}

void
info_x(const char *fmt, ...)
{
	va_list ap;

	if (!die_verbose)
		return;
	va_start(ap, fmt);
	say("info: ", fmt, ap, 0);
	va_end(ap);
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die_sys("unable to allocate %zu bytes", n);
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		die_sys("unable to allocate %zu x %zu bytes", n, size);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		die_sys("unable to allocate %zu bytes", n);
	return q;
}

char *
xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xmalloc(n), s, n);
}

char *
xstrndup(const char *s, size_t n)
{
	char *d = xmalloc(n + 1);

	memcpy(d, s, n);
	d[n] = 0;
	return d;
}

void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
