#!/usr/bin/env python3
"""Checks what `metrics` says against the events it was given (t/6001-metrics.bats).

  check.py requests OUT                    the requests of the live run (msgpack)
  check.py scrape URL OUT [METHOD]         GET (or METHOD) URL into OUT; prints the status and the Content-Type
  check.py events EVENTS PROM [SOURCE]     the Prometheus text PROM against the event file EVENTS
  check.py summary EVENTS SUMMARY          the -s table against EVENTS
  check.py hostile OUT                     a hostile event stream (every wrong shape, no framing error)
  check.py flood OUT N                     N streamed events of N distinct ids, never finished
  check.py rss CMD...                      runs CMD (stdin inherited, stdout dropped), prints its exit status and peak RSS in MiB
  check.py poll PROM EP_UP EP_DOWN         one daemon up, answering stats; one down
  check.py send EP EVENTS                  writes the file EVENTS to the socket EP (unix:PATH), then closes
  check.py ask EP REQUESTS OUT             sends REQUESTS to the engine at EP, its events into OUT
  check.py stats EP                        does the daemon at EP answer {"op": "stats"}? (yes/no)
  check.py polled EVENTS PROM EP [batchd]  the series of EP in PROM against the events it answered
  check.py replicas URL EP EXPR [SECS]     scrapes URL until the Python EXPR over R, the replica_*
                                           series of EP ([{"replica": name, "up": v, "running": v,
                                           "routed": v, "prefix_hits": v, "lost": v}] in their order,
                                           a figure not served left out), is true; exit 1 and R if
                                           not within SECS (default: one look)
  check.py fakeroute SOCK                  a daemon on unix:SOCK whose stats carry a hostile
                                           "replicas" list (see cmd_fakeroute); runs until killed

Exits 1 with a message naming the first figure that differs.
"""
import json
import math
import os
import resource
import socket
import socketserver
import subprocess
import sys
import time
import urllib.error
import urllib.request

import msgpack
from prometheus_client.parser import text_string_to_metric_families

TTFT = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
        20.0, 40.0, 80.0, 160.0, 640.0, 2560.0]
ITL = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
       20.0, 40.0, 80.0]
REQ = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
       240.0, 480.0, 960.0, 1920.0, 7680.0]
# name -> (bounds, from, to)
HISTS = {
    "time_to_first_token_seconds": (TTFT, "arrived", "first_token"),
    "e2e_request_latency_seconds": (REQ, "arrived", "done"),
    "request_queue_time_seconds": (REQ, "arrived", "scheduled"),
    "request_prefill_time_seconds": (REQ, "scheduled", "first_token"),
    "request_decode_time_seconds": (REQ, "first_token", "done"),
    "request_inference_time_seconds": (REQ, "scheduled", "done"),
}
REJECT = ("overloaded", "rate_limited", "draining", "timeout")


def fail(what):
    print("MISMATCH: " + what)
    sys.exit(1)


def same(what, got, want, tol=0.0):
    if isinstance(want, float) or tol:
        if not math.isclose(got, want, rel_tol=1e-9, abs_tol=tol or 1e-12):
            fail("%s: metrics says %r, the events say %r" % (what, got, want))
    elif got != want:
        fail("%s: metrics says %r, the events say %r" % (what, got, want))
    print("ok %s = %r" % (what, got))


def read_events(path):
    with open(path, "rb") as f:
        return list(msgpack.Unpacker(f, raw=False, strict_map_key=False))


def pos(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else 0


def expect(events):
    """Every figure metrics should derive from events, the way metrics(1) says."""
    e = {"finish": {}, "errors": {}, "reject": {}, "prompt": 0, "gen": 0, "cached": 0,
         "hist": {n: [] for n in HISTS}, "itl_count": 0, "finals": 0,
         "ttft": [], "e2e": [], "tpot": [], "t0": 0, "t1": 0}
    live = set()
    for ev in events:
        if not isinstance(ev, dict):
            continue
        i = ev.get("id") if isinstance(ev.get("id"), str) else None
        toks = ev.get("tokens")
        has_tok = isinstance(toks, list) and len(toks) > 0
        fin = ev.get("finish")
        if not isinstance(fin, str):
            if i is not None:
                if i in live and has_tok:
                    e["itl_count"] += 1
                elif has_tok:
                    live.add(i)
            continue
        err = ev.get("error") if isinstance(ev.get("error"), dict) else {}
        code = err.get("code") if isinstance(err.get("code"), str) else None
        dup = False
        if fin == "error":
            c = code if code is not None else "unknown"
            e["errors"][c] = e["errors"].get(c, 0) + 1
            if c in REJECT:
                e["reject"][c] = e["reject"].get(c, 0) + 1
            dup = c == "duplicate_id"
        if i is not None and not dup and i in live:
            if has_tok:
                e["itl_count"] += 1
            live.discard(i)
        e["finish"][fin] = e["finish"].get(fin, 0) + 1
        e["finals"] += 1
        u = ev.get("usage") if isinstance(ev.get("usage"), dict) else {}
        p = u.get("prompt_tokens") if isinstance(u.get("prompt_tokens"), int) else None
        g = u.get("completion_tokens") if isinstance(u.get("completion_tokens"), int) else None
        if p is not None:
            e["prompt"] += p
        if g is not None:
            e["gen"] += g
        if isinstance(u.get("cached_tokens"), int):
            e["cached"] += min(u["cached_tokens"], p or 0)
        t = ev.get("t") if isinstance(ev.get("t"), dict) else {}
        ts = {k: pos(t.get(k)) for k in ("arrived", "scheduled", "first_token", "done")}
        if fin == "timeout" and ts["arrived"] and not ts["scheduled"]:
            e["reject"]["timeout"] = e["reject"].get("timeout", 0) + 1
        for name, (_, a, b) in HISTS.items():
            if ts[a] and ts[b] and ts[b] - ts[a] >= 0:
                e["hist"][name].append(ts[b] - ts[a])
        if ts["arrived"] and ts["first_token"] and ts["first_token"] >= ts["arrived"]:
            e["ttft"].append(ts["first_token"] - ts["arrived"])
        if ts["arrived"] and ts["done"] and ts["done"] >= ts["arrived"]:
            e["e2e"].append(ts["done"] - ts["arrived"])
        if ts["first_token"] and ts["done"] and ts["done"] >= ts["first_token"] and g is not None and g > 1:
            e["tpot"].append((ts["done"] - ts["first_token"]) / (g - 1))
        if ts["arrived"] and (not e["t0"] or ts["arrived"] < e["t0"]):
            e["t0"] = ts["arrived"]
        if ts["done"] and ts["done"] > e["t1"]:
            e["t1"] = ts["done"]
    return e


def families(path):
    with open(path) as f:
        text = f.read()
    fams = {}
    for fam in text_string_to_metric_families(text):
        if fam.name in fams:
            fail("family %s comes in two blocks" % fam.name)
        fams[fam.name] = fam
    return fams


def samples(fams, name, **labels):
    """{sample name: [(labels, value)]} of family name whose labels include labels"""
    out = {}
    fam = fams.get(name)
    if fam is None:
        fail("no family " + name)
    for s in fam.samples:
        if all(s.labels.get(k) == v for k, v in labels.items()):
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def one(fams, name, sample, **labels):
    got = samples(fams, name, **labels).get(sample, [])
    if len(got) != 1:
        fail("%s%r: %d samples, want 1" % (sample, labels, len(got)))
    return got[0][1]


def by_label(fams, name, sample, label, **labels):
    return {l[label]: v for l, v in samples(fams, name, **labels).get(sample, []) if v}


def check_hist(fams, name, bounds, values, src, sum_check=True):
    s = samples(fams, "sluice:" + name, **src)
    buckets = {float(l["le"]): v for l, v in s.get("sluice:%s_bucket" % name, [])}
    if sorted(buckets) != sorted(bounds + [math.inf]):
        fail("%s: buckets %r are not vLLM's" % (name, sorted(buckets)))
    for le in bounds + [math.inf]:
        want = sum(1 for v in values if v <= le)
        if buckets[le] != want:
            fail("%s_bucket{le=%r}: metrics says %r, the events say %r" % (name, le, buckets[le], want))
    same(name + "_count", one(fams, "sluice:" + name, "sluice:%s_count" % name, **src), float(len(values)))
    if sum_check:
        same(name + "_sum", one(fams, "sluice:" + name, "sluice:%s_sum" % name, **src), float(sum(values)),
             1e-9)
    print("ok %s: %d buckets as the events say" % (name, len(bounds) + 1))


def cmd_events(ev_path, prom_path, source="events"):
    e = expect(read_events(ev_path))
    fams = families(prom_path)
    src = {"source": source}
    same("finals", sum(by_label(fams, "sluice:request_success", "sluice:request_success_total",
                                "finished_reason", **src).values()), float(e["finals"]))
    same("request_success_total by finished_reason",
         by_label(fams, "sluice:request_success", "sluice:request_success_total", "finished_reason", **src),
         {k: float(v) for k, v in e["finish"].items()})
    same("request_errors_total by code",
         by_label(fams, "sluice:request_errors", "sluice:request_errors_total", "code", **src),
         {k: float(v) for k, v in e["errors"].items()})
    same("admission_rejections_total by reason",
         by_label(fams, "sluice:admission_rejections", "sluice:admission_rejections_total", "reason", **src),
         {k: float(v) for k, v in e["reject"].items()})
    same("prompt_tokens_total", one(fams, "sluice:prompt_tokens", "sluice:prompt_tokens_total", **src),
         float(e["prompt"]))
    same("generation_tokens_total",
         one(fams, "sluice:generation_tokens", "sluice:generation_tokens_total", **src), float(e["gen"]))
    same("prefix_cache_queries_total",
         one(fams, "sluice:prefix_cache_queries", "sluice:prefix_cache_queries_total", **src), float(e["prompt"]))
    same("prefix_cache_hits_total",
         one(fams, "sluice:prefix_cache_hits", "sluice:prefix_cache_hits_total", **src), float(e["cached"]))
    for name, (bounds, _, _) in HISTS.items():
        check_hist(fams, name, bounds, e["hist"][name], src)
    # ITL: gaps between events as they reached metrics: the count is the events', the sum is metrics' own
    s = samples(fams, "sluice:inter_token_latency_seconds", **src)
    same("inter_token_latency_seconds_count", one(fams, "sluice:inter_token_latency_seconds",
                                                  "sluice:inter_token_latency_seconds_count", **src),
         float(e["itl_count"]))
    itl_sum = one(fams, "sluice:inter_token_latency_seconds", "sluice:inter_token_latency_seconds_sum", **src)
    if not 0 <= itl_sum <= (e["t1"] - e["t0"]) * max(1, e["itl_count"]):
        fail("inter_token_latency_seconds_sum %r out of range" % itl_sum)
    inf = [v for l, v in s["sluice:inter_token_latency_seconds_bucket"] if l["le"] == "+Inf"]
    same("inter_token_latency_seconds_bucket{le=+Inf}", inf, [float(e["itl_count"])])
    return e


def percentile(v, p):
    """numpy's default (linear) percentile"""
    v = sorted(v)
    r = p / 100 * (len(v) - 1)
    lo = math.floor(r)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (r - lo)


def cmd_summary(ev_path, sum_path):
    e = expect(read_events(ev_path))
    rows = {}
    with open(sum_path) as f:
        for line in f:
            w = line.split()
            if w:
                rows[w[0]] = w[1:]
    same("requests", int(rows["requests"][0]), e["finals"])
    same("output_tokens", int(rows["output_tokens"][0]), e["gen"])
    for k, v in e["finish"].items():
        same("finished_" + k, int(rows["finished_" + k][0]), v)
    span = e["t1"] - e["t0"]
    same("duration_s", float(rows["duration_s"][0]), span, 2e-6)
    same("output_tokens_per_s", float(rows["output_tokens_per_s"][0]), e["gen"] / span, 2e-3)
    if rows["metric"] != ["count", "mean", "p50", "p90", "p99"]:
        fail("table header %r" % rows["metric"])
    for name, vals in (("ttft_s", e["ttft"]), ("e2e_s", e["e2e"]), ("tpot_s", e["tpot"])):
        r = rows[name]
        same(name + " count", int(r[0]), len(vals))
        same(name + " mean", float(r[1]), sum(vals) / len(vals), 2e-6)
        for col, p in ((2, 50), (3, 90), (4, 99)):
            same("%s p%d" % (name, p), float(r[col]), percentile(vals, p), 2e-6)
    same("itl_s count", int(rows["itl_s"][0]), e["itl_count"])
    return rows


def cmd_scrape(url, out, method="GET"):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as r:
            body, status, ctype = r.read(), r.status, r.headers.get("Content-Type")
    except urllib.error.HTTPError as err:
        body, status, ctype = err.read(), err.code, err.headers.get("Content-Type")
    with open(out, "wb") as f:
        f.write(body)
    print(status, ctype)


def cmd_requests(out):
    """The live run: streamed and whole answers, a shared prefix (cache hits),
    timeouts, a duplicate id, bad and too long requests."""
    rq = []
    base = [(7 * k) % 250 + 3 for k in range(40)]
    for i in range(16):
        r = {"id": "r%d" % i, "tokens": base[: 20 + i] if i % 4 else [5 + i, 9, 11],
             "max_tokens": 2 + (i * 5) % 17, "ignore_eos": True, "stream": i % 2 == 0}
        rq.append(r)
    rq.append({"id": "slow", "tokens": [1, 2, 3], "max_tokens": 200, "timeout_ms": 1, "stream": True,
               "ignore_eos": True})
    rq.append({"id": "twice", "tokens": [4, 5, 6], "max_tokens": 30, "stream": True, "ignore_eos": True})
    rq.append({"id": "twice", "tokens": [4, 5, 6], "max_tokens": 3})
    rq.append({"id": "bad", "max_tokens": 3})
    rq.append({"id": "long", "tokens": [7] * 300, "max_tokens": 3})
    rq.append({"id": "one", "tokens": [8, 9], "max_tokens": 1, "stream": True})
    with open(out, "wb") as f:
        for r in rq:
            f.write(msgpack.packb(r))


def cmd_hostile(out):
    p = msgpack.packb
    evs = [
        [1, 2, 3], "just a string", 42, None, {},
        {"id": 5, "finish": "stop"},
        {"id": "a", "finish": 7},
        {"id": "a", "tokens": "nope"},
        {"id": "a", "tokens": [1]},
        {"id": "a", "tokens": [1], "finish": "stop", "usage": "lots", "t": [1, 2]},
        {"id": "b", "finish": "length", "usage": {"prompt_tokens": -4, "completion_tokens": 2**64 - 1},
         "t": {"arrived": "yesterday", "scheduled": float("nan"), "first_token": float("inf"), "done": -1}},
        {"id": "c", "finish": "length", "usage": {"completion_tokens": 3},
         "t": {"arrived": 1000.0, "first_token": 999.0, "done": 1001.0}},
        {"id": "d", "finish": "error", "error": "no"},
        {"id": "e", "finish": "error", "error": {"code": "x\"y\\z\n\x01\u00e9" * 20, "message": 3}},
        {"finish": "error", "error": {"code": "bad_request"}},
        {"id": "x" * 100000, "tokens": [1]},
        {"id": "x" * 100000, "tokens": [1], "finish": "stop"},
        {"id": "f", "finish": "weird\"reason\n"},
    ]
    for k in range(100):
        evs.append({"id": "g%d" % k, "finish": "error", "error": {"code": "code%d" % k}})
    with open(out, "wb") as f:
        for e in evs:
            f.write(p(e))
        f.write(b"\xc1")   # never valid msgpack: the stream is broken here


def cmd_flood(out, n):
    with open(out, "wb") as f:
        for k in range(int(n)):
            f.write(msgpack.packb({"id": "flood-%d-%s" % (k, "y" * 40), "tokens": [1, 2]}))


def cmd_rss(*argv):
    r = subprocess.run(list(argv), stdout=subprocess.DEVNULL)
    print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)


def cmd_poll(prom, ep_up, ep_down):
    fams = families(prom)
    same("up of " + ep_down, one(fams, "sluice:up", "sluice:up", endpoint=ep_down), 0.0)
    same("up of " + ep_up, one(fams, "sluice:up", "sluice:up", endpoint=ep_up), 1.0)
    for name in ("sluice:request_success", "sluice:time_to_first_token_seconds", "sluice:prompt_tokens"):
        if samples(fams, name, endpoint=ep_down):
            fail("%s has series of the endpoint that is down" % name)
    print("ok nothing but sluice:up of " + ep_down)
    return fams


def cmd_send(ep, path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(ep[len("unix:"):])
    with open(path, "rb") as f:
        s.sendall(f.read())
    s.close()


def unix(ep):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(ep[len("unix:"):])
    return s


def cmd_ask(ep, path, out):
    with open(path, "rb") as f:
        data = f.read()
    u = msgpack.Unpacker(raw=False, strict_map_key=False)
    u.feed(data)
    n = sum(1 for _ in u)
    s = unix(ep)
    s.sendall(data)
    u = msgpack.Unpacker(raw=False, strict_map_key=False)
    finals = 0
    with open(out, "wb") as f:
        while finals < n:
            b = s.recv(65536)
            if not b:
                fail("the engine closed the connection after %d of %d answers" % (finals, n))
            u.feed(b)
            for ev in u:
                f.write(msgpack.packb(ev))
                finals += "finish" in ev
    s.close()


def cmd_stats(ep):
    s = unix(ep)
    s.sendall(msgpack.packb({"op": "stats", "id": "probe"}))
    u = msgpack.Unpacker(raw=False, strict_map_key=False)
    while True:
        b = s.recv(65536)
        if not b:
            print("no")
            return
        u.feed(b)
        for ev in u:
            print("yes" if isinstance(ev.get("stats"), dict) else "no")
            return


def cmd_polled(ev_path, prom_path, ep, kind="engine"):
    e = expect(read_events(ev_path))
    fams = families(prom_path)
    src = {"endpoint": ep}
    same("up", one(fams, "sluice:up", "sluice:up", **src), 1.0)
    got = by_label(fams, "sluice:request_success", "sluice:request_success_total", "finished_reason", **src)
    same("request_success_total by finished_reason", got, {k: float(v) for k, v in e["finish"].items()})
    if kind == "batchd":
        # its histograms are its own clock's, as its clients see it: the counts are the events'
        for name, want in (("time_to_first_token_seconds", len(e["hist"]["time_to_first_token_seconds"])),
                           ("e2e_request_latency_seconds", e["finals"]),
                           ("inter_token_latency_seconds", e["itl_count"])):
            same(name + "_count", one(fams, "sluice:" + name, "sluice:%s_count" % name, **src), float(want))
        same("num_requests_waiting", one(fams, "sluice:num_requests_waiting",
                                         "sluice:num_requests_waiting", **src), 0.0)
        return
    same("prompt_tokens_total", one(fams, "sluice:prompt_tokens", "sluice:prompt_tokens_total", **src),
         float(e["prompt"]))
    same("generation_tokens_total",
         one(fams, "sluice:generation_tokens", "sluice:generation_tokens_total", **src), float(e["gen"]))
    for name in ("sluice:num_requests_running", "sluice:num_requests_waiting"):
        same(name, one(fams, name, name, **src), 0.0)
    kv = one(fams, "sluice:kv_cache_usage_perc", "sluice:kv_cache_usage_perc", **src)
    if not 0 <= kv <= 1:
        fail("kv_cache_usage_perc %r" % kv)
    print("ok kv_cache_usage_perc = %r" % kv)
    # the engine's own histograms, from the same timestamps as its events
    for name, (bounds, _, _) in HISTS.items():
        check_hist(fams, name, bounds, e["hist"][name], src)
    # its ITL: one per token after a sequence's first (all ignore_eos here)
    gens = [ev["usage"]["completion_tokens"] for ev in read_events(ev_path) if "finish" in ev]
    same("inter_token_latency_seconds_count", one(fams, "sluice:inter_token_latency_seconds",
                                                  "sluice:inter_token_latency_seconds_count", **src),
         float(sum(g - 1 for g in gens if g > 0)))
    itl = one(fams, "sluice:inter_token_latency_seconds", "sluice:inter_token_latency_seconds_sum", **src)
    decode = sum(e["hist"]["request_decode_time_seconds"])
    if not 0 <= itl <= decode * (1 + 1e-9):
        fail("inter_token_latency_seconds_sum %r is not within the decode time %r" % (itl, decode))
    print("ok inter_token_latency_seconds_sum = %r, within the decode time %r" % (itl, decode))


# replica_* family -> key in R
REPLICA = {"sluice:replica_up": "up", "sluice:replica_requests_running": "running",
           "sluice:replica_requests_routed_total": "routed", "sluice:replica_prefix_hits_total": "prefix_hits",
           "sluice:replica_lost_total": "lost"}


def replicas(text, ep):
    """The replica_* series of the daemon polled at ep, one dict per replica in their order."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name not in REPLICA or s.labels.get("endpoint") != ep:
                continue
            if set(s.labels) != {"endpoint", "replica"}:
                raise ValueError("%s has the labels %r" % (s.name, s.labels))
            r = out.setdefault(s.labels["replica"], {"replica": s.labels["replica"]})
            if REPLICA[s.name] in r:
                raise ValueError("%s{replica=%r} twice" % (s.name, s.labels["replica"]))
            r[REPLICA[s.name]] = s.value
    return list(out.values())


def cmd_replicas(url, ep, expr, secs="0"):
    end = time.time() + float(secs)
    last = None
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                R = replicas(r.read().decode(), ep)
            last = R
            if eval(expr, {"R": R}):
                print("ok " + expr)
                return
        except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
            last = repr(e)
        if time.time() >= end:
            break
        time.sleep(0.05)
    fail("not true: %s\n%s" % (expr, json.dumps(last)))


# the hostile list cmd_fakeroute answers: 7 not a map, an endpoint not a
# string, one with a quote, a backslash and a newline in its name and
# figures of the wrong types (only up and prefix_hits readable), the same
# name again, then 96 replicas named r00.. with 100 bytes each
def fake_replicas():
    odd = 'a"b\\c\nd'
    rs = [7, {"endpoint": 3, "up": True, "routed": 1},
          {"endpoint": odd, "up": True, "in_flight": -1, "routed": "x", "prefix_hits": 2, "lost": 1.5,
           "max_in_flight": 4, "extra": [1]},
          {"endpoint": odd, "up": False, "routed": 9}]
    for k in range(96):
        rs.append({"endpoint": ("r%02d" % k).ljust(100, "x"), "up": k % 2 == 0, "in_flight": k,
                   "max_in_flight": 64, "routed": 2**64 - 1 - k, "prefix_hits": 0, "lost": k})
    return rs


def cmd_fakeroute(sock):
    stats = {"program": "route", "requests": 0, "replicas": fake_replicas()}

    class Answer(socketserver.BaseRequestHandler):
        def handle(self):
            u = msgpack.Unpacker(raw=False)
            while True:
                b = self.request.recv(65536)
                if not b:
                    return
                u.feed(b)
                for q in u:
                    self.request.sendall(msgpack.packb({"op": "stats", "id": q.get("id"), "stats": stats}))

    if os.path.exists(sock):
        os.unlink(sock)
    with socketserver.ThreadingUnixStreamServer(sock, Answer) as srv:
        srv.serve_forever()


if __name__ == "__main__":
    cmds = {"events": cmd_events, "summary": cmd_summary, "scrape": cmd_scrape, "requests": cmd_requests,
            "hostile": cmd_hostile, "flood": cmd_flood, "rss": cmd_rss, "poll": cmd_poll, "send": cmd_send,
            "ask": cmd_ask, "stats": cmd_stats, "polled": cmd_polled, "replicas": cmd_replicas,
            "fakeroute": cmd_fakeroute}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmds[sys.argv[1]](*sys.argv[2:])
