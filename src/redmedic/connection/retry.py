"""`--retries N`: open a connection again after a network failure, with bounded backoff.

Only ConnectError is retried (refused, timed out, reset during the handshake, a jump host
that could not reach the target): those may heal in seconds (sshd restarting, a host
still booting, a flaky link). AuthError and HostKeyError never are: trying a refused key
again cannot help, and a changed host key must stop the run. And only *opening* is
retried — a connection lost in the middle of a run is never re-opened to carry on, so no
change is ever applied twice.

The delays double from `BASE_DELAY_S` up to `MAX_DELAY_S`, each drawn from its upper half
("equal jitter"): hosts that failed together do not all come back at the same instant, and
no wait is ever shorter than half the planned one.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from redmedic.connection.base import Connection, ConnectOptions
from redmedic.errors import ConnectError
from redmedic.model.inventory import Host

BASE_DELAY_S = 1.0
MAX_DELAY_S = 30.0


def backoff_delay(attempt: int, draw: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number `attempt` (1-based); `draw` gives [0, 1)."""
    planned = min(MAX_DELAY_S, BASE_DELAY_S * 2.0 ** (attempt - 1))
    return planned / 2.0 + planned / 2.0 * draw()


def connect_with_retries(
    connector: Callable[[Host, ConnectOptions], Connection],
    host: Host,
    options: ConnectOptions,
    *,
    on_retry: Callable[[int, float, ConnectError], None],
    sleep: Callable[[float], bool],
    draw: Callable[[], float] = random.random,
) -> Connection:
    """Open `host`'s connection, retrying a ConnectError up to `options.retries` times.

    Before each retry `on_retry(attempt, delay, error)` reports it and `sleep(delay)` waits;
    `sleep` returns True when the run was cancelled meanwhile (the error is raised then).
    """
    attempt = 0
    while True:
        try:
            return connector(host, options)
        except ConnectError as exc:
            attempt += 1
            if attempt > options.retries:
                if options.retries:
                    raise ConnectError(
                        exc.host, f"{exc.message} (gave up after {options.retries} retries)"
                    ) from None
                raise
            delay = backoff_delay(attempt, draw)
            on_retry(attempt, delay, exc)
            if sleep(delay):
                raise
