"""Inventories as Ansible reads them: the hosts to fix, their groups and variables.

One `load_inventory` call reads every `-i` source (YAML, JSON, INI, executable scripts,
directories of those, `h1,h2,` host lists) into one draft, in order, then gives each host
its variables by Ansible's precedence (with `group_vars/` and `host_vars/` beside every
source and beside the playbook), its connection fields, and the ssh config's completion.
docs/inventory.md is the user's reference; each module here owns one part:

    model        Host, Group, Inventory, host patterns, connection fields
    draft        the merged groups and hosts while sources are read
    sources      what an -i value is (file format, directory, host list)
    yaml_source  ini_source  script_source    the formats
    hostnames    host:port and [01:20] ranges
    group_vars   group_vars/ and host_vars/ files and directories
    precedence   the order of variable layers
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from redmedic.model.inventory.draft import Draft
from redmedic.model.inventory.group_vars import VarsFiles
from redmedic.model.inventory.model import (
    CONNECTION_VARS,
    Group,
    Host,
    Inventory,
    Layer,
    build_host,
    select_hosts,
)
from redmedic.model.inventory.precedence import host_layers
from redmedic.model.inventory.sources import read_source
from redmedic.model.sshconfig import load_ssh_config
from redmedic.model.vault import Vault

__all__ = [
    "CONNECTION_VARS",
    "Group",
    "Host",
    "Inventory",
    "load_inventory",
    "select_hosts",
]


def load_inventory(
    sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    ssh_config: str | None = "~/.ssh/config",
    defaults: Mapping[str, Any] | None = None,
    vault: Vault | None = None,
    playbook_dir: str | os.PathLike[str] | None = None,
) -> Inventory:
    """Read the `-i` sources, in order; every problem is an InventoryError with FILE:LINE.

    `sources` is one `-i` value or several: a later source adds hosts and groups and, for
    the same host or group, its variables win. `ssh_config` is the OpenSSH client config
    (`sshconfig.load_ssh_config`: the default reads ~/.ssh/config and /etc/ssh/ssh_config;
    another path only that file; None none). `defaults` are variables below every
    inventory level (the command line's `-u`, `--private-key`, `-k`, `-K`,
    `--become-user`, as Ansible ranks them: any inventory variable beats them). `vault`
    opens Ansible Vault data (refused without it). `playbook_dir` is where the playbook's
    own `group_vars/` and `host_vars/` are looked for (None: nowhere).
    """
    values = [os.fspath(sources)] if isinstance(sources, str | os.PathLike) else list(sources)
    names = [os.fspath(value) for value in values]
    draft = Draft()
    source_dirs = [found for name in names if (found := read_source(name, draft, vault))]
    groups, order = draft.finish()
    files = VarsFiles(vault)
    base: Layer = {str(key): (value, None) for key, value in (defaults or {}).items()}
    config = load_ssh_config(ssh_config)
    play = os.path.abspath(playbook_dir) if playbook_dir is not None else None
    layers = {
        host: host_layers(
            draft,
            host,
            order[host],
            source_dirs=source_dirs,
            playbook_dir=play,
            files=files,
            defaults=base,
        )
        for host in draft.hosts
    }
    hosts = tuple(
        build_host(host, layers[host], tuple(sorted(order[host])), config) for host in draft.hosts
    )
    return Inventory(", ".join(names), hosts, groups, layers, config)
