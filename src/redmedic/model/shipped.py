"""The playbooks shipped with redmedic, found by name: `redmedic run connection-refused ...`.

Why: on-call engineers get redmedic with `pip install`, not from a git checkout, and the
triage must come along. The playbooks are package data (`redmedic/playbooks/*.yaml`, read
through importlib.resources, so a wheel and an editable install find them alike).

A playbook argument that names an existing file is that file, always; only otherwise is it
looked up here, as `NAME` or `NAME.yaml`. The resolved path is the file itself (not a copy),
so a plan made from a shipped playbook records a path `redmedic apply` can read and hash.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from redmedic.errors import PlaybookError, UsageError
from redmedic.model.yamlsource import load_yaml

SUFFIX = ".yaml"


@dataclass(frozen=True)
class ShippedPlaybook:
    """One shipped playbook: the name to pass to `run`, where it is, what it is for."""

    name: str
    path: Path
    summary: str  # the first line of its `description:` (or of `name:`)


def shipped_dir() -> Path:
    """Where the shipped playbooks are installed (a real directory: pip installs files)."""
    folder = resources.files("redmedic").joinpath("playbooks")
    if not isinstance(folder, Path):  # only a zip import would give anything else
        raise UsageError(
            f"the shipped playbooks are inside {folder}, not in a directory",
            hint="install redmedic with pip (not as a zip), or pass a playbook file",
        )
    return folder


def shipped_playbooks() -> list[ShippedPlaybook]:
    """Every shipped playbook, sorted by name."""
    found = []
    for path in sorted(shipped_dir().glob("*" + SUFFIX)):
        data = load_yaml(path, error=PlaybookError).data
        text = ""
        if isinstance(data, dict):
            text = str(data.get("description") or data.get("name") or "")
        found.append(ShippedPlaybook(path.stem, path, text.strip().partition("\n")[0]))
    return found


def resolve_playbook(argument: str) -> str:
    """The playbook file `argument` means: a file that exists, else the shipped one of that name.

    An argument with a `/` in it is a path: it is returned as given, so a missing file is
    reported as such by the loader. A directory of that name does not hide a shipped
    playbook. An unknown name is a UsageError naming close matches.
    """
    if os.sep in argument or os.path.isfile(argument):
        return argument
    stem = argument.removesuffix(SUFFIX)
    names = {p.name: p for p in shipped_playbooks()}
    if stem in names:
        return str(names[stem].path)
    close = [n for n in names if stem and stem in n] or difflib.get_close_matches(stem, names)
    guess = f"did you mean {' or '.join(close)}? " if close else ""
    raise UsageError(
        f"no playbook file or shipped playbook named '{argument}'",
        hint=f"{guess}`redmedic playbooks` lists the shipped ones",
    )
