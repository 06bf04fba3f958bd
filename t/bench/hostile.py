#!/usr/bin/env python3
"""A hostile sluice endpoint on a unix socket, for t/9001-bench.bats: it reads
`sluice bench`'s requests and answers each one wrongly, in one way per mode.
It writes a line to FD 3 when it listens (as -d 3 does), serves one
connection, and exits when the client goes.

  hostile.py MODE SOCK
    hang        reads, never answers
    garbage     answers the first request with bytes that are not msgpack
    flood       sends far more tokens (and chunks) than max_tokens asks for
    badtypes    events whose keys have the wrong types
    errors      every request an error event with its own code (>32 codes)
    huge        one 9 MiB event (past the 8 MiB message limit), then the rest
    drop        answers half a request's tokens, then closes the connection
    stranger    events for ids bench never sent, then the right ones
"""
import os
import socket
import sys

import msgpack


def main():
    mode, path = sys.argv[1], sys.argv[2]
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    try:
        os.write(3, b"\n")
        os.close(3)
    except OSError:
        pass
    conn, _ = srv.accept()
    unp = msgpack.Unpacker(raw=False)
    n = 0
    send = conn.sendall
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            unp.feed(data)
            for req in unp:
                if not isinstance(req, dict) or req.get("cancel"):
                    continue
                rid, mt = req["id"], req["max_tokens"]
                n += 1
                if mode == "hang":
                    continue
                if mode == "garbage":
                    send(b"\xc1\xc1 this is not msgpack \xff" * 10)
                    continue
                if mode == "flood":
                    ev = msgpack.packb({"id": rid, "tokens": [1]})
                    send(ev * (mt * 2000))
                    send(msgpack.packb({"id": rid, "tokens": [1], "finish": "length"}))
                elif mode == "badtypes":
                    send(msgpack.packb({"id": rid, "tokens": "nope"}))
                    send(msgpack.packb({"id": rid, "tokens": [1], "finish": 7}))
                elif mode == "errors":
                    send(msgpack.packb({"id": rid, "finish": "error",
                                        "error": {"code": "code%d" % n, "message": "x"}}))
                elif mode == "huge":
                    if n == 1:
                        send(msgpack.packb({"id": rid, "tokens": [1], "pad": "x" * (9 << 20)}))
                    else:
                        send(msgpack.packb({"id": rid, "tokens": [1] * mt, "finish": "length"}))
                elif mode == "drop":
                    send(msgpack.packb({"id": rid, "tokens": [1] * (mt // 2)}))
                    conn.close()
                    return
                elif mode == "stranger":
                    send(msgpack.packb({"id": "b99.0", "tokens": [1], "finish": "length"}))
                    send(msgpack.packb({"id": rid + "x", "tokens": [1]}))
                    send(msgpack.packb({"id": 17, "tokens": [1]}))
                    send(msgpack.packb([1, 2, 3]))
                    for _ in range(mt):
                        send(msgpack.packb({"id": rid, "tokens": [1]}))
                    send(msgpack.packb({"id": rid, "finish": "length",
                                        "usage": {"prompt_tokens": 3, "completion_tokens": mt,
                                                  "cached_tokens": 0}}))
    except (BrokenPipeError, ConnectionResetError):
        pass


if __name__ == "__main__":
    main()
