"""Rollouts under faults, over real SSH with sudo: nothing is lost, nothing half-written.

Twenty simulated hosts (a real sshd each) whose redis.conf files only root can write.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.loopback import LoginUser, SshdHost, SshSession

pytestmark = pytest.mark.integration

BROKEN = "# redis\nbind 127.0.0.1 -::1\nport 6379\n"
FIXED = "# redis\nbind 0.0.0.0 -::*\nport 6379\n"

PLAYBOOK = """\
name: Fix bind
hosts: all
become: true
fix:
  - name: Listen on all interfaces
    file_line: {path: "{{ redis_conf }}", regexp: '^bind ', line: 'bind 0.0.0.0 -::*'}
    notify: restart redis
  - name: Take a while
    shell: "sleep {{ pause | default(0) }}"
handlers:
  - name: restart redis
    shell: echo restarted >> {{ redis_conf | quote }}.restarts
verify:
  - name: Redis would answer
    shell: cat {{ redis_conf | quote }}.verdict
    expect_stdout: PONG
"""


@dataclass
class Fleet:
    dir: Path
    hosts: list[SshdHost]
    user: LoginUser
    key: Path

    def conf(self, host: SshdHost) -> Path:
        return self.dir / host.name / "redis.conf"

    def command(self, *argv: str, password: str | None = None) -> list[str]:
        """A redmedic command line against this fleet (inventory written now)."""
        lines = [
            "all:",
            "  vars:",
            f"    ansible_user: {self.user.name}",
            f"    ansible_ssh_private_key_file: {self.key}",
            f"    ansible_become_password: {password or self.user.password}",
            "  hosts:",
        ]
        for host in self.hosts:
            lines += [
                f"    {host.name}:",
                f"      ansible_host: {host.address}",
                f"      ansible_port: {host.port}",
                f"      redis_conf: {self.conf(host)}",
            ]
        (self.dir / "inventory.yaml").write_text("\n".join(lines) + "\n")
        return [
            sys.executable,
            "-m",
            "redmedic.cli",
            *argv,
            "-i",
            str(self.dir / "inventory.yaml"),
            "--known-hosts",
            str(self.dir / "known_hosts"),
            "--output",
            "json",
            "--audit-log",
            str(self.dir / "audit.jsonl"),
        ]

    def run(
        self, *argv: str, password: str | None = None
    ) -> tuple[int, list[dict[str, object]], str]:
        done = subprocess.run(
            self.command(*argv, password=password),
            capture_output=True,
            text=True,
            timeout=180,
            env=self.env(),
        )
        events = [json.loads(line) for line in done.stdout.splitlines()]
        return done.returncode, events, done.stdout + done.stderr

    def env(self) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.dir), "PYTHONUNBUFFERED": "1"}


def descendants(pid: int) -> list[int]:
    """Every process below `pid`."""
    found: list[int] = []
    queue = [pid]
    while queue:
        children = subprocess.run(["pgrep", "-P", str(queue.pop())], capture_output=True, text=True)
        pids = [int(p) for p in children.stdout.split()]
        found += pids
        queue += pids
    return found


@pytest.fixture(scope="module")
def sshds(ssh_session: SshSession) -> list[SshdHost]:
    return [ssh_session.start_sshd(name=f"r{i:02d}") for i in range(1, 21)]


@pytest.fixture
def fleet(
    tmp_path: Path, sshds: list[SshdHost], ssh_session: SshSession, test_user: LoginUser
) -> Fleet:
    (tmp_path / "pb.yaml").write_text(PLAYBOOK)
    (tmp_path / "known_hosts").write_text("".join(h.known_hosts_line + "\n" for h in sshds))
    for host in sshds:
        conf = tmp_path / host.name / "redis.conf"
        conf.parent.mkdir()
        conf.write_text(BROKEN)
        conf.chmod(0o600)
        Path(f"{conf}.verdict").write_text("PONG\n")
    return Fleet(tmp_path, sshds, test_user, ssh_session.client_key)


def test_three_failing_verifies_stop_the_rollout_and_roll_back_only_those_hosts(
    fleet: Fleet,
) -> None:
    failing = fleet.hosts[5:8]  # in the second batch of five
    for host in failing:
        Path(f"{fleet.conf(host)}.verdict").write_text("LOADING\n")
    code, events, text = fleet.run("run", str(fleet.dir / "pb.yaml"), "--yes", "--serial", "5")
    assert code == 1, text
    status = {h: r["status"] for h, r in events[-1]["hosts"].items()}  # type: ignore[union-attr]
    for index, host in enumerate(fleet.hosts):
        body = fleet.conf(host).read_text()
        if index < 5 or index in (8, 9):
            assert (status[host.name], body) == ("changed", FIXED), host.name
        elif host in failing:
            assert (status[host.name], body) == ("failed", BROKEN), host.name
            assert Path(f"{fleet.conf(host)}.restarts").read_text() == "restarted\nrestarted\n"
        else:
            assert (status[host.name], body) == ("skipped", BROKEN), host.name
            assert not Path(f"{fleet.conf(host)}.restarts").exists()
    assert fleet.user.password not in text
    assert fleet.user.password not in (fleet.dir / "audit.jsonl").read_text()


def test_a_wrong_sudo_password_fails_the_hosts_without_showing_it(fleet: Fleet) -> None:
    wrong = "not-the-Password-42"
    code, events, text = fleet.run(
        "run", str(fleet.dir / "pb.yaml"), "--yes", "-l", "r01,r02", password=wrong
    )
    assert code == 1
    assert wrong not in text
    assert all(
        e["status"] == "failed" and "sudo password was rejected" in str(e["message"])
        for e in events
        if e["event"] == "host_finished"
    )
    assert fleet.conf(fleet.hosts[0]).read_text() == BROKEN


def test_a_host_key_changed_between_plan_and_apply_is_refused(
    fleet: Fleet, ssh_session: SshSession
) -> None:
    plan = fleet.dir / "plan.json"
    code, _, text = fleet.run(
        "run", str(fleet.dir / "pb.yaml"), "--check", "--plan-out", str(plan), "-l", "r01,r02"
    )
    assert code == 0, text
    impostor = ssh_session.start_sshd()
    lines = (fleet.dir / "known_hosts").read_text().splitlines()
    lines[0] = f"{lines[0].split()[0]} {impostor.host_key}"
    (fleet.dir / "known_hosts").write_text("\n".join(lines) + "\n")
    command = fleet.command("apply", str(plan), "--yes")
    command.remove("-i")
    command.remove(str(fleet.dir / "inventory.yaml"))
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=fleet.env())
    summary = json.loads(done.stdout.splitlines()[-1])["hosts"]
    assert summary["r01"]["status"] == "unreachable"
    assert summary["r02"]["status"] == "changed"
    assert fleet.conf(fleet.hosts[0]).read_text() == BROKEN


def test_a_killed_ssh_session_mid_apply_leaves_whole_files_and_says_how_to_roll_back(
    fleet: Fleet,
) -> None:
    target = fleet.hosts[0]
    process = subprocess.Popen(
        fleet.command(
            "run", str(fleet.dir / "pb.yaml"), "--yes", "-l", target.name, "-e", "pause=30"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=fleet.env(),
    )
    deadline = time.monotonic() + 30
    while fleet.conf(target).read_text() != FIXED:
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    sessions = descendants(target.pid)
    assert sessions
    for pid in sessions:  # the per-connection sshd processes of our own daemon, and below
        os.kill(pid, signal.SIGKILL)
    out, err = process.communicate(timeout=60)
    summary = json.loads(out.splitlines()[-1])["hosts"]
    assert summary[target.name]["status"] == "interrupted", err
    finished = next(json.loads(line) for line in out.splitlines() if '"host_finished"' in line)
    assert "redmedic rollback " in finished["message"]
    assert fleet.conf(target).read_text() == FIXED  # whole, never half-written
    leftovers = [
        p.name
        for p in fleet.conf(target).parent.iterdir()
        if ".redmedic-" in p.name and p.name.startswith(".")
    ]
    assert leftovers == []
