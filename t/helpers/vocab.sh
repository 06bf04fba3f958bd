#!/bin/sh
# vocab.sh NAME: prints the path of llama.cpp's vocabulary-only test file
# ggml-vocab-NAME.gguf (llama-spm, llama-bpe, qwen2, gpt-2, phi-3, ...),
# taken once from the llama-cpp-python 0.3.36 source package on PyPI, which
# carries llama.cpp's models/ folder, and kept in the sluice cache. These are
# data files of real tokenizers; nothing is built or installed.
set -eu
name=$1
cache=${XDG_CACHE_HOME:-$HOME/.cache}/sluice/vocab
f=$cache/ggml-vocab-$name.gguf
if [ ! -s "$f" ]; then
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	echo "vocab.sh: fetching llama-cpp-python==0.3.36 sources for its vocabulary files" >&2
	python3 -m pip download --no-binary :all: --no-deps --disable-pip-version-check -q \
		-d "$tmp" llama-cpp-python==0.3.36 >&2
	tar xzf "$tmp"/llama_cpp_python-0.3.36.tar.gz -C "$tmp" --wildcards '*/models/ggml-vocab-*.gguf'
	for v in "$tmp"/llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-*.gguf; do
		mv "$v" "$cache/"
	done
fi
[ -s "$f" ] || { echo "vocab.sh: no vocabulary file ggml-vocab-$name.gguf" >&2; exit 1; }
echo "$f"
