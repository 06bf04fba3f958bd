/* chat: chat templates. Detects the template in tokenizer.chat_template the
 * way llama.cpp does and renders messages into the prompt text the model was
 * trained on (chatml, smollm, llama3, llama2/mistral, gemma, phi3, zephyr). */
#ifndef SLUICE_CHAT_H
#define SLUICE_CHAT_H

#include <stddef.h>

typedef struct chat_msg {
	const char *role;
	size_t role_len;
	const char *content;
	size_t content_len;
} chat_msg;

/* A template id from its name ("chatml", "llama3", ...) or -1. */
int chat_by_name(const char *name);
/* The template id a Jinja template's text is detected as, or -1 (unknown).
 * An exact name is taken first, then llama.cpp's marker tests in its order;
 * -1 also for the families llama.cpp knows that we do not render (granite,
 * rwkv-world, ...). A chatml template carrying SmolLM2's default system
 * prompt is "smollm" (llama.cpp says chatml and drops that prompt). */
int chat_detect(const char *jinja);
const char *chat_name(int id);
/* "chatml, smollm, llama3, ..." for error messages and usage texts */
const char *chat_known(void);
/* Renders msgs into a malloc'd NUL-terminated string (*out, *outlen).
 * add_assistant: append the generation prompt. 0 ok, -1 with err. */
int chat_render(int id, const chat_msg *msgs, size_t n, int add_assistant,
		char **out, size_t *outlen, char *err, size_t errlen);

/* Where a message's content lies in the rendered text: out[off..off+len). */
typedef struct chat_span {
	size_t off, len;
} chat_span;
/* chat_render, and the spans of the text that came from message contents
 * (as trimmed by the template), in order, apart, merged where two touch:
 * a malloc'd array in *spans (NULL when there is none), *nspans of them.
 * Everything else is the template's own text. The text is byte for byte
 * what chat_render gives. */
int chat_render_spans(int id, const chat_msg *msgs, size_t n, int add_assistant,
		      char **out, size_t *outlen, chat_span **spans, size_t *nspans,
		      char *err, size_t errlen);

#endif
