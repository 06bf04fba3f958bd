/* json: JSON text <-> msgpack (the mapping is in json.h).
 * JSON -> msgpack takes two passes over the text with one recursive-descent
 * parser: the first validates, checks every limit and counts the elements of
 * each container (kept in pre-order, so the second pass finds them in the
 * same order), the second packs. Nothing is packed unless the whole text is
 * valid and within bounds. */

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "json.h"

/* ---- base64 (standard alphabet, padded) --------------------------------- */

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Length of the bytes p[0..n) stands for if it is canonical base64 (padded,
 * unused bits zero), else -1. With out, decodes into it. */
static long long
b64_decode(const unsigned char *p, size_t n, unsigned char *out)
{
	size_t i, pad = 0, o = 0;
	unsigned v[4];
	int k;

	if (n % 4)
		return -1;
	if (n && p[n - 1] == '=')
		pad = n >= 2 && p[n - 2] == '=' ? 2 : 1;
	for (i = 0; i < n; i += 4) {
		for (k = 0; k < 4; k++) {
			if (i + k >= n - pad) {
				v[k] = 0;
				continue;
			}
			int x = b64val(p[i + k]);
			if (x < 0)
				return -1;
			v[k] = (unsigned)x;
		}
		if (i + 4 == n && pad == 2 && (v[1] & 15))
			return -1;
		if (i + 4 == n && pad == 1 && (v[2] & 3))
			return -1;
		if (out) {
			unsigned w = v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3];
			out[o] = (unsigned char)(w >> 16);
			if (i + 4 < n || pad < 2)
				out[o + 1] = (unsigned char)(w >> 8);
			if (i + 4 < n || pad < 1)
				out[o + 2] = (unsigned char)w;
		}
		o += 3;
	}
	return (long long)(o - pad);
}

static void
b64_encode(msgpack_sbuffer *out, const unsigned char *p, size_t n)
{
	char q[4];
	size_t i;

	for (i = 0; i + 3 <= n; i += 3) {
		unsigned w = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		q[0] = b64chars[w >> 18];
		q[1] = b64chars[(w >> 12) & 63];
		q[2] = b64chars[(w >> 6) & 63];
		q[3] = b64chars[w & 63];
		msgpack_sbuffer_write(out, q, 4);
	}
	if (n - i == 1) {
		unsigned w = (unsigned)p[i] << 16;
		q[0] = b64chars[w >> 18];
		q[1] = b64chars[(w >> 12) & 63];
		q[2] = q[3] = '=';
		msgpack_sbuffer_write(out, q, 4);
	} else if (n - i == 2) {
		unsigned w = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
		q[0] = b64chars[w >> 18];
		q[1] = b64chars[(w >> 12) & 63];
		q[2] = b64chars[(w >> 6) & 63];
		q[3] = '=';
		msgpack_sbuffer_write(out, q, 4);
	}
}

/* ---- JSON -> msgpack ----------------------------------------------------- */

enum { SP_NONE, SP_BIN, SP_EXT };

typedef struct jcont {
	uint32_t n;            /* elements (arrays) or pairs (maps) */
	uint8_t special;       /* SP_BIN / SP_EXT: a one-key map that packs as bin/ext */
} jcont;

typedef struct jp {
	const unsigned char *base, *p, *end;
	const msg_limits *lim;
	msgpack_packer *pk;    /* NULL in the first pass */
	jcont *c;              /* containers in pre-order */
	size_t nc, capc, ic;   /* filled, allocated, next to use in pass 2 */
	size_t nobj;
	unsigned depth, maxdepth;
	int relax;             /* inside the value of a "$bin"/"$ext" key: base64 may be longer */
	size_t rmax;           /* the longest string seen while relaxed */
	unsigned char *s;      /* pass 2: a decoded string or bin */
	size_t scap;
	char *err;
	size_t errlen;
	int failed;
} jp;

#define JP_ERR ((size_t)-1)

__attribute__((format(printf, 4, 5))) static size_t
jfail(jp *P, const unsigned char *at, const char *what, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (P->failed)
		return JP_ERR;
	P->failed = 1;
	if (!P->err || !P->errlen)
		return JP_ERR;
	k = snprintf(P->err, P->errlen, "%s at byte %zu: ", what, (size_t)(at - P->base));
	if (k < 0 || (size_t)k >= P->errlen)
		return JP_ERR;
	va_start(ap, fmt);
	vsnprintf(P->err + k, P->errlen - k, fmt, ap);
	va_end(ap);
	return JP_ERR;
}
#define SYNTAX(P, at, ...) jfail(P, at, "invalid JSON", __VA_ARGS__)
#define LIMIT(P, at, ...) jfail(P, at, "JSON too large", __VA_ARGS__)

static void
ws(jp *P)
{
	while (P->p < P->end && (*P->p == ' ' || *P->p == '\n' || *P->p == '\t' || *P->p == '\r'))
		P->p++;
}

static size_t
sz_uint(uint64_t v)
{
	return v < 128 ? 1 : v < 256 ? 2 : v < 65536 ? 3 : v <= UINT32_MAX ? 5 : 9;
}

static size_t
sz_int(int64_t v)
{
	return v >= -32 ? 1 : v >= -128 ? 2 : v >= -32768 ? 3 : v >= INT32_MIN ? 5 : 9;
}

static size_t
sz_str(size_t n)
{
	return n + (n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5);
}

static size_t
sz_bin(size_t n)
{
	return n + (n < 256 ? 2 : n < 65536 ? 3 : 5);
}

static size_t
sz_ext(size_t n)
{
	if (n == 1 || n == 2 || n == 4 || n == 8 || n == 16)
		return n + 2;
	return n + (n < 256 ? 3 : n < 65536 ? 4 : 6);
}

static size_t
sz_cont(size_t n)
{
	return n < 16 ? 1 : n < 65536 ? 3 : 5;
}

static int
hex4(const unsigned char *q, unsigned *v)
{
	unsigned x = 0;
	int i;

	for (i = 0; i < 4; i++) {
		unsigned c = q[i], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if ((c | 32) >= 'a' && (c | 32) <= 'f')
			d = (c | 32) - 'a' + 10;
		else
			return -1;
		x = x << 4 | d;
	}
	*v = x;
	return 0;
}

static size_t
put_utf8(unsigned char *o, unsigned cp)
{
	if (cp < 0x80) {
		if (o)
			o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		if (o) {
			o[0] = (unsigned char)(0xc0 | cp >> 6);
			o[1] = (unsigned char)(0x80 | (cp & 63));
		}
		return 2;
	}
	if (cp < 0x10000) {
		if (o) {
			o[0] = (unsigned char)(0xe0 | cp >> 12);
			o[1] = (unsigned char)(0x80 | ((cp >> 6) & 63));
			o[2] = (unsigned char)(0x80 | (cp & 63));
		}
		return 3;
	}
	if (o) {
		o[0] = (unsigned char)(0xf0 | cp >> 18);
		o[1] = (unsigned char)(0x80 | ((cp >> 12) & 63));
		o[2] = (unsigned char)(0x80 | ((cp >> 6) & 63));
		o[3] = (unsigned char)(0x80 | (cp & 63));
	}
	return 4;
}

/* The string at P->p (on its opening quote). Pass 1 validates it and returns
 * its decoded length; pass 2 decodes it into P->s. Returns JP_ERR on error. */
static size_t
jstring(jp *P)
{
	const unsigned char *q = P->p + 1, *start = P->p, *run;
	unsigned char *o = P->pk ? P->s : NULL;
	size_t n = 0, k;
	unsigned cp, lo;

	for (;;) {
		/* nearly all the time is spent here: a run of plain bytes */
		run = q;
		while (q < P->end && *q != '"' && *q != '\\' && *q >= 0x20)
			q++;
		if (o)
			memcpy(o + n, run, (size_t)(q - run));
		n += (size_t)(q - run);
		if (q >= P->end)
			return SYNTAX(P, start, "unterminated string");
		if (*q == '"')
			break;
		if (*q < 0x20)
			return SYNTAX(P, q, "control character in string");
		/* an escape */
		if (q + 1 >= P->end)
			return SYNTAX(P, start, "unterminated string");
		switch (q[1]) {
		case '"': cp = '"'; break;
		case '\\': cp = '\\'; break;
		case '/': cp = '/'; break;
		case 'b': cp = '\b'; break;
		case 'f': cp = '\f'; break;
		case 'n': cp = '\n'; break;
		case 'r': cp = '\r'; break;
		case 't': cp = '\t'; break;
		case 'u':
			if (P->end - q < 6 || hex4(q + 2, &cp) < 0)
				return SYNTAX(P, q, "bad \\u escape");
			if (cp >= 0xd800 && cp <= 0xdbff && P->end - q >= 12 && q[6] == '\\' &&
			    q[7] == 'u' && hex4(q + 8, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				q += 6;
			} else if (cp >= 0xd800 && cp <= 0xdfff) {
				cp = 0xfffd;   /* a lone surrogate */
			}
			q += 4;
			break;
		default:
			return SYNTAX(P, q, "bad escape '\\%c'", q[1] >= 0x20 && q[1] < 0x7f ? q[1] : '?');
		}
		q += 2;
		k = put_utf8(o ? o + n : NULL, cp);
		n += k;
	}
	/* base64 text is 4/3 of its bytes: what a bin of max_str bytes needs */
	if (n > P->lim->max_str && (!P->relax || P->lim->max_str > SIZE_MAX / 2 ||
				    n > P->lim->max_str / 3 * 4 + 8))
		return LIMIT(P, start, "string of %zu bytes exceeds %zu", n, P->lim->max_str);
	if (P->relax && n > P->rmax)
		P->rmax = n;
	P->p = q + 1;
	return n;
}

/* The number at P->p. Returns its msgpack size; packs it in pass 2. */
static size_t
jnumber(jp *P)
{
	const unsigned char *q = P->p, *start = P->p;
	int neg = 0, isfloat = 0, big = 0;
	uint64_t u = 0;
	char tmp[512];
	size_t len;
	double d;

	if (*q == '-') {
		neg = 1;
		q++;
	}
	if (q >= P->end || *q < '0' || *q > '9')
		return SYNTAX(P, q, "expected a digit");
	if (*q == '0')
		q++;
	else
		while (q < P->end && *q >= '0' && *q <= '9') {
			unsigned dg = *q - '0';
			if (u > (UINT64_MAX - dg) / 10)
				big = 1;
			else
				u = u * 10 + dg;
			q++;
		}
	if (q < P->end && *q == '.') {
		isfloat = 1;
		q++;
		if (q >= P->end || *q < '0' || *q > '9')
			return SYNTAX(P, q, "expected a digit after '.'");
		while (q < P->end && *q >= '0' && *q <= '9')
			q++;
	}
	if (q < P->end && (*q == 'e' || *q == 'E')) {
		isfloat = 1;
		q++;
		if (q < P->end && (*q == '+' || *q == '-'))
			q++;
		if (q >= P->end || *q < '0' || *q > '9')
			return SYNTAX(P, q, "expected a digit in the exponent");
		while (q < P->end && *q >= '0' && *q <= '9')
			q++;
	}
	P->p = q;
	if (!isfloat && !big && (!neg || u <= (uint64_t)INT64_MAX + 1)) {
		if (!neg) {
			if (P->pk)
				msgpack_pack_uint64(P->pk, u);
			return sz_uint(u);
		}
		int64_t v = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
		if (P->pk)
			msgpack_pack_int64(P->pk, v);
		return sz_int(v);
	}
	/* a float, or an integer too big for 64 bits */
	if (P->pk) {
		len = (size_t)(q - start);
		if (len >= sizeof tmp)
			return LIMIT(P, start, "number longer than %zu characters", sizeof tmp - 1);
		memcpy(tmp, start, len);
		tmp[len] = 0;
		d = strtod(tmp, NULL);
		msgpack_pack_double(P->pk, d);
	} else if ((size_t)(q - start) >= sizeof tmp) {
		return LIMIT(P, start, "number longer than %zu characters", sizeof tmp - 1);
	}
	return 9;
}

static size_t jvalue(jp *P);

static int
count_obj(jp *P, const unsigned char *at)
{
	if (++P->nobj > P->lim->max_objects) {
		LIMIT(P, at, "more than %zu objects", P->lim->max_objects);
		return -1;
	}
	return 0;
}

/* A new container entry (pass 1), or the next one (pass 2). */
static jcont *
cont(jp *P)
{
	if (P->pk)
		return &P->c[P->ic++];
	if (P->nc == P->capc) {
		P->capc = P->capc ? 2 * P->capc : 64;
		P->c = xrealloc(P->c, P->capc * sizeof *P->c);
	}
	P->c[P->nc] = (jcont){0, SP_NONE};
	return &P->c[P->nc++];
}

static size_t
jarray(jp *P)
{
	const unsigned char *start = P->p;
	size_t idx = P->pk ? P->ic : P->nc, n = 0, sz = 0, k;

	(void)cont(P);
	if (++P->depth > P->maxdepth)
		return LIMIT(P, start, "nesting deeper than %u", P->maxdepth);
	if (P->pk)
		msgpack_pack_array(P->pk, P->c[idx].n);
	P->p++;
	ws(P);
	if (P->p < P->end && *P->p == ']') {
		P->p++;
	} else {
		for (;;) {
			if ((k = jvalue(P)) == JP_ERR)
				return JP_ERR;
			sz += k;
			if (++n > P->lim->max_array)
				return LIMIT(P, start, "array of more than %zu elements", P->lim->max_array);
			ws(P);
			if (P->p < P->end && *P->p == ',') {
				P->p++;
				continue;
			}
			if (P->p < P->end && *P->p == ']') {
				P->p++;
				break;
			}
			return SYNTAX(P, P->p, P->p < P->end ? "expected ',' or ']'" : "unexpected end of input");
		}
	}
	P->depth--;
	if (!P->pk)
		P->c[idx].n = (uint32_t)n;
	return sz + sz_cont(n);
}

/* Is v[0..n) (a valid JSON value) [INT,"BASE64"] with INT in -128..127 and
 * canonical base64? Sets *type and *b64 / *b64n. */
static int
ext_form(const unsigned char *v, size_t n, int *type, const unsigned char **b64, size_t *b64n)
{
	const unsigned char *q = v, *end = v + n, *s;
	int neg = 0;
	long t = 0;

#define SKIPWS while (q < end && (*q == ' ' || *q == '\n' || *q == '\t' || *q == '\r')) q++
	if (q >= end || *q++ != '[')
		return 0;
	SKIPWS;
	if (q < end && *q == '-') {
		neg = 1;
		q++;
	}
	if (q >= end || *q < '0' || *q > '9')
		return 0;
	while (q < end && *q >= '0' && *q <= '9') {
		t = t * 10 + (*q++ - '0');
		if (t > 128)
			return 0;
	}
	if (neg)
		t = -t;
	if (t < -128 || t > 127)
		return 0;
	SKIPWS;
	if (q >= end || *q++ != ',')
		return 0;
	SKIPWS;
	if (q >= end || *q++ != '"')
		return 0;
	s = q;
	while (q < end && *q != '"' && *q != '\\')
		q++;
	if (q >= end || *q != '"')
		return 0;
	*b64 = s;
	*b64n = (size_t)(q - s);
	q++;
	SKIPWS;
	if (q >= end || *q++ != ']')
		return 0;
	SKIPWS;
#undef SKIPWS
	*type = (int)t;
	return q == end;
}

/* Pass 2 of a map found to be {"$bin":...} or {"$ext":...}. */
static size_t
jspecial(jp *P, int special)
{
	const unsigned char *q, *b64;
	size_t b64n = 0;
	long long n;
	int type = 0;

	P->p++;
	ws(P);
	P->p += 6;                 /* "$bin" */
	ws(P);
	P->p++;                    /* : */
	ws(P);
	q = P->p;
	if (special == SP_BIN) {
		b64 = q + 1;
		while (q[1] != '"')
			q++;
		b64n = (size_t)(q + 1 - b64);
		q += 2;
	} else {
		P->ic++;           /* the array's own entry */
		while (*q != ']')  /* checked in pass 1: no ']' before the end */
			q++;
		q++;
		ext_form(P->p, (size_t)(q - P->p), &type, &b64, &b64n);
	}
	n = b64_decode(b64, b64n, P->s);
	if (special == SP_BIN) {
		msgpack_pack_bin(P->pk, (size_t)n);
		msgpack_pack_bin_body(P->pk, P->s, (size_t)n);
	} else {
		msgpack_pack_ext(P->pk, (size_t)n, (int8_t)type);
		msgpack_pack_ext_body(P->pk, P->s, (size_t)n);
	}
	P->p = q;
	ws(P);
	P->p++;                    /* } */
	return 0;
}

static size_t
jobject(jp *P)
{
	const unsigned char *start = P->p, *v0 = NULL, *v1 = NULL, *b64;
	size_t idx = P->pk ? P->ic : P->nc, n = 0, sz = 0, k, b64n, rmax = 0, old_rmax;
	long long bn;
	int type, old_relax, dollar = 0;   /* the last key: 1 "$bin", 2 "$ext" */

	(void)cont(P);
	if (++P->depth > P->maxdepth)
		return LIMIT(P, start, "nesting deeper than %u", P->maxdepth);
	if (P->pk) {
		if (P->c[idx].special) {
			P->depth--;
			return jspecial(P, P->c[idx].special);
		}
		msgpack_pack_map(P->pk, P->c[idx].n);
	}
	P->p++;
	ws(P);
	if (P->p < P->end && *P->p == '}') {
		P->p++;
	} else {
		for (;;) {
			ws(P);
			if (P->p >= P->end)
				return SYNTAX(P, P->p, "unexpected end of input");
			if (*P->p != '"')
				return SYNTAX(P, P->p, "expected a string key");
			if (count_obj(P, P->p) < 0)
				return JP_ERR;
			v0 = P->p;
			if ((k = jstring(P)) == JP_ERR)
				return JP_ERR;
			/* exactly "$bin" or "$ext", without escapes */
			dollar = P->p - v0 != 6 ? 0 : !memcmp(v0, "\"$bin\"", 6) ? 1 :
				 !memcmp(v0, "\"$ext\"", 6) ? 2 : 0;
			if (P->pk) {
				msgpack_pack_str(P->pk, k);
				msgpack_pack_str_body(P->pk, P->s, k);
			}
			sz += sz_str(k);
			ws(P);
			if (P->p >= P->end || *P->p != ':')
				return SYNTAX(P, P->p, P->p < P->end ? "expected ':'" : "unexpected end of input");
			P->p++;
			ws(P);
			v0 = P->p;
			/* the value of "$bin"/"$ext" may hold base64 longer than max_str */
			old_relax = P->relax;
			old_rmax = P->rmax;
			if (dollar && !P->pk) {
				P->relax = 1;
				P->rmax = 0;
			}
			if ((k = jvalue(P)) == JP_ERR)
				return JP_ERR;
			if (dollar && !P->pk) {
				rmax = P->rmax > rmax ? P->rmax : rmax;
				P->relax = old_relax;
				P->rmax = old_rmax;
			}
			v1 = P->p;
			sz += k;
			if (++n > P->lim->max_map)
				return LIMIT(P, start, "map of more than %zu pairs", P->lim->max_map);
			ws(P);
			if (P->p < P->end && *P->p == ',') {
				P->p++;
				continue;
			}
			if (P->p < P->end && *P->p == '}') {
				P->p++;
				break;
			}
			return SYNTAX(P, P->p, P->p < P->end ? "expected ',' or '}'" : "unexpected end of input");
		}
	}
	P->depth--;
	if (P->pk)
		return 0;
	P->c[idx].n = (uint32_t)n;
	/* {"$bin":"BASE64"} and {"$ext":[TYPE,"BASE64"]} */
	if (n == 1 && dollar == 1 && *v0 == '"') {
		bn = b64_decode(v0 + 1, (size_t)(v1 - v0 - 2), NULL);
		if (bn >= 0 && !memchr(v0 + 1, '\\', (size_t)(v1 - v0 - 2))) {
			if ((size_t)bn > P->lim->max_str)
				return LIMIT(P, v0, "bin of %lld bytes exceeds %zu", bn, P->lim->max_str);
			P->c[idx].special = SP_BIN;
			return sz_bin((size_t)bn);
		}
	} else if (n == 1 && dollar == 2 && *v0 == '[' &&
		   ext_form(v0, (size_t)(v1 - v0), &type, &b64, &b64n) &&
		   (bn = b64_decode(b64, b64n, NULL)) >= 0) {
		if ((size_t)bn > P->lim->max_str)
			return LIMIT(P, v0, "ext of %lld bytes exceeds %zu", bn, P->lim->max_str);
		P->c[idx].special = SP_EXT;
		return sz_ext((size_t)bn);
	}
	if (rmax > P->lim->max_str)
		return LIMIT(P, start, "string of %zu bytes exceeds %zu", rmax, P->lim->max_str);
	return sz + sz_cont(n);
}

static int
lit(jp *P, const char *w, size_t n)
{
	if ((size_t)(P->end - P->p) < n || memcmp(P->p, w, n))
		return -1;
	P->p += n;
	return 0;
}

static size_t
jvalue(jp *P)
{
	size_t n;

	ws(P);
	if (P->p >= P->end)
		return SYNTAX(P, P->p, "unexpected end of input");
	if (count_obj(P, P->p) < 0)
		return JP_ERR;
	switch (*P->p) {
	case '{':
		return jobject(P);
	case '[':
		return jarray(P);
	case '"':
		if ((n = jstring(P)) == JP_ERR)
			return JP_ERR;
		if (P->pk) {
			msgpack_pack_str(P->pk, n);
			msgpack_pack_str_body(P->pk, P->s, n);
		}
		return sz_str(n);
	case 't':
		if (lit(P, "true", 4) < 0)
			break;
		if (P->pk)
			msgpack_pack_true(P->pk);
		return 1;
	case 'f':
		if (lit(P, "false", 5) < 0)
			break;
		if (P->pk)
			msgpack_pack_false(P->pk);
		return 1;
	case 'n':
		if (lit(P, "null", 4) < 0)
			break;
		if (P->pk)
			msgpack_pack_nil(P->pk);
		return 1;
	default:
		if (*P->p == '-' || (*P->p >= '0' && *P->p <= '9'))
			return jnumber(P);
		break;
	}
	return SYNTAX(P, P->p, "expected a value");
}

int
json_to_msgpack(const char *p, size_t n, const msg_limits *lim,
		msgpack_packer *pk, char *err, size_t errlen)
{
	jp P = {0};
	size_t sz;
	int ret = -1;

	P.base = P.p = (const unsigned char *)p;
	P.end = P.p + n;
	P.lim = lim ? lim : &msg_limits_default;
	P.maxdepth = P.lim->max_depth > 32 ? 32 : P.lim->max_depth;
	P.err = err;
	P.errlen = errlen;
	if (err && errlen)
		err[0] = 0;
	/* pass 1: validate, bound, count */
	if ((sz = jvalue(&P)) == JP_ERR)
		goto out;
	ws(&P);
	if (P.p != P.end) {
		SYNTAX(&P, P.p, "unexpected text after the value");
		goto out;
	}
	if (sz > P.lim->max_bytes) {
		LIMIT(&P, P.base, "message of %zu bytes exceeds %zu", sz, P.lim->max_bytes);
		goto out;
	}
	/* pass 2: pack. Decoded strings are never longer than their text. */
	P.p = P.base;
	P.pk = pk;
	P.nobj = 0;
	P.depth = 0;
	P.s = xmalloc(n ? n : 1);
	jvalue(&P);
	ret = 0;
out:
	free(P.s);
	free(P.c);
	return ret;
}

/* ---- msgpack -> JSON ----------------------------------------------------- */

#define PUT(out, lit) msgpack_sbuffer_write(out, lit, sizeof lit - 1)

/* A JSON string of the bytes p[0..n): '"', '\\' and bytes below 0x20 are
 * escaped, everything else passes through. */
static void
put_str(msgpack_sbuffer *out, const char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *q, *end, *run;
	char e[6];

	if (!n) {                  /* msgpack-c gives an empty str a NULL ptr */
		PUT(out, "\"\"");
		return;
	}
	q = (const unsigned char *)p;
	end = q + n;

	PUT(out, "\"");
	while (q < end) {
		run = q;
		while (q < end && *q >= 0x20 && *q != '"' && *q != '\\')
			q++;
		if (q > run)
			msgpack_sbuffer_write(out, (const char *)run, (size_t)(q - run));
		if (q == end)
			break;
		switch (*q) {
		case '"': PUT(out, "\\\""); break;
		case '\\': PUT(out, "\\\\"); break;
		case '\b': PUT(out, "\\b"); break;
		case '\f': PUT(out, "\\f"); break;
		case '\n': PUT(out, "\\n"); break;
		case '\r': PUT(out, "\\r"); break;
		case '\t': PUT(out, "\\t"); break;
		default:
			memcpy(e, "\\u00", 4);
			e[4] = hex[*q >> 4];
			e[5] = hex[*q & 15];
			msgpack_sbuffer_write(out, e, 6);
		}
		q++;
	}
	PUT(out, "\"");
}

/* Makes sure a number's text reads back as a float: "1" -> "1.0". */
static void
put_float_text(msgpack_sbuffer *out, char *b)
{
	size_t n = strlen(b);

	if (!strpbrk(b, ".eE"))
		memcpy(b + n, ".0", 3), n += 2;
	msgpack_sbuffer_write(out, b, n);
}

static void
put_double(msgpack_sbuffer *out, double d)
{
	char b[40];
	int prec;

	if (isnan(d)) {
		PUT(out, "null");
		return;
	}
	if (isinf(d)) {
		if (d < 0)
			PUT(out, "-1e999");
		else
			PUT(out, "1e999");
		return;
	}
	for (prec = 15; prec < 17; prec++) {
		snprintf(b, sizeof b, "%.*g", prec, d);
		if (strtod(b, NULL) == d)
			break;
	}
	if (prec == 17)
		snprintf(b, sizeof b, "%.17g", d);
	put_float_text(out, b);
}

static void
put_float32(msgpack_sbuffer *out, double d)
{
	char b[40];
	float f = (float)d;
	int prec;

	if (isnan(f) || isinf(f)) {
		put_double(out, f);
		return;
	}
	for (prec = 6; prec < 9; prec++) {
		snprintf(b, sizeof b, "%.*g", prec, (double)f);
		if (strtof(b, NULL) == f)
			break;
	}
	if (prec == 9)
		snprintf(b, sizeof b, "%.9g", (double)f);
	put_float_text(out, b);
}

static void put_obj(msgpack_sbuffer *out, const msgpack_object *o, unsigned depth);

static void
put_key(msgpack_sbuffer *out, const msgpack_object *k, int onekey, unsigned depth)
{
	msgpack_sbuffer tmp;

	if (k->type == MSGPACK_OBJECT_STR) {
		/* a real one-key map {"$bin": ...} must not read back as a bin */
		if (onekey && k->via.str.size == 4 &&
		    (!memcmp(k->via.str.ptr, "$bin", 4) || !memcmp(k->via.str.ptr, "$ext", 4))) {
			PUT(out, "\"\\u0024");
			msgpack_sbuffer_write(out, k->via.str.ptr + 1, 3);
			PUT(out, "\"");
			return;
		}
		put_str(out, k->via.str.ptr, k->via.str.size);
		return;
	}
	msgpack_sbuffer_init(&tmp);
	put_obj(&tmp, k, depth + 1);
	put_str(out, tmp.data ? tmp.data : "", tmp.size);
	msgpack_sbuffer_destroy(&tmp);
}

static void
put_obj(msgpack_sbuffer *out, const msgpack_object *o, unsigned depth)
{
	char b[32];
	uint32_t i;
	int n;

	if (depth > 1000) {        /* the decoders never nest this deep */
		PUT(out, "null");
		return;
	}
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		PUT(out, "null");
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		if (o->via.boolean)
			PUT(out, "true");
		else
			PUT(out, "false");
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		n = snprintf(b, sizeof b, "%llu", (unsigned long long)o->via.u64);
		msgpack_sbuffer_write(out, b, (size_t)n);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		n = snprintf(b, sizeof b, "%lld", (long long)o->via.i64);
		msgpack_sbuffer_write(out, b, (size_t)n);
		break;
	case MSGPACK_OBJECT_FLOAT32:
		put_float32(out, o->via.f64);
		break;
	case MSGPACK_OBJECT_FLOAT64:
		put_double(out, o->via.f64);
		break;
	case MSGPACK_OBJECT_STR:
		put_str(out, o->via.str.ptr, o->via.str.size);
		break;
	case MSGPACK_OBJECT_BIN:
		PUT(out, "{\"$bin\":\"");
		b64_encode(out, (const unsigned char *)o->via.bin.ptr, o->via.bin.size);
		PUT(out, "\"}");
		break;
	case MSGPACK_OBJECT_EXT:
		n = snprintf(b, sizeof b, "{\"$ext\":[%d,\"", (int)o->via.ext.type);
		msgpack_sbuffer_write(out, b, (size_t)n);
		b64_encode(out, (const unsigned char *)o->via.ext.ptr, o->via.ext.size);
		PUT(out, "\"]}");
		break;
	case MSGPACK_OBJECT_ARRAY:
		PUT(out, "[");
		for (i = 0; i < o->via.array.size; i++) {
			if (i)
				PUT(out, ",");
			put_obj(out, &o->via.array.ptr[i], depth + 1);
		}
		PUT(out, "]");
		break;
	case MSGPACK_OBJECT_MAP:
		PUT(out, "{");
		for (i = 0; i < o->via.map.size; i++) {
			if (i)
				PUT(out, ",");
			put_key(out, &o->via.map.ptr[i].key, o->via.map.size == 1, depth);
			PUT(out, ":");
			put_obj(out, &o->via.map.ptr[i].val, depth + 1);
		}
		PUT(out, "}");
		break;
	default:
		PUT(out, "null");
	}
}

void
json_from_msgpack(const msgpack_object *o, msgpack_sbuffer *out)
{
	put_obj(out, o, 0);
}
