"""`systemd_dropin` and `sysctl` on real systemd hosts (systemd-nspawn).

Given redis-server under Debian's unit, when a playbook sets LimitNOFILE in a drop-in and
notifies a restart, then the running process has the new limit (/proc/PID/limits) and redis
sizes maxclients to it; a failed verify puts the old limit back; a second run changes nothing.

Given a container host, where /proc/sys is read-only, when a playbook sets
vm.overcommit_memory, then the sysctl.d file is written for the next boot, and where the
running value is not already 1 a finding says it could not be changed here; a
per-network-namespace key (net.core.somaxconn) is writable there and changes at runtime too.

vm.overcommit_memory is one kernel-wide value the hosts share with this machine (0 on a
fresh VM, but anything may have set it to 1; tests/support/README.md), so the test reads it
and asserts what redmedic must do for that value: with 1 nothing to fix at runtime, with
anything else the "runtime write refused" finding. redmedic's decision on both values is
pinned down without a host in tests/unit/test_sysctl_machine_value.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from redmedic.cli import main
from tests.support.nspawn import SystemdHost, machine_sysctl

DROPIN = """\
name: Open files for redis
hosts: all
fix:
  - name: Redis may open {limit} files
    systemd_dropin: {{unit: redis-server, settings: {{LimitNOFILE: {limit}}}}}
    notify: restart redis
handlers:
  - name: restart redis
    # systemd refuses a 6th start within 10 s; tests (and fleets) restart often.
    shell: systemctl reset-failed redis-server; systemctl restart redis-server
verify:
  - name: The running redis has the limit
    shell: grep 'Max open files' /proc/$(systemctl show -p MainPID --value redis-server)/limits
    expect_stdout: "{expect}"
"""

SYSCTL = """\
name: Kernel settings for redis
hosts: all
fix:
  - name: Overcommit
    sysctl: {name: vm.overcommit_memory, value: 1}
  - name: Listen backlog
    sysctl: {name: net.core.somaxconn, value: 8192}
"""

CONF = "/etc/sysctl.d/60-redmedic.conf"
DROPIN_DIR = "/etc/systemd/system/redis-server.service.d"


def run(
    tmp_path: Path, host: SystemdHost, capsys: pytest.CaptureFixture[str], text: str, *flags: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run `text` as a playbook through the CLI; (the host's summary with `exit`, events)."""
    playbook = tmp_path / "playbook.yaml"
    playbook.write_text(text)
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


def open_files(host: SystemdHost) -> list[str]:
    """Soft and hard `Max open files` of the running redis-server."""
    limits = host.ssh(
        "cat /proc/$(systemctl show -p MainPID --value redis-server)/limits", check=True
    ).stdout
    line = next(ln for ln in limits.splitlines() if ln.startswith("Max open files"))
    return line.split()[3:5]


def test_a_limitnofile_drop_in_reaches_the_running_redis_and_rolls_back_cleanly(
    systemd_host: SystemdHost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = systemd_host
    before = open_files(host)  # Debian's 65535, capped at 20000 inside nspawn

    summary, events = run(tmp_path, host, capsys, DROPIN.format(limit=40, expect=" 40 "), "--check")
    assert summary["status"] == "would_change"
    assert [e["description"] for e in of(events, "change_planned")] == [
        f"mkdir -p -- {DROPIN_DIR}",  # what is shown is what runs: the command itself
        f"create {DROPIN_DIR}/redmedic.conf (mode 0644)",
        "systemctl daemon-reload",
        "systemctl reset-failed redis-server; systemctl restart redis-server (cannot be undone)",
    ]
    assert host.ssh(f"test -e {DROPIN_DIR}").returncode == 1

    # A verify that fails: the drop-in and its directory go, systemd reloads after that,
    # and the restart that follows the rollback brings back the old limit.
    summary, events = run(tmp_path, host, capsys, DROPIN.format(limit=40, expect="never"), "--yes")
    assert summary["status"] == "failed" and of(events, "rolled_back")
    assert host.ssh(f"test -e {DROPIN_DIR}").returncode == 1
    assert open_files(host) == before
    assert host.ssh("systemctl show -p NeedDaemonReload --value redis-server").stdout == "no\n"

    summary, _ = run(tmp_path, host, capsys, DROPIN.format(limit=40, expect=" 40 "), "--yes")
    assert summary == {"status": "changed", "changed": 4, "failed": 0, "exit": 0}
    assert open_files(host) == ["40", "40"]
    # Redis keeps 32 descriptors for itself: 40 files leave room for 8 clients.
    assert host.ssh("redis-cli config get maxclients").stdout.split() == ["maxclients", "8"]

    summary, _ = run(tmp_path, host, capsys, DROPIN.format(limit=40, expect=" 40 "), "--yes")
    assert summary == {"status": "ok", "changed": 0, "failed": 0, "exit": 0}


def test_sysctl_in_a_container_persists_and_says_when_the_runtime_value_cannot_change(
    systemd_host: SystemdHost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = systemd_host
    # The kernel-wide value the whole test machine uses; this test must never change it.
    overcommit = machine_sysctl("vm.overcommit_memory")
    refused = overcommit != "1"  # redmedic wants 1: only then is a runtime write needed
    assert host.ssh("sysctl -n vm.overcommit_memory", check=True).stdout == f"{overcommit}\n"
    assert host.ssh("test -w /proc/sys/vm/overcommit_memory").returncode == 1
    somaxconn = host.ssh("sysctl -n net.core.somaxconn", check=True).stdout.strip()
    assert somaxconn != "8192"

    summary, events = run(tmp_path, host, capsys, SYSCTL, "--check")
    assert [e["description"] for e in of(events, "change_planned")] == [
        f"create {CONF} (mode 0644)",
        f"edit {CONF}",  # the second step edits the file the first one creates
        "sysctl -q -w net.core.somaxconn=8192",
    ]
    assert host.ssh(f"test -e {CONF}").returncode == 1

    summary, events = run(tmp_path, host, capsys, SYSCTL, "--yes")
    assert summary == {"status": "changed", "changed": 3, "failed": 0, "exit": 0}
    findings = of(events, "finding_reported")
    if refused:
        [finding] = findings
        assert finding["cause"] == "overcommit" and finding["fixable"] is False
        assert "could not be changed here" in finding["summary"]
        assert "read-only" in finding["summary"] and "next boot" in finding["summary"]
    else:
        assert findings == []  # already 1 at runtime: the file is for the next boot only
    assert host.ssh(f"cat {CONF}", check=True).stdout == (
        "# Kernel settings for Redis, written by redmedic.\n"
        "vm.overcommit_memory = 1\nnet.core.somaxconn = 8192\n"
    )
    assert host.ssh("sysctl -n net.core.somaxconn", check=True).stdout == "8192\n"
    assert machine_sysctl("vm.overcommit_memory") == overcommit

    # Nothing left to do; where the runtime value still is not 1, that is said again.
    summary, events = run(tmp_path, host, capsys, SYSCTL, "--yes")
    assert summary == {"status": "ok", "changed": 0, "failed": 0, "exit": 0}
    assert [f["cause"] for f in of(events, "finding_reported")] == (
        ["overcommit"] if refused else []
    )
