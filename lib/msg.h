/* msg: the sluice wire schema (DESIGN.md "Messages") on msgpack-c.
 * Untrusted bytes are framed and bounded by an incremental scanner before
 * msgpack-c sees them, so nothing a peer sends can size an allocation. */
#ifndef SLUICE_MSG_H
#define SLUICE_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>

/* Bounds checked before anything is allocated for a message. */
typedef struct msg_limits {
	size_t max_bytes;      /* one whole message */
	size_t max_str;        /* one str, bin or ext payload */
	size_t max_array;      /* elements of one array */
	size_t max_map;        /* pairs of one map */
	unsigned max_depth;    /* nesting of arrays and maps; the root is depth 1 */
	size_t max_objects;    /* objects in one message, all levels together */
} msg_limits;

/* 8 MiB message, 4 MiB string, 1 Mi elements, 64 Ki pairs, depth 32, 1 Mi objects.
 * max_depth is at most 32 (msgpack-c's own stack); larger values act as 32. */
extern const msg_limits msg_limits_default;

/* One decoded message. Points into the decoder (or a caller's buffer) and is
 * valid until the next msg_dec_next / msg_unpack on the same owner. */
typedef struct msg {
	msgpack_object root;   /* a map for every well-formed request or event */
	const char *raw;       /* the message's own bytes, for cheap pass-through */
	size_t len;
} msg;
#define MSG_ZERO {{0}, 0, 0}

/* Results of msg_dec_next. */
enum {
	MSG_NEED = 0,          /* no whole message buffered yet */
	MSG_GOT = 1,           /* *out holds one message */
	MSG_BAD = -1,          /* one message was rejected and skipped; the stream goes on */
	MSG_BROKEN = -2,       /* the framing is lost (invalid byte, too deep): stop reading this stream */
};

/* Streaming decoder over a byte buffer. Feed it what read() returned, take
 * whole messages out; a message cut at any byte boundary decodes the same. */
typedef struct msg_dec {
	msg_limits lim;
	char *buf;             /* owned; bytes not yet consumed are buf[off..len) */
	size_t off, len, cap;
	char *old;             /* a replaced buffer that still holds the last message */
	int held;              /* buf holds the last message returned (do not move it) */
	msgpack_zone zone;     /* objects of the last message returned */
	int zone_ok;
	/* incremental scanner state for the message being framed (at buf+off) */
	size_t pos;            /* bytes of it scanned; past len-off while a payload is due */
	size_t nobj;           /* objects seen in it so far */
	unsigned depth;        /* open containers */
	int state;             /* scanning, framed, rejecting (discarding) or broken */
	char why[128];         /* the reason given with MSG_BAD / MSG_BROKEN */
	uint64_t left[32];     /* per open container: objects still expected */
} msg_dec;
#define MSG_DEC_ZERO {0}

void msg_dec_init(msg_dec *d, const msg_limits *lim);   /* lim NULL: defaults */
void msg_dec_free(msg_dec *d);
/* Where to read() into; *avail is set to the room there, at least 64 KiB
 * (grows or compacts the buffer as needed, never moving the last message). */
char *msg_dec_space(msg_dec *d, size_t *avail);
void msg_dec_commit(msg_dec *d, size_t n);              /* n bytes were read into the space */
void msg_dec_feed(msg_dec *d, const void *p, size_t n); /* copy n bytes in */
/* Takes the next message out. On MSG_BAD or MSG_BROKEN, *err says why (valid
 * until the next call). MSG_BAD is returned as soon as a limit is broken; the
 * rest of that message is then discarded as it arrives, never buffered.
 * MSG_BROKEN is sticky. */
int msg_dec_next(msg_dec *d, msg *out, const char **err);
/* Bytes of an unfinished message held (non-zero at EOF means a cut message). */
size_t msg_dec_pending(const msg_dec *d);
/* Gives a large buffer back when nothing is pending (after a big message),
 * so an idle connection holds no more than a chunk. The last message
 * returned must no longer be in use. */
void msg_dec_trim(msg_dec *d);

/* Decode exactly one message from a complete buffer (tests, Redis entries):
 * MSG_GOT, or MSG_BAD with *err. Objects live in zone until it is destroyed. */
int msg_unpack(const char *p, size_t n, const msg_limits *lim, msgpack_zone *zone,
	       msg *out, const char **err);

/* ---- reading keys ------------------------------------------------------ */

/* The value of key in the root map, or NULL (absent, or root not a map). */
const msgpack_object *msg_get(const msg *m, const char *key);
/* 1 found with the right type, 0 absent, -1 present with a wrong type.
 * A nil value counts as absent (JSON's null: "not given"). s may point to
 * bytes that are not NUL-terminated; n may be NULL. */
int msg_str(const msg *m, const char *key, const char **s, size_t *n);
int msg_uint(const msg *m, const char *key, uint64_t *v);
int msg_int(const msg *m, const char *key, int64_t *v);
int msg_num(const msg *m, const char *key, double *v);  /* int or float */
int msg_bool(const msg *m, const char *key, int *v);
/* Checks the types of the keys DESIGN.md defines for a request (or an event);
 * 0 ok, -1 with a message naming the key in err, e.g. key "max_tokens" must
 * be an unsigned integer. Unknown keys and nil values are fine. A request
 * must have an id; an event need not (an error event for an unreadable id). */
int msg_check_request(const msg *m, char *err, size_t errlen);
int msg_check_event(const msg *m, char *err, size_t errlen);

/* FNV-1a of a request id, for the tables that route events by id. */
uint64_t msg_hash_id(const char *id, size_t n);

/* ---- writing ----------------------------------------------------------- */

/* A packer that appends to a msgpack_sbuffer (which the caller initialises). */
void msg_pk_init(msgpack_packer *pk, msgpack_sbuffer *sb);
void msg_pk_str(msgpack_packer *pk, const char *s);
void msg_pk_strn(msgpack_packer *pk, const char *s, size_t n);
/* Starts a map that keeps every pair of m except the keys in drop[0..ndrop)
 * and announces nnew more pairs, which the caller packs next. This is how a
 * stage adds or replaces its own keys and passes the rest through. Kept pairs
 * are copied byte for byte from m->raw (packed from the objects if raw is
 * NULL); a root that is not a map keeps nothing. */
void msg_pk_passthrough(msgpack_packer *pk, const msg *m,
			const char *const *drop, size_t ndrop, size_t nnew);
/* The pair error: {code, message} of an error event (NULL code: "internal"),
 * for a caller that packs the event's other keys itself. */
void msg_pk_error_pair(msgpack_packer *pk, const char *code, const char *message);
/* An error event: {id (if idlen != (size_t)-1), finish: "error", error: {code, message}}. */
void msg_pk_error(msgpack_packer *pk, const char *id, size_t idlen,
		  const char *code, const char *message);

#endif
