/* json: unit tests for lib/json (JSON text <-> msgpack): every type both
 * ways, escapes and surrogates, integer and float edges, limits, bad JSON. */
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "tap.h"

static msgpack_sbuffer sb;
static msgpack_packer pk;
static char err[256];

/* s with control characters shown as \xNN, for test names */
static const char *
show(const char *s)
{
	static char buf[4][512];
	static int k;
	char *o = buf[k = (k + 1) % 4], *end = o + sizeof buf[0] - 5;

	for (; *s && o < end; s++) {
		if ((unsigned char)*s < 0x20)
			o += sprintf(o, "\\x%02x", (unsigned char)*s);
		else
			*o++ = *s;
	}
	*o = 0;
	return buf[k];
}

/* JSON text -> msgpack bytes in sb; returns json_to_msgpack's result */
static int
j2m_lim(const char *j, size_t n, const msg_limits *lim)
{
	msgpack_sbuffer_clear(&sb);
	return json_to_msgpack(j, n, lim, &pk, err, sizeof err);
}

static int
j2m(const char *j)
{
	return j2m_lim(j, strlen(j), NULL);
}

/* msgpack bytes -> JSON text (malloc'd, NUL-terminated) */
static char *
m2j(const char *p, size_t n)
{
	msgpack_zone z;
	msgpack_object o;
	msgpack_sbuffer out;
	size_t off = 0;
	char *s;

	msgpack_zone_init(&z, 4096);
	msgpack_sbuffer_init(&out);
	if (msgpack_unpack(p, n, &off, &z, &o) != MSGPACK_UNPACK_SUCCESS || off != n) {
		msgpack_zone_destroy(&z);
		return strdup("<bad msgpack>");
	}
	json_from_msgpack(&o, &out);
	s = malloc(out.size + 1);
	memcpy(s, out.data ? out.data : "", out.size);
	s[out.size] = 0;
	msgpack_sbuffer_destroy(&out);
	msgpack_zone_destroy(&z);
	return s;
}

/* JSON j packs to exactly the bytes want[0..n) */
static int
packs(const char *j, const char *want, size_t n)
{
	return j2m(j) == 0 && sb.size == n && !memcmp(sb.data, want, n);
}
#define PACKS(j, lit) ok(packs(j, lit, sizeof lit - 1), "%s packs as expected", show(j))

/* JSON j -> msgpack -> JSON gives back want */
static int
rt_to(const char *j, const char *want)
{
	char *s;
	int r;

	if (j2m(j) < 0)
		return 0;
	s = m2j(sb.data, sb.size);
	r = !strcmp(s, want);
	if (!r)
		printf("# got  %s\n# want %s\n", s, want);
	free(s);
	return r;
}
#define RT(j) ok(rt_to(j, j), "round trip %s", show(j))
#define RT_TO(j, w) ok(rt_to(j, w), "%s comes back as %s", show(j), show(w))

/* msgpack bytes -> JSON is want, and that JSON packs to the same bytes */
static int
m_rt(const char *p, size_t n, const char *want)
{
	char *s = m2j(p, n);
	int r = !strcmp(s, want);

	if (!r)
		printf("# got  %s\n# want %s\n", s, want);
	r = r && j2m(s) == 0 && sb.size == n && !memcmp(sb.data, p, n);
	free(s);
	return r;
}
#define M_RT(lit, want) ok(m_rt(lit, sizeof lit - 1, want), "msgpack -> %s -> the same bytes", show(want))

static int
bad(const char *j, const char *want)
{
	int r = j2m(j);

	if (r == 0 || strcmp(err, want))
		printf("# got %d \"%s\"\n# want \"%s\"\n", r, err, want);
	return r == -1 && !strcmp(err, want) && sb.size == 0;
}
#define BAD(j, want) ok(bad(j, want), "rejects %s: %s", show(j), want)

/* the double that JSON j packs to */
static int
packs_double(const char *j, double *d)
{
	uint64_t u = 0;
	int i;

	if (j2m(j) < 0 || sb.size != 9 || (unsigned char)sb.data[0] != 0xcb)
		return 0;
	for (i = 1; i < 9; i++)
		u = u << 8 | (unsigned char)sb.data[i];
	memcpy(d, &u, sizeof *d);
	return 1;
}

/* double d -> msgpack -> JSON -> msgpack: the same bits, and the text */
static int
float_rt(double d, const char *want)
{
	msgpack_sbuffer b;
	msgpack_packer p;
	double back = 0;
	char *s;
	int r;

	msgpack_sbuffer_init(&b);
	msgpack_packer_init(&p, &b, msgpack_sbuffer_write);
	msgpack_pack_double(&p, d);
	s = m2j(b.data, b.size);
	r = (!want || !strcmp(s, want)) && packs_double(s, &back) && !memcmp(&back, &d, sizeof d);
	if (!r)
		printf("# %.17g -> %s\n", d, s);
	free(s);
	msgpack_sbuffer_destroy(&b);
	return r;
}

static void
test_types(void)
{
	PACKS("null", "\xc0");
	PACKS("true", "\xc3");
	PACKS("false", "\xc2");
	PACKS("0", "\x00");
	PACKS("127", "\x7f");
	PACKS("128", "\xcc\x80");
	PACKS("256", "\xcd\x01\x00");
	PACKS("65536", "\xce\x00\x01\x00\x00");
	PACKS("4294967296", "\xcf\x00\x00\x00\x01\x00\x00\x00\x00");
	PACKS("-1", "\xff");
	PACKS("-32", "\xe0");
	PACKS("-33", "\xd0\xdf");
	PACKS("-129", "\xd1\xff\x7f");
	PACKS("-32769", "\xd2\xff\xff\x7f\xff");
	PACKS("-2147483649", "\xd3\xff\xff\xff\xff\x7f\xff\xff\xff");
	PACKS("-0", "\x00");
	PACKS("1.5", "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00");
	PACKS("1e2", "\xcb\x40\x59\x00\x00\x00\x00\x00\x00");
	PACKS("\"abc\"", "\xa3" "abc");
	PACKS("[]", "\x90");
	PACKS("{}", "\x80");
	PACKS(" [ 1 , [ ] , { \"a\" : null } ] ", "\x93\x01\x90\x81\xa1" "a" "\xc0");
	PACKS("{\"a\":{\"b\":[true,false]}}", "\x81\xa1" "a" "\x81\xa1" "b" "\x92\xc3\xc2");
	RT("null");
	RT("[true,false,null]");
	RT("{\"id\":\"r1\",\"tokens\":[1,2,3],\"temperature\":0.7,\"stream\":true}");
	RT("{\"a\":{\"b\":{\"c\":[[[]],{}]}}}");
	RT_TO(" { \"a\" : 1 ,\n\t\"b\" : [ 2 ] } \r\n", "{\"a\":1,\"b\":[2]}");
	/* 31, 32, 255, 256 byte strings: fixstr, str8, str8, str16 */
	{
		static const size_t lens[] = {31, 32, 255, 256};
		static const unsigned char hdr[] = {0xbf, 0xd9, 0xd9, 0xda};
		char j[300];
		size_t i, n;
		for (i = 0; i < 4; i++) {
			n = lens[i];
			j[0] = '"';
			memset(j + 1, 'x', n);
			j[n + 1] = '"';
			ok(j2m_lim(j, n + 2, NULL) == 0 && sb.size == n + (i == 0 ? 1 : i == 3 ? 3 : 2) &&
			   (unsigned char)sb.data[0] == hdr[i], "a %zu byte string gets the smallest header", n);
		}
	}
	/* 16 elements: array16 */
	ok(j2m("[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]") == 0 && sb.size == 19 &&
	   (unsigned char)sb.data[0] == 0xdc, "16 elements: array16");
	ok(j2m("[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14]") == 0 && sb.size == 16 &&
	   (unsigned char)sb.data[0] == 0x9f, "15 elements: fixarray");
}

static void
test_ints(void)
{
	PACKS("-9223372036854775808", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00");
	PACKS("9223372036854775807", "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff");
	PACKS("18446744073709551615", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff");
	PACKS("9007199254740993", "\xcf\x00\x20\x00\x00\x00\x00\x00\x01");
	RT("[-9223372036854775808,18446744073709551615,9007199254740993,-9007199254740993]");
	/* outside 64 bits: a float64 */
	ok(j2m("18446744073709551616") == 0 && sb.size == 9 && (unsigned char)sb.data[0] == 0xcb,
	   "2^64 becomes a float64");
	ok(j2m("-9223372036854775809") == 0 && sb.size == 9 && (unsigned char)sb.data[0] == 0xcb,
	   "-2^63-1 becomes a float64");
	M_RT("\xd3\x80\x00\x00\x00\x00\x00\x00\x00", "-9223372036854775808");
	M_RT("\xcf\xff\xff\xff\xff\xff\xff\xff\xff", "18446744073709551615");
}

static void
test_floats(void)
{
	static const double vals[] = {0.1, 0.2, 0.3, 1e308, 5e-324, -0.0, 0.0, 1.0, -1.5,
		1.7976931348623157e308, 2.2250738585072014e-308, 1e15, 1e16, 1e22, 1.0 / 3,
		9007199254740993.0, 123456789.125, 0.30000000000000004, 2.718281828459045};
	double d = 0;
	size_t i;

	for (i = 0; i < sizeof vals / sizeof *vals; i++)
		ok(float_rt(vals[i], NULL), "%.17g: msgpack -> JSON -> msgpack keeps every bit", vals[i]);
	ok(float_rt(0.1, "0.1"), "0.1 is written 0.1");
	ok(float_rt(1.0, "1.0"), "1.0 keeps its '.0' so it comes back a float");
	ok(float_rt(-0.0, "-0.0"), "-0.0 is written -0.0");
	ok(float_rt(1e308, "1e+308"), "1e308 is written 1e+308");
	ok(float_rt(100.0, "100.0"), "100.0 is written 100.0");
	ok(float_rt(INFINITY, "1e999"), "inf is written 1e999 and comes back inf");
	ok(float_rt(-INFINITY, "-1e999"), "-inf is written -1e999 and comes back -inf");
	ok(packs_double("5e-324", &d) && d == 5e-324, "5e-324 parses to the least subnormal");
	ok(packs_double("-0.0", &d) && d == 0 && signbit(d), "-0.0 parses to negative zero");
	ok(packs_double("0.1", &d) && d == 0.1, "0.1 parses to the nearest double");
	ok(packs_double("1E+2", &d) && d == 100, "1E+2 parses");
	ok(packs_double("2.5e-3", &d) && d == 0.0025, "2.5e-3 parses");
	/* NaN has no JSON form */
	{
		msgpack_sbuffer b;
		msgpack_packer p;
		char *s;
		msgpack_sbuffer_init(&b);
		msgpack_packer_init(&p, &b, msgpack_sbuffer_write);
		msgpack_pack_double(&p, NAN);
		s = m2j(b.data, b.size);
		ok(!strcmp(s, "null"), "NaN is written null");
		free(s);
		msgpack_sbuffer_clear(&b);
		msgpack_pack_float(&p, 0.1f);
		s = m2j(b.data, b.size);
		ok(!strcmp(s, "0.1"), "float32 0.1 is written 0.1 (got %s)", s);
		ok(packs_double(s, &d) && d == 0.1, "and comes back as float64 0.1");
		free(s);
		msgpack_sbuffer_clear(&b);
		msgpack_pack_float(&p, 3.0f);
		s = m2j(b.data, b.size);
		ok(!strcmp(s, "3.0"), "float32 3 is written 3.0 (got %s)", s);
		free(s);
		msgpack_sbuffer_destroy(&b);
	}
}

static void
test_strings(void)
{
	PACKS("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\xa8\"\\/\b\f\n\r\t");
	PACKS("\"\\u0041\\u00e9\\u20AC\"", "\xa6" "A\xc3\xa9\xe2\x82\xac");
	PACKS("\"\\u0000\"", "\xa1\x00");
	PACKS("\"\\ud83d\\ude00\"", "\xa4\xf0\x9f\x98\x80");
	PACKS("\"\\uD834\\uDD1E\"", "\xa4\xf0\x9d\x84\x9e");
	PACKS("\"\\udbff\\udfff\"", "\xa4\xf4\x8f\xbf\xbf");
	PACKS("\"\\ud83d\"", "\xa3\xef\xbf\xbd");
	PACKS("\"\\ude00x\"", "\xa4\xef\xbf\xbdx");
	PACKS("\"\\ud83dx\"", "\xa4\xef\xbf\xbdx");
	PACKS("\"\\ud83d\\u0041\"", "\xa4\xef\xbf\xbd" "A");
	PACKS("\"\\ud83d\\ud83d\\ude00\"", "\xa7\xef\xbf\xbd\xf0\x9f\x98\x80");
	PACKS("\"h\xc3\xa9\xf0\x9f\x98\x80\"", "\xa7h\xc3\xa9\xf0\x9f\x98\x80");
	PACKS("\"raw \xff\xfe\"", "\xa6raw \xff\xfe");
	RT_TO("\"\\u0001\\u001f\\u007f\\/\"", "\"\\u0001\\u001f\x7f/\"");
	RT("\"\\\"\\\\\\b\\f\\n\\r\\t\\u0000\"");
	RT("\"h\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\"");
	M_RT("\xa5\x01\n\"\\\x7f", "\"\\u0001\\n\\\"\\\\\x7f\"");
	M_RT("\xa3\xff\xc3\x28", "\"\xff\xc3(\"");
	M_RT("\x81\xa2id\xa0", "{\"id\":\"\"}");
}

static void
test_bin_ext(void)
{
	PACKS("{\"$bin\":\"\"}", "\xc4\x00");
	PACKS("{\"$bin\":\"AAEC\"}", "\xc4\x03\x00\x01\x02");
	PACKS("{\"$bin\":\"/w==\"}", "\xc4\x01\xff");
	PACKS("{ \"$bin\" : \"AAE=\" }", "\xc4\x02\x00\x01");
	PACKS("{\"$ext\":[5,\"AQ==\"]}", "\xd4\x05\x01");
	PACKS("{\"$ext\":[-128,\"AAECAw==\"]}", "\xd6\x80\x00\x01\x02\x03");
	PACKS("{\"$ext\":[ 127 , \"AAEC\" ]}", "\xc7\x03\x7f\x00\x01\x02");
	/* not the exact form: plain maps */
	PACKS("{\"$bin\":\"AAE\"}", "\x81\xa4$bin\xa3" "AAE");
	PACKS("{\"$bin\":\"AAF=\"}", "\x81\xa4$bin\xa4" "AAF=");
	PACKS("{\"$bin\":1}", "\x81\xa4$bin\x01");
	PACKS("{\"$ext\":[128,\"AQ==\"]}", "\x81\xa4$ext\x92\xcc\x80\xa4" "AQ==");
	PACKS("{\"$ext\":[1,\"AQ==\",2]}", "\x81\xa4$ext\x93\x01\xa4" "AQ==\x02");
	PACKS("{\"\\u0024bin\":\"AAEC\"}", "\x81\xa4$bin\xa4" "AAEC");
	PACKS("{\"$bin\":\"AAEC\",\"x\":1}", "\x82\xa4$bin\xa4" "AAEC\xa1x\x01");
	PACKS("[{\"$ext\":[1,\"AQ==\"]},[2]]", "\x92\xd4\x01\x01\x91\x02");
	M_RT("\xc4\x03\x00\x01\x02", "{\"$bin\":\"AAEC\"}");
	M_RT("\xc4\x00", "{\"$bin\":\"\"}");
	M_RT("\xc7\x03\xff\x00\x01\x02", "{\"$ext\":[-1,\"AAEC\"]}");
	M_RT("\xd8\x01" "0123456789abcdef", "{\"$ext\":[1,\"MDEyMzQ1Njc4OWFiY2RlZg==\"]}");
	/* a real one-key map named like a bin keeps its shape */
	M_RT("\x81\xa4$bin\xa4" "AAEC", "{\"\\u0024bin\":\"AAEC\"}");
	M_RT("\x81\xa4$ext\x92\x01\xa4" "AQ==", "{\"\\u0024ext\":[1,\"AQ==\"]}");
	M_RT("\x82\xa4$bin\xa4" "AAEC\xa1x\x01", "{\"$bin\":\"AAEC\",\"x\":1}");
	/* keys that are not strings become strings */
	{
		char *s = m2j("\x82\x01\x02\x91\xc3\xa1x", 7);
		ok(!strcmp(s, "{\"1\":2,\"[true]\":\"x\"}"), "non-string keys are written as strings (%s)", s);
		free(s);
	}
}

static void
test_limits(void)
{
	msg_limits lim = msg_limits_default;
	char deep[200];
	int i;

	for (i = 0; i < 33; i++)
		deep[i] = '[';
	for (i = 0; i < 33; i++)
		deep[33 + i] = ']';
	deep[66] = 0;
	ok(j2m(deep) == -1 && !strcmp(err, "JSON too large at byte 32: nesting deeper than 32"),
	   "depth 33 is rejected: %s", err);
	deep[65] = 0;
	ok(j2m(deep + 1) == 0, "depth 32 is fine");
	lim.max_depth = 3;
	ok(j2m_lim("[[[]]]", 6, &lim) == 0, "depth 3 within max_depth 3");
	ok(j2m_lim("[[{}]]", 6, &lim) == 0, "depth 3 with a map");
	ok(j2m_lim("[[[[]]]]", 8, &lim) == -1 && !strcmp(err, "JSON too large at byte 3: nesting deeper than 3"),
	   "depth 4 over max_depth 3: %s", err);
	lim = msg_limits_default;
	lim.max_str = 4;
	ok(j2m_lim("\"abcd\"", 6, &lim) == 0, "a 4 byte string within max_str 4");
	ok(j2m_lim("[\"abcde\"]", 9, &lim) == -1 && !strcmp(err, "JSON too large at byte 1: string of 5 bytes exceeds 4"),
	   "a 5 byte string over max_str 4: %s", err);
	ok(j2m_lim("\"\\u00e9\\u00e9\\u00e9\"", 20, &lim) == -1 && strstr(err, "string of 6 bytes"),
	   "the limit counts decoded bytes: %s", err);
	ok(j2m_lim("{\"$bin\":\"AAECAw==\"}", 19, &lim) == 0, "a 4 byte bin within max_str 4");
	ok(j2m_lim("{\"$bin\":\"AAECAwQ=\"}", 19, &lim) == -1 && strstr(err, "bin of 5 bytes exceeds 4"),
	   "a 5 byte bin over max_str 4: %s", err);
	ok(j2m_lim("{\"$bin\":\"AAECAwQ\"}", 18, &lim) == -1 &&
	   !strcmp(err, "JSON too large at byte 0: string of 7 bytes exceeds 4"),
	   "a string over max_str under \"$bin\" that is not base64: %s", err);
	ok(j2m_lim("{\"$ext\":[1,\"AAECAw==\"]}", 23, &lim) == 0, "a 4 byte ext within max_str 4");
	ok(j2m_lim("{\"$ext\":[1,{\"$bin\":\"AAECAw==\"}]}", 32, &lim) == 0 &&
	   sb.size == 14 && (unsigned char)sb.data[8] == 0xc4,
	   "a 4 byte bin inside a one-key map that is not an ext");
	ok(j2m_lim("{\"$ext\":[1,\"AAECAw==\",{\"$bin\":\"AAECAw==\"}]}", 43, &lim) == -1 &&
	   !strcmp(err, "JSON too large at byte 0: string of 8 bytes exceeds 4"),
	   "but the same text as a plain string is bounded: %s", err);
	lim = msg_limits_default;
	lim.max_array = 2;
	ok(j2m_lim("[1,2]", 5, &lim) == 0, "2 elements within max_array 2");
	ok(j2m_lim("[1,2,3]", 7, &lim) == -1 && !strcmp(err, "JSON too large at byte 0: array of more than 2 elements"),
	   "3 elements over max_array 2: %s", err);
	lim = msg_limits_default;
	lim.max_map = 1;
	ok(j2m_lim("{\"a\":{\"b\":1,\"c\":2}}", 19, &lim) == -1 && !strcmp(err, "JSON too large at byte 5: map of more than 1 pairs"),
	   "2 pairs over max_map 1: %s", err);
	lim = msg_limits_default;
	lim.max_objects = 4;
	ok(j2m_lim("[1,2,3]", 7, &lim) == 0, "4 objects within max_objects 4");
	ok(j2m_lim("[1,2,3,4]", 9, &lim) == -1 && strstr(err, "more than 4 objects"),
	   "5 objects over max_objects 4: %s", err);
	lim = msg_limits_default;
	lim.max_bytes = 9;
	ok(j2m_lim("1.5", 3, &lim) == 0, "a 9 byte message within max_bytes 9");
	ok(j2m_lim("[1.5]", 5, &lim) == -1 && !strcmp(err, "JSON too large at byte 0: message of 10 bytes exceeds 9"),
	   "a 10 byte message over max_bytes 9: %s", err);
}

static void
test_invalid(void)
{
	BAD("", "invalid JSON at byte 0: unexpected end of input");
	BAD("   ", "invalid JSON at byte 3: unexpected end of input");
	BAD("{\"a\" 1}", "invalid JSON at byte 5: expected ':'");
	BAD("{\"a\":1,}", "invalid JSON at byte 7: expected a string key");
	BAD("{a:1}", "invalid JSON at byte 1: expected a string key");
	BAD("{\"a\":1", "invalid JSON at byte 6: unexpected end of input");
	BAD("{\"a\":1 \"b\":2}", "invalid JSON at byte 7: expected ',' or '}'");
	BAD("[1,]", "invalid JSON at byte 3: expected a value");
	BAD("[1 2]", "invalid JSON at byte 3: expected ',' or ']'");
	BAD("[", "invalid JSON at byte 1: unexpected end of input");
	BAD("]", "invalid JSON at byte 0: expected a value");
	BAD("tru", "invalid JSON at byte 0: expected a value");
	BAD("nul", "invalid JSON at byte 0: expected a value");
	BAD("True", "invalid JSON at byte 0: expected a value");
	BAD("NaN", "invalid JSON at byte 0: expected a value");
	BAD("Infinity", "invalid JSON at byte 0: expected a value");
	BAD("'a'", "invalid JSON at byte 0: expected a value");
	BAD("01", "invalid JSON at byte 1: unexpected text after the value");
	BAD("1 2", "invalid JSON at byte 2: unexpected text after the value");
	BAD("-", "invalid JSON at byte 1: expected a digit");
	BAD("+1", "invalid JSON at byte 0: expected a value");
	BAD("1.", "invalid JSON at byte 2: expected a digit after '.'");
	BAD(".5", "invalid JSON at byte 0: expected a value");
	BAD("1e", "invalid JSON at byte 2: expected a digit in the exponent");
	BAD("1e+", "invalid JSON at byte 3: expected a digit in the exponent");
	BAD("\"abc", "invalid JSON at byte 0: unterminated string");
	BAD("\"a\\", "invalid JSON at byte 0: unterminated string");
	BAD("\"a\tb\"", "invalid JSON at byte 2: control character in string");
	BAD("\"a\nb\"", "invalid JSON at byte 2: control character in string");
	BAD("\"\\x\"", "invalid JSON at byte 1: bad escape '\\x'");
	BAD("\"\\u12\"", "invalid JSON at byte 1: bad \\u escape");
	BAD("\"\\u12g4\"", "invalid JSON at byte 1: bad \\u escape");
	BAD("{\"a\":1}x", "invalid JSON at byte 7: unexpected text after the value");
	BAD("[1,{\"a\":[2,}]]", "invalid JSON at byte 11: expected a value");
	ok(j2m_lim("[1]\0", 4, NULL) == -1 && !strcmp(err, "invalid JSON at byte 3: unexpected text after the value"),
	   "a NUL byte after the value is rejected");
	ok(j2m_lim("\"a\0b\"", 5, NULL) == -1 && !strcmp(err, "invalid JSON at byte 2: control character in string"),
	   "a raw NUL in a string is rejected");
	ok(j2m_lim("[1,2]", 3, NULL) == -1 && !strcmp(err, "invalid JSON at byte 3: unexpected end of input"),
	   "only n bytes are read");
}

int
main(void)
{
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	test_types();
	test_ints();
	test_floats();
	test_strings();
	test_bin_ext();
	test_limits();
	test_invalid();
	msgpack_sbuffer_destroy(&sb);
	return done_testing();
}
