"""Stubborn networks: `--retries` for a host whose sshd comes up late, and a command that hangs.

Given a host whose SSH port only starts listening after the first attempt, when I run with
`--retries`, then redmedic notes the retry and reaches it; given a command that never
finishes, then the host fails with the step named and the flag to raise, and the run ends;
given a host that freezes before it answers the request to start a command, or while a
command runs, then the command timeout or the ServerAlive limit ends the wait.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from redmedic.cli import main
from redmedic.connection import ConnectOptions, connect
from redmedic.errors import CommandError, ConnectError
from redmedic.events import ConnectRetried, Event
from redmedic.model.inventory import Host
from redmedic.model.sshconfig import SshOptions
from redmedic.playbook import load_playbook
from redmedic.run.executor import RunOptions, Status
from redmedic.run.fleet import run_playbook
from redmedic.steps import load_step_types
from tests.support.loopback import (
    LoginUser,
    SshdHost,
    SshSession,
    free_loopback_port,
    known_hosts_line,
)

pytestmark = pytest.mark.integration

READ_ONLY = """\
name: Look
hosts: all
diagnose:
  - name: Who is there
    shell: hostname
"""

HANGS = """\
name: Hang
hosts: all
diagnose:
  - name: Wait for a lock that never frees
    shell: sleep 20
"""
# Independent shell steps run as one batch: the message names every step of it.
HANGS_IN_A_BATCH = """\
name: Hang
hosts: all
diagnose:
  - name: Who is there
    shell: hostname
  - name: Wait for a lock that never frees
    shell: sleep 20
"""


def login(address: str, port: int, session: SshSession, user: LoginUser, *, name: str) -> Host:
    """A host logging in as the test user with the session's key."""
    key = str(session.client_key)
    return Host(name=name, address=address, port=port, user=user.name, private_key_file=key)


class LateListener:
    """A port that starts forwarding to an sshd only when `start()` is called."""

    def __init__(self, address: str, port: int, to: SshdHost) -> None:
        self.address, self.port, self.to = address, port, to
        self.stop = threading.Event()
        self.server: socket.socket | None = None

    def start(self) -> None:
        self.server = socket.create_server((self.address, self.port))
        self.server.settimeout(0.1)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self.server is not None
        while not self.stop.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by close()
                return
            upstream = socket.create_connection((self.to.address, self.to.port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b, self.stop), daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        if self.server is not None:
            self.server.close()


def _pipe(src: socket.socket, dst: socket.socket, stop: threading.Event) -> None:
    src.settimeout(0.1)
    try:
        while not stop.is_set():
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            sock.close()


@pytest.fixture
def late(sshd: SshdHost) -> Iterator[LateListener]:
    listener = LateListener(sshd.address, free_loopback_port(sshd.address), sshd)
    yield listener
    listener.close()


def test_a_host_whose_sshd_listens_late_is_reached_after_a_noted_retry(
    late: LateListener,
    sshd: SshdHost,
    ssh_session: SshSession,
    test_user: LoginUser,
    tmp_path: Path,
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"[{late.address}]:{late.port} {sshd.host_key}\n")
    playbook = tmp_path / "look.yaml"
    playbook.write_text(READ_ONLY)
    registry = load_step_types()
    host = login(late.address, late.port, ssh_session, test_user, name="late")
    events: list[Event] = []

    def reporter(event: Event) -> None:
        events.append(event)
        if isinstance(event, ConnectRetried):
            late.start()  # sshd "comes up" while we wait before the retry

    connect = ConnectOptions(known_hosts_files=(str(known),), connect_timeout=5.0, retries=3)
    result = run_playbook(
        load_playbook(playbook, registry),
        [host],
        RunOptions(check=True, connect=connect),
        registry=registry,
        reporter=reporter,
    )

    assert [h.status for h in result.hosts] == [Status.OK], result.hosts
    retries = [e for e in events if isinstance(e, ConnectRetried)]
    assert len(retries) == 1
    assert (retries[0].attempt, retries[0].retries) == (1, 3)
    assert "refused" in retries[0].reason


def test_retries_are_shown_with_v_and_a_dead_host_gives_up_after_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_loopback_port("127.0.1.250")
    playbook = tmp_path / "look.yaml"
    playbook.write_text(READ_ONLY)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        f"all:\n  hosts:\n    dead:\n      ansible_host: 127.0.1.250\n      ansible_port: {port}\n"
    )

    code = main(["run", str(playbook), "-i", str(inventory), "--check", "--retries", "1", "-v"])

    out = capsys.readouterr().out
    assert code == 4
    assert "dead: retry 1/1 in " in out
    assert "refused" in out and "(gave up after 1 retries)" in out


@pytest.mark.parametrize(
    ("playbook_text", "expected"),
    [
        (HANGS, "stuck: Wait for a lock that never frees: `sleep 20` did not finish within 1 s"),
        (
            HANGS_IN_A_BATCH,
            "stuck: Who is there, Wait for a lock that never frees: one of 2 batched commands "
            "(`hostname`, …) did not finish within 1 s",
        ),
    ],
)
def test_a_hanging_command_fails_its_host_naming_the_step_and_the_flag(
    playbook_text: str,
    expected: str,
    sshd: SshdHost,
    ssh_session: SshSession,
    test_user: LoginUser,
    known_hosts_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    playbook = tmp_path / "hang.yaml"
    playbook.write_text(playbook_text)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        f"all:\n  hosts:\n    stuck:\n      ansible_host: {sshd.address}\n"
        f"      ansible_port: {sshd.port}\n      ansible_user: {test_user.name}\n"
        f"      ansible_ssh_private_key_file: {ssh_session.client_key}\n"
    )

    code = main(
        ["run", str(playbook), "-i", str(inventory), "--check", "--command-timeout", "1",
         "--known-hosts", str(known_hosts_file)]
    )  # fmt: skip

    out = " ".join(capsys.readouterr().out.split())  # rich may wrap the long line
    assert code == 1
    assert expected in out
    assert "raise --command-timeout" in out


class FreezingProxy:
    """A TCP forwarder to an sshd that can freeze, like a host hung mid-conversation.

    `freeze_at(n)`: the n-th client chunk from now on is held and from then on nothing is
    forwarded either way; both TCP connections stay up (a hung VM's kernel still ACKs).
    """

    def __init__(self, address: str, to: SshdHost) -> None:
        self.server = socket.create_server((address, 0))
        self.address, self.port = address, self.server.getsockname()[1]
        self.to = to
        self.stop, self.frozen = threading.Event(), threading.Event()
        self._left: int | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze_at(self, chunk: int) -> None:
        with self._lock:
            self._left = chunk

    def _accept(self) -> None:
        with contextlib.suppress(OSError):  # closed by close()
            client, _ = self.server.accept()
            upstream = socket.create_connection((self.to.address, self.to.port))
            for src, dst, counted in ((client, upstream, True), (upstream, client, False)):
                args = (src, dst, counted)
                threading.Thread(target=self._forward, args=args, daemon=True).start()

    def _freezes_now(self) -> bool:
        with self._lock:
            if self._left is not None:
                self._left -= 1
                if self._left == 0:
                    self.frozen.set()
        return self.frozen.is_set()

    def _forward(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        src.settimeout(0.1)
        with contextlib.suppress(OSError):
            while not self.stop.is_set():
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data or (counted and self._freezes_now()) or self.frozen.is_set():
                    break
                dst.sendall(data)
        self.stop.wait()  # frozen (or done): hold the connection open until close()
        src.close()

    def close(self) -> None:
        self.stop.set()
        self.server.close()


def test_a_host_that_freezes_before_starting_a_command_fails_at_the_command_timeout(
    sshd: SshdHost, ssh_session: SshSession, test_user: LoginUser, tmp_path: Path
) -> None:
    proxy = FreezingProxy(sshd.address, sshd)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(known_hosts_line(proxy.address, proxy.port, sshd.host_key) + "\n")
    host = login(proxy.address, proxy.port, ssh_session, test_user, name="freezes")
    try:
        with connect(host, ConnectOptions(known_hosts_files=(str(known_hosts),))) as conn:
            proxy.freeze_at(2)  # the channel open passes, its exec request never arrives
            started = time.monotonic()
            with pytest.raises(CommandError) as stuck:
                conn.run("echo hello", timeout=2)
            waited = time.monotonic() - started
    finally:
        proxy.close()

    assert proxy.frozen.is_set()
    assert "`echo hello` did not finish within 2 s (the host never started it)" in str(stuck.value)
    assert waited < 30, "the command timeout bounds the wait for the exec request's answer"


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (children first found, then theirs)."""
    parents: dict[int, int] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
    found = [p for p, parent in parents.items() if parent == pid]
    for child in found:
        found.extend(p for p, parent in parents.items() if parent == child and p not in found)
    return found


def command_line(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read()
    except OSError:
        return b""


def test_a_host_that_stops_answering_fails_after_the_server_alive_limit(
    ssh_session: SshSession, test_user: LoginUser, tmp_path: Path
) -> None:
    frozen = ssh_session.start_sshd(name="frozen")
    known = tmp_path / "known_hosts"
    known.write_text(frozen.known_hosts_line + "\n")
    host = login(frozen.address, frozen.port, ssh_session, test_user, name="frozen")
    host = replace(host, ssh=SshOptions(server_alive_interval=0.5, server_alive_count_max=2))
    failures: list[BaseException] = []
    conn = connect(host, ConnectOptions(known_hosts_files=(str(known),)))

    def wait_for_sleep() -> None:
        try:
            conn.run("sleep 30")
        except BaseException as exc:  # collected for the assertion below
            failures.append(exc)

    worker = threading.Thread(target=wait_for_sleep)
    worker.start()
    stopped: list[int] = []
    try:
        for _ in range(200):  # bounded: until the command runs on the host
            if any(b"sleep\x0030" in command_line(p) for p in descendants(frozen.pid)):
                break
            threading.Event().wait(0.05)
        # Freeze the session's sshd processes (as a hung VM would be): TCP stays up, the
        # kernel still ACKs, but nothing answers any more.
        stopped = [p for p in descendants(frozen.pid) if b"sshd" in command_line(p)]
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        worker.join(timeout=30)
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        conn.close()
        worker.join(timeout=30)

    assert len(failures) == 1 and isinstance(failures[0], ConnectError), failures
    assert "the host stopped answering: no reply to keepalives for 1 s" in str(failures[0])
