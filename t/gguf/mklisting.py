#!/usr/bin/env python3
# mklisting.py: writes t/gguf/NAME.kv and t/gguf/NAME.tensors, what the gguf
# Python package (gguf-py, llama.cpp's reader) sees in the default model and in
# llama.cpp's vocabulary test files, in the form t/1002-gguf-synth.bats makes
# from `sluice gguf kv|tensors` (kv: key, type, array count; tensors: name,
# type, shape in ne order, offset in the data section, bytes).
#   python3 t/gguf/mklisting.py        (needs: pip install gguf numpy)
import os, subprocess, sys
import gguf

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
VOCABS = ["llama-spm", "llama-bpe", "qwen2", "gpt-2", "phi-3", "starcoder",
          "command-r", "deepseek-coder", "falcon", "mpt", "baichuan", "bert-bge"]
T = gguf.GGUFValueType
SHORT = {T.UINT8: "u8", T.INT8: "i8", T.UINT16: "u16", T.INT16: "i16",
         T.UINT32: "u32", T.INT32: "i32", T.FLOAT32: "f32", T.BOOL: "bool",
         T.STRING: "str", T.UINT64: "u64", T.INT64: "i64", T.FLOAT64: "f64"}


def listing(path, name):
    r = gguf.GGUFReader(path)
    with open(os.path.join(here, name + ".kv"), "w") as f:
        for k, fld in r.fields.items():
            if k.startswith("GGUF."):  # the reader's own header pseudo-fields
                continue
            if fld.types[0] == T.ARRAY:
                f.write("%s\tarr[%s]\t%d\n" % (k, SHORT[fld.types[1]], len(fld.data)))
            else:
                f.write("%s\t%s\n" % (k, SHORT[fld.types[0]]))
    with open(os.path.join(here, name + ".tensors"), "w") as f:
        for t in r.tensors:
            f.write("%s\t%s\t%s\t%d\t%d\n" % (
                t.name, t.tensor_type.name, "x".join(str(int(d)) for d in t.shape),
                t.data_offset - r.data_offset, t.n_bytes))


def main():
    model = subprocess.run([os.path.join(root, "bin/sluice"), "model", "path"],
                           capture_output=True, text=True, check=True).stdout.strip()
    listing(model, "smollm2")
    for v in VOCABS:
        p = subprocess.run([os.path.join(root, "t/helpers/vocab.sh"), v],
                           capture_output=True, text=True, check=True).stdout.strip()
        listing(p, "vocab-" + v)


if __name__ == "__main__":
    sys.exit(main())
