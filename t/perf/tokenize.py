#!/usr/bin/env python3
"""Tokenizer throughput (MB/s, one thread) on the reference corpus repeated
(t/tok/corpus.txt, its valid UTF-8 lines, x100 by default), side by side in
one run, alternating, median of several runs:

  sluice    `tokenize -i text -c` on the file (the whole program: read,
            tokenize each line, write counts), wall time of the process
  llama.cpp llama-cpp-python Llama.tokenize(line, add_bos=True, special=True)
            over the same lines (vocab_only), time of the loop
  HF        tokenizers.Tokenizer built from the GGUF's vocabulary and merges
            (models.BPE, SmolLM2's pre-tokenizer: digits isolated, then
            ByteLevel), encode_batch would use threads, so encode() per line

Also the agreement of that HF tokenizer with llama.cpp on the corpus (it has
no special tokens: compared with t/tok/smollm2-nospecial.ids), and the load
time and peak RSS of `tokenize -c` on empty input.

  python3 t/perf/tokenize.py [-x REPEAT] [-r RUNS] [-m MODEL]
"""
import argparse, os, statistics, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SLUICE_BIN", os.path.join(root, "bin"))
TOKENIZE = os.path.join(BIN, "tokenize")
TOK = os.path.join(root, "t/tok")


def wait4(p):
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = 0
    return status, ru


def run_ours(model, path):
    """Wall time and peak RSS (KB) of tokenize on path. The RSS comes from
    /usr/bin/time: a child forked from this Python process (with llama.cpp
    loaded) would report the parent's pages in its own ru_maxrss."""
    rss_file = os.path.join(tempfile.gettempdir(), "sluice-perf-rss.%d" % os.getpid())
    with open(path, "rb") as f, open(os.devnull, "wb") as null:
        t0 = time.monotonic()
        p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss_file,
                              TOKENIZE, "-m", model, "-i", "text", "-c"], stdin=f, stdout=null)
        status, ru = wait4(p)
        wall = time.monotonic() - t0
    if status:
        sys.exit("tokenize failed: status %d" % status)
    with open(rss_file) as f:
        rss = int(f.read().split()[-1])
    os.unlink(rss_file)
    return wall, rss


def hf_tokenizer(model):
    from gguf import GGUFReader
    from tokenizers import Tokenizer, Regex, models, pre_tokenizers, decoders

    r = GGUFReader(model)

    def strs(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    tokens = strs("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in strs("tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}
    tk = Tokenizer(models.BPE(vocab, merges, byte_fallback=False))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{N}"), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tk.decoder = decoders.ByteLevel()
    return tk


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-x", type=int, default=100, help="corpus repeats")
    ap.add_argument("-r", type=int, default=5, help="runs (median)")
    ap.add_argument("-m", default=os.path.expanduser("~/.cache/sluice/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    a = ap.parse_args()
    if not os.access(TOKENIZE, os.X_OK):
        sys.exit("no %s: run make first" % TOKENIZE)

    with open(os.path.join(TOK, "corpus.txt"), "rb") as f:
        lines = f.read().split(b"\n")[:-1]
    valid = []
    for l in lines:
        try:
            valid.append(l.decode("utf-8"))
        except UnicodeDecodeError:
            pass
    text = [l for _ in range(a.x) for l in valid]
    btext = [l.encode() for l in text]
    mb = sum(len(l) + 1 for l in btext) / 1e6
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "corpus.x")
    with open(path, "wb") as f:
        f.write(b"".join(l + b"\n" for l in btext))

    # load time and peak RSS of the tokenizer: tokenize -c on empty input
    loads, rss = [], []
    for _ in range(max(a.r, 5)):
        w, r = run_ours(a.m, os.devnull)
        loads.append(w)
        rss.append(r)
    print("sluice tokenize load: %.1f ms wall (median of %d), peak RSS %.1f MB"
          % (statistics.median(loads) * 1e3, len(loads), max(rss) / 1024))

    impls = {"sluice": lambda: run_ours(a.m, path)[0]}
    try:
        import llama_cpp
        llm = llama_cpp.Llama(model_path=a.m, vocab_only=True, verbose=False)

        def run_llama():
            t0 = time.monotonic()
            for l in btext:
                llm.tokenize(l, add_bos=True, special=True)
            return time.monotonic() - t0
        impls["llama.cpp"] = run_llama
    except ImportError:
        print("llama.cpp: skipped (no llama_cpp module)")
    try:
        hf = hf_tokenizer(a.m)
        nos = open(os.path.join(TOK, "smollm2-nospecial.ids")).read().split("\n")
        same = n = 0
        for l, ids in zip(lines, nos):
            try:
                s = l.decode("utf-8")
            except UnicodeDecodeError:
                continue
            n += 1
            same += hf.encode(s, add_special_tokens=False).ids == [int(x) for x in ids.split()]
        print("HF tokenizers agree with llama.cpp (no special tokens) on %d of %d valid UTF-8 corpus lines (%.2f%%)"
              % (same, n, 100.0 * same / n))

        def run_hf():
            t0 = time.monotonic()
            for l in text:
                hf.encode(l, add_special_tokens=False)
            return time.monotonic() - t0
        impls["HF tokenizers"] = run_hf
    except ImportError as e:
        print("HF tokenizers: skipped (%s)" % e)

    times = {k: [] for k in impls}
    for _ in range(a.r):
        for k, f in impls.items():
            times[k].append(f())
    print("corpus x%d: %d lines, %.1f MB; one thread, median of %d" % (a.x, len(text), mb, a.r))
    med = {k: statistics.median(v) for k, v in times.items()}
    for k in impls:
        print("  %-14s %8.2f MB/s  (%.2f s)" % (k, mb / med[k], med[k]))
    for k in impls:
        if k != "sluice":
            print("  sluice / %-14s %.2fx" % (k, med[k] / med["sluice"]))
    os.unlink(path)
    os.rmdir(tmp)


if __name__ == "__main__":
    main()
