"""`--shard K/N`: a stable, disjoint share of the selected hosts, one per control machine.

Why: a fleet too big for one control machine, or for one CI job's time, is split by a job
system the user already has (a Kubernetes Indexed Job, a CI matrix), each job running the
same command with its own K. A host belongs to shard `sha256(host name) mod N + 1`: that
depends on nothing but the name and N (not on Python's salted `hash()`, the inventory's
order or the other hosts), so every machine computes the same split without talking to the
others, the N shards are disjoint and together hold the whole selection, and a host keeps
its shard when other hosts come and go.

K counts from 1, as `--shard 1/4` does in test runners: a Kubernetes Indexed Job passes
`$((JOB_COMPLETION_INDEX + 1))/N`. See docs/sharding.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from redmedic.errors import UsageError


class _Named(Protocol):
    @property
    def name(self) -> str: ...


H = TypeVar("H", bound=_Named)


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (1 <= index <= count)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, name: str) -> bool:
        """Whether the host called `name` belongs to this shard."""
        digest = hashlib.sha256(name.encode("utf-8")).digest()
        return int.from_bytes(digest, "big") % self.count == self.index - 1

    def pick(self, hosts: Sequence[H]) -> list[H]:
        """This shard's hosts, in the selection's order."""
        return [host for host in hosts if self.holds(host.name)]


def parse_shard(text: str) -> Shard:
    """`K/N` with 1 <= K <= N; anything else is a one-line UsageError."""
    index, sep, count = text.strip().partition("/")
    if sep and index.strip().isdigit() and count.strip().isdigit():
        shard = Shard(int(index), int(count))
        if 1 <= shard.index <= shard.count:
            return shard
    raise UsageError(
        f"bad --shard value {text!r}",
        hint="use K/N with 1 <= K <= N, e.g. --shard 1/4 (shards count from 1: in a "
        "Kubernetes Indexed Job pass $((JOB_COMPLETION_INDEX + 1))/N)",
    )
