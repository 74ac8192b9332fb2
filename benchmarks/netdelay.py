"""A TCP proxy, in a process of its own, that delays each direction by a fixed time.

``tc netem`` needs root and a network namespace; this needs neither. Every
variant talks to PostgreSQL through the same proxy, so a round trip costs two
one-way delays on top of loopback, as between two hosts of a data centre
(0.25 ms one way: hosts in one rack or zone; 1 ms: across zones).

Each connection has two pipes (client to server, server to client), one
thread each: it reads a chunk with the kernel's arrival timestamp
(``SO_TIMESTAMPNS``), sleeps until arrival + delay, and forwards it. Order is
kept, and a chunk that arrived while the pipe slept is due at its own arrival
+ delay, so a burst is delayed once, not once per chunk: a delay line, not a
bandwidth limit. It runs in its own process so that its threads never hold
the benchmark's GIL. ``time.sleep`` wakes some tens of µs late on Linux (timer
slack, load): the run measures and reports the round trip it actually got.

    python -m benchmarks.netdelay HOST PORT DELAY_MS   # prints "listening HOST PORT"
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

__all__ = ["delayed_proxy", "serve"]

_CHUNK = 65536
_SPIN = 0.0001


# Linux: the kernel stamps each received segment with its arrival time
# (CLOCK_REALTIME), so a pipe sleeping on one chunk still times the next one
# from when it arrived, not from when it was read.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def _pump(source: socket.socket, target: socket.socket, delay: float) -> None:
    source.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    space = socket.CMSG_SPACE(16)
    try:
        while True:
            data, ancillary, _, _ = source.recvmsg(_CHUNK, space)
            arrived = time.time()
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                    seconds, nanoseconds = struct.unpack("qq", value[:16])
                    arrived = seconds + nanoseconds / 1e9
            if not data:
                target.shutdown(socket.SHUT_WR)
                return
            due = arrived + delay
            remaining = due - time.time()
            if remaining > _SPIN:
                time.sleep(remaining - _SPIN)
            while time.time() < due:  # the last ~100 µs: sleep would overshoot
                pass
            target.sendall(data)
    except OSError:
        pass


def _pipe(source: socket.socket, target: socket.socket, delay: float) -> None:
    threading.Thread(target=_pump, args=(source, target, delay), daemon=True).start()


def serve(host: str, port: int, delay_ms: float) -> None:
    """Accept on an ephemeral loopback port and forward to ``host:port``; never returns."""
    delay = delay_ms / 1000
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"listening 127.0.0.1 {listener.getsockname()[1]}", flush=True)
    while True:
        client, _ = listener.accept()
        upstream = socket.create_connection((host, port))
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _pipe(client, upstream, delay)
        _pipe(upstream, client, delay)


@contextlib.contextmanager
def delayed_proxy(host: str, port: int, delay_ms: float) -> Iterator[tuple[str, int]]:
    """Run the proxy in a child process; yield its address."""
    command = [sys.executable, "-m", "benchmarks.netdelay", host, str(port), str(delay_ms)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        _, proxy_host, proxy_port = process.stdout.readline().split()
        yield proxy_host, int(proxy_port)
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        serve(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
