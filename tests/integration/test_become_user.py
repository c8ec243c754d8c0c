"""Becoming another user than root (`ansible_become_user`, `--become-user`) on real sshd.

User story: given a host where my login user may sudo to anyone with its password, and a
service account (`redmedic-t2`) that owns a private directory, when a step runs with become
and the become user is that account, then its commands, file reads and file writes happen
as that account — not as root, and not as me — with the sudo password on stdin as always.
"""

from __future__ import annotations

import os
import pwd
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from redmedic.connection import ConnectOptions, connect
from redmedic.errors import BecomeError
from redmedic.inventory import Host
from tests.support.loopback import LoginUser, ensure_other_user

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def other_user(test_user: LoginUser) -> LoginUser:
    return ensure_other_user()


@pytest.fixture
def private_dir(other_user: LoginUser) -> Iterator[Path]:
    """A directory only the other user (and root) can enter."""
    path = other_user.home / f"t-{uuid.uuid4().hex[:8]}"
    path.mkdir(mode=0o700)
    os.chown(path, other_user.uid, other_user.gid)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def as_other(ssh_host: Host, other_user: LoginUser) -> Host:
    return replace(ssh_host, become=True, become_user=other_user.name)


def test_commands_run_as_the_become_user(
    ssh_host: Host, ssh_options: ConnectOptions, other_user: LoginUser, test_user: LoginUser
) -> None:
    with connect(as_other(ssh_host, other_user), ssh_options) as conn:
        became = conn.run("id -un", become=True)
        plain = conn.run("id -un")
    assert (became.rc, became.stdout.strip()) == (0, other_user.name)
    assert plain.stdout.strip() == test_user.name


def test_files_are_read_and_written_as_the_become_user(
    ssh_host: Host, ssh_options: ConnectOptions, other_user: LoginUser, private_dir: Path
) -> None:
    # Given a file in the service account's private directory, when I read and rewrite it
    # with become as that account, then both work and the new file stays the account's.
    target = private_dir / "app.conf"
    target.write_text("maxclients 10\n")
    os.chown(target, other_user.uid, other_user.gid)
    target.chmod(0o600)
    with connect(as_other(ssh_host, other_user), ssh_options) as conn:
        before = conn.read_file(str(target), become=True)
        assert before is not None and before.content == b"maxclients 10\n"
        assert before.owner == other_user.name
        conn.write_file(
            str(target),
            b"maxclients 20\n",
            expected_sha256=before.sha256,
            become=True,
            backup=False,
        )
    assert target.read_bytes() == b"maxclients 20\n"
    info = target.stat()
    assert (pwd.getpwuid(info.st_uid).pw_name, info.st_mode & 0o777) == (other_user.name, 0o600)


def test_the_become_user_is_not_root(
    ssh_host: Host, ssh_options: ConnectOptions, other_user: LoginUser, private_dir: Path
) -> None:
    # A root-only file stays closed to the service account: become_user really is honoured.
    secret = private_dir / "root-only"
    secret.write_text("x\n")
    secret.chmod(0o600)  # owned by root (the test runs as root)
    with connect(as_other(ssh_host, other_user), ssh_options) as conn:
        result = conn.run(f"cat {secret}", become=True)
    assert result.rc != 0 and "Permission denied" in result.stderr


def test_an_unknown_become_user_is_named_with_what_to_check(
    ssh_host: Host, ssh_options: ConnectOptions
) -> None:
    host = replace(ssh_host, become=True, become_user="no-such-user-rdm")
    with connect(host, ssh_options) as conn, pytest.raises(BecomeError) as caught:
        conn.run("true", become=True)
    message = str(caught.value)
    assert "no-such-user-rdm does not exist" in message and "--become-user" in message
    assert ssh_host.become_password is not None and ssh_host.become_password not in message
