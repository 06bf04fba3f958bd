/* idtab: requests in flight by (owner, id), chained, growing (see idtab.h). */
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "idtab.h"
#include "msg.h"

static uint64_t
key(const void *owner, const char *id, size_t n)
{
	return msg_hash_id(id, n) ^ ((uintptr_t)owner * 0x9e3779b97f4a7c15ull);
}

idtab_node *
idtab_find(const idtab *t, const void *owner, const char *id, size_t n)
{
	uint64_t h;
	idtab_node *e;

	if (!t->nb)
		return NULL;
	h = key(owner, id, n);
	for (e = t->b[h & (t->nb - 1)]; e; e = e->next)
		if (e->hash == h && e->owner == owner && e->n == n && !memcmp(e->id, id, n))
			return e;
	return NULL;
}

static void
grow(idtab *t)
{
	size_t nb = t->nb ? t->nb * 2 : 64, i;
	idtab_node **b = xcalloc(nb, sizeof *b), *e, *next;

	for (i = 0; i < t->nb; i++)
		for (e = t->b[i]; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	free(t->b);
	t->b = b;
	t->nb = nb;
}

void
idtab_add(idtab *t, idtab_node *e, const void *owner, const char *id, size_t n)
{
	if (t->count >= t->nb)
		grow(t);
	e->owner = owner;
	e->id = id;
	e->n = n;
	e->hash = key(owner, id, n);
	e->next = t->b[e->hash & (t->nb - 1)];
	t->b[e->hash & (t->nb - 1)] = e;
	t->count++;
}

void
idtab_del(idtab *t, idtab_node *e)
{
	idtab_node **pp;

	if (!t->nb)
		return;
	for (pp = &t->b[e->hash & (t->nb - 1)]; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			e->next = NULL;
			t->count--;
			return;
		}
}

void
idtab_free(idtab *t)
{
	free(t->b);
	*t = (idtab)IDTAB_ZERO;
}
