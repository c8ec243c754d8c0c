"""The first become command of a connection, run for real by /bin/sh with a pretend sudo.

User story: given a host where becoming root works one way or another (already root, sudo
without a password, sudo with one, no sudo, a login user sudo refuses), when the first
command with become runs, then it costs one exec — it finds out the way on the host and
runs the command that way — its output is the command's own, and every refusal says what
to fix; a wrong password costs one failed login and runs nothing.

The pretend sudo (a shell script first on PATH) does what sudo 1.9 does with its stdin:
`-n` never asks, `-S` reads one line per attempt, three attempts. It logs every attempt,
so a test can count them; the real sudo is tested against real sshd in
tests/integration/test_become_fold.py. These run on this machine through
`LocalConnection` as root, so the become user is an account named `redmedic-fake`
(root is already root: that is the SELF case).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from redmedic.connection import ConnectOptions
from redmedic.connection.base import SCRIPT_READER, sudo_command
from redmedic.connection.local import LocalConnection
from redmedic.errors import BecomeError, CommandError
from redmedic.model.inventory import Host

SECRET = "s3cret Become-pw\\"  # a space and a backslash: read back exactly
BECOME_USER = "redmedic-fake"

_FAKE_SUDO = """\
#!/bin/sh
# A pretend sudo: MODE and PASSWORD are fixed when it is written (test_become_script.py).
# Its credential cache is a file per parent process, as sudo's without a tty.
mode={mode}; log={log}; cache={log}.cache.$PPID
n=; v=; k=
while [ $# -gt 0 ]; do
  case $1 in -n) n=1;; -v) v=1;; -k) k=1;; -S) ;; -p|-u) shift;; --) shift; break;; *) break;; esac
  shift
done
[ "$mode" = unknown ] && {{ echo "sudo: unknown user {user}" >&2; exit 1; }}
[ "$mode" = nopasswd ] && {{ [ $# -gt 0 ] || exit 0; exec "$@"; }}
[ -n "$k$v" ] && [ $# -eq 0 ] && [ -z "$v" ] && {{ rm -f "$cache"; exit 0; }}
[ -z "$k" ] && [ -e "$cache" ] && {{ [ -n "$v" ] && exit 0; exec "$@"; }}
[ -z "$n" ] || {{ echo "sudo: a password is required" >&2; exit 1; }}
for try in 1 2 3; do
  IFS= read -r line || {{ echo "sudo: no password was provided" >&2; exit 1; }}
  echo attempt >> "$log"
  if [ "$line" = {password} ]; then
    if [ "$mode" = denied ]; then
      echo "sudo: admin is not in the sudoers file.  This incident will be reported." >&2
      exit 1
    fi
    [ -n "$v" ] || exec "$@"
    [ "$mode" = nocache ] || : > "$cache"
    exit 0
  fi
  echo "Sorry, try again." >&2
done
echo "sudo: 3 incorrect password attempts" >&2
exit 1
"""


class Recorded(LocalConnection):
    """A local connection that keeps every exec it made: (command line, stdin)."""

    def __init__(self, host: Host) -> None:
        super().__init__(host, ConnectOptions())
        self.calls: list[tuple[str, bytes]] = []

    def _exec(self, command: str, stdin: bytes, timeout: float | None) -> tuple[int, bytes, bytes]:
        self.calls.append((command, stdin))
        return super()._exec(command, stdin, timeout)


class PretendSudo:
    """The pretend sudo of one test (the `sudo` fixture puts its directory first on PATH):
    `install(mode)` writes it, `attempts` counts the password lines it has checked."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.bin.mkdir()
        self.log = root / "attempts"

    def install(self, mode: str) -> None:
        """mode: nopasswd, password (SECRET), nocache (SECRET, sudo -v caches nothing: as
        with timestamp_timeout=0), denied (after the password), unknown (user)."""
        path = self.bin / "sudo"
        log, password = shlex.quote(str(self.log)), shlex.quote(SECRET)
        path.write_text(_FAKE_SUDO.format(mode=mode, log=log, user=BECOME_USER, password=password))
        path.chmod(0o755)

    @property
    def attempts(self) -> int:
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0

    @property
    def cached(self) -> list[Path]:
        """The credential caches left behind (none, once a command has ended)."""
        return sorted(self.log.parent.glob(f"{self.log.name}.cache.*"))


@pytest.fixture
def sudo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PretendSudo:
    pretend = PretendSudo(tmp_path)
    monkeypatch.setenv("PATH", f"{pretend.bin}:{os.environ['PATH']}")
    return pretend


def connection(password: str | None = SECRET, user: str | None = BECOME_USER) -> Recorded:
    return Recorded(
        Host(
            name="web1",
            address="localhost",
            connection="local",
            user="admin",
            become_user=user,
            become_password=password,
        )
    )


def test_a_root_login_runs_commands_as_they_are_and_keeps_their_stdin(sudo: PretendSudo) -> None:
    sudo.install("password")
    conn = connection(user=None)  # we are root here, the target is root

    first = conn.run("cat; id -u", become=True, stdin=b"payload\n")
    second = conn.run("id -u", become=True)

    assert (first.rc, first.stdout, first.stderr) == (0, "payload\n0\n", "")
    assert second.stdout == "0\n"
    assert len(conn.calls) == 2 and conn.calls[1][0] == "id -u"  # no sudo, no probe
    assert sudo.attempts == 0


def test_nopasswd_sudo_runs_the_first_command_in_its_one_exec(sudo: PretendSudo) -> None:
    sudo.install("nopasswd")
    conn = connection()

    first = conn.run("cat", become=True, stdin=b"payload")
    second = conn.run("echo again", become=True)

    assert (first.rc, first.stdout) == (0, "payload")
    assert second.stdout == "again\n"
    assert len(conn.calls) == 2
    user = shlex.quote(BECOME_USER)
    assert conn.calls[1][0] == f"sudo -n -u {user} -- /bin/sh -c {shlex.quote(SCRIPT_READER)}"
    assert sudo.attempts == 0


@pytest.mark.parametrize(("mode", "checks"), [("password", 1), ("nocache", 2)])
def test_a_sudo_password_is_checked_alone_then_runs_the_command_in_the_same_exec(
    sudo: PretendSudo, mode: str, checks: int
) -> None:
    sudo.install(mode)
    conn = connection()

    first = conn.run("cat; exit 3", become=True, stdin=b"payload")
    after_first = sudo.attempts
    second = conn.run("cat", become=True, stdin=b"more")

    assert (first.rc, first.stdout, first.stderr) == (3, "payload", "")
    assert second.stdout == "more"
    assert len(conn.calls) == 2  # the check was folded into the first command's exec
    # Checked once, the command run on the credential cache, unless sudo keeps no cache.
    assert after_first == checks
    assert sudo.cached == []  # and the cache is gone once the command ends
    assert sudo.attempts == checks + 1  # the second command's own sudo -S
    assert conn.calls[1][0] == sudo_command(SCRIPT_READER, with_password=True, user=BECOME_USER)
    assert all(SECRET not in command for command, _ in conn.calls)


def test_output_that_looks_like_a_verdict_is_the_commands_own(sudo: PretendSudo) -> None:
    sudo.install("nopasswd")
    text = "redmedic-become-0123 refused\nsudo: unknown user root\n"

    result = connection().run(f"printf '%s' {shlex.quote(text)}", become=True)

    assert (result.rc, result.stdout) == (0, text)


def test_a_wrong_password_costs_one_attempt_and_runs_nothing(
    sudo: PretendSudo, tmp_path: Path
) -> None:
    sudo.install("password")
    ran = tmp_path / "ran"
    conn = connection(password="Wr0ng")

    with pytest.raises(BecomeError) as caught:
        conn.run(f"touch {ran}", become=True, stdin=b"line one\nline two\n")

    assert "sudo password was rejected — check ansible_become_password" in str(caught.value)
    assert "Wr0ng" not in str(caught.value) and SECRET not in str(caught.value)
    assert sudo.attempts == 1  # never the command's lines taken as more attempts
    assert not ran.exists()
    assert len(conn.calls) == 1


@pytest.mark.parametrize(
    ("mode", "password", "message"),
    [
        ("password", None, "sudo needs a password — set ansible_become_password"),
        ("denied", SECRET, "sudo refused: admin may not run commands as redmedic-fake here"),
        ("unknown", SECRET, "the become user redmedic-fake does not exist here"),
        ("unknown", None, "the become user redmedic-fake does not exist here"),
    ],
)
def test_sudo_refusals_say_what_to_fix_and_run_nothing(
    sudo: PretendSudo, tmp_path: Path, mode: str, password: str | None, message: str
) -> None:
    sudo.install(mode)
    ran = tmp_path / "ran"
    conn = connection(password=password)

    with pytest.raises(BecomeError, match=message) as caught:
        conn.run(f"touch {ran}", become=True)

    assert SECRET not in str(caught.value)
    assert not ran.exists()
    assert sudo.attempts <= 1


def test_a_host_without_sudo_says_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"  # only what the scripts need: no sudo
    bin_dir.mkdir()
    for tool in ("id", "dd", "touch"):
        (bin_dir / tool).symlink_to(f"/usr/bin/{tool}")
    monkeypatch.setenv("PATH", str(bin_dir))
    ran = tmp_path / "ran"

    with pytest.raises(BecomeError) as caught:
        connection().run(f"touch {ran}", become=True)

    assert str(caught.value).endswith(
        "become needs sudo, which is not installed — install sudo or log in as redmedic-fake"
    )
    assert not ran.exists()


@pytest.mark.parametrize("mode", ["nopasswd", "password"])
def test_a_become_command_that_times_out_is_named_as_written(sudo: PretendSudo, mode: str) -> None:
    sudo.install(mode)
    conn = connection()

    for _ in range(2):  # the first (inside the become script), then one under sudo itself
        with pytest.raises(CommandError, match=r"^web1: `sleep 5` did not finish within 0.3 s"):
            conn.run("sleep 5", become=True, timeout=0.3)
        conn.run("true", become=True)
