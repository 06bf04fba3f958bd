#!/usr/bin/env python3
"""openai-client.py: the official OpenAI Python client (pip install openai)
talking to sluice: `sluice serve` (see serve-openai.sh), or gateway in front
of batchd and infer-cpu. Three calls: a chat completion, the same streamed
chunk by chunk, and a plain completion.

    OPENAI_BASE_URL   the server (default http://127.0.0.1:8080/v1)
    OPENAI_API_KEY    its key (default "sk-none": a server on a loopback
                      address needs none)
"""
import json
import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1"),
    api_key=os.environ.get("OPENAI_API_KEY", "sk-none"),
)

# The server serves one model: ask for its name rather than guessing.
model = client.models.list().data[0].id
print("model:", model)

question = [{"role": "user", "content": "What is the capital of France?"}]

# 1. A chat completion: one answer, once it is whole. temperature 0 is greedy.
r = client.chat.completions.create(model=model, messages=question, max_tokens=32, temperature=0)
print("chat: finish=%s completion_tokens=%d text=%s"
      % (r.choices[0].finish_reason, r.usage.completion_tokens, json.dumps(r.choices[0].message.content, ensure_ascii=False)))

# 2. The same, streamed: Server-Sent Events, one chunk per new piece of text.
# include_usage adds a last chunk with the token counts (and no choices).
stream = client.chat.completions.create(model=model, messages=question, max_tokens=32,
                                        temperature=0, stream=True,
                                        stream_options={"include_usage": True})
pieces, finish, usage = [], None, None
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            pieces.append(choice.delta.content)
        if choice.finish_reason:
            finish = choice.finish_reason
print("chat (streamed, %d chunks): finish=%s completion_tokens=%d text=%s"
      % (len(pieces), finish, usage.completion_tokens, json.dumps("".join(pieces), ensure_ascii=False)))

# 3. A plain completion: the model continues the prompt, no chat template.
r = client.completions.create(model=model, prompt="The three primary colours are",
                              max_tokens=16, temperature=0)
print("completion: finish=%s completion_tokens=%d text=%s"
      % (r.choices[0].finish_reason, r.usage.completion_tokens, json.dumps(r.choices[0].text, ensure_ascii=False)))
