#!/usr/bin/env python3
"""An independent KCP peer for clustergo's gate tests.

KCP comes from the PyPI package `kcp` (Cython bindings over the reference ikcp.c by
skywind3000), not from the Rust crates the gate uses. The gate's framing on top of KCP
is re-implemented here from its description: every packet is `u32 BE length | payload`,
and the length 0xFFFFFFFF is the close marker, answered with a marker by the other side.

    kcp_peer.py client HOST PORT   connect to a gate echo server, send packets, check
                                   the echoes, close; prints "OK <n>"
    kcp_peer.py server             print "PORT <p>", then echo the packets of one KCP
                                   conversation until its close marker; prints "OK <n>"

Exit status 0 on success, 1 with a message on stderr otherwise. Every wait is bounded.
"""

import os
import random
import select
import socket
import struct
import sys
import time

from kcp import KCP

CLOSE = 0xFFFFFFFF
DEADLINE_S = 30.0


def pattern(seed, n):
    return bytes(((seed * 131 + i * 7) ^ (i >> 8)) & 0xFF for i in range(n))


# 0 (header only), around one KCP segment (MSS 1376), the gate's default maximum, more.
SIZES = [0, 1, 2, 100, 1371, 1372, 1376, 1377, 5000, 65536] + [
    (i * 7919) % 20000 for i in range(40)
]


class Peer:
    def __init__(self, sock, addr, conv):
        self.sock = sock
        self.addr = addr
        self.kcp = KCP(
            # The binding takes a C `int` and hands it to ikcp_create's uint32: pass
            # conversation ids of 2**31 and above as their two's-complement value.
            conv - 2**32 if conv >= 2**31 else conv,
            max_transmission=1400,
            no_delay=True,
            update_interval=10,
            resend_count=2,
            no_congestion_control=True,
            send_window_size=128,
            receive_window_size=128,
        )
        self.kcp.include_outbound_handler(lambda _kcp, data: self.sock.sendto(data, self.addr))
        self.buf = bytearray()
        self.deadline = time.monotonic() + DEADLINE_S

    def send_packet(self, payload):
        self.kcp.enqueue(struct.pack(">I", len(payload)) + payload)
        self.kcp.flush()

    def send_close(self):
        self.kcp.enqueue(struct.pack(">I", CLOSE))
        self.kcp.flush()

    def input(self, data):
        try:
            self.kcp.receive(data)
        except Exception as e:  # wrong conv or junk: KCP ignores it, so do we
            debug(f"input of {len(data)} bytes refused: {e!r}")

    def pump(self):
        """Waits up to 5 ms for datagrams, feeds them to KCP, runs its clock."""
        if time.monotonic() > self.deadline:
            fail("deadline exceeded")
        ready, _, _ = select.select([self.sock], [], [], 0.005)
        if ready:
            while True:
                try:
                    data, src = self.sock.recvfrom(65536)
                except BlockingIOError:
                    break
                if src == self.addr:
                    self.input(data)
        self.kcp.update()
        for message in self.kcp.get_all_received():
            debug(f"received {len(message)} bytes")
            self.buf += message

    def next_frame(self):
        """("packet", bytes), ("close", None), or None when incomplete."""
        if len(self.buf) < 4:
            return None
        (n,) = struct.unpack(">I", self.buf[:4])
        if n == CLOSE:
            del self.buf[:4]
            return ("close", None)
        if len(self.buf) < 4 + n:
            return None
        payload = bytes(self.buf[4 : 4 + n])
        del self.buf[: 4 + n]
        return ("packet", payload)

    def linger(self):
        """Keeps KCP running until everything we sent is acknowledged, then a little
        longer so our last acknowledgements reach the peer."""
        last = 0.0
        while self.kcp.get_outbound_packets() > 0:
            if time.monotonic() - last > 0.5:
                last = time.monotonic()
                debug(f"linger: {self.kcp.get_outbound_packets()} unacknowledged")
            self.pump()
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            self.pump()


def debug(msg):
    if os.environ.get("KCP_PEER_DEBUG"):
        print(msg, file=sys.stderr, flush=True)


def fail(msg):
    print(msg, file=sys.stderr, flush=True)
    sys.exit(1)


def client(host, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    peer = Peer(sock, (host, port), random.randint(1, 2**31))
    for i, n in enumerate(SIZES):
        peer.send_packet(pattern(i, n))
    got = 0
    while got < len(SIZES):
        peer.pump()
        while (frame := peer.next_frame()) is not None:
            kind, payload = frame
            if kind == "close":
                fail(f"server closed after {got} echoes")
            if payload != pattern(got, SIZES[got]):
                fail(f"echo {got} differs: {len(payload)} bytes, expected {SIZES[got]}")
            got += 1
    peer.send_close()
    while True:
        peer.pump()
        frame = peer.next_frame()
        if frame == ("close", None):
            break
        if frame is not None:
            fail("packet after our close marker")
    peer.linger()
    print(f"OK {got}", flush=True)


def server():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    ready, _, _ = select.select([sock], [], [], DEADLINE_S)
    if not ready:
        fail("no client")
    data, addr = sock.recvfrom(65536)
    sock.setblocking(False)
    (conv,) = struct.unpack("<I", data[:4])
    peer = Peer(sock, addr, conv)
    peer.input(data)
    echoed = 0
    while True:
        peer.pump()
        frame = peer.next_frame()
        while frame is not None:
            kind, payload = frame
            if kind == "close":
                peer.send_close()
                peer.linger()
                print(f"OK {echoed}", flush=True)
                return
            peer.send_packet(payload)
            echoed += 1
            frame = peer.next_frame()


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"] and len(sys.argv) == 4:
        client(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:] == ["server"]:
        server()
    else:
        fail(__doc__)
