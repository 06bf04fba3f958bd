#!/usr/bin/env bats
# lib/gguf against hostile files: a small valid GGUF is built with python3's
# struct module, then broken in every way the reader must notice (truncated at
# every section boundary and at every byte of the header and first kv pair,
# huge counts and lengths, bad value and tensor types, bad shapes, offsets past
# the end or misaligned, bad alignment, overlaps, duplicates). Each one must
# make `sluice gguf info` exit 111 with "sluice: fatal: unable to read FILE:
# <what>", never crash. Then fuzz-gguf runs 30 s on the seed corpus.

load helpers/lib

# mkhostile DIR: writes DIR/ok.gguf, DIR/NAME.gguf for each hostile case and
# DIR/expect (NAME<TAB>substring the error message must hold)
mkhostile() {
	python3 - "$1" <<'PY'
import os, struct, sys
d = sys.argv[1]
def s(b): return struct.pack("<Q", len(b)) + b
def kv(key, t, val): return s(key) + struct.pack("<I", t) + val
def u32(v): return struct.pack("<I", v)
def u64(v): return struct.pack("<Q", v)
def tinfo(name, ne, typ, off):
	return s(name) + u32(len(ne)) + b"".join(u64(x) for x in ne) + u32(typ) + u64(off)
def build(kvs, tensors, data, version=3, magic=b"GGUF", n_t=None, n_kv=None, align=32):
	h = magic + u32(version) + u64(len(tensors) if n_t is None else n_t) + u64(len(kvs) if n_kv is None else n_kv)
	marks = [4, 8, 16, 24]
	b = h
	for k in kvs:
		b += k; marks.append(len(b))
	for t in tensors:
		b += t; marks.append(len(b))
	b += b"\0" * ((align - len(b) % align) % align)
	marks.append(len(b))
	return b + data, marks
toks = kv(b"tokenizer.ggml.tokens", 9, u32(8) + u64(3) + s(b"a") + s(b"bc") + s(b"\xc4\xa0the"))
KV = [kv(b"general.architecture", 8, s(b"llama")), kv(b"llama.block_count", 4, u32(1)), toks,
      kv(b"scores", 9, u32(6) + u64(2) + struct.pack("<2f", 0.5, 1.5))]
TS = [tinfo(b"a", [8], 0, 0), tinfo(b"blk.0.attn_q.weight", [32, 2], 8, 32)]
DATA = b"\1" * 32 + b"\2" * 68
ok, marks = build(KV, TS, DATA)
open(os.path.join(d, "ok.gguf"), "wb").write(ok)
cases = []
def case(name, blob, want=""):
	open(os.path.join(d, name + ".gguf"), "wb").write(blob)
	cases.append((name, want))
for m in sorted(set(marks)):
	if m < len(ok):
		case("cut-section-%d" % m, ok[:m], "")
for n in range(0, marks[5]):
	case("cut-byte-%d" % n, ok[:n], "")
case("cut-data", ok[:-1], "past the end")
case("empty", b"", "")
case("magic", b"GGUG" + ok[4:], "not a GGUF file")
case("version-1", build(KV, TS, DATA, version=1)[0], "version 1 is not supported")
case("version-4", build(KV, TS, DATA, version=4)[0], "version 4 is not supported")
case("big-endian", build(KV, TS, DATA, version=0x03000000)[0], "big-endian")
case("kv-count-2^63", build(KV, TS, DATA, n_kv=1 << 63)[0], "kv count")
case("kv-count-max", build(KV, TS, DATA, n_kv=(1 << 64) - 1)[0], "kv count")
case("tensor-count-2^40", build(KV, TS, DATA, n_t=1 << 40)[0], "tensor count")
case("key-len-2^62", build([u64(1 << 62) + b"x"] + KV, TS, DATA)[0], "key needs")
case("str-len-2^62", build([kv(b"k", 8, u64(1 << 62))] + KV, TS, DATA)[0], "string needs")
case("arr-count-2^60", build([kv(b"k", 9, u32(4) + u64(1 << 60))] + KV, TS, DATA)[0], "array of")
case("arr-str-count-2^60", build([kv(b"k", 9, u32(8) + u64(1 << 60))] + KV, TS, DATA)[0], "strings needs")
case("arr-count-max", build([kv(b"k", 9, u32(12) + u64((1 << 64) - 1))] + KV, TS, DATA)[0], "overflows")
case("str-in-arr-2^62", build([kv(b"k", 9, u32(8) + u64(2) + s(b"x") + u64(1 << 62))] + KV, TS, DATA)[0], "string 1")
case("value-type-13", build([kv(b"k", 13, u32(0))] + KV, TS, DATA)[0], "unknown value type 13")
case("value-type-max", build([kv(b"k", 0xffffffff, u32(0))] + KV, TS, DATA)[0], "unknown value type")
case("arr-type-13", build([kv(b"k", 9, u32(13) + u64(1) + u32(0))] + KV, TS, DATA)[0], "unknown array element type 13")
case("nested-arr", build([kv(b"k", 9, u32(9) + u64(1) + u32(4) + u64(1) + u32(0))] + KV, TS, DATA)[0], "nested")
case("dup-key", build(KV + [kv(b"llama.block_count", 4, u32(2))], TS, DATA)[0], "duplicate key \"llama.block_count\"")
case("tensor-type-77", build(KV, [TS[0], tinfo(b"blk.0.attn_q.weight", [32, 2], 77, 32)], DATA)[0],
     "tensor blk.0.attn_q.weight: unknown type 77")
case("tensor-type-4", build(KV, [TS[0], tinfo(b"b", [32], 4, 32)], DATA)[0], "unknown type 4")
case("n-dims-5", build(KV, [tinfo(b"a", [8, 1, 1, 1, 1], 0, 0)], DATA)[0], "n_dims 5")
case("n-dims-0", build(KV, [tinfo(b"a", [], 0, 0)], DATA)[0], "n_dims 0")
case("ne-0", build(KV, [tinfo(b"a", [8, 0], 0, 0)], DATA)[0], "dimension 1 is 0")
case("ne-negative", build(KV, [tinfo(b"a", [(1 << 64) - 8], 0, 0)], DATA)[0], "dimension 0 is -8")
case("ne-overflow", build(KV, [tinfo(b"a", [1 << 32, 1 << 32], 0, 0)], DATA)[0], "too large")
case("ne-bytes-overflow", build(KV, [tinfo(b"a", [1 << 62], 0, 0)], DATA)[0], "too large")
case("q8-ne0-33", build(KV, [tinfo(b"a", [33], 8, 0)], DATA)[0], "not a multiple of Q8_0's block size 32")
case("offset-past-end", build(KV, [TS[0], tinfo(b"b", [8], 0, 1 << 20)], DATA)[0], "past the end of the file")
case("offset-wraps", build(KV, [TS[0], tinfo(b"b", [8], 0, (1 << 64) - 32)], DATA)[0], "past the end of the file")
case("offset-misaligned", build(KV, [TS[0], tinfo(b"b", [8], 0, 4)], DATA)[0], "not a multiple of the alignment 32")
case("align-0", build([kv(b"general.alignment", 4, u32(0))] + KV, TS, DATA)[0], "not a power of two")
case("align-3", build([kv(b"general.alignment", 4, u32(3))] + KV, TS, DATA, align=3)[0], "not a power of two")
case("align-u64", build([kv(b"general.alignment", 10, u64(32))] + KV, TS, DATA)[0], "not a u32")
case("overlap", build(KV, [tinfo(b"a", [16], 0, 0), tinfo(b"b", [8], 0, 32), tinfo(b"c", [16], 0, 32)], DATA)[0], "overlaps")
case("dup-tensor", build(KV, [TS[0], tinfo(b"a", [8], 0, 32)], DATA)[0], "duplicate tensor name \"a\"")
case("name-64", build(KV, [tinfo(b"n" * 64, [8], 0, 0)], DATA)[0], "64 bytes or longer")
case("name-nul", build(KV, [tinfo(b"a\0b", [8], 0, 0)], DATA)[0], "NUL")
with open(os.path.join(d, "expect"), "w") as f:
	for n, w in cases:
		f.write("%s\t%s\n" % (n, w))
PY
}

@test "gguf: the unbroken base file reads" {
	scratch
	mkhostile "$T"
	run sluice gguf info "$T/ok.gguf"
	[ "$status" -eq 0 ]
	[[ "$output" == *"tensors	2"* ]]
	run sluice gguf tensors "$T/ok.gguf"
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = "blk.0.attn_q.weight	Q8_0	32x2	32	68" ]
}

@test "gguf: every hostile file exits 111 saying what is wrong" {
	scratch
	mkhostile "$T"
	n=0
	while IFS=$'\t' read -r name want; do
		f=$T/$name.gguf
		run sluice gguf info "$f"
		no_crash || { echo "$name crashed" >&2; return 1; }
		if [ "$status" -ne 111 ]; then
			echo "$name: exit $status: $output" >&2
			return 1
		fi
		case $output in
		"sluice: fatal: unable to read $f: "?*) ;;
		*) echo "$name: bad message: $output" >&2; return 1 ;;
		esac
		if [ -n "$want" ] && [[ "$output" != *"$want"* ]]; then
			echo "$name: wanted \"$want\" in: $output" >&2
			return 1
		fi
		n=$((n + 1))
	done <"$T/expect"
	[ "$n" -gt 100 ]
}

@test "gguf: truncated file messages say where" {
	scratch
	mkhostile "$T"
	head -c 100 "$T/ok.gguf" >"$T/cut.gguf"
	run sluice gguf info "$T/cut.gguf"
	[ "$status" -eq 111 ]
	[ "$output" = "sluice: fatal: unable to read $T/cut.gguf: truncated file: kv 1 (\"llama.block_count\") value needs 4 bytes, 2 left" ]
}

@test "gguf: fuzz-gguf runs 30 s without a finding" {
	fuzz gguf 30
}
