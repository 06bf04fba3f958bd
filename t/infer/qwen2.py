#!/usr/bin/env python3
# qwen2.py IN.gguf OUT.gguf [--ref OUT.f32 IDS...]
#
# Turns a tiny llama GGUF from `sluice model synth --type f32` into a qwen2
# one for the tests: the same weights, the metadata under "qwen2.", and the
# biases qwen2 adds to Q, K and V (seeded random values, so the file is the
# same every time). qwen2 rotates (i, i + d/2) pairs (NEOX RoPE) where llama
# rotates (2i, 2i + 1): the same weights give other numbers, which is the
# point. With --ref, llama.cpp (llama-cpp-python) computes the logits of
# every position of IDS into OUT.f32: the fixture t/infer/tiny-qwen2.f32
# was made that way; the test suite only needs the gguf package and numpy.
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter


def convert(src, dst):
    r = GGUFReader(src)
    w = GGUFWriter(dst, "qwen2")
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        key = "qwen2." + name[len("llama."):] if name.startswith("llama.") else name
        vt = f.types[0]
        if vt == GGUFValueType.ARRAY:
            sub = f.types[-1]
            if sub == GGUFValueType.STRING:
                vals = [bytes(f.parts[i]).decode("utf-8", "surrogateescape") for i in f.data]
            else:
                vals = [f.parts[i][0].item() for i in f.data]
            w.add_array(key, vals) if sub == GGUFValueType.STRING else w.add_key_value(key, vals, vt, sub_type=sub)
        elif vt == GGUFValueType.STRING:
            w.add_string(key, bytes(f.parts[f.data[0]]).decode("utf-8", "surrogateescape"))
        else:
            w.add_key_value(key, f.parts[f.data[0]][0].item(), vt)
    rng = np.random.RandomState(20261127)
    for t in r.tensors:
        a = np.array(t.data, dtype=np.float32).reshape([int(x) for x in reversed(t.shape.tolist())])
        w.add_tensor(t.name, a)
        if t.name.endswith(("attn_q.weight", "attn_k.weight", "attn_v.weight")):
            rows = int(t.shape.tolist()[1])
            w.add_tensor(t.name.replace(".weight", ".bias"),
                         rng.normal(0, 0.5, rows).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def reference(path, out, ids):
    import llama_cpp
    m = llama_cpp.Llama(path, n_ctx=256, n_threads=2, n_batch=1, n_ubatch=1,
                        logits_all=True, verbose=False)
    m.eval(ids)
    np.array(m.scores[:len(ids)], dtype="<f4").tofile(out)


if __name__ == "__main__":
    convert(sys.argv[1], sys.argv[2])
    if len(sys.argv) > 3 and sys.argv[3] == "--ref":
        reference(sys.argv[2], sys.argv[4], [int(x) for x in sys.argv[5:]])
