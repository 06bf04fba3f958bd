#!/usr/bin/env bats
# sluice bench against real processes: infer-cpu with a tiny random-weight
# model on a unix socket, Redis, hostile endpoints (t/bench/hostile.py), and
# llama-server when LLAMA_SERVER names one. The figures are read back from
# --json with python3 and checked for consistency, not for speed.

load helpers/lib

setup_file() {
	export PATH=$SLUICE_BIN:$SLUICE_T/helpers:$PATH
	cd "$BATS_FILE_TMPDIR" &&
	sluice model synth --dim 256 --layers 2 --heads 4 --kv-heads 2 --ff 512 --ctx 256 --seed 7 \
		--type q8_0 -o tiny.gguf >/dev/null 2>&1
}

teardown() {
	[ -z "${EP:-}" ] || kill "$EP" 2>/dev/null || true
	[ -z "${EP:-}" ] || wait "$EP" 2>/dev/null || true
	[ -z "${HP:-}" ] || kill "$HP" 2>/dev/null || true
	[ -z "${HP:-}" ] || wait "$HP" 2>/dev/null || true
	redis_stop
}

TINY=$BATS_FILE_TMPDIR/tiny.gguf
HOSTILE=$BATS_TEST_DIRNAME/bench/hostile.py

# engine ARGS...: infer-cpu on unix:$T/s in the background (EP its pid),
# stderr in $T/err, back once it is ready
engine() {
	infer-cpu -m "$TINY" -l "unix:$T/s" --kv-mem 64M -d 3 "$@" 3>"$T/ready" 2>"$T/err" &
	EP=$!
	local i
	for i in $(seq 200); do [ -s "$T/ready" ] && return 0; sleep 0.05; done
	return 1
}

# hostile MODE: t/bench/hostile.py MODE on unix:$T/h (HP its pid), once it listens
hostile() {
	rm -f "$T/hready" "$T/h"
	python3 "$HOSTILE" "$1" "$T/h" 3>"$T/hready" &
	HP=$!
	local i
	for i in $(seq 200); do [ -s "$T/hready" ] && return 0; sleep 0.05; done
	return 1
}

# js EXPR: true when the Python expression EXPR holds of d, the JSON in $T/out.json
# (r: d, or with --sweep d["runs"]); prints the figures when it does not
js() {
	python3 - "$T/out.json" "$1" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
runs = d["runs"] if "runs" in d else [d]
r = runs[0]
def ordered(r, f):
    return r["median_%s_ms" % f] <= r["p90_%s_ms" % f] <= r["p99_%s_ms" % f]
def gaps(r):
    s = r["send_offsets"]
    return [b - a for a, b in zip(s, s[1:])]
ok = eval(sys.argv[2])
if not ok:
    print("false:", sys.argv[2])
    for x in runs:
        print({k: v for k, v in x.items() if k != "send_offsets"})
sys.exit(0 if ok else 1)
EOF
}

# ---------------------------------------------------------------- figures

@test "N prompts at a fixed concurrency: all complete and the figures agree" {
	scratch
	engine -q
	run sluice bench -u "unix:$T/s" -n 24 -c 4 --input-len 32 --output-len 16 --json "$T/out.json"
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q '^  completed  *24$'
	echo "$output" | grep -q '^  failed  *0$'
	js 'r["completed"] == 24 and r["failed"] == 0 and r["errors"] == {}'
	js 'r["total_output_tokens"] == 24 * 16 and r["total_input_tokens"] == 24 * 32'
	js 'r["max_concurrency"] == 4 and r["request_rate"] == "inf" and len(r["send_offsets"]) == 24'
	js 'all(ordered(r, f) for f in ("ttft", "tpot", "itl", "e2el"))'
	js 'r["mean_tpot_ms"] > 0 and r["mean_itl_ms"] > 0 and r["mean_ttft_ms"] > 0'
	js 'r["mean_ttft_ms"] < r["mean_e2el_ms"] and r["p99_e2el_ms"] >= r["median_ttft_ms"]'
	js 'abs(r["request_throughput"] - 24 / r["duration"]) < 1e-6 * r["request_throughput"]'
	js 'abs(r["output_throughput"] - 24 * 16 / r["duration"]) < 1e-6 * r["output_throughput"]'
	js 'abs(r["total_token_throughput"] - 24 * 48 / r["duration"]) < 1e-6 * r["total_token_throughput"]'
	js 'r["request_goodput"] is None and r["mean_cached_tokens"] == 0'
}

@test "range ratio: lengths vary within [len*(1-r), len*(1+r)]; ids within --vocab-size" {
	scratch
	engine -q
	run sluice bench -u "unix:$T/s" -n 30 -c 8 --input-len 20 --output-len 10 --range-ratio 0.5 \
		--vocab-size 100 --seed 3 --json "$T/out.json"
	[ "$status" -eq 0 ]
	js 'r["completed"] == 30 and 30 * 10 <= r["total_input_tokens"] <= 30 * 30'
	js '30 * 5 <= r["total_output_tokens"] <= 30 * 15 and r["total_output_tokens"] != 300'
}

@test "--rate with a seed: the mean gap between sends is 1/rate; the same seed, the same arrivals" {
	scratch
	engine -q
	run sluice bench -u "unix:$T/s" -n 200 --rate 200 --seed 11 --input-len 8 --output-len 4 --json "$T/out.json"
	[ "$status" -eq 0 ]
	js 'r["completed"] == 200 and r["request_rate"] == 200 and r["max_concurrency"] is None'
	js 'abs(sum(gaps(r)) / 199 - 1 / 200) < 0.25 / 200'
	js 'r["duration"] >= r["send_offsets"][-1] and min(gaps(r)) >= 0'
	cp "$T/out.json" "$T/a.json"
	run sluice bench -u "unix:$T/s" -n 200 --rate 200 --seed 11 --input-len 8 --output-len 4 --json "$T/out.json"
	[ "$status" -eq 0 ]
	python3 -c "
import json, sys
a = json.load(open('$T/a.json'))['send_offsets']; b = json.load(open('$T/out.json'))['send_offsets']
d = sorted(abs(x - y) for x, y in zip(a, b))
print('median difference', d[len(d) // 2])
sys.exit(0 if d[len(d) // 2] < 0.02 else 1)"
	# a rate capped by concurrency: with -c 1 each request waits for the one before
	run sluice bench -u "unix:$T/s" -n 20 --rate 1000 -c 1 --seed 5 --input-len 8 --output-len 64 --json "$T/out.json"
	[ "$status" -eq 0 ]
	js 'r["completed"] == 20 and r["max_concurrency"] == 1 and r["request_rate"] == 1000'
	js 'sum(gaps(r)) / 19 >= 0.8 * r["mean_e2el_ms"] / 1000'
	# gamma arrivals (--burstiness): the same mean
	run sluice bench -u "unix:$T/s" -n 200 --rate 200 --burstiness 0.5 --seed 5 --input-len 8 \
		--output-len 4 --json "$T/out.json"
	[ "$status" -eq 0 ]
	js 'r["completed"] == 200 and r["burstiness"] == 0.5'
	js 'abs(sum(gaps(r)) / 199 - 1 / 200) < 0.35 / 200'
}

@test "--sweep runs each concurrency in turn; --plot writes a PNG" {
	command -v gnuplot >/dev/null || skip "gnuplot is not installed"
	scratch
	engine -q
	run sluice bench -u "unix:$T/s" -n 12 --sweep 1,2,4 --input-len 16 --output-len 8 \
		--json "$T/out.json" --plot "$T/sweep.png"
	echo "$output"
	[ "$status" -eq 0 ]
	js 'd["sweep"] == "concurrency" and [x["max_concurrency"] for x in runs] == [1, 2, 4]'
	js 'all(x["completed"] == 12 and x["total_output_tokens"] == 96 for x in runs)'
	[ "$(echo "$output" | grep -c '^sluice bench: unix:')" -eq 3 ]
	echo "$output" | grep -q 'sweep over concurrency'
	[ "$(head -c 8 "$T/sweep.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]
}

@test "prefix dataset: the engine finds the shared prefixes cached" {
	scratch
	engine -q
	run sluice bench -u "unix:$T/s" -n 20 -c 2 --dataset prefix --num-prefixes 2 --prefix-len 64 \
		--input-len 16 --output-len 4 --json "$T/out.json"
	echo "$output"
	[ "$status" -eq 0 ]
	js 'r["completed"] == 20 and r["total_input_tokens"] == 20 * 80'
	js 'r["mean_cached_tokens"] > 0 and r["total_cached_tokens"] > 0'
	echo "$output" | grep -q '^  cached tokens'
}

@test "jsonl dataset: prompts and token ids from a file, max_tokens per line" {
	scratch
	engine -q
	printf '%s\n' '{"prompt":"hello world","max_tokens":5,"row":1}' '' '{"tokens":[1,2,3,4],"max_tokens":3}' \
		'{"prompt":"no max_tokens here"}' >"$T/in.jsonl"
	run sluice bench -u "unix:$T/s" --dataset jsonl --file "$T/in.jsonl" -n 6 -c 2 --output-len 4 --json "$T/out.json"
	[ "$status" -eq 0 ]
	js 'r["completed"] == 6 and r["total_output_tokens"] == 2 * (5 + 3 + 4)'
	echo '{"prompt": 3}' >"$T/bad.jsonl"
	run sluice bench -u "unix:$T/s" --dataset jsonl --file "$T/bad.jsonl" -n 2
	[ "$status" -eq 111 ]
	echo "$output" | grep -q 'line 1: "prompt" must be a string'
	run sluice bench -u "unix:$T/s" --dataset jsonl --file "$T/missing.jsonl" -n 2
	[ "$status" -eq 111 ]
}

@test "--duration sends until the time is up; --warmup requests are not counted" {
	scratch
	engine
	run sluice bench -u "unix:$T/s" --duration 1 -c 2 --input-len 8 --output-len 4 --json "$T/out.json"
	[ "$status" -eq 0 ]
	js 'r["completed"] > 10 and r["failed"] == 0 and 1.0 <= r["duration"] < 5'
	js 'r["num_prompts"] == r["completed"] and max(r["send_offsets"]) < 1.0'
	n=$(python3 -c "import json; print(json.load(open('$T/out.json'))['completed'])")
	run sluice bench -u "unix:$T/s" -n 10 --warmup 7 -c 2 --input-len 8 --output-len 4 --json "$T/out.json"
	[ "$status" -eq 0 ]
	js 'r["completed"] == 10 and r["warmup"] == 7 and r["total_output_tokens"] == 40'
	js 'len(r["send_offsets"]) == 10'
	# the engine saw every request: the --duration ones, 7 warmup and 10 measured
	kill -TERM "$EP"
	wait "$EP" || true
	EP=
	grep "infer-cpu: [0-9]* requests" "$T/err"
	grep -q "infer-cpu: $((n + 17)) requests" "$T/err"
}

@test "goodput: requests within --slo-ttft-ms and --slo-tpot-ms" {
	scratch
	engine -q
	run sluice bench -u "unix:$T/s" -n 10 -c 2 --input-len 8 --output-len 4 --slo-ttft-ms 60000 \
		--slo-tpot-ms 60000 --json "$T/out.json"
	[ "$status" -eq 0 ]
	js 'r["request_goodput"] == r["request_throughput"] > 0'
	echo "$output" | grep -q '^  goodput .*(10 requests within the SLOs)'
	run sluice bench -u "unix:$T/s" -n 10 -c 2 --input-len 8 --output-len 4 --slo-tpot-ms 0.000001 \
		--json "$T/out.json"
	[ "$status" -eq 0 ]
	js 'r["request_goodput"] == 0 and r["completed"] == 10'
}

@test "Redis stream endpoint: requests through a worker pool" {
	command -v redis-server >/dev/null || skip "redis-server is not installed"
	scratch
	redis_start
	infer-cpu -q -m "$TINY" -l "$REDIS_URL_BASE/sl:bench" --kv-mem 64M -d 3 3>"$T/ready" 2>"$T/err" &
	EP=$!
	for i in $(seq 200); do [ -s "$T/ready" ] && break; sleep 0.05; done
	run sluice bench -u "$REDIS_URL_BASE/sl:bench" -n 12 -c 3 --input-len 8 --output-len 4 --json "$T/out.json"
	echo "$output"
	[ "$status" -eq 0 ]
	js 'r["completed"] == 12 and r["total_output_tokens"] == 48'
}

@test "progress goes to stderr only on a terminal or with -v" {
	scratch
	engine -q
	sluice bench -u "unix:$T/s" -n 4 -c 2 --input-len 8 --output-len 4 >"$T/o" 2>"$T/e"
	[ ! -s "$T/e" ]
	sluice bench -u "unix:$T/s" -n 4 -c 2 --input-len 8 --output-len 4 -v >"$T/o" 2>"$T/e"
	grep -q '4/4 requests done' "$T/e"
	! grep -q 'requests done' "$T/o"
}

# ---------------------------------------------------------------- failures

@test "an endpoint that cannot be reached: exit 111" {
	scratch
	run sluice bench -u "unix:$T/nothing" -n 2
	[ "$status" -eq 111 ]
	echo "$output" | grep -q 'sluice: fatal: unable to connect to unix:'
	port=$(free_port)
	run sluice bench -u "tcp:127.0.0.1:$port" -n 2
	[ "$status" -eq 111 ]
	run sluice bench -u "redis://127.0.0.1:$port/sl:jobs" -n 2
	[ "$status" -eq 111 ]
	run sluice bench --openai "http://127.0.0.1:$port" -n 2
	[ "$status" -eq 111 ]
	echo "$output" | grep -q "sluice: fatal: unable to connect to http://127.0.0.1:$port"
}

@test "usage errors: exit 100; -h: exit 0" {
	scratch
	run sluice bench -h
	[ "$status" -eq 0 ]
	echo "$output" | grep -q '^usage: sluice bench'
	for args in "" "-n 3" "-u unix:/x --openai http://h" "-u unix:/x -c 0" "-u unix:/x -c x" \
		"-u unix:/x --rate -1" "-u unix:/x --dataset nope" "-u unix:/x --dataset jsonl" \
		"-u unix:/x --file f" "-u unix:/x --range-ratio 1" "-u unix:/x --sweep 1,,x" \
		"-u unix:/x --plot p.png" "-u unix:/x -c 2 --sweep 1,2" "-u unix:/x --duration 5" \
		"-u unix:/x --duration 1 -n 3 -c 1" "-u unix:/x --burstiness 2" "-u unix:/x --model m" \
		"-u nope:/x" "-u -" "--openai ftp://h" "-u unix:/x extra" "-u unix:/x --bogus" \
		"-u unix:/x --num-prefixes 2" "-u unix:/x --input-len 0" "-u unix:/x --timeout 0" "-u unix:/x -c"; do
		run sluice bench $args
		echo "$args -> $status"
		[ "$status" -eq 100 ]
	done
}

@test "hostile endpoints: every request is counted, bench neither crashes nor grows" {
	scratch
	for mode in garbage flood badtypes errors huge stranger; do
		hostile $mode
		run maxrss sluice bench -u "unix:$T/h" -n 40 -c 8 --input-len 8 --output-len 4 \
			--timeout 1 --json "$T/out.json"
		echo "$mode: $output"
		no_crash
		[ "$status" -eq 0 ]
		js 'r["completed"] + r["failed"] == 40'
		# what a hostile peer sends (a flood of events, a 9 MiB message) grows
		# nothing: bench's peak memory stays near that of the first mode
		rss=$(echo "$output" | awk '$1 == "maxrss" { print $2 }')
		base=${base:-$rss}
		echo "maxrss $rss KB, first mode $base KB"
		[ "$rss" -lt $((base + 4096)) ]
		case $mode in
		garbage) js 'r["completed"] == 0 and r["errors"] == {"disconnected": 8, "unreachable": 32}' ;;
		flood|badtypes) js 'r["errors"] == {"protocol": 40}' ;;
		errors) js 'len(r["errors"]) == 33 and r["errors"]["other"] == 8 and r["errors"]["code1"] == 1' ;;
		huge) js 'r["completed"] == 39 and r["errors"] == {"timeout": 1}' ;;
		stranger) js 'r["completed"] == 40 and r["total_output_tokens"] == 160' ;;
		esac
		kill "$HP" 2>/dev/null || true
		wait "$HP" 2>/dev/null || true
		HP=
	done
}

@test "a hung endpoint is bounded by --timeout; one that goes away fails what it held" {
	scratch
	hostile hang
	start=$(date +%s)
	run sluice bench -u "unix:$T/h" -n 6 -c 3 --input-len 8 --output-len 4 --timeout 0.5 --json "$T/out.json"
	[ "$status" -eq 0 ]
	[ $(($(date +%s) - start)) -lt 5 ]
	js 'r["completed"] == 0 and r["errors"] == {"timeout": 6}'
	kill "$HP" 2>/dev/null || true
	wait "$HP" 2>/dev/null || true
	# SIGTERM (or SIGINT): what was done is reported, in flight is "interrupted", exit 128+15
	hostile hang
	sluice bench -u "unix:$T/h" -n 6 -c 3 --input-len 8 --output-len 4 --json "$T/out.json" >"$T/o" 2>"$T/e" &
	pid=$!
	sleep 0.5
	kill -TERM $pid
	st=0
	wait $pid || st=$?
	cat "$T/o" "$T/e"
	[ "$st" -eq 143 ]
	js 'r["completed"] == 0 and r["errors"] == {"interrupted": 3} and r["num_prompts"] == 3'
	grep -q 'warning: interrupted' "$T/e"
	kill "$HP" 2>/dev/null || true
	wait "$HP" 2>/dev/null || true
	hostile drop
	run sluice bench -u "unix:$T/h" -n 10 -c 2 --input-len 8 --output-len 4 --json "$T/out.json"
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q 'warning: unix:.*closed the connection'
	js 'r["completed"] == 0 and r["errors"] == {"disconnected": 2, "unreachable": 8}'
}

# ---------------------------------------------------------------- OpenAI-compatible

@test "--openai against llama-server: streamed completions are measured" {
	[ -n "${LLAMA_SERVER:-}" ] || skip "LLAMA_SERVER not set: the OpenAI path is measured in t/perf"
	scratch
	port=$(free_port)
	"$LLAMA_SERVER" -m "$TINY" --host 127.0.0.1 --port "$port" -c 1024 -np 4 >"$T/llama.log" 2>&1 &
	EP=$!
	for i in $(seq 300); do
		curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
		sleep 0.1
	done
	run sluice bench --openai "http://127.0.0.1:$port" --model tiny -n 8 -c 2 --input-len 16 --output-len 8 \
		--json "$T/out.json"
	echo "$output"
	[ "$status" -eq 0 ]
	js 'r["backend"] == "openai" and r["completed"] == 8 and r["failed"] == 0'
	js 'r["total_output_tokens"] == 64 and r["mean_ttft_ms"] > 0 and r["mean_itl_ms"] > 0'
	js 'all(ordered(r, f) for f in ("ttft", "tpot", "itl", "e2el"))'
	# words of the tiny model's byte-level vocabulary are a few tokens each: short prompts
	run sluice bench --openai "http://127.0.0.1:$port" -n 6 -c 2 --dataset prefix --num-prefixes 1 \
		--prefix-len 16 --input-len 4 --output-len 4 --json "$T/out.json"
	[ "$status" -eq 0 ]
	js 'r["completed"] == 6 and r["total_output_tokens"] == 24'
	printf '%s\n' '{"prompt":"hello","max_tokens":3,"temperature":0.5}' '{"tokens":[5,6,7],"max_tokens":2}' >"$T/in.jsonl"
	run sluice bench --openai "http://127.0.0.1:$port" --dataset jsonl --file "$T/in.jsonl" -n 4 -c 2 --json "$T/out.json"
	[ "$status" -eq 0 ]
	js 'r["completed"] == 4 and r["total_output_tokens"] == 10'
	# a prompt longer than a slot's context: the server says 400, bench counts it
	run sluice bench --openai "http://127.0.0.1:$port" -n 3 --input-len 400 --output-len 4 --json "$T/out.json"
	[ "$status" -eq 0 ]
	js 'r["completed"] == 0 and r["errors"] == {"http_400": 3}'
}
