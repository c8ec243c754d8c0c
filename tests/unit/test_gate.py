"""Confirmation gates: the on-call engineer answers y/n/a/q once per gated step."""

from __future__ import annotations

import io

from rich.console import Console

from redmedic.events import Answer, ChangePlanned, ConfirmRequest
from redmedic.report.console import ConsolePrompt, ConsoleReporter
from redmedic.run.gate import Gate

CONF = "/etc/redis/redis.conf"
DIFF = f"--- {CONF}\n+++ {CONF}\n@@ -1 +1 @@\n-bind 127.0.0.1\n+bind 0.0.0.0\n"
STEP = "Listen on all interfaces"
REQUEST = ConfirmRequest(
    "redis-1", STEP, "", (ChangePlanned("redis-1", "fix", STEP, "file", f"edit {CONF}", DIFF),)
)


def prompt(answers: str) -> tuple[ConsolePrompt, io.StringIO]:
    out = io.StringIO()
    reporter = ConsoleReporter(Console(file=out, width=100, color_system=None))
    return ConsolePrompt(reporter, io.StringIO(answers)), out


def test_the_prompt_shows_host_step_and_diff_and_reasks_until_it_understands() -> None:
    ask, out = prompt("maybe\ny\n")
    assert ask(REQUEST) is Answer.YES
    text = out.getvalue()
    assert "redis-1 › Listen on all interfaces" in text and "+bind 0.0.0.0" in text
    assert text.count("apply? [y]es/[n]o/[a]ll/[q]uit") == 2


def test_end_of_input_means_quit() -> None:
    ask, _ = prompt("")
    assert ask(REQUEST) is Answer.QUIT


def test_all_approves_the_rest_and_quit_declines_the_rest() -> None:
    answers = iter([Answer.ALL])
    gate = Gate(lambda request: next(answers), approve_all=False)
    assert gate.approve(REQUEST) and gate.approve(REQUEST)

    answers = iter([Answer.NO, Answer.QUIT])
    gate = Gate(lambda request: next(answers), approve_all=False)
    assert not gate.approve(REQUEST)
    assert not gate.approve(REQUEST)
    assert not gate.approve(REQUEST)  # not asked again after quit


def test_yes_flag_approves_without_asking() -> None:
    assert Gate(None, approve_all=True).approve(REQUEST)
    assert not Gate(None, approve_all=False).approve(REQUEST)
