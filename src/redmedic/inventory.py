"""Hosts and the Ansible-style YAML inventory they come from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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
    groups: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict, repr=False)
