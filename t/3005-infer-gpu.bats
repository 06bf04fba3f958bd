#!/usr/bin/env bats
# infer-gpu, the engine on CUDA (kernels/): without a GPU, a clear error and
# exit 111; with one, every kernel against the CPU's reference (the
# gputest-* programs), the same greedy tokens as infer-cpu on 18 of 20
# prompts of the default model, and a seeded request's tokens the same
# alone and in a batch of 64. The GPU tests say they are skipped, and why,
# on a machine without one. infer-gpu is built only where nvcc is found.

load helpers/lib

setup_file() {
	export PATH=$SLUICE_BIN:$SLUICE_T/helpers:$PATH
	MODEL=$(sluice model path 2>/dev/null) || { sluice model fetch >/dev/null && MODEL=$(sluice model path); }
	export MODEL
}

built() {
	[ -x "$SLUICE_BIN/infer-gpu" ] && [ -x "$SLUICE_T/helpers/gputest-mm" ]
}

# 0 when CUDA sees a device (the kernel test says why not otherwise)
gpu() {
	local out
	out=$("$SLUICE_T/helpers/gputest-mm" 2>&1 | head -1)
	case $out in
	"1..0 # SKIP"*) GPU_WHY=${out#1..0 # SKIP }; return 1 ;;
	esac
	return 0
}

need_gpu() {
	built || skip "infer-gpu is not built (no nvcc)"
	gpu || skip "$GPU_WHY"
}

@test "without a CUDA device infer-gpu says so and exits 111; -h and usage errors as infer-cpu" {
	built || skip "infer-gpu is not built (no nvcc)"
	run infer-gpu -h
	[ "$status" -eq 0 ]
	[[ "$output" == "usage: infer-gpu "* ]]
	run infer-gpu --bogus
	[ "$status" -eq 100 ]
	[[ "$output" == "infer-gpu: usage: infer-gpu "* ]]
	gpu && skip "this machine has a CUDA device"
	run infer-gpu -q -m "$MODEL" </dev/null
	echo "$output"
	[ "$status" -eq 111 ]
	[[ "$output" == "infer-gpu: fatal: unable to start the cuda backend: no CUDA device: "* ]]
}

@test "the kernels against the CPU's reference (gputest-mm, gputest-ops)" {
	need_gpu
	for k in gputest-mm gputest-ops; do
		run "$SLUICE_T/helpers/$k"
		echo "$output"
		[ "$status" -eq 0 ]
		[[ "$output" != *"not ok"* ]]
		[[ "$output" == *"ok 1 "* ]]
	done
}

# the first 20 of t/infer/greedy.jsonl as requests for 32 greedy tokens
greedy20() {
	head -20 "$SLUICE_ROOT/t/infer/greedy.jsonl" | python3 -c '
import json, sys
for line in sys.stdin:
    g = json.loads(line)
    print(json.dumps({"id": g["id"], "tokens": g["tokens"], "max_tokens": 32,
                      "ignore_eos": True, "temperature": 0}))
' | sluice cat -m
}

@test "infer-gpu gives infer-cpu's greedy tokens on at least 18 of 20 prompts (32 tokens)" {
	need_gpu
	scratch
	greedy20 >"$T/in"
	infer-cpu -q -m "$MODEL" <"$T/in" | sluice cat >"$T/cpu"
	infer-gpu -q -m "$MODEL" <"$T/in" | sluice cat >"$T/gpu"
	run python3 - "$T/cpu" "$T/gpu" <<-'PY'
	import json, sys
	def toks(f):
	    return {e["id"]: e["tokens"] for e in map(json.loads, open(f)) if "finish" in e}
	a, b = toks(sys.argv[1]), toks(sys.argv[2])
	same = sum(a[i] == b.get(i) for i in a)
	print("identical %d/%d" % (same, len(a)))
	sys.exit(0 if len(a) == 20 and same >= 18 else 1)
	PY
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "on the GPU a seeded request's tokens are the same alone and in a batch of 64" {
	need_gpu
	scratch
	python3 -c '
import json
print(json.dumps({"id": "x", "prompt": "The history of the printing press", "max_tokens": 48,
                  "temperature": 0.8, "top_p": 0.95, "seed": 7, "ignore_eos": True}))' | sluice cat -m >"$T/alone"
	python3 -c '
import json
for i in range(64):
    r = {"id": "o%d" % i, "prompt": "Request %d: a list of %d things" % (i, i), "max_tokens": 40 + i % 9,
         "temperature": 0.7, "seed": i, "ignore_eos": True}
    if i == 31:
        r = {"id": "x", "prompt": "The history of the printing press", "max_tokens": 48,
             "temperature": 0.8, "top_p": 0.95, "seed": 7, "ignore_eos": True}
    print(json.dumps(r))' | sluice cat -m >"$T/batch"
	infer-gpu -q -m "$MODEL" <"$T/alone" | sluice cat >"$T/a"
	infer-gpu -q -m "$MODEL" <"$T/batch" | sluice cat >"$T/b"
	run python3 -c '
import json, sys
def x(f):
    return [e["tokens"] for e in map(json.loads, open(f)) if e.get("id") == "x" and "finish" in e][0]
a, b = x(sys.argv[1]), x(sys.argv[2])
print(len(a), len(b), a == b)
sys.exit(0 if a == b and len(a) == 48 else 1)' "$T/a" "$T/b"
	echo "$output"
	[ "$status" -eq 0 ]
}
