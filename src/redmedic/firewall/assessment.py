"""What a firewall backend concludes about one port: the `Assessment`, and the `Opening`s
that would let the closed clients in.

Why openings rather than ready-made changes: the backend that judged the rules knows *how*
to open the port (ufw updates a same-match rule in place but must insert in front of a
broader one; firewalld needs each layer that is closed), and the step's `plan` only turns
them into commands. So a test can hand `plan` an assessment as data and read the commands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from redmedic.firewall.rules import ANY_V4, Network
from redmedic.model.plan import Finding


@dataclass(frozen=True)
class Request:
    """What is asked: can clients in `wanted` reach `port`/`proto`, judged by `backend`
    (auto: the first active of ufw, firewalld, iptables, nftables) and firewalld's `zone`
    (None: its default zone)."""

    port: int = 6379
    proto: str = "tcp"
    wanted: tuple[Network, ...] = (ANY_V4,)
    backend: str = "auto"
    zone: str | None = None


class Command(NamedTuple):
    """One command that opens the port, and the one that puts the firewall back."""

    run: str
    undo: str


class Opening(Protocol):
    """How one backend lets one network of clients in (ufw, firewalld, iptables)."""

    def commands(self, port: int, proto: str) -> tuple[Command, ...]: ...


@dataclass(frozen=True)
class Assessment:
    """Everything concluded from the gathered text: the verdict, the findings, the openings.

    `backend` is ufw, firewalld, iptables, nftables or none (an installed but inactive
    firewall is named, never blocking); `blocking` the rules or policy that block;
    `closed` the wanted networks that cannot connect; `details` the backend's own facts
    (e.g. firewalld's zone) as `register:` exposes them.
    """

    backend: str
    active: bool
    open: bool
    blocking: tuple[str, ...] = ()
    closed: tuple[Network, ...] = ()
    findings: tuple[Finding, ...] = ()
    openings: tuple[Opening, ...] = ()
    details: Mapping[str, object] = field(default_factory=dict)


class ToolError(Exception):
    """A firewall tool answered with an error (e.g. not root), or a forced backend is not
    installed: the step reports it as its StepError."""
