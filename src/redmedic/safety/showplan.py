"""`redmedic show plan.json`: a saved plan as text, per host and step, secrets masked.

It renders the very records `apply` runs (`planfile.load_plan`, integrity-checked): each
command as the command itself, each file change as its path and diff. There is no other
text to show: what is reviewed here is what is applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redmedic.safety.planfile import SavedPlan
from redmedic.safety.secrets import hide_sealed


def render_plan(plan: SavedPlan) -> str:
    """The plan's hosts, steps and changes, as `apply` would run them."""
    lines = [f"plan of {plan.playbook} (become: {'yes' if plan.become else 'no'})"]
    for host in plan.hosts.values():
        if not host.steps:
            lines.append(f"{host.name}: no changes ({host.status})")
            continue
        lines.append(f"{host.name}:")
        for step in host.steps:
            lines.append(f"  fix step {step.index + 1}: {step.name}")
            for change in step.changes:
                lines.extend(f"    {line}" for line in _change_lines(change))
    return "\n".join(lines) + "\n"


def _change_lines(change: Mapping[str, Any]) -> list[str]:
    sudo = " (as root)" if change.get("become") else ""
    if change["kind"] == "command":
        lines = [f"run{sudo}: {hide_sealed(change['command'])}"]
        undo = change.get("undo_command")
        lines.append(f"  undo: {hide_sealed(undo)}" if undo else "  undo: cannot be undone")
        return lines
    mode = change.get("mode")
    lines = [f"write{sudo}: {change['path']}" + (f" (mode {mode:04o})" if mode else "")]
    diff = str(change.get("diff") or "")
    lines.extend(f"  {line}" for line in hide_sealed(diff).splitlines())
    return lines
