"""The step-type contract: facts in, changes out.

A step type is a class with a pydantic `Args` model and a `Found` value of its own (a frozen
dataclass). The executor renders a step's arguments with the host's variables and validates
them into `Args` (so every argument check runs in `redmedic validate` too), then:

- `diagnose(args, ctx) -> Found` reads the host: the ONLY method that may use `ctx`;
- `plan(args, found) -> list[Change]` (fix and handlers) is pure: what it needs from the
  host is in `found`, so it is tested as data, facts in, changes out;
- `registered(found) -> StepResult` is what the executor reports and `register:` stores;
- `question(args, found)`, optional, is a gate question the step asks from what it found.

Nothing in a step type writes to a host: applying is the executor's job, through the changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from redmedic.connection.base import CommandResult, Connection, RemoteFile
from redmedic.connection.scripts import read_script
from redmedic.model.inventory import Host
from redmedic.model.plan import Change, StepResult
from redmedic.model.templating import Templar
from redmedic.safety.secrets import Masker


class StepArgs(BaseModel):
    """Base of every step type's arguments: unknown arguments are errors, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


ArgsT = TypeVar("ArgsT", bound=StepArgs)
FoundT = TypeVar("FoundT")


class PlanError(Exception):
    """`plan` cannot bring the host where the arguments want it (e.g. the file to edit does
    not exist): the executor reports it as this host's StepError, naming the step. Why not
    StepError itself: `plan` has no context, so it does not know the host or step name."""


@dataclass
class StepContext:
    """Everything a step may use on one host; built by the executor per step.

    `planned_files` is the host's overlay of files changed by earlier fix steps of the same
    run, so two edits of one file compose instead of the second undoing the first.
    """

    host: Host
    conn: Connection
    vars: Mapping[str, Any]
    phase: str  # "diagnose", "fix", "handlers" or "verify"
    step_name: str
    where: str
    become: bool
    check: bool
    templar: Templar
    masker: Masker
    planned_files: MutableMapping[str, RemoteFile] = field(default_factory=dict)
    # The output of this step's command when the executor already ran it in a batch of
    # read-only commands (`StepType.batch_command`: one round trip for a run of such steps).
    prefetched: CommandResult | None = None
    # Files (path, become) the executor already read in the diagnose batch because this
    # run's fix steps declared them (`StepType.reads`): no round trip of their own.
    prefetched_files: Mapping[tuple[str, bool], RemoteFile | None] = field(default_factory=dict)
    _reads: dict[str, RemoteFile | None] = field(default_factory=dict, repr=False)

    def read_file(self, path: str) -> RemoteFile | None:
        """The file as it will be once earlier planned changes apply (or as it is now).

        Read once per step.
        """
        if path in self.planned_files:
            return self.planned_files[path]
        if path not in self._reads:
            key = (path, self.become)
            if key in self.prefetched_files:
                self._reads[path] = self.prefetched_files[key]
            else:
                self._reads[path] = self.conn.read_file(path, become=self.become)
        return self._reads[path]

    def run_reading(self, script: str, path: str) -> tuple[str, RemoteFile | None]:
        """Run `script` and read `path` in ONE round trip: (the script's stdout, the file
        as it will be once earlier planned changes apply, or as it is now).

        A file an earlier step of this run plans to change is not read from the host, so
        two steps editing one file compose. Raises CommandError when the read fails.
        """
        if path in self.planned_files:
            return self.conn.run(script, become=self.become).stdout, self.planned_files[path]
        ran, read = self.conn.run_many([script, read_script(path)], become=self.become)
        return ran.stdout, self.conn.file_from_result(path, read)


class StepType(ABC, Generic[ArgsT, FoundT]):
    """One kind of step (`shell`, `file_line`, ...). Subclasses set the class attributes
    and implement `diagnose` and `registered` (and `plan` unless `read_only`).

    `free_form` names the argument a bare string value maps to (`shell: cmd...`);
    `read_only` step types may be used in `diagnose` and `verify`; the others only in
    `fix` and `handlers`.
    """

    name: ClassVar[str]
    Args: ClassVar[type[StepArgs]]
    summary: ClassVar[str]
    free_form: ClassVar[str | None] = None
    read_only: ClassVar[bool] = True

    @abstractmethod
    def diagnose(self, args: ArgsT, ctx: StepContext) -> FoundT:
        """Read the host (never change it): everything `plan` and `registered` need."""

    def plan(self, args: ArgsT, found: FoundT) -> list[Change]:
        """The changes that would bring the host where `args` wants it; none if it is.

        Pure (no host, no context): raise PlanError when it cannot be done.
        """
        return []

    def question(self, args: ArgsT, found: FoundT) -> str | None:
        """A question the gate must ask before this step's changes apply, whatever the
        playbook's `confirm:` says: a cost only the host shows (restarting a primary that
        replicas follow). None: nothing of its own to ask. --yes approves it, as any gate."""
        return None

    @abstractmethod
    def registered(self, found: FoundT) -> StepResult:
        """What the step reports and `register:` stores (rc, stdout, msg, facts, findings)."""

    def batch_command(self, args: ArgsT) -> str | None:
        """The one read-only command that is this step's whole diagnose (or verify), or None.

        A step type that names one lets it share a round trip: the executor runs it in one
        batch with its neighbours' (`run/batching.py`) and hands `diagnose` the output as
        `ctx.prefetched`, which diagnose then uses instead of running the command itself.
        """
        return None

    # True when `diagnose` reads only its arguments and the host (never `ctx.vars`): the
    # executor may then start it before its turn, when its arguments and conditions read
    # nothing any step registers (`run/early.py`).
    may_start_early: ClassVar[bool] = False

    def needs_host(self, args: ArgsT) -> bool:
        """False when `diagnose` never uses `ctx.conn` (it asks from this machine): a step
        that may start early then starts while the host's connection is being opened."""
        return True

    def reads(self, args: ArgsT) -> tuple[str, ...]:
        """Files this step will read with `ctx.read_file`, known from its arguments alone.

        The executor reads them ahead, in the same round trip as the diagnose commands,
        when nothing the step depends on is registered by a diagnose step.
        """
        return ()

    @classmethod
    def describe_args(cls) -> list[tuple[str, str, str, str]]:
        """(name, type, default or 'required', description) per argument, for docs."""
        rows = []
        for name, info in cls.Args.model_fields.items():
            annotation = getattr(info.annotation, "__name__", None) or str(info.annotation)
            if info.is_required():
                default = "required"
            elif info.default_factory is not None:
                default = repr(info.default_factory())  # type: ignore[call-arg]
            else:
                default = repr(info.default)
            rows.append((name, annotation.replace("typing.", ""), default, info.description or ""))
        return rows
