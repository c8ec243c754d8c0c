"""Ansible's YAML (and JSON) inventory format, read into the draft.

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
                cache9:2200:             # host:port sets ansible_port

The top level may also be a mapping of groups without `all:`; they become children of
`all`. Groups nest to any depth, a host may be in several groups, and a group or host
named twice is merged (its later variables win). A JSON file is read the same way, as
Ansible does (script-style JSON with host lists comes from an executable script).

Stricter than Ansible, which warns and skips: an unknown key in a group, or a list where a
mapping belongs, is an error with FILE:LINE:COL, never silently dropped.
"""

from __future__ import annotations

import difflib
import json
from functools import partial

from redmedic.errors import InventoryError
from redmedic.model.inventory import hostnames
from redmedic.model.inventory.draft import Draft
from redmedic.model.inventory.model import kind
from redmedic.model.vault import Vault
from redmedic.model.yamlsource import YamlDoc, load_yaml

_GROUP_KEYS = ("hosts", "children", "vars")
YamlPath = tuple[str | int, ...]


def load_document(path: str, vault: Vault | None) -> YamlDoc:
    """A YAML file, or a JSON file YAML cannot read (tab-indented): Ansible reads both.

    JSON read this way has no line numbers; errors in it name the file only.
    """
    try:
        return load_yaml(path, error=InventoryError, vault=vault)
    except InventoryError as exc:
        try:
            with open(path, encoding="utf-8-sig") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            raise exc from None
        return YamlDoc(path, data, None)


def is_plugin_config(doc: YamlDoc) -> bool:
    """An inventory plugin's configuration (`plugin: aws_ec2`), not an inventory."""
    return isinstance(doc.data, dict) and bool(doc.data.get("plugin"))


def read_yaml_inventory(doc: YamlDoc, draft: Draft) -> None:
    """Add the groups, hosts and variables of one parsed YAML inventory to `draft`."""
    _Reader(doc, draft).read_root()


class _Reader:
    """Walks one inventory document once, adding what it finds to the draft."""

    def __init__(self, doc: YamlDoc, draft: Draft) -> None:
        self.doc = doc
        self.draft = draft

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
        if is_plugin_config(self.doc):
            raise self.fail(
                "this is an inventory plugin's configuration, which redmedic cannot run",
                ("plugin",),
                f"export the hosts with `ansible-inventory -i {self.doc.source} --list --yaml` "
                "and pass that file",
            )
        if not isinstance(data, dict):
            raise self.fail(
                f"an inventory must be a mapping of groups, not {kind(data)}",
                (),
                "start with `all:` and put hosts under `hosts:` (see inventory.example.yaml)",
            )
        for name, body in data.items():
            if name in _GROUP_KEYS:
                raise self.fail(
                    f"top-level {name!r} must belong to a group",
                    (name,),
                    f"put `{name}:` under `all:`, indented",
                    key=True,
                )
            self.read_group(name, body, (name,), parent=None)

    def read_group(self, name: object, body: object, path: YamlPath, parent: str | None) -> None:
        if not isinstance(name, str) or not name:
            raise self.fail(
                f"group name must be text, not {name!r}", path, "quote the name", key=True
            )
        self.draft.group(name)
        if parent is not None:
            self.draft.link(parent, name, partial(self.doc.where_key, *path))
        if body is None:
            return
        if not isinstance(body, dict):
            raise self.fail(
                f"group {name!r} must be a mapping with hosts:, children: or vars:, "
                f"not {kind(body)}",
                path,
                "write the group's hosts under `hosts:`, e.g. `redis: {hosts: {r1: }}`",
            )
        for key, value in body.items():
            if key == "hosts":
                self.read_hosts(name, value, (*path, "hosts"))
            elif key == "children":
                self.read_children(name, value, (*path, "children"))
            elif key == "vars":
                self.read_vars(value, (*path, "vars"), f"group {name!r}", group=name)
            else:
                close = difflib.get_close_matches(str(key), _GROUP_KEYS, n=1)
                hint = f"did you mean {close[0]!r}?" if close else ""
                raise self.fail(
                    f"unknown key {key!r} in group {name!r}",
                    (*path, key),
                    f"{hint} a group holds only hosts:, children: and vars:".lstrip(),
                    key=True,
                )

    def read_children(self, group: str, value: object, path: YamlPath) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            raise self.fail(
                f"children of group {group!r} must be a mapping of group names, not {kind(value)}",
                path,
                "write each child group as a key: `children: {redis_eu: , redis_us: }`",
            )
        for name, body in value.items():
            self.read_group(name, body, (*path, name), parent=group)

    def read_hosts(self, group: str, value: object, path: YamlPath) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            raise self.fail(
                f"hosts of group {group!r} must be a mapping of host names, not {kind(value)}",
                path,
                "write each host as a key with optional vars: `hosts: {r1: , r2: {port: 2222}}`",
            )
        for key, host_vars in value.items():
            host_path = (*path, key)
            if not isinstance(key, str) or not key:
                raise self.fail(
                    f"host name must be text, not {key!r}", host_path, "quote it", key=True
                )
            locate = partial(self.doc.where_key, *host_path)
            names, port = hostnames.expand(key, locate)
            if host_vars is not None and not isinstance(host_vars, dict):
                example = f"{key}: {{ansible_host: {host_vars}}}"
                raise self.fail(
                    f"host {key!r} must be followed by a mapping of variables or nothing, "
                    f"not {kind(host_vars)}",
                    host_path,
                    f"write `{example}`" if isinstance(host_vars, str) else f"write `{key}:`",
                )
            for name in names:
                self.draft.add_host(name, group, port, locate)
                self.read_vars(host_vars, host_path, f"host {name!r}", host=name)

    def read_vars(
        self,
        value: object,
        path: YamlPath,
        owner: str,
        *,
        group: str | None = None,
        host: str | None = None,
    ) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            raise self.fail(
                f"vars of {owner} must be a mapping, not {kind(value)}",
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
            locate = partial(self.doc.where, *path, key)
            if group is not None:
                self.draft.set_group_var(group, key, var, locate)
            elif host is not None:
                self.draft.hosts[host][key] = (var, locate)
