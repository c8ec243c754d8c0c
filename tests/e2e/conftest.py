"""Fixtures for end-to-end tests against disposable Debian hosts running real systemd.

Built on ``tests/support/nspawn.py`` (see its docstring and tests/support/README.md,
"Tier 2"):

* ``host_pool`` (session): one ``HostPool`` for the run; it owns the bridge, the per-run
  key pair and the known_hosts file, and tears every host down at the end, also when a test
  failed or the run was interrupted (Ctrl-C, SIGTERM).
* ``make_systemd_host`` (function): a factory; each call returns another pristine host,
  all of them destroyed after the test.
* ``systemd_host`` (function): one pristine host for this test, destroyed after it.
* ``bullseye_pool``, ``make_bullseye_host``, ``bullseye_host``: the same for Debian 11 hosts
  (redis 6.0.16). Their pool, and its base, is made only when a selected test asks for one
  of them, so a run without such a test neither builds the bullseye base nor boots it.

Hosts are booted in batches sized by the number of selected tests that still need one of
that kind, so the whole batch boots in parallel and later tests get a host instantly. A
host is never reused: faults are destructive.

Every test under ``tests/e2e`` carries the ``e2e`` marker. Missing prerequisites (not root,
no systemd-nspawn, ...) skip these tests on a developer machine with the reason, but fail
them in CI (``CI`` set), where they must run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import pytest

# The repository root is not on sys.path when pytest runs from the venv's script; the test
# support package lives there (tests/support).
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.support.nspawn import (  # noqa: E402
    BULLSEYE,
    HostPool,
    SystemdHost,
    missing_prerequisites,
)

_HERE = Path(__file__).resolve().parent
#: Each kind of host: (its factory fixture, its one-host fixture).
_HOST_FIXTURES = {
    "bookworm": ("make_systemd_host", "systemd_host"),
    "bullseye": ("make_bullseye_host", "bullseye_host"),
}
#: Most hosts booted at once (RAM is no limit at ~15 MB a host; boot is CPU bound).
MAX_BATCH = int(os.environ.get("REDMEDIC_E2E_BATCH", "16"))


@pytest.hookimpl(tryfirst=True)  # before -m deselection sees the items
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test collected under tests/e2e with ``e2e``."""
    for item in items:
        if _HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.e2e)


@dataclass
class _Demand:
    """Hosts the selected tests are still expected to take: sizes the next boot batch."""

    remaining: int


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt while hosts run, so fixture teardown
    (poweroff, unmount, bridge removal) also happens when the run is killed politely.
    A SIGKILLed run is cleaned up by the next run that takes the same slot."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {
        sig: signal.getsignal(sig)
        for sig in (signal.SIGTERM, signal.SIGHUP)
        if signal.getsignal(sig) is signal.SIG_DFL
    }
    for sig in previous:
        signal.signal(sig, interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _require_prerequisites() -> None:
    missing = missing_prerequisites()
    if not missing:
        return
    reason = "systemd test hosts unavailable: " + "; ".join(missing)
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI must run the e2e tests)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def _host_demand(request: pytest.FixtureRequest) -> dict[str, _Demand]:
    """Per kind of host, how many the selected tests will take."""
    demand = {kind: _Demand(0) for kind in _HOST_FIXTURES}
    for item in request.session.items:
        names = set(getattr(item, "fixturenames", ()))
        for kind, (factory, single) in _HOST_FIXTURES.items():
            # A test using the factory usually wants more than one host: count it as two.
            if factory in names and single not in names:
                demand[kind].remaining += 2
            elif single in names:
                demand[kind].remaining += 1
    return demand


@contextlib.contextmanager
def _open_pool(pool: HostPool) -> Iterator[HostPool]:
    _require_prerequisites()
    with _terminate_as_interrupt(), pool:
        yield pool


def _host_factory(pool: HostPool, demand: _Demand) -> Iterator[Callable[[], SystemdHost]]:
    """Hand out pristine hosts from ``pool``, in batches sized by ``demand``; destroy them
    all when the test ends."""
    taken: list[SystemdHost] = []

    def make() -> SystemdHost:
        batch = max(1, min(MAX_BATCH, demand.remaining))
        host = pool.acquire(batch=batch)
        demand.remaining = max(0, demand.remaining - 1)
        taken.append(host)
        return host

    try:
        yield make
    finally:
        for host in taken:
            pool.release(host)


@pytest.fixture(scope="session")
def host_pool() -> Iterator[HostPool]:
    """The run's HostPool: bridge, key pair, known_hosts; everything torn down at the end."""
    with _open_pool(HostPool()) as pool:
        yield pool


@pytest.fixture
def make_systemd_host(
    host_pool: HostPool, _host_demand: dict[str, _Demand]
) -> Iterator[Callable[[], SystemdHost]]:
    """Factory for pristine hosts; each is destroyed when the test ends."""
    yield from _host_factory(host_pool, _host_demand["bookworm"])


@pytest.fixture
def systemd_host(make_systemd_host: Callable[[], SystemdHost]) -> SystemdHost:
    """A pristine Debian 12 host with systemd, sshd and redis-server (default config)."""
    return make_systemd_host()


@pytest.fixture(scope="session")
def bullseye_pool() -> Iterator[HostPool]:
    """A HostPool of Debian 11 hosts (its own slot and bridge); builds their base if needed."""
    with _open_pool(HostPool(recipe=BULLSEYE)) as pool:
        yield pool


@pytest.fixture
def make_bullseye_host(
    bullseye_pool: HostPool, _host_demand: dict[str, _Demand]
) -> Iterator[Callable[[], SystemdHost]]:
    """Factory for pristine Debian 11 hosts; each is destroyed when the test ends."""
    yield from _host_factory(bullseye_pool, _host_demand["bullseye"])


@pytest.fixture
def bullseye_host(make_bullseye_host: Callable[[], SystemdHost]) -> SystemdHost:
    """A pristine Debian 11 host: systemd 247, OpenSSH 8.4, redis-server 6.0.16 (defaults)."""
    return make_bullseye_host()
