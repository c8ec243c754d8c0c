"""firewalld: read a zone (`firewall-cmd --list-all`, runtime and permanent) and the
service definitions, judge them, and the `firewall-cmd` commands that open the port.

Why both layers: firewalld has a runtime and a permanent configuration, and changing only
one is the classic trap (open now, closed after the next reload — or the reverse). So each
layer is judged on its own and opened on its own: `--add-port` for clients from anywhere,
an accept rich rule per source otherwise. A reject/drop rich rule for the clients is
reported, not fought: firewalld applies deny rules before allows, so no added port helps.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from redmedic.firewall.assessment import Assessment, Command, Request
from redmedic.firewall.rules import (
    ANY_V4,
    Network,
    Ports,
    covers,
    in_ranges,
    overlaps,
    parse_ports,
    show_network,
    source_of,
    unique,
    who,
)
from redmedic.model.plan import Finding

ServicePorts = Mapping[str, list[tuple[tuple[int, int], str]]]


@dataclass(frozen=True)
class RichRule:
    text: str
    family: str | None
    source: Network | None
    source_inverted: bool
    port: Ports | None
    proto: str | None
    service: str | None
    action: str  # accept, reject, drop, mark, "" (log/audit only)


@dataclass(frozen=True)
class Zone:
    """One `firewall-cmd --list-all` listing (runtime or permanent)."""

    name: str
    target: str
    services: tuple[str, ...]
    ports: tuple[str, ...]
    rich_rules: tuple[RichRule, ...]

    def port_line(self) -> str:
        return f"zone {self.name}: ports: {' '.join(self.ports) or '(none)'}; " + (
            f"services: {' '.join(self.services) or '(none)'}"
        )


def parse_zone(text: str) -> Zone:
    """Parse `firewall-cmd [--permanent] [--zone=Z] --list-all`."""
    lines = text.splitlines()
    name = lines[0].split()[0] if lines and lines[0].strip() else ""
    fields: dict[str, str] = {}
    rich: list[RichRule] = []
    in_rich = False
    for line in lines[1:]:
        stripped = line.strip()
        if in_rich and stripped.startswith("rule"):
            rich.append(parse_rich_rule(stripped))
            continue
        key, sep, value = stripped.partition(":")
        if sep:
            fields[key] = value.strip()
            in_rich = key == "rich rules"
    return Zone(
        name=name,
        target=fields.get("target", "default"),
        services=tuple(fields.get("services", "").split()),
        ports=tuple(fields.get("ports", "").split()),
        rich_rules=tuple(rich),
    )


def _rich_attr(text: str, element: str, attr: str) -> str | None:
    """`element attr="value"` (quotes optional, as firewall-cmd accepts both)."""
    match = re.search(rf'\b{element}\b[^=]*?\b{attr}="?([^"\s]+)"?', text)
    return match.group(1) if match else None


def parse_rich_rule(text: str) -> RichRule:
    """The parts of a firewalld rich rule that decide whether our port is reachable."""
    family = _rich_attr(text, "rule", "family")
    address = _rich_attr(text, "source", "address")
    source = None
    if address is not None:
        try:
            source = ipaddress.ip_network(address, strict=False)
        except ValueError:
            source = None
    inverted = bool(re.search(r"\bsource\b[^=]*\bNOT\b|\bsource not\b", text, re.IGNORECASE))
    port_text = _rich_attr(text, "port", "port")
    action = next(
        (a for a in ("accept", "reject", "drop", "mark") if re.search(rf"\b{a}\b", text)), ""
    )
    return RichRule(
        text=text,
        family=family,
        source=source,
        source_inverted=inverted,
        port=parse_ports(port_text) if port_text else None,
        proto=_rich_attr(text, "port", "protocol"),
        service=_rich_attr(text, "service", "name"),
        action=action,
    )


def parse_service_ports(text: str) -> dict[str, list[tuple[tuple[int, int], str]]]:
    """`grep -H '<port ' services/*.xml` → service name → [(range, proto)].

    /etc/firewalld/services overrides /usr/lib/firewalld/services, so the first directory
    listed wins (the gathering script lists /etc first).
    """
    found: dict[str, list[tuple[tuple[int, int], str]]] = {}
    seen_in: dict[str, str] = {}
    for line in text.splitlines():
        path, _, rest = line.partition(":")
        proto = re.search(r'protocol="(\w+)"', rest)
        spec = re.search(r'\bport="([\d:-]+)"', rest)
        if not path.endswith(".xml") or proto is None or spec is None:
            continue
        directory, _, filename = path.rpartition("/")
        service = filename.removesuffix(".xml")
        if seen_in.setdefault(service, directory) != directory:
            continue
        ranges = parse_ports(spec.group(1)) or ()
        found.setdefault(service, []).extend((r, proto.group(1)) for r in ranges)
    return found


@dataclass(frozen=True)
class ZoneVerdict:
    open: bool
    denied_by: RichRule | None = None  # a reject/drop rich rule: adding a port will not help
    partial: tuple[RichRule, ...] = ()  # deny rules for part of the sources (left alone)


def zone_verdict(
    zone: Zone, want: Network, port: int, proto: str, services: ServicePorts
) -> ZoneVerdict:
    """Is `port`/`proto` open to clients in `want` in this zone?

    firewalld evaluates a zone's deny rich rules before its allow rules, ports and
    services, so a matching reject/drop rich rule wins; otherwise a listed port, a service
    that carries the port, an accept rich rule covering all of `want`, or target ACCEPT.
    """

    def serves(rule_ports: Ports | None, rule_proto: str | None, service: str | None) -> bool:
        if service is not None:
            return any(p == proto and in_ranges(port, [r]) for r, p in services.get(service, []))
        if rule_ports is None:
            return True
        return in_ranges(port, rule_ports) and rule_proto in (None, proto)

    family = "ipv4" if want.version == 4 else "ipv6"
    relevant = [
        r
        for r in zone.rich_rules
        if r.family in (None, family)
        and not r.source_inverted
        and serves(r.port, r.proto, r.service)
    ]
    partial = []
    for rule in relevant:
        if rule.action in ("reject", "drop"):
            source = source_of(rule.source, want)
            if covers(source, want):
                return ZoneVerdict(False, rule)
            if overlaps(source, want):
                partial.append(rule)
    done = ZoneVerdict(True, partial=tuple(partial))
    if zone.target.upper() == "ACCEPT":
        return done
    for spec in zone.ports:
        ports_text, _, port_proto = spec.partition("/")
        ranges = parse_ports(ports_text)
        if ranges and port_proto == proto and in_ranges(port, ranges):
            return done
    if any(serves(None, None, s) for s in zone.services):
        return done
    for rule in relevant:
        if rule.action == "accept" and covers(source_of(rule.source, want), want):
            return done
    return ZoneVerdict(False, partial=tuple(partial))


def rich_rule_for(want: Network, port: int, proto: str) -> str:
    """The rich rule that lets `want` reach `port`, in firewalld's own normal form."""
    family = "ipv4" if want.version == 4 else "ipv6"
    return (
        f'rule family="{family}" source address="{show_network(want)}" '
        f'port port="{port}" protocol="{proto}" accept'
    )


@dataclass(frozen=True)
class FirewalldOpening:
    """Let `source` in through `zone`, in each layer that does not yet: the runtime one
    (effective now) and the permanent one (what the next reload or reboot loads)."""

    zone: str
    source: Network
    runtime: bool
    permanent: bool

    def commands(self, port: int, proto: str) -> tuple[Command, ...]:
        if self.source == ANY_V4:
            add, remove = f"--add-port={port}/{proto}", f"--remove-port={port}/{proto}"
        else:
            rich = shlex.quote(rich_rule_for(self.source, port, proto))
            add, remove = f"--add-rich-rule={rich}", f"--remove-rich-rule={rich}"
        layers = [("firewall-cmd", self.runtime), ("firewall-cmd --permanent", self.permanent)]
        z = shlex.quote(self.zone)
        return tuple(
            Command(f"{tool} --zone={z} {add}", f"{tool} --zone={z} {remove}")
            for tool, closed in layers
            if closed
        )


def assess(
    request: Request, runtime_text: str, permanent_text: str, services_text: str
) -> Assessment:
    """Judge a running firewalld from its zone listings (both layers) and service files."""
    runtime = parse_zone(runtime_text)
    permanent = parse_zone(permanent_text)
    services = parse_service_ports(services_text)
    port, proto = request.port, request.proto
    zone = runtime.name or request.zone or ""
    findings: list[Finding] = []
    openings: list[FirewalldOpening] = []
    closed: list[Network] = []
    perm_closed: list[Network] = []
    denied_sources: list[Network] = []
    blocking: list[str] = []
    partial: list[str] = []
    for want in request.wanted:
        now = zone_verdict(runtime, want, port, proto, services)
        saved = zone_verdict(permanent, want, port, proto, services)
        partial.extend(r.text for r in now.partial)
        denied = now.denied_by or saved.denied_by
        if not now.open:
            closed.append(want)
        if not saved.open:
            perm_closed.append(want)
        if denied is not None:
            denied_sources.append(want)
            blocking.append(denied.text)
            findings.append(
                Finding(
                    "firewall-firewalld",
                    f"a firewalld rich rule in zone {zone} {denied.action}s "
                    f"{port}/{proto} from {who([want])}: opening the port would "
                    "not help — remove the rule (firewall-cmd [--permanent] "
                    "--remove-rich-rule=...) if these clients should connect",
                    (denied.text,),
                    fixable=False,
                )
            )
        elif not (now.open and saved.open):
            openings.append(FirewalldOpening(zone, want, not now.open, not saved.open))
    fixable_closed = [w for w in closed if w not in denied_sources]
    if fixable_closed:
        findings.insert(
            0,
            Finding(
                "firewall-firewalld",
                f"firewalld zone {zone} does not open {port}/{proto} to "
                f"{who(fixable_closed)} (clients see 'No route to host')",
                (runtime.port_line(), *(r.text for r in runtime.rich_rules)),
            ),
        )
    only_runtime = [w for w in perm_closed if w not in closed and w not in denied_sources]
    if only_runtime:
        findings.append(
            Finding(
                "firewall-firewalld",
                f"{port}/{proto} is open in zone {zone} at runtime only: the next "
                "`firewall-cmd --reload` or reboot closes it again",
                (f"permanent {permanent.port_line()}",),
            )
        )
    return Assessment(
        "firewalld",
        True,
        not closed,
        tuple(unique(blocking or ([runtime.port_line()] if closed else []))),
        tuple(closed),
        tuple(findings),
        tuple(openings),
        {
            "zone": zone,
            "target": runtime.target,
            "ports": list(runtime.ports),
            "permanent_ports": list(permanent.ports),
            "permanent_open": not perm_closed,
            "partly_blocked": unique(partial),
        },
    )
