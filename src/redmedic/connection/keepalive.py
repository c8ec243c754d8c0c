"""ServerAliveInterval / ServerAliveCountMax: notice a peer that stopped answering.

Why not `Transport.set_keepalive`: paramiko's keepalive asks for no reply, so it keeps a NAT
entry open but never notices that the host went away (a frozen VM, a dropped route: TCP
stays "established" and a command would wait forever). OpenSSH asks for a reply and gives
up after ServerAliveCountMax unanswered ones; so do we: a thread sends
`keepalive@openssh.com` with want-reply every `interval` seconds (sshd answers even while
a command is busy), and `dead()` turns true once one request has gone unanswered for
`interval * count_max` seconds. The command loop checks it and fails the host then.
"""

from __future__ import annotations

import threading
import time

import paramiko

_REQUEST = "keepalive@openssh.com"


class Keepalive:
    """Pings one transport from a daemon thread; `dead()` says it stopped answering."""

    def __init__(self, transport: paramiko.Transport, interval: float, count_max: int) -> None:
        self.interval = interval
        self.limit = interval * max(1, count_max)
        self._transport = transport
        self._stop = threading.Event()
        self._pending_since: float | None = None
        self._thread = threading.Thread(target=self._loop, name="redmedic-keepalive", daemon=True)
        self._thread.start()

    def dead(self) -> bool:
        """True when a keepalive has waited longer than interval * ServerAliveCountMax."""
        since = self._pending_since
        return since is not None and time.monotonic() - since >= self.limit

    def stop(self) -> None:
        """End the thread (it also ends by itself once the transport closes)."""
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if not self._transport.is_active():
                return
            self._pending_since = time.monotonic()
            # Blocks until the answer (any answer: sshd replies "failure" to this request,
            # which is all we need) or until the transport is closed.
            try:
                self._transport.global_request(_REQUEST, wait=True)
            except (paramiko.SSHException, EOFError, OSError):
                return
            self._pending_since = None
