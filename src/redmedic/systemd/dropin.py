"""A systemd drop-in: where it lives, its content, systemd's view, and the changes to write it.

Why a drop-in: Debian's redis-server unit ships LimitNOFILE=65535, and limits set in
/etc/security/limits.conf (pam_limits) never apply to services — a drop-in in
/etc/systemd/system/UNIT.service.d/ is the one place that survives package upgrades and
is read by systemd. It reaches the process only after `systemctl daemon-reload` and a
(re)start; the reload is planned here, what the running process gets is the caller's
business (a restart handler, or a live change such as `prlimit`).

Rollback order matters: the executor undoes applied changes in reverse order, so the
daemon-reload that makes systemd forget the drop-in must be the undo of a change planned
*before* the file (the leading `mkdir -p`), not of the trailing reload — otherwise systemd
would reload while the new drop-in is still on disk and the restart that follows a
rollback would keep the new settings.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from redmedic.connection.base import RemoteFile
from redmedic.connection.scripts import marker_line
from redmedic.model.plan import LIVE, Change, CommandChange, FileChange

HEADER = "# Written by redmedic: change the playbook rather than this file.\n"
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_UNIT = re.compile(r"[A-Za-z0-9:_.@\\-]+")
_WORD = re.compile(r"[A-Za-z0-9_.@-]+")

Value = bool | int | str


def check_unit(value: str) -> str:
    """`value` if it is a systemd unit name (for argument validators); ValueError if not."""
    if not _UNIT.fullmatch(value):
        raise ValueError(f"{value!r} is not a systemd unit name")
    return value


def check_word(value: str) -> str:
    """`value` if it can be a drop-in file or section name; ValueError if not."""
    if not _WORD.fullmatch(value):
        raise ValueError(f"{value!r} may only hold letters, digits and _ . @ -")
    return value


def check_settings(value: Mapping[str, Value]) -> None:
    """ValueError unless every key is a directive name and every value one line."""
    if not value:
        raise ValueError("give at least one setting")
    for key, item in value.items():
        if not _KEY.fullmatch(key):
            raise ValueError(f"{key!r} is not a unit directive name")
        if "\n" in render_value(item):
            raise ValueError(f"the value of {key} must be one line")


def unit_name(unit: str) -> str:
    """The full unit name: `redis-server` means `redis-server.service`."""
    return unit if "." in unit else f"{unit}.service"


@dataclass(frozen=True)
class Dropin:
    """The drop-in a step wants: `settings` in `[section]` of UNIT.d/NAME.conf."""

    unit: str
    name: str
    section: str
    settings: Mapping[str, Value] = field(default_factory=dict)

    @property
    def unit_name(self) -> str:
        return unit_name(self.unit)

    @property
    def directory(self) -> str:
        return f"/etc/systemd/system/{self.unit_name}.d"

    @property
    def path(self) -> str:
        return f"{self.directory}/{self.name}.conf"


def render_value(value: Value) -> str:
    """systemd spelling of a YAML value: booleans as yes/no, the rest as written."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def merge_dropin(text: str, section: str, settings: Mapping[str, Value]) -> str:
    """`text` with each setting set in `[section]`; other lines and sections are kept.

    An existing directive is replaced where it stands (the last one, which is the one
    systemd uses for single-value settings); a new one goes to the end of the section;
    a missing section is appended. Pure: tested as text in, text out.
    """
    lines = text.splitlines()
    if not lines:
        lines = [HEADER.rstrip("\n")]
    start = next((i for i, ln in enumerate(lines) if ln.strip() == f"[{section}]"), None)
    if start is None:
        if lines and lines[-1].strip() and not lines[-1].startswith("#"):
            lines.append("")
        lines.append(f"[{section}]")
        start = len(lines) - 1
    for key, value in settings.items():
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")),
            len(lines),
        )
        wanted = f"{key}={render_value(value)}"
        pattern = re.compile(rf"\s*{key}\s*=")
        hits = [i for i in range(start + 1, end) if pattern.match(lines[i])]
        if hits:
            lines[hits[-1]] = wanted
            continue
        insert = end
        while insert > start + 1 and not lines[insert - 1].strip():
            insert -= 1
        lines.insert(insert, wanted)
    return "\n".join(lines) + "\n"


def parse_show(text: str) -> dict[str, str]:
    """`systemctl show -p A -p B UNIT` → {A: ..., B: ...} (systemd picks the order)."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key] = value
    return values


@dataclass(frozen=True)
class DropinState:
    """What one round trip read: the drop-in now, systemd's view of the unit."""

    unit: str
    path: str
    file: RemoteFile | None  # the drop-in as this run will find it
    current: dict[str, str | None]  # each wanted setting's effective value now
    need_daemon_reload: bool
    dir_exists: bool
    up_to_date: bool
    become: bool
    shown: Mapping[str, str] = field(default_factory=dict)  # every property asked for

    @property
    def content(self) -> str:
        return self.file.content.decode("utf-8", "replace") if self.file is not None else ""

    def facts(self) -> dict[str, object]:
        """What `register:` stores of the drop-in's state."""
        return {
            "unit": self.unit,
            "path": self.path,
            "exists": self.file is not None,
            "content": self.content,
            "up_to_date": self.up_to_date,
            "current": dict(self.current),
            "need_daemon_reload": self.need_daemon_reload,
            "dir_exists": self.dir_exists,
        }


def show_script(dropin: Dropin, marker: str, extra: Sequence[str] = ()) -> str:
    """Effective values (and the `extra` properties), load state and whether systemd must
    reload; whether the drop-in dir exists. Leaves `$unit` set for what follows.

    Sections (`split_sections`): `no-systemd` alone, or `show` and `dir` (yes/no).
    """
    names = ("LoadState", "NeedDaemonReload", *dropin.settings, *extra)
    props = " ".join(f"-p {k}" for k in names)
    return (
        "LC_ALL=C; export LC_ALL\n"
        f"unit={shlex.quote(dropin.unit_name)}\n"
        "if [ ! -d /run/systemd/system ]; then\n"
        + marker_line(marker, "no-systemd")
        + "exit 0\nfi\n"
        + marker_line(marker, "show")
        + f'systemctl show {props} -- "$unit"\n'
        + marker_line(marker, "dir")
        + f"[ -d {shlex.quote(dropin.directory)} ] && echo yes || echo no\n"
    )


def dropin_state(
    dropin: Dropin, sections: Mapping[str, str], file: RemoteFile | None, become: bool
) -> DropinState:
    """What `show_script`'s sections and the drop-in (as this run finds it) say. Pure.

    Raises ValueError for a host without systemd or a unit systemd does not know.
    """
    if "no-systemd" in sections or "show" not in sections:
        raise ValueError(
            "this host has no systemd (PID 1 is not systemd) — set the limit in the "
            "service's own start script"
        )
    shown = parse_show(sections["show"])
    if shown.get("LoadState") == "not-found":
        raise ValueError(
            f"unit {dropin.unit_name} does not exist — check the name (Debian: "
            "redis-server, others: redis or redis@NAME)"
        )
    content = file.content.decode("utf-8", "replace") if file is not None else ""
    return DropinState(
        unit=dropin.unit_name,
        path=dropin.path,
        file=file,
        current={k: shown.get(k) for k in dropin.settings},
        need_daemon_reload=shown.get("NeedDaemonReload") == "yes",
        dir_exists=sections.get("dir", "").strip() == "yes",
        up_to_date=merge_dropin(content, dropin.section, dropin.settings) == content,
        become=become,
        shown=shown,
    )


def plan_dropin(dropin: Dropin, found: DropinState, effect: str | None = None) -> list[Change]:
    """mkdir + the file + daemon-reload, only as far as the drop-in or systemd lag behind.

    `effect` (see `model.plan.LIVE`) is what writing it does to the running service: the
    file change carries it (a lone reload, when only systemd lags, too); None (the general
    case) lets the step's handlers restart. With `LIVE` every change is live, so the step
    notifies nothing; otherwise the mkdir and the reload say nothing of their own.
    """

    # A reload is undone by reloading once the drop-in is back as it was (the mkdir's
    # undo reloads last); its own undo says so, so the plan never calls it permanent.
    def reload(effect: str | None) -> CommandChange:
        return CommandChange(
            "systemctl daemon-reload",
            become=found.become,
            undo_command="systemctl daemon-reload",
            effect=effect,
        )

    if found.up_to_date:
        return [reload(effect)] if found.need_daemon_reload else []
    aside = effect if effect == LIVE else None
    current = found.file
    old = current.content.decode("utf-8", "surrogateescape") if current else ""
    new = merge_dropin(old, dropin.section, dropin.settings).encode("utf-8", "surrogateescape")
    directory = shlex.quote(dropin.directory)
    # The undo of this first change runs last in a rollback: after the drop-in is
    # restored (or removed), so systemd reloads what is really on disk.
    undo = "systemctl daemon-reload"
    if not found.dir_exists:
        undo = f"rmdir -- {directory} 2>/dev/null; {undo}"
    return [
        CommandChange(
            f"mkdir -p -- {directory}", become=found.become, undo_command=undo, effect=aside
        ),
        # 0644 only for a new drop-in: an existing one keeps its mode and owner.
        FileChange(
            dropin.path,
            current,
            new,
            become=found.become,
            mode=0o644 if current is None else None,
            effect=effect,
        ),
        reload(aside),
    ]
