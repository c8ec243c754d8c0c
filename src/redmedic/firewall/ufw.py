"""ufw: read `ufw status verbose`, judge it, and the `ufw` commands that open the port.

Measured on real Debian 12 hosts (tests/e2e): `ufw allow ... to any port P proto tcp`
*updates* a deny/reject rule with the same match in place ("Rule updated"), so its undo is
the original action, not a delete. An allow whose match differs from the blocking rule
would land after it and change nothing, so it is inserted (`ufw insert N`) in front of that
rule instead. Rule numbers are the order of the listed rules, as `ufw insert` counts them.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from redmedic.firewall.assessment import Assessment, Command, Request
from redmedic.firewall.rules import (
    ANY_V4,
    ANY_V6,
    Network,
    Ports,
    Rule,
    first_match,
    parse_ports,
    partial_blocks,
    show_network,
    unique,
    who,
)
from redmedic.model.plan import Finding


@dataclass(frozen=True)
class UfwStatus:
    active: bool
    default_incoming: str  # allow, deny, reject ("" when unknown)
    default_line: str
    rules: tuple[Rule, ...] = ()


_RULE = re.compile(
    r"^(?P<to>\S.*?)\s+(?P<action>ALLOW|DENY|REJECT|LIMIT)(?: (?P<dir>IN|OUT|FWD))?"
    r"\s+(?P<src>\S.*?)\s*$"
)
_VERDICT = {"ALLOW": "allow", "LIMIT": "allow", "DENY": "block", "REJECT": "block"}


def parse_ufw_status(text: str) -> UfwStatus:
    """Parse `ufw status verbose` (numbering = order of the listed rules, as `ufw insert`)."""
    lines = text.splitlines()
    active = any(line.strip() == "Status: active" for line in lines)
    default_line = next((ln.strip() for ln in lines if ln.startswith("Default:")), "")
    match = re.search(r"(\w+) \(incoming\)", default_line)
    default_incoming = match.group(1) if match else ""
    rules: list[Rule] = []
    in_table = False
    for line in lines:
        if line.startswith("--"):
            in_table = True
            continue
        if not in_table or not line.strip():
            continue
        parsed = _parse_rule(line, position=len(rules) + 1)
        if parsed is not None:
            rules.append(parsed)
    return UfwStatus(active, default_incoming, default_line, tuple(rules))


def _parse_rule(line: str, position: int) -> Rule | None:
    body = re.sub(r"\s+#.*$", "", line.rstrip())  # rule comment
    body = re.sub(r"\s+\(log(?:-all)?\)$", "", body)
    match = _RULE.match(body)
    if match is None:
        return None
    text = re.sub(r"\s{2,}", "  ", line.strip())
    direction = match.group("dir") or "IN"
    verdict = _VERDICT[match.group("action")]
    if direction != "IN":
        return Rule(text, "other", position=position, understood=False)
    to, src = match.group("to"), match.group("src")
    v6 = src.endswith("(v6)")  # the To column varies: "22/tcp (OpenSSH (v6))"
    # Drop "(v6)" and application names ("22/tcp (OpenSSH)": the ports are listed first).
    app = re.search(r"\((?!v6\))", to) is not None
    to = re.sub(r"\s*\((?:[^()]|\([^()]*\))*\)", "", to).strip()
    src = src.removesuffix("(v6)").strip()
    to, on, _iface = to.partition(" on ")
    understood, plain = True, not (app or on)
    tokens = to.split()
    ports: Ports | None = None
    proto: str | None = None
    if tokens and tokens[-1] != "Anywhere":
        spec, _, proto_text = tokens[-1].partition("/")
        ports = parse_ports(spec)
        proto = proto_text or None
        if ports is None:  # an application profile: its ports are not in this listing
            understood = False
        if len(tokens) > 1:
            plain = False  # to a specific address
    else:
        plain = False
    source: Network | None
    if src.split()[0] == "Anywhere":
        source = ANY_V6 if v6 else ANY_V4
    else:
        try:
            source = ipaddress.ip_network(src.split()[0], strict=False)
        except ValueError:
            source, understood = None, False
    if len(src.split()) > 1:  # a source port restriction
        understood = False
    return Rule(
        text,
        verdict,
        source,
        ports,
        proto,
        position,
        understood=understood,
        plain=plain,
        action=match.group("action").lower(),
    )


@dataclass(frozen=True)
class UfwOpening:
    """Let `source` in: by updating the same-match rule whose action is `replaces` (deny,
    reject) in place, else by inserting in front of the blocking rule at `before`, else
    (only the default policy blocks) by appending an allow."""

    source: Network
    replaces: str = ""
    before: int = 0

    def commands(self, port: int, proto: str) -> tuple[Command, ...]:
        source = "" if self.source == ANY_V4 else f"from {show_network(self.source)} "
        spec = f"{source}to any port {port} proto {proto}"
        if self.replaces:  # ufw updates that rule in place; undo puts its action back
            return (Command(f"ufw allow {spec}", f"ufw {self.replaces} {spec}"),)
        if self.before:
            return (Command(f"ufw insert {self.before} allow {spec}", f"ufw delete allow {spec}"),)
        return (Command(f"ufw allow {spec}", f"ufw delete allow {spec}"),)


def assess(request: Request, status: UfwStatus) -> Assessment:
    """The first matching rule decides per wanted network, else the default policy."""
    if not status.active:
        return Assessment("ufw", False, True, details={"default_incoming": status.default_incoming})
    port, proto = request.port, request.proto
    closed: list[Network] = []
    blocking: list[str] = []
    evidence: list[str] = []
    partial: list[str] = []
    openings: list[UfwOpening] = []
    for want in request.wanted:
        partial.extend(r.text for r in partial_blocks(status.rules, want, port, proto))
        rule = first_match(status.rules, want, port, proto)
        if rule is not None and rule.verdict == "allow":
            continue
        if rule is None and status.default_incoming == "allow":
            continue
        closed.append(want)
        if rule is None:
            evidence.append(status.default_line)
            openings.append(UfwOpening(want))
            continue
        evidence.append(rule.text)
        blocking.append(rule.text)
        same_match = (
            rule.plain
            and rule.source == want
            and rule.ports == ((port, port),)
            and rule.proto == proto
        )
        if same_match:
            openings.append(UfwOpening(want, replaces=rule.action))
        else:
            openings.append(UfwOpening(want, before=rule.position))
    findings: tuple[Finding, ...] = ()
    if closed:
        summary = f"ufw blocks {port}/{proto} from {who(closed)}"
        findings = (Finding("firewall-ufw", summary, tuple(unique(evidence))),)
    return Assessment(
        "ufw",
        True,
        not closed,
        tuple(unique(blocking or evidence)),
        tuple(closed),
        findings,
        tuple(openings),
        {"default_incoming": status.default_incoming, "partly_blocked": unique(partial)},
    )
