"""One host's plan kept for review, and applied later only if the host did not drift.

`run --check --plan-out` keeps each host's plan (`saved_host`); `apply` turns it back into
the same changes (`restore_unchanged`) after checking that what each change was planned
against is still so on the host: a file's sha256, a command's precondition (e.g. the
service's state). A host that drifted is refused with DriftError, never re-planned: what
the user reviewed is exactly what is applied, or nothing is. The file format itself is
`planfile`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from redmedic.connection.base import Connection, RemoteFile
from redmedic.errors import DriftError
from redmedic.model.plan import Change, CommandChange, change_from_data
from redmedic.safety.planfile import SavedHost, SavedStep
from redmedic.safety.secrets import Masker, UnknownSecretError


def saved_host(
    name: str,
    status: str,
    steps: Iterable[tuple[int, str, Sequence[Change]]],
    seal: Callable[[str], str],
    mask: Callable[[str], str],
) -> SavedHost:
    """A host's plan as data, from (index under `fix:`, step name, its changes) per step."""
    return SavedHost(
        name,
        status,
        tuple(
            SavedStep(index, step, tuple(c.to_data(seal, mask) for c in changes))
            for index, step, changes in steps
            if changes
        ),
    )


def check_saved_steps(saved: SavedHost, fix_steps: Sequence[str]) -> None:
    """Refuse a plan whose steps are not (any more) the playbook's `fix:` steps, by position."""
    for entry in saved.steps:
        if entry.index >= len(fix_steps) or fix_steps[entry.index] != entry.name:
            raise DriftError(saved.name, f"the plan's step '{entry.name}' is not in the playbook")


def restore_unchanged(
    conn: Connection,
    data: Mapping[str, Any],
    *,
    step: str,
    planned: Mapping[str, RemoteFile],
    masker: Masker,
    salt: bytes,
) -> Change:
    """The saved change `data` (of step `step`), if the host is still as it was planned on.

    `planned` are the files earlier changes of this apply will have written: a second edit
    of a file was planned on the first's result. Its secrets join `masker`.
    """

    def read(path: str, become: bool) -> RemoteFile | None:
        current = planned.get(path) or conn.read_file(path, become=become)
        if current is not None:  # its secrets, so the sealed content unseals
            masker.add_from_text(current.content)
        return current

    host = conn.host.name
    try:
        change = change_from_data(data, lambda t: masker.unseal(t, salt), read)
    except (UnknownSecretError, ValueError) as exc:
        raise DriftError(host, str(exc), step=step) from None
    if not isinstance(change, CommandChange) or change.precondition is None:
        return change
    check, expected = change.precondition
    now = conn.run(check, become=change.become).stdout
    if now != expected:
        seen = " ".join(now.split()) or "nothing"
        raise DriftError(
            host,
            f"the host changed since the plan was made (now: {seen}; planned against: "
            f"{' '.join(expected.split())}) — nothing was applied; make a new plan",
            step=step,
        )
    return change
