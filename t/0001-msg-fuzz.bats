#!/usr/bin/env bats
# lib/msg under libFuzzer for 60 seconds (build/fuzz/fuzz-msg, from `make fuzz`),
# on a scratch copy of the committed seed corpus so that corpus does not grow.

load helpers/lib

@test "msg: fuzz-msg runs 60 s without a finding" {
	fuzz msg 60
}
