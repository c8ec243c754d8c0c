"""Human output with rich: a progress bar across hosts, findings, coloured diffs, a summary.

Also the interactive gate (`ConsolePrompt`), because asking must pause the progress bar and
print on the same console.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, ClassVar, TextIO

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from redmedic.events import (
    Answer,
    ChangeApplied,
    ChangeDeclined,
    ChangePlanned,
    ConfirmRequest,
    ConnectRetried,
    Event,
    FindingReported,
    HostFinished,
    RolledBack,
    RunFinished,
    RunStarted,
    StepDone,
)
from redmedic.report.visible import visible_fields

if TYPE_CHECKING:
    from rich.progress import Progress

_STATUS_STYLE = {
    "ok": "green",
    "changed": "yellow",
    "would_change": "cyan",
    "declined": "magenta",
    "failed": "bold red",
    "unreachable": "bold red",
    "skipped": "dim",
    "interrupted": "bold magenta",
}


def diff_text(diff: str) -> Text:
    """A unified diff coloured like `git diff`."""
    text = Text()
    for line in diff.splitlines(keepends=True):
        style = ""
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        text.append(line, style=style)
    return text


def headline(description: str) -> str:
    """A multi-line command (a script) as one line: its first line — the scripts redmedic
    writes open with a comment saying what they do — and the notes `shown` ends with.

    Why: a live CONFIG SET is a 40-line script; printed whole for every change, --check
    buries the diffs that matter. The whole script is still what the gate shows before
    anything runs, and what -v, `redmedic show` and the plan file hold.
    """
    lines = description.splitlines()
    if len(lines) < 2:
        return description
    notes = lines[-1].strip() if lines[-1].strip().startswith("(") else ""
    size = len(lines) - (1 if notes else 0)
    return f"{lines[0]} [a {size}-line script: -v shows it]" + (f" {notes}" if notes else "")


def summary_text(hosts: Mapping[str, Mapping[str, object]]) -> Text:
    """The run's last words: a tally by status, then one aligned line per host.

    Plain aligned columns rather than a rich Table: as fast for 500 hosts as for 5 (a Table
    took ~60 ms to lay out 200 rows), and each host's line stays greppable.
    """
    tally: dict[str, int] = {}
    for row in hosts.values():
        tally[str(row["status"])] = tally.get(str(row["status"]), 0) + 1
    counts = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in tally.items())
    text = Text.assemble(("Summary", "bold"), f": {len(hosts)} host(s) — {counts}\n")
    rows = [
        (host, str(row["status"]), str(row["changed"]), str(row["failed"]))
        for host, row in hosts.items()
    ]
    head = ("host", "status", "changed", "failed")
    widths = [max(len(cells[i].replace("_", " ")) for cells in (head, *rows)) for i in range(4)]
    line = "  {:<{}}  {:<{}}  {:>{}}  {:>{}}\n"
    text.append(line.format(*(x for pair in zip(head, widths, strict=True) for x in pair)), "dim")
    for host, status, changed, failed in rows:
        text.append(f"  {host:<{widths[0]}}  ")
        text.append(f"{status.replace('_', ' '):<{widths[1]}}", _STATUS_STYLE.get(status, ""))
        text.append(f"  {changed:>{widths[2]}}  {failed:>{widths[3]}}\n")
    text.rstrip()
    return text


class ConsoleReporter:
    """Renders events; `verbose` also shows every diagnose step and its output."""

    def __init__(self, console: Console | None = None, *, verbose: bool = False) -> None:
        self.console = console or Console(stderr=False, highlight=False)
        self.verbose = verbose
        self._lock = threading.RLock()
        self._progress: Progress | None = None
        self._task = None
        self._check = False

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._render(visible_fields(event))  # a host's bytes never drive the terminal

    def _print(self, *renderables: object) -> None:
        self.console.print(*renderables, soft_wrap=True)

    def _say(self, style: str, mark: str, where: str, text: str) -> None:
        """One message line: `mark host › step: text`, the head in `style`."""
        self._print(Text.assemble((f"{mark} {where}:", style), " ", text))

    def _render(self, event: Event) -> None:  # one branch per event type
        if isinstance(event, RunStarted):
            self._check = event.check
            mode = " [cyan](check mode: nothing will change)[/]" if event.check else ""
            run = f" — run {escape(event.run_id)}" if event.run_id else ""
            self._print(
                f"[bold]{escape(event.playbook)}[/] on {len(event.hosts)} host(s){run}{mode}"
            )
            self._start_progress(len(event.hosts))
        elif isinstance(event, ConnectRetried):
            if self.verbose:
                self._say(
                    "yellow",
                    "↻",
                    event.host,
                    f"retry {event.attempt}/{event.retries} in {event.delay:.1f} s: {event.reason}",
                )
        elif isinstance(event, StepDone):
            where = f"{event.host} › {event.step}"
            if event.status == "failed":
                self._say("red", "✗", where, event.detail)
            elif self.verbose:
                mark = "·" if event.status == "skipped" else "✓"
                self._say("dim", mark, where, event.detail)
                if event.output and event.status != "skipped":
                    self._print(Text("    " + event.output.replace("\n", "\n    "), style="dim"))
        elif isinstance(event, FindingReported):
            style = "yellow" if event.fixable else "magenta"
            self._say(style, "!", f"{event.host} › {event.cause}", event.summary)
            for line in event.evidence:
                self._print(Text(f"    {line}", style="dim"))
        elif isinstance(event, ChangePlanned):
            verb = "would " if self._check else "plan: "
            shown = event.description if self.verbose else headline(event.description)
            self._say("cyan", "~", f"{event.host} › {event.step}", verb + shown)
            if event.diff:
                self._print(diff_text(event.diff))
        elif isinstance(event, ChangeApplied):
            shown = event.description if self.verbose else headline(event.description)
            self._say("yellow", "✓", f"{event.host} › {event.step}", f"applied {shown}")
        elif isinstance(event, ChangeDeclined):
            self._say("magenta", "-", f"{event.host} › {event.step}", "declined, not applied")
        elif isinstance(event, RolledBack):
            self._say("bold red", "↺", event.host, f"rolled back ({event.reason})")
            for item in event.undone:
                self._print(Text(f"    undone: {item}", style="dim"))
            for item in event.errors:
                self._print(Text(f"    could not undo: {item}", style="red"))
            for item in event.cannot_undo:
                self._print(Text(f"    cannot be undone (still in place): {item}", style="red"))
        elif isinstance(event, HostFinished):
            if event.status in ("failed", "unreachable", "interrupted") and event.message:
                self._say("red", "✗", event.host, event.message)
            if self._progress is not None and self._task is not None:
                self._progress.advance(self._task)
        elif isinstance(event, RunFinished):
            self._stop_progress()
            self._print(self._summary(event))

    def _summary(self, event: RunFinished) -> Text:
        return summary_text(event.hosts)

    def _start_progress(self, total: int) -> None:
        if not self.console.is_terminal:
            return
        # Imported here: rich.progress is ~15 ms of start-up that runs without a terminal
        # (pipes, CI, the benchmark) never use.
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("hosts"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self._task = self._progress.add_task("hosts", total=total)  # type: ignore[assignment]
        self._progress.start()

    def _stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Hold output and hide the progress bar while the user answers a prompt."""
        with self._lock:
            progress = self._progress
            if progress is not None:
                progress.stop()
            try:
                yield
            finally:
                if progress is not None:
                    progress.start()


class ConsolePrompt:
    """The interactive gate: shows host, step and diff, asks `apply? [y]es/[n]o/[a]ll/[q]uit`."""

    _ANSWERS: ClassVar[dict[str, Answer]] = {
        "y": Answer.YES,
        "yes": Answer.YES,
        "n": Answer.NO,
        "no": Answer.NO,
        "a": Answer.ALL,
        "all": Answer.ALL,
        "q": Answer.QUIT,
        "quit": Answer.QUIT,
    }

    def __init__(self, reporter: ConsoleReporter, stdin: TextIO) -> None:
        self.reporter = reporter
        self.stdin = stdin

    def __call__(self, request: ConfirmRequest) -> Answer:
        console = self.reporter.console
        request = visible_fields(request)  # no host output may hide or redraw the diff
        with self.reporter.paused():
            console.print(f"[bold]{escape(request.host)} › {escape(request.step)}[/]")
            for change in request.changes:
                console.print(f"  {escape(change.description)}")
                if change.diff:
                    console.print(diff_text(change.diff))
            if request.question:
                console.print(escape(request.question))
            while True:
                console.print("apply? \\[y]es/\\[n]o/\\[a]ll/\\[q]uit ", end="")
                line = self.stdin.readline()
                if not line:
                    return Answer.QUIT
                answer = self._ANSWERS.get(line.strip().lower())
                if answer is not None:
                    return answer
