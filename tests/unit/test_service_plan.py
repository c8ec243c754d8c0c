"""The `service` step as facts in, changes out (scripted host, see redmedic.testing)."""

from __future__ import annotations

import pytest

from redmedic.errors import StepError
from redmedic.model.plan import CommandChange
from redmedic.steps.service import Service, ServiceArgs
from redmedic.testing import ScriptedConnection, step_context

WANTED = ServiceArgs(name="redis-server", state="started", enabled=True)


def plan_for(is_active_output: str) -> list[CommandChange]:
    conn = ScriptedConnection({"systemctl is-active": (0, is_active_output, "")})
    ctx = step_context(conn, phase="fix")
    found = Service().diagnose(WANTED, ctx)
    assert len(conn.commands) == 1  # one round trip
    return [c for c in Service().plan(WANTED, found) if isinstance(c, CommandChange)]


def test_a_stopped_disabled_unit_is_enabled_then_started_each_with_its_undo() -> None:
    changes = plan_for("inactive\ndisabled\n")
    assert [(c.display, c.undo_command) for c in changes] == [
        ("systemctl enable redis-server", "systemctl disable redis-server"),
        ("systemctl start redis-server", "systemctl stop redis-server"),
    ]
    assert all(c.precondition and c.precondition[1] == "inactive\ndisabled\n" for c in changes)


def test_a_running_enabled_unit_needs_nothing() -> None:
    assert plan_for("active\nenabled\n") == []


def test_a_host_without_systemd_is_a_clear_error() -> None:
    with pytest.raises(StepError, match="neither systemd nor"):
        plan_for("no-systemd\n")
