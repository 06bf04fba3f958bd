/* sluice-gguf: `sluice gguf info|tensors|kv FILE`, a GGUF file shown to
 * people (lib/gguf reads it). One line per item, fields
 * separated by tabs, so the output reads well and also cuts and diffs well:
 *   info     key<TAB>value lines: version, sizes, counts, types
 *   tensors  name<TAB>type<TAB>shape (ne order, 576x49152)<TAB>offset<TAB>bytes
 *   kv       key<TAB>type (u32, str, arr[str])<TAB>value; arrays as
 *            "COUNT [first few, ...]", long strings cut with their length */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "die.h"
#include "gguf.h"
#include "sluice.h"

#define USAGE "sluice gguf info|tensors|kv FILE"

static const char *const vtname[GGUF_NTYPES] = {
	"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
};

/* a string with escapes for control bytes, cut after max bytes; quoted
 * unless it is a key */
static void
pesc(const char *s, size_t n, size_t max, int quote)
{
	size_t i;

	if (quote)
		putchar('"');
	for (i = 0; i < n && i < max; i++) {
		unsigned char c = s[i];
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c < 0x20 || c == 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
	if (quote)
		putchar('"');
	if (n > max)
		printf("... (%zu bytes)", n);
}

static void
pstr(const char *s, size_t n, size_t max)
{
	pesc(s, n, max, 1);
}

/* element i of a numeric array, or the scalar when kv is not an array */
static void
pnum(uint32_t type, const gguf_kv *arr, uint64_t i, const gguf *g, const char *key)
{
	uint64_t u;
	int64_t s;
	double d;
	int b;

	switch (type) {
	case GGUF_F32: case GGUF_F64:
		if (arr)
			d = gguf_arr_f64(arr, i);
		else
			gguf_get_f64(g, key, &d);
		printf("%.9g", d);
		break;
	case GGUF_BOOL:
		if (arr)
			b = gguf_arr_u64(arr, i) != 0;
		else
			gguf_get_bool(g, key, &b);
		fputs(b ? "true" : "false", stdout);
		break;
	case GGUF_I8: case GGUF_I16: case GGUF_I32: case GGUF_I64:
		if (arr)
			s = gguf_arr_i64(arr, i);
		else
			gguf_get_i64(g, key, &s);
		printf("%lld", (long long)s);
		break;
	default:
		if (arr)
			u = gguf_arr_u64(arr, i);
		else
			gguf_get_u64(g, key, &u);
		printf("%llu", (unsigned long long)u);
	}
}

static void
kvs(const gguf *g)
{
	char key[1024];
	uint64_t i, j;

	for (i = 0; i < g->n_kv; i++) {
		const gguf_kv *k = &g->kv[i];
		size_t kn = k->key_len < sizeof key - 1 ? k->key_len : sizeof key - 1;
		memcpy(key, k->key, kn);
		key[kn] = 0;
		pesc(k->key, k->key_len, 200, 0);
		if (k->type == GGUF_STR) {
			printf("\tstr\t");
			pstr((const char *)k->val + 8, k->len - 8, 200);
		} else if (k->type == GGUF_ARR) {
			printf("\tarr[%s]\t%llu [", vtname[k->arr_type], (unsigned long long)k->arr_n);
			if (k->arr_type == GGUF_STR) {
				gguf_iter it;
				const char *s;
				size_t n;
				gguf_str_iter(k, &it);
				for (j = 0; j < 5 && gguf_str_next(&it, &s, &n); j++) {
					fputs(j ? ", " : "", stdout);
					pstr(s, n, 40);
				}
			} else {
				for (j = 0; j < 5 && j < k->arr_n; j++) {
					fputs(j ? ", " : "", stdout);
					pnum(k->arr_type, k, j, g, NULL);
				}
			}
			printf("%s]", k->arr_n > 5 ? ", ..." : "");
		} else {
			printf("\t%s\t", vtname[k->type]);
			/* keys with a NUL inside cannot be looked up by name: read them directly */
			if (strlen(key) == k->key_len && kn == k->key_len)
				pnum(k->type, NULL, 0, g, key);
			else
				printf("?");
		}
		putchar('\n');
	}
}

static void
tensors(const gguf *g)
{
	uint64_t i;
	uint32_t j;

	for (i = 0; i < g->n_tensors; i++) {
		const gguf_tensor *t = &g->tensors[i];
		printf("%s\t%s\t", t->name, gguf_type_name(t->type));
		for (j = 0; j < t->n_dims; j++)
			printf("%s%llu", j ? "x" : "", (unsigned long long)t->ne[j]);
		printf("\t%llu\t%zu\n", (unsigned long long)t->offset, t->nbytes);
	}
}

static void
info(const gguf *g, const char *path)
{
	uint64_t count[64] = { 0 }, params = 0, bytes = 0, i, e;
	const char *s;
	size_t n;
	int first = 1;
	uint32_t ty;

	printf("file\t%s\nversion\t%u\nsize\t%zu\nalignment\t%zu\ndata_offset\t%zu\nkv\t%llu\ntensors\t%llu\n",
		path, g->version, g->size, g->alignment, g->data_off,
		(unsigned long long)g->n_kv, (unsigned long long)g->n_tensors);
	if (gguf_get_str(g, "general.architecture", &s, &n) == 1) {
		fputs("architecture\t", stdout);
		pstr(s, n, 100);
		putchar('\n');
	}
	if (gguf_get_str(g, "general.name", &s, &n) == 1) {
		fputs("name\t", stdout);
		pstr(s, n, 100);
		putchar('\n');
	}
	for (i = 0; i < g->n_tensors; i++) {
		const gguf_tensor *t = &g->tensors[i];
		e = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];  /* checked at open */
		params += e;
		bytes += t->nbytes;
		count[t->type < 64 ? t->type : 63]++;
	}
	printf("parameters\t%llu\ntensor_bytes\t%llu\ntypes\t", (unsigned long long)params,
		(unsigned long long)bytes);
	for (ty = 0; ty < 64; ty++) {
		if (!count[ty])
			continue;
		printf("%s%s x %llu", first ? "" : ", ", gguf_type_name(ty), (unsigned long long)count[ty]);
		first = 0;
	}
	putchar('\n');
}

int
cmd_gguf(int argc, char **argv)
{
	gguf g = GGUF_ZERO;
	char err[512];
	int what;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("usage: %s\n"
			"  info     file summary: version, alignment, counts, tensor types\n"
			"  tensors  name, type, shape (ne[0] first), offset in the data section, bytes\n"
			"  kv       metadata: key, type, value (arrays: count and the first five)\n"
			"exit status: 0 ok, 100 usage, 111 unreadable or invalid file\n", USAGE);
		return 0;
	}
	if (argc != 3)
		die_usage(USAGE);
	if (!strcmp(argv[1], "info"))
		what = 0;
	else if (!strcmp(argv[1], "tensors"))
		what = 1;
	else if (!strcmp(argv[1], "kv"))
		what = 2;
	else
		die_usage(USAGE);
	if (gguf_open(&g, argv[2], err, sizeof err) < 0)
		die_x(EXIT_SYS, "unable to read %s: %s", argv[2], err);
	if (what == 0)
		info(&g, argv[2]);
	else if (what == 1)
		tensors(&g);
	else
		kvs(&g);
	gguf_close(&g);
	if (fflush(stdout) == EOF || ferror(stdout))
		die_sys("unable to write to stdout");
	return 0;
}
