"""Fixtures for integration tests against real sshd and redis-server on loopback (tier 1).

Built on ``tests/support/loopback.py`` (simulated SSH hosts) and
``tests/support/redis_server.py`` (throwaway Redis servers):

* ``isolated_home`` (autouse, function): HOME points at an empty temp dir and SSH_AUTH_SOCK
  is unset, so root's own ``~/.ssh/known_hosts``, ``~/.ssh/config``, keys and agent never
  influence a test (as fabric does). Yields the temp home.
* ``test_user`` (session): the ``LoginUser`` login user ``redmedic-login`` (random password,
  home, ids), unlocked for the session and locked after it.
* ``ssh_session`` (session): the ``SshSession`` — client key, ``start_sshd()`` for more hosts.
* ``sshd`` (session): one running simulated host, an ``SshdHost`` (address, port, host key).
* ``known_hosts_file`` (session): a known_hosts file holding exactly ``sshd``'s key.
* ``ssh_host`` (function): a ``redmedic.model.inventory.Host`` for ``sshd``: the login user,
  the session's client key, ``become_password`` set.
* ``ssh_options`` (function): ``ConnectOptions(known_hosts_files=(known_hosts_file,))`` —
  strict host-key checking stays on.
* ``redis_on_loopback`` (function): a ``RedisServer`` bound to 127.0.0.1 only.
* ``becoming`` (function, three params): (a ``Host`` as the inventory has it, the user its
  become commands run as, the program that starts them) for sudo with a password, sudo
  without one (a NOPASSWD become user) and the login user itself.

Missing prerequisites (not root, no sshd, ...) skip these tests on a developer machine with
the reason, but fail them in CI (``CI`` set), where they must run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

# The repository root is not on sys.path when pytest runs from the venv's script; the test
# support package lives there (tests/support).
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from redmedic.connection import ConnectOptions  # noqa: E402
from redmedic.model.inventory import Host  # noqa: E402
from tests.support.loopback import (  # noqa: E402
    TEST_USER,
    LoginUser,
    SshdHost,
    SshSession,
    ensure_test_user,
    missing_prerequisites,
    nopasswd_user,
    release_test_user,
)
from tests.support.redis_server import RedisServer, running_redis  # noqa: E402


def _require_loopback_hosts() -> None:
    missing = missing_prerequisites()
    if missing:
        reason = "tier-1 hosts unavailable: " + "; ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty HOME and no agent: the developer's ~/.ssh must not change any outcome."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.delenv("SSH_AUTH_SOCK", raising=False)
        yield home


@pytest.fixture(scope="session")
def test_user() -> Iterator[LoginUser]:
    """The login user, unlocked for this session and locked again after it (unless another
    run still holds a lease on it)."""
    _require_loopback_hosts()
    yield ensure_test_user()
    release_test_user()


@pytest.fixture(scope="session")
def ssh_session(
    test_user: LoginUser, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SshSession]:
    with SshSession(tmp_path_factory.mktemp("loopback"), test_user) as session:
        yield session


@pytest.fixture(scope="session")
def sshd(ssh_session: SshSession) -> SshdHost:
    return ssh_session.start_sshd()


@pytest.fixture(scope="session")
def known_hosts_file(sshd: SshdHost, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("known") / "known_hosts"
    path.write_text(sshd.known_hosts_line + "\n")
    return path


@pytest.fixture
def ssh_host(sshd: SshdHost, ssh_session: SshSession, test_user: LoginUser) -> Host:
    return Host(
        name=sshd.name,
        address=sshd.address,
        port=sshd.port,
        user=test_user.name,
        private_key_file=str(ssh_session.client_key),
        become_password=test_user.password,
    )


@pytest.fixture
def ssh_options(known_hosts_file: Path) -> ConnectOptions:
    return ConnectOptions(known_hosts_files=(str(known_hosts_file),), connect_timeout=5.0)


@pytest.fixture(params=["sudo with a password", "sudo without one", "already that user"])
def becoming(request: pytest.FixtureRequest, ssh_host: Host) -> Iterator[tuple[Host, str, str]]:
    """(the host as the inventory has it, the user its become commands run as, the program
    that starts them: sudo, or the login shell)."""
    if request.param == "sudo with a password":
        yield ssh_host, "root", "sudo"
    elif request.param == "sudo without one":  # no password given: it must not need one
        with nopasswd_user() as user:
            yield replace(ssh_host, become_user=user.name, become_password=None), user.name, "sudo"
    else:  # the password is given, and must be left unused
        yield replace(ssh_host, become_user=TEST_USER), TEST_USER, "sh"


@pytest.fixture
def redis_on_loopback() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server
