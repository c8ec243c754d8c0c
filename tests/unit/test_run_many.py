"""`Connection.run_many`: several commands in one round trip, each result as `run` gives it.

Run through LocalConnection, which executes the very same script with /bin/sh (the SSH
transport is covered in tests/integration/test_run_many_ssh.py).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from redmedic.connection import LocalConnection
from redmedic.connection.base import batch_script, parse_batch_output
from redmedic.errors import CommandError
from redmedic.inventory import Host

COMMANDS = [
    "echo out; echo err >&2; exit 3",
    "printf 'no newline'",
    "printf 'a\\000b\\n\\n\\n'",  # NUL bytes and trailing newlines survive
    "echo 'unbalanced",  # a syntax error stays this command's exit 2
    "cat",  # no stdin: EOF at once
    "cd / && pwd",
    "pwd",  # each command starts afresh: the cd above does not leak
    "printf 'redmedic:result 0 99 99\\n'",  # output that looks like our framing
]


@pytest.fixture
def conn() -> LocalConnection:
    return LocalConnection(Host(name="local", address="localhost", connection="local"))


def test_results_match_running_each_command_alone(conn: LocalConnection) -> None:
    batched = conn.run_many(COMMANDS)
    alone = [conn.run(command) for command in COMMANDS]

    assert batched == alone
    assert batched[0].rc == 3 and batched[0].stdout == "out\n" and batched[0].stderr == "err\n"
    assert batched[2].stdout == "a\x00b\n\n\n"
    assert batched[3].rc == 2 and batched[3].stderr


def test_the_batch_leaves_no_temporary_files(
    conn: LocalConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the script's mktemp -d goes
    assert conn.run_many(["echo x", "false"])[0].stdout == "x\n"
    with pytest.raises(CommandError):
        conn.run_many(["kill -TERM $PPID"])
    assert list(tmp_path.iterdir()) == []


def test_no_commands_run_nothing(conn: LocalConnection) -> None:
    assert conn.run_many([]) == []


def test_a_batch_that_breaks_off_is_an_error(conn: LocalConnection) -> None:
    with pytest.raises(CommandError, match="batch of 3 commands broke off"):
        conn.run_many(["true", "kill -TERM $PPID", "true"])


@pytest.mark.parametrize(
    "output",
    [
        b"",
        b"junk\n",
        b"redmedic:rcs 0\n1\n0\nredmedic:data\n",  # one byte missing
        b"redmedic:rcs 0\n1\n0\nredmedic:data\nab",  # one byte too many
        b"redmedic:rcs x\n0\n0\nredmedic:data\n",
        b"redmedic:rcs 0 0\n0\n0\nredmedic:data\n",
    ],
)
def test_malformed_output_is_rejected(output: bytes) -> None:
    with pytest.raises(ValueError):
        parse_batch_output(output, 1)


def test_outputs_are_framed_by_their_sizes() -> None:
    output = b"redmedic:rcs 0 7\n2\n0\n0\n3\nredmedic:data\nA\nerr"
    assert parse_batch_output(output, 2) == [(0, b"A\n", b""), (7, b"", b"err")]


def test_the_script_runs_each_command_through_its_own_shell() -> None:
    command = "echo 'x' | tr x y"
    assert f"/bin/sh -c {shlex.quote(command)} </dev/null" in batch_script([command])
