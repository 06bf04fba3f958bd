/* kv unit test: the block manager's API case by case (sizes refused,
 * reserve and its failures, match leaving a token, partial and duplicate
 * commits, caching off, LRU order, in-use blocks never evicted), then a
 * randomized run against a brute-force reference model of the cache, with a
 * shadow of every block's slots standing in for the backend's K/V. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "tap.h"

/* xorshift64*: fixed seeds, same numbers everywhere */
static uint64_t rs = 0x9e3779b97f4a7c15ull;

static uint32_t
rnd(uint32_t n)
{
	rs ^= rs >> 12;
	rs ^= rs << 25;
	rs ^= rs >> 27;
	return n ? (uint32_t)(((rs * 2685821657736338717ull) >> 32) % n) : 0;
}

static int
same_blocks(const kv_seq *s, const uint32_t *ids, uint32_t n)
{
	return s->n_blocks == n && (!n || !memcmp(s->blocks, ids, n * sizeof *ids));
}

/* ------------------------------------------------------------ unit cases */

static void
test_new(void)
{
	kv_pool *p;
	kv_stats st;

	ok(!kv_new(0, 16, 1), "kv_new refuses 0 blocks");
	ok(!kv_new(16, 0, 1), "kv_new refuses block size 0");
	ok(!kv_new(16, 4097, 1), "kv_new refuses block size 4097");
	ok(!kv_new((1u << 27) + 1, 16, 1), "kv_new refuses more than 2^31 slots");
	ok(!kv_new(UINT32_MAX, 4096, 0), "kv_new refuses UINT32_MAX blocks of 4096 (no overflow)");
	p = kv_new(1, 4096, 1);
	ok(p && kv_block_size(p) == 4096 && kv_n_blocks(p) == 1, "kv_new(1, 4096)");
	kv_free(p);
	p = kv_new(10, 16, 1);
	ok(p && kv_block_size(p) == 16 && kv_n_blocks(p) == 10 && kv_available(p) == 10 &&
	   kv_used(p) == 0, "kv_new(10, 16): all available, none used");
	kv_get_stats(p, &st);
	ok(!st.lookups_blocks && !st.hit_blocks && !st.evictions, "fresh stats are zero");
	kv_free(p);
	kv_free(NULL);
	ok(1, "kv_free(NULL)");
}

static void
test_reserve(void)
{
	kv_pool *p = kv_new(4, 4, 1);
	kv_seq a = KV_SEQ_ZERO, b = KV_SEQ_ZERO;
	uint32_t *keep, ids[4];

	ok(kv_seq_reserve(p, &a, 0) == 0 && a.n_blocks == 0, "reserve 0 tokens: nothing");
	ok(kv_seq_reserve(p, &a, 5) == 0 && a.n_blocks == 2 && kv_used(p) == 2 &&
	   kv_available(p) == 2, "reserve 5 tokens of 4: 2 blocks");
	ok(a.blocks[0] != a.blocks[1] && a.blocks[0] < 4 && a.blocks[1] < 4, "distinct valid ids");
	memcpy(ids, a.blocks, 2 * sizeof *ids);
	ok(kv_seq_reserve(p, &a, 3) == 0 && same_blocks(&a, ids, 2), "reserve fewer: unchanged");
	ok(kv_seq_reserve(p, &a, 8) == 0 && same_blocks(&a, ids, 2), "reserve exactly 2 blocks: unchanged");
	ok(kv_seq_reserve(p, &a, 9) == 0 && a.n_blocks == 3 && !memcmp(a.blocks, ids, 8),
	   "reserve 9: one more block, the others kept");
	memcpy(ids, a.blocks, 3 * sizeof *ids);
	ok(kv_seq_reserve(p, &b, 5) == -1 && b.n_blocks == 0 && kv_used(p) == 3,
	   "reserve more than available: -1, seq and pool unchanged");
	ok(kv_seq_reserve(p, &b, 4) == 0 && b.n_blocks == 1 && kv_available(p) == 0, "reserve the last block");
	keep = b.blocks;
	ok(kv_seq_reserve(p, &b, 5) == -1 && b.n_blocks == 1 && b.blocks == keep && kv_used(p) == 4,
	   "reserve with none available: -1, seq unchanged");
	ok(kv_seq_reserve(p, &a, UINT32_MAX) == -1 && same_blocks(&a, ids, 3),
	   "reserve UINT32_MAX tokens: -1 (no overflow), unchanged");
	ok(kv_seq_reserve(p, &a, 17) == -1 && same_blocks(&a, ids, 3), "reserve past the pool: -1");
	kv_seq_release(p, &a);
	ok(a.n_blocks == 0 && a.n_hashed == 0 && a.hash == 0 && a.cap >= 3 && a.blocks,
	   "release empties the seq, keeps the array");
	ok(kv_available(p) == 3 && kv_used(p) == 1, "released blocks are available");
	kv_seq_release(p, &a);
	ok(kv_available(p) == 3, "second release does nothing");
	ok(kv_seq_reserve(p, &a, 12) == 0 && a.n_blocks == 3 && kv_available(p) == 0,
	   "reserve reuses the released blocks");
	kv_seq_release(p, &a);
	kv_seq_release(p, &b);
	ok(kv_available(p) == 4 && kv_used(p) == 0, "all back");
	kv_seq_free(&a);
	kv_seq_free(&b);
	ok(!a.blocks && !a.cap && !b.blocks, "kv_seq_free zeroes the seq");
	kv_seq_free(&a);
	kv_free(p);
}

/* reserve, "compute" and commit tokens[0..n) in a fresh seq */
static int
fill(kv_pool *p, kv_seq *s, const uint32_t *t, uint32_t n)
{
	if (kv_seq_reserve(p, s, n) < 0)
		return -1;
	kv_seq_commit(p, s, t, n);
	return 0;
}

static void
test_match(void)
{
	kv_pool *p = kv_new(16, 4, 1);
	kv_seq a = KV_SEQ_ZERO, b = KV_SEQ_ZERO;
	uint32_t t[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	uint32_t ids[4], h2, h3;
	kv_stats st;

	ok(kv_seq_match(p, &b, t, 12) == 0 && b.n_blocks == 0, "match on an empty cache: 0");
	ok(fill(p, &a, t, 12) == 0 && a.n_hashed == 3 && a.hash != 0, "commit 12 tokens: 3 blocks hashed");
	memcpy(ids, a.blocks, 3 * sizeof *ids);
	h3 = (uint32_t)a.hash;
	kv_seq_release(p, &a);
	ok(kv_available(p) == 16 && kv_used(p) == 0, "released cached blocks are available");

	ok(kv_seq_match(p, &b, t, 0) == 0 && b.n_blocks == 0, "match 0 tokens: 0");
	ok(kv_seq_match(p, &b, t, 4) == 0 && b.n_blocks == 0, "match 4 tokens (one block): 0, a token is left");
	ok(kv_seq_match(p, &b, t, 5) == 4 && same_blocks(&b, ids, 1) && b.n_hashed == 1,
	   "match 5 tokens: 1 block");
	ok(kv_used(p) == 1 && kv_available(p) == 15, "a matched block is used");
	kv_seq_release(p, &b);
	ok(kv_seq_match(p, &b, t, 12) == 8 && same_blocks(&b, ids, 2) && b.n_hashed == 2,
	   "match exactly 12 cached tokens: 8, the last block is left to compute");
	h2 = (uint32_t)b.hash;
	ok(kv_seq_match(p, &b, t, 13) == 0 && b.n_blocks == 2, "match on a non-empty seq: 0, unchanged");
	/* finish b: its third block duplicates the cached one */
	ok(kv_seq_reserve(p, &b, 12) == 0 && b.n_blocks == 3 && b.blocks[2] != ids[2],
	   "reserve the rest: a fresh block, the cached one is not handed out");
	kv_seq_commit(p, &b, t, 12);
	ok(b.n_hashed == 3 && (uint32_t)b.hash == h3, "duplicate commit: hashed, same chain hash");
	kv_seq_release(p, &b);
	ok(kv_available(p) == 16, "all available after release");
	ok(kv_seq_match(p, &b, t, 13) == 12 && same_blocks(&b, ids, 3),
	   "match 13: the first seq's 3 blocks (the duplicate was not registered)");
	kv_seq_release(p, &b);
	ok(kv_seq_match(p, &b, t, 16) == 12 && same_blocks(&b, ids, 3), "match 16 = 4 blocks: 3 matched");
	ok(fill(p, &b, t, 16) == 0 && b.n_hashed == 4 && (uint32_t)b.hash != h3 && h2 != h3,
	   "extend to 16: 4 hashed, chain hash moves on");
	kv_seq_release(p, &b);
	ok(kv_seq_match(p, &b, t, 16) == 12, "match 16 again: 12");
	ok(kv_seq_match(p, &a, t, 16) == 12 && a.n_blocks == 3 &&
	   !memcmp(a.blocks, b.blocks, 3 * sizeof *ids) && kv_used(p) == 3,
	   "two seqs share the blocks, counted once in used");
	kv_seq_release(p, &b);
	ok(kv_used(p) == 3, "still used while one holder remains");
	kv_seq_release(p, &a);
	ok(kv_used(p) == 0 && kv_available(p) == 16, "all free after both release");
	kv_get_stats(p, &st);
	/* lookups: (n - 1) / 4 blocks of each match on an empty seq with n > 0 */
	ok(st.evictions == 0 && st.lookups_blocks == 2 + 0 + 1 + 2 + 3 + 3 + 3 + 3 &&
	   st.hit_blocks == 0 + 0 + 1 + 2 + 3 + 3 + 3 + 3,
	   "stats: hits %llu of %llu lookups, no eviction",
	   (unsigned long long)st.hit_blocks, (unsigned long long)st.lookups_blocks);
	kv_seq_free(&a);
	kv_seq_free(&b);
	kv_free(p);
}

static void
test_different(void)
{
	kv_pool *p = kv_new(16, 4, 1);
	kv_seq a = KV_SEQ_ZERO, b = KV_SEQ_ZERO, c = KV_SEQ_ZERO;
	uint32_t x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 0};
	uint32_t y[9] = {1, 2, 3, 9, 5, 6, 7, 8, 0};   /* differs in block 0's last token */
	uint32_t z[9] = {1, 2, 3, 4, 5, 6, 7, 9, 0};   /* differs in block 1 */
	uint32_t w[9] = {9, 9, 9, 9, 5, 6, 7, 8, 0};   /* block 1 equal to x's, parent differs */
	uint32_t xa[2], wa[2];

	fill(p, &a, x, 8);
	memcpy(xa, a.blocks, sizeof xa);
	kv_seq_release(p, &a);
	ok(kv_seq_match(p, &b, y, 9) == 0, "a different last token of block 0: no match");
	ok(kv_seq_match(p, &c, z, 9) == 4 && c.blocks[0] == xa[0], "a different block 1: block 0 only");
	kv_seq_release(p, &b);
	kv_seq_release(p, &c);
	ok(fill(p, &b, w, 8) == 0 && b.n_hashed == 2, "equal tokens under another parent commit");
	memcpy(wa, b.blocks, sizeof wa);
	ok(wa[1] != xa[1] && wa[0] != xa[0], "... into their own blocks");
	kv_seq_release(p, &b);
	ok(kv_available(p) == 16 && kv_used(p) == 0, "all available");
	ok(kv_seq_match(p, &b, w, 9) == 8 && same_blocks(&b, wa, 2), "the second prefix matches its own blocks");
	ok(kv_seq_match(p, &a, x, 9) == 8 && same_blocks(&a, xa, 2), "the first prefix still matches its own");
	ok(a.hash != b.hash, "different prefixes, different chain hashes");
	kv_seq_release(p, &a);
	kv_seq_release(p, &b);
	kv_seq_free(&a);
	kv_seq_free(&b);
	kv_seq_free(&c);
	kv_free(p);
}

static void
test_commit(void)
{
	kv_pool *p = kv_new(8, 4, 1);
	kv_seq a = KV_SEQ_ZERO, b = KV_SEQ_ZERO, c = KV_SEQ_ZERO;
	uint32_t t[32], h1, aa[2];

	for (int i = 0; i < 32; i++)
		t[i] = 100 + i % 7;
	kv_seq_reserve(p, &a, 6);
	kv_seq_commit(p, &a, t, 3);
	ok(a.n_hashed == 0 && a.hash == 0, "commit of a partial block does nothing");
	kv_seq_commit(p, &a, t, 0);
	ok(a.n_hashed == 0, "commit of 0 tokens does nothing");
	kv_seq_commit(p, &a, t, 4);
	ok(a.n_hashed == 1 && a.hash != 0, "commit at 4: block 0 hashed");
	h1 = (uint32_t)a.hash;
	kv_seq_commit(p, &a, t, 7);
	ok(a.n_hashed == 1 && (uint32_t)a.hash == h1, "commit at 7: block 1 not full, nothing more");
	kv_seq_commit(p, &a, t, 2);
	ok(a.n_hashed == 1, "commit going backwards does nothing");
	kv_seq_commit(p, &a, t, 32);
	ok(a.n_hashed == 2, "commit past the reserved blocks stops at them");
	kv_seq_commit(p, &a, NULL, 32);
	ok(a.n_hashed == 2, "commit with NULL tokens does nothing");

	/* two seqs compute the same prefix at once */
	ok(kv_seq_reserve(p, &b, 9) == 0 && kv_seq_reserve(p, &c, 9) == 0 && kv_used(p) == 8,
	   "two seqs reserve the same prompt");
	kv_seq_commit(p, &b, t, 9);
	kv_seq_commit(p, &c, t, 9);
	ok(b.n_hashed == 2 && c.n_hashed == 2 && b.hash == c.hash && b.hash == a.hash,
	   "both hashed, same chain hash (%u)", a.n_hashed);
	memcpy(aa, a.blocks, sizeof aa);
	kv_seq_release(p, &a);
	kv_seq_release(p, &b);
	kv_seq_release(p, &c);
	ok(kv_used(p) == 0 && kv_available(p) == 8, "all available after release");
	ok(kv_seq_match(p, &c, t, 12) == 8 && same_blocks(&c, aa, 2),
	   "the first commit's blocks match (a's), not the duplicates");
	kv_seq_release(p, &c);

	/* a duplicate in the middle: the chain continues through it */
	ok(kv_seq_reserve(p, &b, 16) == 0, "seq b reserves 4 blocks");
	kv_seq_commit(p, &b, t, 16);
	ok(b.n_hashed == 4, "b hashed 4 blocks; the first 2 duplicate a's");
	kv_seq_release(p, &b);
	ok(kv_seq_match(p, &c, t, 17) == 16, "all 4 match: the chain ran through the duplicates");
	kv_seq_release(p, &c);
	kv_seq_free(&a);
	kv_seq_free(&b);
	kv_seq_free(&c);
	kv_free(p);
}

static void
test_nocache(void)
{
	kv_pool *p = kv_new(4, 2, 0);
	kv_seq a = KV_SEQ_ZERO, b = KV_SEQ_ZERO;
	uint32_t t[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	kv_stats st;

	ok(fill(p, &a, t, 8) == 0 && a.n_hashed == 0 && a.hash == 0, "caching off: commit hashes nothing");
	kv_seq_release(p, &a);
	ok(kv_available(p) == 4, "released blocks are available");
	ok(kv_seq_match(p, &b, t, 8) == 0 && b.n_blocks == 0, "caching off: match finds nothing");
	ok(fill(p, &b, t, 8) == 0, "the whole pool can be reserved again");
	kv_seq_release(p, &b);
	kv_get_stats(p, &st);
	ok(!st.lookups_blocks && !st.hit_blocks && !st.evictions, "caching off: no lookups, no evictions");
	kv_seq_free(&a);
	kv_seq_free(&b);
	kv_free(p);
}

static void
test_lru(void)
{
	kv_pool *p = kv_new(4, 2, 1);
	kv_seq a = KV_SEQ_ZERO, b = KV_SEQ_ZERO, c = KV_SEQ_ZERO;
	uint32_t x[5] = {1, 2, 3, 4, 0}, y[5] = {5, 6, 7, 8, 0}, xa[2], ya[2];
	kv_stats st;

	fill(p, &a, x, 4);
	memcpy(xa, a.blocks, sizeof xa);
	kv_seq_release(p, &a);
	fill(p, &b, y, 4);
	memcpy(ya, b.blocks, sizeof ya);
	kv_seq_release(p, &b);
	ok(kv_available(p) == 4 && kv_used(p) == 0, "4 cached, idle blocks");
	/* x is older, its tail block goes first */
	ok(kv_seq_reserve(p, &c, 2) == 0 && c.blocks[0] == xa[1], "eviction takes the oldest prefix's tail");
	ok(kv_seq_match(p, &a, x, 5) == 2 && a.blocks[0] == xa[0], "its head block still matches");
	kv_seq_release(p, &a);
	/* x's head was just used: y's blocks are now the oldest */
	ok(kv_seq_reserve(p, &c, 4) == 0 && c.blocks[1] == ya[1], "a touched block moves to the recent end");
	ok(kv_seq_match(p, &b, y, 5) == 2 && b.blocks[0] == ya[0], "y's head still matches");
	ok(kv_available(p) == 1 && kv_seq_reserve(p, &c, 8) == -1 && kv_used(p) == 3 && c.n_blocks == 2,
	   "a block in use is never evicted: 2 needed, 1 idle, b's not taken: -1");
	kv_seq_release(p, &b);
	ok(kv_seq_reserve(p, &c, 8) == 0 && kv_available(p) == 0, "once b released it, it can be");
	kv_get_stats(p, &st);
	ok(st.evictions == 4, "4 evictions counted (%llu)", (unsigned long long)st.evictions);
	ok(kv_seq_match(p, &a, x, 5) == 0 && kv_seq_match(p, &b, y, 5) == 0, "evicted prefixes no longer match");
	kv_seq_release(p, &c);
	ok(kv_available(p) == 4, "everything back");
	kv_seq_free(&a);
	kv_seq_free(&b);
	kv_seq_free(&c);
	kv_free(p);
}

/* White box: kv_mix's per-token step is s = (s ^ t) * K; s ^= s >> 31,
 * and a token only touches the low 32 bits, so two blocks {0, c, 0, x} and
 * {0, c', 0, x'} collide when the states after their third tokens agree in
 * the high half (a birthday search over c; varying the third token itself
 * would not do, the product is linear in it) and x' cancels the low half.
 * The collision is confirmed through kv_seq.hash; if kv_mix changes, the
 * cases are skipped. */
static uint64_t
step(uint64_t s, uint32_t t)
{
	s = (s ^ t) * 0xbf58476d1ce4e5b9ull;
	return s ^ (s >> 31);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* two different 4-token blocks with one chain hash from the root */
static int
craft(uint32_t a[4], uint32_t b[4])
{
	enum { N = 1 << 18 };
	uint64_t *v = malloc(N * sizeof *v), s = step(0x9e3779b97f4a7c15ull, 0);
	int found = 0;

	for (uint32_t c = 0; c < N; c++)
		v[c] = (step(step(s, c), 0) >> 32 << 32) | c;
	qsort(v, N, sizeof *v, cmp_u64);
	for (uint32_t i = 1; i < N && !found; i++)
		if (v[i] >> 32 == v[i - 1] >> 32) {
			uint32_t c = (uint32_t)v[i - 1], d = (uint32_t)v[i];
			a[0] = a[2] = b[0] = b[2] = 0;
			a[1] = c;
			b[1] = d;
			a[3] = 7;
			b[3] = 7 ^ (uint32_t)step(step(s, c), 0) ^ (uint32_t)step(step(s, d), 0);
			found = 1;
		}
	free(v);
	return found;
}

static void
test_collision(void)
{
	kv_pool *p = kv_new(8, 4, 1);
	kv_seq a = KV_SEQ_ZERO, b = KV_SEQ_ZERO, c = KV_SEQ_ZERO;
	uint32_t x[9], y[9], xa[2], yb, m;
	uint64_t hc;

	if (!craft(x, y)) {
		ok(1, "# SKIP no colliding blocks found");
		kv_free(p);
		return;
	}
	/* the same second block after each */
	for (int i = 4; i < 9; i++)
		x[i] = y[i] = 40 + i;
	fill(p, &a, x, 8);
	fill(p, &b, y, 4);
	m = kv_seq_match(p, &c, x, 5);
	hc = c.hash;
	kv_seq_release(p, &c);
	if (a.n_hashed != 2 || b.n_hashed != 1 || !memcmp(x, y, 16) || m != 4 || hc != b.hash) {
		ok(1, "# SKIP the crafted blocks no longer collide (kv_mix changed?)");
		goto out;
	}
	ok(1, "crafted: blocks {0,%u,0,%u} and {0,%u,0,%u} share chain hash %016llx", x[1], x[3], y[1], y[3],
	   (unsigned long long)b.hash);
	memcpy(xa, a.blocks, sizeof xa);
	yb = b.blocks[0];
	ok(yb != xa[0], "the colliding block was registered, not taken for a duplicate");
	kv_seq_release(p, &a);
	kv_seq_release(p, &b);
	ok(kv_seq_match(p, &a, x, 9) == 8 && same_blocks(&a, xa, 2), "the first prefix matches its blocks");
	ok(kv_seq_match(p, &b, y, 9) == 4 && b.blocks[0] == yb,
	   "the second: its own block 0, and not the first's block 1 (equal tokens, equal parent hash, other parent)");
	ok(kv_seq_reserve(p, &b, 8) == 0 && b.blocks[1] != xa[1], "so block 1 is computed afresh");
	kv_seq_commit(p, &b, y, 8);
	ok(b.n_hashed == 2 && b.hash == a.hash, "and registered: same chain hash as the first's (%u)", b.n_hashed);
	kv_seq_release(p, &a);
	kv_seq_release(p, &b);
	ok(kv_seq_match(p, &b, y, 9) == 8 && b.blocks[1] != xa[1] && kv_seq_match(p, &a, x, 9) == 8 &&
	   same_blocks(&a, xa, 2), "both prefixes match their own two blocks");
	kv_seq_release(p, &a);
	kv_seq_release(p, &b);
out:
	kv_seq_free(&a);
	kv_seq_free(&b);
	kv_seq_free(&c);
	kv_free(p);
}

/* ----------------------------------------------------- randomized model */

/* The reference keeps, for every block, its holders, whether it is
 * registered, its full prefix (key) and its parent's identity, and finds
 * things by brute force: no hashing, nothing shared with lib/kv.c. */
typedef struct rblock {
	int reg;
	uint64_t id, parent;   /* reference idents */
	uint32_t level;        /* block index in the prefix */
	uint32_t *key;         /* (level + 1) * bs tokens */
	uint32_t ref;
	int free;
} rblock;

typedef struct tseq {
	int active;
	uint32_t *tok, len, done; /* the stream, how much the "backend" computed */
	uint32_t hashed;          /* the reference's n_hashed */
	uint64_t *ident;          /* reference ident of each hashed block's content */
	kv_seq s;
} tseq;

#define NSEQ 8
#define NDOC 4

typedef struct model {
	kv_pool *p;
	uint32_t nb, bs, maxlen;
	int caching;
	rblock *rb;
	uint32_t *lru, n_lru, n_free;
	uint64_t serial, evictions, lookups, hits;
	uint32_t *shadow;          /* (nb, bs) what the backend wrote in each slot */
	uint32_t *holders;         /* (nb) scratch for check_all */
	uint32_t *doc[NDOC];
	tseq q[NSEQ];
	char err[256];
	uint64_t n_match_hits, n_reserve_fail, n_dups, n_evict_ops, n_lost;
} model;

/* on the first failure: note it, and stop the operation (returning r) */
#define CHECKR(m, r, c, ...) do { \
	if (!(c)) { \
		if (!(m)->err[0]) \
			snprintf((m)->err, sizeof (m)->err, __VA_ARGS__); \
		return r; \
	} \
} while (0)
#define CHECK(m, c, ...) CHECKR(m, , c, __VA_ARGS__)

static void
r_lru_remove(model *m, uint32_t id)
{
	for (uint32_t i = 0; i < m->n_lru; i++)
		if (m->lru[i] == id) {
			memmove(m->lru + i, m->lru + i + 1, (m->n_lru - i - 1) * sizeof *m->lru);
			m->n_lru--;
			return;
		}
}

/* the registered block with this level, parent and prefix, or -1 */
static int
r_find(model *m, uint32_t level, uint64_t parent, const uint32_t *tok)
{
	int found = -1;

	for (uint32_t b = 0; b < m->nb; b++) {
		rblock *r = &m->rb[b];
		if (r->reg && r->level == level && r->parent == parent &&
		    !memcmp(r->key, tok, (size_t)(level + 1) * m->bs * sizeof *tok)) {
			if (found >= 0)
				snprintf(m->err, sizeof m->err, "reference: two registered blocks for one prefix");
			found = (int)b;
		}
	}
	return found;
}

static void
check_all(model *m)
{
	uint32_t *holders = m->holders, used = 0;
	kv_stats st;

	memset(holders, 0, m->nb * sizeof *holders);
	for (int i = 0; i < NSEQ; i++) {
		tseq *t = &m->q[i];
		if (!t->active)
			continue;
		CHECK(m, t->s.n_blocks <= m->nb && t->s.n_hashed <= t->s.n_blocks, "seq %d: counts", i);
		CHECK(m, t->s.n_hashed == t->hashed, "seq %d: n_hashed %u, reference %u", i, t->s.n_hashed, t->hashed);
		CHECK(m, t->s.n_hashed || t->s.hash == 0, "seq %d: hash without hashed blocks", i);
		for (uint32_t j = 0; j < t->s.n_blocks; j++) {
			CHECK(m, t->s.blocks[j] < m->nb, "seq %d: block id %u", i, t->s.blocks[j]);
			holders[t->s.blocks[j]]++;
		}
		/* what the backend computed is still there: nobody else wrote it */
		for (uint32_t k = 0; k < t->done; k++)
			CHECK(m, m->shadow[(size_t)t->s.blocks[k / m->bs] * m->bs + k % m->bs] == t->tok[k],
			      "seq %d: token %u overwritten", i, k);
	}
	for (uint32_t b = 0; b < m->nb; b++) {
		CHECK(m, holders[b] == m->rb[b].ref, "block %u: %u holders, reference %u", b, holders[b], m->rb[b].ref);
		used += holders[b] > 0;
	}
	/* a block shared by several seqs lies in the hashed part of each */
	for (int i = 0; i < NSEQ; i++) {
		tseq *t = &m->q[i];
		for (uint32_t j = t->s.n_hashed; t->active && j < t->s.n_blocks; j++)
			CHECK(m, holders[t->s.blocks[j]] == 1, "seq %d: private block %u shared", i, j);
	}
	CHECK(m, kv_used(m->p) == used, "kv_used %u, %u held", kv_used(m->p), used);
	CHECK(m, kv_used(m->p) + kv_available(m->p) == m->nb, "used + available != n_blocks");
	CHECK(m, kv_available(m->p) == m->n_free + m->n_lru, "kv_available %u, reference %u + %u",
	      kv_available(m->p), m->n_free, m->n_lru);
	kv_get_stats(m->p, &st);
	CHECK(m, st.evictions == m->evictions && st.lookups_blocks == m->lookups && st.hit_blocks == m->hits,
	      "stats differ from the reference");
	/* equal hashed prefixes have equal chain hashes; different ones differ */
	for (int i = 0; i < NSEQ; i++)
		for (int j = i + 1; j < NSEQ; j++) {
			tseq *a = &m->q[i], *b = &m->q[j];
			if (!a->active || !b->active || !a->hashed || a->hashed != b->hashed)
				continue;
			int eq = !memcmp(a->tok, b->tok, (size_t)a->hashed * m->bs * sizeof *a->tok);
			CHECK(m, eq == (a->s.hash == b->s.hash), "seqs %d and %d: chain hash %s", i, j,
			      eq ? "differs for equal prefixes" : "collides");
		}
}

static void
op_admit(model *m, tseq *t)
{
	uint32_t n, d, split, want, j, got;
	uint64_t parent = 0;

	/* prompts share prefixes: a piece of a document, then noise from a
	 * two-letter alphabet (which alone repeats short blocks often) */
	n = rnd(8) ? 1 + rnd(m->maxlen / 3) : 1 + rnd(m->maxlen);
	d = rnd(NDOC + 1);
	split = d < NDOC ? n - rnd(n + 1) / 2 : 0;
	for (j = 0; j < n; j++)
		t->tok[j] = j < split ? m->doc[d][j] : rnd(2);
	t->len = n;
	t->active = 1;
	t->done = t->hashed = 0;
	got = kv_seq_match(m->p, &t->s, t->tok, n);
	want = m->caching ? (n - 1) / m->bs : 0;
	m->lookups += want;
	for (j = 0; j < want; j++) {
		int b = r_find(m, j, parent, t->tok);
		if (b < 0)
			break;
		CHECK(m, j < t->s.n_blocks && t->s.blocks[j] == (uint32_t)b, "match: block %u is %u, reference %d",
		      j, j < t->s.n_blocks ? t->s.blocks[j] : 0, b);
		/* the backend's data in the matched block is this prompt's */
		CHECK(m, !memcmp(m->shadow + (size_t)b * m->bs, t->tok + (size_t)j * m->bs, m->bs * sizeof *t->tok),
		      "match: block %d holds other tokens", b);
		if (m->rb[b].ref++ == 0)
			r_lru_remove(m, (uint32_t)b);
		parent = t->ident[j] = m->rb[b].id;
	}
	m->hits += j;
	m->n_match_hits += j;
	/* hits lost because a chain was broken: a registered block with this
	 * very prefix whose parent's identity is gone */
	for (uint32_t k = j; k < want; k++) {
		int any = 0;
		for (uint32_t b = 0; b < m->nb && !any; b++)
			any = m->rb[b].reg && m->rb[b].level == k &&
			      !memcmp(m->rb[b].key, t->tok, (size_t)(k + 1) * m->bs * sizeof *t->tok);
		if (!any)
			break;
		m->n_lost++;
	}
	CHECK(m, got == j * m->bs && t->s.n_blocks == j && t->s.n_hashed == j,
	      "match returned %u (%u blocks), reference %u blocks", got, t->s.n_blocks, j);
	t->done = t->hashed = j;
	t->done *= m->bs;
}

static void
op_commit(model *m, tseq *t, uint32_t n_done)
{
	uint32_t full = n_done / m->bs, i;

	kv_seq_commit(m->p, &t->s, t->tok, n_done);
	if (!m->caching)
		return;
	if (full > t->s.n_blocks)
		full = t->s.n_blocks;
	for (i = t->hashed; i < full; i++) {
		uint64_t parent = i ? t->ident[i - 1] : 0;
		int d = r_find(m, i, parent, t->tok);
		uint32_t b = t->s.blocks[i];
		if (d >= 0) {
			t->ident[i] = m->rb[d].id;
			m->n_dups++;
			continue;
		}
		rblock *r = &m->rb[b];
		CHECK(m, r->ref == 1 && !r->reg, "commit: block %u of seq is not private", i);
		r->reg = 1;
		r->id = t->ident[i] = ++m->serial;
		r->parent = parent;
		r->level = i;
		memcpy(r->key, t->tok, (size_t)(i + 1) * m->bs * sizeof *t->tok);
	}
	if (full > t->hashed)
		t->hashed = full;
}

/* reserve for n tokens, checking the blocks handed out against the model */
static int
op_reserve(model *m, tseq *t, uint32_t n)
{
	uint32_t old = t->s.n_blocks, need = n / m->bs + (n % m->bs != 0), k, f, *before;
	uint64_t h = t->s.hash;
	int rc;

	before = malloc((old + 1) * sizeof *before);
	if (old)
		memcpy(before, t->s.blocks, old * sizeof *before);
	rc = kv_seq_reserve(m->p, &t->s, n);
	if (need <= old || need > m->nb || need - old > m->n_free + m->n_lru) {
		int ok = (need <= old ? rc == 0 : rc == -1) && t->s.n_blocks == old && t->s.hash == h &&
			 (!old || !memcmp(before, t->s.blocks, old * sizeof *before));
		free(before);
		if (rc < 0)
			m->n_reserve_fail++;
		CHECKR(m, -1, ok, "reserve %u (have %u, need %u): rc %d or seq changed", n, old, need, rc);
		return rc;
	}
	free(before);
	CHECKR(m, -1, rc == 0 && t->s.n_blocks == need, "reserve %u: rc %d, %u blocks (need %u)", n, rc,
	       t->s.n_blocks, need);
	k = need - old;
	f = k < m->n_free ? k : m->n_free;
	/* free blocks first, in any order; then cached ones, oldest first */
	for (uint32_t j = 0; j < k; j++) {
		uint32_t b = t->s.blocks[old + j];
		rblock *r = &m->rb[b];
		if (j < f) {
			CHECKR(m, -1, r->free && !r->ref && !r->reg, "reserve: block %u is not free", b);
			r->free = 0;
			m->n_free--;
		} else {
			CHECKR(m, -1, m->n_lru && m->lru[0] == b && !r->ref && r->reg,
			       "reserve: block %u is not the least recently used", b);
			r_lru_remove(m, b);
			r->reg = 0;
			m->evictions++;
			m->n_evict_ops++;
		}
		r->ref = 1;
	}
	return 0;
}

static void
op_release(model *m, tseq *t)
{
	for (uint32_t j = t->s.n_blocks; j-- > 0;) {
		rblock *r = &m->rb[t->s.blocks[j]];
		if (--r->ref)
			continue;
		if (r->reg) {
			m->lru[m->n_lru++] = t->s.blocks[j];
		} else {
			r->free = 1;
			m->n_free++;
		}
	}
	kv_seq_release(m->p, &t->s);
	t->active = 0;
	CHECK(m, t->s.n_blocks == 0 && t->s.n_hashed == 0 && t->s.hash == 0, "release: seq not empty");
}

/* compute the next chunk: reserve, write the backend's slots, commit */
static void
op_step(model *m, tseq *t)
{
	uint32_t target = t->done + 1 + rnd(2 * m->bs + 3);

	if (target > t->len)
		target = t->len;
	if (t->done == t->len) {
		op_release(m, t);
		return;
	}
	if (op_reserve(m, t, target) < 0)
		return;
	for (uint32_t k = t->done; k < target; k++)
		m->shadow[(size_t)t->s.blocks[k / m->bs] * m->bs + k % m->bs] = t->tok[k];
	t->done = target;
	/* sometimes the commit lags, or covers less than was computed */
	if (rnd(5))
		op_commit(m, t, t->done);
	else if (rnd(2))
		op_commit(m, t, t->done - rnd(t->done + 1));
}

static void
stress(uint32_t nb, uint32_t bs, int caching, uint32_t nops, uint64_t seed)
{
	model m;
	uint32_t op;

	memset(&m, 0, sizeof m);
	rs = seed;
	m.nb = nb;
	m.bs = bs;
	m.caching = caching;
	m.maxlen = nb * bs + 2 * bs;
	m.p = kv_new(nb, bs, caching);
	m.rb = calloc(nb, sizeof *m.rb);
	m.lru = calloc(nb, sizeof *m.lru);
	m.shadow = calloc((size_t)nb * bs, sizeof *m.shadow);
	m.holders = calloc(nb, sizeof *m.holders);
	for (uint32_t b = 0; b < nb; b++) {
		m.rb[b].key = calloc(m.maxlen, sizeof *m.rb[b].key);
		m.rb[b].free = 1;
	}
	m.n_free = nb;
	for (int d = 0; d < NDOC; d++) {
		m.doc[d] = malloc(m.maxlen * sizeof *m.doc[d]);
		for (uint32_t j = 0; j < m.maxlen; j++)
			m.doc[d][j] = rnd(3);
	}
	for (int i = 0; i < NSEQ; i++) {
		m.q[i].tok = malloc(m.maxlen * sizeof *m.q[i].tok);
		m.q[i].ident = malloc(m.maxlen * sizeof *m.q[i].ident);
		m.q[i].s = (kv_seq)KV_SEQ_ZERO;
	}
	for (op = 0; op < nops && !m.err[0]; op++) {
		tseq *t = &m.q[rnd(NSEQ)];
		uint32_t c = rnd(100);

		if (!t->active)
			op_admit(&m, t);
		else if (c < 65)
			op_step(&m, t);
		else if (c < 75)
			op_release(&m, t);   /* finished early, cancelled or preempted */
		else if (c < 85)
			op_reserve(&m, t, t->done + rnd(4 * bs));   /* room ahead of the computed tokens */
		else if (c < 88)
			op_reserve(&m, t, rnd(2) ? UINT32_MAX : nb * bs + 1 + rnd(bs));
		else
			op_commit(&m, t, t->done);
		if (!m.err[0])
			check_all(&m);
	}
	ok(!m.err[0], "stress %u blocks of %u, caching %s: %u ops, %llu hit blocks (%llu lost), %llu duplicate "
	   "commits, %llu evictions, %llu failed reserves%s%s", nb, bs, caching ? "on" : "off", op,
	   (unsigned long long)m.n_match_hits, (unsigned long long)m.n_lost, (unsigned long long)m.n_dups, (unsigned long long)m.n_evict_ops,
	   (unsigned long long)m.n_reserve_fail, m.err[0] ? ": " : "", m.err);
	if (caching)
		ok(m.n_match_hits > 100 && m.n_dups > 10 && m.n_evict_ops > 100 && m.n_reserve_fail > 100,
		   "... the run exercised hits, duplicates, evictions and failures");
	for (int i = 0; i < NSEQ; i++) {
		if (m.q[i].active)
			kv_seq_release(m.p, &m.q[i].s);
		kv_seq_free(&m.q[i].s);
		free(m.q[i].tok);
		free(m.q[i].ident);
	}
	ok(kv_used(m.p) == 0 && kv_available(m.p) == nb, "... everything released at the end");
	for (uint32_t b = 0; b < nb; b++)
		free(m.rb[b].key);
	for (int d = 0; d < NDOC; d++)
		free(m.doc[d]);
	free(m.rb);
	free(m.lru);
	free(m.shadow);
	free(m.holders);
	kv_free(m.p);
}

int
main(void)
{
	test_new();
	test_reserve();
	test_match();
	test_different();
	test_commit();
	test_nocache();
	test_lru();
	test_collision();
	stress(64, 4, 1, 100000, 1);
	stress(64, 4, 0, 20000, 2);
	stress(16, 1, 1, 30000, 3);
	stress(24, 3, 1, 30000, 4);
	stress(8, 16, 1, 30000, 5);
	return done_testing();
}
