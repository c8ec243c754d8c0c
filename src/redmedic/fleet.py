"""Running a playbook across hosts: a bounded thread pool per `--serial` batch.

Hosts are independent: one unreachable or failing host is reported and the others go on.
Between batches `--max-fail-percent` can stop the rollout; hosts never started are
reported as `skipped`.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from redmedic.connection import ConnectOptions, connect
from redmedic.connection.base import Connection
from redmedic.executor import Confirm, Gate, HostResult, HostRun, RunOptions, Status, batches
from redmedic.inventory import Host
from redmedic.playbook import Playbook
from redmedic.report.events import Reporter, RunFinished, RunStarted
from redmedic.steps import StepRegistry

# Exit codes, documented in the README.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2
EXIT_UNREACHABLE = 4


@dataclass(frozen=True)
class RunResult:
    hosts: tuple[HostResult, ...]

    @property
    def exit_code(self) -> int:
        """1 if a host failed or was declined, else 4 if one was unreachable, else 0."""
        statuses = {h.status for h in self.hosts}
        if statuses & {Status.FAILED, Status.DECLINED, Status.SKIPPED}:
            return EXIT_FAILED
        if Status.UNREACHABLE in statuses:
            return EXIT_UNREACHABLE
        return EXIT_OK


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
) -> RunResult:
    """Run `playbook` on `hosts`; `confirm` answers gates unless `approve_all` (--yes)."""
    reporter(RunStarted(playbook.path, tuple(h.name for h in hosts), options.check))
    gate = Gate(confirm, approve_all=approve_all)
    results: dict[str, HostResult] = {}
    stopped = False
    for batch in batches(hosts, options.serial):
        if stopped:
            for host in batch:
                results[host.name] = HostResult(
                    host.name, Status.SKIPPED, message="not started: too many failures earlier"
                )
            continue
        with ThreadPoolExecutor(max_workers=max(1, min(options.forks, len(batch)))) as pool:
            runs = [
                HostRun(h, playbook, options, registry, reporter, gate, connector) for h in batch
            ]
            for result in pool.map(HostRun.run, runs):
                results[result.host] = result
        stopped = _too_many_failures(batch, results, options.max_fail_percent)
    ordered = tuple(results[h.name] for h in hosts)
    reporter(
        RunFinished(
            {
                r.host: {"status": r.status.value, "changed": r.changed, "failed": r.failed}
                for r in ordered
            }
        )
    )
    return RunResult(ordered)


def _too_many_failures(
    batch: list[Host], results: dict[str, HostResult], limit: float | None
) -> bool:
    if limit is None:
        return False
    bad = sum(results[h.name].status in (Status.FAILED, Status.UNREACHABLE) for h in batch)
    return bad * 100.0 / len(batch) > limit
