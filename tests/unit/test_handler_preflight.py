"""The handlers a run would notify are planned before anything changes.

Given a playbook whose fix notifies a restart handler, when that handler refuses (as a
guarded restart refuses to lose data) the host fails with nothing applied, and --check says
so too; when the handler asks a question of its own (a primary with replicas) the gate asks
it before the first change, and a "no" leaves the host untouched; otherwise the handler's
change is shown once, when it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from redmedic.events import Answer, ChangeApplied, ChangePlanned, ConfirmRequest, Event
from redmedic.model.inventory import Host
from redmedic.model.plan import Change, CommandChange, StepResult
from redmedic.playbook import load_playbook
from redmedic.run.executor import HostResult, HostRun, RunOptions, Status
from redmedic.run.gate import Gate
from redmedic.steps import PlanError, StepArgs, StepContext, StepType, builtin_step_types
from redmedic.testing import ScriptedConnection


class RestartArgs(StepArgs):
    mood: str = Field(description="ok, refuse or ask")


@dataclass(frozen=True)
class Mood:
    mood: str


class FakeRestart(StepType[RestartArgs, Mood]):
    """A restart handler that plans, refuses or asks as its argument says."""

    name = "fake_restart"
    Args = RestartArgs
    summary = "test double"
    read_only = False

    def diagnose(self, args: RestartArgs, ctx: StepContext) -> Mood:
        ctx.conn.run("echo asked the server")
        return Mood(args.mood)

    def plan(self, args: RestartArgs, found: Mood) -> list[Change]:
        if found.mood == "refuse":
            raise PlanError("a restart would lose all 5 keys — set redis_allow_data_loss=true")
        return [CommandChange("restart it")]

    def question(self, args: RestartArgs, found: Mood) -> str | None:
        return "Restart a primary with 2 connected replicas?" if found.mood == "ask" else None

    def registered(self, found: Mood) -> StepResult:
        return StepResult()


PLAYBOOK = """\
name: Edit, then restart
hosts: all
fix:
  - name: Edit the config
    shell: edit the config
    notify: [restart redis]
handlers:
  - name: restart redis
    fake_restart: {{mood: {mood}}}
"""


class Story:
    def __init__(self, tmp_path: Path, mood: str) -> None:
        path = tmp_path / "playbook.yaml"
        path.write_text(PLAYBOOK.format(mood=mood))
        self.registry = builtin_step_types().with_types({"fake_restart": FakeRestart()})
        self.playbook = load_playbook(path, self.registry)
        self.conn = ScriptedConnection(
            {"echo": (0, "", ""), "edit": (0, "", ""), "restart": (0, "", "")}
        )
        self.events: list[Event] = []
        self.asked: list[ConfirmRequest] = []

    def run(self, *, check: bool = False, answer: Answer = Answer.YES) -> HostResult:
        def confirm(request: ConfirmRequest) -> Answer:
            self.asked.append(request)
            return answer

        host = HostRun(
            Host(name="redis-1", address="10.213.57.2"),
            self.playbook,
            RunOptions(check=check),
            self.registry,
            self.events.append,
            Gate(confirm, approve_all=False),
            lambda host, options: self.conn,
        )
        return host.run()

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


def test_a_refusing_handler_fails_the_host_before_any_change(tmp_path: Path) -> None:
    story = Story(tmp_path, "refuse")
    result = story.run()
    assert result.status is Status.FAILED
    assert result.message.startswith("restart redis: a restart would lose all 5 keys")
    assert not story.of(ChangeApplied)
    assert "edit the config" not in story.conn.commands


def test_under_check_the_plan_says_the_restart_would_be_refused(tmp_path: Path) -> None:
    result = Story(tmp_path, "refuse").run(check=True)
    assert result.status is Status.FAILED and "redis_allow_data_loss=true" in result.message


def test_a_handlers_own_question_is_asked_before_the_first_change(tmp_path: Path) -> None:
    story = Story(tmp_path, "ask")
    result = story.run(answer=Answer.NO)
    assert result.status is Status.DECLINED and result.changed == 0
    assert [r.question for r in story.asked] == ["Restart a primary with 2 connected replicas?"]
    assert [c.description for c in story.asked[0].changes] == ["restart it (cannot be undone)"]
    assert "edit the config" not in story.conn.commands

    approved = Story(tmp_path, "ask")
    assert approved.run(answer=Answer.YES).status is Status.CHANGED
    assert len(approved.asked) == 1
    assert approved.conn.commands.index("edit the config") < approved.conn.commands.index(
        "restart it"
    )


def test_the_handlers_change_is_shown_once_when_it_runs(tmp_path: Path) -> None:
    story = Story(tmp_path, "ok")
    assert story.run().status is Status.CHANGED
    shown = [e.step for e in story.of(ChangePlanned)]  # type: ignore[attr-defined]
    assert shown == ["Edit the config", "restart redis"]
    # asked before the edit (the pre-flight) and again, on the edited host, when it runs
    assert story.conn.commands.count("echo asked the server") == 2
