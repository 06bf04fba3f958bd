#!/bin/bash
# tee-metrics.sh [FILE]: a topology of your own is a shell line. Here the
# batch job of batch-jsonl.sh, with the engine's event stream copied by
# tee(1) to metrics, which measures it as it passes:
#
#   tokenize | infer-cpu | tee >(metrics -s -i -) | detokenize
#
# metrics -s reads the events (their usage and t timestamps) and prints a
# summary table when its input ends: requests, tokens, throughput, and
# mean/p50/p90/p99 of time to first token, time per output token,
# inter-token latency (only streamed requests, "stream": true, have one)
# and end-to-end latency. Add -l tcp:127.0.0.1:9090 to
# serve the same figures to Prometheus while the job runs.
# (bash, not sh: >(...) is bash's process substitution.)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
PATH=${SLUICE_BIN:-$here/../bin}:$PATH
if [ -z "${MODEL:-}" ]; then
	MODEL=$(sluice model path 2>/dev/null) || MODEL=$(sluice model fetch)
fi
file=${1:-$here/chat.jsonl}

dir=$(mktemp -d "${TMPDIR:-/tmp}/sluice-tee.XXXXXX")
mpid=
cleanup() {
	exec 4>&- # (if we fail midway) metrics sees the end of its input and exits
	[ -z "$mpid" ] || wait "$mpid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# metrics on fd 4, opened here rather than inside the pipeline so that this
# script can wait for it and print its table after the answers
exec 4> >(exec metrics -s -i - >"$dir/summary")
mpid=$!

tokenize -m "$MODEL" <"$file" |
	infer-cpu -m "$MODEL" -q |
	tee /dev/fd/4 |
	detokenize -m "$MODEL" -o json
exec 4>&-
wait "$mpid"
mpid=
echo
cat "$dir/summary"
