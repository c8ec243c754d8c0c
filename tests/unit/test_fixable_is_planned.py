"""A finding reported fixable is planned: for every cause the shipped triage can name fixable,
connection-refused.yaml has a fix step (tagged for the cause) that plans a change for it.

User story: given a host whose triage names a cause and says `fixable: true`, when
connection-refused.yaml plans its fixes, then at least one change is planned for that cause
— a "fixable" finding that plans nothing would pass a run and fail the next one.

Each scenario is a host's facts as `redis_facts` registered them on a real Debian 12 host
(the captured sections of test_diagnosis.py); the fix steps run their real diagnose and plan
over a scripted host that answers as that host would (its redis.conf, a stopped unit, a
kernel setting at 0, no drop-ins).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from redmedic.events import Answer
from redmedic.model.inventory import Host
from redmedic.playbook import load_playbook
from redmedic.redis.diagnosis import CAUSES
from redmedic.run.executor import HostRun, RunOptions
from redmedic.run.gate import Gate
from redmedic.steps import builtin_step_types
from redmedic.steps.triage import RedisTriage, TriageArgs
from redmedic.testing import ScriptedConnection, step_context
from tests.unit.test_diagnosis import (
    AT_1MB,
    DEBIAN_DEFAULT,
    FIREWALLD_SERVICES,
    FIREWALLD_ZONE,
    FULL_WITHOUT_PASSWORD,
    HEALTHY,
    LIMITS_64,
    LISTEN_6380,
    LISTEN_SSH_ONLY,
    LOG_NOFILE,
    MAX_CLIENTS,
    NO_ROUTE,
    OOM,
    OPEN_CONF,
    REFUSED,
    SYSCTL_OFF,
    UFW_REJECT,
    UNIT_STOPPED_DISABLED,
    facts,
    info,
    live,
    probe,
    registered,
)

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "connection-refused.yaml"
STOPPED = {
    **HEALTHY,
    "unit": UNIT_STOPPED_DISABLED,
    "pid": " ",
    "listen": LISTEN_SSH_ONLY,
    "limits": "",
    "info": "redmedic: no redis-server process",
    "live-config": "",
    "config-path": "unit read\n/etc/redis/redis.conf",
}
SCENARIOS: dict[str, tuple[dict[str, str], Any]] = {
    "debian-default": ({**DEBIAN_DEFAULT, "sysctl": SYSCTL_OFF}, probe(REFUSED)),
    "stopped-elsewhere": ({**STOPPED, "config": OPEN_CONF + "port 6380\n"}, probe(REFUSED)),
    "stopped-debian": ({**STOPPED, "config": DEBIAN_DEFAULT["config"]}, probe(REFUSED)),
    "port-6380": (
        {**DEBIAN_DEFAULT, "listen": LISTEN_6380, "info": info(port=6380),
         "live-config": live(port="6380"), "config": DEBIAN_DEFAULT["config"] + "port 6380\n"},
        probe(REFUSED, REFUSED),
    ),
    "ufw": ({**HEALTHY, "ufw": UFW_REJECT}, probe(REFUSED)),
    "firewalld": (
        {**HEALTHY, "firewalld": "running", "firewalld-zone": FIREWALLD_ZONE,
         "firewalld-services": FIREWALLD_SERVICES},
        probe(NO_ROUTE),
    ),
    "full-without-password": (FULL_WITHOUT_PASSWORD, probe(MAX_CLIENTS, MAX_CLIENTS)),
    "nofile": (
        {**HEALTHY, "limits": LIMITS_64, "info": info(maxclients=32),
         "live-config": live(bind="0.0.0.0 -::*", maxclients="32"), "log": LOG_NOFILE},
        probe(("ok", "PONG")),
    ),
    "oom-at-1mb": (AT_1MB, probe(OOM, OOM)),
}  # fmt: skip
# What the gather scripts of the sysctl and systemd_dropin steps print there:
# vm.overcommit_memory 0 (settable), the unit's 64 open files and no drop-in directory.
SECTIONS = {
    "runtime": "0",
    "writable": "yes",
    "show": "LoadState=loaded\nNeedDaemonReload=no\nLimitNOFILE=64",
    "dir": "no",
}
# ... and the firewall step's: ufw rejecting 6379, or firewalld's default zone.
UFW = {"ufw": UFW_REJECT, "ufw.rc": "0"}
FIREWALLD = {
    "ufw": "Status: inactive",
    "ufw.rc": "0",
    "firewalld-state": "running",
    "firewalld-runtime": FIREWALLD_ZONE,
    "firewalld-permanent": FIREWALLD_ZONE,
    "firewalld-services": FIREWALLD_SERVICES,
    **{f"firewalld-{part}.rc": "0" for part in ("state", "runtime", "permanent", "services")},
}


class ScenarioHost(ScriptedConnection):
    """Answers the fix steps' reads as the scenario's host would."""

    def __init__(self, config: str, firewall: dict[str, str]) -> None:
        super().__init__(host=Host(name="h1", address="10.213.57.2"))
        self.config = config.encode()
        self.sections = {**SECTIONS, **firewall}

    def _answer(self, command: str) -> tuple[int, bytes, bytes]:
        self.commands.append(command)
        if "emit main" in command:  # redis_config reads redis.conf
            head = f"redmedic:file main {len(self.config)} 640 redis redis /etc/redis/redis.conf\n"
            return 0, head.encode() + self.config, b""
        marker = re.search(r"'(@@redmedic-[0-9a-f]+@@ )' ", command)
        if marker:  # a sectioned gather script
            names = re.findall(re.escape(marker.group(1)) + r"' '?(\w[\w.-]*)", command)
            wanted = {n: self.sections[n] for n in names if n in self.sections}
            out = "".join(f"\n{marker.group(1)}{n}\n{text}\n" for n, text in wanted.items())
            return 0, out.encode(), b""
        if "redmedic:absent" in command:  # a file read: no such file
            return 0, b"redmedic:absent\n", b""
        if "systemctl is-active" in command:
            return 0, b"inactive\ndisabled\n", b""
        return 0, b"", b""


def planned_for(sections: dict[str, str], seen: Any) -> tuple[list[dict[str, Any]], Any]:
    """The triage's findings and connection-refused.yaml's planned steps on this host."""
    gathered = registered(facts(sections))
    triage = RedisTriage()
    args = TriageArgs(
        facts=gathered, probe=registered(seen), maxclients=10000, maxmemory_policy="allkeys-lru"
    )
    result = triage.registered(triage.diagnose(args, step_context()))
    playbook = load_playbook(PLAYBOOK, builtin_step_types())
    firewall = FIREWALLD if sections.get("firewalld") == "running" else UFW
    conn = ScenarioHost(sections["config"], firewall)
    host = Host(name="h1", address="10.213.57.2", vars={"redis_password": "s3cret-pw"})
    run = HostRun(
        host, playbook, RunOptions(check=True), builtin_step_types(), lambda event: None,
        Gate(lambda request: Answer.YES, approve_all=True), lambda h, options: conn,
    )  # fmt: skip
    run.load_variables()
    run.vars.update(facts=gathered, triage=result.registered(False))
    return result.facts["findings"], run.plan(conn)


def covers(tags: tuple[str, ...], cause: str) -> bool:
    return any(cause == tag or cause.startswith(f"{tag}-") for tag in tags)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_fixable_finding_gets_a_planned_change(name: str) -> None:
    findings, planned = planned_for(*SCENARIOS[name])
    fixable = {f["cause"] for f in findings if f["fixable"]}
    assert fixable, "the scenario must name a fixable cause"
    changed = [p.step.tags for p in planned if p.changes]
    unplanned = {cause for cause in fixable if not any(covers(t, cause) for t in changed)}
    assert unplanned == set(), (fixable, changed)


def test_the_scenarios_cover_every_cause_the_triage_can_fix() -> None:
    named = set()
    for sections, seen in SCENARIOS.values():
        findings, _ = planned_for(sections, seen)
        named |= {f["cause"] for f in findings if f["fixable"]}
    never_fixable = {"network", "client"}
    assert named == set(CAUSES) - never_fixable
