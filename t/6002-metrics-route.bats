#!/usr/bin/env bats
# metrics polling route: the replicas[] of route's stats answer served as
# sluice:replica_* series, one per replica, beside route's own. Two tiny
# infer-cpu replicas behind route --policy rr, requests sent through route
# (t/route/load.py), /metrics read with prometheus_client's parser
# (t/metrics/check.py replicas); then a replica killed. Last, a daemon
# whose replicas list is hostile: bounded, cut, escaped.

load helpers/lib

CHECK=$BATS_TEST_DIRNAME/metrics/check.py
LOAD=$BATS_TEST_DIRNAME/route/load.py
TINY=$BATS_FILE_TMPDIR/tiny.gguf

setup_file() {
	export PATH=$SLUICE_BIN:$SLUICE_T/helpers:$PATH
	cd "$BATS_FILE_TMPDIR" &&
	sluice model synth --dim 256 --layers 2 --heads 4 --kv-heads 2 --ff 512 --ctx 256 --seed 7 \
		--type q8_0 -o tiny.gguf >/dev/null 2>&1
}

teardown() {
	local p
	for p in ${PIDS:-} ${EP[*]:-}; do
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
}

# replicas EXPR [SECS]: the Python EXPR over R, the replica_* series of
# route (unix:$T/r) at /metrics, is true at once or within SECS
replicas() {
	python3 "$CHECK" replicas "http://127.0.0.1:$port/metrics" "unix:$T/r" "$1" "${2:-0}"
}

# val KEY: the rest of the line of $output that starts with KEY
val() {
	echo "$output" | awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print }'
}

@test "route's replicas: up, running, routed, prefix hits, lost per replica; a replica killed goes to up 0" {
	scratch
	local i
	for i in 0 1; do
		infer-cpu -m "$TINY" -l "unix:$T/e$i" -t 1 -q -d 3 3>"$T/eready$i" 2>"$T/eerr$i" &
		EP[$i]=$!
	done
	for i in 0 1; do ready "$T/eready$i"; done
	route -m "$TINY" --policy rr -l "unix:$T/r" -u "unix:$T/e0" -u "unix:$T/e1" -d 3 -q \
		3>"$T/rready" 2>"$T/rerr" &
	PIDS=$!
	ready "$T/rready"
	# both replicas up before the first request, so that rr sends 3 to each
	python3 "$LOAD" check "$T/r" 'all(x["up"] for x in R)' 10
	run python3 "$LOAD" run "$T/r" 6 4 --stream 0
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(val length)" = 6 ]
	[ "$(val missing)" = 0 ]
	[ "$(val wrong)" = 0 ]

	port=$(free_port)
	metrics -u "unix:$T/r" -l "tcp:127.0.0.1:$port" --interval 0.2 -d 3 3>"$T/mready" 2>"$T/merr" </dev/null &
	PIDS="$PIDS $!"
	ready "$T/mready"
	# in route's -u order, each labelled with route's endpoint and its own
	run replicas '[x["replica"] for x in R] == ["unix:'"$T"'/e0", "unix:'"$T"'/e1"]' 10
	echo "$output"
	[ "$status" -eq 0 ]
	run replicas '[x["up"] for x in R] == [1, 1] and [x["routed"] for x in R] == [3, 3]' 10
	echo "$output"
	[ "$status" -eq 0 ]
	run replicas 'all(x["running"] == 0 and x["prefix_hits"] == 0 and x["lost"] == 0 for x in R)' 10
	echo "$output"
	[ "$status" -eq 0 ]
	# HELP and TYPE once each; route's own series are there too
	python3 "$CHECK" scrape "http://127.0.0.1:$port/metrics" "$T/prom" >/dev/null
	for f in replica_up:gauge replica_requests_running:gauge replica_requests_routed_total:counter \
		replica_prefix_hits_total:counter replica_lost_total:counter; do
		[ "$(grep -c "^# TYPE sluice:${f%%:*} ${f#*:}$" "$T/prom")" -eq 1 ]
		[ "$(grep -c "^# HELP sluice:${f%%:*} " "$T/prom")" -eq 1 ]
	done
	grep -qx "sluice:up{endpoint=\"unix:$T/r\"} 1" "$T/prom"
	grep -qx "sluice:replica_up{endpoint=\"unix:$T/r\",replica=\"unix:$T/e1\"} 1" "$T/prom"
	grep -qx "sluice:requests_admitted_total{endpoint=\"unix:$T/r\"} 6" "$T/prom"

	# replica 1 killed: route has it down (lost once), metrics says so at its next poll
	kill -9 "${EP[1]}"
	wait "${EP[1]}" 2>/dev/null || true
	run replicas '[x["up"] for x in R] == [1, 0] and [x["lost"] for x in R] == [0, 1]' 10
	echo "$output"
	[ "$status" -eq 0 ]
	run replicas '[x["routed"] for x in R] == [3, 3]'
	[ "$status" -eq 0 ]
	# route itself is still up; nothing was said on stderr
	python3 "$CHECK" scrape "http://127.0.0.1:$port/metrics" "$T/prom" >/dev/null
	grep -qx "sluice:up{endpoint=\"unix:$T/r\"} 1" "$T/prom"
	[ ! -s "$T/merr" ]

	# route goes away: up 0, and its replicas' series with it
	kill -9 "${PIDS%% *}"
	wait "${PIDS%% *}" 2>/dev/null || true
	run replicas 'R == []' 10
	echo "$output"
	[ "$status" -eq 0 ]
	python3 "$CHECK" scrape "http://127.0.0.1:$port/metrics" "$T/prom" >/dev/null
	grep -qx "sluice:up{endpoint=\"unix:$T/r\"} 0" "$T/prom"
	! grep -q "^sluice:replica_" "$T/prom"
}

@test "a hostile replicas list: the first 64 entries looked at, names cut to 64 bytes and escaped, wrong types left out" {
	scratch
	python3 "$CHECK" fakeroute "$T/r" 2>"$T/ferr" &
	PIDS=$!
	wait_for_path "$T/r"
	port=$(free_port)
	metrics -u "unix:$T/r" -l "tcp:127.0.0.1:$port" --interval 0.2 -d 3 3>"$T/mready" 2>"$T/merr" </dev/null &
	PIDS="$PIDS $!"
	ready "$T/mready"
	run replicas 'len(R) == 61' 10
	echo "$output"
	[ "$status" -eq 0 ]
	# entries 0 to 3: not a map, no endpoint string, the odd name (its
	# newline made _; in_flight -1, routed "x" and lost 1.5 left out), the
	# odd name again (left out: the first stands)
	run replicas 'R[0] == {"replica": "a\"b\\c_d", "up": 1, "prefix_hits": 2}'
	echo "$output"
	[ "$status" -eq 0 ]
	# then r00 to r59, each name its first 64 bytes; counts up to 2^64-1
	run replicas '[x["replica"] for x in R[1:]] == [("r%02d" % k).ljust(64, "x") for k in range(60)]'
	echo "$output"
	[ "$status" -eq 0 ]
	run replicas 'all(x["up"] == (k % 2 == 0) and x["running"] == k and x["lost"] == k and
		x["routed"] == 2**64 - 1 - k and x["prefix_hits"] == 0 for k, x in enumerate(R[1:]))'
	echo "$output"
	[ "$status" -eq 0 ]
	python3 "$CHECK" scrape "http://127.0.0.1:$port/metrics" "$T/prom" >/dev/null
	grep -qx 'sluice:replica_prefix_hits_total{endpoint="unix:'"$T"'/r",replica="a\\"b\\\\c_d"} 2' "$T/prom"
	grep -qx 'sluice:replica_requests_routed_total{endpoint="unix:'"$T"'/r",replica="r00x*"} 18446744073709551615' \
		"$T/prom"
	[ "$(grep -c '^sluice:replica_up{' "$T/prom")" -eq 61 ]
}
