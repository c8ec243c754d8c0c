"""`runtime_dir`: the directory Redis puts its unix socket and pid file in exists, with its mode.

A classic cause of "connection refused" after a reboot: /run is a tmpfs, the directory for
`unixsocket /run/redis/redis.sock` is gone, and redis-server cannot bind the socket. This
step type is also the worked example of the plugin API (see docs/writing-playbooks.md):

- `Args` is a `StepArgs` (pydantic) model: its fields and descriptions become the step's
  arguments, its docs (`redmedic steps runtime_dir`) and its JSON Schema.
- `diagnose` is the only method that reads the host, through `ctx.conn`; it returns the
  step's own frozen value (`DirState`), everything the two pure methods below need.
- `registered` says what the step reports and what a playbook can `register:` (a
  `StepResult` with `facts` and `findings`).
- `plan` turns the found value into `CommandChange` values with their undo commands, with
  no host and no context, so it is tested as data; redmedic shows them under --check, asks
  at gates, applies them, and undoes them when verify fails. The step type itself never
  changes the host.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from pydantic import Field, field_validator

from redmedic import Change, CommandChange, Finding, StepArgs, StepContext, StepResult, StepType


class RuntimeDirArgs(StepArgs):
    path: str = Field(description="The directory, e.g. /run/redis.")
    mode: str = Field(default="0755", description="Octal mode it must have, e.g. '0750'.")

    @field_validator("mode")
    @classmethod
    def _octal(cls, value: str) -> str:
        if not re.fullmatch(r"0?[0-7]{3}", value):
            raise ValueError(f"{value!r} is not an octal mode like '0755'")
        return value


@dataclass(frozen=True)
class DirState:
    """What diagnose saw: the directory's octal mode ("" when it does not exist)."""

    path: str
    mode: str
    probe: tuple[str, str]  # (the command, its output): a saved plan is refused if it changed
    become: bool


class RuntimeDir(StepType[RuntimeDirArgs, DirState]):
    """Registered facts: `exists` (bool) and `mode` (octal string such as "755", or "")."""

    name = "runtime_dir"
    Args = RuntimeDirArgs
    summary = "Ensure a runtime directory (for Redis's unix socket or pid file) exists with a mode."
    read_only = False

    def diagnose(self, args: RuntimeDirArgs, ctx: StepContext) -> DirState:
        command = _stat(shlex.quote(args.path))
        result = ctx.conn.run(command, become=ctx.become)
        return DirState(args.path, result.stdout.strip(), (command, result.stdout), ctx.become)

    def registered(self, found: DirState) -> StepResult:
        findings: tuple[Finding, ...] = ()
        if not found.mode:
            findings = (Finding("runtime_dir", f"{found.path} does not exist", (found.path,)),)
        return StepResult(
            stdout=found.probe[1],
            facts={"exists": bool(found.mode), "mode": found.mode},
            findings=findings,
        )

    def plan(self, args: RuntimeDirArgs, found: DirState) -> list[Change]:
        path = shlex.quote(args.path)
        if not found.mode:
            return [
                CommandChange(
                    f"mkdir -p -m {args.mode} {path}",
                    become=found.become,
                    undo_command=f"rmdir {path}",
                    precondition=found.probe,
                )
            ]
        if found.mode != (args.mode.lstrip("0") or "0"):
            return [
                CommandChange(
                    f"chmod {args.mode} {path}",
                    become=found.become,
                    undo_command=f"chmod {found.mode} {path}",
                    precondition=found.probe,
                )
            ]
        return []


def _stat(quoted_path: str) -> str:
    """Prints the directory's octal mode, or nothing when it does not exist."""
    return f"stat -c %a {quoted_path} 2>/dev/null || true"
