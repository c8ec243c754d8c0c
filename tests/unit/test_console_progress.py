"""On a terminal the console shows a progress bar across hosts; it is gone when the run ends."""

from __future__ import annotations

import io

from rich.console import Console

from redmedic.report.console import ConsoleReporter
from redmedic.report.events import HostFinished, RunFinished, RunStarted


def test_a_terminal_run_shows_progress_then_only_the_summary() -> None:
    out = io.StringIO()
    reporter = ConsoleReporter(Console(file=out, width=100, force_terminal=True))
    reporter(RunStarted("fix.yaml", ("a", "b"), check=True))
    assert reporter._progress is not None
    reporter(HostFinished("a", "ok", 0, 0, ""))
    reporter(HostFinished("b", "would_change", 1, 0, ""))
    reporter(RunFinished({"a": {"status": "ok", "changed": 0, "failed": 0}}))
    assert reporter._progress is None
    assert "Summary" in out.getvalue()


def test_without_a_terminal_there_is_no_progress_bar() -> None:
    reporter = ConsoleReporter(Console(file=io.StringIO(), width=100))
    reporter(RunStarted("fix.yaml", ("a",), check=True))
    assert reporter._progress is None
