"""The OpenSSH client configuration a host is reached with: `~/.ssh/config` and friends.

Why this is its own module: the inventory says *which* hosts there are and what they are
called; the ssh config says *how* to reach a name (HostName, User, Port, IdentityFile,
ProxyJump, ...), exactly as `ssh NAME` would. Keeping the two apart lets the inventory read
every Ansible source without knowing OpenSSH's rules, and lets the connection layer get
everything it needs as one typed value, `SshOptions`, on the `Host`.

The contract with the inventory is one pure function, `resolve`: it takes the connection
fields the inventory set for a host (only those it set: the ssh config fills the rest, as
OpenSSH gives the command line precedence over the file) and returns them completed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import paramiko

from redmedic.errors import InventoryError


@dataclass(frozen=True)
class JumpHost:
    """One hop of a ProxyJump chain, itself resolved through the ssh config like any host."""

    name: str  # as written in ProxyJump (an alias or an address)
    address: str
    port: int = 22
    user: str | None = None
    ssh: SshOptions = field(default_factory=lambda: SshOptions())


@dataclass(frozen=True)
class SshOptions:
    """How to reach one host beyond address/port/user: what the connection layer honours.

    Empty tuples and None mean "OpenSSH's default" (e.g. `~/.ssh/known_hosts` and
    `/etc/ssh/ssh_known_hosts` for the known-hosts files).
    """

    identity_files: tuple[str, ...] = ()  # every IdentityFile, in order, ~ expanded
    identities_only: bool = False
    proxy_jump: tuple[JumpHost, ...] = ()  # first hop first
    proxy_command: str | None = None  # tokens (%h, %p, %r) already expanded
    user_known_hosts_files: tuple[str, ...] = ()
    global_known_hosts_files: tuple[str, ...] = ()
    host_key_alias: str | None = None
    connect_timeout: float | None = None
    server_alive_interval: float | None = None
    server_alive_count_max: int = 3


@dataclass(frozen=True)
class SshConfig:
    """A parsed client configuration, loaded once per run and looked up per host."""

    path: str | None
    _parsed: paramiko.SSHConfig | None = field(repr=False, compare=False)

    def lookup(self, name: str) -> Mapping[str, Any]:
        """The options `ssh NAME` would use, lower-case keys; {} without a config file."""
        if self._parsed is None:
            return {}
        try:
            return dict(self._parsed.lookup(name))
        except (paramiko.SSHException, ImportError, LookupError, ValueError) as exc:
            raise InventoryError(
                f"cannot look up {name!r} in the ssh config: {exc}",
                where=self.path,
                hint="fix that Host/Match block, or run without the ssh config",
            ) from None


def load_ssh_config(path: str | None) -> SshConfig:
    """Read the ssh config at `path` (~ expanded); a missing file or None is an empty config."""
    if path is None:
        return SshConfig(None, None)
    full = os.path.expanduser(path)
    if not os.path.isfile(full):
        return SshConfig(None, None)
    try:
        return SshConfig(path, paramiko.SSHConfig.from_path(full))
    except (paramiko.SSHException, OSError, UnicodeDecodeError, ValueError) as exc:
        raise InventoryError(
            f"cannot read the ssh config: {exc}",
            where=path,
            hint="fix the ssh config file, or run without it",
        ) from None


def resolve(
    name: str,
    fields: Mapping[str, Any],
    config: SshConfig,
    convert_port: Callable[[object], int],
) -> dict[str, Any]:
    """Complete one ssh host's connection fields from the ssh config.

    `fields` holds only what the inventory set (`address`, `port`, `user`,
    `private_key_file`, `ssh_common_args`, `ssh_extra_args`, ...). The config is looked up
    by the address (the inventory's `ansible_host`) or else the name, the way `ssh` would;
    its `HostName` becomes the address (as with `ssh ALIAS`), its `User`, `Port` and
    `IdentityFile` are used only where the inventory gave no value. `convert_port` checks a
    port read from the config (the caller words the error). The result also carries `ssh`,
    the `SshOptions` for the connection layer.
    """
    result = dict(fields)
    target = str(fields.get("address", name))
    found = config.lookup(target)
    result["address"] = found.get("hostname", target)
    if result.get("user") is None and found.get("user"):
        result["user"] = found["user"]
    if "port" not in result and "port" in found:
        result["port"] = convert_port(found["port"])
    identities = found.get("identityfile")
    files = tuple(os.path.expanduser(p) for p in identities) if isinstance(identities, list) else ()
    if files and result.get("private_key_file") is None:
        result["private_key_file"] = files[0]
    result["ssh"] = SshOptions(identity_files=files)
    return result
