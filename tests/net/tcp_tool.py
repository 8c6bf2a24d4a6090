#!/usr/bin/python3
"""TCP client side of the interop tests (tests/net/test_tcp_*.sh), run in the peer namespace.

Standard library only. Each subcommand prints "key value" lines that the shell test parses and exits
0 unless the arguments were bad or the connection could not be made at all: the shell decides what
passes.

  echo     one connection to an RFC 862 echo service: a deterministic pseudo-random stream of
           --bytes is sent by one thread while another reads the echo; SHA-256 of both sides, the
           offset of the first wrong byte, throughput; optionally `ss -tin` of the connection
           during the transfer (--ss FILE)
  discard  one connection to an RFC 863 discard service: --bytes sent, then our FIN; the service
           must close after it (EOF), and never send anything
  chargen  one connection to an RFC 864 chargen service: --bytes read and checked against the
           pattern (72-character lines, line i starting at printable character i mod 95, CR LF);
           then our FIN, and the rest read (and checked) until the service's FIN
  stall    one connection to echo that sends without reading: the echo service must stop reading
           once its send buffer is full, so our sends stall after a bounded amount (--bytes is
           the most we try); `ss -tien` then (--ss FILE); then everything is read back and checked
  conns    --sequential N connections one after another, then --concurrent M at once, each
           sending its own --bytes to echo, half-closing, reading the echo to EOF and checking it
  clients  for --seconds: one connection after another to echo, a few bytes each, counting those
           that succeed (used beside a SYN flood)
"""

import argparse
import hashlib
import random
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time

BLOCK = 1 << 20


def out(key, value):
    print(f"{key} {value}", flush=True)


class Stream:
    """The deterministic test stream: 1 MiB blocks of random.Random(seed).randbytes, so sender and
    checker produce the same bytes whatever sizes they take them in."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.buf = b""
        self.off = 0

    def take(self, n):
        parts = []
        while n > 0:
            if self.off == len(self.buf):
                self.buf = self.rng.randbytes(BLOCK)
                self.off = 0
            k = min(n, len(self.buf) - self.off)
            parts.append(self.buf[self.off:self.off + k])
            self.off += k
            n -= k
        return parts[0] if len(parts) == 1 else b"".join(parts)


def first_difference(a, b):
    for i in range(min(len(a), len(b))):
        if a[i] != b[i]:
            return i
    return min(len(a), len(b))


def connect(host, port, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection((host, port), timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def cmd_echo(args):
    s = connect(args.host, args.port, 10)
    s.settimeout(args.timeout)
    total = args.bytes
    state = {"got": 0, "bad": -1, "err": "", "rx_sha": ""}

    def reader():
        h = hashlib.sha256()
        exp = Stream(args.seed)
        got = 0
        try:
            while True:
                b = s.recv(BLOCK)
                if not b:
                    break
                h.update(b)
                if state["bad"] < 0:
                    e = exp.take(len(b))
                    if e != b:
                        state["bad"] = got + first_difference(e, b)
                got += len(b)
                state["got"] = got
        except OSError as e:
            state["err"] = f"{type(e).__name__}:{e}"
        state["rx_sha"] = h.hexdigest()

    t = threading.Thread(target=reader)
    t0 = time.monotonic()
    t.start()
    gen = Stream(args.seed)
    h = hashlib.sha256()
    sent = 0
    ss_taken = False
    send_err = ""
    try:
        while sent < total:
            n = min(args.chunk, total - sent)
            d = gen.take(n)
            s.sendall(d)
            h.update(d)
            sent += n
            if args.ss and not ss_taken and (sent >= total // 4 or time.monotonic() - t0 > 2):
                # The kernel's view of the connection in the middle of the transfer. (This ss, from
                # iproute2 6.1, prints "ts" and "sack" only with -e.)
                with open(args.ss, "w") as f:
                    subprocess.run(["ss", "-tien", "dst", f"{args.host}:{args.port}"], stdout=f,
                                   stderr=subprocess.STDOUT, timeout=10)
                ss_taken = True
                opts = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[5]
                out("tcpi_options", opts)
        s.shutdown(socket.SHUT_WR)
    except OSError as e:
        send_err = f"{type(e).__name__}:{e}"
    t.join(args.timeout + 5)
    secs = time.monotonic() - t0
    s.close()
    out("sent", sent)
    out("sent_sha256", h.hexdigest())
    out("received", state["got"])
    out("received_sha256", state["rx_sha"] or "none")
    out("first_bad_offset", state["bad"])
    out("send_error", send_err or "none")
    out("recv_error", state["err"] or ("still_reading" if t.is_alive() else "none"))
    out("seconds", f"{secs:.2f}")
    out("mbit_per_s", f"{sent * 8 / secs / 1e6:.1f}" if secs > 0 else "0")


def cmd_discard(args):
    s = connect(args.host, args.port, 10)
    s.settimeout(args.timeout)
    gen = Stream(args.seed)
    sent = 0
    t0 = time.monotonic()
    err = "none"
    got = 0
    eof = 0
    try:
        while sent < args.bytes:
            n = min(args.chunk, args.bytes - sent)
            s.sendall(gen.take(n))
            sent += n
        s.shutdown(socket.SHUT_WR)
        while True:
            b = s.recv(65536)
            if not b:
                eof = 1
                break
            got += len(b)
    except OSError as e:
        err = f"{type(e).__name__}:{e}"
    s.close()
    out("sent", sent)
    out("received", got)
    out("eof", eof)
    out("error", err)
    out("seconds", f"{time.monotonic() - t0:.2f}")


def cmd_stall(args):
    s = connect(args.host, args.port, 10)
    s.setblocking(False)
    gen = Stream(args.seed)
    sent = 0
    pending = b""
    t0 = time.monotonic()
    last = t0
    # Send until no byte has been taken for 3 s (or --bytes were sent).
    while sent < args.bytes and time.monotonic() - last < 3.0:
        if not pending:
            pending = gen.take(min(65536, args.bytes - sent))
        try:
            n = s.send(pending)
        except BlockingIOError:
            n = 0
        if n:
            sent += n
            pending = pending[n:]
            last = time.monotonic()
        else:
            time.sleep(0.05)
    stalled = sent < args.bytes
    out("stalled", 1 if stalled else 0)
    out("stalled_after", sent)
    out("stall_seconds", f"{time.monotonic() - t0:.2f}")
    if args.ss:
        with open(args.ss, "w") as f:
            subprocess.run(["ss", "-tien", "dst", f"{args.host}:{args.port}"], stdout=f,
                           stderr=subprocess.STDOUT, timeout=10)
    # Now read: everything sent (and the rest of the last chunk, sent now) must come back, in
    # order, and then the service's FIN after ours.
    s.setblocking(True)
    s.settimeout(args.timeout)
    st = {"got": 0, "bad": -1, "err": "none"}

    def reader():
        exp = Stream(args.seed)
        try:
            while True:
                b = s.recv(BLOCK)
                if not b:
                    break
                if st["bad"] < 0 and exp.take(len(b)) != b:
                    st["bad"] = st["got"]
                st["got"] += len(b)
        except OSError as e:
            st["err"] = f"{type(e).__name__}:{e}"

    t = threading.Thread(target=reader)
    t.start()
    err = "none"
    try:
        s.sendall(pending)
        sent += len(pending)
        s.shutdown(socket.SHUT_WR)
    except OSError as e:
        err = f"{type(e).__name__}:{e}"
    t.join(args.timeout + 5)
    s.close()
    out("sent", sent)
    out("received", st["got"])
    out("first_bad_offset", st["bad"])
    out("error", err if err != "none" else st["err"])


def chargen_expected(start, n):
    """Bytes start..start+n of the TCP chargen stream."""
    period = 95 * 74
    line0 = bytes(range(32, 127)) * 2
    one = b"".join(line0[i:i + 72] + b"\r\n" for i in range(95))
    assert len(one) == period
    reps = (start % period + n) // period + 2
    big = one * reps
    o = start % period
    return big[o:o + n]


def cmd_chargen(args):
    s = connect(args.host, args.port, 10)
    s.settimeout(args.timeout)
    got = bytearray()
    err = "none"
    t0 = time.monotonic()
    eof = 0
    try:
        while len(got) < args.bytes:
            b = s.recv(min(65536, args.bytes - len(got)))
            if not b:
                err = "early_eof"
                break
            got += b
        # Our FIN: the service ends the stream after what it had queued (at most its send buffer
        # and what is in flight, so the drain is bounded).
        s.shutdown(socket.SHUT_WR)
        while len(got) < args.bytes + (64 << 20):
            b = s.recv(65536)
            if not b:
                eof = 1
                break
            got += b
    except OSError as e:
        err = f"{type(e).__name__}:{e}"
    s.close()
    exp = chargen_expected(0, len(got))
    bad = -1 if exp == bytes(got) else first_difference(exp, got)
    out("received", len(got))
    out("pattern_ok", 1 if bad < 0 and len(got) >= args.bytes else 0)
    out("eof", eof)
    out("first_bad_offset", bad)
    out("first_line", bytes(got[:72]).decode("ascii", "replace"))
    out("error", err)
    out("seconds", f"{time.monotonic() - t0:.2f}")


def payload(i, size):
    return random.Random(i * 7919 + 1).randbytes(size)


def one_conn(host, port, i, size, timeout):
    """Connect, send, half-close, read the echo to EOF. Returns "" or a failure reason."""
    data = payload(i, size)
    try:
        s = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        return f"connect:{type(e).__name__}"
    try:
        s.settimeout(timeout)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
        return "" if bytes(got) == data else "mismatch"
    except OSError as e:
        return f"io:{type(e).__name__}"
    finally:
        s.close()


def concurrent(host, port, m, size, timeout, base):
    """m connections at once with a selector. Returns (ok, {reason: count}, seconds)."""
    sel = selectors.DefaultSelector()
    conns = {}
    fails = {}

    def fail(c, why):
        fails[why] = fails.get(why, 0) + 1
        sel.unregister(c["s"])
        c["s"].close()
        c["done"] = True

    t0 = time.monotonic()
    for k in range(m):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((host, port))
        c = {"s": s, "data": payload(base + k, size), "off": 0, "got": bytearray(), "done": False,
             "shut": False}
        conns[s.fileno()] = c
        sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ, c)
    ok = 0
    deadline = time.monotonic() + timeout
    left = m
    while left > 0 and time.monotonic() < deadline:
        for key, ev in sel.select(timeout=1.0):
            c = key.data
            if c["done"]:
                continue
            s = c["s"]
            try:
                if ev & selectors.EVENT_WRITE and not c["shut"]:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        fail(c, f"connect:errno{err}")
                        left -= 1
                        continue
                    if c["off"] < len(c["data"]):
                        c["off"] += s.send(c["data"][c["off"]:])
                    if c["off"] == len(c["data"]):
                        s.shutdown(socket.SHUT_WR)
                        c["shut"] = True
                        sel.modify(s, selectors.EVENT_READ, c)
                if ev & selectors.EVENT_READ:
                    b = s.recv(65536)
                    if b:
                        c["got"] += b
                    elif c["shut"]:
                        if bytes(c["got"]) == c["data"]:
                            ok += 1
                            sel.unregister(s)
                            s.close()
                            c["done"] = True
                        else:
                            fail(c, "mismatch")
                        left -= 1
                    else:
                        fail(c, "early_eof")
                        left -= 1
            except BlockingIOError:
                pass
            except OSError as e:
                fail(c, f"io:{type(e).__name__}")
                left -= 1
    for c in conns.values():
        if not c["done"]:
            fails["timeout"] = fails.get("timeout", 0) + 1
            sel.unregister(c["s"])
            c["s"].close()
    return ok, fails, time.monotonic() - t0


def cmd_conns(args):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.concurrent + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(want, soft), hard), hard))
    if args.sequential:
        t0 = time.monotonic()
        ok = 0
        fails = {}
        for i in range(args.sequential):
            why = one_conn(args.host, args.port, i, args.bytes, args.timeout)
            if why:
                fails[why] = fails.get(why, 0) + 1
            else:
                ok += 1
        out("sequential_ok", ok)
        out("sequential_failed", sum(fails.values()))
        out("sequential_failures", ",".join(f"{k}={v}" for k, v in sorted(fails.items())) or "none")
        out("sequential_seconds", f"{time.monotonic() - t0:.2f}")
    if args.concurrent:
        ok, fails, secs = concurrent(args.host, args.port, args.concurrent, args.bytes,
                                     args.timeout, 1 << 20)
        out("concurrent_ok", ok)
        out("concurrent_failed", sum(fails.values()))
        out("concurrent_failures", ",".join(f"{k}={v}" for k, v in sorted(fails.items())) or "none")
        out("concurrent_seconds", f"{secs:.2f}")


def cmd_clients(args):
    t0 = time.monotonic()
    ok = 0
    fails = {}
    worst = 0.0
    i = 0
    while time.monotonic() - t0 < args.seconds:
        c0 = time.monotonic()
        why = one_conn(args.host, args.port, i, args.bytes, args.timeout)
        dt = time.monotonic() - c0
        worst = max(worst, dt)
        i += 1
        if why:
            fails[why] = fails.get(why, 0) + 1
        else:
            ok += 1
        time.sleep(args.interval)
    out("clients_ok", ok)
    out("clients_failed", sum(fails.values()))
    out("clients_failures", ",".join(f"{k}={v}" for k, v in sorted(fails.items())) or "none")
    out("clients_worst_seconds", f"{worst:.2f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("cmd", choices=["echo", "discard", "chargen", "stall", "conns", "clients"])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--bytes", type=int, default=1 << 20)
    p.add_argument("--chunk", type=int, default=256 * 1024)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=30.0, help="per operation, seconds")
    p.add_argument("--ss", help="echo: file for `ss -tin` output taken during the transfer")
    p.add_argument("--sequential", type=int, default=0)
    p.add_argument("--concurrent", type=int, default=0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--interval", type=float, default=0.05)
    args = p.parse_args()
    try:
        {"echo": cmd_echo, "discard": cmd_discard, "chargen": cmd_chargen, "stall": cmd_stall,
         "conns": cmd_conns, "clients": cmd_clients}[args.cmd](args)
    except OSError as e:
        out("fatal", f"{type(e).__name__}:{e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
