#!/usr/bin/env bats
# lib/rq keeping Redis tidy and honest (issue 9): a job whose answer cannot be
# written is dead-lettered, not lost; the job stream is trimmed once every
# group has acked; reply streams expire; a producer whose stream vanished
# fails instead of waiting forever. rqtest (t/helpers/rqtest.c) drives rq.

load helpers/lib

setup() {
	scratch
	redis_start
	: >"$T/pids"
}

teardown() {
	local p
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

# restart_redis: the same port, a fresh server without persistence
restart_redis() {
	local port=$REDIS_PORT
	redis_stop
	sleep 0.2
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$REDIS_DIR" --daemonize yes --pidfile "$REDIS_DIR/pid" \
		--logfile "$REDIS_DIR/log" >/dev/null
	REDIS_PORT=$port
	wait_until sh -c "redis-cli -p $port ping 2>/dev/null | grep -q PONG"
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

@test "rq: a job whose reply key is not a stream goes to STREAM:dead, and the worker goes on" {
	redis SET jobs:strkey x >/dev/null
	eid=$(printf '\x81\xa2id\xa3bad' | redis -x XADD jobs '*' r jobs:strkey m)
	start_worker w "$REDIS_URL_BASE/jobs"
	wait_until grep -q '^took bad$' "$T/w.log"
	wait_until eval '[ "$(pending jobs)" -eq 0 ]'
	# before: acked by a script that failed after its XACK, and nowhere else
	[ "$(redis XLEN jobs:dead)" -eq 1 ]
	[ "$(field jobs:dead id)" = "$eid" ]
	[ "$(field jobs:dead r)" = jobs:strkey ]
	[ "$(field jobs:dead deliveries)" -eq 1 ]
	m=$(field jobs:dead m)
	[ "$(printf %s "$m" | od -An -tx1 | tr -d ' \n')" = 81a26964a3626164 ]   # the request
	field jobs:dead error | grep -q '^unable to write the answer: WRONGTYPE '
	[ "$(redis GET jobs:strkey)" = x ]
	grep -q "warning: moved $eid of jobs to jobs:dead: unable to write the answer: WRONGTYPE" "$T/w.log"
	run rqtest send --timeout-ms 10000 3 "$REDIS_URL_BASE/jobs?reply=jobs:reply"
	no_crash
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 3 ]
	[ "$(redis XLEN jobs:dead)" -eq 1 ]
	kill -0 "$pid_w"
}
