#!/usr/bin/env python3
# Makes the llama.cpp reference fixtures of t/infer/ (greedy continuations,
# first-step logits, perplexity, tiny-model logits) with llama-cpp-python.
# Run by hand, not by the test suite: the suite only reads what this writes.
#
# usage: python3 t/infer/mkfixtures.py [--model GGUF] [--only greedy,ppl,tiny]
# (run from the repository root; needs bin/tokenize, bin/sluice, bin/quantize
# built, and `pip install llama-cpp-python==0.3.36 numpy`)

import argparse
import ctypes
import hashlib
import json
import os
import subprocess
import sys
import tempfile

# ggml's OpenMP threads spin while waiting; on a busy 2-core machine that
# makes a decode 30 times slower. Passive waiting changes no result.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numpy as np
import llama_cpp
from llama_cpp import Llama

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.join(ROOT, "bin")
DEFAULT_MODEL = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
    "sluice", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")

N_GEN = 32
N_THREADS = 2
# prompts whose first-step logits are saved: 1 token, short plain, the
# long one (406 tokens), Japanese, a chat one, a multi-turn chat
LOGIT_IDS = ["p04", "p01", "p31", "p10", "p41", "p59"]
PPL_CTX = 512
# tiny random models: the same shape for every type
SYNTH = ["model", "synth", "--dim", "256", "--layers", "2", "--heads", "4",
	 "--kv-heads", "2", "--ff", "512", "--ctx", "256", "--seed", "7"]
TINY_PROMPT = [1, 3, 17, 42, 100, 150, 200, 255, 268, 7, 64, 128]


def tokenize_ours(model, reqs):
	"""Our bin/tokenize over JSON lines; returns the token lists in order."""
	inp = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in reqs)
	out = subprocess.run([os.path.join(BIN, "tokenize"), "-m", model,
			      "-i", "json", "-o", "json"], input=inp.encode(),
			     capture_output=True, check=True).stdout
	res = [json.loads(l) for l in out.decode().splitlines() if l.strip()]
	assert [r["id"] for r in res] == [r["id"] for r in reqs]
	return [r["tokens"] for r in res]


def clear_memory(llm):
	"""Empty the KV cache: every sequence starts from nothing."""
	llm.reset()
	mem = llama_cpp.llama_get_memory(llm._ctx.ctx)
	llama_cpp.llama_memory_clear(mem, True)


def last_logits(llm):
	"""The logits of the last evaluated position (logits_all=False)."""
	p = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
	return np.ctypeslib.as_array(p, shape=(llm.n_vocab(),)).astype(np.float32)


def greedy_run(llm, toks):
	"""Our own greedy loop: eval the prompt (one token per step, see
	do_greedy), argmax (lowest id on ties, as llama.cpp's greedy sampler),
	eval that token, 32 times."""
	clear_memory(llm)
	llm.eval(toks)
	first = last_logits(llm)
	out = []
	margins = []
	lg = first
	for _ in range(N_GEN):
		t = int(np.argmax(lg))
		out.append(t)
		top2 = np.partition(lg, -2)[-2:]
		margins.append(float(top2[1] - top2[0]))
		llm.eval([t])
		lg = last_logits(llm)
	return out, first, margins


def greedy_generate(llm, toks):
	"""The same with llama-cpp-python's generate() and its greedy sampler,
	as a cross-check (n_tokens is 0 after the clear: no prefix reuse)."""
	clear_memory(llm)
	out = []
	for t in llm.generate(toks, temp=0.0, top_k=1, top_p=1.0, min_p=0.0,
			      repeat_penalty=1.0, reset=True):
		out.append(int(t))
		if len(out) == N_GEN:
			break
	return out


def do_greedy(model):
	reqs = [json.loads(l) for l in open(os.path.join(HERE, "prompts.jsonl"))]
	toks = tokenize_ours(model, reqs)

	# our ids against llama.cpp's tokenizer
	voc = Llama(model_path=model, vocab_only=True, verbose=False)
	tmpl = voc.metadata.get("tokenizer.chat_template")
	fmt = llama_cpp.llama_chat_format.Jinja2ChatFormatter(
		template=tmpl, eos_token="<|im_end|>", bos_token="<|im_start|>",
		add_generation_prompt=True)
	agree = {"plain": [0, 0], "chat": [0, 0]}
	for r, t in zip(reqs, toks):
		if "prompt" in r:
			kind = "plain"
			ref = voc.tokenize(r["prompt"].encode(), add_bos=True,
					   special=True)
		else:
			kind = "chat"
			text = fmt(messages=r["messages"]).prompt
			ref = voc.tokenize(text.encode(), add_bos=True,
					   special=True)
		agree[kind][1] += 1
		if ref == t:
			agree[kind][0] += 1
		else:
			print("tokenize differs:", r["id"], t, ref, file=sys.stderr)
	del voc

	# n_batch 1: every step of llama.cpp holds one token, prompt included.
	# llama.cpp sums its attention products in one order for a step of one
	# token (ggml_vec_dot_f16) and in another for a step of two or more
	# (tinyBLAS), so its answers depend on how the prompt is cut into
	# steps; sluice uses the one-token order for every step (so that its
	# answers never depend on the batch), and equals llama.cpp bit for bit
	# when llama.cpp runs one token per step.
	llm = Llama(model_path=model, n_ctx=2048, n_threads=N_THREADS,
		    n_threads_batch=N_THREADS, n_batch=1, n_ubatch=1, logits_all=False,
		    seed=0, verbose=False)
	eog = [i for i in range(llm.n_vocab())
	       if llama_cpp.llama_vocab_is_eog(llm._model.vocab, i)]
	lines = []
	eog_first = {}
	cross = 0
	for r, t in zip(reqs, toks):
		g, first, margins = greedy_run(llm, t)
		g2 = greedy_generate(llm, t)
		cross += g == g2
		if g != g2:
			print("generate() differs:", r["id"], file=sys.stderr)
		# the smallest top-1/top-2 logit gap over the 32 steps, and its
		# step: where a near-tie may flip under other rounding
		k = int(np.argmin(margins))
		d = {"id": r["id"], "tokens": t, "greedy": g,
		     "min_margin": round(margins[k], 6), "min_margin_step": k}
		if r["id"] in LOGIT_IDS:
			name = "logits-%s.f32" % r["id"]
			first.astype("<f4").tofile(os.path.join(HERE, name))
			d["logits_file"] = name
		lines.append(d)
		for i, x in enumerate(g):
			if x in eog:
				eog_first[r["id"]] = i
				break
	with open(os.path.join(HERE, "greedy.jsonl"), "w") as f:
		for d in lines:
			f.write(json.dumps(d, separators=(",", ":")) + "\n")
	summary = {
		"tokenize_agree": agree,
		"generate_crosscheck_agree": [cross, len(reqs)],
		"eog_tokens": eog,
		"first_eog_index": eog_first,
	}
	print(json.dumps(summary, indent=1))
	return summary


def log_softmax64(x):
	x = x.astype(np.float64)
	m = x.max(axis=-1, keepdims=True)
	return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def do_ppl(model):
	text = open(os.path.join(HERE, "ppl.txt"), encoding="utf-8").read()
	# the whole text as one prompt: SmolLM2 has add_bos_token false, and
	# --no-special keeps any <|...|> in the text plain
	out = subprocess.run([os.path.join(BIN, "tokenize"), "-m", model,
			      "-i", "json", "-o", "json", "--no-special"],
			     input=(json.dumps({"id": "ppl", "prompt": text})
				    + "\n").encode(),
			     capture_output=True, check=True).stdout
	ids = json.loads(out)["tokens"]
	llm = Llama(model_path=model, n_ctx=PPL_CTX, n_threads=N_THREADS,
		    n_threads_batch=N_THREADS, n_batch=PPL_CTX,
		    n_ubatch=PPL_CTX, logits_all=True, seed=0, verbose=False)
	ref = llm.tokenize(text.encode(), add_bos=True, special=False)
	print("ppl tokens: ours %d, llama.cpp %d, equal %s"
	      % (len(ids), len(ref), ids == ref))
	with open(os.path.join(HERE, "ppl.ids"), "w") as f:
		f.write("".join("%d\n" % i for i in ids))
	nchunks = len(ids) // PPL_CTX
	per = []
	for c in range(nchunks):
		chunk = ids[c * PPL_CTX:(c + 1) * PPL_CTX]
		clear_memory(llm)
		llm.eval(chunk)
		lp = log_softmax64(np.array(llm.scores[:PPL_CTX], copy=True))
		nll = -sum(lp[p - 1, chunk[p]] for p in range(1, PPL_CTX))
		per.append(float(nll))
	scored = nchunks * (PPL_CTX - 1)
	s = float(sum(per))
	res = {"tokens": len(ids), "chunks": nchunks, "ctx": PPL_CTX,
	       "scored": scored, "nll_sum": s,
	       "ppl": float(np.exp(s / scored)), "per_chunk_nll": per}
	with open(os.path.join(HERE, "ppl.json"), "w") as f:
		json.dump(res, f, indent=1)
		f.write("\n")
	print("ppl %.6f over %d scored tokens" % (res["ppl"], scored))


def tiny_commands():
	"""(type, argv) for every tiny model, in the order they must be made."""
	cmds = []
	for t in ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"]:
		cmds.append((t, ["sluice"] + SYNTH + ["--type", t,
						      "-o", "tiny-%s.gguf" % t]))
	for t in ["q4_k", "q6_k", "q5_0", "q5_1"]:
		cmds.append((t, ["quantize", "-q", "-t", t, "tiny-f32.gguf",
				 "tiny-%s.gguf" % t]))
	# one model with its own output.weight (all the others are tied)
	cmds.append(("q8_0-untied", ["sluice"] + SYNTH +
		     ["--type", "q8_0", "--untied", "-o", "tiny-q8_0-untied.gguf"]))
	return cmds


def sha256(path):
	return hashlib.sha256(open(path, "rb").read()).hexdigest()


def make_tiny(d):
	out = {}
	for t, argv in tiny_commands():
		subprocess.run([os.path.join(BIN, argv[0])] + argv[1:], cwd=d,
			       check=True, capture_output=True)
		out[t] = sha256(os.path.join(d, "tiny-%s.gguf" % t))
	return out


def do_tiny():
	with tempfile.TemporaryDirectory() as d1, \
	     tempfile.TemporaryDirectory() as d2:
		h1 = make_tiny(d1)
		h2 = make_tiny(d2)
		lines = ["# tiny random models: run in an empty directory, in"
			 " this order (bin/ of the repository)",
			 "# prompt ids: " + " ".join(map(str, TINY_PROMPT))]
		for t, argv in tiny_commands():
			lines.append(" ".join(argv))
		lines.append("# sha256 of each file (two runs %s)"
			     % ("identical" if h1 == h2 else "DIFFER"))
		for t, _ in tiny_commands():
			lines.append("%s  tiny-%s.gguf" % (h1[t], t))
			if h1[t] != h2[t]:
				print("tiny-%s: regeneration differs" % t)
		with open(os.path.join(HERE, "tiny.txt"), "w") as f:
			f.write("\n".join(lines) + "\n")
		for t, _ in tiny_commands():
			path = os.path.join(d1, "tiny-%s.gguf" % t)
			try:
				llm = Llama(model_path=path, n_ctx=256,
					    n_threads=N_THREADS,
					    n_threads_batch=N_THREADS,
					    n_batch=256, logits_all=True,
					    seed=0, verbose=False)
			except Exception as e:
				print("tiny-%s: llama.cpp does not load it: %s"
				      % (t, e))
				continue
			clear_memory(llm)
			llm.eval(TINY_PROMPT)
			lg = np.array(llm.scores[:len(TINY_PROMPT)], copy=True)
			lg.astype("<f4").tofile(os.path.join(HERE,
							     "tiny-%s.f32" % t))
			print("tiny-%s: n_vocab %d, logits[0,:3] %s, argmax %s"
			      % (t, llm.n_vocab(), lg[0, :3],
				 lg.argmax(axis=1).tolist()))
			del llm


def main():
	ap = argparse.ArgumentParser()
	ap.add_argument("--model", default=DEFAULT_MODEL)
	ap.add_argument("--only", default="greedy,ppl,tiny")
	a = ap.parse_args()
	print("llama-cpp-python", llama_cpp.__version__,
	      llama_cpp.llama_print_system_info().decode().strip())
	only = a.only.split(",")
	if "greedy" in only:
		do_greedy(a.model)
	if "ppl" in only:
		do_ppl(a.model)
	if "tiny" in only:
		do_tiny()


if __name__ == "__main__":
	main()
