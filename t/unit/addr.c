/* Unit tests of lib/addr: endpoint strings parsed, and refused with a
 * message and nothing left allocated. */
#include <string.h>

#include "addr.h"
#include "tap.h"

static int
parses(const char *ep, addr *a)
{
	char err[256] = "";
	int r = addr_parse(ep, a, err, sizeof err);

	if (r < 0 && !*err)
		printf("# %s: no error message\n", ep);
	return r == 0;
}

static int
refused(const char *ep)
{
	addr a = ADDR_ZERO;
	char err[256] = "";
	int r = addr_parse(ep, &a, err, sizeof err);

	printf("# %s -> %s\n", ep, err);
	return r < 0 && *err && a.host == NULL && a.path == NULL;
}

static int
streq(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

static void
test_parse(void)
{
	addr a = ADDR_ZERO;

	ok(parses("-", &a) && a.kind == ADDR_STDIO, "- is stdio");
	addr_free(&a);
	ok(parses("unix:/run/x.sock", &a) && a.kind == ADDR_UNIX && streq(a.path, "/run/x.sock"), "unix path");
	addr_free(&a);
	ok(parses("tcp:127.0.0.1:8080", &a) && a.kind == ADDR_TCP && streq(a.host, "127.0.0.1") &&
	   streq(a.port, "8080"), "tcp ipv4");
	addr_free(&a);
	ok(parses("tcp:[::1]:9", &a) && streq(a.host, "::1") && streq(a.port, "9"), "tcp ipv6 in brackets");
	addr_free(&a);
	ok(parses("tcp:localhost:65535", &a) && streq(a.host, "localhost"), "tcp host name");
	addr_free(&a);
	ok(parses("tcp:*:80", &a) && streq(a.host, "*"), "tcp any address");
	addr_free(&a);
	ok(parses("fd:3", &a) && a.kind == ADDR_FD && a.fd == 3, "fd:3");
	addr_free(&a);
	ok(parses("redis://127.0.0.1/sl:jobs", &a) && a.kind == ADDR_REDIS && streq(a.host, "127.0.0.1") &&
	   streq(a.port, "6379") && streq(a.stream, "sl:jobs") && streq(a.group, "sluice") &&
	   !a.consumer && !a.reply && a.claim_ms == 30000 && a.max_deliver == 5 && a.prefetch == 64,
	   "redis defaults");
	addr_free(&a);
	ok(parses("redis://[::1]:7000/s?group=g&consumer=c%3A1&reply=r&claim=500&dead=3&prefetch=8", &a) &&
	   streq(a.host, "::1") && streq(a.port, "7000") && streq(a.stream, "s") && streq(a.group, "g") &&
	   streq(a.consumer, "c:1") && streq(a.reply, "r") && a.claim_ms == 500 && a.max_deliver == 3 &&
	   a.prefetch == 8, "redis with every parameter");
	addr_free(&a);
	ok(a.kind == ADDR_STDIO && a.fd == -1 && !a.host, "addr_free leaves a zero address");

	ok(refused(""), "empty");
	ok(refused("http://x"), "unknown scheme");
	ok(refused("stdin"), "a bare word");
	ok(refused("unix:"), "unix without a path");
	ok(refused("unix:/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
	   "unix path too long");
	ok(refused("tcp:127.0.0.1"), "tcp without a port");
	ok(refused("tcp::80"), "tcp without a host");
	ok(refused("tcp:1.2.3.4:0"), "tcp port 0");
	ok(refused("tcp:1.2.3.4:65536"), "tcp port too big");
	ok(refused("tcp:1.2.3.4:http"), "tcp port not numeric");
	ok(refused("tcp:::1:80"), "bare ipv6");
	ok(refused("tcp:[::1]80"), "junk after ]");
	ok(refused("tcp:[]:80"), "empty brackets");
	ok(refused("fd:"), "fd without a number");
	ok(refused("fd:-1"), "fd negative");
	ok(refused("fd:3x"), "fd junk");
	ok(refused("fd:99999999999"), "fd too big");
	ok(refused("redis://host"), "redis without a stream");
	ok(refused("redis://host/"), "redis empty stream");
	ok(refused("redis://host:port/s"), "redis bad port");
	ok(refused("redis://u:p@host/s"), "redis password");
	ok(refused("redis://host/s?bogus=1"), "redis unknown parameter");
	ok(refused("redis://host/s?dead=0"), "redis dead 0");
	ok(refused("redis://host/s?claim=x"), "redis claim not a number");
	ok(refused("redis://host/s?group="), "redis empty group");
	ok(refused("redis://host/s%zz"), "redis bad escape");
}

int
main(void)
{
	test_parse();
	return done_testing();
}
