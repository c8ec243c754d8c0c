"""The `firewall` step on real systemd hosts, judged by what the control machine sees.

Given a host whose redis listens on every address but whose firewall blocks 6379 (ufw
reject → "Connection refused", ufw deny → a timeout, firewalld → "No route to host",
plain iptables, nftables), when I run a playbook with a `firewall` fix step, then --check
shows the rule it would add and leaves the firewall as it was, applying makes a TCP connect
from the control machine succeed, and a second run plans nothing.
"""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redmedic.cli import main
from tests.support.nspawn import HostPool, SystemdHost

REDIS = 6379

FIX = """\
name: Open the redis port
hosts: all
fix:
  - name: Redis port open
    firewall: {args}
verify:
{verify}
"""
REACHABLE = """\
  - name: Redis port reachable from the host itself
    shell: redis-cli -h 127.0.0.1 ping
    expect_stdout: PONG
"""
NEVER = """\
  - name: A check that fails, to force a rollback
    shell: "false"
"""


def listen_everywhere(host: SystemdHost) -> None:
    """Debian binds redis to loopback; these tests are about the firewall in front.
    (Redis 7 rebinds live on CONFIG SET: no restart needed.)"""
    assert host.ssh("redis-cli config set bind 0.0.0.0", check=True).stdout.strip() == "OK"


def connect_error(address: str, port: int = REDIS, timeout: float = 10.0) -> OSError | None:
    """What a TCP connect from the control machine gets (None: it connected)."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return None
    except OSError as exc:
        return exc


def run(
    tmp_path: Path,
    host: SystemdHost,
    capsys: pytest.CaptureFixture[str],
    *flags: str,
    args: str = "{}",
    verify: str = REACHABLE,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the playbook through the CLI; (the host's summary with `exit`, all events)."""
    playbook = tmp_path / "firewall.yaml"
    playbook.write_text(FIX.format(args=args, verify=verify))
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        f"all:\n  hosts:\n    {host.name}:\n      ansible_host: {host.address}\n"
        f"      ansible_user: root\n      ansible_ssh_private_key_file: {host.private_key}\n"
    )
    argv = ["run", str(playbook), "-i", str(inventory), "--known-hosts", str(host.known_hosts),
            "--output", "json", *flags]  # fmt: skip
    code = main(argv)
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    summary = dict(events[-1]["hosts"][host.name])
    summary["exit"] = code
    return summary, events


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind]


def planned(events: list[dict[str, Any]]) -> list[str]:
    return [e["description"] for e in of(events, "change_planned")]


OK = {"status": "ok", "changed": 0, "failed": 0, "exit": 0}


def ufw(host: SystemdHost, *rules: str) -> None:
    setup = "; ".join(f"ufw {r} >/dev/null" for r in ("allow 22/tcp", *rules))
    host.ssh(f"{setup} && ufw --force enable", check=True)


def ufw_status(host: SystemdHost) -> str:
    return host.ssh("ufw status verbose", check=True).stdout


def test_ufw_reject_is_replaced_by_an_allow_and_rolled_back_to_the_reject(
    systemd_host: SystemdHost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = systemd_host
    listen_everywhere(host)
    ufw(host, "reject 6379/tcp")
    assert isinstance(connect_error(host.address), ConnectionRefusedError)
    before = ufw_status(host)

    summary, events = run(tmp_path, host, capsys, "--check")
    assert summary == {"status": "would_change", "changed": 1, "failed": 0, "exit": 0}
    assert planned(events) == ["ufw allow to any port 6379 proto tcp"]
    [finding] = of(events, "finding_reported")
    assert finding["cause"] == "firewall-ufw" and finding["fixable"] is True
    assert finding["evidence"] == ["6379/tcp  REJECT IN  Anywhere"]
    assert ufw_status(host) == before

    # A failing verify rolls the allow back into the very reject it replaced.
    summary, events = run(tmp_path, host, capsys, "--yes", verify=NEVER)
    assert summary["status"] == "failed" and of(events, "rolled_back")
    assert ufw_status(host) == before

    summary, _ = run(tmp_path, host, capsys, "--yes")
    assert summary == {"status": "changed", "changed": 1, "failed": 0, "exit": 0}
    assert connect_error(host.address) is None
    assert "6379/tcp                   ALLOW IN    Anywhere" in ufw_status(host)
    assert "REJECT" not in ufw_status(host)  # replaced in place, v4 and v6

    assert run(tmp_path, host, capsys, "--yes")[0] == OK


def test_ufw_deny_times_out_until_the_allow(
    systemd_host: SystemdHost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = systemd_host
    listen_everywhere(host)
    ufw(host, "deny 6379/tcp")
    assert isinstance(connect_error(host.address, timeout=1.0), TimeoutError)

    summary, events = run(tmp_path, host, capsys, "--yes")
    assert summary["status"] == "changed"
    assert [e["description"] for e in of(events, "change_applied")] == [
        "ufw allow to any port 6379 proto tcp"
    ]
    assert connect_error(host.address) is None
    assert run(tmp_path, host, capsys, "--yes")[0] == OK


def test_a_source_restricted_allow_goes_in_front_of_the_reject_and_only_for_that_source(
    make_systemd_host: Callable[[], SystemdHost],
    host_pool: HostPool,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    host, other = make_systemd_host(), make_systemd_host()
    listen_everywhere(host)
    ufw(host, "reject 6379/tcp")
    me = host_pool.gateway  # the control machine's address on the hosts' bridge
    args = f"{{sources: ['{me}/32']}}"

    summary, events = run(tmp_path, host, capsys, "--check", args=args)
    assert summary["status"] == "would_change"
    # ufw appends new rules: after the reject (rule 2) it would never match.
    assert planned(events) == [f"ufw insert 2 allow from {me} to any port 6379 proto tcp"]

    assert run(tmp_path, host, capsys, "--yes", args=args)[0]["status"] == "changed"
    assert connect_error(host.address) is None
    probe = f"python3 -c \"import socket; socket.create_connection(('{host.address}', 6379), 3)\""
    refused = other.ssh(probe)
    assert refused.returncode != 0 and "ConnectionRefusedError" in refused.stderr
    assert run(tmp_path, host, capsys, "--yes", args=args)[0] == OK


def test_firewalld_gets_the_port_at_runtime_and_permanently(
    systemd_host: SystemdHost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = systemd_host
    listen_everywhere(host)
    # `systemctl start` returns before firewalld has loaded its rules; --state waits.
    host.ssh("systemctl start firewalld && firewall-cmd --state", check=True)
    error = connect_error(host.address)
    assert isinstance(error, OSError) and error.errno == errno.EHOSTUNREACH
    ports = "firewall-cmd --list-ports; firewall-cmd --permanent --list-ports"

    summary, events = run(tmp_path, host, capsys, "--check")
    assert summary["changed"] == 2
    assert planned(events) == [
        "firewall-cmd --zone=public --add-port=6379/tcp",
        "firewall-cmd --permanent --zone=public --add-port=6379/tcp",
    ]
    assert "No route to host" in of(events, "finding_reported")[0]["summary"]
    assert host.ssh(ports).stdout.split() == []

    assert run(tmp_path, host, capsys, "--yes")[0]["changed"] == 2
    assert connect_error(host.address) is None
    assert host.ssh(ports).stdout.split() == ["6379/tcp", "6379/tcp"]
    host.ssh("firewall-cmd --reload", check=True)  # the permanent layer survives a reload
    assert connect_error(host.address) is None
    assert run(tmp_path, host, capsys, "--yes")[0] == OK


def test_plain_iptables_gets_a_runtime_accept_and_a_warning_about_persistence(
    systemd_host: SystemdHost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = systemd_host
    listen_everywhere(host)
    host.ssh("iptables -A INPUT -p tcp --dport 6379 -j REJECT", check=True)
    assert isinstance(connect_error(host.address), ConnectionRefusedError)

    summary, events = run(tmp_path, host, capsys, "--yes")
    assert summary["status"] == "changed"
    [finding] = of(events, "finding_reported")
    assert finding["cause"] == "network" and finding["fixable"] is False
    assert "depends on the distro" in finding["summary"]
    assert connect_error(host.address) is None
    second, events = run(tmp_path, host, capsys, "--yes")
    assert second == OK and of(events, "finding_reported") == []


def test_nftables_blocking_is_reported_and_left_alone(
    systemd_host: SystemdHost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = systemd_host
    listen_everywhere(host)
    host.ssh(
        "nft add table inet guard && nft 'add chain inet guard input "
        "{ type filter hook input priority 0; policy accept; }' && "
        "nft add rule inet guard input tcp dport 6379 drop",
        check=True,
    )
    before = host.ssh("nft list ruleset", check=True).stdout

    summary, events = run(tmp_path, host, capsys, "--yes", verify="  []")
    assert summary == OK and planned(events) == []
    [finding] = of(events, "finding_reported")
    assert finding["fixable"] is False and "tcp dport 6379 accept" in finding["summary"]
    assert finding["evidence"] == ["tcp dport 6379 drop"]
    assert host.ssh("nft list ruleset", check=True).stdout == before
