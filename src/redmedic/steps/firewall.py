"""`firewall`: is the Redis port open in the host's own firewall, and open it if not.

A thin step type over the firewall room (redmedic.firewall): `diagnose` runs its gather
script (one round trip, read-only, also under --check) and keeps the `Assessment`; `plan`
turns the assessment's openings into commands, through the backend that is active only:
ufw (an allow, in place of or in front of the blocking rule), firewalld (runtime and
permanent), plain iptables (runtime only, with a finding about persistence). nftables
blocks are reported with advice, never rewritten.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from redmedic.connection.scripts import new_marker
from redmedic.errors import StepError
from redmedic.firewall.assessment import Assessment, Request, ToolError
from redmedic.firewall.gather import assess, gather_script, read_gathered
from redmedic.firewall.rules import wanted_networks, who
from redmedic.model.plan import Change, CommandChange, StepResult
from redmedic.steps.base import StepArgs, StepContext, StepType

Backend = Literal["auto", "ufw", "firewalld", "iptables"]
Proto = Literal["tcp", "udp"]


class FirewallArgs(StepArgs):
    port: int = Field(default=6379, ge=1, le=65535, description="Port that must be reachable.")
    proto: Proto = Field(default="tcp", description="Protocol: tcp or udp.")
    sources: list[str] = Field(
        default_factory=list,
        description="Client networks (CIDR or address) to allow; empty means from anywhere.",
    )
    backend: Backend = Field(
        default="auto",
        description="auto (detect: ufw, firewalld, iptables, nftables), ufw, firewalld or "
        "iptables.",
    )
    zone: str | None = Field(
        default=None, description="firewalld zone to open the port in (default: its default zone)."
    )

    @field_validator("sources")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(f"{text!r} is not an IP address or CIDR network") from None
        return value

    @field_validator("zone")
    @classmethod
    def _zone_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
            raise ValueError(f"{value!r} is not a firewalld zone name")
        return value

    def request(self) -> Request:
        """The question for the firewall room; no sources means anywhere (IPv4)."""
        return Request(
            self.port, self.proto, wanted_networks(self.sources), self.backend, self.zone
        )


@dataclass(frozen=True)
class FirewallFound:
    """What diagnose saw: the assessment, the gathered text (registered as `stdout`), and
    whether it read as root (the changes run the same way)."""

    assessment: Assessment
    port: str  # e.g. 6379/tcp, for the message
    become: bool = False
    stdout: str = ""


class Firewall(StepType[FirewallArgs, FirewallFound]):
    """Diagnose reads the firewall in one round trip (read-only, also under --check);
    plan opens the port only where it is closed and only through the active backend.

    Facts: `backend` (ufw, firewalld, iptables, nftables, none), `active`, `open`,
    `blocking` (the rules or policy that block), `closed_sources`, `partly_blocked`
    (narrower deny rules left in place); firewalld adds `zone`, `ports`,
    `permanent_ports`, `permanent_open`. Findings: `firewall-ufw`, `firewall-firewalld`;
    `network` (not fixable) for iptables (opened at runtime only) and nftables (advice)."""

    name = "firewall"
    Args = FirewallArgs
    summary = "Open a port (6379/tcp) in ufw, firewalld (runtime + permanent) or iptables."
    read_only = False

    def diagnose(self, args: FirewallArgs, ctx: StepContext) -> FirewallFound:
        marker = new_marker()
        request = args.request()
        result = ctx.conn.run(gather_script(request, marker), become=ctx.become)
        try:
            assessment = assess(request, read_gathered(result.stdout, marker))
        except ToolError as exc:
            hint = (
                ""
                if ctx.become or "installed" in str(exc)
                else " (firewalls need root: set `become: true`)"
            )
            raise StepError(ctx.host.name, f"{exc}{hint}", step=ctx.step_name) from None
        return FirewallFound(assessment, f"{args.port}/{args.proto}", ctx.become, result.stdout)

    def plan(self, args: FirewallArgs, found: FirewallFound) -> list[Change]:
        return [
            CommandChange(command.run, become=found.become, undo_command=command.undo)
            for opening in found.assessment.openings
            for command in opening.commands(args.port, args.proto)
        ]

    def registered(self, found: FirewallFound) -> StepResult:
        assessment = found.assessment
        state = "active" if assessment.active else "inactive"
        verdict = "open" if assessment.open else "closed"
        return StepResult(
            rc=0,
            stdout=found.stdout,
            msg=f"{assessment.backend} ({state}): {found.port} {verdict}",
            facts={
                "backend": assessment.backend,
                "active": assessment.active,
                "open": assessment.open,
                "blocking": list(assessment.blocking),
                "closed_sources": [who([n]) for n in assessment.closed],
                **assessment.details,
            },
            findings=assessment.findings,
        )
