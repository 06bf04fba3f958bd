#!/usr/bin/env bats
# lib/json under libFuzzer for 30 seconds (build/fuzz/fuzz-json, from `make fuzz`):
# JSON -> msgpack -> JSON -> msgpack must be exact, and so must the JSON of any
# bounded msgpack message. Runs on a scratch copy of the committed seed corpus.

load helpers/lib

@test "json: fuzz-json runs 30 s without a finding" {
	fuzz json 30
}
