#!/usr/bin/env python3
# mkcorpus.py: writes t/tok/corpus.txt, the reference corpus for the
# tokenizers (one prompt per '\n'-terminated line, bytes, not necessarily
# valid UTF-8). Deterministic for a given machine: a fixed seed, and text
# taken from files that ship with Debian (/usr/share/common-licenses, C
# headers in /usr/include, Python's stdlib sources). The committed corpus is
# the reference; this script documents how it was made.
#
#   python3 t/tok/mkcorpus.py > t/tok/corpus.txt
import glob
import io
import os
import random
import sys

R = random.Random(20240603)
out = []          # list of bytes, no b'\n' inside


def add(line):
	if isinstance(line, str):
		line = line.encode('utf-8', 'surrogatepass')
	assert b'\n' not in line
	out.append(line)


def add_text(text, limit):
	"""Adds up to limit non-empty lines of text (a str), stripped of nothing."""
	n = 0
	for l in text.split('\n'):
		if n >= limit:
			break
		if not l.strip() and R.random() < 0.7:
			continue
		add(l)
		n += 1


def read(path):
	try:
		with open(path, 'rb') as f:
			return f.read().decode('utf-8', 'replace')
	except OSError:
		return ''


# ---------------------------------------------------------------- prose
for lic in ['Apache-2.0', 'GPL-3', 'LGPL-2.1', 'MPL-2.0', 'Artistic', 'BSD', 'CC0-1.0', 'GFDL-1.3']:
	t = read('/usr/share/common-licenses/' + lic)
	add_text(t, 120)

# paragraphs joined into long lines, as prompts often are
for lic in ['GPL-2', 'LGPL-3', 'GFDL-1.2']:
	t = read('/usr/share/common-licenses/' + lic)
	paras = [' '.join(p.split()) for p in t.split('\n\n') if p.strip()]
	for p in paras[:40]:
		add(p[:1500])

# Python docstrings (prose about code)
import ast
docs = []
for mod in ['json/__init__.py', 'textwrap.py', 'argparse.py', 'subprocess.py', 'collections/__init__.py',
	    'functools.py', 'pathlib.py', 'random.py', 'datetime.py', 'shutil.py']:
	src = read(os.path.join(os.path.dirname(os.__file__), mod))
	try:
		tree = ast.parse(src)
	except SyntaxError:
		continue
	for node in ast.walk(tree):
		if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module)):
			d = ast.get_docstring(node)
			if d:
				docs.append(d)
for d in docs[:120]:
	add_text(d, 8)

# ---------------------------------------------------------------- code
hdrs = sorted(glob.glob('/usr/include/*.h'))
for h in R.sample(hdrs, min(12, len(hdrs))):
	add_text(read(h), 40)
pys = ['json/decoder.py', 'textwrap.py', 'heapq.py', 'bisect.py', 'fnmatch.py', 'colorsys.py']
for p in pys:
	add_text(read(os.path.join(os.path.dirname(os.__file__), p)), 60)
for sh in ['/etc/profile', '/etc/bash.bashrc', '/usr/bin/ldd', '/etc/init.d/procps', '/usr/bin/gettext.sh']:
	add_text(read(sh), 40)

JS = r'''
'use strict';
const fetchAll = async (urls) => Promise.all(urls.map(u => fetch(u).then(r => r.json())));
export default function debounce(fn, ms = 250) {
	let t;
	return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}
class Queue extends EventEmitter { #items = []; push(x) { this.#items.push(x); this.emit('push', x); } }
const re = /^(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*)@example\.com$/i;
console.log(`total: ${items.reduce((a, b) => a + b.price * b.qty, 0).toFixed(2)} EUR`);
if (x === null || typeof x !== 'object') return x ?? defaultValue;
const { a, b: { c = 3 } = {}, ...rest } = obj; let [first, , third] = arr;
document.querySelectorAll('div.card > p:not(.hidden)').forEach(el => el.classList.toggle('open'));
for (let i = 0; i < n; i++) { sum += arr[i] >>> 0; mask |= 1 << (i & 31); }
'''
RUST = r'''
use std::collections::HashMap;
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Token<'a> { pub text: &'a str, pub id: u32 }
impl<'a> Iterator for Lexer<'a> {
    type Item = Result<Token<'a>, LexError>;
    fn next(&mut self) -> Option<Self::Item> { self.pos += 1; None }
}
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for w in text.split_whitespace() { *counts.entry(w.to_lowercase()).or_insert(0) += 1; }
    let v: Vec<_> = (0..10).map(|x| x * x).filter(|&x| x % 2 == 0).collect();
    println!("{:>8.3} {:?} {:#x}", 3.14159_f64, v, 255u8);
    Ok(())
}
macro_rules! square { ($x:expr) => { $x * $x }; }
unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr(), n); }
'''
GO = r'''
package main
import (
	"fmt"
	"net/http"
	"sync"
)
type Server struct { mu sync.Mutex; hits map[string]int }
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock(); defer s.mu.Unlock()
	s.hits[r.URL.Path]++
	fmt.Fprintf(w, "%s: %d\n", r.URL.Path, s.hits[r.URL.Path])
}
func main() { ch := make(chan int, 10); go func() { for i := range 10 { ch <- i }; close(ch) }(); for v := range ch { fmt.Println(v) } }
if err != nil { return nil, fmt.Errorf("read %q: %w", name, err) }
'''
MISC = r'''
SELECT u.id, u.name, COUNT(o.id) AS orders FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE u.created_at >= '2023-01-01' GROUP BY u.id HAVING COUNT(o.id) > 5 ORDER BY orders DESC LIMIT 10;
<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Test &amp; more</title></head><body><p class="x">Hi&nbsp;there</p></body></html>
{"name": "sluice", "version": "0.1.0", "tags": ["llm", "unix"], "nested": {"a": [1, 2.5, -3e10, null, true]}}
key: value
list:
  - item one
  - "quoted: item"
\documentclass{article}\begin{document}$\int_0^\infty e^{-x^2}\,dx = \frac{\sqrt{\pi}}{2}$\end{document}
#!/bin/sh
set -eu; for f in "$@"; do [ -f "$f" ] && wc -l < "$f" || echo "missing: $f" >&2; done
awk -F: '$3 >= 1000 { print $1 }' /etc/passwd | sort | uniq -c | sort -rn | head -n 5
find . -name '*.c' -print0 | xargs -0 grep -n 'TODO\|FIXME' 2>/dev/null
main :: IO ()
main = mapM_ (putStrLn . show) [x * y | x <- [1..3], y <- [1..3], x /= y]
(defun fact (n) (if (<= n 1) 1 (* n (fact (- n 1)))))
int main(int argc, char **argv) { return argc > 1 ? atoi(argv[1]) : 0; }
#include <stdio.h>
printf("%-10s|%5.2f|%08x|%%\n", name, value, flags);
x = [i**2 for i in range(10) if i % 3 == 0]; print(f"{x!r:>20}")
@decorator(arg=1)
async def handler(request: Request) -> Response:
    return await call_next(request)
lambda x, *args, **kwargs: (x, args, kwargs)
'''
for block in (JS, RUST, GO, MISC):
	for l in block.strip('\n').split('\n'):
		add(l)
# code re-indented with spaces and tabs of many widths
code_lines = [l for b in (JS, RUST, GO) for l in b.strip('\n').split('\n') if l.strip()]
for i in range(150):
	l = R.choice(code_lines).strip()
	ind = R.choice([' ' * R.randint(1, 16), '\t' * R.randint(1, 4), '\t  ', '  \t', ' \t \t'])
	add(ind + l)

# ---------------------------------------------------------------- numbers and dates
months = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September',
	  'October', 'November', 'December']
for i in range(250):
	k = i % 16
	y, m, d = R.randint(1900, 2099), R.randint(1, 12), R.randint(1, 28)
	hh, mm, ss = R.randint(0, 23), R.randint(0, 59), R.randint(0, 59)
	if k == 0:
		add('%04d-%02d-%02d' % (y, m, d))
	elif k == 1:
		add('%02d/%02d/%04d %02d:%02d' % (d, m, y, hh, mm))
	elif k == 2:
		add('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ' % (y, m, d, hh, mm, ss, R.randint(0, 999)))
	elif k == 3:
		add('%s %d, %d at %d:%02d %s' % (months[m - 1], d, y, hh % 12 + 1, mm, R.choice(['AM', 'PM', 'a.m.'])))
	elif k == 4:
		add(''.join(R.choice('0123456789') for _ in range(R.randint(5, 80))))
	elif k == 5:
		add('{:,}'.format(R.randint(1000, 10 ** R.randint(4, 18))))
	elif k == 6:
		add('%.*f' % (R.randint(1, 12), R.uniform(-1e6, 1e6)))
	elif k == 7:
		add('%g %e %.3E' % (R.uniform(-1, 1) * 10 ** R.randint(-20, 20), R.random() * 1e-10, R.random() * 1e30))
	elif k == 8:
		add('3.14e-10 6.022e23 1,000,000 1.000.000,50 1 000 000 0x%X 0b%s 0o%o' % (
			R.randint(0, 2 ** 32), bin(R.randint(0, 255))[2:], R.randint(0, 4095)))
	elif k == 9:
		add('Price: $%d.%02d (was €%d,%02d) -%d%% off, total ¥%d' % (
			R.randint(1, 999), R.randint(0, 99), R.randint(1, 999), R.randint(0, 99), R.randint(1, 90), R.randint(100, 99999)))
	elif k == 10:
		add('+1 (%03d) %03d-%04d, ext. %d' % (R.randint(200, 999), R.randint(100, 999), R.randint(0, 9999), R.randint(1, 99)))
	elif k == 11:
		add('%d.%d.%d.%d:%d v%d.%d.%d-rc%d' % (R.randint(0, 255), R.randint(0, 255), R.randint(0, 255), R.randint(0, 255),
			R.randint(1, 65535), R.randint(0, 9), R.randint(0, 99), R.randint(0, 999), R.randint(1, 9)))
	elif k == 12:
		add(' '.join(str(R.randint(0, 10 ** R.randint(1, 7))) for _ in range(R.randint(3, 20))))
	elif k == 13:
		add('١٢٣٤٥٦٧٨٩٠ ०१२३४५६७८९ ０１２３４５ 一二三 ½ ¾ ² ³ Ⅻ ⅷ ① %d' % R.randint(0, 999))
	elif k == 14:
		add('%dkg %dkm/h %d°C %d‰ %dx%d %d:%d' % tuple(R.randint(0, 999) for _ in range(8)))
	else:
		add('%02d:%02d:%02d,%03d --> %02d:%02d:%02d,%03d' % (hh, mm, ss, R.randint(0, 999), hh, mm, ss, R.randint(0, 999)))

# ---------------------------------------------------------------- whitespace
words = 'the quick brown fox jumps over lazy dog hello world token id model text'.split()
for i in range(300):
	k = i % 10
	w = R.choice(words)
	sp = ' ' * R.randint(2, 10)
	if k == 0:
		add(sp + w)
	elif k == 1:
		add(w + sp)
	elif k == 2:
		add(w + sp + R.choice(words))
	elif k == 3:
		add('\t' * R.randint(1, 5) + w + '\t' + R.choice(words))
	elif k == 4:
		add(''.join(R.choice([' ', '\t', ' \t', '\t ', '  ']) for _ in range(R.randint(1, 8))) + w)
	elif k == 5:
		add(sp)
	elif k == 6:
		add(w + R.choice(['\r', ' \r', '\t\r', '\r\r']))
	elif k == 7:
		add(w + '\r' + R.choice(words) + sp + '\r')
	elif k == 8:
		add(' '.join(R.choice(words) + ' ' * R.randint(0, 3) for _ in range(8)) + R.choice(['', ' ', '  \t']))
	else:
		add(R.choice(['\u00a0', '\u2003', '\u3000', '\u200b', '\u2009', '\v', '\f']) .join([w, R.choice(words), R.choice(words)]))
add('')
add(' ')
add('\t')
add('\r')
add(' \r')

# ---------------------------------------------------------------- punctuation
punct = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'
for i in range(150):
	s = ''.join(R.choice(punct) for _ in range(R.randint(1, 30)))
	if i % 3 == 0:
		s = R.choice(words) + s + R.choice(words)
	elif i % 3 == 1:
		s = s + ' ' + R.choice(words) + R.choice(['...', '?!', '!!!', '--', '—', '…', '»', '«', '„“', '¿¡'])
	add(s)
for s in ["Don't", "I'm", "we'll", "they've", "she'd", "it's", "YOU'RE", "O'Neil", "rock'n'roll", "'s 'S 'T 'RE 've 'LL 'D",
	  "isn't it?", "L'amour", "c'est", "‘curly’ “quotes”", "don’t", "--option=value", "a->b", "x != y && y <= z || !w",
	  "::std::vector<int>", "===", "!==", "<<=", ">>>=", "...", "?.", "??", "#[cfg(test)]", "@@ -1,5 +1,6 @@", "/* */", "// comment"]:
	add(s)
	add(s.upper())
	add('  ' + s)

# ---------------------------------------------------------------- scripts
scripts = {
	'zh': ['我们今天去公园散步，天气很好。', '人工智能正在改变世界。', '这是一个测试句子，包含标点符号！', '北京是中华人民共和国的首都。',
	       '机器学习模型需要大量的数据来训练。', '你好，世界！', '中文分词是一个难题。', '他说：“明天见。”'],
	'ja': ['今日はいい天気ですね。', 'カタカナとひらがなと漢字を混ぜて書きます。', 'すみません、駅はどこですか？', 'ｶﾀｶﾅ半角もあります。',
	       '東京タワーは333メートルです。', 'ありがとうございました！', 'ゔ ゐ ゑ ヵ ヶ ー'],
	'ko': ['안녕하세요, 만나서 반갑습니다.', '한국어는 한글로 씁니다.', '오늘 날씨가 정말 좋네요!', '서울특별시 종로구'],
	'ar': ['مرحبا بالعالم', 'اللغة العربية جميلة جداً.', 'هذا نص تجريبي يحتوي على أرقام ١٢٣ و 456.', 'السَّلَامُ عَلَيْكُمْ'],
	'he': ['שלום עולם', 'זהו משפט בעברית.', 'עִבְרִית עם ניקוד'],
	'hi': ['नमस्ते दुनिया', 'हिन्दी भारत की राजभाषा है।', 'क्षत्रिय ज्ञान श्री', 'मैं ठीक हूँ, धन्यवाद।'],
	'th': ['สวัสดีครับ', 'ภาษาไทยไม่มีช่องว่างระหว่างคำ', 'กรุงเทพมหานคร'],
	'ru': ['Привет, мир!', 'Съешь же ещё этих мягких французских булок, да выпей чаю.', 'Москва — столица России.', 'ЁЛКА ёлка'],
	'uk': ['Ґанок їжак єнот', 'Слава Україні'],
	'el': ['Γειά σου Κόσμε', 'Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.', 'ΑΒΓΔ αβγδ ς σ Σ', 'ἀρχὴ ἥμισυ παντός'],
	'latin': ['Café crème brûlée à la façon de Noël', 'naïve coöperation résumé', 'Ærøskøbing, Øresund, Åland', 'Straße, Größe, ẞ',
		  'Łódź, Kraków, Gdańsk', 'Čeština, Šťastný, Žluťoučký kůň', 'İstanbul ığdır ŞĞÜ', 'Þórsmörk, Ðð', 'ﬁ ﬂ ﬀ ligatures',
		  'ÀÉÎÕÜ àéîõü ÇçÑñ'],
	'misc': ['ትግርኛ አማርኛ', 'ქართული ენა', 'Հայերեն', 'ᚠᛇᚻ᛫ᛒᛦᚦ', 'ⲧⲙⲛⲧⲣⲙⲛⲕⲏⲙⲉ', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕸𝖆𝖙𝖍 𝟙𝟚𝟛', 'ℕ ℤ ℚ ℝ ∀x∈ℝ: x²≥0',
		 '∑_{i=1}^{n} i = n(n+1)/2', '→ ← ↑ ↓ ⇒ ⇔ ∞ ≠ ≈ ≤ ≥', '☃ ★ ♠ ♥ ♦ ♣ ✓ ✗', 'Ω≈ç√∫˜µ≤≥÷', 'ǅ ǈ ǋ ǲ',
		 'မြန်မာ', 'ខ្មែរ', 'ລາວ', 'தமிழ்', 'తెలుగు', 'বাংলা ভাষা', 'ગુજરાતી', 'ਪੰਜਾਬੀ', 'සිංහල', 'བོད་སྐད།', 'ᠮᠣᠩᠭᠣᠯ'],
}
allsent = [s for v in scripts.values() for s in v]
for name, sents in scripts.items():
	for s in sents:
		add(s)
		add(' ' + s)
		add(s + ' ' + R.choice(words) + ' ' + s)
for i in range(250):
	add(' '.join(R.choice(allsent) for _ in range(R.randint(1, 5))))
for i in range(80):
	add(R.choice(allsent) + R.choice(words) + R.choice(punct) + str(R.randint(0, 99999)) + R.choice(allsent))

# accented Latin: precomposed and decomposed (combining marks)
import unicodedata
for s in scripts['latin'] + ['Ängström', 'Ĉu vi parolas Esperanton?', 'Việt Nam Tiếng Việt', 'Zürich München Köln']:
	add(unicodedata.normalize('NFD', s))
	add(unicodedata.normalize('NFC', s))
	add(unicodedata.normalize('NFKD', s))
add('e\u0301 e\u0300\u0302 a\u030a o\u0308\u0304 Z\u0351\u0352\u0353\u0354\u0355\u0356 zalgơ̷̢̤̫ͥ̔ͦ')

# ---------------------------------------------------------------- emoji
emoji = ['😀', '😂', '🤣', '❤️', '👍', '🎉', '🔥', '🚀', '🐍', '🦀', '☕', '✨', '🙏', '💯', '🤖', '🧠',
	 '👍🏻', '👍🏼', '👍🏽', '👍🏾', '👍🏿', '👩‍💻', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🏴‍☠️', '👁️‍🗨️', '🧑🏽‍🚀', '❤️‍🔥',
	 '🇺🇸', '🇫🇷', '🇯🇵', '🇩🇪', '🇧🇷', '🇮🇳', '🏴󠁧󠁢󠁳󠁣󠁴󠁿', '1️⃣', '#️⃣', '©️', '™', '🅰️', '🈶', '〰️', '🫠', '🫶🏾']
for i in range(200):
	k = i % 5
	if k == 0:
		add(''.join(R.choice(emoji) for _ in range(R.randint(1, 10))))
	elif k == 1:
		add(R.choice(words) + R.choice(emoji) + R.choice(words))
	elif k == 2:
		add(' '.join(R.choice(emoji) for _ in range(R.randint(1, 6))) + ' ' + R.choice(allsent))
	elif k == 3:
		add('I love this ' + R.choice(emoji) * R.randint(1, 4) + '!!!')
	else:
		add(R.choice(emoji) + ' ' * R.randint(1, 4) + R.choice(emoji) + '\t' + R.choice(emoji))

# ---------------------------------------------------------------- chat-marker lookalikes
markers = ['<|im_start|>', '<|im_end|>', '<|endoftext|>', '< |im_start| >', '<|im_start', 'im_start|>', '<|im_end', '<||>',
	   '[INST]', '[/INST]', '<s>', '</s>', '<start_of_turn>', '<end_of_turn>', '<|eot_id|>', '<|begin_of_text|>',
	   '<|start_header_id|>', '<|end_header_id|>', '<|user|>', '<|assistant|>', '<|system|>', '<|end|>', '<<SYS>>',
	   '<</SYS>>', '<unk>', '<pad>', '<|im_sep|>', '<|IM_START|>', '<|im_start|', '|im_start|>', '<|im_<|im_end|>start|>',
	   '<<|im_start|>>', '<|<|endoftext|>|>', '<repo_name>', '<file_sep>', '<filename>', '<gh_stars>', '<issue_start>',
	   '<jupyter_code>', '<fim_prefix>', '<fim_middle>', '<fim_suffix>', '<empty_output>', '<commit_before>']
roles = ['system', 'user', 'assistant', 'tool']
for i in range(300):
	k = i % 10
	m = R.choice(markers)
	if k == 0:
		add('%s%s\n' .rstrip('\n') % (m, R.choice(roles)))
	elif k == 1:
		add('<|im_start|>%s %s<|im_end|>' % (R.choice(roles), R.choice(allsent + words)))
	elif k == 2:
		add(R.choice(words) + m + R.choice(words))
	elif k == 3:
		add(m * R.randint(2, 4))
	elif k == 4:
		add(' ' * R.randint(0, 3) + m + ' ' * R.randint(0, 3) + R.choice(words))
	elif k == 5:
		add('[INST] %s [/INST] %s</s><s>[INST] %s [/INST]' % (R.choice(allsent), R.choice(words), R.choice(words)))
	elif k == 6:
		add('<start_of_turn>user\\n%s<end_of_turn>' % R.choice(allsent))
	elif k == 7:
		w = R.choice(words)
		p = R.randint(0, len(w))
		add(w[:p] + m + w[p:])
	elif k == 8:
		add('<|start_header_id|>%s<|end_header_id|>\\n\\n%s<|eot_id|>' % (R.choice(roles), R.choice(allsent)))
	else:
		add(''.join(R.choice(markers + words + [' ', '\t', '|', '<', '>']) for _ in range(R.randint(2, 8))))
for m in markers:
	add(m)

# ---------------------------------------------------------------- invalid UTF-8
# Not here: 4-byte sequences above U+10FFFF (f4 90 80 80, f5..f7 leads):
# llama.cpp 0.3.36 aborts on them in its BPE regex split ("invalid
# codepoint"), so there is no reference to compare with.
bad = [b'\x80', b'\xbf', b'\x80\x81\x82', b'\xc3', b'\xe2\x82', b'\xf0\x9f\x98', b'\xc0\xaf', b'\xe0\x80\xaf',
       b'\xf0\x80\x80\xaf', b'\xed\xa0\x80', b'\xed\xbf\xbf', b'\xed\xa0\xbd\xed\xb8\x80', b'\xff', b'\xfe', b'\xff\xfe',
       b'\xf8\x88\x80\x80\x80', b'\xfc\x84\x80\x80\x80\x80', b'\xc1\xbf', b'\xc3\x28', b'\xa0\xa1',
       b'\xe2\x28\xa1', b'\xe2\x82\x28', b'\xf0\x28\x8c\xbc', b'\xf0\x90\x28\xbc', b'\x00', b'\x01\x02\x1b[31m\x7f']
for i in range(220):
	k = i % 6
	b = R.choice(bad)
	w = R.choice(words + allsent).encode()
	if k == 0:
		add(b)
	elif k == 1:
		add(w + b)
	elif k == 2:
		add(b + w)
	elif k == 3:
		add(w + b' ' + b + b' ' + R.choice(allsent).encode())
	elif k == 4:
		e = R.choice(allsent + emoji).encode()
		p = R.randint(1, max(1, len(e) - 1))
		add(e[:p] + e[p + R.randint(0, 2):])      # a cut through a character
	else:
		add(b''.join(R.choice(bad) for _ in range(R.randint(2, 6))) + b'\r')

# ---------------------------------------------------------------- mixtures to reach a good size
pool = list(out)
valid = [l for l in pool if l and not l.isspace()]
while len(out) < 3600:
	k = R.randint(0, 3)
	if k == 0:
		add(b' '.join(R.choice(valid) for _ in range(R.randint(2, 4)))[:2000])
	elif k == 1:
		add(R.choice(valid) + R.choice([b' ', b'  ', b'\t', b'', b'   \t']) + R.choice(valid)[:200])
	elif k == 2:
		add((R.choice(words) + R.choice(['', ' ', '  '])).encode() * R.randint(2, 30))
	else:
		l = R.choice(valid)
		add(l[:R.randint(0, len(l))].rstrip(b'\xc0\xc1\xc2\xc3\xc4\xc5\xc6\xc7\xc8\xc9\xca\xcb\xcc\xcd\xce\xcf\xd0\xd1\xd2\xd3\xd4\xd5\xd6\xd7\xd8\xd9\xda\xdb\xdc\xdd\xde\xdf') + b'.')

# one long line of repeated characters (a stress for quadratic matchers)
add('a' * 3000)
add(' ' * 500 + 'x')
add('😀' * 300)
add('1' * 1000)

sys.stdout.buffer.write(b''.join(l + b'\n' for l in out))
