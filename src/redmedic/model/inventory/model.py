"""Hosts, groups, and host selection: what an inventory is once its sources are read.

Every source (YAML, INI, script, host list) and every `group_vars`/`host_vars` file ends up
here as the same values: `Host` (connection fields plus merged `vars`), `Group`, and
`Inventory`, which selects hosts with Ansible host patterns (`hosts:` of a playbook
intersected with `--limit`). How the variables were merged is `precedence`'s job; this
module turns one host's ordered variable layers into its connection fields.

Connection variables (each also accepted without the `ansible_` prefix, e.g. `port:`):

    ansible_host (ansible_ssh_host)           -> Host.address   (default: the host's name)
    ansible_port (ansible_ssh_port)           -> Host.port      (default 22)
    ansible_user (ansible_ssh_user)           -> Host.user
    ansible_ssh_private_key_file (ansible_private_key_file) -> Host.private_key_file
    ansible_password (ansible_ssh_pass)       -> Host.password
    ansible_become                            -> Host.become (None: the inventory is silent)
    ansible_become_password (ansible_become_pass) -> Host.become_password
    ansible_become_user                       -> Host.become_user
    ansible_connection: ssh | local           -> Host.connection (paramiko, smart = ssh)
    ansible_ssh_common_args, ansible_ssh_extra_args -> read by sshconfig.resolve

Connection variables are used as written: a Jinja `{{ ... }}` in one is an error. Every
variable, these included, also lands in `Host.vars` exactly as written, for templating.
For a connection field, the highest layer that sets any of its names decides; within one
layer `ansible_*` beats the short name (`ansible_user` over `user`), and a null value
counts as not set. As in Ansible, these variables beat the playbook's keywords
(`ansible_become: false` wins over a step's `become: true`).

The ssh config: each ssh host's fields are completed by `sshconfig.resolve`, which says how.
Local hosts are not looked up.

Host patterns (`select_hosts`), separated by `,` (or `:`): a host or group name; `all` or
`*`; an fnmatch glob over host and group names (`redis_*`, `db?.eu`); `&name` keeps only
hosts also in name; `!name` removes name's hosts. As in Ansible, plain terms are united
first, then `&` terms intersect, then `!` terms remove, whatever their order; a pattern of
only `&`/`!` terms starts from `all`. A plain name that is neither a host nor a group is an
error (with did-you-mean), a selection with no hosts is an error, and the result is in
inventory order without duplicates.
"""

from __future__ import annotations

import difflib
import fnmatch
import ipaddress
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from redmedic.errors import InventoryError, UsageError
from redmedic.model.sshconfig import SshConfig, SshOptions
from redmedic.model.sshconfig import resolve as resolve_ssh


@dataclass(frozen=True)
class Host:
    """One target host with everything needed to reach it and its merged variables.

    `vars` holds every inventory variable that applies to the host (group vars merged with
    host vars by precedence), including the connection ones, so playbooks can use them.
    Secrets (`password`, `become_password`) are kept out of `repr` so they never land in logs.
    """

    name: str
    address: str
    port: int = 22
    user: str | None = None
    private_key_file: str | None = None
    password: str | None = field(default=None, repr=False)
    connection: str = "ssh"  # "ssh" or "local"
    become: bool | None = None  # None: no inventory or -e variable says; the playbook decides
    become_password: str | None = field(default=None, repr=False)
    become_user: str | None = None
    groups: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict, repr=False)
    # What the ssh config (and ansible_ssh_common_args/extra_args) add: see sshconfig.
    ssh: SshOptions = field(default_factory=SshOptions, repr=False)


@dataclass(frozen=True)
class Group:
    """One inventory group: its own vars and every host in it, child groups' hosts included."""

    name: str
    hosts: tuple[str, ...]  # inventory order, through child groups too
    children: tuple[str, ...]
    parents: tuple[str, ...]
    depth: int  # longest distance from `all` (which is 0); orders vars precedence
    vars: Mapping[str, Any] = field(default_factory=dict, repr=False)


# Host field -> the variable names that set it, in order of preference within one level.
CONNECTION_VARS: Mapping[str, tuple[str, ...]] = {
    "address": ("ansible_host", "ansible_ssh_host", "host"),
    "port": ("ansible_port", "ansible_ssh_port", "port"),
    "user": ("ansible_user", "ansible_ssh_user", "user"),
    "private_key_file": (
        "ansible_ssh_private_key_file",
        "ansible_private_key_file",
        "ssh_private_key_file",
        "private_key_file",
    ),
    "password": ("ansible_password", "ansible_ssh_pass", "password", "ssh_pass"),
    "become": ("ansible_become", "become"),
    "become_password": (
        "ansible_become_password",
        "ansible_become_pass",
        "become_password",
        "become_pass",
    ),
    "become_user": ("ansible_become_user", "become_user"),
    "connection": ("ansible_connection", "connection"),
    "ssh_common_args": ("ansible_ssh_common_args", "ssh_common_args"),
    "ssh_extra_args": ("ansible_ssh_extra_args", "ssh_extra_args"),
}

_CONNECTIONS = {"ssh": "ssh", "paramiko": "ssh", "smart": "ssh", "local": "local"}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_GLOB_CHARS = frozenset("*?[")

# Where a variable was written, computed only for an error message: FILE[:LINE[:COL]].
Locate = Callable[[], str]
# One layer of variables: name -> (value, where it was written; None for -e extra vars).
Layer = dict[str, tuple[Any, Locate | None]]


def at(where: str) -> Locate:
    """A `Locate` for a place already known (an INI line, a script)."""
    return lambda: where


@dataclass(frozen=True)
class Inventory:
    """Every host and group of the inventory sources, and host selection by pattern."""

    source: str  # the -i values as given, comma-separated: names the inventory in messages
    hosts: tuple[Host, ...]  # inventory order
    groups: Mapping[str, Group]
    _layers: Mapping[str, tuple[Layer, ...]] = field(repr=False, compare=False)
    _ssh_config: SshConfig = field(repr=False, compare=False)

    def host(self, name: str) -> Host:
        """The host called `name`; InventoryError (with did-you-mean) if there is none."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise InventoryError(
            f"no host {name!r} in {self.source}", hint=self._suggest(name, self._host_names())
        )

    def select(
        self, pattern: str, limit: str | None = None, *, where: str | None = None
    ) -> list[Host]:
        """Hosts matching the playbook's `hosts:` pattern and, if given, `--limit`.

        `where` locates the `hosts:` pattern (FILE:LINE:COL) for error messages.
        """
        chosen = matched = self._match(pattern, "hosts pattern", where)
        if not matched:
            raise InventoryError(
                f"hosts pattern {pattern!r} matches no hosts in {self.source}",
                where=where,
                hint="check the pattern against the inventory's host and group names",
            )
        if limit is not None:
            if limit.strip().startswith("@"):
                raise UsageError(
                    f"--limit {limit!r}: reading hosts from a file is not supported",
                    hint="list the hosts or groups, separated by commas",
                )
            allowed = self._match(limit, "--limit", None)
            chosen = [name for name in chosen if name in allowed]
            if not chosen:
                raise InventoryError(
                    f"--limit {limit!r} leaves none of the hosts of {pattern!r}",
                    hint=f"{pattern!r} matches: {_listing(matched)}",
                )
        by_name = {host.name: host for host in self.hosts}
        return [by_name[name] for name in chosen]

    def with_extra_vars(self, extra: Mapping[str, Any]) -> Inventory:
        """This inventory with `-e` extra vars applied to every host, above all other vars.

        Connection fields are derived again, so `-e ansible_user=ops` takes effect.
        """
        if not extra:
            return self
        layer: Layer = {str(key): (value, None) for key, value in extra.items()}
        layers = {name: (*levels, layer) for name, levels in self._layers.items()}
        hosts = tuple(
            build_host(host.name, layers[host.name], host.groups, self._ssh_config)
            for host in self.hosts
        )
        return Inventory(self.source, hosts, self.groups, layers, self._ssh_config)

    def _host_names(self) -> list[str]:
        return [host.name for host in self.hosts]

    def _match(self, pattern: str, what: str, where: str | None) -> list[str]:
        """Host names matched by a whole pattern, in inventory order."""
        terms = _split_pattern(pattern)
        if not terms:
            raise InventoryError(
                f"empty {what} {pattern!r}",
                where=where,
                hint="name hosts or groups, e.g. 'redis' or 'redis_eu,!eu3'",
            )
        plain = [t for t in terms if t[0] not in "&!"] or ["all"]
        chosen: set[str] = set()
        for term in plain:
            chosen |= self._match_term(term, pattern, what, where)
        for term in terms:
            if term[0] == "&":
                chosen &= self._match_term(term[1:], pattern, what, where)
        for term in terms:
            if term[0] == "!":
                chosen -= self._match_term(term[1:], pattern, what, where)
        return [name for name in self._host_names() if name in chosen]

    def _match_term(self, term: str, pattern: str, what: str, where: str | None) -> set[str]:
        names = set(self._host_names())
        if term in ("all", "*"):
            return names
        if _GLOB_CHARS & set(term):
            found = {name for name in names if fnmatch.fnmatchcase(name, term)}
            for group in self.groups.values():
                if fnmatch.fnmatchcase(group.name, term):
                    found.update(group.hosts)
            return found
        if term in self.groups:
            return set(self.groups[term].hosts) | ({term} & names)
        if term in names:
            return {term}
        hint = self._suggest(term, [*self.groups, *self._host_names()])
        if term == "localhost":
            hint += "; to run on this machine add `localhost: {ansible_connection: local}`"
        context = f"{what} {pattern!r}: {term!r}" if term != pattern.strip() else f"{what} {term!r}"
        raise InventoryError(
            f"{context} is neither a host nor a group in {self.source}",
            where=where,
            hint=hint,
        )

    def _suggest(self, name: str, candidates: list[str]) -> str:
        close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
        if close:
            *others, last = [repr(c) for c in close]
            return f"did you mean {', '.join(others) + ' or ' if others else ''}{last}?"
        groups = sorted(g for g in self.groups if g not in ("all", "ungrouped"))
        return (
            f"groups are: {_listing(groups)}"
            if groups
            else "hosts are: " + _listing(self._host_names())
        )


def select_hosts(
    inventory: Inventory, pattern: str, limit: str | None = None, *, where: str | None = None
) -> list[Host]:
    """The playbook's `hosts:` pattern intersected with `--limit`; see `Inventory.select`."""
    return inventory.select(pattern, limit, where=where)


# --- one host's connection fields -----------------------------------------------------------


def build_host(
    name: str, layers: tuple[Layer, ...], groups: tuple[str, ...], config: SshConfig
) -> Host:
    """One host from its variable layers, lowest first: merged vars and connection fields."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update((key, value) for key, (value, _) in layer.items())
    fields: dict[str, Any] = {}
    for attr, names in CONNECTION_VARS.items():
        found = _pick(layers, names)
        if found is not None:
            var, value, locate = found
            fields[attr] = _convert(attr, var, value, name, locate)

    connection = fields.get("connection", "ssh")
    if connection == "ssh":
        fields = resolve_ssh(name, fields, config)
    return Host(
        name=name,
        address=fields.get("address", name),
        port=fields.get("port", 22),
        user=fields.get("user"),
        private_key_file=fields.get("private_key_file"),
        password=fields.get("password"),
        connection=connection,
        become=fields.get("become"),
        become_password=fields.get("become_password"),
        become_user=fields.get("become_user"),
        groups=groups,
        vars=merged,
        ssh=fields.get("ssh", SshOptions()),
    )


def _pick(
    layers: tuple[Layer, ...], names: tuple[str, ...]
) -> tuple[str, Any, Locate | None] | None:
    """The highest layer that sets one of `names` (non-null) decides; ansible_* first in it."""
    for layer in reversed(layers):
        for var in names:
            if var in layer and layer[var][0] is not None:
                value, locate = layer[var]
                return var, value, locate
    return None


def _convert(
    attr: str, var: str, value: object, host: str, locate: Callable[[], str] | None
) -> Any:
    """Validate one connection variable's value and turn it into the Host field's type.

    `locate` gives FILE:LINE:COL of the value, only needed on error; None means it came
    from `-e`.
    """

    def bad(expected: str, hint: str) -> InventoryError | UsageError:
        # The type, never the value: a mistyped ansible_become_password is still a password.
        message = f"{var} must be {expected}, got {_type_of(value)} (host {host!r})"
        if locate is None:
            return UsageError(f"-e {message}", hint=hint)
        return InventoryError(message, where=locate(), hint=hint)

    if isinstance(value, str) and ("{{" in value or "{%" in value):
        raise bad(
            "a plain value, not a template",
            "connection variables are used as written; put the value itself there",
        )
    if attr == "port":
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise bad("a port number 1-65535", "use the SSH port, e.g. 22")
        return value
    if attr == "become":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, str | int) else ""
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise bad("true or false", "write `ansible_become: true`")
    if attr == "connection":
        if isinstance(value, str) and value in _CONNECTIONS:
            return _CONNECTIONS[value]
        raise bad("ssh or local", "redmedic reaches hosts over ssh, or runs locally")
    if not isinstance(value, str) or not value:
        raise bad("text", "quote the value, e.g. '0123': unquoted YAML may change it")
    if attr == "private_key_file":
        return os.path.expanduser(value)
    return value


# --- helpers ----------------------------------------------------------------------------------


def _split_pattern(pattern: str) -> list[str]:
    """`a,b` or `a:b` (but an IPv6 address is one term) -> terms, blanks dropped."""
    text = pattern.strip()
    if "," in text:
        parts = text.split(",")
    else:
        try:
            ipaddress.IPv6Address(text)
            parts = [text]
        except ValueError:
            parts = text.split(":")
    return [part.strip() for part in parts if part.strip() and part.strip() not in "&!"]


def _type_of(value: object) -> str:
    """What a value is, without what it says (for errors about values that may be secret)."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text" if value else "empty text"
    return kind(value) if isinstance(value, list | dict) else type(value).__name__


def kind(value: object) -> str:
    """A value described for an error message ("a list", "the text ...")."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    return f"{type(value).__name__} {value!r}"


def _listing(names: Iterable[str], most: int = 10) -> str:
    items = list(names)
    shown = ", ".join(items[:most])
    return f"{shown}, ... ({len(items)} in all)" if len(items) > most else shown
