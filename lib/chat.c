/* chat: chat templates, detected and rendered the way llama.cpp does
 * (src/llama-chat.cpp of the llama.cpp that llama-cpp-python 0.3.36 vendors:
 * llm_chat_detect_template and llm_chat_apply_template). It is not a Jinja
 * engine: a template's text is recognised by the markers it contains, and
 * each known family has a fixed renderer. t/tok/chat-fixtures.jsonl holds
 * llama.cpp's own output for every id here (made by t/tok/mkchat.py).
 *
 * One deliberate difference: "smollm". llama.cpp detects SmolLM2's template
 * as plain chatml and renders it without the default system prompt that the
 * model's Jinja template inserts when the first message is not a system
 * message. We follow the model's template: a chatml template whose text
 * carries that prompt is "smollm", rendered with it (fixtures from jinja2).
 *
 * Message bytes are used as given (lengths, not C strings): a NUL inside a
 * content is kept, where llama.cpp's C API would cut the content there.
 *
 * While rendering, the place of every content in the text is recorded (a
 * span), so that the tokenizer can match special tokens in the template's
 * text and not in what a client wrote (chat_render_spans). Roles are not
 * spans: some templates make a marker of one ("<|" role "|>" is phi3's
 * <|user|>). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"

enum {
	CHAT_CHATML, CHAT_SMOLLM, CHAT_LLAMA2, CHAT_LLAMA2_SYS, CHAT_LLAMA2_SYS_BOS,
	CHAT_LLAMA2_SYS_STRIP, CHAT_MISTRAL_V1, CHAT_MISTRAL_V3,
	CHAT_MISTRAL_V3_TEKKEN, CHAT_MISTRAL_V7, CHAT_MISTRAL_V7_TEKKEN,
	CHAT_LLAMA3, CHAT_LLAMA4, CHAT_GEMMA, CHAT_PHI3, CHAT_PHI4, CHAT_FALCON3,
	CHAT_ZEPHYR, CHAT_MONARCH, CHAT_ORION, CHAT_OPENCHAT, CHAT_VICUNA,
	CHAT_VICUNA_ORCA, CHAT_DEEPSEEK, CHAT_DEEPSEEK2, CHAT_DEEPSEEK3,
	CHAT_COMMAND_R, CHAT_CHATGLM3, CHAT_CHATGLM4, CHAT_GLMEDGE, CHAT_MINICPM,
	CHAT_EXAONE3, CHAT_EXAONE4, CHAT_MEGREZ, CHAT_SMOLVLM, CHAT_N
};

/* indexed by id; the names are llama.cpp's, except "smollm" */
static const char *const names[CHAT_N] = {
	"chatml", "smollm", "llama2", "llama2-sys", "llama2-sys-bos",
	"llama2-sys-strip", "mistral-v1", "mistral-v3", "mistral-v3-tekken",
	"mistral-v7", "mistral-v7-tekken", "llama3", "llama4", "gemma", "phi3",
	"phi4", "falcon3", "zephyr", "monarch", "orion", "openchat", "vicuna",
	"vicuna-orca", "deepseek", "deepseek2", "deepseek3", "command-r",
	"chatglm3", "chatglm4", "glmedge", "minicpm", "exaone3", "exaone4",
	"megrez", "smolvlm",
};

/* llama.cpp's other built-in names: an exact match is that template in
 * llama.cpp, which we do not render, so it must not fall through to the
 * marker tests (none of them contains a marker today; this keeps it so). */
static const char *const unsupported[] = {
	"deepseek-ocr", "exaone-moe", "rwkv-world", "granite", "granite-4.0",
	"granite-4.1", "gigachat", "yandex", "bailing", "bailing-think",
	"bailing2", "hunyuan-moe", "gpt-oss", "hunyuan-dense", "hunyuan-vl",
	"kimi-k2", "seed_oss", "grok-2", "pangu-embedded", "solar-open",
};

/* SmolLM2-Instruct's chat template inserts this as a system message */
#define SMOLLM_SYSTEM "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

int
chat_by_name(const char *name)
{
	if (!name)
		return -1;
	for (int i = 0; i < CHAT_N; i++)
		if (!strcmp(name, names[i]))
			return i;
	return -1;
}

const char *
chat_name(int id)
{
	return id >= 0 && id < CHAT_N ? names[id] : "unknown";
}

/* the names above, in their order (t/unit/chat.c checks they agree) */
const char *
chat_known(void)
{
	return "chatml, smollm, llama2, llama2-sys, llama2-sys-bos, llama2-sys-strip, "
	       "mistral-v1, mistral-v3, mistral-v3-tekken, mistral-v7, mistral-v7-tekken, "
	       "llama3, llama4, gemma, phi3, phi4, falcon3, zephyr, monarch, orion, "
	       "openchat, vicuna, vicuna-orca, deepseek, deepseek2, deepseek3, command-r, "
	       "chatglm3, chatglm4, glmedge, minicpm, exaone3, exaone4, megrez, smolvlm";
}

/* ---- detection (llm_chat_detect_template, in its order) ---------------- */

#define HAS(s) (strstr(t, (s)) != NULL)

/* llama.cpp's name for the template text t, or NULL (unknown). Names of
 * templates we do not render are returned too, so that a later, weaker test
 * never claims a text an earlier test gives to another family. */
static const char *
detect_name(const char *t)
{
	if (HAS("<|im_start|>")) {
		if (HAS("<|im_sep|>"))
			return "phi4";
		if (HAS("<end_of_utterance>"))
			return "smolvlm";  /* <|im_start|> as BOS, not chatml */
		return HAS(SMOLLM_SYSTEM) ? "smollm" : "chatml";
	}
	if (!strncmp(t, "mistral", 7) || HAS("[INST]")) {
		if (HAS("[SYSTEM_PROMPT]"))
			return "mistral-v7";
		if (HAS("' [INST] ' + system_message") || HAS("[AVAILABLE_TOOLS]")) {
			if (HAS(" [INST]"))
				return "mistral-v1";
			if (HAS("\"[INST]\""))
				return "mistral-v3-tekken";
			return "mistral-v3";
		}
		if (HAS("content.strip()"))
			return "llama2-sys-strip";
		if (HAS("bos_token + '[INST]"))
			return "llama2-sys-bos";
		if (HAS("<<SYS>>"))
			return "llama2-sys";
		return "llama2";
	}
	if (HAS("<|assistant|>") && HAS("<|end|>"))
		return "phi3";
	if (HAS("[gMASK]<sop>"))
		return "chatglm4";
	if (HAS("<|assistant|>") && HAS("<|user|>")) {
		if (HAS("<|tool_declare|>"))
			return "exaone-moe";
		return HAS("</s>") ? "falcon3" : "glmedge";
	}
	if (HAS("<|{{ item['role'] }}|>") && HAS("<|begin_of_image|>"))
		return "glmedge";
	if (HAS("<|user|>") && HAS("<|endoftext|>"))
		return "zephyr";
	if (HAS("bos_token + message['role']"))
		return "monarch";
	if (HAS("<start_of_turn>"))
		return "gemma";
	if (HAS("'\\n\\nAssistant: ' + eos_token"))
		return "orion";
	if (HAS("GPT4 Correct "))
		return "openchat";
	if (HAS("USER: ") && HAS("ASSISTANT: "))
		return HAS("SYSTEM: ") ? "vicuna-orca" : "vicuna";
	if (HAS("### Instruction:") && HAS("<|EOT|>"))
		return "deepseek";
	if (HAS("<|START_OF_TURN_TOKEN|>") && HAS("<|USER_TOKEN|>"))
		return "command-r";
	if (HAS("<|start_header_id|>") && HAS("<|end_header_id|>"))
		return "llama3";
	if (HAS("[gMASK]sop"))
		return "chatglm3";
	if (HAS("<\xe7\x94\xa8\xe6\x88\xb7>"))  /* <用户> */
		return "minicpm";
	if (HAS("'Assistant: ' + message['content'] + eos_token"))
		return "deepseek2";
	/* <｜Assistant｜> <｜User｜> <｜end▁of▁sentence｜> */
	if (HAS("<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>") && HAS("<\xef\xbd\x9c" "User\xef\xbd\x9c>") &&
	    HAS("<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"))
		return "deepseek3";
	if (HAS("[|system|]") && HAS("[|assistant|]") && HAS("[|endofturn|]"))
		return HAS("[|tool|]") ? "exaone4" : "exaone3";
	if (HAS("rwkv-world") || HAS("{{- 'User: ' + message['content']|trim + '\\n\\n' -}}"))
		return "rwkv-world";
	if (HAS("<|start_of_role|>"))
		return "granite";
	if (HAS("message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]"))
		return "gigachat";
	if (HAS("<|role_start|>"))
		return "megrez";
	if (HAS(" \xd0\x90\xd1\x81\xd1\x81\xd0\xb8\xd1\x81\xd1\x82\xd0\xb5\xd0\xbd\xd1\x82:"))  /* " Ассистент:" */
		return "yandex";
	if (HAS("<role>ASSISTANT</role>") && (HAS("'HUMAN'") ||
	    (HAS("\"HUMAN\"") && HAS("<think>")) ||
	    (HAS("<role>HUMAN</role>") && HAS("<|role_end|>"))))
		return "bailing";
	if (HAS("<|header_start|>") && HAS("<|header_end|>"))
		return "llama4";
	/* llama.cpp goes on with families we do not render (dots1, hunyuan,
	 * gpt-oss, kimi-k2, seed-oss, grok-2, pangu, solar): all unknown here */
	return NULL;
}

int
chat_detect(const char *jinja)
{
	const char *nm;
	size_t i;

	if (!jinja)
		return -1;
	/* an exact name first, as llama.cpp does */
	if (chat_by_name(jinja) >= 0)
		return chat_by_name(jinja);
	for (i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
		if (!strcmp(jinja, unsupported[i]))
			return -1;
	nm = detect_name(jinja);
	return nm ? chat_by_name(nm) : -1;
}

#undef HAS

/* ---- rendering --------------------------------------------------------- */

typedef struct sbuf {
	char *p;
	size_t n, cap;
	chat_span *sp;         /* where contents were put, in order */
	size_t nsp, spcap;
	int oom;
} sbuf;

static void
put(sbuf *b, const char *s, size_t n)
{
	if (b->oom || n == 0)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *q;
		while (cap < b->n + n + 1) {
			if (cap > ((size_t)-1) / 2) {
				b->oom = 1;
				return;
			}
			cap *= 2;
		}
		if (!(q = realloc(b->p, cap))) {
			b->oom = 1;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
}

static void
puts_(sbuf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* s[0..n) put as a message's content: a span */
static void
put_content(sbuf *b, const char *s, size_t n)
{
	size_t off = b->n;

	put(b, s, n);
	if (b->oom || n == 0)
		return;
	if (b->nsp && b->sp[b->nsp - 1].off + b->sp[b->nsp - 1].len == off) {
		b->sp[b->nsp - 1].len += n;   /* two contents with nothing between */
		return;
	}
	if (b->nsp == b->spcap) {
		size_t cap = b->spcap ? b->spcap * 2 : 16;
		chat_span *q;

		if (cap > ((size_t)-1) / sizeof *q || !(q = realloc(b->sp, cap * sizeof *q))) {
			b->oom = 1;
			return;
		}
		b->sp = q;
		b->spcap = cap;
	}
	b->sp[b->nsp++] = (chat_span){ off, n };
}

/* what another buffer holds (gemma's and orion's system texts), its
 * contents still spans; then it is emptied */
static void
put_sbuf(sbuf *b, sbuf *from)
{
	size_t i, at = 0;

	if (from->oom)
		b->oom = 1;
	for (i = 0; i < from->nsp; i++) {
		put(b, from->p + at, from->sp[i].off - at);
		put_content(b, from->p + from->sp[i].off, from->sp[i].len);
		at = from->sp[i].off + from->sp[i].len;
	}
	put(b, from->p + at, from->n - at);
	from->n = from->nsp = 0;
}

static void
sbuf_free(sbuf *b)
{
	free(b->p);
	free(b->sp);
}

/* isspace() of the C locale, as llama.cpp's trim() uses */
static int
space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/* content of m, trimmed of leading and trailing white space if trim */
static void
content(sbuf *b, const chat_msg *m, int trim)
{
	const char *s = m->content ? m->content : "";
	size_t n = m->content ? m->content_len : 0;

	if (trim) {
		while (n && space((unsigned char)*s))
			s++, n--;
		while (n && space((unsigned char)s[n - 1]))
			n--;
	}
	put_content(b, s, n);
}

static void
role(sbuf *b, const chat_msg *m)
{
	if (m->role)
		put(b, m->role, m->role_len);
}

static int
is(const chat_msg *m, const char *r)
{
	size_t n = strlen(r);
	return m->role_len == n && (n == 0 || (m->role && !memcmp(m->role, r, n)));
}

/* the families whose every message is PRE role MID content POST */
static void
simple(sbuf *b, const chat_msg *msgs, size_t n, int add, const char *pre,
       const char *mid, const char *post, const char *gen, int trim)
{
	for (size_t i = 0; i < n; i++) {
		puts_(b, pre);
		role(b, &msgs[i]);
		puts_(b, mid);
		content(b, &msgs[i], trim);
		puts_(b, post);
	}
	if (add)
		puts_(b, gen);
}

static void
llama2(sbuf *b, int id, const chat_msg *msgs, size_t n)
{
	int sys = id != CHAT_LLAMA2, bos = id == CHAT_LLAMA2_SYS_BOS;
	int strip = id == CHAT_LLAMA2_SYS_STRIP, inside = 1;

	/* the first [INST] goes without <s>: the tokenizer adds BOS */
	puts_(b, "[INST] ");
	for (size_t i = 0; i < n; i++) {
		const chat_msg *m = &msgs[i];
		if (!inside) {
			inside = 1;
			puts_(b, bos ? "<s>[INST] " : "[INST] ");
		}
		if (is(m, "system")) {
			if (sys) {
				puts_(b, "<<SYS>>\n");
				content(b, m, strip);
				puts_(b, "\n<</SYS>>\n\n");
			} else {
				/* no system message: kept, without <<SYS>> */
				content(b, m, strip);
				puts_(b, "\n");
			}
		} else if (is(m, "user")) {
			content(b, m, strip);
			puts_(b, " [/INST]");
		} else {
			content(b, m, strip);
			puts_(b, "</s>");
			inside = 0;
		}
	}
}

static void
mistral(sbuf *b, int id, const chat_msg *msgs, size_t n)
{
	const char *lead = id == CHAT_MISTRAL_V1 ? " " : "";
	const char *trail = id == CHAT_MISTRAL_V3_TEKKEN ? "" : " ";
	int inside = 0;

	for (size_t i = 0; i < n; i++) {
		const chat_msg *m = &msgs[i];
		if (!inside) {
			puts_(b, lead);
			puts_(b, "[INST]");
			puts_(b, trail);
			inside = 1;
		}
		if (is(m, "system")) {
			content(b, m, 0);
			puts_(b, "\n\n");
		} else if (is(m, "user")) {
			content(b, m, 0);
			puts_(b, lead);
			puts_(b, "[/INST]");
		} else {
			puts_(b, trail);
			content(b, m, id == CHAT_MISTRAL_V3);
			puts_(b, "</s>");
			inside = 0;
		}
	}
}

static void
mistral7(sbuf *b, int id, const chat_msg *msgs, size_t n)
{
	const char *sp = id == CHAT_MISTRAL_V7 ? " " : "";

	for (size_t i = 0; i < n; i++) {
		const chat_msg *m = &msgs[i];
		if (is(m, "system")) {
			puts_(b, "[SYSTEM_PROMPT]");
			puts_(b, sp);
			content(b, m, 0);
			puts_(b, "[/SYSTEM_PROMPT]");
		} else if (is(m, "user")) {
			puts_(b, "[INST]");
			puts_(b, sp);
			content(b, m, 0);
			puts_(b, "[/INST]");
		} else {
			puts_(b, sp);
			content(b, m, 0);
			puts_(b, "</s>");
		}
	}
}

/* gemma has no system turn: system texts (trimmed, joined with nothing
 * between) open the next turn that is not the model's */
static void
gemma(sbuf *b, const chat_msg *msgs, size_t n, int add)
{
	sbuf sys = {0};

	for (size_t i = 0; i < n; i++) {
		const chat_msg *m = &msgs[i];
		int model = is(m, "assistant");
		if (is(m, "system")) {
			content(&sys, m, 1);
			continue;
		}
		puts_(b, "<start_of_turn>");
		if (model)
			puts_(b, "model");
		else
			role(b, m);
		puts_(b, "\n");
		/* as in llama.cpp, a turn whose role is literally "model" gets no system text */
		if (sys.n && !model && !is(m, "model")) {
			put_sbuf(b, &sys);
			puts_(b, "\n\n");
		}
		content(b, m, 1);
		puts_(b, "<end_of_turn>\n");
	}
	if (sys.oom)
		b->oom = 1;
	sbuf_free(&sys);
	if (add)
		puts_(b, "<start_of_turn>model\n");
}

/* orion has no system message either: untrimmed, merged into the next user turn */
static void
orion(sbuf *b, const chat_msg *msgs, size_t n)
{
	sbuf sys = {0};

	for (size_t i = 0; i < n; i++) {
		const chat_msg *m = &msgs[i];
		if (is(m, "system")) {
			content(&sys, m, 0);
		} else if (is(m, "user")) {
			puts_(b, "Human: ");
			if (sys.n) {
				put_sbuf(b, &sys);
				puts_(b, "\n\n");
			}
			content(b, m, 0);
			puts_(b, "\n\nAssistant: </s>");
		} else {
			content(b, m, 0);
			puts_(b, "</s>");
		}
	}
	if (sys.oom)
		b->oom = 1;
	sbuf_free(&sys);
}

/* the families that say system/user/assistant with their own words and drop
 * any other role: text before and after the content of each, and the
 * generation prompt */
typedef struct roles {
	const char *sys[2], *user[2], *ass[2], *gen;
	int trim;
} roles;

static const roles r_vicuna = {{"", "\n\n"}, {"USER: ", "\n"}, {"ASSISTANT: ", "</s>\n"}, "ASSISTANT:", 0};
static const roles r_vicuna_orca = {{"SYSTEM: ", "\n"}, {"USER: ", "\n"}, {"ASSISTANT: ", "</s>\n"}, "ASSISTANT:", 0};
static const roles r_deepseek = {{"", ""}, {"### Instruction:\n", "\n"}, {"### Response:\n", "\n<|EOT|>\n"}, "### Response:\n", 0};
static const roles r_command_r = {
	{"<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>", "<|END_OF_TURN_TOKEN|>"},
	{"<|START_OF_TURN_TOKEN|><|USER_TOKEN|>", "<|END_OF_TURN_TOKEN|>"},
	{"<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", "<|END_OF_TURN_TOKEN|>"},
	"<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", 1};
#define EOS_DS "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"
static const roles r_deepseek2 = {{"", "\n\n"}, {"User: ", "\n\n"}, {"Assistant: ", EOS_DS}, "Assistant:", 0};
static const roles r_deepseek3 = {{"", "\n\n"}, {"<\xef\xbd\x9cUser\xef\xbd\x9c>", ""},
	{"<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>", EOS_DS}, "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>", 0};
static const roles r_exaone3 = {{"[|system|]", "[|endofturn|]\n"}, {"[|user|]", "\n"},
	{"[|assistant|]", "[|endofturn|]\n"}, "[|assistant|]", 1};

static void
by_role(sbuf *b, const roles *r, const chat_msg *msgs, size_t n, int add, int tool)
{
	for (size_t i = 0; i < n; i++) {
		const chat_msg *m = &msgs[i];
		const char *const *w = is(m, "system") ? r->sys : is(m, "user") ? r->user :
			is(m, "assistant") ? r->ass : NULL;
		static const char *const tl[2] = {"[|tool|]", "[|endofturn|]\n"};
		if (!w && tool && is(m, "tool"))
			w = tl;  /* exaone4 */
		if (!w)
			continue;
		puts_(b, w[0]);
		content(b, m, r->trim);
		puts_(b, w[1]);
	}
	if (add)
		puts_(b, r->gen);
}

int
chat_render(int id, const chat_msg *msgs, size_t n, int add_assistant,
	    char **out, size_t *outlen, char *err, size_t errlen)
{
	return chat_render_spans(id, msgs, n, add_assistant, out, outlen, NULL, NULL, err, errlen);
}

int
chat_render_spans(int id, const chat_msg *msgs, size_t n, int add_assistant,
		  char **out, size_t *outlen, chat_span **spans, size_t *nspans,
		  char *err, size_t errlen)
{
	sbuf b = {0};
	size_t i;

	*out = NULL;
	*outlen = 0;
	if (spans) {
		*spans = NULL;
		*nspans = 0;
	}
	if (id < 0 || id >= CHAT_N) {
		snprintf(err, errlen, "unknown chat template (known: %s)", chat_known());
		return -1;
	}
	if (n && !msgs) {
		snprintf(err, errlen, "no messages");
		return -1;
	}
	switch (id) {
	case CHAT_SMOLLM:
		/* SmolLM2's Jinja template: the default system turn comes
		 * before the first message when it is not a system message */
		if (n && !is(&msgs[0], "system"))
			puts_(&b, "<|im_start|>system\n" SMOLLM_SYSTEM "<|im_end|>\n");
		/* fall through */
	case CHAT_CHATML:
		simple(&b, msgs, n, add_assistant, "<|im_start|>", "\n", "<|im_end|>\n",
		       "<|im_start|>assistant\n", 0);
		break;
	case CHAT_LLAMA2: case CHAT_LLAMA2_SYS: case CHAT_LLAMA2_SYS_BOS: case CHAT_LLAMA2_SYS_STRIP:
		llama2(&b, id, msgs, n);  /* no generation prompt in llama.cpp */
		break;
	case CHAT_MISTRAL_V1: case CHAT_MISTRAL_V3: case CHAT_MISTRAL_V3_TEKKEN:
		mistral(&b, id, msgs, n);
		break;
	case CHAT_MISTRAL_V7: case CHAT_MISTRAL_V7_TEKKEN:
		mistral7(&b, id, msgs, n);
		break;
	case CHAT_LLAMA3:
		simple(&b, msgs, n, add_assistant, "<|start_header_id|>", "<|end_header_id|>\n\n",
		       "<|eot_id|>", "<|start_header_id|>assistant<|end_header_id|>\n\n", 1);
		break;
	case CHAT_LLAMA4:
		simple(&b, msgs, n, add_assistant, "<|header_start|>", "<|header_end|>\n\n",
		       "<|eot|>", "<|header_start|>assistant<|header_end|>\n\n", 1);
		break;
	case CHAT_GEMMA:
		gemma(&b, msgs, n, add_assistant);
		break;
	case CHAT_PHI3:
		simple(&b, msgs, n, add_assistant, "<|", "|>\n", "<|end|>\n", "<|assistant|>\n", 0);
		break;
	case CHAT_PHI4:
		simple(&b, msgs, n, add_assistant, "<|im_start|>", "<|im_sep|>", "<|im_end|>",
		       "<|im_start|>assistant<|im_sep|>", 0);
		break;
	case CHAT_FALCON3:
		simple(&b, msgs, n, add_assistant, "<|", "|>\n", "\n", "<|assistant|>\n", 0);
		break;
	case CHAT_ZEPHYR:
		simple(&b, msgs, n, add_assistant, "<|", "|>\n", "<|endoftext|>\n", "<|assistant|>\n", 0);
		break;
	case CHAT_MONARCH:
		/* <s> inside the history, except before the first message */
		for (i = 0; i < n; i++) {
			if (i)
				puts_(&b, "<s>");
			role(&b, &msgs[i]);
			puts_(&b, "\n");
			content(&b, &msgs[i], 0);
			puts_(&b, "</s>\n");
		}
		if (add_assistant)
			puts_(&b, "<s>assistant\n");
		break;
	case CHAT_ORION:
		orion(&b, msgs, n);
		break;
	case CHAT_OPENCHAT:
		for (i = 0; i < n; i++) {
			const chat_msg *m = &msgs[i];
			if (!is(m, "system")) {
				puts_(&b, "GPT4 Correct ");
				if (m->role_len) {
					char c = m->role[0];
					if (c >= 'a' && c <= 'z')
						c = (char)(c - 'a' + 'A');
					put(&b, &c, 1);
					put(&b, m->role + 1, m->role_len - 1);
				}
				puts_(&b, ": ");
			}
			content(&b, m, 0);
			puts_(&b, "<|end_of_turn|>");
		}
		if (add_assistant)
			puts_(&b, "GPT4 Correct Assistant:");
		break;
	case CHAT_VICUNA:
		by_role(&b, &r_vicuna, msgs, n, add_assistant, 0);
		break;
	case CHAT_VICUNA_ORCA:
		by_role(&b, &r_vicuna_orca, msgs, n, add_assistant, 0);
		break;
	case CHAT_DEEPSEEK:
		by_role(&b, &r_deepseek, msgs, n, add_assistant, 0);
		break;
	case CHAT_DEEPSEEK2:
		by_role(&b, &r_deepseek2, msgs, n, add_assistant, 0);
		break;
	case CHAT_DEEPSEEK3:
		by_role(&b, &r_deepseek3, msgs, n, add_assistant, 0);
		break;
	case CHAT_COMMAND_R:
		by_role(&b, &r_command_r, msgs, n, add_assistant, 0);
		break;
	case CHAT_EXAONE3:
		by_role(&b, &r_exaone3, msgs, n, add_assistant, 0);
		break;
	case CHAT_EXAONE4:
		by_role(&b, &r_exaone3, msgs, n, add_assistant, 1);
		break;
	case CHAT_CHATGLM3:
		puts_(&b, "[gMASK]sop");
		simple(&b, msgs, n, add_assistant, "<|", "|>\n ", "", "<|assistant|>", 0);
		break;
	case CHAT_CHATGLM4:
		puts_(&b, "[gMASK]<sop>");
		simple(&b, msgs, n, add_assistant, "<|", "|>\n", "", "<|assistant|>\n", 0);
		break;
	case CHAT_GLMEDGE:
		simple(&b, msgs, n, add_assistant, "<|", "|>\n", "", "<|assistant|>", 0);
		break;
	case CHAT_MINICPM:
		for (i = 0; i < n; i++) {
			int user = is(&msgs[i], "user");
			if (user)
				puts_(&b, "<\xe7\x94\xa8\xe6\x88\xb7>");  /* <用户> */
			content(&b, &msgs[i], 1);
			if (user)
				puts_(&b, "<AI>");
		}
		break;
	case CHAT_MEGREZ:
		simple(&b, msgs, n, add_assistant, "<|role_start|>", "<|role_end|>", "<|turn_end|>",
		       "<|role_start|>assistant<|role_end|>", 0);
		break;
	case CHAT_SMOLVLM:
		puts_(&b, "<|im_start|>");  /* as BOS; the rest is not chatml */
		for (i = 0; i < n; i++) {
			const chat_msg *m = &msgs[i];
			if (is(m, "system")) {
				content(&b, m, 0);
				puts_(&b, "\n\n");
				continue;
			}
			puts_(&b, is(m, "user") ? "User: " : "Assistant: ");
			content(&b, m, 0);
			puts_(&b, "<end_of_utterance>\n");
		}
		if (add_assistant)
			puts_(&b, "Assistant:");
		break;
	}
	if (!b.oom && !b.p && !(b.p = malloc(1)))
		b.oom = 1;
	if (b.oom) {
		sbuf_free(&b);
		snprintf(err, errlen, "unable to render chat: out of memory");
		return -1;
	}
	b.p[b.n] = 0;
	*out = b.p;
	*outlen = b.n;
	if (spans) {
		*spans = b.sp;
		*nspans = b.nsp;
	} else {
		free(b.sp);
	}
	return 0;
}
