"""The audit log: an append-only JSON-lines record of every run that changed something.

Each line carries the run id, the user, the playbook and its hash, a timestamp, and the
event: run start, each applied change (masked diff, sealed undo data), declines, rollbacks,
each host's result. `redmedic rollback RUN_ID` reads it back: the log is the single record
of what a run did and how to undo it. Lines are written whole, flushed and fsync'ed, under
a lock, to a file only its owner can read.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redmedic.errors import UsageError
from redmedic.events import (
    ChangeApplied,
    ChangeDeclined,
    Event,
    HostFinished,
    RolledBack,
    RunFinished,
    RunStarted,
    event_name,
)

# Events worth keeping: what changed and how it ended, not every diagnose step.
_KEPT = (RunStarted, ChangeApplied, ChangeDeclined, RolledBack, HostFinished, RunFinished)


_SURROGATE = re.compile("[\ud800-\udfff]")


def json_line(record: dict[str, Any], *, ascii_only: bool = False) -> str:
    """`record` as one line of valid UTF-8 JSON, whatever bytes a host sent.

    Host output is decoded with surrogateescape, so an undecodable byte 0xff is the lone
    surrogate U+DCFF; written raw it is not UTF-8 (the write raises, or a parser rejects the
    line). It is written as the JSON escape `\\udcff` instead: every parser accepts the line,
    and `json.loads` gives back the same string, so `.encode("utf-8", "surrogateescape")`
    recovers the host's bytes exactly. Other text stays readable (no `\\u` for é or ✓),
    unless `ascii_only` (for a stream that cannot encode it): then all of it is escaped.
    """
    line = json.dumps(record, ensure_ascii=ascii_only, default=str)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


def default_audit_path() -> Path:
    """`$XDG_STATE_HOME/redmedic/audit.jsonl`, by default under ~/.local/state."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(state) / "redmedic" / "audit.jsonl"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


class AuditLog:
    """A reporter that appends the events worth auditing; wrap it around the user's reporter."""

    def __init__(
        self, path: Path, run_id: str, salt: bytes, *, rollback_of: str | None = None
    ) -> None:
        self.path = path
        self.run_id = run_id
        self.salt = salt
        self.rollback_of = rollback_of
        self.user = _user()
        self._playbook: dict[str, str] = {}
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise UsageError(
                f"cannot open the audit log: {exc.strerror or exc}",
                where=str(path),
                hint="pass --audit-log FILE somewhere writable",
            ) from None
        self._file = os.fdopen(fd, "a", encoding="utf-8")

    def __call__(self, event: Event) -> None:
        if not isinstance(event, _KEPT):
            return
        record: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "run_id": self.run_id,
            "user": self.user,
            "event": event_name(event),
            **dataclasses.asdict(event),
        }
        if isinstance(event, RunStarted):
            self._playbook = {"playbook": event.playbook, "playbook_sha256": event.playbook_sha256}
            record["salt"] = self.salt.hex()
        if self.rollback_of:
            record["rollback_of"] = self.rollback_of
        record.update(self._playbook)
        line = json_line(record)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_run(path: Path, run_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The audit records of one run, and those of later rollbacks of it, in order."""
    records, rollbacks = [], []
    for record in _records(path):
        if record.get("run_id") == run_id:
            records.append(record)
        elif record.get("rollback_of") == run_id:
            rollbacks.append(record)
    if not records:
        raise UsageError(
            f"no run {run_id!r} in the audit log",
            where=str(path),
            hint="the run id is printed when a run starts; pass --audit-log if it was elsewhere",
        )
    return records, rollbacks


def _records(path: Path) -> Iterator[dict[str, Any]]:
    try:
        # surrogateescape: a line with bytes that are not UTF-8 (written by an older or
        # another tool) is read as it is and never stops rollback reading the others.
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            for line in handle:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash: the others still count
    except FileNotFoundError:
        return
