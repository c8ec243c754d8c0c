"""What one host's connection cost on the wire: connections, channels, execs, round trips.

Why count: on a real network each round trip costs an RTT (20-100 ms), so the number of
round trips per host decides how long a fleet run waits, far more than CPU. `-vvv` prints
one line per host when its connection closes, e.g.

    ssh redis-1: 1 connection, 2 channels, 1 exec, 3 on the kept shell, 14 round trips
    (connect 6, diagnose 5, plan 3)

(one line). `kept` counts the become commands that ran on the kept-open shell (`keptshell`):
no exec of their own but the one that started that shell, which is one of `execs`.

A round trip is a *turn* on the TCP socket: bytes sent, then bytes received — what a
request/response costs one RTT for (several packets sent before the answer count once).
It is counted on the first socket (the TCP connection, or the ProxyCommand's socketpair),
so a ProxyJump chain's hops count too. The phase a turn belongs to is whatever
`Traffic.phase` says when the answer arrives: "connect" until the executor names the next
one. Counting costs a lock and two integer updates per socket call; it never changes what
is sent.
"""

from __future__ import annotations

import socket
import threading
from typing import Any


class Traffic:
    """Counters for one host's connection; thread-safe (paramiko reads on its own thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.connections = 0  # TCP (or ProxyCommand) connections, each with its SSH handshakes
        self.channels = 0  # SSH channels opened: sessions and port forwards
        self.execs = 0  # remote commands started (one per session channel)
        self.kept = 0  # become commands run on the kept-open shell, not an exec of their own
        self.trips: dict[str, int] = {}  # round trips per phase, in the order phases came
        self.phase = "connect"
        self._sent = False

    def sent(self) -> None:
        self._sent = True

    def received(self) -> None:
        with self._lock:
            if self._sent:
                self._sent = False
                self.trips[self.phase] = self.trips.get(self.phase, 0) + 1

    def count(self, what: str) -> None:
        """One more `connections`, `channels`, `execs` or `kept`."""
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)

    def wrap(self, sock: socket.socket) -> socket.socket:
        """`sock`, counted: hand the result to paramiko instead of the socket itself."""
        self.count("connections")
        return _CountingSocket(sock, self)  # type: ignore[return-value]

    def summary(self) -> str:
        def n(count: int, word: str) -> str:
            return f"{count} {word}{'' if count == 1 else 's'}"

        total = sum(self.trips.values())
        phases = ", ".join(f"{phase} {count}" for phase, count in self.trips.items())
        kept = f"{self.kept} on the kept shell, " if self.kept else ""
        return (
            f"{n(self.connections, 'connection')}, {n(self.channels, 'channel')}, "
            f"{n(self.execs, 'exec')}, {kept}{n(total, 'round trip')}"
            + (f" ({phases})" if phases else "")
        )


class _CountingSocket:
    """A socket whose send/recv tell a `Traffic`; everything else is the socket's own."""

    def __init__(self, sock: socket.socket, traffic: Traffic) -> None:
        self._sock = sock
        self._traffic = traffic

    def send(self, data: bytes, *flags: int) -> int:
        sent = self._sock.send(data, *flags)
        if sent:
            self._traffic.sent()
        return sent

    def sendall(self, data: bytes, *flags: int) -> None:
        self._sock.sendall(data, *flags)
        if data:
            self._traffic.sent()

    def recv(self, size: int, *flags: int) -> bytes:
        data = self._sock.recv(size, *flags)
        if data:
            self._traffic.received()
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)
