/* stream: the input and output of the filters (tokenize, detokenize,
 * `sluice cat`). One reader tells MessagePack from JSON lines from text by
 * the first byte, cuts lines and decodes messages, and hands them over; one
 * buffered writer writes messages as MessagePack or JSON lines, survives
 * EAGAIN and partial writes, and is flushed whenever the input would block. */
#ifndef SLUICE_STREAM_H
#define SLUICE_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>

#include "msg.h"

/* Kinds of a stream. */
enum { STREAM_AUTO, STREAM_TEXT, STREAM_JSON, STREAM_MSGPACK };

/* The kind the first byte of a stream says: a MessagePack map (0x80-0x8f,
 * 0xde, 0xdf) is MessagePack and '{' JSON lines. Any other byte is the
 * reader's dflt (tokenize: text, detokenize: JSON, sluice cat: MessagePack),
 * except that where text is not a choice, '[' and white space, which start
 * no MessagePack map, are JSON too. */
int stream_sniff(unsigned char c, int dflt);

/* ---- reading ------------------------------------------------------------- */

typedef struct stream_out stream_out;

typedef struct stream_in {
	int kind;              /* STREAM_*; AUTO: stream_sniff of the first byte */
	int dflt;              /* stream_sniff's default: TEXT, JSON or MSGPACK */
	size_t max_line;       /* longer lines are rejected (on_bad) and skipped */
	const msg_limits *lim; /* messages, and JSON converted; NULL: the defaults */
	stream_out *out;       /* flushed whenever the input would block (or NULL) */
	void (*on_msg)(const msg *m, void *ud);   /* valid during the call */
	void (*on_line)(const char *p, size_t n, uint64_t lineno, void *ud);   /* text */
	/* one message or line rejected, the stream goes on: "line 3: invalid
	 * JSON at byte 10: ...", "line 5: not a JSON object", "line 7: longer
	 * than 8388608 bytes", "message 2: message is not a map", "message 4:
	 * input ends inside a message (8 bytes)" */
	void (*on_bad)(const char *why, void *ud);
	void *ud;
	/* the reader's own */
	msg_dec dec;
	char *buf;             /* a chunk of lines */
	char *lb;              /* a line cut by a read, being completed */
	size_t ln, lcap;
	int skipping;          /* dropping the rest of a line that was too long */
	uint64_t lineno;       /* lines seen so far */
	uint64_t nmsg;         /* MessagePack messages taken out, good or bad */
	int ended;             /* the end of the input was seen (and handled) */
	msgpack_sbuffer jb;    /* a JSON line as MessagePack */
	msgpack_zone zone;
} stream_in;

/* Sets up s; the caller fills the fields above "the reader's own" first
 * (zero fields: AUTO, max_line 8 MiB, default limits). */
void stream_in_init(stream_in *s);
void stream_in_free(stream_in *s);
/* Reads fd once and hands over what it completes: 1 go on, 0 the input
 * ended (a last line without '\n' handed over, a cut message rejected),
 * -1 it cannot go on, err saying why: the read failed (strerror) or the
 * MessagePack framing is lost ("message 1001: invalid msgpack byte 0xc1").
 * Everything before a failure has been handed over, so the caller can
 * write its answers before it dies. EINTR and EAGAIN are 1 with nothing. */
int stream_in_read(stream_in *s, int fd, char *err, size_t errlen);
/* stream_in_read to the end of fd, waiting (poll) when fd would block and
 * flushing s->out first: 0 at the end, -1 as stream_in_read. */
int stream_in_run(stream_in *s, int fd, char *err, size_t errlen);

/* ---- writing ------------------------------------------------------------- */

struct stream_out {
	int fd;
	int json;              /* messages become JSON lines (else MessagePack) */
	msgpack_sbuffer sb;    /* bytes not yet written */
	msgpack_sbuffer tmp;   /* one message being packed, when it becomes JSON */
	msgpack_zone zone;
	int zone_ok;
};

void stream_out_init(stream_out *o, int fd, int json);
void stream_out_free(stream_out *o);
/* The packer for one whole message, then stream_out_end. */
msgpack_packer *stream_out_begin(stream_out *o, msgpack_packer *pk);
void stream_out_end(stream_out *o);
/* One message as it is (its raw bytes, or its JSON line). */
void stream_out_msg(stream_out *o, const msg *m);
void stream_out_raw(stream_out *o, const void *p, size_t n);   /* bytes as they are */
/* Writes everything buffered (which happens by itself past 256 KiB),
 * waiting while fd would block; dies 111 on a write error. */
void stream_out_flush(stream_out *o);
size_t stream_out_pending(const stream_out *o);

#endif
