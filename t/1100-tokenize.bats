#!/usr/bin/env bats
# tokenize: text lines, JSON lines and msgpack in; requests with the ids
# llama.cpp gives (SmolLM2) out, other keys passed through; chat messages
# through the model's template; counts; errors per message; usage and
# missing-model errors. Expected ids come from llama-cpp-python 0.3.36.

load helpers/lib
bats_require_minimum_version 1.5.0

setup() {
	need_model
	scratch
}

# the SmolLM2 chat prompt for [{user: Hi}]: the template's default system prompt first
CHAT_HI='[1,9690,198,2683,359,253,5356,5646,11173,3365,3511,308,34519,28,7018,411,407,19712,8182,2,198,1,4093,198,26843,2,198,1,520,9531,198]'

@test "tokenize: text lines get ids by line number, special tokens matched" {
	printf 'Hello world\nhello <|im_start|>\n\nx\377\n' >"$T/in"
	run tokenize -m "$MODEL" -o json <"$T/in"
	no_crash && [ "$status" -eq 0 ]
	[ "${lines[0]}" = '{"id":"1","prompt":"Hello world","tokens":[19556,905]}' ]
	[ "${lines[1]}" = '{"id":"2","prompt":"hello <|im_start|>","tokens":[28120,216,1]}' ]
	[ "${lines[2]}" = '{"id":"3","prompt":"","tokens":[]}' ]
	# invalid UTF-8 is tokenized as llama.cpp does: the byte becomes U+FFFD's token
	[[ "${lines[3]}" == *'"tokens":[104,24211]}' ]]
	[ "${#lines[@]}" -eq 4 ]
}

@test "tokenize: a last line without newline counts; -i text takes a leading {" {
	printf '{"id": 1}' >"$T/in"
	run tokenize -m "$MODEL" -i text -o json <"$T/in"
	no_crash && [ "$status" -eq 0 ]
	[ "$output" = '{"id":"1","prompt":"{\"id\": 1}","tokens":[39428,311,1799,216,33,109]}' ]
}

@test "tokenize: --no-special treats markers as text" {
	run tokenize -m "$MODEL" -o json --no-special <<<'hello <|im_start|>'
	no_crash && [ "$status" -eq 0 ]
	[ "$output" = '{"id":"1","prompt":"hello <|im_start|>","tokens":[28120,2067,108,306,79,3738,108,46]}' ]
}

@test "tokenize: JSON requests keep every other key, tokens pass through, errors go on" {
	cat >"$T/in" <<-'EOF'
	{"id":"a","prompt":"Hello world","row":17,"max_tokens":5}

	{"id":"b","tokens":[1,2,3],"x":[true,null]}
	{"id":"c","temperature":0.5}
	not json
	{"id":"d","prompt":7}
	{"prompt":"no id"}
	{"id":"e","prompt":"Bye"}
	EOF
	run --separate-stderr tokenize -m "$MODEL" -o json <"$T/in"
	no_crash && [ "$status" -eq 0 ]
	[ "${lines[0]}" = '{"id":"a","prompt":"Hello world","row":17,"max_tokens":5,"tokens":[19556,905]}' ]
	[ "${lines[1]}" = '{"id":"b","tokens":[1,2,3],"x":[true,null]}' ]
	[ "${lines[2]}" = '{"id":"c","finish":"error","error":{"code":"bad_request","message":"request has no prompt, messages or tokens"}}' ]
	[[ "${lines[3]}" == '{"finish":"error","error":{"code":"bad_request","message":"line 5: invalid JSON'* ]]
	[[ "${lines[4]}" == '{"id":"d","finish":"error","error":{"code":"bad_request","message":"key \"prompt\" must be'* ]]
	[[ "${lines[5]}" == '{"finish":"error","error":{"code":"bad_request","message":"key \"id\" is missing"}}' ]]
	[ "${lines[6]}" = '{"id":"e","prompt":"Bye","tokens":[3087,85]}' ]
	[ "${#lines[@]}" -eq 7 ]
}

@test "tokenize: msgpack in (detected), msgpack out by default, a request that has tokens is copied byte for byte" {
	printf '{"id":"b","tokens":[1,2,3],"x":{"y":1.5}}\n' | sluice cat -m >"$T/b.mp"
	printf '{"id":"a","prompt":"Hi","u":"\\u00e9"}\n' | sluice cat -m >"$T/a.mp"
	cat "$T/a.mp" "$T/b.mp" >"$T/in.mp"
	run tokenize -m "$MODEL" <"$T/in.mp"
	no_crash && [ "$status" -eq 0 ]
	tokenize -m "$MODEL" <"$T/in.mp" >"$T/out.mp"
	sluice cat -j <"$T/out.mp" >"$T/out.json"
	[ "$(sed -n 1p "$T/out.json")" = '{"id":"a","prompt":"Hi","u":"é","tokens":[26843]}' ]
	tail -c "$(wc -c <"$T/b.mp")" "$T/out.mp" | cmp - "$T/b.mp"
	# -i msgpack forces the same
	tokenize -m "$MODEL" -i msgpack <"$T/in.mp" | cmp - "$T/out.mp"
}

@test "tokenize: chat messages get the model's template (SmolLM2: default system prompt) and the generation prompt" {
	run tokenize -m "$MODEL" -o json <<<'{"id":"c","messages":[{"role":"user","content":"Hi"}],"k":1}'
	no_crash && [ "$status" -eq 0 ]
	[ "$output" = '{"id":"c","messages":[{"role":"user","content":"Hi"}],"k":1,"tokens":'"$CHAT_HI"'}' ]
	run tokenize -m "$MODEL" -o json <<<'{"id":"s","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}'
	no_crash && [ "$status" -eq 0 ]
	[[ "$output" == *'"tokens":[1,9690,198,6077,5453,30,2,198,1,4093,198,26843,2,198,1,520,9531,198]}' ]]
	# a bad messages value is an error for that request only
	run tokenize -m "$MODEL" -o json <<<'{"id":"x","messages":[{"role":"user"}]}
{"id":"y","prompt":"Hi"}'
	no_crash && [ "$status" -eq 0 ]
	[[ "${lines[0]}" == '{"id":"x","finish":"error","error":{"code":"bad_request"'* ]]
	[ "${lines[1]}" = '{"id":"y","prompt":"Hi","tokens":[26843]}' ]
}

@test "tokenize: --chat-template overrides the model's, an unknown name is a usage error naming the known ones" {
	printf '%s\n' '{"id":"c","messages":[{"role":"user","content":"Hi"}]}' >"$T/m"
	run tokenize -m "$MODEL" -o json --chat-template chatml <"$T/m"
	no_crash && [ "$status" -eq 0 ]
	# plain chatml has no default system prompt
	[[ "$output" == *'"tokens":[1,4093,198,26843,2,198,1,520,9531,198]}' ]]
	run --separate-stderr tokenize -m "$MODEL" --chat-template nosuch <"$T/m"
	no_crash && [ "$status" -eq 100 ]
	[ -z "$output" ]
	[[ "$stderr" == *'unknown chat template "nosuch"'*chatml*llama3* ]]
}

@test "tokenize: -c prints ID<TAB>COUNT, or prompt_tokens with -o" {
	printf 'Hello world\n\nhello <|im_start|>\n' >"$T/in"
	run tokenize -m "$MODEL" -c <"$T/in"
	no_crash && [ "$status" -eq 0 ]
	[ "$output" = "$(printf '1\t2\n2\t0\n3\t3')" ]
	run tokenize -m "$MODEL" -c --no-special <"$T/in"
	[ "${lines[2]}" = "$(printf '3\t8')" ]
	run tokenize -m "$MODEL" -c -o json <<<'{"id":"a","prompt":"Hello world","prompt_tokens":99}
{"id":"b","tokens":[5,6,7]}
{"id":"c"}'
	no_crash && [ "$status" -eq 0 ]
	[ "${lines[0]}" = '{"id":"a","prompt":"Hello world","prompt_tokens":2}' ]
	[ "${lines[1]}" = '{"id":"b","tokens":[5,6,7],"prompt_tokens":3}' ]
	[[ "${lines[2]}" == '{"id":"c","finish":"error"'* ]]
	run tokenize -m "$MODEL" -c <<<'{"id":"a","prompt":"Hello world"}
{"id":"c"}'
	[ "${lines[0]}" = "$(printf 'a\t2')" ]
	[ "${lines[1]}" = "$(printf 'c\terror: request has no prompt, messages or tokens')" ]
}

@test "tokenize: the default model is \$SLUICE_MODEL; a missing model exits 111 saying how to get one" {
	SLUICE_MODEL=$MODEL run tokenize -c <<<'Hi'
	no_crash && [ "$status" -eq 0 ] && [ "$output" = "$(printf '1\t1')" ]
	SLUICE_MODEL=$T/nope.gguf run --separate-stderr tokenize <<<'Hi'
	no_crash && [ "$status" -eq 111 ]
	[ "$stderr" = "tokenize: fatal: unable to open $T/nope.gguf: No such file or directory; run: sluice model fetch" ]
	run tokenize -m "$T/nope.gguf" <<<'Hi'
	[ "$status" -eq 111 ]
	printf 'GGUF\003\000' >"$T/bad.gguf"
	run --separate-stderr tokenize -m "$T/bad.gguf" <<<'Hi'
	no_crash && [ "$status" -eq 111 ]
	[[ "$stderr" == "tokenize: fatal: unable to read $T/bad.gguf: "* ]]
}

@test "tokenize: usage" {
	run tokenize -h
	[ "$status" -eq 0 ] && [[ "$output" == usage:*tokenize* ]]
	run tokenize -x
	no_crash && [ "$status" -eq 100 ]
	run tokenize -i yaml
	[ "$status" -eq 100 ]
	run tokenize -o text
	[ "$status" -eq 100 ]
	run tokenize extra
	[ "$status" -eq 100 ]
}

@test "tokenize: answers each request as it comes (flushes when the input would block)" {
	mkfifo "$T/in"
	tokenize -m "$MODEL" -o json <"$T/in" >"$T/out" &
	exec 7>"$T/in"
	echo '{"id":"a","prompt":"Hi"}' >&7
	for i in $(seq 100); do [ -s "$T/out" ] && break; sleep 0.05; done
	[ "$(cat "$T/out")" = '{"id":"a","prompt":"Hi","tokens":[26843]}' ]
	exec 7>&-
	wait
}
