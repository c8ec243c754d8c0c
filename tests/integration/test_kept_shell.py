"""Become commands share one kept-open shell, on real sshd and a real sudo.

User story: on a slow network every exec costs me round trips, and on a host where sudo
needs a password each one costs the host a password check too. Given a host I become root
on (with a password, without one, or as the very user I log in as), when a step runs many
become commands, then they all run on the ONE exec under ONE sudo that the first started
(it also found out how to become) — and each behaves exactly as if it had an exec of its
own: its own exit code, output and input, nothing of it left for the next, no secret in `ps`.
When that shell times out or ends, the next command still runs, and none runs twice.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from redmedic.connection import ConnectOptions, SSHConnection, connect
from redmedic.errors import CommandError
from redmedic.model.inventory import Host

pytestmark = pytest.mark.integration


@pytest.fixture
def kept(
    becoming: tuple[Host, str, str], ssh_options: ConnectOptions
) -> Iterator[tuple[SSHConnection, str, str]]:
    """(a connection whose become way is known, the become user, the shell's parent)."""
    host, runs_as, parent = becoming
    with connect(host, ssh_options) as conn:
        assert isinstance(conn, SSHConnection)
        assert conn.run("true", become=True).ok  # the first: it finds out how to become
        yield conn, runs_as, parent


def test_later_become_commands_run_on_one_exec_under_one_sudo(
    kept: tuple[SSHConnection, str, str],
) -> None:
    conn, runs_as, parent = kept
    execs = conn.traffic.execs
    # The parent of every command's shell: the one sudo (or login shell) they all share.
    results = [
        conn.run('id -un; echo "$PPID"; cat /proc/$PPID/comm', become=True) for _ in range(5)
    ]

    assert conn.traffic.execs - execs == 0  # the first command's exec carries them all
    assert conn.traffic.kept == 6
    assert {r.stdout.split("\n")[0] for r in results} == {runs_as}
    assert len({r.stdout.split("\n")[1] for r in results}) == 1
    assert {r.stdout.split("\n")[2] for r in results} == {parent}
    assert "1 exec, 6 on the kept shell" in conn.traffic.summary()


def test_commands_with_and_without_input_alternate_byte_exact(
    kept: tuple[SSHConnection, str, str],
) -> None:
    conn, _, _ = kept
    odd = b"\xff\xfe not utf-8\n\n"
    big = os.urandom(300 * 1024) + b"\n\n"  # past the inline limit: sent from a thread
    got = [
        conn.run("cat; printf 'err\\n' >&2; exit 4", become=True, stdin=odd),
        conn.run("cat; echo end", become=True),
        conn.run("sha256sum", become=True, stdin=big),
        conn.run("head -c 2", become=True, stdin=b"abcdef"),  # leaves 4 bytes unread
        conn.run("cat; echo nothing left", become=True),
    ]

    assert got[0].stdout.encode("utf-8", "surrogateescape") == odd
    assert (got[0].rc, got[0].stderr) == (4, "err\n")
    assert (got[1].rc, got[1].stdout, got[1].stderr) == (0, "end\n", "")
    assert got[2].stdout == f"{hashlib.sha256(big).hexdigest()}  -\n"
    assert got[3].stdout == "ab"
    assert got[4].stdout == "nothing left\n"


def test_exit_cd_and_export_end_with_their_command(kept: tuple[SSHConnection, str, str]) -> None:
    conn, _, _ = kept
    before = conn.run('pwd; echo "${KEPT_X-unset}"; trap', become=True)
    left = conn.run("cd /; export KEPT_X=1; trap 'echo bye' EXIT; set -e; exit 3", become=True)
    after = conn.run('pwd; echo "${KEPT_X-unset}"; trap; false; echo still', become=True)
    execs = conn.traffic.execs

    assert (left.rc, left.stdout) == (3, "bye\n")
    assert after.stdout == before.stdout + "still\n"
    assert conn.traffic.execs == execs  # `exit 3` did not end the shell
    assert conn.run("echo $_rmk", become=True).stdout == "\n"  # the frame mark is not its


def test_a_timeout_closes_the_shell_and_the_next_command_gets_a_new_one(
    kept: tuple[SSHConnection, str, str],
) -> None:
    conn, runs_as, _ = kept
    conn.run("true", become=True)  # the shell is up
    execs = conn.traffic.execs
    with pytest.raises(CommandError) as caught:
        conn.run("sleep 30", become=True, timeout=2)
    result = conn.run("id -un", become=True)

    assert "`sleep 30` did not finish within 2 s" in str(caught.value)
    assert result.stdout == f"{runs_as}\n"
    assert conn.traffic.execs - execs == 1  # a new shell


def test_a_shell_that_ends_mid_command_fails_that_command_once(
    kept: tuple[SSHConnection, str, str],
) -> None:
    conn, runs_as, _ = kept
    with pytest.raises(CommandError) as caught:
        conn.run("kill -9 $$", become=True)  # $$ is the kept shell itself
    result = conn.run("id -un", become=True)

    assert "the kept-open shell ended while running `kill -9 $$`" in str(caught.value)
    assert result.stdout == f"{runs_as}\n"


def test_a_shell_found_ended_gives_way_to_an_exec_of_its_own(
    kept: tuple[SSHConnection, str, str],
) -> None:
    conn, runs_as, _ = kept
    loop = int(conn.run("echo $$", become=True).stdout)
    os.kill(loop, signal.SIGKILL)  # the tests run as root, as on the host
    shell = conn._kept
    assert shell is not None
    deadline = time.monotonic() + 10
    while shell.idle() and time.monotonic() < deadline:
        time.sleep(0.05)
    kept_before, execs = conn.traffic.kept, conn.traffic.execs

    result = conn.run("id -un", become=True)
    assert result.stdout == f"{runs_as}\n"
    assert (conn.traffic.kept, conn.traffic.execs) == (kept_before, execs + 1)


def test_concurrent_become_commands_each_run_once_and_none_stalls(
    kept: tuple[SSHConnection, str, str],
) -> None:
    # Steps run side by side on one connection: one command at a time on the kept shell,
    # the others on execs of their own; output on both streams at once, many times over
    # (a lost wake-up between stdout and stderr once left a command waiting for ever).
    conn, runs_as, _ = kept
    got: list[tuple[str, str]] = []
    failed: list[BaseException] = []

    def run(n: int) -> None:
        for m in range(40):
            try:
                result = conn.run(f"echo {n}.{m}; echo e >&2; id -un", become=True, timeout=20)
            except CommandError as exc:
                failed.append(exc)
                return
            got.append((result.stdout, result.stderr))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert failed == []
    expected = [(f"{n}.{m}\n{runs_as}\n", "e\n") for n in range(3) for m in range(40)]
    assert sorted(got) == sorted(expected)
    assert conn.traffic.kept > 0
