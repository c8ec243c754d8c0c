"""Becoming another user than root (`ansible_become_user`, `--become-user`) on real sshd.

User story: given a host where my login user may sudo to anyone with its password, and a
service account (`redmedic-t2`) that owns a private directory, when a step runs with become
and the become user is that account, then its commands, file reads and file writes happen
as that account — not as root, and not as me — with the sudo password on stdin as always;
`apply` of a plan made with `--become-user` runs as that user too.
"""

from __future__ import annotations

import json
import os
import pwd
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from redmedic.cli import main
from redmedic.connection import ConnectOptions, connect
from redmedic.errors import BecomeError
from redmedic.model.inventory import Host
from tests.support.loopback import LoginUser, SshdHost, SshSession, ensure_other_user

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


def test_apply_reaches_hosts_as_the_plan_did(
    tmp_path: Path,
    sshd: SshdHost,
    known_hosts_file: Path,
    ssh_session: SshSession,
    test_user: LoginUser,
    other_user: LoginUser,
    private_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a plan made with `-b --become-user redmedic-t2`, when I apply it without those
    # flags, then the reviewed change still runs as redmedic-t2 (not as root).
    made = private_dir / "made-by-apply"
    playbook = tmp_path / "pb.yaml"
    playbook.write_text(
        f"name: Touch\nhosts: all\nfix:\n  - name: Touch\n    shell: touch {made}\n"
    )
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(
        f"all:\n  hosts:\n    {sshd.name}:\n      ansible_host: {sshd.address}\n"
        f"      ansible_port: {sshd.port}\n      ansible_user: {test_user.name}\n"
        f"      ansible_ssh_private_key_file: {ssh_session.client_key}\n"
        f"      ansible_become_password: {test_user.password}\n"
    )
    plan = tmp_path / "plan.json"
    common = ["--known-hosts", str(known_hosts_file), "--output", "json"]
    assert main(["run", str(playbook), "-i", str(inventory), "-C", "--plan-out", str(plan),
                 "-b", "--become-user", other_user.name, *common]) == 0  # fmt: skip
    saved = json.loads(plan.read_text())
    assert saved["connection"] == {"ansible_become_user": other_user.name}
    assert saved["become"] is True  # -b: below the playbook's keywords, so kept apart
    code = main(["apply", str(plan), "--yes", "--audit-log", str(tmp_path / "audit"), *common])
    assert code == 0, capsys.readouterr().out
    assert pwd.getpwuid(made.stat().st_uid).pw_name == other_user.name
