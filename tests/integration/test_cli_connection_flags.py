"""The command line's connection flags against a real sshd on loopback, typed at a terminal.

User stories:
* given an inventory that names only the host, when I run with `-u USER -k -K -b` and type
  the passwords at the prompts, then redmedic logs in with the SSH password, becomes root
  with the sudo password (an empty answer reuses the SSH password, as in Ansible), and
  neither password is ever echoed or printed;
* given a key, when I pass `--private-key KEY -K --become-user OTHER`, then the step runs as
  OTHER; an inventory's `ansible_become_user` still beats `--become-user`;
* when I add `-vvv`, then stderr shows the SSH conversation (key exchange, the
  authentication that worked, channels) naming the host, and no password.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from redmedic.cli import main
from tests.support.loopback import LoginUser, SshdHost, SshSession, ensure_other_user

pytestmark = pytest.mark.integration

WHO = """\
name: Who am I
hosts: all
diagnose:
  - name: Login user
    shell: id -un
    become: false
  - name: Become user
    shell: id -un
"""
DEADLINE_S = 120.0  # a bound for a busy machine, not an expectation


@dataclass(frozen=True)
class Site:
    """The playbook `WHO` and an inventory naming only `sshd` (plus `host_vars`)."""

    playbook: Path
    inventory: Path
    known_hosts: Path

    def argv(self, *flags: str) -> list[str]:
        """A dry run of the playbook with `flags`."""
        return ["run", str(self.playbook), "-i", str(self.inventory),
                "--known-hosts", str(self.known_hosts), "-C", *flags]  # fmt: skip


@pytest.fixture
def site(tmp_path: Path, sshd: SshdHost, known_hosts_file: Path) -> Callable[..., Site]:
    def make(**host_vars: object) -> Site:
        (tmp_path / "who.yaml").write_text(WHO)
        inventory = tmp_path / "inv.yaml"
        host = {"ansible_host": sshd.address, "ansible_port": sshd.port, **host_vars}
        inventory.write_text(json.dumps({"all": {"hosts": {sshd.name: host}}}))
        return Site(tmp_path / "who.yaml", inventory, known_hosts_file)

    return make


def step_outputs(output: str) -> dict[str, str]:
    """Each diagnose step's output, from the JSON lines among the terminal's output."""
    events = [json.loads(line) for line in output.replace("\r", "").splitlines() if line[:1] == "{"]
    return {e["step"]: e["output"].strip() for e in events if e["event"] == "step_done"}


def run_at_terminal(argv: list[str], answers: list[tuple[str, str]]) -> tuple[int, str]:
    """Run redmedic with a pseudo-terminal as its controlling terminal; answer each prompt
    (in order) once it has appeared. Returns the exit code and everything the terminal showed.
    """
    master, slave = pty.openpty()
    process = subprocess.Popen(
        ["setsid", "-w", "-c", sys.executable, "-m", "redmedic.cli", *argv],
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    shown = b""
    answered = 0  # bytes of `shown` already matched against prompts
    deadline = time.monotonic() + DEADLINE_S
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    data = b""
                if not data:
                    break
                shown += data
            if answers:
                prompt, answer = answers[0]
                at = shown.find(prompt.encode(), answered)
                if at >= 0:
                    os.write(master, answer.encode() + b"\n")
                    answered = at + len(prompt)
                    answers.pop(0)
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return code, shown.decode(errors="replace")


def test_passwords_typed_at_the_prompts_log_in_and_become_root(
    site: Callable[..., Site], test_user: LoginUser
) -> None:
    code, shown = run_at_terminal(
        site().argv("--output", "json", "-u", test_user.name, "-k", "-K", "-b"),
        [("SSH password: ", test_user.password),
         ("BECOME password[defaults to SSH password]: ", "")],
    )  # fmt: skip
    assert code == 0, shown
    assert step_outputs(shown) == {"Login user": test_user.name, "Become user": "root"}
    assert test_user.password not in shown  # not echoed, not printed


def test_a_key_and_become_user_from_the_command_line(
    site: Callable[..., Site], test_user: LoginUser, ssh_session: SshSession
) -> None:
    other = ensure_other_user()
    code, shown = run_at_terminal(
        site().argv("--output", "json", "-u", test_user.name,
                    "--private-key", str(ssh_session.client_key),
                    "-K", "-b", "--become-user", other.name),
        [("BECOME password: ", test_user.password)],
    )  # fmt: skip
    assert code == 0, shown
    assert step_outputs(shown) == {"Login user": test_user.name, "Become user": other.name}
    assert test_user.password not in shown


def test_the_inventorys_become_user_beats_the_command_line(
    site: Callable[..., Site],
    test_user: LoginUser,
    ssh_session: SshSession,
    capsys: pytest.CaptureFixture[str],
) -> None:
    given = site(
        ansible_user=test_user.name,
        ansible_ssh_private_key_file=str(ssh_session.client_key),
        ansible_become_password=test_user.password,
        ansible_become_user="root",
    )
    flags = ["--output", "json", "-u", "nobody", "-b", "--become-user", ensure_other_user().name]
    code = main(given.argv(*flags))
    shown = capsys.readouterr().out
    assert code == 0, shown
    assert step_outputs(shown) == {"Login user": test_user.name, "Become user": "root"}


def test_vvv_shows_the_ssh_conversation_without_any_password(
    site: Callable[..., Site],
    sshd: SshdHost,
    test_user: LoginUser,
    capsys: pytest.CaptureFixture[str],
) -> None:
    given = site(
        ansible_user=test_user.name,
        ansible_password=test_user.password,
        ansible_become_password=test_user.password,
    )
    code = main(given.argv("-b", "-vvv"))
    out, err = capsys.readouterr()
    assert code == 0, out + err
    ssh_lines = [line for line in err.splitlines() if line.startswith(f"ssh {sshd.name}: ")]
    said = "\n".join(ssh_lines)
    assert "kex algos" in said  # the key exchange
    assert "Authentication (password) successful" in said
    assert "[chan " in said  # the channels of the commands
    assert "✓" in out and "Become user" in out  # -v's every step is there too
    assert test_user.password not in out + err
