"""Which variable wins: one host's variable layers, lowest first, in Ansible's order.

Ansible's "Understanding variable precedence" list, for what an inventory provides (later
wins; a value replaces a lower one whole, dicts are not merged, as with Ansible's default
`hash_behaviour=replace`):

    0. command-line connection options (`-u`, `--private-key`, `-k`, ...): `defaults`
    1. inventory group vars (file or script): `all` first, then the host's other groups
    2. inventory `group_vars/all`     (each -i source's directory, in -i order)
    3. playbook `group_vars/all`
    4. inventory `group_vars/GROUP`   (per source: the host's groups in order)
    5. playbook `group_vars/GROUP`
    6. inventory host vars (file or script)
    7. inventory `host_vars/HOST`
    8. playbook `host_vars/HOST`
    (9. `-e` extra vars: `Inventory.with_extra_vars`, above everything)

A host's groups are ordered by depth (a parent before its children), then
`ansible_group_priority` (default 1; higher wins), then name (later name wins). Where one
source names the same group or host as another, the later source's variables win key by
key (they are already merged in the draft). Unlike Ansible, a playbook's own `vars:` are
defaults *below* all of this (see docs/inventory.md).
"""

from __future__ import annotations

from redmedic.model.inventory.draft import Draft
from redmedic.model.inventory.group_vars import VarsFiles
from redmedic.model.inventory.model import Layer


def host_layers(
    draft: Draft,
    host: str,
    groups: list[str],
    *,
    source_dirs: list[str],
    playbook_dir: str | None,
    files: VarsFiles,
    defaults: Layer,
) -> tuple[Layer, ...]:
    """The layers of `host` (in `groups`, precedence-ordered, without `all`), lowest first."""
    play = [playbook_dir] if playbook_dir is not None else []

    def from_files(bases: list[str], subdir: str, names: list[str]) -> list[Layer]:
        # Outer loop over directories, inner over names: Ansible merges per source.
        return [
            layer for base in bases for name in names for layer in files.layers(base, subdir, name)
        ]

    return (
        defaults,
        draft.groups["all"].vars,
        *(draft.groups[group].vars for group in groups),
        *from_files(source_dirs, "group_vars", ["all"]),
        *from_files(play, "group_vars", ["all"]),
        *from_files(source_dirs, "group_vars", groups),
        *from_files(play, "group_vars", groups),
        draft.hosts[host],
        *from_files(source_dirs, "host_vars", [host]),
        *from_files(play, "host_vars", [host]),
    )
