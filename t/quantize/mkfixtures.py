#!/usr/bin/env python3
# Makes t/quantize/*.plan: the type llama.cpp's quantizer (llama-cpp-python's
# llama_model_quantize, ftype LLAMA_FTYPE_MOSTLY_Q4_K_M) gives each tensor of
# the default model and of a synthetic model, one "name<TAB>TYPE" line per
# tensor, sorted by name. t/4001-quantize.bats checks `quantize -n -r q4_k_m`
# against them. Needs llama_cpp (not in CI: the plans are committed).
#
#   python3 t/quantize/mkfixtures.py     (from the repository root, after make)
import os
import subprocess
import sys
import tempfile

import llama_cpp

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SLUICE = os.path.join(ROOT, "bin", "sluice")

# the synthetic model the test makes too (keep in step with t/4001)
SYNTH = ["--type", "f32", "--dim", "256", "--ff", "512", "--layers", "12",
         "--heads", "4", "--kv-heads", "2", "--seed", "7", "--untied"]


def quantize(src, dst, ftype):
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = ftype
    p.nthread = 2
    p.allow_requantize = True
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), p)
    if rc != 0:
        sys.exit("llama_model_quantize %s failed: %d" % (src, rc))


def plan(path):
    out = subprocess.run([SLUICE, "gguf", "tensors", path], check=True,
                         capture_output=True, text=True).stdout
    rows = sorted(line.split("\t")[:2] for line in out.splitlines())
    return "".join("%s\t%s\n" % (n, t) for n, t in rows)


def main():
    model = subprocess.run([SLUICE, "model", "path"], check=True,
                           capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as d:
        synth = os.path.join(d, "synth.gguf")
        subprocess.run([SLUICE, "model", "synth", "-o", synth] + SYNTH, check=True,
                       stdout=subprocess.DEVNULL)
        for name, src in (("default", model), ("synth", synth)):
            dst = os.path.join(d, name + ".q4_k_m.gguf")
            quantize(src, dst, llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M)
            with open(os.path.join(HERE, name + ".q4_k_m.plan"), "w") as f:
                f.write(plan(dst))


if __name__ == "__main__":
    main()
