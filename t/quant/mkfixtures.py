#!/usr/bin/env python3
"""mkfixtures.py: makes the fixtures of t/unit/quant.c (run from anywhere;
needs numpy and gguf, and for the llama.cpp part llama_cpp and bin/sluice).

  rows.f32        fixed-seed float32 rows of 256 (several distributions, ties,
                  edge scales, and real rows: the default model's tensors
                  dequantized with gguf.quants.dequantize), little-endian
  rows.TYPE       the same rows quantized by gguf.quants.quantize (TYPE: f16,
                  bf16, q8_0, q4_0, q4_1, q5_0, q5_1), the bytes
                  quant_quantize_row must give
  rows.TYPE.f32   for the block types: those bytes dequantized by
                  gguf.quants.dequantize (what quant_dequantize_row must give)
  llamacpp-src.f32, llamacpp-TYPE.bin (TYPE: q8_0, q4_0, q4_1)
                  one tensor (rows of 256) of an F32 GGUF (bin/sluice model
                  synth --type f32, its matrices overwritten with real
                  weights) and the bytes llama.cpp's own quantizer
                  (llama_cpp.llama_model_quantize) wrote for it

  hostile.f32, hostile.TYPE
                  rows with NaN, +-inf and values whose scales overflow f16,
                  and the bytes ggml's own reference quantizers
                  (quantize_row_*_ref, ggml_fp32_to_fp16_row/_bf16_row in
                  llama_cpp's libggml-base.so, called with ctypes) give for
                  them: what ggml does with garbage, which quant.c copies

The direct ggml step also checks rows.TYPE against ggml itself. The
llama.cpp step also checks, for every tensor llama.cpp gave the target
type, that gguf.quants gives the same bytes, and prints the result. Without
llama_cpp it is skipped and the llamacpp-* files are left alone.
"""
import ctypes
import os
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODEL = os.environ.get("SLUICE_MODEL", os.path.expanduser(
    "~/.cache/sluice/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
ROW = 256
TYPES = {"f16": T.F16, "bf16": T.BF16, "q8_0": T.Q8_0, "q4_0": T.Q4_0,
         "q4_1": T.Q4_1, "q5_0": T.Q5_0, "q5_1": T.Q5_1}


def real_pool(names, n):
    """n float32 values from the model's tensors (dequantized), in order."""
    r = gguf.GGUFReader(MODEL)
    by = {t.name: t for t in r.tensors}
    out = []
    for name in names:
        t = by[name]
        out.append(gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).ravel())
    pool = np.concatenate(out)
    assert pool.size >= n
    return pool[:n]


def real_rows(k):
    """k rows of 256: 64 values from each of several tensors a row apart,
    so every row mixes tensors, plus whole stretches of single tensors."""
    names = ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight",
             "blk.3.ffn_down.weight", "blk.7.ffn_gate.weight", "blk.29.attn_v.weight",
             "blk.0.attn_norm.weight", "blk.15.ffn_norm.weight"]
    r = gguf.GGUFReader(MODEL)
    by = {t.name: t for t in r.tensors}
    rows = []
    for i in range(k):
        t = by[names[i % len(names)]]
        x = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).ravel()
        off = (i * 7919 * ROW) % (x.size - ROW)
        off -= off % 32
        rows.append(x[off:off + ROW])
    return np.stack(rows)


def draw_rows():
    rng = np.random.default_rng(20240604)
    p = []
    p.append(rng.standard_normal((6, ROW)))                  # normal
    p.append(rng.uniform(-1, 1, (6, ROW)))                   # uniform
    p.append(rng.normal(0, 0.02, (6, ROW)))                  # weight-scale normal
    p.append(rng.laplace(0, 0.05, (4, ROW)))                 # heavy tails
    o = rng.normal(0, 0.02, (4, ROW))                        # one outlier a block
    for b in range(0, ROW, 32):
        o[:, b + rng.integers(32)] *= 300
    p.append(o)
    p.append(rng.uniform(0.1, 2.0, (2, ROW)))                # all positive
    p.append(-rng.uniform(0.1, 2.0, (2, ROW)))               # all negative
    p.append(rng.standard_normal((2, ROW)) * 1e-6)           # f16-subnormal scales
    p.append(rng.standard_normal((1, ROW)) * 1e-9)           # scales that flush to 0
    p.append(rng.standard_normal((1, ROW)) * 3e4)            # large
    p.append(rng.standard_normal((1, ROW)) * 2e6)            # scales that overflow f16
    # ties: Q8_0 blocks with amax 127 (d = 1) and values k + 0.5; Q4_0/Q5_0
    # blocks with max -8 or -16 (d = 1) and values on the .5 grid
    t = np.zeros((3, ROW))
    for b in range(0, ROW, 32):
        t[0, b:b + 32] = rng.integers(-126, 126, 32) + 0.5
        t[0, b] = 127
        t[1, b:b + 32] = rng.integers(-8, 7, 32) + 0.5
        t[1, b + 5] = -8
        t[2, b:b + 32] = rng.integers(-16, 15, 32) + 0.5
        t[2, b + 9] = -16
    p.append(t)
    e = np.zeros((3, ROW))                                   # zeros, constants, one huge
    e[1, :] = 0.7
    e[2, :] = rng.normal(0, 0.01, ROW)
    e[2, 3] = 1000.0
    e[2, 40] = -1000.0
    e[2, 64:96] = -3.0
    p.append(e)
    # f16 edge values: max, rounding ties, subnormals, -0
    f = np.array([65504, -65504, 65519, 65520, 1 + 2**-11, 1 + 3 * 2**-11,
                  2**-24, 2**-25, 3 * 2**-25, 2**-14, 2**-14 - 2**-25, -0.0,
                  0.1, 1 / 3, 6.1e-5, 5.96e-8] * 16, dtype=np.float32).reshape(1, ROW)
    p.append(f)
    rows = np.concatenate([a.astype(np.float32) for a in p])
    return np.concatenate([rows, real_rows(16)]).astype(np.float32)


def write_rows():
    rows = draw_rows()
    rows.astype("<f4").tofile(os.path.join(HERE, "rows.f32"))
    for name, qt in TYPES.items():
        q = gguf.quants.quantize(rows, qt)
        np.ascontiguousarray(q).view(np.uint8).tofile(os.path.join(HERE, "rows." + name))
        if name.startswith("q"):
            d = gguf.quants.dequantize(q, qt).astype("<f4")
            d.tofile(os.path.join(HERE, "rows." + name + ".f32"))
    print(f"rows.f32: {rows.shape[0]} rows of {ROW}")


def llamacpp():
    try:
        import llama_cpp
    except ImportError:
        print("llama_cpp is not installed: llama.cpp comparison skipped")
        return 0
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "f32.gguf")
        subprocess.run([os.path.join(ROOT, "bin", "sluice"), "model", "synth", "-o", src,
                        "--type", "f32", "--dim", "256", "--ff", "512", "--layers", "2",
                        "--heads", "4", "--kv-heads", "1", "--untied"],
                       check=True, stdout=subprocess.DEVNULL)
        # real weights in place of the random ones
        r = gguf.GGUFReader(src, "r+")
        mats = [t for t in r.tensors if len(t.shape) == 2]
        need = sum(int(t.n_elements) for t in mats)
        pool = real_pool(["blk.%d.%s.weight" % (i, w) for i in range(30)
                          for w in ("attn_q", "ffn_gate", "ffn_down", "attn_v")], need)
        at = 0
        for t in mats:
            n = int(t.n_elements)
            t.data[...] = pool[at:at + n].reshape(t.data.shape)
            at += n
        r.data.flush()
        del r
        f32 = {t.name: np.array(t.data) for t in gguf.GGUFReader(src).tensors}
        for name, qt, ftype in (("q8_0", T.Q8_0, llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0),
                                ("q4_0", T.Q4_0, llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0),
                                ("q4_1", T.Q4_1, llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_1)):
            out = os.path.join(tmp, name + ".gguf")
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = ftype
            params.nthread = 2
            rc = llama_cpp.llama_model_quantize(src.encode(), out.encode(), ctypes.byref(params))
            if rc != 0:
                print(f"llama_model_quantize {name}: rc {rc}")
                bad += 1
                continue
            same = diff = 0
            other = []
            for t in gguf.GGUFReader(out).tensors:
                if t.tensor_type != qt:
                    other.append(f"{t.name}={t.tensor_type.name}")
                    continue
                mine = gguf.quants.quantize(f32[t.name], qt).view(np.uint8).ravel()
                if np.array_equal(mine, np.array(t.data).view(np.uint8).ravel()):
                    same += 1
                else:
                    diff += 1
                if t.name == "blk.0.attn_k.weight":
                    np.array(t.data).view(np.uint8).tofile(os.path.join(HERE, f"llamacpp-{name}.bin"))
            print(f"llama.cpp {name}: {same} tensors byte-identical to gguf.quants, {diff} differ; "
                  f"other types: {' '.join(other)}")
            bad += diff
        f32["blk.0.attn_k.weight"].astype("<f4").tofile(os.path.join(HERE, "llamacpp-src.f32"))
    return bad


def hostile_rows():
    """rows with NaN and inf at the start, middle and end of blocks"""
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, (6, ROW)).astype(np.float32)
    for b in range(0, ROW, 32):
        x[0, b + (b // 32) * 4 % 32] = np.nan        # NaN at several positions
        x[1, b + 31 - (b // 32)] = np.nan
        x[2, b + (b // 32) * 3 % 32] = np.inf
        x[3, b + 7] = -np.inf
        x[4, b + 1] = np.nan
        x[4, b + 30] = np.inf
    x[5, :] = np.float32(3e38) * np.sign(x[5, :])    # huge: scales overflow
    return x


def ggml_direct():
    """the same rows through ggml's own reference quantizers (libggml-base
    of llama_cpp, called with ctypes): checks rows.* and writes hostile.*"""
    try:
        import llama_cpp
    except ImportError:
        print("llama_cpp is not installed: direct ggml comparison skipped")
        return 0
    lib = ctypes.CDLL(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so"))
    fp = ctypes.POINTER(ctypes.c_float)
    bad = 0

    def ggml_quant(name, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        n = x.size
        if name in ("f16", "bf16"):
            out = np.zeros(n, dtype=np.uint16)
            fn = getattr(lib, "ggml_fp32_to_%s_row" % ("fp16" if name == "f16" else "bf16"))
            fn(x.ctypes.data_as(fp), out.ctypes.data_as(ctypes.c_void_p), ctypes.c_int64(n))
            return out.view(np.uint8)
        bs = {"q8_0": 34, "q4_0": 18, "q4_1": 20, "q5_0": 22, "q5_1": 24}[name]
        out = np.zeros(n // 32 * bs, dtype=np.uint8)
        getattr(lib, "quantize_row_%s_ref" % name)(x.ctypes.data_as(fp),
                                                  out.ctypes.data_as(ctypes.c_void_p), ctypes.c_int64(n))
        return out

    rows = np.fromfile(os.path.join(HERE, "rows.f32"), dtype="<f4")
    for name in TYPES:
        want = np.fromfile(os.path.join(HERE, "rows." + name), dtype=np.uint8)
        same = np.array_equal(ggml_quant(name, rows), want)
        print(f"ggml {name} on rows.f32: {'byte-identical to' if same else 'DIFFERS from'} gguf.quants")
        bad += not same
    h = hostile_rows()
    h.astype("<f4").tofile(os.path.join(HERE, "hostile.f32"))
    for name in TYPES:
        ggml_quant(name, h).tofile(os.path.join(HERE, "hostile." + name))
    return bad


def main():
    write_rows()
    bad = ggml_direct()
    bad += llamacpp()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
