"""One host's connection, completed from the ssh config: `resolve`, and the loaded config."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from redmedic.errors import InventoryError
from redmedic.model.sshconfig.cmdline import CommandLine, parse_ssh_args
from redmedic.model.sshconfig.evaluate import (
    Local,
    Obtained,
    Setting,
    connection_hash,
    evaluate,
    expand,
)
from redmedic.model.sshconfig.lexer import (
    BadLine,
    ConfigFile,
    Directive,
    JumpSpec,
    is_address,
    read_config,
)
from redmedic.model.sshconfig.model import (
    DEFAULT_GLOBAL_KNOWN_HOSTS,
    DEFAULT_USER_KNOWN_HOSTS,
    JumpHost,
    SshOptions,
    SshWarning,
)

DEFAULT_CONFIG = "~/.ssh/config"  # means: what ssh reads without -F (this, then the system's)
SYSTEM_CONFIG = "/etc/ssh/ssh_config"
# The inventory's fields Ansible passes as `-o Key=value`, before the ssh args.
_Hops = tuple[tuple[JumpHost, ...], tuple[SshWarning, ...]]
_INVENTORY_OPTIONS = (("Port", "port"), ("IdentityFile", "private_key_file"), ("User", "user"))
_ARGS = (
    ("ansible_ssh_common_args", "ssh_common_args"),
    ("ansible_ssh_extra_args", "ssh_extra_args"),
)


class SshConfig:
    """The client configuration of one run: its files, read once, looked up per host.

    `path` is the file given with --ssh-config (None for the default files or none).
    Files named by `-F` in a host's ssh args, and name lookups of first jump hosts, are
    cached here so that each happens once per run.
    """

    def __init__(self, path: str | None, files: tuple[ConfigFile, ...], local: Local) -> None:
        self.path = path
        self.files = files
        self.local = local
        self._other: dict[str, SshConfig] = {}
        self._resolves: dict[str, bool] = {}
        self._chains: dict[tuple[tuple[JumpSpec, ...], str], _Hops] = {}

    def chain(self, specs: tuple[JumpSpec, ...], where: str) -> _Hops:
        """The flattened hops of a ProxyJump value (set at `where`) and their warnings.

        Cached: a fleet's hosts mostly share one bastion, whose resolution does not depend
        on the host behind it.
        """
        key = (specs, where)
        if key not in self._chains:
            warnings: list[SshWarning] = []
            hops = _Chain(self, warnings).hops(specs, where, ())
            self._chains[key] = (hops, tuple(warnings))
        return self._chains[key]

    def other(self, path: str) -> SshConfig:
        """The config a host's `-F FILE` names (read once)."""
        if path not in self._other:
            self._other[path] = load_ssh_config(path, local=self.local)
        return self._other[path]

    def resolves(self, name: str) -> bool:
        """Whether getaddrinfo knows `name` (a local lookup, no connection)."""
        if name not in self._resolves:
            try:
                socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
                self._resolves[name] = True
            except (OSError, UnicodeError):
                self._resolves[name] = False
        return self._resolves[name]


def load_ssh_config(
    path: str | None = DEFAULT_CONFIG,
    *,
    local: Local | None = None,
    system_file: str = SYSTEM_CONFIG,
) -> SshConfig:
    """Read the client configuration as ssh does.

    `DEFAULT_CONFIG` reads ~/.ssh/config then /etc/ssh/ssh_config (either may be missing);
    any other path reads only that file, as `ssh -F` (it must exist); None or "none" reads
    nothing. `local` and `system_file` are for tests.
    """
    local = local or Local.current()
    if path is None or path.lower() == "none":
        return SshConfig(None, (), local)
    if path == DEFAULT_CONFIG:
        user = read_config(
            os.path.join(local.home, ".ssh", "config"),
            user_file=True,
            check_owner=True,
            home=local.home,
        )
        system = read_config(system_file, user_file=False, check_owner=False, home=local.home)
        return SshConfig(None, tuple(f for f in (user, system) if f is not None), local)
    found = read_config(
        os.path.expanduser(path), user_file=True, check_owner=False, home=local.home
    )
    if found is None:
        raise InventoryError(
            "ssh config file not found",
            where=path,
            hint="give an existing file to --ssh-config (or `none`), as with ssh -F",
        )
    return SshConfig(path, (found,), local)


def resolve(
    name: str,
    fields: Mapping[str, Any],
    config: SshConfig,
) -> dict[str, Any]:
    """Complete one ssh host's connection fields from the ssh config, as `ssh` would.

    `fields` holds only what the inventory set (`address`, `port`, `user`,
    `private_key_file`, `ssh_common_args`, `ssh_extra_args`, ...). As Ansible runs ssh,
    the inventory's port, user and key come first on the command line, then the ssh args,
    then the config files, and the first value obtained wins. The config is looked up by
    the address (the inventory's `ansible_host`) or else the name; its `HostName` becomes
    the address. The result also carries `ssh`, the `SshOptions` for the connection layer.
    Every problem is an InventoryError naming FILE:LINE, or the host and its variable.
    """
    host_arg = str(fields.get("address", name))
    command_line = _command_line(name, fields)
    source = config.other(command_line.config_file) if command_line.config_file else config
    found = evaluate(source.files, host_arg, command_line.directives, config.local)
    warnings = [*found.warnings, *command_line.warnings]
    options, port, user = _options(found, config.local)
    if found.proxy is not None:
        kind, value = found.proxy.value
        if kind == "command" and value.lower() != "none":
            options = replace(options, proxy_command=_proxy_command(found, port, user))
        elif kind == "jump" and value:
            hops, hop_warnings = source.chain(value, found.proxy.where)
            names = [hop.name.lower() for hop in hops]
            if host_arg.lower() in names:
                loop = names[: names.index(host_arg.lower()) + 1]
                raise _loop((host_arg.lower(), *loop), found.proxy.where)
            warnings.extend(hop_warnings)
            options = replace(options, proxy_jump=hops)
    result = dict(fields)
    result["address"] = found.hostname
    if "port" in found.first:
        result["port"] = port
    if "user" in found.first:
        result["user"] = user
    if options.identity_files and result.get("private_key_file") is None:
        result["private_key_file"] = options.identity_files[0]
    result["ssh"] = replace(options, warnings=tuple(dict.fromkeys(warnings)))
    return result


def ssh_warnings(hosts: Iterable[tuple[str, SshOptions]]) -> list[str]:
    """Each warning of these hosts once, `WHERE: message (hosts: ...)`, in first-seen order."""
    seen: dict[SshWarning, list[str]] = {}
    for name, options in hosts:
        for warning in options.warnings:
            names = seen.setdefault(warning, [])
            if name not in names:
                names.append(name)
    lines = []
    for warning, names in seen.items():
        listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        lines.append(f"{warning.where}: {warning.message} (hosts: {listed})")
    return lines


def _command_line(name: str, fields: Mapping[str, Any]) -> CommandLine:
    """The ssh command line Ansible would run for this host, as option lines."""
    line = CommandLine()
    where = f"the inventory of host {name!r}"
    for key, field_name in _INVENTORY_OPTIONS:
        value = fields.get(field_name)
        if value is not None:
            line.directives.append(Directive.option(key, value, where))
    for variable, field_name in _ARGS:
        text = fields.get(field_name)
        if not text:
            continue
        try:
            parse_ssh_args(str(text), variable, line)
        except BadLine as exc:
            raise InventoryError(
                f"{variable} of host {name!r}: {exc}",
                hint="write ssh flags, e.g. '-o ProxyJump=ops@bastion.example.com'",
            ) from None
    return line


def _options(found: Obtained, local: Local) -> tuple[SshOptions, int, str]:
    """The SshOptions (without proxies), the port and the remote user ssh would use."""
    port = found.get("port", 22)
    user: str = found.get("user") or local.user
    alias = found.get("hostkeyalias")
    alias = alias.lower() if alias else None
    tokens = {
        "C": connection_hash(local, found.hostname, port, user),
        "L": local.hostname.split(".")[0],
        "i": str(local.uid),
        "k": alias or found.host_arg,
        "l": local.hostname,
        "n": found.host_arg,
        "p": str(port),
        "d": local.home,
        "h": found.hostname,
        "r": user,
        "u": local.user,
    }

    def path(setting: Setting, text: str) -> str:
        return expand(_tilde(text, local), tokens, setting.where, environment=True)

    identities = tuple(path(s, s.value) for s in found.identity_files if s.value.lower() != "none")
    user_known = found.first.get("userknownhostsfile")
    known = (
        tuple(path(user_known, f) for f in user_known.value)
        if user_known is not None
        else tuple(_tilde(f, local) for f in DEFAULT_USER_KNOWN_HOSTS)
    )
    global_known = found.get("globalknownhostsfile", DEFAULT_GLOBAL_KNOWN_HOSTS)
    interval = found.get("serveraliveinterval")
    options = SshOptions(
        identity_files=identities,
        identities_only=found.get("identitiesonly", False),
        user_known_hosts_files=known,
        global_known_hosts_files=tuple(_tilde(f, local) for f in global_known),
        host_key_alias=alias,
        connect_timeout=found.get("connecttimeout"),
        server_alive_interval=interval or None,
        server_alive_count_max=found.get("serveralivecountmax", 3),
    )
    return options, port, user


def _proxy_command(found: Obtained, port: int, user: str) -> str:
    """ProxyCommand with its tokens (%h %n %p %r %%) expanded, as ssh runs it."""
    assert found.proxy is not None
    tokens = {"h": found.hostname, "n": found.host_arg, "p": str(port), "r": user}
    return expand(found.proxy.value[1], tokens, found.proxy.where)


def _loop(names: tuple[str, ...], where: str) -> InventoryError:
    return InventoryError(
        f"ProxyJump loop: {' → '.join(names)}",
        where=where or None,
        hint="a jump host must not be reached through itself, e.g. "
        f"`Host * !{names[-1]}` for the block with the ProxyJump",
    )


def _tilde(text: str, local: Local) -> str:
    if text == "~" or text.startswith("~/"):
        return local.home + text[1:]
    return os.path.expanduser(text) if text.startswith("~") else text


class _Chain:
    """Flattens a ProxyJump chain: each hop resolved through the config like any host."""

    def __init__(self, config: SshConfig, warnings: list[SshWarning]) -> None:
        self.config = config
        self.warnings = warnings

    def hops(
        self, specs: tuple[JumpSpec, ...], where: str, path: tuple[str, ...]
    ) -> tuple[JumpHost, ...]:
        """The hops of `specs` (set at `where`), first hop first; checks the first one."""
        chain = self._expand(specs, where, path)
        first, first_where, named = chain[0]
        direct = first.ssh.proxy_command is None and not is_address(first.address)
        if direct and not named and not self.config.resolves(first.address):
            raise InventoryError(
                f"ProxyJump host {first.name!r} is unknown: not an address, no HostName "
                "for it in the ssh config, and the name does not resolve",
                where=first_where or None,
                hint=f"check the spelling, or add `Host {first.name}` with `HostName "
                "ADDRESS` to the ssh config",
            )
        return tuple(hop for hop, _, _ in chain)

    def _expand(
        self, specs: tuple[JumpSpec, ...], where: str, path: tuple[str, ...]
    ) -> list[tuple[JumpHost, str, bool]]:
        chain: list[tuple[JumpHost, str, bool]] = []
        for index, spec in enumerate(specs):
            if spec.host.lower() in path:
                raise _loop((*path, spec.host.lower()), where)
            line = []
            hop_where = f"ProxyJump {spec.host}"
            if spec.user is not None:
                line.append(Directive.option("User", spec.user, hop_where))
            if spec.port is not None:
                line.append(Directive.option("Port", spec.port, hop_where))
            found = evaluate(self.config.files, spec.host, line, self.config.local)
            self.warnings.extend(found.warnings)
            options, port, user = _options(found, self.config.local)
            proxy = found.proxy
            if index == 0 and proxy is not None:  # later hops are reached via the one before
                kind, value = proxy.value
                if kind == "jump" and value:
                    chain.extend(self._expand(value, proxy.where, (*path, spec.host.lower())))
                elif kind == "command" and value.lower() != "none":
                    options = replace(options, proxy_command=_proxy_command(found, port, user))
            hop = JumpHost(
                name=spec.host,
                address=found.hostname,
                port=port,
                user=found.get("user"),
                ssh=options,
            )
            chain.append((hop, where, found.named))
        return chain
