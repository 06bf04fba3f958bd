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

@test "rq: after 1000 jobs the job stream is trimmed to what is not yet acked, reply streams expire" {
	start_worker w "$REDIS_URL_BASE/jobs"
	run rqtest send --timeout-ms 20000 1000 "$REDIS_URL_BASE/jobs?reply=jobs:reply"
	no_crash
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1000 ]
	# a trim comes RQ_TRIM_MS (2 s) after an ack at the latest; before: 1000
	wait_until eval '[ "$(redis XLEN jobs)" -le 200 ]'
	echo "XLEN $(redis XLEN jobs), MEMORY USAGE $(redis MEMORY USAGE jobs)"
	[ "$(pending jobs)" -eq 0 ]
	# the last delivered entry is kept: a bound is never trimmed
	[ "$(redis XINFO GROUPS jobs | grep -a -x -A1 last-delivered-id | tail -n 1)" = \
	  "$(redis XREVRANGE jobs + - COUNT 1 | head -n 1)" ]
	# a reply stream expires a day after its last final answer; before: no TTL
	ttl=$(redis PTTL jobs:reply)
	[ "$ttl" -gt 86000000 ] && [ "$ttl" -le 86400000 ]
	kill -0 "$pid_w"
}

@test "rq: the job stream is never trimmed past another group's pending or undelivered entries" {
	redis XGROUP CREATE jobs other 0 MKSTREAM >/dev/null
	start_worker w "$REDIS_URL_BASE/jobs"
	run rqtest send --timeout-ms 20000 600 "$REDIS_URL_BASE/jobs?reply=jobs:reply"
	[ "$status" -eq 0 ]
	# group other reads 400 entries and acks all but the 300th
	redis XREADGROUP GROUP other o COUNT 400 STREAMS jobs '>' >/dev/null
	redis XRANGE jobs - + COUNT 400 | grep -a -E '^[0-9]+-[0-9]+$' >"$T/ids"
	[ "$(wc -l <"$T/ids")" -eq 400 ]
	keep=$(sed -n 300p "$T/ids")
	[ "$(grep -v -x "$keep" "$T/ids" | xargs redis-cli -p "$REDIS_PORT" XACK jobs other)" -eq 399 ]
	# new jobs: acks by group sluice, so the worker trims within 2 s
	run rqtest send --timeout-ms 10000 5 "$REDIS_URL_BASE/jobs?reply=jobs:reply"
	[ "$status" -eq 0 ]
	wait_until eval '[ "$(redis XLEN jobs)" -lt 605 ]'
	[ "$(redis XRANGE jobs "$keep" "$keep" | head -n 1)" = "$keep" ]
	n=$(redis XLEN jobs)
	[ "$n" -ge 306 ]                       # $keep, its 300 successors, 5 new
	# once other has acked it, the bound is other's last-delivered (the 400th)
	[ "$(redis XACK jobs other "$keep")" -eq 1 ]
	run rqtest send --timeout-ms 10000 5 "$REDIS_URL_BASE/jobs?reply=jobs:reply"
	[ "$status" -eq 0 ]
	wait_until eval '[ "$(redis XLEN jobs)" -lt $((n + 5)) ]'
	last=$(sed -n 400p "$T/ids")
	[ "$(redis XRANGE jobs "$last" "$last" | head -n 1)" = "$last" ]
	[ "$(redis XLEN jobs)" -ge 211 ]       # the 400th, its 200 successors, 10 new
}

# ms: wall-clock milliseconds
ms() {
	echo $(($(date +%s%N) / 1000000))
}

@test "rq: sluice cat fails (111) when a restart without persistence took its jobs, naming stream and count" {
	start_worker w --delay-ms 60000 "$REDIS_URL_BASE/jobs"
	printf '{"id":"a"}\n{"id":"b"}\n{"id":"c"}\n' >"$T/in"
	# no -t: before, this waited for ever (timeout says 124)
	timeout 10 sluice cat -u "$REDIS_URL_BASE/jobs" <"$T/in" >"$T/out" 2>"$T/err" 3>&- &
	cp=$!
	wait_until eval '[ "$(grep -c "^took " "$T/w.log")" -eq 3 ]'
	restart_redis
	t0=$(ms)
	rc=0
	wait "$cp" || rc=$?
	t1=$(ms)
	cat "$T/err"
	echo "error after $((t1 - t0)) ms"
	[ "$rc" -eq 111 ]
	grep -q "warning: redis stream jobs at 127.0.0.1:$REDIS_PORT is gone (.*): 3 jobs unanswered" "$T/err"
	grep -q 'closed with 3 requests unanswered' "$T/err"
	[ $((t1 - t0)) -lt 5000 ]
	[ ! -s "$T/out" ]
	kill -0 "$pid_w"                       # the worker lives on
}

@test "rq: a producer fails (111) when its stream is deleted, not while no worker made the group yet" {
	rqtest send --timeout-ms 10000 3 "$REDIS_URL_BASE/jobs" >"$T/out" 2>"$T/err" 3>&- &
	sp=$!
	wait_until eval '[ "$(redis XLEN jobs)" -eq 3 ]'
	sleep 2.5                              # checks with no group yet: no alarm
	kill -0 "$sp"
	redis DEL jobs >/dev/null
	t0=$(ms)
	rc=0
	wait "$sp" || rc=$?
	t1=$(ms)
	cat "$T/err"
	echo "error after $((t1 - t0)) ms"
	[ "$rc" -eq 111 ]
	grep -q "warning: redis stream jobs at 127.0.0.1:$REDIS_PORT is gone (no such key: .*): 3 jobs unanswered" "$T/err"
	[ $((t1 - t0)) -lt 4000 ]
}

@test "rq: a producer fails (111) when the consumer group it saw is destroyed" {
	redis XGROUP CREATE jobs sluice 0 MKSTREAM >/dev/null
	rqtest send --timeout-ms 10000 2 "$REDIS_URL_BASE/jobs" >"$T/out" 2>"$T/err" 3>&- &
	sp=$!
	wait_until eval '[ "$(redis XLEN jobs)" -eq 2 ]'
	sleep 2.5                              # the producer has seen the group
	redis XGROUP DESTROY jobs sluice >/dev/null
	rc=0
	wait "$sp" || rc=$?
	cat "$T/err"
	[ "$rc" -eq 111 ]
	grep -q "warning: redis stream jobs at 127.0.0.1:$REDIS_PORT is gone (its consumer group sluice was deleted): 2 jobs unanswered" "$T/err"
}
