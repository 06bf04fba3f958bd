#!/usr/bin/env bats
# lib/rq against a real redis-server: a consumer group served by several
# workers, SIGKILL of a worker holding jobs, a poison job dead-lettered after
# max_deliver deliveries, garbage entries, a restarted server, streamed
# answers. rqtest (t/helpers/rqtest.c) drives rq directly.

load helpers/lib

setup() {
	scratch
	redis_start
	: >"$T/pids"
}

teardown() {
	local p
	touch "$T/stop"
	[ -f "$T/cur1" ] && kill "$(cat "$T/cur1")" 2>/dev/null
	[ -f "$T/cur2" ] && kill "$(cat "$T/cur2")" 2>/dev/null
	for p in $(cat "$T/pids"); do
		kill "$p" 2>/dev/null
	done
	for p in $(cat "$T/pids"); do
		wait "$p" 2>/dev/null
	done
	redis_stop
}

# start_worker NAME ARGS...: rqtest work in the background, logging to $T/NAME.log
start_worker() {
	local name=$1
	shift
	rqtest work "$@" >"$T/$name.log" 2>&1 3>&- &
	echo $! >>"$T/pids"
	eval "pid_$name=$!"
}

# restart_loop N URL: a worker restarted whenever it dies (a supervisor's job)
restart_loop() {
	local n=$1 url=$2
	(
		ulimit -c 0
		while [ ! -e "$T/stop" ]; do
			rqtest work --crash-on crash "$url" 2>>"$T/loop$n.log" &
			echo $! >"$T/cur$n"
			echo started >>"$T/starts"
			wait $! || :   # bats runs with set -e
		done
	) >/dev/null 2>&1 3>&- &
	echo $! >>"$T/pids"
}

# held STREAM CONSUMER: entries pending for that consumer
held() {
	redis EVAL "return #redis.call('XPENDING', KEYS[1], 'sluice', '-', '+', 100000, ARGV[1])" 1 "$1" "$2"
}

# distinct STREAM: distinct "id"s among the msgpack messages (field m) of a stream
distinct() {
	redis EVAL "local s, n = {}, 0
		for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
			local m = cmsgpack.unpack(e[2][2])
			if not s[m.id] then s[m.id] = true; n = n + 1 end
		end
		return n" 1 "$1"
}

pending() {
	redis XPENDING "$1" sluice | head -n 1
}

# wait_until CMD...: up to 10 s for CMD to succeed (eval '...' to re-expand)
wait_until() {
	local i
	for i in $(seq 200); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}

# field STREAM NAME: the value of NAME in the first entry of STREAM
field() {
	redis XRANGE "$1" - + COUNT 1 | grep -a -x -A1 "$2" | tail -n 1
}

@test "rq: 1000 jobs, 3 workers, one SIGKILLed holding jobs: each answered exactly once" {
	url="$REDIS_URL_BASE/jobs?claim=500&prefetch=32"
	start_worker w1 --delay-ms 100 "$url&consumer=w1"
	start_worker w2 --delay-ms 100 "$url&consumer=w2"
	start_worker w3 --delay-ms 100 "$url&consumer=w3"
	rqtest send --timeout-ms 30000 1000 "$REDIS_URL_BASE/jobs?reply=jobs:reply" \
		>"$T/ids" 2>"$T/send.err" 3>&- &
	sp=$!
	wait_until eval '[ "$(held jobs w1)" -ge 10 ]'
	kill -KILL "$pid_w1"
	[ "$(redis XLEN jobs:reply)" -lt 1000 ]
	rc=0
	wait "$sp" || rc=$?
	cat "$T/send.err"
	[ "$rc" -eq 0 ]
	[ "$(wc -l <"$T/ids")" -eq 1000 ]
	[ "$(sort -u "$T/ids" | wc -l)" -eq 1000 ]
	[ "$(redis XLEN jobs:reply)" -eq 1000 ]
	[ "$(distinct jobs:reply)" -eq 1000 ]
	[ "$(pending jobs)" -eq 0 ]
	[ "$(held jobs w1)" -eq 0 ]        # what w1 held was taken over
	kill -0 "$pid_w2" && kill -0 "$pid_w3"
	[ "$(redis EXISTS jobs:dead)" -eq 0 ]
}

@test "rq: a job that always crashes its worker ends in STREAM:dead after ?dead=3 deliveries" {
	# queued before any worker exists: the group starts at 0, not $
	eid=$(printf '\x82\xa2id\xa6poison\xa5crash\xc3' | redis -x XADD jobs '*' r jobs:reply m)
	url="$REDIS_URL_BASE/jobs?claim=300&dead=3&prefetch=1"
	restart_loop 1 "$url"
	restart_loop 2 "$url"
	run rqtest send --timeout-ms 20000 20 "$REDIS_URL_BASE/jobs?reply=jobs:reply"
	no_crash
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 20 ]
	wait_until eval '[ "$(redis XLEN jobs:dead)" -eq 1 ]'
	[ "$(field jobs:dead id)" = "$eid" ]
	[ "$(field jobs:dead deliveries)" -eq 3 ]
	[ "$(field jobs:dead r)" = jobs:reply ]
	[ "$(field jobs:dead error)" = "delivered 3 times" ]
	wait_until eval '[ "$(pending jobs)" -eq 0 ]'
	[ "$(wc -l <"$T/starts")" -ge 4 ]  # three aborts, then a worker that lived
	[ "$(redis XLEN jobs:reply)" -eq 20 ]
	sleep 1                              # no fourth delivery, no second dead letter
	[ "$(redis XLEN jobs:dead)" -eq 1 ]
}

@test "rq: garbage entries go to STREAM:dead with an error and the worker goes on" {
	printf '\xc1\xc1' | redis -x XADD jobs '*' r jobs:reply m >/dev/null
	printf '\x81\xa1a\x01' | redis -x XADD jobs '*' r jobs:reply m >/dev/null
	redis XADD jobs '*' r jobs:reply x 1 >/dev/null
	printf '\x81\xa2id\xa1x' | redis -x XADD jobs '*' m >/dev/null
	start_worker w "$REDIS_URL_BASE/jobs"
	run rqtest send --timeout-ms 10000 5 "$REDIS_URL_BASE/jobs?reply=jobs:reply"
	no_crash
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 5 ]
	wait_until eval '[ "$(redis XLEN jobs:dead)" -eq 4 ]'
	redis XRANGE jobs:dead - + >"$T/dead"
	[ "$(grep -a -c -x error "$T/dead")" -eq 4 ]
	grep -a -q '^bad message: ' "$T/dead"
	grep -a -q -x 'bad message: no str id' "$T/dead"
	grep -a -q -x 'no field m' "$T/dead"
	grep -a -q -x 'no usable reply stream (field r)' "$T/dead"
	[ "$(pending jobs)" -eq 0 ]
	kill -0 "$pid_w"
	! grep -q fatal "$T/w.log"
}

@test "rq: a worker survives a redis-server restart and serves new jobs" {
	start_worker w "$REDIS_URL_BASE/jobs?claim=1000"
	run rqtest send --timeout-ms 10000 3 "$REDIS_URL_BASE/jobs?reply=jobs:reply"
	[ "$status" -eq 0 ]
	port=$REDIS_PORT
	redis_stop
	sleep 0.5
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$REDIS_DIR" --daemonize yes --pidfile "$REDIS_DIR/pid" \
		--logfile "$REDIS_DIR/log" >/dev/null
	REDIS_PORT=$port
	wait_until sh -c "redis-cli -p $port ping 2>/dev/null | grep -q PONG"
	run rqtest send --timeout-ms 10000 3 "$REDIS_URL_BASE/jobs?reply=jobs:reply"
	no_crash
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 3 ]
	[ "$(redis XLEN jobs:reply)" -eq 3 ]   # a fresh server: only the new answers
	[ "$(pending jobs)" -eq 0 ]
	kill -0 "$pid_w"
	cat "$T/w.log"
	[ "$(grep -c 'warning: lost redis' "$T/w.log")" -eq 1 ]   # said once, not per retry
	grep -q 'connected to redis at .* again' "$T/w.log"
}

@test "rq: streamed answers, and a producer never reads stale answers" {
	# a stale final answer for id 0 left in the reply stream by an earlier run
	printf '\x82\xa2id\xa10\xa6finish\xa4stop' | redis -x XADD jobs:reply '*' m >/dev/null
	start_worker w --partials 2 "$REDIS_URL_BASE/jobs"
	run rqtest send --timeout-ms 10000 10 "$REDIS_URL_BASE/jobs?reply=jobs:reply"
	no_crash
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 10 ]
	[ "$(redis XLEN jobs:reply)" -eq 30 ]
	[ "$(distinct jobs:reply)" -eq 10 ]
	[ "$(pending jobs)" -eq 0 ]
	# a default reply key (STREAM:reply:HOST:PID) is removed at close
	run rqtest send --timeout-ms 10000 2 "$REDIS_URL_BASE/jobs"
	[ "$status" -eq 0 ]
	[ -z "$(redis --scan --pattern 'jobs:reply:*')" ]
}

@test "rq: a job running longer than ?claim= is not taken over while its worker lives" {
	start_worker w1 --delay-ms 1500 "$REDIS_URL_BASE/jobs?claim=400&consumer=w1"
	rqtest send --timeout-ms 10000 4 "$REDIS_URL_BASE/jobs?reply=jobs:reply" \
		>"$T/ids" 2>"$T/send.err" 3>&- &
	sp=$!
	wait_until eval '[ "$(held jobs w1)" -eq 4 ]'
	start_worker w2 "$REDIS_URL_BASE/jobs?claim=400&consumer=w2"
	rc=0
	wait "$sp" || rc=$?
	[ "$rc" -eq 0 ]
	[ "$(sort -u "$T/ids" | wc -l)" -eq 4 ]
	[ "$(grep -c '^took ' "$T/w1.log")" -eq 4 ]
	[ "$(grep -c '^took ' "$T/w2.log")" -eq 0 ]   # heartbeats kept them w1's
	[ "$(redis XLEN jobs:reply)" -eq 4 ]
	[ "$(pending jobs)" -eq 0 ]
}
