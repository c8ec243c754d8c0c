"""What an end-to-end test sees of a test host: ``SystemdHost`` and the ``ssh()`` helper.

Tests inject faults and inspect state through the same door redmedic uses — SSH as root
with this run's key and strict host key checking — using the system OpenSSH client, so a
test's own view never depends on the code under test.

Bounds, sized for a busy 2-core machine (six test runs at once, hosts booting next door),
never for an idle one: they exist to stop a hung command, not to time a working one.

* ``CONNECT_TIMEOUT`` (30 s) is ssh's ``ConnectTimeout``, which covers the TCP connect *and*
  the SSH banner and key exchange; sshd re-executes itself for every connection, so under
  load the handshake alone can take seconds.
* ``COMMAND_TIMEOUT`` (300 s) bounds a whole ``ssh()`` call: login (PAM, logind, root's user
  manager on a first login) plus the command. A clean-clone run here once lost a test at
  60 s, on a fresh host that had finished booting.
* A connection ssh loses before the command ran (exit 255: closed, reset, no banner) is
  made again, twice at most: a test's own view must not fail on the way in. Host key and
  login refusals are never retried, nor calls that shorten ``connect_timeout`` (they expect
  no answer).

Also here: ``machine_sysctl()``. Test hosts share the control machine's kernel, and
``/proc/sys`` is read-only inside them, so a kernel-wide value such as
``vm.overcommit_memory`` is whatever the machine has — 0 on a fresh VM, but anything may
have set it to 1 — and a test reading one must hold on every value.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

CONNECT_TIMEOUT: Final = 30.0
COMMAND_TIMEOUT: Final = 300.0
# ssh's words for a connection lost before the command ran; such a call is made again.
TRANSPORT_RETRIES: Final = 2
_TRANSPORT_SIGNS: Final = (
    "Connection closed",
    "Connection reset",
    "kex_exchange_identification",
    "Broken pipe",
    "banner exchange",
)

SSH_OPTIONS: Final[tuple[str, ...]] = (
    "-F",
    "/dev/null",  # the developer's ~/.ssh/config stays out of tests
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    f"ConnectTimeout={CONNECT_TIMEOUT:.0f}",
    # The default post-quantum kex (sntrup761) costs ~80 ms of CPU per connection on these
    # VMs, a third of a test command's round trip; the test helper does not need it.
    "-o",
    "KexAlgorithms=curve25519-sha256,curve25519-sha256@libssh.org",
    "-o",
    "LogLevel=ERROR",
)


@dataclass(frozen=True)
class SystemdHost:
    """One booted test host, as a test sees it.

    ``root`` is the host's whole filesystem as mounted on the control machine (its overlay),
    handy to read a file without SSH; write through SSH so the host sees a normal change.
    """

    name: str
    address: str
    root: Path
    private_key: Path
    known_hosts: Path
    known_hosts_line: str
    user: str = "root"
    port: int = 22

    @property
    def ssh_options(self) -> list[str]:
        """Options for the system ``ssh``/``scp`` client: this run's key, strict checking."""
        return [
            *SSH_OPTIONS,
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-i",
            str(self.private_key),
            "-p",
            str(self.port),
        ]

    def ssh(
        self,
        command: str,
        *,
        check: bool = False,
        timeout: float = COMMAND_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` on this host over SSH (shorthand for ``ssh(host, command)``)."""
        return ssh(
            self,
            command,
            check=check,
            timeout=timeout,
            connect_timeout=connect_timeout,
            input=input,
        )


def ssh_argv(host: SystemdHost, command: str, *, connect_timeout: float) -> list[str]:
    """The ``ssh`` command line running ``command`` on ``host`` (ssh keeps the first value
    of an option, so ``connect_timeout`` goes before the defaults)."""
    return [
        "ssh",
        "-o",
        f"ConnectTimeout={max(1, round(connect_timeout))}",
        *host.ssh_options,
        f"{host.user}@{host.address}",
        "--",
        command,
    ]


def ssh(
    host: SystemdHost,
    command: str,
    *,
    check: bool = False,
    timeout: float = COMMAND_TIMEOUT,
    connect_timeout: float = CONNECT_TIMEOUT,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a shell command on ``host`` as root with the system OpenSSH client.

    ``check=True`` raises ``subprocess.CalledProcessError`` (its message then carries the
    command; stdout/stderr are on the exception). ``connect_timeout`` only shortens the
    wait where a test expects no answer at all (a firewall dropping SSH).
    """
    argv = ssh_argv(host, command, connect_timeout=connect_timeout)
    for attempt in range(1 + TRANSPORT_RETRIES):
        result = subprocess.run(
            argv,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if not _transport_failure(result) or connect_timeout != CONNECT_TIMEOUT:
            break  # a test shortening the connect wait expects no answer: never retried
        time.sleep(1.0 + attempt)
    if check and result.returncode != 0:
        raise subprocess.CalledProcessError(
            result.returncode, f"{host.name}: {command}", result.stdout, result.stderr
        )
    return result


def _transport_failure(result: subprocess.CompletedProcess[str]) -> bool:
    """ssh itself failed before the command ran (exit 255, a dropped or reset connection).

    Host key and authentication failures are not among them: a test may be about those.
    """
    if result.returncode != 255:
        return False
    return any(sign in result.stderr for sign in _TRANSPORT_SIGNS)


def machine_sysctl(name: str) -> str:
    """A kernel-wide setting as every test host sees it: the control machine's own value."""
    return Path("/proc/sys", *name.split(".")).read_text(encoding="utf-8").strip()
