#!/usr/bin/env python3
"""What one hop adds: the latency batchd, route (one replica, prefix
policy, tokenizing each prompt) and gateway add in front of the engine, measured where the engine itself is too fast to hide it.

A tiny random-weight model (sluice model synth, dim 256, 2 layers) answers
in about a millisecond, so time to first token and the gaps between tokens
are mostly the path, not the model. sluice bench at concurrency 1 sends the
same short requests (16 tokens in, 8 out) straight to infer-cpu, through
batchd, through route, and through gateway -> batchd (HTTP, /v1/completions, SSE),
alternating the four in every round; the report is the median over rounds
of each path's median and p99 TTFT and ITL, and what each hop adds.

  python3 t/perf/hop.py [-r ROUNDS] [-n REQUESTS] [--json FILE]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve  # noqa: E402  (start, stop, wait_file, isa, BIN)

BIN = serve.BIN


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-r", "--rounds", type=int, default=5)
    ap.add_argument("-n", "--requests", type=int, default=300)
    ap.add_argument("--json")
    a = ap.parse_args()
    cpu, flag = serve.isa()
    serve.log(f"machine: {os.cpu_count()} cores, {cpu}, {flag}")
    tmp = tempfile.mkdtemp(prefix="hop.")
    model = os.path.join(tmp, "tiny.gguf")
    subprocess.run([os.path.join(BIN, "sluice"), "model", "synth", "--dim", "256", "--layers", "2", "--heads", "4",
                    "--kv-heads", "2", "--ff", "512", "--ctx", "2048", "--seed", "7", "--type", "q8_0", "-o", model],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    e_sock, b_sock = os.path.join(tmp, "e"), os.path.join(tmp, "b")
    prompts = os.path.join(tmp, "p.jsonl")
    with open(prompts, "w") as f:
        for k in range(a.requests + 8):
            f.write(json.dumps({"prompt": f"request {k} of the hop test, some words", "max_tokens": 8,
                                "temperature": 0}) + "\n")
    out = {"machine": {"cores": os.cpu_count(), "cpu": cpu, "isa": flag}}
    try:
        serve.start([os.path.join(BIN, "infer-cpu"), "-q", "-m", model, "-t", "1", "-l", "unix:" + e_sock, "-d", "3"],
                    ready=os.path.join(tmp, "er"), stdin=subprocess.DEVNULL)
        serve.start([os.path.join(BIN, "batchd"), "-q", "-l", "unix:" + b_sock, "-u", "unix:" + e_sock, "-d", "3"],
                    ready=os.path.join(tmp, "br"), stdin=subprocess.DEVNULL)
        r_sock = os.path.join(tmp, "r")
        serve.start([os.path.join(BIN, "route"), "-q", "-m", model, "-l", "unix:" + r_sock, "-u", "unix:" + e_sock,
                     "-d", "3"], ready=os.path.join(tmp, "rr"), stdin=subprocess.DEVNULL)
        gerr = os.path.join(tmp, "gerr")
        serve.start([os.path.join(BIN, "gateway"), "-q", "-m", model, "-u", "unix:" + b_sock,
                     "-l", "tcp:127.0.0.1:0", "--served-model-name", "m", "-d", "3"],
                    ready=os.path.join(tmp, "gr"), stdin=subprocess.DEVNULL, stderr=open(gerr, "w"))
        port = next(l.split(":")[-1].strip() for l in open(gerr) if "listening on" in l)
        paths = {"direct": ["-u", "unix:" + e_sock], "batchd": ["-u", "unix:" + b_sock], "route": ["-u", "unix:" + r_sock],
                 "gateway": ["--openai", f"http://127.0.0.1:{port}", "--model", "m"]}
        res = {k: [] for k in paths}
        for r in range(a.rounds):
            for name, target in paths.items():
                serve.log(f"round {r + 1}/{a.rounds}: {name}")
                res[name].append(serve.bench(target, 1, a.requests, prompts, 8, tmp))
        keys = ("median_ttft_ms", "p99_ttft_ms", "median_itl_ms", "p99_itl_ms")
        for name in paths:
            out[name] = {k: statistics.median(x[k] for x in res[name]) for k in keys}
        for k in keys:
            print(f"{k:15s} direct {out['direct'][k]:7.3f}  batchd {out['batchd'][k]:7.3f} "
                  f"({out['batchd'][k] - out['direct'][k]:+.3f})  route {out['route'][k]:7.3f} "
                  f"({out['route'][k] - out['direct'][k]:+.3f})  gateway {out['gateway'][k]:7.3f} "
                  f"({out['gateway'][k] - out['batchd'][k]:+.3f} over batchd)")
    finally:
        for p in list(serve.LIVE):
            serve.stop(p)
    if a.json:
        json.dump(out, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
