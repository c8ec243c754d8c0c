"""ProxyCommand: a command whose stdin/stdout carry the SSH connection, as OpenSSH runs it.

Why a socketpair and not `paramiko.ProxyCommand`: paramiko splits the command with shlex
and runs it without a shell (so `ssh -W %h:%p bastion 2>/dev/null`, pipes and `exec` do not
work as in OpenSSH, which runs `/bin/sh -c "exec CMD"`), and its pipe object is not a real
socket (no select() next to our channels). Here the child gets one end of a socketpair as
its stdin and stdout; we hand the other end to paramiko like any TCP socket.

The child is ours: `close()` closes our end, gives it a moment to exit on EOF, then
terminates (and reaps) it, so no zombie or orphaned `ssh -W` outlives the connection. Its
stderr goes to a temp file so the last line can explain a failed handshake in one line.
Nothing secret is ever put on its argv or in its environment by us.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
from contextlib import suppress
from typing import IO

_EXIT_WAIT_S = 1.0


class ProxyProcess:
    """A running ProxyCommand and our end of its socketpair (`sock`)."""

    def __init__(self, command: str) -> None:
        """Start `command` under `/bin/sh -c` (OSError if that is impossible)."""
        self.command = command
        ours, theirs = socket.socketpair()
        # Lives as long as the child (closed in close()), so no context manager.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                ["/bin/sh", "-c", f"exec {command}"],
                stdin=theirs.fileno(),
                stdout=theirs.fileno(),
                stderr=self._stderr,
                start_new_session=True,  # Ctrl-C goes to us; we stop it in close()
            )
        except OSError:
            ours.close()
            self._stderr.close()
            raise
        finally:
            theirs.close()
        self.sock = ours

    def failure(self) -> str:
        """Why the command is no use, for an error message: its exit and last stderr line."""
        try:  # it usually just exited: that is why the handshake failed
            code: int | None = self._process.wait(timeout=_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            code = None
        self._stderr.seek(0)
        lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        said = f": {lines[-1].strip()}" if lines else ""
        state = "is running" if code is None else f"exited with {code}"
        return f"ProxyCommand `{self.command}` {state}{said}"

    def close(self) -> None:
        """Close our end, then make sure the child is gone and reaped; safe to call twice."""
        self.sock.close()
        try:
            self._process.wait(timeout=_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=_EXIT_WAIT_S)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        self._stderr.close()
