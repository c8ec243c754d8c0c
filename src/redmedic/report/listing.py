"""`--list-hosts`, `--list-tasks`, `--list-tags`: what a run would touch, nothing contacted.

The layout is ansible-playbook's, so its users read it at a glance and scripts that grep it
keep working: a `playbook:` line, one play block, `hosts (N):`, the steps with their
`TAGS: [...]`, and `TASK TAGS:`. Where Ansible prints one `tasks:` list, redmedic has phases,
so the steps are listed under `diagnose:`, `fix:`, `handlers:` and `verify:` (`--tags` and
`--skip-tags` select fix steps only: the other phases always run).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from redmedic.playbook import Playbook, Step


def _tags(tags: frozenset[str] | set[str]) -> str:
    return "[" + ", ".join(sorted(tags)) + "]"


def listing(
    playbook: Playbook,
    *,
    hosts: Sequence[str] | None,
    tasks: bool,
    tags: bool,
    selects: Callable[[Step], bool],
) -> str:
    """The text ansible-playbook would print for these `--list-*` flags (`hosts` None: not
    asked for); only the steps `selects` keeps are listed and counted."""
    lines = [
        "",
        f"playbook: {playbook.path}",
        "",
        f"  play #1 ({playbook.hosts}): {playbook.name}\tTAGS: []",
    ]
    if hosts is not None:
        lines.append(f"    pattern: [{playbook.hosts!r}]")
        lines.append(f"    hosts ({len(hosts)}):")
        lines += [f"      {name}" for name in hosts]
    phases = {
        "diagnose": playbook.diagnose,
        "fix": playbook.fix,
        "handlers": playbook.handlers,
        "verify": playbook.verify,
    }
    kept = {phase: [s for s in steps if selects(s)] for phase, steps in phases.items()}
    if tasks:
        for phase, steps in kept.items():
            if steps:
                lines.append(f"    {phase}:")
                lines += [f"      {step.name}\tTAGS: {_tags(step.tags)}" for step in steps]
    if tags:
        found = {tag for steps in kept.values() for step in steps for tag in step.tags}
        lines.append(f"      TASK TAGS: {_tags(found)}")
    return "\n".join(lines) + "\n"
