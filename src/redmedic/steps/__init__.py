"""Step types: the built-ins and those installed through the `redmedic.steps` entry points."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from redmedic.steps.base import PlanError, StepArgs, StepContext, StepType

# Built-in step types by name, as "module:Class": imported when a playbook first uses one.
_BUILTINS = {
    "shell": "redmedic.steps.shell:Shell",
    "file_line": "redmedic.steps.file_line:FileLine",
    "service": "redmedic.steps.service:Service",
    "assert": "redmedic.steps.checks:Assert",
    "fail": "redmedic.steps.checks:Fail",
    "redis_config": "redmedic.steps.redis_config:RedisConfig",
    "redis_restart": "redmedic.steps.redis_restart:RedisRestart",
    "redis_probe": "redmedic.steps.probe:RedisProbe",
    "tcp_probe": "redmedic.steps.probe:TcpProbe",
    "redis_facts": "redmedic.steps.redis_facts:RedisFacts",
    "log_scan": "redmedic.steps.log_scan:LogScan",
    "redis_triage": "redmedic.steps.triage:RedisTriage",
    "firewall": "redmedic.steps.firewall:Firewall",
    "systemd_dropin": "redmedic.steps.systemd_dropin:SystemdDropin",
    "sysctl": "redmedic.steps.sysctl:Sysctl",
    "redis_open_files": "redmedic.steps.redis_open_files:RedisOpenFiles",
}


class StepRegistry(Mapping[str, StepType[Any, Any]]):
    """Step types by name; a built-in's module is imported when its type is first looked up.

    Why lazy: the step modules (pydantic models, the firewall and redis.conf parsers, the
    triage rules) take ~30 ms to import, and every run would pay that at start-up whatever
    its playbook uses. Names are known without importing, so validation can still list them.
    """

    def __init__(self, types: Mapping[str, StepType[Any, Any] | str]) -> None:
        self._types: dict[str, StepType[Any, Any] | str] = dict(types)

    def __getitem__(self, name: str) -> StepType[Any, Any]:
        found = self._types[name]
        if isinstance(found, str):
            module, _, attribute = found.partition(":")
            found = self._types[name] = getattr(importlib.import_module(module), attribute)()
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def with_types(self, more: Mapping[str, StepType[Any, Any]]) -> StepRegistry:
        """A registry with `more` added (types not imported yet stay so)."""
        return StepRegistry({**self._types, **more})


def builtin_step_types() -> StepRegistry:
    """A fresh registry of the step types redmedic ships, by name."""
    return StepRegistry(_BUILTINS)


def load_step_types() -> StepRegistry:
    """The built-ins plus every installed `redmedic.steps` plugin (PluginError if one is broken)."""
    from redmedic.steps.plugins import add_plugins  # importlib.metadata: only when asked

    return add_plugins(builtin_step_types())


__all__ = [
    "PlanError",
    "StepArgs",
    "StepContext",
    "StepRegistry",
    "StepType",
    "builtin_step_types",
    "load_step_types",
]
