#!/usr/bin/env bats
# quantize on bad input and bad output places: clear errors, exit 111, no
# output file and no temporary file left behind, an old output untouched.

load helpers/lib

synth() {
	sluice model synth -o "$T/s.gguf" --type f32 --dim 256 --ff 512 --layers 2 >/dev/null
}

# nothing but the input (and files named in $@) in $T
only() {
	local got
	got=$(cd "$T" && echo $(ls -A | LC_ALL=C sort))
	[ "$got" = "$*" ] || { echo "in $T: $got, want $*" >&2; return 1; }
}

@test "missing, empty, truncated and non-GGUF input: 111, no output" {
	scratch
	synth
	run quantize -t q8_0 "$T/nope.gguf" "$T/o.gguf"
	[ "$status" -eq 111 ]
	[[ "$output" == "quantize: fatal: unable to read $T/nope.gguf: "* ]]
	: > "$T/empty.gguf"
	run quantize -t q8_0 "$T/empty.gguf" "$T/o.gguf"
	[ "$status" -eq 111 ]
	head -c 1000000 "$T/s.gguf" > "$T/trunc.gguf"
	run quantize -t q8_0 "$T/trunc.gguf" "$T/o.gguf"
	[ "$status" -eq 111 ]
	[[ "$output" == *"past the end of the file"* ]]
	echo 'not a model' > "$T/text.gguf"
	run quantize -t q8_0 "$T/text.gguf" "$T/o.gguf"
	[ "$status" -eq 111 ]
	[[ "$output" == *"not a GGUF file"* ]]
	run quantize -t q8_0 "$T" "$T/o.gguf"
	[ "$status" -eq 111 ]
	only empty.gguf s.gguf text.gguf trunc.gguf
}

@test "mutated inputs: never a crash" {
	scratch
	synth
	head -c 200000 "$T/s.gguf" > "$T/head"
	size=$(stat -c %s "$T/s.gguf")
	for i in $(seq 40); do
		cp "$T/s.gguf" "$T/m.gguf"
		off=$(( (i * 7919) % 4096 ))
		printf "\\x$(printf %02x $(( (i * 37) % 256 )))" | dd of="$T/m.gguf" bs=1 seek="$off" conv=notrunc status=none
		run quantize -q -j 2 -t q4_k "$T/m.gguf" "$T/o.gguf"
		no_crash
		[ "$status" -eq 0 ] || [ "$status" -eq 111 ]
		rm -f "$T/o.gguf"
	done
	[ "$(stat -c %s "$T/s.gguf")" -eq "$size" ]
	only head m.gguf s.gguf
}

@test "output in a missing directory or an unwritable place: 111, nothing left" {
	scratch
	synth
	run quantize -t q8_0 "$T/s.gguf" "$T/no/such/dir/o.gguf"
	[ "$status" -eq 111 ]
	[[ "$output" == "quantize: fatal: unable to create $T/no/such/dir/o.gguf.tmp."*": No such file or directory" ]]
	run quantize -t q8_0 "$T/s.gguf" /proc/self/o.gguf
	[ "$status" -eq 111 ]
	[[ "$output" == "quantize: fatal: unable to create /proc/self/o.gguf.tmp."* ]]
	only s.gguf
}

@test "read-only directory (as an unprivileged user): 111, nothing left" {
	scratch
	synth
	# bats' own directories are private: nobody must reach this one
	R=$(mktemp -d /tmp/quantize-ro.XXXXXX)
	cp "$T/s.gguf" "$R/s.gguf"
	mkdir "$R/ro"
	chmod 755 "$R"
	chmod 644 "$R/s.gguf"
	chmod 555 "$R/ro"
	if [ "$(id -u)" -eq 0 ]; then
		command -v setpriv >/dev/null || { rm -rf "$R"; skip "root without setpriv: a 555 directory stops no one"; }
		run setpriv --reuid=65534 --regid=65534 --clear-groups "$SLUICE_BIN/quantize" -t q8_0 "$R/s.gguf" "$R/ro/o.gguf"
	else
		run quantize -t q8_0 "$R/s.gguf" "$R/ro/o.gguf"
	fi
	left=$(ls -A "$R/ro")
	rm -rf "$R"
	[ "$status" -eq 111 ]
	[[ "$output" == *"unable to create $R/ro/o.gguf.tmp."*"Permission denied" ]]
	[ -z "$left" ]
}

@test "full disk (RLIMIT_FSIZE): 111, no temporary file, the old output untouched" {
	scratch
	synth
	echo old > "$T/o.gguf"
	# write() fails with EFBIG past the limit (SIGXFSZ ignored, as a full disk's ENOSPC would)
	run bash -c 'trap "" XFSZ; ulimit -f 1024; exec quantize -t q8_0 "$1" "$2"' _ "$T/s.gguf" "$T/o.gguf"
	no_crash
	[ "$status" -eq 111 ]
	[[ "$output" == *"quantize: fatal: unable to write $T/o.gguf.tmp."*": File too large" ]]
	[ "$(cat "$T/o.gguf")" = old ]
	only o.gguf s.gguf
}

@test "unwritable --report: 111 after the model is written" {
	scratch
	synth
	run quantize -q -t q8_0 --report "$T/no/r.json" "$T/s.gguf" "$T/o.gguf"
	[ "$status" -eq 111 ]
	[[ "$output" == "quantize: fatal: unable to create $T/no/r.json: No such file or directory" ]]
}

# poison FILE TENSOR BYTES: overwrite the first bytes of one tensor's data
poison() {
	local base off
	base=$(sluice gguf info "$1" | awk -F'\t' '$1 == "data_offset" { print $2 }')
	off=$(sluice gguf tensors "$1" | awk -F'\t' -v t="$2" '$1 == t { print $4 }')
	printf "$3" | dd of="$1" bs=1 seek=$((base + off)) conv=notrunc status=none
}

@test "NaN or infinite weights: refused (111, naming the tensor), or written with --allow-nonfinite and a warning" {
	scratch
	synth
	# a NaN and a +inf (f32, little endian) at the start of one matrix
	poison "$T/s.gguf" blk.1.ffn_up.weight '\x00\x00\xc0\x7f\x00\x00\x80\x7f'
	run quantize -q -t q8_0 "$T/s.gguf" "$T/o.gguf"
	echo "$output"
	[ "$status" -eq 111 ]
	[ "$output" = "quantize: fatal: unable to quantize $T/s.gguf: tensor blk.1.ffn_up.weight holds 2 NaN or infinite values (--allow-nonfinite writes it anyway)" ]
	only s.gguf
	run quantize -q -t q8_0 --allow-nonfinite --report "$T/r.json" "$T/s.gguf" "$T/o.gguf"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "quantize: warning: tensor blk.1.ffn_up.weight holds 2 NaN or infinite values: its rmse and max mean nothing" ]
	python3 -c 'import json,sys
r = json.load(open(sys.argv[1]))
bad = {t["name"]: t["nonfinite"] for t in r["tensors"] if t["nonfinite"]}
assert bad == {"blk.1.ffn_up.weight": 2}, bad' "$T/r.json"
}
