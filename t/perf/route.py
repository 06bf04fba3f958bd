#!/usr/bin/env python3
"""route under load, measured with sluice bench, side by side in one run:

  policies   3 replicas (infer-cpu -t 1 each, the default model, --kv-mem
             48 MiB: about 2,100 tokens each) behind route --policy prefix,
             least and rr in turn, each on fresh engines (empty prefix
             caches), the same workload in a round: sluice bench's prefix
             set (12 shared system prompts of 384 tokens, each request one
             of them and a random tail of 32; more than one replica's cache
             holds, a third of it fits), concurrency 6. Prefix-cache hit rate (cached /
             prompt tokens, from the engines' usage), p50/p99 TTFT, output
             tokens/s; medians of the rounds. On a 2-core machine three
             one-thread replicas share two cores: the comparison holds, the
             absolute figures are a crowded machine's.
  scaling    route --policy least over 1 and over 2 replicas of -t 1 (a
             replica per core): output tokens/s at 16 streams.
  overhead   one replica (-t 2) straight, and route in front of it: output
             tokens/s at 64 concurrent streams.

  python3 t/perf/route.py [-r ROUNDS] [--only policies,scaling,overhead] [--json FILE]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve  # noqa: E402  (start, stop, bench, make_prompts, isa, BIN)

BIN = serve.BIN


def engine(model, sock, threads, kv_mem, extra=()):
    r = sock + ".ready"
    if os.path.exists(r):
        os.unlink(r)
    return serve.start([os.path.join(BIN, "infer-cpu"), "-q", "-m", model, "-t", str(threads), "-l", "unix:" + sock,
                        "--kv-mem", str(kv_mem), "-d", "3"] + list(extra), ready=r, stdin=subprocess.DEVNULL)


def route(model, sock, ups, policy):
    r = sock + ".ready"
    if os.path.exists(r):
        os.unlink(r)
    cmd = [os.path.join(BIN, "route"), "-q", "-m", model, "--policy", policy, "-l", "unix:" + sock, "-d", "3"]
    for u in ups:
        cmd += ["-u", "unix:" + u]
    return serve.start(cmd, ready=r, stdin=subprocess.DEVNULL)


def stats(sock):
    out = subprocess.run([sys.executable, os.path.join(serve.root, "t", "batchd", "clients.py"), "stats", sock],
                         capture_output=True, text=True, timeout=30).stdout
    return json.loads(out)


def bench_prefix(sock, seed, a, tmp):
    j = os.path.join(tmp, "b.json")
    subprocess.run([os.path.join(BIN, "sluice"), "bench", "-u", "unix:" + sock, "-c", "6", "-n", str(a.prompts),
                    "--warmup", "0", "--dataset", "prefix", "--num-prefixes", str(a.num_prefixes),
                    "--prefix-len", str(a.prefix_len), "--input-len", "32", "--output-len", "16",
                    "--seed", str(seed), "--timeout", "600", "--json", j], check=True, stdout=subprocess.DEVNULL)
    return json.load(open(j))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-r", "--rounds", type=int, default=3)
    ap.add_argument("-m", "--model")
    ap.add_argument("--only", default="policies,scaling,overhead")
    ap.add_argument("--prompts", type=int, default=48)
    ap.add_argument("--num-prefixes", type=int, default=12)
    ap.add_argument("--prefix-len", type=int, default=384)
    ap.add_argument("--kv-mem", type=int, default=48, help="MiB of KV cache per replica (policies)")
    ap.add_argument("--json")
    a = ap.parse_args()
    model = a.model or subprocess.run([os.path.join(BIN, "sluice"), "model", "path"],
                                      capture_output=True, text=True, check=True).stdout.strip()
    cpu, flag = serve.isa()
    serve.log(f"machine: {os.cpu_count()} cores, {cpu}, {flag}; model {model}")
    out = {"machine": {"cores": os.cpu_count(), "cpu": cpu, "isa": flag}, "model": model}
    tmp = tempfile.mkdtemp(prefix="route.")
    try:
        if "policies" in a.only:
            res = {p: [] for p in ("prefix", "least", "rr")}
            for k in range(a.rounds):
                for pol in res:
                    serve.log(f"policies round {k + 1}/{a.rounds}: {pol}")
                    socks = [os.path.join(tmp, f"e{i}") for i in range(3)]
                    es = [engine(model, s, 1, a.kv_mem << 20) for s in socks]
                    rt = route(model, os.path.join(tmp, "r"), socks, pol)
                    b = bench_prefix(os.path.join(tmp, "r"), 1000 + k, a, tmp)
                    st = stats(os.path.join(tmp, "r"))
                    b["route_prefix_hits"] = sum(r["prefix_hits"] for r in st["replicas"])
                    b["routed"] = [r["routed"] for r in st["replicas"]]
                    b["hit_rate"] = b["total_cached_tokens"] / max(1, b["total_input_tokens"])
                    res[pol].append(b)
                    serve.stop(rt)
                    for e in es:
                        serve.stop(e)
            out["policies"] = {}
            for pol, rs in res.items():
                row = {k: statistics.median(r[k] for r in rs)
                       for k in ("hit_rate", "median_ttft_ms", "p99_ttft_ms", "output_throughput", "route_prefix_hits")}
                row["routed"] = [r["routed"] for r in rs]
                out["policies"][pol] = row
                print(f"{pol:7s} prefix-cache hit rate {row['hit_rate'] * 100:5.1f}%, TTFT p50/p99 "
                      f"{row['median_ttft_ms']:.0f}/{row['p99_ttft_ms']:.0f} ms, {row['output_throughput']:.1f} tok/s, "
                      f"routed {row['routed'][-1]}", flush=True)
        if "scaling" in a.only:
            # one replica (-t 1) and two (-t 1 each), both behind route: a
            # replica per core, on a 2-core machine
            res = {1: [], 2: []}
            prompts = os.path.join(tmp, "p.jsonl")
            for k in range(a.rounds):
                for n in (1, 2):
                    serve.log(f"scaling round {k + 1}/{a.rounds}: {n} replica(s)")
                    socks = [os.path.join(tmp, f"s{i}") for i in range(n)]
                    es = [engine(model, s, 1, 256 << 20, ["--max-seqs", "32"]) for s in socks]
                    rt = route(model, os.path.join(tmp, "rs"), socks, "least")
                    serve.make_prompts(prompts, 128, 72, 32, f"s{k}n{n}")
                    res[n].append(serve.bench(["-u", "unix:" + os.path.join(tmp, "rs")], 16, 64, prompts, 32, tmp))
                    serve.stop(rt)
                    for e in es:
                        serve.stop(e)
            one = statistics.median(r["output_throughput"] for r in res[1])
            two = statistics.median(r["output_throughput"] for r in res[2])
            out["scaling"] = {"one_tok_s": one, "two_tok_s": two, "ratio": two / one}
            print(f"scaling at 16 streams: 1 replica {one:.1f} tok/s, 2 replicas {two:.1f} tok/s ({two / one:.2f}x)",
                  flush=True)
        if "overhead" in a.only:
            e_sock, r_sock = os.path.join(tmp, "e"), os.path.join(tmp, "r1")
            e = engine(model, e_sock, 2, 256 << 20, ["--max-seqs", "64"])
            rt = route(model, r_sock, [e_sock], "prefix")
            res = {"direct": [], "route": []}
            prompts = os.path.join(tmp, "p.jsonl")
            for k in range(a.rounds):
                for name, sock in (("direct", e_sock), ("route", r_sock)):
                    serve.log(f"overhead round {k + 1}/{a.rounds}: {name}")
                    serve.make_prompts(prompts, 128, 136, 32, f"r{k}{name}")
                    res[name].append(serve.bench(["-u", "unix:" + sock], 64, 128, prompts, 32, tmp))
            serve.stop(rt)
            serve.stop(e)
            d = statistics.median(r["output_throughput"] for r in res["direct"])
            r = statistics.median(r["output_throughput"] for r in res["route"])
            out["overhead"] = {"direct_tok_s": d, "route_tok_s": r, "loss_pct": (1 - r / d) * 100}
            print(f"overhead at 64 streams: direct {d:.1f} tok/s, through route {r:.1f} tok/s "
                  f"({(1 - r / d) * 100:+.2f}% lost)", flush=True)
    finally:
        for p in list(serve.LIVE):
            serve.stop(p)
    if a.json:
        json.dump(out, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
