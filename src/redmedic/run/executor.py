"""Running a playbook on one host: connect → diagnose → plan → gate → apply → handlers → verify.

When verify fails (or applying fails half-way), the host's applied changes are undone in
reverse order and its notified handlers run again, so the host ends as it started. Under
--check nothing is applied: the plan is shown and the host is left byte for byte as it was.

Before the first change, the handlers the plan would notify are planned too (`preflight`):
a restart that would lose data is refused then, with nothing changed.

A host runs in two halves, `prepare` (connect, diagnose, plan — or load a saved plan and
check the host did not drift) and `finish` (gate, apply, handlers, verify), so a fleet can
show a whole batch's plan and ask once before any host of it changes (--confirm-batches).
Ctrl-C (the shared `cancel` event) or a dropped connection stops a host between two
changes: it is reported `interrupted`, with the command that rolls it back.

Beside it: `batching` runs read-only steps in shared round trips, `safety.saved` keeps and
checks reviewed plans, `rollout` splits the fleet into `--serial` batches.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any

from redmedic.connection import ConnectOptions, connect
from redmedic.connection.base import Connection, RemoteFile
from redmedic.connection.lookahead import Lookahead
from redmedic.connection.retry import connect_with_retries
from redmedic.connection.scripts import MarkerSequence, replaying
from redmedic.errors import (
    ConnectError,
    DriftError,
    HostError,
    RedmedicError,
    StepError,
    UnreachableError,
    serving,
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
from redmedic.model.plan import (
    Change,
    FileChange,
    Finding,
    StepResult,
    shown,
    takes_effect_live,
)
from redmedic.model.templating import Templar
from redmedic.playbook import Playbook, Step, check_args, names_read
from redmedic.run.batching import Batcher, FileKey, ReadAhead, ahead_reads, look_ahead
from redmedic.run.early import EarlySteps, Unconnected
from redmedic.run.gate import Gate
from redmedic.safety.apply import Applied, apply, undo
from redmedic.safety.planfile import SavedHost
from redmedic.safety.saved import check_saved_steps, restore_unchanged, saved_host
from redmedic.safety.secrets import Masker, is_secret_name
from redmedic.steps import PlanError, StepArgs, StepContext, StepRegistry


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


@dataclass(frozen=True)
class _Outcome:
    """One step diagnosed (and planned): what it found, its changes, its own gate question."""

    result: StepResult
    changes: list[Change]
    question: str | None = None


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
        self.read_ahead = ReadAhead()  # what the diagnose batches fetched for later steps
        self.markers: dict[int, MarkerSequence] = {}  # per step (id), while planning
        self.early = EarlySteps()  # steps asking from here, started while connecting
        self.findings: list[Finding] = []
        self.vars: dict[str, Any] = {}

    # -- the whole host ------------------------------------------------------------------
    def run(self) -> HostResult:
        """Prepare and finish in one go (no batch-level gate)."""
        prepared = self.prepare()
        return prepared if isinstance(prepared, HostResult) else self.finish(prepared)

    def prepare(self) -> Prepared | HostResult:
        """Connect, diagnose and plan (or load the saved plan); a result if nothing is left."""
        self.emit(HostStarted(self.host.name))
        conn: Connection | None = None
        try:
            self.load_variables()
            self.start_early(None)
            conn = self.connect()
            self.start_early(conn)
            failure = self.diagnose(conn)
            if failure:
                conn.close()
                return self.done(
                    HostResult(self.host.name, Status.FAILED, failed=1, message=failure)
                )
            planned = (
                self.load_saved(conn, self.saved) if self.saved is not None else self.plan(conn)
            )
            if self.options.check:
                result = self.checked(conn, planned)
                conn.close()
                return self.done(result)
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

    def apply_and_verify(self, conn: Connection, planned: list[_Planned]) -> HostResult:
        """The apply half; a failure after a change rolls this host back before it reports."""
        name = self.host.name
        applied: list[Applied] = []
        handlers: list[Step] = []
        try:
            if not self.preflight(conn, planned):
                declined_why = "a handler's question was declined: nothing applied"
                return HostResult(name, Status.DECLINED, message=declined_why)
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

    # -- connect -------------------------------------------------------------------------
    def load_variables(self) -> None:
        """The host's variables; the sensitive ones are masked from here on."""
        self.vars = host_variables(
            self.host, self.playbook, self.options.extra_vars, self.options.check
        )
        self.masker.add_from_vars(self.vars, self.playbook.sensitive_vars)

    def connect(self) -> Connection:
        """The host's one connection for the whole run, retried as --retries says."""
        return connect_with_retries(
            self.connector,
            self.host,
            self.options.connect,
            on_retry=self.note_retry,
            sleep=self.cancel.wait,
        )

    def start_early(self, conn: Connection | None) -> None:
        """Start the diagnose steps that wait for no other step (`run.early`): before the
        connection opens (conn None) those that need none, once it is open the others that
        no batch takes (a batch is one round trip for its steps already)."""
        steps = (*self.playbook.diagnose, *self.playbook.fix, *self.playbook.verify)
        registered = {step.register for step in (*steps, *self.playbook.handlers)}
        for step in self.playbook.diagnose:
            if self.early.started(step) or names_read(self.templar, step) & registered:
                continue
            try:
                if not self.should_run(step):
                    continue
                step_type = self.registry[step.type]
                if not step_type.may_start_early:
                    continue
                args = self.step_args(step)
                if conn is None and step_type.needs_host(args):
                    continue
                if conn is not None and step_type.batch_command(args) is not None:
                    continue
            except RedmedicError:
                continue  # reported in its turn
            ctx = self.context(conn or Unconnected(self.host), step)
            self.early.start(step, partial(step_type.diagnose, args, ctx))

    def note_retry(self, attempt: int, delay: float, error: ConnectError) -> None:
        """Tell the user (-v) that the connection is tried again, and why."""
        retries = self.options.connect.retries
        self.emit(ConnectRetried(self.host.name, attempt, retries, round(delay, 2), error.message))

    # -- diagnose and plan ---------------------------------------------------------------
    def diagnose(self, conn: Connection) -> str | None:
        """Run the diagnose steps (reading the fix steps' files ahead); why one failed."""
        conn.traffic.phase = "diagnose"  # round trips per phase: -vvv, connection.traffic
        failed = self.check_steps(conn, self.playbook.diagnose, self.files_ahead())
        return f"{failed[0].name}: {failed[1]}" if failed else None

    def files_ahead(self) -> list[FileKey]:
        """Files the selected fix steps will read, to fetch in the diagnose batch."""
        if self.saved is not None:
            return []
        steps = (*self.playbook.diagnose, *self.playbook.fix)
        registered = {step.register for step in steps if step.register}
        fix = [step for step in self.playbook.fix if self.options.selects(step)]
        return ahead_reads(fix, registered, self)

    def plan(self, conn: Connection) -> list[_Planned]:
        """Plan each selected fix step in order, on the files earlier steps will have written.

        The steps' reads are looked ahead first (`batching.look_ahead`): one batch per
        level for all of them instead of a round trip or two per step.
        """
        conn.traffic.phase = "plan"
        planned = []
        conn.lookahead = Lookahead()
        try:
            look_ahead(conn, self.lookahead_steps(), lambda step: self.attempt(conn, step))
            for step in self.playbook.fix:
                if not self.options.selects(step):
                    self.register(step, StepResult(), changed=False, skipped=True)
                    continue
                changes = self.plan_step(conn, step)
                planned.append(_Planned(step, changes, self.become_for(step)))
        finally:
            conn.lookahead = None  # handlers and verify run later: they read afresh
            self.read_ahead.files.clear()
            self.markers.clear()
        return planned

    def lookahead_steps(self) -> list[Step]:
        """The selected fix steps whose arguments and conditions read nothing a fix step
        registers (those render only in their turn)."""
        steps = (*self.playbook.fix, *self.playbook.handlers)
        registered = {step.register for step in steps if step.register}
        return [
            step
            for step in self.playbook.fix
            if self.options.selects(step) and not names_read(self.templar, step) & registered
        ]

    def attempt(self, conn: Connection, step: Step) -> None:
        """Diagnose `step` as planning will, reporting nothing (the look-ahead's try)."""
        if self.should_run(step):
            self.diagnosed(conn, step, self.step_args(step))  # plan: pure, no reads

    def checked(self, conn: Connection, planned: list[_Planned]) -> HostResult:
        """Under --check: what would change (the handlers' changes too), kept if asked."""
        count = sum(len(p.changes) for p in planned)
        for handler in self.notified(planned):
            count += len(self.plan_step(conn, handler))
        status = Status.WOULD_CHANGE if count else Status.OK
        if self.options.keep_plan:
            self.saved_plan = self.save(planned, status)
        return HostResult(self.host.name, status, changed=count)

    def notified(self, planned: list[_Planned]) -> list[Step]:
        """The handlers the changing steps notify, in the playbook's order (each once).

        A step whose every change took effect live (`takes_effect_live`: e.g. a redis.conf
        edit also made with CONFIG SET) notifies nothing: a restart would only drop clients.
        """
        names = {
            name
            for p in planned
            if any(not takes_effect_live(c) for c in p.changes)
            for name in p.step.notify
        }
        return [h for h in self.playbook.handlers if h.name in names]

    def preflight(self, conn: Connection, planned: list[_Planned]) -> bool:
        """Plan the handlers the planned changes would notify, before anything changes.

        A handler that refuses (a restart that would lose data: PlanError, so StepError)
        fails the host with nothing changed; one with a question of its own (a primary
        with replicas) asks it now, and False means it was declined. Nothing is shown or
        registered here: the handlers are planned again, on the changed host, when they run.
        """
        for handler in self.notified(planned):
            if not self.should_run(handler):
                continue
            with serving(handler.name):
                outcome = self.diagnose_and_plan(conn, handler)
            if outcome.question is None:
                continue
            item = _Planned(handler, outcome.changes, self.become_for(handler))
            if not self.gate.approve(self.confirm_request(item, outcome.question)):
                self.emit(ChangeDeclined(self.host.name, handler.name))
                return False
        return True

    # -- one step ------------------------------------------------------------------------
    def check_steps(
        self, conn: Connection, steps: tuple[Step, ...], reads: Sequence[FileKey] = ()
    ) -> tuple[Step, str] | None:
        """Run read-only steps in order; the first one whose outcome is a failure, and why.

        Runs of steps that declare a `batch_command` go to the host in one round trip, with
        `reads` (see `batching`); each step is still registered and reported on its own.
        """
        batcher = Batcher(conn, steps, self, self.read_ahead, reads)
        for index, step in enumerate(steps):
            batcher.before(index)
            observed = self.observe(conn, step)
            if observed is None:
                continue
            result = observed.result
            failure = self.expectation_failure(step, result)
            self.register(step, result, changed=False)
            self.report_observation(step, result, failure)
            if failure:
                return step, failure
        return None

    def plan_step(self, conn: Connection, step: Step) -> list[Change]:
        """A fix step's or handler's changes, registered and shown; none if `when:` is false."""
        observed = self.observe(conn, step)
        if observed is None:
            return []
        result, changes = observed.result, observed.changes
        self.register(step, result, changed=bool(changes))
        for change in changes:
            self.track(change)
            self.emit(self.change_view(step, change))
        return changes

    def observe(self, conn: Connection, step: Step) -> _Outcome | None:
        """Diagnose (and in fix/handlers, plan) one step and report its findings.

        None when `when:` skipped it. A host error raised on the way names the step.
        """
        if not self.should_run(step):
            self.register(step, StepResult(), changed=False, skipped=True)
            self.emit(StepDone(self.host.name, step.phase, step.name, "skipped", "condition false"))
            return None
        with serving(step.name):
            outcome = self.diagnose_and_plan(conn, step)
        self.report_findings(step, outcome.result)
        return outcome

    def diagnose_and_plan(self, conn: Connection, step: Step) -> _Outcome:
        """The step type's contract: diagnose reads the host; in fix and handlers, plan turns
        what it found into changes (pure) and says what it must ask at the gate; registered
        is what is reported and registered."""
        step_type = self.registry[step.type]
        args = self.step_args(step)
        found = self.diagnosed(conn, step, args)
        if step.phase not in ("fix", "handlers"):
            return _Outcome(step_type.registered(found), [])
        try:
            changes = step_type.plan(args, found)
        except PlanError as exc:
            raise StepError(self.host.name, str(exc), step=step.name) from None
        question = step_type.question(args, found) if changes else None
        return _Outcome(step_type.registered(found), changes, question)

    def diagnosed(self, conn: Connection, step: Step, args: StepArgs) -> Any:
        """What the step type's diagnose found: taken from its early start, or read now."""
        started, found = self.early.take(step)
        if started:
            return found
        with self.same_markers(conn, step):
            return self.registry[step.type].diagnose(args, self.context(conn, step))

    def same_markers(self, conn: Connection, step: Step) -> AbstractContextManager[None]:
        """While planning, a step draws the same section markers on every pass, so the
        scripts it builds match the ones its look-ahead pass had answered."""
        if conn.lookahead is None:
            return nullcontext()
        return replaying(self.markers.setdefault(id(step), MarkerSequence()))

    def register(
        self, step: Step, result: StepResult, *, changed: bool, skipped: bool = False
    ) -> None:
        """Store what the step found under its `register:` name (a sensitive one is masked)."""
        if step.sensitive:  # every form a later step or message may show: whole, each line
            for text in (result.stdout, result.stderr):
                for part in (text.strip(), *text.splitlines()):
                    self.masker.add(part.strip())
        if step.register:
            values = result.registered(changed)
            values["skipped"] = skipped
            self.vars[step.register] = values

    def report_findings(self, step: Step, result: StepResult) -> None:
        """Tell the user each named cause the step found; the host's result lists them too."""
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
            output = "" if step.sensitive else (result.stderr or result.stdout)
            tail = output.strip().splitlines()[-3:]
            return f"exit code {result.rc}, expected {expect_rc}" + (
                f": {' '.join(tail)}" if tail else ""
            )
        if step.expect_stdout is not None:
            wanted = self.templar.render(
                step.expect_stdout, self.vars, where=step.where, step=step.name
            )
            if wanted not in result.stdout:
                if step.sensitive:
                    return f"expected {wanted!r} in its output (hidden: sensitive step)"
                got = result.stdout.strip()[:200] or "nothing"
                return f"expected {wanted!r} in its output, got {got!r}"
        return None

    def report_observation(self, step: Step, result: StepResult, failure: str | None) -> None:
        """One line per read-only step: ok or failed, with its output unless sensitive."""
        output = "(hidden: sensitive step)" if step.sensitive else result.stdout.strip()
        detail = failure or result.msg or (f"rc={result.rc}" if result.rc else "")
        self.emit(
            StepDone(
                self.host.name, step.phase, step.name, "failed" if failure else "ok", detail, output
            )
        )

    # -- how a step resolves on this host (also what `batching` asks) --------------------
    def become_for(self, step: Step) -> bool:
        """As in Ansible: an inventory (or -e) `ansible_become` beats the playbook's keywords,
        which beat the command line's `-b`."""
        for choice in (self.host.become, step.become, self.playbook.become):
            if choice is not None:
                return choice
        return self.options.become

    def should_run(self, step: Step) -> bool:
        """Whether every `when:` condition holds with what is registered so far."""
        return all(
            self.templar.evaluate(cond, self.vars, where=step.where, step=step.name)
            for cond in step.when
        )

    def step_args(self, step: Step) -> StepArgs:
        """The step's arguments rendered with the host's variables and validated."""
        where = step.where
        rendered = self.templar.render(dict(step.args), self.vars, where=where, step=step.name)
        for secret in self.templar.secret_outputs(
            step.args, self.vars, self.holds_secret, where=where, step=step.name
        ):
            self.masker.add(secret)
        return check_args(self.registry[step.type], rendered, lambda loc: where)  # type: ignore[no-any-return]

    def holds_secret(self, name: str) -> bool:
        """Whether a variable (or a key read in it: `db.password`) is secret by its name."""
        return is_secret_name(name) or name in self.playbook.sensitive_vars

    def context(self, conn: Connection, step: Step) -> StepContext:
        """What the step type sees, with anything a batch already fetched for it."""
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
            prefetched=self.read_ahead.output(step),
            prefetched_files=self.read_ahead.files,
        )

    # -- the planned changes -------------------------------------------------------------
    def track(self, change: Change) -> None:
        """Record a planned file change: its secrets, and the overlay later steps read."""
        if isinstance(change, FileChange):
            self.masker.add_from_text(change.before.content if change.before else b"")
            self.masker.add_from_text(change.after)
            owner = change.before or RemoteFile(
                change.path, b"", change.mode or 0o644, "root", "root"
            )
            mode = change.mode if change.mode is not None else owner.mode
            self.planned_files[change.path] = RemoteFile(
                change.path, change.after, mode, owner.owner, owner.group
            )

    def change_view(self, step: Step, change: Change) -> ChangePlanned:
        """How a change is shown (masked by `emit`/`confirm_request`, hidden if sensitive)."""
        diff = "(diff hidden: sensitive step)" if step.sensitive else change.diff()
        return ChangePlanned(
            self.host.name, step.phase, step.name, change.kind, shown(change), diff
        )

    # -- gate and apply ------------------------------------------------------------------
    def apply(
        self, conn: Connection, planned: list[_Planned], applied: list[Applied]
    ) -> tuple[list[_Planned], bool]:
        """Apply approved steps in order; returns the steps applied and whether any was declined."""
        conn.traffic.phase = "apply"
        done: list[_Planned] = []
        declined = False
        for item in planned:
            if not item.changes:
                continue
            self.checkpoint()
            if not self.approved(item):
                declined = True
                self.emit(ChangeDeclined(self.host.name, item.step.name))
                continue
            for change in item.changes:
                applied.append(self.apply_change(conn, item.step, change))
            done.append(item)
        return done, declined

    def approved(self, item: _Planned) -> bool:
        """A step with `confirm:` (or every step, with --confirm-each) asks the gate first."""
        if not (item.step.confirm or self.options.confirm_each):
            return True
        return self.gate.approve(self.confirm_request(item))

    def confirm_request(self, item: _Planned, question: str | None = None) -> ConfirmRequest:
        """The gate's question (the step's `confirm:` text unless the step type asks its
        own) and the step's changes, masked as every output is."""
        mask = self.masker.mask
        if question is None:
            question = item.step.confirm if isinstance(item.step.confirm, str) else ""
        views = tuple(masked(self.change_view(item.step, c), mask) for c in item.changes)
        return ConfirmRequest(self.host.name, item.step.name, mask(question), views)  # type: ignore[arg-type]

    def checkpoint(self) -> None:
        """Stop here, between two changes, if the run was cancelled (Ctrl-C)."""
        if self.cancel.is_set():
            raise _Interrupted

    def apply_change(self, conn: Connection, step: Step, change: Change) -> Applied:
        """Apply one change and emit the record that lets `redmedic rollback` undo it."""
        self.checkpoint()
        applied = apply(conn, change)
        self.applied_count += 1
        mask, reverse = self.masker.mask, applied.reverse
        self.emit(
            ChangeApplied(
                self.host.name,
                step.phase,
                step.name,
                change.describe(),
                change_id=f"{self.host.name}#{self.applied_count}",
                change=change.to_data(self.seal, mask, applied=True),
                undo=reverse.to_data(self.seal, mask) if reverse is not None else None,
                diff="(diff hidden: sensitive step)" if step.sensitive else change.diff(),
            )
        )
        return applied

    def seal(self, text: str) -> str:
        """`text` with its secrets as placeholders that `apply`/`rollback` can fill again."""
        return self.masker.seal(text, self.options.salt)

    # -- handlers, verify, rollback ------------------------------------------------------
    def run_handlers(self, conn: Connection, handlers: list[Step]) -> int:
        """Plan and apply each handler now; returns how many changes they made."""
        count = 0
        for handler in handlers:
            for change in self.plan_step(conn, handler):
                self.apply_change(conn, handler, change)
                count += 1
        return count

    def verify(self, conn: Connection) -> None:
        """Run the verify steps; raise (to roll back) when one does not pass."""
        conn.traffic.phase = "verify"
        failed = self.check_steps(conn, self.playbook.verify)
        if failed:
            raise _VerifyFailed(f"verify '{failed[0].name}' failed: {failed[1]}")

    def rollback(
        self, conn: Connection, applied: list[Applied], handlers: list[Step], reason: str
    ) -> None:
        """Undo `applied` in reverse order, then run the handlers again (e.g. restart)."""
        conn.traffic.phase = "rollback"
        undone, ids, errors, kept = [], [], [], []
        for index, item in reversed(list(enumerate(applied, start=1))):
            if item.reverse is None:
                kept.append(item.change.describe())
                continue
            try:
                undo(conn, item)
                undone.append(item.change.describe())
                ids.append(f"{self.host.name}#{index}")
            except RedmedicError as exc:
                errors.append(f"{item.change.describe()}: {exc}")
        try:
            for handler in handlers:
                for change in self.plan_step(conn, handler):
                    apply(conn, change)
        except RedmedicError as exc:
            errors.append(f"handlers: {exc}")
        self.emit(
            RolledBack(
                self.host.name, reason, tuple(undone), tuple(errors), tuple(ids), tuple(kept)
            )
        )

    # -- saved plans ---------------------------------------------------------------------
    def save(self, planned: list[_Planned], status: Status) -> SavedHost:
        """This host's plan as data for a plan file (secrets sealed, diffs masked)."""
        steps = [(self.playbook.fix.index(p.step), p.step.name, p.changes) for p in planned]
        return saved_host(self.host.name, status.value, steps, self.seal, self.masker.mask)

    def load_saved(self, conn: Connection, saved: SavedHost) -> list[_Planned]:
        """The reviewed changes, after checking the host is still as it was when planned.

        Never a fresh plan: a host the plan has no changes for is refused."""
        conn.traffic.phase = "plan"
        if not saved.steps:
            raise DriftError(
                self.host.name, "the plan has no changes for this host: nothing applied"
            )
        check_saved_steps(saved, [step.name for step in self.playbook.fix])
        planned = []
        for entry in saved.steps:
            step = self.playbook.fix[entry.index]
            changes = [
                restore_unchanged(
                    conn,
                    data,
                    step=step.name,
                    planned=self.planned_files,
                    masker=self.masker,
                    salt=self.options.salt,
                )
                for data in entry.changes
            ]
            for change in changes:
                self.track(change)
                self.emit(self.change_view(step, change))
            planned.append(_Planned(step, changes, self.become_for(step)))
        return planned

    # -- results -------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        """Report an event, masked: no secret of this host reaches any output."""
        self.reporter(masked(event, self.masker.mask))

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

    def interrupted(self, why: str) -> HostResult:
        """The result of a host stopped half-way, with the command that undoes its changes."""
        undo = f"redmedic rollback {self.options.run_id} -i INVENTORY --limit {self.host.name}"
        message = f"{why} after {self.applied_count} change(s) — undo them with `{undo}`"
        if not self.applied_count:
            message = f"{why} before any change was applied"
        return HostResult(self.host.name, Status.INTERRUPTED, self.applied_count, 0, message)

    def done(self, result: HostResult) -> HostResult:
        """The final result, with the host's findings; tells the reporter the host finished."""
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


def _step_message(exc: HostError) -> str:
    """A host error's message, led by the step it happened in when that is known."""
    return f"{exc.step}: {exc.message}" if exc.step else exc.message
