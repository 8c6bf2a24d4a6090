#!/usr/bin/python3
"""UDP client side of the interop tests, run in the peer namespace by tests/net/test_*.sh.

Standard library only. Each subcommand prints "key value" lines that the shell test parses, and exits
0 unless the arguments were bad: the shell decides what passes.

  echo     datagrams of many sizes (--count spread over 0..--max, --big of --big-size, --sizes) to an RFC 862 echo service, each must come back byte-identical
  chargen  datagrams to an RFC 864 chargen service, each must get one reply of the rotating pattern
  discard  datagrams to an RFC 863 discard service, nothing may come back
  refused  a connected socket to a closed port: the ICMP port unreachable must surface as
           ECONNREFUSED on recv
  burst    datagrams to closed ports as fast as possible, counting the ICMP port unreachables that
           come back with a raw socket
"""

import argparse
import errno
import random
import select
import socket
import struct
import sys
import time


def out(key, value):
    print(f"{key} {value}", flush=True)


def udp_socket(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    return s


def recv_until(s, deadline):
    """Returns the next datagram, or None at the deadline. Errors (ECONNREFUSED) propagate."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        r, _, _ = select.select([s], [], [], left)
        if r:
            return s.recv(65535)


def cmd_echo(args):
    rng = random.Random(args.seed)
    s = udp_socket(args)
    s.connect((args.host, args.port))
    sizes = []
    if args.count > 1:
        # Evenly spread over 0..max, both ends included.
        sizes = [round(i * args.max / (args.count - 1)) for i in range(args.count)]
    elif args.count == 1:
        sizes = [args.max]
    sizes += [args.big_size] * args.big
    if args.sizes:
        sizes += [int(x) for x in args.sizes.split(",")]
    ok = retries = mismatch = lost = stale = 0
    recent = []  # payloads already answered: a late echo of a retried one is not a mismatch
    bad_sizes = []
    start = time.monotonic()
    for n in sizes:
        payload = rng.randbytes(n)
        done = False
        for attempt in range(args.retries + 1):
            if attempt:
                retries += 1
            s.send(payload)
            deadline = time.monotonic() + args.timeout
            while True:
                try:
                    data = recv_until(s, deadline)
                except ConnectionRefusedError:
                    data = None
                    out("error", "ECONNREFUSED")
                    break
                if data is None:
                    break
                if data == payload:
                    done = True
                    break
                if data in recent:
                    stale += 1
                    continue
                mismatch += 1
                bad_sizes.append((n, len(data)))
            if done:
                break
        if done:
            ok += 1
            recent.append(payload)
            del recent[:-8]
        else:
            lost += 1
    out("sent", len(sizes))
    out("ok", ok)
    out("retries", retries)
    out("lost", lost)
    out("mismatch", mismatch)
    out("stale", stale)
    out("elapsed", f"{time.monotonic() - start:.3f}")
    if bad_sizes:
        out("mismatch_sizes", " ".join(f"{a}->{b}" for a, b in bad_sizes[:10]))
    return 0


def chargen_ok(data):
    """RFC 864 pattern: printable ASCII lines separated by CR LF, each character the successor of the
    one before it in the 95-character cycle 0x20..0x7e. Returns (ok, reason)."""
    for i, c in enumerate(data):
        if c in (13, 10):
            continue
        if not 0x20 <= c <= 0x7E:
            return False, f"byte {i} is {c:#x}"
        if i > 0:
            p = data[i - 1]
            if p in (13, 10):
                continue
            if c != (p - 0x20 + 1) % 95 + 0x20:
                return False, f"byte {i} {chr(c)!r} does not follow {chr(p)!r}"
    # A reply of random length may end between the CR and the LF of a line end.
    body = data[:-1] if data.endswith(b"\r") else data
    if body.count(b"\r") != body.count(b"\r\n"):
        return False, "CR not followed by LF"
    return True, ""


def cmd_chargen(args):
    rng = random.Random(args.seed)
    s = udp_socket(args)
    s.connect((args.host, args.port))
    replies = bad = lost = 0
    lengths = []
    for i in range(args.count):
        s.send(rng.randbytes(i * 37 % 200))  # the request's content is ignored by the service
        data = recv_until(s, time.monotonic() + args.timeout)
        if data is None:
            lost += 1
            continue
        replies += 1
        lengths.append(len(data))
        good, why = chargen_ok(data)
        if not good:
            bad += 1
            out("bad_reply", why)
    # Exactly one reply per request: nothing more may arrive.
    extra = 0
    while recv_until(s, time.monotonic() + 0.3) is not None:
        extra += 1
    out("sent", args.count)
    out("replies", replies)
    out("lost", lost)
    out("bad_pattern", bad)
    out("extra", extra)
    out("len_min", min(lengths) if lengths else -1)
    out("len_max", max(lengths) if lengths else -1)
    return 0


def cmd_discard(args):
    rng = random.Random(args.seed)
    s = udp_socket(args)
    s.connect((args.host, args.port))
    sent_bytes = 0
    for i in range(args.count):
        payload = rng.randbytes(i * 53 % 1400)
        s.send(payload)
        sent_bytes += len(payload)
    received = 0
    refused = 0
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            if recv_until(s, deadline) is None:
                break
            received += 1
        except ConnectionRefusedError:
            refused += 1
    out("sent", args.count)
    out("sent_bytes", sent_bytes)
    out("received", received)
    out("refused", refused)
    return 0


def cmd_refused(args):
    refused = other = 0
    for i in range(args.count):
        s = udp_socket(args)
        s.connect((args.host, args.port + i))
        s.send(b"anyone there?")
        try:
            data = recv_until(s, time.monotonic() + args.timeout)
            if data is None:
                out("result", "timeout")
            else:
                out("result", f"data {len(data)}")
            other += 1
        except ConnectionRefusedError:
            refused += 1
        except OSError as e:
            out("result", errno.errorcode.get(e.errno, str(e.errno)))
            other += 1
        s.close()
    out("refused", refused)
    out("other", other)
    return 0


def parse_unreach(pkt, src, ports):
    """If pkt (an IPv4 packet from a raw ICMP socket) is a port unreachable from `src` quoting a UDP
    datagram to one of `ports`, returns the quoted destination port, else None."""
    if len(pkt) < 20:
        return None
    ihl = (pkt[0] & 0x0F) * 4
    if socket.inet_ntoa(pkt[12:16]) != src or len(pkt) < ihl + 8 + 20 + 8:
        return None
    icmp_type, icmp_code = pkt[ihl], pkt[ihl + 1]
    if icmp_type != 3 or icmp_code != 3:
        return None
    q = pkt[ihl + 8 :]
    qihl = (q[0] & 0x0F) * 4
    if q[9] != socket.IPPROTO_UDP or len(q) < qihl + 8:
        return None
    dport = struct.unpack("!H", q[qihl + 2 : qihl + 4])[0]
    return dport if dport in ports else None


def cmd_burst(args):
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s = udp_socket(args)  # unconnected: the kernel does not report ICMP errors to it
    if args.broadcast:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    if args.device:  # 255.255.255.255 needs an interface: there is no default route
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, args.device.encode())
    src = args.src or args.host
    ports = [args.port + i for i in range(args.count)]
    start = time.monotonic()
    for p in ports:
        s.sendto(b"x" * args.size, (args.host, p))
        if args.interval:
            time.sleep(args.interval)
    elapsed = time.monotonic() - start
    seen = set()
    dups = 0
    deadline = time.monotonic() + args.listen
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([raw], [], [], left)
        if not r:
            break
        port = parse_unreach(raw.recv(65535), src, set(ports))
        if port is None:
            continue
        if port in seen:
            dups += 1
        seen.add(port)
    out("sent", len(ports))
    out("send_elapsed", f"{elapsed:.4f}")
    out("unreach", len(seen) + dups)
    out("unreach_dups", dups)
    out("first_ports_answered", " ".join(str(p) for p in sorted(seen)[:12]))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("cmd", choices=["echo", "chargen", "discard", "refused", "burst"])
    ap.add_argument("--host", default="198.18.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--max", type=int, default=1472, help="echo: largest size of the sweep")
    ap.add_argument("--big", type=int, default=0, help="echo: extra datagrams of --big-size")
    ap.add_argument("--big-size", type=int, default=4000)
    ap.add_argument("--sizes", default="", help="echo: extra sizes, comma separated")
    ap.add_argument("--size", type=int, default=8, help="burst: payload bytes")
    ap.add_argument("--interval", type=float, default=0.0, help="burst: pause between datagrams")
    ap.add_argument("--listen", type=float, default=1.0, help="burst: seconds to collect errors")
    ap.add_argument("--broadcast", action="store_true", help="burst: allow a broadcast --host")
    ap.add_argument("--device", default="", help="burst: send through this interface")
    ap.add_argument("--src", default="", help="burst: address the errors come from (--host)")
    ap.add_argument("--timeout", type=float, default=0.5)
    ap.add_argument("--retries", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    return {
        "echo": cmd_echo,
        "chargen": cmd_chargen,
        "discard": cmd_discard,
        "refused": cmd_refused,
        "burst": cmd_burst,
    }[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
