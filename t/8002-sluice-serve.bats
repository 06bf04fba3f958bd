#!/usr/bin/env bats
# sluice serve: the whole tree (infer-cpu <- batchd or route <- gateway, and
# metrics) started by one command in the foreground, readiness-ordered;
# answered through the official openai client and curl; an engine SIGKILLed
# and started again by serve; SIGTERM drains front to back and exits 0 with
# no process left; a tree that cannot start stops and says why.

load helpers/lib

setup_file() {
	export PATH=$SLUICE_BIN:$SLUICE_T/helpers:$PATH
	cd "$BATS_FILE_TMPDIR" &&
	sluice model synth --dim 256 --layers 2 --heads 4 --kv-heads 2 --ff 512 --ctx 4096 --seed 7 \
		--type q8_0 -o tiny.gguf >/dev/null 2>&1
}

teardown() {
	local p
	for p in ${KIDS:-} ${SP:-}; do
		kill -9 "$p" 2>/dev/null || true
	done
	[ -n "${SP:-}" ] && wait "$SP" 2>/dev/null || true
}

unset SLUICE_API_KEYS
TINY=$BATS_FILE_TMPDIR/tiny.gguf
OAI=$BATS_TEST_DIRNAME/gateway/oai.py

# serve_up ARGS...: sluice serve on free ports in the background (SP its pid,
# stderr in $T/serr); waits for its -d readiness, then sets URL (the first
# line it prints, http://HOST:PORT/v1), BASE (without /v1), METRICS (the
# metrics URL it says on stderr) and KIDS (its children's pids)
serve_up() {
	rm -f "$T/sready"
	sluice serve -m "$TINY" -l tcp:127.0.0.1:0 --metrics tcp:127.0.0.1:0 --state "$T/state" -d 3 "$@" \
		3>"$T/sready" >"$T/sout" 2>"$T/serr" &
	SP=$!
	ready "$T/sready" 600 || { cat "$T/serr" >&2; return 1; }
	URL=$(head -n 1 "$T/sout")
	BASE=${URL%/v1}
	METRICS=$(sed -n 's|^sluice: info: metrics at \(http://[^ ]*\)$|\1|p' "$T/serr")
	KIDS=$(ps -o pid= --ppid "$SP" | tr -d ' ' | tr '\n' ' ')
}

# kid NAME: the pid of serve's child running program NAME
kid() {
	ps -o pid=,comm= --ppid "$SP" | awk -v n="$1" '$2 == n { print $1 }'
}

# complete N: a completion of N tokens through curl; prints finish_reason
complete() {
	curl -s --max-time 60 "$URL/completions" -H 'content-type: application/json' \
		-d "{\"model\":\"tiny\",\"prompt\":\"hello\",\"max_tokens\":$1,\"ignore_eos\":true}" |
		python3 -c 'import json, sys
try:
    b = json.load(sys.stdin)
except ValueError:
    print("no answer")   # the connection closed without one
    sys.exit()
print(b["choices"][0]["finish_reason"] if "choices" in b else b["error"]["code"])'
}

# stop_serve: SIGTERM to serve; it must exit 0
stop_serve() {
	local st=0
	kill -TERM "$SP"
	wait "$SP" || st=$?
	SP=
	echo "sluice serve exited $st"
	[ "$st" -eq 0 ]
}

# gone PIDS...: every one of them has exited (waits up to 10 s)
gone() {
	local i p left
	for i in $(seq 200); do
		left=
		for p in "$@"; do kill -0 "$p" 2>/dev/null && left=1; done
		[ -z "$left" ] && return 0
		sleep 0.05
	done
	echo "still running: $*" >&2
	ps -o pid,cmd -p "$(echo "$@" | tr ' ' ',')" >&2
	return 1
}

@test "sluice serve: one command, a URL, the openai client answered, metrics parsed; SIGTERM exits 0 with nothing left" {
	scratch
	serve_up
	[[ "$URL" =~ ^http://127\.0\.0\.1:[0-9]+/v1$ ]]
	# four children, each in its own process group, in the start order
	[ "$(ps -o comm= --ppid "$SP" | sort | tr '\n' ' ')" = "batchd gateway infer-cpu metrics " ]
	grep -q "starting 4 services" "$T/serr"
	run python3 "$OAI" basic "$BASE" --model tiny
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(complete 8)" = length ]
	# metrics: the front's and the engine's figures, read by prometheus_client
	curl -s "$METRICS" >"$T/prom"
	python3 -c 'import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
for n in ("sluice:time_to_first_token_seconds", "sluice:num_requests_running", "sluice:generation_tokens"):
    assert n in fams, (n, sorted(fams))
print(len(fams), "families")' "$T/prom"
	stop_serve
	# shellcheck disable=SC2086
	gone $KIDS
	grep -q "sluice: info: stopped" "$T/serr"
	# the drain went front to back
	grep -o "^sluice: info: [a-z0-9]* drained" "$T/serr" | awk '{ print $3 }' | tr '\n' ' ' >"$T/order"
	[ "$(cat "$T/order")" = "gateway metrics batchd engine0 " ]
	[ -z "$(ls -A "$T/state")" ]
}

@test "sluice serve: an engine SIGKILLed under load is started again; every request gets an answer, and later ones are served" {
	scratch
	serve_up
	e=$(kid infer-cpu)
	[ -n "$e" ]
	cps=
	for i in 1 2 3 4 5 6; do
		complete 400 >"$T/c$i" &
		cps="$cps $!"
	done
	sleep 0.5
	kill -9 "$e"
	# shellcheck disable=SC2086
	wait $cps
	# each got an answer: finished, or the engine lost after streaming
	for i in 1 2 3 4 5 6; do
		echo "c$i: $(cat "$T/c$i")"
		grep -Eqx "length|upstream_lost" "$T/c$i"
	done
	for i in $(seq 100); do
		grep -q "engine0 is ready again" "$T/serr" && break
		sleep 0.1
	done
	grep -q "engine0 ended (killed by signal 9); starting it again" "$T/serr"
	grep -q "engine0 is ready again" "$T/serr"
	e2=$(kid infer-cpu)
	[ -n "$e2" ] && [ "$e2" != "$e" ]
	for i in 1 2 3; do
		[ "$(complete 16)" = length ]
	done
	stop_serve
}

@test "sluice serve: SIGTERM mid-request: the request is answered whole, new connections are not taken, exit 0" {
	scratch
	serve_up
	complete 1500 >"$T/long" &
	cp=$!
	for i in $(seq 100); do
		[ "$(curl -s "$METRICS" | sed -n 's/^sluice:num_requests_running[{][^}]*[}] //p' | head -n 1)" = 1.0 ] && break
		sleep 0.05
	done
	kill -TERM "$SP"
	sleep 0.3
	run curl -s --max-time 5 "$BASE/health"
	[ "$status" -ne 0 ] || [[ "$output" == *draining* ]]
	wait "$cp"
	[ "$(cat "$T/long")" = length ]
	st=0
	wait "$SP" || st=$?
	SP=
	[ "$st" -eq 0 ]
}

@test "sluice serve: waiting through a long drain costs it no CPU (no busy poll); the request held up is answered" {
	scratch
	serve_up --drain-timeout 15
	e=$(kid infer-cpu)
	complete 3500 >"$T/long" &
	cp=$!
	# the engine stopped with the request on it (its 3,500 tokens take
	# seconds): the gateway's drain waits for it, up to --drain-timeout
	sleep 0.3
	kill -STOP "$e"
	kill -TERM "$SP"
	sleep 0.3
	c0=$(awk '{ print $14 + $15 }' "/proc/$SP/stat")
	sleep 2
	c1=$(awk '{ print $14 + $15 }' "/proc/$SP/stat")
	kill -CONT "$e"
	python3 -c 'import os, sys
cpu = (int(sys.argv[2]) - int(sys.argv[1])) / os.sysconf("SC_CLK_TCK")
print("serve: %.2f s of CPU in 2 s of drain" % cpu)
assert cpu < 0.2, cpu' "$c0" "$c1"
	wait "$cp" || true
	st=0
	wait "$SP" || st=$?
	SP=
	echo "serve exited $st; the request: $(cat "$T/long")"
	[ "$st" -eq 0 ]
	# stopped 2.3 s of the 15 s drain: the request still finished whole
	[ "$(cat "$T/long")" = length ]
}

@test "sluice serve --engines 2: route in front of two engines, both used" {
	scratch
	serve_up --engines 2 -t 1
	[ "$(ps -o comm= --ppid "$SP" | sort | tr '\n' ' ')" = "gateway infer-cpu infer-cpu metrics route " ]
	# a replica is up once it has answered route's stats query: both, or
	# the first requests all go to the one that answered first
	for i in $(seq 100); do
		[ "$(curl -s "$METRICS" | grep -c '^sluice:replica_up{.*} 1')" -eq 2 ] && break
		sleep 0.1
	done
	cps=
	for i in $(seq 8); do
		complete 32 >"$T/c$i" &
		cps="$cps $!"
	done
	# shellcheck disable=SC2086
	wait $cps
	cat "$T"/c* | sort | uniq -c | grep -q "8 length"
	# metrics asks for stats every second: the next scrape after it did
	for i in $(seq 50); do
		curl -s "$METRICS" >"$T/prom"
		[ "$(grep -c '^sluice:replica_requests_routed_total{.*} [1-9]' "$T/prom")" -eq 2 ] && break
		sleep 0.1
	done
	python3 -c 'import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
routed = {s.labels["replica"]: s.value for s in fams["sluice:replica_requests_routed"].samples}
assert len(routed) == 2 and all(v > 0 for v in routed.values()) and sum(routed.values()) == 8, routed
print(routed)' "$T/prom"
	stop_serve
}

@test "sluice serve: a tree that cannot start says which part and why, exits 111, leaves nothing" {
	scratch
	echo "not a model" >"$T/bad.gguf"
	run timeout 60 sluice serve -m "$T/bad.gguf" -l tcp:127.0.0.1:0 --metrics none --state "$T/state"
	echo "$output"
	[ "$status" -eq 111 ]
	[[ "$output" == *"infer-cpu: fatal:"* ]]
	[[ "$output" == *"engine0 ended before it was ready"* ]]
	[ -z "$(pgrep -f "$T/state" || true)" ]
	run sluice serve -m "$T/missing.gguf"
	[ "$status" -eq 111 ]
	[[ "$output" == *"unable to read the model"* ]]
	run sluice serve -m "$TINY" -l unix:/x
	[ "$status" -eq 100 ]
	mkdir "$T/nogpu"
	for p in "$SLUICE_BIN"/*; do
		[ "$(basename "$p")" = infer-gpu ] || ln -s "$p" "$T/nogpu/"
	done
	run sluice serve --device gpu -m "$TINY" --bin "$T/nogpu"
	[ "$status" -eq 100 ]
	[[ "$output" == *"no infer-gpu program"* ]]
}

@test "man/man1/sluice-serve.1 describes every option sluice serve -h lists" {
	run sluice serve -h
	[ "$status" -eq 0 ]
	opts=$(echo "$output" | grep -oE -- '--?[a-z][a-z-]*' | sort -u)
	[ -n "$opts" ]
	for o in $opts; do
		grep -qF -- "$(echo "$o" | sed 's/-/\\-/g')" "$SLUICE_ROOT/man/man1/sluice-serve.1" ||
			{ echo "sluice-serve(1) does not mention $o"; false; }
	done
}
