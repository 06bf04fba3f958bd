#!/usr/bin/env bats
# lib/oai (the gateway's request reading: JSON body -> sluice requests) under
# libFuzzer for 30 seconds (build/fuzz/fuzz-oai, from `make fuzz`): every body
# is refused with a 4xx naming the fault, or gives well-formed requests with
# every token in the vocabulary. Runs on a scratch copy of the seed corpus.

load helpers/lib

@test "oai: fuzz-oai runs 30 s without a finding" {
	fuzz oai 30
}
