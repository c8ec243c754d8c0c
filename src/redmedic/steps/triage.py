"""`redis_triage`: name the causes of "connection refused" from the evidence gathered so far.

It reads no host: it runs `redmedic.redis.diagnosis.diagnose` over what earlier steps registered
(`redis_facts`, the probes, optionally `log_scan`), so a whole triage costs the round trips
of those steps and nothing more. Its `causes` fact drives the fix steps:

    fix:
      - name: Listen on all interfaces
        redis_config: {set: {bind: "0.0.0.0 -::*"}}
        when: "'bind' in triage.causes"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator

from redmedic.model.plan import Finding, StepResult
from redmedic.redis import diagnosis
from redmedic.redis.logs import hits_from_logs, hits_from_registered
from redmedic.steps.base import StepArgs, StepContext, StepType


class TriageArgs(StepArgs):
    facts: dict[str, Any] = Field(
        description='The registered `redis_facts` result, passed whole: "{{ facts }}".'
    )
    probe: dict[str, Any] | list[Any] | None = Field(
        default=None,
        description="Registered probe result(s): one result, a list of them, or a mapping of "
        "vantage name (control, host) to result; each with `outcome` and `detail`.",
    )
    logs: dict[str, Any] | None = Field(
        default=None,
        description="Registered `log_scan` result; default: scan the logs `facts` holds.",
    )
    port: int = Field(default=6379, ge=1, le=65535, description="The port clients connect to.")

    @field_validator("facts")
    @classmethod
    def _facts(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("skipped") or "listening" not in value:
            raise ValueError(
                "`facts` holds no redis_facts result — register a redis_facts step and pass "
                'it as facts: "{{ NAME }}"'
            )
        return value

    symptom: str | None = Field(
        default=None,
        description="The error clients reported. With it, a server that answers from every "
        "vantage point is reported as a `client` problem; without it, as healthy.",
    )
    maxclients: int | None = Field(
        default=None,
        ge=1,
        description="The maxclients a max-clients fix sets (redis_maxclients): the open-file "
        "limit is checked against it too, so nofile-limit is named in the same run.",
    )
    maxmemory_policy: str | None = Field(
        default=None,
        description="The maxmemory-policy an oom fix sets (redis_maxmemory_policy): whether "
        "eviction can free room, and the `maxmemory` fact, are judged for it. Default: the "
        "running policy.",
    )
    causes: list[str] | None = Field(
        default=None,
        description="Only look for these causes (e.g. [oom, overcommit] in a playbook that "
        "fixes those alone). Default: every cause.",
    )

    @field_validator("causes")
    @classmethod
    def _causes(cls, value: list[str] | None) -> list[str] | None:
        unknown = sorted(set(value or ()) - set(diagnosis.CAUSES))
        if unknown:
            raise ValueError(
                f"unknown cause {', '.join(unknown)}: pick from {', '.join(diagnosis.CAUSES)}"
            )
        return value


@dataclass(frozen=True)
class Causes:
    """The causes found, in order, each with its evidence; the maxmemory an oom fix must set."""

    findings: tuple[Finding, ...]
    maxmemory: str | None = None


class RedisTriage(StepType[TriageArgs, Causes]):
    """Map the evidence to causes. Findings: one per cause (not-running, not-enabled,
    wrong-port, bind, protected-mode, firewall-ufw, firewall-firewalld, max-clients,
    nofile-limit, oom, overcommit, network, client), each with the facts behind it.
    Facts: `causes` (cause ids, in order), `fixable` (the ones a fix step can act on),
    `findings` [{cause, summary, evidence, fixable}], `maxmemory` (the limit a fixable oom
    needs, e.g. "96mb", sized from the host's memory; none when the policy alone frees
    room). `rc` is 1 when any cause was found.
    """

    name = "redis_triage"
    Args = TriageArgs
    summary = "Name the causes of a Redis connection failure from facts, probes and logs."
    read_only = True

    def diagnose(self, args: TriageArgs, ctx: StepContext) -> Causes:
        if args.logs is not None and not args.logs.get("skipped"):
            hits = hits_from_registered(args.logs)
        else:
            hits = hits_from_logs(args.facts)
        targets = diagnosis.Targets(args.maxclients, args.maxmemory_policy)
        found = diagnosis.diagnose(
            args.facts,
            diagnosis.probes_from(args.probe),
            hits,
            args.port,
            symptom=args.symptom,
            targets=targets,
        )
        if args.causes is not None:
            found = [f for f in found if f.cause in args.causes]
        maxmemory = None
        if any(f.cause == "oom" and f.fixable for f in found):
            raised = any(f.cause == "max-clients" for f in found)
            sizing = diagnosis.maxmemory_sizing(
                args.facts, args.maxmemory_policy, args.maxclients if raised else None
            )
            maxmemory = sizing.shown() if sizing else None
        return Causes(tuple(found), maxmemory)

    def registered(self, found: Causes) -> StepResult:
        findings = found.findings
        causes = [f.cause for f in findings]
        return StepResult(
            rc=1 if findings else 0,
            msg=f"causes: {', '.join(causes)}" if causes else "no cause found",
            facts={
                "causes": causes,
                "fixable": [f.cause for f in findings if f.fixable],
                "maxmemory": found.maxmemory,
                "findings": [
                    {
                        "cause": f.cause,
                        "summary": f.summary,
                        "evidence": list(f.evidence),
                        "fixable": f.fixable,
                    }
                    for f in findings
                ],
            },
            findings=findings,
        )
