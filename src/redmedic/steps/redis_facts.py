"""`redis_facts`: everything a Redis triage needs from one host, in one round trip.

The gather script and its parsers are Redis knowledge and live in `redmedic.redis.facts`;
this step runs the script, adds the firewall's verdict on the port (from the firewall's own
rule model, so triage and the firewall fix never disagree) and masks every string in the
facts before they leave it. Without a `password` argument the script takes `requirepass`
from the config file it reads, so a triage needs no password on the command line either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from redmedic.connection.scripts import new_marker, split_sections
from redmedic.errors import StepError
from redmedic.firewall.firewalld import parse_service_ports, parse_zone, zone_verdict
from redmedic.firewall.rules import ANY_V4, first_match
from redmedic.firewall.ufw import parse_ufw_status
from redmedic.model.plan import StepResult
from redmedic.redis.facts import (
    facts_script,
    mask_values,
    parse_sections,
    summarize,
    untrusted_findings,
)
from redmedic.steps.base import StepArgs, StepContext, StepType


def parse_facts(sections: Mapping[str, str], port: int) -> tuple[dict[str, Any], list[str]]:
    """All facts from the script's sections, with the firewall verdicts on `port` (the
    port clients expect), and the secrets found on the way. Pure."""
    return parse_sections(sections, firewall_facts(sections, port))


def firewall_facts(sections: Mapping[str, str], port: int) -> dict[str, Any]:
    """ufw's and firewalld's verdict for clients from anywhere on `port`."""
    return {
        "ufw": ufw_facts(sections.get("ufw", ""), port),
        "firewalld": firewalld_facts(
            sections.get("firewalld", ""),
            sections.get("firewalld-zone", ""),
            sections.get("firewalld-services", ""),
            port,
        ),
    }


def ufw_facts(text: str, port: int) -> dict[str, Any]:
    """`ufw status verbose` as facts, with the verdict for clients from anywhere on `port`.

    The verdict is the firewall step's own rule model (first matching rule, else the
    default policy), so triage and fix never disagree about what ufw does.
    """
    if text.startswith("redmedic: absent"):
        return {"status": "absent"}
    status = parse_ufw_status(text)
    if not status.active:
        inactive = "Status: inactive" in text
        return {"status": "inactive"} if inactive else {"status": "error", "error": text.strip()}
    rule = first_match(status.rules, ANY_V4, port, "tcp")
    is_open = rule.verdict == "allow" if rule else status.default_incoming == "allow"
    return {
        "status": "active",
        "default_incoming": status.default_incoming,
        "rules": [r.text for r in status.rules],
        "port_open": is_open,
        "deciding": rule.text if rule else status.default_line,
    }


def firewalld_facts(state: str, zone_text: str, services_text: str, port: int) -> dict[str, Any]:
    """firewalld's state and, when running, its default zone and the verdict on `port`."""
    state = state.strip()
    if state.startswith("redmedic: absent"):
        return {"state": "absent"}
    if state != "running" or not zone_text.strip():
        return {"state": state or "unknown"}
    zone = parse_zone(zone_text)
    verdict = zone_verdict(zone, ANY_V4, port, "tcp", parse_service_ports(services_text))
    return {
        "state": state,
        "zone": zone.name,
        "target": zone.target,
        "ports": list(zone.ports),
        "services": list(zone.services),
        "port_open": verdict.open,
        "deciding": verdict.denied_by.text if verdict.denied_by else zone.port_line(),
    }


class RedisFactsArgs(StepArgs):
    unit: str | None = Field(
        default=None,
        description="systemd unit of Redis; default: the first of redis-server.service, "
        "redis.service that exists.",
    )
    config: str | None = Field(
        default=None,
        description="redis.conf path; default: the running server's own (INFO config_file), "
        "else from its command line or the unit's ExecStart, else /etc/redis/redis.conf.",
    )
    port: int = Field(
        default=6379,
        ge=1,
        le=65535,
        description="The port clients expect Redis on; used to find the server when no unit "
        "names its PID, and to reach it when it listens nowhere else.",
    )
    password: str | None = Field(
        default=None,
        description="Redis password for INFO (sent on stdin, never in argv); default: the "
        "config file's requirepass.",
    )
    log_lines: int = Field(
        default=200, ge=1, le=10000, description="How many lines of each log to read."
    )


@dataclass(frozen=True)
class Gathered:
    """The host's Redis facts (secrets masked) as `register:` shows them, and the script's
    stderr (masked). The mapping is the value here: `redis_triage` and the diagnosis rules
    read it as registered, so the same shape must come from a playbook variable."""

    facts: Mapping[str, Any]
    stderr: str = ""


class RedisFacts(StepType[RedisFactsArgs, Gathered]):
    """Gather a Redis host's state in one round trip. Registered facts (all masked):

    - `init`: "systemd", "sysv" or "none".
    - `unit`: {name, load_state, active_state, sub_state, unit_file_state, main_pid,
      n_restarts, result, exec_start} or None (no systemd, or no Redis unit).
    - `pid`, `pid_source` ("unit" MainPID, "ss" owner of the expected port, "pgrep"), `cmdline`;
      only the unit's own process (its cgroup), root's or the redis user's is trusted.
    - `untrusted`: [{pid, user}] of redis-server processes ignored (each also a finding).
    - `listening`: every TCP listener [{address, port, process, pid}]; `redis_listening`: the
      redis-server ones.
    - `max_open_files`: {soft, hard} of the process (None = unlimited) or None.
    - `config`: {path, source (arg/info/cmdline/unit/default/none), status
      (read/unreadable/absent/none), directives (effective values as `redis_config` shows
      them, secrets masked), includes (files it includes, not read), errors (bad lines)}.
    - `cli_target`: the address redis-cli used; `info`: {answered, error, server, clients,
      memory, persistence, stats, replication, keyspace}; `binary_version`: the installed
      redis-server's; `any_address_bind`: `bind` for every address in the syntax of the
      running (else installed) version — 7.0's `-::*` stops a 6.x server; `live_config`:
      CONFIG GET values (bind, port, protected-mode, maxclients, maxmemory,
      maxmemory-policy, tcp-backlog, logfile, unixsocket).
    - `check_system`: {checks: {overcommit: OK/WARNING, THP: ...}, details} or None (< 7.0.1).
    - `firewall`: {ufw: {status (active/inactive/absent/error), default_incoming, rules,
      port_open, deciding}, firewalld: {state, zone, target, ports, services, port_open,
      deciding}}: `port_open` is the firewall step's verdict for clients from anywhere on
      `port`, `deciding` the rule (or policy, or zone listing) behind it.
    - `memory`: bytes from `free -b`; `kernel`: {overcommit_memory, somaxconn, thp,
      overcommit_settable (False: /proc/sys is read-only here, a container)}.
    - `log`: {path, lines}; `journal`: lines of the unit's journal; `kernel_oom`: kernel
      lines naming redis-server.

    `rc` is 0 once the facts are gathered: a stopped Redis is a fact, not a failure.
    """

    name = "redis_facts"
    may_start_early = True
    Args = RedisFactsArgs
    summary = "Gather a Redis host's state (unit, process, config, sockets, limits, logs) at once."
    read_only = True

    def diagnose(self, args: RedisFactsArgs, ctx: StepContext) -> Gathered:
        if args.password:
            ctx.masker.add(args.password)
        marker = new_marker()
        script = facts_script(
            marker,
            unit=args.unit,
            config=args.config,
            port=args.port,
            lines=args.log_lines,
            has_password=bool(args.password),
        )
        stdin = (args.password + "\n").encode() if args.password else b""
        result = ctx.conn.run(script, become=ctx.become, stdin=stdin)
        sections = split_sections(result.stdout, marker)
        if "init" not in sections:
            raise StepError(
                ctx.host.name,
                f"the facts script did not run (exit {result.rc}): {result.tail()} — "
                "check that /bin/sh works for the login user",
                step=ctx.step_name,
            )
        facts, found = parse_facts(sections, args.port)
        for secret in found:
            ctx.masker.add(secret)
        facts = mask_values(facts, ctx.masker.mask)
        return Gathered(facts, ctx.masker.mask(result.stderr))

    def registered(self, found: Gathered) -> StepResult:
        return StepResult(
            rc=0,
            stderr=found.stderr,
            msg=summarize(found.facts),
            facts=found.facts,
            findings=tuple(untrusted_findings(found.facts.get("untrusted", []))),
        )
