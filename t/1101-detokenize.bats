#!/usr/bin/env bats
# detokenize: token events in, text deltas out (SmolLM2): a character split
# across events is held until complete and never emitted broken, an
# incomplete one becomes U+FFFD at the finish, special tokens hidden unless
# --special, -o text|json|msgpack, pass-through keys, errors per event.

load helpers/lib
bats_require_minimum_version 1.5.0

setup() {
	need_model
	scratch
}

# 😀 is three tokens in SmolLM2: f0 9f | 98 | 80
@test "detokenize: a character split across events is held, then emitted whole" {
	cat >"$T/in" <<-'EOF'
	{"id":"a","tokens":[19556,10813]}
	{"id":"b","tokens":[3087]}
	{"id":"a","tokens":[242]}
	{"id":"b","tokens":[85],"finish":"stop"}
	{"id":"a","tokens":[218,905],"finish":"length","n":3}
	EOF
	run detokenize -m "$MODEL" -o json <"$T/in"
	no_crash && [ "$status" -eq 0 ]
	[ "${lines[0]}" = '{"id":"a","tokens":[19556,10813],"text":"Hello"}' ]
	[ "${lines[1]}" = '{"id":"b","tokens":[3087],"text":"By"}' ]
	[ "${lines[2]}" = '{"id":"a","tokens":[242],"text":""}' ]
	[ "${lines[3]}" = '{"id":"b","tokens":[85],"finish":"stop","text":"e"}' ]
	[ "${lines[4]}" = '{"id":"a","tokens":[218,905],"finish":"length","n":3,"text":"😀 world"}' ]
}

@test "detokenize: an incomplete character at the finish, and stray bytes, become U+FFFD" {
	cat >"$T/in" <<-'EOF'
	{"id":"a","tokens":[19556,10813]}
	{"id":"a","finish":"stop"}
	{"id":"b","tokens":[242,905,10813,242],"finish":"stop"}
	{"id":"c","tokens":[10813,19556,218],"finish":"stop"}
	EOF
	run detokenize -m "$MODEL" -o json <"$T/in"
	no_crash && [ "$status" -eq 0 ]
	[ "${lines[0]}" = '{"id":"a","tokens":[19556,10813],"text":"Hello"}' ]
	[ "${lines[1]}" = '{"id":"a","finish":"stop","text":"�"}' ]
	[ "${lines[2]}" = '{"id":"b","tokens":[242,905,10813,242],"finish":"stop","text":"� world�"}' ]
	[ "${lines[3]}" = '{"id":"c","tokens":[10813,19556,218],"finish":"stop","text":"�Hello�"}' ]
}

@test "detokenize: control tokens hidden unless --special" {
	echo '{"id":"a","tokens":[1,4093,198,26843,2],"finish":"stop"}' >"$T/in"
	run detokenize -m "$MODEL" -o json <"$T/in"
	no_crash && [ "$status" -eq 0 ]
	# the first token is BOS (<|im_start|> in SmolLM2): as Llama.detokenize, no leading space to drop here
	[[ "$output" == *'"text":"user\nHi"}' ]]
	run detokenize -m "$MODEL" -o json --special <"$T/in"
	no_crash && [ "$status" -eq 0 ]
	[[ "$output" == *'"text":"<|im_start|>user\nHi<|im_end|>"}' ]]
}

@test "detokenize: -o text prints the text as it streams, a blank line after each request" {
	cat >"$T/in" <<-'EOF'
	{"id":"a","tokens":[19556]}
	{"id":"a","tokens":[905],"finish":"stop"}
	{"id":"b","tokens":[3087,85,198],"finish":"stop"}
	{"id":"c","finish":"stop"}
	EOF
	detokenize -m "$MODEL" -o text <"$T/in" >"$T/out"
	printf 'Hello world\n\nBye\n\n\n' | cmp - "$T/out"
}

@test "detokenize: msgpack in and out, keys passed through, text replaced" {
	printf '%s\n' '{"id":"a","tokens":[19556,905],"text":"old","usage":{"prompt_tokens":3},"finish":"stop"}' | sluice cat -m >"$T/in.mp"
	detokenize -m "$MODEL" <"$T/in.mp" >"$T/out.mp"
	run sluice cat -j <"$T/out.mp"
	[ "$output" = '{"id":"a","tokens":[19556,905],"usage":{"prompt_tokens":3},"finish":"stop","text":"Hello world"}' ]
}

@test "detokenize: bad events are errors for their id and the stream goes on" {
	cat >"$T/in" <<-'EOF'
	{"id":"a","tokens":[19556,99999999]}
	{"id":"b","tokens":"nope"}
	garbage
	{"tokens":[19556]}
	{"id":"c","tokens":[3087],"finish":"stop"}
	EOF
	run --separate-stderr detokenize -m "$MODEL" -o json <"$T/in"
	no_crash && [ "$status" -eq 0 ]
	[ "${lines[0]}" = '{"id":"a","finish":"error","error":{"code":"bad_request","message":"token 99999999 is not in the vocabulary (49152 tokens)"}}' ]
	[[ "${lines[1]}" == '{"id":"b","finish":"error","error":{"code":"bad_request","message":"key \"tokens\" must be'* ]]
	[[ "${lines[2]}" == '{"finish":"error","error":{"code":"bad_request","message":"line 3: invalid JSON'* ]]
	[ "${lines[3]}" = '{"tokens":[19556],"text":"Hello"}' ]
	[ "${lines[4]}" = '{"id":"c","tokens":[3087],"finish":"stop","text":"By"}' ]
}

@test "detokenize: at most -n requests in flight; a finished one frees its place" {
	cat >"$T/in" <<-'EOF'
	{"id":"a","tokens":[19556]}
	{"id":"b","tokens":[3087]}
	{"id":"a","tokens":[905],"finish":"stop"}
	{"id":"b","tokens":[3087]}
	{"id":"b","finish":"stop"}
	EOF
	run detokenize -m "$MODEL" -n 1 -o json <"$T/in"
	no_crash && [ "$status" -eq 0 ]
	[ "${lines[1]}" = '{"id":"b","finish":"error","error":{"code":"overloaded","message":"too many requests in flight (1)"}}' ]
	[ "${lines[2]}" = '{"id":"a","tokens":[905],"finish":"stop","text":" world"}' ]
	[ "${lines[3]}" = '{"id":"b","tokens":[3087],"text":"By"}' ]
}

@test "detokenize: usage, and a missing model" {
	run detokenize -h
	[ "$status" -eq 0 ] && [[ "$output" == usage:*detokenize* ]]
	run detokenize -o yaml
	no_crash && [ "$status" -eq 100 ]
	run detokenize -n 0
	[ "$status" -eq 100 ]
	run --separate-stderr detokenize -m "$T/nope.gguf" </dev/null
	no_crash && [ "$status" -eq 111 ]
	[ "$stderr" = "detokenize: fatal: unable to open $T/nope.gguf: No such file or directory; run: sluice model fetch" ]
}

@test "detokenize: tokenize | detokenize gives the prompts back" {
	printf 'Hello world\n  tabs\tand   spaces  \nCafé 😀 我们 <|im_start|>\n' >"$T/in"
	tokenize -m "$MODEL" <"$T/in" | detokenize -m "$MODEL" --special -o json >"$T/out"
	run sed 's/.*"text"://' "$T/out"
	[ "${lines[0]}" = '"Hello world"}' ]
	[ "${lines[1]}" = '"  tabs\tand   spaces  "}' ]
	[ "${lines[2]}" = '"Café 😀 我们 <|im_start|>"}' ]
	# requests that never finish: -o text ends the last line at the end of the input
	tokenize -m "$MODEL" <"$T/in" | detokenize -m "$MODEL" -o text >"$T/out"
	printf 'Hello world  tabs\tand   spaces  Café 😀 我们 \n' | cmp - "$T/out"
}
