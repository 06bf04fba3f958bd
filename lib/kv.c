/* kv: the paged KV cache's block manager: reference counts, the free list,
 * the prefix cache (chained hash -> registered block, checked against the
 * block's own tokens and its parent's identity) and the LRU list of cached
 * blocks nobody holds. No tensor memory lives here. */
#include <stdlib.h>
#include <string.h>

#include "kv.h"

#define KV_NIL UINT32_MAX
#define KV_MAX_BLOCK_SIZE 4096u
#define KV_MAX_SLOTS (1ull << 31)

/* A block is in exactly one of four states: free (ref 0, on the free
 * stack), private (ref 1, unregistered, being written by its holder),
 * cached and held (registered, ref >= 1), cached and idle (registered,
 * ref 0, on the LRU list). */
typedef struct kv_block {
	uint64_t hash;       /* chained hash of the prefix ending with this block */
	uint64_t ident;      /* serial of the registered block holding this content (0: none yet) */
	uint64_t parent;     /* ident of the previous block's content, 0 for the first block */
	uint32_t ref;        /* sequences holding the block */
	uint32_t prev, next; /* LRU links; next is also the free stack's link */
	uint32_t hnext;      /* next registered block in the same hash bucket */
	uint8_t registered;  /* in the hash table, its tokens in tok[] */
} kv_block;

struct kv_pool {
	kv_block *b;         /* (n_blocks) */
	uint32_t *tok;       /* (n_blocks, block_size) tokens of registered blocks; NULL without caching */
	uint32_t *bucket;    /* (mask + 1) first block of each hash chain; NULL without caching */
	uint64_t mask;
	uint64_t serial;     /* last ident given; never reused */
	uint32_t n_blocks, bs;
	int caching;
	uint32_t free_top, n_free;
	uint32_t lru_head, lru_tail, n_lru; /* head: least recently used */
	kv_stats st;
};

/* ---------------------------------------------------------------- hashing */

/* The chain hash only spreads blocks over buckets and names a prefix in
 * kv_seq.hash; correctness never rests on it: a lookup also compares the
 * tokens and the parent's ident, which is unique for ever. */
static uint64_t
kv_mix(uint64_t h, const uint32_t *t, uint32_t n)
{
	h ^= 0x9e3779b97f4a7c15ull;
	for (uint32_t i = 0; i < n; i++) {
		h = (h ^ t[i]) * 0xbf58476d1ce4e5b9ull;
		h ^= h >> 31;
	}
	/* splitmix64's finalizer, so the low bits that pick a bucket depend on all */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h;
}

static uint32_t *
kv_tok(const kv_pool *p, uint32_t id)
{
	return p->tok + (size_t)id * p->bs;
}

/* the registered block with this hash, parent and tokens, or KV_NIL */
static uint32_t
kv_find(const kv_pool *p, uint64_t h, uint64_t parent, const uint32_t *t)
{
	for (uint32_t id = p->bucket[h & p->mask]; id != KV_NIL; id = p->b[id].hnext) {
		const kv_block *b = &p->b[id];
		if (b->hash == h && b->parent == parent &&
		    !memcmp(kv_tok(p, id), t, (size_t)p->bs * sizeof *t))
			return id;
	}
	return KV_NIL;
}

static void
kv_register(kv_pool *p, uint32_t id)
{
	uint32_t *head = &p->bucket[p->b[id].hash & p->mask];

	p->b[id].hnext = *head;
	*head = id;
	p->b[id].registered = 1;
}

static void
kv_unregister(kv_pool *p, uint32_t id)
{
	uint32_t *link = &p->bucket[p->b[id].hash & p->mask];

	while (*link != id && *link != KV_NIL)
		link = &p->b[*link].hnext;
	if (*link == id)
		*link = p->b[id].hnext;
	p->b[id].hnext = KV_NIL;
	p->b[id].registered = 0;
}

/* ------------------------------------------------------ free and LRU lists */

static void
kv_free_push(kv_pool *p, uint32_t id)
{
	p->b[id].next = p->free_top;
	p->free_top = id;
	p->n_free++;
}

static void
kv_lru_push(kv_pool *p, uint32_t id)
{
	kv_block *b = &p->b[id];

	b->prev = p->lru_tail;
	b->next = KV_NIL;
	if (p->lru_tail != KV_NIL)
		p->b[p->lru_tail].next = id;
	else
		p->lru_head = id;
	p->lru_tail = id;
	p->n_lru++;
}

static void
kv_lru_remove(kv_pool *p, uint32_t id)
{
	kv_block *b = &p->b[id];

	if (b->prev != KV_NIL)
		p->b[b->prev].next = b->next;
	else
		p->lru_head = b->next;
	if (b->next != KV_NIL)
		p->b[b->next].prev = b->prev;
	else
		p->lru_tail = b->prev;
	b->prev = b->next = KV_NIL;
	p->n_lru--;
}

/* a block for new data, held once: a free one, else the least recently
 * used cached one; the caller has checked that one is available */
static uint32_t
kv_take(kv_pool *p)
{
	uint32_t id;
	kv_block *b;

	if (p->n_free) {
		id = p->free_top;
		p->free_top = p->b[id].next;
		p->n_free--;
	} else {
		id = p->lru_head;
		kv_lru_remove(p, id);
		kv_unregister(p, id);
		p->st.evictions++;
	}
	b = &p->b[id];
	b->hash = b->ident = b->parent = 0;
	b->ref = 1;
	b->prev = b->next = b->hnext = KV_NIL;
	b->registered = 0;
	return id;
}

/* ------------------------------------------------------------------ pool */

kv_pool *
kv_new(uint32_t n_blocks, uint32_t block_size, int caching)
{
	kv_pool *p;
	uint64_t nb = 1;

	if (!n_blocks || !block_size || block_size > KV_MAX_BLOCK_SIZE ||
	    (uint64_t)n_blocks * block_size > KV_MAX_SLOTS)
		return NULL;
	if (!(p = calloc(1, sizeof *p)))
		return NULL;
	p->n_blocks = n_blocks;
	p->bs = block_size;
	p->caching = !!caching;
	if (!(p->b = calloc(n_blocks, sizeof *p->b)))
		goto fail;
	if (caching) {
		/* at least two buckets a block: chains stay about one long */
		while (nb < 2ull * n_blocks)
			nb <<= 1;
		if (nb > SIZE_MAX / sizeof *p->bucket ||
		    !(p->bucket = malloc(nb * sizeof *p->bucket)) ||
		    !(p->tok = calloc((size_t)n_blocks * block_size, sizeof *p->tok)))
			goto fail;
		p->mask = nb - 1;
		for (uint64_t i = 0; i < nb; i++)
			p->bucket[i] = KV_NIL;
	}
	p->free_top = p->lru_head = p->lru_tail = KV_NIL;
	/* pushed backwards so that block 0 is handed out first */
	for (uint32_t i = n_blocks; i-- > 0;) {
		p->b[i].prev = p->b[i].hnext = KV_NIL;
		kv_free_push(p, i);
	}
	return p;
fail:
	kv_free(p);
	return NULL;
}

void
kv_free(kv_pool *p)
{
	if (!p)
		return;
	free(p->b);
	free(p->tok);
	free(p->bucket);
	free(p);
}

uint32_t
kv_block_size(const kv_pool *p)
{
	return p ? p->bs : 0;
}

uint32_t
kv_n_blocks(const kv_pool *p)
{
	return p ? p->n_blocks : 0;
}

uint32_t
kv_available(const kv_pool *p)
{
	return p ? p->n_free + p->n_lru : 0;
}

uint32_t
kv_used(const kv_pool *p)
{
	return p ? p->n_blocks - p->n_free - p->n_lru : 0;
}

void
kv_get_stats(const kv_pool *p, kv_stats *st)
{
	if (!st)
		return;
	if (p)
		*st = p->st;
	else
		memset(st, 0, sizeof *st);
}

/* -------------------------------------------------------------- sequences */

/* room for need entries in s->blocks; need <= p->n_blocks */
static int
kv_seq_grow(const kv_pool *p, kv_seq *s, uint32_t need)
{
	uint64_t cap;
	uint32_t *nb;

	if (need <= s->cap)
		return 0;
	cap = s->cap ? 2ull * s->cap : 8;
	if (cap > p->n_blocks)
		cap = p->n_blocks;
	if (cap < need)
		cap = need;
	if (!(nb = realloc(s->blocks, (size_t)cap * sizeof *nb)))
		return -1;
	s->blocks = nb;
	s->cap = (uint32_t)cap;
	return 0;
}

uint32_t
kv_seq_match(kv_pool *p, kv_seq *s, const uint32_t *tokens, uint32_t n)
{
	uint32_t want, i;
	uint64_t h = 0, parent = 0;

	if (!p || !s || !tokens || !n || s->n_blocks || !p->caching)
		return 0;
	/* the last token is always computed: its logits give the next one */
	want = (n - 1) / p->bs;
	p->st.lookups_blocks += want;
	for (i = 0; i < want; i++) {
		const uint32_t *t = tokens + (size_t)i * p->bs;
		uint64_t hi = kv_mix(h, t, p->bs);
		uint32_t id = kv_find(p, hi, parent, t);

		if (id == KV_NIL || kv_seq_grow(p, s, i + 1) < 0)
			break;
		if (p->b[id].ref++ == 0)
			kv_lru_remove(p, id);
		s->blocks[i] = id;
		h = hi;
		parent = p->b[id].ident;
	}
	p->st.hit_blocks += i;
	s->n_blocks = s->n_hashed = i;
	s->hash = h;
	return i * p->bs;
}

int
kv_seq_reserve(kv_pool *p, kv_seq *s, uint32_t n_tokens)
{
	uint32_t need;

	if (!p || !s)
		return -1;
	need = n_tokens / p->bs + (n_tokens % p->bs != 0);
	if (need <= s->n_blocks)
		return 0;
	if (need > p->n_blocks || need - s->n_blocks > p->n_free + p->n_lru ||
	    kv_seq_grow(p, s, need) < 0)
		return -1;
	while (s->n_blocks < need)
		s->blocks[s->n_blocks++] = kv_take(p);
	return 0;
}

void
kv_seq_commit(kv_pool *p, kv_seq *s, const uint32_t *tokens, uint32_t n_done)
{
	uint32_t full, i;
	uint64_t h, parent;

	if (!p || !s || !tokens || !p->caching)
		return;
	full = n_done / p->bs;
	if (full > s->n_blocks)
		full = s->n_blocks;
	h = s->hash;
	parent = s->n_hashed ? p->b[s->blocks[s->n_hashed - 1]].ident : 0;
	for (i = s->n_hashed; i < full; i++) {
		uint32_t id = s->blocks[i], dup;
		kv_block *b = &p->b[id];
		const uint32_t *t = tokens + (size_t)i * p->bs;

		/* blocks past n_hashed come from kv_seq_reserve, so they are
		 * s's own; anything else is a caller's mix-up we won't spread */
		if (b->registered || b->ref != 1)
			break;
		b->hash = kv_mix(h, t, p->bs);
		b->parent = parent;
		dup = kv_find(p, b->hash, parent, t);
		if (dup != KV_NIL) {
			/* another sequence cached this content first: ours stays
			 * private, and our next block chains on theirs */
			b->ident = p->b[dup].ident;
		} else {
			memcpy(kv_tok(p, id), t, (size_t)p->bs * sizeof *t);
			b->ident = ++p->serial;
			kv_register(p, id);
		}
		h = b->hash;
		parent = b->ident;
	}
	s->n_hashed = i;
	s->hash = i ? h : 0;
}

void
kv_seq_release(kv_pool *p, kv_seq *s)
{
	if (!p || !s)
		return;
	/* last block first: a prefix's tail then sits nearer the LRU head
	 * and is evicted before the blocks it depends on */
	for (uint32_t i = s->n_blocks; i-- > 0;) {
		uint32_t id = s->blocks[i];
		kv_block *b;

		if (id >= p->n_blocks || !(b = &p->b[id])->ref)
			continue;
		if (--b->ref)
			continue;
		if (b->registered)
			kv_lru_push(p, id);
		else
			kv_free_push(p, id);
	}
	s->n_blocks = s->n_hashed = 0;
	s->hash = 0;
}

void
kv_seq_free(kv_seq *s)
{
	if (!s)
		return;
	free(s->blocks);
	*s = (kv_seq)KV_SEQ_ZERO;
}
