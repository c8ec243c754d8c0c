"""Ansible's INI inventory format, read into the draft exactly as Ansible's `ini` plugin does.

    cache1                          # before any section: ungrouped
    [redis]
    r[01:03].eu ansible_port=2222   # ranges; inline host vars
    r9:2200 maxmemory='2gb'         # host:port sets ansible_port
    [redis:vars]
    ansible_become=True
    [prod:children]                 # groups may be named before they are declared
    redis

Lines starting with `#` or `;` are comments; so is a `#` after a section header, a group
name or a host line's words (shell rules: quotes keep spaces and `#`). In a `[g:vars]`
line everything after the first `=` is the value, comments included.

Values, inline or in `[g:vars]`: Ansible passes each one to Python's `ast.literal_eval`,
so `22` is a number, `True` a boolean, `None` null and `[1, 2]` a list; whatever is no
Python literal (`yes`, `true`, `FALSE`, `2gb`) stays text. On a host line shell quoting
comes first, so `x='22'` is still the number 22: the text "22" is `x="'22'"`.
(Ansible's documentation says `[g:vars]` values are strings; its code, which is what
`ansible-inventory` shows, evaluates them the same way as inline ones. We follow the code.)

A line Ansible rejects is an InventoryError naming FILE:LINE and what to write instead.
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from dataclasses import dataclass, field
from typing import Any

from redmedic.errors import InventoryError
from redmedic.model.inventory import hostnames
from redmedic.model.inventory.draft import Draft
from redmedic.model.inventory.model import at

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")
_STATES = ("hosts", "children", "vars")
_PLAIN = frozenset("'\"\\#")  # without these, shell-style splitting is plain splitting
_WORD = re.compile(r"[^ \t\r\n]+")  # shlex's whitespace


@dataclass
class _Pending:
    """A group named before it is declared: in `[g:vars]`, or as a child in `[p:children]`."""

    line: int
    state: str
    parents: list[str] = field(default_factory=list)


def read_ini_inventory(text: str, source: str, draft: Draft) -> None:
    """Add the groups, hosts and variables of one INI inventory's `text` to `draft`."""
    group, state = "ungrouped", "hosts"
    pending: dict[str, _Pending] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        where = f"{source}:{number}"
        locate = at(where)
        section = _SECTION.match(line)
        if section:
            group, state = section.group(1), section.group(2) or "hosts"
            if state not in _STATES:
                raise InventoryError(
                    f"section [{group}:{state}] has an unknown type {state!r}",
                    where=where,
                    hint=f"write [{group}], [{group}:children] or [{group}:vars]",
                )
            if group not in draft.groups and state == "vars":
                pending.setdefault(group, _Pending(number, state))
            draft.group(group)
            if group in pending and state != "vars":
                _declare(group, pending, draft, source)
            continue
        if line.startswith("[") and line.endswith("]"):
            raise InventoryError(
                f"invalid section header {line[:60]!r}",
                where=where,
                hint="write [group], [group:children] or [group:vars], with no spaces",
            )
        if state == "hosts":
            _read_host_line(line, group, draft, where)
        elif state == "vars":
            key, equals, value = line.partition("=")
            if not equals or not key.strip():
                raise InventoryError(
                    f"a line in [{group}:vars] must be NAME=VALUE",
                    where=where,
                    hint="write one variable per line, e.g. `redis_port=6379`",
                )
            draft.set_group_var(group, key.strip(), ini_value(value.strip()), locate)
        else:
            match = _GROUP_NAME.match(line)
            if not match:
                raise InventoryError(
                    f"a line in [{group}:children] must be one group name",
                    where=where,
                    hint="list one child group per line; hosts go in a [group] section",
                )
            child = match.group(1)
            if child in draft.groups:
                draft.link(group, child, locate)
            else:
                pending.setdefault(child, _Pending(number, state)).parents.append(group)
    for name, waiting in pending.items():
        where = f"{source}:{waiting.line}"
        if waiting.state == "vars":
            raise InventoryError(
                f"[{name}:vars] is for a group that is never declared",
                where=where,
                hint=f"add a [{name}] section with its hosts, or fix the group's name",
            )
        raise InventoryError(
            f"[{waiting.parents[-1]}:children] names the group {name!r}, which is never declared",
            where=where,
            hint=f"add a [{name}] section with its hosts, or fix the group's name",
        )


def _declare(group: str, pending: dict[str, _Pending], draft: Draft, source: str) -> None:
    """A group waited for in `[p:children]` is declared: link it, and its waiting parents."""
    waiting = pending.pop(group)
    if waiting.state != "children":
        return
    for parent in waiting.parents:
        draft.link(parent, group, at(f"{source}:{waiting.line}"))
        if parent in pending and pending[parent].state == "children":
            _declare(parent, pending, draft, source)


def _read_host_line(line: str, group: str, draft: Draft, where: str) -> None:
    """`NAME[:PORT] [KEY=VALUE ...]` with shell quoting: the host(s) and their inline vars."""
    try:
        plain = _PLAIN.isdisjoint(line)
        words = _WORD.findall(line) if plain else shlex.split(line, comments=True)
    except ValueError as exc:
        raise InventoryError(
            f"cannot split the host line: {exc}",
            where=where,
            hint="close the quote; quote a value with spaces as key='a b'",
        ) from None
    if not words:
        raise InventoryError("empty host name", where=where, hint="write a host name first")
    pattern = words[0]
    names, port = hostnames.expand(pattern, at(where))
    if pattern.endswith(":") and port is None:
        raise InventoryError(
            f"host {pattern!r} ends in ':'",
            where=where,
            hint="':' introduces a port: write host:2222, or drop the ':'",
        )
    if "---" in names:
        raise InventoryError(
            "'---' is no host name: this looks like a YAML file",
            where=where,
            hint="name a YAML inventory .yaml or .yml",
        )
    variables: dict[str, Any] = {}
    for position, word in enumerate(words[1:], start=2):
        key, equals, value = word.partition("=")
        if not equals or not key:
            raise InventoryError(
                f"word {position} of the host line is not NAME=VALUE",
                where=where,
                hint="write host variables as name=value after the host, "
                "quoting values with spaces: name='a b'",
            )
        variables[key] = ini_value(value)
    for name in names:
        layer = draft.add_host(name, group, port, at(where))
        for key, value in variables.items():
            layer[key] = (value, at(where))


def ini_value(text: str) -> Any:
    """An INI value as Ansible types it: a Python literal if it is one, else the text."""
    if text.isidentifier() and text not in ("True", "False", "None"):
        return text  # the common case, and never a literal: skip the parser
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return _plain(value)


def _plain(value: Any) -> Any:
    """What Ansible keeps of a literal: lists for tuples and sets, text for the exotic."""
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if value is Ellipsis or isinstance(value, complex):
        return "..." if value is Ellipsis else str(value)
    return value
