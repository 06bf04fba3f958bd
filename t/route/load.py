#!/usr/bin/env python3
"""Clients of route (and readers of its replicas' stats) on unix sockets, for
t/5001-route.bats. Each subcommand plays its clients, checks what they can
see and prints figures as "key value..." lines; the test judges.

  load.py check SOCK EXPR [SECS]   polls SOCK's stats until the Python EXPR over
                                   s (the stats map) and R (s["replicas"]) is true;
                                   exit 1 and the stats as JSON if not within SECS
                                   (default: one look)
  load.py get SOCK EXPR            prints EXPR over SOCK's stats
  load.py run SOCK N MAXTOK [--conns C] [--stream 0|1] [--out FILE]
              [--signal PID SIG AFTER]
                                   N requests at once on C connections (ids 0..
                                   on each connection, "row": k over all); with
                                   --signal, sends SIG to PID once AFTER requests
                                   have had a token; counts the final events
  load.py spread SOCK MAXTOK ENGINE...
                                   one long stream per engine at once; once each
                                   had a token, prints the engines' running, then
                                   cancels them all
  load.py prefix SOCK FAM_A FAM_B  12 requests of family A one after another, then
                                   4 of family B while a long A request is held;
                                   route's routed and prefix_hits per phase
  load.py drain SOCK PID           3 long streams, SIGTERM to PID, a request on
                                   the open connection and a new connection
"""
import argparse
import json
import os
import signal
import socket
import sys
import threading
import time

import msgpack


def connect(path, timeout=30.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def stats(path, timeout=5.0):
    s = connect(path, timeout)
    try:
        s.sendall(msgpack.packb({"op": "stats"}))
        u = msgpack.Unpacker(raw=False)
        while True:
            b = s.recv(1 << 16)
            if not b:
                raise EOFError("no stats answer from " + path)
            u.feed(b)
            for ev in u:
                if ev.get("op") == "stats":
                    return ev["stats"]
    finally:
        s.close()


def judge(path, expr):
    s = stats(path)
    return eval(expr, {"s": s, "R": s.get("replicas")}), s


def check(path, expr, secs):
    end = time.time() + secs
    last = None
    while True:
        try:
            ok, last = judge(path, expr)
            if ok:
                return 0
        except (OSError, EOFError, KeyError, IndexError, TypeError) as e:
            last = repr(e)
        if time.time() >= end:
            break
        time.sleep(0.05)
    print("not true: %s\n%s" % (expr, json.dumps(last)), file=sys.stderr)
    return 1


def get(path, expr):
    print(judge(path, expr)[0])
    return 0


def code(ev):
    """The final event's outcome: its finish, or its error code for an error."""
    if ev.get("finish") == "error":
        return ev.get("error", {}).get("code", "error")
    return ev["finish"]


# ------------------------------------------------------------------ run

def run(path, n, maxtok, conns, stream, out, sig):
    lock = threading.Lock()
    reqs = {}    # (conn, id) -> row
    ntok = {}    # (conn, id) -> tokens seen
    final = {}   # (conn, id) -> outcome
    bad = []     # (why, conn, event)
    streamed = set()
    signalled = [None]
    f = open(out, "w") if out else None
    per = [[] for _ in range(conns)]
    for k in range(n):
        c = k % conns
        rid = str(len(per[c]))
        per[c].append({"id": rid, "tokens": [5, 6, 7], "max_tokens": maxtok, "ignore_eos": True,
                       "stream": stream, "row": k})
        reqs[(c, rid)] = k

    def on_event(c, ev):
        key = (c, ev.get("id"))
        if key not in reqs:
            bad.append(("unknown id", c, ev))
            return
        if key in final:
            bad.append(("after its final" if "finish" not in ev else "second final", c, ev))
            return
        ntok[key] = ntok.get(key, 0) + len(ev.get("tokens", []))
        if "finish" not in ev:
            if ev.get("tokens"):
                streamed.add(key)
            if sig and signalled[0] is None and len(streamed) >= sig[2]:
                os.kill(sig[0], sig[1])
                signalled[0] = len(streamed)
            return
        final[key] = code(ev)
        # pass-through keys come back on the final event; an error route
        # makes itself may lack them, but never carries another's
        if ev.get("row", reqs[key]) != reqs[key] or (final[key] == "length" and "row" not in ev):
            bad.append(("row", c, ev))
        if final[key] == "length" and ntok[key] != maxtok:
            bad.append(("short", c, ev))
        if final[key] == "upstream_lost" and key not in streamed:
            bad.append(("lost before any token", c, ev))
        if f:
            f.write("%d %s %d %d\n" % (reqs[key], final[key], ntok[key], key in streamed))
            f.flush()

    def client(c):
        try:
            s = connect(path, 30)
            s.sendall(b"".join(msgpack.packb(r) for r in per[c]))
            u = msgpack.Unpacker(raw=False)
            while True:
                with lock:
                    if all((c, r["id"]) in final for r in per[c]):
                        break
                b = s.recv(1 << 16)
                if not b:
                    break
                u.feed(b)
                with lock:
                    for ev in u:
                        on_event(c, ev)
            # a second final or a late event would come at once: look a little longer
            s.settimeout(0.2)
            try:
                while True:
                    b = s.recv(1 << 16)
                    if not b:
                        break
                    u.feed(b)
                    with lock:
                        for ev in u:
                            on_event(c, ev)
            except socket.timeout:
                pass
            s.close()
        except OSError as e:
            with lock:
                bad.append(("connection", c, repr(e)))

    ts = [threading.Thread(target=client, args=(c,)) for c in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if f:
        f.close()
    outcomes = {}
    for v in final.values():
        outcomes[v] = outcomes.get(v, 0) + 1
    print("requests", n)
    print("finals", len(final))
    print("missing", n - len(final))
    print("wrong", len(bad))
    for k in ("length", "upstream_lost"):
        print(k, outcomes.pop(k, 0))
    print("other", sum(outcomes.values()))
    print("streamed", len(streamed))
    print("signalled_after", signalled[0] if signalled[0] is not None else -1)
    for k, v in sorted(outcomes.items()):
        print("outcome_" + k, v)
    for b in bad[:5]:
        print("bad", b)
    return 0


# ------------------------------------------------------------------ spread

def finals_of(s, u, ids, timeout=30.0):
    """Reads from s until every id in ids had its final event; returns id -> event."""
    got = {}
    s.settimeout(timeout)
    while len(got) < len(ids):
        b = s.recv(1 << 16)
        if not b:
            break
        u.feed(b)
        for ev in u:
            if "finish" in ev and ev.get("id") in ids:
                got[ev["id"]] = ev
    return got


def spread(path, maxtok, engines):
    ids = ["s%d" % i for i in range(len(engines))]
    s = connect(path)
    s.sendall(b"".join(msgpack.packb({"id": i, "tokens": [5, 6, 7], "max_tokens": maxtok,
                                      "ignore_eos": True, "stream": True}) for i in ids))
    u = msgpack.Unpacker(raw=False)
    seen, early = set(), {}
    while len(seen) < len(ids):
        b = s.recv(1 << 16)
        if not b:
            break
        u.feed(b)
        for ev in u:
            if ev.get("tokens"):
                seen.add(ev.get("id"))
            if "finish" in ev:
                early[ev["id"]] = ev
    print("running", " ".join(str(stats(e)["running"]) for e in engines))
    s.sendall(b"".join(msgpack.packb({"id": i, "cancel": True}) for i in ids))
    got = dict(early)
    got.update(finals_of(s, u, set(ids) - set(early)))
    print("finish", " ".join(code(got[i]) if i in got else "-" for i in ids))
    return 0


# ------------------------------------------------------------------ prefix

def family(name):
    """200 prompt tokens shared by a family (ids 3..252, below the tiny vocab of 269)."""
    k = ord(name[0])
    return [3 + (k * 31 + i * (k % 7 + 2)) % 250 for i in range(200)]


def tail(i):
    return [3 + (i * 13 + j * 5) % 250 for j in range(5)]


def one(s, u, rid, tokens, maxtok=4):
    s.sendall(msgpack.packb({"id": rid, "tokens": tokens, "max_tokens": maxtok, "ignore_eos": True}))
    return finals_of(s, u, {rid}).get(rid)


def routed(path):
    r = stats(path)["replicas"]
    return [x["routed"] for x in r], [x["prefix_hits"] for x in r]


def phase(path, name, fam, n, held=None):
    r0, h0 = routed(path)
    s = connect(path)
    u = msgpack.Unpacker(raw=False)
    ends, cached = {}, 0
    for i in range(n):
        ev = one(s, u, "%s%d" % (name, i), fam + tail(i))
        c = code(ev) if ev else "-"
        ends[c] = ends.get(c, 0) + 1
        cached += ev.get("usage", {}).get("cached_tokens", 0) if ev else 0
    s.close()
    r1, h1 = routed(path)
    print("routed_" + name, " ".join(str(b - a) for a, b in zip(r0, r1)))
    print("hits_" + name, " ".join(str(b - a) for a, b in zip(h0, h1)))
    print("length_" + name, ends.get("length", 0))
    print("cached_" + name, cached)


def prefix(path, fa, fb):
    a, b = family(fa), family(fb)
    phase(path, "a", a, 12)
    # a long A request in flight while B comes: its replica is busy
    r0, h0 = routed(path)
    h = connect(path)
    hu = msgpack.Unpacker(raw=False)
    h.sendall(msgpack.packb({"id": "held", "tokens": a + tail(99), "max_tokens": 7000,
                             "ignore_eos": True, "stream": True}))
    while True:
        buf = h.recv(1 << 16)
        if not buf:
            break
        hu.feed(buf)
        if any(ev.get("tokens") for ev in hu):
            break
    r1, _ = routed(path)
    print("routed_held", " ".join(str(y - x) for x, y in zip(r0, r1)))
    phase(path, "b", b, 4)
    h.sendall(msgpack.packb({"id": "held", "cancel": True}))
    ev = finals_of(h, hu, {"held"}).get("held")
    print("held", code(ev) if ev else "-")
    return 0


# ------------------------------------------------------------------ drain

def drain(path, pid):
    ids = ["d0", "d1", "d2"]
    s = connect(path)
    s.sendall(b"".join(msgpack.packb({"id": i, "tokens": [5, 6, 7], "max_tokens": 6000,
                                      "ignore_eos": True, "stream": True}) for i in ids))
    u = msgpack.Unpacker(raw=False)
    seen, got = set(), {}
    while len(seen) < len(ids):
        b = s.recv(1 << 16)
        if not b:
            break
        u.feed(b)
        for ev in u:
            if ev.get("tokens"):
                seen.add(ev["id"])
            if "finish" in ev:
                got[ev["id"]] = ev
    os.kill(pid, signal.SIGTERM)
    # until route says it is draining, on the connection it keeps
    draining = False
    end = time.time() + 10
    while not draining and time.time() < end:
        s.sendall(msgpack.packb({"op": "stats"}))
        while True:
            b = s.recv(1 << 16)
            if not b:
                break
            u.feed(b)
            st = None
            for ev in u:
                if ev.get("op") == "stats":
                    st = ev["stats"]
                elif "finish" in ev:
                    got[ev["id"]] = ev
            if st is not None:
                draining = st.get("draining", False)
                break
        if not draining:
            time.sleep(0.05)
    s.sendall(msgpack.packb({"id": "late", "tokens": [5, 6, 7], "max_tokens": 2}))
    # a new connection: refused once the listener is closed, else told draining
    try:
        n = connect(path, 10)
        nu = msgpack.Unpacker(raw=False)
        n.sendall(msgpack.packb({"id": "new", "tokens": [5, 6, 7], "max_tokens": 2}))
        ev = finals_of(n, nu, {"new"}, 10).get("new")
        new = code(ev) if ev else "-"
    except (ConnectionRefusedError, FileNotFoundError):
        new = "refused"
    got.update(finals_of(s, u, set(ids + ["late"]) - set(got), 60))
    print("draining", int(draining))
    print("inflight", " ".join(code(got[i]) if i in got else "-" for i in ids))
    print("late", code(got["late"]) if "late" in got else "-")
    print("new", new)
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("sock")
    c.add_argument("expr")
    c.add_argument("secs", type=float, nargs="?", default=0)
    g = sub.add_parser("get")
    g.add_argument("sock")
    g.add_argument("expr")
    r = sub.add_parser("run")
    r.add_argument("sock")
    r.add_argument("n", type=int)
    r.add_argument("maxtok", type=int)
    r.add_argument("--conns", type=int, default=1)
    r.add_argument("--stream", type=int, default=1)
    r.add_argument("--out")
    r.add_argument("--signal", nargs=3, metavar=("PID", "SIG", "AFTER"))
    sp = sub.add_parser("spread")
    sp.add_argument("sock")
    sp.add_argument("maxtok", type=int)
    sp.add_argument("engines", nargs="+")
    pr = sub.add_parser("prefix")
    pr.add_argument("sock")
    pr.add_argument("fa")
    pr.add_argument("fb")
    d = sub.add_parser("drain")
    d.add_argument("sock")
    d.add_argument("pid", type=int)
    a = p.parse_args()
    if a.cmd == "check":
        return check(a.sock, a.expr, a.secs)
    if a.cmd == "get":
        return get(a.sock, a.expr)
    if a.cmd == "run":
        sig = None
        if a.signal:
            sig = (int(a.signal[0]), getattr(signal, "SIG" + a.signal[1]), int(a.signal[2]))
        return run(a.sock, a.n, a.maxtok, a.conns, bool(a.stream), a.out, sig)
    if a.cmd == "spread":
        return spread(a.sock, a.maxtok, a.engines)
    if a.cmd == "prefix":
        return prefix(a.sock, a.fa, a.fb)
    return drain(a.sock, a.pid)


if __name__ == "__main__":
    sys.exit(main())
