"""redmedic: diagnose and fix Redis connection failures across a fleet, safely, over SSH.

The library behind the `redmedic` command. A run is one call:

    playbook = load_playbook("playbooks/connection-refused.yaml", builtin_step_types())
    hosts = select_hosts(load_inventory("inventory.yaml"), playbook.hosts, limit=None)
    result = run_playbook(playbook, hosts, RunOptions(check=True),
                          registry=builtin_step_types(), reporter=print)

Third-party step types subclass `StepType` and import what they need from here, never from
the rooms inside (see docs/writing-playbooks.md).
"""

from redmedic.connection import CommandResult, Connection, ConnectOptions, RemoteFile, connect
from redmedic.errors import (
    HostError,
    InputError,
    PlaybookError,
    RedmedicError,
    TemplateError,
    UnreachableError,
)
from redmedic.model.inventory import Host, Inventory, load_inventory, select_hosts
from redmedic.model.plan import Change, CommandChange, FileChange, Finding, StepResult
from redmedic.playbook import Playbook, Step, load_playbook
from redmedic.run.executor import HostResult, RunOptions, Status
from redmedic.run.fleet import RunResult, run_playbook
from redmedic.steps import PlanError, StepArgs, StepContext, StepType, builtin_step_types

__all__ = [
    "Change",
    "CommandChange",
    "CommandResult",
    "ConnectOptions",
    "Connection",
    "FileChange",
    "Finding",
    "Host",
    "HostError",
    "HostResult",
    "InputError",
    "Inventory",
    "PlanError",
    "Playbook",
    "PlaybookError",
    "RedmedicError",
    "RemoteFile",
    "RunOptions",
    "RunResult",
    "Status",
    "Step",
    "StepArgs",
    "StepContext",
    "StepResult",
    "StepType",
    "TemplateError",
    "UnreachableError",
    "builtin_step_types",
    "connect",
    "load_inventory",
    "load_playbook",
    "run_playbook",
    "select_hosts",
]
