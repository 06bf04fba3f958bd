#!/usr/bin/env python3
"""Clients of batchd (and of infer-cpu) on unix sockets, for
t/2001-batchd.bats. Each subcommand plays its clients, checks what they can
see and prints figures as "key value" lines; the test judges.

  clients.py stats SOCK                       prints the stats map as JSON
  clients.py many SOCK N                      N clients at once, 2 requests each,
                                              the same ids on every client
  clients.py overload SOCK PID N              N requests on 8 connections at once;
                                              how fast the refused are told
  clients.py deadline SOCK N MS               N requests with timeout_ms MS
  clients.py gone SOCK MAXTOK                 streams, reads one event, closes
  clients.py cancel SOCK                      streams, cancels after one event
  clients.py streams SOCK N MAXTOK OUT [S]    N streaming (S 0: not streaming) requests; writes each final
                                              event's id, finish, error code to OUT
                                              as it comes (the test kills things meanwhile)
  clients.py arrivals SOCK N GAP_MS EOF       N requests GAP_MS apart on one connection
                                              (shut down after them when EOF is 1);
                                              prints the engine's arrival times and the
                                              send times, in ms from the first send
  clients.py rate SOCK N                      N requests at once, half with user "u1"
"""
import json
import os
import socket
import sys
import threading
import time

import msgpack


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def events(s, want_final, timeout=30.0):
    u = msgpack.Unpacker(raw=False)
    out, finals = [], 0
    s.settimeout(timeout)
    while finals < want_final:
        try:
            b = s.recv(1 << 16)
        except socket.timeout:
            break
        if not b:
            break
        u.feed(b)
        for ev in u:
            out.append((time.time(), ev))
            if "finish" in ev:
                finals += 1
    return out


def req(i, **kw):
    d = {"id": str(i), "tokens": [1, 2, 3], "max_tokens": 2, "ignore_eos": True}
    d.update(kw)
    return msgpack.packb(d)


def stats(path):
    s = connect(path)
    s.sendall(msgpack.packb({"op": "stats"}))
    u = msgpack.Unpacker(raw=False)
    while True:
        u.feed(s.recv(1 << 16))
        for ev in u:
            return ev["stats"]


def many(path, n):
    bad = []
    answered = [0] * n
    socks = [connect(path) for _ in range(n)]

    def run(k):
        s = socks[k]
        s.sendall(req("x", who=k) + req("y", who=k, stream=True, max_tokens=3))
        finals = 0
        for _, ev in events(s, 2):
            if ev.get("who") is not None and ev.get("who") != k:
                bad.append((k, ev))
            if "finish" in ev:
                finals += 1
                if ev.get("finish") != "length" or ev.get("id") not in ("x", "y"):
                    bad.append((k, ev))
        answered[k] = finals

    ts = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print("clients", n)
    print("answered_twice", sum(1 for a in answered if a == 2))
    print("wrong", len(bad))
    if bad:
        print("first_wrong", bad[0])


def overload(path, pid, n):
    per = n // 8
    res = {"ok": 0, "overloaded": 0, "other": 0}
    lat = []
    lock = threading.Lock()
    rss0 = rss_kb(pid)
    peak = [rss0]

    def run(k):
        s = connect(path)
        t0 = time.time()
        s.sendall(b"".join(req(f"{k}-{i}", max_tokens=16, timeout_ms=20000) for i in range(per)))
        for t, ev in events(s, per, 60):
            if "finish" not in ev:
                continue
            with lock:
                code = ev.get("error", {}).get("code")
                if ev["finish"] == "length":
                    res["ok"] += 1
                elif code == "overloaded":
                    res["overloaded"] += 1
                    lat.append(t - t0)
                else:
                    res["other"] += 1
        s.close()

    def sample():
        while any(t.is_alive() for t in ts):
            peak[0] = max(peak[0], rss_kb(pid))
            time.sleep(0.05)

    ts = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    sm = threading.Thread(target=sample)
    sm.start()
    for t in ts:
        t.join()
    sm.join()
    for k, v in res.items():
        print(k, v)
    lat.sort()
    print("overloaded_p99_ms", int(lat[int(len(lat) * 0.99) - 1] * 1000) if lat else -1)
    print("rss_growth_kb", peak[0] - rss0)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def deadline(path, n, ms):
    s = connect(path)
    s.sendall(b"".join(req(i, max_tokens=400, timeout_ms=ms) for i in range(n)))
    fin = {}
    for _, ev in events(s, n, 60):
        if "finish" in ev:
            f = ev["finish"]
            if "error" in ev:
                f = f + ":" + ev["error"].get("code", "")
            fin[f] = fin.get(f, 0) + 1
    for k in sorted(fin):
        print(k.replace(":", "_"), fin[k])


def gone(path, maxtok):
    s = connect(path)
    s.sendall(req("long", max_tokens=maxtok, stream=True))
    u = msgpack.Unpacker(raw=False)
    while True:
        u.feed(s.recv(1 << 16))
        if any("tokens" in ev for ev in u):
            break
    s.close()
    print("closed 1")


def cancel(path):
    s = connect(path)
    s.sendall(req("c", max_tokens=5000, stream=True))
    u = msgpack.Unpacker(raw=False)
    sent = False
    s.settimeout(30)
    n = 0
    while True:
        b = s.recv(1 << 16)
        if not b:
            break
        u.feed(b)
        for ev in u:
            n += 1
            if not sent:
                s.sendall(msgpack.packb({"id": "c", "cancel": True}))
                sent = True
            if "finish" in ev:
                print("finish", ev["finish"])
                print("events", n)
                return


def streams(path, n, maxtok, out, stream=True):
    s = connect(path)
    s.sendall(b"".join(req(i, max_tokens=maxtok, stream=stream) for i in range(n)))
    with open(out, "w") as f:
        for _, ev in events(s, n, 120):
            if "finish" in ev:
                f.write("%s %s %s %d\n" % (ev.get("id"), ev["finish"], ev.get("error", {}).get("code", "-"),
                                           len(ev.get("tokens", []))))
                f.flush()


def arrivals(path, n, gap_ms, eof):
    s = connect(path)
    sent = []
    for i in range(n):
        sent.append(time.time())
        s.sendall(req(i))
        time.sleep(gap_ms / 1000)
    if eof:
        s.shutdown(socket.SHUT_WR)
    t = {}
    for _, ev in events(s, n, 60):
        if "finish" in ev:
            t[int(ev["id"])] = ev["t"]["arrived"]
    base = sent[0]
    print("arrived_ms", " ".join("%d" % round((t[i] - base) * 1000) for i in sorted(t)))
    print("sent_ms", " ".join("%d" % round((x - base) * 1000) for x in sent))


def rate(path, n):
    s = connect(path)
    s.sendall(b"".join(req(i, **({"user": "u1"} if i % 2 else {})) for i in range(n)))
    fin = {}
    for _, ev in events(s, n, 30):
        if "finish" in ev:
            k = ("user" if int(ev.get("id", 0)) % 2 else "conn") + "_" + (
                ev["finish"] if ev["finish"] != "error" else ev["error"]["code"])
            fin[k] = fin.get(k, 0) + 1
    for k in sorted(fin):
        print(k, fin[k])


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "stats":
        print(json.dumps(stats(a[0])))
    elif cmd == "many":
        many(a[0], int(a[1]))
    elif cmd == "overload":
        overload(a[0], int(a[1]), int(a[2]))
    elif cmd == "deadline":
        deadline(a[0], int(a[1]), int(a[2]))
    elif cmd == "gone":
        gone(a[0], int(a[1]))
    elif cmd == "cancel":
        cancel(a[0])
    elif cmd == "streams":
        streams(a[0], int(a[1]), int(a[2]), a[3], len(a) < 5 or a[4] == "1")
    elif cmd == "arrivals":
        arrivals(a[0], int(a[1]), float(a[2]), a[3] == "1")
    elif cmd == "rate":
        rate(a[0], int(a[1]))
    else:
        sys.exit("unknown subcommand " + cmd)


if __name__ == "__main__":
    main()
