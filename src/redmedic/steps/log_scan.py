"""`log_scan`: find the messages Redis, systemd and the kernel write when Redis is in trouble.

The step reads the redis log file, the unit's journal and the kernel log in one round trip
(the log part of the `redis_facts` gather script) — or none at all when given the facts
`redis_facts` already gathered. What counts as trouble is `redmedic.redis.logs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field

from redmedic.connection.scripts import new_marker, split_sections
from redmedic.model.plan import StepResult
from redmedic.redis.facts import DEFAULT_LOG, LOG_SCRIPT, PRELUDE, parse_logs, shell_header
from redmedic.redis.logs import LogHit, hits_by_kind, hits_from_logs, log_findings
from redmedic.steps.base import StepArgs, StepContext, StepType


class LogScanArgs(StepArgs):
    path: str = Field(
        default=DEFAULT_LOG, description="Redis log file (ignored when `facts` is given)."
    )
    unit: str | None = Field(
        default="redis-server.service",
        description="systemd unit whose journal is scanned; null for none.",
    )
    lines: int = Field(default=200, ge=1, le=100000, description="Lines read from each log.")
    facts: dict[str, Any] | None = Field(
        default=None,
        description='Registered `redis_facts` result ("{{ facts }}"): scan the logs it '
        "already read instead of reading them again (no round trip).",
    )
    findings: bool = Field(
        default=True,
        description="Report findings; false when a later redis_triage step reports the "
        "causes from these hits (so each cause is shown once).",
    )


@dataclass(frozen=True)
class Scanned:
    """The known trouble found in the logs, and whether to report it as findings."""

    hits: tuple[LogHit, ...]
    log_path: str | None
    findings: bool = True


class LogScan(StepType[LogScanArgs, Scanned]):
    """Scan the redis log, the unit's journal and the kernel log for known trouble.

    Facts: `hits` {kind: [lines]} (kinds: nofile, max-clients, overcommit, oom,
    fork-failed, port-in-use, bind-address, listen-failed, protected-mode, thp,
    tcp-backlog, oom-killer), `kinds` (the kinds found), `log_path`. Findings: one per
    cause the lines point at, the lines as evidence. `rc` is 1 when something was found.
    """

    name = "log_scan"
    Args = LogScanArgs
    summary = "Scan the Redis log, its journal and the kernel log for known trouble messages."
    read_only = True

    def diagnose(self, args: LogScanArgs, ctx: StepContext) -> Scanned:
        logs = args.facts if args.facts is not None else self._read(args, ctx)
        path = (logs.get("log") or {}).get("path")
        return Scanned(tuple(hits_from_logs(logs)), path, args.findings)

    def registered(self, found: Scanned) -> StepResult:
        grouped = hits_by_kind(found.hits)
        findings = log_findings(found.hits) if found.findings else []
        path = found.log_path
        msg = f"found: {', '.join(grouped)}" if grouped else "no known trouble in the logs"
        return StepResult(
            rc=1 if grouped else 0,
            msg=msg,
            facts={"hits": grouped, "kinds": list(grouped), "log_path": path},
            findings=tuple(findings),
        )

    @staticmethod
    def _read(args: LogScanArgs, ctx: StepContext) -> dict[str, Any]:
        marker = new_marker()
        header = {
            "M": marker,
            "logfile": args.path,
            "unit": args.unit or "",
            "lines": str(args.lines),
        }
        script = (
            shell_header(header)
            + PRELUDE
            + "init=none; [ -d /run/systemd/system ] && init=systemd\n"
            + LOG_SCRIPT
        )
        result = ctx.conn.run(script, become=ctx.become)
        return parse_logs(split_sections(result.stdout, marker))
