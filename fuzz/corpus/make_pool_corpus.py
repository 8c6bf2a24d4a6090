#!/usr/bin/env python3
"""Writes the seed corpora of the pool-bound variants (fuzz/fuzz_pool_engine.c,
fuzz/fuzz_pool_tcp.c) into fuzz/corpus/fuzz_pool_engine/ and fuzz/corpus/fuzz_pool_tcp/: the
seeds of fuzz_engine and fuzz_tcp, plus inputs that take the pool to its limits (datagrams to a
socket that never reads, reassemblies left incomplete, tiny TCP segments nobody reads, a send
queue nobody acknowledges). Standard library only.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_engine_corpus as E  # noqa: E402
import make_tcp_corpus as T  # noqa: E402


def engine_seeds():
    yield from E.seeds()
    # sockets 1 (port 9) and 2 (port 5000, connected to the peer's 6000) never read in the
    # pool-bound build: both full put the pool under pressure
    yield "unread_flood", b"".join(E.rec(E.udp(6000, 5000, bytes([i]) * 40), 0) for i in range(80))
    yield "two_unread_floods", b"".join(E.rec(E.udp(6000, 5000, bytes([i]) * 40), 0) +
                                        E.rec(E.udp(40000 + i, 9, bytes([i]) * 40), 0)
                                        for i in range(60))
    # eight datagrams of tiny fragments, each missing its last piece
    payload = bytes(range(256)) * 2
    frames = []
    for ident in range(8):
        frames += E.fragments(40100 + ident, 7, payload, 0x5000 + ident, chunk=16)[:-1]
    yield "fragment_flood", b"".join(E.rec(f, 0) for f in frames)


def tcp_seeds():
    yield from T.SEEDS.items()
    yield "tiny_segments_unread", b"".join(T.seg(0, T.ACK, seq=6 * i, dlen=1, t=0)
                                           for i in range(120))
    # out of order (a hole before each): nothing to compact, one buffer each
    yield "two_connections_holes", b"".join(T.seg(0, T.ACK, seq=12 * i + 6, dlen=1, t=0) +
                                            T.seg(1, T.ACK, seq=12 * i + 6, dlen=1, t=0)
                                            for i in range(60))
    yield "send_queue_unacked", b"".join(T.app(T.SEND, 127) for _ in range(40)) + T.app(T.WAIT, 3)


def write(name, seeds):
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
    os.makedirs(out, exist_ok=True)
    for n, data in seeds:
        with open(os.path.join(out, n), "wb") as f:
            f.write(data)


def main():
    write("fuzz_pool_engine", engine_seeds())
    write("fuzz_pool_tcp", tcp_seeds())
    return 0


if __name__ == "__main__":
    sys.exit(main())
