"""`assert` and `fail`: stop a host when a condition says something is wrong."""

from __future__ import annotations

from pydantic import Field

from redmedic.model.plan import StepResult
from redmedic.steps.base import StepArgs, StepContext, StepType


class AssertArgs(StepArgs):
    that: list[str] = Field(description="Jinja2 expressions that must all be true.")
    fail_msg: str | None = Field(default=None, description="Message when one is false.")
    success_msg: str | None = Field(default=None, description="Message when all are true.")


class Assert(StepType[AssertArgs]):
    name = "assert"
    Args = AssertArgs
    summary = "Fail the host unless every expression in `that` is true."

    def diagnose(self, args: AssertArgs, ctx: StepContext) -> StepResult:
        for expression in args.that:
            if not ctx.templar.evaluate(expression, ctx.vars, where=ctx.where, step=ctx.step_name):
                return StepResult(
                    failed=True, msg=args.fail_msg or f"assertion failed: {expression}"
                )
        return StepResult(msg=args.success_msg or "all assertions passed")


class FailArgs(StepArgs):
    msg: str = Field(default="failed as requested", description="Why the host fails.")


class Fail(StepType[FailArgs]):
    name = "fail"
    Args = FailArgs
    summary = "Fail the host with a message (use with `when`)."
    free_form = "msg"

    def diagnose(self, args: FailArgs, ctx: StepContext) -> StepResult:
        return StepResult(failed=True, msg=args.msg)
