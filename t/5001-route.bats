#!/usr/bin/env bats
# route, batchd with many upstreams: three infer-cpu replicas on unix sockets
# behind one route. Policies (rr, least, prefix), every admitted request
# answered once when a replica is killed or stopped, a replica taken back
# when it answers again, drain on SIGTERM. The clients are t/route/load.py;
# route's stats (replicas[]) and the engines' own stats prove where requests
# went.

load helpers/lib

setup_file() {
	export PATH=$SLUICE_BIN:$SLUICE_T/helpers:$PATH
	cd "$BATS_FILE_TMPDIR" &&
	sluice model synth --dim 256 --layers 2 --heads 4 --kv-heads 2 --ff 512 --ctx 8192 --seed 7 \
		--type q8_0 -o tiny.gguf >/dev/null 2>&1
}

teardown() {
	local p
	for p in ${CP:-} ${RP:-} ${EP[*]:-}; do
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
}

TINY=$BATS_FILE_TMPDIR/tiny.gguf
LOAD=$BATS_TEST_DIRNAME/route/load.py

# engine I ARGS...: infer-cpu -t 1 on unix:$T/eI (EP[I] its pid), stderr in
# $T/eerrI; not waited for
engine() {
	local i=$1
	shift
	rm -f "$T/eready$i"
	infer-cpu -m "$TINY" -l "unix:$T/e$i" -t 1 -q -d 3 "$@" 3>"$T/eready$i" 2>>"$T/eerr$i" &
	EP[$i]=$!
}

# engines ARGS...: replicas 0, 1 and 2, each with ARGS, ready
engines() {
	local i
	for i in 0 1 2; do engine "$i" "$@"; done
	for i in 0 1 2; do ready "$T/eready$i" || return 1; done
}

# route_up ARGS...: route on unix:$T/r in front of unix:$T/e0, e1, e2 (RP
# its pid), stderr in $T/rerr; ready once listening and every replica is up,
# so that placement does not depend on which replica answered first
route_up() {
	rm -f "$T/rready"
	route -l "unix:$T/r" -u "unix:$T/e0" -u "unix:$T/e1" -u "unix:$T/e2" -d 3 -q "$@" \
		3>"$T/rready" 2>>"$T/rerr" &
	RP=$!
	ready "$T/rready" && check r 'all(x["up"] for x in R)' 10
}

# check WHO EXPR [SECS]: the Python EXPR over the stats s of $T/WHO (R is
# s["replicas"]) is true, at once or within SECS
check() {
	python3 "$LOAD" check "$T/$1" "$2" "${3:-0}"
}

# eget I EXPR: EXPR over the stats s of replica I's engine
eget() {
	python3 "$LOAD" get "$T/e$1" "$2"
}

# val KEY: the rest of the line of $output that starts with KEY
val() {
	echo "$output" | awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print }'
}

# expect EXPR: the Python EXPR over the lines of $output, each "key v..." a
# name: an int, a list of ints, or a word
expect() {
	echo "$output" | python3 -c 'import sys
def conv(w):
    try: return int(w)
    except ValueError: return w
v = {}
for l in sys.stdin:
    f = l.split()
    if len(f) >= 2: v[f[0]] = conv(f[1]) if len(f) == 2 else [conv(x) for x in f[1:]]
assert eval(sys.argv[1], dict(v)), v' "$1"
}

@test "route: usage errors exit 100, -h 0" {
	scratch
	run timeout 10 route -l "unix:$T/r" </dev/null
	[ "$status" -eq 100 ]
	run timeout 10 route -l "unix:$T/r" -u "unix:$T/e0" --policy bogus
	[ "$status" -eq 100 ]
	[[ "$output" == *bogus* ]]
	# -u at most 64 times
	local args=() i
	for i in $(seq 65); do args+=(-u "unix:$T/e$i"); done
	run timeout 10 route -l "unix:$T/r" "${args[@]}"
	[ "$status" -eq 100 ]
	run route -h
	[ "$status" -eq 0 ]
	[[ "$output" == "usage: route "* ]]
}

@test "route: rr over 3 replicas: 30 requests on 3 connections answered once each, keys intact, 10 per replica" {
	scratch
	engines
	route_up --policy rr
	run python3 "$LOAD" run "$T/r" 30 4 --conns 3 --stream 0
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(val finals)" = 30 ]
	[ "$(val missing)" = 0 ]
	[ "$(val wrong)" = 0 ]
	[ "$(val length)" = 30 ]
	for i in 0 1 2; do [ "$(eget $i 's["requests"]')" = 10 ]; done
	check r 's["program"] == "route" and s["requests"] == 30'
	check r '[x["routed"] for x in R] == [10, 10, 10] and all(x["in_flight"] == 0 for x in R)' 5
	# in -u order; room learned from each engine's max_running (--max-seqs 64)
	check r 'all(x["endpoint"].endswith("/e%d" % i) for i, x in enumerate(R))'
	check r 'all(x["max_in_flight"] == 64 and x["lost"] == 0 for x in R)'
}

@test "route: least: 3 long streams at once run one on each replica; cancelled at the engines" {
	scratch
	engines --ctx 8192
	route_up --policy least
	run python3 "$LOAD" spread "$T/r" 8000 "$T/e0" "$T/e1" "$T/e2"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(val running)" = "1 1 1" ]
	[ "$(val finish)" = "cancelled cancelled cancelled" ]
	for i in 0 1 2; do
		python3 "$LOAD" check "$T/e$i" 's["running"] == 0 and s["finished"].get("cancelled") == 1' 5
	done
	check r '[x["routed"] for x in R] == [1, 1, 1] and all(x["in_flight"] == 0 for x in R)' 5
}

@test "route: prefix: a family sharing 200 tokens stays on one replica, another family goes to the least loaded; rr spreads them" {
	scratch
	engines
	# prefix is the default policy
	route_up -m "$TINY"
	run python3 "$LOAD" prefix "$T/r" a b
	echo "$output"
	[ "$status" -eq 0 ]
	expect 'length_a == 12 and length_b == 4 and held == "cancelled"'
	# 12 one after another: the first where the least-load rule sends it,
	# the others after it as prefix hits
	expect 'sum(hits_a) >= 10 and max(routed_a) >= 11 and sum(routed_a) == 12'
	# so the engine there had the 12 shared blocks (192 tokens) cached
	expect 'cached_a >= 10 * 192'
	# with a long A request held on A's replica, B's first goes to another
	# (which one of the two idle ones is left open), B's others follow it
	expect 'routed_held == [int(i == routed_a.index(max(routed_a))) for i in range(3)]'
	expect 'routed_b[routed_a.index(max(routed_a))] == 0 and max(routed_b) == 4 and sum(hits_b) >= 3'
	kill "$RP"
	wait "$RP" || true

	# the same workload (new families, so nothing is cached yet) under rr
	route_up --policy rr
	run python3 "$LOAD" prefix "$T/r" c d
	echo "$output"
	[ "$status" -eq 0 ]
	expect 'length_a == 12 and routed_a == [4, 4, 4] and sum(hits_a) == 0'
	# each replica missed the prefix once
	expect 'cached_a < 10 * 192'
}

@test "route: a replica SIGKILLed mid-run: its streamed requests end upstream_lost, its unstarted ones finish elsewhere, route stays" {
	scratch
	# 20 requests to each replica, 10 running there (--max-seqs), 10 queued
	# in the engine with no event yet
	engines --max-seqs 10
	route_up --policy least --max-inflight 30
	check r 'all(x["max_in_flight"] == 30 for x in R)'
	# killed once 30 requests, all that run, have had a token
	run python3 "$LOAD" run "$T/r" 60 600 --conns 6 --out "$T/out" --signal "${EP[1]}" KILL 30
	echo "$output"
	[ "$status" -eq 0 ]
	wait "${EP[1]}" 2>/dev/null || true
	[ "$(val signalled_after)" = 30 ]
	[ "$(val finals)" = 60 ]
	[ "$(val missing)" = 0 ]
	[ "$(val wrong)" = 0 ]
	[ "$(val other)" = 0 ]
	[ "$(( $(val length) + $(val upstream_lost) ))" -eq 60 ]
	# the 10 running on replica 1 had streamed; its 10 queued were sent again
	[ "$(val upstream_lost)" = 10 ]
	kill -0 "$RP"
	check r 'R[0]["up"] and not R[1]["up"] and R[2]["up"] and R[1]["lost"] >= 1' 5
	# all it had that had not streamed (about 10: the policy's spread is
	# not exact while the load's connections start) were routed again
	check r 'R[1]["routed"] >= 10 and sum(x["routed"] for x in R) == 60 + R[1]["routed"] - 10 and s["errors"].get("upstream_lost") == 10'
	# the 50 ended at the two left
	[ "$(( $(eget 0 's["finished"].get("length", 0)') + $(eget 2 's["finished"].get("length", 0)') ))" -eq 50 ]
}

@test "route: a replica SIGSTOPped: down after --upstream-timeout, every request ends; SIGCONT: up again and served" {
	scratch
	engines --max-seqs 10
	route_up --policy rr --max-inflight 30 --upstream-timeout 1
	run python3 "$LOAD" run "$T/r" 60 600 --conns 6 --signal "${EP[1]}" STOP 30
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(val signalled_after)" = 30 ]
	[ "$(val finals)" = 60 ]
	[ "$(val missing)" = 0 ]
	[ "$(val wrong)" = 0 ]
	[ "$(val other)" = 0 ]
	# the 10 that ran on the stopped replica had streamed; its 10 queued
	# were sent to the others and finished there
	[ "$(val upstream_lost)" = 10 ]
	[ "$(val length)" = 50 ]
	# still stopped: down, nothing left in flight there
	check r 'not R[1]["up"] and R[1]["lost"] >= 1 and R[1]["in_flight"] == 0'
	check r 'R[1]["routed"] == 20 and sum(x["routed"] for x in R) == 70'
	kill -CONT "${EP[1]}"
	# route dials again with backoff up to 2 s; up once it answers the stats query
	check r 'R[1]["up"]' 10
	n=$(eget 1 's["requests"]')
	run python3 "$LOAD" run "$T/r" 9 4 --stream 0
	echo "$output"
	[ "$(val length)" = 9 ]
	check r 'R[1]["routed"] == 23'
	[ "$(eget 1 's["requests"]')" -eq $((n + 3)) ]
}

@test "route: a replica killed and started again on its socket: rr skips it while down, takes it back" {
	scratch
	engines
	route_up --policy rr
	kill -9 "${EP[1]}"
	wait "${EP[1]}" 2>/dev/null || true
	check r 'not R[1]["up"] and R[1]["lost"] >= 1 and R[0]["up"] and R[2]["up"]' 5
	run python3 "$LOAD" run "$T/r" 6 4 --stream 0
	echo "$output"
	[ "$(val length)" = 6 ]
	[ "$(eget 0 's["requests"]')" = 3 ]
	[ "$(eget 2 's["requests"]')" = 3 ]
	engine 1
	ready "$T/eready1"
	check r 'R[1]["up"]' 10
	run python3 "$LOAD" run "$T/r" 9 4 --stream 0
	echo "$output"
	[ "$(val length)" = 9 ]
	[ "$(eget 1 's["requests"]')" = 3 ]
	check r 'R[1]["routed"] == 3 and R[0]["routed"] == 6 and R[2]["routed"] == 6'
}

@test "route: SIGTERM: in-flight requests complete, new ones are told draining or refused, exit 0" {
	scratch
	engines
	route_up --policy least
	python3 "$LOAD" drain "$T/r" "$RP" >"$T/out" &
	CP=$!
	st=0
	wait "$RP" || st=$?
	RP=
	wait "$CP"
	CP=
	cat "$T/out"
	[ "$st" -eq 0 ]
	grep -qx 'draining 1' "$T/out"
	grep -qx 'inflight length length length' "$T/out"
	grep -qx 'late draining' "$T/out"
	# the listener is closed (its file removed); a connection that got in
	# before that is told draining
	grep -Eqx 'new (refused|draining)' "$T/out"
	[ ! -e "$T/r" ]
	# one on each replica, run to the end there; the engines stay
	for i in 0 1 2; do [ "$(eget $i 's["finished"].get("length", 0)')" = 1 ]; done
}
