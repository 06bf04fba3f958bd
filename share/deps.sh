#!/bin/sh
# deps: installs what a fresh Debian 12 machine lacks to build and test sluice,
# with apt-get, as root or through sudo; prints nothing when all is there.
# It starts no service itself; on a machine with an init, apt-get may start
# Debian's own redis-server and supervisor services, which the tests do not
# use (they run their own redis-server on free ports, and their own s6-svscan
# and supervisord on the trees they write).
#   sh share/deps.sh
# Exit status: 0 ok, 111 unable to install.
set -eu

prog=deps

# Debian packages: the compilers, the libraries the Makefile links, and the
# programs the tests run (s6, supervisor and systemd's systemd-analyze and
# systemd-socket-activate for the service trees of share/, t/8003).
DEB="build-essential clang pkg-config libmsgpack-dev libhiredis-dev libpipeline-dev
libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev libopenblas-dev bats redis-server gnuplot-nox iproute2
python3 python3-pip curl s6 supervisor systemd"

# ---------------------------------------------------------------- Debian

if ! command -v dpkg-query >/dev/null 2>&1; then
	# shellcheck disable=SC2086
	echo "$prog: warning: not a Debian system: make sure these are installed:" $DEB >&2
	exit 0
fi

missing=
for p in $DEB; do
	case $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || :) in
	*" ok installed") ;;
	*) missing="$missing $p" ;;
	esac
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" -eq 0 ]; then
		as_root=
	elif command -v sudo >/dev/null 2>&1; then
		as_root=sudo
	else
		echo "$prog: fatal: unable to install$missing: not root, and no sudo" >&2
		exit 111
	fi
	echo "$prog: installing$missing" >&2
	# sudo passes no environment by default: give it on the command line
	# shellcheck disable=SC2086
	if ! $as_root env DEBIAN_FRONTEND=noninteractive apt-get -q update ||
	   ! $as_root env DEBIAN_FRONTEND=noninteractive apt-get -q -y install \
		--no-install-recommends $missing; then
		echo "$prog: fatal: unable to install$missing: apt-get failed" >&2
		exit 111
	fi
fi

# ---------------------------------------------------------------- Python
# Python packages the tests will need (later issues: numpy, gguf, ...), as
# "module=pip-name" words, e.g. PY="numpy=numpy gguf=gguf". Each one is
# checked with `python3 -c 'import module'` and only missing ones installed.
# Debian 12's python3 is "externally managed" (PEP 668), so pip needs
# --break-system-packages there; --user keeps them out of /usr.
PY="numpy=numpy gguf=gguf msgpack=msgpack prometheus_client=prometheus_client openai=openai yaml=pyyaml"

pymissing=
for e in $PY; do
	python3 -c "import ${e%%=*}" >/dev/null 2>&1 || pymissing="$pymissing ${e#*=}"
done
if [ -n "$pymissing" ]; then
	echo "$prog: installing with pip:$pymissing" >&2
	brk=
	if python3 -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
		brk=--break-system-packages
	fi
	user=--user
	[ -z "${VIRTUAL_ENV:-}" ] || user=
	# shellcheck disable=SC2086
	if ! python3 -m pip install -q --disable-pip-version-check $user $brk $pymissing; then
		echo "$prog: fatal: unable to install$pymissing: pip failed" >&2
		exit 111
	fi
fi
exit 0
