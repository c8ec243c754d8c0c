"""When a freshly booted test host is ready: the host's own signals, never a guessed delay.

A host is handed to a test once all of these hold, each on the host's own word:

1. its SSH port takes a TCP connection (cheap, so the seconds before the container's
   network is up cost no ssh processes);
2. sshd accepts a real login with this run's key, with strict host key checking;
3. systemd says boot is over: ``systemctl is-system-running --wait`` prints ``running``
   (or ``degraded``: a unit nspawn cannot run may fail; the one the tests need is next);
4. redis-server, enabled in the base, answers ``PING``.

Why no short slices: under load a login can take many seconds (sshd re-executes itself
per connection; the first login starts root's user manager). Killing a slow login after a
few seconds and starting over throws its progress away, and on a busy 2-core machine that
can repeat until the deadline. So one attempt may use the whole remaining boot budget,
while this thread still notices a cancelled boot (Ctrl-C) or a dead nspawn within a
fraction of a second. systemd's own job timeouts bound a boot that goes wrong on the host;
the pool's deadline is only the last resort for a host that hangs.
"""

from __future__ import annotations

import math
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Final

from tests.support.control import HostError
from tests.support.hosts import SystemdHost, ssh_argv
from tests.support.network import port_open

_POLL: Final = 0.2
_READY_STATES: Final = ("running", "degraded")


class NotReady(HostError):
    """The host did not become ready before the deadline; ``last`` is what it last said."""

    def __init__(self, last: str) -> None:
        super().__init__(last)
        self.last = last


def ready_script(seconds: float) -> str:
    """One login's worth of questions; ``timeout`` ends it on the host at our deadline too."""
    return (
        f"state=$(timeout {max(1, math.ceil(seconds))} systemctl is-system-running --wait); "
        'echo "system=$state"; '
        'echo "redis=$(systemctl is-active redis-server)"; '
        'echo "ping=$(redis-cli ping 2>&1)"'
    )


def parse_answer(stdout: str) -> dict[str, str]:
    """``key=value`` lines of the ready script (missing keys: the empty string)."""
    answer = {"system": "", "redis": "", "ping": ""}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in answer:
            answer[key] = value.strip()
    return answer


def verdict(answer: dict[str, str]) -> bool | str:
    """True: ready. False: not yet, ask again. A string: it will not get ready (why)."""
    if answer["system"] not in _READY_STATES:
        return False
    if answer["ping"] == "PONG":
        return True
    if answer["redis"] == "failed":
        return f"boot finished ({answer['system']}) but redis-server failed to start"
    return False  # e.g. redis restarting: its own unit settles it


def wait_ready(
    host: SystemdHost,
    *,
    deadline: float,
    cancel: threading.Event,
    alive: Callable[[], bool],
) -> None:
    """Return once ``host`` is ready (see the module docstring); raise HostError if it will
    not be (``alive()`` false: nspawn exited), NotReady at the deadline."""
    last = "no answer yet"
    while not cancel.is_set():
        if not alive():
            raise HostError("systemd-nspawn exited while booting")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise NotReady(last)
        if not port_open(host.address, host.port, timeout=min(2.0, remaining)):
            last = f"port {host.port} not open"
            cancel.wait(_POLL)
            continue
        done = _ssh_until(host, ready_script(remaining), deadline, cancel, alive)
        if done is None:
            continue  # cancelled, past the deadline or nspawn gone: the loop says which
        if done.returncode == 255:  # ssh itself: sshd not accepting logins yet
            last = f"ssh: {done.stderr.strip()[-300:] or 'exit 255'}"
            cancel.wait(_POLL)
            continue
        answer = parse_answer(done.stdout)
        last = ", ".join(f"{k} {v or '?'!r}" for k, v in answer.items())
        ready = verdict(answer)
        if ready is True:
            return
        if isinstance(ready, str):
            raise HostError(ready)
        cancel.wait(_POLL)
    raise HostError("boot cancelled")


def _ssh_until(
    host: SystemdHost,
    command: str,
    deadline: float,
    cancel: threading.Event,
    alive: Callable[[], bool],
) -> subprocess.CompletedProcess[str] | None:
    """Run ``command`` over ssh until it ends; None if we had to stop waiting for it."""
    argv = ssh_argv(host, command, connect_timeout=max(1.0, deadline - time.monotonic()))
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while True:
            try:
                stdout, stderr = process.communicate(timeout=_POLL)
            except subprocess.TimeoutExpired:
                if cancel.is_set() or time.monotonic() >= deadline or not alive():
                    return None
                continue
            return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
    finally:
        if process.poll() is None:
            process.kill()  # our own child, by its Popen
            process.communicate()
