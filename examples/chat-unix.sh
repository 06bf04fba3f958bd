#!/bin/sh
# chat-unix.sh: the engine as a service on a Unix socket, with batchd (the
# queue: admission control, deadlines, cancellation) in front of it:
#
#   sluice cat -u unix:batchd.sock  ->  batchd  ->  infer-cpu (unix:engine.sock)
#
# Each daemon is started with -d 3 and writes a newline on its fd 3 once it
# listens (s6-style readiness), so nothing is sent before it can be taken.
# After the answers, SIGTERM makes each daemon drain (finish what it has,
# remove its socket file) and exit 0.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
PATH=${SLUICE_BIN:-$here/../bin}:$PATH
if [ -z "${MODEL:-}" ]; then
	MODEL=$(sluice model path 2>/dev/null) || MODEL=$(sluice model fetch)
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/sluice-chat.XXXXXX")
pids=
cleanup() { # on any exit: SIGTERM (a drain) to each daemon, newest first
	for p in $pids; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# start NAME COMMAND...: run a daemon in the background and wait for the
# newline it writes on fd 3 (a FIFO here); EOF instead means it died
start() {
	mkfifo "$dir/$1.ready"
	name=$1
	shift
	"$@" -d 3 3>"$dir/$name.ready" &
	pids="$! $pids"
	read -r _ <"$dir/$name.ready" || { echo "$name did not start" >&2; exit 1; }
}

start engine infer-cpu -m "$MODEL" -q -l "unix:$dir/engine.sock"
engine=$!
start batchd batchd -q -l "unix:$dir/batchd.sock" -u "unix:$dir/engine.sock"
batchd=$!
echo "# engine and batchd ready in $dir" >&2

# The requests: JSON lines, one chat each. sluice cat -u sends them, prints
# every event that comes back, and ends once each id had its final event.
# infer-cpu sends token ids; detokenize turns them into text; python3 keeps
# the keys a person reads.
sluice cat -u "unix:$dir/batchd.sock" <<'REQ' |
{"id":"c1","messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":32}
{"id":"c2","messages":[{"role":"user","content":"Name three Unix shells."}],"max_tokens":32}
{"id":"c3","messages":[{"role":"system","content":"Answer in one word."},{"role":"user","content":"What colour is the sky?"}],"max_tokens":8}
REQ
	detokenize -m "$MODEL" -o json |
	python3 -c 'import json, sys
for line in sys.stdin:
    e = json.loads(line)
    print(json.dumps({k: e[k] for k in ("id", "finish", "text") if k in e}, ensure_ascii=False))'

# Drain front to back: batchd first (it stops listening and removes its
# socket), then the engine. Both exit 0 after a clean drain.
drain() { # drain NAME PID
	kill -TERM "$2"
	status=0
	wait "$2" || status=$?
	echo "$1 drained, exit $status"
}
drain batchd "$batchd"
drain engine "$engine"
pids=
if [ -e "$dir/batchd.sock" ] || [ -e "$dir/engine.sock" ]; then
	echo "a socket file was left behind" >&2
	exit 1
fi
echo "socket files removed"
