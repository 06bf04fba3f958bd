#!/usr/bin/env bats
# lib/msg under libFuzzer for 60 seconds (build/fuzz/fuzz-msg, from `make fuzz`),
# on a scratch copy of the committed seed corpus so that corpus does not grow.

load helpers/lib

@test "msg: fuzz-msg runs 60 s without a finding" {
	fuzzer=$SLUICE_ROOT/build/fuzz/fuzz-msg
	[ -x "$fuzzer" ] || skip "build/fuzz/fuzz-msg is missing (run make fuzz)"
	scratch
	mkdir -p "$T/corpus" "$T/art"
	cp "$SLUICE_ROOT"/t/fuzz/corpus/msg/* "$T/corpus/"
	export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
	run timeout 180 "$fuzzer" -max_total_time=60 -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$T/art/" "$T/corpus"
	no_crash
	if [ "$status" -ne 0 ]; then
		printf '%s\n' "$output" | tail -40 >&2
		ls -l "$T/art" >&2
	fi
	[ "$status" -eq 0 ]
	[ -z "$(ls "$T/art")" ]
}
