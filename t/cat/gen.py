#!/usr/bin/env python3
# gen.py: writes the `sluice cat` test corpus, OUT.msgpack and OUT.jsonl, from
# one seeded list of messages, with its own canonical msgpack encoder and its
# own JSON writer (the rules of lib/json.h), independent of the C code.
#   python3 t/cat/gen.py OUT [N]     N random messages besides the fixed ones (default 400)
import math
import random
import struct
import sys
import base64


class Raw(bytes):
    """a msgpack str holding bytes that may not be UTF-8"""


class Ext:
    def __init__(self, t, data):
        self.t, self.data = t, data


# ---- canonical msgpack (what msgpack-c's packer writes) -------------------

def mp(o, out):
    if o is None:
        out += b'\xc0'
    elif o is False:
        out += b'\xc2'
    elif o is True:
        out += b'\xc3'
    elif isinstance(o, int):
        if o >= 0:
            if o < 128: out += bytes([o])
            elif o < 256: out += b'\xcc' + struct.pack('>B', o)
            elif o < 65536: out += b'\xcd' + struct.pack('>H', o)
            elif o < 2**32: out += b'\xce' + struct.pack('>I', o)
            else: out += b'\xcf' + struct.pack('>Q', o)
        else:
            if o >= -32: out += struct.pack('>b', o)
            elif o >= -128: out += b'\xd0' + struct.pack('>b', o)
            elif o >= -32768: out += b'\xd1' + struct.pack('>h', o)
            elif o >= -2**31: out += b'\xd2' + struct.pack('>i', o)
            else: out += b'\xd3' + struct.pack('>q', o)
    elif isinstance(o, float):
        out += b'\xcb' + struct.pack('>d', o)
    elif isinstance(o, (str, Raw)):
        b = bytes(o) if isinstance(o, Raw) else o.encode()
        n = len(b)
        if n < 32: out += bytes([0xa0 | n])
        elif n < 256: out += b'\xd9' + struct.pack('>B', n)
        elif n < 65536: out += b'\xda' + struct.pack('>H', n)
        else: out += b'\xdb' + struct.pack('>I', n)
        out += b
    elif isinstance(o, bytes):
        n = len(o)
        if n < 256: out += b'\xc4' + struct.pack('>B', n)
        elif n < 65536: out += b'\xc5' + struct.pack('>H', n)
        else: out += b'\xc6' + struct.pack('>I', n)
        out += o
    elif isinstance(o, Ext):
        n = len(o.data)
        fix = {1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8}
        if n in fix: out += bytes([fix[n]])
        elif n < 256: out += b'\xc7' + struct.pack('>B', n)
        elif n < 65536: out += b'\xc8' + struct.pack('>H', n)
        else: out += b'\xc9' + struct.pack('>I', n)
        out += struct.pack('>b', o.t) + o.data
    elif isinstance(o, list):
        n = len(o)
        if n < 16: out += bytes([0x90 | n])
        elif n < 65536: out += b'\xdc' + struct.pack('>H', n)
        else: out += b'\xdd' + struct.pack('>I', n)
        for x in o:
            mp(x, out)
    elif isinstance(o, dict):
        n = len(o)
        if n < 16: out += bytes([0x80 | n])
        elif n < 65536: out += b'\xde' + struct.pack('>H', n)
        else: out += b'\xdf' + struct.pack('>I', n)
        for k, v in o.items():
            mp(k, out)
            mp(v, out)
    else:
        raise TypeError(type(o))


# ---- JSON as lib/json.c writes it ------------------------------------------

def jstr(b):
    out = bytearray(b'"')
    for c in b:
        if c == 0x22: out += b'\\"'
        elif c == 0x5c: out += b'\\\\'
        elif c == 8: out += b'\\b'
        elif c == 12: out += b'\\f'
        elif c == 10: out += b'\\n'
        elif c == 13: out += b'\\r'
        elif c == 9: out += b'\\t'
        elif c < 0x20: out += b'\\u%04x' % c
        else: out.append(c)
    out += b'"'
    return bytes(out)


def jfloat(v):
    if math.isnan(v):
        return b'null'
    if math.isinf(v):
        return b'1e999' if v > 0 else b'-1e999'
    for p in (15, 16):
        s = '%.*g' % (p, v)
        if float(s) == v:
            break
    else:
        s = '%.17g' % v
    if not any(c in s for c in '.eE'):
        s += '.0'
    return s.encode()


def js(o):
    if o is None: return b'null'
    if o is True: return b'true'
    if o is False: return b'false'
    if isinstance(o, int): return str(o).encode()
    if isinstance(o, float): return jfloat(o)
    if isinstance(o, Raw): return jstr(bytes(o))
    if isinstance(o, str): return jstr(o.encode())
    if isinstance(o, bytes):
        return b'{"$bin":"' + base64.b64encode(o) + b'"}'
    if isinstance(o, Ext):
        return b'{"$ext":[%d,"' % o.t + base64.b64encode(o.data) + b'"]}'
    if isinstance(o, list):
        return b'[' + b','.join(js(x) for x in o) + b']'
    if isinstance(o, dict):
        parts = []
        for k, v in o.items():
            kb = bytes(k) if isinstance(k, Raw) else k.encode()
            if len(o) == 1 and kb in (b'$bin', b'$ext'):
                ks = b'"\\u0024' + kb[1:] + b'"'
            else:
                ks = jstr(kb)
            parts.append(ks + b':' + js(v))
        return b'{' + b','.join(parts) + b'}'
    raise TypeError(type(o))


# ---- the messages ------------------------------------------------------------

INTS = [0, 1, 31, 32, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53 + 1,
        2**63 - 1, 2**63, 2**64 - 1, -1, -31, -32, -33, -127, -128, -129, -32767, -32768,
        -32769, -2**31, -2**31 - 1, -2**53 - 1, -2**63 + 1, -2**63]
FLOATS = [0.0, -0.0, 0.1, 0.2, 0.3, 1.0, -1.0, 1.5, 100.0, 1e15, 1e16, 1e17, 1e22, 1e21,
          123456789.0, 2.0**53 + 2, 1e308, 1.7976931348623157e308, 5e-324, 2.2250738585072014e-308,
          1e-5, 1e-4, 0.001, 3.141592653589793, 2.718281828459045, float('inf'), float('-inf'),
          1/3, 2/3, 1e-7, 9007199254740993.0, 0.30000000000000004]
WORDS = ['hello', 'world', 'héllo', 'naïve', '日本語', '中文', 'Ελληνικά', 'русский', '😀', '🦀🚀',
         'tab\there', 'new\nline', 'quote"d', 'back\\slash', 'ctl\x01\x1f\x7f', 'nul\x00byte',
         '/slash/', '', ' ', 'a' * 31, 'b' * 32, 'c' * 255, 'd' * 256, '\u2028\u2029', 'e\u0301',
         '$bin', '$ext', '{"json":"in a string"}', '\ufffd', '\U0010ffff']
RAWS = [Raw(b'\xff\xfe'), Raw(b'bad \xc3 utf8'), Raw(b'\xed\xa0\x80'), Raw(b'\x80')]


def rval(r, depth):
    k = r.randrange(14 if depth < 4 else 9)
    if k == 0: return None
    if k == 1: return r.random() < 0.5
    if k == 2: return r.choice(INTS)
    if k == 3: return r.randrange(-2**63, 2**64)
    if k == 4: return r.choice(FLOATS)
    if k == 5:
        f = struct.unpack('>d', struct.pack('>Q', r.getrandbits(64)))[0]
        return 0.5 if math.isnan(f) else f
    if k == 6: return r.choice(WORDS)
    if k == 7: return r.choice(RAWS) if r.random() < 0.2 else ''.join(r.choice(WORDS) for _ in range(r.randrange(4)))
    if k == 8:
        if r.random() < 0.5:
            return r.randbytes(r.choice([0, 1, 2, 3, 5, 40, 300]))
        return Ext(r.randrange(-128, 128), r.randbytes(r.choice([1, 2, 3, 4, 8, 16, 17, 300])))
    if k in (9, 10, 11):
        return [rval(r, depth + 1) for _ in range(r.choice([0, 1, 2, 5, 15, 16, 17]))]
    n = r.choice([0, 1, 1, 2, 5, 15, 16, 17])
    return {r.choice(WORDS + ['k%d' % i for i in range(20)]): rval(r, depth + 1) for _ in range(n)}


def fixed():
    yield {'id': 'req-1', 'prompt': 'Once upon a time', 'max_tokens': 16, 'temperature': 0.8,
           'top_k': 40, 'top_p': 0.95, 'min_p': 0.05, 'repeat_penalty': 1.1, 'seed': 42,
           'stop': ['\n\n', 'The end'], 'stream': True, 'priority': -3, 'timeout_ms': 30000,
           'row': 17}
    yield {'id': 'chat-1', 'messages': [{'role': 'system', 'content': 'You are terse.'},
                                        {'role': 'user', 'content': 'Say «hi» 👋'}],
           'max_tokens': 64, 'stream': False, 'presence_penalty': 0.0, 'frequency_penalty': 0.5}
    yield {'id': 'req-1', 'tokens': [1, 15043, 3186, 32000, 65535, 65536, 128255]}
    yield {'id': 'req-1', 'cancel': True}
    yield {'id': 'req-1', 'tokens': [29871], 'text': ' there'}
    yield {'id': 'req-1', 'tokens': [], 'text': '', 'finish': 'stop',
           'usage': {'prompt_tokens': 5, 'completion_tokens': 16, 'cached_tokens': 0},
           't': {'arrived': 1718000000.123456, 'scheduled': 1718000000.125, 'first_token': 1718000000.2,
                 'done': 1718000001.0}}
    yield {'id': 'req-2', 'finish': 'error', 'error': {'code': 'too_long', 'message': 'prompt of 9000 tokens exceeds 8192'}}
    yield {'finish': 'error', 'error': {'code': 'bad_request', 'message': 'no id'}}
    yield {}
    yield {'$bin': 'not base64, a real one-key map'}
    yield {'$bin': 'AAEC'}
    yield {'x': {'$ext': [1, 'AQ==']}, 'y': {'$bin': b'\x00\x01\x02'}}
    yield {'bin': b'', 'bin1': b'\xff', 'bin300': bytes(range(256)) + b'x' * 44, 'bin70k': b'\x5a' * 70000}
    yield {'ext%d' % n: Ext(n % 256 - 128, bytes(i % 251 for i in range(n)))
           for n in (1, 2, 3, 4, 8, 16, 17, 255, 256, 70000)}
    yield {'ints': INTS, 'floats': FLOATS}
    yield {'words': WORDS, 'raw': RAWS, 'rawkey': {Raw(b'\xff'): 1}}
    yield {'long': 'x' * 70000, 'long16': 'y' * 300}
    yield {'array16': list(range(16)), 'array70k': [i % 300 for i in range(70000)]}
    yield {'map16': {'k%d' % i: i for i in range(16)}, 'map17': {'k%d' % i: -i for i in range(17)}}
    yield {'deep': [[[[[[[[[[[[[[[[[[[[{'a': [[[[[{'b': None}]]]]]}]]]]]]]]]]]]]]]]]]]]}
    yield {'k%d' % i: i for i in range(70000 // 100)}


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    r = random.Random(20240611)
    msgs = list(fixed())
    for i in range(n):
        m = {'id': 'r%d' % i}
        for _ in range(r.randrange(8)):
            m[r.choice(WORDS + ['k%d' % j for j in range(20)])] = rval(r, 1)
        msgs.append(m)
    with open(out + '.msgpack', 'wb') as f:
        for m in msgs:
            b = bytearray()
            mp(m, b)
            f.write(b)
    with open(out + '.jsonl', 'wb') as f:
        for m in msgs:
            f.write(js(m) + b'\n')


main()
