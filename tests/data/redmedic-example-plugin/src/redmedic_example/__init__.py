"""`runtime_dir`: the directory Redis puts its unix socket and pid file in exists, with its mode.

A classic cause of "connection refused" after a reboot: /run is a tmpfs, the directory for
`unixsocket /run/redis/redis.sock` is gone, and redis-server cannot bind the socket. This
step type is also the worked example of the plugin API (see docs/writing-playbooks.md):

- `Args` is a `StepArgs` (pydantic) model: its fields and descriptions become the step's
  arguments, its docs (`redmedic steps runtime_dir`) and its JSON Schema.
- `diagnose` only reads the host, through `ctx.conn`, and returns a `StepResult` whose
  `facts` a playbook can `register:`.
- `plan` turns what diagnose found into `CommandChange` values with their undo commands;
  redmedic shows them under --check, asks at gates, applies them, and undoes them when
  verify fails. The step type itself never changes the host.
"""

from __future__ import annotations

import re
import shlex

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


class RuntimeDir(StepType[RuntimeDirArgs]):
    """Registered facts: `exists` (bool) and `mode` (octal string such as "755", or "")."""

    name = "runtime_dir"
    Args = RuntimeDirArgs
    summary = "Ensure a runtime directory (for Redis's unix socket or pid file) exists with a mode."
    read_only = False

    def diagnose(self, args: RuntimeDirArgs, ctx: StepContext) -> StepResult:
        result = ctx.conn.run(_stat(shlex.quote(args.path)), become=ctx.become)
        mode = result.stdout.strip()
        findings: tuple[Finding, ...] = ()
        if not mode:
            findings = (Finding("runtime_dir", f"{args.path} does not exist", (args.path,)),)
        return StepResult(
            stdout=result.stdout, facts={"exists": bool(mode), "mode": mode}, findings=findings
        )

    def plan(self, args: RuntimeDirArgs, ctx: StepContext, found: StepResult) -> list[Change]:
        path = shlex.quote(args.path)
        # What the host looked like when planned: a saved plan is refused if this changed.
        seen = (_stat(path), found.stdout)
        if not found.facts["exists"]:
            return [
                CommandChange(
                    f"mkdir -p -m {args.mode} {path}",
                    become=ctx.become,
                    undo_command=f"rmdir {path}",
                    precondition=seen,
                )
            ]
        if found.facts["mode"] != (args.mode.lstrip("0") or "0"):
            return [
                CommandChange(
                    f"chmod {args.mode} {path}",
                    become=ctx.become,
                    undo_command=f"chmod {found.facts['mode']} {path}",
                    precondition=seen,
                )
            ]
        return []


def _stat(quoted_path: str) -> str:
    """Prints the directory's octal mode, or nothing when it does not exist."""
    return f"stat -c %a {quoted_path} 2>/dev/null || true"
