#!/usr/bin/env python3
"""Serving, measured by one client on both sides: `sluice bench` against
infer-cpu on a unix socket (the native protocol) and against llama-server
(--openai, POST /v1/completions, streamed), same GGUF, same threads, same
slots, the same prompts, alternating the two servers (A B A B ...), medians
of the rounds.

  prompts   --prompts N token-id prompts per concurrency (seeded, ids in
            100..49000 as llama-bench draws them), --input-len tokens each,
            max_tokens --output-len, ignore_eos: one JSONL file, sent as
            "tokens" to infer-cpu and as a token-id "prompt" to llama-server,
            so that both prefill exactly the same ids.
  load      --sweep concurrencies (default 1,4), 2 warm-up requests each;
            llama-server with -np max(sweep) slots of 1024 tokens, infer-cpu
            with --max-seqs max(sweep).
  figures   per concurrency: output throughput (tok/s), TTFT p50, TPOT p50
            and ITL p50 (ms), each server's median over the rounds, and the
            ratio sluice / llama.cpp (above 1 is better for sluice in
            throughput, worse in latencies).

LLAMA_SERVER (or llama-server on PATH) is the peer; without it only
sluice's figures are printed. INFER_CPU overrides bin/infer-cpu.

  python3 t/perf/serve.py [-r ROUNDS] [-m MODEL] [-t THREADS] [--sweep 1,4]
      [--prompts N] [--input-len N] [--output-len N]
"""
import argparse, json, os, random, shutil, statistics, subprocess, sys, tempfile, time
import urllib.request

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SLUICE_BIN", os.path.join(root, "bin"))
INFER = os.environ.get("INFER_CPU", os.path.join(BIN, "infer-cpu"))
SLUICE = os.path.join(BIN, "sluice")
FIGS = [("output_throughput", "out tok/s"), ("median_ttft_ms", "TTFT p50 ms"),
        ("median_tpot_ms", "TPOT p50 ms"), ("median_itl_ms", "ITL p50 ms")]


def peer(var, name):
    p = os.environ.get(var) or shutil.which(name)
    return p if p and os.access(p, os.X_OK) else None


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def start_sluice(a, tmp, slots):
    sock = os.path.join(tmp, "infer.sock")
    r, w = os.pipe()
    p = subprocess.Popen([INFER, "-q", "-m", a.model, "-t", str(a.threads), "--max-seqs", str(slots),
                          "-l", "unix:" + sock, "-d", str(w)], pass_fds=(w,), stderr=subprocess.DEVNULL)
    os.close(w)
    ready = os.read(r, 1)       # -d: a newline once it listens; EOF if it died
    os.close(r)
    if not ready:
        stop(p)
        sys.exit("serve.py: infer-cpu exited %s before it was ready" % p.returncode)
    return p, ["-u", "unix:" + sock]


def start_llama(a, tmp, slots):
    port = free_port()
    p = subprocess.Popen([a.llama_server, "-m", a.model, "-t", str(a.threads), "--host", "127.0.0.1",
                          "--port", str(port), "-np", str(slots), "-c", str(slots * 1024)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port
    for _ in range(600):
        try:
            if urllib.request.urlopen(url + "/health", timeout=1).status == 200:
                return p, ["--openai", url]
        except Exception:
            pass
        if p.poll() is not None:
            sys.exit("serve.py: llama-server exited %d" % p.returncode)
        time.sleep(0.1)
    stop(p)
    sys.exit("serve.py: llama-server did not come up in 60 s")


def bench(a, target, prompts, out):
    cmd = [SLUICE, "bench"] + target + ["--dataset", "jsonl", "--file", prompts, "-n", str(a.prompts),
                                        "--sweep", a.sweep, "--warmup", "2", "--timeout", "600",
                                        "--json", out]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        runs = json.load(f)["runs"]
    for r in runs:
        if r["failed"]:
            sys.exit("serve.py: %s: %d requests failed: %s" % (target[-1], r["failed"], r["errors"]))
    return runs


def main():
    ap = argparse.ArgumentParser(description="sluice bench against infer-cpu and llama-server")
    ap.add_argument("-r", "--rounds", type=int, default=3)
    ap.add_argument("-m", "--model", default=None)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--sweep", default="1,4")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--input-len", type=int, default=128)
    ap.add_argument("--output-len", type=int, default=64)
    a = ap.parse_args()
    if not a.model:
        a.model = subprocess.run([SLUICE, "model", "path"], capture_output=True, text=True).stdout.strip()
    if not os.path.exists(a.model):
        sys.exit("serve.py: no model (run `sluice model fetch`, or give -m)")
    a.llama_server = peer("LLAMA_SERVER", "llama-server")
    slots = max(int(c) for c in a.sweep.split(","))
    sides = [("sluice", start_sluice)] + ([("llama.cpp", start_llama)] if a.llama_server else [])
    tmp = tempfile.mkdtemp(prefix="sluice-serve.")
    prompts = os.path.join(tmp, "prompts.jsonl")
    rng = random.Random(7)
    with open(prompts, "w") as f:
        for _ in range(a.prompts):
            ids = [rng.randrange(100, 49000) for _ in range(a.input_len)]
            f.write(json.dumps({"tokens": ids, "max_tokens": a.output_len}) + "\n")
    got = {name: [] for name, _ in sides}          # name -> rounds -> runs
    for rnd in range(a.rounds):
        for name, start in sides:
            p, target = start(a, tmp, slots)
            try:
                got[name].append(bench(a, target, prompts, os.path.join(tmp, "out.json")))
            finally:
                stop(p)
            print("serve.py: round %d/%d: %s done" % (rnd + 1, a.rounds, name), file=sys.stderr)
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    print("serving: %s, %d threads, %d prompts of %d tokens, max_tokens %d, medians of %d rounds; "
          "%d CPUs (%s)" % (os.path.basename(a.model), a.threads, a.prompts, a.input_len, a.output_len,
                            a.rounds, os.cpu_count(), cpu))
    print("%-12s %-12s %12s %12s %8s" % ("concurrency", "figure", "sluice", "llama.cpp", "ratio"))
    for i, c in enumerate(a.sweep.split(",")):
        for key, label in FIGS:
            med = {n: statistics.median(rs[i][key] for rs in got[n]) for n in got}
            s, l = med["sluice"], med.get("llama.cpp")
            print("%-12s %-12s %12.2f %12s %8s" % (c, label, s, "%.2f" % l if l else "-",
                                                  "%.2f" % (s / l) if l else "-"))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
