"""nftables: read `nft list ruleset` and judge its input hook chains; never changed.

nftables rule sets are hand-written files (usually /etc/nftables.conf) that redmedic does
not rewrite: a block is reported with its evidence and the rule to add, not fixed. The
tables iptables-nft manages are skipped here: they are judged through `iptables -S`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from redmedic.firewall.assessment import Assessment, Request
from redmedic.firewall.rules import (
    Network,
    Rule,
    first_match,
    parse_ports,
    reaches_verdict,
    unique,
    who,
)
from redmedic.model.plan import Finding


@dataclass(frozen=True)
class NftChain:
    table: str
    name: str
    hook: str | None
    policy: str
    rules: tuple[Rule, ...]


_NOISE = re.compile(r'counter packets \d+ bytes \d+|counter|comment "[^"]*"|log( prefix "[^"]*")?')


def parse_nft(text: str) -> list[NftChain]:
    """Parse `nft list ruleset` into chains, skipping the tables iptables-nft manages
    (nft marks them with a warning line)."""
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
            rules.append(_parse_rule(line, len(rules) + 1))
    return chains


def _parse_rule(text: str, position: int) -> Rule:
    body = _NOISE.sub(" ", text)
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
        if chain.policy == "drop" or reaches_verdict(table, chain.name):
            return True
    return False


def blocking_rules(chains: Sequence[NftChain], want: Network, port: int, proto: str) -> list[Rule]:
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


def assess(request: Request, chains: Sequence[NftChain]) -> Assessment:
    """Report what blocks each wanted network, with the rule to add; no openings."""
    port, proto = request.port, request.proto
    blocking: list[str] = []
    closed = []
    for want in request.wanted:
        rules = blocking_rules(chains, want, port, proto)
        if rules:
            closed.append(want)
            blocking.extend(r.text for r in rules)
    findings: tuple[Finding, ...] = ()
    if closed:
        findings = (
            Finding(
                "network",
                f"nftables blocks {port}/{proto} from {who(closed)}; redmedic does "
                "not rewrite nftables rule sets — add e.g. "
                f"`{proto} dport {port} accept` before the blocking rule in the input "
                "chain (usually /etc/nftables.conf) and load it with `nft -f`",
                tuple(unique(blocking)),
                fixable=False,
            ),
        )
    return Assessment(
        "nftables", True, not closed, tuple(unique(blocking)), tuple(closed), findings
    )
