"""`service`: a systemd unit's running state and whether it starts at boot."""

from __future__ import annotations

import shlex
from typing import Literal

from pydantic import Field

from redmedic.errors import StepError
from redmedic.plan import Change, CommandChange, StepResult
from redmedic.steps.base import StepArgs, StepContext, StepType

_STATE_UNDO = {"start": "stop", "stop": "start", "enable": "disable", "disable": "enable"}


class ServiceArgs(StepArgs):
    name: str = Field(description="Unit name, e.g. redis-server (with or without .service).")
    state: Literal["started", "stopped", "restarted", "reloaded"] | None = Field(
        default=None, description="started, stopped, restarted (always acts) or reloaded."
    )
    enabled: bool | None = Field(default=None, description="Start at boot (true) or not (false).")


class Service(StepType[ServiceArgs]):
    """Reads `systemctl is-active`/`is-enabled` in one round trip and plans only the
    actions needed; `restarted`/`reloaded` always act, as in Ansible. Each action records
    its opposite so a failed verify can put the unit back as it was."""

    name = "service"
    Args = ServiceArgs
    summary = "Start, stop, restart or reload a systemd unit; enable or disable it at boot."
    read_only = False

    def diagnose(self, args: ServiceArgs, ctx: StepContext) -> StepResult:
        result = ctx.conn.run(_probe(args.name), become=ctx.become)
        lines = result.stdout.split()
        if not lines or lines[0] == "no-systemd":
            raise StepError(
                ctx.host.name,
                "this host has no systemd (PID 1 is not systemd) — manage the service by hand",
                step=ctx.step_name,
            )
        active = lines[0]
        enabled = lines[1] if len(lines) > 1 else "unknown"
        return StepResult(rc=0, stdout=result.stdout, facts={"active": active, "enabled": enabled})

    def plan(self, args: ServiceArgs, ctx: StepContext, found: StepResult) -> list[Change]:
        active = found.facts["active"] == "active"
        actions: list[str] = []
        if args.enabled is True and found.facts["enabled"] not in ("enabled", "static", "alias"):
            actions.append("enable")
        if args.enabled is False and found.facts["enabled"] == "enabled":
            actions.append("disable")
        if args.state == "started" and not active:
            actions.append("start")
        elif args.state == "stopped" and active:
            actions.append("stop")
        elif args.state == "restarted":
            actions.append("restart")
        elif args.state == "reloaded":
            actions.append("reload" if active else "start")
        seen = (_probe(args.name), found.stdout)
        return [self._change(action, args.name, ctx.become, seen) for action in actions]

    @staticmethod
    def _change(action: str, unit: str, become: bool, seen: tuple[str, str]) -> CommandChange:
        quoted = shlex.quote(unit)
        undo = _STATE_UNDO.get(action)
        return CommandChange(
            f"systemctl {action} {quoted}",
            display=f"systemctl {action} {unit}",
            become=become,
            undo_command=f"systemctl {undo} {quoted}" if undo else None,
            precondition=seen,
        )


def _probe(unit: str) -> str:
    """One round trip: is there systemd, is the unit active, is it enabled."""
    quoted = shlex.quote(unit)
    return (
        "if [ ! -d /run/systemd/system ]; then echo no-systemd; exit 0; fi; "
        f"systemctl is-active {quoted}; systemctl is-enabled {quoted} 2>/dev/null || true"
    )
