"""`systemd_dropin`: set unit settings (e.g. LimitNOFILE) in a drop-in file, then reload.

Why a drop-in: Debian's redis-server unit ships LimitNOFILE=65535, and limits set in
/etc/security/limits.conf (pam_limits) never apply to services — a drop-in in
/etc/systemd/system/UNIT.service.d/ is the one place that survives package upgrades and
is read by systemd. It only takes effect after `systemctl daemon-reload` and a restart of
the service; the reload is planned here, the restart is the playbook's handler (`notify`).

Rollback order matters: the executor undoes applied changes in reverse order, so the
daemon-reload that makes systemd forget the drop-in must be the undo of a change planned
*before* the file (the leading `mkdir -p`), not of the trailing reload — otherwise systemd
would reload while the new drop-in is still on disk and the restart that follows a
rollback would keep the new settings.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import Field, field_validator

from redmedic.connection.base import RemoteFile
from redmedic.connection.scripts import marker_line, new_marker, split_sections
from redmedic.errors import StepError
from redmedic.model.plan import Change, CommandChange, FileChange, StepResult
from redmedic.steps.base import StepArgs, StepContext, StepType

HEADER = "# Written by redmedic: change the playbook rather than this file.\n"
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_UNIT = re.compile(r"[A-Za-z0-9:_.@\\-]+")

Value = bool | int | str


class SystemdDropinArgs(StepArgs):
    unit: str = Field(description="Unit name, e.g. redis-server (`.service` is optional).")
    name: str = Field(
        default="redmedic", description="Drop-in file name without `.conf` (default redmedic)."
    )
    section: str = Field(default="Service", description="Unit file section, e.g. Service.")
    settings: dict[str, Value] = Field(
        description="Directives to set in that section, e.g. {LimitNOFILE: 65535}."
    )

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str) -> str:
        if not _UNIT.fullmatch(value):
            raise ValueError(f"{value!r} is not a systemd unit name")
        return value

    @field_validator("name", "section")
    @classmethod
    def _word(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.@-]+", value):
            raise ValueError(f"{value!r} may only hold letters, digits and _ . @ -")
        return value

    @field_validator("settings")
    @classmethod
    def _settings(cls, value: dict[str, Value]) -> dict[str, Value]:
        if not value:
            raise ValueError("give at least one setting")
        for key, item in value.items():
            if not _KEY.fullmatch(key):
                raise ValueError(f"{key!r} is not a unit directive name")
            if "\n" in render_value(item):
                raise ValueError(f"the value of {key} must be one line")
        return value

    @property
    def unit_name(self) -> str:
        """The full unit name: `redis-server` means `redis-server.service`."""
        return self.unit if "." in self.unit else f"{self.unit}.service"

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


def merge_dropin(text: str, section: str, settings: dict[str, Value]) -> str:
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
    """What diagnose read in its one round trip: the drop-in now, systemd's view of the unit."""

    unit: str
    path: str
    file: RemoteFile | None  # the drop-in as this run will find it
    current: dict[str, str | None]  # each wanted setting's effective value now
    need_daemon_reload: bool
    dir_exists: bool
    up_to_date: bool
    become: bool

    @property
    def content(self) -> str:
        return self.file.content.decode("utf-8", "replace") if self.file is not None else ""


def show_script(args: SystemdDropinArgs, marker: str) -> str:
    """Effective values, load state and whether systemd must reload; drop-in dir exists.

    Sections (`split_sections`): `no-systemd` alone, or `show` and `dir` (yes/no).
    """
    props = " ".join(f"-p {k}" for k in ("LoadState", "NeedDaemonReload", *args.settings))
    return (
        "LC_ALL=C; export LC_ALL\n"
        "if [ ! -d /run/systemd/system ]; then\n"
        + marker_line(marker, "no-systemd")
        + "exit 0\nfi\n"
        + marker_line(marker, "show")
        + f"systemctl show {props} -- {shlex.quote(args.unit_name)}\n"
        + marker_line(marker, "dir")
        + f"[ -d {shlex.quote(args.directory)} ] && echo yes || echo no\n"
    )


def dropin_state(
    args: SystemdDropinArgs, sections: Mapping[str, str], file: RemoteFile | None, become: bool
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
            f"unit {args.unit_name} does not exist — check the name (Debian: "
            "redis-server, others: redis or redis@NAME)"
        )
    content = file.content.decode("utf-8", "replace") if file is not None else ""
    return DropinState(
        unit=args.unit_name,
        path=args.path,
        file=file,
        current={k: shown.get(k) for k in args.settings},
        need_daemon_reload=shown.get("NeedDaemonReload") == "yes",
        dir_exists=sections.get("dir", "").strip() == "yes",
        up_to_date=merge_dropin(content, args.section, args.settings) == content,
        become=become,
    )


class SystemdDropin(StepType[SystemdDropinArgs, DropinState]):
    """Diagnose reads the effective values (`systemctl show`) and the drop-in in one round
    trip; plan writes the drop-in and reloads systemd only when its content differs (or
    systemd still has to load it). Restarting the service is the playbook's `notify`.

    Facts: `unit`, `path`, `exists`, `content`, `up_to_date`, `current` (each setting's
    effective value now), `need_daemon_reload`, `dir_exists`."""

    name = "systemd_dropin"
    Args = SystemdDropinArgs
    summary = "Set directives (e.g. LimitNOFILE) in a systemd drop-in and daemon-reload."
    read_only = False

    def diagnose(self, args: SystemdDropinArgs, ctx: StepContext) -> DropinState:
        marker = new_marker()
        output, current = ctx.run_reading(show_script(args, marker), args.path)
        try:
            return dropin_state(args, split_sections(output, marker), current, ctx.become)
        except ValueError as exc:
            raise StepError(ctx.host.name, str(exc), step=ctx.step_name) from None

    def registered(self, found: DropinState) -> StepResult:
        return StepResult(
            msg=f"{found.path}: " + ("up to date" if found.up_to_date else "needs an update"),
            facts={
                "unit": found.unit,
                "path": found.path,
                "exists": found.file is not None,
                "content": found.content,
                "up_to_date": found.up_to_date,
                "current": dict(found.current),
                "need_daemon_reload": found.need_daemon_reload,
                "dir_exists": found.dir_exists,
            },
        )

    def plan(self, args: SystemdDropinArgs, found: DropinState) -> list[Change]:
        # A reload is undone by reloading once the drop-in is back as it was (the mkdir's
        # undo reloads last); its own undo says so, so the plan never calls it permanent.
        reload = CommandChange(
            "systemctl daemon-reload", become=found.become, undo_command="systemctl daemon-reload"
        )
        if found.up_to_date:
            return [reload] if found.need_daemon_reload else []
        current = found.file
        old = current.content.decode("utf-8", "surrogateescape") if current else ""
        new = merge_dropin(old, args.section, args.settings).encode("utf-8", "surrogateescape")
        directory = shlex.quote(args.directory)
        # The undo of this first change runs last in a rollback: after the drop-in is
        # restored (or removed), so systemd reloads what is really on disk.
        undo = "systemctl daemon-reload"
        if not found.dir_exists:
            undo = f"rmdir -- {directory} 2>/dev/null; {undo}"
        return [
            CommandChange(
                f"mkdir -p -- {directory}",
                become=found.become,
                undo_command=undo,
            ),
            # 0644 only for a new drop-in: an existing one keeps its mode and owner.
            FileChange(
                args.path,
                current,
                new,
                become=found.become,
                mode=0o644 if current is None else None,
            ),
            reload,
        ]
