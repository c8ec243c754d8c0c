"""What a run tells the user, as plain values: one class per event.

The executor emits these with every string already masked; the console and JSON-lines
reporters only render them, so no reporter can leak a secret or disagree with another.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class RunStarted:
    playbook: str
    hosts: tuple[str, ...]
    check: bool
    run_id: str = ""
    playbook_sha256: str = ""


@dataclass(frozen=True)
class HostStarted:
    host: str


@dataclass(frozen=True)
class ConnectRetried:
    """Opening the host's connection failed (a network error) and will be tried again."""

    host: str
    attempt: int  # 1 for the first retry
    retries: int  # --retries
    delay: float  # seconds until this attempt
    reason: str


@dataclass(frozen=True)
class StepDone:
    """A step observed something (diagnose/verify) or was skipped; `status` says how it went."""

    host: str
    phase: str
    step: str
    status: str  # ok, failed, skipped
    detail: str = ""
    output: str = ""


@dataclass(frozen=True)
class FindingReported:
    host: str
    step: str
    cause: str
    summary: str
    evidence: tuple[str, ...] = ()
    fixable: bool = True


@dataclass(frozen=True)
class ChangePlanned:
    host: str
    phase: str
    step: str
    kind: str  # file, command or restore (a change's `kind`)
    description: str
    diff: str = ""


@dataclass(frozen=True)
class ChangeApplied:
    """A change that is now on the host, with the change that undoes it.

    `change` is the change's own record (`to_data` without the content it wrote: a file's
    path and hashes, a command), `undo` the record of its reverse (a restore of the backup
    that checks the file still holds what was written, or the undo command; None if nothing
    undoes it): `redmedic rollback` applies that from the audit log. Secrets in commands are
    sealed (placeholders, see `Masker.seal`) so they can be replayed; `diff` is masked.
    """

    host: str
    phase: str
    step: str
    description: str
    change_id: str = ""
    change: Mapping[str, Any] = field(default_factory=dict)
    undo: Mapping[str, Any] | None = None
    diff: str = ""


@dataclass(frozen=True)
class ChangeDeclined:
    host: str
    step: str


@dataclass(frozen=True)
class RolledBack:
    host: str
    reason: str
    undone: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    undone_ids: tuple[str, ...] = ()
    # Commands with no undo: still in place, never counted as undone (or in undone_ids).
    cannot_undo: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostFinished:
    host: str
    status: str
    changed: int
    failed: int
    message: str = ""


@dataclass(frozen=True)
class RunFinished:
    """The last event: `hosts` maps each host to {status, changed, failed}."""

    hosts: Mapping[str, Mapping[str, Any]]


Event = (
    RunStarted
    | HostStarted
    | ConnectRetried
    | StepDone
    | FindingReported
    | ChangePlanned
    | ChangeApplied
    | ChangeDeclined
    | RolledBack
    | HostFinished
    | RunFinished
)
Reporter = Callable[[Event], None]

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_NAMES: dict[type, str] = {RunFinished: "summary"}


def event_name(event: Event) -> str:
    """The snake_case name used as `"event"` in JSON (`RunFinished` is `summary`)."""
    return _NAMES.get(type(event)) or _CAMEL.sub("_", type(event).__name__).lower()


def masked(event: Event, mask: Callable[[str], str]) -> Event:
    """A copy of `event` with `mask` applied to every string it carries."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return mask(value)
        if isinstance(value, tuple):
            return tuple(clean(v) for v in value)
        if isinstance(value, Mapping):
            return {clean(k): clean(v) for k, v in value.items()}
        return value

    changes = {f.name: clean(getattr(event, f.name)) for f in dataclasses.fields(event)}
    return dataclasses.replace(event, **changes)


# --- the confirmation gate: what it asks, and the answers --------------------------------


class Answer(StrEnum):
    YES = "yes"
    NO = "no"
    ALL = "all"
    QUIT = "quit"


@dataclass(frozen=True)
class ConfirmRequest:
    """What a gate shows: host, step, the question and the (masked) changes."""

    host: str
    step: str
    question: str
    changes: tuple[ChangePlanned, ...]


Confirm = Callable[[ConfirmRequest], Answer]
