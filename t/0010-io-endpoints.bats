#!/usr/bin/env bats
# lib/io end to end through iotest: 100,000 messages through every endpoint,
# clients that vanish mid-message, socket file rules, inherited sockets,
# readiness and endpoint errors.

load helpers/lib

N=100000

setup() {
	scratch
	PIDS=
}

teardown() {
	local p
	for p in $PIDS; do
		kill "$p" 2>/dev/null || true
	done
	for p in $PIDS; do
		wait "$p" 2>/dev/null || true
	done
	redis_stop
}

# start_echo ARGS...: iotest echo in the background, waits for its readiness
# line on a fifo (-d 3); sets ECHO to its pid
start_echo() {
	rm -f "$T/ready"
	mkfifo "$T/ready"
	iotest echo -d 3 "$@" 3>"$T/ready" >/dev/null 2>>"$T/echo.err" &
	ECHO=$!
	PIDS="$PIDS $ECHO"
	read -r -t 10 _ <"$T/ready"
}

# stop_echo: SIGTERM must end it with 0
stop_echo() {
	kill -TERM "$ECHO" && wait "$ECHO"
}

@test "io: $N messages through a pipe, in order" {
	run bash -o pipefail -c "iotest gen $N | iotest echo -l - | iotest check $N"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "io: a slow reader: partial writes, POLLOUT and a throttled input lose nothing" {
	run bash -o pipefail -c "iotest gen $N | iotest echo -l - | { sleep 1; iotest check $N; }"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "io: stdin EOF still writes answers that come later (--delay-ms)" {
	run bash -o pipefail -c "iotest gen 300 | iotest echo --delay-ms 30 -l - | iotest check 300"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "io: $N messages over a unix socket, in order; SIGTERM exits 0" {
	start_echo -l "unix:$T/e.sock"
	run iotest client -u "unix:$T/e.sock" $N
	echo "$output"
	[ "$status" -eq 0 ]
	stop_echo
	[ ! -e "$T/e.sock" ]
}

@test "io: $N messages over tcp, in order" {
	local port
	port=$(free_port)
	start_echo -l "tcp:127.0.0.1:$port"
	run iotest client -u "tcp:127.0.0.1:$port" $N
	echo "$output"
	[ "$status" -eq 0 ]
	stop_echo
}

@test "io: tcp over IPv6 loopback" {
	local port
	python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null ||
		skip "no IPv6 loopback here"
	port=$(free_port)
	start_echo -l "tcp:[::1]:$port"
	run iotest client -u "tcp:[::1]:$port" 1000
	[ "$status" -eq 0 ]
	stop_echo
}

@test "io: $N messages over an inherited listening socket (fd:3)" {
	rm -f "$T/ready"; mkfifo "$T/ready"
	python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(16)
os.dup2(s.fileno(), 3); os.set_inheritable(3, True)
os.execvp("iotest", ["iotest", "echo", "-d", "4", "-l", "fd:3"])' "$T/fd.sock" 4>"$T/ready" 3>&- >/dev/null 2>"$T/echo.err" &
	ECHO=$!; PIDS="$PIDS $ECHO"
	read -r -t 10 _ <"$T/ready"
	run iotest client -u "unix:$T/fd.sock" $N
	echo "$output"
	[ "$status" -eq 0 ]
	stop_echo
}

@test "io: $N messages over an inherited connected socket (fd:N both ends)" {
	run python3 -c '
import socket, subprocess, signal
a, b = socket.socketpair()
e = subprocess.Popen(["iotest", "echo", "-l", "fd:%d" % b.fileno()], pass_fds=(b.fileno(),))
c = subprocess.Popen(["iotest", "client", "-u", "fd:%d" % a.fileno(), "'$N'"], pass_fds=(a.fileno(),))
a.close(); b.close()
rc = c.wait(60)
e.send_signal(signal.SIGTERM)
erc = e.wait(10)
print("client", rc, "echo", erc)
raise SystemExit(0 if rc == 0 and erc == 0 else 1)'
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "io: clients that vanish mid-message do not disturb another client" {
	start_echo -l "unix:$T/e.sock"
	iotest client -u "unix:$T/e.sock" $N >"$T/client.out" 2>&1 &
	local client=$! i
	# half a message then close; half a message then kill -9; a broken byte
	for i in 1 2 3; do
		python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"\x83\xa2id\xa11\xa3seq\x01\xa3pad\xda\x10\x00xxxx"); s.close()' "$T/e.sock"
		python3 -c '
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"\x81\xa2id\xda\x00\x40abc"); os.kill(os.getpid(), 9)' "$T/e.sock" || true
		python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"\x81\xa2id\xc1"); s.recv(10); s.close()' "$T/e.sock"
	done
	wait "$client"
	cat "$T/client.out"
	kill -0 "$ECHO"
	grep -q "connection closed in the middle of a message" "$T/echo.err"
	run iotest client -u "unix:$T/e.sock" 10
	[ "$status" -eq 0 ]
	stop_echo
}

@test "io: socket file mode is 0660 by default, -m is honoured" {
	start_echo -l "unix:$T/a.sock"
	[ "$(stat -c %a "$T/a.sock")" = 660 ]
	stop_echo
	(umask 077; start_echo -m 0606 -l "unix:$T/b.sock" && [ "$(stat -c %a "$T/b.sock")" = 606 ] && stop_echo)
}

@test "io: a stale socket file is replaced" {
	python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$T/s.sock"
	[ -S "$T/s.sock" ]
	start_echo -l "unix:$T/s.sock"
	run iotest client -u "unix:$T/s.sock" 100
	[ "$status" -eq 0 ]
	stop_echo
}

@test "io: a live socket is refused and keeps working" {
	start_echo -l "unix:$T/s.sock"
	run iotest echo -l "unix:$T/s.sock"
	echo "$output"
	[ "$status" -eq 111 ]
	[[ $output == *"address in use"* ]]
	run iotest client -u "unix:$T/s.sock" 100
	[ "$status" -eq 0 ]
	stop_echo
}

@test "io: a regular file at the socket path is refused and left intact" {
	echo precious >"$T/f.sock"
	run iotest echo -l "unix:$T/f.sock"
	echo "$output"
	[ "$status" -eq 111 ]
	[[ $output == *"not a socket"* ]]
	[ "$(cat "$T/f.sock")" = precious ]
}

@test "io: LISTEN_FDS/LISTEN_PID (systemd) sockets are accepted on" {
	rm -f "$T/ready"; mkfifo "$T/ready"
	python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(16)
os.dup2(s.fileno(), 3); os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"; os.environ["LISTEN_PID"] = str(os.getpid())
os.execvp("iotest", ["iotest", "echo", "-d", "4"])' "$T/sd.sock" 4>"$T/ready" 3>&- >/dev/null 2>"$T/echo.err" &
	ECHO=$!; PIDS="$PIDS $ECHO"
	read -r -t 10 _ <"$T/ready"
	run iotest client -u "unix:$T/sd.sock" 1000
	[ "$status" -eq 0 ]
	stop_echo
}

@test "io: LISTEN_PID of another process is ignored" {
	run env LISTEN_FDS=1 LISTEN_PID=1 iotest echo
	[ "$status" -eq 100 ]
}

@test "io: -d FD: one newline, closed, and only once the socket answers" {
	rm -f "$T/ready"; mkfifo "$T/ready"
	iotest echo -d 3 -l "unix:$T/r.sock" 3>"$T/ready" >/dev/null 2>&1 &
	ECHO=$!; PIDS="$PIDS $ECHO"
	od -An -c <"$T/ready" >"$T/line"
	# the first connect right after the line must succeed: no retry here
	run iotest client -u "unix:$T/r.sock" 1
	[ "$status" -eq 0 ]
	[ "$(tr -d ' ' <"$T/line")" = '\n' ]
	stop_echo
}

@test "io: answers are delayed by a timer without blocking the loop" {
	start_echo --delay-ms 200 -l "unix:$T/d.sock"
	local t0 t1
	t0=$(date +%s%N)
	run iotest client -u "unix:$T/d.sock" 500
	t1=$(date +%s%N)
	[ "$status" -eq 0 ]
	[ $(( (t1 - t0) / 1000000 )) -ge 200 ]
	[ $(( (t1 - t0) / 1000000 )) -lt 3000 ]
	stop_echo
}

@test "io: --crash-on KEY leaves ordinary messages alone" {
	run bash -o pipefail -c "iotest gen 1000 | iotest echo --crash-on poison -l - | iotest check 1000"
	[ "$status" -eq 0 ]
}

@test "io: bad endpoints are usage errors (100), unusable ones system errors (111)" {
	local ep
	for ep in bogus:x unix: tcp:127.0.0.1 tcp:127.0.0.1:99999 "tcp:[::1" fd:abc redis://h "redis://h/s?x=1"; do
		run iotest echo -l "$ep"
		echo "$ep: $status $output"
		no_crash
		[ "$status" -eq 100 ]
		[[ $output == *"usage:"* ]]
		run iotest client -u "$ep" 1
		no_crash
		[ "$status" -eq 100 ]
	done
	run iotest echo -l "unix:$T/no/such/dir/s.sock"
	no_crash
	[ "$status" -eq 111 ]
	[[ $output == *"fatal: unable to listen on unix:"* ]]
	run iotest echo -l fd:77
	[ "$status" -eq 111 ]
	run iotest client -u "unix:$T/nobody.sock" 1
	[ "$status" -eq 111 ]
	[[ $output == *"unable to connect to unix:$T/nobody.sock"* ]]
	run iotest client -u tcp:no-such-host.invalid:80 1
	[ "$status" -eq 111 ]
}

@test "io: redis stream worker and producer carry messages both ways" {
	command -v redis-server >/dev/null || skip "no redis-server"
	redis_start
	start_echo -l "$REDIS_URL_BASE/io:jobs"
	run timeout 60 iotest client -u "$REDIS_URL_BASE/io:jobs" 2000
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(redis XPENDING io:jobs sluice | head -1)" = 0 ]
	stop_echo
}
