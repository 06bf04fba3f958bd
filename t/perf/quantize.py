#!/usr/bin/env python3
"""quantize(1) against llama.cpp's quantizer on the default model, 2 threads,
alternating, median of several runs:

  sluice    `quantize -j 2 -r q4_k_m` and `quantize -j 2 -t q4_k` (the whole
            program: map, convert, measure the error, write, fsync, rename),
            wall time of the process, peak RSS through /usr/bin/time
  llama.cpp llama-cpp-python llama_model_quantize(ftype Q4_K_M, nthread 2,
            allow_requantize), time of the call in this process

The memory target: peak RSS of quantize at most the output size + 64 MB.
Needs llama_cpp (not in CI).

  python3 t/perf/quantize.py [-r RUNS] [-m MODEL]
"""
import argparse, os, statistics, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SLUICE_BIN", os.path.join(root, "bin"))


def ours(model, out, how):
    """Wall seconds and peak RSS (KB). /usr/bin/time gives the RSS: a child
    forked from this process (llama.cpp loaded) would count our pages."""
    rss = out + ".rss"
    t0 = time.monotonic()
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss, os.path.join(BIN, "quantize"),
                    "-q", "-j", "2"] + how + [model, out], check=True, stderr=subprocess.DEVNULL)
    dt = time.monotonic() - t0
    with open(rss) as f:
        kb = int(f.read().split()[-1])
    return dt, kb


def theirs(llama_cpp, model, out):
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    p.nthread = 2
    p.allow_requantize = True
    t0 = time.monotonic()
    rc = llama_cpp.llama_model_quantize(model.encode(), out.encode(), p)
    dt = time.monotonic() - t0
    if rc:
        sys.exit("llama_model_quantize failed: %d" % rc)
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-r", "--runs", type=int, default=5)
    ap.add_argument("-m", "--model")
    a = ap.parse_args()
    model = a.model or subprocess.run([os.path.join(BIN, "sluice"), "model", "path"], check=True,
                                      capture_output=True, text=True).stdout.strip()
    import llama_cpp
    # llama.cpp logs every tensor on stderr: send fd 2 away while it runs
    null = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(2)
    t_km, t_k, t_ll, rss_km, rss_k = [], [], [], [], []
    with tempfile.TemporaryDirectory() as d:
        o_km, o_k, o_ll = (os.path.join(d, n) for n in ("km.gguf", "k.gguf", "ll.gguf"))
        for i in range(a.runs):
            print("run %d/%d" % (i + 1, a.runs), file=sys.stderr)
            steps = ["km", "k", "ll"] if i % 2 == 0 else ["ll", "k", "km"]
            for s in steps:
                if s == "km":
                    dt, kb = ours(model, o_km, ["-r", "q4_k_m"])
                    t_km.append(dt); rss_km.append(kb)
                elif s == "k":
                    dt, kb = ours(model, o_k, ["-t", "q4_k"])
                    t_k.append(dt); rss_k.append(kb)
                else:
                    os.dup2(null, 2)
                    try:
                        t_ll.append(theirs(llama_cpp, model, o_ll))
                    finally:
                        os.dup2(saved, 2)
        size_km, size_k, size_ll = (os.path.getsize(p) for p in (o_km, o_k, o_ll))
    m = statistics.median
    print("model %s (%d bytes), 2 threads, median of %d" % (model, os.path.getsize(model), a.runs))
    print("llama.cpp Q4_K_M   %.3f s  output %d bytes  runs %s" % (m(t_ll), size_ll, " ".join("%.3f" % x for x in t_ll)))
    for name, t, rss, size in (("-r q4_k_m", t_km, rss_km, size_km), ("-t q4_k  ", t_k, rss_k, size_k)):
        target = size / 1024 + 64 * 1024
        print("quantize %s %.3f s  %.2fx llama.cpp  output %d bytes  peak RSS %d KB (target %d KB: %s)  runs %s"
              % (name, m(t), m(t) / m(t_ll), size, max(rss), target, "ok" if max(rss) <= target else "OVER",
                 " ".join("%.3f" % x for x in t)))


if __name__ == "__main__":
    main()
