#!/usr/bin/env bats
# tokenize and detokenize on an input that breaks after many good messages:
# a msgpack stream whose framing is lost (a 0xc1 byte) ends the run with 111,
# but only after every answer to what came before it is written; a bad JSON
# line is one error event and the stream goes on (exit 0).

load helpers/lib
bats_require_minimum_version 1.5.0

setup() {
	need_model
	scratch
}

# gen N KIND PROG >FILE: N good requests (PROG tok) or finished token events
# (PROG det), msgpack (KIND mp) or JSON lines (KIND json), then a 0xc1 byte
# (a line of its own in JSON), then one more good message that must not count
gen() {
	python3 - "$@" <<-'EOF'
	import sys, json, msgpack
	n, kind, prog = int(sys.argv[1]), sys.argv[2], sys.argv[3]
	out = sys.stdout.buffer
	def one(i):
	    if prog == "tok":
	        return {"id": str(i), "prompt": "hello %d" % i}
	    return {"id": str(i), "tokens": [28120, 28], "finish": "stop"}
	def put(m):
	    out.write(msgpack.packb(m) if kind == "mp" else (json.dumps(m) + "\n").encode())
	for i in range(n):
	    put(one(i))
	out.write(b"\xc1\n" if kind == "json" else b"\xc1")
	put(one(n))
	EOF
}

# count KEY <MSGPACK: the messages that have KEY, and those that have "error"
count() {
	python3 -c '
import sys, msgpack
k, e = 0, 0
for m in msgpack.Unpacker(sys.stdin.buffer, raw=False):
    k += sys.argv[1] in m
    e += "error" in m
print(k, e)' "$1"
}

@test "tokenize: msgpack that loses its framing after 1000 requests: 1000 answers, then 111" {
	gen 1000 mp tok >"$T/in"
	run --separate-stderr sh -c 'tokenize -m "$MODEL" <"$T/in" >"$T/out"'
	no_crash && [ "$status" -eq 111 ]
	[ "$stderr" = 'tokenize: fatal: unable to read the input: message 1001: invalid msgpack byte 0xc1' ]
	[ "$(count tokens <"$T/out")" = "1000 0" ]
}

@test "tokenize: the same after 20000 requests, msgpack and JSON out" {
	gen 20000 mp tok >"$T/in"
	run --separate-stderr sh -c 'tokenize -m "$MODEL" <"$T/in" >"$T/out"'
	no_crash && [ "$status" -eq 111 ]
	[ "$(count tokens <"$T/out")" = "20000 0" ]
	run --separate-stderr sh -c 'tokenize -m "$MODEL" -o json <"$T/in" >"$T/out.json"'
	no_crash && [ "$status" -eq 111 ]
	[ "$(grep -c '"tokens"' "$T/out.json")" -eq 20000 ]
	[ "$(tail -n 1 "$T/out.json")" = '{"id":"19999","prompt":"hello 19999","tokens":[28120,216,33,41,41,41,41]}' ]
	# -c lines too
	run --separate-stderr sh -c 'tokenize -m "$MODEL" -c <"$T/in" >"$T/out.c"'
	no_crash && [ "$status" -eq 111 ]
	[ "$(wc -l <"$T/out.c")" -eq 20000 ]
}

@test "tokenize: a bad JSON line after 20000 requests is one error event; the rest is answered" {
	gen 20000 json tok >"$T/in"
	run --separate-stderr sh -c 'tokenize -m "$MODEL" <"$T/in" >"$T/out"'
	no_crash && [ "$status" -eq 0 ]
	[ "$(count tokens <"$T/out")" = "20001 1" ]
}

@test "detokenize: msgpack that loses its framing after 1000 events: 1000 answers, then 111" {
	gen 1000 mp det >"$T/in"
	run --separate-stderr sh -c 'detokenize -m "$MODEL" <"$T/in" >"$T/out"'
	no_crash && [ "$status" -eq 111 ]
	[ "$stderr" = 'detokenize: fatal: unable to read the input: message 1001: invalid msgpack byte 0xc1' ]
	[ "$(count text <"$T/out")" = "1000 0" ]
}

@test "detokenize: the same after 20000 events, JSON and text out" {
	gen 20000 mp det >"$T/in"
	run --separate-stderr sh -c 'detokenize -m "$MODEL" -o json <"$T/in" >"$T/out.json"'
	no_crash && [ "$status" -eq 111 ]
	[ "$(grep -c '"text":"hello,"' "$T/out.json")" -eq 20000 ]
	[ "$(wc -l <"$T/out.json")" -eq 20000 ]
	run --separate-stderr sh -c 'detokenize -m "$MODEL" -o text <"$T/in" >"$T/out.txt"'
	no_crash && [ "$status" -eq 111 ]
	[ "$(grep -c '^hello,$' "$T/out.txt")" -eq 20000 ]
}

@test "detokenize: an unfinished request is written as at the end of the input when the framing is lost" {
	python3 -c '
import sys, msgpack
sys.stdout.buffer.write(msgpack.packb({"id": "a", "tokens": [28120]}) + b"\xc1")' >"$T/in"
	run --separate-stderr sh -c 'detokenize -m "$MODEL" -o text <"$T/in" >"$T/out.txt"'
	no_crash && [ "$status" -eq 111 ]
	[ "$(cat "$T/out.txt")" = hello ]
}

@test "detokenize: a bad JSON line after 20000 events is one error event; the rest is answered" {
	gen 20000 json det >"$T/in"
	run --separate-stderr sh -c 'detokenize -m "$MODEL" <"$T/in" >"$T/out"'
	no_crash && [ "$status" -eq 0 ]
	[ "$(count text <"$T/out")" = "20001 1" ]
}
