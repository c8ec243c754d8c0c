"""Re-capture the firewall outputs the unit tests judge (tests/unit/test_firewall.py).

Each `*.txt` file beside this script is what the `firewall` step's own gather script
(`redmedic.firewall.gather.gather_script`) printed on a real Debian 12 test host, in a
state set up by the commands listed in the file's header (the header comes before the first
section marker, so `split_sections` never sees it). The marker is the fixed `MARKER` below
instead of a per-run nonce, so the tests can read the files back the way the step does.

Run by hand, as root on a machine where the end-to-end tests run (systemd-nspawn, see
tests/support/nspawn.py), from the repository root:

    .venv/bin/python -m tests.data.firewall.capture            # every file
    .venv/bin/python -m tests.data.firewall.capture ufw-mixed  # the stories holding these

Each story gets its own disposable host; its captures are taken in order on that host, so a
later file shows the same host after more commands (e.g. `ufw-after-allow` is `ufw-deny`'s
host after the allow the step plans). Review the diff before committing: nft's packet
counters always change, but a new Debian point release may print differently, and the
tests should then say so.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from redmedic.firewall.assessment import Request
from redmedic.firewall.gather import gather_script

if TYPE_CHECKING:
    from tests.support.nspawn import SystemdHost

HERE = Path(__file__).resolve().parent
MARKER = "@@redmedic-captured@@ "
NOBODY = "setpriv --reuid=65534 --regid=65534 --clear-groups"


@dataclass(frozen=True)
class Capture:
    """One file: the commands run first (after the story's earlier ones), the request the
    gather script is built for, and whether it runs as root (False: as nobody)."""

    name: str
    setup: tuple[str, ...] = ()
    request: Request = field(default_factory=Request)
    root: bool = True


RICH_REJECT = "rule family=ipv4 source address=10.0.0.0/8 port port=6379 protocol=tcp reject"
RICH_ACCEPT = "rule family=ipv4 source address=10.213.58.1 port port=6379 protocol=tcp accept"
NFT_POLICY_DROP = """\
table inet filter {
  chain input {
    type filter hook input priority filter; policy drop;
    iif "lo" accept
    ct state established,related accept
    tcp dport 22 accept
    ip saddr 10.213.58.0/24 tcp dport { 6379, 16379 } accept comment "redis from the app subnet"
    tcp dport 6380 drop
  }
}
"""

STORIES: tuple[tuple[Capture, ...], ...] = (
    (
        Capture("pristine"),  # ufw installed, never enabled; firewalld stopped
        Capture("not-root", root=False),
        Capture(
            "firewalld-absent",
            ("dpkg --remove firewalld >/dev/null",),
            Request(backend="firewalld"),
        ),
    ),
    (
        Capture("ufw-reject", ("ufw allow 22/tcp", "ufw reject 6379/tcp", "ufw --force enable")),
        Capture("ufw-deny", ("ufw deny to any port 6379 proto tcp",)),  # replaces the reject
        Capture("ufw-after-allow", ("ufw allow to any port 6379 proto tcp",)),  # the step's fix
        Capture("ufw-inactive", ("ufw --force reset",)),
        Capture("ufw-default-allow", ("ufw default allow incoming", "ufw --force enable")),
    ),
    (
        Capture(
            "ufw-mixed",
            (
                "ufw allow 22/tcp",
                "ufw allow from 10.213.58.0/24 to any port 6379 proto tcp comment 'app servers'",
                "ufw deny from 10.213.58.128/25 to any port 6379 proto tcp",
                "ufw insert 1 reject from 192.168.7.0/24",
                "ufw allow in on host0 to any port 8080 proto tcp",
                "ufw allow OpenSSH",
                "ufw limit 2222/tcp",
                "ufw deny 6380:6390/tcp",
                "ufw allow log 6391",
                "ufw --force enable",
            ),
        ),
    ),
    (
        # `systemctl start` returns before firewalld has loaded its rules; --state waits.
        Capture("firewalld-default", ("systemctl start firewalld", "firewall-cmd --state")),
        Capture("firewalld-runtime-only", ("firewall-cmd --add-port=6379/tcp",)),
    ),
    (
        Capture(
            "firewalld-rich",
            (
                "systemctl start firewalld",
                "firewall-cmd --state",
                *(
                    f"firewall-cmd {layer}--add-rich-rule={shlex.quote(rule)}"
                    for layer in ("", "--permanent ")
                    for rule in (RICH_REJECT, RICH_ACCEPT)
                ),
                "firewall-cmd --permanent --add-service=redis",
                "firewall-cmd --permanent --add-port=7000-7005/tcp",
            ),
        ),
        Capture("firewalld-trusted", request=Request(zone="trusted")),
        # What the step plans for firewalld-rich, for anywhere and for 172.16.0.0/12.
        Capture(
            "firewalld-fixed",
            (
                "firewall-cmd --zone=public --add-port=6379/tcp",
                'firewall-cmd --zone=public --add-rich-rule=\'rule family="ipv4" source '
                'address="172.16.0.0/12" port port="6379" protocol="tcp" accept\'',
            ),
        ),
    ),
    (
        Capture("iptables-reject", ("iptables -A INPUT -p tcp --dport 6379 -j REJECT",)),
        # What the step plans for iptables-reject and clients from 10.213.58.1.
        Capture(
            "iptables-after-insert",
            ("iptables -I INPUT -p tcp --dport 6379 -s 10.213.58.1 -j ACCEPT",),
        ),
    ),
    (
        Capture(
            "iptables-policy-drop",
            (
                "iptables -N redis-guard",
                "iptables -A INPUT -i lo -j ACCEPT",
                "iptables -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                "iptables -A INPUT -p tcp --dport 22 -j ACCEPT",
                "iptables -A INPUT -p tcp -m multiport --dports 6379,6380 -j redis-guard",
                "iptables -A INPUT -p tcp --dport 6379 -m comment --comment 'redis clients'"
                " -j ACCEPT",
                "iptables -A INPUT -p tcp --dport 6390:6399 -j REJECT --reject-with tcp-reset",
                "iptables -A redis-guard -s 10.213.58.0/24 -j RETURN",
                "iptables -A redis-guard -j DROP",
                "iptables -P INPUT DROP",
            ),
        ),
    ),
    (Capture("nft-policy-drop", (f"printf '%s' {shlex.quote(NFT_POLICY_DROP)} | nft -f -",)),),
    (
        Capture(
            "nft-drop",
            (
                "nft add table inet guard",
                "nft 'add chain inet guard input "
                "{ type filter hook input priority 0; policy accept; }'",
                "nft add rule inet guard input tcp dport 6379 drop",
            ),
        ),
    ),
)


def header(done: list[str], capture: Capture) -> str:
    """The file's first lines: how the state was made and what the script was asked."""
    request = capture.request
    asked = f"backend={request.backend}" + (f" zone={request.zone}" if request.zone else "")
    who = "root" if capture.root else "nobody (no become)"
    lines = [
        "# Captured by tests/data/firewall/capture.py: the firewall step's gather script",
        f"# ({asked}, run as {who}) on a Debian 12 test host after:",
        *(f"#   {command}" for command in done or ["(nothing: a fresh host)"]),
    ]
    return "\n".join(lines) + "\n"


def capture_story(host: SystemdHost, story: tuple[Capture, ...]) -> None:
    """Run the story's setups in order on `host`, writing each capture's file."""
    done: list[str] = []
    for capture in story:
        for command in capture.setup:
            setup = host.ssh(command)
            if setup.returncode != 0:
                raise SystemExit(f"{capture.name}: `{command}` failed: {setup.stderr.strip()}")
            done.append(command)
        script = gather_script(capture.request, MARKER)
        run = script if capture.root else f"{NOBODY} sh -c {shlex.quote(script)}"
        result = host.ssh(run, check=True)
        assert not result.stderr, result.stderr
        (HERE / f"{capture.name}.txt").write_text(header(done, capture) + result.stdout)
        print(f"wrote {capture.name}.txt", file=sys.stderr)


def main(names: list[str]) -> None:
    # Imported here: the unit tests import MARKER from this module, not the host machinery.
    from tests.support.nspawn import HostPool

    stories = [s for s in STORIES if not names or any(c.name in names for c in s)]
    with HostPool() as pool:
        for story, host in zip(stories, pool.boot(len(stories)), strict=True):
            capture_story(host, story)


if __name__ == "__main__":
    main(sys.argv[1:])
