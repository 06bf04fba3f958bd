#!/usr/bin/env bats
# gateway, the OpenAI-compatible HTTP front: infer-cpu on a tiny
# random-weight model <- batchd <- gateway on a free loopback port. The
# official openai client (t/gateway/oai.py), curl and raw sockets check
# what a client sees: answers, error objects and statuses, SSE framing byte
# for byte, 200 streams at once, clients gone cancelled at the engine, keys,
# drain on SIGTERM, /metrics. The engine's stats prove what reached it.

load helpers/lib

setup_file() {
	export PATH=$SLUICE_BIN:$SLUICE_T/helpers:$PATH
	cd "$BATS_FILE_TMPDIR" &&
	sluice model synth --dim 256 --layers 2 --heads 4 --kv-heads 2 --ff 512 --ctx 8192 --seed 7 \
		--type q8_0 -o tiny.gguf >/dev/null 2>&1
}

teardown() {
	local p
	for p in ${CP:-} ${HP:-} ${GP:-} ${BP:-} ${EP:-}; do
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
}

# keys from the caller's environment would change every answer
unset SLUICE_API_KEYS

TINY=$BATS_FILE_TMPDIR/tiny.gguf
OAI=$BATS_TEST_DIRNAME/gateway/oai.py
CLIENTS=$BATS_TEST_DIRNAME/batchd/clients.py

# engine ARGS...: infer-cpu on unix:$T/e (EP its pid), stderr in $T/eerr
engine() {
	rm -f "$T/eready"
	infer-cpu -m "$TINY" -l "unix:$T/e" -d 3 "$@" 3>"$T/eready" 2>>"$T/eerr" &
	EP=$!
	ready "$T/eready"
}

# batchd_up ARGS...: batchd on unix:$T/b in front of unix:$T/e (BP its pid)
batchd_up() {
	rm -f "$T/bready"
	batchd -l "unix:$T/b" -u "unix:$T/e" -d 3 "$@" 3>"$T/bready" 2>>"$T/berr" &
	BP=$!
	ready "$T/bready"
}

# gw_up ARGS...: gateway in front of unix:$T/b, listening on $GW_LISTEN
# (default a free loopback port); GP its pid, URL http://127.0.0.1:PORT,
# stderr in $T/gerr. Ready means listening and connected to batchd.
gw_up() {
	local port
	rm -f "$T/gready"
	: >"$T/gerr"
	gateway -u "unix:$T/b" -m "$TINY" -l "${GW_LISTEN:-tcp:127.0.0.1:0}" -d 3 "$@" \
		3>"$T/gready" 2>"$T/gerr" &
	GP=$!
	ready "$T/gready" || { cat "$T/gerr" >&2; return 1; }
	port=$(sed -n 's|^gateway: listening on http://[^ ]*:\([0-9][0-9]*\).*|\1|p' "$T/gerr" | head -1)
	[ -n "$port" ] || { echo "no port in: $(cat "$T/gerr")" >&2; return 1; }
	URL=http://127.0.0.1:$port
}

# stack [ENGINE-ARGS...]: the engine, batchd and gateway with no options of note
stack() {
	scratch
	engine -q "$@" && batchd_up -q && gw_up -q
}

# req METHOD PATH [BODY [CURL-ARGS...]]: one request to the gateway; its
# status in $code (000: no answer), headers in $T/h, body in $T/body.
# BODY "" sends none; @FILE sends FILE.
req() {
	local m=$1 p=$2 body=${3:-}
	if [ $# -ge 3 ]; then shift 3; else shift $#; fi
	[ -z "$body" ] || set -- -H 'Content-Type: application/json' --data-binary "$body" "$@"
	code=$(curl -s -X "$m" -D "$T/h" -o "$T/body" -w '%{http_code}' "$@" "$URL$p") || true
}

# err STATUS [TYPE [CODE [PARAM]]]: the last answer was STATUS with an error
# object of exactly message, type, param, code; "-" skips a figure, CODE
# null is null, PARAM a field that param or message must name
err() {
	[ "$code" = "$1" ] || { echo "status $code, not $1: $(cat "$T/body" 2>/dev/null)" >&2; return 1; }
	set -- "${2:--}" "${3:--}" "${4:--}"
	local args=()
	[ "$1" = - ] || args+=(--type "$1")
	[ "$2" = - ] || args+=(--code "$2")
	[ "$3" = - ] || args+=(--param "$3")
	python3 "$OAI" errbody "$T/body" "${args[@]}"
}

val() {
	echo "$output" | awk -v k="$1" '$1 == k { print $2 }'
}

# est KEY / bst KEY: one figure of the engine's / batchd's stats (a.b nested)
est() {
	python3 "$CLIENTS" stats "$T/${2:-e}" | python3 -c 'import json,sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."): v = v[k]
print(v)' "$1"
}
bst() {
	est "$1" b
}

# ------------------------------------------------------------------ start

@test "gateway: no -u is a usage error (100); a non-loopback address without a key is refused (100), with --insecure served" {
	scratch
	run gateway
	[ "$status" -eq 100 ]
	run timeout 10 gateway -u "unix:$T/nowhere" -m "$TINY" -l tcp:0.0.0.0:0
	echo "$output"
	[ "$status" -eq 100 ]
	[[ "$output" == *--insecure* ]]
	engine -q
	batchd_up -q
	GW_LISTEN=tcp:0.0.0.0:0 gw_up -q --insecure
	req GET /health
	[ "$code" = 200 ]
	grep -q '^gateway: listening on http://' "$T/gerr"
}

# ------------------------------------------------------------------ the openai client

@test "gateway: openai client: completions and chat, streamed and not, give the same text" {
	stack
	run python3 "$OAI" basic "$URL"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "gateway: openai client: n=2 gives indices 0 and 1, choice i is seed+i; the same seed the same text" {
	stack
	run python3 "$OAI" n "$URL"
	echo "$output"
	[ "$status" -eq 0 ]
	run python3 "$OAI" seed "$URL"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "gateway: openai client: stop as a string and a list ends before it, finish_reason stop" {
	stack
	run python3 "$OAI" stop "$URL"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "gateway: openai client: logprobs (completions 2, chat top_logprobs 2) of matching lengths, all <= 0" {
	stack
	run python3 "$OAI" logprobs "$URL"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "gateway: openai client: include_usage, total = prompt + completion, prompt_tokens as /tokenize counts" {
	stack
	run python3 "$OAI" usage "$URL"
	echo "$output"
	[ "$status" -eq 0 ]
	# the engine generated what the usage said: 2 x 20 streamed, 3 x 5
	[ "$(est generation_tokens)" = 55 ]
}

@test "gateway: openai client: BadRequestError and NotFoundError; the engine sees none of them" {
	stack
	run python3 "$OAI" errors "$URL"
	echo "$output"
	[ "$status" -eq 0 ]
	# only the two accepted requests at the end reached it
	[ "$(est requests)" = 2 ]
}

# ------------------------------------------------------------------ keys

@test "gateway: keys from --api-key-file and SLUICE_API_KEYS: 401 without or with a wrong one; /health and /metrics open" {
	scratch
	printf '# the keys\n\nsk-file-1\n\nsk-file-2\n' >"$T/keys"
	engine -q
	batchd_up -q
	export SLUICE_API_KEYS="sk-env-1, sk-env-2 sk-env-3"
	gw_up -q --api-key-file "$T/keys"
	body='{"model":"tiny","prompt":"Hi","max_tokens":1}'
	req POST /v1/completions "$body"
	err 401 authentication_error invalid_api_key
	req POST /v1/completions "$body" -H 'Authorization: Bearer sk-wrong'
	err 401 authentication_error invalid_api_key
	req POST /v1/completions "$body" -H 'Authorization: Bearer # the keys'
	err 401 authentication_error invalid_api_key
	for k in sk-file-1 sk-file-2 sk-env-1 sk-env-2 sk-env-3; do
		req POST /v1/completions "$body" -H "Authorization: Bearer $k"
		[ "$code" = 200 ] || { echo "key $k: $code" >&2; false; }
	done
	req GET /v1/models
	err 401 authentication_error invalid_api_key
	req POST /tokenize '{"content":"Hi"}'
	err 401 authentication_error invalid_api_key
	req POST /detokenize '{"tokens":[80]}'
	err 401 authentication_error invalid_api_key
	req GET /health
	[ "$code" = 200 ]
	req GET /metrics
	[ "$code" = 200 ]
	run python3 "$OAI" expect "$URL" --key sk-wrong --want 401:invalid_api_key
	echo "$output"
	[ "$status" -eq 0 ]
	run python3 "$OAI" expect "$URL" --key sk-env-2 --want 200 --chat
	echo "$output"
	[ "$status" -eq 0 ]
	# 5 with a key by curl, 1 by the client
	[ "$(est requests)" = 6 ]
}

# ------------------------------------------------------------------ statuses

@test "gateway: curl: 400, 404 and 405 with the exact error object, never 500 for a client's mistake" {
	stack
	c='"model":"tiny","prompt":"Hi","max_tokens":2'
	m='"model":"tiny","messages":[{"role":"user","content":"Hi"}],"max_tokens":2'
	req POST /v1/completions '{"model": "tiny", "prompt": '
	err 400 invalid_request_error null
	req POST /v1/completions $'{"model":"tiny","prompt":"\xff\xfe"}'
	err 400 invalid_request_error
	req POST /v1/completions '[1, 2]'
	err 400 invalid_request_error
	req POST /v1/completions '{"prompt":"Hi"}'
	err 400 invalid_request_error - model
	req POST /v1/completions '{"model":"tiny","prompt":5}'
	err 400 invalid_request_error - prompt
	req POST /v1/chat/completions '{"model":"tiny","messages":"Hi"}'
	err 400 invalid_request_error - messages
	req POST /v1/completions "{$c,\"temperature\":\"hot\"}"
	err 400 invalid_request_error - temperature
	req POST /v1/completions "{$c,\"n\":0}"
	err 400 invalid_request_error - n
	req POST /v1/completions "{$c,\"logprobs\":6}"
	err 400 invalid_request_error - logprobs
	req POST /v1/completions "{$c,\"logit_bias\":{\"50\":1}}"
	err 400 invalid_request_error - logit_bias
	req POST /v1/completions "{$c,\"best_of\":3}"
	err 400 invalid_request_error - best_of
	req POST /v1/completions "{$c,\"min_tokens\":2}"
	err 400 invalid_request_error - min_tokens
	req POST /v1/completions "{$c,\"stop\":[$(printf '"s%d",' $(seq 17))\"x\"]}"
	err 400 invalid_request_error - stop
	req POST /v1/chat/completions "{$m,\"response_format\":{\"type\":\"json_object\"}}"
	err 400 invalid_request_error - response_format
	req POST /v1/chat/completions "{$m,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}"
	err 400 invalid_request_error - tools
	req POST /v1/chat/completions "{$m,\"guided_json\":{\"type\":\"object\"}}"
	err 400 invalid_request_error - guided_json
	req POST /v1/chat/completions "{$m,\"modalities\":[\"text\",\"audio\"]}"
	err 400 invalid_request_error - modalities
	req POST /v1/chat/completions "{$m,\"top_logprobs\":21,\"logprobs\":true}"
	err 400 invalid_request_error - top_logprobs
	# the defaults of those fields are accepted, unknown fields ignored
	req POST /v1/chat/completions "{$m,\"response_format\":{\"type\":\"text\"},\"modalities\":[\"text\"],\"logit_bias\":{},\"no_such_field\":1}"
	[ "$code" = 200 ]
	req POST /v1/completions '{"model":"nope","prompt":"Hi","max_tokens":2}'
	err 404 - model_not_found
	# a key given twice is refused, not resolved either way (jansson's
	# JSON_REJECT_DUPLICATES): a front and a back that read it differently
	# is how requests get smuggled
	req POST /v1/completions "{$c,\"model\":\"nope\"}"
	err 400 invalid_request_error - -
	req GET /nowhere
	err 404 - not_found
	req POST /v1/nowhere "{$c}"
	err 404 - not_found
	req GET /v1/completions
	err 405
	grep -qi '^Allow:.*POST' "$T/h"
	req GET /v1/chat/completions
	err 405
	grep -qi '^Allow:.*POST' "$T/h"
	req POST /health
	err 405
	grep -qi '^Allow:.*GET' "$T/h"
	req DELETE /v1/models
	err 405
	grep -qi '^Allow:.*GET' "$T/h"
	# of all these, the engine saw the one accepted
	[ "$(est requests)" = 1 ]
}

@test "gateway: --max-body 1000: a larger body is 413 request_too_large, a smaller one served" {
	scratch
	engine -q
	batchd_up -q
	gw_up -q --max-body 1000
	python3 -c 'import json; print(json.dumps({"model": "tiny", "prompt": "a " * 1000, "max_tokens": 1}))' >"$T/big"
	req POST /v1/completions "@$T/big"
	err 413 - request_too_large
	python3 -c 'import json; print(json.dumps({"model": "tiny", "prompt": "a " * 400, "max_tokens": 1}))' >"$T/small"
	req POST /v1/completions "@$T/small"
	[ "$code" = 200 ]
}

@test "gateway: --max-connections-per-ip 2: a third connection from one address is closed, served again once one is free" {
	scratch
	engine -q && batchd_up -q && gw_up -q --max-connections-per-ip 2
	run python3 - "$URL" <<'PY'
import socket, sys, time, urllib.request
host, port = sys.argv[1].split("//")[1].split(":")
held = [socket.create_connection((host, int(port))) for _ in range(2)]
time.sleep(0.2)   # the two are accepted (and counted) before the third
def health():
    try:
        return urllib.request.urlopen(sys.argv[1] + "/health", timeout=5).status
    except Exception as e:
        return type(e).__name__
third = health()
held.pop().close()
for _ in range(100):
    again = health()
    if again == 200:
        break
    time.sleep(0.05)
print("third:", third, "after one closed:", again)
assert third != 200 and again == 200
PY
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "gateway: batchd's --rate: 429 rate_limited (RateLimitError); a user has a bucket of its own" {
	scratch
	engine -q
	# one request, then none for 20 s: the bucket does not refill during the test
	batchd_up -q --rate 0.05 --burst 1
	gw_up -q
	run python3 "$OAI" expect "$URL" --want 200 --want 429:rate_limited
	echo "$output"
	[ "$status" -eq 0 ]
	req POST /v1/completions '{"model":"tiny","prompt":"Hi","max_tokens":1}'
	err 429 - rate_limited
	req POST /v1/completions '{"model":"tiny","prompt":"Hi","max_tokens":1,"stream":true}'
	err 429 - rate_limited
	# user is the rate-limit identity upstream
	req POST /v1/completions '{"model":"tiny","prompt":"Hi","max_tokens":1,"user":"alice"}'
	[ "$code" = 200 ]
	req POST /v1/completions '{"model":"tiny","prompt":"Hi","max_tokens":1,"user":"alice"}'
	err 429 - rate_limited
	[ "$(est requests)" = 2 ]
}

@test "gateway: batchd's queue full: 503 overloaded (InternalServerError), streamed or not" {
	scratch
	engine -q --max-seqs 1
	batchd_up -q --max-inflight 1 --max-queue 1
	gw_up -q
	# one request runs, one waits: batchd's queue is full (sent apart: two
	# read at once would find the queue full already)
	python3 "$CLIENTS" streams "$T/b" 1 6000 "$T/hold1" &
	HP=$!
	for i in $(seq 200); do [ "$(est running)" = 1 ] && break; sleep 0.05; done
	python3 "$CLIENTS" streams "$T/b" 1 6000 "$T/hold2" &
	HP="$HP $!"
	for i in $(seq 200); do [ "$(bst waiting)" = 1 ] && break; sleep 0.05; done
	[ "$(bst waiting)" = 1 ]
	run python3 "$OAI" expect "$URL" --want 503:overloaded
	echo "$output"
	[ "$status" -eq 0 ]
	req POST /v1/completions '{"model":"tiny","prompt":"Hi","max_tokens":2}'
	err 503 service_unavailable overloaded
	req POST /v1/chat/completions '{"model":"tiny","messages":[{"role":"user","content":"Hi"}],"max_tokens":2,"stream":true}'
	err 503 service_unavailable overloaded
	[ "$(est requests)" = 1 ]
}

@test "gateway: --timeout: a request whose deadline passes in batchd's queue is 504 timeout" {
	scratch
	engine -q --max-seqs 1
	batchd_up -q --max-inflight 1
	gw_up -q --timeout 0.3
	# a long request straight to batchd, with no deadline, holds the engine
	python3 "$CLIENTS" streams "$T/b" 1 6000 "$T/hold" &
	HP=$!
	for i in $(seq 200); do [ "$(est running)" = 1 ] && break; sleep 0.05; done
	[ "$(est running)" = 1 ]
	req POST /v1/completions '{"model":"tiny","prompt":"Hi","max_tokens":4}'
	err 504 - timeout
	req POST /v1/chat/completions '{"model":"tiny","messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"stream":true}'
	err 504 - timeout
	# they never reached the engine
	[ "$(est requests)" = 1 ]
}

# ------------------------------------------------------------------ the other endpoints

@test "gateway: /health, /v1/models, /tokenize and /detokenize in llama-server's and vLLM's shapes" {
	stack
	req GET /health
	[ "$code" = 200 ]
	python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["status"] == "ok"' "$T/body"
	req GET /v1/models
	[ "$code" = 200 ]
	python3 -c 'import json,sys
m = json.load(open(sys.argv[1]))
assert m["object"] == "list" and len(m["data"]) == 1, m
d = m["data"][0]
assert d["id"] == "tiny" and d["object"] == "model" and d["owned_by"] == "sluice", d
assert isinstance(d["created"], int) and isinstance(d["max_model_len"], int) and d["max_model_len"] > 0, d' "$T/body"
	run python3 "$OAI" tokenize "$URL"
	echo "$output"
	[ "$status" -eq 0 ]
	# none of it went upstream
	[ "$(est requests)" = 0 ]
}

@test "gateway: --served-model-name: the name served and required" {
	scratch
	engine -q
	batchd_up -q
	gw_up -q --served-model-name my-model
	req GET /v1/models
	grep -q '"id": *"my-model"' "$T/body"
	req POST /v1/completions '{"model":"tiny","prompt":"Hi","max_tokens":1}'
	err 404 - model_not_found
	run python3 "$OAI" expect "$URL" --model my-model --want 200
	[ "$status" -eq 0 ]
}

# ------------------------------------------------------------------ SSE

@test "gateway: SSE byte for byte: data: {json}\\n\\n records ending data: [DONE]\\n\\n, text/event-stream" {
	stack
	c='"model":"tiny","prompt":"Once upon a time","max_tokens":12,"ignore_eos":true,"stream":true'
	m='"model":"tiny","messages":[{"role":"user","content":"Hi"}],"max_tokens":12,"ignore_eos":true,"stream":true'
	curl -sN -D "$T/h1" -o "$T/s1" -H 'Content-Type: application/json' -d "{$c}" "$URL/v1/completions"
	run python3 "$OAI" sse "$T/s1" --headers "$T/h1" --finish length
	echo "$output"
	[ "$status" -eq 0 ]
	curl -sN -D "$T/h2" -o "$T/s2" -H 'Content-Type: application/json' \
		-d "{$c,\"stream_options\":{\"include_usage\":true}}" "$URL/v1/completions"
	run python3 "$OAI" sse "$T/s2" --headers "$T/h2" --usage 12 --finish length
	echo "$output"
	[ "$status" -eq 0 ]
	curl -sN -D "$T/h3" -o "$T/s3" -H 'Content-Type: application/json' -d "{$m}" "$URL/v1/chat/completions"
	run python3 "$OAI" sse "$T/s3" --headers "$T/h3" --chat --finish length
	echo "$output"
	[ "$status" -eq 0 ]
	curl -sN -D "$T/h4" -o "$T/s4" -H 'Content-Type: application/json' \
		-d "{$m,\"n\":2}" "$URL/v1/chat/completions"
	run python3 "$OAI" sse "$T/s4" --headers "$T/h4" --chat --choices 2 --finish length
	echo "$output"
	[ "$status" -eq 0 ]
}

# ------------------------------------------------------------------ many clients

@test "gateway: 200 streaming clients held at once: all complete with their tokens" {
	stack --max-seqs 64
	run python3 "$OAI" many "$URL" --clients 200 --tokens 16
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(val completed)" = 200 ]
	[ "$(est requests)" = 200 ]
	[ "$(est finished.length)" = 200 ]
	[ "$(est generation_tokens)" = 3200 ]
}

@test "gateway: 50 of 200 streaming clients close after one chunk: cancelled at the engine, the 150 complete" {
	stack --max-seqs 64
	run python3 "$OAI" many "$URL" --clients 200 --tokens 16 --gone 50 --gone-tokens 4000
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(val completed)" = 150 ]
	[ "$(val gone)" = 50 ]
	for i in $(seq 100); do [ "$(est finished.cancelled)" -ge 50 ] && break; sleep 0.1; done
	[ "$(est finished.cancelled)" -ge 50 ]
	for i in $(seq 100); do [ "$(est running)" = 0 ] && break; sleep 0.1; done
	[ "$(est running)" = 0 ]
	[ "$(est finished.length)" = 150 ]
	# the 50 did not run their 4000 tokens out
	[ "$(est generation_tokens)" -lt 50000 ]
}

# ------------------------------------------------------------------ drain

@test "gateway: SIGTERM: the stream in flight finishes, /health and new requests 503 draining, exit 0" {
	stack
	curl -sN -o "$T/stream" -H 'Content-Type: application/json' \
		-d '{"model":"tiny","prompt":"Hi","max_tokens":7000,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}' \
		"$URL/v1/completions" &
	CP=$!
	for i in $(seq 200); do grep -q '^data: ' "$T/stream" 2>/dev/null && break; sleep 0.05; done
	grep -q '^data: ' "$T/stream"
	kill -TERM "$GP"
	for i in $(seq 100); do req GET /health; [ "$code" = 503 ] && break; sleep 0.05; done
	[ "$code" = 503 ]
	python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["status"] == "unavailable"' "$T/body"
	req POST /v1/completions '{"model":"tiny","prompt":"Hi","max_tokens":2}'
	# the spec says 503 draining; a listener already closed would refuse
	if [ "$code" != 000 ]; then err 503 service_unavailable draining; fi
	wait "$CP"
	CP=
	st=0
	wait "$GP" || st=$?
	GP=
	[ "$st" -eq 0 ]
	run python3 "$OAI" sse "$T/stream" --usage 7000 --finish length
	echo "$output"
	[ "$status" -eq 0 ]
	req GET /health
	[ "$code" = 000 ]
}

@test "gateway: batchd killed mid-stream: the stream ends with an upstream_lost error event, /health 503, then 200 and served once batchd is back" {
	stack
	curl -sN -o "$T/stream" -H 'Content-Type: application/json' \
		-d '{"model":"tiny","prompt":"Hi","max_tokens":7000,"ignore_eos":true,"stream":true}' \
		"$URL/v1/completions" &
	CP=$!
	for i in $(seq 200); do grep -q '^data: ' "$T/stream" 2>/dev/null && break; sleep 0.05; done
	kill -9 "$BP"
	wait "$BP" 2>/dev/null || true
	BP=
	wait "$CP"
	CP=
	# the 200 went out: the error is the stream's last event, then [DONE]
	tail -c 300 "$T/stream" | grep -q '"code":"upstream_lost"'
	[ "$(tail -c 14 "$T/stream")" = "$(printf 'data: [DONE]\n\n')" ]
	req GET /health
	[ "$code" = 503 ]
	req POST /v1/completions '{"model":"tiny","prompt":"Hi","max_tokens":2}'
	err 503 service_unavailable upstream_lost
	batchd_up -q
	for i in $(seq 100); do req GET /health; [ "$code" = 200 ] && break; sleep 0.05; done
	[ "$code" = 200 ]
	req POST /v1/completions '{"model":"tiny","prompt":"Hi","max_tokens":2}'
	[ "$code" = 200 ]
}

# ------------------------------------------------------------------ metrics

@test "gateway: /metrics parses; requests by path and status, tokens and latencies match what was served" {
	stack
	run python3 "$OAI" metrics "$URL" --n 5
	echo "$output"
	[ "$status" -eq 0 ]
	req GET /metrics
	[ "$code" = 200 ]
	grep -qi '^Content-Type: text/plain' "$T/h"
	[ "$(est generation_tokens)" = 35 ]
}
