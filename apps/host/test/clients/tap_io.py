#!/usr/bin/python3
"""Sends and receives Ethernet frames on a host tap's interface with a raw
packet socket, for the host tests of virga-vmm's virtio-net. A frame the
host sends on the interface goes into the tap, so the VMM reads it and
hands it to the guest; a frame the guest sends comes out of the tap and is
seen here as received.

usage: tap_io.py IFNAME send DST_MAC ETHERTYPE LEN SEED
       tap_io.py IFNAME recv ETHERTYPE TIMEOUT_S
The payload pattern is the probe guest's: byte i = (i*7 + seed) & 0xff.
recv prints one JSON line: {"len", "dst", "src", "type", "seed"} (seed null
when the payload is not the pattern), or {"timeout": true}.
"""
import json
import socket
import sys
import time

SRC_MAC = bytes.fromhex("0256b0b0b0b0")  # locally administered, unicast


def mac_bytes(text):
    return bytes(int(part, 16) for part in text.split(":"))


def mac_text(raw):
    return ":".join("%02x" % b for b in raw)


def pattern(seed, length):
    return bytes(((i * 7 + seed) & 0xFF) for i in range(length))


def main():
    ifname, verb = sys.argv[1], sys.argv[2]
    if verb == "send":
        dst, ethertype, length, seed = sys.argv[3], int(sys.argv[4], 0), int(sys.argv[5]), int(sys.argv[6])
        frame = mac_bytes(dst) + SRC_MAC + ethertype.to_bytes(2, "big")
        frame += pattern(seed & 0xFF, length - len(frame))
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        sock.bind((ifname, 0))
        sock.send(frame)
        return
    ethertype, timeout = int(sys.argv[3], 0), float(sys.argv[4])
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
    sock.bind((ifname, 0))
    deadline = time.monotonic() + timeout
    print(json.dumps({"listening": True}), flush=True)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            print(json.dumps({"timeout": True}), flush=True)
            return
        sock.settimeout(left)
        try:
            frame, addr = sock.recvfrom(65536)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        payload = frame[14:]
        seed = payload[0] if payload and payload == pattern(payload[0], len(payload)) else None
        print(json.dumps({"len": len(frame), "dst": mac_text(frame[0:6]), "src": mac_text(frame[6:12]),
                          "type": "0x%04x" % int.from_bytes(frame[12:14], "big"), "seed": seed}), flush=True)
        return


if __name__ == "__main__":
    main()
