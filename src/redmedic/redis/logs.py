"""Known trouble in Redis's, systemd's and the kernel's logs: the message patterns, which
lines count, and the cause each kind of line points at.

The matcher `scan_log` is pure and keyed on the stable prefixes Redis has printed across
versions. A log remembers every past start. Messages
about how the server started (low ulimit, failed bind, overcommit) only count from the last
"Redis is starting" banner on, so a problem fixed yesterday is not reported today; kills by
the OOM killer are events and always count.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from redmedic.model.plan import Finding


@dataclass(frozen=True)
class LogHit:
    """One log line that matched a known message; `kind` names the message family."""

    kind: str
    line: str


# (kind, pattern) in priority order: a line gets the first kind that matches.
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        (
            "nofile",
            r"maxclients has been reduced to \d+"
            r"|You requested maxclients of \d+ requiring at least \d+ max file descriptors"
            r"|Your current 'ulimit -n' of \d+ is not enough for the server to start"
            r"|Server can't set maximum open files to \d+",
        ),
        ("max-clients", r"max number of clients (\+ cluster connections )?reached"),
        (
            "overcommit",
            r"WARNING Memory overcommit must be enabled!"
            r"|WARNING overcommit_memory is set to 0!",
        ),
        ("oom", r"OOM command not allowed when used memory > 'maxmemory'"),
        ("fork-failed", r"Can't save in background: fork"),
        ("port-in-use", r"Could not create server TCP listening socket .*Address already in use"),
        (
            "bind-address",
            r"Could not create server TCP listening socket .*Cannot assign requested address",
        ),
        ("listen-failed", r"Failed listening on port \d+ \((TCP|TLS)\), aborting"),
        ("protected-mode", r"(?i)running in protected mode|\bprotected[- ]mode\b"),
        ("thp", r"Transparent Huge Pages \(THP\) support enabled"),
        ("tcp-backlog", r"The TCP backlog setting of \d+ cannot be enforced"),
        (
            "oom-killer",
            r"Kill(ed)? process \d+ \(redis-server\)"
            r"|redis-server invoked oom-killer"
            r"|oom-kill:.*task=redis-server"
            r"|killed by the OOM killer"
            r"|Failed with result 'oom-kill'",
        ),
    )
)
KINDS = tuple(kind for kind, _ in PATTERNS)

# Kinds that are events (they happened at a moment) rather than how the last start went.
EVENT_KINDS = frozenset({"oom-killer", "oom", "max-clients", "fork-failed"})

# The banner every start prints (4.0+), and the older "Server started" line.
_START = re.compile(r"Redis is starting|Server started, Redis version")

# Kind -> the cause id a finding names (kinds without one are reported as facts only).
CAUSES: Mapping[str, str] = {
    "nofile": "nofile-limit",
    "max-clients": "max-clients",
    "overcommit": "overcommit",
    "fork-failed": "overcommit",
    "oom": "oom",
    "oom-killer": "oom",
    "port-in-use": "not-running",
    "listen-failed": "not-running",
    "bind-address": "bind",
    "protected-mode": "protected-mode",
}

_SUMMARIES: Mapping[str, str] = {
    "nofile-limit": "Redis logged that its open-file limit is too low for maxclients",
    "max-clients": "Redis refused clients: max number of clients reached",
    "overcommit": "Redis warned that memory overcommit is disabled (background saves can fail)",
    "oom": "Redis hit maxmemory or was killed by the kernel's OOM killer",
    "not-running": "Redis could not listen on its port and exited",
    "bind": "Redis could not bind an address this host does not have",
    "protected-mode": "Redis logged protected-mode refusals",
}
EVIDENCE_LINES = 3
EVIDENCE_WIDTH = 240


def scan_log(text: str) -> list[LogHit]:
    """Every line of `text` that matches a known message, in order, with its kind."""
    hits = []
    for line in text.splitlines():
        kind = classify_line(line)
        if kind is not None:
            hits.append(LogHit(kind, line.strip()))
    return hits


def classify_line(line: str) -> str | None:
    """The kind of the first pattern matching `line`, or None."""
    for kind, pattern in PATTERNS:
        if pattern.search(line):
            return kind
    return None


def scan_current(text: str) -> list[LogHit]:
    """Hits since the last start banner, plus event hits (OOM kills...) from any time."""
    lines = text.splitlines()
    start = max((i for i, line in enumerate(lines) if _START.search(line)), default=0)
    earlier = [h for h in scan_log("\n".join(lines[:start])) if h.kind in EVENT_KINDS]
    return earlier + scan_log("\n".join(lines[start:]))


def hits_from_logs(logs: Mapping[str, Any]) -> list[LogHit]:
    """Current hits from the log sections `redis_facts` and this step gather."""
    log = logs.get("log") or {}
    hits = scan_current("\n".join(log.get("lines") or []))
    hits += scan_current("\n".join(logs.get("journal") or []))
    hits += scan_log("\n".join(logs.get("kernel_oom") or []))
    return hits


def hits_by_kind(hits: Iterable[LogHit]) -> dict[str, list[str]]:
    """{kind: [lines]} in first-seen order, duplicates (same text) dropped."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for hit in hits:
        if hit.line not in grouped[hit.kind]:
            grouped[hit.kind].append(hit.line)
    return dict(grouped)


def hits_from_registered(value: Mapping[str, Any]) -> list[LogHit]:
    """Hits back from a registered `log_scan` result ({hits: {kind: [lines]}})."""
    grouped = value.get("hits") or {}
    return [LogHit(kind, line) for kind, lines in grouped.items() for line in lines]


def clip(line: str, width: int = EVIDENCE_WIDTH) -> str:
    """One evidence line, cut to a width a report can show."""
    return line if len(line) <= width else line[: width - 1] + "…"


def log_findings(hits: Iterable[LogHit]) -> list[Finding]:
    """One finding per cause the hits point at, the last matching lines as evidence."""
    by_cause: dict[str, list[str]] = defaultdict(list)
    for hit in hits:
        cause = CAUSES.get(hit.kind)
        if cause is not None and hit.line not in by_cause[cause]:
            by_cause[cause].append(hit.line)
    return [
        Finding(
            cause,
            _SUMMARIES[cause],
            tuple(f"log: {clip(line)}" for line in lines[-EVIDENCE_LINES:]),
        )
        for cause, lines in by_cause.items()
    ]
