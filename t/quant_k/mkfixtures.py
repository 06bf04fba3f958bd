#!/usr/bin/env python3
"""Makes the Q4_K/Q6_K fixtures of t/unit/quant_k.c from llama.cpp itself.

Not run in CI (it needs llama-cpp-python, numpy, gguf and bin/sluice); its
output is committed:
  src.f32        128 rows x 512 float32 LE: the source rows (normal, uniform,
                 heavy-tailed, one outlier, zero, constant, one-signed, tiny,
                 subnormal, large, mixed sub-block scales, sparse, on-grid)
  q4_k.bin       llama.cpp's Q4_K bytes for them (128 x 2 blocks x 144 B)
  q6_k.bin       llama.cpp's Q6_K bytes for them (128 x 2 blocks x 210 B)
  deq.sha256     sha256 of gguf.quants.dequantize() of each, as float32 LE:
                 an independent reference for our dequantizers

How: `sluice model synth` writes an F32 llama GGUF with dim 512; the rows
replace the first 128 rows of blk.0.attn_q.weight; llama_model_quantize
(no imatrix, pure, so every matrix gets the one type and ggml's reference
quantizers quantize_row_q4_K_ref / quantize_row_q6_K_ref do the work) makes
a Q4_K and a Q6_K file; the rows are read back from them.

Usage: python3 t/quant_k/mkfixtures.py   (from the repository root)
"""
import hashlib
import os
import subprocess
import sys
import tempfile

import numpy as np
import gguf
import llama_cpp

N, ROWS, TENSOR = 512, 128, "blk.0.attn_q.weight"
here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))


def rows():
    r = np.random.default_rng(20240504)
    x = np.zeros((ROWS, N), dtype=np.float64)
    x[0:32] = r.normal(0, 0.02, (32, N))
    x[32:48] = r.uniform(-1, 1, (16, N))
    x[48:64] = r.standard_t(2, (16, N)) * 0.02
    x[64:72] = r.normal(0, 0.02, (8, N))
    for i in range(64, 72):
        x[i, r.integers(N)] = (1 if i % 2 else -1) * 1.0   # ~50 sigma
    # 72..75 stay zero
    for i, c in zip(range(76, 80), (0.5, -0.25, 3.0, -1e-3)):
        x[i] = c
    x[80:84] = np.abs(r.normal(0, 0.02, (4, N))) + 0.1
    x[84:88] = -np.abs(r.normal(0, 0.02, (4, N))) - 0.1
    x[88:92] = r.normal(0, 1e-12, (4, N))                  # f16 scales underflow
    x[92:96] = r.normal(0, 1e-40, (4, N))                  # f32 subnormals
    x[96:100] = r.normal(0, 1e3, (4, N))
    x[100:112] = r.normal(0, 1, (12, N)) * \
        np.repeat(10.0 ** r.uniform(-3, 1, (12, N // 32)), 32, axis=1)
    x[112:120] = r.normal(0, 0.05, (8, N)) * (r.random((8, N)) < 0.05)
    x[120:128] = r.integers(-8, 8, (8, N)) * 0.01
    return x.astype(np.float32)


def quantize(src, dst, ftype):
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = ftype
    p.nthread = 2
    p.pure = True
    if llama_cpp.llama_model_quantize(src.encode(), dst.encode(), p) != 0:
        sys.exit("mkfixtures: llama_model_quantize failed")


def tensor(path, name):
    for t in gguf.GGUFReader(path).tensors:
        if t.name == name:
            return t
    sys.exit(f"mkfixtures: no {name} in {path}")


def main():
    x = rows()
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src.gguf")
        subprocess.check_call([os.path.join(root, "bin", "sluice"), "model", "synth",
                               "-o", src, "--type", "f32", "--dim", "512",
                               "--ff", "512", "--layers", "1", "--heads", "4",
                               "--kv-heads", "4", "--seed", "1"],
                              stdout=subprocess.DEVNULL)
        t = tensor(src, TENSOR)
        assert t.tensor_type == gguf.GGMLQuantizationType.F32 and int(t.shape[0]) == N
        mm = np.memmap(src, dtype=np.float32, mode="r+", offset=t.data_offset,
                       shape=(ROWS, N))
        mm[:] = x
        mm.flush()
        del mm
        x.tofile(os.path.join(here, "src.f32"))
        sums = []
        for ftype, qt, fname in (
                (llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M, gguf.GGMLQuantizationType.Q4_K, "q4_k.bin"),
                (llama_cpp.LLAMA_FTYPE_MOSTLY_Q6_K, gguf.GGMLQuantizationType.Q6_K, "q6_k.bin")):
            out = os.path.join(tmp, fname + ".gguf")
            quantize(src, out, ftype)
            q = tensor(out, TENSOR)
            assert q.tensor_type == qt, (q.tensor_type, qt)
            raw = np.asarray(q.data, dtype=np.uint8).reshape(-1)
            nbytes = ROWS * N // 256 * (144 if qt == gguf.GGMLQuantizationType.Q4_K else 210)
            raw = raw[:nbytes]
            raw.tofile(os.path.join(here, fname))
            deq = gguf.quants.dequantize(raw.reshape(ROWS, -1), qt).astype("<f4")
            sums.append(f"{hashlib.sha256(deq.tobytes()).hexdigest()}  {fname}\n")
    with open(os.path.join(here, "deq.sha256"), "w") as f:
        f.writelines(sums)


if __name__ == "__main__":
    main()
