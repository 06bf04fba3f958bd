#!/usr/bin/env bats
# tokenize and detokenize against llama.cpp on the reference corpus
# (t/tok/corpus.txt, 4,813 lines of prose, code, numbers, whitespace,
# punctuation, emoji, many scripts, invalid UTF-8 and chat-marker
# lookalikes): every line's ids must equal llama.cpp's (t/tok/*.ids, made by
# t/tok/mkfixtures.py), detokenize must give llama.cpp's text for those ids,
# and detokenize(tokenize(x)) == x for every valid UTF-8 line.

load helpers/lib
bats_require_minimum_version 1.5.0

D=${BATS_TEST_DIRNAME:-t}/tok

setup() {
	need_model
	scratch
}

# ids MODEL EXPECTED [tokenize options]: tokenize the corpus and compare
ids() {
	local model=$1 want=$2
	shift 2
	tokenize -m "$model" -i text -o json "$@" <"$D/corpus.txt" >"$T/out.jsonl"
	python3 "$D/check.py" ids "$T/out.jsonl" "$want"
}

@test "tokenize corpus: SmolLM2 ids equal llama.cpp's on every line" {
	run ids "$MODEL" "$D/smollm2.ids"
	echo "$output"
	no_crash && [ "$status" -eq 0 ]
}

@test "tokenize corpus: SmolLM2 --no-special ids equal llama.cpp's on every line" {
	run ids "$MODEL" "$D/smollm2-nospecial.ids" --no-special
	echo "$output"
	no_crash && [ "$status" -eq 0 ]
}

@test "tokenize corpus: SentencePiece (llama-spm) ids equal llama.cpp's on every line" {
	need_vocab llama-spm
	run ids "$VOCAB" "$D/llama-spm.ids"
	echo "$output"
	no_crash && [ "$status" -eq 0 ]
}

@test "tokenize corpus: the count mode agrees with the ids" {
	tokenize -m "$MODEL" -i text -c <"$D/corpus.txt" | cut -f2 >"$T/counts"
	awk '{ print NF }' "$D/smollm2.ids" | diff - "$T/counts"
}

# detok MODEL IDS EXPECTED: llama.cpp's ids through detokenize
detok() {
	python3 "$D/check.py" events "$2" | detokenize -m "$1" -o json >"$T/out.jsonl"
	python3 "$D/check.py" detok "$T/out.jsonl" "$3"
}

@test "detokenize corpus: SmolLM2 text equals llama.cpp's detokenize for its ids" {
	run detok "$MODEL" "$D/smollm2.ids" "$D/smollm2.detok"
	echo "$output"
	no_crash && [ "$status" -eq 0 ]
}

@test "detokenize corpus: SentencePiece text equals llama.cpp's detokenize for its ids" {
	need_vocab llama-spm
	run detok "$VOCAB" "$D/llama-spm.ids" "$D/llama-spm.detok"
	echo "$output"
	no_crash && [ "$status" -eq 0 ]
}

@test "tokenize | detokenize --special gives back every valid UTF-8 line (SmolLM2)" {
	tokenize -m "$MODEL" -i text <"$D/corpus.txt" | detokenize -m "$MODEL" --special -o json >"$T/out.jsonl"
	run python3 "$D/check.py" roundtrip "$T/out.jsonl" "$D/corpus.txt"
	echo "$output"
	[ "$status" -eq 0 ]
	tokenize -m "$MODEL" -i text --no-special <"$D/corpus.txt" | detokenize -m "$MODEL" -o json >"$T/out.jsonl"
	run python3 "$D/check.py" roundtrip "$T/out.jsonl" "$D/corpus.txt"
	echo "$output"
	[ "$status" -eq 0 ]
}
