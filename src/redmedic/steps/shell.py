"""`shell`: run a command. Read-only by contract in diagnose/verify; a change in fix."""

from __future__ import annotations

from dataclasses import dataclass
from shlex import quote

from pydantic import Field

from redmedic.connection.base import ENCODING, ERRORS, CommandResult
from redmedic.connection.scripts import with_stdin
from redmedic.model.plan import Change, CommandChange, StepResult
from redmedic.steps.base import StepArgs, StepContext, StepType


class ShellArgs(StepArgs):
    cmd: str = Field(description="Command line run by /bin/sh on the host.")
    chdir: str | None = Field(default=None, description="Directory to run it in.")
    stdin: str | None = Field(
        default=None,
        description="Text given to the command on its standard input, never on a command "
        "line: the way to hand it a secret (`stdin: '{{ redis_password }}'`).",
    )


@dataclass(frozen=True)
class Ran:
    """The command's outcome in diagnose/verify (None in fix/handlers, where it is not run
    but planned), and whether a planned run would use sudo."""

    result: CommandResult | None
    become: bool


class Shell(StepType[ShellArgs, Ran]):
    """In `diagnose` and `verify` the command runs (also under --check) and is registered;
    a non-zero exit is data, not a failure, except in verify. In `fix` and `handlers` it is
    planned as a change and runs only when applying."""

    name = "shell"
    Args = ShellArgs
    summary = "Run a shell command: observed in diagnose/verify, a planned change in fix."
    free_form = "cmd"
    read_only = True

    @staticmethod
    def command(args: ShellArgs) -> str:
        """The command line the step runs (its `stdin` is sent apart: see `diagnose`)."""
        if args.chdir is None:
            return args.cmd
        return f"cd {quote(args.chdir)} && {args.cmd}"

    def batch_command(self, args: ShellArgs) -> str | None:
        return self.command(args) if args.stdin is None else None  # a batch has no stdin

    def diagnose(self, args: ShellArgs, ctx: StepContext) -> Ran:
        if ctx.phase in ("fix", "handlers"):
            return Ran(None, ctx.become)
        stdin = (args.stdin or "").encode(ENCODING, ERRORS)
        result = ctx.prefetched or ctx.conn.run(self.command(args), become=ctx.become, stdin=stdin)
        return Ran(result, ctx.become)

    def plan(self, args: ShellArgs, found: Ran) -> list[Change]:
        """A planned change is one command (what a plan file stores, and shows masked), so
        its stdin is a here-document in it: the script itself travels on the channel's
        stdin (connection/base.py), so the text is still on no command line."""
        command = self.command(args)
        if args.stdin is not None:
            command = with_stdin(command, args.stdin)
        return [CommandChange(command, become=found.become)]

    def registered(self, found: Ran) -> StepResult:
        if found.result is None:
            return StepResult()
        result = found.result
        return StepResult(rc=result.rc, stdout=result.stdout, stderr=result.stderr)
