#!/usr/bin/env bats
# lib/sse under libFuzzer for 15 seconds (build/fuzz/fuzz-sse, from `make fuzz`):
# events come out the same wherever the bytes are cut, and nothing held goes
# past the limit. Runs on a scratch copy of the committed seed corpus.

load helpers/lib

@test "sse: fuzz-sse runs 15 s without a finding" {
	fuzz sse 15
}
