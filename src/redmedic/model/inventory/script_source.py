"""Executable inventory scripts: `SCRIPT --list` prints the inventory as JSON.

    {"redis": {"hosts": ["r1", "r2"], "vars": {"redis_port": 6379}, "children": ["eu"]},
     "eu": ["r3"],                                   # a bare list: the group's hosts
     "_meta": {"hostvars": {"r1": {"ansible_host": "10.0.0.1"}}}}

Without `_meta`, each host's variables come from `SCRIPT --host NAME`, once per host, as
Ansible does. The script runs with no stdin and a time limit; a script that fails, hangs or
prints something other than a JSON object is an InventoryError naming the script and the
last line of its stderr (never a traceback).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from redmedic.errors import InventoryError
from redmedic.model.inventory.draft import Draft
from redmedic.model.inventory.model import at, kind

TIMEOUT = 120.0  # seconds; cloud inventory scripts can be slow, but never hang a 3 am run


def read_script_inventory(path: str, draft: Draft) -> None:
    """Run `path --list` (and `--host NAME` without `_meta`) and add what it prints."""
    data = _run_json(path, ["--list"])
    locate = at(path)
    hostvars: object = None
    hosts: dict[str, None] = {}  # every host the groups name, in order
    for group, body in data.items():
        if group == "_meta":
            hostvars = body.get("hostvars") if isinstance(body, dict) else None
            if not isinstance(hostvars, dict):
                raise _shape(path, "'_meta' must hold a 'hostvars' mapping of host -> vars")
            continue
        if not isinstance(body, dict):
            body = {"hosts": body}
        elif not {"hosts", "vars", "children"} & body.keys():
            body = {"hosts": [group], "vars": body}  # Ansible's old form: a host named as group
        draft.group(group)
        members = body.get("hosts") or []
        if not isinstance(members, list):
            raise _shape(path, f"'{group}.hosts' must be a list of host names")
        for name in members:
            if not isinstance(name, str):
                raise _shape(path, f"'{group}.hosts' must list host names as text")
            draft.add_host(name, group, None, locate)
            hosts[name] = None
        variables = body.get("vars") or {}
        if not isinstance(variables, dict):
            raise _shape(path, f"'{group}.vars' must be a mapping")
        for key, value in variables.items():
            draft.set_group_var(group, key, value, locate)
        for child in body.get("children") or []:
            draft.link(group, str(child), locate)
    for name in hosts:
        if isinstance(hostvars, dict):
            found = hostvars.get(name) or {}
        else:
            found = _run_json(path, ["--host", name], empty_ok=True)
        if not isinstance(found, dict):
            raise _shape(path, f"the variables of host {name!r} must be a mapping")
        draft.hosts[name].update((key, (value, locate)) for key, value in found.items())


def _run_json(path: str, args: list[str], *, empty_ok: bool = False) -> dict[str, Any]:
    command = " ".join([path, *args])
    try:
        done = subprocess.run(
            [path, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InventoryError(
            f"inventory script `{command}` did not finish within {TIMEOUT:.0f}s",
            where=path,
            hint="run it by hand to see where it waits",
        ) from None
    except OSError as exc:
        raise InventoryError(
            f"cannot run inventory script: {exc.strerror or exc}",
            where=path,
            hint="check its #! line, or remove its executable bit if it is a YAML or INI file",
        ) from None
    last = _last_line(done.stderr)
    if done.returncode != 0:
        raise InventoryError(
            f"inventory script `{command}` failed with exit code {done.returncode}"
            + (f": {last}" if last else ""),
            where=path,
            hint=f"run `{command}` to see all of its output",
        )
    text = done.stdout.decode("utf-8", "replace")
    if empty_ok and not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        problem = str(exc).split(":")[0]
        raise InventoryError(
            f"inventory script `{command}` printed no JSON ({problem})"
            + (f"; its stderr ends: {last}" if last else ""),
            where=path,
            hint="an inventory script prints one JSON object on stdout, messages on stderr",
        ) from None
    if not isinstance(data, dict):
        raise _shape(path, f"`{command}` must print a JSON object, not {kind(data)}")
    return data


def _last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
    text = next((line for line in reversed(lines) if line), "")
    return text[:200]


def _shape(path: str, message: str) -> InventoryError:
    return InventoryError(
        f"inventory script output: {message}",
        where=path,
        hint="see Ansible's inventory script format: groups with hosts/vars/children, "
        "and _meta.hostvars",
    )
