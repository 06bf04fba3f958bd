/* tok_spm: SentencePiece as llama.cpp's llm_tokenizer_spm_session runs it:
 * spaces become U+2581 (with one prepended after BOS or a special token when
 * add_space_prefix), the text is split into UTF-8 characters, and the
 * adjacent pair whose joined text is the token with the highest score is
 * merged (ties to the left) until none is left; characters that are not
 * tokens become byte tokens <0xXX>. */
#include <stdlib.h>
#include <string.h>

#include "tok_int.h"
#include "unicode.h"

typedef struct ssym { uint32_t start, len; int32_t prev, next; } ssym;
typedef struct big { float score; uint32_t left, right, size; } big;

/* heap order: highest score first, then leftmost (llm_bigram_spm::comparator) */
static int
before(const big *a, const big *b)
{
	return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void
push(big *h, size_t *n, big v)
{
	size_t i = (*n)++;
	while (i) {
		size_t p = (i - 1) / 2;
		if (!before(&v, &h[p]))
			break;
		h[i] = h[p];
		i = p;
	}
	h[i] = v;
}

static big
pop(big *h, size_t *n)
{
	big top = h[0], v = h[--*n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1;
		if (l >= *n)
			break;
		if (l + 1 < *n && before(&h[l + 1], &h[l]))
			l++;
		if (!before(&h[l], &v))
			break;
		h[i] = h[l];
		i = l;
	}
	if (*n)
		h[i] = v;
	return top;
}

static void
try_pair(const tok *t, const char *s, const ssym *sy, int32_t l, int32_t r, big *h, size_t *hn)
{
	uint32_t id;

	if (l < 0 || r < 0)
		return;
	id = tok_lookup(t, s + sy[l].start, sy[l].len + sy[r].len);
	if (id >= t->n_vocab)
		return;
	push(h, hn, (big){ t->score[id], l, r, sy[l].len + sy[r].len });
}

int
tok_spm_encode(const tok *t, const char *in, size_t n, int space_prefix, tok_ids *out)
{
	size_t cap = 3 * (n + 1), m = 0, k = 0, hn = 0;
	char *s = malloc(cap);
	ssym *sy = malloc((cap + 1) * sizeof *sy);
	big *h = malloc((3 * cap + 3) * sizeof *h);
	int r = -1;

	if (!s || !sy || !h)
		goto out;
	if (space_prefix) {
		memcpy(s, "\xe2\x96\x81", 3);
		k = 3;
	}
	for (size_t i = 0; i < n; i++) {
		if (in[i] == ' ') {
			memcpy(s + k, "\xe2\x96\x81", 3);
			k += 3;
		} else {
			s[k++] = in[i];
		}
	}
	for (size_t i = 0; i < k; m++) {
		size_t l = uni_len_lead((uint8_t)s[i]);
		if (l > k - i)
			l = k - i;
		sy[m] = (ssym){ i, l, (int32_t)m - 1, i + l < k ? (int32_t)m + 1 : -1 };
		i += l;
	}
	for (size_t i = 1; i < m; i++)
		try_pair(t, s, sy, i - 1, i, h, &hn);
	/* m - 1 pairs, then two more per merge at most: 3 * cap bounds the heap */
	while (hn) {
		big b = pop(h, &hn);
		ssym *l = &sy[b.left], *rr = &sy[b.right];
		if (!l->len || !rr->len || l->len + rr->len != b.size)
			continue;
		l->len += rr->len;
		rr->len = 0;
		l->next = rr->next;
		if (rr->next >= 0)
			sy[rr->next].prev = b.left;
		try_pair(t, s, sy, l->prev, b.left, h, &hn);
		try_pair(t, s, sy, b.left, l->next, h, &hn);
	}
	for (int32_t i = m ? 0 : -1; i >= 0; i = sy[i].next) {
		uint32_t id = tok_lookup(t, s + sy[i].start, sy[i].len);
		if (id < t->n_vocab) {
			if (tok_ids_push(out, id) < 0)
				goto out;
			continue;
		}
		for (uint32_t j = 0; j < sy[i].len; j++) {
			uint32_t b = t->byte_tok[(uint8_t)s[sy[i].start + j]];
			if (b == TOK_NONE)
				b = t->unk >= 0 ? (uint32_t)t->unk : 0;
			if (tok_ids_push(out, b) < 0)
				goto out;
		}
	}
	r = 0;
out:
	free(s);
	free(sy);
	free(h);
	return r;
}
