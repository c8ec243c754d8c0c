"""`Connection.run_many` over real sshd: one channel for many commands, also through sudo."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from redmedic.connection import ConnectOptions, SSHConnection
from redmedic.model.inventory import Host

pytestmark = pytest.mark.integration


@pytest.fixture
def conn(ssh_host: Host, ssh_options: ConnectOptions) -> Iterator[SSHConnection]:
    with SSHConnection.open(ssh_host, ssh_options) as connection:
        yield connection


def test_a_batch_gives_what_each_command_gives_alone(conn: SSHConnection) -> None:
    commands = ["id -un", "echo warn >&2; exit 4", "printf 'x\\000y'", "cat", "echo $0 $#"]

    assert conn.run_many(commands) == [conn.run(command) for command in commands]
    bad, after = conn.run_many(["echo 'oops", "echo fine"])
    assert bad.rc == 2 and "Syntax error" in bad.stderr and after.stdout == "fine\n"


def test_a_batch_under_sudo_runs_every_command_as_root_with_one_sudo(
    conn: SSHConnection,
) -> None:
    results = conn.run_many(["id -un", "id -u", "cat"], become=True)

    assert [r.stdout for r in results] == ["root\n", "0\n", ""]
    assert all(r.rc == 0 for r in results)
