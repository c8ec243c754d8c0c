"""A session channel opened ahead: the next command on a host skips the channel open's wait.

Every exec waits three round trips: the channel open, sshd's answer to the exec request
(only then does it grant the window our script needs, see `execrequest`), and the output.
The open does not depend on the command, so as soon as a command takes a channel the next
one is asked for in the background; a command that comes later finds it open and waits
for two round trips. A session channel costs sshd no process until a command runs on it,
and the spare left at the end closes with the transport.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import paramiko

from redmedic.connection.sshauth import SSH_ERRORS


class _Opening:
    """One channel open under way in a thread of its own."""

    def __init__(self, open_channel: Callable[[], paramiko.Channel]) -> None:
        self.done = threading.Event()
        self.channel: paramiko.Channel | None = None
        self._open = open_channel
        threading.Thread(target=self._run, name="redmedic-spare-channel", daemon=True).start()

    def _run(self) -> None:
        try:
            self.channel = self._open()
        except SSH_ERRORS:
            pass  # the command that wanted it opens its own, and reports what fails
        finally:
            self.done.set()


class SpareChannel:
    """At most one channel opened ahead, for whichever command of the host comes next."""

    def __init__(self, open_channel: Callable[[], paramiko.Channel]) -> None:
        self._open = open_channel
        self._lock = threading.Lock()
        self._next: _Opening | None = None

    def take(self) -> paramiko.Channel | None:
        """The channel opened ahead (waiting for it if its open is under way), else None."""
        with self._lock:
            opening, self._next = self._next, None
        if opening is None:
            return None
        opening.done.wait()
        channel = opening.channel
        return channel if channel is not None and not channel.closed else None

    def ask(self) -> None:
        """Start opening the next channel unless one is open or on its way."""
        with self._lock:
            if self._next is None:
                self._next = _Opening(self._open)
