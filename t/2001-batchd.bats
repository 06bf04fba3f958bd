#!/usr/bin/env bats
# batchd between many clients and one infer-cpu: every request answered
# once to its own client, admission and deadlines before any work, policies,
# cancellation end to end, engine loss and restart, drain on SIGTERM.
# Real processes on unix sockets; the clients are t/batchd/clients.py; the
# engine's own stats ({"op": "stats"}) prove what reached it.

load helpers/lib

setup_file() {
	export PATH=$SLUICE_BIN:$SLUICE_T/helpers:$PATH
	cd "$BATS_FILE_TMPDIR" &&
	sluice model synth --dim 256 --layers 2 --heads 4 --kv-heads 2 --ff 512 --ctx 8192 --seed 7 \
		--type q8_0 -o tiny.gguf >/dev/null 2>&1
}

teardown() {
	local p
	for p in ${BP:-} ${EP:-}; do
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
}

TINY=$BATS_FILE_TMPDIR/tiny.gguf
CLIENTS=$BATS_TEST_DIRNAME/batchd/clients.py

# engine ARGS...: infer-cpu on unix:$T/e (EP its pid), stderr in $T/eerr
engine() {
	rm -f "$T/eready"
	infer-cpu -m "$TINY" -l "unix:$T/e" -d 3 "$@" 3>"$T/eready" 2>>"$T/eerr" &
	EP=$!
	ready "$T/eready"
}

# batchd ARGS...: batchd on unix:$T/b in front of unix:$T/e (BP its pid)
batchd_up() {
	rm -f "$T/bready"
	batchd -l "unix:$T/b" -u "unix:$T/e" -d 3 "$@" 3>"$T/bready" 2>>"$T/berr" &
	BP=$!
	ready "$T/bready"
}

val() {
	echo "$output" | awk -v k="$1" '$1 == k { print $2 }'
}

# est KEY: one figure of the engine's stats (a.b for nested)
est() {
	python3 "$CLIENTS" stats "$T/e" | python3 -c 'import json,sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."): v = v[k]
print(v)' "$1"
}

@test "batchd: usage errors exit 100, -h 0" {
	run batchd
	[ "$status" -eq 100 ]
	run batchd -l unix:/tmp/x --policy fifo -u unix:/tmp/y
	[ "$status" -eq 100 ]
	[[ "$output" == *"--policy fifo: one of continuous, dynamic, static"* ]]
	# the engine is on a socket or a Redis stream (t/5002), not a descriptor
	run batchd -u fd:7
	[ "$status" -eq 100 ]
	[[ "$output" == *"unix:, tcp: or redis://"* ]]
	run batchd -h
	[ "$status" -eq 0 ]
	[[ "$output" == "usage: batchd "* ]]
	# a readiness descriptor that is not open is refused at once (a socket
	# opened later would take its number and the readiness write close it)
	run batchd -l unix:/tmp/x -u unix:/tmp/y -d 9
	[ "$status" -eq 100 ]
	[ "$output" = "batchd: fatal: -d 9: not an open descriptor" ]
	run timeout 10 infer-cpu -m "$TINY" -l unix:/tmp/x -d 9
	[ "$status" -eq 100 ]
}

@test "batchd: 200 clients at once, the same ids on each: every request answered once, to its client, keys intact" {
	scratch
	engine -q --max-seqs 16
	batchd_up -q
	run python3 "$CLIENTS" many "$T/b" 200
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(val answered_twice)" = 200 ]
	[ "$(val wrong)" = 0 ]
	# batchd learned the engine's --max-seqs and kept no more than that there
	run python3 "$CLIENTS" stats "$T/b"
	echo "$output" | grep -q '"max_running": 16'
	echo "$output" | grep -q '"requests": 400'
	[ "$(est requests)" = 400 ]
	# latencies, as batchd's clients and as the engine saw them
	echo "$output" | python3 -c 'import json,sys; h = json.load(sys.stdin)["histograms"]
assert h["e2e_request_latency_seconds"]["count"] == 400 and h["time_to_first_token_seconds"]["count"] == 400, h
assert sum(h["e2e_request_latency_seconds"]["counts"]) == 400'
	[ "$(est histograms.e2e_request_latency_seconds.count)" = 400 ]
}

@test "batchd: 10x overload: the excess is told overloaded at once, memory bounded, the admitted served" {
	scratch
	engine -q --max-seqs 4
	batchd_up -q --max-queue 40
	run python3 "$CLIENTS" overload "$T/b" "$BP" 800
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(( $(val ok) + $(val overloaded) ))" -eq 800 ]
	[ "$(val other)" = 0 ]
	[ "$(val overloaded)" -ge 700 ]
	# refusals come before any work: the 99th percentile within 200 ms of sending
	[ "$(val overloaded_p99_ms)" -lt 200 ]
	[ "$(val rss_growth_kb)" -lt 8000 ]
	# the engine saw only what was admitted
	[ "$(est requests)" = "$(val ok)" ]
	run python3 "$CLIENTS" stats "$T/b"
	echo "$output" | python3 -c 'import json,sys; s = json.load(sys.stdin); assert s["rejections"]["overloaded"] >= 700, s'
}

@test "batchd: --max-queued-tokens refuses by prompt tokens before any work" {
	scratch
	engine -q --max-seqs 1
	batchd_up -q --max-queued-tokens 10 --policy static --max-batch 100
	run sh -c "printf '%s\n' '{\"id\":\"a\",\"tokens\":[1,2,3,4,5,6],\"max_tokens\":1}' \
		'{\"id\":\"b\",\"tokens\":[1,2,3,4,5,6],\"max_tokens\":1}' | sluice cat -m | sluice cat -u unix:$T/b -t 5000 | sluice cat"
	echo "$output"
	echo "$output" | grep '"id":"b"' | grep -q 'max-queued-tokens'
	echo "$output" | grep '"id":"a"' | grep -q '"finish":"length"'
}

@test "batchd: a deadline that passes in the queue is answered timeout; the engine never sees it" {
	scratch
	engine -q --max-seqs 1
	batchd_up -q --max-inflight 1
	run python3 "$CLIENTS" deadline "$T/b" 30 300
	echo "$output"
	[ "$status" -eq 0 ]
	# 30 x 400 tokens one at a time take far longer than 300 ms on any
	# machine: most expire in the queue (finish timeout, error code timeout)
	timeouts=$(val timeout_timeout)
	[ "$timeouts" -ge 10 ]
	# every request reached the engine or timed out in batchd's queue, not both
	seen=$(est requests)
	[ "$(( seen + timeouts ))" -le 30 ]
	[ "$seen" -ge 1 ]
	run python3 "$CLIENTS" stats "$T/b"
	echo "$output" | python3 -c 'import json,sys
s = json.load(sys.stdin); assert s["rejections"]["timeout"] == int(sys.argv[1]), s' "$timeouts"
}

@test "batchd: a client gone mid-stream has its request cancelled at the engine at once" {
	scratch
	engine -q
	batchd_up -q
	run python3 "$CLIENTS" gone "$T/b" 8000
	[ "$status" -eq 0 ]
	for i in $(seq 50); do [ "$(est finished.cancelled)" = 1 ] && break; sleep 0.05; done
	[ "$(est finished.cancelled)" = 1 ]
	[ "$(est running)" = 0 ]
	[ "$(est generation_tokens)" -lt 2000 ]
}

@test "batchd: {id, cancel: true} is forwarded; the answer is cancelled" {
	scratch
	engine -q
	batchd_up -q
	run python3 "$CLIENTS" cancel "$T/b"
	echo "$output"
	[ "$(val finish)" = cancelled ]
	[ "$(est finished.cancelled)" = 1 ]
}

@test "batchd: the engine killed and restarted: the unstarted complete, the streamed end upstream_lost, batchd stays" {
	scratch
	engine -q --max-seqs 2
	batchd_up -q
	python3 "$CLIENTS" streams "$T/b" 6 2000 "$T/out" &
	CP=$!
	for i in $(seq 100); do [ "$(est running)" = 2 ] && break; sleep 0.05; done
	kill -9 "$EP"
	wait "$EP" 2>/dev/null || true
	sleep 0.5
	kill -0 "$BP"
	engine -q --max-seqs 2
	wait "$CP"
	cat "$T/out"
	[ "$(wc -l <"$T/out")" -eq 6 ]
	[ "$(grep -c ' upstream_lost ' "$T/out")" -eq 2 ]
	[ "$(grep -c ' length - ' "$T/out")" -eq 4 ]
	kill -0 "$BP"
	grep -q 'lost the engine unix:.*/e (it closed the connection): 0 requests to send again, 2 ended upstream_lost' "$T/berr"
}

@test "batchd: requests at an engine that dies before answering anything are sent again when it is back" {
	scratch
	engine -q --max-seqs 2
	batchd_up -q
	python3 "$CLIENTS" streams "$T/b" 4 4000 "$T/out" 0 &
	CP=$!
	for i in $(seq 100); do [ "$(est running)" = 2 ] && break; sleep 0.05; done
	kill -9 "$EP"
	wait "$EP" 2>/dev/null || true
	engine -q --max-seqs 2
	wait "$CP"
	cat "$T/out"
	[ "$(grep -c ' length - 4000$' "$T/out")" -eq 4 ]
	grep -q 'lost the engine unix:.*/e (it closed the connection): 2 requests to send again, 0 ended upstream_lost' "$T/berr"
}

@test "batchd: SIGTERM: in-flight requests complete, new ones are told draining, exit 0" {
	scratch
	engine -q --max-seqs 2
	batchd_up -q
	python3 - "$T/b" "$BP" >"$T/out" <<-'PY' &
	import socket, sys, time, os, signal, msgpack
	s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
	s.sendall(msgpack.packb({"id": "a", "tokens": [1, 2], "max_tokens": 6000, "ignore_eos": True, "stream": True}))
	u = msgpack.Unpacker(raw=False)
	u.feed(s.recv(65536))
	os.kill(int(sys.argv[2]), signal.SIGTERM)
	time.sleep(0.2)
	s.sendall(msgpack.packb({"id": "b", "tokens": [1, 2], "max_tokens": 2}))
	fin = {}
	while len(fin) < 2:
	    b = s.recv(65536)
	    if not b: break
	    u.feed(b)
	    for ev in u:
	        if "finish" in ev:
	            fin[ev["id"]] = ev["finish"] + ":" + ev.get("error", {}).get("code", "")
	print(fin.get("a"), fin.get("b"))
	PY
	CP=$!
	st=0
	wait "$BP" || st=$?
	BP=
	wait "$CP"
	cat "$T/out"
	[ "$st" -eq 0 ]
	[ "$(cat "$T/out")" = "length: error:draining" ]
	[ ! -e "$T/b" ]
}

# policy ARGS...: checks $output of clients.py arrivals with the Python
# expression ARGS, where a = arrival times at the engine and t = send times (ms)
policy() {
	echo "$output" | python3 -c 'import sys
v = {l.split()[0]: list(map(int, l.split()[1:])) for l in sys.stdin}
a, t = v["arrived_ms"], v["sent_ms"]
assert eval(sys.argv[1]), (a, t)' "$1"
}

@test "batchd: policies: continuous releases at once, dynamic waits --max-wait-ms, static only whole batches" {
	scratch
	engine -q --max-seqs 64
	batchd_up -q --policy continuous
	run python3 "$CLIENTS" arrivals "$T/b" 4 100 0
	echo "continuous $output"
	# each request reaches the engine as it comes
	policy 'all(0 <= a[i] - t[i] < 30 for i in range(4))'
	kill "$BP"; wait "$BP" || true

	batchd_up -q --policy dynamic --max-batch 3 --max-wait-ms 250
	run python3 "$CLIENTS" arrivals "$T/b" 7 20 0
	echo "dynamic $output"
	# 3 together as soon as the 3rd came, the next 3 with the 6th; the 7th
	# alone once it waited 250 ms
	policy 'all(0 <= a[i] - t[2] < 30 for i in range(3)) and all(0 <= a[i] - t[5] < 30 for i in range(3, 6)) and 240 <= a[6] - t[6] < 400'
	kill "$BP"; wait "$BP" || true

	batchd_up -q --policy static --max-batch 4
	run python3 "$CLIENTS" arrivals "$T/b" 6 50 1
	echo "static $output"
	# 4 together once the 4th came; the last 2 only at the end of the input
	policy 'all(0 <= a[i] - t[3] < 30 for i in range(4)) and a[4] - t[5] >= 40 and abs(a[5] - a[4]) < 10'
}

@test "batchd: --rate/--burst per connection and per user key: the excess is rate_limited" {
	scratch
	engine -q
	batchd_up -q --rate 0.5 --burst 3
	run python3 "$CLIENTS" rate "$T/b" 20
	echo "$output"
	[ "$(val conn_length)" = 3 ]
	[ "$(val conn_rate_limited)" = 7 ]
	[ "$(val user_length)" = 3 ]
	[ "$(val user_rate_limited)" = 7 ]
}

@test "batchd: stats answers while requests run; bad requests are answered by batchd itself" {
	scratch
	engine -q
	batchd_up -q
	run sh -c "printf '%s\n' '{\"tokens\":[1]}' '{\"id\":\"x\",\"tokens\":\"no\"}' '{\"op\":\"nope\"}' \
		| sluice cat -m | sluice cat -u unix:$T/b -t 3000 | sluice cat"
	echo "$output"
	[ "$(echo "$output" | grep -c bad_request)" -eq 3 ]
	[ "$(est requests)" = 0 ]
}

@test "batchd: 10,000 idle client connections held; another client is still served" {
	scratch
	[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 10100 ] || skip "the hard limit on descriptors is $(ulimit -Hn)"
	engine -q
	batchd_up -q
	run python3 - "$T/b" "$BP" <<-'PY'
	import resource, socket, sys, time, msgpack
	hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
	resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
	def rss(pid):
	    for l in open(f"/proc/{pid}/status"):
	        if l.startswith("VmRSS"): return int(l.split()[1])
	pid = int(sys.argv[2]); r0 = rss(pid)
	idle = []
	for i in range(10000):
	    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); idle.append(s)
	c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1])
	c.sendall(msgpack.packb({"id": "x", "tokens": [1, 2], "max_tokens": 4, "ignore_eos": True}) + msgpack.packb({"op": "stats"}))
	u = msgpack.Unpacker(raw=False); evs = []
	c.settimeout(20)
	while len(evs) < 2:
	    u.feed(c.recv(65536)); evs.extend(u)
	st = [e for e in evs if e.get("op") == "stats"][0]["stats"]
	print("connections", st["connections"])
	print("finish", [e for e in evs if e.get("id") == "x"][0]["finish"])
	print("rss_growth_kb", rss(pid) - r0)
	PY
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(val connections)" = 10001 ]
	[ "$(val finish)" = length ]
	# about 1 kB each (under ASan its shadow and redzones make it ~14 kB)
	limit=40000
	case $SLUICE_BIN in *asan*) limit=250000 ;; esac
	[ "$(val rss_growth_kb)" -lt "$limit" ]
}
