"""Answers read ahead: what several steps will read comes back from one round trip.

Planning a fix step reads the host (its config file, the running value, a sysctl), and each
read is a remote exec: three round trips, 150 ms at 50 ms RTT, and on a sudo host a password
check. The reads of different fix steps do not depend on each other (planning changes
nothing on the host), only on what the diagnose phase registered. So the executor lets every
fix step's diagnose run once against a connection that *records* the reads it has no answer
for instead of doing them (`NotYetRead` stops the step there), sends all of them in one
`run_many`, and repeats for the reads that came next (a live read needs the config's
port first); then the steps are planned for real and find their answers here.

An answer is only served for exactly the command (and the same become) that produced it, so
a step that reads something else than it did while recording simply reads it then. Answers
live for one planning pass: the executor drops them before anything is applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # base.py serves these answers: it imports this module
    from redmedic.connection.base import CommandResult

Read = tuple[str, bool]  # (command, become): one read as the host answers it


class NotYetRead(BaseException):
    """Raised inside a step's diagnose while recording, at its first read with no answer.

    A BaseException, like KeyboardInterrupt: no step's `except HostError` (or `Exception`)
    may take it for a failure of its own; the executor catches it around the whole step.
    """


@dataclass
class Lookahead:
    """The answers of one planning pass, and the reads wanted while recording."""

    answers: dict[Read, CommandResult] = field(default_factory=dict)
    wanted: list[Read] | None = None  # not None: recording

    def answer(self, command: str, become: bool) -> CommandResult | None:
        """The answer read ahead for `command`; while recording, note it and stop the step."""
        found = self.answers.get((command, become))
        if found is None and self.wanted is not None:
            self._want([command], become)
        return found

    def answer_all(self, commands: Sequence[str], become: bool) -> list[CommandResult] | None:
        """Answers for every command of a batch, or None when one is missing (recorded)."""
        found = [self.answers.get((command, become)) for command in commands]
        if all(result is not None for result in found):
            return [result for result in found if result is not None]
        if self.wanted is not None:
            self._want([c for c, r in zip(commands, found, strict=True) if r is None], become)
        return None

    def _want(self, commands: Sequence[str], become: bool) -> None:
        assert self.wanted is not None
        self.wanted += [(c, become) for c in commands if (c, become) not in self.wanted]
        raise NotYetRead
