#!/usr/bin/env python3
# check.py: compares tokenize/detokenize output (JSON lines) with the llama.cpp
# fixtures beside it, printing the first mismatches; exit 1 on any. Used by
# t/1102-tokenize-corpus.bats (stdlib only: CI has no llama_cpp).
#
#   check.py ids OUT.jsonl EXPECTED.ids        tokens of request N == line N
#   check.py events EXPECTED.ids               token events, one per line, for detokenize
#   check.py detok OUT.jsonl EXPECTED.detok    text == llama.cpp's bytes, decoded with U+FFFD
#   check.py roundtrip OUT.jsonl corpus.txt    text == the line, for every valid UTF-8 line
import json
import sys


def lines(path):
	with open(path, 'rb') as f:
		data = f.read()
	assert data.endswith(b'\n'), path + ': no final newline'
	return data[:-1].split(b'\n')


def events(path):
	"""The JSON lines of path by id (an int: the line number)."""
	out = {}
	for l in lines(path):
		e = json.loads(l.decode('utf-8', 'surrogateescape'))
		if 'id' not in e or 'error' in e:
			print('error event: %r' % (e,))
			sys.exit(1)
		out[int(e['id'])] = e
	return out


def report(bad, total, what):
	for n, got, want, src in bad[:8]:
		print('line %d: %r' % (n, src[:200]))
		print('   got: %s' % (got,))
		print('  want: %s' % (want,))
	print('%s: %d of %d lines differ' % (what, len(bad), total))
	return 1 if bad else 0


def main():
	cmd = sys.argv[1]
	if cmd == 'events':
		for i, l in enumerate(lines(sys.argv[2])):
			print(json.dumps({'id': str(i + 1), 'tokens': [int(x) for x in l.split()], 'finish': 'stop'}))
		return 0
	got = events(sys.argv[2])
	ref = lines(sys.argv[3])
	bad = []
	total = 0
	for i, want in enumerate(ref):
		e = got.get(i + 1)
		if cmd == 'ids':
			total += 1
			w = [int(x) for x in want.split()]
			g = e.get('tokens') if e else None
			if g != w:
				bad.append((i + 1, g, w, ''))
		elif cmd == 'detok':
			total += 1
			w = want.decode('utf-8', 'replace')
			g = e.get('text') if e else None
			if g != w:
				bad.append((i + 1, repr(g), repr(w), ''))
		elif cmd == 'roundtrip':
			try:
				w = want.decode('utf-8')
			except UnicodeDecodeError:
				continue
			total += 1
			g = e.get('text') if e else None
			if g != w:
				bad.append((i + 1, repr(g), repr(w), want))
	return report(bad, total, cmd)


sys.exit(main())
