#!/usr/bin/env python3
"""Kernel-side peers for tests/net/test_pool_exhaustion.sh (issue 12, item 1).

    pool_attack.py chargen HOST N SECONDS   N connections to HOST:19 (chargen) that set TCP_MAXSEG
                                            88 and a 2 KiB receive buffer and never read; prints
                                            "chargen_connected K", holds them SECONDS, closes
    pool_attack.py rate HOST SECONDS        a well-behaved peer: SECONDS of upload to HOST:9
                                            (discard) then SECONDS of download from HOST:19
                                            (chargen); prints "up_bps X" and "down_bps Y"
    pool_attack.py blast PORT               a server on PORT that sends to every connection as
                                            fast as it takes (for clients that never read);
                                            prints "ready", serves until killed
    pool_attack.py frags HOST PORT N NFRAG  N UDP datagrams of NFRAG 8-byte IPv4 fragments each
                                            to HOST:PORT (scapy, raw); prints "frags_sent N*NFRAG"
"""
import socket
import sys
import threading
import time


def chargen(host, n, seconds):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 88)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        s.settimeout(5)
        try:
            s.connect((host, 19))
            socks.append(s)
        except OSError:
            s.close()
    print("chargen_connected", len(socks), flush=True)
    time.sleep(seconds)
    for s in socks:
        s.close()


def rate(host, seconds):
    payload = bytes(65536)
    s = socket.create_connection((host, 9), timeout=5)
    end = time.monotonic() + seconds
    sent = 0
    t0 = time.monotonic()
    while time.monotonic() < end:
        try:
            sent += s.send(payload)
        except socket.timeout:
            pass
    up = sent * 8 / (time.monotonic() - t0)
    s.close()
    s = socket.create_connection((host, 19), timeout=5)
    got = 0
    t0 = time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end:
        try:
            b = s.recv(262144)
        except socket.timeout:
            continue
        if not b:
            break
        got += len(b)
    down = got * 8 / (time.monotonic() - t0)
    s.close()
    print("up_bps", int(up), flush=True)
    print("down_bps", int(down), flush=True)


def blast(port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(256)
    print("ready", flush=True)
    payload = bytes(65536)

    def serve(c):
        try:
            while True:
                c.sendall(payload)
        except OSError:
            pass
        c.close()

    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def frags(host, port, n, nfrag):
    from scapy.all import IP, UDP, Raw, fragment, send, conf  # noqa: E402 (Debian's scapy)
    conf.verb = 0
    pkts = []
    for i in range(n):
        d = IP(dst=host, id=0x4000 + i) / UDP(sport=40000, dport=port) / Raw(bytes(nfrag * 8 - 8))
        pkts += fragment(d, fragsize=8)
    send(pkts, verbose=False)
    print("frags_sent", len(pkts), flush=True)


def main():
    mode = sys.argv[1]
    if mode == "chargen":
        chargen(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif mode == "rate":
        rate(sys.argv[2], float(sys.argv[3]))
    elif mode == "blast":
        blast(int(sys.argv[2]))
    elif mode == "frags":
        frags(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
