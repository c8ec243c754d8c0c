"""A user with a broken step-type plugin installed gets one line naming it, not a traceback."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from redmedic.errors import PluginError
from redmedic.model.plan import Change, StepResult
from redmedic.playbook import STEP_KEYS
from redmedic.steps import StepContext, StepType, builtin_step_types
from redmedic.steps.plugins import GROUP, RESERVED, add_plugins
from redmedic.steps.shell import ShellArgs


def point(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=GROUP)


def plugin_error(*points: EntryPoint) -> str:
    with pytest.raises(PluginError) as err:
        add_plugins(builtin_step_types(), points)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_valid_plugin_joins_the_registry() -> None:
    registry = add_plugins({}, [point("shell", "redmedic.steps.shell:Shell")])
    assert list(registry) == ["shell"] and registry["shell"].summary


def test_an_unimportable_plugin_is_named_with_its_entry_point() -> None:
    message = plugin_error(point("mystep", "redmedic_no_such_module:MyStep"))
    assert message.startswith(
        "step-type plugin 'mystep = redmedic_no_such_module:MyStep': cannot be imported: "
        "ModuleNotFoundError"
    )
    assert message.endswith(
        "— fix the plugin or remove it (uninstall the package that declares it)"
    )


def test_a_plugin_that_is_not_a_step_type_is_refused() -> None:
    message = plugin_error(point("shell_args", "redmedic.steps.shell:ShellArgs"))
    assert "redmedic.steps.shell:ShellArgs is not a subclass of redmedic.steps.StepType" in message


def test_the_entry_point_name_must_be_the_step_type_name() -> None:
    message = plugin_error(point("run_it", "redmedic.steps.shell:Shell"))
    assert "its `name` is 'shell', not the entry point's name 'run_it'" in message


def test_a_plugin_cannot_replace_a_builtin() -> None:
    message = plugin_error(point("shell", "redmedic.steps.shell:Shell"))
    assert "step type 'shell' already exists (a built-in)" in message


def test_step_options_are_not_step_type_names() -> None:
    assert set(STEP_KEYS) == RESERVED


class OldStyle(StepType[ShellArgs, StepResult]):
    """A step type written for the contract before typed facts: plan read the context."""

    name = "old_style"
    Args = ShellArgs
    summary = "Written against the old contract."

    def diagnose(self, args: ShellArgs, ctx: StepContext) -> StepResult:
        return StepResult()

    def registered(self, found: StepResult) -> StepResult:
        return found

    def plan(self, args: ShellArgs, ctx: StepContext, found: StepResult) -> list[Change]:  # type: ignore[override]
        return []


def test_a_plugin_whose_plan_still_takes_the_context_is_told_the_new_contract() -> None:
    message = plugin_error(point("old_style", f"{__name__}:OldStyle"))
    assert "`plan` takes (args, found) and no context" in message
