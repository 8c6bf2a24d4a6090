#!/usr/bin/python3
"""TCP helper of tests/net/test_proxy.sh (half-close and reset through the proxy). Standard
library only; prints "key value" lines.

  server ADDR PORT        for each connection, the first byte says what to do:
                          'h' half-close: read until the client's FIN, then send back
                              "N SHA256HEX" of what came after the 'h', and close
                          'r' reset: close at once with SO_LINGER 0 (a RST)
  client ADDR PORT MODE   MODE half: send 'h' + 1 MiB, shutdown(SHUT_WR), read the answer to
                              EOF; prints "sent N", "sha HEX", "answer N HEX", "eof 1"
                          MODE reset: send 'r', then read; prints "result reset|eof|data"
                          MODE refused: connect (to a closed port), then read; prints
                              "connect ok|ERRNAME" and "result ..."
"""

import errno
import hashlib
import os
import socket
import struct
import sys
import threading


def out(key, value):
    print(f"{key} {value}", flush=True)


def serve_one(c):
    try:
        first = c.recv(1)
        if first == b"r":
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
            return
        h = hashlib.sha256()
        n = 0
        while True:
            d = c.recv(65536)
            if not d:
                break
            h.update(d)
            n += len(d)
        c.sendall(f"{n} {h.hexdigest()}".encode())
        c.close()
    except OSError:
        c.close()


def server(addr, port):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((addr, port))
    l.listen(16)
    out("listening", f"{addr}:{port}")
    while True:
        c, _ = l.accept()
        threading.Thread(target=serve_one, args=(c,), daemon=True).start()


def read_result(s):
    try:
        d = s.recv(65536)
        return "data" if d else "eof"
    except ConnectionResetError:
        return "reset"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def client(addr, port, mode):
    s = socket.socket()
    s.settimeout(20)
    try:
        s.connect((addr, port))
        if mode == "refused":
            out("connect", "ok")
    except OSError as e:
        out("connect", errno.errorcode.get(e.errno, str(e.errno)))
        return
    if mode == "half":
        data = os.urandom(1 << 20)
        s.sendall(b"h" + data)
        s.shutdown(socket.SHUT_WR)
        out("sent", len(data))
        out("sha", hashlib.sha256(data).hexdigest())
        answer = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            answer += d
        out("answer", answer.decode())
        out("eof", 1)
    elif mode == "reset":
        s.sendall(b"r")
        out("result", read_result(s))
    else:
        out("result", read_result(s))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "server":
        server(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 5 and sys.argv[1] == "client":
        client(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(__doc__)
