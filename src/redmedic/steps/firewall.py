"""`firewall`: is the Redis port open in the host's own firewall, and open it if not.

One round trip reads whichever backend is active — ufw, firewalld, plain iptables or
nftables — and pure functions below turn that text into a verdict per client source:
firewalls decide by the *first* matching rule (ufw, iptables, nftables) or by zone
contents (firewalld), so "a rule for 6379 exists" is not the same as "6379 is open".

What is fixed, and how (each measured on real Debian 12 hosts, see tests/e2e):
- ufw: `ufw allow ... to any port P proto tcp` *updates* a deny/reject rule with the same
  match in place ("Rule updated"), so its undo is the original action, not a delete. An
  allow whose match differs from the blocking rule would land after it and change nothing,
  so it is inserted (`ufw insert N`) in front of that rule instead.
- firewalld: runtime AND permanent configuration (`--add-port` and `--permanent
  --add-port`, or rich rules per source); changing only one layer is the classic trap
  (open now, closed after the next reload — or the reverse).
- plain iptables: `iptables -I INPUT ... -j ACCEPT` in front of the blocking rule. How rules
  survive a reboot depends on the distro, so that is reported as a finding, not guessed.
- nftables: reported with evidence and advice; its rule sets are hand-written files that
  redmedic does not rewrite.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field, field_validator

from redmedic.errors import StepError
from redmedic.model.plan import Change, CommandChange, Finding, StepResult
from redmedic.steps.base import StepArgs, StepContext, StepType

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ANY_V4: Network = ipaddress.ip_network("0.0.0.0/0")
ANY_V6: Network = ipaddress.ip_network("::/0")

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

    def networks(self) -> list[Network]:
        """The wanted client networks; anywhere is IPv4 0.0.0.0/0 (see `wanted_networks`)."""
        return wanted_networks(self.sources)


def wanted_networks(sources: Sequence[str]) -> list[Network]:
    """Parse `sources`; empty means anywhere, judged on IPv4 only.

    Why IPv4 only: many hosts run ufw with IPv6 rules while clients come over IPv4; judging
    ::/0 as well would plan an allow on every run for hosts that never speak IPv6.
    """
    if not sources:
        return [ANY_V4]
    return [ipaddress.ip_network(s, strict=False) for s in sources]


def show_network(net: Network) -> str:
    """Networks as the firewall tools print them: a single host without `/32`."""
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return str(net)


# ------------------------------------------------------------------------- the rule model


@dataclass(frozen=True)
class Rule:
    """One filtering rule, reduced to what decides a new connection to our port.

    `source`/`ports`/`proto` None mean "any". `understood` is False for rules with
    conditions we cannot judge (interface, connection state, negations, app profiles):
    they are skipped, which is right for the usual `-i lo` / `ct state established` rules.
    `verdict` is allow, block, jump (to `target`), return or other (log, counters...).
    """

    text: str
    verdict: str
    source: Network | None = None
    ports: tuple[tuple[int, int], ...] | None = None
    proto: str | None = None
    position: int = 0
    target: str = ""
    understood: bool = True
    plain: bool = False  # ufw: matches exactly "to any port P proto X" (no address/iface)
    action: str = ""  # the tool's own word (ufw: allow, deny, reject, limit)

    def applies_to(self, port: int, proto: str) -> bool:
        if not self.understood:
            return False
        if self.proto is not None and self.proto != proto:
            return False
        return self.ports is None or any(lo <= port <= hi for lo, hi in self.ports)


def _overlaps(a: Network, b: Network) -> bool:
    return a.version == b.version and a.overlaps(b)


def _covers(outer: Network, inner: Network) -> bool:
    return outer.version == inner.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def first_match(rules: Iterable[Rule], want: Network, port: int, proto: str) -> Rule | None:
    """The rule that decides a new connection from `want` to `port`/`proto`, if any.

    Rules are tried in order; the first whose source covers all of `want` decides. A rule
    for only part of `want` does not: an allow leaves the rest undecided, and a block of a
    narrower network is an administrator's deliberate exception that opening the port for
    `want` must not override (see `partial_blocks`). Jumps and returns are left to the
    caller (see `iptables_verdict`).
    """
    for rule in rules:
        decisive = rule.verdict in ("allow", "block") and rule.applies_to(port, proto)
        if decisive and _covers(_source(rule.source, want), want):
            return rule
    return None


def partial_blocks(rules: Iterable[Rule], want: Network, port: int, proto: str) -> list[Rule]:
    """Blocking rules for part of `want` that come before the deciding rule: reported as
    facts, left in place."""
    found = []
    for rule in rules:
        if rule.verdict not in ("allow", "block") or not rule.applies_to(port, proto):
            continue
        source = _source(rule.source, want)
        if _covers(source, want):
            break
        if rule.verdict == "block" and _overlaps(source, want):
            found.append(rule)
    return found


def _source(source: Network | None, want: Network) -> Network:
    """A rule without a source matches every address of `want`'s family."""
    if source is not None:
        return source
    return ANY_V4 if want.version == 4 else ANY_V6


def parse_ports(text: str) -> tuple[tuple[int, int], ...] | None:
    """`6379`, `6379:6390`, `6379-6390`, `22,80,6379:6390` → ranges; None if not ports."""
    ranges = []
    for part in text.split(","):
        match = re.fullmatch(r"(\d+)(?:[:-](\d+))?", part.strip())
        if match is None:
            return None
        lo = int(match.group(1))
        ranges.append((lo, int(match.group(2) or lo)))
    return tuple(ranges)


# ------------------------------------------------------------------------------------ ufw


@dataclass(frozen=True)
class UfwStatus:
    active: bool
    default_incoming: str  # allow, deny, reject ("" when unknown)
    default_line: str
    rules: tuple[Rule, ...] = ()


_UFW_RULE = re.compile(
    r"^(?P<to>\S.*?)\s+(?P<action>ALLOW|DENY|REJECT|LIMIT)(?: (?P<dir>IN|OUT|FWD))?"
    r"\s+(?P<src>\S.*?)\s*$"
)
_UFW_VERDICT = {"ALLOW": "allow", "LIMIT": "allow", "DENY": "block", "REJECT": "block"}


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
        parsed = _parse_ufw_rule(line, position=len(rules) + 1)
        if parsed is not None:
            rules.append(parsed)
    return UfwStatus(active, default_incoming, default_line, tuple(rules))


def _parse_ufw_rule(line: str, position: int) -> Rule | None:
    body = re.sub(r"\s+#.*$", "", line.rstrip())  # rule comment
    body = re.sub(r"\s+\(log(?:-all)?\)$", "", body)
    match = _UFW_RULE.match(body)
    if match is None:
        return None
    text = re.sub(r"\s{2,}", "  ", line.strip())
    direction = match.group("dir") or "IN"
    verdict = _UFW_VERDICT[match.group("action")]
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
    ports: tuple[tuple[int, int], ...] | None = None
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


# ------------------------------------------------------------------------------ firewalld


@dataclass(frozen=True)
class RichRule:
    text: str
    family: str | None
    source: Network | None
    source_inverted: bool
    port: tuple[tuple[int, int], ...] | None
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


def _in_ranges(port: int, ranges: Iterable[tuple[int, int]]) -> bool:
    return any(lo <= port <= hi for lo, hi in ranges)


@dataclass(frozen=True)
class ZoneVerdict:
    open: bool
    denied_by: RichRule | None = None  # a reject/drop rich rule: adding a port will not help
    partial: tuple[RichRule, ...] = ()  # deny rules for part of the sources (left alone)


def zone_verdict(
    zone: Zone,
    want: Network,
    port: int,
    proto: str,
    services: Mapping[str, list[tuple[tuple[int, int], str]]],
) -> ZoneVerdict:
    """Is `port`/`proto` open to clients in `want` in this zone?

    firewalld evaluates a zone's deny rich rules before its allow rules, ports and
    services, so a matching reject/drop rich rule wins; otherwise a listed port, a service
    that carries the port, an accept rich rule covering all of `want`, or target ACCEPT.
    """

    def serves(
        rule_ports: tuple[tuple[int, int], ...] | None, rule_proto: str | None, service: str | None
    ) -> bool:
        if service is not None:
            return any(p == proto and _in_ranges(port, [r]) for r, p in services.get(service, []))
        if rule_ports is None:
            return True
        return _in_ranges(port, rule_ports) and rule_proto in (None, proto)

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
            source = _source(rule.source, want)
            if _covers(source, want):
                return ZoneVerdict(False, rule)
            if _overlaps(source, want):
                partial.append(rule)
    done = ZoneVerdict(True, partial=tuple(partial))
    if zone.target.upper() == "ACCEPT":
        return done
    for spec in zone.ports:
        ports_text, _, port_proto = spec.partition("/")
        ranges = parse_ports(ports_text)
        if ranges and port_proto == proto and _in_ranges(port, ranges):
            return done
    if any(serves(None, None, s) for s in zone.services):
        return done
    for rule in relevant:
        if rule.action == "accept" and _covers(_source(rule.source, want), want):
            return done
    return ZoneVerdict(False, partial=tuple(partial))


def rich_rule_for(want: Network, port: int, proto: str) -> str:
    """The rich rule that lets `want` reach `port`, in firewalld's own normal form."""
    family = "ipv4" if want.version == 4 else "ipv6"
    return (
        f'rule family="{family}" source address="{show_network(want)}" '
        f'port port="{port}" protocol="{proto}" accept'
    )


# ------------------------------------------------------------------------------- iptables


@dataclass(frozen=True)
class IptablesRules:
    policies: Mapping[str, str]
    chains: Mapping[str, tuple[Rule, ...]]

    @property
    def active(self) -> bool:
        """Filtering on INPUT at all: a policy other than ACCEPT, or a rule with a verdict.

        Only jumps into empty chains (what `ufw disable`/`ufw reset` leaves behind) is
        not filtering: that host's firewall is the inactive ufw, not iptables.
        """
        if self.policies.get("INPUT", "ACCEPT") != "ACCEPT":
            return True
        return _reaches_verdict(self.chains, "INPUT")


def _reaches_verdict(chains: Mapping[str, Sequence[Rule]], chain: str, depth: int = 0) -> bool:
    """Does `chain`, or a chain it jumps to, hold a rule that accepts, drops or rejects?"""
    for rule in chains.get(chain, ()):
        if rule.verdict in ("allow", "block"):
            return True
        if (
            rule.verdict == "jump"
            and depth < 16
            and _reaches_verdict(chains, rule.target, depth + 1)
        ):
            return True
    return False


_IPT_MATCH_MODULES = {"tcp", "udp", "multiport", "comment"}
_IPT_TARGETS = {"ACCEPT": "allow", "DROP": "block", "REJECT": "block", "RETURN": "return"}


def parse_iptables(text: str) -> IptablesRules:
    """Parse `iptables -S` (the filter table): policies and rules per chain, in order."""
    policies: dict[str, str] = {}
    chains: dict[str, list[Rule]] = {}
    for line in text.splitlines():
        try:
            tokens = shlex.split(line)
        except ValueError:
            continue
        if len(tokens) >= 3 and tokens[0] == "-P":
            policies[tokens[1]] = tokens[2]
        elif len(tokens) >= 2 and tokens[0] == "-N":
            chains.setdefault(tokens[1], [])
        elif len(tokens) >= 2 and tokens[0] == "-A":
            chain = chains.setdefault(tokens[1], [])
            chain.append(_parse_iptables_rule(line.strip(), tokens[2:], len(chain) + 1))
    return IptablesRules(policies, {k: tuple(v) for k, v in chains.items()})


def _parse_iptables_rule(text: str, tokens: list[str], position: int) -> Rule:
    source: Network | None = None
    ports: tuple[tuple[int, int], ...] | None = None
    proto: str | None = None
    target = ""
    understood = True
    i = 0
    while i < len(tokens):
        opt = tokens[i]
        value = tokens[i + 1] if i + 1 < len(tokens) else ""
        if opt in ("-s", "--source"):
            try:
                source = ipaddress.ip_network(value, strict=False)
            except ValueError:
                understood = False
        elif opt in ("-p", "--protocol"):
            proto = value
        elif opt in ("-m", "--match"):
            understood = understood and value in _IPT_MATCH_MODULES
        elif opt in ("--dport", "--destination-port", "--dports", "--destination-ports"):
            ports = parse_ports(value)
            understood = understood and ports is not None
        elif opt in ("-j", "--jump", "-g", "--goto"):
            target = value
        elif opt in ("-d", "--destination", "--comment", "--reject-with"):
            pass  # a destination address is one of this host's: assume it is the one used
        else:
            understood = False  # -i, -o, connection state, "!" negation, ...
            i += 1
            continue
        i += 2
    verdict = _IPT_TARGETS.get(target, "jump" if target and target.upper() != target else "other")
    return Rule(text, verdict, source, ports, proto, position, target=target, understood=understood)


def iptables_verdict(
    rules: IptablesRules, want: Network, port: int, proto: str, chain: str = "INPUT", depth: int = 0
) -> Rule | None:
    """The rule (or the chain policy, as a pseudo-rule) deciding a new connection.

    Follows jumps into user chains (bounded depth: iptables forbids loops anyway); a
    RETURN or the end of a user chain resumes the calling chain.
    """
    for rule in rules.chains.get(chain, ()):
        if not rule.applies_to(port, proto):
            continue
        source = _source(rule.source, want)
        if rule.verdict == "jump" and depth < 16 and _overlaps(source, want):
            decided = iptables_verdict(rules, want, port, proto, rule.target, depth + 1)
            if decided is not None:
                return decided
            continue
        if rule.verdict == "return" and _covers(source, want):
            return None
        if rule.verdict in ("allow", "block") and first_match([rule], want, port, proto):
            return rule
    if depth == 0:
        policy = rules.policies.get(chain, "ACCEPT")
        return Rule(f"-P {chain} {policy}", "allow" if policy == "ACCEPT" else "block")
    return None


# ------------------------------------------------------------------------------- nftables


@dataclass(frozen=True)
class NftChain:
    table: str
    name: str
    hook: str | None
    policy: str
    rules: tuple[Rule, ...]


_NFT_NOISE = re.compile(
    r'counter packets \d+ bytes \d+|counter|comment "[^"]*"|log( prefix "[^"]*")?'
)


def parse_nft(text: str) -> list[NftChain]:
    """Parse `nft list ruleset` into chains, skipping the tables iptables-nft manages
    (those are judged through `iptables -S`; nft marks them with a warning line)."""
    managed = set(re.findall(r"# Warning: table (\S+ \S+) is managed by iptables-nft", text))
    chains: list[NftChain] = []
    table = ""
    name: str | None = None  # the chain being read
    hook: str | None = None
    policy = "accept"
    rules: list[Rule] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("table "):
            table = line.removeprefix("table ").removesuffix("{").strip()
        elif line.startswith("chain ") and line.endswith("{"):
            name, hook, policy, rules = line.split()[1], None, "accept", []
        elif name is not None and line.startswith("type ") and " hook " in line:
            hook = line.split(" hook ")[1].split()[0]
            found = re.search(r"policy (\w+);", line)
            policy = found.group(1) if found else "accept"
        elif name is not None and line == "}":
            if table not in managed:
                chains.append(NftChain(table, name, hook, policy, tuple(rules)))
            name = None
        elif name is not None and line and not line.startswith("#"):
            rules.append(_parse_nft_rule(line, len(rules) + 1))
    return chains


def _parse_nft_rule(text: str, position: int) -> Rule:
    body = _NFT_NOISE.sub(" ", text)
    verdict, target = "other", ""
    match = re.search(r"\b(accept|drop|reject(?: with .*)?|jump \S+|goto \S+|return)\s*$", body)
    if match:
        word = match.group(1).split()
        verdict = {"accept": "allow", "drop": "block", "reject": "block", "return": "return"}.get(
            word[0], "jump"
        )
        target = word[1] if word[0] in ("jump", "goto") else ""
        body = body[: match.start()]
    ports = None
    proto = None
    dport = re.search(r"\b(tcp|udp|th) dport (\{[^}]*\}|\S+)", body)
    if dport:
        proto = None if dport.group(1) == "th" else dport.group(1)
        ports = parse_ports(dport.group(2).strip("{} ").replace(" ", ""))
        body = body.replace(dport.group(0), " ")
    source: Network | None = None
    saddr = re.search(r"\bip6? saddr (\S+)", body)
    if saddr:
        try:
            source = ipaddress.ip_network(saddr.group(1), strict=False)
        except ValueError:
            source = None
        body = body.replace(saddr.group(0), " ")
    l4 = re.search(r"\bmeta l4proto (tcp|udp)", body)
    if l4:
        proto = proto or l4.group(1)
        body = body.replace(l4.group(0), " ")
    understood = not body.split() and (dport is None or ports is not None)
    return Rule(text, verdict, source, ports, proto, position, target=target, understood=understood)


def nft_active(chains: Sequence[NftChain]) -> bool:
    """Some input hook chain filters: a drop policy or a rule with a verdict (directly
    or in a chain of the same table it jumps to)."""
    for chain in chains:
        if chain.hook != "input":
            continue
        table = {c.name: c.rules for c in chains if c.table == chain.table}
        if chain.policy == "drop" or _reaches_verdict(table, chain.name):
            return True
    return False


def nft_verdict(chains: Sequence[NftChain], want: Network, port: int, proto: str) -> list[Rule]:
    """Blocking rules (or drop policies) in input hook chains; empty when none blocks.

    Every input base chain must accept a packet, so each is judged on its own; jumps
    are followed one level into chains of the same table.
    """
    by_name = {(c.table, c.name): c for c in chains}
    blocking: list[Rule] = []
    for chain in chains:
        if chain.hook != "input":
            continue
        decided: Rule | None = None
        for rule in chain.rules:
            if rule.verdict == "jump" and rule.applies_to(port, proto):
                called = by_name.get((chain.table, rule.target))
                decided = first_match(called.rules, want, port, proto) if called else None
            else:
                decided = first_match([rule], want, port, proto)
            if decided is not None:
                break
        if decided is None and chain.policy == "drop":
            decided = Rule(f"chain {chain.name} in table {chain.table}: policy drop", "block")
        if decided is not None and decided.verdict == "block":
            blocking.append(decided)
    return blocking


# --------------------------------------------------------------------- gathering + verdict


def gather_script(args: FirewallArgs) -> str:
    """One round trip: only the backends `args.backend` needs, first active wins on auto."""
    zone = f" --zone={args.zone}" if args.zone else ""
    port = args.port
    return (
        "LC_ALL=C; export LC_ALL; PATH=$PATH:/usr/sbin:/sbin\n"
        f"backend={args.backend}\n"
        "done=no\n"
        "if [ $backend = auto ] || [ $backend = ufw ]; then\n"
        "  if command -v ufw >/dev/null 2>&1; then\n"
        "    out=$(ufw status verbose 2>&1); rc=$?\n"
        "    printf '@@ufw\\n%s\\n@@rc %s\\n' \"$out\" $rc\n"
        '    case $out in *"Status: active"*) done=yes;; esac\n'
        "  fi\n"
        "fi\n"
        "if [ $done = no ] && { [ $backend = auto ] || [ $backend = firewalld ]; }; then\n"
        "  if command -v firewall-cmd >/dev/null 2>&1; then\n"
        '    state=$(firewall-cmd --state 2>&1); echo @@firewalld-state; echo "$state"\n'
        '    if [ "$state" = running ]; then\n'
        "      done=yes\n"
        f'      echo @@firewalld-runtime; firewall-cmd{zone} --list-all 2>&1; echo "@@rc $?"\n'
        f"      echo @@firewalld-permanent; firewall-cmd --permanent{zone} --list-all 2>&1\n"
        "      echo @@firewalld-services\n"
        # /etc first: a service defined there overrides the packaged one.
        '      grep -H "<port " /etc/firewalld/services/*.xml /usr/lib/firewalld/services/*.xml'
        " 2>/dev/null | grep -E 'port=\"([0-9]+[-:][0-9]+|" + str(port) + ")\"'\n"
        "    fi\n"
        "  fi\n"
        "fi\n"
        "if [ $done = no ] && { [ $backend = auto ] || [ $backend = iptables ]; }; then\n"
        "  if command -v iptables >/dev/null 2>&1; then\n"
        '    echo @@iptables; iptables -S 2>&1; echo "@@rc $?"\n'
        "  fi\n"
        "  if [ $backend = auto ] && command -v nft >/dev/null 2>&1; then\n"
        '    echo @@nft; nft list ruleset 2>&1; echo "@@rc $?"\n'
        "  fi\n"
        "fi\n"
        "exit 0\n"
    )


def split_sections(output: str) -> dict[str, str]:
    """`@@name` lines start sections; `@@rc N` lines end a command (kept as `name.rc`)."""
    sections: dict[str, str] = {}
    name = ""
    for line in output.splitlines():
        if line.startswith("@@rc "):
            sections[f"{name}.rc"] = line[5:].strip()
        elif line.startswith("@@"):
            name = line[2:].strip()
            sections[name] = ""
        elif name:
            sections[name] += line + "\n"
    return sections


@dataclass(frozen=True)
class Assessment:
    """Everything `diagnose` concluded and `plan` needs, derived from the gathered text."""

    backend: str  # ufw, firewalld, iptables, nftables, none
    active: bool
    open: bool
    blocking: tuple[str, ...] = ()
    closed: tuple[Network, ...] = ()
    findings: tuple[Finding, ...] = ()
    changes: tuple[CommandChange, ...] = ()
    facts: Mapping[str, object] = field(default_factory=dict)


class ToolError(Exception):
    """A firewall tool answered with an error (e.g. not root); becomes a StepError."""


def assess(args: FirewallArgs, output: str, *, become: bool = False) -> Assessment:
    """The verdict, findings and planned changes for the gathered `output`: pure."""
    sections = split_sections(output)
    wanted = args.networks()
    needs = {"ufw": "ufw", "firewalld": "firewalld-state", "iptables": "iptables"}
    if args.backend in needs and needs[args.backend] not in sections:
        raise ToolError(f"{args.backend} is not installed on this host — use `backend: auto`")
    inactive = ""  # an installed firewall that is off: named in the facts, never blocking
    if "ufw" in sections:
        if sections.get("ufw.rc", "0") != "0":
            raise ToolError(f"`ufw status verbose` failed: {sections['ufw'].strip()}")
        status = parse_ufw_status(sections["ufw"])
        if status.active or args.backend == "ufw":
            return _assess_ufw(args, status, wanted, become)
        inactive = "ufw"
    if "firewalld-state" in sections:
        if sections["firewalld-state"].strip() == "running":
            if sections.get("firewalld-runtime.rc", "0") != "0":
                raise ToolError(
                    f"`firewall-cmd --list-all` failed: {sections['firewalld-runtime'].strip()}"
                )
            return _assess_firewalld(args, sections, wanted, become)
        inactive = inactive or "firewalld"
    if "iptables" in sections:
        if sections.get("iptables.rc", "0") != "0":
            raise ToolError(f"`iptables -S` failed: {sections['iptables'].strip()}")
        rules = parse_iptables(sections["iptables"])
        if rules.active or args.backend == "iptables":
            return _assess_iptables(args, rules, wanted, become)
    if "nft" in sections and sections.get("nft.rc", "0") == "0":
        # iptables-nft's own tables were judged through `iptables -S` just above.
        skip = {"ip filter", "ip6 filter"} if "iptables" in sections else set()
        chains = [c for c in parse_nft(sections["nft"]) if c.table not in skip]
        if nft_active(chains):
            return _assess_nft(args, chains, wanted)
    return Assessment(inactive or "none", False, True)


def _spec(want: Network, args: FirewallArgs) -> str:
    source = "" if want == ANY_V4 else f"from {show_network(want)} "
    return f"{source}to any port {args.port} proto {args.proto}"


def _assess_ufw(
    args: FirewallArgs, status: UfwStatus, wanted: list[Network], become: bool
) -> Assessment:
    if not status.active:
        return Assessment("ufw", False, True, facts={"default_incoming": status.default_incoming})
    closed, blocking, changes = [], [], []
    evidence: list[str] = []
    partial: list[str] = []
    for want in wanted:
        partial.extend(r.text for r in partial_blocks(status.rules, want, args.port, args.proto))
        rule = first_match(status.rules, want, args.port, args.proto)
        if rule is not None and rule.verdict == "allow":
            continue
        if rule is None and status.default_incoming == "allow":
            continue
        closed.append(want)
        spec = _spec(want, args)
        if rule is None:
            evidence.append(status.default_line)
            changes.append(_cmd(f"ufw allow {spec}", f"ufw delete allow {spec}", become))
            continue
        evidence.append(rule.text)
        blocking.append(rule.text)
        same_match = (
            rule.plain
            and rule.source == want
            and rule.ports == ((args.port, args.port),)
            and rule.proto == args.proto
        )
        if same_match:  # ufw updates that rule in place; undo puts its action back
            changes.append(_cmd(f"ufw allow {spec}", f"ufw {rule.action} {spec}", become))
        else:
            changes.append(
                _cmd(f"ufw insert {rule.position} allow {spec}", f"ufw delete allow {spec}", become)
            )
    findings: tuple[Finding, ...] = ()
    if closed:
        findings = (
            Finding(
                "firewall-ufw",
                f"ufw blocks {args.port}/{args.proto} from {_who(closed)}",
                tuple(_unique(evidence)),
            ),
        )
    return Assessment(
        "ufw",
        True,
        not closed,
        tuple(_unique(blocking or evidence)),
        tuple(closed),
        findings,
        tuple(changes),
        {"default_incoming": status.default_incoming, "partly_blocked": _unique(partial)},
    )


def _assess_firewalld(
    args: FirewallArgs, sections: Mapping[str, str], wanted: list[Network], become: bool
) -> Assessment:
    runtime = parse_zone(sections.get("firewalld-runtime", ""))
    permanent = parse_zone(sections.get("firewalld-permanent", ""))
    services = parse_service_ports(sections.get("firewalld-services", ""))
    zone = runtime.name or args.zone or ""
    findings: list[Finding] = []
    changes: list[CommandChange] = []
    closed, blocking = [], []
    perm_closed, denied_sources = [], []
    partial: list[str] = []
    for want in wanted:
        now = zone_verdict(runtime, want, args.port, args.proto, services)
        saved = zone_verdict(permanent, want, args.port, args.proto, services)
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
                    f"{args.port}/{args.proto} from {_who([want])}: opening the port would "
                    "not help — remove the rule (firewall-cmd [--permanent] "
                    "--remove-rich-rule=...) if these clients should connect",
                    (denied.text,),
                    fixable=False,
                )
            )
            continue
        if want == ANY_V4:
            add, remove = (
                f"--add-port={args.port}/{args.proto}",
                f"--remove-port={args.port}/{args.proto}",
            )
        else:
            rich = shlex.quote(rich_rule_for(want, args.port, args.proto))
            add, remove = f"--add-rich-rule={rich}", f"--remove-rich-rule={rich}"
        z = shlex.quote(zone)
        if not now.open:
            changes.append(
                _cmd(f"firewall-cmd --zone={z} {add}", f"firewall-cmd --zone={z} {remove}", become)
            )
        if not saved.open:
            changes.append(
                _cmd(
                    f"firewall-cmd --permanent --zone={z} {add}",
                    f"firewall-cmd --permanent --zone={z} {remove}",
                    become,
                )
            )
    fixable_closed = [w for w in closed if w not in denied_sources]
    if fixable_closed:
        findings.insert(
            0,
            Finding(
                "firewall-firewalld",
                f"firewalld zone {zone} does not open {args.port}/{args.proto} to "
                f"{_who(fixable_closed)} (clients see 'No route to host')",
                (runtime.port_line(), *(r.text for r in runtime.rich_rules)),
            ),
        )
    only_runtime = [w for w in perm_closed if w not in closed and w not in denied_sources]
    if only_runtime:
        findings.append(
            Finding(
                "firewall-firewalld",
                f"{args.port}/{args.proto} is open in zone {zone} at runtime only: the next "
                "`firewall-cmd --reload` or reboot closes it again",
                (f"permanent {permanent.port_line()}",),
            )
        )
    return Assessment(
        "firewalld",
        True,
        not closed,
        tuple(_unique(blocking or ([runtime.port_line()] if closed else []))),
        tuple(closed),
        tuple(findings),
        tuple(changes),
        {
            "zone": zone,
            "target": runtime.target,
            "ports": list(runtime.ports),
            "permanent_ports": list(permanent.ports),
            "permanent_open": not perm_closed,
            "partly_blocked": _unique(partial),
        },
    )


_PERSIST_ADVICE = (
    "the rule lives until the next reboot; how iptables rules persist depends on the distro "
    "(Debian/Ubuntu: `netfilter-persistent save` from iptables-persistent; RHEL: "
    "`service iptables save`) — save them, or better manage the port with ufw or firewalld"
)


def _assess_iptables(
    args: FirewallArgs, rules: IptablesRules, wanted: list[Network], become: bool
) -> Assessment:
    closed, blocking, changes = [], [], []
    for want in wanted:
        rule = iptables_verdict(rules, want, args.port, args.proto)
        if rule is None or rule.verdict == "allow":
            continue
        closed.append(want)
        blocking.append(rule.text)
        if want.version == 6:
            continue  # ip6tables: reported below, not planned
        source = "" if want == ANY_V4 else f" -s {show_network(want)}"
        match = f"INPUT -p {args.proto} --dport {args.port}{source} -j ACCEPT"
        changes.append(_cmd(f"iptables -I {match}", f"iptables -D {match}", become))
    findings: tuple[Finding, ...] = ()
    if closed:
        findings = (
            Finding(
                "network",
                f"iptables blocks {args.port}/{args.proto} from {_who(closed)}; redmedic "
                f"inserts an ACCEPT rule in front at runtime only — {_PERSIST_ADVICE}",
                tuple(_unique(blocking)),
                fixable=False,
            ),
        )
    return Assessment(
        "iptables",
        True,
        not closed,
        tuple(_unique(blocking)),
        tuple(closed),
        findings,
        tuple(changes),
        {"policy": rules.policies.get("INPUT", "ACCEPT")},
    )


def _assess_nft(args: FirewallArgs, chains: list[NftChain], wanted: list[Network]) -> Assessment:
    blocking: list[str] = []
    closed = []
    for want in wanted:
        rules = nft_verdict(chains, want, args.port, args.proto)
        if rules:
            closed.append(want)
            blocking.extend(r.text for r in rules)
    findings: tuple[Finding, ...] = ()
    if closed:
        findings = (
            Finding(
                "network",
                f"nftables blocks {args.port}/{args.proto} from {_who(closed)}; redmedic does "
                "not rewrite nftables rule sets — add e.g. "
                f"`{args.proto} dport {args.port} accept` before the blocking rule in the input "
                "chain (usually /etc/nftables.conf) and load it with `nft -f`",
                tuple(_unique(blocking)),
                fixable=False,
            ),
        )
    return Assessment(
        "nftables", True, not closed, tuple(_unique(blocking)), tuple(closed), findings
    )


def _unique(texts: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(texts))


def _who(nets: Iterable[Network]) -> str:
    return ", ".join("anywhere" if n == ANY_V4 else show_network(n) for n in nets)


def _cmd(command: str, undo: str, become: bool) -> CommandChange:
    return CommandChange(command, become=become, undo_command=undo)


@dataclass(frozen=True)
class FirewallFound:
    """diagnose's value: the assessment and the gathered text it was made from."""

    assessment: Assessment
    stdout: str
    port: str  # e.g. 6379/tcp


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
        result = ctx.conn.run(gather_script(args), become=ctx.become)
        try:
            assessment = assess(args, result.stdout, become=ctx.become)
            return FirewallFound(assessment, result.stdout, f"{args.port}/{args.proto}")
        except ToolError as exc:
            hint = (
                ""
                if ctx.become or "installed" in str(exc)
                else " (firewalls need root: set `become: true`)"
            )
            raise StepError(ctx.host.name, f"{exc}{hint}", step=ctx.step_name) from None

    def registered(self, found_: FirewallFound) -> StepResult:
        found = found_.assessment
        state = "active" if found.active else "inactive"
        verdict = "open" if found.open else "closed"
        return StepResult(
            rc=0,
            stdout=found_.stdout,
            msg=f"{found.backend} ({state}): {found_.port} {verdict}",
            facts={
                "backend": found.backend,
                "active": found.active,
                "open": found.open,
                "blocking": list(found.blocking),
                "closed_sources": [_who([n]) for n in found.closed],
                **found.facts,
            },
            findings=found.findings,
        )

    def plan(self, args: FirewallArgs, found: FirewallFound) -> list[Change]:
        return list(found.assessment.changes)
