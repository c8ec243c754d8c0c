"""The plan as data: what a step found (`StepResult`, `Finding`) and what it would change.

A fix step never touches the host while planning: it returns `Change` values. Dry-run output,
diffs, confirmation gates, apply, rollback and JSON all read these same values, so what the
user reviewed is exactly what is applied. Each change kind also owns its one serialised
form (`to_data`/`from_data`, read back by `change_from_data`): the plan file, the
`ChangeApplied` event (so the JSON output and the audit log) and `redmedic rollback` all use
it. How a change is applied over a connection is safety/apply.py's job, not this room's.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

from redmedic.model.remote import ENCODING, ERRORS, RemoteFile

Text = Callable[[str], str]
"""Turns a text into what is stored: `Masker.seal`/`mask` on the way out, `unseal` back in."""
Reader = Callable[[str, bool], RemoteFile | None]
"""(path, become) -> the file as it is on the host now, or None if absent."""


def _same(text: str) -> str:
    return text


def _absent(path: str, become: bool) -> RemoteFile | None:
    return None


@dataclass(frozen=True)
class Finding:
    """A named cause with evidence, e.g. `bind`: "bind 127.0.0.1 refuses remote clients"."""

    cause: str
    summary: str
    evidence: tuple[str, ...] = ()
    fixable: bool = True


@dataclass(frozen=True)
class StepResult:
    """What one step observed. Registered under `register:` for later `when:` expressions.

    `failed` means the step itself reports a problem (an assert that does not hold, a probe
    that did not get PONG in verify); `rc`/`stdout`/`stderr` are the command's where there
    was one; `facts` are the step type's own findings, exposed as extra registered keys.
    """

    rc: int = 0
    stdout: str = ""
    stderr: str = ""
    failed: bool = False
    msg: str = ""
    facts: Mapping[str, Any] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()

    def registered(self, changed: bool) -> dict[str, Any]:
        """The mapping a playbook sees under the step's `register:` name."""
        return {
            **self.facts,
            "rc": self.rc,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "stdout_lines": self.stdout.splitlines(),
            "failed": self.failed,
            "msg": self.msg,
            "changed": changed,
        }


_HUNK = re.compile(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@")


def unified_diff(before: str, after: str, *, fromfile: str, tofile: str, context: int = 3) -> str:
    """`diff -u` of two texts, the same as difflib's but fast on big files with small edits.

    difflib compares every line; a redis.conf is ~2,000 lines and an edit touches one. The
    common head and tail (beyond the context lines) cannot be part of any hunk, so only the
    window between them is compared and the hunk line numbers are shifted back.
    """
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    shorter = min(len(a), len(b))
    head = 0
    while head < shorter and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < shorter - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    start = max(0, head - context)
    trim = max(0, tail - context)
    lines = difflib.unified_diff(
        a[start : len(a) - trim],
        b[start : len(b) - trim],
        fromfile=fromfile,
        tofile=tofile,
        n=context,
    )

    def shift(match: re.Match[str]) -> str:
        old, new = int(match.group(1)) + start, int(match.group(3)) + start
        return f"@@ -{old}{match.group(2) or ''} +{new}{match.group(4) or ''} @@"

    out = []
    for line in lines:
        if line.startswith("@@"):
            line = _HUNK.sub(shift, line)
        out.append(line if line.endswith("\n") else line + "\n")
    return "".join(out)


@dataclass(frozen=True)
class FileChange:
    """Replace (or create) one file's content; `before` is what planning read."""

    path: str
    before: RemoteFile | None
    after: bytes
    become: bool = False
    # The mode to write: a new file's, or a change a step explicitly asks of an existing
    # one (shown by `describe`). None keeps an existing file's mode (and owner, always).
    mode: int | None = None
    effect: str | None = None  # what it does to the running service: see `LIVE`

    kind: ClassVar[str] = "file"

    @property
    def before_sha256(self) -> str | None:
        return self.before.sha256 if self.before is not None else None

    @property
    def after_sha256(self) -> str:
        return hashlib.sha256(self.after).hexdigest()

    @property
    def mode_change(self) -> tuple[int, int] | None:
        """(old, new) when writing changes an existing file's mode; None when it is kept."""
        if self.before is None or self.mode is None or self.mode == self.before.mode:
            return None
        return self.before.mode, self.mode

    def describe(self) -> str:
        """What the plan, the gate and --check say; a mode change is never left out, since
        a diff of the content alone would hide e.g. a 0600 file holding a password → 0644."""
        if self.before is None:
            made = f" (mode {self.mode:04o})" if self.mode is not None else ""
            return f"create {self.path}{made}"
        change = self.mode_change
        moded = f" (mode {change[0]:04o} → {change[1]:04o})" if change else ""
        return f"edit {self.path}{moded}"

    @cached_property
    def _diff(self) -> str:
        old = self.before.content if self.before is not None else b""
        return unified_diff(
            old.decode("utf-8", "replace"),
            self.after.decode("utf-8", "replace"),
            fromfile=self.path if self.before is not None else "/dev/null",
            tofile=self.path,
        )

    def diff(self) -> str:
        """A unified diff of the change, as `diff -u` would print it (computed once)."""
        return self._diff

    def reverse(self, backup: str | None) -> RestoreChange:
        """What undoes this change once applied: put `backup` back (None: remove the file
        the change created), but only while the file still holds exactly what was written."""
        return RestoreChange(self.path, backup, self.after_sha256, become=self.become)

    def to_data(
        self, seal: Text = _same, mask: Text = _same, *, applied: bool = False
    ) -> dict[str, Any]:
        """The change as JSON-ready data: a change to apply later (a plan file) with the bytes
        to write, sealed, and the diff, masked; one already `applied` (the audit log) with
        only what identifies it: the path and the hashes before and after."""
        data: dict[str, Any] = {
            "kind": self.kind,
            "path": self.path,
            "before_sha256": self.before_sha256,
            "after_sha256": self.after_sha256,
            "mode": self.mode,
            "become": self.become,
            "effect": self.effect,
        }
        if not applied:
            data["after"] = seal(self.after.decode(ENCODING, ERRORS))
            data["diff"] = mask(self.diff())
        return data

    @classmethod
    def from_data(
        cls, data: Mapping[str, Any], unseal: Text = _same, read: Reader = _absent
    ) -> FileChange:
        """The change `to_data()` saved, planned on the file `read` gives now.

        ValueError when that file is no longer the one planned against, or when the
        unsealed content is not exactly the reviewed bytes (other secrets than at planning).
        """
        path = data["path"]
        if "after" not in data:
            raise ValueError(f"the record of {path} keeps no content to write")
        become = bool(data["become"])
        current = read(path, become)
        if (current.sha256 if current is not None else None) != data["before_sha256"]:
            raise ValueError(
                f"{path} changed since the plan was made — nothing was applied; make a new plan"
            )
        after = unseal(data["after"]).encode(ENCODING, ERRORS)
        if hashlib.sha256(after).hexdigest() != data["after_sha256"]:
            raise ValueError(
                f"the saved content for {path} does not rebuild exactly — "
                "use the same inventory and -e values as when the plan was made"
            )
        return cls(
            path, current, after, become=become, mode=data["mode"], effect=data.get("effect")
        )


@dataclass(frozen=True)
class CommandChange:
    """Run one command on the host; `undo_command` (if any) is the command that reverses it."""

    command: str
    become: bool = False
    undo_command: str | None = None
    # (command, expected stdout): the state this change was planned against, re-checked
    # before a saved plan is applied so a host that drifted is refused, never re-planned.
    precondition: tuple[str, str] | None = None
    effect: str | None = None  # what it does to the running service: see `LIVE`

    kind: ClassVar[str] = "command"

    def describe(self) -> str:
        """The command itself: what is shown, gated and audited is what runs (masked on output)."""
        return self.command

    def diff(self) -> str:
        return ""

    def reverse(self, backup: str | None) -> CommandChange | None:
        """The undo command as a change of its own; None when nothing reverses this one."""
        if self.undo_command is None:
            return None
        return CommandChange(self.undo_command, become=self.become)

    def to_data(
        self, seal: Text = _same, mask: Text = _same, *, applied: bool = False
    ) -> dict[str, Any]:
        """The commands sealed (they are run again: by `apply`, or `rollback` for an undo
        or a handler); the precondition only while not yet `applied`."""
        data: dict[str, Any] = {
            "kind": self.kind,
            "command": seal(self.command),
            "become": self.become,
            "undo_command": seal(self.undo_command) if self.undo_command else None,
            "effect": self.effect,
        }
        if not applied:
            precondition = self.precondition
            data["precondition"] = [seal(p) for p in precondition] if precondition else None
        return data

    @classmethod
    def from_data(
        cls, data: Mapping[str, Any], unseal: Text = _same, read: Reader = _absent
    ) -> CommandChange:
        precondition = data.get("precondition")
        return cls(
            unseal(data["command"]),
            become=bool(data["become"]),
            undo_command=unseal(data["undo_command"]) if data.get("undo_command") else None,
            precondition=(unseal(precondition[0]), unseal(precondition[1]))
            if precondition
            else None,
            effect=data.get("effect"),
        )


@dataclass(frozen=True)
class RestoreChange:
    """Undo a file change: put `backup` back (None: remove the file the change created),
    only if the file still holds exactly `expected_sha256` — what the run wrote. A file
    someone changed since is left alone and reported, never overwritten."""

    path: str
    backup: str | None
    expected_sha256: str
    become: bool = False

    kind: ClassVar[str] = "restore"

    def describe(self) -> str:
        return f"restore {self.path}" if self.backup else f"remove {self.path}"

    def diff(self) -> str:
        return ""

    def reverse(self, backup: str | None) -> None:
        """A restore is itself not undone: the backup it copied from is kept."""
        return None

    def to_data(
        self, seal: Text = _same, mask: Text = _same, *, applied: bool = False
    ) -> dict[str, Any]:
        """Paths and a hash: nothing to seal or mask."""
        return {
            "kind": self.kind,
            "path": self.path,
            "backup": self.backup,
            "expected_sha256": self.expected_sha256,
            "become": self.become,
        }

    @classmethod
    def from_data(
        cls, data: Mapping[str, Any], unseal: Text = _same, read: Reader = _absent
    ) -> RestoreChange:
        return cls(
            data["path"], data["backup"], data["expected_sha256"], become=bool(data["become"])
        )


Change = FileChange | CommandChange | RestoreChange

_KINDS: dict[str, type[FileChange] | type[CommandChange] | type[RestoreChange]] = {
    kind.kind: kind for kind in (FileChange, CommandChange, RestoreChange)
}


NO_UNDO = "cannot be undone"

LIVE = "live, no restart"
"""The `effect` of a change the running service takes as it is: it notifies no handler.

A change's `effect` says what it does to the running service, for the plan to show and for
the executor to decide whether the step's `notify:` handlers (a restart) must run: None is
the general case (the handlers run, as in Ansible), `LIVE` means the running layer already
has the change (e.g. a redis.conf edit whose value was also set with CONFIG SET), and
`restart_needed(why)` says that it reaches the process only through the handlers, and why.
"""


def restart_needed(why: str) -> str:
    """The `effect` of a change the running process cannot take: it needs the restart."""
    return f"needs a restart: {why}"


def takes_effect_live(change: Change) -> bool:
    """True when the change needs none of its step's handlers to reach the running service."""
    return getattr(change, "effect", None) == LIVE


def shown(change: Change) -> str:
    """The change as the plan, the gate and --check show it: its description, what it does
    to the running service (`effect`), and for a command with no undo that it "cannot be
    undone" — a rollback leaves it in place."""
    notes = [note for note in (getattr(change, "effect", None),) if note]
    if isinstance(change, CommandChange) and change.undo_command is None:
        notes.append(NO_UNDO)
    return f"{change.describe()} ({'; '.join(notes)})" if notes else change.describe()


def change_from_data(
    data: Mapping[str, Any], unseal: Text = _same, read: Reader = _absent
) -> Change:
    """The change a `to_data` record describes, by its `kind`; ValueError if it cannot be."""
    kind = _KINDS.get(str(data.get("kind")))
    if kind is None:
        raise ValueError(f"unknown change kind {data.get('kind')!r}")
    try:
        return kind.from_data(data, unseal, read)
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"a malformed {kind.kind} change (missing or bad {exc})") from None
