#!/usr/bin/env python3
"""Writes the seed corpora of the `turn` and `tcp_frames` targets (run from
this directory): a TURN server's answers as the unit tests' fake server
gives them (401 with realm and nonce, Allocate with XOR-RELAYED-ADDRESS and
LIFETIME, CreatePermission, ChannelBind, Refresh, 438 stale nonce), Data
indications and ChannelData, in the `turn` target's records."""
import struct

COOKIE = 0x2112A442


def attr(t, v):
    return struct.pack('>HH', t, len(v)) + v + b'\0' * ((-len(v)) % 4)


def xaddr(t, ip, port):
    ipn = struct.unpack('>I', bytes(int(x) for x in ip.split('.')))[0] ^ COOKIE
    return attr(t, struct.pack('>BBHI', 0, 1, port ^ 0x2112, ipn))


def msg(typ, attrs, tid=b'\x11' * 12):
    body = b''.join(attrs)
    return struct.pack('>HHI', typ, len(body), COOKIE) + tid + body


def rec(op, payload):
    return bytes([op]) + struct.pack('>H', len(payload)) + payload


def answer(idx, typ, attrs):
    # The target puts in the length, cookie and our transaction ID.
    return rec(1, bytes([idx]) + msg(typ, attrs, b'\0' * 12))


def errcode(code, reason):
    return attr(0x0009, struct.pack('>HBB', 0, code // 100, code % 100) + reason)


def lifetime(s):
    return attr(0x000d, struct.pack('>I', s))


def data_ind(ip, port, data):
    return rec(0, msg(0x0017, [xaddr(0x0012, ip, port), attr(0x0013, data)], b'\x42' * 12))


def frame(d):
    return struct.pack('>H', len(d)) + d


realm = attr(0x0014, b'camrouter')
nonce = attr(0x0015, b'abcdef0123456789')
# At start the STUN Binding request is pending[0], the anonymous Allocate pending[1].
unauth = answer(1, 0x0113, [errcode(401, b'Unauthorized'), realm, nonce])
allocated = answer(1, 0x0103, [xaddr(0x0016, '127.0.0.1', 50000),
                               xaddr(0x0020, '127.0.0.1', 8555), lifetime(600)])
binding_ok = answer(0, 0x0101, [xaddr(0x0020, '203.0.113.7', 30555)])
send1 = rec(2, bytes([0, 0]) + b'check')
perm_ok = answer(0, 0x0108, [])
bind_ok = answer(0, 0x0109, [])
binding_req = msg(0x0001, [attr(0x0006, b'peer2:x')], b'\x33' * 12)
chdata = rec(0, struct.pack('>HH', 0x4000, 5) + b'\x80abcd')
to_deadline = rec(3, b'')
refresh_ok = answer(0, 0x0104, [lifetime(600)])
stale = answer(0, 0x0114, [errcode(438, b'Stale Nonce'), realm, attr(0x0015, b'fresh-nonce')])
release = rec(4, bytes([0, 0])) + rec(4, bytes([1, 0]))
released = answer(0, 0x0104, [lifetime(0)])

turn = {
    'allocate': unauth + allocated,
    'allocate_refused': unauth + answer(1, 0x0113, [errcode(401, b'Unauthorized'), realm, nonce]),
    'allocate_lifetime0': unauth + answer(1, 0x0103, [xaddr(0x0016, '127.0.0.1', 50000), lifetime(0)]),
    'stun_answer': binding_ok + rec(5, b''),
    'relay_both_ways': unauth + allocated + binding_ok + send1 + perm_ok + send1 + bind_ok
    + data_ind('192.0.2.1', 40000, b'\x80reply') + chdata
    + data_ind('192.0.2.2', 40000, binding_req) + rec(2, bytes([1, 1]) + b'hello'),
    'refresh': unauth + allocated + to_deadline + refresh_ok + to_deadline + stale
    + rec(3, b'\x00\x75\x30'),
    'release': unauth + allocated + send1 + perm_ok + release + released + rec(3, b'\x00\x13\x88'),
    'new_credentials': unauth + allocated + rec(4, bytes([0, 1, 1])) + refresh_ok,
}
stun = msg(0x0001, [attr(0x0006, b'abcd:efgh')], b'\x55' * 12)
tcp_frames = {
    'stun_then_dtls': b'\x03' + frame(stun) + frame(b'\x16\xfe\xfd' + b'\0' * 40),
    'empty_and_partial': b'\x07' + frame(b'') + frame(b'abc') + b'\x00\x10part',
    'big': b'\x01' + frame(b'\x80' * 1400) + frame(b'z'),
}
for target, seeds in (('turn', turn), ('tcp_frames', tcp_frames)):
    for name, data in seeds.items():
        with open(f'corpus/{target}/seed-{name}', 'wb') as f:
            f.write(data)
