"""A systemd test host reachable only through another one: the bastion layout for e2e tests.

Why a separate module: `nspawn.py` boots hosts; this only arranges two of them the way a
real fleet behind a jump host looks, with nothing faked on the control side:

* `write_ssh_config(...)`: the `~/.ssh/config` a user would write for it (`ProxyJump`).
* `wall_off(config, target, control)`: the target's own firewall (iptables inside the
  target, like a security group) drops new SSH connections from the control machine's
  bridge address; every other source — the bastion included — still gets in. The rule is
  installed through the bastion, so no session of ours ever straddles the wall.
* `ssh_via(config, command)`: run a command on the walled-off target with the OpenSSH
  client, through the bastion; `ssh_direct(host, command)` runs one straight on a host.
  Both wait up to `CONNECT_TIMEOUT` (30 s) for a connection: the test machine is shared
  and can be busy.
* `count_logins(...)`: a command counting a host's SSH logins per source address.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.nspawn import SSH_OPTIONS, SystemdHost


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


def wall_off(config: Path, target: SystemdHost, control: str) -> None:
    """Make the config's `target` drop new SSH connections from `control`; all others pass."""
    rule = f"INPUT -p tcp --dport {target.port} -s {control} --syn -j DROP"
    done = ssh_via(config, f"iptables -C {rule} 2>/dev/null || iptables -I {rule}")
    if done.returncode != 0:
        raise AssertionError(f"cannot wall off {target.name}: {done.stderr.strip()}")


def count_logins(*addresses: str) -> str:
    """A command printing, per address, how many SSH logins came from it — except the one
    running it (its own log line may not be in the journal yet; excluding it keeps the
    count exact either way)."""
    return (
        "own=${SSH_CONNECTION#* }; own=${own%% *}; for a in " + " ".join(addresses) + "; do "
        'journalctl -u ssh --no-pager -q | grep "Accepted publickey for root from $a port "'
        ' | grep -vc " port $own ssh2"; done; true'
    )


def ssh_via(
    config: Path, command: str, *, timeout: float = 90.0
) -> subprocess.CompletedProcess[str]:
    """Run `command` on the host `target` of `config` with the OpenSSH client (via its jump)."""
    assert SSH_OPTIONS[:2] == ("-F", "/dev/null")  # replaced by the config
    return _ssh(["-F", str(config), *SSH_OPTIONS[2:], "target"], command, timeout)


def ssh_direct(
    host: SystemdHost, command: str, *, timeout: float = 90.0
) -> subprocess.CompletedProcess[str]:
    """Run `command` on `host` as root, straight from here (strict host key checking)."""
    return _ssh([*host.ssh_options, f"{host.user}@{host.address}"], command, timeout)


def _ssh(argv: list[str], command: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", *argv, "--", command],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
