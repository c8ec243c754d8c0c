"""Batching: a run of read-only steps shares one round trip, and files wanted later ride along.

Every remote exec costs the caller a round trip and the host an sshd session and a shell,
so a run of diagnose (or verify) steps whose whole observation is one read-only command
goes to the host as one `run_many` batch. A step type says its steps may join one by
naming that command, `StepType.batch_command(args)`; nothing here knows a step type by
name. Files the fix steps declare with `StepType.reads(args)` join the first batch run
with the same become, so planning those steps costs no round trip of its own.

A batch changes no order the user sees: each step is still observed, registered and
reported in its turn, from the output kept for it in `ReadAhead`.

The fix steps' other reads depend on what the diagnose phase found (the config path, the
port), so they are looked ahead once it is over (`look_ahead`, see `connection.lookahead`):
each step's diagnose is tried while the connection records its reads, and every step's
next read goes to the host in one batch per level, before the steps are planned for real.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence, Set
from dataclasses import dataclass, field
from typing import Protocol

from redmedic.connection.base import CommandResult, Connection, RemoteFile
from redmedic.connection.lookahead import Lookahead, NotYetRead, Read
from redmedic.connection.scripts import read_script
from redmedic.errors import CommandError, HostError, RedmedicError, serving
from redmedic.model.templating import Templar
from redmedic.playbook import Step, names_read
from redmedic.steps import StepArgs, StepRegistry

FileKey = tuple[str, bool]  # (path, become): a file as one identity on the host reads it


class HostSteps(Protocol):
    """How a step resolves on one host (its become, `when:` and arguments): the executor."""

    @property
    def templar(self) -> Templar: ...

    @property
    def registry(self) -> StepRegistry: ...

    def become_for(self, step: Step) -> bool: ...

    def should_run(self, step: Step) -> bool: ...

    def step_args(self, step: Step) -> StepArgs: ...


@dataclass
class ReadAhead:
    """What one host's batches fetched, kept for the step (or file read) that wants it."""

    outputs: dict[int, CommandResult] = field(default_factory=dict)  # id(step) -> its output
    files: dict[FileKey, RemoteFile | None] = field(default_factory=dict)

    def output(self, step: Step) -> CommandResult | None:
        """`step`'s batched output, given once: a step observed again runs afresh."""
        return self.outputs.pop(id(step), None)


class Batcher:
    """One pass over read-only steps: before a step is observed, the batch starting there runs.

    A batch is formed when its first step comes up, not before, so its steps' arguments
    render with everything registered by then; it then holds only steps that read nothing
    another step of it registers, all with the same become.
    """

    def __init__(
        self,
        conn: Connection,
        steps: Sequence[Step],
        host: HostSteps,
        kept: ReadAhead,
        reads: Iterable[FileKey] = (),
    ) -> None:
        self.conn = conn
        self.steps = steps
        self.host = host
        self.kept = kept
        self.pending = list(reads)  # files still to read ahead
        self.covered = 0  # steps[:covered] were already considered for a batch

    def before(self, index: int) -> None:
        """Run the batch that starts at `steps[index]`, if one does and it saves a round trip."""
        if index < self.covered:
            return
        members, commands = self.batch_from(index)
        self.covered = index + len(members)
        if members:
            self.fetch(self.host.become_for(members[0]), commands)

    def batch_from(self, start: int) -> tuple[list[Step], list[tuple[Step, str]]]:
        """The batch's steps from `start` on, and (step, command) for those that will run.

        A step whose `when:` is false joins without a command (it runs nothing); one whose
        arguments cannot render yet ends the batch and reports that in its own turn.
        """
        members: list[Step] = []
        commands: list[tuple[Step, str]] = []
        registered: set[str] = set()
        for step in self.steps[start:]:
            if members and self.host.become_for(step) != self.host.become_for(members[0]):
                break
            if names_read(self.host.templar, step) & registered:
                break
            try:
                runs = self.host.should_run(step)
                command = self.command(step) if runs else None
            except RedmedicError:
                break
            if runs and command is None:
                break
            members.append(step)
            if command is not None:
                commands.append((step, command))
            if step.register:
                registered.add(step.register)
        return members, commands

    def command(self, step: Step) -> str | None:
        return self.host.registry[step.type].batch_command(self.host.step_args(step))

    def fetch(self, become: bool, commands: list[tuple[Step, str]]) -> None:
        """Run the batch's commands and read the pending files of its become, in one trip.

        Nothing runs when that would not save a round trip (fewer than two in all).
        """
        paths = [path for path, sudo in self.pending if sudo == become]
        scripts = [command for _, command in commands] + [read_script(path) for path in paths]
        if len(scripts) < 2:
            return
        self.pending = [read for read in self.pending if read[1] != become]
        with serving(", ".join(step.name for step, _ in commands)):  # e.g. --command-timeout
            results = self.conn.run_many(scripts, become=become)
        for (step, _), result in zip(commands, results[: len(commands)], strict=True):
            self.kept.outputs[id(step)] = result
        for path, result in zip(paths, results[len(commands) :], strict=True):
            # An unreadable file is not kept: the step reads it again and reports the error.
            with contextlib.suppress(HostError):
                self.kept.files[(path, become)] = self.conn.file_from_result(path, result)


def ahead_reads(fix: Sequence[Step], registered: Set[str], host: HostSteps) -> list[FileKey]:
    """Files the (selected) fix steps will read, when known before diagnose runs.

    Only for fix steps whose arguments and conditions read no name in `registered`
    (rendering them now gives what it will give in the fix phase); a step that cannot render
    or validate yet is left alone, to report that in its turn.
    """
    found: list[FileKey] = []
    for step in fix:
        if names_read(host.templar, step) & registered:
            continue
        try:
            if not host.should_run(step):
                continue
            paths = host.registry[step.type].reads(host.step_args(step))
        except RedmedicError:
            continue
        become = host.become_for(step)
        found += [(path, become) for path in paths if (path, become) not in found]
    return found


# Reads that wait for an earlier read of the same step (config file, then its includes or
# the running values): each level is one batch for all steps.
LOOKAHEAD_LEVELS = 3


def look_ahead(conn: Connection, steps: Sequence[Step], attempt: Callable[[Step], object]) -> None:
    """Read what `steps` will read, in one `run_many` per level and become, into
    `conn.lookahead` (which must be set).

    `attempt(step)` diagnoses one step as planning will. Whatever it raises other than
    `NotYetRead` (a variable not defined yet, a read that fails) is left for the step to
    raise again in its turn, where it is reported; a batch that breaks off ends the look
    ahead, and the steps read for themselves.
    """
    lookahead = conn.lookahead
    assert isinstance(lookahead, Lookahead)
    for _ in range(LOOKAHEAD_LEVELS):
        wanted: list[Read] = []
        lookahead.wanted = wanted
        try:
            for step in steps:
                with contextlib.suppress(NotYetRead, Exception):
                    attempt(step)
        finally:
            lookahead.wanted = None
        for become in dict.fromkeys(sudo for _, sudo in wanted):
            commands = [command for command, sudo in wanted if sudo == become]
            try:
                results = conn.run_many(commands, become=become)
            except CommandError:
                return
            lookahead.answers.update(
                ((c, become), r) for c, r in zip(commands, results, strict=True)
            )
        if not wanted:
            return
