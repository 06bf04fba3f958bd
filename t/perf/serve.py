#!/usr/bin/env python3
"""The serving stack under load, measured with `sluice bench`, side by side
in one run, alternating (A B A B ...), medians of several rounds:

  overhead   infer-cpu straight, and batchd in front of the same infer-cpu:
             output tokens/s at 64 concurrent streams (the share batchd
             costs), and at concurrency 1 the median and p99 end-to-end
             latency added by the extra hop.
  gateway    sluice bench over HTTP (--openai) through gateway, against
             sluice bench straight to batchd: output tokens/s at 64 streams
             and TTFT p50/p99 at 64 and at 1.
  http       the peer part end to end over HTTP on both sides: gateway ->
             batchd -> infer-cpu against llama-server.
  peer       batchd + infer-cpu against llama.cpp's llama-server (-np slots,
             continuous batching, the same threads, the same KV size in
             tokens), at concurrency 1, 4, 16, 64: output tokens/s and
             p50/p99 TTFT. Both get the same prompts: lines of real text
             (GPL-3) of about --input-len tokens, max_tokens --output-len,
             ignore_eos, temperature 0. sluice is driven over its native protocol on a
             unix socket, llama-server over HTTP (/v1/completions, SSE) on
             loopback, as their users would (the gateway, sluice's HTTP
             front, is the next issue).

llama-server comes from LLAMA_SERVER (PEERS.md says how to build it); without
it the peer part is skipped. Runs take minutes on 2 cores.

  python3 t/perf/serve.py [-r RUNS] [-m MODEL] [--conc 1,4,16,64]
      [--input-len N] [--output-len N] [--only overhead,gateway,peer,http] [--engine-args ARGS] [--json FILE]
"""
import argparse, json, os, platform, shutil, signal, statistics, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SLUICE_BIN", os.path.join(root, "bin"))
TEXT = "/usr/share/common-licenses/GPL-3"
LIVE = []


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def isa():
    flags = open("/proc/cpuinfo").read()
    name = next((l.split(":", 1)[1].strip() for l in flags.splitlines() if l.startswith("model name")), "?")
    return name, "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"


def wait_file(path, secs=60):
    t = time.time()
    while time.time() - t < secs:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            return
        time.sleep(0.05)
    raise SystemExit(f"serve.py: fatal: {path}: not ready after {secs} s")


def start(cmd, ready=None, **kw):
    log("+", " ".join(cmd))
    if ready:
        # the daemon's readiness (-d 3) goes to the file ready
        cmd = ["sh", "-c", 'exec "$@" 3>"$0"', ready] + cmd
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    LIVE.append(p)
    if ready:
        wait_file(ready)
    return p


def stop(p):
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(30)
    except Exception:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except Exception:
            pass
    if p in LIVE:
        LIVE.remove(p)


def bench(target, conc, n, prompts, out_len, tmp):
    j = os.path.join(tmp, "b.json")
    cmd = [os.path.join(BIN, "sluice"), "bench"] + target + [
        "-c", str(conc), "-n", str(n), "--warmup", str(min(conc, 4)), "--dataset", "jsonl",
        "--file", prompts, "--output-len", str(out_len), "--timeout", "600", "--json", j]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    r = json.load(open(j))
    if r["failed"]:
        log(f"warning: {r['failed']} failed: {r['errors']}")
    return r


def make_prompts(path, want_tokens, count, out_len, tag=""):
    # lines of real text, joined until about want_tokens (4 bytes a token);
    # each prompt starts with its own tag, so that no run finds the prompts
    # of an earlier one in a prompt cache (both servers get the same file)
    words = open(TEXT).read().split()
    per = want_tokens * 4
    with open(path, "w") as f:
        i = 0
        for k in range(count):
            s = [f"[{tag}#{k}]"]
            while len(" ".join(s)) < per:
                s.append(words[i % len(words)])
                i += 1
            f.write(json.dumps({"prompt": " ".join(s), "max_tokens": out_len, "temperature": 0}) + "\n")


def med(rs, key):
    return statistics.median(r[key] for r in rs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-r", "--runs", type=int, default=3)
    ap.add_argument("-m", "--model")
    ap.add_argument("--conc", default="1,4,16,64")
    ap.add_argument("--input-len", type=int, default=128)
    ap.add_argument("--output-len", type=int, default=64)
    ap.add_argument("--max-seqs", type=int, default=64)
    ap.add_argument("--only", default="overhead,peer")
    ap.add_argument("--engine-args", default="", help="more infer-cpu options, e.g. --max-batch-tokens 2048")
    ap.add_argument("--json")
    a = ap.parse_args()
    model = a.model or subprocess.run([os.path.join(BIN, "sluice"), "model", "path"],
                                      capture_output=True, text=True, check=True).stdout.strip()
    cpu, flag = isa()
    log(f"machine: {os.cpu_count()} cores, {cpu}, {flag}; model {model}")
    tmp = tempfile.mkdtemp(prefix="serve.")
    out = {"machine": {"cores": os.cpu_count(), "cpu": cpu, "isa": flag}, "model": model}
    prompts = os.path.join(tmp, "prompts.jsonl")
    # KV: the same tokens on both sides: slots x (input + output + margin)
    slot_ctx = a.input_len * 2 + a.output_len + 64
    kv_tokens = a.max_seqs * slot_ctx
    e_sock, b_sock = os.path.join(tmp, "e"), os.path.join(tmp, "b")

    def engine():
        r = os.path.join(tmp, "eready")
        if os.path.exists(r):
            os.unlink(r)
        return start([os.path.join(BIN, "infer-cpu"), "-q", "-m", model, "-t", "2", "-l", "unix:" + e_sock,
                      "--max-seqs", str(a.max_seqs), "--ctx", str(slot_ctx),
                      "--kv-mem", str(kv_tokens * kv_bytes_per_token(model)), "-d", "3"] + a.engine_args.split(),
                     ready=r, stdin=subprocess.DEVNULL)

    def gateway():
        r = os.path.join(tmp, "gready")
        if os.path.exists(r):
            os.unlink(r)
        err = open(os.path.join(tmp, "gerr"), "w")
        p = start([os.path.join(BIN, "gateway"), "-q", "-m", model, "-u", "unix:" + b_sock, "-l", "tcp:127.0.0.1:0",
                   "--served-model-name", "m", "-d", "3"], ready=r, stdin=subprocess.DEVNULL, stderr=err)
        port = next(l.split(":")[-1].strip() for l in open(os.path.join(tmp, "gerr")) if "listening on" in l)
        return p, ["--openai", f"http://127.0.0.1:{port}", "--model", "m"]

    def batchd():
        r = os.path.join(tmp, "bready")
        if os.path.exists(r):
            os.unlink(r)
        return start([os.path.join(BIN, "batchd"), "-q", "-l", "unix:" + b_sock, "-u", "unix:" + e_sock, "-d", "3"],
                     ready=r, stdin=subprocess.DEVNULL)

    try:
        if "overhead" in a.only:
            e, b = engine(), batchd()
            res = {"direct64": [], "batchd64": [], "direct1": [], "batchd1": []}
            for k in range(a.runs):
                for name, sock in (("direct", e_sock), ("batchd", b_sock)):
                    log(f"overhead round {k + 1}/{a.runs}: {name}")
                    make_prompts(prompts, a.input_len, 192, a.output_len, f"o{k}{name}")
                    res[name + "64"].append(bench(["-u", "unix:" + sock], 64, 192, prompts, a.output_len, tmp))
                    make_prompts(prompts, a.input_len, 24, a.output_len, f"p{k}{name}")
                    res[name + "1"].append(bench(["-u", "unix:" + sock], 1, 24, prompts, a.output_len, tmp))
            stop(b)
            stop(e)
            d, bb = med(res["direct64"], "output_throughput"), med(res["batchd64"], "output_throughput")
            o = {"direct_tok_s": d, "batchd_tok_s": bb, "loss_pct": (1 - bb / d) * 100,
                 "c1_median_e2el_ms": [med(res["direct1"], "median_e2el_ms"), med(res["batchd1"], "median_e2el_ms")],
                 "c1_p99_e2el_ms": [med(res["direct1"], "p99_e2el_ms"), med(res["batchd1"], "p99_e2el_ms")]}
            o["added_median_ms"] = o["c1_median_e2el_ms"][1] - o["c1_median_e2el_ms"][0]
            o["added_p99_ms"] = o["c1_p99_e2el_ms"][1] - o["c1_p99_e2el_ms"][0]
            # one hop, one event: what batchd adds to the first token and to
            # each gap between tokens
            for k in ("median_ttft_ms", "p99_ttft_ms", "median_itl_ms", "p99_itl_ms"):
                o["c1_" + k] = [med(res["direct1"], k), med(res["batchd1"], k)]
                o["added_" + k] = o["c1_" + k][1] - o["c1_" + k][0]
            out["overhead"] = o
            print(f"overhead at 64 streams: direct {d:.1f} tok/s, through batchd {bb:.1f} tok/s "
                  f"({o['loss_pct']:+.2f}% lost); at 1 stream batchd adds {o['added_median_ms']:+.2f} ms "
                  f"(median e2e), {o['added_p99_ms']:+.2f} ms (p99); TTFT {o['added_median_ttft_ms']:+.3f} ms "
                  f"(median), {o['added_p99_ttft_ms']:+.3f} ms (p99); ITL {o['added_median_itl_ms']:+.3f} ms "
                  f"(median), {o['added_p99_itl_ms']:+.3f} ms (p99)")
            for k in ("c1_median_ttft_ms", "c1_p99_ttft_ms", "c1_median_itl_ms", "c1_p99_itl_ms",
                      "c1_median_e2el_ms", "c1_p99_e2el_ms"):
                print(f"  {k}: direct {o[k][0]:.3f}, batchd {o[k][1]:.3f}")
        if "gateway" in a.only:
            # the HTTP front's cost: sluice bench over HTTP through gateway
            # against sluice bench straight to batchd, same engine
            e, b = engine(), batchd()
            g, gt = gateway()
            res = {}
            for k in range(a.runs):
                for name, target in (("batchd", ["-u", "unix:" + b_sock]), ("gateway", gt)):
                    for c, n in ((64, 192), (1, 24)):
                        log(f"gateway round {k + 1}/{a.runs}: {name} c={c}")
                        make_prompts(prompts, a.input_len, n + 8, a.output_len, f"g{k}{name}{c}")
                        res.setdefault(f"{name}{c}", []).append(bench(target, c, n, prompts, a.output_len, tmp))
            stop(g)
            stop(b)
            stop(e)
            o = {}
            for c in (64, 1):
                d, gg = med(res[f"batchd{c}"], "output_throughput"), med(res[f"gateway{c}"], "output_throughput")
                o[f"c{c}"] = {"batchd_tok_s": d, "gateway_tok_s": gg, "loss_pct": (1 - gg / d) * 100}
                for k in ("median_ttft_ms", "p99_ttft_ms", "median_itl_ms", "p99_e2el_ms"):
                    o[f"c{c}"][k] = [med(res[f"batchd{c}"], k), med(res[f"gateway{c}"], k)]
                x = o[f"c{c}"]
                print(f"gateway at {c} streams: batchd {d:.1f} tok/s, through gateway {gg:.1f} tok/s "
                      f"({x['loss_pct']:+.2f}% lost); TTFT p50 {x['median_ttft_ms'][0]:.2f} -> "
                      f"{x['median_ttft_ms'][1]:.2f} ms, p99 {x['p99_ttft_ms'][0]:.2f} -> {x['p99_ttft_ms'][1]:.2f} ms "
                      f"(added {x['p99_ttft_ms'][1] - x['p99_ttft_ms'][0]:+.2f} ms)", flush=True)
            out["gateway"] = o
        server = os.environ.get("LLAMA_SERVER") or shutil.which("llama-server")
        if "peer" in a.only and not server:
            log("LLAMA_SERVER not set and no llama-server on PATH: the peer part is skipped")
        elif "peer" in a.only or "http" in a.only:
            port = free_port()
            ls = start([server, "-m", model, "-t", "2", "-np", str(a.max_seqs), "-c", str(kv_tokens),
                        "--host", "127.0.0.1", "--port", str(port), "--cont-batching", "--no-webui"],
                       stdout=open(os.path.join(tmp, "llama.log"), "w"), stderr=subprocess.STDOUT)
            wait_http(port)
            e, b = engine(), batchd()
            g, sluice_target = None, ["-u", "unix:" + b_sock]
            if "http" in a.only:
                # end to end over HTTP on both sides: gateway -> batchd -> infer-cpu
                g, sluice_target = gateway()
            rows = []
            for c in [int(x) for x in a.conc.split(",")]:
                n = max(2 * c, 16)
                s_runs, l_runs = [], []
                for k in range(a.runs):
                    log(f"peer c={c} round {k + 1}/{a.runs}")
                    # the same fresh prompts for both servers in a round
                    make_prompts(prompts, a.input_len, n + 8, a.output_len, f"c{c}r{k}")
                    s_runs.append(bench(sluice_target, c, n, prompts, a.output_len, tmp))
                    l_runs.append(bench(["--openai", f"http://127.0.0.1:{port}"], c, n, prompts, a.output_len, tmp))
                row = {"concurrency": c, "prompts": n}
                for side, rs in (("sluice", s_runs), ("llama", l_runs)):
                    row[side] = {k: med(rs, k) for k in ("output_throughput", "median_ttft_ms", "p99_ttft_ms",
                                                         "median_tpot_ms", "p99_e2el_ms")}
                row["throughput_ratio"] = row["sluice"]["output_throughput"] / row["llama"]["output_throughput"]
                rows.append(row)
                print(f"c={c:3d}: sluice {row['sluice']['output_throughput']:7.1f} tok/s, p50/p99 TTFT "
                      f"{row['sluice']['median_ttft_ms']:.0f}/{row['sluice']['p99_ttft_ms']:.0f} ms | llama-server "
                      f"{row['llama']['output_throughput']:7.1f} tok/s, {row['llama']['median_ttft_ms']:.0f}/"
                      f"{row['llama']['p99_ttft_ms']:.0f} ms | throughput {row['throughput_ratio']:.2f}x", flush=True)
            out["http" if g else "peer"] = rows
            if g:
                stop(g)
            stop(b)
            stop(e)
            stop(ls)
    finally:
        for p in list(LIVE):
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        json.dump(out, open(a.json, "w"), indent=1)


def kv_bytes_per_token(model):
    # layers x (K + V) x kv heads x head size x 2 bytes (F16), as both engines keep it
    out = subprocess.run([os.path.join(BIN, "sluice"), "gguf", "kv", model], capture_output=True, text=True).stdout
    kv = {l.split("\t")[0]: l.split("\t")[-1] for l in out.splitlines() if "\t" in l}
    g = lambda k: int(next(v for key, v in kv.items() if key.endswith(k)))
    layers, heads, kvh, dim = g(".block_count"), g(".attention.head_count"), g(".attention.head_count_kv"), g(".embedding_length")
    return layers * 2 * kvh * (dim // heads) * 2


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_http(port, secs=120):
    import http.client
    t = time.time()
    while time.time() - t < secs:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("serve.py: fatal: llama-server did not get ready")


if __name__ == "__main__":
    main()
