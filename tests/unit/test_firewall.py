"""The `firewall` step's judgement, fed with output captured on real Debian 12 hosts.

Every case below is a file in tests/data/firewall: what the step's own gather script
printed on a systemd-nspawn test host after the commands listed in the file's header
(tests/data/firewall/capture.py re-captures them all). The user story of each test: given a
host whose firewall looks like this, when the step diagnoses and plans, then it says this
and would run exactly these commands.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from pydantic import ValidationError

from redmedic.connection.scripts import new_marker
from redmedic.firewall.assessment import Assessment, ToolError
from redmedic.firewall.firewalld import parse_zone, rich_rule_for
from redmedic.firewall.gather import Output, assess, read_gathered
from redmedic.firewall.iptables import parse_iptables
from redmedic.firewall.nft import parse_nft
from redmedic.firewall.rules import ANY_V4
from redmedic.firewall.ufw import UfwOpening, parse_ufw_status
from redmedic.model.plan import CommandChange
from redmedic.steps.firewall import Firewall, FirewallArgs, FirewallFound
from tests.data.firewall.capture import MARKER

DATA = Path(__file__).resolve().parents[1] / "data" / "firewall"


def captured(name: str) -> dict[str, Output]:
    """A captured host's gather output, read back the way the step reads it."""
    return read_gathered((DATA / f"{name}.txt").read_text(), MARKER)


def judge(name: str, **args: object) -> tuple[Assessment, list[tuple[str, str | None]]]:
    """(assessment, [(command, undo)]): what the step concludes and plans for that host."""
    step_args = FirewallArgs(**args)  # type: ignore[arg-type]
    found = FirewallFound(assess(step_args.request(), captured(name)), "6379/tcp")
    changes = Firewall().plan(step_args, found)
    assert all(isinstance(c, CommandChange) for c in changes)
    return found.assessment, [(c.command, c.undo_command) for c in changes]  # type: ignore[union-attr]


# --- ufw ------------------------------------------------------------------------------------


def test_a_ufw_reject_is_turned_into_an_allow_whose_undo_rejects_again() -> None:
    found, changes = judge("ufw-reject")
    assert (found.backend, found.active, found.open) == ("ufw", True, False)
    [finding] = found.findings
    assert finding.cause == "firewall-ufw" and finding.fixable
    assert finding.evidence == ("6379/tcp  REJECT IN  Anywhere",)
    # Measured: `ufw allow` with the same match *updates* the reject ("Rule updated"), so
    # the undo is the reject again — a `ufw delete allow` would drop the rule altogether.
    assert changes == [
        ("ufw allow to any port 6379 proto tcp", "ufw reject to any port 6379 proto tcp")
    ]


def test_a_ufw_deny_gets_the_same_allow_and_an_undo_that_denies() -> None:
    found, changes = judge("ufw-deny")
    assert found.blocking == ("6379/tcp  DENY IN  Anywhere",)
    assert changes == [
        ("ufw allow to any port 6379 proto tcp", "ufw deny to any port 6379 proto tcp")
    ]


def test_once_ufw_allows_the_port_nothing_is_planned() -> None:
    found, changes = judge("ufw-after-allow")
    assert found.open and not found.findings and changes == []


def test_rules_for_other_subnets_are_left_alone_and_the_default_policy_is_the_blocker() -> None:
    found, changes = judge("ufw-mixed")
    assert found.open is False
    assert found.findings[0].evidence == (
        "Default: deny (incoming), allow (outgoing), disabled (routed)",
    )
    # The reject of 192.168.7.0/24 and the deny of 10.213.58.128/25 are deliberate
    # exceptions: the allow is appended after them, not inserted in front.
    assert found.details["partly_blocked"] == [
        "Anywhere  REJECT IN  192.168.7.0/24",
        "6379/tcp  DENY IN  10.213.58.128/25",
    ]
    assert changes == [
        ("ufw allow to any port 6379 proto tcp", "ufw delete allow to any port 6379 proto tcp")
    ]


def test_ufw_decides_by_the_first_matching_rule_per_source() -> None:
    found, changes = judge("ufw-mixed", sources=["10.213.58.7", "10.213.58.200/32", "192.168.7.5"])
    # 10.213.58.200 is in the allowed /24 listed before the /25 deny: open. 192.168.7.5 is
    # rejected by rule 1; an allow appended at the end would never be reached, so it is
    # inserted at that rule's position.
    assert [str(n) for n in found.closed] == ["192.168.7.5/32"]
    assert changes == [
        (
            "ufw insert 1 allow from 192.168.7.5 to any port 6379 proto tcp",
            "ufw delete allow from 192.168.7.5 to any port 6379 proto tcp",
        )
    ]


def test_ufw_listing_details_comments_logging_apps_interfaces_and_ipv6() -> None:
    status = parse_ufw_status(captured("ufw-mixed")["ufw"].text)
    assert status.active and status.default_incoming == "deny"
    rules = status.rules
    assert [r.position for r in rules] == list(range(1, 16))  # the numbers `ufw insert` takes
    assert rules[2].ports == ((6379, 6379),) and rules[2].action == "allow"  # comment dropped
    assert rules[5].ports == ((22, 22),) and not rules[5].plain  # "22/tcp (OpenSSH)"
    assert rules[6].verdict == "allow"  # LIMIT lets clients in (rate-limited)
    assert rules[7].ports == ((6380, 6390),) and rules[7].verdict == "block"
    assert rules[8].ports == ((6391, 6391),) and rules[8].proto is None  # "(log)"
    assert not rules[4].plain  # "on host0"
    assert all(r.source is not None and r.source.version == 6 for r in rules[9:])
    assert str(rules[11].source) == "::/0"  # "22/tcp (OpenSSH (v6))"


def test_ufw_with_a_default_allow_policy_needs_nothing() -> None:
    found, changes = judge("ufw-default-allow")
    assert found.open and changes == [] and found.details["default_incoming"] == "allow"


def test_inactive_ufw_is_not_blocking_even_with_its_chains_left_in_iptables() -> None:
    for name in ("ufw-inactive", "pristine"):  # after `ufw --force reset`; never enabled
        found, changes = judge(name)
        assert (found.backend, found.active, found.open) == ("ufw", False, True)
        assert not found.findings and changes == []
    assert not parse_iptables(captured("ufw-inactive")["iptables"].text).active


def test_run_without_root_the_firewall_tools_refuse_and_the_step_says_so() -> None:
    with pytest.raises(ToolError, match="You need to be root"):
        judge("not-root")


# --- firewalld ------------------------------------------------------------------------------


def test_firewalld_without_the_port_gets_it_at_runtime_and_permanently() -> None:
    found, changes = judge("firewalld-default")
    assert (found.backend, found.open, found.details["zone"]) == ("firewalld", False, "public")
    [finding] = found.findings
    assert finding.cause == "firewall-firewalld" and "No route to host" in finding.summary
    assert finding.evidence == ("zone public: ports: (none); services: dhcpv6-client ssh",)
    assert changes == [
        (
            "firewall-cmd --zone=public --add-port=6379/tcp",
            "firewall-cmd --zone=public --remove-port=6379/tcp",
        ),
        (
            "firewall-cmd --permanent --zone=public --add-port=6379/tcp",
            "firewall-cmd --permanent --zone=public --remove-port=6379/tcp",
        ),
    ]


def test_a_port_opened_at_runtime_only_is_made_permanent_too() -> None:
    found, changes = judge("firewalld-runtime-only")
    assert found.open and found.details["permanent_open"] is False
    assert "runtime only" in found.findings[0].summary
    assert [c for c, _ in changes] == ["firewall-cmd --permanent --zone=public --add-port=6379/tcp"]


def test_firewalld_services_and_rich_rules_count_layer_by_layer() -> None:
    found, changes = judge("firewalld-rich")
    # Permanent has the `redis` service (6379/tcp), runtime does not: only runtime changes.
    # The reject for 10.0.0.0/8 is a narrower, deliberate rule: reported, left in place.
    assert found.details["permanent_open"] is True
    assert found.details["partly_blocked"] == [
        'rule family="ipv4" source address="10.0.0.0/8" port port="6379" protocol="tcp" reject'
    ]
    assert [c for c, _ in changes] == ["firewall-cmd --zone=public --add-port=6379/tcp"]


def test_a_reject_rich_rule_is_reported_not_fought_and_other_sources_get_rich_rules() -> None:
    found, changes = judge("firewalld-rich", sources=["10.213.58.1", "172.16.0.0/12"])
    denied = [f for f in found.findings if not f.fixable]
    # firewalld applies deny rich rules before allows: the accept for 10.213.58.1 never
    # matches, and adding another would not help.
    assert len(denied) == 1 and "10.213.58.1" in denied[0].summary
    # 172.16.0.0/12: the permanent layer already serves it (the redis service), so only
    # the runtime layer gets a rich rule.
    rule = rich_rule_for(ipaddress.ip_network("172.16.0.0/12"), 6379, "tcp")
    assert rule == (
        'rule family="ipv4" source address="172.16.0.0/12" port port="6379" protocol="tcp" accept'
    )
    assert changes == [
        (
            f"firewall-cmd --zone=public --add-rich-rule='{rule}'",
            f"firewall-cmd --zone=public --remove-rich-rule='{rule}'",
        )
    ]


def test_after_the_fix_firewalld_plans_nothing_and_reads_back_its_rich_rule() -> None:
    # firewalld-fixed is firewalld-rich's host after the runtime commands planned above.
    assert judge("firewalld-fixed")[1] == []
    assert judge("firewalld-fixed", sources=["172.16.0.0/12"])[1] == []
    # firewalld lists a rich rule exactly as redmedic wrote it.
    zone = parse_zone(captured("firewalld-fixed")["firewalld-runtime"].text)
    added = rich_rule_for(ipaddress.ip_network("172.16.0.0/12"), 6379, "tcp")
    assert added in [r.text for r in zone.rich_rules]
    assert zone.ports == ("6379/tcp",)


def test_a_zone_with_target_accept_is_open() -> None:
    found, changes = judge("firewalld-trusted", zone="trusted")
    assert found.open and changes == [] and found.details["target"] == "ACCEPT"


# --- iptables and nftables --------------------------------------------------------------


def test_iptables_chains_are_followed_and_the_fix_is_runtime_only() -> None:
    found, changes = judge("iptables-policy-drop")
    assert (found.backend, found.open) == ("iptables", False)
    assert found.blocking == ("-A redis-guard -j DROP",)
    [finding] = found.findings
    assert finding.cause == "network" and not finding.fixable
    assert "depends on the distro" in finding.summary
    assert changes == [
        (
            "iptables -I INPUT -p tcp --dport 6379 -j ACCEPT",
            "iptables -D INPUT -p tcp --dport 6379 -j ACCEPT",
        )
    ]
    # The guard chain RETURNs the app subnet, which then meets the ACCEPT for 6379.
    assert judge("iptables-policy-drop", sources=["10.213.58.9"])[1] == []


def test_an_iptables_reject_gets_a_source_restricted_accept_in_front() -> None:
    changes = judge("iptables-reject", sources=["10.213.58.1"])[1]
    assert changes == [
        (
            "iptables -I INPUT -p tcp --dport 6379 -s 10.213.58.1 -j ACCEPT",
            "iptables -D INPUT -p tcp --dport 6379 -s 10.213.58.1 -j ACCEPT",
        )
    ]
    assert judge("iptables-after-insert", sources=["10.213.58.1"])[1] == []
    assert judge("iptables-after-insert")[0].open is False


def test_iptables_nft_tables_are_judged_once_through_iptables() -> None:
    chains = parse_nft(captured("iptables-policy-drop")["nft"].text)
    assert [c.table for c in chains] == []  # marked "managed by iptables-nft"


def test_nftables_blocking_is_reported_with_advice_and_never_changed() -> None:
    found, changes = judge("nft-policy-drop")
    assert (found.backend, found.open, changes) == ("nftables", False, [])
    [finding] = found.findings
    assert not finding.fixable and "tcp dport 6379 accept" in finding.summary
    assert finding.evidence == ("chain input in table inet filter: policy drop",)
    assert judge("nft-policy-drop", sources=["10.213.58.4"])[0].open is True
    found, changes = judge("nft-drop")
    assert found.blocking == ("tcp dport 6379 drop",) and changes == []


# --- the step: arguments, facts in, changes out ----------------------------------------------


def test_sources_must_be_networks_and_a_forced_backend_must_exist() -> None:
    with pytest.raises(ValidationError, match="not an IP address"):
        FirewallArgs(sources=["app-servers"])
    with pytest.raises(ToolError, match="firewalld is not installed"):
        judge("firewalld-absent", backend="firewalld")


def test_plan_runs_the_openings_as_root_when_diagnose_read_as_root() -> None:
    assessment = Assessment("ufw", True, False, openings=(UfwOpening(ANY_V4, replaces="deny"),))
    [change] = Firewall().plan(FirewallArgs(port=6380), FirewallFound(assessment, "", True))
    assert change == CommandChange(
        "ufw allow to any port 6380 proto tcp",
        become=True,
        undo_command="ufw deny to any port 6380 proto tcp",
    )


def test_registered_facts_name_the_backend_the_verdict_and_the_zone() -> None:
    args = FirewallArgs()
    found = FirewallFound(assess(args.request(), captured("firewalld-default")), "6379/tcp")
    result = Firewall().registered(found)
    assert result.msg == "firewalld (active): 6379/tcp closed"
    assert {k: result.facts[k] for k in ("backend", "open", "closed_sources", "zone")} == {
        "backend": "firewalld",
        "open": False,
        "closed_sources": ["anywhere"],
        "zone": "public",
    }


def test_a_rule_comment_cannot_pose_as_another_section() -> None:
    # What a `ufw ... comment` could print back: the old fixed `@@name`/`@@rc` markers.
    forged = "Status: active\n@@rc 0\n@@iptables\n-P INPUT DROP"
    marker = new_marker()
    output = f"\n{marker}ufw\n{forged}\n\n{marker}ufw.rc\n0\n"
    assert read_gathered(output, marker) == {"ufw": Output(forged, 0)}
