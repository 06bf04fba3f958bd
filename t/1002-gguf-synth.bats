#!/usr/bin/env bats
# lib/gguf on real files and `sluice model synth`: the default model and
# llama.cpp's vocabulary files read with the same kv keys, types, array
# counts and tensor names, types, shapes, offsets and sizes as the gguf Python
# package reads (listings in t/gguf/, made by t/gguf/mklisting.py); synth
# writes the shapes asked for, copies a tokenizer exactly, is reproducible by
# seed, and refuses what it cannot write.

load helpers/lib

# the kv listing in mklisting.py's form: key, type, array count
kvlist() {
	sluice gguf kv "$1" | awk -F'\t' '{ if ($2 ~ /^arr/) { split($3, a, " "); print $1 "\t" $2 "\t" a[1] } else print $1 "\t" $2 }'
}

@test "gguf: the default model reads as gguf-py reads it" {
	need_model
	scratch
	kvlist "$MODEL" >"$T/kv"
	diff "$SLUICE_ROOT/t/gguf/smollm2.kv" "$T/kv"
	sluice gguf tensors "$MODEL" >"$T/tensors"
	diff "$SLUICE_ROOT/t/gguf/smollm2.tensors" "$T/tensors"
	run sluice gguf info "$MODEL"
	[ "$status" -eq 0 ]
	[[ "$output" == *"types	F32 x 61, Q4_1 x 210, Q8_0 x 1"* ]]
}

@test "gguf: llama.cpp's vocabulary files read as gguf-py reads them" {
	scratch
	for l in "$SLUICE_ROOT"/t/gguf/vocab-*.kv; do
		name=$(basename "$l" .kv)
		need_vocab "${name#vocab-}"
		kvlist "$VOCAB" >"$T/kv"
		diff "$l" "$T/kv"
		sluice gguf tensors "$VOCAB" >"$T/tensors"
		diff "$SLUICE_ROOT/t/gguf/$name.tensors" "$T/tensors"
	done
}

@test "synth: writes the shapes asked for, with the built-in tokenizer" {
	scratch
	run sluice model synth -o "$T/m.gguf" --dim 64 --layers 1 --heads 4 --kv-heads 2 --ff 96 --type f16 --untied
	[ "$status" -eq 0 ]
	[ "$output" = "$T/m.gguf" ]
	sluice gguf tensors "$T/m.gguf" | cut -f1-3,5 >"$T/got"
	printf '%s\n' \
		'token_embd.weight	F16	64x269	34432' \
		'blk.0.attn_norm.weight	F32	64	256' \
		'blk.0.attn_q.weight	F16	64x64	8192' \
		'blk.0.attn_k.weight	F16	64x32	4096' \
		'blk.0.attn_v.weight	F16	64x32	4096' \
		'blk.0.attn_output.weight	F16	64x64	8192' \
		'blk.0.ffn_norm.weight	F32	64	256' \
		'blk.0.ffn_gate.weight	F16	64x96	12288' \
		'blk.0.ffn_up.weight	F16	64x96	12288' \
		'blk.0.ffn_down.weight	F16	96x64	12288' \
		'output_norm.weight	F32	64	256' \
		'output.weight	F16	64x269	34432' >"$T/want"
	diff "$T/want" "$T/got"
	sluice gguf kv "$T/m.gguf" >"$T/kv"
	grep -qx 'llama.attention.head_count_kv	u32	2' "$T/kv"
	grep -qx 'llama.rope.dimension_count	u32	16' "$T/kv"
	grep -qx 'llama.vocab_size	u32	269' "$T/kv"
	grep -qx 'general.file_type	u32	1' "$T/kv"
	grep -q '^tokenizer.ggml.tokens	arr\[str\]	269 \["<|endoftext|>", "<|im_start|>", "<|im_end|>"' "$T/kv"
	grep -qx 'tokenizer.ggml.pre	str	"smollm"' "$T/kv"
}

@test "synth: copies the tokenizer of --vocab exactly (q8_0, tied)" {
	need_model
	scratch
	run sluice model synth -o "$T/m.gguf" --vocab "$MODEL" --dim 32 --layers 1 --heads 2 --kv-heads 1 --ff 64 --type q8_0
	[ "$status" -eq 0 ]
	# (t/unit/gguf checks that gguf_w_copy_kv copies values byte for byte)
	sluice gguf kv "$MODEL" | grep '^tokenizer\.' >"$T/want"
	sluice gguf kv "$T/m.gguf" | grep '^tokenizer\.' >"$T/got"
	diff "$T/want" "$T/got"
	sluice gguf tensors "$T/m.gguf" >"$T/t"
	grep -q '^token_embd.weight	Q8_0	32x49152	0	1671168$' "$T/t"
	! grep -q '^output.weight' "$T/t"
	grep -qx 'llama.vocab_size	u32	49152' <(sluice gguf kv "$T/m.gguf")
}

@test "synth: the same seed gives the same file, another seed another" {
	scratch
	sluice model synth -o "$T/a.gguf" --seed 7 --type bf16 >/dev/null
	sluice model synth -o "$T/b.gguf" --seed 7 --type bf16 >/dev/null
	sluice model synth -o "$T/c.gguf" --seed 8 --type bf16 >/dev/null
	cmp "$T/a.gguf" "$T/b.gguf"
	! cmp -s "$T/a.gguf" "$T/c.gguf"
	[ -z "$(ls "$T" | grep tmp)" ]
}

@test "synth: refuses what it cannot write, exit 100" {
	scratch
	cd "$T"
	run sluice model synth --type q4_k
	[ "$status" -eq 100 ]
	[[ "$output" == *"needs the quantizer"* ]]
	run sluice model synth --type q5_9
	[ "$status" -eq 100 ]
	run sluice model synth --dim 65
	[ "$status" -eq 100 ]
	run sluice model synth --heads 4 --kv-heads 3
	[ "$status" -eq 100 ]
	run sluice model synth --type q8_0 --dim 48 --heads 2
	[ "$status" -eq 100 ]
	run sluice model synth --vocab-size 5
	[ "$status" -eq 100 ]
	run sluice model synth --layers x
	[ "$status" -eq 100 ]
	run sluice model synth -o "$T/nodir/m.gguf"
	[ "$status" -eq 111 ]
	[ -z "$(ls "$T")" ]
}
