"""Asking for the vault password: given a playbook with a `!vault` value, when I run
`redmedic validate -J` on a terminal and type the password, then it is read without echo
and the playbook opens; typing a wrong one is the one-line wrong-password error.
"""

from __future__ import annotations

import itertools
import os
import pty
import select
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "vault"
WAIT = 120.0  # seconds for the child to say something: generous on a busy 2-core machine


def envelope(name: str) -> str:
    """One `!vault` value of the committed fixtures, re-indented for a playbook's vars."""
    text = (DATA / "values.yaml").read_text()
    block = text.split(f"{name}: !vault |\n", 1)[1].splitlines()
    lines = itertools.takewhile(lambda line: line.startswith(" "), block)
    return "".join(f"    {line.strip()}\n" for line in lines)


def on_a_terminal(argv: list[str], typed: str) -> tuple[int, str]:
    """Run `argv` with a pseudo-terminal as its controlling tty; type `typed` at the prompt."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its terminal
        os.execv(sys.executable, [sys.executable, "-m", "redmedic.cli", *argv])
    seen = b""
    answered = False
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], WAIT)
            if not ready:
                pytest.fail(f"no output within {WAIT}s; so far: {seen!r}")
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            if not answered and b"Vault password: " in seen:
                os.write(fd, typed.encode() + b"\n")
                answered = True
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


@pytest.fixture
def playbook(tmp_path: Path) -> Path:
    path = tmp_path / "pb.yaml"
    path.write_text(
        "name: p\nhosts: all\nvars:\n  auth: !vault |\n" + envelope("redis_password")
        + "diagnose:\n  - name: s\n    shell: echo {{ auth | length }}\n"
    )  # fmt: skip
    return path


def test_the_typed_vault_password_is_not_echoed_and_opens_the_playbook(playbook: Path) -> None:
    password = (DATA / "password.txt").read_text().strip()

    code, screen = on_a_terminal(["validate", str(playbook), "--ask-vault-pass"], password)

    assert code == 0, screen
    assert f"{playbook}: ok" in screen
    assert password not in screen


def test_a_wrongly_typed_vault_password_is_the_one_line_error(playbook: Path) -> None:
    code, screen = on_a_terminal(["validate", str(playbook), "-J"], "not-the-password")

    assert code == 2
    assert f"{playbook}:4:9: wrong vault password" in screen
    assert "check --ask-vault-pass" in screen
    assert "not-the-password" not in screen
