"""Applying a change over a connection, and undoing it: the promise behind every write.

A file is written atomically with a backup, refusing if it drifted since it was planned; a
command must succeed. Undo is one path for every caller — the in-run rollback after a
failed verify and `redmedic rollback` from the audit log alike apply the change's
`reverse`: a restore of the backup that first checks the file still holds exactly what the
run wrote (a file changed since is left alone and reported), or the recorded undo command.
"""

from __future__ import annotations

from dataclasses import dataclass

from redmedic.connection.base import Connection, short_command
from redmedic.errors import CommandError, DriftError
from redmedic.model.plan import Change, CommandChange, FileChange, RestoreChange


@dataclass(frozen=True)
class Applied:
    """A change that was applied, with the backup its write made (files only)."""

    change: Change
    backup: str | None = None

    @property
    def reverse(self) -> Change | None:
        """The change that undoes this one; None when there is nothing to undo."""
        return self.change.reverse(self.backup)


def apply(conn: Connection, change: Change) -> Applied:
    """Make `change` on the host; raises DriftError or CommandError, having changed nothing."""
    match change:
        case FileChange():
            backup = conn.write_file(
                change.path,
                change.after,
                expected_sha256=change.before_sha256,
                become=change.become,
                mode=change.mode,
            )
            return Applied(change, backup)
        case CommandChange():
            result = conn.run(change.command, become=change.become)
            if not result.ok:
                shown = short_command(change.describe())
                raise CommandError(
                    conn.host.name, f"`{shown}` failed (rc={result.rc}): {result.tail()}"
                )
            return Applied(change)
        case RestoreChange():
            current = conn.read_file(change.path, become=change.become)
            if (current.sha256 if current is not None else None) != change.expected_sha256:
                kept = f" (the backup is still at {change.backup})" if change.backup else ""
                raise DriftError(
                    conn.host.name, f"{change.path} changed since the run; left as it is{kept}"
                )
            conn.restore_file(change.path, change.backup, become=change.become)
            return Applied(change)


def undo(conn: Connection, applied: Applied) -> None:
    """Put the host back as it was before `applied` (see the module docstring)."""
    reverse = applied.reverse
    if reverse is not None:
        apply(conn, reverse)
