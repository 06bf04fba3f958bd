/* tokenize: the `tokenize` filter (prompts and chat messages -> requests
 * with token ids), and opening a model's tokenizer with the one error voice,
 * for it and `detokenize`. Their input and output are lib/stream's. */
#ifndef SLUICE_TOKENIZE_H
#define SLUICE_TOKENIZE_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>

#include "msg.h"
#include "stream.h"
#include "tok.h"

/* Opens path (NULL: fetch_model_path()) and builds its tokenizer; dies with
 * 111 ("unable to open M: No such file or directory; run: sluice model
 * fetch", "unable to read M: ...") when it cannot. */
tok *tokenize_open(const char *path);

/* Text lines longer than this are rejected (error event) and skipped. */
#define TOKENIZE_MAX_LINE (8u << 20)

/* ---- the tokenize filter ------------------------------------------------- */

typedef struct tokenize_opts {
	int in;                /* STREAM_*; AUTO: by the first byte, text unless it starts a msgpack map or '{' */
	int out;               /* STREAM_JSON or STREAM_MSGPACK; AUTO: msgpack, or "ID\tCOUNT" lines with count */
	int count;             /* -c: counts instead of ids */
	int no_special;        /* special tokens in prompts are plain text */
	int chat;              /* the chat template id; -1: the model's (chatml if it has none) */
	int special_in_content;   /* special tokens in message contents are matched (0: plain text, the safe default) */
} tokenize_opts;
#define TOKENIZE_OPTS_DEFAULT {STREAM_AUTO, STREAM_AUTO, 0, 0, -1, 0}

/* The template id requests with messages use: o->chat, else detected from
 * the model's tokenizer.chat_template, chatml when it has none; -1 when the
 * model's template is not one chat knows. */
int tokenize_chat_id(const tok *t, const tokenize_opts *o);
/* Tokenizes one request into ids: 0 done, 1 it has "tokens" already (*ntok
 * of them; ids untouched), -1 not answerable (err says why: a bad key type,
 * empty messages, no prompt, an unknown chat template). Messages are
 * rendered with the template chat; special tokens are matched in the
 * template's text, and in the contents only with o->special_in_content.
 * infer-cpu uses it for requests that come without tokens. */
int tokenize_encode(const tok *t, const tokenize_opts *o, int chat, const msg *m, tok_ids *ids,
		    size_t *ntok, char *err, size_t errlen);
/* Tokenizes one request and packs the answer: m with "tokens" added (or
 * "prompt_tokens" with count), or an error event. ids is scratch space. */
void tokenize_request(const tok *t, const tokenize_opts *o, int chat, const msg *m,
		      msgpack_packer *pk, tok_ids *ids);
/* Runs the filter from in_fd to out_fd until the end of the input; when the
 * input breaks, writes the answers to everything before it, then dies 111. */
void tokenize_run(const tok *t, const tokenize_opts *o, int in_fd, int out_fd);

#endif
