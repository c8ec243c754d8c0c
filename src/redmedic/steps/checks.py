"""`assert` and `fail`: stop a host when a condition says something is wrong."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from redmedic.model.plan import StepResult
from redmedic.steps.base import StepArgs, StepContext, StepType


@dataclass(frozen=True)
class Verdict:
    """Whether the host fails here, and why (or what held)."""

    failed: bool
    msg: str

    def as_result(self) -> StepResult:
        return StepResult(failed=self.failed, msg=self.msg)


class AssertArgs(StepArgs):
    that: list[str] = Field(description="Jinja2 expressions that must all be true.")
    fail_msg: str | None = Field(default=None, description="Message when one is false.")
    success_msg: str | None = Field(default=None, description="Message when all are true.")


class Assert(StepType[AssertArgs, Verdict]):
    name = "assert"
    Args = AssertArgs
    summary = "Fail the host unless every expression in `that` is true."

    def diagnose(self, args: AssertArgs, ctx: StepContext) -> Verdict:
        for expression in args.that:
            if not ctx.templar.evaluate(expression, ctx.vars, where=ctx.where, step=ctx.step_name):
                return Verdict(True, args.fail_msg or f"assertion failed: {expression}")
        return Verdict(False, args.success_msg or "all assertions passed")

    def registered(self, found: Verdict) -> StepResult:
        return found.as_result()


class FailArgs(StepArgs):
    msg: str = Field(default="failed as requested", description="Why the host fails.")


class Fail(StepType[FailArgs, Verdict]):
    name = "fail"
    Args = FailArgs
    summary = "Fail the host with a message (use with `when`)."
    free_form = "msg"

    def diagnose(self, args: FailArgs, ctx: StepContext) -> Verdict:
        return Verdict(True, args.msg)

    def registered(self, found: Verdict) -> StepResult:
        return found.as_result()
