"""`group_vars/` and `host_vars/` directories: variables kept in files named after a group or host.

Ansible looks beside each inventory source (the directory itself for a directory source,
else the file's directory) and beside the playbook. For a name, the first of these that
exists is used, exactly as Ansible's `host_group_vars` plugin does:

    group_vars/NAME  group_vars/NAME.yml  group_vars/NAME.yaml  group_vars/NAME.json

and if that is a directory, every file in it (and in its subdirectories) with no extension
or one of `.yml`, `.yaml`, `.json`, in sorted order, skipping hidden files and `~` backups;
a later file's variables win. Each file is YAML (JSON is YAML), may be encrypted whole with
`ansible-vault`, must hold a mapping, and may be empty.
"""

from __future__ import annotations

import os
from functools import partial

from redmedic.errors import InventoryError
from redmedic.model.inventory.model import Layer, kind
from redmedic.model.inventory.yaml_source import load_document
from redmedic.model.vault import Vault

EXTENSIONS = (".yml", ".yaml", ".json")


class VarsFiles:
    """Finds and reads vars files, each once per run (many hosts share a group's files)."""

    def __init__(self, vault: Vault | None) -> None:
        self.vault = vault
        self._found: dict[tuple[str, str, str], tuple[Layer, ...]] = {}

    def layers(self, base: str, subdir: str, name: str) -> tuple[Layer, ...]:
        """The layers of `base/subdir/NAME...`, lowest first; () when there are none."""
        key = (base, subdir, name)
        if key not in self._found:
            directory = os.path.join(base, subdir)
            found: tuple[Layer, ...] = ()
            # Ansible skips names starting with "/" (chroot-style host names).
            if not name.startswith(os.sep) and os.path.isdir(directory):
                found = tuple(
                    layer
                    for path in find_vars_files(directory, name)
                    if (layer := self._read(path, f"{subdir}/{name}"))
                )
            self._found[key] = found
        return self._found[key]

    def _read(self, path: str, owner: str) -> Layer:
        doc = load_document(path, self.vault)
        if doc.data is None:
            return {}
        if not isinstance(doc.data, dict):
            raise InventoryError(
                f"{owner} must hold a mapping of variables, not {kind(doc.data)}",
                where=doc.where(),
                hint="write one `name: value` per line",
            )
        layer: Layer = {}
        for key, value in doc.data.items():
            if not isinstance(key, str) or not key:
                raise InventoryError(
                    f"variable name must be text, not {key!r}",
                    where=doc.where_key(key),
                    hint="use a name such as redis_port",
                )
            layer[key] = (value, partial(doc.where, key))
        return layer


def find_vars_files(directory: str, name: str) -> list[str]:
    """The files for `name` in one group_vars/host_vars directory, in the order they apply."""
    for ext in ("", *EXTENSIONS):
        path = os.path.join(directory, name + ext)
        if os.path.isdir(path):
            return _files_under(path)
        if os.path.exists(path):
            return [path]
    return []


def _files_under(directory: str) -> list[str]:
    found: list[str] = []
    for entry in sorted(os.listdir(directory)):
        if entry.startswith(".") or entry.endswith("~"):
            continue
        path = os.path.join(directory, entry)
        ext = os.path.splitext(entry)[1]
        if os.path.isdir(path) and not ext:
            found.extend(_files_under(path))
        elif os.path.isfile(path) and (not ext or ext in EXTENSIONS):
            found.append(path)
    return found
