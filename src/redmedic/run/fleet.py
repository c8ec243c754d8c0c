"""Running a playbook across hosts: a bounded thread pool per `--serial` batch (`rollout`).

Hosts are independent: one unreachable or failing host is reported and the others go on.
Between batches `--max-fail-percent` stops the rollout (with `--serial` and no percentage
given, any failure stops it: a canary that fails must not be followed by the fleet); hosts
never started are reported as `skipped`. With `--confirm-batches` every batch after the
first is planned in full, shown, and applied only when the user says so. Ctrl-C stops every
host between two changes and the run reports them `interrupted`.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from redmedic.connection import ConnectOptions, connect
from redmedic.connection.base import Connection
from redmedic.events import (
    ChangePlanned,
    Confirm,
    ConfirmRequest,
    Event,
    Reporter,
    RunFinished,
    RunStarted,
)
from redmedic.model.inventory import Host
from redmedic.model.plan import shown
from redmedic.model.templating import Templar
from redmedic.playbook import Playbook
from redmedic.run.executor import HostResult, HostRun, Prepared, RunOptions, Status
from redmedic.run.gate import Gate
from redmedic.run.rollout import batches, fail_limit, too_many_failures
from redmedic.safety.planfile import SavedHost, file_sha256
from redmedic.steps import StepRegistry

# Exit codes, documented in the README.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2
EXIT_UNREACHABLE = 4
EXIT_INTERRUPTED = 130

T = TypeVar("T")
_WAKE = 0.2  # seconds: the most a Ctrl-C waits to be seen (see `_ctrl_c_cancels`)


@dataclass(frozen=True)
class RunResult:
    hosts: tuple[HostResult, ...]
    plans: dict[str, SavedHost] = field(default_factory=dict)
    cancelled: bool = False

    @property
    def exit_code(self) -> int:
        """130 if interrupted, else `exit_code(statuses)`."""
        if self.cancelled:
            return EXIT_INTERRUPTED
        return exit_code(h.status for h in self.hosts)


def exit_code(statuses: Iterable[str]) -> int:
    """1 if a host failed, was declined, skipped or interrupted; else 4 if one was
    unreachable; else 0. Also what `redmedic report` answers for the shards' hosts."""
    found = set(statuses)
    if found & {Status.FAILED, Status.DECLINED, Status.SKIPPED, Status.INTERRUPTED}:
        return EXIT_FAILED
    if Status.UNREACHABLE in found:
        return EXIT_UNREACHABLE
    return EXIT_OK


@dataclass
class Fleet:
    """One run of one playbook over many hosts; `run()` drives it to a `RunResult`."""

    playbook: Playbook
    hosts: list[Host]
    options: RunOptions
    registry: StepRegistry
    reporter: Reporter
    confirm: Confirm | None = None
    approve_all: bool = False
    connector: Callable[[Host, ConnectOptions], Connection] = connect
    saved: dict[str, SavedHost] | None = None  # apply these reviewed plans
    cancel: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.gate = Gate(self.confirm, approve_all=self.approve_all)
        self.templar = Templar()  # shared: every host renders the same templates
        self._lock = threading.Lock()  # events from host threads reach the reporter one at a time

    def emit(self, event: Event) -> None:
        with self._lock:
            self.reporter(event)

    def host_run(self, host: Host) -> HostRun:
        # Applying a plan: a host outside it gets an empty plan (refused), never a fresh one.
        saved = (
            self.saved.get(host.name, SavedHost(host.name, "not in the plan"))
            if self.saved is not None
            else None
        )
        return HostRun(
            host,
            self.playbook,
            self.options,
            self.registry,
            self.emit,
            self.gate,
            self.connector,
            cancel=self.cancel,
            saved=saved,
            templar=self.templar,
        )

    def run(self) -> RunResult:
        self.emit(
            RunStarted(
                self.playbook.path,
                tuple(h.name for h in self.hosts),
                self.options.check,
                self.options.run_id,
                file_sha256(self.playbook.path),
            )
        )
        results: dict[str, HostResult] = {}
        plans: dict[str, SavedHost] = {}
        limit = fail_limit(self.options.max_fail_percent, self.options.serial)
        stopped = False
        for number, batch in enumerate(batches(self.hosts, self.options.serial)):
            if stopped or self.cancel.is_set():
                why = "interrupted" if self.cancel.is_set() else "too many failures earlier"
                for host in batch:
                    results[host.name] = HostResult(
                        host.name, Status.SKIPPED, message=f"not started: {why}"
                    )
                continue
            runs = [self.host_run(h) for h in batch]
            gated = self.options.confirm_batches and number > 0 and not self.options.check
            for result in self.run_batch(runs, gated):
                results[result.host] = result
            plans.update({r.host.name: r.saved_plan for r in runs if r.saved_plan is not None})
            stopped = too_many_failures(batch, results, limit)
        ordered = tuple(results[h.name] for h in self.hosts)
        self.emit(
            RunFinished(
                {
                    r.host: {"status": r.status.value, "changed": r.changed, "failed": r.failed}
                    for r in ordered
                }
            )
        )
        return RunResult(ordered, plans, self.cancel.is_set())

    def run_batch(self, runs: list[HostRun], gated: bool) -> list[HostResult]:
        """Prepare every host of the batch, ask once if gated, then finish them."""
        forks = self.options.forks
        if not gated:
            return on_hosts([r.run for r in runs], forks, self.cancel)
        prepared = on_hosts([r.prepare for r in runs], forks, self.cancel)
        try:
            approved = self.approve_batch(runs, prepared)
        except KeyboardInterrupt:
            self.cancel.set()
            raise
        return on_hosts(
            [
                partial(r.finish, p)
                if isinstance(p, Prepared) and approved
                else partial(self.decline, r, p)
                for r, p in zip(runs, prepared, strict=True)
            ],
            forks,
            self.cancel,
        )

    def approve_batch(self, runs: list[HostRun], prepared: list[Prepared | HostResult]) -> bool:
        ready = [r for r, p in zip(runs, prepared, strict=True) if isinstance(p, Prepared)]
        views = tuple(
            ChangePlanned(
                r.host.name,
                "fix",
                item.step.name,
                c.kind,
                r.masker.mask(shown(c)),
                r.masker.mask(c.diff()),
            )
            for r, p in zip(runs, prepared, strict=True)
            if isinstance(p, Prepared)
            for item in p.planned
            for c in item.changes
        )
        if not views:
            return True
        names = ", ".join(r.host.name for r in ready)
        request = ConfirmRequest(
            f"next batch ({len(ready)} hosts: {names})",
            "whole batch",
            f"{len(views)} change(s) planned for this batch.",
            views,
        )
        return self.gate.approve(request)

    @staticmethod
    def decline(run: HostRun, prepared: Prepared | HostResult) -> HostResult:
        if isinstance(prepared, HostResult):
            return prepared
        prepared.conn.close()
        return run.done(HostResult(run.host.name, Status.DECLINED, message="batch declined"))


def on_hosts(work: Sequence[Callable[[], T]], forks: int, cancel: threading.Event) -> list[T]:
    """Run one call per host on at most `forks` threads; their results in host order.

    The one pool every fleet-wide command uses (run, apply, rollback). While it runs, Ctrl-C
    sets `cancel`, which tells every host to stop between two changes; their results are
    collected anyway.
    """
    with _ctrl_c_cancels(cancel), ThreadPoolExecutor(max(1, min(forks, len(work)))) as pool:
        futures = [pool.submit(call) for call in work]
        pending = set(futures)
        while pending:
            pending = wait(pending, timeout=_WAKE).not_done
        return [f.result() for f in futures]


@contextmanager
def _ctrl_c_cancels(cancel: threading.Event) -> Iterator[None]:
    """Ctrl-C sets `cancel` instead of raising KeyboardInterrupt, until the block ends.

    An exception could land anywhere in the main thread, even while it starts a worker,
    and leave hosts running that nobody told to stop. Python runs this handler in the main
    thread only, between two bytecodes, and the kernel may hand the signal to a worker
    thread instead (one starting a command when it arrives): so the main thread waits in
    steps of `_WAKE` seconds, never in one untimed sleep that lasts until every host is done.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set a handler, and only it ever runs one
        return
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: cancel.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_playbook(
    playbook: Playbook,
    hosts: list[Host],
    options: RunOptions,
    *,
    registry: StepRegistry,
    reporter: Reporter,
    confirm: Confirm | None = None,
    approve_all: bool = False,
    connector: Callable[[Host, ConnectOptions], Connection] = connect,
    saved: dict[str, SavedHost] | None = None,
) -> RunResult:
    """Run `playbook` on `hosts`; `confirm` answers gates unless `approve_all` (--yes)."""
    fleet = Fleet(
        playbook, hosts, options, registry, reporter, confirm, approve_all, connector, saved
    )
    return fleet.run()
