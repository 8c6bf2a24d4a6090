#!/usr/bin/env python3
"""Kernel servers in the peer namespace for the preload event-loop tests.

    peer_servers.py HOST ECHO_PORT RST_PORT

TCP echo on ECHO_PORT (echoes until EOF, then sends its FIN), a TCP server on RST_PORT that reads
the first bytes and then resets the connection (SO_LINGER 0), and a UDP echo on ECHO_PORT. Prints
"ready" once all three are bound, then serves until killed.
"""
import socket
import struct
import sys
import threading

host, echo, rst = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def serve_echo(c):
    with c:
        while True:
            b = c.recv(65536)
            if not b:
                break
            c.sendall(b)
        c.shutdown(socket.SHUT_WR)


def listener(port, backlog):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(backlog)
    return s


def tcp_echo(s):
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve_echo, args=(c,), daemon=True).start()


def tcp_rst(s):
    while True:
        c, _ = s.accept()
        c.recv(100)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()


def udp_echo(u):
    while True:
        b, a = u.recvfrom(65536)
        u.sendto(b, a)


u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((host, echo))
for f, s in ((tcp_echo, listener(echo, 64)), (tcp_rst, listener(rst, 8)), (udp_echo, u)):
    threading.Thread(target=f, args=(s,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
