#!/usr/bin/env bats
# infer-cpu on tiny random models (sluice model synth, seeded, so the suite
# regenerates the very files t/infer/mkfixtures.py gave llama.cpp): the
# forward pass of every weight type against llama.cpp's logits, chunking,
# threads and the scalar path; then the engine's protocol: errors, cancel,
# timeout, priority, sockets, signals.

load helpers/lib

PROMPT="1 3 17 42 100 150 200 255 268 7 64 128"

setup_file() {
	local d=$BATS_FILE_TMPDIR
	export PATH=$SLUICE_BIN:$SLUICE_T/helpers:$PATH
	(cd "$d" && grep -E '^(sluice|quantize) ' "$SLUICE_ROOT/t/infer/tiny.txt" | sh >/dev/null 2>&1)
}

tiny() {
	echo "$BATS_FILE_TMPDIR/tiny-$1.gguf"
}

# req JSON...: JSON lines to msgpack
req() {
	printf '%s\n' "$@" | sluice cat -m
}

@test "the tiny models are the ones llama.cpp saw (same sha256)" {
	cd "$BATS_FILE_TMPDIR"
	grep -E '^[0-9a-f]{64}  tiny-' "$SLUICE_ROOT/t/infer/tiny.txt" | sha256sum -c --quiet
}

# type max-abs mean-abs: the logits of all 12 positions against llama.cpp's
@test "logits of every weight type match llama.cpp's" {
	for tb in f32:0.002:0.0005 f16:0.003:0.0005 bf16:0.02:0.003 q8_0:0.03:0.005 q4_0:0.03:0.005 \
		  q4_1:0.03:0.005 q5_0:0.03:0.005 q5_1:0.03:0.005 q4_k:0.03:0.006 q6_k:0.03:0.006 \
		  q8_0-untied:0.03:0.005; do
		IFS=: read -r t mx mn <<<"$tb"
		run fwdtest -m "$(tiny "$t")" -a -r "$SLUICE_ROOT/t/infer/tiny-$t.f32" -M "$mx" -A "$mn" $PROMPT
		echo "$t: $output"
		no_crash
		[ "$status" -eq 0 ]
	done
}

@test "qwen2 (Q/K/V biases, NEOX RoPE) matches llama.cpp's logits" {
	scratch
	python3 "$SLUICE_ROOT/t/infer/qwen2.py" "$(tiny f32)" "$T/qwen2.gguf"
	run fwdtest -m "$T/qwen2.gguf" -a -r "$SLUICE_ROOT/t/infer/tiny-qwen2.f32" -M 0.0001 -A 0.00001 $PROMPT
	echo "$output"
	[ "$status" -eq 0 ]
	# and it is not the llama model under another name
	run fwdtest -m "$T/qwen2.gguf" -a -r "$SLUICE_ROOT/t/infer/tiny-f32.f32" -M 0.1 -g $PROMPT
	[ "$status" -eq 1 ]
}

@test "chunked prefill, thread count and block order do not change a bit" {
	scratch
	for t in q4_1 q8_0 q4_k f16; do
		fwdtest -m "$(tiny "$t")" -a -t 2 -o "$T/full.f32" $PROMPT
		for args in "-c 5 -t 2" "-c 1 -t 1" "-c 7 -t 3"; do
			run fwdtest -m "$(tiny "$t")" -a $args -r "$T/full.f32" -M 0 -A 0 $PROMPT
			echo "$t $args: $output"
			[ "$status" -eq 0 ]
		done
	done
}

# The scalar path adds its floats in another order, so an activation that
# lands within rounding of a Q8 code boundary can take the other code. On
# q5_1 the logits agree to 1e-7 up to position 4 and differ by up to 0.009
# from position 5 on (the jump such a flip makes, carried on by the cache),
# so it gets llama.cpp's tolerance; the SIMD paths give llama.cpp's bits.
@test "the scalar path agrees with the SIMD one" {
	scratch
	for tb in q4_0 q4_1 q5_0 q5_1:0.03:0.005 q8_0 q4_k q6_k f16 bf16; do
		IFS=: read -r t mx mn <<<"$tb"
		fwdtest -m "$(tiny "$t")" -a -o "$T/simd.f32" $PROMPT
		SLUICE_SCALAR=1 run fwdtest -m "$(tiny "$t")" -a -r "$T/simd.f32" -M "${mx:-0.0005}" \
			-A "${mn:-0.0001}" $PROMPT
		echo "$t: $output"
		[ "$status" -eq 0 ]
	done
}

# the kernel paths this CPU runs, as lib/dot probes them
isas() {
	echo avx2
	if grep -q avx512f /proc/cpuinfo && grep -q avx512bw /proc/cpuinfo \
	   && grep -q avx512vl /proc/cpuinfo && grep -q avx512_vnni /proc/cpuinfo; then
		echo avx512
	fi
}

@test "every kernel path this CPU has gives AVX2's bits (SLUICE_ISA), and the load summary names it" {
	scratch
	for t in q4_0 q4_1 q5_0 q5_1 q8_0 q4_k q6_k f32 f16 bf16; do
		SLUICE_ISA=avx2 fwdtest -m "$(tiny "$t")" -a -o "$T/avx2.f32" -c 3 $PROMPT
		for isa in $(isas); do
			SLUICE_ISA=$isa run fwdtest -m "$(tiny "$t")" -a -r "$T/avx2.f32" -M 0 -A 0 $PROMPT
			echo "$t $isa: $output"
			[ "$status" -eq 0 ]
		done
	done
	for isa in scalar $(isas); do
		SLUICE_ISA=$isa run infer-cpu -m "$(tiny q4_1)" </dev/null
		echo "$isa: $output"
		[ "$status" -eq 0 ]
		name=$(case $isa in scalar) echo scalar ;; avx2) echo AVX2 ;; avx512) echo AVX-512 ;; esac)
		[[ "${lines[0]}" == *", $name" ]]
	done
	SLUICE_ISA=sse2 run infer-cpu -m "$(tiny q4_1)" </dev/null
	[ "$status" -eq 111 ]
	[[ "$output" == *"SLUICE_ISA=sse2: not scalar, avx2 or avx512"* ]]
	if [ "$(isas | tail -1)" = avx2 ]; then
		SLUICE_ISA=avx512 run infer-cpu -m "$(tiny q4_1)" </dev/null
		[ "$status" -eq 111 ]
		[[ "$output" == *"SLUICE_ISA=avx512: this CPU lacks AVX-512"* ]]
	fi
}

@test "usage and load errors" {
	scratch
	run infer-cpu -h
	[ "$status" -eq 0 ]
	[[ "$output" == usage:* ]]
	run infer-cpu --bogus
	[ "$status" -eq 100 ]
	run infer-cpu -m "$T/none.gguf" </dev/null
	[ "$status" -eq 111 ]
	[[ "$output" == *"unable to open $T/none.gguf: No such file or directory"* ]]
	echo junk >"$T/junk.gguf"
	run infer-cpu -m "$T/junk.gguf" </dev/null
	[ "$status" -eq 111 ]
	[[ "$output" == *"unable to load $T/junk.gguf"* ]]
	# a type of the same block size (IQ4_NL for Q4_0): a well-formed file
	python3 - "$(tiny q4_0)" "$T/iq4.gguf" <<-'PY'
	import struct, sys
	data = bytearray(open(sys.argv[1], "rb").read())
	name = b"blk.0.attn_q.weight"
	at = data.index(struct.pack("<Q", len(name)) + name) + 8 + len(name)
	nd = struct.unpack_from("<I", data, at)[0]
	assert struct.unpack_from("<I", data, at + 4 + 8 * nd)[0] == 2    # Q4_0
	struct.pack_into("<I", data, at + 4 + 8 * nd, 20)                 # IQ4_NL
	open(sys.argv[2], "wb").write(data)
	PY
	run infer-cpu -m "$T/iq4.gguf" </dev/null
	[ "$status" -eq 111 ]
	[[ "$output" == *"blk.0.attn_q.weight has type IQ4_NL, which the engine does not support; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q6_K"* ]]
	run infer-cpu -m "$(tiny f32)" --kv-mem 1 </dev/null
	[ "$status" -eq 100 ]
}

@test "an unsupported architecture is named" {
	scratch
	python3 - "$(tiny f32)" "$T/gpt2.gguf" <<-'PY'
	import sys
	data = open(sys.argv[1], "rb").read()
	# same length: the architecture string "llama" -> "gpt2x" and its keys with it
	open(sys.argv[2], "wb").write(data.replace(b"llama", b"gptjx"))
	PY
	run infer-cpu -m "$T/gpt2.gguf" </dev/null
	[ "$status" -eq 111 ]
	[[ "$output" == *'architecture "gptjx" is not supported; supported: llama, qwen2'* ]]
}

# patched SRC DST KEY VALUE: a copy of SRC with one scalar metadata value changed
patched() {
	cp "$1" "$2" &&
	python3 - "$2" "$3" "$4" <<-'PY'
	import sys
	from gguf import GGUFReader
	f = GGUFReader(sys.argv[1], "r+").fields[sys.argv[2]]
	f.parts[f.data[0]][0] = type(f.parts[f.data[0]][0])(float(sys.argv[3]))
	PY
}

@test "a NaN or infinite rope base, a negative norm epsilon are refused at load" {
	scratch
	local k v
	for kv in rope.freq_base=nan rope.freq_base=inf rope.freq_base=0 \
	    attention.layer_norm_rms_epsilon=-1e-5 attention.layer_norm_rms_epsilon=nan; do
		k=${kv%=*} v=${kv#*=}
		patched "$(tiny f32)" "$T/m.gguf" "llama.$k" "$v"
		run infer-cpu -m "$T/m.gguf" </dev/null
		echo "$kv: $output"
		[ "$status" -eq 111 ]
		case $v in
		nan|inf) [[ "$output" == *"llama.$k is not finite"* ]] ;;
		*) [[ "$output" == *"llama.$k is out of range"* ]] ;;
		esac
	done
	# an epsilon of 0 is a value, as in llama.cpp
	patched "$(tiny f32)" "$T/m.gguf" llama.attention.layer_norm_rms_epsilon 0
	run infer-cpu -q -m "$T/m.gguf" </dev/null
	[ "$status" -eq 0 ]
}

@test "a BOS id outside the vocabulary with add_bos_token true is refused at load" {
	scratch
	patched "$(tiny f32)" "$T/a.gguf" tokenizer.ggml.add_bos_token 1
	patched "$T/a.gguf" "$T/b.gguf" tokenizer.ggml.bos_token_id 5000
	run infer-cpu -q -m "$T/a.gguf" </dev/null
	[ "$status" -eq 0 ]
	run infer-cpu -m "$T/b.gguf" </dev/null
	echo "$output"
	[ "$status" -eq 111 ]
	[[ "$output" == *"tokenizer.ggml.bos_token_id 5000 is outside the vocabulary of "*" tokens, and tokenizer.ggml.add_bos_token is true"* ]]
	run tokenize -m "$T/b.gguf" </dev/null
	[ "$status" -eq 111 ]
	# without add_bos_token the id is never used: the model loads
	patched "$(tiny f32)" "$T/c.gguf" tokenizer.ggml.bos_token_id 5000
	run infer-cpu -q -m "$T/c.gguf" </dev/null
	[ "$status" -eq 0 ]
}

@test "bad requests get an error event each and the good ones are answered" {
	scratch
	req '{"id":"ok1","tokens":[1,2,3],"max_tokens":3,"ignore_eos":true}' \
	    '{"tokens":[1,2]}' \
	    '{"id":"big","tokens":[1,2,99999],"max_tokens":3}' \
	    '{"id":"long","tokens":['"$(seq -s, 1 300)"'],"max_tokens":3}' \
	    '{"id":"type","tokens":[1,2],"max_tokens":"many"}' \
	    '{"id":"empty","tokens":[]}' \
	    '{"id":"none"}' \
	    '{"id":"stops","tokens":[1],"stop":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"]}' \
	    '{"id":"ok2","tokens":[4,5,6],"max_tokens":2,"ignore_eos":true,"row":17}' \
	    >"$T/in"
	run sh -c "infer-cpu -q -m $(tiny q8_0) --ctx 256 <$T/in | sluice cat"
	echo "$output"
	no_crash
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | grep -c '"finish":"error"')" -eq 7 ]
	echo "$output" | grep -q '"id":"big".*"code":"bad_request".*token 99999 at 2 is not in the vocabulary'
	echo "$output" | grep -q '"id":"long".*"code":"too_long"'
	echo "$output" | grep -q '"id":"type".*"code":"bad_request".*max_tokens'
	echo "$output" | grep -q '"id":"empty".*"code":"bad_request"'
	echo "$output" | grep -q '"id":"none".*"code":"bad_request".*no prompt, messages or tokens'
	echo "$output" | grep -q '"id":"stops".*"code":"bad_request".*at most 16 stop strings'
	echo "$output" | grep -q '"code":"bad_request","message":"request has no id'
	echo "$output" | grep -q '"row":17,"id":"ok2","tokens":\[[0-9]*,[0-9]*\],"finish":"length"'
	echo "$output" | grep -q '"id":"ok1","tokens":\[[0-9]*,[0-9]*,[0-9]*\],"finish":"length","usage":{"prompt_tokens":3,"completion_tokens":3,"cached_tokens":0}'
}

@test "garbage bytes between requests: an error, and the stream goes on" {
	scratch
	{ req '{"id":"a","tokens":[1,2],"max_tokens":2,"ignore_eos":true}'
	  printf '\x93\x01\x02\x03'    # an array, not a map
	  req '{"id":"b","tokens":[1,2],"max_tokens":2,"ignore_eos":true}'; } >"$T/in"
	run sh -c "infer-cpu -q -m $(tiny q8_0) <$T/in | sluice cat"
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q '"id":"a".*"finish":"length"'
	echo "$output" | grep -q '"id":"b".*"finish":"length"'
	echo "$output" | grep -q '"finish":"error"'
}

@test "streaming: an event per token, then the final one; --text" {
	scratch
	req '{"id":"s","tokens":[1,2,3],"max_tokens":5,"ignore_eos":true,"stream":true}' >"$T/in"
	run sh -c "infer-cpu -q --text -m $(tiny q8_0) <$T/in | sluice cat"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | wc -l)" -ge 5 ]
	[ "$(echo "$output" | grep -c '"finish"')" -eq 1 ]
	echo "$output" | tail -1 | grep -q '"finish":"length"'
	echo "$output" | grep -q '"text":'
}

@test "cancel stops a request at once and the engine keeps serving" {
	run python3 "$SLUICE_ROOT/t/helpers/engine.py" cancel -- infer-cpu -q -m "$(tiny q8_0)" --ctx 256
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | sed -n 1p | grep -q '"finish": "cancelled"'
	echo "$output" | sed -n 2p | grep -q '"finish": "length"'
}

@test "timeout_ms finishes a request with timeout; others go on" {
	run python3 "$SLUICE_ROOT/t/helpers/engine.py" timeout -- infer-cpu -q -m "$(tiny q8_0)" --ctx 100000 --kv-mem 64M
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | sed -n 1p | grep -q '"finish": "timeout"'
	echo "$output" | sed -n 2p | grep -q '"finish": "length"'
}

@test "priority: lower runs first, then arrival" {
	run python3 "$SLUICE_ROOT/t/helpers/engine.py" priority -- infer-cpu -q -m "$(tiny q8_0)" --max-seqs 1 --ctx 200000 --kv-mem 64M
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "first d c a b e" ]
}

@test "a unix socket serves two clients at once; SIGTERM drains and exits 0" {
	scratch
	infer-cpu -q -m "$(tiny q8_0)" -l "unix:$T/s" -d 3 3>"$T/ready" &
	pid=$!
	wait_for_path "$T/s"
	for c in 1 2; do
		req '{"id":"x","tokens":[1,2,3],"max_tokens":20,"ignore_eos":true,"client":'$c'}' >"$T/in$c"
	done
	sluice cat -j -u "unix:$T/s" <"$T/in1" >"$T/out1" &
	c1=$!
	sluice cat -j -u "unix:$T/s" <"$T/in2" >"$T/out2"
	wait $c1
	grep -q '"client":1,"id":"x".*"finish":"length"' "$T/out1"
	grep -q '"client":2,"id":"x".*"finish":"length"' "$T/out2"
	kill -TERM $pid
	wait $pid
}

@test "a worker pool on Redis streams: two engines, every job answered once" {
	scratch
	redis_start
	ep=$REDIS_URL_BASE/jobs
	infer-cpu -q -m "$(tiny q8_0)" -l "$ep" 2>"$T/w1.err" &
	w1=$!
	infer-cpu -q -m "$(tiny q8_0)" -l "$ep" 2>"$T/w2.err" &
	w2=$!
	for i in $(seq 30); do
		echo '{"id":"r'$i'","tokens":[1,2,3],"max_tokens":6,"ignore_eos":true,"row":'$i'}'
	done >"$T/jobs.jsonl"
	run sh -c "sluice cat -j -t 60000 -u '$ep' <'$T/jobs.jsonl' >'$T/out'"
	kill $w1 $w2
	wait $w1 $w2 || true
	redis_stop
	cat "$T"/w*.err
	[ "$status" -eq 0 ]
	[ "$(grep -c '"finish":"length"' "$T/out")" -eq 30 ]
	[ "$(grep -o '"id":"r[0-9]*"' "$T/out" | sort -u | wc -l)" -eq 30 ]
	grep -q '"row":17,"id":"r17"' "$T/out"
}

@test "logprobs: the chosen token's log-probability and the top alternatives" {
	scratch
	req '{"id":"l","tokens":[1,2,3],"max_tokens":4,"ignore_eos":true,"logprobs":5}' \
	    '{"id":"s","tokens":[1,2,3],"max_tokens":4,"ignore_eos":true,"logprobs":3,"temperature":1.5,"seed":7}' >"$T/in"
	infer-cpu -q -m "$(tiny q8_0)" <"$T/in" | sluice cat >"$T/out"
	run python3 - "$T/out" <<-'PY'
	import json, math, sys
	for e in map(json.loads, open(sys.argv[1])):
	    lp = e["logprobs"]
	    assert len(lp) == len(e["tokens"]) == 4, e
	    n = 5 if e["id"] == "l" else 3
	    for tok, x in zip(e["tokens"], lp):
	        assert x["token"] == tok and x["logprob"] <= 0, x
	        top = x["top"]
	        assert len(top) == n and all(top[i][1] >= top[i + 1][1] for i in range(n - 1)), top
	        assert sum(math.exp(p) for _, p in top) <= 1.0001, top
	        if e["id"] == "l":   # greedy: the chosen token is the most likely one
	            assert top[0][0] == tok and abs(top[0][1] - x["logprob"]) < 1e-6, x
	        else:                # sampled: its logprob is the model's, whatever was drawn
	            for t, p in top:
	                if t == tok:
	                    assert abs(p - x["logprob"]) < 1e-6, x
	print("ok")
	PY
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "{\"op\":\"stats\"}: answered in place with the engine's figures; another op is a bad request" {
	scratch
	req '{"id":"a","tokens":[1,2,3],"max_tokens":4,"ignore_eos":true}' \
	    '{"op":"stats","id":"s1"}' '{"op":"nope"}' '{"id":"b","tokens":[1],"max_tokens":5000}' >"$T/in"
	run sh -c "infer-cpu -q -m $(tiny q8_0) --max-tokens 3 <$T/in | sluice cat"
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | python3 -c 'import json, sys
evs = [json.loads(l) for l in sys.stdin]
st = [e for e in evs if e.get("op") == "stats"]
assert len(st) == 1 and st[0]["id"] == "s1", st
s = st[0]["stats"]
assert s["program"] == "infer-cpu" and s["requests"] == 1 and s["waiting"] + s["running"] == 1, s
assert s["kv_blocks_total"] > 0 and s["finished"]["length"] == 0 and not s["draining"], s
bad = [e for e in evs if e.get("error", {}).get("code") == "bad_request"]
assert len(bad) == 1 and "unknown op" in bad[0]["error"]["message"], bad
assert sum(1 for e in evs if e.get("finish") == "length") == 2'
}
