#!/usr/bin/env python3
# engine.py: drives a running infer-cpu over its stdin/stdout (msgpack) for
# the tests that need to talk back and forth: send a request, read events,
# cancel after the first token, watch timeouts and the order of answers.
#
#   engine.py SCENARIO -- infer-cpu ARGS...
# Scenarios print what they saw as JSON lines and exit 0, or exit 1 with the
# reason on stderr.
import json
import subprocess
import sys
import time

import msgpack


class Engine:
    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.u = msgpack.Unpacker(raw=False)

    def send(self, m):
        self.p.stdin.write(msgpack.packb(m))
        self.p.stdin.flush()

    def recv(self, timeout=60):
        end = time.time() + timeout
        while True:
            for m in self.u:
                return m
            if time.time() > end:
                raise SystemExit("engine.py: no event within %d s" % timeout)
            b = self.p.stdout.read1(65536)
            if not b:
                return None
            self.u.feed(b)

    def until_final(self, ids, timeout=120):
        got = {}
        order = []
        while len(got) < len(ids):
            m = self.recv(timeout)
            if m is None:
                raise SystemExit("engine.py: the engine closed its output; have %s" % sorted(got))
            if "finish" in m:
                got[m.get("id")] = m
                order.append(m.get("id"))
        return got, order

    def close(self):
        self.p.stdin.close()
        rest = self.p.stdout.read()
        rc = self.p.wait(60)
        return rc, rest


def out(m):
    print(json.dumps(m, sort_keys=True))


def cancel(e):
    # a long streamed generation; cancel it after its first token, then check
    # the engine still answers a new request
    e.send({"id": "long", "tokens": [1, 2, 3, 4], "max_tokens": 100000, "ignore_eos": True,
            "stream": True})
    m = e.recv()
    if m.get("finish") or not m.get("tokens"):
        raise SystemExit("engine.py: expected a token event first, got %r" % m)
    e.send({"id": "long", "cancel": True})
    while True:
        m = e.recv()
        if m is None:
            raise SystemExit("engine.py: closed before the cancelled event")
        if m.get("finish"):
            break
    out(m)
    e.send({"id": "after", "tokens": [5, 6, 7], "max_tokens": 3, "ignore_eos": True})
    got, _ = e.until_final(["after"])
    out(got["after"])


def timeout(e):
    e.send({"id": "slow", "tokens": [1, 2, 3], "max_tokens": 100000, "ignore_eos": True,
            "timeout_ms": 300})
    e.send({"id": "quick", "tokens": [1, 2, 3], "max_tokens": 2, "ignore_eos": True})
    got, _ = e.until_final(["slow", "quick"])
    out(got["slow"])
    out(got["quick"])


def priority(e):
    # run with --max-seqs 1: the first request runs; of the rest, priority
    # decides (lower first), then arrival
    e.send({"id": "first", "tokens": [1, 2, 3], "max_tokens": 100000, "ignore_eos": True,
            "priority": 9, "stream": True})
    e.recv()   # it runs
    for i, pr in (("a", 5), ("b", 5), ("c", 0), ("d", -3), ("e", 5)):
        e.send({"id": i, "tokens": [1, 2, 3], "max_tokens": 4, "ignore_eos": True, "priority": pr})
    time.sleep(0.3)
    e.send({"id": "first", "cancel": True})
    got, order = e.until_final(["first", "a", "b", "c", "d", "e"])
    print(" ".join(order))


def main():
    scen = sys.argv[1]
    argv = sys.argv[sys.argv.index("--") + 1:]
    e = Engine(argv)
    {"cancel": cancel, "timeout": timeout, "priority": priority}[scen](e)
    rc, rest = e.close()
    if rc != 0:
        raise SystemExit("engine.py: the engine exited %d" % rc)


main()
