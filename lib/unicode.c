/* unicode: code point flags from the generated range tables, with a
 * two-level table built once for constant-time lookups (the pre-tokenizers
 * ask for the flags of every code point of the text), and UTF-8 coding the
 * way llama.cpp does it. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "unicode.h"

#define BLK 128
#define TOP 0x40000            /* the table covers planes 0-3; a search the rest */
#define NBLK (TOP / BLK)
#define MAXU 1024             /* unique blocks at most (about 400 in Unicode 15) */

static uint16_t *stage1;      /* NBLK: block number in stage2 */
static uint16_t *stage2;      /* unique blocks of BLK flags */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static unsigned
search(uint32_t cp)
{
	unsigned lo = 0, hi = uni_nranges;

	if (cp >= 0x110000)
		return UNI_UNDEFINED;
	while (hi - lo > 1) {
		unsigned mid = (lo + hi) / 2;
		if (uni_ranges[mid].cp <= cp)
			lo = mid;
		else
			hi = mid;
	}
	return uni_ranges[lo].flags;
}

static void
build(void)
{
	uint16_t *s1 = malloc(NBLK * sizeof *s1), *s2 = malloc(MAXU * BLK * sizeof *s2);
	uint16_t blk[BLK], slot[2 * MAXU];
	unsigned nb = 0, r = 0;

	if (!s1 || !s2)
		goto fail;
	memset(slot, 0xff, sizeof slot);
	for (unsigned b = 0; b < NBLK; b++) {
		uint32_t h = 2166136261u;
		unsigned j;
		for (unsigned i = 0; i < BLK; i++) {
			uint32_t cp = b * BLK + i;
			while (r + 1 < uni_nranges && uni_ranges[r + 1].cp <= cp)
				r++;
			blk[i] = uni_ranges[r].flags;
			h = (h ^ blk[i]) * 16777619u;
		}
		for (j = h % (2 * MAXU); slot[j] != 0xffff; j = (j + 1) % (2 * MAXU))
			if (!memcmp(s2 + slot[j] * BLK, blk, sizeof blk))
				break;
		if (slot[j] == 0xffff) {
			if (nb == MAXU)
				goto fail;
			memcpy(s2 + nb * BLK, blk, sizeof blk);
			slot[j] = nb++;
		}
		s1[b] = slot[j];
	}
	stage2 = s2;
	__atomic_store_n(&stage1, s1, __ATOMIC_RELEASE);
	return;
fail:
	free(s1);
	free(s2);
}

void
uni_init(void)
{
	pthread_once(&once, build);
}

unsigned
uni_flags(uint32_t cp)
{
	const uint16_t *s1 = __atomic_load_n(&stage1, __ATOMIC_ACQUIRE);

	if (cp >= 0x110000)
		return UNI_UNDEFINED;
	if (s1 && cp < TOP)
		return stage2[s1[cp / BLK] * BLK + cp % BLK];
	return search(cp);
}

uint32_t
uni_tolower(uint32_t cp)
{
	unsigned lo = 0, hi = uni_nlower;

	if (cp < 128)
		return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		if (uni_lower[mid].cp == cp)
			return uni_lower[mid].to;
		if (uni_lower[mid].cp < cp)
			lo = mid + 1;
		else
			hi = mid;
	}
	return cp;
}

uint32_t
uni_decode(const uint8_t *s, size_t n, size_t *len)
{
	uint8_t c = s[0];

	if (c < 0x80) {
		*len = 1;
		return c;
	}
	if (!(c & 0x40))
		goto bad;
	if (!(c & 0x20)) {
		if (n < 2 || (s[1] & 0xc0) != 0x80)
			goto bad;
		*len = 2;
		return (uint32_t)(c & 0x1f) << 6 | (s[1] & 0x3f);
	}
	if (!(c & 0x10)) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			goto bad;
		*len = 3;
		return (uint32_t)(c & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
	}
	if (!(c & 0x08)) {
		if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			goto bad;
		*len = 4;
		return (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[1] & 0x3f) << 12 |
			(uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
	}
bad:
	*len = 1;
	return 0xFFFD;
}

size_t
uni_encode(uint32_t cp, uint8_t *o)
{
	if (cp < 0x80) {
		o[0] = cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = 0xc0 | cp >> 6;
		o[1] = 0x80 | (cp & 0x3f);
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = 0xe0 | cp >> 12;
		o[1] = 0x80 | (cp >> 6 & 0x3f);
		o[2] = 0x80 | (cp & 0x3f);
		return 3;
	}
	if (cp < 0x110000) {
		o[0] = 0xf0 | cp >> 18;
		o[1] = 0x80 | (cp >> 12 & 0x3f);
		o[2] = 0x80 | (cp >> 6 & 0x3f);
		o[3] = 0x80 | (cp & 0x3f);
		return 4;
	}
	return 0;
}
