/* tok_int: the tokenizer's private structure, shared by tok.c (loading,
 * special tokens, pieces), tok_bpe.c (byte-level BPE and its
 * pre-tokenizers) and tok_spm.c (SentencePiece). Not an interface. */
#ifndef SLUICE_TOK_INT_H
#define SLUICE_TOK_INT_H

#include <stddef.h>
#include <stdint.h>

#include "tok.h"

#define TOK_NONE 0xffffffffu

enum { TOKM_BPE, TOKM_SPM };
/* pre-tokenizers, as llama.cpp's LLAMA_VOCAB_PRE_TYPE_* */
enum { PRE_GPT2, PRE_SMOLLM, PRE_LLAMA3, PRE_QWEN2, PRE_DEFAULT };
enum { ATTR_LSTRIP = 1, ATTR_RSTRIP = 2 };

typedef struct tok_merge {
	uint64_t key;           /* left id << 32 | right id; 0 for an empty slot (+1 on both ids) */
	uint32_t rank, id;      /* rank in tokenizer.ggml.merges, id of the joined text */
} tok_merge;

struct tok {
	int model;              /* TOKM_* */
	int pre;                /* PRE_* (BPE) */
	int ignore_merges;      /* llama3: a word that is a token is taken whole */
	int add_bos, add_eos, add_space_prefix;
	uint32_t n_vocab;       /* real tokens */
	uint32_t n_text;        /* real tokens + texts only merges name (ids >= n_vocab) */
	uint32_t *off, *len;    /* n_text: text of each id in arena */
	uint8_t *type;          /* n_vocab: TOK_* after llama.cpp's adjustments */
	uint8_t *sattr;         /* n_vocab: ATTR_* */
	float *score;           /* n_vocab (SPM) */
	char *arena;
	size_t arena_n, arena_cap;
	uint32_t *ht;           /* text -> id + 1 (0 empty), open addressing */
	uint32_t hmask;
	tok_merge *mt;          /* (left, right) -> merge, open addressing */
	uint32_t mmask;
	uint32_t byte_sym[256]; /* BPE: id of the byte-encoded text of each byte (TOK_NONE) */
	uint32_t byte1[256];    /* id of the one-byte text (BPE byte fallback) */
	uint32_t byte_tok[256]; /* SPM: <0xXX> token of each byte */
	uint32_t *special;      /* special tokens, longest text first */
	uint32_t n_special;
	uint8_t sp_first[256];  /* bytes a special token starts with */
	int64_t bos, eos, unk, pad, eot, eom;
	uint32_t *eog;          /* sorted */
	uint32_t n_eog;
	char *chat_template;
};

/* tok.c */
static inline uint32_t
tok_mhash(uint64_t key)
{
	return (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 32);
}
uint64_t tok_hash(const void *p, size_t n);
uint32_t tok_lookup(const tok *t, const char *s, size_t n);   /* TOK_NONE if absent */
/* tok_bpe.c / tok_spm.c: one fragment of raw text (no special tokens) */
int tok_bpe_encode(const tok *t, const char *s, size_t n, tok_ids *out);
int tok_spm_encode(const tok *t, const char *s, size_t n, int space_prefix, tok_ids *out);
int tok_ids_push(tok_ids *o, uint32_t id);
/* The GPT-2 byte map: byte -> code point, and back (-1 for others). */
uint32_t tok_byte_cp(uint8_t b);
int tok_cp_byte(uint32_t cp);

#endif
