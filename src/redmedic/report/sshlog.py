"""`-vvv`: the SSH conversation (paramiko's transport log) on stderr, secrets masked.

What it shows is what `ssh -vvv` users look for when a login fails: the key exchange and
the algorithms agreed, the host key, each authentication method tried and the server's
answer, channels opened and closed. paramiko logs no password or key material (packet
dumps stay off), but an auth banner or a future paramiko might: every line passes through
a masker that knows the run's secrets (the hosts' passwords and sudo passwords, and every
password-like or `sensitive` variable of the inventory and `-e`) before it is written.

Each transport logs to `redmedic.connection.paramiko.HOST` (see `connection.ssh`), so every
line names its host: hosts are reached in parallel and their lines interleave.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

from redmedic.connection.sshopen import PARAMIKO_LOGGER
from redmedic.model.inventory import Host
from redmedic.report.visible import visible
from redmedic.safety.secrets import Masker


class _MaskedStderr(logging.Handler):
    """Writes `ssh HOST: message` lines to the current `sys.stderr`, masked.

    The stream is looked up per line, not kept: rich's progress bar swaps `sys.stderr` while
    it is shown, and lines written through its proxy appear above the bar, not through it.
    """

    def __init__(self, masker: Masker) -> None:
        super().__init__(logging.DEBUG)
        self.masker = masker

    def emit(self, record: logging.LogRecord) -> None:
        try:
            host = record.name.removeprefix(PARAMIKO_LOGGER).lstrip(".") or "?"
            text = visible(self.masker.mask(record.getMessage()))
            sys.stderr.write(f"ssh {host}: {text}\n")
        except Exception:  # never break a run; never print the raw record (unmasked)
            with suppress(Exception):
                sys.stderr.write("ssh: a log line could not be shown\n")


def run_masker(
    hosts: Iterable[Host],
    extra_vars: Mapping[str, Any],
    sensitive: Iterable[str] = (),
    secrets: Iterable[str] = (),
) -> Masker:
    """A masker that knows every secret a run has before it contacts a host.

    `secrets` are values known to be secret whatever their name (vault plaintexts).
    """
    names = tuple(sensitive)
    masker = Masker()
    for secret in secrets:
        masker.add(secret)
    for host in hosts:
        masker.add(host.password)
        masker.add(host.become_password)
        masker.add_from_vars(host.vars, names)
    masker.add_from_vars(extra_vars, names)
    return masker


@contextmanager
def ssh_conversation(masker: Masker) -> Iterator[None]:
    """Show paramiko's DEBUG log on stderr (masked by `masker`) while the block runs."""
    logger = logging.getLogger(PARAMIKO_LOGGER)
    handler = _MaskedStderr(masker)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
