/* chat: unit tests for lib/chat against llama.cpp. t/tok/chat-fixtures.jsonl
 * (made by t/tok/mkchat.py with llama-cpp-python's llama_chat_apply_template,
 * and jinja2 for smollm) holds, for every template we render, the text of a
 * set of conversations with and without the generation prompt, and the
 * template llama.cpp detects in real and made-up Jinja sources. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "json.h"
#include "msg.h"
#include "tap.h"

#define FIXTURES "t/tok/chat-fixtures.jsonl"

/* the value of key in map o, or NULL */
static const msgpack_object *
get(const msgpack_object *o, const char *key)
{
	size_t n = strlen(key);

	if (o->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object_kv *kv = &o->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == n &&
		    !memcmp(kv->key.via.str.ptr, key, n))
			return &kv->val;
	}
	return NULL;
}

/* a str value as a malloc'd C string, or NULL */
static char *
str(const msgpack_object *o)
{
	char *s;

	if (!o || o->type != MSGPACK_OBJECT_STR)
		return NULL;
	if (!(s = malloc(o->via.str.size + 1)))
		abort();
	memcpy(s, o->via.str.ptr, o->via.str.size);
	s[o->via.str.size] = 0;
	return s;
}

/* s with control characters escaped, shortened, for test names */
static const char *
show(const char *s, size_t n)
{
	static char buf[2][160];
	static int k;
	char *o = buf[k = (k + 1) % 2], *end = o + sizeof buf[0] - 8;

	for (size_t i = 0; i < n && o < end; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20)
			o += sprintf(o, "\\x%02x", c);
		else
			*o++ = (char)c;
	}
	*o = 0;
	return buf[k];
}

static int nrender, ndetect, nspans, per_id[64];

/* chat_render_spans renders what chat_render does, byte for byte, and its
 * spans are in order, apart (two that touch are one), not empty, inside the
 * text, and no longer in all than the contents. *spans, *nsp: the spans,
 * for more checks (freed by the caller). */
static int
spans_render(int id, const chat_msg *m, size_t n, int add, char **out, size_t *outlen,
	     chat_span **spans, size_t *nsp)
{
	char *want = NULL, err[256] = "";
	size_t wantlen = 0, i, at = 0, sum = 0, total = 0;
	int good = 0;

	*out = NULL;
	*spans = NULL;
	if (chat_render(id, m, n, add, &want, &wantlen, err, sizeof err) < 0 ||
	    chat_render_spans(id, m, n, add, out, outlen, spans, nsp, err, sizeof err) < 0)
		goto out;
	if (*outlen != wantlen || memcmp(*out, want, wantlen) || (*out)[*outlen] || (*nsp && !*spans))
		goto out;
	for (i = 0; i < n; i++)
		total += m[i].content_len;
	for (i = 0; i < *nsp; i++) {
		const chat_span *s = &(*spans)[i];
		if (!s->len || s->off < at || (i && s->off == at) || s->off + s->len > *outlen)
			goto out;
		at = s->off + s->len;
		sum += s->len;
	}
	good = sum <= total;
out:
	free(want);
	return good;
}

static void
render_case(const msgpack_object *o)
{
	const msgpack_object *ms = get(o, "messages"), *add = get(o, "add_assistant");
	const msgpack_object *want = get(o, "output");
	char *name = str(get(o, "render")), *out = NULL, err[256] = "";
	chat_msg m[32];
	size_t n = 0, outlen = 0;
	int id = chat_by_name(name);

	if (!(ms && ms->type == MSGPACK_OBJECT_ARRAY && ms->via.array.size <= 32 &&
	      add && add->type == MSGPACK_OBJECT_BOOLEAN && want && want->type == MSGPACK_OBJECT_STR)) {
		ok(0, "fixture for %s is well-formed", name);
		goto out;
	}
	for (n = 0; n < ms->via.array.size; n++) {
		const msgpack_object *r = get(&ms->via.array.ptr[n], "role");
		const msgpack_object *c = get(&ms->via.array.ptr[n], "content");
		if (!r || !c || r->type != MSGPACK_OBJECT_STR || c->type != MSGPACK_OBJECT_STR) {
			ok(0, "fixture for %s has role and content strings", name);
			goto out;
		}
		m[n] = (chat_msg){r->via.str.ptr, r->via.str.size, c->via.str.ptr, c->via.str.size};
	}
	if (id < 0) {
		ok(0, "template %s is known", name);
		goto out;
	}
	per_id[id]++;
	{
		chat_span *sp = NULL;
		size_t nsp = 0;
		if (spans_render(id, m, n, add->via.boolean, &out, &outlen, &sp, &nsp))
			nspans++;
		else
			ok(0, "%s, %zu messages: chat_render_spans agrees with chat_render", name, n);
		free(sp);
		free(out);
		out = NULL;
	}
	if (chat_render(id, m, n, add->via.boolean, &out, &outlen, err, sizeof err) < 0) {
		ok(0, "%s renders: %s", name, err);
		goto out;
	}
	nrender++;
	if (!ok(outlen == want->via.str.size && !memcmp(out, want->via.str.ptr, outlen) &&
		strlen(out) <= outlen && out[outlen] == 0,
		"%s, %zu messages%s: as llama.cpp", name, n, add->via.boolean ? ", add_assistant" : ""))
		printf("#   got  \"%s\"\n#   want \"%s\"\n", show(out, outlen),
		       show(want->via.str.ptr, want->via.str.size));
out:
	free(out);
	free(name);
}

static void
detect_case(const msgpack_object *o)
{
	char *src = str(get(o, "detect")), *expect = str(get(o, "expect"));
	int id;

	if (!ok(src, "detect fixture is well-formed"))
		goto out;
	id = chat_detect(src);
	ndetect++;
	if (expect)
		ok(id == chat_by_name(expect) && id >= 0 && !strcmp(chat_name(id), expect),
		   "\"%s\" detects as %s (got %s)", show(src, strlen(src) > 60 ? 60 : strlen(src)),
		   expect, chat_name(id));
	else
		ok(id == -1, "\"%s\" is unknown to us (got %s)",
		   show(src, strlen(src) > 60 ? 60 : strlen(src)), chat_name(id));
out:
	free(src);
	free(expect);
}

static void
fixtures(void)
{
	FILE *f = fopen(FIXTURES, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (!ok(f, "open %s", FIXTURES))
		return;
	msgpack_sbuffer_init(&sb);
	msg_pk_init(&pk, &sb);
	while ((len = getline(&line, &cap, f)) > 0) {
		msgpack_zone z;
		msg m = MSG_ZERO;
		const char *e = NULL;
		char err[256];

		msgpack_sbuffer_clear(&sb);
		if (json_to_msgpack(line, (size_t)len, NULL, &pk, err, sizeof err) < 0) {
			ok(0, "fixture line parses: %s", err);
			continue;
		}
		msgpack_zone_init(&z, 4096);
		if (msg_unpack(sb.data, sb.size, NULL, &z, &m, &e) != MSG_GOT) {
			ok(0, "fixture unpacks: %s", e);
		} else {
			if (get(&m.root, "render"))
				render_case(&m.root);
			else
				detect_case(&m.root);
		}
		msgpack_zone_destroy(&z);
	}
	free(line);
	msgpack_sbuffer_destroy(&sb);
	fclose(f);
	ok(nrender >= 1000 && ndetect >= 50, "%d renderings and %d detections checked", nrender, ndetect);
	ok(nspans == nrender, "%d renderings give the same text with their content spans", nspans);
}

/* Every template, with contents the templates never write ('@' and digits,
 * some with spaces around for those that trim): once the spans are taken
 * out, no '@' is left, and the spans hold only contents. */
static void
content_spans(int id)
{
	static const char *const roles[] = { "system", "user", "assistant", "user", "tool", "user" };
	static const char *const texts[] = { "@0@", " @1@ ", "@2@\n", "\n@3@", "@4@", "@5@@6@" };
	chat_msg m[6];
	chat_span *sp = NULL;
	char *out = NULL;
	size_t outlen = 0, nsp = 0, i, at = 0, ats = 0, in_spans = 0, left = 0;
	int good;

	for (i = 0; i < 6; i++)
		m[i] = (chat_msg){ roles[i], strlen(roles[i]), texts[i], strlen(texts[i]) };
	good = spans_render(id, m, 6, 1, &out, &outlen, &sp, &nsp);
	for (i = 0; good && i < outlen; i++)
		ats += out[i] == '@';
	for (i = 0; good && i < nsp; i++) {
		for (size_t p = at; p < sp[i].off; p++)
			left += out[p] == '@';
		for (size_t p = sp[i].off; p < sp[i].off + sp[i].len; p++) {
			char c = out[p];
			in_spans += c == '@';
			if (c != '@' && !(c >= '0' && c <= '9') && c != ' ' && c != '\n')
				good = 0;
		}
		at = sp[i].off + sp[i].len;
	}
	for (size_t p = at; good && p < outlen; p++)
		left += out[p] == '@';
	ok(good && ats >= 4 && !left && in_spans == ats,
	   "%s: contents are spans, the rest is the template (%zu '@' in %zu spans)",
	   chat_name(id), in_spans, nsp);
	free(sp);
	free(out);
}

int
main(void)
{
	char *out = NULL, err[512] = "";
	size_t outlen = 7;
	const char *known = chat_known();
	int id;

	fixtures();

	/* names: every known one round-trips, is in chat_known and has fixtures */
	for (id = 0; id < 64 && strcmp(chat_name(id), "unknown"); id++) {
		ok(chat_by_name(chat_name(id)) == id && strstr(known, chat_name(id)),
		   "%s: name round-trips and is listed", chat_name(id));
		ok(per_id[id] >= 20, "%s: %d fixtures", chat_name(id), per_id[id]);
		content_spans(id);
	}
	{
		/* chat_known is exactly the names, in id order */
		char all[1024] = "";
		size_t k = 0;
		for (int i = 0; i < id; i++)
			k += (size_t)snprintf(all + k, sizeof all - k, "%s%s", i ? ", " : "", chat_name(i));
		ok(id >= 7 && k < sizeof all && !strcmp(all, known), "%d templates known: %s", id, known);
	}
	ok(chat_by_name("nope") == -1 && chat_by_name("") == -1 && chat_by_name(NULL) == -1 &&
	   chat_by_name("ChatML") == -1, "unknown names give -1");
	ok(chat_detect(NULL) == -1 && chat_detect("") == -1, "no template detects as unknown");
	ok(!strcmp(chat_name(-1), "unknown") && !strcmp(chat_name(1000), "unknown"), "chat_name of a bad id");
	ok(chat_render(-1, NULL, 0, 1, &out, &outlen, err, sizeof err) == -1 && !out && outlen == 0 &&
	   strstr(err, "chatml") && strstr(err, "gemma"), "rendering an unknown id fails naming the known ones: %s", err);

	/* bytes are taken by length: no NUL needed, a NUL is kept */
	{
		static const char want[] = "<|im_start|>user\nhi\0there<|im_end|>\n";
		chat_msg m = {"userXX", 4, "hi\0there!", 8};
		int rc = chat_render(chat_by_name("chatml"), &m, 1, 0, &out, &outlen, err, sizeof err);
		ok(rc == 0 && outlen == sizeof want - 1 && !memcmp(out, want, outlen),
		   "contents and roles are taken by length");
		free(out);
	}
	/* no messages: just the generation prompt (smollm adds no system turn) */
	ok(chat_render(chat_by_name("smollm"), NULL, 0, 1, &out, &outlen, err, sizeof err) == 0 &&
	   !strcmp(out, "<|im_start|>assistant\n"), "smollm with no messages");
	free(out);
	/* a long conversation renders whole */
	{
		static chat_msg big[2000];
		static char text[1000];
		memset(text, 'a', sizeof text);
		for (int i = 0; i < 2000; i++)
			big[i] = (chat_msg){i % 2 ? "assistant" : "user", i % 2 ? 9 : 4, text, sizeof text};
		int rc = chat_render(chat_by_name("gemma"), big, 2000, 1, &out, &outlen, err, sizeof err);
		/* user turns 20+1000+14 bytes, model turns 21+1000+14, prompt 21 */
		ok(rc == 0 && outlen == 1000 * 1034 + 1000 * 1035 + 21 && strlen(out) == outlen,
		   "2000 messages render (%zu bytes)", outlen);
		free(out);
	}
	return done_testing();
}
