"""`redis_open_files`: give the running Redis the open files maxclients needs, without a restart.

Live first: `prlimit --pid` raises the running redis-server's limit, `CONFIG SET
maxclients` lets it take the clients the config asks for (when it runs with fewer), and
the LimitNOFILE drop-in (`redmedic.systemd.dropin`, as `systemd_dropin` writes it) gives
the next start the same; every change is then "live, no restart" and the step notifies no
handler. Whether the live raise is allowed is decided from the facts, by the kernel's
rules (`redmedic.redis.open_files`); only where it is refused does the plan say why and
fall back to the drop-in alone, whose change then needs the restart its `notify:` runs.

Undo, in reverse: the drop-in goes (or back as it was) and systemd reloads, maxclients is
set back, prlimit puts the old limits back (lowering is always allowed).

Diagnose reads everything in ONE round trip: systemd's view of the unit (MainPID,
LimitNOFILE), the drop-in, the process's /proc limits and ids, the caller's capabilities,
the tools, and the running maxclients (redis-cli, the password on stdin).
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator, model_validator

from redmedic.connection.scripts import marker_line, new_marker, split_sections, with_stdin
from redmedic.errors import StepError
from redmedic.model.plan import LIVE, Change, CommandChange, StepResult, restart_needed
from redmedic.redis import configset
from redmedic.redis.facts import as_int
from redmedic.redis.open_files import (
    Caller,
    Process,
    Raise,
    live_raise,
    needed_files,
    parse_maxclients,
    shown_limit,
)
from redmedic.steps.base import StepArgs, StepContext, StepType
from redmedic.systemd.dropin import (
    Dropin,
    DropinState,
    check_unit,
    check_word,
    dropin_state,
    plan_dropin,
    show_script,
)

_CLI_TIMEOUT_S = 5


class RedisOpenFilesArgs(StepArgs):
    unit: str = Field(description="systemd unit of Redis, e.g. redis-server.")
    nofile: int = Field(
        ge=1, description="LimitNOFILE for the unit, and the limit the live raise aims at."
    )
    maxclients: int = Field(
        ge=1,
        description="The maxclients the config asks for: needs maxclients + 32 open files; "
        "set live with CONFIG SET when Redis runs with fewer.",
    )
    name: str = Field(
        default="zz-redmedic-nofile",
        description="Drop-in file name without `.conf` (read after other drop-ins).",
    )
    host: str = Field(default="127.0.0.1", description="Address redis-cli uses on the host.")
    port: int = Field(default=6379, ge=1, le=65535, description="Port redis-cli uses.")
    password: str | None = Field(
        default=None, description="Redis password for redis-cli (on stdin, never in argv)."
    )

    _unit = field_validator("unit")(check_unit)
    _name = field_validator("name")(check_word)

    @model_validator(mode="after")
    def _enough(self) -> RedisOpenFilesArgs:
        if self.nofile < needed_files(self.maxclients):
            raise ValueError(
                f"nofile {self.nofile} is below the {needed_files(self.maxclients)} "
                f"open files maxclients {self.maxclients} needs"
            )
        return self

    @property
    def dropin(self) -> Dropin:
        return Dropin(self.unit, self.name, "Service", {"LimitNOFILE": self.nofile})

    @property
    def cli(self) -> str:
        return f"redis-cli -h {shlex.quote(self.host)} -p {self.port}"


@dataclass(frozen=True)
class OpenFilesFound:
    """The drop-in's state, the process, and the decision: a `Raise` (or None when the
    process already has the files) and whether maxclients is set live; or `refused`, why
    the live path cannot be taken."""

    dropin: DropinState
    process: Process | None
    caller: Caller
    running_maxclients: int | None
    needed: int
    raise_: Raise | None
    set_maxclients: bool
    refused: str | None
    cli_error: str | None
    password: str | None


def gather_script(args: RedisOpenFilesArgs, marker: str) -> str:
    """The round trip after `show_script` (which sets `$unit`): sections `caller`,
    `tools`, `nr-open`, and with a running process `limits`, `status`, `maxclients`."""

    def sec(name: str) -> str:
        return marker_line(marker, name)

    cli = f"timeout {_CLI_TIMEOUT_S} {args.cli} --raw CONFIG GET maxclients 2>&1"
    if args.password:
        auth = "IFS= read -r REDISCLI_AUTH || :; export REDISCLI_AUTH; "
        cli = with_stdin(auth + cli, args.password)
    return (
        "PATH=$PATH:/usr/sbin:/sbin; export PATH\n"
        'pid=$(systemctl show -p MainPID --value -- "$unit" 2>/dev/null)\n'
        + sec("caller")
        + "grep -E '^(Uid|CapEff):' /proc/$$/status\n"
        + sec("tools")
        + 'for t in prlimit setpriv; do command -v "$t"; done\n'
        + sec("nr-open")
        + "cat /proc/sys/fs/nr_open 2>/dev/null\n"
        + 'case $pid in ""|0) exit 0;; esac\n'
        + sec("limits")
        + "grep '^Max open files' \"/proc/$pid/limits\" 2>&1\n"
        + sec("status")
        + "grep -E '^(Uid|Gid):' \"/proc/$pid/status\" 2>&1\n"
        + sec("maxclients")
        + "if command -v redis-cli >/dev/null 2>&1; then\n"
        + cli
        + "\nelse echo 'redis-cli is not installed'; fi\n"
    )


def decide(
    args: RedisOpenFilesArgs,
    state: DropinState,
    sections: dict[str, str],
    password: str | None = None,
) -> OpenFilesFound:
    """What the round trip's sections say, and whether the fix can be live. Pure."""
    pid = as_int(state.shown.get("MainPID"))
    caller = Caller.read(
        sections.get("caller", ""), sections.get("tools", ""), sections.get("nr-open", "")
    )
    process = None
    if pid:
        process = Process.read(pid, sections.get("limits", ""), sections.get("status", ""))
    answer = sections.get("maxclients", "")
    running = parse_maxclients(answer)
    cli_error = None if running is not None or process is None else " ".join(answer.split())
    needed = needed_files(args.maxclients)
    found = OpenFilesFound(
        state, process, caller, running, needed, None, False, None, cli_error, password
    )
    if process is None:
        why = "redis-server is not running (no MainPID): it gets the limit when it starts"
        return dataclasses.replace(found, refused=why)
    raised: Raise | str | None = None
    if not process.has(needed):
        raised = live_raise(process, caller, args.nofile, args.maxclients)
    if isinstance(raised, str):
        return dataclasses.replace(found, refused=raised)
    if running is None:
        why = f"redis-cli could not read maxclients at {args.host}:{args.port}: {cli_error}"
        return dataclasses.replace(found, refused=why)
    return dataclasses.replace(found, raise_=raised, set_maxclients=running < args.maxclients)


class RedisOpenFiles(StepType[RedisOpenFilesArgs, OpenFilesFound]):
    """Raise the running Redis's open-file limit live (prlimit, CONFIG SET maxclients) and
    set LimitNOFILE in a drop-in for the next start; where the kernel refuses the live
    raise, the plan says why and the drop-in's change needs the restart (`notify`).

    Facts: `pid`, `open_files` {soft, hard} (None: unlimited), `needed`, `running_maxclients`,
    `cap_sys_resource`, `live` (the fix takes effect without a restart), `refused` (why
    not, or None), `limit_nofile` (systemd's LimitNOFILE now), and the drop-in's facts as
    `systemd_dropin` registers them under `dropin`."""

    name = "redis_open_files"
    Args = RedisOpenFilesArgs
    summary = "Give running Redis the open files maxclients needs: prlimit, CONFIG SET, drop-in."
    read_only = False

    def diagnose(self, args: RedisOpenFilesArgs, ctx: StepContext) -> OpenFilesFound:
        if args.password:
            ctx.masker.add(args.password)
        marker = new_marker()
        script = show_script(args.dropin, marker, ("MainPID",)) + gather_script(args, marker)
        output, current = ctx.run_reading(script, args.dropin.path)
        sections = split_sections(output, marker)
        try:
            state = dropin_state(args.dropin, sections, current, ctx.become)
        except ValueError as exc:
            raise StepError(ctx.host.name, str(exc), step=ctx.step_name) from None
        return decide(args, state, sections, args.password)

    def registered(self, found: OpenFilesFound) -> StepResult:
        process = found.process
        facts: dict[str, Any] = {
            "pid": process.pid if process else None,
            "open_files": {"soft": process.soft, "hard": process.hard} if process else None,
            "needed": found.needed,
            "running_maxclients": found.running_maxclients,
            "cap_sys_resource": found.caller.cap_sys_resource,
            "live": found.refused is None,
            "refused": found.refused,
            "limit_nofile": found.dropin.shown.get("LimitNOFILE"),
            "dropin": found.dropin.facts(),
        }
        if process is None:
            msg = "no running redis-server"
        else:
            msg = (
                f"pid {process.pid}: open files {shown_limit(process.soft)} "
                f"(hard {shown_limit(process.hard)}), maxclients needs {found.needed}; "
                + (f"live fix refused: {found.refused}" if found.refused else "fixed live")
            )
        return StepResult(msg=msg, facts=facts)

    def plan(self, args: RedisOpenFilesArgs, found: OpenFilesFound) -> list[Change]:
        if found.refused is not None:
            # The drop-in alone; a running process that systemd already gave the drop-in's
            # value to is low because it started before it: a reload carries the restart.
            state = found.dropin
            if state.up_to_date and found.process is not None:
                state = dataclasses.replace(state, need_daemon_reload=True)
            return plan_dropin(args.dropin, state, restart_needed(found.refused))
        return [*self.live_changes(args, found), *plan_dropin(args.dropin, found.dropin, LIVE)]

    @staticmethod
    def live_changes(args: RedisOpenFilesArgs, found: OpenFilesFound) -> list[Change]:
        """prlimit (when the files are short), then CONFIG SET maxclients (when lower)."""
        process = found.process
        assert process is not None  # decide() refuses without a process
        become = found.dropin.become
        changes: list[Change] = []
        if found.raise_ is not None:
            old = Raise(process.soft, process.hard, found.raise_.as_ids)
            changes.append(
                CommandChange(
                    prlimit(process.pid, found.raise_),
                    become=become,
                    undo_command=prlimit(process.pid, old),
                    # Applied from a saved plan only to the same process.
                    precondition=(
                        f"systemctl show -p MainPID --value -- {shlex.quote(found.dropin.unit)}",
                        f"{process.pid}\n",
                    ),
                    effect=LIVE,
                )
            )
        if found.set_maxclients and found.running_maxclients is not None:
            changes.append(
                CommandChange(
                    config_set(args, args.maxclients, found.password),
                    become=become,
                    undo_command=config_set(args, found.running_maxclients, found.password),
                    effect=LIVE,
                )
            )
        return changes


def prlimit(pid: int, limits: Raise) -> str:
    """The prlimit command line, as the process's own ids when the caller lacks the cap."""
    command = f"prlimit --pid {pid} --nofile={limits.value}"
    if limits.as_ids is None:
        return command
    uid, gid = limits.as_ids
    return f"setpriv --reuid={uid} --regid={gid} --clear-groups {command}"


def config_set(args: RedisOpenFilesArgs, maxclients: int, password: str | None) -> str:
    """CONFIG SET maxclients, proven with CONFIG GET: the script every live value uses
    (`configset.set_script`: the password in redis-cli's environment, never argv; a
    refusal such as "The operating system is not able to handle the specified number of
    clients" fails the change, since redis-cli itself exits 0 on an error reply)."""
    at = configset.Endpoint(("-h", args.host, "-p", str(args.port)), password or "")
    value = str(maxclients)
    title = f"CONFIG SET maxclients {value} on the running Redis"
    return configset.set_script(title, [at], [("maxclients", value)])
