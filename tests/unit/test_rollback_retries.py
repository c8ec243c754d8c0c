"""`redmedic rollback --retries N`: a host that cannot be reached yet is tried again.

Given an earlier run's change on a host whose sshd refuses twice and then answers, when I
roll the run back with --retries 2, then each retry is reported and the undo runs; with
--retries 1 the host is unreachable after one retry, and nothing was undone.
"""

from __future__ import annotations

from redmedic.connection import ConnectOptions
from redmedic.connection.base import Connection
from redmedic.errors import ConnectError
from redmedic.events import ConnectRetried, Event
from redmedic.model.inventory import Host
from redmedic.run.executor import Status
from redmedic.run.gate import Gate
from redmedic.run.rollback import Recorded, Rollback
from redmedic.testing import ScriptedConnection

HOST = Host(name="r1", address="127.0.0.1")
START = {"kind": "command", "command": "systemctl start redis-server",
         "become": True, "undo_command": "systemctl stop redis-server"}  # fmt: skip
STOP = {"kind": "command", "command": "systemctl stop redis-server",
        "become": True, "undo_command": None}  # fmt: skip


def roll_back(retries: int, refusals: int) -> tuple[Status, list[Event], list[str]]:
    events: list[Event] = []
    ran: list[str] = []
    conns: list[ScriptedConnection] = []
    attempts = 0

    def connector(host: Host, options: ConnectOptions) -> Connection:
        nonlocal attempts
        attempts += 1
        if attempts <= refusals:
            raise ConnectError(host.name, "connection to 127.0.0.1:22 refused")
        conn = ScriptedConnection(
            {"systemctl stop redis-server": (0, "", "")},
            host=host,
        )
        ran.append("connected")
        conns.append(conn)
        return conn

    rollback = Rollback(
        "run-1",
        b"salt",
        {"r1": [Recorded("r1#1", "fix", "start redis-server", START, STOP)]},
        [HOST],
        ConnectOptions(retries=retries),
        events.append,
        Gate(None, approve_all=True),
        forks=1,
        connector=connector,
        sleep=lambda _seconds: None,
    )
    statuses = rollback.run("playbook.yaml")
    ran += [c for conn in conns for c in conn.commands if c.startswith("systemctl")]
    return statuses["r1"], events, ran


def test_a_host_that_answers_after_two_refusals_is_rolled_back() -> None:
    status, events, ran = roll_back(retries=2, refusals=2)

    assert status is Status.OK
    assert [e.attempt for e in events if isinstance(e, ConnectRetried)] == [1, 2]
    assert ran == ["connected", "systemctl stop redis-server"]


def test_with_too_few_retries_the_host_is_unreachable_and_nothing_is_undone() -> None:
    status, events, ran = roll_back(retries=1, refusals=2)

    assert status is Status.UNREACHABLE
    assert [e.attempt for e in events if isinstance(e, ConnectRetried)] == [1]
    assert ran == []
