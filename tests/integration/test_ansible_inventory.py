"""Given the inventories an Ansible user already has, redmedic sees what Ansible sees.

Every fixture under tests/data/inventories/ is loaded twice: by the real
`ansible-inventory --list` (ansible-core from the test extras, never imported) and by
`redmedic.model.inventory.load_inventory`. The hosts, each group's members and every host's
merged variables must agree. Ansible is run with no user configuration (empty
ANSIBLE_CONFIG, a temporary HOME and working directory), so only the fixtures count.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from redmedic.model.inventory import Inventory, load_inventory

DATA = Path(__file__).resolve().parents[1] / "data" / "inventories"
ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"
# Variables Ansible adds itself; everything else is the user's and must match.
MAGIC = {"inventory_file", "inventory_dir", "playbook_dir", "ansible_playbook_python"}

# (name, -i values relative to DATA, playbook dir relative to DATA or None)
CASES: list[tuple[str, list[str], str | None]] = [
    ("ini with group_vars and host_vars", ["ini/hosts.ini"], None),
    ("ini and the playbook's group_vars", ["ini/hosts.ini"], "playbook"),
    ("yaml", ["yaml/inventory.yaml"], None),
    ("yaml corners", ["yaml/tricky.yaml"], None),
    ("json", ["json/inventory.json"], None),
    ("script with _meta", ["script/inventory.py"], None),
    ("script answering --host", ["script_nometa/inventory.sh"], None),
    ("a directory", ["dir"], None),
    ("a host list", ["h1,h2:2222,[::1]:2200,"], None),
    (
        "several -i, later ones winning",
        ["ini/hosts.ini", "yaml/inventory.yaml", "cache1,h3,", "json/inventory.json"],
        "playbook",
    ),
    ("the same sources the other way round", ["yaml/inventory.yaml", "ini/hosts.ini"], None),
]


def ansible_list(sources: list[str], playbook_dir: str | None, tmp_path: Path) -> dict[str, Any]:
    config = tmp_path / "ansible.cfg"
    config.write_text("", encoding="utf-8")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "true",
        "ANSIBLE_NOCOLOR": "1",
        "LC_ALL": "C.UTF-8",
    }
    command = [str(ANSIBLE_INVENTORY), "--list"]
    for source in sources:
        command += ["-i", source]
    if playbook_dir is not None:
        command += ["--playbook-dir", playbook_dir]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def ansible_members(listing: Mapping[str, Any]) -> dict[str, set[str]]:
    """Each group's hosts, through its child groups too (the listing gives direct ones)."""

    def members(group: str) -> set[str]:
        body = listing.get(group, {})
        found = set(body.get("hosts", []))
        for child in body.get("children", []):
            found |= members(child)
        return found

    return {group: members(group) for group in listing if group != "_meta"}


def redmedic_members(inventory: Inventory) -> dict[str, set[str]]:
    return {name: set(group.hosts) for name, group in inventory.groups.items()}


def plain(value: Any) -> Any:
    """A value as JSON shows it, as `ansible-inventory` prints it."""
    return json.loads(json.dumps(value))


def absolute(source: str) -> str:
    return source if "," in source else str(DATA / source)


@pytest.mark.parametrize(
    ("sources", "playbook"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_redmedic_reads_the_inventory_as_ansible_does(
    sources: list[str], playbook: str | None, tmp_path: Path
) -> None:
    # Given an inventory fixture, and ansible-inventory's view of it
    given = [absolute(source) for source in sources]
    play = str(DATA / playbook) if playbook else None
    expected = ansible_list(given, play, tmp_path)

    # When redmedic loads the same sources
    inventory = load_inventory(given, ssh_config=None, playbook_dir=play)

    # Then the hosts, the groups' members and every host's variables agree
    want_groups = {g: hosts for g, hosts in ansible_members(expected).items() if hosts}
    got_groups = {g: hosts for g, hosts in redmedic_members(inventory).items() if hosts}
    assert got_groups == want_groups
    assert {host.name for host in inventory.hosts} == want_groups["all"]
    hostvars = expected["_meta"]["hostvars"]
    for host in inventory.hosts:
        want = {k: v for k, v in hostvars.get(host.name, {}).items() if k not in MAGIC}
        assert plain(dict(host.vars)) == want, host.name


def test_the_fixtures_exercise_what_the_reference_promises() -> None:
    # The differential test proves only what the fixtures contain: keep the hard parts in.
    ini = (DATA / "ini" / "hosts.ini").read_text(encoding="utf-8")
    for feature in (":children]", ":vars]", "[01:03]", "[a:c]", "[1:5:2]", ":2200", "'22'"):
        assert feature in ini
    assert "ansible_group_priority" in ini
    assert os.access(DATA / "script" / "inventory.py", os.X_OK)
    assert (DATA / "ini" / "group_vars" / "redis").is_dir()
    assert shutil.which(str(ANSIBLE_INVENTORY)), "ansible-core comes with the test extras"
