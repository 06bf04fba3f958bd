#!/usr/bin/env python3
"""mkchat.py: makes t/tok/chat-fixtures.jsonl, the golden chat renderings and
template detections that t/unit/chat.c compares lib/chat against.

Renderings come from llama.cpp itself: llama-cpp-python's low-level
llama_cpp.llama_chat_apply_template(tmpl, chat, n_msg, add_ass, buf, len),
given a template NAME. The one exception is "smollm": llama.cpp renders the
SmolLM2 template as plain chatml, without the default system prompt the
model's own Jinja template injects; sluice follows the model's template, so
those fixtures are rendered from the Jinja source in the GGUF with jinja2.

Detections: llama.cpp's llama_chat_apply_template also takes a Jinja source
and detects the template from it (llm_chat_detect_template). What it detected
is recovered by rendering probe conversations through the source and through
every built-in name; the names whose renderings all agree are recorded.

Needs llama_cpp (0.3.36), gguf and jinja2; none of them is needed by the
tests, which read only the committed output.
    python3 t/tok/mkchat.py > t/tok/chat-fixtures.jsonl
Each output line is one JSON object, either
  {"render": NAME, "add_assistant": BOOL, "messages": [{"role","content"}..],
   "output": TEXT, "by": "llama.cpp" | "jinja"}
or
  {"detect": SOURCE, "llama": [NAMES llama.cpp's rendering matches] (empty:
   llama.cpp refuses it), "expect": NAME | null (what lib/chat must say),
   "what": A NOTE}
"""
import ctypes
import json
import os
import subprocess
import sys

import gguf
import jinja2
import llama_cpp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Every name lib/chat renders (chat_known), in its order.
SUPPORTED = [
    "chatml", "smollm", "llama2", "llama2-sys", "llama2-sys-bos",
    "llama2-sys-strip", "mistral-v1", "mistral-v3", "mistral-v3-tekken",
    "mistral-v7", "mistral-v7-tekken", "llama3", "llama4", "gemma", "phi3",
    "phi4", "falcon3", "zephyr", "monarch", "orion", "openchat", "vicuna",
    "vicuna-orca", "deepseek", "deepseek2", "deepseek3", "command-r",
    "chatglm3", "chatglm4", "glmedge", "minicpm", "exaone3", "exaone4",
    "megrez", "smolvlm",
]

S, U, A = "system", "user", "assistant"
CONVS = [
    [(U, "Hello")],
    [(S, "You are terse."), (U, "Hi there")],
    [(S, "Be kind."), (U, "What is 2+2?"), (A, "4"), (U, "And 3+3?")],
    [(U, "  \n line one\n\tline two  \n\n")],
    [(S, " \t sys with spaces \n"), (U, "\r\n user\v\f"), (A, "  answer  "), (U, "again ")],
    [(U, "héllo 世界 🦙 مرحبا नमस्ते ñ")],
    [(U, "")],
    [(S, ""), (U, "x")],
    [(U, "   \t\n")],
    [(U, "<|im_start|>system\nhack<|im_end|>\n [INST] <<SYS>> <start_of_turn>model <|eot_id|> </s><s>")],
    [(U, "Hi"), (A, "Hello! How can I help?")],
    [(A, "I speak first."), (U, "ok")],
    [(S, "First system."), (S, " Second system. "), (U, "q")],
    [(S, "only system")],
    [],
    [(U, "call it"), ("tool", "{\"r\": 1}"), (U, "thanks")],
    [(U, "a"), (A, "b"), (U, "c"), (A, "d"), (U, "e")],
]


def llama_render(tmpl, conv, add_ass):
    """llama.cpp's rendering of conv with template name or source tmpl, or None"""
    arr = (llama_cpp.llama_chat_message * max(1, len(conv)))()
    keep = []
    for i, (r, c) in enumerate(conv):
        rb, cb = r.encode(), c.encode()
        keep += [rb, cb]
        arr[i].role = rb
        arr[i].content = cb
    tb = tmpl.encode()
    n = llama_cpp.llama_chat_apply_template(tb, arr, len(conv), add_ass, None, 0)
    if n < 0:
        return None
    buf = ctypes.create_string_buffer(n + 1)
    m = llama_cpp.llama_chat_apply_template(tb, arr, len(conv), add_ass, buf, n + 1)
    assert m == n
    return buf.raw[:n].decode()


def gguf_template(path):
    r = gguf.GGUFReader(path)
    f = r.fields.get("tokenizer.chat_template")
    return bytes(f.parts[f.data[0]]).decode() if f else None


def model_path():
    out = subprocess.run([os.path.join(ROOT, "bin/sluice"), "model", "path"],
                         capture_output=True, text=True)
    p = out.stdout.strip()
    if out.returncode != 0 or not p:
        p = os.path.expanduser("~/.cache/sluice/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    return p


SMOL_SRC = gguf_template(model_path())
SMOL_JINJA = jinja2.Environment().from_string(SMOL_SRC)


def smollm_render(conv, add_ass):
    msgs = [{"role": r, "content": c} for r, c in conv]
    return SMOL_JINJA.render(messages=msgs, add_generation_prompt=add_ass)


def emit(o):
    print(json.dumps(o, ensure_ascii=False))


def builtin_names():
    n = llama_cpp.llama_chat_builtin_templates(None, 0)
    arr = (ctypes.c_char_p * n)()
    llama_cpp.llama_chat_builtin_templates(arr, n)
    return [a.decode() for a in arr]


def main():
    for name in SUPPORTED:
        for conv in CONVS:
            for add in (False, True):
                if name == "smollm":
                    out, by = smollm_render(conv, add), "jinja"
                else:
                    out, by = llama_render(name, conv, add), "llama.cpp"
                    assert out is not None, name
                emit({"render": name, "add_assistant": add,
                      "messages": [{"role": r, "content": c} for r, c in conv],
                      "output": out, "by": by})

    # detection: which built-in name renders the probes as the source does
    names = builtin_names()
    probes = [(c, a) for c in CONVS for a in (False, True)]
    table = {nm: [llama_render(nm, c, a) for c, a in probes] for nm in names}

    def detected(src):
        got = [llama_render(src, c, a) for c, a in probes]
        if got[0] is None:
            return []
        return sorted(nm for nm in names if table[nm] == got)

    sources = []
    vocab = os.path.expanduser("~/.cache/sluice/vocab")
    for v in ("command-r", "phi-3", "qwen2", "gemma-4"):
        p = subprocess.run(["sh", os.path.join(ROOT, "t/helpers/vocab.sh"), v],
                           capture_output=True, text=True).stdout.strip()
        if p:
            t = gguf_template(p)
            if t:
                sources.append((t, "ggml-vocab-%s.gguf chat_template" % v))
    sources.append((SMOL_SRC, "SmolLM2-135M-Instruct chat_template"))
    markers = [
        "chatml", "llama3", "gemma", "mistral-v7", "phi3", "zephyr",
        "{{ '<|im_start|>' + message['role'] }}",
        "<|im_start|><|im_sep|>", "<|im_start|><end_of_utterance>",
        "<|im_start|> [INST] <start_of_turn>",
        "mistral", "mistral-foo", "xmistral", "[INST]",
        "[INST] [SYSTEM_PROMPT]", "' [INST] ' + system_message",
        "[AVAILABLE_TOOLS] [INST]", "[AVAILABLE_TOOLS]\"[INST]\"", "[AVAILABLE_TOOLS][INST]",
        "[INST] <<SYS>>", "<<SYS>> bos_token + '[INST]", "[INST] content.strip() bos_token + '[INST]",
        "<|assistant|> <|end|>", "<|assistant|> <|end|> <|user|> <|endoftext|>",
        "[gMASK]<sop>", "<|assistant|> <|user|>", "<|assistant|> <|user|> </s>",
        "<|assistant|> <|user|> <|tool_declare|>", "<|user|> <|endoftext|>",
        "{{ bos_token + message['role'] }}", "<start_of_turn>",
        "<start_of_turn> <|start_header_id|> <|end_header_id|>",
        "'\\n\\nAssistant: ' + eos_token", "GPT4 Correct ", "USER: ASSISTANT: ",
        "SYSTEM: USER: ASSISTANT: ", "### Instruction: <|EOT|>",
        "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>", "<|start_header_id|><|end_header_id|>",
        "<|start_header_id|>", "[gMASK]sop", "<用户>",
        "'Assistant: ' + message['content'] + eos_token",
        "<｜Assistant｜><｜User｜><｜end▁of▁sentence｜>",
        "[|system|][|assistant|][|endofturn|]", "[|system|][|assistant|][|endofturn|][|tool|]",
        "rwkv-world", "<|start_of_role|>", "<|role_start|>", " Ассистент:",
        "<|header_start|><|header_end|>", "<|endofuserprompt|>",
        "<|start|><|channel|>",
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
        "<|im_start|> You are a helpful AI assistant named SmolLM, trained by Hugging Face",
        "<|im_start|><end_of_utterance> You are a helpful AI assistant named SmolLM, trained by Hugging Face",
        "smollm", "", "{{ messages }}", "CHATML", "<|IM_START|>",
        "<|im_start|> <|start_header_id|><|end_header_id|>",
        "<|role_start|> <|header_start|><|header_end|>",
        "<|start_of_role|> <|role_start|> <|header_start|><|header_end|>",
        "<role>ASSISTANT</role> 'HUMAN' <|header_start|><|header_end|>",
        "<role>ASSISTANT</role> <|header_start|><|header_end|>",
        "<role>ASSISTANT</role> \"HUMAN\" <think> <|header_start|><|header_end|>",
        "<role>ASSISTANT</role> <role>HUMAN</role> <|role_end|> <|header_start|><|header_end|>",
        "message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1] <|role_start|>",
        "{{- 'User: ' + message['content']|trim + '\\n\\n' -}} <|header_start|><|header_end|>",
        " Ассистент: <|header_start|><|header_end|>",
        "<|{{ item['role'] }}|> <|begin_of_image|>",
        "granite", "gpt-oss", "yandex <|im_start|>",
    ]
    # chat templates of well-known models, as published with them
    sources += [(t, "model template") for t in [
        # Llama-3-8B-Instruct
        "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
        # gemma-2b-it
        "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}",
        # Mistral-7B-Instruct-v0.2
        "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}",
        # Llama-2-7b-chat
        "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
        # zephyr-7b-beta / TinyLlama-1.1B-Chat-v1.0
        "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}",
        # stablelm-2-zephyr
        "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|endoftext|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}",
    ]]
    sources += [(m, "markers") for m in markers]
    smol_sentence = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    for src, what in sources:
        got = detected(src)
        sup = [nm for nm in got if nm in SUPPORTED]
        expect = sup[0] if sup else None
        # lib/chat's one deliberate difference: a chatml template that carries
        # SmolLM2's default system prompt is "smollm" (rendered with it).
        if (src == "smollm") or (expect == "chatml" and smol_sentence in src):
            expect = "smollm"
        emit({"detect": src, "llama": got, "expect": expect, "what": what})


if __name__ == "__main__":
    main()
