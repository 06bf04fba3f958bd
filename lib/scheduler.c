/* scheduler: continuous batching over the paged KV cache (see scheduler.h). */
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "scheduler.h"

struct sched {
	sched_opts o;
	kv_pool *kv;
	sched_seq *wait, *run;   /* both sorted by (priority, order) */
	uint32_t n_wait, n_run;
	uint64_t order;
	uint32_t max_out;
	sched_batch b;
	sched_seq **stepped;     /* (max_seqs) */
	uint32_t n_stepped;
};

/* ------------------------------------------------------------- lists */

static int
before(const sched_seq *a, const sched_seq *b)
{
	if (a->priority != b->priority)
		return a->priority < b->priority;
	if (a->order != b->order)
		return a->order < b->order;
	return a->serial < b->serial;
}

static void
list_insert(sched_seq **head, sched_seq *q)
{
	sched_seq *p = *head, *last = 0;

	while (p && !before(q, p)) {
		last = p;
		p = p->next;
	}
	q->prev = last;
	q->next = p;
	if (p)
		p->prev = q;
	if (last)
		last->next = q;
	else
		*head = q;
}

static void
list_remove(sched_seq **head, sched_seq *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		*head = q->next;
	if (q->next)
		q->next->prev = q->prev;
	q->next = q->prev = 0;
}

/* ------------------------------------------------------------- life */

sched *
sched_new(const sched_opts *o)
{
	sched *s = xcalloc(1, sizeof *s);

	s->o = *o;
	s->kv = kv_new(o->n_blocks, o->block_size, o->caching);
	if (!s->kv) {
		free(s);
		return 0;
	}
	s->max_out = o->max_seqs;
	s->b.tokens = xmalloc((size_t)o->max_batch_tokens * sizeof *s->b.tokens);
	s->b.parts = xmalloc((size_t)o->max_seqs * sizeof *s->b.parts);
	s->b.logits = xmalloc((size_t)s->max_out * o->n_vocab * sizeof(float));
	s->stepped = xmalloc((size_t)o->max_seqs * sizeof *s->stepped);
	return s;
}

static void
seq_free(sched *s, sched_seq *q)
{
	kv_seq_release(s->kv, &q->kv);
	kv_seq_free(&q->kv);
	free(q->tokens);
	free(q);
}

void
sched_free(sched *s)
{
	if (!s)
		return;
	while (s->wait) {
		sched_seq *q = s->wait;
		list_remove(&s->wait, q);
		seq_free(s, q);
	}
	while (s->run) {
		sched_seq *q = s->run;
		list_remove(&s->run, q);
		seq_free(s, q);
	}
	kv_free(s->kv);
	free(s->b.tokens);
	free(s->b.parts);
	free(s->b.logits);
	free(s->stepped);
	free(s);
}

kv_pool *
sched_kv(sched *s)
{
	return s->kv;
}

sched_seq *
sched_add(sched *s, void *ud, const uint32_t *tokens, uint32_t n, uint32_t max_new,
	  int64_t priority, uint32_t logits_from)
{
	sched_seq *q;

	if (n == 0 || n >= s->o.max_ctx)
		return 0;
	q = xcalloc(1, sizeof *q);
	q->ud = ud;
	q->priority = priority;
	q->order = q->serial = s->order++;
	q->cap = n + 16;
	q->tokens = xmalloc((size_t)q->cap * sizeof *q->tokens);
	memcpy(q->tokens, tokens, (size_t)n * sizeof *tokens);
	q->n_tokens = q->n_prompt = n;
	q->max_new = max_new;
	q->logits_from = logits_from;
	q->out = UINT32_MAX;
	q->state = SCHED_WAITING;
	list_insert(&s->wait, q);
	s->n_wait++;
	return q;
}

void
sched_set_order(sched *s, sched_seq *q, uint64_t order)
{
	if (q->state != SCHED_WAITING) {
		q->order = order;
		return;
	}
	list_remove(&s->wait, q);
	q->order = order;
	list_insert(&s->wait, q);
}

void
sched_drop(sched *s, sched_seq *q)
{
	uint32_t i;

	if (q->state == SCHED_WAITING) {
		list_remove(&s->wait, q);
		s->n_wait--;
	} else if (q->state == SCHED_RUNNING) {
		list_remove(&s->run, q);
		s->n_run--;
	}
	for (i = 0; i < s->n_stepped; i++)
		if (s->stepped[i] == q)
			s->stepped[i] = 0;
	seq_free(s, q);
}

void
sched_push(sched *s, sched_seq *q, uint32_t token)
{
	(void)s;
	if (q->n_tokens == q->cap) {
		q->cap = q->cap * 2;
		q->tokens = xrealloc(q->tokens, (size_t)q->cap * sizeof *q->tokens);
	}
	q->tokens[q->n_tokens++] = token;
}

/* ------------------------------------------------------------- the step */

/* Frees q's blocks and sends it back to wait; what it computed will be
 * recomputed (cheaply when its full blocks are still in the prefix cache). */
static void
preempt(sched *s, sched_seq *q)
{
	list_remove(&s->run, q);
	s->n_run--;
	kv_seq_release(s->kv, &q->kv);
	q->n_done = 0;
	q->n_step = 0;
	q->preempted++;
	q->state = SCHED_WAITING;
	list_insert(&s->wait, q);
	s->n_wait++;
}

/* The worst running sequence not yet given a part of this step. */
static sched_seq *
victim(sched *s)
{
	sched_seq *p = s->run, *last = 0;

	for (; p; p = p->next)
		if (!p->n_step)
			last = p;
	return last;
}

static void
add_part(sched *s, sched_seq *q, uint32_t chunk, uint32_t *out_left)
{
	sched_batch *b = &s->b;
	sched_part *pt = &b->parts[b->n_parts++];
	int last = q->n_done + chunk == q->n_tokens;

	pt->blocks = q->kv.blocks;
	pt->pos = q->n_done;
	pt->n = chunk;
	pt->first = b->n_tokens;
	if (q->logits_from != SCHED_LAST) {   /* the chunk's tokens from logits_from on: a tail */
		uint32_t from = q->logits_from > q->n_done ? q->logits_from : q->n_done;
		pt->n_logits = q->n_done + chunk > from ? q->n_done + chunk - from : 0;
	} else {
		pt->n_logits = last ? 1 : 0;
	}
	pt->out = b->n_out;
	q->out = pt->n_logits ? b->n_out : UINT32_MAX;
	q->n_out = pt->n_logits;
	b->n_out += pt->n_logits;
	*out_left -= pt->n_logits;
	memcpy(b->tokens + b->n_tokens, q->tokens + q->n_done, (size_t)chunk * sizeof(uint32_t));
	b->n_tokens += chunk;
	q->n_step = chunk;
	s->stepped[s->n_stepped++] = q;
}

/* How many of q's pending tokens fit this step. */
static uint32_t
chunk_for(const sched *s, const sched_seq *q, uint32_t budget, uint32_t out_left)
{
	uint32_t need = q->n_tokens - q->n_done, c = need < budget ? need : budget;

	(void)s;
	if (q->logits_from != SCHED_LAST) {
		/* the tokens before logits_from need no row */
		uint32_t unscored = q->logits_from > q->n_done ? q->logits_from - q->n_done : 0;
		if (c > unscored + out_left)
			c = unscored + out_left;
	} else if (c == need && out_left == 0)
		c = need > 1 ? need - 1 : 0;   /* all but the last: its logits have no row left */
	return c;
}

sched_batch *
sched_step(sched *s)
{
	sched_batch *b = &s->b;
	uint32_t budget = s->o.max_batch_tokens, out_left = s->max_out, pass;
	sched_seq *q, *next;

	b->n_tokens = b->n_parts = b->n_out = 0;
	s->n_stepped = 0;
	for (q = s->run; q; q = q->next)
		q->n_step = 0, q->out = UINT32_MAX, q->n_out = 0;

	/* running sequences, decodes first, best first; preempting from the tail */
	for (pass = 0; pass < 2; pass++) {
		for (q = s->run; q && budget; q = next) {
			uint32_t c;

			next = q->next;
			if (q->n_step || q->paused || (pass == 0) != (q->n_tokens - q->n_done == 1))
				continue;
			c = chunk_for(s, q, budget, out_left);
			if (!c)
				continue;
			while (kv_seq_reserve(s->kv, &q->kv, q->n_done + c) < 0) {
				sched_seq *v = victim(s);
				if (!v)
					break;
				if (v == next)
					next = next->next;
				preempt(s, v);
				if (v == q)
					break;
			}
			if (q->state != SCHED_RUNNING || q->kv.n_blocks * s->o.block_size < q->n_done + c)
				continue;
			add_part(s, q, c, &out_left);
			budget -= c;
		}
	}

	/* admission: best waiting first while everything fits; a request that
	 * does not fit keeps its place (no overtaking by lower priorities); a
	 * paused one is passed over */
	for (q = s->wait; q && budget && s->n_run < s->o.max_seqs; q = next) {
		uint32_t c, hit;

		next = q->next;
		if (q->paused)
			continue;
		hit = kv_seq_match(s->kv, &q->kv, q->tokens, q->n_tokens);
		q->n_done = hit;
		c = chunk_for(s, q, budget, out_left);
		if (!c || kv_seq_reserve(s->kv, &q->kv, q->n_done + c) < 0) {
			kv_seq_release(s->kv, &q->kv);
			q->n_done = 0;
			break;
		}
		if (!q->admitted_once) {
			q->admitted_once = 1;
			q->cached = hit;
		}
		list_remove(&s->wait, q);
		s->n_wait--;
		q->state = SCHED_RUNNING;
		list_insert(&s->run, q);
		s->n_run++;
		add_part(s, q, c, &out_left);
		budget -= c;
	}
	return b->n_tokens ? b : 0;
}

void
sched_done(sched *s)
{
	uint32_t i;

	for (i = 0; i < s->n_stepped; i++) {
		sched_seq *q = s->stepped[i];
		if (!q)
			continue;
		q->n_done += q->n_step;
		kv_seq_commit(s->kv, &q->kv, q->tokens, q->n_done);
	}
}

sched_seq **
sched_stepped(sched *s, uint32_t *n)
{
	*n = s->n_stepped;
	return s->stepped;
}

uint32_t
sched_n_running(const sched *s)
{
	return s->n_run;
}

uint32_t
sched_n_waiting(const sched *s)
{
	return s->n_wait;
}
