/* tok_bpe: byte-level BPE as llama.cpp's llm_tokenizer_bpe_session runs it:
 * the text is decoded to code points (invalid bytes become U+FFFD), split by
 * the pre-tokenizer's matchers, and each piece's bytes are merged by rank.
 * The matchers are hand-written over code point flags and behave as
 * llama.cpp's unicode_regex_split_custom_gpt2/_llama3 (and, for the stages
 * llama.cpp runs through std::regex, as those regexes do). Nearly all the
 * time of tokenize is spent here. */
#include <stdlib.h>
#include <string.h>

#include "tok_int.h"
#include "unicode.h"

/* one pre-tokenizer stage each; a pre-tokenizer is a list of them, each
 * splitting the pieces of the one before (unicode_regex_split) */
enum { ST_END, ST_GPT2, ST_LLAMA3, ST_QWEN2, ST_NUM1, ST_NUMRUN, ST_PUNCTRUN, ST_DIGIT3 };
static const uint8_t stages[][5] = {
	[PRE_GPT2] = { ST_GPT2 },
	/* \p{N}, then the GPT-2 pattern (starcoder, refact, command-r, smollm) */
	[PRE_SMOLLM] = { ST_NUM1, ST_GPT2 },
	[PRE_LLAMA3] = { ST_LLAMA3 },
	[PRE_QWEN2] = { ST_QWEN2 },
	/* [\p{P}\$\+<=>\^~\|]+, GPT-2, \p{N}+, [0-9][0-9][0-9] */
	[PRE_DEFAULT] = { ST_PUNCTRUN, ST_GPT2, ST_NUMRUN, ST_DIGIT3 },
};

typedef struct sym { uint32_t id, start, len; int32_t prev, next; } sym;

typedef struct ctx {
	const tok *t;
	const uint32_t *cp;     /* code points of the fragment */
	const uint16_t *fl;     /* their flags */
	const uint32_t *boff;   /* byte offset of each code point (n + 1) */
	const uint8_t *bytes;   /* the fragment, re-encoded where it was invalid */
	const uint8_t *st;      /* stages */
	tok_ids *out;
	int err;
	sym *sy;                /* scratch for one word */
	uint64_t *heap;
	size_t cap;
	char *enc;              /* byte-encoded word (ignore_merges) */
} ctx;

static void word(ctx *c, size_t a, size_t b);

static void
next_stage(ctx *c, int lvl, size_t a, size_t b);

/* ------------------------------------------------------------ the matchers */

#define F(p) ((p) < end ? c->fl[p] : 0)
#define CP(p) ((p) < end ? c->cp[p] : 0xffffffffu)
#define LNW (UNI_LETTER | UNI_NUMBER | UNI_SPACE)

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * as unicode_regex_split_custom_gpt2: contractions are case-sensitive, and a
 * whitespace run before a non-space gives its last character to the next
 * piece. Out of range flags are 0, in range never (unassigned is UNDEFINED). */
static void
gpt2(ctx *c, int lvl, size_t pos, size_t end)
{
	while (pos < end) {
		size_t s = pos;
		uint32_t cpt = c->cp[pos];
		unsigned f = c->fl[pos], f2;

		if (cpt == '\'' && pos + 1 < end) {
			uint32_t n1 = c->cp[pos + 1];
			if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
				next_stage(c, lvl, s, pos + 2);
				pos += 2;
				continue;
			}
			if (pos + 2 < end) {
				uint32_t n2 = c->cp[pos + 2];
				if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) {
					next_stage(c, lvl, s, pos + 3);
					pos += 3;
					continue;
				}
			}
		}
		f2 = cpt == ' ' ? F(pos + 1) : f;
		if (f2 & UNI_LETTER) {
			pos += cpt == ' ';
			while (F(pos) & UNI_LETTER)
				pos++;
		} else if (f2 & UNI_NUMBER) {
			pos += cpt == ' ';
			while (F(pos) & UNI_NUMBER)
				pos++;
		} else if (!(f2 & LNW) && f2) {
			pos += cpt == ' ';
			while (!(F(pos) & LNW) && F(pos))
				pos++;
		} else {
			size_t nw = 0;
			while (F(pos + nw) & UNI_SPACE)
				nw++;
			if (nw > 1 && pos + nw < end)
				pos += nw - 1;
			else if (nw > 0)
				pos += nw;
			else
				pos++;
		}
		next_stage(c, lvl, s, pos);
	}
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 * ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ as
 * unicode_regex_split_custom_llama3; maxd 1 gives qwen2's \p{N}, whose regex
 * llama.cpp runs through std::regex with the same result. */
static void
llama3(ctx *c, int lvl, size_t pos, size_t end, size_t maxd)
{
	while (pos < end) {
		size_t s = pos;
		uint32_t cpt = c->cp[pos];
		unsigned f = c->fl[pos], f2;

		if (cpt == '\'' && pos + 1 < end) {
			uint32_t n1 = uni_tolower(c->cp[pos + 1]);
			if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
				next_stage(c, lvl, s, pos + 2);
				pos += 2;
				continue;
			}
			if (pos + 2 < end) {
				uint32_t n2 = uni_tolower(c->cp[pos + 2]);
				if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) {
					next_stage(c, lvl, s, pos + 3);
					pos += 3;
					continue;
				}
			}
		}
		if (!(cpt == '\r' || cpt == '\n' || (f & UNI_NUMBER)) &&
		    ((f & UNI_LETTER) || (F(pos + 1) & UNI_LETTER))) {
			pos++;
			while (F(pos) & UNI_LETTER)
				pos++;
			next_stage(c, lvl, s, pos);
			continue;
		}
		if (f & UNI_NUMBER) {
			while (F(pos) & UNI_NUMBER) {
				pos++;
				if (pos - s >= maxd) {
					next_stage(c, lvl, s, pos);
					s = pos;
				}
			}
			if (pos > s)
				next_stage(c, lvl, s, pos);
			continue;
		}
		f2 = cpt == ' ' ? F(pos + 1) : f;
		if (!(f2 & LNW) && f) {
			pos += cpt == ' ';
			while (!(F(pos) & LNW) && F(pos))
				pos++;
			while (CP(pos) == '\r' || CP(pos) == '\n')
				pos++;
			next_stage(c, lvl, s, pos);
			continue;
		}
		size_t nw = 0, last_rn = 0;
		while (F(pos + nw) & UNI_SPACE) {
			uint32_t c2 = c->cp[pos + nw];
			if (c2 == '\r' || c2 == '\n')
				last_rn = pos + nw + 1;
			nw++;
		}
		if (last_rn)
			pos = last_rn;
		else if (nw > 1 && pos + nw < end)
			pos += nw - 1;
		else if (nw > 0)
			pos += nw;
		else
			pos++;
		next_stage(c, lvl, s, pos);
	}
}

/* A character class regex run through std::regex by llama.cpp: matches (one
 * code point each, or maximal runs) and the spans between become pieces. */
static int
is_punctrun(ctx *c, size_t p)
{
	uint32_t x = c->cp[p];
	return (c->fl[p] & UNI_PUNCT) || x == '$' || x == '+' || x == '<' || x == '=' ||
		x == '>' || x == '^' || x == '~' || x == '|';
}

static void
classes(ctx *c, int lvl, size_t pos, size_t end, int st)
{
	size_t s = pos;

	while (pos < end) {
		size_t m = pos, e;
		int hit;
		switch (st) {
		case ST_NUM1:
			hit = c->fl[pos] & UNI_NUMBER;
			e = pos + 1;
			break;
		case ST_NUMRUN:
			hit = c->fl[pos] & UNI_NUMBER;
			for (e = pos; e < end && (c->fl[e] & UNI_NUMBER); e++)
				;
			break;
		case ST_PUNCTRUN:
			hit = is_punctrun(c, pos);
			for (e = pos; e < end && is_punctrun(c, e); e++)
				;
			break;
		default: /* ST_DIGIT3 */
			hit = pos + 3 <= end;
			for (int k = 0; hit && k < 3; k++)
				hit = c->cp[pos + k] >= '0' && c->cp[pos + k] <= '9';
			e = pos + 3;
			break;
		}
		if (!hit) {
			pos++;
			continue;
		}
		if (m > s)
			next_stage(c, lvl, s, m);
		next_stage(c, lvl, m, e);
		pos = s = e;
	}
	if (pos > s)
		next_stage(c, lvl, s, pos);
}

static void
run_stage(ctx *c, int lvl, size_t a, size_t b)
{
	switch (c->st[lvl]) {
	case ST_GPT2: gpt2(c, lvl + 1, a, b); break;
	case ST_LLAMA3: llama3(c, lvl + 1, a, b, 3); break;
	case ST_QWEN2: llama3(c, lvl + 1, a, b, 1); break;
	case ST_END: word(c, a, b); break;
	default: classes(c, lvl + 1, a, b, c->st[lvl]); break;
	}
}

static void
next_stage(ctx *c, int lvl, size_t a, size_t b)
{
	if (b > a)
		run_stage(c, lvl, a, b);
}

/* -------------------------------------------------------------- merging */

static inline int
merge_find(const tok *t, uint32_t a, uint32_t b, uint32_t *rank, uint32_t *id)
{
	uint64_t key = (uint64_t)(a + 1) << 32 | (b + 1);
	uint32_t j = tok_mhash(key) & t->mmask;

	if (a == TOK_NONE || b == TOK_NONE)
		return 0;
	for (;;) {
		const tok_merge *m = &t->mt[j];
		if (m->key == key) {
			*rank = m->rank;
			*id = m->id;
			return 1;
		}
		if (!m->key)
			return 0;
		j = (j + 1) & t->mmask;
	}
}

static void
emit(ctx *c, const sym *s, const uint8_t *p)
{
	const tok *t = c->t;

	if (s->id < t->n_vocab) {
		if (tok_ids_push(c->out, s->id) < 0)
			c->err = 1;
		return;
	}
	/* not a token: llama.cpp looks up each byte of the byte-encoded text as
	 * a one-byte text and keeps those it finds */
	for (uint32_t i = 0; i < s->len; i++) {
		uint8_t u[4];
		size_t k = uni_encode(tok_byte_cp(p[s->start + i]), u);
		for (size_t j = 0; j < k; j++)
			if (t->byte1[u[j]] != TOK_NONE && tok_ids_push(c->out, t->byte1[u[j]]) < 0)
				c->err = 1;
	}
}

static int
grow(ctx *c, size_t n)
{
	if (n <= c->cap)
		return 0;
	size_t cap = n * 2;
	sym *s = realloc(c->sy, cap * sizeof *s);
	if (!s)
		return -1;
	c->sy = s;
	uint64_t *h = realloc(c->heap, cap * 3 * sizeof *h);
	if (!h)
		return -1;
	c->heap = h;
	char *e = realloc(c->enc, cap * 2);
	if (!e)
		return -1;
	c->enc = e;
	c->cap = cap;
	return 0;
}

/* heap of (rank << 32 | left index): lowest rank, then leftmost */
static void
hpush(uint64_t *h, size_t *n, uint64_t v)
{
	size_t i = (*n)++;
	while (i) {
		size_t p = (i - 1) / 2;
		if (h[p] <= v)
			break;
		h[i] = h[p];
		i = p;
	}
	h[i] = v;
}

static uint64_t
hpop(uint64_t *h, size_t *n)
{
	uint64_t top = h[0], v = h[--*n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		if (l >= *n)
			break;
		if (l + 1 < *n && h[l + 1] < h[l])
			l++;
		if (h[l] >= v)
			break;
		h[i] = h[l];
		i = l;
		(void)m;
	}
	if (*n)
		h[i] = v;
	return top;
}

/* One piece: bytes [boff[a], boff[b]). */
static void
word(ctx *c, size_t a, size_t b)
{
	const tok *t = c->t;
	const uint8_t *p = c->bytes + c->boff[a];
	size_t n = c->boff[b] - c->boff[a];
	sym *sy;

	if (c->err || grow(c, n + 1) < 0) {
		c->err = 1;
		return;
	}
	sy = c->sy;
	if (t->ignore_merges) {
		size_t k = 0;
		uint32_t id;
		for (size_t i = 0; i < n; i++)
			k += uni_encode(tok_byte_cp(p[i]), (uint8_t *)c->enc + k);
		if ((id = tok_lookup(t, c->enc, k)) < t->n_vocab) {
			if (tok_ids_push(c->out, id) < 0)
				c->err = 1;
			return;
		}
	}
	for (size_t i = 0; i < n; i++)
		sy[i] = (sym){ t->byte_sym[p[i]], i, 1, (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1 };
	if (n <= 32) {
		/* short words: scan for the lowest-ranked adjacent pair each time */
		uint32_t rk[33], mid[33];
		for (size_t i = 0; i + 1 < n; i++)
			if (!merge_find(t, sy[i].id, sy[i + 1].id, &rk[i], &mid[i]))
				rk[i] = TOK_NONE;
		for (;;) {
			uint32_t best = TOK_NONE;
			int bi = -1;
			for (int i = 0; i >= 0 && sy[i].next >= 0; i = sy[i].next)
				if (rk[i] < best) {
					best = rk[i];
					bi = i;
				}
			if (bi < 0)
				break;
			sym *l = &sy[bi], *r = &sy[l->next];
			l->id = mid[bi];
			l->len += r->len;
			l->next = r->next;
			if (r->next >= 0)
				sy[r->next].prev = bi;
			if (l->next < 0 || !merge_find(t, l->id, sy[l->next].id, &rk[bi], &mid[bi]))
				rk[bi] = TOK_NONE;
			if (l->prev >= 0 && !merge_find(t, sy[l->prev].id, l->id, &rk[l->prev], &mid[l->prev]))
				rk[l->prev] = TOK_NONE;
		}
	} else {
		uint64_t *h = c->heap;
		size_t hn = 0;
		uint32_t rank, id;
		for (size_t i = 0; i + 1 < n; i++)
			if (merge_find(t, sy[i].id, sy[i + 1].id, &rank, &id))
				hpush(h, &hn, (uint64_t)rank << 32 | i);
		while (hn) {
			uint64_t v = hpop(h, &hn);
			int32_t li = (uint32_t)v;
			sym *l = &sy[li], *r;
			if (!l->len || l->next < 0)
				continue;
			r = &sy[l->next];
			/* stale unless this pair still merges with this rank */
			if (!merge_find(t, l->id, r->id, &rank, &id) || rank != v >> 32)
				continue;
			l->id = id;
			l->len += r->len;
			r->len = 0;
			l->next = r->next;
			if (r->next >= 0)
				sy[r->next].prev = li;
			if (l->prev >= 0 && merge_find(t, sy[l->prev].id, l->id, &rank, &id))
				hpush(h, &hn, (uint64_t)rank << 32 | (uint32_t)l->prev);
			if (l->next >= 0 && merge_find(t, l->id, sy[l->next].id, &rank, &id))
				hpush(h, &hn, (uint64_t)rank << 32 | (uint32_t)li);
		}
	}
	for (int i = 0; i >= 0 && !c->err; i = sy[i].next)
		emit(c, &sy[i], p);
}

/* ---------------------------------------------------------------- entry */

int
tok_bpe_encode(const tok *t, const char *s, size_t n, tok_ids *out)
{
	ctx c = { 0 };
	uint32_t *cp = malloc((n + 1) * sizeof *cp), *boff = malloc((n + 1) * sizeof *boff);
	uint16_t *fl = malloc((n + 1) * sizeof *fl);
	uint8_t *fixed = 0;
	size_t m = 0, i, k = 0;
	int r = -1;

	if (!cp || !boff || !fl)
		goto out;
	for (i = 0; i < n; m++) {
		size_t l;
		uint8_t u[4];
		uint32_t x = (uint8_t)s[i] < 0x80 ? (l = 1, (uint8_t)s[i]) : uni_decode((const uint8_t *)s + i, n - i, &l);
		size_t el = x < 0x80 ? 1 : uni_encode(x, u);
		/* llama.cpp aborts on code points past U+10FFFF; sluice takes each
		 * byte of such a sequence as invalid, as it does all others */
		if (el == 0) {
			x = 0xFFFD;
			l = 1;
			el = uni_encode(x, u);
		}
		if (!fixed && (el != l || (x >= 0x80 && memcmp(u, s + i, l)))) {
			/* invalid or overlong: work on the re-encoded text, as llama.cpp
			 * rebuilds each piece from its code points */
			if (!(fixed = malloc(3 * n + 1)))
				goto out;
			memcpy(fixed, s, i);
			k = i;
		}
		cp[m] = x;
		fl[m] = uni_flags(x);
		boff[m] = fixed ? k : i;
		if (fixed) {
			if (x < 0x80)
				fixed[k] = x;
			else
				memcpy(fixed + k, u, el);
			k += el;
		}
		i += l;
	}
	boff[m] = fixed ? k : n;
	c.t = t;
	c.cp = cp;
	c.fl = fl;
	c.boff = boff;
	c.bytes = fixed ? fixed : (const uint8_t *)s;
	c.st = stages[t->pre];
	c.out = out;
	if (m)
		run_stage(&c, 0, 0, m);
	r = c.err ? -1 : 0;
out:
	free(cp);
	free(boff);
	free(fl);
	free(fixed);
	free(c.sy);
	free(c.heap);
	free(c.enc);
	return r;
}
