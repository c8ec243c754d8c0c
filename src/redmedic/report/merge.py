"""`redmedic report FILE...`: the summaries of several `--output json` runs as one.

Why: N machines running `--shard K/N --output json` leave N JSON-lines files. Concatenated
(`cat shard-*.jsonl`) they already are one event stream, but the on-call engineer wants one
table and one exit code for the fleet. Every `summary` line of every file counts, so the
files may be passed apart or already concatenated. A host in two summaries is an error, not
a silent overwrite: the shards were cut with different N, or a file was passed twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from redmedic.errors import UsageError


def merge_summaries(paths: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each host's {status, changed, failed} from the `summary` lines of `paths`, in order."""
    hosts: dict[str, dict[str, Any]] = {}
    seen: dict[str, str] = {}  # host -> FILE:LINE of its summary
    for path in paths:
        found = False
        for number, record in _records(path):
            if record.get("event") != "summary":
                continue
            found = True
            where = f"{path}:{number}"
            for name, result in dict(record.get("hosts") or {}).items():
                if name in seen:
                    raise UsageError(
                        f"host {name!r} is in two summaries (also at {seen[name]})",
                        where=where,
                        hint="merge the outputs of one sharded run (the same N), each once",
                    )
                seen[name] = where
                hosts[name] = dict(result)
        if not found:
            raise UsageError(
                "no summary line",
                where=path,
                hint="pass the --output json files of finished runs",
            )
    return hosts


def _records(path: str) -> list[tuple[int, dict[str, Any]]]:
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read it: {exc.strerror}", where=path) from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise UsageError(
                "not a JSON line", where=f"{path}:{number}", hint="pass --output json files"
            ) from None
        if isinstance(record, dict):
            records.append((number, record))
    return records
