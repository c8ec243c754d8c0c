"""`ansible_connection: local`: the same contract as SSH, run with subprocess on this machine.

Everything above `_exec` (sudo, the atomic-write script, error messages) is shared with SSH
in `base`, so a playbook behaves the same whether a host is reached over SSH or is the
control node itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from contextlib import suppress
from typing import IO

from redmedic.connection.base import Connection, ConnectOptions, script_on_stdin, timeout_error
from redmedic.connection.outputcap import OutputCap
from redmedic.errors import CommandError
from redmedic.model.inventory import Host


class LocalConnection(Connection):
    """Runs commands with `/bin/sh -c` on the control node; `forward` is the identity."""

    def __init__(self, host: Host, options: ConnectOptions | None = None) -> None:
        opts = options or ConnectOptions()
        super().__init__(host, command_timeout=opts.command_timeout)

    def close(self) -> None:
        """Nothing to release."""

    def _exec(self, command: str, stdin: bytes, timeout: float | None) -> tuple[int, bytes, bytes]:
        """Run under /bin/sh in its own process group, so a timeout kills the whole tree.

        (Killing only the shell would leave a child holding the pipes open, and the readers
        would then wait for it forever.) Output is read by threads into `OutputCap`s, so a
        command printing 50 MB keeps only the capped head and tail in memory.
        """
        reader, script = script_on_stdin(command)  # off the command line: see there
        try:
            process = subprocess.Popen(
                ["/bin/sh", "-c", reader],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise CommandError(
                self.host.name, f"cannot start /bin/sh: {exc.strerror or exc}"
            ) from None
        out, err = OutputCap(), OutputCap()
        threads = [
            threading.Thread(target=_feed, args=(process.stdin, script + stdin), daemon=True),
            threading.Thread(target=_drain, args=(process.stdout, out), daemon=True),
            threading.Thread(target=_drain, args=(process.stderr, err), daemon=True),
        ]
        for thread in threads:
            thread.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            process.wait(timeout=timeout)
            for thread in threads:  # a child left holding the pipes counts against the timeout
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
                if thread.is_alive():
                    raise subprocess.TimeoutExpired(command, timeout or 0.0)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise timeout_error(self.host.name, command, timeout, "killed") from None
        return process.returncode, out.value(), err.value()


def _feed(pipe: IO[bytes] | None, data: bytes) -> None:
    """Write stdin, then close it; a command that exits without reading it is fine."""
    if pipe is None:
        return
    with suppress(BrokenPipeError, OSError):
        pipe.write(data)
    with suppress(BrokenPipeError, OSError):
        pipe.close()


def _drain(pipe: IO[bytes] | None, sink: OutputCap) -> None:
    """Read a pipe to its end into `sink` (which keeps only its head and tail)."""
    if pipe is None:
        return
    with pipe:
        while chunk := pipe.read1(65536):  # type: ignore[attr-defined]
            sink.add(chunk)
