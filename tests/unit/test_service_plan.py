"""The `service` step as facts in, changes out; its one read over a scripted host."""

from __future__ import annotations

from typing import Literal

import pytest

from redmedic.errors import StepError
from redmedic.model.plan import CommandChange
from redmedic.steps.service import Service, ServiceArgs, UnitState
from redmedic.testing import ScriptedConnection, step_context

WANTED = ServiceArgs(name="redis-server", state="started", enabled=True)


def unit(active: str, enabled: str, init: Literal["systemd", "sysv"] = "systemd") -> UnitState:
    """A unit as the probe found it (the probe's output is the saved plan's precondition)."""
    return UnitState(init, active, enabled, ("probe", f"{active}\n{enabled}\n"), become=True)


def plan_for(found: UnitState, args: ServiceArgs = WANTED) -> list[CommandChange]:
    return [c for c in Service().plan(args, found) if isinstance(c, CommandChange)]


def test_a_stopped_disabled_unit_is_enabled_then_started_each_with_its_undo() -> None:
    changes = plan_for(unit("inactive", "disabled"))
    assert [(c.command, c.undo_command, c.become) for c in changes] == [
        ("systemctl enable redis-server", "systemctl disable redis-server", True),
        ("systemctl start redis-server", "systemctl stop redis-server", True),
    ]
    assert all(c.precondition == ("probe", "inactive\ndisabled\n") for c in changes)


def test_a_running_enabled_unit_needs_nothing() -> None:
    assert plan_for(unit("active", "enabled")) == []
    assert plan_for(unit("active", "static")) == []  # static units cannot be enabled


def test_restarted_always_acts_and_reloaded_starts_a_stopped_unit() -> None:
    restart = ServiceArgs(name="redis-server", state="restarted")
    assert [c.command for c in plan_for(unit("active", "enabled"), restart)] == [
        "systemctl restart redis-server"
    ]
    reload = ServiceArgs(name="redis-server", state="reloaded")
    assert [c.command for c in plan_for(unit("inactive", "enabled"), reload)] == [
        "systemctl start redis-server"
    ]


def test_a_sysv_host_uses_service_and_update_rc_d() -> None:
    changes = plan_for(unit("inactive", "disabled", init="sysv"))
    assert [(c.command, c.undo_command) for c in changes] == [
        ("update-rc.d redis-server defaults", "update-rc.d redis-server disable"),
        ("service redis-server start", "service redis-server stop"),
    ]


def test_diagnose_reads_the_unit_in_one_round_trip() -> None:
    conn = ScriptedConnection({"systemctl is-active": (0, "inactive\ndisabled\n", "")})
    found = Service().diagnose(WANTED, step_context(conn, phase="fix"))
    assert len(conn.commands) == 1
    assert (found.init, found.active, found.enabled, found.become) == (
        "systemd",
        "inactive",
        "disabled",
        False,
    )
    assert found.probe == (conn.commands[0], "inactive\ndisabled\n")
    assert Service().registered(found).facts == {
        "init": "systemd",
        "active": "inactive",
        "enabled": "disabled",
    }


def test_a_host_without_systemd_is_a_clear_error() -> None:
    conn = ScriptedConnection({"systemctl is-active": (0, "no-systemd\n", "")})
    with pytest.raises(StepError, match="neither systemd nor"):
        Service().diagnose(WANTED, step_context(conn, phase="fix"))
