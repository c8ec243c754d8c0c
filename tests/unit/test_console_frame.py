"""The console around the hosts: a progress bar on a terminal, and the summary at the end."""

from __future__ import annotations

import io

from rich.console import Console

from redmedic.events import HostFinished, RunFinished, RunStarted
from redmedic.report.console import ConsoleReporter, summary_text


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


def test_the_summary_tallies_statuses_and_lists_each_host_on_one_line() -> None:
    hosts = {
        "redis-1": {"status": "would_change", "changed": 2, "failed": 0},
        "redis-10": {"status": "ok", "changed": 0, "failed": 0},
        "redis-2": {"status": "would_change", "changed": 1, "failed": 0},
    }
    assert summary_text(hosts).plain.splitlines() == [
        "Summary: 3 host(s) — 2 would change, 1 ok",
        "  host      status        changed  failed",
        "  redis-1   would change        2       0",
        "  redis-10  ok                  0       0",
        "  redis-2   would change        1       0",
    ]
