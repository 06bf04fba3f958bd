#!/usr/bin/env bats
# infer-cpu on the default model (SmolLM2-135M-Instruct Q4_1) against
# llama.cpp's own answers (t/infer/, made by t/infer/mkfixtures.py with
# llama-cpp-python 0.3.36): greedy continuations, first-step logits,
# perplexity; and the engine's promise that a request's tokens do not
# depend on the batch, the prefix cache or preemption.

load helpers/lib

setup_file() {
	export PATH=$SLUICE_BIN:$SLUICE_T/helpers:$PATH
	MODEL=$(sluice model path 2>/dev/null) || { sluice model fetch >/dev/null && MODEL=$(sluice model path); }
	export MODEL
}

# greedy.jsonl -> requests for 32 greedy tokens each, as msgpack
greedy_requests() {
	python3 -c '
import json, sys
for line in open(sys.argv[1]):
    g = json.loads(line)
    print(json.dumps({"id": g["id"], "tokens": g["tokens"], "max_tokens": len(g["greedy"]),
                      "ignore_eos": True, "temperature": 0}))
' "$SLUICE_ROOT/t/infer/greedy.jsonl" | sluice cat -m
}

@test "greedy continuations: all 60 identical to llama.cpp's, 32 tokens each, run as one batch" {
	scratch
	greedy_requests >"$T/in"
	infer-cpu -q -m "$MODEL" <"$T/in" | sluice cat >"$T/out"
	run python3 - "$SLUICE_ROOT/t/infer/greedy.jsonl" "$T/out" <<-'PY'
	import json, sys
	ref = {g["id"]: g["greedy"] for g in map(json.loads, open(sys.argv[1]))}
	got = {e["id"]: e["tokens"] for e in map(json.loads, open(sys.argv[2])) if "finish" in e}
	same = sum(got.get(i) == r for i, r in ref.items())
	for i, r in ref.items():
	    if got.get(i) != r:
	        k = next((j for j, (a, b) in enumerate(zip(got.get(i) or [], r)) if a != b), None)
	        print("differs: %s at token %s" % (i, k))
	print("identical %d/%d" % (same, len(ref)))
	sys.exit(0 if same == len(ref) else 1)
	PY
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "first-step logits equal llama.cpp's bit for bit (6 prompts, 1 to 406 tokens)" {
	python3 -c '
import json, sys
for line in open(sys.argv[1]):
    g = json.loads(line)
    if g.get("logits_file"):
        print(g["logits_file"], " ".join(map(str, g["tokens"])))
' "$SLUICE_ROOT/t/infer/greedy.jsonl" >"$BATS_TEST_TMPDIR/list"
	[ -s "$BATS_TEST_TMPDIR/list" ]
	while read -r f ids; do
		run fwdtest -m "$MODEL" -r "$SLUICE_ROOT/t/infer/$f" -M 0 -A 0 $ids
		echo "$f: $output"
		[ "$status" -eq 0 ]
	done <"$BATS_TEST_TMPDIR/list"
}

@test "perplexity within 0.5% of llama.cpp's on the same tokens (--ppl-score all: every position)" {
	run infer-cpu -m "$MODEL" --perplexity "$SLUICE_ROOT/t/infer/ppl.txt" --ppl-ctx 512 --ppl-score all
	echo "$output"
	[ "$status" -eq 0 ]
	run python3 - "$SLUICE_ROOT/t/infer/ppl.json" "$output" <<-'PY'
	import json, sys
	ref = json.load(open(sys.argv[1]))
	f = sys.argv[2].split()
	ours, ntok = float(f[f.index("perplexity") + 1]), int(f[f.index("tokens") + 1])
	print("ours %.4f llama.cpp %.4f diff %+.3f%% tokens %d/%d" % (ours, ref["ppl"], (ours / ref["ppl"] - 1) * 100, ntok, ref["tokens"]))
	sys.exit(0 if ntok == ref["tokens"] and abs(ours / ref["ppl"] - 1) <= 0.005 else 1)
	PY
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "perplexity by default is llama-perplexity's: the second half of each chunk, its +/- estimate, within 0.5% of its AVX2 and AVX-512 builds" {
	run infer-cpu -m "$MODEL" --perplexity "$SLUICE_ROOT/t/infer/ppl.txt" --ppl-ctx 512
	echo "$output"
	[ "$status" -eq 0 ]
	run python3 - "$output" "$SLUICE_ROOT/t/infer/ppl-half.json" "$SLUICE_ROOT/t/infer/ppl-half-avx512.json" <<-'PY'
	import json, sys
	f = sys.argv[1].split()
	ours, err = float(f[f.index("perplexity") + 1]), float(f[f.index("+/-") + 1])
	scored = int(f[f.index("scored") + 1])
	assert f[f.index("score") + 1] == "half"
	bad = 0
	for path in sys.argv[2:]:
	    ref = json.load(open(path))
	    print("ours %.4f +/- %.5f, llama-perplexity %.4f +/- %.5f (%s), diff %+.3f%%, scored %d/%d"
	          % (ours, err, ref["ppl"], ref["err"], path.rsplit("/", 1)[1], (ours / ref["ppl"] - 1) * 100,
	             scored, ref["scored"]))
	    bad += not (scored == ref["scored"] and abs(ours / ref["ppl"] - 1) <= 0.005
	                and abs(err / ref["err"] - 1) <= 0.01)
	sys.exit(1 if bad else 0)
	PY
	echo "$output"
	[ "$status" -eq 0 ]
}

# 64 seeded sampled requests, prompts from the fixtures, each prompt twice
# (different seeds) so the prefix cache has full blocks to share
seeded_requests() {
	python3 -c '
import json, sys
gs = [json.loads(l) for l in open(sys.argv[1])]
for i in range(64):
    g = gs[(i // 2) % len(gs)]
    print(json.dumps({"id": "r%d" % i, "tokens": g["tokens"], "max_tokens": 24, "ignore_eos": True,
                      "temperature": 0.9, "top_p": 0.95, "top_k": 40, "min_p": 0.02,
                      "repeat_penalty": 1.1, "seed": 1000 + i}))
' "$SLUICE_ROOT/t/infer/greedy.jsonl" | sluice cat -m
}

# tokens by id, one line each, sorted
tokens_by_id() {
	sluice cat | python3 -c '
import json, sys
for e in map(json.loads, sys.stdin):
    if "finish" in e:
        print(e["id"], e["finish"], e["tokens"])
' | sort
}

@test "batch invariance: alone, batched, without prefix cache, under preemption" {
	scratch
	seeded_requests >"$T/in"
	infer-cpu -m "$MODEL" --max-seqs 1 <"$T/in" 2>"$T/err.alone" | tokens_by_id >"$T/alone"
	infer-cpu -m "$MODEL" <"$T/in" 2>"$T/err.batch" | tokens_by_id >"$T/batch"
	infer-cpu -m "$MODEL" --no-prefix-cache <"$T/in" 2>"$T/err.nocache" | tokens_by_id >"$T/nocache"
	infer-cpu -m "$MODEL" --kv-mem 15M <"$T/in" 2>"$T/err.preempt" | tokens_by_id >"$T/preempt"
	cat "$T"/err.*
	[ "$(wc -l <"$T/alone")" -eq 64 ]
	! grep -v ' length \[' "$T/alone"
	diff "$T/alone" "$T/batch"
	diff "$T/alone" "$T/nocache"
	diff "$T/alone" "$T/preempt"
	# the cache did share blocks, and preemption did happen
	grep -Eq 'prefix cache [1-9][0-9]*/' "$T/err.batch"
	grep -Eq 'prefix cache 0/0 blocks' "$T/err.nocache"
	grep -Eq ' [1-9][0-9]* preemptions' "$T/err.preempt"
}

@test "a seeded request: the same alone as in a batch of 64 (from separate runs)" {
	scratch
	seeded_requests >"$T/in"
	sluice cat <"$T/in" | sed -n 7p | sluice cat -m >"$T/one"
	infer-cpu -q -m "$MODEL" <"$T/one" | tokens_by_id >"$T/alone"
	infer-cpu -q -m "$MODEL" <"$T/in" | tokens_by_id | grep '^r6 ' >"$T/batch"
	diff "$T/alone" "$T/batch"
}

@test "usage.cached_tokens counts the prompt tokens found in the prefix cache" {
	scratch
	python3 -c '
import json
p = list(range(1000, 1100))
print(json.dumps({"id": "a", "tokens": p, "max_tokens": 1}))
print(json.dumps({"id": "b", "tokens": p + [7, 8], "max_tokens": 1}))
' | sluice cat -m >"$T/in"
	run sh -c "infer-cpu -q -m $MODEL --max-seqs 1 <$T/in | sluice cat"
	echo "$output"
	echo "$output" | grep -q '"id":"a".*"cached_tokens":0'
	echo "$output" | grep -q '"id":"b".*"cached_tokens":96'
}

@test "prompt and messages without tokens are tokenized by the engine as tokenize does" {
	scratch
	printf '%s\n' '{"id":"p","prompt":"The capital of France is","max_tokens":8}' \
		'{"id":"m","messages":[{"role":"user","content":"Say hi."}],"max_tokens":8}' >"$T/req.jsonl"
	sluice cat -m <"$T/req.jsonl" | infer-cpu -q -m "$MODEL" | tokens_by_id >"$T/direct"
	tokenize -m "$MODEL" -i json <"$T/req.jsonl" | infer-cpu -q -m "$MODEL" | tokens_by_id >"$T/piped"
	cat "$T/direct"
	diff "$T/direct" "$T/piped"
}

@test "stop strings end the answer before the token they begin in" {
	scratch
	printf '%s\n' '{"id":"s","prompt":"The capital of France is","max_tokens":30,"stop":[".\n"]}' \
		| sluice cat -m | infer-cpu -q --text -m "$MODEL" | sluice cat >"$T/out"
	cat "$T/out"
	grep -q '"finish":"stop"' "$T/out"
	grep -q '"text":" Paris"' "$T/out"
}
