/* sha256 unit test: the FIPS 180-4 example vectors (NIST CSRC "SHA256.pdf",
 * "SHA2_Additional.pdf"), streaming in odd-sized pieces, and sha256_file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sha256.h"
#include "tap.h"

static const char *
hexof(const void *p, size_t n)
{
	static char hex[SHA256_HEXLEN + 1];
	unsigned char d[SHA256_LEN];

	sha256(p, n, d);
	sha256_hex(d, hex);
	return hex;
}

int
main(void)
{
	static const char m448[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	static const char m896[] = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
		"hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
	const char *abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	const char *million = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
	char hex[SHA256_HEXLEN + 1], path[] = "/tmp/sluice-sha256.XXXXXX";
	unsigned char d[SHA256_LEN];
	sha256_ctx c = { 0 };
	char *a;
	size_t i, step;
	int fd, same;
	FILE *f;

	ok(!strcmp(hexof("abc", 3), abc), "\"abc\"");
	ok(!strcmp(hexof("", 0),
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "empty string");
	ok(!strcmp(hexof(m448, 56),
		"248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"), "448-bit message");
	ok(!strcmp(hexof(m896, 112),
		"cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"), "896-bit message");

	a = malloc(1000000);
	memset(a, 'a', 1000000);
	ok(!strcmp(hexof(a, 1000000), million), "one million 'a'");

	/* the same message streamed in pieces of every size from 1 to 130,
	 * so each path of sha256_update (partial, whole blocks, tail) is taken */
	same = 1;
	for (step = 1; step <= 130; step++) {
		sha256_init(&c);
		for (i = 0; i < 1000000; i += step)
			sha256_update(&c, a + i, 1000000 - i < step ? 1000000 - i : step);
		sha256_final(&c, d);
		sha256_hex(d, hex);
		if (strcmp(hex, million)) {
			same = 0;
			printf("# step %zu gives %s\n", step, hex);
			break;
		}
	}
	ok(same, "one million 'a' streamed in pieces of 1..130 bytes");

	/* lengths around the padding boundary (55, 56, 63, 64, 65): compare the
	 * one-shot digest with a byte-at-a-time one */
	same = 1;
	for (i = 0; i <= 130; i++) {
		char one[SHA256_HEXLEN + 1];

		strcpy(one, hexof(a, i));
		sha256_init(&c);
		for (step = 0; step < i; step++)
			sha256_update(&c, "a", 1);
		sha256_final(&c, d);
		sha256_hex(d, hex);
		same &= !strcmp(one, hex);
	}
	ok(same, "lengths 0..130: one-shot equals byte at a time");

	/* 64 'a': one full block plus a whole padding block */
	ok(!strcmp(hexof(a, 64),
		"ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"), "64 'a'");

	/* sha256_final resets the context: reuse gives "abc" again */
	sha256_init(&c);
	sha256_update(&c, "xyz", 3);
	sha256_final(&c, d);
	sha256_update(&c, "abc", 3);
	sha256_final(&c, d);
	sha256_hex(d, hex);
	ok(!strcmp(hex, abc), "context reusable after sha256_final");

	fd = mkstemp(path);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	ok(f && fwrite(a, 1, 1000000, f) == 1000000 && fclose(f) == 0, "write a file");
	ok(sha256_file(path, hex) == 0 && !strcmp(hex, million), "sha256_file of one million 'a'");
	unlink(path);
	errno = 0;
	ok(sha256_file(path, hex) == -1 && errno == ENOENT, "sha256_file of a missing file: ENOENT");
	ok(sha256_file("/", hex) == -1 && errno == EISDIR, "sha256_file of a directory: EISDIR");

	free(a);
	return done_testing();
}
