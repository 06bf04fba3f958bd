#!/usr/bin/env bats
# lib/json under libFuzzer for 30 seconds (build/fuzz/fuzz-json, from `make fuzz`):
# JSON -> msgpack -> JSON -> msgpack must be exact, and so must the JSON of any
# bounded msgpack message. Runs on a scratch copy of the committed seed corpus.

load helpers/lib

@test "json: fuzz-json runs 30 s without a finding" {
	fuzzer=$SLUICE_ROOT/build/fuzz/fuzz-json
	[ -x "$fuzzer" ] || skip "build/fuzz/fuzz-json is missing (run make fuzz)"
	scratch
	mkdir -p "$T/corpus" "$T/art"
	cp "$SLUICE_ROOT"/t/fuzz/corpus/json/* "$T/corpus/"
	export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
	run timeout 120 "$fuzzer" -max_total_time=30 -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$T/art/" "$T/corpus"
	no_crash
	if [ "$status" -ne 0 ]; then
		printf '%s\n' "$output" | tail -40 >&2
		ls -l "$T/art" >&2
	fi
	[ "$status" -eq 0 ]
	[ -z "$(ls "$T/art")" ]
}
