#!/usr/bin/env python3
"""Socket programs for test_arp_unreach.sh and test_preload_reuseport.sh, run either on the kernel
or under libtoe-preload (the same code both ways, so the checks describe the kernel's behaviour).

  connect ADDR PORT       one blocking TCP connect; prints "errno=N ms=T" (errno 0: connected)
  udp ADDR PORT WAIT_S    a connected UDP socket sends one datagram, waits WAIT_S seconds, sends
                          again; prints "first=N second=N third=N" (errno of each send, 0: ok)
  serve ADDR PORT N T     two SO_REUSEPORT TCP listeners and two SO_REUSEPORT UDP sockets on
                          ADDR:PORT; answers N connections (a line back for the line each sends)
                          and N datagrams (each echoed), or gives up after T seconds; prints
                          "ready" once bound and at the end "tcp A B udp C D"
  client ADDR PORT N BASE N TCP connections (from ports BASE+i) and N datagrams (from ports
                          BASE+N+i), one after the other;
                          prints "tcp_ok X udp_ok Y ports Z" (replies seen, distinct ports used)
"""
import errno
import select
import socket
import sys
import time


def cmd_connect(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t0 = time.monotonic()
    err = 0
    try:
        s.connect((addr, int(port)))
    except OSError as e:
        err = e.errno
    ms = int((time.monotonic() - t0) * 1000)
    print("errno=%d ms=%d" % (err, ms), flush=True)


def send_errno(s):
    try:
        s.send(b"x")
        return 0
    except OSError as e:
        return e.errno


def cmd_udp(addr, port, wait_s):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((addr, int(port)))
    first = send_errno(s)
    time.sleep(float(wait_s))
    second = send_errno(s)
    third = send_errno(s)
    print("first=%d second=%d third=%d" % (first, second, third), flush=True)


def reuse_socket(kind, addr, port):
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 1:
        raise SystemExit("SO_REUSEPORT does not read back as 1")
    s.bind((addr, int(port)))
    if kind == socket.SOCK_STREAM:
        s.listen(128)
    return s


def cmd_serve(addr, port, n, limit):
    n, limit = int(n), float(limit)
    lis = [reuse_socket(socket.SOCK_STREAM, addr, port) for _ in range(2)]
    uds = [reuse_socket(socket.SOCK_DGRAM, addr, port) for _ in range(2)]
    print("ready", flush=True)
    tcp = [0, 0]
    udp = [0, 0]
    conns = {}
    end = time.monotonic() + limit
    while (sum(tcp) < n or sum(udp) < n or conns) and time.monotonic() < end:
        r, _, _ = select.select(lis + uds + list(conns), [], [], 0.5)
        for s in r:
            if s in lis:
                c, _ = s.accept()
                conns[c] = (lis.index(s), b"")
            elif s in uds:
                data, peer = s.recvfrom(2048)
                udp[uds.index(s)] += 1
                s.sendto(data, peer)
            else:
                k, buf = conns[s]
                data = s.recv(256)
                if not data:
                    del conns[s]
                    s.close()
                    continue
                buf += data
                if buf.endswith(b"\n"):
                    tcp[k] += 1
                    s.sendall(buf)
                    del conns[s]
                    s.close()
                else:
                    conns[s] = (k, buf)
    print("tcp %d %d udp %d %d" % (tcp[0], tcp[1], udp[0], udp[1]), flush=True)


def cmd_client(addr, port, n, base):
    n, base = int(n), int(base)
    ports = set()
    tcp_ok = 0
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past an earlier TIME_WAIT
        s.bind(("0.0.0.0", base + i))  # distinct flows, whatever the ephemeral choice
        s.connect((addr, int(port)))
        ports.add(("tcp", s.getsockname()[1]))
        line = b"conn %d\n" % i
        s.sendall(line)
        got = b""
        while not got.endswith(b"\n"):
            d = s.recv(256)
            if not d:
                break
            got += d
        tcp_ok += got == line
        s.close()
    udp_ok = 0
    socks = []
    for i in range(n):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("0.0.0.0", base + n + i))
        ports.add(("udp", u.getsockname()[1]))
        u.sendto(b"dgram %d" % i, (addr, int(port)))
        socks.append((u, b"dgram %d" % i))
    # one send each, no retries: a lost datagram shows as a missing reply
    for u, want in socks:
        u.settimeout(10)
        try:
            udp_ok += u.recv(2048) == want
        except OSError:
            pass
        u.close()
    print("tcp_ok %d udp_ok %d ports %d" % (tcp_ok, udp_ok, len(ports)), flush=True)


def main():
    cmds = {"connect": cmd_connect, "udp": cmd_udp, "serve": cmd_serve, "client": cmd_client}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmds[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    main()
