#!/usr/bin/python3
"""Hand-made ARP requests from the peer namespace, for tests/net/test_arp.sh. Needs scapy (Debian's
/usr/bin/python3 has it).

    arp_tool.py IFACE NAME:KIND:TARGET[:SENDER_IP[:SENDER_MAC]] ...

For each case, sends one frame on IFACE, collects for --wait seconds the ARP replies that answer it
(opcode 2, sender IP = TARGET) and prints

    NAME replies N
    NAME reply OP HWSRC PSRC HWDST PDST ETHSRC ETHDST      (for each reply)

KIND is "req" (an ordinary request), "probe" (RFC 5227 probe: sender IP 0.0.0.0), "short" (a request
cut to 20 bytes of ARP), "badhlen" (hardware length 5) or "reply" (an unsolicited reply claiming
TARGET). The sender defaults to the interface's own MAC and address.
"""

import argparse
import sys
import time

from scapy.all import ARP, AsyncSniffer, Ether, conf, get_if_addr, get_if_hwaddr, raw, sendp

conf.verb = 0


def build(kind, target, sip, smac):
    eth = Ether(src=smac, dst="ff:ff:ff:ff:ff:ff")
    if kind == "req":
        return eth / ARP(op=1, hwsrc=smac, psrc=sip, hwdst="00:00:00:00:00:00", pdst=target)
    if kind == "probe":
        return eth / ARP(op=1, hwsrc=smac, psrc="0.0.0.0", hwdst="00:00:00:00:00:00", pdst=target)
    if kind == "short":
        full = raw(eth / ARP(op=1, hwsrc=smac, psrc=sip, pdst=target))
        return Ether(full[: 14 + 20])
    if kind == "badhlen":
        return eth / ARP(op=1, hwlen=5, hwsrc=smac, psrc=sip, pdst=target)
    if kind == "reply":
        return Ether(src=smac, dst="ff:ff:ff:ff:ff:ff") / ARP(
            op=2, hwsrc=smac, psrc=target, hwdst="ff:ff:ff:ff:ff:ff", pdst=target
        )
    raise SystemExit(f"unknown kind {kind}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("iface")
    ap.add_argument("cases", nargs="+")
    ap.add_argument("--wait", type=float, default=1.0)
    a = ap.parse_args()
    my_mac = get_if_hwaddr(a.iface)
    my_ip = get_if_addr(a.iface)
    for case in a.cases:
        parts = case.split(":", 4)
        name, kind, target = parts[0], parts[1], parts[2]
        sip = parts[3] if len(parts) > 3 and parts[3] else my_ip
        smac = parts[4] if len(parts) > 4 and parts[4] else my_mac
        sniffer = AsyncSniffer(iface=a.iface, filter="arp", store=True)
        sniffer.start()
        time.sleep(0.2)  # the capture must be running before the request leaves
        sendp(build(kind, target, sip, smac), iface=a.iface)
        time.sleep(a.wait)
        pkts = sniffer.stop() or []
        replies = [p for p in pkts if ARP in p and p[ARP].op == 2 and p[ARP].psrc == target]
        if kind == "reply":  # our own frame comes back in the capture; it is not an answer
            replies = [p for p in replies if p[Ether].src.lower() != smac.lower()]
        print(f"{name} replies {len(replies)}", flush=True)
        for p in replies:
            r = p[ARP]
            print(f"{name} reply {r.op} {r.hwsrc} {r.psrc} {r.hwdst} {r.pdst} {p.src} {p.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
