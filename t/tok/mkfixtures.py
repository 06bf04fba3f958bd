#!/usr/bin/env python3
# mkfixtures.py: the token ids llama.cpp gives for every line of
# t/tok/corpus.txt, made with llama-cpp-python (0.3.36 here) and committed
# beside the corpus (the suite never imports llama_cpp).
#
#   smollm2.ids            SmolLM2 (gpt2 BPE, pre smollm), special tokens parsed
#   smollm2-nospecial.ids  the same with special tokens treated as text
#   llama-spm.ids          llama.cpp's ggml-vocab-llama-spm.gguf (SentencePiece),
#                          special tokens parsed
#   smollm2.detok, llama-spm.detok
#                         what llama.cpp's detokenize (Llama.detokenize,
#                          special=False) gives back for those ids, one line
#                          each (bytes; the corpus has no '\n' inside a line)
#
# One line of space-separated ids per corpus line. tokenize is called with
# add_bos=True, which llama.cpp takes as add_special: BOS/EOS are added only
# where the file says so (tokenizer.ggml.add_bos_token: SmolLM2 no, llama-spm
# yes), as sluice's tokenize does.
#
#   python3 t/tok/mkfixtures.py [MODEL.gguf [SPM.gguf]]
import ctypes
import os
import subprocess
import sys

import llama_cpp
from llama_cpp import Llama

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
smol = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser(
	'~/.cache/sluice/models/SmolLM2-135M-Instruct.Q4_1.gguf')
spm = sys.argv[2] if len(sys.argv) > 2 else subprocess.check_output(
	[os.path.join(root, 't/helpers/vocab.sh'), 'llama-spm'], text=True).strip()

with open(os.path.join(here, 'corpus.txt'), 'rb') as f:
	data = f.read()
assert data.endswith(b'\n')
lines = data[:-1].split(b'\n')


def detok(m, ids, special):
	"""Llama.detokenize, without its 32-byte limit on one piece: the pieces of
	llama_token_to_piece (lstrip 0) joined, and one leading space dropped when
	the first token is BOS."""
	buf = (ctypes.c_char * 4096)()
	out = b''
	for t in ids:
		n = llama_cpp.llama_token_to_piece(m._model.vocab, llama_cpp.llama_token(t), buf, 4096, 0, special)
		assert 0 <= n <= 4096
		out += bytes(buf[:n])
	if ids and ids[0] == m.token_bos() and out[:1] == b' ':
		out = out[1:]
	return out


@llama_cpp.llama_log_callback
def _quiet(level, text, user_data):
	pass


def run(path, name, special, write_detok=True):
	m = Llama(model_path=path, vocab_only=True, verbose=False)
	llama_cpp.llama_log_set(_quiet, None)
	ids_out, detok_out = [], []
	same = [0, 0]
	valid = 0
	for l in lines:
		ids = m.tokenize(l, add_bos=True, special=special)
		ids_out.append(' '.join(map(str, ids)))
		d = detok(m, ids, False)
		assert b'\n' not in d
		detok_out.append(d)
		try:
			l.decode('utf-8')
		except UnicodeDecodeError:
			continue
		valid += 1
		same[0] += d == l
		same[1] += detok(m, ids, True) == l
	with open(os.path.join(here, name + '.ids'), 'w') as f:
		f.write(''.join(s + '\n' for s in ids_out))
	if write_detok:
		with open(os.path.join(here, name + '.detok'), 'wb') as f:
			f.write(b''.join(d + b'\n' for d in detok_out))
	print('%s: %d lines, %d tokens; llama.cpp round trip on %d (special hidden), %d (shown) of %d valid UTF-8 lines' % (
		name, len(lines), sum(len(s.split()) for s in ids_out), same[0], same[1], valid), file=sys.stderr)


run(smol, 'smollm2', True)
run(smol, 'smollm2-nospecial', False, False)
run(spm, 'llama-spm', True)
