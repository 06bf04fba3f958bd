/* libFuzzer target for lib/oai: any body, read as a completions or a chat
 * request (the first byte picks), is either refused with a 4xx error naming
 * what is wrong, or gives choices whose upstream requests are well-formed
 * sluice requests (msg_check_request) with every token in the vocabulary.
 * The tokenizer is the tiny one `sluice model synth` writes. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "msg.h"
#include "oai.h"
#include "synth.h"
#include "tokenize.h"

#define must(c) do { if (!(c)) { fprintf(stderr, "fuzz-oai: %s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

static tok *t;
static oai_ctx cx;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	synth_opts so = SYNTH_OPTS_DEFAULT;
	tokenize_opts to = TOKENIZE_OPTS_DEFAULT;
	char path[] = "/tmp/fuzz-oai.XXXXXX";
	int fd = mkstemp(path);
	gguf g;
	char err[256];

	(void)argc;
	(void)argv;
	must(fd >= 0);
	close(fd);
	so.out = path;
	must(synth_write(&so) == 0);
	must(gguf_open(&g, path, err, sizeof err) == 0);
	must((t = tok_load(&g, err, sizeof err)));
	gguf_close(&g);
	unlink(path);
	cx.t = t;
	cx.chat_id = tokenize_chat_id(t, &to);
	cx.model = "m";
	cx.max_model_len = 128;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	oai_req r;
	oai_err e;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	uint32_t i;

	if (!size)
		return 0;
	if (oai_parse(&cx, data[0] & 1 ? OAI_CHAT : OAI_COMPLETIONS, (const char *)data + 1, size - 1, &r, &e) < 0) {
		json_t *j;
		must(e.status == 400 || e.status == 404);
		must(e.message[0]);
		j = oai_error_json(&e);
		must(j);
		json_decref(j);
		return 0;
	}
	must(r.nprompts >= 1 && r.n >= 1 && r.nprompts * r.n <= OAI_MAX_CHOICES);
	msgpack_sbuffer_init(&sb);
	for (i = 0; i < r.nprompts * r.n; i++) {
		msgpack_zone z;
		msg m = MSG_ZERO;
		const char *why;
		char err[256];
		const msgpack_object *tk;

		sb.size = 0;
		msg_pk_init(&pk, &sb);
		oai_pack(&r, i, "x", 1, 0, &pk);
		msgpack_zone_init(&z, 1024);
		must(msg_unpack(sb.data, sb.size, 0, &z, &m, &why) == MSG_GOT);
		if (msg_check_request(&m, err, sizeof err) < 0) {
			fprintf(stderr, "fuzz-oai: %s\n", err);
			abort();
		}
		tk = msg_get(&m, "tokens");
		must(tk && tk->type == MSGPACK_OBJECT_ARRAY && tk->via.array.size > 0);
		for (uint32_t k = 0; k < tk->via.array.size; k++)
			must(tk->via.array.ptr[k].via.u64 < tok_n_vocab(t));
		msgpack_zone_destroy(&z);
	}
	msgpack_sbuffer_destroy(&sb);
	oai_req_free(&r);
	return 0;
}
