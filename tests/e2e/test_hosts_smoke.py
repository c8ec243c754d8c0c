"""Smoke test of the tier-2 fixture: what an e2e test author can rely on from a fresh host.

User story: as the author of an end-to-end test for a redmedic fix, I get a fresh Debian 12
host with real systemd, redis-server running under Debian's default config (so the control
machine gets "connection refused" on 6379, the very symptom redmedic diagnoses), ufw and
firewalld ready to be turned on, reachable over SSH with strict host key checking, and
isolated from every other test's host.
"""

from __future__ import annotations

import errno
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.nspawn import COMMAND_TIMEOUT, HostPool, SystemdHost, ssh

pytestmark = pytest.mark.e2e

REDIS_PORT = 6379


def _connect_error(address: str, port: int, timeout: float = 30.0) -> OSError | None:
    """Try a TCP connect from the control machine; return the error (None if it connected)."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return None
    except OSError as e:
        return e


def answer(host: SystemdHost, command: str) -> str:
    """What `command` printed on `host`; an answer that is not one (ssh failed, systemctl
    could not ask systemd) fails with what the host said on stderr."""
    result = ssh(host, command)
    said = result.stdout.strip()
    assert said, f"{command!r} printed nothing (exit {result.returncode}): {result.stderr!r}"
    return said


def test_fresh_host_runs_redis_under_systemd_but_refuses_remote_connections(
    systemd_host: SystemdHost,
) -> None:
    host = systemd_host

    assert answer(host, "systemctl is-system-running") in ("running", "degraded")
    assert answer(host, "systemctl is-active redis-server") == "active"
    assert answer(host, "systemctl is-enabled redis-server") == "enabled"
    assert ssh(host, "redis-cli ping", check=True).stdout.strip() == "PONG"
    config = ssh(host, "grep -E '^(bind|protected-mode) ' /etc/redis/redis.conf").stdout
    assert "bind 127.0.0.1 -::1" in config
    assert "protected-mode yes" in config

    # Debian's default bind: the control machine meets the symptom redmedic diagnoses.
    error = _connect_error(host.address, REDIS_PORT)
    assert isinstance(error, ConnectionRefusedError), error
    # ... while the host itself is reachable.
    assert _connect_error(host.address, 22) is None


def test_fresh_host_has_ufw_and_firewalld_ready_to_use(systemd_host: SystemdHost) -> None:
    host = systemd_host

    ufw = ssh(host, "ufw status")
    assert ufw.returncode == 0, ufw.stderr
    assert "Status: inactive" in ufw.stdout

    # firewalld is installed but off, like on a stock server; a test can start it.
    assert ssh(host, "systemctl is-enabled firewalld").stdout.strip() == "disabled"
    assert ssh(host, "systemctl is-active firewalld").stdout.strip() == "inactive"
    started = ssh(host, "systemctl start firewalld && firewall-cmd --state")
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "running"

    # The firewall really filters this host's traffic: its default zone rejects 6379 with
    # "No route to host" instead of the plain refusal, and still lets SSH in.
    error = _connect_error(host.address, REDIS_PORT)
    assert isinstance(error, OSError) and error.errno == errno.EHOSTUNREACH, error
    assert ssh(host, "true").returncode == 0


def test_each_host_is_its_own_machine(
    make_systemd_host: Callable[[], SystemdHost],
) -> None:
    first, second = make_systemd_host(), make_systemd_host()

    assert first.name != second.name
    assert first.address != second.address
    # Own SSH host keys: the known_hosts entries differ, and each host serves the key the
    # fixture recorded (the strict-checking ssh below would fail otherwise).
    first_key = first.known_hosts_line.split()[1:]
    second_key = second.known_hosts_line.split()[1:]
    assert first_key != second_key
    for host, key in ((first, first_key), (second, second_key)):
        served = ssh(host, "cat /etc/ssh/ssh_host_ed25519_key.pub", check=True).stdout.split()
        assert served[:2] == key
    assert ssh(first, "hostname").stdout.strip() == first.name
    machine_ids = {ssh(h, "cat /etc/machine-id").stdout.strip() for h in (first, second)}
    assert len(machine_ids) == 2

    # A destructive fault on one host leaves the other (and the shared base) untouched.
    ssh(first, "systemctl stop redis-server && echo broken > /etc/redis/fault", check=True)
    assert ssh(first, "systemctl is-active redis-server").stdout.strip() == "inactive"
    assert ssh(second, "systemctl is-active redis-server").stdout.strip() == "active"
    assert ssh(second, "test -e /etc/redis/fault").returncode == 1
    assert (first.root / "etc/redis/fault").read_text() == "broken\n"


def test_known_hosts_keeps_strict_checking_on(systemd_host: SystemdHost) -> None:
    host = systemd_host
    lines = host.known_hosts.read_text().splitlines()
    assert host.known_hosts_line in lines

    # With an empty known_hosts the same ssh is refused: host key checking is really on.
    options = [
        o if not o.startswith("UserKnownHostsFile=") else "UserKnownHostsFile=/dev/null"
        for o in host.ssh_options
    ]
    refused = subprocess.run(
        ["ssh", *options, f"root@{host.address}", "true"],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert refused.returncode == 255
    assert "Host key verification failed" in refused.stderr


def test_pool_teardown_leaves_nothing_behind(host_pool: HostPool) -> None:
    """A second pool (its own slot) boots a host and removes every trace when closed."""
    with HostPool() as pool:
        assert pool.bridge != host_pool.bridge
        [host] = pool.boot(1)
        assert ssh(host, "redis-cli ping").stdout.strip() == "PONG"
        bridge, root, state = pool.bridge, host.root, pool.state_dir

    assert not Path("/sys/class/net", bridge).exists()
    assert not Path("/sys/class/net", f"vb-{host.name}").exists()
    with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
        assert str(root) not in mounts.read()
    assert not state.exists()
