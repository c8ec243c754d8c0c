"""`service`: a service's running state and whether it starts at boot.

systemd first (`systemctl`); where PID 1 is not systemd but the service has a SysV init
script (`/etc/init.d/NAME`, as Debian's redis-server ships), the `service` command and
`update-rc.d` instead — the same states, the same one-round-trip read, the same undo.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from redmedic.errors import StepError
from redmedic.model.plan import Change, CommandChange, StepResult
from redmedic.steps.base import StepArgs, StepContext, StepType

_STATE_UNDO = {"start": "stop", "stop": "start", "enable": "disable", "disable": "enable"}


class ServiceArgs(StepArgs):
    name: str = Field(description="Unit name, e.g. redis-server (with or without .service).")
    state: Literal["started", "stopped", "restarted", "reloaded"] | None = Field(
        default=None, description="started, stopped, restarted (always acts) or reloaded."
    )
    enabled: bool | None = Field(default=None, description="Start at boot (true) or not (false).")


@dataclass(frozen=True)
class UnitState:
    """What the one-round-trip probe said: the init system, `is-active`, `is-enabled`."""

    init: Literal["systemd", "sysv"]
    active: str  # active, inactive, failed, ... (systemctl's words)
    enabled: str  # enabled, disabled, static, alias, ...
    probe: tuple[str, str]  # (the probe command, its output): a saved plan's precondition
    become: bool


class Service(StepType[ServiceArgs, UnitState]):
    """Reads `systemctl is-active`/`is-enabled` in one round trip and plans only the
    actions needed; `restarted`/`reloaded` always act, as in Ansible. Each action records
    its opposite so a failed verify can put the unit back as it was."""

    name = "service"
    Args = ServiceArgs
    summary = "Start, stop, restart or reload a service (systemd, else SysV); enable it at boot."
    read_only = False

    def diagnose(self, args: ServiceArgs, ctx: StepContext) -> UnitState:
        result = ctx.conn.run(_probe(args.name), become=ctx.become)
        lines = result.stdout.split()
        if not lines or lines[0] == "no-systemd":
            raise StepError(
                ctx.host.name,
                f"this host has neither systemd nor /etc/init.d/{_sysv_name(args.name)} "
                "— manage the service by hand",
                step=ctx.step_name,
            )
        init: Literal["systemd", "sysv"] = "sysv" if lines[0] == "sysv" else "systemd"
        values = lines[1:] if init == "sysv" else lines
        active = values[0] if values else "unknown"
        enabled = values[1] if len(values) > 1 else "unknown"
        return UnitState(init, active, enabled, (_probe(args.name), result.stdout), ctx.become)

    def registered(self, found: UnitState) -> StepResult:
        facts = {"init": found.init, "active": found.active, "enabled": found.enabled}
        return StepResult(rc=0, stdout=found.probe[1], facts=facts)

    def plan(self, args: ServiceArgs, found: UnitState) -> list[Change]:
        active = found.active == "active"
        actions: list[str] = []
        if args.enabled is True and found.enabled not in ("enabled", "static", "alias"):
            actions.append("enable")
        if args.enabled is False and found.enabled == "enabled":
            actions.append("disable")
        if args.state == "started" and not active:
            actions.append("start")
        elif args.state == "stopped" and active:
            actions.append("stop")
        elif args.state == "restarted":
            actions.append("restart")
        elif args.state == "reloaded":
            actions.append("reload" if active else "start")
        seen = found.probe
        command = _sysv_command if found.init == "sysv" else _systemd_command
        return [
            CommandChange(
                command(action, args.name),
                become=found.become,
                undo_command=command(_STATE_UNDO[action], args.name)
                if action in _STATE_UNDO
                else None,
                precondition=seen,
            )
            for action in actions
        ]


def _systemd_command(action: str, unit: str) -> str:
    return f"systemctl {action} {shlex.quote(unit)}"


def _sysv_command(action: str, unit: str) -> str:
    name = shlex.quote(_sysv_name(unit))
    if action in ("enable", "disable"):
        return (
            f"update-rc.d {name} defaults" if action == "enable" else f"update-rc.d {name} disable"
        )
    return f"service {name} {action}"


def _sysv_name(unit: str) -> str:
    return unit.removesuffix(".service")


def _probe(unit: str) -> str:
    """One round trip: which init, is the service active, is it enabled at boot."""
    quoted = shlex.quote(unit)
    script = shlex.quote(f"/etc/init.d/{_sysv_name(unit)}")
    sysv = shlex.quote(_sysv_name(unit))
    return (
        "if [ -d /run/systemd/system ]; then "
        f"systemctl is-active {quoted}; systemctl is-enabled {quoted} 2>/dev/null || true; "
        f"elif [ -x {script} ]; then echo sysv; "
        f"if service {sysv} status >/dev/null 2>&1; then echo active; else echo inactive; fi; "
        f"if ls /etc/rc[2345].d/S*{sysv} >/dev/null 2>&1; then echo enabled; "
        "else echo disabled; fi; "
        "else echo no-systemd; fi"
    )
