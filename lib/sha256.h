/* sha256: SHA-256 (FIPS 180-4), streaming and whole-file, with lowercase hex
 * output; used to verify downloaded model files. */
#ifndef SLUICE_SHA256_H
#define SLUICE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32          /* digest bytes */
#define SHA256_HEXLEN 64       /* hex digits, without the NUL */

typedef struct {
	uint32_t h[8];          /* chaining state */
	uint64_t len;           /* bytes hashed so far */
	unsigned char buf[64];  /* pending partial block */
	size_t nbuf;            /* bytes used in buf */
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
/* writes the digest and leaves c ready for sha256_init again */
void sha256_final(sha256_ctx *c, unsigned char out[SHA256_LEN]);
/* one call: digest of a buffer */
void sha256(const void *data, size_t n, unsigned char out[SHA256_LEN]);
/* hex[65]: 64 lowercase hex digits and a NUL */
void sha256_hex(const unsigned char d[SHA256_LEN], char hex[SHA256_HEXLEN + 1]);
/* digest of a whole file as hex; 0 ok, -1 with errno set */
int sha256_file(const char *path, char hex[SHA256_HEXLEN + 1]);

#endif
