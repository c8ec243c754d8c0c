"""Rollback on a real systemd host: a fix that breaks Redis is undone, and Redis runs again.

User story: given a host whose Redis works, when a fix step writes a redis.conf Redis
cannot start with (or one it starts with but that fails verify), then the run reports the
host failed and rolled back, redis.conf is byte for byte the original, and Redis is running
again under systemd — also after systemd's restart loop (Restart=always) has hit its start
limit, which the handlers clear with `systemctl reset-failed` before restarting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from redmedic.cli import main
from tests.support.nspawn import SystemdHost

PLAYBOOK = """\
name: A fix that breaks Redis
hosts: all
fix:
  - name: Change redis.conf
    redis_config: {{set: {change}, live: false}}  # the file alone: the restart applies it
    notify: [clear failed redis start, restart redis]
handlers:
  - name: clear failed redis start
    shell: systemctl reset-failed redis-server
  - name: restart redis
    service: {{name: redis-server, state: restarted}}
verify:
  - name: Redis answers on the host
    redis_probe: {{vantage: [host]}}
"""
STATE = (
    "sha256sum /etc/redis/redis.conf; systemctl is-active redis-server; "
    "systemctl show -p MainPID --value redis-server; redis-cli ping"
)


def run(
    tmp_path: Path, host: SystemdHost, capsys: pytest.CaptureFixture[str], change: str
) -> tuple[int, list[dict[str, Any]]]:
    playbook = tmp_path / "break.yaml"
    playbook.write_text(PLAYBOOK.format(change=change))
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        f"all:\n  hosts:\n    {host.name}:\n      ansible_host: {host.address}\n"
        f"      ansible_user: root\n      ansible_ssh_private_key_file: {host.private_key}\n"
    )
    code = main(["run", str(playbook), "-i", str(inventory), "--known-hosts",
                 str(host.known_hosts), "--output", "json", "--yes",
                 "--audit-log", str(tmp_path / "audit.jsonl")])  # fmt: skip
    return code, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def state(host: SystemdHost) -> list[str]:
    """[sha256 of redis.conf, active state, MainPID, PING answer]."""
    lines = host.ssh(STATE).stdout.split("\n")
    return [lines[0].split()[0], *lines[1:4]]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        # Redis refuses to start: `systemctl restart` fails, the handler fails the host.
        ("{maxmemory-policy: evict-something}", "`systemctl restart redis-server` failed"),
        # Redis starts, but not where clients look: verify fails.
        ("{port: 6390}", "verify 'Redis answers on the host' failed"),
    ],
)
def test_a_fix_that_breaks_redis_is_rolled_back_and_redis_runs_again(
    systemd_host: SystemdHost,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: str,
    why: str,
) -> None:
    before = state(systemd_host)
    assert before[1] == "active" and before[3] == "PONG"

    code, events = run(tmp_path, systemd_host, capsys, change)

    summary = events[-1]["hosts"][systemd_host.name]
    assert (code, summary["status"], summary["changed"]) == (1, "failed", 0), events[-3:]
    [rolled_back] = [e for e in events if e["event"] == "rolled_back"]
    assert rolled_back["undone"] == ["edit /etc/redis/redis.conf"]
    assert rolled_back["errors"] == []
    assert why in rolled_back["reason"]
    after = state(systemd_host)
    assert after[0] == before[0]  # redis.conf is the original, byte for byte
    assert after[1] == "active" and after[3] == "PONG"
    assert after[2] != before[2]  # a new process: restarted with the original file
