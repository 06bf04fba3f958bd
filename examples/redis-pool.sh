#!/bin/sh
# redis-pool.sh [FILE]: a worker pool on a Redis stream. Workers
# (infer-cpu -l redis://HOST:PORT/STREAM) take jobs from the stream through
# a consumer group and add each answer to the producer's reply stream; any
# number of them, on any machine that reaches Redis. The producer here is
# sluice cat -u redis://... (batchd or route -u redis://... do the same for
# a service). A worker that dies leaves its jobs pending and another claims
# them: every job gets one final answer.
#
# Redis: $REDIS_URL (redis://HOST:PORT) if set, else a redis-server of our
# own on a free loopback port, stopped at the end. $WORKERS workers (3).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
PATH=${SLUICE_BIN:-$here/../bin}:$PATH
if [ -z "${MODEL:-}" ]; then
	MODEL=$(sluice model path 2>/dev/null) || MODEL=$(sluice model fetch)
fi
file=${1:-$here/chat.jsonl}

dir=$(mktemp -d "${TMPDIR:-/tmp}/sluice-redis.XXXXXX")
stream=sl:example:$$   # a stream of our own
url=
workers='' redis=''
cleanup() { # workers first (SIGTERM: each finishes its jobs), then our stream, Redis last
	for p in $workers; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ -n "$redis" ]; then
		kill "$redis" 2>/dev/null || true
		wait "$redis" 2>/dev/null || true
	else # a shared Redis: remove the job stream (and its dead letters, if any)
		redis-cli -u "$url" del "$stream" "$stream:dead" >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

if [ -n "${REDIS_URL:-}" ]; then
	url=${REDIS_URL%/}
else
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" >"$dir/redis.log" &
	redis=$!
	url=redis://127.0.0.1:$port
	i=0
	until redis-cli -u "$url" ping >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -lt 100 ] || { echo "redis-server did not start" >&2; cat "$dir/redis.log" >&2; exit 1; }
		sleep 0.05
	done
fi
echo "# Redis at $url, stream $stream"

# prefetch=1: a worker holds one job at a time, so this short demo spreads
# over the pool (the default, 64, is for throughput)
n=0
while [ "$n" -lt "${WORKERS:-3}" ]; do
	n=$((n + 1))
	mkfifo "$dir/w$n.ready"
	infer-cpu -m "$MODEL" -t 1 -q -l "$url/$stream?prefetch=1" -d 3 3>"$dir/w$n.ready" &
	workers="$! $workers"
	read -r _ <"$dir/w$n.ready" || { echo "worker $n did not start" >&2; exit 1; }
	echo "# worker $n: pid $!"
done

# Each answer carries attempt: "CONSUMER/N", the consumer being the worker's
# HOST:PID. python3 joins streamed pieces and counts answers per worker.
sluice cat -u "$url/$stream" <"$file" |
	detokenize -m "$MODEL" -o json |
	python3 -c 'import collections, json, sys
text, per = collections.defaultdict(str), collections.Counter()
for line in sys.stdin:
    e = json.loads(line)
    text[e["id"]] += e.get("text", "")
    if "finish" in e:
        worker = e.get("attempt", "?").split("/")[0]
        per[worker] += 1
        print(json.dumps({"id": e["id"], "worker": worker, "finish": e["finish"],
                          "text": text.pop(e["id"])}, ensure_ascii=False))
print("# answers per worker:", ", ".join("%s %d" % kv for kv in sorted(per.items())))'

