"""A host behind a bastion, end to end: real systemd hosts, the target's own firewall.

User story: given a Redis host that accepts SSH only from the bastion (its firewall drops
SSH from this machine, as a security group would) and an ssh config with `ProxyJump
bastion`, when I run the shipped triage with `--ssh-config` and `--check`, then redmedic
reaches the host through the bastion — both host keys checked strictly — and names its
cause, while a direct connection is refused by the wall.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.bastion import count_logins, ssh_direct, ssh_via, wall_off, write_ssh_config
from tests.support.nspawn import HostPool, SystemdHost

pytestmark = pytest.mark.e2e

PASSWORD = "E2e-bastion-s3cret"
PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "connection-refused.yaml"


def redmedic(*argv: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "redmedic.cli", *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_host_behind_a_bastion_is_triaged_through_it_with_both_keys_checked(
    make_systemd_host: Callable[[], SystemdHost], host_pool: HostPool, tmp_path: Path
) -> None:
    bastion, target = make_systemd_host(), make_systemd_host()
    gateway = host_pool.gateway  # the control machine's address on the hosts' bridge
    config = write_ssh_config(tmp_path / "ssh_config", bastion, target, host_pool.known_hosts)
    wall_off(config, target, gateway)
    inventory = tmp_path / "inventory.yaml"
    # Only the host's name: the ssh config says how to reach it (HostName, ProxyJump, ...).
    inventory.write_text(f"all:\n  hosts:\n    target: {{redis_password: {PASSWORD}}}\n")

    # The wall is real: straight from here the target's SSH port does not answer ...
    direct = target.ssh("true", connect_timeout=5)  # dropped: no wait is long enough
    assert direct.returncode == 255 and "timed out" in direct.stderr, direct.stderr
    # ... while OpenSSH itself gets there through the bastion (and counts the logins).
    count = count_logins(bastion.address, gateway)
    before = [int(n) for n in ssh_via(config, count).stdout.split()]
    assert len(before) == 2, before

    done = redmedic(
        "run", str(PLAYBOOK), "-i", str(inventory), "--ssh-config", str(config),
        "--check", "--output", "json", "--connect-timeout", "30",
    )  # fmt: skip

    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events and events[-1]["event"] == "summary", (done.stdout[-2000:], done.stderr)
    assert events[-1]["hosts"]["target"]["status"] == "would_change", done.stdout[-2000:]
    causes = {e["cause"] for e in events if e["event"] == "finding_reported"}
    assert "bind" in causes  # Debian's default bind 127.0.0.1, seen on the target itself
    assert PASSWORD not in done.stdout + done.stderr
    # The login really came through the bastion: since the count above (itself one), the
    # target's sshd saw one more login from the bastion's address, none from this machine.
    after = [int(n) for n in ssh_via(config, count).stdout.split()]
    assert after == [before[0] + 2, before[1]], (before, after)


def test_a_bastion_whose_key_is_unknown_stops_the_host_before_any_login(
    make_systemd_host: Callable[[], SystemdHost], host_pool: HostPool, tmp_path: Path
) -> None:
    bastion, target = make_systemd_host(), make_systemd_host()
    wall_off(
        write_ssh_config(tmp_path / "all_known", bastion, target, host_pool.known_hosts),
        target,
        host_pool.gateway,
    )
    only_target = tmp_path / "known_hosts"
    only_target.write_text(target.known_hosts_line + "\n")
    config = write_ssh_config(tmp_path / "ssh_config", bastion, target, only_target)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("all:\n  hosts:\n    target: {}\n")
    count = count_logins(host_pool.gateway)
    before = int(ssh_direct(bastion, count).stdout)

    done = redmedic(
        "run", str(PLAYBOOK), "-i", str(inventory), "--ssh-config", str(config), "--check",
        "--connect-timeout", "30",
    )  # fmt: skip

    assert done.returncode == 4, (done.stdout[-2000:], done.stderr)
    message = " ".join(done.stdout.split())
    assert f"target: via bastion: host key for {bastion.address} is unknown" in message
    # No credential went to the unverified bastion: since the count above (itself one
    # login from this machine), nobody logged in.
    assert int(ssh_direct(bastion, count).stdout) == before + 1
