/* json: JSON text <-> msgpack, for people and tools at the edges of a
 * pipeline (`sluice cat`, tests). Canonical msgpack (smallest ints, float64,
 * str keys: what msgpack-c's packer writes) survives msgpack -> JSON ->
 * msgpack byte for byte.
 *
 * The mapping, both ways:
 *   nil, bool            null, true, false
 *   int / uint           an integer; JSON -> msgpack packs the smallest int
 *                        (non-negative as uint, negative as int); an integer
 *                        outside int64/uint64 becomes a float64
 *   float64              shortest of %.15g/%.16g/%.17g that reads back to the
 *                        same double, always with a '.' or an 'e' ("1.0"),
 *                        so it comes back a float; +-inf is written 1e999 /
 *                        -1e999 (reads back as +-inf); NaN has no JSON form
 *                        and is written null
 *   float32              shortest text that reads back to the same float32;
 *                        it comes back as float64 (not byte-identical)
 *   str                  a JSON string; '"', '\\' and control characters are
 *                        escaped, every other byte passes through raw, even
 *                        bytes that are not valid UTF-8 (so the round trip
 *                        stays exact; the JSON reader accepts them too)
 *   bin                  {"$bin":"BASE64"}
 *   ext                  {"$ext":[TYPE,"BASE64"]}
 *   array, map           array, object; a map key that is not a str is
 *                        written as a JSON string holding its JSON text
 *                        (key 1 -> "1"): it comes back as a str key
 * JSON -> msgpack turns a one-key object into bin/ext only when its key is
 * written exactly "$bin" / "$ext" (no escapes) and its value has exactly the
 * form above with canonical base64. A real one-key map whose key is "$bin" or
 * "$ext" is written with the key as "\u0024bin" / "\u0024ext", which reads
 * back as a plain map: every msgpack map round-trips.
 * Strings: every escape, \uXXXX with surrogate pairs; a lone surrogate
 * becomes U+FFFD. Input is bounded by msg_limits before anything is packed:
 * nesting depth, string bytes, array elements, map pairs, objects, and the
 * size of the msgpack produced. */
#ifndef SLUICE_JSON_H
#define SLUICE_JSON_H

#include <stddef.h>
#include <msgpack.h>

#include "msg.h"

/* Parses the one JSON value in p[0..n) (whitespace around it is fine) and
 * packs it into pk. lim NULL: msg_limits_default. 0 ok; -1 with err set, e.g.
 * "invalid JSON at byte 17: expected ':'" (byte offsets count from 0), and
 * nothing packed. */
int json_to_msgpack(const char *p, size_t n, const msg_limits *lim,
		    msgpack_packer *pk, char *err, size_t errlen);

/* Appends the compact JSON text of o (no newline) to out. */
void json_from_msgpack(const msgpack_object *o, msgpack_sbuffer *out);

#endif
