"""Plan files: the reviewed plan, saved by `run --check --plan-out` and applied by `apply`.

A plan file holds, per host, exactly the changes that were shown: each file change with the
sha256 of the content it was planned against and of the content it writes, each command
with the state it was planned against. Secrets are sealed (see `Masker.seal`): the file
shows none, and `apply` puts them back from the same inventory and -e values, checking the
result against the recorded hash. The file is written 0600: it still lets an attacker test
password guesses offline, like any hash of a secret.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from redmedic.errors import InputError

PLAN_VERSION = 1


class PlanFileError(InputError):
    """The plan file is missing, malformed, or does not match the playbook."""


@dataclass(frozen=True)
class SavedStep:
    """The changes one fix step planned; `index` is its position under `fix:`.

    Each change is its kind's own record, `Change.to_data(seal, mask)` (content sealed,
    diff masked), read back with `model.plan.change_from_data`.
    """

    index: int
    name: str
    changes: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class SavedHost:
    name: str
    status: str
    steps: tuple[SavedStep, ...] = ()
    message: str = ""


@dataclass(frozen=True)
class SavedPlan:
    playbook: str
    playbook_sha256: str
    inventory: str
    salt: str  # hex; keys the secret placeholders of this plan
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    hosts: Mapping[str, SavedHost] = field(default_factory=dict)
    version: int = PLAN_VERSION
    # The command line's -u/--private-key/--become-user (never passwords) and -b: `apply`
    # reaches the hosts as the reviewed plan did, as the same users.
    connection: Mapping[str, Any] = field(default_factory=dict)
    become: bool = False


def file_sha256(path: str) -> str:
    """Hash of a playbook file, recorded so `apply` refuses a playbook edited since."""
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def save_plan(plan: SavedPlan, path: str) -> None:
    """Write the plan atomically, readable by the owner only."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".plan-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(plan), handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_plan(path: str) -> SavedPlan:
    """Read a plan file written by `save_plan`; PlanFileError names what is wrong."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise PlanFileError(
            "plan file not found",
            where=path,
            hint="make one with `redmedic run PLAYBOOK -i INV --check --plan-out FILE`",
        ) from None
    except (OSError, ValueError) as exc:
        raise PlanFileError(f"cannot read the plan: {exc}", where=path) from None
    try:
        if data.get("version") != PLAN_VERSION:
            raise PlanFileError(
                f"plan version {data.get('version')!r} is not {PLAN_VERSION}",
                where=path,
                hint="make the plan again with this redmedic",
            )
        hosts = {
            name: SavedHost(
                name=name,
                status=host["status"],
                message=host.get("message", ""),
                steps=tuple(
                    SavedStep(step["index"], step["name"], tuple(step["changes"]))
                    for step in host["steps"]
                ),
            )
            for name, host in data["hosts"].items()
        }
        return SavedPlan(
            playbook=data["playbook"],
            playbook_sha256=data["playbook_sha256"],
            inventory=data["inventory"],
            salt=data["salt"],
            extra_vars=data.get("extra_vars", {}),
            hosts=hosts,
            connection=data.get("connection", {}),
            become=bool(data.get("become", False)),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise PlanFileError(
            f"malformed plan file (missing {exc})",
            where=path,
            hint="make the plan again; do not edit it by hand",
        ) from None
