"""Rollout batches: `--serial` canaries first, stopped by `--max-fail-percent`.

A fleet is changed batch by batch (sizes like 1, 10%, 100%) so a fix that breaks the
first hosts is not carried to the rest; `Fleet.run` drives the batches and, with
`--confirm-batches`, asks before each one after the first.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from redmedic.model.inventory import Host
from redmedic.run.executor import HostResult, Status

# What counts against --max-fail-percent: a host that did not end as planned.
_FAILED = (Status.FAILED, Status.UNREACHABLE, Status.INTERRUPTED)


def batches(hosts: list[Host], serial: tuple[str, ...]) -> Iterator[list[Host]]:
    """Split hosts into `--serial` batches: sizes like 1, 10%, 100%; the last size repeats."""
    if not serial:
        yield hosts
        return
    index, sizes = 0, list(serial)
    while index < len(hosts):
        spec = sizes.pop(0) if len(sizes) > 1 else sizes[0]
        if spec.endswith("%"):
            size = max(1, int(len(hosts) * float(spec[:-1]) / 100))
        else:
            size = max(1, int(spec))
        yield hosts[index : index + size]
        index += size


def fail_limit(max_fail_percent: float | None, serial: tuple[str, ...]) -> float | None:
    """The percentage of a batch that may fail; with `--serial` and none given, 0: a canary
    that fails must not be followed by the fleet."""
    if max_fail_percent is None and serial:
        return 0.0
    return max_fail_percent


def too_many_failures(
    batch: Sequence[Host], results: Mapping[str, HostResult], limit: float | None
) -> bool:
    """Whether this batch's failures stop the rollout."""
    if limit is None:
        return False
    bad = sum(results[h.name].status in _FAILED for h in batch)
    return bad * 100.0 / len(batch) > limit
