"""Smoke test of the Debian 11 hosts: an older Redis that cannot move its listener live.

User story: as the author of an end-to-end test for a fix that must work on Redis 6.0
(issue 14), I ask for a ``bullseye_host`` and get a fresh Debian 11 host with real systemd
and redis-server 6.0.16 under Debian's default config, reachable over SSH like every
other test host. On it, ``CONFIG SET port``/``bind`` are refused — so a fix that moves
Redis to another address must restart it — while other parameters still change live;
and the shipped triage playbook runs against it with --check as against Debian 12.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.nspawn import SystemdHost

pytestmark = pytest.mark.e2e

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "connection-refused.yaml"
PASSWORD = "E2e-bullseye-s3cret"


def test_a_bullseye_host_runs_redis_6_0_under_systemd_and_refuses_remote_clients(
    bullseye_host: SystemdHost,
) -> None:
    host = bullseye_host

    assert host.ssh("cat /etc/debian_version", check=True).stdout.startswith("11.")
    version = host.ssh("redis-server --version", check=True).stdout
    assert " v=6.0." in version, version
    assert host.ssh("systemctl is-active redis-server").stdout.strip() == "active"
    assert host.ssh("systemctl is-enabled redis-server").stdout.strip() == "enabled"
    assert host.ssh("redis-cli ping", check=True).stdout.strip() == "PONG"
    # Debian 11's default listens on loopback only (no "-" before ::1: that is 7.0 syntax).
    config = host.ssh("grep -E '^(bind|protected-mode) ' /etc/redis/redis.conf").stdout
    assert "bind 127.0.0.1 ::1" in config
    assert "protected-mode yes" in config

    # The symptom redmedic diagnoses, as on Debian 12 hosts.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host.address, 6379), timeout=30.0).close()


def test_redis_6_0_refuses_to_change_port_or_bind_live_but_takes_maxclients(
    bullseye_host: SystemdHost,
) -> None:
    host = bullseye_host

    port = host.ssh("redis-cli CONFIG SET port 6380")
    assert port.stdout.strip() == "ERR Unsupported CONFIG parameter: port", port
    bind = host.ssh("redis-cli CONFIG SET bind 0.0.0.0")
    assert bind.stdout.strip() == "ERR Unsupported CONFIG parameter: bind", bind
    # Still where it was: only a restart with a changed redis.conf moves it.
    assert host.ssh("redis-cli CONFIG GET port").stdout.split() == ["port", "6379"]

    assert host.ssh("redis-cli CONFIG SET maxclients 100", check=True).stdout.strip() == "OK"
    assert host.ssh("redis-cli CONFIG GET maxclients").stdout.split() == ["maxclients", "100"]


def test_the_triage_playbook_checks_a_bullseye_host_without_changing_it(
    bullseye_host: SystemdHost, tmp_path: Path
) -> None:
    host = bullseye_host
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        f"all:\n  hosts:\n    {host.name}:\n      ansible_host: {host.address}\n"
        f"      ansible_user: root\n      ansible_ssh_private_key_file: {host.private_key}\n"
        f"      redis_password: {PASSWORD}\n"
    )
    before = host.ssh("md5sum /etc/redis/redis.conf", check=True).stdout

    done = subprocess.run(
        [sys.executable, "-m", "redmedic.cli", "run", str(PLAYBOOK), "-i", str(inventory),
         "--known-hosts", str(host.known_hosts), "--check", "--output", "json"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events and events[-1]["event"] == "summary", (done.stdout[-2000:], done.stderr)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr)
    assert events[-1]["hosts"][host.name]["status"] == "would_change", done.stdout[-2000:]
    assert PASSWORD not in done.stdout + done.stderr
    causes = {e["cause"] for e in events if e["event"] == "finding_reported"}
    assert "bind" in causes, causes  # Debian's loopback-only default, as on Debian 12
    assert host.ssh("md5sum /etc/redis/redis.conf", check=True).stdout == before
