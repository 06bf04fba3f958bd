/* kv: the paged KV cache's block manager. Memory is cut into fixed-size
 * blocks of token slots; every sequence has a block table. Full blocks are
 * keyed by a chained hash of their tokens (and the tokens themselves, so a
 * hash collision is never a wrong answer) and shared read-only between
 * sequences with the same prefix; released cached blocks stay in an LRU
 * list and are evicted only when free blocks run out. The block manager
 * owns no tensor memory: a backend indexes its own K/V arrays by block id. */
#ifndef SLUICE_KV_H
#define SLUICE_KV_H

#include <stddef.h>
#include <stdint.h>

typedef struct kv_pool kv_pool;

/* One sequence's view of the cache. */
typedef struct kv_seq {
	uint32_t *blocks;      /* block ids, in order: token i lives in blocks[i / block_size], slot i % block_size */
	uint32_t n_blocks;     /* entries used in blocks[] */
	uint32_t cap;          /* entries allocated in blocks[] */
	uint32_t n_hashed;     /* leading blocks that are full and registered in the prefix cache */
	uint64_t hash;         /* chained hash of those n_hashed blocks (0 when none) */
} kv_seq;
#define KV_SEQ_ZERO {0, 0, 0, 0, 0}

/* n_blocks blocks of block_size slots; caching 0 turns prefix caching off
 * (kv_seq_match finds nothing, released blocks go straight back to free).
 * NULL if the sizes are 0 or absurd. */
kv_pool *kv_new(uint32_t n_blocks, uint32_t block_size, int caching);
void kv_free(kv_pool *p);
uint32_t kv_block_size(const kv_pool *p);
uint32_t kv_n_blocks(const kv_pool *p);
/* Blocks a reservation can get now: free ones plus cached ones nobody uses. */
uint32_t kv_available(const kv_pool *p);
/* Blocks held by at least one sequence. */
uint32_t kv_used(const kv_pool *p);

/* At admission, on an empty seq: finds the longest run of leading full
 * blocks of tokens[0..n) that are cached, takes a reference on each and
 * puts them in s's table. At most (n - 1) / block_size blocks are matched,
 * so at least one token is left to compute (its logits are needed).
 * Returns the number of tokens covered (a multiple of the block size). */
uint32_t kv_seq_match(kv_pool *p, kv_seq *s, const uint32_t *tokens, uint32_t n);
/* Makes s's table cover n_tokens tokens, taking free blocks first and
 * evicting the least recently used cached blocks after. 0 ok; -1 when not
 * enough blocks are available (s is left as it was). */
int kv_seq_reserve(kv_pool *p, kv_seq *s, uint32_t n_tokens);
/* After the backend has written K/V for tokens[0..n_done): registers the
 * blocks that became full in the prefix cache (unless an equal block is
 * already cached, in which case s keeps its own copy unregistered). */
void kv_seq_commit(kv_pool *p, kv_seq *s, const uint32_t *tokens, uint32_t n_done);
/* Drops s's references: registered blocks nobody else holds go to the LRU
 * list (most recently used end), the rest to the free list. s becomes empty
 * (its blocks[] array is kept for reuse; kv_seq_free frees it). */
void kv_seq_release(kv_pool *p, kv_seq *s);
void kv_seq_free(kv_seq *s);

/* Counters for usage reports and metrics. */
typedef struct kv_stats {
	uint64_t lookups_blocks;   /* blocks kv_seq_match looked for */
	uint64_t hit_blocks;       /* of those, found */
	uint64_t evictions;        /* cached blocks reused for other data */
} kv_stats;
void kv_get_stats(const kv_pool *p, kv_stats *st);

#endif
