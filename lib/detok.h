/* detok: incremental, UTF-8-safe detokenization. One state per request holds
 * the bytes of a character not yet complete; feeding token ids gives the
 * text that is complete so far, always valid UTF-8, and the finish flushes
 * what is left (an incomplete tail becomes U+FFFD). */
#ifndef SLUICE_DETOK_H
#define SLUICE_DETOK_H

#include <stddef.h>
#include <stdint.h>

#include "stream.h"
#include "tok.h"

/* A growable byte buffer the text is appended to. */
typedef struct detok_buf {
	char *p;
	size_t n, cap;
} detok_buf;
#define DETOK_BUF_INIT {0, 0, 0}
void detok_buf_free(detok_buf *b);

typedef struct detok {
	const tok *t;
	int special;            /* control tokens shown (else they give nothing) */
	int started;            /* a token was fed */
	int strip;              /* drop one leading space (the first token was BOS) */
	unsigned char tail[4];  /* bytes of an incomplete character */
	size_t ntail;
} detok;
#define DETOK_ZERO {0, 0, 0, 0, {0}, 0}

void detok_init(detok *d, const tok *t, int special);
/* Appends to out the complete text the tokens ids[0..n) add. Ids must be
 * below tok_n_vocab (the caller checks). */
void detok_feed(detok *d, const uint32_t *ids, size_t n, detok_buf *out);
/* The end of the request: a held incomplete character becomes U+FFFD. */
void detok_flush(detok *d, detok_buf *out);
/* Appends p[0..n) to out as valid UTF-8, each maximal ill-formed subpart
 * replaced by U+FFFD (the Unicode "best practice", as Python's
 * decode('utf-8', 'replace')); with final 0, an incomplete character at the
 * end is not written and its length (1..3) returned, else 0. */
size_t detok_utf8(const unsigned char *p, size_t n, int final, detok_buf *out);

/* ---- the detokenize filter ---------------------------------------------- */

typedef struct detok_opts {
	int out;                /* STREAM_MSGPACK, STREAM_JSON: events with "text" added; STREAM_TEXT: the plain text */
	int special;            /* show control tokens */
	size_t max_ids;         /* requests in flight at most (0: 65536) */
} detok_opts;
#define DETOK_OPTS_DEFAULT {STREAM_MSGPACK, 0, 65536}

/* Reads token events (msgpack or JSON lines, told by the first byte) from
 * in_fd to its end and writes them to out_fd with their text. When the
 * input breaks, what came before it is written as at its end, then it dies
 * 111. */
void detok_run(const tok *t, const detok_opts *o, int in_fd, int out_fd);

#endif
