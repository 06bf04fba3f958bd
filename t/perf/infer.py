#!/usr/bin/env python3
"""infer-cpu against llama.cpp on the same GGUF with the same threads (-t 2),
alternating the two programs (A B A B ...), medians of several rounds:

  pp512, tg128   llama.cpp: `llama-bench -m M -t T -p 512 -n 128 -r 1 -o json`
                 per round (it warms up itself); sluice: one infer-cpu
                 process per round fed, one after the other, a warm-up
                 request, a 512-token prompt with max_tokens 1
                 (pp = 512 / (t.first_token - t.scheduled)) and a 4-token
                 prompt with max_tokens 128, ignore_eos
                 (tg = 127 / (t.done - t.first_token)). Prompts are random
                 token ids (seeded) in 100..49000, as llama-bench uses random
                 tokens. On the default Q4_1 model and on a Q8_0 and a
                 Q4_K_M version of it made by our quantize (-t q8_0,
                 -r q4_k_m: its 576-wide matrices are Q5_0, the rest Q4_K
                 and Q6_K, as llama-quantize makes them).
  offline        256 prompts cut from real text (GPL-3, tokenized by our
                 tokenize), lengths 16..512, max_tokens 32..256, fixed seed,
                 greedy, ignore_eos: generated tokens / wall time, model load
                 excluded on both sides. llama.cpp: llama-server with -np
                 parallel slots (continuous batching), a client of as many
                 threads posting token-id prompts to /completion, timed from
                 the first request sent to the last answer. sluice: all
                 requests written to one infer-cpu process, timed from the
                 first request's t.arrived to the last final event read.
                 Both sides get the same KV size (np x 1024 tokens).
  memory         peak RSS of infer-cpu (/usr/bin/time -f %M) against
                 model size + KV memory (--kv-mem) + 64 MB.
  decode roof    the machine's read bandwidth, measured in the same run
                 (build/obj/t/helpers/streamread: the threads of -t reading
                 a 1 GiB buffer, larger than the last-level cache, median
                 of 7 passes; once per round, beside the two programs),
                 and for each side tg128 x bytes read per token / that
                 bandwidth: how near decode runs to the memory roof. The
                 bytes per token are the model's tensor bytes (every
                 weight is read once a step) plus the KV cache read at the
                 mean context of the tg128 run (68 tokens).

The report names the kernels of both sides: sluice's from infer-cpu's
load summary (SLUICE_ISA=avx2 in the environment measures the AVX2 path
on an AVX-512 machine), llama.cpp's read off its CPU library's code (zmm
registers: AVX-512; vpdpbusd: VNNI), since a llama.cpp built with
GGML_NATIVE=OFF runs AVX2 code on an AVX-512 machine.

Peers come from variables (PEERS.md): LLAMA_BENCH, LLAMA_SERVER (paths of
llama.cpp's tools; else looked up on PATH); a missing one is skipped.
INFER_CPU overrides bin/infer-cpu. Uses the msgpack module, else goes
through `sluice cat`. The whole run is long on 2 cores: one llama-server
round of the offline job takes 10+ minutes; --offline-runs, --prompts and
--only cut it down.

  python3 t/perf/infer.py [-r RUNS] [--offline-runs N] [-m MODEL] [--np N]
      [--prompts N] [--max-seqs N] [--only pp,offline] [--q8 FILE] [--qkm FILE|none]
      [--also FILE]... [--names A,B,...]
      [--bench-args ARGS] [--server-args ARGS]
"""
import argparse, json, os, queue, random, shutil, signal, statistics, subprocess, sys, tempfile
import threading, time
import http.client

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SLUICE_BIN", os.path.join(root, "bin"))
INFER = os.environ.get("INFER_CPU", os.path.join(BIN, "infer-cpu"))
TEXT = "/usr/share/common-licenses/GPL-3"
SLOT_CTX = 1024         # per llama-server slot: the longest job is 512 + 256
TIMEOUT = 900           # seconds without an event before a run is given up

LIVE = []               # process groups to kill if we stop early

try:
    import msgpack
except ImportError:
    msgpack = None


def peer(var, name):
    p = os.environ.get(var) or shutil.which(name)
    return p if p and os.access(p, os.X_OK) else None


STREAMREAD = os.environ.get("STREAMREAD", os.path.join(os.environ.get(
    "SLUICE_T", os.path.join(root, "build", "obj", "t")), "helpers", "streamread"))


def bandwidth(threads):
    """The machine's read bandwidth now, bytes/s (None without streamread)."""
    if not os.access(STREAMREAD, os.X_OK):
        return None
    r = subprocess.run([STREAMREAD, "-t", str(threads)], capture_output=True, text=True, check=True)
    return float(r.stdout.strip()) * 1e9


def tensor_bytes(model):
    """The bytes of the model's tensors (sluice gguf info)."""
    out = subprocess.run([os.path.join(BIN, "sluice"), "gguf", "info", model], check=True,
                         capture_output=True, text=True).stdout
    for l in out.split("\n"):
        f = l.split("\t")
        if f[0] == "tensor_bytes":
            return int(f[1])
    return os.path.getsize(model)


def machine_isa():
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for l in f:
                if l.startswith("flags"):
                    flags = l
                    break
    except OSError:
        pass
    return "AVX-512 (avx512f)" if " avx512f" in flags else "AVX2" if " avx2" in flags else "neither AVX2 nor AVX-512"


OURS_ISA = set()        # the kernel paths infer-cpu named in its load summaries


def peer_isa(tool):
    """What llama.cpp's CPU backend was compiled for, read off its code:
    zmm registers mean AVX-512, vpdpbusd VNNI, tile instructions AMX."""
    try:
        ldd = subprocess.run(["ldd", tool], capture_output=True, text=True).stdout
        libs = [l.split("=>")[1].split()[0] for l in ldd.split("\n")
                if "libggml-cpu" in l and "=>" in l]
        lib = libs[0] if libs else tool
        dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", lib], capture_output=True,
                             text=True).stdout
    except (OSError, IndexError):
        return "?"
    isa = "AVX-512" if "%zmm" in dis else "AVX2" if "%ymm" in dis else "neither AVX2 nor AVX-512"
    extra = [n for n, op in (("VNNI", "vpdpbusd"), ("BF16", "vdpbf16ps"), ("AMX", "tdpbssd")) if op in dis]
    return isa + (" (%s)" % ", ".join(extra) if extra else "") + ", " + os.path.basename(lib)


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for l in f:
                if l.startswith("model name"):
                    model = l.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "nproc %d, %s" % (os.cpu_count(), model)


def gguf_kv(model):
    out = subprocess.run([os.path.join(BIN, "sluice"), "gguf", "kv", model], check=True,
                         capture_output=True, text=True).stdout
    kv = {}
    for l in out.split("\n"):
        f = l.split("\t")
        if len(f) == 3:
            kv[f[0]] = f[2]
    return kv


def kv_bytes_per_token(model):
    """K and V in f16 for every layer: what llama.cpp allocates by default."""
    kv = gguf_kv(model)
    arch = kv["general.architecture"].strip('"')
    g = lambda k: int(kv["%s.%s" % (arch, k)])
    heads = g("attention.head_count")
    kvh = int(kv.get("%s.attention.head_count_kv" % arch, heads))
    hd = g("embedding_length") // heads
    return g("block_count") * kvh * hd * 2 * 2


class Engine:
    """One infer-cpu process: requests in, events out, through msgpack or,
    without the module, through `sluice cat -m | infer-cpu | sluice cat`.
    Its peak RSS comes from /usr/bin/time, written to a file at exit."""

    def __init__(self, args, tmp):
        self.rss_file = os.path.join(tmp, "rss")
        self.err_file = os.path.join(tmp, "infer.err")
        cmd = ["/usr/bin/time", "-f", "%M", "-o", self.rss_file, INFER] + args
        self.err = open(self.err_file, "wb")
        self.t_start = time.time()
        if msgpack:
            self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                      start_new_session=True)
        else:
            cat = os.path.join(BIN, "sluice")
            sh = "%s cat -m | %s | %s cat" % (cat, " ".join(map(sh_quote, cmd)), cat)
            self.p = subprocess.Popen(sh, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self.err, start_new_session=True)
        LIVE.append(self.p)
        self.q = queue.Queue()
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            if msgpack:
                # os.read: a buffered read would wait for a full buffer
                u = msgpack.Unpacker(raw=False)
                fd = self.p.stdout.fileno()
                while True:
                    b = os.read(fd, 1 << 16)
                    if not b:
                        break
                    u.feed(b)
                    for ev in u:
                        self.q.put((time.time(), ev))
            else:
                for l in self.p.stdout:
                    self.q.put((time.time(), json.loads(l)))
        finally:
            self.q.put((time.time(), None))

    def send(self, req):
        b = msgpack.packb(req) if msgpack else (json.dumps(req) + "\n").encode()
        with self.lock:
            self.p.stdin.write(b)
            self.p.stdin.flush()

    def close_input(self):
        self.p.stdin.close()

    def final(self):
        """The next final event (one with finish) and the time it was read."""
        while True:
            try:
                t, ev = self.q.get(timeout=TIMEOUT)
            except queue.Empty:
                self.fail("no event for %d s" % TIMEOUT)
            if ev is None:
                self.fail("output ended early")
            if "error" in ev and "finish" not in ev:
                self.fail("error event %r" % ev)
            if "finish" in ev:
                return t, ev

    def finish(self):
        """Waits for the end; returns peak RSS in KB."""
        if not self.p.stdin.closed:
            self.p.stdin.close()
        if self.p.wait() != 0:
            self.fail("exit status %d" % self.p.returncode)
        self.err.close()
        with open(self.err_file, errors="replace") as f:
            # the load summary ends with the kernel path: ", AVX-512"
            first = f.readline().strip()
            if first.startswith("infer-cpu: ") and ", " in first:
                OURS_ISA.add(first.rsplit(", ", 1)[1])
        with open(self.rss_file) as f:
            return int(f.read().split()[-1])

    def fail(self, why):
        kill(self.p)
        self.err.close()
        with open(self.err_file, "rb") as f:
            sys.stderr.write(f.read()[-4000:].decode(errors="replace"))
        sys.exit("infer-cpu: %s" % why)


def kill(p):
    """The whole group: /usr/bin/time or sh would leave infer-cpu running."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def sh_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def check_final(ev, want):
    if ev.get("finish") not in ("length", "stop"):
        sys.exit("infer-cpu: request %s finished with %r" % (ev.get("id"), ev))
    got = ev.get("usage", {}).get("completion_tokens")
    if got != want:
        sys.exit("infer-cpu: request %s made %r tokens, not %d" % (ev.get("id"), got, want))


def progress(done):
    """Counts a finished job; a line on stderr every tenth of the work."""
    with done[2]:
        done[0] += 1
        if done[0] % max(1, done[1] // 10) == 0:
            print("  %d/%d done" % (done[0], done[1]), file=sys.stderr)


# ---- pp512 / tg128

def ours_pp_tg(model, threads, rnd, tmp):
    """One process, three requests in turn: warm-up, pp512, tg128."""
    e = Engine(["-m", model, "-t", str(threads)], tmp)
    rand = lambda n: [rnd.randint(100, 49000) for _ in range(n)]
    base = {"temperature": 0, "ignore_eos": True, "stream": False}
    e.send(dict(base, id="warm", tokens=rand(64), max_tokens=16))
    check_final(e.final()[1], 16)
    e.send(dict(base, id="pp512", tokens=rand(512), max_tokens=1))
    _, ev = e.final()
    check_final(ev, 1)
    t = ev["t"]
    pp = 512 / (t["first_token"] - t["scheduled"])
    e.send(dict(base, id="tg128", tokens=rand(4), max_tokens=128))
    _, ev = e.final()
    check_final(ev, 128)
    t = ev["t"]
    tg = 127 / (t["done"] - t["first_token"])
    return pp, tg, e.finish()


def peer_pp_tg(bench, model, threads, extra):
    out = subprocess.run([bench, "-m", model, "-t", str(threads), "-p", "512", "-n", "128",
                          "-r", "1", "-o", "json"] + extra, check=True, capture_output=True, text=True).stdout
    pp = tg = None
    rows = json.loads(out)
    for r in rows:
        if r["n_prompt"] == 512 and r["n_gen"] == 0:
            pp = r["avg_ts"]
        elif r["n_gen"] == 128 and r["n_prompt"] == 0:
            tg = r["avg_ts"]
    return pp, tg, rows[0]


# ---- offline throughput

def workload(n, seed):
    """n jobs (prompt ids, max_tokens) cut at random from GPL-3 tokenized."""
    try:
        with open(TEXT) as f:
            text = f.read()
    except OSError as ex:
        sys.exit("offline job needs %s (Debian's base-files): %s" % (TEXT, ex))
    req = json.dumps({"id": "text", "prompt": text}) + "\n"
    out = subprocess.run([os.path.join(BIN, "tokenize"), "-i", "json", "-o", "json", "--no-special"],
                         input=req, check=True, capture_output=True, text=True).stdout
    ids = json.loads(out)["tokens"]
    rnd = random.Random(seed)
    jobs = []
    for _ in range(n):
        L = rnd.randint(16, 512)
        off = rnd.randint(0, len(ids) - L)
        jobs.append((ids[off:off + L], rnd.randint(32, 256)))
    return jobs


def ours_offline(model, threads, jobs, kv_mem, max_seqs, tmp):
    args = ["-m", model, "-t", str(threads), "--kv-mem", str(kv_mem)]
    if max_seqs:
        args += ["--max-seqs", str(max_seqs)]
    e = Engine(args, tmp)

    def feed():
        for i, (p, n) in enumerate(jobs):
            e.send({"id": "j%d" % i, "tokens": p, "max_tokens": n, "temperature": 0,
                    "ignore_eos": True, "stream": False})
        e.close_input()
    threading.Thread(target=feed, daemon=True).start()
    want = {"j%d" % i: n for i, (_, n) in enumerate(jobs)}
    arrived, last = [], 0
    done = [0, len(jobs), threading.Lock()]
    for _ in jobs:
        t, ev = e.final()
        progress(done)
        check_final(ev, want.pop(ev["id"]))
        arrived.append(ev["t"]["arrived"])
        last = t
    rss = e.finish()
    return last - min(arrived), last - e.t_start, rss


class Server:
    def __init__(self, exe, model, threads, np_, tmp, extra):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.cmd = [exe, "-m", model, "-t", str(threads), "-np", str(np_), "-c", str(np_ * SLOT_CTX),
                    "--cont-batching"] + extra + ["--host", "127.0.0.1", "--port", str(self.port)]
        self.log = open(os.path.join(tmp, "server.log"), "wb")
        self.p = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        LIVE.append(self.p)
        t0 = time.time()
        while True:
            if self.p.poll() is not None:
                self.fail("exited with %d" % self.p.returncode)
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    c.close()
                    break
                c.close()
            except OSError:
                pass
            if time.time() - t0 > 120:
                self.fail("not ready after 120 s")
            time.sleep(0.1)

    def fail(self, why):
        self.stop()
        with open(self.log.name, "rb") as f:
            sys.stderr.write(f.read()[-4000:].decode(errors="replace"))
        sys.exit("llama-server: %s" % why)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def peer_offline(server, jobs, clients):
    q = queue.Queue()
    for j in enumerate(jobs):
        q.put(j)
    errs = []
    done = [0, len(jobs), threading.Lock()]

    def client():
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
        while not errs:
            try:
                i, (p, n) = q.get_nowait()
            except queue.Empty:
                break
            body = json.dumps({"prompt": p, "n_predict": n, "temperature": 0, "ignore_eos": True,
                               "stream": False})
            try:
                c.request("POST", "/completion", body, {"Content-Type": "application/json"})
                r = c.getresponse()
                d = json.loads(r.read())
            except (OSError, http.client.HTTPException, ValueError) as ex:
                errs.append("job %d: %s" % (i, ex))
                break
            if r.status != 200 or d.get("tokens_predicted") != n:
                errs.append("job %d: status %d, %r tokens, not %d" % (i, r.status, d.get("tokens_predicted"), n))
            progress(done)
        c.close()
    ts = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.time() - t0
    if errs:
        server.fail(errs[0])
    return dt


# ---- report

def med(xs):
    return statistics.median(xs) if xs else None


def spread(xs):
    if not xs:
        return "skipped"
    s = "%.1f" % med(xs)
    if len(xs) > 1:
        s += " ±%.1f" % statistics.stdev(xs)
    return s


def ratio(a, b):
    return "%.2fx" % (med(a) / med(b)) if a and b else "-"


def main():
    # SIGTERM (a timeout) runs the finally clauses: no llama-server left behind
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    ap = argparse.ArgumentParser(description="infer-cpu against llama.cpp")
    ap.add_argument("-r", "--runs", type=int, default=5, help="rounds for pp512/tg128")
    ap.add_argument("--offline-runs", type=int, default=5, help="rounds for the offline job")
    ap.add_argument("-m", "--model")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--np", type=int, default=16, help="llama-server slots and client threads")
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--max-seqs", type=int, help="infer-cpu --max-seqs for the offline job")
    ap.add_argument("--q8", help="a Q8_0 model to use instead of quantizing one")
    ap.add_argument("--qkm", help="a Q4_K_M model to use instead of quantizing one ('none': skip it)")
    ap.add_argument("--only", default="pp,offline", help="pp (pp512, tg128), offline")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--names", default="Q4_1,Q8_0,Q4_K_M",
                    help="what to call -m, --q8, --qkm and each --also in the table")
    ap.add_argument("--also", action="append", default=[], help="one more model for pp/tg (repeatable)")
    ap.add_argument("--bench-args", default="", help="more llama-bench arguments, e.g. '-fa 0'")
    ap.add_argument("--server-args", default="", help="more llama-server arguments")
    a = ap.parse_args()
    only = set(a.only.split(","))
    model = a.model or subprocess.run([os.path.join(BIN, "sluice"), "model", "path"], check=True,
                                      capture_output=True, text=True).stdout.strip()
    bench = peer("LLAMA_BENCH", "llama-bench")
    server = peer("LLAMA_SERVER", "llama-server")
    have_ours = os.access(INFER, os.X_OK)
    if not have_ours:
        print("infer-cpu not built: skipped")
    if not bench:
        print("llama-bench: skipped (set LLAMA_BENCH)")
    if not server:
        print("llama-server: skipped (set LLAMA_SERVER)")
    if not msgpack:
        print("(no msgpack module: through sluice cat)")
    if not os.access("/usr/bin/time", os.X_OK):
        sys.exit("no /usr/bin/time (GNU time): needed for the peak RSS")

    load0 = os.getloadavg()[0]
    tmp = tempfile.mkdtemp(prefix="sluice-perf-infer.")
    rows, notes, rss_off, rss_pp = [], [], [], []
    bws, roofs = [], []
    peer_info = None
    kv_mem = kv_bytes_per_token(model) * a.np * SLOT_CTX
    try:
        if "pp" in only and (have_ours or bench):
            q8 = a.q8
            if not q8:
                q8 = os.path.join(tmp, "q8_0.gguf")
                subprocess.run([os.path.join(BIN, "quantize"), "-q", "-t", "q8_0", model, q8], check=True)
            qkm = a.qkm
            if not qkm:
                qkm = os.path.join(tmp, "q4_k_m.gguf")
                subprocess.run([os.path.join(BIN, "quantize"), "-q", "-r", "q4_k_m", model, qkm],
                               check=True, stderr=subprocess.DEVNULL)
            rnd = random.Random(a.seed)
            models = [model, q8] + ([] if qkm == "none" else [qkm])
            names = a.names.split(",")
            if qkm == "none" and len(names) > 2 and names[2] == "Q4_K_M":
                del names[2]
            for name, m in zip(names, models + a.also):
                r = {"pp": ([], []), "tg": ([], [])}
                for i in range(a.runs):
                    print("%s pp512/tg128 round %d/%d" % (name, i + 1, a.runs), file=sys.stderr)
                    bw = bandwidth(a.threads)
                    if bw:
                        bws.append(bw)
                    order = ("ours", "peer") if i % 2 == 0 else ("peer", "ours")
                    for who in order:
                        if who == "ours" and have_ours:
                            pp, tg, rss = ours_pp_tg(m, a.threads, rnd, tmp)
                            r["pp"][0].append(pp); r["tg"][0].append(tg); rss_pp.append(rss)
                        elif who == "peer" and bench:
                            pp, tg, peer_info = peer_pp_tg(bench, m, a.threads, a.bench_args.split())
                            r["pp"][1].append(pp); r["tg"][1].append(tg)
                for k, label in (("pp", "pp512"), ("tg", "tg128")):
                    rows.append(("%s %s (tok/s)" % (label, name), r[k][0], r[k][1], 1.0))
                per_tok = tensor_bytes(m) + kv_bytes_per_token(m) * 68
                roofs.append((name, per_tok, [t * per_tok for t in r["tg"][0]],
                              [t * per_tok for t in r["tg"][1]]))
            notes.append("pp/tg: peer %s -m M -t %d -p 512 -n 128 -r 1 -o json%s per round;"
                         " sluice infer-cpu -m M -t %d, one request after another: warm-up,"
                         " 512 random ids max_tokens 1, 4 ids max_tokens 128 ignore_eos"
                         % (bench or "llama-bench", a.threads, (" " + a.bench_args) if a.bench_args else "",
                            a.threads))
        if "offline" in only:
            jobs = workload(a.prompts, a.seed)
            gen = sum(n for _, n in jobs)
            ptok = sum(len(p) for p, _ in jobs)
            o, o_load, p_ = [], [], []
            srv_cmd = None
            for i in range(a.offline_runs):
                print("offline round %d/%d" % (i + 1, a.offline_runs), file=sys.stderr)
                order = ("ours", "peer") if i % 2 == 0 else ("peer", "ours")
                for who in order:
                    if who == "ours" and have_ours:
                        dt, dt_load, rss = ours_offline(model, a.threads, jobs, kv_mem, a.max_seqs, tmp)
                        o.append(gen / dt); o_load.append(gen / dt_load); rss_off.append(rss)
                    elif who == "peer" and server:
                        s = Server(server, model, a.threads, a.np, tmp, a.server_args.split())
                        srv_cmd = s.cmd
                        try:
                            p_.append(gen / peer_offline(s, jobs, a.np))
                        finally:
                            s.stop()
            rows.append(("offline %d jobs (gen tok/s)" % len(jobs), o, p_, 1.5))
            notes.append("offline job: %d prompts, %d prompt tokens, %d generated (ignore_eos), seed %d, load excluded"
                         % (len(jobs), ptok, gen, a.seed))
            if o_load:
                notes.append("  sluice including model load: %s gen tok/s" % spread(o_load))
            if srv_cmd:
                notes.append("  peer: %s, %d client threads -> /completion (token ids, n_predict,"
                             " temperature 0, ignore_eos)" % (" ".join(srv_cmd[:1] + ["-m", "M"] + srv_cmd[3:-4]), a.np))
            notes.append("  sluice: infer-cpu -m M -t %d --kv-mem %d%s" % (
                a.threads, kv_mem, " --max-seqs %d" % a.max_seqs if a.max_seqs else ""))
    finally:
        for p in LIVE:
            kill(p)
        shutil.rmtree(tmp, ignore_errors=True)

    print("machine: %s, %s; %d threads; load average %.2f at the start, %.2f at the end"
          % (machine(), machine_isa(), a.threads, load0, os.getloadavg()[0]))
    if bws:
        bw = med(bws)
        print("read bandwidth (streamread, %d threads, 1 GiB): %s GB/s" % (a.threads, spread([b / 1e9 for b in bws])))
        for name, per_tok, ours, theirs in roofs:
            print("decode roof %s: %.1f MB read a token; tg128 x that / bandwidth: sluice %s, llama.cpp %s (goal 0.8)"
                  % (name, per_tok / 1e6, "%.2f" % (med(ours) / bw) if ours else "-",
                     "%.2f" % (med(theirs) / bw) if theirs else "-"))
    print("model: %s (%d bytes)" % (model, os.path.getsize(model)))
    if server:
        v = subprocess.run([server, "--version"], capture_output=True, text=True)
        v = [l for l in (v.stdout + v.stderr).split("\n") if l.startswith("version")]
        print("llama-server: %s (%s)" % (v[0] if v else "?", server))
    if peer_info:
        fa = {-1: "auto", 0: "off", 1: "on"}.get(peer_info.get("flash_attn"), peer_info.get("flash_attn"))
        print("llama.cpp: build %s (%s), %s, flash_attn %s, n_batch %s, n_ubatch %s, KV %s, backend %s, cpu %s"
              % (peer_info.get("build_commit"), peer_info.get("build_number"), bench, fa,
                 peer_info.get("n_batch"), peer_info.get("n_ubatch"), peer_info.get("type_k"),
                 peer_info.get("backends"), peer_info.get("cpu_info")))
    if bench or server:
        print("llama.cpp's kernels: %s" % peer_isa(bench or server))
    rev = subprocess.run(["git", "-C", root, "describe", "--always", "--dirty"], capture_output=True,
                         text=True).stdout.strip()
    print("sluice: %s (%s), kernels: %s" % (rev or "?", INFER, ", ".join(sorted(OURS_ISA)) or "?"))
    print("medians of %d rounds (pp/tg), %d (offline), alternating; ± is the standard deviation"
          % (a.runs, a.offline_runs))
    print("%-30s %16s %16s %8s %7s" % ("", "sluice", "llama.cpp", "ratio", "target"))
    for name, ours, theirs, target in rows:
        r = ratio(ours, theirs)
        ok = "" if r == "-" else ("ok" if med(ours) / med(theirs) >= target else "BELOW")
        print("%-30s %16s %16s %8s %5.1fx %s" % (name, spread(ours), spread(theirs), r, target, ok))
    for n in notes:
        print(n)
    for name, ours, theirs, _ in rows:
        print("runs %s: sluice [%s] llama.cpp [%s]" % (name, " ".join("%.1f" % x for x in ours),
                                                       " ".join("%.1f" % x for x in theirs)))
    if rss_pp:
        print("infer-cpu peak RSS in the pp/tg runs (default KV size, Q4_1 and Q8_0): %d KB" % max(rss_pp))
    if rss_off:
        msize = os.path.getsize(model)
        target = (msize + kv_mem) / 1024 + 64 * 1024
        print("infer-cpu peak RSS %d KB (largest of %d offline runs); target model %d + KV %d + 64 MB = %d KB: %s"
              % (max(rss_off), len(rss_off), msize, kv_mem, target, "ok" if max(rss_off) <= target else "OVER"))


if __name__ == "__main__":
    main()
