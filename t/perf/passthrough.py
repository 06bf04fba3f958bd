#!/usr/bin/env python3
"""Pass-through throughput: how many small messages per second one sluice
stage moves over a pipe and over a Unix socket, per wall second and per CPU
second of the stage itself (user + sys, from wait4), median of several runs.

  python3 t/perf/passthrough.py [-n MESSAGES] [-r RUNS]

The pipe stage is `sluice cat -m` (decode with the bounded decoder, check,
re-encode) between two `cat`s; the socket stage is the io_loop echo server
(`iotest echo -l unix:...`, the same decode, pass-through re-encode plus one
key) driven by `iotest client`, which checks every answer in order. `cat`
alone over the same bytes is the floor: what the pipe costs with no work.
"""
import argparse, os, resource, signal, statistics, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SLUICE_BIN", os.path.join(root, "bin"))
T = os.environ.get("SLUICE_T", os.path.join(root, "build/obj/t"))
SLUICE = os.path.join(BIN, "sluice")
IOTEST = os.path.join(T, "helpers/iotest")


def cpu_of(pid):
    _, status, ru = os.wait4(pid, 0)
    return status, ru.ru_utime + ru.ru_stime


def run_pipe(path, stage):
    """cat FILE | STAGE | cat > /dev/null; returns (wall, stage cpu)."""
    devnull = open(os.devnull, "wb")
    t0 = time.monotonic()
    src = subprocess.Popen(["cat", path], stdout=subprocess.PIPE)
    mid = subprocess.Popen(stage, stdin=src.stdout, stdout=subprocess.PIPE)
    src.stdout.close()
    dst = subprocess.Popen(["cat"], stdin=mid.stdout, stdout=devnull)
    mid.stdout.close()
    st, cpu = cpu_of(mid.pid)
    mid.returncode = 0
    src.wait(); dst.wait()
    wall = time.monotonic() - t0
    if st != 0 or src.returncode or dst.returncode:
        sys.exit("pipe run failed: status %d" % st)
    return wall, cpu


def run_socket(n, tmp):
    sock = os.path.join(tmp, "echo.sock")
    r, w = os.pipe()
    srv = subprocess.Popen([IOTEST, "echo", "-d", str(w), "-l", "unix:" + sock], pass_fds=[w])
    os.close(w)
    os.read(r, 1); os.close(r)
    t0 = time.monotonic()
    cli = subprocess.run([IOTEST, "client", "-u", "unix:" + sock, str(n)])
    wall = time.monotonic() - t0
    srv.send_signal(signal.SIGTERM)
    st, cpu = cpu_of(srv.pid)
    srv.returncode = 0
    if cli.returncode != 0 or st != 0:
        sys.exit("socket run failed: client %d server %d" % (cli.returncode, st))
    return wall, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=1000000)
    ap.add_argument("-r", type=int, default=5)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sluice-perf.")
    data = os.path.join(tmp, "msgs")
    with open(data, "wb") as f:
        subprocess.run([IOTEST, "gen", str(a.n)], stdout=f, check=True)
    size = os.path.getsize(data)
    print("# %d messages, %.1f bytes each on average; %d runs, medians; %d cores, %s"
          % (a.n, size / a.n, a.r, os.cpu_count(), cpu_model()), file=sys.stderr)
    res = {"cat (floor)": [], "sluice cat -m (pipe)": [], "echo (unix socket)": []}
    for i in range(a.r):   # alternate the three so drift hits all of them
        res["cat (floor)"].append(run_pipe(data, ["cat"]))
        res["sluice cat -m (pipe)"].append(run_pipe(data, [SLUICE, "cat", "-m"]))
        res["echo (unix socket)"].append(run_socket(a.n, tmp))
        print("# run %d/%d done" % (i + 1, a.r), file=sys.stderr)
    print("%-24s %14s %16s" % ("stage", "msgs/s (wall)", "msgs/s per CPU s"))
    for k, v in res.items():
        wall = statistics.median(x[0] for x in v)
        cpu = statistics.median(x[1] for x in v)
        print("%-24s %14.0f %16.0f" % (k, a.n / wall, a.n / cpu if cpu else float("inf")))
    subprocess.run(["rm", "-rf", tmp])


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
