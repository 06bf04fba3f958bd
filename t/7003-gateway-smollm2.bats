#!/usr/bin/env bats
# gateway on the default model (SmolLM2-135M-Instruct Q4_1) with the official
# openai client: the chat template, the tokenizer and the text of tokens are
# the gateway's own, so its answer must be the engine's own answer to the
# same conversation, token for token; and a greedy completion knows its capital.

load helpers/lib

setup_file() {
	export PATH=$SLUICE_BIN:$SLUICE_T/helpers:$PATH
	MODEL=$(sluice model path 2>/dev/null) || { sluice model fetch >/dev/null && MODEL=$(sluice model path); }
	export MODEL
}

teardown() {
	local p
	for p in ${GP:-} ${BP:-} ${EP:-}; do
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
}

@test "gateway + SmolLM2: chat through the openai client is the engine's own answer; streamed the same; usage right" {
	scratch
	infer-cpu -q -m "$MODEL" -l "unix:$T/e" -d 3 3>"$T/eready" 2>>"$T/err" &
	EP=$!
	ready "$T/eready" 400
	batchd -q -l "unix:$T/b" -u "unix:$T/e" -d 3 3>"$T/bready" 2>>"$T/err" &
	BP=$!
	ready "$T/bready" 400
	gateway -q -u "unix:$T/b" -m "$MODEL" -l tcp:127.0.0.1:0 -d 3 3>"$T/gready" 2>"$T/gerr" &
	GP=$!
	ready "$T/gready" 400
	port=$(sed -n 's|^gateway: listening on http://[^ ]*:\([0-9][0-9]*\).*|\1|p' "$T/gerr")
	# the engine's own answer: the same conversation straight to infer-cpu,
	# which applies the template and tokenizes in-process
	echo '{"id":"x","messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":24,"temperature":0}' |
		sluice cat -m | sluice cat -u "unix:$T/e" | sluice cat -j >"$T/direct"
	run python3 - "http://127.0.0.1:$port" "$T/direct" "$MODEL" <<'PY'
import json, sys, urllib.request
from openai import OpenAI
url, direct, model = sys.argv[1], sys.argv[2], sys.argv[3]
name = model.rsplit("/", 1)[-1].removesuffix(".gguf")
c = OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
msgs = [{"role": "user", "content": "What is the capital of France?"}]
r = c.chat.completions.create(model=name, messages=msgs, max_tokens=24, temperature=0)
text = r.choices[0].message.content
print("answer:", repr(text), r.choices[0].finish_reason, r.usage)
p = c.completions.create(model=name, prompt="The capital of France is", max_tokens=8, temperature=0)
print("completion:", repr(p.choices[0].text))
assert "Paris" in p.choices[0].text, p.choices[0].text
ev = [json.loads(l) for l in open(direct)]
want = [t for e in ev for t in e.get("tokens", [])]
fin = ev[-1]
assert r.usage.completion_tokens == len(want), (r.usage, len(want))
assert r.usage.prompt_tokens == fin["usage"]["prompt_tokens"], (r.usage, fin["usage"])
assert r.choices[0].finish_reason == fin["finish"], fin["finish"]
# the engine's tokens, turned into text by the gateway's /detokenize, are the answer
req = urllib.request.Request(url + "/detokenize", json.dumps({"tokens": want}).encode(),
                             {"Content-Type": "application/json"})
assert json.load(urllib.request.urlopen(req))["content"] == text
s = c.chat.completions.create(model=name, messages=msgs, max_tokens=24, temperature=0, stream=True,
                              stream_options={"include_usage": True})
parts, usage = [], None
for ch in s:
    if ch.choices and ch.choices[0].delta.content:
        parts.append(ch.choices[0].delta.content)
    if ch.usage:
        usage = ch.usage
assert "".join(parts) == text, ("".join(parts), text)
assert usage.completion_tokens == r.usage.completion_tokens and usage.prompt_tokens == r.usage.prompt_tokens
print("ok: the engine's answer, streamed and not, usage", usage.prompt_tokens, usage.completion_tokens)
PY
	echo "$output"
	[ "$status" -eq 0 ]
}
