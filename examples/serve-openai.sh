#!/bin/sh
# serve-openai.sh [SERVE-OPTION...]: the whole service in one command, and
# the official OpenAI client against it. `sluice serve` starts and watches
# the tree (engine, batchd, gateway, metrics) and prints its base URL, like
# http://127.0.0.1:PORT/v1, as the first line of its stdout once it is ready;
# openai-client.py then talks to it; SIGTERM drains the tree, front to back,
# and sluice serve exits 0. Options given here go to sluice serve.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
PATH=${SLUICE_BIN:-$here/../bin}:$PATH
if [ -z "${MODEL:-}" ]; then
	MODEL=$(sluice model path 2>/dev/null) || MODEL=$(sluice model fetch)
fi
port=${PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}

dir=$(mktemp -d "${TMPDIR:-/tmp}/sluice-openai.XXXXXX")
serve=
cleanup() {
	exec 5<&-
	if [ -n "$serve" ]; then
		kill "$serve" 2>/dev/null || true
		wait "$serve" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# serve's stdout is a FIFO we keep open (fd 5) for its whole life: we read
# its first line, and it never writes to a pipe with no reader
mkfifo "$dir/out"
sluice serve -m "$MODEL" -l "tcp:127.0.0.1:$port" "$@" >"$dir/out" &
serve=$!
exec 5<"$dir/out"
read -r base <&5 || { echo "sluice serve did not start" >&2; exit 1; }
echo "# sluice serve (pid $serve) at $base"

OPENAI_BASE_URL=$base python3 "$here/openai-client.py"

kill -TERM "$serve"
status=0
wait "$serve" || status=$?
serve=
echo "sluice serve drained, exit $status"
[ "$status" -eq 0 ]
