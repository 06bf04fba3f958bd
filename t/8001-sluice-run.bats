#!/usr/bin/env bats
# sluice run: the offline job in one command. Its answers are the hand-built
# pipeline's (tiny model, 500 prompts; the real model, 20), whatever the
# input kind; results keep the request's own keys; progress on a terminal
# only; a stage that fails or is killed is named, with every request still
# given a result; a bad line is an error for that line alone.

load helpers/lib
bats_require_minimum_version 1.5.0

setup_file() {
	export PATH=$SLUICE_BIN:$SLUICE_T/helpers:$PATH
	cd "$BATS_FILE_TMPDIR" &&
	sluice model synth --dim 256 --layers 2 --heads 4 --kv-heads 2 --ff 512 --ctx 2048 --seed 7 \
		--type q8_0 -o tiny.gguf >/dev/null 2>&1 &&
	seq 500 | sed 's/.*/prompt & about pipes/' >p500.txt
}

TINY=$BATS_FILE_TMPDIR/tiny.gguf
P500=$BATS_FILE_TMPDIR/p500.txt

# same A B: every id of results A (sluice run's JSON lines) has the text the
# events B (detokenize -o json, any order) give it, and they have the same ids
same() {
	python3 - "$1" "$2" <<'PY'
import json, sys
a, b = {}, {}
for line in open(sys.argv[1]):
    e = json.loads(line)
    assert e["id"] not in a, e
    a[e["id"]] = e["text"]
for line in open(sys.argv[2]):
    e = json.loads(line)
    b[e["id"]] = b.get(e["id"], "") + e.get("text", "")
assert len(a) == len(b) and a == b, (len(a), len(b), [k for k in b if a.get(k) != b[k]][:5])
print(len(a), "same")
PY
}

# by_hand MODEL N: the hand-built pipeline on text lines, N tokens, greedy
by_hand() {
	tokenize -m "$1" | infer-cpu -q -m "$1" -t 1 --max-tokens "$2" --temperature 0 | detokenize -m "$1" -o json
}

@test "500 prompts: the answers of tokenize | infer-cpu | detokenize" {
	scratch
	run sh -c "sluice run -m '$TINY' -t 1 -n 8 --temperature 0 '$P500' >'$T/a' 2>'$T/err'"
	[ "$status" -eq 0 ]
	[ ! -s "$T/err" ]       # not a terminal: no progress line
	by_hand "$TINY" 8 <"$P500" >"$T/b"
	same "$T/a" "$T/b"
	[ "$(wc -l <"$T/a")" -eq 500 ]
}

@test "20 prompts on the real model: the hand-built pipeline's answers" {
	need_model || skip "no default model (sluice model fetch failed)"
	scratch
	head -20 "$P500" >"$T/p"
	run sh -c "sluice run -t 2 -n 12 --temperature 0 '$T/p' >'$T/a'"   # the default model
	[ "$status" -eq 0 ]
	tokenize -m "$MODEL" <"$T/p" | infer-cpu -q -m "$MODEL" -t 2 --max-tokens 12 --temperature 0 |
		detokenize -m "$MODEL" -o json >"$T/b"
	same "$T/a" "$T/b"
}

@test "on a terminal: progress redrawn on stderr, results still right" {
	scratch
	head -200 "$P500" >"$T/p"
	script -qec "sluice run -m '$TINY' -t 1 -n 8 --temperature 0 -o json '$T/p' >'$T/a'" /dev/null >"$T/term"
	grep -q '200/200 requests' "$T/term"
	grep -q $'\r' "$T/term"
	by_hand "$TINY" 8 <"$T/p" >"$T/b"
	same "$T/a" "$T/b"
	# stdout a terminal too: text, the prompts among it
	script -qec "sluice run -m '$TINY' -t 1 -n 4 --no-progress '$T/p'" /dev/null >"$T/term2"
	grep -q '^>>> prompt 17 about pipes' "$T/term2"
	run grep -c 'requests, ' "$T/term2"
	[ "$output" = 0 ]
	# not a terminal, unless asked
	sluice run -m "$TINY" -n 2 "$T/p" 2>"$T/err" >/dev/null
	[ ! -s "$T/err" ]
	sluice run -m "$TINY" -n 2 --progress "$T/p" 2>"$T/err" >/dev/null
	grep -q '^sluice: 200/200 requests, 400 tokens' "$T/err"
}

@test "text, JSON lines (sniffed past blank space) and msgpack give the same answers" {
	scratch
	printf 'one fish\n\n two fish\r\n{"red": 1}\n' >"$T/in.txt"
	sluice run -m "$TINY" -n 6 --temperature 0 "$T/in.txt" >"$T/text"
	python3 -c 'import json, sys
print("   ")
for i, p in ((1, "one fish"), (3, " two fish"), (4, "{\"red\": 1}")):
    print("  " + json.dumps({"id": str(i), "prompt": p, "max_tokens": 6, "temperature": 0}))' >"$T/in.jsonl"
	sluice run -m "$TINY" <"$T/in.jsonl" >"$T/json"
	sluice cat -m <"$T/in.jsonl" | sluice run -m "$TINY" >"$T/msgpack"
	sluice cat -m <"$T/in.jsonl" | sluice run -m "$TINY" -i msgpack >"$T/msgpack2"
	[ "$(wc -l <"$T/text")" -eq 3 ]
	python3 - "$T/text" "$T/json" "$T/msgpack" "$T/msgpack2" <<'PY'
import json, sys
sets = [sorted((e["id"], e["text"], e["finish"]) for e in map(json.loads, open(f))) for f in sys.argv[1:]]
assert all(s == sets[0] for s in sets), sets
assert [s[0] for s in sets[0]] == ["1", "3", "4"], sets[0]
PY
	# -i text: a JSON-looking line is a prompt like any other
	printf '{"id": "x"}\n' | sluice run -m "$TINY" -n 2 -i text >"$T/forced"
	grep -q '"id":"1","finish":"length"' "$T/forced"
	# --chat: the line is one user message, as the same request in JSON
	echo 'hello there' | sluice run -m "$TINY" -n 6 --temperature 0 --chat >"$T/chat"
	echo '{"id": "1", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 6, "temperature": 0}' |
		sluice run -m "$TINY" >"$T/chat2"
	diff "$T/chat" "$T/chat2"
}

@test "JSON results keep the request's own keys; text results show prompt then answer" {
	scratch
	python3 -c 'import json
for k in range(30):
    print(json.dumps({"id": "q%d" % k, "prompt": "row %d" % k, "row": k, "tag": {"a": [k]}, "max_tokens": 5, "temperature": 0}))' >"$T/in"
	sluice run -m "$TINY" -o json "$T/in" >"$T/json"
	sluice run -m "$TINY" -o text "$T/in" >"$T/text"
	python3 - "$T/json" "$T/text" <<'PY'
import json, sys
res = {}
for line in open(sys.argv[1]):
    e = json.loads(line)
    assert set(e) == {"id", "row", "tag", "finish", "usage", "text"}, e
    k = int(e["id"][1:])
    assert e["row"] == k and e["tag"] == {"a": [k]} and e["usage"]["completion_tokens"] == 5, e
    res["row %d" % k] = e["text"]
# ">>> PROMPT\nANSWER\n\n" per request
blocks = open(sys.argv[2]).read().split(">>> ")[1:]
assert len(blocks) == 30, len(blocks)
for b in blocks:
    prompt, answer = b.split("\n", 1)
    assert b.endswith("\n\n"), repr(b)
    assert res[prompt].rstrip("\n") == answer.rstrip("\n"), (prompt, answer, res[prompt])
PY
}

@test "a bad model: nonzero, the stage named" {
	scratch
	run sh -c "echo hi | sluice run -m '$T/nope.gguf' 2>'$T/err'"
	no_crash
	[ "$status" -eq 111 ]
	grep -q "^tokenize: fatal: unable to open $T/nope.gguf" "$T/err"
	grep -q '^sluice: fatal: tokenize exited 111$' "$T/err"
	# no infer-gpu anywhere: sluice says so
	mkdir "$T/bin"
	cp "$SLUICE_BIN/sluice" "$T/bin/"
	ln -s "$SLUICE_BIN/tokenize" "$SLUICE_BIN/detokenize" "$SLUICE_BIN/infer-cpu" "$T/bin/"
	run -127 env PATH=/usr/bin:/bin sh -c "echo hi | '$T/bin/sluice' run -m '$TINY' --device gpu"
	[ "$status" -eq 127 ]
	[[ $output == *"no infer-gpu program found"* ]]
	# an infer-gpu built here (nvcc found) on a machine without a GPU: it says why
	if [ -x "$SLUICE_BIN/infer-gpu" ] && [ ! -e /dev/nvidiactl ]; then
		run sh -c "echo hi | sluice run -m '$TINY' --device gpu"
		[ "$status" -eq 111 ]
		[[ $output == *"infer-gpu: fatal: unable to start the cuda backend: no CUDA device"* ]]
	fi
	run sluice run -i yaml
	[ "$status" -eq 100 ]
	run sluice run -h
	[ "$status" -eq 0 ]
}

@test "an infer-gpu beside sluice is the engine of --device gpu" {
	scratch
	mkdir "$T/bin"
	cp "$SLUICE_BIN/sluice" "$T/bin/"
	ln -s "$SLUICE_BIN/tokenize" "$SLUICE_BIN/detokenize" "$T/bin/"
	printf '#!/bin/sh\necho gpu >>"%s"\nexec "%s" "$@"\n' "$T/ran" "$SLUICE_BIN/infer-cpu" >"$T/bin/infer-gpu"
	chmod +x "$T/bin/infer-gpu"
	head -50 "$P500" >"$T/p"
	"$T/bin/sluice" run -m "$TINY" -t 1 -n 8 --temperature 0 --device gpu "$T/p" >"$T/a"
	[ "$(cat "$T/ran")" = gpu ]
	by_hand "$TINY" 8 <"$T/p" >"$T/b"
	same "$T/a" "$T/b"
}

@test "the engine killed mid-run: status 111, it is named, every request has a result" {
	scratch
	python3 -c 'import json
for k in range(300):
    n = 2 if k % 2 else 400     # the short ones are answered at once
    print(json.dumps({"id": "k%d" % k, "prompt": "job %d" % k, "max_tokens": n, "ignore_eos": True}))' >"$T/in"
	sluice run -m "$TINY" -t 1 "$T/in" >"$T/out" 2>"$T/err" &
	pid=$!
	for i in $(seq 200); do [ -s "$T/out" ] && break; sleep 0.05; done
	eng=$(pgrep -P "$pid" -x infer-cpu)
	[ -n "$eng" ]
	kill -9 "$eng"
	st=0
	wait "$pid" || st=$?
	[ "$st" -eq 111 ]
	grep -q '^sluice: fatal: infer-cpu was killed by signal 9 (Killed)$' "$T/err"
	python3 - "$T/out" <<'PY'
import json, sys
ev = [json.loads(line) for line in open(sys.argv[1])]
ids = [e["id"] for e in ev]
assert sorted(ids) == sorted("k%d" % k for k in range(300)), len(ids)
lost = [e for e in ev if e["finish"] == "error"]
assert lost and all(e["error"]["code"] == "upstream_lost" and "infer-cpu was killed" in e["error"]["message"] for e in lost)
assert any(e["finish"] == "length" for e in ev)
PY
}

@test "a bad line is an error for that line; the others are answered" {
	scratch
	printf '%s\n' '{"id": "a", "prompt": "fine", "max_tokens": 3}' '{"id": "b", "prompt": ' \
		'{"id": "c", "max_tokens": 3}' '[1, 2]' '{"id": "d", "prompt": "also fine", "max_tokens": 3}' \
		'{"id": 7, "prompt": "number id"}' '{"prompt": "no id", "max_tokens": 3}' >"$T/in"
	run sh -c "sluice run -m '$TINY' '$T/in' >'$T/out' 2>'$T/err'"
	no_crash
	[ "$status" -eq 0 ]
	grep -q '^sluice: warning: 4 of 7 requests failed$' "$T/err"
	python3 - "$T/out" <<'PY'
import json, sys
ev = [json.loads(line) for line in open(sys.argv[1])]
assert len(ev) == 7, ev
ok = sorted(e["id"] for e in ev if e["finish"] == "length")
assert ok == ["7", "a", "d"], ok            # the one without an id is its line's number
bad = [e for e in ev if e["finish"] == "error"]
msgs = sorted(e["error"]["message"] for e in bad)
assert any(m.startswith("line 2: invalid JSON") for m in msgs), msgs
assert "line 4: not a JSON object" in msgs, msgs
assert any(e.get("id") == "c" and "no prompt" in e["error"]["message"] for e in bad), bad
assert any(e.get("id") == 7 and "must be a string" in e["error"]["message"] for e in bad), bad
PY
}

@test "man/man1/sluice-run.1 describes every option sluice run -h lists" {
	run sluice run -h
	[ "$status" -eq 0 ]
	opts=$(echo "$output" | grep -oE -- '--?[a-z][a-z-]*' | sort -u)
	[ -n "$opts" ]
	for o in $opts; do
		grep -qF -- "$(echo "$o" | sed 's/-/\\-/g')" "$SLUICE_ROOT/man/man1/sluice-run.1" ||
			{ echo "sluice-run(1) does not mention $o"; false; }
	done
}
