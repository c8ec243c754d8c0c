"""The first become command costs one exec, on real sshd and a real sudo, whichever way.

User story: on a slow network each exec costs me three round trips per host. Given a host
where I become root with a sudo password, or an account sudo lets me become without one,
or the very user I log in as, when the first command with become runs, then it runs in
ONE exec — the way to become is found out on the host, inside that exec — with its own
output and input untouched, and later become commands cost no exec at all: the first one
left a shell open for them. A wrong password runs nothing, not even as me, and costs sudo
one attempt, never three.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

import pytest

from redmedic.connection import ConnectOptions, SSHConnection, connect
from redmedic.connection.base import become_script, script_on_stdin
from redmedic.errors import BecomeError
from redmedic.model.inventory import Host
from tests.support.loopback import LoginUser, as_test_user, shared_sudo_cache

pytestmark = pytest.mark.integration


def test_the_first_become_command_costs_one_exec(
    becoming: tuple[Host, str, str], ssh_options: ConnectOptions
) -> None:
    host, runs_as, parent = becoming
    with connect(host, ssh_options) as conn:
        assert isinstance(conn, SSHConnection)
        before = conn.traffic.execs
        first = conn.run(
            "id -un; cat /proc/$PPID/comm; cat", become=True, stdin=b"the command's input\n"
        )
        after_first = conn.traffic.execs - before
        second = conn.run("id -un", become=True)
        after_second = conn.traffic.execs - before

    said = f"{runs_as}\n{parent}\nthe command's input\n"
    assert (first.rc, first.stdout, first.stderr) == (0, said, "")
    assert second.stdout == f"{runs_as}\n"
    assert (after_first, after_second) == (1, 1)


def test_a_wrong_password_runs_nothing_in_its_one_exec(
    ssh_host: Host, ssh_options: ConnectOptions, test_user: LoginUser
) -> None:
    ran = test_user.home / f"ran-{uuid.uuid4().hex[:8]}"  # the login user could make it
    host = replace(ssh_host, become_password="Wr0ng-sudo-pass-XYZ")
    with connect(host, ssh_options) as conn:
        with pytest.raises(BecomeError) as caught:
            conn.run(f"touch {ran}", become=True, stdin=b"a line\nanother line\n")
        execs = conn.traffic.execs

    assert "sudo password was rejected — check ansible_become_password" in str(caught.value)
    assert not ran.exists()
    assert execs == 1


def test_real_sudo_meets_the_end_of_its_input_after_a_wrong_password(
    ssh_host: Host, ssh_options: ConnectOptions
) -> None:
    # What sudo itself said, seen by running the become script as a plain command.
    marker = "redmedic-become-test"
    script = become_script(None, marker, with_password=True)
    _, command = script_on_stdin("echo the command ran")
    with connect(ssh_host, ssh_options) as conn:
        result = conn.run(script, stdin=b"Wr0ng\nWr0ng\n" + command + b"a line\nanother\n")

    checked, verdict, said = result.stdout.partition(f"{marker} refused\n")
    assert verdict  # behind only what the password check said
    assert "sudo: 1 incorrect password attempt" in checked
    assert "the command ran" not in said


def test_the_one_password_check_leaves_no_sudo_credential_behind(
    ssh_host: Host, ssh_options: ConnectOptions
) -> None:
    # Given a host whose sudo keeps one credential cache for all of my processes,
    with shared_sudo_cache():
        # when my run becomes root with the password (checked once: the commands run on the
        # credential that check cached) and its connection closes,
        with connect(ssh_host, ssh_options) as conn:
            assert [conn.run("id -u", become=True).stdout for _ in range(2)] == ["0\n"] * 2
        # then, once the host has seen the shell end, no other process of mine can sudo
        # without the password: the run left the host's sudo as it found it.
        deadline = time.monotonic() + 30
        while (left := as_test_user("sudo -n true")).returncode == 0:
            assert time.monotonic() < deadline, "the run's sudo credential is still valid"
            time.sleep(0.1)
    assert "a password is required" in left.stderr
