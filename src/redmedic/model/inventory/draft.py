"""The inventory while its sources are read: one merged set of groups, hosts and their vars.

Why one draft for every source: Ansible reads all `-i` sources into a single inventory, so a
later source can add hosts to a group of an earlier one, name a group of an earlier one in
`[g:children]`, and override its group or host variables key by key. Each reader (YAML,
INI, script, host list) only calls the few methods here, in the order it meets things.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redmedic.errors import InventoryError
from redmedic.model.inventory.model import Group, Layer, Locate

PRIORITY_VAR = "ansible_group_priority"


@dataclass
class GroupDraft:
    """A group as written so far: its own vars and its direct hosts and children."""

    name: str
    vars: Layer = field(default_factory=dict)
    hosts: dict[str, None] = field(default_factory=dict)  # an ordered set
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    priority: int = 1  # ansible_group_priority: orders groups of the same depth


class Draft:
    """Groups and hosts of every source read so far, in the order they were first met."""

    def __init__(self) -> None:
        # Both exist before any source, as in Ansible (`[ungrouped:vars]` needs no header).
        self.groups = {name: GroupDraft(name) for name in ("all", "ungrouped")}
        self.hosts: dict[str, Layer] = {}  # host -> its own vars; insertion = inventory order

    def group(self, name: str) -> GroupDraft:
        """The group called `name`, created if new."""
        return self.groups.setdefault(name, GroupDraft(name))

    def link(self, parent: str, child: str, where: Locate) -> None:
        """Make `child` a child group of `parent` (both created if new)."""
        upper, lower = self.group(parent), self.group(child)
        if child == "all":
            raise InventoryError(
                "group 'all' cannot be a child of another group",
                where=where(),
                hint="every host is in 'all' already; rename the group",
            )
        if parent in lower.parents:
            return
        if parent == child or child in self.ancestors(parent):
            raise InventoryError(
                f"group {child!r} is inside itself (via {parent!r})",
                where=where(),
                hint="remove the loop from the children lists",
            )
        lower.parents.append(parent)
        upper.children.append(child)

    def ancestors(self, name: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.groups[name].parents)
        while todo:
            group = todo.pop()
            if group not in seen:
                seen.add(group)
                todo.extend(self.groups[group].parents)
        return seen

    def add_host(self, name: str, group: str | None, port: int | None, where: Locate) -> Layer:
        """Add a host (to `group`, if given) and return its vars layer.

        As in Ansible, a `host:port` port is set only where the host is first met; its
        variables written later (`ansible_port=...`) still replace it.
        """
        if not name:
            raise InventoryError(
                "empty host name", where=where(), hint="write a host name or address"
            )
        layer = self.hosts.get(name)
        if layer is None:
            layer = self.hosts[name] = {}
            if port is not None:
                layer["ansible_port"] = (port, where)
        if group is not None:
            self.group(group).hosts[name] = None
        return layer

    def set_group_var(self, group: str, key: str, value: Any, where: Locate) -> None:
        """One group variable; `ansible_group_priority` sets the priority instead, as in Ansible."""
        draft = self.group(group)
        if key != PRIORITY_VAR:
            draft.vars[key] = (value, where)
            return
        try:
            draft.priority = int(value)
        except (TypeError, ValueError):
            raise InventoryError(
                f"{PRIORITY_VAR} of group {group!r} must be a whole number",
                where=where(),
                hint="write e.g. `ansible_group_priority: 10` (higher wins, default 1)",
            ) from None

    # --- the finished shape ---------------------------------------------------------------

    def finish(self) -> tuple[dict[str, Group], dict[str, list[str]]]:
        """Every group with its depth and all hosts, and each host's groups in precedence order.

        Groups that no source put under another become children of `all`; a host in no group
        but `all` is in `ungrouped`. A host's groups (without `all`) are ordered as Ansible
        merges their variables: by depth (parents first), then `ansible_group_priority`, then
        name, so the later one wins.
        """
        drafts = self.groups
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

        member_of: dict[str, set[str]] = {name: set() for name in self.hosts}
        for draft in drafts.values():
            above = {draft.name, *self.ancestors(draft.name)}
            for host in draft.hosts:
                member_of[host] |= above
        for in_groups in member_of.values():
            in_groups.discard("all")
            if in_groups - {"ungrouped"}:
                in_groups.discard("ungrouped")  # as Ansible: a grouped host is not ungrouped
            else:
                in_groups.add("ungrouped")
        members: dict[str, set[str]] = {name: set() for name in drafts}
        for host, in_groups in member_of.items():
            for group in ("all", *in_groups):
                members[group].add(host)

        groups = {
            name: Group(
                name=name,
                hosts=tuple(h for h in self.hosts if h in members[name]),
                children=tuple(draft.children),
                parents=tuple(draft.parents),
                depth=depth_of(name),
                vars={key: value for key, (value, _) in draft.vars.items()},
            )
            for name, draft in drafts.items()
        }
        order = {
            host: sorted(in_groups, key=lambda g: (depth_of(g), drafts[g].priority, g))
            for host, in_groups in member_of.items()
        }
        return groups, order
