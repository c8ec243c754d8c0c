"""`redmedic rollback RUN_ID`: undo what an earlier run applied, from its audit records.

Per host, in reverse order, each change's recorded reverse is applied — the same undo the
run itself makes after a failed verify (safety/apply.py): a file is put back from its backup
only if it still holds exactly what the run wrote (otherwise someone changed it since, and it
is left alone and reported); a command is reversed by its recorded undo command. Then the
run's handler commands (e.g. a restart) run once more so services pick up the restored
files. Changes a run already rolled back itself (failed verify) or that an earlier rollback
undid are skipped.

A command recorded without an undo (a `shell` command, a restart) "cannot be undone": the
gate and the report say so, it is never counted as undone, and the host's rollback ends
`failed` (exit 1) naming it — the host is not back as it was, so the rollback must not
claim it is. Such a change stays open: a later rollback of the run names it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from redmedic.connection import ConnectOptions, connect
from redmedic.connection.base import Connection
from redmedic.connection.retry import connect_with_retries
from redmedic.errors import ConnectError, RedmedicError, UnreachableError, UsageError
from redmedic.events import (
    ChangePlanned,
    ConfirmRequest,
    ConnectRetried,
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
from redmedic.model.plan import NO_UNDO, Text, change_from_data
from redmedic.run.executor import Status
from redmedic.run.fleet import on_hosts
from redmedic.run.gate import Gate
from redmedic.safety.apply import apply
from redmedic.safety.secrets import Masker


@dataclass(frozen=True)
class Recorded:
    """One applied change as the audit log recorded it (a `ChangeApplied` event)."""

    change_id: str
    phase: str
    description: str
    change: Mapping[str, Any]  # the change's `to_data` record
    undo: Mapping[str, Any] | None  # the record of its reverse; None: nothing to undo


def undo_steps(
    records: list[dict[str, Any]], later: list[dict[str, Any]], where: str | None = None
) -> dict[str, list[Recorded]]:
    """Per host, the run's applied changes that are still in place, in applied order.

    `records` are the run's audit records, `later` those of rollbacks of it since; `where`
    is the audit log, named in the error for a record this version cannot read.
    """
    undone = {
        cid
        for r in (*records, *later)
        if r["event"] == "rolled_back"
        for cid in r.get("undone_ids", ())
    }
    steps: dict[str, list[Recorded]] = {}
    for r in records:
        if r["event"] != "change_applied" or r["change_id"] in undone:
            continue
        if "change" not in r:
            raise UsageError(
                f"run {r['run_id']} was recorded by an older redmedic, in a form this one "
                "does not read",
                where=where,
                hint="roll it back with the redmedic version that made the run",
            )
        steps.setdefault(r["host"], []).append(
            Recorded(r["change_id"], r["phase"], r["description"], r["change"], r["undo"])
        )
    return steps


@dataclass
class Rollback:
    run_id: str
    salt: bytes
    steps: Mapping[str, list[Recorded]]
    hosts: list[Host]
    connect_options: ConnectOptions
    reporter: Reporter
    gate: Gate
    forks: int = 20
    connector: Callable[[Host, ConnectOptions], Connection] = connect
    secrets: frozenset[str] = frozenset()  # masked on every host, e.g. vault plaintexts
    sleep: Callable[[float], None] = time.sleep  # between connection retries

    def run(self, playbook: str) -> dict[str, Status]:
        """Undo every selected host; returns each host's status."""
        lock = threading.Lock()

        def emit(event: Event, masker: Masker | None = None) -> None:
            with lock:
                self.reporter(masked(event, masker.mask) if masker else event)

        emit(RunStarted(playbook, tuple(h.name for h in self.hosts), False))
        work = [partial(self.undo_host, h, emit) for h in self.hosts]
        # Nothing checks this cancel: once approved, a host's rollback runs to its end, so
        # Ctrl-C never leaves a host half undone (the pool still waits for every host).
        done = on_hosts(work, self.forks, threading.Event())
        statuses = dict(zip((h.name for h in self.hosts), done, strict=True))
        emit(
            RunFinished(
                {
                    name: {
                        "status": status.value,
                        "changed": 0,
                        "failed": int(status != Status.OK),
                    }
                    for name, status in statuses.items()
                }
            )
        )
        return statuses

    def connect(
        self, host: Host, emit: Callable[[Event, Masker | None], None], masker: Masker
    ) -> Connection:
        """The host's connection, retried as --retries says (connection failures only)."""

        def note(attempt: int, delay: float, error: ConnectError) -> None:
            retries = self.connect_options.retries
            emit(
                ConnectRetried(host.name, attempt, retries, round(delay, 2), error.message), masker
            )

        def wait(delay: float) -> bool:
            self.sleep(delay)
            return False  # an approved rollback is never cancelled half-way (see `run`)

        return connect_with_retries(
            self.connector, host, self.connect_options, on_retry=note, sleep=wait
        )

    def undo_host(self, host: Host, emit: Callable[[Event, Masker | None], None]) -> Status:
        own = [s for s in (host.password, host.become_password) if s]
        masker = Masker([*own, *self.secrets])
        masker.add_from_vars(host.vars)
        emit(HostStarted(host.name), masker)
        steps = self.steps.get(host.name, [])
        fixes = [s for s in steps if s.phase != "handlers"]
        if not fixes:
            emit(
                HostFinished(
                    host.name, Status.OK.value, 0, 0, f"nothing of run {self.run_id} left to undo"
                ),
                masker,
            )
            return Status.OK
        kept = tuple(s.description for s in reversed(fixes) if s.undo is None)
        if len(kept) == len(fixes):  # nothing to run: no gate, no connection, no handlers
            return self.finish(host.name, emit, masker, kept=kept)
        views = tuple(
            ChangePlanned(
                host.name,
                "rollback",
                s.change_id,
                str(s.change.get("kind", "")),
                masker.mask(
                    f"undo: {s.description}"
                    if s.undo is not None
                    else f"{NO_UNDO}: {s.description}"
                ),
            )
            for s in reversed(fixes)
        )
        if not self.gate.approve(
            ConfirmRequest(host.name, f"roll back run {self.run_id}", "", views)
        ):
            emit(HostFinished(host.name, Status.DECLINED.value, 0, 0, "rollback declined"), masker)
            return Status.DECLINED
        undone: list[str] = []
        ids: list[str] = []
        errors: list[str] = []

        def unseal(text: str) -> str:
            return masker.unseal(text, self.salt)

        try:
            with self.connect(host, emit, masker) as conn:
                for step in reversed(fixes):
                    if step.undo is None:
                        continue  # `kept`: reported as "cannot be undone"
                    try:
                        self.replay(conn, step.undo, unseal)
                        undone.append(step.description)
                        ids.append(step.change_id)
                    except (RedmedicError, ValueError) as exc:
                        errors.append(f"{step.description}: {exc}")
                for step in (s for s in steps if s.phase == "handlers"):
                    try:
                        self.replay(conn, step.change, unseal)
                    except (RedmedicError, ValueError) as exc:
                        errors.append(f"{step.description}: {exc}")
        except UnreachableError as exc:
            emit(HostFinished(host.name, Status.UNREACHABLE.value, 0, 0, exc.message), masker)
            return Status.UNREACHABLE
        except RedmedicError as exc:
            errors.append(str(exc))
        return self.finish(host.name, emit, masker, tuple(undone), tuple(errors), tuple(ids), kept)

    def finish(
        self,
        host: str,
        emit: Callable[[Event, Masker | None], None],
        masker: Masker,
        undone: tuple[str, ...] = (),
        errors: tuple[str, ...] = (),
        ids: tuple[str, ...] = (),
        kept: tuple[str, ...] = (),
    ) -> Status:
        """Report the host's rollback; failed if an undo failed or a change cannot be undone."""
        reason = f"rollback of run {self.run_id}"
        emit(RolledBack(host, reason, undone, errors, ids, kept), masker)
        problems = [*errors, *(f"{d}: {NO_UNDO} (still in place)" for d in kept)]
        status = Status.FAILED if problems else Status.OK
        emit(
            HostFinished(host, status.value, len(undone), len(problems), "; ".join(problems)),
            masker,
        )
        return status

    @staticmethod
    def replay(conn: Connection, record: Mapping[str, Any], unseal: Text) -> None:
        """Apply a recorded change (an undo, or a handler run again) as the run made it."""
        apply(conn, change_from_data(record, unseal))
