"""Running a playbook on one host: connect → diagnose → plan → gate → apply → handlers → verify.

When verify fails (or applying fails half-way), the host's applied changes are undone in
reverse order and its notified handlers run again, so the host ends as it started. Under
--check nothing is applied: the plan is shown and the host is left byte for byte as it was.

A host runs in two halves, `prepare` (connect, diagnose, plan — or load a saved plan and
check the host did not drift) and `finish` (gate, apply, handlers, verify), so a fleet can
show a whole batch's plan and ask once before any host of it changes (--confirm-batches).
Ctrl-C (the shared `cancel` event) or a dropped connection stops a host between two
changes: it is reported `interrupted`, with the command that rolls it back.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from redmedic.connection import ConnectOptions, connect
from redmedic.connection.base import CommandResult, Connection, RemoteFile
from redmedic.connection.retry import connect_with_retries
from redmedic.connection.scripts import read_script
from redmedic.errors import (
    ConnectError,
    DriftError,
    HostError,
    RedmedicError,
    StepError,
    UnreachableError,
)
from redmedic.events import (
    ChangeApplied,
    ChangeDeclined,
    ChangePlanned,
    ConfirmRequest,
    ConnectRetried,
    Event,
    FindingReported,
    HostFinished,
    HostStarted,
    Reporter,
    RolledBack,
    StepDone,
    masked,
)
from redmedic.model.inventory import Host
from redmedic.model.plan import Applied, Change, FileChange, Finding, StepResult
from redmedic.model.templating import Templar
from redmedic.playbook import Playbook, Step, check_args, names_read
from redmedic.run.gate import Gate
from redmedic.safety.planfile import SavedHost, SavedStep, dump_change, restore_change
from redmedic.safety.secrets import Masker, UnknownSecretError
from redmedic.steps import PlanError, StepArgs, StepContext, StepRegistry
from redmedic.steps.shell import Shell


class Status(StrEnum):
    OK = "ok"
    CHANGED = "changed"
    WOULD_CHANGE = "would_change"
    DECLINED = "declined"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    SKIPPED = "skipped"  # never started: an earlier batch exceeded --max-fail-percent
    INTERRUPTED = "interrupted"  # stopped between two changes: Ctrl-C or connection lost


@dataclass(frozen=True)
class RunOptions:
    check: bool = False
    confirm_each: bool = False
    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    forks: int = 20
    serial: tuple[str, ...] = ()
    max_fail_percent: float | None = None
    confirm_batches: bool = False
    connect: ConnectOptions = field(default_factory=ConnectOptions)
    keep_plan: bool = False  # under check: keep each host's plan as data (--plan-out)
    run_id: str = ""
    salt: bytes = b""  # keys the secret placeholders of saved plans and undo records
    secrets: frozenset[str] = frozenset()  # masked on every host, e.g. vault plaintexts
    # The command line's -b: Ansible ranks it below the playbook's `become:` keywords.
    become: bool = False

    def selects(self, step: Step) -> bool:
        """--tags/--skip-tags select fix steps; diagnose and verify always run."""
        if step.phase != "fix":
            return True
        if self.skip_tags & step.tags:
            return False
        return not self.tags or bool(self.tags & (step.tags | {"all"}))


@dataclass(frozen=True)
class HostResult:
    host: str
    status: Status
    changed: int = 0
    failed: int = 0
    message: str = ""
    findings: tuple[Finding, ...] = ()


@dataclass
class _Planned:
    step: Step
    changes: list[Change]
    become: bool


class _VerifyFailed(Exception):
    """Internal: verify did not pass; carries the reason for the rollback message."""


class _Interrupted(Exception):
    """Internal: the run was cancelled (Ctrl-C) while this host was applying."""


@dataclass
class Prepared:
    """A host that is planned and still connected, waiting for `HostRun.finish`."""

    conn: Connection
    planned: list[_Planned]


def host_variables(
    host: Host, playbook: Playbook, extra: Mapping[str, Any], check: bool
) -> dict[str, Any]:
    """The variables a host's steps see, by precedence: playbook vars < inventory < -e.

    A playbook's `vars:` are its defaults (like an Ansible role's defaults/), so a shipped
    playbook adapts to each host through the inventory without being edited.
    """
    variables: dict[str, Any] = {
        "inventory_hostname": host.name,
        "inventory_hostname_short": host.name.split(".")[0],
        "group_names": list(host.groups),
        "check_mode": check,
        "playbook_dir": os.path.dirname(os.path.abspath(playbook.path)),
    }
    overrides = {**host.vars, **extra}
    templar = Templar()
    for name, value in playbook.vars.items():
        if name not in overrides:
            variables[name] = templar.render(
                value, {**variables, **overrides}, where=playbook.path, step="vars"
            )
    variables.update(overrides)
    return variables


class HostRun:
    """One host's run. Every event it emits passes through the host's secret masker."""

    def __init__(
        self,
        host: Host,
        playbook: Playbook,
        options: RunOptions,
        registry: StepRegistry,
        reporter: Reporter,
        gate: Gate,
        connector: Callable[[Host, ConnectOptions], Connection] = connect,
        *,
        cancel: threading.Event | None = None,
        saved: SavedHost | None = None,
        templar: Templar | None = None,
    ) -> None:
        self.host = host
        self.playbook = playbook
        self.options = options
        self.registry = registry
        self.reporter = reporter
        self.gate = gate
        self.connector = connector
        self.cancel = cancel or threading.Event()
        self.saved = saved  # apply this reviewed plan instead of planning
        self.saved_plan: SavedHost | None = None  # what this run planned, for --plan-out
        self.applied_count = 0
        self.templar = templar or Templar()
        own = [s for s in (host.password, host.become_password) if s]
        self.masker = Masker([*own, *options.secrets])
        self.planned_files: dict[str, RemoteFile] = {}
        self.prefetched: dict[int, CommandResult] = {}  # id(step) -> its batched output
        # (path, become) -> the file, read in the diagnose batch for the fix steps to plan on
        self.prefetched_files: dict[tuple[str, bool], RemoteFile | None] = {}
        self.findings: list[Finding] = []
        self.vars: dict[str, Any] = {}

    # -- plumbing ------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        self.reporter(masked(event, self.masker.mask))

    def become_for(self, step: Step) -> bool:
        """As in Ansible: an inventory (or -e) `ansible_become` beats the playbook's keywords,
        which beat the command line's `-b`."""
        for choice in (self.host.become, step.become, self.playbook.become):
            if choice is not None:
                return choice
        return self.options.become

    def context(self, conn: Connection, step: Step) -> StepContext:
        return StepContext(
            host=self.host,
            conn=conn,
            vars=self.vars,
            phase=step.phase,
            step_name=step.name,
            where=step.where,
            become=self.become_for(step),
            check=self.options.check,
            templar=self.templar,
            masker=self.masker,
            planned_files=self.planned_files,
            prefetched_files=self.prefetched_files,
        )

    def selected(self, step: Step) -> bool:
        return self.options.selects(step)

    def should_run(self, step: Step) -> bool:
        return all(
            self.templar.evaluate(cond, self.vars, where=step.where, step=step.name)
            for cond in step.when
        )

    def register(
        self, step: Step, result: StepResult, *, changed: bool, skipped: bool = False
    ) -> None:
        if step.sensitive and result.stdout.strip():
            self.masker.add(result.stdout.strip())
        if step.register:
            values = result.registered(changed)
            values["skipped"] = skipped
            self.vars[step.register] = values

    def step_args(self, step: Step) -> StepArgs:
        """The step's arguments rendered with the host's variables and validated."""
        where = step.where
        rendered = self.templar.render(dict(step.args), self.vars, where=where, step=step.name)
        return check_args(self.registry[step.type], rendered, lambda loc: where)  # type: ignore[no-any-return]

    def observe(self, conn: Connection, step: Step) -> tuple[StepResult, list[Change]] | None:
        """Render, validate, diagnose (and in fix/handlers, plan) one step.

        None when `when:` skipped it.
        """
        if not self.should_run(step):
            self.register(step, StepResult(), changed=False, skipped=True)
            self.emit(StepDone(self.host.name, step.phase, step.name, "skipped", "condition false"))
            return None
        step_type = self.registry[step.type]
        args = self.step_args(step)
        ctx = self.context(conn, step)
        ctx.prefetched = self.prefetched.pop(id(step), None)
        try:
            found = step_type.diagnose(args, ctx)
            changes = step_type.plan(args, found) if step.phase in ("fix", "handlers") else []
        except HostError as exc:
            if exc.step is None and not isinstance(exc, UnreachableError):
                exc.step = step.name  # a failed read or command: say which step it served
            raise
        except PlanError as exc:
            raise StepError(self.host.name, str(exc), step=step.name) from None
        result = step_type.registered(found)
        for finding in result.findings:
            self.findings.append(finding)
            self.emit(
                FindingReported(
                    self.host.name,
                    step.name,
                    finding.cause,
                    finding.summary,
                    finding.evidence,
                    finding.fixable,
                )
            )
        return result, changes

    def expectation_failure(self, step: Step, result: StepResult) -> str | None:
        """Why a diagnose/verify step's outcome counts as a failure, or None."""
        if result.failed:
            return result.msg or "failed"
        expect_rc = (
            step.expect_rc
            if step.expect_rc is not None
            else (0 if step.phase == "verify" else None)
        )
        if expect_rc is not None and result.rc != expect_rc:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            return f"exit code {result.rc}, expected {expect_rc}" + (
                f": {' '.join(tail)}" if tail else ""
            )
        if step.expect_stdout is not None:
            wanted = self.templar.render(
                step.expect_stdout, self.vars, where=step.where, step=step.name
            )
            if wanted not in result.stdout:
                got = result.stdout.strip()[:200] or "nothing"
                return f"expected {wanted!r} in its output, got {got!r}"
        return None

    def report_observation(self, step: Step, result: StepResult, failure: str | None) -> None:
        output = "(hidden: sensitive step)" if step.sensitive else result.stdout.strip()
        detail = failure or result.msg or (f"rc={result.rc}" if result.rc else "")
        self.emit(
            StepDone(
                self.host.name, step.phase, step.name, "failed" if failure else "ok", detail, output
            )
        )

    # -- phases --------------------------------------------------------------------------
    def check_steps(
        self, conn: Connection, steps: tuple[Step, ...], reads: Sequence[tuple[str, bool]] = ()
    ) -> tuple[Step, str] | None:
        """Run read-only steps in order; the first one whose outcome is a failure, and why.

        Runs of `shell` steps that do not read each other's results go to the host as one
        batch (one round trip instead of one per step); each is still registered and
        reported on its own, in order. `reads`, files (path, become) wanted later, join the
        first batch that runs with the same become.
        """
        batches = {id(group[0]): group for group in self.shell_batches(steps)}
        pending = list(reads)
        for step in steps:
            if id(step) in batches:
                group = batches[id(step)]
                become = self.become_for(group[0])
                ahead = [path for path, sudo in pending if sudo == become]
                if self.prefetch(conn, group, ahead):
                    pending = [read for read in pending if read[1] != become]
            observed = self.observe(conn, step)
            if observed is None:
                continue
            result = observed[0]
            failure = self.expectation_failure(step, result)
            self.register(step, result, changed=False)
            self.report_observation(step, result, failure)
            if failure:
                return step, failure
        return None

    def shell_batches(self, steps: tuple[Step, ...]) -> list[list[Step]]:
        """Maximal runs of independent `shell` steps with the same become."""
        groups: list[list[Step]] = []
        group: list[Step] = []
        registered: set[str] = set()
        for step in steps:
            joins = (
                isinstance(self.registry[step.type], Shell)
                and bool(group)
                and self.become_for(step) == self.become_for(group[0])
                and not names_read(self.templar, step) & registered
            )
            if not joins:
                if group:
                    groups.append(group)
                group, registered = [], set()
                if not isinstance(self.registry[step.type], Shell):
                    continue
            group.append(step)
            if step.register:
                registered.add(step.register)
        if group:
            groups.append(group)
        return groups

    def prefetch(self, conn: Connection, group: list[Step], paths: list[str]) -> bool:
        """Run a batch of shell steps' commands and read `paths`, all in one round trip.

        For `observe` and `StepContext.read_file`; False (nothing run) when that would
        not save a round trip.
        """
        wanted: list[tuple[Step, str]] = []
        for step in group:
            if self.should_run(step):
                wanted.append((step, Shell.command(self.step_args(step))))  # type: ignore[arg-type]
        commands = [cmd for _, cmd in wanted] + [read_script(path) for path in paths]
        if len(commands) < 2:
            return False
        become = self.become_for(group[0])
        try:
            results = conn.run_many(commands, become=become)
        except HostError as exc:  # e.g. --command-timeout: say which steps were running
            if exc.step is None and not isinstance(exc, UnreachableError):
                exc.step = ", ".join(step.name for step, _ in wanted)
            raise
        for (step, _), result in zip(wanted, results[: len(wanted)], strict=True):
            self.prefetched[id(step)] = result
        for path, result in zip(paths, results[len(wanted) :], strict=True):
            # An unreadable file is not kept: the step reads it again and reports the error.
            with contextlib.suppress(HostError):
                self.prefetched_files[(path, become)] = conn.file_from_result(path, result)
        return True

    def ahead_reads(self) -> list[tuple[str, bool]]:
        """Files the fix steps will read, when they are known before diagnose runs.

        Read in the diagnose batch, they cost no round trip of their own. Only for fix steps
        whose arguments and conditions read no registered variable (rendering them now gives
        what it will give in the fix phase); a step that cannot render or validate yet is
        left alone, to report that in its turn.
        """
        if self.saved is not None:
            return []
        steps = (*self.playbook.diagnose, *self.playbook.fix)
        registered = {step.register for step in steps if step.register}
        found: list[tuple[str, bool]] = []
        for step in self.playbook.fix:
            if not self.selected(step) or names_read(self.templar, step) & registered:
                continue
            try:
                if not self.should_run(step):
                    continue
                paths = self.registry[step.type].reads(self.step_args(step))
            except RedmedicError:
                continue
            become = self.become_for(step)
            found += [(path, become) for path in paths if (path, become) not in found]
        return found

    def diagnose(self, conn: Connection) -> str | None:
        failed = self.check_steps(conn, self.playbook.diagnose, self.ahead_reads())
        return f"{failed[0].name}: {failed[1]}" if failed else None

    def change_view(self, step: Step, change: Change) -> ChangePlanned:
        """How a change is shown (masked by `emit`/`confirm_request`, hidden if sensitive)."""
        diff = "(diff hidden: sensitive step)" if step.sensitive else change.diff()
        return ChangePlanned(
            self.host.name, step.phase, step.name, change.kind, change.describe(), diff
        )

    def confirm_request(self, item: _Planned) -> ConfirmRequest:
        mask = self.masker.mask
        views = tuple(masked(self.change_view(item.step, c), mask) for c in item.changes)
        return ConfirmRequest(self.host.name, item.step.name, mask(self.question(item.step)), views)  # type: ignore[arg-type]

    def plan_step(self, conn: Connection, step: Step) -> list[Change]:
        observed = self.observe(conn, step)
        if observed is None:
            return []
        result, changes = observed
        self.register(step, result, changed=bool(changes))
        for change in changes:
            self.track(change)
            self.emit(self.change_view(step, change))
        return changes

    def track(self, change: Change) -> None:
        """Record a planned file change: its secrets, and the overlay later steps read."""
        if isinstance(change, FileChange):
            self.masker.add_from_text(change.before.content if change.before else b"")
            self.masker.add_from_text(change.after)
            owner = change.before or RemoteFile(
                change.path, b"", change.mode or 0o644, "root", "root"
            )
            self.planned_files[change.path] = RemoteFile(
                change.path, change.after, owner.mode, owner.owner, owner.group
            )

    def plan(self, conn: Connection) -> list[_Planned]:
        planned = []
        for step in self.playbook.fix:
            if not self.selected(step):
                self.register(step, StepResult(), changed=False, skipped=True)
                continue
            changes = self.plan_step(conn, step)
            planned.append(_Planned(step, changes, self.become_for(step)))
        self.prefetched_files.clear()  # handlers and verify run later: they read afresh
        return planned

    def notified(self, planned: list[_Planned]) -> list[Step]:
        names = {name for p in planned if p.changes for name in p.step.notify}
        return [h for h in self.playbook.handlers if h.name in names]

    def needs_gate(self, step: Step) -> bool:
        return bool(step.confirm) or self.options.confirm_each

    def question(self, step: Step) -> str:
        return step.confirm if isinstance(step.confirm, str) else ""

    def checkpoint(self) -> None:
        if self.cancel.is_set():
            raise _Interrupted

    def apply_change(self, conn: Connection, step: Step, change: Change) -> Applied:
        """Apply one change and emit the record that lets `redmedic rollback` undo it."""
        self.checkpoint()
        applied = change.apply(conn)
        self.applied_count += 1
        seal = self.seal
        is_file = isinstance(change, FileChange)
        undo = None if is_file else change.undo_command  # type: ignore[union-attr]
        self.emit(
            ChangeApplied(
                self.host.name,
                step.phase,
                step.name,
                change.describe(),
                change_id=f"{self.host.name}#{self.applied_count}",
                kind=change.kind,
                path=change.path if isinstance(change, FileChange) else "",
                backup=applied.backup,
                after_sha256=change.after_sha256 if isinstance(change, FileChange) else "",
                command="" if isinstance(change, FileChange) else seal(change.command),
                undo=seal(undo) if undo else None,
                become=change.become,
                diff="(diff hidden: sensitive step)" if step.sensitive else change.diff(),
            )
        )
        return applied

    def seal(self, text: str) -> str:
        return self.masker.seal(text, self.options.salt)

    def apply(
        self, conn: Connection, planned: list[_Planned], applied: list[Applied]
    ) -> tuple[list[_Planned], bool]:
        """Apply approved steps in order; returns the steps applied and whether any was declined."""
        done: list[_Planned] = []
        declined = False
        for item in planned:
            if not item.changes:
                continue
            self.checkpoint()
            if self.needs_gate(item.step) and not self.gate.approve(self.confirm_request(item)):
                declined = True
                self.emit(ChangeDeclined(self.host.name, item.step.name))
                continue
            for change in item.changes:
                applied.append(self.apply_change(conn, item.step, change))
            done.append(item)
        return done, declined

    def run_handlers(self, conn: Connection, handlers: list[Step]) -> int:
        """Plan and apply each handler now; returns how many changes they made."""
        count = 0
        for handler in handlers:
            for change in self.plan_step(conn, handler):
                self.apply_change(conn, handler, change)
                count += 1
        return count

    def verify(self, conn: Connection) -> None:
        failed = self.check_steps(conn, self.playbook.verify)
        if failed:
            raise _VerifyFailed(f"verify '{failed[0].name}' failed: {failed[1]}")

    def rollback(
        self, conn: Connection, applied: list[Applied], handlers: list[Step], reason: str
    ) -> None:
        """Undo `applied` in reverse order, then run the handlers again (e.g. restart)."""
        undone, ids, errors = [], [], []
        for index, item in reversed(list(enumerate(applied, start=1))):
            try:
                item.undo(conn)
                undone.append(item.change.describe())
                ids.append(f"{self.host.name}#{index}")
            except RedmedicError as exc:
                errors.append(f"{item.change.describe()}: {exc}")
        try:
            for handler in handlers:
                for change in self.plan_step(conn, handler):
                    change.apply(conn)
        except RedmedicError as exc:
            errors.append(f"handlers: {exc}")
        self.emit(RolledBack(self.host.name, reason, tuple(undone), tuple(errors), tuple(ids)))

    # -- the whole host ------------------------------------------------------------------
    def run(self) -> HostResult:
        """Prepare and finish in one go (no batch-level gate)."""
        prepared = self.prepare()
        return prepared if isinstance(prepared, HostResult) else self.finish(prepared)

    def note_retry(self, attempt: int, delay: float, error: ConnectError) -> None:
        """Tell the user (-v) that the connection is tried again, and why."""
        retries = self.options.connect.retries
        self.emit(ConnectRetried(self.host.name, attempt, retries, round(delay, 2), error.message))

    def prepare(self) -> Prepared | HostResult:
        """Connect, diagnose and plan (or load the saved plan); a result if nothing is left."""
        self.emit(HostStarted(self.host.name))
        conn: Connection | None = None
        try:
            self.vars = host_variables(
                self.host, self.playbook, self.options.extra_vars, self.options.check
            )
            self.masker.add_from_vars(self.vars, self.playbook.sensitive_vars)
            conn = connect_with_retries(
                self.connector,
                self.host,
                self.options.connect,
                on_retry=self.note_retry,
                sleep=self.cancel.wait,
            )
            failure = self.diagnose(conn)
            if failure:
                conn.close()
                return self.done(
                    HostResult(self.host.name, Status.FAILED, failed=1, message=failure)
                )
            planned = self.load_saved(conn, self.saved) if self.saved else self.plan(conn)
            if self.options.check:
                count = sum(len(p.changes) for p in planned)
                for handler in self.notified(planned):
                    count += len(self.plan_step(conn, handler))
                if self.options.keep_plan:
                    self.saved_plan = self.save(planned, count)
                conn.close()
                status = Status.WOULD_CHANGE if count else Status.OK
                return self.done(HostResult(self.host.name, status, changed=count))
            return Prepared(conn, planned)
        except BaseException as exc:
            if conn is not None:
                conn.close()
            return self.done(self.failure(exc))

    def finish(self, prepared: Prepared) -> HostResult:
        """Gate, apply, run handlers, verify; roll back on failure. Closes the connection."""
        try:
            with prepared.conn as conn:
                result = self.apply_and_verify(conn, prepared.planned)
        except BaseException as exc:
            result = self.failure(exc)
        return self.done(result)

    def failure(self, exc: BaseException) -> HostResult:
        """The result for an exception that ended this host's run."""
        name = self.host.name
        if isinstance(exc, UnreachableError):
            return HostResult(name, Status.UNREACHABLE, message=exc.message)
        if isinstance(exc, HostError):
            return HostResult(name, Status.FAILED, failed=1, message=_step_message(exc))
        if isinstance(exc, RedmedicError):
            return HostResult(name, Status.FAILED, failed=1, message=str(exc))
        if isinstance(exc, Exception):  # a bug in a step type must not take the other hosts down
            return HostResult(
                name,
                Status.FAILED,
                failed=1,
                message=f"internal error ({type(exc).__name__}: {exc}) — please report this bug",
            )
        raise exc

    def done(self, result: HostResult) -> HostResult:
        result = HostResult(
            result.host,
            result.status,
            result.changed,
            result.failed,
            result.message,
            tuple(self.findings),
        )
        self.emit(
            HostFinished(
                result.host, result.status.value, result.changed, result.failed, result.message
            )
        )
        return result

    def interrupted(self, why: str) -> HostResult:
        undo = f"redmedic rollback {self.options.run_id} -i INVENTORY --limit {self.host.name}"
        message = f"{why} after {self.applied_count} change(s) — undo them with `{undo}`"
        if not self.applied_count:
            message = f"{why} before any change was applied"
        return HostResult(self.host.name, Status.INTERRUPTED, self.applied_count, 0, message)

    def apply_and_verify(self, conn: Connection, planned: list[_Planned]) -> HostResult:
        name = self.host.name
        applied: list[Applied] = []
        handlers: list[Step] = []
        try:
            done, declined = self.apply(conn, planned, applied)
            handlers = self.notified(done)
            self.checkpoint()
            self.run_handlers(conn, handlers)
            self.checkpoint()
            self.verify(conn)
        except _Interrupted:
            return self.interrupted("interrupted (Ctrl-C)")
        except ConnectError as exc:
            return self.interrupted(f"connection lost ({exc.message})")
        except (_VerifyFailed, HostError) as exc:
            reason = str(exc) if isinstance(exc, _VerifyFailed) else _step_message(exc)
            if applied:
                self.rollback(conn, applied, handlers or self.notified(planned), reason)
                reason += " — this host's changes were rolled back"
            return HostResult(name, Status.FAILED, changed=0, failed=1, message=reason)
        if declined:
            return HostResult(
                name, Status.DECLINED, self.applied_count, message="a change was declined"
            )
        status = Status.CHANGED if self.applied_count else Status.OK
        return HostResult(name, status, changed=self.applied_count)

    # -- saved plans ---------------------------------------------------------------------
    def save(self, planned: list[_Planned], count: int) -> SavedHost:
        """This host's plan as data for a plan file (secrets sealed, diffs masked)."""
        mask = self.masker.mask
        steps = tuple(
            SavedStep(
                self.playbook.fix.index(item.step),
                item.step.name,
                tuple(dump_change(c, self.seal, mask) for c in item.changes),
            )
            for item in planned
            if item.changes
        )
        status = Status.WOULD_CHANGE if count else Status.OK
        return SavedHost(self.host.name, status.value, steps)

    def load_saved(self, conn: Connection, saved: SavedHost) -> list[_Planned]:
        """The reviewed changes, after checking the host is still as it was when planned."""
        planned = []
        for entry in saved.steps:
            step = self.playbook.fix[entry.index] if entry.index < len(self.playbook.fix) else None
            if step is None or step.name != entry.name:
                raise DriftError(
                    self.host.name, f"the plan's step '{entry.name}' is not in the playbook"
                )
            changes = [self.load_saved_change(conn, step, data) for data in entry.changes]
            for change in changes:
                self.track(change)
                self.emit(self.change_view(step, change))
            planned.append(_Planned(step, changes, self.become_for(step)))
        return planned

    def load_saved_change(self, conn: Connection, step: Step, data: Mapping[str, Any]) -> Change:
        current = None
        if data["kind"] == "file":
            current = self.planned_files.get(data["path"]) or conn.read_file(
                data["path"], become=bool(data["become"])
            )
            have = current.sha256 if current else None
            if have != data["before_sha256"]:
                raise DriftError(
                    self.host.name,
                    f"{data['path']} changed since the plan was made — nothing was applied; "
                    "make a new plan",
                    step=step.name,
                )
            if current is not None:
                self.masker.add_from_text(current.content)
        try:
            change = restore_change(
                data, lambda t: self.masker.unseal(t, self.options.salt), current
            )
        except (UnknownSecretError, ValueError) as exc:
            raise DriftError(self.host.name, str(exc), step=step.name) from None
        if isinstance(change, FileChange) or change.precondition is None:
            return change
        check, expected = change.precondition
        now = conn.run(check, become=change.become).stdout
        if now != expected:
            seen = " ".join(now.split()) or "nothing"
            raise DriftError(
                self.host.name,
                f"the host changed since the plan was made (now: {seen}; planned against: "
                f"{' '.join(expected.split())}) — nothing was applied; make a new plan",
                step=step.name,
            )
        return change


def _step_message(exc: HostError) -> str:
    """A host error's message, led by the step it happened in when that is known."""
    return f"{exc.step}: {exc.message}" if exc.step else exc.message


def batches(hosts: list[Host], serial: tuple[str, ...]) -> Iterator[list[Host]]:
    """Split hosts into `--serial` batches: sizes like 1, 10%, 100%; the last size repeats."""
    if not serial:
        yield hosts
        return
    index, sizes = 0, list(serial)
    while index < len(hosts):
        spec = sizes.pop(0) if len(sizes) > 1 else sizes[0]
        if spec.endswith("%"):
            size = max(1, int(len(hosts) * float(spec[:-1]) / 100))
        else:
            size = max(1, int(spec))
        yield hosts[index : index + size]
        index += size
