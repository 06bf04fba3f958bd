#!/usr/bin/env bats
# The build: every program answers -h, and `make install` puts programs, man
# pages and share/ under PREFIX.

load helpers/lib

@test "every program prints usage with -h and exits 0" {
	local p n=0
	for p in "$SLUICE_BIN"/*; do
		run "$p" -h
		[ "$status" -eq 0 ] || { echo "$p -h: $status"; false; }
		[[ "$output" == *"usage"* ]] || { echo "$p -h says: $output"; false; }
		n=$((n + 1))
	done
	[ "$n" -ge 1 ]
}

@test "an unknown option is a usage error: exit 100 and prog: usage:" {
	local p
	for p in "$SLUICE_BIN"/*; do
		run "$p" --no-such-option
		[ "$status" -eq 100 ] || { echo "$p: $status"; false; }
		[[ "$output" == "$(basename "$p"): usage: "* ]] || { echo "$p says: $output"; false; }
	done
}

@test "make install PREFIX= DESTDIR= installs programs, man pages and share/" {
	scratch
	run make -C "$SLUICE_ROOT" -s install DESTDIR="$T/root" PREFIX=/opt/sl
	[ "$status" -eq 0 ]
	[ -x "$T/root/opt/sl/bin/sluice" ]
	[ -f "$T/root/opt/sl/share/man/man1/sluice.1" ]
	[ -f "$T/root/opt/sl/share/man/man7/sluice.7" ]
	[ -f "$T/root/opt/sl/share/sluice/deps.sh" ]
	run "$T/root/opt/sl/bin/sluice" -h
	[ "$status" -eq 0 ]
	# man finds a page for every installed program there, and sluice(1)
	# names every one of them
	for p in "$T"/root/opt/sl/bin/*; do
		MANPATH=$T/root/opt/sl/share/man man -w "$(basename "$p")" >/dev/null ||
			{ echo "no page for $(basename "$p")"; false; }
	done
	MANPATH=$T/root/opt/sl/share/man MANWIDTH=100 man sluice 2>/dev/null | col -b >"$T/sluice.txt"
	for p in "$T"/root/opt/sl/bin/*; do
		grep -qw "$(basename "$p")(1)" "$T/sluice.txt" || { echo "man sluice does not name $(basename "$p")"; false; }
	done
	MANPATH=$T/root/opt/sl/share/man man -w 7 sluice >/dev/null
}

@test "man pages render without warnings" {
	local m
	for m in "$SLUICE_ROOT"/man/man*/*.[17]; do
		run sh -c "MANWIDTH=80 man --warnings -l '$m' 2>&1 >/dev/null"
		[ "$status" -eq 0 ]
		[ -z "$output" ] || { echo "$m: $output"; false; }
	done
}

# sluice-cat, sluice-model, sluice-gguf (cmd/sluice-*.c) and sluice-bench (lib/bench.c)
@test "every sluice subcommand (cmd/sluice-NAME.c, and bench) answers -h and has its man page" {
	local f name n=0
	for f in "$SLUICE_ROOT"/cmd/sluice-*.c bench; do
		name=$(basename "$f" .c)
		name=${name#sluice-}
		run sluice "$name" -h
		[ "$status" -eq 0 ] || { echo "sluice $name -h: $status"; false; }
		[[ "$output" == "usage: sluice $name"* ]] || { echo "sluice $name -h says: $output"; false; }
		[ -f "$SLUICE_ROOT/man/man1/sluice-$name.1" ] || { echo "no man/man1/sluice-$name.1"; false; }
		n=$((n + 1))
	done
	[ "$n" -ge 4 ]
	run sluice
	[ "$status" -eq 100 ]
	[[ "$output" == *"sluice cat "*"sluice model "*"sluice gguf "*"sluice bench "* ]]
}
