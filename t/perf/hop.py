#!/usr/bin/env python3
"""What one hop adds: the latency batchd, route (one replica, prefix
policy, tokenizing each prompt) and gateway add in front of the engine, measured where the engine itself is too fast to hide it.

A tiny random-weight model (sluice model synth, dim 256, 2 layers) answers
in about a millisecond, so time to first token and the gaps between tokens
are mostly the path, not the model. sluice bench at concurrency 1 sends the
same short requests (16 tokens in, 8 out) straight to infer-cpu, through
batchd, through route, and through gateway -> batchd (HTTP, /v1/completions, SSE),
alternating the four in every round; the report is the median over rounds
of each path's median and p99 TTFT and ITL, and what each hop adds. Where
redis-server is installed, a fifth path: batchd feeding a Redis stream that
one infer-cpu worker reads, and requests/s at concurrency 64 with one token
out, through batchd on a unix socket and over the stream.

  python3 t/perf/hop.py [-r ROUNDS] [-n REQUESTS] [--json FILE]
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile

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
    prompts_many = os.path.join(tmp, "many.jsonl")
    with open(prompts_many, "w") as f:
        for k in range(2100):
            f.write(json.dumps({"prompt": f"job {k}", "max_tokens": 1, "temperature": 0}) + "\n")
    out = {"machine": {"cores": os.cpu_count(), "cpu": cpu, "isa": flag}}
    redis_dir = rport = None
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
        redis_dir = None
        if shutil.which("redis-server"):
            # a Redis stream as the engine's way in: a worker reads the
            # stream, batchd is its producer
            redis_dir = tempfile.mkdtemp(prefix="hop-redis.")
            rport = serve.free_port()
            subprocess.run(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no", "--dir", redis_dir, "--daemonize", "yes",
                            "--pidfile", os.path.join(redis_dir, "pid"), "--logfile", os.path.join(redis_dir, "log")],
                           check=True, stdout=subprocess.DEVNULL)
            url = f"redis://127.0.0.1:{rport}/hop"
            serve.start([os.path.join(BIN, "infer-cpu"), "-q", "-m", model, "-t", "1", "-l", url],
                        stdin=subprocess.DEVNULL)
            rb_sock = os.path.join(tmp, "rb")
            serve.start([os.path.join(BIN, "batchd"), "-q", "-l", "unix:" + rb_sock, "-u", url, "-d", "3"],
                        ready=os.path.join(tmp, "rbr"), stdin=subprocess.DEVNULL)
            paths["redis"] = ["-u", "unix:" + rb_sock]
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
        if "redis" in paths:
            for k in keys:
                print(f"{k:15s} batchd over a Redis stream {out['redis'][k]:7.3f} "
                      f"({out['redis'][k] - out['batchd'][k]:+.3f} over batchd on a unix socket)")
            # jobs/s: many short requests at concurrency 64, both ways in
            thr = {}
            for name in ("batchd", "redis"):
                rs = [serve.bench(paths[name], 64, 2000, prompts_many, 1, tmp) for _ in range(3)]
                thr[name] = statistics.median(r["request_throughput"] for r in rs)
            out["jobs_per_s"] = thr
            print(f"requests/s at 64 at once, 1 token out: batchd on a unix socket {thr['batchd']:.0f}, "
                  f"over a Redis stream {thr['redis']:.0f}")
    finally:
        for p in list(serve.LIVE):
            serve.stop(p)
        if redis_dir:
            subprocess.run(["redis-cli", "-p", str(rport), "shutdown", "nosave"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    if a.json:
        json.dump(out, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
