/* libFuzzer target for lib/json. The input is read two ways:
 *  - as JSON text: if it parses, its msgpack, written back as JSON and parsed
 *    again, must give the same bytes (msgpack -> JSON -> msgpack is exact for
 *    what the parser packs), and that JSON must read back to itself;
 *  - as one msgpack message (bounded by msg_unpack): its JSON must parse
 *    (or break only a limit); the msgpack that gives is canonical and must
 *    survive msgpack -> JSON -> msgpack byte for byte. (Not canonical input,
 *    float32 say, may change its text once: 1.23456794e+09 -> 1234567940.0.) */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "msg.h"

static const msg_limits lim = {
	.max_bytes = 1 << 16, .max_str = 4096, .max_array = 256, .max_map = 128,
	.max_depth = 16, .max_objects = 4096,
};

#define must(c) do { if (!(c)) { fprintf(stderr, "fuzz-json: %s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

/* the JSON text of the one msgpack message in p[0..n) */
static void
to_json(const char *p, size_t n, msgpack_sbuffer *out)
{
	msgpack_zone z;
	msgpack_object o;
	size_t off = 0;

	must(msgpack_zone_init(&z, 4096));
	must(msgpack_unpack(p, n, &off, &z, &o) == MSGPACK_UNPACK_SUCCESS && off == n);
	msgpack_sbuffer_clear(out);
	json_from_msgpack(&o, out);
	msgpack_zone_destroy(&z);
}

static void
as_json(const char *data, size_t size)
{
	msgpack_sbuffer m1, m2, j1, j2;
	msgpack_packer pk;
	char err[256];

	msgpack_sbuffer_init(&m1);
	msgpack_sbuffer_init(&m2);
	msgpack_sbuffer_init(&j1);
	msgpack_sbuffer_init(&j2);
	msgpack_packer_init(&pk, &m1, msgpack_sbuffer_write);
	if (json_to_msgpack(data, size, &lim, &pk, err, sizeof err) < 0) {
		must(m1.size == 0);
		must(!strncmp(err, "invalid JSON at byte ", 21) || !strncmp(err, "JSON too large at byte ", 23));
		goto out;
	}
	must(m1.size > 0 && m1.size <= lim.max_bytes);
	to_json(m1.data, m1.size, &j1);
	msgpack_packer_init(&pk, &m2, msgpack_sbuffer_write);
	if (json_to_msgpack(j1.data, j1.size, &lim, &pk, err, sizeof err) < 0) {
		fprintf(stderr, "fuzz-json: written JSON refused: %s\n%.*s\n", err, (int)j1.size, j1.data);
		abort();
	}
	must(m2.size == m1.size && !memcmp(m1.data, m2.data, m1.size));
	to_json(m2.data, m2.size, &j2);
	must(j2.size == j1.size && !memcmp(j1.data, j2.data, j1.size));
out:
	msgpack_sbuffer_destroy(&m1);
	msgpack_sbuffer_destroy(&m2);
	msgpack_sbuffer_destroy(&j1);
	msgpack_sbuffer_destroy(&j2);
}

static void
as_msgpack(const char *data, size_t size)
{
	msgpack_sbuffer m2, m3, j1, j2;
	msgpack_packer pk;
	msgpack_zone z;
	msg m = MSG_ZERO;
	const char *why;
	char err[256];

	if (!msgpack_zone_init(&z, 4096))
		abort();
	if (msg_unpack(data, size, &lim, &z, &m, &why) != MSG_GOT) {
		msgpack_zone_destroy(&z);
		return;
	}
	msgpack_sbuffer_init(&m2);
	msgpack_sbuffer_init(&m3);
	msgpack_sbuffer_init(&j1);
	msgpack_sbuffer_init(&j2);
	json_from_msgpack(&m.root, &j1);
	msgpack_packer_init(&pk, &m2, msgpack_sbuffer_write);
	if (json_to_msgpack(j1.data, j1.size, &lim, &pk, err, sizeof err) == 0) {
		/* m2 is canonical: from here on every step is exact */
		to_json(m2.data, m2.size, &j2);
		msgpack_packer_init(&pk, &m3, msgpack_sbuffer_write);
		must(json_to_msgpack(j2.data, j2.size, &lim, &pk, err, sizeof err) == 0);
		must(m3.size == m2.size && !memcmp(m2.data, m3.data, m2.size));
	} else if (strncmp(err, "JSON too large at byte ", 23)) {
		/* keys that are not strings grow into strings: only a limit may break */
		fprintf(stderr, "fuzz-json: written JSON refused: %s\n%.*s\n", err, (int)j1.size, j1.data);
		abort();
	}
	msgpack_sbuffer_destroy(&m2);
	msgpack_sbuffer_destroy(&m3);
	msgpack_sbuffer_destroy(&j1);
	msgpack_sbuffer_destroy(&j2);
	msgpack_zone_destroy(&z);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	as_json((const char *)data, size);
	as_msgpack((const char *)data, size);
	return 0;
}
