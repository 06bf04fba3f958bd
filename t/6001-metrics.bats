#!/usr/bin/env bats
# metrics on real parts: a tiny random-weight model, the real infer-cpu, its
# events teed to a file and to metrics; what metrics serves is fetched over
# HTTP and read with prometheus_client's own parser, then checked figure by
# figure against the events file (t/metrics/check.py). Then the summary
# table, usage and listen errors, hostile streams and bounded memory, and
# the stats query of a running engine (-u).

load helpers/lib

CHECK=$BATS_TEST_DIRNAME/metrics/check.py
TINY=$BATS_FILE_TMPDIR/tiny.gguf

setup_file() {
	export PATH=$SLUICE_BIN:$SLUICE_T/helpers:$PATH
	cd "$BATS_FILE_TMPDIR" &&
	sluice model synth --dim 256 --layers 2 --heads 4 --kv-heads 2 --ff 512 --ctx 256 --seed 7 \
		--type q8_0 -o tiny.gguf >/dev/null 2>&1 &&
	python3 "$BATS_TEST_DIRNAME/metrics/check.py" requests requests.mp
}

teardown() {
	local p
	for p in ${PIDS:-}; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
}

RQ=$BATS_FILE_TMPDIR/requests.mp

# scrape PORT [PATH [METHOD]]: GET (or METHOD) http://127.0.0.1:PORT/PATH into
# $T/prom; output "STATUS CONTENT-TYPE"
scrape() {
	python3 "$CHECK" scrape "http://127.0.0.1:$1${2:-/metrics}" "$T/prom" "${3:-GET}"
}

# scrape_until PORT PATTERN: scrapes until a line of $T/prom matches the
# extended regex PATTERN (up to 10 s): what was sent has been read
scrape_until() {
	local i
	for i in $(seq 100); do
		python3 "$CHECK" scrape "http://127.0.0.1:$1/metrics" "$T/prom" >/dev/null &&
			grep -Eq "$2" "$T/prom" && return 0
		sleep 0.1
	done
	echo "never matched: $2" >&2
	return 1
}

# ---------------------------------------------------------------- usage

@test "-h prints the usage line, exit 0" {
	run metrics -h
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "usage: metrics [-i endpoint]... [-u endpoint]... [--interval seconds] [-l tcp:host:port] [-s] [-d fd]" ]
}

@test "usage errors: exit 100 with the usage line, nothing on stdout" {
	scratch
	for args in "" "-i -" "-s" "-u unix:$T/x" "-u unix:$T/x -s -i -" "-l tcp:127.0.0.1:1" \
		"-i - -s extra" "-i - -s --interval 0" "-i - -s --interval x" "-i - -s --interval 1e9" \
		"-i - -s -d x" "-i - -s -q" "-i - -s -l tcp:127.0.0.1:1 -l tcp:127.0.0.1:2"; do
		run sh -c "metrics $args </dev/null 2>$T/err"
		no_crash
		[ "$status" -eq 100 ] || { echo "args: $args: status $status" >&2; return 1; }
		[ -z "$output" ]
		grep -qx 'metrics: usage: metrics .*' "$T/err"
		[ "$(wc -l <"$T/err")" -eq 1 ]
	done
}

@test "a port in use: exit 111 and one clear message" {
	scratch
	port=$(free_port)
	metrics -i "unix:$T/ev" -l "tcp:127.0.0.1:$port" -d 3 3>"$T/ready" 2>"$T/err1" </dev/null &
	PIDS=$!
	ready "$T/ready"
	run metrics -i - -l "tcp:127.0.0.1:$port" </dev/null
	no_crash
	[ "$status" -eq 111 ]
	[ "$output" = "metrics: fatal: unable to listen on tcp:127.0.0.1:$port: Address already in use" ]
	run metrics -i - -l "unix:$T/http" </dev/null
	[ "$status" -eq 111 ]
	[ "$output" = "metrics: fatal: unable to listen on unix:$T/http: HTTP is served on tcp:HOST:PORT or fd:N" ]
	run metrics -i "unix:$T/ev" -s </dev/null
	[ "$status" -eq 111 ]
	[ "${#lines[@]}" -eq 1 ]
	echo "$output" | grep -q "^metrics: fatal: unable to listen on unix:$T/ev: "
	run metrics -i "bogus:thing" -s </dev/null
	[ "$status" -eq 111 ]
	echo "$output" | grep -q '^metrics: fatal: unable to listen on bogus:thing: '
}

# ---------------------------------------------------------------- a live run

@test "infer-cpu | tee | metrics: /metrics says what the events say, figure by figure" {
	scratch
	port=$(free_port)
	infer-cpu -q -m "$TINY" <"$RQ" 2>"$T/ierr" | tee "$T/events" |
		metrics -i - -s -l "tcp:127.0.0.1:$port" -d 3 3>"$T/ready" >"$T/summary" 2>"$T/err" &
	PIDS=$!
	ready "$T/ready"
	for i in $(seq 200); do [ -s "$T/summary" ] && break; sleep 0.05; done   # the input ended
	[ -s "$T/summary" ]
	run scrape "$port"
	[ "$status" -eq 0 ]
	[ "$output" = "200 text/plain; version=0.0.4; charset=utf-8" ]
	run python3 "$CHECK" events "$T/events" "$T/prom"
	echo "$output"
	[ "$status" -eq 0 ]
	# the run had every kind of answer in it
	echo "$output" | grep -q "'length': 18"
	echo "$output" | grep -q "'duplicate_id': 1, 'bad_request': 1, 'too_long': 1"
	echo "$output" | grep -q "ok inter_token_latency_seconds_count = [1-9]"
	# vLLM's families, with HELP and TYPE each, once
	for f in num_requests_running num_requests_waiting kv_cache_usage_perc prompt_tokens_total \
		generation_tokens_total request_success_total num_preemptions_total prefix_cache_queries_total \
		prefix_cache_hits_total admission_rejections_total time_to_first_token_seconds \
		inter_token_latency_seconds e2e_request_latency_seconds request_queue_time_seconds \
		request_inference_time_seconds request_prefill_time_seconds request_decode_time_seconds; do
		[ "$(grep -c "^# TYPE sluice:$f " "$T/prom")" -eq 1 ]
		[ "$(grep -c "^# HELP sluice:$f " "$T/prom")" -eq 1 ]
	done
	grep -qx 'sluice:time_to_first_token_seconds_bucket{source="events",le="2560.0"} 19' "$T/prom"
	# still served after the input ended; other paths and methods are refused
	run scrape "$port" /
	[ "$output" = "404 text/plain; charset=utf-8" ]
	run scrape "$port" /metrics/x
	[ "${output%% *}" = 404 ]
	run scrape "$port" /metrics POST
	[ "${output%% *}" = 405 ]
	run scrape "$port" /metrics HEAD
	[ "$output" = "200 text/plain; version=0.0.4; charset=utf-8" ]
	[ ! -s "$T/prom" ]
	# SIGTERM: exit 0, nothing said but on stderr
	kill -TERM "$PIDS"
	status=0; wait "$PIDS" || status=$?   # in this shell: a subshell cannot wait for it
	PIDS=
	[ "$status" -eq 0 ]
	[ ! -s "$T/err" ]
	run python3 "$CHECK" summary "$T/events" "$T/summary"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "metrics -s: the summary table when the input ends, exit 0" {
	scratch
	run sh -c "infer-cpu -q -m $TINY <$RQ | tee $T/events | metrics -i - -s >$T/summary 2>$T/err"
	no_crash
	[ "$status" -eq 0 ]
	[ ! -s "$T/err" ]
	cat "$T/summary"
	run python3 "$CHECK" summary "$T/events" "$T/summary"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(sed -n 1p "$T/summary")" = "requests 22" ]
	grep -Eq '^metric +count +mean +p50 +p90 +p99$' "$T/summary"
	# the same events read from a file: the same table, but for ITL (arrival gaps) and the mean of nothing
	run sh -c "metrics -s -i - <$T/events >$T/again"
	[ "$status" -eq 0 ]
	diff <(grep -v '^itl_s' "$T/summary") <(grep -v '^itl_s' "$T/again")
}

@test "events on a socket, from two producers: SIGINT prints the summary, exit 0" {
	scratch
	infer-cpu -q -m "$TINY" <"$RQ" >"$T/events"
	port=$(free_port)
	metrics -i "unix:$T/ev" -s -l "tcp:127.0.0.1:$port" -d 3 3>"$T/ready" >"$T/summary" 2>"$T/err" </dev/null &
	PIDS=$!
	ready "$T/ready"
	# ids are unique per stream: each producer sends all the events of its ids
	python3 -c "
import msgpack
evs = list(msgpack.Unpacker(open('$T/events', 'rb'), raw=False))
odd = lambda e: sum(map(ord, e.get('id', ''))) % 2
open('$T/a', 'wb').write(b''.join(msgpack.packb(e) for e in evs if odd(e)))
open('$T/b', 'wb').write(b''.join(msgpack.packb(e) for e in evs if not odd(e)))"
	[ -s "$T/a" ] && [ -s "$T/b" ]
	python3 "$CHECK" send "unix:$T/ev" "$T/a"
	python3 "$CHECK" send "unix:$T/ev" "$T/b"
	scrape_until "$port" '^sluice:request_success_total\{source="events",finished_reason="length"\} 18$'
	[ ! -s "$T/summary" ]
	kill -INT "$PIDS"
	status=0; wait "$PIDS" || status=$?   # in this shell: a subshell cannot wait for it
	PIDS=
	[ "$status" -eq 0 ]
	run python3 "$CHECK" summary "$T/events" "$T/summary"
	echo "$output"
	[ "$status" -eq 0 ]
}

# ---------------------------------------------------------------- hostile input

@test "a hostile event stream: no crash, bounded labels, a broken end is exit 111" {
	scratch
	python3 "$CHECK" hostile "$T/hostile"
	run sh -c "metrics -s -i - <$T/hostile >$T/summary 2>$T/err"
	no_crash
	[ "$status" -eq 111 ]
	grep -q '^requests 109$' "$T/summary"
	grep -q '^finished_weird_reason_ 1$' "$T/summary"
	grep -q "warning: -: .*invalid msgpack byte 0xc1.*nothing after it is read" "$T/err"
	port=$(free_port)
	metrics -i - -l "tcp:127.0.0.1:$port" -d 3 3>"$T/ready" <"$T/hostile" >/dev/null 2>"$T/err" &
	PIDS=$!
	ready "$T/ready"
	scrape_until "$port" '^sluice:bad_events_total\{source="events"\} 5$'
	run python3 -c "
from prometheus_client.parser import text_string_to_metric_families as p
fams = {f.name: f for f in p(open('$T/prom').read())}
codes = {s.labels['code']: s.value for s in fams['sluice:request_errors'].samples}
assert len(codes) == 32 and codes['other'] == 103 - 31, codes
reasons = {s.labels['finished_reason'] for s in fams['sluice:request_success'].samples}
assert 'weird\"reason_' in reasons, reasons
bad = [s.value for s in fams['sluice:bad_events'].samples]
assert bad == [5.0], bad
print('ok')"
	echo "$output"
	[ "$output" = ok ]
	[ "$(grep -c 'a message left out: message is not a map' "$T/err")" -eq 4 ]
}

@test "memory stays bounded: 300000 streamed ids that never finish" {
	scratch
	python3 "$CHECK" flood "$T/flood" 300000
	run sh -c "python3 $CHECK rss metrics -s -i - <$T/flood >$T/rss 2>$T/err"
	[ "$status" -eq 0 ]
	read -r rc mib <"$T/rss"
	echo "exit $rc, peak RSS $mib MiB"
	[ "$rc" -eq 0 ]
	[ "$mib" -lt 48 ]
	# the ids evicted or left over are not ITLs; nothing finished
	run sh -c "metrics -s -i - <$T/flood"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q '^requests 0$'
	echo "$output" | grep -Eq '^itl_s +0 '
}

# ---------------------------------------------------------------- polling daemons (-u)

@test "-u: a daemon down is retried and reported as up 0, nothing else" {
	scratch
	port=$(free_port)
	metrics -u "unix:$T/none" -l "tcp:127.0.0.1:$port" --interval 0.1 -d 3 3>"$T/ready" \
		2>"$T/err" </dev/null &
	PIDS=$!
	ready "$T/ready"
	scrape_until "$port" "^sluice:up\\{endpoint=\"unix:$T/none\"\\} 0$"
	sleep 0.3   # asked again, a few times
	[ "$(grep -c "endpoint=" "$T/prom")" -eq 1 ]
	# said once, however often it was asked
	[ "$(grep -c "unix:$T/none" "$T/err")" -eq 1 ]
	grep -q "^metrics: warning: unable to connect to unix:$T/none: No such file or directory" "$T/err"
}

@test "-u: the stats of infer-cpu and of batchd before it, and of one that is down, beside events" {
	scratch
	infer-cpu -q -m "$TINY" -l "unix:$T/s" -d 3 3>"$T/iready" 2>"$T/ierr" &
	PIDS=$!
	ready "$T/iready"
	[ "$(python3 "$CHECK" stats "unix:$T/s")" = yes ]
	batchd -l "unix:$T/b" -u "unix:$T/s" -d 3 3>"$T/bready" 2>"$T/berr" &
	PIDS="$PIDS $!"
	ready "$T/bready"
	python3 -c "
import msgpack
with open('$T/rq', 'wb') as f:
    for i in range(8):
        f.write(msgpack.packb({'id': 'p%d' % i, 'tokens': [1, 2, 3 + i], 'max_tokens': 3 + i,
                               'ignore_eos': True, 'stream': i % 2 == 0}))"
	python3 "$CHECK" ask "unix:$T/b" "$T/rq" "$T/events"
	port=$(free_port)
	metrics -u "unix:$T/s" -u "unix:$T/b" -u "unix:$T/down" -i "unix:$T/ev" -l "tcp:127.0.0.1:$port" \
		--interval 0.1 -d 3 3>"$T/ready" 2>"$T/err" </dev/null &
	PIDS="$PIDS $!"
	ready "$T/ready"
	scrape_until "$port" "^sluice:up\\{endpoint=\"unix:$T/s\"\\} 1$"
	scrape_until "$port" "^sluice:up\\{endpoint=\"unix:$T/b\"\\} 1$"
	run python3 "$CHECK" poll "$T/prom" "unix:$T/s" "unix:$T/down"
	echo "$output"
	[ "$status" -eq 0 ]
	run python3 "$CHECK" polled "$T/events" "$T/prom" "unix:$T/s"
	echo "$output"
	[ "$status" -eq 0 ]
	run python3 "$CHECK" polled "$T/events" "$T/prom" "unix:$T/b" batchd
	echo "$output"
	[ "$status" -eq 0 ]
	# the engine goes away: up 0, and its series with it
	kill -TERM "${PIDS%% *}"
	scrape_until "$port" "^sluice:up\\{endpoint=\"unix:$T/s\"\\} 0$"
	! grep -q "sluice:prompt_tokens_total{endpoint=\"unix:$T/s\"}" "$T/prom"
}
