/* tok: the model's own tokenizer, read from its GGUF: byte-level BPE
 * (tokenizer.ggml.model gpt2, with the pre-tokenizers real models use) and
 * SentencePiece (llama), giving the same token ids as llama.cpp. */
#ifndef SLUICE_TOK_H
#define SLUICE_TOK_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct tok tok;

/* A growable array of token ids. */
typedef struct tok_ids {
	uint32_t *v;
	size_t n, cap;
} tok_ids;
#define TOK_IDS_INIT {0, 0, 0}
void tok_ids_free(tok_ids *t);

/* Token attributes (tokenizer.ggml.token_type). */
enum { TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3, TOK_USER = 4, TOK_UNUSED = 5, TOK_BYTE = 6 };

/* Builds the tokenizer from g's metadata (g may be closed afterwards: the
 * tokenizer copies what it keeps). NULL with err on an unsupported or broken
 * vocabulary ("unsupported tokenizer.ggml.pre \"foo\"; known: ..."). */
tok *tok_load(const gguf *g, char *err, size_t errlen);
void tok_free(tok *t);

/* Appends the ids of text[0..n) to out. add_special: BOS/EOS as the file
 * says (tokenizer.ggml.add_bos_token ...); parse_special: special tokens in
 * the text are matched (else they are plain text). Invalid UTF-8 is handled
 * as llama.cpp does. 0 ok, -1 out of memory. */
int tok_encode(const tok *t, const char *text, size_t n, int add_special, int parse_special, tok_ids *out);

/* A stretch of text, text[off..off+len). */
typedef struct tok_span {
	size_t off, len;
} tok_span;
/* tok_encode with special tokens matched except where an occurrence
 * overlaps one of the plain spans (sorted, disjoint): there they are text,
 * as with parse_special 0 (user-defined tokens still match). The text is
 * still tokenized as one, so a text without special tokens in its plain
 * spans gets exactly the ids of tok_encode with parse_special 1. For chat
 * prompts: the template's markers are control tokens, what the messages
 * say is text. */
int tok_encode_plain(const tok *t, const char *text, size_t n, int add_special,
		     const tok_span *plain, size_t nplain, tok_ids *out);

/* The bytes one token stands for, as llama.cpp's token_to_piece gives them
 * (byte-level decoding done; control tokens give nothing unless special).
 * Returns the length written (at most cap), or the length needed if larger. */
size_t tok_piece(const tok *t, uint32_t id, int special, char *buf, size_t cap);

uint32_t tok_n_vocab(const tok *t);
int tok_type(const tok *t, uint32_t id);           /* TOK_* */
const char *tok_text(const tok *t, uint32_t id, size_t *n);  /* the vocabulary entry as stored */
int64_t tok_bos(const tok *t);                     /* -1 if none */
int64_t tok_eos(const tok *t);
int tok_is_eog(const tok *t, uint32_t id);         /* end of generation: eos, eot, eom, ... as llama.cpp */
int tok_add_bos(const tok *t);
/* tokenizer.chat_template, or NULL */
const char *tok_chat_template(const tok *t);

#endif
