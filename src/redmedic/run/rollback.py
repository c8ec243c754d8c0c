"""`redmedic rollback RUN_ID`: undo what an earlier run applied, from its audit records.

Per host, in reverse order: a file is put back from its backup only if it still holds
exactly what the run wrote (otherwise someone changed it since, and it is left alone and
reported); a command is reversed by its recorded undo command. Then the run's handler
commands (e.g. a restart) run once more so services pick up the restored files. Changes a
run already rolled back itself (failed verify) or that an earlier rollback undid are skipped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from redmedic.connection import ConnectOptions, connect
from redmedic.connection.base import Connection
from redmedic.errors import DriftError, RedmedicError, UnreachableError
from redmedic.events import (
    ChangePlanned,
    ConfirmRequest,
    Event,
    HostFinished,
    HostStarted,
    Reporter,
    RolledBack,
    RunFinished,
    RunStarted,
    masked,
)
from redmedic.model.inventory import Host
from redmedic.run.gate import Gate
from redmedic.safety.secrets import Masker


@dataclass(frozen=True)
class UndoStep:
    """One applied change as the audit log recorded it."""

    change_id: str
    phase: str
    kind: str
    description: str
    path: str
    backup: str | None
    after_sha256: str
    command: str
    undo: str | None
    become: bool


def undo_steps(
    records: list[dict[str, Any]], later: list[dict[str, Any]]
) -> dict[str, list[UndoStep]]:
    """Per host, the run's applied changes that are still in place, in applied order.

    `records` are the run's audit records, `later` those of rollbacks of it since.
    """
    undone = {
        cid
        for r in (*records, *later)
        if r["event"] == "rolled_back"
        for cid in r.get("undone_ids", ())
    }
    steps: dict[str, list[UndoStep]] = {}
    for r in records:
        if r["event"] != "change_applied" or r["change_id"] in undone:
            continue
        steps.setdefault(r["host"], []).append(
            UndoStep(
                r["change_id"],
                r["phase"],
                r["kind"],
                r["description"],
                r["path"],
                r["backup"],
                r["after_sha256"],
                r["command"],
                r["undo"],
                bool(r["become"]),
            )
        )
    return steps


@dataclass
class Rollback:
    run_id: str
    salt: bytes
    steps: Mapping[str, list[UndoStep]]
    hosts: list[Host]
    connect_options: ConnectOptions
    reporter: Reporter
    gate: Gate
    forks: int = 20
    connector: Callable[[Host, ConnectOptions], Connection] = connect
    secrets: frozenset[str] = frozenset()  # masked on every host, e.g. vault plaintexts

    def run(self, playbook: str) -> dict[str, str]:
        """Undo every selected host; returns each host's status."""
        lock = threading.Lock()

        def emit(event: Event, masker: Masker | None = None) -> None:
            with lock:
                self.reporter(masked(event, masker.mask) if masker else event)

        emit(RunStarted(playbook, tuple(h.name for h in self.hosts), False))
        with ThreadPoolExecutor(max_workers=max(1, min(self.forks, len(self.hosts)))) as pool:
            statuses = dict(pool.map(lambda h: (h.name, self.undo_host(h, emit)), self.hosts))
        emit(
            RunFinished(
                {
                    name: {"status": status, "changed": 0, "failed": int(status != "ok")}
                    for name, status in statuses.items()
                }
            )
        )
        return statuses

    def undo_host(self, host: Host, emit: Callable[[Event, Masker | None], None]) -> str:
        own = [s for s in (host.password, host.become_password) if s]
        masker = Masker([*own, *self.secrets])
        masker.add_from_vars(host.vars)
        emit(HostStarted(host.name), masker)
        steps = self.steps.get(host.name, [])
        fixes = [s for s in steps if s.phase != "handlers"]
        if not fixes:
            emit(
                HostFinished(host.name, "ok", 0, 0, f"nothing of run {self.run_id} left to undo"),
                masker,
            )
            return "ok"
        views = tuple(
            ChangePlanned(
                host.name, "rollback", s.change_id, s.kind, masker.mask(f"undo: {s.description}")
            )
            for s in reversed(fixes)
        )
        if not self.gate.approve(
            ConfirmRequest(host.name, f"roll back run {self.run_id}", "", views)
        ):
            emit(HostFinished(host.name, "declined", 0, 0, "rollback declined"), masker)
            return "declined"
        undone: list[str] = []
        ids: list[str] = []
        errors: list[str] = []
        try:
            with self.connector(host, self.connect_options) as conn:
                for step in reversed(fixes):
                    try:
                        self.undo_one(conn, step, masker)
                        undone.append(step.description)
                        ids.append(step.change_id)
                    except RedmedicError as exc:
                        errors.append(f"{step.description}: {exc}")
                for step in (s for s in steps if s.phase == "handlers"):
                    result = conn.run(masker.unseal(step.command, self.salt), become=step.become)
                    if not result.ok:
                        errors.append(f"{step.description}: rc={result.rc} {result.tail(2)}")
        except UnreachableError as exc:
            emit(HostFinished(host.name, "unreachable", 0, 0, exc.message), masker)
            return "unreachable"
        except RedmedicError as exc:
            errors.append(str(exc))
        emit(
            RolledBack(
                host.name,
                f"rollback of run {self.run_id}",
                tuple(undone),
                tuple(errors),
                tuple(ids),
            ),
            masker,
        )
        status = "failed" if errors else "ok"
        emit(HostFinished(host.name, status, len(undone), len(errors), "; ".join(errors)), masker)
        return status

    def undo_one(self, conn: Connection, step: UndoStep, masker: Masker) -> None:
        if step.kind == "file":
            current = conn.read_file(step.path, become=step.become)
            have = current.sha256 if current else None
            if have != step.after_sha256:
                kept = f" (the backup is still at {step.backup})" if step.backup else ""
                raise DriftError(
                    conn.host.name, f"{step.path} changed since the run; left as it is{kept}"
                )
            conn.restore_file(step.path, step.backup, become=step.become)
            return
        if step.undo:
            result = conn.run(masker.unseal(step.undo, self.salt), become=step.become)
            if not result.ok:
                raise DriftError(conn.host.name, f"undo failed (rc={result.rc}): {result.tail(2)}")
