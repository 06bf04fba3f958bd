#!/usr/bin/env bats
# sluice cat: msgpack <-> JSON lines on the corpus of t/cat/gen.py (its own
# canonical msgpack encoder and JSON writer), forcing options, bad input,
# interactive flushing, and the -u client against the iotest echo server.

load helpers/lib
bats_require_minimum_version 1.5.0

setup_file() {
	python3 "$BATS_TEST_DIRNAME/cat/gen.py" "$BATS_FILE_TMPDIR/corpus" 400
}

teardown() {
	[ -z "${ECHO_PID:-}" ] || kill "$ECHO_PID" 2>/dev/null || true
}

C=${BATS_FILE_TMPDIR:-}/corpus

@test "cat: the corpus is a few hundred varied messages" {
	[ "$(wc -l <"$C.jsonl")" -ge 400 ]
	grep -q '"\$bin"' "$C.jsonl"
	grep -q '"\$ext"' "$C.jsonl"
	grep -q '"finish":"stop"' "$C.jsonl"
	grep -q '18446744073709551615' "$C.jsonl"
	grep -q '"messages":\[{"role"' "$C.jsonl"
}

@test "cat: msgpack -> JSON is the expected text, and -> msgpack the same bytes" {
	scratch
	run sluice cat <"$C.msgpack" >"$T/out.jsonl"
	no_crash
	[ "$status" -eq 0 ]
	sluice cat <"$C.msgpack" >"$T/out.jsonl"
	cmp "$T/out.jsonl" "$C.jsonl"
	sluice cat <"$T/out.jsonl" >"$T/back.msgpack"
	cmp "$T/back.msgpack" "$C.msgpack"
}

@test "cat: JSON -> msgpack is the expected bytes, and -> JSON the same text" {
	scratch
	sluice cat <"$C.jsonl" >"$T/out.msgpack"
	cmp "$T/out.msgpack" "$C.msgpack"
	sluice cat <"$T/out.msgpack" >"$T/back.jsonl"
	cmp "$T/back.jsonl" "$C.jsonl"
	sluice cat <"$C.jsonl" | sluice cat | sluice cat | sluice cat | sluice cat >"$T/five.msgpack"
	cmp "$T/five.msgpack" "$C.msgpack"
}

@test "cat: -m passes msgpack through, -j re-writes JSON, -i forces the input kind" {
	scratch
	sluice cat -m <"$C.msgpack" >"$T/m"
	cmp "$T/m" "$C.msgpack"
	sluice cat -j <"$C.jsonl" >"$T/j"
	cmp "$T/j" "$C.jsonl"
	sluice cat -i msgpack -j <"$C.msgpack" >"$T/mj"
	cmp "$T/mj" "$C.jsonl"
	sluice cat -i json -m <"$C.jsonl" >"$T/jm"
	cmp "$T/jm" "$C.msgpack"
	# JSON that does not look like JSON from its first byte
	printf '{"a":1}\n' >"$T/in"
	run sluice cat -i msgpack -j <"$T/in"
	no_crash
	[ "$status" -eq 1 ] || [ "$status" -eq 111 ]
	# and the other way round: msgpack read as JSON is a bad line
	printf '\x81\xa1a\x01' >"$T/mp"
	run sluice cat -i json -j <"$T/mp"
	no_crash
	[ "$status" -eq 1 ]
	[[ "$output" == *"sluice: warning: line 1: invalid JSON at byte 0: expected a value"* ]]
	# whitespace in front of JSON still reads as JSON
	printf '  \n\t{ "a" : [1, 2.50, "x"] }\n' | sluice cat -j >"$T/ws"
	[ "$(cat "$T/ws")" = '{"a":[1,2.5,"x"]}' ]
}

@test "cat: a bad JSON line is skipped with a warning, the rest comes through, exit 1" {
	scratch
	printf '{"id":"a"}\n{"id":"b",}\n\n{"id":"c"}\n[1,2]\n{"id":"d" "x"}\n{"id":"e"}' >"$T/in"
	run --separate-stderr sluice cat -j <"$T/in"
	no_crash
	[ "$status" -eq 1 ]
	[ "$output" = '{"id":"a"}
{"id":"c"}
{"id":"e"}' ]
	[ "${stderr_lines[0]}" = "sluice: warning: line 2: invalid JSON at byte 10: expected a string key" ]
	[ "${stderr_lines[1]}" = "sluice: warning: line 5: not a JSON object" ]
	[ "${stderr_lines[2]}" = "sluice: warning: line 6: invalid JSON at byte 10: expected ',' or '}'" ]
	[ "${#stderr_lines[@]}" -eq 3 ]
	sluice cat <"$T/in" 2>/dev/null | sluice cat >"$T/out" || [ $? -eq 1 ]
	printf '{"id":"a"}\n{"id":"c"}\n{"id":"e"}\n' | cmp - "$T/out"
}

@test "cat: bad msgpack: a rejected message is skipped, a truncated one warns, broken framing is 111" {
	scratch
	printf '\x81\xa2id\xa1a\x05\x81\xa2id\xa1b\x81\xa2id\xa5abc' >"$T/in"
	run --separate-stderr sluice cat <"$T/in"
	no_crash
	[ "$status" -eq 1 ]
	[ "$output" = '{"id":"a"}
{"id":"b"}' ]
	[ "${stderr_lines[0]}" = "sluice: warning: message 2: message is not a map" ]
	[ "${stderr_lines[1]}" = "sluice: warning: message 4: input ends inside a message (8 bytes)" ]
	[ "${#stderr_lines[@]}" -eq 2 ]
	printf '\x81\xa2id\xa1a\xc1\x81\xa2id\xa1b' >"$T/broken"
	run --separate-stderr sluice cat <"$T/broken"
	no_crash
	[ "$status" -eq 111 ]
	[ "$output" = '{"id":"a"}' ]
	[ "$stderr" = "sluice: fatal: unable to read input: message 2: invalid msgpack byte 0xc1" ]
	# a cut corpus: every whole message comes through
	head -c 100000 "$C.msgpack" >"$T/cut"
	run sluice cat -m <"$T/cut"
	no_crash
	[ "$status" -eq 1 ]
	[[ "$output" == *"input ends inside a message"* ]]
}

@test "cat: empty input is fine" {
	run sluice cat </dev/null
	no_crash
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "cat: each message is written as soon as it is converted (no waiting for EOF)" {
	scratch
	mkfifo "$T/fifo"
	sluice cat -j <"$T/fifo" >"$T/out" 3>&- &
	pid=$!
	exec 7>"$T/fifo"
	printf '{"id":"first"}\n' >&7
	for i in $(seq 100); do
		[ -s "$T/out" ] && break
		sleep 0.05
	done
	[ "$(cat "$T/out")" = '{"id":"first"}' ]
	printf '{"id":"second"}\n' >&7
	exec 7>&-
	wait "$pid"
	[ "$(wc -l <"$T/out")" -eq 2 ]
}

@test "cat: -h exits 0, bad options and subcommands exit 100" {
	run sluice -h
	[ "$status" -eq 0 ]
	[[ "$output" == "usage: sluice cat"* ]]
	run sluice cat -h
	[ "$status" -eq 0 ]
	[[ "$output" == "usage: sluice cat [-j|-m]"* ]]
	run sluice cat -x
	[ "$status" -eq 100 ]
	[[ "$output" == "sluice: usage: sluice cat"* ]]
	run sluice cat -i yaml
	[ "$status" -eq 100 ]
	run sluice cat extra
	[ "$status" -eq 100 ]
	run sluice cat -t soon
	[ "$status" -eq 100 ]
	run sluice cat -u bogus:endpoint </dev/null
	[ "$status" -eq 100 ]
	run sluice frobnicate
	[ "$status" -eq 100 ]
	[[ "$output" == "sluice: usage: "* ]]
	run sluice
	[ "$status" -eq 100 ]
}

start_echo() {
	command -v iotest >/dev/null || skip "build/obj/t/helpers/iotest is missing (make)"
	iotest echo -l "unix:$T/echo.sock" "$@" 3>&- &
	ECHO_PID=$!
	wait_for_path "$T/echo.sock"
}

@test "cat -u: 1000 JSON requests to the echo server, every answer printed as JSON" {
	scratch
	start_echo
	for i in $(seq 1000); do
		printf '{"id":"r%d","prompt":"hello %d","max_tokens":4}\n' "$i" "$i"
	done >"$T/in"
	run sluice cat -u "unix:$T/echo.sock" -t 20000 <"$T/in"
	no_crash
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1000 ]
	[ "${lines[0]}" = '{"id":"r1","prompt":"hello 1","max_tokens":4,"finish":"stop"}' ]
	printf '%s\n' "${lines[@]}" | grep -c '"finish":"stop"' | grep -qx 1000
	[ "$(printf '%s\n' "${lines[@]}" | sed 's/.*"id":"\(r[0-9]*\)".*/\1/' | sort -u | wc -l)" -eq 1000 ]
	# msgpack in: msgpack out by default, JSON with -j
	sluice cat <"$T/in" >"$T/in.msgpack"
	sluice cat -u "unix:$T/echo.sock" -t 20000 <"$T/in.msgpack" >"$T/out.msgpack"
	[ "$(sluice cat <"$T/out.msgpack" | grep -c '"finish":"stop"')" -eq 1000 ]
	sluice cat -j -u "unix:$T/echo.sock" -t 20000 <"$T/in.msgpack" >"$T/out.jsonl"
	[ "$(grep -c '"finish":"stop"' "$T/out.jsonl")" -eq 1000 ]
}

@test "cat -u: answers are printed while the input is still open" {
	scratch
	start_echo
	mkfifo "$T/fifo"
	sluice cat -u "unix:$T/echo.sock" -t 20000 <"$T/fifo" >"$T/out" 3>&- &
	pid=$!
	exec 7>"$T/fifo"
	printf '{"id":"one"}\n' >&7
	for i in $(seq 100); do
		[ -s "$T/out" ] && break
		sleep 0.05
	done
	[ "$(cat "$T/out")" = '{"id":"one","finish":"stop"}' ]
	printf '{"id":"two"}\n' >&7
	exec 7>&-
	wait "$pid"
	[ "$(wc -l <"$T/out")" -eq 2 ]
}

@test "cat -u: -t gives up with 99, a refused connection is 111" {
	scratch
	start_echo --delay-ms 5000
	run sluice cat -u "unix:$T/echo.sock" -t 300 <<<'{"id":"slow"}'
	no_crash
	[ "$status" -eq 99 ]
	[[ "$output" == *"sluice: fatal: timed out after 300 ms"* ]]
	run sluice cat -u "unix:$T/nothing.sock" <<<'{"id":"x"}'
	no_crash
	[ "$status" -eq 111 ]
}

@test "cat -u: a query ({\"op\":\"stats\"}, with an id or without) waits for its answer" {
	scratch
	sluice model synth --dim 64 --layers 1 --heads 2 --kv-heads 1 --ff 128 --ctx 64 -o "$T/m.gguf" >/dev/null
	infer-cpu -m "$T/m.gguf" -q -l "unix:$T/e.sock" -d 3 3>"$T/ready" &
	pid=$!
	ready "$T/ready"
	for i in $(seq 20); do
		run sluice cat -u "unix:$T/e.sock" -t 5000 <<<'{"op":"stats"}'
		[ "$status" -eq 0 ] && [[ "$output" == '{"op":"stats","stats":{"program":"infer-cpu",'* ]] ||
			{ echo "try $i: status $status: $output" >&2; kill "$pid"; return 1; }
	done
	run sluice cat -u "unix:$T/e.sock" -t 5000 <<<'{"op":"stats","id":"s1"}
{"id":"r","tokens":[1,2],"max_tokens":2}
{"op":"stats"}
{"op":"nope"}'
	kill "$pid"
	wait "$pid"
	[ "$status" -eq 0 ]
	[ "$(grep -c '"op":"stats"' <<<"$output")" -eq 2 ]
	grep -q '"id":"s1","stats":' <<<"$output"
	grep -q '"finish":"error","error":{"code":"bad_request","message":"unknown op' <<<"$output"
	grep -q '"id":"r"' <<<"$output"
	[ "${#lines[@]}" -eq 4 ]
}
