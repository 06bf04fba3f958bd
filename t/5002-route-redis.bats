#!/usr/bin/env bats
# route (and batchd) feeding a Redis stream: infer-cpu workers take the jobs
# through the consumer group, answers come back on route's reply stream and
# go to the client that asked, once. A worker killed holding jobs: the others
# take them over (?claim=), and every request is still answered exactly once.

load helpers/lib

setup_file() {
	export PATH=$SLUICE_BIN:$SLUICE_T/helpers:$PATH
	cd "$BATS_FILE_TMPDIR" &&
	sluice model synth --dim 256 --layers 2 --heads 4 --kv-heads 2 --ff 512 --ctx 2048 --seed 7 \
		--type q8_0 -o tiny.gguf >/dev/null 2>&1
}

setup() {
	scratch
	redis_start
	: >"$T/pids"
}

teardown() {
	local p
	for p in $(cat "$T/pids"); do
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	redis_stop
}

TINY=$BATS_FILE_TMPDIR/tiny.gguf

# worker NAME: infer-cpu reading the job stream (its pid in $T/NAME.pid)
worker() {
	infer-cpu -q -m "$TINY" -t 1 -l "$REDIS_URL_BASE/jobs?claim=1000&consumer=$1" 2>>"$T/$1.err" &
	echo $! >>"$T/pids"
	echo $! >"$T/$1.pid"
}

# requests N TOKENS [STREAM]: N requests as msgpack, "row" k each; STREAM 1:
# an event per token
requests() {
	python3 -c 'import json, sys
for k in range(int(sys.argv[1])):
    print(json.dumps({"id": "q%d" % k, "prompt": "job %d" % k, "max_tokens": int(sys.argv[2]),
                      "ignore_eos": True, "row": k, "stream": sys.argv[3] == "1"}))' "$1" "$2" "${3:-0}" | sluice cat -m
}

# check FILE N [TOKENS]: N final events, one per id, each "length" with its
# row. With TOKENS (streamed requests): each "length" answer's events carry
# exactly TOKENS tokens (none repeated by a job that ran again), none come
# after the final one, and the rest end upstream_lost (said how many)
check() {
	python3 - "$1" "$2" "${3:-0}" <<'PY'
import json, sys
fin, got = {}, {}
want = int(sys.argv[3])
for line in open(sys.argv[1]):
    e = json.loads(line)
    assert "attempt" not in e, e
    assert e["id"] not in fin, "an event after the final one: " + line
    got[e["id"]] = got.get(e["id"], 0) + len(e.get("tokens", []))
    if "finish" in e:
        fin[e["id"]] = e
n = int(sys.argv[2])
assert len(fin) == n, "%d of %d answered" % (len(fin), n)
lost = 0
for i, e in fin.items():
    if want and e["finish"] == "error" and e["error"]["code"] == "upstream_lost":
        lost += 1
        continue
    assert e["finish"] == "length", e
    assert e["row"] == int(i[1:]), e
    assert not want or got[i] == want, "%s: %d tokens streamed, not %d" % (i, got[i], want)
print(n, "answered once each,", lost, "upstream_lost")
PY
}

@test "route -u redis://: 300 streamed requests to 3 workers, one killed holding jobs: each answered once, no token twice (upstream_lost where it had streamed)" {
	worker w1 && worker w2 && worker w3
	route -q -l "unix:$T/r" -u "$REDIS_URL_BASE/jobs" --max-inflight 64 -d 3 3>"$T/rready" 2>"$T/rerr" &
	echo $! >>"$T/pids"
	ready "$T/rready"
	requests 300 150 1 >"$T/in"
	sluice cat -u "unix:$T/r" <"$T/in" | sluice cat -j >"$T/out" &
	cp=$!
	# w1 holds jobs when it dies: they are reclaimed after ?claim=1000
	for i in $(seq 200); do
		[ "$(redis XPENDING jobs sluice - + 100 w1 | wc -l)" -gt 0 ] && break
		sleep 0.02
	done
	[ "$(redis XPENDING jobs sluice - + 100 w1 | wc -l)" -gt 0 ]
	kill -9 "$(cat "$T/w1.pid")"
	# while jobs are out, route's stats carry the stream's queue (XINFO
	# GROUPS, every 2 s); metrics serves them as gauges
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	metrics -u "unix:$T/r" -l "tcp:127.0.0.1:$port" --interval 0.2 2>"$T/merr" &
	echo $! >>"$T/pids"
	for i in $(seq 100); do
		curl -s "127.0.0.1:$port/metrics" | grep -q '^sluice:replica_queue_pending{' && break
		sleep 0.05
	done
	curl -s "127.0.0.1:$port/metrics" >"$T/prom"
	python3 -c 'import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
for n in ("sluice:replica_queue_pending", "sluice:replica_queue_lag"):
    s = fams[n].samples
    assert len(s) == 1 and s[0].labels["replica"].endswith("/jobs") and s[0].value >= 0, s
print("queue figures:", [(n, fams[n].samples[0].value) for n in ("sluice:replica_queue_lag", "sluice:replica_queue_pending")])' "$T/prom"
	wait "$cp"
	run check "$T/out" 300 150
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(redis XPENDING jobs sluice | head -n 1)" -eq 0 ]
	lost=$(echo "$output" | awk '{ print $5 }')
	# route says where they went: one replica, a stream, up all along
	run python3 "$BATS_TEST_DIRNAME/batchd/clients.py" stats "$T/r"
	python3 -c 'import json, sys
s = json.loads(sys.argv[1])
r = s["replicas"][0]
assert r["up"] and r["routed"] == 300 and r["lost"] == 0, r
lost = int(sys.argv[2])
assert s["finished"]["length"] == 300 - lost and s["errors"]["upstream_lost"] == lost, s' "$output" "$lost"
}

@test "route -u redis://: 1,000 requests to 3 workers, a worker killed and Redis killed and restarted (AOF, appendfsync always): 1,000 answers, each once" {
	redis_stop
	redis_start --appendonly yes --appendfsync always
	worker w1 && worker w2 && worker w3
	route -q -l "unix:$T/r" -u "$REDIS_URL_BASE/jobs" --max-inflight 64 -d 3 3>"$T/rready" 2>"$T/rerr" &
	echo $! >>"$T/pids"
	ready "$T/rready"
	requests 1000 24 >"$T/in"
	sluice cat -u "unix:$T/r" <"$T/in" | sluice cat -j >"$T/out" &
	cp=$!
	# a third of the way: w1 dies holding jobs
	for i in $(seq 600); do
		[ "$(grep -c finish "$T/out")" -ge 333 ] && break
		sleep 0.05
	done
	[ "$(redis XPENDING jobs sluice - + 100 w1 | wc -l)" -gt 0 ] || sleep 0.1
	kill -9 "$(cat "$T/w1.pid")"
	# two thirds: the server dies (SIGKILL: no shutdown save, only what
	# appendfsync always wrote) and comes back on the same port
	for i in $(seq 600); do
		[ "$(grep -c finish "$T/out")" -ge 666 ] && break
		sleep 0.05
	done
	n=$(grep -c finish "$T/out")
	redis_restart
	echo "Redis restarted after $n answers"
	[ "$n" -lt 1000 ]
	# a job lost would leave the client waiting: 60 s at most
	for i in $(seq 1200); do
		kill -0 "$cp" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$cp" 2>/dev/null && { echo "$(grep -c finish "$T/out") answered after 60 s"; cat "$T/rerr"; false; }
	wait "$cp"
	run check "$T/out" 1000
	echo "$output"
	[ "$status" -eq 0 ]
	# a job added twice (its XADD reached Redis, the reply did not) runs
	# twice; the stream drains all the same, nothing stays pending
	# (a copy left with the killed worker is claimed after 1 s idle; on a
	# loaded machine that took longer than 10 s once: 30 s, and what is
	# still pending is printed)
	for i in $(seq 600); do
		[ "$(redis XPENDING jobs sluice | head -n 1)" -eq 0 ] && break
		sleep 0.05
	done
	redis XPENDING jobs sluice - + 10
	[ "$(redis XPENDING jobs sluice | head -n 1)" -eq 0 ]
	# route saw Redis go, kept the jobs it could not add, and counts 1,000
	grep -q "lost redis\|unable to reach redis\|unable to add a job" "$T/rerr"
	run python3 "$BATS_TEST_DIRNAME/batchd/clients.py" stats "$T/r"
	python3 -c 'import json, sys
s = json.loads(sys.argv[1])
assert s["finished"]["length"] == 1000, s["finished"]' "$output"
}

@test "batchd -u redis://: a pipeline's requests through a stream and back, in any order, each once" {
	worker w1 && worker w2
	batchd -q -l "unix:$T/b" -u "$REDIS_URL_BASE/jobs" -d 3 3>"$T/bready" 2>"$T/berr" &
	echo $! >>"$T/pids"
	ready "$T/bready"
	requests 100 8 >"$T/in"
	sluice cat -u "unix:$T/b" <"$T/in" | sluice cat -j >"$T/out"
	run check "$T/out" 100
	echo "$output"
	[ "$status" -eq 0 ]
}
