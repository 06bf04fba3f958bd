#!/usr/bin/env bats
# The trees `sluice serve --emit` writes, run by the real supervisors: s6
# (s6-svscan), supervisord, and what of systemd runs without systemd as PID 1
# (systemd-analyze verify, systemd-socket-activate, $NOTIFY_SOCKET); a Redis
# worker pool under supervisord. Each time: requests over HTTP answered, an
# engine SIGKILLed and started again by the supervisor, every request
# answered (counted), and at the stop every process gone. And share/'s trees
# are what `make share-trees` writes now.

load helpers/lib

setup_file() {
	export PATH=$SLUICE_BIN:$SLUICE_T/helpers:$PATH
	cd "$BATS_FILE_TMPDIR" &&
	sluice model synth --dim 256 --layers 2 --heads 4 --kv-heads 2 --ff 512 --ctx 2048 --seed 7 \
		--type q8_0 -o tiny.gguf >/dev/null 2>&1
}

setup() {
	scratch
	# the model in $T: every command line of the tree then names $T, which
	# finds what is left of it (left)
	cp "$BATS_FILE_TMPDIR/tiny.gguf" "$T/tiny.gguf"
	mkdir -p "$T/state" "$T/r"
	PORT=$(free_port)
	MPORT=$(free_port)
	SUP=
	: >"$T/pids"
}

# the processes whose command line names $T (the tree's, the listeners'),
# or that run in a directory of $T (s6-supervise, in its service directory)
left() {
	local p redis=
	[ -z "${REDIS_PORT:-}" ] || redis=$(cat "$REDIS_DIR/pid" 2>/dev/null)
	{
		pgrep -f -- "$T/" || true
		for p in /proc/[0-9]*; do
			case $(readlink "$p/cwd" 2>/dev/null) in "$T"/*) echo "${p#/proc/}" ;; esac
		done
	} | grep -vx "${redis:-none}" || true
}

teardown() {
	local p i
	if [ -n "$SUP" ]; then
		kill -TERM -- "-$SUP" "$SUP" 2>/dev/null || true
		for i in $(seq 100); do kill -0 "$SUP" 2>/dev/null || break; sleep 0.05; done
		kill -KILL -- "-$SUP" "$SUP" 2>/dev/null || true
		wait "$SUP" 2>/dev/null || true
	fi
	# s6-supervise and supervisord put each daemon in a process group of
	# its own: what is left of the tree is killed one by one
	for p in $(cat "$T/pids") $(left); do
		kill -KILL "$p" 2>/dev/null || true
	done
	redis_stop
}

# emit KIND DIR [OPTION...]: the tree for the tiny model, this test's ports
# and state directory
emit() {
	local kind=$1 dir=$2
	shift 2
	sluice serve --device cpu --bin "$SLUICE_BIN" --state "$T/state" -m "$T/tiny.gguf" \
		-l "tcp:127.0.0.1:$PORT" --metrics "tcp:127.0.0.1:$MPORT" -t 1 "$@" --emit "$kind" "$dir"
}

# model_name: the name the gateway serves the model as (/v1/models)
model_name() {
	NAME=$(curl -sf "http://127.0.0.1:$PORT/v1/models" |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["data"][0]["id"])')
	[ -n "$NAME" ]
}

# requests TAG N [TOKENS]: N completions at once; each one's HTTP status and
# body in $T/r/TAG.K(.code)
requests() {
	local i p pids=()
	for i in $(seq "$2"); do
		curl -s -m 60 -o "$T/r/$1.$i" -w '%{http_code}' -H 'Content-Type: application/json' \
			-d "{\"model\":\"$NAME\",\"prompt\":\"request $1 $i\",\"max_tokens\":${3:-8}}" \
			"http://127.0.0.1:$PORT/v1/completions" >"$T/r/$1.$i.code" 2>/dev/null 3>&- &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || true; done
}

# answered TAG N: each of the N requests answered with a completion (200,
# finish_reason length or stop); says how many were
answered() {
	python3 - "$T/r" "$1" "$2" <<'PY'
import json, os, sys
d, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ok, bad = 0, []
for k in range(1, n + 1):
    code = open(os.path.join(d, "%s.%d.code" % (tag, k))).read().strip()
    try:
        body = json.load(open(os.path.join(d, "%s.%d" % (tag, k))))
    except Exception as e:
        bad.append((k, code, "no JSON body: %s" % e))
        continue
    c = body.get("choices") or [{}]
    if code == "200" and body.get("object") == "text_completion" and c[0].get("finish_reason") in ("length", "stop"):
        ok += 1
    else:
        bad.append((k, code, body))
print("%s: %d of %d answered" % (tag, ok, n), file=sys.stderr)
for b in bad:
    print("  not answered:", b, file=sys.stderr)
sys.exit(ok != n)
PY
}

# gone PID...: none of them is alive (up to 5 s for the last to go)
gone() {
	local p i
	for p in "$@"; do
		for i in $(seq 100); do kill -0 "$p" 2>/dev/null || continue 2; sleep 0.05; done
		echo "pid $p still there" >&2
		return 1
	done
}

# exited PID [SECONDS]: waits (20 s by default) for a child of this shell to
# end; its status in $EXITED
exited() {
	local i
	for i in $(seq $((${2:-20} * 20))); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$1" 2>/dev/null && { echo "pid $1 still there" >&2; return 1; }
	EXITED=0
	wait "$1" || EXITED=$?
}

# ---- s6

# s6pid DIR: the pid s6-supervise has for the service (-1 while down)
s6pid() {
	s6-svstat -o pid "$1"
}

@test "s6: s6-svscan runs the tree; an engine killed is started again; s6-svscanctl -t stops it all" {
	command -v s6-svscan >/dev/null || skip "no s6 (Debian package s6)"
	emit s6 "$T/svc"
	setsid s6-svscan "$T/svc" >"$T/svscan.log" 2>&1 3>&- &
	SUP=$!
	# s6-supervise is there in each before s6-svwait can ask it
	for d in "$T"/svc/sluice-*; do
		for i in $(seq 100); do s6-svok "$d" && break; sleep 0.05; done
		s6-svok "$d"
	done
	run s6-svwait -U -t 20000 "$T"/svc/sluice-*
	[ "$status" -eq 0 ] || { cat "$T/svscan.log" >&2; false; }
	model_name
	requests a 8
	answered a 8

	# the engine killed: what comes meanwhile waits in batchd's queue
	old=$(s6pid "$T/svc/sluice-engine0")
	[ "$old" -gt 0 ]
	kill -KILL "$old"
	requests k 8
	answered k 8
	for i in $(seq 200); do
		new=$(s6pid "$T/svc/sluice-engine0")
		[ "$new" -gt 0 ] && [ "$new" != "$old" ] && break
		sleep 0.05
	done
	[ "$new" -gt 0 ] && [ "$new" != "$old" ]
	run s6-svwait -U -t 20000 "$T/svc/sluice-engine0"
	[ "$status" -eq 0 ]
	gone "$old"
	requests b 8
	answered b 8

	tree=$(for d in "$T"/svc/sluice-*; do s6pid "$d"; done)
	s6-svscanctl -t "$T/svc"
	exited "$SUP"
	SUP=
	# shellcheck disable=SC2086
	gone $tree
	[ -z "$(left)" ]
	# each ended well at the SIGTERM (s6-svdt: how each run ended, the
	# last one last); the engine's first run by the SIGKILL
	for d in "$T"/svc/sluice-*; do
		s6-svdt "$d" >"$T/dt"
		[ "$(tail -n1 "$T/dt" | cut -d' ' -f2-)" = "exitcode 0" ] || { echo "$d:"; cat "$T/dt"; false; } >&2
	done
	s6-svdt "$T/svc/sluice-engine0" | grep -q 'signal SIGKILL'
}

@test "s6-rc: the s6 tree compiles as an s6-rc source" {
	command -v s6-rc-compile >/dev/null ||
		skip "no s6-rc-compile (Debian 12 has no s6-rc package; its s6 has s6-svscan only)"
	emit s6 "$T/svc"
	run s6-rc-compile "$T/compiled" "$T/svc"
	[ "$status" -eq 0 ] || { echo "$output" >&2; false; }
	run s6-rc-db -c "$T/compiled" all-dependencies sluice-gateway
	[ "$status" -eq 0 ]
	[[ "$output" == *sluice-batchd* && "$output" == *sluice-engine0* ]]
}

# ---- supervisord

# sv_up CONF N: waits (30 s) for N programs RUNNING under supervisord
sv_up() {
	local i
	for i in $(seq 300); do
		[ "$(supervisorctl -c "$1" status 2>/dev/null | grep -c ' RUNNING ')" -eq "$2" ] && return 0
		sleep 0.1
	done
	supervisorctl -c "$1" status >&2 || true
	return 1
}

# sv_kill CONF PROGRAM: SIGKILLs it (its pid in OLD)
sv_kill() {
	OLD=$(supervisorctl -c "$1" pid "sluice:$2")
	[ "$OLD" -gt 0 ]
	kill -KILL "$OLD"
}

# sv_again CONF PROGRAM: waits for supervisord to have run it again (a new
# pid, in NEW, RUNNING)
sv_again() {
	local i
	for i in $(seq 300); do
		NEW=$(supervisorctl -c "$1" pid "sluice:$2" 2>/dev/null) || NEW=0
		[ "$NEW" -gt 0 ] && [ "$NEW" != "$OLD" ] &&
			supervisorctl -c "$1" status "sluice:$2" | grep -q ' RUNNING ' && break
		sleep 0.1
	done
	[ "$NEW" -gt 0 ] && [ "$NEW" != "$OLD" ] || { echo "$2 not running again" >&2; return 1; }
	supervisorctl -c "$1" status "sluice:$2" | grep -q ' RUNNING '
	gone "$OLD"
}

# sv_stop CONF N: SIGTERM to supervisord; it ends within the stopwaitsecs,
# and each of the N programs stopped with exit status 0 (drained, not
# killed), and every process is gone
sv_stop() {
	local tree t0 wait_s
	tree=$(supervisorctl -c "$1" pid all)
	wait_s=$(grep -m1 '^stopwaitsecs=' "$1" | cut -d= -f2)
	t0=$SECONDS
	kill -TERM "$SUP"
	exited "$SUP" $((wait_s + 10))
	[ "$EXITED" -eq 0 ]
	[ $((SECONDS - t0)) -le "$wait_s" ]
	SUP=
	# shellcheck disable=SC2086
	gone $tree
	[ -z "$(left)" ]
	[ "$(grep -c 'stopped: sluice-.* (exit status 0)' "$T/state/supervisord.log")" -eq "$2" ] ||
		{ cat "$T/state/supervisord.log" >&2; return 1; }
	! grep -q 'with SIGKILL' "$T/state/supervisord.log"
}

@test "supervisord: runs the tree; an engine killed is started again; SIGTERM stops it all, drained" {
	command -v supervisord >/dev/null || skip "no supervisord (Debian package supervisor)"
	emit supervisord "$T/sv"
	conf=$T/sv/supervisord.conf
	setsid supervisord -c "$conf" >"$T/supervisord.out" 2>&1 3>&- &
	SUP=$!
	sv_up "$conf" 4
	for i in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
	model_name
	requests a 8
	answered a 8

	# the engine killed: what comes meanwhile waits in batchd's queue
	sv_kill "$conf" sluice-engine0
	requests k 8
	answered k 8
	sv_again "$conf" sluice-engine0
	requests b 8
	answered b 8

	sv_stop "$conf" 4
}

# ---- systemd (no systemd as PID 1 here: its units checked, its protocols
# spoken with the daemons by systemd's own tools and a socket of ours)

# unit_cmd UNIT: the ExecStart of a unit, %t (the runtime directory) $T/run,
# as words in CMD
unit_cmd() {
	local line
	line=$(sed -n 's/^ExecStart=//p' "$T/units/$1")
	line=${line//%t/$T/run}
	eval "CMD=($line)"
}

# notify_listen NAME: a unix datagram socket $T/NAME.n that writes each
# message it gets to $T/NAME.msgs, one a line
notify_listen() {
	# in a subshell: not a job of this shell, killed at the end unreported
	(python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    print(s.recv(4096).decode().strip(), flush=True)' "$T/$1.n" >"$T/$1.msgs" 2>&1 3>&- &
	echo $! >>"$T/pids")
	wait_for_path "$T/$1.n"
}

# notified NAME MSG: MSG came (up to 20 s)
notified() {
	local i
	for i in $(seq 400); do grep -qx "$2" "$T/$1.msgs" && return 0; sleep 0.05; done
	echo "$1: no $2 (got: $(cat "$T/$1.msgs"))" >&2
	return 1
}

@test "systemd: the units pass systemd-analyze verify" {
	command -v systemd-analyze >/dev/null || skip "no systemd-analyze (Debian package systemd)"
	emit systemd "$T/units"
	run systemd-analyze verify "$T"/units/*
	# verify exits 0 on most of what it finds wrong: nothing must be said
	[ "$status" -eq 0 ] && [ -z "$output" ] || { echo "$output" >&2; false; }
	grep -qx 'Type=notify' "$T/units/sluice-gateway.service"
	grep -qx 'ListenStream=127.0.0.1:'"$PORT" "$T/units/sluice-gateway.socket"
}

@test "systemd: the units' daemons say READY=1 and STOPPING=1 on \$NOTIFY_SOCKET; the gateway socket-activated" {
	command -v systemd-socket-activate >/dev/null || skip "no systemd-socket-activate (Debian package systemd)"
	emit systemd "$T/units"
	mkdir -p "$T/run/sluice"
	for s in engine0 batchd metrics; do
		notify_listen "$s"
		unit_cmd "sluice-$s.service"
		NOTIFY_SOCKET=$T/$s.n "${CMD[@]}" >"$T/$s.log" 2>&1 3>&- &
		echo $! >"$T/$s.pid"
		echo $! >>"$T/pids"
		notified "$s" READY=1
	done
	# READY=1 when it is: the engine's and batchd's sockets are there
	[ -S "$T/run/sluice/engine0.sock" ] && [ -S "$T/run/sluice/batchd.sock" ]

	# the gateway: systemd-socket-activate holds the port, as
	# sluice-gateway.socket would, and runs the gateway (the socket as fd
	# 3) at the first connection
	notify_listen gateway
	unit_cmd sluice-gateway.service
	systemd-socket-activate -l "127.0.0.1:$PORT" --fdname=sluice-gateway.socket \
		-E "NOTIFY_SOCKET=$T/gateway.n" "${CMD[@]}" >"$T/gateway.log" 2>&1 3>&- &
	gw=$!
	echo "$gw" >>"$T/pids"
	for i in $(seq 100); do grep -q 'Listening on' "$T/gateway.log" && break; sleep 0.05; done
	# no gateway yet: nothing said, the program still systemd-socket-activate
	[ ! -s "$T/gateway.msgs" ]
	[[ "$(cat /proc/$gw/cmdline | tr '\0' ' ')" == *systemd-socket-activate* ]]
	# the first request starts it, and is answered
	NAME=tiny
	requests a 1
	answered a 1
	notified gateway READY=1
	[[ "$(cat /proc/$gw/cmdline | tr '\0' ' ')" == */gateway\ * ]]
	model_name
	[ "$NAME" = tiny ]
	requests b 8
	answered b 8

	# SIGTERM, front to back: each says STOPPING=1 and ends well
	kill -TERM "$gw"
	notified gateway STOPPING=1
	exited "$gw"
	[ "$EXITED" -eq 0 ]
	for s in metrics batchd engine0; do
		kill -TERM "$(cat "$T/$s.pid")"
		notified "$s" STOPPING=1
		exited "$(cat "$T/$s.pid")"
		[ "$EXITED" -eq 0 ]
	done
}

# ---- a Redis worker pool (share/redis-pool) under supervisord

@test "redis pool: supervisord runs batchd on a Redis stream and two workers; a worker killed is started again" {
	command -v supervisord >/dev/null || skip "no supervisord (Debian package supervisor)"
	redis_start
	emit supervisord "$T/pool" --queue "$REDIS_URL_BASE/jobs" --engines 2
	conf=$T/pool/supervisord.conf
	grep -q "^command=.*infer-cpu .*-l $REDIS_URL_BASE/jobs" "$conf"
	setsid supervisord -c "$conf" >"$T/supervisord.out" 2>&1 3>&- &
	SUP=$!
	sv_up "$conf" 5
	for i in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
	model_name
	requests a 8
	answered a 8
	# both workers are consumers of the stream's group
	[ "$(redis XINFO CONSUMERS jobs sluice | grep -cx name)" -eq 2 ]

	# a worker killed: the other answers meanwhile; the new one joins the group
	sv_kill "$conf" sluice-engine1
	requests k 8
	answered k 8
	sv_again "$conf" sluice-engine1
	for i in $(seq 100); do
		redis XINFO CONSUMERS jobs sluice | grep -q ":$NEW\$" && break
		sleep 0.1
	done
	redis XINFO CONSUMERS jobs sluice | grep -q ":$NEW\$"
	requests b 8
	answered b 8

	sv_stop "$conf" 5
}

# ---- share/

@test "share/: the committed trees are what make share-trees writes now" {
	mkdir "$T/share"
	run make -s -C "$SLUICE_ROOT" emit-trees SLUICE="$SLUICE_BIN/sluice" TREES_DIR="$T/share" PREFIX=/usr/local
	[ "$status" -eq 0 ] || { echo "$output" >&2; false; }
	for d in s6 supervisord systemd redis-pool; do
		[ -d "$SLUICE_ROOT/share/$d" ]
		diff -r "$SLUICE_ROOT/share/$d" "$T/share/$d" >&2
	done
	# the run scripts as s6 wants them
	for f in "$SLUICE_ROOT"/share/s6/*/run "$SLUICE_ROOT"/share/redis-pool/s6/*/run; do
		[ -x "$f" ]
	done
}
