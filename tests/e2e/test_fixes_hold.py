"""Fixes that hold: one run fixes a host, also one broken several ways, and the next run finds
nothing — every shipped playbook, on real systemd hosts.

User story: given Debian 12 hosts, each broken the way its playbook is for (and, for
`connection-refused.yaml`, hosts broken TWO ways at once, where one cause hides the other
from every probe: Redis answers a full server's clients "max number of clients reached"
before protected mode would refuse them), when I run the playbook with --yes once, then
every cause is named in that run and fixed by it (no rollback), this machine's PING (and
SET) works, and a second --yes run on the host finds nothing: zero changes, zero findings.

The one finding a second run may still report is the kernel-wide `overcommit`: the hosts
share this machine's kernel and cannot change vm.overcommit_memory (read-only /proc/sys),
so where the machine has it off every run says so — and says it is not fixable here.

Why one fleet run (the `hold` fixture, module scope): as in test_faults.py, each host is
broken in parallel, then each playbook runs once over its hosts (the playbooks in parallel,
as separate `redmedic` processes), the clients check, and the second run; each host's test
asserts on that host's events only.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.e2e.test_faults import (
    CONF,
    FILL,
    NOFILE_40,
    OPEN,
    PASSWORD,
    RESTART,
    UFW_ON,
    Case,
    Run,
    client_check,
    conf_line,
    hold_clients,
    overcommit_off,
    parallel,
    redmedic,
    timed,
    write_inventories,
)
from tests.support.nspawn import HostPool, SystemdHost

pytestmark = pytest.mark.e2e

# Redis's own memory (used_memory_overhead, ~0.9 MiB on 7.0) fills a 1 MiB limit: evicting
# keys cannot free room, so a policy change alone passes one write and fails the next.
AT_1MB = (OPEN, conf_line("maxmemory 1mb"), RESTART, FILL)
# Two loopback clients fill `maxclients 2` where remote clients cannot get in (protected
# mode): held by a process on the host, waited for until Redis has both.
HOLD_2_ON_HOST = (
    '{ setsid python3 -c \'import socket, time; s = [socket.create_connection(("127.0.0.1", '
    "6379)) for _ in range(2)]; time.sleep(900)' >/dev/null 2>&1 < /dev/null & }"
    " && for i in $(seq 120); do"
    "  [ $(ss -Htn state established '( dport = :6379 )' | wc -l) -ge 2 ] && break; sleep 0.5;"
    " done"
)


@dataclass(frozen=True)
class Hold:
    """One host: its faults, its playbook, the causes its first run must name."""

    case: Case
    causes: frozenset[str] = frozenset()  # the triage's, for connection-refused.yaml
    reject_one: bool = False  # a client beyond maxclients is refused before the run
    config_has: tuple[str, ...] = field(default=())  # redis.conf lines after the fix


def hold(
    setup: tuple[str, ...],
    playbook: str = "connection-refused.yaml",
    *causes: str,
    host_vars: Mapping[str, Any] | None = None,
    **more: Any,
) -> Hold:
    variables = {"redis_password": PASSWORD, **(host_vars or {})}
    case_fields = {k: more.pop(k) for k in ("hold", "write") if k in more}
    return Hold(
        Case(setup, playbook=playbook, host_vars=variables, **case_fields),
        frozenset(causes),
        **more,
    )


HOLDS: dict[str, Hold] = {
    # every shipped playbook, on the fault it is for
    "connection-refused.yaml": hold(AT_1MB, "connection-refused.yaml", "oom", write=True,
                                    config_has=("maxmemory 64mb",)),
    "memory.yaml": hold(AT_1MB, "memory.yaml", write=True, config_has=("maxmemory 64mb",)),
    "bind-and-port.yaml": hold((conf_line("port 6380"), RESTART), "bind-and-port.yaml"),
    "protected-mode.yaml": hold((conf_line("bind 0.0.0.0 -::*"), RESTART), "protected-mode.yaml"),
    "firewall.yaml": hold((OPEN, "ufw reject 6379/tcp", UFW_ON), "firewall.yaml"),
    "maxclients-nofile.yaml": hold((OPEN, conf_line("maxclients 2"), NOFILE_40),
                                   "maxclients-nofile.yaml"),
    "start-service.yaml": hold((OPEN, "systemctl disable --now redis-server"),
                               "start-service.yaml"),
    # two faults on one host, fixed by one connection-refused.yaml run
    "max-clients+protected-mode": hold(
        (conf_line("bind 0.0.0.0 -::*"), conf_line("maxclients 2"), RESTART, HOLD_2_ON_HOST),
        "connection-refused.yaml", "max-clients", "protected-mode",
    ),
    "wrong-port+bind": hold(
        (conf_line(f"requirepass {PASSWORD}"), conf_line("port 6380"), RESTART),
        "connection-refused.yaml", "wrong-port", "bind",
    ),
    "stopped+firewall": hold(
        (OPEN, "ufw reject 6379/tcp", UFW_ON, "systemctl disable --now redis-server"),
        "connection-refused.yaml", "not-running", "not-enabled", "firewall-ufw",
    ),
    "oom+max-clients": hold(
        (OPEN, conf_line("maxmemory 1mb"), conf_line("maxclients 3"), RESTART, FILL),
        "connection-refused.yaml", "oom", "max-clients", hold=2, reject_one=True, write=True,
    ),
    "max-clients+nofile-limit": hold(
        (OPEN, conf_line("maxclients 2"), NOFILE_40),
        "connection-refused.yaml", "max-clients", "nofile-limit", hold=2,
    ),
}  # fmt: skip


def reject_one(address: str) -> None:
    """Two more clients while one slot is free: the second is refused at maxclients (INFO
    stats counts it), then both go, so the run itself finds a free slot to read INFO."""
    extra = [socket.create_connection((address, 6379), timeout=30) for _ in range(2)]
    extra[1].sendall(b"PING\r\n")
    assert b"max number of clients reached" in extra[1].recv(200)
    for sock in extra:
        sock.close()


@dataclass
class Fleet:
    hosts: dict[str, SystemdHost]
    runs: dict[str, dict[str, Run]] = field(default_factory=dict)  # phase -> playbook -> run
    client: dict[str, str] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=dict)

    def run(self, phase: str, name: str) -> Run:
        return self.runs[phase][HOLDS[name].case.playbook]


@pytest.fixture(scope="module")
def fleet(host_pool: HostPool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Every host broken, then: --yes, client checks, --yes again (see the module doc)."""
    tmp = tmp_path_factory.mktemp("hold")
    seconds: dict[str, float] = {}
    hosts: dict[str, SystemdHost] = {}
    held: list[socket.socket] = []
    try:
        with timed(seconds, "boot"):
            host_pool.prewarm(len(HOLDS))
            hosts.update((name, host_pool.acquire()) for name in HOLDS)
        fleet = Fleet(hosts)
        with timed(seconds, "inject"):
            parallel(hosts, lambda name, host: host.ssh(
                " && ".join(HOLDS[name].case.setup), check=True, timeout=180
            ))  # fmt: skip
            for name, host in hosts.items():
                held += hold_clients(host.address, HOLDS[name].case.hold)
                if HOLDS[name].reject_one:
                    reject_one(host.address)
        inventories = write_inventories(tmp, hosts, {n: HOLDS[n].case for n in hosts}, "")

        def run_all(phase: str) -> None:
            with timed(seconds, phase):
                fleet.runs[phase] = parallel(
                    inventories,
                    lambda playbook, inventory: redmedic(
                        playbook, inventory, host_pool.known_hosts, tmp / "audit.jsonl", "--yes"
                    ),
                )

        run_all("first")
        for sock in held:
            sock.close()
        with timed(seconds, "client"):
            fleet.client = parallel(hosts, lambda name, host: client_check(host, HOLDS[name].case))
            fleet.config = parallel(
                hosts, lambda name, host: host.ssh(f"grep -v '^#' {CONF}", check=True).stdout
            )
        run_all("second")
        print(f"\n{len(hosts)} hosts, seconds per stage: {seconds}")
        yield fleet
    finally:
        for sock in held:
            sock.close()
        for host in hosts.values():
            host_pool.release(host)


def findings(run: Run, host: str) -> list[dict[str, Any]]:
    return run.of(host, "finding_reported")


def machine_wide(finding: Mapping[str, Any]) -> bool:
    """The one finding a fixed host may keep here: this machine's overcommit, not fixable."""
    return finding["cause"] == "overcommit" and finding["fixable"] is False and overcommit_off()


@pytest.mark.parametrize("name", list(HOLDS))
def test_one_run_fixes_the_host_and_the_next_finds_nothing(fleet: Fleet, name: str) -> None:
    wanted = HOLDS[name]
    first, second = fleet.run("first", name), fleet.run("second", name)
    assert PASSWORD not in json.dumps([first.events, second.events])

    # the first run names every cause (those hidden from the probes too) and fixes them all
    if wanted.case.playbook == "connection-refused.yaml":
        named = {f["cause"] for f in findings(first, name) if f["step"] == "Triage"}
        assert named == set(wanted.causes) | ({"overcommit"} if overcommit_off() else set())
        assert all(f["evidence"] for f in findings(first, name))
    assert first.summary(name)["status"] == "changed", first.message(name)
    assert not first.of(name, "rolled_back")
    assert fleet.client[name] == ("PONG SET ok" if wanted.case.write else "PONG")
    for line in wanted.config_has:
        assert f"\n{line}\n" in fleet.config[name], line

    # the second run: nothing to change, nothing to report
    assert second.summary(name) == {"status": "ok", "changed": 0, "failed": 0}, second.of(
        name, "change_planned"
    )
    left = [f for f in findings(second, name) if not machine_wide(f)]
    assert left == []
