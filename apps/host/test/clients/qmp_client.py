#!/usr/bin/python3
"""A minimal QMP client written from QEMU's documented protocol
(docs/interop/qmp-spec): greeting, capabilities negotiation, commands with
ids, asynchronous events in between, and file descriptors passed with
SCM_RIGHTS. Used by the host tests as an independent client of virga-vmm.

usage: qmp_client.py SOCKET SCRIPT_JSON
SCRIPT_JSON is a list of steps: {"execute": ..., "arguments": ...,
"fd_path": optional, "tap": optional}; "tap" names an existing tap to open
and pass (IFF_TAP | IFF_NO_PI, plus IFF_VNET_HDR unless "vnet_hdr" is false).
Prints one JSON line per step: {"reply": ..., "events": [...]}.
"""
import fcntl
import json
import os
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000


def open_tap(name, vnet_hdr):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))
    return fd


class QmpClient:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buffer = b""
        self.events = []
        self.next_id = 0
        self.greeting = self.read_message()
        if "QMP" not in self.greeting:
            raise RuntimeError("no QMP greeting: %r" % (self.greeting,))

    def read_message(self):
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def command(self, name, arguments=None, fds=()):
        self.next_id += 1
        request = {"execute": name, "id": "py-%d" % self.next_id}
        if arguments is not None:
            request["arguments"] = arguments
        data = json.dumps(request).encode()
        if fds:
            socket.send_fds(self.sock, [data], list(fds))
        else:
            self.sock.sendall(data)
        while True:
            message = self.read_message()
            if "event" in message:
                self.events.append(message)
                continue
            if message.get("id") != request["id"]:
                raise RuntimeError("reply for another request: %r" % (message,))
            return message


def main():
    client = QmpClient(sys.argv[1])
    steps = json.loads(sys.argv[2])
    print(json.dumps({"greeting": client.greeting}), flush=True)
    for step in steps:
        fds = []
        if "fd_path" in step:
            fds.append(os.open(step["fd_path"], os.O_RDONLY))
        if "tap" in step:
            fds.append(open_tap(step["tap"], step.get("vnet_hdr", True)))
        reply = client.command(step["execute"], step.get("arguments"), fds)
        for fd in fds:
            os.close(fd)
        events, client.events = client.events, []
        print(json.dumps({"reply": reply, "events": events}), flush=True)


if __name__ == "__main__":
    main()
