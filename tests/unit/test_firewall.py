"""The `firewall` step's judgement, fed with output captured on real Debian 12 hosts.

Every constant below is what the step's own gathering script (`gather_script`) printed on a
systemd-nspawn test host (tests/support/nspawn.py) after the commands named above it —
trailing blanks stripped, firewalld's list of service ports abridged to two files. The
user story of each test: given a host whose firewall looks like this, when the step
diagnoses and plans, then it says this and would run exactly these commands.
"""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError

from redmedic.steps.firewall import (
    Assessment,
    FirewallArgs,
    ToolError,
    assess,
    parse_iptables,
    parse_nft,
    parse_ufw_status,
    parse_zone,
    rich_rule_for,
    split_sections,
)

# --- captured -----------------------------------------------------------------------------
# ufw --force enable; ufw allow 22/tcp; ufw reject 6379/tcp
UFW_REJECT = """\
@@ufw
Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), disabled (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW IN    Anywhere
6379/tcp                   REJECT IN   Anywhere
22/tcp (v6)                ALLOW IN    Anywhere (v6)
6379/tcp (v6)              REJECT IN   Anywhere (v6)

@@rc 0
"""


# ... then: ufw deny to any port 6379 proto tcp (replaces the reject)
UFW_DENY = """\
@@ufw
Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), disabled (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW IN    Anywhere
6379/tcp                   DENY IN     Anywhere
22/tcp (v6)                ALLOW IN    Anywhere (v6)
6379/tcp (v6)              DENY IN     Anywhere (v6)

@@rc 0
"""


# ufw allow from 10.213.58.0/24 to any port 6379 proto tcp comment 'app servers';
# ufw deny from 10.213.58.128/25 to any port 6379 proto tcp; ufw insert 1 reject from
# 192.168.7.0/24; ufw allow in on host0 to any port 8080 proto tcp; ufw allow OpenSSH;
# ufw limit 2222/tcp; ufw deny 6380:6390/tcp; ufw allow log 6391
UFW_MIXED = """\
@@ufw
Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), disabled (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
Anywhere                   REJECT IN   192.168.7.0/24
22/tcp                     ALLOW IN    Anywhere
6379/tcp                   ALLOW IN    10.213.58.0/24             # app servers
6379/tcp                   DENY IN     10.213.58.128/25
8080/tcp on host0          ALLOW IN    Anywhere
22/tcp (OpenSSH)           ALLOW IN    Anywhere
2222/tcp                   LIMIT IN    Anywhere
6380:6390/tcp              DENY IN     Anywhere
6391                       ALLOW IN    Anywhere                   (log)
22/tcp (v6)                ALLOW IN    Anywhere (v6)
8080/tcp (v6) on host0     ALLOW IN    Anywhere (v6)
22/tcp (OpenSSH (v6))      ALLOW IN    Anywhere (v6)
2222/tcp (v6)              LIMIT IN    Anywhere (v6)
6380:6390/tcp (v6)         DENY IN     Anywhere (v6)
6391 (v6)                  ALLOW IN    Anywhere (v6)              (log)

@@rc 0
"""


# ufw --force reset; ufw default allow incoming; ufw --force enable
UFW_DEFAULT_ALLOW = """\
@@ufw
Status: active
Logging: on (low)
Default: allow (incoming), allow (outgoing), disabled (routed)
New profiles: skip
@@rc 0
"""


# ufw --force reset (ufw is off; its empty chains stay in iptables). nft dump abridged.
UFW_INACTIVE = """\
@@ufw
Status: inactive
@@rc 0
@@firewalld-state
not running
@@iptables
-P INPUT ACCEPT
-P FORWARD ACCEPT
-P OUTPUT ACCEPT
-N ufw-after-forward
-N ufw-after-input
-N ufw-after-logging-forward
-N ufw-after-logging-input
-N ufw-after-logging-output
-N ufw-after-output
-N ufw-before-forward
-N ufw-before-input
-N ufw-before-logging-forward
-N ufw-before-logging-input
-N ufw-before-logging-output
-N ufw-before-output
-N ufw-reject-forward
-N ufw-reject-input
-N ufw-reject-output
-N ufw-track-forward
-N ufw-track-input
-N ufw-track-output
-A INPUT -j ufw-before-logging-input
-A INPUT -j ufw-before-input
-A INPUT -j ufw-after-input
-A INPUT -j ufw-after-logging-input
-A INPUT -j ufw-reject-input
-A INPUT -j ufw-track-input
-A FORWARD -j ufw-before-logging-forward
-A FORWARD -j ufw-before-forward
-A FORWARD -j ufw-after-forward
-A FORWARD -j ufw-after-logging-forward
-A FORWARD -j ufw-reject-forward
-A FORWARD -j ufw-track-forward
-A OUTPUT -j ufw-before-logging-output
-A OUTPUT -j ufw-before-output
-A OUTPUT -j ufw-after-output
-A OUTPUT -j ufw-after-logging-output
-A OUTPUT -j ufw-reject-output
-A OUTPUT -j ufw-track-output
@@rc 0
@@nft
table ip filter {
\tchain ufw-before-logging-input {
\t}

\tchain INPUT {
\t\ttype filter hook input priority filter; policy accept;
\t\tcounter packets 258 bytes 53357 jump ufw-before-logging-input
\t\tcounter packets 258 bytes 53357 jump ufw-before-input
\t\tcounter packets 32 bytes 6677 jump ufw-after-input
\t\tcounter packets 32 bytes 6677 jump ufw-after-logging-input
\t\tcounter packets 32 bytes 6677 jump ufw-reject-input
\t\tcounter packets 32 bytes 6677 jump ufw-track-input
\t}
}
@@rc 0
"""


# systemctl start firewalld (Debian's default zone: public)
FIREWALLD_DEFAULT = """\
@@ufw
Status: inactive
@@rc 0
@@firewalld-state
running
@@firewalld-runtime
public
  target: default
  icmp-block-inversion: no
  interfaces:
  sources:
  services: dhcpv6-client ssh
  ports:
  protocols:
  forward: yes
  masquerade: no
  forward-ports:
  source-ports:
  icmp-blocks:
  rich rules:
@@rc 0
@@firewalld-permanent
public
  target: default
  icmp-block-inversion: no
  interfaces:
  sources:
  services: dhcpv6-client ssh
  ports:
  protocols:
  forward: yes
  masquerade: no
  forward-ports:
  source-ports:
  icmp-blocks:
  rich rules:
@@firewalld-services
/usr/lib/firewalld/services/ceph.xml:  <port protocol="tcp" port="6800-7300"/>
/usr/lib/firewalld/services/redis.xml:  <port protocol="tcp" port="6379"/>
"""


# firewall-cmd --add-port=6379/tcp (runtime only)
FIREWALLD_RUNTIME_ONLY = """\
@@ufw
Status: inactive
@@rc 0
@@firewalld-state
running
@@firewalld-runtime
public
  target: default
  icmp-block-inversion: no
  interfaces:
  sources:
  services: dhcpv6-client ssh
  ports: 6379/tcp
  protocols:
  forward: yes
  masquerade: no
  forward-ports:
  source-ports:
  icmp-blocks:
  rich rules:
@@rc 0
@@firewalld-permanent
public
  target: default
  icmp-block-inversion: no
  interfaces:
  sources:
  services: dhcpv6-client ssh
  ports:
  protocols:
  forward: yes
  masquerade: no
  forward-ports:
  source-ports:
  icmp-blocks:
  rich rules:
@@firewalld-services
/usr/lib/firewalld/services/ceph.xml:  <port protocol="tcp" port="6800-7300"/>
/usr/lib/firewalld/services/redis.xml:  <port protocol="tcp" port="6379"/>
"""


# for o in '' --permanent: firewall-cmd $o --add-rich-rule='rule family=ipv4 source
# address=10.0.0.0/8 port port=6379 protocol=tcp reject' and the same accepting
# 10.213.58.1; firewall-cmd --permanent --add-service=redis --add-port=7000-7005/tcp
FIREWALLD_RICH = """\
@@ufw
Status: inactive
@@rc 0
@@firewalld-state
running
@@firewalld-runtime
public
  target: default
  icmp-block-inversion: no
  interfaces:
  sources:
  services: dhcpv6-client ssh
  ports:
  protocols:
  forward: yes
  masquerade: no
  forward-ports:
  source-ports:
  icmp-blocks:
  rich rules:
\trule family="ipv4" source address="10.0.0.0/8" port port="6379" protocol="tcp" reject
\trule family="ipv4" source address="10.213.58.1" port port="6379" protocol="tcp" accept
@@rc 0
@@firewalld-permanent
public
  target: default
  icmp-block-inversion: no
  interfaces:
  sources:
  services: dhcpv6-client redis ssh
  ports: 7000-7005/tcp
  protocols:
  forward: yes
  masquerade: no
  forward-ports:
  source-ports:
  icmp-blocks:
  rich rules:
\trule family="ipv4" source address="10.0.0.0/8" port port="6379" protocol="tcp" reject
\trule family="ipv4" source address="10.213.58.1" port port="6379" protocol="tcp" accept
@@firewalld-services
/usr/lib/firewalld/services/ceph.xml:  <port protocol="tcp" port="6800-7300"/>
/usr/lib/firewalld/services/redis.xml:  <port protocol="tcp" port="6379"/>
"""


# the same host, zone: trusted
FIREWALLD_TRUSTED = """\
@@ufw
Status: inactive
@@rc 0
@@firewalld-state
running
@@firewalld-runtime
trusted
  target: ACCEPT
  icmp-block-inversion: no
  interfaces:
  sources:
  services:
  ports:
  protocols:
  forward: yes
  masquerade: no
  forward-ports:
  source-ports:
  icmp-blocks:
  rich rules:
@@rc 0
@@firewalld-permanent
trusted
  target: ACCEPT
  icmp-block-inversion: no
  interfaces:
  sources:
  services:
  ports:
  protocols:
  forward: yes
  masquerade: no
  forward-ports:
  source-ports:
  icmp-blocks:
  rich rules:
@@firewalld-services
/usr/lib/firewalld/services/ceph.xml:  <port protocol="tcp" port="6800-7300"/>
/usr/lib/firewalld/services/redis.xml:  <port protocol="tcp" port="6379"/>
"""


# firewalld stopped; INPUT: lo, established, ssh, 6379/6380 through a guard chain that
# RETURNs 10.213.58.0/24 and DROPs the rest, then an ACCEPT for 6379; policy DROP
IPTABLES_POLICY_DROP = """\
@@ufw
Status: inactive
@@rc 0
@@firewalld-state
not running
@@iptables
-P INPUT DROP
-P FORWARD ACCEPT
-P OUTPUT ACCEPT
-N redis-guard
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -p tcp -m multiport --dports 6379,6380 -j redis-guard
-A INPUT -p tcp -m tcp --dport 6379 -m comment --comment "redis clients" -j ACCEPT
-A INPUT -p tcp -m tcp --dport 6390:6399 -j REJECT --reject-with tcp-reset
-A redis-guard -s 10.213.58.0/24 -j RETURN
-A redis-guard -j DROP
@@rc 0
@@nft
# Warning: table ip filter is managed by iptables-nft, do not touch!
table ip filter {
\tchain INPUT {
\t\ttype filter hook input priority filter; policy drop;
\t\tiifname "lo" counter packets 0 bytes 0 accept
\t\tct state related,established counter packets 30 bytes 6565 accept
\t\ttcp dport 22 counter packets 1 bytes 60 accept
\t\tmeta l4proto tcp tcp dport { 6379, 6380 } counter packets 0 bytes 0 jump redis-guard
\t\ttcp dport 6379  counter packets 0 bytes 0 accept
\t\ttcp dport 6390-6399 counter packets 0 bytes 0 reject with tcp reset
\t}

\tchain redis-guard {
\t\tip saddr 10.213.58.0/24 counter packets 0 bytes 0 return
\t\tcounter packets 0 bytes 0 drop
\t}
}
@@rc 0
"""


# iptables -A INPUT -p tcp --dport 6379 -j REJECT
IPTABLES_REJECT = """\
@@ufw
Status: inactive
@@rc 0
@@firewalld-state
not running
@@iptables
-P INPUT ACCEPT
-P FORWARD ACCEPT
-P OUTPUT ACCEPT
-A INPUT -p tcp -m tcp --dport 6379 -j REJECT --reject-with icmp-port-unreachable
@@rc 0
@@nft
# Warning: table ip filter is managed by iptables-nft, do not touch!
table ip filter {
\tchain INPUT {
\t\ttype filter hook input priority filter; policy accept;
\t\ttcp dport 6379 counter packets 0 bytes 0 reject
\t}
}
@@rc 0
"""


# nft -f: table inet filter, input policy drop, 6379 accepted from 10.213.58.0/24
NFT_POLICY_DROP = """\
@@ufw
Status: inactive
@@rc 0
@@firewalld-state
not running
@@iptables
-P INPUT ACCEPT
-P FORWARD ACCEPT
-P OUTPUT ACCEPT
@@rc 0
@@nft
table ip filter {
\tchain INPUT {
\t\ttype filter hook input priority filter; policy accept;
\t}
}
table inet filter {
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\tiif "lo" accept
\t\tct state established,related accept
\t\ttcp dport 22 accept
\t\tip saddr 10.213.58.0/24 tcp dport { 6379, 16379 } accept comment "redis from the app subnet"
\t\ttcp dport 6380 drop
\t}
}
@@rc 0
"""


# UFW_REJECT's host after redmedic applied `ufw allow to any port 6379 proto tcp`
UFW_AFTER_ALLOW = """\
@@ufw
Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), disabled (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW IN    Anywhere
6379/tcp                   ALLOW IN    Anywhere
22/tcp (v6)                ALLOW IN    Anywhere (v6)
6379/tcp (v6)              ALLOW IN    Anywhere (v6)

@@rc 0
"""


# a firewalld host after --add-port=6379/tcp in both layers and an added rich rule
# for 172.16.0.0/12 (runtime)
FIREWALLD_FIXED = """\
@@ufw
Status: inactive
@@rc 0
@@firewalld-state
running
@@firewalld-runtime
public
  target: default
  icmp-block-inversion: no
  interfaces:
  sources:
  services: dhcpv6-client redis ssh
  ports: 7000-7005/tcp 6379/tcp
  protocols:
  forward: yes
  masquerade: no
  forward-ports:
  source-ports:
  icmp-blocks:
  rich rules:
\trule family="ipv4" source address="10.0.0.0/8" port port="6379" protocol="tcp" reject
\trule family="ipv4" source address="10.213.58.1" port port="6379" protocol="tcp" accept
\trule family="ipv4" source address="172.16.0.0/12" port port="6379" protocol="tcp" accept
@@rc 0
@@firewalld-permanent
public
  target: default
  icmp-block-inversion: no
  interfaces:
  sources:
  services: dhcpv6-client redis ssh
  ports: 7000-7005/tcp 6379/tcp
  protocols:
  forward: yes
  masquerade: no
  forward-ports:
  source-ports:
  icmp-blocks:
  rich rules:
\trule family="ipv4" source address="10.0.0.0/8" port port="6379" protocol="tcp" reject
\trule family="ipv4" source address="10.213.58.1" port port="6379" protocol="tcp" accept
@@firewalld-services
/usr/lib/firewalld/services/ceph.xml:  <port protocol="tcp" port="6800-7300"/>
/usr/lib/firewalld/services/redis.xml:  <port protocol="tcp" port="6379"/>
"""


# IPTABLES_REJECT's host after `iptables -I INPUT -p tcp --dport 6379 -s 10.213.58.1
# -j ACCEPT`
IPTABLES_AFTER_INSERT = """\
@@ufw
Status: inactive
@@rc 0
@@firewalld-state
not running
@@iptables
-P INPUT ACCEPT
-P FORWARD ACCEPT
-P OUTPUT ACCEPT
-A INPUT -s 10.213.58.1/32 -p tcp -m tcp --dport 6379 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 6379 -j REJECT --reject-with icmp-port-unreachable
@@rc 0
"""


# --- helpers --------------------------------------------------------------------------------


def judge(output: str, **args: object) -> tuple[Assessment, list[tuple[str, str | None]]]:
    """(assessment, [(command, undo)]) for a captured output and the step's arguments."""
    found = assess(FirewallArgs(**args), output)  # type: ignore[arg-type]
    return found, [(c.command, c.undo_command) for c in found.changes]


# --- ufw ------------------------------------------------------------------------------------


def test_a_ufw_reject_is_turned_into_an_allow_whose_undo_rejects_again() -> None:
    found, changes = judge(UFW_REJECT)
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
    found, changes = judge(UFW_DENY)
    assert found.blocking == ("6379/tcp  DENY IN  Anywhere",)
    assert changes == [
        ("ufw allow to any port 6379 proto tcp", "ufw deny to any port 6379 proto tcp")
    ]


def test_once_ufw_allows_the_port_nothing_is_planned() -> None:
    found, changes = judge(UFW_AFTER_ALLOW)
    assert found.open and not found.findings and changes == []


def test_rules_for_other_subnets_are_left_alone_and_the_default_policy_is_the_blocker() -> None:
    found, changes = judge(UFW_MIXED)
    assert found.open is False
    assert found.findings[0].evidence == (
        "Default: deny (incoming), allow (outgoing), disabled (routed)",
    )
    # The reject of 192.168.7.0/24 and the deny of 10.213.58.128/25 are deliberate
    # exceptions: the allow is appended after them, not inserted in front.
    assert found.facts["partly_blocked"] == [
        "Anywhere  REJECT IN  192.168.7.0/24",
        "6379/tcp  DENY IN  10.213.58.128/25",
    ]
    assert changes == [
        ("ufw allow to any port 6379 proto tcp", "ufw delete allow to any port 6379 proto tcp")
    ]


def test_ufw_decides_by_the_first_matching_rule_per_source() -> None:
    found, changes = judge(UFW_MIXED, sources=["10.213.58.7", "10.213.58.200/32", "192.168.7.5"])
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
    status = parse_ufw_status(split_sections(UFW_MIXED)["ufw"])
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
    found, changes = judge(UFW_DEFAULT_ALLOW)
    assert found.open and changes == [] and found.facts["default_incoming"] == "allow"


def test_inactive_ufw_is_not_blocking_even_with_its_chains_left_in_iptables() -> None:
    found, changes = judge(UFW_INACTIVE)
    assert (found.backend, found.active, found.open) == ("ufw", False, True)
    assert not found.findings and changes == []
    assert not parse_iptables(split_sections(UFW_INACTIVE)["iptables"]).active


def test_ufw_run_without_root_is_an_error_that_says_so() -> None:
    # Captured: `setpriv --reuid=65534 ufw status verbose` on a test host.
    output = "@@ufw\nERROR: You need to be root to run this script\n@@rc 1\n"
    with pytest.raises(ToolError, match="You need to be root"):
        assess(FirewallArgs(), output)


# --- firewalld ------------------------------------------------------------------------------


def test_firewalld_without_the_port_gets_it_at_runtime_and_permanently() -> None:
    found, changes = judge(FIREWALLD_DEFAULT)
    assert (found.backend, found.open, found.facts["zone"]) == ("firewalld", False, "public")
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
    found, changes = judge(FIREWALLD_RUNTIME_ONLY)
    assert found.open and found.facts["permanent_open"] is False
    assert "runtime only" in found.findings[0].summary
    assert [c for c, _ in changes] == ["firewall-cmd --permanent --zone=public --add-port=6379/tcp"]


def test_firewalld_services_and_rich_rules_count_layer_by_layer() -> None:
    found, changes = judge(FIREWALLD_RICH)
    # Permanent has the `redis` service (6379/tcp), runtime does not: only runtime changes.
    # The reject for 10.0.0.0/8 is a narrower, deliberate rule: reported, left in place.
    assert found.facts["permanent_open"] is True
    assert found.facts["partly_blocked"] == [
        'rule family="ipv4" source address="10.0.0.0/8" port port="6379" protocol="tcp" reject'
    ]
    assert [c for c, _ in changes] == ["firewall-cmd --zone=public --add-port=6379/tcp"]


def test_a_reject_rich_rule_is_reported_not_fought_and_other_sources_get_rich_rules() -> None:
    found, changes = judge(FIREWALLD_RICH, sources=["10.213.58.1", "172.16.0.0/12"])
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
    assert judge(FIREWALLD_FIXED)[1] == []
    assert judge(FIREWALLD_FIXED, sources=["172.16.0.0/12"])[1] == []
    # firewalld lists a rich rule exactly as redmedic wrote it.
    zone = parse_zone(split_sections(FIREWALLD_FIXED)["firewalld-runtime"])
    added = rich_rule_for(ipaddress.ip_network("172.16.0.0/12"), 6379, "tcp")
    assert zone.rich_rules[2].text == added
    assert zone.ports == ("7000-7005/tcp", "6379/tcp")


def test_a_zone_with_target_accept_is_open() -> None:
    found, changes = judge(FIREWALLD_TRUSTED, zone="trusted")
    assert found.open and changes == [] and found.facts["target"] == "ACCEPT"


# --- iptables and nftables --------------------------------------------------------------


def test_iptables_chains_are_followed_and_the_fix_is_runtime_only() -> None:
    found, changes = judge(IPTABLES_POLICY_DROP)
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
    assert judge(IPTABLES_POLICY_DROP, sources=["10.213.58.9"])[1] == []


def test_an_iptables_reject_gets_a_source_restricted_accept_in_front() -> None:
    changes = judge(IPTABLES_REJECT, sources=["10.213.58.1"])[1]
    assert changes == [
        (
            "iptables -I INPUT -p tcp --dport 6379 -s 10.213.58.1 -j ACCEPT",
            "iptables -D INPUT -p tcp --dport 6379 -s 10.213.58.1 -j ACCEPT",
        )
    ]
    assert judge(IPTABLES_AFTER_INSERT, sources=["10.213.58.1"])[1] == []
    assert judge(IPTABLES_AFTER_INSERT)[0].open is False


def test_iptables_nft_tables_are_judged_once_through_iptables() -> None:
    chains = parse_nft(split_sections(IPTABLES_POLICY_DROP)["nft"])
    assert [c.table for c in chains] == []  # marked "managed by iptables-nft"


def test_nftables_blocking_is_reported_with_advice_and_never_changed() -> None:
    found, changes = judge(NFT_POLICY_DROP)
    assert (found.backend, found.open, changes) == ("nftables", False, [])
    [finding] = found.findings
    assert not finding.fixable and "tcp dport 6379 accept" in finding.summary
    assert finding.evidence == ("chain input in table inet filter: policy drop",)
    assert judge(NFT_POLICY_DROP, sources=["10.213.58.4"])[0].open is True


# --- arguments -------------------------------------------------------------------------------


def test_sources_must_be_networks_and_a_forced_backend_must_exist() -> None:
    with pytest.raises(ValidationError, match="not an IP address"):
        FirewallArgs(sources=["app-servers"])
    with pytest.raises(ToolError, match="firewalld is not installed"):
        assess(FirewallArgs(backend="firewalld"), "@@ufw\nStatus: inactive\n@@rc 0\n")
