"""Plain iptables: read `iptables -S`, follow its chains, and the `iptables -I` that opens
the port in front of the blocking rule.

The fix is runtime only: how iptables rules survive a reboot depends on the distro, so that
is reported as a finding (not fixable), never guessed. IPv6 (ip6tables) is reported, not
planned.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from redmedic.firewall.assessment import Assessment, Command, Request
from redmedic.firewall.rules import (
    ANY_V4,
    Network,
    Ports,
    Rule,
    covers,
    first_match,
    overlaps,
    parse_ports,
    reaches_verdict,
    show_network,
    source_of,
    unique,
    who,
)
from redmedic.model.plan import Finding


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
        return reaches_verdict(self.chains, "INPUT")


_MATCH_MODULES = {"tcp", "udp", "multiport", "comment"}
_TARGETS = {"ACCEPT": "allow", "DROP": "block", "REJECT": "block", "RETURN": "return"}


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
            chain.append(_parse_rule(line.strip(), tokens[2:], len(chain) + 1))
    return IptablesRules(policies, {k: tuple(v) for k, v in chains.items()})


def _parse_rule(text: str, tokens: list[str], position: int) -> Rule:
    source: Network | None = None
    ports: Ports | None = None
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
            understood = understood and value in _MATCH_MODULES
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
    verdict = _TARGETS.get(target, "jump" if target and target.upper() != target else "other")
    return Rule(text, verdict, source, ports, proto, position, target=target, understood=understood)


def verdict(
    rules: IptablesRules, want: Network, port: int, proto: str, chain: str = "INPUT", depth: int = 0
) -> Rule | None:
    """The rule (or the chain policy, as a pseudo-rule) deciding a new connection.

    Follows jumps into user chains (bounded depth: iptables forbids loops anyway); a
    RETURN or the end of a user chain resumes the calling chain.
    """
    for rule in rules.chains.get(chain, ()):
        if not rule.applies_to(port, proto):
            continue
        source = source_of(rule.source, want)
        if rule.verdict == "jump" and depth < 16 and overlaps(source, want):
            decided = verdict(rules, want, port, proto, rule.target, depth + 1)
            if decided is not None:
                return decided
            continue
        if rule.verdict == "return" and covers(source, want):
            return None
        if rule.verdict in ("allow", "block") and first_match([rule], want, port, proto):
            return rule
    if depth == 0:
        policy = rules.policies.get(chain, "ACCEPT")
        return Rule(f"-P {chain} {policy}", "allow" if policy == "ACCEPT" else "block")
    return None


@dataclass(frozen=True)
class IptablesOpening:
    """An ACCEPT for `source` inserted at the top of INPUT, in front of whatever blocks."""

    source: Network

    def commands(self, port: int, proto: str) -> tuple[Command, ...]:
        source = "" if self.source == ANY_V4 else f" -s {show_network(self.source)}"
        match = f"INPUT -p {proto} --dport {port}{source} -j ACCEPT"
        return (Command(f"iptables -I {match}", f"iptables -D {match}"),)


_PERSIST_ADVICE = (
    "the rule lives until the next reboot; how iptables rules persist depends on the distro "
    "(Debian/Ubuntu: `netfilter-persistent save` from iptables-persistent; RHEL: "
    "`service iptables save`) — save them, or better manage the port with ufw or firewalld"
)


def assess(request: Request, rules: IptablesRules) -> Assessment:
    """Judge INPUT per wanted network; IPv4 networks get an opening, IPv6 only a finding."""
    port, proto = request.port, request.proto
    closed, blocking, openings = [], [], []
    for want in request.wanted:
        rule = verdict(rules, want, port, proto)
        if rule is None or rule.verdict == "allow":
            continue
        closed.append(want)
        blocking.append(rule.text)
        if want.version == 4:
            openings.append(IptablesOpening(want))
    findings: tuple[Finding, ...] = ()
    if closed:
        findings = (
            Finding(
                "network",
                f"iptables blocks {port}/{proto} from {who(closed)}; redmedic "
                f"inserts an ACCEPT rule in front at runtime only — {_PERSIST_ADVICE}",
                tuple(unique(blocking)),
                fixable=False,
            ),
        )
    return Assessment(
        "iptables",
        True,
        not closed,
        tuple(unique(blocking)),
        tuple(closed),
        findings,
        tuple(openings),
        {"policy": rules.policies.get("INPUT", "ACCEPT")},
    )
