"""Open files without a restart, on real Debian 12 systemd hosts (systemd-nspawn).

Root on these hosts lacks CAP_SYS_RESOURCE (tests/support/README.md), so what is proven
here is the live path up to the process's hard limit, and the refusal beyond it with its
fallback; the live raise beyond the hard limit is tested on captured outputs
(tests/unit/test_open_files.py).

- Live: a running Redis whose soft open-file limit was lowered at runtime below what
  maxclients needs (prlimit as the redis user; its hard limit is still 20000, nspawn's cap)
  and whose maxclients was lowered to fit (968, as Redis does at start) is named
  `nofile-limit` by the triage and fixed — prlimit, CONFIG SET maxclients 10000 — with the
  PID unchanged, a client that was connected before still connected after, and no restart.
- Refused: the LimitNOFILE=40 fault (hard limit 40) with redis_nofile 65535: the plan says
  why the live raise is refused and the fix restarts Redis; the host ends fixed.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.support.nspawn import HostPool, SystemdHost

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
PASSWORD = "E2e-open-files-s3cret"
CONF = "/etc/redis/redis.conf"
DROPINS = "/etc/systemd/system/redis-server.service.d"
RESTART = "systemctl restart redis-server"
OPEN = f"printf 'bind 0.0.0.0 -::*\\nrequirepass {PASSWORD}\\n' >> {CONF} && {RESTART}"
PID = "systemctl show -p MainPID --value redis-server"
# The soft limit lowered at runtime, as the process's own user may (hard limit kept), and
# maxclients lowered to fit it, as Redis itself does when it starts with 1000 files.
SOFT_LOWERED = (
    f"{OPEN} && setpriv --reuid=redis --regid=redis --clear-groups "
    f'prlimit --pid "$({PID})" --nofile=1000:20000'
    f" && REDISCLI_AUTH={PASSWORD} redis-cli CONFIG SET maxclients 968"
)
NOFILE_40 = (
    f"{OPEN} && mkdir -p {DROPINS} && printf '[Service]\\nLimitNOFILE=40\\n' > "
    f"{DROPINS}/nofile.conf && systemctl daemon-reload && {RESTART}"
)
REFUSED = "raising the hard limit 40 → 65535 needs CAP_SYS_RESOURCE, which root lacks on this host"


def redmedic(
    pool: HostPool, host: SystemdHost, tmp: Path, playbook: str, *flags: str
) -> list[dict[str, Any]]:
    """The CLI in its own process on one host; its JSON events."""
    inventory = tmp / "inventory.yaml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        host.name: {
                            "ansible_host": host.address,
                            "ansible_user": "root",
                            "ansible_ssh_private_key_file": str(host.private_key),
                            "redis_password": PASSWORD,
                        }
                    }
                }
            }
        )
    )
    argv = [sys.executable, "-m", "redmedic.cli", "run", str(PLAYBOOKS / playbook),
            "-i", str(inventory), "--known-hosts", str(pool.known_hosts), "--output", "json",
            "--audit-log", str(tmp / "audit.jsonl"), *flags]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines and '"summary"' in lines[-1], (done.returncode, done.stdout[-3000:], done.stderr)
    return [json.loads(line) for line in lines]


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind]


def planned(events: list[dict[str, Any]], step: str) -> list[str]:
    return [e["description"] for e in of(events, "change_planned") if e["step"] == step]


def status(events: list[dict[str, Any]], host: SystemdHost) -> str:
    return str(events[-1]["hosts"][host.name]["status"])


def handlers_ran(events: list[dict[str, Any]]) -> list[str]:
    """The handlers that changed the host (a restart is a change)."""
    return [e["step"] for e in of(events, "change_applied") if e["phase"] == "handlers"]


def sh(host: SystemdHost, command: str) -> str:
    return host.ssh(command, check=True, timeout=120).stdout.strip()


def open_files(host: SystemdHost, pid: str) -> str:
    return " ".join(sh(host, f"grep '^Max open files' /proc/{pid}/limits").split()[3:5])


def connected_client(address: str) -> socket.socket:
    """A client that authenticated and got PONG: it must still get PONG after the fix."""
    sock = socket.create_connection((address, 6379), timeout=30)
    assert ask(sock, f"AUTH {PASSWORD}\r\nPING\r\n") == "+OK\r\n+PONG\r\n"
    return sock


def ask(sock: socket.socket, command: str, lines: int | None = None) -> str:
    """Send `command`; the answer once it has `lines` lines (default: one per command)."""
    sock.sendall(command.encode())
    want = lines or command.count("\r\n")
    answer = b""
    while answer.count(b"\r\n") < want:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer.decode()


def test_a_lowered_soft_limit_is_raised_live_with_the_pid_and_clients_kept(
    systemd_host: SystemdHost, host_pool: HostPool, tmp_path: Path
) -> None:
    host = systemd_host
    # Given a Redis whose soft limit was lowered at runtime below the 10032 maxclients needs
    sh(host, SOFT_LOWERED)
    pid = sh(host, PID)
    assert open_files(host, pid) == "1000 20000"
    client = connected_client(host.address)
    try:
        # When the triage runs and fixes it
        events = redmedic(host_pool, host, tmp_path, "connection-refused.yaml", "--yes")
        # Then it named nofile-limit and planned the live raise: every change live
        findings = [e["cause"] for e in of(events, "finding_reported")]
        assert "nofile-limit" in findings, findings
        changes = planned(events, "Give Redis the open files maxclients needs")
        assert changes[0] == (
            "setpriv --reuid=101 --regid=102 --clear-groups prlimit "
            f"--pid {pid} --nofile=20000:20000 (live, no restart)"
        ), changes
        assert "CONFIG SET maxclients 10000" in changes[1], changes
        assert PASSWORD not in json.dumps(events)
        assert all(c.endswith("(live, no restart)") for c in changes), changes
        assert status(events, host) == "changed", events[-1]
        assert handlers_ran(events) == []
        # And Redis was not restarted: same PID, the old client still served
        assert sh(host, PID) == pid
        assert open_files(host, pid) == "20000 20000"
        assert ask(client, "PING\r\n") == "+PONG\r\n"
        assert ask(client, "CONFIG GET maxclients\r\n", 5).split("\r\n")[4] == "10000"
        # And the next start gets the limit too
        assert sh(host, "systemctl show -p LimitNOFILE --value redis-server") == "65535"
    finally:
        client.close()
    # And a second run finds nothing to do
    again = redmedic(host_pool, host, tmp_path, "connection-refused.yaml", "--yes")
    assert status(again, host) == "ok", again[-1]


def test_a_hard_limit_below_maxclients_is_refused_live_and_fixed_by_a_restart(
    systemd_host: SystemdHost, host_pool: HostPool, tmp_path: Path
) -> None:
    host = systemd_host
    # Given the LimitNOFILE=40 fault: soft and hard limit 40, maxclients capped at 8
    sh(host, NOFILE_40)
    pid = sh(host, PID)
    assert open_files(host, pid) == "40 40"
    # When the plan is made
    check = redmedic(host_pool, host, tmp_path, "maxclients-nofile.yaml", "--check")
    # Then it says why the live raise is refused and that the drop-in needs the restart
    changes = planned(check, "Give Redis the open files maxclients needs")
    assert f"(needs a restart: {REFUSED})" in " ".join(changes), changes
    assert not any("prlimit" in c for c in changes), changes
    # When it is applied, Redis restarts and ends fixed
    events = redmedic(host_pool, host, tmp_path, "maxclients-nofile.yaml", "--yes")
    assert status(events, host) == "changed", events[-1]
    assert "restart redis" in handlers_ran(events)
    new_pid = sh(host, PID)
    assert new_pid != pid
    assert open_files(host, new_pid) == "20000 20000"  # 65535, capped by nspawn
    assert sh(host, "redis-cli -a '" + PASSWORD + "' --no-auth-warning CONFIG GET maxclients") == (
        "maxclients\n10000"
    )
