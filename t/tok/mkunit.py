#!/usr/bin/env python3
# mkunit.py: adversarial strings for lib/tok (t/tok/unit-input.txt, one per
# line, escaped: \n \r \t \\ \xHH) and the ids llama.cpp gives for them
# (t/tok/unit-expect-NAME.txt, one line each, made with llama-cpp-python
# 0.3.36, Llama.tokenize(add_bos=True, special=True), vocab_only) for SmolLM2
# and llama.cpp's vocabulary files llama-spm, llama-bpe, qwen2 and gpt-2.
# Also unit-eog-NAME.txt: the ids llama_vocab_is_eog accepts.
# The suite never imports llama_cpp; t/1010-tok-vocabs.bats compares.
#   python3 t/tok/mkunit.py
import os
import random
import subprocess

import llama_cpp
from llama_cpp import Llama

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))

parts = ["Hello", "world", " ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\n\n", " \n ", "\t\t", "'s", "'S", "'ll",
         "'LL", "'re", "'Ve", "'d", "'t", "'m", "\u2019s", "123", "4567890", "1", "\u0663\u0664\u0665", "\u00bd",
         "\u2167", "!", "?!", "...", "(", ")", "{}", "[]", "<", ">", "<|im_start|>", "<|im_end|>", "<|endoftext|>",
         "<s>", "</s>", "<|eot_id|>", "<|begin_of_text|>", "<reponame>", "caf\u00e9", "cafe\u0301", "na\u00efve",
         "\u00c9COLE", "\u4f60\u597d", "\u4e16\u754c", "\u3053\u3093\u306b\u3061\u306f", "\u0645\u0631\u062d\u0628\u0627",
         "\u0928\u092e\u0938\u094d\u0924\u0947", "\U0001F600", "\U0001F468\u200d\U0001F469\u200d\U0001F467",
         "\u00a0", "\u3000", "\u2028", "\u0085", "\u200b", "\ufeff", "$", "+", "=", "^", "~", "|", "`", "@", "#",
         "def f(x):", "    return x", "int main() {", "a+b=c", "x<=y", "1,000.50", "2024-01-31", "12:30",
         "http://example.com/a?b=c", "\u0130stanbul", "\u017fs", "\U0001D400", "\U000E0001", "\U0010FFFD", "\u0378"]
raw = [b"\xff", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\x80", b"\xc0\x80", b"\xed\xa0\x80", b"\xf0\x80\x80\xaf",
       b"\xfe\xff", b"\x00", b"\x01\x1f", b"\x7f"]


def esc(b):
    out = []
    for c in b:
        if c == 0x5c:
            out.append("\\\\")
        elif c == 10:
            out.append("\\n")
        elif c == 13:
            out.append("\\r")
        elif c == 9:
            out.append("\\t")
        elif c < 0x20 or c >= 0x7f:
            out.append("\\x%02x" % c)
        else:
            out.append(chr(c))
    return "".join(out)


rng = random.Random(1234)
cases = [p.encode() for p in parts] + raw
for _ in range(400):
    k = rng.randint(2, 8)
    b = b""
    for _ in range(k):
        b += rng.choice(raw) if rng.random() < 0.08 else rng.choice(parts).encode()
    cases.append(b)
cases += [b"Hello world! 123", b"\n", b"  multiple   spaces", b"The capital of France is", b"Hello, we can use",
          b" " * 40 + b"x", b"\n" * 7, b"9" * 50, b"a" * 300, b"\t \t \n \r\n  x"]

with open(os.path.join(here, "unit-input.txt"), "w") as f:
    for c in cases:
        f.write(esc(c) + "\n")

vocabs = {"smollm2": os.path.expanduser("~/.cache/sluice/models/SmolLM2-135M-Instruct.Q4_1.gguf")}
for name in ["llama-spm", "llama-bpe", "qwen2", "gpt-2"]:
    vocabs[name] = subprocess.check_output([os.path.join(root, "t/helpers/vocab.sh"), name], text=True).strip()
for name, path in vocabs.items():
    m = Llama(path, vocab_only=True, verbose=False)
    with open(os.path.join(here, "unit-expect-%s.txt" % name), "w") as f:
        for c in cases:
            f.write(" ".join(str(i) for i in m.tokenize(c, add_bos=True, special=True)) + "\n")
    v = m._model.vocab
    eog = [i for i in range(m.n_vocab()) if llama_cpp.llama_vocab_is_eog(v, i)]
    with open(os.path.join(here, "unit-eog-%s.txt" % name), "w") as f:
        f.write(" ".join(map(str, eog)) + "\n")
