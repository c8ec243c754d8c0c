"""Third-party step types: installed packages that declare a `redmedic.steps` entry point.

A plugin package says, in its pyproject.toml::

    [project.entry-points."redmedic.steps"]
    runtime_dir = "redmedic_example:RuntimeDir"

and `RuntimeDir` is a `StepType` subclass (see `redmedic.steps.base`) whose `name` is the
entry point's name. It follows the built-ins' contract: `diagnose` only reads the host
through `ctx.conn`, `plan` returns `FileChange`/`CommandChange` values and never writes,
so dry-run, diffs, gates, rollback and the audit log work for it unchanged.

Why strict: a plugin is loaded on every command, so a broken one must say, in one line,
which entry point of which package is at fault and how to get rid of it, instead of a
traceback from somewhere inside redmedic.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel

from redmedic.errors import PluginError
from redmedic.steps import StepRegistry
from redmedic.steps.base import StepType

GROUP = "redmedic.steps"
# Keys a step uses for itself (playbook.STEP_KEYS, tested to match): not step type names.
RESERVED = frozenset(
    {"name", "when", "register", "confirm", "notify", "tags", "sensitive", "become"}
    | {"expect_stdout", "expect_rc"}
)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def add_plugins(
    registry: Mapping[str, StepType[Any, Any]], points: Iterable[EntryPoint] | None = None
) -> StepRegistry:
    """`registry` plus one instance of each plugin step type; PluginError for a broken one.

    `points` defaults to the installed `redmedic.steps` entry points (tests pass their own).
    """
    found = entry_points(group=GROUP) if points is None else points
    plugins: dict[str, StepType[Any, Any]] = {}
    for point in sorted(found, key=lambda p: p.name):
        step_type = _load(point)
        if point.name in RESERVED:
            raise _error(point, f"'{point.name}' is a step option, not a free step type name")
        if point.name in registry or point.name in plugins:
            raise _error(
                point,
                f"step type '{point.name}' already exists"
                + (" (a built-in)" if point.name in registry else " (another plugin)"),
            )
        plugins[point.name] = step_type
    base = registry if isinstance(registry, StepRegistry) else StepRegistry(registry)
    return base.with_types(plugins)


def _load(point: EntryPoint) -> StepType[Any, Any]:
    try:
        loaded = point.load()
    except Exception as exc:  # any import-time failure of third-party code
        raise _error(point, f"cannot be imported: {type(exc).__name__}: {exc}") from None
    if not (isinstance(loaded, type) and issubclass(loaded, StepType)):
        raise _error(point, f"{point.value} is not a subclass of redmedic.steps.StepType")
    problems = []
    name = getattr(loaded, "name", None)
    if name != point.name:
        problems.append(f"its `name` is {name!r}, not the entry point's name {point.name!r}")
    if not _NAME.match(point.name):
        problems.append("names are lower_case_with_underscores")
    args = getattr(loaded, "Args", None)
    if not (isinstance(args, type) and issubclass(args, BaseModel)):
        problems.append("`Args` must be a StepArgs (pydantic) model")
    if not isinstance(getattr(loaded, "summary", None), str):
        problems.append("`summary` must be a one-line string")
    if "ctx" in inspect.signature(loaded.plan).parameters:
        problems.append(
            "`plan` takes (args, found) and no context: diagnose returns what plan needs "
            "(see docs/writing-playbooks.md, The contract)"
        )
    if problems:
        raise _error(point, "; ".join(problems))
    try:
        return loaded()
    except Exception as exc:
        raise _error(point, f"cannot be created: {type(exc).__name__}: {exc}") from None


def _error(point: EntryPoint, problem: str) -> PluginError:
    dist = getattr(point, "dist", None)
    package = dist.metadata["Name"] if dist is not None else None
    where = f"step-type plugin '{point.name} = {point.value}'"
    if package:
        where += f" (package {package})"
    fix = f"pip uninstall {package}" if package else "uninstall the package that declares it"
    return PluginError(f"{where}: {problem}", hint=f"fix the plugin or remove it ({fix})")
