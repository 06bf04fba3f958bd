/* idtab: the requests in flight by id, for every stage that routes events
 * back by id (the engine, batchd, cat, detokenize). Intrusive and chained:
 * the caller's struct embeds an idtab_node and keeps the id's bytes; an id
 * is unique per owner (a connection; NULL for one namespace). Buckets
 * double as the table fills, so a lookup stays O(1) whatever the count. */
#ifndef SLUICE_IDTAB_H
#define SLUICE_IDTAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct idtab_node {
	struct idtab_node *next;
	const void *owner;      /* whose id: a connection, or NULL */
	const char *id;         /* the caller's bytes, stable while in the table */
	size_t n;
	uint64_t hash;
} idtab_node;

typedef struct idtab {
	idtab_node **b;         /* buckets, a power of two */
	size_t nb, count;
} idtab;
#define IDTAB_ZERO {0, 0, 0}

/* The struct that embeds node p as its member m. */
#define idtab_entry(p, type, m) ((type *)(void *)((char *)(p) - offsetof(type, m)))

idtab_node *idtab_find(const idtab *t, const void *owner, const char *id, size_t n);
/* Adds e under (owner, id[0..n)); the id must not be in the table. */
void idtab_add(idtab *t, idtab_node *e, const void *owner, const char *id, size_t n);
/* Takes e out (a no-op when it is not in). */
void idtab_del(idtab *t, idtab_node *e);
/* Frees the buckets (not the entries); the table is empty and reusable. */
void idtab_free(idtab *t);

#endif
