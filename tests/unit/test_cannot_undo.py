"""A command without an undo says "cannot be undone" everywhere, and is never "undone".

Given a run that started redis-server (undone by a stop) and ran `redis-cli FLUSHALL` (no
undo: tests/data/adversarial/changes-no-undo-audit.jsonl), when I roll it back, then the
gate and the report say the flush cannot be undone, only the start counts as undone, and
the host's rollback is not a success (status failed, exit 1) while the flush stays.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from redmedic.connection import ConnectOptions
from redmedic.connection.base import Connection
from redmedic.events import Answer, ConfirmRequest, Event, HostFinished, RolledBack
from redmedic.model.inventory import Host
from redmedic.model.plan import CommandChange, FileChange, shown
from redmedic.report.console import ConsoleReporter
from redmedic.run.executor import Status
from redmedic.run.gate import Gate
from redmedic.run.rollback import Rollback, undo_steps
from redmedic.testing import ScriptedConnection

HOST = Host(name="r1", address="127.0.0.1")
AUDIT = Path(__file__).parents[1] / "data" / "adversarial" / "changes-no-undo-audit.jsonl"


def test_the_plan_and_the_gate_say_a_command_without_an_undo_cannot_be_undone() -> None:
    assert shown(CommandChange("redis-cli FLUSHALL")) == "redis-cli FLUSHALL (cannot be undone)"
    start = CommandChange("systemctl start redis", undo_command="systemctl stop redis")
    assert shown(start) == "systemctl start redis"
    assert shown(FileChange("/etc/redis.conf", None, b"x\n")) == "create /etc/redis.conf"


def test_rolling_back_a_command_without_an_undo_is_reported_and_is_not_a_success() -> None:
    records = [json.loads(line) for line in AUDIT.read_text().splitlines()]
    events: list[Event] = []
    asked: list[ConfirmRequest] = []
    conns: list[ScriptedConnection] = []

    def confirm(request: ConfirmRequest) -> Answer:
        asked.append(request)
        return Answer.YES

    def connector(host: Host, options: ConnectOptions) -> Connection:
        conn = ScriptedConnection(
            {"systemctl stop redis-server": (0, "", "")},
            host=host,
        )
        conns.append(conn)
        return conn

    rollback = Rollback(
        "run-7",
        b"salt",
        undo_steps(records, []),
        [HOST],
        ConnectOptions(),
        events.append,
        Gate(confirm, approve_all=False),
        forks=1,
        connector=connector,
    )
    statuses = rollback.run("fix.yaml")

    [request] = asked
    assert [v.description for v in request.changes] == [
        "cannot be undone: redis-cli FLUSHALL",
        "undo: systemctl start redis-server",
    ]
    [report] = [e for e in events if isinstance(e, RolledBack)]
    assert report.undone == ("systemctl start redis-server",)
    assert report.undone_ids == ("r1#1",)  # a later rollback names the flush again
    assert report.cannot_undo == ("redis-cli FLUSHALL",)
    [finished] = [e for e in events if isinstance(e, HostFinished)]
    assert statuses["r1"] is Status.FAILED and finished.status == "failed"
    assert finished.message == "redis-cli FLUSHALL: cannot be undone (still in place)"
    ran = [c for conn in conns for c in conn.commands if c.startswith(("systemctl", "redis"))]
    assert ran == ["systemctl stop redis-server"]


def test_a_rollback_with_only_what_cannot_be_undone_left_runs_nothing_and_says_so() -> None:
    # Given the start was undone by an earlier rollback, when I roll the run back again,
    records = [json.loads(line) for line in AUDIT.read_text().splitlines()]
    earlier = [{"event": "rolled_back", "undone_ids": ["r1#1"]}]
    events: list[Event] = []

    def connector(host: Host, options: ConnectOptions) -> Connection:
        raise AssertionError("nothing to run: the host is not contacted")

    rollback = Rollback(
        "run-7",
        b"salt",
        undo_steps(records, earlier),
        [HOST],
        ConnectOptions(),
        events.append,
        Gate(None, approve_all=False),  # and no question is asked
        connector=connector,
    )
    # then the flush is named again and the rollback is still not a success.
    assert rollback.run("fix.yaml") == {"r1": Status.FAILED}
    [report] = [e for e in events if isinstance(e, RolledBack)]
    assert (report.undone, report.cannot_undo) == ((), ("redis-cli FLUSHALL",))


def test_the_console_report_names_what_was_undone_and_what_cannot_be() -> None:
    out = io.StringIO()
    reporter = ConsoleReporter(Console(file=out, width=120))
    reporter(RolledBack("r1", "rollback of run run-7", ("systemctl start redis-server",),
                        cannot_undo=("redis-cli FLUSHALL",)))  # fmt: skip
    text = out.getvalue()
    assert "undone: systemctl start redis-server" in text
    assert "cannot be undone (still in place): redis-cli FLUSHALL" in text
    assert "undone: redis-cli FLUSHALL" not in text
