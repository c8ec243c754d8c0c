"""What an `-i` value is, and reading each one into the draft in Ansible's order.

- `h1,h2:2222,` (a comma, and no such file): a list of ungrouped hosts, `host:port` allowed;
- a directory: every entry in it, sorted by name, directories recursively, skipping hidden
  names, `group_vars`, `host_vars`, `vars_plugins` and Ansible's ignored extensions
  (`~ .bak .cfg .md .orig .pyc .pyo .retry .rpm .rst .swp .txt`);
- an executable file starting with `#!`: an inventory script (see `script_source`);
- `.yaml`, `.yml`, `.json`: a YAML inventory (see `yaml_source`);
- a file without an extension: YAML if it reads as a YAML mapping, else INI, as Ansible
  tries them; any other extension (`.ini`, `.hosts`, ...): INI (see `ini_source`).

Ansible warns and carries on when no plugin can read a file; redmedic stops with the
reason, so a typo never quietly drops half the fleet. `.toml` inventories and inventory
plugin configurations (`plugin: aws_ec2`) are refused with how to export them instead.
"""

from __future__ import annotations

import os
import re
import shlex

from redmedic.errors import InventoryError
from redmedic.model.inventory import hostnames
from redmedic.model.inventory.draft import Draft
from redmedic.model.inventory.ini_source import read_ini_inventory
from redmedic.model.inventory.model import at
from redmedic.model.inventory.script_source import read_script_inventory
from redmedic.model.inventory.yaml_source import load_document, read_yaml_inventory
from redmedic.model.vault import Vault
from redmedic.model.yamlsource import YamlDoc, load_yaml, read_text

# Ansible's default INVENTORY_IGNORE_EXTS
_IGNORED_EXTENSIONS = [".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst"]
_IGNORED_EXTENSIONS += [".orig", ".cfg", ".retry"]
_IGNORED = re.compile(
    r"^\.|^host_vars$|^group_vars$|^vars_plugins$|"
    + "|".join(re.escape(ext) + "$" for ext in _IGNORED_EXTENSIONS)
)
YAML_EXTENSIONS = (".yaml", ".yml", ".json")


def is_host_list(value: str) -> bool:
    return "," in value and not os.path.exists(value)


def read_source(value: str, draft: Draft, vault: Vault | None) -> str | None:
    """Read one `-i` value into `draft`; the directory its group_vars/host_vars sit in."""
    if is_host_list(value):
        for item in (part.strip() for part in value.split(",")):
            if item:
                name, port = hostnames.split_port(item)
                if "[" in name:  # no ranges in a host list, as in Ansible
                    name, port = item, None
                if name not in draft.hosts:
                    draft.add_host(name, "ungrouped", port, at(f"-i {value}"))
        return None
    if os.path.isdir(value):
        _read_directory(value, draft, vault)
        return os.path.abspath(value)
    if not os.path.exists(value):
        raise InventoryError(
            "inventory file not found",
            where=value,
            hint="pass -i FILE (YAML, INI, a script) or DIRECTORY, or -i host1,host2,",
        )
    _read_file(value, draft, vault)
    return os.path.dirname(os.path.abspath(value))


def _read_directory(directory: str, draft: Draft, vault: Vault | None) -> None:
    for entry in sorted(os.listdir(directory)):
        if _IGNORED.search(entry):
            continue
        path = os.path.join(directory, entry)
        if os.path.isdir(path):
            _read_directory(path, draft, vault)
        else:
            _read_file(path, draft, vault)


def _read_file(path: str, draft: Draft, vault: Vault | None) -> None:
    ext = os.path.splitext(path)[1].lower()
    if os.access(path, os.X_OK) and _has_shebang(path):
        read_script_inventory(path, draft)
    elif ext in YAML_EXTENSIONS:
        try:
            doc = load_document(path, vault)
        except InventoryError as exc:
            if not _looks_like_ini(path):
                raise
            hint = f"this looks like an INI inventory: rename it to {path[: -len(ext)]}.ini"
            raise InventoryError(exc.message, where=exc.where, hint=hint) from None
        read_yaml_inventory(doc, draft)
    elif ext == ".toml":
        raise InventoryError(
            "TOML inventories are not supported",
            where=path,
            hint=f"convert it: `ansible-inventory -i {path} --list --yaml > inventory.yaml`",
        )
    elif not ext and isinstance(sniffed := _try_yaml(path, vault), YamlDoc):
        read_yaml_inventory(sniffed, draft)
    else:
        read_ini_inventory(_read_text(path, vault), path, draft)


def _try_yaml(path: str, vault: Vault | None) -> YamlDoc | None:
    """A file without extension as YAML, if it is a YAML mapping; else None (try INI)."""
    try:
        doc = load_yaml(path, error=InventoryError, vault=vault)
    except InventoryError:
        return None  # not YAML; a vault problem is raised again when read as INI
    return doc if isinstance(doc.data, dict) else None


def _looks_like_ini(path: str) -> bool:
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = [ln.strip() for ln in fh if ln.strip() and ln.lstrip()[0] not in "#;"]
    return bool(lines) and (lines[0].startswith("[") or "=" in lines[0])


def _has_shebang(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == b"#!"
    except OSError:
        return False


def _read_text(path: str, vault: Vault | None) -> str:
    """A text inventory file's contents, opened with the vault if it is encrypted."""
    text, encrypted = read_text(
        path,
        error=InventoryError,
        vault=vault,
        not_text_hint="pass a YAML, INI or JSON inventory, or an executable script",
    )
    if encrypted and vault is not None:
        vault.reveal(_ini_values(text))  # the whole file was secret: so is every value in it
    return text


def _ini_values(text: str) -> list[str]:
    """The values of every `key=value` word of an INI inventory's text (for masking)."""
    values = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped[0] in "#;[":
            continue
        try:
            words = shlex.split(stripped, comments=True)
        except ValueError:  # an unclosed quote: the INI reader names that line itself
            words = stripped.split()
        values += [word.split("=", 1)[1] for word in words if "=" in word]
    return [value for value in values if value]
