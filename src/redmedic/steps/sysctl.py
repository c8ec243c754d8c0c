"""`sysctl`: a kernel setting, both now (`sysctl -w`) and from the next boot (sysctl.d).

Redis wants `vm.overcommit_memory = 1` (else background saves can fail) and a
`net.core.somaxconn` at least its tcp-backlog. A fix is only done when both layers agree:
the runtime value and a file under /etc/sysctl.d that nothing read later at boot overrides.

Containers are the trap: there /proc/sys is mounted read-only (systemd-nspawn, Docker), so
`sysctl -w` fails with "permission denied" and the value can only change on the machine
that runs the container (vm.* settings are one kernel-wide value). This step then writes
the file only and says so in a finding — it never pretends the runtime value changed.

Boot order (systemd-sysctl and `sysctl --system`): *.conf files from /etc/sysctl.d,
/run/sysctl.d, /usr/local/lib/sysctl.d, /usr/lib/sysctl.d, /lib/sysctl.d sorted by file
name (a name in /etc hides the same name further down), /etc/sysctl.conf last (Debian links
it as /etc/sysctl.d/99-sysctl.conf); the last assignment wins.
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
from redmedic.model.plan import Change, CommandChange, FileChange, Finding, StepResult
from redmedic.steps.base import StepArgs, StepContext, StepType

HEADER = "# Kernel settings for Redis, written by redmedic.\n"
SYSCTL_DIRS = (
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
)
SYSCTL_CONF = "/etc/sysctl.conf"
_NAME = re.compile(r"[A-Za-z0-9_-]+(?:[./][A-Za-z0-9_-]+)+")


class SysctlArgs(StepArgs):
    name: str = Field(description="Kernel setting, e.g. vm.overcommit_memory.")
    value: str | int = Field(description="Wanted value, e.g. 1 (several words: '4096 87380').")
    file: str = Field(
        default="/etc/sysctl.d/60-redmedic.conf",
        description="File that persists the value for the next boot.",
    )
    runtime: bool = Field(
        default=True, description="Also change the running kernel (`sysctl -w`) when possible."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a sysctl name like vm.overcommit_memory")
        return value

    @field_validator("value")
    @classmethod
    def _value(cls, value: str | int) -> str | int:
        if "\n" in str(value) or not str(value).strip():
            raise ValueError("the value must be one non-empty line")
        return value

    @field_validator("file")
    @classmethod
    def _file(cls, value: str) -> str:
        if not value.startswith("/") or not value.endswith(".conf"):
            raise ValueError("give an absolute path ending in .conf (sysctl.d ignores others)")
        return value

    @property
    def wanted(self) -> str:
        return normalize(str(self.value))

    @property
    def proc_path(self) -> str:
        return "/proc/sys/" + self.name.replace(".", "/")

    @property
    def dotted(self) -> str:
        """The name with dots, as `sysctl` prints it."""
        return self.name.replace("/", ".")


def normalize(value: str) -> str:
    """Multi-value settings print tab-separated (`4096\t87380\t6291456`): compare words."""
    return " ".join(value.split())


def key_regex(name: str) -> str:
    """ERE for an assignment of `name` in a sysctl file: either separator, optional `-`."""
    parts = re.split(r"[./]", name)
    return r"^[[:space:]]*-?[[:space:]]*" + "[./]".join(parts) + r"[[:space:]]*="


def _assignment(name: str) -> re.Pattern[str]:
    parts = re.split(r"[./]", name)
    return re.compile(r"^\s*-?\s*" + "[./]".join(map(re.escape, parts)) + r"\s*=\s*(.*?)\s*$")


def file_value(text: str, name: str) -> str | None:
    """The value `text` (a sysctl.d file) assigns to `name` (the last assignment), if any."""
    pattern = _assignment(name)
    values = [m.group(1) for m in map(pattern.match, text.splitlines()) if m]
    return normalize(values[-1]) if values else None


def set_key(text: str, name: str, value: str) -> str:
    """`text` with `name = value` as its only assignment of `name`; other lines kept.

    The last assignment is replaced where it stands (earlier ones, dead anyway, are
    dropped so nobody reads the wrong one); none → appended.
    """
    pattern = _assignment(name)
    lines = text.splitlines()
    hits = [i for i, line in enumerate(lines) if pattern.match(line)]
    wanted = f"{name} = {value}"
    if not lines:
        return HEADER + wanted + "\n"
    if hits:
        lines[hits[-1]] = wanted
        lines = [line for i, line in enumerate(lines) if i not in hits[:-1]]
    else:
        lines.append(wanted)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Assignment:
    """One `name = value` line found in a sysctl file."""

    path: str
    line: int
    value: str

    def show(self) -> str:
        return f"{self.path}:{self.line}"


def parse_grep(text: str, name: str) -> list[Assignment]:
    """`grep -Hn` output (PATH:LINE:TEXT) → assignments of `name`."""
    pattern = _assignment(name)
    found = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        match = pattern.match(parts[2])
        if match:
            found.append(Assignment(parts[0], int(parts[1]), normalize(match.group(1))))
    return found


def boot_order(path: str) -> tuple[int, str, int]:
    """Sort key: when systemd-sysctl / `sysctl --system` reads `path` at boot."""
    if path == SYSCTL_CONF:
        return (1, "", 0)
    directory, _, base = path.rpartition("/")
    rank = SYSCTL_DIRS.index(directory) if directory in SYSCTL_DIRS else len(SYSCTL_DIRS)
    return (0, base, rank)


def effective(assignments: list[Assignment]) -> list[Assignment]:
    """The assignments that boot really applies, in order (the last one wins).

    A file name in a higher-precedence directory hides the same name in lower ones.
    """
    winners: dict[str, str] = {}
    for a in sorted(assignments, key=lambda a: boot_order(a.path)):
        winners.setdefault(_base(a.path), a.path)
    kept = [a for a in assignments if winners.get(_base(a.path)) == a.path]
    return sorted(kept, key=lambda a: (boot_order(a.path), a.line))


def _base(path: str) -> str:
    return "" if path == SYSCTL_CONF else path.rpartition("/")[2]


def gather_script(args: SysctlArgs, marker: str) -> str:
    """Runtime value, writability and every other file assigning the key: one round trip.

    Sections (`split_sections`): `runtime` (the value), or `missing` or `unreadable`;
    `writable` (yes/no); `files` (grep -Hn lines).
    """
    proc = shlex.quote(args.proc_path)
    dirs = " ".join(SYSCTL_DIRS)
    return (
        "LC_ALL=C; export LC_ALL\n"
        f"p={proc}\n"
        'if [ ! -e "$p" ]; then\n'
        + marker_line(marker, "missing")
        + 'elif [ -r "$p" ]; then\n'
        + marker_line(marker, "runtime")
        + 'cat "$p"\nelse\n'
        + marker_line(marker, "unreadable")
        + "fi\n"
        + marker_line(marker, "writable")
        + '[ -w "$p" ] && echo yes || echo no\n'
        + marker_line(marker, "files")
        + f"re={shlex.quote(key_regex(args.name))}\n"
        f"for d in {dirs}; do\n"
        # merged /usr (Debian 12): /lib/sysctl.d is /usr/lib/sysctl.d, read it once
        '  [ "$d" = /lib/sysctl.d ] && [ /lib/sysctl.d -ef /usr/lib/sysctl.d ] && continue\n'
        '  for f in "$d"/*.conf; do\n'
        '    [ -f "$f" ] || continue\n'
        f'    [ "$(readlink -f -- "$f")" = {SYSCTL_CONF} ] && continue\n'
        '    grep -HnE -- "$re" "$f"\n'
        "  done\n"
        "done\n"
        f'[ -f {SYSCTL_CONF} ] && grep -HnE -- "$re" {SYSCTL_CONF}\n'
        "exit 0\n"
    )


@dataclass(frozen=True)
class State:
    """What diagnose found, parsed from the gathered text (pure, see `read_state`)."""

    runtime: str | None  # None: unreadable
    writable: bool
    persisted: str | None  # in args.file
    others: tuple[Assignment, ...]  # in other files
    overriding: tuple[Assignment, ...]  # read after args.file at boot, with another value


def read_state(args: SysctlArgs, sections: Mapping[str, str], own_text: str) -> State:
    """Parse the gathered sections; `own_text` is args.file as this run will see it."""
    if "missing" in sections:
        raise ValueError(f"{args.proc_path} does not exist: no such kernel setting here")
    runtime = normalize(sections["runtime"]) if "runtime" in sections else None
    others = [a for a in parse_grep(sections.get("files", ""), args.name) if a.path != args.file]
    persisted = file_value(own_text, args.name)
    ours = Assignment(args.file, 0, persisted or args.wanted)
    order = effective([*others, ours])
    after = order[order.index(ours) + 1 :] if ours in order else []
    overriding = tuple(a for a in after if a.value != args.wanted)
    return State(
        runtime=runtime,
        writable=sections.get("writable", "").strip() == "yes",
        persisted=persisted,
        others=tuple(others),
        overriding=overriding,
    )


def cause_for(name: str) -> str:
    """The finding cause: `overcommit` for vm.overcommit_memory, else the key itself."""
    return "overcommit" if name.replace("/", ".") == "vm.overcommit_memory" else name


def persisted_elsewhere(args: SysctlArgs, state: State) -> Assignment | None:
    """The other file that already sets the wanted value at boot, when `args.file` sets
    nothing: writing `args.file` too would change nothing, and a host configured the
    classic way (e.g. in /etc/sysctl.conf) must get no change. Pure."""
    if state.persisted is not None or not state.others:
        return None
    last = effective(list(state.others))[-1]
    return last if last.value == args.wanted else None


def findings_for(args: SysctlArgs, state: State) -> list[Finding]:
    """What this step cannot fix, said plainly (never a silent no-op); pure."""
    cause = cause_for(args.name)
    found = []
    if args.runtime and not state.writable and state.runtime != args.wanted:
        elsewhere = persisted_elsewhere(args, state)
        found.append(
            Finding(
                cause,
                f"{args.dotted} is {state.runtime or 'unreadable'} and the runtime value "
                f"could not be changed here: {args.proc_path} is read-only (e.g. inside a "
                f"container) — {elsewhere.show() if elsewhere else args.file} sets "
                f"{args.wanted}, which takes effect at the next "
                "boot; in a container set it on the machine that runs it",
                (f"{args.proc_path}: not writable", f"runtime value: {state.runtime}"),
                fixable=False,
            )
        )
    for a in state.overriding:
        found.append(
            Finding(
                cause,
                f"{a.show()} sets {args.dotted} = {a.value} and is read after {args.file} at "
                "boot, so it wins — remove that line",
                (f"{a.show()}: {args.dotted} = {a.value}",),
                fixable=False,
            )
        )
    return found


@dataclass(frozen=True)
class SysctlFound:
    """diagnose's value: the setting's state, the file as this run finds it, the findings."""

    name: str  # dotted, as `sysctl` prints it
    wanted: str
    path: str  # the file that persists it
    state: State
    file: RemoteFile | None
    findings: tuple[Finding, ...]
    become: bool


def sysctl_found(
    args: SysctlArgs, state: State, file: RemoteFile | None, become: bool
) -> SysctlFound:
    """diagnose's value from the parsed state and the file: pure."""
    findings = tuple(findings_for(args, state))
    return SysctlFound(args.dotted, args.wanted, args.file, state, file, findings, become)


class Sysctl(StepType[SysctlArgs, SysctlFound]):
    """Diagnose: runtime value, whether /proc/sys is writable, the persisted value and
    every other file assigning the key (one round trip). Plan: the file, and `sysctl -w`
    only where the runtime differs and can be written.

    Facts: `name`, `wanted`, `runtime`, `writable`, `persisted`, `file`, `other_files`,
    `overridden_by`. Findings (not fixable; cause `overcommit` for vm.overcommit_memory,
    else the key): the runtime value could not be changed (read-only /proc/sys, e.g. a
    container), or a file read later at boot sets another value."""

    name = "sysctl"
    Args = SysctlArgs
    summary = "Set a kernel parameter at runtime (sysctl -w) and persist it in /etc/sysctl.d."
    read_only = False

    def diagnose(self, args: SysctlArgs, ctx: StepContext) -> SysctlFound:
        marker = new_marker()
        output, current = ctx.run_reading(gather_script(args, marker), args.file)
        own = current.content.decode("utf-8", "surrogateescape") if current else ""
        try:
            state = read_state(args, split_sections(output, marker), own)
        except ValueError as exc:
            raise StepError(ctx.host.name, str(exc), step=ctx.step_name) from None
        return sysctl_found(args, state, current, ctx.become)

    def registered(self, found: SysctlFound) -> StepResult:
        state = found.state
        return StepResult(
            msg=f"{found.name}: runtime {state.runtime}, {found.path}: {state.persisted}",
            facts={
                "name": found.name,
                "wanted": found.wanted,
                "runtime": state.runtime,
                "writable": state.writable,
                "persisted": state.persisted,
                "file": found.path,
                "other_files": [f"{a.show()}: {a.value}" for a in state.others],
                "overridden_by": [f"{a.show()}: {a.value}" for a in state.overriding],
            },
            findings=found.findings,
        )

    def plan(self, args: SysctlArgs, found: SysctlFound) -> list[Change]:
        state, current = found.state, found.file
        changes: list[Change] = []
        if state.persisted != args.wanted and persisted_elsewhere(args, state) is None:
            old = current.content.decode("utf-8", "surrogateescape") if current else ""
            new = set_key(old, args.dotted, args.wanted)
            changes.append(
                FileChange(
                    args.file,
                    current,
                    new.encode("utf-8", "surrogateescape"),
                    become=found.become,
                    # 0644 only for a new file: an existing one keeps its mode and owner.
                    mode=0o644 if current is None else None,
                )
            )
        if args.runtime and state.writable and state.runtime != args.wanted:
            setting = shlex.quote(f"{args.dotted}={args.wanted}")
            undo = None
            if state.runtime is not None:
                undo = f"sysctl -q -w {shlex.quote(f'{args.dotted}={state.runtime}')}"
            changes.append(
                CommandChange(
                    f"sysctl -q -w {setting}",
                    become=found.become,
                    undo_command=undo,
                )
            )
        return changes
