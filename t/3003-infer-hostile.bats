#!/usr/bin/env bats
# infer-cpu against hostile and careless clients (issue 9): nothing a client
# sends whole is lost, no client grows the engine's memory by what it
# withholds, and no client starves another. Real processes on a unix
# socket; the clients are t/infer/hostile.py; memory is the engine's RSS
# read from /proc while the client misbehaves.

load helpers/lib

setup_file() {
	export PATH=$SLUICE_BIN:$SLUICE_T/helpers:$PATH
	cd "$BATS_FILE_TMPDIR" &&
	sluice model synth --dim 256 --layers 2 --heads 4 --kv-heads 2 --ff 512 --ctx 256 --seed 7 \
		--type q8_0 -o tiny.gguf >/dev/null 2>&1 &&
	sluice model synth --dim 256 --layers 2 --heads 4 --kv-heads 2 --ff 512 --ctx 8192 --seed 7 \
		--type q8_0 -o tiny8k.gguf >/dev/null 2>&1
}

teardown() {
	[ -z "${EP:-}" ] || kill "$EP" 2>/dev/null || true
	[ -z "${EP:-}" ] || wait "$EP" 2>/dev/null || true
}

TINY=$BATS_FILE_TMPDIR/tiny.gguf
HOSTILE=$BATS_TEST_DIRNAME/infer/hostile.py

# engine ARGS...: infer-cpu on unix:$T/s in the background (EP its pid),
# stderr in $T/err, back once it is ready
engine() {
	infer-cpu -m "$TINY" -l "unix:$T/s" -d 3 "$@" 3>"$T/ready" 2>"$T/err" &
	EP=$!
	local i
	for i in $(seq 200); do [ -s "$T/ready" ] && return 0; sleep 0.05; done
	return 1
}

# val KEY: the figure KEY from hostile.py's output
val() {
	echo "$output" | awk -v k="$1" '$1 == k { print $2 }'
}

# ---------------------------------------------------------------- lost requests

@test "stdin ending in a broken message: the whole requests are answered, exit 111" {
	scratch
	for tail in '\x83\xa2id' '\xc1' "\\x81\\xa1k$(printf '\\x91%.0s' $(seq 40))"; do
		python3 -c "import msgpack,sys;w=sys.stdout.buffer.write
w(msgpack.packb({'id':'a','prompt':'hi','max_tokens':2}))
w(msgpack.packb({'id':'b','prompt':'hello','max_tokens':2}))" >"$T/in" &&
		printf "$tail" >>"$T/in"
		run sh -c "infer-cpu -q -m $TINY <$T/in >$T/out 2>$T/err; echo \$?"
		no_crash
		[ "$output" = 111 ]
		run sluice cat <"$T/out"
		echo "$output"
		echo "$output" | grep -q '"id":"a".*"finish":"length"'
		echo "$output" | grep -q '"id":"b".*"finish":"length"'
		[ "$(echo "$output" | grep -c '"code":"bad_request"')" -eq 1 ]
	done
}

@test "a socket client's broken stream: its whole requests are answered, then an error" {
	scratch
	engine -q
	run python3 "$HOSTILE" broken "$T/s"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(val answered)" = a,b ]
	[ "$(val stream_errors)" = 1 ]
	echo "$output" | grep -q 'message invalid msgpack byte 0xc1'
}

@test "a pipeline longer than --max-queue is read as room frees up, never refused" {
	scratch
	python3 -c "import msgpack,sys
for i in range(3000): sys.stdout.buffer.write(msgpack.packb({'id':str(i),'tokens':[1,2],'max_tokens':2,'ignore_eos':True}))" >"$T/in"
	run sh -c "infer-cpu -q -m $TINY --max-queue 50 --max-queue-per-conn 20 <$T/in | sluice cat >$T/out"
	[ "$status" -eq 0 ]
	[ "$(grep -c '"finish":"length"' "$T/out")" -eq 3000 ]
	! grep -q overloaded "$T/out"
}

@test "JSON or plain text piped into infer-cpu: one error saying so, exit 111" {
	scratch
	run sh -c "echo '{\"id\":\"x\",\"prompt\":\"hi\"}' | infer-cpu -q -m $TINY 2>/dev/null | sluice cat"
	echo "$output"
	[ "$(echo "$output" | wc -l)" -eq 1 ]
	echo "$output" | grep -q 'looks like JSON text, not msgpack: convert it with sluice cat -m'
	run sh -c "echo 'hello there' | infer-cpu -q -m $TINY >/dev/null 2>&1"
	[ "$status" -eq 111 ]
}

# ---------------------------------------------------------------- memory

@test "a client that never reads: memory stays bounded, its requests end slow_consumer, others are served" {
	scratch
	engine -q --kv-mem 16M --write-timeout 2
	run python3 "$HOSTILE" noread "$T/s" "$EP" 3000 5
	echo "$output"
	[ "$status" -eq 0 ]
	# before the fix: +29 MB in these 5 s and growing, and the other client waited > 10 s
	[ "$(val rss_growth_kb)" -lt 12000 ]
	[ "$(val other_ok)" = 1 ]
	[ "$(val finals)" = 3000 ]
	[ "$(val slow_consumer)" -ge 1 ]
	grep -q 'slow consumer' "$T/err"
}

@test "half-sent large messages: the unfinished-input budget holds, the excess is cut with a warning" {
	scratch
	engine -q --max-partial 16M
	run python3 "$HOSTILE" partial "$T/s" "$EP" 20
	echo "$output"
	[ "$status" -eq 0 ]
	# before the fix: +82 MB for these 20 connections of 4 MiB
	[ "$(val rss_growth_kb)" -lt 40000 ]
	[ "$(val cut)" -ge 14 ]
	grep -q 'unix:.*/s#[0-9]*: holds [0-9]* bytes of an unfinished message.*--max-partial' "$T/err"
}

@test "a connection stuck mid-message is cut after --read-timeout; its whole requests are answered" {
	scratch
	engine -q --read-timeout 0.5
	run timeout 10 python3 -c '
import socket, sys, time, msgpack
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(msgpack.packb({"id": "a", "tokens": [1, 2], "max_tokens": 2}) + b"\x82\xa2id")
t0 = time.time(); u = msgpack.Unpacker(raw=False); evs = []
while True:
    b = s.recv(65536)
    if not b: break
    u.feed(b); evs.extend(u)
print("after_s", round(time.time() - t0, 2))
print("answered", sum(1 for e in evs if e.get("id") == "a" and e.get("finish") == "length"))
print("cut", sum(1 for e in evs if "read-timeout" in e.get("error", {}).get("message", "")))' "$T/s"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(val answered)" = 1 ]
	[ "$(val cut)" = 1 ]
}

@test "--max-connections: the one past it is told overloaded and closed; the others are served" {
	scratch
	engine -q --max-connections 4
	run python3 "$HOSTILE" conns "$T/s" 7
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(val refused)" = 3 ]
	[ "$(val served)" = 1 ]
	[ "$(grep -c 'refused a connection: too many connections: 4 open (--max-connections)' "$T/err")" -ge 1 ]
}

# ---------------------------------------------------------------- fairness

@test "a client with thousands queued delays another's request by a few steps only" {
	scratch
	engine -q --max-seqs 4 --max-queue-per-conn 4096
	run python3 "$HOSTILE" flood "$T/s" 3000
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(val b_finish)" = length ]
	[ "$(val a_answered)" = 3000 ]
	# before the fix: 2300 of the first client's requests finished while it waited
	[ "$(val a_done_while_b_waited)" -le 20 ]
}

@test "--max-queue-per-conn caps one connection's share; the excess is told overloaded" {
	scratch
	engine -q --max-seqs 4 --max-queue-per-conn 1000
	run python3 "$HOSTILE" flood "$T/s" 3000
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(val a_answered)" -ge 1000 ]
	[ "$(( $(val a_answered) + $(val a_overloaded) ))" -eq 3000 ]
	[ "$(val a_overloaded)" -ge 1500 ]
	[ "$(val b_finish)" = length ]
}

@test "a client that goes away has its work cancelled at once, counted in the summary" {
	scratch
	TINY=$BATS_FILE_TMPDIR/tiny8k.gguf engine
	python3 "$HOSTILE" gone "$T/s" 8000
	sleep 0.3
	kill -TERM "$EP"
	st=0
	wait "$EP" || st=$?
	EP=
	cat "$T/err"
	[ "$st" -eq 0 ]
	grep -q 'the peer closed the connection: 1 request cancelled' "$T/err"
	grep -q ' 1 cancelled as their client went away' "$T/err"
	# before the fix the engine went on to generate all 8000 tokens
	gen=$(sed -n 's/.* \([0-9]*\) tokens generated.*/\1/p' "$T/err")
	[ "$gen" -lt 7000 ]
}

@test "a client that only shut down its write side still gets its answers" {
	scratch
	engine -q
	run python3 "$HOSTILE" halfclose "$T/s"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(val finish)" = length ]
	[ "$(val tokens)" = 50 ]
}

# ---------------------------------------------------------------- smaller defects

@test "a duplicate in-flight id is answered without \"id\" (duplicate_id), the first once" {
	scratch
	engine -q
	run python3 "$HOSTILE" dup "$T/s"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(val finals_with_id)" = 1 ]
	[ "$(val duplicate_events)" = 1 ]
}

@test "listen errors say it once; --backlog sets the listen queue" {
	scratch
	engine -q --backlog 7
	ss -xl | grep -F "$T/s" | awk '{ print $4 }' | grep -qx 7
	run infer-cpu -q -m "$TINY" -l "unix:$T/s"
	echo "$output"
	[ "$status" -eq 111 ]
	[ "$output" = "infer-cpu: fatal: unable to listen on unix:$T/s: address in use (a live socket answers there)" ]
	run infer-cpu -q -m "$TINY" -l "unix:$T/nodir/s"
	[ "$status" -eq 111 ]
	[ "$(echo "$output" | grep -o 'unable to listen' | wc -l)" -eq 1 ]
	run infer-cpu -q -m "$TINY" --backlog 0
	[ "$status" -eq 100 ]
}
