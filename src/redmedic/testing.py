"""Test doubles for step types, public so plugin authors test their steps the same way.

A step type is tested in two halves. `plan` and `registered` are pure: build the step's
found value and assert the changes (facts in, changes out). `diagnose` reads the host:
`ScriptedConnection` answers its commands from a script instead of a host, so it is tested
as "this host output in, this found value out", with every command it ran recorded. A
command nothing in the script matches fails the test, so a step cannot quietly run more
than its author expected. Every round trip is recorded too (a batch of commands is one);
`file_reply` scripts a file read; `step_context` builds what the executor hands a step.

    conn = ScriptedConnection({"systemctl is-active": (0, "inactive\\ndisabled\\n", "")})
    found = Service().diagnose(Service.Args(name="redis-server"), step_context(conn))
    changes = Service().plan(Service.Args(name="redis-server", state="started"), found)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from redmedic.connection.base import ENCODING, ERRORS, Become, CommandResult, Connection
from redmedic.connection.scripts import MARK
from redmedic.model.inventory import Host
from redmedic.model.templating import Templar
from redmedic.safety.secrets import Masker
from redmedic.steps.base import StepContext

Reply = tuple[int, str, str]


class ScriptedConnection(Connection):
    """A connection whose commands are answered from `script` (first matching substring).

    `commands` records every command in the order it ran (as the step wrote it, never a
    sudo wrapper) and `round_trips` the commands each exec carried: one for `run`, all of
    them for a `run_many` batch. An empty script makes a connection for steps that must
    read no host. The scripted host is a root login: a command with become runs as it is.
    """

    def __init__(self, script: Mapping[str, Reply] | None = None, host: Host | None = None) -> None:
        super().__init__(host or Host(name="h1", address="10.213.57.2"))
        self.script = dict(script or {})
        self.commands: list[str] = []
        self.round_trips: list[list[str]] = []
        self._become = Become.SELF  # what a root login's first become finds out

    def _exec(self, command: str, stdin: bytes, timeout: float | None) -> tuple[int, bytes, bytes]:
        self.round_trips.append([command])
        return self._answer(command)

    def run_many(
        self, commands: Sequence[str], *, become: bool = False, timeout: float | None = None
    ) -> list[CommandResult]:
        """Every command answered from the script, in ONE round trip (as on a real host)."""
        self.round_trips.append(list(commands))
        results = []
        for command in commands:
            rc, out, err = self._answer(command)
            results.append(
                CommandResult(command, rc, out.decode(ENCODING, ERRORS), err.decode(ENCODING))
            )
        return results

    def _answer(self, command: str) -> tuple[int, bytes, bytes]:
        self.commands.append(command)
        for needle, (rc, out, err) in self.script.items():
            if needle in command:
                return rc, out.encode("utf-8", "surrogateescape"), err.encode()
        raise AssertionError(f"unexpected command on {self.host.name}: {command[:120]!r}")

    def close(self) -> None:
        """Nothing to release."""


def file_reply(
    content: str, *, mode: int = 0o644, owner: str = "root", group: str = "root"
) -> Reply:
    """What reading a file with this content answers (script it under the file's path)."""
    return 0, f"{MARK}file\n{mode:o} {owner} {group}\n{content}", ""


def step_context(
    conn: Connection | None = None,
    *,
    phase: str = "diagnose",
    become: bool = False,
    masker: Masker | None = None,
    variables: Mapping[str, Any] | None = None,
) -> StepContext:
    """What the executor hands a step, with a scripted (or no-host) connection by default."""
    conn = conn or ScriptedConnection()
    return StepContext(
        host=conn.host,
        conn=conn,
        vars=dict(variables or {}),
        phase=phase,
        step_name="step",
        where="pb.yaml:3",
        become=become,
        check=phase == "diagnose",
        templar=Templar(),
        masker=masker or Masker(),
    )
