"""The `service` step on a real systemd host.

Given a host where redis-server is stopped and disabled (the guide's "server not running"),
when I run a playbook that wants it started and enabled, then --check changes nothing,
applying starts and enables it, and a second run changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redmedic.cli import main
from tests.support.nspawn import SystemdHost

PLAYBOOK = """\
name: Start redis
hosts: all
fix:
  - name: Redis runs and starts at boot
    service: {name: redis-server, state: started, enabled: true}
verify:
  - name: Redis answers on the host
    shell: redis-cli ping
    expect_stdout: PONG
"""


def run(
    tmp_path: Path, host: SystemdHost, capsys: pytest.CaptureFixture[str], *flags: str
) -> dict[str, object]:
    playbook = tmp_path / "start.yaml"
    playbook.write_text(PLAYBOOK)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        f"all:\n  hosts:\n    {host.name}:\n      ansible_host: {host.address}\n"
        f"      ansible_user: root\n      ansible_ssh_private_key_file: {host.private_key}\n"
    )
    argv = [
        "run",
        str(playbook),
        "-i",
        str(inventory),
        "--known-hosts",
        str(host.known_hosts),
        "--output",
        "json",
        *flags,
    ]
    code = main(argv)
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])["hosts"][host.name]
    summary["exit"] = code
    return summary  # type: ignore[no-any-return]


def state(host: SystemdHost) -> str:
    return host.ssh("systemctl is-active redis-server; systemctl is-enabled redis-server").stdout


def test_a_stopped_disabled_redis_is_started_and_enabled(
    systemd_host: SystemdHost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    systemd_host.ssh("systemctl disable --now redis-server", check=True)
    assert state(systemd_host).split() == ["inactive", "disabled"]

    assert run(tmp_path, systemd_host, capsys, "--check") == {
        "status": "would_change",
        "changed": 2,
        "failed": 0,
        "exit": 0,
    }
    assert state(systemd_host).split() == ["inactive", "disabled"]

    assert run(tmp_path, systemd_host, capsys, "--yes")["status"] == "changed"
    assert state(systemd_host).split() == ["active", "enabled"]

    assert run(tmp_path, systemd_host, capsys, "--yes") == {
        "status": "ok",
        "changed": 0,
        "failed": 0,
        "exit": 0,
    }


def test_a_service_started_by_hand_after_the_plan_is_refused_at_apply(
    systemd_host: SystemdHost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    systemd_host.ssh("systemctl disable --now redis-server", check=True)
    assert (
        run(tmp_path, systemd_host, capsys, "--check", "--plan-out", str(tmp_path / "plan.json"))[
            "status"
        ]
        == "would_change"
    )
    systemd_host.ssh("systemctl start redis-server", check=True)
    code = main(
        [
            "apply",
            str(tmp_path / "plan.json"),
            "--yes",
            "--output",
            "json",
            "--known-hosts",
            str(systemd_host.known_hosts),
        ]
    )
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    finished = next(e for e in events if e["event"] == "host_finished")
    assert finished["status"] == "failed"
    assert "changed since the plan was made" in finished["message"]
    assert state(systemd_host).split() == ["active", "disabled"]  # nothing applied
