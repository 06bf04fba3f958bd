#!/usr/bin/env bats
# examples/ run as a newcomer would run them, on real parts (the real
# programs, sockets, signals and a real redis-server), with a tiny
# random-weight model for speed, and the default model once. Each runs under
# t/helpers/reaper.py, a child subreaper: a process an example started and
# left behind is re-parented to it and fails the test; each gets a TMPDIR of
# its own that must be empty afterwards (socket files and temp dirs gone).
# Then share/'s Grafana dashboard and Prometheus config, checked against
# what a live metrics really exports.

load helpers/lib

EX=$SLUICE_ROOT/examples
CHECK=$BATS_TEST_DIRNAME/examples/check.py
REAPER=$BATS_TEST_DIRNAME/helpers/reaper.py

setup_file() {
	export PATH=$SLUICE_BIN:$PATH
	sluice model synth --dim 256 --layers 2 --heads 4 --kv-heads 2 --ff 512 --ctx 2048 --seed 7 \
		--type q8_0 -o "$BATS_FILE_TMPDIR/tiny.gguf" >/dev/null
}

setup() {
	scratch
	mkdir "$T/tmp"
	export TMPDIR=$T/tmp MODEL=$BATS_FILE_TMPDIR/tiny.gguf
	PIDS=
}

teardown() {
	local p
	for p in $PIDS; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	redis_stop
}

# example NAME [ARG...]: runs examples/NAME, stdout in $T/out, stderr in
# $T/err; fails when it fails, leaves a process, or leaves a file in TMPDIR
example() {
	local st=0
	timeout 60 python3 "$REAPER" "$EX/$1" "${@:2}" >"$T/out" 2>"$T/err" || st=$?
	if [ "$st" -ne 0 ]; then
		cat "$T/out" "$T/err" >&2
		echo "$1: exit $st" >&2
		return 1
	fi
	if [ -n "$(ls -A "$T/tmp")" ]; then
		ls -laR "$T/tmp" >&2
		echo "$1 left files in TMPDIR" >&2
		return 1
	fi
}

# gone PID...: none of them runs any more
gone() {
	local p
	for p in "$@"; do
		! kill -0 "$p" 2>/dev/null || { echo "pid $p still runs" >&2; return 1; }
	done
}

@test "batch-jsonl.sh: each request of examples/chat.jsonl answered once, under its id" {
	example batch-jsonl.sh
	python3 "$CHECK" answers "$T/out" q1 q2 q3 q4 q5 q6
	[ "$(wc -l <"$T/out")" -eq 6 ]
	# q4 asked for 32 tokens at most
	grep '"id":"q4"' "$T/out" | grep -q '"completion_tokens":32,'
}

@test "batch-jsonl.sh FILE: 40 requests of our own, our own keys passed through" {
	for i in $(seq 40); do
		printf '{"id":"r%d","prompt":"line %d of a test","max_tokens":%d,"row":%d}\n' "$i" "$i" $((i % 7 + 1)) "$i"
	done >"$T/in.jsonl"
	example batch-jsonl.sh "$T/in.jsonl"
	python3 "$CHECK" answers "$T/out" $(seq -f 'r%g' 40)
	python3 -c 'import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    i = int(e["id"][1:])
    assert e["row"] == i and e["usage"]["completion_tokens"] == i % 7 + 1, line' "$T/out"
}

@test "batch-jsonl.sh with the default model (MODEL unset): real answers" {
	need_model
	unset MODEL
	example batch-jsonl.sh
	python3 "$CHECK" answers "$T/out" q1 q2 q3 q4 q5 q6
	# greedy SmolLM2 on "The three primary colors are"; q4 stops at a blank line
	grep '"id":"q4"' "$T/out" | grep -q 'red.*blue'
	if grep '"id":"q4"' "$T/out" | grep -q '"text":"[^"]*\\n\\n'; then return 1; fi
}

@test "chat-unix.sh: three chats through batchd and infer-cpu on Unix sockets, both drained" {
	example chat-unix.sh
	python3 "$CHECK" answers "$T/out" c1 c2 c3
	grep -qx 'batchd drained, exit 0' "$T/out"
	grep -qx 'engine drained, exit 0' "$T/out"
	grep -qx 'socket files removed' "$T/out"
}

@test "chat-unix.sh: an engine that cannot start fails the script, nothing left behind" {
	st=0
	MODEL=$T/missing.gguf timeout 60 python3 "$REAPER" "$EX/chat-unix.sh" >"$T/out" 2>"$T/err" || st=$?
	[ "$st" -eq 1 ]
	grep -q 'engine did not start' "$T/err"
	[ ! -s "$T/out" ]
	[ -z "$(ls -A "$T/tmp")" ]
}

@test "route-replicas.sh: eight chats over two replicas, route's stats show the spread" {
	example route-replicas.sh
	python3 "$CHECK" answers "$T/out" rail-1 math-2 rail-3 math-4 rail-5 math-6 rail-7 math-8
	# the table: e1 and e2 up, 8 routed in all, each used; two system
	# prompts, so most requests follow their prompt's cached blocks
	awk '$1 == "e1" || $1 == "e2" { n++; up += $2; routed += $3; hits += $4; if ($3 == 0) idle++ }
	     END { exit !(n == 2 && up == 2 && routed == 8 && hits >= 4 && !idle) }' "$T/out" ||
		{ cat "$T/out" >&2; return 1; }
	grep -qx 'requests 8, finished: .*' "$T/out"
}

@test "redis-pool.sh: its own redis-server, three workers, every job answered once" {
	example redis-pool.sh
	python3 "$CHECK" answers "$T/out" q1 q2 q3 q4 q5 q6
	pids=$(sed -n 's/^# worker [0-9]*: pid \([0-9]*\)$/\1/p' "$T/out")
	[ "$(echo "$pids" | wc -w)" -eq 3 ]
	gone $pids
	# each answer names a worker of ours, as HOST:PID
	python3 -c 'import json, sys
pids = set(sys.argv[2].split())
for line in open(sys.argv[1]):
    if line.startswith("{"):
        assert json.loads(line)["worker"].rsplit(":", 1)[1] in pids, line' "$T/out" "$pids"
	# the redis-server it started is gone too (the reaper checks it was waited for)
	url=$(sed -n 's/^# Redis at \(redis:[^,]*\), stream .*/\1/p' "$T/out")
	[ -n "$url" ]
	if redis-cli -u "$url" ping >/dev/null 2>&1; then return 1; fi
}

@test "redis-pool.sh: REDIS_URL, two workers: the server is left running, without the example's stream" {
	redis_start
	redis set mine kept >/dev/null
	REDIS_URL=$REDIS_URL_BASE WORKERS=2 example redis-pool.sh "$EX/requests.jsonl"
	python3 "$CHECK" answers "$T/out" 1 2 3
	[ "$(grep -c '^# worker' "$T/out")" -eq 2 ]
	grep -q "^# Redis at $REDIS_URL_BASE, stream" "$T/out"
	[ "$(redis ping)" = PONG ]
	[ "$(redis keys '*')" = mine ]
}

@test "redis-pool.sh: Ctrl-C mid-run (its input a FIFO nobody writes): Redis and workers stopped, exit 130" {
	mkfifo "$T/in"
	# a process group of its own, as a terminal would give it
	setsid python3 "$REAPER" "$EX/redis-pool.sh" "$T/in" >"$T/out" 2>"$T/err" &
	pid=$!
	PIDS=$pid
	for i in $(seq 200); do
		[ "$(grep -c '^# worker' "$T/out")" -eq 3 ] && break
		sleep 0.05
	done
	[ "$(ps -o pgid= -p "$pid" | tr -d ' ')" = "$pid" ]
	[ "$(grep -c '^# worker' "$T/out")" -eq 3 ]
	kill -INT -- -"$pid"
	st=0
	wait "$pid" || st=$?
	PIDS=
	[ "$st" -eq 130 ] || { cat "$T/out" "$T/err" >&2; echo "status $st" >&2; return 1; }
	gone $(sed -n 's/^# worker [0-9]*: pid \([0-9]*\)$/\1/p' "$T/out")
	[ -z "$(ls -A "$T/tmp")" ]
}

@test "tee-metrics.sh: answers, then metrics' table of the same events" {
	example tee-metrics.sh
	python3 "$CHECK" answers "$T/out" q1 q2 q3 q4 q5 q6
	tokens=$(grep '^{' "$T/out" | python3 -c 'import json, sys; print(sum(json.loads(l)["usage"]["completion_tokens"] for l in sys.stdin))')
	grep -qx 'requests 6' "$T/out"
	grep -qx "output_tokens $tokens" "$T/out"
	grep -Eq '^ttft_s +6 ' "$T/out"
	grep -Eq '^e2e_s +6 ' "$T/out"
	# the table comes after every answer
	[ "$(grep -n '^{' "$T/out" | tail -1 | cut -d: -f1)" -lt "$(grep -n '^requests 6$' "$T/out" | cut -d: -f1)" ]
}

@test "openai-client.py: the openai package against gateway in front of infer-cpu" {
	infer-cpu -m "$MODEL" -q -l "unix:$T/e.sock" -d 3 3>"$T/eready" 2>"$T/eerr" &
	PIDS="$! $PIDS"
	ready "$T/eready"
	port=$(free_port)
	gateway -m "$MODEL" -u "unix:$T/e.sock" -l "tcp:127.0.0.1:$port" -q -d 3 3>"$T/gready" 2>"$T/gerr" &
	PIDS="$! $PIDS"
	ready "$T/gready"
	OPENAI_BASE_URL=http://127.0.0.1:$port/v1 example openai-client.py
	grep -qx 'model: tiny' "$T/out"
	grep -Eqx 'chat: finish=(stop|length) completion_tokens=[0-9]+ text=.*' "$T/out"
	grep -Eqx 'chat \(streamed, [0-9]+ chunks\): finish=(stop|length) completion_tokens=[0-9]+ text=.*' "$T/out"
	grep -Eqx 'completion: finish=length completion_tokens=16 text=.*' "$T/out"
	# greedy: the streamed answer is the plain one
	[ "$(sed -n 's/^chat: \(.*\)/\1/p' "$T/out")" = "$(sed -n 's/^chat (streamed, [0-9]* chunks): \(.*\)/\1/p' "$T/out")" ]
}

@test "serve-openai.sh: sluice serve, the openai client, SIGTERM, exit 0" {
	sluice serve -h >/dev/null 2>&1 || skip "no sluice serve in this build (it comes from another branch)"
	# a port for serve's metrics of its own, if it has that option
	opts=()
	if sluice serve -h 2>&1 | grep -q -- '--metrics'; then opts=(--metrics "tcp:127.0.0.1:$(free_port)"); fi
	XDG_RUNTIME_DIR=$T/tmp example serve-openai.sh "${opts[@]}"
	grep -Eq '^# sluice serve \(pid [0-9]+\) at http://127\.0\.0\.1:[0-9]+/v1$' "$T/out"
	grep -qx 'model: .*' "$T/out"
	grep -Eqx 'chat \(streamed, [0-9]+ chunks\): finish=(stop|length) completion_tokens=[0-9]+ text=.*' "$T/out"
	grep -Eqx 'completion: finish=length completion_tokens=16 text=.*' "$T/out"
	grep -qx 'sluice serve drained, exit 0' "$T/out"
}

@test "share/prometheus/prometheus.yml parses and has its two jobs" {
	python3 -c 'import yaml' 2>/dev/null || skip "no PyYAML: prometheus.yml not parsed"
	python3 "$CHECK" prometheus "$SLUICE_ROOT/share/prometheus/prometheus.yml"
}

@test "share/grafana/sluice-dashboard.json: every sluice: metric it queries is one a live metrics exports" {
	python3 "$CHECK" dashboard "$SLUICE_ROOT/share/grafana/sluice-dashboard.json" >"$T/names"
	[ "$(wc -l <"$T/names")" -ge 10 ]
	# two engines behind route, metrics polling all three
	for i in 1 2; do
		infer-cpu -m "$MODEL" -t 1 -q -l "unix:$T/e$i.sock" -d 3 3>"$T/e$i.ready" 2>>"$T/err" &
		PIDS="$! $PIDS"
		ready "$T/e$i.ready"
	done
	route -m "$MODEL" -q -l "unix:$T/r.sock" -u "unix:$T/e1.sock" -u "unix:$T/e2.sock" -d 3 3>"$T/r.ready" 2>>"$T/err" &
	PIDS="$! $PIDS"
	ready "$T/r.ready"
	port=$(free_port)
	metrics -u "unix:$T/r.sock" -u "unix:$T/e1.sock" -u "unix:$T/e2.sock" --interval 0.1 \
		-l "tcp:127.0.0.1:$port" -d 3 3>"$T/m.ready" 2>>"$T/err" &
	PIDS="$! $PIDS"
	ready "$T/m.ready"
	for i in $(seq 12); do
		printf '{"id":"s%d","prompt":"request %d to be streamed","max_tokens":8,"stream":true}\n' "$i" "$i"
	done | sluice cat -u "unix:$T/r.sock" -t 20000 >/dev/null
	# until metrics polled route after the last answer
	for i in $(seq 100); do
		curl -sf "http://127.0.0.1:$port/metrics" >"$T/scrape" &&
			grep -q '^sluice:requests_admitted_total{endpoint="unix:[^"]*/r.sock"} 12$' "$T/scrape" &&
			grep -q '^sluice:replica_up{.*} 1$' "$T/scrape" && break
		sleep 0.1
	done
	python3 "$CHECK" exported "$T/scrape" $(cat "$T/names")
	# and the check can fail: a name metrics does not export
	if python3 "$CHECK" exported "$T/scrape" sluice:no_such_metric 2>/dev/null; then return 1; fi
}
