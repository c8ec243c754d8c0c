"""`ansible_connection: local`: the same contract as SSH, run with subprocess on this machine.

Everything above `_exec` (sudo, the atomic-write script, error messages) is shared with SSH
in `base`, so a playbook behaves the same whether a host is reached over SSH or is the
control node itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
from contextlib import suppress

from redmedic.connection.base import Connection, ConnectOptions, script_on_stdin, timeout_error
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

        (Killing only the shell would leave a child holding the pipes open, and
        `communicate` would then wait for it forever.)
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
        try:
            out, err = process.communicate(script + stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise timeout_error(self.host.name, command, timeout, "killed") from None
        return process.returncode, out, err
