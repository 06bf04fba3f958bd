/* die: the one error voice of every sluice program.
 * "prog: fatal: unable to <verb> <what>: <strerror>" and the exit codes shared
 * by all programs (0 ok, 1 no, 99 timeout, 100 usage, 111 system, 126/127 exec). */
#ifndef SLUICE_DIE_H
#define SLUICE_DIE_H

#include <stdarg.h>
#include <stddef.h>

enum {
	EXIT_NO = 1,        /* a negative answer */
	EXIT_TIMEOUT = 99,
	EXIT_USAGE = 100,
	EXIT_SYS = 111,     /* system or I/O failure, bad input file */
	EXIT_EXEC = 126,
	EXIT_NOTFOUND = 127,
};

extern const char *die_prog;   /* set by die_init from argv[0] */

void die_init(const char *argv0);
/* "prog: usage: USAGE", exit 100 */
_Noreturn void die_usage(const char *usage);
/* "prog: fatal: unable to ...: strerror(errno)", exit 111 */
_Noreturn void die_sys(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "prog: fatal: ...", exit code given (no strerror) */
_Noreturn void die_x(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "prog: warning: ..." */
void warn_x(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "prog: warning: ...: strerror(errno)" */
void warn_sys(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "prog: info: ..." only when SLUICE_VERBOSE is set or die_verbose > 0 */
extern int die_verbose;
void info_x(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* formats an error message into err[errlen] (nothing if err is NULL) */
void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* allocation that cannot fail quietly: on ENOMEM the program dies with 111 */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* n bytes of s and a NUL (s may hold NULs: ids, raw messages) */
char *xstrndup(const char *s, size_t n);

#endif
