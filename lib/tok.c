/* tok: loads a tokenizer from GGUF metadata the way llama.cpp's
 * llama_vocab::impl::load does (defaults, special ids, the end-of-generation
 * set and the attributes it derives from token texts), partitions text on
 * special tokens, and turns ids back into pieces (llama_token_to_piece).
 * Every text lives in one arena; lookups go through open-addressing hashes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tok_int.h"
#include "unicode.h"

/* ---------------------------------------------------------------- hashing */

uint64_t
tok_hash(const void *p, size_t n)
{
	const uint8_t *s = p;
	uint64_t h = 0x9e3779b97f4a7c15ull ^ n, w;

	while (n >= 8) {
		memcpy(&w, s, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
		s += 8;
		n -= 8;
	}
	if (n) {
		w = 0;
		memcpy(&w, s, n);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
	}
	h ^= h >> 29;
	h *= 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 32);
}

uint32_t
tok_lookup(const tok *t, const char *s, size_t n)
{
	uint32_t i = tok_hash(s, n) & t->hmask, v;

	while ((v = t->ht[i])) {
		v--;
		if (t->len[v] == n && !memcmp(t->arena + t->off[v], s, n))
			return v;
		i = (i + 1) & t->hmask;
	}
	return TOK_NONE;
}

/* Adds id for its text; a later id with the same text wins, as in
 * llama.cpp's token_to_id[word] = i. */
static void
ht_put(tok *t, uint32_t id)
{
	const char *s = t->arena + t->off[id];
	uint32_t n = t->len[id], i = tok_hash(s, n) & t->hmask, v;

	while ((v = t->ht[i])) {
		v--;
		if (t->len[v] == n && !memcmp(t->arena + t->off[v], s, n)) {
			t->ht[i] = id + 1;
			return;
		}
		i = (i + 1) & t->hmask;
	}
	t->ht[i] = id + 1;
}

/* ------------------------------------------------------------ ids, bytes */

int
tok_ids_push(tok_ids *o, uint32_t id)
{
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 64;
		uint32_t *v = realloc(o->v, cap * sizeof *v);
		if (!v)
			return -1;
		o->v = v;
		o->cap = cap;
	}
	o->v[o->n++] = id;
	return 0;
}

void
tok_ids_free(tok_ids *o)
{
	free(o->v);
	o->v = 0;
	o->n = o->cap = 0;
}

/* GPT-2's bytes_to_unicode: printable bytes keep their value, the 68 others
 * take U+0100.. in ascending order. */
uint32_t
tok_byte_cp(uint8_t b)
{
	static uint32_t map[256];
	static int done;

	if (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
		uint32_t m[256], k = 0;
		for (int c = 0; c < 256; c++)
			m[c] = (c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || c >= 0xae ? (uint32_t)c : 0x100 + k++;
		memcpy(map, m, sizeof m);
		__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	}
	return map[b];
}

int
tok_cp_byte(uint32_t cp)
{
	if ((cp >= 0x21 && cp <= 0x7e) || (cp >= 0xa1 && cp <= 0xac) || (cp >= 0xae && cp <= 0xff))
		return cp;
	if (cp >= 0x100 && cp < 0x100 + 68)
		for (int c = 0; c < 256; c++)
			if (tok_byte_cp(c) == cp)
				return c;
	return -1;
}

/* ----------------------------------------------------------------- loading */

static int
arena_add(tok *t, const char *s, size_t n, uint32_t *off)
{
	if (t->arena_n + n + 1 > t->arena_cap) {
		size_t cap = (t->arena_cap + n + 1) * 2;
		char *a = realloc(t->arena, cap);
		if (!a)
			return -1;
		t->arena = a;
		t->arena_cap = cap;
	}
	memcpy(t->arena + t->arena_n, s, n);
	t->arena[t->arena_n + n] = 0;
	*off = t->arena_n;
	t->arena_n += n + 1;
	return 0;
}

static uint32_t
pow2_above(uint64_t n)
{
	uint32_t c = 16;
	while (c < n * 2)
		c <<= 1;
	return c;
}

/* The id of text s (interned as a non-token id past n_vocab if absent). */
static uint32_t
intern(tok *t, const char *s, size_t n, uint32_t cap)
{
	uint32_t id = tok_lookup(t, s, n);

	if (id != TOK_NONE)
		return id;
	if (t->n_text == cap || arena_add(t, s, n, &t->off[t->n_text]) < 0)
		return TOK_NONE;
	if ((uint64_t)(t->n_text + 1) * 4 > (uint64_t)(t->hmask + 1) * 3) {
		/* keep the table at most 3/4 full: double it */
		uint32_t hc = (t->hmask + 1) * 2, *h = calloc(hc, sizeof *h);
		if (!h)
			return TOK_NONE;
		free(t->ht);
		t->ht = h;
		t->hmask = hc - 1;
		for (uint32_t id = 0; id < t->n_text; id++)
			ht_put(t, id);
	}
	t->len[t->n_text] = n;
	ht_put(t, t->n_text);
	return t->n_text++;
}

static int
load_merges(tok *t, const gguf *g, char *err, size_t errlen)
{
	const gguf_kv *kv;
	uint32_t type, cap;
	uint64_t n;
	gguf_iter it;
	const char *s;
	size_t sn;
	uint64_t i = 0;

	if (gguf_arr(g, "tokenizer.ggml.merges", &type, &n, &kv) != 1 || type != GGUF_STR) {
		snprintf(err, errlen, "missing tokenizer.ggml.merges (a string array)");
		return -1;
	}
	if (n > 1u << 24) {
		snprintf(err, errlen, "too many merges (%llu)", (unsigned long long)n);
		return -1;
	}
	/* room for the texts merges name that are not tokens */
	cap = t->n_vocab + 3 * n + 1;
	uint32_t *o = realloc(t->off, cap * sizeof *o), *l;
	if (!o)
		goto oom;
	t->off = o;
	if (!(l = realloc(t->len, cap * sizeof *l)))
		goto oom;
	t->len = l;
	uint32_t mc = pow2_above(n);
	if (!(t->mt = calloc(mc, sizeof *t->mt)))
		goto oom;
	t->mmask = mc - 1;
	gguf_str_iter(kv, &it);
	for (; gguf_str_next(&it, &s, &sn); i++) {
		const char *sp = sn > 1 ? memchr(s + 1, ' ', sn - 1) : 0;
		uint32_t a, b, m;
		if (!sp)
			continue;   /* llama.cpp files it under ("", ""), which never matches */
		size_t ln = sp - s, rn = sn - ln - 1;
		char buf[512], *cat = buf;
		if (ln + rn > sizeof buf && !(cat = malloc(ln + rn)))
			goto oom;
		memcpy(cat, s, ln);
		memcpy(cat + ln, sp + 1, rn);
		a = intern(t, s, ln, cap);
		b = intern(t, sp + 1, rn, cap);
		m = intern(t, cat, ln + rn, cap);
		if (cat != buf)
			free(cat);
		if (a == TOK_NONE || b == TOK_NONE || m == TOK_NONE)
			goto oom;
		uint64_t key = (uint64_t)(a + 1) << 32 | (b + 1);
		uint32_t j = tok_mhash(key) & t->mmask;
		while (t->mt[j].key && t->mt[j].key != key)
			j = (j + 1) & t->mmask;
		if (!t->mt[j].key) {    /* the first rank of a pair wins (bpe_ranks.emplace) */
			t->mt[j].key = key;
			t->mt[j].rank = i;
			t->mt[j].id = m;
		}
	}
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

static int64_t
get_id(const gguf *g, const char *key, int64_t def, uint32_t n_vocab)
{
	int64_t v;
	/* llama.cpp keeps the default when the id lies outside the vocabulary */
	if (gguf_get_i64(g, key, &v) == 1 && v >= 0 && v < n_vocab)
		return v;
	return def;
}

/* 1 (with err) when KEY names a token outside the vocabulary although the
 * tokenizer is told (by FLAG) to add it to every prompt: llama.cpp quietly
 * adds its default id instead, a token the model was never given. */
static int
outside(const gguf *g, const char *key, const char *flag, uint32_t n_vocab, char *err, size_t errlen)
{
	int64_t v;

	if (gguf_get_i64(g, key, &v) != 1 || (v >= 0 && v < n_vocab))
		return 0;
	snprintf(err, errlen, "%s %lld is outside the vocabulary of %u tokens, and tokenizer.ggml.%s is true",
		 key, (long long)v, n_vocab, flag);
	return 1;
}

static int
is_one_of(const char *s, size_t n, const char *const *list)
{
	/* every name listed starts with '<', '_' or U+2581 and is short */
	if (n < 4 || n > 48 || (s[0] != '<' && s[0] != '_' && s[0] != '\xe2'))
		return 0;
	for (; *list; list++)
		if (strlen(*list) == n && !memcmp(*list, s, n))
			return 1;
	return 0;
}

/* llama.cpp guesses EOT, EOM and the FIM tokens from their texts when the
 * file does not name them, forces them to CONTROL, and builds the
 * end-of-generation set from them (llama-vocab.cpp, "auto-detect special
 * tokens by text"). Checked against llama_vocab_is_eog on llama.cpp's vocab
 * files: SmolLM2 gives {0, 2, 4}. */
static const char *const eot_texts[] = { "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
	"<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
	"<end_of_utterance>", 0 };
static const char *const eom_texts[] = { "<|eom_id|>", 0 };
static const char *const fim_pre[] = { "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
	"<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", 0 };
static const char *const fim_suf[] = { "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
	"<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>", "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", 0 };
static const char *const fim_mid[] = { "<|fim_middle|>", "<fim-middle>", "<fim_middle>",
	"<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>", "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", 0 };
static const char *const fim_pad[] = { "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", 0 };
static const char *const fim_rep[] = { "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", 0 };
static const char *const fim_sep[] = { "<|file_sep|>", "<fim-sep>", "<SEP>", 0 };
static const char *const eog_texts[] = { "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>",
	"<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>",
	"<end_of_utterance>", "</s>", 0 };   /* "</s>": llama-cpp-python 0.3.36 has it (qwen2 vocab) */

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static void
eog_add(tok *t, int64_t id)
{
	if (id < 0)
		return;
	for (uint32_t i = 0; i < t->n_eog; i++)
		if (t->eog[i] == id)
			return;
	t->eog[t->n_eog++] = id;
}

/* Scans the texts for the tokens llama.cpp finds by name; *id is set when
 * still unset (the file's own key wins) and the token becomes CONTROL. */
static void
detect(tok *t, const char *const *list, int64_t *id)
{
	if (*id >= 0)
		return;
	for (uint32_t i = 0; i < t->n_vocab; i++)
		if (is_one_of(t->arena + t->off[i], t->len[i], list)) {
			*id = i;
			t->type[i] = TOK_CONTROL;
			return;
		}
}

static const tok *sort_tok;

static int
cmp_special(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	if (sort_tok->len[x] != sort_tok->len[y])
		return sort_tok->len[x] > sort_tok->len[y] ? -1 : 1;
	return x < y ? -1 : x > y;
}

static int
load_special(tok *t, const gguf *g)
{
	int64_t fp = get_id(g, "tokenizer.ggml.fim_pre_token_id", -1, t->n_vocab);
	int64_t fs = get_id(g, "tokenizer.ggml.fim_suf_token_id", -1, t->n_vocab);
	int64_t fm = get_id(g, "tokenizer.ggml.fim_mid_token_id", -1, t->n_vocab);
	int64_t fpad = get_id(g, "tokenizer.ggml.fim_pad_token_id", -1, t->n_vocab);
	int64_t frep = get_id(g, "tokenizer.ggml.fim_rep_token_id", -1, t->n_vocab);
	int64_t fsep = get_id(g, "tokenizer.ggml.fim_sep_token_id", -1, t->n_vocab);

	detect(t, eot_texts, &t->eot);
	detect(t, eom_texts, &t->eom);
	detect(t, fim_pre, &fp);
	detect(t, fim_suf, &fs);
	detect(t, fim_mid, &fm);
	detect(t, fim_pad, &fpad);
	detect(t, fim_rep, &frep);
	detect(t, fim_sep, &fsep);
	uint32_t n = 6;
	for (uint32_t i = 0; i < t->n_vocab; i++)
		n += is_one_of(t->arena + t->off[i], t->len[i], eog_texts);
	if (!(t->eog = malloc(n * sizeof *t->eog)))
		return -1;
	eog_add(t, fpad);
	eog_add(t, frep);
	eog_add(t, fsep);
	for (uint32_t i = 0; i < t->n_vocab; i++)
		if (is_one_of(t->arena + t->off[i], t->len[i], eog_texts)) {
			eog_add(t, i);
			t->type[i] = TOK_CONTROL;
		}
	eog_add(t, t->eos);
	eog_add(t, t->eot);
	eog_add(t, t->eom);
	qsort(t->eog, t->n_eog, sizeof *t->eog, cmp_u32);

	/* the tokens the text is partitioned on, longest first */
	n = 0;
	for (uint32_t i = 0; i < t->n_vocab; i++)
		n += (t->type[i] == TOK_CONTROL || t->type[i] == TOK_USER || t->type[i] == TOK_UNKNOWN) && t->len[i];
	if (!(t->special = malloc((n + 1) * sizeof *t->special)))
		return -1;
	for (uint32_t i = 0; i < t->n_vocab; i++)
		if ((t->type[i] == TOK_CONTROL || t->type[i] == TOK_USER || t->type[i] == TOK_UNKNOWN) && t->len[i]) {
			t->special[t->n_special++] = i;
			t->sp_first[(uint8_t)t->arena[t->off[i]]] = 1;
		}
	sort_tok = t;   /* qsort has no context argument in C11; loading is not hot */
	qsort(t->special, t->n_special, sizeof *t->special, cmp_special);
	return 0;
}

static const struct { const char *name; int pre; } pres[] = {
	{ "smollm", PRE_SMOLLM }, { "starcoder", PRE_SMOLLM }, { "refact", PRE_SMOLLM },
	{ "command-r", PRE_SMOLLM },
	{ "llama3", PRE_LLAMA3 }, { "llama-v3", PRE_LLAMA3 }, { "llama-bpe", PRE_LLAMA3 },
	{ "falcon3", PRE_LLAMA3 },
	{ "qwen2", PRE_QWEN2 }, { "deepseek-r1-qwen", PRE_QWEN2 },
	{ "gpt-2", PRE_GPT2 }, { "phi-2", PRE_GPT2 }, { "default", PRE_DEFAULT },
};

tok *
tok_load(const gguf *g, char *err, size_t errlen)
{
	tok *t = calloc(1, sizeof *t);
	const char *s;
	size_t sn;
	uint32_t type;
	uint64_t n;
	const gguf_kv *kv, *tkv = 0, *skv = 0;
	gguf_iter it;
	int b;

	if (!t)
		goto oom;
	uni_init();
	t->bos = t->eos = t->unk = t->pad = t->eot = t->eom = -1;
	if (gguf_get_str(g, "tokenizer.ggml.model", &s, &sn) != 1) {
		snprintf(err, errlen, "missing tokenizer.ggml.model");
		goto fail;
	}
	if (sn == 4 && !memcmp(s, "gpt2", 4)) {
		t->model = TOKM_BPE;
	} else if (sn == 5 && !memcmp(s, "llama", 5)) {
		t->model = TOKM_SPM;
		t->add_bos = t->add_space_prefix = 1;
	} else {
		snprintf(err, errlen, "unsupported tokenizer.ggml.model \"%.*s\"; known: gpt2, llama",
			(int)(sn > 64 ? 64 : sn), s);
		goto fail;
	}
	if (t->model == TOKM_BPE) {
		t->pre = -1;
		if (gguf_get_str(g, "tokenizer.ggml.pre", &s, &sn) != 1) {
			s = "default";   /* llama.cpp warns and takes 'default' */
			sn = 7;
		}
		for (size_t i = 0; i < sizeof pres / sizeof *pres; i++)
			if (strlen(pres[i].name) == sn && !memcmp(pres[i].name, s, sn))
				t->pre = pres[i].pre;
		if (t->pre < 0) {
			size_t k = snprintf(err, errlen, "unsupported tokenizer.ggml.pre \"%.*s\"; known:",
				(int)(sn > 64 ? 64 : sn), s);
			for (size_t i = 0; i < sizeof pres / sizeof *pres && k < errlen; i++)
				k += snprintf(err + k, errlen - k, "%s %s", i ? "," : "", pres[i].name);
			goto fail;
		}
		if (t->pre == PRE_LLAMA3)
			t->ignore_merges = t->add_bos = 1;
	}
	if (gguf_arr(g, "tokenizer.ggml.tokens", &type, &n, &kv) != 1 || type != GGUF_STR || !n) {
		snprintf(err, errlen, "missing tokenizer.ggml.tokens (a string array)");
		goto fail;
	}
	if (n >= 1u << 26) {
		snprintf(err, errlen, "too many tokens (%llu)", (unsigned long long)n);
		goto fail;
	}
	t->n_vocab = t->n_text = n;
	if (gguf_arr(g, "tokenizer.ggml.token_type", &type, &n, &tkv) == 1 &&
	    (type == GGUF_STR || n != t->n_vocab)) {
		snprintf(err, errlen, "tokenizer.ggml.token_type has %llu entries for %u tokens",
			(unsigned long long)n, t->n_vocab);
		goto fail;
	}
	if (gguf_arr(g, "tokenizer.ggml.scores", &type, &n, &skv) == 1 &&
	    (type == GGUF_STR || n != t->n_vocab)) {
		snprintf(err, errlen, "tokenizer.ggml.scores has %llu entries for %u tokens",
			(unsigned long long)n, t->n_vocab);
		goto fail;
	}
	t->off = malloc(t->n_vocab * sizeof *t->off);
	t->len = malloc(t->n_vocab * sizeof *t->len);
	t->type = malloc(t->n_vocab);
	t->sattr = calloc(t->n_vocab, 1);
	t->score = calloc(t->n_vocab, sizeof *t->score);
	t->arena_cap = 16 * (size_t)t->n_vocab + 4096;
	t->arena = malloc(t->arena_cap);
	if (!t->off || !t->len || !t->type || !t->sattr || !t->score || !t->arena)
		goto oom;
	gguf_str_iter(kv, &it);
	for (uint32_t i = 0; gguf_str_next(&it, &s, &sn); i++) {
		if (arena_add(t, s, sn, &t->off[i]) < 0)
			goto oom;
		t->len[i] = sn;
		t->type[i] = TOK_NORMAL;
		if (tkv) {
			int64_t ty = gguf_arr_i64(tkv, i);
			/* llama.cpp: anything else is UNDEFINED, which acts as nothing */
			t->type[i] = ty >= TOK_NORMAL && ty <= TOK_BYTE ? ty : 0;
		}
		if (skv)
			t->score[i] = gguf_arr_f64(skv, i);
	}
	{
		/* room for the texts merges name that are not tokens (usually none) */
		uint64_t nm = 0;
		const gguf_kv *mkv;
		if (t->model == TOKM_BPE && gguf_arr(g, "tokenizer.ggml.merges", &type, &nm, &mkv) != 1)
			nm = 0;
		uint32_t hc = pow2_above(t->n_vocab + (nm < 1u << 24 ? nm : 0) / 4);
		if (!(t->ht = calloc(hc, sizeof *t->ht)))
			goto oom;
		t->hmask = hc - 1;
		for (uint32_t i = 0; i < t->n_vocab; i++)
			ht_put(t, i);
	}
	if (t->model == TOKM_BPE) {
		if (load_merges(t, g, err, errlen) < 0)
			goto fail;
		for (int c = 0; c < 256; c++) {
			uint8_t u[4];
			size_t k = uni_encode(tok_byte_cp(c), u);
			char one = c;
			t->byte_sym[c] = tok_lookup(t, (char *)u, k);
			t->byte1[c] = tok_lookup(t, &one, 1);
			if (t->byte1[c] >= t->n_vocab)
				t->byte1[c] = TOK_NONE;
		}
		t->bos = t->eos = 11 < t->n_vocab ? 11 : -1;   /* llama.cpp's BPE defaults */
	} else {
		t->bos = 1 < t->n_vocab ? 1 : -1;
		t->eos = 2 < t->n_vocab ? 2 : -1;
		t->unk = 0;
		for (int c = 0; c < 256; c++) {
			char name[8];
			char one = c;
			snprintf(name, sizeof name, "<0x%02X>", c);
			t->byte_tok[c] = tok_lookup(t, name, 6);
			if (t->byte_tok[c] == TOK_NONE)
				t->byte_tok[c] = tok_lookup(t, &one, 1);
		}
	}
	t->bos = get_id(g, "tokenizer.ggml.bos_token_id", t->bos, t->n_vocab);
	t->eos = get_id(g, "tokenizer.ggml.eos_token_id", t->eos, t->n_vocab);
	t->unk = get_id(g, "tokenizer.ggml.unknown_token_id", t->unk, t->n_vocab);
	t->pad = get_id(g, "tokenizer.ggml.padding_token_id", t->pad, t->n_vocab);
	t->eot = get_id(g, "tokenizer.ggml.eot_token_id", t->eot, t->n_vocab);
	t->eom = get_id(g, "tokenizer.ggml.eom_token_id", t->eom, t->n_vocab);
	if (gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b) == 1)
		t->add_bos = b;
	if (gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b) == 1)
		t->add_eos = b;
	if (gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &b) == 1)
		t->add_space_prefix = b;
	if ((t->add_bos && outside(g, "tokenizer.ggml.bos_token_id", "add_bos_token", t->n_vocab, err, errlen))
	    || (t->add_eos && outside(g, "tokenizer.ggml.eos_token_id", "add_eos_token", t->n_vocab, err, errlen)))
		goto fail;
	if (load_special(t, g) < 0)
		goto oom;
	/* llama.cpp marks attributes by model name: Phi-3's special tokens eat the
	 * whitespace after them, except <unk>, <s> and <|endoftext|> */
	if (gguf_get_str(g, "general.name", &s, &sn) == 1) {
		char low[256];
		size_t k = sn < sizeof low - 1 ? sn : sizeof low - 1;
		for (size_t i = 0; i < k; i++)
			low[i] = s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i];
		low[k] = 0;
		if (strstr(low, "phi-3") || strstr(low, "phi3")) {
			static const char *const keep[] = { "<unk>", "<s>", "<|endoftext|>", 0 };
			uint32_t id;
			for (uint32_t i = 0; i < t->n_special; i++)
				t->sattr[t->special[i]] |= ATTR_RSTRIP;
			if ((id = tok_lookup(t, "</s>", 4)) < t->n_vocab)
				t->sattr[id] |= ATTR_RSTRIP;
			for (int i = 0; keep[i]; i++)
				if ((id = tok_lookup(t, keep[i], strlen(keep[i]))) < t->n_vocab)
					t->sattr[id] &= ~ATTR_RSTRIP;
		}
	}
	if (gguf_get_str(g, "tokenizer.chat_template", &s, &sn) == 1) {
		if (!(t->chat_template = malloc(sn + 1)))
			goto oom;
		memcpy(t->chat_template, s, sn);
		t->chat_template[sn] = 0;
	}
	return t;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	tok_free(t);
	return 0;
}

void
tok_free(tok *t)
{
	if (!t)
		return;
	free(t->off);
	free(t->len);
	free(t->type);
	free(t->sattr);
	free(t->score);
	free(t->arena);
	free(t->ht);
	free(t->mt);
	free(t->special);
	free(t->eog);
	free(t->chat_template);
	free(t);
}

/* ------------------------------------------------------- special tokens */

typedef struct frag { size_t off, len; uint32_t id; } frag;   /* id TOK_NONE: raw text */

static int
c_isspace(int c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Whether s[off..off+len) overlaps one of the sorted, disjoint spans. */
static int
in_plain(const tok_span *sp, size_t nsp, size_t off, size_t len)
{
	size_t lo = 0, hi = nsp;

	while (lo < hi) {       /* the first span that ends after off */
		size_t mid = lo + (hi - lo) / 2;
		if (sp[mid].off + sp[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < nsp && sp[lo].off < off + len;
}

/* llama.cpp's tokenizer_st_partition: for each special token in turn,
 * longest first, every raw fragment is split at each of its occurrences,
 * left to right. Only tokens that occur in the text at all are tried.
 * An occurrence that overlaps a plain span is text, unless the token is
 * user-defined (those match even without parse_special). */
static int
partition(const tok *t, const char *s, size_t n, int parse_special,
	  const tok_span *plain, size_t nplain, frag **fp, size_t *nf)
{
	frag *f = *fp;
	size_t cnt = 1, cap = *nf;

	f[0] = (frag){ 0, n, TOK_NONE };
	for (uint32_t k = 0; k < t->n_special; k++) {
		uint32_t id = t->special[k];
		const char *tx = t->arena + t->off[id];
		size_t tl = t->len[id];
		if (!parse_special && t->type[id] != TOK_USER)
			continue;
		if (tl > n || !memmem(s, n, tx, tl))
			continue;
		for (size_t i = 0; i < cnt; i++) {
			if (f[i].id != TOK_NONE)
				continue;
			const char *m = memmem(s + f[i].off, f[i].len, tx, tl);
			if (nplain && t->type[id] != TOK_USER)
				while (m && in_plain(plain, nplain, (size_t)(m - s), tl)) {
					size_t from = (size_t)(m - s) + 1;
					m = memmem(s + from, f[i].off + f[i].len - from, tx, tl);
				}
			if (!m)
				continue;
			/* split f[i] into left, token, right: two more slots at most */
			if (cnt + 2 > cap) {
				size_t nc = cap * 2 + 8;
				frag *g = f == *fp && cap == *nf ? malloc(nc * sizeof *g) : realloc(f, nc * sizeof *g);
				if (!g)
					goto oom;
				if (f == *fp && cap == *nf)
					memcpy(g, f, cnt * sizeof *f);
				f = g;
				cap = nc;
			}
			size_t lo = f[i].off, mo = m - s, end = f[i].off + f[i].len;
			size_t ll = mo - lo, ro = mo + tl, rl = end - ro;
			if (t->sattr[id] & ATTR_LSTRIP)
				while (ll > 0 && c_isspace((uint8_t)s[lo + ll - 1]))
					ll--;
			if (t->sattr[id] & ATTR_RSTRIP)
				while (rl > 0 && c_isspace((uint8_t)s[ro])) {
					ro++;
					rl--;
				}
			frag add[3];
			size_t na = 0;
			if (ll)
				add[na++] = (frag){ lo, ll, TOK_NONE };
			add[na++] = (frag){ mo, tl, id };
			if (rl)
				add[na++] = (frag){ ro, rl, TOK_NONE };
			memmove(f + i + na, f + i + 1, (cnt - i - 1) * sizeof *f);
			memcpy(f + i, add, na * sizeof *f);
			cnt += na - 1;
			i += (ll ? 1 : 0);   /* the token; the loop moves on to the right part */
		}
	}
	*fp = f;
	*nf = cnt;
	return 0;
oom:
	if (f != *fp)
		free(f);
	return -1;
}

static int
encode(const tok *t, const char *text, size_t n, int add_special, int parse_special,
       const tok_span *plain, size_t nplain, tok_ids *out)
{
	frag local[16], *f = local;
	size_t nf = 16;
	int r = -1, prev_special = 1;

	if (add_special && t->add_bos && t->bos >= 0 && tok_ids_push(out, t->bos) < 0)
		return -1;
	if (n) {
		int any = 0;
		for (size_t i = 0; i < n && !any; i++)
			any = t->sp_first[(uint8_t)text[i]];
		if (any) {
			if (partition(t, text, n, parse_special, plain, nplain, &f, &nf) < 0)
				return -1;
		} else {
			f[0] = (frag){ 0, n, TOK_NONE };
			nf = 1;
		}
	} else {
		nf = 0;
	}
	for (size_t i = 0; i < nf; i++) {
		if (f[i].id != TOK_NONE) {
			if (tok_ids_push(out, f[i].id) < 0)
				goto out;
			prev_special = 1;
			continue;
		}
		if (t->model == TOKM_BPE) {
			if (tok_bpe_encode(t, text + f[i].off, f[i].len, out) < 0)
				goto out;
		} else {
			if (tok_spm_encode(t, text + f[i].off, f[i].len, t->add_space_prefix && prev_special, out) < 0)
				goto out;
		}
		prev_special = 0;
	}
	if (add_special && t->add_eos && t->eos >= 0 && tok_ids_push(out, t->eos) < 0)
		goto out;
	r = 0;
out:
	if (f != local)
		free(f);
	return r;
}

int
tok_encode(const tok *t, const char *text, size_t n, int add_special, int parse_special, tok_ids *out)
{
	return encode(t, text, n, add_special, parse_special, NULL, 0, out);
}

int
tok_encode_plain(const tok *t, const char *text, size_t n, int add_special,
		 const tok_span *plain, size_t nplain, tok_ids *out)
{
	return encode(t, text, n, add_special, 1, plain, nplain, out);
}

/* ------------------------------------------------------------------ pieces */

static size_t
put(char *buf, size_t cap, const char *s, size_t n)
{
	if (n <= cap)
		memcpy(buf, s, n);
	return n;
}

/* As llama_token_to_piece with lstrip 0: UNKNOWN and CONTROL only when
 * special; USER_DEFINED (and those) as stored; NORMAL decoded (BPE: back
 * through the byte map, a code point outside it giving llama.cpp's
 * "[UNK_BYTE_0x..<text>]"; SPM: U+2581 -> space); SPM BYTE tokens their byte;
 * UNUSED, UNDEFINED and BPE BYTE tokens nothing. */
size_t
tok_piece(const tok *t, uint32_t id, int special, char *buf, size_t cap)
{
	const char *s;
	size_t n, k = 0;
	int ty;

	if (id >= t->n_vocab)
		return 0;
	ty = t->type[id];
	s = t->arena + t->off[id];
	n = t->len[id];
	if (ty == TOK_UNKNOWN || ty == TOK_CONTROL)
		return special ? put(buf, cap, s, n) : 0;
	if (ty == TOK_USER)
		return put(buf, cap, s, n);
	if (t->model == TOKM_SPM) {
		if (ty == TOK_BYTE) {
			char c = (char)strtol(s + 3, 0, 16);
			return put(buf, cap, &c, 1);
		}
		if (ty != TOK_NORMAL)
			return 0;
		for (size_t i = 0; i < n;) {
			if (i + 3 <= n && !memcmp(s + i, "\xe2\x96\x81", 3)) {
				if (k < cap)
					buf[k] = ' ';
				k++;
				i += 3;
			} else {
				if (k < cap)
					buf[k] = s[i];
				k++;
				i++;
			}
		}
		return k;
	}
	if (ty != TOK_NORMAL)
		return 0;
	for (size_t i = 0; i < n;) {
		size_t l;
		uint32_t cp = uni_decode((const uint8_t *)s + i, n - i, &l);
		int b = tok_cp_byte(cp);
		i += l;
		if (b >= 0) {
			if (k < cap)
				buf[k] = b;
			k++;
			continue;
		}
		/* llama_decode_text's marker for a code point outside the byte map */
		char tmp[32];
		uint8_t u[4];
		size_t ul = uni_encode(cp, u), tl = snprintf(tmp, sizeof tmp, "[UNK_BYTE_0x");
		for (size_t j = 0; j < ul; j++)
			tl += snprintf(tmp + tl, sizeof tmp - tl, "%02x", u[j]);
		for (size_t j = 0; j < tl; j++, k++)
			if (k < cap)
				buf[k] = tmp[j];
		for (size_t j = 0; j < n; j++, k++)
			if (k < cap)
				buf[k] = s[j];
		if (k < cap)
			buf[k] = ']';
		k++;
	}
	return k;
}

/* ------------------------------------------------------------- accessors */

uint32_t tok_n_vocab(const tok *t) { return t->n_vocab; }
int tok_type(const tok *t, uint32_t id) { return id < t->n_vocab ? t->type[id] : 0; }
int64_t tok_bos(const tok *t) { return t->bos; }
int64_t tok_eos(const tok *t) { return t->eos; }
int tok_add_bos(const tok *t) { return t->add_bos; }
const char *tok_chat_template(const tok *t) { return t->chat_template; }

const char *
tok_text(const tok *t, uint32_t id, size_t *n)
{
	if (id >= t->n_vocab) {
		*n = 0;
		return "";
	}
	*n = t->len[id];
	return t->arena + t->off[id];
}

int
tok_is_eog(const tok *t, uint32_t id)
{
	uint32_t lo = 0, hi = t->n_eog;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (t->eog[mid] == id)
			return 1;
		if (t->eog[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}
