/* tokenize: the `tokenize` filter (prompts and chat messages -> requests
 * with token ids), and the plumbing it shares with `detokenize`: opening a
 * model's tokenizer with the one error voice, reading text lines, JSON lines
 * or msgpack from a descriptor, and buffered output flushed whenever the
 * input would block. */
#ifndef SLUICE_TOKENIZE_H
#define SLUICE_TOKENIZE_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>

#include "msg.h"
#include "tok.h"

/* Input and output kinds. */
enum { TOKENIZE_AUTO, TOKENIZE_TEXT, TOKENIZE_JSON, TOKENIZE_MSGPACK };

/* Opens path (NULL: fetch_model_path()) and builds its tokenizer; dies with
 * 111 ("unable to open M: No such file or directory; run: sluice model
 * fetch", "unable to read M: ...") when it cannot. */
tok *tokenize_open(const char *path);

/* ---- input --------------------------------------------------------------- */

typedef struct tokenize_in {
	int kind;              /* TOKENIZE_*; AUTO: from the first byte */
	int text_ok;           /* AUTO may pick text lines (else JSON lines) */
	void (*on_msg)(const msg *m, void *ud);
	void (*on_line)(const char *p, size_t n, uint64_t lineno, void *ud);   /* text */
	void (*on_bad)(const char *why, void *ud);   /* one message or line rejected */
	void (*on_idle)(void *ud);   /* the input would block: flush */
	void *ud;
} tokenize_in;

/* The kind the first byte of a stream says: a msgpack map (0x80-0x8f, 0xde,
 * 0xdf) is msgpack, '{' JSON lines, anything else text (or JSON when
 * text_ok is 0). */
int tokenize_sniff(unsigned char c, int text_ok);
/* Reads fd to its end, calling in's callbacks: 0 at the end of the input,
 * -1 with err when it cannot go on (a read error, a msgpack stream whose
 * framing is lost: "unable to read the input: message 1001: invalid msgpack
 * byte 0xc1"). Everything before the failure has been given to the
 * callbacks, so the caller can write its answers before it dies. Lines are
 * at most TOKENIZE_MAX_LINE bytes; a longer one is rejected (on_bad) and
 * skipped. */
#define TOKENIZE_MAX_LINE (8u << 20)
int tokenize_read(int fd, tokenize_in *in, char *err, size_t errlen);

/* ---- output -------------------------------------------------------------- */

typedef struct tokenize_out {
	int fd;
	int json;              /* messages become JSON lines */
	msgpack_sbuffer sb;    /* bytes not yet written */
	msgpack_sbuffer tmp;   /* one message, when converting to JSON */
	msgpack_zone zone;
	int zone_ok;
} tokenize_out;

void tokenize_out_init(tokenize_out *o, int fd, int json);
void tokenize_out_free(tokenize_out *o);
/* The packer to pack one whole message with, then tokenize_out_end. */
msgpack_packer *tokenize_out_begin(tokenize_out *o, msgpack_packer *pk);
void tokenize_out_end(tokenize_out *o);
void tokenize_out_raw(tokenize_out *o, const void *p, size_t n);   /* bytes as they are */
void tokenize_out_flush(tokenize_out *o);   /* dies with 111 on a write error */

/* ---- the tokenize filter ------------------------------------------------- */

typedef struct tokenize_opts {
	int in;                /* TOKENIZE_* */
	int out;               /* TOKENIZE_JSON or TOKENIZE_MSGPACK; AUTO: msgpack, or "ID\tCOUNT" lines with count */
	int count;             /* -c: counts instead of ids */
	int no_special;        /* special tokens in prompts are plain text */
	int chat;              /* the chat template id; -1: the model's (chatml if it has none) */
	int special_in_content;   /* special tokens in message contents are matched (0: plain text, the safe default) */
} tokenize_opts;
#define TOKENIZE_OPTS_DEFAULT {TOKENIZE_AUTO, TOKENIZE_AUTO, 0, 0, -1, 0}

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
