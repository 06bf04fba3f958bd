#!/usr/bin/env bats
# Two "machines": replicas in two network namespaces the test makes itself,
# joined by a veth pair of their own (10.213.N.0/30, no route anywhere
# else), one reached over TCP across the pair by a route in the other. The
# namespaces (and with them the pair) are removed afterwards. Skipped, saying
# so, where namespaces cannot be made (not root, no CAP_SYS_ADMIN).

load helpers/lib

setup_file() {
	export PATH=$SLUICE_BIN:$SLUICE_T/helpers:$PATH
	cd "$BATS_FILE_TMPDIR" &&
	sluice model synth --dim 256 --layers 2 --heads 4 --kv-heads 2 --ff 512 --ctx 2048 --seed 7 \
		--type q8_0 -o tiny.gguf >/dev/null 2>&1
}

TINY=$BATS_FILE_TMPDIR/tiny.gguf

setup() {
	scratch
	NA=sla$$ NB=slb$$
	NET=10.213.$((RANDOM % 250)).
	if ! ip netns add "$NA" 2>/dev/null; then
		skip "network namespaces cannot be made here (ip netns add: not root?)"
	fi
	if ! { ip netns add "$NB" &&
	       ip link add "va$$" type veth peer name "vb$$" &&
	       ip link set "va$$" netns "$NA" && ip link set "vb$$" netns "$NB" &&
	       ip -n "$NA" addr add "${NET}1/30" dev "va$$" && ip -n "$NB" addr add "${NET}2/30" dev "vb$$" &&
	       ip -n "$NA" link set "va$$" up && ip -n "$NB" link set "vb$$" up &&
	       ip -n "$NA" link set lo up && ip -n "$NB" link set lo up; } 2>/dev/null; then
		ip netns del "$NA" 2>/dev/null || true
		ip netns del "$NB" 2>/dev/null || true
		ip link del "va$$" 2>/dev/null || true
		skip "a veth pair between two namespaces cannot be made here"
	fi
	: >"$T/pids"
}

teardown() {
	local p
	for p in $(cat "$T/pids" 2>/dev/null); do
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	ip netns del "$NA" 2>/dev/null || true
	ip netns del "${NB:-none}" 2>/dev/null || true
}

# in NS NAME CMD...: CMD inside namespace NS in the background (pid in $T/NAME.pid),
# readiness on fd 3 to $T/NAME.ready
in_ns() {
	local ns=$1 name=$2
	shift 2
	ip netns exec "$ns" "$@" -d 3 3>"$T/$name.ready" 2>>"$T/$name.err" &
	echo $! >>"$T/pids"
	echo $! >"$T/$name.pid"
	ready "$T/$name.ready"
}

send() {
	python3 -c 'import json, sys
for k in range(int(sys.argv[1]), int(sys.argv[2])):
    print(json.dumps({"id": "q%d" % k, "prompt": "machine %d" % k, "max_tokens": 4}))' "$1" "$2" |
		sluice cat -m | sluice cat -u "unix:$T/r" | sluice cat -j | grep -c '"finish":"length"'
}

@test "route across two network namespaces over TCP: both machines serve, one lost and the other takes all" {
	in_ns "$NA" ea infer-cpu -q -m "$TINY" -t 1 -l "tcp:${NET}1:7001"
	in_ns "$NB" eb infer-cpu -q -m "$TINY" -t 1 -l tcp:127.0.0.1:7002
	in_ns "$NB" r route -q --policy rr -l "unix:$T/r" -u "tcp:${NET}1:7001" -u tcp:127.0.0.1:7002
	for i in $(seq 100); do
		python3 "$BATS_TEST_DIRNAME/batchd/clients.py" stats "$T/r" | grep -q '"up": false' || break
		sleep 0.05
	done
	[ "$(send 0 20)" -eq 20 ]
	run python3 "$BATS_TEST_DIRNAME/batchd/clients.py" stats "$T/r"
	python3 -c 'import json, sys
r = json.loads(sys.argv[1])["replicas"]
assert [x["routed"] for x in r] == [10, 10] and all(x["up"] for x in r), r' "$output"
	kill -9 "$(cat "$T/ea.pid")"
	[ "$(send 20 30)" -eq 10 ]
	run python3 "$BATS_TEST_DIRNAME/batchd/clients.py" stats "$T/r"
	python3 -c 'import json, sys
r = json.loads(sys.argv[1])["replicas"]
assert not r[0]["up"] and r[0]["lost"] >= 1 and r[1]["routed"] == 20, r' "$output"
}
