#!/usr/bin/env python3
"""Clients of gateway for t/7001-gateway.bats: the official openai client
(max_retries=0, so every error surfaces at once) and raw HTTP. Each
subcommand prints "ok ..." per check passed and exits 1 at the first
failure, saying what differs.

  oai.py basic URL         completions and chat, streamed and not: the same text
  oai.py n URL             n=2, a list of prompts; choice i gets seed+i
  oai.py seed URL          the same seed the same text at temperature 1
  oai.py stop URL          stop (string, list), picked from an earlier output
  oai.py logprobs URL      completions logprobs=2, chat logprobs + top_logprobs=2
  oai.py usage URL         include_usage, totals, prompt_tokens = /tokenize's count
  oai.py errors URL        400s and 404 as the client's own error classes
  oai.py expect URL --want STATUS[:CODE]...
                           one small request per --want, in turn
  oai.py tokenize URL      /tokenize and /detokenize in both shapes, /v1/models
  oai.py many URL --clients N --tokens T [--gone G --gone-tokens T2]
                           N streams at once; G of them close after one chunk
  oai.py metrics URL --n N N completions, then /metrics against their usage
  oai.py sse FILE [--headers H] [--chat] [--choices K] [--usage T] [--finish F]
                           an SSE body (curl -N) byte for byte
  oai.py errbody FILE [--type T] [--code C] [--param P]
                           an error body: exactly {"error": {message, type,
                           param, code}}; C "null" is null; P a field the
                           param or the message names

URL is the gateway's base (http://127.0.0.1:PORT); --key the bearer key,
--model the served name (tiny).
"""
import argparse
import http.client
import json
import socket
import sys
import threading
import time
from urllib.parse import urlsplit

PROMPT = "The capital of France is"
CHAT = [{"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello"}]
IGNORE_EOS = {"ignore_eos": True}
# vLLM's e2e latency buckets (t/metrics/check.py REQ)
E2E_BUCKETS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
               120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0]


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def ok(what):
    print("ok", what, flush=True)


# ------------------------------------------------------------------ plumbing

def client(a, key=None):
    import openai
    return openai.OpenAI(base_url=a.url + "/v1", api_key=key or a.key, max_retries=0,
                         timeout=a.timeout)


def hostport(url):
    u = urlsplit(url)
    return u.hostname, u.port


def request(a, method, path, body=None, key=None, raw=None):
    """one request on its own connection: (status, headers, body bytes);
    body is sent as JSON, raw as it is"""
    host, port = hostport(a.url)
    conn = http.client.HTTPConnection(host, port, timeout=a.timeout)
    hdr = {}
    if body is not None:
        raw = json.dumps(body).encode()
    if raw is not None:
        hdr["Content-Type"] = "application/json"
    key = key or a.key
    if key:
        hdr["Authorization"] = "Bearer " + key
    conn.request(method, path, body=raw, headers=hdr)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, r.headers, data


def http_json(a, method, path, body=None):
    st, _, data = request(a, method, path, body)
    check(st == 200, f"{method} {path}: status {st}: {data[:300]!r}")
    return json.loads(data)


def tokenize_count(a, text):
    return http_json(a, "POST", "/tokenize", {"prompt": text})["count"]


def error_shape(obj, where):
    """obj is exactly {"error": {"message", "type", "param", "code"}}"""
    check(isinstance(obj, dict) and set(obj) == {"error"}, f"{where}: not {{\"error\": ...}}: {obj!r}")
    e = obj["error"]
    check(isinstance(e, dict) and set(e) == {"message", "type", "param", "code"},
          f"{where}: error keys {sorted(e) if isinstance(e, dict) else e!r}")
    check(isinstance(e["message"], str) and e["message"], f"{where}: empty message")
    check(isinstance(e["type"], str) and e["type"], f"{where}: type {e['type']!r}")
    check(e["param"] is None or isinstance(e["param"], str), f"{where}: param {e['param']!r}")
    return e


def names_field(e, field):
    return e.get("param") == field or field in (e.get("message") or "")


def api_error(fn, status, where, code=None, field=None, etype=None):
    """fn() must raise the openai error class of status; returns its body"""
    import openai
    cls = {400: openai.BadRequestError, 401: openai.AuthenticationError,
           404: openai.NotFoundError, 429: openai.RateLimitError}.get(status, openai.InternalServerError)
    try:
        fn()
    except openai.APIStatusError as e:
        check(isinstance(e, cls), f"{where}: {type(e).__name__} (status {e.status_code}), not {cls.__name__}")
        check(e.status_code == status, f"{where}: status {e.status_code}, not {status}")
        body = error_shape(e.response.json(), where)
        if code is not None:
            check(body["code"] == code, f"{where}: code {body['code']!r}, not {code!r}")
        if etype is not None:
            check(body["type"] == etype, f"{where}: type {body['type']!r}, not {etype!r}")
        if field is not None:
            check(names_field(body, field), f"{where}: {field} named neither in param nor message: {body}")
        ok(f"{where}: {cls.__name__} {status} {body['code']}")
        return body
    raise Fail(f"{where}: no error, expected {status}")


def stream_choices(stream, chat=False):
    """{index: (text, finish_reason, [choice chunks])}, the chunks"""
    out, chunks = {}, []
    for ch in stream:
        chunks.append(ch)
        for c in ch.choices:
            text, fin, cs = out.get(c.index, ("", None, []))
            piece = (c.delta.content or "") if chat else c.text
            check(fin is None, f"choice {c.index}: a chunk after its finish_reason")
            out[c.index] = (text + piece, c.finish_reason, cs + [c])
    return out, chunks


# ------------------------------------------------------------------ the checks

def basic(a):
    c, m = client(a), a.model
    kw = dict(model=m, prompt=PROMPT, max_tokens=24, temperature=0, seed=5, extra_body=IGNORE_EOS)
    r = c.completions.create(**kw)
    check(r.object == "text_completion", f"object {r.object!r}")
    check(r.id.startswith("cmpl-"), f"id {r.id!r}")
    check(r.model == m, f"model {r.model!r}")
    check(isinstance(r.created, int) and r.created > 1600000000, f"created {r.created!r}")
    check(len(r.choices) == 1 and r.choices[0].index == 0, f"choices {r.choices!r}")
    one = r.choices[0]
    check(one.finish_reason == "length", f"finish_reason {one.finish_reason!r}")
    check(one.logprobs is None, f"logprobs {one.logprobs!r} without asking")
    check(r.usage.completion_tokens == 24, f"completion_tokens {r.usage.completion_tokens}")
    check(one.text != "", "empty text")
    ok(f"completion: {one.text!r}")
    got, chunks = stream_choices(c.completions.create(stream=True, **kw))
    check(set(got) == {0}, f"streamed choices {sorted(got)}")
    check(all(ch.object == "text_completion" for ch in chunks), "a chunk's object is not text_completion")
    check(len({ch.id for ch in chunks}) == 1, "chunks of one stream carry different ids")
    check(got[0][0] == one.text, f"streamed {got[0][0]!r} != {one.text!r}")
    check(got[0][1] == "length", f"streamed finish_reason {got[0][1]!r}")
    ok("completion streamed: the same text")

    # completions default to OpenAI's 16 tokens
    r = c.completions.create(model=m, prompt=PROMPT, temperature=0, extra_body=IGNORE_EOS)
    check(r.usage.completion_tokens == 16, f"default max_tokens gave {r.usage.completion_tokens}")
    ok("completion: max_tokens defaults to 16")

    ckw = dict(model=m, max_tokens=24, temperature=0, seed=5, extra_body=IGNORE_EOS)
    r = c.chat.completions.create(messages=CHAT, **ckw)
    check(r.object == "chat.completion", f"object {r.object!r}")
    check(r.id.startswith("chatcmpl-"), f"id {r.id!r}")
    check(r.model == m, f"model {r.model!r}")
    check(len(r.choices) == 1 and r.choices[0].index == 0, f"choices {r.choices!r}")
    msg = r.choices[0].message
    check(msg.role == "assistant", f"role {msg.role!r}")
    check(isinstance(msg.content, str) and msg.content != "", f"content {msg.content!r}")
    check(r.choices[0].finish_reason == "length", f"finish_reason {r.choices[0].finish_reason!r}")
    check(r.usage.completion_tokens == 24, f"chat completion_tokens {r.usage.completion_tokens}")
    ok(f"chat: {msg.content!r}")
    got, chunks = stream_choices(c.chat.completions.create(messages=CHAT, stream=True, **ckw), chat=True)
    check(set(got) == {0}, f"streamed choices {sorted(got)}")
    check(all(ch.object == "chat.completion.chunk" for ch in chunks), "a chunk's object is not chat.completion.chunk")
    check(all(ch.id.startswith("chatcmpl-") for ch in chunks), "a chunk's id is not chatcmpl-...")
    check(got[0][2][0].delta.role == "assistant", f"first delta {got[0][2][0].delta!r}")
    check(got[0][0] == msg.content, f"streamed {got[0][0]!r} != {msg.content!r}")
    check(got[0][1] == "length", f"streamed finish_reason {got[0][1]!r}")
    ok("chat streamed: the same text, the first delta's role assistant")

    # content as text parts, developer as system: the same prompt
    parts = [{"role": "developer", "content": [{"type": "text", "text": CHAT[0]["content"]}]},
             {"role": "user", "content": [{"type": "text", "text": CHAT[1]["content"]}]}]
    r2 = c.chat.completions.create(messages=parts, **ckw)
    check(r2.usage.prompt_tokens == r.usage.prompt_tokens,
          f"text parts and developer: {r2.usage.prompt_tokens} prompt tokens, not {r.usage.prompt_tokens}")
    check(r2.choices[0].message.content == msg.content, "text parts and developer: another text")
    ok("chat: text parts and the developer role read as plain content and system")

    r = c.chat.completions.create(model=m, messages=CHAT, max_tokens=5, max_completion_tokens=7,
                                  temperature=0, extra_body=IGNORE_EOS)
    check(r.usage.completion_tokens == 7, f"max_completion_tokens 7 gave {r.usage.completion_tokens}")
    ok("chat: max_completion_tokens wins over max_tokens")


def ascii_of(text):
    return "".join(ch for ch in text if ch.isascii())


def n_choices(a):
    c, m = client(a), a.model
    kw = dict(model=m, prompt=PROMPT, max_tokens=16, temperature=1, extra_body=IGNORE_EOS)
    r = c.completions.create(n=2, seed=11, **kw)
    check(sorted(ch.index for ch in r.choices) == [0, 1], f"indices {[ch.index for ch in r.choices]}")
    text = {ch.index: ch.text for ch in r.choices}
    check(all(ch.finish_reason == "length" for ch in r.choices), "a choice did not finish length")
    ok("completions n=2: indices 0 and 1")
    # choice i gets seed+i
    for i in (0, 1):
        one = c.completions.create(n=1, seed=11 + i, **kw).choices[0].text
        check(one == text[i], f"choice {i} {text[i]!r} != seed {11 + i} alone {one!r}")
    ok("choice i is seed+i alone")
    got, _ = stream_choices(c.completions.create(n=2, seed=11, stream=True, **kw))
    check(sorted(got) == [0, 1], f"streamed indices {sorted(got)}")
    for i in (0, 1):
        # sampled bytes need not be UTF-8: compare what is plain ASCII,
        # which no decoding of the bytes around it may change
        check(ascii_of(got[i][0]) == ascii_of(text[i]), f"streamed choice {i} {got[i][0]!r} != {text[i]!r}")
        check(got[i][1] == "length", f"streamed choice {i} finish_reason {got[i][1]!r}")
    ok("completions n=2 streamed: the same two texts")

    # a list of prompts: index = prompt*n + i
    r = c.completions.create(prompt=[PROMPT, "Hello"], n=2, seed=11,
                             **{k: v for k, v in kw.items() if k != "prompt"})
    check(sorted(ch.index for ch in r.choices) == [0, 1, 2, 3], f"indices {[ch.index for ch in r.choices]}")
    ok("two prompts, n=2: indices 0 to 3")

    r = c.chat.completions.create(model=m, messages=CHAT, n=2, seed=3, max_tokens=8, temperature=1,
                                  extra_body=IGNORE_EOS)
    check(sorted(ch.index for ch in r.choices) == [0, 1], f"chat indices {[ch.index for ch in r.choices]}")
    check(all(ch.message.role == "assistant" for ch in r.choices), "chat n=2: a role is not assistant")
    ok("chat n=2: indices 0 and 1")


def seed(a):
    c, m = client(a), a.model
    kw = dict(model=m, prompt=PROMPT, max_tokens=32, temperature=1, extra_body=IGNORE_EOS)
    x = c.completions.create(seed=1234, **kw).choices[0].text
    y = c.completions.create(seed=1234, **kw).choices[0].text
    z = c.completions.create(seed=4321, **kw).choices[0].text
    check(x == y, f"seed 1234 twice: {x!r} != {y!r}")
    check(x != z, f"seeds 1234 and 4321 gave the same {x!r}")
    ok("completions: the same seed the same text, another seed another")
    ckw = dict(model=m, messages=CHAT, max_tokens=32, temperature=1, extra_body=IGNORE_EOS)
    x = c.chat.completions.create(seed=1234, **ckw).choices[0].message.content
    y = c.chat.completions.create(seed=1234, **ckw).choices[0].message.content
    z = c.chat.completions.create(seed=4321, **ckw).choices[0].message.content
    check(x == y, f"chat seed 1234 twice: {x!r} != {y!r}")
    check(x != z, f"chat seeds 1234 and 4321 gave the same {x!r}")
    ok("chat: the same seed the same text, another seed another")


def pick_stop(make):
    """(kw, full text, stop): a printable character first seen at index >= 2
    of an unconstrained output, so a stop on it must trigger; greedy first,
    then seeded samples"""
    for temp, sd in [(0, None)] + [(1, k) for k in range(1, 9)]:
        kw = {"temperature": temp} if sd is None else {"temperature": temp, "seed": sd}
        full = make(kw, None)[0]
        for i in range(2, len(full)):
            ch = full[i]
            if ch.isascii() and ch.isprintable() and not ch.isspace() and full.index(ch) == i:
                return kw, full, ch
    raise Fail("no output with a printable character to stop on")


def prefix_of(part, full):
    # a cut inside a multi-byte character may end the shorter text in U+FFFD
    return full.startswith(part) or (part.endswith("\ufffd") and full.startswith(part[:-1]))


def stop(a):
    c, m = client(a), a.model

    def comp(kw, stop, stream=False):
        args = dict(model=m, prompt=PROMPT, max_tokens=24, extra_body=IGNORE_EOS, **kw)
        if stop is not None:
            args["stop"] = stop
        if stream:
            got, _ = stream_choices(c.completions.create(stream=True, **args))
            return got[0][0], got[0][1]
        r = c.completions.create(**args)
        return r.choices[0].text, r.choices[0].finish_reason

    def chat(kw, stop, stream=False):
        args = dict(model=m, messages=CHAT, max_tokens=24, extra_body=IGNORE_EOS, **kw)
        if stop is not None:
            args["stop"] = stop
        if stream:
            got, _ = stream_choices(c.chat.completions.create(stream=True, **args), chat=True)
            return got[0][0], got[0][1]
        r = c.chat.completions.create(**args)
        return r.choices[0].message.content, r.choices[0].finish_reason

    for name, make in (("completions", comp), ("chat", chat)):
        kw, full, s = pick_stop(make)
        ok(f"{name}: {full!r} unconstrained ({kw}); stop on {s!r}")
        for form in (s, ["QQQQ-never", s]):
            for stream in (False, True):
                what = f"{name} stop={form!r}{' streamed' if stream else ''}"
                text, fin = make(kw, form, stream)
                check(fin == "stop", f"{what}: finish_reason {fin!r}")
                check(s not in text, f"{what}: {text!r} holds the stop string")
                check(prefix_of(text, full), f"{what}: {text!r} is not a prefix of {full!r}")
                ok(f"{what}: {text!r}, finish_reason stop")


def logprobs(a):
    c, m = client(a), a.model
    r = c.completions.create(model=m, prompt=PROMPT, max_tokens=8, temperature=0, logprobs=2,
                             extra_body=IGNORE_EOS)
    lp = r.choices[0].logprobs
    n = r.usage.completion_tokens
    check(n == 8, f"completion_tokens {n}")
    check(lp is not None, "no logprobs")
    check(len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == n,
          f"lengths tokens {len(lp.tokens)} token_logprobs {len(lp.token_logprobs)} "
          f"top_logprobs {len(lp.top_logprobs)}, {n} tokens")
    # the tokens make the text where it is plain ASCII (a byte of a split
    # character may be spelled "bytes:\\x.." or U+FFFD)
    if r.choices[0].text.isascii():
        check("".join(lp.tokens) == r.choices[0].text, f"tokens {lp.tokens!r} do not make the text")
    for t, v, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        check(isinstance(t, str), f"token {t!r}")
        check(isinstance(v, (int, float)) and v <= 0, f"token_logprob {v!r}")
        # a dict by token text: two ids of the same text would make one entry
        check(isinstance(top, dict) and 1 <= len(top) <= 2, f"top_logprobs {top!r}")
        check(all(isinstance(x, (int, float)) and x <= 0 for x in top.values()), f"top_logprobs {top!r}")
        # greedy: the token taken is the most likely
        check(v >= max(top.values()) - 1e-4, f"greedy token {t!r} {v} below {top!r}")
    ok(f"completions logprobs=2: {n} tokens, token_logprobs, top_logprobs of <= 2, all <= 0")

    r = c.chat.completions.create(model=m, messages=CHAT, max_tokens=8, temperature=0, logprobs=True,
                                  top_logprobs=2, extra_body=IGNORE_EOS)
    lp = r.choices[0].logprobs
    check(lp is not None and lp.content is not None, "chat: no logprobs.content")
    check(len(lp.content) == r.usage.completion_tokens == 8,
          f"chat: {len(lp.content)} entries, {r.usage.completion_tokens} tokens")
    for e in lp.content:
        check(isinstance(e.token, str), f"chat token {e.token!r}")
        check(isinstance(e.logprob, (int, float)) and e.logprob <= 0, f"chat logprob {e.logprob!r}")
        check(isinstance(e.bytes, list) and all(isinstance(b, int) and 0 <= b < 256 for b in e.bytes),
              f"chat bytes {e.bytes!r}")
        if "\ufffd" not in e.token:
            check(bytes(e.bytes) == e.token.encode(), f"chat bytes {e.bytes!r} are not {e.token!r}")
        check(1 <= len(e.top_logprobs) <= 2, f"chat top_logprobs {e.top_logprobs!r}")
        for t in e.top_logprobs:
            check(isinstance(t.token, str) and isinstance(t.logprob, (int, float)) and t.logprob <= 0,
                  f"chat top entry {t!r}")
            check(isinstance(t.bytes, list), f"chat top entry bytes {t.bytes!r}")
        check(e.logprob >= max(t.logprob for t in e.top_logprobs) - 1e-4, f"chat greedy {e!r}")
    ok("chat logprobs, top_logprobs=2: token, logprob, bytes, top_logprobs per token")


def usage(a):
    c, m = client(a), a.model
    N = 20
    for name, make in (
            ("completions", lambda **k: c.completions.create(prompt=PROMPT, **k)),
            ("chat", lambda **k: c.chat.completions.create(messages=CHAT, **k))):
        chunks = list(make(model=m, max_tokens=N, temperature=0, stream=True,
                           stream_options={"include_usage": True}, extra_body=IGNORE_EOS))
        last = chunks[-1]
        check(last.choices == [], f"{name}: the last chunk has choices {last.choices!r}")
        u = last.usage
        check(u is not None, f"{name}: the last chunk has no usage")
        check(u.prompt_tokens > 0, f"{name}: prompt_tokens {u.prompt_tokens}")
        check(u.completion_tokens == N, f"{name}: completion_tokens {u.completion_tokens}, not {N}")
        check(u.total_tokens == u.prompt_tokens + u.completion_tokens, f"{name}: total_tokens {u}")
        check(all(ch.choices and ch.usage is None for ch in chunks[:-1]),
              f"{name}: a chunk before the last has no choices or a usage")
        fins = [x.finish_reason for ch in chunks[:-1] for x in ch.choices if x.finish_reason]
        check(fins == ["length"], f"{name}: finish_reasons {fins}")
        ok(f"{name} include_usage: the last chunk has no choices and usage {u.prompt_tokens}+{N}")

    r = c.completions.create(model=m, prompt=PROMPT, max_tokens=5, temperature=0, extra_body=IGNORE_EOS)
    u = r.usage
    check(u.total_tokens == u.prompt_tokens + u.completion_tokens, f"total_tokens {u}")
    want = tokenize_count(a, PROMPT)
    check(u.prompt_tokens == want, f"prompt_tokens {u.prompt_tokens}, /tokenize counts {want}")
    ok(f"usage: total = prompt + completion; prompt_tokens {want} as /tokenize counts")

    ids = http_json(a, "POST", "/tokenize", {"prompt": PROMPT})["tokens"]
    r2 = c.completions.create(model=m, prompt=ids, max_tokens=5, temperature=0, extra_body=IGNORE_EOS)
    check(r2.usage.prompt_tokens == len(ids), f"prompt as ids: {r2.usage.prompt_tokens} prompt tokens")
    check(r2.choices[0].text == r.choices[0].text, "prompt as ids: another text than as a string")
    ok("prompt as token ids: the same prompt and text")
    r = c.chat.completions.create(model=m, messages=CHAT, max_tokens=5, temperature=0, extra_body=IGNORE_EOS)
    u = r.usage
    check(u.prompt_tokens > 0 and u.total_tokens == u.prompt_tokens + u.completion_tokens, f"chat usage {u}")
    ok("chat usage: total = prompt + completion")


def errors(a):
    import openai
    c, m = client(a), a.model
    comp = dict(model=m, prompt=PROMPT, max_tokens=2)
    chat = dict(model=m, messages=CHAT, max_tokens=2)
    api_error(lambda: c.completions.create(**comp, temperature="hot"), 400, "temperature \"hot\"",
              field="temperature", etype="invalid_request_error")
    api_error(lambda: c.completions.create(**comp, n=0), 400, "n=0", field="n")
    api_error(lambda: c.completions.create(**comp, echo=True, logprobs=1), 400, "echo with logprobs")
    api_error(lambda: c.completions.create(**comp, stream_options={"include_usage": True}), 400,
              "stream_options without stream", field="stream_options")
    api_error(lambda: c.completions.create(**comp, suffix="x"), 400, "suffix", field="suffix")
    api_error(lambda: c.completions.create(**comp, logit_bias={"50": 1}), 400, "logit_bias",
              field="logit_bias")
    api_error(lambda: c.chat.completions.create(**chat, tools=[
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]),
        400, "tools", field="tools", etype="invalid_request_error")
    api_error(lambda: c.chat.completions.create(**chat, response_format={"type": "json_object"}), 400,
              "response_format json_object", field="response_format")
    api_error(lambda: c.chat.completions.create(model=m, max_tokens=2, messages=[
        {"role": "tool", "content": "x", "tool_call_id": "1"}]), 400, "role tool")
    api_error(lambda: c.chat.completions.create(model=m, max_tokens=2, messages=[
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]),
        400, "an image part")
    api_error(lambda: c.completions.create(**dict(comp, model="nope")), 404, "unknown model",
              code="model_not_found")
    api_error(lambda: c.chat.completions.create(**dict(chat, model="nope"), stream=True), 404,
              "unknown model, chat streamed", code="model_not_found")
    # the defaults of refused fields, and unknown fields, pass
    c.completions.create(**comp, logit_bias={}, extra_body={"frobnicate": 1})
    c.chat.completions.create(**chat, response_format={"type": "text"})
    ok("logit_bias {}, response_format text and an unknown field: accepted")
    check(issubclass(openai.InternalServerError, openai.APIStatusError), "openai's classes changed")


def expect(a):
    """one small request per --want STATUS[:CODE]; 200 must succeed"""
    c = client(a)
    for i, w in enumerate(a.want):
        status, _, code = w.partition(":")
        status = int(status)
        if a.chat:
            fn = lambda: c.chat.completions.create(model=a.model, messages=CHAT, max_tokens=1,
                                                   stream=a.stream)
        else:
            fn = lambda: c.completions.create(model=a.model, prompt=PROMPT, max_tokens=1, stream=a.stream)
        where = f"request {i + 1}"
        if status == 200:
            r = fn()
            if a.stream:
                r = list(r)
            ok(f"{where}: 200")
        else:
            api_error(fn, status, where, code=code or None,
                      etype="service_unavailable" if status == 503 else None)


def tokenize(a):
    text = "Hello world, hello tokens"
    t1 = http_json(a, "POST", "/tokenize", {"content": text})
    t2 = http_json(a, "POST", "/tokenize", {"prompt": text})
    for t in (t1, t2):
        check(isinstance(t.get("tokens"), list) and t["tokens"], f"tokens {t!r}")
        check(all(isinstance(x, int) for x in t["tokens"]), f"tokens {t['tokens']!r}")
        check(t.get("count") == len(t["tokens"]), f"count {t.get('count')} of {len(t['tokens'])}")
        check(isinstance(t.get("max_model_len"), int) and t["max_model_len"] > 0, f"max_model_len {t!r}")
    check(t1["tokens"] == t2["tokens"], f"content {t1['tokens']} != prompt {t2['tokens']}")
    ok(f"/tokenize content and prompt: {t1['tokens']}")
    d = http_json(a, "POST", "/detokenize", {"tokens": t1["tokens"]})
    check(d.get("content") == text and d.get("prompt") == text, f"/detokenize {d!r}")
    ok("/detokenize: content and prompt give the text back")
    p = http_json(a, "POST", "/tokenize", {"content": text, "with_pieces": True})
    check([x["id"] for x in p["tokens"]] == t1["tokens"], f"with_pieces ids {p['tokens']!r}")
    check("".join(x["piece"] for x in p["tokens"]) == text, f"with_pieces pieces {p['tokens']!r}")
    ok("/tokenize with_pieces: ids and pieces")
    msg = http_json(a, "POST", "/tokenize", {"messages": CHAT})
    # the chat template adds tokens around the contents
    check(msg["count"] > tokenize_count(a, CHAT[0]["content"] + CHAT[1]["content"]),
          f"messages: {msg['count']} tokens")
    ok(f"/tokenize messages: {msg['count']} tokens")
    st, _, body = request(a, "POST", "/detokenize", {"tokens": [1 << 30]})
    check(st == 400, f"/detokenize of an id out of the vocabulary: {st}")
    error_shape(json.loads(body), "/detokenize out of the vocabulary")
    ok("/detokenize of an id out of the vocabulary: 400")
    c = client(a)
    ids = [x.id for x in c.models.list()]
    check(ids == [a.model], f"models.list: {ids}")
    ok(f"models.list: {ids}")


# ------------------------------------------------------------------ many clients

def raw_stream(a, body):
    """sends a streaming completion on a socket of its own; returns the
    socket once the status line and the first data record came"""
    host, port = hostport(a.url)
    data = json.dumps(body).encode()
    s = socket.create_connection((host, port), timeout=a.timeout)
    hdr = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n")
    if a.key:
        hdr += f"Authorization: Bearer {a.key}\r\n"
    s.sendall(hdr.encode() + b"\r\n" + data)
    buf = b""
    while True:
        b = s.recv(65536)
        check(b, f"closed before a data record: {buf[:300]!r}")
        buf += b
        head, sep, rest = buf.partition(b"\r\n\r\n")
        if sep:
            check(head.startswith(b"HTTP/1.1 200"), "status line %r" % head.split(b"\r\n")[0])
            if b"data: " in rest and b"\n\n" in rest.split(b"data: ", 1)[1]:
                return s


def many(a):
    c, n, g, T = client(a), a.clients, a.gone, a.tokens
    gone = set(range(0, n, n // g)[:g]) if g else set()
    # without goners, every stream waits for all the others' first chunk:
    # all n are open at once
    barrier = threading.Barrier(n) if not gone else None
    lock = threading.Lock()
    res = {"completed": 0, "gone": 0}
    bad = []

    def failed(k, what):
        with lock:
            bad.append((k, what))
        if barrier:
            barrier.abort()

    def normal(k):
        try:
            s = c.completions.create(model=a.model, prompt=f"client {k} says", max_tokens=T, temperature=0,
                                     stream=True, stream_options={"include_usage": True},
                                     extra_body=IGNORE_EOS)
            it = iter(s)
            chunks = [next(it)]
            if barrier:
                barrier.wait(timeout=a.timeout)
            chunks += list(it)
            fins = [x.finish_reason for ch in chunks for x in ch.choices if x.finish_reason]
            u = chunks[-1].usage
            if fins != ["length"] or u is None or u.completion_tokens != T or chunks[-1].choices:
                return failed(k, f"finish {fins} usage {u}")
            with lock:
                res["completed"] += 1
        except Exception as e:
            failed(k, repr(e))

    def goner(k):
        try:
            s = raw_stream(a, {"model": a.model, "prompt": f"client {k} says", "max_tokens": a.gone_tokens,
                               "temperature": 0, "stream": True, "ignore_eos": True})
            s.close()
            with lock:
                res["gone"] += 1
        except Exception as e:
            failed(k, repr(e))

    ts = [threading.Thread(target=goner if k in gone else normal, args=(k,)) for k in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print("completed", res["completed"])
    print("gone", res["gone"])
    print("wrong", len(bad))
    if bad:
        print("first_wrong", bad[0])
    check(not bad and res["completed"] == n - len(gone) and res["gone"] == len(gone),
          f"{len(bad)} clients went wrong")


# ------------------------------------------------------------------ metrics

def metrics(a):
    from prometheus_client.parser import text_string_to_metric_families
    c = client(a)
    prompt = comp = 0
    for i in range(a.n):
        want = 3 + 2 * i
        kw = dict(model=a.model, prompt=PROMPT, max_tokens=want, temperature=0, extra_body=IGNORE_EOS)
        if i % 2:
            u = list(c.completions.create(stream=True, stream_options={"include_usage": True}, **kw))[-1].usage
        else:
            u = c.completions.create(**kw).usage
        check(u.completion_tokens == want, f"completion {i}: {u.completion_tokens} tokens, not {want}")
        prompt += u.prompt_tokens
        comp += u.completion_tokens
    ok(f"{a.n} completions: {prompt} prompt and {comp} generated tokens")
    st, _, _ = request(a, "GET", "/nowhere")
    check(st == 404, f"GET /nowhere: {st}")

    def figures():
        st, _, body = request(a, "GET", "/metrics")
        check(st == 200, f"/metrics: {st}")
        s = {}
        for fam in text_string_to_metric_families(body.decode()):
            for x in fam.samples:
                s.setdefault(x.name, []).append((x.labels, x.value))
        return s

    def total(s, name, **labels):
        return sum(v for lb, v in s.get(name, []) if all(lb.get(k) == w for k, w in labels.items()))

    def wrong(s):
        out = []
        want = [("sluice:http_requests_total", dict(path="/v1/completions", status="200"), a.n),
                ("sluice:http_requests_total", dict(method="POST", path="/v1/completions", status="200"), a.n),
                ("sluice:http_requests_total", dict(path="other", status="404"), 1),
                ("sluice:generation_tokens_total", {}, comp),
                ("sluice:prompt_tokens_total", {}, prompt),
                ("sluice:request_success_total", dict(finished_reason="length"), a.n),
                ("sluice:e2e_request_latency_seconds_count", {}, a.n),
                ("sluice:num_requests_running", {}, 0)]
        for name, lb, v in want:
            got = total(s, name, **lb)
            if got != v:
                out.append(f"{name}{lb} {got}, not {v}")
        # a request's first token, streamed or not, may be timed or not
        ttft = total(s, "sluice:time_to_first_token_seconds_count")
        if not 1 <= ttft <= a.n:
            out.append(f"time_to_first_token_seconds_count {ttft}")
        if total(s, "sluice:http_request_duration_seconds_count") < a.n:
            out.append("http_request_duration_seconds_count below %d" % a.n)
        les = sorted({float(lb["le"]) for lb, _ in s.get("sluice:http_request_duration_seconds_bucket", [])})
        if les != E2E_BUCKETS + [float("inf")]:
            out.append(f"http_request_duration_seconds buckets {les}")
        return out

    # the figures of a request may land just after its answer
    t0 = time.time()
    while True:
        w = wrong(figures())
        if not w:
            break
        check(time.time() - t0 < 5, "/metrics: " + "; ".join(w))
        time.sleep(0.1)
    ok("/metrics: requests by path and status, tokens, successes, histograms")


# ------------------------------------------------------------------ bodies

def sse(a):
    raw = open(a.file, "rb").read()
    if a.headers:
        ct = [ln.split(":", 1)[1].strip() for ln in open(a.headers, errors="replace").read().splitlines()
              if ln.lower().startswith("content-type:")]
        check(ct and ct[-1].startswith("text/event-stream"), f"Content-Type {ct}")
        ok(f"Content-Type {ct[-1]}")
    check(raw.endswith(b"data: [DONE]\n\n"), f"does not end with data: [DONE]: ...{raw[-80:]!r}")
    recs = raw.split(b"\n\n")
    check(recs[-1] == b"", "trailing bytes")
    recs = recs[:-1]
    for r in recs:
        check(r.startswith(b"data: ") and b"\n" not in r and b"\r" not in r, f"not one data line: {r[:200]!r}")
    check(recs.count(b"data: [DONE]") == 1, "[DONE] more than once")
    objs = []
    for r in recs[:-1]:
        try:
            objs.append(json.loads(r[6:]))
        except ValueError:
            raise Fail(f"not JSON: {r[:200]!r}")
    check(objs and all(isinstance(o, dict) and "error" not in o for o in objs), "an error or not an object")
    ok(f"{len(recs)} records 'data: ...\\n\\n', the last data: [DONE], every one JSON")
    obj = "chat.completion.chunk" if a.chat else "text_completion"
    check(all(o.get("object") == obj for o in objs), f"an object is not {obj}")
    check(len({o.get("id") for o in objs}) == 1, "more than one id")
    if a.usage is not None:
        last = objs.pop()
        check(last.get("choices") == [], f"the usage chunk has choices {last.get('choices')!r}")
        u = last.get("usage") or {}
        check(u.get("completion_tokens") == a.usage * a.choices, f"usage {u}")
        check(u.get("prompt_tokens", 0) > 0 and u.get("total_tokens") == u["prompt_tokens"] + u["completion_tokens"],
              f"usage {u}")
        check(all("usage" in o and o["usage"] is None for o in objs), "a chunk without \"usage\": null")
        ok(f"include_usage: \"usage\": null on every chunk, then choices [] and {u}")
    per = {}
    for o in objs:
        check(o.get("choices"), f"a chunk without choices: {o}")
        for ch in o["choices"]:
            per.setdefault(ch["index"], []).append(ch)
    check(sorted(per) == list(range(a.choices)), f"indices {sorted(per)}")
    for i, chs in per.items():
        check("finish_reason" in chs[-1] and chs[-1]["finish_reason"] is not None, f"choice {i}: no finish_reason")
        if a.finish:
            check(chs[-1]["finish_reason"] == a.finish, f"choice {i}: finish_reason {chs[-1]['finish_reason']}")
        check(all(ch.get("finish_reason") is None for ch in chs[:-1]), f"choice {i}: finish_reason before the end")
        if a.chat:
            first = chs[0]["delta"]
            check(first.get("role") == "assistant" and first.get("content", "") == "",
                  f"choice {i}: first delta {first}")
            check(chs[-1]["delta"] == {}, f"choice {i}: last delta {chs[-1]['delta']}")
            check(all(isinstance(ch["delta"].get("content"), str) and "role" not in ch["delta"]
                      for ch in chs[1:-1]), f"choice {i}: a middle delta without content")
        else:
            check(all(isinstance(ch.get("text"), str) for ch in chs), f"choice {i}: a chunk without text")
    ok(f"{a.choices} choice(s), each ending with its finish_reason"
       + ("; the first delta role assistant, the last {}" if a.chat else ""))


def errbody(a):
    try:
        obj = json.load(open(a.file, "rb"))
    except ValueError:
        raise Fail(f"not JSON: {open(a.file, 'rb').read()[:300]!r}")
    e = error_shape(obj, a.file)
    if a.type:
        check(e["type"] == a.type, f"type {e['type']!r}, not {a.type!r}")
    if a.code:
        want = None if a.code == "null" else a.code
        check(e["code"] == want, f"code {e['code']!r}, not {want!r}")
    if a.param:
        check(names_field(e, a.param), f"{a.param} named neither in param nor message: {e}")
    ok(f"error {e['type']} {e['code']} {e['param']}")


def main():
    p = argparse.ArgumentParser(description="openai-client checks of gateway")
    sub = p.add_subparsers(dest="cmd", required=True)

    def url_cmd(name, fn):
        s = sub.add_parser(name)
        s.add_argument("url")
        s.add_argument("--key", default="sk-none")
        s.add_argument("--model", default="tiny")
        s.add_argument("--timeout", type=float, default=60)
        s.set_defaults(fn=fn)
        return s

    for name, fn in (("basic", basic), ("n", n_choices), ("seed", seed), ("stop", stop),
                     ("logprobs", logprobs), ("usage", usage), ("errors", errors), ("tokenize", tokenize)):
        url_cmd(name, fn)
    s = url_cmd("expect", expect)
    s.add_argument("--want", action="append", required=True)
    s.add_argument("--chat", action="store_true")
    s.add_argument("--stream", action="store_true")
    s = url_cmd("many", many)
    s.add_argument("--clients", type=int, required=True)
    s.add_argument("--tokens", type=int, required=True)
    s.add_argument("--gone", type=int, default=0)
    s.add_argument("--gone-tokens", type=int, default=4000)
    s = url_cmd("metrics", metrics)
    s.add_argument("--n", type=int, required=True)
    s = sub.add_parser("sse")
    s.add_argument("file")
    s.add_argument("--headers")
    s.add_argument("--chat", action="store_true")
    s.add_argument("--choices", type=int, default=1)
    s.add_argument("--usage", type=int)
    s.add_argument("--finish")
    s.set_defaults(fn=sse)
    s = sub.add_parser("errbody")
    s.add_argument("file")
    s.add_argument("--type")
    s.add_argument("--code")
    s.add_argument("--param")
    s.set_defaults(fn=errbody)

    a = p.parse_args()
    try:
        a.fn(a)
    except Fail as e:
        print(f"oai.py {a.cmd}: FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception as e:
        print(f"oai.py {a.cmd}: FAIL: unexpected {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
