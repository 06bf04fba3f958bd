#!/usr/bin/env python3
"""reaper.py COMMAND [ARG...]: runs COMMAND as a child subreaper
(prctl PR_SET_CHILD_SUBREAPER), so that every process it starts and leaves
behind is re-parented here instead of to init. Once COMMAND has exited,
each such process still there (running or a zombie) is listed on stderr
with its command line and killed, and reaper exits 98; otherwise it exits
with COMMAND's status (128 + N for a signal). A SIGTERM to reaper is passed
on to COMMAND (and the check still made once it exits), so that timeout(1)
leaves nothing behind either; SIGINT is ignored, so that a Ctrl-C sent to
the process group (kill -INT -- -PGID) reaches COMMAND once, as from a
terminal."""
import ctypes
import os
import signal
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36


def children():
    me, found = str(os.getpid()), []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if ppid == me:
            found.append((int(d), state, cmd))
    return found


if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    sys.exit("reaper: unable to become a subreaper: " + os.strerror(ctypes.get_errno()))
# COMMAND gets SIGINT's default action even where it was ignored here (as in
# a background job of a shell without job control, which bats is)
signal.signal(signal.SIGINT, signal.SIG_DFL)
child = subprocess.Popen(sys.argv[1:])
signal.signal(signal.SIGTERM, lambda n, f: child.send_signal(n))
signal.signal(signal.SIGINT, signal.SIG_IGN)
rc = child.wait()
left = children()
for pid, state, cmd in left:
    print(f"reaper: left behind: pid {pid} ({state}): {cmd}", file=sys.stderr)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass
sys.exit(98 if left else (rc if rc >= 0 else 128 - rc))
