#!/usr/bin/env bats
# quantize: types, llama.cpp's q4_k_m mix (plans checked against llama.cpp's
# own choices in t/quantize/*.plan, made by t/quantize/mkfixtures.py), the
# report, --keep, metadata, threads, requantizing, the default model.

load helpers/lib

# synth ARGS...: a small f32 llama model in $T/s.gguf
synth() {
	sluice model synth -o "$T/s.gguf" --type f32 --dim 256 --ff 512 --layers 2 "$@" >/dev/null
}

# tensor_sha FILE NAME: sha256 of one tensor's bytes
tensor_sha() {
	local base off n
	base=$(sluice gguf info "$1" | awk -F'\t' '$1 == "data_offset" { print $2 }')
	read -r off n < <(sluice gguf tensors "$1" | awk -F'\t' -v t="$2" '$1 == t { print $4, $5 }')
	dd if="$1" iflag=skip_bytes,count_bytes skip=$((base + off)) count="$n" status=none | sha256sum
}

# types FILE: name<TAB>type, sorted
types() {
	sluice gguf tensors "$1" | cut -f1,2 | sort
}

@test "usage errors: no type, both, unknown type or recipe, bad -j" {
	scratch
	run quantize
	[ "$status" -eq 100 ]
	run quantize -h
	[ "$status" -eq 0 ]
	[[ "$output" == usage:* ]]
	run quantize in.gguf out.gguf
	[ "$status" -eq 100 ]
	[[ "$output" == *"q4_k_m"* ]]
	run quantize -t q8_0 -r q4_k_m in.gguf out.gguf
	[ "$status" -eq 100 ]
	run quantize -t q3_k in.gguf out.gguf
	[ "$status" -eq 100 ]
	[[ "$output" == *'unknown type "q3_k"; known: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q6_k'* ]]
	run quantize -t q8_1 in.gguf out.gguf
	[ "$status" -eq 100 ]
	run quantize -r q5_k_m in.gguf out.gguf
	[ "$status" -eq 100 ]
	[[ "$output" == *'unknown recipe "q5_k_m"; known: '*q4_k_m* ]]
	run quantize -t q8_0 -j 0 in.gguf out.gguf
	[ "$status" -eq 100 ]
	run quantize -t q8_0 in.gguf
	[ "$status" -eq 100 ]
}

@test "every type on a synthetic f32 model: smaller, readable, error within bounds" {
	scratch
	synth
	# bound on RMSE / RMS of the weights (uniform random weights), per type
	for tb in f16:0.001 bf16:0.005 q8_0:0.01 q6_k:0.03 q5_0:0.05 q5_1:0.05 q4_0:0.10 q4_1:0.10 q4_k:0.10; do
		t=${tb%%:*} b=${tb#*:}
		run quantize -t "$t" --report "$T/$t.json" "$T/s.gguf" "$T/$t.gguf"
		no_crash
		[ "$status" -eq 0 ]
		T_UP=$(echo "$t" | tr a-z A-Z)
		sluice gguf info "$T/$t.gguf" >/dev/null
		[ "$(sluice gguf tensors "$T/$t.gguf" | awk -F'\t' '$1 ~ /attn_q|ffn_down|token_embd/ { print $2 }' | sort -u)" = "$T_UP" ]
		[ "$(sluice gguf tensors "$T/$t.gguf" | awk -F'\t' '$1 ~ /norm/ { print $2 }' | sort -u)" = F32 ]
		python3 - "$T/$t.json" "$b" <<'PY'
import json, math, sys
r = json.load(open(sys.argv[1])); bound = float(sys.argv[2])
tot = r["totals"]
assert tot["bytes_after"] < tot["bytes_before"], tot
assert abs(tot["ratio"] - tot["bytes_after"] / tot["bytes_before"]) < 1e-6
assert tot["tensors"] == len(r["tensors"]) == 20
for t in r["tensors"]:
    if t["copied"]:
        assert t["rmse"] == 0 and t["from"] == t["to"], t
        continue
    assert math.isfinite(t["rmse"]) and t["rmse"] > 0, t
    assert t["rmse"] / t["rms"] < bound, (t, bound)
    assert t["max_abs_error"] >= t["rmse"], t
    assert not t["fallback"], t
PY
	done
}

@test "q4_k_m plans equal llama.cpp's (default model, synthetic 12-layer untied model)" {
	need_model
	scratch
	sluice model synth -o "$T/s12.gguf" --type f32 --dim 256 --ff 512 --layers 12 \
		--heads 4 --kv-heads 2 --seed 7 --untied >/dev/null
	quantize -n -r q4_k_m "$MODEL" | cut -f1,3 | sort > "$T/default.plan"
	diff "$T/default.plan" "$SLUICE_ROOT/t/quantize/default.q4_k_m.plan"
	quantize -n -r q4_k_m "$T/s12.gguf" | cut -f1,3 | sort > "$T/synth.plan"
	diff "$T/synth.plan" "$SLUICE_ROOT/t/quantize/synth.q4_k_m.plan"
	# and the file written follows the plan
	quantize -q -r q4_k_m "$T/s12.gguf" "$T/s12.q4_k_m.gguf"
	types "$T/s12.q4_k_m.gguf" | diff - "$SLUICE_ROOT/t/quantize/synth.q4_k_m.plan"
	sluice gguf kv "$T/s12.q4_k_m.gguf" | grep -qx $'general.file_type\tu32\t15'
}

@test "metadata copied; file type and quantization version set; alignment kept" {
	scratch
	synth
	quantize -q -t q4_0 "$T/s.gguf" "$T/o.gguf"
	skip_keys='^general\.(file_type|quantization_version)\t'
	diff <(sluice gguf kv "$T/s.gguf" | grep -Pv "$skip_keys") <(sluice gguf kv "$T/o.gguf" | grep -Pv "$skip_keys")
	sluice gguf kv "$T/o.gguf" | grep -qx $'general.file_type\tu32\t2'
	sluice gguf kv "$T/o.gguf" | grep -qx $'general.quantization_version\tu32\t2'
	[ "$(sluice gguf info "$T/o.gguf" | grep '^alignment')" = "$(sluice gguf info "$T/s.gguf" | grep '^alignment')" ]
}

@test "--keep leaves matching tensors byte-identical; -j 1 and -j 2 give the same file" {
	scratch
	synth
	quantize -q -t q4_k --keep 'blk.1.*' --keep token_embd.weight "$T/s.gguf" "$T/k.gguf"
	for n in blk.1.attn_q.weight blk.1.ffn_down.weight token_embd.weight; do
		[ "$(tensor_sha "$T/s.gguf" "$n")" = "$(tensor_sha "$T/k.gguf" "$n")" ]
	done
	sluice gguf tensors "$T/k.gguf" | grep -q $'^blk.0.attn_q.weight\tQ4_K'
	sluice gguf tensors "$T/k.gguf" | grep -q $'^blk.1.attn_q.weight\tF32'
	quantize -q -j 1 -t q4_k "$T/s.gguf" "$T/j1.gguf"
	quantize -q -j 2 -t q4_k "$T/s.gguf" "$T/j2.gguf"
	quantize -q -j 3 -t q4_k "$T/s.gguf" "$T/j3.gguf"
	cmp "$T/j1.gguf" "$T/j2.gguf"
	cmp "$T/j1.gguf" "$T/j3.gguf"
}

@test "requantizing says so once; same type is copied, not requantized" {
	scratch
	synth
	quantize -q -t q8_0 "$T/s.gguf" "$T/q8.gguf"
	run quantize -t q4_0 "$T/q8.gguf" "$T/q4.gguf"
	[ "$status" -eq 0 ]
	[ "$(grep -c 'requantizing' <<<"$output")" -eq 1 ]
	[[ "$output" == *"quantize: warning: requantizing from Q8_0: error adds up"* ]]
	[[ "$output" == *"blk.0.attn_q.weight Q8_0 -> Q4_0"* ]]
	run quantize -t q8_0 "$T/q8.gguf" "$T/q8b.gguf"
	[ "$status" -eq 0 ]
	[[ "$output" != *requantizing* ]]
	cmp "$T/q8.gguf" "$T/q8b.gguf"
}

@test "rows that do not fit a block fall back: Q4_K -> Q5_0, Q6_K -> Q8_0, else F16" {
	scratch
	sluice model synth -o "$T/a.gguf" --type f32 --dim 288 --ff 512 --heads 4 --layers 1 >/dev/null
	run quantize -t q4_k --report "$T/a.json" "$T/a.gguf" "$T/a4.gguf"
	[ "$status" -eq 0 ]
	[[ "$output" == *"blk.0.attn_q.weight F32 -> Q5_0 288x288"*fallback* ]]
	sluice gguf tensors "$T/a4.gguf" | grep -q $'^blk.0.ffn_down.weight\tQ4_K\t512x288'
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); f={t["name"]:t["fallback"] for t in r["tensors"]}; assert f["blk.0.attn_q.weight"] and not f["blk.0.ffn_down.weight"]' "$T/a.json"
	quantize -q -t q6_k "$T/a.gguf" "$T/a6.gguf"
	sluice gguf tensors "$T/a6.gguf" | grep -q $'^blk.0.attn_q.weight\tQ8_0'
	sluice model synth -o "$T/b.gguf" --type f32 --dim 40 --ff 100 --heads 4 --layers 1 >/dev/null
	run quantize -t q4_0 "$T/b.gguf" "$T/b4.gguf"
	[ "$status" -eq 0 ]
	sluice gguf tensors "$T/b4.gguf" | grep -q $'^blk.0.attn_q.weight\tF16\t40x40'
	sluice gguf tensors "$T/b4.gguf" | grep -q $'^blk.0.ffn_down.weight\tF16\t100x40'
}

@test "default model to Q8_0 and to Q4_K: readable, tokenizes, sizes and errors sane" {
	need_model
	scratch
	run quantize -t q8_0 --report "$T/q8.json" "$MODEL" "$T/q8.gguf"
	[ "$status" -eq 0 ]
	[[ "$output" == *"requantizing from Q4_1"* ]]
	run quantize -t q4_k --report "$T/q4k.json" "$MODEL" "$T/q4k.gguf"
	[ "$status" -eq 0 ]
	for f in q8 q4k; do
		sluice gguf info "$T/$f.gguf" | grep -qx $'tensors\t272'
		[ "$(echo 'Hello, world' | tokenize -m "$T/$f.gguf" -o json)" = "$(echo 'Hello, world' | tokenize -m "$MODEL" -o json)" ]
	done
	sluice gguf kv "$T/q8.gguf" | grep -qx $'general.file_type\tu32\t7'
	sluice gguf kv "$T/q4k.gguf" | grep -qx $'general.file_type\tu32\t14'
	# Q4_K: ne[0] 576 falls back to Q5_0, 1536 (ffn_down) fits
	sluice gguf tensors "$T/q4k.gguf" | grep -q $'^blk.3.ffn_down.weight\tQ4_K'
	sluice gguf tensors "$T/q4k.gguf" | grep -q $'^blk.3.ffn_up.weight\tQ5_0'
	python3 - "$T/q8.json" "$T/q4k.json" <<'PY'
import json, math, sys
q8, q4 = (json.load(open(p)) for p in sys.argv[1:])
for r, bound in ((q8, 0.01), (q4, 0.10)):
    for t in r["tensors"]:
        if not t["copied"]:
            assert math.isfinite(t["rmse"]) and t["rmse"] / t["rms"] < bound, t
# Q8_0 from Q4_1 is bigger than its source; 6 matrices a layer and token_embd fall back
assert q8["totals"]["bytes_after"] > q8["totals"]["bytes_before"]
assert sum(t["fallback"] for t in q4["tensors"]) == 181, sum(t["fallback"] for t in q4["tensors"])
PY
}

@test "--eval: perplexity before and after, measured with the engine" {
	scratch
	synth
	head -c 20000 "$SLUICE_ROOT/t/infer/ppl.txt" >"$T/text"
	run quantize -q -t q4_k --eval "$T/text" --eval-ctx 128 "$T/s.gguf" "$T/q.gguf"
	echo "$output"
	no_crash
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^perplexity\ before\ [0-9.]+\ after\ [0-9.]+\ change\ [-+][0-9.]+%\ \([0-9]+\ tokens\ scored,\ ctx\ 128\)$ ]]
	# the numbers are the engine's own: infer-cpu --perplexity says the same
	before=$(infer-cpu -m "$T/s.gguf" --perplexity "$T/text" --ppl-ctx 128 | awk '{print $2}')
	after=$(infer-cpu -m "$T/q.gguf" --perplexity "$T/text" --ppl-ctx 128 | awk '{print $2}')
	[[ "$output" == "perplexity before $before after $after "* ]]
	# too short a text, and -n
	head -c 100 "$T/text" >"$T/short"
	run quantize -q -t q8_0 --eval "$T/short" "$T/s.gguf" "$T/q2.gguf"
	[ "$status" -eq 1 ]
	[[ "$output" == *"fewer than one chunk of 512"* ]]
	run quantize -n -t q8_0 --eval "$T/text" "$T/s.gguf"
	[ "$status" -eq 100 ]
}

@test "--eval on the default model: Q8_0 costs little perplexity" {
	scratch
	need_model
	head -c 9000 "$SLUICE_ROOT/t/infer/ppl.txt" >"$T/text"
	run quantize -q -t q8_0 --eval "$T/text" "$MODEL" "$T/q8.gguf"
	echo "$output"
	[ "$status" -eq 0 ]
	# requantizing Q4_1 to Q8_0 loses almost nothing: within 2% (765
	# tokens scored, the second half of each chunk: the figure's own
	# standard error is several percent)
	echo "$output" | tail -1 | awk '{c=$7; sub(/%/, "", c); c += 0; exit !(c > -2 && c < 2)}'
}
