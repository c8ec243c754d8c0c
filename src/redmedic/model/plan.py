"""The plan as data: what a step found (`StepResult`, `Finding`) and what it would change.

A fix step never touches the host while planning: it returns `Change` values. Dry-run output,
diffs, confirmation gates, apply, rollback and JSON all read these same values, so what the
user reviewed is exactly what is applied.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from redmedic.errors import CommandError

if TYPE_CHECKING:
    from redmedic.connection.base import Connection, RemoteFile


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
class Applied:
    """A change that was applied, with what it takes to undo it."""

    change: Change
    backup: str | None = None

    def undo(self, conn: Connection) -> None:
        """Put the host back as it was before this change."""
        self.change.undo(conn, self.backup)


@dataclass(frozen=True)
class FileChange:
    """Replace (or create) one file's content; `before` is what planning read."""

    path: str
    before: RemoteFile | None
    after: bytes
    become: bool = False
    mode: int | None = None  # for a file that does not exist yet

    kind = "file"

    @property
    def before_sha256(self) -> str | None:
        return self.before.sha256 if self.before is not None else None

    @property
    def after_sha256(self) -> str:
        return hashlib.sha256(self.after).hexdigest()

    def describe(self) -> str:
        verb = "create" if self.before is None else "edit"
        return f"{verb} {self.path}"

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

    def apply(self, conn: Connection) -> Applied:
        """Write atomically, refusing if the file drifted since it was read for planning."""
        backup = conn.write_file(
            self.path,
            self.after,
            expected_sha256=self.before_sha256,
            become=self.become,
            mode=self.mode,
        )
        return Applied(self, backup)

    def undo(self, conn: Connection, backup: str | None) -> None:
        conn.restore_file(self.path, backup, become=self.become)


@dataclass(frozen=True)
class CommandChange:
    """Run one command on the host; `undo` (if any) is the command that reverses it."""

    command: str
    display: str = ""
    become: bool = False
    undo_command: str | None = None
    # (command, expected stdout): the state this change was planned against, re-checked
    # before a saved plan is applied so a host that drifted is refused, never re-planned.
    precondition: tuple[str, str] | None = None

    kind = "command"

    def describe(self) -> str:
        return self.display or self.command

    def diff(self) -> str:
        return ""

    def apply(self, conn: Connection) -> Applied:
        result = conn.run(self.command, become=self.become)
        if not result.ok:
            raise CommandError(
                conn.host.name,
                f"`{self.describe()}` failed (rc={result.rc}): {result.tail()}",
            )
        return Applied(self)

    def undo(self, conn: Connection, backup: str | None) -> None:
        if self.undo_command is not None:
            conn.run(self.undo_command, become=self.become)


Change = FileChange | CommandChange
