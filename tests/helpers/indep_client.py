#!/usr/bin/env python3
"""An independent netkit client, written from docs/protocol.md alone (Python 3 standard library only).

It exists to prove the document is enough to implement a client. Every command prints one JSON object on
stdout and exits 0 on success; on any failure it prints the reason on stderr and exits 1.

  indep_client.py disk    HOST PORT [--scope 0|1] [--token-file F]          disk v1 query (UDP); --timeout S
                          (first wait, doubled each retry) and --retries N as netkit's (1 s, 2)
  indep_client.py fetch   HOST PORT NAME OUT [--token-file F] [--cut K]      file v1 fetch; with --cut, the
                          first connection stops after K body bytes and a second one resumes from there
  indep_client.py session HOST PORT DIR NAME... [--token-file F]             LIST DIR (recursive, LEFT_OUT)
                          and one pipelined REQUEST per NAME on one session
  indep_client.py vectors PROTOCOL_MD                                       recompute section 5.4's keys and MACs
  indep_client.py classic HOST PORT NAME                                     classic file protocol
  indep_client.py http    HOST PORT NAME --from A                            GET bytes=0-(A-1), then bytes=A-
                          with TE: trailers; the whole file is checked against Repr-Digest
"""

import base64
import hashlib
import hmac
import json
import os
import socket
import struct
import sys
import time


class Fail(Exception):
    pass


# ---------------------------------------------------------------- secrets and keys (section 5)

# What section 5.1 removes around the secret (ECMAScript's trim): ASCII and Unicode spaces, line ends, the BOM.
TRIMMED = ' \t\n\x0b\x0c\r\u00a0\u1680' + ''.join(chr(c) for c in range(0x2000, 0x200b)) + '\u2028\u2029\u202f\u205f\u3000\ufeff'


def read_secret(path):
    if path is None:
        return None
    with open(path, 'rb') as f:
        text = f.read().decode('utf-8').strip(TRIMMED)
    if not 1 <= len(text) <= 1024 or any(not 0x20 <= ord(c) <= 0x7E for c in text):
        raise Fail('bad secret text')
    return text


def hkdf32(ikm, info):
    prk = hmac.new(b'netkit v1 hkdf salt', ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b'\x01', hashlib.sha256).digest()


def key_for(secret, what):
    return None if secret is None else hkdf32(secret.encode('ascii'), b'netkit %s v1 key' % what)


def mac(key, label, *parts):
    return hmac.new(key, label + b'\x00' + b''.join(parts), hashlib.sha256).digest()


def tlv(tag, value):
    return struct.pack('>BH', tag, len(value)) + value


def u64(n):
    return struct.pack('>Q', n)


# ---------------------------------------------------------------- disk v1 (section 1)

def disk_query_datagram(req_id, scope, key, size):
    head = b'NK\x01\x01' + struct.pack('>I', req_id) + tlv(0x01, bytes([scope]))
    nonce = None
    if key is not None:
        nonce = os.urandom(16)
        head += tlv(0x11, nonce) + tlv(0x12, u64(int(time.time() * 1000))) + b'\x10\x00\x20'
        head += mac(key, b'netkit disk v1 request', head)
    return head + b'\x00' * (size - len(head)), nonce


def parse_tlvs(buf, start):
    """Fields from `start` to the first tag 0 (padding: all zeros) or the end. Returns [(tag, value, value_offset)]."""
    out, i, seen = [], start, set()
    while i < len(buf):
        tag = buf[i]
        if tag == 0:
            if any(buf[i:]):
                raise Fail('padding is not all zeros')
            break
        if i + 3 > len(buf):
            raise Fail('truncated field header')
        (length,) = struct.unpack_from('>H', buf, i + 1)
        if i + 3 + length > len(buf):
            raise Fail('field runs past the end')
        out.append((tag, bytes(buf[i + 3:i + 3 + length]), i + 3))
        i += 3 + length
    return out


def parse_fs(v):
    if len(v) < 33:
        raise Fail('FS too short')
    fs = {'served': bool(v[0] & 1)}
    fs['total'], fs['used'], fs['available'], fs['free'] = struct.unpack_from('>QQQQ', v, 1)
    i = 33
    for name in ('mount', 'fstype', 'device'):
        n = v[i]
        fs[name] = v[i + 1:i + 1 + n].decode('utf-8')
        i += 1 + n
    while i < len(v):  # sub-fields
        tag, (length,) = v[i], struct.unpack_from('>H', v, i + 1)
        val = v[i + 3:i + 3 + length]
        if tag == 0x01:
            fs['inodes_total'], fs['inodes_free'] = struct.unpack('>QQ', val)
        elif tag == 0x02:
            fs['readonly'] = val[0] == 1
        elif tag == 0x03:
            fs['error'] = {'code': val[0], 'detail': val[1:].decode('utf-8')}
        i += 3 + length
    return fs


def disk(host, port, scope, key, timeout=1.0, retries=2):
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    req_id = struct.unpack('>I', os.urandom(4))[0]
    size = 1200
    nonces = []
    need_asked = False
    wait = timeout
    attempts = 0
    while True:
        dgram, nonce = disk_query_datagram(req_id, scope, key, size)
        nonces.append(nonce)
        s.sendto(dgram, (host, port))
        deadline = time.monotonic() + wait
        reply = None
        while reply is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                data, _ = s.recvfrom(65535)
            except socket.timeout:
                break
            reply = accept_reply(data, req_id, key, nonces)
        if reply is None:
            attempts += 1
            if attempts > retries:
                raise Fail('no answer')
            wait *= 2
            continue
        kind, fields = reply
        if kind == 3:
            code = fields.get(0x05, b'\x00')[0]
            if code == 3 and not need_asked and 0x07 in fields:
                (size,) = struct.unpack('>H', fields[0x07])
                need_asked = True
                continue
            raise Fail('ERROR %d %s' % (code, fields.get(0x06, b'').decode('utf-8', 'replace')))
        out = {'host': fields[0x02][0].decode('utf-8'), 'time': struct.unpack('>Q', fields[0x03][0])[0],
               'filesystems': [parse_fs(v) for v in fields.get(0x04, [])], 'omitted': 0,
               'request_size': size}
        if 0x08 in fields:
            out['omitted'] = struct.unpack('>H', fields[0x08][0])[0]
        return out


def accept_reply(data, req_id, key, nonces):
    """(type, fields) for a reply to our request, or None to keep waiting. ANSWER fields are lists (FS repeats)."""
    if len(data) < 8 or data[:3] != b'NK\x01' or data[3] not in (2, 3) or struct.unpack_from('>I', data, 4)[0] != req_id:
        return None
    try:
        tl = parse_tlvs(data, 8)
    except Fail:
        return None
    if key is not None:
        macs = [t for t in tl if t[0] == 0x10]
        if len(macs) != 1 or macs[-1] is not tl[-1] or len(macs[0][1]) != 32:
            return None
        m = macs[0][2]
        if not any(hmac.compare_digest(mac(key, b'netkit disk v1 answer', n, data[:m]), macs[0][1]) for n in nonces):
            return None
    fields = {}
    for tag, value, _ in tl:
        if data[3] == 2:
            fields.setdefault(tag, []).append(value)
        else:
            fields[tag] = value
    return data[3], fields


# ---------------------------------------------------------------- file v1 (section 2)

class Conn:
    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = bytearray()

    def read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Fail('connection closed after %d of %d bytes' % (len(self.buf), n))
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_frame(self):
        head = self.read_exact(3)
        ftype, length = head[0], struct.unpack_from('>H', head, 1)[0]
        if length > 4096:
            raise Fail('frame too long')
        payload = self.read_exact(length)
        return ftype, payload, head + payload

    def close(self):
        self.sock.close()


def frame(ftype, payload):
    return struct.pack('>BH', ftype, len(payload)) + payload


def fields_of(payload):
    out, i = {}, 0
    while i < len(payload):
        if i + 3 > len(payload):
            raise Fail('truncated field header')
        tag, length = payload[i], struct.unpack_from('>H', payload, i + 1)[0]
        if i + 3 + length > len(payload):
            raise Fail('field runs past its frame')
        if tag in out:
            raise Fail('tag %d twice' % tag)
        out[tag] = payload[i + 3:i + 3 + length]
        i += 3 + length
    return out


def num(fields, tag, default=0):
    v = fields.get(tag)
    if v is None:
        return default
    return int.from_bytes(v, 'big')


class V1:
    """One connection: preamble, HELLOs, then frames with MACs when a key is given."""

    def __init__(self, host, port, key, session=False, early=b''):
        self.key, self.c = key, Conn(host, port)
        self.n_c = os.urandom(32)
        hello = frame(0x01, tlv(0x01, self.n_c) + tlv(0x02, struct.pack('>I', 2 if session else 0)))
        self.c.sock.sendall(b'\x89NKF\x01' + hello + early)
        ftype, payload, _ = self.c.read_frame()
        f = fields_of(payload)
        if ftype == 0x03:
            raise Fail('refused in place of HELLO: status %d %s' % (num(f, 0x06), f.get(0x08, b'').decode()))
        if ftype != 0x01 or len(f.get(0x01, b'')) != 32:
            raise Fail('expected the server HELLO')
        self.n_s = f[0x01]
        flags = num(f, 0x02)
        if flags & 1 and key is None:
            raise Fail('server requires the secret')
        self.session = session and bool(flags & 2)

    def seq(self, i):
        return struct.pack('>I', i) if self.session else b''

    def seal(self, ftype, body, i):
        if self.key is None:
            return frame(ftype, body)
        body += b'\x10\x00\x20'
        return frame(ftype, body + mac(self.key, b'netkit file v1 client', self.n_s, self.n_c, self.seq(i), body))

    def check(self, label, payload, i):
        if self.key is None:
            return
        if len(payload) < 35 or payload[-35:-32] != b'\x10\x00\x20':
            raise Fail('no AUTH_MAC last')
        want = mac(self.key, label, self.n_c, self.n_s, self.seq(i), payload[:-32])
        if not hmac.compare_digest(want, payload[-32:]):
            raise Fail('the server could not prove it knows the secret')

    def request(self, name, offset=0, validator=b'', i=0):
        return self.seal(0x02, tlv(0x03, name.encode('utf-8')) + tlv(0x04, u64(offset)) + tlv(0x05, validator), i)

    def response(self, i):
        ftype, payload, _ = self.c.read_frame()
        if ftype != 0x03:
            raise Fail('expected RESPONSE, got frame type %d' % ftype)
        self.check(b'netkit file v1 server', payload, i)
        return fields_of(payload)


def receive_file(v, fields, i, out, prefix_hash, cut=None):
    """After an OK RESPONSE: body then TRAILER. Appends to `out`; returns (digest, wanted) or None when cut."""
    size, offset = num(fields, 0x07), num(fields, 0x04)
    left = size - offset
    if cut is not None:
        left = min(left, cut - offset)
    while left > 0:
        if v.c.buf:
            chunk = bytes(v.c.buf[:left])
            del v.c.buf[:len(chunk)]
        else:
            chunk = v.c.sock.recv(min(left, 65536))
            if not chunk:
                raise Fail('connection closed in the body')
        out.write(chunk)
        prefix_hash.update(chunk)
        left -= len(chunk)
    if cut is not None and cut < size:
        return None
    ftype, payload, _ = v.c.read_frame()
    f = fields_of(payload)
    if ftype == 0x03:
        v.check(b'netkit file v1 server', payload, i)
        raise Fail('CHANGED in place of the TRAILER' if num(f, 0x06) == 5 else 'RESPONSE in place of TRAILER')
    if ftype != 0x04:
        raise Fail('expected TRAILER')
    v.check(b'netkit file v1 trailer', payload, i)
    got = prefix_hash.hexdigest()
    if f[0x09].hex() != got:
        raise Fail('SHA-256 mismatch')
    return got


def describe(f):
    return {'size': num(f, 0x07), 'mtime': num(f, 0x0C, None), 'mode': num(f, 0x0D, None)}


def fetch(host, port, name, out_path, key, cut=None):
    h = hashlib.sha256()
    with open(out_path, 'wb') as out:
        v = V1(host, port, key)
        try:
            out.write(b'')
            v.c.sock.sendall(v.request(name))
            f = v.response(0)
            if num(f, 0x06) != 0:
                raise Fail('status %d %s' % (num(f, 0x06), f.get(0x08, b'').decode('utf-8', 'replace')))
            if num(f, 0x04) != 0:
                raise Fail('OFFSET not echoed')
            digest = receive_file(v, f, 0, out, h, cut)
            validator, meta = f.get(0x05, b''), describe(f)
        finally:
            v.c.close()
        resumed = None
        if digest is None:  # cut: resume from what we kept
            out.flush()
            resumed = os.path.getsize(out_path)
            v = V1(host, port, key)
            try:
                v.c.sock.sendall(v.request(name, resumed, validator))
                f = v.response(0)
                if num(f, 0x06) != 0 or num(f, 0x04) != resumed:
                    raise Fail('resume refused: status %d' % num(f, 0x06))
                digest = receive_file(v, f, 0, out, h)
                meta = describe(f)
            finally:
                v.c.close()
    return dict(meta, sha256=digest, verified=True, resumed_from=resumed, validator=validator.hex())


# ---------------------------------------------------------------- session with LIST (2.10 - 2.12)

KINDS = {1: 'file', 2: 'dir', 3: 'left-out'}


def session(host, port, directory, names, key):
    list_frame_body = tlv(0x03, directory.encode('utf-8')) + tlv(0x02, struct.pack('>I', 3))
    early = b'' if key is not None else frame(0x05, list_frame_body)  # the early request (no secret only)
    v = V1(host, port, key, session=True, early=early)
    if not v.session:
        raise Fail('the server did not agree to a session')
    out = b'' if early else v.seal(0x05, list_frame_body, 0)
    for i, name in enumerate(names, start=1):
        out += v.request(name, i=i)
    v.c.sock.sendall(out)  # everything pipelined
    result = {'early': bool(early), 'files': {}}
    f = v.response(0)
    if num(f, 0x06) != 0:
        raise Fail('LIST refused: status %d' % num(f, 0x06))
    result['dir'] = {'mtime': num(f, 0x0C, None), 'mode': num(f, 0x0D, None)}
    entries, h, count = [], hashlib.sha256(), 0
    while True:
        ftype, payload, whole = v.c.read_frame()
        if ftype == 0x06:
            h.update(whole)
            count += 1
            e = fields_of(payload)
            kind = num(e, 0x0B)
            if kind not in KINDS:
                continue
            item = {'name': e[0x03].decode('utf-8'), 'kind': KINDS[kind], 'size': num(e, 0x07),
                    'mtime': num(e, 0x0C), 'mode': num(e, 0x0D)}
            if kind == 3:
                item['reason'] = num(e, 0x20, None)
            entries.append(item)
        elif ftype == 0x07:
            v.check(b'netkit file v1 trailer', payload, 0)
            e = fields_of(payload)
            if num(e, 0x0E) != count or e[0x09] != h.digest():
                raise Fail('END does not match the entries')
            result['skipped'] = num(e, 0x0F)
            break
        elif ftype == 0x03:
            raise Fail('listing failed midway')
        else:
            raise Fail('unexpected frame %d in a listing' % ftype)
    result['entries'] = entries
    for i, name in enumerate(names, start=1):
        f = v.response(i)
        st = num(f, 0x06)
        if st != 0:
            result['files'][name] = {'status': st, 'message': f.get(0x08, b'').decode('utf-8', 'replace')}
            continue

        class Sink:
            def write(self, b):
                pass
        fh = hashlib.sha256()
        result['files'][name] = dict(describe(f), sha256=receive_file(v, f, i, Sink(), fh))
    v.c.sock.shutdown(socket.SHUT_WR)  # half-close once every answer is read
    v.c.close()
    return result


# ---------------------------------------------------------------- classic file protocol (3.2)

def classic(host, port, name):
    c = Conn(host, port)
    c.sock.sendall(name.encode('utf-8'))
    data = bytearray()
    while True:
        chunk = c.sock.recv(65536)
        if not chunk:
            break
        data += chunk
    c.close()
    field = bytes(data[:8]).decode('ascii')
    if field.strip() == '-1':
        raise Fail('refused (-1)')
    size = int(field)  # digits padded on the right with spaces to 8 bytes
    body = bytes(data[8:])
    if len(body) != size:
        raise Fail('got %d bytes, size says %d' % (len(body), size))
    return {'size': size, 'sha256': hashlib.sha256(body).hexdigest(), 'field': field}


# ---------------------------------------------------------------- HTTP (section 7)

def http_get(host, port, path, headers):
    c = Conn(host, port)
    req = 'GET %s HTTP/1.1\r\nHost: %s:%d\r\n' % (path, host, port)
    req += ''.join('%s: %s\r\n' % kv for kv in headers.items()) + 'Connection: close\r\n\r\n'
    c.sock.sendall(req.encode('ascii'))
    while b'\r\n\r\n' not in c.buf:
        chunk = c.sock.recv(65536)
        if not chunk:
            raise Fail('no head')
        c.buf += chunk
    end = c.buf.index(b'\r\n\r\n')
    lines = bytes(c.buf[:end]).decode('latin-1').split('\r\n')
    del c.buf[:end + 4]
    status = int(lines[0].split(' ')[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, val = line.partition(':')
        hdrs[k.strip().lower()] = val.strip()
    trailers = {}
    if hdrs.get('transfer-encoding', '').lower() == 'chunked':
        body = bytearray()
        while True:
            line = read_line(c)
            n = int(line.split(';')[0], 16)
            if n == 0:
                while True:
                    t = read_line(c)
                    if t == '':
                        break
                    k, _, val = t.partition(':')
                    trailers[k.strip().lower()] = val.strip()
                break
            body += c.read_exact(n)
            c.read_exact(2)
    else:
        body = c.read_exact(int(hdrs['content-length']))
    c.close()
    return status, hdrs, bytes(body), trailers


def read_line(c):
    while b'\r\n' not in c.buf:
        chunk = c.sock.recv(65536)
        if not chunk:
            raise Fail('cut in chunked body')
        c.buf += chunk
    i = c.buf.index(b'\r\n')
    line = bytes(c.buf[:i]).decode('latin-1')
    del c.buf[:i + 2]
    return line


def http(host, port, name, start):
    path = '/' + '/'.join(__import__('urllib.parse').parse.quote(s, safe='') for s in name.split('/'))
    st1, h1, part1, _ = http_get(host, port, path, {'Range': 'bytes=0-%d' % (start - 1)})
    if st1 != 206 or len(part1) != start:
        raise Fail('first range: %d' % st1)
    etag = h1['etag']
    st2, h2, part2, trailers = http_get(host, port, path, {'Range': 'bytes=%d-' % start, 'If-Range': etag,
                                                          'TE': 'trailers'})
    if st2 != 206:
        raise Fail('second range: %d' % st2)
    size = int(h2['content-range'].split('/')[1])
    if not h2['content-range'].startswith('bytes %d-%d/' % (start, size - 1)):
        raise Fail('bad Content-Range')
    whole = part1 + part2
    digest = trailers.get('repr-digest') or h2.get('repr-digest')
    if digest is None:
        raise Fail('no Repr-Digest')
    want = digest.split('=', 1)[1].strip(':')
    got = base64.b64encode(hashlib.sha256(whole).digest()).decode()
    if want != got:
        raise Fail('Repr-Digest mismatch')
    return {'size': size, 'sha256': hashlib.sha256(whole).hexdigest(), 'etag': etag,
            'digest_in': 'trailer' if 'repr-digest' in trailers else 'header', 'verified': True}


# ---------------------------------------------------------------- test vectors (section 5.4)

def vectors(doc_path):
    """Recompute every key and MAC of the document's test-vector block; return the names checked."""
    import re
    with open(doc_path, encoding='utf-8') as f:
        block = f.read().split('<!-- test-vectors:begin -->')[1].split('<!-- test-vectors:end -->')[0]
    vals, cur = {}, None
    for line in block.splitlines():
        if line.startswith(('#', '```')) or not line.strip():
            cur = None
            continue
        m = re.match(r'^(\w+)\s*=\s*(.*)$', line)
        if m:
            cur = m.group(1)
            vals[cur] = m.group(2).replace(' ', '')
        elif cur:
            vals[cur] += line.strip().replace(' ', '')
    kd, kf = key_for(vals['token'], b'disk'), key_for(vals['token'], b'file')
    checked = []

    def same(name, got):
        if got != vals[name]:
            raise Fail('%s: computed %s' % (name, got))
        checked.append(name)
    same('k_disk', kd.hex())
    same('k_file', kf.hex())
    for name, label, macname, extra in (('disk_query', b'netkit disk v1 request', 'disk_mac_req', b''),
                                        ('disk_answer', b'netkit disk v1 answer', 'disk_mac_ans', bytes(range(16)))):
        d = bytes.fromhex(vals[name])
        m = [t for t in parse_tlvs(d, 8) if t[0] == 0x10][0]
        same(macname, mac(kd, label, extra, d[:m[2]]).hex())
        if m[1].hex() != vals[macname]:
            raise Fail(name + ' does not carry its MAC')
    nc, ns = bytes.fromhex(vals['file_n_c']), bytes.fromhex(vals['file_n_s'])
    for name, who, macname, seq in (('file_request', 'client', 'file_p_c', None), ('file_response', 'server', 'file_p_s', None),
                                    ('file_trailer', 'trailer', 'file_p_t', None), ('file_changed', 'server', 'file_p_s_changed', None),
                                    ('file_s_list', 'client', 'file_s_p_c0', 0), ('file_s_list_ok', 'server', 'file_s_p_s0', 0),
                                    ('file_s_end', 'trailer', 'file_s_p_t0', 0), ('file_s_request1', 'client', 'file_s_p_c1', 1),
                                    ('file_s_response1', 'server', 'file_s_p_s1', 1), ('file_s_trailer1', 'trailer', 'file_s_p_t1', 1)):
        fr = bytes.fromhex(vals[name])
        payload = fr[3:]
        if len(payload) != struct.unpack_from('>H', fr, 1)[0] or payload[-35:-32] != b'\x10\x00\x20':
            raise Fail(name + ': bad frame')
        fields_of(payload)
        nonces = (ns, nc) if who == 'client' else (nc, ns)
        seqb = b'' if seq is None else struct.pack('>I', seq)
        same(macname, mac(kf, b'netkit file v1 ' + who.encode(), nonces[0], nonces[1], seqb, payload[:-32]).hex())
        if payload[-32:].hex() != vals[macname]:
            raise Fail(name + ' does not carry its MAC')
    return {'checked': checked}


# ---------------------------------------------------------------- command line

def opt(args, name, default=None):
    if name in args:
        i = args.index(name)
        val = args[i + 1]
        del args[i:i + 2]
        return val
    return default


def main(argv):
    args = list(argv)
    token_file = opt(args, '--token-file')
    scope = int(opt(args, '--scope', '0'))
    cut = opt(args, '--cut')
    start = opt(args, '--from')
    wait, retries = float(opt(args, '--timeout', '1')), int(opt(args, '--retries', '2'))
    if args[0] == 'vectors':
        print(json.dumps(vectors(args[1])))
        return
    cmd, host, port = args[0], args[1], int(args[2])
    secret = read_secret(token_file)
    if cmd == 'disk':
        res = disk(host, port, scope, key_for(secret, b'disk'), wait, retries)
    elif cmd == 'fetch':
        res = fetch(host, port, args[3], args[4], key_for(secret, b'file'), None if cut is None else int(cut))
    elif cmd == 'session':
        res = session(host, port, args[3], args[4:], key_for(secret, b'file'))
    elif cmd == 'classic':
        res = classic(host, port, args[3])
    elif cmd == 'http':
        res = http(host, port, args[3], int(start))
    else:
        raise Fail('unknown command ' + cmd)
    print(json.dumps(res))


if __name__ == '__main__':
    try:
        main(sys.argv[1:])
    except (Fail, OSError, KeyError, ValueError) as e:
        print('indep_client: %s: %s' % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
