"""The rule model every backend is reduced to, and how a list of rules decides.

Firewalls decide by the *first* matching rule (ufw, iptables, nftables), so "a rule for 6379
exists" is not the same as "6379 is open": each backend parses its listing into `Rule`s and
asks `first_match` which one decides for a network of clients. Also the small vocabulary
they share: networks, port ranges, and how a network is written back to a tool.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ANY_V4: Network = ipaddress.ip_network("0.0.0.0/0")
ANY_V6: Network = ipaddress.ip_network("::/0")
Ports = tuple[tuple[int, int], ...]


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
    ports: Ports | None = None
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
        return self.ports is None or in_ranges(port, self.ports)


def wanted_networks(sources: Sequence[str]) -> tuple[Network, ...]:
    """Parse `sources`; empty means anywhere, judged on IPv4 only.

    Why IPv4 only: many hosts run ufw with IPv6 rules while clients come over IPv4; judging
    ::/0 as well would plan an allow on every run for hosts that never speak IPv6.
    """
    if not sources:
        return (ANY_V4,)
    return tuple(ipaddress.ip_network(s, strict=False) for s in sources)


def show_network(net: Network) -> str:
    """Networks as the firewall tools print them: a single host without `/32`."""
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return str(net)


def who(nets: Iterable[Network]) -> str:
    """Clients as a finding names them: `anywhere` or the networks."""
    return ", ".join("anywhere" if n == ANY_V4 else show_network(n) for n in nets)


def overlaps(a: Network, b: Network) -> bool:
    return a.version == b.version and a.overlaps(b)


def covers(outer: Network, inner: Network) -> bool:
    return outer.version == inner.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def source_of(source: Network | None, want: Network) -> Network:
    """A rule without a source matches every address of `want`'s family."""
    if source is not None:
        return source
    return ANY_V4 if want.version == 4 else ANY_V6


def in_ranges(port: int, ranges: Iterable[tuple[int, int]]) -> bool:
    return any(lo <= port <= hi for lo, hi in ranges)


def parse_ports(text: str) -> Ports | None:
    """`6379`, `6379:6390`, `6379-6390`, `22,80,6379:6390` → ranges; None if not ports."""
    ranges = []
    for part in text.split(","):
        match = re.fullmatch(r"(\d+)(?:[:-](\d+))?", part.strip())
        if match is None:
            return None
        lo = int(match.group(1))
        ranges.append((lo, int(match.group(2) or lo)))
    return tuple(ranges)


def first_match(rules: Iterable[Rule], want: Network, port: int, proto: str) -> Rule | None:
    """The rule that decides a new connection from `want` to `port`/`proto`, if any.

    Rules are tried in order; the first whose source covers all of `want` decides. A rule
    for only part of `want` does not: an allow leaves the rest undecided, and a block of a
    narrower network is an administrator's deliberate exception that opening the port for
    `want` must not override (see `partial_blocks`). Jumps and returns are left to the
    caller (see `iptables.verdict`).
    """
    for rule in rules:
        decisive = rule.verdict in ("allow", "block") and rule.applies_to(port, proto)
        if decisive and covers(source_of(rule.source, want), want):
            return rule
    return None


def partial_blocks(rules: Iterable[Rule], want: Network, port: int, proto: str) -> list[Rule]:
    """Blocking rules for part of `want` that come before the deciding rule: reported as
    facts, left in place."""
    found = []
    for rule in rules:
        if rule.verdict not in ("allow", "block") or not rule.applies_to(port, proto):
            continue
        source = source_of(rule.source, want)
        if covers(source, want):
            break
        if rule.verdict == "block" and overlaps(source, want):
            found.append(rule)
    return found


def reaches_verdict(chains: Mapping[str, Sequence[Rule]], chain: str, depth: int = 0) -> bool:
    """Does `chain`, or a chain it jumps to, hold a rule that accepts, drops or rejects?

    What tells a filtering ruleset from the empty chains `ufw disable` leaves behind.
    """
    for rule in chains.get(chain, ()):
        if rule.verdict in ("allow", "block"):
            return True
        if (
            rule.verdict == "jump"
            and depth < 16
            and reaches_verdict(chains, rule.target, depth + 1)
        ):
            return True
    return False


def unique(texts: Iterable[str]) -> list[str]:
    """`texts` in order, each once (v4 and v6 rules often carry the same evidence)."""
    return list(dict.fromkeys(texts))
