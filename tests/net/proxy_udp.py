#!/usr/bin/python3
"""UDP helper of tests/net/test_proxy.sh. Standard library only; prints "key value" lines.

  server ADDR PORT       an echo server: every datagram goes back to its sender; prints
                         "from ADDR:PORT" once per new sender (flushed), runs until killed
  client ADDR PORT COUNT a connected UDP socket sends COUNT datagrams of different sizes, one at a
                         time, and checks that each comes back byte-identical from ADDR:PORT
                         (a connected socket accepts nothing else); prints "sent", "ok", "bad",
                         "lost" and "local ADDR:PORT"
"""

import os
import socket
import sys


def out(key, value):
    print(f"{key} {value}", flush=True)


def server(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    out("listening", f"{addr}:{port}")
    seen = set()
    while True:
        data, src = s.recvfrom(65536)
        if src not in seen:
            seen.add(src)
            out("from", f"{src[0]}:{src[1]}")
        s.sendto(data, src)


def client(addr, port, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((addr, port))
    s.settimeout(3.0)
    ok = bad = lost = 0
    for i in range(count):
        size = [1, 100, 1400, 1472, 4000, 8000][i % 6]
        msg = (f"{i}:".encode() + os.urandom(size))[:size] if size > 8 else os.urandom(size)
        s.send(msg)
        try:
            reply = s.recv(65536)
        except socket.timeout:
            lost += 1
            continue
        if reply == msg:
            ok += 1
        else:
            bad += 1
    out("local", "%s:%d" % s.getsockname())
    out("sent", count)
    out("ok", ok)
    out("bad", bad)
    out("lost", lost)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "server":
        server(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 5 and sys.argv[1] == "client":
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(__doc__)
