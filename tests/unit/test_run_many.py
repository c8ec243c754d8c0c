"""`Connection.run_many`: several commands in one round trip, each result as `run` gives it.

Run through LocalConnection, which executes the very same script with /bin/sh (the SSH
transport is covered in tests/integration/test_run_many_ssh.py).
"""

from __future__ import annotations

import shlex

import pytest

from redmedic.connection import LocalConnection
from redmedic.connection.scripts import batch_script, parse_batch_output
from redmedic.errors import CommandError
from redmedic.model.inventory import Host

COMMANDS = [
    "echo out; echo err >&2; exit 3",
    "printf 'no newline'",
    "printf 'a\\000b\\n\\n\\n'",  # NUL bytes and trailing newlines survive
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


def test_a_syntax_error_is_that_command_s_exit_2(conn: LocalConnection) -> None:
    bad, after = conn.run_many(["echo 'unbalanced", "echo next"])
    assert bad.rc == 2 and "Syntax error" in bad.stderr and bad.stdout == ""
    assert (after.rc, after.stdout) == (0, "next\n")


def test_the_batch_shows_neither_its_commands_nor_its_marks_in_argv(
    conn: LocalConnection,
) -> None:
    (shell,) = conn.run_many(["tr '\\0' ' ' < /proc/$$/cmdline"])  # $$: the batch's shell
    assert shell.stdout.split() == ["/bin/sh", "-s"]


def test_no_commands_run_nothing(conn: LocalConnection) -> None:
    assert conn.run_many([]) == []


def test_a_batch_that_breaks_off_is_an_error(conn: LocalConnection) -> None:
    with pytest.raises(CommandError, match="batch of 3 commands broke off"):
        conn.run_many(["true", "kill -TERM $$", "true"])


NONCE = "redmedic-0123abcd"


@pytest.mark.parametrize(
    ("out", "err"),
    [
        (b"", b""),
        (b"junk\n", b"\nredmedic-0123abcd\n"),
        (b"Aredmedic-0123abcd 0\n", b"\nredmedic-0123abcd\n"),  # no newline before mark
        (b"\nredmedic-0123abcd x\n", b"\nredmedic-0123abcd\n"),
        (b"\nredmedic-0123abcd 0\n", b""),  # stderr of the command missing
        (b"\nredmedic-0123abcd 0\n", b"\nredmedic-0123abcd\nlate"),
        (b"\nredmedic-0123abcd 0\nmore", b"\nredmedic-0123abcd\n"),
    ],
)
def test_malformed_output_is_rejected(out: bytes, err: bytes) -> None:
    with pytest.raises(ValueError):
        parse_batch_output(out, err, 1, NONCE)


def test_outputs_are_cut_at_their_marks() -> None:
    out = b"A\n\nredmedic-0123abcd 0\n\nredmedic-0123abcd 7\n"
    err = b"\nredmedic-0123abcd\nerr\nredmedic-0123abcd\n"
    assert parse_batch_output(out, err, 2, NONCE) == [(0, b"A\n", b""), (7, b"", b"err")]


def test_the_script_holds_each_command_once_quoted_with_no_stdin() -> None:
    command = "echo 'x' | tr x y"
    script = batch_script([command], NONCE)
    assert f"( eval {shlex.quote(command)} ) </dev/null;" in script
