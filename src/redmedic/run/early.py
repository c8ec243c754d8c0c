"""Diagnose steps that wait for no other step start at once, each in a thread of its own.

Opening an SSH connection waits for about six round trips (TCP, key exchange, login), and
each remote read for one or more. A diagnose step that never uses the connection — a probe
of Redis from the control machine (`StepType.needs_host` is False) — starts when the host
does, while the connection opens; once it is open, the other steps no batch takes start
too, so a tunnelled probe and the facts exec share their round trips (one SSH connection
carries many channels at once). Each answer (or error) is taken in the step's turn, where
it is reported as if the step had run then. Only steps whose arguments and conditions read
nothing any step registers start early: they render the same before and in their turn, and
diagnose steps only read the host, so their order does not change what they find — except
in a server's own counters of its clients: a probe may now be counted in the INFO the facts
read (a DENIED probe in rejected_connections), so no triage rule may take such a counter
for a cause by itself (`redis.diagnosis`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from redmedic.connection.base import Connection
from redmedic.playbook import Step


class Unconnected(Connection):
    """The connection an early step sees: using it is a bug in its `needs_host`."""

    def _exec(self, command: str, stdin: bytes, timeout: float | None) -> tuple[int, bytes, bytes]:
        raise AssertionError("a step that said it needs no host connection used it")

    def close(self) -> None:
        pass


@dataclass
class _Run:
    thread: threading.Thread
    found: object = None
    error: BaseException | None = None


@dataclass
class EarlySteps:
    """The steps of one host started ahead of their turn, by step (id)."""

    runs: dict[int, _Run] = field(default_factory=dict)

    def start(self, step: Step, diagnose: Callable[[], object]) -> None:
        run = _Run(threading.Thread(target=lambda: self._run(run, diagnose), daemon=True))
        run.thread.name = f"redmedic-early-{step.name}"[:60]
        self.runs[id(step)] = run
        run.thread.start()

    @staticmethod
    def _run(run: _Run, diagnose: Callable[[], object]) -> None:
        try:
            run.found = diagnose()
        except BaseException as exc:  # handed to the step's turn, raised there
            run.error = exc

    def started(self, step: Step) -> bool:
        return id(step) in self.runs

    def take(self, step: Step) -> tuple[bool, object]:
        """(True, what diagnose found) if `step` was started early (raising what it raised);
        (False, None) if not. A step is taken once: if it runs again, it runs afresh."""
        run = self.runs.pop(id(step), None)
        if run is None:
            return False, None
        run.thread.join()
        if run.error is not None:
            raise run.error
        return True, run.found
