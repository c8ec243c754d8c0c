"""Step types: the built-ins and those installed through the `redmedic.steps` entry points."""

from __future__ import annotations

from typing import Any

from redmedic.steps.base import StepArgs, StepContext, StepType
from redmedic.steps.checks import Assert, Fail
from redmedic.steps.file_line import FileLine
from redmedic.steps.firewall import Firewall
from redmedic.steps.log_scan import LogScan
from redmedic.steps.plugins import add_plugins
from redmedic.steps.probe import RedisProbe, TcpProbe
from redmedic.steps.redis_config import RedisConfig
from redmedic.steps.redis_facts import RedisFacts
from redmedic.steps.service import Service
from redmedic.steps.shell import Shell
from redmedic.steps.sysctl import Sysctl
from redmedic.steps.systemd_dropin import SystemdDropin
from redmedic.steps.triage import RedisTriage

StepRegistry = dict[str, StepType[Any]]


def builtin_step_types() -> StepRegistry:
    """A fresh registry of the step types redmedic ships, by name."""
    types: list[StepType[Any]] = [Shell(), FileLine(), Service(), Assert(), Fail()]
    types += [RedisConfig(), RedisProbe(), TcpProbe()]
    types += [RedisFacts(), LogScan(), RedisTriage()]
    types += [Firewall(), SystemdDropin(), Sysctl()]
    return {t.name: t for t in types}


def load_step_types() -> StepRegistry:
    """The built-ins plus every installed `redmedic.steps` plugin (PluginError if one is broken)."""
    return add_plugins(builtin_step_types())


__all__ = [
    "StepArgs",
    "StepContext",
    "StepRegistry",
    "StepType",
    "builtin_step_types",
    "load_step_types",
]
