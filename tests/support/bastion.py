"""A systemd test host reachable only through another one: the bastion layout for e2e tests.

Why a separate module: `nspawn.py` boots hosts; this only arranges two of them the way a
real fleet behind a jump host looks, with nothing faked on the control side:

* `wall_off(target, control)`: the target's own firewall (iptables inside the target, like
  a security group) drops new SSH connections from the control machine's bridge address;
  every other source — the bastion included — still gets in. Only new connections (SYN)
  are dropped, so the SSH session that installs the rule finishes normally.
* `write_ssh_config(...)`: the `~/.ssh/config` a user would write for it (`ProxyJump`).
* `ssh_via(...)`: run a command on the walled-off target with the OpenSSH client, through
  the bastion — how a test inspects it afterwards; `count_logins(...)` is one to run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.nspawn import SSH_OPTIONS, SystemdHost


def wall_off(target: SystemdHost, control: str) -> None:
    """Make `target` drop new SSH connections coming from `control`; all others pass."""
    target.ssh(
        f"iptables -I INPUT -p tcp --dport {target.port} -s {control} --syn -j DROP", check=True
    )


def write_ssh_config(
    path: Path, bastion: SystemdHost, target: SystemdHost, known_hosts: Path
) -> Path:
    """An ssh config naming the hosts `bastion` and `target`, the target behind the bastion."""
    common = (
        f"  User root\n  IdentityFile {bastion.private_key}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {known_hosts}\n  GlobalKnownHostsFile /dev/null\n"
    )
    path.write_text(
        f"Host bastion\n  HostName {bastion.address}\n{common}\n"
        f"Host target\n  HostName {target.address}\n  ProxyJump bastion\n{common}"
    )
    return path


def count_logins(*addresses: str) -> str:
    """A command printing, per address, how many SSH logins came from it — except the one
    running it (its own log line may not be in the journal yet; excluding it keeps the
    count exact either way)."""
    return (
        "own=${SSH_CONNECTION#* }; own=${own%% *}; for a in " + " ".join(addresses) + "; do "
        'journalctl -u ssh --no-pager -q | grep "Accepted publickey for root from $a port "'
        ' | grep -vc " port $own ssh2"; done'
    )


def ssh_via(
    config: Path, command: str, *, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run `command` on the host `target` of `config` with the OpenSSH client (via its jump)."""
    assert SSH_OPTIONS[:2] == ("-F", "/dev/null")  # replaced by the config below
    return subprocess.run(
        ["ssh", "-F", str(config), *SSH_OPTIONS[2:], "target", "--", command],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
