#!/usr/bin/env python3
"""A tiny DNS answerer in the peer namespace, for a preloaded dig (test_preload_syscall.sh).

    dns_answerer.py HOST PORT ADDRESS

Answers every A query (over UDP, and over TCP with the two-byte length prefix of RFC 1035
section 4.2.2) with one A record, ADDRESS, TTL 60; any other type gets an empty answer (NOERROR,
no records). Prints "ready" once both sockets are bound, then serves until killed.
"""
import socket
import struct
import sys
import threading

host, port, answer = sys.argv[1], int(sys.argv[2]), socket.inet_aton(sys.argv[3])


def reply(q):
    """The response to query q (bytes), or None for something that is not a query."""
    if len(q) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", q[:6])
    if flags & 0x8000 or qd != 1:
        return None
    # the question: labels up to the root (RFC 1035 section 4.1.2), then QTYPE and QCLASS
    i = 12
    while i < len(q) and q[i] != 0:
        i += 1 + q[i]
    if i + 5 > len(q):
        return None
    question = q[12:i + 5]
    qtype = struct.unpack("!H", q[i + 1:i + 3])[0]
    rd = flags & 0x0100
    if qtype == 1:
        # the answer names the question by a pointer to offset 12 (RFC 1035 section 4.1.4)
        rr = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + answer
        return struct.pack("!HHHHHH", qid, 0x8080 | rd, 1, 1, 0, 0) + question + rr
    return struct.pack("!HHHHHH", qid, 0x8080 | rd, 1, 0, 0, 0) + question


def serve_udp(u):
    while True:
        q, a = u.recvfrom(4096)
        r = reply(q)
        if r:
            u.sendto(r, a)


def serve_tcp_conn(c):
    with c:
        buf = b""
        while True:
            b = c.recv(4096)
            if not b:
                return
            buf += b
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                n = struct.unpack("!H", buf[:2])[0]
                r = reply(buf[2:2 + n])
                buf = buf[2 + n:]
                if r:
                    c.sendall(struct.pack("!H", len(r)) + r)


def serve_tcp(s):
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve_tcp_conn, args=(c,), daemon=True).start()


u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((host, port))
t = socket.socket()
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((host, port))
t.listen(16)
threading.Thread(target=serve_udp, args=(u,), daemon=True).start()
threading.Thread(target=serve_tcp, args=(t,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
