#!/usr/bin/env python3
"""Hostile and careless clients of infer-cpu on a unix socket, for
t/3003-infer-hostile.bats. Each subcommand plays one client, checks what
it can see itself and prints figures as "key value" lines; the test reads
the engine's side (RSS, stderr summary) and judges.

  hostile.py broken SOCK             two requests, then a 0xc1 byte, then reads
  hostile.py noread SOCK PID N SECS  N streaming requests, reads nothing for SECS,
                                     sampling the engine's RSS; then reads all
  hostile.py partial SOCK PID N      N connections, each 4 MiB into a message
  hostile.py flood SOCK N            client A sends N requests, B one, later
  hostile.py gone SOCK MAXTOK        asks for MAXTOK tokens and closes at once
  hostile.py halfclose SOCK          sends, shuts down its write side, reads
  hostile.py dup SOCK                the same id twice while the first runs
  hostile.py conns SOCK N            opens N connections, reports the refused
"""
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


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def read_events(s, want_final, timeout=30.0):
    """Reads events until want_final final events (finish key) came, or EOF."""
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
            out.append(ev)
            if "finish" in ev:
                finals += 1
    return out


def req(i, **kw):
    d = {"id": str(i), "tokens": [1, 2, 3], "max_tokens": 4, "ignore_eos": True}
    d.update(kw)
    return msgpack.packb(d)


def broken(path):
    s = connect(path)
    s.sendall(req("a") + req("b") + b"\xc1")
    evs = read_events(s, 3)
    done = sorted(e["id"] for e in evs if e.get("finish") == "length")
    errs = [e for e in evs if e.get("finish") == "error" and "id" not in e]
    print("answered", ",".join(done))
    print("stream_errors", len(errs))
    if errs:
        print("message", errs[0]["error"]["message"])


def noread(path, pid, n, secs):
    # warm up: the same work for a client that reads, so that the model's
    # pages and the KV cache are touched before the baseline is taken
    w = connect(path)
    w.sendall(b"".join(req(f"w{i}", max_tokens=200, stream=True, logprobs=20) for i in range(128)))
    read_events(w, 128)
    w.close()
    time.sleep(0.2)
    s = connect(path)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    base = rss_kb(pid)
    s.sendall(b"".join(req(i, max_tokens=200, stream=True, logprobs=20) for i in range(n)))
    peak, t0 = base, time.time()
    while time.time() - t0 < secs:
        time.sleep(0.25)
        peak = max(peak, rss_kb(pid))
    # another client is served meanwhile
    s2 = connect(path)
    t1 = time.time()
    s2.sendall(req("other"))
    evs2 = read_events(s2, 1, timeout=10)
    print("other_ok", int(any(e.get("finish") == "length" for e in evs2)))
    print("other_s", round(time.time() - t1, 3))
    print("rss_base_kb", base)
    print("rss_peak_kb", peak)
    print("rss_growth_kb", peak - base)
    evs = read_events(s, n, timeout=5)
    codes = {}
    for e in evs:
        if e.get("finish") == "error":
            c = e["error"]["code"]
            codes[c] = codes.get(c, 0) + 1
    print("finals", sum(1 for e in evs if "finish" in e))
    print("slow_consumer", codes.get("slow_consumer", 0))


def partial(path, pid, n):
    base = rss_kb(pid)
    size = 4 << 20
    head = b"\x82\xa2id\xa1x\xa6prompt\xdb" + (size - 64).to_bytes(4, "big")
    body = b"y" * (size - 64 - 1)   # one byte short of whole
    socks, cut = [], 0
    for _ in range(n):
        s = connect(path)
        try:
            s.sendall(head + body)
        except (BrokenPipeError, ConnectionResetError):
            pass   # cut while sending: the engine closed it
        socks.append(s)
    time.sleep(1.0)
    peak = rss_kb(pid)
    for s in socks:
        s.setblocking(False)
        try:
            b = s.recv(1 << 16)
            cut += b"max-partial" in b
        except (BlockingIOError, ConnectionResetError):
            pass
    print("rss_base_kb", base)
    print("rss_after_kb", peak)
    print("rss_growth_kb", peak - base)
    print("cut", cut)


def flood(path, n):
    a, b = connect(path), connect(path)
    got = []
    th = threading.Thread(target=lambda: got.extend(read_events(a, n, timeout=120)))
    th.start()
    a.sendall(b"".join(req(f"a{i}", max_tokens=8) for i in range(n)))
    time.sleep(0.3)
    t0 = time.time()
    b.sendall(req("b", max_tokens=8))
    evb = read_events(b, 1, timeout=120)
    wait = time.time() - t0
    th.join()
    fb = [e for e in evb if "finish" in e][0]
    arrived, done = fb["t"]["arrived"], fb["t"]["done"]
    a_ok = [e for e in got if e.get("finish") == "length"]
    between = sum(1 for e in a_ok if arrived <= e["t"]["done"] <= done)
    print("b_finish", fb["finish"])
    print("b_wait_s", round(wait, 3))
    print("a_done_while_b_waited", between)
    print("a_answered", len(a_ok))
    print("a_overloaded", sum(1 for e in got if e.get("error", {}).get("code") == "overloaded"))


def gone(path, maxtok):
    s = connect(path)
    s.sendall(req("long", max_tokens=maxtok))
    time.sleep(0.2)
    s.close()


def halfclose(path):
    s = connect(path)
    s.sendall(req("h", max_tokens=50))
    s.shutdown(socket.SHUT_WR)
    evs = read_events(s, 1)
    f = [e for e in evs if "finish" in e]
    print("finish", f[0]["finish"] if f else "none")
    print("tokens", f[0]["usage"]["completion_tokens"] if f else 0)


def dup(path):
    s = connect(path)
    s.sendall(req("d", max_tokens=200) + req("d", max_tokens=1))
    evs = read_events(s, 2)
    print("finals_with_id", sum(1 for e in evs if e.get("id") == "d" and "finish" in e))
    print("duplicate_events", sum(1 for e in evs if e.get("duplicate_id") == "d"
                                  and e["error"]["code"] == "duplicate_id" and "id" not in e))


def conns(path, n):
    socks, refused = [], 0
    for _ in range(n):
        s = connect(path)
        socks.append(s)
        time.sleep(0.02)
    time.sleep(0.3)
    for s in socks:
        s.setblocking(False)
        try:
            b = s.recv(1 << 16)
            if b and msgpack.unpackb(b, raw=False)["error"]["code"] == "overloaded":
                refused += 1
        except (BlockingIOError, ValueError):
            pass
    print("refused", refused)
    # the ones let in are served
    evs = []
    socks[0].setblocking(True)
    socks[0].sendall(req("in"))
    evs = read_events(socks[0], 1)
    print("served", int(any(e.get("finish") == "length" for e in evs)))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "broken":
        broken(args[0])
    elif cmd == "noread":
        noread(args[0], int(args[1]), int(args[2]), float(args[3]))
    elif cmd == "partial":
        partial(args[0], int(args[1]), int(args[2]))
    elif cmd == "flood":
        flood(args[0], int(args[1]))
    elif cmd == "gone":
        gone(args[0], int(args[1]))
    elif cmd == "halfclose":
        halfclose(args[0])
    elif cmd == "dup":
        dup(args[0])
    elif cmd == "conns":
        conns(args[0], int(args[1]))
    else:
        sys.exit(f"hostile.py: usage: unknown command {cmd}")


if __name__ == "__main__":
    main()
