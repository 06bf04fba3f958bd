#!/bin/sh
# route-replicas.sh: two engine replicas (one thread each) behind route, the
# cache-aware balancer, on Unix sockets:
#
#                               +-> infer-cpu -t 1 (unix:e1.sock)
#   sluice cat -> route --policy prefix
#                               +-> infer-cpu -t 1 (unix:e2.sock)
#
# With --policy prefix, route tokenizes each prompt (with -m's chat template)
# and sends it where the longest run of its leading 16-token blocks went
# last, so requests sharing a system prompt meet the KV blocks that prompt
# left in one engine's prefix cache; a replica loaded past 1.25x the mean
# gets no more. Two "conversations" with different system prompts are sent;
# route's stats ({"op":"stats"}) then show how they were spread.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
PATH=${SLUICE_BIN:-$here/../bin}:$PATH
if [ -z "${MODEL:-}" ]; then
	MODEL=$(sluice model path 2>/dev/null) || MODEL=$(sluice model fetch)
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/sluice-route.XXXXXX")
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

start() { # start NAME COMMAND...: in the background, then wait for its -d 3 line
	mkfifo "$dir/$1.ready"
	name=$1
	shift
	"$@" -d 3 3>"$dir/$name.ready" &
	pids="$! $pids"
	read -r _ <"$dir/$name.ready" || { echo "$name did not start" >&2; exit 1; }
}

start e1 infer-cpu -m "$MODEL" -t 1 -q -l "unix:$dir/e1.sock"
start e2 infer-cpu -m "$MODEL" -t 1 -q -l "unix:$dir/e2.sock"
start route route -m "$MODEL" --policy prefix -q -l "unix:$dir/route.sock" \
	-u "unix:$dir/e1.sock" -u "unix:$dir/e2.sock"

# route is ready once it listens; each replica is up once it has answered
# route's stats query. Wait for both (10 s at most), or the first requests
# would all go to the one that answered first
i=0
until echo '{"op":"stats"}' | sluice cat -u "unix:$dir/route.sock" |
	python3 -c 'import json, sys; sys.exit(not all(r["up"] for r in json.load(sys.stdin)["stats"]["replicas"]))'; do
	i=$((i + 1))
	[ "$i" -lt 100 ] || { echo "the replicas did not come up" >&2; exit 1; }
	sleep 0.1
done

# eight chats, alternating between two system prompts
rail="You are the help desk of a railway company. Answer questions about timetables, tickets and platforms in one short sentence."
math="You are a patient mathematics tutor for children. Explain each step slowly and use small whole numbers in your examples."
n=0
while IFS='|' read -r topic question; do
	n=$((n + 1))
	if [ "$topic" = rail ]; then system=$rail; else system=$math; fi
	printf '{"id":"%s-%d","max_tokens":24,"messages":[{"role":"system","content":"%s"},{"role":"user","content":"%s"}]}\n' \
		"$topic" "$n" "$system" "$question"
done <<'Q' >"$dir/requests.jsonl"
rail|When does the first train leave?
math|What is 3 plus 4?
rail|Can I bring a bicycle?
math|Why is 7 an odd number?
rail|Where is platform 4?
math|What is half of 10?
rail|Is there a night train?
math|How many sides has a square?
Q

echo "# answers (id, finish, text)"
sluice cat -u "unix:$dir/route.sock" <"$dir/requests.jsonl" |
	detokenize -m "$MODEL" -o json |
	python3 -c 'import json, sys
for line in sys.stdin:
    e = json.loads(line)
    print(json.dumps({k: e[k] for k in ("id", "finish", "text") if k in e}, ensure_ascii=False))'

echo "# route's stats: where the requests went"
echo '{"op":"stats"}' | sluice cat -u "unix:$dir/route.sock" |
	python3 -c 'import json, os, sys
s = json.load(sys.stdin)["stats"]
print("%-8s %3s %7s %12s %5s" % ("replica", "up", "routed", "prefix_hits", "lost"))
for r in s["replicas"]:
    name = os.path.basename(r["endpoint"]).removesuffix(".sock")
    print("%-8s %3d %7d %12d %5d" % (name, r["up"], r["routed"], r["prefix_hits"], r["lost"]))
print("requests %d, finished: %s" % (s["requests"],
      ", ".join("%s %d" % kv for kv in s["finished"].items() if kv[1])))'
