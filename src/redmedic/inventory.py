"""Hosts and the Ansible-style YAML inventory they come from.

This module owns reading an inventory file into `Host` values, merging variables by
precedence, filling connection details from `~/.ssh/config`, and selecting hosts with
Ansible host patterns (`hosts:` of a playbook intersected with `--limit`).

Inventory format (what Ansible's YAML inventory accepts)::

    all:
      vars: {ansible_user: admin}
      hosts:
        cache1:                          # null: no host variables
      children:
        redis:
          vars: {ansible_become: true}
          children:
            redis_eu:
              hosts:
                eu[1:3].example.com:     # ranges: eu1, eu2, eu3 (also [01:10], [a:f], [1:9:2])
                  ansible_port: 2222

The top level may also be a mapping of groups without `all:`; they become children of
`all`. Groups nest to any depth, a host may be in several groups, and a group or host
named twice is merged. Every host is in `all`; a host in no other group is in `ungrouped`.

Connection variables (each also accepted without the `ansible_` prefix, e.g. `port:`):

    ansible_host (ansible_ssh_host)           -> Host.address   (default: the host's name)
    ansible_port (ansible_ssh_port)           -> Host.port      (default 22)
    ansible_user (ansible_ssh_user)           -> Host.user
    ansible_ssh_private_key_file (ansible_private_key_file) -> Host.private_key_file
    ansible_password (ansible_ssh_pass)       -> Host.password
    ansible_become                            -> Host.become
    ansible_become_password (ansible_become_pass) -> Host.become_password
    ansible_become_user                       -> Host.become_user
    ansible_connection: ssh | local           -> Host.connection (paramiko, smart = ssh)
    ansible_ssh_common_args, ansible_ssh_extra_args -> read by sshconfig.resolve

Connection variables are used as written: a Jinja `{{ ... }}` in one is an error. Every
variable, these included, also lands in `Host.vars` exactly as written, for templating.

Variable precedence, lowest to highest (a higher one replaces a lower one's value whole;
dicts are not merged, as in Ansible's default `hash_behaviour=replace`):

    1. `all` group vars
    2. other group vars, by group depth: a parent group before its children. Depth is the
       longest path from `all` (a top-level group is 1, its child 2, ...). Groups at the
       same depth are applied in alphabetical order of name, so the later name wins.
    3. host vars (when a host is listed more than once, its later entry wins)
    4. playbook vars, then `-e` extra vars: handled outside this module; `-e` is the
       highest of all (`Inventory.with_extra_vars` re-applies them to connection fields).

For a connection field, the highest level that sets any of its names decides; within one
level `ansible_*` beats the short name (`ansible_user` over `user`), and a null value
counts as not set.

`~/.ssh/config` (any path, or none): each ssh host's fields are completed by
`sshconfig.resolve`, which says how. Local hosts are not looked up.

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
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from redmedic.errors import InventoryError, UsageError
from redmedic.sshconfig import SshConfig, SshOptions, load_ssh_config
from redmedic.sshconfig import resolve as resolve_ssh
from redmedic.vault import Vault
from redmedic.yamlsource import YamlDoc, load_yaml


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
    become: bool = False
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
_GROUP_KEYS = ("hosts", "children", "vars")
_GLOB_CHARS = frozenset("*?[")
_RANGE = re.compile(r"^(.*?)\[([0-9]+|[a-zA-Z]):([0-9]+|[a-zA-Z])(?::([0-9]+))?\](.*)$")

YamlPath = tuple[str | int, ...]
# One level of variables: name -> (value, YAML path it came from; None for -e extra vars).
_Layer = dict[str, tuple[Any, YamlPath | None]]


@dataclass(frozen=True)
class Inventory:
    """Every host and group of one inventory file, and host selection by pattern."""

    source: str
    hosts: tuple[Host, ...]  # inventory order
    groups: Mapping[str, Group]
    _doc: YamlDoc = field(repr=False, compare=False)
    _layers: Mapping[str, tuple[_Layer, ...]] = field(repr=False, compare=False)
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
        layer: _Layer = {str(key): (value, None) for key, value in extra.items()}
        hosts = tuple(
            _build_host(
                host.name,
                (*self._layers[host.name], layer),
                host.groups,
                self._doc,
                self._ssh_config,
            )
            for host in self.hosts
        )
        layers = {name: (*levels, layer) for name, levels in self._layers.items()}
        return Inventory(
            self.source,
            hosts,
            self.groups,
            self._doc,
            layers,
            self._ssh_config,
        )

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


def load_inventory(
    path: str | os.PathLike[str],
    *,
    ssh_config: str | None = "~/.ssh/config",
    defaults: Mapping[str, Any] | None = None,
    vault: Vault | None = None,
) -> Inventory:
    """Read an Ansible-style YAML inventory; every problem is an InventoryError with FILE:LINE.

    `ssh_config` is the OpenSSH client config to merge (a missing file is fine); None skips it.
    `defaults` are variables below every inventory level (the command line's `-u`,
    `--private-key`, `-k`, `-K`, `--become-user`, as Ansible ranks them: any inventory
    variable beats them). `vault` opens Ansible Vault data (refused without it).
    """
    source = os.fspath(path)
    if not os.path.exists(source):
        raise InventoryError(
            "inventory file not found",
            where=source,
            hint="pass -i FILE with an Ansible-style YAML inventory (see inventory.example.yaml)",
        )
    try:
        doc = load_yaml(source, error=InventoryError, vault=vault)
    except InventoryError as exc:
        ini = _ini_hint(source)
        if ini is None:
            raise
        raise InventoryError(exc.message, where=exc.where, hint=ini) from None
    config = load_ssh_config(ssh_config)
    reader = _Reader(doc)
    reader.read_root()
    return reader.build(config, {str(k): (v, None) for k, v in (defaults or {}).items()})


# --- reading the YAML ---------------------------------------------------------------------


@dataclass
class _GroupDraft:
    name: str
    vars: _Layer = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)


class _Reader:
    """Walks the inventory document once, collecting groups, hosts and their variables."""

    def __init__(self, doc: YamlDoc) -> None:
        self.doc = doc
        self.groups: dict[str, _GroupDraft] = {"all": _GroupDraft("all")}
        self.host_vars: dict[str, _Layer] = {}  # insertion order = inventory order

    def fail(self, message: str, path: YamlPath, hint: str, *, key: bool = False) -> InventoryError:
        where = self.doc.where_key(*path) if key else self.doc.where(*path)
        return InventoryError(message, where=where, hint=hint)

    def read_root(self) -> None:
        data = self.doc.data
        if data is None:
            raise InventoryError(
                "the inventory is empty",
                where=self.doc.source,
                hint="list hosts under `all:` → `hosts:` (see inventory.example.yaml)",
            )
        if not isinstance(data, dict):
            raise self.fail(
                f"an inventory must be a mapping of groups, not {_kind(data)}",
                (),
                _ini_hint(self.doc.source)
                or "start with `all:` and put hosts under `hosts:` (see inventory.example.yaml)",
            )
        for name, body in data.items():
            if name in _GROUP_KEYS:
                raise self.fail(
                    f"top-level {name!r} must belong to a group",
                    (name,),
                    f"put `{name}:` under `all:`, indented",
                    key=True,
                )
            self.read_group(name, body, (name,), parent=None if name == "all" else "all")

    def read_group(self, name: object, body: object, path: YamlPath, parent: str | None) -> None:
        if not isinstance(name, str) or not name:
            raise self.fail(
                f"group name must be text, not {name!r}", path, "quote the name", key=True
            )
        group = self.groups.setdefault(name, _GroupDraft(name))
        if parent is not None:
            self.link(parent, group, path)
        if body is None:
            return
        if not isinstance(body, dict):
            raise self.fail(
                f"group {name!r} must be a mapping with hosts:, children: or vars:, "
                f"not {_kind(body)}",
                path,
                "write the group's hosts under `hosts:`, e.g. `redis: {hosts: {r1: }}`",
            )
        for key, value in body.items():
            if key == "hosts":
                self.read_hosts(group, value, (*path, "hosts"))
            elif key == "children":
                self.read_children(group, value, (*path, "children"))
            elif key == "vars":
                self.read_vars(group.vars, value, (*path, "vars"), f"group {name!r}")
            else:
                close = difflib.get_close_matches(str(key), _GROUP_KEYS, n=1)
                hint = f"did you mean {close[0]!r}?" if close else ""
                raise self.fail(
                    f"unknown key {key!r} in group {name!r}",
                    (*path, key),
                    f"{hint} a group holds only hosts:, children: and vars:".lstrip(),
                    key=True,
                )

    def link(self, parent: str, child: _GroupDraft, path: YamlPath) -> None:
        if child.name == "all":
            raise self.fail(
                "group 'all' cannot be a child of another group",
                path,
                "every host is in 'all' already; rename the group",
                key=True,
            )
        if parent in child.parents:
            return
        if parent == child.name or child.name in self.ancestors(parent):
            raise self.fail(
                f"group {child.name!r} is inside itself (via {parent!r})",
                path,
                "remove the loop from the children: lists",
                key=True,
            )
        child.parents.append(parent)
        self.groups[parent].children.append(child.name)

    def ancestors(self, name: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.groups[name].parents)
        while todo:
            group = todo.pop()
            if group not in seen:
                seen.add(group)
                todo.extend(self.groups[group].parents)
        return seen

    def read_children(self, group: _GroupDraft, value: object, path: YamlPath) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            raise self.fail(
                f"children of group {group.name!r} must be a mapping of group names, "
                f"not {_kind(value)}",
                path,
                "write each child group as a key: `children: {redis_eu: , redis_us: }`",
            )
        for name, body in value.items():
            self.read_group(name, body, (*path, name), parent=group.name)

    def read_hosts(self, group: _GroupDraft, value: object, path: YamlPath) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            raise self.fail(
                f"hosts of group {group.name!r} must be a mapping of host names, "
                f"not {_kind(value)}",
                path,
                "write each host as a key with optional vars: `hosts: {r1: , r2: {port: 2222}}`",
            )
        for key, host_vars in value.items():
            host_path = (*path, key)
            if not isinstance(key, str) or not key:
                raise self.fail(
                    f"host name must be text, not {key!r}", host_path, "quote it", key=True
                )
            names = self.expand(key, host_path)
            if host_vars is not None and not isinstance(host_vars, dict):
                example = f"{key}: {{ansible_host: {host_vars}}}"
                raise self.fail(
                    f"host {key!r} must be followed by a mapping of variables or nothing, "
                    f"not {_kind(host_vars)}",
                    host_path,
                    f"write `{example}`" if isinstance(host_vars, str) else f"write `{key}:`",
                )
            for name in names:
                layer = self.host_vars.setdefault(name, {})
                self.read_vars(layer, host_vars, host_path, f"host {name!r}")
                if name not in group.hosts:
                    group.hosts.append(name)

    def read_vars(self, into: _Layer, value: object, path: YamlPath, owner: str) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            raise self.fail(
                f"vars of {owner} must be a mapping, not {_kind(value)}",
                path,
                "write `vars:` then one `name: value` per line, indented",
            )
        for key, var in value.items():
            if not isinstance(key, str) or not key:
                raise self.fail(
                    f"variable name must be text, not {key!r} ({owner})",
                    (*path, key),
                    "use a name such as redis_port",
                    key=True,
                )
            into[key] = (var, (*path, key))

    def expand(self, name: str, path: YamlPath) -> list[str]:
        """Ansible host ranges: `r[1:3]` -> r1 r2 r3, `r[01:10:3]`, `node-[a:c]`."""
        match = _RANGE.match(name)
        if not match:
            return [name]
        head, start, end, step, tail = match.groups()
        stride = int(step) if step else 1
        items: list[str] = []
        if stride >= 1 and start.isdigit() and end.isdigit():
            width = len(start) if start.startswith("0") else 0
            items = [str(i).zfill(width) for i in range(int(start), int(end) + 1, stride)]
        elif stride >= 1 and start.isalpha() and end.isalpha():
            items = [chr(i) for i in range(ord(start), ord(end) + 1, stride)]
        if not items:
            raise self.fail(
                f"bad host range in {name!r}",
                path,
                "write [FIRST:LAST] or [FIRST:LAST:STEP] with FIRST <= LAST, "
                "both numbers or both single letters",
                key=True,
            )
        return [full for item in items for full in self.expand(f"{head}{item}{tail}", path)]

    # --- from drafts to values -----------------------------------------------------------

    def build(self, config: SshConfig, defaults: _Layer) -> Inventory:
        drafts = self.groups
        drafts.setdefault("ungrouped", _GroupDraft("ungrouped"))
        for draft in drafts.values():
            if draft.name != "all" and not draft.parents:
                draft.parents.append("all")
                drafts["all"].children.append(draft.name)
        depth: dict[str, int] = {}

        def depth_of(name: str) -> int:
            if name not in depth:
                parents = drafts[name].parents
                depth[name] = 1 + max(depth_of(p) for p in parents) if parents else 0
            return depth[name]

        order = list(self.host_vars)
        member_of: dict[str, set[str]] = {name: {"all"} for name in order}
        for draft in drafts.values():
            above = {draft.name, *self.ancestors(draft.name)}
            for host in draft.hosts:
                member_of[host] |= above
        members: dict[str, set[str]] = {name: set() for name in drafts}
        for host, in_groups in member_of.items():
            if in_groups == {"all"}:
                in_groups.add("ungrouped")
            for group in in_groups:
                members[group].add(host)

        groups: dict[str, Group] = {}
        for name, draft in drafts.items():
            groups[name] = Group(
                name=name,
                hosts=tuple(h for h in order if h in members[name]),
                children=tuple(draft.children),
                parents=tuple(draft.parents),
                depth=depth_of(name),
                vars={key: value for key, (value, _) in draft.vars.items()},
            )

        layers: dict[str, tuple[_Layer, ...]] = {}
        hosts = []
        for name in order:
            by_precedence = sorted(member_of[name], key=lambda g: (depth_of(g), g))
            layers[name] = (
                defaults,
                *(drafts[g].vars for g in by_precedence),
                self.host_vars[name],
            )
            visible = tuple(g for g in by_precedence if g != "all")
            hosts.append(_build_host(name, layers[name], tuple(sorted(visible)), self.doc, config))
        return Inventory(self.doc.source, tuple(hosts), groups, self.doc, layers, config)


# --- one host's connection fields -----------------------------------------------------------


def _build_host(
    name: str,
    layers: tuple[_Layer, ...],
    groups: tuple[str, ...],
    doc: YamlDoc,
    config: SshConfig,
) -> Host:
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update((key, value) for key, (value, _) in layer.items())
    fields: dict[str, Any] = {}
    for attr, names in CONNECTION_VARS.items():
        found = _pick(layers, names)
        if found is not None:
            var, value, path = found
            locate = partial(doc.where, *path) if path is not None else None
            fields[attr] = _convert(attr, var, value, name, locate)

    connection = fields.get("connection", "ssh")
    if connection == "ssh":
        fields = resolve_ssh(
            name,
            fields,
            config,
            lambda port: _convert("port", "Port", port, name, lambda: str(config.path)),
        )
    return Host(
        name=name,
        address=fields.get("address", name),
        port=fields.get("port", 22),
        user=fields.get("user"),
        private_key_file=fields.get("private_key_file"),
        password=fields.get("password"),
        connection=connection,
        become=fields.get("become", False),
        become_password=fields.get("become_password"),
        become_user=fields.get("become_user"),
        groups=groups,
        vars=merged,
        ssh=fields.get("ssh", SshOptions()),
    )


def _pick(
    layers: tuple[_Layer, ...], names: tuple[str, ...]
) -> tuple[str, Any, YamlPath | None] | None:
    """The highest level that sets one of `names` (non-null) decides; ansible_* first in it."""
    for layer in reversed(layers):
        for var in names:
            if var in layer and layer[var][0] is not None:
                value, path = layer[var]
                return var, value, path
    return None


def _convert(
    attr: str, var: str, value: object, host: str, locate: Callable[[], str] | None
) -> Any:
    """Validate one connection variable's value and turn it into the Host field's type.

    `locate` gives FILE:LINE:COL of the value, only needed on error; None means it came
    from `-e`.
    """

    def bad(expected: str, hint: str) -> InventoryError | UsageError:
        message = f"{var} must be {expected}, got {value!r} (host {host!r})"
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


def _kind(value: object) -> str:
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


def _ini_hint(source: str) -> str | None:
    """How to convert an Ansible INI inventory, if `source` looks like one."""
    try:
        with open(source, encoding="utf-8", errors="replace") as fh:
            lines = [ln.strip() for ln in fh if ln.strip() and not ln.lstrip().startswith("#")]
    except OSError:  # pragma: no cover - we just read it
        lines = []
    if lines and (lines[0].startswith("[") or "=" in lines[0]):
        return (
            "this looks like an INI inventory; redmedic reads YAML: "
            f"convert it with `ansible-inventory -i {source} --list --yaml`"
        )
    return None
