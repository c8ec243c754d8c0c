"""Triage on real systemd hosts: `redis_facts` + probes + `log_scan` + `redis_triage`.

User story: given a fleet of Debian 12 hosts, each broken in one of the ways the guide
lists (Debian's default bind, a ufw reject or deny rule, firewalld, a stopped and
disabled unit, LimitNOFILE=64, protected mode, another port, maxclients reached, memory
full), when I run one triage playbook across all of them with --check, then every host's
causes are named — the right ones, with their evidence — and nothing on any host changes.

The kernel's vm.overcommit_memory is one value for the whole test machine (nspawn hosts
cannot change it), so `overcommit` is expected exactly when this machine has it off.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redmedic.cli import main
from redmedic.connection import ConnectOptions, connect
from redmedic.model.inventory import Host
from redmedic.steps.log_scan import LogScan, LogScanArgs
from redmedic.steps.redis_facts import RedisFacts, RedisFactsArgs
from redmedic.testing import step_context
from tests.support.nspawn import SystemdHost, machine_sysctl

pytestmark = pytest.mark.e2e

PASSWORD = "E2e-triage-s3cret"
OPEN = f"printf 'bind 0.0.0.0 -::*\\nrequirepass {PASSWORD}\\n' >> /etc/redis/redis.conf"
RESTART = "systemctl restart redis-server"
DROPIN_DIR = "/etc/systemd/system/redis-server.service.d"
NOFILE_DROPIN = (
    f"mkdir -p {DROPIN_DIR} && printf '[Service]\\nLimitNOFILE=64\\n' > {DROPIN_DIR}/nofile.conf"
    " && systemctl daemon-reload && systemctl restart redis-server"
)
HOLD_TWO_CLIENTS = (
    f"nohup sh -c 'REDISCLI_AUTH={PASSWORD} redis-cli BLPOP k1 0 & "
    f"REDISCLI_AUTH={PASSWORD} redis-cli BLPOP k2 0 & wait' >/dev/null 2>&1 &"
)
# Until both are connected: a third client is turned away (a bounded poll, on the host).
UNTIL_FULL = (
    "for i in $(seq 1200); do redis-cli ping 2>&1 | grep -q 'max number of clients' && exit 0;"
    " sleep 0.1; done; exit 1"
)
FILL = (
    f"REDISCLI_AUTH={PASSWORD} redis-cli EVAL \"for i=1,5000 do redis.call('SET', 'k'..i, "
    "string.rep('x', 1000)) end\" 0 || true"
)

# name -> (fault commands, has a password, causes expected besides overcommit)
FAULTS: dict[str, tuple[list[str], bool, list[str]]] = {
    # Debian's config has protected mode on and no password: named from it with the bind
    "default": ([], False, ["bind", "protected-mode"]),
    "ufw-reject": ([OPEN, RESTART, "ufw allow 22/tcp", "ufw reject 6379/tcp",
                    "ufw --force enable"], True, ["firewall-ufw"]),
    "ufw-deny": ([OPEN, RESTART, "ufw allow 22/tcp", "ufw deny 6379/tcp",
                  "ufw --force enable"], True, ["firewall-ufw"]),
    "firewalld": ([OPEN, RESTART, "systemctl start firewalld"], True, ["firewall-firewalld"]),
    "stopped": (["systemctl disable --now redis-server"], False,
                ["not-running", "not-enabled", "bind", "protected-mode"]),
    "nofile": ([NOFILE_DROPIN], False, ["bind", "protected-mode", "nofile-limit"]),
    "protected": (["printf 'bind 0.0.0.0 -::*\\n' >> /etc/redis/redis.conf", RESTART], False,
                  ["protected-mode"]),
    "port-6380": (["printf 'port 6380\\n' >> /etc/redis/redis.conf", RESTART], False,
                  ["wrong-port", "bind", "protected-mode"]),
    "maxclients": ([OPEN, "printf 'maxclients 2\\n' >> /etc/redis/redis.conf", RESTART,
                    HOLD_TWO_CLIENTS, UNTIL_FULL], True, ["max-clients"]),
    "oom": ([OPEN, "printf 'maxmemory 2mb\\n' >> /etc/redis/redis.conf", RESTART, FILL], True,
            ["oom"]),
}  # fmt: skip

TRIAGE = """\
name: Triage
hosts: all
diagnose:
  - name: Gather facts
    redis_facts: {password: "{{ redis_password }}"}
    register: facts
  - name: Probe
    redis_probe: {password: "{{ redis_password }}", write: true}
    register: probe
  - name: Triage
    redis_triage: {facts: "{{ facts }}", probe: "{{ probe }}"}
    register: triage
"""


def overcommit_off() -> bool:
    return machine_sysctl("vm.overcommit_memory") != "1"


def test_one_triage_run_names_each_hosts_cause(
    make_systemd_host: Callable[[], SystemdHost],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hosts = {name: make_systemd_host() for name in FAULTS}
    lines = ["all:", "  hosts:"]
    known = tmp_path / "known_hosts"
    known.write_text("".join(Path(h.known_hosts).read_text() for h in hosts.values()))
    for name, host in hosts.items():
        commands, has_password, _ = FAULTS[name]
        for command in commands:
            host.ssh(command, check=True)
        lines += [
            f"    {name}:",
            f"      ansible_host: {host.address}",
            "      ansible_user: root",
            f"      ansible_ssh_private_key_file: {host.private_key}",
            f"      redis_password: '{PASSWORD if has_password else ''}'",
        ]
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("\n".join(lines) + "\n")
    playbook = tmp_path / "triage.yaml"
    playbook.write_text(TRIAGE)
    configs = {n: h.ssh("sha256sum /etc/redis/redis.conf").stdout for n, h in hosts.items()}

    started = time.monotonic()
    code = main(["run", str(playbook), "-i", str(inventory), "--known-hosts", str(known),
                 "--output", "json", "--check"])  # fmt: skip
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    events: list[dict[str, Any]] = [json.loads(line) for line in out.splitlines()]

    assert code == 0, [e for e in events if e.get("status") == "failed"]
    found: dict[str, list[str]] = {name: [] for name in hosts}
    evidence: dict[tuple[str, str], list[str]] = {}
    for e in events:
        if e["event"] == "finding_reported" and e["step"] == "Triage":
            found[e["host"]].append(e["cause"])
            evidence[(e["host"], e["cause"])] = e["evidence"]
    for name, (_, _, expected) in FAULTS.items():
        wanted = expected + (["overcommit"] if overcommit_off() else [])
        assert sorted(found[name]) == sorted(wanted), (name, found[name], evidence)

    assert (
        evidence[("default", "bind")][0]
        == "ss: LISTEN 127.0.0.1:6379 redis-server "
        + (evidence[("default", "bind")][0].split("redis-server ", 1)[1])
    )
    assert "config /etc/redis/redis.conf: bind 127.0.0.1 -::1" in evidence[("default", "bind")]
    assert "ufw: 6379/tcp  REJECT IN  Anywhere" in evidence[("ufw-reject", "firewall-ufw")]
    assert "ufw: 6379/tcp  DENY IN  Anywhere" in evidence[("ufw-deny", "firewall-ufw")]
    assert evidence[("firewalld", "firewall-firewalld")][0] == (
        "firewalld: zone public: ports: (none); services: dhcpv6-client ssh"
    )
    assert "systemctl: UnitFileState=disabled" in evidence[("stopped", "not-enabled")]
    assert any("Max open files 64" in line for line in evidence[("nofile", "nofile-limit")])
    assert any(
        line.startswith("control: DENIED") for line in evidence[("protected", "protected-mode")]
    )
    assert "config /etc/redis/redis.conf: port 6380" in evidence[("port-6380", "wrong-port")]
    assert "control: ERR max number of clients reached" in evidence[("maxclients", "max-clients")]
    assert any("maxmemory=2097152" in line for line in evidence[("oom", "oom")])

    assert PASSWORD not in out
    assert {n: h.ssh("sha256sum /etc/redis/redis.conf").stdout for n, h in hosts.items()} == configs
    print(f"\ntriage of {len(hosts)} hosts: {elapsed:.2f} s")  # measured: see the step docs


def test_facts_of_a_real_unit_with_a_low_open_file_limit(systemd_host: SystemdHost) -> None:
    systemd_host.ssh(NOFILE_DROPIN, check=True)
    main_pid = int(systemd_host.ssh("systemctl show -p MainPID --value redis-server").stdout)
    host = Host(
        name=systemd_host.name,
        address=systemd_host.address,
        user="root",
        private_key_file=str(systemd_host.private_key),
    )
    options = ConnectOptions(known_hosts_files=(str(systemd_host.known_hosts),))
    with connect(host, options) as conn:
        ctx = step_context(conn)
        facts = RedisFacts().diagnose(RedisFactsArgs(), ctx).facts  # Gathered.facts
        logs = LogScan().registered(LogScan().diagnose(LogScanArgs(facts=dict(facts)), ctx))

    assert facts["init"] == "systemd"
    assert facts["unit"] == {
        "name": "redis-server.service",
        "load_state": "loaded",
        "active_state": "active",
        "sub_state": "running",
        "unit_file_state": "enabled",
        "main_pid": main_pid,
        "n_restarts": 0,
        "result": "success",
        "exec_start": "/usr/bin/redis-server /etc/redis/redis.conf --supervised systemd "
        "--daemonize no",
    }
    assert (facts["pid"], facts["pid_source"]) == (main_pid, "unit")
    assert facts["max_open_files"] == {"soft": 64, "hard": 64}
    assert facts["info"]["clients"]["maxclients"] == 32  # reduced by Redis for the limit
    assert facts["live_config"]["maxclients"] == "32"
    assert (facts["config"]["path"], facts["config"]["source"]) == ("/etc/redis/redis.conf", "info")
    assert facts["config"]["directives"]["bind"] == "127.0.0.1 -::1"
    assert {(s["address"], s["port"]) for s in facts["redis_listening"]} == {
        ("127.0.0.1", 6379),
        ("::1", 6379),
    }
    assert facts["firewall"] == {
        "ufw": {"status": "inactive"},
        "firewalld": {"state": "not running"},
    }
    assert facts["log"]["path"] == "/var/log/redis/redis-server.log"
    assert any("Started redis-server.service" in line for line in facts["journal"])
    assert "nofile" in logs.facts["hits"]
    assert any("maxclients has been reduced to 32" in line for line in logs.facts["hits"]["nofile"])
